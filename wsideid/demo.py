"""``wsideid demo``: a whole batch on sample slides with planted fake PHI.

What the README's main-job command runs. It shows, on data that is safe to
share, the workflow a lab runs: a manifest mapping slides to research IDs,
a parallel batch, a clean OUTDIR, a review folder holding everything
identifying, and the QC page. One sample keeps its macro (which shows the
accession number as a DataMatrix), so the demo also shows a slide held
back for review.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import sys

from .synth import ACCESSION, PLANTED, make_all


def make_samples(workdir: str) -> tuple[str, list[dict[str, str]]]:
    """Sample slides and a manifest for them; returns (manifest path, rows)."""
    samples = os.path.join(workdir, "samples")
    shutil.rmtree(samples, ignore_errors=True)
    slides = make_all(samples)
    try:  # a DICOM WSI series too, when the convert extra (wsidicomizer) is installed
        from .synth import make_dicom
        slides.append(make_dicom(os.path.join(samples, "synthetic-dicom-series")))
    except ImportError:
        pass
    flagged = os.path.join(samples, "synthetic-aperio-macro-kept.svs")
    shutil.copyfile(slides[0].path, flagged)
    rows = [{"source": os.path.relpath(s.path, workdir), "new_id": f"DEMO-{n:03d}", "subject": f"SUBJ-{n}",
             "identifiers": f"{ACCESSION};Jane Doe", "keep_macro": "no"} for n, s in enumerate(slides, 1)]
    rows.append({"source": os.path.relpath(flagged, workdir), "new_id": f"DEMO-{len(rows) + 1:03d}",
                 "subject": "SUBJ-1", "identifiers": f"{ACCESSION};Jane Doe", "keep_macro": "yes"})
    rows.append({"source": "../outside.svs", "new_id": "DEMO-BAD", "subject": "", "identifiers": "", "keep_macro": ""})
    manifest = os.path.join(workdir, "manifest.csv")
    with open(manifest, "w", newline="") as fh:
        w = csv.DictWriter(fh, list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return manifest, rows


def _leaks(outdir: str) -> list[str]:
    """Planted values or sample names found anywhere in OUTDIR (names and bytes)."""
    found = set()
    needles = [v.lower() for v in PLANTED] + ["synthetic-"]
    for root, _dirs, files in os.walk(outdir):
        for name in files:
            with open(os.path.join(root, name), "rb") as fh:
                blob = name.lower().encode() + b"\n" + fh.read().lower()
            found.update(v for v in needles if v.encode() in blob)
    return sorted(found)


def run_demo(workdir: str, as_json: bool = False, jobs: int = 2) -> int:
    from .batch.runner import BatchOptions, run_batch
    from .report.page import write_report
    os.makedirs(workdir, exist_ok=True)
    outdir, review = os.path.join(workdir, "output"), os.path.join(workdir, "output-review")
    for d in (outdir, review):  # a demo starts from scratch each time
        shutil.rmtree(d, ignore_errors=True)
    manifest, rows = make_samples(workdir)
    res = run_batch(manifest, outdir, BatchOptions(jobs=jobs, detect="all", ocr=True, progress=not as_json))
    page = write_report(res.review_dir)
    leaks = _leaks(outdir)
    report = {"manifest": manifest, "outdir": outdir, "review_dir": res.review_dir, "qc_report": page,
              "counts": res.counts, "refused_rows": [str(p) for p in res.problems], "slides": res.rows,
              "planted_values_in_outdir": leaks, "exit_code": res.exit_code}
    expected = {"published": len(rows) - 2, "flagged": 1, "refused": 1}  # one macro kept, one bad row
    ok = res.counts == expected and not leaks
    if as_json:
        json.dump(report, sys.stdout, indent=1)
        print()
        return 0 if ok else 1
    print(f"wsideid demo: {len(rows)} manifest rows ({manifest}), synthetic slides with planted fake PHI\n")
    for r in res.rows:
        if r["status"] == "refused":
            continue
        print(f"  {r['new_id']} ({r['format']}): {r['status']:<9} {r['removed']} fields removed, "
              f"{r['replaced']} replaced, {r['images_removed']} images removed, checks {r['checks']}, "
              f"PHI findings on label/macro {r['phi_source']}, on kept images {r['phi_output']}, {r['t_total']}s")
    for p in res.problems:
        print(f"  refused {p}")
    print(f"\nclean output (what a lab hands over): {outdir}")
    print(f"  {sum(1 for r in res.rows if r['status'] == 'published')} slides named by research ID, their audit JSON,"
          f" batch-summary.csv; planted PHI values or sample names found there: {len(leaks)}")
    print(f"review folder (holds PHI, stays in the lab): {res.review_dir}")
    print("  flagged/ (the slide whose kept macro shows the accession barcode), images/ (removed labels and macros),")
    print("  slides/ (per-slide records), mapping.csv (source -> research ID), batch-summary.csv (with sources),")
    print("  name-map.csv (input path -> output name), records/ (input path, output hash and verbatim key names per output)")
    print(f"QC page: {page}")
    print(f"\nNext: open the QC page, approve or reject, export the CSV, then\n"
          f"  wsideid review apply qc-decisions.csv {outdir}")
    return 0 if ok else 1
