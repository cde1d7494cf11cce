"""Identifier rules on vendor XML text and attributes are live (review finding 1).

Each vendor whose metadata is an XML document (Leica SCN, Ventana BIF,
Philips, OME, QPTIFF) names some elements and attributes as identities
(barcodes, serials, user names, file names). Their values must be treated as
identifiers wherever they stand, in an attribute or in an element's text, and
whatever their shape: a barcode of digits only, or Base64 of one, is still
an identifier. Each test plants an accession, barcode or name in those places
(fixtures written by the project's own synth code, their XML edited), de-
identifies, and checks that the output holds none of it in any encoding,
that the audit records the rule that removed or replaced it, and that the
verifier searches for it (its needle set holds the value and its parts): the
last is what was dead before (Leica's ``barcode/text()`` pattern was never
asked, OME typed a digits-only serial as a number, a Base64 barcode's digits-
only text was dropped as a number, attributes outside a grammar named
``Barcode`` were plain text).
"""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from wsideid import synth_ome, synth_philips, synth_qptiff, synth_vendors
from wsideid.audit import audit_record
from wsideid.errors import VerificationFailed
from wsideid.keys import Secret
from wsideid.needles import needles_for_plan
from wsideid.pipeline import DeidOptions, deidentify

SECRET = Secret(b"xml-identifiers-secret-0123456789", "test")
NEW_ID = "RID-XML-7"
DIGITS = "305917"          # a barcode of digits only: typed a number before
SERIAL = "448812"          # a serial of digits only
ACCESSION = "S26-30917"    # its part "30917" is an identifier part
NAME = "KOWALSKI^ANNA"


def assert_absent(path: str, *planted: str) -> None:
    data = Path(path).read_bytes().lower()
    for p in planted:
        for enc in ("latin-1", "utf-16-le", "utf-16-be"):
            assert p.lower().encode(enc) not in data, (p, enc)


def run(src: Path, tmp: Path, **kw):
    out = tmp / "out"
    out.mkdir(exist_ok=True)
    res = deidentify(src, out, DeidOptions(new_id=NEW_ID, detect="off", secret=SECRET, **kw))
    assert res.status == "published" and res.report.ok, res.report.failures()
    return res


def needle_texts(res) -> set[str]:
    return {n.text for n in needles_for_plan(res.plan).needles}


def audited(res, rule: str) -> list[str]:
    """The actions the audit records under ``rule`` (the profile entry, never the value)."""
    return [f["action"] for f in audit_record(res, SECRET)["fields"] if f["rule"].startswith(rule)]


def patched(monkeypatch, module, name: str, edit) -> None:
    """Make ``module.name`` (a fixture's XML writer) return its text edited by ``edit``."""
    orig = getattr(module, name)
    monkeypatch.setattr(module, name, lambda *a, **k: edit(orig(*a, **k)))


# --- Leica SCN ------------------------------------------------------------------------------

def _scn(tmp: Path, monkeypatch, spacing_z: str = "0") -> Path:
    def edit(xml: str) -> str:
        xml = xml.replace("<collection ", f'<collection barcode="{ACCESSION}" ocr="{NAME}" ', 1)
        # the main image's view (the second) gets the spacing asked for
        head, sep, tail = xml.rpartition('spacingZ="0"')
        return head + f'spacingZ="{spacing_z}"' + tail
    patched(monkeypatch, synth_vendors, "scn_xml", lambda r: (edit(r[0]), r[1]))
    path = tmp / "case.scn"
    synth_vendors.make_scn(str(path), phi={**synth_vendors.SCN_PHI, "barcode": DIGITS, "serial": SERIAL,
                                           "name": NAME})
    return path


def test_leica_barcode_text_is_an_identifier(tmp_path, monkeypatch):
    src = _scn(tmp_path, monkeypatch)
    res = run(src, tmp_path)
    assert_absent(res.output, DIGITS, base64.b64encode(DIGITS.encode()).decode(), SERIAL, ACCESSION, NAME)
    kinds = {d.field.key: d.field.kind.value for d in res.plan.fields}
    assert kinds["scn:collection/barcode/text()"] == "identifier"
    assert audited(res, "scn.collection/barcode/text()") == ["remove"]
    assert audited(res, "scn.collection@barcode") == ["remove"] and audited(res, "scn.collection@ocr") == ["remove"]
    texts = needle_texts(res)
    assert DIGITS in texts  # the Base64 barcode's decoded text, digits only
    assert {SERIAL, ACCESSION, "30917"} <= texts


def test_leica_barcode_digits_in_a_kept_value_refuse(tmp_path, monkeypatch):
    """The decoded barcode standing in a kept number is found: the identifier rule is live."""
    src = _scn(tmp_path, monkeypatch, spacing_z=DIGITS)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(VerificationFailed, match="removed identifier"):
        deidentify(src, out, DeidOptions(new_id=NEW_ID, detect="off", secret=SECRET))
    assert not any(out.iterdir())


def test_leica_barcode_replaced_by_research_id(tmp_path, monkeypatch):
    src = _scn(tmp_path, monkeypatch)
    prof = tmp_path / "p.toml"
    prof.write_text('[scn]\n"collection/barcode/text()" = { action = "replace", value = "{new_id}" }\n')
    res = run(src, tmp_path, profile=str(prof))
    assert_absent(res.output, DIGITS, base64.b64encode(DIGITS.encode()).decode())
    assert f"<barcode>{NEW_ID}</barcode>".encode() in Path(res.output).read_bytes()
    assert audited(res, "scn.collection/barcode/text()") == ["replace"]
    assert DIGITS in needle_texts(res)


# --- Ventana BIF ----------------------------------------------------------------------------

def test_ventana_identity_attributes_and_text(tmp_path, monkeypatch):
    patched(monkeypatch, synth_vendors, "bif_iscan",
            lambda xml: xml.replace("<AOI0 ", f"{ACCESSION}<AOI0 ", 1))  # text inside iScan, before its AOI
    src = tmp_path / "case.bif"
    synth_vendors.make_bif(str(src), phi={**synth_vendors.BIF_PHI, "Barcode1D": DIGITS, "UnitNumber": SERIAL,
                                          "UserName": NAME})
    res = run(src, tmp_path)
    assert_absent(res.output, DIGITS, SERIAL, NAME, ACCESSION)
    for attr in ("Barcode1D", "UnitNumber", "UserName"):
        assert set(audited(res, f"xmp.iScan@{attr}")) == {"remove"}
    kinds = {d.field.key: d.field.kind.value for d in res.plan.fields}
    assert kinds["xmp:iScan@Barcode1D"] == "identifier"
    assert {DIGITS, SERIAL, NAME, ACCESSION} <= needle_texts(res)


# --- OME-TIFF -------------------------------------------------------------------------------

def test_ome_identity_text_and_digit_serials(tmp_path, monkeypatch):
    def edit(xml: str) -> str:
        xml = xml.replace(synth_ome.UUID, DIGITS)  # the file's UUID, on the root and in TiffData/UUID
        return xml.replace(f'SerialNumber="{synth_ome.SCANNER_SN}"', f'SerialNumber="{SERIAL}"', 1)
    patched(monkeypatch, synth_ome, "ome_xml", edit)
    src = tmp_path / "case.ome.tif"
    synth_ome.make_ome_tiff(str(src), 768, 512)
    res = run(src, tmp_path)
    assert_absent(res.output, DIGITS, SERIAL, synth_ome.MRN)
    kinds = {d.field.key: d.field.kind.value for d in res.plan.fields}
    assert kinds["ome:OME/Image/Pixels/TiffData/UUID@#text"] == "identifier"
    assert kinds["ome:OME/Instrument/Microscope@SerialNumber"] == "identifier"
    assert set(audited(res, "ome.OME/Image/Pixels/TiffData/UUID@#text")) == {"remove"}
    assert set(audited(res, "ome.OME/Instrument/*")) == {"remove"}
    # a record number of digits only in an annotation's text is searched for too
    assert {DIGITS, SERIAL, synth_ome.MRN} <= needle_texts(res)


# --- Philips --------------------------------------------------------------------------------

def test_philips_base64_barcode_digits_and_barcode_attribute(tmp_path, monkeypatch):
    old = base64.b64encode(f"{synth_philips.ACCESSION} {synth_philips.MRN}".encode()).decode()

    def edit(xml: str) -> str:
        xml = xml.replace(old, base64.b64encode(DIGITS.encode()).decode())
        return xml.replace('Name="PIM_DP_UFS_INTERFACE_VERSION"',
                           f'Name="PIM_DP_UFS_INTERFACE_VERSION" Barcode="{ACCESSION}"', 1)
    patched(monkeypatch, synth_philips, "philips_xml", edit)
    src = tmp_path / "case.tiff"
    synth_philips.make_philips_tiff(str(src))
    res = run(src, tmp_path)
    assert_absent(res.output, DIGITS, ACCESSION, base64.b64encode(DIGITS.encode()).decode())
    assert audited(res, "philips.PIM_DP_UFS_BARCODE") == ["remove"]
    kinds = {d.field.key: d.field.kind.value for d in res.plan.fields}
    assert kinds["philips:@Attribute@Barcode"] == "identifier"
    texts = needle_texts(res)
    assert DIGITS in texts        # the decoded barcode, digits only
    assert "30917" in texts       # a part of the identifier held in an attribute outside the grammar


# --- QPTIFF ---------------------------------------------------------------------------------

def test_qptiff_identity_text_and_attribute(tmp_path, monkeypatch):
    def edit(xml: str) -> str:
        xml = xml.replace(f"<Barcode>{synth_qptiff.MRN}</Barcode>", f"<Barcode>{DIGITS}</Barcode>")
        return xml.replace('<PatientNote lang="en">', f'<PatientNote lang="en" Barcode="{ACCESSION}">')
    patched(monkeypatch, synth_qptiff, "qpi_xml", edit)
    src = tmp_path / "case.qptiff"
    synth_qptiff.make_qptiff(str(src), fluorescence=False, width=768, height=512)
    res = run(src, tmp_path)
    assert_absent(res.output, DIGITS, ACCESSION)
    assert set(audited(res, "qptiff.Barcode")) == {"remove"}
    kinds = {d.field.key: d.field.kind.value for d in res.plan.fields}
    assert kinds["qptiff:Barcode"] == "identifier" and kinds["qptiff:PatientNote@Barcode"] == "identifier"
    assert {DIGITS, ACCESSION, "30917"} <= needle_texts(res)


def test_qptiff_barcode_replaced_by_research_id(tmp_path, monkeypatch):
    patched(monkeypatch, synth_qptiff, "qpi_xml",
            lambda xml: xml.replace(f"<Barcode>{synth_qptiff.MRN}</Barcode>", f"<Barcode>{DIGITS}</Barcode>"))
    src = tmp_path / "case.qptiff"
    synth_qptiff.make_qptiff(str(src), fluorescence=False, width=768, height=512)
    prof = tmp_path / "p.toml"
    prof.write_text('[qptiff]\nBarcode = { action = "replace", value = "{new_id}" }\n')
    res = run(src, tmp_path, profile=str(prof))
    assert_absent(res.output, DIGITS)
    assert f"<Barcode>{NEW_ID}</Barcode>".encode() in Path(res.output).read_bytes()
    assert set(audited(res, "qptiff.Barcode")) == {"replace"}


def test_qptiff_unknown_image_type_is_not_quoted_in_the_audit(tmp_path, monkeypatch):
    """An image's role reason reaches the audit, which travels with the slide: a file's own
    ImageType text (here a name and a record number) is never quoted in it."""
    planted = "DOE JANE 4455667"
    patched(monkeypatch, synth_qptiff, "qpi_xml",
            lambda xml: xml.replace("<ImageType>Label</ImageType>", f"<ImageType>{planted}</ImageType>"))
    src = tmp_path / "case.qptiff"
    synth_qptiff.make_qptiff(str(src), fluorescence=False, width=768, height=512)
    res = run(src, tmp_path)
    record = str(audit_record(res, SECRET))
    assert "4455667" not in record and "JANE" not in record
    assert "an ImageType QPTIFF does not define" in record


@pytest.mark.parametrize("path,attr,value", [("OME/Experimenter", "UserName", "jdoe:4455667"),
                                             ("OME/Instrument/Microscope", "SerialNumber", "SN:4455667")])
def test_ome_identity_shaped_like_a_reference_is_still_an_identifier(path, attr, value):
    """The reference test (``Channel:0:1``) ran first, so a user name or serial written
    ``word:digits`` was typed a code and left out of the verifier's search."""
    from wsideid.model import ValueKind
    from wsideid.tiff_family.vendors.ome_tiff import _kind
    assert _kind(path, attr, value) is ValueKind.IDENTIFIER
    assert _kind("OME/Image/Pixels/Channel", "ID", "Channel:0:1") is ValueKind.CODE
