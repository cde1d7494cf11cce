"""Philips TIFF end to end on synthetic fixtures written to the published layout (OpenSlide's
philips-tiff driver and format page), with PHI in every carrier: the DPUfsImport XML, Base64
barcode, source file names, label and macro (as IFDs and as Base64 JPEGs inside the XML)."""

from __future__ import annotations

import numpy as np
import openslide
import pytest
import tifffile

from wsideid.errors import MalformedFile, StrictRefusal
from wsideid.model import Field
from wsideid.pipeline import DeidOptions, deidentify, inspect
from wsideid.synth_philips import make_philips_tiff
from wsideid.tiff_family.vendors.philips import check_derivation

from retag import copy_retagged


@pytest.fixture(scope="module", params=[False, True], ids=["ifd-label", "xml-label"])
def philips(request, tmp_path_factory):
    d = tmp_path_factory.mktemp("philips")
    return make_philips_tiff(str(d / "synthetic-philips.tiff"), embedded=request.param)


def test_philips_deid(philips, tmp_path):
    a = openslide.OpenSlide(philips.path)
    assert a.properties["openslide.vendor"] == "philips" and set(a.associated_images) == {"label", "macro"}
    assert a.properties["openslide.barcode"].startswith("S24-12345")
    res = deidentify(philips.path, tmp_path, DeidOptions(new_id="R-9", detect="off", verify="full"))
    assert res.status == "published" and res.format == "philips" and res.report.ok
    b = openslide.OpenSlide(res.output)
    assert b.properties["openslide.vendor"] == "philips"
    assert b.level_dimensions == a.level_dimensions
    for key in ("openslide.mpp-x", "openslide.mpp-y", "openslide.objective-power"):
        assert b.properties.get(key) == a.properties.get(key), key
    assert "openslide.barcode" not in b.properties and not b.associated_images
    for lv, (w, h) in enumerate(a.level_dimensions):
        np.testing.assert_array_equal(np.asarray(a.read_region((0, 0), lv, (w, h))),
                                      np.asarray(b.read_region((0, 0), lv, (w, h))))
    with tifffile.TiffFile(res.output) as t:
        assert t.is_philips
        assert list(t.pages[0].databytecounts[-2:]) == [0, 0]  # sparse tiles stay absent
        xml = t.pages[0].description
    assert "PIM_DP_IMAGE_DATA" not in xml and "LABELIMAGE" not in xml and "sourceFilename" not in xml
    assert "levels=20,10,5,2" in xml and "DICOM_PIXEL_SPACING" in xml
    blob = open(res.output, "rb").read().lower()
    audit = open(res.audit_path).read().lower()
    for value in philips.planted + ["jsmith"]:
        assert value.lower().encode() not in blob, value
        assert value.lower().encode("utf-16-le") not in blob, value
        assert value.lower() not in audit, value
    unknown = {d.field.key for d in res.plan.unknowns()}
    assert unknown == {"philips:PIM_DP_UFS_NOTE", "philips:@Attribute@Comment"}


def test_philips_region_blanked_on_jpeg_tiles(philips, tmp_path):
    res = deidentify(philips.path, tmp_path, DeidOptions(regions=[(256, 256, 512, 256)], fill="black", detect="off"))
    assert res.status == "published" and res.report.ok
    assert {c.name: c for c in res.report.checks}["regions-blank"].passed
    b = openslide.OpenSlide(res.output)
    px = np.asarray(b.read_region((300, 300), 0, (420, 180)))[..., :3]
    assert px.max() <= 12
    a = openslide.OpenSlide(philips.path)
    np.testing.assert_array_equal(np.asarray(a.read_region((0, 0), 0, (1536, 256))),
                                  np.asarray(b.read_region((0, 0), 0, (1536, 256))))


def test_philips_strict_refuses(philips, tmp_path):
    with pytest.raises(StrictRefusal):
        deidentify(philips.path, tmp_path, DeidOptions(strict=True, detect="off"))


def test_philips_software_failing_its_pattern_keeps_the_vendor_name(philips, tmp_path):
    src = copy_retagged(philips.path, tmp_path / "in.tiff", "Software", lambda v: "Philips DP v1.0 Jane Doe")
    (tmp_path / "out").mkdir()
    res = deidentify(src, tmp_path / "out", DeidOptions(detect="off"))
    assert res.status == "published"
    assert openslide.OpenSlide(res.output).properties["tiff.Software"] == "Philips"


def test_philips_hostile_xml_refused(philips, tmp_path):
    src = copy_retagged(philips.path, tmp_path / "bomb.tiff", "ImageDescription", lambda xml: xml.replace(
        '<?xml version="1.0" encoding="UTF-8" ?>',
        '<?xml version="1.0"?><!DOCTYPE DataObject [<!ENTITY x SYSTEM "file:///etc/passwd">]>').replace(
        ">PHILIPS<", ">&x;<"))
    with pytest.raises(MalformedFile, match="XML refused"):
        inspect(src)


def test_derivation_keeps_settings_and_drops_file_name():
    v = 'tiff-useBigTIFF=1-useRgb=0-levels=10003,10002,10000,10001-processing=0-q80-sourceFilename="T11-07929-I1-10"'
    verdict = check_derivation(Field("p", "philips:x", v))
    assert verdict.ok and verdict.value == "tiff-useBigTIFF=1-useRgb=0-levels=10003,10002,10000,10001-processing=0-q80"
    assert any("T11-07929" in r for r in verdict.removed)
    hostile = check_derivation(Field("p", "philips:x", "tiff-Jane Doe-q80"))
    assert hostile.value == "tiff-q80" and hostile.removed == ["Jane Doe"]
    assert not check_derivation(Field("p", "philips:x", "Jane Doe")).ok


def test_level_with_wrong_spacing_is_unknown(philips, tmp_path):
    src = copy_retagged(philips.path, tmp_path / "in.tiff", "ImageDescription", lambda xml: xml.replace(
        "&quot;0.0005&quot; &quot;0.0005&quot;", "&quot;0.002&quot; &quot;0.002&quot;"))
    plan = inspect(src)
    img = plan.images[1]
    assert img.image.role == "unknown" and img.action == "remove" and "downsample" in img.image.extra["reason"]


def test_xml_held_label_and_macro_are_images_of_the_inventory(tmp_path):
    """The JPEGs inside the XML are first-class images: roles, sizes, the detectors read them
    (the QC page shows them through the same reader), and --keep-macro cannot keep them."""
    from wsideid.slide_scan import read_tiff_image
    src = make_philips_tiff(str(tmp_path / "xml.tiff"), embedded=True)
    plan = inspect(src.path)
    held = [d for d in plan.images if d.image.extra.get("embedded")]
    assert [(d.image.role, d.image.width, d.image.height) for d in held] == [("label", 400, 300), ("macro", 900, 300)]
    assert read_tiff_image(src.path, held[0].image.index).size == (400, 300)
    out = tmp_path / "out"
    out.mkdir()
    res = deidentify(src.path, out, DeidOptions(new_id="R-4", detect="all", ocr=False))
    assert res.status == "published" and res.report.ok
    source = {s.role: s for s in res.scans if s.stage == "source"}
    assert source["label"].has_phi and any(f.kind == "barcode" for f in source["label"].result.findings)
    assert not openslide.OpenSlide(res.output).associated_images


def test_xml_held_macro_kept_and_label_replaced(tmp_path):
    """--keep-macro keeps the macro inside the XML (reduced to its decoding segments) and
    --label replace puts a generated label there; OpenSlide lists both, the old label's
    pixels and every planted value are gone, and the detectors read what leaves."""
    from wsideid.detect.scan import scan_image
    src = make_philips_tiff(str(tmp_path / "xml.tiff"), embedded=True)
    out = tmp_path / "out"
    out.mkdir()
    res = deidentify(src.path, out, DeidOptions(new_id="R-5", keep_macro=True, label="replace", detect="off"))
    assert res.report.ok, [c for c in res.report.checks if not c.ok]
    actions = {d.image.role: d.action for d in res.plan.images if d.image.extra.get("embedded")}
    assert actions == {"label": "replace", "macro": "keep"}
    with openslide.OpenSlide(res.output) as o:
        assert sorted(o.associated_images) == ["label", "macro"]
        label = o.associated_images["label"].convert("RGB")
    found = scan_image(label, "label", [], ocr=True)
    assert any("R-5" in f.value for f in found.findings)
    assert not any(v.lower().encode() in open(res.output, "rb").read().lower() for v in src.planted)


def test_small_philips_whose_levels_pad_to_one_tile_publishes(tmp_path):
    """At 768x512 two reduced levels (192x128, 96x64) are both one padded 256x256 tile in the
    file: OpenSlide still shows four levels, and the reader check counts four kept levels (it
    counted distinct IFD sizes, three, and refused the valid slide)."""
    slide = make_philips_tiff(str(tmp_path / "small.tiff"), 768, 512)
    with tifffile.TiffFile(slide.path) as t:
        assert [p.shape[:2] for p in t.pages[2:4]] == [(256, 256), (256, 256)]
    (tmp_path / "out").mkdir()
    res = deidentify(slide.path, tmp_path / "out", DeidOptions(new_id="R-10", detect="off"))
    assert res.status == "published" and res.report.ok, res.report
    assert openslide.OpenSlide(res.output).level_count == 4
