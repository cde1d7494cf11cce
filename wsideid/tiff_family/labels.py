"""A generated replacement label for TIFF slides (the label IFD rewritten).

Labs often want the shared slide to still show *a* label, one that carries
the research ID (as text and as a DataMatrix) instead of the patient's. The
new label has the original's size, one LZW strip, RGB; the IFD keeps the
vendor's marks (Aperio NewSubfileType 1 and "label WxH" description line)
so that OpenSlide and viewers still list it as the label. Pixels and tags
are made from the research ID and fixed strings only: no byte of the
removed label (its description included) reaches the new one.
"""

from __future__ import annotations

import struct

import numpy as np

from ..errors import WsideidError
from ..tiff.container import Ifd
from ..label_image import label_pixels
from ..tiff.writer import ImageData, OutEntry, OutIfd


LABEL_SOFTWARE = "Aperio Image Library"


def label_description(width: int, height: int) -> str:
    """The generated label's Aperio description: fixed text and its own size, nothing else.

    Readers find the label by NewSubfileType 1 and this ``label WxH`` line;
    the removed label's description (software line, notes) is never copied.
    """
    return f"{LABEL_SOFTWARE}\r\nlabel {width}x{height}"


def replacement_label_ifd(ifd: Ifd, research_id: str | None, aperio_description: bool = False) -> OutIfd:
    import imagecodecs
    if not research_id:
        raise WsideidError("a replacement label needs a research ID (--new-id)")
    w, h = int(ifd.value(256, 0)), int(ifd.value(257, 0))
    if not (16 <= w <= 4096 and 16 <= h <= 4096):
        w, h = 400, 400
    pixels = label_pixels(research_id, w, h)
    strip = imagecodecs.lzw_encode(np.ascontiguousarray(pixels).tobytes())
    bo = ifd.byteorder

    def num(tag: int, typ: int, *values: int) -> OutEntry:
        fmt = {3: "H", 4: "I"}[typ]
        return OutEntry(tag, typ, len(values), struct.pack(f"{bo}{len(values)}{fmt}", *values))

    entries = {254: num(254, 4, 1), 256: num(256, 4, w), 257: num(257, 4, h), 258: num(258, 3, 8, 8, 8),
               259: num(259, 3, 5), 262: num(262, 3, 2), 277: num(277, 3, 3), 278: num(278, 4, h),
               284: num(284, 3, 1)}
    if aperio_description:
        raw = label_description(w, h).encode("ascii") + b"\0"
        entries[270] = OutEntry(270, 2, len(raw), raw)
    data = ImageData(273, 279, np.array([0], np.int64), np.array([len(strip)], np.int64), {0: strip})
    return OutIfd(entries, data)
