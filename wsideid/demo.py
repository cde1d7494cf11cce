"""``wsideid demo``: make sample slides with planted PHI and de-identify them.

What the README's main-job command runs: it shows, on data that is safe to
share, every stage a real run goes through and where each result lands.
"""

from __future__ import annotations

import json
import os
import sys

from .pipeline import DeidOptions, deidentify
from .synth import PLANTED, make_all


def run_demo(workdir: str, as_json: bool = False) -> int:
    samples = os.path.join(workdir, "samples")
    outdir = os.path.join(workdir, "output")
    review = os.path.join(workdir, "output-review")
    for d in (samples, outdir):
        os.makedirs(d, exist_ok=True)
    for name in os.listdir(samples):
        os.unlink(os.path.join(samples, name))
    slides = make_all(samples)
    report = []
    for n, s in enumerate(slides, 1):
        new_id = f"DEMO-{n:03d}"
        opts = DeidOptions(new_id=new_id, detect="all", identifiers=["S24-12345", "Jane Doe"],
                           overwrite=True, review_dir=review)
        res = deidentify(s.path, outdir, opts)
        blob = open(res.output, "rb").read().lower()
        leaked = [v for v in PLANTED if v.lower().encode() in blob]
        src_flags = sorted({c for sc in res.scans if sc.stage == "source" and sc.result
                            for f in sc.result.findings for fl in f.flags for c in [fl.category]})
        report.append({
            "sample": os.path.basename(s.path), "format": res.format, "research_id": new_id,
            "status": res.status, "output": res.output, "audit": res.audit_path,
            "removed_fields": sum(d.action == "remove" for d in res.plan.fields),
            "replaced_fields": sum(d.action in ("replace", "date", "datetime", "text") for d in res.plan.fields),
            "unknown_fields_removed": len(res.plan.unknowns()),
            "images": {f"{d.image.role}[{d.image.index}]": d.action for d in res.plan.images},
            "label_macro_findings": src_flags,
            "checks_passed": f"{sum(c.ok for c in res.report.checks)}/{len(res.report.checks)}",
            "planted_values_left": leaked,
            "seconds": round(res.timings["total"], 2),
        })
    if as_json:
        json.dump(report, sys.stdout, indent=1)
        print()
    else:
        print(f"wsideid demo: {len(slides)} synthetic slides with planted PHI in {samples}\n")
        for r in report:
            print(f"{r['sample']} ({r['format']}) -> {r['research_id']}: {r['status']}, {r['checks_passed']} checks, "
                  f"{r['seconds']}s")
            print(f"  metadata: {r['removed_fields']} removed ({r['unknown_fields_removed']} unknown), "
                  f"{r['replaced_fields']} replaced/scrubbed")
            print(f"  images: {', '.join(f'{k} {v}' for k, v in r['images'].items())}")
            if r["label_macro_findings"]:
                print(f"  label/macro detectors found: {', '.join(r['label_macro_findings'])} (removed)")
            print(f"  planted PHI values left in output: {len(r['planted_values_left'])}")
            print(f"  output: {r['output']}\n  audit:  {r['audit']}")
        print(f"\nInspect one: wsideid inspect {report[0]['output']}")
    ok = all(r["status"] == "published" and not r["planted_values_left"] for r in report)
    return 0 if ok else 1
