"""Malformed DICOM: a one-line error or a clean verified output, never a traceback or a partial output."""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest

from test_dicom_fixtures import dicom_file
from wsideid.cli import main


def _run_cli(capsys, src: Path, out: Path, *extra: str) -> tuple[int, str]:
    out.mkdir(exist_ok=True)
    code = main(["deid", str(src), "-o", str(out), "--new-id", "RID-9", *extra])
    err = capsys.readouterr().err
    return code, err


def _assert_clean_failure(code: int, err: str, out: Path) -> None:
    assert code in (2, 3), err
    lines = [x for x in err.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("wsideid: error:"), err
    assert "Traceback" not in err and "internal error" not in err
    assert list(out.iterdir()) == []  # nothing published, no temporary left behind


def _assert_ok_or_clean_failure(code: int, err: str, out: Path) -> None:
    if code == 0:
        files = [p for p in out.iterdir() if not p.name.endswith(".audit.json")]
        assert len(files) == 1
        pydicom.dcmread(files[0])
    elif code == 1:
        # flagged: the residual detectors could not clear a kept image, so the
        # output went to the review folder and nothing is in OUTDIR
        assert not [p for p in out.iterdir() if not p.name.startswith(".")]
        assert list((out.parent / (out.name + "-review") / "flagged").iterdir())
    else:
        _assert_clean_failure(code, err, out)


@pytest.mark.parametrize("cut", [600, 2000, 100_000, 150_000])
def test_truncated(tmp_path, capsys, cut):
    data = dicom_file("wsi2dcm_jpeg").read_bytes()[:cut]
    src = tmp_path / "trunc.dcm"
    src.write_bytes(data)
    code, err = _run_cli(capsys, src, tmp_path / "out")
    _assert_clean_failure(code, err, tmp_path / "out")


def test_garbage_after_magic(tmp_path, capsys):
    src = tmp_path / "junk.dcm"
    src.write_bytes(b"\0" * 128 + b"DICM" + bytes(range(256)) * 4)
    code, err = _run_cli(capsys, src, tmp_path / "out")
    _assert_clean_failure(code, err, tmp_path / "out")


def test_missing_image_type(tmp_path, capsys):
    ds = pydicom.dcmread(dicom_file("highdicom_sm_image"))
    del ds.ImageType
    src = tmp_path / "noimagetype.dcm"
    ds.save_as(src)
    code, err = _run_cli(capsys, src, tmp_path / "out")
    _assert_clean_failure(code, err, tmp_path / "out")
    assert "removes every image" in err


def _swap_vr(data: bytes, tag: bytes, old: bytes, new: bytes) -> bytes:
    i = data.index(tag + old)
    return data[:i] + tag + new + data[i + 6:]


@pytest.mark.parametrize("tag,old,new", [
    (b"\x10\x00\x10\x00", b"PN", b"US"),  # PatientName as US
    (b"\x28\x00\x10\x00", b"US", b"LO"),  # Rows as LO (2 bytes of text)
    (b"\x08\x00\x20\x00", b"DA", b"FD"),  # StudyDate as a double
])
def test_wrong_vr(tmp_path, capsys, tag, old, new):
    data = _swap_vr(dicom_file("highdicom_sm_image").read_bytes(), tag, old, new)
    src = tmp_path / "wrongvr.dcm"
    src.write_bytes(data)
    code, err = _run_cli(capsys, src, tmp_path / "out")
    _assert_ok_or_clean_failure(code, err, tmp_path / "out")


def test_odd_length_binary_value(tmp_path, capsys):
    data = bytearray(dicom_file("highdicom_sm_image").read_bytes())
    i = data.index(b"\x28\x00\x10\x00US")  # Rows: 2 bytes -> claim 3
    data[i + 6:i + 8] = (3).to_bytes(2, "little")
    src = tmp_path / "odd.dcm"
    src.write_bytes(bytes(data))
    code, err = _run_cli(capsys, src, tmp_path / "out")
    _assert_ok_or_clean_failure(code, err, tmp_path / "out")


def test_folder_with_non_dicom_file(tmp_path, capsys):
    folder = tmp_path / "slide"
    folder.mkdir()
    (folder / "a.dcm").write_bytes(dicom_file("highdicom_sm_image").read_bytes())
    (folder / "notes.txt").write_text("Patient Jane Roe, MRN 12345")
    code, err = _run_cli(capsys, folder, tmp_path / "out")
    assert code == 0, err
    outs = sorted((tmp_path / "out" / "RID-9").iterdir())
    assert len(outs) == 1 and outs[0].suffix == ".dcm"


def test_existing_output_not_overwritten(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "RID-9.dcm").write_bytes(b"keep me")
    code, err = _run_cli(capsys, dicom_file("highdicom_sm_image"), out)
    assert code == 2 and "already exists" in err
    assert (out / "RID-9.dcm").read_bytes() == b"keep me"


def test_burned_in_volume_refused(tmp_path, capsys):
    ds = pydicom.dcmread(dicom_file("highdicom_sm_image"))
    ds.BurnedInAnnotation = "YES"
    src = tmp_path / "burned.dcm"
    ds.save_as(src)
    code, err = _run_cli(capsys, src, tmp_path / "out")
    _assert_clean_failure(code, err, tmp_path / "out")
    assert "burned-in" in err


@pytest.mark.parametrize("seed", range(12))
def test_random_header_corruption(tmp_path, capsys, seed):
    import random
    data = bytearray(dicom_file("highdicom_sm_image").read_bytes())
    rng = random.Random(seed)
    for _ in range(8):  # flip bytes in the header (after the preamble, before the pixel data)
        data[rng.randrange(132, 9000)] = rng.randrange(256)
    src = tmp_path / "flipped.dcm"
    src.write_bytes(bytes(data))
    code, err = _run_cli(capsys, src, tmp_path / "out")
    _assert_ok_or_clean_failure(code, err, tmp_path / "out")



@pytest.mark.parametrize("marker,offset,patch,must_fail", [
    (b"\x18\x00\x50\x00DS", 8, b"K", False),    # SliceThickness value "K.01": not a decimal string
    (b"\x02\x00\x03\x00UI", 4, b"U\xd0", True),  # file meta element with an unknown VR
])
def test_patched_bytes(tmp_path, capsys, marker, offset, patch, must_fail):
    data = bytearray(dicom_file("highdicom_sm_image").read_bytes())
    i = data.index(marker) + offset
    data[i:i + len(patch)] = patch
    src = tmp_path / "patched.dcm"
    src.write_bytes(bytes(data))
    code, err = _run_cli(capsys, src, tmp_path / "out")
    (_assert_clean_failure if must_fail else _assert_ok_or_clean_failure)(code, err, tmp_path / "out")
