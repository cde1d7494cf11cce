"""Quantised DCT coefficients of a baseline JPEG, and the codec self-check.

``coefficients`` serves tests and the verifier (compare blocks outside a
blanked region with the source). ``reencode`` decodes every block and
Huffman-codes it again with the original tables; byte-identical output is
the proof that decoder and encoder agree with the producer of the file.
"""

from __future__ import annotations

import numpy as np

from . import bits
from .entropy import ZIGZAG, decode_blocks, encode_blocks, slot_tables, split_intervals
from .layout import check_size, layout
from .markers import as_bytes, parse


def _decode_all(data: bytes, tables: bytes | None, height: int | None):
    data = as_bytes(data)
    hdr = parse(data, tables, height)
    lay = layout(hdr)
    check_size(lay, hdr.entropy_end - hdr.entropy_start)
    st = slot_tables(hdr, lay)
    ncomp = len(hdr.scan_components)
    per_interval = []
    for iv in split_intervals(data, hdr, lay):
        buf = bits.unstuff(data[iv.start : iv.end])
        per_interval.append(decode_blocks(buf, iv.n_mcus, st, ncomp))
    return data, hdr, lay, st, per_interval


def coefficients(
    data: bytes, tables: bytes | None = None, height: int | None = None
) -> list[np.ndarray]:
    """Quantised coefficients per frame component.

    Each array has shape (blocks_y, blocks_x, 64), int32, coefficients in
    natural (row-major) order, absolute DC; the grid includes the padding
    blocks that complete the last MCU row and column.
    """
    _, hdr, lay, st, per_interval = _decode_all(data, tables, height)
    ncomp = len(hdr.scan_components)
    nslots = len(lay.slots)
    arrays = [
        np.zeros((lay.blocks_y[i], lay.blocks_x[i], 64), dtype=np.int32) for i in range(ncomp)
    ]
    zz = np.array(ZIGZAG)
    blocks = [b for chunk in per_interval for b in chunk]
    if not blocks:
        return arrays
    flat = np.zeros((len(blocks), 64), dtype=np.int32)
    flat[:, zz] = np.array(blocks, dtype=np.int32)
    for j in range(nslots):
        ci = lay.slots[j]
        c = hdr.scan_components[ci]
        v, h = lay.slot_pos[j]
        sel = flat[j::nslots].reshape(lay.mcus_y, lay.mcus_x, 64)
        if ncomp == 1:
            arrays[ci][:, :, :] = sel
        else:
            arrays[ci][v :: c.v, h :: c.h, :] = sel
    order = {c.ident: i for i, c in enumerate(hdr.scan_components)}
    return [arrays[order[c.ident]] for c in hdr.components]


def reencode(data: bytes, tables: bytes | None = None, height: int | None = None) -> bytes:
    """Decode every block and encode it again with the original tables.

    Equal to ``data`` for any stream produced by a conforming encoder that
    pads with 1-bits and uses no fill bytes (libjpeg does so).
    """
    data, hdr, lay, st, per_interval = _decode_all(data, tables, height)
    ncomp = len(hdr.scan_components)
    out = [data[: hdr.entropy_start]]
    for k, blocks in enumerate(per_interval):
        if k:
            out.append(bytes((0xFF, 0xD0 + ((k - 1) & 7))))
        out.append(bits.from_bitstring(encode_blocks(blocks, st, ncomp)))
    out.append(data[hdr.entropy_end :])
    return b"".join(out)
