"""The JPEG stream rule applied to every tile and strip of a TIFF-family slide.

Every copied stream must hold only its decoding segments, with nothing after
its first true EOI (``wsideid.jpeg.structure`` states the rule and cleans a
stream). Parsing each of a 2 GB slide's hundreds of thousands of tiles in
Python would dominate the run time, so the common case is checked with
numpy over batched reads, and only tiles that fail the fast check go
through the full parser (and are rewritten by it):

- tiles are read in contiguous batches (BATCH_BYTES at most; memory stays
  flat however large the slide); a tile larger than that is streamed;
- a vectorised walk finds each tile's SOS; each distinct header (SOI..SOS)
  is judged once by the full parser, and every tile's header is compared
  with a judged one byte for byte;
- the entropy-coded data must hold no 0xFF except stuffing (FF 00) and
  restart markers (FF D0-D7) up to the tile's last two bytes, which must be
  the EOI. So the first true EOI is the last two bytes, and a second scan,
  a segment between scans, or text after an EOI (even text ending in
  FF D9) all fail the fast check. Every byte is read: the tail alone would
  not show text followed by FF D9. For tiles back to back, the batch's
  0xFF bytes minus its FF 00 pairs must equal the headers' markers plus one
  EOI per tile (counted in cache-sized slices, no index arrays); any other
  batch is checked marker by marker.

The pipeline splits the work (``rule_edits(deferred=True)``): headers,
where encoders put their comments, are read before writing (one short read
per tile) and their tiles edited; the full check of the other tiles runs
beside the kernel's copy (``check_pending``) and is joined before
verification. That check is handed each tile's header marker count from the
header pass (``Heads.marks``), so a batch of clean tiles is passed by one
count, without walking its headers again (``_counted``). Edits are recorded
as pieces of the source (``tiff.edits``).
"""

from __future__ import annotations

import os
import threading
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from ..errors import WsideidError
from ..jpeg import structure
from ..jpeg.structure import TableKey, UnsafeJpeg

MAX_HEADER_SEGMENTS = 64
MAX_HEADER = 8192  # a tile header (SOI..SOS) longer than this goes through the full parser
BATCH_BYTES = 2 << 20  # bytes read at once per reader thread (4 MB: 10 MB more at the peak beside the detectors, for 14 % less CPU)
BATCH = 4096  # tiles judged at once
GAP = 1 << 16  # tiles further apart than this start a new read
STREAM_CHUNK = BATCH_BYTES
WORKERS = min(2, os.cpu_count() or 1)


def strip_segments(raw: bytes, tables: frozenset[TableKey] = frozenset()) -> bytes:
    """The same JPEG stream reduced to its decoding segments (UnsafeJpeg where that would change pixels)."""
    return structure.clean(raw, tables).data


def clean_tables(raw: bytes, used: set[TableKey] | frozenset[TableKey]) -> bytes:
    """A JPEGTables blob with only the tables some tile uses."""
    return structure.clean_tables(raw, used)


def table_keys(raw: bytes | None) -> frozenset[TableKey]:
    return structure.table_keys(raw) if raw is not None else frozenset()


@dataclass
class TileScan:
    """Tiles that are not already clean, and the JPEGTables slots the clean ones use."""

    flagged: np.ndarray
    external: set[TableKey] = field(default_factory=set)


def tiles_with_segments(path: str, offsets: np.ndarray, counts: np.ndarray,
                        tables: frozenset[TableKey] = frozenset()) -> np.ndarray:
    """Indices of tiles whose stream is not exactly its decoding segments up to its first EOI."""
    return scan_tiles(path, offsets, counts, tables).flagged


def scan_tiles(path: str, offsets: np.ndarray, counts: np.ndarray,
               tables: frozenset[TableKey] = frozenset(), marks: int | np.ndarray | None = None) -> TileScan:
    """Every byte of the tiles read and judged by the rule (``TileScan.flagged``: those the fast
    check does not pass). ``marks``: the tiles' headers were judged clean by ``header_scan``,
    which counted their true markers (``Heads.marks``); batches are then first counted
    without walking their headers again (``_counted``)."""
    from .tileorder import in_file_order, original_index
    live, offs, cnts = in_file_order(offsets, counts)
    if isinstance(marks, np.ndarray) and live is not None:
        marks = marks[live]  # in file order, as the tiles
    res = TileScan(np.zeros(0, np.int64))
    if not len(offs):
        return res
    found: list[np.ndarray] = []
    try:
        with open(path, "rb") as fh:
            fd = fh.fileno()

            def one(sel: slice) -> tuple[np.ndarray, set[TableKey]]:
                ext: set[TableKey] = set()
                if sel.stop - sel.start == 1 and cnts[sel.start] > BATCH_BYTES:
                    ok = _big_tile(fd, int(offs[sel.start]), int(cnts[sel.start]), tables, ext)
                    return np.array([not ok]), ext
                m = marks[sel] if isinstance(marks, np.ndarray) else marks
                return _scan_batch(fd, offs[sel], cnts[sel], tables, ext, m), ext
            # numpy and preadv release the GIL: two threads keep both cores busy;
            # each holds one batch buffer, so memory stays bounded
            batches = _batches(offs, cnts)
            with ThreadPoolExecutor(max_workers=WORKERS) as pool:
                for sel, (bad, ext) in zip(batches, bounded_map(pool, one, batches)):
                    if bad.any():
                        found.append(original_index(live, sel, bad))
                    res.external |= ext
    except OSError as exc:
        raise WsideidError(f"cannot read the slide's image data: {exc.strerror or type(exc).__name__}") from None
    res.flagged = np.sort(np.concatenate(found)) if found else res.flagged
    return res


def bounded_map(pool: ThreadPoolExecutor, fn, items: list, ahead: int = 4 * WORKERS):
    """``pool.map(fn, items)`` with at most ``ahead`` calls submitted and not yet consumed.
    ``Executor.map`` submits every call at once: a future a batch (a lock, a condition and
    the result each), 6 000 of them for a 12 GB slide's level, alive until consumed."""
    pending: deque = deque()
    for item in items:
        pending.append(pool.submit(fn, item))
        if len(pending) >= ahead:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


def _batches(offs: np.ndarray, cnts: np.ndarray) -> list[slice]:
    """Slices of consecutive tiles (sorted by offset) that one read covers."""
    n = len(offs)
    reach = np.maximum.accumulate(offs + cnts)
    breaks = np.flatnonzero(offs[1:] - reach[:-1] > GAP) + 1  # a gap: a new read starts there
    out, i = [], 0
    while i < n:
        j = i + 1
        if cnts[i] <= BATCH_BYTES:
            j = max(j, min(int(np.searchsorted(reach, offs[i] + BATCH_BYTES, "right")), i + BATCH))
            k = int(np.searchsorted(breaks, i, "right"))
            if k < len(breaks):
                j = min(j, int(breaks[k]))
        out.append(slice(i, j))
        i = j
    return out


_scratch = threading.local()


def _read(fd: int, offset: int, size: int) -> np.ndarray:
    """``size`` bytes at ``offset`` in this thread's reusable buffer (fresh
    allocations per batch cost more in page faults than the scan)."""
    buf = getattr(_scratch, "buf", None)
    if buf is None or len(buf) < size:
        buf = _scratch.buf = bytearray(max(size, BATCH_BYTES))
    got = os.preadv(fd, [memoryview(buf)[:size]], offset)
    if got != size:
        raise WsideidError("image data ends before a tile does (the file is truncated)")
    return np.frombuffer(buf, dtype=np.uint8, count=size)


def _flags(n: int) -> np.ndarray:
    """This thread's reusable boolean scratch of at least ``n`` entries: a ``SLICE`` in the common
    case (``_marker_count``), a batch only where tiles are checked marker by marker (4 MB less per
    reader thread while the detectors run beside the copy, issue 14)."""
    m = getattr(_scratch, "mask", None)
    if m is None or len(m) < n:
        m = _scratch.mask = np.empty(max(n, SLICE), bool)
    return m[:n]


def _ff(buf: np.ndarray) -> np.ndarray:
    """True at every 0xFF byte (in the thread's scratch: valid until the next call)."""
    m = _flags(len(buf))
    np.equal(buf, 0xFF, out=m)
    return m


SLICE = 512 << 10  # counted in slices that stay in the CPU cache (1.4x faster than whole batches)


def _marker_count(buf: np.ndarray) -> int:
    """0xFF bytes not followed by 0x00 (the last byte not counted): 0xFF bytes minus FF 00
    pairs, the pairs counted as 16-bit words at even and odd positions on little-endian
    (native: no byte swap) views. No index array is built."""
    m = _flags(SLICE)
    total = 0
    n = len(buf) - 1
    for a in range(0, max(n, 0), SLICE):
        k = min(SLICE, n - a)
        x = buf[a:a + k + 1]  # one byte more: the pair starting at the slice's last byte
        np.equal(x[:k], 0xFF, out=m[:k])
        total += int(np.count_nonzero(m[:k]))
        for start in (0, 1):
            w = (k + 1 - start) // 2
            np.equal(x[start:start + 2 * w].view("<u2"), 0x00FF, out=m[:w])
            total -= int(np.count_nonzero(m[:w]))
    return total


def _true_markers(buf: np.ndarray, ff: np.ndarray) -> np.ndarray:
    """Positions of 0xFF bytes that start a true marker: not stuffing (FF 00), not RSTn.
    ``ff`` is ``_ff(buf)``. A fill byte (FF FF) counts: it may not stand in entropy-coded data."""
    pos = np.flatnonzero(ff[:max(len(buf) - 1, 0)])
    nxt = buf[pos + 1]
    return pos[(nxt != 0) & ((nxt < 0xD0) | (nxt > 0xD7))]


def _scan_batch(fd: int, offs: np.ndarray, cnts: np.ndarray, tables: frozenset[TableKey],
                external: set[TableKey], marks: int | np.ndarray | None = None) -> np.ndarray:
    """Flags for one batch of tiles sorted by offset (True: needs the full parser)."""
    base = int(offs[0])
    buf = _read(fd, base, int((offs + cnts).max()) - base)
    start = offs - base
    end = start + cnts
    if marks is not None and _counted(buf, start, end, marks):
        return np.zeros(len(start), bool)
    ent, bad = _walk(buf, start, end)
    ok = ~bad & (cnts >= 4)
    # entropy-coded data: no true marker before the last two bytes, which are the EOI
    ok &= (buf[np.maximum(end - 2, 0)] == 0xFF) & (buf[np.maximum(end - 1, 0)] == 0xD9)
    clean, expected = _headers(buf, start, ent, ok, tables, external)
    ok &= clean
    # Common case, counted: tiles back to back, and the batch holds exactly the
    # headers' markers plus one EOI per tile, so no entropy-coded data holds one
    # (0xFF bytes minus stuffed FF 00 pairs, no index arrays).
    # Otherwise (restart markers, gaps, a dirty tile) by position.
    if ok.all() and start[0] == 0 and (start[1:] == end[:-1]).all() and buf[-1] != 0xFF:
        if expected >= 0 and _marker_count(buf) == expected + len(start):
            return ~ok
    marks = _true_markers(buf, _ff(buf))
    ok &= np.searchsorted(marks, ent) == np.searchsorted(marks, end - 2)
    return ~ok


def _counted(buf: np.ndarray, start: np.ndarray, end: np.ndarray, marks: int | np.ndarray) -> bool:
    """The batch's common case, decided by one count and no walk (issue 14: the walk and the
    per-tile header lookup were a third of the check's CPU): tiles back to back, each ending
    with FF D9, and the batch's true markers (0xFF bytes minus stuffed FF 00 pairs) exactly
    those of the headers plus one EOI per tile.

    Why the headers need not be walked again: ``marks`` are the true markers of each tile's
    header (SOI .. SOS) that ``header_scan`` judged clean, read from the same offsets of the
    same file, and a header whose last byte is 0xFF has no count (-1: never here). Each tile
    then holds at least its header's markers plus its final EOI, so equality leaves no true
    marker in any entropy-coded data and nothing after the first EOI, which is exactly the
    rule. A header that changed since it was judged is a changed input, which the input guard
    refuses (stat before and after the run), as it does for the kernel's copy, which reads the
    bytes a third time. Anything else (restart markers, gaps, a dirty tile) returns False and
    the batch is walked and judged as before.

    Tiles with bytes between them (a DICOM instance's frames stand between 8-byte item headers
    and pad bytes; issue 14's DICOM round) are counted the same way: every position of the
    batch is a tile's or a gap's, a tile's last byte (D9) starts no pair, so the batch's count
    is the tiles' own counts plus the gaps' (``_gap_markers``: the gap bytes' 0xFF not followed
    by 0x00, the byte after a gap's last being the next tile's first); the gaps' count is taken
    off and the tiles are judged as above. Gaps longer in all than a quarter of the batch are
    walked instead (their index arrays would cost more than the walk)."""
    n = len(start)
    if not n or start[0] != 0 or buf[-1] == 0xFF or end[-1] != len(buf) or (end - start < 4).any():
        return False
    gap = start[1:] - end[:-1]
    if (gap < 0).any():
        return False
    if not ((buf[end - 2] == 0xFF) & (buf[end - 1] == 0xD9)).all():
        return False
    if isinstance(marks, np.ndarray):
        if (marks < 0).any():
            return False
        expected = int(marks.sum())
    else:
        if marks < 0:
            return False
        expected = marks * n
    between = _gap_markers(buf, end[:-1], gap) if gap.any() else 0
    return between is not None and _marker_count(buf) == expected + n + between


def _gap_markers(buf: np.ndarray, gap_start: np.ndarray, gap: np.ndarray) -> int | None:
    """The 0xFF bytes in the gaps ``[gap_start, gap_start + gap)`` not followed by 0x00 (the byte
    after a gap is the next tile's first), as ``_marker_count`` counts them; None when the gaps
    hold more than a quarter of the batch."""
    total = int(gap.sum())
    if total > len(buf) // 4:
        return None
    live = gap > 0
    first, lens = gap_start[live], gap[live]
    idx = np.arange(total, dtype=np.int64) + np.repeat(first - (np.cumsum(lens) - lens), lens)
    return int(np.count_nonzero((buf[idx] == 0xFF) & (buf[idx + 1] != 0)))


_verdicts: dict[tuple[bytes, frozenset], tuple[bool, frozenset, int]] = {}


def _judge(head: bytes, tables: frozenset[TableKey]) -> tuple[bool, frozenset, int]:
    """(header is exactly its decoding segments, JPEGTables slots it uses, its true markers),
    remembered: the tiles of a slide share a handful of headers. The marker count is -1
    where the header's last byte is 0xFF (its pair would straddle the entropy-coded data)."""
    key = (head, tables)
    got = _verdicts.get(key)
    if got is None:
        try:
            c = structure.clean(head + b"\xff\xd9", tables)
            clean, ext = not c.changed, c.external
        except UnsafeJpeg:
            clean, ext = False, frozenset()
        h = np.frombuffer(head, np.uint8)
        marks = -1 if head.endswith(b"\xff") else int(np.count_nonzero((h[:-1] == 0xFF) & (h[1:] != 0)))
        got = (clean, ext, marks)
        if len(_verdicts) > 1024:
            _verdicts.clear()
        _verdicts[key] = got
    return got


def _headers(buf: np.ndarray, start: np.ndarray, ent: np.ndarray, ok: np.ndarray,
             tables: frozenset[TableKey], external: set[TableKey],
             per_tile: np.ndarray | None = None) -> tuple[np.ndarray, int]:
    """Judge each distinct header (SOI..end of SOS) once with the full parser; each tile's
    header is compared byte for byte with a judged one (a dictionary lookup).

    Returns (clean, the true markers all clean headers hold: -1 when unknown); ``per_tile``,
    when given, receives each clean header's true markers (-1 elsewhere)."""
    good = np.zeros(len(start), bool)
    raw = buf.data
    seen: dict[bytes, tuple[bool, int]] = {}
    marks = 0
    for i, (a, b) in enumerate(zip(start.tolist(), ent.tolist())):
        if not ok[i]:
            continue
        head = raw[a:b].tobytes()
        verdict = seen.get(head)
        if verdict is None:
            clean, ext, m = _judge(head, tables)
            if clean:
                external |= ext
            verdict = seen[head] = (clean, m)
        good[i] = verdict[0]
        marks = -1 if marks < 0 or verdict[1] < 0 else marks + verdict[1]
        if per_tile is not None and verdict[0]:
            per_tile[i] = verdict[1]
    return good, marks


def _headers_clean(buf: np.ndarray, start: np.ndarray, ent: np.ndarray, ok: np.ndarray,
                   tables: frozenset[TableKey], external: set[TableKey]) -> np.ndarray:
    return _headers(buf, start, ent, ok, tables, external)[0]


def _walk(buf: np.ndarray, start: np.ndarray, end: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Vectorised walk to each tile's SOS: (entropy start, could not walk).

    Only finds where the scan starts; whether the header is clean is judged
    by the full parser on each distinct header.
    """
    n = len(start)
    bad = ~((end - start >= 4) & (buf[start] == 0xFF) & (buf[np.minimum(start + 1, len(buf) - 1)] == 0xD8))
    pos = start + 2
    ent = np.array(start, copy=True)
    active = ~bad
    limit = np.minimum(end, start + MAX_HEADER)
    for _ in range(MAX_HEADER_SEGMENTS):
        idx = np.nonzero(active)[0]
        if not len(idx):
            break
        p = pos[idx]
        room = p + 4 <= limit[idx]
        bad[idx[~room]] = True
        active[idx[~room]] = False
        idx, p = idx[room], p[room]
        marker = buf[p + 1]
        length = (buf[p + 2].astype(np.int64) << 8) | buf[p + 3]
        broken = (buf[p] != 0xFF) | (marker == 0xFF) | (marker == 0xD9) | (length < 2)
        bad[idx[broken]] = True
        active[idx[broken]] = False
        sos = ~broken & (marker == 0xDA)
        ent[idx[sos]] = p[sos] + 2 + length[sos]
        active[idx[sos]] = False
        pos[idx] = p + 2 + length
    bad |= active  # still walking after MAX_HEADER_SEGMENTS
    bad |= ent > limit
    ent = np.where(bad, start, ent)
    return ent, bad


def _big_tile(fd: int, offset: int, count: int, tables: frozenset[TableKey], external: set[TableKey]) -> bool:
    """The fast check for one tile too large to read at once (NDPI strips), streamed."""
    head = _read(fd, offset, min(count, MAX_HEADER + 4))
    ent, bad = _walk(head, np.zeros(1, np.int64), np.array([len(head)], np.int64))
    if bad[0] or not _headers_clean(head, np.zeros(1, np.int64), ent, np.ones(1, bool), tables, external)[0]:
        return False
    pos, stop = offset + int(ent[0]), offset + count - 2
    while pos < stop:
        n = min(STREAM_CHUNK, stop - pos)
        chunk = _read(fd, pos, n + 1)  # one byte more: the byte after a trailing 0xFF
        if len(_true_markers(chunk, _ff(chunk))):
            return False
        pos += n
    return os.pread(fd, 2, offset + count - 2) == b"\xff\xd9"


IN_MEMORY = 16 << 20  # streams up to this size are parsed from memory, larger ones from the file


@dataclass
class Pending:
    """Tiles of flat IFD ``k`` whose headers are clean and whose every byte is still to be checked."""

    k: int
    indices: np.ndarray | None  # None: every tile of the image, in index order
    offsets: np.ndarray
    counts: np.ndarray
    tables: frozenset[TableKey]
    # true markers in each tile's header as the header pass judged it (``Heads.marks``): an int
    # when every tile's is the same (the usual case, no per-tile array), else one per tile
    marks: int | np.ndarray | None = None


def check_pending(path: str, pending: list[Pending]) -> list[tuple[int, int]]:
    """(IFD, tile) of the pending tiles the rule would change: their entropy-coded data holds a
    marker, or bytes follow their first EOI. Empty: the tiles were rightly copied as they are."""
    dirty: list[tuple[int, int]] = []
    for p in pending:
        flagged = scan_tiles(path, p.offsets, p.counts, p.tables, p.marks).flagged
        if not len(flagged):
            continue
        with open(path, "rb") as fh:
            for j in flagged.tolist():  # not single-scan baseline, or dirty: the full parser decides
                try:
                    changed = structure.reduce(stream_view(fh.fileno(), int(p.offsets[j]), int(p.counts[j])),
                                               p.tables).changed
                except UnsafeJpeg:
                    changed = True  # the exact pass refuses it, with its own message
                if changed:
                    dirty.append((p.k, j if p.indices is None else int(p.indices[j])))
    return dirty


def stream_view(fd: int, offset: int, count: int):
    """A stream's bytes: read whole when small, else a ``FileView`` (memory stays flat)."""
    from ..jpeg.view import FileView
    if count > IN_MEMORY:
        return FileView(fd, offset, count)
    raw = os.pread(fd, count, offset)
    if len(raw) != count:
        raise WsideidError("image data ends before a tile does (the file is truncated)")
    return raw


def rule_edits(path: str, offsets: np.ndarray, counts: np.ndarray, tables: frozenset[TableKey], kind: str,
               edits, k: int, entropy: bool = False, deferred: bool = False) -> None:
    """Record in ``edits.image(k)`` every stream of one image that the rule changes, as pieces.

    JPEG: the fast check picks the streams that are not already exactly
    their decoding segments, and only those are parsed. JPEG 2000 streams
    are each parsed (their headers are short). ``entropy``: remember where
    the first scan's data starts before and after (NDPI restart offsets
    follow it).

    ``deferred``: only the headers are read now (where encoders put their
    comments); tiles with a header that is not clean are parsed and edited,
    and the full check of every other tile's bytes is left in
    ``edits.pending`` for the caller to run beside the write (and to redo
    the edits exactly if it finds a stream the headers did not show).
    """
    from ..jpeg import j2k
    offsets = np.asarray(offsets, dtype=np.int64)
    counts = np.asarray(counts, dtype=np.int64)
    if kind == "j2k":
        pick = np.nonzero(counts > 0)[0]
    elif deferred:
        pick, seen, marks = header_scan(path, offsets, counts, tables)
        te = edits.image(k)
        te.header_tables = set(seen)
        live = np.nonzero(counts > 0)[0]
        if not len(pick) and len(live) == len(counts):  # the usual case: every tile, the image's own arrays (no copies)
            edits.pending.append(Pending(k, None, offsets, counts, tables, marks))
        else:
            keep = ~np.isin(live, pick)
            rest = live[keep]
            if len(rest):
                edits.pending.append(Pending(k, rest, offsets[rest], counts[rest], tables,
                                             pick_marks(marks, np.nonzero(keep)[0])))
    else:  # every byte read now: the tables the clean tiles use come with it (used_tables need not re-read them)
        scan = scan_tiles(path, offsets, counts, tables)
        pick = scan.flagged
        edits.image(k).header_tables = set(scan.external)
    if not len(pick):
        return
    try:
        with open(path, "rb") as fh:
            fd = fh.fileno()
            for i in pick.tolist():
                o, c = int(offsets[i]), int(counts[i])
                raw = stream_view(fd, o, c)
                if kind == "j2k":
                    pieces = j2k.reduce(raw)
                    if pieces != [(0, c)]:
                        edits.image(k).set_pieces(i, pieces, o)
                    continue
                r = structure.reduce(raw, tables)
                if r.changed:  # else a clean stream the fast check cannot judge (progressive, padded)
                    te = edits.image(k)
                    te.set_pieces(i, r.pieces, o)
                    te.external |= r.external
                    if entropy:
                        te.entropy[i] = (r.entropy_start, r.source_entropy_start)
                elif edits.image(k).header_tables is not None:  # unchanged: its tables count as a clean tile's
                    edits.image(k).header_tables |= r.external
    except OSError as exc:
        raise WsideidError(f"cannot read the slide's image data: {exc.strerror or type(exc).__name__}") from None


def reduction_differs(src_path: str, src_offset: int, src_count: int, out_path: str, out_offset: int,
                      out_count: int, kind: str, src_tables: bytes | None, out_tables: bytes | None) -> str | None:
    """None when the output stream is exactly the rule's reduction of the source stream, streamed
    (for streams too large to decode or hold), and the JPEGTables tables it uses are the same
    bytes; else what differs, one line."""
    from ..jpeg import j2k
    from ..jpeg.view import FileView
    try:
        with open(src_path, "rb") as fs, open(out_path, "rb") as fo:
            raw = FileView(fs.fileno(), src_offset, src_count)
            if kind == "j2k":
                pieces, external = j2k.reduce(raw), frozenset()
            else:
                r = structure.reduce(raw, table_keys(src_tables))
                pieces, external = r.pieces, r.external
            pos = 0
            for p in pieces:
                if isinstance(p, tuple):
                    done = 0
                    while done < p[1]:
                        n = min(STREAM_CHUNK, p[1] - done)
                        if pos + n > out_count or raw[p[0] + done:p[0] + done + n] != \
                                os.pread(fo.fileno(), n, out_offset + pos):
                            return "not the rule's reduction of its source"
                        done += n
                        pos += n
                else:
                    if pos + len(p) > out_count or os.pread(fo.fileno(), len(p), out_offset + pos) != p:
                        return "not the rule's reduction of its source"
                    pos += len(p)
            if pos != out_count:
                return "not the rule's reduction of its source"
        if external:
            bodies = []
            for blob in (src_tables, out_tables):
                p = structure._Parser(bytes(blob or b"\xff\xd8\xff\xd9"), frozenset(), True)
                p.run()
                bodies.append({key: t.body for key, t in p.current.items() if t is not None})
            if any(bodies[0].get(key) != bodies[1].get(key) for key in external):
                return "a table it uses from JPEGTables differs"
    except (WsideidError, OSError) as exc:
        return f"does not parse ({type(exc).__name__})"
    return None


HEAD = 2048  # bytes gathered per tile to find the tables it uses


def used_tables(path: str, offsets: np.ndarray, counts: np.ndarray, tables: frozenset[TableKey],
                edited=None) -> set[TableKey]:
    """The JPEGTables slots some tile of an image uses (tiles reference tables by slot).

    Gathers each tile's first HEAD bytes (one pread each, BATCH tiles at a
    time) and judges each distinct header once; a tile whose header does not
    fit, or is not clean, is parsed whole. ``edited`` tiles are judged by
    their new bytes (the rule's reductions by what they recorded).
    """
    from .edits import TileEdits
    edited = edited if edited is not None else {}
    used: set[TableKey] = set()
    if isinstance(edited, TileEdits):
        used |= edited.external
        for i in sorted(edited.opaque):  # new bytes (blanked tiles): parsed, one at a time
            used |= structure.clean(edited[i], tables).external
        if edited.header_tables is not None:  # the planner's header pass already saw every other tile
            return used | edited.header_tables
        done = edited.indices()
    else:
        for data in edited.values():
            used |= structure.clean(data, tables).external
        done = np.array(sorted(edited), dtype=np.int64)
    live = np.setdiff1d(np.nonzero(np.asarray(counts) > 0)[0], done)
    unsure, found, _ = header_scan(path, offsets, counts, tables, live)
    used |= found
    try:
        with open(path, "rb") as fh:
            for i in unsure.tolist():
                used |= structure.reduce(stream_view(fh.fileno(), int(offsets[i]), int(counts[i])), tables).external
    except OSError as exc:
        raise WsideidError(f"cannot read the slide's image data: {exc.strerror or type(exc).__name__}") from None
    return used


HEAD_BATCH = 1024  # tiles whose heads are gathered at once (HEAD bytes each)


def gather_heads(fd: int, offsets: np.ndarray, counts: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(rows, avail): the first ``size`` bytes at each offset, one row of ``size`` bytes per tile,
    and how many of them are the tile's own (its length, or what the file still holds).

    One ``pread`` a tile, called through ``map`` (a loop in C): the per-tile Python of a
    ``preadv`` into slices of one buffer cost as much as the reads (issue 14). A row holds the
    bytes after a short tile too; callers read no further than ``avail``."""
    import itertools
    heads = list(map(os.pread, itertools.repeat(fd), itertools.repeat(size), offsets.tolist()))
    joined = b"".join(heads)
    got = np.full(len(heads), size, np.int64)
    if len(joined) != size * len(heads):  # the end of the file: short rows, padded
        got = np.array([len(h) for h in heads], np.int64)
        joined = b"".join(h.ljust(size, b"\0") for h in heads)
    return np.frombuffer(joined, np.uint8), np.minimum(np.asarray(counts, np.int64), got)


def _common_header(rows: np.ndarray, lengths: np.ndarray, ok: np.ndarray, stride: int) -> tuple[np.ndarray, bytes]:
    """(tiles whose header is byte for byte the first walked tile's, that header): compared as
    rows of a matrix, not one dictionary lookup a tile (a level's tiles share one header)."""
    same = np.zeros(len(ok), bool)
    first = np.flatnonzero(ok)
    if not len(first):
        return same, b""
    i = int(first[0])
    n = int(lengths[i])
    table = rows.reshape(-1, stride)
    head = table[i, :n]
    same = ok & (lengths == n) & (table[:, :n] == head).all(axis=1)
    return same, head.tobytes()


def _walk_rows(rows: np.ndarray, start: np.ndarray, end: np.ndarray, stride: int) -> tuple[np.ndarray, np.ndarray,
                                                                                          np.ndarray, bytes]:
    """``_walk`` of gathered rows (``stride`` bytes each) and ``_common_header``'s (rows, header)
    of the walked ones, without walking the rows whose first bytes are the first walked row's
    whole header (a level's tiles share one header: the walk was a third of ``header_scan``).

    Why those rows get the first row's result: a walk reads only bytes before the end of the SOS
    segment where it stops, and checks room only up to there; a row holding the same ``n`` bytes,
    with at least ``n`` of its own (``end - start``), takes every step the same and stops at ``n``
    too (``n`` is within MAX_HEADER, or the first row would have been judged bad). Those rows are
    exactly ``_common_header``'s: walked, of length ``n``, the same bytes."""
    k = len(start)
    if not k:
        return start.copy(), np.zeros(0, bool), np.zeros(0, bool), b""
    ent0, bad0 = _walk(rows, start[:1], end[:1])
    if bad0[0]:
        ent, bad = _walk(rows, start, end)
        same, head = _common_header(rows, ent - start, ~bad, stride)
        return ent, bad, same, head
    n = int(ent0[0] - start[0])
    table = rows.reshape(-1, stride)
    same = (end - start >= n) & (table[:, :n] == table[0, :n]).all(axis=1)
    ent, bad = start + n, np.zeros(k, bool)
    rest = np.flatnonzero(~same)
    if len(rest):
        ent[rest], bad[rest] = _walk(rows, start[rest], end[rest])
    return ent, bad, same, table[0, :n].tobytes()


class Heads(NamedTuple):
    """What ``header_scan`` found."""

    unsure: np.ndarray  # tiles whose header is not clean or not within HEAD bytes
    used: set[TableKey]  # the JPEGTables slots the clean ones use
    # true markers of each scanned tile's header (-1: unsure), in the order scanned; an int
    # when every scanned tile's header has the same count (one header: no per-tile array)
    marks: int | np.ndarray


def _compact(marks: np.ndarray) -> int | np.ndarray:
    """One int when every tile's count is the same, else the array (2 bytes a tile)."""
    if not len(marks):
        return 0
    first = int(marks[0])
    if (marks == first).all():
        return first
    return marks.astype(np.int16) if marks.max() < (1 << 15) else marks


def pick_marks(marks: int | np.ndarray, positions: np.ndarray) -> int | np.ndarray:
    """``marks`` (as ``Heads.marks``) of the scanned tiles at ``positions``."""
    return marks if isinstance(marks, int) else _compact(marks[positions])


def header_scan(path: str, offsets: np.ndarray, counts: np.ndarray, tables: frozenset[TableKey],
                live: np.ndarray | None = None) -> Heads:
    """Each tile's header (SOI..SOS) from its first HEAD bytes, one read each, judged once per
    distinct header (``Heads``: the tiles whose header is not clean or not within HEAD bytes,
    the JPEGTables slots the clean ones use, each clean header's true markers for the stream
    check's count). Reads a few percent of the data, not every byte."""
    counts = np.asarray(counts, dtype=np.int64)
    offsets = np.asarray(offsets, dtype=np.int64)
    live = np.nonzero(counts > 0)[0] if live is None else np.asarray(live, dtype=np.int64)
    used: set[TableKey] = set()
    unsure: list[np.ndarray] = []
    marks = np.full(len(live), -1, np.int32)
    try:
        with open(path, "rb") as fh:
            fd = fh.fileno()
            for a in range(0, len(live), HEAD_BATCH):
                idx = live[a:a + HEAD_BATCH]
                n = len(idx)
                rows, avail = gather_heads(fd, offsets[idx], counts[idx], HEAD)
                if (avail < np.minimum(counts[idx], HEAD)).any():
                    raise WsideidError("image data ends before a tile does (the file is truncated)")
                start = np.arange(n, dtype=np.int64) * HEAD
                ent, bad, same, head = _walk_rows(rows, start, start + avail, HEAD)
                ok, m = ~bad, marks[a:a + n]
                good = _headers(rows, start, ent, ok & ~same, tables, used, m)[0]
                if same.any():  # one judgement for every tile with the batch's first header
                    clean, ext, hm = _judge(head, tables)
                    if clean:
                        used |= ext
                        good |= same
                        m[same] = hm
                unsure.append(idx[~good])
    except OSError as exc:
        raise WsideidError(f"cannot read the slide's image data: {exc.strerror or type(exc).__name__}") from None
    return Heads(np.concatenate(unsure) if unsure else np.zeros(0, np.int64), used, _compact(marks))
