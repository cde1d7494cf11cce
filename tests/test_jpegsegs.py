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


@pytest.mark.realdata
@pytest.mark.parametrize("deferred", [False, True])
def test_rule_edits_record_the_tables_the_clean_tiles_use(deferred):
    """The planner's pass (every byte in place mode, the headers when deferred) records the
    JPEGTables slots the tiles use, so the writer need not read every tile's head again; it
    must be what a fresh read finds (CMU-1: abbreviated tiles)."""
    from realdata import TESTDATA
    from wsideid.tiff.edits import EditSet, EditStore
    src = TESTDATA / "svs" / "CMU-1-Small-Region.svs"
    if not src.exists():
        pytest.skip("needs ../shared/testdata")
    tf = read_tiff(str(src))
    ifd = tf.ifds[0]
    data = image_data(ifd, tf.byteorder)
    pre = jpegsegs.table_keys(ifd.entries[347].raw)
    edits = EditSet(EditStore(str(src)))
    jpegsegs.rule_edits(str(src), data.src_offsets, data.src_counts, pre, "jpeg", edits, 0, deferred=deferred)
    recorded = edits.image(0).header_tables
    assert recorded and recorded == jpegsegs.used_tables(str(src), data.src_offsets, data.src_counts, pre)
