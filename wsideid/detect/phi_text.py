"""Decide which parts of recognised or decoded text look like PHI.

Rules, not a model: labels carry a handful of short tokens, and a reviewer
must be able to read why something was flagged. Categories:

- ``date``: common numeric and month-name spellings, validated as dates;
- ``accession``: letter prefix + digits (S24-12345, SP-24-1234, CBF-1234);
- ``mrn``: runs of >= 6 digits;
- ``name``: "Name:"/"Pt:" fields, bundled given/surnames, and "LAST, FIRST"
  or two capitalised words unless every word is label vocabulary or common
  English that is nobody's name (name_lexicon.py, fails closed);
- ``identifier``: the caller's identifiers for this slide, matched fuzzily
  because OCR confuses O/0, I/1/l, S/5, B/8.

Marker and stain words (CD4, Ki-67, H&E, "Research Use Only") are excluded
explicitly; the benchmark measures the resulting precision.
"""
from __future__ import annotations

import re
from datetime import date
from functools import cache
from typing import Sequence

from . import stain_eponyms
from .findings import PhiFlag
from .label_vocab import LABEL_WORDS, STAIN_PHRASES
from .name_lexicon import InContext, dicom_stain_phrases, is_name, name_reason, pair_name_reason
from .names import GIVEN_NAMES, SURNAMES

_MONTHS = {
    "JAN": 1, "FEB": 2, "MAR": 3, "APR": 4, "MAY": 5, "JUN": 6,
    "JUL": 7, "AUG": 8, "SEP": 9, "SEPT": 9, "OCT": 10, "NOV": 11, "DEC": 12,
}  # fmt: skip
_MON = r"(?P<mon>JAN(?:UARY)?|FEB(?:RUARY)?|MAR(?:CH)?|APR(?:IL)?|MAY|JUNE?|JULY?|AUG(?:UST)?|SEPT?(?:EMBER)?|OCT(?:OBER)?|NOV(?:EMBER)?|DEC(?:EMBER)?)"
_B = r"(?<![A-Z0-9])"  # token start
_E = r"(?![A-Z0-9])"  # token end

# Each pattern names its groups so one validator checks them all.
_DATE_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    # A space either side of a separator is OCR's ("2025 -10.18"), mostly on handwriting.
    ("yyyy-mm-dd", re.compile(_B + r"(?P<y>(?:19|20)\d\d) ?[-/.] ?(?P<a>\d{1,2}) ?[-/.] ?(?P<b>\d{1,2})" + _E)),
    ("dd/mm/yy(yy)", re.compile(_B + r"(?P<a>\d{1,2}) ?(?P<s>[-/.]) ?(?P<b>\d{1,2}) ?(?P=s) ?(?P<y>\d{4}|\d{2})" + _E)),
    ("dd-MON-yyyy", re.compile(_B + r"(?P<d>\d{1,2})[-/. ]?" + _MON + r"[-/., ]{0,2}(?P<y>\d{4}|\d{2})" + _E)),
    ("MON dd yyyy", re.compile(_B + _MON + r"\.?[- ]?(?P<d>\d{1,2})(?:ST|ND|RD|TH)?,?[- ]\s*(?P<y>\d{4}|\d{2})" + _E)),
    ("yyyymmdd", re.compile(_B + r"(?P<y>(?:19|20)\d\d)(?P<a>0[1-9]|1[0-2])(?P<b>0[1-9]|[12]\d|3[01])" + _E)),
    ("MON yyyy", re.compile(_B + _MON + r"[-/ ]?(?P<y>(?:19|20)\d\d)" + _E)),
]

# Letter prefix (1-4), optional 2-digit year, separator, serial; optional
# block/part suffix. Separator-less forms need >= 4 digits so that markers
# like CD138 or S100 are not taken for accessions.
_ACCESSION = re.compile(
    _B
    + r"[A-Z]{1,4}"
    + r"(?:[-/ ]?\d{2}[-/]\d{3,}"  # S24-12345, SP-24-1234
    + r"|[-/]\d{3,}"  # CBF-1234
    + r"|\d{2} \d{4,}"  # SP24 12345
    + r"|\d{4,})"  # S2412345, ELB0246
    + r"(?:[-/ ][A-Z]?\d{1,2}[A-Z]?)?"  # block/part suffix: -A1, /2
    + _E
)
_MRN = re.compile(r"(?<![0-9])\d{6,}(?![0-9])")
# The same run split by OCR at a gap between handwritten digits: "7 7649 635".
_SPACED_DIGITS = re.compile(r"(?<![0-9])\d{1,10}(?: {1,2}\d{1,10})+(?![0-9])")
_FIELD = re.compile(
    r"\b(?P<k>NAME|PT|PATIENT|PAT|PATIENT NAME|DOB|D\.O\.B\.?|BIRTH|MRN|MR#)\s*[:#]\s*(?P<v>[^\s:;|][^:;|]*)"
)
# "DOB 2 Feb 1999" with no colon: what follows a date-of-birth label is a
# date however OCR split or misread it ("DOB 195 2.07 -06").
_DOB_FIELD = re.compile(r"\b(?P<k>DOB|D\.O\.B\.?)\s+(?P<v>\d[^:;|]*)")
_LAST_FIRST = re.compile(r"\b(?P<l>[A-Z][A-Z'\-]{1,})\s*[,^]\s*(?P<f>[A-Z][A-Z'\-]{1,})\b")

# Never flagged as accession/name: immunostain markers, stains, label words.
_NOT_PHI_TOKENS = LABEL_WORDS
_MARKER = re.compile(r"^(?:CD|CK|MUC|IGG|IGM|IGA|HLA|IL)-?\d{1,3}[A-Z]?$")


def classify_text(text: str, identifiers: Sequence[str] = ()) -> list[PhiFlag]:
    """All PHI flags for ``text``; spans index ``text`` itself.

    Overlapping flags of different categories are all kept: the reviewer
    sees, e.g., that a 8-digit run is both a date and an MRN-like number.
    """
    up = _digit_context_fix(upper_same_length(text))
    flags: list[PhiFlag] = []
    flags += _dates(up)
    flags += _accessions(up)
    flags += _mrns(up, flags)
    flags += _names(up)
    flags += _title_case_pairs(text)
    flags += _identifiers(up, identifiers)
    return _dedupe(_not_in_stain_names(up, flags))


def upper_same_length(text: str) -> str:
    """Upper case without changing length (str.upper turns 'ß' into 'SS'),
    so spans found in the result index the original text. OCR's '$' for
    'S' is undone here too."""
    return "".join(u if len(u := c.upper()) == 1 else c for c in text).replace("$", "S")


def _digit_context_fix(s: str) -> str:
    """Read O/I/l/|/S/B as digits between digits (same length).

    OCR renders 2024-03-05 as 2O24-O3-O5; a look-alike letter with a digit
    or date separator on both sides, in a token with >= 3 digits, is almost
    surely a digit. Leading letters stay (S24-12345 keeps its S prefix).
    """
    table = str.maketrans({"O": "0", "Q": "0", "D": "0", "I": "1", "L": "1", "|": "1", "!": "1", "S": "5", "B": "8", "Z": "2"})
    glue = set("0123456789-/.")

    def fix(m: re.Match[str]) -> str:
        tok = m.group(0)
        if sum(c.isdigit() for c in tok) < 3:
            return tok
        chars = list(tok)
        for i in range(1, len(chars) - 1):
            if chars[i] in "OQDILSBZ|!" and tok[i - 1] in glue and tok[i + 1] in glue and (tok[i - 1].isdigit() or tok[i + 1].isdigit()):
                chars[i] = chars[i].translate(table)
        return "".join(chars)

    return re.sub(r"[A-Z0-9|!./\-]+", fix, s)


def _valid_date(y: int, m: int, d: int) -> bool:
    if y < 100:
        y += 2000 if y < 50 else 1900
    try:
        date(y, m, d)
    except ValueError:
        return False
    return 1800 <= y <= 2100


def _dates(s: str) -> list[PhiFlag]:
    out = []
    for label, pat in _DATE_PATTERNS:
        for m in pat.finditer(s):
            g = m.groupdict()
            y = int(g["y"])
            if g.get("mon"):
                mon = _MONTHS[g["mon"][:4] if g["mon"].startswith("SEPT") else g["mon"][:3]]
                ok = _valid_date(y, mon, int(g["d"])) if g.get("d") else True
            elif label == "yyyy-mm-dd" or label == "yyyymmdd":
                ok = _valid_date(y, int(g["a"]), int(g["b"]))
            else:  # dd/mm or mm/dd: either reading may be meant
                a, b = int(g["a"]), int(g["b"])
                ok = _valid_date(y, b, a) or _valid_date(y, a, b)
            if ok:
                out.append(PhiFlag("date", m.span(), f"date written {label}"))
    return out


def _accessions(s: str) -> list[PhiFlag]:
    out = []
    for m in _ACCESSION.finditer(s):
        tok = m.group(0)
        if tok in _NOT_PHI_TOKENS or _MARKER.match(tok):
            continue
        out.append(PhiFlag("accession", m.span(), "letter prefix followed by a serial number"))
    return out


def _mrns(s: str, earlier: list[PhiFlag]) -> list[PhiFlag]:
    dated = [f.span for f in earlier if f.category == "date"]
    out = []
    for m in _MRN.finditer(s):
        if m.span() in dated:
            continue  # 20240305 is reported as a date, not twice
        out.append(PhiFlag("mrn", m.span(), f"run of {len(m.group(0))} digits"))
    for a, b in _spaced_runs(s, dated, 6):
        groups = s[a:b].split()
        out.append(PhiFlag("mrn", (a, b), f"{sum(map(len, groups))} digits in {len(groups)} groups (a run split by OCR)"))
    return out


def _spaced_runs(s: str, dated: Sequence[tuple[int, int]], min_digits: int) -> list[tuple[int, int]]:
    """Spans of digit runs split at spaces ("7 7649 635"), of at least ``min_digits`` digits
    in two or more groups, one of 3 or more ("1 of 2" is none). A group inside a date is
    left out and the groups on either side of it judged alone: "7 7649 635 2024-03-01"
    is a run beside a date, not a date ("2024 03 05" alone is only a date)."""
    out: list[tuple[int, int]] = []

    def close(groups: list[tuple[int, int]]) -> None:
        lens = [b - a for a, b in groups]
        if len(groups) >= 2 and sum(lens) >= min_digits and max(lens) >= 3:
            out.append((groups[0][0], groups[-1][1]))

    for m in _SPACED_DIGITS.finditer(s):
        run: list[tuple[int, int]] = []
        for g in re.finditer(r"\d+", m.group(0)):
            a, b = m.start() + g.start(), m.start() + g.end()
            if any(x < b and a < y for x, y in dated):
                close(run)
                run = []
            else:
                run.append((a, b))
        close(run)
    return out


def spaced_digit_runs(text: str, min_digits: int) -> list[str]:
    """The digit runs split at spaces in ``text`` (dates left out), as written: an
    identifier's parts for the verifier's search (``needles.id_parts``)."""
    up = _digit_context_fix(upper_same_length(text))
    return [text[a:b] for a, b in _spaced_runs(up, [f.span for f in _dates(up)], min_digits)]


def _names(s: str) -> list[PhiFlag]:
    out = []
    for m in _FIELD.finditer(s):
        key = m.group("k")
        cat = "date" if key.startswith(("DOB", "D.O.B", "BIRTH")) else "mrn" if key in ("MRN", "MR#") else "name"
        out.append(PhiFlag(cat, m.span("v"), f"value of a '{key.title()}:' field"))
    for m in _DOB_FIELD.finditer(s):
        out.append(PhiFlag("date", m.span("v"), f"value of a '{m.group('k').title()}' field"))
    for m in _LAST_FIRST.finditer(s):
        last, first = m.group("l"), m.group("f")
        if "^" in m.group(0):
            if last in _NOT_PHI_TOKENS or first in _NOT_PHI_TOKENS:
                continue
            out.append(PhiFlag("name", m.span(), "LAST^FIRST (DICOM person name)"))
        elif why := name_reason((last.strip("'-"), first.strip("'-"))):
            out.append(PhiFlag("name", m.span(), f"LAST, FIRST: {why}"))
    words = list(re.finditer(r"[A-Z][A-Z'\u2019\-]+", s))
    for i, m in enumerate(words):
        w = m.group(0)
        if w in _NOT_PHI_TOKENS:
            continue
        if w in SURNAMES or w in GIVEN_NAMES:
            kind = "surname" if w in SURNAMES else "given name"
            out.append(PhiFlag("name", _with_neighbour(s, words, i), f"common {kind}"))
    return out


def _with_neighbour(s: str, words: list[re.Match[str]], i: int) -> tuple[int, int]:
    """A known name's span, grown over the word right before or after it.

    A person is written "Michael Patel": when OCR garbles one half
    ("Michae' Patel") the list still knows the other, and the flag should
    cover the whole name, not half of it. Only a neighbour of >= 3 letters
    separated by one space and outside the label vocabulary is taken.
    """
    a, b = words[i].span()
    for j in (i - 1, i + 1):
        if not 0 <= j < len(words):
            continue
        n = words[j]
        gap = s[n.end():a] if j < i else s[b:n.start()]
        if gap == " " and len(n.group(0).strip("'\u2019-")) >= 3 and n.group(0) not in _NOT_PHI_TOKENS:
            a, b = min(a, n.start()), max(b, n.end())
    return a, b


_TITLE_WORD = re.compile(r"\b[A-Z][a-z]{2,}\b")
# The same in capitals ("EZEKIEL DRAGOMIR"); each word has a vowel, so
# OCR's strokes read from tissue ("WWW NNN") are not taken for words.
_CAPS_WORD = re.compile(r"\b[A-Z]*[AEIOUY][A-Z]*\b")


def _adjacent_pairs(text: str, word: re.Pattern[str]) -> list[tuple[re.Match[str], re.Match[str]]]:
    """Neighbouring words of >= 3 letters separated by spaces only (overlapping:
    "Liver Ezekiel Dragomir" gives both pairs)."""
    words = [m for m in word.finditer(text) if len(m.group(0)) >= 3]
    return [(a, b) for a, b in zip(words, words[1:]) if b.start() > a.end() and not text[a.end():b.start()].strip(" ")]


def _title_case_pairs(text: str) -> list[PhiFlag]:
    """'Ezekiel Dragomir', 'KEISHA MAYER': two capitalised words, unless the
    lexicon excuses both (name_lexicon.py: label vocabulary or English
    that is nobody's name; a word in no list only by its context: the
    lower-case fragment OCR split off it, or a method noun after it)."""
    out = []
    for word, what in ((_TITLE_WORD, "two capitalised words"), (_CAPS_WORD, "two words in capitals")):
        for a, b in _adjacent_pairs(text, word):
            second = InContext(b.group(0), _TAIL.match(text, b.end()).group(1) if _TAIL.match(text, b.end()) else "",
                               _next_word(text, b.end()))
            if why := pair_name_reason((InContext(a.group(0), "", b.group(0)), second)):
                out.append(PhiFlag("name", (a.start(), b.end()), f"{what}: {why}"))
    return out


# A lower-case fragment one space after a word: the rest of a word OCR split
# at a gap between handwritten letters ("Saf fron").
_TAIL = re.compile(r" ([a-z]{1,8})\b")
_NEXT = re.compile(r" +([A-Za-z]+)")


def _next_word(text: str, at: int) -> str:
    m = _NEXT.match(text, at)
    return m.group(1) if m else ""


# "Golgi Cox", "Mayer's Hematoxylin": a stain named after people, one word per
# phrase word, separated by spaces or hyphens, an optional possessive.
_STAIN_PHRASE = re.compile(
    _B + "(?:" + "|".join(r"[-\s]+".join(re.escape(w) + "(?:'?S)?" for w in p.split())
                          for p in sorted(STAIN_PHRASES, key=len, reverse=True)) + ")" + _E
)


# Between the words of a DICOM stain name: space, hyphen, "&", "+", "/" or "and"
# ("Hematoxylin and Eosin", "Jenner-Giemsa"); every word of the name must be there.
_PHRASE_GAP = re.compile(r"(?:\s*[&+/]\s*|\s+AND\s+|[-\s]+)")
_PHRASE_TOKEN = re.compile(r"[A-Z0-9]+(?:'S)?")


@cache
def _dicom_stain_index() -> dict[str, list[tuple[tuple[str, ...], bool]]]:
    """The DICOM stain names (generated list, name_lexicon.dicom_stain_phrases)
    by first word: (words, STAIN required after them). A trailing STAIN may be
    left out when two or more words precede it ("Jenner Giemsa"), never when
    one does ("Leishman" alone is a name, "Leishman Stain" a stain)."""
    index: dict[str, list[tuple[tuple[str, ...], bool]]] = {}
    for phrase in dicom_stain_phrases():
        words = tuple(phrase.split())
        core = words[:-1] if words[-1] == "STAIN" else words
        index.setdefault(core[0], []).append((core, len(core) == 1))
    return index


def _same_word(token: str, word: str) -> bool:
    return token == word or token in (word + "S", word + "'S")  # "Albert's", "Gordon & Sweets"


def _dicom_stain_spans(up: str) -> list[tuple[int, int]]:
    """Spans of DICOM stain names that hold a word that is nobody's name (a
    stain word: "Mallory Bleach", "Janus Green B Stain"); "Diamond Black"
    alone is two names and stays a candidate. Word lists are asked only about
    the words of a name found."""
    index = _dicom_stain_index()
    tokens = [m for m in _PHRASE_TOKEN.finditer(up) if m.group(0) != "AND"]
    spans = []
    for i, first in enumerate(tokens):
        for core, needs_stain in index.get(first.group(0).removesuffix("'S"), ()):
            run = tokens[i:i + len(core) + 1]
            if len(run) < len(core) or not all(_same_word(t.group(0), w) for t, w in zip(run, core)):
                continue
            if any(not _PHRASE_GAP.fullmatch(up[a.end():b.start()]) for a, b in zip(run, run[1:len(core)])):
                continue
            end = run[len(core) - 1].end()
            if len(run) > len(core) and run[-1].group(0) == "STAIN" and _PHRASE_GAP.fullmatch(up[end:run[-1].start()]):
                end = run[-1].end()
            elif needs_stain:
                continue
            if any(len(w) >= 3 and w.isalpha() and not is_name(w) for w in re.findall(r"[A-Z]+", up[first.start():end])):
                spans.append((first.start(), end))
    return spans


def _not_in_stain_names(up: str, flags: list[PhiFlag]) -> list[PhiFlag]:
    """Drop ``name`` flags that lie inside a stain named after people.

    The name lists and the capitalised-pair rule cannot tell the surname in
    "Golgi Cox" from a patient's; the phrase can. Other categories stay:
    a date or an accession is PHI wherever it stands.
    """
    if not any(f.category == "name" for f in flags):
        return flags
    spans = [m.span() for m in _STAIN_PHRASE.finditer(up)] + _dicom_stain_spans(up) + _eponym_spans(up, flags)
    if not spans:
        return flags
    return [f for f in flags
            if f.category != "name" or f.reason.startswith("value of a")  # a labelled field is a name whatever it says
            or not any(a <= f.span[0] and f.span[1] <= b for a, b in spans)]


def _eponym_spans(up: str, flags: list[PhiFlag]) -> list[tuple[int, int]]:
    """Spans of stain eponyms (stain_eponyms.py), each only on a line that holds
    no other PHI: no date, accession, MRN or identifier flag and no labelled
    field ("Name: Gordon Sweet"). A patient is written with those; a stain
    is not."""
    spans = stain_eponyms.eponym_spans(up)
    if not spans:
        return []
    other = [f.span for f in flags if f.category != "name" or f.reason.startswith("value of a")]

    def line(at: int) -> tuple[int, int]:
        return up.rfind("\n", 0, at) + 1, (len(up) if (e := up.find("\n", at)) < 0 else e)

    return [(a, b) for a, b in spans
            if not any(line(a)[0] <= x < line(a)[1] or line(a)[0] < y <= line(a)[1] for x, y in other)]


# OCR confusions folded to one symbol before fuzzy matching identifiers.
_FOLD = str.maketrans({"O": "0", "Q": "0", "D": "0", "I": "1", "L": "1", "|": "1", "!": "1", "S": "5", "B": "8", "Z": "2", "G": "6"})


def _fold(s: str) -> tuple[str, list[int]]:
    """Upper-case alphanumerics with confusions folded, and each char's index in ``s``."""
    chars, where = [], []
    for i, c in enumerate(upper_same_length(s)):
        if c.isalnum() or c in "|!":
            chars.append(c.translate(_FOLD))
            where.append(i)
    return "".join(chars), where


def best_substring_match(pattern: str, text: str) -> tuple[int, int, int]:
    """(edits, start, end): the substring of ``text`` nearest to ``pattern``.

    Edit distance with a free start and end in ``text`` (the sliding-window
    search done in one O(len(pattern) * len(text)) table), so an identifier
    split or glued to neighbours by OCR is still found.
    """
    n = len(text)
    prev = [0] * (n + 1)  # row 0: matching may start anywhere
    starts = list(range(n + 1))
    for i, pc in enumerate(pattern, 1):
        cur = [i] + [0] * n
        cur_starts = [0] + [0] * n
        for j in range(1, n + 1):
            best, src = prev[j - 1] + (pc != text[j - 1]), starts[j - 1]
            if prev[j] + 1 < best:
                best, src = prev[j] + 1, starts[j]
            if cur[j - 1] + 1 < best:
                best, src = cur[j - 1] + 1, cur_starts[j - 1]
            cur[j], cur_starts[j] = best, src
        prev, starts = cur, cur_starts
    end = min(range(n + 1), key=lambda j: (prev[j], -j))
    return prev[end], starts[end], end


def allowed_edits(length: int) -> int:
    """Edits tolerated for an identifier of ``length`` folded characters.

    About one in six characters, none for very short IDs: a 4-character ID
    with one edit allowed would match a third of the words on a label.
    """
    return 0 if length < 5 else max(1, length // 6)


def _identifiers(s: str, identifiers: Sequence[str]) -> list[PhiFlag]:
    folded, where = _fold(s)
    out = []
    for idx, ident in enumerate(identifiers, 1):
        pat, _ = _fold(ident)
        if len(pat) < 3 or not folded:
            continue
        edits, a, b = best_substring_match(pat, folded)
        if b > a and edits <= allowed_edits(len(pat)):
            span = (where[a], where[b - 1] + 1)
            how = "exactly" if edits == 0 else f"with {edits} edit(s)"
            out.append(PhiFlag("identifier", span, f"matches supplied identifier #{idx} {how}"))
    return out


def _dedupe(flags: list[PhiFlag]) -> list[PhiFlag]:
    """Drop a flag whose span lies inside another flag of the same category."""
    keep = []
    for f in sorted(flags, key=lambda f: (f.category, f.span[0], -f.span[1])):
        if keep and keep[-1].category == f.category and keep[-1].span[0] <= f.span[0] and f.span[1] <= keep[-1].span[1]:
            continue
        keep.append(f)
    return sorted(keep, key=lambda f: (f.span, f.category))
