"""Hostile files, second round: what the soak of DICOM, MIRAX, JPEG 2000 and SubIFD seeds with
gigabyte-sized declarations, compression bombs and special files found (tests/fuzz/extreme.py,
``bench/hostile_soak.py --family extreme``), and the table files of ``run`` and ``review apply``.

Each case runs the command line as its own process (tests/fuzz/proc.py: a time limit, a 3 GB
address-space limit, the peak RSS read back) and must end in exit 2 with one
``wsideid: error:`` line, within 100 MB of RSS, with nothing left in OUTDIR. Each failed on main.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import pytest

from fuzz import extreme
from fuzz.proc import Result, Runner, check_common, check_one_line_error, listing

TIMEOUT = 60


@pytest.fixture(scope="module")
def runner():
    r = Runner()
    yield r
    r.close()


def refused(r: Result, what: str, out: Path | None = None) -> str:
    """Exit 2, one error line, in time and memory, and (``out``) an empty OUTDIR."""
    check_common(r, what)
    assert r.rc == 2, (what, r.rc, r.stderr)
    check_one_line_error(r, what)
    if out is not None:
        assert listing(out) == [], (what, listing(out))
    return r.stderr.strip()


# ------------------------------------------------------------------ DICOM: a deflated dataset

def _part10(path: Path) -> None:
    """A small valid Part 10 file (explicit VR little endian) with a patient name."""
    import pydicom
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.77.1.6"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.PatientName = "Doe^Jane"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "VOLUME", "NONE"]
    pydicom.dcmwrite(path, ds, enforce_file_format=True)


@pytest.fixture
def deflate_bomb(tmp_path) -> Path:
    """A 1 MB file whose deflated dataset inflates to 1 GB (pydicom inflates it whole on read)."""
    p = tmp_path / "in" / "bomb.dcm"
    p.parent.mkdir()
    _part10(p)
    p.write_bytes(extreme.deflated_instance(p.read_bytes(), 1 << 30))
    assert p.stat().st_size < 2 << 20
    return p


@pytest.mark.parametrize("command", ["deid", "inspect", "scan", "dates-shift", "folder"])
def test_deflated_dicom_is_refused_before_it_is_inflated(runner, deflate_bomb, tmp_path, command):
    """main: every command inflated the 1 GB (peak RSS ~1 GB); ``deid --dates shift`` on the file
    read its PatientID with pydicom before any check (MemoryError or 1 GB)."""
    out = tmp_path / "out"
    src = str(deflate_bomb.parent if command == "folder" else deflate_bomb)
    argv = {"deid": ["deid", src, "-o", str(out), "--detect", "off"],
            "folder": ["deid", src, "-o", str(out), "--detect", "off", "--new-id", "R-1"],
            "dates-shift": ["deid", src, "-o", str(out), "--detect", "off", "--dates", "shift"],
            "inspect": ["inspect", src], "scan": ["scan", "--no-ocr", src]}[command]
    r = runner.run(argv, tmp_path, TIMEOUT)
    if command == "scan":  # scan reports a file it cannot read on stdout, as a row, and exits 2
        check_common(r, command)
        assert r.rc == 2 and not r.stderr.strip() and "deflated" in r.stdout, (r.rc, r.stdout, r.stderr)
        return
    line = refused(r, command, out if command != "inspect" else None)
    assert "deflated" in line, line


# ------------------------------------------------------------------ MIRAX: sizes past the data

@pytest.fixture(scope="module")
def mrxs_seed(tmp_path_factory) -> Path:
    from wsideid.mrxs.synth import make_mrxs
    d = tmp_path_factory.mktemp("mrxs")
    make_mrxs(str(d / "s.mrxs"), 2, 2, levels=2)
    return d / "s.mrxs"


def _mrxs_copy(seed: Path, folder: Path) -> Path:
    import shutil
    folder.mkdir(parents=True)
    shutil.copyfile(seed, folder / "s.mrxs")
    shutil.copytree(seed.with_suffix(""), folder / "s")
    return folder / "s.mrxs"


def _mutation(seed: Path, label: str):
    return dict(extreme.mrxs_mutations(seed))[label]


def test_mirax_record_over_a_hole_is_refused_unread(runner, mrxs_seed, tmp_path):
    """main: a level record of 300 MB (its data file sparse) was read whole: ~350 MB RSS."""
    src = _mrxs_copy(mrxs_seed, tmp_path / "in")
    _mutation(mrxs_seed, "extreme:record-over-hole")(src)
    out = tmp_path / "out"
    line = refused(runner.run(["deid", str(src), "-o", str(out), "--detect", "off"], tmp_path, TIMEOUT),
                   "deid", out)
    assert "record" in line and "MB" in line, line


def test_mirax_sparse_index_is_not_read_whole(runner, mrxs_seed, tmp_path):
    """main: Index.dat was read whole up to 64 MB: a 60 MB sparse one cost 60 MB of RSS. The slide
    itself is sound (the tail is zeros no pointer reaches), so it is published."""
    src = _mrxs_copy(mrxs_seed, tmp_path / "in")
    _mutation(mrxs_seed, "extreme:index-sparse-60MB")(src)
    out = tmp_path / "out"
    r = runner.run(["deid", str(src), "-o", str(out), "--detect", "off", "--new-id", "R-1"], tmp_path, TIMEOUT)
    check_common(r, "deid")  # within 100 MB
    assert r.rc == 0, r.stderr
    assert sorted(p.name for p in out.iterdir()) == ["R-1", "R-1.mrxs", "R-1.mrxs.audit.json"]


# ------------------------------------------------------------------ table files: run and review apply

def _special(kind: str, path: Path) -> Path:
    if kind == "dev-zero":
        path.symlink_to("/dev/zero")
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "directory":
        path.mkdir()
    elif kind == "sparse":
        with open(path, "wb") as fh:
            fh.write(b"source,new_id\n")
        os.truncate(path, 1 << 30)
    elif kind == "loop":
        path.symlink_to(path.name)
    return path


KINDS = ["dev-zero", "fifo", "directory", "sparse", "loop"]


@pytest.mark.parametrize("kind", KINDS)
def test_manifest_that_is_not_a_small_file(runner, tmp_path, kind):
    """main: /dev/zero and a 1 GB sparse manifest were read whole (MemoryError: internal error, or
    1 GB of RSS); a FIFO with no writer hung ``run`` for ever."""
    m = _special(kind, tmp_path / "manifest.csv")
    out = tmp_path / "out"
    refused(runner.run(["run", str(m), "-o", str(out), "--detect", "off", "--no-report"], tmp_path, 30), "run")
    assert not out.exists() or listing(out) == []


def _batch_folders(tmp_path: Path) -> Path:
    """An OUTDIR and its review folder as a batch leaves them (the batch id in both)."""
    out = tmp_path / "out"
    (tmp_path / "out-review").mkdir(parents=True)
    out.mkdir()
    (out / "batch.json").write_text('{"batch_id": "b-1"}')
    (tmp_path / "out-review" / "batch-run.json").write_text('{"batch_id": "b-1"}')
    return out


@pytest.mark.parametrize("kind", KINDS)
def test_decisions_file_that_is_not_a_small_file(runner, tmp_path, kind):
    """main: read whole: /dev/zero and 1 GB sparse ran out of memory (internal error), a FIFO hung."""
    out = _batch_folders(tmp_path)
    d = _special(kind, tmp_path / "decisions.csv")
    refused(runner.run(["review", "apply", str(d), str(out)], tmp_path, 30), "review apply")


@pytest.mark.parametrize("kind", ["dev-zero", "fifo"])
@pytest.mark.parametrize("command", ["review", "report"])
def test_batch_record_that_is_not_a_file(runner, tmp_path, kind, command):
    """OUTDIR/batch.json as /dev/zero or a FIFO: main's ``review apply`` and ``report`` read it whole
    (MemoryError: internal error) or hung opening it; now it is no batch record (one line)."""
    out = _batch_folders(tmp_path)
    (out / "batch.json").unlink()
    _special(kind, out / "batch.json")
    decisions = tmp_path / "d.csv"
    decisions.write_text("new_id,decision,reviewer\nR-1,approve,me\n")
    argv = ["review", "apply", str(decisions), str(out)] if command == "review" else ["report", str(out)]
    line = refused(runner.run(argv, tmp_path, 30), command)
    assert "batch.json" in line, line


def test_excel_manifest_of_millions_of_empty_cells(runner, tmp_path):
    """A 30 kB .xlsx whose sheet declares 1,048,576 x 16,384 cells (openpyxl pads every row to the
    declared width): main built every row in memory."""
    m = tmp_path / "manifest.xlsx"
    _xlsx_bomb(m)
    refused(runner.run(["run", str(m), "-o", str(tmp_path / "out"), "--detect", "off", "--no-report"],
                       tmp_path, 30), "run")


def _xlsx_bomb(path: Path) -> None:
    rows = "".join(f'<row r="{i}"><c r="A{i}" t="inlineStr"><is><t>x</t></is></c></row>' for i in range(1, 2))
    sheet = ('<?xml version="1.0" encoding="UTF-8"?><worksheet xmlns="http://schemas.openxmlformats.org/'
             'spreadsheetml/2006/main"><dimension ref="A1:XFD1048576"/><sheetData>' + rows +
             '<row r="1048576"><c r="XFD1048576" t="inlineStr"><is><t>y</t></is></c></row></sheetData></worksheet>')
    ns = "http://schemas.openxmlformats.org"
    files = {
        "[Content_Types].xml": '<?xml version="1.0" encoding="UTF-8"?><Types xmlns="' + ns + '/package/2006/'
        'content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships'
        '+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName="/xl/workbook.xml" '
        'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/><Override '
        'PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-officedocument.'
        'spreadsheetml.worksheet+xml"/></Types>',
        "_rels/.rels": '<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="' + ns + '/package/2006/'
        'relationships"><Relationship Id="rId1" Type="' + ns + '/officeDocument/2006/relationships/'
        'officeDocument" Target="xl/workbook.xml"/></Relationships>',
        "xl/workbook.xml": '<?xml version="1.0" encoding="UTF-8"?><workbook xmlns="' + ns + '/spreadsheetml/2006/'
        'main" xmlns:r="' + ns + '/officeDocument/2006/relationships"><sheets><sheet name="S" sheetId="1" '
        'r:id="rId1"/></sheets></workbook>',
        "xl/_rels/workbook.xml.rels": '<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="' + ns +
        '/package/2006/relationships"><Relationship Id="rId1" Type="' + ns + '/officeDocument/2006/'
        'relationships/worksheet" Target="worksheets/sheet1.xml"/></Relationships>',
        "xl/worksheets/sheet1.xml": sheet,
    }
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, text in files.items():
            z.writestr(name, text)


# ------------------------------------------------------------------ DICOM: special files in the series folder

@pytest.fixture(scope="module")
def dicom_series():
    from fuzz import formats
    try:
        yield formats.seed("dicom")
    except LookupError as exc:
        pytest.skip(str(exc))
    finally:
        formats.cleanup()


@pytest.mark.parametrize("kind", ["fifo", "dev-zero"])
def test_dicom_folder_with_a_fifo_or_device_is_refused(runner, dicom_series, tmp_path, kind):
    """main: a FIFO beside the instances was skipped by our reader, but the readers check gives
    OpenSlide the folder and it opens every file: blocked on the FIFO until the 600 s reader
    timeout (the soak's 60 s limit: a hang). Now refused at open, in one line."""
    from fuzz import formats
    series = formats.copy_input(dicom_series, tmp_path / "in")
    _special(kind, series / "zz-extra.dcm")
    out = tmp_path / "out"
    line = refused(runner.run(["deid", str(series), "-o", str(out), "--detect", "off"], tmp_path, TIMEOUT),
                   "deid", out)
    assert "FIFO, socket or device" in line, line


@pytest.mark.parametrize("command", ["deid", "inspect", "scan"])
def test_mirax_key_file_that_is_a_fifo(runner, mrxs_seed, tmp_path, command):
    """main: Slidedat.ini made a FIFO was no MIRAX key file to the driver, but the refused-format
    table then opened it to look for ``[GENERAL]``: the open blocked for ever (a hang)."""
    src = _mrxs_copy(mrxs_seed, tmp_path / "in")
    _mutation(mrxs_seed, "special:fifo:Slidedat.ini")(src)
    out = tmp_path / "out"
    argv = {"deid": ["deid", str(src), "-o", str(out), "--detect", "off"], "inspect": ["inspect", str(src)],
            "scan": ["scan", "--no-ocr", str(src)]}[command]
    r = runner.run(argv, tmp_path, 30)
    if command == "scan":
        check_common(r, command)
        assert r.rc == 2 and not r.stderr.strip(), (r.rc, r.stderr)
    else:
        refused(r, command, out if command == "deid" else None)


# ------------------------------------------------------------------ a file that changes while it is read

class _Flipper:
    """Cuts ``path`` to 4 kB and puts it back, every half millisecond, while the block runs (a scanner
    still writing the slide, a sync tool replacing it)."""

    def __init__(self, path: Path):
        import threading
        self.path, self.data, self.stop = path, path.read_bytes(), False
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        import time
        k = 0
        while not self.stop:
            with open(self.path, "r+b") as fh:
                if k % 2:
                    fh.truncate(4096)
                else:
                    fh.write(self.data)
                    fh.truncate(len(self.data))
            k += 1
            time.sleep(0.0005)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop = True
        self.thread.join()
        self.path.write_bytes(self.data)


def _svs(tmp_path: Path) -> Path:
    from wsideid.synth import make_svs
    p = tmp_path / "in" / "s.svs"
    p.parent.mkdir()
    make_svs(str(p), 2048, 1536)
    return p


@pytest.mark.parametrize("make", [_svs], ids=["svs"])
def test_a_slide_cut_while_it_is_read_never_kills_the_run(runner, tmp_path, make):
    """main parsed TIFF structure through an mmap: a file cut short after the map was made turned
    a read into SIGBUS, and the run died without a word (3 of 20 ``deid`` runs of a real SVS being
    truncated and restored). Now every run ends in a verdict: published, or one error line."""
    src = make(tmp_path)
    outcomes = set()
    with _Flipper(src):
        for k in range(40):
            out = tmp_path / f"out{k}"
            r = runner.run(["deid", str(src), "-o", str(out), "--detect", "off", "--hash", "none"], tmp_path, TIMEOUT)
            assert r.rc >= 0, f"run {k} killed by signal {-r.rc}"
            check_common(r, f"run {k}")
            if r.rc in (2, 3):
                check_one_line_error(r, f"run {k}")
                assert listing(out) == [], listing(out)
            outcomes.add(r.rc)
    assert outcomes <= {0, 2, 3}, outcomes


# ------------------------------------------------------------------ redact: OpenSlide cannot read a kept thumbnail

def test_redact_with_a_thumbnail_openslide_cannot_decode(runner, tmp_path):
    """Found by the soak (real-j2k, seed 9): the Aperio J2K slide's JPEG thumbnail tile given a
    SOF height of 0. ``redact`` verified the regions through OpenSlide, and ``"thumbnail" in
    associated_images`` decodes the image (a Mapping's ``in`` reads the value): OpenSlideError
    escaped, exit 70 "internal error". Now the check fails: exit 3, one line, nothing published."""
    import random
    import shutil

    from fuzz import structural
    from realdata import TESTDATA
    real = TESTDATA / "svs" / "tcga-cr-7395-01a-01-ts1.svs"
    if not real.exists():
        pytest.skip("real test data not available")
    src = tmp_path / "in" / "s.svs"
    src.parent.mkdir()
    shutil.copyfile(real, src)
    muts = dict(structural.tiff_mutations(src, random.Random(1)))
    muts["jpeg-tile@0x2a5ba8:SOF0-height0"](src)
    out = tmp_path / "out"
    r = runner.run(["redact", str(src), "-o", str(out), "--region", "0,0,300,200", "--detect", "off",
                    "--reencode-j2k"], tmp_path, TIMEOUT)
    check_common(r, "redact")
    assert r.rc == 3, (r.rc, r.stderr)
    check_one_line_error(r, "redact")
    assert listing(out) == []


# ------------------------------------------------------------------ a batch of this round's hostile inputs

def test_folder_batch_of_this_rounds_hostile_inputs(runner, mrxs_seed, dicom_series, tmp_path):
    """``deid FOLDER``: a good SVS beside a DICOM series holding a FIFO, a deflated DICOM file, a
    MIRAX slide whose key file is a FIFO and one whose record lies over a 300 MB hole: the good
    slide is published, every other row fails on its own, in time and memory (main: the FIFO
    series blocked the batch in the readers check, the bomb took 2 GB)."""
    from fuzz import formats
    from fuzz.proc import check_batch
    folder = tmp_path / "in"
    folder.mkdir()
    formats.copy_input(formats.seed("svs"), folder, "good")
    series = formats.copy_input(dicom_series, folder, "series")
    os.mkfifo(series / "zz-pipe.dcm")
    (folder / "bomb").mkdir()
    bomb = folder / "bomb" / "bomb.dcm"
    _part10(bomb)
    bomb.write_bytes(extreme.deflated_instance(bomb.read_bytes(), 1 << 30))
    for name, label in (("m1", "special:fifo:Slidedat.ini"), ("m2", "extreme:record-over-hole")):
        src = _mrxs_copy(mrxs_seed, tmp_path / name)
        _mutation(mrxs_seed, label)(src)
        with open(src, "ab") as fh:  # the pseudonym is taken from the .mrxs file: two slides, two names
            fh.write(name.encode())
        src.rename(folder / f"{name}.mrxs")
        (tmp_path / name / "s").rename(folder / name)
    out = tmp_path / "out"
    r = runner.run(["deid", str(folder), "-o", str(out), "--detect", "off"], tmp_path, 300)
    status = check_batch(r, out, formats.planted("svs"), "deid FOLDER")
    assert sorted(status.values()).count("published") == 1, status
    assert r.rc == 2, (r.rc, r.stdout[-800:])


# ------------------------------------------------------------------ verify: an output that is no file

def test_verify_an_output_that_is_a_fifo(runner, tmp_path):
    """main: ``wsideid verify SLIDE FIFO`` parsed the output and blocked opening it (a hang)."""
    src = _svs(tmp_path)
    os.mkfifo(tmp_path / "out.svs")
    line = refused(runner.run(["verify", str(src), str(tmp_path / "out.svs"), "--new-id", "R-1"], tmp_path, 30),
                   "verify")
    assert "not a regular file" in line, line


def test_verify_a_dicom_output_folder_holding_a_fifo(runner, dicom_series, tmp_path):
    """main: every file of the output folder was read as an instance: a FIFO there hung ``verify``."""
    from fuzz import formats
    series = formats.copy_input(dicom_series, tmp_path / "in")
    out = tmp_path / "out"
    r = runner.run(["deid", str(series), "-o", str(out), "--detect", "off", "--new-id", "R-1"], tmp_path, TIMEOUT)
    assert r.rc == 0, r.stderr
    os.mkfifo(out / "R-1" / "zz.dcm")
    line = refused(runner.run(["verify", str(series), str(out / "R-1"), "--new-id", "R-1"], tmp_path, 30), "verify")
    assert "FIFO" in line, line


# ------------------------------------------------------------------ scan: a label image that decodes to gigabytes

def test_scan_of_a_label_image_that_decodes_too_large(runner, tmp_path):
    """main: ``scan label.png`` decoded a 236 kB PNG of 9000 x 9000 px whole (under PIL's own bomb
    limit of 89 MP): 670 MB of RSS. Now an error row beyond 16 MP (exit 2), within 100 MB; a large
    JPEG is decoded reduced by the codec instead (a 16.8 MP scan reads at 4.2 MP)."""
    from PIL import Image
    Image.new("1", (9000, 9000)).save(tmp_path / "label.png")  # 1 bit a pixel to make; RGB when decoded
    r = runner.run(["scan", "--no-ocr", str(tmp_path / "label.png")], tmp_path, TIMEOUT)
    check_common(r, "scan")  # within 100 MB
    assert r.rc == 2 and "larger than the 16 MP" in r.stdout, (r.rc, r.stdout, r.stderr)
    Image.new("L", (4200, 4000), 255).save(tmp_path / "photo.jpg", quality=50)
    r = runner.run(["scan", "--no-ocr", str(tmp_path / "photo.jpg")], tmp_path, TIMEOUT)
    check_common(r, "scan")
    assert r.rc == 0, (r.rc, r.stdout, r.stderr)


def test_report_with_a_fifo_for_its_summary(runner, tmp_path):
    """main: ``wsideid report`` opened the review folder's batch-summary.csv with ``open()``: a FIFO
    there hung it. Now the summary is read like every table file (regular, bounded, no blocking)."""
    out = _batch_folders(tmp_path)
    os.mkfifo(tmp_path / "out-review" / "batch-summary.csv")
    r = runner.run(["report", str(out)], tmp_path, 30)
    check_common(r, "report")
    assert r.rc == 0, (r.rc, r.stderr)
