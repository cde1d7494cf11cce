"""Benchmark the PHI detectors on synthetic labels with ground truth.

Prints, per set (clean / degraded): barcode decode rate for zxing alone and
zxing + pyzbar, PHI text recall and precision of the tesseract path (with
and without the slide's accession as a supplied identifier), label-level
PHI verdicts, and ms per label per engine, pinned to one CPU core.

Usage: python bench/labels/bench_detectors.py [--n 60] [--seed 7] [--work DIR] [--json OUT]
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
from make_labels import generate, load_truth  # noqa: E402

from wsideid.detect import scan_image  # noqa: E402
from wsideid.detect.barcodes import read_barcodes  # noqa: E402
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


def evaluate(work: Path) -> dict:
    truths = load_truth(work)
    stats: dict[str, dict] = defaultdict(lambda: defaultdict(list))
    for t in truths:
        s = stats[t["set"]]
        img = Image.open(work / t["file"]).convert("RGB")
        want = {(FAMILY.get(f, f), v) for f, v in t["barcodes"]}
        for engine, kw in (("zxing", {"use_pyzbar": False}), ("zxing+pyzbar", {"use_pyzbar": True})):
            t0 = time.perf_counter()
            got = {(FAMILY.get(h.symbology, h.symbology), h.value) for h in read_barcodes(img, **kw)}
            s[f"ms_{engine}"].append((time.perf_counter() - t0) * 1000)
            s[f"codes_{engine}"].append(len(want & got))
            s[f"codes_false_{engine}"].append(len(got - want))
            for fmt, _ in want - got:
                s[f"missed_{engine}"].append(f"{t['file']}:{fmt}")
        s["codes_total"].append(len(want))
        result = scan_image(img, "label", identifiers=t["identifiers"])
        s["ms_scan"].append(result.timings_ms["total"])
        s["ms_tesseract"].append(result.timings_ms.get("ocr_probe", 0) + result.timings_ms.get("ocr_read", 0))
        phi_truth = [ln["text"] for ln in t["lines"] if ln["phi"]]
        texts = [f for f in result.findings if f.kind == "text"]
        for mode, ids in (("with_ids", t["identifiers"]), ("no_ids", [])):
            spans = []
            for f in texts:
                flags = f.flags if mode == "with_ids" else classify_text(f.value, ids)
                spans += _merged_spans(f.value, flags)
            tp = [sp for sp in spans if any(_same_phi(sp, g) for g in phi_truth)]
            s[f"fp_{mode}"].extend(sp for sp in spans if sp not in tp)
            s[f"tp_{mode}"].append(len(tp))
            s[f"spans_{mode}"].append(len(spans))
            for g, cat in ((ln["text"], ln["phi"]) for ln in t["lines"] if ln["phi"]):
                hit = any(_covers(sp, g) for sp in spans)
                s[f"recall_{mode}"].append(hit)
                s[f"recall_{mode}_{cat}"].append(hit)
                if not hit and mode == "with_ids":
                    s["missed_phi"].append(f"{t['file']}:{cat}")
        s["label_verdict"].append((bool(phi_truth), result.has_phi))
    return stats


def _pct(num: float, den: float) -> str:
    return f"{100 * num / den:.1f}%" if den else "n/a"


def report(stats: dict) -> dict:
    out = {}
    for set_name, s in stats.items():
        n = len(s["ms_scan"])
        codes = sum(s["codes_total"])
        r: dict = {"labels": n, "codes": codes}
        print(f"\n== {set_name}: {n} labels, {codes} barcodes")
        for engine in ("zxing", "zxing+pyzbar"):
            dec = sum(s[f"codes_{engine}"])
            r[f"decode_{engine}"] = dec / codes if codes else None
            print(f"  barcodes {engine:13s} decoded {dec}/{codes} = {_pct(dec, codes)}; "
                  f"false reads {sum(s[f'codes_false_{engine}'])}; "
                  f"{statistics.mean(s[f'ms_{engine}']):.0f} ms/label (max {max(s[f'ms_{engine}']):.0f})")
            if s[f"missed_{engine}"]:
                print(f"    missed: {', '.join(s[f'missed_{engine}'][:8])}")
        for mode in ("with_ids", "no_ids"):
            rec = s[f"recall_{mode}"]
            tp, spans = sum(s[f"tp_{mode}"]), sum(s[f"spans_{mode}"])
            r[f"phi_recall_{mode}"] = sum(rec) / len(rec)
            r[f"phi_precision_{mode}"] = tp / spans if spans else None
            by_cat = {k.rsplit("_", 1)[1]: v for k, v in s.items() if k.startswith(f"recall_{mode}_")}
            cats = ", ".join(f"{c} {_pct(sum(v), len(v))}" for c, v in sorted(by_cat.items()))
            print(f"  PHI text ({mode:8s}) recall {sum(rec)}/{len(rec)} = {_pct(sum(rec), len(rec))} "
                  f"[{cats}]; precision {tp}/{spans} = {_pct(tp, spans)}")
        if s["missed_phi"]:
            print(f"    missed PHI lines: {', '.join(s['missed_phi'][:10])}")
        fps = Counter(s["fp_with_ids"]).most_common(8)
        if fps:
            print(f"    false flags (most common): {fps}")
        verdicts = Counter(s["label_verdict"])
        print(f"  label verdicts (truth, flagged): {dict(verdicts)}")
        ms = s["ms_scan"]
        r["ms_per_label_mean"] = statistics.mean(ms)
        r["ms_per_label_p95"] = sorted(ms)[int(0.95 * (len(ms) - 1))]
        print(f"  tesseract {statistics.mean(s['ms_tesseract']):.0f} ms/label; full scan {statistics.mean(ms):.0f} ms/label "
              f"(p95 {r['ms_per_label_p95']:.0f}, max {max(ms):.0f})")
        out[set_name] = r
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=60, help="labels per set")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--work", type=Path, help="where labels are written (default: a temp dir)")
    ap.add_argument("--json", type=Path, help="also write the figures as JSON")
    ap.add_argument("--all-cores", action="store_true", help="do not pin to one CPU core")
    a = ap.parse_args()
    if not a.all_cores and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    with tempfile.TemporaryDirectory() as tmp:
        work = a.work or Path(tmp)
        generate(work, a.n, a.seed)
        figures = report(evaluate(work))
    if a.json:
        a.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
