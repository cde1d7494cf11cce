"""APPn and COM segments inside JPEG tiles, strips and JPEGTables.

These segments can carry free text (EXIF, XMP, ICC descriptions, comments)
that no profile can vouch for, so they are stripped; a JFIF APP0 without
thumbnail and an Adobe APP14 are fixed binary structures (the latter tells
decoders whether components are RGB) and are kept. Stripping header
segments never touches entropy-coded data, so pixels are unchanged.

The tile check is vectorised over every tile of a level with numpy on a
memory map, because a 2 GB slide has hundreds of thousands of tiles and a
Python loop per tile would dominate the run time.
"""

from __future__ import annotations

import os
import struct

import numpy as np

from ..errors import MalformedFile

MAX_HEADER_SEGMENTS = 64
# Comments that scanners write into every strip: fixed vendor strings, no
# free text. Anything else in a COM segment is stripped.
BENIGN_COMMENTS = (b"Hamamatsu NanoZoomer Digital Pathology\0",)


def _benign(marker: int, body: bytes) -> bool:
    if marker == 0xE0:  # JFIF without thumbnail: 14 bytes of fixed fields
        return len(body) == 14 and body[:5] == b"JFIF\0" and body[12] == 0 and body[13] == 0
    if marker == 0xEE:  # Adobe: version, flags0, flags1, transform
        return len(body) == 12 and body[:5] == b"Adobe"
    if marker == 0xFE:
        return body in BENIGN_COMMENTS
    return False


def strip_segments(raw: bytes) -> bytes:
    """The same JPEG stream (or tables blob) without APPn/COM segments."""
    if raw[:2] != b"\xff\xd8":
        return raw  # not JPEG data: nothing to strip (caller checks compression)
    out = bytearray(raw[:2])
    pos = 2
    n = len(raw)
    for _ in range(MAX_HEADER_SEGMENTS * 4):
        if pos + 2 > n:
            return bytes(out)
        if raw[pos] != 0xFF:
            raise MalformedFile("JPEG header is corrupt (expected a marker)")
        marker = raw[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0xD9,):  # EOI (tables-only blob)
            out += raw[pos:pos + 2]
            return bytes(out)
        if pos + 4 > n:
            raise MalformedFile("JPEG header is truncated")
        length = struct.unpack(">H", raw[pos + 2:pos + 4])[0]
        if length < 2 or pos + 2 + length > n:
            raise MalformedFile("JPEG segment length runs past the data")
        seg = raw[pos:pos + 2 + length]
        if marker == 0xDA:  # SOS: entropy data up to the first EOI (no FF D9 can occur inside it)
            eoi = raw.find(b"\xff\xd9", pos + 2 + length)
            if eoi < 0:
                raise MalformedFile("JPEG stream without an end marker")
            out += raw[pos:eoi + 2]  # anything after EOI is not image data: dropped
            return bytes(out)
        if (0xE0 <= marker <= 0xEF or marker == 0xFE) and not _benign(marker, seg[4:]):
            pos += 2 + length
            continue
        out += seg
        pos += 2 + length
    raise MalformedFile("JPEG header has too many segments")


def header_segments(raw: bytes) -> list[int]:
    """Markers of the non-benign APPn/COM segments in a JPEG header."""
    found = []
    pos, n = 2, len(raw)
    if raw[:2] != b"\xff\xd8":
        return found
    for _ in range(MAX_HEADER_SEGMENTS):
        if pos + 4 > n or raw[pos] != 0xFF:
            break
        marker = raw[pos + 1]
        if marker in (0xDA, 0xD9):
            break
        length = struct.unpack(">H", raw[pos + 2:pos + 4])[0]
        if (0xE0 <= marker <= 0xEF or marker == 0xFE) and not _benign(marker, raw[pos + 4:pos + 2 + length]):
            found.append(marker)
        pos += 2 + max(length, 2)
    return found


def _benign_vectorised(mm: np.ndarray, p: np.ndarray, end: np.ndarray) -> np.ndarray:
    """Vectorised twin of _benign for segments starting at ``p``."""
    marker = mm[p + 1]
    length = (mm[p + 2].astype(np.int64) << 8) | mm[p + 3]
    ok = np.zeros(len(p), bool)
    room = p + 18 <= end
    q = np.where(room, p, 0)

    def sig(text: bytes) -> np.ndarray:
        m = np.ones(len(p), bool)
        for i, ch in enumerate(text):
            m &= mm[q + 4 + i] == ch
        return m
    jfif = (marker == 0xE0) & (length == 16) & room & sig(b"JFIF\0") & (mm[q + 16] == 0) & (mm[q + 17] == 0)
    adobe = (marker == 0xEE) & (length == 14) & room & sig(b"Adobe")
    ok |= jfif | adobe
    for text in BENIGN_COMMENTS:
        fits = p + 4 + len(text) <= end
        r = np.where(fits, p, 0)
        m = (marker == 0xFE) & (length == len(text) + 2) & fits
        for i, ch in enumerate(text):
            m &= mm[r + 4 + i] == ch
        ok |= m
    return ok


WINDOW = 32 << 20
SLACK = MAX_HEADER_SEGMENTS * 65538  # the longest header walk past a window's last tile start


def tiles_with_segments(path: str, offsets: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Indices of tiles whose JPEG header holds a non-benign APPn/COM segment.

    The file is mapped one window at a time: touching one header per tile
    through a whole-file map would make the kernel map the pages around
    every tile (fault-around), so resident memory would grow with the slide.
    """
    import mmap
    offsets = np.asarray(offsets, dtype=np.int64)
    counts = np.asarray(counts, dtype=np.int64)
    live = np.nonzero(counts >= 4)[0]
    if not len(live):
        return live
    live = live[np.argsort(offsets[live], kind="stable")]
    flagged: list[np.ndarray] = []
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        i = 0
        while i < len(live):
            base = int(offsets[live[i]]) // mmap.ALLOCATIONGRANULARITY * mmap.ALLOCATIONGRANULARITY
            j = int(np.searchsorted(offsets[live], base + WINDOW, side="left"))
            j = max(j, i + 1)
            length = min(size, int(offsets[live[j - 1]]) + SLACK) - base
            if length <= 0:
                i = j
                continue
            m = mmap.mmap(fh.fileno(), length, access=mmap.ACCESS_READ, offset=base)
            try:
                view = np.frombuffer(m, dtype=np.uint8)
                idx = live[i:j]
                rel = offsets[idx] - base
                hits = _scan_window(view, rel, np.minimum(counts[idx], length - rel))
                # A JPEG stream ends with EOI; bytes after it hide in the tile's range.
                ends = rel + counts[idx]
                inside = ends <= length
                tail_ok = np.ones(len(idx), bool)
                e_in = ends[inside]
                tail_ok[inside] = (view[e_in - 2] == 0xFF) & (view[e_in - 1] == 0xD9)
                for n in np.nonzero(~inside)[0].tolist():  # a strip longer than the window
                    tail_ok[n] = os.pread(fh.fileno(), 2, int(offsets[idx[n]] + counts[idx[n]] - 2)) == b"\xff\xd9"
                is_jpeg = (view[rel] == 0xFF) & (view[rel + 1] == 0xD8)
                flagged.append(idx[hits | (is_jpeg & ~tail_ok)])
                del view
            finally:
                m.close()
            i = j
    return np.sort(np.concatenate(flagged)) if flagged else np.zeros(0, np.int64)


def _scan_window(mm: np.ndarray, start: np.ndarray, count: np.ndarray) -> np.ndarray:
    """Boolean mask over tiles (positions relative to ``mm``) with flagged segments."""
    n = len(start)
    end = start + count
    result = np.zeros(n, bool)
    ok = (count >= 4) & (start >= 0)
    sel = np.nonzero(ok)[0]
    s = start[sel]
    is_jpeg = (mm[s] == 0xFF) & (mm[s + 1] == 0xD8)
    sel = sel[is_jpeg]
    pos = start[sel] + 2
    e = end[sel]
    active = np.ones(len(sel), bool)
    flagged = np.zeros(len(sel), bool)
    for _ in range(MAX_HEADER_SEGMENTS):
        ran_off = active & (pos + 4 > e)
        flagged |= ran_off  # header without SOS inside the tile: not a stream we can vouch for
        active &= ~ran_off
        if not active.any():
            break
        idx = np.nonzero(active)[0]
        p = pos[idx]
        b0, marker = mm[p], mm[p + 1].astype(np.int64)
        length = (mm[p + 2].astype(np.int64) << 8) | mm[p + 3]
        stop = (b0 != 0xFF) | (marker == 0xDA) | (marker == 0xD9) | (length < 2)
        # A header we cannot walk (no marker where one must be, a bad length,
        # EOI before SOS with bytes after it) is not one we can vouch for:
        # flag it, so strip_segments either cleans it or refuses the slide.
        broken = (b0 != 0xFF) | ((length < 2) & (marker != 0xDA) & (marker != 0xD9)) | (marker == 0xD9)
        flagged[idx[broken]] = True
        appcom = ((marker >= 0xE0) & (marker <= 0xEF)) | (marker == 0xFE)
        cand = idx[appcom & ~stop]
        if len(cand):
            flagged[cand] |= ~_benign_vectorised(mm, pos[cand], e[cand])
        active[idx[stop]] = False
        pos[idx] = p + 2 + length
    flagged |= active  # still walking after MAX_HEADER_SEGMENTS: hostile
    result[sel] = flagged
    return result
