"""How a text may stand in a file's bytes: the encodings searched, and every case variant and
Unicode normal form of a character.

Shared by the needle scan (``needles.Scanner``) and the date scan (``date_scan``), so that a
needle spelled out and a date found by its shape are looked for in exactly the same byte forms.
"""

from __future__ import annotations

import functools
import re
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


# --- text spelled in numbers ------------------------------------------------------------------
# Text is looked for as one byte per character (ASCII), and as one character per 2- or 4-byte unit
# with the other bytes zero (UTF-16/UTF-32 in either byte order: SHORT or LONG values 74, 97, ...).
# In that text a token counts when it holds a word of at least 4 letters, or at least 6 letters
# and digits ("4455667", "SS7788", "ZX24-77139", "2024-03-14": separators - . / _ : between).
MIN_LETTERS, MIN_ALNUM = 4, 6
_UNITS = re.compile(rb"(?:[\x20-\x7e]\x00){4,}|(?:\x00[\x20-\x7e]){4,}"
                    rb"|(?:[\x20-\x7e]\x00\x00\x00){4,}|(?:\x00\x00\x00[\x20-\x7e]){4,}")
_TOKEN = re.compile(rb"[A-Za-z0-9]+(?:[-./_:][A-Za-z0-9]+)*")
_WORD = re.compile(rb"[A-Za-z]{%d,}" % MIN_LETTERS)


def _word(w: bytes) -> bool:
    """A run of letters that reads as a word: not in sorted order (a ramp); under 6 letters also
    written as words are (all lower, all upper or capitalised) and holding a vowel, which random
    bytes rarely are (a measured DOUBLE's mantissa spells 4 letters in ~0.5 % of values)."""
    if _sorted(w):
        return False
    if len(w) >= MIN_ALNUM:
        return True
    return (w.islower() or w.isupper() or w.istitle()) and any(c in b"aeiouyAEIOUY" for c in w)


def _tokens(text: bytes) -> list[bytes]:
    """Tokens of ASCII text that read as a word, a number or an identifier (see above)."""
    out = []
    for m in _TOKEN.finditer(text):
        tok = m.group(0)
        alnum = bytes(c for c in tok if chr(c).isalnum())
        parts = [w.group(0) for w in _WORD.finditer(tok)]
        if (len(alnum) >= MIN_ALNUM and not _sorted(alnum)) or any(_word(w) for w in parts):
            out.append(tok)
    return out


# A long array made of a few monotone pieces is a curve, a ramp or a colour map (three ramps), not
# text: its slowly varying high bytes interleave with letters by chance ("JzKwLtMr..." in a gamma
# curve). Only arrays of at least CURVE_MIN values get this benefit (a single DOUBLE is monotone).
CURVE_MIN, CURVE_PIECES = 32, 4


def curve_like(raw: bytes, dtype: str) -> bool:
    """At least CURVE_MIN values in at most CURVE_PIECES monotone pieces (numpy ``dtype``, with its byte order)."""
    import numpy as np
    dt = np.dtype(dtype)
    v = np.frombuffer(raw[: len(raw) // dt.itemsize * dt.itemsize], dt)
    if len(v) < CURVE_MIN:
        return False
    d = np.sign(np.diff(v.astype(np.float64)))
    d = d[d != 0]
    return bool(np.count_nonzero(d[1:] != d[:-1]) + 1 <= CURVE_PIECES)


def words_in_numbers(raw: bytes, dtype: str | None = None) -> list[str]:
    """Words (>= 4 letters) and identifiers (>= 6 letters and digits) that stored numbers spell in their bytes, read
    in the stored byte order and, for values of more than one byte (``dtype``, a numpy type with
    its byte order: "<u2", ">f8"), in the other one too (the same values written by a writer of
    the other byte order spell it there).

    Why: a profile keeps numeric tags as numbers, and numbers are never residual needles; a SHORT
    array 0x614A 0x656E ... is "Jane" to anyone who looks at the bytes. Such a value is text and
    fails its numeric type. Short words (<= 3 letters) are not looked for: random numbers spell
    them too often. Nor are runs whose characters are in order ("AABBCC", "CGJNQUY", "123456"):
    that is a ramp (a grey colour map, the foot of a tone curve, counters), and no name or
    accession is spelled in sorted order; nor long curve-like arrays (``curve_like``). Returns the
    words found (ASCII, NULs dropped)."""
    itemsize = int(dtype[-1]) if dtype else 1
    if dtype and curve_like(raw, dtype):
        return []
    if itemsize <= 1:
        views = [raw]
    else:
        import numpy as np
        n = len(raw) // itemsize * itemsize
        views = [raw, np.frombuffer(raw[:n], f"u{itemsize}").byteswap().tobytes()]
    out: list[str] = []
    for view in views:
        texts = [view] + [m.group(0).replace(b"\0", b"") for m in _UNITS.finditer(view)]
        out += [tok.decode("ascii") for text in texts for tok in _tokens(text)]
    return list(dict.fromkeys(out))


def _sorted(word: bytes) -> bool:
    """Characters in non-decreasing or non-increasing order: a ramp of numbers, not a word."""
    pairs = list(zip(word, word[1:]))
    return all(a <= b for a, b in pairs) or all(a >= b for a, b in pairs)
