"""Manifest reading: columns, per-row validation with row/column messages, path safety, Excel."""

from __future__ import annotations

from pathlib import Path

import pytest

from wsideid.batch.manifest import ManifestError, parse_manifest


def _write(tmp: Path, text: str) -> Path:
    (tmp / "slides").mkdir(exist_ok=True)
    for n in ("a.svs", "b.svs", "c.ndpi"):
        (tmp / "slides" / n).write_bytes(b"II*\0")
    p = tmp / "m.csv"
    p.write_text(text)
    return p


def test_good_rows_parse_with_options(tmp_path):
    m = _write(tmp_path, "source,new_id,subject,identifiers,keep_macro,regions,dates,detect\n"
                         "slides/a.svs,R-1,P1,S24-1; DOE JANE ,yes,\"0,0,10,10;5,5,1,1\",shift,off\n"
                         "slides/b.svs,R-2,,,,,,\n")
    rows, problems = parse_manifest(m)
    assert problems == []
    a, b = rows
    assert a.source == str(tmp_path / "slides" / "a.svs") and a.new_id == "R-1"
    assert a.identifiers == ["S24-1", "DOE JANE"] and a.keep_macro and a.dates == "shift" and a.detect == "off"
    assert a.regions == [(0, 0, 10, 10), (5, 5, 1, 1)]
    assert b.dates is None and not b.keep_macro and b.identifiers == []


@pytest.mark.parametrize("source,new_id,column,words", [
    ("../slides/a.svs", "R-1", "source", "'..'"),
    ("slides/../../etc/passwd", "R-1", "source", "'..'"),
    ("/etc/passwd", "R-1", "source", "absolute"),
    ("slides/missing.svs", "R-1", "source", "no such file"),
    ("slides/a.svs", "../R-1", "new_id", "separators"),
    ("slides/a.svs", "sub/R-1", "new_id", "separators"),
    ("slides/a.svs", "..", "new_id", "'..'"),
    ("slides/a.svs", ".hidden", "new_id", "'.'"),
    ("slides/a.svs", "R 1", "new_id", "letters"),
    ("slides/a.svs", "NUL", "new_id", "reserved"),
])
def test_unsafe_rows_are_refused_with_row_and_column(tmp_path, source, new_id, column, words):
    m = _write(tmp_path, f"source,new_id\nslides/b.svs,OK-1\n{source},{new_id}\n")
    rows, problems = parse_manifest(m)
    assert [r.new_id for r in rows] == ["OK-1"]  # the rest of the batch goes on
    msgs = [str(p) for p in problems]
    assert any(p.row == 3 and p.column == column and words in p.message for p in problems), msgs
    assert all(msg.startswith("row 3, column ") for msg in msgs)


def test_rows_without_new_id_wait_for_a_pseudonym(tmp_path):
    """An empty new_id (or no column) is no longer refused: the runner names the row by a keyed
    pseudonym, never by its source (tests/test_names.py runs such a batch)."""
    rows, problems = parse_manifest(_write(tmp_path, "source,new_id\nslides/a.svs,\nslides/b.svs,R-2\n"))
    assert problems == [] and [r.new_id for r in rows] == ["", "R-2"]
    rows, problems = parse_manifest(_write(tmp_path, "source\nslides/a.svs\nslides/b.svs\n"))
    assert problems == [] and [r.new_id for r in rows] == ["", ""]


def test_bad_values_and_duplicates(tmp_path):
    m = _write(tmp_path, "source,new_id,keep_macro,dates,macro,regions\n"
                         "slides/a.svs,R-1,maybe,,,\n"
                         "slides/b.svs,R-2,,shift,,\n"
                         "slides/c.ndpi,R-3,,,melt,\n"
                         "slides/c.ndpi,R-4,,,,1;2\n"
                         "slides/c.ndpi,R-5,,,,\n"
                         "slides/c.ndpi,r-5,,,,\n")
    rows, problems = parse_manifest(m)
    got = {(p.row, p.column) for p in problems}
    assert {(2, "keep_macro"), (3, "subject"), (4, "macro"), (5, "regions"), (7, "new_id"), (7, "source")} <= got
    assert [r.new_id for r in rows] == ["R-5"]


def test_whole_manifest_errors(tmp_path):
    with pytest.raises(ManifestError, match="unknown column.*identifers"):
        parse_manifest(_write(tmp_path, "source,new_id,identifers\n"))
    with pytest.raises(ManifestError, match="no 'source' column"):
        parse_manifest(_write(tmp_path, "new_id,subject\n"))
    with pytest.raises(ManifestError, match="empty"):
        parse_manifest(_write(tmp_path, ""))


def test_excel_manifest_and_semicolon_csv(tmp_path):
    openpyxl = pytest.importorskip("openpyxl")
    _write(tmp_path, "")
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["Source", "New ID", "Identifiers", "Keep Macro"])
    ws.append(["slides/a.svs", "R-1", "S24-1", True])
    ws.append(["slides/b.svs", 12345, None, None])  # numbers arrive as floats in some writers
    ws.append([None, None, None, None])
    ws.append(["../x.svs", "R-3", None, None])
    wb.save(tmp_path / "m.xlsx")
    rows, problems = parse_manifest(tmp_path / "m.xlsx")
    assert [(r.new_id, r.keep_macro) for r in rows] == [("R-1", True), ("12345", False)]
    assert [(p.row, p.column) for p in problems] == [(5, "source")]
    (tmp_path / "s.csv").write_text("source;new_id\nslides/a.svs;R-1\n")
    rows, _ = parse_manifest(tmp_path / "s.csv")
    assert rows[0].new_id == "R-1"


def test_mpp_column_and_to_dicom_rows(tmp_path):
    """mpp: a positive number of microns per pixel, else the row is refused naming the column;
    refused too without --to-dicom (nothing would use it), and a DICOM row under --to-dicom."""
    from wsideid.batch.manifest import parse_manifest
    from wsideid.batch.runner import BatchOptions, refuse_options
    from wsideid.synth import make_dicom, make_svs
    make_svs(str(tmp_path / "a.svs"))
    for name in "bce":  # copies: links to one file are one slide (refused as "same slide as row 2")
        (tmp_path / f"{name}.svs").write_bytes((tmp_path / "a.svs").read_bytes())
    make_dicom(str(tmp_path / "d"))
    m = tmp_path / "m.csv"
    m.write_text("source,new_id,mpp\na.svs,R1,0.25\nb.svs,R2,-1\nc.svs,R3,nan\ne.svs,R4,abc\nd,R5,\n")
    rows, problems = parse_manifest(str(m))
    assert [r.mpp for r in rows] == [0.25, None] and [str(p) for p in problems] == [
        f"row {n}, column mpp: microns per pixel: a number above 0 and at most 1000" for n in (3, 4, 5)]
    refused: list = []
    assert [r.new_id for r in refuse_options(rows, refused, BatchOptions())] == ["R5"]
    assert [str(p) for p in refused] == ["row 2, column mpp: is used by `wsideid run --to-dicom` only"]
    refused = []
    assert [r.new_id for r in refuse_options(rows, refused, BatchOptions(to_dicom=True))] == ["R1"]
    assert [p.column for p in refused] == ["source"] and "DICOM already" in refused[0].message


def test_progress_is_one_line_a_slide_when_stderr_is_no_terminal(capsys):
    """A batch logged to a file or a pipe gets '[k/n] ID: status' lines, not a progress bar
    redrawn with carriage returns (tqdm only on a terminal)."""
    from wsideid.batch.runner import _progress
    tick = _progress(2, True)  # pytest's captured stderr is no terminal
    tick({"new_id": "R-1", "status": "published"})
    tick({"new_id": "R-2", "status": "flagged"})
    assert capsys.readouterr().err == "[1/2] R-1: published\n[2/2] R-2: flagged\n"
