"""A stream's bytes, in memory or as a range of a file read on demand.

The stream rule (``structure``, ``j2k``) parses headers byte by byte and
searches the entropy-coded data for its end. A whole-level NDPI strip can be
gigabytes: holding it to clean it would make memory grow with the slide. A
``FileView`` answers the same questions (a byte, a short slice, a pattern
search) by reading windows of the file, so the parsers run over either with
flat memory, and report what they keep as source ranges (``Piece``) rather
than bytes.
"""

from __future__ import annotations

import os
import re

from ..errors import WsideidError

# What a cleaned stream is made of, in order: literal bytes, or (start, length) in the source stream.
Piece = bytes | tuple[int, int]

WINDOW = 64 << 10  # bytes cached for header parsing
SEARCH_CHUNK = 4 << 20  # bytes searched at once


class FileView:
    """``length`` bytes of an open file from ``offset``, indexed like ``bytes``."""

    def __init__(self, fd: int, offset: int, length: int):
        self.fd, self.offset, self.length = fd, offset, length
        self._at, self._win = 0, b""

    def __len__(self) -> int:
        return self.length

    def _read(self, a: int, b: int) -> bytes:
        data = os.pread(self.fd, b - a, self.offset + a)
        if len(data) != b - a:
            raise WsideidError("image data ends before a stream does (the file is truncated)")
        return data

    def __getitem__(self, key):
        if isinstance(key, slice):
            a, b, step = key.indices(self.length)
            if step != 1:
                raise ValueError("FileView slices are contiguous")
            if b <= a:
                return b""
            if self._at <= a and b <= self._at + len(self._win):
                return self._win[a - self._at:b - self._at]
            if b - a > WINDOW:
                return self._read(a, b)
            self._at, self._win = a, self._read(a, min(self.length, a + WINDOW))
            return self._win[:b - a]
        if key < 0:
            key += self.length
        if not 0 <= key < self.length:
            raise IndexError(key)
        if not self._at <= key < self._at + len(self._win):
            self._at, self._win = key, self._read(key, min(self.length, key + WINDOW))
        return self._win[key - self._at]


def search(raw, rx: re.Pattern, pos: int) -> int:
    """Start of the first match of the two-byte pattern ``rx`` at or after ``pos``, or -1."""
    if not isinstance(raw, FileView):
        m = rx.search(raw, pos)
        return m.start() if m else -1
    n = len(raw)
    while pos < n - 1:
        stop = min(n, pos + SEARCH_CHUNK + 1)  # one byte more: a match starting at the chunk's last byte
        chunk = raw._read(pos, stop)
        m = rx.search(chunk)
        if m:
            return pos + m.start()
        pos = stop - 1
    return -1


def find(raw, needle: bytes, pos: int) -> int:
    if not isinstance(raw, FileView):
        return raw.find(needle, pos)
    n, k = len(raw), len(needle)
    while pos <= n - k:
        stop = min(n, pos + SEARCH_CHUNK + k - 1)
        at = raw._read(pos, stop).find(needle)
        if at >= 0:
            return pos + at
        pos = stop - k + 1
    return -1


def merge(pieces: list[Piece]) -> list[Piece]:
    """Adjacent source ranges joined, adjacent literals joined, empty pieces dropped."""
    out: list[Piece] = []
    for p in pieces:
        if isinstance(p, tuple):
            if p[1] <= 0:
                continue
            if out and isinstance(out[-1], tuple) and out[-1][0] + out[-1][1] == p[0]:
                out[-1] = (out[-1][0], out[-1][1] + p[1])
                continue
        else:
            if not p:
                continue
            if out and not isinstance(out[-1], tuple):
                out[-1] = out[-1] + p
                continue
        out.append(p)
    return out


def join(raw, pieces: list[Piece]) -> bytes:
    """The bytes ``pieces`` stand for, ``raw`` being the source stream."""
    return b"".join(p if not isinstance(p, tuple) else raw[p[0]:p[0] + p[1]] for p in pieces)


def size(pieces: list[Piece]) -> int:
    return sum(p[1] if isinstance(p, tuple) else len(p) for p in pieces)
