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
become ``description:<Key>`` fields; the header becomes
``description:@header``, which the profile types as ``aperio-header``: it is
rebuilt from tokens that each parse as their declared type (see
:func:`parse_header`), so a name or note smuggled into the history never
survives, and what was dropped is recorded for the verifier.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ...dates import kept_text_holds_date
from ...model import KEEP, REMOVE, REPLACE, Decision, Field, Inventory, Plan, ValueKind
from ...tiff.container import Ifd, TiffFile
from ...valuepolicy import ValueType, Verdict, control_free, register_checker
from . import pyramid, tiff_base
from .pyramid import UNKNOWN, RoleCall

NAME = "aperio"
TITLE = "Aperio SVS"
EXTENSIONS = (".svs",)
OPENSLIDE_VENDOR = "aperio"
PHI_CARRIERS = (
    "Carriers: TIFF tags of every IFD; the ImageDescription of every IFD, split into its header "
    "(software and geometry history) and `Key = Value` pairs; the label (NewSubfileType 1) and macro "
    "(NewSubfileType 9) images; APPn/COM segments inside JPEG tiles and JPEGTables (always stripped, "
    "except a bare JFIF APP0 and the Adobe APP14).",
    "The header is rebuilt from tokens that each parse as their type (an Aperio product name and "
    "version, sizes `WxH`, regions `[x,y WxH]`, tiles `(WxH)`, codec/colour from an enumeration, `Q=n`, "
    "`->`): a name, file name or note in the history never survives, and the dropped text is recorded "
    "for the verifier.",
)

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
# Sizes and region corners have at most 6 digits: 75 mm of glass at 0.1 um/px is 750,000 px, and
# a 7-digit run is a record number ("4477139x1" was kept as a size, round 6's open item).
_WORD = re.compile(
    r"\d{1,6}x\d{1,6}"                       # image size 46000x32914
    r"|\[\d{1,6},\d{1,6}"                    # region start [0,100
    r"|\d{1,6}x\d{1,6}\]"                    # region end 46000x32914]
    r"|\[\d{1,6},\d{1,6}[ ,]\d{1,6}x\d{1,6}\]"  # region in one token
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
        if m and kept_text_holds_date(m.group(0)):
            m = None  # a version spelling a date ("v17.03.1987", round 6): its tokens are dropped
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
    # The fixed name readers need is not a removed value, even when a forged software line
    # spelled part of it; a header that drops nothing else is returned as it is, so that the
    # rebuilt header (which starts with that name) parses to itself.
    if not [d for d in dropped if not (d == MINIMAL_HEADER and header.startswith(MINIMAL_HEADER))]:
        return HeaderParse(header, [])
    dropped = [d for d in dropped if d and d not in MINIMAL_HEADER]
    out = "".join(t for t, _ in kept)
    out = re.sub(r" {2,}", " ", out)
    out = re.sub(r"(?<=\n) +| +(?=\r?\n)| +(?=;)|(?<=;) +", "", out)
    out = re.sub(r"(\r?\n)(?:\r?\n)+", r"\1", out)
    out = re.sub(r";(?:\r?\n)*;", ";", re.sub(r";{2,}", ";", out)).strip(" ;\r\n")
    if not _SOFTWARE.match(out):
        out = MINIMAL_HEADER + ("\r\n" + out.lstrip(" ;\r\n") if out.strip(" ;\r\n") else "")
    return HeaderParse(out, dropped)


def check_header(f: Field) -> Verdict:
    """The value-policy check for ``type = "aperio-header"``."""
    if f.key != "description:@header" or not isinstance(f.value, str):
        return Verdict(False, note="value failed aperio-header (not an Aperio header)")
    parsed = parse_header(f.value)
    if parsed.clean == f.value:
        return Verdict(True, f.value)
    return Verdict(True, parsed.clean, REPLACE, parsed.dropped,
                   f"Aperio header rebuilt from typed tokens, {len(parsed.dropped)} run(s) dropped")


register_checker(ValueType.APERIO_HEADER.value, check_header)


def claims(tf: TiffFile) -> bool:
    if not tf.ifds or not tf.ifds[0].has(324):
        return False
    desc = tf.ifds[0].text(270) or ""
    return desc.startswith("Aperio")


def _header(ifd: Ifd) -> str:
    """The description before its first ``|``: software and geometry lines, where
    Aperio writes ``label``/``macro`` (a key value such as a file name is not a marker)."""
    return (ifd.text(270) or "").partition("|")[0]  # partition: a hostile text of a million "|" is not split


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
            calls.append(pyramid.level_call(levels[i]))
        else:
            calls.append(_stripped_role(i, ifd, w0, h0))
    return pyramid.subifd_roles(tf, calls)


def split_description(k: int, ifd: Ifd, text: str) -> list[Field]:
    tiff_base.check_key_count(ifd, text.count("|") + 1)  # before the split allocates the parts
    parts = text.split("|")
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
    return tiff_base.tiff_inventory(NAME, tf, roles, {270: split_description})


def build(tf: TiffFile, plan: Plan, edited=None, mcu_starts=None):
    return tiff_base.build_ifds(tf, plan, {270: join_description}, edited, mcu_starts), tf.kind
