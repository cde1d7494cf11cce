"""Coefficient-domain blanking of baseline JPEG images.

Pure functions over bytes: no file, TIFF or DICOM knowledge. Container
layers hand in one JPEG stream (a tile, a strip, a frame) and get back a
stream in which chosen regions are a flat colour while every other 8x8
block keeps its exact quantised DCT coefficients (no generation loss).

Public API:

* ``blank_regions`` / ``blank_regions_detailed``: blank boxes of one image.
* ``flat_tile``: the whole image flat without decoding it.
* ``blank_restart_intervals``: NDPI strips addressed through McuStarts.
* ``coefficients``: quantised coefficients, for verification.
* ``JpegBlankingError``: every anticipated failure.

Only 8-bit sequential Huffman JPEG (SOF0/SOF1) with a single scan is
supported; see docs/jpeg-blanking.md.
"""

from .blank import BlankResult, blank_regions, blank_regions_detailed, flat_tile
from .decode import coefficients
from .errors import JpegBlankingError
from .ndpi import blank_restart_intervals

__all__ = [
    "BlankResult",
    "JpegBlankingError",
    "blank_regions",
    "blank_regions_detailed",
    "blank_restart_intervals",
    "coefficients",
    "flat_tile",
]
