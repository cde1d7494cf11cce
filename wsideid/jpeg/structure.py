"""The structural rule for every JPEG stream the tool copies.

A JPEG stream that leaves the tool holds only what a decoder needs: SOI, the
DQT/DHT tables some scan actually uses, SOF, the DRI each scan runs under,
each SOS with its entropy-coded data (ECS) and restart markers, and EOI.
Everything else (APPn, COM, unused or overridden tables, DNL that is not
needed, EXP/DHP/JPGn/reserved markers, fill bytes, bytes after the first
true EOI) is a place where text can hide, so it is dropped. Two APP
segments can change decoded colours and are rebuilt in a canonical form
that carries no free bytes: JFIF APP0 (its presence tells libjpeg a
3-component image is YCbCr) and Adobe APP14 (its transform flag says RGB or
YCbCr); both only count before the first scan, as in libjpeg, and never in
a TIFF JPEGTables blob (libjpeg forgets them at the tile's own SOI).

Where dropping would change decoded pixels the stream is refused with
UnsafeJpeg: undefined tables, frame types no common decoder reads
(hierarchical, arithmetic), a restart marker outside a scan, fill bytes
inside entropy-coded data.

Supported: baseline/extended sequential (SOF0/1), progressive (SOF2),
lossless (SOF3), and JPEG-LS (SOF55, used by DICOM), each with any number
of scans; for tables redefined between progressive scans, each definition
is judged by the scans that run while it is in force.

The ECS ends at the first 0xFF not followed by 0x00 or RST0-7 (JPEG-LS: not
followed by a byte below 0x80 or RSTn), which is the first true marker.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass, field

from ..errors import MalformedFile
from . import view
from .view import FileView, Piece

SOI, EOI, SOS, DQT, DHT, DRI, DNL, COM, APP0, APP14 = 0xD8, 0xD9, 0xDA, 0xDB, 0xC4, 0xDD, 0xDC, 0xFE, 0xE0, 0xEE
SOF_BASELINE, SOF_EXTENDED, SOF_PROGRESSIVE, SOF_LOSSLESS, SOF_LS, LSE = 0xC0, 0xC1, 0xC2, 0xC3, 0xF7, 0xF8
SUPPORTED_SOF = {SOF_BASELINE: "baseline", SOF_EXTENDED: "extended", SOF_PROGRESSIVE: "progressive",
                 SOF_LOSSLESS: "lossless", SOF_LS: "JPEG-LS"}
REFUSED_SOF = {0xC5: "hierarchical", 0xC6: "hierarchical progressive", 0xC7: "hierarchical lossless",
               0xC9: "arithmetic-coded", 0xCA: "arithmetic-coded progressive", 0xCB: "arithmetic-coded lossless",
               0xCD: "arithmetic-coded hierarchical", 0xCE: "arithmetic-coded hierarchical progressive",
               0xCF: "arithmetic-coded hierarchical lossless", 0xCC: "arithmetic-coded (DAC)", 0xF9: "JPEG-LS (SOF57)"}
MAX_SEGMENTS = 4096  # a stream with more marker segments than this is not one a scanner wrote

# First true marker after entropy-coded data.
_ECS_END = re.compile(rb"\xff[^\x00\xd0-\xd7]")
_ECS_END_LS = re.compile(rb"\xff[\x80-\xcf\xd8-\xff]")

CANONICAL_JFIF = b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"


class UnsafeJpeg(MalformedFile):
    """A JPEG stream that cannot be reduced to its decoding segments without changing its pixels."""


TableKey = tuple[str, int]  # ("q"|"dc"|"ac"|"dri", slot)


@dataclass
class Reduction:
    """A stream reduced to its decoding segments, as pieces of its source (``view.Piece``).

    Scans (SOS and entropy-coded data) and segments kept byte for byte are
    source ranges, so a cleaned stream costs a few numbers, not its bytes.
    """

    pieces: list[Piece]
    size: int
    changed: bool
    sof: int
    external: frozenset[TableKey]  # tables used from a preloaded JPEGTables blob
    entropy_start: int  # offset of the first scan's ECS in the cleaned stream
    source_entropy_start: int  # the same in the input


@dataclass
class Cleaned:
    """A stream reduced to its decoding segments."""

    data: bytes
    changed: bool
    sof: int
    external: frozenset[TableKey]  # tables used from a preloaded JPEGTables blob
    entropy_start: int  # offset of the first scan's ECS in ``data``
    source_entropy_start: int  # the same in the input


@dataclass
class _Table:
    key: TableKey
    body: bytes
    used: bool = False


@dataclass
class _Seg:
    """One output piece: fixed bytes, or a table segment emitted with its used tables only.

    ``at``: where these bytes stand in the source, if they are its bytes
    there (-1: rebuilt); ``span``: a scan, kept as the source range itself.
    """

    raw: bytes = b""
    marker: int = 0
    tables: list[_Table] = field(default_factory=list)
    at: int = -1
    span: tuple[int, int] | None = None

    def emit(self) -> bytes:
        if not self.tables and not self.marker:
            return self.raw
        if self.marker == DRI:
            t = self.tables[0]
            return b"\xff\xdd\x00\x04" + t.body if t.used else b""
        body = b"".join(t.body for t in self.tables if t.used)
        return bytes((0xFF, self.marker)) + struct.pack(">H", len(body) + 2) + body if body else b""


def _dqt(body: bytes) -> list[_Table]:
    out, a = [], 0
    while a < len(body):
        pq, tq = body[a] >> 4, body[a] & 15
        size = 1 + (128 if pq == 1 else 64)
        if pq > 1 or tq > 3 or a + size > len(body):
            raise UnsafeJpeg("JPEG quantisation table segment is malformed")
        out.append(_Table(("q", tq), body[a:a + size]))
        a += size
    return out


def _dht(body: bytes) -> list[_Table]:
    out, a = [], 0
    while a < len(body):
        if a + 17 > len(body):
            raise UnsafeJpeg("JPEG Huffman table segment is malformed")
        tc, th = body[a] >> 4, body[a] & 15
        total = sum(body[a + 1:a + 17])
        if tc > 1 or th > 3 or total > 256 or a + 17 + total > len(body):
            raise UnsafeJpeg("JPEG Huffman table segment is malformed")
        out.append(_Table(("ac" if tc else "dc", th), body[a:a + 17 + total]))
        a += 17 + total
    return out


def _canonical_adobe(body: bytes) -> bytes:
    if len(body) < 12 or body[:5] != b"Adobe":
        raise UnsafeJpeg("JPEG Adobe APP14 segment is malformed")
    version = body[5:7] if body[5:7] in (b"\x00\x64", b"\x00\x65") else b"\x00\x64"
    if body[11] > 2:
        raise UnsafeJpeg(f"JPEG Adobe APP14 has an unknown colour transform {body[11]}")
    return b"\xff\xee\x00\x0e" + b"Adobe" + version + b"\x00\x00\x00\x00" + bytes((body[11],))


def _canonical_jfif(body: bytes) -> bytes:
    version = body[5:7] if body[5:7] in (b"\x01\x00", b"\x01\x01", b"\x01\x02") else b"\x01\x01"
    return b"\xff\xe0\x00\x10" + b"JFIF\x00" + version + CANONICAL_JFIF[7:]


class _Parser:
    def __init__(self, raw: bytes | FileView, preloaded: frozenset[TableKey], tables_only: bool):
        self.raw, self.n = raw, len(raw)
        self.out: list[_Seg] = [_Seg(b"\xff\xd8", at=0)]
        self.current: dict[TableKey, _Table | None] = {k: None for k in preloaded}  # None: from JPEGTables
        self.external: set[TableKey] = set()
        self.tables_only = tables_only
        self.sof = 0
        self.comps: dict[int, int] = {}  # component id -> quantisation slot
        self.latched: set[int] = set()
        self.height = -1
        self.scans = 0
        self.app0: _Seg | None = None
        self.app14: _Seg | None = None
        self.entropy_start = -1
        self.source_entropy_start = -1
        self.sos_len = 0
        self.first_scan_piece = 0
        self.dnl = False

    def marker_at(self, pos: int) -> tuple[int, int]:
        """(marker, position after it), skipping fill bytes (which are not copied)."""
        if pos >= self.n:
            raise UnsafeJpeg("JPEG stream ends without an end marker (EOI)")
        if self.raw[pos] != 0xFF:
            raise UnsafeJpeg(f"JPEG marker expected at byte {pos}")
        while pos < self.n and self.raw[pos] == 0xFF:
            pos += 1
        if pos >= self.n:
            raise UnsafeJpeg("JPEG stream ends without an end marker (EOI)")
        return self.raw[pos], pos + 1

    def run(self) -> int:
        raw = self.raw
        if raw[:2] != b"\xff\xd8":
            raise UnsafeJpeg("a stream declared JPEG does not start with a JPEG start marker (SOI)")
        pos = 2
        for _ in range(MAX_SEGMENTS):
            marker, pos = self.marker_at(pos)
            if marker == EOI:
                self.out.append(_Seg(b"\xff\xd9", at=pos - 2))
                return pos
            if marker == SOI or 0xD0 <= marker <= 0xD7 or marker == 0x01:
                raise UnsafeJpeg(f"JPEG marker 0xFF{marker:02X} stands outside entropy-coded data")
            if pos + 2 > self.n:
                raise UnsafeJpeg("JPEG stream is truncated in a segment length")
            length = (raw[pos] << 8) | raw[pos + 1]
            if length < 2 or pos + length > self.n:
                raise UnsafeJpeg(f"JPEG segment 0xFF{marker:02X} has a bogus length")
            body = raw[pos + 2:pos + length]
            start = pos - 2
            pos += length
            if marker == SOS:
                pos = self.scan(start, body, pos)
            else:
                before = len(self.out)
                self.segment(marker, body)
                for seg in self.out[before:]:
                    seg.at = start  # emitted as a source range where its bytes are the source's there
        raise UnsafeJpeg("JPEG stream has too many segments")

    def segment(self, marker: int, body: bytes) -> None:
        if marker in (DQT, DHT):
            tables = _dqt(body) if marker == DQT else _dht(body)
            for t in tables:
                self.current[t.key] = t
            self.out.append(_Seg(marker=marker, tables=tables))
        elif marker == DRI:
            if len(body) != 2:
                raise UnsafeJpeg("JPEG DRI segment is malformed")
            t = _Table(("dri", 0), body)
            self.current[t.key] = t
            self.out.append(_Seg(marker=DRI, tables=[t]))
        elif marker in SUPPORTED_SOF:
            if self.tables_only:
                raise UnsafeJpeg("JPEGTables holds a frame header, not only tables")
            if self.sof:
                raise UnsafeJpeg("JPEG stream has two frame headers")
            self.frame(marker, body)
            self.out.append(_Seg(bytes((0xFF, marker)) + struct.pack(">H", len(body) + 2) + body))
        elif marker in REFUSED_SOF or 0xC0 <= marker <= 0xCF:
            raise UnsafeJpeg(f"{REFUSED_SOF.get(marker, 'unknown')} JPEG (0xFF{marker:02X}) is not supported")
        elif marker == LSE and self.sof == SOF_LS:
            _check_lse(body)
            self.out.append(_Seg(b"\xff\xf8" + struct.pack(">H", len(body) + 2) + body))  # LS parameters: numbers
        elif marker == APP0 and body[:5] == b"JFIF\x00" and not self.scans and not self.tables_only:
            if self.app0 is None:
                self.app0 = _Seg(_canonical_jfif(body))
                self.out.append(self.app0)
        elif marker == APP14 and body[:5] == b"Adobe" and not self.scans and not self.tables_only:
            if self.app14 is not None:
                self.app14.raw = b""  # the last one before the first scan counts (libjpeg)
            self.app14 = _Seg(_canonical_adobe(body))
            self.out.append(self.app14)
        elif marker == DNL:
            if len(body) != 2:
                raise UnsafeJpeg("JPEG DNL segment is malformed")
            if self.height == 0 and self.scans == 1 and not self.dnl:
                self.dnl = True  # the frame height is only here: needed to decode
                self.out.append(_Seg(b"\xff\xdc\x00\x04" + body))
        # everything else (APPn, COM, EXP, DHP, JPGn, reserved) carries no pixels: dropped

    def frame(self, marker: int, body: bytes) -> None:
        if len(body) < 6 or body[5] == 0 or len(body) != 6 + 3 * body[5]:
            raise UnsafeJpeg("JPEG frame header (SOF) is malformed")
        self.sof = marker
        self.height = (body[1] << 8) | body[2]
        for i in range(body[5]):
            cid, hv, tq = body[6 + 3 * i:9 + 3 * i]
            if cid in self.comps or (marker != SOF_LS and (tq > 3 or not (1 <= hv >> 4 <= 4 and 1 <= hv & 15 <= 4))):
                raise UnsafeJpeg("JPEG frame header (SOF) has invalid components")
            self.comps[cid] = tq

    def use(self, key: TableKey) -> None:
        if key not in self.current:
            raise UnsafeJpeg(f"JPEG scan uses a {'quantisation' if key[0] == 'q' else 'Huffman'} table "
                             f"({key[0]}{key[1]}) that is never defined")
        t = self.current[key]
        if t is None:
            self.external.add(key)
        else:
            t.used = True

    def scan(self, start: int, body: bytes, pos: int) -> int:
        if self.tables_only:
            raise UnsafeJpeg("JPEGTables holds a scan, not only tables")
        if not self.sof:
            raise UnsafeJpeg("JPEG scan before the frame header")
        ns = body[0] if body else 0
        if ns == 0 or len(body) != 4 + 2 * ns:
            raise UnsafeJpeg("JPEG scan header (SOS) is malformed")
        ss, ah = body[1 + 2 * ns], body[3 + 2 * ns] >> 4
        for i in range(ns):
            cid, t = body[1 + 2 * i], body[2 + 2 * i]
            if cid not in self.comps:
                raise UnsafeJpeg("JPEG scan names a component the frame lacks")
            if self.sof == SOF_LS:
                continue  # JPEG-LS: no quantisation or Huffman tables
            if self.sof == SOF_LOSSLESS:
                self.use(("dc", t >> 4))
                continue
            if cid not in self.latched:  # libjpeg latches a component's table at its first scan
                self.latched.add(cid)
                self.use(("q", self.comps[cid]))
            if self.sof != SOF_PROGRESSIVE:
                self.use(("dc", t >> 4))
                self.use(("ac", t & 15))
            elif ss == 0:
                if ah == 0:
                    self.use(("dc", t >> 4))
            else:
                self.use(("ac", t & 15))
        if ("dri", 0) in self.current:
            self.use(("dri", 0))
        end = self.ecs_end(pos)
        if self.scans == 0:
            self.source_entropy_start = pos
            self.sos_len = pos - start
            self.first_scan_piece = len(self.out)
        self.scans += 1
        self.out.append(_Seg(span=(start, end - start)))
        return end

    def ecs_end(self, pos: int) -> int:
        """Where the entropy-coded data from ``pos`` ends: its first true marker.

        A run of fill bytes before a restart marker stays inside the data
        (T.81 B.1.1.2; the NDPI blanker pads re-encoded intervals so, to keep
        McuStarts valid); before any other marker the run ends the data and
        is dropped; before 0x00 it is a trick decoders skip, and is refused.
        """
        rx = _ECS_END_LS if self.sof == SOF_LS else _ECS_END
        while True:
            end = view.search(self.raw, rx, pos)
            if end < 0:
                raise UnsafeJpeg("JPEG entropy-coded data is not terminated by a marker (truncated?)")
            if self.raw[end + 1] != 0xFF:
                return end
            k = end
            while k < self.n and self.raw[k] == 0xFF:
                k += 1
            if k < self.n and 0xD0 <= self.raw[k] <= 0xD7:
                pos = k + 1
                continue
            if k < self.n and self.raw[k] == 0x00:
                raise UnsafeJpeg("JPEG entropy-coded data holds fill bytes before stuffed data")
            return end

    def result(self, end: int) -> Reduction:
        if not self.tables_only and not self.scans:
            raise UnsafeJpeg("JPEG stream has no scan")
        pieces: list[Piece] = []
        head = 0
        for i, s in enumerate(self.out):
            if i == self.first_scan_piece and self.scans:
                head = view.size(pieces)
            if s.span is not None:
                pieces.append(s.span)
                continue
            b = s.emit()
            # kept exactly as the source has it there: a source range (verified, not assumed)
            pieces.append((s.at, len(b)) if b and s.at >= 0 and self.raw[s.at:s.at + len(b)] == b else b)
        pieces = view.merge(pieces)
        if self.scans:
            self.entropy_start = head + self.sos_len
        size = view.size(pieces)
        changed = not (size == self.n and pieces == [(0, self.n)])
        return Reduction(pieces, size, changed, self.sof, frozenset(self.external), self.entropy_start,
                         self.source_entropy_start)


def clean(raw: bytes, preloaded: frozenset[TableKey] = frozenset()) -> Cleaned:
    """``raw`` reduced to its decoding segments (raises UnsafeJpeg where that would change pixels).

    ``preloaded``: tables a TIFF JPEGTables blob defines before this stream;
    the ones a scan uses are reported in ``Cleaned.external``.
    """
    raw = bytes(raw)
    r = reduce(raw, preloaded)
    data = raw if not r.changed else view.join(raw, r.pieces)
    return Cleaned(data, r.changed, r.sof, r.external, r.entropy_start, r.source_entropy_start)


def reduce(raw: bytes | FileView, preloaded: frozenset[TableKey] = frozenset()) -> Reduction:
    """``clean`` as pieces of ``raw``, which may be a file range too large to hold."""
    p = _Parser(raw, frozenset(preloaded), False)
    return p.result(p.run())


def table_keys(tables: bytes) -> frozenset[TableKey]:
    """The tables a JPEGTables blob defines (the blob must be tables only)."""
    p = _Parser(bytes(tables), frozenset(), True)
    p.run()
    return frozenset(k for k in p.current if k[0] != "dri")  # a tile's SOI resets the restart interval


def clean_tables(tables: bytes, used: frozenset[TableKey] | set[TableKey]) -> bytes:
    """A JPEGTables blob with only the tables some tile of its image uses (last definition of each slot)."""
    p = _Parser(bytes(tables), frozenset(), True)
    p.run()
    for key, t in p.current.items():
        if t is not None and key in used and key[0] != "dri":
            t.used = True
    return b"".join(s.emit() for s in p.out)


def is_clean(raw: bytes, preloaded: frozenset[TableKey] = frozenset()) -> bool:
    """Whether ``raw`` already holds nothing but its decoding segments."""
    try:
        return not clean(raw, preloaded).changed
    except UnsafeJpeg:
        return False


def _check_lse(body: bytes) -> None:
    """A JPEG-LS LSE segment is kept only as numbers of its exact size: preset coding parameters
    (ID 1: five 16-bit values) or oversize dimensions (ID 4: a width byte and two values of that
    width). Mapping tables (ID 2, 3) are byte arrays of any content no WSI writer uses, and any byte
    past a segment's values is free text: both refused (an over-long LSE was published verbatim)."""
    if body[:1] == b"\x01" and len(body) == 11:
        return
    if body[:1] == b"\x04" and len(body) >= 2 and 2 <= body[1] <= 4 and len(body) == 2 + 2 * body[1]:
        return
    raise UnsafeJpeg("JPEG-LS LSE segment is not preset parameters or dimensions of their exact size")
