"""Blanked regions are read back on every kept level, also those OpenSlide does not show.

OpenSlide shows one level of a SubIFD pyramid (OME-TIFF, libvips, bfconvert): the reduced
levels live in SubIFDs it does not read. The ``regions-blank`` check reads those through the
project's own window reader (``tiff.window``), so a blanker that skipped them is caught.
"""

from __future__ import annotations

import numpy as np
import openslide
import pytest

from wsideid.errors import VerificationFailed
from wsideid.pipeline import DeidOptions, deidentify
from wsideid.synth_ome import make_ome_tiff
from wsideid.tiff.window import WindowReader
from wsideid.tiff_family import redaction

REGION = (200, 300, 400, 300)


@pytest.fixture(scope="module")
def ome(tmp_path_factory):
    return make_ome_tiff(str(tmp_path_factory.mktemp("ome") / "slide.ome.tif")).path


def _region_detail(res) -> str:
    return next(c.detail for c in res.report.checks if c.name == "regions-blank")


def test_subifd_levels_are_read_back(ome, tmp_path):
    assert len(openslide.OpenSlide(ome).level_dimensions) == 1  # OpenSlide shows level 0 only
    res = deidentify(ome, tmp_path, DeidOptions(new_id="R-1", regions=[REGION], detect="off"))
    assert res.status == "published" and res.report.ok
    assert "on 3 image(s)" in _region_detail(res)  # level 0 by OpenSlide, two SubIFD levels by ours
    with WindowReader(res.output, 1) as r:  # SubIFD level 1 (half size): the region is flat there
        x, y, w, h = (v // 2 for v in REGION)
        px = r.read(x + 4, y + 4, w - 8, h - 8)
    assert px is not None and int(px.max()) - int(px.min()) <= 12


def test_a_blanker_that_skips_subifd_levels_is_caught(ome, tmp_path, monkeypatch):
    real_blank = redaction.blank_ifd

    def top_level_only(tf, flat_index, ifd, *args, **kw):
        return real_blank(tf, flat_index, ifd, *args, **kw) if any(ifd is top for top in tf.ifds) else 0
    monkeypatch.setattr(redaction, "blank_ifd", top_level_only)
    with pytest.raises(VerificationFailed, match=r"regions-blank: region 1: whole region on 3 image\(s\): spread"):
        deidentify(ome, tmp_path, DeidOptions(new_id="R-2", regions=[REGION], detect="off"))
    assert not list(tmp_path.glob("R-2*"))


def test_window_reader_matches_a_whole_decode(ome):
    import tifffile
    with tifffile.TiffFile(ome) as t:
        t.filehandle.seek(t.pages[0].subifds[0])
        whole = tifffile.TiffPage(t, index=0).asarray()
    from wsideid.tiff.container import read_tiff
    with WindowReader(ome, len(read_tiff(ome).ifds)) as r:  # the first SubIFD image
        assert (r.width, r.height) == (whole.shape[1], whole.shape[0])
        for x, y, w, h in [(0, 0, 10, 10), (100, 50, 300, 200), (r.width - 7, r.height - 5, 7, 5)]:
            np.testing.assert_array_equal(r.read(x, y, w, h), whole[y:y + h, x:x + w])
