"""Lossless blanking of regions in TIFF-family slides (SVS, NDPI, generic TIFF).

Maps regions given in level-0 pixels onto every kept pyramid level and the
thumbnail, and the label box onto a kept macro, then edits only the JPEG
tiles/strips they touch through the coefficient-domain editor in
``wsideid.jpeg``: every other 8x8 block keeps its exact DCT coefficients and
every untouched tile its exact bytes. The writer writes edited tiles from the
new bytes, so the old version of an edited tile never reaches the output.

Non-JPEG image data (JPEG 2000, LZW, Deflate) is refused: blanking it would
mean decoding and re-encoding, which this tool never does silently.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass, field

import numpy as np

from .errors import WsideidError
from .model import Plan
from .tiff.container import Ifd, TiffFile, integer_array
from .tiff.edits import EditSet
from .vendors import tiff_base

Box = tuple[int, int, int, int]  # x, y, w, h


class RedactionError(WsideidError):
    """A region cannot be blanked losslessly in this slide."""


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
        if ifd.has(65426) and 0 in tiles:
            data = tiff_base.image_data(ifd, tf.byteorder)
            if 0 not in tiles.entropy:
                raise RedactionError(f"{ifd.path}: NDPI strip edited without its entropy-coded data located")
            new_start, source_start = tiles.entropy[0]
            delta = new_start - source_start
            starts = integer_array(ifd.entries[65426], tf.byteorder).astype(np.int64)
            if len(starts) and (starts.min() < source_start or starts.max() >= int(data.src_counts[0])):
                raise RedactionError(f"{ifd.path}: NDPI restart offsets point outside the strip's entropy-coded data")
            edits.mcu_starts[k] = (starts + delta).tolist()
    return edits


def parse_region(text: str) -> Box:
    try:
        x, y, w, h = (int(v) for v in text.split(","))
    except ValueError:
        raise RedactionError(f"a region is X,Y,W,H in level-0 pixels (got {text!r})") from None
    if w <= 0 or h <= 0 or x < 0 or y < 0:
        raise RedactionError(f"region {text!r} must have a positive size and lie at x, y >= 0")
    return (x, y, w, h)


def _scale_box(box: Box, sx: float, sy: float, w: int, h: int) -> Box | None:
    x0, y0 = math.floor(box[0] * sx), math.floor(box[1] * sy)
    x1, y1 = math.ceil((box[0] + box[2]) * sx), math.ceil((box[1] + box[3]) * sy)
    x0, y0, x1, y1 = max(0, x0), max(0, y0), min(w, x1), min(h, y1)
    if x1 <= x0 or y1 <= y0:
        return None
    return (x0, y0, x1 - x0, y1 - y0)


def _colorspace(ifd: Ifd) -> str | None:
    photometric = ifd.value(262, 2)
    return {2: "RGB", 6: "YCbCr"}.get(photometric)


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


def blank_ifd(tf: TiffFile, k: int, ifd: Ifd, box: Box, fill: str, edits: Edits) -> int:
    """Blank ``box`` (this image's pixels) in one IFD; returns tiles edited."""
    from .jpeg import JpegBlankingError, blank_regions, blank_restart_intervals, flat_tile

    if ifd.value(259, 1) != 7:
        raise RedactionError(f"{ifd.path}: image data is {tiff_base.COMPRESSIONS.get(ifd.value(259, 1), ifd.value(259, 1))},"
                             " not baseline JPEG; it cannot be blanked without re-encoding")
    data = tiff_base.image_data(ifd, tf.byteorder)
    tables = ifd.entries[347].raw if ifd.has(347) else None
    cs = _colorspace(ifd)
    w, h = int(ifd.value(256)), int(ifd.value(257))
    x, y, bw, bh = box
    n = 0
    try:
        if ifd.has(324):
            tw, th = int(ifd.value(322)), int(ifd.value(323))
            across = -(-w // tw)
            for r in range(y // th, min(-(-h // th), -(-(y + bh) // th))):
                for c in range(x // tw, min(across, -(-(x + bw) // tw))):
                    idx = r * across + c
                    if data.src_counts[idx] == 0:
                        continue
                    lx, ly = x - c * tw, y - r * th
                    local = (max(0, lx), max(0, ly), min(tw, lx + bw) - max(0, lx), min(th, ly + bh) - max(0, ly))
                    tile = _tile_bytes(tf, k, idx, data, edits)
                    cover_w = min(tw, w - c * tw)
                    cover_h = min(th, h - r * th)
                    if local[0] == 0 and local[1] == 0 and local[2] >= cover_w and local[3] >= cover_h:
                        new = flat_tile(tile, fill, tables=tables, colorspace=cs)
                    else:
                        new = blank_regions(tile, [local], fill, tables=tables, colorspace=cs)
                    edits.tiles.image(k)[idx] = new
                    n += 1
            return n
        rps = int(ifd.value(278, h) or h)
        if ifd.has(65426) and len(data.src_offsets) == 1:
            strip = _tile_bytes(tf, k, 0, data, edits)
            starts = edits.mcu_starts.get(k) or integer_array(ifd.entries[65426], tf.byteorder).tolist()
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


def plan_regions(tf: TiffFile, plan: Plan, regions: list[Box], fill: str, edits: Edits) -> None:
    """Blank level-0 ``regions`` on every kept level and the thumbnail."""
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
        sx, sy = d.image.width / w0, d.image.height / h0
        for region in regions:
            box = _scale_box(region, sx, sy, d.image.width, d.image.height)
            if box is None:
                continue
            n = blank_ifd(tf, flat.index(ifd), ifd, box, fill, edits)
            edits.blanked[ifd.path] = edits.blanked.get(ifd.path, 0) + n


def macro_label_box(tf: TiffFile, plan: Plan, vendor: str, index: int) -> Box | None:
    """Where the physical label is on the macro, in macro pixels (x, y, w, h)."""
    from .detect.label_location import locate_label, ndpi_label_hint
    ifd = tf.image_ifds()[index]
    size = (int(ifd.value(256)), int(ifd.value(257)))
    hint = None
    props = {}
    for line in (ifd.text(65449) or "").splitlines():
        key, _, value = line.partition("=")
        props[key.strip()] = value.strip()
    if props:
        hint = ndpi_label_hint(props, size)
    box = locate_label(size, vendor, hint, [])
    if box is None:
        return None
    x1, y1, x2, y2 = box
    return (x1, y1, x2 - x1, y2 - y1)


def blank_macro_labels(tf: TiffFile, plan: Plan, vendor: str, fill: str, edits: Edits) -> None:
    """Macros kept with action blank-label get their label area blanked.

    Where the label cannot be located, the macro is removed instead: keeping
    it unblanked would keep the label.
    """
    flat = list(tf.all_ifds())
    for d in plan.images:
        if d.action != "blank-label":
            continue
        box = macro_label_box(tf, plan, vendor, d.image.index)
        if box is None:
            d.action, d.rule = "remove", d.rule + " (label location unknown: removed)"
            continue
        ifd = tf.image_ifds()[d.image.index]
        try:
            n = blank_ifd(tf, flat.index(ifd), ifd, box, fill, edits)
        except RedactionError:
            d.action, d.rule = "remove", d.rule + " (macro cannot be blanked losslessly: removed)"
            continue
        edits.blanked[ifd.path] = edits.blanked.get(ifd.path, 0) + n
        plan.macro_boxes.append((d.image.index, box))


def mcu_entry(ifd: Ifd, starts: list[int]):
    from .tiff.writer import OutEntry
    vals = np.asarray(starts, dtype=np.int64)
    if (vals < 0).any() or (vals >= 2**32).any():
        raise RedactionError(f"{ifd.path}: restart offsets out of range after blanking")
    return OutEntry(65426, 4, len(vals), struct.pack(f"{ifd.byteorder}{len(vals)}I", *vals.tolist()))
