"""Benchmark: the residual scan (needles.Scanner) and the tile-header gather (streamheads).

Times, on one core: building a scanner for N removed dates (found by their shape,
``date_scan``; with --spelled, every spelling a needle of its own, about 1,250 strings
a date, as before) plus a few names; scanning a random haystack of the size given
(256 MB is the verifier's cap on non-pixel bytes) and a text one (XML-like, dense with
numbers and dates that were not removed) with one needle planted at the end; and
gathering the headers of T back-to-back JPEG tiles from a file (--tiles 0: skipped).

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
    ap.add_argument("--spelled", action="store_true", help="every spelling of a date a needle (the old scan)")
    a = ap.parse_args()

    days = [dt.date(1990, 1, 1) + dt.timedelta(days=37 * k) for k in range(a.dates)]
    if a.spelled:
        needles = [Needle(s, NeedleKind.DATE, "d") for day in days for s in spellings(day)]
    else:
        needles = [Needle(day.isoformat(), NeedleKind.DATE, "d", day=day) for day in days]
    needles += [Needle(n, NeedleKind.NAME_PART, "n") for n in ("Müller", "Łukasz", "Kowalski", "Ярослав")]
    t0, c0 = time.perf_counter(), time.process_time()
    scanner = Scanner(needles)
    t1, c1 = time.perf_counter(), time.process_time()
    print(f"build: {len(needles)} needles in {t1 - t0:.2f} s ({c1 - c0:.2f} CPU s)")

    hay = np.random.default_rng(1).integers(0, 256, a.megabytes << 20, dtype=np.uint8).tobytes()
    hay = hay[:-64] + "KOWALSKI".encode("utf-16-be") + hay[-48:]
    t0, c0 = time.perf_counter(), time.process_time()
    hits = scanner.scan([(0, hay)])
    t1, c1 = time.perf_counter(), time.process_time()
    print(f"scan: {a.megabytes} MB in {t1 - t0:.2f} s ({c1 - c0:.2f} CPU s), {len(hits)} hit(s)")
    del hay
    line = ('<Attribute Name="Value{k}" Type="float">{k}.{j} 12-{d}-{y} {d}/{m}/{y}</Attribute>'
            ' <Scan date="{y}{m:02d}{d:02d}" by="Operator {k}" mag="20" mpp="0.2{j}"/>\n')
    text = "".join(line.format(k=k, j=k % 97, d=1 + k % 28, m=1 + k % 12, y=2000 + k % 20) for k in range(5000))
    block = text.encode("utf-8") + text.encode("utf-16-le")
    hay = (block * (1 + (a.megabytes << 20) // len(block)))[:a.megabytes << 20]
    hay = hay[:-64] + "KOWALSKI".encode("utf-16-be") + hay[-48:]
    t0, c0 = time.perf_counter(), time.process_time()
    hits = scanner.scan([(0, hay)])
    t1, c1 = time.perf_counter(), time.process_time()
    print(f"scan text: {a.megabytes} MB in {t1 - t0:.2f} s ({c1 - c0:.2f} CPU s), {len(hits)} hit(s)")
    if not a.tiles:
        return 0

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
