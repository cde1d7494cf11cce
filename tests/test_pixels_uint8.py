"""Wide samples (16-bit, float) converted to 8 bits for the detectors without a wide copy of the image.

``tiff.pixels._to_uint8_rgb`` used to divide the whole image in float64 (a 16 MP 16-bit
RGB image: ~380 MB beside its own 96 MB); the DICOM reader made a float32 copy. Both now
use ``tiff.pixels.to_uint8``, in bands of rows. Numpy's buffers are traced by tracemalloc,
so the peak of the conversion is measured exactly, in this process.
"""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from wsideid.tiff.pixels import _to_uint8_rgb, to_uint8

SHAPE = (2000, 2000, 3)  # 12 M samples: 24 MB as uint16, 96 MB as float64
BAND_MB = 8  # the conversion's working band (int64 or float64 of 1 M samples)


def _peak_mb(fn, arr: np.ndarray) -> tuple[float, np.ndarray]:
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        out = fn(arr)
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    return peak / 2 ** 20, out


@pytest.mark.parametrize("dtype", [np.uint16, np.int32, np.float32])
def test_conversion_holds_one_band_not_a_wide_copy(dtype):
    rng = np.random.default_rng(1)
    arr = rng.integers(0, 4096, SHAPE).astype(dtype)
    peak, out = _peak_mb(_to_uint8_rgb, arr)
    result_mb = out.nbytes / 2 ** 20
    print(f"{np.dtype(dtype).name}: peak {peak:.1f} MB for a {arr.nbytes / 2 ** 20:.0f} MB image")
    assert peak <= result_mb + 2 * BAND_MB + 1, peak  # the 11 MB result and a band, not 96 MB of float64
    want = (arr.astype(np.float64) / arr.max() * 255).astype(np.uint8)
    assert np.abs(out.astype(int) - want).max() <= 1  # the same scaling as before (floor, up to float rounding)


def test_window_clips_and_maps_ends():
    arr = np.array([[0, 100, 200, 300, 65535]], np.uint16)
    assert to_uint8(arr, 100, 300).tolist() == [[0, 0, 127, 255, 255]]
    assert to_uint8(arr, 5, 5).tolist() == [[0] * 5]  # a flat image is black, as the DICOM reader had it
    assert to_uint8(np.array([[-1.0, 0.5, 2.0]]), 0, 1).tolist() == [[0, 127, 255]]
