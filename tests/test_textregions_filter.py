"""The text-region finder's square max/min filter (``textregions._window``), computed in place
over shifted views of one padded copy (issue 14: less memory and time beside the copy), must
equal the plain definition: each pixel the max (min) of its (2r+1)^2 window, edges replicated."""

from __future__ import annotations

import numpy as np
import pytest

from wsideid.detect import textregions


def _plain(a: np.ndarray, r: int, op) -> np.ndarray:
    p = np.pad(a, r, mode="edge")
    h, w = a.shape
    stack = [p[dy:dy + h, dx:dx + w] for dy in range(2 * r + 1) for dx in range(2 * r + 1)]
    return op.reduce(np.stack(stack), axis=0)


@pytest.mark.parametrize("r", [1, 3, 6])
@pytest.mark.parametrize("op", [np.maximum, np.minimum])
def test_window_is_the_square_filter(r, op):
    rng = np.random.default_rng(r)
    a = rng.integers(0, 256, (37, 53), dtype=np.uint8)
    before = a.copy()
    got = textregions._window(a, r, op)
    assert got.dtype == a.dtype and got.shape == a.shape
    assert (got == _plain(a, r, op)).all()
    assert (a == before).all()  # the input is not written to


def test_ink_map_marks_dark_strokes_on_light_ground_only():
    g = np.full((40, 60), 230, np.uint8)
    g[10:30, 20:22] = 40  # a stroke on paper
    g[:, 45:] = 100  # tissue-grey ground (below PAPER_MIN) with a darker speck: not ink on paper
    g[18:20, 50:52] = 50
    from PIL import Image
    ink, bg = textregions.ink_map(Image.fromarray(g), 3)
    assert ink[10:30, 20:22].all() and ink.sum() == 40
    assert bg.dtype == np.int16 and bg[15, 10] == 230
