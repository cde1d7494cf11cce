"""The JPEG / JPEG 2000 stream rule (issue 11, item 2).

Every copied stream keeps only its decoding segments up to its first true
end marker. Streams are made here with Pillow, imagecodecs and the
project's own TIFF writer; each planted text must be absent from the output
(ASCII and UTF-16) or the slide refused with a one-line message.
"""

from __future__ import annotations

import io
import os
import struct

import imagecodecs
import numpy as np
import pytest
from PIL import Image

from wsideid.jpeg import j2k, structure
from wsideid.jpeg.compare import same_decoding
from wsideid.pipeline import DeidOptions, deidentify
from wsideid.synth import make_svs, tissue
from wsideid.tiff import jpegsegs
from wsideid.tiff.container import read_tiff
from wsideid.tiff.writer import OutEntry, OutIfd, write_tiff
from wsideid.tiff_family.vendors.tiff_base import image_data

NEEDLE = "Patient Jane Doe MRN 4711"


def absent(data: bytes, text: str = NEEDLE) -> bool:
    return all(text.encode(enc) not in data for enc in ("ascii", "utf-16-le", "utf-16-be"))


def seg(marker: int, body: bytes) -> bytes:
    return bytes((0xFF, marker)) + struct.pack(">H", len(body) + 2) + body


def jpeg(img: np.ndarray, **kw) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, "JPEG", quality=85, **kw)
    return buf.getvalue()


def scans(data: bytes) -> list[int]:
    """Offsets of the SOS markers of a stream (marker walk, entropy data skipped)."""
    out, pos = [], 2
    while pos < len(data):
        marker = data[pos + 1]
        if marker == 0xD9:
            break
        length = struct.unpack(">H", data[pos + 2:pos + 4])[0]
        if marker == 0xDA:
            out.append(pos)
            pos = structure._Parser(data, frozenset(), False).ecs_end(pos + 2 + length)
            continue
        pos += 2 + length
    return out


IMG = tissue(64, 48, 3)
COM = seg(0xFE, NEEDLE.encode())
APP1 = seg(0xE1, b"Exif\0\0" + NEEDLE.encode("utf-16-le"))


# ---- the parser on single streams ------------------------------------------

def test_baseline_segments_dropped_coefficients_equal():
    src = jpeg(IMG)
    unused = seg(0xC4, bytes([0x13]) + bytes([0] * 7 + [len(NEEDLE)] + [0] * 8) + NEEDLE.encode())  # AC slot 3
    dirty = src[:2] + COM + APP1 + unused + src[2:]
    out = structure.clean(dirty)
    assert out.changed and absent(out.data) and absent(out.data, "Exif")
    assert out.data == structure.clean(src).data
    assert same_decoding(dirty, out.data) is None


def test_progressive_segments_between_scans_dropped():
    src = jpeg(IMG, progressive=True)
    at = scans(src)
    assert len(at) > 3
    # a COM and an APP1 between scans, and an unused Huffman table redefined between scans
    dirty = src[:at[2]] + COM + APP1 + src[at[2]:at[3]] + COM + src[at[3]:]
    out = structure.clean(dirty)
    assert absent(out.data) and out.sof == 0xC2
    assert out.data == structure.clean(src).data
    assert same_decoding(dirty, out.data) is None
    assert np.array_equal(imagecodecs.jpeg8_decode(out.data), imagecodecs.jpeg8_decode(src))


def test_progressive_table_redefined_between_scans_is_kept_only_when_used():
    src = jpeg(IMG, progressive=True)
    at = scans(src)
    # a DHT for a slot no scan uses, between scans: dropped; the encoder's own per-scan DHTs stay
    unused = seg(0xC4, bytes([0x13]) + bytes([0] * 7 + [len(NEEDLE)] + [0] * 8) + NEEDLE.encode())
    out = structure.clean(src[:at[1]] + unused + src[at[1]:])
    assert absent(out.data) and out.data == structure.clean(src).data


def test_first_true_eoi_ends_the_stream():
    src = jpeg(IMG)
    out = structure.clean(src + NEEDLE.encode() + b"\xff\xd9")
    assert out.data == src and absent(out.data)
    assert structure.clean(src).changed is False
    # fill bytes before EOI are dropped
    assert structure.clean(src[:-2] + b"\xff\xff\xff\xd9").data == src


def test_adobe_and_jfif_rebuilt_canonically():
    src = jpeg(IMG)
    adobe = seg(0xEE, b"Adobe\x00\x64\x00\x00\x00\x00\x01" + NEEDLE.encode())
    jfif_thumb = seg(0xE0, b"JFIF\0\x01\x01\x01\x00\x48\x00\x48\x02\x01" + bytes(6) + NEEDLE.encode()[:0])
    out = structure.clean(src[:2] + adobe + jfif_thumb + src[2:]).data
    assert absent(out)
    assert b"\xff\xee\x00\x0eAdobe\x00\x64\x00\x00\x00\x00\x01" in out
    assert out.count(b"JFIF") == 1 and b"JFIF\0\x01\x01\x00\x00\x01\x00\x01\x00\x00" in out


@pytest.mark.parametrize("mutate, why", [
    (lambda s: s.replace(b"\xff\xc0", b"\xff\xc9", 1), "arithmetic"),
    (lambda s: s[:2] + seg(0xDB, bytes([0x03]) + bytes(range(1, 65))) + s[2:].replace(b"\xff\xdb\x00\x43\x00",
                                                                                     b"\xff\xdb\x00\x43\x02", 1),
     "never defined"),
    (lambda s: s[:-2], "not terminated"),
    (lambda s: s[:2] + b"\xff\xd0" + s[2:], "outside entropy-coded data"),
])
def test_refused_with_one_line(mutate, why):
    with pytest.raises(structure.UnsafeJpeg, match=why) as exc:
        structure.clean(mutate(jpeg(IMG)))
    assert "\n" not in str(exc.value)


def test_jpegtables_unused_dqt_with_text_dropped():
    tables = b"\xff\xd8" + seg(0xDB, bytes([0]) + bytes(range(1, 65))) + \
        seg(0xDB, bytes([3]) + NEEDLE.encode().ljust(64, b"!")) + b"\xff\xd9"
    keys = structure.table_keys(tables)
    assert ("q", 3) in keys
    out = structure.clean_tables(tables, {("q", 0)})
    assert absent(out) and out.startswith(b"\xff\xd8\xff\xdb\x00\x43\x00") and out.endswith(b"\xff\xd9")


# ---- JPEG 2000 -------------------------------------------------------------

def _with_tile_com(cs: bytes, text: bytes) -> bytes:
    """Insert a COM into the first tile-part header, with Psot grown to match."""
    sot = cs.index(b"\xff\x90")
    psot = struct.unpack(">I", cs[sot + 6:sot + 10])[0]
    com = seg(0x64, b"\x00\x01" + text)
    head = cs[sot:sot + 6] + struct.pack(">I", psot + len(com) if psot else 0) + cs[sot + 10:sot + 12]
    return cs[:sot] + head + com + cs[sot + 12:]


def test_j2k_com_dropped_everywhere_psot_rewritten():
    cs = imagecodecs.jpeg2k_encode(IMG, level=0, codecformat="j2k")
    main_com = seg(0x64, b"\x00\x01" + NEEDLE.encode())
    siz_end = 4 + struct.unpack(">H", cs[4:6])[0]
    dirty = _with_tile_com(cs[:siz_end] + main_com + cs[siz_end:], NEEDLE.encode("utf-16-le")) + NEEDLE.encode()
    out = j2k.clean(dirty)
    assert absent(out) and out.endswith(b"\xff\xd9")
    assert np.array_equal(imagecodecs.jpeg2k_decode(out), IMG)
    assert j2k.is_clean(out) and not j2k.is_clean(dirty)
    assert same_decoding(dirty, out, kind="j2k") is None


def test_j2k_unknown_marker_refused_and_jp2_boxes_dropped():
    cs = imagecodecs.jpeg2k_encode(IMG, level=0, codecformat="j2k")
    siz_end = 4 + struct.unpack(">H", cs[4:6])[0]
    with pytest.raises(j2k.UnsafeJ2k, match="unknown marker"):
        j2k.clean(cs[:siz_end] + seg(0x74, b"\0\0") + cs[siz_end:])
    jp2 = imagecodecs.jpeg2k_encode(IMG, level=0, codecformat="jp2")
    xml = struct.pack(">I", 8 + len(NEEDLE)) + b"xml " + NEEDLE.encode()
    out = j2k.clean(jp2 + xml)
    assert absent(out) and np.array_equal(imagecodecs.jpeg2k_decode(out), IMG)


# ---- the fast tile check agrees with the parser -----------------------------

@pytest.mark.parametrize("batch_bytes", [64, 4096, 16 << 20])
def test_fast_check_flags_exactly_the_unclean(tmp_path, monkeypatch, batch_bytes):
    src = jpeg(IMG)
    prog = jpeg(IMG, progressive=True)
    streams = [src, src[:2] + COM + src[2:], src + NEEDLE.encode() + b"\xff\xd9", prog,
               structure.clean(prog).data, src[:-2] + b"\xff\xff\xd9", src, b"\xff\xd8\xff\xd9"]
    path = tmp_path / "tiles.bin"
    path.write_bytes(b"".join(streams))
    offs = np.cumsum([0] + [len(s) for s in streams[:-1]])
    cnts = np.array([len(s) for s in streams])
    monkeypatch.setattr(jpegsegs, "BATCH_BYTES", batch_bytes)
    monkeypatch.setattr(jpegsegs, "STREAM_CHUNK", 97)
    flagged = set(jpegsegs.tiles_with_segments(str(path), offs, cnts).tolist())
    # the fast check sends clean progressive streams (3, 4) to the parser, and never passes an unclean one
    assert flagged - {3, 4} == {k for k, s in enumerate(streams) if not structure.is_clean(s)} == {1, 2, 5, 7}


# ---- whole slides ----------------------------------------------------------

def _rewrite(src: str, dst: str, tiles: dict[int, bytes], tables: bytes | None = None) -> None:
    """``src`` with level-0 tiles (and JPEGTables) replaced, written by the project's writer."""
    tf = read_tiff(src)
    outs = []
    for i, ifd in enumerate(tf.ifds):
        entries = {t: OutEntry(t, e.type, e.count, e.raw) for t, e in ifd.entries.items()
                   if t not in (273, 279, 324, 325)}
        data = image_data(ifd, tf.byteorder)
        if i == 0:
            with open(src, "rb") as fh:
                for t, new in tiles.items():
                    data.replaced[t] = new(fh.read()[data.src_offsets[t]:][:data.src_counts[t]]) \
                        if callable(new) else new
                    fh.seek(0)
            if tables is not None:
                entries[347] = OutEntry(347, 7, len(tables), tables)
        outs.append(OutIfd(entries, data, {}))
    write_tiff(src, dst, outs, tf.kind, tf.byteorder)


@pytest.fixture(scope="module")
def plain_svs(tmp_path_factory):
    path = tmp_path_factory.mktemp("svs") / "plain.svs"
    make_svs(str(path), width=768, height=512, hidden_carriers=False)
    return str(path)


@pytest.fixture(scope="module")
def tables_svs(plain_svs, tmp_path_factory):
    """The plain SVS with level-0 tiles abbreviated and their tables in JPEGTables (as Aperio writes)."""
    from jpeg_fixtures import split_abbreviated
    tiles, _ = _level0_tiles(plain_svs)
    tables = split_abbreviated(tiles[0])[0]
    assert all(split_abbreviated(t)[0] == tables for t in tiles)
    path = tmp_path_factory.mktemp("svs") / "tables.svs"
    _rewrite(plain_svs, str(path), {k: split_abbreviated(t)[1] for k, t in enumerate(tiles)}, tables)
    return str(path)


def _level0_tiles(path: str):
    tf = read_tiff(path)
    ifd = tf.ifds[0]
    d = image_data(ifd, tf.byteorder)
    raw = open(path, "rb").read()
    tiles = [raw[o:o + c] for o, c in zip(d.src_offsets, d.src_counts)]
    return tiles, ifd.entries[347].raw if ifd.has(347) else None


def _deid(path, tmp_path, **kw):
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    return deidentify(path, out, DeidOptions(detect="off", **kw))


@pytest.mark.parametrize("verify", ["sample", "full"])
def test_slide_tiles_and_tables_cleaned(tables_svs, tmp_path, verify):
    tiles, tables = _level0_tiles(tables_svs)
    full_tile = structure.clean(tiles[3], structure.table_keys(tables))  # abbreviated: tables from JPEGTables
    pixels = imagecodecs.jpeg8_decode(tiles[1], tables=tables)
    prog = jpeg(pixels, progressive=True)
    at = scans(prog)
    dirty_tables = tables[:-2] + seg(0xDB, bytes([3]) + NEEDLE.encode().ljust(64, b"!")) + tables[-2:]
    dst = tmp_path / "dirty.svs"
    _rewrite(tables_svs, str(dst), {
        1: prog[:at[2]] + COM + APP1 + prog[at[2]:],        # progressive, segments between scans
        2: tiles[2] + NEEDLE.encode() + b"\xff\xd9",         # text after the EOI, ending in FF D9
        3: tiles[3][:2] + COM + tiles[3][2:],
    }, dirty_tables)
    assert not absent(dst.read_bytes())  # planted
    res = _deid(str(dst), tmp_path, verify=verify)
    assert res.status == "published", res
    names = {c.name: c for c in res.report.checks}
    assert names["compressed-streams"].passed
    assert "stream decoding: 3 stream(s) edited by the stream rule decode exactly" in names["compressed-streams"].detail
    data = open(res.output, "rb").read()
    assert absent(data) and absent(data, "Exif")
    out_tiles, out_tables = _level0_tiles(res.output)
    assert absent(out_tables) and ("q", 3) not in structure.table_keys(out_tables)
    assert out_tiles[2] == tiles[2] and out_tiles[3] == full_tile.data
    assert np.array_equal(imagecodecs.jpeg8_decode(out_tiles[1], tables=out_tables), imagecodecs.jpeg8_decode(prog))
    assert all(out_tiles[k] == tiles[k] for k in range(4, len(tiles)))


def test_jpegtables_cleaning_disabled_is_caught(tables_svs, tmp_path, monkeypatch):
    """Verifier mutation: the writer keeps an unused DQT holding text in JPEGTables; verification must refuse."""
    from wsideid.errors import VerificationFailed
    from wsideid.tiff_family.vendors import tiff_base
    _, tables = _level0_tiles(tables_svs)
    dirty_tables = tables[:-2] + seg(0xDB, bytes([3]) + NEEDLE.encode().ljust(64, b"!")) + tables[-2:]
    dst = tmp_path / "dirty-tables.svs"
    _rewrite(tables_svs, str(dst), {}, dirty_tables)
    real, calls = tiff_base.jpegsegs, []

    class Shim:
        def __getattr__(self, name):
            return getattr(real, name)

        @staticmethod
        def clean_tables(raw, *a, **kw):
            calls.append(len(raw))
            return raw
    monkeypatch.setattr(tiff_base, "jpegsegs", Shim())
    with pytest.raises(VerificationFailed) as err:
        _deid(str(dst), tmp_path)
    assert "compressed-streams" in err.value.checks
    assert calls and not [n for n in os.listdir(tmp_path / "out") if not n.startswith(".")]


def test_slide_with_unsafe_tile_refused(plain_svs, tmp_path):
    tiles, _ = _level0_tiles(plain_svs)
    dst = tmp_path / "arith.svs"
    _rewrite(plain_svs, str(dst), {0: tiles[0].replace(b"\xff\xc0", b"\xff\xc9", 1)})
    from wsideid.errors import WsideidError
    with pytest.raises(WsideidError, match="arithmetic-coded JPEG") as exc:
        _deid(str(dst), tmp_path)
    assert "\n" not in str(exc.value)


def test_bytes_after_last_block_found_by_verification(tables_svs, tmp_path):
    """Text between the last block and the EOI is never decoded; the sampled slack check sees it."""
    from wsideid.jpeg.compare import entropy_slack
    tiles, tables = _level0_tiles(tables_svs)
    assert entropy_slack(tiles[0], tables) == 0
    hidden = tiles[0][:-2] + NEEDLE.encode() + b"\xff\xd9"
    assert entropy_slack(hidden, tables) == len(NEEDLE)
    assert structure.is_clean(hidden, structure.table_keys(tables))  # the structural rule cannot see it
    dst = tmp_path / "slack.svs"
    _rewrite(tables_svs, str(dst), {0: hidden})
    from wsideid.errors import VerificationFailed
    with pytest.raises(VerificationFailed, match="1 sampled baseline streams with bytes after their last block") as err:
        _deid(str(dst), tmp_path)
    assert err.value.checks == ("compressed-streams",)


def test_ndpi_restart_offsets_follow_the_entropy_data(tmp_path):
    """A COM in an NDPI strip header and text after its EOI: McuStarts shift by the header change only."""
    from wsideid.synth import make_ndpi
    from wsideid.tiff.container import integer_array
    src = tmp_path / "plain.ndpi"
    make_ndpi(str(src), width=1024, height=768)
    tf = read_tiff(str(src))
    ifd = tf.ifds[0]
    d = image_data(ifd, tf.byteorder)
    strip = src.read_bytes()[int(d.src_offsets[0]):][:int(d.src_counts[0])]
    starts = integer_array(ifd.entries[65426], tf.byteorder)
    com = seg(0xFE, NEEDLE.encode())
    dirty = strip[:2] + com + strip[2:] + NEEDLE.encode("utf-16-le") + b"\xff\xd9"
    # the planted file: a strip longer by the COM, its restart offsets moved with it
    outs = []
    for i, x in enumerate(tf.ifds):
        entries = {t: OutEntry(t, e.type, e.count, e.raw) for t, e in x.entries.items() if t not in (273, 279, 324, 325)}
        data = image_data(x, tf.byteorder)
        if i == 0:
            data.replaced[0] = dirty
            vals = (starts + len(com)).tolist()
            entries[65426] = OutEntry(65426, 4, len(vals), struct.pack(f"<{len(vals)}I", *vals))
        outs.append(OutIfd(entries, data, {}))
    dst = tmp_path / "dirty.ndpi"
    write_tiff(str(src), str(dst), outs, tf.kind, tf.byteorder)
    assert not absent(dst.read_bytes())
    res = _deid(str(dst), tmp_path, verify="full")
    assert res.status == "published", res
    data = open(res.output, "rb").read()
    assert absent(data)
    out = read_tiff(res.output)
    od = image_data(out.ifds[0], out.byteorder)
    new_strip = data[int(od.src_offsets[0]):][:int(od.src_counts[0])]
    new_starts = integer_array(out.ifds[0].entries[65426], out.byteorder)
    assert new_strip == structure.clean(strip).data
    shift = structure.clean(strip).entropy_start - structure.clean(strip).source_entropy_start
    assert new_starts.tolist() == (starts + shift).tolist()
    assert all(new_strip[s - 2] == 0xFF and 0xD0 <= new_strip[s - 1] <= 0xD7 for s in new_starts[1:].tolist())
    import openslide
    with openslide.OpenSlide(res.output) as s:
        assert s.read_region((0, 0), 0, (64, 64)).size == (64, 64)
