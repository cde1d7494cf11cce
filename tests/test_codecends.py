"""tiff/codecends.py: where an LZW or Deflate tile's data ends, and what a tile may hold after it."""

from __future__ import annotations

import zlib

import imagecodecs
import numpy as np
import pytest

from wsideid.errors import MalformedFile
from wsideid.tiff.codecends import DEFLATE, LZW, check_tails, deflate_end, lzw_end


def _tile_file(tmp_path, data: bytes):
    path = tmp_path / "tiles.bin"
    path.write_bytes(b"\0" * 16 + data)
    return str(path), np.array([16]), np.array([len(data)])


def _noise(n: int) -> bytes:
    return np.random.default_rng(3).integers(0, 255, n, dtype=np.uint8).tobytes()


def test_deflate_end_of_a_tile_that_inflates_past_a_megabyte():
    """The end was measured inside the last unconsumed tail, not the whole tile: valid Deflate
    tiles inflating past 1 MB were refused as holding hidden data."""
    data = zlib.compress(_noise(600_000) + bytes(1_500_000), 6)
    assert deflate_end(data) == len(data)
    assert deflate_end(data + b"DOE^JANE") == len(data)


def test_lzw_end_is_found_and_a_stream_without_it_is_none():
    data = imagecodecs.lzw_encode(_noise(20_000))
    assert lzw_end(data) == len(data)
    assert lzw_end(data[:-2]) is None


@pytest.mark.parametrize("comp", [LZW, DEFLATE])
def test_a_clean_tile_passes(tmp_path, comp):
    raw = _noise(50_000)
    data = imagecodecs.lzw_encode(raw) if comp == LZW else zlib.compress(raw)
    path, offs, counts = _tile_file(tmp_path, data + bytes(7))  # zero padding carries nothing
    check_tails(path, "image 0", comp, offs, counts, None)


@pytest.mark.parametrize("comp", [LZW, DEFLATE])
def test_text_after_the_data_is_refused(tmp_path, comp):
    raw = _noise(50_000)
    data = imagecodecs.lzw_encode(raw) if comp == LZW else zlib.compress(raw)
    path, offs, counts = _tile_file(tmp_path, data + b"DOE^JANE MRN4455667")
    with pytest.raises(MalformedFile, match="after its image data"):
        check_tails(path, "image 0", comp, offs, counts, None)


def test_lzw_without_its_end_code_is_refused(tmp_path):
    """A stream cut before its EOI still decodes when the reader knows the tile's size, so a name
    after it was copied unexamined; where the data ends is unknown, so the tile is refused."""
    data = imagecodecs.lzw_encode(_noise(20_000))[:-2]
    path, offs, counts = _tile_file(tmp_path, data)
    with pytest.raises(MalformedFile, match="no end"):
        check_tails(path, "image 0", LZW, offs, counts, None)
