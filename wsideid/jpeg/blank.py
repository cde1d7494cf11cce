"""Blank MCU-aligned regions of a baseline JPEG in the coefficient domain.

Only restart intervals that contain a blanked MCU are touched; all others
are copied byte for byte. Inside a touched interval the blocks are walked
without decoding AC values; blocks that stay are copied as bit spans, and
only three kinds of code are newly written: the DC difference and EOB of a
blanked block, and the DC difference of the first kept block after a
blanked run (its predictor changed). All codes come from the original
Huffman tables, so the header bytes stay valid verbatim.

Images of tile size go through libjpeg-turbo first when it is installed (``transcode``):
one decode and two lossless transcodes in C, the first proving that libjpeg codes the
image exactly as its source does, the second with the blocks flat; the walk above makes
the same bytes, in pure Python, for every image libjpeg does not prove itself on.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from . import bits, huffman
from .dcplan import allowed_steps, plan_run
from .entropy import Interval, SlotTables, interval_plan, scan_positions, slot_tables, split_intervals
from .errors import JpegBlankingError
from .fill import Fill, Target, targets
from .huffman import MAX_DC_CATEGORY
from .layout import Layout, check_size, layout, region_mask
from .markers import JpegHeader, as_bytes, parse


@dataclass
class BlankResult:
    """Output of ``blank_regions_detailed``.

    ``max_fill_error`` is the largest difference, in sample levels of any
    component, between a blanked block and the requested fill: 0 up to
    rounding, larger where the Huffman tables forced a nearby shade or a
    ramp (see dcplan).
    """

    data: bytes
    mcus_blanked: int
    intervals_reencoded: int
    max_fill_error: float


class Blanker:
    """Everything needed to re-encode intervals of one image.

    Container code gets it through the public functions; ndpi.py uses it
    directly to work interval by interval.
    """

    def __init__(
        self,
        data: bytes,
        fill: Fill,
        tables: bytes | None,
        height: int | None,
        colorspace: str | None,
    ) -> None:
        self.header: JpegHeader = parse(data, tables, height)
        self.layout: Layout = layout(self.header)
        check_size(self.layout, self.header.entropy_end - self.header.entropy_start)
        self.ncomp = len(self.header.scan_components)
        self.targets: list[Target] = targets(self.header, fill, colorspace)
        comps = self.header.scan_components
        # Codes for encoding, per MCU slot; the walk's decode tables (``slots``) are built
        # only when a walk runs: flat tiles and the libjpeg path need the codes alone.
        self._dc_codes = [huffman.codes(self.header.dc_tables[comps[i].td]) for i in self.layout.slots]
        self._ac_codes = [huffman.codes(self.header.ac_tables[comps[i].ta]) for i in self.layout.slots]
        self._steps = {}
        for i in range(len(comps)):
            codes = self._dc_codes[self.layout.slots.index(i)]
            self._steps[i] = allowed_steps(s for s in codes if s <= MAX_DC_CATEGORY)
        self.max_error = 0.0

    @functools.cached_property
    def slots(self) -> SlotTables:
        """Decode tables per MCU slot, for the walk (65536-entry lookups: built on first use)."""
        return slot_tables(self.header, self.layout)

    @property
    def dc_steps(self) -> dict[int, list[tuple[int, int]]]:
        """Per scan component, the DC differences its table codes (``dcplan.allowed_steps``)."""
        return self._steps

    def _eob_codes(self) -> list[str]:
        """EOB code per MCU slot; checked only when a block is to be blanked."""
        for codes in self._ac_codes:
            if 0x00 not in codes:
                raise JpegBlankingError("JPEG AC Huffman table has no end-of-block code; cannot blank")
        return [codes[0x00] for codes in self._ac_codes]

    # -- planning ---------------------------------------------------------

    def _plan(self, changed: list[bool], dcs: list[int] | None) -> dict[int, int]:
        """New DC for every changed block index of one interval."""
        nslots = len(self.layout.slots)
        new: dict[int, int] = {}
        for ci in range(self.ncomp):
            tgt = self.targets[ci]
            mine = [j for j in range(nslots) if self.layout.slots[j] == ci]
            idx = [m + j for m in range(0, len(changed), nslots) for j in mine]
            k = 0
            prev = 0
            while k < len(idx):
                if not changed[idx[k]]:
                    prev = dcs[idx[k]]  # type: ignore[index]
                    k += 1
                    continue
                j = k
                while j < len(idx) and changed[idx[j]]:
                    j += 1
                nxt = dcs[idx[j]] if j < len(idx) else None  # type: ignore[index]
                vals = plan_run(prev, nxt, j - k, tgt.dc, self._steps[ci], tgt.lo, tgt.hi)
                if vals is None:
                    raise JpegBlankingError(
                        "JPEG DC Huffman table cannot code a flat fill here "
                        "(optimised tables lack the needed DC differences)"
                    )
                for i, v in zip(idx[k:j], vals):
                    new[i] = v
                    err = abs(v - tgt.dc) * tgt.q0 / 8
                    if err > self.max_error:
                        self.max_error = err
                prev = vals[-1]
                k = j
        return new

    # -- encoding ---------------------------------------------------------

    def _dc_bits(self, slot: int, diff: int) -> str:
        s = bits.category(diff)
        code = self._dc_codes[slot].get(s)
        if code is None:  # dcplan rules this out; never emit a corrupt stream
            raise JpegBlankingError(f"JPEG DC Huffman table lacks category {s}")
        return code + bits.value_bits(diff, s)

    def reencode(self, raw: bytes, first_mcu: int, n_mcus: int, mask: bytearray) -> bytes:
        """New stuffed entropy bytes of one interval with masked MCUs blanked."""
        nslots = len(self.layout.slots)
        buf = bits.unstuff(raw)
        starts, acs, dcs, end = scan_positions(buf, n_mcus, self.slots, self.ncomp)
        changed = [bool(mask[first_mcu + i // nslots]) for i in range(n_mcus * nslots)]
        new = self._plan(changed, dcs)
        src = bits.to_bitstring(buf)
        eob = self._eob_codes()
        parts: list[str] = []
        pred = [0] * self.ncomp  # predictor in the output
        orig = [0] * self.ncomp  # predictor in the source
        span_a = span_b = 0  # pending verbatim copy src[span_a:span_b]
        n = len(changed)
        for i in range(n):
            slot = i % nslots
            ci = self.layout.slots[slot]
            if changed[i]:
                if span_b > span_a:
                    parts.append(src[span_a:span_b])
                span_a = span_b = 0
                d = new[i]
                parts.append(self._dc_bits(slot, d - pred[ci]))
                parts.append(eob[slot])
                pred[ci] = d
                orig[ci] = dcs[i]
                continue
            block_end = starts[i + 1] if i + 1 < n else end
            d = dcs[i]
            if pred[ci] == orig[ci]:
                if span_b != starts[i]:
                    if span_b > span_a:
                        parts.append(src[span_a:span_b])
                    span_a = starts[i]
                span_b = block_end
            else:
                if span_b > span_a:
                    parts.append(src[span_a:span_b])
                parts.append(self._dc_bits(slot, d - pred[ci]))
                span_a, span_b = acs[i], block_end
            pred[ci] = orig[ci] = d
        if span_b > span_a:
            parts.append(src[span_a:span_b])
        return bits.from_bitstring("".join(parts))

    def flat(self, n_mcus: int) -> bytes:
        """Stuffed entropy bytes of an interval of ``n_mcus`` flat MCUs."""
        nslots = len(self.layout.slots)
        new = self._plan([True] * (n_mcus * nslots), None)
        eob = self._eob_codes()
        parts = []
        pred = [0] * self.ncomp
        for i in range(n_mcus * nslots):
            slot = i % nslots
            ci = self.layout.slots[slot]
            parts.append(self._dc_bits(slot, new[i] - pred[ci]))
            parts.append(eob[slot])
            pred[ci] = new[i]
        return bits.from_bitstring("".join(parts))


def _rst(k: int) -> bytes:
    return bytes((0xFF, 0xD0 + (k & 7)))


def blank_regions_detailed(
    data: bytes,
    boxes,
    fill: Fill = "white",
    tables: bytes | None = None,
    height: int | None = None,
    colorspace: str | None = None,
    transcode: bool = True,
) -> BlankResult:
    """``blank_regions`` with statistics (see BlankResult). ``transcode=False`` skips the
    libjpeg-turbo path (``transcode.transcoded``): the walk makes the same bytes (tested)."""
    data = as_bytes(data)
    bl = Blanker(data, fill, tables, height, colorspace)
    hdr = bl.header
    mask = region_mask(bl.layout, boxes)
    intervals: list[Interval] = split_intervals(data, hdr, bl.layout)
    if transcode and any(mask):
        from . import transcode as libjpeg
        done = libjpeg.transcoded(bl, data, tables, mask)
        if done is not None:
            return BlankResult(done, sum(mask), 1, bl.max_error)
    out = [data[: hdr.entropy_start]]
    touched = 0
    for iv in intervals:
        if iv.index:
            out.append(_rst(iv.index - 1))
        raw = data[iv.start : iv.end]
        if any(mask[iv.first_mcu : iv.first_mcu + iv.n_mcus]):
            out.append(bl.reencode(raw, iv.first_mcu, iv.n_mcus, mask))
            touched += 1
        else:
            out.append(raw)
    out.append(data[hdr.entropy_end :])
    return BlankResult(b"".join(out), sum(mask), touched, bl.max_error)


def blank_regions(
    data: bytes,
    boxes,
    fill: Fill = "white",
    tables: bytes | None = None,
    height: int | None = None,
    colorspace: str | None = None,
) -> bytes:
    """Make boxes of a baseline JPEG a flat colour, keeping all other blocks.

    ``boxes``: (x, y, w, h) in the image's pixel coordinates; each grows
    outward to MCU boundaries (16x16 px for 4:2:0). Blocks inside become
    flat (DC only); every block outside keeps its exact quantised
    coefficients. Bytes before the entropy data and after it are kept
    verbatim; untouched restart intervals are copied byte for byte.

    ``fill``: 'white', 'black', 'gray' or (r, g, b). ``tables``: a TIFF
    JPEGTables blob for abbreviated streams. ``height``: lines when the SOF
    says 0 and no DNL follows. ``colorspace``: 'RGB' when three components
    are R, G, B without an Adobe marker saying so (Aperio Photometric=RGB).

    Raises JpegBlankingError for anything but 8-bit sequential Huffman JPEG,
    damaged data, or a fill the Huffman tables cannot code.
    """
    return blank_regions_detailed(data, boxes, fill, tables, height, colorspace).data


def flat_tile(
    data: bytes,
    fill: Fill = "white",
    tables: bytes | None = None,
    colorspace: str | None = None,
    height: int | None = None,
) -> bytes:
    """The whole image flat, same header: for tiles entirely inside a region.

    The old entropy data is not decoded (only its end is located), so this
    is cheap and also works on tiles whose entropy data is damaged.
    """
    data = as_bytes(data)
    hdr = parse(data, tables, height)
    head = data[: hdr.entropy_start]
    key = (head, fill if isinstance(fill, (str, int)) else tuple(fill), tables, height, colorspace)
    body = _FLAT.get(key)
    if body is None:
        bl = Blanker(data, fill, tables, height, colorspace)
        parts = []
        cache: dict[int, bytes] = {}
        for k, (_, n) in enumerate(interval_plan(hdr, bl.layout)):
            if k:
                parts.append(_rst(k - 1))
            if n not in cache:
                cache[n] = bl.flat(n)
            parts.append(cache[n])
        body = b"".join(parts)
        if len(_FLAT) >= _FLAT_MAX:
            _FLAT.clear()
        _FLAT[key] = body
    else:
        check_size(layout(hdr), hdr.entropy_end - hdr.entropy_start)
    return head + body + data[hdr.entropy_end :]


# Flat entropy data by header (and fill): the same for every tile of a level that shares its
# header, so a region covering many tiles codes it once. Bounded; a plain dict (its get and
# set are atomic, and a lost entry is only recomputed).
_FLAT: dict[tuple, bytes] = {}
_FLAT_MAX = 16
