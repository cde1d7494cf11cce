"""Benchmark: barcodes the residual scan finds on KEPT images, and what the scan costs.

The label bench (bench/labels) reads whole labels; the residual scan
(``detect.residual.scan_kept_image``) reads thumbnails, macros and small levels
where a label or a sticker is a small part of mostly tissue, on a short CPU
budget. This plants the label bench's generated labels (``make_labels``: printed,
clean and degraded sets, each with a DataMatrix, QR or Code 128 of its accession)
into tissue images at several sizes, JPEG-compresses the composite as a thumbnail
is stored, and counts the codes the residual scan decodes, with its CPU time per
image; then the CPU time on the same backgrounds with nothing planted (the cost
every slide pays).

Backgrounds: the real thumbnails and macro of the test data when present
(``$WSIDEID_TESTDATA`` or ../shared/testdata), a synthetic tissue image always.
Seeded: the same seed gives the same composites. The code measured is the
tree on ``PYTHONPATH`` first (default: the tree this file lives in); run it once
per tree to compare. Nothing is asserted.

    nice .venv/bin/python bench/bench_residual_codes.py --n 30
    PYTHONPATH=/other/tree .venv/bin/python /this/tree/bench/bench_residual_codes.py --n 30
"""

from __future__ import annotations

import argparse
import io
import os
import random
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

HERE = Path(__file__).resolve().parent
if not os.environ.get("PYTHONPATH"):
    sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE / "labels"))

SCALES = (1.0, 0.7, 0.5)  # planted label size, times its generated size
THUMB_SIDE = 768  # backgrounds are resized to this longest side (an Aperio thumbnail's)
FAMILY = {"UPCA": "EAN13", "CompactPDF417": "PDF417"}


def _testdata() -> Path:
    return Path(os.environ.get("WSIDEID_TESTDATA", HERE.parent.parent / "shared" / "testdata"))


def _synthetic_tissue(seed: int) -> Image.Image:
    """Pink-purple blobs on light glass, blurred (a stand-in when no real thumbnail is present)."""
    rng = np.random.default_rng(seed)
    img = Image.new("RGB", (THUMB_SIDE, THUMB_SIDE * 3 // 4), (238, 236, 240))
    d = ImageDraw.Draw(img)
    for _ in range(900):
        x, y, r = int(rng.integers(80, 690)), int(rng.integers(60, 520)), int(rng.integers(3, 18))
        c = (int(rng.integers(150, 215)), int(rng.integers(80, 150)), int(rng.integers(150, 210)))
        d.ellipse((x - r, y - r, x + r, y + r), fill=c)
    return img.filter(ImageFilter.GaussianBlur(0.8))


def backgrounds(seed: int) -> list[tuple[str, Image.Image]]:
    out = [("synthetic", _synthetic_tissue(seed))]
    try:
        import openslide
    except ImportError:
        return out
    for rel, name in (("svs/CMU-1-Small-Region.svs", "thumbnail"), ("svs/tcga-cr-7395-01a-01-ts1.svs", "thumbnail"),
                      ("ndpi/test3-TRITC-2-560.ndpi", "macro")):
        p = _testdata() / rel
        if not p.exists():
            continue
        slide = openslide.OpenSlide(str(p))
        try:
            img = slide.associated_images[name].convert("RGB")
        finally:
            slide.close()
        img.thumbnail((THUMB_SIDE, THUMB_SIDE))
        out.append((f"{Path(rel).stem}:{name}", img))
    return out


def _jpeg(img: Image.Image, quality: int) -> Image.Image:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    buf.seek(0)
    return Image.open(buf).convert("RGB")


def composites(n: int, seed: int, sets: tuple[str, ...] = ("printed", "clean", "degraded")):
    """(set, scale, composite, {(family, value)}) for ``n`` coded labels per set."""
    from make_labels import make_label
    bgs = backgrounds(seed)
    rng = random.Random(seed)
    for set_name in sets:
        lrng = random.Random(f"{seed}-{set_name}")
        made = 0
        i = 0
        while made < n:
            label, truth = make_label(lrng, set_name, i)
            i += 1
            if not truth.barcodes:
                continue
            made += 1
            want = {(FAMILY.get(f, f), v) for f, v in truth.barcodes}
            name, bg = bgs[made % len(bgs)]
            for s in SCALES:
                lab = label.resize((max(1, round(label.width * s)), max(1, round(label.height * s))),
                                   Image.Resampling.BOX) if s != 1.0 else label
                if lab.width > bg.width * 0.8 or lab.height > bg.height * 0.8:
                    lab = lab.copy()
                    lab.thumbnail((int(bg.width * 0.8), int(bg.height * 0.8)), Image.Resampling.BOX)
                img = bg.copy()
                img.paste(lab, (rng.randrange(0, img.width - lab.width + 1), rng.randrange(0, img.height - lab.height + 1)))
                yield set_name, s, _jpeg(img, 80), want


def _scan(img: Image.Image):
    from wsideid.detect.residual import scan_kept_image
    c = time.thread_time()
    result = scan_kept_image(img, "thumbnail", ocr=False)
    return result, (time.thread_time() - c) * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=20, help="coded labels per set (each planted at %d sizes)" % len(SCALES))
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--sets", default="printed,clean,degraded", help="make_labels sets (\"harsh\": a stress set)")
    ap.add_argument("--record", default=None, help="write each composite's outcome (1/0), one a line, to this file "
                    "(compare two trees' files: a code one tree finds and the other misses)")
    args = ap.parse_args()
    outcomes: list[int] = []
    import wsideid
    print(f"tree {Path(wsideid.__file__).resolve().parent.parent}; load {os.getloadavg()[0]:.1f}")
    _scan(_synthetic_tissue(0))  # imports and first-call set-up, untimed
    found: dict[tuple[str, float], list[int]] = {}
    ms: dict[tuple[str, float], list[float]] = {}
    for set_name, s, img, want in composites(args.n, args.seed, tuple(args.sets.split(","))):
        result, t = _scan(img)
        got = {(FAMILY.get(f.symbology or "", f.symbology or ""), f.value) for f in result.findings if f.kind == "barcode"}
        found.setdefault((set_name, s), []).append(int(bool(want & got)))
        outcomes.append(int(bool(want & got)))
        ms.setdefault((set_name, s), []).append(t)
    print("planted codes decoded by the residual scan (ocr off), CPU ms per image")
    print(f"  {'set':10} {'scale':>5} {'decoded':>9} {'ms median':>10} {'ms max':>7}")
    for key in sorted(found):
        f, t = found[key], ms[key]
        print(f"  {key[0]:10} {key[1]:5.1f} {sum(f):4d}/{len(f):<4d} {statistics.median(t):10.0f} {max(t):7.0f}")
    if args.record:
        Path(args.record).write_text("".join(f"{x}\n" for x in outcomes))
    total = [x for v in found.values() for x in v]
    print(f"  all: {sum(total)}/{len(total)}")
    print("clean backgrounds (nothing planted), CPU ms per image, best of 3: barcodes / whole scan with text regions")
    from wsideid.detect.residual import scan_kept_image
    for name, bg in backgrounds(args.seed):
        img = _jpeg(bg, 80)
        codes = min(_scan(img)[1] for _ in range(3))
        whole = []
        for _ in range(3):
            c = time.thread_time()
            scan_kept_image(img, "thumbnail", ocr=True, use_ppocr=False)
            whole.append((time.thread_time() - c) * 1000)
        print(f"  {name:36} {img.width}x{img.height}: {codes:6.0f} / {min(whole):6.0f}")


if __name__ == "__main__":
    main()
