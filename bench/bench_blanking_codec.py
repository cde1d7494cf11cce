"""Benchmark: coefficient-domain blanking vs decode + re-encode with Pillow.

For each tile: time to blank one region (blank_regions), time to make the
whole tile flat (flat_tile), and time for the pixel route (Pillow decode,
paint the box, encode again with the tile's own quantisation tables), plus
how much the pixel route damages pixels *outside* the region (the
coefficient route changes none there, by construction and by test).

Uses ../shared/testdata when present (SVS tiles, DICOM frames, an NDPI
strip), synthetic Pillow JPEGs otherwise. Prints figures; asserts nothing.

    .venv/bin/python bench/bench_blanking_codec.py
"""

from __future__ import annotations

import io
import statistics
import time
from pathlib import Path

import numpy as np
from PIL import Image

from wsideid.jpeg import blank_regions, blank_restart_intervals, flat_tile
from wsideid.jpeg.markers import parse

TESTDATA = Path(__file__).resolve().parents[2] / "shared" / "testdata"


def best_of(fn, repeat: int = 5) -> float:
    """Best wall time in milliseconds (least disturbed by the machine)."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1000 * min(times)


def splice(tables: bytes | None, tile: bytes) -> bytes:
    return tile if tables is None else b"\xff\xd8" + tables[2:-2] + tile[2:]


def pillow_route(full: bytes, box, fill=(255, 255, 255)) -> bytes:
    im = Image.open(io.BytesIO(full))
    q = im.quantization
    sub = -1 if im.mode == "L" else {(1, 1): 0, (2, 1): 1, (2, 2): 2}.get(_sampling(full), 2)
    im = im.copy()
    x, y, w, h = box
    im.paste(fill if im.mode != "L" else fill[0], (x, y, x + w, y + h))
    out = io.BytesIO()
    kw = {"qtables": q}
    if im.mode != "L":
        kw["subsampling"] = sub
    im.save(out, "JPEG", **kw)
    return out.getvalue()


def _sampling(full: bytes) -> tuple[int, int]:
    c = parse(full).components[0]
    return c.h, c.v


def decode(full: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(full)).convert("RGB")).astype(int)


def tiles():
    """(label, tile bytes, tables, colorspace)."""
    svs = TESTDATA / "svs" / "CMU-1-Small-Region.svs"
    dcm = TESTDATA / "dicom" / "wsi2dcm_jpeg.dcm"
    found = False
    if svs.exists():
        import tifffile

        with tifffile.TiffFile(svs) as tif:
            page = tif.pages[0]
            for i in (0, 40, 80):
                tif.filehandle.seek(page.dataoffsets[i])
                yield f"svs tile {i} 240x240 RGB 4:4:4", tif.filehandle.read(page.databytecounts[i]), page.jpegtables, "RGB"
        found = True
    if dcm.exists():
        import pydicom
        from pydicom.encaps import generate_frames

        ds = pydicom.dcmread(dcm)
        frames = list(generate_frames(ds.PixelData, number_of_frames=int(ds.NumberOfFrames)))
        for i in (0, 5):
            yield f"dicom frame {i} 256x256 YCbCr 4:2:0", frames[i].rstrip(b"\x00"), None, None
        found = True
    if not found:
        rng = np.random.default_rng(0)
        img = np.clip(rng.normal(150, 40, (256, 256, 3)), 0, 255).astype(np.uint8)
        for sub in (0, 2):
            buf = io.BytesIO()
            Image.fromarray(img).save(buf, "JPEG", quality=90, subsampling=sub)
            yield f"synthetic 256x256 q90 sub{sub}", buf.getvalue(), None, None


def main() -> None:
    print(f"{'tile':38} {'bytes':>7} {'region ms':>9} {'flat ms':>8} {'pillow ms':>9} {'pillow err outside (max/mean)':>30}")
    for label, tile, tables, cs in tiles():
        hdr = parse(tile, tables)
        box = (hdr.width // 4, hdr.height // 4, hdr.width // 3, hdr.height // 5)
        t_region = best_of(lambda: blank_regions(tile, [box], tables=tables, colorspace=cs))
        t_flat = best_of(lambda: flat_tile(tile, tables=tables, colorspace=cs))
        full = splice(tables, tile)
        t_pil = best_of(lambda: pillow_route(full, box))
        before = decode(full)
        after = decode(pillow_route(full, box))
        outside = np.ones(before.shape[:2], dtype=bool)
        x, y, w, h = box
        outside[y : y + h, x : x + w] = False
        err = np.abs(before - after)[outside]
        print(f"{label:38} {len(tile):7d} {t_region:9.2f} {t_flat:8.2f} {t_pil:9.2f} {err.max():>18d} / {err.mean():.3f}")

    ndpi = TESTDATA / "ndpi" / "test3-TRITC-2-560.ndpi"
    if ndpi.exists():
        import tifffile

        with tifffile.TiffFile(ndpi) as tif:
            page = tif.pages[0]
            off, n = page.tags[273].value[0], page.tags[279].value[0]
            starts = [int(s) for s in page.tags[65426].value]
            tif.filehandle.seek(off)
            strip = tif.filehandle.read(n)
        h, w = page.shape[:2]
        for box in [(1000, 2000, 64, 64), (0, 0, w, 512)]:
            t = best_of(lambda: blank_restart_intervals(strip, starts, [box], "white"), repeat=3)
            print(f"ndpi level 0 {w}x{h} strip {len(strip)} B, box {box}: {t:.1f} ms")
    sizes = []
    for label, tile, tables, cs in tiles():
        sizes.append(len(flat_tile(tile, tables=tables, colorspace=cs)) / len(tile))
    print(f"flat tile size / original size: median {statistics.median(sizes):.3f}")


if __name__ == "__main__":
    main()
