"""Marker-segment parser for baseline JPEG (T.81 Annex B).

Reads everything from SOI up to the start of the entropy-coded data of the
(single) scan, optionally merged with a TIFF JPEGTables blob, and locates
the end of the entropy-coded data. It never interprets pixels and never
trusts a length field without checking it against the bytes available, so
hostile input ends in JpegBlankingError, not in a hang or a huge allocation.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .errors import JpegBlankingError

SOI, EOI, SOS, DQT, DHT, DRI, DNL, COM = 0xD8, 0xD9, 0xDA, 0xDB, 0xC4, 0xDD, 0xDC, 0xFE
SOF0, SOF1 = 0xC0, 0xC1
APP14 = 0xEE

# Frame types this library refuses, with the reason given to the user.
_UNSUPPORTED_SOF = {
    0xC2: "progressive",
    0xC3: "lossless",
    0xC5: "hierarchical",
    0xC6: "hierarchical progressive",
    0xC7: "hierarchical lossless",
    0xC9: "arithmetic-coded",
    0xCA: "arithmetic-coded progressive",
    0xCB: "arithmetic-coded lossless",
    0xCD: "arithmetic-coded hierarchical",
    0xCE: "arithmetic-coded hierarchical progressive",
    0xCF: "arithmetic-coded hierarchical lossless",
}

# A marker that ends entropy-coded data: 0xFF followed by anything except
# 0x00 (stuffing), 0xFF (fill) and RST0-7 (which stay inside the scan).
_END_OF_ENTROPY = re.compile(rb"\xff[^\x00\xff\xd0-\xd7]")


@dataclass
class Component:
    """One frame component joined with the tables its scan selects."""

    ident: int
    h: int
    v: int
    tq: int
    td: int = -1
    ta: int = -1


@dataclass
class HuffmanSpec:
    """A DHT table as transmitted: code counts per length and the symbols."""

    counts: tuple[int, ...]  # 16 entries: number of codes of length 1..16
    symbols: bytes


@dataclass
class JpegHeader:
    """What blanking needs to know about one baseline JPEG image."""

    width: int
    height: int
    components: list[Component]  # frame order
    quant: dict[int, tuple[int, ...]]  # slot -> 64 values in zigzag order
    dc_tables: dict[int, HuffmanSpec]
    ac_tables: dict[int, HuffmanSpec]
    restart_interval: int
    entropy_start: int  # offset of the first entropy-coded byte
    entropy_end: int  # offset of the marker that ends the scan (EOI, DNL...)
    adobe_transform: int | None = None
    jfif: bool = False
    scan_components: list[Component] = field(default_factory=list)  # coding order


def _segments(data: bytes, start: int):
    """Yield (marker, payload_start, payload_end) from ``start`` until SOS or EOI.

    For SOS the payload is the scan header; the caller stops there. Fill
    bytes (0xFF runs) before a marker are skipped as T.81 B.1.1.2 allows.
    """
    n = len(data)
    pos = start
    while True:
        if pos >= n:
            raise JpegBlankingError("JPEG header truncated before the scan")
        if data[pos] != 0xFF:
            raise JpegBlankingError(f"JPEG marker expected at byte {pos}")
        while pos < n and data[pos] == 0xFF:
            pos += 1
        if pos >= n:
            raise JpegBlankingError("JPEG header truncated before the scan")
        marker = data[pos]
        pos += 1
        if marker == EOI:
            yield marker, pos, pos
            return
        if marker == SOI or 0xD0 <= marker <= 0xD7 or marker == 0x01:
            raise JpegBlankingError(f"unexpected JPEG marker 0xFF{marker:02X} in header")
        if pos + 2 > n:
            raise JpegBlankingError("JPEG header truncated in a segment length")
        length = (data[pos] << 8) | data[pos + 1]
        if length < 2 or pos + length > n:
            raise JpegBlankingError(f"JPEG segment 0xFF{marker:02X} has a bogus length")
        yield marker, pos + 2, pos + length
        if marker == SOS:
            return
        pos += length


def _parse_dqt(data: bytes, a: int, b: int, quant: dict) -> None:
    while a < b:
        pq, tq = data[a] >> 4, data[a] & 15
        if pq != 0:
            raise JpegBlankingError("16-bit quantisation tables are not baseline (12-bit JPEG?)")
        if tq > 3 or a + 65 > b:
            raise JpegBlankingError("JPEG DQT segment is malformed")
        quant[tq] = tuple(data[a + 1 : a + 65])
        if 0 in quant[tq]:
            raise JpegBlankingError("JPEG quantisation table holds a zero")
        a += 65


def _parse_dht(data: bytes, a: int, b: int, dc: dict, ac: dict) -> None:
    while a < b:
        if a + 17 > b:
            raise JpegBlankingError("JPEG DHT segment is malformed")
        tc, th = data[a] >> 4, data[a] & 15
        counts = tuple(data[a + 1 : a + 17])
        total = sum(counts)
        if tc > 1 or th > 3 or total > 256 or a + 17 + total > b:
            raise JpegBlankingError("JPEG DHT segment is malformed")
        (ac if tc else dc)[th] = HuffmanSpec(counts, bytes(data[a + 17 : a + 17 + total]))
        a += 17 + total


def _parse_tables_only(tables: bytes, quant: dict, dc: dict, ac: dict) -> None:
    """Read a TIFF JPEGTables blob: SOI, DQT/DHT (and harmless others), EOI."""
    if len(tables) < 4 or tables[:2] != b"\xff\xd8":
        raise JpegBlankingError("JPEGTables does not start with SOI")
    for marker, a, b in _segments(tables, 2):
        if marker == DQT:
            _parse_dqt(tables, a, b, quant)
        elif marker == DHT:
            _parse_dht(tables, a, b, dc, ac)
        elif marker == SOS or 0xC0 <= marker <= 0xCF and marker not in (DHT, 0xC8, 0xCC):
            raise JpegBlankingError("JPEGTables holds a frame or scan, not only tables")


def as_bytes(data) -> bytes:
    """``data`` as bytes, or JpegBlankingError for anything not bytes-like."""
    if isinstance(data, bytes):
        return data
    if isinstance(data, (bytearray, memoryview)):
        return bytes(data)
    raise JpegBlankingError("JPEG data must be bytes")


def parse(data: bytes, tables: bytes | None = None, height: int | None = None) -> JpegHeader:
    """Parse the header of a single-scan baseline JPEG.

    ``tables`` is a JPEGTables blob whose DQT/DHT apply first (tables in
    ``data`` override them, as libjpeg does). ``height`` supplies the
    number of lines when the SOF says 0 (NDPI) and no DNL follows the scan.
    """
    data = as_bytes(data)
    if len(data) < 4 or data[:2] != b"\xff\xd8":
        raise JpegBlankingError("not a JPEG stream (no SOI)")
    quant: dict[int, tuple[int, ...]] = {}
    dc: dict[int, HuffmanSpec] = {}
    ac: dict[int, HuffmanSpec] = {}
    if tables is not None:
        _parse_tables_only(as_bytes(tables), quant, dc, ac)
    frame = None
    restart = 0
    adobe = None
    jfif = False
    scan = None
    for marker, a, b in _segments(data, 2):
        if marker == EOI:
            raise JpegBlankingError("JPEG stream ends before any scan")
        if marker == DQT:
            _parse_dqt(data, a, b, quant)
        elif marker == DHT:
            _parse_dht(data, a, b, dc, ac)
        elif marker == DRI:
            if b - a != 2:
                raise JpegBlankingError("JPEG DRI segment is malformed")
            restart = (data[a] << 8) | data[a + 1]
        elif marker in (SOF0, SOF1):
            if frame is not None:
                raise JpegBlankingError("JPEG stream has two frame headers")
            frame = _parse_sof(data, a, b)
        elif marker in _UNSUPPORTED_SOF:
            raise JpegBlankingError(
                f"{_UNSUPPORTED_SOF[marker]} JPEG is not supported (baseline Huffman only)"
            )
        elif marker == 0xCC:
            raise JpegBlankingError("arithmetic-coded JPEG is not supported (baseline Huffman only)")
        elif marker == APP14 and b - a >= 12 and data[a : a + 5] == b"Adobe":
            adobe = data[a + 11]
        elif marker == 0xE0 and data[a : a + 5] == b"JFIF\x00":
            jfif = True
        elif marker == SOS:
            scan = (a, b)
    if frame is None:
        raise JpegBlankingError("JPEG stream has no baseline frame header (SOF0/SOF1)")
    width, sof_height, comps = frame
    scan_components = _parse_sos(data, scan[0], scan[1], comps)
    for c in scan_components:
        if c.tq not in quant:
            raise JpegBlankingError(f"JPEG quantisation table {c.tq} is missing")
        if c.td not in dc or c.ta not in ac:
            raise JpegBlankingError("JPEG Huffman table referenced by the scan is missing")
    start = scan[1]
    m = _END_OF_ENTROPY.search(data, start)
    end = m.start() if m else len(data)
    if m is None:
        raise JpegBlankingError("JPEG entropy data is not terminated by a marker (truncated?)")
    if sof_height == 0:
        sof_height = _dnl_height(data, end) or (height or 0)
        if sof_height <= 0:
            raise JpegBlankingError("JPEG height is 0 (DNL) and no height was supplied")
    if width == 0:
        raise JpegBlankingError("JPEG width is 0")
    return JpegHeader(
        width=width,
        height=sof_height,
        components=comps,
        quant=quant,
        dc_tables=dc,
        ac_tables=ac,
        restart_interval=restart,
        entropy_start=start,
        entropy_end=end,
        adobe_transform=adobe,
        jfif=jfif,
        scan_components=scan_components,
    )


def _parse_sof(data: bytes, a: int, b: int):
    if b - a < 6:
        raise JpegBlankingError("JPEG SOF segment is malformed")
    precision = data[a]
    if precision != 8:
        raise JpegBlankingError(f"{precision}-bit JPEG is not supported (8-bit baseline only)")
    height = (data[a + 1] << 8) | data[a + 2]
    width = (data[a + 3] << 8) | data[a + 4]
    nf = data[a + 5]
    if nf == 0 or b - a != 6 + 3 * nf:
        raise JpegBlankingError("JPEG SOF segment is malformed")
    comps = []
    for i in range(nf):
        p = a + 6 + 3 * i
        h, v = data[p + 1] >> 4, data[p + 1] & 15
        if not (1 <= h <= 4 and 1 <= v <= 4) or data[p + 2] > 3:
            raise JpegBlankingError("JPEG SOF has invalid sampling factors or table slot")
        comps.append(Component(ident=data[p], h=h, v=v, tq=data[p + 2]))
    if len({c.ident for c in comps}) != nf:
        raise JpegBlankingError("JPEG SOF repeats a component id")
    return width, height, comps


def _parse_sos(data: bytes, a: int, b: int, comps: list[Component]) -> list[Component]:
    ns = data[a] if b > a else 0
    if ns == 0 or b - a != 4 + 2 * ns:
        raise JpegBlankingError("JPEG SOS segment is malformed")
    ss, se, ahal = data[a + 1 + 2 * ns], data[a + 2 + 2 * ns], data[a + 3 + 2 * ns]
    if (ss, se, ahal) != (0, 63, 0):
        raise JpegBlankingError("JPEG scan is not sequential (Ss/Se/Ah/Al)")
    if ns != len(comps):
        raise JpegBlankingError("multi-scan JPEG is not supported (one scan must hold all components)")
    by_id = {c.ident: c for c in comps}
    out = []
    for i in range(ns):
        cid, t = data[a + 1 + 2 * i], data[a + 2 + 2 * i]
        if cid not in by_id:
            raise JpegBlankingError("JPEG scan names a component the frame lacks")
        c = by_id.pop(cid)
        c.td, c.ta = t >> 4, t & 15
        out.append(c)
    blocks_per_mcu = sum(c.h * c.v for c in out) if ns > 1 else 1
    if blocks_per_mcu > 10:
        raise JpegBlankingError("JPEG MCU has more than 10 blocks")
    return out


def _dnl_height(data: bytes, end: int) -> int:
    """Height from a DNL segment right after the scan, or 0 if there is none."""
    if data[end + 1 : end + 2] == bytes([DNL]) and end + 6 <= len(data):
        return (data[end + 4] << 8) | data[end + 5]
    return 0


APP0 = 0xE0


def with_adobe_transform(data: bytes, transform: int | None) -> bytes:
    """``data`` (a complete stream) with its JFIF and Adobe markers replaced by one Adobe
    marker saying ``transform`` (0: the components are RGB, 1: YCbCr; None: no marker).

    For libjpeg's transcoder only (``transcode.transcoded``): the colour space libjpeg
    infers from these markers decides which Huffman table each component gets when it codes
    the image again (RGB: table 0 for all three, as Aperio writes; YCbCr: table 1 for
    chroma). Coefficients are the same either way; nothing of this reaches an output.
    """
    out = [data[:2]]
    if transform is not None:
        out.append(b"\xff\xee\x00\x0eAdobe\x00\x64\x00\x00\x00\x00" + bytes((transform,)))
    for marker, a, b in _segments(data, 2):
        if marker == SOS:
            out.append(data[a - 4 :])
            return b"".join(out)
        if marker == EOI:
            break
        if marker not in (APP0, APP14):
            out.append(data[a - 4 : b])
    raise JpegBlankingError("JPEG has no scan")
