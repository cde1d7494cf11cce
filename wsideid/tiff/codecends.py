"""Where a non-JPEG tile or strip ends: nothing may follow its data inside its byte count.

Uncompressed, LZW and Deflate tiles of kept images are copied verbatim
(there is nothing to reduce, unlike the JPEG segments of ``jpegsegs``), and
the residual scan leaves image data out. Bytes a writer put after the data
inside a tile's byte count (past the pixels of an uncompressed tile, after
an LZW EOI code, after the end of a zlib stream) are read by no decoder and
would reach the output unexamined: a name typed there was published (found
by the planted-PHI matrix). Such a tile is refused unless the extra bytes
are all zero (padding carries nothing); so is one whose data has no end
(an LZW stream without its EOI code decodes anyway when the reader knows
the tile's size, and anything could follow it). Checked per tile as it is read;
memory stays flat (one tile at a time).

The data itself may also decode to more than the tile holds: pixels, then a
name, all inside one valid LZW or zlib stream. Readers stop at the tile's
size and show nothing, a lenient decoder shows the name, and no byte search
finds it (it is compressed). So the decoded size is checked too: bytes past
the tile's pixels (or a strip's rows) must be zero, and at most a whole
strip's worth (writers may pad the last strip to RowsPerStrip).
"""

from __future__ import annotations

import zlib

import numpy as np

from ..budget import MAX_SCAN_PIXELS
from ..errors import MalformedFile

NONE, LZW, DEFLATE, ADOBE_DEFLATE, PACKBITS = 1, 5, 32946, 8, 32773
CHECKED = (NONE, LZW, DEFLATE, ADOBE_DEFLATE, PACKBITS)


def _lzw_widths() -> np.ndarray:
    """Bit width of the k-th code after a Clear (TIFF LZW, libtiff's early change)."""
    k = np.arange(4096)
    free = 258 + np.maximum(k - 1, 0)  # table size before the k-th code is read
    return np.where(free < 511, 9, np.where(free < 1023, 10, np.where(free < 2047, 11, 12))).astype(np.int64)


_WIDTHS = _lzw_widths()
_STARTS = np.concatenate([[0], np.cumsum(_WIDTHS)[:-1]])


def lzw_end(raw: bytes) -> int | None:
    """Byte length of the LZW stream up to and including its EOI code, or None when it has none.

    Between two Clear codes each code's width is fixed by its index, so the
    codes of a run are read at once (numpy, from a window of at most 6 kB);
    a run ends at a Clear (a new run starts after it) or at the EOI."""
    pos = 0
    total = len(raw) * 8
    while True:
        first = pos // 8
        bits = np.unpackbits(np.frombuffer(raw[first:first + 6200], np.uint8))
        starts = (pos - first * 8) + _STARTS
        ok = starts + _WIDTHS <= len(bits)
        if not ok.any():
            return None
        starts, widths = starts[ok], _WIDTHS[ok]
        codes = np.zeros(len(starts), np.int64)
        for w in (9, 10, 11, 12):
            sel = widths == w
            if sel.any():
                idx = starts[sel][:, None] + np.arange(w)[None, :]
                codes[sel] = bits[idx].astype(np.int64) @ (1 << (w - 1 - np.arange(w)))
        special = np.nonzero((codes == 256) | (codes == 257))[0]
        if not len(special):
            return None
        j = int(special[0])
        end = first * 8 + int(starts[j] + widths[j])
        if codes[j] == 257:
            return (end + 7) // 8
        if end >= total:
            return None
        pos = end  # a Clear: widths start again at 9


# Bytes an LZW/PackBits tile or strip may decode to here (imagecodecs holds it whole): the
# detectors' decode budget (48 MB), so the check stays inside the 100 MB a process may use.
LZW_DECODE_MAX = 3 * MAX_SCAN_PIXELS


def deflate_end(raw: bytes, pixels: int | None = None, limit: int | None = None) -> int | None:
    """Byte length of the zlib stream, or None when it does not end inside ``raw`` (or does not
    decode). Inflated 1 MB at a time, so memory stays flat whatever the tile. With ``pixels``,
    the decoded bytes past the first ``pixels`` must be zero and at most ``limit`` in all
    (``DecodesPast`` otherwise)."""
    d = zlib.decompressobj()
    rest = raw
    done = 0
    try:
        while True:
            chunk = d.decompress(rest, 1 << 20)
            if pixels is not None:
                _check_decoded(chunk, done, pixels, limit)
            done += len(chunk)
            if d.eof or not d.unconsumed_tail:
                break
            rest = d.unconsumed_tail
    except zlib.error:
        return None
    return len(raw) - len(d.unused_data) if d.eof else None


class DecodesPast(MalformedFile):
    """Tile data that decodes to more than its tile: the rest is read by no reader."""


def _check_decoded(chunk, at: int, pixels: int, limit: int | None) -> None:
    """``chunk`` (any byte buffer) decoded at byte ``at`` of a tile of ``pixels`` bytes (at most
    ``limit`` decoded). Read in place: a copy of a decoded strip doubled the check's memory."""
    end = at + len(chunk)
    if limit is not None and end > limit:
        raise DecodesPast(f"decodes to more than {limit} bytes, its tile's size")
    if end > pixels and np.frombuffer(chunk, np.uint8)[max(0, pixels - at):].any():
        raise DecodesPast(f"decodes to data past its {pixels} bytes of pixels")


def packbits_decoded_check(raw: bytes, pixels: int, limit: int) -> None:
    """PackBits has no end code: readers decode runs until the tile is full and ignore the rest,
    so every byte of the data must decode, to the tile's pixels and zero padding at most."""
    import imagecodecs
    if limit > LZW_DECODE_MAX:
        raise DecodesPast(f"decodes to up to {limit >> 20} MB, more than can be checked here")
    try:
        out = imagecodecs.packbits_decode(raw, out=limit)
    except RuntimeError as exc:  # imagecodecs.ImcdError (not importable by name: loaded lazily)
        if "TOO_SMALL" in str(exc):
            raise DecodesPast(f"decodes to more than {limit} bytes, its tile's size") from None
        raise DecodesPast("does not decode as PackBits") from None
    _check_decoded(out, 0, pixels, limit)


def lzw_decoded_check(raw: bytes, pixels: int, limit: int) -> None:
    """The LZW analogue of ``deflate_end``'s decoded check, ``raw`` being one whole stream."""
    import imagecodecs
    if limit > LZW_DECODE_MAX:
        raise DecodesPast(f"decodes to up to {limit >> 20} MB, more than can be checked here")
    out = imagecodecs.lzw_decode(raw, out=limit + 1)
    _check_decoded(out, 0, pixels, limit)


def check_tails(path: str, where: str, comp: int, offsets: np.ndarray, counts: np.ndarray,
                expected: np.ndarray | None) -> None:
    """Refuse (MalformedFile) a tile/strip with non-zero bytes after its data, or (LZW, Deflate)
    whose data decodes past its pixels. ``expected``: the byte size of each tile/strip's pixels."""
    if comp == NONE and expected is not None:
        over = np.nonzero(counts > expected)[0]
        if not len(over):
            return  # no read needed: every count is at most its pixels' size
    else:
        over = np.arange(len(counts))
    with open(path, "rb") as fh:
        for t in over:
            if comp == NONE:  # only the bytes past the pixels are read
                fh.seek(int(offsets[t]) + int(expected[t]))
                if any(fh.read(int(counts[t] - expected[t]))):
                    raise MalformedFile(f"{where}: uncompressed tile/strip {int(t)} holds "
                                        f"{int(counts[t] - expected[t])} bytes after its pixels (hidden data; refused)")
                continue
            fh.seek(int(offsets[t]))
            raw = fh.read(int(counts[t]))
            pixels = None if expected is None else int(expected[t])
            limit = None if expected is None else int(expected.max())  # a whole strip, the last one padded
            try:
                if comp == PACKBITS:
                    packbits_decoded_check(raw, pixels if pixels is not None else len(raw) * 128,
                                           limit if limit is not None else len(raw) * 128)
                    continue
                if comp == LZW:
                    end = lzw_end(raw)
                    if end is not None and pixels is not None:
                        lzw_decoded_check(raw[:end], pixels, limit)
                else:
                    end = deflate_end(raw, pixels, limit)
            except DecodesPast as exc:
                raise MalformedFile(f"{where}: tile/strip {int(t)} {exc} (hidden data; refused)") from None
            if end is None:  # where the data stops is unknown, so what follows it is too
                raise MalformedFile(f"{where}: tile/strip {int(t)} has no end of its "
                                    f"{'LZW' if comp == LZW else 'Deflate'} data (no end code, or it does not decode): "
                                    "what its byte count holds after the data cannot be checked (refused)")
            if any(raw[end:]):
                raise MalformedFile(f"{where}: tile/strip {int(t)} holds {len(raw) - end} bytes after its image data "
                                    "(hidden data; refused)")
