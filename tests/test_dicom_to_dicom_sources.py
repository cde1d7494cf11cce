"""--to-dicom on every format wsidicomizer reads (issue 15 item 6).

A source that lacks what DICOM WSI needs (the pixel spacing) is refused with a
message naming the value and the option that supplies it (``--mpp UM``); with
that option it converts. Every synthetic format the project generates is run:
those wsidicomizer reads are published (and read back by wsidicom at the same
level-0 size, pixels equal to the source's where wsidicomizer had to
re-encode), the others fail with one line, no traceback, nothing published.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import openslide
import pydicom
import pytest

from realdata import real
from wsideid.cli import main

pytest.importorskip("wsidicomizer")


def _run(capsys, src: Path, out: Path, *extra: str) -> tuple[int, str]:
    code = main(["deid", str(src), "-o", str(out), "--new-id", "RESEARCH-000123", "--to-dicom", "--detect", "off",
                 *extra])
    return code, capsys.readouterr().err


def _published(out: Path) -> list[Path]:
    return [p for p in out.iterdir() if p.is_dir()] if out.exists() else []


def _volume0(folder: Path) -> pydicom.Dataset:
    vols = [pydicom.dcmread(f, stop_before_pixels=True) for f in folder.glob("*.dcm")]
    vols = [v for v in vols if v.ImageType[2] == "VOLUME"]
    return max(vols, key=lambda v: int(v.TotalPixelMatrixColumns))


def _spacing_um(ds: pydicom.Dataset) -> float:
    return float(ds.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0].PixelSpacing[0]) * 1000


def _same_pixels(src: Path, folder: Path, tolerance: int = 0) -> None:
    from wsidicom import WsiDicom
    a = openslide.OpenSlide(str(src))
    try:
        w, h = a.dimensions
        pa = np.asarray(a.read_region((0, 0), 0, (w, h)))[..., :3].astype(int)
    finally:
        a.close()
    with WsiDicom.open(folder) as d:
        pb = np.asarray(d.read_region((0, 0), 0, (w, h)).convert("RGB")).astype(int)
    assert np.abs(pa - pb).max() <= tolerance


def test_j2k_svs_without_mpp_says_what_is_missing_and_how_to_give_it(tmp_path, capsys):
    svs = real("svs/tcga-cr-7395-01a-01-ts1.svs")  # JPEG 2000 tiles, no MPP in the description
    out = tmp_path / "out"
    out.mkdir()
    code, err = _run(capsys, svs, out)
    assert code != 0
    assert "lacks the pixel spacing" in err and "MPP" in err and "--mpp UM" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert not [p for p in out.iterdir() if not p.name.startswith(".")]  # nothing published


def test_real_ndpi_converts(tmp_path, capsys):
    ndpi = real("ndpi/test3-TRITC-2-560.ndpi")
    code, err = _run(capsys, ndpi, tmp_path / "out")
    assert code == 0, err
    folder, = _published(tmp_path / "out")
    assert (int(_volume0(folder).TotalPixelMatrixColumns), int(_volume0(folder).TotalPixelMatrixRows)) == (3968, 4864)


def test_real_tcga_svs_converts_with_mpp(tmp_path, capsys):
    svs = real("svs/tcga-cr-7395-01a-01-ts1.svs")
    out = tmp_path / "out"
    code, err = _run(capsys, svs, out, "--mpp", "0.2527")
    assert code == 0, err
    folder, = _published(out)
    ds = _volume0(folder)
    assert str(ds.file_meta.TransferSyntaxUID) == "1.2.840.10008.1.2.4.91"  # wsidicomizer said Baseline: fixed
    assert (int(ds.TotalPixelMatrixColumns), int(ds.TotalPixelMatrixRows)) == (4443, 3567)
    assert abs(_spacing_um(ds) - 0.2527) < 1e-6
    _same_pixels(svs, folder, tolerance=1)  # the same J2K codestreams; two decoders' rounding at most


def test_synthetic_j2k_svs_needs_mpp_and_a_recorded_one_must_agree(tmp_path, capsys):
    from wsideid.synth_vendors import make_j2k_svs
    bare, recorded = tmp_path / "bare.svs", tmp_path / "recorded.svs"
    make_j2k_svs(str(bare))
    make_j2k_svs(str(recorded), mpp=0.5)
    code, err = _run(capsys, bare, tmp_path / "o1")
    assert code == 2 and "--mpp UM" in err and len(err.strip().splitlines()) == 1
    code, err = _run(capsys, bare, tmp_path / "o2", "--mpp", "0.25")
    assert code == 0, err
    folder, = _published(tmp_path / "o2")
    assert abs(_spacing_um(_volume0(folder)) - 0.25) < 1e-6
    code, err = _run(capsys, recorded, tmp_path / "o3", "--mpp", "0.25")
    assert code == 2 and "disagrees with the pixel spacing the slide records" in err
    assert not _published(tmp_path / "o3")
    code, err = _run(capsys, recorded, tmp_path / "o4")
    assert code == 0, err


def test_mpp_disagreeing_with_an_ndpi_is_refused(tmp_path, capsys):
    from wsideid import synth
    ndpi = tmp_path / "levels.ndpi"
    synth.make_ndpi(str(ndpi), width=1024, height=768, level_resolution=True)  # 45000 px/cm: 0.2222 um
    code, err = _run(capsys, ndpi, tmp_path / "o1", "--mpp", "0.25")
    assert code == 2 and "disagrees" in err and not _published(tmp_path / "o1")
    code, err = _run(capsys, ndpi, tmp_path / "o2", "--mpp", "0.2222")
    assert code == 0, err


def _make(kind: str, path: Path) -> None:
    from wsideid import synth, synth_ome, synth_philips, synth_qptiff, synth_vendors
    makers = {"svs": lambda p: synth.make_svs(p, width=1024, height=768),
              "ndpi": lambda p: synth.make_ndpi(p, width=1024, height=768, level_resolution=True),
              "ndpi-one-resolution": lambda p: synth.make_ndpi(p, width=1024, height=768),
              "generic-tiff": synth.make_generic_tiff, "ome-tiff": synth_ome.make_ome_tiff,
              "gt450-svs": synth_vendors.make_gt450_svs, "philips-tiff": synth_philips.make_philips_tiff,
              "qptiff": synth_qptiff.make_qptiff, "bif": synth_vendors.make_bif, "scn": synth_vendors.make_scn}
    makers[kind](str(path))


# format -> (needs --mpp, wsidicomizer re-encodes it: pixels compared with the source)
CONVERTED = {"svs": (False, False), "ndpi": (False, False), "ome-tiff": (False, False),
             "gt450-svs": (False, False), "generic-tiff": (True, True)}
# format -> what the one-line error says (wsidicomizer 0.26.1 / tiffslide cannot read it as written)
NOT_CONVERTED = {"ndpi-one-resolution": "misreads this format",  # every level at 45000/cm
                 "philips-tiff": "could not convert the de-identified Philips TIFF",
                 "qptiff": "could not convert the de-identified Akoya",
                 "bif": "misreads this format",
                 "scn": "could not convert the de-identified Leica SCN"}


@pytest.mark.parametrize("kind", sorted(CONVERTED))
def test_synthetic_formats_convert(kind, tmp_path, capsys):
    src = tmp_path / f"slide.{'svs' if kind.endswith('svs') else kind.split('-')[0]}"
    _make(kind, src)
    needs_mpp, reencoded = CONVERTED[kind]
    if needs_mpp:
        code, err = _run(capsys, src, tmp_path / "bare")
        assert code == 2 and "--mpp UM" in err and len(err.strip().splitlines()) == 1
    code, err = _run(capsys, src, tmp_path / "out", *(["--mpp", "0.25"] if needs_mpp else []))
    assert code == 0, err
    folder, = _published(tmp_path / "out")
    ds = _volume0(folder)
    s = openslide.OpenSlide(str(src))
    try:
        assert (int(ds.TotalPixelMatrixColumns), int(ds.TotalPixelMatrixRows)) == s.dimensions
    finally:
        s.close()
    if reencoded:
        assert str(ds.file_meta.TransferSyntaxUID) == "1.2.840.10008.1.2.4.90"  # reversible JPEG 2000
        _same_pixels(src, folder)


@pytest.mark.parametrize("kind", sorted(NOT_CONVERTED))
def test_synthetic_formats_refused_in_one_line(kind, tmp_path, capsys):
    """Including an NDPI whose levels all record one resolution: wsidicomizer keeps only one of
    them; the size check refuses that series instead of publishing the wrong picture."""
    src = tmp_path / f"slide.{ {'philips-tiff': 'tiff', 'qptiff': 'qptiff', 'bif': 'bif', 'scn': 'scn', 'ndpi-one-resolution': 'ndpi'}[kind]}"
    _make(kind, src)
    extra = [] if kind.startswith("ndpi") else ["--mpp", "0.25"]  # an NDPI records its spacing
    code, err = _run(capsys, src, tmp_path / "out", *extra)
    lines = [line for line in err.strip().splitlines() if not line.startswith("wsideid: warning")]
    assert code == 2 and len(lines) == 1 and "Traceback" not in err
    assert NOT_CONVERTED[kind] in lines[0]
    assert not _published(tmp_path / "out")
    assert not [p for p in os.listdir(tmp_path / "out") if not p.startswith(".")]


def test_batch_converts_every_row_with_its_own_mpp(tmp_path, capsys):
    """``wsideid run --to-dicom``: each row of a manifest becomes a verified DICOM folder; a slide
    without a recorded pixel spacing takes the manifest's mpp column; mpp without --to-dicom and a
    DICOM row under --to-dicom are refused rows (named in both summaries), not run without them."""
    import csv
    from wsideid.synth import make_svs
    from wsideid.synth_vendors import make_j2k_svs
    src = tmp_path / "slides"
    src.mkdir()
    make_svs(str(src / "a.svs"))
    make_j2k_svs(str(src / "b.svs"))  # records no pixel spacing
    manifest = tmp_path / "m.csv"
    with open(manifest, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerows([["source", "new_id", "mpp"], ["slides/a.svs", "R-A", ""], ["slides/b.svs", "R-B", "0.25"]])
    out = tmp_path / "out"
    code = main(["run", str(manifest), "-o", str(out), "--to-dicom", "--detect", "off", "--no-progress"])
    assert code == 0, capsys.readouterr()
    assert sorted(p.name for p in _published(out)) == ["R-A", "R-B"]
    assert abs(_spacing_um(_volume0(out / "R-B")) - 0.25) < 1e-6
    for name in ("R-A", "R-B"):
        assert {str(pydicom.dcmread(f, stop_before_pixels=True).PatientID) for f in (out / name).glob("*.dcm")} \
            == {name}
    # mpp without --to-dicom: the row is refused; the other still runs (as TIFF)
    code = main(["run", str(manifest), "-o", str(tmp_path / "plain"), "--detect", "off", "--no-progress"])
    assert code != 0
    err = capsys.readouterr()
    assert "row 3, column mpp" in err.out + err.err
    assert [p.name for p in (tmp_path / "plain").iterdir() if p.suffix == ".svs"] == ["R-A.svs"]


_SETTINGS = ("from pydicom import config; s = config.settings; "
             "print(config._use_future, config.INVALID_KEYWORD_BEHAVIOR, s._writing_validation_mode, "
             "s._reading_validation_mode)")


def test_converting_leaves_pydicom_settings_as_it_found_them(tmp_path):
    """Importing wsidicomizer switches pydicom process-wide to its future behaviour; the DICOM
    run after a conversion, and the next slide of a batch, must be judged under the settings a
    plain DICOM run has. A fresh process, since an import runs once."""
    import subprocess
    import sys
    src = tmp_path / "slide.svs"
    _make("svs", src)
    script = (f"{_SETTINGS}\n"
              "from wsideid.dicom.convert import check_available, dicomize\n"
              f"check_available(); {_SETTINGS}\n"
              f"dicomize({str(src)!r}, {str(tmp_path / 'dcm')!r}, 'R1'); {_SETTINGS}\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    before, after_import, after_convert = out.strip().splitlines()
    assert before == after_import == after_convert, out
    assert os.listdir(tmp_path / "dcm")
