"""What the output says about its own de-identification (PS3.15 E.1.1, CID 7050).

PatientIdentityRemoved, DeidentificationMethod (free text naming the tool,
profile and options), DeidentificationMethodCodeSequence (one CID 7050 code
per profile/option applied) and LongitudinalTemporalInformationModified.
"""

from __future__ import annotations

from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from .. import __version__
from ..dates import KEEP, DatePolicy

# CID 7050 "De-identification Method": code value -> code meaning.
CID_7050 = {
    "113100": "Basic Application Confidentiality Profile",
    "113101": "Clean Pixel Data Option",
    "113102": "Clean Recognizable Visual Features Option",
    "113103": "Clean Graphics Option",
    "113104": "Clean Structured Content Option",
    "113105": "Clean Descriptors Option",
    "113106": "Retain Longitudinal Temporal Information Full Dates Option",
    "113107": "Retain Longitudinal Temporal Information Modified Dates Option",
    "113108": "Retain Patient Characteristics Option",
    "113109": "Retain Device Identity Option",
    "113110": "Retain UIDs Option",
    "113111": "Retain Safe Private Option",
    "113112": "Retain Institution Identity Option",
}
# Profile option column -> its code.
# Clean Structured Content (113104) and Clean Pixel Data (113101) are claimed per instance,
# only where structured content was cleaned or frames were blanked (see method_codes).
COLUMN_CODES = {"clean_desc": "113105", "device": "113109", "safe_private": "113111", "modified_dates": "113107",
                "full_dates": "113106", "uids": "113110", "institution": "113112", "patient_chars": "113108"}


def method_codes(columns: set[str], structured: bool = False, pixels: bool = False) -> list[str]:
    """The CID 7050 codes this instance can honestly claim.

    113100 Basic Profile: always (Table E.1-1 basic column plus the value policy).
    113104 Clean Structured Content: only when structured content (specimen
    preparation steps, acquisition context) was present and kept through its
    allow-lists (codes of standard schemes, identifier items replaced, text
    items removed); with nothing structured in the instance nothing was cleaned.
    113101 Clean Pixel Data: only when regions of this instance's pixel data
    were blanked. One code per selected option column (113105 Clean
    Descriptors, 113106 Full Dates, 113107 Modified Dates, 113108 Patient Characteristics,
    113109 Device Identity, 113110 UIDs, 113111 Safe Private, 113112 Institution Identity).
    """
    codes = ["113100"] + [COLUMN_CODES[c] for c in sorted(columns) if c in COLUMN_CODES]
    if structured:
        codes.append("113104")
    if pixels:
        codes.append("113101")
    return sorted(set(codes))


def method_text(profile_name: str, profile_sha: str, columns: set[str], policy: DatePolicy,
                regions: list[tuple[int, int, int, int]] | None = None,
                label: tuple[int, int, int, int] | None = None) -> list[str]:
    """DeidentificationMethod values (LO: 64 characters each); blanked regions are named
    (level-0 pixels x,y,w,h: the user's own numbers, no PHI)."""
    vals = [f"wsideid {__version__}", f"profile {profile_name}"[:64], f"profile sha256 {profile_sha[:16]}",
            "PS3.15 E.1-1 Basic Profile + WSI rules + value policy", policy.describe()[:64]]
    vals += [f"option {c}" for c in sorted(columns)]
    vals += [f"pixel data blanked: region {x},{y},{w},{h} (level-0 px)"[:64] for x, y, w, h in regions or []]
    if label is not None:
        vals.append("pixel data blanked: label area {},{},{},{} (overview px)".format(*label)[:64])
    return vals


RECORD_KEYWORDS = ("PatientIdentityRemoved", "DeidentificationMethod", "DeidentificationMethodCodeSequence",
                   "LongitudinalTemporalInformationModified")


def add_record(ds: Dataset, profile_name: str, profile_sha: str, columns: set[str], policy: DatePolicy,
               structured: bool = False, regions: list[tuple[int, int, int, int]] | None = None,
               label: tuple[int, int, int, int] | None = None) -> None:
    """``structured``: structured content of this instance was cleaned; ``regions``: the
    regions blanked in this instance's pixel data (empty when none of its frames changed);
    ``label``: the label area blanked on an overview."""
    for kw in RECORD_KEYWORDS:  # new elements: a kept one may be shared with the input's dataset
        if kw in ds:
            del ds[kw]
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = method_text(profile_name, profile_sha, columns, policy, regions, label)
    items = []
    for code in method_codes(columns, structured, bool(regions) or label is not None):
        item = Dataset()
        item.CodeValue = code
        item.CodingSchemeDesignator = "DCM"
        item.CodeMeaning = CID_7050[code]
        items.append(item)
    ds.DeidentificationMethodCodeSequence = Sequence(items)
    ds.LongitudinalTemporalInformationModified = ("MODIFIED" if policy.mode in ("shift", "year") else
                                                  "UNMODIFIED" if policy.mode == KEEP else "REMOVED")
