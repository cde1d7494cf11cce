"""The per-user cache folder for files wsideid derives once and reads in every process.

Two kinds live there: the optimised PP-OCR recogniser (:mod:`.ppocr`) and the sorted
English word index (:mod:`.word_index`). Each is made from installed files only, named by
what it was made from (a changed source gets a new file), written under a temporary name
and renamed, and read only from a folder made private (0700): it is trusted like the
installed package it was derived from.
"""
from __future__ import annotations

import os

OFF_VALUES = ("", "off", "0", "no", "none")


def folder(env: str, sub: str) -> str | None:
    """``$env`` when set ("off" or empty: no cache, None), else
    ``$XDG_CACHE_HOME/wsideid/<sub>`` (``~/.cache/wsideid/<sub>``)."""
    value = os.environ.get(env)
    if value is not None:
        return None if value.strip().lower() in OFF_VALUES else value
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "wsideid", sub)


def write_atomic(path: str, data: bytes) -> bool:
    """``data`` as ``path`` (its folder made 0700 when created): a reader sees a whole file
    or none. False when the folder cannot be written (the caller goes on without)."""
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        with open(tmp, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
        return True
    except OSError:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        return False
