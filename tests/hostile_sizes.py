"""Generators of hostile-size TIFF files (issue 17 item 5), written straight to disk.

Why generators and not files: the full-size cases are 48 MB to 480 MB; the
suite builds scaled-down versions in a temp folder and bench/bench_budgets.py
the full ones. Each file is a valid classic little-endian TIFF whose first
image is a real 16x16 grey strip, so the tool gets as far as it can.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

_PIXELS = bytes(range(256))  # one 16x16 grey strip, shared by every image


def _ifd(entries: list[tuple[int, int, int, bytes]], next_off: int) -> bytes:
    """An IFD with inline or pre-placed values: (tag, type, count, 4-byte field)."""
    out = [struct.pack("<H", len(entries))]
    for tag, typ, count, field in sorted(entries):
        out.append(struct.pack("<HHI", tag, typ, count) + field)
    out.append(struct.pack("<I", next_off))
    return b"".join(out)


def _short(v: int) -> bytes:
    return struct.pack("<HH", v, 0)


def _long(v: int) -> bytes:
    return struct.pack("<I", v)


def _image_entries(strip_off: int, desc: tuple[int, int] | None = None,
                   tiled: bool = False) -> list[tuple[int, int, int, bytes]]:
    e = [(256, 3, 1, _short(16)), (257, 3, 1, _short(16)), (258, 3, 1, _short(8)), (259, 3, 1, _short(1)),
         (262, 3, 1, _short(1)), (277, 3, 1, _short(1))]
    if tiled:
        e += [(322, 3, 1, _short(16)), (323, 3, 1, _short(16)), (324, 4, 1, _long(strip_off)),
              (325, 4, 1, _long(256))]
    else:
        e += [(273, 4, 1, _long(strip_off)), (278, 3, 1, _short(16)), (279, 4, 1, _long(256))]
    if desc is not None:
        e.append((270, 2, desc[1], _long(desc[0])))
    return e


def many_tags(path: Path, images: int = 1000, tags: int = 4000) -> Path:
    """``images`` IFDs of ``tags`` entries each (the 48 MB, 1000 x 4000 case)."""
    strip = 8  # each image has its own tile (shared image data is refused before the tags matter)
    pos = strip + len(_PIXELS) * images
    with open(path, "wb") as fh:
        fh.write(b"II*\0" + _long(pos) + _PIXELS * images)
        for i in range(images):
            base = _image_entries(strip + 256 * i, tiled=True)
            extra = [(60000 + t, 3, 1, _short(t & 0xFFFF)) for t in range(max(0, tags - len(base)))]
            n = len(base) + len(extra)
            size = 2 + 12 * n + 4
            nxt = pos + size if i + 1 < images else 0
            fh.write(_ifd(base + extra, nxt))
            pos += size
    return path


def aperio_description(path: Path, size: int, unit: bytes = b"ab|") -> Path:
    """An Aperio-claimed TIFF whose ImageDescription is ``size`` bytes of ``unit`` repeated."""
    head = b"Aperio Image Library v12.0.15\r\n16x16 [0,0 16x16] (16x16) JPEG/RGB Q=70|"
    body = unit * max(0, (size - len(head)) // len(unit))
    desc = head + body + b"\0"
    strip = 8
    desc_off = strip + len(_PIXELS)
    ifd_off = desc_off + len(desc) + (len(desc) & 1)
    with open(path, "wb") as fh:
        fh.write(b"II*\0" + _long(ifd_off) + _PIXELS)
        fh.write(desc + b"\0" * (len(desc) & 1))
        fh.write(_ifd(_image_entries(strip, (desc_off, len(desc)), tiled=True), 0))
    return path


def shared_tiles(path: Path, side_tiles: int = 4096) -> Path:
    """One image of ``side_tiles``^2 16x16 tiles that all share one tile (16.7 M tiles at 4096)."""
    n = side_tiles * side_tiles
    tile = 8
    offs_at = tile + 256
    counts_at = offs_at + 4 * n
    ifd_off = counts_at + 4 * n
    side = 16 * side_tiles
    entries = [(256, 4, 1, _long(side)), (257, 4, 1, _long(side)), (258, 3, 1, _short(8)), (259, 3, 1, _short(1)),
               (262, 3, 1, _short(1)), (277, 3, 1, _short(1)), (322, 3, 1, _short(16)), (323, 3, 1, _short(16)),
               (324, 4, n, _long(offs_at)), (325, 4, n, _long(counts_at))]
    with open(path, "wb") as fh:
        fh.write(b"II*\0" + _long(ifd_off) + _PIXELS)
        chunk = 1 << 20
        for value in (tile, 256):
            left = n
            while left:
                k = min(chunk, left)
                fh.write(np.full(k, value, dtype="<u4").tobytes())
                left -= k
        fh.write(_ifd(entries, 0))
    return path


def _after_meta(data: bytes) -> int:
    """Where the dataset of an explicit-VR Part 10 file starts (after group 0002)."""
    pos = 132
    while struct.unpack_from("<H", data, pos)[0] == 2:
        if data[pos + 4:pos + 6] in (b"OB", b"UN", b"UT", b"SQ", b"OW"):
            pos += 12 + struct.unpack_from("<I", data, pos + 8)[0]
        else:
            pos += 8 + struct.unpack_from("<H", data, pos + 6)[0]
    return pos


_CREATOR = struct.pack("<HH", 9, 0x10) + b"LO" + struct.pack("<H", 4) + b"ACME"


def dicom_big_value(path: Path, seed: Path, size: int) -> Path:
    """``seed`` with a private OB element of ``size`` bytes of ``ab|`` before its dataset."""
    data = seed.read_bytes()
    body = (b"ab|" * (size // 3 + 1))[:size]
    blob = _CREATOR + struct.pack("<HH", 9, 0x1001) + b"OB\0\0" + struct.pack("<I", size) + body
    pos = _after_meta(data)
    path.write_bytes(data[:pos] + blob + data[pos:])
    return path


def dicom_many_elements(path: Path, seed: Path, n: int) -> Path:
    """``seed`` with ``n`` tiny private elements inside one undefined-length sequence item."""
    data = seed.read_bytes()
    el = struct.pack("<HH", 9, 0x1002) + b"SH" + struct.pack("<H", 2) + b"ab"
    blob = (_CREATOR + struct.pack("<HH", 9, 0x1001) + b"SQ\0\0" + struct.pack("<I", 0xFFFFFFFF)
            + struct.pack("<HHI", 0xFFFE, 0xE000, 0xFFFFFFFF) + el * n
            + struct.pack("<HHI", 0xFFFE, 0xE00D, 0) + struct.pack("<HHI", 0xFFFE, 0xE0DD, 0))
    pos = _after_meta(data)
    path.write_bytes(data[:pos] + blob + data[pos:])
    return path
