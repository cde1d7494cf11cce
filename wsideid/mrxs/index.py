"""Index.dat: where each image record lives (data file number, offset, length).

Layout, as OpenSlide's mirax reader walks it: "01.02" and the SLIDE_ID, then
two int32 pointers, to the hierarchical table (one pointer per zoom level of
HIER_0, each to a list head ``0, first page``; a page is ``count, next,
count x (image index, offset, length, file)``) and to the non-hierarchical
table (one pointer per record, each to ``0, page``; the page is
``1, next, 0, 0, offset, length, file``). All little-endian int32.

The reader bounds every pointer by the file, follows page chains without
revisiting a page, and caps the record count by the slide budget; the writer
lays out a fresh index that holds only the records the plan keeps, so
nothing of the source index (its unused slack, dropped layers' pages)
reaches the output.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass

from ..budget import MAX_SEGMENTS
from ..errors import MalformedFile

VERSION = b"01.02"


class IndexError_(MalformedFile):
    """Index.dat does not hold what Slidedat.ini says it does."""


@dataclass(frozen=True)
class Record:
    """One image record in a data file; ``image`` is the hierarchical image index (-1 nonhier)."""

    fileno: int
    offset: int
    length: int
    image: int = -1


class _Reader:
    """Index.dat as bytes, or an open descriptor read with ``pread`` where the walk goes: only the
    pages it follows are read (the file was read whole, up to 64 MB: a sparse Index.dat of 60 MB
    cost 60 MB of RSS), and a file cut while it is read gives short reads, not a SIGBUS (a map)."""

    def __init__(self, data: bytes | int):
        self.data = data
        self.size = len(data) if isinstance(data, bytes) else os.fstat(data).st_size

    def read(self, pos: int, n: int) -> bytes:
        if isinstance(self.data, bytes):
            return self.data[pos:pos + n]
        return os.pread(self.data, n, pos) if n > 0 and pos >= 0 else b""

    def i32(self, pos: int, what: str) -> int:
        raw = self.read(pos, 4) if pos >= 0 else b""
        if len(raw) != 4:
            raise IndexError_(f"Index.dat: {what} points outside the file")
        return struct.unpack("<i", raw)[0]


def _check_record(rec: Record, what: str) -> Record:
    if rec.offset < 0 or rec.length <= 0 or rec.fileno < 0 or rec.image < -1:
        raise IndexError_(f"Index.dat: {what} has a negative or empty extent")
    return rec


def read_index(data: bytes | int, slide_id: str, zoom_levels: int, nonhier_records: int
               ) -> tuple[list[list[Record]], list[Record]]:
    """The records of each zoom level of HIER_0, and every non-hierarchical record in order.
    ``data``: the file's bytes, or a descriptor open on it."""
    sid = slide_id.encode("ascii", "replace")
    r = _Reader(data)
    if r.read(0, len(VERSION) + len(sid)) != VERSION + sid:
        raise IndexError_("Index.dat does not start with 01.02 and the slide's SLIDE_ID")
    hier_root = len(VERSION) + len(sid)
    table = r.i32(hier_root, "the hierarchical root")
    levels: list[list[Record]] = []
    total = 0
    for level in range(zoom_levels):
        head = r.i32(table + 4 * level, f"zoom level {level}")
        if r.i32(head, f"zoom level {level} list") != 0:
            raise IndexError_(f"Index.dat: zoom level {level} list does not start with 0")
        page = r.i32(head + 4, f"zoom level {level} first page")
        seen: set[int] = set()
        recs: list[Record] = []
        while True:
            if page in seen:
                raise IndexError_(f"Index.dat: zoom level {level} pages loop")
            seen.add(page)
            count, nxt = r.i32(page, "page length"), r.i32(page + 4, "next page")
            total += max(count, 0)
            if count < 0 or total > MAX_SEGMENTS or page + 8 + 16 * count > r.size:
                raise IndexError_(f"Index.dat: zoom level {level} page length {count} is out of bounds")
            raw = r.read(page + 8, 16 * count)
            if len(raw) != 16 * count:
                raise IndexError_(f"Index.dat: zoom level {level} page is cut short")
            for k in range(count):
                image, off, length, fileno = struct.unpack_from("<4i", raw, 16 * k)
                recs.append(_check_record(Record(fileno, off, length, image), f"zoom level {level} record {k}"))
            if nxt == 0:
                break
            page = nxt
        levels.append(recs)
    nonhier: list[Record] = []
    table = r.i32(hier_root + 4, "the non-hierarchical root")
    for k in range(nonhier_records):
        head = r.i32(table + 4 * k, f"non-hierarchical record {k}")
        if r.i32(head, f"non-hierarchical record {k} list") != 0:
            raise IndexError_(f"Index.dat: non-hierarchical record {k} list does not start with 0")
        page = r.i32(head + 4, f"non-hierarchical record {k} page")
        if r.i32(page, "page length") != 1 or r.i32(page + 8, "record") != 0 or r.i32(page + 12, "record") != 0:
            raise IndexError_(f"Index.dat: non-hierarchical record {k} page is not one record")
        off, length, fileno = (r.i32(page + 16 + 4 * j, "record field") for j in range(3))
        nonhier.append(_check_record(Record(fileno, off, length), f"non-hierarchical record {k}"))
    return levels, nonhier


def build_index(slide_id: str, levels: list[list[Record]], nonhier: list[Record]) -> bytes:
    """A fresh Index.dat holding exactly these records (one page per zoom level)."""
    out = bytearray(VERSION + slide_id.encode("ascii"))
    roots = len(out)
    out += bytes(8)

    def table(pages: list[bytes]) -> int:
        """A table of pointers, each to a list head ``0, page`` followed by its page."""
        at = len(out)
        out.extend(bytes(4 * len(pages)))
        for k, page in enumerate(pages):
            head = len(out)
            struct.pack_into("<i", out, at + 4 * k, head)
            out.extend(struct.pack("<2i", 0, head + 8) + page)
        return at

    hier_table = table([struct.pack("<2i", len(recs), 0) +
                        b"".join(struct.pack("<4i", r.image, r.offset, r.length, r.fileno) for r in recs)
                        for recs in levels])
    nonhier_table = table([struct.pack("<7i", 1, 0, 0, 0, r.offset, r.length, r.fileno) for r in nonhier])
    struct.pack_into("<2i", out, roots, hier_table, nonhier_table)
    return bytes(out)
