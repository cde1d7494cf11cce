"""Issue 11, lost images: SubIFD pyramids are walked as pyramids, kept as
SubIFDs (the layout OpenSlide reads the same way as the input), never
dropped and never mistaken for IFD loops."""

from __future__ import annotations

import os
import struct

import numpy as np
import pytest
import tifffile

import role_layouts as L
from realdata import real
from wsideid.errors import WsideidError
from wsideid.pipeline import DeidOptions, deidentify, inspect
from wsideid.tiff.container import read_tiff
from wsideid.tiff_family.vendors.tiff_base import image_data


def _tiles(path, ifd) -> list[bytes]:
    data = image_data(ifd, "<")
    with open(path, "rb") as fh:
        return [os.pread(fh.fileno(), int(c), int(o)) for o, c in zip(data.src_offsets, data.src_counts)]


def test_tifffile_ome_subifds_are_a_pyramid_not_a_loop(tmp_path):
    src = tmp_path / "ome.ome.tif"
    L.ome_subifds(str(src))
    tf = read_tiff(src)
    kids = tf.ifds[0].children[330]
    # tifffile lists the SubIFDs and also chains them: the same list said twice
    assert [k.next_offset for k in kids] == [kids[1].offset, 0]
    assert [k.path for k in kids] == ["ifd[0]/SubIFDs[0]", "ifd[0]/SubIFDs[1]"]
    plan = inspect(src)
    assert [(d.image.role, d.action, d.image.extra.get("parent")) for d in plan.images] == [
        ("level", "keep", None), ("level", "keep", 0), ("level", "keep", 0)]
    out = tmp_path / "out"
    out.mkdir()
    res = deidentify(src, out, DeidOptions(detect="off"))
    assert res.status == "published"
    o = read_tiff(res.output)
    assert [len(o.ifds), len(o.ifds[0].children[330])] == [1, 2]
    for a, b in zip(tf.image_ifds(), o.image_ifds()):
        assert _tiles(str(src), a) == _tiles(res.output, b)
    with tifffile.TiffFile(res.output) as t:
        assert len(t.pages[0].subifds) == 2


def test_libvips_subifd_pyramid_keeps_every_level(tmp_path):
    src = real("tiff/libvips_subifd_pyramid_cmu1_small.tif")
    out = tmp_path / "out"
    out.mkdir()
    res = deidentify(src, out, DeidOptions(detect="off"))
    assert res.status == "published"
    a, b = read_tiff(src), read_tiff(res.output)
    sizes = [(f.value(256), f.value(257)) for f in a.image_ifds()]
    assert len(sizes) == 5 and [(f.value(256), f.value(257)) for f in b.image_ifds()] == sizes
    assert len(b.ifds) == 1 and len(b.ifds[0].children[330]) == 4
    for x, y in zip(a.image_ifds(), b.image_ifds()):
        assert _tiles(str(src), x) == _tiles(res.output, y)  # pixel bytes unchanged


def _patch_next(path, member: int, value: int) -> None:
    tf = read_tiff(path)
    kid = tf.ifds[0].children[330][member]
    n = struct.unpack_from("<H", open(path, "rb").read(), kid.offset)[0]
    with open(path, "r+b") as fh:
        fh.seek(kid.offset + 2 + 12 * n)
        fh.write(struct.pack("<I", value))


def test_subifd_member_chaining_outside_its_list_is_refused(tmp_path):
    src = tmp_path / "ome.tif"
    L.ome_subifds(str(src))
    _patch_next(str(src), 1, read_tiff(src).ifds[0].offset)  # last member points at the top IFD
    with pytest.raises(WsideidError, match="leads outside the SubIFDs list"):
        inspect(src)


def test_subifd_chain_back_into_itself_is_a_loop(tmp_path):
    src = tmp_path / "ome.tif"
    L.ome_subifds(str(src))
    tf = read_tiff(src)
    kids = tf.ifds[0].children[330]
    # a one-member list whose chain returns to its start: rewrite SubIFDs to name member 0 only
    raw = bytearray(open(src, "rb").read())
    e = tf.ifds[0].entries[330]
    n = struct.unpack_from("<H", raw, tf.ifds[0].offset)[0]
    for i in range(n):
        pos = tf.ifds[0].offset + 2 + 12 * i
        if struct.unpack_from("<H", raw, pos)[0] == 330:
            struct.pack_into("<HHII", raw, pos, 330, e.type, 1, kids[0].offset)
    m = struct.unpack_from("<H", raw, kids[1].offset)[0]
    struct.pack_into("<I", raw, kids[1].offset + 2 + 12 * m, kids[0].offset)
    src.write_bytes(bytes(raw))
    with pytest.raises(WsideidError, match="IFD loop"):
        inspect(src)


def test_subifd_below_an_unknown_image_is_unknown(tmp_path):
    src = tmp_path / "r.tif"
    L.raw2ometiff_like(str(src))
    plan = inspect(src)
    for d in plan.images:
        if d.image.extra.get("parent") in (1, 2):
            assert d.image.role == "unknown" and "not a pyramid level" in d.rule


def test_subifd_level_must_be_reduced(tmp_path):
    """A SubIFD with NewSubfileType 0 (not a reduced image) is no level."""
    base = L.tissue()
    src = tmp_path / "s.tif"
    with tifffile.TiffWriter(src) as tw:
        tw.write(base, tile=(128, 128), subifds=1, **L.JPEG)
        tw.write(np.ascontiguousarray(base[::2, ::2]), tile=(128, 128), subfiletype=0, **L.JPEG)
    plan = inspect(src)
    assert plan.images[1].image.role == "unknown" and "NewSubfileType 0" in plan.images[1].rule
