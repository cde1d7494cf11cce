"""Read and validate a batch manifest (CSV or Excel).

A manifest is the lab's list of slides: where each one is and which
research ID it becomes. Every row is validated on its own so that one bad
row is refused with a message naming its row and column while the rest of
the batch goes on. A problem with the file as a whole (unreadable, no
``source`` column, an unknown column that is probably a typo) refuses the
whole manifest, because guessing would silently drop options.

Path safety: ``source`` is relative to the source root (the manifest's
folder unless told otherwise) and may not climb out of it with ``..`` or be
absolute; ``new_id`` becomes a file name, so it may not hold separators or
dots that make it a path. A row without ``new_id`` is named by a keyed
pseudonym (given by the runner, which holds the secret), never by its
source's name. Symlinks inside the source root are followed: a
lab links its slide store in on purpose.
"""

from __future__ import annotations

import os
import re
import unicodedata
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..cells import unescape
from ..errors import WsideidError
from ..tables import decode_text, read_table_file, split_table

# column -> what it means (the docs list each: tests/test_docs.py::test_every_manifest_column_is_documented)
COLUMNS: dict[str, str] = {
    "source": "slide file (or DICOM folder), relative to the manifest's folder; required",
    "series_uid": "a DICOM folder holding several slides: the Series Instance UID of this row's slide (its"
                  " VOLUME series) or its series-<12 hex> token from a message; each slide is its own row and output. Empty: the folder must hold one slide",
    "new_id": "research ID: the output file name and the replacement for identifiers; unique. Empty (or no"
              " column): a keyed pseudonym, WSI-<16 hex>, never the source's name",
    "subject": "patient key: slides of one subject get the same date shift (needed for dates=shift)",
    "identifiers": "known original identifiers (accession, slide id, patient name), ';'-separated; "
                   "searched for in labels, metadata and output, never written to OUTDIR",
    "dates": "remove | year | shift (default: the run's --dates)",
    "keep_macro": "yes/no: keep the macro image (it is scanned, a visible label sends the slide to review)",
    "macro": "remove | keep | blank-label (overrides keep_macro)",
    "label": "remove | replace (a generated label showing new_id as text and DataMatrix)",
    "regions": "level-0 regions to blank losslessly, 'X,Y,W,H' separated by ';'",
    "detect": "off | residual | all (default: the run's --detect)",
    "mpp": "with `wsideid run --to-dicom`: the slide's level-0 microns per pixel, for a source that does not"
           " record it (e.g. 0.25); a source that records it must agree",
    "notes": "free text for the lab; ignored",
}
REQUIRED = ("source",)
_TRUE = {"yes", "y", "true", "1", "x"}
_FALSE = {"no", "n", "false", "0", ""}
_UID = re.compile(r"^[0-9]+(\.[0-9]+)+$")
SERIES_TOKEN = re.compile(r"series-[0-9a-f]{12}")  # dicom.slides.series_token: a slide named without its UID  # as written by scanners (leading zeros seen in the wild)


class ManifestError(WsideidError):
    """The manifest as a whole cannot be used."""


@dataclass(frozen=True)
class RowProblem:
    """Why one row was refused; ``row`` is the spreadsheet row number (header = 1)."""

    row: int
    column: str
    message: str
    source: str = field(default="", compare=False)  # the row's source cell (PHI: review folder and QC page only)
    new_id: str = field(default="", compare=False)  # the row's research ID when it had a valid one (summaries name it)

    def __str__(self) -> str:
        return f"row {self.row}, column {self.column}: {self.message}"


@dataclass
class ManifestRow:
    """One validated slide of the batch."""

    row: int
    source: str  # absolute path
    new_id: str  # empty until the runner gives the row its pseudonym
    subject: str | None = None
    identifiers: list[str] = field(default_factory=list)
    dates: str | None = None
    keep_macro: bool = False
    macro: str | None = None
    label: str | None = None
    regions: list[tuple[int, int, int, int]] = field(default_factory=list)
    detect: str | None = None
    source_rel: str = ""
    named_by: str = "research-id"  # or "pseudonym" (no new_id in the manifest)
    series: str | None = None  # one slide of a DICOM folder (its pyramid's Series Instance UID)
    mpp: float | None = None  # --to-dicom: level-0 microns per pixel for a source that lacks them


def _read_bytes(path: Path) -> bytes:
    try:
        return read_table_file(path, "the manifest")
    except WsideidError as exc:
        raise ManifestError(str(exc)) from None


def _read_csv(path: Path) -> list[list[str]]:
    data = _read_bytes(path)
    try:
        return split_table(decode_text(data, "the manifest"), COLUMNS, "source")
    except WsideidError as exc:
        raise ManifestError(str(exc)) from None


def _read_xlsx(path: Path) -> list[list[str]]:
    try:
        import openpyxl
    except ImportError:  # pragma: no cover - listed as a dependency
        raise ManifestError("Excel manifests need openpyxl (pip install openpyxl)") from None
    import io
    data = _read_bytes(path)  # a regular file of bounded size, read once: openpyxl gets the bytes
    try:
        wb = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as exc:  # noqa: BLE001 - openpyxl raises many types for a bad file
        raise ManifestError(f"cannot read the Excel manifest ({type(exc).__name__})") from None
    try:
        ws = wb.worksheets[0]
        rows, cells = [], 0
        for row in ws.iter_rows(values_only=True):
            cells += len(row)
            if cells > MAX_XLSX_CELLS:  # a compressed sheet of millions of empty cells (a zip bomb)
                raise ManifestError(f"the Excel manifest holds more than {MAX_XLSX_CELLS} cells")
            rows.append(["" if v is None else unicodedata.normalize("NFC", unescape(_cell(v))) for v in row])
        return rows
    except ManifestError:
        raise
    except Exception as exc:  # noqa: BLE001 - the sheet is parsed as it is read
        raise ManifestError(f"cannot read the Excel manifest ({type(exc).__name__})") from None
    finally:
        wb.close()


MAX_XLSX_CELLS = 2_000_000  # 100,000 rows of 20 columns


def _cell(v) -> str:
    if isinstance(v, float) and v.is_integer():
        return str(int(v))  # Excel stores 12345 as 12345.0
    return str(v)


def read_table(path: str | os.PathLike) -> list[list[str]]:
    p = Path(path)
    if p.suffix.lower() in (".xlsx", ".xlsm"):
        return _read_xlsx(p)
    if p.suffix.lower() == ".xls":
        raise ManifestError("old .xls workbooks are not supported: save as .xlsx or CSV")
    return _read_csv(p)


def _header(cells: list[str]) -> list[str]:
    names = [c.strip().lower().replace(" ", "_") for c in cells]
    unknown = [n for n in names if n and n not in COLUMNS]
    if unknown:
        raise ManifestError(f"unknown column(s) {', '.join(map(repr, unknown))}; known: {', '.join(COLUMNS)}")
    for req in REQUIRED:
        if req not in names:
            raise ManifestError(f"the manifest has no {req!r} column (first row must be the header)")
    dup = {n for n in names if n and names.count(n) > 1}
    if dup:
        raise ManifestError(f"column(s) given twice: {', '.join(sorted(dup))}")
    return names


def _bool(value: str, row: int, column: str, problems: list[RowProblem]) -> bool:
    v = value.strip().lower()
    if v in _TRUE:
        return True
    if v not in _FALSE:
        problems.append(RowProblem(row, column, "expected yes or no"))
    return False


def _choice(value: str, allowed: tuple[str, ...], row: int, column: str, problems: list[RowProblem]) -> str | None:
    v = value.strip().lower()
    if not v:
        return None
    if v not in allowed:
        problems.append(RowProblem(row, column, f"expected one of {', '.join(allowed)}"))
        return None
    return v


MAX_MPP = 1000.0  # microns per pixel: a macro photograph is ~10-50; more is a typo or a unit mix-up


def _mpp(value: str, row: int, problems: list[RowProblem]) -> float | None:
    value = value.strip()
    if not value:
        return None
    try:
        mpp = float(value)
    except ValueError:
        mpp = float("nan")
    if not 0 < mpp <= MAX_MPP:  # also NaN and inf
        problems.append(RowProblem(row, "mpp", f"microns per pixel: a number above 0 and at most {MAX_MPP:g}"))
        return None
    return mpp


def _regions(value: str, row: int, problems: list[RowProblem]) -> list[tuple[int, int, int, int]]:
    out = []
    for part in filter(None, (p.strip() for p in value.split(";"))):
        nums = part.replace(" ", "").split(",")
        try:
            x, y, w, h = (int(n) for n in nums)
        except ValueError:
            problems.append(RowProblem(row, "regions", "each region is X,Y,W,H in whole level-0 pixels"))
            return []
        if x < 0 or y < 0 or w <= 0 or h <= 0:
            problems.append(RowProblem(row, "regions", "regions need X,Y >= 0 and W,H > 0"))
            return []
        out.append((x, y, w, h))
    return out


def check_research_id(value: str) -> str | None:
    """Why ``value`` cannot be a research ID, or None: naming's one rule (wsideid.naming)."""
    from ..naming import research_id_problem
    return research_id_problem(value)


def resolve_source(value: str, root: Path) -> tuple[Path | None, str | None]:
    """The slide path under ``root``, or why it is refused (absolute, escapes, missing)."""
    rel = value.strip().replace("\\", "/")
    if not rel:
        return None, "is empty"
    if rel.startswith("/") or re.match(r"^[A-Za-z]:", rel) or os.path.isabs(rel):
        return None, "must be relative to the manifest's folder (absolute paths are refused)"
    norm = os.path.normpath(rel)
    if norm == ".." or norm.startswith("../") or "/../" in f"/{rel}/":
        return None, "may not use '..' to leave the manifest's folder"
    path = root / norm
    if not path.exists():  # the cell is NFC; a file copied from macOS may be named in NFD
        nfd = root / unicodedata.normalize("NFD", norm)
        if not nfd.exists():
            return None, "no such file under the manifest's folder"
        path = nfd
    return path, None


def _slide_key(path: str, series: str | None) -> str:
    """The same slide under two names (``./a.svs``, a link, a hard link, é spelt NFC and NFD) is the same
    file: two rows of it would publish one slide twice under two research IDs."""
    try:
        st = os.stat(path)
        ident = f"{st.st_dev}:{st.st_ino}"
    except OSError:
        ident = os.path.normpath(path)
    return ident + "\0" + (series or "")


def parse_manifest(path: str | os.PathLike, source_root: str | os.PathLike | None = None
                   ) -> tuple[list[ManifestRow], list[RowProblem]]:
    """Validated rows and the refused ones; raises ManifestError if the file is unusable."""
    table = read_table(path)
    while table and not any(c.strip() for c in table[0]):
        table.pop(0)
    if not table:
        raise ManifestError("the manifest is empty")
    names = _header(table[0])
    if not any(any(str(c).strip() for c in cells) for cells in table[1:]):
        raise ManifestError("the manifest has a header but no slide rows")
    root = Path(source_root) if source_root else Path(path).resolve().parent
    rows: list[ManifestRow] = []
    problems: list[RowProblem] = []
    seen_ids: dict[str, int] = {}
    seen_src: dict[str, int] = {}
    for n, cells in enumerate(table[1:], start=2):
        if not any(str(c).strip() for c in cells):
            continue
        if len(cells) > len(names) and any(c.strip() for c in cells[len(names):]):
            problems.append(RowProblem(n, "-", f"{len(cells)} cells but the header has {len(names)} columns"))
            continue
        rec = {name: (cells[i].strip() if i < len(cells) else "") for i, name in enumerate(names) if name}
        mine: list[RowProblem] = []
        src, why = resolve_source(rec["source"], root)
        if why:
            mine.append(RowProblem(n, "source", why))
        new_id = rec.get("new_id", "")
        why = check_research_id(new_id) if new_id else None
        if why:
            mine.append(RowProblem(n, "new_id", why))
        elif new_id and new_id.lower() in seen_ids:
            mine.append(RowProblem(n, "new_id", f"duplicate of row {seen_ids[new_id.lower()]}"))
        series = rec.get("series_uid", "") or None
        if series and (not _UID.match(series) or len(series) > 64) and not SERIES_TOKEN.fullmatch(series):
            mine.append(RowProblem(n, "series_uid", "is not a UID (digits and dots, at most 64 characters)"
                                                    " or a series-<12 hex> token"))
        if src is not None:
            key = _slide_key(str(src), series)
            if key in seen_src:
                mine.append(RowProblem(n, "source", f"same slide as row {seen_src[key]}"))
        dates = _choice(rec.get("dates", ""), ("remove", "year", "shift"), n, "dates", mine)
        subject = rec.get("subject") or None
        if dates == "shift" and not subject:
            mine.append(RowProblem(n, "subject", "dates=shift needs a subject (the patient key)"))
        row = ManifestRow(
            row=n, source=str(src) if src else "", new_id=new_id, subject=subject,
            identifiers=[i.strip() for i in rec.get("identifiers", "").split(";") if i.strip()],
            dates=dates, keep_macro=_bool(rec.get("keep_macro", ""), n, "keep_macro", mine),
            macro=_choice(rec.get("macro", ""), ("remove", "keep", "blank-label"), n, "macro", mine),
            label=_choice(rec.get("label", ""), ("remove", "replace"), n, "label", mine),
            regions=_regions(rec.get("regions", ""), n, mine),
            detect=_choice(rec.get("detect", ""), ("off", "residual", "all"), n, "detect", mine),
            source_rel=rec["source"], series=series, mpp=_mpp(rec.get("mpp", ""), n, mine),
        )
        if mine:
            shown = new_id if new_id and not check_research_id(new_id) else ""
            problems.extend(replace(p, source=rec["source"], new_id=shown) for p in mine)
            continue
        if new_id:
            seen_ids[new_id.lower()] = n
        seen_src[_slide_key(row.source, series)] = n
        rows.append(row)
    return rows, problems
