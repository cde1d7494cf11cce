"""DICOM frames under the JPEG / JPEG 2000 stream rule (issue 11, item 2).

Frames of the real wsi2dcm files (../shared/testdata, skipped when absent)
are re-encapsulated with pydicom after text is planted in COM/APP segments,
unused tables, tile-part headers and after the end marker. The output must
hold none of it, decode exactly as the source, and keep its offset tables
true; what cannot be cleaned is refused with one line.
"""

from __future__ import annotations

import copy
import struct

import imagecodecs
import numpy as np
import pydicom
import pytest
from pydicom.encaps import encapsulate, encapsulate_extended, generate_frames

from test_dicom_fixtures import dicom_file, options, output_files
from test_jpeg_structure import NEEDLE, _with_tile_com, absent, seg
from wsideid.pipeline import deidentify
from wsideid.errors import WsideidError
from wsideid.jpeg.compare import same_decoding


def _frames(ds) -> list[bytes]:
    return [bytes(f) for f in generate_frames(ds.PixelData, number_of_frames=int(ds.get("NumberOfFrames", 1) or 1))]


def _unpad(f: bytes) -> bytes:
    return f[:-1] if f.endswith(b"\xd9\0") else f


def _save(ds, frames: list[bytes], path, extended: bool = False, split: bool = False):
    ds = copy.deepcopy(ds)
    if extended:
        ds.PixelData, ds.ExtendedOffsetTable, ds.ExtendedOffsetTableLengths = encapsulate_extended(frames)
    else:
        ds.PixelData = encapsulate(frames, fragments_per_frame=2 if split else 1, has_bot=not split)
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    assert not absent(path.read_bytes())  # planted
    return path


def _run(src, tmp_path, **kw):
    out = tmp_path / "out"
    out.mkdir()
    return deidentify(src, out, options(detect="off", **kw))


def _dirty_jpeg(frames: list[bytes]) -> list[bytes]:
    f = [_unpad(x) for x in frames]
    unused_dqt = seg(0xDB, bytes([3]) + NEEDLE.encode().ljust(64, b"!"))
    f[0] = f[0][:2] + seg(0xFE, NEEDLE.encode()) + f[0][2:]
    f[1] = f[1][:2] + seg(0xE1, b"Exif\0\0" + NEEDLE.encode("utf-16-le")) + f[1][2:]
    f[2] = f[2] + NEEDLE.encode() + b"\xff\xd9"
    f[3] = f[3][:2] + unused_dqt + f[3][2:]
    return f


def _check_output(res, src_frames: list[bytes], kind: str) -> None:
    assert res.status == "published", res
    checks = {c.name: c for c in res.report.checks}
    assert checks["compressed-streams"].passed and checks["image-data"].passed, checks["compressed-streams"].detail
    [path] = output_files(res)
    data = path.read_bytes()
    assert absent(data) and absent(data, "Exif")
    out = pydicom.dcmread(path)
    got = _frames(out)
    assert len(got) == len(src_frames)
    for a, b in zip(src_frames, got):
        assert same_decoding(_unpad(a), _unpad(b), kind=kind) is None
    if "ExtendedOffsetTable" in out:
        offs = struct.unpack(f"<{len(got)}Q", out.ExtendedOffsetTable)
        lens = struct.unpack(f"<{len(got)}Q", out.ExtendedOffsetTableLengths)
        assert list(lens) == [len(g) for g in got]
        assert list(offs) == list(np.cumsum([0] + [8 + len(g) for g in got[:-1]]))


@pytest.mark.parametrize("extended", [False, True])
def test_jpeg_frames_cleaned_offsets_recomputed(tmp_path, extended):
    base = pydicom.dcmread(dicom_file("wsi2dcm_jpeg"))
    frames = _frames(base)
    src = _save(base, _dirty_jpeg(frames), tmp_path / "in" / "x.dcm", extended=extended)
    res = _run(src, tmp_path)
    _check_output(res, frames, "jpeg")
    assert "12 frame(s) re-parsed" in {c.name: c for c in res.report.checks}["compressed-streams"].detail
    # untouched frames keep their bytes
    got = _frames(pydicom.dcmread(output_files(res)[0]))
    assert got[4:] == frames[4:]


def test_j2k_frames_com_dropped(tmp_path):
    base = pydicom.dcmread(dicom_file("wsi2dcm_jpeg2000"))
    frames = [_unpad(f) for f in _frames(base)]
    dirty = list(frames)
    siz_end = 4 + struct.unpack(">H", dirty[0][4:6])[0]
    dirty[0] = dirty[0][:siz_end] + seg(0x64, b"\x00\x01" + NEEDLE.encode()) + dirty[0][siz_end:]
    dirty[1] = _with_tile_com(dirty[1], NEEDLE.encode("utf-16-le"))
    dirty[2] = dirty[2] + NEEDLE.encode()
    src = _save(base, dirty, tmp_path / "in" / "x.dcm")
    res = _run(src, tmp_path)
    _check_output(res, frames, "j2k")
    got = _frames(pydicom.dcmread(output_files(res)[0]))
    assert np.array_equal(imagecodecs.jpeg2k_decode(_unpad(got[1])), imagecodecs.jpeg2k_decode(frames[1]))


def test_unsafe_frame_refused_one_line(tmp_path):
    base = pydicom.dcmread(dicom_file("wsi2dcm_jpeg"))
    frames = [_unpad(f) for f in _frames(base)]
    frames[5] = frames[5].replace(b"\xff\xc0", b"\xff\xc9", 1)  # arithmetic coding: no common decoder
    frames[0] = frames[0][:2] + seg(0xFE, NEEDLE.encode()) + frames[0][2:]
    src = _save(base, frames, tmp_path / "in" / "x.dcm")
    with pytest.raises(WsideidError, match="frame 6: arithmetic-coded JPEG") as exc:
        _run(src, tmp_path)
    assert "\n" not in str(exc.value)
    assert list((tmp_path / "out").iterdir()) == []


def test_split_frames_must_already_be_clean(tmp_path):
    base = pydicom.dcmread(dicom_file("wsi2dcm_jpeg"))
    frames = [_unpad(f) for f in _frames(base)]
    dirty = list(frames)
    dirty[0] = dirty[0][:2] + seg(0xFE, NEEDLE.encode()) + dirty[0][2:]
    with pytest.raises(WsideidError, match="split over 2 fragments|one fragment per frame"):
        _run(_save(base, dirty, tmp_path / "b" / "x.dcm", split=True), tmp_path)


def test_fast_check_hands_the_parser_every_frame_the_rule_changes(tmp_path):
    """Only frames the vectorised check does not pass are parsed (a 2 GB instance has ~60,000):
    it must pass no frame the parser would change, wherever the frame stands, padded or not."""
    import io
    import os

    from PIL import Image

    from wsideid.dicom.frames import _to_parse, clean_frame
    from wsideid.dicom.pixels import Fragments
    rng = np.random.default_rng(3)
    clean: dict[int, bytes] = {}  # stream length parity -> a clean stream (no pad)
    while len(clean) < 2:
        buf = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (32, 48, 3), dtype=np.uint8)).save(buf, "JPEG", quality=80)
        stream = clean_frame(buf.getvalue(), "jpeg")  # PIL's JFIF APP0 gone
        stream = stream[:-1] if stream.endswith(b"\xd9\0") else stream
        clean.setdefault(len(stream) % 2, stream)
    even, odd = clean[0], clean[1]
    frames = [even, odd + b"\0"] * 4  # clean: even as it is, odd with its pad byte
    frames[5] = odd[:2] + seg(0xFE, NEEDLE.encode()) + odd[2:] + b"\0"  # a comment, mid-instance
    frames += [even + NEEDLE.encode()[:6] + b"\xff\xd9",  # text after the EOI, even length
               odd + b"\0\0\0",  # padding beyond one byte
               odd,  # odd length without its pad
               even[:-2] + b"\xff\xd9\x01\0",  # a non-zero byte after the EOI, even length
               even[:2] + seg(0xE1, b"Exif\0\0" + NEEDLE.encode("utf-16-le")) + even[2:]]
    path = tmp_path / "frames.bin"
    fragments, pos = [], 0
    with open(path, "wb") as fh:
        for f in frames:
            fh.write(b"\0" * 8 + f)
            fragments.append((pos + 8, len(f)))
            pos += 8 + len(f)
    changed = {k for k, f in enumerate(frames) if clean_frame(f, "jpeg") != f}
    assert changed == {5, 8, 9, 10, 11, 12}
    with open(path, "rb") as fh:
        parsed = set(_to_parse(fh.fileno(), str(path), Fragments.of(fragments), "jpeg"))
    assert changed <= parsed
    assert not parsed & {0, 1, 2, 3, 4, 6, 7}  # the clean ones, padded or not, are not parsed
    os.remove(path)
