"""Each free-text path the audit found (issue 10, items 1-3) is closed by the value policy.

Every test plants a value the way the audit did, into a slide the
project's own code writes, de-identifies it, and searches the published
output's bytes for the planted text in ASCII, UTF-16LE and UTF-16BE (any
case). The slide must still publish: fail closed on the value, not on the
slide.
"""

from __future__ import annotations

import io
import struct

import pytest
import tifffile

from wsideid.pipeline import DeidOptions, deidentify
from wsideid.synth import make_generic_tiff, make_ndpi, make_svs
from wsideid.tiff.container import read_tiff
from wsideid.tiff.writer import OutEntry, OutIfd, write_tiff
from wsideid.tiff_family.vendors.tiff_base import image_data

NAME = "DOE^JANE"
MRN = "4455667"


def _ascii(tag: int, text: str) -> OutEntry:
    raw = text.encode("latin-1") + b"\0"
    return OutEntry(tag, 2, len(raw), raw)


def rewrite(src, dst, edit) -> str:
    """Copy a TIFF with ``edit(ifd_index, entries)`` applied to each top-level IFD's tags."""
    tf = read_tiff(str(src))
    outs = []
    for i, ifd in enumerate(tf.ifds):
        entries = {t: OutEntry(t, e.type, e.count, e.raw) for t, e in ifd.entries.items()
                   if t not in (273, 279, 324, 325)}
        edit(i, entries)
        outs.append(OutIfd(entries, image_data(ifd, tf.byteorder)))
    write_tiff(str(src), str(dst), outs, tf.kind, tf.byteorder)
    return str(dst)


def _text(entries, tag) -> str:
    return entries[tag].raw.rstrip(b"\0").decode("latin-1")


def assert_absent(path, *planted: str) -> None:
    data = open(path, "rb").read().lower()
    for p in planted:
        for enc in ("latin-1", "utf-16-le", "utf-16-be"):
            assert p.lower().encode(enc) not in data, (p, enc)


def deid(src, out_dir, **kw):
    out_dir.mkdir(exist_ok=True)
    res = deidentify(src, out_dir, DeidOptions(new_id="R-77", detect="off", **kw))
    assert res.status == "published" and res.report.ok
    return res


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    d = tmp_path_factory.mktemp("base")
    return {"svs": make_svs(str(d / "b.svs"), 512, 384, hidden_carriers=False).path,
            "ndpi": make_ndpi(str(d / "b.ndpi"), 512, 384).path,
            "tiff": make_generic_tiff(str(d / "b.tiff"), 512, 384).path}


def _desc_edit(transform):
    def edit(i, entries):
        if i == 0:
            entries[270] = _ascii(270, transform(_text(entries, 270)))
    return edit


def _props_edit(transform):
    def edit(i, entries):
        entries[65449] = _ascii(65449, transform(_text(entries, 65449)))
    return edit


# 1. Free text kept as it is -------------------------------------------------------

@pytest.mark.parametrize("fmt,software", [
    ("svs", "Aperio Image Library v12.0.5 on PATHPC-JDOE42"),
    ("ndpi", "NDP.scan 2.5.89 on PATHPC-JDOE42"),
    ("tiff", "tifffile.py on PATHPC-JDOE42"),
])
def test_software_naming_a_host(fmt, software, base, tmp_path):
    def edit(i, entries):
        entries[305] = _ascii(305, software)
        entries[316] = _ascii(316, "PATHPC-JDOE42")
    src = rewrite(base[fmt], tmp_path / f"s.{fmt}", edit)
    res = deid(src, tmp_path / "out")
    assert_absent(res.output, "PATHPC-JDOE42", "JDOE42")
    assert any("tags.Software: value failed pattern" in d.rule for d in res.plan.fields)


@pytest.mark.parametrize("fmt", ["svs", "tiff", "ndpi"])
def test_make_and_model_holding_a_name(fmt, base, tmp_path):
    def edit(i, entries):
        entries[271] = _ascii(271, "Jane Doe")
        entries[272] = _ascii(272, f"{NAME} {MRN}")
    src = rewrite(base[fmt], tmp_path / f"m.{fmt}", edit)
    res = deid(src, tmp_path / "out")
    assert_absent(res.output, "Jane Doe", NAME, MRN)


def test_ndpi_make_model_and_fluorescence_legitimate_values_kept(base, tmp_path):
    def edit(i, entries):
        entries[65434] = _ascii(65434, "TRITC 2 (560)" if i else "TRITC Jane Doe")
        if i == 0:
            entries[271] = _ascii(271, "Hamamatsu Jane Doe")
    src = rewrite(base["ndpi"], tmp_path / "f.ndpi", edit)
    res = deid(src, tmp_path / "out")
    assert_absent(res.output, "Jane Doe")
    with tifffile.TiffFile(res.output) as t:
        assert t.pages[1].tags[65434].value == "TRITC 2 (560)" and t.pages[1].tags[271].value == "Hamamatsu"
        assert t.pages[0].tags[272].value == "C13210" and t.pages[0].tags[305].value == "NDP.scan 3.2.4"


def test_ndpi_property_keys_matching_keep_entries_with_text(base, tmp_path):
    src = rewrite(base["ndpi"], tmp_path / "p.ndpi", _props_edit(
        lambda p: p + f"exposure.mrn={NAME}\r\nexposure.slide.macro={NAME}\r\nroi.slide.macro=1,2,3 {MRN}X\r\n"
                      f"PSHV.JaneDoe=20\r\nPSHV.40x=179\r\n"))
    res = deid(src, tmp_path / "out")
    assert_absent(res.output, NAME, f"{MRN}X", "JaneDoe")
    with tifffile.TiffFile(res.output) as t:
        props = t.pages[0].tags[65449].value
    assert "PSHV.40x=179" in props and "roi.barcode.macro=0,0,400,400" in props


# 2. Typed values are not checked ----------------------------------------------------

def test_mpp_with_a_name_after_a_nul(base, tmp_path):
    src = rewrite(base["svs"], tmp_path / "n.svs",
                  _desc_edit(lambda d: d.replace("MPP = 0.4990", f"MPP = 0.4990\0{NAME}")))
    res = deid(src, tmp_path / "out")
    assert_absent(res.output, NAME)
    rules = [d.rule for d in res.plan.fields if d.field.key == "description:MPP"]
    assert "description.MPP: value failed decimal (control character)" in rules
    assert "description.MPP" in rules  # the other IFDs' clean MPP is kept


def test_appmag_with_a_name(base, tmp_path):
    src = rewrite(base["svs"], tmp_path / "a.svs",
                  _desc_edit(lambda d: d.replace("AppMag = 20", f"AppMag = 20 {NAME}")))
    res = deid(src, tmp_path / "out")
    assert_absent(res.output, NAME)


def test_ndpi_product_with_a_lone_cr(base, tmp_path):
    src = rewrite(base["ndpi"], tmp_path / "c.ndpi", _props_edit(
        lambda p: p.replace("Product=C13210", f"Product=C13210\rPatientName={NAME}")))
    res = deid(src, tmp_path / "out")
    assert_absent(res.output, NAME, "PatientName")


@pytest.mark.parametrize("planted,where", [
    ("Aperio Jane Doe MRN4455667 v1", "software"),
    ("DOE/JANE SMITH/JOHN 4455667", "geometry"),
])
def test_aperio_header_grammar(planted, where, base, tmp_path):
    def transform(d):
        head, sep, rest = d.partition("\r\n")
        if where == "software":
            return planted + sep + rest
        geometry, bar, keys = rest.partition("|")
        return head + sep + geometry.split(" ")[0] + " " + planted + bar + keys
    src = rewrite(base["svs"], tmp_path / "h.svs", _desc_edit(transform))
    res = deid(src, tmp_path / "out")
    # every part but "Aperio" (the minimal header readers need) and "v1" (too short to mean anything)
    assert_absent(res.output, planted, *(p for p in planted.split() if p not in ("Aperio", "v1")))
    header = next(d for d in res.plan.fields if d.field.key == "description:@header" and d.field.ifd == 0)
    assert header.action == "replace" and planted in header.removed_parts


# 3. --label replace --------------------------------------------------------------------

def test_replaced_label_carries_nothing_of_the_removed_label(base, tmp_path):
    def edit(i, entries):
        if 270 in entries and _text(entries, 270).split("\r\n")[-1].startswith("label"):
            entries[270] = _ascii(270, f"Aperio Image Library v12.0.5 {NAME}\r\nlabel 400x400 S24-99999")
    src = rewrite(base["svs"], tmp_path / "l.svs", edit)
    res = deid(src, tmp_path / "out", label="replace")
    assert_absent(res.output, NAME, "S24-99999")
    with tifffile.TiffFile(res.output) as t:
        labels = [p for p in t.pages if p.tags.get(254) and p.tags[254].value == 1]
        assert len(labels) == 1
        assert labels[0].description == f"Aperio Image Library\r\nlabel {labels[0].imagewidth}x{labels[0].imagelength}"


# ICC profile text -----------------------------------------------------------------------

def test_icc_profile_text_is_neutralised(base, tmp_path):
    from tests.test_icc import _desc, _rgb_tags, _text as icc_text, build_profile
    profile = build_profile(_rgb_tags(_desc(f"Monitor of {NAME}"), icc_text(f"(c) St Elsewhere MRN {MRN}")))

    def edit(i, entries):
        if i == 0:
            entries[34675] = OutEntry(34675, 7, len(profile), profile)
    src = rewrite(base["tiff"], tmp_path / "i.tiff", edit)
    res = deid(src, tmp_path / "out")
    assert_absent(res.output, NAME, MRN, "St Elsewhere")
    d = next(d for d in res.plan.fields if d.field.key == "tags:ICCProfile")
    assert d.action == "replace" and f"Monitor of {NAME}" in d.removed_parts
    from PIL import ImageCms
    with tifffile.TiffFile(res.output) as t:
        kept = bytes(t.pages[0].tags[34675].value)
    assert len(kept) == len(profile)
    assert ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(io.BytesIO(kept))).strip() == "Colour profile"


def test_unparseable_icc_profile_is_dropped(base, tmp_path):
    junk = b"\0\0\0\x40" + b"Jane Doe ICC " * 20

    def edit(i, entries):
        if i == 0:
            entries[34675] = OutEntry(34675, 7, len(junk), junk)
    src = rewrite(base["tiff"], tmp_path / "j.tiff", edit)
    res = deid(src, tmp_path / "out")
    assert_absent(res.output, "Jane Doe")
    with tifffile.TiffFile(res.output) as t:
        assert 34675 not in t.pages[0].tags
    assert struct.unpack(">I", junk[:4])[0] == 64


def test_verifier_refuses_an_output_whose_values_fail_the_policy(base, tmp_path, monkeypatch):
    """Mutation: a writer that ignores the plan and writes every original value is caught."""
    from wsideid.errors import VerificationFailed
    from wsideid.tiff_family.vendors import aperio

    def leaky_join(ifd, decisions):
        return "|".join([str(decisions[0].field.value)] + [f"{d.field.subkey} = {d.field.value}"
                                                         for d in decisions[1:]])
    src = rewrite(base["svs"], tmp_path / "v.svs",
                  _desc_edit(lambda d: d.replace("AppMag = 20", f"AppMag = 20 {NAME}")))
    monkeypatch.setattr(aperio, "join_description", leaky_join)
    (tmp_path / "out").mkdir()
    with pytest.raises(VerificationFailed, match="values-pass-policy") as err:
        deidentify(src, tmp_path / "out", DeidOptions(new_id="R-77", detect="off"))
    assert "values-pass-policy" in err.value.checks
    assert not list((tmp_path / "out").glob("R-77*.svs"))
