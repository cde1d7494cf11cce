"""Philips TIFF (IntelliSite export; OpenSlide vendor ``philips``).

Detection (as OpenSlide's philips-tiff driver): the first IFD's Software
starts with ``Philips`` and its ImageDescription is an XML document whose
root is ``DataObject`` with ``ObjectType="DPUfsImport"``.

The XML is a tree of ``DataObject``s holding ``Attribute``s (``Name``,
DICOM ``Group``/``Element``, ``PMSVR`` type); an attribute holds a value or
an ``Array`` of further DataObjects (the scanned images, the pixel data
representations). Each value becomes a field keyed by its attribute names
from the root (``philips:PIM_DP_SCANNED_IMAGES/DICOM_PIXEL_SPACING``), which
the profile allow-lists with typed values; the structural attributes are
checked here (a name is an upper-case token, Group/Element hexadecimal,
PMSVR a Philips value type, ObjectType one of the three export data objects) and written back only
for kept values.
``DICOM_DERIVATION_DESCRIPTION`` (where Philips writes the source file name)
is rebuilt from its typed tokens (``check_derivation``), the barcode is
Base64 (its decoded text is a needle too), Software must keep its
``Philips`` prefix for readers to detect the format.

Images: tiled IFDs are the levels (IFD 0, then reduced-resolution IFDs,
each the level-0 size over the downsample its pixel spacing gives, padded
to whole tiles, which is why no aspect-ratio check applies); a stripped IFD
is the label or macro when its description starts ``Label``/``Macro``
(OpenSlide's rule); anything else is unknown. Label and macro JPEGs held
inside the XML (``PIM_DP_IMAGE_DATA`` of a LABELIMAGE/MACROIMAGE scanned
image) are images of the inventory too (index after the IFD images,
``extra["embedded"]``): the detectors scan them and the QC page shows them.
Removed, they go with the scanned image that holds them; kept
(``--keep-macro``), their JPEG is reduced to its decoding segments
(``philips-image`` in the profile); replaced (``--label replace``), the
scanned image holds a generated label of the same size showing the research
ID. Verification checks the held images by role and size
(``embedded-images``); blanking a label area inside a held macro is not
available (``--macro blank-label`` removes it, and the audit says why).
Sparse levels (tiles with byte count 0) pass: such tiles are copied as
absent.
"""

from __future__ import annotations

import base64
import binascii
import re
from xml.etree.ElementTree import Element

from .. import xmlscrub
from ...errors import MalformedFile, WsideidError
from ...model import KEEP, REMOVE, REPLACE, Decision, Field, ImageDecision, ImageInfo, Inventory, Plan, ValueKind
from ...needles import record_number
from ...tiff.container import Ifd, TiffFile
from ...valuepolicy import ValueType, Verdict, register_checker
from . import pyramid, tiff_base
from .pyramid import UNKNOWN, RoleCall

NAME = "philips"
TITLE = "Philips TIFF"
EXTENSIONS = (".tiff",)
PHI_CARRIERS = (
    "Carriers: TIFF tags of every IFD (Software must keep its `Philips` prefix: a failing value "
    "becomes `Philips`); the DPUfsImport XML in the first ImageDescription (acquisition and "
    "calibration dates, device serial, operator, rack and slot, the Base64 barcode, source file names "
    "in PIM_DP_SOURCE_FILE and DICOM_DERIVATION_DESCRIPTION), split into one entry per attribute "
    "keyed by the attribute names from the root and rebuilt from the kept entries only "
    "(DICOM_DERIVATION_DESCRIPTION keeps its typed export settings, `sourceFilename` is dropped); "
    "label and macro as stripped IFDs described `Label`/`Macro` or as Base64 JPEGs inside the XML "
    "(LABELIMAGE/MACROIMAGE scanned images, removed whole); APPn/COM segments inside JPEG tiles. The "
    "XML is parsed without DTDs, entities or network access. Tiled levels must match the pixel "
    "spacing the XML gives them; absent (sparse) tiles stay absent.",
)
OPENSLIDE_VENDOR = "philips"
OPENSLIDE_CLIPS_LEVELS = True  # OpenSlide shows level 0 over the downsample, not the padded IFD size
SECTION = "philips"
MINIMAL_SOFTWARE = "Philips"
_NAME = re.compile(r"[A-Z][A-Z0-9_]{0,80}")
_HEX = re.compile(r"0x[0-9A-Fa-f]{4}")
# Written back without being fields, so each is a closed grammar (round 6 of the planted-PHI audit:
# a PMSVR "I" + 30 letters and an ObjectType of 41 letters were free words, published as they were):
# PMSVR the Philips value types, ObjectType the three data objects of a DPUfsImport export.
_PMSVR = re.compile(r"I(String|Double|Float|U?Int(8|16|32|64)|DataObject|Date|Time|DateTime|Bool|Char)(Array)?")
_OBJECT = re.compile(r"DPUfsImport|DPScannedImage|PixelDataRepresentation")
STRUCTURAL = {"Attribute": {"Name": _NAME, "Group": _HEX, "Element": _HEX, "PMSVR": _PMSVR},
              "DataObject": {"ObjectType": _OBJECT}, "Array": {}}
ASSOCIATED = {"LABELIMAGE": "label", "MACROIMAGE": "macro"}
# Attribute names whose value names a person, a device, a file or a specimen.
IDENTITY = re.compile(r".*(BARCODE|SERIAL|OPERATOR|SOURCE_FILE|RACK|SLOT|FILENAME|PATIENT|ACCESSION|SPECIMEN"
                      r"|STATION|INSTITUTION|UID).*")
_SPACING = re.compile(r'"?(\d{1,6}(?:\.\d{1,12})?(?:[eE]-?\d{1,3})?)"? "?(\d{1,6}(?:\.\d{1,12})?(?:[eE]-?\d{1,3})?)"?')


def claims(tf: TiffFile) -> bool:
    if not tf.ifds:
        return False
    first = tf.ifds[0]
    desc = (first.text(270) or "").strip()
    return ((first.text(305) or "").startswith(MINIMAL_SOFTWARE) and desc.endswith("</DataObject>")
            and re.search(r'<DataObject\s+ObjectType\s*=\s*"DPUfsImport"', desc[:4096]) is not None)


def _root(tf: TiffFile) -> Element:
    root = xmlscrub.parse(tf.ifds[0].text(270) or "", f"{tf.ifds[0].path} Philips XML")
    if root.tag != "DataObject" or root.get("ObjectType") != "DPUfsImport":
        raise MalformedFile(f"{tf.ifds[0].path}: Philips XML root is not DataObject DPUfsImport")
    return root


def _chains(root: Element) -> list[tuple[str, Element, str | None]]:
    """(path, element, attribute-name chain) in document order; the chain is None
    for an element outside the DataObject/Attribute/Array grammar."""
    out: list[tuple[str, Element, str | None]] = []

    def walk(el: Element, path: str, chain: str | None) -> None:
        here = chain
        if chain is not None and el.tag == "Attribute":
            name = el.get("Name") or ""
            here = (f"{chain}/{name}" if chain else name) if _NAME.fullmatch(name) else None
        elif el.tag not in STRUCTURAL:
            here = None
        out.append((path, el, here))
        for c in el:
            if isinstance(c.tag, str):
                walk(c, f"{path}/{xmlscrub.local(c.tag)}", here)

    walk(root, "DataObject", "")
    return out


def _scanned_type(obj: Element) -> str | None:
    for a in obj.findall("Attribute"):
        if a.get("Name") == "PIM_DP_IMAGE_TYPE":
            return (a.text or "").strip()
    return None


def _scanned_images(root: Element) -> list[Element]:
    for a in root.findall("Attribute"):
        if a.get("Name") == "PIM_DP_SCANNED_IMAGES":
            return a.findall("Array/DataObject")
    return []


def level_spacings(root: Element) -> list[tuple[float, float]]:
    """DICOM_PIXEL_SPACING of each PixelDataRepresentation of the (single) WSI image."""
    wsi = [o for o in _scanned_images(root) if _scanned_type(o) == "WSI"]
    if len(wsi) != 1:
        raise MalformedFile(f"Philips XML with {len(wsi)} WSI scanned images (readers need exactly one)")
    out = []
    for rep in wsi[0].findall("Attribute[@Name='PIIM_PIXEL_DATA_REPRESENTATION_SEQUENCE']/Array/DataObject"):
        for a in rep.findall("Attribute[@Name='DICOM_PIXEL_SPACING']"):
            m = _SPACING.fullmatch((a.text or "").strip())
            if not m or float(m.group(1)) <= 0 or float(m.group(2)) <= 0:
                raise MalformedFile("Philips XML pixel spacing is not two positive numbers")
            out.append((float(m.group(2)), float(m.group(1))))
    return out


def _downsample(spacings: list[tuple[float, float]], k: int) -> int:
    """Level ``k``'s downsample from level 0, as its pixel spacing gives it."""
    return round((spacings[k][0] / spacings[0][0] + spacings[k][1] / spacings[0][1]) / 2)


def shown_sizes(tf: TiffFile) -> dict[int, tuple[int, int]]:
    """Image index -> the size OpenSlide shows each tiled level at: level 0 over the downsample
    its pixel spacing gives (the IFD's own size is padded to whole tiles). Regions are blanked
    at these sizes (``redaction.plan_regions``)."""
    spacings = level_spacings(_root(tf))
    tiled = [i for i, ifd in enumerate(tf.ifds) if ifd.has(324)]
    if not tiled or len(spacings) != len(tiled):
        return {}
    w0, h0 = pyramid.size_of(tf.ifds[tiled[0]])
    out = {}
    for k, i in enumerate(tiled[1:], 1):
        d = _downsample(spacings, k)
        if d >= 1:
            out[i] = (w0 // d, h0 // d)
    return out


def roles(tf: TiffFile) -> list[RoleCall]:
    """Tiled IFDs are levels when each is reduced-resolution (after IFD 0), no
    larger than the level before, and its size is level 0's over the downsample
    its pixel spacing gives, padded to less than one more tile; stripped IFDs are
    label/macro by their description's first word (module docstring)."""
    top = tf.ifds
    spacings = level_spacings(_root(tf))
    tiled = [i for i, ifd in enumerate(top) if ifd.has(324)]
    calls: list[RoleCall] = []
    w0, h0 = pyramid.size_of(top[0])
    prev = (w0, h0)
    for i, ifd in enumerate(top):
        w, h = pyramid.size_of(ifd)
        if ifd.has(324):
            k = tiled.index(i)
            why = None
            if tiled[0] != 0:
                why = "the first IFD is not tiled"
            elif len(spacings) != len(tiled):
                why = f"{len(tiled)} tiled IFDs but {len(spacings)} pixel spacings in the XML"
            elif k and not (pyramid.subfile_type(ifd) & 1):
                why = f"NewSubfileType {pyramid.subfile_type(ifd)}, not reduced resolution"
            elif k and (w > prev[0] or h > prev[1]):
                why = f"{w}x{h} is larger than the level above it ({prev[0]}x{prev[1]})"
            elif k:
                d = _downsample(spacings, k)
                tw, th = int(tiff_base.number(ifd, 322, 0)), int(tiff_base.number(ifd, 323, 0))
                if d < 2 or not (w0 // d <= w < w0 // d + tw and h0 // d <= h < h0 // d + th):
                    why = f"{w}x{h} is not level 0 over the downsample {d} of its pixel spacing"
            calls.append(pyramid.level_call(why))
            if why is None:
                prev = (w, h)
            continue
        desc = (ifd.text(270) or "") if i else ""
        if desc.startswith("Label"):
            calls.append(RoleCall("label"))
        elif desc.startswith("Macro"):
            calls.append(RoleCall("macro"))
        else:
            calls.append(RoleCall(UNKNOWN, "stripped image whose description does not start Label or Macro"))
    return pyramid.subifd_roles(tf, calls)


def _kind(chain: str, value: str) -> ValueKind:
    if IDENTITY.fullmatch(chain.rpartition("/")[2]):
        return ValueKind.IDENTIFIER
    if re.fullmatch(r'[-+"\d. eE]{1,200}', value) and re.search(r"\d", value) and not record_number(value):
        return ValueKind.NUMBER
    return ValueKind.TEXT


def _outside_kind(name: str) -> ValueKind:
    """An attribute or element outside the grammar named like an identity (``Barcode="..."``)."""
    return ValueKind.IDENTIFIER if IDENTITY.fullmatch(name.upper()) else ValueKind.TEXT


def split_description(k: int, ifd: Ifd, text: str) -> list[Field]:
    """IFD 0's XML: one field per attribute value, and one per attribute or element
    outside the grammar (unknown, so removed); later IFDs' descriptions stay tags."""
    if k != 0:
        return [tiff_base.description_field(k, ifd, text)]
    root = xmlscrub.parse(text, f"{ifd.path} Philips XML")
    fields: list[Field] = []
    base = f"{ifd.path}/ImageDescription"
    for n, (path, el, chain) in enumerate(_chains(root)):
        allowed = STRUCTURAL.get(el.tag, {}) if chain is not None else {}
        for name, value in el.attrib.items():
            pattern = allowed.get(name)
            if pattern is None or not pattern.fullmatch(value):
                fields.append(Field(f"{base}/{n}:{path}@{name}", f"{SECTION}:@{el.tag}@{xmlscrub.attr_name(name)}",
                                    value, ifd=k, tag=270, subkey=f"{n}@{xmlscrub.attr_name(name)}",
                                    kind=_outside_kind(xmlscrub.local(name))))
        text_value = (el.text or "").strip()
        if el.tag == "Attribute" and chain and not len(el):
            big = chain.endswith("PIM_DP_IMAGE_DATA")
            value = f"<{len(text_value)} bytes>" if big else text_value
            fields.append(Field(f"{base}/{n}:{chain}", f"{SECTION}:{chain}", value, ifd=k, tag=270,
                                subkey=f"{n}@{xmlscrub.TEXT}",
                                kind=ValueKind.BINARY if big else _kind(chain, text_value),
                                raw=text_value.encode("ascii", "replace") if big else None))
        elif text_value:
            fields.append(Field(f"{base}/{n}:{path}@#text", f"{SECTION}:@{el.tag}@#text", text_value, ifd=k,
                                tag=270, subkey=f"{n}@{xmlscrub.TEXT}", kind=_outside_kind(xmlscrub.local(el.tag))))
        if n and el.tail and el.tail.strip():
            fields.append(Field(f"{base}/{n}:{path}@#tail", f"{SECTION}:@tail", el.tail.strip(), ifd=k, tag=270,
                                subkey=f"{n}@{xmlscrub.TAIL}", kind=ValueKind.TEXT))
    tiff_base.check_key_count(ifd, len(fields))
    return fields


# --- DICOM_DERIVATION_DESCRIPTION: typed tokens only --------------------------------
_DERIVATION_TOKEN = re.compile(r"tiff|useBigTIFF=[01]|useRgb=[01]|levels=\d{1,6}(,\d{1,6}){0,40}|processing=\d{1,3}"
                               r"|q\d{1,3}|rgb|jpeg|jp2k")


def check_derivation(f: Field) -> Verdict:
    """The value-policy check for ``type = "philips-derivation"``: the ``-``-joined
    export settings, each token typed; ``sourceFilename="..."`` (the original
    file name, which may hold dashes) and any other token are dropped."""
    v = str(f.value or "")
    head, sep, tail = v.partition("-sourceFilename=")
    dropped = [f"sourceFilename={tail}"] if sep else []
    kept = []
    for tok in head.split("-"):
        (kept if _DERIVATION_TOKEN.fullmatch(tok) else dropped).append(tok)
    if not kept:
        return Verdict(False, note="value failed philips-derivation (no export setting)")
    clean = "-".join(kept)
    if clean == v:
        return Verdict(True, v)
    return Verdict(True, clean, REPLACE, [d for d in dropped if d], "export settings kept, other tokens dropped")


register_checker(ValueType.PHILIPS_DERIVATION.value, check_derivation)


def check_image(f: Field) -> Verdict:
    """A label or macro JPEG held Base64 in the XML, kept: it must decode as Base64 and a JPEG,
    and leaves reduced to its decoding segments (APPn/COM dropped, as for every JPEG stream)."""
    from ...jpeg.structure import clean
    try:
        jpeg = base64.b64decode(b"".join((f.raw or b"").split()), validate=True)
        cleaned = clean(jpeg).data
    except (binascii.Error, ValueError, WsideidError):
        return Verdict(False, note="value failed philips-image (not a Base64 JPEG)")
    if cleaned == jpeg:
        return Verdict(True, f.value)
    return Verdict(True, base64.b64encode(cleaned).decode("ascii"), REPLACE, note="APPn/COM segments dropped")


register_checker(ValueType.PHILIPS_IMAGE.value, check_image)


def refine(plan: Plan) -> None:
    """Software keeps its Philips prefix (readers detect the format by it); the
    barcode's decoded text is a needle as well as its Base64 form; a label or
    macro held inside the XML is removed whatever the options (module docstring)."""
    new_id = plan.options.get("new_id")
    kept_nodes: set[int] = set()
    for k, d in enumerate(plan.images):
        if not d.image.extra.get("embedded"):
            continue
        if d.action not in ("remove", "keep", "replace") or (d.action == "replace" and not new_id):
            plan.images[k] = d = ImageDecision(d.image, "remove", f"{d.rule} not available for an image held "
                                                                  "inside the Philips XML: removed")
        data = next((f for f in plan.fields if f.field.subkey == f"{d.image.extra['data_node']}@{xmlscrub.TEXT}"),
                    None)
        if data is None:
            continue
        if d.action == "remove":
            data.action, data.new_value, data.rule = REMOVE, None, f"{d.rule} (the scanned image goes whole)"
            continue
        kept_nodes.add(d.image.extra["data_node"])
        if d.action == "replace":
            data.action, data.new_value = REPLACE, generated_image(d.image.width, d.image.height, new_id)
            data.rule = "--label replace: a generated label showing the research ID"
    for d in plan.fields:
        if d.field.key.endswith("PIM_DP_IMAGE_DATA") and d.action != REMOVE \
                and int(d.field.subkey.partition("@")[0]) not in kept_nodes:
            d.action, d.new_value, d.rule = REMOVE, None, "image data outside a kept label or macro"
        if d.field.key == "tags:Software" and d.field.ifd == 0 and d.action == REMOVE:
            d.action, d.new_value, d.rule = REPLACE, MINIMAL_SOFTWARE, d.rule + " (minimal Philips name kept for readers)"
        if d.field.key.endswith("PIM_DP_UFS_BARCODE") and d.action != KEEP:
            decoded = xmlscrub.base64_text(d.field.value)
            if decoded:
                d.removed_parts.append(decoded)


def generated_image(width: int, height: int, research_id: str) -> str:
    """A label of the old one's size showing the research ID, as the XML holds it (Base64 JPEG);
    made from the research ID and fixed text only."""
    import io

    from PIL import Image

    from ...jpeg.structure import clean
    from ...label_image import label_pixels
    buf = io.BytesIO()
    Image.fromarray(label_pixels(research_id, width, height)).save(buf, "JPEG", quality=90)
    return base64.b64encode(clean(buf.getvalue()).data).decode("ascii")


def _embedded(root: Element) -> list[tuple[str, Element]]:
    """(role, scanned image) of each label or macro held inside the XML, in order."""
    return [(ASSOCIATED[_scanned_type(o)], o) for o in _scanned_images(root) if _scanned_type(o) in ASSOCIATED]


def _jpeg_of(obj: Element) -> bytes:
    for a in obj.findall("Attribute"):
        if a.get("Name") == "PIM_DP_IMAGE_DATA":
            try:
                return base64.b64decode("".join((a.text or "").split()), validate=True)
            except (binascii.Error, ValueError):
                raise MalformedFile("Philips XML image data is not Base64") from None
    raise MalformedFile("Philips XML label/macro scanned image without PIM_DP_IMAGE_DATA")


def embedded_image(tf: TiffFile, index: int):
    """The label or macro held inside the XML at inventory ``index``, as a PIL image."""
    import io

    from PIL import Image, UnidentifiedImageError
    k = index - len(tf.image_ifds())
    found = _embedded(_root(tf))
    if not 0 <= k < len(found):
        raise MalformedFile(f"image {index} is not in the file")
    try:
        img = Image.open(io.BytesIO(_jpeg_of(found[k][1])))
    except (UnidentifiedImageError, OSError):
        raise MalformedFile("Philips XML image data is not a JPEG") from None
    if img.format != "JPEG" or img.width * img.height > 64_000_000:
        raise MalformedFile("Philips XML image data is not a JPEG of a label's size")
    return img


def inventory(tf: TiffFile) -> Inventory:
    inv = tiff_base.tiff_inventory(NAME, tf, roles, {270: split_description})
    first = len(inv.images)
    root = _root(tf)
    index = {id(el): n for n, (_, el, _) in enumerate(_chains(root))}
    for k, (role, obj) in enumerate(_embedded(root)):
        img = embedded_image(tf, first + k)
        node = next(index[id(a)] for a in obj.findall("Attribute") if a.get("Name") == "PIM_DP_IMAGE_DATA")
        inv.images.append(ImageInfo(first + k, role, img.width, img.height, "jpeg", False, 1,
                                    {"path": f"ifd[0]/ImageDescription/PIM_DP_SCANNED_IMAGES[{role}]",
                                     "embedded": "xml", "data_node": node}))
    return inv


def _joiner(tf: TiffFile):
    def join(ifd: Ifd, decisions: list[Decision]) -> str | None:
        if ifd is not tf.ifds[0]:
            return tiff_base.description_join(decisions)
        root = _root(tf)
        nodes = _chains(root)
        by_id = {id(el): n for n, (_, el, _) in enumerate(nodes)}

        def index_of(el: Element) -> int:
            return by_id.get(id(el), -1)
        texts: dict[int, str] = {}
        for d in decisions:
            node, _, attr = d.field.subkey.partition("@")
            if d.action == REMOVE or attr != xmlscrub.TEXT or not d.field.key.startswith(SECTION + ":") \
                    or d.field.key.startswith(SECTION + ":@"):
                continue  # only attribute values are ever written back
            n = int(node)
            texts[n] = (nodes[n][1].text or "").strip() if d.action == KEEP else str(d.new_value)
        # scanned images holding a removed label or macro go whole (their JPEG with them)
        kept_data = {int(d.field.subkey.partition("@")[0]) for d in decisions
                     if d.field.key.endswith("PIM_DP_IMAGE_DATA") and d.action != REMOVE}
        gone = {id(o) for o in _scanned_images(root) if _scanned_type(o) in ASSOCIATED
                and not any(index_of(a) in kept_data for a in o.findall("Attribute"))}
        index = {id(el): n for n, (_, el, _) in enumerate(nodes)}
        live: set[int] = set()

        def mark(el: Element, parents: list[Element]) -> None:
            if id(el) in gone:
                return
            if index[id(el)] in texts:
                live.update(index[id(p)] for p in parents + [el])
            for c in el:
                if isinstance(c.tag, str):
                    mark(c, parents + [el])

        mark(root, [])
        values: dict[tuple[int, str], str] = {(n, xmlscrub.TEXT): t for n, t in texts.items() if n in live}
        for n in live:
            _, el, chain = nodes[n]
            for name, pattern in STRUCTURAL.get(el.tag, {}).items():
                if chain is not None and name in el.attrib and pattern.fullmatch(el.get(name)):
                    values[(n, name)] = el.get(name)
        values[(0, "ObjectType")] = "DPUfsImport"
        tree = xmlscrub.rebuild(root, values, skip=lambda n, path, el: n not in live and n != 0)
        return xmlscrub.serialise(tree)

    return join


def build(tf: TiffFile, plan: Plan, edited=None, mcu_starts=None):
    return tiff_base.build_ifds(tf, plan, {270: _joiner(tf)}, edited, mcu_starts), tf.kind
