"""Peak memory and time of `wsideid deid` on the hostile-size files of issue 17 (item 5).

    PYTHONPATH=. .venv/bin/python bench/bench_budgets.py [--scale 1.0] [--only NAME] [--timeout 600]

Each case is generated into a temp folder (tests/hostile_sizes.py), run
through the real CLI in a child process, and measured with wait4(): the
peak RSS reported is the largest of that process and every process it
waited for (RUSAGE_CHILDREN of a per-case wrapper), so a helper process
(OpenSlide, tesseract) counts too. Prints exit code, first stderr line,
seconds, peak MB and the size of whatever landed in the output folder.
``--scale`` shrinks every case (0.1 = a tenth) for a quick look.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import hostile_sizes as hs  # noqa: E402

DICOM_SEED = Path(__file__).resolve().parents[2] / "shared" / "testdata" / "dicom" / "openslide-python_boxes_0.dcm"

# A wrapper that runs the CLI as its child and reports the children's peak RSS:
# the CLI and everything it starts, nothing of this bench process.
WRAP = r"""
import resource, subprocess, sys, time
t = time.monotonic()
p = subprocess.run(sys.argv[1:], capture_output=True, text=True)
ru = resource.getrusage(resource.RUSAGE_CHILDREN)
err = (p.stderr.strip().splitlines() or [""])
print(p.returncode, round(time.monotonic() - t, 2), ru.ru_maxrss // 1024, len(err), err[-1][:150], sep="\t")
"""


def cases(scale: float):
    s = scale
    return [
        ("tags-1000x4000", lambda p: hs.many_tags(p, max(1, int(1000 * s)), 4000), ".tif"),
        ("aperio-480MB", lambda p: hs.aperio_description(p, int(480e6 * s)), ".svs"),
        ("aperio-30MB", lambda p: hs.aperio_description(p, int(30e6 * s)), ".svs"),
        ("tiles-16.7M", lambda p: hs.shared_tiles(p, max(1, int(4096 * s ** 0.5))), ".tif"),
        ("dicom-100MB-private-value", lambda p: hs.dicom_big_value(p, DICOM_SEED, int(100e6 * s)), ".dcm"),
        ("dicom-2M-elements", lambda p: hs.dicom_many_elements(p, DICOM_SEED, int(2e6 * s)), ".dcm"),
    ]


REAL = ["svs/CMU-1-Small-Region.svs", "svs/tcga-cr-7395-01a-01-ts1.svs", "ndpi/test3-TRITC-2-560.ndpi",
        "tiff/openslide-python_boxes.tiff", "dicom/wsi2dcm_jpeg2000.dcm", "dicom/wsi2dcm_jpeg.dcm"]


def real(timeout: float) -> int:
    print("slide\tdetect\texit\tseconds\tpeak_MB")
    for rel in REAL:
        src = DICOM_SEED.parents[1] / rel
        if not src.exists():
            continue
        for detect in ("residual", "off"):
            with tempfile.TemporaryDirectory(prefix="wsideid-bench-") as td:
                out = Path(td) / "out"
                out.mkdir()
                cmd = [sys.executable, "-c", WRAP, sys.executable, "-m", "wsideid.cli", "deid", str(src),
                       "-o", str(out), "--detect", detect]
                p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=td)
                rc, secs, peak, _, _ = p.stdout.rstrip("\n").split("\t", 4)
                print(f"{rel}\t{detect}\t{rc}\t{secs}\t{peak}", flush=True)
    return 0


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--only", default=None)
    ap.add_argument("--timeout", type=float, default=900)
    ap.add_argument("--real", action="store_true", help="measure the real slides of ../shared/testdata instead "
                    "(target: <= 100 MB each), with the default detectors")
    args = ap.parse_args()
    if args.real:
        return real(args.timeout)
    env = dict(os.environ)
    print("case\tfile_MB\texit\tseconds\tpeak_MB\toutput_MB\tstderr(last line)")
    for name, make, suffix in cases(args.scale):
        if args.only and args.only not in name:
            continue
        with tempfile.TemporaryDirectory(prefix="wsideid-bench-") as td:
            src = make(Path(td) / f"hostile{suffix}")
            out = Path(td) / "out"
            out.mkdir()
            cmd = [sys.executable, "-c", WRAP, sys.executable, "-m", "wsideid.cli", "deid", str(src),
                   "-o", str(out), "--detect", "off"]
            try:
                p = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout, env=env, cwd=td)
                rc, secs, peak, nlines, last = p.stdout.rstrip("\n").split("\t", 4)
            except subprocess.TimeoutExpired:
                rc, secs, peak, nlines, last = "timeout", str(args.timeout), "?", "0", ""
            outmb = sum(f.stat().st_size for f in out.rglob("*") if f.is_file()) / 1e6
            print(f"{name}\t{src.stat().st_size / 1e6:.1f}\t{rc}\t{secs}\t{peak}\t{outmb:.1f}\t"
                  f"[{nlines} line(s)] {last}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
