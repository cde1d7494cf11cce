"""The blanking walk's shortcuts (issue 14: blanking speed) give what the plain walk gives.

``entropy.scan_positions`` reads several AC symbols per 16-bit lookup (``huffman._multi``)
and falls back to one symbol where an entry would cross its block's end; ``blank.flat_tile``
codes the flat entropy data once per header. Both are checked against the slow forms they
replace, on every fixture variant (optimised tables, restart intervals, odd sampling) and
on damaged data, where the errors must be the same."""

from __future__ import annotations

import random

import pytest

from jpeg_fixtures import VARIANTS, variant
from wsideid.jpeg import JpegBlankingError, bits, blank
from wsideid.jpeg.blank import Blanker, flat_tile
from wsideid.jpeg.entropy import _corrupt, _read_dc, _truncated, scan_positions, split_intervals
from wsideid.jpeg.markers import parse


def _plain_walk(buf: bytes, n_mcus: int, st, ncomp: int):
    """The walk before issue 14: one AC symbol per lookup."""
    win = bits.windows(buf)
    nbits = 8 * len(buf)
    pred = [0] * ncomp
    starts, acs, dcs = [], [], []
    p = 0
    for _ in range(n_mcus):
        for ci, dlut, askip in zip(st.comp, [t.lut for t in st.dc], [t.skip for t in st.ac]):
            starts.append(p)
            p, diff = _read_dc(win, p, dlut)
            pred[ci] += diff
            dcs.append(pred[ci])
            acs.append(p)
            k = 1
            while k < 64:
                e = askip[(win[p >> 3] >> (16 - (p & 7))) & 0xFFFF]
                p += e & 63
                k += e >> 6
            if k != 64 and not 128 < k < 192:
                raise _corrupt()
            if p > nbits:
                raise _truncated()
    return starts, acs, dcs, p


def _outcome(fn, *args):
    try:
        return fn(*args)
    except JpegBlankingError as exc:
        return str(exc)


def _intervals(data: bytes):
    bl = Blanker(data, "white", None, None, None)
    for iv in split_intervals(data, bl.header, bl.layout):
        yield bits.unstuff(data[iv.start:iv.end]), iv.n_mcus, bl.slots, bl.ncomp


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_multi_symbol_walk_equals_the_plain_walk(name):
    for args in _intervals(variant(name)):
        assert scan_positions(*args) == _plain_walk(*args)


@pytest.mark.parametrize("name", ["420", "444opt", "rst420rows", "odd_sampling"])
def test_multi_symbol_walk_fails_where_the_plain_walk_fails(name):
    """Flipped bits and cut data: the same positions or the same error, never a different reading."""
    rng = random.Random(name)
    for buf, n, st, ncomp in _intervals(variant(name)):
        for _ in range(40):
            bad = bytearray(buf)
            for _ in range(rng.randint(1, 4)):
                i = rng.randrange(len(bad))
                bad[i] ^= 1 << rng.randrange(8)
            cut = bytes(bad[: rng.randint(len(bad) // 2, len(bad))])
            for data in (bytes(bad), cut):
                assert _outcome(scan_positions, data, n, st, ncomp) == _outcome(_plain_walk, data, n, st, ncomp)


def _flat_uncached(data: bytes, fill) -> bytes:
    bl = Blanker(data, fill, None, None, None)
    hdr = bl.header
    from wsideid.jpeg.entropy import interval_plan
    out = [data[: hdr.entropy_start]]
    for k, (_, n) in enumerate(interval_plan(hdr, bl.layout)):
        if k:
            out.append(bytes((0xFF, 0xD0 + ((k - 1) & 7))))
        out.append(bl.flat(n))
    out.append(data[hdr.entropy_end:])
    return b"".join(out)


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_flat_tile_from_the_cache_is_the_flat_tile(name):
    blank._FLAT.clear()
    src = variant(name)
    for fill in ("white", "black", (200, 30, 40)):
        want = _flat_uncached(src, fill)
        assert flat_tile(src, fill) == want  # computed
        assert flat_tile(src, fill) == want  # from the cache
    assert len(blank._FLAT) == 3  # one entry per fill: fills never share one


def test_flat_cache_still_refuses_a_frame_its_data_cannot_hold():
    """A cache hit skips the Blanker, not the size check (a truncated tile with a known header)."""
    blank._FLAT.clear()
    src = variant("420")
    flat_tile(src)
    hdr = parse(src)
    short = src[: hdr.entropy_start] + src[hdr.entropy_start:hdr.entropy_start + 8] + b"\xff\xd9"
    with pytest.raises(JpegBlankingError, match="larger than its entropy data"):
        flat_tile(short)
