"""Ventana BIF: synthetic slides written to the published description (fake PHI
in every carrier), de-identified, then checked independently with OpenSlide
(same vendor, levels, MPP, pixels), tifffile and a byte search for every
planted value."""

from __future__ import annotations

import numpy as np
import openslide
import pytest
import tifffile

from wsideid.registry import open_input as open_slide
from wsideid.errors import MalformedFile, StrictRefusal, WsideidError
from wsideid.pipeline import DeidOptions, deidentify, inspect
from wsideid.synth_vendors import BIF_PHI, make_bif


def same_slide(a_path, b_path, vendor: str) -> None:
    a, b = openslide.OpenSlide(str(a_path)), openslide.OpenSlide(str(b_path))
    assert a.properties["openslide.vendor"] == b.properties["openslide.vendor"] == vendor
    assert b.level_dimensions == a.level_dimensions
    for key in ("openslide.mpp-x", "openslide.mpp-y", "openslide.objective-power"):
        assert b.properties.get(key) == a.properties.get(key)
    assert b.properties.get("openslide.mpp-x")
    for lv, (w, h) in enumerate(a.level_dimensions):
        np.testing.assert_array_equal(np.asarray(a.read_region((0, 0), lv, (w, h))),
                                      np.asarray(b.read_region((0, 0), lv, (w, h))))
    assert "macro" not in b.associated_images and "label" not in b.associated_images


def no_planted(out_path, planted) -> None:
    data = open(out_path, "rb").read().lower()
    for v in planted:
        assert v.lower().encode() not in data, v


def outdir(tmp_path):
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    return out


@pytest.fixture()
def bif(tmp_path):
    path = tmp_path / "case.bif"
    make_bif(str(path))
    return path


def test_fixture_reads_as_ventana_with_phi(bif):
    s = openslide.OpenSlide(str(bif))
    assert s.properties["openslide.vendor"] == "ventana"
    assert s.properties["ventana.UserName"] == BIF_PHI["UserName"]  # the carriers are real carriers
    assert {"macro", "thumbnail"} <= set(s.associated_images)
    assert open_slide(bif).format == "ventana"


def test_bif_deid_published_and_clean(bif, tmp_path):
    res = deidentify(bif, outdir(tmp_path), DeidOptions(new_id="RID-3", verify="full"))
    assert res.status == "published" and res.format == "ventana", res.report.failures()
    assert res.output.endswith("RID-3.bif")
    same_slide(bif, res.output, "ventana")
    no_planted(res.output, BIF_PHI.values())
    roles = {d.image.role: d.action for d in res.plan.images}
    assert roles["macro"] == "remove" and roles["map"] == "remove" and roles["thumbnail"] == "keep"
    b = openslide.OpenSlide(res.output)
    props = {k for k in b.properties if k.startswith("ventana.")}
    assert props == {"ventana." + k for k in ("BuildVersion", "Magnification", "ScanRes", "ScannerModel",
                                               "ShowLabel", "Z-layers", "Z-spacing")}
    with tifffile.TiffFile(res.output) as t:
        assert t.is_bigtiff and [p.description for p in t.pages] == [
            "Thumbnail", "level=0 mag=40 quality=90", "level=1 mag=20 quality=90", "level=2 mag=10 quality=90"]
        enc = t.pages[1].tags[700].value
        enc = enc.decode() if isinstance(enc, bytes) else enc
        assert "<EncodeInfo" in enc and "TileJointInfo" in enc and "<Operator" not in enc
        assert "<!--" not in t.pages[0].tags[700].value.decode()
    assert res.report.ok


def test_bif_encodeinfo_values_are_typed(tmp_path):
    # a name smuggled into an overlap value is removed, and OpenSlide then refuses the output
    # (the overlap is needed): wsideid refuses to publish rather than guess
    path = tmp_path / "bad.bif"
    make_bif(str(path))
    data = path.read_bytes().replace(b'OverlapX="0" OverlapY="0" Confidence="90"/><TileJointInfo',
                                     b'OverlapX="Q" OverlapY="0" Confidence="90"/><TileJointInfo', 1)  # same length
    path.write_bytes(data)
    plan = inspect(path)
    bad = [d for d in plan.fields if d.field.value == "Q"]
    assert bad and all(d.action == "remove" for d in bad)
    with pytest.raises(WsideidError):
        deidentify(path, outdir(tmp_path), DeidOptions(verify="full"))
    assert not any((tmp_path / "out").iterdir())


def test_bif_hostile_xmp_refused(tmp_path):
    path = tmp_path / "x.bif"
    make_bif(str(path))
    data = path.read_bytes()
    # a same-length substitution keeps the TIFF valid: the comment becomes a DTD with an entity
    start = data.index(b"<!-- ")
    end = data.index(b"-->", start) + 3
    dtd = b'<!DOCTYPE M [<!ENTITY e "x">]>'
    data = data[:start] + dtd.ljust(end - start, b" ") + data[end:]
    path.write_bytes(data)
    with pytest.raises(WsideidError) as exc:
        inspect(path)
    assert isinstance(exc.value, MalformedFile) or "no vendor module" in str(exc.value)


def test_bif_strict_refuses_unknown(bif, tmp_path):
    with pytest.raises(StrictRefusal):
        deidentify(bif, outdir(tmp_path), DeidOptions(strict=True))


def test_bif_without_thumbnail_is_refused_not_misread(tmp_path):
    path = tmp_path / "nothumb.bif"
    make_bif(str(path), thumbnail=False)
    with pytest.raises(WsideidError, match="iScan"):
        deidentify(path, outdir(tmp_path), DeidOptions())


def test_bif_blanking_on_jpeg_tiles(bif, tmp_path):
    region = (256, 256, 256, 256)
    res = deidentify(bif, outdir(tmp_path), DeidOptions(regions=[region], fill="black", detect="off"))
    assert res.status == "published" and {c.name: c for c in res.report.checks}["regions-blank"].passed
    a, b = openslide.OpenSlide(str(bif)), openslide.OpenSlide(res.output)
    inside = np.asarray(b.read_region((272, 272), 0, (224, 224)))[..., :3]
    assert inside.max() <= 16
    pa = np.asarray(a.read_region((0, 0), 0, (240, 768)))
    pb = np.asarray(b.read_region((0, 0), 0, (240, 768)))
    np.testing.assert_array_equal(pa, pb)
