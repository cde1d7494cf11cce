"""Large synthetic SVS slides, quick to build, for benchmarks and memory tests.

A few pre-encoded JPEG tiles are cycled over a pyramid of any size, so a
multi-gigabyte slide takes seconds to write. ``tile_comment`` puts a COM
segment in every tile (as some encoders do with their name), so the stream
rule edits every tile: the case where memory used to grow with the slide.
"""

from __future__ import annotations

import io
import os
import struct

import numpy as np

TILE = 256


def _jpeg(img: np.ndarray, q: int = 90) -> bytes:
    from PIL import Image
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, "JPEG", quality=q)
    return buf.getvalue()


def _with_comment(tile: bytes, text: bytes) -> bytes:
    return tile[:2] + b"\xff\xfe" + struct.pack(">H", len(text) + 2) + text + tile[2:]


def build_svs(path: str, megabytes: float, tile_comment: bytes | None = None, associated: bool = True,
              noise: int = 25, quality: int = 90) -> int:
    """An Aperio-like SVS of about ``megabytes`` (levels, thumbnail, and a label and macro when
    ``associated``); returns the number of pyramid tiles. ``noise`` (grey levels) sets the tiles'
    bitrate: 25 gives ~28 KB tiles at ``quality`` 90 (the bench's), 0 at quality 20 about 3 KB
    (many tiles in few megabytes, for memory tests that count bytes per tile)."""
    from .synth import _aperio_description, label_image, tissue
    from .tiff.writer import ImageData, OutEntry, OutIfd, write_tiff
    rng = np.random.default_rng(0)
    base = tissue(2048, 2048, 7)
    tiles = []
    for k in range(64):
        y, x = rng.integers(0, 2048 - TILE, 2)
        t = base[y:y + TILE, x:x + TILE].astype(np.int16) + (rng.integers(-noise, noise, (TILE, TILE, 3)) if noise else 0)
        tile = _jpeg(np.clip(t, 0, 255).astype(np.uint8), quality)
        tiles.append(_with_comment(tile, tile_comment) if tile_comment else tile)
    mean = sum(map(len, tiles)) / len(tiles)
    n0 = int(megabytes * (1 << 20) / mean / 1.33)
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
            ifd(768, 768, desc.replace("(256x256) JPEG/RGB Q=70", "-> 768x768 - "),
                (np.array([t_off]), np.array([len(thumb)])), False),
            ifd(W1, W1, f"Aperio Image Library v12.0.5\r\n{W}x{H} (256x256) -> {W1}x{W1} JPEG/RGB Q=70", ranges[1], True),
            ifd(W2, W2, f"Aperio Image Library v12.0.5\r\n{W}x{H} (256x256) -> {W2}x{W2} JPEG/RGB Q=70", ranges[2], True)]
    if associated:
        ifds += [ifd(400, 400, "Aperio Image Library v12.0.5\r\nlabel 400x400",
                     (np.array([l_off]), np.array([len(lab)])), False, 1),
                 ifd(1200, 400, "Aperio Image Library v12.0.5\r\nmacro 1200x400",
                     (np.array([m_off]), np.array([len(mac)])), False, 9)]
    kind = "bigtiff" if os.path.getsize(blob) > (4 << 30) - (64 << 20) else "classic"
    try:
        write_tiff(blob, path, ifds, kind, "<")
    finally:
        os.unlink(blob)
    return sum(tw * th for tw, th in levels)
