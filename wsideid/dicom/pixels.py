"""Where the pixel data of an instance lies, without decoding it.

The pixel data element is located and walked at the byte level (item
headers only), so it can be copied into the output unchanged, in chunks,
and compared frame by frame. Nothing here decodes an image.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field

from ..errors import MalformedFile

PIXEL_TAGS = {(0x7FE0, 0x0010), (0x7FE0, 0x0008), (0x7FE0, 0x0009)}
ITEM, SEQ_END = (0xFFFE, 0xE000), (0xFFFE, 0xE0DD)
COPY_CHUNK = 4 << 20


@dataclass
class PixelSpan:
    """The pixel data element at [start, end) of a file."""

    start: int
    end: int
    encapsulated: bool
    fragments: list[tuple[int, int]] = field(default_factory=list)  # (offset, length) of each value piece

    @property
    def size(self) -> int:
        return self.end - self.start


# Pixel data is OB or OW (float/double pixel data OF/OD): PS3.5 Table 7.1-1 and 8.2.
PIXEL_VRS = {b"OB", b"OW", b"OF", b"OD"}


def read_span(path: str, start: int, implicit: bool) -> PixelSpan | None:
    """Parse the element starting at ``start`` (as left by ``stop_before_pixels``)."""
    size = os.path.getsize(path)
    if start >= size:
        return None
    with open(path, "rb") as fh:
        fh.seek(start)
        head = fh.read(12)
        if len(head) < 8:
            raise MalformedFile("truncated DICOM file (pixel data header cut off)")
        group, elem = struct.unpack("<HH", head[:4])
        if (group, elem) not in PIXEL_TAGS:
            raise MalformedFile("unexpected element where the pixel data should start")
        if implicit:
            (length,), pos = struct.unpack("<I", head[4:8]), start + 8
            if length == 0xFFFFFFFF:
                # encapsulated pixel data needs an explicit VR transfer syntax (PS3.5 A.4)
                raise MalformedFile("encapsulated pixel data under an implicit VR transfer syntax")
        else:
            if len(head) < 12:
                raise MalformedFile("truncated DICOM file (pixel data header cut off)")
            if head[4:6] not in PIXEL_VRS:
                # a sequence (or text) under the pixel data tag would be copied as "pixels",
                # unparsed and unscanned (found by the DICOM fuzzer: a UID published this way)
                raise MalformedFile("the pixel data element has a VR pixel data cannot have")
            (length,), pos = struct.unpack("<I", head[8:12]), start + 12
        if length != 0xFFFFFFFF:
            if pos + length > size:
                raise MalformedFile("truncated DICOM file (pixel data shorter than its length)")
            return PixelSpan(start, pos + length, False, [(pos, length)])
        frags: list[tuple[int, int]] = []
        first = True
        while True:
            fh.seek(pos)
            item = fh.read(8)
            if len(item) < 8:
                raise MalformedFile("truncated DICOM file (encapsulated pixel data not terminated)")
            g, e, n = struct.unpack("<HHI", item)
            pos += 8
            if (g, e) == SEQ_END:
                return PixelSpan(start, pos, True, frags)
            if (g, e) != ITEM or n == 0xFFFFFFFF or pos + n > size:
                raise MalformedFile("corrupt encapsulated pixel data (bad item header or length)")
            if not first:
                frags.append((pos, n))
            first = False
            pos += n


def copy_range(src: str, start: int, end: int, dst_fh) -> None:
    """Append src[start:end] to an open file, in bounded chunks."""
    with open(src, "rb") as fh:
        fh.seek(start)
        left = end - start
        while left > 0:
            chunk = fh.read(min(COPY_CHUNK, left))
            if not chunk:
                raise MalformedFile("the input shrank while it was being copied")
            dst_fh.write(chunk)
            left -= len(chunk)


def same_fragments(a_path: str, a: PixelSpan, b_path: str, b: PixelSpan, sample: int | None,
                   replaced: dict[int, bytes] | None = None) -> tuple[bool, int]:
    """Compare the pixel value pieces of two files; returns (identical, pieces compared).

    ``replaced``: pieces of ``b`` that must hold these bytes instead of ``a``'s
    (blanked frames); they are always compared, whatever the sample.
    """
    replaced = replaced or {}
    if a.encapsulated != b.encapsulated or len(a.fragments) != len(b.fragments):
        return False, 0
    if not a.encapsulated and replaced:
        return _same_native(a_path, a, b_path, b, replaced), len(replaced)
    idx = list(range(len(a.fragments)))
    if sample is not None and len(idx) > sample:
        step = (len(idx) - 1) / (sample - 1)
        idx = sorted({round(i * step) for i in range(sample)} | set(replaced))
    with open(a_path, "rb") as fa, open(b_path, "rb") as fb:
        for i in idx:
            (oa, na), (ob, nb) = a.fragments[i], b.fragments[i]
            if i in replaced:
                want = replaced[i]
                want = want.data if hasattr(want, "data") else want  # a frame edit, its bytes made now
                if os.pread(fb.fileno(), nb, ob) != want:
                    return False, len(idx)
                continue
            if na != nb:
                return False, len(idx)
            done = 0
            while done < na:
                k = min(COPY_CHUNK, na - done)
                if os.pread(fa.fileno(), k, oa + done) != os.pread(fb.fileno(), k, ob + done):
                    return False, len(idx)
                done += k
    return True, len(idx)


def _same_native(a_path: str, a: PixelSpan, b_path: str, b: PixelSpan, replaced: dict) -> bool:
    """Native pixel data with blanked frames: those frames hold the blanked bytes (frame k at
    k x frame length), every other byte is the source's."""
    sizes = {k: (v.size if hasattr(v, "data") else len(v)) for k, v in replaced.items()}
    n = next(iter(sizes.values()))
    (oa, na), (ob, nb) = a.fragments[0], b.fragments[0]
    if na != nb or any(m != n for m in sizes.values()):
        return False
    with open(a_path, "rb") as fa, open(b_path, "rb") as fb:
        pos = 0
        for k in sorted(replaced) + [None]:
            stop = na if k is None else k * n
            while pos < stop:
                step = min(COPY_CHUNK, stop - pos)
                if os.pread(fa.fileno(), step, oa + pos) != os.pread(fb.fileno(), step, ob + pos):
                    return False
                pos += step
            if k is not None:
                want = replaced[k]  # a frame edit's bytes are read now, one frame at a time
                if os.pread(fb.fileno(), n, ob + pos) != (want.data if hasattr(want, "data") else want):
                    return False
                pos += n
    return True
