"""3DHistech MIRAX: a synthetic slide written to OpenSlide's published layout, with PHI in every
carrier (key file, label, macro, ProfileXML record, data file header, the .mrxs file), through
the real CLI and the real OpenSlide; then hostile variants of each file."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import openslide
import pytest

from wsideid.mrxs.slide import claims, open_mrxs
from wsideid.mrxs.synth import PLANTED_MRXS, SLIDE_ID, make_mrxs

ENV = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]), "WSIDEID_SECRET": "mrxs-test-secret"}


def cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "wsideid.cli", *map(str, args)], env=ENV,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("mrxs-src")
    make_mrxs(str(d / "case 17.mrxs"))
    return d / "case 17.mrxs"


@pytest.fixture(scope="module")
def published(source, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("mrxs-out")
    r = cli("deid", source, "-o", out, "--new-id", "R-17", "--detect", "off")
    assert r.returncode == 0, r.stderr
    return out


def _all_bytes(folder: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file())


def test_fixture_is_what_openslide_calls_mirax(source):
    with openslide.OpenSlide(str(source)) as o:
        assert o.properties["openslide.vendor"] == "mirax"
        assert o.level_count == 3 and sorted(o.associated_images) == ["label", "macro", "thumbnail"]
    data = _all_bytes(source.parent)
    assert all(v.encode() in data for v in PLANTED_MRXS), "the fixture must carry every planted value"


def test_output_is_mirax_with_same_levels_mpp_and_pixels(source, published):
    out = published / "R-17.mrxs"
    assert out.exists() and (published / "R-17").is_dir()
    with openslide.OpenSlide(str(source)) as a, openslide.OpenSlide(str(out)) as b:
        assert b.properties["openslide.vendor"] == "mirax"
        assert a.level_dimensions == b.level_dimensions
        assert a.properties["openslide.mpp-x"] == b.properties["openslide.mpp-x"]
        assert list(b.associated_images) == ["thumbnail"]  # label and macro gone
        for level in range(a.level_count):
            size = a.level_dimensions[level]
            assert np.array_equal(np.asarray(a.read_region((0, 0), level, size)),
                                  np.asarray(b.read_region((0, 0), level, size))), level


def test_no_planted_value_in_any_byte(published):
    data = _all_bytes(published).lower()
    for v in PLANTED_MRXS + ["quokka", "case 17"]:
        for enc in ("utf-8", "utf-16-le", "utf-16-be"):
            assert v.lower().encode(enc) not in data, (v, enc)
    assert (published / "R-17.mrxs").stat().st_size == 0


def test_slide_id_is_keyed_and_consistent(source, published, tmp_path):
    out = open_mrxs(str(published / "R-17.mrxs"))
    assert out.slide_id != SLIDE_ID and re.fullmatch(r"[0-9a-f]{32}", out.slide_id)
    assert (published / "R-17" / "Data0000.dat").read_bytes().startswith(b"01.02" + out.slide_id.encode() + b"000")
    again = tmp_path / "again"
    again.mkdir()
    assert cli("deid", source, "-o", again, "--new-id", "R-18", "--detect", "off").returncode == 0
    assert open_mrxs(str(again / "R-18.mrxs")).slide_id == out.slide_id  # same secret, same slide


def test_key_file_keeps_only_typed_structure(published):
    kf = open_mrxs(str(published / "R-17.mrxs")).ini
    assert "SCANNER" not in kf.groups
    assert set(kf.groups["GENERAL"]) == {"SLIDE_VERSION", "SLIDE_ID", "IMAGENUMBER_X", "IMAGENUMBER_Y",
                                         "OBJECTIVE_MAGNIFICATION", "CameraImageDivisionsPerSide",
                                         "CURRENT_SLIDE_VERSION"}
    hier = kf.groups["HIERARCHICAL"]
    assert hier["NONHIER_COUNT"] == "2" and "ProfileXML" not in hier.values()


def test_audit_records_every_removal(published):
    import json
    audit = json.loads((published / "R-17.mrxs.audit.json").read_text())
    text = json.dumps(audit)
    assert "quokka" not in text.lower() and "DOE" not in text
    roles = {(i["role"], i["action"]) for i in audit["images"]}
    assert {("label", "remove"), ("macro", "remove"), ("thumbnail", "keep"), ("unknown", "remove")} <= roles


def test_content_decides_not_the_suffix(source, tmp_path):
    other = tmp_path / "slide.bin"
    shutil.copy(source, other)
    shutil.copytree(source.parent / "case 17", tmp_path / "slide")
    assert claims(str(other))
    tiff = tmp_path / "fake.mrxs"
    tiff.write_bytes(b"II*\0" + bytes(64))
    shutil.copytree(source.parent / "case 17", tmp_path / "fake")
    assert not claims(str(tiff))


def test_residual_detectors_run_on_the_kept_thumbnail(source, tmp_path):
    r = cli("deid", source, "-o", tmp_path, "--new-id", "R-19")
    assert r.returncode in (0, 3), r.stderr
    assert (tmp_path / "R-19.mrxs").exists() or (tmp_path.parent / f"{tmp_path.name}-review" / "flagged" / "R-19.mrxs").exists()


def _mutant(source: Path, tmp_path: Path, mutate) -> Path:
    d = tmp_path / "m"
    d.mkdir()
    shutil.copy(source, d / "s.mrxs")
    shutil.copytree(source.parent / "case 17", d / "s")
    mutate(d / "s")
    return d / "s.mrxs"


def _set_key(folder: Path, key: str, value: str) -> None:
    p = folder / "Slidedat.ini"
    text = p.read_bytes().decode("utf-8-sig")
    text = re.sub(rf"(?m)^{re.escape(key)} = .*$", f"{key} = {value}", text)
    p.write_bytes(text.encode())


HOSTILE = {
    "truncated index": lambda f: (f / "Index.dat").write_bytes((f / "Index.dat").read_bytes()[:60]),
    "record outside its data file": lambda f: (f / "Data0000.dat").write_bytes((f / "Data0000.dat").read_bytes()[:5000]),
    "path traversal in a data file name": lambda f: _set_key(f, "FILE_0", "../../../etc/passwd"),
    "missing data file": lambda f: (f / "Data0000.dat").unlink(),
    "duplicate key": lambda f: (f / "Slidedat.ini").write_bytes(
        (f / "Slidedat.ini").read_bytes().replace(b"[GENERAL]\r\n", b"[GENERAL]\r\nSLIDE_ID = x\r\n")),
    "page count beyond the budget": lambda f: (f / "Index.dat").write_bytes(
        (lambda b: b[:len(b) - 8] + (10 ** 9).to_bytes(4, "little") + b[len(b) - 4:])((f / "Index.dat").read_bytes())),
    "slide id mismatch": lambda f: _set_key(f, "SLIDE_ID", "00000000000000000000000000000000"),
    "not utf-8": lambda f: (f / "Slidedat.ini").write_bytes(b"[GENERAL]\r\nSLIDE_ID = \xff\xfe\r\n[HIERARCHICAL]\r\n"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_variants_fail_in_one_line_and_publish_nothing(case, source, tmp_path):
    path = _mutant(source, tmp_path, HOSTILE[case])
    out = tmp_path / "out"
    out.mkdir()
    r = cli("deid", path, "-o", out, "--new-id", "R-1", "--detect", "off")
    assert r.returncode == 2, (case, r.returncode, r.stderr)
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert [p.name for p in out.iterdir()] == []


def test_text_in_tile_segments_is_dropped_pixels_kept(tmp_path):
    src = tmp_path / "c.mrxs"
    make_mrxs(str(src), tile_comment=b"scanned by jsmith.lab for DOE^JANE")
    out = tmp_path / "out"
    out.mkdir()
    r = cli("deid", src, "-o", out, "--new-id", "R-2", "--detect", "off")
    assert r.returncode == 0, r.stderr
    assert b"jsmith" not in _all_bytes(out) and b"DOE^JANE" not in _all_bytes(out)
    with openslide.OpenSlide(str(src)) as a, openslide.OpenSlide(str(out / "R-2.mrxs")) as b:
        assert np.array_equal(np.asarray(a.read_region((0, 0), 0, (1024, 1024))),
                              np.asarray(b.read_region((0, 0), 0, (1024, 1024))))


def test_text_hidden_in_camera_positions_is_refused(source, tmp_path):
    def plant(folder: Path) -> None:
        data = bytearray((folder / "Data0000.dat").read_bytes())
        slide = open_mrxs(str(source))
        rec = next(nh.record for nh in slide.nonhier if nh.role == "positions")
        data[rec.offset + 1:rec.offset + 9] = b"DOE^JANE"
        (folder / "Data0000.dat").write_bytes(bytes(data))
    path = _mutant(source, tmp_path, plant)
    out = tmp_path / "out"
    out.mkdir()
    r = cli("deid", path, "-o", out, "--new-id", "R-3", "--detect", "off")
    assert r.returncode == 2 and "position" in r.stderr and [p.name for p in out.iterdir()] == []
