"""Aperio SVS (Leica ScanScope / GT450 and Aperio Image Library output).

Detection (as OpenSlide): a TIFF whose first IFD is tiled and whose
ImageDescription starts with ``Aperio``. Roles (see ``roles`` and
``pyramid``): IFD 0 and the smaller same-aspect tiled IFDs with
NewSubfileType 0 are pyramid levels; a stripped IFD is the label when
NewSubfileType is 1 or its header says ``label``, the macro when 9 or
``macro`` (both markers must agree), the thumbnail at IFD 1 when it is a
reduced copy of level 0; anything else is unknown and removed.

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
from . import pyramid, tiff_base
from .pyramid import UNKNOWN, RoleCall

NAME = "aperio"
OPENSLIDE_VENDOR = "aperio"

_SOFTWARE = re.compile(r"^Aperio(?: [A-Za-z0-9]{1,20}){0,4} v?\d+(?:\.\d+)*[A-Za-z0-9.\-]* ?$")
_GEOMETRY = re.compile(r"^(?:(?:label|macro) )?\d+x\d+(?:[0-9x\[\],() \->]|[A-Z0-9]{2,6}/[A-Z0-9]{2,6}|Q=\d+)*$")


def claims(tf: TiffFile) -> bool:
    if not tf.ifds or not tf.ifds[0].has(324):
        return False
    desc = tf.ifds[0].text(270) or ""
    return desc.startswith("Aperio")


def _header(ifd: Ifd) -> str:
    """The description before its first ``|``: software and geometry lines, where
    Aperio writes ``label``/``macro`` (a key value such as a file name is not a marker)."""
    return (ifd.text(270) or "").split("|")[0]


def _level_veto(ifd: Ifd) -> str | None:
    nst = pyramid.subfile_type(ifd)
    if nst != 0:
        return f"tiled with NewSubfileType {nst} (Aperio levels have 0)"
    kw = pyramid.description_keyword(_header(ifd))
    if kw:
        return f"tiled, but its description says {kw!r}"
    return None


def _stripped_role(i: int, ifd: Ifd, w0: int, h0: int) -> RoleCall:
    """Label, macro or thumbnail, each only when the markers agree."""
    nst = pyramid.subfile_type(ifd)
    kw = pyramid.description_keyword(_header(ifd))
    label = nst == 1 or kw == "label"
    macro = nst == 9 or kw == "macro"
    if label and macro:
        return RoleCall(UNKNOWN, f"markers disagree: NewSubfileType {nst}, description says {kw!r}")
    if label or macro:
        role = "label" if label else "macro"
        if nst not in (0, 1 if label else 9) or (kw not in (None, role)):
            return RoleCall(UNKNOWN, f"markers disagree: NewSubfileType {nst}, description says {kw!r}")
        return RoleCall(role)
    if i != 1:
        return RoleCall(UNKNOWN, f"stripped image at IFD {i} that no marker names (NewSubfileType {nst})")
    w, h = pyramid.size_of(ifd)
    if nst != 0 or kw not in (None, "thumbnail"):
        return RoleCall(UNKNOWN, f"thumbnail position, but NewSubfileType {nst}, description says {kw!r}")
    if not (w <= w0 and h <= h0 and pyramid.same_aspect(w0, h0, w, h)):
        return RoleCall(UNKNOWN, f"thumbnail position, but {w}x{h} is not a reduced {w0}x{h0}")
    return RoleCall("thumbnail")


def roles(tf: TiffFile) -> list[RoleCall]:
    """IFD 0 is the full-resolution level; a later tiled IFD is a level only when
    it is a smaller, same-aspect image with NewSubfileType 0 and no label/macro
    word; stripped IFDs are label, macro or thumbnail only when their markers agree
    (OpenSlide's aperio driver takes every tiled IFD for a level, so a tiled label
    would be shown as tissue)."""
    top = tf.ifds
    w0, h0 = pyramid.size_of(top[0])
    cands = [pyramid.Candidate(i, *pyramid.size_of(ifd), _level_veto(ifd))
             for i, ifd in enumerate(top) if ifd.has(324)]
    levels = pyramid.establish(cands, cands[0].index) if cands else {}
    calls: list[RoleCall] = []
    for i, ifd in enumerate(top):
        if i in levels:
            why = levels[i]
            calls.append(RoleCall(pyramid.LEVEL) if why is None else RoleCall(UNKNOWN, why))
        else:
            calls.append(_stripped_role(i, ifd, w0, h0))
    return pyramid.subifd_roles(tf, calls)


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
    return tiff_base.tiff_inventory(NAME, tf, roles, {270: split_description})


def build(tf: TiffFile, plan: Plan, edited=None, mcu_starts=None):
    return tiff_base.build_ifds(tf, plan, {270: join_description}, edited, mcu_starts), tf.kind
