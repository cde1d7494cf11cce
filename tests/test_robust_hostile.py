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
from fuzz.harness import load_seed, time_limit
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
    refuse(tmp_path, classic([body], bytes(256)), "tag 256 must hold one number")
