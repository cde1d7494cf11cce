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
an output costs nothing. ``start`` begins the child early so it runs beside other work: the
driver starts the input's when it opens the slide, the verifier the output's before its first check.
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
_SEEN: dict[tuple[int, int, int, int], "str | None | subprocess.Popen"] = {}


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


def _key(path: str | os.PathLike) -> tuple[int, int, int, int]:
    st = os.stat(path)
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def _remember(key: tuple[int, int, int, int], value: "str | None | subprocess.Popen") -> None:
    if len(_SEEN) >= MAX_REMEMBERED:
        old = _SEEN.pop(next(iter(_SEEN)))
        if isinstance(old, subprocess.Popen):
            _reap(old)
    _SEEN[key] = value


def _reap(proc: subprocess.Popen) -> str | None:
    try:
        code = proc.wait(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return f"OpenSlide did not open it within {TIMEOUT_S} s"
    if code < 0:
        return f"OpenSlide crashes opening it (signal {-code})"
    if code != 0:
        return f"OpenSlide's process ended with {code} opening it"
    return None


def start(path: str | os.PathLike) -> None:
    """Begin the child's opening of ``path`` now, so it runs beside the caller's other work
    (the driver starts the input's at open, the verifier the output's first); ``check`` waits."""
    try:
        key = _key(path)
    except OSError:
        return  # the caller's own open reports it
    if key not in _SEEN:
        _remember(key, subprocess.Popen([sys.executable, "-I", "-S", "-c", _CHILD, os.fspath(path), *_paths()],
                                        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL))


def check(path: str | os.PathLike) -> None:
    """Raise OpenSlideCrash when OpenSlide cannot open ``path`` without crashing."""
    start(path)
    key = _key(path)
    got = _SEEN.get(key)
    if isinstance(got, subprocess.Popen):
        got = _reap(got)
        _SEEN[key] = got
    if got:
        raise OpenSlideCrash(f"{got} (hostile or corrupt file)")


def open_slide(path: str | os.PathLike):
    """``openslide.OpenSlide(path)`` once a child has opened the file and lived."""
    check(path)
    import openslide
    return openslide.OpenSlide(os.fspath(path))
