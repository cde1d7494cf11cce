"""What `wsideid scan` no longer pays per process (issue 14: <= 0.6 CPU s a label image),
with the readings unchanged: the PP-OCR worker's optimised model cache, raw crops on its
pipe, and tesseract's input written as PNM instead of PNG. No timed assertions: each test
pins the behaviour that saves the time (bench/labels/bench_scan_process.py measures it)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image, ImageDraw, ImageFont

from wsideid.detect import ocr, ppocr

pytestmark = pytest.mark.skipif(not ppocr.available(), reason="rapidocr-onnxruntime not installed")

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"


def _line(text: str, size=(300, 50), font_px=30) -> Image.Image:
    img = Image.new("L", size, 250)
    font = ImageFont.truetype(FONT, font_px) if os.path.exists(FONT) else ImageFont.load_default()
    ImageDraw.Draw(img).text((10, 8), text, fill=15, font=font)
    return img


LINES = ("SP-24-91221", "MRN 47108697", "Sirius Red")


def _same(a: list[ppocr.PpLine], b: list[ppocr.PpLine]) -> bool:
    """Same texts; confidences within float noise (the optimised graph sums in another order)."""
    return len(a) == len(b) and all(x.text == y.text and abs(x.confidence - y.confidence) < 1e-4
                                    for x, y in zip(a, b))


def _cached_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("*.onnx"))


def test_worker_keeps_an_optimised_model_and_reads_the_same(tmp_path, monkeypatch):
    crops = [_line(t) for t in LINES]
    monkeypatch.setenv(ppocr.MODEL_CACHE_ENV, "off")
    plain = ppocr.recognise_lines(crops)
    assert not _cached_files(tmp_path)
    monkeypatch.setenv(ppocr.MODEL_CACHE_ENV, str(tmp_path))
    first = ppocr.recognise_lines(crops)  # writes the optimised copy
    (cached,) = _cached_files(tmp_path)
    assert cached.name.startswith("ch_PP-OCRv4_rec_infer.") and cached.stat().st_size > 1_000_000
    assert not list(tmp_path.glob("*.tmp"))
    stamp = cached.stat().st_mtime_ns
    second = ppocr.recognise_lines(crops)  # loads it
    assert _cached_files(tmp_path) == [cached] and cached.stat().st_mtime_ns == stamp
    assert _same(plain, first) and first == second
    assert [r.text.replace(" ", "") for r in second][:2] == ["SP-24-91221", "MRN47108697"]


def test_a_damaged_cached_model_is_replaced_not_trusted(tmp_path, monkeypatch):
    monkeypatch.setenv(ppocr.MODEL_CACHE_ENV, str(tmp_path))
    crops = [_line(t) for t in LINES]
    good = ppocr.recognise_lines(crops)
    (cached,) = _cached_files(tmp_path)
    cached.write_bytes(b"not an onnx model" * 100)
    assert _same(ppocr.recognise_lines(crops), good)  # the original model read them
    assert not cached.exists()  # removed; the next worker writes it again
    assert ppocr.recognise_lines(crops) == good and cached.stat().st_size > 1_000_000


def test_cache_key_names_the_model_and_follows_its_file(tmp_path, monkeypatch):
    monkeypatch.setenv(ppocr.MODEL_CACHE_ENV, str(tmp_path / "c"))
    model = tmp_path / "m.onnx"
    model.write_bytes(b"x")
    one = ppocr.cache_path(str(model))
    assert one is not None and Path(one).parent == tmp_path / "c" and Path(one).name.startswith("m.")
    os.utime(model, ns=(1, 1))  # another model file at the same path: another copy
    assert ppocr.cache_path(str(model)) != one
    for off in ("off", ""):
        monkeypatch.setenv(ppocr.MODEL_CACHE_ENV, off)
        assert ppocr.cache_path(str(model)) is None
    monkeypatch.delenv(ppocr.MODEL_CACHE_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert Path(ppocr.cache_path(str(model))).parent == tmp_path / "xdg" / "wsideid" / "models"


def test_an_unwritable_cache_folder_still_reads(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("a file where the folder would be")
    monkeypatch.setenv(ppocr.MODEL_CACHE_ENV, str(blocker / "models"))
    (got,) = ppocr.recognise_lines([_line("SP-24-91221")])
    assert got.text.replace(" ", "") == "SP-24-91221"


def test_crops_travel_raw_as_greyscale():
    rgb = Image.new("RGB", (37, 11), (200, 30, 90))
    ImageDraw.Draw(rgb).line((0, 0, 36, 10), fill=(0, 255, 0))
    grey = _line("AB", size=(50, 20), font_px=12)
    data = ppocr._frame([rgb, grey])
    assert len(data) == 8 + 37 * 11 + 8 + 50 * 20  # no PNG: sizes and samples only
    a, b = ppocr._read_frames(data)
    assert a.mode == b.mode == "L"
    assert a.tobytes() == rgb.convert("L").tobytes() and b.tobytes() == grey.tobytes()
    with pytest.raises(ValueError):
        ppocr._read_frames(data[:-1])


def test_tesseract_gets_a_pnm_and_reads_the_same_words():
    import pytesseract

    try:
        ocr.tesseract_version()
    except Exception:  # noqa: BLE001
        pytest.skip("tesseract not installed")
    sheet = Image.new("L", (420, 120), 255)
    for i, t in enumerate(LINES[:2]):
        sheet.paste(_line(t, size=(400, 50), font_px=28), (10, 10 + 55 * i))
    png = pytesseract.image_to_data(sheet.copy(), config="--psm 11", output_type=pytesseract.Output.DICT)
    marked = ocr.uncompressed(sheet.copy())
    assert marked.format == "PPM"
    pnm = pytesseract.image_to_data(marked, config="--psm 11", output_type=pytesseract.Output.DICT)
    assert pnm == png and "SP-24-91221" in pnm["text"]


@pytest.mark.skipif(sys.platform != "linux", reason="the worker is forked on Linux only")
def test_forked_worker_reads_exactly_what_a_fresh_one_reads(tmp_path, monkeypatch):
    monkeypatch.setenv(ppocr.MODEL_CACHE_ENV, str(tmp_path))
    crops = [_line(t) for t in LINES] + [_line("S24-33857").convert("RGB").rotate(180)]
    spawned = [ppocr.PpLine(t, float(c)) for t, c in ppocr._run_spawned("rec", crops)]
    forked = [ppocr.PpLine(t, float(c)) for t, c in ppocr._run_forked(crops)]
    assert forked == spawned and forked[0].text.replace(" ", "") == "SP-24-91221"


FORK_PROBE = """
import os, sys, threading
from wsideid.detect import scan, ppocr
from wsideid.cli import main
out = [ppocr._may_fork()]
ppocr.FORK_MAX_PARENT_RSS, keep = 0, ppocr.FORK_MAX_PARENT_RSS
out.append(ppocr._may_fork())
ppocr.FORK_MAX_PARENT_RSS = keep
os.environ[ppocr.FORK_ENV] = "0"
out.append(ppocr._may_fork())
del os.environ[ppocr.FORK_ENV]
stop = threading.Event()
t = threading.Thread(target=stop.wait)
t.start()
out.append(ppocr._may_fork())
stop.set()
t.join()
out.append(ppocr._may_fork())
import onnxruntime
out.append(ppocr._may_fork())
print(*out)
"""


@pytest.mark.skipif(sys.platform != "linux", reason="the worker is forked on Linux only")
def test_scan_process_forks_its_worker_and_a_deid_thread_does_not():
    """`wsideid scan` (one thread, a small process) forks; each condition that keeps a
    fresh interpreter holds it back: a big process, the switch, a second Python thread
    (a deid run's residual scan), onnxruntime already loaded."""
    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, PYTHONPATH=str(root))
    env.pop(ppocr.FORK_ENV, None)
    out = subprocess.run([sys.executable, "-c", FORK_PROBE], capture_output=True, text=True, env=env, cwd=root,
                         check=True)
    assert out.stdout.split() == ["True", "False", "False", "False", "True", "False"], out.stderr


@pytest.mark.skipif(sys.platform != "linux", reason="the worker is forked on Linux only")
def test_forked_worker_failure_and_hang_are_one_line_errors(monkeypatch):
    from wsideid.detect.errors import DetectorError

    def boom(images):
        raise RuntimeError("model missing\nsecond line")

    monkeypatch.setattr(ppocr, "_rec_worker", boom)
    with pytest.raises(DetectorError, match=r"^PP-OCR failed: RuntimeError: model missing$"):
        ppocr._run_forked([_line("AB")])

    def hang(images):
        import time
        time.sleep(30)

    monkeypatch.setattr(ppocr, "_rec_worker", hang)
    monkeypatch.setattr(ppocr, "CALL_TIMEOUT_S", 0.5)
    before = _children()
    with pytest.raises(DetectorError, match="timed out"):
        ppocr._run_forked([_line("AB")])
    assert _children() <= before  # the killed worker was reaped: no child left, not even a zombie


def _children() -> set[int]:
    """This process's child processes (Linux /proc), zombies included."""
    me, out = os.getpid(), set()
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == me:
                out.add(int(d.name))
    return out


def test_tesseract_is_looked_up_not_run_and_a_broken_one_is_unavailable(tmp_path, monkeypatch):
    """No `tesseract --version` process before a read (the check only finds the command);
    a tesseract that is installed but cannot read (no language data) is OcrUnavailable,
    not a timeout, and not a clean label."""
    import shutil

    from wsideid.detect.errors import OcrUnavailable

    if shutil.which("tesseract") is None:
        pytest.skip("tesseract not installed")
    ocr._check_tesseract.cache_clear()
    try:
        assert ocr._check_tesseract() == shutil.which("tesseract")
        monkeypatch.setenv("TESSDATA_PREFIX", str(tmp_path))  # an empty folder: no eng.traineddata
        with pytest.raises(OcrUnavailable, match="^tesseract cannot run: TesseractError$"):
            ocr.recognise(_line("MRN 47108697", size=(300, 50)))
    finally:
        ocr._check_tesseract.cache_clear()


def test_scan_of_a_label_image_loads_no_residual_stage_or_slide_reader(tmp_path):
    """`wsideid scan LABEL.png` imports what a source scan uses: not the kept-image stage
    (``detect.residual``), the TIFF pixel reader, a driver or onnxruntime (its worker does)."""
    label = tmp_path / "label.png"
    _line("MRN 47108697", size=(320, 60)).save(label)
    root = Path(__file__).resolve().parents[1]
    code = ("import sys, io, contextlib; from wsideid.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()): rc = main(['scan', sys.argv[1]])\n"
            "print(rc, *sorted(m for m in sys.modules if m.startswith(('wsideid', 'onnxruntime', 'tifffile'))))")
    env = dict(os.environ, PYTHONPATH=str(root))
    out = subprocess.run([sys.executable, "-c", code, str(label)], capture_output=True, text=True, env=env, cwd=root,
                         check=True).stdout.split()
    assert out[0] == "1" and "wsideid.detect.scan" in out  # PHI found: the MRN
    loaded = set(out[1:])
    assert not loaded & {"wsideid.detect.residual", "wsideid.tiff.pixels", "wsideid.registry", "onnxruntime",
                         "tifffile"}, loaded


TESS_PROBE = """
import subprocess, sys
real = subprocess.Popen.__init__
seen = []
def init(self, args, *a, **k):
    seen.append(list(args) if not isinstance(args, str) else [args])
    return real(self, args, *a, **k)
subprocess.Popen.__init__ = init
from PIL import Image
import pytesseract
from wsideid.detect import ocr
img = Image.open(sys.argv[1])
ours = ocr.tesseract_data(img.copy(), "--psm 11", 30)
runs = [a[1:2] for a in seen if "tesseract" in str(a[0])]
theirs = pytesseract.image_to_data(ocr.uncompressed(img.copy()), config="--psm 11",
                                   output_type=pytesseract.Output.DICT, timeout=30)
print(len(runs) == 1 and runs[0] != ["--version"], ours == theirs, "MRN" in ours["text"])
"""


def test_a_read_starts_one_tesseract_process_and_gets_image_to_data_s_table(tmp_path):
    """pytesseract.image_to_data ran `tesseract --version` (a process, ~16 ms CPU) before the
    first read of every `wsideid scan`; the scan now runs only the read, with image_to_data's
    command line, and gets the same word table."""
    import shutil

    if shutil.which("tesseract") is None:
        pytest.skip("tesseract not installed")
    sheet = tmp_path / "sheet.png"
    _line("MRN 47108697", size=(320, 60)).save(sheet)
    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, PYTHONPATH=str(root))
    out = subprocess.run([sys.executable, "-c", TESS_PROBE, str(sheet)], capture_output=True, text=True, env=env,
                         cwd=root, check=True).stdout.split()
    assert out == ["True", "True", "True"], out


def test_scan_builds_its_own_parser_only_and_parses_as_the_whole_one(capsys):
    """`wsideid scan` builds the top level and the scan command, not the ~150 arguments of the
    other commands (~15 ms a process): the same namespace, help and errors as the whole parser."""
    import argparse
    import contextlib
    import io

    from wsideid import cli

    for argv in (["scan", "a.png"], ["scan", "a.png", "b.svs", "--json", "--no-ocr", "--identifier", "S1",
                                     "--identifier", "S2"], ["scan", "--identifier=X", "a.png"]):
        assert vars(cli.build_parser("scan").parse_args(argv)) == vars(cli.build_parser().parse_args(argv))
    outputs = []
    for ap in (cli.build_parser("scan"), cli.build_parser()):
        for argv in (["scan", "--help"], ["scan"], ["scan", "a.png", "--bogus"]):
            out, err = io.StringIO(), io.StringIO()
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), pytest.raises(SystemExit) as ex:
                ap.parse_args(argv)
            outputs.append((argv[-1], ex.value.code, out.getvalue(), err.getvalue()))
    assert outputs[:3] == outputs[3:] and outputs[0][2].startswith("usage: wsideid scan")
    assert isinstance(cli.build_parser(), argparse.ArgumentParser)
    root = Path(__file__).resolve().parents[1]
    code = ("import sys, io, contextlib; from wsideid.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()): rc = main(['scan', '--no-ocr', sys.argv[1]])\n"
            "print(rc, 'wsideid.dicomweb_cli' in sys.modules)")
    label = Path(__file__).resolve().parents[1] / "README.md"  # not an image: a one-line error, exit 2
    env = dict(os.environ, PYTHONPATH=str(root))
    out = subprocess.run([sys.executable, "-c", code, str(label)], capture_output=True, text=True, env=env, cwd=root,
                         check=True).stdout.split()
    assert out == ["2", "False"], out
