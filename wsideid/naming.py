"""Output names: a research ID, a keyed pseudonym, or a checked input name.

Lab file and folder names often hold accession numbers and patient names,
so an output never takes its name from the input unless the user asks
(``--keep-name``) and the PHI text classifier passes that name. The name is
the research ID when one is given (``--new-id`` or the manifest's
``new_id``), else a pseudonym: ``WSI-`` and 16 hex digits of an HMAC, under
the run's secret, of the input's content fingerprint. The same slide thus
gets the same name in every run with the same secret (a rerun finds its
earlier output), a moved or renamed copy too, and without the secret the
name cannot be tied back to the slide. With no secret the key is random per
run and so is the name (the CLI says so).

The mapping from input path to output name identifies, so it goes to the
review folder (``name-map.csv``), never to OUTDIR.
"""

from __future__ import annotations

import csv
import enum
import hashlib
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from .errors import WsideidError
from .keys import Secret

if TYPE_CHECKING:  # options.py imports this module (OutputName)
    from .options import DeidOptions

PSEUDONYM_PREFIX = "WSI-"
NAME_MAP = "name-map.csv"
NAME_MAP_COLUMNS = ["time", "input", "output_name", "named_by"]
_FINGERPRINT_SPAN = 1 << 20  # bytes read from the start and from the end of each file
_ID_SAFE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*(?:\.[A-Za-z0-9_-]+)*$")  # no "..", no trailing dot
_RESERVED = re.compile(r"^(con|prn|aux|nul|com[0-9]|lpt[0-9])(\..*)?$", re.IGNORECASE)
_KEEPABLE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._-]{0,99}$")


class NamingError(WsideidError):
    """The output name cannot be used (invalid research ID, refused --keep-name)."""


class NamedBy(enum.Enum):
    """Where an output's name came from; recorded in the lab-side mapping."""

    RESEARCH_ID = "research-id"
    PSEUDONYM = "pseudonym"
    KEPT = "kept-name"


@dataclass(frozen=True)
class OutputName:
    """The chosen name (without extension), why, and the path the lab knows the slide by.

    ``record`` is False for the intermediate steps of ``--to-dicom``, whose
    names never reach OUTDIR; the outer step records the mapping.
    """

    stem: str
    named_by: NamedBy
    origin: str
    record: bool = True


def research_id_problem(value: str | None) -> str | None:
    """Why ``value`` cannot be a research ID (it becomes a file or folder name), or None.

    The one rule for --new-id and the manifest's new_id column alike, so
    that a name one door refuses (a trailing dot that Windows drops, a
    device name) cannot come in through the other.
    """
    if value is None or not value.strip():
        return "is empty"
    if value != value.strip():
        return "has leading or trailing white space"
    if len(value) > 64:
        return "is longer than 64 characters"
    if "/" in value or "\\" in value or os.sep in value:
        return "may not contain path separators"
    if ".." in value or value.startswith("."):
        return "may not start with '.' or contain '..'"
    if not _ID_SAFE.match(value):
        return "may hold only letters, digits, '-', '_' and single dots, starting with a letter or digit"
    if _RESERVED.match(value):
        return "is a reserved device name (CON, NUL, COM1, ...)"
    if _holds_date(value):
        return "holds a date (day, month and year): it is published as the output's name and in its metadata"
    return None


def _holds_date(value: str) -> bool:
    """Whether a research ID spells a calendar date with a four-digit year, as the date parser reads
    one ("CASE-1987-03-17", "R-19870317"). Why: the ID is exempt from the verifier's search (it is
    what the output is meant to hold), so a birth or scan date used as one was published as the
    name, the PatientID and the generated label. Two-digit years ("S01-03-99") read as dates too
    often to refuse."""
    from .dates import kept_text_dates
    return any(re.search(r"\d{4}", value[s:e]) for s, e in kept_text_dates(value))


def check_research_id(new_id: str | None) -> str:
    """A research ID fit to be a file name; refuses (exit 2) instead of falling back to the input name."""
    why = research_id_problem(new_id)
    if why is not None or new_id is None:
        raise NamingError(f"--new-id {why}")
    return new_id


def _variants(stem: str) -> list[str]:
    """The stem as the classifier should see it: raw, separators as spaces, and in title case.

    Title case matters: the classifier's name rules look for capitalised
    words, and file names are often all lower case (``jane_doe``).
    """
    spaced = re.sub(r"[._\-]+", " ", stem).strip()
    return list(dict.fromkeys([stem, spaced, spaced.upper(), spaced.title()]))


def check_keep_name(input_path: str, identifiers: Sequence[str] = ()) -> str:
    """The input's base name (without extension), if the PHI text classifier passes it; else refuse.

    The user's own identifiers for the slide (``--identifier``, the
    manifest's ``identifiers``) count too: a lab's user name or accession in
    the file name is PHI whatever the classifier's general rules say.
    """
    from .detect.phi_text import classify_text

    base = os.path.basename(os.fspath(input_path).rstrip(os.sep))
    stem = base if os.path.isdir(input_path) else Path(base).stem
    if not _KEEPABLE.match(stem) or _RESERVED.match(stem):
        raise NamingError("--keep-name refused: the input name holds characters other than letters, digits,"
                         " space, '.', '_' and '-' (use --new-id)")
    cats = sorted({f.category for v in _variants(stem) for f in classify_text(v, list(identifiers))})
    if cats:
        raise NamingError(f"--keep-name refused: the input name looks like it holds PHI ({', '.join(cats)});"
                         " use --new-id or leave the name to the pseudonym")
    return stem


def fingerprint(paths: Sequence[str]) -> bytes:
    """The input's identity from its content: size, first and last MiB of each file.

    Reading a few MiB (not the whole slide) keeps naming cheap; the header
    and first tiles differ between any two scans. File names play no part,
    so a renamed or moved copy keeps its pseudonym. A DICOM folder's files
    are taken in digest order, so their names do not matter either.
    """
    if not paths:
        raise WsideidError("the input holds no file to name the output by")
    digests = []
    for p in paths:
        h = hashlib.sha256()
        try:
            with open(p, "rb") as fh:
                size = os.fstat(fh.fileno()).st_size
                h.update(size.to_bytes(8, "big"))
                h.update(fh.read(_FINGERPRINT_SPAN))
                if size > 2 * _FINGERPRINT_SPAN:
                    fh.seek(size - _FINGERPRINT_SPAN)
                    h.update(fh.read(_FINGERPRINT_SPAN))
        except OSError as exc:
            raise WsideidError(f"cannot read the input to name it: {exc.strerror or type(exc).__name__}") from None
        digests.append(h.digest())
    return b"".join(sorted(digests))


def content_files(path: str) -> list[str]:
    """The files a pseudonym is taken from: the file itself, or a folder's DICOM files.

    The same set the DICOM pipeline reads (non-recursive), so a folder gets
    the same name from ``deid`` and from ``run``.
    """
    if not os.path.isdir(path):
        return [path]
    from .sniff import is_dicom_file
    names = sorted(n for n in os.listdir(path) if os.path.isfile(os.path.join(path, n)))
    return [os.path.join(path, n) for n in names if is_dicom_file(os.path.join(path, n))]


def pseudonym(secret: Secret, identity: bytes) -> str:
    return PSEUDONYM_PREFIX + secret.digest("output-name", identity).hex()[:16].upper()


def choose(input_path: str, content: Sequence[str], new_id: str | None, keep_name: bool,
           secret: Secret, identifiers: Sequence[str] = ()) -> OutputName:
    """The output name for ``input_path``; ``content`` lists the files its fingerprint is taken from."""
    origin = os.path.abspath(input_path)
    if new_id is not None:
        if keep_name:
            raise NamingError("--keep-name and --new-id exclude each other")
        return OutputName(check_research_id(new_id), NamedBy.RESEARCH_ID, origin)
    if keep_name:
        return OutputName(check_keep_name(input_path, identifiers), NamedBy.KEPT, origin)
    return OutputName(pseudonym(secret, fingerprint(content)), NamedBy.PSEUDONYM, origin)


def check_name_options(options: DeidOptions) -> None:
    """Refuse a bad ``--new-id``, or ``--keep-name`` with ``--new-id``, before any work (exit 2, no fallback)."""
    if options.new_id is not None:
        check_research_id(options.new_id)
        if options.keep_name:
            raise NamingError("--keep-name and --new-id exclude each other")


def name_for(input_path: str, content: Sequence[str], options: DeidOptions) -> OutputName:
    """The name a caller already chose (``options.naming``), else :func:`choose` under ``options.secret``."""
    if options.naming is not None:
        return options.naming
    if options.secret is None:  # pragma: no cover - the pipelines set it first
        raise WsideidError("internal: no secret to name the output with")
    return choose(input_path, content, options.new_id, options.keep_name, options.secret, options.identifiers)


def check_review_dir(outdir: str, review: str) -> None:
    """The review folder holds PHI (the name mapping, lab records, flagged slides): it may be
    neither OUTDIR nor inside it, nor the reverse."""
    a, b = os.path.realpath(outdir), os.path.realpath(review)
    if a == b or b.startswith(a + os.sep) or a.startswith(b + os.sep):
        raise WsideidError("the review folder must be outside OUTDIR (it holds PHI) and OUTDIR outside it")


def review_dir(outdir: str, review: str | None) -> str:
    """The review folder: ``--review-dir`` or the sibling ``<OUTDIR>-review``."""
    return review or os.path.abspath(outdir).rstrip(os.sep) + "-review"


def make_review_dir(review: str, sub: str | None = None) -> str:
    """Create the review folder owner-only (it holds PHI), and ``sub`` inside it; returns the latter.

    ``sub`` may not be a symbolic link (see wsideid.safefs); the review folder itself was passed by the user.
    """
    from .safefs import makedirs
    os.makedirs(review, mode=0o700, exist_ok=True)
    return makedirs(review, os.path.join(review, sub)) if sub else review


def append_name_map(review: str, name: OutputName, output_name: str) -> str:
    """Append one mapping row (input path -> output name) to ``<review>/name-map.csv``.

    One ``write`` of one line on an O_APPEND|O_NOFOLLOW descriptor, so batch
    workers appending at once do not interleave their rows, and a link
    planted at the name is refused. Cells are escaped against spreadsheet
    formulas (wsideid.cells).
    """
    from .cells import csv_line
    from .safefs import append
    make_review_dir(review)
    path = os.path.join(review, NAME_MAP)
    # a file name that is not UTF-8 (bytes the file system allows) is written with its odd bytes as \xNN
    origin = os.fsencode(name.origin).decode("utf-8", "backslashreplace")
    line = csv_line([time.strftime("%Y-%m-%dT%H:%M:%S%z"), origin, output_name, name.named_by.value])
    try:
        append(path, line.encode("utf-8"), (",".join(NAME_MAP_COLUMNS) + "\n").encode(), root=review)
    except OSError as exc:
        raise WsideidError(f"cannot write the name mapping to the review folder: {exc.strerror}") from None
    return path


def read_name_map(review: str) -> list[dict[str, str]]:
    """Rows of ``name-map.csv`` (empty if there is none)."""
    try:
        from .cells import unescape_row
        with open(os.path.join(review, NAME_MAP), newline="", encoding="utf-8") as fh:
            return [unescape_row(r) for r in csv.DictReader(fh)]
    except OSError:
        return []
