"""Give freed memory back to the system between the stages of a run (glibc only).

Why: a run must stay <= 100 MB of RSS on a real slide (issue 17), and its
stages peak one after the other (residual detectors, then verification).
Without this, memory a stage freed stayed in the process: glibc raises its
mmap threshold after the first large ``free`` (so later numpy arrays come
from the heap and fragment it), and the residual thread's allocations live
in a malloc arena of their own that the main thread never reuses. The next
stage's peak then stacked on 15-20 MB of freed-but-held memory.

``tune`` fixes the mmap threshold (arrays of at least ``MMAP_THRESHOLD``
are mapped and unmapped on their own); ``release`` trims every arena
(``malloc_trim``). Elsewhere than glibc both do nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from functools import lru_cache

M_MMAP_THRESHOLD = -3  # mallopt parameter (glibc malloc.h)
MMAP_THRESHOLD = 2 << 20  # 512 KB freed no more on real slides and cost 0.2-0.3 s CPU in page faults


@lru_cache(maxsize=1)
def _libc():
    name = ctypes.util.find_library("c")
    if not name:
        return None
    try:
        libc = ctypes.CDLL(name)
        libc.malloc_trim, libc.mallopt  # noqa: B018 - glibc only
    except (OSError, AttributeError):
        return None
    return libc


def tune(threshold: int = MMAP_THRESHOLD) -> None:
    """Fixed mmap threshold: blocks of ``threshold`` bytes or more go back to the system when freed."""
    libc = _libc()
    if libc is not None:
        libc.mallopt(M_MMAP_THRESHOLD, threshold)


def release() -> None:
    """Return the free memory of every malloc arena to the system."""
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)
