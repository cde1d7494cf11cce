"""Tile tables in windows, and the well-ordered layout that needs no global sort of them.

Why: memory must not grow with the slide (issue 14). The layout check, the
writer's data plan and the verifier's gap scan each gathered every strip and
tile of the file into arrays, sorted them and derived more arrays from them
(60-100 bytes a tile at their peaks: 26-43 MB at 430 000 tiles, a 12 GB
slide). Writers lay each image's tiles out in index order, one image after
another; when a file is like that (every image's non-empty ranges strictly
ascending and disjoint, the images' spans disjoint) its ranges in file order
are the images' own windows, taken one after the other, and nothing needs
to be gathered or sorted. ``ordered_spans`` establishes that from windows of
``WINDOW`` tiles (a few bounded arrays); any doubt (an overlap, a duplicate,
a negative or huge value, a count that differs from the offsets') returns
None and the caller takes its general path, which judges and words every
such file as before. The fast path never decides an error, only that there is none
of the kind the general path looks for.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from .container import _NP_TYPES, Entry

WINDOW = 1 << 14  # tiles taken at once: 256 KB of int64 offsets and counts, ~1 MB with what is derived
_HUGE = 1 << 62  # an offset or count beyond this is left to the general path (no int64 wrap)

Windows = Callable[[], Iterator[tuple[np.ndarray, np.ndarray]]]


def entry_windows(offsets: Entry, counts: Entry, byteorder: str, window: int | None = None
                  ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """An IFD's offsets and counts as int64 arrays of at most ``window`` tiles, read from the
    entries' raw bytes a window at a time (``container.integer_array`` converts a whole table)."""
    window = window or WINDOW
    n = min(offsets.count, counts.count)
    if not integer_typed(offsets, counts):
        raise ValueError("entry_windows takes integer tables (see integer_typed)")
    dts = [np.dtype(_NP_TYPES[e.type]).newbyteorder("<" if byteorder == "<" else ">") for e in (offsets, counts)]
    for a in range(0, n, window):
        k = min(window, n - a)
        yield tuple(np.frombuffer(e.raw, dtype=dt, count=k, offset=a * dt.itemsize).astype(np.int64)
                    for e, dt in zip((offsets, counts), dts))  # type: ignore[misc]


def integer_typed(*entries: Entry) -> bool:
    """Whether every entry holds integers (what ``entry_windows`` reads; the rest is refused by
    ``container.integer_array``, with its own words)."""
    return all(e.type in _NP_TYPES for e in entries)


def array_windows(offsets: np.ndarray, counts: np.ndarray, window: int | None = None
                  ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Views of windows of in-memory arrays (no copies)."""
    window = window or WINDOW
    for a in range(0, min(len(offsets), len(counts)), window):
        yield offsets[a:a + window], counts[a:a + window]


@dataclass(frozen=True)
class Span:
    """One image's non-empty ranges, known to be strictly ascending and disjoint."""

    key: int  # the caller's index of the image (an IFD of ``all_ifds()``, of the writer's list)
    first: int  # start of its first non-empty range
    end: int  # end of its last one
    live: int  # non-empty ranges


def span_of(key: int, windows: Iterable[tuple[np.ndarray, np.ndarray]]) -> Span | None | bool:
    """The image's ``Span``; None when it has no non-empty range; False when its ranges are not
    strictly ascending and disjoint, or hold a negative or huge value (the general path's)."""
    prev_end, first, live = -1, -1, 0
    for offs, cnts in windows:
        if len(offs) != len(cnts) or not len(offs):
            return False
        if int(offs.min()) < 0 or int(cnts.min()) < 0 or int(offs.max()) > _HUGE or int(cnts.max()) > _HUGE:
            return False
        m = cnts > 0
        s, c = offs[m], cnts[m]
        if not len(s):
            continue
        e = s + c
        if int(s[0]) < prev_end or bool((s[1:] < e[:-1]).any()):
            return False
        if first < 0:
            first = int(s[0])
        prev_end, live = int(e[-1]), live + len(s)
    return Span(key, first, prev_end, live) if live else None


def ordered_spans(images: Iterable[tuple[int, Windows]]) -> list[Span] | None:
    """The images' spans in file order when every image is well ordered and no two spans share a
    byte; None otherwise. ``images``: (key, a callable giving the image's windows afresh)."""
    spans = []
    for key, windows in images:
        span = span_of(key, windows())
        if span is False:
            return None
        if span is not None:
            spans.append(span)
    spans.sort(key=lambda s: s.first)
    for a, b in zip(spans, spans[1:]):
        if b.first < a.end:
            return None
    return spans


def live_ranges(windows: Iterable[tuple[np.ndarray, np.ndarray]]) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(starts, ends) of the non-empty ranges, window by window."""
    for offs, cnts in windows:
        m = cnts > 0
        s = offs[m]
        yield s, s + cnts[m]


def merged(ranges: Iterable[tuple[np.ndarray, np.ndarray]], few: tuple[np.ndarray, np.ndarray]
           ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Batches of ranges sorted by start across batches: ``ranges`` (already so) with the ``few``
    other ranges (sorted by start) merged in, each before ranges of ``ranges`` starting where it does."""
    fs, fe = few
    at = 0
    for s, e in ranges:
        if not len(s):
            continue
        upto = int(np.searchsorted(fs, s[-1], side="right"))
        if upto > at:
            ms, me = fs[at:upto], fe[at:upto]
            pos = np.searchsorted(s, ms, side="left")
            s, e = np.insert(s, pos, ms), np.insert(e, pos, me)
            at = upto
        yield s, e
    if at < len(fs):
        yield fs[at:], fe[at:]


def uncovered(batches: Iterable[tuple[np.ndarray, np.ndarray]], size: int) -> Iterator[tuple[int, int]]:
    """(from, to) of the bytes of a file of ``size`` that no [start, end) range covers, the ranges
    given in batches sorted by start across batches; a batch at a time (the gaps are never gathered)."""
    covered = 0
    for s, e in batches:
        if not len(s):
            continue
        reach = np.maximum.accumulate(np.concatenate([[covered], e]))
        gap_from, gap_to = reach[:-1], np.minimum(s, size)
        keep = np.nonzero(gap_to > gap_from)[0]
        for k in range(0, len(keep), 4096):  # a gap a tile at worst: no list of them all
            sel = keep[k:k + 4096]
            yield from zip(gap_from[sel].tolist(), gap_to[sel].tolist())
        covered = int(reach[-1])
    if size > covered:
        yield covered, size
