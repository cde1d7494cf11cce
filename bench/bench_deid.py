"""Benchmark: wsideid deid on large synthetic SVS slides against cp and tifftools.

Builds SVS slides of the requested sizes from pre-encoded JPEG tiles (quick
to make: a few distinct tiles cycled), then times, in alternating rounds so
that machine noise hits every contender alike:

- ``cp`` of the same file (the floor),
- ``wsideid deid`` with its defaults (verification, sha256 audit, residual
  detectors on the thumbnail), and without detectors / hashes,
- a plain tifftools read / drop label and macro / write (the obvious
  library-based approach), if tifftools is installed.

Prints the best wall time of each, its ratio to cp measured in the same run,
and peak RSS (from wait4). Nothing is asserted: the figures are for people.

    .venv/bin/python bench/bench_deid.py --sizes 0.1,1,2 --rounds 3
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

TILE = 256


def _jpeg(img, q: int = 90) -> bytes:
    from PIL import Image
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, "JPEG", quality=q)
    return buf.getvalue()


def build_svs(path: str, gigabytes: float) -> None:
    """An Aperio-like SVS of about ``gigabytes`` from cycled pre-encoded tiles.

    Runs in a child process (``--build``) so that the parent, whose children
    are measured, stays small: a forked child starts with its parent's RSS.
    """
    import struct

    import numpy as np

    from wsideid.synth import _aperio_description, label_image, tissue
    from wsideid.tiff.writer import ImageData, OutEntry, OutIfd, write_tiff
    rng = np.random.default_rng(0)
    base = tissue(2048, 2048, 7)
    tiles = []
    for k in range(64):
        y, x = rng.integers(0, 2048 - TILE, 2)
        t = base[y:y + TILE, x:x + TILE].astype(np.int16) + rng.integers(-25, 25, (TILE, TILE, 3))
        tiles.append(_jpeg(np.clip(t, 0, 255).astype(np.uint8)))
    mean = sum(map(len, tiles)) / len(tiles)
    n0 = int(gigabytes * (1 << 30) / mean / 1.33)
    side = max(2, int(np.sqrt(n0)))
    levels = [(side, side), (max(1, side // 4), max(1, side // 4)), (max(1, side // 16), max(1, side // 16))]
    blob = path + ".tiles"
    ranges = []
    with open(blob, "wb") as fh:
        for tw, th in levels:
            offs, cnts = [], []
            for i in range(tw * th):
                t = tiles[i % len(tiles)]
                offs.append(fh.tell())
                cnts.append(len(t))
                fh.write(t)
            ranges.append((np.array(offs), np.array(cnts)))
        thumb = _jpeg(tissue(768, 768, 3))
        t_off = fh.tell()
        fh.write(thumb)
        lab = _jpeg(label_image(400, 400, ["S24-12345", "DOE, JANE"], code="S24-12345"))
        l_off = fh.tell()
        fh.write(lab)
        mac = _jpeg(np.concatenate([label_image(400, 400, ["S24-12345"]), tissue(800, 400, 2)], axis=1))
        m_off = fh.tell()
        fh.write(mac)

    def s(tag, text):
        raw = text.encode() + b"\0"
        return OutEntry(tag, 2, len(raw), raw)

    def n(tag, *v, typ=4):
        return OutEntry(tag, typ, len(v), struct.pack(f"<{len(v)}{'H' if typ == 3 else 'I'}", *v))

    def ifd(w, h, desc, data, tiled, nst=0):
        e = {254: n(254, nst), 256: n(256, w), 257: n(257, h), 258: n(258, 8, 8, 8, typ=3), 259: n(259, 7, typ=3),
             262: n(262, 6, typ=3), 270: s(270, desc), 277: n(277, 3, typ=3), 284: n(284, 1, typ=3)}
        if tiled:
            e[322], e[323] = n(322, TILE, typ=3), n(323, TILE, typ=3)
            return OutIfd(e, ImageData(324, 325, *data))
        e[278] = n(278, h)
        return OutIfd(e, ImageData(273, 279, *data))

    W, H = levels[0][0] * TILE, levels[0][1] * TILE
    W1, W2 = levels[1][0] * TILE, levels[2][0] * TILE
    desc = _aperio_description(W, H, "")
    ifds = [ifd(W, H, desc, ranges[0], True),
            ifd(768, 768, desc.replace("(256x256) JPEG/RGB Q=70", "-> 768x768 - "), (np.array([t_off]), np.array([len(thumb)])), False),
            ifd(W1, W1, f"Aperio Image Library v12.0.5\r\n{W}x{H} (256x256) -> {W1}x{W1} JPEG/RGB Q=70", ranges[1], True),
            ifd(W2, W2, f"Aperio Image Library v12.0.5\r\n{W}x{H} (256x256) -> {W2}x{W2} JPEG/RGB Q=70", ranges[2], True),
            ifd(400, 400, "Aperio Image Library v12.0.5\r\nlabel 400x400", (np.array([l_off]), np.array([len(lab)])), False, 1),
            ifd(1200, 400, "Aperio Image Library v12.0.5\r\nmacro 1200x400", (np.array([m_off]), np.array([len(mac)])), False, 9)]
    kind = "bigtiff" if os.path.getsize(blob) > (4 << 30) - (64 << 20) else "classic"
    write_tiff(blob, path, ifds, kind, "<")
    os.unlink(blob)


def timed(cmd: list[str]) -> tuple[float, int]:
    """Wall seconds and peak RSS (MB) of one child process."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, ru = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    err = proc.stderr.read().decode() if proc.stderr else ""
    proc.stderr.close()
    if os.waitstatus_to_exitcode(status) not in (0,):
        raise RuntimeError(f"{cmd[:3]} failed: {err.strip()[:300]}")
    return wall, ru.ru_maxrss // 1024


TIFFTOOLS_SNIPPET = """
import sys, tifftools
info = tifftools.read_tiff(sys.argv[1])
info['ifds'] = [i for i in info['ifds'] if int(i['tags'].get(254, {'data': [0]})['data'][0]) not in (1, 9)]
tifftools.write_tiff(info, sys.argv[2], allowExisting=True)
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="0.1,1,2", help="slide sizes in GB, comma separated")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--only", default=None,
                    help="comma-separated substrings: run only the contenders whose name holds one (cp always runs)")
    ap.add_argument("--build", nargs=2, metavar=("PATH", "GB"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.build:
        build_svs(args.build[0], float(args.build[1]))
        return 0
    work = Path(args.workdir or tempfile.mkdtemp(prefix="wsideid-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    wsideid = [str(Path(sys.executable).parent / "wsideid")]
    have_tifftools = subprocess.run([sys.executable, "-c", "import tifftools"], capture_output=True).returncode == 0
    print(f"machine: {os.cpu_count()} cores; python {sys.version.split()[0]}; rounds {args.rounds} (best of)")
    for gb in [float(x) for x in args.sizes.split(",")]:
        src = work / f"bench-{gb:g}GB.svs"
        if not src.exists():
            t = time.perf_counter()
            subprocess.run([sys.executable, __file__, "--build", str(src), str(gb)], check=True)
            print(f"built {src.name}: {src.stat().st_size / 1e9:.2f} GB in {time.perf_counter() - t:.1f}s")
        size = src.stat().st_size
        subprocess.run(["cat", str(src)], stdout=subprocess.DEVNULL)  # warm the page cache
        out = work / "out"
        contenders = {
            "cp": lambda: ["cp", str(src), str(out / "cp.svs")],
            "wsideid deid (defaults)": lambda: wsideid + ["deid", str(src), "-o", str(out), "--overwrite"],
            "wsideid deid --detect off": lambda: wsideid + ["deid", str(src), "-o", str(out), "--overwrite", "--detect", "off"],
            "wsideid deid --detect off --no-hash": lambda: wsideid + ["deid", str(src), "-o", str(out), "--overwrite",
                                                                      "--detect", "off", "--no-hash"],
        }
        inplace_copy = work / "inplace.svs"
        contenders["wsideid deid --in-place --detect off"] = lambda: wsideid + [
            "deid", str(inplace_copy), "--in-place", "--detect", "off"]
        if have_tifftools:
            contenders["tifftools rewrite"] = lambda: [sys.executable, "-c", TIFFTOOLS_SNIPPET, str(src), str(out / "tt.svs")]
        if args.only:
            wanted = [w.strip() for w in args.only.split(",") if w.strip()]
            contenders = {k: v for k, v in contenders.items()
                          if k == "cp" or any(w == k or w in k for w in wanted)}
        best: dict[str, tuple[float, int]] = {}
        for _ in range(args.rounds):
            for name, make in contenders.items():
                shutil.rmtree(out, ignore_errors=True)
                out.mkdir()
                if "--in-place" in name:  # a fresh copy to rewrite, not timed
                    subprocess.run(["cp", str(src), str(inplace_copy)], check=True)
                    for leftover in work.glob("*.audit.json"):
                        leftover.unlink()
                wall, rss = timed(make())
                if name not in best or wall < best[name][0]:
                    best[name] = (wall, max(rss, best.get(name, (0, 0))[1]))
        cp = best["cp"][0]
        print(f"\n{src.name} ({size / 1e9:.2f} GB), warm page cache:")
        print(f"  {'contender':<38} {'best s':>8} {'x cp':>7} {'peak MB':>8}")
        for name, (wall, rss) in best.items():
            print(f"  {name:<38} {wall:8.3f} {wall / cp:7.2f} {rss:8d}")
        target = 1.1 * cp + 0.25
        print(f"  target (1.1 x cp + 0.25 s): {target:.3f} s")
        shutil.rmtree(out, ignore_errors=True)
    print(f"\n(slides kept in {work}; delete when done)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
