"""blank_regions / flat_tile on synthetic JPEGs.

Every case is checked twice: with our coefficient decoder (blocks outside
the MCU-grown region identical, blocks inside DC only) and independently
with djpeg -nosmooth (pixels outside identical, region flat, no warning).
"""

from __future__ import annotations

import numpy as np
import pytest

from jpeg_fixtures import MCU, VARIANTS, check_blank, djpeg, needs_tools, pil_jpeg, split_abbreviated, texture, variant
from wsideid.jpeg import blank_regions, blank_regions_detailed, coefficients, flat_tile
from wsideid.jpeg.markers import parse

pytestmark = needs_tools

BOXES = [(30, 20, 50, 40)]
WHITE = (255, 255, 255)


def mcu_mask(data: bytes, boxes, mcu, tables=None) -> np.ndarray:
    """Boolean (MCU rows, MCU cols) grid of MCUs a box touches."""
    hdr = parse(data, tables)
    mw, mh = mcu
    grid = np.zeros((-(-hdr.height // mh), -(-hdr.width // mw)), dtype=bool)
    for x, y, w, h in boxes:
        grid[max(0, y // mh) : -(-(y + h) // mh), max(0, x // mw) : -(-(x + w) // mw)] = True
    return grid


def assert_coefficients(src: bytes, out: bytes, boxes, mcu, tables=None) -> None:
    """Outside: identical coefficients. Inside: AC all zero."""
    hdr = parse(src, tables)
    grid = mcu_mask(src, boxes, mcu, tables)
    a, b = coefficients(src, tables), coefficients(out, tables)
    for comp, ca, cb in zip(hdr.components, a, b):
        if len(hdr.components) == 1:
            m = grid
        else:
            m = np.repeat(np.repeat(grid, comp.v, 0), comp.h, 1)
        assert m.shape == ca.shape[:2]
        assert np.array_equal(ca[~m], cb[~m])
        assert not cb[m][:, 1:].any()
        if m.any():
            assert (cb[m][:, 0] != ca[m][:, 0]).any() or not ca[m][:, 1:].any()


@pytest.mark.parametrize("name", sorted(VARIANTS))
@pytest.mark.parametrize("fill", ["white", "black", (200, 30, 90)])
def test_blank_variants(name, fill):
    src = variant(name)
    boxes = [(30, 20, 50, 40), (0, 60, 9, 3)]
    res = blank_regions_detailed(src, boxes, fill)
    assert_coefficients(src, res.data, boxes, MCU[name])
    rgb = {"white": WHITE, "black": (0, 0, 0)}.get(fill, fill)
    if name in ("grey", "greyopt"):
        y = round(0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2])
        rgb = (y,)
    exact = res.max_fill_error == 0
    check_blank(src, res.data, boxes, MCU[name], rgb if exact else None)
    if not exact:
        assert "opt" in name or "jpegtran" in name or "mcus" in name  # only optimised tables ramp


def test_standard_tables_give_exact_fill():
    for name in ("444", "422", "420", "grey", "rst420rows", "rgb", "odd_sampling"):
        for fill in ("white", "black", "gray"):
            assert blank_regions_detailed(variant(name), BOXES, fill).max_fill_error <= 0.5


def test_no_boxes_and_empty_boxes_return_input():
    src = variant("420")
    assert blank_regions(src, []) == src
    assert blank_regions(src, [(10, 10, 0, 5), (5000, 5000, 10, 10), (-50, -50, 10, 10)]) == src


def test_box_clipped_at_image_edge():
    src = variant("420")
    boxes = [(190, 140, 500, 500)]
    out = blank_regions(src, boxes)
    check_blank(src, out, boxes, MCU["420"], WHITE)


def test_whole_image_box_equals_flat_tile_pixels():
    src = variant("422")
    full = blank_regions(src, [(0, 0, 203, 151)])
    flat = flat_tile(src)
    assert djpeg(full)[0].tolist() == djpeg(flat)[0].tolist()
    assert (djpeg(flat)[0] == 255).all()


@pytest.mark.parametrize("name", ["420", "444opt", "rst420rows", "rst_jpegtran", "grey", "rgb"])
def test_flat_tile(name):
    src = variant(name)
    out = flat_tile(src, "black")
    hdr = parse(src)
    assert out[: hdr.entropy_start] == src[: hdr.entropy_start]
    pixels, err = djpeg(out)
    assert err == b""
    assert pixels.max() <= 2 or "opt" in name or "jpegtran" in name
    c = coefficients(out)
    assert all(not a[..., 1:].any() for a in c)


def test_flat_tile_does_not_read_old_entropy_data():
    src = variant("420")
    hdr = parse(src)
    size = hdr.entropy_end - hdr.entropy_start
    damaged = src[: hdr.entropy_start] + b"\x00" * size + src[hdr.entropy_end :]
    assert djpeg(flat_tile(damaged))[1] == b""


def test_restart_intervals_untouched_are_copied():
    src = variant("rst420rows")  # one interval per 16-px MCU row
    out = blank_regions(src, [(40, 40, 20, 20)])  # MCU rows 2..3
    a, b = src.split(b"\xff\xd1")[0], out.split(b"\xff\xd1")[0]
    assert a == b  # header, interval 0, RST0, interval 1 verbatim
    assert src.split(b"\xff\xd1")[1] != out.split(b"\xff\xd1")[1]
    tail_a, tail_b = src.split(b"\xff\xd3")[1], out.split(b"\xff\xd3")[1]
    assert tail_a == tail_b
    check_blank(src, out, [(40, 40, 20, 20)], MCU["rst420rows"], WHITE)


def test_abbreviated_tile_with_tables():
    tables, tile = split_abbreviated(variant("420"))
    out = blank_regions(tile, BOXES, tables=tables)
    assert out.startswith(tile[: parse(tile, tables).entropy_start])
    assert b"\xff\xdb" not in out[:200] and b"\xff\xc4" not in out[:400]
    check_blank(tile, out, BOXES, MCU["420"], WHITE, tables=tables)
    assert_coefficients(tile, out, BOXES, MCU["420"], tables)
    flat = flat_tile(tile, tables=tables)
    assert (djpeg(b"\xff\xd8" + tables[2:-2] + flat[2:])[0] == 255).all()


def test_rgb_components_by_adobe_marker():
    src = variant("rgb")  # cjpeg -rgb writes Adobe APP14 transform 0
    out = blank_regions(src, BOXES, (10, 200, 60))
    check_blank(src, out, BOXES, (8, 8), (10, 200, 60))


def test_rgb_components_by_caller():
    """Aperio Photometric=RGB: R, G, B components and nothing in the stream says so."""
    src = pil_jpeg(texture(64, 64, 20), 0)
    hdr = parse(src)
    q = [hdr.quant[c.tq][0] for c in hdr.components]
    out = blank_regions(src, [(0, 0, 16, 16)], "white", colorspace="RGB")
    dc = [c[0, 0, 0] for c in coefficients(out)]
    assert dc == [round(8 * 127 / qi) for qi in q]
    out = blank_regions(src, [(0, 0, 16, 16)], "white")  # YCbCr: chroma neutral
    assert [c[0, 0, 0] for c in coefficients(out)][1:] == [0, 0]


def test_height_zero_needs_height_argument():
    src = bytearray(variant("444"))
    hdr = parse(bytes(src))
    sof = bytes(src).index(b"\xff\xc0")
    src[sof + 5 : sof + 7] = b"\x00\x00"
    from wsideid.jpeg import JpegBlankingError

    with pytest.raises(JpegBlankingError, match="height"):
        blank_regions(bytes(src), BOXES)
    out = blank_regions(bytes(src), BOXES, height=hdr.height)
    ref = blank_regions(variant("444"), BOXES)
    assert out[hdr.entropy_start :] == ref[hdr.entropy_start :]


def test_height_from_dnl():
    src = variant("444")
    hdr = parse(src)
    sof = src.index(b"\xff\xc0")
    dnl = b"\xff\xdc\x00\x04" + hdr.height.to_bytes(2, "big")
    zero = src[: sof + 5] + b"\x00\x00" + src[sof + 7 : hdr.entropy_end] + dnl + src[hdr.entropy_end :]
    assert parse(zero).height == hdr.height
    assert all(np.array_equal(a, b) for a, b in zip(coefficients(zero), coefficients(src)))
    out = blank_regions(zero, BOXES)
    assert out.endswith(dnl + b"\xff\xd9")
    assert out[hdr.entropy_start : -8] == blank_regions(src, BOXES)[hdr.entropy_start : -2]
