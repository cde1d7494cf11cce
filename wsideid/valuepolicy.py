"""The value policy: when a kept field's *value* may pass, not only its name.

A profile entry that keeps a field declares what the value is, and the
value must prove it:

(a) a typed datum that parses *wholly* as its declared type (integer,
    decimal, rational, a list of numbers, an enumeration), within the
    declared range, with no control character (Unicode category C*: NUL,
    CR, LF, ...) anywhere; or
(b) text that *wholly* matches (``re.fullmatch``) an allow-list pattern
    declared in the profile (a vendor's software-version grammar, a
    model-number pattern); or
(c) otherwise it is removed, or replaced by the entry's neutral value, and
    the decision says which check it failed.

Nothing keeps free text as it is. A bare ``keep`` keeps only values the
container itself types as numbers (a SHORT or RATIONAL TIFF tag); text
under a bare ``keep`` fails closed. ``text`` is "keep if it matches the
pattern, else remove/replace"; a date inside it is a named group
``(?P<date>...)`` of the pattern and gets the run's date policy, so a
version number ("NDP.scan 2.5.89") is never taken for a date.

A value kept as a number must also be one (round 5, ``number_is_text``): stored as numbers
(a TIFF BYTE, ASCII or UNDEFINED tag is never a numeric keep), with stored bytes that spell no
word or identifier (``textbytes.words_in_numbers``), and no date in its integer part.

Why: in the audit that led here, ``keep`` and date-only scrubbing let
"... on HOSTNAME", names in Make/Model, ``MPP = 0.4990\\0DOE^JANE`` (a name
after a NUL) and ``Product=C9600-12\\rPatientName=...`` through. A check
on the whole value closes these as a class.

Three binary or structured types are checked by the code that owns their
structure: ``jpeg-tables`` (JPEGTables; APPn/COM segments are stripped by
the writer), ``icc-profile`` (text neutralised by :mod:`wsideid.icc`) and
``aperio-header`` (rebuilt from typed tokens by the Aperio driver).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Callable

from .dates import DatePolicy, kept_text_dates, kept_text_holds_date, number_holds_date, transform_structured
from .errors import ProfileError
from .model import REMOVE, REPLACE, TEXT, Decision, Field, ValueKind
from .textbytes import words_in_numbers


class ValueType(str, Enum):
    """The types a profile can declare for a kept value."""

    INTEGER = "integer"          # -12, 40
    DECIMAL = "decimal"          # 0.4990, -1.0, 1e-3 (alias: "number")
    RATIONAL = "rational"        # a TIFF RATIONAL as rendered, (10000000, 499), or a plain number
    NUMBERS = "numbers"          # a comma list of the above: 8,8,8 / 0,255,128,255
    ENUM = "enum"                # one of `values`
    TIME = "time"                # 10:22:33 (the `time` action checks this)
    JPEG_TABLES = "jpeg-tables"  # TIFF JPEGTables: segments stripped by the writer
    ICC_PROFILE = "icc-profile"  # an ICC profile: its text neutralised (wsideid.icc)
    APERIO_HEADER = "aperio-header"  # the Aperio description header, rebuilt token by token
    PHILIPS_DERIVATION = "philips-derivation"  # Philips export settings, rebuilt token by token
    PHILIPS_IMAGE = "philips-image"  # a JPEG held Base64 in the Philips XML, reduced to its decoding segments


TYPE_ALIASES = {"number": ValueType.DECIMAL}
NUMERIC_TYPES = {ValueType.INTEGER, ValueType.DECIMAL, ValueType.RATIONAL, ValueType.NUMBERS}
# Which field may carry a structured type (a promise that its owner parses it).
STRUCTURED_TAGS = {ValueType.JPEG_TABLES: 347, ValueType.ICC_PROFILE: 34675}

_INT = r"[+-]?\d{1,20}"
_DEC = r"[+-]?(?:\d{1,20}(?:\.\d{0,20})?|\.\d{1,20})(?:[eE][+-]?\d{1,3})?"
_RAT = r"\(\s?[+-]?\d{1,20},\s?[+-]?\d{1,20}\)"
_PARSERS = {
    ValueType.INTEGER: re.compile(_INT, re.ASCII),
    ValueType.DECIMAL: re.compile(_DEC, re.ASCII),
    ValueType.RATIONAL: re.compile(rf"{_RAT}|{_DEC}", re.ASCII),  # a writer may store it as a plain number
    ValueType.NUMBERS: re.compile(rf"(?:{_DEC}|{_RAT})(?:,(?:{_DEC}|{_RAT}))*", re.ASCII),
    ValueType.TIME: re.compile(r"(?:[01]?\d|2[0-3]):[0-5]\d(?::[0-5]\d(?:\.\d{1,6})?)?", re.ASCII),
}
_NUMBER_SUMMARY = re.compile(r"<\d+ values>")  # a long numeric tag, summarised by the inventory
_ONE = re.compile(rf"{_RAT}|{_DEC}", re.ASCII)
DATE_GROUP = "date"
# A declared pattern must not admit any of these (a pattern that does is free text).
CANARIES = ("Jane Doe", "DOE^JANE", "DOE, JANE", "Doe Jane", "jsmith", "J. Smith", "SMITH", "John",
            "MRN 4455667", "Jane Doe 4455667", "St Elsewhere Hospital", "PC-LAB-12.hospital.org")


def control_free(text: str) -> bool:
    """No control, format, surrogate, private-use or unassigned character (category C*)."""
    return not any(unicodedata.category(c)[0] == "C" for c in text)


@dataclass(frozen=True)
class ValueSpec:
    """What a kept value must be; parsed from one profile entry."""

    type: ValueType | None = None
    pattern: re.Pattern | None = None
    values: tuple[str, ...] = ()
    min: float | None = None
    max: float | None = None
    date_format: str | None = None
    on_fail: str = REMOVE          # remove | replace
    neutral: str | None = None     # the replacement when on_fail is replace

    def describe(self) -> str:
        if self.type is not None:
            rng = ""
            if self.min is not None or self.max is not None:
                rng = f" in [{'' if self.min is None else self.min}, {'' if self.max is None else self.max}]"
            return self.type.value + rng
        if self.pattern is not None:
            return "pattern"
        return "keep (free text needs a type or a pattern)"


@dataclass
class Verdict:
    """The outcome of checking one value against its spec."""

    ok: bool
    value: Any = None              # the value to write (the original when unchanged)
    action: str | None = None      # None: kept as it is; TEXT/REPLACE: kept in a changed form
    removed: list[str] = field(default_factory=list)  # parts of the original left out
    note: str = ""                 # why it failed, or what changed (never the value itself)


# --- parsing a profile entry ------------------------------------------------

SPEC_KEYS = {"type", "pattern", "values", "min", "max", "else"}


def _number(x: Any, where: str, key: str) -> float | None:
    if x is None:
        return None
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        raise ProfileError(f"profile entry {where}: {key} must be a number")
    return float(x)


def parse_spec(spec: dict[str, Any], action: str, where: str) -> ValueSpec:
    """The value spec of a keep/text entry; every mistake is a ProfileError now."""
    tname, pat = spec.get("type"), spec.get("pattern")
    if tname is not None and pat is not None:
        raise ProfileError(f"profile entry {where}: give a type or a pattern, not both")
    vtype = None
    if tname is not None:
        try:
            vtype = TYPE_ALIASES.get(tname) or ValueType(tname)
        except ValueError:
            raise ProfileError(f"profile entry {where}: unknown type {tname!r} (one of "
                               f"{', '.join([t.value for t in ValueType] + list(TYPE_ALIASES))})") from None
    regex = None
    if pat is not None:
        if not isinstance(pat, str) or not pat:
            raise ProfileError(f"profile entry {where}: pattern must be a non-empty string")
        try:
            regex = re.compile(pat, re.ASCII)  # \d, \w, \s mean ASCII: no look-alike digits
        except re.error as exc:
            raise ProfileError(f"profile entry {where}: bad pattern ({exc})") from None
        for canary in CANARIES:
            if regex.fullmatch(canary):
                raise ProfileError(f"profile entry {where}: pattern admits free text such as {canary!r}")
        if "\n" in pat or any(regex.fullmatch(c) for c in ("\0", "\r", "\n", "\t")):
            raise ProfileError(f"profile entry {where}: pattern admits control characters")
    if action == TEXT and regex is None:
        raise ProfileError(f"profile entry {where}: text needs a pattern (free text is never kept as it is)")
    has_date = regex is not None and DATE_GROUP in regex.groupindex
    date_format = spec.get("format") if has_date else None
    if has_date and action != TEXT:
        raise ProfileError(f"profile entry {where}: a pattern with a (?P<date>...) group needs action = \"text\"")
    if has_date and not date_format:
        raise ProfileError(f"profile entry {where}: a (?P<date>...) group needs a format (strftime spelling)")
    if spec.get("format") is not None and not has_date:
        raise ProfileError(f"profile entry {where}: format is only for date actions or a (?P<date>...) group")
    values: tuple[str, ...] = ()
    if vtype == ValueType.ENUM:
        raw = spec.get("values")
        if not isinstance(raw, list) or not raw or not all(isinstance(v, (str, int)) for v in raw):
            raise ProfileError(f"profile entry {where}: type enum needs values = [...] (strings or integers)")
        values = tuple(str(v) for v in raw)
        if not all(v and control_free(v) for v in values):
            raise ProfileError(f"profile entry {where}: enum values must be non-empty printable text")
    elif "values" in spec:
        raise ProfileError(f"profile entry {where}: values is only for type = \"enum\"")
    lo, hi = _number(spec.get("min"), where, "min"), _number(spec.get("max"), where, "max")
    if (lo is not None or hi is not None) and vtype not in NUMERIC_TYPES:
        raise ProfileError(f"profile entry {where}: min/max are only for numeric types")
    on_fail = spec.get("else", REMOVE)
    if on_fail not in (REMOVE, REPLACE):
        raise ProfileError(f"profile entry {where}: else must be \"remove\" or \"replace\"")
    neutral = spec.get("value")
    if on_fail == REPLACE and neutral is None:
        raise ProfileError(f"profile entry {where}: else = \"replace\" needs a value (the neutral value)")
    if on_fail == REMOVE and neutral is not None:
        raise ProfileError(f"profile entry {where}: value is only used with else = \"replace\"")
    out = ValueSpec(vtype, regex, values, lo, hi, date_format, on_fail, neutral)
    if neutral is not None:
        probe = Field("profile", "profile", str(neutral))
        if not check(probe, out, DatePolicy("remove")).ok:
            raise ProfileError(f"profile entry {where}: the neutral value fails the entry's own check")
    return out


# --- checking a value ---------------------------------------------------------

def _in_range(text: str, spec: ValueSpec) -> bool:
    if spec.min is None and spec.max is None:
        return True
    for m in _ONE.finditer(text):
        tok = m.group(0)
        if tok.startswith("("):
            num, den = (int(x) for x in tok.strip("()").split(","))
            if den == 0:
                return False
            x = num / den
        else:
            x = float(tok)
        if (spec.min is not None and x < spec.min) or (spec.max is not None and x > spec.max):
            return False
    return True


def _check_typed(f: Field, spec: ValueSpec) -> Verdict:
    t = spec.type
    if t in STRUCTURED_TAGS:
        ok = f.tag == STRUCTURED_TAGS[t] and f.key.startswith("tags:")
        if ok and t == ValueType.ICC_PROFILE:
            return _check_icc(f)
        return Verdict(ok, f.value, note="" if ok else f"value failed {t.value} (not that tag)")
    if t in (ValueType.APERIO_HEADER, ValueType.PHILIPS_DERIVATION, ValueType.PHILIPS_IMAGE):
        return _structured(t.value)(f)
    text = f.text()
    if t == ValueType.NUMBERS and f.kind == ValueKind.NUMBER and _NUMBER_SUMMARY.fullmatch(text):
        return Verdict(True, f.value)  # numbers by the container's type, too many to show
    if not control_free(text):
        return Verdict(False, note=f"value failed {t.value} (control character)")
    if t == ValueType.ENUM:
        ok = text in spec.values
    else:
        ok = bool(_PARSERS[t].fullmatch(text)) and _in_range(text, spec)
    return Verdict(ok, f.value, note="" if ok else f"value failed {spec.describe()}")


def _check_pattern(f: Field, spec: ValueSpec, dates: DatePolicy) -> Verdict:
    text = f.value if isinstance(f.value, str) else None
    if text is None or not control_free(text):
        return Verdict(False, note="value failed pattern" + (" (control character)" if text else ""))
    m = spec.pattern.fullmatch(text)
    if m is None:
        return Verdict(False, note="value failed pattern")
    marked = spec.date_format is not None and m.group(DATE_GROUP) is not None
    if not marked:
        return _without_dates(text, spec) if kept_text_holds_date(text) else Verdict(True, f.value)
    if kept_text_holds_date(text[:m.start(DATE_GROUP)] + " " + text[m.end(DATE_GROUP):]):
        return Verdict(False, note="value failed pattern (a date outside its date group)")
    s, e = m.span(DATE_GROUP)
    new_date = transform_structured(m.group(DATE_GROUP), spec.date_format, dates)
    if new_date is None:
        # the date is cut; what remains must still be a value the pattern admits
        new = (text[:s].rstrip() + " " + text[e:].lstrip()).strip()
    else:
        new = text[:s] + new_date + text[e:]
    if new == text:
        return Verdict(True, f.value)
    if not spec.pattern.fullmatch(new):
        return Verdict(False, note="value failed pattern (once its date was handled)")
    return Verdict(True, new, TEXT, note="date inside handled by the date policy")


def _without_dates(text: str, spec: ValueSpec) -> Verdict:
    """A value its pattern admits that spells a date where no date group marks one (a version
    "17.03.1987": round 6 of the planted-PHI audit): kept without the date when what is left still
    matches ("tifffile.py 2026.3.3", a calendar version, keeps "tifffile.py"; the same name kept
    elsewhere then stays a kept value, not a part of a removed one), else it fails."""
    spans = kept_text_dates(text)
    cut = "".join(text[a:b] for a, b in zip([0] + [e for _, e in spans], [s for s, _ in spans] + [len(text)]))
    cut = re.sub(r"\s{2,}", " ", cut).strip()
    if cut and spec.pattern.fullmatch(cut) and not kept_text_holds_date(cut):
        return Verdict(True, cut, REPLACE, [text[a:b] for a, b in spans], "a date in the value dropped")
    return Verdict(False, note="value failed pattern (a date outside a date group)")


def _check_icc(f: Field) -> Verdict:
    from .icc import sanitize_icc
    raw = f.raw
    if raw is None:
        return Verdict(False, note="value failed icc-profile (no bytes)")
    clean, removed = sanitize_icc(raw)
    if not clean:
        return Verdict(False, note="value failed icc-profile (does not parse)")
    if clean == raw:
        return Verdict(True, f.value)
    return Verdict(True, Blob(clean), REPLACE, removed, "ICC profile text neutralised")


class Blob(bytes):
    """New binary value for a field; prints as a summary (inspect, JSON) like the inventory's."""

    def __str__(self) -> str:
        return f"<{len(self)} bytes>"


# Checkers for vendor structures, owned by their driver, which registers them when it is
# imported (``register_checker``): this module stays below the drivers in the import graph.
_CHECKERS: dict[str, Callable[[Field], "Verdict"]] = {}


def register_checker(name: str, checker: Callable[[Field], Verdict]) -> None:
    _CHECKERS[name] = checker


def _structured(name: str) -> Callable[[Field], Verdict]:
    """The registered checker; none registered fails the value closed (it is removed)."""
    if name not in ValueType._value2member_map_:  # pragma: no cover - names are validated
        raise ProfileError(f"no checker for {name}")
    return _CHECKERS.get(name) or (lambda f: Verdict(False, note=f"value failed {name} (no driver registered its checker)"))


# TIFF field types that hold no numbers: BYTE and UNDEFINED hold any bytes, ASCII holds text.
NOT_NUMBER_TYPES = {1: "BYTE", 2: "ASCII", 7: "UNDEFINED"}


def _numeric(spec: ValueSpec | None) -> bool:
    """Whether the entry keeps the value as a number (a bare keep, a numeric type, an enum of integers)."""
    if spec is None or (spec.type is None and spec.pattern is None) or spec.type in NUMERIC_TYPES:
        return True
    return spec.type == ValueType.ENUM and all(_PARSERS[ValueType.INTEGER].fullmatch(v) for v in spec.values)


def number_is_text(f: Field, spec: ValueSpec | None) -> str | None:
    """Why a value a profile keeps as a number is text after all (None: it is a number).

    Round 5 of the planted-PHI audit: a name, an accession or a date survived as numbers, where
    neither the value policy (it parsed as its type) nor the verifier (numbers are no needles)
    looked. A kept number must be stored as numbers (TIFF BYTE, ASCII and UNDEFINED can hold
    any text: "20190312" as ASCII parses as an integer), its stored bytes must not spell a word
    or a digit run in either byte order, and it must not read as a date (a date goes through
    the date policy, never through a numeric keep)."""
    if _numeric(spec) and f.stored_type in NOT_NUMBER_TYPES:
        return f"stored as {NOT_NUMBER_TYPES[f.stored_type]}, not as numbers"
    if f.raw is not None and f.dtype and words_in_numbers(f.raw, f.dtype):
        return "its stored bytes spell text"
    numeric = spec is None or spec.type in NUMERIC_TYPES or (spec.type is None and spec.pattern is None)
    if numeric and number_holds_date(f.text()):
        return "a date stored as a number"
    return None


def check(f: Field, spec: ValueSpec | None, dates: DatePolicy) -> Verdict:
    """Check a value a profile wants to keep. ``spec`` None is a bare ``keep``."""
    why = number_is_text(f, spec)
    if why is not None:
        what = spec.describe() if spec is not None and (spec.type or spec.pattern) else "keep"
        return Verdict(False, note=f"value failed {what} ({why})")
    if spec is None or (spec.type is None and spec.pattern is None):
        ok = f.kind == ValueKind.NUMBER
        return Verdict(ok, f.value, note="" if ok else "value failed keep (free text needs a type or a pattern)")
    if spec.type is not None:
        return _check_typed(f, spec)
    return _check_pattern(f, spec, dates)


def value_failed(d: Decision) -> bool:
    """Whether a decision removes a value (or parts of it) because it fails its type or pattern:
    what the verifier's ``values-pass-policy`` finds when it re-plans an output."""
    return d.failed or bool(d.removed_parts)


def check_time(value: str) -> bool:
    """A time of day and nothing else (the ``time`` action keeps it under --dates shift)."""
    return control_free(value) and bool(_PARSERS[ValueType.TIME].fullmatch(value))
