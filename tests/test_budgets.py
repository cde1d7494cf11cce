"""Per-slide budgets (issue 17 item 5): hostile sizes are refused in bounded memory, audits stay bounded.

The full-size cases of the issue (a 48 MB file of 1000 x 4000 tags, 480 MB
and 30 MB Aperio descriptions, 16.7 million shared tiles) run in
bench/bench_budgets.py; these are the same generators scaled to just past
each bound, so they prove the bound in seconds. Peak memory is measured in
a fresh wrapper process (RUSAGE_CHILDREN of the CLI it starts), never timed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import hostile_sizes as hs
from wsideid import budget
from wsideid.errors import MalformedFile
from wsideid.tiff.container import read_tiff

WRAP = r"""
import resource, subprocess, sys
p = subprocess.run(sys.argv[1:], capture_output=True, text=True)
print(p.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024, sep="\t")
sys.stderr.write(p.stderr)
"""


def run_cli(src: Path, out: Path) -> tuple[int, int, str]:
    """Exit code, peak RSS in MB of the CLI process, its stderr."""
    out.mkdir(exist_ok=True)
    p = subprocess.run([sys.executable, "-c", WRAP, sys.executable, "-m", "wsideid.cli", "deid", str(src),
                        "-o", str(out), "--detect", "off"], capture_output=True, text=True, timeout=300)
    rc, peak = p.stdout.split("\t")
    return int(rc), int(peak), p.stderr


def assert_refused(rc: int, err: str, out: Path, words: str) -> None:
    assert rc == 2, err
    assert err.startswith("wsideid: error:") and len(err.strip().splitlines()) == 1, err
    assert words in err, err
    assert list(out.iterdir()) == []


def test_entries_across_images_are_one_budget(tmp_path):
    """30 images x 4000 tags: each IFD within its own limit, the slide over the entry budget."""
    images = budget.MAX_ENTRIES // 4000 + 5
    src = hs.many_tags(tmp_path / "tags.tif", images, 4000)
    with pytest.raises(MalformedFile, match="more than 100000 metadata entries"):
        read_tiff(src)
    rc, peak, err = run_cli(src, tmp_path / "out")
    assert_refused(rc, err, tmp_path / "out", "metadata entries")
    assert peak < 400, peak


def test_tiles_across_the_slide_are_one_budget(tmp_path):
    """Shared 16x16 tiles just past the segment budget: refused while reading, before any per-tile work."""
    side = int(budget.MAX_SEGMENTS ** 0.5) + 2
    src = hs.shared_tiles(tmp_path / "tiles.tif", side)
    rc, peak, err = run_cli(src, tmp_path / "out")
    assert_refused(rc, err, tmp_path / "out", "tiles or strips")
    assert peak < 400, peak


def test_a_value_past_the_byte_budget_is_never_read(tmp_path):
    """A description larger than the metadata budget is refused by its claimed size, before the copy."""
    src = hs.aperio_description(tmp_path / "big.svs", budget.MAX_METADATA_BYTES + (1 << 20))
    rc, peak, err = run_cli(src, tmp_path / "out")
    assert_refused(rc, err, tmp_path / "out", "MB budget")
    assert peak < 150, peak  # the 64 MB value was never copied into memory


def test_a_long_description_is_refused_before_it_is_split(tmp_path):
    """10 MB of ``ab|`` (3.3 million keys): refused by counting, not by splitting (the 30 MB case used 876 MB)."""
    src = hs.aperio_description(tmp_path / "keys.svs", 10_000_000)
    rc, peak, err = run_cli(src, tmp_path / "out")
    assert_refused(rc, err, tmp_path / "out", "keys in one metadata text")
    assert peak < 200, peak


def test_audit_is_bounded_and_summarises_the_rest(tmp_path):
    """A slide that publishes with more fields than the audit lists: first ones listed, the rest counted."""
    n_tags = budget.MAX_AUDIT_FIELDS + 700
    src = hs.many_tags(tmp_path / "wide.tif", 1, n_tags)
    out = tmp_path / "out"
    rc, peak, err = run_cli(src, out)
    assert rc in (0, 1), err
    (audit_path,) = out.glob("*.audit.json")
    audit = json.loads(audit_path.read_text())
    assert len(audit["fields"]) == budget.MAX_AUDIT_FIELDS
    rest = audit["fields_omitted"]
    assert rest["omitted"] == sum(r["count"] for r in rest["by_rule"]) > 600
    assert len(audit["fields"]) + rest["omitted"] >= n_tags - 20  # every field listed or counted
    assert audit_path.stat().st_size < 1_000_000


def test_bounded_list_keeps_order_and_counts():
    recs = [{"rule": f"r{i % 3}", "action": "remove"} for i in range(10)]
    kept, rest = budget.bounded_list(recs, 4)
    assert kept == recs[:4]
    assert rest == {"omitted": 6, "by_rule": [{"rule": "r0", "action": "remove", "count": 2},
                                              {"rule": "r1", "action": "remove", "count": 2},
                                              {"rule": "r2", "action": "remove", "count": 2}]}
    assert budget.bounded_list(recs, 10) == (recs, None)


def test_budget_charges_add_up_across_calls():
    b = budget.Budget()
    b.charge_entries(budget.MAX_ENTRIES)
    with pytest.raises(MalformedFile, match="metadata entries"):
        b.charge_entries(1)
    b.charge_bytes(budget.MAX_METADATA_BYTES - 10)
    with pytest.raises(MalformedFile, match="budget"):
        b.charge_bytes(11)


DICOM_SEED = Path(__file__).resolve().parents[2] / "shared" / "testdata" / "dicom" / "openslide-python_boxes_0.dcm"
needs_dicom = pytest.mark.skipif(not DICOM_SEED.exists(), reason="real DICOM seed not available")


@needs_dicom
def test_dicom_header_value_past_the_byte_budget(tmp_path):
    """A private value larger than the budget: refused by the header walk, before pydicom reads it."""
    src = hs.dicom_big_value(tmp_path / "big.dcm", DICOM_SEED, budget.MAX_METADATA_BYTES + (1 << 20))
    rc, peak, err = run_cli(src, tmp_path / "out")
    assert_refused(rc, err, tmp_path / "out", "MB budget")
    assert peak < 150, peak


@needs_dicom
def test_dicom_header_elements_are_one_budget(tmp_path):
    """Tiny elements nested in a sequence, just past the entry budget (the old path took minutes at 2 M)."""
    src = hs.dicom_many_elements(tmp_path / "many.dcm", DICOM_SEED, budget.MAX_ENTRIES + 10)
    rc, peak, err = run_cli(src, tmp_path / "out")
    assert_refused(rc, err, tmp_path / "out", "metadata entries")
    assert peak < 150, peak
