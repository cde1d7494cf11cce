"""QPTIFF (Akoya / PerkinElmer Vectra, Polaris) end to end on synthetic fixtures in tifffile's
QPI layout with PHI in every IFD's XML: fluorescence (LZW strip channels, which OpenSlide does
not read: tifffile is the reader compared) and brightfield (tiled JPEG, read by OpenSlide as
generic-tiff)."""

from __future__ import annotations

import numpy as np
import openslide
import pytest
import tifffile

from wsideid.errors import StrictRefusal
from wsideid.pipeline import DeidOptions, deidentify, inspect
from wsideid.synth_qptiff import make_qptiff

from retag import copy_retagged


@pytest.fixture(scope="module", params=[True, False], ids=["fluorescence", "brightfield"])
def qptiff(request, tmp_path_factory):
    d = tmp_path_factory.mktemp("qptiff")
    return make_qptiff(str(d / "synthetic.qptiff"), fluorescence=request.param)


def test_qptiff_deid(qptiff, tmp_path):
    res = deidentify(qptiff.path, tmp_path, DeidOptions(new_id="R-9", detect="off", verify="full"))
    assert res.status == "published" and res.format == "qptiff" and res.report.ok
    assert res.output.endswith("R-9.qptiff")
    roles = [(d.image.role, d.action) for d in res.plan.images]
    assert roles[-2:] == [("macro", "remove"), ("label", "remove")]
    assert all(r == ("level", "keep") for r, d in zip(roles, res.plan.images) if d.image.role == "level")
    assert ("thumbnail", "keep") in roles and not any(r[0] == "unknown" for r in roles)
    with tifffile.TiffFile(qptiff.path) as a, tifffile.TiffFile(res.output) as b:
        assert b.is_qpi
        sa, sb = a.series[0], b.series[0]
        assert sa.shape == sb.shape and len(sa.levels) == len(sb.levels)
        for la, lb in zip(sa.levels, sb.levels):
            np.testing.assert_array_equal(la.asarray(), lb.asarray())
        assert [s.name for s in b.series] == ["Baseline", "Thumbnail"]  # overview and label gone
        descs = [p.description for p in b.pages]
    assert all("<ImageType>" in d for d in descs)
    assert "<Name>DAPI</Name>" in descs[0] or "<Name>Brightfield</Name>" in descs[0]
    for gone in ("SlideID", "Barcode", "ComputerName", "ScanProfile", "Identifier", "ValidationCode", "PatientNote"):
        assert all(gone not in d for d in descs), gone
    blob = open(res.output, "rb").read().lower()
    audit = open(res.audit_path).read().lower()
    for value in qptiff.planted + ["jsmith"]:
        assert value.lower().encode() not in blob, value
        assert value.lower().encode("utf-16-le") not in blob, value
        assert value.lower() not in audit, value
    assert {d.field.key for d in res.plan.unknowns()} == {"qptiff:PatientNote", "qptiff:PatientNote@lang"}


def test_brightfield_openslide_reads_the_same_slide(tmp_path):
    src = make_qptiff(str(tmp_path / "bf.qptiff"), fluorescence=False)
    res = deidentify(src.path, tmp_path, DeidOptions(new_id="R-1", detect="off"))
    a, b = openslide.OpenSlide(src.path), openslide.OpenSlide(res.output)
    assert a.properties["openslide.vendor"] == b.properties["openslide.vendor"] == "generic-tiff"
    assert a.level_dimensions == b.level_dimensions and len(b.level_dimensions) == 3
    for lv, (w, h) in enumerate(a.level_dimensions):
        np.testing.assert_array_equal(np.asarray(a.read_region((0, 0), lv, (w, h))),
                                      np.asarray(b.read_region((0, 0), lv, (w, h))))


def test_brightfield_region_blanked_on_jpeg_tiles(tmp_path):
    src = make_qptiff(str(tmp_path / "bf.qptiff"), fluorescence=False)
    out = tmp_path / "out"
    out.mkdir()
    res = deidentify(src.path, out, DeidOptions(regions=[(256, 256, 256, 256)], fill="black", detect="off"))
    assert res.status == "published" and res.report.ok
    assert {c.name: c for c in res.report.checks}["regions-blank"].passed
    b = openslide.OpenSlide(res.output)
    assert np.asarray(b.read_region((264, 264), 0, (240, 240)))[..., :3].max() <= 12


def test_qptiff_strict_refuses(qptiff, tmp_path):
    with pytest.raises(StrictRefusal):
        deidentify(qptiff.path, tmp_path, DeidOptions(strict=True, detect="off"))


def test_unknown_image_type_is_removed(qptiff, tmp_path):
    n = len(tifffile.TiffFile(qptiff.path).pages)
    src = copy_retagged(qptiff.path, tmp_path / "odd.qptiff", "ImageDescription",
                        lambda xml: xml.replace("<ImageType>Label<", "<ImageType>Extra<"), page=n - 1)
    plan = inspect(src)
    last = plan.images[n - 1]
    assert last.image.role == "unknown" and last.action == "remove" and "Extra" not in last.image.extra["reason"]
    assert last.image.extra["reason"] == "an ImageType QPTIFF does not define"  # the file's text is not quoted
