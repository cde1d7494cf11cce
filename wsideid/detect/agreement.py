"""Two engines read one line: a name flag resting on one engine's misreading.

Why: tesseract and PP-OCR misread different letters. A line one engine reads
"Clinical Triql" or "Mucin Histochemis" (a crop cut short) is a name
candidate under the fail-closed name test, because "Triql" is in no word
list; the other engine read the same line "Clinical Trial", which no rule
flags. Such a flag is a misreading, not a person.

The excuse is narrow, and it fails closed for everything the lists know:

- only a flag of the capitalised-pair rule (two capitalised words, two words
  in capitals); a "Name:"/"Pt:" field, ``LAST, FIRST`` and a listed name
  alone are never excused here;
- no word of the flagged span is a known given name or surname (census,
  bundled lists): "Gotdon Sweet" stays flagged whatever the other engine
  read, since Sweet is a name;
- every word in no list must be found in the other engine's reading of the
  same line, letters only, within one edit, exactly when it has 3 letters or
  fewer ("triql" in "clinicaltrial", "histochemis" in "mucinhistochemistry");
- where it is found, the other reading holds only listed words that are
  nobody's name: label vocabulary, DICOM stain words, English (a word OCR
  split, "Saff ron", judged joined). A reading that holds the letters in a
  word in no list proves nothing: "HANDIWE WH IT LOCK" raises no flag only
  because its words are short, and it is the name THANDIWE WHITLOCK;
- and the other reading, sure in its engine's terms, raises no name flag at
  all.

The fail-open risk (docs/threat-model.md): a name in no list that one engine
reads right and the other misreads as label words within one letter, on the
same line, passes.
"""
from __future__ import annotations

import re
from typing import Sequence

from .findings import PhiFlag
from .name_lexicon import InContext, WordKind, judge, word_kind
from .phi_text import best_substring_match, classify_text

PAIR_RULES = ("two capitalised words", "two words in capitals")
# Kinds a word of the other reading must have where the misread word is found:
# in a list and nobody's name (not excused by a guess from its context).
LISTED = frozenset({WordKind.LABEL, WordKind.STAIN, WordKind.ENGLISH})
_WORD = re.compile(r"[A-Za-z]+")
_TAIL = re.compile(r" ([a-z]{1,8})\b")


def unlisted_words(text: str, flag: PhiFlag) -> list[str]:
    """The words in no list a pair flag rests on; empty when the flag may not
    be excused by another reading (another rule, or a known name in it)."""
    if flag.category != "name" or not flag.reason.startswith(PAIR_RULES):
        return []
    kinds = [(w, word_kind(w)) for w in _WORD.findall(text[flag.span[0]:flag.span[1]])]
    if any(k is WordKind.NAME for _, k in kinds):
        return []
    return [w for w, k in kinds if k is WordKind.UNKNOWN]


def explained(text: str, flag: PhiFlag, others: Sequence[str], identifiers: Sequence[str] = ()) -> bool:
    """Does another engine's reading of the same line show ``flag`` on ``text``
    to be a misreading? ``others``: that engine's sure readings of the line."""
    words = unlisted_words(text, flag)
    if not words:
        return False
    for other in others:
        hay, listed = _letters(other)
        if not hay or any(f.category == "name" for f in classify_text(other, identifiers)):
            continue
        if all(_found_in_listed(w.lower(), hay, listed) for w in words):
            return True
    return False


def _found_in_listed(word: str, hay: str, listed: list[bool]) -> bool:
    edits, a, b = best_substring_match(word, hay)
    return b > a and edits <= (1 if len(word) > 3 else 0) and all(listed[a:b])


def _letters(text: str) -> tuple[str, list[bool]]:
    """The letters of ``text`` (lower case) and, per letter, whether its word
    is listed and nobody's name (a word with its OCR-split tail judged joined,
    the tail with it)."""
    words = list(_WORD.finditer(text))
    ok = [False] * len(words)
    for i, m in enumerate(words):
        tail = _TAIL.match(text, m.end())
        nxt = words[i + 1].group(0) if i + 1 < len(words) else ""
        kind = judge(InContext(m.group(0), tail.group(1) if tail else "", nxt))
        if kind in LISTED:
            ok[i] = True
            if tail and word_kind(m.group(0)) is WordKind.UNKNOWN and i + 1 < len(words):
                ok[i + 1] = True  # the split-off tail belongs to the joined word
    hay = "".join(m.group(0).lower() for m in words)
    listed = [flag for m, flag in zip(words, ok) for _ in m.group(0)]
    return hay, listed
