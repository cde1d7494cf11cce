"""Structure-aware mutation fuzzing of the DICOM pipeline (issue 17 item 8).

Same shape as the TIFF harness: a seed file is walked once to find where its
element headers, lengths, VRs, the transfer syntax and the encapsulated
pixel items live; a mutation is a list of integer triples ``(op, target,
value)`` so that hypothesis can generate and shrink it and a crasher is one
line in CRASHERS. The oracle is ``harness.run_case`` with a DICOM check of
the published output: it parses again with pydicom, and neither the output
nor its audit holds a planted value, a value the plan removed, or the
marker that some mutations plant (in a private element, deep in nested
sequences, or in an extra pixel fragment).

Ops: 0 hostile length, 1 VR swap (private/unknown/wrong VRs), 2 truncation,
3 transfer syntax swap, 4 byte overwrite in the header, 5 deep nesting of
undefined-length sequences, 6 broken encapsulation (BOT, fragments,
delimiters), 7 duplicated element, 8 retagged element, 9 private element
with the marker under a hostile VR.
"""

from __future__ import annotations

import functools
import os
import struct
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from .harness import TESTDATA, Op, Violation, _needles_in, oracle_needles, published_output

MARKER = "WSIDEID-PLANTED-MARKER-7Q"
N_DICOM_OPS = 10
REAL_DICOM_SEEDS = ["dicom/openslide-python_boxes_0.dcm", "dicom/highdicom_sm_image.dcm",
                    "dicom/mi_test_wsi_label_barcodevalue.dcm", "dicom/highdicom_sm_image_jpegls.dcm",
                    "dicom/wsi2dcm_jpeg.dcm"]
LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"UC", b"UN", b"UR", b"UT", b"SV", b"UV"}
UNDEFINED = 0xFFFFFFFF
ITEM, ITEM_END, SEQ_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
IMPLICIT_LE = "1.2.840.10008.1.2"


@dataclass
class Elem:
    pos: int  # where the tag starts
    tag: int  # group << 16 | element
    vr_pos: int | None  # None: implicit VR or an item/delimiter
    len_pos: int
    len_width: int
    length: int
    end: int  # end of the header (value starts here)
    in_pixels: bool = False


@dataclass
class DicomSeed:
    name: str
    data: bytes
    planted: list[str]
    suffix: str = ".dcm"
    elems: list[Elem] = field(default_factory=list)
    ts_elem: int | None = None
    pixel_start: int = 0  # end of the (7FE0,0010) header, or the file size


def walk(data: bytes) -> tuple[list[Elem], int | None, int]:
    """Every element header of a Part 10 file, descending into sequences, items and pixel fragments."""
    elems: list[Elem] = []
    pos = 132
    implicit = False
    ts_index = None
    pixel_start = len(data)
    in_pixels = False
    while pos + 8 <= len(data):
        g, e = struct.unpack_from("<HH", data, pos)
        tag = g << 16 | e
        if g == 0xFFFE:
            length = struct.unpack_from("<I", data, pos + 4)[0]
            elems.append(Elem(pos, tag, None, pos + 4, 4, length, pos + 8, in_pixels))
            pos += 8
            if in_pixels and tag == ITEM and length != UNDEFINED:
                pos += length
            if tag == SEQ_END and in_pixels:
                in_pixels = False
            continue
        explicit = g == 0x0002 or not implicit
        if explicit:
            vr = data[pos + 4:pos + 6]
            if vr in LONG_VRS:
                if pos + 12 > len(data):
                    break
                length = struct.unpack_from("<I", data, pos + 8)[0]
                el = Elem(pos, tag, pos + 4, pos + 8, 4, length, pos + 12)
            else:
                length = struct.unpack_from("<H", data, pos + 6)[0]
                el = Elem(pos, tag, pos + 4, pos + 6, 2, length, pos + 8)
        else:
            vr = b""
            length = struct.unpack_from("<I", data, pos + 4)[0]
            el = Elem(pos, tag, None, pos + 4, 4, length, pos + 8)
        elems.append(el)
        if tag == 0x00020010:
            ts_index = len(elems) - 1
            implicit = data[el.end:el.end + length].rstrip(b"\0 ").decode("ascii", "replace") == IMPLICIT_LE
        if tag == 0x7FE00010:
            pixel_start = el.end
            if length == UNDEFINED:
                in_pixels = True
                pos = el.end
                continue
            break
        if length == UNDEFINED or vr == b"SQ":
            pos = el.end  # descend: the sequence's items follow as elements
        else:
            pos = el.end + length
    return elems, ts_index, pixel_start


def load_dicom_seed(path: str | os.PathLike, planted: Sequence[str]) -> DicomSeed:
    data = Path(path).read_bytes()
    elems, ts, pix = walk(data)
    return DicomSeed(Path(path).name, data, sorted(set(planted) | {MARKER}), elems=elems, ts_elem=ts,
                     pixel_start=pix)


def _element(tag: int, vr: bytes, value: bytes, implicit: bool) -> bytes:
    g, e = tag >> 16, tag & 0xFFFF
    if implicit and g != 2:
        return struct.pack("<HHI", g, e, len(value)) + value
    if vr in LONG_VRS or len(value) > 0xFFFF:
        return struct.pack("<HH", g, e) + vr[:2].ljust(2) + b"\0\0" + struct.pack("<I", len(value)) + value
    return struct.pack("<HH", g, e) + vr[:2].ljust(2) + struct.pack("<H", len(value)) + value


def _implicit(seed: DicomSeed) -> bool:
    if seed.ts_elem is None:
        return False
    el = seed.elems[seed.ts_elem]
    return seed.data[el.end:el.end + el.length].rstrip(b"\0 ").decode("ascii", "replace") == IMPLICIT_LE


_HOSTILE_LENGTHS = [UNDEFINED, 0xFFFFFFFE, 0x7FFFFFFF, 0x10000000, 1, 0, 0xFFFF, 3]
_VRS = [b"UN", b"OB", b"SQ", b"UT", b"ZZ", b"\0\0", b"ox", b"LO", b"DS", b"AT", b"OW", b"US", b"FD"]
_SYNTAXES = ["1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2", "1.2.840.10008.1.2.1.99",
             "1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.5", "not-a-uid", "",
             "1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.201"]
_TAGS = [0x00100010, 0x7FE00010, ITEM, SEQ_END, 0x00020010, 0x00080016, 0x00280010, 0x00091001, 0x00280100,
         0x00480006, 0x00209161]


def mutate(seed: DicomSeed, ops: Sequence[Op]) -> bytes:
    """Apply ops in order; positions come from the unmutated seed, so later ops may land oddly (that is fine)."""
    buf = bytearray(seed.data)
    elems = seed.elems
    implicit = _implicit(seed)
    inserts: list[tuple[int, bytes]] = []
    cut: int | None = None
    for op, a, b in ops:
        el = elems[a % len(elems)] if elems else None
        if el is None:
            continue
        if op == 0:
            v = _HOSTILE_LENGTHS[b % len(_HOSTILE_LENGTHS)] if b % 3 else (el.length + (b >> 2) - 32) & 0xFFFFFFFF
            v &= (1 << (8 * el.len_width)) - 1
            buf[el.len_pos:el.len_pos + el.len_width] = v.to_bytes(el.len_width, "little")
        elif op == 1:
            if el.vr_pos is not None:
                buf[el.vr_pos:el.vr_pos + 2] = _VRS[b % len(_VRS)]
        elif op == 2:
            cut = min(cut or len(buf), max(132, a * len(seed.data) >> 16))
        elif op == 3 and seed.ts_elem is not None:
            ts = elems[seed.ts_elem]
            uid = _SYNTAXES[b % len(_SYNTAXES)].encode()
            uid += b"\0" * (len(uid) & 1)
            new = uid[:ts.length].ljust(ts.length, b"\0") if b & 1 else None
            if new is not None:
                buf[ts.end:ts.end + ts.length] = new
            else:  # rewritten at its own length (the group length goes stale); ends the op list
                inserts.append((ts.pos, _element(0x00020010, b"UI", uid, False)))
                return _finish(buf, inserts, cut, removed=(ts.pos, ts.end + ts.length))
        elif op == 4:
            end = max(133, seed.pixel_start)
            p = 132 + (a * (end - 132) >> 16)
            if p < len(buf):
                buf[p] = b & 0xFF
        elif op == 5:
            depth = 1 + b % 3000
            inner = _element(0x00091010, b"LO", MARKER.encode() + b" ", implicit)
            sq_head = (struct.pack("<HHI", 0x0009, 0x1002, UNDEFINED) if implicit
                       else struct.pack("<HH", 0x0009, 0x1002) + b"SQ\0\0" + struct.pack("<I", UNDEFINED))
            item = struct.pack("<HHI", 0xFFFE, 0xE000, UNDEFINED)
            open_ = (sq_head + item) * depth
            close = (struct.pack("<HHI", 0xFFFE, 0xE00D, 0) + struct.pack("<HHI", 0xFFFE, 0xE0DD, 0)) * depth
            priv = _element(0x00090010, b"LO", b"WSIDEID FUZZ", implicit)
            target = el if not el.in_pixels and el.vr_pos is not None or implicit else elems[0]
            inserts.append((target.pos, priv + open_ + inner + close))
        elif op == 6:
            items = [x for x in elems if x.in_pixels]
            if not items:
                continue
            it = items[a % len(items)]
            k = b % 6
            if k == 0:
                v = _HOSTILE_LENGTHS[(b >> 3) % len(_HOSTILE_LENGTHS)]
                buf[it.len_pos:it.len_pos + 4] = v.to_bytes(4, "little")
            elif k == 1:
                buf[it.pos:it.pos + 4] = struct.pack("<HH", 0xFFFE, 0xE0DD)
            elif k == 2:
                buf[it.pos:it.pos + 4] = struct.pack("<HH", 0xFFFE, 0xE00D)
            elif k == 3:  # the BOT (first item) claims a length that is no multiple of 4
                first = items[0]
                buf[first.len_pos:first.len_pos + 4] = ((b >> 3) * 4 + 1 + (b & 2)).to_bytes(4, "little")
            elif k == 4:  # an extra fragment holding text
                frag = (MARKER + " " + MARKER).encode()
                inserts.append((it.pos, struct.pack("<HHI", 0xFFFE, 0xE000, len(frag)) + frag))
            else:  # the sequence delimiter is gone
                ends = [x for x in items if x.tag == SEQ_END]
                if ends:
                    buf[ends[-1].pos:ends[-1].pos + 8] = b"\0" * 8
        elif op == 7:
            src = el
            stop = src.end if src.length == UNDEFINED or src.tag >> 16 == 0xFFFE else src.end + src.length
            chunk = bytes(seed.data[src.pos:min(stop, src.pos + (1 << 20))])
            dst = elems[b % len(elems)]
            inserts.append((dst.pos, chunk))
        elif op == 8:
            t = _TAGS[b % len(_TAGS)] if b % 4 else ((b | 1) << 16 | a) & 0xFFFFFFFF
            buf[el.pos:el.pos + 4] = struct.pack("<HH", t >> 16, t & 0xFFFF)
        elif op == 9:
            vr = [b"UN", b"OB", b"UT", b"LT", b"ST", b"ZZ", b"SH", b"PN"][b % 8]
            val = (MARKER + "^" + MARKER).encode()
            if b & 8:
                val += b"X"  # odd length
            group = 0x0009 + 2 * ((b >> 4) % 8)
            blob = (_element(group << 16 | 0x0010, b"LO", b"ACME PRIVATE", implicit)
                    + _element(group << 16 | 0x1001, vr, val, implicit))
            target = el if not el.in_pixels else elems[0]
            if target.tag >> 16 != 2:
                inserts.append((target.pos, blob))
    return _finish(buf, inserts, cut)


def _finish(buf: bytearray, inserts: list[tuple[int, bytes]], cut: int | None,
            removed: tuple[int, int] | None = None) -> bytes:
    """Apply insertions back to front (positions from the seed stay valid), the removal, then the cut."""
    out = bytes(buf) if removed is None else bytes(buf)
    for pos, blob in sorted(inserts, key=lambda x: -x[0]):
        if removed is not None and pos == removed[0]:
            out = out[:removed[0]] + blob + out[removed[1]:]
            removed = None
        else:
            out = out[:pos] + blob + out[pos:]
    if cut is not None:
        out = out[:cut]
    return out


def check_published_dicom(res, out: Path, planted: Sequence[str]) -> None:
    """A published DICOM output: verified, parseable, alone with its audit, and free of every needle."""
    import pydicom

    output, folder = published_output(res)
    files = [output] if output.is_file() else sorted(p for p in output.rglob("*") if p.is_file())
    needles = oracle_needles(res, planted)
    for f in files:
        try:
            pydicom.dcmread(f, stop_before_pixels=True)
        except Exception as exc:  # noqa: BLE001
            raise Violation(f"published file does not parse again: {type(exc).__name__}: {exc}") from None
        leaked = _needles_in(f.read_bytes(), needles)
        if leaked:
            raise Violation(f"published output still holds {leaked}")
    # The audit's own vocabulary ("unknown", "remove") is no leak: short plain words that the plan
    # removed (a seed's "Unknown" placeholder) are searched in the output only; planted values always.
    audit_needles = [v for v in needles if v in planted or not (v.isalpha() and len(v) < 10)]
    leaked = _needles_in((folder / (output.name + ".audit.json")).read_bytes(), audit_needles)
    if leaked:
        raise Violation(f"audit record holds {leaked}")


def _removed_values(path: Path) -> list[str]:
    from wsideid.pipeline import inspect
    plan = inspect(path)
    return sorted({v for v in plan.removed_values() if len(v) >= 6 and not (v.startswith("<") and v.endswith(">"))
                   and not v.replace(".", "").isdigit()})


@functools.lru_cache(maxsize=None)
def real_dicom_seeds() -> tuple[DicomSeed, ...]:
    out = []
    for rel in REAL_DICOM_SEEDS:
        p = TESTDATA / rel
        if p.exists():
            out.append(load_dicom_seed(p, _removed_values(p)))
    return tuple(out)


@functools.lru_cache(maxsize=None)
def synthetic_dicom_seeds() -> tuple[DicomSeed, ...]:
    """The two smallest instances of a synthetic series with planted PHI (empty without wsidicomizer)."""
    try:
        from wsideid.synth import PLANTED, make_dicom
    except ImportError:
        return ()
    folder = Path(tempfile.mkdtemp(prefix="wsideid-fuzz-dcm-"))
    try:
        make_dicom(str(folder))
    except ImportError:
        return ()
    files = sorted((p for p in folder.iterdir() if p.is_file()), key=lambda p: p.stat().st_size)[:2]
    seeds = tuple(load_dicom_seed(p, PLANTED) for p in files)
    for i, s in enumerate(seeds):
        s.name = f"synth-{i}.dcm"
    for p in folder.iterdir():
        p.unlink()
    folder.rmdir()
    return seeds


def all_dicom_seeds() -> tuple[DicomSeed, ...]:
    return synthetic_dicom_seeds() + real_dicom_seeds()
