"""Blanking inside one JPEG strip addressed by restart-interval offsets.

Hamamatsu NDPI stores each level as one huge JPEG strip with restart
markers and records where every interval's entropy data starts (McuStarts,
tag 65426). Readers seek straight to those offsets, so they must stay
valid. Only intervals that meet a box are re-encoded; when the new bytes
are shorter the gap is filled with 0xFF fill bytes before the next marker
(T.81 B.1.1.2), so every offset stays the same and the caller need not
rewrite McuStarts. Only when an interval grows is the strip rebuilt and
new offsets returned.
"""

from __future__ import annotations

from .blank import Blanker
from .entropy import interval_plan
from .errors import JpegBlankingError
from .fill import Fill
from .layout import region_mask
from .markers import as_bytes


def blank_restart_intervals(
    strip: bytes,
    mcu_starts: list[int],
    boxes,
    fill: Fill = "white",
    height: int | None = None,
    colorspace: str | None = None,
) -> tuple[bytes, list[int]]:
    """Blank boxes of a restart-marked JPEG strip; returns (strip, mcu_starts).

    ``mcu_starts[i]``: byte offset, relative to the strip start, of the
    entropy data of restart interval i (just after SOS for i = 0, just
    after RST for the others). The returned list equals the input unless
    a re-encoded interval outgrew its old bytes.
    """
    strip = as_bytes(strip)
    bl = Blanker(strip, fill, None, height, colorspace)
    hdr = bl.header
    plan = interval_plan(hdr, bl.layout)
    starts = [int(s) for s in mcu_starts]
    if len(starts) != len(plan):
        raise JpegBlankingError(
            f"McuStarts has {len(starts)} entries but the strip has {len(plan)} restart intervals"
        )
    if not starts or starts[0] != hdr.entropy_start:
        raise JpegBlankingError("McuStarts does not begin at the entropy data of the strip")
    for i in range(1, len(starts)):
        s = starts[i]
        if not (starts[i - 1] < s <= hdr.entropy_end) or strip[s - 2 : s] != bytes(
            (0xFF, 0xD0 + ((i - 1) & 7))
        ):
            raise JpegBlankingError(f"McuStarts entry {i} does not follow a restart marker")
    ends = [s - 2 for s in starts[1:]] + [hdr.entropy_end]
    mask = region_mask(bl.layout, boxes)
    out: list[bytes] = []
    new_starts = list(starts)
    copied = 0  # strip[:copied] has been emitted (modulo growth)
    shift = 0
    for i, (first, n) in enumerate(plan):
        if not any(mask[first : first + n]):
            new_starts[i] = starts[i] + shift
            continue
        out.append(strip[copied : starts[i]])
        new_starts[i] = starts[i] + shift
        old_len = ends[i] - starts[i]
        data = bl.reencode(strip[starts[i] : ends[i]], first, n, mask)
        if len(data) <= old_len:
            data += b"\xff" * (old_len - len(data))
        else:
            shift += len(data) - old_len
        out.append(data)
        copied = ends[i]
    out.append(strip[copied:])
    return b"".join(out), new_starts
