"""Hostile inputs of the second round: sizes that would allocate gigabytes, compression bombs and
special files, for the families the first soaks reached least (DICOM series, MIRAX folders, JPEG
2000 and SubIFD pyramids, and every other TIFF seed).

Each generator returns ``(label, mutate)`` pairs like fuzz/structural.py, so the soak
(bench/hostile_soak.py, ``--family extreme``) and tests/test_hostile_cli.py sample them with the
rest. Large inputs are *sparse* files (``os.truncate`` past the end): they cost no disk and no
time to make, yet a reader that trusts a declared size reads hundreds of megabytes of zeros.
"""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path
from typing import Callable

Mutation = tuple[str, Callable[[Path], None]]

SPARSE = 300 << 20  # bytes a sparse file grows by: three times the RSS a process may use
DEFLATE_UID = b"1.2.840.10008.1.2.1.99"  # Deflated Explicit VR Little Endian (22 chars, even)


def deflate_bomb(inflated: int, raw: bool) -> bytes:
    """A deflate stream of ~inflated/1000 bytes that inflates to ``inflated`` zero bytes.

    Built from one full-flushed block of 1 MiB zeros repeated (a full flush leaves no history,
    so the copies are independent), then an empty final block; ``raw``: no zlib wrapper (DICOM's
    deflated syntax), else a zlib stream (TIFF Deflate) with its Adler-32 of the zeros."""
    z = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = z.compress(bytes(1 << 20)) + z.flush(zlib.Z_FULL_FLUSH)
    n = max(1, inflated >> 20)
    body = block * n + b"\x03\x00"
    if raw:
        return body
    return b"\x78\xda" + body + struct.pack(">I", _adler_zeros(1, n << 20))


def _adler_zeros(adler: int, n: int) -> int:
    """Adler-32 continued over ``n`` zero bytes (a stays, b grows by n*a)."""
    a, b = adler & 0xFFFF, adler >> 16
    return ((b + n * a) % 65521) << 16 | a


def _grow(p: Path, by: int = SPARSE) -> int:
    """Make ``p`` ``by`` bytes longer without writing (a hole); returns its old size."""
    size = p.stat().st_size
    os.truncate(p, size + by)
    return size


def _replace(p: Path, make: Callable[[Path], None]) -> None:
    p.unlink()
    make(p)


def special_files(target: Callable[[Path], Path]) -> list[Mutation]:
    """``target(input)`` (a file of the slide) replaced by a FIFO, a link to /dev/zero, a link
    to itself, a folder and an empty file; and the file growing while the tool reads it is
    left to tests/test_robust_hostile_round2.py (it needs a writer running beside the tool)."""
    return [
        ("special:fifo", lambda p: _replace(target(p), os.mkfifo)),
        ("special:dev-zero", lambda p: _replace(target(p), lambda q: q.symlink_to("/dev/zero"))),
        ("special:symlink-loop", lambda p: _replace(target(p), lambda q: q.symlink_to(q.name))),
        ("special:directory", lambda p: _replace(target(p), lambda q: q.mkdir())),
        ("special:empty", lambda p: _replace(target(p), lambda q: q.write_bytes(b""))),
        ("special:sparse-tail", lambda p: _grow(target(p))),
    ]


# ------------------------------------------------------------------ TIFF family

def tiff_mutations(path: Path) -> list[Mutation]:
    """A tile whose byte count covers a 300 MB hole, and a Deflate bomb as a tile of IFD 0."""
    from wsideid.tiff.container import read_tiff
    from wsideid.tiff_family.vendors.tiff_base import image_data

    tf = read_tiff(path)
    big = tf.kind == "bigtiff"
    head, esize, cw = (8, 20, 8) if big else (2, 12, 4)
    bo = tf.byteorder
    out: list[Mutation] = []
    ifd = tf.ifds[0]
    d = image_data(ifd, bo)
    if d is None or not len(d.src_offsets):
        return out
    pos = {tag: ifd.offset + head + i * esize for i, tag in enumerate(ifd.entries)}
    oe, ce = ifd.entries[d.offsets_tag], ifd.entries[d.counts_tag]
    width = {3: 2, 4: 4, 16: 8}.get(ce.type)
    if width is None:
        return out
    o_at = oe.value_offset if oe.value_offset is not None else pos[d.offsets_tag] + 4 + cw
    c_at = ce.value_offset if ce.value_offset is not None else pos[d.counts_tag] + 4 + cw
    ow = {3: 2, 4: 4, 16: 8}.get(oe.type, 4)
    fmt = {k: bo + c for k, c in {2: "H", 4: "I", 8: "Q"}.items()}
    first = int(d.src_offsets[0])

    def huge_count(p: Path) -> None:
        size = _grow(p)
        if width == 2:
            return
        _put(p, c_at, struct.pack(fmt[width], size + SPARSE - first - 1))

    def bomb(p: Path) -> None:
        blob = deflate_bomb(1 << 30, raw=False)
        at = p.stat().st_size + (p.stat().st_size & 1)
        with open(p, "r+b") as fh:
            fh.seek(at)
            fh.write(blob)
        if 259 in pos:
            _put(p, pos[259] + 4 + cw, struct.pack(bo + "H", 8))
        _put(p, o_at, struct.pack(fmt[ow], at))
        if width > 2:
            _put(p, c_at, struct.pack(fmt[width], len(blob)))

    out.append(("extreme:tile-count-over-hole", huge_count))
    out.append(("extreme:deflate-bomb-tile", bomb))
    out += special_files(lambda p: p)[5:]  # the file itself: only the sparse tail (the rest: fs cases)
    return out


def _put(p: Path, at: int, blob: bytes) -> None:
    with open(p, "r+b") as fh:
        fh.seek(at)
        fh.write(blob)


# ------------------------------------------------------------------ DICOM series

def _meta_and_body(data: bytes) -> tuple[list[tuple[int, bytes]], int]:
    """The file meta elements (tag, encoded bytes) of a Part 10 file and where the dataset starts."""
    pos, out = 132, []
    while pos + 8 <= len(data):
        g, e = struct.unpack_from("<HH", data, pos)
        if g != 2:
            break
        vr = data[pos + 4:pos + 6]
        if vr in (b"OB", b"UN", b"SQ", b"UT", b"OW"):
            n = struct.unpack_from("<I", data, pos + 8)[0]
            end = pos + 12 + n
        else:
            n = struct.unpack_from("<H", data, pos + 6)[0]
            end = pos + 8 + n
        out.append((g << 16 | e, data[pos:end]))
        pos = end
    return out, pos


def deflated_instance(data: bytes, inflated: int) -> bytes:
    """``data`` (a Part 10 file) with its transfer syntax made Deflated Explicit VR Little Endian
    and its dataset replaced by a deflate bomb of ``inflated`` bytes (group length recomputed)."""
    meta, _ = _meta_and_body(data)
    body = b""
    for tag, raw in meta:
        if tag == 0x00020000:
            continue
        if tag == 0x00020010:
            raw = struct.pack("<HH", 2, 0x10) + b"UI" + struct.pack("<H", len(DEFLATE_UID)) + DEFLATE_UID
        body += raw
    group = struct.pack("<HH", 2, 0) + b"UL" + struct.pack("<HI", 4, len(body))
    return data[:132] + group + body + deflate_bomb(inflated, raw=True)


def _set_value(data: bytes, tag: int, value: bytes) -> bytes:
    """The first top-level element ``tag`` (explicit VR) given ``value`` at its own length
    (padded or cut), so every other position stays."""
    from fuzz import dicom as dfuzz
    elems, _, _ = dfuzz.walk(data)
    for e in elems:
        if e.tag == tag and e.vr_pos is not None:
            return data[:e.end] + value[:e.length].ljust(e.length, b" ") + data[e.end + e.length:]
    return data


def dicom_mutations(series: Path, main: Path) -> list[Mutation]:
    name = main.name

    def write(fn: Callable[[bytes], bytes]) -> Callable[[Path], None]:
        return lambda p: (p / name).write_bytes(fn((p / name).read_bytes()))

    def pixel_hole(p: Path) -> None:
        f = p / name
        from fuzz import dicom as dfuzz
        elems, _, _ = dfuzz.walk(f.read_bytes())
        pix = [e for e in elems if e.tag == 0x7FE00010]
        size = _grow(f)
        if pix and pix[0].length != 0xFFFFFFFF:
            _put(f, pix[0].len_pos, struct.pack("<I", size + SPARSE - pix[0].end))

    out: list[Mutation] = [
        ("extreme:deflate-bomb-2GB", write(lambda d: deflated_instance(d, 2 << 30))),
        ("extreme:deflate-bomb-200MB", write(lambda d: deflated_instance(d, 200 << 20))),
        ("extreme:rows-cols-65535", write(lambda d: _set_value(_set_value(d, 0x00280010, b"\xff\xff"),
                                                              0x00280011, b"\xff\xff"))),
        ("extreme:frames-2e9", write(lambda d: _set_value(d, 0x00280008, b"2147483647"))),
        ("extreme:pixel-length-over-hole", pixel_hole),
        ("extreme:sparse-tail", lambda p: _grow(p / name)),
    ]
    out += [(label, fn) for label, fn in special_files(lambda p: p / name)[:5]]
    out += [
        ("extreme:extra-fifo", lambda p: os.mkfifo(p / "zz-pipe.dcm")),
        ("extreme:extra-dev-zero", lambda p: (p / "zz-zero.dcm").symlink_to("/dev/zero")),
        ("extreme:extra-loop", lambda p: (p / "zz-loop.dcm").symlink_to("zz-loop.dcm")),
        ("extreme:extra-dir", lambda p: (p / "zz-dir.dcm").mkdir()),
        ("extreme:extra-empty", lambda p: (p / "zz-empty.dcm").write_bytes(b"")),
        ("extreme:non-utf8-name", lambda p: (p / name).rename(
            Path(os.fsdecode(os.path.join(os.fsencode(p), b"inst-\xff\xfe.dcm"))))),
    ]
    return out


# ------------------------------------------------------------------ MIRAX

def mrxs_mutations(mrxs: Path) -> list[Mutation]:
    from wsideid.mrxs.slide import open_mrxs

    slide = open_mrxs(str(mrxs))
    sid = slide.slide_id.encode("ascii")
    index = (mrxs.with_suffix("") / "Index.dat").read_bytes()
    root = 5 + len(sid)
    table = struct.unpack_from("<i", index, root)[0]
    head = struct.unpack_from("<i", index, table)[0]
    page = struct.unpack_from("<i", index, head + 4)[0]
    rec_at = page + 8  # (image, offset, length, file) of zoom level 0's first record
    _, off, _, fileno = struct.unpack_from("<4i", index, rec_at)
    data_name = os.path.basename(slide.datafiles[fileno])

    def record_over_hole(p: Path) -> None:
        folder = p.with_suffix("")
        size = _grow(folder / data_name)
        _put(folder / "Index.dat", rec_at + 8, struct.pack("<i", size + SPARSE - off))

    def folder(name: str) -> Callable[[Path], Path]:
        return lambda p: p.with_suffix("") / name

    out: list[Mutation] = [
        ("extreme:record-over-hole", record_over_hole),
        ("extreme:index-sparse-60MB", lambda p: os.truncate(p.with_suffix("") / "Index.dat", 60 << 20)),
        ("extreme:ini-1MiB", lambda p: _pad_ini(p.with_suffix("") / "Slidedat.ini", 1 << 20)),
        ("extreme:mrxs-fifo", lambda p: _replace(p, os.mkfifo)),
        ("extreme:mrxs-dev-zero", lambda p: _replace(p, lambda q: q.symlink_to("/dev/zero"))),
        ("extreme:folder-loop", lambda p: (__import__("shutil").rmtree(p.with_suffix("")),
                                           p.with_suffix("").symlink_to(p.with_suffix("").name))),
    ]
    for what in ("Slidedat.ini", "Index.dat", data_name):
        out += [(f"{label}:{what}", fn) for label, fn in special_files(folder(what))]
    return out


def _pad_ini(ini: Path, size: int) -> None:
    text = ini.read_bytes()
    pad = b"\r\n[PADDING]\r\nP = "
    ini.write_bytes(text + pad + b"x" * max(0, size - len(text) - len(pad) - 2) + b"\r\n")
