"""Coded entries (Code Sequence Macro items): keep what a standard scheme defines, replace the rest.

A code item (CodeValue, CodingSchemeDesignator, CodeMeaning, ...) is free
text in disguise: CodeMeaning is LO, and a local scheme ("99MYLAB", "L")
lets a site put anything into CodeValue. So an item is kept only when its
scheme is a standard one declared in the profile and its value parses as that
scheme's code grammar (SNOMED CT identifiers are checked digit by digit: the
partition and the Verhoeff check digit). Its meaning is then the one the
standard gives (pydicom's concept dictionary, read by ``code_index``, plus codes the profile lists);
a meaning nobody can vouch for is replaced by a neutral one. Items under any
other scheme keep their shape, so the instance stays valid, but get a keyed
stand-in code, a fixed local scheme and a neutral meaning: equal local codes
still compare equal across slides of the same secret, and nothing of the
original text remains.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pydicom.dataset import Dataset

from ..model import ValueKind
from . import code_index
from .uids import UidMapper

CODE_KEYWORDS = ("CodeValue", "LongCodeValue", "URNCodeValue")
LOCAL_SCHEME = "99WSIDEID"
LOCAL_MEANING = "local code (replaced)"
_VERSION = re.compile(r"[0-9][0-9.]{0,15}")

_D = [[0, 1, 2, 3, 4, 5, 6, 7, 8, 9], [1, 2, 3, 4, 0, 6, 7, 8, 9, 5], [2, 3, 4, 0, 1, 7, 8, 9, 5, 6],
      [3, 4, 0, 1, 2, 8, 9, 5, 6, 7], [4, 0, 1, 2, 3, 9, 5, 6, 7, 8], [5, 9, 8, 7, 6, 0, 4, 3, 2, 1],
      [6, 5, 9, 8, 7, 1, 0, 4, 3, 2], [7, 6, 5, 9, 8, 2, 1, 0, 4, 3], [8, 7, 6, 5, 9, 3, 2, 1, 0, 4],
      [9, 8, 7, 6, 5, 4, 3, 2, 1, 0]]
_P = [[0, 1, 2, 3, 4, 5, 6, 7, 8, 9], [1, 5, 7, 6, 2, 8, 3, 0, 9, 4], [5, 8, 0, 3, 7, 9, 6, 1, 4, 2],
      [8, 9, 1, 6, 0, 4, 3, 5, 2, 7], [9, 4, 5, 3, 1, 2, 6, 8, 7, 0], [4, 2, 8, 6, 5, 7, 3, 9, 0, 1],
      [2, 7, 9, 3, 8, 0, 6, 4, 1, 5], [7, 0, 4, 6, 9, 1, 3, 2, 8, 5]]


def sctid_valid(value: str) -> bool:
    """A SNOMED CT identifier: 6-18 digits, a concept/description/relationship partition, Verhoeff check."""
    if not re.fullmatch(r"[1-9]\d{5,17}", value) or value[-3:-1] not in ("00", "01", "02", "10", "11", "12"):
        return False
    c = 0
    for i, ch in enumerate(reversed(value)):
        c = _D[c][_P[i % 8][int(ch)]]
    return c == 0


def _norm(text: str) -> str:
    return code_index.norm(text)


@dataclass(frozen=True)
class CodeOp:
    """What happens to one element of a code item."""

    kind: str  # keep | set | remove
    value: object = None
    why: str = ""
    value_kind: ValueKind = ValueKind.CODE


class CodeRules:
    """Standard schemes and their code grammar, plus codes the profile vouches for."""

    def __init__(self, schemes: dict[str, str], extra: dict[str, str], listed_only: tuple[str, ...] | list[str] = ()):
        self.schemes = {k: re.compile(v) for k, v in schemes.items()}
        # schemes whose grammar vouches for nothing: only a listed code is standard
        self.listed_only = frozenset(listed_only)
        self.extra: dict[tuple[str, str], str] = {}
        for key, meaning in extra.items():
            scheme, _, value = key.partition(":")
            self.extra[(scheme, value)] = meaning

    @staticmethod
    def is_code_item(item: Dataset) -> bool:
        """An item of the Code Sequence Macro (it holds a code value); a Coding Scheme
        Identification item, with a designator but no code, is judged attribute by attribute."""
        return any(k in item for k in CODE_KEYWORDS)

    def meaning_kind(self, meaning: str) -> ValueKind:
        """A replaced meaning that is some standard code's meaning ("Brightfield illumination"
        under a mistyped code) is a CODE, not a needle: the same words stand, rightly, in other
        kept code items. Any other replaced meaning is TEXT, searched for in the output."""
        n = _norm(meaning)
        if n in code_index.all_meanings() or n in {_norm(m) for m in self.extra.values()}:
            return ValueKind.CODE
        return ValueKind.TEXT

    def meanings(self, scheme: str, value: str) -> list[str]:
        known = sorted(code_index.meanings(scheme, value))
        if (scheme, value) in self.extra:
            known.insert(0, self.extra[(scheme, value)])
        return known

    def standard(self, scheme: str, value: str) -> bool:
        pat = self.schemes.get(scheme)
        if pat is None:
            return False
        if self.meanings(scheme, value):
            return True
        if scheme in self.listed_only:
            return False
        if scheme in ("SCT", "SNM3") and not sctid_valid(value):
            return False
        return bool(pat.fullmatch(value))

    def judge(self, item: Dataset, uids: UidMapper) -> dict[str, CodeOp]:
        """keyword -> CodeOp for the code elements of ``item`` (others follow the usual rules)."""
        scheme = str(item.get("CodingSchemeDesignator", "") or "").strip()
        present = [k for k in CODE_KEYWORDS if k in item]
        value = str(item.get(present[0], "") or "").strip() if present else ""
        ops: dict[str, CodeOp] = {}
        if present == ["CodeValue"] and self.standard(scheme, value):
            ops["CodeValue"] = CodeOp("keep", why=f"code: {scheme} code")
            ops["CodingSchemeDesignator"] = CodeOp("keep", why="code: standard scheme")
            if "CodeMeaning" in item:
                meaning = str(item.get("CodeMeaning", "") or "")
                known = self.meanings(scheme, value)
                if any(_norm(meaning) == _norm(m) for m in known):
                    ops["CodeMeaning"] = CodeOp("keep", why="code: the standard's meaning")
                else:
                    new = known[0] if known else f"{scheme} {value}"[:64]
                    ops["CodeMeaning"] = CodeOp("set", new, "code: meaning not the standard's: replaced",
                                                self.meaning_kind(meaning))
            if "CodingSchemeVersion" in item:
                ver = str(item.get("CodingSchemeVersion", "") or "")
                ops["CodingSchemeVersion"] = (CodeOp("keep", why="code: version") if _VERSION.fullmatch(ver)
                                              else CodeOp("remove", why="code: version not a version number",
                                                          value_kind=ValueKind.TEXT))
            return ops
        # Local scheme (or a value the scheme's grammar rejects): a keyed stand-in.
        stand_in = uids.pseudonym("dicom-local-code", f"{scheme}\0{value}", prefix="L")
        why = "code: non-standard scheme or value: replaced"
        for k in present:
            new = f"urn:wsideid:{stand_in}" if k == "URNCodeValue" else stand_in
            ops[k] = CodeOp("set", new, why, ValueKind.IDENTIFIER)
        if "CodingSchemeDesignator" in item:
            ops["CodingSchemeDesignator"] = CodeOp("set", LOCAL_SCHEME, why, ValueKind.TEXT)
        if "CodeMeaning" in item:
            ops["CodeMeaning"] = CodeOp("set", LOCAL_MEANING, why,
                                        self.meaning_kind(str(item.get("CodeMeaning", "") or "")))
        if "CodingSchemeVersion" in item:
            ops["CodingSchemeVersion"] = CodeOp("remove", why=why, value_kind=ValueKind.TEXT)
        return ops
