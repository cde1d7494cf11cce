"""The DICOM path's shortcuts judge exactly what the slow paths judged (issue 14, DICOM round).

Each shortcut is compared with the per-frame path it replaced, on real frames with
planted faults at the start, the middle and the end of an instance.
"""

from __future__ import annotations

import copy

import pydicom
import pytest
from pydicom.encaps import encapsulate, generate_frames

from test_dicom_fixtures import dicom_file
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
