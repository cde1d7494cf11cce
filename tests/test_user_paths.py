"""The CLI as a pathology lab user meets it: bad output folders, Ctrl-C, a full disk, the
manifests spreadsheets write, the summary's failed rows, the QC page, file permissions.

Real CLI processes (exit codes and stderr are the behaviour); slides are synthetic, made
by wsideid.synth, small so that the file runs in seconds.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from wsideid.synth import make_generic_tiff, make_svs

REPO = Path(__file__).resolve().parents[1]


def cli(*args: str, cwd: Path | None = None, env: dict | None = None, timeout: float = 300,
        umask: int | None = None) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "PYTHONPATH": str(REPO), "WSIDEID_SECRET": "user-paths-test-secret-0123456789abcdef",
                **(env or {})}
    full_env.pop("WSIDEID_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "wsideid.cli", *args], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=timeout,
                          preexec_fn=None if umask is None else (lambda: os.umask(umask)))


def one_line_error(proc: subprocess.CompletedProcess, code: int = 2) -> str:
    """The run failed with ``code`` and one stderr line, no traceback; returns the line."""
    assert proc.returncode == code, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip() and "warning" not in ln]
    assert len(lines) == 1, proc.stderr
    return lines[0]


@pytest.fixture(scope="module")
def lab(tmp_path_factory) -> Path:
    """A lab folder: two small slides under slides/ and a comma manifest naming them."""
    d = tmp_path_factory.mktemp("lab")
    (d / "slides").mkdir()
    make_svs(str(d / "slides" / "a.svs"), 512, 384)
    make_generic_tiff(str(d / "slides" / "b.tiff"), 256, 192)
    (d / "m.csv").write_text("source,new_id\nslides/a.svs,R-1\nslides/b.tiff,R-2\n")
    return d


# --- 1. bad -o ------------------------------------------------------------------------------

@pytest.mark.parametrize("command", ["run", "deid"])
def test_output_that_is_a_file_is_one_line(lab, tmp_path, command):
    target = tmp_path / "afile"
    target.write_text("x")
    args = ["run", str(lab / "m.csv")] if command == "run" else ["deid", str(lab / "slides" / "a.svs")]
    line = one_line_error(cli(*args, "-o", str(target), "--detect", "off"))
    assert "afile" in line and "not a folder" in line


@pytest.mark.parametrize("command", ["run", "deid"])
def test_output_under_a_file_is_one_line(lab, tmp_path, command):
    (tmp_path / "afile").write_text("x")
    args = ["run", str(lab / "m.csv")] if command == "run" else ["deid", str(lab / "slides" / "a.svs")]
    line = one_line_error(cli(*args, "-o", str(tmp_path / "afile" / "out"), "--detect", "off"))
    assert "afile" in line and "Not a directory" in line


@pytest.mark.parametrize("what", ["run", "deid", "deid-folder"])
def test_unwritable_review_dir_leaves_no_empty_outdir(lab, tmp_path, what):
    (tmp_path / "afile").write_text("x")
    out = tmp_path / "out"
    first = {"run": ["run", str(lab / "m.csv")], "deid": ["deid", str(lab / "slides" / "b.tiff")],
             "deid-folder": ["deid", str(lab / "slides")]}[what]
    line = one_line_error(cli(*first, "-o", str(out), "--review-dir", str(tmp_path / "afile" / "rev"),
                              "--detect", "off"))
    assert "review folder" in line and "afile" in line
    assert not out.exists()


def test_os_error_at_the_top_names_the_path(lab, tmp_path):
    """Any OSError reaching main (here: the QC page's name is taken by a folder) is one line with the path."""
    out = tmp_path / "out"
    assert cli("run", str(lab / "m.csv"), "-o", str(out), "--detect", "off", "--no-report").returncode == 0
    (tmp_path / "out-review" / "qc-report.html").mkdir()
    line = one_line_error(cli("report", str(out)))
    assert "qc-report.html" in line and "internal error" not in line


# --- 7. permissions in OUTDIR ---------------------------------------------------------------

def _modes(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_mode & 0o777 for p in [folder, *folder.rglob("*")]}


def test_outdir_files_are_0644_and_folders_0755(lab, tmp_path):
    """Audits and batch.json were 0600 (temp files) next to 0644 slides: a colleague could open the slide
    but not its audit. The DICOM output is a folder: 0755."""
    from wsideid.synth import make_dicom
    out = tmp_path / "out"
    assert cli("run", str(lab / "m.csv"), "-o", str(out), "--detect", "off", umask=0o022).returncode == 0
    make_dicom(str(tmp_path / "dcm"))
    assert cli("deid", str(tmp_path / "dcm"), "-o", str(out), "--detect", "off", umask=0o022).returncode == 0
    modes = _modes(out)
    assert any(name.endswith(".audit.json") for name in modes) and "batch.json" in modes
    assert any((out / name).is_dir() for name in modes if name != ".")
    wrong = {n: oct(m) for n, m in modes.items() if m != (0o755 if (out / n).is_dir() else 0o644)}
    assert not wrong


def test_a_stricter_umask_wins(lab, tmp_path):
    out = tmp_path / "out"
    assert cli("run", str(lab / "m.csv"), "-o", str(out), "--detect", "off", umask=0o077).returncode == 0
    assert not {n: oct(m) for n, m in _modes(out).items() if m & 0o077}
    review = _modes(tmp_path / "out-review")
    assert review["."] == 0o700


# --- 5. failed rows named in the final summary ------------------------------------------------

def _broken_slide(lab: Path, folder: Path) -> None:
    folder.mkdir(exist_ok=True)
    (folder / "bad.svs").write_bytes((lab / "slides" / "a.svs").read_bytes()[:3000])  # cut short


def test_summary_names_failed_and_refused_rows(lab, tmp_path):
    _broken_slide(lab, lab / "broken")
    manifest = lab / "failing.csv"
    manifest.write_text("source,new_id\nslides/b.tiff,R-1\nbroken/bad.svs,R-2\nnope.svs,R-3\n")
    p = cli("run", str(manifest), "-o", str(tmp_path / "out"), "--detect", "off", "--no-progress")
    assert p.returncode == 2, p.stderr
    failed = [ln for ln in p.stdout.splitlines() if ln.strip().startswith("failed")]
    assert failed and "row 3 R-2" in failed[0] and "end of the file" in failed[0], p.stdout
    refused = [ln for ln in p.stdout.splitlines() if ln.strip().startswith("refused")]
    assert refused == ["  refused row 4, column source: no such file under the manifest's folder (new_id R-3)"], p.stdout
    import json
    data = json.loads(cli("run", str(manifest), "-o", str(tmp_path / "out"), "--detect", "off", "--json").stdout)
    assert [(f["row"], f["new_id"], f["status"]) for f in data["failed_rows"]] == [(3, "R-2", "failed")]


def test_folder_summary_names_the_failed_file(lab, tmp_path):
    folder = tmp_path / "in"
    _broken_slide(lab, folder)
    (folder / "good.tiff").write_bytes((lab / "slides" / "b.tiff").read_bytes())
    p = cli("deid", str(folder), "-o", str(tmp_path / "out"), "--detect", "off")
    assert p.returncode == 2, p.stderr
    assert any(ln.strip().startswith("failed bad.svs (WSI-") for ln in p.stdout.splitlines()), p.stdout


# --- 4. manifests as spreadsheets write them ------------------------------------------------------

def _run_manifest(lab: Path, tmp_path: Path, name: str, data: bytes) -> subprocess.CompletedProcess:
    (lab / name).write_bytes(data)
    return cli("run", str(lab / name), "-o", str(tmp_path / "out"), "--detect", "off", "--no-progress",
               "--no-report")


@pytest.mark.parametrize("name, data", [
    ("semicolon.csv", b"source;new_id;regions\r\nslides/b.tiff;R-1;\"10,10,40,40;60,60,40,40\"\r\n"),
    ("tab.txt", b"source\tnew_id\nslides/b.tiff\tR-1\n"),
    ("excel-sep.csv", b"sep=;\r\nsource;new_id\r\nslides/b.tiff;R-1\r\n"),
    ("unicode-text.txt", "source\tnew_id\r\nslides/b.tiff\tR-1\r\n".encode("utf-16")),
    ("bom.csv", "\ufeffsource,new_id\nslides/b.tiff,R-1\n".encode("utf-8")),
])
def test_manifest_spellings_excel_writes(lab, tmp_path, name, data):
    p = _run_manifest(lab, tmp_path, name, data)
    assert p.returncode == 0, p.stdout + p.stderr
    assert (tmp_path / "out" / "R-1.tiff").exists()


def test_nfd_and_nfc_names_meet(lab, tmp_path):
    """A manifest typed on Windows (NFC) naming a file copied from a Mac (NFD), and an NFD cell."""
    import unicodedata
    nfd = unicodedata.normalize("NFD", "café.tiff")
    (lab / "slides" / nfd).write_bytes((lab / "slides" / "b.tiff").read_bytes())
    p = _run_manifest(lab, tmp_path, "nfc.csv", "source,new_id\nslides/café.tiff,R-1\n".encode())
    assert p.returncode == 0, p.stdout + p.stderr
    p = _run_manifest(lab, tmp_path / "2", "nfd.csv", f"source,new_id\nslides/{nfd},R-1\n".encode())
    assert p.returncode == 0, p.stdout + p.stderr


def test_same_slide_twice_names_both_rows(lab, tmp_path):
    link = lab / "slides" / "again.tiff"
    if not link.exists():
        link.symlink_to("b.tiff")
    p = _run_manifest(lab, tmp_path, "twice.csv", b"source,new_id\nslides/b.tiff,R-1\nslides/again.tiff,R-2\n")
    assert p.returncode == 2
    assert "refused row 3, column source: same slide as row 2 (new_id R-2)" in p.stdout


def test_header_only_manifest_is_refused(lab, tmp_path):
    p = _run_manifest(lab, tmp_path, "empty.csv", b"source,new_id\n,\n")
    assert "header but no slide rows" in one_line_error(p)
    assert not (tmp_path / "out").exists()


def test_latin1_manifest_is_refused_naming_the_line(lab, tmp_path):
    p = _run_manifest(lab, tmp_path, "latin1.csv", "source,new_id\nslides/b.tiff,R-1\ncafé.tiff,R-2\n".encode("latin-1"))
    line = one_line_error(p)
    assert "line 3" in line and "UTF-8" in line


def test_latin1_file_name_in_a_folder_is_refused_by_name(lab, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    data = (lab / "slides" / "b.tiff").read_bytes()
    (folder / "good.tiff").write_bytes(data)
    with open(os.path.join(os.fsencode(folder), b"caf\xe9.tiff"), "wb") as fh:
        fh.write(data + b"\0")  # another slide's content (a copy would be the same pseudonym)
    p = cli("deid", str(folder), "-o", str(tmp_path / "out"), "--detect", "off")
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr
    assert "refused caf\\xe9.tiff: the file name is not UTF-8" in p.stdout
    assert len(list((tmp_path / "out").glob("*.tiff"))) == 1


# --- 8. review apply: the decisions file after Excel -------------------------------------------------

@pytest.mark.parametrize("data", [b"new_id;decision;reviewer;note\r\nR-1;approve;Dr A;kept macro is fine\r\n",
                                  b"sep=;\r\nnew_id;decision;reviewer\r\nR-1;approve;Dr A\r\n",
                                  "new_id\tdecision\treviewer\r\nR-1\tapprove\tDr A\r\n".encode("utf-16")])
def test_review_apply_reads_excel_exports(lab, tmp_path, data):
    """A European Excel saves the QC page's CSV with ';' (and "Unicode text" with tabs, UTF-16)."""
    (lab / "flag.csv").write_text("source,new_id,keep_macro\nslides/a.svs,R-1,yes\n")  # the macro shows a label
    out = tmp_path / "out"
    p = cli("run", str(lab / "flag.csv"), "-o", str(out), "--detect", "residual", "--no-ocr", "--no-report")
    assert p.returncode == 1 and "1 flagged" in p.stdout, p.stdout + p.stderr
    decisions = tmp_path / "decisions.csv"
    decisions.write_bytes(data)
    p = cli("review", "apply", str(decisions), str(out), umask=0o022)
    assert p.returncode == 0 and "approved" in p.stdout, p.stdout + p.stderr
    assert (out / "R-1.svs").exists()
    assert (out / "R-1.svs.audit.json").stat().st_mode & 0o777 == 0o644  # 0600 before: a temp file's mode


# --- 2. Ctrl-C during a batch ------------------------------------------------------------------------

def _five_slides(lab: Path) -> Path:
    manifest = lab / "five.csv"
    if not manifest.exists():
        data = (lab / "slides" / "a.svs").read_bytes()
        for i in range(1, 6):
            (lab / "slides" / f"five{i}.svs").write_bytes(data + bytes([i]))  # five slides, five contents
        manifest.write_text("source,new_id\n" + "".join(f"slides/five{i}.svs,R-{i}\n" for i in range(1, 6)))
    return manifest


def _wait_for(marker, proc: subprocess.Popen, limit_s: float = 120) -> None:
    """Poll for ``marker()`` (a state of the run, never a guessed delay); fail if the run ended first."""
    import time
    end = time.monotonic() + limit_s
    while not marker():
        assert proc.poll() is None, "the run ended before the marker"
        assert time.monotonic() < end, "marker not reached"
        time.sleep(0.01)


def _check_outdir_whole(out: Path) -> set[str]:
    """Only whole slides with their audits; no temp file, no audit without its slide."""
    import openslide
    names = {p.name for p in out.iterdir()}
    assert not [n for n in names if n.startswith(".wsideid-tmp")], names
    slides = {n for n in names if n.endswith((".svs", ".tiff"))}
    assert {n for n in names if n.endswith(".audit.json")} == {s + ".audit.json" for s in slides}
    for s in slides:
        with openslide.OpenSlide(str(out / s)) as o:
            o.read_region((0, 0), o.level_count - 1, o.level_dimensions[-1])
    return slides


@pytest.mark.parametrize("jobs, when", [("1", "first-done"), ("2", "first-done"), ("1", "first-started")])
def test_ctrl_c_records_interrupted_rows_and_rerun_resumes(lab, tmp_path, jobs, when):
    import csv
    import signal
    import time
    manifest = _five_slides(lab)
    out, review = tmp_path / "out", tmp_path / "out-review"
    args = [sys.executable, "-m", "wsideid.cli", "run", str(manifest), "-o", str(out), "--detect", "off", "-j", jobs]
    env = {**os.environ, "PYTHONPATH": str(REPO), "WSIDEID_SECRET": "user-paths-test-secret-0123456789abcdef"}
    err_path = tmp_path / "stderr.txt"
    with open(err_path, "w") as err:  # the progress lines ([1/5] ...) are the marker of a finished slide
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=err, text=True, env=env, start_new_session=True)
        if when == "first-done":
            _wait_for(lambda: "[1/5]" in err_path.read_text(), proc)
        else:  # the first slide's running mark: it has started, none has finished
            _wait_for(lambda: (review / "slides" / "R-1.json").exists(), proc)
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does: the whole process group
        stdout, _ = proc.communicate(timeout=120)
    stderr = err_path.read_text()
    assert proc.returncode == 130, (stdout, stderr)
    assert "Traceback" not in stderr and "Traceback" not in stdout
    with open(out / "batch-summary.csv", newline="") as fh:
        statuses = {r["new_id"]: r["status"] for r in csv.DictReader(fh)}
    assert set(statuses.values()) <= {"published", "interrupted"} and "interrupted" in statuses.values(), statuses
    assert "interrupted row" in stdout and "rerun the same command" in stdout
    published = _check_outdir_whole(out)
    assert published == {f"{nid}.svs" for nid, s in statuses.items() if s == "published"}
    page = (review / "qc-report.html").read_text()  # one card per row, none left "running"
    assert page.count('data-status="interrupted"') == list(statuses.values()).count("interrupted")
    assert 'data-status="running"' not in page
    p = cli("run", str(manifest), "-o", str(out), "--detect", "off", "-j", jobs)
    assert p.returncode == 0 and "5 published" in p.stdout, p.stdout + p.stderr
    assert f"{len(published)} already done" in p.stdout
    assert len(_check_outdir_whole(out)) == 5


# --- 3. disk full during one slide ----------------------------------------------------------------------

def _mount_tmpfs(mnt: Path, size_k: int) -> None:
    mnt.mkdir(exist_ok=True)
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_k}k", "tmpfs", str(mnt)],
                                           capture_output=True).returncode != 0:
        pytest.skip("needs root and permission to mount a tmpfs")


@pytest.fixture
def small_disk(tmp_path):
    """A 700 KiB tmpfs (a real file system that fills up); skipped where mounting is not allowed."""
    mnt = tmp_path / "small-disk"
    _mount_tmpfs(mnt, 700)
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_disk_full_fails_that_slide_only(lab, tmp_path, small_disk):
    big = lab / "slides" / "big.svs"
    if not big.exists():
        make_svs(str(big), 3000, 2200)  # ~1 MB written: more than the disk holds; the others fit
    manifest = lab / "disk.csv"
    manifest.write_text("source,new_id\nslides/b.tiff,R-1\nslides/big.svs,R-2\nslides/a.svs,R-3\n")
    out = small_disk / "out"
    p = cli("run", str(manifest), "-o", str(out), "--review-dir", str(tmp_path / "review"), "--detect", "off",
            "--no-progress")
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stdout + p.stderr
    assert "failed row 3 R-2: cannot write the output: No space left on device" in p.stdout
    assert "2 published" in p.stdout
    assert _check_outdir_whole(out) == {"R-1.tiff", "R-3.svs"}
    assert not [n for n in os.listdir(out) if n.startswith(".wsideid-tmp") or n.startswith("R-2")]


# --- 6. QC page: images the detectors did not read --------------------------------------------------------

@pytest.mark.parametrize("detect, why", [("off", "the detectors were off (--detect off)"),
                                         ("residual", "removed images are scanned with --detect all only"),
                                         ("all", None)])
def test_qc_page_says_which_images_were_not_scanned(lab, tmp_path, detect, why):
    out = tmp_path / "out"
    p = cli("run", str(lab / "m.csv"), "-o", str(out), "--detect", detect, "--no-ocr", "--no-progress")
    assert p.returncode == 0, p.stdout + p.stderr
    page = (tmp_path / "out-review" / "qc-report.html").read_text()
    assert page.count("<figure") >= 2
    if why is None:
        assert "Not scanned:" not in page
    else:
        assert f"Not scanned: {why}" in page


# --- 9. help texts ------------------------------------------------------------------------------------------

def _all_arguments():
    import argparse
    from wsideid.cli import build_parser

    def walk(p, path=()):
        for a in p._actions:
            if isinstance(a, argparse._SubParsersAction):
                for name, sp in a.choices.items():
                    yield from walk(sp, path + (name,))
            elif not isinstance(a, (argparse._HelpAction, argparse._VersionAction)) and a.help != argparse.SUPPRESS:
                yield " ".join(path), "/".join(a.option_strings) or a.dest, a
    return list(walk(build_parser()))


def test_every_option_and_argument_is_explained():
    """Every subcommand's options and positional arguments have a help line, and a choice with a
    default says which one it is (--json, --fill, run --verify, verify's paths had none)."""
    args = _all_arguments()
    assert len(args) > 100
    assert not [(cmd, name) for cmd, name, a in args if not a.help]
    assert not [(cmd, name, a.default) for cmd, name, a in args
                if a.choices and a.default not in (None, False) and "default" not in a.help]


def test_top_help_lists_the_formats_and_exit_codes():
    p = cli("--help")
    assert p.returncode == 0
    for word in ("MRXS", "QPTIFF", "exit codes", "130", "Ctrl-C"):
        assert word in p.stdout


# --- known open items --------------------------------------------------------------------------------------

def test_outdir_inside_the_input_folder_is_not_taken_for_input(lab, tmp_path):
    """``deid IN -o IN/out`` and later ``deid IN -o IN/out2``: the second run reads the two slides only."""
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("a.svs", "b.tiff"):
        (folder / name).write_bytes((lab / "slides" / name).read_bytes())
    assert cli("deid", str(folder), "-o", str(folder / "out"), "--detect", "off").returncode == 0
    p = cli("deid", str(folder), "-o", str(folder / "out2"), "--detect", "off")
    assert p.returncode == 0 and "2 published (2 processed" in p.stdout, p.stdout + p.stderr
    assert len(list((folder / "out2").glob("WSI-*.audit.json"))) == 2


def test_read_only_file_system_output_is_one_line(lab, tmp_path):
    """A real unwritable parent (a read-only mount: root may write anywhere else)."""
    mnt = tmp_path / "ro"
    mnt.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(mnt)],
                                           capture_output=True).returncode != 0:
        pytest.skip("needs root and permission to mount a tmpfs")
    try:
        for args in (["run", str(lab / "m.csv")], ["deid", str(lab / "slides" / "b.tiff")]):
            line = one_line_error(cli(*args, "-o", str(mnt / "out"), "--detect", "off"))
            assert str(mnt / "out") in line and "Read-only file system" in line
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


@pytest.mark.parametrize("size_k", [16, 48, 96, 160])
def test_full_review_folder_is_reported_not_a_traceback(lab, tmp_path, size_k):
    """The review folder (records, summary, QC page) on a disk that fills up at some point: the run ends
    with the slide or the file it could not write named in one line, never a worker's traceback or an
    'internal error', and OUTDIR holds whole slides with their audits only."""
    review = tmp_path / "review-disk"
    _mount_tmpfs(review, size_k)
    try:
        out = tmp_path / "out"
        p = cli("run", str(lab / "m.csv"), "-o", str(out), "--review-dir", str(review / "rv"), "--detect", "off",
                "--no-progress", "-j", "2")
        text = p.stdout + p.stderr
        assert p.returncode not in (0, 70) and "Traceback" not in text and "internal error" not in text, text
        errors = [ln for ln in p.stderr.splitlines() if ln.startswith("wsideid: error")]
        failed = [ln for ln in p.stdout.splitlines() if ln.strip().startswith("failed")]
        assert errors or failed, text
        assert all("No space left on device" in ln for ln in errors), errors
        _check_outdir_whole(out)
    finally:
        subprocess.run(["umount", "-l", str(review)], check=False)
