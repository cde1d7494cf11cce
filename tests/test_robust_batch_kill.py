"""SIGKILL during a batch: no partial slide at any output path, and a rerun completes."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time

import numpy as np
import openslide

from wsideid.pipeline import TMP_PREFIX
from wsideid.synth import PLANTED, make_generic_tiff, make_ndpi, make_svs


def _batch(folder):
    slides = folder / "slides"
    slides.mkdir(parents=True)
    make_svs(str(slides / "a.svs"), 1024, 768)
    make_ndpi(str(slides / "b.ndpi"), 1024, 768)
    make_generic_tiff(str(slides / "c.tiff"), 512, 384)
    for n in range(3):
        (slides / f"a{n}.svs").write_bytes((slides / "a.svs").read_bytes())
    manifest = folder / "manifest.csv"
    with open(manifest, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["source", "new_id", "subject"])
        for i, name in enumerate(sorted(p.name for p in slides.iterdir()), 1):
            w.writerow([f"slides/{name}", f"K-{i:03d}", f"S{i}"])
    return manifest, len(list(slides.iterdir()))


def _check_outdir(out):
    """Whatever is in OUTDIR (temps aside) is a complete, clean slide with its audit."""
    if not out.exists():
        return 0
    slides = [p for p in out.iterdir() if not p.name.startswith(TMP_PREFIX)
              and p.suffix in (".svs", ".ndpi", ".tiff")]
    for p in slides:
        o = openslide.OpenSlide(str(p))
        w, h = o.level_dimensions[-1]
        np.asarray(o.read_region((0, 0), o.level_count - 1, (w, h)))
        blob = p.read_bytes().lower()
        assert not [v for v in PLANTED if v.lower().encode() in blob]
        assert (out / (p.name + ".audit.json")).exists(), f"{p.name} published without its audit"
    return len(slides)


def test_kill_batch_at_random_points_then_rerun(tmp_path):
    manifest, n = _batch(tmp_path)
    out = tmp_path / "out"
    rng = np.random.default_rng(11)
    cmd = [sys.executable, "-m", "wsideid.cli", "run", str(manifest), "-o", str(out), "--jobs", "2",
           "--detect", "off"]
    for _ in range(3):
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        time.sleep(float(rng.uniform(0.3, 2.5)))
        os.killpg(proc.pid, signal.SIGKILL)  # the runner and its worker processes
        proc.wait()
        _check_outdir(out)
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-1500:]
    assert _check_outdir(out) == n
