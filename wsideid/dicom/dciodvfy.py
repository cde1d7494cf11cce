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
