"""The DICOM value policy (issue 10, items 1, 2 and 8 for DICOM, and the DICOM details).

A DICOM WSI series is built by the project's own code (``wsideid.synth.make_dicom``:
a synthetic SVS converted with wsidicomizer), then fake PHI is planted with
pydicom in every carrier the issue lists: free text the WSI IOD defines but
Table E.1-1 does not list, content items (TEXT items and a TextValue on a
CODE item), code meanings and values under a local scheme, a wrong meaning
under a standard scheme, URLs and file-set IDs in a reference sequence, an
encrypted-attributes sequence, a fifth ImageType value, the ICC profile's
text, vendor fields, nested sequences and typed values with text after a NUL
or a CR. Every planted value holds "Quokka" (or "QUOKKA") and a 4455xxx
number, so one search finds them all, in ASCII and in UTF-16 LE/BE.
"""

from __future__ import annotations

import struct
import warnings
from pathlib import Path

import pydicom
import pytest
from pydicom.datadict import tag_for_keyword
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset

from test_dicom_fixtures import SECRET, options, output_files, read
from wsideid.dates import DatePolicy, make_policy
from wsideid.dicom.codes import CodeRules, sctid_valid
from wsideid.dicom.uids import UidMapper
from wsideid.dicom.values import date_value, kind_for, timezone_value, typed_valid
from wsideid.model import REPLACE, ValueKind
from wsideid.pipeline import deidentify

WSI = "1.2.840.10008.5.1.4.1.1.77.1.6"
TOKENS = ["quokka", "4455"]  # in every planted value (see _leaks for how the number is searched)


def make_icc(desc: str, cprt: str) -> bytes:
    """A small valid ICC v2 RGB display profile whose desc and cprt tags hold ``desc`` and ``cprt``."""
    def xyz(x, y, z):
        return b"XYZ " + bytes(4) + struct.pack(">3i", *(round(v * 65536) for v in (x, y, z)))

    def curv(g):
        return b"curv" + bytes(4) + struct.pack(">IH", 1, round(g * 256)) + b"\0\0"
    d = desc.encode("ascii") + b"\0"
    tags = [(b"desc", b"desc" + bytes(4) + struct.pack(">I", len(d)) + d + bytes(78)),
            (b"cprt", b"text" + bytes(4) + cprt.encode("ascii") + b"\0"), (b"wtpt", xyz(0.9642, 1, 0.8249)),
            (b"rXYZ", xyz(.4361, .2225, .0139)), (b"gXYZ", xyz(.3851, .7169, .0971)),
            (b"bXYZ", xyz(.1431, .0606, .7141)), (b"rTRC", curv(2.2)), (b"gTRC", curv(2.2)), (b"bTRC", curv(2.2))]
    offset = 128 + 4 + 12 * len(tags)
    table, body = b"", b""
    for sig, data in tags:
        data += bytes(-len(data) % 4)
        table += sig + struct.pack(">II", offset + len(body), len(data))
        body += data
    header = (struct.pack(">I", offset + len(body)) + b"lcms" + struct.pack(">I", 0x02100000) + b"mntrRGB XYZ "
              + bytes(12) + b"acspAPPL" + bytes(24) + xyz(0.9642, 1, 0.8249)[8:] + bytes(48))
    return header + struct.pack(">I", len(tags)) + table + body


def _code(value: str, scheme: str, meaning: str) -> Dataset:
    c = Dataset()
    c.CodeValue, c.CodingSchemeDesignator, c.CodeMeaning = value, scheme, meaning
    return c


def _item(vtype: str, concept: Dataset, **kw) -> Dataset:
    it = Dataset()
    it.ValueType = vtype
    it.ConceptNameCodeSequence = [concept]
    for k, v in kw.items():
        setattr(it, k, v)
    return it


def _plant(ds: Dataset, label_uid: str) -> None:
    """Fake PHI in every carrier of issue 10 item 1 (DICOM), nested too."""
    ds.ImageType = list(ds.ImageType)[:4] + ["QUOKKA4455615"]
    ds.AcquisitionContextDescription = "Quokka ACD 4455602"
    ds.SOPAuthorizationComment = "Quokka SAC 4455603"
    ds.Manufacturer = "Quokka Scanners 4455618"
    ds.ManufacturerModelName = "Quokka Model 4455623"
    ds.SoftwareVersions = ["1.0.2", "Quokka 4455619"]
    ds.TimezoneOffsetFromUTC = "+0530"
    # A name in a code string: valid CS characters and length, not a term of FocusMethod (t-corpus).
    ds.FocusMethod = "QUOKKA JANE 4455626"[:16]
    ds.VolumetricProperties = "QUOKKA 4455627"
    # A CR inside a code string (written as a hostile writer would, without validation).
    ds.add(DataElement(tag_for_keyword("ContentQualification"), "CS", "RESEARCH\rQUOKKA",
                       validation_mode=pydicom.config.IGNORE))
    eq = Dataset()
    eq.Manufacturer = "Quokka Nested 4455620"
    eq.SoftwareVersions = "2.5.89"
    ds.ContributingEquipmentSequence = [eq]
    other = Dataset()
    other.PatientID = "QZOTHER4455621"
    other.TypeOfPatientID = "TEXT"  # a coded value that is also an ICC tag type: item 8
    ds.OtherPatientIDsSequence = [other]
    op = ds.OpticalPathSequence[0]
    op.OpticalPathDescription = "Jane Quokka OPD 4455601"
    op.ICCProfile = make_icc("Quokka ICC 4455616", "Quokka CPRT 4455617")
    op.ObjectiveLensPower = "20"
    op.IlluminationColorCodeSequence = [_code("QZLOC4455608", "99QUOKKA", "Quokka LCM 4455609")]
    comp = Dataset()
    comp.ContainerComponentTypeCodeSequence = [_code("433472003", "SCT", "Microscope slide cover slip")]
    comp.ContainerComponentDescription = "Quokka CCD 4455604"
    ds.ContainerComponentSequence = [comp]
    if "DimensionIndexSequence" not in ds:  # what highdicom writes for TILED_FULL (wsidicomizer writes none)
        org = ds.DimensionOrganizationSequence[0].DimensionOrganizationUID
        dims = []
        for pointer in (0x0048021E, 0x0048021F):
            dim = Dataset()
            dim.DimensionOrganizationUID = org
            dim.DimensionIndexPointer = pointer
            dim.FunctionalGroupPointer = 0x0048021A
            dims.append(dim)
        ds.DimensionIndexSequence = dims
    for k, dim in enumerate(ds.DimensionIndexSequence):
        dim.DimensionDescriptionLabel = f"Quokka DDL 445560{k}"
    ref = Dataset()
    ref.ReferencedSOPClassUID = WSI
    ref.ReferencedSOPInstanceUID = label_uid
    ref.RetrieveURL = "https://pacs.quokka-hospital.org/mrn4455612"
    ref.StorageMediaFileSetID = "QUOKKA4455613"
    ds.ReferencedImageSequence = [ref]
    src = Dataset()
    src.ReferencedSOPClassUID = WSI
    src.ReferencedSOPInstanceUID = label_uid
    ds.SourceImageSequence = [src]
    enc = Dataset()
    enc.EncryptedContentTransferSyntaxUID = "1.2.840.10008.1.2.1"
    enc.EncryptedContent = b"Quokka ENC 4455614 "
    ds.EncryptedAttributesSequence = [enc]
    # Specimen preparation: identifier item, a free-text item, a CODE item with
    # a TextValue, a standard code with a planted meaning, a local-scheme code.
    spec = ds.SpecimenDescriptionSequence[0]
    spec.SpecimenIdentifier = "QZSPEC4455622"
    steps = [
        _item("TEXT", _code("121041", "DCM", "Specimen Identifier"), TextValue="QZSPEC4455622"),
        _item("TEXT", _code("121106", "DCM", "Comment"), TextValue="Quokka TXT 4455606"),
        _item("CODE", _code("111701", "DCM", "Processing type"),
              ConceptCodeSequence=[_code("127790008", "SCT", "Staining")], TextValue="Quokka CTX 4455607"),
        _item("CODE", _code("424361007", "SCT", "Using substance"),
              ConceptCodeSequence=[_code("12710003", "SCT", "Quokka SCM 4455610")]),
        _item("CODE", _code("QZLOC4455611", "99QUOKKA", "Quokka LCM 4455611"),
              ConceptCodeSequence=[_code("KIDNEY15", "99QUOKKA", "Quokka Kidney 4455624")]),
    ]
    step = Dataset()
    step.SpecimenPreparationStepContentItemSequence = steps
    spec.SpecimenPreparationSequence = [step]
    ctx = _item("TEXT", _code("121106", "DCM", "Comment"), TextValue="Quokka ACX 4455625")
    ds.AcquisitionContextSequence = [ctx, _item("CODE", _code("111701", "DCM", "Processing type"),
                                                ConceptCodeSequence=[_code("127790008", "SCT", "Staining")])]


def build_series(folder: Path) -> Path:
    from wsideid.synth import make_dicom
    try:
        make_dicom(str(folder))
    except ImportError:
        pytest.skip("wsidicomizer (the convert extra) is not installed")
    files = sorted(folder.glob("*.dcm"))
    label = next(f for f in files if read(f).ImageType[2] == "LABEL")
    label_uid = str(read(label).SOPInstanceUID)
    for f in files:
        ds = pydicom.dcmread(f)
        _plant(ds, label_uid)
        ds.save_as(f, enforce_file_format=True)
    return folder


@pytest.fixture(scope="module")
def series(tmp_path_factory):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return build_series(tmp_path_factory.mktemp("planted") / "case-quokka")


def _leaks(data: bytes) -> list[str]:
    """Planted tokens in any encoding. The numbers are searched whole (4455601-4455627): a bare
    "4455" is four bytes, which random JPEG pixel data holds about once in 1.4 GB of output
    (seen once in a full run), while seven digits in a row never turn up by chance."""
    low = data.lower()
    found = []
    for enc in ("ascii", "utf-16-le", "utf-16-be"):
        if "quokka".encode(enc) in low:
            found.append(f"quokka ({enc})")
        for n in range(4455600, 4455630):
            if str(n).encode(enc) in low:
                found.append(f"{n} ({enc})")
    return found


def test_inputs_carry_the_plants(series):
    """The test is only worth something if the input does hold every planted value."""
    data = b"".join(f.read_bytes() for f in series.glob("*.dcm"))
    for needle in [b"Quokka OPD", b"Quokka ACD", b"Quokka SAC", b"Quokka CCD", b"Quokka DDL", b"Quokka TXT",
                   b"Quokka CTX", b"QZLOC4455608", b"Quokka LCM", b"Quokka SCM", b"mrn4455612", b"QUOKKA4455613",
                   b"Quokka ENC", b"QUOKKA4455615", b"Quokka ICC", b"Quokka CPRT", b"Quokka Scanners",
                   b"Quokka Nested", b"Quokka 4455619", b"QZOTHER4455621", b"Quokka ACX", b"RESEARCH\rQUOKKA",
                   b"QUOKKA JANE 4455", b"QUOKKA 4455627"]:
        assert needle in data, needle


@pytest.fixture(scope="module")
def published(series, tmp_path_factory):
    out = tmp_path_factory.mktemp("out")
    res = deidentify(series, out, options(detect="off"))
    return res


def test_no_planted_value_in_any_encoding(published):
    res = published
    assert res.status == "published", [c for c in res.report.checks if not c.ok]
    files = output_files(res)
    assert len(files) >= 2
    for f in files:
        assert not _leaks(f.read_bytes()), (f.name, _leaks(f.read_bytes()))
    audit = Path(res.audit_path).read_bytes()
    assert b"quokka" not in audit.lower()


def test_output_still_passes_the_readers_and_dciodvfy(published):
    checks = {c.name: c for c in published.report.checks}
    for name in ("reparse", "plan-held", "no-unknown-fields", "identifiers-replaced", "roles",
                 "image-data", "compressed-streams", "residual-needles", "reader", "validator"):
        assert checks[name].passed or (name == "validator" and checks[name].ok), (name, checks[name].detail)
    assert "wsidicom" in checks["reader"].detail and "openslide" in checks["reader"].detail


def test_what_was_kept_and_how(published):
    res = published
    outs = [read(f) for f in output_files(res)]
    for ds in outs:  # fifth value gone, the four enumerated ones kept
        assert len(ds.ImageType) == 4 and ds.ImageType[0] in ("ORIGINAL", "DERIVED")
    vol = _volume(outs)
    # U*: the references stay, their UIDs replaced by the keyed ones.
    label_src = next(d for d in res.plan.fields if d.field.path.endswith("ReferencedImageSequence[0]"
                                                                           "/ReferencedSOPInstanceUID"))
    want = UidMapper(SECRET).new_uid(label_src.field.text())
    assert vol.ReferencedImageSequence[0].ReferencedSOPInstanceUID == want
    assert vol.SourceImageSequence[0].ReferencedSOPInstanceUID == want
    assert "RetrieveURL" not in vol.ReferencedImageSequence[0]
    assert "StorageMediaFileSetID" not in vol.ReferencedImageSequence[0]
    assert "EncryptedAttributesSequence" not in vol and "TimezoneOffsetFromUTC" not in vol
    op = vol.OpticalPathSequence[0]
    assert "OpticalPathDescription" not in op
    assert op.ICCProfile and b"Quokka" not in bytes(op.ICCProfile)  # kept, its text neutralised
    local = op.IlluminationColorCodeSequence[0]
    assert local.CodingSchemeDesignator == "99WSIDEID" and local.CodeValue.startswith("L")
    steps = vol.SpecimenDescriptionSequence[0].SpecimenPreparationSequence[0].\
        SpecimenPreparationStepContentItemSequence
    assert [s.ValueType for s in steps] == ["TEXT", "CODE", "CODE", "CODE"]  # the free-text item dropped
    assert steps[0].TextValue == "RID-0001"  # the specimen identifier item: the research ID
    assert "TextValue" not in steps[1]
    assert steps[2].ConceptCodeSequence[0].CodeMeaning.lower() == "hematoxylin stain"  # the standard's meaning
    assert steps[3].ConceptCodeSequence[0].CodingSchemeDesignator == "99WSIDEID"
    assert [i.ValueType for i in vol.AcquisitionContextSequence] == ["CODE"]
    assert vol.Manufacturer == "ANONYMIZED" and vol.ManufacturerModelName == "ANONYMIZED"  # Type 1: dummies
    assert list(vol.SoftwareVersions) == ["1.0.2"] or vol.SoftwareVersions == "1.0.2"
    assert vol.ContributingEquipmentSequence[0].SoftwareVersions == "2.5.89"
    assert "ContentQualification" not in vol
    assert vol.FocusMethod == "AUTO"  # Type 1 CS, not a listed term: the first listed term
    assert vol.VolumetricProperties == "VOLUME"
    fm = [d for d in res.plan.fields if d.field.path.endswith("/FocusMethod")]
    assert fm and all(d.action == REPLACE and "not a listed term" in d.rule for d in fm)
    codes = {i.CodeValue for i in vol.DeidentificationMethodCodeSequence}
    assert codes == {"113100", "113104"}  # structured content was cleaned; nothing else claimed


def test_every_dicom_field_has_its_kind(published):
    kinds = {}
    for d in published.plan.fields:
        kinds.setdefault(d.field.key, set()).add(d.field.kind)
    assert kinds["dicom:TypeOfPatientID"] == {ValueKind.CODE}  # item 8: never a needle
    assert kinds["dicom:PatientID"] == {ValueKind.IDENTIFIER}
    assert kinds["dicom:Rows"] == {ValueKind.NUMBER}
    assert kinds["dicom:StudyDate"] == {ValueKind.DATE}
    assert kinds["dicom:SOPInstanceUID"] == {ValueKind.IDENTIFIER}
    assert kinds["dicom:OpticalPathDescription"] == {ValueKind.TEXT}
    assert kinds["dicom:ICCProfile/text"] == {ValueKind.TEXT}


def test_type_of_patient_id_text_does_not_refuse(published):
    """Item 8: TypeOfPatientID "TEXT" (removed with OtherPatientIDsSequence) matched the ICC
    profile's 'text' tag type and refused every such slide. It is a coded value: no needle."""
    assert published.status == "published"
    assert "TEXT" not in [n.upper() for n in _needles(published.plan)]


def _volume(outs):
    """The largest VOLUME instance."""
    vols = [d for d in outs if d.ImageType[2] == "VOLUME"]
    return max(vols, key=lambda d: int(d.TotalPixelMatrixColumns))


def _needles(plan):
    from wsideid.needles import needles_for_plan
    return [n.text for n in needles_for_plan(plan).needles]


def test_shift_keeps_timezone_and_dt_offsets(series, tmp_path):
    policy = make_policy("shift", SECRET, "subject-q")
    res = deidentify(series, tmp_path, options(detect="off", dates=policy))
    assert res.status == "published", [c for c in res.report.checks if not c.ok]
    vol = _volume([read(f) for f in output_files(res)])
    assert vol.TimezoneOffsetFromUTC == "+0530"
    for f in output_files(res):
        assert not _leaks(f.read_bytes())


def test_clean_descriptors_uses_the_classifier(series, tmp_path):
    folder = tmp_path / "desc"
    folder.mkdir()
    for n, f in enumerate(sorted(series.glob("*.dcm"))):
        ds = pydicom.dcmread(f)
        ds.SeriesDescription = "H&E section, level 2"
        ds.ImageComments = "Biopsy of Quokka, Jane MRN 4455626"  # a name and a record number
        ds.DerivationDescription = "Stained by doe"  # no flag, but a part of the removed PatientName DOE^JANE
        ds.save_as(folder / f"{n}.dcm", enforce_file_format=True)
    (tmp_path / "out").mkdir()
    res = deidentify(folder, tmp_path / "out", options(detect="off", dicom_opts=("clean-descriptors",)))
    assert res.status == "published", [c for c in res.report.checks if not c.ok]
    vol = _volume([read(f) for f in output_files(res)])
    assert vol.SeriesDescription == "H&E section, level 2"
    assert "ImageComments" not in vol and "DerivationDescription" not in vol
    assert "113105" in {i.CodeValue for i in vol.DeidentificationMethodCodeSequence}
    rules = {d.field.path.split("/", 1)[1]: d.rule for d in res.plan.fields if d.field.path.startswith("inst[0]/")}
    assert "PHI classifier: mrn, name" in rules["ImageComments"]
    assert "held a removed value" in rules["DerivationDescription"]
    for f in output_files(res):
        assert not _leaks(f.read_bytes())


# -- the value grammar, one VR at a time ----------------------------------------

@pytest.mark.parametrize("value,vr,ok", [
    ("0.4990", "DS", True), ("0.4990\0DOE^JANE", "DS", False), ("20 DOE^JANE", "DS", False), ("1e-3", "DS", True),
    ("12", "IS", True), ("12a", "IS", False), ("99999999999", "IS", False),
    ("TEXT", "CS", True), ("RESEARCH\rQUOKKA", "CS", False), ("lower", "CS", False), ("A" * 17, "CS", False),
    ("1.2.840.10008.1.2", "UI", True), ("1.2.03", "UI", False), ("1.2.3 DOE", "UI", False),
    ("045Y", "AS", True), ("45 years", "AS", False), (3, "US", True), (float("nan"), "FD", False),
    ("20200101", "DA", True), ("2020-01-01", "DA", False), ("101010.5", "TM", True), ("10:10 DOE", "TM", False),
    ("20200101101010+0530", "DT", True), ("20200101101010DOEJANE", "DT", False),
    (b"raw bytes", "DS", False),
])
def test_typed_values_parse_wholly(value, vr, ok):
    assert typed_valid(value, vr) is ok


def test_dates_and_offsets_follow_the_policy():
    shift, year, remove = DatePolicy("shift", 10), DatePolicy("year"), DatePolicy("remove")
    assert date_value("20200111101500+0530", "DT", shift) == "20200101101500+0530"
    assert date_value("20200111101500+0530", "DT", year) == "20200101"
    assert date_value("20200111101500DOE", "DT", shift) is None  # trailing text is not a DT
    assert date_value("1015 DOE", "TM", shift) is None
    assert date_value("20200111\0DOE", "DA", shift) is None
    assert timezone_value("+0530", shift) == "+0530"
    assert timezone_value("+0530", year) is None and timezone_value("+0530", remove) is None
    assert timezone_value("+05:30 Quokka", shift) is None


def test_code_strings_only_listed_terms(tmp_path):
    """A CS keeps only the standard's terms; an unlisted CS attribute fails closed (Type 3: removed)."""
    from test_dicom_fixtures import dicom_file
    src = tmp_path / "in.dcm"
    ds = pydicom.dcmread(dicom_file("highdicom_sm_image"))
    ds.FocusMethod = "DOE JANE 4455667"
    ds.ExtendedDepthOfField = "NO"
    ds.add(DataElement(0x00189004, "CS", "QUOKKA 4455628"))  # ContentQualification, not a term
    ds.save_as(src)
    (tmp_path / "out").mkdir()
    res = deidentify(src, tmp_path / "out", options(detect="off"))
    assert res.status == "published", [c for c in res.report.checks if not c.ok]
    out = read(output_files(res)[0])
    assert out.FocusMethod == "AUTO" and out.ExtendedDepthOfField == "NO"
    assert "ContentQualification" not in out
    data = output_files(res)[0].read_bytes()
    assert b"DOE JANE" not in data and b"4455628" not in data
    from wsideid.profiles import load_profile
    from wsideid.dicom.rules import DicomRules
    rules = DicomRules(load_profile("dicom"), set())
    assert rules.code_strings["FocusMethod"] == ["AUTO", "MANUAL"]  # the privacy officer's list


def test_kinds_from_vr():
    assert kind_for("CS", "TypeOfPatientID") == ValueKind.CODE
    assert kind_for("DS", "PixelSpacing") == ValueKind.NUMBER
    assert kind_for("PN", "OperatorsName") == ValueKind.IDENTIFIER
    assert kind_for("LO", "AccessionNumber") == ValueKind.IDENTIFIER
    assert kind_for("LO", "ManufacturerModelName") == ValueKind.TEXT
    assert kind_for("ST", "OpticalPathDescription") == ValueKind.TEXT
    assert kind_for("OB", "ICCProfile") == ValueKind.BINARY
    assert kind_for("DT", "AcquisitionDateTime") == ValueKind.DATE


def test_code_items():
    from wsideid.profiles import load_profile
    from wsideid.dicom.rules import DicomRules
    rules = DicomRules(load_profile("dicom"), set())
    uids = UidMapper(SECRET)
    assert sctid_valid("12710003") and sctid_valid("433466003") and not sctid_valid("4455667")
    ops = rules.codes.judge(_code("12710003", "SCT", "hematoxylin stain"), uids)
    assert ops["CodeValue"].kind == "keep" and ops["CodeMeaning"].kind == "keep"
    ops = rules.codes.judge(_code("12710003", "SCT", "Jane Doe"), uids)
    assert ops["CodeMeaning"].kind == "set" and ops["CodeMeaning"].value.lower() == "hematoxylin stain"
    ops = rules.codes.judge(_code("4455667", "SCT", "Hematoxylin stain"), uids)  # not a SNOMED CT identifier
    assert ops["CodeValue"].kind == "set" and ops["CodingSchemeDesignator"].value == "99WSIDEID"
    a = rules.codes.judge(_code("MRN4455667", "99LAB", "Jane Doe"), uids)
    b = rules.codes.judge(_code("MRN4455667", "99LAB", "Other text"), uids)
    assert a["CodeValue"].value == b["CodeValue"].value != "MRN4455667"  # keyed, consistent
    assert "Jane" not in a["CodeMeaning"].value
    assert not CodeRules.is_code_item(Dataset())
    # A replaced meaning is a needle unless it is some standard code's meaning.
    assert rules.codes.judge(_code("11744", "DCM", "Brightfield illumination"), uids)["CodeMeaning"].value_kind \
        == ValueKind.CODE
    assert a["CodeMeaning"].value_kind == ValueKind.TEXT


def test_kept_text_holding_a_removed_value_is_withdrawn(series, tmp_path):
    """No exemptions, applied by the planner: a kept field that holds a removed value (or a
    part of a removed identifier) is withdrawn too, until nothing changes."""
    from wsideid.drivers.dicom import plan_source
    from wsideid.dicom.source import load, quiet_pydicom
    folder = tmp_path / "s"
    folder.mkdir()
    for n, f in enumerate(sorted(series.glob("*.dcm"))):
        ds = pydicom.dcmread(f)
        ds.InstitutionName = "Leica Biosystems"  # removed (X) ...
        ds.Manufacturer = "Leica Biosystems"  # ... so the vendor name matching its pattern goes too
        ds.ManufacturerModelName = "Aperio GT 450"
        ds.ContainerIdentifier = "SLIDE_7"  # removed; its part "SLIDE" stands in a code meaning
        ds.ContainerTypeCodeSequence = [_code("433466003", "SCT", "Microscope slide")]
        ds.save_as(folder / f"{n}.dcm", enforce_file_format=True)
    with quiet_pydicom():
        plan = plan_source(load(str(folder)), options())
    man = plan.decision_for("inst[0]/Manufacturer")
    assert man.action == "replace" and "held a removed value" in man.rule and man.new_value == "ANONYMIZED"
    assert plan.decision_for("inst[0]/ManufacturerModelName").action == "keep"
    meaning = plan.decision_for("inst[0]/ContainerTypeCodeSequence[0]/CodeMeaning")
    assert meaning.new_value == "SCT 433466003"
    assert plan.decision_for("inst[0]/ContainerTypeCodeSequence[0]/CodeValue").action == "keep"


def test_without_the_value_policy_the_plants_are_caught_or_leak(series, tmp_path, monkeypatch):
    """The leak test can fail: with every free-text pattern matching and every code taken as
    standard, planted values are kept, and the output either leaks them or is refused."""
    from wsideid.dicom.codes import CodeOp
    from wsideid.dicom.rules import DicomRules
    from wsideid.errors import VerificationFailed
    monkeypatch.setattr(DicomRules, "text_allowed", lambda self, kw, v: True)
    monkeypatch.setattr(CodeRules, "judge", lambda self, item, uids: {k: CodeOp("keep") for k in item.dir()
                                                                      if k.startswith("Cod")})
    try:
        res = deidentify(series, tmp_path, options(detect="off"))
    except VerificationFailed:
        return
    assert any(_leaks(f.read_bytes()) for f in output_files(res))
