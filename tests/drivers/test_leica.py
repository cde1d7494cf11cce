"""Leica SCN: synthetic slides written to the published description (fake PHI
in every carrier), de-identified, then checked independently with OpenSlide
(same vendor, levels, MPP, pixels), tifffile and a byte search for every
planted value. The macro is its own pyramid: removed by default, kept with
--keep-macro, and the SCN map renumbered either way."""

from __future__ import annotations

import base64

import numpy as np
import openslide
import pytest
import tifffile

from test_ventana import no_planted, outdir, same_slide
from wsideid.registry import open_input as open_slide
from wsideid.errors import StrictRefusal, WsideidError
from wsideid.pipeline import DeidOptions, deidentify, inspect
from wsideid.synth_vendors import SCN_PHI, make_scn


@pytest.fixture()
def scn(tmp_path):
    path = tmp_path / "case.scn"
    make_scn(str(path))
    return path


def _planted():
    return list(SCN_PHI.values()) + [base64.b64encode(SCN_PHI["barcode"].encode()).decode()]


def test_fixture_reads_as_leica_with_phi(scn):
    s = openslide.OpenSlide(str(scn))
    assert s.properties["openslide.vendor"] == "leica"
    assert s.properties["leica.barcode"] == SCN_PHI["barcode"]
    assert s.properties["leica.creation-date"] == SCN_PHI["creationDate"]
    assert "macro" in s.associated_images
    assert open_slide(scn).format == "leica"


def test_scn_deid_published_and_clean(scn, tmp_path):
    res = deidentify(scn, outdir(tmp_path), DeidOptions(new_id="RID-4", verify="full"))
    assert res.status == "published" and res.format == "leica", res.report.failures()
    assert res.output.endswith("RID-4.scn")
    same_slide(scn, res.output, "leica")
    no_planted(res.output, _planted())
    assert [d.image.role for d in res.plan.images if d.action == "remove"] == ["macro", "macro"]
    b = openslide.OpenSlide(res.output)
    assert "leica.barcode" not in b.properties and "leica.creation-date" not in b.properties
    assert b.properties["leica.objective"] == "20"
    with tifffile.TiffFile(res.output) as t:
        assert t.is_bigtiff and len(t.pages) == 3
        xml = t.pages[0].description
        assert 'ifd="0"' in xml and 'ifd="2"' in xml and 'ifd="3"' not in xml  # renumbered
        assert all(p.description in ("", None) for p in t.pages[1:])


def test_scn_keep_macro_keeps_map(scn, tmp_path):
    # detectors off: the kept macro shows the label, which they rightly flag (tested elsewhere)
    res = deidentify(scn, outdir(tmp_path), DeidOptions(macro="keep", verify="full", detect="off"))
    assert res.status == "published", res.report.failures()
    b = openslide.OpenSlide(res.output)
    assert "macro" in b.associated_images
    a = openslide.OpenSlide(str(scn))
    np.testing.assert_array_equal(np.asarray(a.associated_images["macro"]), np.asarray(b.associated_images["macro"]))
    assert b.level_dimensions == a.level_dimensions


def test_scn_unknown_attribute_and_element_removed(scn):
    plan = inspect(scn)
    by_key = {d.field.key: d for d in plan.fields}
    assert by_key["scn:collection@user"].action == "remove" and by_key["scn:collection@user"].unknown
    assert by_key["scn:collection/image/device@serial"].action == "remove"
    kept = {d.field.key for d in plan.fields if d.action == "keep"}
    assert "scn:collection/image/pixels/dimension@ifd" in kept and "scn:collection@sizeX" in kept


def test_scn_strict_refuses_unknown(scn, tmp_path):
    with pytest.raises(StrictRefusal):
        deidentify(scn, outdir(tmp_path), DeidOptions(strict=True))


def test_scn_map_naming_a_missing_ifd_is_refused(tmp_path):
    path = tmp_path / "bad.scn"
    make_scn(str(path))
    data = path.read_bytes().replace(b'r="2" ifd="4"', b'r="2" ifd="9"', 1)  # same length
    path.write_bytes(data)
    with pytest.raises(WsideidError, match="IFD 9"):
        inspect(path)


def test_scn_blanking_on_jpeg_tiles(scn, tmp_path):
    # level-0 IFD pixels 256..512 (the main image sits at offset 512,384 of the slide)
    res = deidentify(scn, outdir(tmp_path), DeidOptions(regions=[(256, 256, 256, 256)], fill="black", detect="off"))
    assert res.status == "published" and {c.name: c for c in res.report.checks}["regions-blank"].passed
    with tifffile.TiffFile(scn) as ta, tifffile.TiffFile(res.output) as tb:
        a, b = ta.pages[2].asarray(), tb.pages[0].asarray()
    assert b[272:496, 272:496].max() <= 16
    np.testing.assert_array_equal(a[:, :240], b[:, :240])
