"""Bounded reader for the TIFF family: classic TIFF, BigTIFF and NDPI.

Why our own reader rather than tifffile or tifftools: de-identification must
see *every* byte a tag points at (including SubIFD/EXIF/GPS trees and
private tags), must never trust a count or offset from a hostile file, and
must stay cheap on a 2 GB slide (we only read IFDs and tag values, never
image data). Every read is checked against the file size, IFD chains are
checked for loops, and totals are capped, so a crafted file fails with
MalformedFile in bounded time and memory.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field

from ..budget import Budget
from ..errors import MalformedFile, UnsupportedFormat

# TIFF field types: code -> (size in bytes, struct char)
TYPES: dict[int, tuple[int, str]] = {
    1: (1, "B"),   # BYTE
    2: (1, "s"),   # ASCII
    3: (2, "H"),   # SHORT
    4: (4, "I"),   # LONG
    5: (8, "II"),  # RATIONAL
    6: (1, "b"),   # SBYTE
    7: (1, "B"),   # UNDEFINED
    8: (2, "h"),   # SSHORT
    9: (4, "i"),   # SLONG
    10: (8, "ii"),  # SRATIONAL
    11: (4, "f"),  # FLOAT
    12: (8, "d"),  # DOUBLE
    13: (4, "I"),  # IFD
    16: (8, "Q"),  # LONG8
    17: (8, "q"),  # SLONG8
    18: (8, "Q"),  # IFD8
}

# Tags whose values are offsets of child IFDs.
CHILD_IFD_TAGS = {330: "SubIFDs", 34665: "ExifIFD", 34853: "GPSIFD", 40965: "InteroperabilityIFD"}

# Bounds against hostile files. The per-structure counts stay as sanity
# checks; what bounds time and memory is the per-slide Budget (wsideid/budget.py),
# charged for every IFD table, tag value and tile/strip as they are read.
MAX_IFDS = 4096
MAX_ENTRIES_PER_IFD = 4096
MAX_CHILD_DEPTH = 4
SEGMENT_TAGS = (273, 324)  # StripOffsets, TileOffsets


@dataclass
class Entry:
    """One IFD entry as stored: raw value bytes in file byte order."""

    tag: int
    type: int
    count: int
    raw: bytes  # the value bytes (count * type size)
    value_offset: int | None  # where the value lived in the source, None if inline

    @property
    def size(self) -> int:
        return TYPES[self.type][0] * self.count


@dataclass
class Ifd:
    """One image file directory with its entries and child IFD trees."""

    offset: int
    entries: dict[int, Entry]
    byteorder: str
    children: dict[int, list["Ifd"]] = field(default_factory=dict)  # tag -> IFDs
    path: str = ""  # e.g. "ifd[0]" or "ifd[0]/ExifIFD[0]"
    next_offset: int = 0  # as stored, for members of a SubIFDs list (checked, never followed)

    def has(self, tag: int) -> bool:
        return tag in self.entries

    def values(self, tag: int) -> tuple:
        """Decoded numeric values of a tag (rationals as (num, den) pairs)."""
        e = self.entries[tag]
        return decode_values(e, self.byteorder)

    def value(self, tag: int, default=None):
        if tag not in self.entries:
            return default
        e = self.entries[tag]
        if e.type == 2:
            return ascii_text(e.raw)
        vals = decode_values(e, self.byteorder)
        return vals[0] if len(vals) == 1 else vals

    def text(self, tag: int) -> str | None:
        e = self.entries.get(tag)
        if e is None:
            return None
        return ascii_text(e.raw)


def ascii_text(raw: bytes) -> str:
    """ASCII/UTF-8 value without the trailing NULs; undecodable bytes kept visible."""
    return raw.rstrip(b"\0").decode("utf-8", errors="replace")


_NP_TYPES = {1: "u1", 3: "u2", 4: "u4", 6: "i1", 7: "u1", 8: "i2", 9: "i4", 13: "u4", 16: "u8", 17: "i8", 18: "u8"}


def integer_array(e: Entry, byteorder: str):
    """An integer tag's values as an int64 numpy array (fast for offset tables)."""
    import numpy as np
    code = _NP_TYPES.get(e.type)
    if code is None:
        raise MalformedFile(f"tag {e.tag} has non-integer type {e.type} where offsets or counts are expected")
    dt = np.dtype(code).newbyteorder("<" if byteorder == "<" else ">")
    return np.frombuffer(e.raw, dtype=dt, count=e.count).astype(np.int64)


def decode_values(e: Entry, byteorder: str) -> tuple:
    size, char = TYPES[e.type]
    if e.type in (1, 6, 7):
        return tuple(e.raw) if e.type != 6 else struct.unpack(f"{byteorder}{e.count}b", e.raw)
    if e.type == 2:
        return (ascii_text(e.raw),)
    if e.type in (5, 10):
        flat = struct.unpack(f"{byteorder}{2 * e.count}{char[0]}", e.raw)
        return tuple(zip(flat[0::2], flat[1::2]))
    return struct.unpack(f"{byteorder}{e.count}{char}", e.raw)


@dataclass
class TiffFile:
    """A parsed TIFF-family container (metadata only; image data stays on disk)."""

    path: str
    size: int
    kind: str  # "classic" | "bigtiff" | "ndpi"
    byteorder: str  # "<" or ">"
    ifds: list[Ifd]

    def owners(self) -> list[int]:
        """For each IFD of ``all_ifds()``, the index of its top-level IFD."""
        out: list[int] = []

        def walk(ifd, top):
            out.append(top)
            for kids in ifd.children.values():
                for k in kids:
                    walk(k, top)
        for i, ifd in enumerate(self.ifds):
            walk(ifd, i)
        return out

    def image_ifds(self) -> list[Ifd]:
        """Every IFD that is an image: the top-level chain, then the images
        stored as SubIFDs (tag 330) below them, depth first.

        The position in this list is an image's index everywhere (inventory,
        plan, writer, verification); top-level IFDs keep their own numbers.
        """
        out = list(self.ifds)

        def walk(ifd):
            for kid in ifd.children.get(330, []):
                out.append(kid)
                walk(kid)
        for top in self.ifds:
            walk(top)
        return out

    def image_parents(self) -> list[int | None]:
        """For each entry of ``image_ifds()``, the index of the image whose SubIFD it is."""
        imgs = self.image_ifds()
        index = {id(f): i for i, f in enumerate(imgs)}
        out: list[int | None] = [None] * len(imgs)
        for i, f in enumerate(imgs):
            for kid in f.children.get(330, []):
                out[index[id(kid)]] = i
        return out

    def image_owners(self) -> list[int]:
        """For each IFD of ``all_ifds()``, the index of the image it belongs to
        (an EXIF IFD belongs to its image; a SubIFD image to itself)."""
        index = {id(f): i for i, f in enumerate(self.image_ifds())}
        out: list[int] = []

        def walk(ifd, owner):
            owner = index.get(id(ifd), owner)
            out.append(owner)
            for kids in ifd.children.values():
                for k in kids:
                    walk(k, owner)
        for top in self.ifds:
            walk(top, index[id(top)])
        return out

    def all_ifds(self):
        """Every IFD including child trees, depth first."""
        def walk(ifd):
            yield ifd
            for kids in ifd.children.values():
                for k in kids:
                    yield from walk(k)
        for i in self.ifds:
            yield from walk(i)


class _FileView:
    """A file's bytes by seek and read, sliced like a buffer. Why not a map: a file cut short while
    it is parsed made a read through the map a SIGBUS, which killed the run without a word; a
    short read here is a one-line MalformedFile."""

    def __init__(self, fh):
        self.fh = fh

    def __getitem__(self, s: slice) -> bytes:
        start, stop = s.start or 0, s.stop
        self.fh.seek(start)
        data = self.fh.read(stop - start)
        if len(data) != stop - start:
            raise MalformedFile("the file got shorter while it was read (it is being written or replaced)")
        return data


class _Reader:
    def __init__(self, buf, size: int, path: str):
        self.buf = buf
        self.size = size
        self.path = path
        self.budget = Budget()

    def read(self, offset: int, length: int, what: str) -> bytes:
        if offset < 0 or length < 0 or offset + length > self.size:
            raise MalformedFile(f"{what} at offset {offset} (+{length} bytes) lies past the end of the file ({self.size} bytes)")
        self.budget.charge_bytes(length, what)  # before the copy: a 480 MB value is refused, not read
        return bytes(self.buf[offset:offset + length])


def sniff(head: bytes) -> tuple[str, str] | None:
    """Return (byteorder, 'classic'|'bigtiff') when the header looks like TIFF."""
    if len(head) < 8:
        return None
    if head[:2] == b"II":
        bo = "<"
    elif head[:2] == b"MM":
        bo = ">"
    else:
        return None
    magic = struct.unpack(bo + "H", head[2:4])[0]
    if magic == 42:
        return bo, "classic"
    if magic == 43:
        return bo, "bigtiff"
    return None


def read_tiff(path: str | os.PathLike, first_ifd: int | None = None) -> TiffFile:
    """Parse every IFD of a TIFF/BigTIFF/NDPI file, bounded against hostile input.

    ``first_ifd`` overrides the header's pointer (in-place mode parses the new
    structure before switching the header to it).
    """
    path = os.fspath(path)
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        if size < 8:
            raise UnsupportedFormat(f"file is too small to be a slide ({size} bytes)")
        return _parse(_FileView(fh), size, path, first_ifd)


def _parse(mm, size: int, path: str, first_ifd: int | None = None) -> TiffFile:
    head = bytes(mm[:min(size, 16)])
    s = sniff(head)
    if s is None:
        raise UnsupportedFormat(f"not a TIFF file (starts with {head[:4].hex()})")
    bo, kind = s
    r = _Reader(mm, size, path)
    if kind == "bigtiff":
        if len(head) < 16:
            raise MalformedFile("BigTIFF header is truncated")
        bytesize, zero = struct.unpack(bo + "HH", head[4:8])
        if bytesize != 8 or zero != 0:
            raise MalformedFile("BigTIFF header has an unsupported offset size")
        first = struct.unpack(bo + "Q", head[8:16])[0] if first_ifd is None else first_ifd
        ifds = _read_chain(r, bo, "bigtiff", first)
        return TiffFile(path, size, "bigtiff", bo, ifds)
    first4 = struct.unpack(bo + "I", head[4:8])[0] if first_ifd is None else first_ifd
    first8 = first_ifd if first_ifd is not None else (struct.unpack(bo + "Q", head[4:12])[0] if len(head) >= 12 else first4)
    classic_error: MalformedFile | None = None
    ifds: list[Ifd] = []
    if first4 < 2**32:
        try:
            ifds = _read_chain(r, bo, "classic", first4)
        except MalformedFile as exc:
            classic_error = exc
    # Hamamatsu NDPI: the same entries, but 64-bit offsets: an 8-byte first-IFD
    # offset and a high-word array after each IFD. Recognised by tag 65420 in
    # its first IFD, whether or not the classic reading got that far (an NDPI
    # over 4 GB may keep its first IFD beyond what 4 bytes address).
    if bo == "<" and (classic_error is not None or not ifds or 65420 in ifds[0].entries or first8 != first4):
        try:
            nd = _read_chain(_Reader(mm, size, path), bo, "ndpi", first8)
        except MalformedFile:
            nd = []
        if nd and 65420 in nd[0].entries:
            return TiffFile(path, size, "ndpi", bo, nd)
    if classic_error is not None:
        raise classic_error
    return TiffFile(path, size, "classic", bo, ifds)


def _read_chain(r: _Reader, bo: str, kind: str, first: int, depth: int = 0,
                seen: set[int] | None = None, prefix: str = "ifd", start_index: int = 0,
                single: bool = False, above: frozenset[int] = frozenset()) -> list[Ifd]:
    """The IFD chain starting at ``first`` with the child trees below each IFD.

    ``seen`` holds every IFD read so far, anywhere in the file. Reaching one
    again from the chain being walked, or from below it (``above`` holds the
    chains of the parents), is a loop; reaching it from elsewhere means two
    parents share one directory, which a copy could not write back
    faithfully: both are refused, with different words. ``single`` reads one
    IFD and ignores its next pointer (a member of a SubIFDs list).
    """
    seen = set() if seen is None else seen
    out: list[Ifd] = []
    chain: set[int] = set()
    offset = first
    while offset:
        if offset in chain or offset in above:
            raise MalformedFile(f"IFD loop: the directory at offset {offset} points back into its own chain")
        if offset in seen:
            raise MalformedFile(f"the directory at offset {offset} is referenced twice, from two places "
                                "(shared IFDs cannot be copied faithfully)")
        if len(seen) >= MAX_IFDS:
            raise MalformedFile(f"more than {MAX_IFDS} IFDs (hostile or corrupt file)")
        seen.add(offset)
        chain.add(offset)
        ifd, nxt = _read_ifd(r, bo, kind, offset)
        ifd.path = f"{prefix}[{start_index + len(out)}]"
        for tag, name in CHILD_IFD_TAGS.items():
            e = ifd.entries.get(tag)
            if e is None:
                continue
            if depth >= MAX_CHILD_DEPTH:
                raise MalformedFile("child IFDs nested too deeply")
            if e.type not in (4, 13, 16, 18) and not (tag != 330 and e.type in (3, 9)):
                raise MalformedFile(f"{ifd.path}: {name} has a non-offset type {e.type}")
            ifd.children[tag] = _read_children(r, bo, kind, list(decode_values(e, bo)), depth + 1, seen,
                                               f"{ifd.path}/{name}", above | chain)
        out.append(ifd)
        if single:
            ifd.next_offset = nxt
            break
        offset = nxt
    return out


def _read_children(r: _Reader, bo: str, kind: str, offsets: list[int], depth: int, seen: set[int],
                   prefix: str, above: frozenset[int]) -> list[Ifd]:
    """The IFDs a child tag lists.

    One offset: the start of a chain (libtiff's chained SubIFDs, EXIF).
    Several: each one IFD. Writers such as tifffile also chain the members
    of such a list (member k's next pointer is member k+1); that is the same
    list said twice, not a loop. A member whose next pointer leads anywhere
    else would hide a directory the list does not name: refused.
    """
    if len(offsets) <= 1:
        return _read_chain(r, bo, kind, offsets[0], depth, seen, prefix, above=above) if offsets and offsets[0] else []
    kids: list[Ifd] = []
    for j, off in enumerate(offsets):
        kid = _read_chain(r, bo, kind, off, depth, seen, prefix, start_index=j, single=True, above=above)[0]
        follow = offsets[j + 1] if j + 1 < len(offsets) else 0
        if kid.next_offset not in (0, follow):
            raise MalformedFile(f"{kid.path}: its next-IFD pointer ({kid.next_offset}) leads outside the "
                                "SubIFDs list that names it")
        kids.append(kid)
    return kids


def _read_ifd(r: _Reader, bo: str, kind: str, offset: int) -> tuple[Ifd, int]:
    if kind == "bigtiff":
        n = struct.unpack(bo + "Q", r.read(offset, 8, "IFD entry count"))[0]
        entry_size, count_size, head_size, next_size = 20, 8, 8, 8
    else:
        n = struct.unpack(bo + "H", r.read(offset, 2, "IFD entry count"))[0]
        entry_size, count_size, head_size, next_size = 12, 4, 2, 4
        if kind == "ndpi":
            next_size = 8
    if n == 0:
        raise MalformedFile(f"IFD at offset {offset} has no entries")
    if n > MAX_ENTRIES_PER_IFD:
        raise MalformedFile(f"IFD at offset {offset} claims {n} entries (hostile or corrupt file)")
    r.budget.charge_entries(n, f"IFD at offset {offset}")
    table = r.read(offset + head_size, n * entry_size + next_size, "IFD entries")
    nxt_raw = table[n * entry_size:]
    nxt = struct.unpack(bo + ("Q" if next_size == 8 else "I"), nxt_raw)[0]
    high: tuple[int, ...] = (0,) * n
    if kind == "ndpi":
        hi_off = offset + head_size + n * entry_size + next_size
        if hi_off + 4 * n <= r.size:
            high = struct.unpack(f"<{n}I", r.read(hi_off, 4 * n, "NDPI high offset words"))
    inline_max = 8 if kind == "bigtiff" else 4
    entries: dict[int, Entry] = {}
    for i in range(n):
        base = i * entry_size
        tag, typ = struct.unpack_from(bo + "HH", table, base)
        if kind == "bigtiff":
            count = struct.unpack_from(bo + "Q", table, base + 4)[0]
        else:
            count = struct.unpack_from(bo + "I", table, base + 4)[0]
        field_bytes = table[base + 4 + count_size: base + entry_size]
        if tag in entries:  # (before the type test: an entry of unknown type must not hide a twin)
            raise MalformedFile(f"tag {tag} appears twice in the IFD at offset {offset}")
        if typ not in TYPES or (kind != "bigtiff" and typ in (16, 17, 18)):
            # Unknown type (or a BigTIFF-only 64-bit type in a classic
            # file, which the NDPI writer would misread as an offset): we
            # cannot copy or scrub it safely. Record it as opaque so the
            # profile drops it.
            entries[tag] = Entry(tag, 7, 0, b"", None)
            continue
        nbytes = TYPES[typ][0] * count
        if tag in SEGMENT_TAGS:
            r.budget.charge_segments(count, f"IFD at offset {offset}")
        if nbytes > r.size:
            raise MalformedFile(f"tag {tag} at IFD offset {offset} claims {count} values, larger than the file")
        if nbytes <= inline_max:
            raw = bytes(field_bytes[:nbytes])
            voff = None
            if kind == "ndpi" and high[i] and typ in (4, 9, 13) and count == 1:
                # Single inline LONG with a high word: a 64-bit offset value
                # (strip offsets of slides over 4 GB).
                raw = struct.pack("<Q", struct.unpack("<I", raw)[0] | (high[i] << 32))
                entries[tag] = Entry(tag, 16, 1, raw, None)
                continue
        else:
            voff = struct.unpack(bo + ("Q" if kind == "bigtiff" else "I"), field_bytes)[0]
            if kind == "ndpi":
                voff |= high[i] << 32
            raw = r.read(voff, nbytes, f"value of tag {tag}")
        entries[tag] = Entry(tag, typ, count, raw, voff)
    return Ifd(offset, entries, bo), nxt
