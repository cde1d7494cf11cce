"""Issue 15 item 2: uid-map.csv and patient-map.csv in the review folder, `map lookup`, subject defaults."""

from __future__ import annotations

import base64
import shutil
from pathlib import Path

import pydicom
import pytest

from wsideid import cli
from wsideid.cells import escape
from wsideid.dates import subject_offset_days
from wsideid.keys import load_secret
from wsideid.pseudomaps import MapConflict, MapKind, append_pairs, lookup, new_rows, read_map

SECRET_A = b"pseudomap-secret-A-0123456789abc"
SECRET_B = b"pseudomap-secret-B-0123456789abc"


@pytest.fixture(scope="module")
def series(tmp_path_factory) -> Path:
    from wsideid.synth import make_dicom
    try:
        return Path(make_dicom(str(tmp_path_factory.mktemp("pm") / "series")).path)
    except ImportError:
        pytest.skip("wsidicomizer (the convert extra) is not installed")


def _key(tmp_path: Path, raw: bytes, name: str = "key.txt") -> str:
    p = tmp_path / name
    p.write_text(base64.b64encode(raw).decode())
    return str(p)


def _deid(src, out, review, key, *extra) -> int:
    return cli.main(["deid", str(src), "-o", str(out), "--mkdir", "--review-dir", str(review), "--secret-file", key,
                     "--detect", "off", *map(str, extra)])


def other_slide(series: Path, dest: Path, patient_id: str) -> Path:
    """A copy of the series as another slide: other SOP Instance UIDs, another PatientID."""
    shutil.copytree(series, dest)
    for f in dest.glob("*.dcm"):
        ds = pydicom.dcmread(f)
        ds.PatientID = patient_id
        ds.SOPInstanceUID = pydicom.uid.generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.save_as(f)
    return dest


def _uids(ds) -> set[str]:
    out = set()

    def walk(d):
        for e in d:
            if e.VR == "UI" and e.value:
                out.update(str(v) for v in (e.value if isinstance(e.value, list) or type(e.value).__name__ == "MultiValue"
                                            else [e.value]))
            elif e.VR == "SQ":
                for item in e.value:
                    walk(item)
    walk(ds)
    return {u for u in out if not u.startswith("1.2.840.10008.")}


def test_maps_written_in_review_folder_and_consistent_across_runs(tmp_path, series, capsys):
    key = _key(tmp_path, SECRET_A)
    out, review = tmp_path / "out", tmp_path / "review"
    assert _deid(series, out, review, key) == 0
    uid_rows, patient_rows = read_map(str(review), MapKind.UID), read_map(str(review), MapKind.PATIENT)
    assert not list(out.rglob("*-map.csv")), "a map in OUTDIR"
    assert patient_rows and patient_rows[0][0] == str(pydicom.dcmread(next(series.glob("*.dcm"))).PatientID)
    uid_map = dict(uid_rows)
    assert len(uid_map) == len(uid_rows), "duplicate rows"
    # every UID of the output is a new one of the map, every source UID it stands for is mapped to it
    src_uids = set().union(*(_uids(pydicom.dcmread(f)) for f in series.glob("*.dcm")))
    new_of_output = set().union(*(_uids(pydicom.dcmread(f)) for f in out.rglob("*.dcm")))
    assert new_of_output <= set(uid_map.values())
    assert not (new_of_output & src_uids)
    assert {v for k, v in uid_map.items() if k in src_uids} >= new_of_output
    # a rerun with the same secret (another OUTDIR, same review folder) adds nothing
    assert _deid(series, tmp_path / "out2", review, key) == 0
    assert read_map(str(review), MapKind.UID) == uid_rows
    assert read_map(str(review), MapKind.PATIENT) == patient_rows
    # another secret contradicts the map: an error, nothing published, maps unchanged
    out3 = tmp_path / "out3"
    capsys.readouterr()
    assert _deid(series, out3, review, _key(tmp_path, SECRET_B, "b.txt")) == 2
    assert [p.name for p in out3.iterdir()] == []
    assert "--secret-file" in capsys.readouterr().err  # the way out, named (a run without one uses a random key)
    assert read_map(str(review), MapKind.UID) == uid_rows


def test_lookup_both_ways(tmp_path, series, capsys):
    key = _key(tmp_path, SECRET_A)
    review = tmp_path / "review"
    assert _deid(series, tmp_path / "out", review, key) == 0
    old_pid, new_pid = read_map(str(review), MapKind.PATIENT)[0]
    old_uid, new_uid = read_map(str(review), MapKind.UID)[0]
    for value, want in ((old_pid, new_pid), (new_pid, old_pid), (old_uid, new_uid), (new_uid, old_uid)):
        capsys.readouterr()
        assert cli.main(["map", "lookup", value, "--review-dir", str(review), "--json"]) == 0
        import json
        found = json.loads(capsys.readouterr().out)
        assert [{m["id_old"], m["id_new"]} for m in found] == [{value, want}]
    assert cli.main(["map", "lookup", "9.9.9.9", "--review-dir", str(review)]) == 1
    assert cli.main(["map", "lookup", "x", "--review-dir", str(tmp_path / "nowhere")]) == 2


def test_subject_sets_patient_id_and_date_shift(tmp_path, series):
    key = _key(tmp_path, SECRET_A)
    review = tmp_path / "review"
    # two slides of one subject (copies with other UIDs count as another slide) share the new PatientID
    other = other_slide(series, tmp_path / "other", "OTHER-MRN-991")
    assert _deid(series, tmp_path / "o1", review, key, "--subject", "SUBJ-17", "--new-id", "RID-1") == 0
    assert _deid(other, tmp_path / "o2", review, key, "--subject", "SUBJ-17", "--new-id", "RID-2") == 0
    pids = {str(pydicom.dcmread(f).PatientID) for f in (tmp_path / "o1").rglob("*.dcm")} | \
        {str(pydicom.dcmread(f).PatientID) for f in (tmp_path / "o2").rglob("*.dcm")}
    assert len(pids) == 1 and "SUBJ-17" not in pids and "RID-1" not in pids
    rows = read_map(str(review), MapKind.PATIENT)
    assert {old for old, _ in rows} >= {"OTHER-MRN-991"} and {new for _, new in rows} == pids  # two olds, one new
    # without a subject the research ID stays the PatientID (as before)
    assert _deid(series, tmp_path / "o3", tmp_path / "r3", key, "--new-id", "RID-3") == 0
    assert {str(pydicom.dcmread(f).PatientID) for f in (tmp_path / "o3").rglob("*.dcm")} == {"RID-3"}


def test_dates_shift_defaults_to_the_dicom_patient_id(tmp_path, series):
    key = _key(tmp_path, SECRET_A)
    pid = str(pydicom.dcmread(next(series.glob("*.dcm"))).PatientID)
    src_date = str(pydicom.dcmread(next(series.glob("*.dcm"))).StudyDate)
    assert _deid(series, tmp_path / "a", tmp_path / "ra", key, "--dates", "shift") == 0
    assert _deid(series, tmp_path / "b", tmp_path / "rb", key, "--dates", "shift", "--subject", pid) == 0
    a = {str(pydicom.dcmread(f).StudyDate) for f in (tmp_path / "a").rglob("*.dcm")}
    b = {str(pydicom.dcmread(f).StudyDate) for f in (tmp_path / "b").rglob("*.dcm")}
    import datetime as dt
    offset = subject_offset_days(load_secret(key), pid)
    want = (dt.datetime.strptime(src_date, "%Y%m%d") - dt.timedelta(days=offset)).strftime("%Y%m%d")
    assert a == b == {want}


def test_dates_shift_without_patient_id_is_refused(tmp_path, series, capsys):
    src = tmp_path / "nopid"
    shutil.copytree(series, src)
    for f in src.glob("*.dcm"):
        ds = pydicom.dcmread(f)
        del ds.PatientID
        ds.save_as(f)
    assert _deid(src, tmp_path / "o", tmp_path / "r", _key(tmp_path, SECRET_A), "--dates", "shift") == 2
    err = capsys.readouterr().err
    assert "--subject" in err and len(err.strip().splitlines()) == 1


def test_new_rows_rules():
    existing = [("1.2.3", "2.25.1"), ("MRN1", "P1")]
    assert new_rows(existing, [("1.2.3", "2.25.1"), ("1.2.4", "2.25.2")], MapKind.UID) == [("1.2.4", "2.25.2")]
    with pytest.raises(MapConflict):
        new_rows(existing, [("1.2.3", "2.25.9")], MapKind.UID)  # old mapped elsewhere
    with pytest.raises(MapConflict):
        new_rows(existing, [("1.2.9", "2.25.1")], MapKind.UID)  # new already stands for another
    assert new_rows(existing, [("MRN2", "P1")], MapKind.PATIENT) == [("MRN2", "P1")]  # two MRNs, one subject
    with pytest.raises(MapConflict):
        new_rows(existing, [("MRN1", "P2")], MapKind.PATIENT)
    assert new_rows([], [("a", "b"), ("a", "b")], MapKind.UID) == [("a", "b")]


def test_cells_escaped_and_round_trip(tmp_path):
    review = str(tmp_path / "r")
    assert append_pairs(review, MapKind.PATIENT, [("=HYPERLINK(1)", "-R1"), ("+44", "@x")]) == 2
    text = (tmp_path / "r" / "patient-map.csv").read_text()
    assert escape("=HYPERLINK(1)") in text and "\n=" not in text and ",-" not in text
    assert read_map(review, MapKind.PATIENT) == [("=HYPERLINK(1)", "-R1"), ("+44", "@x")]
    assert append_pairs(review, MapKind.PATIENT, [("=HYPERLINK(1)", "-R1")]) == 0
    assert [m.id_old for m in lookup(review, "-R1")] == ["=HYPERLINK(1)"]


def test_map_through_a_link_is_refused(tmp_path):
    review = tmp_path / "r"
    review.mkdir()
    (tmp_path / "elsewhere.csv").write_text("")
    (review / "uid-map.csv").symlink_to(tmp_path / "elsewhere.csv")
    from wsideid.errors import WsideidError
    with pytest.raises(WsideidError):
        append_pairs(str(review), MapKind.UID, [("1.2.3", "2.25.1")])
    assert (tmp_path / "elsewhere.csv").read_text() == ""


def batch_manifest(tmp_path: Path, series: Path, subject: str) -> Path:
    """A manifest with the series and a copy under another PatientID, both of one subject, dates shifted."""
    shutil.copytree(series, tmp_path / "slide")
    other_slide(series, tmp_path / "other-slide", "OTHER-MRN-552")
    m = tmp_path / "manifest.csv"
    m.write_text(f"source,new_id,subject,dates\nslide,R-0001,{subject},shift\nother-slide,R-0002,{subject},shift\n")
    return m


def test_manifest_subject_gives_one_patient_id_and_one_offset(tmp_path, series):
    key = _key(tmp_path, SECRET_A)
    manifest = batch_manifest(tmp_path, series, "SUBJ-9")
    out, review = tmp_path / "out", tmp_path / "review"
    assert cli.main(["run", str(manifest), "-o", str(out), "--review-dir", str(review), "--secret-file", key,
                     "--detect", "off", "--no-report", "--no-progress"]) == 0
    files = list(out.rglob("*.dcm"))
    assert {p.parent.name for p in files} == {"R-0001", "R-0002"}
    assert len({str(pydicom.dcmread(f).PatientID) for f in files}) == 1
    assert len({str(pydicom.dcmread(f).StudyDate) for f in files}) == 1  # one offset for the subject
    rows = read_map(str(review), MapKind.PATIENT)
    assert len(rows) == 2 and len({new for _, new in rows}) == 1
    assert read_map(str(review), MapKind.UID)


def test_second_slide_of_a_patient_without_subject_is_told_to_use_one(tmp_path, series, capsys):
    """Two slides of one patient, each with its own research ID and no subject: the second would give the
    patient a second new PatientID. Refused with a message that says what to do; with one subject both pass."""
    key = _key(tmp_path, SECRET_A)
    review = tmp_path / "review"
    second = other_slide(series, tmp_path / "second", str(pydicom.dcmread(next(series.glob("*.dcm"))).PatientID))
    assert _deid(series, tmp_path / "o1", review, key, "--new-id", "R-1") == 0
    capsys.readouterr()
    assert _deid(second, tmp_path / "o2", review, key, "--new-id", "R-2") == 2
    err = capsys.readouterr().err
    assert "same subject" in err and len(err.strip().splitlines()) == 1
    review2 = tmp_path / "review2"
    assert _deid(series, tmp_path / "o3", review2, key, "--new-id", "R-1", "--subject", "S-7") == 0
    assert _deid(second, tmp_path / "o4", review2, key, "--new-id", "R-2", "--subject", "S-7") == 0
    assert len(read_map(str(review2), MapKind.PATIENT)) == 1
