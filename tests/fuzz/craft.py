"""Hand-built hostile TIFFs: each one breaks one structural rule on purpose."""

from __future__ import annotations

import struct


def classic(ifds: list[list[tuple[int, int, int, bytes]]], extra: bytes = b"", bo: str = "<",
            nexts: list[int] | None = None) -> bytes:
    """A classic TIFF: IFDs laid out from offset 8, then ``extra`` (values/data placed by the caller).

    Entry values longer than 4 bytes must already be offsets (the caller
    computes them with ``ifd_size``); ``nexts`` overrides next-IFD pointers.
    """
    out = (b"II*\0" if bo == "<" else b"MM\0*") + struct.pack(bo + "I", 8)
    pos = 8
    blocks = []
    for i, entries in enumerate(ifds):
        size = ifd_size(len(entries))
        nxt = pos + size if i + 1 < len(ifds) else 0
        if nexts is not None:
            nxt = nexts[i]
        body = struct.pack(bo + "H", len(entries))
        for tag, typ, count, val in sorted(entries, key=lambda e: e[0]):
            body += struct.pack(bo + "HHI", tag, typ, count) + val.ljust(4, b"\0")
        body += struct.pack(bo + "I", nxt)
        blocks.append(body)
        pos += size
    return out + b"".join(blocks) + extra


def ifd_size(n: int) -> int:
    return 2 + 12 * n + 4


def u32(v: int, bo: str = "<") -> bytes:
    return struct.pack(bo + "I", v & 0xFFFFFFFF)


def u16(v: int, bo: str = "<") -> bytes:
    return struct.pack(bo + "H", v)


def tiled_ifd(w: int, h: int, tw: int, th: int, offsets_at: int, counts_at: int, n: int,
              extra: list[tuple[int, int, int, bytes]] | None = None) -> list[tuple[int, int, int, bytes]]:
    """Entries of a tiled 8-bit grey image whose offset/count arrays live elsewhere (or inline when n == 1)."""
    e = [(256, 4, 1, u32(w)), (257, 4, 1, u32(h)), (258, 3, 1, u16(8)), (259, 3, 1, u16(1)),
         (262, 3, 1, u16(1)), (277, 3, 1, u16(1)), (322, 4, 1, u32(tw)), (323, 4, 1, u32(th)),
         (324, 4, n, u32(offsets_at)), (325, 4, n, u32(counts_at))]
    return e + list(extra or [])
