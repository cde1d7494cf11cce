"""The CLI keeps numpy's OpenBLAS to one thread (issue 14: a `wsideid scan` process <= 0.6 CPU
s a label): its thread start cost 0.04-0.07 s of CPU per process on a 2-core machine, and
nothing in wsideid multiplies floating-point matrices with it."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PROBE = ("import wsideid.cli, numpy, os\n"
         "threads = open('/proc/self/status').read().split('Threads:')[1].split()[0]\n"
         "print(os.environ.get('OPENBLAS_NUM_THREADS'), threads)")


def _run(extra: dict[str, str]) -> list[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")}
    env.update(PYTHONPATH=str(ROOT), **extra)
    # not pinned: OpenBLAS counts the cores this process may run on
    return subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env=env, cwd=ROOT,
                          check=True).stdout.split()


@pytest.mark.skipif(not Path("/proc/self/status").exists() or len(os.sched_getaffinity(0)) < 2,
                    reason="needs Linux and two cores (OpenBLAS starts no thread on one)")
def test_the_cli_starts_numpy_with_one_blas_thread():
    assert _run({}) == ["1", "1"]


def test_a_thread_count_the_user_chose_is_kept():
    assert _run({"OPENBLAS_NUM_THREADS": "2"})[0] == "2"
