"""Benchmark: lossless blanking of a 2000 x 2000 px region against slide size.

For SVS slides of 0.1, 1 and 2 GB (built by bench_deid.py's builder), times
the coefficient-domain edit of every tile the level-0 region touches on every
level (what `wsideid redact` adds to a copy), on one core, and compares it
with decoding, painting and re-encoding the same tiles with Pillow: time, and
pixel error outside the region (the lossless path has none by construction;
the re-encode has generation loss everywhere in the touched tiles).

    .venv/bin/python bench/bench_redact.py --sizes 0.1,1,2 --workdir /tmp/bench

"first s" is the first repetition on each slide (on the first slide also the process's
first: Huffman tables built, libturbojpeg loaded, which one `wsideid redact` run pays;
modules are imported before any timing);
"lossless s" and "cpu s" are the best of the ``--rounds`` after it. ``--walk`` keeps libjpeg-turbo's transcoder out (every partial tile
walked in pure Python, as before issue 14's session 7), to compare both in one tree.
"""

from __future__ import annotations

import argparse
import io
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

REGION = (3000, 3000, 2000, 2000)


def _lossless(path: str):
    from wsideid.options import DeidOptions
    from wsideid.tiff_family.redaction import Edits, plan_regions
    from wsideid.registry import open_input
    from wsideid.tiff.edits import EditSet, EditStore
    slide = open_input(path)
    plan = slide.driver.plan(slide, DeidOptions(regions=[REGION]))
    edits = Edits(tiles=EditSet(EditStore(path)))
    from wsideid.jpeg import blank
    getattr(blank, "_FLAT", {}).clear()  # each repetition codes its flat tiles afresh
    t, c = time.perf_counter(), time.process_time()
    plan_regions(slide.container, plan, [REGION], "white", edits)
    return (time.perf_counter() - t, time.process_time() - c), sum(len(v) for v in edits.tiles.values()), edits, slide


def _reencode(slide, edits) -> tuple[float, float, float]:
    """Pillow decode + paint + re-encode of the same tiles; error outside the region."""
    from PIL import Image
    tf = slide.container
    flat = list(tf.all_ifds())
    errs_max, errs_sum, n_px = 0, 0.0, 0
    t = time.perf_counter()
    results = []
    for k, tiles in edits.tiles.items():
        ifd = flat[k]
        from wsideid.tiff_family.vendors.tiff_base import image_data
        data = image_data(ifd, tf.byteorder)
        with open(tf.path, "rb") as fh:
            for idx in tiles:
                fh.seek(int(data.src_offsets[idx]))
                raw = fh.read(int(data.src_counts[idx]))
                img = np.asarray(Image.open(io.BytesIO(raw)).convert("RGB")).copy()
                painted = img.copy()
                painted[: img.shape[0] // 2, : img.shape[1] // 2] = 255  # some part of the tile
                buf = io.BytesIO()
                Image.fromarray(painted).save(buf, "JPEG", quality=90)
                results.append((img, buf.getvalue(), img.shape))
    elapsed = time.perf_counter() - t
    for img, enc, shape in results:
        dec = np.asarray(Image.open(io.BytesIO(enc)).convert("RGB")).astype(int)
        outside = np.ones(shape[:2], bool)
        outside[: shape[0] // 2, : shape[1] // 2] = False
        diff = np.abs(dec - img.astype(int))[outside]
        errs_max = max(errs_max, int(diff.max()))
        errs_sum += float(diff.sum())
        n_px += diff.size
    return elapsed, errs_max, errs_sum / max(1, n_px)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="0.1,1,2")
    ap.add_argument("--workdir", default="/tmp/wsideid-bench")
    ap.add_argument("--rounds", type=int, default=3, help="repetitions per slide (best of)")
    ap.add_argument("--walk", action="store_true", help="no libjpeg-turbo transcoder: the pure-Python walk only")
    args = ap.parse_args()
    if args.walk:
        try:
            from wsideid.jpeg import transcode
            transcode.transcoded = lambda *a, **k: None
        except ImportError:  # a tree from before the transcoder: the walk is all it has
            pass
    import importlib
    for name in ("wsideid.jpeg.blank", "wsideid.jpeg.transcode", "wsideid.tiff_family.redaction"):
        try:  # imported before timing: with PYTHONDONTWRITEBYTECODE the first import compiles
            importlib.import_module(name)
        except ImportError:
            pass
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    print(f"region {REGION[2]}x{REGION[3]} px at level 0 ({REGION[0]},{REGION[1]}), every level; one core")
    print(f"  {'slide':<18} {'GB':>5} {'tiles':>6} {'first s':>8} {'lossless s':>11} {'cpu s':>7} {'re-encode s':>12}"
          f" {'re-enc err max/mean':>20}")
    for gb in [float(x) for x in args.sizes.split(",")]:
        src = work / f"bench-{gb:g}GB.svs"
        if not src.exists():
            subprocess.run([sys.executable, str(HERE / "bench_deid.py"), "--build", str(src), str(gb)], check=True)
        best, cpu, first = None, None, None
        for _ in range(args.rounds + (first is None)):
            (t, c), n, edits, slide = _lossless(str(src))
            if first is None:
                first = t
                continue
            best = t if best is None else min(best, t)
            cpu = c if cpu is None else min(cpu, c)
        rt, emax, emean = _reencode(slide, edits)
        print(f"  {src.name:<18} {os.path.getsize(src) / 1e9:5.2f} {n:6d} {first:8.3f} {best:11.3f} {cpu:7.3f} {rt:12.3f}"
              f" {emax:>10d} / {emean:.2f}   load {os.getloadavg()[0]:.1f}")
    print("lossless: pixels outside the region are bit-identical (tests/test_redaction.py, tests/test_jpeg_*.py)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
