"""The lower-case entries of the English word lists, sorted once, looked up by bisection.

Why: the name test asks, for each capitalised word on a label, whether it is a lower-case
entry of the installed English lists (:func:`.name_lexicon.is_english`). Searching the
lists' 4.3 MB of text cost ~2 ms a word, and reading them (affix flags stripped) ~15 ms
a process: 0.02-0.03 s of a `wsideid scan` of a label (issue 14: <= 0.6 CPU s). The
entries such a word can match (``[a-z]+`` lines) are kept sorted in the user cache
(:mod:`.user_cache`, ~2 MB, made once per set of list files); a lookup is ~20 string
compares. The answer is the same as the text search's (tested on every entry).
"""
from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import Callable, Sequence

from .user_cache import folder, write_atomic

CACHE_ENV = "WSIDEID_LEXICON_CACHE"  # a folder for the index, or "off"
_FORMAT = "1"  # bumped when what is kept changes
_WORD = re.compile(rb"[a-z]+")


def sorted_words(text: bytes) -> bytes:
    """The ``[a-z]+`` lines of ``text`` (entries one a line), unique, sorted, each line
    ending in a newline and the whole starting with one."""
    words = sorted({w for w in text.split(b"\n") if _WORD.fullmatch(w)})
    return b"\n" + b"\n".join(words) + b"\n" if words else b"\n"


def contains(index: bytes, word: bytes) -> bool:
    """Is ``word`` a line of ``index`` (:func:`sorted_words`' form)? Bisection on the bytes:
    each step takes the line around the middle and keeps the half that may hold ``word``."""
    lo, hi = 1, len(index)  # [lo, hi): whole lines, lo at a line's start
    while lo < hi:
        mid = (lo + hi) // 2
        start = index.rfind(b"\n", lo - 1, mid) + 1  # index[lo - 1] is a newline
        end = index.find(b"\n", start)
        line = index[start:end]
        if line == word:
            return True
        if line < word:
            lo = end + 1
        else:
            hi = start
    return False


def cache_file(sources: Sequence[Path]) -> str | None:
    """Where the index of ``sources`` is kept (named by each file's path, size and mtime), or None."""
    where = folder(CACHE_ENV, "lexicon")
    if where is None:
        return None
    ident = [_FORMAT]
    for p in sources:
        try:
            st = p.stat()
        except OSError:
            return None
        ident.append(f"{os.path.realpath(p)}\0{st.st_size}\0{st.st_mtime_ns}")
    return os.path.join(where, f"english.{hashlib.sha256(chr(1).join(ident).encode()).hexdigest()[:32]}.words")


def load(sources: Sequence[Path], text: Callable[[], bytes]) -> bytes | None:
    """The index of ``sources``: the cached copy, else made from ``text()`` (their entries,
    one a line) and saved for the next process. None when there is no cache to keep it in
    (``off``, or a folder that cannot be written): making it costs ~0.2 s, more than the
    caller's search of ``text()`` in one process, so that caller searches the text."""
    if not sources:
        return b"\n"
    path = cache_file(sources)
    if path is None:
        return None
    try:
        with open(path, "rb") as fh:
            data = fh.read()
        if data.startswith(b"\n") and data.endswith(b"\n"):
            return data
    except OSError:
        pass
    try:
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        if not os.access(os.path.dirname(path), os.W_OK):
            return None
    except OSError:
        return None
    data = sorted_words(text())
    return data if write_atomic(path, data) else None
