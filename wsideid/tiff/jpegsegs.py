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

from ..errors import MalformedFile, WsideidError

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
        # only called for data declared JPEG: anything else cannot be vouched for
        raise MalformedFile("a tile or table declared JPEG does not start with a JPEG start marker")
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


HEAD = 1024  # bytes gathered per tile: SOI plus the usual tables fit; longer headers are read whole
SLACK = MAX_HEADER_SEGMENTS * 65538  # the longest header a walk may need


def tiles_with_segments(path: str, offsets: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Indices of tiles whose JPEG header holds a non-benign APPn/COM segment,
    or whose stream does not end at its EOI (bytes after it hide in the range).

    The first bytes of every tile are gathered with one pread each into one
    array (starting two bytes early, which for back-to-back tiles also yields
    the previous tile's last two bytes, its EOI), and the header walk runs
    vectorised over that array. Nothing is memory-mapped, so resident memory
    stays flat however large the slide.
    """
    offsets = np.asarray(offsets, dtype=np.int64)
    counts = np.asarray(counts, dtype=np.int64)
    live = np.nonzero(counts > 0)[0]
    if not len(live):
        return live
    live = live[np.argsort(offsets[live], kind="stable")]
    try:
        return _tiles_with_segments(path, live, offsets[live], counts[live])
    except OSError as exc:
        raise WsideidError(f"cannot read the slide's image data: {exc.strerror or type(exc).__name__}") from None


BATCH = 4096  # tiles gathered at once: about 4 MB of buffer, whatever the slide's size


def _tiles_with_segments(path: str, live: np.ndarray, offs: np.ndarray, cnts: np.ndarray) -> np.ndarray:
    found: list[np.ndarray] = []
    with open(path, "rb") as fh:
        # batches overlap by one tile so the last tile of a batch finds its EOI in the next row
        for a in range(0, len(live), BATCH):
            b = min(len(live), a + BATCH + 1)
            hits = _scan_batch(fh.fileno(), offs[a:b], cnts[a:b])
            hits = hits[:BATCH] if b - a > BATCH else hits
            found.append(live[a:a + len(hits)][hits])
    return np.sort(np.concatenate(found)) if found else np.zeros(0, np.int64)


def _scan_batch(fd: int, offs: np.ndarray, cnts: np.ndarray) -> np.ndarray:
    """Flags for one batch of tiles sorted by offset."""
    k = HEAD + 2
    n = len(offs)
    buf = bytearray(n * k)
    view = memoryview(buf)
    for i, o in enumerate(offs.tolist()):
        lead = 2 if o >= 2 else o
        os.preadv(fd, [view[i * k + 2 - lead:(i + 1) * k]], o - lead)
    rows = np.frombuffer(buf, dtype=np.uint8)
    start = np.arange(n, dtype=np.int64) * k + 2
    avail = np.minimum(cnts, HEAD)
    flagged, undetermined = _walk(rows, start, avail, cnts > HEAD)
    is_jpeg = (avail >= 2) & (rows[start] == 0xFF) & (rows[start + 1] == 0xD8)
    # EOI: from the next gathered row when the tiles are back to back, else read
    ends = offs + cnts
    tail_ok = np.zeros(n, bool)
    nxt = np.zeros(n, bool)
    nxt[:-1] = ends[:-1] == offs[1:]
    idx = np.nonzero(nxt)[0]
    tail_ok[idx] = (rows[(idx + 1) * k] == 0xFF) & (rows[(idx + 1) * k + 1] == 0xD9)
    for i in np.nonzero(~nxt & is_jpeg)[0].tolist():
        tail_ok[i] = os.pread(fd, 2, int(ends[i]) - 2) == b"\xff\xd9"
    for i in np.nonzero(undetermined & ~flagged)[0].tolist():
        head = os.pread(fd, int(min(cnts[i], SLACK)), int(offs[i]))
        flagged[i] = bool(header_segments(head)) or not _walk_ends_at_sos(head)
    # declared JPEG but not starting like one: flagged, so stripping refuses it
    return flagged | ~is_jpeg | (is_jpeg & ~tail_ok)


def _walk_ends_at_sos(head: bytes) -> bool:
    """The header's marker chain reaches SOS within the bytes given."""
    pos, n = 2, len(head)
    for _ in range(MAX_HEADER_SEGMENTS):
        if pos + 4 > n or head[pos] != 0xFF:
            return False
        if head[pos + 1] == 0xDA:
            return True
        pos += 2 + struct.unpack(">H", head[pos + 2:pos + 4])[0]
    return False


def _walk(mm: np.ndarray, start: np.ndarray, avail: np.ndarray, longer: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Vectorised header walk over gathered rows.

    Returns (flagged, undetermined): flagged tiles hold a non-benign APPn/COM
    segment or a header that ends without SOS; undetermined ones ran past the
    gathered bytes while the tile goes on (``longer``) and need a full read.
    """
    n = len(start)
    flagged = np.zeros(n, bool)
    undetermined = np.zeros(n, bool)
    is_jpeg = (avail >= 4) & (mm[start] == 0xFF) & (mm[start + 1] == 0xD8)
    sel = np.nonzero(is_jpeg)[0]
    pos = start[sel] + 2
    e = start[sel] + avail[sel]
    active = np.ones(len(sel), bool)
    f = np.zeros(len(sel), bool)
    u = np.zeros(len(sel), bool)
    for _ in range(MAX_HEADER_SEGMENTS):
        ran_off = active & (pos + 4 > e)
        u |= ran_off & longer[sel]
        f |= ran_off & ~longer[sel]  # the tile itself ends inside its header
        active &= ~ran_off
        if not active.any():
            break
        idx = np.nonzero(active)[0]
        p = pos[idx]
        b0, marker = mm[p], mm[p + 1].astype(np.int64)
        length = (mm[p + 2].astype(np.int64) << 8) | mm[p + 3]
        # Markers that may stand in a header: SOFn/DHT/DAC (C0-CF), SOS, DQT,
        # DNL, DRI, DHP, EXP (DA-DF), APPn (E0-EF), COM. A header we cannot
        # walk (no marker where one must be, a fill byte, EOI or any other
        # marker before SOS, a bad length) is not one we can vouch for: flag
        # it, so strip_segments either cleans it or refuses the slide.
        valid = ((marker >= 0xC0) & (marker <= 0xCF)) | ((marker >= 0xDA) & (marker <= 0xEF)) | (marker == 0xFE)
        stop = (b0 != 0xFF) | ~valid | (marker == 0xDA) | (length < 2)
        broken = (b0 != 0xFF) | ~valid | ((length < 2) & (marker != 0xDA))
        f[idx[broken]] = True
        appcom = ((marker >= 0xE0) & (marker <= 0xEF)) | (marker == 0xFE)
        cand = idx[appcom & ~stop]
        if len(cand):
            f[cand] |= ~_benign_vectorised(mm, pos[cand], e[cand])
        active[idx[stop]] = False
        pos[idx] = p + 2 + length
    f |= active  # still walking after MAX_HEADER_SEGMENTS
    flagged[sel] = f
    undetermined[sel] = u & ~f
    return flagged, undetermined
