"""Where each MIRAX image record lies on the slide, and which of its pixels a region covers.

A MIRAX level is not a grid of equal tiles: each record is a camera image
(or, on reduced levels, 2x2, 4x4... of them concatenated) placed at the
camera position the position buffer gives, so neighbours may overlap. The
placement follows OpenSlide's mirax reader: with a position layer or a
non-zero overlap, an image of a level concatenating ``C`` camera images
per side is cut into ``max(1, C / divisions)`` sub-tiles per side, each
placed at the position of the camera image it started from; otherwise
each record is one tile at its grid position. A region (level-0 pixels)
is blanked in every record any of whose sub-tiles it touches, so an
overlap never leaves a copy of the region behind.
"""

from __future__ import annotations

import math
import struct
import zlib

from ..errors import MalformedFile
from .slide import MrxsSlide, divisions

Box = tuple[int, int, int, int]
POSITION_RECORD = 9


def parse_positions(raw: bytes, slide: MrxsSlide, compressed: bool) -> list[tuple[int, int, int]]:
    """(flag, x, y) per camera position, checked: flag 0/1, coordinates on the slide. A position
    buffer has 8 free bytes in every 9, so text would fit: anything implausible is refused."""
    kf = slide.ini
    div = divisions(kf)
    count = (kf.need_int("GENERAL", "IMAGENUMBER_X") // div) * (kf.need_int("GENERAL", "IMAGENUMBER_Y") // div)
    if compressed:
        d = zlib.decompressobj()
        raw = d.decompress(raw, count * POSITION_RECORD + 1)
        if not d.eof or d.unused_data:
            raise MalformedFile("MIRAX stitching positions are not one zlib stream")
    if len(raw) != count * POSITION_RECORD:
        raise MalformedFile("MIRAX position buffer does not hold one record per camera position")
    w, h = slide.levels[0].width, slide.levels[0].height
    out = []
    for k in range(count):
        flag, x, y = struct.unpack_from("<Bii", raw, k * POSITION_RECORD)
        if flag > 1 or not (-4 * w <= x <= 4 * w and -4 * h <= y <= 4 * h):
            raise MalformedFile("MIRAX position buffer holds values that are not positions on the slide")
        out.append((flag, x, y))
    return out


def pack_positions(positions: list[tuple[int, int, int]], compressed: bool) -> bytes:
    out = b"".join(struct.pack("<Bii", *p) for p in positions)
    return zlib.compress(out, 9) if compressed else out


def _camera_positions(slide: MrxsSlide) -> tuple[list[tuple[int, int]], bool]:
    """Level-0 origin of each camera position, and whether sub-tiling applies."""
    kf = slide.ini
    div = divisions(kf)
    images_x, images_y = kf.need_int("GENERAL", "IMAGENUMBER_X"), kf.need_int("GENERAL", "IMAGENUMBER_Y")
    lv0 = slide.levels[0].section
    ox, oy = float(kf.need(lv0, "OVERLAP_X")), float(kf.need(lv0, "OVERLAP_Y"))
    w0, h0 = kf.need_int(lv0, "DIGITIZER_WIDTH"), kf.need_int(lv0, "DIGITIZER_HEIGHT")
    concat0 = 1 << kf.need_int(lv0, "IMAGE_CONCAT_FACTOR", 0, 16)
    layer = next((nh for nh in slide.nonhier if nh.role == "positions"), None)
    px = images_x // div
    if layer is not None:
        pos = parse_positions(slide.read(layer.record), slide, layer.layer != "VIMSLIDE_POSITION_BUFFER")
        return [(x * concat0, y * concat0) for _, x, y in pos], True
    n = px * (images_y // div)
    return [(int((i % px) * (w0 * div - ox)), int((i // px) * (h0 * div - oy))) for i in range(n)], bool(ox or oy)


def record_boxes(slide: MrxsSlide, regions: list[Box]) -> dict[tuple[int, int], list[Box]]:
    """For (level, record) the boxes, in the record's own pixels, that ``regions`` cover."""
    if not regions:
        return {}
    kf = slide.ini
    div = divisions(kf)
    images_x, images_y = kf.need_int("GENERAL", "IMAGENUMBER_X"), kf.need_int("GENERAL", "IMAGENUMBER_Y")
    positions, subtiled = _camera_positions(slide)
    w0, h0 = kf.need_int(slide.levels[0].section, "DIGITIZER_WIDTH"), kf.need_int(slide.levels[0].section,
                                                                                     "DIGITIZER_HEIGHT")
    out: dict[tuple[int, int], list[Box]] = {}
    concat0 = 1 << kf.need_int(slide.levels[0].section, "IMAGE_CONCAT_FACTOR", 0, 16)
    concat = 0
    for li, lv in enumerate(slide.levels):
        concat += kf.need_int(lv.section, "IMAGE_CONCAT_FACTOR", 0, 16)
        big_c = 1 << concat  # camera images per side in one record of this level
        c = big_c / concat0  # this level's downsample against OpenSlide's level 0
        w, h = kf.need_int(lv.section, "DIGITIZER_WIDTH"), kf.need_int(lv.section, "DIGITIZER_HEIGHT")
        per = max(1, big_c // div) if subtiled else 1
        tw, th = w / per, h / per
        for k, rec in enumerate(lv.records):
            x, y = rec.image % images_x, rec.image // images_x
            boxes: list[Box] = []
            for yi in range(per):
                for xi in range(per):
                    xx, yy = x + xi * div, y + yi * div
                    if xx >= images_x or yy >= images_y:
                        continue
                    xp, yp = xx // div, yy // div
                    cp = yp * (images_x // div) + xp
                    if cp >= len(positions):
                        continue
                    ox0 = (positions[cp][0] + w0 * (xx - xp * div)) / concat0
                    oy0 = (positions[cp][1] + h0 * (yy - yp * div)) / concat0
                    for rx, ry, rw, rh in regions:
                        # the sub-tile covers level-0 [ox0, ox0 + tw*c) x [oy0, oy0 + th*c)
                        ix0, iy0 = max(rx, ox0), max(ry, oy0)
                        ix1, iy1 = min(rx + rw, ox0 + tw * c), min(ry + rh, oy0 + th * c)
                        if ix1 <= ix0 or iy1 <= iy0:
                            continue
                        bx0 = math.floor((ix0 - ox0) / c + tw * xi)
                        by0 = math.floor((iy0 - oy0) / c + th * yi)
                        bx1 = math.ceil((ix1 - ox0) / c + tw * xi)
                        by1 = math.ceil((iy1 - oy0) / c + th * yi)
                        boxes.append((max(0, bx0), max(0, by0), min(w, bx1) - max(0, bx0), min(h, by1) - max(0, by0)))
            if boxes:
                out[(li, k)] = boxes
    return out
