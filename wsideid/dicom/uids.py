"""Keyed, deterministic UID replacement.

``2.25.<int>`` (PS3.5 B.2, a UUID-derived root needing no registration) with
the integer taken from HMAC-SHA256(secret, original UID) truncated to 128
bits: the same original maps to the same new UID in every instance of a
slide and in every later run with the same secret, so references still
resolve and later submissions stay linkable; without the secret the mapping
can neither be reversed nor recomputed from a list of candidate UIDs.
"""

from __future__ import annotations

from ..errors import ProfileError
from ..keys import Secret

import re
from functools import lru_cache

DOMAIN = "dicom-uid"
REGISTRY_ROOT = "1.2.840.10008."  # UIDs defined by the standard itself (SOP classes, transfer syntaxes...)
# Context group UIDs (PS3.16 Annex A: 1.2.840.10008.6.1.<n>, about 1,400 of them), absent from
# pydicom's registry table: an index of 1-4 digits holds no identifier.
_CONTEXT_GROUP = re.compile(r"1\.2\.840\.10008\.6\.1\.[1-9]\d{0,3}")
# The OIDs of the coding schemes a CodingSchemeUID may name are the profile's
# (``[dicom_options] coding_scheme_uids`` in formats/dicom.toml, where a privacy officer reads them):
# public identifiers of terminologies, no one's data. A profile that lists none keys them all.
SCHEME_UIDS_KEY = "coding_scheme_uids"
_UID = re.compile(r"(0|[1-9]\d*)(\.(0|[1-9]\d*))+")


def scheme_uids(dicom_options: dict) -> frozenset[str]:
    """The coding-scheme OIDs a profile keeps unchanged, checked: each a UID of at most 64
    characters, none under the registry's root (those are the registry's to vouch for)."""
    listed = dicom_options.get(SCHEME_UIDS_KEY, [])
    if not isinstance(listed, list):
        raise ProfileError(f"dicom profile {SCHEME_UIDS_KEY}: must be a list of UIDs")
    for uid in listed:
        if not isinstance(uid, str) or len(uid) > 64 or not _UID.fullmatch(uid) or uid.startswith(REGISTRY_ROOT):
            raise ProfileError(f"dicom profile {SCHEME_UIDS_KEY}: {uid!r} is not a coding scheme's OID")
    return frozenset(listed)


@lru_cache(maxsize=1)
def _registry() -> frozenset[str]:
    from pydicom._uid_dict import UID_dictionary
    return frozenset(UID_dictionary)


def is_registry_uid(uid: str) -> bool:
    """A UID the standard defines (SOP class, transfer syntax, coding scheme, context group...).

    Why the registry itself and not its root: any text of digits may follow ``1.2.840.10008.``,
    and a UID read as the standard's was kept as it was and exempt from verification, so
    "1.2.840.10008.19870317.4477139" published a birth date and a record number (round 6 of
    the planted-PHI audit). A UID under the root that the registry does not list is replaced
    by a keyed one like any other."""
    return uid in _registry() or bool(_CONTEXT_GROUP.fullmatch(uid))


def is_standard_uid(uid: str, schemes: frozenset[str]) -> bool:
    """A UID kept as it is: the registry's, or one of ``schemes``, the coding-scheme OIDs the
    profile lists (CodingSchemeUID)."""
    return is_registry_uid(uid) or uid in schemes


class UidMapper:
    """Maps original UIDs to keyed ones and remembers what it mapped (for verification)."""

    def __init__(self, secret: Secret, schemes: frozenset[str] = frozenset()):
        self._secret = secret
        self.schemes = schemes  # the profile's coding-scheme OIDs, kept unchanged (none: all keyed)
        self.mapped: dict[str, str] = {}
        self.retained: set[str] = set()  # kept as they are under Retain UIDs (113110)

    def is_standard(self, uid: str) -> bool:
        return is_standard_uid(uid, self.schemes)

    def retain(self, uid: str) -> None:
        self.retained.add(uid.strip().rstrip("\0"))

    def new_uid(self, uid: str) -> str:
        uid = uid.strip().rstrip("\0")
        if not uid or self.is_standard(uid):
            return uid
        new = self.mapped.get(uid)
        if new is None:
            new = f"2.25.{self._secret.integer(DOMAIN, uid, bits=128)}"
            self.mapped[uid] = new
        return new

    def pseudonym(self, domain: str, value: str, prefix: str = "WSIDEID-") -> str:
        """A short keyed stand-in for an identifier when no research ID was given."""
        return prefix + self._secret.digest(domain, value.strip()).hex()[:12].upper()
