"""Residual needles: what must not occur in a published output, and the scan for them.

Shared by the TIFF-family verifier, in-place mode and the DICOM verifier.
There are no exemptions: if a removed value also stands in a kept field,
the kept field is the bug, and the output is refused.

What is a needle (see ``needles_for_plan``):
- every removed value whose kind is TEXT or IDENTIFIER, whole, when it has
  at least ``MIN_VALUE`` characters (each ``\\``-separated value of a
  multi-valued DICOM element too);
- the parts of removed person names (DICOM PN; TIFF/NDPI fields whose key
  names a person: Artist, Operator, User...), split on ``^ = , ;`` and
  spaces, with at least ``MIN_NAME_PART`` characters and a letter, except
  placeholder words (``PLACEHOLDER_PARTS``: "Test^Physician" in test data,
  whose "Test" stands in a kept "Test Manufacturer");
- the parts of removed identifiers (not UIDs or URLs), split on anything
  not a letter or digit, that hold a digit: at least ``MIN_VALUE``
  characters with letters, or at least ``MIN_DIGITS_PART`` digits. Words
  ("SLIDE" in "SLIDE_1", which stands again in a kept "SLIDE_CORNER"),
  3-character prefixes ("MRN", "S19") and 4-digit years are shared by a
  lab's whole catalogue and identify nobody; the whole value is searched;
- every user-given identifier (``--identifier``, the manifest's
  ``identifiers`` column) whole and in parts, down to ``MIN_USER``
  characters; a shorter one is not searched and the report says so;
- every date in a removed TEXT, IDENTIFIER or DATE value, in every spelling
  ``dates.spellings`` knows, except dates the date policy itself wrote
  into the output (a shifted date can coincide with another original).
  A date is one needle (``Needle.day``), not its ~1,250 spellings: the scan
  finds date-shaped bytes and reads them back (``date_scan``), which finds
  exactly those spellings at a cost that does not grow with the number of
  dates (``NeedleSet.needles`` still lists them, for reading).

Placeholder values ("Unknown", "ANONYMIZED") and the research ID itself
(an original equal to it) are not needles either. Numbers, enumerated or
coded values, units and binary summaries are not needles: they cannot
identify anyone, and a removed "TEXT" (a DICOM CS) matched harmless bytes
and refused clean slides. The kind comes from
``Field.kind``; where an inventory left the default, it is derived from the
DICOM VR or the TIFF tag type, and a default-kind value that parses wholly
as a number with fewer than ``MIN_RECORD_DIGITS`` digits counts as a number.

The scan (``Scanner``) looks for each needle in UTF-8, Latin-1, UTF-16 LE
and UTF-16 BE with Unicode case folding. The haystack is lower-cased once
(ASCII bytes); needles are encoded per case variant of each non-ASCII
character (and NFC/NFD forms and the casefolded form, "straße" ->
"strasse"), then lowered the same way. Candidate positions come from one
table lookup of every 3-byte window (numpy, in chunks), so the cost is
linear in the haystack whatever the number of needles. Dates are found by
``date_scan`` in the same lower-cased windows, encodings and forms
(``textbytes``). Dates must stand apart from other digits; numbers from
other digits but for zeros before them ("12345" is not found in a minted
UID "2.25.981234507...", but is in "0012345"); name parts from other
letters ("Ann" is not found in "Annotation").
"""

from __future__ import annotations

import datetime as dt
import functools
import itertools
import math
import re
from dataclasses import dataclass, field
from enum import Enum
from typing import Iterable, Iterator, Sequence

import numpy as np

from .date_scan import DateFinder
from .dates import parse_any, spellings
from .errors import ProfileError
from .checks import Check, VerifyReport
from .model import (DATE, DATETIME, KEEP, REMOVE, TEXT, TIME, Decision, Plan, ValueKind, names_from_file,
                    split_file_text, vouched_prefixes)
from .textbytes import ENCODINGS, char_alts, forms

MIN_VALUE = 4  # whole removed values
MIN_NAME_PART = 3  # parts of person names
MIN_DIGITS_PART = 5  # an all-digit part of an identifier
MIN_USER = 3  # user-given identifiers
MIN_RECORD_DIGITS = 7  # a default-kind integer this long may be a record number: still a needle
CHUNK = 1 << 20  # with its lower-cased copy and flag arrays about 5x this is held; 1 MB scans as fast as 4 MB
SEPARATOR = b"\0" * 4  # between segments: no needle encoding holds U+0000
# Bytes beside a match that its checks may read: the most is after a compact date, whose
# DICOM DT time of day ("120000.000000") and the unit after it must not run on into digits:
# 15 UTF-16 units.
MARGIN = 32

_NAME_KEY = re.compile(r"patient|person|user|operator|artist|author|owner|physician|doctor|technician|technologist"
                       r"|pathologist|creator|reviewer|surgeon|signed", re.I)
_NAME_SPLIT = re.compile(r"[\s^=,;\\]+")
_ID_SPLIT = re.compile(r"[^0-9A-Za-z\u00c0-\uffff]+")
_ID_KEYWORD = re.compile(r"(?:ID|IDs|Identifier|Number|Numbers)$")  # PatientID, AccessionNumber, ...
_UID = re.compile(r"[0-9.\\]+")  # UIDs are searched whole: their parts are organisation roots
# Placeholder words in test and anonymised data ("Test^Physician"): as a part of a name they identify
# nobody and stand in kept text ("Test Manufacturer"); the whole value is still a needle.
PLACEHOLDER_PARTS = frozenset("""test patient physician doctor anonymous anonymized anonymised anon unknown none null
    demo sample phantom dummy subject case slide specimen operator user admin default name first last
    mrs phd the and von van der den del""".split())
# Whole values that stand for "nothing here" (a converter's DeviceSerialNumber "Unknown" beside a kept
# Manufacturer "Unknown"): they identify nobody.
PLACEHOLDER_VALUES = frozenset("""unknown anonymized anonymised anonymous removed none null n/a redacted
    deidentified de-identified undefined empty default""".split())
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_PIECES = re.compile(r"[\\\x00-\x1f\x7f]+")
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_NUMBER_LIST = re.compile(r"\s*" + _NUMBER.pattern + r"(?:\s*[,\\]\s*" + _NUMBER.pattern + r")*\s*")

# DICOM value representations, by what their values are.
_VR_KIND = {
    **{vr: ValueKind.CODE for vr in ("CS", "AS")},
    **{vr: ValueKind.NUMBER for vr in ("DS", "IS", "FL", "FD", "SL", "SS", "UL", "US", "SV", "UV", "AT")},
    **{vr: ValueKind.BINARY for vr in ("OD", "OF", "OL", "OV", "SQ")},
    **{vr: ValueKind.DATE for vr in ("DA", "DT", "TM")},
    **{vr: ValueKind.IDENTIFIER for vr in ("PN", "UI", "AE")},
}
# Attributes of a code sequence item: under a standard coding scheme they are codes (a removed
# "Tissue section" item's meaning stands again in a kept one and identifies nobody); under a
# private or local scheme they are text like any other.
CODE_ITEM_KEYS = frozenset({"CodeValue", "LongCodeValue", "URNCodeValue", "CodingSchemeDesignator",
                            "CodingSchemeVersion", "CodeMeaning", "ContextIdentifier", "ContextUID",
                            "MappingResource", "MappingResourceUID", "MappingResourceName",
                            "ContextGroupVersion", "ContextGroupLocalVersion", "ContextGroupExtensionFlag",
                            "ContextGroupExtensionCreatorUID"})
STANDARD_SCHEMES = frozenset({"DCM", "SCT", "SRT", "SNM3", "LN", "UCUM", "FMA", "NCIT", "UMLS", "RADLEX", "MDC",
                              "ACR", "UBERON", "NEU", "HL7", "I10", "I9C", "ICD10", "ICDO3", "MSH", "BARI", "CD2",
                              "ISO3166_1", "ISO639_1", "ISO639_2", "RFC5646", "IBSI", "RXNORM", "NDC", "ITIS_TSN",
                              "PUBCHEM_CID", "NYUMCCG", "MAYONRISBSASRG", "ORPHA", "DC"})
_TIFF_TEXT_TYPES = (1, 2, 7)  # BYTE, ASCII, UNDEFINED: may hold text; the other types are numbers


class NeedleKind(str, Enum):
    """Why a string is searched for (named in failures instead of the value)."""

    VALUE = "removed text value"
    IDENTIFIER = "removed identifier"
    NAME_PART = "part of a removed name"
    ID_PART = "part of a removed identifier"
    USER_IDENTIFIER = "user-given identifier"
    DATE = "removed date"
    UID = "original UID"


@dataclass(frozen=True)
class Needle:
    text: str
    kind: NeedleKind
    source: str  # where the value came from: a field path (unknown keys masked) or "identifier #k"
    word: bool = False  # found only apart from other letters (parts of names: "Ann" is not in "Annotation")
    day: dt.date | None = None  # a removed date: found in every spelling ``dates.spellings`` knows (``date_scan``)


def _key(n: Needle) -> object:
    return n.day if n.day is not None else n.text.casefold()


@dataclass
class NeedleSet:
    """A plan's needles. ``searched`` is what the scan takes: a removed date is one needle there
    (``Needle.day``), found by its shape in every spelling; ``needles`` spells it out."""

    searched: list[Needle] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # user identifiers too short to search (no values)

    def __len__(self) -> int:
        return len(self.searched)

    def extend(self, more: Iterable[Needle]) -> None:
        seen = {_key(n) for n in self.searched}
        for n in more:
            if _key(n) not in seen:
                seen.add(_key(n))
                self.searched.append(n)

    @property
    def needles(self) -> list[Needle]:
        """Every needle as a string, a removed date once per spelling: what the scan of ``searched``
        finds (for reading and tests; about 1,250 strings a date, so the scan never builds this)."""
        out, seen = [], set()
        for n in self.searched:
            for text in (spellings(n.day) if n.day is not None else [n.text]):
                if text.casefold() not in seen:
                    seen.add(text.casefold())
                    out.append(n if n.day is None else Needle(text, n.kind, n.source, n.word, n.day))
        return out


@dataclass(frozen=True)
class Hit:
    needle: Needle
    encoding: str
    offset: int  # in the file (or the buffer scanned)
    file: str = "the output"

    def describe(self) -> str:
        """The failure text: which kind of needle, from where, found where; never the value."""
        return f"{self.needle.kind.value} from {self.needle.source}, found in {self.file} at byte {self.offset} ({self.encoding})"


# --- which values are needles -------------------------------------------------

def _dicom_vr(tag: int | None) -> str | None:
    if tag is None:
        return None
    try:
        from pydicom.datadict import dictionary_VR
        return dictionary_VR(tag)
    except (KeyError, ValueError, TypeError):
        return None


def _tiff_type(container, f) -> int | None:
    if f.ifd is None or f.tag is None or not hasattr(container, "all_ifds"):
        return None
    try:
        ifds = list(container.all_ifds())
        return ifds[f.ifd].entries[f.tag].type
    except (IndexError, KeyError, AttributeError):
        return None


def plan_scheme_uids(plan: Plan) -> frozenset[str]:
    """The coding-scheme OIDs the plan's DICOM profile keeps unchanged (none for other formats)."""
    data = getattr(plan.profile, "data", None) or {}
    if "dicom_options" not in data:
        return frozenset()
    from .dicom.uids import scheme_uids
    return scheme_uids(data["dicom_options"])


def coding_schemes(plan: Plan) -> dict[str, str]:
    """Item path -> its CodingSchemeDesignator (DICOM), for ``value_kind``."""
    return {d.field.path.rsplit("/", 1)[0]: d.field.text().strip().upper() for d in plan.fields
            if d.field.key == "dicom:CodingSchemeDesignator"}


def value_kind(d: Decision, container=None, schemes: dict[str, str] | None = None,
               scheme_uids: frozenset[str] = frozenset()) -> ValueKind:
    """The field's kind (``_kind_of``); a number long enough to be a record number is a needle
    whatever typed it (an inventory's NUMBER, a DICOM IS, a TIFF LONG): never left out.
    ``scheme_uids``: the coding-scheme OIDs the profile keeps (``plan_scheme_uids``)."""
    kind = _kind_of(d, container, schemes, scheme_uids)
    if kind == ValueKind.NUMBER and record_number(d.field.text()):
        return ValueKind.TEXT
    return kind


def _kind_of(d: Decision, container=None, schemes: dict[str, str] | None = None,
             scheme_uids: frozenset[str] = frozenset()) -> ValueKind:
    """The field's kind, derived conservatively when the inventory left the default (TEXT)."""
    f = d.field
    if f.kind != ValueKind.TEXT:
        return f.kind
    v = f.text().strip()
    if f.key.startswith("dicom:"):
        if f.key[6:] in CODE_ITEM_KEYS and (schemes or {}).get(f.path.rsplit("/", 1)[0]) in STANDARD_SCHEMES:
            return ValueKind.CODE
        vr = _dicom_vr(f.tag)
        if vr is not None:
            kind = _VR_KIND.get(vr.split(" or ")[0], ValueKind.TEXT)
            if kind == ValueKind.TEXT and _ID_KEYWORD.search(f.key) and "UniversalEntity" not in f.key:
                return ValueKind.IDENTIFIER
            if vr == "UI":
                from .dicom.uids import is_standard_uid
                return ValueKind.CODE if all(is_standard_uid(u, scheme_uids) for u in v.split("\\") if u) else kind
            return kind
    elif f.key.startswith("tags:"):
        t = _tiff_type(container, f)
        if t is not None and t not in _TIFF_TEXT_TYPES:
            return ValueKind.NUMBER
    if _NUMBER_LIST.fullmatch(v) and not record_number(v):
        return ValueKind.NUMBER
    return ValueKind.TEXT


def record_number(v: str) -> bool:
    """A value of digits long enough to be a record number (an MRN, an accession): whatever
    its shape says, it is a needle when removed (``value_kind``, for every inventory).""" 
    return any(len(run) >= MIN_RECORD_DIGITS for run in re.findall(r"\d[\d.]*", v) if "." not in run)


# How inventories summarise values they do not decode (an XML description starting with "<" is text)
_SUMMARY = re.compile(r"<(?:\d+ (?:bytes|values)|[A-Z]{2} \d+ bytes|sequence, \d+ items?|unsupported value type"
                      r"|bytes after the pixel data)>")


def _is_summary(v: str) -> bool:
    return bool(_SUMMARY.fullmatch(v))


def _is_name(d: Decision) -> bool:
    f = d.field
    if f.key.startswith("dicom:"):
        return _dicom_vr(f.tag) == "PN"
    name = f.subkey or f.key.split(":", 1)[-1]
    return bool(_NAME_KEY.search(name))


def name_parts(value: str) -> list[str]:
    return [p for p in _NAME_SPLIT.split(value) if len(p) >= MIN_NAME_PART and any(c.isalpha() for c in p)
            and p.casefold().strip(".") not in PLACEHOLDER_PARTS]


def id_parts(value: str) -> list[str]:
    """Parts of an identifier that identify on their own; a run of digits split at spaces
    ("S 12 345 2024-03-01": "12 345") is one part, as written, also beside a date."""
    from .detect.phi_text import spaced_digit_runs
    out = []
    for p in _ID_SPLIT.split(value):
        letters, digits = any(c.isalpha() for c in p), any(c.isdigit() for c in p)
        if digits and ((letters and len(p) >= MIN_VALUE) or (not letters and len(p) >= MIN_DIGITS_PART)):
            out.append(p)
    if " " in value:
        out += [run for run in spaced_digit_runs(value, MIN_DIGITS_PART) if run not in out]
    return out


def _source(d: Decision, vouched: set[str]) -> str:
    """The field path a failure names, the part of it the file chose masked: an unknown key's or
    XML element's name may itself be PHI (an element named after the patient was quoted on stderr)."""
    f = d.field
    if names_from_file(d):
        head, _ = split_file_text(f.path, vouched)  # the plan's one set: a copy per field was quadratic
        return (head + "/" if head else "") + "<unknown key>"
    return f.path


def _produced_dates(plan: Plan) -> set:
    """Dates the plan itself writes (shifted or reduced), which an original may coincide with."""
    out = set()
    for d in plan.fields:
        if d.action not in (KEEP, REMOVE):
            if d.new_value not in (None, "") and not isinstance(d.new_value, (bytes, bytearray)):
                out.update(parse_any(str(d.new_value)))
    return out


def _own_rule_keeps(plan: Plan, d: Decision, piece: str) -> bool:
    """A piece of a split value that the field's own profile entry would keep whole.

    ``Product=C9600-12\rPatientName=DOE`` is removed because of its second
    piece; its first piece is a model number the profile's grammar vouches
    for (like a number, it names no one) and stands legitimately in kept
    fields, so it is not a needle. Only pieces, never a whole value, and only
    TIFF-family profiles (DICOM pieces are judged by their VR).
    """
    profile = plan.profile
    if not piece or profile is None or not hasattr(profile, "rule") or ":" not in d.field.key:
        return False
    from .dates import DatePolicy
    from .model import Field
    from .valuepolicy import check
    section, _, name = d.field.key.partition(":")
    try:
        found = profile.rule(section, name)
    except ProfileError:  # a profile that cannot answer vouches for nothing: the piece stays a needle
        return False
    if not found:
        return False
    rule = found[0]
    spec = getattr(rule, "spec", None)
    if rule.action not in (KEEP, TEXT) or spec is None or (spec.type is None and spec.pattern is None):
        return False
    verdict = check(Field(d.field.path, d.field.key, piece, kind=d.field.kind), spec, DatePolicy())
    return verdict.ok and verdict.action is None


def _vouched(plan: Plan, d: Decision) -> bool:
    """A value kept as it is because its own profile entry's pattern or enumeration
    admits it (a model name "Aperio GT450"): a grammar no name or record number passes
    (``valuepolicy.CANARIES``). Numbers and bare keeps vouch for no text."""
    profile = plan.profile
    if d.action != KEEP or not isinstance(d.field.value, str) or profile is None or not hasattr(profile, "rule") \
            or ":" not in d.field.key:
        return False
    section, _, name = d.field.key.partition(":")
    try:
        found = profile.rule(section, name)
    except ProfileError:
        return False
    spec = getattr(found[0], "spec", None) if found else None
    if spec is None:
        return False
    from .valuepolicy import ValueType
    return spec.pattern is not None or spec.type == ValueType.ENUM


def _shared_with_kept(plan: Plan) -> set[str]:
    """Words (letters and digits, case-folded) of the values the profile vouches for."""
    return {w.casefold() for d in plan.fields if _vouched(plan, d) for w in _ID_SPLIT.split(d.field.value) if w}


def _identifier_parts(v: str, src: str, kept_words: set[str]) -> list[Needle]:
    """The parts of a removed identifier, less those that are a kept model's word.

    A scanner serial "GT450-SN12345" shares "GT450" with the kept model "Aperio GT450":
    that part names a product, not the device, and refused clean slides. It is left out
    only when it has a letter (digits are never a model's word) and another part of the
    identifier is still searched (SN12345); the whole value always is."""
    parts = id_parts(v)
    shared = [p for p in parts if p.casefold() in kept_words and any(c.isalpha() for c in p)]
    if len(shared) == len(parts):
        shared = []
    return [Needle(p, NeedleKind.ID_PART, src) for p in parts if p not in shared]


def needles_for_plan(plan: Plan, identifiers: Sequence[str] = ()) -> NeedleSet:
    """Every needle of a plan and the user's identifiers (see the module docstring)."""
    found: list[Needle] = []
    dates: dict = {}
    container = plan.inventory.container
    schemes = coding_schemes(plan)
    oids = plan_scheme_uids(plan)
    vouched = vouched_prefixes(plan.fields)
    kept_words = _shared_with_kept(plan)
    for d in plan.fields:
        # Text a rebuilt value dropped (runs of an Aperio header, ICC profile texts): each run is
        # free text the writer was told to leave out, so each is a needle like a removed value.
        # A removed identifier's other form (a Base64 barcode's decoded text) is an identifier,
        # digits only or not, and its parts are searched as the identifier's are.
        ident = bool(d.removed_parts) and d.field.kind == ValueKind.IDENTIFIER
        src = _source(d, vouched)
        for part in d.removed_parts:
            part = (part or "").strip().strip("\0").strip()
            for day in parse_any(part):
                dates.setdefault(day, src)
            pieces = [part] if not _CONTROL.search(part) else []
            pieces += [x.strip() for x in _PIECES.split(part) if ident or not _NUMBER_LIST.fullmatch(x)]
            found += [Needle(w, NeedleKind.IDENTIFIER if ident else NeedleKind.VALUE, src)
                      for w in dict.fromkeys(pieces) if len(w) >= MIN_VALUE and (ident or not _NUMBER_LIST.fullmatch(w))]
            if ident and not _UID.fullmatch(part):
                found += [Needle(p, NeedleKind.ID_PART, src) for p in id_parts(part)]
        rewritten = d.action == TEXT and d.new_value != d.field.value  # free text with its dates scrubbed
        if not (d.removes_value or rewritten) or d.field.value is None:
            continue
        v = d.field.text().strip().strip("\0").strip()
        if not v or _is_summary(v):
            continue
        kind = value_kind(d, container, schemes, oids)
        if d.action in (DATE, DATETIME, TIME) and kind not in (ValueKind.TEXT, ValueKind.IDENTIFIER):
            kind = ValueKind.DATE  # a date the policy rewrote, whatever its shape ("20240314102233.000000")
        if kind not in (ValueKind.TEXT, ValueKind.IDENTIFIER, ValueKind.DATE):
            continue
        for day in parse_any(v):
            dates.setdefault(day, src)
        if kind == ValueKind.DATE:
            continue
        whole = NeedleKind.IDENTIFIER if kind == ValueKind.IDENTIFIER else NeedleKind.VALUE
        # each value of a multi-valued element, and each piece between control characters
        # ("0.4990\0DOE^JANE"): a piece that is a number is not a needle
        pieces = [v] if not _CONTROL.search(v) else []
        pieces += [x.strip() for x in _PIECES.split(v) if not _NUMBER_LIST.fullmatch(x)
                   and not _own_rule_keeps(plan, d, x.strip())]
        for w in dict.fromkeys(pieces):
            if len(w) >= MIN_VALUE:
                found.append(Needle(w, whole, src))
        if _is_name(d):
            found += [Needle(p, NeedleKind.NAME_PART, src) for p in name_parts(v)]
        elif kind == ValueKind.IDENTIFIER and not _UID.fullmatch(v) and "://" not in v:
            found += _identifier_parts(v, src, kept_words)
    # The research ID is the user's own replacement: an original equal to it (a slide processed
    # again) is what the output is meant to hold.
    new_id = (getattr(container, "new_id", None) or plan.options.get("new_id") or "").strip().casefold()
    found = [n for n in found if n.text.casefold() not in PLACEHOLDER_VALUES and n.text.casefold() != new_id]
    out = NeedleSet()
    for k, ident in enumerate(identifiers, 1):
        ident = (ident or "").strip()
        src = f"user identifier #{k}"
        if len(ident) < MIN_USER:
            out.skipped.append(f"{src} has fewer than {MIN_USER} characters: not searched")
            continue
        found.append(Needle(ident, NeedleKind.USER_IDENTIFIER, src))
        found += [Needle(p, NeedleKind.USER_IDENTIFIER, src, word=True) for p in name_parts(ident)]
        found += [Needle(p, NeedleKind.USER_IDENTIFIER, src) for p in id_parts(ident)]
        for day in parse_any(ident):
            dates.setdefault(day, src)
    produced = _produced_dates(plan)
    for day, src in dates.items():
        if day not in produced:
            found.append(Needle(day.isoformat(), NeedleKind.DATE, src, day=day))
    out.extend(found)
    return out


# --- the scan -------------------------------------------------------------------

@dataclass
class _Pattern:
    needle: int
    encoding: str
    literal: bytes | None
    regex: re.Pattern | None
    width: int  # bytes per code unit (1 or 2), for boundary checks
    boundary: str  # "" | "digit" | "letter"


def _encodings_of(form: str) -> list[tuple[str, list[tuple[bytes, ...]]]]:
    """Per encoding, the alternatives (lower-cased bytes) for each character of ``form``."""
    out = []
    for enc in ENCODINGS:
        alts = [char_alts(c, enc) for c in form]
        if all(alts):
            out.append((enc, alts))
    return out


MAX_LITERALS = 32  # case variants spelled out; beyond that, one regex with a class per character


KEY_BYTES = 8


@dataclass(frozen=True)
class _Part:
    """A segment's bytes (or a window of them) as laid in a scanned chunk."""
    data: bytes
    pos: int  # where it starts in the chunk
    offset: int  # where it starts in the file
    cut_start: bool  # it begins with the tail of bytes scanned before (a window, a carried tail)
    cut_end: bool  # bytes that follow are scanned next (a window that is not the last)

    @property
    def end(self) -> int:
        return self.offset + len(self.data)


@dataclass
class _Group:
    """The patterns that share a 3-byte prefix."""

    literals: dict[bytes, list[_Pattern]] = field(default_factory=dict)
    lengths: list[int] = field(default_factory=list)
    regexes: list[_Pattern] = field(default_factory=list)


def _prefixes(alts: list[list[bytes]]) -> set[bytes]:
    heads: set[bytes] = {b""}
    for a in alts:
        if all(len(h) >= 3 for h in heads):
            break
        heads = {h + x if len(h) < 3 else h for h in heads for x in a}
    return {h[:3] for h in heads if len(h) >= 3}


@functools.lru_cache(maxsize=1 << 16)
def _compiled(text: str) -> tuple[tuple[str, bytes | None, re.Pattern | None, tuple[bytes, ...], int], ...]:
    """(encoding, literal or regex, 3-byte prefixes, longest match in bytes) for every way
    ``text`` can be stored.

    Cached: the same date spellings recur in every plan of a batch."""
    if text.isascii():  # the common case: one lower-case form, Latin-1 and UTF-8 alike
        low = text.lower()
        out = []
        for enc in ("utf-8", "utf-16-le", "utf-16-be"):
            lit = low.encode(enc)
            if len(lit) >= 3:
                out.append((enc, lit, None, (lit[:3],), len(lit)))
        return tuple(out)
    out, seen = [], set()
    for form in forms(text):
        for enc, alts in _encodings_of(form):
            if math.prod(len(a) for a in alts) <= MAX_LITERALS:
                for combo in itertools.product(*alts):
                    lit = b"".join(combo)
                    if lit not in seen and len(lit) >= 3:
                        seen.add(lit)
                        out.append((enc, lit, None, (lit[:3],), len(lit)))
                continue
            rx = re.compile(b"".join(b"(?:" + b"|".join(re.escape(x) for x in a) + b")" for a in alts))
            out.append((enc, None, rx, tuple(_prefixes(alts)), sum(max(len(x) for x in a) for a in alts)))
    return tuple(out)


def _search_form(n: Needle) -> tuple[str, str]:
    """What is searched for a needle, and how it must stand apart from its neighbours.

    A number (a record number, an accession's digits) is found as a number: not inside a
    longer run of digits, where it is another number. Searched without boundary, "12345"
    from "S24-12345" turned up by chance in the output's freshly minted 38-digit UIDs and
    refused clean slides (about one DICOM run in fifty). Leading zeros are not part of a
    number: "0012345" is searched as "12345", and zeros may stand before it ("0012345",
    "12345" and "000012345" are all found); a number shorter than ``MIN_DIGITS_PART``
    without its zeros is searched as written."""
    if n.kind == NeedleKind.DATE:
        return n.text, "digit"
    if n.text.isascii() and n.text.isdigit():
        bare = n.text.lstrip("0")
        return (bare if len(bare) >= MIN_DIGITS_PART else n.text), "number"
    return n.text, "letter" if n.word or n.kind == NeedleKind.NAME_PART else ""


class Scanner:
    """Finds needles in byte segments; see the module docstring for the method."""

    def __init__(self, needles: Sequence[Needle]):
        self.needles = list(needles)
        # One bit per 3-byte prefix (2 MB): a bool per prefix was 16 MB, and numpy backs arrays
        # that large with 2 MB huge pages, so the few dozen prefixes set made 12-15 MB resident.
        self._table = np.zeros(1 << 21, dtype=np.uint8)
        self._table2 = np.zeros(1 << 16, dtype=bool)
        self._by_prefix: dict[int, _Group] = {}
        self._overlap = 0  # longest encoded needle, in bytes: how far scan windows overlap
        self._days: dict[dt.date, int] = {}  # a removed date -> its needle, found by shape (``date_scan``)
        for i, n in enumerate(self.needles):
            if n.day is not None:
                self._days.setdefault(n.day, i)
                continue
            text, boundary = _search_form(n)
            for enc, literal, regex, prefixes, longest in _compiled(text):
                width = 2 if enc.startswith("utf-16") else 1
                for prefix in prefixes:
                    self._add(prefix, _Pattern(i, enc, literal, regex, width, boundary))
                self._overlap = max(self._overlap, longest)
        # The bit tables are set once from the prefixes' keys: set per pattern (numpy scalar
        # writes, a dozen per date spelling) they were most of building a DICOM run's scanner.
        keys = np.fromiter(self._by_prefix, dtype=np.int64, count=len(self._by_prefix))
        np.bitwise_or.at(self._table, keys >> 3, (1 << (keys & 7)).astype(np.uint8))
        self._table2[(keys >> 16) | (((keys >> 8) & 0xFF) << 8)] = True
        self._dates = DateFinder(self._days)
        if self._days:
            self._overlap = max(self._overlap, self._dates.overlap)

    def _add(self, prefix: bytes, pat: _Pattern) -> None:
        key = (prefix[0] << 16) | (prefix[1] << 8) | prefix[2]
        group = self._by_prefix.get(key)
        if group is None:
            group = self._by_prefix[key] = _Group()
        if pat.literal is None:
            group.regexes.append(pat)
        else:  # keyed by up to KEY_BYTES leading bytes, so a candidate tries only the few that fit
            head = pat.literal[:KEY_BYTES]
            if head not in group.literals:
                group.literals[head] = []
                group.lengths = sorted(set(group.lengths) | {len(head)})
            group.literals[head].append(pat)

    def _candidates(self, key: int, hay: bytes, p: int) -> Iterator[_Pattern]:
        group = self._by_prefix[key]
        for n in group.lengths:
            yield from group.literals.get(hay[p:p + n], ())
        yield from group.regexes

    def scan(self, segments: Iterable[tuple[int, bytes]]) -> list[Hit]:
        """Hits in ``(file offset, bytes)`` segments.

        Small segments are joined (with separators no match can span) into chunks of about
        ``CHUNK`` bytes; a large one is scanned in windows of ``CHUNK`` bytes that overlap by
        the longest needle and a margin, and a segment that starts where the previous one ended
        continues it (so a reader may hand over a large gap in pieces). Memory stays about
        ``CHUNK``-sized.

        Where the bytes were cut (a window's end, a piece the next segment continues), the
        scanner sees neither what follows nor what went before: "2019-12-3|1" would read as
        3 December and "1234|5" as the number 1234. So a match within ``MARGIN`` bytes of a
        cut is left to the piece on the other side of it, which holds the match whole with its
        context (the overlap is long enough for both); a match near a segment's end waits until
        the next segment shows whether it goes on. What is found is then what one scan of the
        whole bytes finds (tests/test_scan_cuts.py).
        """
        hits: dict[int, Hit] = {}
        if not self.needles:
            for _ in segments:
                pass
            return []
        pending: dict[int, dict[int, Hit]] = {}  # segment end -> hits that touch it, until known
        continued: set[int] = set()  # segment ends the next segment went on from
        parts: list[_Part] = []
        size = 0
        carry, carry_cut, prev_end = b"", False, None
        lap = self._overlap + 2 * MARGIN

        def flush() -> None:
            nonlocal parts, size
            if parts:
                chunk = parts[0].data if len(parts) == 1 else SEPARATOR.join(p.data for p in parts)
                self._scan_chunk(chunk, parts, hits, pending, continued)
            parts, size = [], 0
            continued.clear()

        for off, data in segments:
            if not data:
                continue
            end = off + len(data)
            cut_start = False
            if off == prev_end and carry:  # the previous segment goes on: keep its tail
                continued.add(prev_end)
                pending.pop(prev_end, None)  # found again, whole, in the tail carried over
                off, data, cut_start = off - len(carry), carry + data, carry_cut
            else:
                _commit(pending, hits)
            prev_end, carry, carry_cut = end, data[-lap:], len(data) > lap
            if len(data) <= CHUNK:
                parts.append(_Part(data, size, off, cut_start, False))
                size += len(data) + len(SEPARATOR)
                if size >= CHUNK:
                    flush()
                continue
            flush()
            for w in range(0, len(data), CHUNK):
                last = w + CHUNK + lap >= len(data)
                window = data[w:w + CHUNK + lap]
                self._scan_chunk(window, [_Part(window, 0, off + w, cut_start or w > 0, not last)],
                                 hits, pending, continued)
                if last:
                    break
        flush()
        _commit(pending, hits)
        return sorted(hits.values(), key=lambda h: h.offset)

    def _scan_chunk(self, chunk: bytes, parts: list[_Part], hits: dict[int, Hit],
                    pending: dict[int, dict[int, Hit]], continued: set[int]) -> None:
        hay = chunk.lower()
        if len(hay) < 3:
            return
        pos_index = np.array([part.pos for part in parts], dtype=np.int64)

        def record(i: int, p: int, end: int, encoding: str) -> None:
            part = parts[int(np.searchsorted(pos_index, p, side="right")) - 1]
            hit = Hit(self.needles[i], encoding, part.offset + p - part.pos)
            if part.cut_start and p < part.pos + MARGIN:
                return  # the piece before holds it whole
            if end > part.pos + len(part.data) - MARGIN:
                if part.cut_end or part.end in continued:
                    return  # the piece after holds it whole
                _keep_first(pending.setdefault(part.end, {}), i, hit)
                return
            _keep_first(hits, i, hit)

        if self._days:
            found = {self.needles[i].day for i in hits if self.needles[i].day is not None}
            if not self._days.keys() <= found:  # every occurrence: the first may lie in a margin
                for h in self._dates.occurrences(hay):
                    if h.day not in found:
                        record(self._days[h.day], h.start, h.end, h.encoding)
        if not self._by_prefix:
            return
        h = np.frombuffer(hay, dtype=np.uint8)
        # two-byte windows through a 64 KB table first (cache-resident), the third byte only there
        n = len(hay) - 2  # windows that have a third byte
        even = np.frombuffer(hay, dtype="<u2", count=n // 2 + n % 2)
        odd = np.frombuffer(hay, dtype="<u2", offset=1, count=n // 2)
        flags = np.empty(n, dtype=bool)
        flags[0::2] = self._table2[even]
        flags[1::2] = self._table2[odd]
        cand = np.nonzero(flags)[0]
        if not len(cand):
            return
        keys = (h[cand].astype(np.int64) << 16) | (h[cand + 1].astype(np.int64) << 8) | h[cand + 2]
        keep = (self._table[keys >> 3] >> (keys & 7).astype(np.uint8)) & 1
        cand, keys = cand[keep != 0], keys[keep != 0]
        if not len(cand):
            return
        for p, key in zip(cand.tolist(), keys.tolist()):
            for pat in self._candidates(key, hay, p):
                if pat.needle in hits:
                    continue
                if pat.literal is not None:
                    if not hay.startswith(pat.literal, p):
                        continue
                    end = p + len(pat.literal)
                else:
                    m = pat.regex.match(hay, p)
                    if m is None:
                        continue
                    end = m.end()
                if pat.boundary and not _apart(hay, p, end, pat):
                    continue
                record(pat.needle, p, end, pat.encoding)


def _commit(pending: dict[int, dict[int, Hit]], hits: dict[int, Hit]) -> None:
    """Hits that touched a segment's end which no segment went on from: they stand."""
    for found in pending.values():
        for i, hit in found.items():
            _keep_first(hits, i, hit)
    pending.clear()


def _keep_first(hits: dict[int, Hit], i: int, hit: Hit) -> None:
    """A needle's first occurrence (in another byte form it may start a byte earlier)."""
    if i not in hits or hit.offset < hits[i].offset:
        hits[i] = hit


def _unit(hay: bytes, at: int, pat: _Pattern) -> int:
    """The code unit starting at ``at`` as a number (-1 outside the buffer)."""
    if at < 0 or at + pat.width > len(hay):
        return -1
    if pat.width == 1:
        return hay[at]
    lo, hi = (hay[at], hay[at + 1]) if pat.encoding == "utf-16-le" else (hay[at + 1], hay[at])
    return lo | (hi << 8)


def _apart(hay: bytes, start: int, end: int, pat: _Pattern) -> bool:
    """A date not inside a longer run of digits (or dotted numbers); a number not inside a longer
    number (zeros before it aside); a name part not inside a word."""
    wd = pat.width
    before, after = _unit(hay, start - wd, pat), _unit(hay, end, pat)
    if pat.boundary == "letter":
        return not (97 <= before <= 122) and not (97 <= after <= 122)
    digit = range(48, 58)
    if pat.boundary == "number":  # zeros may pad a number; any other digit makes it another number
        at = start - wd
        while _unit(hay, at, pat) == 48:
            at -= wd
        return _unit(hay, at, pat) not in digit and after not in digit
    if before in digit or after in digit:
        return False
    if before == 46 and _unit(hay, start - 2 * wd, pat) in digit:
        return False
    if after == 46 and _unit(hay, end + wd, pat) in digit:
        return False
    return True


def scan_bytes(data: bytes, needles: Sequence[Needle]) -> list[Hit]:
    """Hits in one buffer (offsets into it)."""
    return Scanner(needles).scan([(0, data)])


def report_residual(rep: VerifyReport, needles: NeedleSet, hits: Sequence[Hit]) -> None:
    """Record the residual-needles check (and the user identifiers not searched, in its detail)."""
    if hits:
        more = f"; and {len(hits) - 4} more" if len(hits) > 4 else ""
        rep.record(Check.RESIDUAL_NEEDLES, False, f"{len(needles)} needles; {len(hits)} found: "
                   + "; ".join(h.describe() for h in hits[:4]) + more)
    else:
        rep.record(Check.RESIDUAL_NEEDLES, True, f"{len(needles)} needles, none found")
    if needles.skipped:
        rep.record(Check.RESIDUAL_NEEDLES, True, "; ".join(needles.skipped), part="user identifiers not searched")
