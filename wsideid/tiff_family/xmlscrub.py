"""Allow-list scrubbing of XML metadata (OME-XML, Philips DPUfsImport, QPTIFF).

Why one module: several vendors keep their metadata as an XML document in
an ImageDescription. Each is handled the same way: parsed without entity
expansion, DTDs or network access (a hostile document is refused in one
line), flattened into one item per attribute and per text node so the
profile decides each like any other field, and written back from the kept
items only. An element appears in the output only when it holds a kept
value or a kept descendant (or its driver asks for it), so neither an
element name nor a value the profile did not vouch for survives; comments,
processing instructions and foreign namespaces are never written.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable
from xml.etree.ElementTree import Element, ParseError

from ..errors import MalformedFile

# Beyond these no scanner writes, and a parser's memory grows with them.
MAX_XML_CHARS = 64 << 20
MAX_NODES = 200_000
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


def parse(text: str, what: str) -> Element:
    """The document's root, or a one-line MalformedFile: no DTD, no entities,
    no external references, bounded size and node count."""
    import defusedxml.ElementTree as DET
    from defusedxml import DefusedXmlException
    if len(text) > MAX_XML_CHARS:
        raise MalformedFile(f"{what}: XML of {len(text)} characters (hostile or corrupt file)")
    try:
        root = DET.fromstring(text.lstrip("\ufeff"), forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as exc:
        raise MalformedFile(f"{what}: XML refused ({type(exc).__name__}: DTDs and entities are not accepted)") from None
    except (ParseError, ValueError) as exc:
        raise MalformedFile(f"{what}: XML does not parse ({str(exc).splitlines()[0][:80]})") from None
    n = 0
    for _ in root.iter():
        n += 1
        if n > MAX_NODES:
            raise MalformedFile(f"{what}: XML with more than {MAX_NODES} elements (hostile or corrupt file)")
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
