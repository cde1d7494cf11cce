"""OME-TIFF end to end: synthetic fixtures with PHI in every OME-XML carrier, and the real
samples from QuPath, Viv and AICSImageIO. Outputs are read back with OpenSlide (which takes a
tiled OME-TIFF for generic-tiff and does not read stripped ones) and with tifffile's own OME
reader, the second reader that understands SubIFD pyramids and series."""

from __future__ import annotations

import re

import numpy as np
import openslide
import pytest
import tifffile

from wsideid.errors import MalformedFile, StrictRefusal, UnsupportedFormat
from wsideid.pipeline import DeidOptions, deidentify, inspect
from wsideid.synth_ome import NS, make_ome_tiff

from realdata import real
from retag import copy_retagged

OME_SAMPLES = ["ome-tiff/aics_s_1_t_1_c_1_z_1.ome.tiff", "ome-tiff/qupath_cells.ome.tif",
               "ome-tiff/viv_multi-channel.ome.tif"]


@pytest.fixture(scope="module")
def ome(tmp_path_factory):
    d = tmp_path_factory.mktemp("ome")
    return make_ome_tiff(str(d / "synthetic.ome.tif"))


def _levels(path):
    with tifffile.TiffFile(path) as t:
        assert t.is_ome
        s = t.series[0]
        return [lv.asarray() for lv in s.levels], [x.name for x in t.series]


def test_synthetic_ome_deid(ome, tmp_path):
    res = deidentify(ome.path, tmp_path, DeidOptions(new_id="R-9", detect="off"))
    assert res.status == "published" and res.format == "ome-tiff" and res.report.ok
    assert res.output.endswith("R-9.ome.tif")
    roles = {d.image.index: (d.image.role, d.action) for d in res.plan.images}
    assert roles == {0: ("level", "keep"), 1: ("label", "remove"), 2: ("macro", "remove"),
                     3: ("level", "keep"), 4: ("level", "keep")}
    # OpenSlide: generic-tiff on both, same level, MPP and pixels
    a, b = openslide.OpenSlide(ome.path), openslide.OpenSlide(res.output)
    assert a.properties["openslide.vendor"] == b.properties["openslide.vendor"] == "generic-tiff"
    assert a.level_dimensions == b.level_dimensions
    assert a.properties["openslide.mpp-x"] == b.properties["openslide.mpp-x"]
    np.testing.assert_array_equal(np.asarray(a.read_region((0, 0), 0, a.level_dimensions[0])),
                                  np.asarray(b.read_region((0, 0), 0, b.level_dimensions[0])))
    # tifffile: the whole SubIFD pyramid, one series (label and macro gone), same pixels
    before, names_in = _levels(ome.path)
    after, names_out = _levels(res.output)
    assert names_in[1:] == ["label", "macro"] and len(names_out) == 1
    assert len(after) == len(before) == 3
    for x, y in zip(before, after):
        np.testing.assert_array_equal(x, y)
    with tifffile.TiffFile(res.output) as t:
        xml = t.pages[0].description
        assert t.series[0].levels[0].pages[0].tags["XResolution"].value == \
            tifffile.TiffFile(ome.path).pages[0].tags["XResolution"].value
    assert 'PhysicalSizeX="0.25"' in xml and 'SizeX="1536"' in xml and 'TiffData IFD="0"' in xml
    for gone in ("Experimenter", "AcquisitionDate", "Description", "StructuredAnnotations", "UUID", "label"):
        assert gone not in xml
    blob = open(res.output, "rb").read().lower()
    audit = open(res.audit_path).read().lower()
    for value in ome.planted + ["dr who", "jsmith"]:
        assert value.lower().encode() not in blob, value
        assert value.lower().encode("utf-16-le") not in blob, value
        assert value.lower() not in audit, value
    assert res.plan.unknowns()  # the fixture plants keys no profile lists


def test_ome_label_replaced_and_dates_shifted(ome, tmp_path):
    from wsideid.dates import make_policy
    from wsideid.keys import Secret
    secret = Secret(b"0123456789abcdef0123", "test")
    res = deidentify(ome.path, tmp_path, DeidOptions(new_id="R-3", detect="off", label="replace",
                                                     dates=make_policy("shift", secret, "subj"), secret=secret))
    assert res.status == "published" and res.report.ok
    with tifffile.TiffFile(res.output) as t:
        names = [s.name for s in t.series]
        xml = t.pages[0].description
    assert names[1:] == ["label"]  # the generated label, listed as the OME label Image
    m = re.search(r"<AcquisitionDate>([^<]+)</AcquisitionDate>", xml)
    assert m and m.group(1) != "2024-03-14T10:22:33" and not m.group(1).startswith("2024-03-14")


def test_ome_region_blanked_on_jpeg_tiles(ome, tmp_path):
    res = deidentify(ome.path, tmp_path, DeidOptions(regions=[(256, 256, 512, 256)], fill="black", detect="off"))
    assert res.status == "published" and res.report.ok
    assert {c.name: c for c in res.report.checks}["regions-blank"].passed
    after, _ = _levels(res.output)
    before, _ = _levels(ome.path)
    assert after[0][300:480, 300:720].max() <= 12  # blanked (black), JPEG-exact on whole blocks
    np.testing.assert_array_equal(after[0][:256, :], before[0][:256, :])  # other tiles untouched
    assert after[1][150:220, 150:350].max() <= 12  # and on every level of the SubIFD pyramid


def test_ome_strict_refuses(ome, tmp_path):
    with pytest.raises(StrictRefusal):
        deidentify(ome.path, tmp_path, DeidOptions(strict=True, detect="off"))
    assert list(tmp_path.iterdir()) == []


def _rewrite_xml(src, dst, xml: str):
    """The fixture with another OME-XML (the pixels as they were)."""
    copy_retagged(src, dst, "ImageDescription", lambda old: xml.encode())


def test_hostile_and_multifile_xml_refused_in_one_line(ome, tmp_path):
    xml = tifffile.TiffFile(ome.path).pages[0].description
    bomb = xml.replace('<?xml version="1.0" encoding="UTF-8"?>',
                       '<?xml version="1.0"?><!DOCTYPE OME [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]>')
    _rewrite_xml(ome.path, tmp_path / "bomb.ome.tif", bomb.replace("<Description>", "<Description>&b;"))
    with pytest.raises(MalformedFile, match="XML refused"):
        inspect(tmp_path / "bomb.ome.tif")
    other = xml.replace("urn:uuid:5f2b7d1e-9c3a-4e61-8b0d-24031410223a</UUID>",
                        "urn:uuid:00000000-0000-0000-0000-000000000000</UUID>", 1)
    _rewrite_xml(ome.path, tmp_path / "multi.ome.tif", other)
    with pytest.raises(UnsupportedFormat, match="several files"):
        inspect(tmp_path / "multi.ome.tif")


def test_unnamed_second_series_is_unknown_and_removed(ome, tmp_path):
    xml = tifffile.TiffFile(ome.path).pages[0].description
    _rewrite_xml(ome.path, tmp_path / "scene.ome.tif", xml.replace('Name="macro"', 'Name="Scene 2"'))
    plan = inspect(tmp_path / "scene.ome.tif")
    img = plan.images[2]
    assert img.image.role == "unknown" and img.action == "remove"
    assert "neither the slide" in img.image.extra["reason"]


def test_not_ome_namespace_is_not_claimed(ome, tmp_path):
    xml = tifffile.TiffFile(ome.path).pages[0].description
    _rewrite_xml(ome.path, tmp_path / "fake.ome.tif", xml.replace(NS, "http://example.org/OME"))
    assert inspect(tmp_path / "fake.ome.tif").inventory.format == "generic-tiff"


@pytest.mark.parametrize("rel", OME_SAMPLES)
def test_real_ome_samples(rel, tmp_path):
    src = real(rel)
    before = src.read_bytes()
    res = deidentify(src, tmp_path, DeidOptions(new_id="RID-4", verify="full", detect="off"))
    assert res.status == "published" and res.format == "ome-tiff" and res.report.ok
    assert src.read_bytes() == before
    assert openslide.OpenSlide.detect_format(str(src)) is None  # stripped: OpenSlide reads neither
    with tifffile.TiffFile(src) as a, tifffile.TiffFile(res.output) as b:
        assert b.is_ome and len(a.series) == len(b.series)
        for sa, sb in zip(a.series, b.series):
            assert sa.shape == sb.shape and sa.dtype == sb.dtype and sa.axes == sb.axes
            np.testing.assert_array_equal(sa.asarray(), sb.asarray())
        xml = b.pages[0].description
    for gone in ("Experimenter", "UserName", "FileName", "UUID", "StructuredAnnotations", "AcquisitionDate"):
        assert gone not in xml
    data = open(res.output, "rb").read().lower()
    removed = [d.field.text() for d in res.plan.fields if d.removes_value and d.field.kind.value in ("text", "identifier")
               and len(d.field.text()) >= 6]
    for v in removed:
        assert v.lower().encode() not in data, v


def test_aics_sample_keeps_physical_size_and_drops_people(tmp_path):
    res = deidentify(real(OME_SAMPLES[0]), tmp_path, DeidOptions(new_id="RID-5", detect="off"))
    xml = tifffile.TiffFile(res.output).pages[0].description
    assert 'PhysicalSizeX="1.0833333333333333"' in xml and 'NominalMagnification="20.0"' in xml
    assert "ruiany" not in xml and "s_1_t_1_c_1_z_1.czi" not in xml and "HDCam" not in xml


def test_tifffile_subifd_pyramid_is_not_an_ifd_loop(tmp_path):
    """tifffile chains SubIFDs (the second is also the first's next IFD): a legitimate
    layout, kept whole, not refused as a loop (generic TIFF, no OME-XML)."""
    from wsideid.synth import tissue
    b = tissue(1024, 768, 3)
    src = tmp_path / "in" / "sub.tif"
    src.parent.mkdir()
    with tifffile.TiffWriter(src) as tw:
        tw.write(b, tile=(256, 256), subifds=2, compression="jpeg", photometric="rgb", metadata=None)
        for k in (2, 4):
            tw.write(b[::k, ::k], tile=(256, 256), subfiletype=1, compression="jpeg", photometric="rgb", metadata=None)
    res = deidentify(src, tmp_path, DeidOptions(new_id="R-8", detect="off"))
    assert res.status == "published" and res.format == "generic-tiff"
    assert [d.image.role for d in res.plan.images] == ["level"] * 3
    with tifffile.TiffFile(res.output) as t:
        assert len(t.series[0].levels) == 3


def test_multichannel_tiled_ome_keeps_every_plane_and_level(tmp_path):
    """A fluorescence OME-TIFF (one tiled 16-bit IFD per channel, each with a SubIFD level)."""
    d = np.random.default_rng(1).integers(0, 4000, (3, 768, 1024)).astype(np.uint16)
    src = tmp_path / "in" / "fl.ome.tif"
    src.parent.mkdir()
    with tifffile.TiffWriter(src, ome=True) as tw:
        tw.write(d, subifds=1, tile=(256, 256), compression="zlib",
                 metadata={"axes": "CYX", "Channel": {"Name": ["DAPI", "FITC", "Cy5"]}})
        tw.write(d[:, ::2, ::2], subfiletype=1, tile=(256, 256), compression="zlib")
    res = deidentify(src, tmp_path, DeidOptions(new_id="R-6", detect="off"))
    assert res.status == "published" and [d.image.role for d in res.plan.images] == ["level"] * 6
    before, _ = _levels(src)
    after, _ = _levels(res.output)
    assert len(after) == 2 and after[0].shape == (3, 768, 1024)
    for x, y in zip(before, after):
        np.testing.assert_array_equal(x, y)
