"""Hostile TIFF structure: every case must end in a one-line WsideidError, quickly, with nothing published.

Each input breaks one rule on purpose (loops, giant counts, offsets past the
end or into other data, overlapping or empty tiles, impossible geometry).
Where memory matters the case runs in a subprocess whose peak RSS is read
back with ``resource``.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest

from fuzz.craft import classic, ifd_size, tiled_ifd, u16, u32
from fuzz.harness import time_limit
from wsideid.errors import WsideidError
from wsideid.pipeline import DeidOptions, deidentify, inspect


def refuse(tmp_path: Path, data: bytes, match: str, name: str = "bad.tif", seconds: float = 10) -> str:
    """Deid must refuse ``data`` with a one-line error matching ``match``, in bounded time, leaving nothing."""
    src = tmp_path / name
    src.write_bytes(data)
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    with time_limit(seconds):
        with pytest.raises(WsideidError, match=match) as err:
            deidentify(src, out, DeidOptions(detect="off"))
        with pytest.raises(WsideidError, match=match):
            inspect(src)
    assert "\n" not in str(err.value)
    assert os.listdir(out) == []
    return str(err.value)


def _entry_pos(seed, ifd_index: int, tag: int) -> int:
    """File position of ``tag``'s entry in top-level IFD ``ifd_index`` of a classic/NDPI seed."""
    from wsideid.tiff.container import read_tiff
    import tempfile
    with tempfile.NamedTemporaryFile(suffix=seed.suffix) as fh:
        fh.write(seed.data)
        fh.flush()
        ifd = read_tiff(fh.name).ifds[ifd_index]
    return ifd.offset + 2 + 12 * list(ifd.entries).index(tag)


def test_ndpi_magnification_with_two_values(tmp_path):
    """Regression: a Magnification (65421) of two SHORTs reached ``tuple > 0`` (TypeError) in hamamatsu.roles."""
    from fuzz.seeds import synthetic_seeds
    seed = [s for s in synthetic_seeds() if s.suffix == ".ndpi"][0]
    data = bytearray(seed.data)
    pos = _entry_pos(seed, 0, 65421)
    struct.pack_into("<HI", data, pos + 2, 3, 2)  # type SHORT, count 2: four bytes, still inline
    refuse(tmp_path, bytes(data), "tag 65421 must hold one number", name="bad.ndpi")


def test_width_with_several_values(tmp_path):
    """Regression: ImageWidth stored as two LONGs reached int(tuple) (TypeError) in image_info."""
    n = 1
    body = tiled_ifd(16, 16, 16, 16, 0, 0, n)
    body = [(256, 3, 2, u16(16) + u16(16)) if e[0] == 256 else e for e in body]
    data_at = 8 + ifd_size(len(body))
    body = [(324, 4, 1, u32(data_at)) if e[0] == 324 else (325, 4, 1, u32(256)) if e[0] == 325 else e for e in body]
    refuse(tmp_path, classic([body], bytes(256)), "tag 256 has type 3 and 2 values")


# ---------------------------------------------------------------- IFD graphs

def _tiny_level(first: int, n_ifds: int = 1) -> list[tuple[int, int, int, bytes]]:
    """A 16x16 one-tile grey level whose 256 data bytes follow ``n_ifds`` IFDs starting at ``first``."""
    data_at = first + n_ifds * ifd_size(10)
    return tiled_ifd(16, 16, 16, 16, data_at, 256, 1)


def test_ifd_chain_loop_through_two_ifds(tmp_path):
    e = _tiny_level(8, 2)
    data = classic([e, e], bytes(256), nexts=[8 + ifd_size(10), 8])
    refuse(tmp_path, data, "IFD loop")


def test_subifd_pointing_at_its_parent(tmp_path):
    e = _tiny_level(8) + [(330, 13, 1, u32(8))]
    e = [(324, 4, 1, u32(8 + ifd_size(11))) if t[0] == 324 else t for t in e]
    refuse(tmp_path, classic([e], bytes(256)), "IFD loop")


def test_exif_ifd_loop_into_the_chain(tmp_path):
    first = _tiny_level(8, 2)
    second = _tiny_level(8, 2)[:-2] + [(324, 4, 1, u32(8 + 2 * ifd_size(10))), (325, 4, 1, u32(256)),
                                        ]
    first = [t for t in first if t[0] != 277] + [(34665, 4, 1, u32(8 + ifd_size(10)))]
    refuse(tmp_path, classic([first, second], bytes(256)), "IFD loop|referenced twice")


def test_subifds_nested_too_deeply(tmp_path):
    """Six IFDs, each the SubIFD of the previous: the reader stops at its depth limit."""
    n = 6
    ifds = []
    for i in range(n):
        e = [(256, 4, 1, u32(16)), (257, 4, 1, u32(16)), (330, 13, 1, u32(8 + (i + 1) * ifd_size(3)))]
        ifds.append(e)
    ifds[-1] = ifds[-1][:2] + [(254, 4, 1, u32(0))]
    refuse(tmp_path, classic(ifds, b"", nexts=[0] * n), "nested too deeply")


def test_thousands_of_ifds(tmp_path):
    n = 5000
    e = [(254, 4, 1, u32(0))]
    refuse(tmp_path, classic([e] * n), "more than 4096 IFDs")


def test_ifd_claiming_65535_entries(tmp_path):
    data = b"II*\0" + u32(8) + u16(0xFFFF) + bytes(64)
    refuse(tmp_path, data, "claims 65535 entries")


# ---------------------------------------------------------------- counts and offsets

@pytest.mark.parametrize("typ,count", [(2, 0xFFFFFFFF), (4, 0x40000000), (12, 0x20000000)])
def test_tag_count_in_the_billions(tmp_path, typ, count):
    e = _tiny_level(8) + [(270, typ, count, u32(8))]
    e = [(324, 4, 1, u32(8 + ifd_size(11))) if t[0] == 324 else t for t in e]
    refuse(tmp_path, classic([e], bytes(256)), "larger than the file|past the end|must hold one number|no vendor")


def test_bigtiff_count_of_2_to_the_60(tmp_path):
    head = b"II+\0" + struct.pack("<HHQ", 8, 0, 16)
    ent = [(256, 4, 1, 16), (257, 4, 1, 16), (270, 2, 2 ** 60, 64), (322, 4, 1, 16), (323, 4, 1, 16),
           (324, 16, 1, 200), (325, 16, 1, 256)]
    body = struct.pack("<Q", len(ent)) + b"".join(struct.pack("<HHQQ", t, ty, c, v) for t, ty, c, v in ent) + bytes(8)
    refuse(tmp_path, head + body + bytes(512), "larger than the file")


def test_tile_offsets_beyond_4_gb_in_a_small_bigtiff(tmp_path):
    head = b"II+\0" + struct.pack("<HHQ", 8, 0, 16)
    ent = [(256, 4, 1, 16), (257, 4, 1, 16), (258, 3, 1, 8), (259, 3, 1, 1), (262, 3, 1, 1), (277, 3, 1, 1),
           (322, 4, 1, 16), (323, 4, 1, 16), (324, 16, 1, 5 << 30), (325, 16, 1, 256)]
    body = struct.pack("<Q", len(ent)) + b"".join(struct.pack("<HHQQ", t, ty, c, v) for t, ty, c, v in ent) + bytes(8)
    refuse(tmp_path, head + body + bytes(256), "past the end of the file")


def test_value_offset_past_the_end(tmp_path):
    e = _tiny_level(8) + [(305, 2, 40, u32(1 << 20))]
    e = [(324, 4, 1, u32(8 + ifd_size(11))) if t[0] == 324 else t for t in e]
    refuse(tmp_path, classic([e], bytes(256)), "past the end")


def test_tile_count_does_not_match_dimensions(tmp_path):
    e = tiled_ifd(64, 64, 16, 16, 8 + ifd_size(10), 256, 1)  # 16 tiles needed, 1 given
    refuse(tmp_path, classic([e], bytes(256)), "1 tiles where 64x64 needs 16")


def test_huge_dimensions(tmp_path):
    e = tiled_ifd(0xFFFFFFFF, 0xFFFFFFFF, 16, 16, 8 + ifd_size(10), 256, 1)
    refuse(tmp_path, classic([e], bytes(256)), "outside what any scanner writes")


def test_huge_tile_side_is_refused_before_a_reader_allocates_it(tmp_path):
    """Found by bench/fuzz_long.py: TileWidth 2^31-1 on a 128 px image made OpenSlide
    try to allocate 1 TB for one tile and abort the whole process during verification."""
    e = tiled_ifd(128, 96, 0x7FFFFFFF, 128, 8 + ifd_size(10), 256, 1)
    refuse(tmp_path, classic([e], bytes(256)), "tile size 2147483647x128")


def test_zero_tile_size(tmp_path):
    e = tiled_ifd(16, 16, 0, 16, 8 + ifd_size(10), 256, 1)
    refuse(tmp_path, classic([e], bytes(256)), "tile size 0x16")


# ---------------------------------------------------------------- data pointing at other data

def _synth(fmt: str):
    from fuzz.seeds import synthetic_seeds
    return {s.suffix: s for s in synthetic_seeds()}[fmt]


def _patched_arrays(seed, ifd_index: int, changes: dict[int, tuple[int, int]]) -> bytes:
    """The seed with tile/strip ``i`` of IFD ``ifd_index`` re-pointed to (offset, count)."""
    import tempfile

    from wsideid.tiff.container import read_tiff
    with tempfile.NamedTemporaryFile(suffix=seed.suffix) as fh:
        fh.write(seed.data)
        fh.flush()
        ifd = read_tiff(fh.name).ifds[ifd_index]
    data = bytearray(seed.data)
    for ot, ct in ((324, 325), (273, 279)):
        if ot in ifd.entries:
            break
    for i, (off, cnt) in changes.items():
        for tag, v in ((ot, off), (ct, cnt)):
            e = ifd.entries[tag]
            assert e.type == 4 and e.value_offset is not None
            struct.pack_into("<I", data, e.value_offset + 4 * i, v)
    return bytes(data)


def _value_range(seed, ifd_index: int, tag: int) -> tuple[int, int]:
    import tempfile

    from wsideid.tiff.container import read_tiff
    with tempfile.NamedTemporaryFile(suffix=seed.suffix) as fh:
        fh.write(seed.data)
        fh.flush()
        tf = read_tiff(fh.name)
    e = tf.ifds[ifd_index].entries[tag]
    return e.value_offset, len(e.raw)


def test_tile_pointing_at_the_description_is_refused(tmp_path):
    """Regression: the description's bytes were copied as a 'tile' and skipped by the residual scan (PHI published)."""
    seed = _synth(".svs")
    off, n = _value_range(seed, 0, 270)
    refuse(tmp_path, _patched_arrays(seed, 0, {0: (off, n)}), "overlaps the file's metadata", name="x.svs")


def test_tile_pointing_at_the_label_strips_is_refused(tmp_path):
    """A kept level's tile may not reuse the removed label's bytes (the label would ride along as 'pixels')."""
    import tempfile

    from wsideid.tiff.container import read_tiff
    from wsideid.tiff_family.vendors.tiff_base import image_data
    seed = _synth(".svs")
    with tempfile.NamedTemporaryFile(suffix=".svs") as fh:
        fh.write(seed.data)
        fh.flush()
        tf = read_tiff(fh.name)
    label = image_data(tf.ifds[3], "<")
    total = int(label.src_counts.sum())
    refuse(tmp_path, _patched_arrays(seed, 0, {0: (int(label.src_offsets[0]), total)}),
           "overlaps another image's data", name="x.svs")


def test_overlapping_tiles_are_refused(tmp_path):
    seed = _synth(".tiff")
    import tempfile

    from wsideid.tiff.container import read_tiff
    from wsideid.tiff_family.vendors.tiff_base import image_data
    with tempfile.NamedTemporaryFile(suffix=".tiff") as fh:
        fh.write(seed.data)
        fh.flush()
        d = image_data(read_tiff(fh.name).ifds[0], "<")
    o0, c0 = int(d.src_offsets[0]), int(d.src_counts[0])
    refuse(tmp_path, _patched_arrays(seed, 0, {1: (o0 + c0 // 2, c0)}), "overlap", name="x.tiff")


def test_zero_size_tiles_publish_or_fail_cleanly(tmp_path):
    """Empty tiles (count 0) are how sparse pyramids say 'no data': an allowed outcome either way, never a crash."""
    from fuzz.harness import run_case
    seed = _synth(".tiff")
    data = _patched_arrays(seed, 0, {i: (0, 0) for i in range(4)})
    outcome = run_case(data, tmp_path, "zero.tiff", seed.planted)
    assert outcome.kind in ("published", "error")
