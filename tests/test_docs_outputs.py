"""What the user guide and README say a run writes and exits with is what a real run does.

One batch on synthetic slides (made by wsideid.synth: an SVS whose kept macro shows the
accession barcode, a generic TIFF, a DICOM series) and single-slide `deid` runs, through the
command line as a user types it; the file tables of docs/user-guide.md ("Where things go") and
README's exit codes are read from the docs and compared with what happened."""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
GUIDE = (ROOT / "docs" / "user-guide.md").read_text()
README = (ROOT / "README.md").read_text()


def wsideid(*args, cwd=None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "WSIDEID_SECRET": "docs-test-secret-0123456789"}
    return subprocess.run([sys.executable, "-m", "wsideid", *map(str, args)], capture_output=True, text=True,
                          timeout=600, cwd=cwd, env=env)


def _table(heading_text: str) -> list[list[str]]:
    """The first table after the paragraph holding ``heading_text``: its rows' cells."""
    part = GUIDE.split(heading_text, 1)[1]
    rows = re.findall(r"^\|(.+)\|$", part.split("\n\n|", 1)[1].split("\n\n", 1)[0].join(["|", ""]), re.M)
    return [[c.strip() for c in r.split("|")] for r in rows if not set(r) <= set("-| ")][1:]


def _patterns(cell: str) -> list[str]:
    """`RID.ext.audit.json`, `.ndpi`, `RID/`, `slides/RID.json` as regexes for names."""
    out = []
    for tok in re.findall(r"`([^`]+)`", cell):
        if tok.startswith("."):
            tok = "RID" + tok
        rx = re.escape(tok).replace("RID", r"R-\d").replace("ext", r"(svs|ndpi|tiff|dcm)")
        out.append(rx)
    return out


@pytest.fixture(scope="module")
def batch(tmp_path_factory, synth_slides):
    from wsideid.synth import make_dicom
    d = tmp_path_factory.mktemp("guide")
    make_dicom(str(d / "series"))
    (d / "manifest.csv").write_text("source,new_id,keep_macro\na.svs,R-1,yes\nb.tiff,R-2,\nseries,R-3,\n")
    os.symlink(synth_slides["aperio"], d / "a.svs")
    os.symlink(synth_slides["generic-tiff"], d / "b.tiff")
    proc = wsideid("run", d / "manifest.csv", "-o", d / "OUT", "--detect", "residual", "--no-ocr")
    return d, proc


def test_batch_exit_code_and_outdir_table(batch):
    """`1` some slides wait for review; OUTDIR holds only what the table lists, and all of it."""
    d, proc = batch
    assert proc.returncode == 1, proc.stdout + proc.stderr  # R-1's kept macro shows the barcode
    rows = _table("OUTDIR is the folder you hand over")
    patterns = {r[0]: _patterns(r[0]) for r in rows}
    names = sorted(os.listdir(d / "OUT"))
    assert names == ["R-2.tiff", "R-2.tiff.audit.json", "R-3", "R-3.audit.json", "batch-summary.csv", "batch.json"]
    unlisted = [n for n in names if not any(re.fullmatch(p.rstrip("/"), n) for ps in patterns.values() for p in ps)]
    assert not unlisted, unlisted
    unused = [c for c, ps in patterns.items() if not any(re.fullmatch(p.rstrip("/"), n) for p in ps for n in names)]
    assert not unused, unused
    assert set(json.loads((d / "OUT" / "batch.json").read_text())) == {"tool", "batch_id"}  # "a random batch id and the tool's name"
    audit = json.loads((d / "OUT" / "R-2.tiff.audit.json").read_text())
    assert audit["hash_algorithm"] == "blake3" and audit["secret"] == "environment"
    assert [set(c) for c in audit["verification"]] == [{"check", "status", "ok", "detail", "seconds"}] * len(audit["verification"])


def test_review_folder_table(batch):
    """The review folder holds the table's entries: each one the batch makes is there, nothing else
    is; the conditional ones (rejected/, folder-manifest.csv, pushed.csv) appear when their step runs."""
    d, _ = batch
    review = d / "OUT-review"
    rows = _table("holds everything identifying and must stay in the lab")
    tops = {re.findall(r"`([^`/]+/?)", r[0])[0].rstrip("/"): r for r in rows}
    tops.update({n: r for r in rows for n in re.findall(r"`([\w-]+\.csv)`", r[0])})
    conditional = {"rejected", "folder-manifest.csv", "pushed.csv"}
    present = set(os.listdir(review))
    assert present <= set(tops), present - set(tops)
    assert set(tops) - conditional <= present, set(tops) - conditional - present
    assert sorted(os.listdir(review / "flagged")) == ["R-1.svs", "R-1.svs.audit.json"]
    for folder in ("slides", "records"):
        pats = [p.split("/", 1)[1] for p in _patterns(tops[folder][0]) if "/" in p]
        assert pats and all(any(re.fullmatch(p, n) for p in pats) for n in os.listdir(review / folder)), \
            (folder, os.listdir(review / folder))
    assert sorted(os.listdir(review / "records")) == ["R-1.svs.lab.json", "R-2.tiff.lab.json", "R-3.lab.json"]
    with open(review / "mapping.csv", newline="") as fh:
        header = next(csv.reader(fh))
    assert header == ["row", "new_id", "named_by", "source", "path", "series_uid", "subject", "identifiers"]
    run = json.loads((review / "batch-run.json").read_text())
    assert set(run) == {"batch_id", "outdir", "review_dir", "manifest"}
    # review apply: a rejected slide goes to rejected/ (the table's conditional row)
    (d / "qc.csv").write_text("new_id,decision,reviewer,note,decided_at\nR-1,reject,QA,,\n")
    proc = wsideid("review", "apply", d / "qc.csv", d / "OUT")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert sorted(os.listdir(review / "rejected")) == ["R-1.svs", "R-1.svs.audit.json"]


def test_readme_exit_codes(synth_slides, tmp_path):
    """README: `deid` exits 0 only when verified and published; 1 when the detectors found residual PHI
    on a kept image (the output waits in OUTDIR-review/flagged/); 2 on bad input; 3 when
    verification failed (nothing is written); a batch exits 2 when a row was refused, naming it;
    `wsideid --help` lists the exit codes."""
    text = " ".join(README.split())
    for claim in ("`deid` exits 0 only when the output was verified and published",
                  "1 when the detectors found residual PHI on a kept image (the output then waits in "
                  "`OUTDIR-review/flagged/` for a person); 2 on bad input; 3 when verification failed (nothing is written)",
                  "exits 2 when a row failed or was refused, naming each such row in its output",
                  "`wsideid --help` lists the exit codes"):
        assert claim in text, claim
    aperio = synth_slides["aperio"]
    p = wsideid("deid", aperio, "-o", tmp_path / "ok", "--new-id", "R-1", "--no-ocr")
    assert p.returncode == 0 and sorted(os.listdir(tmp_path / "ok")) == ["R-1.svs", "R-1.svs.audit.json"], p.stderr
    p = wsideid("deid", aperio, "-o", tmp_path / "fl", "--new-id", "R-1", "--keep-macro", "--no-ocr")
    assert p.returncode == 1 and os.listdir(tmp_path / "fl") == [], p.stdout + p.stderr
    assert (tmp_path / "fl-review" / "flagged" / "R-1.svs").is_file()
    junk = tmp_path / "notes.txt"
    junk.write_text("not a slide\n")
    p = wsideid("deid", junk, "-o", tmp_path / "bad")
    assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1, p.stderr
    import tifffile
    with tifffile.TiffFile(tmp_path / "ok" / "R-1.svs") as tf:  # a word the profile keeps: never in any output
        kept = max(re.findall(r"[A-Za-z]{5,}", tf.pages[0].description), key=len)
    p = wsideid("deid", aperio, "-o", tmp_path / "vf", "--new-id", "R-1", "--detect", "off", "--identifier", kept)
    assert p.returncode == 3 and not (tmp_path / "vf" / "R-1.svs").exists(), p.stdout + p.stderr
    (tmp_path / "m.csv").write_text(f"source,new_id\n{os.path.basename(aperio)},R-1\nmissing.svs,R-2\n")
    os.symlink(aperio, tmp_path / os.path.basename(aperio))
    p = wsideid("run", tmp_path / "m.csv", "-o", tmp_path / "b", "--detect", "off")
    assert p.returncode == 2 and "refused row 3, column source" in p.stdout, p.stdout + p.stderr
    helptext = wsideid("--help").stdout
    assert all(re.search(rf"^  {code} ", helptext, re.M) for code in (0, 1, 2, 3, 70, 130)), helptext


def test_dicom_md_output_names(batch, tmp_path):
    """docs/dicom.md: `deid SLIDE.dcm -o OUT --new-id RID-0001` -> OUT/RID-0001.dcm, without --new-id
    OUT/WSI-<16 hex>.dcm (never the input's name); a folder's non-DICOM files are not copied and
    `deid --json` counts them in its notes."""
    import shutil
    doc = (ROOT / "docs" / "dicom.md").read_text()
    assert "wsideid deid SLIDE.dcm -o OUT --new-id RID-0001    # -> OUT/RID-0001.dcm" in doc
    assert "`OUT/WSI-<16 hex>.dcm` / `OUT/WSI-<16 hex>/`" in doc and "`notes` of `deid --json` count them" in doc
    series = batch[0] / "series"
    one = tmp_path / "SLIDE.dcm"
    import pydicom
    volumes = [f for f in series.iterdir() if pydicom.dcmread(f, stop_before_pixels=True).ImageType[2] == "VOLUME"]
    shutil.copyfile(max(volumes, key=lambda f: f.stat().st_size), one)  # level 0: one file is one slide
    p = wsideid("deid", one, "-o", tmp_path / "a", "--new-id", "RID-0001", "--detect", "off")
    assert p.returncode == 0 and (tmp_path / "a" / "RID-0001.dcm").is_file(), p.stderr
    p = wsideid("deid", one, "-o", tmp_path / "b", "--detect", "off")
    assert p.returncode == 0 and [n for n in os.listdir(tmp_path / "b") if re.fullmatch(r"WSI-[0-9A-F]{16}\.dcm", n)], \
        os.listdir(tmp_path / "b")
    folder = tmp_path / "FOLDER"
    shutil.copytree(series, folder)
    (folder / "readme.txt").write_text("not DICOM\n")
    p = wsideid("deid", folder, "-o", tmp_path / "c", "--detect", "off", "--json")
    assert p.returncode == 0, p.stderr
    assert any("1 non-DICOM file(s) not copied" in n for n in json.loads(p.stdout)["notes"])
    (out,) = [n for n in os.listdir(tmp_path / "c") if not n.endswith(".json")]
    assert re.fullmatch(r"WSI-[0-9A-F]{16}", out) and "readme.txt" not in os.listdir(tmp_path / "c" / out)


def test_keep_name_examples(synth_slides, tmp_path):
    """User guide: with --keep-name `slide_0007.svs` passes, `DOE_JANE_MRN4455667.svs` is refused with
    one line (exit 2) and nothing is written; it cannot be combined with --new-id."""
    assert "`slide_0007.svs` passes" in GUIDE and "`DOE_JANE_MRN4455667.svs` does not" in GUIDE
    for name in ("slide_0007.svs", "DOE_JANE_MRN4455667.svs"):
        os.symlink(synth_slides["aperio"], tmp_path / name)
    p = wsideid("deid", tmp_path / "slide_0007.svs", "-o", tmp_path / "a", "--keep-name", "--detect", "off")
    assert p.returncode == 0 and (tmp_path / "a" / "slide_0007.svs").is_file(), p.stderr
    p = wsideid("deid", tmp_path / "DOE_JANE_MRN4455667.svs", "-o", tmp_path / "b", "--keep-name", "--detect", "off")
    assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert os.listdir(tmp_path / "b") == [] and not (tmp_path / "b-review").exists()
    p = wsideid("deid", tmp_path / "slide_0007.svs", "-o", tmp_path / "c", "--keep-name", "--new-id", "R-1")
    assert p.returncode == 2 and "--keep-name and --new-id" in p.stderr


def test_verify_of_a_mirax_output_says_it_is_not_available(tmp_path):
    """User guide / architecture: `wsideid verify` on a MIRAX output says checking it is not available
    and exits 3 (the published copy was verified when written)."""
    from wsideid.mrxs.synth import make_mrxs
    assert "not for MIRAX, where checking an existing output is not\navailable" in GUIDE
    src = tmp_path / "in" / "slide.mrxs"
    src.parent.mkdir()
    make_mrxs(str(src))
    p = wsideid("deid", src, "-o", tmp_path / "out", "--new-id", "R-1", "--detect", "off")
    assert p.returncode == 0, p.stderr
    p = wsideid("verify", src, tmp_path / "out" / "R-1.mrxs", "--new-id", "R-1")
    assert p.returncode == 3 and "not available" in p.stdout, p.stdout + p.stderr
