"""The header pass before the copy (``jpegsegs.header_scan``) walks only the rows that do not
begin with the first row's whole header (``_walk_rows``): every row gets what ``_walk`` gives
it, and the shared rows are exactly ``_common_header``'s (issue 14, session 9)."""

from __future__ import annotations

import io
import random

import numpy as np
from PIL import Image

from wsideid.tiff import jpegsegs


def _jpeg(comment: bytes, grey: int = 128, quality: int = 75) -> bytes:
    buf = io.BytesIO()
    extra = {"comment": comment} if comment else {}
    Image.fromarray(np.full((16, 16, 3), grey, np.uint8)).save(buf, "JPEG", quality=quality, **extra)
    return buf.getvalue()


PLAIN = _jpeg(b"plain")
KINDS = [PLAIN, _jpeg(b"plain", grey=30), _jpeg(b"other"), _jpeg(b"y" * 1900), PLAIN[:50], PLAIN[:4],
         b"raw bytes", b"\xff\xd8\xff\xe0\x00\x01", b"\xff\xd8" + bytes(40)]


def test_walk_rows_is_walk_and_common_header(tmp_path):
    rng = random.Random(14)
    for trial in range(80):
        first = KINDS[trial % len(KINDS)]
        tiles = [first] + [rng.choice(KINDS) if rng.random() < 0.4 else first for _ in range(rng.randint(0, 30))]
        path = tmp_path / "rows.bin"
        path.write_bytes(b"".join(tiles))
        offs = np.cumsum([0] + [len(t) for t in tiles[:-1]]).astype(np.int64)
        cnts = np.array([len(t) for t in tiles], np.int64)
        with open(path, "rb") as fh:
            rows, avail = jpegsegs.gather_heads(fh.fileno(), offs, cnts, jpegsegs.HEAD)
        start = np.arange(len(tiles), dtype=np.int64) * jpegsegs.HEAD
        end = start + avail
        ent, bad = jpegsegs._walk(rows, start, end)
        same, head = jpegsegs._common_header(rows, ent - start, ~bad, jpegsegs.HEAD)
        got = jpegsegs._walk_rows(rows, start, end, jpegsegs.HEAD)
        assert np.array_equal(got[0], ent) and np.array_equal(got[1], bad), trial
        assert np.array_equal(got[2], same) and got[3] == head, trial


def test_header_scan_walks_only_the_other_rows(tmp_path, monkeypatch):
    """A level sharing one header: one row walked per batch, not every row."""
    tiles = [_jpeg(b""), _jpeg(b"", grey=30)] * 700 + [_jpeg(b"", quality=50)]
    path = tmp_path / "level.bin"
    path.write_bytes(b"".join(tiles))
    offs = np.cumsum([0] + [len(t) for t in tiles[:-1]]).astype(np.int64)
    cnts = np.array([len(t) for t in tiles], np.int64)
    walked = []
    plain = jpegsegs._walk

    def spy(buf, start, end):
        walked.append(len(start))
        return plain(buf, start, end)
    monkeypatch.setattr(jpegsegs, "_walk", spy)
    heads = jpegsegs.header_scan(str(path), offs, cnts, frozenset())
    assert not len(heads.unsure) and isinstance(heads.marks, int)
    assert sum(walked) <= 2 * ((len(tiles) + jpegsegs.HEAD_BATCH - 1) // jpegsegs.HEAD_BATCH) + 1
