"""Hostile and unsupported input: JpegBlankingError, nothing else, no hang."""

from __future__ import annotations

import random
import struct

import pytest

from jpeg_fixtures import cjpeg, needs_tools, split_abbreviated, texture, variant
from wsideid.jpeg import JpegBlankingError, blank_regions, coefficients, flat_tile
from wsideid.jpeg.decode import reencode
from wsideid.jpeg.dcplan import allowed_steps, plan_run

pytestmark = needs_tools


def attempt(data: bytes, tables: bytes | None = None) -> None:
    """Run every entry point; only JpegBlankingError may escape."""
    for fn in (
        lambda: blank_regions(data, [(8, 8, 40, 24)], tables=tables),
        lambda: flat_tile(data, tables=tables),
        lambda: coefficients(data, tables=tables),
    ):
        try:
            fn()
        except JpegBlankingError as e:
            assert "\n" not in str(e)


@pytest.mark.parametrize("name", ["420", "rst444mcus", "greyopt"])
def test_truncated_everywhere(name):
    data = variant(name)
    step = max(1, len(data) // 150)
    for cut in list(range(0, 700, 7)) + list(range(700, len(data), step)):
        attempt(data[:cut])
    with pytest.raises(JpegBlankingError):
        blank_regions(data[: len(data) // 2], [(0, 0, 8, 8)])


def test_header_byte_mutations():
    data = cjpeg(texture(48, 32, 41), "-restart", "1")  # small: ~1800 attempts
    sos = data.index(b"\xff\xda")
    rng = random.Random(1)
    for pos in range(2, sos + 14):
        for value in (0x00, 0xFF, rng.randrange(256)):
            mutated = data[:pos] + bytes([value]) + data[pos + 1 :]
            attempt(mutated)  # a hang would stop the suite (CI's limit), not a timed assertion


def test_entropy_byte_mutations():
    data = variant("422")
    hdr_end = data.index(b"\xff\xda") + 14
    rng = random.Random(2)
    for _ in range(150):
        pos = rng.randrange(hdr_end, len(data) - 2)
        mutated = bytearray(data)
        mutated[pos] = rng.randrange(256)
        attempt(bytes(mutated))


def test_random_garbage():
    rng = random.Random(3)
    for n in (0, 1, 2, 3, 4, 10, 100, 1000):
        attempt(bytes(rng.randrange(256) for _ in range(n)))
        attempt(b"\xff\xd8" + bytes(rng.randrange(256) for _ in range(n)))


def test_bogus_segment_lengths():
    data = variant("444")
    dqt = data.index(b"\xff\xdb")
    for length in (0, 1, 2, 3, 0xFFFF, len(data)):
        bad = data[: dqt + 2] + struct.pack(">H", length) + data[dqt + 4 :]
        with pytest.raises(JpegBlankingError):
            blank_regions(bad, [(0, 0, 8, 8)])


def test_huge_frame_small_data_is_refused_before_allocating():
    data = bytearray(variant("444"))
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = b"\xff\xff\xff\xff"
    with pytest.raises(JpegBlankingError, match="larger than its entropy data"):
        blank_regions(bytes(data), [(0, 0, 8, 8)])


def test_missing_tables():
    tables, tile = split_abbreviated(variant("420"))
    with pytest.raises(JpegBlankingError, match="missing"):
        blank_regions(tile, [(0, 0, 8, 8)])
    only_dqt = tables[: tables.index(b"\xff\xc4")] + b"\xff\xd9"
    with pytest.raises(JpegBlankingError, match="Huffman table"):
        coefficients(tile, tables=only_dqt)
    with pytest.raises(JpegBlankingError, match="JPEGTables"):
        blank_regions(tile, [], tables=b"junk")


@pytest.mark.parametrize(
    "args,words",
    [
        (("-progressive",), "progressive"),
        (("-arithmetic",), "arithmetic"),
    ],
)
def test_unsupported_processes(args, words):
    data = cjpeg(texture(32, 32, 40), *args)
    with pytest.raises(JpegBlankingError, match=words):
        blank_regions(data, [(0, 0, 8, 8)])


def test_twelve_bit_and_lossless_refused():
    data = bytearray(variant("444"))
    sof = data.index(b"\xff\xc0")
    twelve = data[:]
    twelve[sof + 4] = 12
    with pytest.raises(JpegBlankingError, match="12-bit"):
        blank_regions(bytes(twelve), [])
    lossless = data[:]
    lossless[sof + 1] = 0xC3
    with pytest.raises(JpegBlankingError, match="lossless"):
        blank_regions(bytes(lossless), [])


def test_cmyk_and_multiscan_refused():
    from PIL import Image
    import io

    buf = io.BytesIO()
    Image.new("CMYK", (16, 16)).save(buf, "JPEG")
    with pytest.raises(JpegBlankingError, match="4 components"):
        blank_regions(buf.getvalue(), [(0, 0, 8, 8)])
    data = bytearray(variant("444"))
    sos = data.index(b"\xff\xda")
    data[sos + 4] = 1  # claims one component in the scan of a 3-component frame
    with pytest.raises(JpegBlankingError):
        blank_regions(bytes(data), [])


def test_bad_arguments():
    data = variant("444")
    for fill in ("purple", (1, 2), (0, 0, 300), None):
        with pytest.raises(JpegBlankingError):
            blank_regions(data, [(0, 0, 8, 8)], fill)
    with pytest.raises(JpegBlankingError):
        blank_regions(data, [(0, 0, "x", 8)])
    with pytest.raises(JpegBlankingError):
        blank_regions(data, [(0, 0, 8, 8)], colorspace="Lab")
    with pytest.raises(JpegBlankingError):
        blank_regions("not bytes", [])  # type: ignore[arg-type]


def test_dc_planner_gives_up_cleanly():
    steps = allowed_steps([0, 1])  # differences -1, 0, 1 only
    assert plan_run(0, 0, 1, 500, steps, -1000, 1000) == [1]  # nearest codable
    assert plan_run(0, None, 5, 3, steps, -1000, 1000) == [1, 2, 3, 3, 3]  # ramp
    assert plan_run(0, 10, 2, 3, steps, -1000, 1000) is None  # 10 unreachable
    assert plan_run(0, 2, 3, 9, steps, -1000, 1000) == [1, 2, 3]  # up as far as b allows
    only_big = allowed_steps([5])  # no zero step: flat runs must alternate
    vals = plan_run(0, None, 4, 20, only_big, -100, 100)
    assert vals is not None and all(16 <= abs(b - a) <= 31 for a, b in zip([0] + vals, vals))


def test_round_trip_of_damaged_tail_raises():
    data = variant("420")
    with pytest.raises(JpegBlankingError):
        reencode(data[:-200] + b"\xff\xd9")
