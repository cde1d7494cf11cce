"""Akoya / PerkinElmer Vectra and Polaris QPTIFF.

Detection (as tifffile's ``is_qpi``): the first IFD's Software starts with
``PerkinElmer-QPI`` and its ImageDescription is a
``PerkinElmer-QPI-ImageDescription`` XML document. Every IFD carries such a
document (ComputerName, SlideID, Barcode, ScanProfile, the channel's name
and colour...). OpenSlide 4.0 has no QPTIFF driver: a brightfield (RGB,
tiled) file reads as ``generic-tiff``; a multi-channel fluorescence file
(one strip-based, LZW IFD per channel) it does not read, and tifffile is the
second reader.

Roles come from each IFD's ``ImageType`` (tifffile's QPI layout: the
full-resolution planes, one per channel, then the thumbnail, then the
reduced-resolution planes, then the overview and the label):
``FullResolution`` planes are level 0 (all the size of the first IFD),
``ReducedResolution`` planes are levels when smaller than level 0 with its
aspect ratio, ``Thumbnail`` a thumbnail when it is a reduced copy,
``Overview`` the macro, ``Label`` the label; an IFD without a document or
with another type is unknown and removed.

Each IFD's XML is scrubbed against the ``[qptiff]`` allow-list of the
profile (one entry per element path; attributes as ``path@attr``), typed;
ScanProfile, identifiers, computer and slide names are removed.
"""

from __future__ import annotations

import re
from xml.etree.ElementTree import Element

from .. import xmlscrub
from ...model import KEEP, REMOVE, REPLACE, Decision, Field, Inventory, Plan, ValueKind
from ...needles import record_number
from ...tiff.container import Ifd, TiffFile
from . import pyramid, tiff_base
from .pyramid import UNKNOWN, RoleCall

NAME = "qptiff"
TITLE = "Akoya / PerkinElmer QPTIFF"
EXTENSIONS = (".qptiff",)
PHI_CARRIERS = (
    "Carriers: TIFF tags of every IFD (Software keeps its `PerkinElmer-QPI` name); the "
    "PerkinElmer-QPI-ImageDescription XML of every IFD (SlideID, Barcode, ComputerName, Identifier, "
    "ValidationCode, the ScanProfile with operator and study paths, calibration records with dates "
    "and operators, channel names), split into one entry per element path and rebuilt from the kept "
    "entries only; the Overview (macro) and Label images; APPn/COM segments inside JPEG tiles. Roles "
    "come from each IFD's ImageType: FullResolution channel planes and ReducedResolution planes are "
    "kept, a Thumbnail is kept when it is a reduced copy, anything else is unknown and removed.",
)
OPENSLIDE_VENDOR = "generic-tiff"  # a tiled brightfield QPTIFF; fluorescence ones OpenSlide does not read
SECTION = "qptiff"
ROOT = "PerkinElmer-QPI-ImageDescription"
SOFTWARE = "PerkinElmer-QPI"
TYPES = {"FullResolution": "full", "ReducedResolution": "reduced", "Thumbnail": "thumbnail",
         "Overview": "macro", "Macro": "macro", "Label": "label"}
IDENTITY = {"SlideID", "Barcode", "ComputerName", "Identifier", "ValidationCode", "UserName", "Operator",
            "StudyName", "SampleName", "FileName"}


def claims(tf: TiffFile) -> bool:
    if not tf.ifds:
        return False
    first = tf.ifds[0]
    return (first.text(305) or "").startswith(SOFTWARE) and f"<{ROOT}" in (first.text(270) or "")[:4096]


def _doc(ifd: Ifd) -> Element | None:
    text = ifd.text(270) or ""
    if f"<{ROOT}" not in text[:4096]:
        return None
    root = xmlscrub.parse(text, f"{ifd.path} QPI XML")
    return root if root.tag == ROOT else None


def _image_type(ifd: Ifd) -> str | None:
    root = _doc(ifd)
    el = root.find("ImageType") if root is not None else None
    return (el.text or "").strip() if el is not None else None


def roles(tf: TiffFile) -> list[RoleCall]:
    """Each IFD's role from its ImageType, checked against level 0's size (module docstring)."""
    top = tf.ifds
    w0, h0 = pyramid.size_of(top[0])
    types = [_image_type(ifd) for ifd in top]
    first = types[0]
    calls: list[RoleCall] = []
    for i, ifd in enumerate(top):
        kind = TYPES.get(types[i] or "")
        w, h = pyramid.size_of(ifd)
        # a reason reaches the audit, which travels with the slide: only a spelling QPTIFF defines is quoted
        if first != "FullResolution":
            said = repr(first) if first in TYPES else "one QPTIFF does not define"
            calls.append(RoleCall(UNKNOWN, f"the first IFD's ImageType is {said}, not FullResolution"))
        elif kind is None:
            calls.append(RoleCall(UNKNOWN, "an ImageType QPTIFF does not define"))
        elif kind == "full":
            ok = (w, h) == (w0, h0) and all(t == "FullResolution" for t in types[:i])
            calls.append(RoleCall(pyramid.LEVEL) if ok else
                         RoleCall(UNKNOWN, "full-resolution plane that is not level 0's size or not with the others"))
        elif kind in ("reduced", "thumbnail"):
            ok = pyramid.smaller(w, h, w0, h0) and pyramid.same_aspect(w0, h0, w, h)
            role = pyramid.LEVEL if kind == "reduced" else "thumbnail"
            calls.append(RoleCall(role) if ok else RoleCall(UNKNOWN, f"{w}x{h} is no reduced copy of {w0}x{h0}"))
        else:
            calls.append(RoleCall(kind))
    return pyramid.subifd_roles(tf, calls)


def _key(path: str, attr: str) -> str:
    inner = path.partition("/")[2] or "@root"
    return f"{SECTION}:{inner}" if attr == xmlscrub.TEXT else f"{SECTION}:{inner}@{attr}"


def _kind(path: str, attr: str, value: str) -> ValueKind:
    """An identity element's text and attributes, and an identity-named attribute anywhere
    (``<Slide Barcode="...">``), are identifiers whatever their shape."""
    if path.rpartition("/")[2] in IDENTITY or attr in IDENTITY:
        return ValueKind.IDENTIFIER
    if re.fullmatch(r"[-+]?\d{1,30}(\.\d{0,30})?", value.strip()) and not record_number(value):
        return ValueKind.NUMBER
    return ValueKind.TEXT


def split_description(k: int, ifd: Ifd, text: str) -> list[Field]:
    """Each IFD's QPI XML as one field per element text and attribute."""
    root = _doc(ifd)
    if root is None:
        return [tiff_base.description_field(k, ifd, text)]
    found = xmlscrub.items(root)
    tiff_base.check_key_count(ifd, len(found))
    return [Field(f"{ifd.path}/ImageDescription/{it.node}:{it.path}@{it.attr}", _key(it.path, it.attr), it.value,
                  ifd=k, tag=270, subkey=f"{it.node}@{it.attr}", kind=_kind(it.path, it.attr, it.value)) for it in found]


def refine(plan: Plan) -> None:
    """Software keeps its PerkinElmer-QPI name (readers detect the format by it)."""
    for d in plan.fields:
        if d.field.key == "tags:Software" and d.field.ifd == 0 and d.action == REMOVE:
            d.action, d.new_value, d.rule = REPLACE, SOFTWARE, d.rule + " (minimal QPI name kept for readers)"


def inventory(tf: TiffFile) -> Inventory:
    return tiff_base.tiff_inventory(NAME, tf, roles, {270: split_description})


def join_description(ifd: Ifd, decisions: list[Decision]) -> str | None:
    root = _doc(ifd)
    if root is None:
        return tiff_base.description_join(decisions)
    values: dict[tuple[int, str], str] = {}
    for d in decisions:
        if d.action == REMOVE or d.field.subkey is None:
            continue
        node, _, attr = d.field.subkey.partition("@")
        values[(int(node), attr)] = str(d.field.value if d.action == KEEP else d.new_value)
    return xmlscrub.serialise(xmlscrub.rebuild(root, values))


def build(tf: TiffFile, plan: Plan, edited=None, mcu_starts=None):
    return tiff_base.build_ifds(tf, plan, {270: join_description}, edited, mcu_starts), tf.kind
