"""Named structural mutations of every format's seed: each returns ``(label, mutate)`` pairs where
``mutate(input_path)`` damages a private copy of the seed in place.

Where the existing harness (fuzz/harness.py, fuzz/dicom.py) mutates by integer triples for
hypothesis, these are chosen by hand per structure and sampled with a fixed ``random.Random``:
truncation at every structure boundary, IFD and SubIFD loops, offsets and counts past the end
or at 2**63, absurd tag counts, tile byte counts of 0 / huge / overlapping, JPEG streams
without EOI or with bogus SOF / DHT / DQT / restart markers, JPEG 2000 codestreams with bad
SIZ / COD / tile-parts, XML bombs in the vendor XML, MIRAX ini garbage and wild Index.dat
pointers, and DICOM element damage (through fuzz/dicom.py's ops).
"""

from __future__ import annotations

import os
import random
import re
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

Mutation = tuple[str, Callable[[Path], None]]


# ------------------------------------------------------------------ TIFF layout

@dataclass
class TiffLayout:
    kind: str
    bo: str
    size: int
    ifd_offsets: list[int]
    entry_pos: dict[tuple[int, int], int]  # (ifd index, tag) -> file position of the entry
    next_ptrs: list[int]
    boundaries: list[int]
    jpeg_tiles: list[tuple[int, int]]  # (offset, count)
    j2k_tiles: list[tuple[int, int]]
    tables: list[tuple[int, int]]  # JPEGTables values (offset, count)
    arrays: list[tuple[int, int, int, int]]  # (offsets array pos, counts array pos, n, width)
    xml_tags: list[tuple[int, int, str]]  # (ifd index, tag, text)


def tiff_layout(path: Path) -> TiffLayout:
    from wsideid.tiff.container import read_tiff
    from wsideid.tiff_family.vendors.tiff_base import image_data

    tf = read_tiff(path)
    big = tf.kind == "bigtiff"
    head, esize = (8, 20) if big else (2, 12)
    lay = TiffLayout(tf.kind, tf.byteorder, tf.size, [], {}, [], [0, 4, 8, tf.size - 1, tf.size - 2], [], [], [], [],
                     [])
    for k, ifd in enumerate(tf.all_ifds()):
        lay.ifd_offsets.append(ifd.offset)
        lay.boundaries.append(ifd.offset)
        for i, e in enumerate(ifd.entries.values()):
            pos = ifd.offset + head + i * esize
            lay.entry_pos[(k, e.tag)] = pos
            lay.boundaries += [pos, pos + esize // 2]
            if e.value_offset is not None:
                lay.boundaries += [e.value_offset, e.value_offset + e.size // 2, e.value_offset + e.size]
            if e.tag == 347 and e.value_offset is not None:
                lay.tables.append((e.value_offset, e.count))
            if e.tag in (270, 700) and e.type in (1, 2, 7):
                text = e.raw.rstrip(b"\0").decode("utf-8", "replace")
                if text.lstrip().startswith("<"):
                    lay.xml_tags.append((k, e.tag, text))
        nxt = ifd.offset + head + len(ifd.entries) * esize
        lay.next_ptrs.append(nxt)
        lay.boundaries += [nxt, nxt + (8 if tf.kind in ("bigtiff", "ndpi") else 4)]
        try:
            d = image_data(ifd, tf.byteorder)
        except Exception:  # noqa: BLE001 - seeds are valid; be total anyway
            d = None
        if d is None or not len(d.src_offsets):
            continue
        comp = ifd.value(259, 1)
        pairs = [(int(o), int(c)) for o, c in zip(d.src_offsets, d.src_counts) if c > 0]
        for o, c in pairs[:3] + pairs[-1:]:
            lay.boundaries += [o, o + 2, o + c // 2, o + c - 2, o + c]
        if comp == 7:
            lay.jpeg_tiles += pairs[:6]
        elif comp in (33003, 33005, 34712):
            lay.j2k_tiles += pairs[:6]
        oe, ce = ifd.entries[d.offsets_tag], ifd.entries[d.counts_tag]
        if oe.value_offset is not None and ce.value_offset is not None and oe.type in (4, 16) and oe.type == ce.type:
            lay.arrays.append((oe.value_offset, ce.value_offset, oe.count, 4 if oe.type == 4 else 8))
    lay.boundaries = sorted({b for b in lay.boundaries if 0 <= b < tf.size})
    return lay


def _patch(path: Path, pos: int, blob: bytes) -> None:
    with open(path, "r+b") as fh:
        fh.seek(pos)
        fh.write(blob)


def _uint(bo: str, width: int, v: int) -> bytes:
    return struct.pack(bo + {2: "H", 4: "I", 8: "Q"}[width], v & ((1 << (8 * width)) - 1))


def _truncate(n: int) -> Callable[[Path], None]:
    def f(p: Path) -> None:
        os.truncate(p, n)
    return f


def tiff_mutations(path: Path, rng: random.Random) -> list[Mutation]:
    """Every kind of TIFF-container damage for one seed (callers sample from it)."""
    lay = tiff_layout(path)
    bo, big = lay.bo, lay.kind == "bigtiff"
    cw = 8 if big else 4  # count/value field width
    ptr = 8 if lay.kind in ("bigtiff", "ndpi") else 4
    out: list[Mutation] = []
    for b in lay.boundaries:
        out.append((f"truncate@{b}", _truncate(b)))
    wild = [0, 1, lay.size - 1, lay.size, lay.size + 1, 0xFFFFFFFF, 2 ** 31, 2 ** 32 + 8, 2 ** 63 - 1, 2 ** 63]
    # header's first-IFD pointer and next-IFD pointers: loops, self references, past the end
    for v in wild + [8, 16]:
        out.append((f"first-ifd={v:#x}", lambda p, v=v: _patch(p, 8 if big else 4, _uint(bo, 8 if big else 4, v))))
    for i, np_ in enumerate(lay.next_ptrs[:6]):
        for v in [lay.ifd_offsets[i], lay.ifd_offsets[0], *wild[2:]]:
            out.append((f"next[{i}]={v:#x}", lambda p, np_=np_, v=v: _patch(p, np_, _uint(bo, ptr, v))))
    entries = list(lay.entry_pos.items())
    for (k, tag), pos in entries:
        for v in (0, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF, 2 ** 40, 2 ** 63 - 1):  # absurd counts
            out.append((f"ifd{k}.tag{tag}.count={v:#x}", lambda p, pos=pos, v=v: _patch(p, pos + 4, _uint(bo, cw, v))))
        for v in (lay.size + 1, 0xFFFFFFFF, 2 ** 63 - 1, lay.ifd_offsets[k]):  # value offset wild / at its IFD
            out.append((f"ifd{k}.tag{tag}.offset={v:#x}",
                        lambda p, pos=pos, v=v: _patch(p, pos + 4 + cw, _uint(bo, cw, v))))
        for t in (0, 13, 16, 17, 0xFFFF):  # types: none, IFD, LONG8 in classic, SLONG8, unknown
            out.append((f"ifd{k}.tag{tag}.type={t}", lambda p, pos=pos, t=t: _patch(p, pos + 2, _uint(bo, 2, t))))
    for k, off in enumerate(lay.ifd_offsets[:8]):
        # a SubIFD / EXIF pointer at this IFD itself, at the first IFD, and at the IFD after it
        first = entries[0][1] if entries else None
        for tag in (330, 34665):
            for target in {off, lay.ifd_offsets[0], lay.ifd_offsets[min(k + 1, len(lay.ifd_offsets) - 1)]}:
                pos = next((p for (i, t), p in entries if i == k and t not in (256, 257, 273, 279, 324, 325)), first)
                if pos is None:
                    continue
                blob = _uint(bo, 2, tag) + _uint(bo, 2, 18 if big else 13) + _uint(bo, cw, 1) + _uint(bo, cw, target)
                out.append((f"ifd{k}.subifd({tag})->{target:#x}", lambda p, pos=pos, blob=blob: _patch(p, pos, blob)))
        for v in (0, 0xFFFF, 0x7FFF):
            out.append((f"ifd{k}.n-entries={v}", lambda p, off=off, v=v: _patch(p, off, _uint(bo, 8 if big else 2, v))))
    for oa, ca, n, w in lay.arrays[:4]:
        for v in (0, 1, 0xFFFFFFFF, lay.size, 2 ** 63 - 1 if w == 8 else 0x7FFFFFFF):
            out.append((f"tilecount[{ca:#x}]={v:#x}", lambda p, ca=ca, w=w, v=v: _patch(p, ca, _uint(bo, w, v))))
            out.append((f"tilecounts-all[{ca:#x}]={v:#x}",
                        lambda p, ca=ca, w=w, n=n, v=v: _patch(p, ca, _uint(bo, w, v) * n)))
        if n > 1:  # tile 1 overlaps tile 0; every tile the same bytes
            out.append((f"tile-overlap[{oa:#x}]", lambda p, oa=oa, w=w: _copy(p, oa, oa + w, w)))
            out.append((f"tile-all-same[{oa:#x}]", lambda p, oa=oa, ca=ca, w=w, n=n: _same(p, oa, ca, w, n)))
        out.append((f"tileoffset[{oa:#x}]=eof", lambda p, oa=oa, w=w: _patch(p, oa, _uint(bo, w, lay.size - 3))))
    out += jpeg_mutations(lay, rng)
    out += j2k_mutations(lay)
    out += xml_mutations(lay)
    return out


def _copy(p: Path, src: int, dst: int, n: int) -> None:
    with open(p, "r+b") as fh:
        fh.seek(src)
        blob = fh.read(n)
        fh.seek(dst)
        fh.write(blob)


def _same(p: Path, oa: int, ca: int, w: int, n: int) -> None:
    with open(p, "r+b") as fh:
        for a in (oa, ca):
            fh.seek(a)
            first = fh.read(w)
            fh.seek(a)
            fh.write(first * n)


# ------------------------------------------------------------------ JPEG streams inside tiles

def _segments(blob: bytes) -> list[tuple[int, int, int]]:
    """(marker, position, length field) of a JPEG's header segments up to SOS."""
    out = []
    pos = 2
    while pos + 4 <= len(blob) and blob[pos] == 0xFF:
        m = blob[pos + 1]
        if m in (0xD8, 0x01) or 0xD0 <= m <= 0xD7:
            pos += 2
            continue
        ln = struct.unpack_from(">H", blob, pos + 2)[0]
        out.append((m, pos, ln))
        if m == 0xDA:
            break
        pos += 2 + ln
    return out


def jpeg_mutations(lay: TiffLayout, rng: random.Random) -> list[Mutation]:
    out: list[Mutation] = []

    def read(p: Path, off: int, n: int) -> bytes:
        with open(p, "rb") as fh:
            fh.seek(off)
            return fh.read(n)

    streams = [("tile", o, c) for o, c in lay.jpeg_tiles[:3]] + [("tables", o, c) for o, c in lay.tables[:1]]
    for what, off, cnt in streams:
        tag = f"jpeg-{what}@{off:#x}"

        def seg_patch(marker: int, rel: int, blob: bytes, off=off, cnt=cnt) -> Callable[[Path], None]:
            def f(p: Path) -> None:
                data = read(p, off, cnt)
                for m, pos, ln in _segments(data):
                    if m == marker:
                        _patch(p, off + pos + rel, blob)
                        return
            return f
        if what == "tile":
            out.append((f"{tag}:no-EOI", lambda p, off=off, cnt=cnt: _patch(p, off + cnt - 2, b"\0\0")))
            out.append((f"{tag}:cut-scan", lambda p, off=off, cnt=cnt: _patch(p, off + cnt // 2, b"\xff\xd9" + b"\0" * 8)))

            def rst_chaos(p: Path, off=off, cnt=cnt, seed=rng.randrange(1 << 30)) -> None:
                r = random.Random(seed)
                data = bytearray(read(p, off, cnt))
                for i in range(len(data) - 1):
                    if data[i] == 0xFF and 0xD0 <= data[i + 1] <= 0xD7:
                        data[i + 1] = r.choice([0xD0 + r.randrange(8), 0xD9, 0xD8, 0xC4, 0x00])
                    elif data[i] == 0xFF and data[i + 1] == 0 and r.random() < 0.02:
                        data[i + 1] = 0xD0 + r.randrange(8)
                _patch(p, off, bytes(data))
            out.append((f"{tag}:rst-chaos", rst_chaos))
        for sof in (0xC0, 0xC1, 0xC2):
            for rel, blob, name in ((5, b"\0\0", "height0"), (5, b"\xff\xff\xff\xff", "65535x65535"),
                                    (7, b"\0\0", "width0"), (9, b"\xff", "255-components"), (4, b"\x0c", "12-bit"),
                                    (2, b"\x00\x02", "len2"), (2, b"\xff\xff", "len65535")):
                out.append((f"{tag}:SOF{sof & 15}-{name}", seg_patch(sof, rel, blob)))
        for rel, blob, name in ((4, b"\x3f", "table63"), (5, b"\xff" * 16, "counts255"), (2, b"\x00\x03", "len3"),
                                (2, b"\xff\xff", "len65535"), (4, b"\x00" + b"\0" * 16, "empty")):
            out.append((f"{tag}:DHT-{name}", seg_patch(0xC4, rel, blob)))
        for rel, blob, name in ((4, b"\xf3", "precision15"), (4, b"\x1f", "16bit-table9"), (5, b"\0" * 64, "zeros"),
                                (2, b"\x00\x00", "len0")):
            out.append((f"{tag}:DQT-{name}", seg_patch(0xDB, rel, blob)))
        for rel, blob, name in ((4, b"\xff", "ncomp255"), (4, b"\x00", "ncomp0"), (6, b"\xff", "tables-ff")):
            out.append((f"{tag}:SOS-{name}", seg_patch(0xDA, rel, blob)))
        out.append((f"{tag}:DRI-huge", seg_patch(0xDD, 4, b"\xff\xff")))
    return out


# ------------------------------------------------------------------ JPEG 2000 codestreams

def j2k_mutations(lay: TiffLayout) -> list[Mutation]:
    out: list[Mutation] = []
    for off, cnt in lay.j2k_tiles[:2]:
        tag = f"j2k@{off:#x}"

        def marker_patch(marker: bytes, rel: int, blob: bytes, off=off, cnt=cnt) -> Callable[[Path], None]:
            def f(p: Path) -> None:
                with open(p, "rb") as fh:
                    fh.seek(off)
                    data = fh.read(cnt)
                i = data.find(marker)
                if i >= 0:
                    _patch(p, off + i + rel, blob)
            return f
        siz = b"\xff\x51"
        for rel, blob, name in ((6, b"\xff\xff\xff\xff", "Xsiz-max"), (6, b"\0\0\0\0", "Xsiz0"),
                                (22, b"\0\0\0\1", "XTsiz1"), (22, b"\0\0\0\0", "XTsiz0"), (38, b"\x40\x00", "Csiz16384"),
                                (38, b"\0\0", "Csiz0"), (40, b"\x7f", "depth128"), (2, b"\xff\xff", "Lsiz-max"),
                                (14, b"\xff\xff\xff\x00", "XOsiz-huge")):
            out.append((f"{tag}:SIZ-{name}", marker_patch(siz, rel, blob)))
        cod = b"\xff\x52"
        for rel, blob, name in ((9, b"\x21", "levels33"), (9, b"\xff", "levels255"), (6, b"\xff\xff", "layers65535"),
                                (10, b"\x0f\x0f", "codeblock-huge"), (5, b"\x09", "progression9")):
            out.append((f"{tag}:COD-{name}", marker_patch(cod, rel, blob)))
        sot = b"\xff\x90"
        for rel, blob, name in ((6, b"\xff\xff\xff\xff", "Psot-max"), (6, b"\0\0\0\1", "Psot1"),
                                (4, b"\xff\xff", "Isot-max"), (10, b"\xff", "TPsot255"), (11, b"\x00", "TNsot0")):
            out.append((f"{tag}:SOT-{name}", marker_patch(sot, rel, blob)))
        out.append((f"{tag}:no-EOC", lambda p, off=off, cnt=cnt: _patch(p, off + cnt - 2, b"\0\0")))
        out.append((f"{tag}:SOC-lost", lambda p, off=off: _patch(p, off, b"\0\0")))
    return out


# ------------------------------------------------------------------ XML bombs in vendor XML

def _root_end(xml: str) -> tuple[int, str] | None:
    """(index just after the root element's start tag, root name)."""
    i = 0
    while True:
        i = xml.find("<", i)
        if i < 0 or i + 1 >= len(xml):
            return None
        if xml[i + 1] in "?!":
            i += 2
            continue
        j = xml.find(">", i)
        if j < 0:
            return None
        name = xml[i + 1:j].split()[0].rstrip("/")
        return (j + 1, name) if xml[j - 1] != "/" else None


def bombs(xml: str) -> list[tuple[str, str]]:
    got = _root_end(xml)
    if got is None:
        return []
    at, root = got
    body = xml[xml.find("<", xml.find("?>") + 2 if xml.startswith("<?") else 0):]
    at -= len(xml) - len(body)
    decl = '<?xml version="1.0" encoding="UTF-8"?>'

    def with_dtd(dtd: str, inner: str) -> str:
        return f"{decl}<!DOCTYPE {root} [{dtd}]>" + body[:at] + inner + body[at:]
    laughs = '<!ENTITY l0 "lollollollollollollollollollol">' + "".join(
        f'<!ENTITY l{k} "{("&l%d;" % (k - 1)) * 10}">' for k in range(1, 10))
    quad = '<!ENTITY a "' + "A" * 50000 + '">'
    return [
        ("billion-laughs", with_dtd(laughs, "&l9;")),
        ("quadratic", with_dtd(quad, "&a;" * 20000)),
        ("external-entity", with_dtd('<!ENTITY e SYSTEM "file:///etc/passwd">', "&e;")),
        ("external-dtd", f'{decl}<!DOCTYPE {root} SYSTEM "http://127.0.0.1:9/evil.dtd">' + body),
        ("parameter-entity", with_dtd('<!ENTITY % p SYSTEM "http://127.0.0.1:9/p.dtd"> %p;', "")),
        ("huge-attribute", body[:at - 1] + ' zz="' + "B" * (3 << 20) + '">' + body[at:]),
        ("deep-nesting", body[:at] + "<n>" * 100000 + "</n>" * 100000 + body[at:]),
        ("many-attributes", body[:at - 1] + "".join(f' a{k}="{k}"' for k in range(60000)) + ">" + body[at:]),
        ("not-closed", body[: len(body) // 2]),
        ("bad-utf8", body[:at] + "\udcff" + body[at:]),
        ("utf16-declared", '<?xml version="1.0" encoding="UTF-16"?>' + body),
    ] + dropped_leaves(xml)


_LEAF = re.compile(r"<([A-Za-z_][\w:.-]*)(?:\s[^<>]*)?(?:/>|>[^<>]*</\1>)")


def dropped_leaves(xml: str, limit: int = 16) -> list[tuple[str, str]]:
    """The XML with the last element of each leaf name left out (an SCN without its main image's
    objective crashed OpenSlide, and with it the run: red team round 4)."""
    last: dict[str, re.Match] = {}
    for m in _LEAF.finditer(xml):
        last[m.group(1)] = m
    return [(f"drop-{name.replace(':', '_')}", xml[:m.start()] + xml[m.end():])
            for name, m in list(last.items())[:limit]]


def xml_mutations(lay: TiffLayout) -> list[Mutation]:
    """Each bomb written at the end of the file and the tag's entry re-pointed at it."""
    out: list[Mutation] = []
    big = lay.kind == "bigtiff"
    cw = 8 if big else 4
    for k, tag, text in lay.xml_tags[:2]:
        pos = lay.entry_pos[(k, tag)]
        for name, bomb in bombs(text):
            raw = bomb.encode("utf-8", "surrogateescape") + b"\0"

            def f(p: Path, pos=pos, raw=raw) -> None:
                end = p.stat().st_size
                end += end & 1
                with open(p, "r+b") as fh:
                    fh.seek(end)
                    fh.write(raw)
                _patch(p, pos + 2, _uint(lay.bo, 2, 2) + _uint(lay.bo, cw, len(raw)) + _uint(lay.bo, cw, end))
            out.append((f"xml-ifd{k}.tag{tag}:{name}", f))
    return out


# ------------------------------------------------------------------ MIRAX

def _ini_edit(fn: Callable[[str], str | bytes]) -> Callable[[Path], None]:
    def f(p: Path) -> None:
        ini = p.with_suffix("") / "Slidedat.ini"
        text = ini.read_bytes().decode("utf-8-sig")
        new = fn(text)
        ini.write_bytes(new if isinstance(new, bytes) else b"\xef\xbb\xbf" + new.encode("utf-8", "surrogateescape"))
    return f


def _set_key(key: str, value: str) -> Callable[[str], str]:
    def f(text: str) -> str:
        lines = text.split("\r\n")
        return "\r\n".join(f"{key} = {value}" if ln.split("=")[0].strip() == key else ln for ln in lines)
    return f


def mrxs_mutations(path: Path, rng: random.Random) -> list[Mutation]:
    out: list[Mutation] = []
    folder = path.with_suffix("")
    for key, vals in {"HIER_0_COUNT": ["1000000000", "-1", "0", "x"], "IMAGENUMBER_X": ["2147483647", "-5", "0"],
                      "IMAGENUMBER_Y": ["99999999999999999999"], "DIGITIZER_WIDTH": ["0", "1000000000"],
                      "FILE_COUNT": ["100000", "0"], "FILE_0": ["../../../../etc/passwd", "/dev/zero", "Index.dat",
                                                                  "", "Slidedat.ini"],
                      "INDEXFILE": ["../s.mrxs", "/dev/zero", "Data0000.dat", "nope.dat"],
                      "NONHIER_COUNT": ["100000000"], "NONHIER_0_COUNT": ["-3", "70000"],
                      "CameraImageDivisionsPerSide": ["0", "-1", "1000000"], "HIER_COUNT": ["0", "5000000"],
                      "IMAGE_FORMAT": ["BMP", ""], "OVERLAP_X": ["-100000", "1e400"],
                      "HIER_0_VAL_0_SECTION": ["GENERAL", "NOPE"], "SLIDE_ID": ["", "x" * 4096]}.items():
        for v in vals:
            out.append((f"ini:{key}={v[:20]}", _ini_edit(_set_key(key, v))))
    out.append(("ini:binary", _ini_edit(lambda t: os.urandom(4096))))
    out.append(("ini:empty", _ini_edit(lambda t: b"")))
    out.append(("ini:utf16", _ini_edit(lambda t: t.encode("utf-16"))))
    out.append(("ini:nul-bytes", _ini_edit(lambda t: t.replace("=", "=\0"))))
    out.append(("ini:huge-line", _ini_edit(lambda t: t + "COMMENT = " + "C" * (6 << 20) + "\r\n")))
    out.append(("ini:many-sections", _ini_edit(lambda t: t + "".join(f"[S{k}]\r\nK=1\r\n" for k in range(200000)))))
    out.append(("ini:dup-sections", _ini_edit(lambda t: t + t)))
    out.append(("ini:no-general", _ini_edit(lambda t: t.replace("[GENERAL]", "[GENERALX]"))))
    out.append(("ini:no-equals", _ini_edit(lambda t: t.replace(" = ", " "))))
    out.append(("ini:interpolation", _ini_edit(lambda t: t + "[X]\r\na = %(b)s\r\nb = %(a)s\r\n")))
    for k in range(0, 20):
        out.append((f"ini:truncate{k}", _ini_edit(lambda t, k=k: t[: len(t) * k // 20])))
    index = folder / "Index.dat"
    n = index.stat().st_size
    words = list(range(37, n - 3, 4))
    for pos in sorted(rng.sample(words, min(len(words), 40))):
        for v in (-1, 0x7FFFFFFF, pos, 0, n, -(2 ** 31)):
            out.append((f"index@{pos}={v}", lambda p, pos=pos, v=v: _patch(p.with_suffix("") / "Index.dat", pos,
                                                                         struct.pack("<i", v))))
    for cut in (0, 5, 36, 37, 41, 45, n // 2, n - 4):
        out.append((f"index-truncate@{cut}", lambda p, cut=cut: os.truncate(p.with_suffix("") / "Index.dat", cut)))
    out.append(("index-version", lambda p: _patch(p.with_suffix("") / "Index.dat", 0, b"99.99")))
    data = folder / "Data0000.dat"
    dn = data.stat().st_size
    for cut in (0, 40, dn // 3, dn - 10):
        out.append((f"data-truncate@{cut}", lambda p, cut=cut: os.truncate(p.with_suffix("") / "Data0000.dat", cut)))
    for pos in sorted(rng.sample(range(0, dn - 64), 12)):
        out.append((f"data-garbage@{pos}", lambda p, pos=pos: _patch(p.with_suffix("") / "Data0000.dat", pos,
                                                                     b"\xff\xd9\xff\xd8\xff\xfe\xff\xff" * 4)))
    out.append(("data-missing", lambda p: (p.with_suffix("") / "Data0000.dat").unlink()))
    out.append(("index-missing", lambda p: (p.with_suffix("") / "Index.dat").unlink()))
    out.append(("ini-missing", lambda p: (p.with_suffix("") / "Slidedat.ini").unlink()))
    out.append(("ini-is-dir", lambda p: ((p.with_suffix("") / "Slidedat.ini").unlink(),
                                         (p.with_suffix("") / "Slidedat.ini").mkdir())))
    out.append(("data-is-devzero", lambda p: ((p.with_suffix("") / "Data0000.dat").unlink(),
                                              (p.with_suffix("") / "Data0000.dat").symlink_to("/dev/zero"))))
    out.append(("index-is-fifo", lambda p: ((p.with_suffix("") / "Index.dat").unlink(),
                                            os.mkfifo(p.with_suffix("") / "Index.dat"))))
    out.append(("folder-missing", lambda p: __import__("shutil").rmtree(p.with_suffix(""))))
    return out


# ------------------------------------------------------------------ DICOM

def dicom_mutations(series: Path, main: Path, rng: random.Random) -> list[Mutation]:
    """fuzz/dicom.py's ops (hostile lengths, VRs, truncation, syntaxes, nesting, encapsulation,
    duplicates, retags, private markers) on one instance of the series, chosen with ``rng``."""
    from fuzz import dicom as dfuzz

    seed = dfuzz.load_dicom_seed(main, [])
    out: list[Mutation] = []
    name = main.name
    for op in range(dfuzz.N_DICOM_OPS):
        for _ in range(6):
            ops = [(op, rng.randrange(1 << 16), rng.randrange(1 << 16))]
            out.append((f"dicom-op{op}:{ops[0][1]},{ops[0][2]}",
                        lambda p, ops=ops: (p / name).write_bytes(dfuzz.mutate(seed, ops))))
    pix = [e for e in seed.elems if e.tag == 0x7FE00010]
    if pix:
        e = pix[0]
        for v in (0xFFFFFFF0, 0x7FFFFFFF):
            out.append((f"dicom-pixeldata-len={v:#x}", lambda p, e=e, v=v: _patch(p / name, e.len_pos,
                                                                                 struct.pack("<I", v))))
    big = max((e for e in seed.elems if not e.in_pixels and e.len_width == 4 and e.tag >> 16 != 0xFFFE),
              key=lambda e: e.length, default=None)
    if big is not None:
        out.append(("dicom-element-len-4GB", lambda p, e=big: _patch(p / name, e.len_pos, b"\xf0\xff\xff\xff")))
    for depth in (200, 5000):
        out.append((f"dicom-nesting-{depth}", lambda p, d=depth: (p / name).write_bytes(
            dfuzz.mutate(seed, [(5, 7, d - 1)]))))
    items = [e for e in seed.elems if e.in_pixels and e.tag == dfuzz.ITEM]
    if items:  # the Basic Offset Table item removed: the first frame takes its place
        bot = items[0]
        out.append(("dicom-no-BOT", lambda p, b=bot: (p / name).write_bytes(
            seed.data[:b.pos] + seed.data[b.end + b.length:])))
    for cut in sorted(rng.sample(range(132, len(seed.data)), 6)) + [0, 128, 132]:
        out.append((f"dicom-truncate@{cut}", lambda p, cut=cut: os.truncate(p / name, cut)))
    return out


# ------------------------------------------------------------------ text spelled in numbers (round 5)
_NUMBER_TYPES = {3: 2, 4: 4, 5: 4, 8: 2, 9: 4, 10: 4, 11: 4, 12: 8, 16: 8, 17: 8}
_NOT_VALUES = {273, 279, 324, 325, 330, 34665, 34853, 40965}  # data and child IFD pointers: structure


def spells_text_mutations(path: Path, needles: tuple[str, ...], rng: random.Random) -> list[Mutation]:
    """Numeric tag values rewritten in place so their bytes spell a planted value: as ASCII, and
    for SHORT arrays one character per value (UTF-16 in the file's byte order). The length and
    type stay, so the file stays valid; a published output must not hold the value (the value
    policy reads stored numbers for words since round 5; before, numbers were never looked at)."""
    from wsideid.tiff.container import read_tiff

    if not needles:
        return []
    tf = read_tiff(path)
    big = tf.kind == "bigtiff"
    head, esize, cw = (8, 20, 8) if big else (2, 12, 4)
    out: list[Mutation] = []
    for k, ifd in enumerate(tf.all_ifds()):
        for i, e in enumerate(ifd.entries.values()):
            if e.type not in _NUMBER_TYPES or e.tag in _NOT_VALUES:
                continue
            at = e.value_offset if e.value_offset is not None else ifd.offset + head + i * esize + 4 + cw
            size = e.count * _NUMBER_TYPES[e.type] * (2 if e.type in (5, 10) else 1)
            fits = [n for n in needles if len(n) <= size]
            if fits:
                n = rng.choice(fits)
                blob = n.encode().ljust(size, b" ")
                out.append((f"spells-text:ifd{k}.tag{e.tag}.ascii", lambda p, at=at, blob=blob: _patch(p, at, blob)))
            units = [n for n in needles if len(n) <= e.count] if e.type == 3 else []
            if units:
                n = rng.choice(units)
                blob = b"".join(_uint(tf.byteorder, 2, ord(c)) for c in n.ljust(e.count))
                out.append((f"spells-text:ifd{k}.tag{e.tag}.utf16", lambda p, at=at, blob=blob: _patch(p, at, blob)))
    return out
