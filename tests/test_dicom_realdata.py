"""De-identification of the real DICOM WSI test files (../shared/testdata/dicom)."""

from __future__ import annotations

import json
import warnings

import openslide
import pydicom
import pytest
from wsidicom import WsiDicom

from test_dicom_fixtures import (OTHER_SECRET, all_uids, copy_into, dicom_file, output_files, read, run)
from wsideid.dicom import dciodvfy
from wsideid.dicom.pixels import read_span, same_fragments
from wsideid.dicom.source import read_instance

pytestmark = pytest.mark.realdata
SINGLE = ["highdicom_sm_image", "wsi2dcm_jpeg", "wsi2dcm_jpeg2000", "mi_multi_frame_jpeg_camelyon_challenge_image"]


def _opens_everywhere(files):
    for f in files:
        pydicom.dcmread(f)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with WsiDicom.open([str(f) for f in files]) as w:
            assert w.levels
    vol = next(f for f in files if "VOLUME" in read(f).ImageType)
    s = openslide.OpenSlide(str(vol))
    assert s.level_count >= 1
    s.close()


@pytest.mark.parametrize("name", SINGLE)
def test_single_file_published_and_readable(tmp_path, name):
    src = dicom_file(name)
    res = run(src, tmp_path / "out")
    assert res.status == "published"
    checks = {c.name: c for c in res.report.checks}
    assert all(checks[n].passed for n in ("reparse", "image-data", "residual-needles", "reader", "plan-held",
                                          "identifiers-replaced")) and checks["validator"].ok
    files = output_files(res)
    assert [f.name for f in files] == ["RID-0001.dcm"]
    _opens_everywhere(files)
    out = read(files[0])
    assert out.PatientIdentityRemoved == "YES"
    assert out.PatientID == "RID-0001" and out.ContainerIdentifier == "RID-0001"
    codes = {i.CodeValue for i in out.DeidentificationMethodCodeSequence}
    assert "113100" in codes and "113107" not in codes and "113101" not in codes
    # Clean Structured Content is claimed only where structured content was cleaned.
    inp = read(src)
    structured = bool(inp.get("AcquisitionContextSequence")) or any(
        i.get("SpecimenPreparationSequence") for i in inp.get("SpecimenDescriptionSequence", []))
    assert ("113104" in codes) == structured
    assert out.LongitudinalTemporalInformationModified == "REMOVED"
    assert not (all_uids(out) & all_uids(read(src)))  # every UID changed
    assert out.file_meta.MediaStorageSOPInstanceUID == out.SOPInstanceUID
    # Frame bytes identical (all frames), except where the stream rule dropped
    # segments (wsi2dcm's J2K frames hold an empty COM): those decode identically.
    a, b = read_instance(str(src), 0), read_instance(str(files[0]), 0)
    from wsideid.dicom.frames import rule_edits
    from wsideid.jpeg.compare import same_decoding
    rule = rule_edits(a)
    same, n = same_fragments(str(src), a.span, str(files[0]), b.span, None, rule)
    assert same and n == len(a.span.fragments)
    for k, e in rule.items():
        before = open(src, "rb").read()[e.offset:e.offset + e.length]
        off, size = b.span.fragments[k]
        assert same_decoding(before, open(files[0], "rb").read()[off:off + size], kind=e.kind) is None
    assert bool(rule) == (name == "wsi2dcm_jpeg2000")
    if dciodvfy.available():
        assert dciodvfy.new_errors(str(src), str(files[0])) == []
    # Audit: no PHI value, the output's hash; the input's hash only in the lab record (review folder).
    audit = json.loads(open(res.audit_path).read())
    assert audit["hash_algorithm"] == "blake3"  # the default, as for TIFF (hashing.py)
    assert audit["blake3"]["output[0]"] and "input[0]" not in audit["blake3"]
    assert audit["profile"]["name"] == "dicom-wsi-default"
    lab = json.loads((tmp_path / "out-review" / "records" / "RID-0001.dcm.lab.json").read_text())
    assert "input[0]" not in lab["blake3"] and lab["input"] == str(src)  # only with --hash-input


def test_input_hash_in_the_lab_record_only_when_asked_for(tmp_path):
    """--hash-input: the DICOM input's hash goes to the lab record (never the audit); without it
    the input is not read a second time, as for the TIFF family (hashing.py)."""
    import blake3
    src = dicom_file("wsi2dcm_jpeg")
    res = run(src, tmp_path / "out", hash_input=True, detect="off")
    audit = json.loads(open(res.audit_path).read())
    assert "input[0]" not in audit["blake3"]
    lab = json.loads((tmp_path / "out-review" / "records" / "RID-0001.dcm.lab.json").read_text())
    assert lab["blake3"]["input[0]"] == blake3.blake3(src.read_bytes()).hexdigest()
    assert lab["blake3"]["output[0]"] == blake3.blake3(output_files(res)[0].read_bytes()).hexdigest()


def test_highdicom_phi_gone(tmp_path):
    src = dicom_file("highdicom_sm_image")
    res = run(src, tmp_path / "out")
    data = output_files(res)[0].read_bytes()
    for needle in [b"Test^Patient", b"AA01", b"17890505", b"Test^Physician", b"S19-1_A_1_1", b"abcd",
                   b"20190604", b"20190822", b"20091229", b"test.org/specimens"]:
        assert needle not in data, needle
    audit = open(res.audit_path).read()
    assert "Test^Patient" not in audit and "S19-1" not in audit


def test_camelyon_private_tags_removed(tmp_path):
    src = dicom_file("mi_multi_frame_jpeg_camelyon_challenge_image")
    res = run(src, tmp_path / "out")
    out = read(output_files(res)[0])
    assert not [e for e in out if e.tag.is_private]
    data = output_files(res)[0].read_bytes()
    assert b"tumor_102" not in data and b"GOOGLE" not in data and b"GO-1692202754026" not in data
    # Specimen ID replaced, free-text preparation steps gone, the instance still valid.
    assert out.SpecimenDescriptionSequence[0].SpecimenIdentifier == "RID-0001"
    assert b"Kidney biopsy" not in data


def test_boxes_series_folder_with_label(tmp_path):
    folder = copy_into(tmp_path / "slide-42", "openslide-python_boxes_0", "openslide-python_boxes_1",
                       "mi_test_wsi_label_barcodevalue")
    label_bytes = (folder / "mi_test_wsi_label_barcodevalue.dcm").read_bytes()
    res = run(folder, tmp_path / "out", new_id=None)
    name = res.output.rsplit("/", 1)[-1]  # a keyed pseudonym, never the folder's own name
    assert name.startswith("WSI-") and len(name) == 20 and res.named_by == "pseudonym"
    files = output_files(res)
    assert len(files) == 2  # VOLUME + THUMBNAIL; LABEL removed
    types = sorted(read(f).ImageType[2] for f in files)
    assert types == ["THUMBNAIL", "VOLUME"]
    assert {d.image.role: d.action for d in res.plan.images}["label"] == "remove"
    outs = [read(f) for f in files]
    assert len({o.StudyInstanceUID for o in outs}) == 1 and len({o.SeriesInstanceUID for o in outs}) == 1
    assert len({o.FrameOfReferenceUID for o in outs}) == 1
    assert all(f.name == f"{o.SOPInstanceUID}.dcm" for f, o in zip(files, outs))
    s = openslide.OpenSlide(str(next(f for f, o in zip(files, outs) if "VOLUME" in o.ImageType)))
    assert "label" not in s.associated_images and "thumbnail" in s.associated_images
    s.close()
    _opens_everywhere(files)
    for f in files:
        assert b"CBF-1234" not in f.read_bytes()
    # Input untouched.
    assert (folder / "mi_test_wsi_label_barcodevalue.dcm").read_bytes() == label_bytes


def test_uid_mapping_consistent_and_keyed(tmp_path):
    src = dicom_file("highdicom_sm_image")
    a = read(output_files(run(src, tmp_path / "a"))[0])
    b = read(output_files(run(src, tmp_path / "b"))[0])
    c = read(output_files(run(src, tmp_path / "c", secret=OTHER_SECRET))[0])
    assert a.SOPInstanceUID == b.SOPInstanceUID and a.StudyInstanceUID == b.StudyInstanceUID
    assert all_uids(a) == all_uids(b)
    assert not (all_uids(a) & all_uids(c))
    assert all(u.startswith("2.25.") and len(u) <= 64 for u in all_uids(a))
    # References inside sequences follow the mapping.
    assert a.DimensionOrganizationSequence[0].DimensionOrganizationUID == \
        a.DimensionIndexSequence[0].DimensionOrganizationUID
    assert a.SOPClassUID == read(src).SOPClassUID


def test_label_alone_is_refused(tmp_path):
    from wsideid.errors import WsideidError
    with pytest.raises(WsideidError, match=r"removes every image of the input \(1 label\)"):
        run(dicom_file("mi_test_wsi_label_barcodevalue"), tmp_path / "out")
    assert list((tmp_path / "out").iterdir()) == []


def test_pixel_span_of_encapsulated_file():
    src = dicom_file("wsi2dcm_jpeg")
    inst = read_instance(str(src), 0)
    assert inst.span.encapsulated and len(inst.span.fragments) == 12
    again = read_span(str(src), inst.span.start, False)
    assert again == inst.span


def test_one_slide_of_a_folder_of_three_and_overwrite(tmp_path):
    """Three slides in one folder are three outputs (tests/test_dicom_folder_slides.py): one
    research ID is refused, naming the slides; ``series`` picks one, written alone."""
    from wsideid.errors import WsideidError
    folder = copy_into(tmp_path / "mixed", "highdicom_sm_image", "wsi2dcm_jpeg", "openslide-python_boxes_0",
                       "openslide-python_boxes_1")
    boxes = str(read(folder / "openslide-python_boxes_0.dcm").SeriesInstanceUID)
    with pytest.raises(WsideidError, match="holds 3 slides") as err:
        run(folder, tmp_path / "out")
    from wsideid.dicom.slides import series_token
    assert series_token(boxes) in str(err.value) and boxes not in str(err.value)  # named by token, never by UID
    res = run(folder, tmp_path / "out", series=series_token(boxes))
    files = output_files(res)
    assert len(files) == 2 and len({read(f).SeriesInstanceUID for f in files}) == 1
    reader = next(c.detail for c in res.report.checks if c.name == "reader")
    assert "level(s)" in reader.split("openslide:")[0]  # wsidicom read the slide
    again = run(folder, tmp_path / "out", series=boxes, overwrite=True)
    assert sorted(f.name for f in output_files(again)) == sorted(f.name for f in files)
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".wsideid-tmp")]


def test_dates_reduced_to_year(tmp_path):
    from wsideid.dates import DatePolicy
    src = dicom_file("highdicom_sm_image")
    out = read(output_files(run(src, tmp_path / "out", dates=DatePolicy("year")))[0])
    assert out.StudyDate == "20190101" and out.AcquisitionDateTime == "20090101"
    assert out.LongitudinalTemporalInformationModified == "MODIFIED"
    assert "113107" in {i.CodeValue for i in out.DeidentificationMethodCodeSequence}
