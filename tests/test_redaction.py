"""Lossless blanking in slides: regions on every level, label area on the macro."""

from __future__ import annotations

import numpy as np
import openslide
import pytest

from wsideid.errors import WsideidError
from wsideid.pipeline import DeidOptions, deidentify
from wsideid.tiff_family.redaction import RedactionError, parse_region

from realdata import real


def _outside_equal(a, b, level, region, margin):
    """Pixels outside the region (grown by ``margin`` for MCU rounding) are identical."""
    w, h = a.level_dimensions[level]
    pa = np.asarray(a.read_region((0, 0), level, (w, h)))[..., :3].astype(int)
    pb = np.asarray(b.read_region((0, 0), level, (w, h)))[..., :3].astype(int)
    ds = a.level_downsamples[level]
    x, y, rw, rh = (int(v / ds) for v in region)
    mask = np.ones((h, w), bool)
    mask[max(0, y - margin):y + rh + margin + 1, max(0, x - margin):x + rw + margin + 1] = False
    assert (pa[mask] == pb[mask]).all()
    inner = pb[y + margin:y + rh - margin, x + margin:x + rw - margin]
    if inner.size:
        assert inner.max() - inner.min() <= 12


@pytest.mark.parametrize("rel,region", [
    ("svs/CMU-1-Small-Region.svs", (500, 500, 800, 600)),
    ("ndpi/test3-TRITC-2-560.ndpi", (1000, 1000, 1500, 800)),
])
def test_region_blanked_losslessly_on_every_level(rel, region, tmp_path):
    src = real(rel)
    res = deidentify(src, tmp_path, DeidOptions(regions=[region], fill="black", detect="off"))
    assert res.report.ok and {c.name: c for c in res.report.checks}["regions-blank"].passed
    a, b = openslide.OpenSlide(str(src)), openslide.OpenSlide(res.output)
    for level in range(min(a.level_count, 3)):
        # OpenSlide's own decode of an untouched MCU depends only on that MCU's
        # coefficients (4:4:4 here; 4:2:0 CMU-1 upsampling stays inside 16 px)
        _outside_equal(a, b, level, region, margin=16)


def test_untouched_tiles_keep_their_bytes(tmp_path):
    import tifffile
    src = real("svs/CMU-1-Small-Region.svs")
    res = deidentify(src, tmp_path, DeidOptions(regions=[(0, 0, 240, 240)], detect="off"))
    with tifffile.TiffFile(src) as ta, tifffile.TiffFile(res.output) as tb:
        pa, pb = ta.pages[0], tb.pages[0]
        fa, fb = ta.filehandle, tb.filehandle
        changed = 0
        for i, (oa, ca, ob, cb) in enumerate(zip(pa.dataoffsets, pa.databytecounts, pb.dataoffsets, pb.databytecounts)):
            fa.seek(oa)
            fb.seek(ob)
            if fa.read(ca) != fb.read(cb):
                changed += 1
                assert i == 0
        assert changed == 1


def test_jpeg2000_is_refused(tmp_path):
    src = real("svs/tcga-cr-7395-01a-01-ts1.svs")
    with pytest.raises(RedactionError, match="not baseline JPEG"):
        deidentify(src, tmp_path, DeidOptions(regions=[(0, 0, 100, 100)], detect="off"))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("fmt", ["aperio", "hamamatsu"])
def test_macro_kept_with_label_blanked(fmt, synth_slides, tmp_path):
    res = deidentify(synth_slides[fmt], tmp_path, DeidOptions(macro="blank-label", detect="residual",
                                                              identifiers=["S24-12345"]))
    assert res.status == "published", [s.to_dict(True) for s in res.scans]
    b = openslide.OpenSlide(res.output)
    assert "macro" in b.associated_images
    macro = np.asarray(b.associated_images["macro"])[..., :3]
    assert macro[20:380, 20:300].min() >= 240  # the label area (left 400 px) is white now
    residual = [s for s in res.scans if s.stage == "output" and s.role == "macro"]
    assert residual and not residual[0].has_phi


def test_bad_region_text():
    for bad in ("1,2,3", "a,b,c,d", "0,0,0,10", "-5,0,10,10"):
        with pytest.raises(WsideidError):
            parse_region(bad)
