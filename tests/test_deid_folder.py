"""Everyday use (issue 16): ``-o OUTDIR`` is created when missing, and ``wsideid deid FOLDER``
on a folder of slides runs them as a batch named by the keyed pseudonyms, with the mapping
in the review folder; a folder that is one DICOM series keeps its meaning (one slide)."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from test_batch_e2e import CLEAN_SVS, CORRUPT, NDPI, TIFF, make_batch_sources, outdir_text

CLI = [sys.executable, "-m", "wsideid.cli"]


def run(*args, secret: Path | None = None) -> subprocess.CompletedProcess:
    argv = CLI + [str(a) for a in args] + (["--secret-file", str(secret)] if secret else [])
    return subprocess.run(argv, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "WSIDEID_SECRET": ""})


def one_line_error(p: subprocess.CompletedProcess) -> str:
    assert p.returncode == 2, (p.returncode, p.stdout, p.stderr)
    assert "Traceback" not in p.stderr and len(p.stderr.strip().splitlines()) == 1, p.stderr
    return p.stderr


@pytest.fixture(scope="module")
def lab(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("folder")
    make_batch_sources(d)
    os.unlink(d / "slides" / "S24-99999_ROE_RICHARD.svs")  # a byte copy of CLEAN_SVS: same content
    (d / "slides" / "notes.txt").write_text("scanned by DOE")
    (d / "slides" / ".DS_Store").write_bytes(b"\0" * 16)
    key = d / "secret.key"
    key.write_text("0123456789abcdef0123456789abcdef")
    return {"root": d, "slides": d / "slides", "key": key}


def test_folder_of_slides_runs_as_a_batch_with_pseudonyms(lab, tmp_path):
    out = tmp_path / "new" / "out"  # neither exists: created
    p = run("deid", lab["slides"], "-o", out, "--no-ocr", "--json", secret=lab["key"])
    assert p.returncode == 2, p.stderr  # the corrupt slide failed; the others are done
    data = json.loads(p.stdout)
    assert data["counts"] == {"published": 3, "failed": 1}, data
    assert data["ignored"] == ["notes.txt"]
    review = Path(data["review_dir"])
    assert review == tmp_path / "new" / "out-review" and Path(data["qc_report"]).exists()
    with open(review / "mapping.csv", newline="") as fh:
        mapping = {r["source"]: r for r in csv.DictReader(fh)}
    assert sorted(mapping) == sorted([CLEAN_SVS, CORRUPT, NDPI, TIFF])
    assert all(r["named_by"] == "pseudonym" and r["new_id"].startswith("WSI-") for r in mapping.values())
    names = sorted(n for n in os.listdir(out) if not n.endswith(".audit.json"))
    assert names == sorted(["batch-summary.csv", "batch.json"] + [
        mapping[s]["new_id"] + ext for s, ext in ((CLEAN_SVS, ".svs"), (NDPI, ".ndpi"), (TIFF, ".tiff"))])
    text = outdir_text(out)
    for src in (CLEAN_SVS, CORRUPT, NDPI, TIFF):
        assert Path(src).stem.lower() not in text and "s24-" not in text
    # the naming module's pseudonym: a single `deid FILE` with the same secret gives the same name
    single = tmp_path / "single"
    q = run("deid", lab["slides"] / CLEAN_SVS, "-o", single, "--detect", "off", "--json", secret=lab["key"])
    assert q.returncode == 0, q.stderr
    assert os.path.basename(json.loads(q.stdout)["output"]) == mapping[CLEAN_SVS]["new_id"] + ".svs"
    # the same command again finds the finished slides (resume), and the page accounts for every file
    again = json.loads(run("deid", lab["slides"], "-o", out, "--no-ocr", "--json", secret=lab["key"]).stdout)
    assert again["skipped"] == 3 and again["ran"] == 1
    page = Path(again["qc_report"]).read_text()
    assert page.count('<section class="slide"') == 4 and CORRUPT in page


def test_folder_refuses_options_a_row_cannot_carry(lab, tmp_path):
    err = one_line_error(run("deid", lab["slides"], "-o", tmp_path / "o", "--new-id", "R-1"))
    assert "--new-id" in err and "manifest" in err
    assert not (tmp_path / "o").exists()
    err = one_line_error(run("deid", lab["slides"], "-o", tmp_path / "o", "--dates", "shift", secret=lab["key"]))
    assert "--subject" in err
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.txt").write_text("x")
    assert "no slides" in one_line_error(run("deid", empty, "-o", tmp_path / "o2"))
    assert "input folder" in one_line_error(run("deid", lab["slides"], "-o", lab["slides"]))


def test_outdir_is_created_and_mkdir_still_accepted(lab, tmp_path):
    src = lab["slides"] / TIFF
    for out, extra in ((tmp_path / "a" / "b", []), (tmp_path / "c", ["--mkdir"])):
        p = run("deid", src, "-o", out, "--detect", "off", "--json", *extra, secret=lab["key"])
        assert p.returncode == 0, p.stderr
        assert Path(json.loads(p.stdout)["output"]).parent == out
    # a missing input leaves no folder behind; an OUTDIR that is a file is one line
    one_line_error(run("deid", lab["slides"] / "nope.svs", "-o", tmp_path / "never"))
    assert not (tmp_path / "never").exists()
    (tmp_path / "afile").write_text("x")
    assert "output folder" in one_line_error(run("deid", src, "-o", tmp_path / "afile" / "sub"))


def test_weak_secret_on_a_folder_leaves_no_folders_behind(lab, tmp_path):
    """A refused secret is one line, before OUTDIR or the review folder is made (it used to leave
    both, with the generated manifest of source names)."""
    weak = tmp_path / "weak.key"
    weak.write_text("short")
    assert "secret" in one_line_error(run("deid", lab["slides"], "-o", tmp_path / "o" / "x", secret=weak))
    assert not (tmp_path / "o").exists()


def test_dicom_series_folder_keeps_its_meaning_and_a_mixed_folder_is_refused(lab, tmp_path):
    pytest.importorskip("wsidicomizer")
    from wsideid.synth import make_dicom
    series = tmp_path / "series"
    series.mkdir()
    make_dicom(str(series))
    p = run("deid", series, "-o", tmp_path / "out", "--detect", "off", "--json", secret=lab["key"])
    assert p.returncode == 0, p.stderr
    data = json.loads(p.stdout)
    assert data["status"] == "published" and data["format"] == "dicom"  # one slide, not a batch
    shutil.copyfile(lab["slides"] / TIFF, series / "extra.tiff")
    err = one_line_error(run("deid", series, "-o", tmp_path / "out2", secret=lab["key"]))
    assert "DICOM" in err and "folders of their own" in err
    # a folder of slides may hold DICOM series as subfolders: one row each
    os.unlink(series / "extra.tiff")
    mixed = tmp_path / "lab"
    mixed.mkdir()
    shutil.copytree(series, mixed / "case-1")
    shutil.copyfile(lab["slides"] / TIFF, mixed / "b.tiff")
    p = run("deid", mixed, "-o", tmp_path / "out3", "--no-ocr", "--json", secret=lab["key"])
    assert p.returncode == 0, p.stderr
    data = json.loads(p.stdout)
    assert data["counts"] == {"published": 2}
    # the QC page shows the DICOM slide as it leaves: previews read from the published instances
    review = Path(data["review_dir"])
    with open(review / "mapping.csv", newline="") as fh:
        nid = next(r["new_id"] for r in csv.DictReader(fh) if r["source"] == "case-1")
    rec = json.loads((review / "slides" / f"{nid}.json").read_text())
    kept = {im["role"] for im in rec["images"] if im["kind"] == "kept"}
    removed = {im["role"] for im in rec["images"] if im["kind"] == "removed"}
    assert {"thumbnail", "level"} <= kept and {"label", "overview"} <= removed, rec["images"]
    assert all((review / "images" / im["file"]).stat().st_size > 0 for im in rec["images"])


def test_a_mirax_slide_in_a_folder_is_one_row_with_its_data_folder(lab, tmp_path):
    from wsideid.mrxs.synth import make_mrxs
    scans = tmp_path / "scans"
    scans.mkdir()
    make_mrxs(str(scans / "S24-1_DOE.mrxs"))  # the index file and its data folder S24-1_DOE/
    shutil.copyfile(lab["slides"] / TIFF, scans / "b.tiff")
    p = run("deid", scans, "-o", tmp_path / "out", "--detect", "off", "--json", secret=lab["key"])
    assert p.returncode == 0, p.stderr
    data = json.loads(p.stdout)
    assert data["counts"] == {"published": 2} and data["ignored"] == []  # the data folder is not "ignored"
