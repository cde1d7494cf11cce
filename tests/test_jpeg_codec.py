"""The Huffman codec itself: decode/encode round trip and coefficients.

Round trip: decoding every block and encoding it again with the original
tables must give back the input byte for byte; that proves the decoder
reads exactly what the encoder wrote. ``coefficients`` is compared with
libjpeg's own coefficient reader (jpeglib) where that package is present.
"""

from __future__ import annotations

import numpy as np
import pytest

from jpeg_fixtures import VARIANTS, needs_tools, split_abbreviated, variant
from wsideid.jpeg import coefficients
from wsideid.jpeg.decode import reencode
from wsideid.jpeg.markers import parse

pytestmark = needs_tools


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_round_trip_is_byte_identical(name):
    data = variant(name)
    assert reencode(data) == data


def test_round_trip_abbreviated():
    tables, tile = split_abbreviated(variant("420"))
    assert reencode(tile, tables=tables) == tile


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_coefficients_match_libjpeg(name, tmp_path):
    jpeglib = pytest.importorskip("jpeglib")
    data = variant(name)
    path = tmp_path / "x.jpg"
    path.write_bytes(data)
    ref = jpeglib.read_dct(str(path))
    refs = [ref.Y] if ref.Cb is None else [ref.Y, ref.Cb, ref.Cr]
    ours = coefficients(data)
    assert len(ours) == len(refs)
    for mine, theirs in zip(ours, refs):
        by, bx = theirs.shape[:2]
        assert mine.shape[0] >= by and mine.shape[1] >= bx
        assert np.array_equal(mine[:by, :bx].reshape(by, bx, 8, 8), theirs)


def test_coefficients_shapes_include_mcu_padding():
    c = coefficients(variant("420"))  # 203 x 151 -> 13 x 10 MCUs of 16 px
    assert [a.shape for a in c] == [(20, 26, 64), (10, 13, 64), (10, 13, 64)]


def test_abbreviated_needs_tables():
    tables, tile = split_abbreviated(variant("444"))
    assert np.array_equal(coefficients(tile, tables=tables)[0], coefficients(variant("444"))[0])
    hdr = parse(tile, tables)
    assert hdr.width == 203 and hdr.height == 151
