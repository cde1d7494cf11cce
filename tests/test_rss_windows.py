"""Memory must not grow with slide size (issue 14): the steps that walk every tile hold a window.

``test_rss_per_tile.py`` counts what a whole run holds per tile; this measures the *peak*
(``tracemalloc``, numpy's buffers included) of each step that walks a slide's tile tables,
on two synthetic slides of small tiles (``synth_large.build_svs(noise=0, quality=20)``),
and divides the difference by the tiles added. With the window (``tiff.spans.WINDOW``) set
to 512 tiles, a step that takes the tables a window at a time adds nothing per tile; one
that gathers them adds 16-100 bytes a tile (two int64 arrays are 16), and tifffile's parse
of the full-resolution level ~80 (tuples of Python ints). Before this session: layout check
~60 B a tile, verifier's gap scans ~48, header pass ~16, writer ~100, a thumbnail read ~110.
"""

from __future__ import annotations

import gc
import tracemalloc

import pytest

from wsideid.synth_large import build_svs
from wsideid.tiff.container import read_tiff

WINDOW = 512


@pytest.fixture(scope="module")
def slides(tmp_path_factory):
    work = tmp_path_factory.mktemp("windows")
    small, big = work / "small.svs", work / "big.svs"
    return (str(small), build_svs(str(small), 2.5, noise=0, quality=20)), (str(big), build_svs(str(big), 35, noise=0, quality=20))


@pytest.fixture(autouse=True)
def small_window(monkeypatch):
    from wsideid import streamheads
    monkeypatch.setattr(streamheads, "PIECE", 64 << 10)  # a gap (the file's own tile tables) is read in pieces
    try:
        from wsideid.tiff import spans
    except ImportError:  # main before this session: no windows
        return
    monkeypatch.setattr(spans, "WINDOW", WINDOW)


def _peak(step) -> int:
    """Bytes allocated at the step's peak above what was allocated when it began."""
    gc.collect()
    tracemalloc.start(1)
    try:
        before = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        step()
        return tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()


def _per_tile(slides, step) -> float:
    (small, n_small), (big, n_big) = slides
    step(small)  # imports and caches: once, not per slide
    peaks = {name: _peak(lambda p=path: step(p)) for name, path in (("small", small), ("big", big))}
    per_tile = (peaks["big"] - peaks["small"]) / (n_big - n_small)
    print(f"peak {peaks} ({per_tile:.2f} B a tile)")
    assert n_big - n_small > 15_000
    return per_tile


def test_layout_check_holds_a_window(slides):
    """The layout check (every tile against the metadata and the other images' data)."""
    from wsideid.tiff_family.vendors.tiff_base import check_data_layout
    parsed = {p: read_tiff(p) for p, _ in slides}
    assert _per_tile(slides, lambda p: check_data_layout(parsed[p])) <= 2


def test_verifier_gap_scans_hold_a_window(slides):
    """The unreferenced-bytes check and the residual scan's non-pixel bytes and tile headers."""
    from wsideid.tiff_family.verify import non_pixel_segments, unreferenced_nonzero
    parsed = {p: read_tiff(p) for p, _ in slides}

    def scans(p):
        unreferenced_nonzero(p, parsed[p])
        for _ in non_pixel_segments(p, parsed[p]):
            pass
    assert _per_tile(slides, scans) <= 2


def test_writer_holds_the_output_tables_and_a_window(slides, tmp_path):
    """The writer's data plan and layout: what it must make per tile is the output's offsets and
    counts (8 bytes a tile in a classic TIFF) and the metadata bytes that hold them (8 more);
    the source's arrays (the caller's) are not counted."""
    from wsideid.tiff.writer import ImageData, OutEntry, OutIfd, write_tiff
    from wsideid.tiff_family.vendors.tiff_base import image_data

    def ifds(p):
        tf = read_tiff(p)
        out = []
        for ifd in tf.all_ifds():
            d = image_data(ifd, tf.byteorder)
            if d is not None:
                out.append(OutIfd({256: OutEntry(256, 4, 1, b"\x08\0\0\0")}, ImageData(324, 325, d.src_offsets, d.src_counts)))
        return out
    made = {p: ifds(p) for p, _ in slides}
    runs = iter(range(10))

    def write(p):
        write_tiff(p, str(tmp_path / f"o{next(runs)}.tif"), made[p], "classic", "<")
    assert _per_tile(slides, write) <= 18


def test_reading_a_kept_image_parses_no_level(slides):
    """The residual scan reads the thumbnail, label, macro and reduced levels; tifffile parses the
    first page of the file it opens in full (the level of all the tiles, as Python ints): shown
    the image wanted as its first page, it does not. Our own parse (4 + 4 bytes a tile) stays."""
    from wsideid.tiff.pixels import read_tiff_image
    assert _per_tile(slides, lambda p: read_tiff_image(p, 1)) <= 12
