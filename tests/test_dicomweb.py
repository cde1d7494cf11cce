"""Issue 15 item 4 against a real Orthanc server with its DICOMweb plugin (and WSI plugin when present).

Load a series into a source Orthanc, ``deid --from-dicomweb``, push to a
second Orthanc, read back: same instance count, pixels identical, every
planted value gone, UIDs as in uid-map.csv; the WSI plugin sees a pyramid.
"""

from __future__ import annotations

import base64
import json
import os
import urllib.error
from pathlib import Path

import pydicom
import pytest
from pydicom.encaps import generate_frames

import orthanc
from wsideid import cli, dicomweb
from wsideid.pseudomaps import MapKind, read_map
from realdata import TESTDATA

REAL_STUDIES = {  # name -> files of one study in ../shared/testdata/dicom
    "boxes": ["openslide-python_boxes_0", "openslide-python_boxes_1"],
    "camelyon": ["mi_multi_frame_jpeg_camelyon_challenge_image"],
    "wsi2dcm-jpeg": ["wsi2dcm_jpeg"],
    "wsi2dcm-jpeg2000": ["wsi2dcm_jpeg2000"],
    "highdicom": ["highdicom_sm_image"],
    "highdicom-jpegls": ["highdicom_sm_image_jpegls"],
}


@pytest.fixture(autouse=True)
def _quick_retries(monkeypatch):
    monkeypatch.setattr(dicomweb, "RETRIES", 1)
    monkeypatch.setattr(dicomweb, "BACKOFF_S", 0.05)


@pytest.fixture
def servers(tmp_path):
    src = orthanc.start(tmp_path / "orthanc-src")
    try:
        dst = orthanc.start(tmp_path / "orthanc-dst")
    except BaseException:
        src.stop()
        raise
    yield src, dst
    dst.stop()
    src.stop()


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    from wsideid.synth import make_dicom
    try:
        return make_dicom(str(tmp_path_factory.mktemp("synth-dicom") / "series"))
    except ImportError:
        pytest.skip("wsidicomizer (the convert extra) is not installed")


@pytest.fixture
def key(tmp_path) -> str:
    p = tmp_path / "key.txt"
    p.write_text(base64.b64encode(b"web-test-secret-0123456789abcdef").decode())
    return str(p)


def _wsideid(*args: str) -> int:
    return cli.main([str(a) for a in args])


def _load(server, files) -> str:
    """Upload the files; returns their Study Instance UID."""
    for f in files:
        server.upload(f)
    return str(pydicom.dcmread(files[0], stop_before_pixels=True).StudyInstanceUID)


def _frames(ds) -> list[bytes]:
    if ds.file_meta.TransferSyntaxUID.is_compressed:
        return list(generate_frames(ds.PixelData, number_of_frames=int(ds.get("NumberOfFrames", 1) or 1)))
    return [bytes(ds.PixelData)]


def _pixels(ds) -> list:
    """Decoded frames (imagecodecs) of compressed pixel data, the bytes of native pixel data.

    Decoded, because the frames rule removes J2K comment segments (a lossless
    change of the codestream, wsideid.dicom.frames): the pixels stay, the bytes do not.
    """
    import imagecodecs
    if ds.file_meta.TransferSyntaxUID.is_compressed:
        return [imagecodecs.imread(f).tobytes() for f in _frames(ds)]
    return [bytes(ds.PixelData)]


def _dataset_text(ds) -> str:
    """Every value of the dataset, nested ones too, as one searchable text (pixel data left out)."""
    out = []

    def walk(d):
        for elem in d:
            if elem.tag == 0x7FE00010:
                continue
            if elem.VR == "SQ":
                for item in elem.value:
                    walk(item)
            else:
                v = elem.value
                out.append(v.decode("latin-1") if isinstance(v, bytes) else str(v))
    walk(ds.file_meta)
    walk(ds)
    return "\n".join(out)


def _read_back(server) -> list:
    c = dicomweb.client(server.dicomweb)
    out = []
    for study in c.search_for_studies():
        uid = study["0020000D"]["Value"][0]
        out += list(c.retrieve_study(uid, media_types=dicomweb.ANY_SYNTAX))
    return out


def _round_trip(servers, tmp_path, key, files, extra=()):
    """Source Orthanc -> deid --from-dicomweb --push -> destination Orthanc; returns what came back."""
    src, dst = servers
    study = _load(src, files)
    out, review = tmp_path / "out", tmp_path / "review"
    rc = _wsideid("deid", "--from-dicomweb", src.dicomweb, "--study", study, "-o", out, "--mkdir",
                  "--review-dir", review, "--secret-file", key, "--detect", "off", "--push", dst.dicomweb, *extra)
    assert rc == 0
    written = sorted(p for p in out.rglob("*.dcm"))
    back = _read_back(dst)
    return study, out, review, written, back


def _check(files, review, written, back, planted=()):
    """The issue's read-back checks: count, pixels, planted values, UIDs as in uid-map.csv.

    What came back holds the verified output's frames byte for byte, and the source's pixels.
    """
    sources = {str(pydicom.dcmread(f).SOPInstanceUID): pydicom.dcmread(f) for f in files}
    verified = {str(pydicom.dcmread(f).SOPInstanceUID): pydicom.dcmread(f) for f in written}
    uid_map = dict(read_map(str(review), MapKind.UID))
    assert len(back) == len(written) > 0
    old_of = {new: old for old, new in uid_map.items()}
    for ds in back:
        old_sop = old_of[str(ds.SOPInstanceUID)]  # KeyError: a UID not in uid-map.csv
        orig = sources[old_sop]
        assert _frames(ds) == _frames(verified[str(ds.SOPInstanceUID)]), "frames changed on the way"
        assert _pixels(ds) == _pixels(orig), "pixels differ from the source's"
        for kw in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "FrameOfReferenceUID"):
            if kw in orig:
                assert uid_map[str(orig.get(kw))] == str(ds.get(kw)), kw
        text = _dataset_text(ds).casefold()
        for value in planted:
            assert value.casefold() not in text, value
        for kw in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"):
            assert str(orig.get(kw)) not in text
    return uid_map


def test_synthetic_series_round_trip(servers, tmp_path, key, synthetic):
    files = sorted(Path(synthetic.path).glob("*.dcm"))
    study, out, review, written, back = _round_trip(servers, tmp_path, key, files)
    planted = [p for p in synthetic.planted if len(p) >= 5] + ["DOE^JANE", "St Elsewhere"]
    _check(files, review, written, back, planted)
    patients = read_map(str(review), MapKind.PATIENT)
    assert len(patients) == 1 and all(str(ds.PatientID) == patients[0][1] for ds in back)
    # the name map records the study URL, not the temporary folder
    names = (review / "name-map.csv").read_text()
    assert f"/studies/{study}" in names and "wsideid-dicomweb-" not in names
    # the push record; a second push sends nothing again
    pushed = (review / dicomweb.PUSH_RECORD).read_text().splitlines()
    assert len(pushed) == 1 + len(written)
    assert _wsideid("push", out, "--dicomweb", servers[1].dicomweb, "--review-dir", review) == 0
    assert len((review / dicomweb.PUSH_RECORD).read_text().splitlines()) == len(pushed)
    assert len(_read_back(servers[1])) == len(written)
    # orthanc-wsi, an independent reader, sees a pyramid in the pushed series
    dst = servers[1]
    if not dst.wsi:
        pytest.skip("orthanc-wsi not installed: pyramid check not run")
    def pyramid(series: str):
        try:
            return dst.get(f"/wsi/pyramids/{series}")
        except urllib.error.HTTPError:  # a series that is no pyramid (a label of its own, say)
            return None
    pyramids = [pyramid(s) for s in dst.get("/series")]
    levels = [p for p in pyramids if isinstance(p, dict) and p.get("Resolutions")]
    assert levels, pyramids
    assert all(len(p["Resolutions"]) >= 1 and p["TotalWidth"] > 0 for p in levels)


@pytest.mark.realdata
@pytest.mark.parametrize("name", sorted(REAL_STUDIES))
def test_real_dicom_round_trip(servers, tmp_path, key, name):
    folder = TESTDATA / "dicom"
    files = [folder / f"{n}.dcm" for n in REAL_STUDIES[name]]
    if not all(f.is_file() for f in files):
        pytest.skip(f"{name}: real DICOM test data not available")
    _, _, review, written, back = _round_trip(servers, tmp_path, key, files)
    originals = [pydicom.dcmread(f) for f in files]
    planted = {str(v) for ds in originals for kw in ("PatientName", "PatientID", "AccessionNumber")
               if len(str(v := ds.get(kw, "") or "")) >= 4}
    _check(files, review, written, back, sorted(planted))


def test_unverified_output_is_never_sent(servers, tmp_path, key, synthetic):
    src, dst = servers
    files = sorted(Path(synthetic.path).glob("*.dcm"))
    study = _load(src, files)
    out, review = tmp_path / "out", tmp_path / "review"
    assert _wsideid("deid", "--from-dicomweb", src.dicomweb, "--study", study, "-o", out, "--mkdir",
                    "--review-dir", review, "--secret-file", key, "--detect", "off") == 0
    (name,) = [p for p in out.iterdir() if p.is_dir()]
    # a file changed after verification: not the verified output, nothing of that slide is sent
    victim = sorted(name.glob("*.dcm"))[0]
    ds = pydicom.dcmread(victim)
    ds.PatientName = "DOE^JANE"
    ds.save_as(victim)
    assert _wsideid("push", out, "--dicomweb", dst.dicomweb, "--review-dir", review) == 2
    # a folder nothing verified (no audit): never sent either
    (out / "stray").mkdir()
    (out / "stray" / "x.dcm").write_bytes(files[0].read_bytes())
    assert _wsideid("push", out, "--dicomweb", dst.dicomweb, "--review-dir", review) == 2
    # an audit that says flagged: not sent
    audit = json.loads((out / f"{name.name}.audit.json").read_text())
    audit["status"] = "flagged"
    (out / f"{name.name}.audit.json").write_text(json.dumps(audit))
    assert _wsideid("push", out, "--dicomweb", dst.dicomweb, "--review-dir", review) == 2
    assert dst.get("/instances") == []
    assert not (review / dicomweb.PUSH_RECORD).exists()


def test_errors_are_one_line(servers, tmp_path, key, capsys):
    src, dst = servers
    dead = f"http://127.0.0.1:{orthanc._free_port()}/dicom-web"
    out = tmp_path / "out"
    out.mkdir()
    cases = [
        ("deid", "--from-dicomweb", dead, "--study", "1.2.3.4", "-o", out),  # server down
        ("deid", "--from-dicomweb", src.dicomweb, "--study", "1.2.3.4", "-o", out),  # no such study
        ("deid", "--from-dicomweb", src.url + "/no-such-root", "--study", "1.2.3.4", "-o", out),  # 404
        ("deid", "--from-dicomweb", "ftp://example", "--study", "1.2.3.4", "-o", out),
        ("deid", "--from-dicomweb", src.dicomweb, "-o", out),  # no --study
        ("deid", "--from-dicomweb", src.dicomweb, "--study", "not a uid", "-o", out),
        ("push", out, "--dicomweb", dead),
    ]
    for args in cases:
        capsys.readouterr()
        rc = _wsideid(*args, "--secret-file", key) if args[0] == "deid" else _wsideid(*args)
        err = capsys.readouterr().err.strip()
        assert rc == 2, (args, err)
        assert err.startswith("wsideid: error: ") and "\n" not in err and "Traceback" not in err, err
    assert list(out.iterdir()) == []


def test_push_to_a_dead_server_after_deid_fails_cleanly(servers, tmp_path, key, synthetic, capsys):
    """--push to a server that is down: the slide is published and verified, the push is one error line."""
    src, _ = servers
    files = sorted(Path(synthetic.path).glob("*.dcm"))
    study = _load(src, files)
    dead = f"http://127.0.0.1:{orthanc._free_port()}/dicom-web"
    out, review = tmp_path / "out", tmp_path / "review"
    rc = _wsideid("deid", "--from-dicomweb", src.dicomweb, "--study", study, "-o", out, "--mkdir",
                  "--review-dir", review, "--secret-file", key, "--detect", "off", "--push", dead)
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and err[-1].startswith("wsideid: error: DICOMweb "), err
    assert not (review / dicomweb.PUSH_RECORD).exists()
    assert os.path.isdir(out) and any(p.suffix == ".json" for p in out.iterdir())


def test_run_push_sends_every_verified_output(servers, tmp_path, key, synthetic):
    """`run --push`: both slides of a manifest reach the server, and a rerun sends nothing twice."""
    from test_pseudomaps import batch_manifest
    _, dst = servers
    manifest = batch_manifest(tmp_path, Path(synthetic.path), "SUBJ-5")
    out, review = tmp_path / "out", tmp_path / "review"
    args = ["run", manifest, "-o", out, "--review-dir", review, "--secret-file", key, "--detect", "off",
            "--no-report", "--no-progress", "--push", dst.dicomweb]
    assert _wsideid(*args) == 0
    written = list(out.rglob("*.dcm"))
    back = _read_back(dst)
    assert len(back) == len(written) > 0
    assert {str(ds.SOPInstanceUID) for ds in back} == {str(pydicom.dcmread(f).SOPInstanceUID) for f in written}
    assert len({str(ds.PatientID) for ds in back}) == 1
    record = (review / dicomweb.PUSH_RECORD).read_text()
    assert _wsideid(*args) == 0
    assert (review / dicomweb.PUSH_RECORD).read_text() == record


def test_fetch_keeps_the_servers_bytes(servers, tmp_path, synthetic):
    """WADO-RS is streamed to disk as sent: every fetched file is byte for byte an uploaded one."""
    src, _ = servers
    files = sorted(Path(synthetic.path).glob("*.dcm"))
    study = _load(src, files)
    folder = tmp_path / "fetched"
    folder.mkdir()
    paths = dicomweb.fetch_study(src.dicomweb, study, str(folder))
    assert sorted(Path(p).read_bytes() for p in paths) == sorted(f.read_bytes() for f in files)


def test_a_study_of_several_slides_runs_as_a_batch(servers, tmp_path, key, synthetic):
    """A study is a case: with no --series, each of its slides is de-identified (generated
    research IDs), every verified output is pushed, and the lab's mapping names each slide by its
    study and series on the server, never by the temporary folder it was fetched into."""
    from pydicom.uid import generate_uid
    from wsideid.synth import make_dicom
    src, dst = servers
    first = sorted(Path(synthetic.path).glob("*.dcm"))
    second_dir = tmp_path / "second"
    make_dicom(str(second_dir))
    study = str(pydicom.dcmread(first[0], stop_before_pixels=True).StudyInstanceUID)
    for f in second_dir.glob("*.dcm"):  # the second slide joins the first one's study
        ds = pydicom.dcmread(f)
        ds.StudyInstanceUID = study
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.save_as(f)
    second = sorted(second_dir.glob("*.dcm"))
    assert _load(src, first + second) == study
    volume_series = {str(ds.SeriesInstanceUID) for ds in map(pydicom.dcmread, first + second)
                     if "VOLUME" in ds.ImageType}
    out, review = tmp_path / "out", tmp_path / "review"
    rc = _wsideid("deid", "--from-dicomweb", src.dicomweb, "--study", study, "-o", out, "--review-dir", review,
                  "--secret-file", key, "--detect", "off", "--push", dst.dicomweb)
    assert rc == 0
    outputs = sorted(p for p in out.iterdir() if p.is_dir())
    assert len(outputs) == 2
    mapped = (review / "name-map.csv").read_text()
    assert "wsideid-dicomweb-" not in mapped
    assert {f"/studies/{study}/series/{s}" in mapped for s in volume_series} == {True}
    labs = "".join(p.read_text() for p in review.rglob("*.lab.json"))
    assert "wsideid-dicomweb-" not in labs and {f"/series/{s}" in labs for s in volume_series} == {True}
    page = (review / "qc-report.html").read_text()
    assert {f"/studies/{study}/series/{s}" in page for s in volume_series} == {True}
    written = list(out.rglob("*.dcm"))
    assert {str(ds.SOPInstanceUID) for ds in _read_back(dst)} == {str(pydicom.dcmread(f).SOPInstanceUID)
                                                                  for f in written}
