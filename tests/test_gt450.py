"""Aperio GT450 SVS (its header "Aperio Leica Biosystems GT450 v1.0.1", regions
spelled [0,0,WxH], its key set): a synthetic slide written to that layout passes,
every planted identity key is gone, label and macro are removed, and OpenSlide
reads the same aperio slide."""

from __future__ import annotations

import numpy as np
import openslide
import tifffile

from drivers.test_ventana import no_planted, outdir, same_slide
from wsideid.pipeline import DeidOptions, deidentify
from wsideid.synth_vendors import GT450_HEADER, GT450_PHI, make_gt450_svs


def test_gt450_published_clean(tmp_path):
    src = tmp_path / "gt450.svs"
    make_gt450_svs(str(src))
    assert openslide.OpenSlide(str(src)).properties["aperio.ScanScope ID"] == GT450_PHI["ScanScope ID"]
    res = deidentify(src, outdir(tmp_path), DeidOptions(new_id="RID-5", verify="full"))
    assert res.status == "published" and res.format == "aperio", res.report.failures()
    same_slide(src, res.output, "aperio")
    no_planted(res.output, GT450_PHI.values())
    b = openslide.OpenSlide(res.output)
    assert b.properties["aperio.ScannerType"] == "GT450" and b.properties["aperio.MPP"] == "0.2630"
    assert "thumbnail" in b.associated_images
    with tifffile.TiffFile(res.output) as t:
        desc = t.pages[0].description
        assert desc.startswith(GT450_HEADER + "\r\n1024x768 [0,0,1024x768] (256x256) JPEG/RGB Q=91|")
        assert len(t.pages) == 3
    dropped = {d.field.subkey for d in res.plan.fields if d.action == "remove"}
    assert {"Barcode", "User", "ScanScope ID", "DSR ID", "ImageID", "Title", "Case Notes"} <= dropped


def test_gt450_blanking_on_jpeg_tiles(tmp_path):
    src = tmp_path / "gt450.svs"
    make_gt450_svs(str(src))
    res = deidentify(src, outdir(tmp_path), DeidOptions(regions=[(256, 256, 256, 256)], fill="black", detect="off"))
    assert res.status == "published" and {c.name: c for c in res.report.checks}["regions-blank"].passed
    a, b = openslide.OpenSlide(str(src)), openslide.OpenSlide(res.output)
    assert np.asarray(b.read_region((272, 272), 0, (224, 224)))[..., :3].max() <= 16
    np.testing.assert_array_equal(np.asarray(a.read_region((0, 0), 0, (240, 768))),
                                  np.asarray(b.read_region((0, 0), 0, (240, 768))))
