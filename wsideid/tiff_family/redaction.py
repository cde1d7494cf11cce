"""Lossless blanking of regions in TIFF-family slides (SVS, NDPI, generic TIFF).

Maps regions given in level-0 pixels onto every kept pyramid level and the
thumbnail, and the label box onto a kept macro, then edits only the JPEG
tiles/strips they touch through the coefficient-domain editor in
``wsideid.jpeg``: every other 8x8 block keeps its exact DCT coefficients and
every untouched tile its exact bytes. The writer writes edited tiles from the
new bytes, so the old version of an edited tile never reaches the output.

Non-JPEG image data (LZW, Deflate, ...) is refused: blanking it would mean
decoding and re-encoding, which this tool never does silently. JPEG 2000
tiles (Aperio 33003/33005, 34712) are blanked only when the plan allows it
(``--reencode-j2k``): each touched tile is decoded, blanked and encoded again
reversibly (``jpeg.reencode``, checked exact); every other tile keeps its bytes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import WsideidError
from ..model import Plan
from ..regions import Box, RedactionError, parse_region, scale_box  # noqa: F401 - parse_region: re-exported
from ..tiff.container import Ifd, TiffFile, integer_array
from ..tiff.tags import (COMPRESSION, IMAGE_LENGTH, IMAGE_WIDTH, JPEG_COMPRESSION, JPEG_TABLES, NDPI_MCU_STARTS,
                        PHOTOMETRIC, PHOTOMETRIC_COLOURSPACE, ROWS_PER_STRIP, TILE_LENGTH, TILE_OFFSETS, TILE_WIDTH)
from ..tiff.edits import EditSet
from .vendors import tiff_base

@dataclass
class Edits:
    """Edited tiles per flat IFD index (``tiff.edits.EditSet``: pieces, not bytes), and NDPI
    restart offsets to rewrite."""

    tiles: EditSet
    mcu_starts: dict[int, list[int]] = field(default_factory=dict)
    blanked: dict[str, int] = field(default_factory=dict)  # image path -> tiles edited


def stripped_segments(tf: TiffFile, plan: Plan, deferred: bool = False) -> Edits:
    """Edits that reduce every kept JPEG/JPEG 2000 tile and strip to its decoding
    segments (tiff_base does the cleaning). NDPI restart offsets, relative to the
    strip, follow the first scan's entropy-coded data, which is all they point
    into: the shift is where that data starts now minus where it started
    (not the change in length: bytes dropped after EOI move no restart)."""
    edits = Edits(tiles=tiff_base.tile_segment_edits(tf, plan, deferred=deferred))
    flat = list(tf.all_ifds())
    for k, tiles in edits.tiles.items():
        ifd = flat[k]
        if ifd.has(NDPI_MCU_STARTS) and 0 in tiles:
            data = tiff_base.image_data(ifd, tf.byteorder)
            if 0 not in tiles.entropy:
                raise RedactionError(f"{ifd.path}: NDPI strip edited without its entropy-coded data located")
            new_start, source_start = tiles.entropy[0]
            delta = new_start - source_start
            starts = integer_array(ifd.entries[NDPI_MCU_STARTS], tf.byteorder).astype(np.int64)
            if len(starts) and (starts.min() < source_start or starts.max() >= int(data.src_counts[0])):
                raise RedactionError(f"{ifd.path}: NDPI restart offsets point outside the strip's entropy-coded data")
            edits.mcu_starts[k] = (starts + delta).tolist()
    return edits


def _colorspace(ifd: Ifd) -> str | None:
    return PHOTOMETRIC_COLOURSPACE.get(ifd.value(PHOTOMETRIC, 2))


def _read(path: str, offset: int, count: int) -> bytes:
    with open(path, "rb") as fh:
        fh.seek(offset)
        data = fh.read(count)
    if len(data) != count:
        raise RedactionError("image data ended early while reading a tile to blank")
    return data


def _tile_bytes(tf: TiffFile, k: int, idx: int, data, edits: Edits) -> bytes:
    prior = edits.tiles.get(k, {}).get(idx)
    return prior if prior is not None else _read(tf.path, int(data.src_offsets[idx]), int(data.src_counts[idx]))


# JPEG 2000 compression -> colour model of its decoded samples (34712: from PhotometricInterpretation)
J2K_MODELS = {33003: "YCbCr", 33005: "RGB"}
PHOTOMETRIC_MODELS = {1: "GRAY", 2: "RGB", 6: "YCbCr"}


def reencode_allowed(plan: Plan) -> bool:
    """``--reencode-j2k``, as the plan recorded it."""
    return bool(plan.options.get("reencode_j2k"))


def blank_ifd(tf: TiffFile, k: int, ifd: Ifd, box: Box, fill: str, edits: Edits, reencode_j2k: bool = False) -> int:
    """Blank ``box`` (this image's pixels) in one IFD; returns tiles edited."""
    from ..jpeg import JpegBlankingError, blank_regions, blank_restart_intervals, flat_tile

    if ifd.value(COMPRESSION, 1) != JPEG_COMPRESSION:
        code = ifd.value(COMPRESSION, 1)
        if code in tiff_base.J2K_COMPRESSIONS:
            if reencode_j2k:
                return _blank_j2k(tf, k, ifd, box, fill, edits)
            raise RedactionError(f"{ifd.path}: image data is {tiff_base.COMPRESSIONS.get(code, code)}, not baseline "
                                 "JPEG; blanking it re-encodes the touched tiles (reversibly): ask for that with "
                                 "--reencode-j2k")
        raise RedactionError(f"{ifd.path}: image data is {tiff_base.COMPRESSIONS.get(code, code)},"
                             " not baseline JPEG; it cannot be blanked without re-encoding")
    data = tiff_base.image_data(ifd, tf.byteorder)
    tables = ifd.entries[JPEG_TABLES].raw if ifd.has(JPEG_TABLES) else None
    cs = _colorspace(ifd)
    w, h = int(ifd.value(IMAGE_WIDTH)), int(ifd.value(IMAGE_LENGTH))
    x, y, bw, bh = box
    n = 0
    try:
        if ifd.has(TILE_OFFSETS):
            for idx, local, full in _touched_tiles(ifd, data, box):
                tile = _tile_bytes(tf, k, idx, data, edits)
                if full:
                    new = flat_tile(tile, fill, tables=tables, colorspace=cs)
                else:
                    new = blank_regions(tile, [local], fill, tables=tables, colorspace=cs)
                edits.tiles.image(k)[idx] = new
                n += 1
            return n
        rps = int(ifd.value(ROWS_PER_STRIP, h) or h)
        if ifd.has(NDPI_MCU_STARTS) and len(data.src_offsets) == 1:
            strip = _tile_bytes(tf, k, 0, data, edits)
            starts = edits.mcu_starts.get(k) or integer_array(ifd.entries[NDPI_MCU_STARTS], tf.byteorder).tolist()
            new, new_starts = blank_restart_intervals(strip, starts, [box], fill, height=h, colorspace=cs)
            edits.tiles.image(k)[0] = new
            edits.mcu_starts[k] = list(new_starts)
            return 1
        for i in range(y // rps, min(len(data.src_offsets), -(-(y + bh) // rps))):
            rows = min(rps, h - i * rps)
            local = (x, max(0, y - i * rps), bw, min(rows, y + bh - i * rps) - max(0, y - i * rps))
            strip = _tile_bytes(tf, k, i, data, edits)
            edits.tiles.image(k)[i] = blank_regions(strip, [local], fill, tables=tables, colorspace=cs,
                                                    height=rows)
            n += 1
        return n
    except JpegBlankingError as exc:
        raise RedactionError(f"{ifd.path}: {exc}") from None


def _blank_j2k(tf: TiffFile, k: int, ifd: Ifd, box: Box, fill: str, edits: Edits) -> int:
    """JPEG 2000 tiles touched by ``box``: decoded, blanked, encoded reversibly (checked exact by
    ``reencode_j2k``); recorded in ``edits.tiles.pixel_boxes`` for the verifier and the audit."""
    from ..jpeg.reencode import ReencodeError, fill_levels, reencode_j2k
    if not ifd.has(TILE_OFFSETS):
        raise RedactionError(f"{ifd.path}: JPEG 2000 strips are not re-encoded (tiles only)")
    code = ifd.value(COMPRESSION, 1)
    model = J2K_MODELS.get(code) or PHOTOMETRIC_MODELS.get(ifd.value(PHOTOMETRIC, 2))
    if model is None:
        raise RedactionError(f"{ifd.path}: JPEG 2000 samples of photometric {ifd.value(PHOTOMETRIC, 2)} are not blanked")
    bits = ifd.value(258, 8) or 8
    bits = int(bits[0] if isinstance(bits, (tuple, list)) else bits)  # one BitsPerSample per sample
    values = fill_levels(fill, model, (1 << bits) - 1)
    data = tiff_base.image_data(ifd, tf.byteorder)
    n = 0
    for idx, local, _ in _touched_tiles(ifd, data, box):
        prior = edits.tiles.pixel_boxes.get(k, {}).get(idx)
        boxes = (prior[0] if prior else []) + [local]
        try:
            new, _ = reencode_j2k(_tile_bytes(tf, k, idx, data, edits), [local], values)
        except ReencodeError as exc:
            raise RedactionError(f"{ifd.path} tile {idx}: {exc}") from None
        edits.tiles.image(k)[idx] = new
        edits.tiles.pixel_boxes.setdefault(k, {})[idx] = (boxes, values)
        n += 1
    return n


def _touched_tiles(ifd: Ifd, data, box: Box):
    """(tile index, tile-local box, whether it covers the tile's image part) for every stored
    tile ``box`` touches."""
    w, h = int(ifd.value(IMAGE_WIDTH)), int(ifd.value(IMAGE_LENGTH))
    tw, th = int(ifd.value(TILE_WIDTH)), int(ifd.value(TILE_LENGTH))
    across = -(-w // tw)
    x, y, bw, bh = box
    for r in range(y // th, min(-(-h // th), -(-(y + bh) // th))):
        for c in range(x // tw, min(across, -(-(x + bw) // tw))):
            idx = r * across + c
            if data.src_counts[idx] == 0:
                continue
            lx, ly = x - c * tw, y - r * th
            local = (max(0, lx), max(0, ly), min(tw, lx + bw) - max(0, lx), min(th, ly + bh) - max(0, ly))
            full = local[:2] == (0, 0) and local[2] >= min(tw, w - c * tw) and local[3] >= min(th, h - r * th)
            yield idx, local, full


def plan_regions(tf: TiffFile, plan: Plan, regions: list[Box], fill: str, edits: Edits,
                 shown: dict[int, tuple[int, int]] | None = None) -> None:
    """Blank level-0 ``regions`` on every kept level and the thumbnail. ``shown``: image index ->
    the size readers show it at, where it differs from its stored (tile-padded) size (Philips:
    level 0 over the downsample its pixel spacing gives); a region scales by that size, or it
    would land beside its place on a padded level."""
    if not regions:
        return
    levels = [d.image for d in plan.images if d.image.role == "level"]
    if not levels:
        raise RedactionError("the slide has no pyramid level to map regions from")
    w0, h0 = max((im.width, im.height) for im in levels)
    flat = list(tf.all_ifds())
    for d in plan.images:
        if d.action == "remove" or d.image.role not in ("level", "thumbnail"):
            continue
        ifd = tf.image_ifds()[d.image.index]
        w, h = (shown or {}).get(d.image.index, (d.image.width, d.image.height))
        sx, sy = w / w0, h / h0
        for region in regions:
            box = scale_box(region, sx, sy, min(w, d.image.width), min(h, d.image.height))
            if box is None:
                continue
            n = blank_ifd(tf, flat.index(ifd), ifd, box, fill, edits, reencode_allowed(plan))
            edits.blanked[ifd.path] = edits.blanked.get(ifd.path, 0) + n


def blank_macro_labels(tf: TiffFile, plan: Plan, fill: str, edits: Edits) -> None:
    """Blank the label box the plan recorded on each kept macro (``plan.macro_boxes``).

    The plan decided the boxes (and removed the macros it could not place a label on); a
    macro that fails to blank here refuses the slide, it is never quietly kept or dropped.
    """
    flat = list(tf.all_ifds())
    for index, box in plan.macro_boxes:
        ifd = tf.image_ifds()[index]
        n = blank_ifd(tf, flat.index(ifd), ifd, box, fill, edits, reencode_allowed(plan))
        edits.blanked[ifd.path] = edits.blanked.get(ifd.path, 0) + n
