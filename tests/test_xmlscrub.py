"""The one XML helper of the TIFF family (``tiff_family/xmlscrub.py``): both allow-lists share
one safe parser, so a hostile document is refused the same way for every vendor."""

from __future__ import annotations

import pytest

from wsideid.errors import MalformedFile
from wsideid.model import KEEP, REMOVE, Decision
from wsideid.tiff.container import Ifd
from wsideid.tiff_family import xmlscrub

HOSTILE = ['<!DOCTYPE a [<!ENTITY e "x">]><a>&e;</a>', '<!DOCTYPE a SYSTEM "http://example.org/a.dtd"><a/>']


def _ifd() -> Ifd:
    return Ifd(offset=8, entries={}, byteorder="<", path="ifd[0]")


def _namer(path: list[str]) -> str | None:
    names = [xmlscrub.local(p) for p in path]
    return "/".join(names) if names[-1] in ("Root", "Keep") else None


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_xml_refused_in_one_line_by_both_allow_lists(text):
    with pytest.raises(MalformedFile, match="XML refused"):
        xmlscrub.parse(text, "t")
    with pytest.raises(MalformedFile, match="XML refused"):
        xmlscrub.split(0, _ifd(), 270, text, "x", _namer, lambda key: False)


def test_structure_limit_is_smaller():
    big = "<Root>" + "a" * (xmlscrub.MAX_FIELD_XML_CHARS + 1) + "</Root>"
    xmlscrub.parse(big, "t")  # within the content allow-list's limit
    with pytest.raises(MalformedFile, match="characters"):
        xmlscrub.split(0, _ifd(), 270, big, "x", _namer, lambda key: False)


def test_undecodable_text_is_a_one_line_refusal():
    with pytest.raises(MalformedFile):
        xmlscrub.split(0, _ifd(), 270, "<Root a='\udcff'/>", "x", _namer, lambda key: False)


def test_split_join_keeps_only_named_structure_and_kept_values():
    text = '<Root id="7"><Keep name="Jane Doe" n="3">t</Keep><Drop who="Jane Doe"/></Root>'
    fields = xmlscrub.split(0, _ifd(), 270, text, "x", _namer, lambda key: key.endswith("@name"))
    decisions = [Decision(f, REMOVE if "name" in f.key or f.key.endswith("@element") else KEEP, rule="t")
                 for f in fields]
    out = xmlscrub.join(text, decisions, _namer, "t")
    assert out == '<?xml version="1.0" encoding="utf-8"?><Root id="7"><Keep n="3">t</Keep></Root>'
    assert "Jane" not in out and "Drop" not in out


def test_deep_nesting_is_a_one_line_refusal():
    """Parsed fine by expat, a 3000-deep document would end in RecursionError in the walkers: refused first."""
    from wsideid.errors import MalformedFile
    from wsideid.tiff_family import xmlscrub
    deep = "<a>" * 3000 + "</a>" * 3000
    with pytest.raises(MalformedFile, match="nested deeper"):
        xmlscrub.parse(deep, "ImageDescription")
