"""Ventana BIF (Roche VENTANA DP 200/600, iScan HT/Coreo).

Detection (as OpenSlide's ventana driver): a TIFF or BigTIFF whose IFD 0
carries an XMP packet (tag 700) whose root is ``iScan`` or ``Metadata``
holding an ``iScan`` element. Roles from the ImageDescription, which BIF
spells exactly: ``level=N mag=M quality=Q`` a pyramid level (levels in
order, magnification strictly decreasing, sizes in proportion),
``Label Image``/``Label_Image`` the macro (OpenSlide's name for it: a photo
of the glass, label included), ``Thumbnail`` the thumbnail,
``Probability_Image`` the tissue-detection map; anything else is unknown.

The XMP is split by :mod:`..xmlscrub` (by structure): ``iScan`` attributes (barcodes,
unit number, user, dates, scanner serial) become ``xmp:iScan@<Attr>``
fields, the level-0 ``EncodeInfo`` (tile overlaps and AOI origins, which
OpenSlide needs to place tiles) ``xmp:EncodeInfo/...@<Attr>`` fields, each
typed by the profile; elements outside :data:`STRUCTURE` are dropped whole.
OpenSlide reads the iScan XMP from IFD 0: when IFD 0 (the label) is
removed, the scrubbed iScan is carried to the first kept IFD.
"""

from __future__ import annotations

import re

from ...errors import MalformedFile
from ...model import Decision, Field, Inventory, Plan
from ...tiff.container import Ifd, TiffFile
from ...tiff.writer import OutEntry
from .. import xmlscrub
from . import pyramid, tiff_base
from .pyramid import UNKNOWN, RoleCall

NAME = "ventana"
TITLE = "Ventana BIF"
EXTENSIONS = (".bif",)
PHI_CARRIERS = (
    "Carriers: TIFF tags of every IFD; the ImageDescription (a fixed word or `level=N mag=M "
    "quality=Q`, kept only as that); the XMP packet (tag 700): the `iScan` element's attributes "
    "(barcodes, unit number, user, base and file names, dates) and level 0's `EncodeInfo` (tile "
    "overlaps and AOI origins, kept typed: OpenSlide needs them), elements outside the BIF structure "
    "dropped whole; the `Label Image` / `Label_Image` (OpenSlide's macro) and the `Probability_Image` "
    "map. When IFD 0 (the label) goes, the scrubbed iScan moves to the first kept IFD, where "
    "OpenSlide looks for it.",
)
OPENSLIDE_VENDOR = "ventana"
XMP = 700

LEVEL_DESC = re.compile(r"level=(\d{1,2}) mag=(\d{1,3}(?:\.\d{1,6})?) quality=(\d{1,3})")
MACRO_DESCS = ("Label Image", "Label_Image")
THUMBNAIL_DESC = "Thumbnail"
MAP_DESC = "Probability_Image"
# Elements kept as structure, spelled as profile paths ("#" = an index in the name, AOI0 -> AOI#).
STRUCTURE = {
    "Metadata", "iScan", "iScan/AOI#",
    "EncodeInfo", "EncodeInfo/SlideInfo", "EncodeInfo/SlideInfo/iScan", "EncodeInfo/SlideInfo/iScan/AOI#",
    "EncodeInfo/SlideStitchInfo", "EncodeInfo/SlideStitchInfo/ImageInfo",
    "EncodeInfo/SlideStitchInfo/ImageInfo/TileJointInfo", "EncodeInfo/AoiOrigin", "EncodeInfo/AoiOrigin/AOI#",
}
# iScan attributes that name a person, a specimen, a file or a device (wsi-anon's list and more).
IDENTITY_ATTRS = {"Barcode1D", "Barcode2D", "UnitNumber", "UserName", "BaseName", "JP2FileName",
                  "SlideAnnotation", "ScannerSerialNumber", "LabelBoundary", "ScanWhitePoint"}


def _name(path: list[str]) -> str | None:
    """The profile spelling of an element path (the Metadata wrapper left out), or None."""
    names = [xmlscrub.local(p) for p in path if not p.startswith("{")]
    if len(names) != len(path):
        return None  # a namespaced element is nobody's iScan structure
    if names[0] == "Metadata" and len(names) > 1:
        names = names[1:]
    spelled = "/".join(re.sub(r"\d+$", "#", n) if re.fullmatch(r"AOI\d{1,4}", n) else n for n in names)
    if spelled not in STRUCTURE:
        return None
    # level 0's EncodeInfo repeats the iScan: one spelling, one set of profile rules
    return spelled.removeprefix("EncodeInfo/SlideInfo/")


def _identity(key: str) -> bool:
    return key.rpartition("@")[2] in IDENTITY_ATTRS


def _iscan_root(text: str) -> bool:
    if "iScan" not in text:
        return False
    try:
        root = xmlscrub.parse(text, "XMP", xmlscrub.MAX_FIELD_XML_CHARS)
    except MalformedFile:
        return False
    if root.tag == "iScan":
        return True
    return root.tag == "Metadata" and any(c.tag == "iScan" for c in root)


def claims(tf: TiffFile) -> bool:
    return bool(tf.ifds) and tf.ifds[0].has(XMP) and _iscan_root(tf.ifds[0].text(XMP) or "")


def _level(ifd: Ifd) -> tuple[int, float] | None:
    m = LEVEL_DESC.fullmatch(ifd.text(270) or "")
    return (int(m.group(1)), float(m.group(2))) if m else None


def roles(tf: TiffFile) -> list[RoleCall]:
    """Levels where the description says ``level=N mag=M`` and the pyramid rule holds:
    level 0 is the full-resolution image, the others follow it in order with
    strictly decreasing magnification and a size in proportion to it (within a
    tile of padding); the other descriptions name macro, thumbnail and map."""
    top = tf.ifds
    info = [_level(ifd) for ifd in top]
    sizes = [pyramid.size_of(ifd) for ifd in top]
    zero = [i for i, lv in enumerate(info) if lv is not None and lv[0] == 0]
    levels: dict[int, str | None] = {}
    if len(zero) == 1:
        base = zero[0]
        mag0 = info[base][1]
        cands, want, prev_mag = [], 0, float("inf")
        for i, lv in enumerate(info):
            if lv is None:
                continue
            veto = None
            tw = int(tiff_base.number(top[i], 322, 0) or 0)
            if not top[i].has(324):
                veto = "a level description on an image that is not tiled"
            elif lv[0] != want or not 0 < lv[1] < prev_mag:
                veto = f"level={lv[0]} mag={lv[1]:g} out of order"
            elif i > base:
                ew = sizes[base][0] * lv[1] / mag0
                if abs(sizes[i][0] - ew) > tw + 0.01 * ew:
                    veto = f"mag={lv[1]:g} gives width {ew:.0f} from level 0, not {sizes[i][0]}"
            if i >= base:
                want, prev_mag = lv[0] + 1, lv[1]
            cands.append(pyramid.Candidate(i, *sizes[i], veto))
        levels = pyramid.establish(cands, base)
    calls: list[RoleCall] = []
    for i, ifd in enumerate(top):
        desc = ifd.text(270) or ""
        if i in levels:
            calls.append(pyramid.level_call(levels[i]))
        elif info[i] is not None:
            calls.append(RoleCall(UNKNOWN, f"level description, but {len(zero)} images claim level 0"))
        elif desc in MACRO_DESCS:
            calls.append(RoleCall("macro"))
        elif desc == THUMBNAIL_DESC:
            calls.append(RoleCall("thumbnail"))
        elif desc == MAP_DESC:
            calls.append(RoleCall("map"))
        else:
            calls.append(RoleCall(UNKNOWN, "no BIF image description names it"))
    return pyramid.subifd_roles(tf, calls)


def split_xmp(k: int, ifd: Ifd, text: str) -> list[Field]:
    return xmlscrub.split(k, ifd, XMP, text, "xmp", _name, _identity)


def join_xmp(ifd: Ifd, decisions: list[Decision]) -> str | None:
    return xmlscrub.join(ifd.text(XMP) or "", decisions, _name, f"{ifd.path}/XMP")


def refine(plan: Plan) -> None:
    """Nothing beyond the profile: the iScan move happens when the IFDs are built."""


def inventory(tf: TiffFile) -> Inventory:
    return tiff_base.tiff_inventory(NAME, tf, roles, {XMP: split_xmp})


def _xmp_entry(text: str) -> OutEntry:
    raw = text.encode("utf-8")
    return OutEntry(XMP, 1, len(raw), raw)  # XMP is BYTE data (TIFF/XMP spec), as BIF writes it


def build(tf: TiffFile, plan: Plan, edited=None, mcu_starts=None):
    out = tiff_base.build_ifds(tf, plan, {XMP: join_xmp}, edited, mcu_starts)
    for o in out:
        if XMP in o.entries:
            o.entries[XMP] = _xmp_entry(o.entries[XMP].raw.rstrip(b"\0").decode("utf-8"))
    removed = {d.image.index for d in plan.images if d.action == "remove"}
    if out and 0 in removed:
        # OpenSlide finds a BIF by the iScan XMP of IFD 0: the scrubbed one moves to the new first IFD
        decs = [d for d in tiff_base.decisions_by_ifd(plan).get(0, []) if d.field.tag == XMP]
        iscan = join_xmp(tf.ifds[0], decs)
        if XMP in out[0].entries and not _iscan_root(out[0].entries[XMP].raw.decode("utf-8")):
            raise MalformedFile("BIF: the first kept image holds the EncodeInfo XMP, so the iScan XMP OpenSlide "
                                "reads from IFD 0 has no place (keep the thumbnail)")
        out[0].entries[XMP] = _xmp_entry(iscan)
    return out, tf.kind
