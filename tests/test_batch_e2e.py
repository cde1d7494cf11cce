"""End to end: a manifest of real and synthetic slides, a bad row, a corrupt slide and a
slide whose kept macro shows its accession number -> files in the right folders, a
PHI-free OUTDIR, a correct summary and audit, and a rerun that skips finished slides.

``make_batch_sources`` is shared with the report and Dask tests.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
from pathlib import Path

from wsideid.batch.runner import BatchOptions, run_batch
from wsideid.synth import ACCESSION, PLANTED, make_generic_tiff, make_ndpi, make_svs

# Source names that are themselves identifying: none may reach OUTDIR.
CLEAN_SVS = "S24-12345_DOE_JANE.svs"
MACRO_SVS = "S24-99999_ROE_RICHARD.svs"
NDPI = "S24-55555_POE_EDGAR.ndpi"
TIFF = "S24-77777_LOE_MARY.tiff"
CORRUPT = "S24-66666_COE_BEN.svs"


def make_batch_sources(folder: Path) -> dict[str, Path]:
    """Synthetic slides with planted PHI and a truncated (corrupt) one, in ``folder/slides``."""
    d = folder / "slides"
    d.mkdir(parents=True, exist_ok=True)
    make_svs(str(d / CLEAN_SVS), 1024, 768)
    shutil.copyfile(d / CLEAN_SVS, d / MACRO_SVS)
    make_ndpi(str(d / NDPI), 1024, 768)
    make_generic_tiff(str(d / TIFF), 512, 384)
    (d / CORRUPT).write_bytes((d / CLEAN_SVS).read_bytes()[:3000])
    return {p.name: p for p in d.iterdir()}


def write_manifest(folder: Path, rows: list[tuple[str, ...]], name: str = "manifest.csv") -> Path:
    p = folder / name
    with open(p, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["source", "new_id", "subject", "identifiers", "keep_macro"])
        w.writerows(rows)
    return p


def synthetic_rows() -> list[tuple[str, ...]]:
    return [
        (f"slides/{CLEAN_SVS}", "R-0001", "P1", f"{ACCESSION};Jane Doe", "no"),
        (f"slides/{MACRO_SVS}", "R-0002", "P2", f"{ACCESSION};S24-99999", "yes"),  # kept macro shows the code
        (f"slides/{NDPI}", "R-0003", "P3", "S24-55555", ""),
        (f"slides/{TIFF}", "R-0004", "P4", "", ""),
        (f"slides/{CORRUPT}", "R-0005", "P5", "S24-66666", ""),
        ("../outside/DOE-MRN7731.svs", "R-0006", "P6", "", ""),  # bad row: escapes the manifest folder
    ]


def read_summary(path: Path) -> dict[str, dict[str, str]]:
    with open(path, newline="") as fh:
        return {r["row"]: r for r in csv.DictReader(fh)}


def outdir_text(outdir: Path) -> str:
    """Every file name and every byte of OUTDIR, lower-cased, for PHI searches."""
    parts = []
    for p in sorted(outdir.rglob("*")):
        parts.append(p.name)
        if p.is_file():
            parts.append(p.read_bytes().decode("latin-1"))
    return "\n".join(parts).lower()


def forbidden_values(sources: list[str], identifiers: list[str]) -> list[str]:
    stems = [Path(s).stem for s in sources] + [Path(s).name for s in sources]
    return [v for v in [*PLANTED, *stems, *identifiers] if v]


def test_batch_end_to_end_real_and_synthetic(tmp_path):
    from realdata import real
    cmu = real("svs/CMU-1-Small-Region.svs")
    ndpi = real("ndpi/test3-TRITC-2-560.ndpi")
    dcm = real("dicom/wsi2dcm_jpeg.dcm")
    make_batch_sources(tmp_path)
    real_dir = tmp_path / "slides" / "real"
    real_dir.mkdir()
    for p in (cmu, ndpi, dcm):  # linked, never copied into the repository
        os.symlink(p, real_dir / p.name)
    rows = synthetic_rows() + [(f"slides/real/{cmu.name}", "R-0007", "P7", "", ""),
                               (f"slides/real/{ndpi.name}", "R-0008", "P8", "", ""),
                               (f"slides/real/{dcm.name}", "R-0009", "P9", "", ""),
                               (f"slides/{TIFF}", "bad/id", "P9", "", "")]  # bad row: separator in new_id
    manifest = write_manifest(tmp_path, rows)
    out, review = tmp_path / "out", tmp_path / "out-review"
    opts = BatchOptions(jobs=2, detect="residual", ocr=False, progress=False)
    res = run_batch(str(manifest), str(out), opts)

    assert res.exit_code == 2  # a corrupt slide and bad rows: not everything is clean
    assert res.counts == {"published": 6, "flagged": 1, "failed": 1, "refused": 2}
    assert [str(p) for p in res.problems] == [
        "row 7, column source: may not use '..' to leave the manifest's folder",
        "row 11, column new_id: may not contain path separators",
        "row 11, column source: same slide as row 5"]

    # OUTDIR: only verified clean slides named by research ID, their audits, the summary, batch.json
    names = sorted(p.name for p in out.iterdir())
    clean = ["R-0001.svs", "R-0003.ndpi", "R-0004.tiff", "R-0007.svs", "R-0008.ndpi", "R-0009.dcm"]
    assert names == sorted(clean + [n + ".audit.json" for n in clean] + ["batch-summary.csv", "batch.json"])
    text = outdir_text(out)
    leaks = [v for v in forbidden_values([r[0] for r in rows], [ACCESSION, "S24-99999", "S24-55555", "S24-66666"])
             if v.lower() in text]
    assert leaks == []
    assert str(tmp_path).lower() not in text  # no path back into the lab either

    # review folder: the flagged slide with its audit, label/macro images, mapping, records
    assert sorted(p.name for p in (review / "flagged").iterdir()) == ["R-0002.svs", "R-0002.svs.audit.json"]
    images = {p.name for p in (review / "images").iterdir()}
    assert {"R-0001.removed-label-3.jpg", "R-0001.removed-macro-4.jpg", "R-0002.removed-label-3.jpg",
            "R-0002.kept-macro-3.jpg"} <= images
    with open(review / "mapping.csv") as fh:
        mapping = {r["new_id"]: r for r in csv.DictReader(fh)}
    assert mapping["R-0002"]["source"] == f"slides/{MACRO_SVS}" and "S24-99999" in mapping["R-0002"]["identifiers"]
    failed = json.loads((review / "slides" / "R-0005.json").read_text())
    assert failed["status"] == "failed" and failed["error"] and failed["source"].endswith(CORRUPT)
    flagged = json.loads((review / "slides" / "R-0002.json").read_text())
    values = [f["value"] for s in flagged["scans"] for f in s.get("findings", [])]
    assert ACCESSION in values  # the review record keeps what the detectors read (PHI stays here)

    # summary: one row per manifest row, statuses, counts and timings, no error text
    summ = read_summary(out / "batch-summary.csv")
    assert {k: v["status"] for k, v in summ.items()} == {
        "2": "published", "3": "flagged", "4": "published", "5": "published", "6": "failed", "7": "refused",
        "8": "published", "9": "published", "10": "published", "11": "refused"}
    assert summ["3"]["phi_output"] == "1" and "barcode" in summ["3"]["phi_categories"]
    assert summ["6"]["error_kind"] == "MalformedFile" and summ["7"]["error_kind"] == "manifest:source"
    assert int(summ["2"]["removed"]) > 10 and summ["2"]["checks"].split("/")[0] == summ["2"]["checks"].split("/")[1]
    assert float(summ["2"]["t_total"]) > 0
    full = read_summary(review / "batch-summary.csv")
    assert full["6"]["source"] == f"slides/{CORRUPT}" and full["6"]["message"]

    # audit: status, research ID, verification, no values
    audit = json.loads((out / "R-0001.svs.audit.json").read_text())
    assert audit["status"] == "published" and audit["output_name"] == "R-0001.svs"
    assert audit["verification"] and all(c["ok"] for c in audit["verification"])

    # rerun: finished slides are skipped, the corrupt one is tried again
    res2 = run_batch(str(manifest), str(out), opts)
    assert res2.skipped == 7 and res2.ran == 1
    assert read_summary(out / "batch-summary.csv")["2"]["run"] == "skipped"
    # a changed input is done again
    src = tmp_path / "slides" / TIFF
    os.utime(src, ns=(src.stat().st_atime_ns, src.stat().st_mtime_ns + 10**9))
    # ... but its published output is not replaced without --overwrite (issue 17: no run replaces a
    # published file it did not write in this run) ...
    before = (out / "R-0004.tiff").read_bytes()
    res3 = run_batch(str(manifest), str(out), opts)
    assert res3.ran == 2 and res3.counts["published"] == 5 and res3.overwrote == []
    assert read_summary(out / "batch-summary.csv")["5"]["status"] == "failed"
    assert (out / "R-0004.tiff").read_bytes() == before
    # ... and with --overwrite it is, and the replacement is reported
    from dataclasses import replace
    res4 = run_batch(str(manifest), str(out), replace(opts, overwrite=True))
    assert res4.ran == 2 and res4.counts["published"] == 6 and res4.overwrote == ["R-0004.tiff"]
    summ4 = read_summary(out / "batch-summary.csv")
    assert summ4["5"]["run"] == "done" and summ4["5"]["overwrote"] == "R-0004.tiff"


def test_changed_options_replace_the_old_output(tmp_path):
    make_batch_sources(tmp_path)
    m = write_manifest(tmp_path, [(f"slides/{MACRO_SVS}", "R-1", "", ACCESSION, "no")])
    opts = BatchOptions(detect="residual", ocr=False, progress=False)
    assert run_batch(str(m), str(tmp_path / "o"), opts).exit_code == 0
    assert (tmp_path / "o" / "R-1.svs").exists()
    m = write_manifest(tmp_path, [(f"slides/{MACRO_SVS}", "R-1", "", ACCESSION, "yes")])  # now keeps the macro
    res = run_batch(str(m), str(tmp_path / "o"), opts)  # without --overwrite the published file stays
    assert res.exit_code == 2 and res.counts == {"failed": 1} and (tmp_path / "o" / "R-1.svs").exists()
    from dataclasses import replace
    res = run_batch(str(m), str(tmp_path / "o"), replace(opts, overwrite=True))
    assert res.exit_code == 1 and res.counts == {"flagged": 1} and res.overwrote == ["R-1.svs"]
    assert not (tmp_path / "o" / "R-1.svs").exists() and not (tmp_path / "o" / "R-1.svs.audit.json").exists()
    assert (tmp_path / "o-review" / "flagged" / "R-1.svs").exists()


def test_review_dir_inside_outdir_is_refused(tmp_path):
    import pytest
    from wsideid.errors import WsideidError
    make_batch_sources(tmp_path)
    m = write_manifest(tmp_path, [(f"slides/{TIFF}", "R-1", "", "", "")])
    with pytest.raises(WsideidError, match="outside OUTDIR"):
        run_batch(str(m), str(tmp_path / "o"), BatchOptions(review_dir=str(tmp_path / "o" / "rev"), progress=False))


def test_cli_run_with_ocr_and_report(tmp_path, capsys):
    """The one OCR test: detect=all reads the removed label; the QC page and exit code follow."""
    from wsideid.cli import main
    make_batch_sources(tmp_path)
    m = write_manifest(tmp_path, [(f"slides/{CLEAN_SVS}", "R-1", "P1", ACCESSION, "no")])
    rc = main(["run", str(m), "-o", str(tmp_path / "o"), "--no-progress", "--json"])
    data = json.loads(capsys.readouterr().out)
    assert rc == 0 and data["counts"] == {"published": 1}
    rec = json.loads((tmp_path / "o-review" / "slides" / "R-1.json").read_text())
    label = [s for s in rec["scans"] if s["stage"] == "source" and s["role"] == "label"][0]
    assert label["ocr_ran"] and any(f["kind"] == "text" and f["phi"] for f in label["findings"])
    page = Path(data["qc_report"])
    assert page.parent == tmp_path / "o-review" and ACCESSION in page.read_text()
    assert ACCESSION.lower() not in outdir_text(tmp_path / "o")
    assert main(["report", str(tmp_path / "o")]) == 0
    assert main(["run", str(tmp_path / "nope.csv"), "-o", str(tmp_path / "o2"), "--no-progress"]) == 2
