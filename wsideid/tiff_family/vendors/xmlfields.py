"""Vendor XML inside a TIFF tag as fields, and back: the shape, not the knowledge.

A vendor module (ventana: the iScan/EncodeInfo XMP; leica: the SCN
collection) says which elements are structure it keeps (``allowed``) and
how an element's path is spelled in its profile (``name``). Here every
attribute, text and tail becomes one field, so the profile decides each
value with its type; an element outside ``allowed`` is dropped with all it
holds (its name and values are fields too, so they are removed values the
verifier looks for). Comments, processing instructions and a DTD never
survive: the XML is rebuilt from kept elements, not edited.

Parsing is defusedxml's: a DTD, entity or external reference refuses the
file (one line) instead of expanding. wsideid.tiff_family.xmlscrub (issue 13, fmt-a)
may replace this helper; the vendor modules only use split/join.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Callable, Iterator

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

from ...errors import MalformedFile
from ...model import KEEP, REMOVE, Decision, Field, ValueKind
from ...tiff.container import Ifd
from . import tiff_base

MAX_XML_BYTES = 8 << 20  # no scanner writes more metadata XML than this in one tag
# (path of element names from the root, local names) -> the profile's spelling, or None (not structure)
Namer = Callable[[list[str]], "str | None"]


def local(tag: str) -> str:
    return tag.rpartition("}")[2]


def namespace(tag: str) -> str:
    return tag[1:].partition("}")[0] if tag.startswith("{") else ""


def parse(text: str, where: str) -> ET.Element:
    if len(text) > MAX_XML_BYTES:
        raise MalformedFile(f"{where}: {len(text)} bytes of XML (hostile or corrupt file)")
    try:
        return fromstring(text.encode("utf-8"), forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as exc:
        raise MalformedFile(f"{where}: XML with a {type(exc).__name__} refused (hostile file)") from None
    except ET.ParseError as exc:
        raise MalformedFile(f"{where}: XML does not parse ({str(exc)[:60]})") from None


def _walk(root: ET.Element) -> Iterator[tuple[str, ET.Element, list[str]]]:
    """(node id, element, path of tags from the root), depth first, in document order."""
    stack: list[tuple[str, ET.Element, list[str]]] = [("0", root, [root.tag])]
    while stack:
        nid, el, path = stack.pop()
        yield nid, el, path
        for j in range(len(el) - 1, -1, -1):
            stack.append((f"{nid}.{j}", el[j], path + [el[j].tag]))


def split(k: int, ifd: Ifd, tag: int, text: str, section: str, name: Namer,
          identity: Callable[[str], bool]) -> list[Field]:
    """Every attribute, text and tail of the XML as a field; ``identity(key)`` says which name a person or device."""
    where = f"{ifd.path}/{tag}"
    root = parse(text, where)
    fields: list[Field] = []
    base = f"{ifd.path}/{tiff_base.tag_name(tag)}"
    count = 0
    for nid, el, path in _walk(root):
        spelled = name(path)
        count += 1 + len(el.attrib)
        tiff_base.check_key_count(ifd, count)
        shown = spelled if spelled is not None else "/".join(local(p) for p in path)
        if spelled is None:
            fields.append(Field(f"{base}/{shown}", f"{section}:@element", el.tag, ifd=k, tag=tag,
                                subkey=f"{nid}/@element", kind=ValueKind.IDENTIFIER))
        for attr, value in el.attrib.items():
            key = f"{section}:{shown}@{attr}"
            fields.append(Field(f"{base}/{shown}@{attr}", key, value, ifd=k, tag=tag, subkey=f"{nid}@{attr}",
                                kind=ValueKind.IDENTIFIER if identity(key) else ValueKind.TEXT))
        for part in ("text", "tail"):
            value = getattr(el, part)
            if value is not None and value.strip():
                fields.append(Field(f"{base}/{shown}/{part}()", f"{section}:{shown}/{part}()", value,
                                    ifd=k, tag=tag, subkey=f"{nid}/{part}()"))
    return fields


def _value(d: Decision | None) -> str | None:
    if d is None or d.action == REMOVE:
        return None
    return str(d.field.value if d.action == KEEP else d.new_value)


def join(text: str, decisions: list[Decision], name: Namer, where: str, drop: set[str] = frozenset()) -> str:
    """The XML rebuilt from the structure ``name`` allows and the values the plan kept;
    ``drop``: node ids of structure the caller removes (with all below it)."""
    root = parse(text, where)
    ns = namespace(root.tag)  # the document's default namespace, written back as xmlns on the root
    by = {d.field.subkey: d for d in decisions}
    built: dict[str, ET.Element] = {}
    out_root: ET.Element | None = None
    for nid, el, path in _walk(root):
        parent = nid.rpartition(".")[0]
        if name(path) is None or nid in drop or (parent and parent not in built):
            continue  # not structure, or below something dropped
        attrs = {"xmlns": ns} if ns and not parent else {}
        for attr in el.attrib:
            v = _value(by.get(f"{nid}@{attr}"))
            if v is not None:
                attrs[attr] = v
        tag = local(el.tag) if namespace(el.tag) == ns else el.tag
        new = ET.Element(tag, attrs) if not parent else ET.SubElement(built[parent], tag, attrs)
        new.text = _value(by.get(f"{nid}/text()"))
        new.tail = _value(by.get(f"{nid}/tail()"))
        built[nid] = new
        if not parent:
            out_root = new
    if out_root is None:
        raise MalformedFile(f"{where}: the XML root is not vendor structure")
    body = ET.tostring(out_root, encoding="unicode")
    return '<?xml version="1.0" encoding="utf-8"?>' + body
