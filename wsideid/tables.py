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
import errno
import os
import re
import unicodedata
from typing import Collection

from .cells import unescape
from .errors import WsideidError
from .safefs import read_regular

_BOMS = ((b"\xef\xbb\xbf", "utf-8-sig"), (b"\xff\xfe", "utf-16"), (b"\xfe\xff", "utf-16"))
DELIMITERS = (",", ";", "\t")
# Bytes a manifest or decisions file may have: a 100,000-row manifest is ~15 MB. Each was read
# whole: /dev/zero grew a run until memory ran out, and a FIFO with no writer hung it.
MAX_TABLE_BYTES = 32 << 20


def read_table_file(path: str | os.PathLike, what: str, limit: int = MAX_TABLE_BYTES) -> bytes:
    """The bytes of a table (or record) file, which must be a regular file of at most ``limit``
    (``safefs.read_regular``: opened without blocking, checked on the descriptor, read no
    further than one byte past the limit, so a file growing while read stops there)."""
    try:
        data = read_regular(path, limit + 1)
    except OSError as exc:
        if exc.errno in (errno.EINVAL, errno.EISDIR):
            raise WsideidError(f"{what} {os.fsdecode(path)} is not a regular file") from None
        raise WsideidError(f"cannot read {what} {os.fsdecode(path)}: {exc.strerror}") from None
    if len(data) > limit:
        raise WsideidError(f"{what} is larger than {limit >> 20} MB")
    return data


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
