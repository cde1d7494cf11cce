"""Inventory and plan for a DICOM slide: one Decision per element, in every instance.

Fields are named by path (``inst[2]/SpecimenDescriptionSequence[0]/SpecimenUID``)
so the audit, ``inspect`` and the verifier speak of the same thing. The plan
also holds, per path, the operation the writer carries out (``Op``), so the
writer decides nothing on its own: it replays the plan.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pydicom
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset

from .. import __version__
from ..dates import DatePolicy, scrub_text
from ..errors import WsideidError
from ..keys import Secret
from ..model import (DATE, DATETIME, KEEP, REMOVE, REPLACE, TEXT, TIME, Decision, Field, ImageDecision,
                     ImageInfo, Inventory, Plan, ValueKind)
from ..profiles import Profile
from .codes import CodeOp, CodeRules
from .rules import DicomRules, Verdict
from .source import DicomSource, Instance, int_attr
from .specimen import CONTENT_ITEMS, CONTENT_SEQUENCES, SpecimenIds, content_kind
from .uids import UidMapper
from .values import (BINARY_NUMBER_VRS, BINARY_VRS, DATE_VRS, FREE_TEXT_VRS, MAX_LEN, NUMBER_STRING_VRS,
                     binary_spells_text, date_value, dummy, empty, kind_for, parts, srgb_profile, text_valid,
                     timezone_value, typed_valid)

if TYPE_CHECKING:
    from ..detect.barcodes import Decoded

# VRs with a grammar: kept only when every value parses wholly as it.
TYPED_VRS = NUMBER_STRING_VRS | BINARY_NUMBER_VRS | {"CS", "UI", "AS"}
IMPLEMENTATION = {"ImplementationClassUID": str(pydicom.uid.PYDICOM_IMPLEMENTATION_UID),
                  "ImplementationVersionName": f"PYDICOM {pydicom.__version__}"[:16]}


@dataclass
class Op:
    """What the writer does with one element: keep, remove, set a value, or walk into it."""

    kind: str  # keep | remove | set | walk
    value: Any = None


@dataclass
class DicomOptions:
    """The DICOM-only choices (everything else comes from DeidOptions)."""

    options: tuple[str, ...] = ()  # rules.OPTIONS names
    label: str = "remove"  # remove | generate
    to_dicom: bool = False
    secret: Secret | None = None  # wsideid.keys.Secret for UIDs and pseudonyms; None: $WSIDEID_SECRET or random per run
    mpp: float | None = None  # --to-dicom: level-0 microns per pixel for a source that lacks them (--mpp)


@dataclass
class DicomPlanData:
    """What the writer and verifier need beyond the generic Plan."""

    source: DicomSource
    rules: DicomRules
    uids: UidMapper
    new_id: str | None
    policy: DatePolicy
    ops: dict[str, Op] = field(default_factory=dict)
    columns: set[str] = field(default_factory=set)
    specimens: SpecimenIds | None = None
    structured: set[int] = field(default_factory=set)  # instances whose structured content was cleaned
    patient_id: str | None = None  # new PatientID from the subject (wsideid.pseudomaps); None: new_id or pseudonym
    # overview -> the codes decoded on it to place its label (the source scan takes them, not decoding again)
    overview_barcodes: dict[int, Decoded] = field(default_factory=dict)


def tag_name(tag: int) -> str:
    return f"({tag >> 16:04X},{tag & 0xFFFF:04X})"


def value_text(elem: DataElement) -> str:
    """A printable form of the value (binary summarised; text-like binary decoded for the residual scan)."""
    if elem.VR == "SQ":
        return f"<sequence, {len(elem.value or [])} items>"
    v = elem.value
    if elem.VR in BINARY_VRS or isinstance(v, (bytes, bytearray)):
        raw = bytes(v or b"")
        txt = raw.rstrip(b"\0 ").decode("latin-1")
        if raw and len(raw) <= 1024 and all(32 <= ord(c) < 127 for c in txt):
            return txt
        return f"<{elem.VR} {len(raw)} bytes>"
    if v is None:
        return ""
    if isinstance(v, (list, tuple)) or type(v).__name__ == "MultiValue":
        return "\\".join(str(x) for x in v)
    return str(v)


class _Planner:
    def __init__(self, data: DicomPlanData):
        self.d = data
        self.decisions: list[Decision] = []
        # Input text the output keeps (pattern-matched text, cleaned descriptors, code
        # meanings): path -> (element, instance, code item or None), re-checked after the walk.
        self.kept_text: dict[str, tuple[DataElement, int, Dataset | None]] = {}

    # -- helpers -----------------------------------------------------------
    def _pseudo(self, domain: str, value: str) -> str:
        if domain == "dicom-PatientID" and self.d.patient_id:
            return self.d.patient_id
        if self.d.new_id:
            return self.d.new_id
        return self.d.uids.pseudonym(domain, value) if value.strip() else ""

    def _uid_value(self, elem: DataElement):
        vals = list(elem.value) if type(elem.value).__name__ == "MultiValue" else [elem.value]
        new = [self.d.uids.new_uid(str(v)) for v in vals if v is not None]
        return new if len(new) > 1 else (new[0] if new else "")

    def _add(self, path: str, elem: DataElement, inst: int, action: str, new: Any, where: str,
             unknown: bool = False, kind: ValueKind | None = None, removed: str | None = None) -> None:
        """Record one decision. ``removed``: what was taken out, when only some of the
        values of a multi-valued element go (the kept ones are not removed values)."""
        if kind is None:
            kind = kind_for(elem.VR, elem.keyword)
            if elem.VR == "UI" and all(self.d.uids.is_standard(str(u)) for u in parts(elem.value) if u):
                kind = ValueKind.CODE  # a UID of the standard itself (SOP class, transfer syntax)
        f = Field(path, f"dicom:{elem.keyword or tag_name(int(elem.tag))}",
                  value_text(elem) if removed is None else removed, ifd=inst, tag=int(elem.tag), kind=kind)
        if action == KEEP:
            shown: Any = f.value
        elif isinstance(new, (bytes, bytearray)):
            shown = f"<{len(new)} bytes>"
        elif isinstance(new, list):
            shown = "<sequence, 0 items>" if elem.VR == "SQ" else "\\".join(map(str, new))
        else:
            shown = new
        self.decisions.append(Decision(f, action, shown, where, unknown))

    def _remove_all(self, ds: Dataset, prefix: str, inst: int, where: str) -> None:
        """Record every element under a removed item/sequence (their values become residual
        needles, except the parts of a standard code: CODE kind, like a kept one)."""
        code_ops = self.d.rules.codes.judge(ds, self.d.uids) if CodeRules.is_code_item(ds) else {}
        for elem in ds:
            path = f"{prefix}/{elem.keyword or tag_name(int(elem.tag))}"
            op = code_ops.get(elem.keyword)
            kind = None if op is None else (ValueKind.CODE if op.kind == "keep" else op.value_kind)
            self._add(path, elem, inst, REMOVE, None, where, kind=kind)
            if elem.VR == "SQ":
                for k, item in enumerate(elem.value or []):
                    self._remove_all(item, f"{path}[{k}]", inst, where)

    # -- the walk ----------------------------------------------------------
    def walk(self, ds: Dataset, prefix: str, inst: int, nested: bool, override: dict[str, str] | None = None) -> None:
        kept_blocks: set[tuple[int, int]] = set()
        creators: list[DataElement] = []
        code_ops = self.d.rules.codes.judge(ds, self.d.uids) if nested and CodeRules.is_code_item(ds) else {}
        for elem in ds:
            tag = int(elem.tag)
            group, el = tag >> 16, tag & 0xFFFF
            path = f"{prefix}/{elem.keyword or tag_name(tag)}"
            if el == 0 and group != 0:
                self._set(path, elem, inst, "remove", None, REMOVE, None, "group length (recomputed)")
                continue
            if group == 0:
                self._set(path, elem, inst, "remove", None, REMOVE, None, "command element (not part of a file)")
                continue
            if group % 2 == 1:
                if 0x10 <= el <= 0xFF:
                    creators.append(elem)
                    continue
                creator = ds.get((group, el >> 8))
                verdict = self.d.rules.private(str(creator.value) if creator is not None else None, el & 0xFF,
                                               group, elem.VR)
                self._apply_letter(path, elem, inst, verdict, nested)
                if verdict.letter == "K" and self.d.ops[path].kind != "remove":  # the value passed the policy
                    kept_blocks.add((group, el >> 8))
                continue
            if elem.keyword in code_ops:
                self._code(path, elem, inst, code_ops[elem.keyword], ds)
                continue
            if override and elem.keyword in override:
                verdict = Verdict(override[elem.keyword], "clean-structured identifier item")
            else:
                verdict = self.d.rules.public(elem.keyword, tag)
            self._apply_letter(path, elem, inst, verdict, nested)
        for elem in creators:
            tag = int(elem.tag)
            path = f"{prefix}/{tag_name(tag)}"
            if (tag >> 16, tag & 0xFF) in kept_blocks:
                self._set(path, elem, inst, "keep", None, KEEP, None, "private creator of a kept block")
            else:
                self._set(path, elem, inst, "remove", None, REMOVE, None, "E.1-1 private attributes")

    def _set(self, path: str, elem: DataElement, inst: int, kind: str, value: Any, action: str, new: Any,
             where: str, unknown: bool = False, vkind: ValueKind | None = None, removed: str | None = None) -> None:
        self.d.ops[path] = Op(kind, value)
        self._add(path, elem, inst, action, new, where, unknown, vkind, removed)

    def _code(self, path: str, elem: DataElement, inst: int, op: CodeOp, item: Dataset | None = None) -> None:
        if elem.keyword == "CodeMeaning" and op.kind in ("keep", "set"):
            self.kept_text[path] = (elem, inst, item)
        if op.kind == "keep":
            self._set(path, elem, inst, "keep", None, KEEP, None, op.why, vkind=ValueKind.CODE)
        elif op.kind == "set":
            self._set(path, elem, inst, "set", op.value, REPLACE, op.value, op.why, vkind=op.value_kind)
        else:
            self._set(path, elem, inst, "remove", None, REMOVE, None, op.why, vkind=op.value_kind)

    def _apply_letter(self, path: str, elem: DataElement, inst: int, verdict: Verdict, nested: bool) -> None:
        vr, kw, where = elem.VR, elem.keyword, verdict.where
        letter = self.d.rules.resolve(verdict.letter, kw, vr, nested)
        if verdict.unknown:
            self._set(path, elem, inst, "remove", None, REMOVE, None, "unknown", unknown=True)
            if vr == "SQ":
                for k, item in enumerate(elem.value or []):
                    self._remove_all(item, f"{path}[{k}]", inst, "inside an unknown sequence")
            return
        if kw == "TimezoneOffsetFromUTC" and letter not in ("X", "Z"):
            new = timezone_value(elem.value, self.d.policy)
            if new is None:
                self._set(path, elem, inst, "remove", None, REMOVE, None, f"{where} (date policy {self.d.policy.mode})",
                          vkind=ValueKind.DATE)
            else:
                self._set(path, elem, inst, "keep" if new == str(elem.value) else "set", new, KEEP, new,
                          f"{where} (date policy shift: kept)", vkind=ValueKind.DATE)
            return
        if vr == "UI" and letter in ("U", "K") and self.d.rules.retains_uid(kw) and typed_valid(elem.value, "UI"):
            self._retain_uid(path, elem, inst, where)
            return
        standard = self.d.uids.is_standard
        if vr == "UI" and letter in ("K", "C", "D") and (kw not in self.d.rules.uid_keep
                                                         or not typed_valid(elem.value, "UI")
                                                         or not all(standard(str(u)) for u in parts(elem.value) if u)):
            letter = "U"  # a listed UID attribute keeps only the standard's UIDs: any other is keyed
        if letter in ("K", "C", "U*") and vr == "SQ":
            self._set(path, elem, inst, "walk", None, KEEP, None, where + (" U* (references kept, UIDs replaced)"
                                                                            if letter == "U*" else ""))
            for k, item in enumerate(elem.value or []):
                self.walk(item, f"{path}[{k}]", inst, True)
            return
        if letter == "clean-structured" and not self.d.rules.structured():
            letter = self.d.rules.resolve("X/Z", kw, vr, nested)  # Basic Profile: emptied if Type 2
            where += " (Clean Structured Content not selected)"
        if letter == "clean-structured":
            self._clean_structured(path, elem, inst, where)
            return
        if letter == "K":
            self._keep(path, elem, inst, where, verdict.pattern_key or kw)
        elif letter == "X":
            self._set(path, elem, inst, "remove", None, REMOVE, None, where + " X")
            if vr == "SQ":
                for k, item in enumerate(elem.value or []):
                    self._remove_all(item, f"{path}[{k}]", inst, where + " X")
        elif letter in ("Z", "D"):
            value = empty(vr) if letter == "Z" else dummy(vr)
            if vr in DATE_VRS and letter == "D" and self.d.policy.mode in ("shift", "year"):
                shifted = date_value(elem.value, vr, self.d.policy) if elem.value else None
                value = shifted or value
            self._set(path, elem, inst, "set", value, REPLACE, value, f"{where} {letter}")
            if vr == "SQ":
                for k, item in enumerate(elem.value or []):
                    self._remove_all(item, f"{path}[{k}]", inst, f"{where} {letter}")
        elif letter == "U":
            value = self._uid_value(elem) if vr == "UI" else dummy(vr)
            self._set(path, elem, inst, "set", value, REPLACE, value, f"{where} U")
        elif letter == "C":
            self._clean(path, elem, inst, where)
        elif letter == "new-id":
            value = self._pseudo(f"dicom-{kw}", value_text(elem))
            self._set(path, elem, inst, "set", value, REPLACE, value, where, vkind=ValueKind.IDENTIFIER)
        elif letter == "specimen-id":
            value = self.d.specimens.replace(value_text(elem))
            self._set(path, elem, inst, "set", value, REPLACE, value, where, vkind=ValueKind.IDENTIFIER)
        else:  # pragma: no cover - rules validate letters
            raise AssertionError(letter)

    # -- the value policy ----------------------------------------------------
    def _retain_uid(self, path: str, elem: DataElement, inst: int, where: str) -> None:
        """Retain UIDs (113110): the original UID stays, recorded so the verifier accepts it."""
        for u in parts(elem.value):
            if u:
                self.d.uids.retain(str(u))
        self._set(path, elem, inst, "keep", None, KEEP, None, where + " (Retain UIDs)", vkind=ValueKind.CODE)

    def _neutral(self, path: str, elem: DataElement, inst: int, where: str) -> None:
        """Replace a value the policy cannot keep: Type 1 gets a dummy (a keyed stand-in for
        identifiers, so references between items still match), Type 2 an empty value, others go."""
        vr, kw = elem.VR, elem.keyword
        t = self.d.rules.iod_type(kw)
        if t in ("1", "1C"):
            if kind_for(vr, kw) == ValueKind.IDENTIFIER and vr in FREE_TEXT_VRS:
                value: Any = self.d.uids.pseudonym(f"dicom-{kw}", value_text(elem), prefix="X")[:MAX_LEN.get(vr, 16)]
            else:
                value = dummy(vr)
            self._set(path, elem, inst, "set", value, REPLACE, value, where + ": not an allowed value, dummy (Type 1)")
        elif t in ("2", "2C"):
            value = empty(vr)
            self._set(path, elem, inst, "set", value, REPLACE, value, where + ": not an allowed value, emptied (Type 2)")
        else:
            self._set(path, elem, inst, "remove", None, REMOVE, None, where + ": not an allowed value, removed")

    def _keep(self, path: str, elem: DataElement, inst: int, where: str, key: str = "") -> None:
        """K: kept only when the value parses as its VR or matches the profile's pattern for it
        (``key``: the pattern's name, the keyword or "CREATOR:0xEE" for a safe private element)."""
        vr, kw = elem.VR, elem.keyword
        key = key or kw
        rules = self.d.rules
        if kw == "ICCProfile":
            self._icc(path, elem, inst, where)
            return
        if kw in rules.enumerations:
            self._enumerated(path, elem, inst, where)
            return
        if vr in DATE_VRS:
            self._clean(path, elem, inst, where)
            return
        if vr == "CS" and kw != "CodingSchemeDesignator":
            self._code_string(path, elem, inst, where, key)
            return
        if binary_spells_text(elem):
            self._neutral(path, elem, inst, where + " (its bytes spell text)")
            return
        if vr in BINARY_VRS or vr not in FREE_TEXT_VRS | TYPED_VRS:
            self._set(path, elem, inst, "keep", None, KEEP, None, where)  # binary: pixel data, LUTs, offsets
            return
        if vr in TYPED_VRS:
            if typed_valid(elem.value, vr):
                self._set(path, elem, inst, "keep", None, KEEP, None, where)
            else:
                self._neutral(path, elem, inst, where + f" (does not parse as {vr})")
            return
        # Free text: every value must match the profile's pattern for this attribute.
        values = [str(v) for v in parts(elem.value)]
        if not text_valid(elem.value, vr):
            self._neutral(path, elem, inst, where + " (control character or too long)")
            return
        device = rules.option_column(kw) is not None

        def ok(v: str) -> bool:
            return v == "" or rules.text_allowed(key, v) or (device and rules.option_text_allowed(kw, v))
        good = [v for v in values if ok(v)]
        self.kept_text[path] = (elem, inst, None)
        if len(good) == len(values):
            self._set(path, elem, inst, "keep", None, KEEP, None, where + (" (retain option: one token)" if device
                                                                             and not all(rules.text_allowed(key, v) for v in values if v)
                                                                             else " (allowed pattern)"))
        elif good and any(good):
            value = good if len(good) > 1 else good[0]
            self._set(path, elem, inst, "set", value, REPLACE, value,
                      where + ": values not matching the allowed pattern removed",
                      removed="\\".join(v for v in values if not ok(v)))
        else:
            self._neutral(path, elem, inst, where + " (no allowed pattern matched)")

    def _code_string(self, path: str, elem: DataElement, inst: int, where: str, key: str) -> None:
        """A CS value is kept only when every value is a term the profile lists for the attribute
        ([dicom_options.code_strings]: the standard's enumerated values and defined terms).

        Why: CS has the character set of a name (``DOE JANE 4455667`` is a valid CS) and a
        removed CS is no verifier needle, so its grammar alone would let a name through.
        Anything else (and any CS attribute not listed) gets the neutral value of its Type:
        Type 1 the first listed term, Type 2 empty, others removed."""
        terms = self.d.rules.code_strings.get(key)
        if terms is not None and typed_valid(elem.value, "CS") and \
                all(str(v).strip(" ") in terms for v in parts(elem.value) if v not in (None, "")):
            self._set(path, elem, inst, "keep", None, KEEP, None, where + " (a listed term)")
            return
        why = " (not a listed term)" if terms is not None else " (a code string with no listed terms)"
        t = self.d.rules.iod_type(elem.keyword)
        if terms is not None and t in ("1", "1C"):
            self._set(path, elem, inst, "set", terms[0], REPLACE, terms[0],
                      where + why + ": first listed term (Type 1)", vkind=ValueKind.TEXT)
        elif t in ("2", "2C"):
            self._set(path, elem, inst, "set", "", REPLACE, "", where + why + ": emptied (Type 2)",
                      vkind=ValueKind.TEXT)
        elif t in ("1", "1C"):
            self._set(path, elem, inst, "set", dummy("CS"), REPLACE, dummy("CS"), where + why + ": dummy (Type 1)",
                      vkind=ValueKind.TEXT)
        else:
            self._set(path, elem, inst, "remove", None, REMOVE, None, where + why + ": removed", vkind=ValueKind.TEXT)

    def _enumerated(self, path: str, elem: DataElement, inst: int, where: str) -> None:
        """ImageType-style values: only the enumerated values the WSI IOD allows, in their positions."""
        allowed = self.d.rules.enumerations[elem.keyword]
        vals = [str(v).strip().upper() for v in parts(elem.value)] if not isinstance(elem.value, bytes) else []
        out = [vals[i] if i < len(vals) and vals[i] in choices else choices[0] for i, choices in enumerate(allowed)]
        original = [str(v) for v in parts(elem.value)] if not isinstance(elem.value, bytes) else []
        if out == original:
            self._set(path, elem, inst, "keep", None, KEEP, None, where + " (enumerated values)")
        else:
            self._set(path, elem, inst, "set", out, REPLACE, out, where + ": only the enumerated values kept",
                      vkind=ValueKind.TEXT)

    def _icc(self, path: str, elem: DataElement, inst: int, where: str) -> None:
        """The ICC profile keeps its colour science; its text tags are neutralised (wsideid.icc).

        A profile that cannot be checked (it does not parse, or no sanitiser is
        installed) is replaced by a neutral sRGB profile where the IOD needs one
        (inside an optical path, Type 1C for colour images) and removed elsewhere.
        """
        raw = bytes(elem.value or b"")
        try:
            from ..icc import sanitize_icc
        except ImportError:  # pragma: no cover - wsideid.icc ships with the package
            new, removed = b"", []
        else:
            new, removed = sanitize_icc(raw)
            if len(new) % 2:
                new += b"\0"  # OB values have even length (PS3.5 7.1.1); ICC readers stop at the declared size
        for n, text in enumerate(removed):  # each removed text is a value the output must not hold
            f = Field(f"{path}/@text[{n}]", "dicom:ICCProfile/text", text, ifd=inst, tag=int(elem.tag),
                      kind=ValueKind.TEXT)
            self.decisions.append(Decision(f, REMOVE, None, "ICC profile text neutralised"))
        if not new and "OpticalPathSequence[" in path:
            new = srgb_profile()
            self._set(path, elem, inst, "set", new, REPLACE, new, where + " (ICC profile cannot be checked: "
                      "replaced by a neutral sRGB profile)", vkind=ValueKind.BINARY)
        elif not new:
            self._set(path, elem, inst, "remove", None, REMOVE, None, where + " (ICC profile cannot be checked: removed)")
        elif new == raw:
            self._set(path, elem, inst, "keep", None, KEEP, None, where + " (ICC profile: no text to neutralise)")
        else:
            self._set(path, elem, inst, "set", new, REPLACE, new, where + " (ICC profile text neutralised)",
                      vkind=ValueKind.BINARY)

    def _clean(self, path: str, elem: DataElement, inst: int, where: str) -> None:
        vr, kw = elem.VR, elem.keyword
        if vr in DATE_VRS:
            new = date_value(elem.value, vr, self.d.policy) if elem.value not in (None, "") else ""
            action = {"DA": DATE, "DT": DATETIME, "TM": TIME}[vr]
            if new is None:
                self._neutral(path, elem, inst, where + " C (date policy)")
            else:
                self._set(path, elem, inst, "set", new, action, new, where + " C")
            return
        if vr in BINARY_VRS:
            self._set(path, elem, inst, "remove", None, REMOVE, None, where + " C (binary: removed)")
            return
        if vr in TYPED_VRS:
            self._keep(path, elem, inst, where + " C")
            return
        # Free text under Clean Descriptors: replaced when the PHI text classifier
        # finds anything but a date in it (a name, an accession, a record
        # number), or when it cannot be read as text of its VR; dates in what
        # is left follow the date policy. Removed values are checked after
        # the walk (_withdraw_kept_text_holding_removed_values), when all of them are known.
        text = value_text(elem)
        if not text_valid(elem.value, vr):
            self._neutral(path, elem, inst, where + " C (control character or too long)")
            return
        from ..detect.phi_text import classify_text
        flags = [f for f in classify_text(text) if f.category != "date"]
        if flags:
            cats = ", ".join(sorted({f.category for f in flags}))
            self._neutral(path, elem, inst, f"{where} C (PHI classifier: {cats})")
            return
        new, _ = scrub_text(text, self.d.policy)
        if new == text:
            self._set(path, elem, inst, "keep", None, TEXT, text, where + " C")
        else:
            self._set(path, elem, inst, "set", new, TEXT, new, where + " C")
        self.kept_text[path] = (elem, inst, None)

    def _clean_structured(self, path: str, elem: DataElement, inst: int, where: str) -> None:
        """Keep the sequence; content items lose free text, keep codes, get new identifiers.

        A preparation step left with no content item is dropped whole: an empty
        step content item sequence would make the instance invalid (Type 1).
        """
        if elem.VR != "SQ":
            self._set(path, elem, inst, "remove", None, REMOVE, None, where + " (not a sequence)")
            return
        if elem.value:
            self.d.structured.add(inst)
        self._set(path, elem, inst, "walk", None, KEEP, None, where)
        for k, item in enumerate(elem.value or []):
            ipath = f"{path}[{k}]"
            if elem.keyword not in CONTENT_SEQUENCES:
                steps = item.get(CONTENT_ITEMS)
                if steps is not None and all(content_kind(s) == "drop" for s in steps or []):
                    self.d.ops[ipath] = Op("drop-item")
                    self._remove_all(item, ipath, inst, where + ": step with only free text removed")
                else:
                    self.walk(item, ipath, inst, True)
                continue
            kind = content_kind(item)
            if kind == "specimen":
                self.walk(item, ipath, inst, True, {"TextValue": "specimen-id"})
            elif kind == "container":
                self.walk(item, ipath, inst, True, {"TextValue": "new-id"})
            elif kind == "drop":
                self.d.ops[ipath] = Op("drop-item")
                self._remove_all(item, ipath, inst, where + ": free-text item removed")
            else:
                self.walk(item, ipath, inst, True)

    def meta(self, inst: Instance) -> None:
        fm = getattr(inst.ds, "file_meta", None) or Dataset()
        for elem in fm:
            path = f"inst[{inst.index}]/meta/{elem.keyword or tag_name(int(elem.tag))}"
            spec = self.d.rules.file_meta.get(elem.keyword)
            if elem.keyword in IMPLEMENTATION:
                value = IMPLEMENTATION[elem.keyword]
                self._set(path, elem, inst.index, "set", value, REPLACE, value, "file meta: written by pydicom")
            elif spec == "K" and (elem.VR not in TYPED_VRS or typed_valid(elem.value, elem.VR)):
                self._set(path, elem, inst.index, "keep", None, KEEP, None, f"file_meta.{elem.keyword}")
            elif spec == "U" and self.d.rules.retains_uid(elem.keyword) and typed_valid(elem.value, "UI"):
                self._retain_uid(path, elem, inst.index, f"file_meta.{elem.keyword}")
            elif spec == "U" or (spec == "K" and elem.VR == "UI"):
                value = self._uid_value(elem)
                self._set(path, elem, inst.index, "set", value, REPLACE, value, f"file_meta.{elem.keyword}")
            else:
                self._set(path, elem, inst.index, "remove", None, REMOVE, None, "file meta (rebuilt)")


def _declares_text_in_pixels(ds: Dataset) -> bool:
    return any(str(ds.get(kw, "")).strip().upper() == "YES" for kw in ("BurnedInAnnotation", "SpecimenLabelInImage"))


def _image_info(inst: Instance) -> ImageInfo:
    ds = inst.ds

    def num(name: str, default: int = 0) -> int:
        return int_attr(ds, name, default)
    ts = str(ds.file_meta.get("TransferSyntaxUID", "")) if hasattr(ds, "file_meta") else ""
    try:
        import pydicom.uid
        comp = pydicom.uid.UID(ts).name or ts
    except Exception:  # noqa: BLE001
        comp = ts
    return ImageInfo(inst.index, inst.role, num("TotalPixelMatrixColumns", num("Columns")),
                     num("TotalPixelMatrixRows", num("Rows")), comp, True, num("NumberOfFrames", 1),
                     {"frames": len(inst.span.fragments) if inst.span else 0})


def make_dicom_plan(src: DicomSource, profile: Profile, rules: DicomRules, uids: UidMapper, policy: DatePolicy,
                    new_id: str | None, strict: bool, keep_overview: bool, label: str,
                    patient_id: str | None = None) -> Plan:
    data = DicomPlanData(src, rules, uids, new_id, policy, columns=set(rules.columns),
                         specimens=SpecimenIds(new_id, uids), patient_id=patient_id)
    data.specimens.collect([i.ds for i in src.instances])
    planner = _Planner(data)
    for inst in src.instances:
        planner.meta(inst)
        planner.walk(inst.ds, f"inst[{inst.index}]", inst.index, False)
        if inst.trailing:
            f = Field(f"inst[{inst.index}]/@after-pixel-data", "dicom:@after-pixel-data", "<bytes after the pixel data>",
                      ifd=inst.index)
            planner.decisions.append(Decision(f, REMOVE, None, "elements after the pixel data are dropped"))
    _withdraw_kept_text_holding_removed_values(planner)
    decisions = planner.decisions
    unknowns = [d for d in decisions if d.unknown]
    if unknowns and (strict or profile.unknown_action == "refuse"):
        from ..errors import StrictRefusal
        names = ", ".join(sorted({d.field.key for d in unknowns})[:8])
        raise StrictRefusal(f"refused (--strict): {len(unknowns)} attribute(s) the profile does not know: {names}")
    images = []
    for inst in src.instances:
        info = _image_info(inst)
        action, rule = profile.image_action(inst.role), f"images.{inst.role}"
        if inst.role == "overview" and keep_overview:
            action, rule = "keep", "--keep-macro"
        if inst.role == "label" and label == "generate":
            action, rule = "replace", "--dicom-option generated-label"
        if action == "keep" and inst.role in ("level", "thumbnail") and _declares_text_in_pixels(inst.ds):
            raise WsideidError(f"instance {inst.index} ({inst.role}) declares burned-in text or a label in its "
                               "pixels (BurnedInAnnotation/SpecimenLabelInImage YES): pixel data is copied, "
                               "not cleaned, so it is refused")
        images.append(ImageDecision(info, action, rule))
    inv = Inventory("dicom", src.path, [i.image for i in images], [d.field for d in decisions], container=data,
                    notes=[f"{len(src.instances)} instance(s)" + (f", {src.skipped} non-DICOM file(s) not copied"
                                                                   if src.skipped else "")]
                    + [f"the folder holds {src.other_slides} other slide(s), each its own output" for _ in
                       range(bool(src.other_slides))]
                    + [f"not written, belongs to no slide: {o}" for o in src.orphans])
    options = {"dates": policy.mode, "strict": strict, "keep_macro": keep_overview, "new_id_given": bool(new_id),
               "profile_sources": profile.sources, "dicom_options": sorted(rules.columns), "label": label,
               "tool": f"wsideid {__version__}"}
    return Plan(inv, decisions, images, profile.name, profile.sha256, options, profile=profile)


_NAME_SPLIT = re.compile(r"[\s^=,;\\]+")
_ID_SPLIT = re.compile(r"[^0-9A-Za-z\u00c0-\uffff]+")


def _vr_of(tag: int | None) -> str:
    try:
        from pydicom.datadict import dictionary_VR
        return dictionary_VR(tag) if tag is not None else ""
    except (KeyError, ValueError, TypeError):
        return ""


def removed_needles(decisions: list[Decision], own: set[str]) -> set[str]:
    """What the verifier will search for, as the planner sees it (casefolded): every removed
    TEXT/IDENTIFIER value (4+ characters, each value of a multi-valued one too), the parts of
    removed person names (3+ characters with a letter) and of removed identifiers (4+ with a
    letter, or 5+ digits; UIDs are searched whole). ``own``: values this run writes itself
    (the research ID, pseudonyms), which stand in the output by design."""
    out: set[str] = set()
    for d in decisions:
        if not d.removes_value or d.field.kind not in (ValueKind.TEXT, ValueKind.IDENTIFIER):
            continue
        v = d.field.text().strip().strip("\0").strip()
        if not v or (v.startswith("<") and v.endswith(">")):
            continue
        vr = _vr_of(d.field.tag)
        words = {v} | {x.strip() for x in v.split("\\")}
        if vr == "PN":
            words |= {p for p in _NAME_SPLIT.split(v) if len(p) >= 3 and any(c.isalpha() for c in p)}
        if d.field.kind == ValueKind.IDENTIFIER and vr != "UI":
            for p in _ID_SPLIT.split(v):
                letters = any(c.isalpha() for c in p)
                if (letters and len(p) >= 4) or (not letters and len(p) >= 5):
                    words.add(p)
        out |= {w.casefold() for w in words if len(w) >= 3}
    return out - {o.casefold() for o in own if o}


def _withdraw_kept_text_holding_removed_values(planner: _Planner) -> None:
    """No exemptions: a kept text (pattern-matched, cleaned descriptor, code meaning) that
    holds a removed value, or a part of a removed name or identifier, is itself withdrawn
    (neutral value; a code meaning becomes "SCHEME VALUE"), until nothing changes: a
    withdrawn value is a removed value too. "PixelMed" removed as an InstitutionName takes
    the Manufacturer "PixelMed" with it, and then the model "com.pixelmed..."."""
    d = planner.d
    own = {d.new_id or ""} | set(d.specimens.mapping.values() if d.specimens else ())
    by_path = {x.field.path: x for x in planner.decisions}
    while True:
        needles = removed_needles(planner.decisions, own)
        changed = False
        for path, (elem, inst, item) in list(planner.kept_text.items()):
            dec = by_path.get(path)
            if dec is None or dec.action == REMOVE:
                continue
            text = str(dec.new_value if dec.new_value is not None else dec.field.value).casefold()
            if not any(n in text for n in needles):
                continue
            del planner.kept_text[path]
            planner.decisions.remove(dec)
            changed = True
            if item is not None:  # a code meaning: Type 1, the code itself stays
                code = str(d.ops.get(path.rsplit("/", 1)[0] + "/CodeValue", Op("keep")).value or
                           item.get("CodeValue", "") or "")
                scheme = str(item.get("CodingSchemeDesignator", "") or "")
                new = f"{scheme} {code}".strip()[:64] or "code"
                planner._set(path, elem, inst, "set", new, REPLACE, new,
                             dec.rule + " (held a removed value: replaced)", vkind=ValueKind.TEXT)
            else:
                planner._neutral(path, elem, inst, dec.rule + " (held a removed value)")
            by_path[path] = planner.decisions[-1]
        if not changed:
            return
