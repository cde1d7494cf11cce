"""Benchmark the PHI detectors on synthetic labels with ground truth.

Prints one table row per (set, engines): barcodes decoded, PHI text recall
and precision (with and without the slide's accession as a supplied
identifier), label-level verdicts, unreadable-text findings and ms per
label, for tesseract alone and tesseract + PP-OCR; then the real label
photos of ../shared/testdata/labels (no PHI truth: barcodes and time).
Pinned to one CPU core unless --all-cores.

--record FILE keeps every label's raw readings (tesseract lines, text
regions, PP-OCR readings, barcodes) and truth; --replay FILE re-classifies
them with the current rules and no OCR (``scan.second_engine_findings``, the
scan's own code), seconds instead of minutes: for trying a rule, never for a
reported figure (OCR changes need a full run). --details prints every false
flag and every missed PHI line with the text read and the rule that fired.

Usage: python bench/labels/bench_detectors.py [--n 60] [--seed 7] [--sets printed,handwritten,degraded]
       [--work DIR] [--json OUT] [--all-cores] [--record FILE | --replay FILE] [--details]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_labels import generate, heldout, load_truth  # noqa: E402

from wsideid.detect import DetectorError, ScanResult, scan_image  # noqa: E402
from wsideid.detect import scan as scan_mod  # noqa: E402
from wsideid.detect.barcodes import read_barcodes  # noqa: E402
from wsideid.detect.findings import Finding, PhiFlag  # noqa: E402
from wsideid.detect.lines import Reading  # noqa: E402
from wsideid.detect.textregions import TextRegion  # noqa: E402
from wsideid.detect.phi_text import _fold, best_substring_match, classify_text  # noqa: E402

FAMILY = {"UPCA": "EAN13", "CompactPDF417": "PDF417"}


def _merged_spans(value: str, flags) -> list[str]:
    """Flagged parts of one text finding, overlapping flags merged."""
    spans = sorted(f.span for f in flags if f.category != "barcode")
    merged: list[list[int]] = []
    for a, b in spans:
        if merged and a <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    return [value[a:b] for a, b in merged]


def _same_phi(span: str, truth: str) -> bool:
    """Does a flagged span cover (most of) a ground-truth PHI value, or lie in it?"""
    p, g = _fold(span)[0], _fold(truth)[0]
    if not p or not g:
        return False
    if len(p) <= len(g):
        edits, _, _ = best_substring_match(p, g)
        return edits <= max(1, len(p) // 4) and (len(p) >= 0.5 * len(g) or len(p) >= 4)
    edits, _, _ = best_substring_match(g, p)
    return edits <= max(1, len(g) // 4)


def _covers(span: str, truth: str) -> bool:
    """Recall: the span stands for at least half of the ground-truth value."""
    p, g = _fold(span)[0], _fold(truth)[0]
    if not p or not g:
        return False
    if len(p) < len(g):
        edits, _, _ = best_substring_match(p, g)
        return edits <= max(1, len(p) // 4) and len(p) >= 0.5 * len(g)
    edits, _, _ = best_substring_match(g, p)
    return edits <= max(1, len(g) // 4)


ENGINES = ("tesseract", "tesseract+ppocr")


class Recorder:
    """Keeps what OCR read in a scan (wraps the scan module's readers), so that
    the same readings can be classified again without OCR (:func:`replay`)."""

    def __init__(self) -> None:
        self.raw: dict = {}

    def __enter__(self) -> "Recorder":
        self._saved = (scan_mod._ocr_module.recognise, scan_mod.read_regions, scan_mod._regions)
        rec, regs, reg = self._saved

        def recognise(*a, **k):
            r = rec(*a, **k)
            self.raw["lines"] = [[ln.text, list(ln.box), ln.confidence] for ln in r.lines]
            return r

        def read_regions(*a, **k):
            out, t = regs(*a, **k)
            self.raw["readings"] = [[[r.text, r.confidence, r.engine] for r in per] for per in out]
            # the regions as read (the scan may stretch them along their lines)
            self.raw["regions"] = [[list(r.box), r.vertical, r.score, r.marks] for r in a[1]]
            return out, t

        def regions(*a, **k):
            out = reg(*a, **k)
            self.raw["regions"] = [[list(r.box), r.vertical, r.score, r.marks] for r in out]
            return out

        scan_mod._ocr_module.recognise, scan_mod.read_regions, scan_mod._regions = recognise, read_regions, regions
        return self

    def __exit__(self, *exc) -> None:
        scan_mod._ocr_module.recognise, scan_mod.read_regions, scan_mod._regions = self._saved


def replay(raw: dict, barcodes: list, identifiers: list[str], second: bool) -> ScanResult:
    """The findings a scan makes from recorded readings, with today's rules."""
    findings = []
    for value, box, sym in barcodes:
        flags = classify_text(value, identifiers) + [PhiFlag("barcode", (0, len(value)), f"decoded {sym} payload")]
        findings.append(Finding("label", "barcode", value, tuple(box), 1.0, sym, "zxing", flags))
    for text, box, conf in raw.get("lines", []):
        findings.append(Finding("label", "text", text, tuple(box), conf, None, "tesseract", classify_text(text, identifiers)))
    if second and raw.get("readings") is not None:
        regions = [TextRegion(tuple(b), v, sc, m) for b, v, sc, m in raw.get("regions", [])]
        readings = [[Reading(*r) for r in per] for per in raw["readings"]]
        findings = scan_mod.second_engine_findings("label", regions, readings, findings, identifiers)
    return ScanResult("label", (0, 0), findings, {})


def evaluate(work: Path, engines: tuple[str, ...] = ENGINES, record: list | None = None,
             replayed: list | None = None) -> tuple[dict, dict]:
    """(barcode stats per set, text stats per (set, engines)).

    ``record``: a list to append each label's raw readings to; ``replayed``:
    such a list read back, classified again instead of scanning."""
    codes: dict[str, dict] = defaultdict(lambda: defaultdict(list))
    text: dict[tuple[str, str], dict] = defaultdict(lambda: defaultdict(list))
    if replayed is not None:
        for r in replayed:
            t = r["truth"]
            want = {(FAMILY.get(f, f), v) for f, v in t["barcodes"]}
            got = {(FAMILY.get(sym, sym), v) for v, _, sym in r["barcodes"]}
            _count_codes(codes[t["set"]], t, want, got, 0.0)
            for eng in engines:
                result = replay(r["raw"][eng], r["barcodes"], t["identifiers"], eng != "tesseract")
                _score_text(text[(t["set"], eng)], t, result, 0.0, 0.0)
        return codes, text
    truths = load_truth(work)
    for t in truths:
        img = Image.open(work / t["file"]).convert("RGB")
        want = {(FAMILY.get(f, f), v) for f, v in t["barcodes"]}
        t0 = time.perf_counter()
        hits = read_barcodes(img)
        got = {(FAMILY.get(h.symbology, h.symbology), h.value) for h in hits}
        _count_codes(codes[t["set"]], t, want, got, (time.perf_counter() - t0) * 1000)
        raw = {}
        for eng in engines:
            raw[eng] = _evaluate_text(text[(t["set"], eng)], eng, t, img)
        if record is not None:
            record.append({"truth": t, "raw": raw,
                           "barcodes": [[h.value, list(h.box), h.symbology] for h in hits]})
    return codes, text


def _count_codes(s: dict, t: dict, want: set, got: set, ms: float) -> None:
    s["ms"].append(ms)
    s["decoded"].append(len(want & got))
    s["false"].append(len(got - want))
    s["total"].append(len(want))
    s["missed"] += [f"{t['file']}:{fmt}" for fmt, _ in want - got]


def _evaluate_text(s: dict, engines: str, t: dict, img: Image.Image) -> dict:
    """Recall/precision of one engine set on one label; returns the raw readings."""
    t0, c0 = time.perf_counter(), _cpu()
    with Recorder() as rec:
        try:
            result = scan_image(img, "label", identifiers=t["identifiers"], second_engine=engines != "tesseract")
        except DetectorError as exc:  # an engine timed out (a loaded machine): counted, shown, not fatal
            s["errors"].append(f"{t['file']}: {exc}")
            result = ScanResult("label", img.size, [], {})
    _score_text(s, t, result, (time.perf_counter() - t0) * 1000, (_cpu() - c0) * 1000)
    return rec.raw


def _score_text(s: dict, t: dict, result: ScanResult, ms: float, cpu_ms: float) -> None:
    s["ms"].append(ms)
    s["cpu_ms"].append(cpu_ms)
    s["unreadable"].append(sum(any(fl.category == "unreadable-text" for fl in f.flags) for f in result.findings))
    phi_truth = [ln["text"] for ln in t["lines"] if ln["phi"]]
    texts = [f for f in result.findings if f.kind == "text" and f.value]
    for mode, ids in (("with_ids", t["identifiers"]), ("no_ids", [])):
        spans = []
        for f in texts:
            flags = f.flags if mode == "with_ids" else classify_text(f.value, ids)
            spans += _merged_spans(f.value, flags)
        tp = [sp for sp in spans if any(_same_phi(sp, g) for g in phi_truth)]
        s[f"fp_{mode}"].extend(sp for sp in spans if sp not in tp)
        if mode == "with_ids":
            for f in texts:
                for sp in _merged_spans(f.value, f.flags):
                    if sp not in tp:
                        why = "; ".join(fl.reason for fl in f.flags if sp.find(f.value[fl.span[0]:fl.span[1]]) >= 0)
                        s["fp_detail"].append(f"{t['file']} [{f.reader}] {sp!r} in {f.value!r}: {why}")
        s[f"tp_{mode}"].append(len(tp))
        s[f"spans_{mode}"].append(len(spans))
        for g, cat in ((ln["text"], ln["phi"]) for ln in t["lines"] if ln["phi"]):
            hit = any(_covers(sp, g) for sp in spans)
            s[f"recall_{mode}"].append(hit)
            if not hit and mode == "with_ids":
                s["missed_phi"].append(f"{t['file']}:{cat}")
                read = " | ".join(f"[{f.reader}] {f.value}" for f in texts)
                s["miss_detail"].append(f"{t['file']} {cat} {g!r}; read: {read}")
    s["verdict"].append((bool(phi_truth), result.has_phi))


def _cpu() -> float:
    """CPU seconds of this process and its waited-for children (tesseract, the PP-OCR worker):
    what a loaded, shared machine distorts least, unlike wall time."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def _pct(num: float, den: float) -> str:
    return f"{100 * num / den:.1f}%" if den else "n/a"


def details(text: dict) -> None:
    """Every false flag (span, the line it is in, the rules that fired) and every missed PHI line
    (with all the text the scan kept for that label: tesseract lines and flagged PP-OCR readings)."""
    for (set_name, eng), s in sorted(text.items()):
        print(f"\n## {set_name} / {eng}: {len(s['fp_detail'])} false flags, {len(s['miss_detail'])} misses")
        for line in s["fp_detail"]:
            print(f"  FP   {line}")
        for line in s["miss_detail"]:
            print(f"  MISS {line}")


def report(codes: dict, text: dict) -> dict:
    """Print one table row per (set, engines) and return the figures."""
    out: dict = {}
    print("| set | engines | labels | barcodes | PHI recall | precision | recall (no ids) | precision (no ids) "
          "| labels flagged (PHI / clean) | unreadable-text | ms/label mean (p95) | CPU ms/label mean |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for (set_name, eng), s in sorted(text.items()):
        c = codes[set_name]
        n, total = len(s["ms"]), sum(c["total"])
        row: dict = {"labels": n, "barcodes": f"{sum(c['decoded'])}/{total}"}
        cells = []
        for mode in ("with_ids", "no_ids"):
            rec, tp, spans = s[f"recall_{mode}"], sum(s[f"tp_{mode}"]), sum(s[f"spans_{mode}"])
            row[f"recall_{mode}"] = sum(rec) / len(rec) if rec else None
            row[f"precision_{mode}"] = tp / spans if spans else None
            cells += [f"{sum(rec)}/{len(rec)} = {_pct(sum(rec), len(rec))}", f"{tp}/{spans} = {_pct(tp, spans)}"]
        v = Counter(s["verdict"])
        phi_n, clean_n = v[(True, True)] + v[(True, False)], v[(False, True)] + v[(False, False)]
        flagged = f"{v[(True, True)]}/{phi_n} / {v[(False, True)]}/{clean_n}"
        ms = sorted(s["ms"])
        row["ms_mean"], row["ms_p95"] = statistics.mean(ms), ms[int(0.95 * (n - 1))]
        row["cpu_ms_mean"] = statistics.mean(s["cpu_ms"])
        codes_cell = f"{sum(c['decoded'])}/{total}" + (f" ({sum(c['false'])} false)" if sum(c["false"]) else "")
        print(f"| {set_name} | {eng} | {n} | {codes_cell} | {cells[0]} | {cells[1]} | {cells[2]} | {cells[3]} "
              f"| {flagged} | {sum(s['unreadable'])} | {row['ms_mean']:.0f} ({row['ms_p95']:.0f}) "
              f"| {row['cpu_ms_mean']:.0f} |")
        out[f"{set_name}/{eng}"] = row
    for (set_name, eng), s in sorted(text.items()):
        if s["errors"]:
            print(f"  {set_name}/{eng} engine errors (counted as nothing found): {len(s['errors'])}: "
                  f"{'; '.join(s['errors'][:4])}")
        if s["missed_phi"]:
            print(f"  {set_name}/{eng} missed PHI: {', '.join(s['missed_phi'][:12])}")
        fps = Counter(s["fp_with_ids"]).most_common(6)
        if fps:
            print(f"  {set_name}/{eng} false flags: {fps}")
    for set_name, c in sorted(codes.items()):
        if c["missed"]:
            print(f"  {set_name} missed barcodes: {', '.join(c['missed'][:8])}")
    return out


# Non-PHI label phrases that neither the detector's vocabulary nor make_labels.py
# holds: stains it was not told about and everyday label wording. Read
# exactly (no OCR): how the name rules generalise to words nobody listed.
UNSEEN_PHRASES = [
    "Cajal Gold", "Marchi Method", "Lugol Iodine", "Puchtler Sweat", "Hortega Silver", "Highman Congo",
    "Wilder Reticulin", "Cason Trichrome", "Loyez Myelin", "Weil Myelin", "Teaching Set", "External Consult",
    "Second Opinion", "Outside Review", "Digital Scan", "Whole Mount", "Touch Prep", "Quality Assurance",
    "Human Protein", "Tumor Bank", "Core Facility", "Serial Sections", "Archive Copy", "Needle Biopsy",
]
# Names in the same shape (two capitalised words), none in the bundled lists.
UNSEEN_NAMES = ["Ezekiel Dragomir", "Cordelia Tremblay", "Ignatius Oyelaran", "Philippa Grzelak",
                "Thaddeus Vukovic", "Marisol Echeverria", "Anneliese Brandvold", "Cosmin Raducanu"]


def unseen_probe() -> None:
    """Name flags on unseen non-PHI phrases (false) and unlisted names (true), read exactly:
    UNSEEN_PHRASES/UNSEEN_NAMES (2026-12-02, second session) and heldout/probe_*.txt
    (third session, written before the lexicon's thresholds were revised)."""
    def named(t: str) -> bool:
        return any(f.category == "name" for f in classify_text(t))
    for title, phrases, names in (("probe 1", UNSEEN_PHRASES, UNSEEN_NAMES),
                                  ("probe 2", heldout("probe_phrases"), heldout("probe_names"))):
        fp = [t for t in phrases if named(t)]
        missed = [t for t in names if not named(t)]
        print(f"\nunseen words, {title}, read exactly: name flags on non-PHI phrases {len(fp)}/{len(phrases)} "
              f"({', '.join(fp)}); on unlisted names {len(names) - len(missed)}/{len(names)}"
              + (f" (missed: {', '.join(missed)})" if missed else ""))


def real_photos(folder: Path) -> None:
    """Real label photos (no PHI truth): barcodes decoded and time, both engine sets."""
    files = sorted(p for p in folder.glob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    if not files:
        return
    print(f"\nreal photos in {folder}: {len(files)}")
    for eng in ENGINES:
        for p in files:
            img = Image.open(p).convert("RGB")
            t0, c0 = time.perf_counter(), _cpu()
            try:
                r = scan_image(img, "label", second_engine=eng != "tesseract")
            except DetectorError as exc:
                print(f"  {eng:16s} {p.name}: {exc}")
                continue
            ms = (time.perf_counter() - t0) * 1000
            cpu = (_cpu() - c0) * 1000
            cats = sorted({fl.category for f in r.findings for fl in f.flags})
            print(f"  {eng:16s} {p.name}: {sum(f.kind == 'barcode' for f in r.findings)} barcode(s), "
                  f"flags {cats}, {ms:.0f} ms ({cpu:.0f} ms CPU)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=60, help="labels per set")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--sets", default="printed,handwritten,degraded", help="comma-separated sets of make_labels.py")
    ap.add_argument("--work", type=Path, help="where labels are written (default: a temp dir)")
    ap.add_argument("--json", type=Path, help="also write the figures as JSON")
    ap.add_argument("--all-cores", action="store_true", help="do not pin to one CPU core")
    ap.add_argument("--record", type=Path, help="write every label's raw readings and truth (JSON lines)")
    ap.add_argument("--replay", type=Path, help="classify a --record file again, no OCR (rules only)")
    ap.add_argument("--details", action="store_true", help="print every false flag and miss")
    a = ap.parse_args()
    if not a.all_cores and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    if a.replay:
        replayed = [json.loads(ln) for ln in a.replay.read_text().splitlines()]
        codes, text = evaluate(Path("."), replayed=replayed)
        figures = report(codes, text)
        if a.details:
            details(text)
        unseen_probe()
        if a.json:
            a.json.write_text(json.dumps(figures, indent=2))
        return
    print(f"load average at start: {open('/proc/loadavg').read().split()[:3]}")
    with tempfile.TemporaryDirectory() as tmp:
        work = a.work or Path(tmp)
        generate(work, a.n, a.seed, tuple(a.sets.split(",")))
        record: list | None = [] if a.record else None
        codes, text = evaluate(work, record=record)
        if a.record and record is not None:
            a.record.write_text("".join(json.dumps(r) + "\n" for r in record))
        figures = report(codes, text)
        if a.details:
            details(text)
        unseen_probe()
        real = Path(os.environ.get("WSIDEID_TESTDATA", Path(__file__).resolve().parents[2] / "../shared/testdata"))
        real_photos(real / "labels")
    print(f"load average at end: {open('/proc/loadavg').read().split()[:3]}")
    if a.json:
        a.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
