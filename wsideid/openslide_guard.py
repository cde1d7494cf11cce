"""OpenSlide is opened in this process only after a child process opened the same file and lived.

Why: OpenSlide is a C library, and a hostile file can crash it. An SCN whose main image has no
``objective`` element (or one whose value fails the profile, so the writer drops it) makes
``openslide.OpenSlide()`` dereference NULL: the whole run died with SIGSEGV, no line on stderr,
once on the input (``source_view``, the ``scan`` command) and once on our own output
(verification). A run must end in one line, so the file is first opened by a short-lived child
(``python -I -S``: no wsideid, no site hooks; about 0.1 s); a child killed by a signal, or one
that does not finish, is reported here as ``OpenSlideCrash``, which every caller already treats
as "OpenSlide cannot open it" (input refused, ``reader`` check failed, level not read).

A child that merely fails to open the file (an OpenSlide error, an unclaimed format) exits 0:
the in-process open raises that error again, and the caller judges it as before. Answers are
remembered per file identity (device, inode, size, mtime), so the verifier's second opening of
an output costs nothing.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

from .errors import MalformedFile

TIMEOUT_S = 300  # header parsing of a large NDPI or MIRAX under load; no pixels are read
MAX_REMEMBERED = 64
_CHILD = ("import sys\nsys.path[:0] = sys.argv[2:]\nimport openslide\n"
          "try:\n    openslide.OpenSlide(sys.argv[1]).close()\nexcept Exception:\n    pass\n")
_SEEN: dict[tuple[int, int, int, int], str | None] = {}


class OpenSlideCrash(MalformedFile):
    """OpenSlide crashed (or hung) opening the file in a child process."""


def _paths() -> list[str]:
    """Where openslide and its bundled library live (the child runs without site-packages)."""
    out = []
    for name in ("openslide", "openslide_bin"):
        spec = importlib.util.find_spec(name)
        for loc in (spec.submodule_search_locations or []) if spec else []:
            parent = os.path.dirname(os.path.abspath(loc))
            if parent not in out:
                out.append(parent)
    return out


def _child_verdict(path: str) -> str | None:
    try:
        proc = subprocess.run([sys.executable, "-I", "-S", "-c", _CHILD, path, *_paths()],
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              timeout=TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        return f"OpenSlide did not open it within {TIMEOUT_S} s"
    if proc.returncode < 0:
        return f"OpenSlide crashes opening it (signal {-proc.returncode})"
    if proc.returncode != 0:
        return f"OpenSlide's process ended with {proc.returncode} opening it"
    return None


def check(path: str | os.PathLike) -> None:
    """Raise OpenSlideCrash when OpenSlide cannot open ``path`` without crashing."""
    st = os.stat(path)
    key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
    if key not in _SEEN:
        if len(_SEEN) >= MAX_REMEMBERED:
            _SEEN.pop(next(iter(_SEEN)))
        _SEEN[key] = _child_verdict(os.fspath(path))
    if _SEEN[key]:
        raise OpenSlideCrash(f"{_SEEN[key]} (hostile or corrupt file)")


def open_slide(path: str | os.PathLike):
    """``openslide.OpenSlide(path)`` once a child has opened the file and lived."""
    check(path)
    import openslide
    return openslide.OpenSlide(os.fspath(path))
