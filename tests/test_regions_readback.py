"""``regions.box_spread``, the read-back of a blanked region (the ``regions-blank`` check):
the spread over a box read in windows equals the spread computed over all its pixels at
once, for RGB and grey readers, boxes larger than a window and boxes at odd offsets."""

from __future__ import annotations

import numpy as np
import pytest

from wsideid import regions


@pytest.mark.parametrize("channels", [3, 0])
def test_box_spread_equals_the_whole_box_at_once(channels, monkeypatch):
    monkeypatch.setattr(regions, "READBACK_WINDOW", 64)  # several windows per box
    rng = np.random.default_rng(channels)
    shape = (300, 260, channels) if channels else (300, 260)
    img = rng.integers(90, 200, shape, dtype=np.uint8)
    img[10:20, 200:210] = 7  # an outlier in one window only
    if channels:
        img[250:260, 5:15, 2] = 251  # and a high value in one channel only
    calls = []

    def read(x, y, w, h):
        calls.append((w, h))
        return img[y:y + h, x:x + w]

    for box in [(0, 0, 260, 300), (5, 3, 201, 130), (190, 0, 70, 300), (30, 30, 1, 1)]:
        x, y, w, h = box
        part = img[y:y + h, x:x + w].astype(int)
        want = int((part.reshape(-1, channels or 1).max(axis=0) - part.reshape(-1, channels or 1).min(axis=0)).max())
        assert regions.box_spread(read, box) == want, box
    assert max(max(c) for c in calls) <= 64
    assert regions.box_spread(lambda *a: None, (0, 0, 10, 10)) is None
