"""Verification of JPEG 2000 tiles re-encoded to blank them (``--reencode-j2k``).

Independent of the writer: each re-encoded tile is read back from the
output file and decoded (OpenJPEG through imagecodecs); the source tile is
decoded too, the boxes the edits recorded are filled with the fill value,
and the two must be equal, every pixel: the blanked area is flat and
nothing else in the tile changed. Tiles not re-encoded are compared byte
for byte by ``data-ranges`` / ``pixels`` as before.
"""

from __future__ import annotations

import os

import numpy as np

from ..tiff.container import TiffFile
from .vendors import tiff_base


def check_reencoded_tiles(src: TiffFile, out: TiffFile, out_path: str, kept_top: list[int], edited) -> tuple[bool, str]:
    """(ok, detail) over every tile in ``edited.pixel_boxes``."""
    import imagecodecs

    from ..jpeg.reencode import blank_array
    boxes = getattr(edited, "pixel_boxes", {}) or {}
    if not boxes:
        return True, "no JPEG 2000 tile re-encoded"
    flat_src = list(src.all_ifds())
    src_images, out_images = src.image_ifds(), out.image_ifds()
    problems, n = [], 0
    with open(src.path, "rb") as fs, open(out_path, "rb") as fo:
        for oi, si in enumerate(kept_top):
            s_ifd, o_ifd = src_images[si], out_images[oi]
            tiles = boxes.get(flat_src.index(s_ifd))
            if not tiles:
                continue
            sd, od = tiff_base.image_data(s_ifd, src.byteorder), tiff_base.image_data(o_ifd, out.byteorder)
            for t, (bxs, values) in sorted(tiles.items()):
                n += 1
                try:
                    before = imagecodecs.jpeg2k_decode(os.pread(fs.fileno(), int(sd.src_counts[t]), int(sd.src_offsets[t])))
                    after = imagecodecs.jpeg2k_decode(os.pread(fo.fileno(), int(od.src_counts[t]), int(od.src_offsets[t])))
                except Exception as exc:  # noqa: BLE001 - any decode failure is a failed check
                    problems.append(f"{o_ifd.path} tile {t} does not decode ({type(exc).__name__})")
                    continue
                want = blank_array(before, bxs, values)
                if after.shape != want.shape or not np.array_equal(after, want):
                    problems.append(f"{o_ifd.path} tile {t}: not the source tile with the boxes filled")
    if problems:
        return False, "; ".join(problems[:3])
    return True, f"{n} re-encoded JPEG 2000 tile(s) decode exactly to the source with the blanked boxes filled"
