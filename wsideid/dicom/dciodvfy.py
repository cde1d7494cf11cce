"""IOD conformance with dicom3tools' ``dciodvfy``: no new errors allowed.

The input often already fails (missing Type 2 attributes, zero slice
thickness...): we must not make it worse, so the check compares the error
lines of output and input after normalising away values (UIDs, dates) that
de-identification legitimately changes.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from concurrent.futures import Future, ThreadPoolExecutor

from .failures import without_values

TOOL = "dciodvfy"
TIMEOUT_S = 60
_NAMED = re.compile(r"((?:Element|Module|Macro|attribute|Attribute)\s?=?\s?)<([^>]*)>")
_VALUE = re.compile(r"<[^>]*>")


def available() -> bool:
    return shutil.which(TOOL) is not None


def normalise(line: str) -> str:
    """Keep attribute/module names, drop values."""
    keep: list[str] = []

    def stash(m: re.Match) -> str:
        keep.append(f"{m.group(1)}[{m.group(2)}]")
        return f"\0{len(keep) - 1}\0"
    s = _NAMED.sub(stash, line.strip())
    s = _VALUE.sub("<v>", without_values(s))
    return re.sub(r"\0(\d+)\0", lambda m: keep[int(m.group(1))], s)


def errors(path: str) -> list[str]:
    """Normalised error lines of dciodvfy on one file (warnings ignored)."""
    try:
        r = subprocess.run([TOOL, path], capture_output=True, text=True, timeout=TIMEOUT_S, errors="replace")
    except subprocess.TimeoutExpired:
        return [f"Error - dciodvfy timed out on {os.path.basename(path)}"]  # never subtracted as the source's own
    if r.returncode < 0:  # killed by a signal: its silence is not a clean bill
        return [f"Error - dciodvfy died with signal {-r.returncode} on {os.path.basename(path)}"]
    lines = (r.stdout + "\n" + r.stderr).splitlines()
    return sorted({normalise(x) for x in lines if x.startswith("Error")})


def new_errors(source: str, output: str) -> list[str]:
    before = set(errors(source))
    return [e for e in errors(output) if e not in before]


class Runs:
    """``dciodvfy`` on every (source, output) pair, started at once in two threads, so that the
    runs (0.6 s of wall each on a 1.6 GB instance, mostly the kernel reading the file) overlap
    the verifier's other checks instead of following them one after another. The same runs and
    the same comparison as ``new_errors``, pair by pair; the largest instances first."""

    def __init__(self, pairs: list[tuple[str, str]]):
        self.pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="dciodvfy")
        order = sorted(range(len(pairs)), key=lambda k: -_size(pairs[k][1]))
        futures: dict[int, tuple[Future, Future]] = {}
        for k in order:
            src, out = pairs[k]
            futures[k] = (self.pool.submit(errors, src), self.pool.submit(errors, out))
        self.futures = [futures[k] for k in range(len(pairs))]

    def new_errors(self) -> list[list[str]]:
        """Per pair, the output's error lines the source does not have (as ``new_errors``)."""
        out = []
        for src, dst in self.futures:
            before = set(src.result())
            out.append([e for e in dst.result() if e not in before])
        self.pool.shutdown()
        return out

    def close(self) -> None:
        """Runs not yet started are dropped (an earlier check ended the run)."""
        self.pool.shutdown(wait=False, cancel_futures=True)


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0
