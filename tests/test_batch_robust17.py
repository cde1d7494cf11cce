"""Issue 17: resume from the disk, local worker loss, exclusive publishing, no links followed,
CSV cells that cannot run as formulas, output-name collisions. Real processes (the CLI,
SIGKILL, two concurrent runs), real and synthetic slides."""

from __future__ import annotations

import csv
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from test_batch_e2e import CLEAN_SVS, NDPI, TIFF, make_batch_sources, read_summary, write_manifest
from wsideid import cells
from wsideid.batch.manifest import parse_manifest
from wsideid.batch.runner import BatchOptions, run_batch
from wsideid.safefs import CLAIM_PREFIX, NameTaken, publish_dir, publish_file
from wsideid.synth import make_svs

ENV = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
TEMP_MARK = ".wsideid-"


def cli(*args, check=None, **kw) -> subprocess.CompletedProcess:
    r = subprocess.run([sys.executable, "-m", "wsideid.cli", *map(str, args)], capture_output=True, text=True,
                       env=ENV, timeout=600, **kw)
    if check is not None:
        assert r.returncode == check, r.stderr[-2000:]
    return r


def digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


def slides(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.suffix in (".svs", ".ndpi", ".tiff"))


def eight(folder: Path, size=(2048, 1536)) -> Path:
    """Eight slides (copies of one synthetic SVS) and their manifest."""
    d = folder / "slides"
    d.mkdir(parents=True, exist_ok=True)
    make_svs(str(d / "s0.svs"), *size)
    for i in range(1, 8):
        shutil.copyfile(d / "s0.svs", d / f"s{i}.svs")
    return write_manifest(folder, [(f"slides/s{i}.svs", f"R-{i}", f"P{i}", "", "") for i in range(8)])


# --- 1. resume from what is on disk ------------------------------------------------------------

def test_rerun_into_new_outdir_redoes_and_never_touches_the_old_one(tmp_path):
    make_batch_sources(tmp_path)
    m = write_manifest(tmp_path, [(f"slides/{CLEAN_SVS}", "R-1", "", "", ""), (f"slides/{NDPI}", "R-2", "", "", ""),
                                  (f"slides/{TIFF}", "R-3", "", "", "")])
    out, out2, out3, review = tmp_path / "OUT", tmp_path / "OUT2", tmp_path / "OUT3", tmp_path / "OUT-review"
    common = ["--detect", "off", "--no-progress", "--no-report"]
    cli("run", m, "-o", out, *common, check=0)
    before = digests(out)
    assert slides(out) == ["R-1.svs", "R-2.ndpi", "R-3.tiff"]
    r = cli("run", m, "-o", out2, "--review-dir", review, *common, check=0)
    assert "(3 processed, 0 already done)" in r.stdout
    assert slides(out2) == ["R-1.svs", "R-2.ndpi", "R-3.tiff"]
    r = cli("run", m, "-o", out3, "--review-dir", review, "--dates", "year", *common, check=0)
    assert slides(out3) == ["R-1.svs", "R-2.ndpi", "R-3.tiff"] and "(3 processed" in r.stdout
    assert {k: v for k, v in digests(out).items() if k != "batch.json"} == \
        {k: v for k, v in before.items() if k != "batch.json"}  # OUT untouched, summary included
    # same OUTDIR, options changed: refused per slide without --overwrite, replaced (and said) with it
    r = cli("run", m, "-o", out, "--dates", "year", *common)
    assert r.returncode == 2 and digests(out)["R-1.svs"] == before["R-1.svs"]
    r = cli("run", m, "-o", out, "--dates", "year", "--overwrite", *common, check=0)
    assert r.stderr.count("--overwrite replaced") == 3 and "replaced (--overwrite) R-1.svs" in r.stdout
    # a slide deleted from OUTDIR is done again (the records alone do not count)
    (out / "R-2.ndpi").unlink()
    r = cli("run", m, "-o", out, "--dates", "year", *common, check=0)
    assert "(1 processed, 2 already done)" in r.stdout and (out / "R-2.ndpi").exists()


# --- 2. worker loss is local -------------------------------------------------------------------

def _children(pid: int) -> list[int]:
    kids = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            kids += [int(k) for k in (task / "children").read_text().split()]
        except OSError:
            pass
    return kids


def test_sigkill_of_one_worker_loses_only_its_slide(tmp_path):
    m = eight(tmp_path)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "wsideid.cli", "run", str(m), "-o", str(out), "--jobs", "2", "--detect", "off",
           "--no-progress", "--no-report"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    deadline = time.time() + 60
    while len(_children(proc.pid)) < 2 and time.time() < deadline:
        time.sleep(0.05)
    victim = _children(proc.pid)[0]
    time.sleep(0.3)
    os.kill(victim, signal.SIGKILL)
    stdout, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 2, stderr[-2000:]
    summ = read_summary(out / "batch-summary.csv")
    statuses = sorted(r["status"] for r in summ.values())
    assert statuses == ["lost"] + ["published"] * 7, statuses
    lost = [r for r in summ.values() if r["status"] == "lost"][0]
    assert lost["error_kind"] == "WorkerLost:signal 9" and lost["run"] == "lost"
    assert "1 lost" in stdout and "7 published" in stdout
    r = cli("run", m, "-o", out, "--jobs", "2", "--detect", "off", "--no-progress", "--no-report", check=0)
    # the lost slide is redone, or, when the kill came after its publish and lab record, finished from
    # the disk by batch/recovery.py (its output proven ours); either way all 8 are published now
    assert "(1 processed, 7 already done)" in r.stdout or "(0 processed, 8 already done)" in r.stdout, r.stdout
    assert len(slides(out)) == 8 and not [p for p in os.listdir(out) if p.startswith(TEMP_MARK)]


def test_dask_worker_killed_the_batch_goes_on(tmp_path):
    distributed = pytest.importorskip("distributed")
    import threading
    m = eight(tmp_path)
    out = tmp_path / "out"
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cl, \
            distributed.Client(cl.scheduler_address) as client:
        pids = list(client.run(os.getpid).values())
        killer = threading.Timer(2.0, os.kill, (pids[0], signal.SIGKILL))
        killer.start()
        res = run_batch(str(m), str(out), BatchOptions(dask=cl.scheduler_address, detect="off", progress=False))
        killer.join()
    msgs = read_summary(tmp_path / "out-review" / "batch-summary.csv")
    # a Dask worker may hold queued tasks besides the running one: those are lost (or re-run) with it,
    # never a failure, and the other worker's slides are published
    assert set(res.counts) <= {"published", "lost"}, [(r["status"], r["message"]) for r in msgs.values()]
    assert res.counts.get("published", 0) + res.counts.get("lost", 0) == 8 and res.counts["published"] >= 4
    res2 = run_batch(str(m), str(out), BatchOptions(jobs=2, detect="off", progress=False))
    assert res2.counts == {"published": 8} and len(slides(out)) == 8


# --- 3. exclusive publishing -------------------------------------------------------------------

def test_two_concurrent_clis_publishing_one_name(tmp_path):
    make_batch_sources(tmp_path)
    a, b = tmp_path / "slides" / CLEAN_SVS, tmp_path / "slides" / NDPI
    for n in range(4):
        out = tmp_path / f"out{n}"
        out.mkdir()
        shutil.copyfile(a, tmp_path / "slides" / "b.svs")  # same extension: the same final name R-1.svs
        procs = [subprocess.Popen([sys.executable, "-m", "wsideid.cli", "deid", str(src), "-o", str(out),
                                   "--new-id", "R-1", "--detect", "off"], env=ENV, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
                 for src in (a, tmp_path / "slides" / "b.svs")]
        res = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
        codes = sorted(c for c, _ in res)
        assert codes[0] == 0 and codes[1] != 0, res
        err = [e for c, e in res if c != 0][0].strip()
        assert len(err.splitlines()) == 1 and ("already exists" in err or "another run is publishing" in err), err
        names = sorted(os.listdir(out))
        assert names == ["R-1.svs", "R-1.svs.audit.json"], names  # no temp, no claim file left
    assert b.exists()


def test_a_live_claim_blocks_a_dead_one_is_taken_over(tmp_path):
    make_batch_sources(tmp_path)
    src = tmp_path / "slides" / CLEAN_SVS
    out = tmp_path / "out"
    out.mkdir()
    import socket
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (out / (CLAIM_PREFIX + "r-1.svs")).write_text(f"{socket.gethostname()}@{sleeper.pid}")
        r = cli("deid", src, "-o", out, "--new-id", "R-1", "--detect", "off")
        assert r.returncode != 0 and "another run is publishing R-1.svs" in r.stderr
        assert sorted(os.listdir(out)) == [CLAIM_PREFIX + "r-1.svs"]  # nothing written next to it
    finally:
        sleeper.kill()
        sleeper.wait()
    cli("deid", src, "-o", out, "--new-id", "R-1", "--detect", "off", check=0)  # its owner is gone now
    assert sorted(os.listdir(out)) == ["R-1.svs", "R-1.svs.audit.json"]


def test_publish_primitives_never_replace(tmp_path):
    (tmp_path / "t1").write_bytes(b"one")
    (tmp_path / "t2").write_bytes(b"two")
    assert publish_file(str(tmp_path / "t1"), str(tmp_path / "F"), False) is False
    with pytest.raises(NameTaken):
        publish_file(str(tmp_path / "t2"), str(tmp_path / "F"), False)
    assert (tmp_path / "F").read_bytes() == b"one"
    assert publish_file(str(tmp_path / "t2"), str(tmp_path / "F"), True) is True
    for n in ("d1", "d2", "trash"):
        (tmp_path / n).mkdir()
        (tmp_path / n / "x.dcm").write_bytes(n.encode())
    assert publish_dir(str(tmp_path / "d1"), str(tmp_path / "D"), False, str(tmp_path / "trash" / "old")) is False
    with pytest.raises(NameTaken):
        publish_dir(str(tmp_path / "d2"), str(tmp_path / "D"), False, str(tmp_path / "trash" / "old"))
    (tmp_path / "E").mkdir()  # an empty folder is a name taken too (a plain rename would replace it)
    with pytest.raises(NameTaken):
        publish_dir(str(tmp_path / "d2"), str(tmp_path / "E"), False, str(tmp_path / "trash" / "old"))
    assert (tmp_path / "D" / "x.dcm").read_bytes() == b"d1"


# --- 4. no symlink followed --------------------------------------------------------------------

def test_planted_links_are_never_written_through(tmp_path):
    make_batch_sources(tmp_path)
    m = write_manifest(tmp_path, [(f"slides/{TIFF}", "R-1", "", "", "")])
    victim = tmp_path / "victim.svs"
    shutil.copyfile(tmp_path / "slides" / CLEAN_SVS, victim)
    want = victim.read_bytes()
    out, review = tmp_path / "out", tmp_path / "out-review"
    out.mkdir()
    os.symlink(victim, out / "batch-summary.csv.tmp")  # the reported attack
    cli("run", m, "-o", out, "--detect", "off", "--no-progress", check=0)
    assert victim.read_bytes() == want and not (out / "batch-summary.csv").is_symlink()
    # a link at the final name, at the name map, and a review sub-folder that is a link: refused
    for plant in (out / "batch-summary.csv", review / "name-map.csv", review / "mapping.csv"):
        plant.unlink()
        os.symlink(victim, plant)
        for p in out.glob("R-1.*"):  # done again, so that the name map is written too
            p.unlink()
        r = cli("run", m, "-o", out, "--detect", "off", "--no-progress")
        said = r.stderr if "symbolic link" in r.stderr else (review / "batch-summary.csv").read_text()
        assert r.returncode != 0 and "refusing to write through a symbolic link" in said, r.stderr
        assert "Traceback" not in r.stderr and victim.read_bytes() == want
        plant.unlink()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.rmtree(review / "slides")
    os.symlink(elsewhere, review / "slides")
    r = cli("run", m, "-o", out, "--detect", "off", "--no-progress")
    assert r.returncode != 0 and "symbolic link" in (r.stderr + r.stdout)
    assert list(elsewhere.iterdir()) == []


# --- 6. CSV cells --------------------------------------------------------------------------------

def test_csv_cells_cannot_be_formulas_and_round_trip(tmp_path):
    for v in ["-R1", "=1+2", "+x", "@SUM(A1)", "\tx", "\rx", "'-R1", "''=x", "'plain", "plain", ""]:
        assert cells.unescape(cells.escape(v)) == v
        assert not cells.escape(v).startswith(cells.TRIGGERS)
    make_batch_sources(tmp_path)
    shutil.copyfile(tmp_path / "slides" / TIFF, tmp_path / "=cmd.tiff")
    m = write_manifest(tmp_path, [("=cmd.tiff", "R-1", "-3+4", '=HYPERLINK("http://x");@SUM(A1)', "")])
    out, review = tmp_path / "out", tmp_path / "out-review"
    cli("run", m, "-o", out, "--detect", "off", "--no-progress", check=0)
    written = [out / "batch-summary.csv", review / "batch-summary.csv", review / "mapping.csv",
               review / "name-map.csv"]
    seen = []
    for path in written:
        with open(path, newline="") as fh:
            for row in csv.reader(fh):
                assert not [c for c in row if c.startswith(cells.TRIGGERS)], (path.name, row)
                seen += row
    assert "'=cmd.tiff" in seen and "'-3+4" in seen and "'=HYPERLINK(\"http://x\");@SUM(A1)" in seen
    # our manifest reader strips the apostrophe again: the mapping works as a manifest
    m2 = write_manifest(tmp_path, [("'=cmd.tiff", "R-1", "'-3+4", "'=HYPERLINK(\"http://x\");@SUM(A1)", "")],
                        name="again.csv")
    rows, problems = parse_manifest(m2)
    assert not problems and rows[0].subject == "-3+4" and rows[0].identifiers == ['=HYPERLINK("http://x")', "@SUM(A1)"]
    assert rows[0].source.endswith("=cmd.tiff")


def test_decisions_file_apostrophes_are_stripped(tmp_path):
    from wsideid.report.decisions import read_decisions
    p = tmp_path / "d.csv"
    p.write_text("new_id,decision,reviewer,note\nR-1,approve,'=Dr X,'-note\n")
    assert read_decisions(str(p)) == [{"new_id": "R-1", "decision": "approve", "reviewer": "=Dr X", "note": "-note"}]


# --- 7. output-name collisions -------------------------------------------------------------------

def test_names_collide_after_extension_and_case(tmp_path):
    from realdata import real
    dcm = real("dicom/wsi2dcm_jpeg.dcm")
    make_batch_sources(tmp_path)
    folder = tmp_path / "slides" / "dicomslide"
    folder.mkdir()
    os.symlink(dcm, folder / "i1.dcm")
    m = write_manifest(tmp_path, [(f"slides/{CLEAN_SVS}", "R-4", "", "", ""),
                                  ("slides/dicomslide", "r-4.SVS", "", "", ""),  # a folder named like R-4's output
                                  (f"slides/{TIFF}", "R-5.svs.audit.json", "", "", ""),  # not a collision: .tiff
                                  (f"slides/{NDPI}", "R-4.svs.audit", "", "", "")])  # ndpi: R-4.svs.audit.ndpi
    res = run_batch(str(m), str(tmp_path / "out"), BatchOptions(detect="off", progress=False))
    assert [str(p) for p in res.problems] == [
        "row 3, column new_id: its output name may collide with row 2's (names are compared with extensions,"
        " ignoring case)"]
    assert res.counts == {"published": 3, "refused": 1}


def test_an_existing_name_in_another_case_is_refused(tmp_path):
    make_batch_sources(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    (out / "r-1.SVS").write_bytes(b"someone else's")
    r = cli("deid", tmp_path / "slides" / CLEAN_SVS, "-o", out, "--new-id", "R-1", "--detect", "off")
    assert r.returncode != 0 and "collides with r-1.SVS" in r.stderr
    assert sorted(os.listdir(out)) == ["r-1.SVS"]

