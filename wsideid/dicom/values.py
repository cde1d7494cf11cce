"""Values by VR: what a kept value must parse as, dummies, and the date policy.

The value policy for DICOM lives here, apart from the planning, so the VR
rules (grammar, length limits, character sets) are in one place and testable
on their own. A value is *typed* when its VR has a grammar (numbers, code
strings, UIDs, dates, ages, tags): it is kept only when every value parses
wholly as that grammar, with no control character anywhere. Text VRs have no
grammar; the planner keeps them only when they match a pattern declared in
the profile (``rules.DicomRules.text_allowed``).
"""

from __future__ import annotations

import math
import re

from ..dates import TIME_KEEPING, DatePolicy, number_holds_date, transform_structured
from ..model import ValueKind

TEXT_VRS = {"AE", "AS", "CS", "LO", "LT", "PN", "SH", "ST", "UC", "UT", "UR"}
# VRs with no grammar: free text, kept only when an allow-list pattern matches.
FREE_TEXT_VRS = {"AE", "LO", "LT", "PN", "SH", "ST", "UC", "UT", "UR"}
DATE_VRS = {"DA", "DT", "TM"}
NUMBER_STRING_VRS = {"DS", "IS"}
BINARY_NUMBER_VRS = {"US", "UL", "SS", "SL", "FL", "FD", "SV", "UV", "AT"}
BINARY_VRS = {"OB", "OW", "OF", "OD", "OL", "OV", "UN"}
DUMMY_TEXT = "ANONYMIZED"
_DUMMY = {"AS": "000D", "DA": "19000101", "DT": "19000101000000", "TM": "000000", "UR": "urn:wsideid:removed",
          "DS": "0", "IS": "0", "CS": "ANONYMIZED"}
# Text attributes that identify a person or a record (IDs, numbers,
# accession, serials): IDENTIFIER kind, so a removed value and its parts are
# residual needles. Names of organisations, devices and products are TEXT:
# removed whole, their words ("Hospital", "Test") are not searched alone.
_IDENTITY = re.compile(r"(ID|IDs|Identifier|Number|Numbers|AETitle)$")
_NOT_IDENTITY = ("Manufacturer", "CodingScheme", "Software", "MappingResource", "Private", "Dimension", "LUT",
                 "Context", "Code", "UniversalEntity", "LocalNamespace")

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")  # ESC too: ISO 2022 switches are refused, not kept
_CONTROL_TEXT = re.compile(r"[\x00-\x09\x0b-\x0c\x0e-\x1f\x7f]")  # LT/ST/UT may hold CR LF
_DS = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_IS = re.compile(r"[+-]?\d+")
_CS = re.compile(r"[A-Z0-9_ ]*")
_UID = re.compile(r"(?:0|[1-9]\d*)(?:\.(?:0|[1-9]\d*))*")
_AS = re.compile(r"\d{3}[DWMY]")
_DA = re.compile(r"\d{8}")
_TM = re.compile(r"(?:[01]\d|2[0-3])(?:[0-5]\d(?:(?:[0-5]\d|60)(?:\.\d{1,6})?)?)?")
_DT_REST = re.compile(r"(?:(?:[01]\d|2[0-3])(?:[0-5]\d(?:(?:[0-5]\d|60)(?:\.\d{1,6})?)?)?)?")
_TZ = re.compile(r"[+-](?:0\d|1[0-4])[0-5]\d")
MAX_LEN = {"AE": 16, "AS": 4, "CS": 16, "DA": 8, "DS": 16, "DT": 26, "IS": 12, "LO": 64, "LT": 10240, "PN": 324,
           "SH": 16, "ST": 1024, "TM": 14, "UC": 1 << 20, "UI": 64, "UR": 1 << 20, "UT": 1 << 20}


def parts(value) -> list:
    """The values of a (possibly multi-valued) element."""
    if value is None:
        return []
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return list(value)
    return [value]


def has_control(text: str, vr: str = "LO") -> bool:
    """True when ``text`` holds a NUL, CR, LF (outside LT/ST/UT) or another control character."""
    pat = _CONTROL_TEXT if vr in ("LT", "ST", "UT") else _CONTROL
    return bool(pat.search(text))


def _one_typed(v, vr: str) -> bool:
    if vr in (NUMBER_STRING_VRS | BINARY_NUMBER_VRS) - {"AT"} and number_holds_date(str(v).strip(" ")):
        return False  # 19650704 as IS/DS/UL: a date is never kept as a number (round 5)
    if vr in BINARY_NUMBER_VRS:
        if isinstance(v, bool):
            return False
        if isinstance(v, int):
            return True
        return isinstance(v, float) and math.isfinite(v)
    if not isinstance(v, str):
        v = str(v)
    if has_control(v) or len(v) > MAX_LEN.get(vr, 64):
        return False
    s = v.strip(" ")
    if vr == "DS":
        return bool(_DS.fullmatch(s)) and math.isfinite(float(s))
    if vr == "IS":
        return bool(_IS.fullmatch(s)) and -(1 << 31) <= int(s) < (1 << 31)
    if vr == "CS":
        return bool(_CS.fullmatch(v))
    if vr == "UI":
        return bool(_UID.fullmatch(v.rstrip("\0")))
    if vr == "AS":
        return bool(_AS.fullmatch(s))
    if vr == "DA":
        return bool(_DA.fullmatch(s)) and transform_structured(s, "%Y%m%d", DatePolicy("year")) is not None
    if vr == "TM":
        return bool(_TM.fullmatch(s))
    if vr == "DT":
        return _dt_parts(s) is not None
    return False


# Binary VRs as numpy types (little endian: WSI is Explicit VR Little Endian or encapsulated).
BINARY_DTYPES = {"OW": "<u2", "OF": "<f4", "OD": "<f8", "OL": "<u4", "OV": "<u8", "OB": None, "UN": None,
                 "OB or OW": None, "US": "<u2", "SS": "<i2", "US or SS": "<u2", "UL": "<u4", "SL": "<i4",
                 "FL": "<f4", "FD": "<f8", "SV": "<i8", "UV": "<u8"}
# Binary values owned by other rules: pixel data and its offset tables (stream rules, recomputed)
# and the ICC profile (wsideid.icc).
NOT_READ_FOR_TEXT = {"PixelData", "FloatPixelData", "DoubleFloatPixelData", "ExtendedOffsetTable",
                     "ExtendedOffsetTableLengths", "ICCProfile"}


def binary_spells_text(elem) -> bool:
    """Whether a kept binary value (OB/OW/OF/OD/OL/UN, US/UL/SS/SL/FL/FD/SV/UV) spells a word or a
    digit run in its bytes (``textbytes.words_in_numbers``): text, whatever its VR says (round 5)."""
    import numpy as np

    from ..textbytes import words_in_numbers
    vr = elem.VR
    if elem.keyword in NOT_READ_FOR_TEXT or vr not in BINARY_DTYPES or elem.value is None:
        return False
    dtype = BINARY_DTYPES[vr]
    if isinstance(elem.value, (bytes, bytearray)):
        raw = bytes(elem.value)
    else:
        try:
            raw = np.asarray(parts(elem.value), dtype=dtype or "u1").tobytes()
        except (ValueError, OverflowError, TypeError):
            return False
    return bool(words_in_numbers(raw, dtype))


def typed_valid(value, vr: str) -> bool:
    """Every value of the element parses wholly as ``vr`` (an empty value is valid)."""
    if isinstance(value, (bytes, bytearray)):
        return False  # pydicom could not convert it: it is not what its VR says
    return all(_one_typed(v, vr) for v in parts(value) if v not in (None, ""))


def text_valid(value, vr: str) -> bool:
    """A text value carries no control character and keeps within its VR's length."""
    if isinstance(value, (bytes, bytearray)):
        return False
    for v in parts(value):
        s = str(v) if v is not None else ""
        if has_control(s, vr) or len(s) > MAX_LEN.get(vr, 64):
            return False
    return True


def kind_for(vr: str, keyword: str) -> ValueKind:
    """What an element's value is, from its VR (and, for names and IDs, its keyword)."""
    if vr in ("CS",):
        return ValueKind.CODE
    if vr in NUMBER_STRING_VRS or vr in BINARY_NUMBER_VRS:
        return ValueKind.NUMBER
    if vr in DATE_VRS:
        return ValueKind.DATE
    if vr == "UI":
        return ValueKind.IDENTIFIER
    if vr in BINARY_VRS or vr == "SQ":
        return ValueKind.BINARY
    kw = keyword or ""
    if vr == "PN" or (vr in FREE_TEXT_VRS and _IDENTITY.search(kw) and not kw.startswith(_NOT_IDENTITY)):
        return ValueKind.IDENTIFIER
    return ValueKind.TEXT


def dummy(vr: str):
    """A non-empty value valid for ``vr`` that carries no information."""
    if vr in _DUMMY:
        return _DUMMY[vr]
    if vr in TEXT_VRS:
        return DUMMY_TEXT
    if vr in BINARY_NUMBER_VRS:
        return 0
    if vr == "SQ":
        return []
    return b""


def empty(vr: str):
    """The zero-length value of ``vr`` (Z)."""
    if vr == "SQ":
        return []
    if vr in TEXT_VRS or vr in DATE_VRS or vr in NUMBER_STRING_VRS or vr == "UI":
        return ""
    if vr in BINARY_NUMBER_VRS:
        return None
    return b""


def _dt_parts(v: str) -> tuple[str, str, str] | None:
    """A DT split into (YYYYMMDD, time part, UTC offset), or None when it does not parse wholly."""
    if len(v) == 4 and v.isdigit():
        return v, "", ""
    m = re.fullmatch(r"(\d{8})(\d*(?:\.\d{1,6})?)([+-]\d{4})?", v)
    if not m or not _DT_REST.fullmatch(m.group(2)):
        return None
    if transform_structured(m.group(1), "%Y%m%d", DatePolicy("year")) is None:
        return None
    tz = m.group(3) or ""
    if tz and not _TZ.fullmatch(tz):
        return None
    return m.group(1), m.group(2), tz


def timezone_value(value, policy: DatePolicy) -> str | None:
    """TimezoneOffsetFromUTC follows the date policy: kept (when it is a valid
    ``+HHMM``/``-HHMM``) only under ``shift``, where times of day are kept too;
    removed under ``remove`` and ``year``, since it narrows down where the
    subject was imaged and nothing else of the time is left to qualify."""
    v = str(value or "").strip()
    if policy.mode not in TIME_KEEPING or not _TZ.fullmatch(v):
        return None
    return v


def _one_date(v: str, vr: str, policy: DatePolicy) -> str | None:
    v = v.strip()
    if has_control(v):
        return None
    if vr == "TM":
        return v if policy.mode in TIME_KEEPING and _TM.fullmatch(v) else None
    if vr == "DA":
        if not _DA.fullmatch(v):
            return None
        return transform_structured(v, "%Y%m%d", policy)
    got = _dt_parts(v)
    if got is None:
        return None
    day, time, tz = got
    if len(day) == 4:  # a bare year
        return day if policy.mode == "year" else None
    new = transform_structured(day, "%Y%m%d", policy)
    if new is None:
        return None
    # Shift keeps the time of day and its UTC offset (both follow the policy
    # for TimezoneOffsetFromUTC); year keeps neither.
    return new + time + tz if policy.mode in TIME_KEEPING else new


def date_value(value, vr: str, policy: DatePolicy) -> str | None:
    """The policy applied to a DA/DT/TM value (multi-valued too); None: remove it."""
    if isinstance(value, (bytes, bytearray)):
        return None
    out = []
    for p in parts(value):
        new = _one_date(str(p), vr, policy)
        if new is None:
            return None
        out.append(new)
    return "\\".join(out)


def srgb_profile() -> bytes:
    """A neutral ICC profile (lcms's built-in sRGB, creation date zeroed): the stand-in for
    a profile that cannot be checked, where the IOD requires one (colour optical paths)."""
    from PIL import ImageCms
    raw = bytearray(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())
    raw[24:36] = bytes(12)  # dateTimeNumber of the header: the time this process made it
    return bytes(raw)
