"""Hamamatsu NDPI (NanoZoomer).

Detection: a TIFF whose first IFD carries tag 65420 (FileFormat), read with
NDPI's 64-bit offset extension. Roles from tag 65421 (SourceLens /
magnification): > 0 is a pyramid level (several focal planes share a
magnification and differ in 65424), -1 the macro, -2 the map. There is no
separate label image: the macro shows the physical label.

The property map (65449, CRLF ``Key=Value`` lines) becomes
``properties:<Key>`` fields and is rebuilt from the kept keys. NDPI private
tags are ``tags:<Name>`` fields like any other tag. The output keeps the
NDPI layout (8-byte first-IFD offset, high offset words after each IFD), so
OpenSlide and NDP.view still see an NDPI.
"""

from __future__ import annotations

import re

from ..model import KEEP, REMOVE, Decision, Field, Inventory, Plan, ValueKind
from ..tiff.container import Ifd, TiffFile
from . import tiff_base

NAME = "hamamatsu"
OPENSLIDE_VENDOR = "hamamatsu"

# Property-map keys that identify a device or a slide (serials, barcodes).
_IDENTITY_KEY = re.compile(r"(?:.*\.S/N|;SerialNumber|;BarcodeNo.*|.*[Bb]arcode(?:No)?|.*[Ss]erial.*)")


def claims(tf: TiffFile) -> bool:
    return tf.kind == "ndpi"


def roles(tf: TiffFile) -> list[str]:
    out = []
    for ifd in tf.ifds:
        lens = tiff_base.number(ifd, 65421, integer=False)
        if lens is None:
            out.append("other")
        elif lens == -1:
            out.append("macro")
        elif lens == -2:
            out.append("map")
        elif lens > 0:
            out.append("level")
        else:
            out.append("other")
    return out


def split_properties(k: int, ifd: Ifd, text: str) -> list[Field]:
    fields: list[Field] = []
    lines = text.replace("\r\n", "\n").split("\n")
    tiff_base.check_key_count(ifd, len(lines))
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


def inventory(tf: TiffFile) -> Inventory:
    inv = tiff_base.tiff_inventory(NAME, tf, roles(tf), {65449: split_properties})
    for ifd in tf.ifds:
        hint = None
        for line in (ifd.text(65449) or "").splitlines():
            if line.startswith("roi.barcode.macro="):
                hint = line.split("=", 1)[1]
        if hint:
            inv.notes.append("label location on macro (roi.barcode.macro) present")
            break
    return inv


def build(tf: TiffFile, plan: Plan, edited=None, mcu_starts=None):
    return tiff_base.build_ifds(tf, plan, {65449: join_properties}, edited, mcu_starts), "ndpi"
