"""The verifier's header pass (``streamheads.distinct_headers``) judges the tiles sharing a
batch's first header as rows of a matrix (``_seen_rows``) instead of one by one: the same
headers handed over, in the same order, the memo left the same, as the skip rule applied
tile by tile to every tile (``hand_over``, the loop the rows replaced), on tile sequences
built to reach every branch of the skip rule: repeats, tiles that are all header and touch the next, headers longer than the
gathered bytes, raw (non-JPEG) tiles, tiles out of file order, a memo that is full or seeded.
"""

from __future__ import annotations

import io
import random

import numpy as np
import pytest
from PIL import Image

from wsideid import streamheads
from wsideid.streamheads import HeaderMemo, distinct_headers, stream_headers


def _jpeg(comment: bytes, size: int = 16, grey: int = 128) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((size, size, 3), grey, np.uint8)).save(buf, "JPEG", comment=comment)
    return buf.getvalue()


def _reference(path, offsets, counts, memo):
    """The skip rule applied tile by tile to every tile, as before issue 14's session 9."""
    return streamheads.hand_over(streamheads._headers(path, offsets, counts), memo)


def _state(memo):
    return memo.total, memo.prev_end, memo.kept, sorted(memo.seen)


KINDS = {
    "plain": _jpeg(b"plain"),
    "other": _jpeg(b"another encoder"),
    "long": _jpeg(b"x" * 1500),  # header longer than the HEAD bytes gathered: a longer read
    "all-header": b"\xff\xd8\xff\xfe\x00\x08Kowa",  # no SOS: the whole tile is its header
    "raw": b"raw pixel bytes KOWALSKI",
    "grey": _jpeg(b"plain", grey=40),  # the same header as "plain", other entropy-coded data
}


def _case(tmp_path, names, shuffle=None, gap=0):
    tiles = [KINDS[n] for n in names]
    path = tmp_path / "tiles.bin"
    blob, offs = bytearray(), []
    for t in tiles:
        offs.append(len(blob))
        blob += t + bytes(gap)
    path.write_bytes(bytes(blob))
    offs_a, cnts = np.array(offs, np.int64), np.array([len(t) for t in tiles], np.int64)
    if shuffle is not None:
        order = list(range(len(tiles)))
        shuffle.shuffle(order)
        offs_a, cnts = offs_a[order], cnts[order]
    return str(path), offs_a, cnts


def _both(path, offs, cnts, memo_args=(), seed=None, prev_end=-1):
    out = []
    for fn in (_reference, distinct_headers):
        memo = HeaderMemo(*memo_args)
        if seed is not None:
            memo.seen.add(seed)
            memo.kept += len(seed)
        memo.prev_end = prev_end
        got = list(fn(path, offs, cnts, memo))
        out.append((got, _state(memo)))
    return out


@pytest.mark.parametrize("batch", [1, 3, 1024])
def test_same_headers_and_memo_as_the_loop(tmp_path, monkeypatch, batch):
    monkeypatch.setattr(streamheads, "BATCH", batch)
    rng = random.Random(14)
    names = list(KINDS)
    for trial in range(40):
        seq = [rng.choice(names) if rng.random() < 0.3 else "plain" for _ in range(rng.randint(1, 40))]
        path, offs, cnts = _case(tmp_path, seq, rng if trial % 3 == 0 else None, gap=rng.choice([0, 0, 5]))
        head = next(iter(stream_headers(path, offs, cnts)), (0, b""))[1]
        for memo_args, seed in (((), None), ((8,), None), ((), head), ((len(head) + 1,), None)):
            ref, new = _both(path, offs, cnts, memo_args, seed)
            assert new == ref, (seq, memo_args, seed is not None)


def test_a_tile_touching_the_last_segment_is_handed_over(tmp_path, monkeypatch):
    """A repeat of a known header starting where the previous segment ended (the tile before is
    all header) is handed over: the scanner joins the two, and a needle may span them."""
    path, offs, cnts = _case(tmp_path, ["plain", "plain", "all-header", "plain", "plain", "plain"])
    ref, new = _both(path, offs, cnts)
    assert new == ref
    assert [o for o, _ in new[0]] == [offs[0], offs[2], offs[3]]
    # the memo's prev_end before the batch counts too
    ref, new = _both(path, offs[1:], cnts[1:], seed=ref[0][0][1], prev_end=int(offs[1]))
    assert new == ref and new[0][0][0] == int(offs[1])


def test_rows_judge_a_whole_level_at_once(tmp_path):
    """A level of tiles sharing one header: one header handed over, and the per-tile loop is
    not run for the repeats (``_tiles`` is asked for the first tile only)."""
    path, offs, cnts = _case(tmp_path, ["plain", "grey"] * 600)
    asked = []
    plain = streamheads._tiles

    def spy(fd, o, c, rows, lengths, again, pick=None):
        asked.append(len(pick) if pick is not None else len(o))
        return plain(fd, o, c, rows, lengths, again, pick)
    streamheads._tiles, saved = spy, streamheads._tiles
    try:
        memo = HeaderMemo()
        got = list(distinct_headers(path, offs, cnts, memo))
    finally:
        streamheads._tiles = saved
    assert [o for o, _ in got] == [0]
    assert memo.total == sum(len(h) for _, h in stream_headers(path, offs, cnts))
    assert sum(asked) == 1


J2K = b"\xff\x4f\xff\x51\x00\x06abcd\xff\x90\x00\x0a" + bytes(8) + b"\xff\x93" + b"j2k bitstream"


def test_rows_sharing_the_first_header_walk_as_walked(tmp_path):
    """``_walk_rows`` gives every row the lengths and longer-read flags ``_walk`` gives it,
    whichever row comes first: a JPEG or JPEG 2000 header, a broken or raw one, a row cut short
    inside the shared header, a header longer than the gathered bytes."""
    from wsideid.tiff.jpegsegs import gather_heads
    rng = random.Random(9)
    kinds = list(KINDS.values()) + [J2K, J2K[:12], KINDS["plain"][:40], b"\xff\xd8\xff\xc0\x00\x01xx"]
    for trial in range(60):
        tiles = [rng.choice(kinds) if rng.random() < 0.4 else kinds[trial % len(kinds)] for _ in range(rng.randint(1, 30))]
        path = tmp_path / "rows.bin"
        path.write_bytes(b"".join(tiles))
        offs = np.cumsum([0] + [len(t) for t in tiles[:-1]]).astype(np.int64)
        cnts = np.array([len(t) for t in tiles], np.int64)
        with open(path, "rb") as fh:
            rows, avail = gather_heads(fh.fileno(), offs, cnts, streamheads.HEAD)
        start = np.arange(len(tiles), dtype=np.int64) * streamheads.HEAD
        want = streamheads._walk(rows, start, avail, cnts > streamheads.HEAD)
        got = streamheads._walk_rows(rows, avail, cnts > streamheads.HEAD)
        assert np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1]), trial
