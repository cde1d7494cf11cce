"""Benchmark: the residual scan (needles.Scanner) and the tile-header gather (streamheads).

Times, on one core: building a scanner for N removed dates (every spelling,
about 1,000-2,000 strings each) plus a few names; scanning a random haystack
of the size given (256 MB is the verifier's cap on non-pixel bytes) with one
needle planted at the end; and gathering the headers of T back-to-back JPEG
tiles from a file.

    .venv/bin/python bench/bench_needles.py --dates 20 --megabytes 256 --tiles 200000
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from wsideid.dates import spellings  # noqa: E402
from wsideid.needles import Needle, NeedleKind, Scanner  # noqa: E402
from wsideid.streamheads import stream_headers  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dates", type=int, default=20)
    ap.add_argument("--megabytes", type=int, default=256)
    ap.add_argument("--tiles", type=int, default=200000)
    a = ap.parse_args()

    needles = [Needle(s, NeedleKind.DATE, "d") for k in range(a.dates)
               for s in spellings(dt.date(1990, 1, 1) + dt.timedelta(days=37 * k))]
    needles += [Needle(n, NeedleKind.NAME_PART, "n") for n in ("Müller", "Łukasz", "Kowalski", "Ярослав")]
    t0 = time.perf_counter()
    scanner = Scanner(needles)
    t1 = time.perf_counter()
    print(f"build: {len(needles)} needles in {t1 - t0:.2f} s")

    hay = np.random.default_rng(1).integers(0, 256, a.megabytes << 20, dtype=np.uint8).tobytes()
    hay = hay[:-64] + "KOWALSKI".encode("utf-16-be") + hay[-48:]
    t0 = time.perf_counter()
    hits = scanner.scan([(0, hay)])
    t1 = time.perf_counter()
    print(f"scan: {a.megabytes} MB in {t1 - t0:.2f} s ({a.megabytes / (t1 - t0):.0f} MB/s), {len(hits)} hit(s)")

    from PIL import Image
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(2).integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(buf, "JPEG")
    tile = buf.getvalue()
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "tiles.bin")
        with open(path, "wb") as fh:
            for i in range(0, a.tiles, 10000):
                fh.write(tile * min(10000, a.tiles - i))
        offs = np.arange(a.tiles, dtype=np.int64) * len(tile)
        t0 = time.perf_counter()
        n = sum(1 for _ in stream_headers(path, offs, np.full(a.tiles, len(tile))))
        t1 = time.perf_counter()
    print(f"tile headers: {n} tiles in {t1 - t0:.2f} s ({n / (t1 - t0):.0f} tiles/s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
