"""Leica SCN (SCN400, Aperio Versa).

Detection (as OpenSlide's leica driver): a TIFF whose IFD 0 is tiled and
whose ImageDescription is XML with the default namespace
``http://www.leica-microsystems.com/scn/2010/03/10`` or ``/2010/10/01``.
That XML (on IFD 0 only) maps the file: ``/scn/collection`` (size in nm)
holds ``image`` elements, each with a ``view`` (size and offset in nm) and
``pixels/dimension`` entries naming the IFD of each resolution (``ifd``),
its size and z-plane. Roles come from that map and nothing else: the image
at offset 0,0 spanning the collection is the macro (its own small pyramid;
every IFD of it is "macro"); a brightfield image's z-plane-0 dimensions are
pyramid levels when the IFD has the size the map gives and the pyramid rule
holds; an IFD no dimension names, or of a fluorescence image or another
z-plane, is unknown.

The XML is split by :mod:`..xmlscrub` (by structure) into ``scn:<path>@<attr>`` and
``scn:<path>/text()`` fields typed by the profile; elements outside
:data:`STRUCTURE` are dropped whole. Removing IFDs renumbers the others, so
the rebuilt XML drops the dimensions (and images) of removed IFDs and
renumbers ``ifd`` attributes; when IFD 0 (the macro) goes, the XML moves to
the new IFD 0, where OpenSlide looks for it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ...errors import MalformedFile
from ...model import Decision, Field, Inventory, Plan
from ...tiff.container import Ifd, TiffFile
from .. import xmlscrub
from . import pyramid, tiff_base
from .pyramid import UNKNOWN, RoleCall

NAME = "leica"
TITLE = "Leica SCN"
EXTENSIONS = (".scn",)
PHI_CARRIERS = (
    "Carriers: TIFF tags of every IFD; IFD 0's ImageDescription, the SCN XML map (collection name, "
    "uuid and Base64 barcode, per-image name, uuid, creation date, device model, version and serial, "
    "view and pixel dimensions with their IFD numbers), elements outside the SCN structure dropped "
    "whole; the macro, its own small pyramid (the image whose view spans the collection at 0,0). The "
    "map's `ifd` numbers are renumbered when images are removed, and it moves to the new IFD 0.",
)
OPENSLIDE_VENDOR = "leica"
LEVEL_SIZES_FROM_MAP = True  # OpenSlide's levels span the collection (nm / nm per pixel), not the IFD sizes
NAMESPACES = ("http://www.leica-microsystems.com/scn/2010/10/01", "http://www.leica-microsystems.com/scn/2010/03/10")
STRUCTURE = {
    "scn", "collection", "collection/barcode", "collection/image", "collection/image/creationDate",
    "collection/image/device", "collection/image/pixels", "collection/image/pixels/dimension",
    "collection/image/view", "collection/image/scanSettings", "collection/image/scanSettings/objectiveSettings",
    "collection/image/scanSettings/objectiveSettings/objective",
    "collection/image/scanSettings/illuminationSettings",
    "collection/image/scanSettings/illuminationSettings/numericalAperture",
    "collection/image/scanSettings/illuminationSettings/illuminationSource",
}
IFD_KEY = "scn:collection/image/pixels/dimension@ifd"
BARCODE_KEY = "scn:collection/barcode/text()"
IDENTITY = re.compile(r".*(@name|@uuid|@serial|@barcode|@ocr|barcode/text\(\)|@user.*)")


def _name(path: list[str]) -> str | None:
    """The profile spelling of an element path (``scn`` root left out), or None when not SCN structure."""
    if any(xmlscrub.namespace(p) not in NAMESPACES for p in path):
        return None
    names = [xmlscrub.local(p) for p in path]
    spelled = "/".join(names[1:]) if len(names) > 1 else names[0]
    return spelled if names[0] == "scn" and spelled in STRUCTURE else None


def _identity(key: str) -> bool:
    return bool(IDENTITY.fullmatch(key))


def _root(tf: TiffFile):
    text = tf.ifds[0].text(270) or ""
    if not any(ns in text for ns in NAMESPACES):
        return None
    try:
        root = xmlscrub.parse(text, "ifd[0]/ImageDescription", xmlscrub.MAX_FIELD_XML_CHARS)
    except MalformedFile:
        return None
    return root if root.tag in {f"{{{ns}}}scn" for ns in NAMESPACES} else None


def claims(tf: TiffFile) -> bool:
    return bool(tf.ifds) and tf.ifds[0].has(324) and _root(tf) is not None


@dataclass
class ScnImage:
    macro: bool
    brightfield: bool
    dims: list[tuple[int, int, int, bool]]  # (ifd, width, height, z-plane 0)


def _int(el, attr: str) -> int:
    v = el.get(attr)
    if v is None or not re.fullmatch(r"-?\d{1,15}", v.strip()):
        raise MalformedFile(f"SCN XML: {xmlscrub.local(el.tag)}@{attr} is not an integer")
    return int(v)


def scn_map(tf: TiffFile) -> list[ScnImage]:
    root = _root(tf)
    if root is None:
        raise MalformedFile("SCN XML missing")
    ns = xmlscrub.namespace(root.tag)
    q = lambda n: f"{{{ns}}}{n}"  # noqa: E731 - qualified name in the document's namespace
    coll = root.find(q("collection"))
    if coll is None:
        raise MalformedFile("SCN XML without a collection")
    cw, ch = _int(coll, "sizeX"), _int(coll, "sizeY")
    out = []
    for img in coll.findall(q("image")):
        view = img.find(q("view"))
        if view is None:
            raise MalformedFile("SCN image without a view")
        macro = (_int(view, "offsetX"), _int(view, "offsetY"), _int(view, "sizeX"), _int(view, "sizeY")) == (0, 0, cw, ch)
        src = img.find(f"{q('scanSettings')}/{q('illuminationSettings')}/{q('illuminationSource')}")
        bright = src is not None and (src.text or "") == "brightfield"
        dims = [(_int(d, "ifd"), _int(d, "sizeX"), _int(d, "sizeY"), d.get("z") in (None, "0"))
                for d in img.findall(f"{q('pixels')}/{q('dimension')}")]
        out.append(ScnImage(macro, bright, dims))
    return out


def roles(tf: TiffFile) -> list[RoleCall]:
    """Roles from the SCN map: macro IFDs, brightfield z-plane-0 levels (size as mapped,
    pyramid rule), everything else unknown."""
    top = tf.ifds
    images = scn_map(tf)
    named: dict[int, tuple[str, str]] = {}  # ifd -> (role, reason)
    main = [im for im in images if not im.macro and im.brightfield]
    for im in images:
        for ifd, w, h, z0 in im.dims:
            if not 0 <= ifd < len(top) or ifd in named:
                raise MalformedFile(f"SCN XML names IFD {ifd} twice or outside the file")
            if im.macro:
                named[ifd] = ("macro", "")
            elif im is not (main[0] if len(main) == 1 else None):
                named[ifd] = (UNKNOWN, "not the single brightfield main image" if im.brightfield else
                              "not a brightfield image")
            elif not z0:
                named[ifd] = (UNKNOWN, "another z-plane")
            elif pyramid.size_of(top[ifd]) != (w, h) or not top[ifd].has(324):
                named[ifd] = (UNKNOWN, f"IFD is {pyramid.size_of(top[ifd])}, the SCN map says {w}x{h} (tiled)")
            else:
                named[ifd] = (pyramid.LEVEL, "")
    lv = sorted(i for i, (r, _) in named.items() if r == pyramid.LEVEL)
    levels: dict[int, str | None] = {}
    if lv:
        base = max(lv, key=lambda i: (pyramid.size_of(top[i])[0] * pyramid.size_of(top[i])[1], -i))
        levels = pyramid.establish([pyramid.Candidate(i, *pyramid.size_of(top[i])) for i in lv], base)
    calls = []
    for i in range(len(top)):
        role, why = named.get(i, (UNKNOWN, "no SCN dimension names this IFD"))
        if role == pyramid.LEVEL and levels.get(i) is not None:
            role, why = UNKNOWN, levels[i]
        calls.append(RoleCall(role, why))
    return pyramid.subifd_roles(tf, calls)


def split_description(k: int, ifd: Ifd, text: str) -> list[Field]:
    if k != 0:
        # only IFD 0 carries the SCN map; text elsewhere is nobody's structure
        return [Field(f"{ifd.path}/ImageDescription", "tags:ImageDescription", text, ifd=k, tag=270)]
    return xmlscrub.split(k, ifd, 270, text, "scn", _name, _identity)


def _renumbered(decisions: list[Decision], new_index: dict[int, int]) -> tuple[list[Decision], set[str]]:
    """Decisions with ``dimension@ifd`` renumbered to the output's IFDs, and the node ids of the
    dimensions (and images left without one) whose IFDs were removed: the map must not name them."""
    from dataclasses import replace as dc_replace

    from ...model import KEEP, REPLACE
    dim_of: dict[str, int] = {}
    for d in decisions:
        if d.field.key == IFD_KEY and d.action == KEEP:
            dim_of[d.field.subkey.rpartition("@")[0]] = int(d.field.value)
    dead = {nid for nid, i in dim_of.items() if i not in new_index}
    image_dims: dict[str, list[str]] = {}
    for nid in dim_of:
        image_dims.setdefault(nid.rsplit(".", 2)[0], []).append(nid)
    dead |= {img for img, dims in image_dims.items() if all(n in dead for n in dims)}
    out = [dc_replace(d, action=REPLACE, new_value=str(new_index[int(d.field.value)]))
           if d.field.key == IFD_KEY and d.action == KEEP and int(d.field.value) in new_index else d
           for d in decisions]
    return out, dead


def _join(ifd: Ifd, decisions: list[Decision], new_index: dict[int, int]) -> str | None:
    if ifd.path != "ifd[0]":
        return None  # only IFD 0 carries the SCN map
    decisions, dead = _renumbered(decisions, new_index)
    return xmlscrub.join(ifd.text(270) or "", decisions, _name, f"{ifd.path}/ImageDescription", drop=dead)


def refine(plan: Plan) -> None:
    """The barcode (Base64 in the 2010/10/01 schema) is searched for decoded as well;
    the map is renumbered when the IFDs are built."""
    for d in plan.fields:
        if d.field.key == BARCODE_KEY and d.removes_value:
            decoded = xmlscrub.base64_text(d.field.value)
            if decoded and decoded not in d.removed_parts:
                d.removed_parts.append(decoded)


def inventory(tf: TiffFile) -> Inventory:
    return tiff_base.tiff_inventory(NAME, tf, roles, {270: split_description})


def build(tf: TiffFile, plan: Plan, edited=None, mcu_starts=None):
    removed = {d.image.index for d in plan.images if d.action == "remove"}
    kept = [i for i in range(len(tf.ifds)) if i not in removed]
    new_index = {old: new for new, old in enumerate(kept)}
    decs0 = [d for d in tiff_base.decisions_by_ifd(plan).get(0, []) if d.field.tag == 270]
    out = tiff_base.build_ifds(tf, plan, {270: lambda ifd, ds: _join(ifd, ds, new_index)}, edited, mcu_starts)
    if out and 0 in removed:
        # OpenSlide reads the SCN map from IFD 0: it moves to the new first IFD
        out[0].entries[270] = tiff_base.text_entry(270, _join(tf.ifds[0], decs0, new_index))
    return out, tf.kind
