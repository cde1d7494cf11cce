"""The TIFF container layer: bounded parsing and byte-preserving rewriting."""

from __future__ import annotations

import struct

import numpy as np
import pytest
import tifffile

from wsideid.errors import MalformedFile, UnsupportedFormat
from wsideid.tiff.container import read_tiff
from wsideid.tiff.writer import ImageData, OutEntry, OutIfd, write_tiff
from wsideid.tiff_family.vendors.tiff_base import image_data

from realdata import REAL_TIFF_SLIDES, real


def _classic(entries: list[tuple[int, int, int, bytes]], next_ifd: int = 0, first: int = 8) -> bytes:
    body = struct.pack("<H", len(entries))
    for tag, typ, count, val in entries:
        body += struct.pack("<HHI", tag, typ, count) + val.ljust(4, b"\0")
    return b"II*\0" + struct.pack("<I", first) + body + struct.pack("<I", next_ifd)


@pytest.mark.parametrize("rel", sorted(REAL_TIFF_SLIDES))
def test_reads_every_ifd_of_real_slides(rel):
    path = real(rel)
    tf = read_tiff(path)
    ref = tifffile.TiffFile(path)
    assert len(tf.ifds) == len(ref.pages)
    for ifd, page in zip(tf.ifds, ref.pages):
        assert set(ifd.entries) == {t.code for t in page.tags.values()}
    assert tf.kind == ("ndpi" if rel.endswith(".ndpi") else "classic")


def _rewrite(src, dst, tf):
    outs = []
    for ifd in tf.ifds:
        ents = {t: OutEntry(t, e.type, e.count, e.raw) for t, e in ifd.entries.items()}
        outs.append(OutIfd(ents, image_data(ifd, tf.byteorder)))
    return write_tiff(str(src), str(dst), outs, tf.kind, tf.byteorder)


@pytest.mark.parametrize("rel", sorted(REAL_TIFF_SLIDES))
def test_rewrite_copies_every_tile_byte_for_byte(rel, tmp_path):
    src = real(rel)
    tf = read_tiff(src)
    dst = tmp_path / "out.tif"
    _rewrite(src, dst, tf)
    out = read_tiff(dst)
    assert out.kind == tf.kind
    a, b = src.read_bytes(), dst.read_bytes()
    for i_src, i_out in zip(tf.ifds, out.ifds):
        ds, do = image_data(i_src, tf.byteorder), image_data(i_out, out.byteorder)
        for os_, cs, oo, co in zip(ds.src_offsets, ds.src_counts, do.src_offsets, do.src_counts):
            assert cs == co and a[os_:os_ + cs] == b[oo:oo + co]


def test_bigtiff_round_trip(tmp_path):
    src = tmp_path / "big.tif"
    data = (np.arange(256 * 256 * 3) % 251).astype(np.uint8).reshape(256, 256, 3)
    tifffile.imwrite(src, data, bigtiff=True, tile=(64, 64), photometric="rgb", compression="zlib")
    tf = read_tiff(src)
    assert tf.kind == "bigtiff"
    dst = tmp_path / "out.tif"
    _rewrite(src, dst, tf)
    assert read_tiff(dst).kind == "bigtiff"
    np.testing.assert_array_equal(tifffile.imread(dst), data)


def test_unreferenced_bytes_never_reach_the_output(tmp_path):
    """Bytes between tiles (e.g. an old label) are not copied."""
    src = tmp_path / "gap.tif"
    tifffile.imwrite(src, np.zeros((64, 64), np.uint8), tile=(32, 32))
    raw = bytearray(src.read_bytes())
    secret = b"ORPHAN-PHI-VALUE"
    raw += secret  # appended, referenced by nothing
    src.write_bytes(bytes(raw))
    tf = read_tiff(src)
    dst = tmp_path / "out.tif"
    _rewrite(src, dst, tf)
    assert secret not in dst.read_bytes()


def test_not_tiff_is_refused(tmp_path):
    p = tmp_path / "x.svs"
    p.write_bytes(b"\xff\xd8\xff\xe0 not a tiff at all")
    with pytest.raises(UnsupportedFormat):
        read_tiff(p)


def test_ifd_loop_is_detected(tmp_path):
    p = tmp_path / "loop.tif"
    p.write_bytes(_classic([(256, 4, 1, struct.pack("<I", 1))], next_ifd=8))
    with pytest.raises(MalformedFile, match="loop"):
        read_tiff(p)


def test_huge_tag_count_is_refused(tmp_path):
    p = tmp_path / "count.tif"
    p.write_bytes(_classic([(270, 2, 3_000_000_000, struct.pack("<I", 8))]))
    with pytest.raises(MalformedFile):
        read_tiff(p)


def test_offset_past_end_is_refused(tmp_path):
    p = tmp_path / "past.tif"
    p.write_bytes(_classic([(270, 2, 10, struct.pack("<I", 10_000))]) + bytes(100))
    with pytest.raises(MalformedFile, match="past the end"):
        read_tiff(p)


def test_first_ifd_past_end_is_refused(tmp_path):
    p = tmp_path / "first.tif"
    p.write_bytes(b"II*\0" + struct.pack("<I", 1 << 31))
    with pytest.raises(MalformedFile):
        read_tiff(p)


def test_overlapping_tiles_are_refused(tmp_path):
    blob = tmp_path / "blob"
    blob.write_bytes(bytes(1000))
    ifd = OutIfd({256: OutEntry(256, 4, 1, struct.pack("<I", 8))},
                 ImageData(324, 325, np.array([10, 20]), np.array([50, 50])))
    with pytest.raises(MalformedFile, match="overlap"):
        write_tiff(str(blob), str(tmp_path / "o.tif"), [ifd], "classic", "<")


def test_identical_ranges_are_shared_not_duplicated(tmp_path):
    blob = tmp_path / "blob"
    blob.write_bytes(bytes(range(256)) * 4)
    ifd = OutIfd({256: OutEntry(256, 4, 1, struct.pack("<I", 8))},
                 ImageData(324, 325, np.array([10, 10, 100]), np.array([20, 20, 5])))
    lay = write_tiff(str(blob), str(tmp_path / "o.tif"), [ifd], "classic", "<")
    offs = lay.new_offsets[0]
    assert offs[0] == offs[1] and offs[2] != offs[0]


def test_description_with_absurd_key_count_is_refused(tmp_path):
    from wsideid.pipeline import inspect
    p = tmp_path / "keys.svs"
    desc = "Aperio Image Library v1\r\n64x64 (32x32) JPEG/RGB Q=70|" + "|".join(f"K{i} = v" for i in range(30_000))
    tifffile.imwrite(p, np.zeros((64, 64, 3), np.uint8), tile=(32, 32), description=desc, metadata=None)
    with pytest.raises(MalformedFile, match="keys"):
        inspect(p)
