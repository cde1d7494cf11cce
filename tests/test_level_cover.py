"""The level coverage rule (``wsideid.level_cover``, issue 14): a reduced level is skipped by the
residual detectors when a smaller scanned level of its pyramid shows the same field of view at
no less detail; skipped levels are recorded in the audit, never dropped silently.

Why tests: the rule trades scanning cost for a stated limit (docs/threat-model.md); these pin
which levels it skips (and, above all, which it must not: a pyramid with no smaller level of at
least the scan size, another aspect ratio, another pyramid, planes it cannot tell apart), and
that a slide run records the skip and still flags text a scanner writes into every level.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile

from wsideid import synth
from wsideid.level_cover import LevelSize as L
from wsideid.level_cover import covered_note, covering, same_view
from wsideid.tiff.pixels import OUTPUT_SCAN_PIXELS

JPEG = dict(photometric="rgb", compression="jpeg", compressionargs={"level": 85}, metadata=None)


def test_scan_size_is_four_megapixels():
    assert OUTPUT_SCAN_PIXELS == 4_000_000  # the sizes below are chosen around it


def test_larger_levels_are_covered_by_the_smallest_level_of_the_scan_size():
    # Aperio-like, factor 4: 46000 x 32000 -> 11500 x 8000 -> 2875 x 2000 -> 718 x 500
    levels = [L(1, 11500, 8000), L(2, 2875, 2000), L(3, 718, 500)]
    assert covering(levels) == {1: 2}
    # factor 2, five reduced levels: everything above the smallest >= 4 MP is covered by it
    levels = [L(k, 40960 >> k, 30720 >> k) for k in range(1, 6)]  # 20480 ... 1280 wide
    sizes = {lv.key: lv.pixels for lv in levels}
    assert sizes[4] >= OUTPUT_SCAN_PIXELS > sizes[5]
    assert covering(levels) == {1: 4, 2: 4, 3: 4}


def test_bench_pyramid_rounded_to_tiles():
    """bench/bench_deid.py's slides: levels rounded to 256 px tiles, not exactly a quarter."""
    assert covering([L(2, 10752, 10752), L(3, 2560, 2560)]) == {2: 3}


def test_only_two_levels():
    assert covering([L(1, 5000, 4000), L(2, 2500, 2000)]) == {1: 2}  # 5 MP covers 20 MP
    assert covering([L(1, 4000, 3000), L(2, 2000, 1500)]) == {}  # 3 MP is below the scan size


def test_a_huge_level_with_no_smaller_level_is_scanned():
    assert covering([L(1, 30000, 20000)]) == {}
    assert covering([L(1, 30000, 20000), L(2, 1875, 1250)]) == {}  # the smaller one is 2.3 MP


def test_another_aspect_ratio_covers_nothing():
    assert covering([L(1, 12000, 8000), L(2, 3000, 3000)]) == {}
    assert covering([L(1, 12000, 8000), L(2, 3000, 2010)]) == {}  # 10 px off: another field of view
    assert covering([L(1, 12001, 8001), L(2, 3001, 2001)]) == {1: 2}  # rounding of halving


def test_same_view_tolerates_less_than_a_pixel_per_side():
    assert same_view(L(0, 10001, 7001), L(1, 5001, 3501))  # ceil
    assert same_view(L(0, 10001, 7001), L(1, 5000, 3500))  # floor
    assert same_view(L(0, 10001, 7001), L(1, 5001, 3500))  # mixed
    assert not same_view(L(0, 10000, 7000), L(1, 5000, 3502))
    assert not same_view(L(0, 10000, 7000), L(1, 0, 3500))


def test_levels_of_another_pyramid_cover_nothing():
    """SubIFD pyramids of two images (channels, series) never cover each other."""
    levels = [L(1, 8000, 8000, "a"), L(2, 2200, 2200, "b")]
    assert covering(levels) == {}
    levels.append(L(3, 2200, 2200, "a"))
    assert covering(levels) == {1: 3}


def test_planes_the_driver_did_not_tell_apart_cover_nothing():
    """Two levels of one size in one pyramid (focal planes, channels): which smaller plane shows
    the same picture is unknown, so the whole pyramid is scanned."""
    levels = [L(1, 8000, 8000), L(2, 8000, 8000), L(3, 2200, 2200), L(4, 2200, 2200)]
    assert covering(levels) == {}


def test_a_larger_level_the_detectors_would_see_sharper_is_scanned():
    """5120 px read at 4 MP is 1280 px, what the detectors take whole; 2100 px gives them 1050 px."""
    assert covering([L(1, 5120, 5120), L(2, 2100, 2100)]) == {}
    assert covering([L(1, 4200, 4200), L(2, 2100, 2100)]) == {1: 2}  # 2100 px: both seen at 1050 px


def test_a_level_is_covered_only_by_a_scanned_level():
    levels = [L(1, 16384, 16384), L(2, 8192, 8192), L(3, 4096, 4096), L(4, 2048, 2048)]
    cover = covering(levels)
    assert cover == {1: 4, 2: 4, 3: 4}
    assert not set(cover.values()) & set(cover)


def test_note_names_the_covering_level():
    assert covered_note(3) == "covered by level 3 at the scan resolution"


# -- a slide run --------------------------------------------------------------------------

W, H = 10240, 6400  # level 0; level 1 5120 x 3200 (16 MP), level 2 2560 x 1600 (4.1 MP)
LINES = [synth.ACCESSION, "DOE, JANE"]


def _tiles(img_tile: np.ndarray, w: int, h: int):
    for _ in range(-(-h // 256) * -(-w // 256)):
        yield img_tile


def _level(w: int, h: int, with_label: bool) -> np.ndarray:
    img = np.tile(synth.tissue(512, 400, 5), (-(-h // 400), -(-w // 512), 1))[:h, :w].copy()
    if with_label:  # a label a scanner wrote into the level, a tenth of its width
        lw, lh = w // 4, w // 8
        img[h // 10:h // 10 + lh, w // 10:w // 10 + lw] = synth.label_image(lw, lh, LINES)
    return img


def _pyramid(path, label_levels: set[int]) -> None:
    """A generic tiled pyramid of three levels; ``label_levels`` hold a printed label."""
    tile = synth.tissue(256, 256, 4)
    with tifffile.TiffWriter(path) as tw:
        tw.write(_tiles(tile, W, H), shape=(H, W, 3), dtype="uint8", tile=(256, 256), **JPEG)
        for k in (1, 2):
            tw.write(_level(W >> k, H >> k, k in label_levels), tile=(256, 256), subfiletype=1, **JPEG)


def _audit(out) -> dict:
    (path,) = [p for p in out.rglob("*.audit.json")]
    return json.loads(path.read_text())


@pytest.fixture(scope="module")
def labelled_everywhere(tmp_path_factory):
    src = tmp_path_factory.mktemp("cover") / "all.tif"
    _pyramid(str(src), {1, 2})
    return src


def test_slide_run_records_the_covered_level_in_the_audit(tmp_path):
    from wsideid.options import DeidOptions
    from wsideid.pipeline import deidentify
    src = tmp_path / "plain.tif"
    _pyramid(str(src), set())
    out = tmp_path / "out"
    out.mkdir()
    res = deidentify(src, out, DeidOptions())
    output = [s for s in res.scans if s.stage == "output"]
    assert [(s.role, s.index, s.covered_by) for s in output] == [("level", 1, 2), ("level", 2, None)]
    assert output[0].result is None and output[1].result is not None  # level 1 was not read
    assert res.status == "published"
    rows = [d for d in _audit(out)["detectors"] if d["stage"] == "output"]
    assert rows[0] == {"role": "level", "index": 1, "stage": "output", "covered_by": 2,
                       "skipped": "covered by level 2 at the scan resolution"}
    assert rows[1]["index"] == 2 and "skipped" not in rows[1] and "has_phi" in rows[1]


def test_text_a_scanner_writes_into_every_level_is_still_flagged(labelled_everywhere, tmp_path):
    from wsideid.options import DeidOptions
    from wsideid.pipeline import deidentify
    out = tmp_path / "out"
    out.mkdir()
    res = deidentify(labelled_everywhere, out, DeidOptions(identifiers=[synth.ACCESSION]))
    assert res.status == "flagged"
    level2 = next(s for s in res.scans if s.stage == "output" and s.index == 2)
    assert level2.has_phi
    assert next(s for s in res.scans if s.stage == "output" and s.index == 1).covered_by == 2


def test_in_place_runs_the_residual_scan_and_reports_flagged(labelled_everywhere, tmp_path):
    """--in-place rewrote the slide and reported it published without reading a kept image;
    it now gets the copy's residual scan (level cover included) and a finding flags it."""
    import shutil

    from wsideid.options import DeidOptions
    from wsideid.pipeline import deidentify
    src = tmp_path / "all.tif"
    shutil.copy(labelled_everywhere, src)
    res = deidentify(src, None, DeidOptions(in_place=True, identifiers=[synth.ACCESSION]))
    assert res.status == "flagged"
    output = [s for s in res.scans if s.stage == "output"]
    assert [(s.index, s.covered_by) for s in output] == [(1, 2), (2, None)]
    assert output[1].has_phi


def test_in_place_clean_slide_is_published_after_its_scan(tmp_path):
    from wsideid.options import DeidOptions
    from wsideid.pipeline import deidentify
    src = tmp_path / "plain.tif"
    _pyramid(str(src), set())
    res = deidentify(src, None, DeidOptions(in_place=True))
    assert res.status == "published"
    assert [s.index for s in res.scans if s.stage == "output" and s.result is not None] == [2]
