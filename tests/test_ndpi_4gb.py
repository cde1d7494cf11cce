"""NDPI beyond 4 GB: strips addressed through NDPI's high offset words.

The fixture is sparse (two uncompressed "map" images of zeros come first,
as a hole), so it is over 4 GB long but takes a few hundred KB of disk. It
is laid out by the project's own writer (``write_tiff``'s recipe, holes left
as holes): the writer's >4 GB encoding is what the reader, OpenSlide and the
pipeline then read.
"""

from __future__ import annotations

import os

import openslide
import pytest

from drivers.test_ventana import outdir, same_slide
from wsideid.pipeline import DeidOptions, deidentify
from wsideid.synth_vendors import make_ndpi_over_4gb
from wsideid.tiff.container import read_tiff
from wsideid.tiff_family.vendors import tiff_base


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    path = tmp_path_factory.mktemp("ndpi4g") / "big.ndpi"
    try:
        make_ndpi_over_4gb(str(path))
    except OSError as exc:  # a filesystem without sparse files
        pytest.skip(f"cannot make a sparse 4 GB file here: {exc.strerror}")
    st = os.stat(path)
    if st.st_blocks * 512 > 64 << 20:
        pytest.skip("the filesystem does not keep holes")
    return path


def test_fixture_is_over_4gb_and_sparse(big):
    st = os.stat(big)
    assert st.st_size > 2 ** 32 and st.st_blocks * 512 < 8 << 20


def test_reader_and_writer_offsets_beyond_4gb(big):
    tf = read_tiff(big)
    assert tf.kind == "ndpi"
    offs = [int(tiff_base.image_data(ifd, "<").src_offsets[0]) for ifd in tf.ifds]
    assert sum(o > 2 ** 32 for o in offs) == 4  # three levels and the macro
    with open(big, "rb") as fh:
        for o in offs:
            if o > 2 ** 32:
                assert os.pread(fh.fileno(), 3, o) == b"\xff\xd8\xff"  # the high word points at the JPEG
    s = openslide.OpenSlide(str(big))
    assert s.properties["openslide.vendor"] == "hamamatsu" and "macro" in s.associated_images


def test_ndpi_over_4gb_published(big, tmp_path):
    res = deidentify(big, outdir(tmp_path), DeidOptions(verify="full", detect="off"))
    assert res.status == "published" and res.format == "hamamatsu", res.report.failures()
    assert sorted(d.image.role for d in res.plan.images if d.action == "remove") == ["macro", "map", "map"]
    same_slide(big, res.output, "hamamatsu")
    assert os.path.getsize(res.output) < 1 << 20  # the maps' hole is not carried over
    assert b"NDPI4G-SN-55120" not in open(res.output, "rb").read()
