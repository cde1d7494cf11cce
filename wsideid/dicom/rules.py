"""The DICOM profile as a lookup: which letter (Annex E action) an element gets.

Resolution order (documented in formats/dicom.toml): the hand-written WSI
entry, then the Table E.1-1 row with the selected options applied, then the
WSI IOD / keep allow-lists (kept), else unknown. The X/Z/D-style choices are
resolved with the attribute's Type in the WSI IOD, so that a required
attribute is emptied or given a dummy rather than deleted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..dates import kept_text_holds_date
from ..errors import ProfileError
from ..profiles import Profile
from .codes import CodeRules
from .uids import scheme_uids

# CLI option name -> Table E.1-1 option column in the profile (PS3.15 E.3, one per CID 7050
# code). "clean_pixels" has no table column: it is the lossless region blanking (--region,
# --macro blank-label), claimed only in instances whose frames were blanked.
OPTIONS = {
    "retain-safe-private": "safe_private",
    "retain-uids": "uids",
    "retain-device-identity": "device",
    "retain-institution-identity": "institution",
    "retain-patient-characteristics": "patient_chars",
    "retain-longitudinal-full-dates": "full_dates",
    "retain-longitudinal-modified-dates": "modified_dates",
    "clean-descriptors": "clean_desc",
    "clean-structured-content": "clean_struct",
    "clean-pixel-data": "clean_pixels",
}
# Order in which option columns override the Basic Profile letter: cleaning first, so that
# an option that retains an attribute (K) wins over one that only cleans it (C).
COLUMN_ORDER = ("clean_desc", "clean_struct", "patient_chars", "institution", "device", "uids", "modified_dates",
                "full_dates", "safe_private")
# Columns whose free text is kept only as one token, checked by the PHI text classifier too
# (fail closed: a site name, a serial number; not a sentence).
TOKEN_COLUMNS = ("device", "institution", "patient_chars")
LETTERS = {"K", "X", "Z", "D", "U", "C", "X/Z", "X/D", "Z/D", "X/Z/D", "X/Z/U*", "U*"}
WSI_ACTIONS = {"new-id", "specimen-id", "clean-structured"}
REQUIRED_1 = {"1", "1C"}
REQUIRED_2 = {"2", "2C"}


@dataclass(frozen=True)
class Verdict:
    letter: str  # a single letter (K X Z D U C) or a WSI action
    where: str
    unknown: bool = False
    pattern_key: str = ""  # the [dicom_options.patterns] key of a private element ("CREATOR:0x01")


class DicomRules:
    """Profile data for DICOM with a set of selected option columns."""

    def __init__(self, profile: Profile, columns: set[str]):
        opts = profile.data.get("dicom_options", {})
        self.profile = profile
        self.columns = set(columns) | set(opts.get("default_options", []))
        self.wsi: dict[str, str] = opts.get("wsi", {})
        self.table: dict[str, dict[str, str]] = opts.get("table", {})
        self.iod: dict[str, str] = opts.get("iod", {})
        self.keep: dict[str, str] = opts.get("keep", {})
        self.uid_keep: set[str] = set(opts.get("uid_keep", {}))
        self.coding_scheme_uids: frozenset[str] = scheme_uids(opts)
        self.file_meta: dict[str, str] = opts.get("file_meta", {})
        self.safe_private: dict[str, list[int]] = opts.get("safe_private", {})
        # PS3.15 Table E.3.10-1 (generated): "CREATOR|gggg,xxEE" -> VR.
        self.safe_private_standard: dict[str, str] = opts.get("safe_private_standard", {})
        self._repeating = [(k, v) for k, v in self.table.items() if k.startswith("(")]
        self.nested_types: dict[str, str] = opts.get("nested_types", {})
        self.patterns: dict[str, list[re.Pattern[str]]] = {}
        for kw, pats in opts.get("patterns", {}).items():
            pats = [pats] if isinstance(pats, str) else list(pats)
            try:
                self.patterns[kw] = [re.compile(p) for p in pats]
            except re.error as exc:
                raise ProfileError(f"dicom profile pattern for {kw}: {exc}") from None
        self.device_pattern = re.compile(opts.get("device_identity_pattern", r"[A-Za-z0-9][A-Za-z0-9._:/#-]{0,63}"))
        self.institution_pattern = re.compile(opts.get("institution_identity_pattern",
                                                       r"[A-Za-z0-9][A-Za-z0-9.&'/-]{0,63}( [A-Za-z0-9.&'/-]{1,32}){0,5}"))
        self.enumerations: dict[str, list[list[str]]] = opts.get("enumerations", {})
        # CS attributes: the terms the standard defines for each ([dicom_options.code_strings]).
        self.code_strings: dict[str, list[str]] = {k: [str(t) for t in v]
                                                   for k, v in opts.get("code_strings", {}).items()}
        for name, terms in self.code_strings.items():
            if not terms:
                raise ProfileError(f"dicom profile code_strings {name}: no terms")
        try:
            self.codes = CodeRules(opts.get("coding_schemes", {}), opts.get("codes", {}),
                                   opts.get("listed_code_schemes", []))
        except re.error as exc:
            raise ProfileError(f"dicom profile coding_schemes: {exc}") from None
        for name, spec in list(self.wsi.items()) + list(self.keep.items()) + list(self.file_meta.items()):
            if spec not in LETTERS and spec not in WSI_ACTIONS:
                raise ProfileError(f"dicom profile entry {name}: unknown action {spec!r}")

    def _row_letter(self, row: dict[str, str]) -> str:
        letter = row.get("basic", "X")
        for col in COLUMN_ORDER:
            if col in self.columns and col in row:
                letter = row[col]
        return letter

    def _repeating_row(self, tag: int) -> tuple[str, dict[str, str]] | None:
        text = f"{tag >> 16:04x}{tag & 0xFFFF:04x}"
        for key, row in self._repeating:
            pat = key.strip("()").replace(",", "")
            if len(pat) == 8 and all(p in ("x", c) for p, c in zip(pat, text)):
                return key, row
        return None

    def iod_type(self, keyword: str) -> str:
        """The attribute's Type in the WSI IOD; for attributes only found inside
        sequences, the Type the profile declares for them ([dicom_options.nested_types]),
        else "3" (optional)."""
        t = self.iod.get(keyword, "3")
        return self.nested_types.get(keyword, "3") if t == "nested" else t

    def text_allowed(self, keyword: str, value: str) -> bool:
        """A free-text value is kept only when it wholly matches a pattern the profile declares for it
        and spells no date (a version grammar admits "17.03.1987": round 6 of the planted-PHI audit)."""
        return any(p.fullmatch(value) for p in self.patterns.get(keyword, ())) and not kept_text_holds_date(value)

    def option_column(self, keyword: str) -> str | None:
        """The selected option column (device, institution, patient characteristics) that keeps
        this attribute when the Basic Profile would not, or None."""
        row = self.table.get(keyword) or {}
        found = None
        for col in TOKEN_COLUMNS:
            if col in self.columns and row.get(col) == "K":
                found = col
        return found

    def option_text_allowed(self, keyword: str, value: str) -> bool:
        """Free text kept by a Retain option: one token (device, patient characteristics), or a
        short name of words (institution), and no PHI the text classifier can see."""
        col = self.option_column(keyword)
        if col is None:
            return False
        pat = self.institution_pattern if col == "institution" else self.device_pattern
        if not pat.fullmatch(value):
            return False
        from ..detect.phi_text import classify_text
        return not [f for f in classify_text(value) if f.category != "date"]

    def retains_uid(self, keyword: str) -> bool:
        """Retain UIDs (113110): the attribute's uids column says K."""
        return "uids" in self.columns and (self.table.get(keyword) or {}).get("uids") == "K"

    def structured(self) -> bool:
        """Clean Structured Content is selected (on by default in the WSI profile)."""
        return "clean_struct" in self.columns
    def resolve(self, letter: str, keyword: str, vr: str, nested: bool) -> str:
        """X/Z/D-style choices: X unless the WSI IOD requires the attribute.

        U* (Annex E: "replace the UIDs inside, to keep referential
        integrity") on a sequence keeps it: its items are walked with the
        usual rules, so the referenced UIDs get their keyed replacements and
        anything else in them is judged like any other attribute.
        """
        if "U*" in letter:
            return "U*" if vr == "SQ" else "U"
        if "/" not in letter:
            return letter
        t = self.iod_type(keyword)
        choices = letter.replace("*", "").split("/")
        if t in REQUIRED_1:
            for pref in ("U" if vr == "UI" else "D", "D", "Z"):
                if pref in choices:
                    return pref
        if t in REQUIRED_1 | REQUIRED_2:
            for pref in ("Z", "D", "U"):
                if pref in choices:
                    return pref
        return "X" if "X" in choices else choices[0]

    def public(self, keyword: str, tag: int) -> Verdict:
        if keyword in self.wsi:
            return Verdict(self.wsi[keyword], f"wsi.{keyword}")
        row = self.table.get(keyword) if keyword else None
        if row is None and not keyword:
            found = self._repeating_row(tag)
            if found:
                return Verdict(self._row_letter(found[1]), f"E.1-1 {found[0]}")
        if row is not None:
            return Verdict(self._row_letter(row), f"E.1-1 {keyword}")
        if keyword in self.keep:
            return Verdict(self.keep[keyword], f"keep.{keyword}")
        if keyword in self.iod:
            return Verdict("K", f"iod.{keyword}")
        return Verdict("X", "unknown", unknown=True)

    def private(self, creator: str | None, offset: int, group: int | None = None, vr: str = "") -> Verdict:
        """Private data element (gggg,xxEE) of a block owned by ``creator``: kept only under
        Retain Safe Private, when PS3.15 Table E.3.10-1 lists it (creator, group, element and
        VR) or the profile's own [dicom_options.safe_private] does; its value then passes the
        value policy like any kept value."""
        row = self.table.get("@private", {"basic": "X"})
        letter = self._row_letter(row)
        if letter != "C" or creator is None:
            return Verdict("X", "E.1-1 private attributes")
        key = f"{creator}:0x{offset:02X}"
        if offset in [int(x) for x in self.safe_private.get(creator, [])]:
            return Verdict("K", f"safe_private.{creator}", pattern_key=key)
        if group is not None:
            want = self.safe_private_standard.get(f"{creator}|{group:04X},xx{offset:02X}")
            if want is not None and vr == want:  # an implicit-VR "UN" is not vouched for
                return Verdict("K", f"E.3.10-1 safe private {creator}", pattern_key=key)
        return Verdict("X", "E.1-1 private attributes (not a safe private attribute)")

