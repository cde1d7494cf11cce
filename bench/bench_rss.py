"""Benchmark: peak RSS of every process of ``wsideid deid SLIDE -o OUT --new-id R-1`` (issue 17).

The budget is per process: the main process and each child it starts (the
PP-OCR worker, tesseract, dciodvfy) must each stay <= 100 MB on a real
slide. This prints, for each real slide in the test data folder
(``$WSIDEID_TESTDATA``, else ``../shared/testdata``) and for synthetic SVS
slides of the given sizes, the peak RSS of the main process and the largest
of each kind of child.

How each figure is taken (exact, not sampled, where it can be):

- every Python process of the run (the CLI and the PP-OCR worker, which
  inherits the environment) loads a ``sitecustomize`` from a folder put
  first on ``PYTHONPATH``; at exit it appends its own ``VmHWM`` (the
  kernel's high-water mark of its RSS) to a log;
- other children (tesseract, dciodvfy) are sampled every few ms with
  psutil (their ``VmHWM`` while alive), so a very short one may be missed;
- ``wait4`` on the CLI gives the largest ``ru_maxrss`` of the whole tree,
  a cross-check of the two above.

``--trace`` also samples the CLI's own RSS and its threads' innermost
``wsideid`` frames every 5 ms and prints where RSS grew (stage attribution).
Nothing is asserted: the figures are for people.

    nice .venv/bin/python bench/bench_rss.py            # real slides and a 1 GB SVS
    nice .venv/bin/python bench/bench_rss.py --sizes 0.2,1 --only svs
    nice .venv/bin/python bench/bench_rss.py --sizes 2,7,14 --noise 60 --only rss- --workdir W   # 1.7, 6, 12 GB

A slide built in ``--workdir`` is kept there for the next run (delete it when done).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

# The real slides of issue 17, relative to the test data folder.
REAL_SLIDES = [
    "svs/CMU-1-Small-Region.svs",
    "svs/tcga-cr-7395-01a-01-ts1.svs",
    "ndpi/test3-TRITC-2-560.ndpi",
    "tiff/libvips_subifd_pyramid_cmu1_small.tif",
    "tiff/large_image_converter_cmu1_small.tiff",
    "ome-tiff/aics_s_1_t_1_c_1_z_1.ome.tiff",
    "ome-tiff/viv_multi-channel.ome.tif",
    "ome-tiff/qupath_cells.ome.tif",
    "dicom/wsi2dcm_jpeg.dcm",
    "dicom/wsi2dcm_jpeg2000.dcm",
    "dicom/mi_multi_frame_jpeg_camelyon_challenge_image.dcm",
    "dicom/highdicom_sm_image.dcm",
]

SITECUSTOMIZE = r'''
"""Written by bench_rss.py: each Python process logs its own peak RSS at exit."""
import atexit, os, sys

_LOG = os.environ.get("WSIDEID_RSS_LOG")


def _role():
    argv = " ".join(getattr(sys, "orig_argv", sys.argv))
    if "wsideid.detect.ppocr" in argv:
        return "ppocr-worker"
    if "wsideid.dicom.readers" in argv:
        return "readers-child"
    if "wsideid.cli" in argv:
        return "main"
    return "python:" + argv[-60:]


def _peak():
    kb = 0
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM"):
                kb = int(line.split()[1])
    with open(_LOG, "a") as fh:
        fh.write("%d\t%d\t%d\t%s\n" % (os.getpid(), os.getppid(), kb, _role()))


if _LOG:
    atexit.register(_peak)
    if os.environ.get("WSIDEID_RSS_TRACE") and "wsideid.detect.ppocr" not in " ".join(getattr(sys, "orig_argv", [])):
        import threading, time
        _trace = []

        def _sample():
            here = os.path.sep + "wsideid" + os.path.sep
            while True:
                with open("/proc/self/statm") as fh:
                    rss = int(fh.read().split()[1]) * 4
                where = []
                for tid, frame in sys._current_frames().items():
                    if tid == threading.get_ident():
                        continue
                    f, name = frame, None
                    while f is not None:
                        if here in f.f_code.co_filename:
                            name = "%s:%s" % (os.path.basename(f.f_code.co_filename), f.f_code.co_name)
                            break
                        f = f.f_back
                    if name:
                        where.append(name)
                _trace.append((time.perf_counter(), rss, ",".join(sorted(where))))
                time.sleep(0.005)

        def _dump():
            with open(_LOG + ".trace", "w") as fh:
                for t, rss, where in _trace:
                    fh.write("%.4f\t%d\t%s\n" % (t, rss, where))

        threading.Thread(target=_sample, daemon=True).start()
        atexit.register(_dump)
'''


@dataclass
class Run:
    """Peaks (MB) of one CLI run: per role the largest process of that role."""

    peaks: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    tree_max: float = 0.0
    wall: float = 0.0
    exit_code: int = 0
    stderr: str = ""

    def add(self, role: str, mb: float) -> None:
        self.peaks[role] = max(self.peaks.get(role, 0.0), mb)
        self.counts[role] = self.counts.get(role, 0) + 1


def _hwm_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmHWM"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def measure(argv: list[str], env: dict[str, str] | None = None, trace: bool = False) -> Run:
    """Run ``python -m wsideid.cli ARGV`` and take the peak RSS of each of its processes."""
    import psutil

    work = Path(tempfile.mkdtemp(prefix="rss-"))
    (work / "sitecustomize.py").write_text(SITECUSTOMIZE)
    log = work / "peaks.tsv"
    env = dict(env if env is not None else os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(work), env.get("PYTHONPATH", str(ROOT))])
    env["WSIDEID_RSS_LOG"] = str(log)
    if trace:
        env["WSIDEID_RSS_TRACE"] = "1"
    run = Run()
    t0 = time.perf_counter()
    # cwd: ``-m`` puts the working folder first on the path, before PYTHONPATH (a baseline tree)
    proc = subprocess.Popen([sys.executable, "-m", "wsideid.cli", *argv], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, env=env, cwd=work)
    others: dict[int, tuple[str, int]] = {}
    done = threading.Event()

    def sample() -> None:
        try:
            top = psutil.Process(proc.pid)
        except psutil.Error:
            return
        while not done.is_set():
            try:
                kids = top.children(recursive=True)
            except psutil.Error:
                kids = []
            for k in kids:
                try:
                    name = k.name()
                except psutil.Error:
                    continue
                if name.startswith("python"):
                    continue  # logged exactly by sitecustomize
                kb = _hwm_kb(k.pid)
                if kb:
                    others[k.pid] = (name, max(kb, others.get(k.pid, (name, 0))[1]))
            time.sleep(0.003)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    stderr = proc.stderr.read().decode("utf-8", "replace") if proc.stderr else ""
    _, status, ru = os.wait4(proc.pid, 0)
    done.set()
    sampler.join()
    run.wall = time.perf_counter() - t0
    run.exit_code = os.waitstatus_to_exitcode(status)
    run.stderr = stderr
    run.tree_max = ru.ru_maxrss / 1024
    if log.exists():
        for line in log.read_text().splitlines():
            _pid, _ppid, kb, role = line.split("\t", 3)
            run.add(role, int(kb) / 1024)
    for name, kb in others.values():
        run.add(name, kb / 1024)
    if trace and Path(str(log) + ".trace").exists():
        _print_trace(Path(str(log) + ".trace"))
    shutil.rmtree(work, ignore_errors=True)
    return run


def _print_trace(path: Path, step_mb: float = float(os.environ.get("RSS_STEP_MB", "3"))) -> None:
    """Where the CLI's RSS rose by ``step_mb`` or more since the last printed point."""
    rows = [line.split("\t") for line in path.read_text().splitlines()]
    if not rows:
        return
    t0 = float(rows[0][0])
    last, top = 0.0, 0.0
    for t, kb, where in ((float(r[0]), int(r[1]), r[2] if len(r) > 2 else "") for r in rows):
        mb = kb / 1024
        if mb - last >= step_mb or mb < last - step_mb:
            print(f"      {t - t0:7.2f}s {mb:6.1f} MB  {where or '-'}")
            last = mb
        top = max(top, mb)
    print(f"      (sampled max {top:.1f} MB)")


def testdata() -> Path:
    env = os.environ.get("WSIDEID_TESTDATA")
    return Path(env) if env else ROOT.parent / "shared" / "testdata"


def build_synthetic(work: Path, gb: float, noise: int = 25) -> Path:
    """A synthetic SVS of about ``gb`` x 0.86 GB (``synth_large.build_svs``); ``noise`` sets the tiles'
    size (25: ~28 KB, 60: ~42 KB). Every tile holds a whole JPEG header (~610 bytes), and the
    residual scan allows 256 MB of non-pixel bytes, headers counted each time: at 28 KB a slide
    of ~11 GB or more is refused for it, at 42 KB one of ~16 GB."""
    src = work / (f"rss-{gb:g}GB.svs" if noise == 25 else f"rss-{gb:g}GB-n{noise}.svs")
    if not src.exists():
        code = ("import sys; sys.path.insert(0, %r); from wsideid.synth_large import build_svs; "
                "print(build_svs(sys.argv[1], float(sys.argv[2]) * 1024, noise=int(sys.argv[3])), 'tiles')") % str(ROOT)
        subprocess.run([sys.executable, "-c", code, str(src), str(gb), str(noise)], check=True)  # a child: this process stays small
    return src


def deid_argv(src: Path, out: Path, extra: list[str]) -> list[str]:
    return ["deid", str(src), "-o", str(out), "--new-id", "R-1", "--overwrite", *extra]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1", help="synthetic SVS sizes in GB, comma separated ('' for none)")
    ap.add_argument("--only", default=None, help="comma-separated substrings of slide names to run")
    ap.add_argument("--extra", default="", help="extra CLI options, e.g. '--detect off'")
    ap.add_argument("--noise", type=int, default=25, help="synthetic tiles' noise: 25 (~28 KB tiles) or 60 (~42 KB, "
                    "for slides of 12 GB and more, under the residual scan's limit on tile headers)")
    ap.add_argument("--trace", action="store_true", help="print where the main process's RSS grew")
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--json", action="store_true", help="one JSON line per slide instead of the table")
    args = ap.parse_args()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="wsideid-rss-"))
    work.mkdir(parents=True, exist_ok=True)
    slides: list[Path] = [testdata() / s for s in REAL_SLIDES if (testdata() / s).exists()]
    for gb in [float(x) for x in args.sizes.split(",") if x.strip()]:
        slides.append(build_synthetic(work, gb, args.noise))
    if args.only:
        wanted = [w.strip() for w in args.only.split(",") if w.strip()]
        slides = [s for s in slides if any(w in str(s) for w in wanted)]
    extra = args.extra.split()
    print(f"machine: {os.cpu_count()} cores; load {' '.join(f'{x:.1f}' for x in os.getloadavg())};"
          f" command: wsideid {' '.join(deid_argv(Path('SLIDE'), Path('OUT'), extra))}")
    if not args.json:
        print(f"  {'slide':<52} {'main':>6} {'ppocr':>6} {'tesser':>6} {'reader':>6} {'other':>6} {'tree':>6}"
              f" {'wall s':>7}  exit")
    for src in slides:
        run_dir = Path(tempfile.mkdtemp(prefix="run-", dir=work))  # fresh output and review folders
        out = run_dir / "out"
        out.mkdir()
        r = measure(deid_argv(src, out, extra), trace=args.trace)
        name = src.name if src.parent == work else str(src.relative_to(testdata()))
        named = ("main", "ppocr-worker", "tesseract", "readers-child")
        other = max([v for k, v in r.peaks.items() if k not in named], default=0.0)
        if args.json:
            print(json.dumps({"slide": name, "peaks_mb": r.peaks, "counts": r.counts, "tree_max_mb": r.tree_max,
                              "wall_s": round(r.wall, 2), "exit": r.exit_code}))
        else:
            print(f"  {name:<52} {r.peaks.get('main', 0):6.1f} {r.peaks.get('ppocr-worker', 0):6.1f}"
                  f" {r.peaks.get('tesseract', 0):6.1f} {r.peaks.get('readers-child', 0):6.1f} {other:6.1f}"
                  f" {r.tree_max:6.1f} {r.wall:7.1f}  {r.exit_code}"
                  + (f"  others: { {k: round(v, 1) for k, v in r.peaks.items() if k not in named} }" if other else ""))
        if r.exit_code not in (0, 3):
            print("    " + r.stderr.strip().splitlines()[-1][:200] if r.stderr.strip() else "    (no stderr)")
        sys.stdout.flush()
        shutil.rmtree(run_dir, ignore_errors=True)
    if not args.workdir:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
