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

ENV = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2]), "WSIDEID_SECRET": "mrxs-test-secret"}


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
    """The preview leaves the lab, so the detectors read it (as written) and say so."""
    from wsideid.pipeline import DeidOptions, deidentify
    res = deidentify(str(source), str(tmp_path), DeidOptions(new_id="R-19", ocr=False))
    kept = [s for s in res.scans if s.stage == "output" and s.role == "thumbnail"]
    assert len(kept) == 1 and kept[0].error is None and kept[0].result is not None
    assert not [s for s in res.scans if s.stage == "output" and s.role in ("label", "macro")]  # removed ones


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


def test_batch_resume_counts_the_folder_and_names_collide_with_it(source, tmp_path):
    (tmp_path / "slides").mkdir()
    shutil.copy(source, tmp_path / "slides" / "a.mrxs")
    shutil.copytree(source.parent / "case 17", tmp_path / "slides" / "a")
    shutil.copy(source, tmp_path / "slides" / "b.mrxs")
    shutil.copytree(source.parent / "case 17", tmp_path / "slides" / "b")
    manifest = tmp_path / "m.csv"
    manifest.write_text("source,new_id\nslides/a.mrxs,M-1\nslides/b.mrxs,m-1.MRXS\n")
    out = tmp_path / "OUT"
    r = cli("run", manifest, "-o", out, "--detect", "off", "--no-progress", "--no-report")
    assert r.returncode != 0 and "collide" in (tmp_path / "OUT-review" / "batch-summary.csv").read_text()
    manifest.write_text("source,new_id\nslides/a.mrxs,M-1\n")
    r = cli("run", manifest, "-o", out, "--detect", "off", "--no-progress", "--no-report")
    assert r.returncode == 0 and (out / "M-1.mrxs").exists() and (out / "M-1" / "Slidedat.ini").exists()
    r = cli("run", manifest, "-o", out, "--detect", "off", "--no-progress", "--no-report")
    assert "(0 processed, 1 already done)" in r.stdout
    (out / "M-1" / "Data0000.dat").unlink()  # the folder is part of the output: resume sees it is gone
    r = cli("run", manifest, "-o", out, "--detect", "off", "--no-progress", "--no-report")
    assert "(1 processed, 0 already done)" in r.stdout  # not done: redone (and refused over the damaged copy)
    r = cli("run", manifest, "-o", out, "--detect", "off", "--no-progress", "--no-report", "--overwrite")
    assert r.returncode == 0 and (out / "M-1" / "Data0000.dat").exists()


def test_region_blanking_on_every_level_without_reencoding_the_rest(source, tmp_path):
    r = cli("redact", source, "-o", tmp_path, "--new-id", "R-4", "--detect", "off", "--region", "300,200,400,300")
    assert r.returncode == 0, r.stderr
    out = tmp_path / "R-4.mrxs"
    with openslide.OpenSlide(str(source)) as a, openslide.OpenSlide(str(out)) as b:
        assert list(b.associated_images) == []  # the preview's placement is unknown: removed
        for level in range(b.level_count):
            s = 2 ** level
            px = np.asarray(b.read_region((300, 200), level, (400 // s, 300 // s)))[..., :3].astype(int)
            assert px.max() - px.min() <= 2, level
        pa = np.asarray(a.read_region((0, 0), 0, (1024, 1024)))[..., :3]
        pb = np.asarray(b.read_region((0, 0), 0, (1024, 1024)))[..., :3]
        changed = np.nonzero(np.any(pa != pb, axis=-1))
        assert changed[1].min() >= 300 - 16 and changed[1].max() < 700 + 16  # MCU-aligned growth only
        assert changed[0].min() >= 200 - 16 and changed[0].max() < 500 + 16
    src, dst = open_mrxs(str(source)), open_mrxs(str(out))
    same = sum(src.read(a) == dst.read(b) for a, b in zip(src.levels[0].records, dst.levels[0].records))
    assert same == len(src.levels[0].records) - 4  # only the four camera images under the region changed


def test_overlapping_camera_images_are_blanked_wherever_they_show_the_region(tmp_path):
    """Two images per camera side and 24 px overlaps: a region on a camera seam shows in
    several records of every level; all of them are blanked, and the copy verifies flat."""
    src = tmp_path / "ov.mrxs"
    make_mrxs(str(src), tiles_x=8, tiles_y=8, tile=128, levels=4, div=2, overlap=24)
    with openslide.OpenSlide(str(src)) as a:
        assert a.properties["openslide.vendor"] == "mirax" and a.level_count == 4
    out = tmp_path / "out"
    out.mkdir()
    r = cli("redact", src, "-o", out, "--new-id", "R-5", "--detect", "off", "--region", "200,180,140,120")
    assert r.returncode == 0, r.stderr
    with openslide.OpenSlide(str(src)) as a, openslide.OpenSlide(str(out / "R-5.mrxs")) as b:
        for level in range(b.level_count):
            s = b.level_downsamples[level]
            w, h = max(1, int(140 // s)), max(1, int(120 // s))
            px = np.asarray(b.read_region((200, 180), level, (w, h)))[..., :3].astype(int)
            assert px.max() - px.min() <= 2, level
        far = (600, 600)
        assert np.array_equal(np.asarray(a.read_region(far, 0, (200, 200))), np.asarray(b.read_region(far, 0, (200, 200))))


def test_label_replace_writes_a_generated_label_openslide_lists(source, tmp_path):
    r = cli("deid", source, "-o", tmp_path, "--new-id", "R-6", "--label", "replace")
    assert r.returncode == 0, r.stderr
    with openslide.OpenSlide(str(tmp_path / "R-6.mrxs")) as b:
        assert sorted(b.associated_images) == ["label", "thumbnail"]
        label = b.associated_images["label"]
    from wsideid.detect.scan import scan_image
    result = scan_image(label, "label", [], ocr=True)
    assert any("R-6" in f.value for f in result.findings)  # it shows the research ID
    assert not result.has_phi or all(f.value.strip() == "R-6" for f in result.findings if f.flags)
    assert b"DOE^JANE" not in _all_bytes(tmp_path)


def test_detected_by_content(source):
    from driver_cases import check_detected
    check_detected(source, "mirax")


@pytest.mark.parametrize("part,cut", [("Slidedat.ini", 40), ("Index.dat", 20), ("Data0000.dat", 100)])
def test_corrupted_parts_are_refused_in_one_line(source, tmp_path, part, cut):
    """A key file, index or data file cut short: a one-line error and nothing in OUTDIR."""
    from driver_cases import check_refused
    src = tmp_path / "src"
    shutil.copytree(source.parent, src)
    damaged = src / source.stem / part
    if not damaged.exists():
        pytest.skip(f"the fixture has no {part}")
    damaged.write_bytes(damaged.read_bytes()[:cut])
    check_refused(src / source.name, tmp_path)


def test_reader_check_reads_a_bounded_window_of_the_smallest_level(source, tmp_path, monkeypatch):
    """The reader check compares a capped square of the smallest level, never the whole level
    (a slide's smallest level may be tens of megapixels): memory stays bounded for any slide."""
    from wsideid.mrxs import verify as mverify
    from wsideid.options import DetectMode
    from wsideid.pipeline import DeidOptions, deidentify
    monkeypatch.setattr(mverify, "READER_WINDOW", 16)
    sizes: list[tuple[int, int]] = []
    real = openslide.OpenSlide.read_region

    def spy(self, location, level, size):
        sizes.append(tuple(size))
        return real(self, location, level, size)

    monkeypatch.setattr(openslide.OpenSlide, "read_region", spy)
    res = deidentify(source, tmp_path, DeidOptions(new_id="R-18", detect=DetectMode.OFF))
    row = next(c for c in res.report.checks if c.name == "reader")
    assert row.passed and "16x16" in row.detail
    assert sizes and max(max(s) for s in sizes) <= 16


def test_region_blanked_on_level_0_only_is_caught(source, tmp_path, monkeypatch):
    """The blanker (and the verifier's own expectation of the records) told of level 0 only:
    the smaller levels keep the region's pixels, and regions-blank reads every level."""
    from wsideid.errors import VerificationFailed
    from wsideid.mrxs import regions, verify as mverify, write as mwrite
    from wsideid.options import DetectMode
    from wsideid.pipeline import DeidOptions, deidentify
    real = regions.record_boxes
    hit: list = []

    def level0_only(slide, boxes):
        got = real(slide, boxes)
        kept = {k: v for k, v in got.items() if k[0] == 0}
        hit.append(len(got) - len(kept))
        return kept
    monkeypatch.setattr(mwrite, "record_boxes", level0_only)
    monkeypatch.setattr(mverify, "record_boxes", level0_only)
    with pytest.raises(VerificationFailed) as err:
        deidentify(source, tmp_path, DeidOptions(new_id="R-19", detect=DetectMode.OFF, regions=[(300, 200, 400, 300)]))
    assert "regions-blank" in err.value.checks, str(err.value)
    assert hit and hit[0] > 0


def test_an_extra_file_in_the_copy_folder_is_caught(source, tmp_path, monkeypatch):
    """The writer leaves a file the key file does not name in the copy's folder (a note holding
    no known value): roles lists the folder, as the DICOM check lists the output folder."""
    from wsideid.errors import VerificationFailed
    from wsideid.mrxs import write as mwrite
    from wsideid.options import DetectMode
    from wsideid.pipeline import DeidOptions, deidentify
    real = mwrite.write

    def with_note(plan, out_mrxs, *a, **kw):
        written = real(plan, out_mrxs, *a, **kw)
        with open(os.path.join(os.path.splitext(out_mrxs)[0], "notes.txt"), "w") as fh:
            fh.write("scanned for the tumour board, call the lab before sharing\n")
        return written
    monkeypatch.setattr(mwrite, "write", with_note)
    with pytest.raises(VerificationFailed) as err:
        deidentify(source, tmp_path, DeidOptions(new_id="R-20", detect=DetectMode.OFF))
    assert "roles" in err.value.checks, str(err.value)
