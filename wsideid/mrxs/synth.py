"""A synthetic MIRAX slide written to the layout OpenSlide's mirax reader documents.

PHI is planted in every carrier a scanner or a person uses: Slidedat.ini
(slide name, project, creation date and time, an operator key, a scanner
serial in its own group), the label and macro records (printed name and a
DataMatrix code), a ProfileXML non-hierarchical record, the data file
header ("ProfileName=..." after the slide id, as wsi-anon documents) and
the .mrxs file itself. The camera grid is ``tiles_x`` x ``tiles_y``
images of ``tile`` px with a VIMSLIDE_POSITION_BUFFER and no overlap.
"""

from __future__ import annotations

import io
import os
import struct

import numpy as np

from ..synth import ACCESSION, MRN, OPERATOR, PATIENT, SCANNER_SN, label_image, tissue
from .index import Record, build_index

SLIDE_ID = "5d1e0b0c2b8a4f0e9d3c7b6a5f4e3d2c"
PLANTED_MRXS = [PATIENT, ACCESSION, MRN, OPERATOR, SCANNER_SN, "Quokka Pathology", "2024.03.14", "09:41:07",
                "Quokka Profile 7", SLIDE_ID]


def _jpeg(arr: np.ndarray, quality: int = 90) -> bytes:
    from PIL import Image
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def make_mrxs(path: str, tiles_x: int = 4, tiles_y: int = 4, tile: int = 256, levels: int = 3,
              tile_comment: bytes | None = None, div: int = 1, overlap: int = 0) -> list[str]:
    """Write ``path`` (.mrxs) and its folder; returns the planted values. ``tile_comment`` goes
    into a COM segment of every level tile (where a scanner's software may write)."""
    from PIL import Image
    folder = os.path.splitext(path)[0]
    os.makedirs(folder, exist_ok=True)
    with open(path, "wb") as fh:  # the .mrxs file: nothing reads it, a person may have written in it
        fh.write(f"MIRAX slide of {PATIENT} {ACCESSION}\n".encode())
    px = tiles_x // div
    cams = [((i % px) * (tile * div - overlap), (i // px) * (tile * div - overlap)) for i in range(px * (tiles_y // div))]
    base = tissue(cams[-1][0] + tile * div, cams[-1][1] + tile * div, seed=7)

    def camera_image(xx: int, yy: int) -> np.ndarray:
        """Level-0 image (xx, yy): a piece of its camera's photo, placed as the position buffer says."""
        cx, cy = cams[(yy // div) * px + xx // div]
        x0, y0 = cx + tile * (xx % div), cy + tile * (yy % div)
        return base[y0:y0 + tile, x0:x0 + tile]
    data = bytearray(b"01.02" + SLIDE_ID.encode() + b"000")
    data += b'ProfileName="Quokka Profile 7";' + bytes(256)

    def put(blob: bytes) -> tuple[int, int]:
        off = len(data)
        data.extend(blob)
        return off, len(blob)

    level_records: list[list[Record]] = []
    for level in range(levels):
        c = 1 << level
        recs = []
        for y in range(0, tiles_y, c):
            for x in range(0, tiles_x, c):
                block = np.concatenate([np.concatenate([camera_image(x + i, y + j) for i in range(c)], axis=1)
                                        for j in range(c)], axis=0)
                img = np.asarray(Image.fromarray(block).resize((tile, tile), Image.BILINEAR)) if c > 1 else block
                jpeg = _jpeg(np.ascontiguousarray(img))
                if tile_comment:
                    jpeg = jpeg[:2] + b"\xff\xfe" + struct.pack(">H", len(tile_comment) + 2) + tile_comment + jpeg[2:]
                off, length = put(jpeg)
                recs.append(Record(0, off, length, y * tiles_x + x))
        level_records.append(recs)
    macro = np.full((300, 800, 3), 235, np.uint8)
    macro[:, :260] = label_image(260, 300, [PATIENT, ACCESSION], code=MRN)
    macro[40:260, 320:760] = tissue(440, 220, seed=3)
    label = label_image(400, 300, [PATIENT, ACCESSION, f"MRN {MRN}"], code=MRN)
    preview = np.asarray(Image.fromarray(base).resize((base.shape[1] // 8, base.shape[0] // 8), Image.BILINEAR))
    positions = b"".join(struct.pack("<Bii", 1, x, y) for x, y in cams)
    profile_xml = (f'<?xml version="1.0"?><Profile Name="Quokka Profile 7" Operator="{OPERATOR}" '
                   f'Patient="{PATIENT}" MRN="{MRN}"/>').encode()
    nonhier = [Record(0, *put(_jpeg(macro))), Record(0, *put(_jpeg(label))), Record(0, *put(_jpeg(preview))),
               Record(0, *put(positions)), Record(0, *put(profile_xml))]
    with open(os.path.join(folder, "Data0000.dat"), "wb") as fh:
        fh.write(bytes(data))
    with open(os.path.join(folder, "Index.dat"), "wb") as fh:
        fh.write(build_index(SLIDE_ID, level_records, nonhier))
    lines = ["[GENERAL]", "SLIDE_VERSION = 01.03", f"SLIDE_ID = {SLIDE_ID}", f"SLIDE_NAME = {PATIENT} {ACCESSION}",
             "PROJECT_NAME = Quokka Pathology", "SLIDE_CREATIONDATETIME = 2024.03.14 09:41:07",
             f"OPERATOR_NAME = {OPERATOR}", f"IMAGENUMBER_X = {tiles_x}", f"IMAGENUMBER_Y = {tiles_y}",
             "OBJECTIVE_MAGNIFICATION = 20", f"CameraImageDivisionsPerSide = {div}", "CURRENT_SLIDE_VERSION = 1.9",
             "[HIERARCHICAL]", "HIER_COUNT = 1", "HIER_0_NAME = Slide zoom level", f"HIER_0_COUNT = {levels}"]
    lines += [f"HIER_0_VAL_{i} = ZoomLevel_{i}" for i in range(levels)]
    lines += [f"HIER_0_VAL_{i}_SECTION = LAYER_0_LEVEL_{i}_SECTION" for i in range(levels)]
    lines += ["NONHIER_COUNT = 3", "NONHIER_0_NAME = Scan data layer", "NONHIER_0_COUNT = 3",
              "NONHIER_0_VAL_0 = ScanDataLayer_SlideThumbnail", "NONHIER_0_VAL_0_SECTION = NONHIERLAYER_0_VAL_0_SECTION",
              "NONHIER_0_VAL_1 = ScanDataLayer_SlideBarcode", "NONHIER_0_VAL_1_SECTION = NONHIERLAYER_0_VAL_1_SECTION",
              "NONHIER_0_VAL_2 = ScanDataLayer_SlidePreview", "NONHIER_0_VAL_2_SECTION = NONHIERLAYER_0_VAL_2_SECTION",
              "NONHIER_1_NAME = VIMSLIDE_POSITION_BUFFER", "NONHIER_1_COUNT = 1", "NONHIER_1_VAL_0 = default",
              "NONHIER_1_VAL_0_SECTION = NONHIERLAYER_1_VAL_0_SECTION",
              "NONHIER_2_NAME = ProfileXML", "NONHIER_2_COUNT = 1", "NONHIER_2_VAL_0 = Quokka Profile 7",
              "NONHIER_2_VAL_0_SECTION = NONHIERLAYER_2_VAL_0_SECTION", "INDEXFILE = Index.dat",
              "[DATAFILE]", "FILE_COUNT = 1", "FILE_0 = Data0000.dat"]
    for i in range(levels):
        lines += [f"[LAYER_0_LEVEL_{i}_SECTION]", f"OVERLAP_X = {overlap if i == 0 else 0}",
                  f"OVERLAP_Y = {overlap if i == 0 else 0}",
                  f"MICROMETER_PER_PIXEL_X = {0.25 * (1 << i)}", f"MICROMETER_PER_PIXEL_Y = {0.25 * (1 << i)}",
                  "IMAGE_FORMAT = JPEG", "IMAGE_FILL_COLOR_BGR = 16777215", f"DIGITIZER_WIDTH = {tile}",
                  f"DIGITIZER_HEIGHT = {tile}", f"IMAGE_CONCAT_FACTOR = {0 if i == 0 else 1}"]
    lines += ["[NONHIERLAYER_0_VAL_0_SECTION]", "THUMBNAIL_IMAGE_TYPE = JPEG",
              "[NONHIERLAYER_0_VAL_1_SECTION]", "BARCODE_IMAGE_TYPE = JPEG",
              "[NONHIERLAYER_0_VAL_2_SECTION]", "PREVIEW_IMAGE_TYPE = JPEG",
              "[NONHIERLAYER_1_VAL_0_SECTION]", "VIMSLIDE_POSITION_DATA_FORMAT_VERSION = 257",
              "[NONHIERLAYER_2_VAL_0_SECTION]", f"COMMENT = scanned for {PATIENT}",
              "[SCANNER]", f"SCANNER_HARDWARE_ID = {SCANNER_SN}"]
    with open(os.path.join(folder, "Slidedat.ini"), "wb") as fh:
        fh.write(b"\xef\xbb\xbf" + ("\r\n".join(lines) + "\r\n").encode())
    return list(PLANTED_MRXS)
