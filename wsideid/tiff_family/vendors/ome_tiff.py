"""OME-TIFF (Bio-Formats, bfconvert, raw2ometiff, tifffile, QuPath).

Detection: the first IFD's ImageDescription is an OME-XML document (root
``OME`` in an OME schema namespace). OpenSlide 4.0 has no OME-TIFF driver:
it reads a tiled one as ``generic-tiff`` (level 0 only; SubIFD levels are
invisible to it) and a stripped one not at all, so tifffile is the second
reader the tests compare with.

Roles come from the OME-XML, not from guesses: each ``Image`` lists the IFDs
holding its planes (``TiffData IFD= PlaneCount=``). An Image named
``label``/``macro``/``overview``/``thumbnail`` (what bfconvert, raw2ometiff
and tifffile write for associated images) has that role; the largest other
Image is the slide, each of its planes a level (channels of a multi-channel
image are planes of level 0), and its SubIFDs are pyramid levels when
``pyramid.subifd_roles`` agrees. Any other Image, an IFD no Image claims, an
IFD two Images claim or a plane whose size is not its Pixels' size is
unknown and removed. A dataset spread over several files (TiffData UUIDs of
another file, BinaryOnly) is refused: its other files are not in view.

The OME-XML is scrubbed against an allow-list of the schema (profile section
``[ome]``, one entry per element path and attribute): structure (Pixels,
Channel, TiffData) and physical sizes are kept as typed values, everything
else (Experimenter, names, descriptions, annotations, file names, UUIDs) is
removed, dates get the date policy. The writer drops the Image elements of
removed images and renumbers TiffData IFD indices to the output's IFDs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from xml.etree.ElementTree import Element

from .. import xmlscrub
from ...errors import MalformedFile, UnsupportedFormat
from ...model import REMOVE, Decision, Field, Inventory, Plan, ValueKind
from ...needles import record_number
from ...tiff.container import Ifd, TiffFile
from . import pyramid, tiff_base
from .pyramid import UNKNOWN, RoleCall

NAME = "ome-tiff"
TITLE = "OME-TIFF"
EXTENSIONS = (".ome.tif",)
PHI_CARRIERS = (
    "Carriers: TIFF tags of every IFD; the OME-XML in the first ImageDescription (Experimenter, image "
    "names and descriptions, AcquisitionDate, TiffData UUIDs and file names, instrument models and "
    "serial numbers, structured annotations), split into one entry per element path and attribute "
    "(`OME/Image/Pixels@SizeX`; `@#text` is an element's text) and rebuilt from the kept entries "
    "only; the label and macro, each its own OME Image named `label`/`macro`; APPn/COM segments "
    "inside JPEG tiles. The XML is parsed without DTDs, entities or network access (a document with "
    "any is refused). Roles come from the OME-XML: the largest unnamed Image is the slide (its planes "
    "and SubIFD pyramid are kept whole); any other Image is unknown and removed. A dataset spread "
    "over several files is refused.",
)
OPENSLIDE_VENDOR = "generic-tiff"  # OpenSlide 4.0 reads a tiled OME-TIFF as a generic tiled TIFF
SECTION = "ome"
_NS = re.compile(r"http://www\.openmicroscopy\.org/Schemas/OME/20\d\d-\d\d")
_HEAD = re.compile(r"<(\w{1,20}:)?OME[\s>]")
NAMED_ROLES = {"label": "label", "macro": "macro", "overview": "macro", "thumbnail": "thumbnail"}
# Attributes that name a person, a file or a dataset.
IDENTITY = {"UserName", "FirstName", "LastName", "MiddleName", "Email", "Institution", "FileName", "UUID",
            "Name", "SerialNumber", "LotNumber"}
# Identity whatever the value's shape; a Name may also be a reference or a device state.
SHAPED_IDENTITY = IDENTITY - {"Name"}


def _root_namespace(text: str) -> bool:
    m = re.search(r'xmlns(:\w+)?="([^"]{1,200})"', text[:4096])
    return bool(m and _NS.fullmatch(m.group(2)))


def claims(tf: TiffFile) -> bool:
    if not tf.ifds:
        return False
    desc = tf.ifds[0].text(270) or ""
    return bool(_HEAD.search(desc[:4096])) and _root_namespace(desc) and desc.rstrip().endswith("OME>")


def _root(tf: TiffFile) -> Element:
    root = xmlscrub.parse(tf.ifds[0].text(270) or "", f"{tf.ifds[0].path} OME-XML")
    if xmlscrub.local(root.tag) != "OME" or not _NS.fullmatch(xmlscrub.namespace(root.tag)):
        raise MalformedFile(f"{tf.ifds[0].path}: OME-XML root is not OME in an OME schema namespace")
    return root


def _int(el: Element, name: str, default: int | None, what: str) -> int | None:
    v = el.get(name)
    if v is None:
        return default
    if not re.fullmatch(r"\d{1,9}", v.strip()):
        raise MalformedFile(f"OME-XML {what} {name} is not a count")  # (its value is the file's text: not quoted)
    return int(v)


@dataclass
class Series:
    """One OME Image: its element, name, Pixels size and the top-level IFDs of its planes."""

    node: Element
    name: str
    size: tuple[int, int]
    ifds: list[int] = field(default_factory=list)


def series(root: Element) -> list[Series]:
    ns = "{" + xmlscrub.namespace(root.tag) + "}"
    if root.find(f"{ns}BinaryOnly") is not None:
        raise UnsupportedFormat("OME-TIFF whose metadata is in a companion file (BinaryOnly): "
                                "convert to a single self-contained OME-TIFF first")
    uuid = (root.get("UUID") or "").strip()
    out = []
    for img in root.findall(f"{ns}Image"):
        px = img.find(f"{ns}Pixels")
        if px is None:
            raise MalformedFile("OME-XML Image without Pixels")
        sx, sy = _int(px, "SizeX", 0, "Pixels"), _int(px, "SizeY", 0, "Pixels")
        sz, sc, st = (_int(px, k, 1, "Pixels") for k in ("SizeZ", "SizeC", "SizeT"))
        ch = px.find(f"{ns}Channel")
        spp = max(1, _int(ch, "SamplesPerPixel", 1, "Channel") if ch is not None else 1)
        planes = max(1, sz * st * max(1, sc // spp))
        s = Series(img, (img.get("Name") or "").strip(), (sx, sy))
        for td in px.findall(f"{ns}TiffData"):
            ref = td.find(f"{ns}UUID")
            if ref is not None and (ref.text or "").strip() != uuid:
                raise UnsupportedFormat("OME-TIFF dataset spread over several files (TiffData refers to "
                                        "another file's UUID): convert to a single OME-TIFF first")
            first = _int(td, "IFD", None, "TiffData")
            count = _int(td, "PlaneCount", None, "TiffData")
            if count is None:
                count = 1 if first is not None else planes
            if count > 100_000:
                raise MalformedFile(f"OME-XML TiffData PlaneCount {count} (hostile or corrupt file)")
            s.ifds.extend(range(first or 0, (first or 0) + count))
        out.append(s)
    return out


def _name_role(s: Series) -> str | None:
    return NAMED_ROLES.get(s.name.lower())


def roles(tf: TiffFile) -> list[RoleCall]:
    """Roles of the top-level IFDs from the OME Images that list them (module docstring)."""
    top = tf.ifds
    all_series = series(_root(tf))
    owner: dict[int, int] = {}
    twice: set[int] = set()
    for k, s in enumerate(all_series):
        for i in s.ifds:
            (twice.add(i) if i in owner else owner.__setitem__(i, k))
    unnamed = [k for k, s in enumerate(all_series) if _name_role(s) is None]
    main = max(unnamed, key=lambda k: (all_series[k].size[0] * all_series[k].size[1], -k)) if unnamed else None
    w0, h0 = all_series[main].size if main is not None else (0, 0)
    calls: list[RoleCall] = []
    for i, ifd in enumerate(top):
        k = owner.get(i)
        w, h = pyramid.size_of(ifd)
        if i in twice:
            calls.append(RoleCall(UNKNOWN, "IFD listed by two OME Images"))
            continue
        if k is None:
            calls.append(RoleCall(UNKNOWN, "IFD that no OME Image lists"))
            continue
        s = all_series[k]
        role = _name_role(s)
        if (w, h) != s.size:
            calls.append(RoleCall(UNKNOWN, f"{w}x{h}, but its OME Image says {s.size[0]}x{s.size[1]}"))
        elif role in ("label", "macro"):
            calls.append(RoleCall(role))
        elif role == "thumbnail":
            ok = main is not None and w <= w0 and h <= h0 and pyramid.same_aspect(w0, h0, w, h)
            calls.append(RoleCall("thumbnail") if ok else RoleCall(UNKNOWN, "named thumbnail, but no reduced copy"))
        elif k != main:
            calls.append(RoleCall(UNKNOWN, f"OME Image {k} is neither the slide (the largest) nor named "
                                           "label, macro or thumbnail"))
        elif pyramid.subfile_type(ifd) not in (0, 2):
            calls.append(RoleCall(UNKNOWN, f"plane of the slide with NewSubfileType {pyramid.subfile_type(ifd)}"))
        elif i and pyramid.description_keyword(ifd.text(270)):
            calls.append(RoleCall(UNKNOWN, f"its description says {pyramid.description_keyword(ifd.text(270))!r}"))
        else:
            calls.append(RoleCall(pyramid.LEVEL))
    return pyramid.subifd_roles(tf, calls)


_NUMBER = re.compile(r"[-+]?\d{1,30}(\.\d{0,30})?([eE][-+]?\d{1,3})?")
_WORD = re.compile(r"[A-Za-z]{1,32}(\.[A-Za-z]{1,32})?")
_REF = re.compile(r"[A-Za-z]{1,32}(:\d{1,9}){1,4}")  # an LSID-style reference ("Channel:0:1")
FOREIGN = "OME/StructuredAnnotations/XMLAnnotation/Value/"  # another vendor's metadata, carried whole


def _kind(path: str, attr: str, value: str) -> ValueKind:
    """People, files and serials are identifiers, in an attribute or an element's text
    (``UUID``), whatever their shape: a serial or record number of digits only is
    still one. Numbers and enumeration spellings are no needles (a removed device
    state "Open" would be found in the kept namespace "openmicroscopy"), except a
    long run of digits, left to the verifier's rule for record numbers; the rest is text."""
    v = value.strip()
    element = path.rpartition("/")[2]
    if attr in SHAPED_IDENTITY or (attr in (xmlscrub.TEXT, xmlscrub.TAIL) and element in SHAPED_IDENTITY):
        return ValueKind.IDENTIFIER  # before any shape test: a serial "SN:4455667" looks like a reference
    if v in ("true", "false") or _REF.fullmatch(v):
        return ValueKind.CODE
    if path.startswith(FOREIGN) and _WORD.fullmatch(v):
        return ValueKind.CODE  # a device's name or state in a vendor's settings dump
    if attr in IDENTITY or (attr in (xmlscrub.TEXT, xmlscrub.TAIL) and element in IDENTITY) \
            or "/Experimenter" in path:
        return ValueKind.IDENTIFIER
    if _NUMBER.fullmatch(v) and not record_number(v):
        return ValueKind.NUMBER
    return ValueKind.TEXT


def split_description(k: int, ifd: Ifd, text: str) -> list[Field]:
    """IFD 0's OME-XML as one field per attribute and text; other IFDs' descriptions stay tags."""
    if k != 0:
        return [tiff_base.description_field(k, ifd, text)]
    root = xmlscrub.parse(text, f"{ifd.path} OME-XML")
    found = xmlscrub.items(root)
    tiff_base.check_key_count(ifd, len(found))
    return [Field(f"{ifd.path}/ImageDescription/{it.node}:{it.path}@{it.attr}", f"{SECTION}:{it.path}@{it.attr}",
                  it.value, ifd=k, tag=270, subkey=f"{it.node}@{it.attr}", kind=_kind(it.path, it.attr, it.value)) for it in found]


def refine(plan: Plan) -> None:
    """Nothing beyond the profile: the writer handles removed Images."""


def inventory(tf: TiffFile) -> Inventory:
    return tiff_base.tiff_inventory(NAME, tf, roles, {270: split_description})


def _joiner(tf: TiffFile, plan: Plan):
    dropped = {d.image.index for d in plan.images if d.action == "remove" and d.image.index < len(tf.ifds)}
    new_index = {}
    for i in range(len(tf.ifds)):
        if i not in dropped:
            new_index[i] = len(new_index)

    def join(ifd: Ifd, decisions: list[Decision]) -> str | None:
        if ifd is not tf.ifds[0]:
            return tiff_base.description_join(decisions)
        root = _root(tf)
        values: dict[tuple[int, str], str] = {}
        for d in decisions:
            if d.action == REMOVE:
                continue
            node, _, attr = d.field.subkey.partition("@")
            values[(int(node), attr)] = str(d.field.value if d.action == "keep" else d.new_value)
        nodes = xmlscrub.elements(root)
        gone = {id(s.node) for s in series(root) if not any(i in new_index for i in s.ifds)}
        for n, (path, el) in enumerate(nodes):
            if path.endswith("/TiffData") and (n, "IFD") in values:
                old = int(el.get("IFD"))
                if old in new_index:
                    values[(n, "IFD")] = str(new_index[old])
                else:
                    gone.add(id(el))
        tree = xmlscrub.rebuild(root, values, skip=lambda n, path, el: id(el) in gone)
        return xmlscrub.serialise(tree)

    return join


def build(tf: TiffFile, plan: Plan, edited=None, mcu_starts=None):
    return tiff_base.build_ifds(tf, plan, {270: _joiner(tf, plan)}, edited, mcu_starts), tf.kind
