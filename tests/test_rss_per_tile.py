"""Memory must not grow with slide size (issue 14): no per-tile structure held in Python objects.

``test_rss.py`` compares whole-process peaks (0.2 against 1 GB, a wide margin: RSS
depends on scheduling). This counts what the run itself allocates, exactly, with
``tracemalloc`` (numpy's buffers are traced too), on two synthetic slides of
small tiles (``synth_large.build_svs(noise=0, quality=20)``: ~1.7 KB a tile, so a
slide of 20 000 tiles is 35 MB), and divides the difference by the tiles added:

- bytes at the run's peak per added tile: the arrays a TIFF itself holds per tile
  (source offsets and counts, the output's, the stream check's batch of them) are
  a few dozen bytes; a Python list of ints is 36 bytes a tile *per list*, of
  tuples over 100;
- traced blocks alive when verification starts and when the write's layout is
  fixed (every Python object is at least one block; a numpy array is one or two
  whatever its length): a per-tile structure of objects adds one block a tile or
  more.

No timing, no absolute RSS: counts of the run's own allocations.
"""

from __future__ import annotations

import tracemalloc

import pytest

from wsideid import pipeline
from wsideid.enums import DetectMode
from wsideid.options import DeidOptions
from wsideid.synth_large import build_svs

BESIDE = ["*/jpegsegs.py", "*/tileorder.py", "*/hashing.py", "*/concurrent/futures/*", "*/threading.py", "*/tracemalloc.py"]
# measured at the copy 64 before session 8, now 32 (the source's tables as parsed, 8, the image arrays
# the copy and the stream check share, 16, the metadata bytes, 8); 16 at verification
HELD_BYTES_PER_TILE = 40
PEAK_BYTES_PER_TILE = 256  # measured ~140 (its phase moves with the slide: transient numpy arrays); a list of tuples a tile adds > 100
BLOCKS_PER_TILE = 0.02  # measured < 0.001; one Python object per tile is 1.0


start = [0]


def _run(src, out) -> int:
    """The run's traced peak in bytes above what was allocated before it."""
    import gc
    gc.collect()
    tracemalloc.reset_peak()
    before = start[0] = tracemalloc.get_traced_memory()[0]
    pipeline.deidentify(str(src), str(out), DeidOptions(detect=DetectMode.OFF, new_id="R-1", overwrite=True))
    return tracemalloc.get_traced_memory()[1] - before


@pytest.fixture
def slides(tmp_path):
    small, big = tmp_path / "small.svs", tmp_path / "big.svs"
    n_small = build_svs(str(small), 2.5, noise=0, quality=20)
    n_big = build_svs(str(big), 35, noise=0, quality=20)
    return (small, n_small), (big, n_big)


def test_run_holds_no_per_tile_python_objects(slides, tmp_path, monkeypatch):
    (small, n_small), (big, n_big) = slides
    probes: dict[str, tuple[int, int]] = {}
    from wsideid.tiff import writer
    verify, copy = pipeline._verify, writer._DataPlan.copy

    def blocks() -> tuple[int, int]:
        """(traced blocks alive, their bytes), leaving out what the threads beside the copy hold
        at that moment (the stream check's batch, the hash's buffer: bounded, and timing-dependent)."""
        snap = tracemalloc.take_snapshot().filter_traces(
            [tracemalloc.Filter(False, pattern, all_frames=True) for pattern in BESIDE])
        return len(snap.traces), sum(t.size for t in snap.traces)

    def probing_verify(*args, **kw):
        probes["verify"] = blocks()
        return verify(*args, **kw)

    def probing_copy(self, *args):
        probes["copy"] = blocks()
        return copy(self, *args)

    monkeypatch.setattr(pipeline, "_verify", probing_verify)
    monkeypatch.setattr(writer._DataPlan, "copy", probing_copy)
    tracemalloc.start(2)  # two frames: enough to tell the threads' buffers apart, cheap enough
    try:
        (tmp_path / "warm").mkdir()
        _run(small, tmp_path / "warm")  # imports, caches, compiled patterns: once, not per slide
        peaks, seen = {}, {}
        for name, src in (("small", small), ("big", big)):
            (tmp_path / name).mkdir()
            peaks[name] = _run(src, tmp_path / name)
            seen[name] = dict(probes)
    finally:
        tracemalloc.stop()
    added = n_big - n_small
    per_tile = (peaks["big"] - peaks["small"]) / added
    print(f"tiles {n_small} -> {n_big}; traced peak {peaks['small'] / 1e6:.2f} -> {peaks['big'] / 1e6:.2f} MB "
          f"({per_tile:.1f} B a tile); blocks {seen['small']} -> {seen['big']}")
    assert added > 15_000
    assert per_tile <= PEAK_BYTES_PER_TILE, (per_tile, peaks)  # transient arrays included
    for probe in ("copy", "verify"):
        blocks = (seen["big"][probe][0] - seen["small"][probe][0]) / added
        held = (seen["big"][probe][1] - seen["small"][probe][1]) / added
        print(f"{probe}: {blocks:.4f} blocks, {held:.1f} bytes held a tile")
        assert blocks <= BLOCKS_PER_TILE, (probe, seen)
        assert held <= HELD_BYTES_PER_TILE, (probe, seen)


def test_reading_a_kept_image_leaves_nothing_per_tile(slides):
    """tifffile parses the first page (level 0) of any file it opens, its tile offsets and counts
    as tuples of ints in objects that refer to each other: after the residual scan read the
    thumbnail they waited for the cycle collector and were still alive in verification (the
    run's peak grew ~5 MB a GB). ``read_tiff_image`` collects them before it returns."""
    import gc

    from wsideid.tiff.pixels import read_tiff_image
    (small, n_small), (big, n_big) = slides
    left = {}
    read_tiff_image(str(small), 1)  # imports and caches: once, not per slide
    gc.collect()
    tracemalloc.start(1)
    try:
        for name, src in (("small", small), ("big", big)):
            before = tracemalloc.get_traced_memory()[0]
            img = read_tiff_image(str(src), 1)  # the thumbnail: image 1 of an SVS
            assert max(img.size) <= 1024
            del img
            left[name] = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    per_tile = (left["big"] - left["small"]) / (n_big - n_small)
    print(f"left after the read: {left} ({per_tile:.2f} B a tile)")
    assert per_tile <= 4, left
