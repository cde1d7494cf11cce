"""MCU geometry of a scan and the mapping from pixel boxes to MCUs.

Blanking works in whole MCUs: with 4:2:0 one chroma block covers 16x16
pixels, so blanking only the luma blocks of a box would leave the original
chroma visible. Boxes therefore grow outward to MCU boundaries.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import JpegBlankingError
from .markers import JpegHeader


@dataclass(frozen=True)
class Layout:
    """Where every block of the scan sits.

    ``slots[i]`` is the scan-component index of the i-th block of an MCU and
    ``slot_pos[i]`` its (row, column) offset in blocks inside the MCU.
    """

    mcu_w: int
    mcu_h: int
    mcus_x: int
    mcus_y: int
    slots: tuple[int, ...]
    slot_pos: tuple[tuple[int, int], ...]
    blocks_x: tuple[int, ...]  # per scan component, including MCU padding
    blocks_y: tuple[int, ...]

    @property
    def total_mcus(self) -> int:
        return self.mcus_x * self.mcus_y


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def layout(header: JpegHeader) -> Layout:
    """Compute the MCU grid (T.81 A.2) of the header's single scan."""
    comps = header.scan_components
    if len(comps) == 1:
        c = comps[0]
        hmax = max(x.h for x in header.components)
        vmax = max(x.v for x in header.components)
        bx = _ceil_div(_ceil_div(header.width * c.h, hmax), 8)
        by = _ceil_div(_ceil_div(header.height * c.v, vmax), 8)
        if (c.h, c.v) != (hmax, vmax):
            raise JpegBlankingError("subsampled single-component scan is not supported")
        return Layout(8, 8, bx, by, (0,), ((0, 0),), (bx,), (by,))
    hmax = max(c.h for c in comps)
    vmax = max(c.v for c in comps)
    mcu_w, mcu_h = 8 * hmax, 8 * vmax
    mx, my = _ceil_div(header.width, mcu_w), _ceil_div(header.height, mcu_h)
    slots, pos = [], []
    for i, c in enumerate(comps):
        for v in range(c.v):
            for h in range(c.h):
                slots.append(i)
                pos.append((v, h))
    return Layout(
        mcu_w,
        mcu_h,
        mx,
        my,
        tuple(slots),
        tuple(pos),
        tuple(mx * c.h for c in comps),
        tuple(my * c.v for c in comps),
    )


def check_size(lay: Layout, entropy_bytes: int) -> None:
    """Refuse a frame whose block count the entropy data cannot possibly hold.

    Every block needs at least two bits (a DC code and an EOB), so this
    bounds every allocation by the input size before anything is allocated.
    """
    blocks = lay.total_mcus * len(lay.slots)
    if blocks > 4 * entropy_bytes + 64:
        raise JpegBlankingError("JPEG frame is larger than its entropy data can hold (truncated?)")


def region_mask(lay: Layout, boxes) -> bytearray:
    """One byte per MCU in raster order: 1 where a grown box covers it."""
    mask = bytearray(lay.total_mcus)
    for box in boxes:
        try:
            x, y, w, h = (int(v) for v in box)
        except (TypeError, ValueError):
            raise JpegBlankingError("a box must be four integers (x, y, w, h)") from None
        if w <= 0 or h <= 0:
            continue
        x0 = max(0, x // lay.mcu_w)
        y0 = max(0, y // lay.mcu_h)
        x1 = min(lay.mcus_x, _ceil_div(x + w, lay.mcu_w))
        y1 = min(lay.mcus_y, _ceil_div(y + h, lay.mcu_h))
        if x1 <= x0 or y1 <= y0:
            continue
        row = b"\x01" * (x1 - x0)
        for my in range(y0, y1):
            base = my * lay.mcus_x
            mask[base + x0 : base + x1] = row
    return mask
