"""Findings of the hostile-file harness (tests/test_hostile_cli.py, bench/hostile_soak.py), one
test each: every one failed before its fix (a hang, a traceback, an internal error, stray stderr).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from fuzz.harness import Hang, time_limit
from wsideid.errors import WsideidError
from wsideid.options import DeidOptions
from wsideid.pipeline import deidentify, inspect

SECRET_ENV = {"WSIDEID_SECRET": "hostile-inputs-fixed-secret-0123456789"}


@pytest.fixture(scope="module")
def small_svs(tmp_path_factory) -> Path:
    from wsideid.synth import make_svs
    p = tmp_path_factory.mktemp("svs") / "s.svs"
    make_svs(str(p), 512, 512)
    return p


def test_fifo_named_like_a_slide_is_refused_not_waited_on(tmp_path):
    """inspect opened a FIFO to read its magic and blocked until a writer came (a hang)."""
    fifo = tmp_path / "pipe.svs"
    os.mkfifo(fifo)
    try:
        with time_limit(10):
            with pytest.raises(WsideidError, match="not a regular file"):
                inspect(fifo)
    except Hang:
        pytest.fail("inspect waited on a FIFO")


def test_device_named_like_a_slide_is_refused(tmp_path):
    link = tmp_path / "zero.svs"
    link.symlink_to("/dev/zero")
    with time_limit(10), pytest.raises(WsideidError, match="not a regular file"):
        inspect(link)


def test_non_utf8_file_name_publishes_and_is_mapped(small_svs, tmp_path):
    """A file name with bytes that are not UTF-8 ended in UnicodeEncodeError (exit 70) writing the
    name map, after the output was published."""
    name = os.fsdecode(b"slide-\xff\xfe.svs")
    src = tmp_path / name
    src.write_bytes(small_svs.read_bytes())
    out, review = tmp_path / "out", tmp_path / "review"
    out.mkdir()
    res = deidentify(src, out, DeidOptions(detect="off", review_dir=str(review)))
    assert res.status == "published"
    mapping = (review / "name-map.csv").read_text(encoding="utf-8")
    assert "slide-\\xff\\xfe.svs" in mapping


def _mrxs_with(tmp_path: Path, key: str, value: str) -> Path:
    from wsideid.mrxs.synth import make_mrxs
    p = tmp_path / "m.mrxs"
    make_mrxs(str(p), 2, 2, levels=2)
    ini = tmp_path / "m" / "Slidedat.ini"
    text = ini.read_bytes().decode("utf-8-sig")
    lines = [f"{key} = {value}" if ln.split("=")[0].strip() == key else ln for ln in text.split("\r\n")]
    ini.write_bytes(b"\xef\xbb\xbf" + "\r\n".join(lines).encode())
    return p


def _mirax_refused(tmp_path: Path, key: str, value: str) -> None:
    """The slide with ``key = value`` is refused naming the key, and nothing is left in OUTDIR."""
    src = _mrxs_with(tmp_path, key, value)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(WsideidError, match=key):
        deidentify(src, out, DeidOptions(detect="off", review_dir=str(tmp_path / "review")))
    assert os.listdir(out) == []


@pytest.mark.parametrize("value", ["0", "-2", "two"])
def test_mirax_camera_divisions_is_checked(tmp_path, value):
    """CameraImageDivisionsPerSide = 0 was a ZeroDivisionError (exit 70); text a ValueError."""
    _mirax_refused(tmp_path, "CameraImageDivisionsPerSide", value)


def test_library_log_lines_stay_off_stderr(small_svs, tmp_path):
    """A label whose ImageLength disagrees with its strips made tifffile log two warning lines on
    stderr (through logging's last-resort handler) around the tool's own output."""
    import struct

    from wsideid.tiff.container import read_tiff
    data = bytearray(small_svs.read_bytes())
    tf = read_tiff(small_svs)
    label = tf.ifds[3]
    pos = label.offset + 2 + 12 * list(label.entries).index(257)
    struct.pack_into("<HII", data, pos + 2, 4, 1, 186273)
    src = tmp_path / "bad.svs"
    src.write_bytes(bytes(data))
    env = {**os.environ, **SECRET_ENV, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    env.pop("WSIDEID_DEBUG", None)
    p = subprocess.run([sys.executable, "-m", "wsideid.cli", "scan", "--no-ocr", str(src)], capture_output=True,
                       text=True, env=env, timeout=300)
    assert p.returncode in (0, 1, 2)
    assert "tifffile" not in p.stderr and "Traceback" not in p.stderr, p.stderr


@pytest.mark.parametrize("offset,count", [(2 ** 63 - 1, 256), (8, 2 ** 63 - 1), (2 ** 64 - 8, 256)])
def test_bigtiff_data_offset_near_2_to_the_63(tmp_path, offset, count):
    """A tile at 2**63-1: offset + count wrapped around in int64, the bounds check passed and
    the first read there was an OSError (exit 70)."""
    import struct
    head = b"II+\0" + struct.pack("<HHQ", 8, 0, 16)
    ent = [(256, 4, 1, 16), (257, 4, 1, 16), (258, 3, 1, 8), (259, 3, 1, 1), (262, 3, 1, 1), (277, 3, 1, 1),
           (322, 4, 1, 16), (323, 4, 1, 16), (324, 16, 1, offset), (325, 16, 1, count)]
    body = struct.pack("<Q", len(ent)) + b"".join(struct.pack("<HHQQ", *e) for e in ent) + bytes(8)
    src = tmp_path / "big.tif"
    src.write_bytes(head + body + bytes(256))
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(WsideidError, match="past the end of the file"):
        deidentify(src, out, DeidOptions(detect="off", review_dir=str(tmp_path / "review")))
    with pytest.raises(WsideidError, match="past the end of the file"):
        inspect(src)
    assert os.listdir(out) == []


@pytest.mark.parametrize("value", ["1e400", "inf", "nan", "-5", "300", "1e3"])
def test_mirax_overlap_is_a_finite_number_below_the_image_side(tmp_path, value):
    """OVERLAP_X = 1e400 (infinity) made OpenSlide compute a tile width of -2**62 and its
    read_region raised OpenSlideError out of verification (exit 70)."""
    _mirax_refused(tmp_path, "OVERLAP_X", value)


def test_in_place_refuses_an_unreadable_slide_before_changing_it(tmp_path):
    """An NDPI whose level JPEG says width 0: OpenSlide cannot open it, which the reader check
    found only after the in-place switch; the slide was left rewritten, unverified, with its
    journal (exit 2). The refusal now comes first and the slide is as it was."""
    import hashlib

    from wsideid.synth import make_ndpi
    from wsideid.tiff.container import read_tiff
    from wsideid.tiff_family.vendors.tiff_base import image_data
    src = tmp_path / "s.ndpi"
    make_ndpi(str(src), 512, 384)
    d = image_data(read_tiff(src).ifds[0], "<")
    data = bytearray(src.read_bytes())
    sof = data.index(b"\xff\xc0", int(d.src_offsets[0]))
    data[sof + 7:sof + 9] = b"\0\0"
    src.write_bytes(bytes(data))
    before = hashlib.sha256(bytes(data)).hexdigest()
    with pytest.raises(WsideidError, match="cannot read it.*not changed"):
        deidentify(src, None, DeidOptions(detect="off", in_place=True, review_dir=str(tmp_path / "review")))
    assert hashlib.sha256(src.read_bytes()).hexdigest() == before
    assert set(os.listdir(tmp_path)) <= {"s.ndpi", "review"}  # no journal beside it


def test_restart_interval_plan_is_bounded_by_the_entropy_data():
    """An NDPI strip whose SOF claims 65535x65535 (restart interval: one MCU row) made the
    verifier's entropy-slack check build a million-entry interval plan: 164 MB peak RSS for a
    100 KB slide. The frame is now refused by its entropy data's size before the plan."""
    import tracemalloc

    from wsideid.jpeg import JpegBlankingError
    from wsideid.jpeg.compare import entropy_slack
    from wsideid.synth import _jpeg_with_restarts, tissue
    data, _ = _jpeg_with_restarts(tissue(512, 256, 3))
    sof = data.index(b"\xff\xc0")
    data = data[:sof + 5] + b"\xff\xff\xff\xff" + data[sof + 9:]
    tracemalloc.start()
    try:
        with pytest.raises(JpegBlankingError, match="larger than its entropy data"):
            entropy_slack(data)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 << 20, peak
