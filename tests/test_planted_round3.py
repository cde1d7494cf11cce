"""Planted PHI, third round (attacker audit): places rounds one and two (tests/planted_matrix.py,
tests/test_planted_more.py) do not reach, judged by the same rule (refused or flagged with nothing
published, or published with no spelling of the needle anywhere in OUTDIR), with one addition:
the tiles of a published LZW/Deflate image are decoded and searched too, since a name compressed
inside a tile's data is not in its bytes.

Places (each found publishing the needle before its fix, unless said otherwise):
- JPEG 2000 packed packet headers (PPM in the main header, PPT in a tile-part header) of an
  Aperio J2K tile holding the needle after their data: published verbatim, verifier clean;
- an LZW or Deflate tile whose data decodes to its pixels *and then the needle*, all in one valid
  stream: readers stop at the tile's size, a lenient decoder shows the name; published;
- vendor text with the name split by a zero-width character or spelled with homoglyphs
  (Cyrillic letters), in an Aperio description key and an NDPI property (guard: removed as it
  stands, and the rule is documented in docs/threat-model.md).
"""

from __future__ import annotations

import contextlib
import io
import struct
import zlib
from pathlib import Path

import imagecodecs
import numpy as np
import pytest

import phi_corpus as pc
import planted_matrix as pm
from test_planted_matrix import input_holds_needle, judge
from wsideid import cli

SECRET = "planted-round3-secret-0123456789abcdef"
NEEDLE = pm.NEEDLE.encode()


def _run(place: pm.Place, src: Path, tmp_path: Path, monkeypatch, *extra: str) -> str:
    """``wsideid deid`` with --detect off (these are byte places: a detector's flag would hide
    what the bytes do), judged as the matrix judges, plus decoded LZW/Deflate tiles."""
    monkeypatch.setenv("WSIDEID_SECRET", SECRET)
    outdir = tmp_path / "out"
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        rc = cli.main(["deid", str(src), "-o", str(outdir), "--detect", "off", *extra])
    outcome = judge(place, src, outdir, rc, err.getvalue())
    for p in outdir.rglob("*"):
        if p.suffix.lower() in (".tif", ".tiff", ".svs", ".ndpi"):
            assert not _decoded_hits(p), f"{place.id}: the needle decodes out of a published tile"
    return outcome


def _decoded_hits(path: Path) -> list[str]:
    """Needle spellings in the decoded data of every LZW/Deflate tile/strip of ``path``."""
    from wsideid.tiff.container import read_tiff
    from wsideid.tiff_family.vendors.tiff_base import image_data
    tf = read_tiff(str(path))
    hits: list[str] = []
    with open(path, "rb") as fh:
        for ifd in tf.all_ifds():
            comp, data = ifd.value(259, 1), image_data(ifd, tf.byteorder)
            if data is None or comp not in (5, 8, 32946):
                continue
            for o, n in zip(data.src_offsets.tolist(), data.src_counts.tolist()):
                fh.seek(o)
                raw = fh.read(n)
                dec = imagecodecs.lzw_decode(raw) if comp == 5 else zlib.decompressobj().decompress(raw)
                hits += pc.find_in_bytes(dec, pm.SEARCH)
    return hits


# ------------------------------------------------------------------ JPEG 2000 packed packet headers
def _j2k_base(folder: Path) -> Path:
    from wsideid.synth_vendors import make_j2k_svs
    p = folder / "base.svs"
    make_j2k_svs(str(p), 512, 512)
    return p


def _with_packed_headers(cs: bytes, kind: str) -> bytes:
    """The needle as the packed header data of a PPM (main header; decoders still decode the
    tile, so the copy verified) or after a PPT's (first tile-part header)."""
    sot = cs.find(b"\xff\x90")
    if kind == "ppm":
        seg = b"\xff\x60" + struct.pack(">H", 3 + 4 + len(NEEDLE)) + b"\x00" + struct.pack(">I", len(NEEDLE)) + NEEDLE
        return cs[:sot] + seg + cs[sot:]
    seg = b"\xff\x61" + struct.pack(">H", 3 + len(NEEDLE)) + b"\x00" + NEEDLE
    psot = struct.unpack(">I", cs[sot + 6:sot + 10])[0]
    head = cs[sot:sot + 6] + struct.pack(">I", psot + len(seg) if psot else 0) + cs[sot + 10:sot + 12]
    return cs[:sot] + head + seg + cs[sot + 12:]


@pytest.mark.parametrize("kind", ["ppm", "ppt"])
def test_j2k_packed_packet_headers(kind, tmp_path, monkeypatch):
    def build(folder: Path) -> Path:
        dst = folder / "slide.svs"
        pc.rewrite_tiff(_j2k_base(folder), dst, {}, None,
                        lambda i, t, raw: _with_packed_headers(raw, kind) if raw[:2] == b"\xff\x4f" else None)
        return dst
    place = pm.Place(f"j2k-{kind}", build)
    src = place.build(tmp_path)
    assert input_holds_needle(src)
    assert _run(place, src, tmp_path, monkeypatch) == "refused"


@pytest.mark.parametrize("kind", ["ppm", "ppt"])
def test_j2k_rule_refuses_packed_packet_headers(kind, tmp_path):
    """The rule shared with DICOM J2K frames (dicom/frames.py) and the verifier (``is_clean``)."""
    from wsideid.jpeg import j2k
    from wsideid.tiff.container import read_tiff
    from wsideid.tiff_family.vendors.tiff_base import image_data
    src = _j2k_base(tmp_path)
    tf = read_tiff(str(src))
    d = image_data(tf.ifds[0], tf.byteorder)
    raw = src.read_bytes()[int(d.src_offsets[0]):int(d.src_offsets[0] + d.src_counts[0])]
    assert j2k.is_clean(j2k.clean(raw))
    with pytest.raises(j2k.UnsafeJ2k, match="packed packet headers"):
        j2k.clean(_with_packed_headers(raw, kind))
    assert not j2k.is_clean(_with_packed_headers(raw, kind))


# ------------------------------------------------------------------ LZW / Deflate data decoding past the tile
def _decoding_past(comp: str):
    def edit(i: int, t: int, raw: bytes) -> bytes:
        if comp == "zlib":
            return zlib.compress(zlib.decompress(raw) + b"\0" + NEEDLE)
        return imagecodecs.lzw_encode(imagecodecs.lzw_decode(raw) + b"\0" + NEEDLE)
    return edit


def _codec_place(comp: str) -> pm.Place:
    def build(folder: Path) -> Path:
        dst = folder / "slide.tiff"
        pc.rewrite_tiff(pm.codec_base(comp)(folder), dst, {}, None, _decoding_past(comp))
        return dst
    return pm.Place(f"tiff-{comp}-data-decoding-past-the-tile", build)


@pytest.mark.parametrize("comp", ["zlib", "lzw"])
def test_tile_data_decoding_past_its_pixels(comp, tmp_path, monkeypatch):
    place = _codec_place(comp)
    src = place.build(tmp_path)
    assert _decoded_hits(src), "the needle does not decode out of the input (builder bug)"
    assert _run(place, src, tmp_path, monkeypatch) == "refused"


def _zstd_skippable_frame(i: int, t: int, raw: bytes) -> bytes:
    """A Zstandard skippable frame (decoders skip it by design) holding the needle, before the data."""
    return struct.pack("<II", 0x184D2A50, len(NEEDLE)) + NEEDLE + raw


def _webp_exif_chunk(i: int, t: int, raw: bytes) -> bytes:
    """An EXIF chunk holding the needle at the end of the tile's WebP (RIFF) file."""
    body = raw[12:] + b"EXIF" + struct.pack("<I", len(NEEDLE)) + NEEDLE + (b"\0" if len(NEEDLE) % 2 else b"")
    return b"RIFF" + struct.pack("<I", 4 + len(body)) + b"WEBP" + body


def _packbits_past(i: int, t: int, raw: bytes) -> bytes:
    return imagecodecs.packbits_encode(imagecodecs.packbits_decode(raw) + b"\0" + NEEDLE)


@pytest.mark.parametrize("comp,edit", [("zstd", _zstd_skippable_frame), ("webp", _webp_exif_chunk),
                                       ("packbits", _packbits_past)], ids=["zstd", "webp", "packbits"])
def test_tiles_of_codecs_without_a_stream_rule(comp, edit, tmp_path, monkeypatch):
    """Kept images in Zstd, WebP (and LZMA, LERC, CCITT, JPEG XL) were copied unexamined: a Zstd
    skippable frame holding the name was published. They are refused now; PackBits gets the
    decoded-size rule (its data has no end code: every byte must decode into the tile)."""
    def build(folder: Path) -> Path:
        dst = folder / "slide.tiff"
        pc.rewrite_tiff(pm.codec_base(comp)(folder), dst, {}, None, edit)
        return dst
    place = pm.Place(f"tiff-{comp}-hidden", build)
    src = place.build(tmp_path)
    assert input_holds_needle(src)
    assert _run(place, src, tmp_path, monkeypatch) == "refused"


def test_a_clean_packbits_slide_publishes(tmp_path, monkeypatch):
    src = pm.codec_base("packbits")(tmp_path / "x")
    assert _run(pm.Place("packbits-clean", lambda f: src), src, tmp_path, monkeypatch) == "published"


def test_zero_padding_past_the_last_strip_is_not_refused(tmp_path):
    """A writer may pad the last strip to RowsPerStrip with zeros: that is not hidden data."""
    from wsideid.tiff.codecends import DEFLATE, LZW, check_tails
    for comp, enc in ((DEFLATE, zlib.compress), (LZW, imagecodecs.lzw_encode)):
        strips = [enc(b"\x7f" * 3000), enc(b"\x7f" * 1000 + bytes(2000))]  # last strip: 1000 real bytes
        path = tmp_path / f"s{comp}.bin"
        path.write_bytes(b"".join(strips))
        offs = np.array([0, len(strips[0])])
        check_tails(str(path), "image 0", comp, offs, np.array([len(s) for s in strips]), np.array([3000, 1000]))


def test_verifier_judges_decoded_size_on_its_own(tmp_path, monkeypatch):
    """With the writer-side rule switched off, the verifier's own pass over the output refuses."""
    import types

    from wsideid.tiff import codecends
    from wsideid.tiff_family.vendors import tiff_base
    blind = types.SimpleNamespace(CHECKED=codecends.CHECKED, NONE=codecends.NONE, check_tails=lambda *a, **k: None)
    monkeypatch.setattr(tiff_base, "codecends", blind)
    place = _codec_place("zlib")
    src = place.build(tmp_path)
    monkeypatch.setenv("WSIDEID_SECRET", SECRET)
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        rc = cli.main(["deid", str(src), "-o", str(tmp_path / "out"), "--detect", "off"])
    assert rc == 3 and "compressed-streams" in err.getvalue() and "decodes" in err.getvalue(), err.getvalue()


# ------------------------------------------------------------------ names in disguise
# The needle as a person or a scanner might type it so a plain search misses it: split by a
# zero-width or other format character, spelled with look-alike letters of another script,
# digits in full width or another script. The rule (docs/threat-model.md): a kept value must
# parse as its type or match an ASCII-only pattern with no control or format character
# (valuepolicy: re.ASCII, category C refused), so none of these can stand in a kept field;
# removed fields are removed whatever they spell. The verifier's needle search does not fold
# look-alikes: no kept byte can hold them, and it is the policy, not the search, that keeps
# them out.
DISGUISED = ["Zephy\u200brina Quix\u200dote",      # zero-width space / joiner
             "Zeph\u00adyrina Quixote",             # soft hyphen
             "Ζephyrinа Quixоte",                   # Greek Zeta, Cyrillic a and o
             "ＺＸ２４-７７１３９",                  # full-width accession
             "ZX٢٤-٧٧١٣٩",                          # Arabic-Indic digits
             "1987\u20113\u201117"]                 # non-breaking hyphens in the date
DISGUISED_SEARCH = [s.split()[0] for s in DISGUISED] + ["Quix\u200dote", "Quixоte"]


def _disguised_svs(folder: Path) -> Path:
    import tomllib
    prof = tomllib.loads((Path(__file__).resolve().parents[1] / "formats" / "aperio.toml").read_text())
    kept = [k for k, v in prof["description"].items() if isinstance(v, dict) and not k.startswith("@") and "*" not in k]
    keys = {k: DISGUISED[i % len(DISGUISED)] for i, k in enumerate(kept)}
    keys.update({"Title": DISGUISED[0], DISGUISED[2]: "1"})
    dst = folder / "slide.svs"
    pc.rewrite_tiff(pm.base("svs", folder), dst, {0: {270: pm.ascii_entry(270, pc.aperio_description(pc.W, pc.H, None, keys)),
                                                      305: pm.ascii_entry(305, "Aperio Image Library v１２.０"),
                                                      272: pm.ascii_entry(272, "GТ450")}})  # Cyrillic Te
    return dst


def _disguised_ndpi(folder: Path) -> Path:
    import tomllib
    prof = tomllib.loads((Path(__file__).resolve().parents[1] / "formats" / "hamamatsu.toml").read_text())
    kept = [k for k, v in prof["properties"].items() if isinstance(v, dict) and "*" not in k and "#" not in k
            and not k.startswith("@") and f"{k}=" not in pc.NDPI_PROPS]  # no key twice
    props = pc.NDPI_PROPS + "".join(f"{k}={DISGUISED[i % len(DISGUISED)]}\r\n" for i, k in enumerate(kept))
    src = pm.base("ndpi", folder)
    dst = folder / "slide.ndpi"
    pc.rewrite_tiff(src, dst, {i: {65449: pm.ascii_entry(65449, props), 272: pm.ascii_entry(272, "C９６００-１２")}
                               for i in range(pm.n_ifds(src))})
    return dst


@pytest.mark.parametrize("build", [_disguised_svs, _disguised_ndpi], ids=["svs-description", "ndpi-properties"])
def test_names_in_disguise_are_not_kept(build, tmp_path, monkeypatch):
    """Guard (no leak found): the disguised spellings reach no published byte."""
    src = build(tmp_path)
    assert pc.find_in_bytes(src.read_bytes(), DISGUISED_SEARCH)
    monkeypatch.setenv("WSIDEID_SECRET", SECRET)
    outdir = tmp_path / "out"
    with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
        rc = cli.main(["deid", str(src), "-o", str(outdir), "--detect", "off"])
    assert rc == 0  # published: the fields were removed, not the slide refused
    hits = pc.find_in_tree(outdir, DISGUISED_SEARCH + ["Ζephyrin", "ＺＸ２４", "٧٧١٣٩", "GТ450", "９６００", "１２.０"])
    assert not hits, hits


# ------------------------------------------------------------------ DICOM frames no stream rule covers
def _rle_instance(path: Path, tail: bytes) -> Path:
    """A one-frame RLE Lossless instance whose frame carries ``tail`` after its segment."""
    import pydicom
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.encaps import encapsulate
    from pydicom.uid import RLELossless, VLWholeSlideMicroscopyImageStorage, generate_uid
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = RLELossless
    ds.file_meta.MediaStorageSOPClassUID = VLWholeSlideMicroscopyImageStorage
    ds.SOPClassUID = VLWholeSlideMicroscopyImageStorage
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.Rows = ds.Columns = 16
    ds.SamplesPerPixel, ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 1, 8, 8, 7, 0
    ds.PhotometricInterpretation, ds.NumberOfFrames = "MONOCHROME2", 1
    seg = imagecodecs.packbits_encode(bytes(range(256)))
    frame = struct.pack("<16I", 1, 64, *([0] * 14)) + seg + tail
    ds.PixelData = encapsulate([frame + (b"\0" if len(frame) % 2 else b"")])
    ds.save_as(path, enforce_file_format=True)
    pydicom.dcmread(path)  # it parses
    return path


def test_dicom_frames_in_a_syntax_without_a_stream_rule_are_refused(tmp_path):
    """RLE (and JPEG XL, deflated frames) fragments of a kept instance were copied unexamined: an
    RLE frame has room for text in its header, between and after its segments. Refused now, by the
    writer's rule (``frames.rule_edits``, called for every kept instance) and by the verifier."""
    from wsideid.dicom.frames import check_frames, rule_edits
    from wsideid.dicom.source import read_instance
    from wsideid.errors import MalformedFile
    inst = read_instance(str(_rle_instance(tmp_path / "i.dcm", NEEDLE)), 0)
    with pytest.raises(MalformedFile, match="cannot be checked for hidden data"):
        rule_edits(inst)
    ok, detail = check_frames([(inst, inst.path, None)], [inst], lambda i: {}, False)
    assert not ok and "cannot be checked" in detail
