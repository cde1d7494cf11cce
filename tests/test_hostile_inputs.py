"""Findings of the hostile-file harness (tests/test_hostile_cli.py, bench/hostile_soak.py), one
test each: every one failed before its fix (a hang, a traceback, an internal error, stray stderr).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from fuzz.harness import Hang, time_limit
from wsideid.errors import WsideidError
from wsideid.options import DeidOptions
from wsideid.pipeline import deidentify, inspect

SECRET_ENV = {"WSIDEID_SECRET": "hostile-inputs-fixed-secret-0123456789"}


def test_fifo_named_like_a_slide_is_refused_not_waited_on(tmp_path):
    """inspect opened a FIFO to read its magic and blocked until a writer came (a hang)."""
    fifo = tmp_path / "pipe.svs"
    os.mkfifo(fifo)
    try:
        with time_limit(10):
            with pytest.raises(WsideidError, match="not a regular file"):
                inspect(fifo)
    except Hang:
        pytest.fail("inspect waited on a FIFO")


def test_device_named_like_a_slide_is_refused(tmp_path):
    link = tmp_path / "zero.svs"
    link.symlink_to("/dev/zero")
    with time_limit(10), pytest.raises(WsideidError, match="not a regular file"):
        inspect(link)
