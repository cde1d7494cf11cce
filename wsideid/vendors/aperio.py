"""Aperio SVS (Leica ScanScope / GT450 and Aperio Image Library output).

Detection (as OpenSlide): a TIFF whose first IFD is tiled and whose
ImageDescription starts with ``Aperio``. Roles: tiled IFDs are pyramid
levels; the stripped IFD 1 is the thumbnail; a stripped IFD is the label
when NewSubfileType is 1 or description line 2 starts with ``label``, the
macro when NewSubfileType is 9 or line 2 starts with ``macro``.

The ImageDescription is ``<header>|Key = Value|Key = Value...``; the header
is the software name and geometry history (``46000x32914 [0,100 ...]
(240x240) JPEG/RGB Q=30``), possibly several ``;``-joined generations. Keys
become ``description:<Key>`` fields; the header becomes
``description:@header``, which the profile types as ``aperio-header``: it is
rebuilt from tokens that each parse as their declared type (see
:func:`parse_header`), so a name or note smuggled into the history never
survives, and what was dropped is recorded for the verifier.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..model import KEEP, REMOVE, REPLACE, Decision, Field, Inventory, Plan, ValueKind
from ..tiff.container import Ifd, TiffFile
from ..valuepolicy import Verdict, control_free
from . import tiff_base

NAME = "aperio"
OPENSLIDE_VENDOR = "aperio"

# Description keys that name a person, a specimen, a file or a device.
IDENTITY_KEYS = {"Barcode", "Filename", "User", "Title", "ScanScope ID", "Scanner ID", "DSR ID", "ImageID",
                 "Rack", "Slide", "Patient", "Accession", "Webslide Files"}
MINIMAL_HEADER = "Aperio Image Library"

# --- the header grammar -----------------------------------------------------
# Software: "Aperio" + a product from this list + a version.
PRODUCTS = ("Image Library", "ImageScope", "Leica Biosystems GT450 DX", "Leica Biosystems GT450")
_VERSION = r"v(?:\d{1,3}(?:\.\d{1,5}){0,3}|FS\d{1,3} \d{1,3})"
_SOFTWARE = re.compile(r"Aperio (?:" + "|".join(re.escape(p) for p in PRODUCTS) + r") " + _VERSION + r"(?=[ ;\r\n]|$)")
# Codec/colour: an enumeration (JPEG/RGB, J2K/YUV16, J2K/KDU, RAW, ...).
CODECS = ("JPEG", "J2K", "JP2K", "RAW", "LZW", "NONE")
COLOURS = ("RGB", "YCC", "YCBCR", "YUV16", "KDU")
_WORD = re.compile(
    r"\d{1,7}x\d{1,7}"                       # image size 46000x32914
    r"|\[\d{1,7},\d{1,7}"                    # region start [0,100
    r"|\d{1,7}x\d{1,7}\]"                    # region end 46000x32914]
    r"|\[\d{1,7},\d{1,7}[ ,]\d{1,7}x\d{1,7}\]"  # region in one token
    r"|\(\d{1,5}x\d{1,5}\)"                  # tile size (256x256)
    r"|(?:" + "|".join(CODECS) + r")(?:/(?:" + "|".join(COLOURS) + r"))?"  # codec/colour
    r"|Q=\d{1,3}"                            # quality
    r"|->|-"                                  # resize history
    r"|label|macro")                          # associated-image line
_SPLIT = re.compile(r"(\r\n|\n|;| +)")


@dataclass
class HeaderParse:
    clean: str            # the header rebuilt from kept tokens
    dropped: list[str]    # runs of dropped text, in order


def parse_header(header: str) -> HeaderParse:
    """The header with every token that is not a typed Aperio token dropped.

    Tokens: a software name (``Aperio`` + a product from :data:`PRODUCTS` +
    a version), an image size ``WxH``, a region ``[x,y WxH]``, a tile size
    ``(WxH)``, a codec/colour from :data:`CODECS`/:data:`COLOURS`,
    ``Q=n``, ``->``/``-`` and ``label``/``macro``. Separators (spaces, line
    breaks, ``;``) are kept as they were; a lone CR or any other control
    character makes its token fail. A header with nothing dropped comes back
    unchanged; one that no longer starts with a software name gets
    ``Aperio Image Library`` first (readers detect Aperio by it).
    """
    pieces = _SPLIT.split(header)
    kept: list[tuple[str, bool]] = []   # (text, is_separator)
    dropped: list[str] = []
    run: list[str] = []
    i = 0
    while i < len(pieces):
        piece = pieces[i]
        if i % 2 or not piece:
            if piece:
                kept.append((piece, True))  # separators stay; doubled ones are tidied below
                if run:
                    run.append(piece)
            i += 1
            continue
        m = _SOFTWARE.match("".join(pieces[i:i + 16])) if piece == "Aperio" else None
        if m:
            # consume the pieces the software name spans
            span, j = "", i
            while len(span) < m.end():
                span += pieces[j]
                j += 1
            ok_text, i = span, j
        elif control_free(piece) and _WORD.fullmatch(piece):
            ok_text, i = piece, i + 1
        else:
            run.append(piece)
            i += 1
            continue
        if run:
            dropped.append("".join(run).strip(" ;\r\n"))
            run = []
        kept.append((ok_text, False))
    if run:
        dropped.append("".join(run).strip(" ;\r\n"))
    if not dropped:
        return HeaderParse(header, [])
    out = "".join(t for t, _ in kept)
    out = re.sub(r" {2,}", " ", out)
    out = re.sub(r"(?<=\n) +| +(?=\r?\n)| +(?=;)|(?<=;) +", "", out)
    out = re.sub(r"(\r?\n)(?:\r?\n)+", r"\1", out)
    out = re.sub(r";(?:\r?\n)*;", ";", re.sub(r";{2,}", ";", out)).strip(" ;\r\n")
    if not _SOFTWARE.match(out):
        out = MINIMAL_HEADER + ("\r\n" + out.lstrip(" ;\r\n") if out.strip(" ;\r\n") else "")
    # the fixed name readers need is not a removed value, even when a forged
    # software line spelled part of it
    return HeaderParse(out, [d for d in dropped if d and d not in MINIMAL_HEADER])


def check_header(f: Field) -> Verdict:
    """The value-policy check for ``type = "aperio-header"``."""
    if f.key != "description:@header" or not isinstance(f.value, str):
        return Verdict(False, note="value failed aperio-header (not an Aperio header)")
    parsed = parse_header(f.value)
    if parsed.clean == f.value:
        return Verdict(True, f.value)
    return Verdict(True, parsed.clean, REPLACE, parsed.dropped,
                   f"Aperio header rebuilt from typed tokens, {len(parsed.dropped)} run(s) dropped")


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
        kind = ValueKind.IDENTIFIER if key in IDENTITY_KEYS else ValueKind.TEXT
        fields.append(Field(f"{ifd.path}/ImageDescription/{key}", f"description:{key}", value.strip(),
                            ifd=k, tag=270, subkey=key, kind=kind))
    return fields


def refine(plan: Plan) -> None:
    """A removed header still leaves the minimal one readers detect Aperio by."""
    for d in plan.fields:
        if d.field.key == "description:@header" and d.action == REMOVE:
            d.action, d.new_value, d.rule = REPLACE, MINIMAL_HEADER, d.rule + " (minimal header kept for readers)"


def join_description(ifd: Ifd, decisions: list[Decision]) -> str | None:
    header = MINIMAL_HEADER
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
