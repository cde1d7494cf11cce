"""The tile-header scan: same answer whatever the batch size, trailing bytes and COM found."""

from __future__ import annotations

import numpy as np
import pytest

from wsideid.tiff import jpegsegs
from wsideid.tiff.container import read_tiff
from wsideid.tiff_family.vendors.tiff_base import image_data


def _tiles(path):
    tf = read_tiff(path)
    d = image_data(tf.ifds[0], tf.byteorder)
    return d.src_offsets, d.src_counts


@pytest.mark.parametrize("batch", [1, 2, 3, 5, 4096])
def test_batches_agree(batch, synth_slides, monkeypatch, tmp_path):
    path = synth_slides["aperio"]  # tiles 0-2 carry COM / APP1 segments
    offs, cnts = _tiles(path)
    monkeypatch.setattr(jpegsegs, "BATCH", batch)
    assert jpegsegs.tiles_with_segments(str(path), offs, cnts).tolist() == [0, 1, 2]
    # bytes after EOI in one tile: shrink its neighbour's view by pretending
    # the tile is longer than its stream (the next tile's first bytes follow)
    longer = cnts.copy()
    longer[4] += 10
    hits = jpegsegs.tiles_with_segments(str(path), offs[:5], longer[:5]).tolist()
    assert hits == [0, 1, 2, 4]


def test_unsorted_offsets_and_zero_tiles(synth_slides):
    offs, cnts = _tiles(synth_slides["aperio"])
    order = np.arange(len(offs))[::-1]
    c = cnts[order].copy()
    c[0] = 0
    hits = jpegsegs.tiles_with_segments(str(synth_slides["aperio"]), offs[order], c)
    assert sorted(order[hits].tolist()) == [0, 1, 2]
