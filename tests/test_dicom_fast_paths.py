"""The DICOM path's shortcuts judge exactly what the slow paths judged (issue 14, DICOM round).

Each shortcut is compared with the per-frame path it replaced, on real frames with
planted faults at the start, the middle and the end of an instance.
"""

from __future__ import annotations

import copy

import pydicom
import pytest
from pydicom.encaps import encapsulate, generate_frames

from test_dicom_fixtures import dicom_file, synthetic_series
from wsideid.dicom.pixels import read_span
from wsideid.dicom.source import check_fragments, read_instance
from wsideid.errors import MalformedFile


def _frames(ds) -> list[bytes]:
    return [bytes(f) for f in generate_frames(ds.PixelData, number_of_frames=int(ds.get("NumberOfFrames", 1) or 1))]


def _saved(ds, frames: list[bytes], path):
    ds = copy.deepcopy(ds)
    ds.PixelData = encapsulate(frames)
    ds.NumberOfFrames = len(frames)
    ds.save_as(path, enforce_file_format=True)
    return path


def _refusal(fn) -> str | None:
    try:
        fn()
    except MalformedFile as exc:
        return str(exc)
    return None


@pytest.mark.parametrize("name", ["wsi2dcm_jpeg", "wsi2dcm_jpeg2000"])
@pytest.mark.parametrize("where", [None, 0, 5, -1])
@pytest.mark.parametrize("fault", ["text", "short", "shifted"])
def test_fragment_heads_read_with_item_headers_judge_as_a_read_per_fragment(tmp_path, name, where, fault):
    """``read_span`` hands each fragment's first 4 bytes (read with its item header) to
    ``check_fragments``: the verdict and its message are those of a read per fragment."""
    ds = pydicom.dcmread(dicom_file(name))
    frames = _frames(ds)[:12]
    if where is not None:
        f = frames[where]
        frames[where] = {"text": b"PATIENT NAME" + f, "short": b"\xff\xd8", "shifted": f[1:] + b"\0"}[fault]
    path = _saved(ds, frames, tmp_path / "x.dcm")
    inst_ds = pydicom.dcmread(path, stop_before_pixels=True)
    with open(path, "rb") as fh:
        pydicom.dcmread(fh, stop_before_pixels=True)
        start = fh.tell()
    heads = bytearray()
    span = read_span(str(path), start, False, heads)
    assert span is not None and len(heads) == 4 * len(span.fragments)
    ts = str(inst_ds.file_meta.TransferSyntaxUID)
    fast = _refusal(lambda: check_fragments(str(path), span, ts, len(frames), 3, bytes(heads)))
    slow = _refusal(lambda: check_fragments(str(path), span, ts, len(frames), 3))
    assert fast == slow
    assert (slow is None) == (where is None or (fault == "short" and name == "wsi2dcm_jpeg"))
    assert _refusal(lambda: read_instance(str(path), 3)) == slow


def test_dciodvfy_runs_started_together_judge_each_pair_as_one_after_another(tmp_path):
    """``dciodvfy.Runs`` starts every run at once (largest first, two at a time) beside the other
    checks; each pair's new errors are those ``new_errors`` finds for it, in the pairs' order."""
    from wsideid.dicom import dciodvfy
    if not dciodvfy.available():
        pytest.skip("dciodvfy is not installed")
    small, big = dicom_file("wsi2dcm_jpeg"), dicom_file("mi_multi_frame_jpeg_camelyon_challenge_image")
    broken = []
    for k, src in enumerate((small, big)):
        ds = pydicom.dcmread(src)
        del ds.Modality  # a Type 1 attribute: an error the source does not have
        ds.save_as(tmp_path / f"broken{k}.dcm")
        broken.append(str(tmp_path / f"broken{k}.dcm"))
    pairs = [(str(small), broken[0]), (str(small), str(small)), (str(big), str(big)), (str(big), broken[1])]
    want = [dciodvfy.new_errors(s, o) for s, o in pairs]
    assert want[0] and want[3] and not want[1] and not want[2]
    assert dciodvfy.Runs(pairs).new_errors() == want


def _gapped(tmp_path, names: list[str], tiles: dict[str, bytes], gaps: list[bytes]):
    """Tiles with the given bytes before each (as DICOM frames stand after their item headers)."""
    import numpy as np
    raw, offsets, counts = b"", [], []
    for k, n in enumerate(names):
        raw += gaps[k % len(gaps)]
        offsets.append(len(raw))
        counts.append(len(tiles[n]))
        raw += tiles[n]
    path = tmp_path / "tiles.bin"
    path.write_bytes(raw)
    return path, np.array(offsets, np.int64), np.array(counts, np.int64)


# item headers (FE FF 00 E0 + length: its bytes hold FF), a pad byte, bytes whose FF pairs with
# the next gap byte or with the next tile's FF D8, and none at all
GAPS = [b"\xfe\xff\x00\xe0\x12\xff\x00\x00", b"\0\xfe\xff\x00\xe0\xff\xff\x00\x00", b"\xff", b"ab\xff\x01", b""]


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("batch", [1, 3, 4096])
def test_counted_batches_with_gaps_judge_as_the_walk(tmp_path, monkeypatch, workers, batch):
    """Tiles with bytes between them (item headers, pad bytes, stray 0xFF) are counted with the
    gaps' markers taken off (``jpegsegs._gap_markers``) and flag exactly the tiles the walk flags."""
    import numpy as np
    from test_jpegsegs import _clean_tile, _dirty_variants
    from wsideid.tiff import jpegsegs
    monkeypatch.setattr(jpegsegs, "BATCH", batch)
    monkeypatch.setattr(jpegsegs, "WORKERS", workers)
    tiles = _dirty_variants()
    tiles["restart markers"] = _clean_tile(3, restart=1)
    names = list(tiles) * 4
    names = [names[i] for i in np.random.default_rng(11).permutation(len(names))]
    path, offsets, counts = _gapped(tmp_path, names, tiles, GAPS)
    heads = jpegsegs.header_scan(str(path), offsets, counts, frozenset())
    assert not len(heads.unsure)
    walked = jpegsegs.scan_tiles(str(path), offsets, counts).flagged.tolist()
    counted = jpegsegs.scan_tiles(str(path), offsets, counts, frozenset(), heads.marks).flagged.tolist()
    dirty = [i for i, n in enumerate(names) if n not in ("clean", "other clean", "restart markers")]
    assert walked == counted == dirty


def test_clean_frames_between_item_headers_pass_by_the_count_alone(tmp_path, monkeypatch):
    """A DICOM instance's clean frames, each after its item header, are passed by one count a
    batch when the header pass's marks are given: the walk is not called."""
    from test_jpegsegs import _clean_tile
    from wsideid.tiff import jpegsegs
    t = _clean_tile(4)
    path, offsets, counts = _gapped(tmp_path, ["t"] * 60, {"t": t}, GAPS[:2])
    heads = jpegsegs.header_scan(str(path), offsets, counts, frozenset())

    def no_walk(*a, **k):
        raise AssertionError("walked")
    monkeypatch.setattr(jpegsegs, "_walk", no_walk)
    assert not len(jpegsegs.scan_tiles(str(path), offsets, counts, frozenset(), heads.marks).flagged)


def _span_both_ways(path, monkeypatch):
    """(hinted, walked): ``read_span`` with the Basic Offset Table as a hint, and walking every
    item header; each (fragments, heads) or the refusal."""
    from wsideid.dicom import pixels
    with open(path, "rb") as fh:
        pydicom.dcmread(fh, stop_before_pixels=True)
        start = fh.tell()

    def one():
        heads = bytearray()
        try:
            span = read_span(str(path), start, False, heads)
        except MalformedFile as exc:
            return str(exc)
        return list(span.fragments), span.end, bytes(heads)
    hinted = one()
    with monkeypatch.context() as m:
        m.setattr(pixels, "_items_by_table", lambda *a: None)
        walked = one()
    return hinted, walked


def _lying_table(ds, frames: list[bytes], how: str) -> bytes:
    """Encapsulated pixel data whose Basic Offset Table misleads in ``how``."""
    import struct
    body, offsets = b"", []
    for f in frames:
        f = f + b"\0" * (len(f) % 2)
        offsets.append(len(body))
        body += struct.pack("<HHI", 0xFFFE, 0xE000, len(f)) + f
    if how == "shifted":
        offsets[3] += 2
    elif how == "short":
        offsets = offsets[:-1]
    elif how == "unsorted":
        offsets[2], offsets[3] = offsets[3], offsets[2]
    elif how == "extra item":  # an item the table skips (text between frames)
        text = struct.pack("<HHI", 0xFFFE, 0xE000, 8) + b"JANE DOE"
        k = offsets[4]
        body = body[:k] + text + body[k:]
        offsets = offsets[:4] + [o + len(text) for o in offsets[4:]]
    table = struct.pack("<HHI", 0xFFFE, 0xE000, 4 * len(offsets)) + struct.pack(f"<{len(offsets)}I", *offsets)
    return table + body + struct.pack("<HHI", 0xFFFE, 0xE0DD, 0)


@pytest.mark.parametrize("how", ["true", "shifted", "short", "unsorted", "extra item", "no delimiter", "empty"])
def test_offset_table_hint_gives_what_the_walk_gives(tmp_path, monkeypatch, how):
    """The fragments found through the Basic Offset Table (every item header it points at read
    and chained) are the walk's: the same offsets, lengths, end and first bytes, or the same
    refusal; a table that misleads leaves it to the walk."""
    from pydicom.encaps import encapsulate
    ds = pydicom.dcmread(dicom_file("wsi2dcm_jpeg"))
    frames = _frames(ds)[:10]
    ds = copy.deepcopy(ds)
    ds.NumberOfFrames = len(frames)
    ds.PixelData = encapsulate(frames, has_bot=False) if how == "empty" else _lying_table(ds, frames, how)
    path = tmp_path / "x.dcm"
    ds.save_as(path, enforce_file_format=True)
    if how == "no delimiter":  # the file ends before it
        data = path.read_bytes()
        path.write_bytes(data[:data.find(b"\xfe\xff\xdd\xe0", len(data) - 64)])
    hinted, walked = _span_both_ways(path, monkeypatch)
    assert hinted == walked
    if how == "no delimiter":  # refused either way
        assert isinstance(walked, str)
    if how == "true":  # the hint was taken
        from wsideid.dicom import pixels
        with open(path, "rb") as fh:
            pydicom.dcmread(fh, stop_before_pixels=True)
            pos = fh.tell() + 12
            assert pixels._items_by_table(fh.fileno(), pos, path.stat().st_size, None) is not None
    if how in ("true", "shifted", "short", "unsorted", "empty"):
        assert [len(f) for f in frames] == [n - (n - len(f)) for (_, n), f in zip(walked[0], frames)]


@pytest.mark.parametrize("name", ["wsi2dcm_jpeg", "wsi2dcm_jpeg2000", "mi_multi_frame_jpeg_camelyon_challenge_image",
                                  "highdicom_sm_image", "highdicom_sm_image_jpegls"])
def test_offset_table_hint_on_real_files(monkeypatch, name):
    hinted, walked = _span_both_ways(dicom_file(name), monkeypatch)
    assert hinted == walked


def test_residual_images_read_early_from_the_source_are_those_read_late(tmp_path, monkeypatch):
    """Instances whose output reads as their source (no frame edited, copied whole and compared
    whole) are scanned from the source beside the copy (``DicomDriver.residual_early``): the
    same images, level cover and findings as read from the output after verification; an
    instance with a blanked region is read from the output."""
    from wsideid.drivers.dicom import DicomDriver
    from wsideid.options import DeidOptions, with_secret
    from wsideid.pipeline import deidentify
    from wsideid.registry import open_input
    src = synthetic_series(tmp_path)
    opts = with_secret(DeidOptions(new_id="R-4", ocr=False))
    opened = open_input(str(src))
    plan = opened.driver.plan(opened, opts)
    early = opened.driver.residual_early(opened, plan)
    assert early and {r.role for r in early} >= {"level"}

    def scans(name: str):
        out = tmp_path / name
        out.mkdir()
        res = deidentify(src, out, DeidOptions(new_id="R-4", ocr=False, secret=opts.secret))
        return [(s.role, s.index, s.covered_by, s.error, [f.value for f in s.result.findings] if s.result else None)
                for s in res.scans if s.stage == "output"]
    got = scans("early")
    with monkeypatch.context() as m:
        m.setattr(DicomDriver, "residual_early", lambda self, opened, plan: [])
        want = scans("late")
    assert got == want and {(r.role, r.index) for r in early} <= {(g[0], g[1]) for g in got}

    regions = with_secret(DeidOptions(new_id="R-4", ocr=False, regions=[(0, 0, 64, 64)], secret=opts.secret))
    blanked = opened.driver.plan(opened, regions)
    assert not [r for r in opened.driver.residual_early(opened, blanked) if r.role in ("level", "thumbnail")]


@pytest.mark.parametrize("name", ["wsi2dcm_jpeg", "mi_multi_frame_jpeg_camelyon_challenge_image"])
def test_offset_table_hint_in_small_batches(monkeypatch, name):
    """The hint's item headers are gathered a batch at a time (memory bounded): the same result
    whatever the batch."""
    from wsideid.dicom import pixels
    monkeypatch.setattr(pixels, "HINT_BATCH", 3)
    hinted, walked = _span_both_ways(dicom_file(name), monkeypatch)
    assert hinted == walked


def test_slides_with_long_per_frame_sequences_are_read_late(tmp_path):
    """Building a header walks every per-frame item: a TILED_SPARSE slide's would be built twice,
    so its residual images are read from the output after verification, as before."""
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence
    from wsideid.drivers.dicom import EARLY_MAX_FRAME_ITEMS
    from wsideid.options import DeidOptions, with_secret
    from wsideid.registry import open_input
    opened = open_input(str(synthetic_series(tmp_path)))
    plan = opened.driver.plan(opened, with_secret(DeidOptions(new_id="R-4", ocr=False)))
    assert opened.driver.residual_early(opened, plan)
    opened.container.instances[0].ds.PerFrameFunctionalGroupsSequence = Sequence(
        [Dataset() for _ in range(EARLY_MAX_FRAME_ITEMS + 1)])
    assert opened.driver.residual_early(opened, plan) == []
