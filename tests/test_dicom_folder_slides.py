"""Several slides in one DICOM folder (issue 15 item 3): split by content, one output per slide.

A synthetic folder holds three slides made by wsidicomizer (two in one study, one of another
patient in another study) with planted PHI, a LABEL of no slide (an orphan) and a fourth
series whose VOLUME instances image different areas (mixed sizes). The real CLI runs it as
a batch: one pseudonym per slide, the mapping and the pseudonym maps in the review folder,
the orphan listed and never written, the mixed series failed while the others publish.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from realdata import real

pydicom = pytest.importorskip("pydicom")
CLI = [sys.executable, "-m", "wsideid.cli"]
OTHER_MRN = "77754321"
OTHER_PATIENT = "ROE^RICHARD"


def run(*args, key: Path | None = None) -> subprocess.CompletedProcess:
    argv = CLI + [str(a) for a in args] + (["--secret-file", str(key)] if key else [])
    return subprocess.run(argv, capture_output=True, text=True, timeout=900, env={**os.environ, "WSIDEID_SECRET": ""})


def one_line_error(p: subprocess.CompletedProcess) -> str:
    assert p.returncode == 2, (p.returncode, p.stdout, p.stderr)
    assert "Traceback" not in p.stderr and len(p.stderr.strip().splitlines()) == 1, p.stderr
    return p.stderr


def _heads(folder: Path) -> dict[Path, "pydicom.Dataset"]:
    return {f: pydicom.dcmread(f, stop_before_pixels=True) for f in sorted(folder.iterdir()) if f.suffix == ".dcm"}


def _edit(path: Path, **values) -> None:
    ds = pydicom.dcmread(path)
    for k, v in values.items():
        setattr(ds, k, v)
    ds.save_as(path)


def _role(ds) -> str:
    return str(ds.ImageType[2])


@pytest.fixture(scope="module")
def lab(tmp_path_factory) -> dict:
    """slides/ with slides A, B (study 1, patient MRN) and C (study 2, OTHER_MRN), an orphan LABEL
    and a series D whose VOLUME instances disagree on the imaged area."""
    pytest.importorskip("wsidicomizer")
    from pydicom.uid import generate_uid
    from wsideid.synth import PLANTED, make_dicom
    d = tmp_path_factory.mktemp("dcmfolder")
    folder = d / "slides"
    folder.mkdir()
    made = {}
    for name in "ABC":
        make_dicom(str(d / name))
        made[name] = _heads(d / name)
    study_a = str(next(iter(made["A"].values())).StudyInstanceUID)
    for f in made["B"]:  # B: a second slide of A's study (its own series, slide and Frame of Reference)
        _edit(f, StudyInstanceUID=study_a)
    for f in made["C"]:  # C: another patient, another study
        _edit(f, PatientID=OTHER_MRN, PatientName=OTHER_PATIENT)
    made = {name: _heads(d / name) for name in "ABC"}
    # D: A's VOLUME instances as a series of their own, one of them imaging twice the area
    vols = [f for f, h in made["A"].items() if _role(h) == "VOLUME"]
    series_d = generate_uid()
    for i, f in enumerate(vols):
        ds = pydicom.dcmread(f)
        ds.SeriesInstanceUID, ds.SOPInstanceUID = series_d, generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        if i == 0:
            ds.ImagedVolumeWidth = float(ds.ImagedVolumeWidth) * 2
        ds.save_as(folder / f"d{i}.dcm")
    # the orphan: A's LABEL moved into a study no slide of the folder is in
    label = next(f for f, h in made["A"].items() if _role(h) == "LABEL")
    ds = pydicom.dcmread(label)
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = generate_uid(), generate_uid(), generate_uid()
    ds.ContainerIdentifier = "S24-99999"
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.save_as(folder / "orphan.dcm")
    for name in "ABC":  # file names say nothing of the slide: the grouping is by content
        for i, f in enumerate(sorted(made[name])):
            shutil.copyfile(f, folder / f"{(i * 7 + ord(name)) % 97:02d}-{name.lower()}{i}.dcm")
    series = {name: str(next(h for h in made[name].values() if _role(h) == "VOLUME").SeriesInstanceUID)
              for name in "ABC"}
    key = d / "secret.key"
    key.write_text("0123456789abcdef0123456789abcdef")
    return {"root": d, "folder": folder, "series": {**series, "D": series_d}, "key": key, "planted": PLANTED,
            "sources": {name: made[name] for name in "ABC"}}


def _read_csv(path: Path) -> list[dict[str, str]]:
    from wsideid.cells import unescape_row
    with open(path, newline="") as fh:
        return [unescape_row(r) for r in csv.DictReader(fh)]


def test_deid_folder_gives_each_slide_its_own_output(lab, tmp_path):
    out = tmp_path / "out"
    p = run("deid", lab["folder"], "-o", out, "--no-ocr", "--json", key=lab["key"])
    assert p.returncode == 2, p.stderr  # series D failed; A, B, C published
    data = json.loads(p.stdout)
    assert data["counts"] == {"published": 3, "failed": 1}, data
    assert len(data["ignored"]) == 1 and "(label)" in data["ignored"][0]
    review = Path(data["review_dir"])
    mapping = {r["series_uid"]: r for r in _read_csv(review / "mapping.csv")}
    assert sorted(mapping) == sorted(lab["series"].values())
    assert all(r["named_by"] == "pseudonym" and r["new_id"].startswith("WSI-") for r in mapping.values())
    assert len({r["new_id"] for r in mapping.values()}) == 4
    full = {r["new_id"]: r for r in _read_csv(review / "batch-summary.csv")}
    failed = full[mapping[lab["series"]["D"]]["new_id"]]
    assert failed["status"] == "failed" and "mixed sizes" in failed["message"]
    assert not (out / failed["new_id"]).exists()
    uid_map = dict((r["id_old"], r["id_new"]) for r in _read_csv(review / "uid-map.csv"))
    back = {v: k for k, v in uid_map.items()}
    patients = _read_csv(review / "patient-map.csv")
    outputs = {}
    for name in "ABC":
        folder = out / mapping[lab["series"][name]]["new_id"]
        heads = _heads(folder)
        src = lab["sources"][name]
        assert sorted(_role(h) for h in heads.values()) == sorted(_role(h) for h in src.values() if _role(h) in
                                                                  ("VOLUME", "THUMBNAIL"))
        assert len({str(h.SeriesInstanceUID) for h in heads.values()}) == 1
        for h in heads.values():  # every new UID is in uid-map.csv and maps back to this slide's originals
            assert back[str(h.SeriesInstanceUID)] == lab["series"][name]
            assert back[str(h.StudyInstanceUID)] == str(next(iter(src.values())).StudyInstanceUID)
            assert back[str(h.SOPInstanceUID)] in {str(s.SOPInstanceUID) for s in src.values()}
        outputs[name] = heads
    study = {n: {str(h.StudyInstanceUID) for h in outputs[n].values()} for n in "ABC"}
    assert study["A"] == study["B"] and len(study["A"]) == 1 and study["C"].isdisjoint(study["A"])
    pid = {n: {str(h.PatientID) for h in outputs[n].values()} for n in "ABC"}
    assert pid["A"] == pid["B"] and pid["C"].isdisjoint(pid["A"])
    from wsideid.synth import MRN
    assert {(r["id_old"], r["id_new"]) for r in patients} == {(MRN, *pid["A"]), (OTHER_MRN, *pid["C"])}
    text = "\n".join(p.read_bytes().decode("latin-1") for p in out.rglob("*") if p.is_file()).lower()
    for v in lab["planted"] + [OTHER_MRN, OTHER_PATIENT, "S24-99999"]:
        assert v.lower() not in text, v
    from wsideid.dicom import dciodvfy
    if dciodvfy.available():  # no new IOD error, per slide and per instance kind
        for name in "ABC":
            src = {str(h.SOPInstanceUID): f for f, h in lab["sources"][name].items()}
            for f, h in outputs[name].items():
                assert dciodvfy.new_errors(str(src[back[str(h.SOPInstanceUID)]]), str(f)) == [], (name, _role(h))
    # the same command again: every slide is found done, the failed one tried again
    again = json.loads(run("deid", lab["folder"], "-o", out, "--no-ocr", "--json", key=lab["key"]).stdout)
    assert again["skipped"] == 3 and again["ran"] == 1


def test_one_new_id_for_several_slides_is_refused(lab, tmp_path):
    err = one_line_error(run("deid", lab["folder"], "-o", tmp_path / "o", "--new-id", "R-1", key=lab["key"]))
    assert "one --new-id cannot name several slides" in err and "holds 4" in err
    from wsideid.dicom.slides import series_token
    assert all(series_token(s) in err and s not in err for s in lab["series"].values())  # named by token only
    assert not (tmp_path / "o").exists()


def test_series_star_selects_no_slide(lab, tmp_path):
    """"*" was the internal every-instance selector of ``wsideid scan``; typed as --series it wrote
    every slide of the folder, orphans included, under one research ID."""
    out = tmp_path / "o"
    p = run("deid", lab["folder"], "-o", out, "--new-id", "R-1", "--series", "*", "--detect", "off", key=lab["key"])
    assert p.returncode != 0 and "no slide with the --series given" in one_line_error(p)
    assert not (out / "R-1").exists()


def test_series_picks_one_slide(lab, tmp_path):
    out = tmp_path / "out"
    p = run("deid", lab["folder"], "-o", out, "--new-id", "R-1", "--series", lab["series"]["C"], "--detect", "off",
            "--json", key=lab["key"])
    assert p.returncode == 0, p.stderr
    heads = _heads(out / "R-1")
    assert {str(h.PatientID) for h in heads.values()} != {OTHER_MRN} and len(heads) == 3
    notes = json.loads(p.stdout)["notes"]
    assert "the folder holds 3 other slide(s), each its own output" in notes
    assert any(n.startswith("not written, belongs to no slide: instance") and "(label)" in n for n in notes)
    assert "not written, belongs to no slide" in p.stderr  # the orphan is reported, never written
    v = run("verify", lab["folder"], out / "R-1", "--series", lab["series"]["C"], "--new-id", "R-1", "--json",
            key=lab["key"])
    assert v.returncode == 0 and json.loads(v.stdout)["ok"], v.stdout + v.stderr
    wrong = run("verify", lab["folder"], out / "R-1", "--series", lab["series"]["B"], "--new-id", "R-1", key=lab["key"])
    assert wrong.returncode != 0  # another slide's instances are not in this output
    err = one_line_error(run("inspect", lab["folder"], "--series", "1.2.3.4"))
    assert "no slide with the --series given" in err and "1.2.3.4" not in err
    err = one_line_error(run("inspect", lab["folder"], "--series", lab["series"]["D"]))
    assert "mixed sizes" in err and lab["series"]["D"] not in err
    err = one_line_error(run("inspect", lab["folder"]))
    assert "holds 4 slides" in err and "--series" in err
    # slides are named by token and file, never by a source UID (messages reach shared logs)
    assert not any(uid in err for uid in lab["series"].values()) and "series-" in err
    from wsideid.dicom.slides import series_token
    token = series_token(lab["series"]["C"])  # not the listing's first: that may be the mixed series D
    assert token in err
    assert run("inspect", lab["folder"], "--series", token).returncode == 0  # the token picks the slide


def test_manifest_rows_name_slides_by_series_uid(lab, tmp_path):
    man = lab["root"] / "manifest.csv"
    s = lab["series"]
    rows = [["source", "series_uid", "new_id", "subject"],
            ["slides", s["A"], "R-A", "P1"],
            ["slides", s["C"], "R-C", "'+P2"],  # an escaped cell: the apostrophe is the spreadsheet's, stripped
            ["slides", "", "R-X", ""],  # several slides, none named: refused with the list
            ["slides", "1.2.3.999", "R-Y", ""],  # a series the folder does not hold
            ["slides", s["A"], "R-Z", ""],  # the same slide twice
            ["slides", "not-a-uid", "R-W", ""]]
    with open(man, "w", newline="") as fh:
        csv.writer(fh).writerows(rows)
    out = tmp_path / "out"
    p = run("run", man, "-o", out, "--no-ocr", "--json", key=lab["key"])
    assert p.returncode == 2, p.stderr
    data = json.loads(p.stdout)
    assert data["counts"] == {"published": 2, "refused": 4}, data
    refused = "\n".join(data["refused_rows"])
    assert "row 4, column series_uid: the folder holds 4 slides" in refused and "series-" in refused
    assert not any(uid in refused for uid in s.values())  # no source UID in a refusal
    assert "row 5, column series_uid: no slide with this series" in refused
    assert "row 6, column source: same slide as row 2" in refused
    assert "row 7, column series_uid: is not a UID" in refused
    assert sorted(n for n in os.listdir(out) if not n.startswith("batch") and "audit" not in n) == ["R-A", "R-C"]
    mapping = {r["new_id"]: r for r in _read_csv(out.parent / "out-review" / "mapping.csv")}
    assert mapping["R-C"]["subject"] == "+P2" and mapping["R-C"]["series_uid"] == s["C"]
    assert {str(h.SeriesInstanceUID) for h in _heads(out / "R-A").values()} != \
        {str(h.SeriesInstanceUID) for h in _heads(out / "R-C").values()}
    # the OUTDIR summary names the refused rows' columns, never their values
    assert s["B"] not in (out / "batch-summary.csv").read_text()


def test_a_folder_of_slides_splits_a_dicom_subfolder(lab, tmp_path):
    scans = tmp_path / "scans"
    scans.mkdir()
    sub = scans / "case-1"
    sub.mkdir()
    for f in sorted(lab["folder"].iterdir()):
        if f.name[0].isdigit():  # slides A, B, C only
            os.symlink(f, sub / f.name)
    p = run("deid", scans, "-o", tmp_path / "out", "--detect", "off", "--json", key=lab["key"])
    assert p.returncode == 0, p.stderr
    data = json.loads(p.stdout)
    assert data["counts"] == {"published": 3} and data["ignored"] == []


def test_real_series_side_by_side(tmp_path):
    """Real DICOM test data linked into one folder: four slides (two highdicom series of one study and
    container, the boxes pyramid with its thumbnail, wsi2dcm) and a LABEL of another study."""
    names = ["highdicom_sm_image", "highdicom_sm_image_grayscale", "openslide-python_boxes_0",
             "openslide-python_boxes_1", "wsi2dcm_jpeg", "mi_test_wsi_label_barcodevalue"]
    folder = tmp_path / "real"
    folder.mkdir()
    for n in names:
        os.symlink(real(f"dicom/{n}.dcm"), folder / f"{n}.dcm")
    key = tmp_path / "k"
    key.write_text("0123456789abcdef0123456789abcdef")
    out = tmp_path / "out"
    p = run("deid", folder, "-o", out, "--detect", "off", "--json", key=key)
    data = json.loads(p.stdout)
    assert data["counts"] == {"published": 4}, (data, p.stderr)
    assert len(data["ignored"]) == 1 and "(label)" in data["ignored"][0]
    review = Path(data["review_dir"])
    mapping = {r["series_uid"]: r["new_id"] for r in _read_csv(review / "mapping.csv")}
    src = {n: pydicom.dcmread(real(f"dicom/{n}.dcm"), stop_before_pixels=True) for n in names}
    boxes = _heads(out / mapping[str(src["openslide-python_boxes_0"].SeriesInstanceUID)])
    assert sorted(_role(h) for h in boxes.values()) == ["THUMBNAIL", "VOLUME"]
    hd = [_heads(out / mapping[str(src[n].SeriesInstanceUID)]) for n in names[:2]]
    studies = [{str(h.StudyInstanceUID) for h in x.values()} for x in hd]
    assert studies[0] == studies[1]  # one study: one keyed study UID
    assert studies[0].isdisjoint({str(h.StudyInstanceUID) for h in boxes.values()})
    uid_map = dict((r["id_old"], r["id_new"]) for r in _read_csv(review / "uid-map.csv"))
    assert uid_map[str(src["highdicom_sm_image"].StudyInstanceUID)] in studies[0]
    text = "\n".join(p.read_bytes().decode("latin-1") for p in out.rglob("*") if p.is_file())
    for v in ("CBF-1234", "Test^Patient", "S19-1_A_1_1"):
        assert v not in text
    # `scan` reads every slide's label, image and thumbnail, the orphan LABEL's barcode too
    sc = run("scan", folder, "--no-ocr", "--json")
    assert sc.returncode == 1, sc.stderr
    found = [f["value"] for r in json.loads(sc.stdout)["results"] for im in r["images"] for f in im["findings"]]
    assert "Wikipedia" in found
    from wsideid.dicom import dciodvfy
    if dciodvfy.available():
        for n in names[:1] + names[2:3]:
            (f,) = [f for f, h in _heads(out / mapping[str(src[n].SeriesInstanceUID)]).items() if _role(h) == "VOLUME"]
            assert dciodvfy.new_errors(str(real(f"dicom/{n}.dcm")), str(f)) == []


def test_dates_shift_takes_each_slides_patient_as_its_subject(lab, tmp_path):
    """No --subject: each DICOM slide's PatientID is its subject, so A and B (one patient) get one
    date offset and C (another patient) its own."""
    out = tmp_path / "out"
    p = run("deid", lab["folder"], "-o", out, "--dates", "shift", "--detect", "off", "--json", key=lab["key"])
    data = json.loads(p.stdout)
    assert data["counts"] == {"published": 3, "failed": 1}, (data, p.stderr)
    review = Path(data["review_dir"])
    from wsideid.synth import MRN
    rows = {r["series_uid"]: r for r in _read_csv(review / "folder-manifest.csv")}
    assert rows[lab["series"]["A"]]["subject"] == rows[lab["series"]["B"]]["subject"] == MRN
    assert rows[lab["series"]["C"]]["subject"] == OTHER_MRN
    mapping = {r["series_uid"]: r["new_id"] for r in _read_csv(review / "mapping.csv")}
    dates = {n: {str(h.StudyDate) for h in _heads(out / mapping[lab["series"][n]]).values()} for n in "ABC"}
    assert dates["A"] == dates["B"] and len(dates["A"]) == 1 and dates["A"] != dates["C"]
    assert "20240314" not in dates["A"] | dates["C"]


def test_manifest_rows_read_the_folder_once(lab, monkeypatch, tmp_path):
    """Checking a manifest's rows and naming each row's slide read the folder's headers once (the
    one bounded cache, ``dicom.slides.cached_slide_set``), not once per row; a changed folder is
    read again; at most MAX_SLIDE_SETS folders are kept."""
    from wsideid.batch.dicom_rows import check_dicom_rows, slide_content
    from wsideid.batch.manifest import ManifestRow
    from wsideid.dicom import slides
    reads: list[str] = []
    real_header = slides._grouping_header
    monkeypatch.setattr(slides, "_grouping_header", lambda p, i: reads.append(p) or real_header(p, i))
    monkeypatch.setattr(slides, "_SLIDE_SETS", {})
    folder = tmp_path / "slides"
    shutil.copytree(lab["folder"], folder)
    files = len([f for f in folder.iterdir() if f.suffix == ".dcm"])
    rows = [ManifestRow(k + 2, str(folder), "", series=lab["series"][name]) for k, name in enumerate("ABC" * 3)]
    problems: list = []
    kept = check_dicom_rows(rows, problems)
    assert [r.row for r in kept] == [2, 3, 4] and len(problems) == 6  # rows 5.. name slides already named
    named = [slide_content(r) for r in kept]
    assert len(reads) == files  # every header once, for every row and every pseudonym
    assert all(named) and len({tuple(n) for n in named}) == 3
    assert named[0] == slides.slide_files(str(folder), lab["series"]["A"])
    (folder / "orphan.dcm").unlink()  # the folder changed: read again
    check_dicom_rows(rows[:1], [])
    assert len(reads) == 2 * files - 1
    for k in range(slides.MAX_SLIDE_SETS + 2):
        one = tmp_path / f"one{k}"
        one.mkdir()
        shutil.copyfile(folder / "d0.dcm", one / "d0.dcm")
        slides.cached_slide_set(str(one))
    assert len(slides._SLIDE_SETS) == slides.MAX_SLIDE_SETS


def test_opening_one_slide_reads_only_its_files_in_full(lab, monkeypatch, tmp_path):
    """A batch job opens one slide of the folder: only that slide's headers (and the orphans')
    are read in full (``source.read_instance``), the rest come from the cached grouping; a file rewritten
    between the grouping and the full read is refused, not grouped by stale facts."""
    from wsideid.dicom import slides, source
    from wsideid.drivers.dicom import DicomDriver
    folder = tmp_path / "slides"
    shutil.copytree(lab["folder"], folder)
    full: list[str] = []
    real_read = source.read_instance
    monkeypatch.setattr(source, "read_instance", lambda p, i: full.append(p) or real_read(p, i))
    monkeypatch.setattr(slides, "_SLIDE_SETS", {})
    opened = {n: DicomDriver().open(str(folder), lab["series"][n]) for n in "ABC"}
    for n in "ABC":
        assert {Path(i.path).name for i in opened[n].container.instances} == {
            f.name for f in folder.iterdir() if f.name.split("-")[-1].startswith(n.lower())}
    orphan = str(folder / "orphan.dcm")  # orphans are read in full by each job: a damaged file is one
    assert sorted(full) == sorted([str(f) for f in folder.iterdir() if "-" in f.name] + [orphan] * 3)
    assert opened["A"].container.other_slides == 3 and len(opened["A"].container.orphans) == 1
    # a grouping read before a file of slide A was rewritten to say it is of slide C's series
    stale = slides.slide_set(str(folder))
    victim = next(f for f in folder.iterdir() if f.name.endswith("-a0.dcm"))
    ds = pydicom.dcmread(victim)
    ds.SeriesInstanceUID = lab["series"]["C"]
    ds.save_as(victim)
    monkeypatch.setattr(slides, "cached_slide_set", lambda p: stale)
    with pytest.raises(Exception, match="changed while the folder was read"):
        DicomDriver().open(str(folder), lab["series"]["A"])
