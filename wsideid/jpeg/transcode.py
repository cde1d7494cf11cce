"""Blanking through libjpeg-turbo's lossless transcoder, where it proves itself.

The walk (``blank.Blanker.reencode``) reads every Huffman code of a tile in pure Python,
about 5 ms per 256 x 256 tile, nearly all of the time a 2000 x 2000 px region takes.
``transcoded`` makes the same bytes in about 1 ms: libjpeg-turbo (``turbo``) decodes the
tile's coefficients once and codes them twice, unchanged and with the region's blocks
flat. The unchanged coding is the proof; see ``transcoded`` for when the path applies and
what is checked. Anything it cannot prove returns None and the walk decides, with its own
errors, so the output and the refusals are the walk's (tests/test_jpeg_transcode.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import turbo
from .errors import JpegBlankingError
from .markers import JpegHeader, parse, with_adobe_transform

if TYPE_CHECKING:  # blank imports this module (lazily); the walk's Blanker is only a type here
    from .blank import Blanker

# libjpeg holds every block of the image while transcoding it (2 bytes per coefficient):
# tiles and frames go that way, not whole NDPI levels or big strips, which the walk handles
# interval by interval.
TRANSCODE_MAX_BLOCKS = 65536  # a 1024 x 1024 4:4:4 frame has 49152 (6 MB of coefficients)
TRANSCODE_MAX_BYTES = 4 << 20
_EVERY_DC_STEP = [(-2047, 2047)]  # dcplan.allowed_steps of DC categories 0..11
# Huffman table slots (DC, AC) per component that libjpeg's encoder assigns, and the Adobe
# transform that makes it do so: greyscale and RGB use slot 0 throughout, YCbCr slot 1 for
# chroma.
_LIBJPEG_USAGE = {
    ((0, 0),): None,
    ((0, 0), (0, 0), (0, 0)): 0,
    ((0, 0), (1, 1), (1, 1)): 1,
}
# Huffman tables (per scan component) libjpeg does not code with (it writes the standard
# ones): tiles with them go straight to the walk. A plain bounded dict, like blank._FLAT.
_OTHER_TABLES: dict[tuple, bool] = {}


def _tables_key(hdr: JpegHeader) -> tuple:
    """The DC and AC Huffman tables of each scan component, as comparable values."""
    def spec(t):
        return None if t is None else (t.counts, t.symbols)
    return tuple((spec(hdr.dc_tables.get(c.td)), spec(hdr.ac_tables.get(c.ta))) for c in hdr.scan_components)


def _spliced(data: bytes, tables: bytes | None) -> bytes | None:
    """A complete stream: an abbreviated tile with its JPEGTables put in (tables first, so the
    tile's own tables still override them, as ``markers.parse`` reads them)."""
    if tables is None:
        return data
    if not (tables[:2] == b"\xff\xd8" and tables[-2:] == b"\xff\xd9" and data[:2] == b"\xff\xd8"):
        return None
    return b"\xff\xd8" + tables[2:-2] + data[2:]


def transcoded(bl: Blanker, data: bytes, tables: bytes | None, mask: bytearray) -> bytes | None:
    """The image with the masked MCUs blanked, its entropy data coded by libjpeg-turbo
    (``turbo.blank_blocks``), or None where that path does not apply or does not prove
    itself (the walk then decides).

    It applies when every DC difference has a code (then every blanked block takes the
    exact fill whatever its neighbours, which is what ``dcplan`` chooses) and the image has
    no restart intervals (libjpeg writes none). The proof: libjpeg's transcode of the same
    decode without changes must be the source's entropy data byte for byte, and the
    blanked one must have the source's Huffman tables and frame structure. Then libjpeg
    read every block exactly (a decoder that glossed over damage cannot pass: re-coding
    would not give the damaged bytes back), its kept blocks are the source's codes, and
    the bytes are the walk's (tested)."""
    hdr, lay = bl.header, bl.layout
    tables_key = _tables_key(hdr)
    if (hdr.restart_interval or len(data) > TRANSCODE_MAX_BYTES
            or lay.total_mcus * len(lay.slots) > TRANSCODE_MAX_BLOCKS
            or any(bl.dc_steps[i] != _EVERY_DC_STEP for i in range(bl.ncomp))
            or _OTHER_TABLES.get(tables_key)):
        return None
    stream = _spliced(data, tables)
    scan_of = {c.ident: i for i, c in enumerate(hdr.scan_components)}
    if stream is None or [c.ident for c in hdr.scan_components] != [c.ident for c in hdr.components]:
        return None  # libjpeg writes the components in frame order
    usage = [(c.td, c.ta) for c in hdr.scan_components]
    if tuple(usage) not in _LIBJPEG_USAGE:
        return None  # table slots libjpeg never assigns
    try:
        stream = with_adobe_transform(stream, _LIBJPEG_USAGE[tuple(usage)])
    except JpegBlankingError:
        return None
    got = turbo.blank_blocks(stream, _block_ranges(bl, mask),
                             [bl.targets[scan_of[c.ident]].dc for c in hdr.components])
    if got is None:
        return None
    same, blanked = got
    try:
        a, b = parse(same), parse(blanked)
    except JpegBlankingError:
        return None
    if _tables_key(b) != tables_key:
        # libjpeg codes with its own tables (the standard ones): never for these tables
        if len(_OTHER_TABLES) >= 64:
            _OTHER_TABLES.clear()
        _OTHER_TABLES[tables_key] = True
        return None
    if (same[a.entropy_start : a.entropy_end] != data[hdr.entropy_start : hdr.entropy_end]
            or b.restart_interval or (b.width, b.height) != (hdr.width, hdr.height)
            or [(c.ident, c.h, c.v) for c in b.scan_components] != [(c.ident, c.h, c.v) for c in hdr.scan_components]):
        return None
    return data[: hdr.entropy_start] + blanked[b.entropy_start : b.entropy_end] + data[hdr.entropy_end :]


def _block_ranges(bl: Blanker, mask: bytearray) -> list[dict[int, list[tuple[int, int]]]]:
    """Per frame component: block row -> [(first, end) block columns] the masked MCUs cover."""
    lay = bl.layout
    runs: dict[int, list[int]] = {}  # MCU row -> [start, end, start, end, ...] MCU columns
    row = bytes(mask)
    for r in range(lay.mcus_y):
        a, end = r * lay.mcus_x, (r + 1) * lay.mcus_x
        while (a := row.find(1, a, end)) >= 0:
            b = row.find(0, a, end)
            b = end if b < 0 else b
            runs.setdefault(r, []).extend((a - r * lay.mcus_x, b - r * lay.mcus_x))
            a = b
    out = []
    for c in bl.header.components:
        h, v = (c.h, c.v) if bl.ncomp > 1 else (1, 1)  # one component: an MCU is a block
        rows: dict[int, list[tuple[int, int]]] = {}
        for r, xs in runs.items():
            spans = [(xs[i] * h, xs[i + 1] * h) for i in range(0, len(xs), 2)]
            for k in range(v):
                rows[r * v + k] = spans
        out.append(rows)
    return out

