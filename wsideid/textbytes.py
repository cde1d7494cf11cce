"""How a text may stand in a file's bytes: the encodings searched, and every case variant and
Unicode normal form of a character.

Shared by the needle scan (``needles.Scanner``) and the date scan (``date_scan``), so that a
needle spelled out and a date found by its shape are looked for in exactly the same byte forms.
"""

from __future__ import annotations

import functools
import unicodedata

ENCODINGS = ("utf-8", "latin-1", "utf-16-le", "utf-16-be")


def char_variants(c: str) -> list[str]:
    vs = {c, c.lower(), c.upper(), c.title(), c.casefold()}
    return sorted(x for x in vs if len(x) == 1)


def forms(text: str) -> list[str]:
    """The text, its casefolded form, and their NFC and NFD forms ("Straße", "strasse", "Jose\u0301")."""
    out = {text, text.casefold()}
    out |= {unicodedata.normalize(n, f) for f in list(out) for n in ("NFC", "NFD")}
    return sorted(out)


@functools.lru_cache(maxsize=1 << 14)
def char_alts(c: str, enc: str) -> tuple[bytes, ...]:
    """The bytes of every case variant of ``c`` in ``enc``, ASCII-lower-cased as a scanned haystack is."""
    return tuple(sorted({v.encode(enc).lower() for v in char_variants(c) if encodable(v, enc)}))


def encodable(text: str, enc: str) -> bool:
    try:
        text.encode(enc)
        return True
    except UnicodeEncodeError:
        return False
