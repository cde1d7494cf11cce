"""Streamed writer for the TIFF family (classic, BigTIFF, NDPI layout).

The output is laid out as: header, every IFD with its out-of-line values,
then the image data. Image data is copied from the source file range by
range with ``os.copy_file_range`` (kernel-side, no user-space buffer), so the
cost is that of ``cp`` and memory does not grow with slide size. Only ranges
that a kept IFD references are copied: bytes of removed images, gaps and
orphaned old data never reach the output. A tile may instead be edited
(the stream rule, lossless blanking): its new bytes are described as pieces
(``tiff.edits``: source ranges and a few spilled new bytes) and streamed
after the copied ranges, so edits never accumulate in memory either.

Why not tifftools: its writer copies data through Python buffers
(1.5-1.7x ``cp`` warm, measured in ../shared/research/dependencies.md) and
re-reads the source in its own parser; we already hold a bounded parse and
need the data-region layout for verification anyway.
"""

from __future__ import annotations

import errno
import os
import struct
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

import numpy as np

from ..errors import MalformedFile, WsideidError
from .edits import MEMORY, TileEdits, as_tile_edits
from .spans import array_windows, ordered_spans


@dataclass
class OutEntry:
    """A tag to write; ``raw`` is the value bytes in the output byte order."""

    tag: int
    type: int
    count: int
    raw: bytes


@dataclass
class ImageData:
    """The strips or tiles of one IFD: source ranges plus optional new bytes."""

    offsets_tag: int  # 273 StripOffsets or 324 TileOffsets
    counts_tag: int  # 279 StripByteCounts or 325 TileByteCounts
    src_offsets: np.ndarray  # int64
    src_counts: np.ndarray  # int64
    # index -> new bytes: a TileEdits (pieces, streamed) or, from fixtures, a plain dict
    replaced: Mapping[int, bytes] | TileEdits = field(default_factory=dict)


@dataclass
class OutIfd:
    entries: dict[int, OutEntry]
    data: ImageData | None = None
    children: dict[int, list["OutIfd"]] = field(default_factory=dict)


@dataclass
class WrittenLayout:
    """Where things went; verification uses it only as a cross-check."""

    size: int
    data_start: int
    kind: str
    path: str

    @property
    def new_offsets(self) -> list[np.ndarray]:
        """Per IFD (depth-first order of all IFDs): its strips' or tiles' offsets, as the file
        written says (read back, not kept: a slide's tiles are what grows with it)."""
        from .container import integer_array, read_tiff
        tf = read_tiff(self.path)
        out = []
        for ifd in tf.all_ifds():
            tag = next((t for t in (324, 273) if t in ifd.entries), None)
            out.append(integer_array(ifd.entries[tag], tf.byteorder) if tag is not None else np.zeros(0, np.int64))
        return out


def _align(n: int, a: int = 2) -> int:
    return (n + a - 1) // a * a


class _Layout:
    """Two-pass layout: sizes first, then bytes, so offsets are known up front."""

    def __init__(self, kind: str, bo: str):
        self.kind = kind
        self.bo = bo
        self.entry_size = 20 if kind == "bigtiff" else 12
        self.count_fmt = "Q" if kind == "bigtiff" else "I"
        self.off_fmt = "Q" if kind == "bigtiff" else "I"
        self.head_fmt = "Q" if kind == "bigtiff" else "H"
        self.next_size = 8 if kind in ("bigtiff", "ndpi") else 4
        self.inline_max = 8 if kind == "bigtiff" else 4

    def header_size(self) -> int:
        return {"classic": 8, "bigtiff": 16, "ndpi": 12}[self.kind]

    def is_inline(self, e: OutEntry) -> bool:
        if self.kind == "ndpi" and e.type == 16 and e.count == 1:
            return True  # a 64-bit NDPI offset: low word in the entry, high word in the extension array
        return len(e.raw) <= self.inline_max

    def ifd_block_size(self, entries: list[OutEntry]) -> int:
        n = len(entries)
        size = struct.calcsize(self.head_fmt) + n * self.entry_size + self.next_size
        if self.kind == "ndpi":
            size += 4 * n
        for e in entries:
            if not self.is_inline(e):
                size = _align(size) + len(e.raw)
        return _align(size)


def _flatten(ifds: list[OutIfd]) -> list[OutIfd]:
    out: list[OutIfd] = []

    def walk(i: OutIfd):
        out.append(i)
        for kids in i.children.values():
            for k in kids:
                walk(k)
    for i in ifds:
        walk(i)
    return out


@dataclass
class OutputRecipe:
    """What the output is made of, in order: new metadata, source ranges, edited tiles.

    Lets a caller prove the file written is exactly the plan (``matches``: every
    byte, where verification compares a sample of tiles). ``runs`` is an (n, 2)
    array of (offset, length) in the source; ``edits`` the edited tiles of
    each image in output order.
    """

    meta: bytes | bytearray
    runs: np.ndarray
    edits: list[TileEdits]

    def _pieces(self, fd: int, release: bool = False) -> Iterator[tuple[int | None, int | bytes, int]]:
        """The output's bytes in order: (file descriptor, offset, length) of a range of the
        source ``fd`` or the edits' spill file, or (None, bytes, length) of new bytes.
        ``release``: the metadata bytes are let go once handed over (see ``matches``)."""
        meta = self.meta
        if release:
            self.meta = b""
        yield None, meta, len(meta)
        del meta
        for offset, length in self.runs.tolist():
            yield fd, offset, length
        for te in self.edits:
            for idx in te.indices().tolist():
                for where, off, n in te.pieces(idx):
                    if where == MEMORY:
                        data = te.store.read(where, off, n)
                        yield None, data, len(data)
                    else:
                        yield (fd if where == 0 else te.store.fd(where)), off, n

    def matches(self, fd: int, out_fd: int, update: Callable[[memoryview], object], chunk: int = 1 << 20,
                release: bool = False) -> bool:
        """Whether the file ``out_fd`` holds exactly the output as planned, read once from its
        start to its end: every byte read goes to ``update`` (the file's own hash), and each chunk
        is compared with the plan's bytes (read from the source ``fd`` and the edits' spill file
        into a second buffer). Bytes past the plan are hashed too, and make the file differ.

        Why compared, not hashed: the plan's bytes were hashed beside the copy and the digest
        compared with the file's; comparing the same two byte sequences directly is the same
        proof (equal, byte for byte, not only by digest) for a memcmp of each chunk instead of a
        second BLAKE3 or SHA-256 of the whole slide (0.4-1 CPU s at 2 GB, issue 14).

        ``release``: a recipe compared once lets go of its metadata bytes (they hold the tile
        tables, 16 bytes a tile in a BigTIFF) as soon as they are compared, not when the whole
        file is: read beside verification, the comparison can outlast its peak (issue 14)."""
        want, got = bytearray(chunk), bytearray(chunk)
        wv, gv = memoryview(want), memoryview(got)
        fill = pos = 0
        same = True

        def flush(n: int) -> None:
            nonlocal pos, same
            k = _read_upto(out_fd, gv[:n], pos)
            update(gv[:k])
            pos += k
            same = same and k == n and (want == got if n == chunk else wv[:n].tobytes() == gv[:n].tobytes())

        for src, where, n in self._pieces(fd, release):
            done = 0
            while done < n:
                k = min(n - done, chunk - fill)
                if src is None:
                    wv[fill:fill + k] = where[done:done + k]
                else:
                    k = _read_into(src, wv[fill:fill + k], where + done)
                fill += k
                done += k
                if fill == chunk:
                    flush(chunk)
                    fill = 0
        if fill:
            flush(fill)
        while k := _read_upto(out_fd, gv, pos):  # past the plan: hashed, and not the plan's
            update(gv[:k])
            pos += k
            same = False
        return same


def _read_into(fd: int, view: memoryview, offset: int) -> int:
    """Bytes read into ``view`` from ``offset`` (at least one: a source that ends early is an error)."""
    n = os.preadv(fd, [view], offset)
    if not n:
        raise OSError(0, "source ended early")
    return n


def _read_upto(fd: int, view: memoryview, offset: int) -> int:
    """Bytes read into ``view`` from ``offset``, as many as the file holds up to its length."""
    done = 0
    while done < len(view):
        n = os.preadv(fd, [view[done:]], offset + done)
        if not n:
            break
        done += n
    return done


def write_tiff(src_path: str, dst_path: str, ifds: list[OutIfd], kind: str, bo: str,
               on_recipe=None) -> WrittenLayout:
    """Write ``ifds`` to ``dst_path`` (which must not exist), copying data from ``src_path``.

    ``on_recipe(OutputRecipe)`` is called once the layout is fixed, before
    any byte is written.
    """
    if kind not in ("classic", "bigtiff", "ndpi"):
        raise ValueError(kind)
    flat = _flatten(ifds)
    # 1. Plan the data region: unique source ranges in source order.
    plan = _DataPlan(flat, src_path)
    meta_size = _metadata_size(flat, kind, bo)
    total = meta_size + plan.total
    if kind == "classic" and total >= 2**32:
        kind = "bigtiff"  # classic offsets cannot address it
        meta_size = _metadata_size(flat, kind, bo)
        total = meta_size + plan.total
    data_start = meta_size
    # 2. Fill offsets/bytecounts tags now that positions are known.
    plan.place(data_start, kind, bo)
    meta = _serialize(flat, ifds, kind, bo)
    if len(meta) != meta_size:
        raise AssertionError(f"layout size mismatch {len(meta)} != {meta_size}")
    _drop_tables(flat)
    if on_recipe is not None:
        on_recipe(OutputRecipe(meta, plan.runs, [te for _, te in plan.edits]))
    try:
        fd = os.open(dst_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            with open(src_path, "rb") as src:
                _write_all(fd, meta)
                plan.copy(src.fileno(), fd)
            if os.fstat(fd).st_size != total:
                raise WsideidError(f"output size {os.fstat(fd).st_size} differs from the planned {total} bytes")
        finally:
            os.close(fd)
    except OSError as exc:
        # disk full, read-only or vanished output folder, I/O error: the
        # caller removes the partial file; the user gets one line, not a traceback
        raise WsideidError(f"cannot write the output: {exc.strerror or type(exc).__name__}") from None
    return WrittenLayout(total, data_start, kind, dst_path)


def _drop_tables(flat: list[OutIfd]) -> None:
    """The data tables' values, now in the metadata bytes, let go (8 or 16 bytes a tile that the
    caller's IFDs would otherwise hold through the copy). Written again, an IFD gets its
    tables set anew."""
    for ifd in flat:
        if ifd.data is not None:
            for tag in (ifd.data.offsets_tag, ifd.data.counts_tag):
                e = ifd.entries.get(tag)
                if e is not None and len(e.raw) > 8:
                    ifd.entries[tag] = OutEntry(tag, e.type, e.count, b"")


def _set_array(ifd: OutIfd, tag: int, values: np.ndarray, kind: str, bo: str, offsets: bool) -> None:
    n = len(values)
    if kind == "bigtiff":
        typ, dt = 16, "u8"
    else:
        if values.size and int(values.max()) >= 2**32:
            if kind == "ndpi" and n == 1:
                # NDPI: one strip; the high word goes to the extension array.
                ifd.entries[tag] = OutEntry(tag, 16, 1, struct.pack(bo + "Q", int(values[0])))
                return
            raise WsideidError("image data offset beyond 4 GB in a classic TIFF layout")
        typ, dt = 4, "u4"
    raw = np.asarray(values, dtype=(">" if bo == ">" else "<") + dt).tobytes()
    ifd.entries[tag] = OutEntry(tag, typ, n, raw)


def _metadata_size(flat: list[OutIfd], kind: str, bo: str) -> int:
    lay = _Layout(kind, bo)
    size = lay.header_size()
    for ifd in flat:
        entries = _entries_with_placeholders(ifd, kind, bo)
        size = _align(size) + lay.ifd_block_size(entries)
    return _align(size)


def _entries_with_placeholders(ifd: OutIfd, kind: str, bo: str) -> list[OutEntry]:
    """Entries as they will be written, with data-array and child tags sized correctly."""
    entries = dict(ifd.entries)
    if ifd.data is not None:
        n = len(ifd.data.src_offsets)
        size = 8 if kind == "bigtiff" else 4
        typ = 16 if kind == "bigtiff" else 4
        for tag in (ifd.data.offsets_tag, ifd.data.counts_tag):
            if tag in entries and entries[tag].count == n and len(entries[tag].raw) == n * size:
                continue
            entries[tag] = OutEntry(tag, typ, n, b"\0" * (n * size))
        if kind == "ndpi" and n == 1:
            # a 64-bit single offset is still written as one 4-byte LONG
            for tag in (ifd.data.offsets_tag, ifd.data.counts_tag):
                entries[tag] = OutEntry(tag, 4, 1, b"\0" * 4)
    for tag, kids in ifd.children.items():
        typ, size = (18, 8) if kind == "bigtiff" else (13 if tag == 330 else 4, 4)
        entries[tag] = OutEntry(tag, typ, len(kids), b"\0" * (size * len(kids)))
    return [entries[t] for t in sorted(entries)]


def header_bytes(kind: str, bo: str, first: int) -> bytes:
    if kind == "classic":
        return (b"II" if bo == "<" else b"MM") + struct.pack(bo + "HI", 42, first)
    if kind == "bigtiff":
        return (b"II" if bo == "<" else b"MM") + struct.pack(bo + "HHHQ", 43, 8, 0, first)
    return b"II" + struct.pack("<HQ", 42, first)


def metadata_size(ifds: list[OutIfd], kind: str, bo: str) -> int:
    """Bytes the IFDs and their values take, header excluded."""
    return _metadata_size(_flatten(ifds), kind, bo) - _Layout(kind, bo).header_size()


def serialize_at(ifds: list[OutIfd], kind: str, bo: str, origin: int) -> tuple[bytes, int]:
    """The IFD block to be placed at file offset ``origin`` (8-aligned), and the first IFD's offset.

    Used by in-place mode, which appends new metadata to an existing file and
    points the header at it. Data offsets in ``ifds`` must already be final.
    """
    if origin % 8:
        raise ValueError("origin must be 8-aligned")
    flat = _flatten(ifds)
    for ifd in flat:
        if ifd.data is not None:
            offs = np.array(ifd.data.src_offsets, dtype=np.int64)
            counts = np.array(ifd.data.src_counts, dtype=np.int64)
            _set_array(ifd, ifd.data.offsets_tag, offs, kind, bo, offsets=True)
            _set_array(ifd, ifd.data.counts_tag, counts, kind, bo, offsets=False)
    block, first = _serialize(flat, ifds, kind, bo, origin)
    return block, first


def _serialize(flat: list[OutIfd], top: list[OutIfd], kind: str, bo: str, origin: int | None = None):
    """IFDs and values as bytes; with ``origin`` None the header comes first and bytes start at 0."""
    lay = _Layout(kind, bo)
    # First pass: IFD positions.
    pos = lay.header_size() if origin is None else origin
    base = 0 if origin is None else origin
    positions: dict[int, int] = {}
    for ifd in flat:
        pos = _align(pos)
        positions[id(ifd)] = pos
        pos += lay.ifd_block_size(_entries_with_placeholders(ifd, kind, bo))
    buf = bytearray()
    first = positions[id(top[0])] if top else 0
    if origin is None:
        buf += header_bytes(kind, bo, first)
    next_of: dict[int, int] = {}
    for a, b in zip(top, top[1:]):
        next_of[id(a)] = positions[id(b)]
    for ifd in flat:
        entries = {e.tag: e for e in _entries_with_placeholders(ifd, kind, bo)}
        # real values for data arrays and children
        for tag in ifd.entries:
            if ifd.data is not None and tag in (ifd.data.offsets_tag, ifd.data.counts_tag):
                entries[tag] = ifd.entries[tag]
        for tag, kids in ifd.children.items():
            typ = entries[tag].type
            fmt = "Q" if kind == "bigtiff" else "I"
            entries[tag] = OutEntry(tag, typ, len(kids),
                                    struct.pack(f"{bo}{len(kids)}{fmt}", *[positions[id(k)] for k in kids]))
        ordered = [entries[t] for t in sorted(entries)]
        _pad_to(buf, _align(len(buf)))
        start = base + len(buf)
        if start != positions[id(ifd)]:
            raise AssertionError("IFD position drift")
        n = len(ordered)
        head = struct.pack(bo + lay.head_fmt, n)
        # the entry table is filled in once the values after it are placed: the values go
        # straight into ``buf`` (a tile table copied once, not gathered apart and copied again)
        at = len(buf)
        fixed = len(head) + n * lay.entry_size + lay.next_size + (4 * n if kind == "ndpi" else 0)
        buf += bytes(fixed)
        table = bytearray()
        highs: list[int] = []
        for e in ordered:
            hi = 0
            if kind == "ndpi" and e.type == 16:
                v = struct.unpack("<Q", e.raw)[0]
                field_ = struct.pack("<I", v & 0xFFFFFFFF)
                hi = v >> 32
                typ, count = 4, 1
            elif lay.is_inline(e):
                field_ = bytes(e.raw) + b"\0" * (lay.inline_max - len(e.raw))
                typ, count = e.type, e.count
            else:
                vpos = _align(base + len(buf))
                buf += b"\0" * (vpos - base - len(buf))
                if kind == "ndpi":
                    field_, hi = struct.pack("<I", vpos & 0xFFFFFFFF), vpos >> 32
                else:
                    field_ = struct.pack(bo + lay.off_fmt, vpos)
                buf += e.raw
                typ, count = e.type, e.count
            table += struct.pack(bo + "HH" + lay.count_fmt, e.tag, typ, count) + field_
            highs.append(hi)
        nxt = next_of.get(id(ifd), 0)
        fixed_bytes = head + table + struct.pack(bo + ("Q" if lay.next_size == 8 else "I"), nxt)
        if kind == "ndpi":
            fixed_bytes += struct.pack(f"<{n}I", *highs)
        if len(fixed_bytes) != fixed:
            raise AssertionError("IFD table size drift")
        buf[at:at + fixed] = fixed_bytes
        _pad_to(buf, start - base + lay.ifd_block_size(ordered))
    _pad_to(buf, _align(len(buf)))
    if origin is None:
        return buf  # not copied to bytes: the tile tables are most of it
    return bytes(buf), first


def _pad_to(buf: bytearray, n: int) -> None:
    if len(buf) > n:
        raise AssertionError("layout overflow")
    buf += b"\0" * (n - len(buf))


class _DataPlan:
    """Unique source ranges in source order, then the edited tiles (streamed from their pieces).

    Two paths to the same layout. A well-ordered source (``tiff.spans``: each image's ranges
    ascending and disjoint, the images apart, as writers lay them out) is placed image by image,
    a window of tiles at a time: its ranges in source order are the images' own, one after the
    other, so nothing per tile is gathered or sorted. Anything else (shared tiles, overlaps,
    tiles out of order) gathers every range and sorts them (``_Sorted``), which also words
    the refusal of an overlap."""

    def __init__(self, flat: list[OutIfd], src_path: str):
        self.flat = flat
        self.edits: list[tuple[int, TileEdits]] = []  # (ifd idx, its edited tiles)
        self.copied: dict[int, np.ndarray] = {}  # ifd idx -> its counts with the edited tiles' zeroed
        for k, ifd in enumerate(flat):
            if ifd.data is None:
                continue
            offs = np.asarray(ifd.data.src_offsets, dtype=np.int64)
            cnts = np.asarray(ifd.data.src_counts, dtype=np.int64)
            if offs.shape != cnts.shape:
                raise MalformedFile("strip/tile offsets and byte counts differ in number")
            if (offs < 0).any() or (cnts < 0).any():
                raise MalformedFile("negative image data offset or length")
            copied = cnts
            if len(ifd.data.replaced):
                te = as_tile_edits(ifd.data.replaced, src_path)
                idx = te.indices()
                if len(idx) and (idx[0] < 0 or idx[-1] >= len(offs)):
                    raise AssertionError("an edited tile index lies outside its image")
                copied = cnts.copy()
                copied[idx] = 0
                self.edits.append((k, te))
            self.copied[k] = copied
        self.spans = ordered_spans([(k, self._windows(k)) for k in self.copied])
        self.sorted = _Sorted(flat, self.copied) if self.spans is None else None
        copied_total = (self.sorted.total if self.sorted is not None else
                        sum(int(self.copied[sp.key].sum()) for sp in self.spans))  # type: ignore[union-attr]
        self.total = copied_total + sum(int(te.lengths().sum()) for _, te in self.edits)

    def _windows(self, k: int):
        offs = np.asarray(self.flat[k].data.src_offsets, dtype=np.int64)  # type: ignore[union-attr]
        return lambda: array_windows(offs, self.copied[k])

    def place(self, data_start: int, kind: str, bo: str) -> None:
        """Each image's new offsets and counts set in its entries (the data region starting at
        ``data_start``), and ``runs``, the copy's (offset, length) rows of the source, found."""
        if self.sorted is not None:
            out: list[tuple[np.ndarray, np.ndarray]] = [
                (np.zeros(len(ifd.data.src_offsets), np.int64), np.array(ifd.data.src_counts, dtype=np.int64))
                if ifd.data is not None else (np.zeros(0, np.int64), np.zeros(0, np.int64)) for ifd in self.flat]
            pos, self.runs = self.sorted.assign(data_start, out)
            self.sorted = None
            for k, te in self.edits:
                idx, lens = te.indices(), te.lengths()
                out[k][0][idx] = np.where(lens > 0, pos + _before(lens), 0)
                out[k][1][idx] = lens
                pos += int(lens.sum())
            for ifd, (offs, counts) in zip(self.flat, out):
                if ifd.data is not None:
                    _set_array(ifd, ifd.data.offsets_tag, offs, kind, bo, offsets=True)
                    _set_array(ifd, ifd.data.counts_tag, counts, kind, bo, offsets=False)
            self.copied.clear()
            return
        base, pos = {}, data_start
        for span in self.spans or ():
            base[span.key] = pos
            pos += int(self.copied[span.key].sum())
        edited = dict(self.edits)
        for k in list(self.copied):  # one image at a time, its tables filled a window at a time
            data = self.flat[k].data
            assert data is not None
            offs, cnts = _Table(len(data.src_offsets), kind, bo), _Table(len(data.src_offsets), kind, bo)
            at, where = 0, base.get(k, 0)
            for _, copied in self._windows(k)():
                starts = where + np.cumsum(copied) - copied
                where = int(starts[-1] + copied[-1]) if len(copied) else where
                offs.put(slice(at, at + len(copied)), np.where(copied > 0, starts, 0))
                at += len(copied)
            at = 0
            for _, c in array_windows(np.asarray(data.src_offsets), np.asarray(data.src_counts)):
                cnts.put(slice(at, at + len(c)), np.asarray(c, dtype=np.int64))
                at += len(c)
            te = edited.get(k)
            if te is not None:
                idx, lens = te.indices(), te.lengths()
                offs.put(idx, np.where(lens > 0, pos + _before(lens), 0))
                cnts.put(idx, lens)
                pos += int(lens.sum())
            offs.set(self.flat[k], data.offsets_tag, bo)
            cnts.set(self.flat[k], data.counts_tag, bo)
        self.runs = self._runs_in_order()
        self.copied.clear()

    def _runs_in_order(self) -> np.ndarray:
        """The copy's runs (one row per contiguous stretch of the source) of a well-ordered
        source, found a window at a time: its ranges in source order are the spans' in turn."""
        runs: list[np.ndarray] = []
        run_start, run_end = -1, -1
        for span in self.spans or ():
            for offs, cnts in self._windows(span.key)():
                live = cnts > 0
                s, c = offs[live], cnts[live]
                if not len(s):
                    continue
                brk = np.nonzero(s[1:] != s[:-1] + c[:-1])[0] + 1  # a new run starts there
                first = np.concatenate([[0], brk])
                last = np.append(brk, len(s)) - 1
                rs, re_ = s[first], s[last] + c[last]
                if int(rs[0]) == run_end:  # the window goes on from the last run
                    rs[0] = run_start
                elif run_start >= 0:
                    runs.append(np.array([[run_start, run_end - run_start]], np.int64))
                if len(rs) > 1:
                    runs.append(np.stack([rs[:-1], re_[:-1] - rs[:-1]], axis=1))
                run_start, run_end = int(rs[-1]), int(re_[-1])
        if run_start >= 0:
            runs.append(np.array([[run_start, run_end - run_start]], np.int64))
        return np.concatenate(runs).astype(np.int64) if runs else np.zeros((0, 2), np.int64)

    def copy(self, src_fd: int, dst_fd: int) -> None:
        for offset, length in self.runs.tolist():
            append_range(src_fd, dst_fd, offset, length)
        for _, te in self.edits:
            write_edits(dst_fd, te, src_fd)


class _Sorted:
    """The general path of ``_DataPlan``: every copied range gathered and sorted by source offset;
    identical ranges share one copy, any other overlap is refused."""

    def __init__(self, flat: list[OutIfd], copied: dict[int, np.ndarray]):
        srcs, lens, owners = [], [], []
        for k, cnts in copied.items():
            offs = np.asarray(flat[k].data.src_offsets, dtype=np.int64)  # type: ignore[union-attr]
            idx = np.nonzero(cnts > 0)[0]
            srcs.append(offs[idx])
            lens.append(cnts[idx])
            owners.append(np.stack([np.full(len(idx), k), idx], axis=1))
        self.src = np.concatenate(srcs) if srcs else np.zeros(0, np.int64)
        self.len = np.concatenate(lens) if lens else np.zeros(0, np.int64)
        self.owner = np.concatenate(owners) if owners else np.zeros((0, 2), np.int64)
        order = np.lexsort((self.len, self.src))
        self.src, self.len, self.owner = self.src[order], self.len[order], self.owner[order]
        # identical ranges share one copy; other overlaps are hostile
        if len(self.src):
            same = np.zeros(len(self.src), bool)
            same[1:] = (self.src[1:] == self.src[:-1]) & (self.len[1:] == self.len[:-1])
            ends = self.src + self.len
            prev_end = np.maximum.accumulate(ends)
            overlap = np.zeros(len(self.src), bool)
            overlap[1:] = (self.src[1:] < prev_end[:-1]) & ~same[1:]
            if overlap.any():
                i = int(np.nonzero(overlap)[0][0])
                raise MalformedFile(f"image data ranges overlap at offset {int(self.src[i])} (hostile or corrupt file)")
            self.unique = ~same
        else:
            self.unique = np.zeros(0, bool)
        self.total = int(self.len[self.unique].sum())

    def assign(self, data_start: int, out: list[tuple[np.ndarray, np.ndarray]]) -> tuple[int, np.ndarray]:
        """New offsets of the copied ranges filled into ``out``; (where the edits go, the runs)."""
        ulen = self.len[self.unique]
        ustart = data_start + np.concatenate([[0], np.cumsum(ulen)[:-1]]) if len(ulen) else np.zeros(0, np.int64)
        # map every (possibly duplicate) range to its unique copy's new start
        uidx = np.cumsum(self.unique) - 1
        new_start = ustart[uidx] if len(uidx) else np.zeros(0, np.int64)
        # per image, not per tile: a Python list of 60 000 (image, tile) pairs cost 10 MB that
        # pymalloc kept for the rest of the run (issue 14)
        images, tiles = self.owner[:, 0], self.owner[:, 1]
        for k in np.unique(images).tolist():
            sel = images == k
            out[k][0][tiles[sel]] = new_start[sel]
        return data_start + int(ulen.sum()), _merged_runs(self.src[self.unique], ulen)


def _before(lens: np.ndarray) -> np.ndarray:
    """For each length, the sum of those before it (where it starts, from 0)."""
    return np.cumsum(lens) - lens


class _Table:
    """An image's offsets or counts as the output stores them (LONG, or LONG8 in BigTIFF, in the
    file's byte order), filled a window at a time: what ``_set_array`` writes, without the whole
    table in int64 first. A table of one value keeps ``_set_array``'s own rules (NDPI's single
    64-bit strip offset)."""

    def __init__(self, n: int, kind: str, bo: str):
        self.kind, self.typ = kind, (16 if kind == "bigtiff" else 4)
        code = "u8" if kind == "bigtiff" else "u4"
        self.values = np.zeros(n, np.int64) if n <= 1 else np.zeros(n, np.dtype(code).newbyteorder(bo))

    def put(self, where, values: np.ndarray) -> None:
        if len(self.values) > 1 and len(values) and self.kind != "bigtiff" and int(values.max()) >= 2**32:
            raise WsideidError("image data offset beyond 4 GB in a classic TIFF layout")
        self.values[where] = values

    def set(self, ifd: OutIfd, tag: int, bo: str) -> None:
        n = len(self.values)
        if n <= 1:
            _set_array(ifd, tag, self.values, self.kind, bo, offsets=True)
        else:
            ifd.entries[tag] = OutEntry(tag, self.typ, n, memoryview(self.values).cast("B"))


def _merged_runs(src: np.ndarray, lens: np.ndarray) -> np.ndarray:
    """(offset, length) rows of source ranges in output order, contiguous ones merged."""
    if not len(src):
        return np.zeros((0, 2), np.int64)
    brk = np.ones(len(src), bool)
    brk[1:] = src[1:] != src[:-1] + lens[:-1]
    starts = np.nonzero(brk)[0]
    ends = np.append(starts[1:], len(src))
    csum = np.concatenate([[0], np.cumsum(lens)])
    return np.stack([src[starts], csum[ends] - csum[starts]], axis=1).astype(np.int64)


_BIG_PIECE = 1 << 20  # pieces at least this long go through the kernel; smaller ones are gathered


def write_edits(dst_fd: int, te: TileEdits, src_fd: int | None = None) -> int:
    """Append ``te``'s tiles (ascending index) at ``dst_fd``'s position; returns bytes written.

    Small pieces (rebuilt headers, a tile's entropy-coded data) are gathered
    in one bounded buffer and written together; large ones (a whole-level
    NDPI strip) are copied by the kernel.
    """
    buf = bytearray()
    written = 0
    for idx in te.indices().tolist():
        for where, off, n in te.pieces(idx):
            if where == MEMORY:
                buf += te.store.read(where, off, n)
            elif n >= _BIG_PIECE:
                _write_all(dst_fd, buf)
                buf.clear()
                fd = src_fd if where == 0 and src_fd is not None else te.store.fd(where)
                append_range(fd, dst_fd, off, n)
            else:
                fd = src_fd if where == 0 and src_fd is not None else te.store.fd(where)
                got = os.pread(fd, n, off)
                if len(got) != n:
                    raise MalformedFile(f"source ended early while copying an edited tile at offset {off}")
                buf += got
            written += n
            if len(buf) >= _BIG_PIECE * 4:
                _write_all(dst_fd, buf)
                buf.clear()
    _write_all(dst_fd, buf)
    return written


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


_COPY_CHUNK = 1 << 30


def append_range(src_fd: int, dst_fd: int, offset: int, length: int) -> None:
    """Copy ``length`` bytes at ``offset`` to ``dst_fd``'s position, by the kernel
    (``copy_file_range``) where the file systems allow it, else in bounded chunks.
    The DICOM writer copies pixel data with it too."""
    done = 0
    use_cfr = hasattr(os, "copy_file_range")
    while done < length:
        want = min(length - done, _COPY_CHUNK)
        n = 0
        if use_cfr:
            try:
                n = os.copy_file_range(src_fd, dst_fd, want, offset + done)
            except OSError as exc:
                if exc.errno in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.EPERM):
                    use_cfr = False
                    continue
                raise
        else:
            chunk = os.pread(src_fd, min(want, 8 << 20), offset + done)
            if chunk:
                _write_all(dst_fd, chunk)
            n = len(chunk)
        if n == 0:
            raise MalformedFile(f"source ended early while copying image data at offset {offset + done}")
        done += n
