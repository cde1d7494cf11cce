"""Output names carry no input text; the mapping and the input's hash stay in the review folder.

Issue 10, items 6 and 7: without --new-id the output kept the input's file
or folder name (and --to-dicom the source stem), --new-id '' fell back to
it silently, and the OUTDIR audit held the input's sha256 and unknown key
names verbatim. The inputs here are named as a lab names them.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from wsideid.keys import NO_SECRET_WARNING, Secret
from wsideid.naming import NamingError, check_keep_name, check_research_id, fingerprint, pseudonym

CLI = [sys.executable, "-m", "wsideid.cli"]
PHI_FILE = "DOE_JANE_MRN4455667.svs"
PHI_FOLDER = "S24-12345 Doe"
NEEDLES = ["DOE_JANE_MRN4455667", "MRN4455667", "4455667", "S24-12345 Doe", "S24-12345"]


def run(*args, secret: Path | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    argv = CLI + [str(a) for a in args] + (["--secret-file", str(secret)] if secret else [])
    return subprocess.run(argv, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "WSIDEID_SECRET": "", **(env or {})})


@pytest.fixture(scope="module")
def lab(tmp_path_factory, synth_dir) -> dict[str, Path]:
    """Slides under the names a lab gives them, and two secrets."""
    from wsideid.synth import make_dicom
    d = tmp_path_factory.mktemp("lab")
    src = d / "slides"
    src.mkdir()
    shutil.copyfile(synth_dir / "synthetic-aperio.svs", src / PHI_FILE)
    shutil.copyfile(synth_dir / "synthetic-generic.tiff", src / "slide_0007.tiff")
    shutil.copyfile(synth_dir / "synthetic-aperio.svs", src / "slide_0007.svs")
    make_dicom(str(src / PHI_FOLDER))
    (d / "key-a").write_text("a-first-secret-of-enough-length")
    (d / "key-b").write_text("another-secret-of-enough-length")
    return {"root": d, "file": src / PHI_FILE, "folder": src / PHI_FOLDER, "clean": src / "slide_0007.svs",
            "key_a": d / "key-a", "key_b": d / "key-b", "src": src}


def every_path(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*"))


def leaks(folder: Path, needles=NEEDLES) -> list[str]:
    """Needles found in any name or any file under ``folder``: ASCII (any case) and UTF-16 LE/BE."""
    found = []
    for p in [folder, *every_path(folder)]:
        blob = str(p.relative_to(folder.parent)).encode().lower() + b"\n"
        if p.is_file():
            blob += p.read_bytes().lower()
        for n in needles:
            low = n.lower()
            if any(form in blob for form in (low.encode(), low.encode("utf-16-le"), low.encode("utf-16-be"))):
                found.append(f"{n} in {p.name}")
    return found


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_no_input_text_in_any_output_name(lab, tmp_path):
    """File, DICOM folder and --to-dicom: pseudonyms, mapping in the review folder only."""
    out = tmp_path / "out"
    out.mkdir()
    results = []
    cases = [[lab["file"]], [lab["folder"]]]
    try:
        import wsidicomizer  # noqa: F401
        cases.append([lab["file"], "--to-dicom"])
    except ImportError:
        pass
    for k, args in enumerate(cases):
        p = run("deid", *args, "-o", out if k < 2 else tmp_path / "conv", "--mkdir", "--json", "--detect", "off",
                secret=lab["key_a"])
        assert p.returncode == 0, p.stderr
        results.append(json.loads(p.stdout))
    names = [os.path.basename(r["output"]) for r in results]
    assert names[0].startswith("WSI-") and names[0].endswith(".svs") and len(names[0]) == len("WSI-") + 16 + 4
    assert names[1].startswith("WSI-") and (out / names[1]).is_dir()
    assert all(r["named_by"] == "pseudonym" for r in results)
    assert leaks(out) == []
    if len(cases) == 3:
        conv = tmp_path / "conv"
        assert names[2] == names[0].removesuffix(".svs") and (conv / names[2]).is_dir()  # same slide, same name
        assert leaks(conv) == []
    review = tmp_path / "out-review"
    rows = list(csv.DictReader(open(review / "name-map.csv")))
    assert {(r["input"], r["output_name"]) for r in rows} == {(str(lab["file"]), names[0]), (str(lab["folder"]), names[1])}
    assert leaks(review, ["MRN4455667"]), "the mapping (lab side) names the input"


def test_pseudonym_stable_with_one_secret_and_differs_with_another(lab, tmp_path):
    names = []
    for k, key in enumerate(("key_a", "key_a", "key_b")):
        out = tmp_path / f"o{k}"
        out.mkdir()
        p = run("deid", lab["file"], "-o", out, "--json", "--detect", "off", secret=lab[key])
        assert p.returncode == 0, p.stderr
        names.append(os.path.basename(json.loads(p.stdout)["output"]))
    assert names[0] == names[1] != names[2]
    # The name follows the content, not the file name: a renamed copy keeps it.
    a = Secret(lab["key_a"].read_bytes().strip(), "file")
    renamed = tmp_path / "renamed.svs"
    shutil.copyfile(lab["file"], renamed)
    assert pseudonym(a, fingerprint([str(renamed)])) + ".svs" == names[0]


@pytest.mark.parametrize("bad", ["", " ", "  R-1", "R-1 ", "a/b", "..", "../x", "CON", "nul.txt", ".hidden", "a" * 65])
def test_bad_new_id_is_refused(lab, tmp_path, bad):
    out = tmp_path / "out"
    out.mkdir()
    p = run("deid", lab["clean"], "-o", out, "--new-id", bad, secret=lab["key_a"])
    assert p.returncode == 2, p.stdout
    assert p.stderr.count("\n") == 1 and p.stderr.startswith("wsideid: error: --new-id")
    assert os.listdir(out) == [] and not (tmp_path / "out-review").exists()


def test_bad_new_id_refused_by_the_api_too(lab, tmp_path):
    from wsideid.pipeline import DeidOptions, deidentify
    for bad in ("", " "):
        with pytest.raises(NamingError):
            deidentify(lab["clean"], tmp_path, DeidOptions(new_id=bad, detect="off"))
    assert os.listdir(tmp_path) == []


def test_keep_name_refuses_phi_and_keeps_a_plain_name(lab, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    p = run("deid", lab["file"], "-o", out, "--keep-name", secret=lab["key_a"])
    assert p.returncode == 2 and p.stderr.startswith("wsideid: error: --keep-name refused")
    assert p.stderr.count("\n") == 1 and os.listdir(out) == []
    p = run("deid", lab["clean"], "-o", out, "--keep-name", "--json", "--detect", "off", secret=lab["key_a"])
    assert p.returncode == 0, p.stderr
    assert (out / "slide_0007.svs").is_file() and json.loads(p.stdout)["named_by"] == "kept-name"
    p = run("deid", lab["clean"], "-o", out, "--keep-name", "--new-id", "R-1", secret=lab["key_a"])
    assert p.returncode == 2


@pytest.mark.parametrize("name", ["DOE_JANE_MRN4455667.svs", "jane_doe.svs", "SMITH-slide.svs", "20191231.svs",
                                  "S24-12345 Doe", "slide\u00e9.svs", "CON.svs"])
def test_keep_name_classifier_refuses(tmp_path, name):
    p = tmp_path / name
    p.write_bytes(b"x")
    with pytest.raises(NamingError):
        check_keep_name(str(p))


@pytest.mark.parametrize("name", ["slide_0007.svs", "HE_block_3.ndpi", "study-slide-12.tiff"])
def test_keep_name_classifier_passes(tmp_path, name):
    p = tmp_path / name
    p.write_bytes(b"x")
    assert check_keep_name(str(p)) == Path(name).stem


def test_research_id_rules():
    assert check_research_id("R-1.v2") == "R-1.v2"
    for bad in ("", " ", "\t", "R 1", "R/1", "R\\1", "..", "COM1", "lpt9.svs", "-x", "é"):
        with pytest.raises(NamingError):
            check_research_id(bad)


def test_outdir_audit_has_no_input_hash_nor_key_names(lab, tmp_path):
    from wsideid.pipeline import inspect
    out = tmp_path / "out"
    out.mkdir()
    p = run("deid", lab["file"], "-o", out, "--json", "--detect", "off", "--hash", "sha256", "--hash-input",
            secret=lab["key_a"])
    assert p.returncode == 0, p.stderr
    res = json.loads(p.stdout)
    audit_text = Path(res["audit"]).read_text()
    audit = json.loads(audit_text)
    in_hash = sha256(lab["file"])
    assert in_hash not in audit_text and audit["sha256"] == {"output": sha256(Path(res["output"]))}
    assert audit["secret"] == "file" and "a-first-secret" not in audit_text
    unknown = {d.field.path.rsplit("/", 1)[-1] for d in inspect(lab["file"]).fields if d.unknown}
    assert {"UnknownNoteKey", "65000", "UserComment"} <= unknown
    assert not [k for k in unknown if f"/{k}\"" in audit_text]
    assert all("key-hmac:" in f["path"] for f in audit["fields"] if f.get("unknown"))
    assert leaks(out, [in_hash, "UnknownNoteKey", "CameraOwnerName", *NEEDLES]) == []
    # The lab side keeps what the audit leaves out.
    lab_rec = json.loads((tmp_path / "out-review" / "records" / (audit["output_name"] + ".lab.json")).read_text())
    assert lab_rec["input"] == str(lab["file"]) and lab_rec["sha256"]["input"] == in_hash
    verbatim = {k["path"].rsplit("/", 1)[-1]: k["audit_path"] for k in lab_rec["hashed_keys"]}
    assert {"UnknownNoteKey", "65000"} <= set(verbatim)
    assert {f["path"] for f in audit["fields"]} >= set(verbatim.values())


def test_dicom_audit_has_no_input_hash(lab, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    p = run("deid", lab["folder"], "-o", out, "--json", "--detect", "off", secret=lab["key_a"])
    assert p.returncode == 0, p.stderr
    audit_text = Path(json.loads(p.stdout)["audit"]).read_text()
    import blake3
    for f in sorted(lab["folder"].iterdir()):
        assert sha256(f) not in audit_text and blake3.blake3(f.read_bytes()).hexdigest() not in audit_text
    audit = json.loads(audit_text)
    assert audit["hash_algorithm"] == "blake3"  # the default, as for TIFF
    assert audit["blake3"] and all(k.startswith("output") for k in audit["blake3"])


def test_no_secret_warning_once_and_in_the_audit(lab, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    p = run("deid", lab["clean"], "-o", out, "--json", "--detect", "off")
    assert p.returncode == 0, p.stderr
    assert p.stderr.count(NO_SECRET_WARNING) == 1 and p.stderr.strip() == NO_SECRET_WARNING
    assert json.loads(Path(json.loads(p.stdout)["audit"]).read_text())["secret"] == "random per run"
    p = run("deid", lab["clean"], "-o", tmp_path / "o2", "--mkdir", "--json", "--detect", "off", secret=lab["key_a"])
    assert p.returncode == 0 and "warning" not in p.stderr
    p = run("deid", lab["clean"], "-o", tmp_path / "o3", "--mkdir", "--detect", "off",
            env={"WSIDEID_SECRET": "an-environment-secret-long"})
    assert p.returncode == 0 and "warning" not in p.stderr


def test_review_dir_inside_outdir_is_refused(lab, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    p = run("deid", lab["clean"], "-o", out, "--review-dir", out / "rev", secret=lab["key_a"])
    assert p.returncode == 2 and "review folder" in p.stderr and os.listdir(out) == []


def test_batch_rows_without_new_id_get_pseudonyms(lab, tmp_path):
    from wsideid.batch.runner import BatchOptions, run_batch
    man = lab["src"] / "manifest-names.csv"
    with open(man, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["source", "new_id"])
        w.writerow([PHI_FILE, ""])
        w.writerow([PHI_FOLDER, ""])
        w.writerow(["slide_0007.tiff", "R-7"])
    out = tmp_path / "out"
    opts = BatchOptions(detect="off", progress=False, secret_file=str(lab["key_a"]))
    res = run_batch(str(man), str(out), opts)
    assert res.exit_code == 0, res.rows
    ids = [r["new_id"] for r in res.rows]
    assert ids[0].startswith("WSI-") and ids[1].startswith("WSI-") and ids[2] == "R-7"
    assert leaks(out) == [], "OUTDIR (slides, audits, batch-summary.csv, batch.json) names no source"
    assert sha256(lab["file"]) not in "".join(p.read_text(errors="replace") for p in every_path(out) if p.is_file())
    # The same pseudonym as a single deid with the same secret gives, and resume skips the finished rows.
    single = tmp_path / "single"
    single.mkdir()
    p = run("deid", lab["file"], "-o", single, "--json", "--detect", "off", secret=lab["key_a"])
    assert os.path.basename(json.loads(p.stdout)["output"]) == ids[0] + ".svs"
    again = run_batch(str(man), str(out), opts)
    assert again.skipped == 3 and [r["new_id"] for r in again.rows] == ids
    mapping = (tmp_path / "out-review" / "name-map.csv").read_text()
    assert str(lab["file"]) in mapping and str(lab["folder"]) in mapping


def test_batch_without_secret_reuses_its_pseudonyms(lab, tmp_path, monkeypatch):
    from wsideid.batch.runner import BatchOptions, run_batch
    man = lab["src"] / "manifest-nosecret.csv"
    man.write_text(f"source\n{PHI_FILE}\n")
    out = tmp_path / "out"
    opts = BatchOptions(detect="off", progress=False)
    monkeypatch.delenv("WSIDEID_SECRET", raising=False)
    first = run_batch(str(man), str(out), opts)
    assert first.secret_source == "random per run" and first.rows[0]["new_id"].startswith("WSI-")
    again = run_batch(str(man), str(out), opts)
    assert again.skipped == 1 and again.rows[0]["new_id"] == first.rows[0]["new_id"]
    assert len([n for n in os.listdir(out) if n.endswith(".svs")]) == 1


def test_batch_cli_warns_without_secret(lab, tmp_path):
    man = lab["src"] / "manifest-cli.csv"
    man.write_text("source,new_id\nslide_0007.svs,R-9\n")
    p = run("run", man, "-o", tmp_path / "out", "--detect", "off", "--no-report", "--no-progress")
    assert p.returncode == 0, p.stderr
    assert p.stderr.count(NO_SECRET_WARNING) == 1


def test_redact_names_by_pseudonym_too(lab, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    p = run("redact", lab["file"], "-o", out, "--region", "0,0,64,64", "--detect", "off", "--json",
            secret=lab["key_a"])
    assert p.returncode == 0, p.stderr
    name = os.path.basename(json.loads(p.stdout)["output"])
    assert name.startswith("WSI-") and name.endswith(".svs") and leaks(out) == []


def test_keep_name_refuses_a_user_identifier_in_the_name():
    """The classifier's general rules miss a lab user name like jdoe7; the user's own identifiers do not."""
    from wsideid.naming import NamingError, check_keep_name
    assert check_keep_name("slide_0007.svs", ["jdoe7"]) == "slide_0007"
    with pytest.raises(NamingError):
        check_keep_name("jdoe7_slide.svs", ["jdoe7"])


def test_batch_names_mirax_slides_by_their_folders_too(tmp_path, lab):
    """A .mrxs file is often the same bytes for every slide of a scanner: a pseudonym taken
    from it alone gave two MIRAX slides of one batch one name (the second refused as "same
    slide content") and a batch another name than a single deid. Both take every file now."""
    from wsideid.batch.runner import BatchOptions, run_batch
    from wsideid.mrxs.synth import make_mrxs
    src = tmp_path / "scans"
    src.mkdir()
    make_mrxs(str(src / "a.mrxs"), tiles_x=4, tiles_y=4)
    make_mrxs(str(src / "b.mrxs"), tiles_x=8, tiles_y=4)
    assert (src / "a.mrxs").read_bytes() == (src / "b.mrxs").read_bytes()
    man = src / "manifest.csv"
    man.write_text("source,new_id\na.mrxs,\nb.mrxs,\n")
    out = tmp_path / "out"
    res = run_batch(str(man), str(out), BatchOptions(detect="off", progress=False, secret_file=str(lab["key_a"])))
    assert res.exit_code == 0, res.rows
    ids = [r["new_id"] for r in res.rows]
    assert len(set(ids)) == 2 and all(i.startswith("WSI-") for i in ids)
    single = tmp_path / "single"
    single.mkdir()
    p = run("deid", src / "a.mrxs", "-o", single, "--json", "--detect", "off", secret=lab["key_a"])
    assert p.returncode == 0, p.stderr
    assert os.path.basename(json.loads(p.stdout)["output"]) == ids[0] + ".mrxs"
