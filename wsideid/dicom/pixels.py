"""Where the pixel data of an instance lies, without decoding it.

The pixel data element is located and walked at the byte level (item
headers only), so it can be copied into the output unchanged, in chunks,
and compared frame by frame. Nothing here decodes an image.
"""

from __future__ import annotations

import array
import os
import struct
from dataclasses import dataclass, field
from typing import Iterable, Iterator, Sequence

import numpy as np

from ..errors import MalformedFile

PIXEL_TAGS = {(0x7FE0, 0x0010), (0x7FE0, 0x0008), (0x7FE0, 0x0009)}
ITEM, SEQ_END = (0xFFFE, 0xE000), (0xFFFE, 0xE0DD)
COPY_CHUNK = 4 << 20


class Fragments(Sequence[tuple[int, int]]):
    """(offset, length) of each value piece, held as two int64 arrays: 16 bytes a frame.

    A list of tuples took about 120 bytes a frame: 7 MB for a 2 GB instance's 60,000
    frames, held for the input and the output, which took a DICOM run past its 100 MB;
    memory must not grow with the slide. Reads as the list it replaced (indexing and
    iteration give tuples); ``offsets`` and ``lengths`` serve vectorised checks."""

    __slots__ = ("offsets", "lengths")

    def __init__(self, offsets: Iterable[int] | np.ndarray = (), lengths: Iterable[int] | np.ndarray = ()):
        self.offsets = np.asarray(offsets if isinstance(offsets, np.ndarray) else list(offsets), dtype=np.int64)
        self.lengths = np.asarray(lengths if isinstance(lengths, np.ndarray) else list(lengths), dtype=np.int64)

    @classmethod
    def of(cls, pairs: Iterable[tuple[int, int]]) -> "Fragments":
        pairs = list(pairs)
        return cls([o for o, _ in pairs], [n for _, n in pairs])

    def __len__(self) -> int:
        return len(self.offsets)

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice):
            return Fragments(self.offsets[i], self.lengths[i])
        return int(self.offsets[i]), int(self.lengths[i])

    def __iter__(self) -> Iterator[tuple[int, int]]:
        for a in range(0, len(self.offsets), 4096):  # bounded temporaries
            yield from zip(self.offsets[a:a + 4096].tolist(), self.lengths[a:a + 4096].tolist())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Fragments):
            return np.array_equal(self.offsets, other.offsets) and np.array_equal(self.lengths, other.lengths)
        return isinstance(other, (list, tuple)) and list(self) == [tuple(p) for p in other]

    def __repr__(self) -> str:
        return f"Fragments({len(self)} pieces)"


@dataclass
class PixelSpan:
    """The pixel data element at [start, end) of a file."""

    start: int
    end: int
    encapsulated: bool
    fragments: Fragments = field(default_factory=Fragments)  # (offset, length) of each value piece

    def __post_init__(self) -> None:
        if not isinstance(self.fragments, Fragments):
            self.fragments = Fragments.of(self.fragments)

    @property
    def size(self) -> int:
        return self.end - self.start


# Pixel data is OB or OW (float/double pixel data OF/OD): PS3.5 Table 7.1-1 and 8.2.
PIXEL_VRS = {b"OB", b"OW", b"OF", b"OD"}


def read_span(path: str, start: int, implicit: bool, heads: bytearray | None = None) -> PixelSpan | None:
    """Parse the element starting at ``start`` (as left by ``stop_before_pixels``).

    ``heads``: receives the 4 bytes at the start of each fragment (the Basic Offset Table item
    excepted; zero-padded where the file ends first), read with its item header in one
    ``pread``, for ``source.check_fragments``: a second read a fragment (a seek and a buffered
    read that fetched 8 KB for 4 bytes) cost a second of a 2 GB instance's 61,000 frames, twice
    a run (the input, and the output re-read by verification)."""
    size = os.path.getsize(path)
    if start >= size:
        return None
    with open(path, "rb") as fh:
        fh.seek(start)
        head = fh.read(12)
        if len(head) < 8:
            raise MalformedFile("truncated DICOM file (pixel data header cut off)")
        group, elem = struct.unpack("<HH", head[:4])
        if (group, elem) not in PIXEL_TAGS:
            raise MalformedFile("unexpected element where the pixel data should start")
        if implicit:
            (length,), pos = struct.unpack("<I", head[4:8]), start + 8
            if length == 0xFFFFFFFF:
                # encapsulated pixel data needs an explicit VR transfer syntax (PS3.5 A.4)
                raise MalformedFile("encapsulated pixel data under an implicit VR transfer syntax")
        else:
            if len(head) < 12:
                raise MalformedFile("truncated DICOM file (pixel data header cut off)")
            if head[4:6] not in PIXEL_VRS:
                # a sequence (or text) under the pixel data tag would be copied as "pixels",
                # unparsed and unscanned (found by the DICOM fuzzer: a UID published this way)
                raise MalformedFile("the pixel data element has a VR pixel data cannot have")
            (length,), pos = struct.unpack("<I", head[8:12]), start + 12
        if length != 0xFFFFFFFF:
            if pos + length > size:
                raise MalformedFile("truncated DICOM file (pixel data shorter than its length)")
            return PixelSpan(start, pos + length, False, [(pos, length)])
        fd = fh.fileno()
        hinted = _items_by_table(fd, pos, size, heads)
        if hinted is not None:
            end, offsets, lengths = hinted
            return PixelSpan(start, end, True, Fragments(offsets, lengths))
        # item headers by pread: a buffered read after each seek fetched 8 KB for 8 bytes
        offs, lens = array.array("q"), array.array("q")
        first = True
        want = 8 if heads is None else 12
        while True:
            item = os.pread(fd, want, pos)
            if len(item) < 8:
                raise MalformedFile("truncated DICOM file (encapsulated pixel data not terminated)")
            g, e, n = struct.unpack("<HHI", item[:8])
            pos += 8
            if (g, e) == SEQ_END:
                return PixelSpan(start, pos, True, Fragments(np.frombuffer(offs, dtype=np.int64),
                                                             np.frombuffer(lens, dtype=np.int64)))
            if (g, e) != ITEM or n == 0xFFFFFFFF or pos + n > size:
                raise MalformedFile("corrupt encapsulated pixel data (bad item header or length)")
            if not first:
                offs.append(pos)
                lens.append(n)
                if heads is not None:
                    heads += item[8:12].ljust(4, b"\0")
            first = False
            pos += n


_ITEM_HEAD = np.dtype([("group", "<u2"), ("element", "<u2"), ("length", "<u4"), ("value", "V4")])
MAX_TABLE = 4 << 20  # a Basic Offset Table longer than this (a million frames) is not read as a hint
HINT_BATCH = 1 << 15  # item headers gathered at once (a bytes object each while gathered)


def _items_by_table(fd: int, pos: int, size: int, heads: bytearray | None) -> tuple[int, np.ndarray, np.ndarray] | None:
    """(end, offsets, lengths) of the fragments after the Basic Offset Table item at ``pos``, the
    table taken as a hint of where each item header stands; None (walk them one by one) when it
    is empty, longer than ``MAX_TABLE``, or anything does not add up.

    Why: walking 61,000 item headers one ``pread`` at a time in Python cost 0.4 s of a 2 GB
    instance, twice a run (the input, and the output re-read by verification). The hint is
    never trusted: every item header it points at is read (one ``pread`` each, through
    ``map``, ``HINT_BATCH`` at a time: memory stays bounded) and must be an item whose end is
    where the next one starts, the last followed by the sequence delimiter, within the file;
    so the walk would have read exactly these headers, from these offsets, and stopped where
    this stops. A table that lies, a frame split over several fragments, an offset past 4 GB:
    the walk decides, as before."""
    import itertools
    first = os.pread(fd, 8, pos)
    if len(first) < 8:
        return None
    g, e, n = struct.unpack("<HHI", first)
    if (g, e) != ITEM or n == 0 or n % 4 or n > MAX_TABLE or pos + 8 + n > size:
        return None
    table = os.pread(fd, n, pos + 8)
    if len(table) != n:
        return None
    base = pos + 8 + n
    items = np.frombuffer(table, "<u4").astype(np.int64) + base
    del table
    if items[0] != base or (np.diff(items) < 8).any():
        return None
    lengths = np.empty(len(items), np.int64)
    values = bytearray()
    for a in range(0, len(items), HINT_BATCH):
        at = items[a:a + HINT_BATCH]
        joined = b"".join(map(os.pread, itertools.repeat(fd), itertools.repeat(12), at.tolist()))
        if len(joined) != 12 * len(at):
            return None  # a header at the end of the file: the walk says what is wrong
        rec = np.frombuffer(joined, _ITEM_HEAD)
        if not ((rec["group"] == 0xFFFE) & (rec["element"] == 0xE000) & (rec["length"] != 0xFFFFFFFF)).all():
            return None
        lengths[a:a + len(at)] = rec["length"]
        if heads is not None:
            values += rec["value"].tobytes()
    nxt = items + 8 + lengths
    if (nxt > size).any() or (nxt[:-1] != items[1:]).any():
        return None
    last = os.pread(fd, 8, int(nxt[-1]))
    if len(last) < 8 or struct.unpack("<HH", last[:4]) != SEQ_END:
        return None
    if heads is not None:
        heads += values
    return int(nxt[-1]) + 8, items + 8, lengths


def copy_range(src: str, start: int, end: int, dst_fh) -> None:
    """Append src[start:end] to an open file, by the kernel where it can (the TIFF writer's
    ``append_range``). ``dst_fh`` is flushed first, so its own buffered writes and the
    kernel's land in order; its position follows the file descriptor's."""
    from ..tiff.writer import append_range
    dst_fh.flush()
    with open(src, "rb") as fh:
        append_range(fh.fileno(), dst_fh.fileno(), start, end - start)


def same_fragments(a_path: str, a: PixelSpan, b_path: str, b: PixelSpan, sample: int | None,
                   replaced: dict[int, bytes] | None = None) -> tuple[bool, int]:
    """Compare the pixel value pieces of two files; returns (identical, pieces compared).

    ``replaced``: pieces of ``b`` that must hold these bytes instead of ``a``'s
    (blanked frames); they are always compared, whatever the sample.
    """
    replaced = replaced or {}
    if a.encapsulated != b.encapsulated or len(a.fragments) != len(b.fragments):
        return False, 0
    if not a.encapsulated and replaced:
        return _same_native(a_path, a, b_path, b, replaced), len(replaced)
    idx = list(range(len(a.fragments)))
    if sample is not None and len(idx) > sample:
        step = (len(idx) - 1) / (sample - 1)
        idx = sorted({round(i * step) for i in range(sample)} | set(replaced))
    with open(a_path, "rb") as fa, open(b_path, "rb") as fb:
        for i in idx:
            (oa, na), (ob, nb) = a.fragments[i], b.fragments[i]
            if i in replaced:
                want = replaced[i]
                want = want.data if hasattr(want, "data") else want  # a frame edit, its bytes made now
                if os.pread(fb.fileno(), nb, ob) != want:
                    return False, len(idx)
                continue
            if na != nb:
                return False, len(idx)
            done = 0
            while done < na:
                k = min(COPY_CHUNK, na - done)
                if os.pread(fa.fileno(), k, oa + done) != os.pread(fb.fileno(), k, ob + done):
                    return False, len(idx)
                done += k
    return True, len(idx)


def _same_native(a_path: str, a: PixelSpan, b_path: str, b: PixelSpan, replaced: dict) -> bool:
    """Native pixel data with blanked frames: those frames hold the blanked bytes (frame k at
    k x frame length), every other byte is the source's."""
    sizes = {k: (v.size if hasattr(v, "data") else len(v)) for k, v in replaced.items()}
    n = next(iter(sizes.values()))
    (oa, na), (ob, nb) = a.fragments[0], b.fragments[0]
    if na != nb or any(m != n for m in sizes.values()):
        return False
    with open(a_path, "rb") as fa, open(b_path, "rb") as fb:
        pos = 0
        for k in sorted(replaced) + [None]:
            stop = na if k is None else k * n
            while pos < stop:
                step = min(COPY_CHUNK, stop - pos)
                if os.pread(fa.fileno(), step, oa + pos) != os.pread(fb.fileno(), step, ob + pos):
                    return False
                pos += step
            if k is not None:
                want = replaced[k]  # a frame edit's bytes are read now, one frame at a time
                if os.pread(fb.fileno(), n, ob + pos) != (want.data if hasattr(want, "data") else want):
                    return False
                pos += n
    return True
