"""Benchmark: ``wsideid deid`` on a large DICOM WSI folder against ``cp -r`` of the same folder.

Issue 14 defines the speed target on a 2 GB SVS (bench_deid.py); repositories
run DICOM, so this prints the same figures for a DICOM folder: the bench SVS
converted once by wsidicomizer (tiles copied, no label or overview), then, in
alternating pairs (each wsideid run right after a cp of the same folder), the
best wall time, its ratio to the cp before it, the least CPU seconds and the
peak RSS of the run's process tree, for the defaults and ``--detect off``;
with ``--baseline TREE`` each contender also runs from that source tree (e.g.
a checkout of main), alternating with this one, under the same load. The
machine's load average is printed with each round and the table; the peak RSS
of the main process and of its largest child comes from one untimed run each
(``bench_rss.measure``). Nothing is asserted.

    nice .venv/bin/python bench/bench_deid.py --build /work/bench/bench-2GB.svs 2   # once
    nice .venv/bin/python bench/bench_dicom_deid.py --svs /work/bench/bench-2GB.svs --rounds 3 --baseline /work/main
"""

from __future__ import annotations

import argparse
import base64
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from bench_deid import compile_tree, process_peaks, timed, tree_env  # noqa: E402

CONTENDERS = {"defaults": [], "--detect off": ["--detect", "off"]}


def convert(svs: str, folder: str) -> None:
    """The DICOM folder wsidicomizer makes of ``svs`` (in a child: the parent's RSS stays small)."""
    code = ("import sys; from wsidicomizer import WsiDicomizer; WsiDicomizer.convert(sys.argv[1], sys.argv[2],"
            " include_label=False, include_overview=False, workers=1)")
    subprocess.run([sys.executable, "-c", code, svs, folder], check=True)


def folder_size(folder: str) -> int:
    return sum(os.path.getsize(os.path.join(folder, n)) for n in os.listdir(folder))


def _load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--svs", required=True, help="the SVS to convert (e.g. bench_deid.py's bench-2GB.svs)")
    ap.add_argument("--workdir", default=None, help="where the DICOM folder is kept between runs (default: beside --svs)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--baseline", default=None, metavar="TREE",
                    help="a source tree (e.g. a main checkout) whose contenders alternate with this tree's")
    ap.add_argument("--only", default=None, help="run only the contenders whose name holds this")
    ap.add_argument("--no-peaks", action="store_true", help="skip the untimed per-process RSS runs")
    args = ap.parse_args()
    work = Path(args.workdir or Path(args.svs).parent)
    src = work / (Path(args.svs).stem + "-dicom")
    if not src.is_dir() or not os.listdir(src):
        shutil.rmtree(src, ignore_errors=True)
        convert(args.svs, str(src))
    key = work / "bench-dicom.key"
    key.write_text(base64.b64encode(b"bench-dicom-secret-0123456789abcd").decode())
    pycache = work / "pycache"
    trees = {"": str(HERE.parent)}
    if args.baseline:
        trees[f" [{os.path.basename(os.path.abspath(args.baseline))}]"] = args.baseline
    for tree in trees.values():
        compile_tree(tree, pycache)
    runs: dict[str, tuple[list[str], dict]] = {}
    for label, tree in trees.items():
        for name, extra in CONTENDERS.items():
            if args.only and args.only not in name:
                continue
            runs[name + label] = (extra, tree_env(tree, pycache))
    subprocess.run(["cat", *[str(p) for p in sorted(src.iterdir())]], stdout=subprocess.DEVNULL)  # warm the cache
    walls: dict[str, list[tuple[float, float, float, float]]] = {n: [] for n in runs}  # (wall, ratio, cpu, load)
    rss: dict[str, int] = {n: 0 for n in runs}
    cps: list[tuple[float, float]] = []
    with tempfile.TemporaryDirectory(dir=work) as tmp:
        out = Path(tmp) / "out"

        def deid(extra: list[str]) -> list[str]:
            return ["deid", str(src), "-o", str(out), "--secret-file", str(key), *extra]

        for r in range(args.rounds):
            for name, (extra, env) in runs.items():
                target = Path(tmp) / "cp"
                cp_wall, _, cp_cpu = timed(["cp", "-r", str(src), str(target)])
                shutil.rmtree(target)
                cps.append((cp_wall, cp_cpu))
                load = os.getloadavg()[0]
                # cwd: ``-m`` puts the working folder first on the path, before PYTHONPATH (the tree)
                wall, peak, cpu = timed([sys.executable, "-m", "wsideid.cli", *deid(extra)], env=env, cwd=str(work))
                shutil.rmtree(out)
                shutil.rmtree(Path(tmp) / "out-review", ignore_errors=True)
                walls[name].append((wall, wall / cp_wall, cpu, load))
                rss[name] = max(rss[name], peak)
                print(f"round {r + 1} {name}: {wall:.2f} s wall ({wall / cp_wall:.2f} x cp {cp_wall:.2f}),"
                      f" {cpu:.2f} CPU s, tree {peak} MB, load {load:.1f}", flush=True)
        peaks: dict[str, tuple[float, float]] = {}
        if not args.no_peaks:
            for name, (extra, env) in runs.items():
                peaks[name] = process_peaks(deid(extra), env)
                shutil.rmtree(out, ignore_errors=True)
                shutil.rmtree(Path(tmp) / "out-review", ignore_errors=True)
    size = folder_size(str(src)) / 1e9
    print(f"\nDICOM folder {src.name}: {size:.2f} GB, {len(os.listdir(src))} instances; load now {_load()};"
          f" cp -r best {min(c[0] for c in cps):.2f} s wall, least {min(c[1] for c in cps):.2f} CPU s")
    print("| contender | best wall s | best ratio to cp | least CPU s | load (range) | tree MB | main MB | child MB |")
    print("|---|---|---|---|---|---|---|---|")
    for name, rows in walls.items():
        main_mb, child_mb = peaks.get(name, (0.0, 0.0))
        loads = [x[3] for x in rows]
        print(f"| {name} | {min(x[0] for x in rows):.2f} | {min(x[1] for x in rows):.2f} | {min(x[2] for x in rows):.2f}"
              f" | {min(loads):.1f}-{max(loads):.1f} | {rss[name]} | {main_mb:.1f} | {child_mb:.1f} |")


if __name__ == "__main__":
    main()
