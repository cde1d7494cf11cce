"""CPU and wall time of `wsideid scan LABEL` as a fresh process, per label image.

What a QC rescan or a batch scan pays per label: interpreter start, imports,
barcodes, tesseract, the PP-OCR worker. CPU seconds (user + system of the
process and every child it waited for, from wait4) are what a loaded, shared
machine distorts least; wall time is printed beside them. Pinned to one core
unless --all-cores (the issue's budget is "per label on one core").

Usage: python bench/labels/bench_scan_process.py [--rounds 3] [--tree DIR] [IMAGE ...]
       (default images: the real label photos of ../shared/testdata/labels)
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def run_once(tree: Path, image: Path) -> tuple[float, float, int]:
    """(CPU s, wall s, peak RSS MB) of one `wsideid scan IMAGE` process."""
    env = dict(os.environ, PYTHONPATH=str(tree))
    code = "import sys; from wsideid.cli import main; sys.exit(main())"
    t0 = time.perf_counter()
    # cwd = the tree: `python -c` puts the working directory first on sys.path
    proc = subprocess.Popen([sys.executable, "-c", code, "scan", str(image.resolve())], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, env=env, cwd=tree)
    _, status, ru = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    err = proc.stderr.read().decode() if proc.stderr else ""
    if os.waitstatus_to_exitcode(status) not in (0, 1):  # 1: PHI found
        raise RuntimeError(f"scan failed on {image.name}: {err.strip()[:200]}")
    return ru.ru_utime + ru.ru_stime, wall, ru.ru_maxrss // 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("images", nargs="*", type=Path)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--tree", type=Path, default=HERE.parents[1], help="source tree to run (default: this one)")
    ap.add_argument("--all-cores", action="store_true")
    a = ap.parse_args()
    if not a.all_cores and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    images = a.images
    if not images:
        real = Path(os.environ.get("WSIDEID_TESTDATA", HERE.parents[1] / "../shared/testdata")) / "labels"
        images = sorted(p for p in real.glob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
        if not images:
            raise SystemExit(f"bench_scan_process: no label images in {real} (name them as arguments)")
    print(f"tree {a.tree}, {a.rounds} rounds, load {os.getloadavg()[0]:.1f}")
    print("| image | CPU s median (min) | wall s median | peak RSS MB |")
    print("|---|---|---|---|")
    cpus = []
    for image in images:
        runs = [run_once(a.tree, image) for _ in range(a.rounds)]
        cpu = [r[0] for r in runs]
        cpus += cpu
        print(f"| {image.name} | {statistics.median(cpu):.2f} ({min(cpu):.2f}) | "
              f"{statistics.median(r[1] for r in runs):.2f} | {max(r[2] for r in runs)} |")
    print(f"| all | {statistics.median(cpus):.2f} (mean {statistics.mean(cpus):.2f}) | | |")


if __name__ == "__main__":
    main()
