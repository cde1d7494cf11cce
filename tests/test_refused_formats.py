"""Formats recognised by content and refused by name: one line naming the
format and its conversion route, exit code 2, nothing written; never by the
file name."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from realdata import real
from test_cli import assert_clean_failure, run
from wsideid.registry import open_input as open_slide
from wsideid.errors import UnsupportedFormat
from wsideid import refused

ROOT = Path(__file__).resolve().parents[1]


def _isyntax() -> bytes:
    xml = (b'<?xml version="1.0" encoding="UTF-8" ?>\r\n<DataObject ObjectType="DPUfsImport">\r\n'
           b'<Attribute Name="PIM_DP_UFS_BARCODE" Group="0x301D" Element="0x1002" PMSVR="IString">'
           b'U1AtMjYtMDA0MjE=</Attribute>\r\n</DataObject>\r\n\x04')
    return xml + bytes(range(256)) * 4


def _vsi() -> bytes:
    # TIFF header (first IFD at 64), then the VSI tag-stream header at byte 8
    head = b"II*\x00" + struct.pack("<I", 64) + struct.pack("<hhiqi4x", 24, 21321, 1, 200, 0)
    return head.ljust(64, b"\0") + struct.pack("<H", 0) + b"\0" * 4


# name -> (bytes, the format name the message must carry); files get misleading names
CRAFTED = {
    "isyntax": (_isyntax(), "Philips iSyntax"),
    "czi": (b"ZISRAWFILE".ljust(32, b"\0") + struct.pack("<qq", 512, 512) + b"\0" * 200, "Zeiss CZI"),
    "vsi": (_vsi(), "Olympus/Evident VSI"),
    "ets": (b"SIS\x00" + struct.pack("<I", 64) + b"\0" * 56 + b"ETS\x00" + b"\0" * 100, "Olympus/Evident ETS"),
    "vms": (b"[Virtual Microscope Specimen]\r\nNoLayers=1\r\nImageFile=x.jpg\r\n", "Hamamatsu VMS"),
    "vmu": (b"[Uncompressed Virtual Microscope Specimen]\r\nNoLayers=1\r\n", "Hamamatsu VMU"),
}


def _check_message(stderr: str, name: str) -> None:
    line = stderr.strip()
    entry = next(r for r in refused.SLIDE_FORMATS if name in r.name)
    assert entry.message() in line, line  # the message comes from the one table
    assert name in line and "not supported" in line, line
    assert "docs/formats.md" in line and ("DICOM" in line or "OME-TIFF" in line), line


@pytest.mark.parametrize("kind", sorted(CRAFTED))
def test_refused_by_name_cli(kind, tmp_path):
    data, name = CRAFTED[kind]
    src = tmp_path / "slide.svs"  # the name says SVS; the content decides
    src.write_bytes(data)
    out = tmp_path / "out"
    out.mkdir()
    p = run("deid", src, "-o", out)
    assert p.returncode == 2
    assert_clean_failure(p, out)
    _check_message(p.stderr, name)


def test_mirax_folder_refused(tmp_path):
    mrxs = tmp_path / "CASE.mrxs"
    mrxs.write_bytes(b"\x01\x02opaque")
    (tmp_path / "CASE").mkdir()
    (tmp_path / "CASE" / "Slidedat.ini").write_bytes(b"[GENERAL]\r\nSLIDE_ID = 1234\r\n")
    for src in (mrxs, tmp_path / "CASE"):
        with pytest.raises(UnsupportedFormat, match="3DHistech MIRAX"):
            open_slide(src)
    out = tmp_path / "out"
    out.mkdir()
    p = run("deid", mrxs, "-o", out)
    assert_clean_failure(p, out)
    _check_message(p.stderr, "MIRAX")


def test_extension_alone_is_not_recognition(tmp_path):
    for name in ("a.czi", "a.vsi", "a.isyntax", "a.mrxs", "a.vms"):
        src = tmp_path / name
        src.write_bytes(b"\xff\xd8\xff\xe0 just a jpeg")
        assert refused.recognise(str(src)) is None
        with pytest.raises(UnsupportedFormat, match="a JPEG image"):
            open_slide(src)
    # a .mrxs with no Slidedat.ini folder beside it is not a MIRAX slide either
    assert refused.recognise(str(tmp_path / "a.mrxs")) is None


def test_real_czi_refused(tmp_path):
    czi = sorted(real("other").glob("*.czi"))
    if not czi:
        pytest.skip("no CZI sample")
    out = tmp_path / "out"
    out.mkdir()
    p = run("deid", czi[0], "-o", out)
    assert p.returncode == 2
    assert_clean_failure(p, out)
    _check_message(p.stderr, "Zeiss CZI")


def test_routes_are_documented():
    doc = (ROOT / "docs" / "formats.md").read_text()
    for fmt in refused.SLIDE_FORMATS:
        assert fmt.name.split(" (")[0] in doc, fmt.name
