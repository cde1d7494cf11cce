"""Batch throughput: slides per minute for 1 and 2 jobs on the sample batch.

The sample batch is the demo's (synthetic SVS, NDPI and generic TIFF with
planted PHI, one SVS with its macro kept), repeated to ``--copies`` copies
so that process start-up is amortised. Detectors run as in a default batch
(``--detect all``, OCR on) unless ``--no-ocr``/``--detect`` say otherwise.

    .venv/bin/python bench/bench_batch.py [--copies 4] [--detect all] [--no-ocr] [--jobs 1,2]

With two or more job counts, the wall times are fitted to Amdahl's law
(t = serial + parallel / jobs, least squares over jobs <= cores) and the
throughput on 16 cores is projected from the fit: a projection, assuming
the disk keeps up and the per-slide work splits as it did here.
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import tempfile
import time

from wsideid.batch.runner import BatchOptions, run_batch
from wsideid.demo import make_samples


def sample_batch(folder: str, copies: int) -> str:
    manifest, rows = make_samples(folder)
    rows = [r for r in rows if not r["source"].startswith("..")]
    out = []
    for c in range(copies):
        for r in rows:
            src = r["source"]
            if c:
                base, ext = os.path.splitext(src)
                src = f"{base}-copy{c}{ext}"
                orig = os.path.join(folder, r["source"])
                if os.path.isdir(orig):  # a DICOM series folder
                    shutil.copytree(orig, os.path.join(folder, src))
                else:
                    shutil.copyfile(orig, os.path.join(folder, src))
            out.append({**r, "source": src, "new_id": f"{r['new_id']}-{c}"})
    with open(manifest, "w", newline="") as fh:
        w = csv.DictWriter(fh, list(out[0]))
        w.writeheader()
        w.writerows(out)
    return manifest


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--copies", type=int, default=4)
    ap.add_argument("--detect", default="all", choices=["off", "residual", "all"])
    ap.add_argument("--no-ocr", action="store_true")
    ap.add_argument("--jobs", default="1,2", help="comma-separated job counts to sweep")
    args = ap.parse_args()
    sweep = [int(j) for j in args.jobs.split(",")]
    times: dict[int, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        manifest = sample_batch(tmp, args.copies)
        n = sum(1 for _ in open(manifest)) - 1
        print(f"sample batch: {n} slides, detect={args.detect}, ocr={not args.no_ocr}, {os.cpu_count()} CPUs")
        for jobs in sweep:
            out = os.path.join(tmp, f"out-{jobs}")
            t = time.perf_counter()
            res = run_batch(manifest, out, BatchOptions(jobs=jobs, detect=args.detect, ocr=not args.no_ocr,
                                                        progress=False))
            dt = time.perf_counter() - t
            times[jobs] = dt
            print(f"  jobs={jobs}: {dt:6.1f} s, {n / dt * 60:6.1f} slides/min  {res.counts}  load {_load()}")
            res2 = run_batch(manifest, out, BatchOptions(jobs=jobs, detect=args.detect, ocr=not args.no_ocr,
                                                         progress=False))
            failed = [r for r in res.rows if r.get("status") == "failed"]
            for r in failed:  # a failed slide is retried by the rerun, not skipped
                print(f"    failed: row {r.get('row')}: {r.get('error_kind') or 'no reason recorded'} (the message is in the review folder's record)")
            assert res2.skipped == n - len(failed), (res2.skipped, n, len(failed))
        fit = [(j, t) for j, t in times.items() if j <= (os.cpu_count() or 1)]
        if len(fit) >= 2:
            serial, parallel = _amdahl(fit)
            for cores in (os.cpu_count() or 1, 16):
                t16 = serial + parallel / cores
                print(f"  Amdahl fit: serial {serial:.1f} s + parallel {parallel:.1f} s / jobs;"
                      f" projected on {cores} cores: {n / t16 * 60:.1f} slides/min")


def _load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def _amdahl(points: list[tuple[int, float]]) -> tuple[float, float]:
    """Least-squares (serial, parallel) for t = serial + parallel / jobs; neither below 0."""
    xs = [1 / j for j, _ in points]
    ys = [t for _, t in points]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx if sxx else 0.0
    slope = max(slope, 0.0)
    return max(my - slope * mx, 0.0), slope


if __name__ == "__main__":
    main()
