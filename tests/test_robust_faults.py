"""Faults during deid: SIGKILL at random points, disk full, read-only output folder, input changed mid-run.

What must hold in every case: nothing at the output path but a complete,
verified file; a failed run leaves no output (temporary ``.wsideid-tmp-*``
files may remain only after SIGKILL) and never touches the input; a rerun
completes.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from wsideid.errors import WsideidError
from wsideid.pipeline import TMP_PREFIX, DeidOptions, deidentify, verify_output

CLI = [sys.executable, "-m", "wsideid.cli"]


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def big_svs(tmp_path_factory) -> Path:
    """A synthetic SVS large enough that writing and verifying take a measurable share of a CLI run."""
    from wsideid.synth import make_svs
    p = tmp_path_factory.mktemp("big") / "big.svs"
    make_svs(str(p), 3072, 2048)
    return p


BIG_ID = "BIG-1"  # the output's name (without --new-id it would be a pseudonym, random without a secret)


def _assert_output_whole_or_absent(src: Path, out: Path) -> bool:
    final = out / f"{BIG_ID}.svs"
    names = [n for n in os.listdir(out) if not n.startswith(TMP_PREFIX)]
    assert set(names) <= {final.name, final.name + ".audit.json"}, names
    if final.exists():
        rep = verify_output(src, final, DeidOptions(new_id=BIG_ID, verify="full"))
        assert rep.ok, [c for c in rep.checks if not c.ok]
        return True
    return False


def test_sigkill_at_random_points_leaves_whole_or_nothing(big_svs, tmp_path):
    """Kill the CLI after random delays spread over a full run; then a rerun (with --overwrite) completes."""
    before = _sha(big_svs)
    args = CLI + ["deid", str(big_svs), "--detect", "off", "--verify", "full", "--new-id", BIG_ID]
    t = time.perf_counter()
    ref = tmp_path / "ref"
    ref.mkdir()
    assert subprocess.run(args + ["-o", str(ref)], capture_output=True, timeout=120).returncode == 0
    full = time.perf_counter() - t
    rng = random.Random(6)
    seen = {"published": 0, "absent": 0}
    for k in range(6):
        out = tmp_path / f"o{k}"
        out.mkdir()
        p = subprocess.Popen(args + ["-o", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.3, 1.0) * full)
        p.send_signal(signal.SIGKILL)
        p.wait()
        seen["published" if _assert_output_whole_or_absent(big_svs, out) else "absent"] += 1
        rerun = subprocess.run(args + ["-o", str(out), "--overwrite"], capture_output=True, text=True, timeout=120)
        assert rerun.returncode == 0, rerun.stderr
        assert verify_output(big_svs, out / f"{BIG_ID}.svs", DeidOptions(new_id=BIG_ID, verify="full")).ok
    assert _sha(big_svs) == before
    print(seen)


@contextlib.contextmanager
def _tmpfs(path: Path, size: str, ro: bool = False):
    path.mkdir()
    opts = f"size={size}" + (",ro" if ro else "")
    if subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(path)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here (not root / no CAP_SYS_ADMIN)")
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], check=True)


def _assert_clean_failure(src: Path, out: Path, before: str, proc) -> None:
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert proc.stderr.startswith("wsideid: error:") and len(proc.stderr.splitlines()) == 1, proc.stderr
    assert [n for n in os.listdir(out) if n != "filler"] == []
    assert _sha(src) == before


def test_disk_full_on_a_small_tmpfs(synth_slides, tmp_path):
    src = synth_slides["aperio"]
    before = _sha(src)
    with _tmpfs(tmp_path / "small", "2m") as out:
        (out / "filler").write_bytes(b"\0" * (2 * 1024 * 1024 - os.path.getsize(src) // 2))
        p = subprocess.run(CLI + ["deid", str(src), "-o", str(out), "--detect", "off"],
                           capture_output=True, text=True, timeout=120)
        _assert_clean_failure(src, out, before, p)
        assert "space" in p.stderr


def test_read_only_output_folder(synth_slides, tmp_path):
    src = synth_slides["aperio"]
    before = _sha(src)
    with _tmpfs(tmp_path / "ro", "1m", ro=True) as out:
        p = subprocess.run(CLI + ["deid", str(src), "-o", str(out), "--detect", "off"],
                           capture_output=True, text=True, timeout=120)
        _assert_clean_failure(src, out, before, p)
        assert "read-only" in p.stderr.lower()


@pytest.mark.parametrize("where", ["write", "copy"])
def test_injected_enospc_is_a_one_line_error(synth_slides, tmp_path, monkeypatch, where):
    """Without root: ENOSPC injected into the writer's os.write / os.copy_file_range."""
    import wsideid.tiff.writer as writer
    src = synth_slides["hamamatsu"]
    before = _sha(src)

    def full(*a, **k):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    if where == "write":
        monkeypatch.setattr(writer.os, "write", full)
    else:
        monkeypatch.setattr(writer.os, "copy_file_range", full)
        monkeypatch.setattr(writer.os, "pread", full)
    with pytest.raises(WsideidError, match="space"):
        deidentify(src, tmp_path, DeidOptions(detect="off"))
    assert os.listdir(tmp_path) == [] and _sha(src) == before


def _append(src: Path) -> None:
    with open(src, "ab") as fh:
        fh.write(b"\0" * 16)


def _swap(src: Path) -> None:
    """Same size and content, new inode: a copy renamed over the input."""
    import shutil
    shutil.copy(src, src.with_suffix(".swap"))
    os.replace(src.with_suffix(".swap"), src)


@pytest.mark.parametrize("change", [_append, _swap], ids=["appended", "swapped"])
def test_input_changed_during_verification_is_refused(change, synth_slides, tmp_path, monkeypatch):
    """Another process changes the input while we verify: the run is refused and nothing is published."""
    import shutil

    import wsideid.pipeline as pipeline
    src = tmp_path / "in.svs"
    shutil.copy(synth_slides["aperio"], src)
    out = tmp_path / "out"
    out.mkdir()
    real_verify = pipeline._verify

    def verify_while_input_changes(*a, **k):
        change(src)
        return real_verify(*a, **k)
    monkeypatch.setattr(pipeline, "_verify", verify_while_input_changes)
    with pytest.raises(WsideidError, match="input changed"):
        deidentify(src, out, DeidOptions(detect="off"))
    assert os.listdir(out) == []


def test_audit_write_failure_is_a_one_line_error(synth_slides, tmp_path, monkeypatch):
    """ENOSPC while writing the audit record: a WsideidError and no temporary audit file left behind."""

    import wsideid.audit as audit

    def full(*a, **k):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    real_fdopen = audit.os.fdopen

    class Full:
        def __init__(self, fd, mode):
            self.fh = real_fdopen(fd, mode)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.fh.close()

        def write(self, data):
            full()
    monkeypatch.setattr(audit.os, "fdopen", Full)
    with pytest.raises(WsideidError, match="audit record"):
        deidentify(synth_slides["generic-tiff"], tmp_path, DeidOptions(detect="off"))
    assert not [n for n in os.listdir(tmp_path) if n.startswith(TMP_PREFIX)]


def test_stale_temps_of_dead_runs_are_cleaned_live_ones_kept(synth_slides, tmp_path):
    import socket
    host = socket.gethostname()
    dead = tmp_path / f"{TMP_PREFIX}aaaa@{host}@999999999"
    live = tmp_path / f"{TMP_PREFIX}bbbb@{host}@{os.getpid()}"
    remote = tmp_path / f"{TMP_PREFIX}cccc@another-host@999999999"
    for p in (dead, live, remote):
        p.write_bytes(b"partial")
    deidentify(synth_slides["generic-tiff"], tmp_path, DeidOptions(detect="off"))
    assert not dead.exists() and live.exists() and remote.exists()
