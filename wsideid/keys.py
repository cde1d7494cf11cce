"""Secrets and keyed derivations (date offsets, UIDs, pseudonyms).

Everything derived from the secret uses HMAC-SHA256 with a domain label, so
the same secret never yields related values in two different uses, and a
value cannot be reversed by hashing a dictionary of candidate inputs without
the secret. The secret itself is never printed, logged or written.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets as _secrets
from pathlib import Path

from .errors import WsideidError

SECRET_ENV = "WSIDEID_SECRET"
MIN_SECRET_BYTES = 16
RANDOM_SOURCE = "random per run"  # Secret.source when no secret was given


class SecretError(WsideidError):
    """The secret is missing, unreadable or too weak."""


class Secret:
    """Opaque key material; repr never reveals it."""

    def __init__(self, key: bytes, source: str):
        if len(key) < MIN_SECRET_BYTES:
            raise SecretError(f"the secret from {source} is shorter than {MIN_SECRET_BYTES} bytes")
        self._key = key
        self.source = source  # "file", "environment" or "random per run"

    def __repr__(self) -> str:
        return f"Secret(<hidden>, source={self.source!r})"

    def digest(self, domain: str, message: str | bytes) -> bytes:
        if isinstance(message, str):
            message = message.encode("utf-8")
        return hmac.new(self._key, domain.encode() + b"\0" + message, hashlib.sha256).digest()

    def integer(self, domain: str, message: str | bytes, bits: int = 128) -> int:
        return int.from_bytes(self.digest(domain, message), "big") >> (256 - bits)


def load_secret(secret_file: str | os.PathLike | None = None, *, allow_random: bool = False) -> Secret | None:
    """The secret from ``--secret-file``, else ``$WSIDEID_SECRET``, else random or None."""
    if secret_file is not None:
        p = Path(secret_file)
        try:
            data = p.read_bytes().strip()
        except OSError as exc:
            raise SecretError(f"cannot read the secret file: {exc.strerror}") from None
        return Secret(data, "file")
    env = os.environ.get(SECRET_ENV)
    if env:
        return Secret(env.encode("utf-8"), "environment")
    if allow_random:
        return Secret(_secrets.token_bytes(32), RANDOM_SOURCE)
    return None


NO_SECRET_WARNING = ("wsideid: warning: no secret (--secret-file or $WSIDEID_SECRET): a random key is used for this run;"
                     " UIDs, pseudonyms and date shifts will not link across runs")
_warned = False


def run_secret(secret_file: str | os.PathLike | None = None, *, once: bool = False) -> Secret:
    """The run's secret, random when none was given, and then warned about on stderr.

    The CLI loads it once per command, so it warns once per run; library
    callers that leave the secret out get the warning once per process
    (``once=True``).
    """
    secret = load_secret(secret_file, allow_random=True)
    assert secret is not None
    if secret.source == RANDOM_SOURCE:
        warn_no_secret(once)
    return secret


def warn_no_secret(once: bool = False) -> None:
    global _warned
    if once and _warned:
        return
    import sys
    print(NO_SECRET_WARNING, file=sys.stderr)
    _warned = True
