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

PEAK_BYTES_PER_TILE = 48  # measured 17-26 (issue 14, bench/README.md); a list of tuples per tile is > 100
BLOCKS_PER_TILE = 0.02  # measured < 0.001; one Python object per tile is 1.0


def _run(src, out, probes: dict) -> int:
    """The run's traced peak in bytes above what was allocated before it (blocks at the probes into ``probes``)."""
    import gc
    gc.collect()
    tracemalloc.reset_peak()
    before = tracemalloc.get_traced_memory()[0]
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
    probes: dict[str, int] = {}
    verify, on_recipe = pipeline._verify, pipeline._WriteEvents.__call__

    def blocks() -> int:
        return len(tracemalloc.take_snapshot().traces)

    def probing_verify(*args, **kw):
        probes["verify"] = blocks()
        return verify(*args, **kw)

    def probing_recipe(self, recipe):
        probes["layout"] = blocks()
        return on_recipe(self, recipe)

    monkeypatch.setattr(pipeline, "_verify", probing_verify)
    monkeypatch.setattr(pipeline._WriteEvents, "__call__", probing_recipe)
    tracemalloc.start(1)
    try:
        (tmp_path / "warm").mkdir()
        _run(small, tmp_path / "warm", {})  # imports, caches, compiled patterns: once, not per slide
        peaks, seen = {}, {}
        for name, src in (("small", small), ("big", big)):
            (tmp_path / name).mkdir()
            peaks[name] = _run(src, tmp_path / name, probes)
            seen[name] = dict(probes)
    finally:
        tracemalloc.stop()
    added = n_big - n_small
    per_tile = (peaks["big"] - peaks["small"]) / added
    print(f"tiles {n_small} -> {n_big}; traced peak {peaks['small'] / 1e6:.2f} -> {peaks['big'] / 1e6:.2f} MB "
          f"({per_tile:.1f} B a tile); blocks {seen['small']} -> {seen['big']}")
    assert added > 15_000
    assert per_tile <= PEAK_BYTES_PER_TILE, (per_tile, peaks)
    for probe in ("layout", "verify"):
        grew = (seen["big"][probe] - seen["small"][probe]) / added
        assert grew <= BLOCKS_PER_TILE, (probe, seen)
