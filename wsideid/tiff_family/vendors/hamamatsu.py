"""Hamamatsu NDPI (NanoZoomer).

Detection: a TIFF whose first IFD carries tag 65420 (FileFormat), read with
NDPI's 64-bit offset extension. Roles from tag 65421 (SourceLens /
magnification): -1 the macro, -2 the map; > 0 a pyramid level only when its
size is in proportion to the highest magnification's (several focal planes
share a magnification and differ in 65424); anything else is unknown. There is no
separate label image: the macro shows the physical label.

The property map (65449, CRLF ``Key=Value`` lines) becomes
``properties:<Key>`` fields and is rebuilt from the kept keys. NDPI private
tags are ``tags:<Name>`` fields like any other tag. The output keeps the
NDPI layout (8-byte first-IFD offset, high offset words after each IFD), so
OpenSlide and NDP.view still see an NDPI.
"""

from __future__ import annotations

import math
import re

from ...errors import MalformedFile
from ...model import KEEP, REMOVE, Decision, Field, Inventory, Plan, ValueKind
from ...tiff.container import Ifd, TiffFile
from ...tiff.tags import NDPI_COMMENTS
from . import pyramid, tiff_base
from .pyramid import UNKNOWN, RoleCall

NAME = "hamamatsu"
TITLE = "Hamamatsu NDPI"
EXTENSIONS = (".ndpi",)
OPENSLIDE_VENDOR = "hamamatsu"
PHI_CARRIERS = (
    "Carriers: TIFF tags of every IFD, including the private tags 65420-65480 (SlideLabel 65427 is "
    "repeated in every IFD); the property map in tag 65449 (CRLF `Key=Value` lines, including a shading "
    "block whose keys start with `;`); the macro (SourceLens -1), which shows the printed label; the map "
    "(SourceLens -2); vendor comments inside the JPEG strips (the fixed `Hamamatsu NanoZoomer Digital "
    "Pathology` comment is kept, any other is stripped and McuStarts moved accordingly).",
)

# Property-map keys that identify a device or a slide (serials, barcodes).
_IDENTITY_KEY = re.compile(r"(?:.*\.S/N|;SerialNumber|;BarcodeNo.*|.*[Bb]arcode(?:No)?|.*[Ss]erial.*)")


def claims(tf: TiffFile) -> bool:
    return tf.kind == "ndpi"


def _mag(ifd: Ifd) -> float | None:
    """Magnification, or None when absent or not a finite number (NaN and
    infinity compare false with every size rule and would slip through)."""
    v = tiff_base.number(ifd, 65421, integer=False)
    return float(v) if v is not None and math.isfinite(float(v)) else None


def roles(tf: TiffFile) -> list[RoleCall]:
    """Levels by magnification, established by size.

    The highest magnification is the full-resolution level (it must also be
    the largest image); another magnification is a level only when its size
    is in proportion to it (``w0 * mag / mag0``, within 1 % and a JPEG block
    of padding) and the pyramid rule holds. Focal planes (65424 != 0) are
    levels when they match a level of the same magnification exactly. A
    macro relabelled with a positive magnification fails the size rule.
    """
    top = tf.ifds
    mags = [_mag(ifd) for ifd in top]
    z = [tiff_base.number(ifd, 65424, 0, integer=False) or 0 for ifd in top]
    sizes = [pyramid.size_of(ifd) for ifd in top]
    plane0 = [i for i, m in enumerate(mags) if m is not None and m > 0 and z[i] == 0]
    levels: dict[int, str | None] = {}
    if plane0:
        base = max(plane0, key=lambda i: (mags[i], -i))
        w0, h0 = sizes[base]
        largest = max(plane0, key=lambda i: (sizes[i][0] * sizes[i][1], -i))
        cands = []
        for i in plane0:
            veto = None
            ew, eh = w0 * mags[i] / mags[base], h0 * mags[i] / mags[base]
            if i == base and largest != base:
                veto = f"magnification {mags[i]:g} is the highest, but image {largest} is larger"
            elif abs(sizes[i][0] - ew) > 16 + 0.01 * ew or abs(sizes[i][1] - eh) > 16 + 0.01 * eh:
                veto = (f"magnification {mags[i]:g} gives {ew:.0f}x{eh:.0f} from level 0, "
                        f"not {sizes[i][0]}x{sizes[i][1]}")
            cands.append(pyramid.Candidate(i, *sizes[i], veto))
        cands.sort(key=lambda c: -(mags[c.index] or 0))  # NDPI stores levels by magnification
        levels = pyramid.establish(cands, base)
    calls: list[RoleCall] = []
    for i, m in enumerate(mags):
        if i in levels:
            calls.append(pyramid.level_call(levels[i]))
        elif m is None:
            calls.append(RoleCall(UNKNOWN, "no finite Magnification (tag 65421)"))
        elif m == -1:
            calls.append(RoleCall("macro"))
        elif m == -2:
            calls.append(RoleCall("map"))
        elif m > 0:
            twin = [j for j in levels if levels[j] is None and mags[j] == m and sizes[j] == sizes[i]]
            calls.append(RoleCall(pyramid.LEVEL) if twin else
                         RoleCall(UNKNOWN, f"focal plane {z[i]:g} matches no level of magnification {m:g}"))
        else:
            calls.append(RoleCall(UNKNOWN, f"Magnification {m:g} names no NDPI image kind"))
    return pyramid.subifd_roles(tf, calls)


def split_properties(k: int, ifd: Ifd, text: str) -> list[Field]:
    fields: list[Field] = []
    tiff_base.check_key_count(ifd, text.count("\n") + 1)  # before the split allocates the lines
    lines = text.replace("\r\n", "\n").split("\n")
    for j, line in enumerate(lines):
        if not line.strip():
            continue
        key, eq, value = line.partition("=")
        if not eq or not key.strip():
            fields.append(Field(f"{ifd.path}/Comments/#{j}", "properties:@bare", line, ifd=k, tag=65449,
                                subkey=f"#{j}"))
            continue
        kind = ValueKind.IDENTIFIER if _IDENTITY_KEY.fullmatch(key.strip()) else ValueKind.TEXT
        fields.append(Field(f"{ifd.path}/Comments/{key.strip()}", f"properties:{key.strip()}", value,
                            ifd=k, tag=65449, subkey=key.strip(), kind=kind))
    return fields


def join_properties(ifd: Ifd, decisions: list[Decision]) -> str | None:
    lines = []
    for d in decisions:
        if d.action == REMOVE:
            continue
        value = d.field.value if d.action == KEEP else d.new_value
        lines.append(str(value) if d.field.subkey.startswith("#") else f"{d.field.subkey}={value}")
    return "\r\n".join(lines) + "\r\n" if lines else None


def refine(plan: Plan) -> None:
    """Nothing vendor-specific beyond the profile for NDPI."""


def check_mcu_starts(tf: TiffFile) -> None:
    """McuStarts (65426, with McuStartsHighBytes 65432) must be what they claim: increasing offsets
    inside the IFD's one strip, each after the first following an RSTn marker (FF D0-D7).

    Why (round 5): they are offsets, so the value policy does not read them for words (in a strip
    past 1 GB any offset's bytes can be letters), and the profile keeps them as numbers: a name
    written over them was published. Only real restart offsets pass now."""
    import numpy as np

    from ...tiff.container import integer_array
    for ifd in tf.all_ifds():
        if 65426 not in ifd.entries:
            continue
        data = tiff_base.image_data(ifd, tf.byteorder)
        starts = integer_array(ifd.entries[65426], tf.byteorder)
        if 65432 in ifd.entries:
            high = integer_array(ifd.entries[65432], tf.byteorder)
            if len(high) != len(starts):
                raise MalformedFile(f"{ifd.path}: NDPI McuStartsHighBytes does not match McuStarts")
            starts = starts + (high << 32)
        if data is None or len(data.src_offsets) != 1 or not len(starts):
            raise MalformedFile(f"{ifd.path}: NDPI McuStarts without one strip to point into")
        size = int(data.src_counts[0])
        if np.any(np.diff(starts) <= 0) or starts[0] < 2 or starts[-1] >= size:
            raise MalformedFile(f"{ifd.path}: NDPI McuStarts are not increasing offsets inside the strip")
        at = int(data.src_offsets[0]) + starts[1:]
        if len(at) and at[-1] > tf.size:
            raise MalformedFile(f"{ifd.path}: NDPI strip past the end of the file")
        marks = _two_bytes_before(tf.path, at, ifd.path)
        if len(at) and (np.any(marks[:, 0] != 0xFF) or np.any((marks[:, 1] & 0xF8) != 0xD0)):
            raise MalformedFile(f"{ifd.path}: NDPI McuStarts do not follow restart markers")


def _two_bytes_before(path: str, at, where: str):
    """The two bytes before each of the increasing positions ``at`` (an n x 2 uint8 array), read
    in windows of at most 1 MB. Why not a map: a file cut short while read made the map's read a
    SIGBUS, which killed the run without a word."""
    import numpy as np
    out = np.empty((len(at), 2), np.uint8)
    with open(path, "rb") as fh:
        i = 0
        while i < len(at):
            start = int(at[i]) - 2
            j = max(i + 1, int(np.searchsorted(at, start + (1 << 20), "right")))
            n = int(at[j - 1]) - start
            fh.seek(start)
            buf = fh.read(n)
            if len(buf) != n:
                raise MalformedFile(f"{where}: NDPI strip past the end of the file (or the file got shorter while read)")
            win = np.frombuffer(buf, np.uint8)
            rel = np.asarray(at[i:j], np.int64) - start
            out[i:j, 0], out[i:j, 1] = win[rel - 2], win[rel - 1]
            i = j
    return out


def inventory(tf: TiffFile) -> Inventory:
    check_mcu_starts(tf)
    inv = tiff_base.tiff_inventory(NAME, tf, roles, {65449: split_properties})
    for ifd in tf.ifds:
        hint = None
        for line in (ifd.text(65449) or "").splitlines():
            if line.startswith("roi.barcode.macro="):
                hint = line.split("=", 1)[1]
        if hint:
            inv.notes.append("label location on macro (roi.barcode.macro) present")
            break
    return inv


def label_hint(ifd: Ifd, size: tuple[int, int]):
    """The label box on the macro from the property map's ``roi.*.macro`` keys (x1, y1, x2, y2
    in macro pixels), or None."""
    from ...detect.label_location import ndpi_label_hint
    props = {}
    for line in (ifd.text(NDPI_COMMENTS) or "").splitlines():
        key, _, value = line.partition("=")
        props[key.strip()] = value.strip()
    return ndpi_label_hint(props, size) if props else None


def build(tf: TiffFile, plan: Plan, edited=None, mcu_starts=None):
    return tiff_base.build_ifds(tf, plan, {65449: join_properties}, edited, mcu_starts), "ndpi"
