"""Aperio SVS (Leica ScanScope / GT450 and Aperio Image Library output).

Detection (as OpenSlide): a TIFF whose first IFD is tiled and whose
ImageDescription starts with ``Aperio``. Roles: tiled IFDs are pyramid
levels; the stripped IFD 1 is the thumbnail; a stripped IFD is the label
when NewSubfileType is 1 or description line 2 starts with ``label``, the
macro when NewSubfileType is 9 or line 2 starts with ``macro``.

The ImageDescription is ``<header>|Key = Value|Key = Value...``; the header
is the software name and geometry history (``46000x32914 [0,100 ...]
(240x240) JPEG/RGB Q=30``), possibly several ``;``-joined generations. Keys
become ``description:<Key>`` fields; the header becomes ``description:@header``
and is rebuilt from the pieces that match the Aperio grammar only, so a file
name or note smuggled into the history never survives.
"""

from __future__ import annotations

import re

from ..model import KEEP, REMOVE, REPLACE, Decision, Field, Inventory, Plan
from ..tiff.container import Ifd, TiffFile
from . import tiff_base

NAME = "aperio"
OPENSLIDE_VENDOR = "aperio"

_SOFTWARE = re.compile(r"^Aperio(?: [A-Za-z0-9]{1,20}){0,4} v?\d+(?:\.\d+)*[A-Za-z0-9.\-]* ?$")
_GEOMETRY = re.compile(r"^(?:(?:label|macro) )?\d+x\d+(?:[0-9x\[\],() \->]|[A-Z0-9]{2,6}/[A-Z0-9]{2,6}|Q=\d+)*$")


def claims(tf: TiffFile) -> bool:
    if not tf.ifds or not tf.ifds[0].has(324):
        return False
    desc = tf.ifds[0].text(270) or ""
    return desc.startswith("Aperio")


def _line2(ifd: Ifd) -> str:
    lines = (ifd.text(270) or "").split("|")[0].splitlines()
    return lines[1].strip() if len(lines) > 1 else ""


def roles(tf: TiffFile) -> list[str]:
    out = []
    for i, ifd in enumerate(tf.ifds):
        nst = ifd.value(254, 0)
        line2 = _line2(ifd)
        if ifd.has(324):
            out.append("level")
        elif nst == 1 or line2.startswith("label"):
            out.append("label")
        elif nst == 9 or line2.startswith("macro"):
            out.append("macro")
        elif i == 1:
            out.append("thumbnail")
        else:
            out.append("other")
    return out


def split_description(k: int, ifd: Ifd, text: str) -> list[Field]:
    parts = text.split("|")
    tiff_base.check_key_count(ifd, len(parts))
    fields = [Field(f"{ifd.path}/ImageDescription/@header", "description:@header", parts[0],
                    ifd=k, tag=270, subkey="@header")]
    for j, part in enumerate(parts[1:], 1):
        key, eq, value = part.partition("=")
        key = key.strip()
        if not eq or not key:
            # A bare token in the key list: nothing vouches for it.
            fields.append(Field(f"{ifd.path}/ImageDescription/#{j}", "description:@bare", part.strip(),
                                ifd=k, tag=270, subkey=f"#{j}"))
            continue
        fields.append(Field(f"{ifd.path}/ImageDescription/{key}", f"description:{key}", value.strip(),
                            ifd=k, tag=270, subkey=key))
    return fields


def sanitize_header(header: str) -> str:
    """Keep only the software names and geometry pieces of an Aperio header."""
    tokens = re.split(r"(\r\n|\n|;)", header)
    kept: list[str] = []
    for i in range(0, len(tokens), 2):
        piece = tokens[i]
        sep = tokens[i - 1] if i else ""
        stripped = piece.strip()
        if not stripped:
            continue
        if _SOFTWARE.match(piece.strip() + " ") or _SOFTWARE.match(stripped) or _GEOMETRY.match(stripped):
            kept.append((sep if kept else "") + piece)
    out = "".join(kept)
    return out if out.startswith("Aperio") else "Aperio Image Library" + ("\r\n" + out if out else "")


def refine(plan: Plan) -> None:
    """A kept header still passes through the Aperio grammar."""
    for d in plan.fields:
        if d.field.key == "description:@header" and d.action != REMOVE:
            base = d.new_value if d.new_value is not None else d.field.value
            clean = sanitize_header(str(base))
            if clean != d.field.value:
                d.action, d.new_value = REPLACE, clean
                d.rule += " + Aperio header grammar"
        if d.field.key == "description:@header" and d.action == REMOVE:
            d.action, d.new_value, d.rule = REPLACE, "Aperio Image Library", d.rule + " (minimal header kept for readers)"


def join_description(ifd: Ifd, decisions: list[Decision]) -> str | None:
    header = "Aperio Image Library"
    pairs: list[str] = []
    for d in decisions:
        if d.field.subkey == "@header":
            header = str(d.new_value if d.action != KEEP else d.field.value)
            continue
        if d.action == REMOVE:
            continue
        value = d.field.value if d.action == KEEP else d.new_value
        pairs.append(str(value) if d.field.subkey.startswith("#") else f"{d.field.subkey} = {value}")
    return "|".join([header] + pairs)


def inventory(tf: TiffFile) -> Inventory:
    return tiff_base.tiff_inventory(NAME, tf, roles(tf), {270: split_description})


def build(tf: TiffFile, plan: Plan, edited=None, mcu_starts=None):
    return tiff_base.build_ifds(tf, plan, {270: join_description}, edited, mcu_starts), tf.kind
