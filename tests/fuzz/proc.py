"""Run ``wsideid`` command lines as processes and judge them by the tool's promises on bad input.

The promises (docs/threat-model.md, the brief's rules) checked for every case:

- it ends: no hang past the time limit, no death by a signal;
- its peak RSS (the process and the children it waited for) stays <= 100 MB;
- a failure is exit 2/3 with exactly one stderr line ``wsideid: error: ...`` and no
  ``Traceback`` and no ``internal error`` (exit 70 is the tool's own "this is a bug");
- a failed ``deid`` leaves nothing in OUTDIR: no output, no audit, no temporary;
- a published output (exit 0) is alone with its audit in OUTDIR and holds no planted value;
- the input (file or folder) is byte-for-byte what it was.

``Runner`` talks to ``zygote.py`` (one import, a fork per case); ``Runner(fresh=True)``
starts ``python -m wsideid.cli`` per case instead, which is slower and used to
show the two agree.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

RSS_LIMIT_MB = 100
AS_LIMIT = 3 << 30  # address space: an allocation sized by a field fails instead of swapping the machine
SECRET = "hostile-harness-fixed-secret-0123456789abcdef"
ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Result:
    argv: list[str]
    rc: int
    timed_out: bool
    maxrss_mb: float
    seconds: float
    stdout: str
    stderr: str


class Violation(AssertionError):
    """The tool broke a promise on this input."""


def _env() -> dict[str, str]:
    tests = str(ROOT / "tests")
    path = os.pathsep.join([str(ROOT), tests] + [p for p in sys.path if p])
    return {**os.environ, "PYTHONPATH": path, "WSIDEID_SECRET": SECRET, "OPENBLAS_NUM_THREADS": "1",
            "OMP_NUM_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1"}


class Runner:
    """Runs command lines of the tool; one per test session (``close`` when done)."""

    def __init__(self, fresh: bool = False):
        self.fresh = fresh
        self.proc: subprocess.Popen | None = None
        self.tmp = Path(tempfile.mkdtemp(prefix="wsideid-hostile-io-"))
        self.n = 0
        self.deaths: list[int] = []

    def _server(self) -> subprocess.Popen:
        if self.proc is not None and self.proc.poll() is not None:
            self.deaths.append(self.proc.returncode)  # a case that kills its parent is a finding
        if self.proc is None or self.proc.poll() is not None:
            self.proc = subprocess.Popen([sys.executable, "-m", "fuzz.zygote"], stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, text=True, env=_env(), cwd=str(ROOT / "tests"))
            line = self.proc.stdout.readline()
            if "ready" not in line:
                raise RuntimeError(f"zygote did not start: {line!r}")
        return self.proc

    def run(self, argv: Sequence[str], cwd: str | os.PathLike, timeout: float = 60,
            env: dict[str, str] | None = None) -> Result:
        self.n += 1
        out, err = self.tmp / f"{self.n}.out", self.tmp / f"{self.n}.err"
        if self.fresh:
            res = self._run_fresh(argv, cwd, timeout, out, err, env)
        else:
            req = {"argv": list(argv), "cwd": str(cwd), "timeout": timeout, "as_limit": AS_LIMIT,
                   "stdout": str(out), "stderr": str(err), "env": env or {}}
            p = self._server()
            p.stdin.write(json.dumps(req) + "\n")
            p.stdin.flush()
            res = json.loads(p.stdout.readline())
        r = Result(list(argv), res["rc"], res["timed_out"], res["maxrss_kb"] / 1024, res["seconds"],
                   out.read_text(errors="replace"), err.read_text(errors="replace"))
        out.unlink(missing_ok=True)
        err.unlink(missing_ok=True)
        return r

    def _run_fresh(self, argv, cwd, timeout, out: Path, err: Path, env) -> dict:
        """``python -m wsideid.cli`` under the same limits, through the zygote's own wait logic."""
        import time

        start = time.monotonic()
        report = Path(str(err) + ".maxrss")
        launcher = [sys.executable, str(Path(__file__).with_name("launch.py")), str(report)]
        with open(out, "wb") as o, open(err, "wb") as e:
            p = subprocess.Popen([*launcher, sys.executable, "-m", "wsideid.cli", *argv], cwd=str(cwd), stdout=o,
                                 stderr=e,
                                 env={**_env(), **(env or {})}, start_new_session=True,
                                 preexec_fn=_limit_as)
            timed_out = False
            while True:
                got, status, usage = os.wait4(p.pid, os.WNOHANG)
                if got:
                    break
                if time.monotonic() - start > timeout:
                    timed_out = True
                    os.killpg(p.pid, 9)
                    got, status, usage = os.wait4(p.pid, 0)
                    break
                time.sleep(0.01)
            p.returncode = os.waitstatus_to_exitcode(status)
        # the tool's own peak, from the launcher (this worker's own high-water mark would be inherited)
        maxrss = int(report.read_text() or 0) if report.exists() else usage.ru_maxrss
        return {"rc": p.returncode, "timed_out": timed_out, "maxrss_kb": maxrss, "seconds": time.monotonic() - start}

    def close(self) -> None:
        if self.proc is not None:
            self.proc.stdin.close()
            self.proc.wait(timeout=30)
            self.proc = None
        for p in self.tmp.iterdir():
            p.unlink()
        self.tmp.rmdir()


def _limit_as() -> None:
    import resource
    resource.setrlimit(resource.RLIMIT_AS, (AS_LIMIT, AS_LIMIT))


# ------------------------------------------------------------------ the oracle

def tree_hash(path: str | os.PathLike) -> str:
    """Hash of a file, or of a folder's names and contents (an input must come back unchanged)."""
    p = Path(path)
    h = hashlib.sha256()
    if p.is_symlink() and not p.exists():
        return "dangling"
    if p.is_file():
        _hash_file(h, p)
    elif p.is_dir():
        for q in sorted(p.rglob("*")):
            h.update(os.fsencode(q.relative_to(p)))
            if q.is_file():
                _hash_file(h, q)
    return h.hexdigest()


def _hash_file(h, p: Path) -> None:
    """In 1 MB reads (a hostile input may be a 300 MB sparse file); a FIFO or device is not read."""
    try:
        with open(p, "rb") as fh:
            while chunk := fh.read(1 << 20):
                h.update(chunk)
    except OSError:
        h.update(b"<unreadable>")


def _needles_in(data: bytes, needles: Sequence[str]) -> list[str]:
    low = data.lower()
    return [n for n in needles if any(n.lower().encode(enc) in low for enc in ("utf-8", "utf-16-le", "utf-16-be"))]


def check_common(r: Result, what: str) -> None:
    """What holds for every command: it ends, it does not crash, it fits in memory, no traceback."""
    if r.timed_out:
        raise Violation(f"{what}: no result within the time limit (hang)")
    if r.rc < 0:
        raise Violation(f"{what}: killed by signal {-r.rc}; stderr={r.stderr[-300:]!r}")
    if r.rc in (70, 71) or "Traceback" in r.stderr or "internal error" in r.stderr:
        raise Violation(f"{what}: internal error (exit {r.rc}): {r.stderr.strip()[-400:]}")
    if r.maxrss_mb > RSS_LIMIT_MB:
        raise Violation(f"{what}: peak RSS {r.maxrss_mb:.0f} MB > {RSS_LIMIT_MB} MB")


def check_one_line_error(r: Result, what: str) -> None:
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    if len(lines) != 1 or not lines[0].startswith("wsideid: error: "):
        raise Violation(f"{what}: exit {r.rc} without one 'wsideid: error:' line: {r.stderr[-400:]!r}")


def listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) if folder.exists() else []


def check_batch(r: Result, out: Path, needles: Sequence[str], what: str) -> dict[str, str]:
    """A batch (``run``, or ``deid`` on a folder of slides, which a damaged DICOM series may become)
    fails per row, never as a whole: no internal error; OUTDIR holds the batch files and, for each
    published row, its output and audit (checked as a single run's), nothing of a failed row.
    Returns new_id -> status."""
    import csv

    check_common(r, what)
    if r.rc not in (0, 1, 2):
        raise Violation(f"{what}: batch exit {r.rc}: {r.stderr[-300:]!r}")
    with open(out / "batch-summary.csv", newline="") as fh:
        rows = {row["new_id"]: row for row in csv.DictReader(fh)}
    expected = {"batch.json", "batch-summary.csv"}
    for row in rows.values():
        if row["status"] == "published":
            expected |= {row["output"], row["output"] + ".audit.json"}
            if os.path.isdir(out / row["output"]):
                expected |= {os.path.join(row["output"], n) for n in os.listdir(out / row["output"])}
        elif row["error_kind"] == "internal":
            raise Violation(f"{what}: row {row['row']} failed with an internal error")
    left = set(listing(out))
    if left != expected:
        raise Violation(f"{what}: batch OUTDIR holds {sorted(left - expected)} beside its outputs")
    for name in expected:
        p = out / name
        if p.is_file():
            leaked = _needles_in(p.read_bytes(), needles)
            if leaked:
                raise Violation(f"{what}: batch output {name} holds {leaked}")
    return {k: v["status"] for k, v in rows.items()}


def check_deid(r: Result, out: Path, needles: Sequence[str], what: str) -> str:
    """The deid oracle; returns the outcome (published/flagged/refused, or batch)."""
    check_common(r, what)
    if r.stdout.startswith("batch:"):
        check_batch(r, out, needles, what)
        return "batch"
    left = listing(out)
    if r.rc == 0:
        top = list(out.iterdir())
        audits = [p for p in top if p.name.endswith(".audit.json")]
        main = out / audits[0].name[: -len(".audit.json")] if len(audits) == 1 else None
        if main is None or not main.exists():
            raise Violation(f"{what}: published, but OUTDIR holds {left}")
        companions = [p for p in top if p not in (main, *audits)]  # a MIRAX slide's folder, nothing else
        if any(c.name != main.stem or not c.is_dir() or not main.is_file() for c in companions):
            raise Violation(f"{what}: published, but OUTDIR holds {left}")
        blobs = [p for c in (main, *companions) for p in ([c] if c.is_file() else c.rglob("*")) if p.is_file()]
        for b in blobs + audits:
            leaked = _needles_in(b.read_bytes(), needles)
            if leaked:
                raise Violation(f"{what}: published {b.name} holds {leaked}")
        return "published"
    if r.rc == 1:
        if [x for x in left if not x.startswith(".")]:
            raise Violation(f"{what}: flagged, but OUTDIR holds {left}")
        return "flagged"
    if r.rc in (2, 3):
        check_one_line_error(r, what)
        if left:
            raise Violation(f"{what}: failed ({r.stderr.strip()}) but left {left} in OUTDIR")
        return "refused"
    raise Violation(f"{what}: unexpected exit {r.rc}: {r.stderr[-300:]!r}")


def check_inspect(r: Result, what: str) -> str:
    check_common(r, what)
    if r.rc == 0:
        return "ok"
    if r.rc == 2:
        check_one_line_error(r, what)
        return "refused"
    raise Violation(f"{what}: unexpected exit {r.rc}: {r.stderr[-300:]!r}")


def check_scan(r: Result, what: str) -> str:
    """``scan`` reports a bad file as an error row on stdout and exits 2; stderr stays quiet or one line."""
    check_common(r, what)
    if r.rc not in (0, 1, 2):
        raise Violation(f"{what}: unexpected exit {r.rc}: {r.stderr[-300:]!r}")
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    if len(lines) > 1:
        raise Violation(f"{what}: {len(lines)} stderr lines: {r.stderr[-400:]!r}")
    return {0: "clean", 1: "phi", 2: "refused"}[r.rc]
