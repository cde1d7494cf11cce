"""A batch killed between a slide's publish and its record: the rerun finishes the slide from
the disk (no --overwrite), and only when the disk proves the output is that slide's.

The exact kill window is reproduced as the disk state it leaves (the slide's record still
says "running", older than the lab record and the published output), plus real SIGKILLs of
the CLI the moment an output appears."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

from test_batch_e2e import CLEAN_SVS, NDPI, TIFF, make_batch_sources, write_manifest
from test_batch_robust17 import ENV, cli, digests, slides

COMMON = ["--detect", "off", "--no-progress", "--no-report"]


def _batch(tmp_path):
    make_batch_sources(tmp_path)
    m = write_manifest(tmp_path, [(f"slides/{CLEAN_SVS}", "R-1", "", "", ""), (f"slides/{NDPI}", "R-2", "", "", ""),
                                  (f"slides/{TIFF}", "R-3", "", "", "")])
    return m, tmp_path / "OUT", tmp_path / "OUT-review"


def _as_killed_after_publish(review, new_id):
    """Rewrite a finished slide's record into the running mark a kill after the rename leaves:
    written before the slide started, so older than its lab record."""
    path = review / "slides" / f"{new_id}.json"
    rec = json.loads(path.read_text())
    running = {k: rec[k] for k in ("row", "new_id", "named_by", "source", "fingerprint", "input", "job")}
    running.update(status="running", previous_output=None, summary={"status": "running"}, images=[])
    path.write_text(json.dumps(running))
    lab = review / "records" / (os.path.basename(rec["output"]) + ".lab.json")
    t = lab.stat().st_mtime_ns - 2_000_000_000
    os.utime(path, ns=(t, t))
    return rec


def _error(review, new_id) -> str:
    return json.loads((review / "slides" / f"{new_id}.json").read_text())["error"] or ""


def test_killed_after_publish_is_recovered_without_overwrite(tmp_path):
    m, out, review = _batch(tmp_path)
    cli("run", m, "-o", out, *COMMON, check=0)
    before = digests(out)
    _as_killed_after_publish(review, "R-2")
    r = cli("run", m, "-o", out, *COMMON, check=0)
    assert "(0 processed, 3 already done)" in r.stdout, r.stdout
    assert digests(out)["R-2.ndpi"] == before["R-2.ndpi"]
    rec = json.loads((review / "slides" / "R-2.json").read_text())
    assert rec["status"] == "published" and rec["recovered"] and rec["summary"]["run"] == "recovered"
    # and the recovered record is a full one: the next rerun skips it the ordinary way
    r = cli("run", m, "-o", out, *COMMON, check=0)
    assert "(0 processed, 3 already done)" in r.stdout


def test_an_output_that_does_not_hash_as_recorded_is_not_adopted(tmp_path):
    m, out, review = _batch(tmp_path)
    cli("run", m, "-o", out, *COMMON, check=0)
    _as_killed_after_publish(review, "R-1")
    with open(out / "R-1.svs", "r+b") as fh:  # someone else's bytes under the name
        fh.seek(-1, os.SEEK_END)
        fh.write(b"\x00" if fh.read(1) != b"\x00" else b"\x01")
        fh.seek(0)
    planted = digests(out)["R-1.svs"]
    r = cli("run", m, "-o", out, *COMMON)
    assert r.returncode != 0 and "already exists" in _error(review, "R-1")
    assert digests(out)["R-1.svs"] == planted  # never replaced without proof (or --overwrite)


def test_a_lab_record_older_than_the_running_mark_proves_nothing(tmp_path):
    m, out, review = _batch(tmp_path)
    cli("run", m, "-o", out, *COMMON, check=0)
    _as_killed_after_publish(review, "R-3")
    mark = review / "slides" / "R-3.json"
    later = time.time_ns() + 5_000_000_000  # the mark now postdates the lab record: a later attempt
    os.utime(mark, ns=(later, later))
    before = digests(out)["R-3.tiff"]
    r = cli("run", m, "-o", out, *COMMON)
    assert r.returncode != 0 and "already exists" in _error(review, "R-3")
    assert digests(out)["R-3.tiff"] == before


def test_a_flagged_output_proven_ours_is_redone_for_its_findings(tmp_path):
    m, out, review = _batch(tmp_path)
    cli("run", m, "-o", out, *COMMON, check=0)
    rec = _as_killed_after_publish(review, "R-1")
    # move the published slide where a flagged one lives, and its lab record with it
    flagged = review / "flagged"
    flagged.mkdir(exist_ok=True)
    os.rename(out / "R-1.svs", flagged / "R-1.svs")
    os.rename(out / "R-1.svs.audit.json", flagged / "R-1.svs.audit.json")
    lab_path = review / "records" / "R-1.svs.lab.json"
    lab = json.loads(lab_path.read_text())
    lab.update(status="flagged", output=str(flagged / "R-1.svs"))
    st = lab_path.stat()
    lab_path.write_text(json.dumps(lab))
    os.utime(lab_path, ns=(st.st_mtime_ns, st.st_mtime_ns))
    assert rec["status"] == "published"
    r = cli("run", m, "-o", out, *COMMON, check=0)
    assert "(1 processed, 2 already done)" in r.stdout
    assert "R-1.svs" in slides(out) and not (flagged / "R-1.svs").exists()


def test_real_sigkill_the_moment_an_output_appears(tmp_path):
    """The CLI (one process, --jobs 1) is killed as soon as each output lands; every rerun
    without --overwrite finishes the batch, whatever instant the kill hit."""
    m, out, review = _batch(tmp_path)
    cmd = [sys.executable, "-m", "wsideid.cli", "run", str(m), "-o", str(out), "--jobs", "1", *COMMON]
    for name in ("R-1.svs", "R-2.ndpi"):
        proc = subprocess.Popen(cmd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 900  # a cap against a hang, not a timing: loaded CI machines are slow
        while not (out / name).exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.0005)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert (out / name).exists()
    r = cli("run", m, "-o", out, *COMMON, check=0)
    assert slides(out) == ["R-1.svs", "R-2.ndpi", "R-3.tiff"] and "already done" in r.stdout
    assert not [p.name for p in out.iterdir() if p.name.startswith(".wsideid-")]  # no claim or temp left


def test_a_claim_left_by_a_dead_run_is_cleared_a_live_one_kept(tmp_path):
    from wsideid.safefs import CLAIM_PREFIX, remove_dead_claims
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    import socket
    (tmp_path / (CLAIM_PREFIX + "r-1.svs")).write_text(f"{socket.gethostname()}@{dead.pid}")
    (tmp_path / (CLAIM_PREFIX + "r-2.svs")).write_text(f"{socket.gethostname()}@{os.getpid()}")
    (tmp_path / (CLAIM_PREFIX + "r-3.svs")).write_text("other-host@1")
    assert remove_dead_claims(str(tmp_path)) == [CLAIM_PREFIX + "r-1.svs"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [CLAIM_PREFIX + "r-2.svs", CLAIM_PREFIX + "r-3.svs"]


def test_a_single_deid_clears_a_dead_runs_claim(tmp_path):
    """Not only the batch: any run into OUTDIR removes the claim a killed ``deid`` left."""
    import socket
    from wsideid.safefs import CLAIM_PREFIX
    from wsideid.synth import make_generic_tiff
    src = make_generic_tiff(str(tmp_path / "s.tiff"))
    out = tmp_path / "out"
    out.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (out / (CLAIM_PREFIX + "r-9.svs")).write_text(f"{socket.gethostname()}@{dead.pid}")
    from wsideid import cli
    assert cli.main(["deid", src.path, "-o", str(out), "--new-id", "R-1", "--detect", "off"]) == 0
    assert not [p.name for p in out.iterdir() if p.name.startswith(".wsideid-")]
