"""Spreadsheet cells that cannot run as formulas (CSV injection, OWASP).

Lab staff open our CSV files in Excel, where a cell starting with ``=``,
``+``, ``-``, ``@``, tab or carriage return is read as a formula. Every CSV
the tool writes passes its cells through :func:`escape`, which puts an
apostrophe in front of such a cell; our own readers (manifests, decision
files, mappings) pass cells through :func:`unescape`, so a research ID like
``-R1`` round-trips. A value that itself starts with an apostrophe followed
by one of those characters is escaped too (another apostrophe), so unescape
is exact.
"""

from __future__ import annotations

import csv
import io
from typing import Any, Iterable, Mapping

TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def escape(value: Any) -> str:
    text = "" if value is None else str(value)
    if text.startswith(TRIGGERS) or (text.startswith("'") and text[1:].startswith(TRIGGERS + ("'",))):
        return "'" + text
    return text


def unescape(text: str) -> str:
    if text.startswith("'") and text[1:].startswith(TRIGGERS + ("'",)):
        return text[1:]
    return text


def unescape_row(row: Mapping[str, Any]) -> dict[str, Any]:
    return {k: unescape(v) if isinstance(v, str) else v for k, v in row.items()}


def csv_line(cells: Iterable[Any]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow([escape(c) for c in cells])
    return buf.getvalue()


def csv_text(rows: Iterable[Mapping[str, Any]], columns: list[str]) -> str:
    """Header and rows as CSV text, every cell escaped (columns missing in a row are empty)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow([escape(c) for c in columns])
    for r in rows:
        w.writerow([escape(r.get(c, "")) for c in columns])
    return buf.getvalue()


def shown(value: str) -> str:
    """A cell as a terminal shows it: control and format characters spelled as escapes. Maps and
    decision files hold what slides and spreadsheets held (a PatientID is the file's text), and an
    escape sequence printed raw retitled or recoloured the user's terminal, or hid the line."""
    import unicodedata
    return "".join(ascii(ch)[1:-1] if unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") else ch for ch in value)
