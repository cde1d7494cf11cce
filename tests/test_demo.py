"""The README's main job: `wsideid demo` end to end (SVS, NDPI, TIFF, DICOM, batch, QC page)."""

from __future__ import annotations

import json
import os
import subprocess
import sys


def test_demo_runs_clean(tmp_path):
    p = subprocess.run([sys.executable, "-m", "wsideid.cli", "demo", "--workdir", str(tmp_path), "--json"],
                       capture_output=True, text=True, timeout=300)
    report = json.loads(p.stdout) if p.stdout.strip().startswith("{") else {}
    unexpected = [(r.get("new_id"), r["status"], r.get("error_kind"), r.get("phi_categories"))
                  for r in report.get("slides", []) if r["status"] not in ("published", "refused")]
    assert p.returncode == 0, (report.get("counts"), unexpected, p.stderr[-2000:])
    assert report["planted_values_in_outdir"] == []
    assert report["counts"]["flagged"] == 1 and report["counts"]["refused"] == 1
    formats = {r.get("format") for r in report["slides"] if r["status"] == "published"}
    assert {"aperio", "hamamatsu", "generic-tiff"} <= formats
    assert os.path.exists(report["qc_report"])
    assert not report["qc_report"].startswith(report["outdir"] + os.sep)
