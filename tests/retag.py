"""Copies of a fixture with one tag rewritten (tifffile in place on the copy): hostile and
odd variants of the format fixtures, the pixels as they were."""

from __future__ import annotations

import shutil
from typing import Callable

import tifffile


def copy_retagged(src, dst, tag: str, change: Callable[[str], str | bytes], page: int = 0):
    """``dst``: ``src`` with tag ``tag`` of page ``page`` set to ``change(old value)``."""
    shutil.copy(src, dst)
    with tifffile.TiffFile(dst, mode="r+b") as t:
        p = t.pages[page]
        new = change(p.tags[tag].value)
        p.tags[tag].overwrite(new.encode() if isinstance(new, str) and not new.isascii() else new)
    return dst
