"""The standard's code meanings, read from pydicom's generated tables without importing them.

Why not ``from pydicom.sr._concepts_dict import concepts``: that module is
18,700 codes as nested dicts, tuples and lists; importing it costs 15 MB of
RSS, and the lookup built from it another 15 MB, a third of the 100 MB a
run may use on a real slide (issue 17). The table is pydicom's own
generated source (one ``"value": ("meaning", [cids])`` entry per code, in
sections ``concepts["SCHEME"] = {``), so it is read as text here and kept
as one flat dict of strings (about 4 MB). A test checks that this reading
equals pydicom's dict entry for entry; if the file cannot be read this
way (another pydicom layout), the module is imported as before: the
answers never change, only the memory does. A reading that missed some
codes would err on the strict side: their items get keyed stand-ins and
their meanings become needles, nothing more is kept.
"""

from __future__ import annotations

import ast
import os
import re
from functools import lru_cache
from importlib.util import find_spec

_STR = rb"""(?:"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')"""
_SECTION = re.compile(rb"""^(?:concepts|mapping)\[(%s)\] = \{""" % _STR, re.M)
_CODE = re.compile(rb"""(%s)\s*:\s*\(\s*(%s(?:\s*%s)*)\s*,\s*\[""" % (_STR, _STR, _STR))
_PAIR = re.compile(rb"""(%s)\s*:\s*(%s)\s*,?\s*$""" % (_STR, _STR), re.M)
_SEP = "\x1f"  # between the meanings of one code (no meaning holds a control character)
MIN_CODES = 1000  # fewer parsed from the file means another layout: import instead


def _literal(raw: bytes) -> str:
    """The value of a Python string literal (or of adjacent ones) as the generator wrote it."""
    token = raw.decode("utf-8")
    if "\\" not in token and token[0] == token[-1] and token[0] not in token[1:-1]:
        return token[1:-1]
    value = ast.literal_eval("(" + token + ")")  # parenthesised: adjacent literals span lines
    if not isinstance(value, str):  # pragma: no cover - the pattern only matches string literals
        raise ValueError("not a string literal")
    return value


def _source(name: str) -> bytes | None:
    """The source of module ``pydicom.sr.<name>`` as bytes (as text, one non-Latin-1 character
    would double its size). Found from pydicom's own folder: ``find_spec`` of the module would
    import ``pydicom.sr``, which imports the very table this avoids."""
    spec = find_spec("pydicom")
    if spec is None or not spec.origin:
        return None
    path = os.path.join(os.path.dirname(spec.origin), "sr", name + ".py")
    if not os.path.isfile(path):
        return None
    with open(path, "rb") as fh:
        return fh.read()


def _sections(text: bytes):
    """(scheme, start, end) of each ``name["SCHEME"] = {`` section of a generated table."""
    heads = list(_SECTION.finditer(text))
    for k, m in enumerate(heads):
        end = heads[k + 1].start() if k + 1 < len(heads) else len(text)
        yield _literal(m.group(1)), m.end(), end


def _add(out: dict[str, str], key: str, meaning: str) -> None:
    have = out.get(key)
    if have is None:
        out[key] = meaning
    elif meaning not in have.split(_SEP):
        out[key] = _SEP.join(sorted([*have.split(_SEP), meaning]))


def _parsed() -> dict[str, str] | None:
    """scheme NUL value -> its meanings joined by ``_SEP``, read from the table's source."""
    text = _source("_concepts_dict")
    if text is None:
        return None
    out: dict[str, str] = {}
    for scheme, start, end in _sections(text):
        for m in _CODE.finditer(text, start, end):
            _add(out, scheme + "\0" + _literal(m.group(1)), _literal(m.group(2)))
    del text
    if len(out) < MIN_CODES:
        return None
    snomed = _source("_snomed_dict")
    if snomed is not None:  # SNOMED RT (SRT) codes of older objects, by their SCT equivalents
        for scheme, start, end in _sections(snomed):
            if scheme != "SRT":
                continue
            for m in _PAIR.finditer(snomed, start, end):
                sct = out.get("SCT\0" + _literal(m.group(2)))
                if sct is not None:
                    for meaning in sct.split(_SEP):
                        _add(out, "SRT\0" + _literal(m.group(1)), meaning)
    return out


def _imported() -> dict[str, str]:
    """The same index from the imported modules (the layout fallback; 30 MB more)."""
    from pydicom.sr._concepts_dict import concepts
    out: dict[str, set[str]] = {}
    for scheme, names in concepts.items():
        for by_value in names.values():
            for value, (meaning, _cids) in by_value.items():
                out.setdefault(scheme + "\0" + value, set()).add(meaning)
    try:
        from pydicom.sr._snomed_dict import mapping
        for srt, sct in mapping.get("SRT", {}).items():
            if "SCT\0" + sct in out:
                out.setdefault("SRT\0" + srt, set()).update(out["SCT\0" + sct])
    except ImportError:  # pragma: no cover - older pydicom
        pass
    return {k: _SEP.join(sorted(v)) for k, v in out.items()}


@lru_cache(maxsize=1)
def index() -> dict[str, str]:
    try:
        found = _parsed()
    except (OSError, ValueError, SyntaxError, UnicodeDecodeError):
        found = None
    return found if found is not None else _imported()


def meanings(scheme: str, value: str) -> frozenset[str]:
    """The meanings the standard gives code ``value`` of ``scheme`` (empty when it is not listed)."""
    joined = index().get(scheme + "\0" + value)
    return frozenset(joined.split(_SEP)) if joined else frozenset()


def norm(text: str) -> str:
    return " ".join(text.split()).casefold()


@lru_cache(maxsize=1)
def all_meanings() -> frozenset[str]:
    """Every standard meaning, normalised (``norm``)."""
    return frozenset(norm(m) for joined in index().values() for m in joined.split(_SEP))
