"""Benchmark: ``wsideid deid`` on a large DICOM WSI folder against ``cp -r`` of the same folder.

Issue 14 defines the speed target on a 2 GB SVS (bench_deid.py); repositories
run DICOM, so this prints the same figures for a DICOM folder: the bench SVS
converted once by wsidicomizer (tiles copied, no label or overview), then, in
alternating pairs (each wsideid run right after a cp of the same folder), the
best wall time, its ratio to the cp before it, the least CPU seconds and the
peak RSS of the run's largest process, for the defaults and ``--detect off``.
The machine's load average is printed with the table. Nothing is asserted.

    nice .venv/bin/python bench/bench_dicom_deid.py --svs /tmp/speed2-bench/bench-2GB.svs --rounds 3
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

from bench_deid import timed  # noqa: E402

CONTENDERS = {"defaults": [], "--detect off": ["--detect", "off"]}


def convert(svs: str, folder: str) -> None:
    """The DICOM folder wsidicomizer makes of ``svs`` (in a child: the parent's RSS stays small)."""
    code = ("import sys; from wsidicomizer import WsiDicomizer; WsiDicomizer.convert(sys.argv[1], sys.argv[2],"
            " include_label=False, include_overview=False, workers=1)")
    subprocess.run([sys.executable, "-c", code, svs, folder], check=True)


def folder_size(folder: str) -> int:
    return sum(os.path.getsize(os.path.join(folder, n)) for n in os.listdir(folder))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--svs", required=True, help="the SVS to convert (e.g. bench_deid.py's bench-2GB.svs)")
    ap.add_argument("--workdir", default=None, help="where the DICOM folder is kept between runs (default: beside --svs)")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    work = Path(args.workdir or Path(args.svs).parent)
    src = work / (Path(args.svs).stem + "-dicom")
    if not src.is_dir() or not os.listdir(src):
        shutil.rmtree(src, ignore_errors=True)
        convert(args.svs, str(src))
    key = work / "bench-dicom.key"
    key.write_text(base64.b64encode(b"bench-dicom-secret-0123456789abcd").decode())
    env = {**os.environ, "PYTHONPATH": str(HERE.parent)}
    best: dict[str, tuple[float, float, float, int]] = {}
    cp_best = (float("inf"), float("inf"))
    with tempfile.TemporaryDirectory(dir=work) as tmp:
        for _ in range(args.rounds):
            for name, extra in CONTENDERS.items():
                target = Path(tmp) / "cp"
                cp_wall, _, cp_cpu = timed(["cp", "-r", str(src), str(target)])
                shutil.rmtree(target)
                cp_best = (min(cp_best[0], cp_wall), min(cp_best[1], cp_cpu))
                out = Path(tmp) / "out"
                wall, rss, cpu = timed([sys.executable, "-m", "wsideid.cli", "deid", str(src), "-o", str(out),
                                        "--secret-file", str(key), *extra], env=env)
                shutil.rmtree(out)
                shutil.rmtree(Path(tmp) / "out-review", ignore_errors=True)
                old = best.get(name)
                if old is None or wall < old[0]:
                    best[name] = (wall, wall / cp_wall, min(cpu, old[2]) if old else cpu, max(rss, old[3]) if old else rss)
    size = folder_size(str(src)) / 1e9
    print(f"DICOM folder {src.name}: {size:.2f} GB, {len(os.listdir(src))} instances; load {os.getloadavg()[0]:.1f};"
          f" cp -r best {cp_best[0]:.2f} s wall, {cp_best[1]:.2f} CPU s")
    print("| contender | best wall s | ratio to cp | least CPU s | peak RSS MB |")
    print("|---|---|---|---|---|")
    for name, (wall, ratio, cpu, rss) in best.items():
        print(f"| {name} | {wall:.2f} | {ratio:.2f} | {cpu:.2f} | {rss} |")


if __name__ == "__main__":
    main()
