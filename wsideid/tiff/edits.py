"""Edited tiles and strips, recorded as what to copy, not as their bytes.

The stream rule can change every tile of a slide (a J2K encoder comment in
each tile, a vendor COM in each NDPI strip), and blanking can change many.
Holding the new bytes would make memory grow with the slide, which the
project forbids. An edited tile is therefore a list of pieces: ranges of the
source file (the entropy-coded data, kept segments) and a few new bytes
(rebuilt headers, blanked tiles). New bytes go to an unlinked spill file, so
what stays in memory is a handful of numbers per edited tile, in flat
arrays. The writer, the output hash, verification and in-place mode stream
the pieces (``copy_file_range`` for source ranges).

Piece arrays: ``where`` 0 is the source file, 1 the spill file, 2 an
in-memory literal (only for callers that hand over plain ``bytes`` maps:
fixtures and tests); ``offset`` and ``length`` in that file.
"""

from __future__ import annotations

import os
import tempfile
from array import array
from collections.abc import Iterator, Mapping

import numpy as np

from ..errors import WsideidError
from ..jpeg.view import Piece

SOURCE, SPILL, MEMORY = 0, 1, 2
LITERAL_CACHE = 512  # distinct small literals remembered (tiles of an image share rebuilt headers)
LITERAL_CACHE_MAX = 4096  # bytes: larger literals are not looked up


class EditStore:
    """The files edited tiles are read from: the source slide and a spill file for new bytes."""

    def __init__(self, src_path: str, spill_dir: str | None = None):
        self.src_path = src_path
        self.spill_dir = spill_dir
        self._src_fd: int | None = None
        self._spill = None
        self._spill_size = 0
        self._memory: list[bytes] = []
        self._cache: dict[bytes, int] = {}

    def src_fd(self) -> int:
        if self._src_fd is None:
            self._src_fd = os.open(self.src_path, os.O_RDONLY)
        return self._src_fd

    def spill_fd(self) -> int:
        if self._spill is None:
            self._spill = tempfile.TemporaryFile(prefix="wsideid-edits-", dir=self.spill_dir)
        return self._spill.fileno()

    def fd(self, where: int) -> int:
        return self.src_fd() if where == SOURCE else self.spill_fd()

    def literal(self, data: bytes) -> tuple[int, int, int]:
        """Where new bytes are kept: (where, offset, length)."""
        small = len(data) <= LITERAL_CACHE_MAX
        if small and data in self._cache:
            return SPILL, self._cache[data], len(data)
        fd = self.spill_fd()
        at = self._spill_size
        view = memoryview(data)
        while view:
            n = os.pwrite(fd, view, self._spill_size)
            self._spill_size += n
            view = view[n:]
        if small:
            if len(self._cache) >= LITERAL_CACHE:
                self._cache.clear()
            self._cache[bytes(data)] = at
        return SPILL, at, len(data)

    def memory(self, data: bytes) -> tuple[int, int, int]:
        self._memory.append(data)
        return MEMORY, len(self._memory) - 1, len(data)

    def read(self, where: int, offset: int, length: int) -> bytes:
        if where == MEMORY:
            return self._memory[offset]
        data = os.pread(self.fd(where), length, offset)
        if len(data) != length:
            raise WsideidError("the source ended early while reading an edited tile")
        return data

    def close(self) -> None:
        if self._src_fd is not None:
            os.close(self._src_fd)
            self._src_fd = None
        if self._spill is not None:
            self._spill.close()
            self._spill = None

    def __del__(self):
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass


class TileEdits(Mapping):
    """The edited tiles of one image by tile index; reading one yields its bytes.

    ``set_pieces`` records a tile as pieces of its source stream (the
    stream rule); assigning ``bytes`` records new bytes (blanking). A tile
    set twice keeps the last version.
    """

    def __init__(self, store: EditStore):
        self.store = store
        self._idx = array("q")
        self._len = array("q")
        self._first = array("q")  # first piece of each entry
        self._count = array("q")
        self._where = array("b")
        self._off = array("q")
        self._plen = array("q")
        self._sorted: np.ndarray | None = None  # entry positions by tile index
        self._last = -1  # the largest tile index recorded
        self.external: set = set()  # JPEGTables slots the rule's pieces use (recorded by the planner)
        self.opaque: set[int] = set()  # tiles given as new bytes (blanked): parsed where tables matter
        self.entropy: dict[int, tuple[int, int]] = {}  # NDPI strips: first-scan data start (new, source)
        self.header_tables: set | None = None  # JPEGTables slots the unedited tiles' headers use, when known

    # -- recording
    def _add(self, idx: int, pieces: list[tuple[int, int, int]]) -> None:
        old = self._find(idx)  # ascending appends need no lookup (see _find)
        self._last = max(self._last, int(idx))
        self._first.append(len(self._off))
        self._count.append(len(pieces))
        total = 0
        for where, off, n in pieces:
            self._where.append(where)
            self._off.append(off)
            self._plen.append(n)
            total += n
        if old >= 0:  # replace in place: the entry keeps its slot, the pieces are new
            self._first[old] = self._first.pop()
            self._count[old] = self._count.pop()
            self._len[old] = total
            return
        self._idx.append(int(idx))
        self._len.append(total)
        self._sorted = None

    def set_pieces(self, idx: int, pieces: list[Piece], base: int) -> None:
        """Tile ``idx`` is ``pieces`` of the source stream that starts at file offset ``base``."""
        out = []
        for p in pieces:
            if isinstance(p, tuple):
                out.append((SOURCE, base + p[0], p[1]))
            elif p:
                out.append(self.store.literal(p))
        self._add(idx, out)
        self.opaque.discard(int(idx))

    def __setitem__(self, idx: int, data: bytes) -> None:
        self._add(idx, [self.store.literal(bytes(data))] if data else [])
        self.opaque.add(int(idx))
        self.entropy.pop(int(idx), None)

    def set_memory(self, idx: int, data: bytes) -> None:
        self._add(idx, [self.store.memory(bytes(data))] if data else [])
        self.opaque.add(int(idx))

    # -- lookup
    def _order(self) -> np.ndarray:
        if self._sorted is None:
            self._sorted = np.argsort(np.frombuffer(self._idx, np.int64), kind="stable") if len(self._idx) \
                else np.zeros(0, np.int64)
        return self._sorted

    def _find(self, idx: int) -> int:
        if not len(self._idx) or idx > self._last:
            return -1
        order = self._order()
        keys = np.frombuffer(self._idx, np.int64)
        i = int(np.searchsorted(keys[order], idx))
        if i < len(order) and keys[order[i]] == idx:
            return int(order[i])
        return -1

    def __contains__(self, idx) -> bool:
        try:
            return self._find(int(idx)) >= 0
        except (TypeError, ValueError):
            return False

    def __len__(self) -> int:
        return len(self._idx)

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices().tolist())

    def indices(self) -> np.ndarray:
        """Edited tile indices, ascending."""
        return np.frombuffer(self._idx, np.int64)[self._order()] if len(self._idx) else np.zeros(0, np.int64)

    def lengths(self) -> np.ndarray:
        """New lengths, in the order of ``indices()``."""
        return np.frombuffer(self._len, np.int64)[self._order()] if len(self._idx) else np.zeros(0, np.int64)

    def length(self, idx: int) -> int:
        e = self._find(int(idx))
        if e < 0:
            raise KeyError(idx)
        return int(self._len[e])

    def pieces(self, idx: int) -> list[tuple[int, int, int]]:
        """(where, offset, length) of tile ``idx``'s pieces, in order."""
        e = self._find(int(idx))
        if e < 0:
            raise KeyError(idx)
        a = self._first[e]
        return [(self._where[j], self._off[j], self._plen[j]) for j in range(a, a + self._count[e])]

    def __getitem__(self, idx: int) -> bytes:
        """The tile's bytes (read now: one tile at a time, never the image)."""
        return b"".join(self.store.read(*p) for p in self.pieces(idx))

    def matches(self, idx: int, fd: int, offset: int, chunk: int = 8 << 20) -> bool:
        """Whether ``fd`` holds exactly this tile's bytes at ``offset`` (streamed)."""
        pos = offset
        for where, off, n in self.pieces(idx):
            done = 0
            while done < n:
                k = min(chunk, n - done)
                want = self.store.read(where, off + done, k) if where != MEMORY else \
                    self.store.read(where, off, n)[done:done + k]
                if os.pread(fd, k, pos) != want:
                    return False
                pos += k
                done += k
        return True


class EditSet(dict):
    """Edited tiles per flat IFD index (``dict[int, TileEdits]``), sharing one store."""

    def __init__(self, store: EditStore):
        super().__init__()
        self.store = store
        self.pending: list = []  # jpegsegs.Pending: tiles whose full check runs beside the write
        # tiles blanked in the pixel domain (JPEG 2000 re-encoded): flat IFD -> tile -> (boxes, fill values)
        self.pixel_boxes: dict[int, dict[int, tuple[list, tuple[int, ...]]]] = {}

    def image(self, k: int) -> TileEdits:
        """The edits of IFD ``k``, created on first use."""
        got = self.get(k)
        if got is None:
            got = self[k] = TileEdits(self.store)
        return got


def as_tile_edits(replaced: Mapping[int, bytes] | TileEdits, src_path: str) -> TileEdits:
    """``replaced`` as TileEdits: plain ``{index: bytes}`` maps (fixtures) are wrapped in memory."""
    if isinstance(replaced, TileEdits):
        return replaced
    out = TileEdits(EditStore(src_path))
    for idx in sorted(replaced):
        out.set_memory(idx, replaced[idx])
    return out
