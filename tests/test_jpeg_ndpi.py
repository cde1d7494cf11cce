"""blank_restart_intervals: NDPI-style strips addressed by McuStarts."""

from __future__ import annotations

import numpy as np
import pytest

from jpeg_fixtures import check_blank, cjpeg, djpeg, needs_tools, rst_offsets, texture
from wsideid.jpeg import JpegBlankingError, blank_regions, blank_restart_intervals, coefficients

pytestmark = needs_tools


def ndpi_like(img: np.ndarray) -> bytes:
    """4:4:4 with one restart interval per MCU row, as NDPI levels are."""
    return cjpeg(img, "-sample", "1x1", "-restart", "1")


def test_shorter_intervals_are_padded_and_offsets_kept():
    src = ndpi_like(texture(160, 96, 30))
    starts = rst_offsets(src)
    assert len(starts) == 12
    boxes = [(20, 17, 50, 20)]
    out, new = blank_restart_intervals(src, starts, boxes, "white")
    assert new == starts and len(out) == len(src)
    assert b"\xff\xff" in out  # fill bytes before a marker
    for s in starts[1:]:
        assert out[s - 2] == 0xFF and 0xD0 <= out[s - 1] <= 0xD7
    check_blank(src, out, boxes, (8, 8), (255, 255, 255))
    # Same coefficients as the plain path (which drops the fill bytes).
    ref = blank_regions(src, boxes)
    assert all(np.array_equal(a, b) for a, b in zip(coefficients(out), coefficients(ref)))
    # Untouched intervals are byte-identical.
    assert out[: starts[2]] == src[: starts[2]] and out[starts[5] :] == src[starts[5] :]


def test_longer_interval_moves_later_offsets():
    img = np.full((64, 128, 3), 90, dtype=np.uint8)  # flat: DC diffs are all 0
    src = ndpi_like(img)
    starts = rst_offsets(src)
    boxes = [(40, 16, 8, 8)]  # one MCU of a contrasting colour costs bits
    out, new = blank_restart_intervals(src, starts, boxes, "white")
    assert len(out) > len(src)
    assert new[:3] == starts[:3] and all(n > s for n, s in zip(new[3:], starts[3:]))
    assert len(set(n - s for n, s in zip(new[3:], starts[3:]))) == 1
    for i, s in enumerate(new[1:]):
        assert out[s - 2 : s] == bytes((0xFF, 0xD0 + (i & 7)))
    assert rst_offsets(out) == new
    check_blank(src, out, boxes, (8, 8), (255, 255, 255))


def test_no_boxes_is_identity():
    src = ndpi_like(texture(64, 32, 31))
    starts = rst_offsets(src)
    assert blank_restart_intervals(src, starts, [], "black") == (src, starts)


@pytest.mark.parametrize(
    "mangle",
    [
        lambda s: s[:-1],  # one entry missing
        lambda s: [s[0] + 1] + s[1:],  # not the entropy start
        lambda s: s[:2] + [s[2] + 3] + s[3:],  # not after a RST marker
        lambda s: s[:2] + [s[1]] + s[3:],  # not increasing
        lambda s: s[:-1] + [10**9],  # beyond the strip
    ],
)
def test_bad_mcu_starts_are_refused(mangle):
    src = ndpi_like(texture(64, 32, 32))
    with pytest.raises(JpegBlankingError):
        blank_restart_intervals(src, mangle(rst_offsets(src)), [(0, 0, 8, 8)])


def test_padding_decodes_cleanly():
    src = ndpi_like(texture(96, 48, 33))
    starts = rst_offsets(src)
    out, _ = blank_restart_intervals(src, starts, [(0, 0, 96, 48)], "gray")
    pixels, err = djpeg(out)
    assert err == b"" and np.abs(pixels.astype(int) - 128).max() <= 1
