"""Where a label names a stain after people ("Gordon & Sweet", "Wade-Fite", "Holzer Glial").

Why a lexicon: a stain named after two people reads exactly like a person
("Gordon Sweet"), and no word list can tell them apart; only the stain's
name as a reference writes it can. The eponyms come from
``lexicon/stain_eponyms.tsv``, a reviewed data file compiled from general
references (the HL7 ObservationMethod stain concepts, histotechnology
references), each entry with its source, apart from the hand-made lists
of label_vocab.py.

What is excused, and only this (phi_text._not_in_stain_names applies it):

- the whole eponym, its names in the source's order, joined by spaces,
  hyphens, "&" or "and", each optionally possessive ("Gordon & Sweet's",
  "WADE-FITE"): never one name of a two-name eponym alone;
- a one-name eponym only when a word its source writes after it follows
  (second column: "Holzer Glial", "Holzer Stain" from HL7's "Holzer
  stain"); a method noun alone never excuses a name ("Mayer Method");
- never on a line that also holds a date, an accession, an MRN, a supplied
  identifier or a labelled field: a patient called Gordon Sweet is written
  with those, a stain is not (the caller checks the line).

The risk (a patient actually named "Gordon Sweet" or "Wade Fite", written
without any other PHI on the line) is written in docs/threat-model.md.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from importlib import resources

EPONYMS_FILE = "stain_eponyms.tsv"
# Between two names of one eponym: space, hyphen, "&", "+", "/" or "and".
_GAP = re.compile(r"(?:\s*[&+/]\s*|\s+AND\s+|[-\s]+)")
_TOKEN = re.compile(r"[A-Z]+(?:'S|')?")


@dataclass(frozen=True)
class Eponym:
    """One entry: the names in order and what the stain is named for."""

    names: tuple[str, ...]
    named_for: frozenset[str]
    source: str


@cache
def eponyms() -> dict[str, tuple[Eponym, ...]]:
    """The entries of the data file by first name (read once, ~50 lines)."""
    text = (resources.files(__package__) / "lexicon" / EPONYMS_FILE).read_text()
    index: dict[str, list[Eponym]] = {}
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        names, named_for, source = line.split("\t")
        entry = Eponym(tuple(names.split()), frozenset(w for w in named_for.split(",") if w != "-"), source)
        index.setdefault(entry.names[0], []).append(entry)
    return {k: tuple(v) for k, v in index.items()}


def _is(token: str, name: str) -> bool:
    """``token`` is ``name`` or its possessive ("SWEET'S", "SWEETS", "PERLS'")."""
    return token in (name, name + "S", name + "'S", name + "'")


def eponym_spans(up: str) -> list[tuple[int, int]]:
    """Spans of the eponyms in upper-case ``up`` (names and any named-for word)."""
    index = eponyms()
    tokens = [t for t in _TOKEN.finditer(up) if t.group(0) != "AND"]  # "Gordon and Sweet": AND is a gap
    spans = []
    for i, first in enumerate(tokens):
        word = first.group(0).rstrip("'")
        candidates = index.get(word, ()) + index.get(word.removesuffix("'S"), ()) + index.get(word.removesuffix("S"), ())
        for entry in candidates:
            run = tokens[i:i + len(entry.names)]
            if len(run) < len(entry.names) or not all(_is(t.group(0), n) for t, n in zip(run, entry.names)):
                continue
            if any(not _GAP.fullmatch(up[a.end():b.start()]) for a, b in zip(run, run[1:])):
                continue
            end = run[-1].end()
            nxt = tokens[i + len(run)] if i + len(run) < len(tokens) else None
            follows = nxt is not None and up[end:nxt.start()].strip(" -") == "" and nxt.group(0) in entry.named_for
            if len(entry.names) == 1 and not follows:
                continue
            spans.append((first.start(), nxt.end() if follows and nxt is not None else end))
    return spans


def source_of(phrase: str) -> str | None:
    """The source of the entry ``phrase`` (names, space-separated) names, or None."""
    names = tuple(phrase.upper().split())
    return next((e.source for e in eponyms().get(names[0], ()) if e.names == names), None) if names else None
