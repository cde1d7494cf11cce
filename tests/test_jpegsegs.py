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


def _clean_tile(seed: int, restart: int = 0) -> bytes:
    """A baseline JPEG stream reduced to its decoding segments (the rule's own output)."""
    import io

    from PIL import Image
    rng = np.random.default_rng(seed)
    im = Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8))
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=90, **({"restart_marker_blocks": restart} if restart else {}))
    return jpegsegs.strip_segments(buf.getvalue())


def _entropy_start(tile: bytes) -> int:
    pos = 2
    while tile[pos + 1] != 0xDA:
        pos += 2 + int.from_bytes(tile[pos + 2:pos + 4], "big")
    return pos + 2 + int.from_bytes(tile[pos + 2:pos + 4], "big")


def _dirty_variants() -> dict[str, bytes]:
    t = _clean_tile(1)
    e = _entropy_start(t)
    mid = (e + len(t) - 2) // 2
    return {
        "clean": t,
        "other clean": _clean_tile(2),
        "COM in entropy data": t[:mid] + b"\xff\xfe\x00\x06Jane" + t[mid + 8:],
        "text after EOI": t + b"Jane Doe\xff\xd9",
        "second EOI early": t[:mid] + b"\xff\xd9" + t[mid + 2:],
        "fill byte before EOI": t[:-3] + b"\xff\xff\xd9",
        "lone FF before EOI": t[:-2] + b"\xff\xff\xd9",
    }


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("batch", [1, 3, 4096])
def test_counted_batches_judge_as_the_walk(tmp_path, monkeypatch, workers, batch):
    """The stream check's count without a walk (``_counted``, given the header pass's marker
    counts) flags exactly the tiles the walk flags: a marker in entropy-coded data, text after
    the EOI, an early EOI, fill bytes; restart markers and clean tiles pass either way."""
    monkeypatch.setattr(jpegsegs, "BATCH", batch)
    monkeypatch.setattr(jpegsegs, "WORKERS", workers)
    tiles = _dirty_variants()
    tiles["restart markers"] = _clean_tile(3, restart=1)
    names = list(tiles) * 3
    order = np.random.default_rng(7).permutation(len(names))
    names = [names[i] for i in order]
    raw = b"".join(tiles[n] for n in names)
    path = tmp_path / "tiles.bin"
    path.write_bytes(raw)
    counts = np.array([len(tiles[n]) for n in names], np.int64)
    offsets = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    heads = jpegsegs.header_scan(str(path), offsets, counts, frozenset())
    assert not len(heads.unsure)  # every header is clean: only the bytes after it differ
    walked = jpegsegs.scan_tiles(str(path), offsets, counts).flagged.tolist()
    counted = jpegsegs.scan_tiles(str(path), offsets, counts, frozenset(), heads.marks).flagged.tolist()
    dirty = [i for i, n in enumerate(names) if n not in ("clean", "other clean", "restart markers")]
    assert walked == counted == dirty
    judged = {names[i] for i in counted}
    assert judged >= {"COM in entropy data", "text after EOI", "second EOI early", "fill byte before EOI",
                      "lone FF before EOI"}
    assert not judged & {"clean", "other clean"}


def test_counted_check_passes_clean_batches_without_walking(tmp_path, monkeypatch):
    """Clean tiles back to back are passed by the count alone when the header pass's marks are
    given (the point of ``_counted``): the walk is not called."""
    t = _clean_tile(4)
    raw = t * 50
    path = tmp_path / "tiles.bin"
    path.write_bytes(raw)
    counts = np.full(50, len(t), np.int64)
    offsets = np.arange(50, dtype=np.int64) * len(t)
    heads = jpegsegs.header_scan(str(path), offsets, counts, frozenset())
    assert isinstance(heads.marks, int) and heads.marks > 0  # one header: one count, no per-tile array

    def no_walk(*a, **k):
        raise AssertionError("walked")
    monkeypatch.setattr(jpegsegs, "_walk", no_walk)
    assert not len(jpegsegs.scan_tiles(str(path), offsets, counts, frozenset(), heads.marks).flagged)


def test_rule_edits_pending_carry_the_header_marks(synth_slides):
    """Deferred planning hands the stream check each pending tile's header markers, in the
    pending tiles' order (tiles 0-2 of the synthetic slide are edited, so a subset pends)."""
    from wsideid.tiff.edits import EditSet, EditStore
    path = str(synth_slides["aperio"])
    offs, cnts = _tiles(path)
    edits = EditSet(EditStore(path))
    jpegsegs.rule_edits(path, offs, cnts, frozenset(), "jpeg", edits, 0, deferred=True)
    (p,) = edits.pending
    assert p.indices is not None and 0 not in p.indices.tolist()
    heads = jpegsegs.header_scan(path, p.offsets, p.counts, frozenset())
    want = heads.marks if isinstance(heads.marks, int) else heads.marks.tolist()
    got = p.marks if isinstance(p.marks, int) else p.marks.tolist()
    assert got == want
    assert not jpegsegs.check_pending(path, edits.pending)


@pytest.mark.parametrize("batch", [1, 2, 1024])
def test_header_scan_judges_each_tile(synth_slides, monkeypatch, batch):
    """Tiles sharing the batch's first header are judged together (``_common_header``), the
    others one by one: tiles 0-2 (COM / APP1 in their headers) are the unsure ones, whichever
    tile comes first in a batch."""
    monkeypatch.setattr(jpegsegs, "HEAD_BATCH", batch)
    path = str(synth_slides["aperio"])
    offs, cnts = _tiles(path)
    for order in (np.arange(len(offs)), np.arange(len(offs))[::-1].copy()):
        heads = jpegsegs.header_scan(path, offs, cnts, frozenset(), order)
        assert sorted(heads.unsure.tolist()) == [0, 1, 2]
        marks = np.broadcast_to(heads.marks, len(order)) if isinstance(heads.marks, int) else heads.marks
        assert (np.asarray(marks)[np.isin(order, [0, 1, 2])] == -1).all()
        assert (np.asarray(marks)[~np.isin(order, [0, 1, 2])] > 0).all()


def test_header_scan_of_a_truncated_file(tmp_path):
    """A tile the file ends inside is refused in one line; a short last tile that is whole reads."""
    from wsideid.errors import WsideidError
    t = _clean_tile(5)
    path = tmp_path / "tiles.bin"
    path.write_bytes(t + t[:100])
    offs = np.array([0, len(t)], np.int64)
    # the short tile is whole (100 bytes) but holds no complete header: unsure, not an error
    assert jpegsegs.header_scan(str(path), offs, np.array([len(t), 100], np.int64), frozenset()).unsure.tolist() == [1]
    with pytest.raises(WsideidError, match="truncated"):
        jpegsegs.header_scan(str(path), offs, np.array([len(t), len(t)], np.int64), frozenset())
