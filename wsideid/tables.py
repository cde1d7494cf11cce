"""Tables as spreadsheets export them (the manifest, the QC decisions): the bytes decoded, the
delimiter found, the cells normalised, before any column is read.

Excel writes CSV differently by locale and menu entry: ``;`` where the
decimal mark is a comma, tabs and UTF-16 for "Unicode text", a BOM for "CSV
UTF-8", a ``sep=;`` first line when told the delimiter, the Windows code
page for plain "CSV". All but the last are read as meant; the last is
refused naming its line, since guessing a code page could turn a file name
or an identifier into another one.
"""

from __future__ import annotations

import csv
import io
import re
import unicodedata
from typing import Collection

from .cells import unescape
from .errors import WsideidError

_BOMS = ((b"\xef\xbb\xbf", "utf-8-sig"), (b"\xff\xfe", "utf-16"), (b"\xfe\xff", "utf-16"))
DELIMITERS = (",", ";", "\t")


def decode_text(data: bytes, what: str) -> str:
    """UTF-8 (with or without Excel's BOM) or UTF-16 with its BOM; else one line naming the first
    line of ``what`` (e.g. "the manifest") that is not UTF-8."""
    for bom, codec in _BOMS:
        if data.startswith(bom):
            try:
                return data.decode(codec)
            except UnicodeDecodeError:
                raise WsideidError(f"{what} starts as {codec.upper()} text but is not") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise WsideidError(f"line {line} of {what} is not UTF-8 text (Excel's plain CSV uses the Windows"
                           " code page): save it as \"CSV UTF-8\", \"Unicode text\" or .xlsx") from None


def split_table(text: str, known: Collection[str], required: str) -> list[list[str]]:
    """Rows of cells (spreadsheet escapes undone, NFC-normalised: macOS and Windows spell é apart).

    The delimiter is Excel's ``sep=`` first line if there is one, else the one of comma, semicolon
    and tab that splits the header into the ``required`` column and most ``known`` ones: the
    csv sniffer, reading the rows too, took a ';' file whose regions hold commas for a comma file.
    """
    lines = text.splitlines(keepends=True)
    delimiter = None
    if lines and re.fullmatch(r"sep=.", lines[0].strip("\r\n\ufeff")):
        delimiter = lines.pop(0).strip("\r\n\ufeff")[-1]
    header = next((ln for ln in lines if ln.strip()), "")
    if delimiter is None:
        def score(d: str) -> int:
            names = [c.strip().strip('"').lower().replace(" ", "_") for c in header.split(d)]
            return sum(n in known for n in names) if required in names else -1
        delimiter = max(DELIMITERS, key=lambda d: (score(d), header.count(d)))
    try:
        return [[unicodedata.normalize("NFC", unescape(c)) for c in row]
                for row in csv.reader(io.StringIO("".join(lines), newline=""), delimiter=delimiter)]
    except csv.Error as exc:
        raise WsideidError(f"not a valid CSV file: {exc}") from None
