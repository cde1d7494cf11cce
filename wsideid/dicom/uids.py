"""Keyed, deterministic UID replacement.

``2.25.<int>`` (PS3.5 B.2, a UUID-derived root needing no registration) with
the integer taken from HMAC-SHA256(secret, original UID) truncated to 128
bits: the same original maps to the same new UID in every instance of a
slide and in every later run with the same secret, so references still
resolve and later submissions stay linkable; without the secret the mapping
can neither be reversed nor recomputed from a list of candidate UIDs.
"""

from __future__ import annotations

from ..keys import Secret

DOMAIN = "dicom-uid"
REGISTRY_ROOT = "1.2.840.10008."  # UIDs defined by the standard itself (SOP classes, transfer syntaxes...)


def is_registry_uid(uid: str) -> bool:
    return uid.startswith(REGISTRY_ROOT)


class UidMapper:
    """Maps original UIDs to keyed ones and remembers what it mapped (for verification)."""

    def __init__(self, secret: Secret):
        self._secret = secret
        self.mapped: dict[str, str] = {}
        self.retained: set[str] = set()  # kept as they are under Retain UIDs (113110)

    def retain(self, uid: str) -> None:
        self.retained.add(uid.strip().rstrip("\0"))

    def new_uid(self, uid: str) -> str:
        uid = uid.strip().rstrip("\0")
        if not uid or is_registry_uid(uid):
            return uid
        new = self.mapped.get(uid)
        if new is None:
            new = f"2.25.{self._secret.integer(DOMAIN, uid, bits=128)}"
            self.mapped[uid] = new
        return new

    def pseudonym(self, domain: str, value: str, prefix: str = "WSIDEID-") -> str:
        """A short keyed stand-in for an identifier when no research ID was given."""
        return prefix + self._secret.digest(domain, value.strip()).hex()[:12].upper()
