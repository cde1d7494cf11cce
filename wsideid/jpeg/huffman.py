"""Huffman tables: canonical codes, decode lookup tables, encode maps.

Decoding uses one flat 65536-entry list per table indexed by the next 16
bits of the stream, so every symbol costs one lookup whatever its length.
Tables are cached by their DHT content: a slide has a handful of distinct
tables but thousands of tiles.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from .errors import JpegBlankingError
from .markers import HuffmanSpec

# Largest magnitude categories baseline 8-bit data can hold (T.81 F.1.2).
MAX_DC_CATEGORY = 11
MAX_AC_SIZE = 10

EOB = 0x00
ZRL = 0xF0

# ``skip`` entry of a prefix that is no code: advances nothing but pushes
# the coefficient index past every legal end state, so the hot loop needs
# no test per symbol and the check after the block catches it.
SKIP_INVALID = 1024 << 6


@dataclass(frozen=True)
class HuffmanTable:
    """A table ready for use.

    ``lut``: 16-bit prefix -> ``length | symbol << 5`` (0 = no such code or
    a symbol illegal in baseline data).
    ``skip``: AC tables only, 16-bit prefix -> ``(length + size) | k_step << 6``
    where k_step advances the coefficient index (EOB advances by 128 so the
    block loop ends and the end state tells EOB from a full block; a prefix
    that is no code holds SKIP_INVALID).
    ``codes``: symbol -> code as a '0'/'1' string, for the encoder.
    """

    lut: list[int]
    skip: list[int] | None
    codes: dict[int, str]
    multi: list[int] | None = None  # AC: ``skip`` over every symbol whose code the 16 bits hold


MULTI_ROUNDS = 3  # symbols after the first that one ``multi`` entry may add


def _multi(lut: list[int], skip: list[int]) -> list[int]:
    """Per 16-bit prefix, the ``skip`` entry of as many AC symbols as the prefix decodes.

    The first symbol is the ``skip`` entry; each further one is added while its whole code
    lies inside the 16 bits (its extra bits may lie beyond: they are skipped, not read) and
    no EOB or invalid code came before. The k steps add up, so the walk can tell when an
    entry would cross the end of its block and then falls back to ``skip`` (see
    ``entropy.scan_positions``). Built with numpy: a few milliseconds per table.
    """
    import numpy as np
    v = np.arange(65536, dtype=np.int64)
    code_len = np.asarray(lut, dtype=np.int64) & 31  # 0: no code
    one = np.asarray(skip, dtype=np.int64)
    tot, step = one & 63, one >> 6
    acc_len, acc_step = tot.copy(), step.copy()
    active = (code_len > 0) & (step < 128) & (acc_len < 16)
    for _ in range(MULTI_ROUNDS):
        nxt = (v << np.minimum(acc_len, 16)) & 0xFFFF
        cl = code_len[nxt]
        ok = active & (cl > 0) & (cl <= 16 - acc_len)
        acc_len = np.where(ok, acc_len + tot[nxt], acc_len)
        acc_step = np.where(ok, acc_step + step[nxt], acc_step)
        active = ok & (step[nxt] < 128) & (acc_len < 16)
    return (acc_len | acc_step << 6).tolist()


def _canonical(spec: HuffmanSpec) -> list[tuple[int, int, int]]:
    """(symbol, code, length) per T.81 Annex C; rejects over-full tables."""
    out = []
    code = 0
    k = 0
    for length in range(1, 17):
        for _ in range(spec.counts[length - 1]):
            if code >= 1 << length:
                raise JpegBlankingError("JPEG Huffman table is over-subscribed")
            out.append((spec.symbols[k], code, length))
            code += 1
            k += 1
        code <<= 1
    return out


@lru_cache(maxsize=64)
def _codes(counts: tuple[int, ...], symbols: bytes) -> dict[int, str]:
    codes: dict[int, str] = {}
    for symbol, code, length in _canonical(HuffmanSpec(counts, symbols)):
        codes.setdefault(symbol, format(code, f"0{length}b"))
    return codes


def codes(spec: HuffmanSpec) -> dict[int, str]:
    """symbol -> code ('0'/'1' string; the first a table gives a symbol) of a DHT table, for
    encoding: cheap, without the decode tables ``table`` builds (cached; do not modify)."""
    return _codes(spec.counts, spec.symbols)


@lru_cache(maxsize=64)
def _build(counts: tuple[int, ...], symbols: bytes, is_ac: bool) -> HuffmanTable:
    spec = HuffmanSpec(counts, symbols)
    lut = [0] * 65536
    skip = [SKIP_INVALID] * 65536 if is_ac else None
    codes = dict(_codes(counts, symbols))
    for symbol, code, length in _canonical(spec):
        if is_ac:
            size, run = symbol & 15, symbol >> 4
            legal = size <= MAX_AC_SIZE and (size or run in (0, 15))
        else:
            legal = symbol <= MAX_DC_CATEGORY
        if not legal:
            continue
        shift = 16 - length
        first = code << shift
        span = 1 << shift
        lut[first : first + span] = [length | symbol << 5] * span
        if skip is not None:
            if symbol == EOB:
                step = 128
            elif symbol == ZRL:
                step = 16
            else:
                step = run + 1
            skip[first : first + span] = [(length + size) | step << 6] * span
    return HuffmanTable(lut, skip, codes, _multi(lut, skip) if skip is not None else None)


def table(spec: HuffmanSpec, is_ac: bool) -> HuffmanTable:
    """The (cached) usable form of a DHT table."""
    return _build(spec.counts, spec.symbols, is_ac)
