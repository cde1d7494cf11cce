"""The QC page of issue 16, in the real headless Chromium (Playwright, the system chromium):

- a flagged slide's kept macro, read from the published output, carries the detector
  boxes where the detectors found text and a barcode: the box colour is checked in
  the screenshot's pixels at the position computed from the record's box and the
  rendered image, and the pixels there are not red once the overlay is hidden;
- every manifest row is on the page (refused rows with their reason and source);
- keyboard review (next/previous, approve/reject/undo) with live counts, and the
  exported CSV (formula-like cells escaped) is what ``review apply`` acts on.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest

from test_batch_e2e import CORRUPT, MACRO_SVS, TIFF, make_batch_sources
from test_report_page import CHROMIUM, _launch
from wsideid.batch.records import load_record
from wsideid.batch.runner import BatchOptions, run_batch
from wsideid.report.decisions import apply_decisions, read_decisions
from wsideid.report.page import render, write_report
from wsideid.synth import ACCESSION

SHOTS = Path(tempfile.gettempdir()) / "wsideid-test-artifacts"


def _batch(tmp: Path) -> tuple[Path, Path]:
    """Two flagged slides (kept macro shows the accession, its name and a DataMatrix), one clean,
    one corrupt, one row whose source is missing and one with a bad value: six manifest rows."""
    make_batch_sources(tmp)
    shutil.copyfile(tmp / "slides" / MACRO_SVS, tmp / "slides" / "second.svs")
    m = tmp / "manifest.csv"
    with open(m, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["source", "new_id", "keep_macro"])
        w.writerows([(f"slides/{MACRO_SVS}", "R-1", "yes"), ("slides/second.svs", "R-2", "yes"),
                     (f"slides/{TIFF}", "R-3", ""), (f"slides/{CORRUPT}", "R-4", ""),
                     ("slides/MISSING_DOE.svs", "R-5", ""), (f"slides/{TIFF}x", "R-6", "maybe")])
    res = run_batch(str(m), str(tmp / "out"), BatchOptions(detect="all", ocr=True, progress=False))
    assert res.counts == {"flagged": 2, "published": 1, "failed": 1, "refused": 2}, res.counts
    return tmp / "out", tmp / "out-review"


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    return _batch(tmp_path_factory.mktemp("qc"))


def test_page_accounts_for_every_manifest_row(batch):
    out, review = batch
    page = render(str(review))
    assert page.count('<section class="slide"') == 6
    assert 'id="slide-row-6"' in page and 'id="slide-row-7"' in page  # the refused rows, by manifest row
    assert "MISSING_DOE.svs" in page and "no such file under the manifest" in page
    assert "column keep_macro: expected yes or no" in page
    assert "lies past the end of the file" in page or "failed" in page  # the corrupt slide's reason
    # the kept images come from the published output, for the clean slide too
    rec = load_record(str(review), "R-3")
    assert any(im["kind"] == "kept" and im["stage"] == "output" for im in rec["images"])
    flagged = load_record(str(review), "R-1")
    kept_macro = [im for im in flagged["images"] if im["kind"] == "kept" and im["role"] == "macro"]
    assert kept_macro and (review / "images" / kept_macro[0]["file"]).exists()
    # no refused row's source in OUTDIR (the summary there names the column only)
    assert "MISSING_DOE" not in (out / "batch-summary.csv").read_text()


def _kept_macro_boxes(review: Path) -> tuple[list[tuple[float, float, float, float, bool]], tuple[int, int]]:
    rec = load_record(str(review), "R-1")
    im = next(im for im in rec["images"] if im["kind"] == "kept" and im["role"] == "macro")
    scan = next(sc for sc in rec["scans"] if sc["stage"] == "output" and sc["index"] == im["index"])
    boxes = [(*map(float, f["box"]), bool(f["phi"])) for f in scan["findings"]]
    return boxes, tuple(scan["size"])


def _red(px) -> bool:
    return px[0] > 200 and px[1] < 80 and px[2] < 80


def test_boxes_drawn_where_the_detector_found_text(batch):
    if CHROMIUM is None:
        pytest.skip("chromium not installed (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    from PIL import Image
    out, review = batch
    boxes, (sw, sh) = _kept_macro_boxes(review)
    phi_boxes = [b for b in boxes if b[4]]
    assert phi_boxes, "the kept macro shows the accession: the detectors must flag it"
    page_path = Path(write_report(str(review)))
    SHOTS.mkdir(exist_ok=True)
    with sync_api.sync_playwright() as p:
        ctx, profile = _launch(p)
        try:
            page = ctx.new_page()
            page.set_viewport_size({"width": 1300, "height": 1000})
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(page_path.as_uri())
            img = page.locator("#slide-R-1 figure.kept[data-role=macro] img")
            img.scroll_into_view_if_needed()
            assert img.evaluate("e => e.naturalWidth") > 0
            r = img.evaluate("e => { const b = e.getBoundingClientRect(); return [b.left, b.top, b.width, b.height]; }")
            shot = Image.open(io.BytesIO(page.screenshot())).convert("RGB")
            shot.save(SHOTS / "qc-boxes.png")
            page.keyboard.press("b")  # hide the overlay: the same pixels now show the image itself
            bare = Image.open(io.BytesIO(page.screenshot())).convert("RGB")
            assert errors == []
        finally:
            ctx.close()
            shutil.rmtree(profile, ignore_errors=True)
    # image content box (1px border) -> scale from the scanned image's pixels to the screen
    left, top, sx, sy = r[0] + 1, r[1] + 1, (r[2] - 2) / sw, (r[3] - 2) / sh
    for x0, y0, x1, y1, _phi in phi_boxes:
        ex0, ey0, ex1, ey1 = left + x0 * sx, top + y0 * sy, left + x1 * sx, top + y1 * sy
        ym, xm = int((ey0 + ey1) / 2), int((ex0 + ex1) / 2)
        edges = [(int(round(ex0)), ym), (int(round(ex1)) - 1, ym), (xm, int(round(ey0))), (xm, int(round(ey1)) - 1)]
        for x, y in edges:
            near = [shot.getpixel((x + dx, y + dy)) for dx in (-1, 0, 1) for dy in (-1, 0, 1)]
            assert any(_red(px) for px in near), (x, y, near)
            assert not any(_red(bare.getpixel((x + dx, y + dy))) for dx in (-1, 0, 1) for dy in (-1, 0, 1))
        # and what is inside the box is print: dark pixels on the light label
        crop = np.asarray(bare.crop((int(ex0) + 3, int(ey0) + 3, int(ex1) - 3, int(ey1) - 3)).convert("L"))
        dark = float((crop < 100).mean()) if crop.size else 0.0
        assert dark > 0.05, dark
    # away from any box nothing is red (the overlay is not one big rectangle)
    far = (int(left + (sw - 5) * sx), int(top + (sh - 5) * sy))
    assert not any(_box_contains(b, ((far[0] - left) / sx, (far[1] - top) / sy)) for b in boxes)
    assert not _red(shot.getpixel(far))


def _box_contains(b, pt) -> bool:
    return b[0] - 4 <= pt[0] <= b[2] + 4 and b[1] - 4 <= pt[1] <= b[3] + 4


def test_keyboard_review_counts_and_export(batch, tmp_path):
    if CHROMIUM is None:
        pytest.skip("chromium not installed (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    out, review = batch
    page_path = Path(write_report(str(review)))
    with sync_api.sync_playwright() as p:
        ctx, profile = _launch(p)
        try:
            page = ctx.new_page()
            page.goto(page_path.as_uri())
            assert page.inner_text("#n-undecided") == "2"
            order = page.eval_on_selector_all("section.slide", "els => els.map(e => e.dataset.id)")
            assert order == ["R-1", "R-2", "R-3", "R-4", "row-6", "row-7"]
            page.keyboard.press("j")
            assert page.inner_text("#current") == "R-1"
            page.keyboard.press("a")
            page.keyboard.press("j")
            page.keyboard.press("r")
            assert (page.inner_text("#n-approve"), page.inner_text("#n-reject"), page.inner_text("#n-undecided")) \
                == ("1", "1", "0")
            page.keyboard.press("ArrowDown")  # R-3 is published: a key does nothing there
            page.keyboard.press("a")
            assert page.inner_text("#n-approve") == "1" and page.get_attribute("#slide-R-3", "data-decision") is None
            page.keyboard.press("k")
            page.keyboard.press("u")  # undo on R-2
            assert page.inner_text("#n-undecided") == "1"
            assert not page.is_checked("#slide-R-2 input[value=reject]")
            page.keyboard.press("r")
            assert page.is_checked("#slide-R-2 input[value=reject]")
            page.click("button[data-filter=refused]")
            assert page.locator("section.slide:visible").count() == 2
            page.click("button[data-filter=all]")
            page.fill("#slide-R-2 input.note", '=HYPERLINK("http://x")')
            page.keyboard.press("a")  # typed into the note, not a decision
            assert page.inner_text("#n-approve") == "1"
            page.fill("#reviewer", "-QC Anna")
            with page.expect_download() as dl:
                page.click("#export")
            decisions = tmp_path / "qc-decisions.csv"
            dl.value.save_as(decisions)
        finally:
            ctx.close()
            shutil.rmtree(profile, ignore_errors=True)
    raw = decisions.read_text()
    assert "'-QC Anna" in raw and "'=HYPERLINK" in raw  # formula-like cells escaped in the file
    rows = read_decisions(str(decisions))  # ... and read back exactly
    assert [(r["new_id"], r["decision"], r["reviewer"]) for r in rows] == [
        ("R-1", "approve", "-QC Anna"), ("R-2", "reject", "-QC Anna")]
    assert rows[1]["note"] == '=HYPERLINK("http://x")a'  # the "a" went into the note
    res = apply_decisions(str(decisions), str(out))
    assert [(r.new_id, r.ok) for r in res] == [("R-1", True), ("R-2", True)], [r.message for r in res]
    assert (out / "R-1.svs").exists() and (review / "rejected" / "R-2.svs").exists()
    assert json.loads((out / "R-1.svs.audit.json").read_text())["review"]["reviewer"] == "-QC Anna"
    # the lab record follows the decision (issue 17): status, where the output is now, who decided
    lab1 = json.loads((review / "records" / "R-1.svs.lab.json").read_text())
    lab2 = json.loads((review / "records" / "R-2.svs.lab.json").read_text())
    assert (lab1["status"], lab1["output"], lab1["review"]["reviewer"]) == ("approved", str(out / "R-1.svs"), "-QC Anna")
    assert (lab2["status"], lab2["output"]) == ("rejected", str(review / "rejected" / "R-2.svs"))
    assert lab1["output_name"] == "R-1.svs" and lab1["input"] == load_record(str(review), "R-1")["source"]
    # the page after the decisions: still every row, the decided ones with their state
    page = render(str(review))
    assert page.count('<section class="slide"') == 6 and "approved by -QC Anna" in page
    assert ACCESSION in page
