"""Values by VR: dummies for the D action and the date policy for DA/DT/TM.

Kept apart from the planning so the VR rules (length limits, character
sets) are in one place and testable on their own.
"""

from __future__ import annotations

from ..dates import DatePolicy, transform_structured

TEXT_VRS = {"AE", "AS", "CS", "LO", "LT", "PN", "SH", "ST", "UC", "UT", "UR"}
DATE_VRS = {"DA", "DT", "TM"}
NUMBER_STRING_VRS = {"DS", "IS"}
BINARY_NUMBER_VRS = {"US", "UL", "SS", "SL", "FL", "FD", "SV", "UV", "AT"}
DUMMY_TEXT = "ANONYMIZED"
_DUMMY = {"AS": "000D", "DA": "19000101", "DT": "19000101000000", "TM": "000000", "UR": "urn:wsideid:removed",
          "DS": "0", "IS": "0"}


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


def _one_date(v: str, vr: str, policy: DatePolicy) -> str | None:
    v = v.strip()
    if vr == "TM":
        return v if policy.mode == "shift" else None
    if len(v) < 8:
        if vr == "DT" and len(v) == 4 and v.isdigit():  # a bare year
            return v if policy.mode == "year" else None
        return None
    head, rest = v[:8], v[8:]
    new = transform_structured(head, "%Y%m%d", policy)
    if new is None:
        return None
    if vr == "DA":
        return new if not rest else None  # a DA with trailing bytes is not a DA: drop it
    return new + rest if policy.mode == "shift" else new


def date_value(value, vr: str, policy: DatePolicy) -> str | None:
    """The policy applied to a DA/DT/TM value (multi-valued too); None: remove it."""
    parts = list(value) if isinstance(value, (list, tuple)) or hasattr(value, "__iter__") and not isinstance(value, str) else [value]
    out = []
    for p in parts:
        new = _one_date(str(p), vr, policy)
        if new is None:
            return None
        out.append(new)
    return "\\".join(out)
