"""Allow-list scrubbing of vendor XML metadata: the one XML helper of the TIFF family.

Why one module: several vendors keep their metadata as an XML document in a
TIFF tag (OME-XML, Philips DPUfsImport, QPTIFF, Ventana's iScan XMP, Leica's
SCN collection). Each is handled the same way: parsed without entity
expansion, DTDs or network access (defusedxml; a hostile document is refused
in one line), flattened into one item per attribute and per text node so the
profile decides each like any other field, and written back from the kept
items only; comments, processing instructions and a DTD never survive. The
vendor module keeps the knowledge (which paths are what), this module the
shape. Two allow-lists, by what the vendor can name:

- by content (``items`` -> ``rebuild`` -> ``serialise``; OME, Philips, QPTIFF):
  an element appears in the output only when it holds a kept value or a kept
  descendant (or its driver asks for it), so neither an element name nor a
  value the profile did not vouch for survives; foreign namespaces are never
  written;
- by structure (``split`` -> ``join``; Ventana, Leica): the vendor's ``Namer``
  says which elements are structure it keeps and how an element's path is
  spelled in its profile; an element outside it is dropped with all it holds
  (its name and values are fields too, so they are removed values the
  verifier looks for).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Callable, Iterator
from xml.etree.ElementTree import Element, ParseError

from ..errors import MalformedFile
from ..model import KEEP, REMOVE, Decision, Field, ValueKind
from ..tiff.container import Ifd
from ..tiff.tags import tag_name

# Beyond these no scanner writes, and a parser's memory grows with them.
MAX_XML_CHARS = 64 << 20  # Philips' XML carries its label and macro as base64
MAX_FIELD_XML_CHARS = 8 << 20  # structure-named XML (Ventana, Leica): metadata only
MAX_NODES = 200_000
MAX_DEPTH = 256  # no vendor schema nests near this; the recursive walkers stay far from Python's limit
# (path of element tags from the root) -> the profile's spelling, or None (not structure)
Namer = Callable[[list[str]], "str | None"]
TEXT = "#text"  # the item name of an element's text
TAIL = "#tail"  # text after an element, inside its parent


@dataclass(frozen=True)
class XmlItem:
    """One attribute or text node: ``path`` is the element's local names from
    the root ("OME/Image/Pixels"), ``attr`` the attribute's local name (or
    ``#text``/``#tail``), ``node`` the element's position in document order."""

    path: str
    attr: str
    value: str
    node: int


def local(tag: str) -> str:
    return tag.rpartition("}")[2] if tag.startswith("{") else tag


def namespace(tag: str) -> str:
    return tag[1:].partition("}")[0] if tag.startswith("{") else ""


def parse(text: str, what: str, limit: int = MAX_XML_CHARS) -> Element:
    """The document's root, or a one-line MalformedFile: no DTD, no entities,
    no external references, bounded size and node count."""
    import defusedxml.ElementTree as DET
    from defusedxml import DefusedXmlException
    if len(text) > limit:
        raise MalformedFile(f"{what}: XML of {len(text)} characters (hostile or corrupt file)")
    try:
        root = DET.fromstring(text.lstrip("\ufeff"), forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as exc:
        raise MalformedFile(f"{what}: XML refused ({type(exc).__name__}: DTDs and entities are not accepted)") from None
    except (ParseError, ValueError) as exc:
        raise MalformedFile(f"{what}: XML does not parse ({str(exc).splitlines()[0][:80]})") from None
    n, stack = 0, [(root, 1)]
    while stack:  # iterative: the walkers after this recurse, so depth is bounded here, before them
        el, depth = stack.pop()
        n += 1
        if n > MAX_NODES:
            raise MalformedFile(f"{what}: XML with more than {MAX_NODES} elements (hostile or corrupt file)")
        if depth > MAX_DEPTH:
            raise MalformedFile(f"{what}: XML nested deeper than {MAX_DEPTH} levels (hostile or corrupt file)")
        stack.extend((child, depth + 1) for child in el)
    return root


def elements(root: Element) -> list[tuple[str, Element]]:
    """(path, element) in document order; a node number is an index here."""
    out: list[tuple[str, Element]] = []

    def walk(el: Element, prefix: str) -> None:
        path = f"{prefix}/{local(el.tag)}" if prefix else local(el.tag)
        out.append((path, el))
        for child in el:
            if isinstance(child.tag, str):
                walk(child, path)

    walk(root, "")
    return out


def attr_name(name: str) -> str:
    """An attribute's item name: its local name, or ``ns?:local`` when namespaced
    (no profile lists those, so they are removed)."""
    return f"ns?:{local(name)}" if name.startswith("{") else name


def items(root: Element) -> list[XmlItem]:
    """Every attribute and every non-blank text of the document, as items."""
    out: list[XmlItem] = []
    for node, (path, el) in enumerate(elements(root)):
        for name, value in el.attrib.items():
            out.append(XmlItem(path, attr_name(name), value, node))
        if el.text and el.text.strip():
            out.append(XmlItem(path, TEXT, el.text.strip(), node))
        if node and el.tail and el.tail.strip():
            out.append(XmlItem(path, TAIL, el.tail.strip(), node))
    return out


def rebuild(root: Element, values: dict[tuple[int, str], str],
            must_keep: Callable[[int, str, Element], bool] | None = None,
            skip: Callable[[int, str, Element], bool] | None = None) -> Element | None:
    """A new tree with only ``values`` ((node, item name) -> value) and the
    elements that hold one or contain one, plus those ``must_keep`` names.
    ``skip`` drops an element with everything below it. Tails are written as
    the kept element's tail. The root is always returned unless skipped."""
    from xml.etree.ElementTree import Element as E
    nodes = elements(root)
    index = {id(el): k for k, (_, el) in enumerate(nodes)}

    def build(el: Element) -> Element | None:
        k = index[id(el)]
        path = nodes[k][0]
        if skip is not None and skip(k, path, el):
            return None
        kids = [b for b in (build(c) for c in el if isinstance(c.tag, str)) if b is not None]
        attrs = {name: values[(k, attr_name(name))] for name in el.attrib
                 if (k, attr_name(name)) in values and not name.startswith("{")}
        text = values.get((k, TEXT))
        tail = values.get((k, TAIL))
        if not (kids or attrs or text is not None or tail is not None or k == 0
                or (must_keep is not None and must_keep(k, path, el))):
            return None
        out = E(el.tag, attrs)
        out.text, out.tail = text, tail
        out.extend(kids)
        return out

    return build(root)


def _esc(s: str, attr: bool) -> str:
    s = s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return s.replace('"', "&quot;").replace("\n", "&#10;").replace("\r", "&#13;").replace("\t", "&#9;") if attr else s


def serialise(root: Element, root_attrs: dict[str, str] | None = None, declaration: bool = True) -> str:
    """The tree as text: the root's namespace as the default namespace (its
    children in it unprefixed), ``root_attrs`` (fixed schema attributes the
    driver writes) first on the root. Elements of any other namespace are
    not written."""
    ns = namespace(root.tag)
    parts: list[str] = ['<?xml version="1.0" encoding="UTF-8"?>'] if declaration else []

    def write(el: Element, top: bool) -> None:
        if namespace(el.tag) != ns:
            return
        attrs = dict(root_attrs or {}) if top else {}
        if top and ns:
            attrs = {"xmlns": ns, **attrs}
        attrs.update(el.attrib)
        a = "".join(f' {k}="{_esc(v, True)}"' for k, v in attrs.items())
        name = local(el.tag)
        kids = list(el)
        if not kids and el.text is None:
            parts.append(f"<{name}{a}/>")
        else:
            parts.append(f"<{name}{a}>{_esc(el.text or '', False)}")
            for c in kids:
                write(c, False)
            parts.append(f"</{name}>")
        if not top and el.tail is not None:
            parts.append(_esc(el.tail, False))

    write(root, True)
    return "".join(parts)


# -- by structure: split into fields, join from the kept ones (Ventana, Leica) -------------

def _walk(root: Element) -> Iterator[tuple[str, Element, list[str]]]:
    """(node id, element, path of tags from the root), depth first, in document order."""
    stack: list[tuple[str, Element, list[str]]] = [("0", root, [root.tag])]
    while stack:
        nid, el, path = stack.pop()
        yield nid, el, path
        for j in range(len(el) - 1, -1, -1):
            stack.append((f"{nid}.{j}", el[j], path + [el[j].tag]))


def split(k: int, ifd: Ifd, tag: int, text: str, section: str, name: Namer,
          identity: Callable[[str], bool]) -> list[Field]:
    """Every attribute, text and tail of the XML as a field; ``identity(key)`` says which name a person or device."""
    from .vendors.tiff_base import check_key_count
    root = parse(text, f"{ifd.path}/{tag}", MAX_FIELD_XML_CHARS)
    fields: list[Field] = []
    base = f"{ifd.path}/{tag_name(tag)}"
    count = 0
    for nid, el, path in _walk(root):
        spelled = name(path)
        count += 1 + len(el.attrib)
        check_key_count(ifd, count)
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
                # an element's text names a person or a slide as an attribute can (Leica's barcode)
                key = f"{section}:{shown}/{part}()"
                fields.append(Field(f"{base}/{shown}/{part}()", key, value, ifd=k, tag=tag, subkey=f"{nid}/{part}()",
                                    kind=ValueKind.IDENTIFIER if identity(key) else ValueKind.TEXT))
    return fields


def base64_text(value: str) -> str:
    """The text a Base64 value decodes to (a scanner's barcode: Leica, Philips), or "".

    Why: a removed barcode held as Base64 is searched for in its decoded form too, or
    the barcode's own text could stand elsewhere in the output unnoticed."""
    import base64
    import binascii
    try:
        return base64.b64decode("".join(str(value).split()), validate=True).decode("utf-8", "replace").strip()
    except (binascii.Error, ValueError):
        return ""


def _value(d: Decision | None) -> str | None:
    if d is None or d.action == REMOVE:
        return None
    return str(d.field.value if d.action == KEEP else d.new_value)


def join(text: str, decisions: list[Decision], name: Namer, where: str, drop: set[str] = frozenset()) -> str:
    """The XML rebuilt from the structure ``name`` allows and the values the plan kept;
    ``drop``: node ids of structure the caller removes (with all below it)."""
    root = parse(text, where, MAX_FIELD_XML_CHARS)
    ns = namespace(root.tag)  # the document's default namespace, written back as xmlns on the root
    by = {d.field.subkey: d for d in decisions}
    built: dict[str, Element] = {}
    out_root: Element | None = None
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
