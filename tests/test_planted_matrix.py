"""Planted-PHI matrix (attacker audit): for every format and every place in
tests/planted_matrix.py, ``wsideid deid SLIDE -o OUT`` with the CLI's defaults
(detectors on) either refuses or flags the slide with no slide in OUT, or
publishes an output in which no spelling of the needle (name parts,
accession, date spellings; ASCII/Latin-1/UTF-8/UTF-16 LE and BE,
case-folded; base64) appears in any byte of any file in OUT or in a file name.

Each case first asserts that the needle really stands in the input, so a
case whose planting silently failed cannot pass.
"""

from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path

import pytest

import phi_corpus as pc
import planted_matrix as pm
from wsideid import cli

from published_outputs import SLIDE_SUFFIXES, published


def run_cli(src: Path, outdir: Path, monkeypatch, *extra: str) -> tuple[int, str]:
    monkeypatch.setenv("WSIDEID_SECRET", "planted-matrix-secret-0123456789abcdef")
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        rc = cli.main(["deid", str(src), "-o", str(outdir), *extra])
    return rc, err.getvalue()


def run_and_judge(place: pm.Place, src: Path, tmp_path: Path, monkeypatch) -> None:
    """The CLI's defaults; a byte place whose slide was flagged (the detectors read pixels and
    vouch for no byte) is run again with --detect off, so a flag cannot hide a byte leak."""
    outdir = tmp_path / "out"
    rc, err = run_cli(src, outdir, monkeypatch)
    outcome = judge(place, src, outdir, rc, err)
    if outcome == "flagged" and place.kind == "bytes":
        outdir = tmp_path / "out-detect-off"
        rc, err = run_cli(src, outdir, monkeypatch, "--detect", "off")
        outcome = "flagged, then " + judge(place, src, outdir, rc, err) + " with --detect off"
    log(place, outcome, err)



def input_holds_needle(src: Path) -> bool:
    files = [src] if src.is_file() else [p for p in src.rglob("*") if p.is_file()]
    return any(pc.find_in_bytes(p.read_bytes(), pm.SEARCH) for p in files)


def leaks(outdir: Path) -> dict[str, list[str]]:
    hits = pc.find_in_tree(outdir, pm.SEARCH)
    for p in outdir.rglob("*"):
        if p.is_file():
            blob = p.read_bytes()
            for n in pm.SEARCH_B64:
                if n.encode() in blob:
                    hits.setdefault("base64:" + n, []).append(str(p.relative_to(outdir)))
    return hits


def published_dims(path: Path) -> set[tuple[int, int]]:
    import tifffile
    out = set()
    with tifffile.TiffFile(path) as t:
        for p in t.pages:
            out.add((p.imagewidth, p.imagelength))
            out |= {(q.imagewidth, q.imagelength) for q in (getattr(p, "pages", None) or [])}
    return out


def judge(place: pm.Place, src: Path, outdir: Path, rc: int, err: str) -> str:
    """Asserts the rule; returns the outcome (published | flagged | refused)."""
    assert "Traceback" not in err and rc != 70, f"{place.id}: internal error: {err}"
    hits = leaks(outdir)
    assert not hits, f"{place.id}: needle in OUTDIR (exit {rc}): " + "; ".join(
        f"{n!r} in {sorted(set(w))[:3]}" for n, w in sorted(hits.items()))
    if rc == 0:
        if place.kind == "image":
            import openslide
            outs = [outdir / p for p in published(outdir) if p.lower().endswith(SLIDE_SUFFIXES)]
            for o in outs:
                assert place.dims not in published_dims(o), f"{place.id}: the {place.dims} label/macro was published"
                with openslide.OpenSlide(str(o)) as osr:
                    assert not {"label", "macro"} & set(osr.associated_images), place.id
        return "published"
    assert rc in (1, 2, 3), f"{place.id}: exit {rc}: {err}"
    assert not published(outdir), f"{place.id}: exit {rc} but OUTDIR holds {published(outdir)}"
    if rc in (2, 3):
        lines = [ln for ln in err.strip().splitlines() if not ln.startswith("wsideid: warning")]
        assert len(lines) == 1, f"{place.id}: refusal is not one line: {err!r}"
        assert not pc.find_in_bytes(err.encode(), pm.SEARCH), f"{place.id}: refusal quotes the needle: {err}"
        return "refused"
    return "flagged"


TIFF_PLACES = pm.tiff_places()


@pytest.mark.parametrize("place", TIFF_PLACES, ids=[p.id for p in TIFF_PLACES])
def test_tiff_place(place, tmp_path, monkeypatch):
    src = place.build(tmp_path)
    if place.kind == "bytes":
        assert input_holds_needle(src), f"{place.id}: the needle is not in the input (builder bug)"
    run_and_judge(place, src, tmp_path, monkeypatch)


def log(place: pm.Place, outcome: str, err: str) -> None:
    """$PLANTED_MATRIX_LOG: one line per place with its outcome (to see which places only pass by refusal)."""
    if os.environ.get("PLANTED_MATRIX_LOG"):
        with open(os.environ["PLANTED_MATRIX_LOG"], "a") as fh:
            fh.write(f"{place.id}\t{outcome}\t{err.strip().splitlines()[-1] if err.strip() else ''}\n")


REAL_DICOM = {"highdicom": "dicom/highdicom_sm_image.dcm", "wsi2dcm": "dicom/wsi2dcm_jpeg.dcm",
              "jpegls": "dicom/highdicom_sm_image_jpegls.dcm", "j2k": "dicom/wsi2dcm_jpeg2000.dcm"}


def _real_dicom() -> dict[str, Path]:
    from realdata import TESTDATA
    return {k: TESTDATA / v for k, v in REAL_DICOM.items()}


DICOM_PLACES = pm.dicom_places(_real_dicom())


@pytest.mark.parametrize("place", DICOM_PLACES, ids=[p.id for p in DICOM_PLACES])
def test_dicom_place(place, tmp_path, monkeypatch):
    pytest.importorskip("wsidicomizer")
    if place.id.startswith("real-"):
        from realdata import real
        real(REAL_DICOM[place.id.split("-")[1]])  # skips when ../shared/testdata is absent
    src = place.build(tmp_path)
    assert input_holds_needle(src), f"{place.id}: the needle is not in the input (builder bug)"
    run_and_judge(place, src, tmp_path, monkeypatch)


MRXS_PLACES = pm.mrxs_places()


@pytest.mark.parametrize("place", MRXS_PLACES, ids=[p.id for p in MRXS_PLACES])
def test_mrxs_place(place, tmp_path, monkeypatch):
    src = place.build(tmp_path)
    assert input_holds_needle(src.parent), f"{place.id}: the needle is not in the input (builder bug)"
    run_and_judge(place, src, tmp_path, monkeypatch)


def _real_tiff_places() -> list[pm.Place]:
    from realdata import TESTDATA
    return pm.real_tiff_places(TESTDATA)


REAL_TIFF_PLACES = _real_tiff_places()


@pytest.mark.parametrize("place", REAL_TIFF_PLACES, ids=[p.id for p in REAL_TIFF_PLACES])
def test_real_tiff_place(place, tmp_path, monkeypatch):
    from realdata import real
    name = place.id[len("real-"):].rsplit("-", 1)[0].replace("-tags-and", "")
    real(pm.REAL_TIFF[name])  # skips when ../shared/testdata is absent
    src = place.build(tmp_path)
    assert input_holds_needle(src), f"{place.id}: the needle is not in the input (builder bug)"
    run_and_judge(place, src, tmp_path, monkeypatch)


def test_the_search_sees_every_encoding(tmp_path):
    """The judge can fail: the needle copied into OUTDIR (ASCII, UTF-16 LE/BE, base64, a file name)
    is found each time."""
    for n, blob in enumerate((pm.NEEDLE.encode(), pm.NEEDLE.upper().encode("utf-16-le"),
                              b"\0" + pm.NEEDLE.encode("utf-16-be"), __import__("base64").b64encode(b"xy" + pm.NEEDLE.encode()))):
        out = tmp_path / f"o{n}"
        out.mkdir()
        (out / "x.svs").write_bytes(b"junk" + blob + b"junk")
        assert leaks(out), blob
    out = tmp_path / "named"
    out.mkdir()
    (out / f"{pm.ACC}.svs.audit.json").write_text("{}")
    assert leaks(out)
