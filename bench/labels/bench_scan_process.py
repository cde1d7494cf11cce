"""CPU and wall time of `wsideid scan LABEL` as a fresh process, per label image.

What a QC rescan or a batch scan pays per label: interpreter start, imports,
barcodes, tesseract, the PP-OCR worker. CPU seconds (user + system of the
process and every child it waited for, from wait4) are what a loaded, shared
machine distorts least; wall time is printed beside them. Pinned to one core
unless --all-cores (the issue's budget is "per label on one core": <= 0.6 CPU s,
median over a set of labels).

Each tree is byte-compiled first (``compileall``): an installed package has its
``.pyc`` files, while a work tree run with PYTHONDONTWRITEBYTECODE=1 (as here)
would compile every module in every process (~35 ms of CPU a scan). With two
trees (``--tree A --tree B``) the runs alternate image by image and round by round,
so a change of the machine's load falls on both alike.

``--both`` runs every image pinned and unpinned in turn (the same alternation), and prints a
table for each.

Usage: python bench/labels/bench_scan_process.py [--rounds 3] [--tree DIR ...] [--core N]
           [--all-cores | --both] [--labels DIR] [IMAGE ...]
       (default images: the real label photos of ../shared/testdata/labels, plus
       every image in --labels, e.g. labels written by bench_detectors.py --work)
"""
from __future__ import annotations

import argparse
import compileall
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
TARGET_CPU_S = 0.6  # issue 14: per label image, one core, median over a set
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


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


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) by linear interpolation between order statistics."""
    v = sorted(values)
    if not v:
        raise ValueError("no values")
    pos = q * (len(v) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (pos - lo)


def summary(cpu: list[float], wall: list[float]) -> str:
    """One line: median / p95 of CPU and wall seconds, and the CPU median's ratio to the target."""
    med = statistics.median(cpu)
    return (f"CPU s median {med:.2f}, p95 {percentile(cpu, 0.95):.2f}; wall s median "
            f"{statistics.median(wall):.2f}, p95 {percentile(wall, 0.95):.2f}; "
            f"median / {TARGET_CPU_S} s target = {med / TARGET_CPU_S:.2f}")


def default_images(labels: Path | None) -> list[Path]:
    real = Path(os.environ.get("WSIDEID_TESTDATA", HERE.parents[1] / "../shared/testdata")) / "labels"
    folders = [real] + ([labels] if labels else [])
    return sorted(p for f in folders for p in f.glob("*") if p.suffix.lower() in IMAGE_SUFFIXES)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("images", nargs="*", type=Path)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--tree", type=Path, action="append",
                    help="source tree to run (default: this one); twice to compare two trees")
    ap.add_argument("--labels", type=Path, help="also every label image in this folder")
    ap.add_argument("--core", type=int, help="the core to pin to (default: the first allowed)")
    ap.add_argument("--all-cores", action="store_true")
    ap.add_argument("--both", action="store_true", help="pinned and unpinned, alternating")
    a = ap.parse_args()
    trees = a.tree or [HERE.parents[1]]
    allowed = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_setaffinity") else []
    core = a.core if a.core is not None else (allowed[0] if allowed else None)
    modes = ["pinned", "unpinned"] if a.both else (["unpinned"] if a.all_cores or not allowed else ["pinned"])
    images = a.images or default_images(a.labels)
    if not images:
        raise SystemExit("bench_scan_process: no label images (name them as arguments or give --labels)")
    for tree in trees:
        compileall.compile_dir(str(tree / "wsideid"), quiet=1)
    load0 = os.getloadavg()
    print(f"{len(images)} images, {a.rounds} rounds, {' and '.join(modes)}, load at start {load0[0]:.1f}")
    runs = {(m, t): {i: [] for i in images} for m in modes for t in trees}
    for _ in range(a.rounds):
        for image in images:
            for mode in modes:
                if allowed:
                    os.sched_setaffinity(0, {core} if mode == "pinned" else set(allowed))
                for tree in trees:
                    runs[mode, tree][image].append(run_once(tree, image))
    for (mode, tree), per_image in runs.items():
        print(f"\ntree {tree}, {mode}" + (f" (core {core})" if mode == "pinned" else ""))
        print("| image | CPU s median (min, p95) | wall s median (p95) | peak RSS MB |")
        print("|---|---|---|---|")
        for image, rs in per_image.items():
            cpu, wall = [r[0] for r in rs], [r[1] for r in rs]
            print(f"| {image.name} | {statistics.median(cpu):.2f} ({min(cpu):.2f}, {percentile(cpu, 0.95):.2f}) | "
                  f"{statistics.median(wall):.2f} ({percentile(wall, 0.95):.2f}) | {max(r[2] for r in rs)} |")
        every = [r for rs in per_image.values() for r in rs]
        print(f"all {len(every)} runs: {summary([r[0] for r in every], [r[1] for r in every])}")
    print(f"load at end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
