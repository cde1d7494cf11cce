"""The header bytes of each compressed tile, strip or frame, for the residual scan.

A JPEG tile is SOI, table and frame segments, SOS, then entropy-coded
data; a JPEG 2000 codestream is SOC, main-header segments, SOT, then SOD
and the bitstream. Everything before the entropy-coded data is metadata a
writer may fill with text (COM, APPn), so the residual scan reads it like
any other non-pixel byte, for every tile, not a sample.

The walk is vectorised over a batch of tiles (one ``pread`` each into one
array), as in ``tiff.jpegsegs``: a level can have hundreds of thousands of
tiles. A header that cannot be walked yields all bytes gathered for the
tile, so the scan errs towards reading more, never less. Data that is
neither JPEG nor JPEG 2000 has no header here (it is all pixel data).
"""

from __future__ import annotations

import os
import struct
from typing import Iterator

import numpy as np

HEAD = 1024  # bytes gathered per tile; longer headers are read again whole
SLACK = 64 * 65538  # the longest header a walk follows
MAX_SEGMENTS = 64
BATCH = 1024


def _walk_one(raw: bytes) -> int:
    """Length of the header in ``raw`` (through SOS or SOD); len(raw) when it cannot be walked."""
    if raw[:2] not in (b"\xff\xd8", b"\xff\x4f"):
        return 0
    j2k = raw[1] == 0x4F
    pos, n = 2, len(raw)
    for _ in range(MAX_SEGMENTS * 4):
        if pos + 2 > n or raw[pos] != 0xFF:
            return n
        marker = raw[pos + 1]
        if j2k and marker == 0x93:  # SOD: the bitstream follows
            return pos + 2
        if pos + 4 > n:
            return n
        length = struct.unpack(">H", raw[pos + 2:pos + 4])[0]
        if length < 2:
            return n
        if not j2k and marker == 0xDA:
            return min(n, pos + 2 + length)
        pos += 2 + length
    return n


def _walk(rows: np.ndarray, start: np.ndarray, avail: np.ndarray, longer: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Header lengths of gathered tiles (0: not JPEG or JPEG 2000), and which need a longer read."""
    n = len(start)
    out = np.zeros(n, np.int64)
    again = np.zeros(n, bool)
    two = avail >= 2
    b0 = np.where(two, rows[start], 0)
    b1 = np.where(two, rows[start + 1], 0)
    jpeg = (b0 == 0xFF) & (b1 == 0xD8)
    j2k = (b0 == 0xFF) & (b1 == 0x4F)
    active = jpeg | j2k
    pos = start + 2
    end = start + avail

    def stop(sel: np.ndarray, length: np.ndarray) -> None:
        out[sel] = length
        active[sel] = False

    for _ in range(MAX_SEGMENTS):
        if not active.any():
            break
        idx = np.nonzero(active)[0]
        p, e = pos[idx], end[idx]
        has2, has4 = p + 2 <= e, p + 4 <= e
        q = np.where(has4, p, np.where(has2, p, start[idx]))
        m0, mk = rows[q], rows[q + 1]
        sod = has2 & (m0 == 0xFF) & j2k[idx] & (mk == 0x93)
        stop(idx[sod], (p + 2 - start[idx])[sod])
        ran_off = ~sod & ~has4
        again[idx[ran_off]] = longer[idx[ran_off]]
        stop(idx[ran_off], avail[idx[ran_off]])  # the tile ends inside its header: scan it all
        go = ~sod & has4
        gi, gp = idx[go], p[go]
        length = (rows[gp + 2].astype(np.int64) << 8) | rows[gp + 3]
        broken = (rows[gp] != 0xFF) | (length < 2)
        stop(gi[broken], avail[gi[broken]])  # not a header we can walk: scan all gathered bytes
        sos = ~broken & jpeg[gi] & (rows[gp + 1] == 0xDA)
        stop(gi[sos], np.minimum(gp[sos] + 2 + length[sos] - start[gi[sos]], avail[gi[sos]]))
        move = ~broken & ~sos
        pos[gi[move]] = gp[move] + 2 + length[move]
    still = np.nonzero(active)[0]
    out[still] = avail[still]  # too many segments: scan all gathered bytes
    return out, again


def stream_headers(path: str, offsets: np.ndarray, counts: np.ndarray) -> Iterator[tuple[int, bytes]]:
    """(file offset, header bytes) of every JPEG or JPEG 2000 tile in the ranges given."""
    for off, head, _ in _headers(path, offsets, counts):
        yield off, head


class HeaderMemo:
    """Tile headers already handed to the residual scan, and the bytes of all headers read.

    The tiles of a slide share a handful of distinct headers (a 2 GB slide: 60 000 tiles,
    one header), and a header identical to one already scanned holds the same needles, so
    it need not be scanned again (0.7 s of a 2 GB slide's verification). Memory is bounded:
    past ``limit`` bytes of distinct headers, new ones are scanned but not remembered.
    """

    def __init__(self, limit: int = 4 << 20):
        self.seen: set[bytes] = set()
        self.kept, self.limit = 0, limit
        self.total = 0  # every header's bytes, repeats included (for the caller's budget)
        self.prev_end = -1  # where the last segment handed to the scanner ended (the caller sets it too)


def distinct_headers(path: str, offsets: np.ndarray, counts: np.ndarray, memo: HeaderMemo) -> Iterator[tuple[int, bytes]]:
    """``stream_headers``, minus headers already scanned that stand apart from other bytes.

    The scanner joins segments that touch, so a header is skipped only when it does not
    start where the last segment handed over ended (``memo.prev_end``: a gap or a tile that
    is all header), and entropy-coded data follows it within its tile (so no later tile's
    bytes would have continued it; the output's tiles do not overlap).

    The tiles of a batch that share its first header are judged as rows of a matrix
    (``_seen_rows``), not one by one in Python: the same tiles skipped, the same headers
    handed over in the same order (issue 14: the per-tile loop was half of this pass).
    """
    for fd, o, c, rows, lengths, again, same in _batches(path, offsets, counts):
        pick = np.nonzero(lengths)[0]
        skip = _seen_rows(memo, o, c, rows, lengths, again, same)
        if skip is not None:
            memo.total += int(lengths[skip].sum())  # counted as the loop counts them (the caller's budget)
            pick = pick[~skip[pick]]
        yield from hand_over(_tiles(fd, o, c, rows, lengths, again, pick), memo)


def hand_over(tiles: Iterator[tuple[int, bytes, int]], memo: HeaderMemo) -> Iterator[tuple[int, bytes]]:
    """The skip rule of ``distinct_headers``, tile by tile: (offset, header) of each tile
    (offset, header, tile length) it does not skip, the memo kept up to date."""
    for off, head, count in tiles:
        memo.total += len(head)
        if off != memo.prev_end and len(head) < count and head in memo.seen:
            continue
        memo.prev_end = off + len(head)
        if memo.kept + len(head) <= memo.limit:
            memo.seen.add(head)
            memo.kept += len(head)
        yield off, head


def _seen_rows(memo: HeaderMemo, o: np.ndarray, c: np.ndarray, rows: np.ndarray, lengths: np.ndarray,
               again: np.ndarray, same: np.ndarray | None = None) -> np.ndarray | None:
    """Tiles of a batch that ``distinct_headers``' loop would skip, found without it (None: let
    the loop judge them all): those whose header is, byte for byte, the batch's first header H
    (``same``, from ``_walk_rows``, when the first tile's header is H; else compared here).

    Why each would be skipped: its header is H (same length, same bytes, within the HEAD bytes
    gathered: no row needs a longer read in such a batch), and H is in ``memo.seen`` when the
    loop reaches it (it was before the batch, or the batch's first header tile, which the loop
    then hands over, adds it: the memo has room for it; that tile itself is left to the loop).
    Entropy-coded data follows its header (``lengths < c``). And the loop's ``prev_end`` when it
    reaches the tile is the one before the batch or the end of a header of this batch handed
    over before it, which is ``o + lengths`` of some tile: a tile whose offset is none of those
    is never where the last segment ended. Skipped tiles change nothing the loop reads
    (``prev_end``, ``seen``, ``kept``); their bytes are added to ``total`` before the batch's
    headers are handed over, so the caller's budget check can only stop sooner, never let more
    through (the final check sees the same total)."""
    if again.any():
        return None
    live = np.flatnonzero(lengths)
    if not len(live):
        return None
    i = int(live[0])
    n = int(lengths[i])
    table = rows.reshape(-1, HEAD)
    head = table[i, :n].tobytes()
    known = head in memo.seen
    if not known and memo.kept + n > memo.limit:
        return None  # the loop would not remember it: every tile with it is handed over
    if same is None or not same[i]:
        same = (lengths == n) & (table[:, :n] == table[i, :n]).all(axis=1)
    else:
        same = same.copy()
    same[i] = known
    ends = np.sort(np.append((o + lengths)[live], memo.prev_end))
    at = np.minimum(np.searchsorted(ends, o), len(ends) - 1)
    return same & (lengths < c) & (ends[at] != o)  # no header handed over before it ends where it starts


def _batches(path: str, offsets: np.ndarray, counts: np.ndarray):
    """(fd, offsets, counts, gathered rows, header lengths, needs a longer read, the rows
    sharing the first row's header or None) per batch of tiles in file order."""
    from .tiff.jpegsegs import gather_heads
    from .tiff.tileorder import in_file_order
    _, offs, cnts = in_file_order(offsets, counts)
    with open(path, "rb") as fh:
        fd = fh.fileno()
        for a in range(0, len(offs), BATCH):
            o, c = offs[a:a + BATCH], cnts[a:a + BATCH]
            rows, avail = gather_heads(fd, o, c, HEAD)
            yield (fd, o, c, rows, *_walk_rows(rows, avail, c > HEAD))


def _walk_rows(rows: np.ndarray, avail: np.ndarray, longer: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """``_walk`` of a batch's gathered rows (lengths, needs a longer read), plus the rows whose
    first bytes are the first row's whole header (None when that row's walk did not end at its
    SOS or SOD): those are not walked, as a level's tiles share one header.

    Why they get the first row's result: a walk reads only bytes before where it stops, and a
    row whose walk ended at SOS/SOD (length ``n`` short of its gathered bytes) stopped because
    of those bytes alone; a row holding the same ``n`` bytes, with at least ``n`` of its own
    (``avail``), takes every step the same and stops at ``n`` too (each step's room checks
    ask for bytes before ``n``), never asking for a longer read."""
    n_rows = len(avail)
    start = np.arange(n_rows, dtype=np.int64) * HEAD
    if not n_rows:
        return np.zeros(0, np.int64), np.zeros(0, bool), None
    first, _ = _walk(rows, start[:1], avail[:1], longer[:1])
    n = int(first[0])
    if not 0 < n < int(avail[0]):
        return (*_walk(rows, start, avail, longer), None)
    table = rows.reshape(-1, HEAD)
    same = (avail >= n) & (table[:, :n] == table[0, :n]).all(axis=1)
    lengths, again = np.full(n_rows, n, np.int64), np.zeros(n_rows, bool)
    rest = np.flatnonzero(~same)
    if len(rest):
        lengths[rest], again[rest] = _walk(rows, start[rest], avail[rest], longer[rest])
    return lengths, again, same


def _tiles(fd: int, o: np.ndarray, c: np.ndarray, rows: np.ndarray, lengths: np.ndarray, again: np.ndarray,
           pick: np.ndarray | None = None) -> Iterator[tuple[int, bytes, int]]:
    """(file offset, header bytes, tile length) of a batch's tiles with a header (``pick``: those)."""
    buf = rows.data
    ol, cl, ll, al = o.tolist(), c.tolist(), lengths.tolist(), again.tolist()  # no numpy scalar a tile
    for i in (np.nonzero(lengths)[0] if pick is None else pick).tolist():
        if al[i]:
            raw = os.pread(fd, min(cl[i], SLACK), ol[i])
            yield ol[i], raw[:_walk_one(raw)], cl[i]
        else:
            s = i * HEAD
            yield ol[i], bytes(buf[s:s + ll[i]]), cl[i]


def _headers(path: str, offsets: np.ndarray, counts: np.ndarray) -> Iterator[tuple[int, bytes, int]]:
    """(file offset, header bytes, tile length), tiles in file order."""
    for batch in _batches(path, offsets, counts):
        yield from _tiles(*batch[:6])


PIECE = 4 << 20


def read_range(fd: int, start: int, end: int) -> Iterator[tuple[int, bytes]]:
    """(offset, bytes) of ``[start, end)`` in pieces of at most ``PIECE`` bytes, for a scanner
    that joins back-to-back pieces (memory stays bounded however large the range)."""
    pos = start
    while pos < end:
        data = os.pread(fd, min(PIECE, end - pos), pos)
        if not data:
            return
        yield pos, data
        pos += len(data)
