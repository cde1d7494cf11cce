"""Entropy-coded segment: restart intervals, block scanning, decode, encode.

Three views of the same Huffman-coded data (T.81 F.1.2, F.2.2):

* ``scan_positions``: walks an interval recording only where each block
  starts, where its AC data starts and its absolute DC value. AC values are
  skipped, not decoded. This is all blanking needs, because untouched
  blocks are copied as bit spans instead of being re-encoded.
* ``decode_blocks``: full quantised coefficients (for ``coefficients()``
  and tests).
* ``encode_blocks``: the inverse of ``decode_blocks`` with the original
  tables; the round trip is the proof that both sides are right.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from . import bits
from .errors import JpegBlankingError
from .huffman import HuffmanTable, table
from .layout import Layout, check_size
from .markers import JpegHeader

_RST = re.compile(rb"\xff[\xd0-\xd7]")

# Natural (row-major) index of the k-th coefficient in zigzag order.
ZIGZAG = (
    0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5,
    12, 19, 26, 33, 40, 48, 41, 34, 27, 20, 13, 6, 7, 14, 21, 28,
    35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51,
    58, 59, 52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63,
)  # fmt: skip


@dataclass(frozen=True)
class Interval:
    """Raw bytes ``data[start:end]`` (no RST marker) coding ``n_mcus`` MCUs."""

    index: int
    start: int
    end: int
    first_mcu: int
    n_mcus: int


@dataclass(frozen=True)
class SlotTables:
    """Per block of an MCU: scan component index and its two tables."""

    comp: tuple[int, ...]
    dc: tuple[HuffmanTable, ...]
    ac: tuple[HuffmanTable, ...]


def slot_tables(header: JpegHeader, lay: Layout) -> SlotTables:
    comps = header.scan_components
    dc = [table(header.dc_tables[c.td], False) for c in comps]
    ac = [table(header.ac_tables[c.ta], True) for c in comps]
    return SlotTables(
        lay.slots, tuple(dc[i] for i in lay.slots), tuple(ac[i] for i in lay.slots)
    )


def interval_plan(header: JpegHeader, lay: Layout) -> list[tuple[int, int]]:
    """(first MCU, MCU count) of every restart interval the frame must have. The frame size is
    bounded by the entropy data first: a SOF of 65535x65535 with a restart interval of one MCU row
    made this list a million entries long (100+ MB) for a 100 KB strip."""
    check_size(lay, header.entropy_end - header.entropy_start)
    total = lay.total_mcus
    ri = header.restart_interval or total
    return [(m, min(ri, total - m)) for m in range(0, total, ri)]


def split_intervals(data: bytes, header: JpegHeader, lay: Layout) -> list[Interval]:
    """Locate every restart interval in ``data`` and check RST numbering."""
    plan = interval_plan(header, lay)
    starts = [header.entropy_start]
    ends = []
    for k, m in enumerate(_RST.finditer(data, header.entropy_start, header.entropy_end)):
        if k + 1 >= len(plan):
            raise JpegBlankingError("JPEG has more restart markers than restart intervals")
        if data[m.start() + 1] != 0xD0 + (k & 7):
            raise JpegBlankingError("JPEG restart markers are out of sequence")
        ends.append(m.start())
        starts.append(m.end())
    ends.append(header.entropy_end)
    if len(starts) != len(plan):
        raise JpegBlankingError("JPEG has fewer restart markers than restart intervals (truncated?)")
    return [Interval(i, s, e, f, n) for i, (s, e, (f, n)) in enumerate(zip(starts, ends, plan))]


def _corrupt() -> JpegBlankingError:
    return JpegBlankingError("JPEG entropy data is corrupt (invalid Huffman code or block overrun)")


def _truncated() -> JpegBlankingError:
    return JpegBlankingError("JPEG entropy data is truncated")


def _read_dc(win: list[int], p: int, dlut: list[int]) -> tuple[int, int]:
    """Decode one DC difference at bit ``p``; returns (new p, difference)."""
    e = dlut[(win[p >> 3] >> (16 - (p & 7))) & 0xFFFF]
    if not e:
        raise _corrupt()
    p += e & 31
    s = e >> 5
    if not s:
        return p, 0
    v = (win[p >> 3] >> (32 - (p & 7) - s)) & ((1 << s) - 1)
    if v < 1 << (s - 1):
        v -= (1 << s) - 1
    return p + s, v


def scan_positions(buf: bytes, n_mcus: int, st: SlotTables, ncomp: int):
    """Walk ``n_mcus`` MCUs of unstuffed interval data.

    Returns (starts, ac_starts, dcs, end): bit offset of every block, bit
    offset of its AC data, its absolute DC value, and the bit offset after
    the last block.
    """
    win = bits.windows(buf)
    nbits = 8 * len(buf)
    pred = [0] * ncomp
    starts: list[int] = []
    acs: list[int] = []
    dcs: list[int] = []
    slots = list(zip(st.comp, [t.lut for t in st.dc], [t.skip for t in st.ac], [t.multi for t in st.ac]))
    p = 0
    start, ac_start, dc = starts.append, acs.append, dcs.append
    for _ in range(n_mcus):
        for ci, dlut, askip, amulti in slots:
            start(p)
            e = dlut[(win[p >> 3] >> (16 - (p & 7))) & 0xFFFF]  # _read_dc, inlined: the hot loop
            if not e:
                raise _corrupt()
            p += e & 31
            s = e >> 5
            if s:
                v = (win[p >> 3] >> (32 - (p & 7) - s)) & ((1 << s) - 1)
                if v < 1 << (s - 1):
                    v -= (1 << s) - 1
                p += s
                pred[ci] += v
            dc(pred[ci])
            ac_start(p)
            k = 1
            while k < 64:
                w = (win[p >> 3] >> (16 - (p & 7))) & 0xFFFF
                e = amulti[w]  # several symbols at once (huffman._multi) ...
                k2 = k + (e >> 6)
                if k2 > 64 and not 128 < k2 < 192:
                    e = askip[w]  # ... unless they would cross the block's end: one symbol
                    k2 = k + (e >> 6)
                p += e & 63
                k = k2
            # Legal ends: exactly 64 (coefficient 63 coded) or EOB (128 + k).
            if k != 64 and not 128 < k < 192:
                raise _corrupt()
            if p > nbits:
                raise _truncated()
    return starts, acs, dcs, p


def decode_blocks(buf: bytes, n_mcus: int, st: SlotTables, ncomp: int) -> list[list[int]]:
    """Quantised coefficients (zigzag order, absolute DC) of every block."""
    win = bits.windows(buf)
    nbits = 8 * len(buf)
    pred = [0] * ncomp
    out: list[list[int]] = []
    slots = list(zip(st.comp, [t.lut for t in st.dc], [t.lut for t in st.ac]))
    p = 0
    for _ in range(n_mcus):
        for ci, dlut, alut in slots:
            p, diff = _read_dc(win, p, dlut)
            pred[ci] += diff
            block = [0] * 64
            block[0] = pred[ci]
            k = 1
            while k < 64:
                e = alut[(win[p >> 3] >> (16 - (p & 7))) & 0xFFFF]
                if not e:
                    raise _corrupt()
                p += e & 31
                sym = e >> 5
                s = sym & 15
                if s:
                    k += sym >> 4
                    if k > 63:
                        raise _corrupt()
                    v = (win[p >> 3] >> (32 - (p & 7) - s)) & ((1 << s) - 1)
                    if v < 1 << (s - 1):
                        v -= (1 << s) - 1
                    p += s
                    block[k] = v
                    k += 1
                elif sym == 0xF0:
                    k += 16
                else:
                    break
            if k > 64:
                raise _corrupt()
            if p > nbits:
                raise _truncated()
            out.append(block)
    return out


def encode_blocks(blocks, st: SlotTables, ncomp: int) -> str:
    """Huffman-code whole MCUs of blocks (as from ``decode_blocks``) to bits.

    Raises JpegBlankingError when a needed code is missing from a table
    (optimised tables only hold the symbols their image used).
    """
    parts: list[str] = []
    pred = [0] * ncomp
    nslots = len(st.comp)
    for i, block in enumerate(blocks):
        j = i % nslots
        ci = st.comp[j]
        diff = block[0] - pred[ci]
        pred[ci] = block[0]
        s = bits.category(diff)
        parts.append(_code(st.dc[j], s))
        parts.append(bits.value_bits(diff, s))
        acodes = st.ac[j]
        run = 0
        for k in range(1, 64):
            v = block[k]
            if not v:
                run += 1
                continue
            while run > 15:
                parts.append(_code(acodes, 0xF0))
                run -= 16
            s = bits.category(v)
            parts.append(_code(acodes, run << 4 | s))
            parts.append(bits.value_bits(v, s))
            run = 0
        if run:
            parts.append(_code(acodes, 0x00))
    return "".join(parts)


def _code(t: HuffmanTable, symbol: int) -> str:
    try:
        return t.codes[symbol]
    except KeyError:
        raise JpegBlankingError(
            f"JPEG Huffman table lacks the code for symbol 0x{symbol:02X}"
        ) from None
