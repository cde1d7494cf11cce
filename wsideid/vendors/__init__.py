"""Format modules, one per vendor, and detection by content.

Order matters: the most specific claim first (NDPI's private tag, then
Aperio's description), the generic tiled TIFF last. Detection never looks
at the file name.
"""

from __future__ import annotations

from types import ModuleType

from ..errors import UnsupportedFormat
from ..tiff.container import TiffFile
from . import aperio, generic_tiff, hamamatsu, leica, ome_tiff, philips, qptiff, ventana

TIFF_VENDORS: list[ModuleType] = [hamamatsu, aperio, philips, qptiff, ventana, leica, ome_tiff, generic_tiff]


def detect_tiff_vendor(tf: TiffFile) -> ModuleType:
    for mod in TIFF_VENDORS:
        if mod.claims(tf):
            return mod
    first = tf.ifds[0] if tf.ifds else None
    seen = []
    if first is not None:
        seen.append("first IFD " + ("tiled" if first.has(324) else "not tiled"))
        for tag, label in ((305, "Software"), (271, "Make")):
            v = first.text(tag)
            if v:
                seen.append(f"{label}={v[:40]!r}")
    raise UnsupportedFormat(f"unsupported TIFF: no vendor module claims it ({', '.join(seen) or 'no IFDs'})")
