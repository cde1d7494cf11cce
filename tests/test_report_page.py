"""The QC page: escaping, content, and a real headless Chromium run (offline load,
filters, approve/reject, CSV export) whose exported CSV ``review apply`` accepts."""

from __future__ import annotations

import csv
import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from test_batch_e2e import MACRO_SVS, TIFF, CORRUPT, make_batch_sources, write_manifest
from wsideid.batch.records import load_record, write_json, record_path
from wsideid.batch.runner import BatchOptions, run_batch
from wsideid.report.decisions import apply_decisions
from wsideid.report.page import highlight, render, write_report
from wsideid.synth import ACCESSION

CHROMIUM = next((p for p in ("/usr/lib/chromium/chromium", "/usr/bin/chromium", "/usr/bin/chromium-browser")
                 if os.path.exists(p)), None)


def _batch(tmp: Path) -> tuple[Path, Path]:
    """Two flagged slides (kept macros with the accession code), one clean, one failed."""
    make_batch_sources(tmp)
    shutil.copyfile(tmp / "slides" / MACRO_SVS, tmp / "slides" / "second.svs")
    m = write_manifest(tmp, [(f"slides/{MACRO_SVS}", "R-1", "", ACCESSION, "yes"),
                             ("slides/second.svs", "R-2", "", ACCESSION, "yes"),
                             (f"slides/{TIFF}", "R-3", "", "", ""),
                             (f"slides/{CORRUPT}", "R-4", "", "", "")])
    res = run_batch(str(m), str(tmp / "out"), BatchOptions(detect="residual", ocr=False, progress=False))
    assert res.counts == {"flagged": 2, "published": 1, "failed": 1}
    return tmp / "out", tmp / "out-review"


def test_highlight_escapes_and_marks():
    assert highlight("<b>S24-1</b>", [{"span": [3, 8]}]) == "&lt;b&gt;<mark>S24-1</mark>&lt;/b&gt;"
    assert highlight("abcdef", [{"span": [0, 3]}, {"span": [2, 5]}]) == "<mark>abcde</mark>f"


def test_page_is_self_contained_and_escapes_label_text(tmp_path):
    out, review = _batch(tmp_path)
    rec = load_record(str(review), "R-1")
    rec["scans"][0].setdefault("findings", []).append(
        {"kind": "text", "value": "<script>alert(1)</script><img src=x onerror=alert(2)>", "phi": ["name"],
         "flags": [], "symbology": None})
    write_json(record_path(str(review), "R-1"), rec)
    page = render(str(review))
    assert "<script>alert(1)" not in page and "&lt;script&gt;alert(1)" in page
    assert "onerror=alert(2)>" not in page
    assert "Content-Security-Policy" in page and "default-src 'none'" in page
    assert "http://" not in page and "https://" not in page  # nothing to fetch
    assert page.count('class="slide"') == 4 and page.count('type="radio"') == 4  # controls for flagged only
    assert "data:image/jpeg;base64," in page and ACCESSION in page


def test_every_slide_lists_the_checks_in_vocabulary_order(tmp_path):
    """One table per verified slide, the vocabulary's names in its order; a failed check opens it."""
    import re
    from wsideid.checks import Check
    out, review = _batch(tmp_path)
    page = render(str(review))
    tables = re.findall(r'<details class="checks"[^>]*>(.*?)</details>', page, re.S)
    assert len(tables) == 3  # the three slides written (the corrupt one has no checks)
    for t in tables:
        assert re.findall(r"<td><code>([^<]+)</code></td>", t) == [c.value for c in Check]
        assert "FAILED" not in t
    rec = load_record(str(review), "R-3")
    rec["checks"][5] = {**rec["checks"][5], "status": "failed", "ok": False, "detail": "a <b>bad</b> row"}
    rec["checks"].reverse()  # stored in any order, shown in the vocabulary's
    write_json(record_path(str(review), "R-3"), rec)
    page = render(str(review))
    failed = [t for t in re.findall(r'<details class="checks"([^>]*)>(.*?)</details>', page, re.S) if "FAILED" in t[1]]
    assert len(failed) == 1 and failed[0][0] == " open" and "a &lt;b&gt;bad&lt;/b&gt; row" in failed[0][1]
    assert re.findall(r"<td><code>([^<]+)</code></td>", failed[0][1]) == [c.value for c in Check]


def test_apply_refuses_a_changed_file_and_needs_a_reviewer(tmp_path):
    out, review = _batch(tmp_path)
    dec = tmp_path / "d.csv"
    dec.write_text("new_id,decision,reviewer\nR-1,approve,\nR-2,approve,QC Anna\nR-9,approve,QC Anna\n"
                   "R-3,maybe,QC Anna\n")
    with open(review / "flagged" / "R-2.svs", "r+b") as fh:  # tampered while it waited
        fh.seek(-10, 2)
        fh.write(b"0123456789")
    res = {r.new_id: r for r in apply_decisions(str(dec), str(out))}
    assert not res["R-1"].ok and "reviewer" in res["R-1"].message
    assert not res["R-2"].ok and "sha256" in res["R-2"].message
    assert not res["R-9"].ok and "no slide" in res["R-9"].message
    assert not res["R-3"].ok and "approve or reject" in res["R-3"].message
    assert not (out / "R-2.svs").exists()


def _launch(p):
    args = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]
    profile = tempfile.mkdtemp(prefix="wsideid-chromium-")
    ctx = p.chromium.launch_persistent_context(profile, executable_path=CHROMIUM, headless=True, args=args,
                                               accept_downloads=True, offline=True)
    return ctx, profile


def test_qc_page_in_headless_chromium(tmp_path):
    if CHROMIUM is None:
        pytest.skip("chromium not installed (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    out, review = _batch(tmp_path)
    page_path = Path(write_report(str(review)))
    shots = Path(tempfile.gettempdir()) / "wsideid-test-artifacts"
    shots.mkdir(exist_ok=True)
    with sync_api.sync_playwright() as p:
        ctx, profile = _launch(p)
        try:
            requests: list[str] = []
            ctx.on("request", lambda r: requests.append(r.url))
            page = ctx.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(page_path.as_uri())
            assert page.locator("section.slide").count() == 4
            for nid in ("R-1", "R-2", "R-3", "R-4"):
                assert page.locator(f"#slide-{nid}").is_visible()
            # images decoded from data: URIs (naturalWidth > 0 means they rendered offline)
            widths = page.eval_on_selector_all("img", "els => els.map(e => e.naturalWidth)")
            assert widths and all(w > 0 for w in widths)
            page.click("button[data-filter=flagged]")
            assert page.locator("section.slide:visible").count() == 2
            page.click("button[data-filter=failed]")
            assert [page.locator("section.slide:visible").get_attribute("data-id")] == ["R-4"]
            page.click("button[data-filter=all]")
            page.check("#slide-R-1 input[value=approve]")
            page.check("#slide-R-2 input[value=reject]")
            page.fill("#slide-R-2 input.note", 'label shows "S24", reprint')
            assert page.inner_text("#decided") == "2"
            page.click("button[data-filter=undecided]")
            assert page.locator("section.slide:visible").count() == 0
            page.click("button[data-filter=all]")
            page.fill("#reviewer", "QC Anna")
            with page.expect_download() as dl:
                page.click("#export")
            decisions = tmp_path / "qc-decisions.csv"
            dl.value.save_as(decisions)
            page.screenshot(path=str(shots / "qc-report.png"), full_page=True)
            assert errors == []
            assert all(u.startswith(("file:", "data:", "blob:")) for u in requests), requests
        finally:
            ctx.close()
            shutil.rmtree(profile, ignore_errors=True)

    with open(decisions, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["new_id"], r["decision"], r["reviewer"]) for r in rows] == [
        ("R-1", "approve", "QC Anna"), ("R-2", "reject", "QC Anna")]
    assert rows[1]["note"] == 'label shows "S24", reprint'

    res = apply_decisions(str(decisions), str(out))
    assert [(r.new_id, r.ok) for r in res] == [("R-1", True), ("R-2", True)], [r.message for r in res]
    assert (out / "R-1.svs").exists() and not (review / "flagged" / "R-1.svs").exists()
    audit = json.loads((out / "R-1.svs.audit.json").read_text())
    assert audit["status"] == "approved" and audit["review"]["reviewer"] == "QC Anna"
    assert audit["review"]["reverified"] is True and "reprint" not in (out / "R-1.svs.audit.json").read_text()
    assert (review / "rejected" / "R-2.svs").exists() and not (out / "R-2.svs").exists()
    with open(out / "batch-summary.csv") as fh:
        summ = {r["new_id"]: r for r in csv.DictReader(fh)}
    assert summ["R-1"]["status"] == "approved" and summ["R-2"]["status"] == "rejected"
    # a second apply is a no-op, and a rerun of the batch keeps the decisions
    assert all(r.ok for r in apply_decisions(str(decisions), str(out)))
    m = tmp_path / "manifest.csv"
    res2 = run_batch(str(m), str(out), BatchOptions(detect="residual", ocr=False, progress=False))
    assert res2.skipped == 3 and res2.counts["approved"] == 1 and res2.counts["rejected"] == 1
