"""Synthetic multi-instance slides with PHI planted in every attribute the profile touches.

Built in memory from highdicom's sm_image: one VOLUME, a THUMBNAIL, a LABEL
and an OVERVIEW sharing study/series/frame of reference, every Table E.1-1
text/date/UID attribute set to a unique planted value, plus a private block.
"""

from __future__ import annotations

import datetime as dt
import warnings
from pathlib import Path

import openslide
import pydicom
import pytest
from pydicom.datadict import dictionary_VR, tag_for_keyword
from wsidicom import WsiDicom

from test_dicom_fixtures import SECRET, dicom_file, output_files, read, run
from wsideid.dates import make_policy, subject_offset_days
from wsideid.profiles import load_profile

TEXT_VRS = {"LO", "SH", "PN", "LT", "ST", "UT", "UC", "AE"}
# Identity the test sets itself (it must stay consistent across the instances).
STRUCTURAL = {"StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "FrameOfReferenceUID",
              "SpecimenUID", "ContainerIdentifier", "SpecimenIdentifier", "ConcatenationUID",
              "SOPInstanceUIDOfConcatenationSource"}


def _planted_values() -> dict[str, str]:
    """keyword -> unique planted value, for every table row we can plant at the top level."""
    table = load_profile("dicom").data["dicom_options"]["table"]
    out: dict[str, str] = {}
    for n, kw in enumerate(sorted(table)):
        if kw.startswith(("(", "@")) or kw in STRUCTURAL or (tag_for_keyword(kw) or 0) >> 16 in (0, 2):
            continue
        vr = dictionary_VR(kw)
        if vr in TEXT_VRS:
            out[kw] = f"PHI{n:04d}Q"
        elif vr == "DA":
            out[kw] = (dt.date(1950, 1, 1) + dt.timedelta(days=n)).strftime("%Y%m%d")
        elif vr == "DT":
            out[kw] = (dt.date(1950, 1, 1) + dt.timedelta(days=n)).strftime("%Y%m%d") + "101010"
        elif vr == "UI":
            out[kw] = f"1.2.826.0.1.3680043.99.{n}"
    return out


def _nested(value: str) -> str:
    """A second unique spelling of a planted value (same VR shape)."""
    if value.startswith("PHI"):
        return value.replace("Q", "N")
    if "." in value:  # a UID
        return value + ".9"
    return str(int(value[:4]) + 60) + value[4:]  # a date: 60 years later


def build_slide(folder: Path) -> tuple[Path, dict[str, str]]:
    base = pydicom.dcmread(dicom_file("highdicom_sm_image"))
    planted = _planted_values()
    folder.mkdir(parents=True, exist_ok=True)
    for i, flavor in enumerate(["VOLUME", "THUMBNAIL", "LABEL", "OVERVIEW"]):
        ds = base.copy()
        for kw, value in planted.items():
            setattr(ds, kw, value)
        equipment = pydicom.Dataset()  # the same attributes again, nested in a kept sequence
        for kw, value in planted.items():
            setattr(equipment, kw, _nested(value))
        ds.ContributingEquipmentSequence = [equipment]
        ds.ImageType = ["ORIGINAL" if flavor == "VOLUME" else "DERIVED", "PRIMARY", flavor, "NONE"]
        ds.SOPInstanceUID = f"1.2.826.0.1.3680043.99.1000.{i}"
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.private_block(0x0009, "ACME PHI", create=True).add_new(0x01, "LO", "PRIVATE-PHI-VALUE")
        ds.SpecimenDescriptionSequence[0].SpecimenShortDescription = "Resection from patient Jane Roe"
        ds.save_as(folder / f"instance-{i}.dcm", enforce_file_format=True)
    return folder, planted


@pytest.fixture(scope="module")
def slide(tmp_path_factory):
    return build_slide(tmp_path_factory.mktemp("synth") / "case-7")


def test_every_planted_value_is_gone(slide, tmp_path):
    folder, planted = slide
    res = run(folder, tmp_path / "out")
    assert res.status == "published", [c for c in res.report.checks if not c.ok]
    files = output_files(res)
    roles = sorted(read(f).ImageType[2] for f in files)
    assert roles == ["THUMBNAIL", "VOLUME"]  # LABEL and OVERVIEW removed by default
    kept = {k for k, v in planted.items() if res.plan.decision_for(f"inst[0]/{k}").action == "keep"}
    assert not kept, f"planted attributes kept: {sorted(kept)[:10]}"
    for f in files:
        data = f.read_bytes()
        leaked = [k for k, v in planted.items() if v.encode() in data or _nested(v).encode() in data]
        assert not leaked, leaked[:10]
        assert b"PRIVATE-PHI-VALUE" not in data and b"ACME PHI" not in data and b"Jane Roe" not in data
    # Every output opens in pydicom, wsidicom and OpenSlide.
    for f in files:
        pydicom.dcmread(f)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with WsiDicom.open([str(f) for f in files]) as w:
            assert w.levels[0].size.to_tuple() == (50, 50)
    vol = next(f for f in files if read(f).ImageType[2] == "VOLUME")
    s = openslide.OpenSlide(str(vol))
    assert s.dimensions == (50, 50)
    s.close()


def test_uids_consistent_across_instances(slide, tmp_path):
    folder, _ = slide
    outs = [read(f) for f in output_files(run(folder, tmp_path / "out"))]
    for kw in ("StudyInstanceUID", "SeriesInstanceUID", "FrameOfReferenceUID"):
        assert len({str(getattr(o, kw)) for o in outs}) == 1
    assert len({o.SpecimenDescriptionSequence[0].SpecimenUID for o in outs}) == 1
    assert len({o.SOPInstanceUID for o in outs}) == len(outs)


def test_options_change_what_is_kept(slide, tmp_path):
    folder, planted = slide
    secret = SECRET
    policy = make_policy("shift", secret, "subject-9")
    res = run(folder, tmp_path / "out", dates=policy,
              dicom_opts=("retain-device-identity", "clean-descriptors"), label="generate")
    files = output_files(res)
    outs = {read(f).ImageType[2]: read(f) for f in files}
    assert set(outs) == {"VOLUME", "THUMBNAIL", "LABEL"}  # label replaced by a generated one
    vol = outs["VOLUME"]
    assert vol.DeviceSerialNumber == planted["DeviceSerialNumber"]  # Retain Device Identity
    codes = {i.CodeValue for i in vol.DeidentificationMethodCodeSequence}
    assert {"113100", "113104", "113105", "113107", "113109"} <= codes
    assert vol.LongitudinalTemporalInformationModified == "MODIFIED"
    shift = dt.timedelta(days=subject_offset_days(secret, "subject-9"))
    want = (dt.datetime.strptime(planted["StudyDate"], "%Y%m%d") - shift).strftime("%Y%m%d")
    assert vol.StudyDate == want and outs["THUMBNAIL"].StudyDate == want
    label = outs["LABEL"]
    assert label.PhotometricInterpretation == "RGB" and label.BurnedInAnnotation == "YES"
    assert len(label.PixelData) == label.Rows * label.Columns * 3
