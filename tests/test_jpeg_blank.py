"""blank_regions / flat_tile on synthetic JPEGs, checked with djpeg."""

from __future__ import annotations

import numpy as np
import pytest

from jpeg_fixtures import check_blank, needs_tools, pil_jpeg, texture
from wsideid.jpeg import blank_regions, blank_regions_detailed, coefficients, flat_tile

pytestmark = needs_tools

BOXES = [(30, 20, 50, 40)]
SUBSAMPLING = {0: (8, 8), 1: (16, 8), 2: (16, 16)}  # Pillow code -> MCU size


@pytest.mark.parametrize("sub", [0, 1, 2])
@pytest.mark.parametrize("fill", ["white", "black", (200, 30, 90)])
def test_blank_colour(sub, fill):
    src = pil_jpeg(texture(200, 150, seed=sub), subsampling=sub)
    out = blank_regions(src, BOXES, fill)
    rgb = {"white": (255, 255, 255), "black": (0, 0, 0)}.get(fill, fill)
    check_blank(src, out, BOXES, SUBSAMPLING[sub], rgb)
