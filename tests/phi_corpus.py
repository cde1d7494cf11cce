"""A corpus of slides with fake PHI planted in every carrier an attacker or a
scanner vendor could use (issue 10 "Show", plus the cheap issue 11 carriers).

Every slide is built by the project's own code (wsideid.synth for pixels and
labels, wsideid.tiff.writer for the TIFF family, wsidicomizer + pydicom for
DICOM) from a *clean* base, so that each slide holds the PHI of exactly one
carrier class: a leak is attributed to its class, and a refusal caused by one
class cannot hide a leak of another.

Each planted value is a ``Plant``: the carrier class, where it sits, and the
PHI strings (``phi``) that must not reach OUTDIR. ``needles()`` expands them
the way issue 10 asks the verifier to: whole value, name components of three
characters or more, and every spelling of a planted date.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from wsideid.synth import _jpeg_with_restarts, label_image, tissue

# ---------------------------------------------------------------- fake identities
NAME = "DOE^JANE"                     # DICOM-style person name
NAME2 = "Jane Doe"
MRN = "4455667"
MRN_TOKEN = "MRN4455667"
HOST = "PATHWS-DOEJ-07"
UNAME = "Zoë Müller-Łukasiewicz"       # non-ASCII name
ACC = "S19-88231"                      # accession-like identifier the user knows (--identifier)
FILE_STEM = "DOE_JANE_MRN4455667"
DATE = dt.date(2019, 12, 31)
# Item 5 of issue 10, verbatim, plus the common spellings.
DATE_SPELLINGS = ["12.31.2019", "31Dec2019", "2019_12_31", "Dec-31-2019", "31122019", "31st December 2019",
                  "12 31 2019", "2019-Dec-31", "31. Dezember 2019", "2019年12月31日",
                  "2019-12-31", "20191231", "12/31/2019", "31/12/2019", "2019:12:31", "31.12.2019",
                  "2019/12/31", "Dec 31, 2019", "December 31, 2019", "31 December 2019", "31-Dec-2019",
                  "12/31/19"]

RESEARCH_ID = "RID-0042"
# Words the tool writes itself and that are no PHI, never needles.
_NOT_PHI = {"mrn", "the", "and", "jpeg", "aperio", "image", "library", "slide", "patient", "name"}


@dataclass(frozen=True)
class Plant:
    carrier: str          # carrier class
    where: str            # tag / key / attribute it sits in
    raw: str              # the value as planted (may hold NUL/CR/LF)
    phi: tuple[str, ...]  # what must not survive
    date: bool = False    # phi holds dates: all their spellings are needles


@dataclass
class CorpusSlide:
    fmt: str                 # svs | ndpi | tiff | dicom
    carrier: str
    path: Path               # file, or folder of DICOM instances
    plants: list[Plant]
    identifiers: list[str] = field(default_factory=list)  # given with --identifier
    new_id: str | None = RESEARCH_ID
    label: str | None = None  # --label

    @property
    def id(self) -> str:
        return f"{self.fmt}-{self.carrier}"


# ---------------------------------------------------------------- needles
def _components(value: str) -> list[str]:
    parts = re.split(r"[\s\^/,;:=_\-.()\[\]<>\"'|\\&?@#]+", value)
    return [p for p in parts if len(p) >= 3 and p.lower() not in _NOT_PHI]


def date_spellings(d: dt.date) -> list[str]:
    out = set(DATE_SPELLINGS) if d == DATE else set()
    out |= {d.strftime(f) for f in ("%Y-%m-%d", "%Y%m%d", "%m/%d/%Y", "%d/%m/%Y", "%Y:%m:%d", "%d.%m.%Y",
                                     "%Y/%m/%d", "%d%b%Y", "%b %d, %Y", "%d %B %Y", "%m/%d/%y")}
    return sorted(out)


def needles(plants: list[Plant]) -> list[str]:
    out: set[str] = set()
    for p in plants:
        for v in p.phi:
            out.add(v)
            if not p.date:  # a date's parts (a bare year) identify no one
                out.update(_components(v))
        if p.date:
            out.update(date_spellings(DATE))
    return sorted(out)


def encodings(needle: str) -> list[bytes]:
    """The needle, Unicode case-folded, in every encoding a carrier can hold."""
    out = set()
    for form in {needle, needle.casefold(), needle.lower(), needle.upper()}:
        for enc in ("utf-8", "latin-1", "utf-16-le", "utf-16-be"):
            try:
                out.add(form.encode(enc))
            except UnicodeEncodeError:
                pass
    return sorted(out)


def _views(data: bytes) -> list[str]:
    """Case-folded text views of bytes: Latin-1 (covers ASCII), UTF-8, UTF-16 LE/BE at both alignments."""
    views = [data.decode("latin-1").casefold(), data.decode("utf-8", "replace").casefold()]
    for enc in ("utf-16-le", "utf-16-be"):
        for start in (0, 1):
            chunk = data[start:]
            chunk = chunk[: len(chunk) // 2 * 2]
            views.append(chunk.decode(enc, "replace").casefold())
    return views


def find_in_bytes(data: bytes, wanted: list[str]) -> list[str]:
    views = _views(data)
    return [n for n in wanted if any(n.casefold() in v for v in views)]


def find_in_tree(root: Path, wanted: list[str]) -> dict[str, list[str]]:
    """Needle -> files (relative) holding it, in content or in the file's own name."""
    hits: dict[str, list[str]] = {}
    for dirpath, _dirs, files in os.walk(root):
        for name in files + _dirs:
            p = Path(dirpath) / name
            rel = str(p.relative_to(root))
            for n in find_in_bytes(rel.encode("utf-8"), wanted):
                hits.setdefault(n, []).append(rel + " (name)")
            if p.is_file():
                for n in find_in_bytes(p.read_bytes(), wanted):
                    hits.setdefault(n, []).append(rel)
    return hits


# ---------------------------------------------------------------- TIFF helpers
def _ascii(tag: int, text: str, encoding: str = "utf-8"):
    from wsideid.tiff.writer import OutEntry
    raw = text.encode(encoding) + b"\0"
    return OutEntry(tag, 2, len(raw), raw)


def _blob(tag: int, raw: bytes, typ: int = 1):
    from wsideid.tiff.writer import OutEntry
    return OutEntry(tag, typ, len(raw), raw)


def icc_profile(text: str) -> bytes:
    """A small but valid ICC v2 RGB display profile whose desc and cprt carry ``text``."""
    def xyz(x, y, z):
        return b"XYZ \0\0\0\0" + struct.pack(">3i", *(int(round(v * 65536)) for v in (x, y, z)))
    asc = text.encode("latin-1", "replace") + b"\0"
    uni = text.encode("utf-16-be")
    desc = (b"desc\0\0\0\0" + struct.pack(">I", len(asc)) + asc + struct.pack(">II", 0, len(text) + 1)
            + uni + b"\0\0" + b"\0\0" + b"\0" + b"\0" * 67)
    tags = [(b"desc", desc), (b"cprt", b"text\0\0\0\0" + asc), (b"wtpt", xyz(0.9642, 1.0, 0.8249)),
            (b"rXYZ", xyz(0.4361, 0.2225, 0.0139)), (b"gXYZ", xyz(0.3851, 0.7169, 0.0971)),
            (b"bXYZ", xyz(0.1431, 0.0606, 0.7141))]
    curv = b"curv\0\0\0\0" + struct.pack(">I", 1) + struct.pack(">H", 0x0233) + b"\0\0"
    tags += [(b"rTRC", curv), (b"gTRC", curv), (b"bTRC", curv), (b"dmdd", desc)]
    table_len = 4 + 12 * len(tags)
    off = 128 + table_len
    table, body = b"", b""
    for sig, data in tags:
        while (off + len(body)) % 4:
            body += b"\0"
        table += sig + struct.pack(">II", off + len(body), len(data))
        body += data
    size = off + len(body)
    header = (struct.pack(">I", size) + b"lcms" + bytes([2, 0x10, 0, 0]) + b"mntrRGB XYZ "
              + struct.pack(">6H", 2019, 12, 31, 10, 22, 33) + b"acspAPPL" + b"\0" * 4 + b"DOEJ" + b"JANE"
              + b"\0" * 8 + struct.pack(">I", 0) + xyz(0.9642, 1.0, 0.8249)[8:] + b"DOEJ" + b"\0" * 16
              + b"\0" * 28)
    assert len(header) == 128, len(header)
    return header + struct.pack(">I", len(tags)) + table + body


def rewrite_tiff(src: Path, dst: Path, overrides: dict[int, dict[int, object]] | None = None,
                 children: dict[int, dict[int, list]] | None = None,
                 tile_edit=None) -> None:
    """Copy ``src`` to ``dst`` with tags replaced/added (OutEntry) or deleted (None) per top IFD,
    child IFDs (entry dicts, or OutIfd with children of their own) added, and tiles rewritten
    by ``tile_edit(ifd_index, tile_index, bytes) -> bytes``."""
    from wsideid.tiff.container import read_tiff
    from wsideid.tiff.writer import OutEntry, OutIfd, write_tiff
    from wsideid.tiff_family.vendors.tiff_base import image_data
    tf = read_tiff(str(src))
    overrides, children = overrides or {}, children or {}
    outs = []
    for i, ifd in enumerate(tf.ifds):
        entries = {t: OutEntry(t, e.type, e.count, e.raw) for t, e in ifd.entries.items()
                   if t not in (273, 279, 324, 325)}
        for t, e in overrides.get(i, {}).items():
            if e is None:
                entries.pop(t, None)
            else:
                entries[t] = e
        data = image_data(ifd, tf.byteorder)
        if tile_edit is not None and data is not None:
            with open(src, "rb") as fh:
                for t in range(len(data.src_offsets)):
                    fh.seek(int(data.src_offsets[t]))
                    raw = fh.read(int(data.src_counts[t]))
                    new = tile_edit(i, t, raw)
                    if new is not None and new != raw:
                        data.replaced[t] = new
        kids = {tag: [ents if isinstance(ents, OutIfd) else OutIfd(ents) for ents in lst]
                for tag, lst in children.get(i, {}).items()}
        outs.append(OutIfd(entries, data, kids))
    write_tiff(str(src), str(dst), outs, tf.kind, tf.byteorder)


# ---------------------------------------------------------------- clean bases
W, H = 512, 384
APERIO_SOFTWARE = "Aperio Image Library v12.0.5"


def aperio_description(w: int, h: int, header: str | None = None, keys: dict[str, str] | None = None) -> str:
    header = header or f"{APERIO_SOFTWARE}\r\n{w}x{h} [0,0 {w}x{h}] (256x256) JPEG/RGB Q=70"
    base = {"AppMag": "20", "MPP": "0.4990", "StripeWidth": "2040", "Left": "25.69", "Top": "23.44"}
    base.update(keys or {})
    return header + "|" + "|".join(f"{k} = {v}" for k, v in base.items())


def make_clean_svs(path: Path, seed: int = 11) -> Path:
    import tifffile
    base = tissue(W, H, seed)
    common = dict(photometric="rgb", compression="jpeg", compressionargs={"level": 85}, metadata=None,
                  software=APERIO_SOFTWARE)
    with tifffile.TiffWriter(path, bigtiff=False) as tw:
        tw.write(base, tile=(256, 256), description=aperio_description(W, H), **common)
        thumb = base[::4, ::4]
        tw.write(thumb, rowsperstrip=16, subfiletype=0,
                 description=f"{APERIO_SOFTWARE}\r\n{W}x{H} -> {thumb.shape[1]}x{thumb.shape[0]} - ", **common)
        lvl1 = base[::2, ::2]
        tw.write(lvl1, tile=(256, 256), subfiletype=0,
                 description=f"{APERIO_SOFTWARE}\r\n{W}x{H} (256x256) -> {lvl1.shape[1]}x{lvl1.shape[0]} JPEG/RGB Q=70",
                 **common)
        lab = label_image(200, 200, ["SPECIMEN"])
        tw.write(lab, rowsperstrip=64, subfiletype=1, photometric="rgb", compression="lzw",
                 description=f"{APERIO_SOFTWARE}\r\nlabel 200x200", metadata=None)
        mac = np.concatenate([label_image(200, 200, ["SPECIMEN"]), tissue(400, 200, seed + 5)], axis=1)
        tw.write(mac, rowsperstrip=64, subfiletype=9, photometric="rgb", compression="jpeg",
                 description=f"{APERIO_SOFTWARE}\r\nmacro 600x200", metadata=None)
    return path


def make_clean_generic(path: Path, seed: int = 12) -> Path:
    import tifffile
    base = tissue(W, H, seed)
    with tifffile.TiffWriter(path) as tw:
        for k in range(3):
            img = base[:: 2 ** k, :: 2 ** k]
            tw.write(img, tile=(128, 128), photometric="rgb", compression="jpeg", metadata=None,
                     software="SlideScanner 1.0", subfiletype=1 if k else 0)
    return path


NDPI_PROPS = ("Product=C13210\r\nsystem.version=1.0\r\nexposure.time=20\r\nroi.barcode.macro=0,0,200,200\r\n"
              "ccd.width=2048\r\n")


def make_clean_ndpi(path: Path, seed: int = 13, props: str = NDPI_PROPS, software: str = "NDP.scan 2.5.89",
                    extra: dict[int, object] | None = None, macro_mag: float = -1.0) -> Path:
    """NDPI layout (as wsideid.synth.make_ndpi) with clean metadata; ``extra`` adds or replaces tags."""
    import tempfile

    from wsideid.tiff.writer import ImageData, OutEntry, OutIfd, write_tiff
    base = tissue(W, H, seed)
    images = []
    for k, mag in enumerate((20.0, 10.0, 5.0)):
        img = np.ascontiguousarray(base[:: 2 ** k, :: 2 ** k])
        data, starts = _jpeg_with_restarts(img)
        images.append((img.shape[1], img.shape[0], mag, data, starts))
    macro = np.concatenate([label_image(200, 200, ["SPECIMEN"]), tissue(400, 200, seed + 9)], axis=1)
    mdata, _ = _jpeg_with_restarts(macro)
    images.append((macro.shape[1], macro.shape[0], macro_mag, mdata, None))
    fd, blob = tempfile.mkstemp(suffix=".strips")
    with os.fdopen(fd, "wb") as fh:
        offsets = []
        for im in images:
            offsets.append(fh.tell())
            fh.write(im[3])

    def u32(tag, *vals, typ=4):
        fmt = {3: "H", 4: "I", 9: "i"}[typ]
        return OutEntry(tag, typ, len(vals), struct.pack(f"<{len(vals)}{fmt}", *vals))

    ifds = []
    for (w, h, mag, data, starts), off in zip(images, offsets):
        e = {
            256: u32(256, w), 257: u32(257, h), 258: u32(258, 8, 8, 8, typ=3), 259: u32(259, 7, typ=3),
            262: u32(262, 6, typ=3), 271: _ascii(271, "Hamamatsu"), 272: _ascii(272, "C13210"),
            277: u32(277, 3, typ=3), 278: u32(278, h), 282: OutEntry(282, 5, 1, struct.pack("<II", 45000, 1)),
            283: OutEntry(283, 5, 1, struct.pack("<II", 45000, 1)), 296: u32(296, 3, typ=3),
            305: _ascii(305, software), 65420: u32(65420, 1, typ=3),
            65421: OutEntry(65421, 11, 1, struct.pack("<f", mag)),
            65422: u32(65422, 1000, typ=9), 65423: u32(65423, -2000, typ=9), 65449: _ascii(65449, props),
        }
        e.update(extra or {})
        if starts is not None:
            e[65424] = u32(65424, 0, typ=9)
            e[65426] = u32(65426, *starts)
        ifds.append(OutIfd(e, ImageData(273, 279, np.array([off], np.int64), np.array([len(data)], np.int64))))
    try:
        write_tiff(blob, str(path), ifds, "ndpi", "<")
    finally:
        os.unlink(blob)
    return path


# ---------------------------------------------------------------- misread roles (issue 11)
LABEL_TEXT = [NAME2.upper(), MRN_TOKEN]
# layout -> (builder, (width, height) of the image that must not be published)
def make_svs_tiled_label(path: Path) -> tuple[int, int]:
    """SVS whose label is stored as tiles (NewSubfileType 1, "label" in its description)."""
    import tifffile
    base = tissue(W, H, 21)
    common = dict(photometric="rgb", compression="jpeg", compressionargs={"level": 85}, metadata=None,
                  software=APERIO_SOFTWARE)
    with tifffile.TiffWriter(path) as tw:
        tw.write(base, tile=(256, 256), description=aperio_description(W, H), **common)
        tw.write(base[::4, ::4], rowsperstrip=16, subfiletype=0, description=f"{APERIO_SOFTWARE}\r\n{W}x{H} -> 128x96 - ",
                 **common)
        tw.write(base[::2, ::2], tile=(256, 256), subfiletype=0,
                 description=f"{APERIO_SOFTWARE}\r\n{W}x{H} (256x256) -> 256x192 JPEG/RGB Q=70", **common)
        tw.write(label_image(384, 256, LABEL_TEXT), tile=(128, 128), subfiletype=1,
                 description=f"{APERIO_SOFTWARE}\r\nlabel 384x256", **common)
    return (384, 256)


def make_generic_extra_label(path: Path) -> tuple[int, int]:
    """Generic pyramid plus a tiled label of another aspect ratio, marked as a reduced image."""
    import tifffile
    base = tissue(W, H, 22)
    with tifffile.TiffWriter(path) as tw:
        for k in range(3):
            tw.write(base[:: 2 ** k, :: 2 ** k], tile=(128, 128), photometric="rgb", compression="jpeg",
                     metadata=None, subfiletype=1 if k else 0)
        tw.write(label_image(384, 128, LABEL_TEXT), tile=(128, 128), photometric="rgb", compression="jpeg",
                 metadata=None, subfiletype=1)
    return (384, 128)


def make_ndpi_macro_as_level(path: Path) -> tuple[int, int]:
    """NDPI whose macro says Magnification 0.5 instead of -1."""
    make_clean_ndpi(path, macro_mag=0.5)
    return (600, 200)


def make_generic_subifd_label(path: Path) -> tuple[int, int]:
    """Generic pyramid whose level 0 carries a tiled label of another aspect as a SubIFD."""
    import tifffile
    base = tissue(W, H, 23)
    with tifffile.TiffWriter(path) as tw:
        tw.write(base, tile=(128, 128), photometric="rgb", compression="jpeg", metadata=None, subifds=1)
        tw.write(label_image(384, 128, LABEL_TEXT), tile=(128, 128), photometric="rgb", compression="jpeg",
                 metadata=None, subfiletype=1)
        for k in (1, 2):
            tw.write(base[:: 2 ** k, :: 2 ** k], tile=(128, 128), photometric="rgb", compression="jpeg",
                     metadata=None, subfiletype=1)
    return (384, 128)


ROLE_LAYOUTS = {"tiff-subifd-label": (make_generic_subifd_label, ".tiff"),"svs-tiled-label": (make_svs_tiled_label, ".svs"),
                "tiff-extra-tiled-label": (make_generic_extra_label, ".tiff"),
                "ndpi-macro-magnification-0.5": (make_ndpi_macro_as_level, ".ndpi")}


# ---------------------------------------------------------------- JPEG stream carriers (issue 11)
def _insert_after_soi(tile: bytes, seg: bytes) -> bytes:
    return tile[:2] + seg + tile[2:]


def _com(text: bytes) -> bytes:
    return b"\xff\xfe" + struct.pack(">H", len(text) + 2) + text


def _app1(text: bytes) -> bytes:
    return b"\xff\xe1" + struct.pack(">H", len(text) + 2) + text


def jpegtables_with_text(tables: bytes, text: bytes) -> bytes:
    """JPEGTables with a COM segment and an unused quantisation table (id 3) whose 64 bytes spell ``text``."""
    q = (text + b" " * 64)[:64]
    dqt = b"\xff\xdb" + struct.pack(">H", 2 + 65) + bytes([3]) + q
    return tables[:2] + _com(text) + dqt + tables[2:]


def progressive_tile_with_comment(note: bytes, side: int = 256) -> bytes:
    """A full progressive JPEG of one tile, with a COM segment standing between two scans."""
    import io

    from PIL import Image
    buf = io.BytesIO()
    Image.fromarray(tissue(side, side, 5)).save(buf, "JPEG", quality=85, progressive=True)
    data = buf.getvalue()
    first = data.index(b"\xff\xda")
    second = data.index(b"\xff\xda", first + 2)
    # back up over any DHT that precedes the second scan, so the COM sits between scans
    while True:
        j = data.rfind(b"\xff\xc4", first, second)
        if j < 0:
            break
        if j + 4 + struct.unpack(">H", data[j + 2:j + 4])[0] - 2 == second:
            second = j
        else:
            break
    return data[:second] + _com(note) + data[second:]


# ---------------------------------------------------------------- TIFF-family classes
# class -> formats it applies to
TIFF_CLASSES: dict[str, tuple[str, ...]] = {
    "software_host": ("svs", "ndpi", "tiff"),
    "make_model": ("svs", "ndpi", "tiff"),
    "ascii_tags": ("svs", "ndpi", "tiff"),
    "image_description": ("svs", "tiff"),
    "kept_keys": ("svs", "ndpi"),
    "aperio_typed": ("svs",),
    "aperio_header": ("svs",),
    "ndpi_private": ("ndpi",),
    "xmp": ("svs", "ndpi", "tiff"),
    "exif_gps": ("svs", "tiff"),
    "iptc_photoshop": ("svs", "tiff"),
    "xp_utf16": ("svs", "tiff"),
    "icc_text": ("svs", "tiff"),
    "dates_free_text": ("svs", "ndpi", "tiff"),
    "unicode_names": ("svs", "ndpi", "tiff"),
    "label_replace": ("svs",),
    "file_name": ("svs", "ndpi", "tiff"),
    "user_identifiers": ("svs", "ndpi", "tiff"),
    "jpeg_segments": ("svs", "tiff"),
    "jpeg_trailing": ("svs", "tiff", "ndpi"),
    "jpeg_progressive": ("svs", "tiff"),
    "other_ifds": ("svs", "ndpi", "tiff"),
    "binary_ascii": ("svs", "tiff"),
    "slack_space": ("svs", "tiff"),
    "unknown_key_names": ("svs", "ndpi"),
    "typed_values": ("svs", "ndpi", "tiff"),
}

_EXT = {"svs": ".svs", "ndpi": ".ndpi", "tiff": ".tiff"}
_SOFT = {"svs": APERIO_SOFTWARE, "ndpi": "NDP.scan 2.5.89", "tiff": "SlideScanner 1.0"}
_DATES_TEXT = "; ".join(DATE_SPELLINGS[:10])


def build_tiff_class(fmt: str, carrier: str, bases: dict[str, Path], folder: Path) -> CorpusSlide:
    """One slide of format ``fmt`` with the PHI of ``carrier`` only."""
    folder.mkdir(parents=True, exist_ok=True)
    base = bases[fmt]
    dst = folder / f"{fmt}-{carrier}{_EXT[fmt]}"
    soft = _SOFT[fmt]
    P = lambda where, raw, *phi, date=False: Plant(carrier, where, raw, tuple(phi), date)  # noqa: E731
    plants: list[Plant] = []
    ov: dict[int, dict[int, object]] = {}
    kids: dict[int, dict[int, list]] = {}
    tile_edit = None
    slide_kw: dict = {}

    def tag(where: str, t: int, value: str, *phi: str, ifds=(0,), date=False, enc="utf-8"):
        plants.append(P(where, value, *phi, date=date))
        for i in ifds:
            ov.setdefault(i, {})[t] = _ascii(t, value, enc)

    def desc(keys=None, header=None):
        ov.setdefault(0, {})[270] = _ascii(270, aperio_description(W, H, header, keys))

    if carrier == "software_host":
        tag("Software", 305, f"{soft} on {HOST}", HOST)
        tag("HostComputer", 316, HOST, HOST)
    elif carrier == "make_model":
        if fmt == "ndpi":
            tag("Make", 271, f"Hamamatsu {NAME}", NAME, ifds=(0, 1, 2, 3))
            tag("Model", 272, f"C13210 {MRN_TOKEN}", MRN_TOKEN, ifds=(0, 1, 2, 3))
        else:
            tag("Make", 271, NAME2 + " Optics", NAME2)
            tag("Model", 272, MRN_TOKEN, MRN_TOKEN)
    elif carrier == "ascii_tags":
        tag("Artist", 315, NAME2, NAME2)
        tag("DocumentName", 269, f"{FILE_STEM}{_EXT[fmt]}", FILE_STEM)
        tag("PageName", 285, f"{NAME} page 1", NAME)
        tag("Copyright", 33432, f"(c) St Elsewhere for {NAME2}", NAME2, "Elsewhere")
        tag("ImageID", 32781, MRN_TOKEN, MRN_TOKEN)
        tag("private 65000", 65000, f"note {MRN} {NAME}", MRN, NAME)
        if fmt == "ndpi":
            tag("SlideLabel 65427", 65427, f"{ACC} {NAME}", NAME, ifds=(0, 1, 2, 3))
            tag("Barcode 65468", 65468, MRN_TOKEN, MRN_TOKEN, ifds=(0, 1, 2, 3))
            tag("ScannerSerial 65442", 65442, f"SN-{MRN}", MRN, ifds=(0, 1, 2, 3))
    elif carrier == "image_description":
        if fmt == "svs":
            desc({"Title": f"{NAME2} biopsy", "Filename": FILE_STEM, "User": "jdoe7", "ImageID": MRN_TOKEN,
                  "ScanScope ID": HOST, "CustomField1": f"MRN {MRN}", "UnknownNoteKey": f"Referred for {NAME2}",
                  f"Jane Doe {MRN}": "1"})
            plants += [P("description keys", "...", NAME2, FILE_STEM, "jdoe7", MRN_TOKEN, HOST, MRN),
                       P("description key name", f"Jane Doe {MRN} = 1", NAME2)]
            # a bare token (no "=")
            d = ov[0][270].raw.rstrip(b"\0").decode() + f"|{NAME} bare token"
            ov[0][270] = _ascii(270, d)
            plants.append(P("description bare token", NAME, NAME))
        else:
            tag("ImageDescription", 270, f"Patient: {NAME2}; MRN {MRN}; case {ACC}", NAME2, MRN, ACC)
    elif carrier == "kept_keys":
        if fmt == "svs":
            # every key the Aperio profile keeps, each carrying a name after a plausible value
            keys = {k: f"1 {NAME}" for k in ("StripeWidth", "OriginalWidth", "OriginalHeight", "Originalheight",
                                             "Left", "Top", "LineCameraSkew", "LineAreaXOffset", "LineAreaYOffset",
                                             "Focus Offset", "Exposure Time", "Exposure Scale", "DisplayColor",
                                             "SessionMode", "ICC Profile", "Gamma", "Filtered", "ScannerType",
                                             "CalibrationAverageRed", "BitsStored")}
            keys[f"CalibrationAverage{MRN_TOKEN}"] = "1"  # the PHI in a key that matches a keep glob
            desc(keys)
            plants.append(P("every kept Aperio key", f"1 {NAME}", NAME))
            plants.append(P("key matching CalibrationAverage*", f"CalibrationAverage{MRN_TOKEN}", MRN_TOKEN))
        else:
            props = NDPI_PROPS + "".join(f"{k}=1 {NAME}\r\n" for k in (
                "system.version", "roi.slide.macro", "slide.tickness", "PSHV1", "ccd.height", "valid.x",
                "coarse.focus.pitch", "focalplane.x", "calibration.version", ";Name", ";CubeName", ";Version",
                "cube.kind", "stage.center", "target.white.intensity", "colorfilterID"))
            props += f"roi.{NAME2}=1\r\nexposure.{MRN_TOKEN}=20\r\n"  # the PHI in keys that match keep globs
            ov.setdefault(0, {})[65449] = _ascii(65449, props)
            plants.append(P("every kept NDPI property", f"1 {NAME}", NAME))
            plants.append(P("keys matching roi.* / exposure.*", f"roi.{NAME2}", NAME2, MRN_TOKEN))
    elif carrier == "aperio_typed":
        desc({"MPP": f"0.4990\0{NAME}", "AppMag": f"20 {NAME}"})
        plants.append(P("MPP after NUL / AppMag suffix", f"0.4990\\0{NAME}", NAME))
    elif carrier == "aperio_header":
        header = (f"Aperio {NAME2} {MRN_TOKEN} v1\r\n"
                  f"2220x2967 DOE/JANE SMITH/JOHN {MRN} [0,0 {W}x{H}] (256x256) JPEG/RGB Q=70")
        desc(header=header)
        plants.append(P("@header", header, NAME2, MRN_TOKEN, "DOE/JANE", "SMITH/JOHN", MRN))
    elif carrier == "ndpi_private":
        props = NDPI_PROPS.replace("Product=C13210", f"Product=C9600-12\rPatientName={NAME}") + \
            f"exposure.mrn={MRN}\r\nOperatorNote={NAME2}\r\n{HOST} bare line\r\nexposure.y=1={ACC}\r\n"
        for i in range(4):
            ov.setdefault(i, {})[65449] = _ascii(65449, props)
            ov[i][65434] = _ascii(65434, f"TRITC 2 (560) {NAME}")
            ov[i][65477] = _ascii(65477, f"<ScanProfile><Operator>{NAME2}</Operator><Slide>{ACC}</Slide></ScanProfile>")
            ov[i][65448] = _ascii(65448, f"FW 1.0 {MRN_TOKEN}")
        plants += [P("Comments Product with CR", f"C9600-12\\rPatientName={NAME}", NAME),
                   P("Comments exposure.mrn", MRN, MRN), P("Comments unknown key", NAME2, NAME2),
                   P("Fluorescence 65434", f"TRITC 2 (560) {NAME}", NAME),
                   P("ScanProfile 65477", NAME2, NAME2, ACC), P("FirmwareVersion 65448", MRN_TOKEN, MRN_TOKEN),
                   P("bare line / second '=' in a kept key", HOST, HOST, ACC)]
    elif carrier == "xmp":
        xmp = (f'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:Description dc:creator="{NAME2}" '
               f'xmp:CreateDate="2019-12-31" pdf:Keywords="{MRN_TOKEN}"/></x:xmpmeta>').encode()
        ov.setdefault(0, {})[700] = _blob(700, xmp)
        plants.append(P("XMP", xmp.decode(), NAME2, MRN_TOKEN, date=True))
    elif carrier == "exif_gps":
        exif = {36867: _ascii(36867, "2019:12:31 10:22:33"),
                37510: _blob(37510, b"ASCII\0\0\0" + f"{NAME2} {MRN_TOKEN}".encode(), 7),
                42032: _ascii(42032, NAME2), 42033: _ascii(42033, f"SN{MRN}"), 42016: _ascii(42016, MRN_TOKEN),
                37500: _blob(37500, f"MakerNote {NAME}".encode(), 7)}
        gps = {0: _blob(0, bytes([2, 2, 0, 0])), 27: _blob(27, b"ASCII\0\0\0" + HOST.encode(), 7)}
        kids[0] = {34665: [exif], 34853: [gps]}
        plants.append(P("EXIF/GPS", "...", NAME2, MRN_TOKEN, HOST, f"SN{MRN}", NAME, date=True))
    elif carrier == "iptc_photoshop":
        ov.setdefault(0, {})[33723] = _blob(33723, b"\x1c\x02\x50\x00\x08" + NAME2.encode())
        ov[0][34377] = _blob(34377, b"8BIM\x04\x04\x00\x00\x00\x00\x00\x10" + f"{NAME} {MRN}".encode()[:16], 7)
        plants.append(P("IPTC byline / Photoshop", NAME2, NAME2, NAME))
    elif carrier == "xp_utf16":
        ov.setdefault(0, {})[40093] = _blob(40093, UNAME.encode("utf-16-le") + b"\0\0")
        ov[0][40092] = _blob(40092, f"{NAME2} {MRN_TOKEN}".encode("utf-16-le") + b"\0\0")
        plants.append(P("XPAuthor/XPComment (UTF-16)", UNAME, UNAME, NAME2, MRN_TOKEN))
    elif carrier == "icc_text":
        for i in (0, 1, 2):
            ov.setdefault(i, {})[34675] = _blob(34675, icc_profile(f"{NAME2} {MRN_TOKEN} profile"), 7)
        plants.append(P("ICC desc/cprt/dmdd", f"{NAME2} {MRN_TOKEN}", NAME2, MRN_TOKEN))
    elif carrier == "dates_free_text":
        tag("Software", 305, f"{soft} built {_DATES_TEXT}", *DATE_SPELLINGS[:10], date=True)
        tag("DateTime", 306, "2019:12:31 10:22:33", "2019:12:31", date=True)
        if fmt == "svs":
            desc({"Date": "12/31/19", "Time": "10:22:33", "ScannerType": f"GT450 {DATE_SPELLINGS[4]}"})
            plants.append(P("Aperio Date / kept key", "12/31/19", "12/31/19", date=True))
        elif fmt == "ndpi":
            props = NDPI_PROPS + "Created=2019/12/31\r\n" + "".join(
                f"exposure.note{j}={s}\r\n" for j, s in enumerate(DATE_SPELLINGS[:10]))
            for i in range(4):
                ov.setdefault(i, {})[65449] = _ascii(65449, props)
            plants.append(P("Comments dates", _DATES_TEXT, *DATE_SPELLINGS[:10], date=True))
        else:
            tag("ImageDescription", 270, f"scanned {_DATES_TEXT}", *DATE_SPELLINGS[:10], date=True)
    elif carrier == "unicode_names":
        tag("Artist (UTF-8)", 315, UNAME, UNAME)
        tag("Make (UTF-8)", 271, UNAME if fmt != "ndpi" else f"Hamamatsu {UNAME}", UNAME, ifds=(0,))
        tag("Software (UTF-8)", 305, f"{soft} {UNAME}", UNAME)
        if fmt == "svs":
            desc({"Title": UNAME, "DisplayColor": f"0 {UNAME}"})
            plants.append(P("Aperio keys (UTF-8)", UNAME, UNAME))
        elif fmt == "ndpi":
            ov.setdefault(0, {})[65449] = _ascii(65449, NDPI_PROPS + f"exposure.user={UNAME}\r\n")
            plants.append(P("NDPI property (UTF-8)", UNAME, UNAME))
        else:
            tag("ImageDescription (Latin-1)", 270, "Zoë Müller", "Zoë Müller", enc="latin-1")
    elif carrier == "label_replace":
        # the label's own description holds the name; --label replace must not copy it
        labels = [i for i in range(5) if i == 3]
        for i in labels:
            ov.setdefault(i, {})[270] = _ascii(270, f"Aperio {NAME2} {MRN_TOKEN} v1\r\nlabel 200x200")
        plants.append(P("label ImageDescription", f"Aperio {NAME2} {MRN_TOKEN} v1", NAME2, MRN_TOKEN))
        slide_kw["label"] = "replace"
    elif carrier == "file_name":
        dst = folder / f"{FILE_STEM}{_EXT[fmt]}"
        plants.append(P("input file name", FILE_STEM, FILE_STEM))
        slide_kw["new_id"] = None
    elif carrier == "user_identifiers":
        # values that look typed (a model number, a version) but are the user's identifier
        tag("Model", 272, ACC, ACC, ifds=(0, 1, 2, 3) if fmt == "ndpi" else (0,))
        tag("Software", 305, f"{soft}-{ACC}", ACC)
        if fmt == "svs":
            desc({"ScannerType": ACC})
            plants.append(P("Aperio ScannerType", ACC, ACC))
        slide_kw["identifiers"] = [ACC]
    elif carrier == "jpeg_segments":
        note = f"{NAME2} {MRN_TOKEN}".encode()

        def tile_edit(i, t, raw):  # noqa: F811 - chosen per class
            if i == 0 and raw[:2] == b"\xff\xd8":
                return _insert_after_soi(raw, _com(note) if t % 2 == 0 else _app1(b"Exif\0\0" + note))
            return None
        from wsideid.tiff.container import read_tiff
        tf = read_tiff(str(base))
        if 347 in tf.ifds[0].entries:
            ov.setdefault(0, {})[347] = _blob(347, jpegtables_with_text(tf.ifds[0].entries[347].raw, note), 7)
        plants.append(P("COM/APP1 in tiles, COM + unused DQT in JPEGTables", note.decode(), NAME2, MRN_TOKEN))
    elif carrier == "jpeg_trailing":
        note = f"{NAME} {MRN_TOKEN}".encode()

        def tile_edit(i, t, raw):  # noqa: F811
            if i == 0 and raw[-2:] == b"\xff\xd9":
                return raw + note + b"\xff\xd9"
            return None
        plants.append(P("bytes after EOI ending in FF D9", note.decode(), NAME, MRN_TOKEN))
    elif carrier == "jpeg_progressive":
        note = f"{NAME2} {MRN_TOKEN}".encode()
        prog = progressive_tile_with_comment(note, 256 if fmt == "svs" else 128)

        def tile_edit(i, t, raw):  # noqa: F811
            return prog if i == 0 and t == 0 else None
        plants.append(P("COM between the scans of a progressive tile", note.decode(), NAME2, MRN_TOKEN))
    elif carrier == "other_ifds":
        # PHI in the metadata of images other than the first (thumbnail, lower levels, macro)
        for i in (1, 2, 3):
            if fmt == "svs":
                ov.setdefault(i, {})[270] = _ascii(270, f"{APERIO_SOFTWARE}\r\n{W}x{H} -> 128x96 - |"
                                                        f"Title = {NAME2}|User = {MRN_TOKEN}")
            elif fmt == "tiff" and i < 3:
                ov.setdefault(i, {})[270] = _ascii(270, f"level {i} of {NAME2} {MRN_TOKEN}")
            ov.setdefault(i, {})[315] = _ascii(315, NAME)
        plants.append(P("Artist of IFD 1-3", "...", NAME) if fmt == "ndpi" else
                      P("ImageDescription/Artist of IFD 1-3", "...", NAME, NAME2, MRN_TOKEN))
    elif carrier == "binary_ascii":
        # text under binary types: an unknown UNDEFINED tag, a BYTE tag, GDAL metadata
        ov.setdefault(0, {})[65001] = _blob(65001, f"{NAME2} {MRN_TOKEN}".encode(), 7)
        ov[0][65002] = _blob(65002, NAME.encode("utf-16-le"), 1)
        ov[0][42112] = _ascii(42112, f'<GDALMetadata><Item name="patient">{NAME}</Item></GDALMetadata>')
        plants.append(P("UNDEFINED/BYTE/GDAL tags", "...", NAME2, MRN_TOKEN, NAME))
    elif carrier == "slack_space":
        shutil.copyfile(base, dst)
        text = f"{NAME2} {MRN_TOKEN} ".encode()
        plant_slack(dst, text)
        plants.append(P("bytes between two tiles (no tag points at them)", text.decode(), NAME2, MRN_TOKEN))
        return CorpusSlide(fmt, carrier, dst, plants, **slide_kw)
    elif carrier == "typed_values":
        # dates and times with a name after a NUL, a CR or a space: they must parse wholly or go
        tag("DateTime + NUL", 306, f"2019:12:31 10:22:33\0{NAME}", NAME, ifds=(0, 1, 2, 3) if fmt == "ndpi" else (0,))
        if fmt == "svs":
            desc({"Date": f"12/31/19 {NAME2}", "Time": f"10:22:33\0{MRN_TOKEN}", "Time Zone": f"GMT+01:00 {HOST}"})
            plants.append(P("Aperio Date/Time/Time Zone suffixes", "...", NAME2, MRN_TOKEN, HOST))
        elif fmt == "ndpi":
            props = NDPI_PROPS + f"Created=2019/12/31\rPatientName={NAME2}\r\nUpdated=2019/12/31 {MRN_TOKEN}\r\n"
            for i in range(4):
                ov.setdefault(i, {})[65449] = _ascii(65449, props)
            plants.append(P("NDPI Created/Updated suffixes", "...", NAME2, MRN_TOKEN))
    elif carrier == "unknown_key_names":
        # the PHI is the *key*, not the value (the audit names unknown keys)
        if fmt == "svs":
            d = aperio_description(W, H) + f"|{NAME2} = x|{UNAME} = y"
            ov.setdefault(0, {})[270] = _ascii(270, d)
        else:
            ov.setdefault(0, {})[65449] = _ascii(65449, NDPI_PROPS + f"{NAME2}=x\r\n{UNAME}=y\r\n")
        plants.append(P("unknown key name", NAME2, NAME2, UNAME))
    else:
        raise ValueError(carrier)
    rewrite_tiff(base, dst, ov, kids, tile_edit)
    return CorpusSlide(fmt, carrier, dst, plants, **slide_kw)


def plant_slack(path: Path, text: bytes) -> None:
    """Move tile 0 of IFD 0 to the end of the file and fill its old place with ``text``.

    The old place now lies between other tiles and belongs to no tag: a
    writer that copies the source in contiguous runs carries it along, and
    no removed field value vouches for it in the residual scan.
    """
    from wsideid.tiff.container import decode_values, read_tiff
    tf = read_tiff(str(path))
    ifd = tf.ifds[0]
    e = ifd.entries[324]
    assert e.value_offset is not None and e.type == 4, "TileOffsets must be an out-of-line LONG array"
    offs = list(decode_values(e, tf.byteorder))
    counts = list(decode_values(ifd.entries[325], tf.byteorder))
    with open(path, "r+b") as fh:
        fh.seek(offs[0])
        tile = fh.read(counts[0])
        fh.seek(offs[0])
        fh.write((text * (counts[0] // len(text) + 1))[:counts[0]])
        fh.seek(0, 2)
        if fh.tell() % 2:
            fh.write(b"\0")
        new = fh.tell()
        fh.write(tile)
        fh.seek(e.value_offset)
        fh.write(struct.pack(tf.byteorder + "I", new))


def make_bases(folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    return {"svs": make_clean_svs(folder / "clean.svs"), "ndpi": make_clean_ndpi(folder / "clean.ndpi"),
            "tiff": make_clean_generic(folder / "clean.tiff")}


# ---------------------------------------------------------------- DICOM
DICOM_CLASSES = (
    "dcm_free_text", "dcm_specimen_items", "dcm_local_codes", "dcm_urls_media", "dcm_encrypted",
    "dcm_image_type5", "dcm_equipment", "dcm_repeated_in_kept", "dcm_unicode", "dcm_icc", "dcm_dates",
    "dcm_user_identifiers", "dcm_file_name", "dcm_jpeg_frames", "dcm_file_meta_preamble", "dcm_nested",
    "dcm_vr_un", "dcm_private", "dcm_typed_values",
)


def make_clean_dicom(folder: Path, svs: Path) -> Path:
    """A DICOM WSI series converted from the clean SVS with wsidicomizer, no PHI in it."""
    import warnings

    import pydicom
    from wsidicom.metadata import Patient, Series, Slide, Study
    from wsidicomizer import WsiDicomizer
    from wsidicomizer.metadata import WsiDicomizerMetadata
    folder.mkdir(parents=True, exist_ok=True)
    meta = WsiDicomizerMetadata(study=Study(identifier="STUDY1"), series=Series(number=1),
                                patient=Patient(name="ANON^SUBJECT", identifier="SUBJ1"),
                                slide=Slide(identifier="SLIDE1"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        WsiDicomizer.convert(str(svs), str(folder), metadata=meta, include_label=False, include_overview=False,
                             workers=1)
    for p in sorted(folder.iterdir()):
        ds = pydicom.dcmread(p)
        ds.save_as(p)
    return folder


def _code(value: str, scheme: str, meaning: str):
    from pydicom.dataset import Dataset
    c = Dataset()
    c.CodeValue, c.CodingSchemeDesignator, c.CodeMeaning = value, scheme, meaning
    return c


def build_dicom_class(carrier: str, base: Path, folder: Path) -> CorpusSlide:
    import pydicom
    from pydicom.dataset import Dataset
    from pydicom.encaps import encapsulate, generate_frames
    from pydicom.sequence import Sequence
    folder.mkdir(parents=True, exist_ok=True)
    dst = folder / f"dicom-{carrier}"
    if carrier == "dcm_file_name":
        dst = folder / FILE_STEM
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(base, dst)
    P = lambda where, raw, *phi, date=False: Plant(carrier, where, raw, tuple(phi), date)  # noqa: E731
    plants: list[Plant] = []
    kw: dict = {}
    files = sorted(dst.iterdir())
    for n, path in enumerate(files):
        ds = pydicom.dcmread(path)
        if carrier == "dcm_free_text":
            for op in ds.get("OpticalPathSequence", []):
                op.OpticalPathDescription = f"Brightfield for {NAME2}"
            ds.AcquisitionContextSequence = Sequence([])
            ds.AcquisitionContextDescription = f"scanned by {NAME2} MRN {MRN}"
            ds.SOPAuthorizationComment = f"authorised by {NAME2}"
            for sp in ds.get("SpecimenDescriptionSequence", []):
                sp.SpecimenShortDescription = f"Biopsy {NAME}"
                sp.SpecimenDetailedDescription = f"Biopsy of {NAME2} {MRN_TOKEN}"
            comp = Dataset()
            comp.ContainerComponentDescription = f"coverslip {NAME2}"
            comp.ContainerComponentTypeCodeSequence = Sequence([_code("433472003", "SCT", "Microscope slide cover slip")])
            ds.ContainerComponentSequence = Sequence([comp])
            for dim in ds.get("DimensionIndexSequence", []):
                dim.DimensionDescriptionLabel = f"Column {MRN_TOKEN}"
            if "DimensionIndexSequence" not in ds:
                dim = Dataset()
                dim.DimensionDescriptionLabel = f"Column {MRN_TOKEN}"
                ds.DimensionIndexSequence = Sequence([dim])
            ds.ImageComments = f"{NAME2} {MRN}"
            ds.DerivationDescription = f"converted for {NAME2}"
            ds.SeriesDescription = f"{NAME} slide"
            if n == 0:
                plants.append(P("OpticalPathDescription, AcquisitionContextDescription, SOPAuthorizationComment, "
                                "Specimen descriptions, ContainerComponentDescription, DimensionDescriptionLabel, "
                                "ImageComments, DerivationDescription, SeriesDescription", "...",
                                NAME2, NAME, MRN, MRN_TOKEN))
        elif carrier == "dcm_specimen_items":
            text_item = Dataset()
            text_item.ValueType = "TEXT"
            text_item.ConceptNameCodeSequence = Sequence([_code("121106", "DCM", "Comment")])
            text_item.TextValue = f"collected from {NAME2} MRN {MRN}"
            code_item = Dataset()
            code_item.ValueType = "CODE"
            code_item.ConceptNameCodeSequence = Sequence([_code("111704", "DCM", "Processing type")])
            code_item.ConceptCodeSequence = Sequence([_code(MRN_TOKEN, "99STELSW", f"{NAME2} fixation")])
            code_item.TextValue = f"{NAME} code note"
            step = Dataset()
            step.SpecimenPreparationStepContentItemSequence = Sequence([text_item, code_item])
            for sp in ds.get("SpecimenDescriptionSequence", []):
                sp.SpecimenPreparationSequence = Sequence(list(sp.get("SpecimenPreparationSequence", [])) + [step])
            if n == 0:
                plants.append(P("Specimen content items TEXT/CODE", "...", NAME2, NAME, MRN, MRN_TOKEN))
        elif carrier == "dcm_local_codes":
            for op in ds.get("OpticalPathSequence", []):
                op.IlluminationColorCodeSequence = Sequence([_code(MRN_TOKEN, "99STELSW", NAME2)])
            ds.AnatomicRegionSequence = Sequence([_code(f"L{MRN}", "99STELSW", f"biopsy of {NAME}")])
            if n == 0:
                plants.append(P("CodeValue/CodeMeaning under a local scheme", "...", MRN_TOKEN, NAME2, NAME, MRN))
        elif carrier == "dcm_urls_media":
            ds.RetrieveURL = f"https://pacs.stelsewhere.example/studies/{MRN_TOKEN}?patient=DOEJANE"
            ds.StorageMediaFileSetID = f"DOEJANE{MRN}"
            ds.StorageMediaFileSetUID = "1.2.3.4.5"
            if n == 0:
                plants.append(P("RetrieveURL / StorageMediaFileSetID", ds.RetrieveURL, MRN_TOKEN, "DOEJANE",
                                f"DOEJANE{MRN}", "pacs.stelsewhere.example"))
        elif carrier == "dcm_encrypted":
            enc = Dataset()
            enc.EncryptedContentTransferSyntaxUID = "1.2.840.10008.1.2.1"
            enc.EncryptedContent = f"PatientName={NAME} PatientID={MRN_TOKEN}".encode()
            ds.EncryptedAttributesSequence = Sequence([enc])
            if n == 0:
                plants.append(P("EncryptedAttributesSequence", "...", NAME, MRN_TOKEN))
        elif carrier == "dcm_image_type5":
            it = list(ds.ImageType)[:4]
            while len(it) < 4:
                it.append("NONE")
            ds.ImageType = it + [f"DOE JANE {MRN}"]
            if n == 0:
                plants.append(P("ImageType value 5", f"DOE JANE {MRN}", f"DOE JANE {MRN}", MRN))
        elif carrier == "dcm_equipment":
            ds.Manufacturer = f"{NAME2} Imaging"
            ds.ManufacturerModelName = NAME
            ds.SoftwareVersions = ["1.0", f"{NAME2} build"]
            ds.InstitutionName = "St Elsewhere Hospital"
            ds.StationName = HOST
            if n == 0:
                plants.append(P("Manufacturer/ManufacturerModelName/SoftwareVersions", "...", NAME2, NAME,
                                "Elsewhere", HOST))
        elif carrier == "dcm_repeated_in_kept":
            ds.PatientName = NAME
            ds.PatientID = MRN_TOKEN
            for op in ds.get("OpticalPathSequence", []):
                op.OpticalPathDescription = f"{NAME} {MRN_TOKEN}"
            ds.RetrieveURL = f"https://pacs.example/{MRN_TOKEN}"
            if n == 0:
                plants.append(P("PatientName/ID repeated in OpticalPathDescription and RetrieveURL", "...",
                                NAME, MRN_TOKEN))
        elif carrier == "dcm_unicode":
            ds.SpecificCharacterSet = "ISO_IR 192"
            ds.PatientName = "Müller-Łukasiewicz^Zoë"
            ds.ReferringPhysicianName = "Łukasiewicz^Zoë"
            ds.StudyDescription = f"Biopsie {UNAME}"
            for op in ds.get("OpticalPathSequence", []):
                op.OpticalPathDescription = UNAME
            block = ds.private_block(0x0011, "ST ELSEWHERE LIS", create=True)
            block.add_new(0x01, "OB", UNAME.encode("utf-16-le"))
            if n == 0:
                plants.append(P("non-ASCII names UTF-8 / UTF-16", UNAME, UNAME, "Müller-Łukasiewicz^Zoë"))
        elif carrier == "dcm_icc":
            for op in ds.get("OpticalPathSequence", []):
                op.ICCProfile = icc_profile(f"{NAME2} {MRN_TOKEN} profile")
            if n == 0:
                plants.append(P("ICCProfile desc/cprt", "...", NAME2, MRN_TOKEN))
        elif carrier == "dcm_dates":
            ds.SpecificCharacterSet = "ISO_IR 192"
            ds.StudyDate = ds.SeriesDate = ds.ContentDate = "20191231"
            ds.SeriesDescription = "scanned " + DATE_SPELLINGS[1]
            ds.ImageComments = _DATES_TEXT
            ds.DerivationDescription = "converted " + DATE_SPELLINGS[5]
            for op in ds.get("OpticalPathSequence", []):
                op.OpticalPathDescription = "calibrated " + DATE_SPELLINGS[0]
            ds.TimezoneOffsetFromUTC = "+0100"
            if n == 0:
                plants.append(P("dates in free text", _DATES_TEXT, *DATE_SPELLINGS[:10], "20191231", date=True))
        elif carrier == "dcm_user_identifiers":
            ds.ManufacturerModelName = ACC
            ds.SeriesDescription = ACC
            for op in ds.get("OpticalPathSequence", []):
                op.OpticalPathDescription = ACC
            kw["identifiers"] = [ACC]
            if n == 0:
                plants.append(P("user identifier in kept attributes", ACC, ACC))
        elif carrier == "dcm_file_name":
            new = dst / f"{FILE_STEM}_{n}.dcm"
            ds.save_as(new)
            path.unlink()
            if n == 0:
                plants.append(P("folder and file names", FILE_STEM, FILE_STEM))
                kw["new_id"] = None
            continue
        elif carrier == "dcm_jpeg_frames":
            if "PixelData" in ds and ds.file_meta.TransferSyntaxUID.is_compressed and \
                    ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.50":
                nf = int(ds.get("NumberOfFrames", 1))
                frames = list(generate_frames(ds.PixelData, number_of_frames=nf))
                note = f"{NAME2} {MRN_TOKEN}".encode()
                new = []
                for j, fr in enumerate(frames):
                    fr = bytes(fr)
                    if j % 3 == 0:
                        fr = _insert_after_soi(fr, _com(note))
                    elif j % 3 == 1:
                        fr = _insert_after_soi(fr, _app1(b"Exif\0\0" + note))
                    elif fr.endswith(b"\xff\xd9"):
                        fr = fr + note + b"\xff\xd9"
                    if len(fr) % 2:
                        fr += b"\0"
                    new.append(fr)
                ds.PixelData = encapsulate(new)
                if n == 0 or not plants:
                    plants.append(P("COM/APP1/trailing bytes in JPEG frames", note.decode(), NAME2, MRN_TOKEN))
        elif carrier == "dcm_file_meta_preamble":
            ds.preamble = f"{NAME} {MRN_TOKEN}".encode().ljust(128, b"\0")
            ds.file_meta.SourceApplicationEntityTitle = "DOEJANE"
            ds.file_meta.ImplementationVersionName = "DOEJANE_1"
            ds.file_meta.PrivateInformationCreatorUID = "1.2.3.4"
            ds.file_meta.PrivateInformation = f"{NAME2} {MRN_TOKEN}".encode()
            ds.add_new(0xFFFCFFFC, "OB", f"padding {NAME2} {MRN_TOKEN} ".encode())
            if n == 0:
                plants.append(P("preamble, file meta (AE title, version name, PrivateInformation), "
                                "DataSetTrailingPadding", "...", NAME, MRN_TOKEN, "DOEJANE", NAME2))
        elif carrier == "dcm_nested":
            ref = Dataset()
            ref.ReferencedSOPClassUID = ds.SOPClassUID
            ref.ReferencedSOPInstanceUID = ds.SOPInstanceUID
            ref.PatientName = NAME
            ref.PatientID = MRN_TOKEN
            ref.PatientBirthDate = "19700101"
            ds.ReferencedImageSequence = Sequence([ref])
            for sp in ds.get("SpecimenDescriptionSequence", []):
                sp.PatientComments = f"{NAME2} {MRN}"
            if n == 0:
                plants.append(P("patient attributes nested in other sequences", "...", NAME, MRN_TOKEN, NAME2))
        elif carrier == "dcm_vr_un":
            from pydicom.dataelem import DataElement
            ds.add(DataElement(0x0008103E, "UN", f"{NAME2} {MRN_TOKEN} ".encode()))  # SeriesDescription as UN
            ds.add(DataElement(0x00204000, "UN", f"{NAME} comment ".encode()))  # ImageComments as UN
            ds.add(DataElement(0x00100010, "UN", NAME.encode()))  # PatientName as UN
            if n == 0:
                plants.append(P("kept attributes with VR UN", "...", NAME2, MRN_TOKEN, NAME))
        elif carrier == "dcm_typed_values":
            from pydicom import config as dcfg
            old = dcfg.settings.writing_validation_mode, dcfg.settings.reading_validation_mode
            dcfg.settings.writing_validation_mode = dcfg.settings.reading_validation_mode = dcfg.IGNORE
            try:
                from pydicom.dataelem import RawDataElement
                # (a DS or IS holding a name makes the file unreadable to pydicom: refused, not a leak)
                for tag, vr, text in ((0x00480011, "CS", f"DOE JANE {MRN}"),        # FocusMethod
                                      (0x00080023, "DA", f"20191231{MRN_TOKEN}"),   # ContentDate
                                      (0x00080033, "TM", f"102233 {NAME2}")):      # ContentTime
                    raw = text.encode() + (b" " if len(text) % 2 else b"")
                    ds[tag] = RawDataElement(pydicom.tag.Tag(tag), vr, len(raw), raw, 0, False, True)
                ds.save_as(path)
            finally:
                dcfg.settings.writing_validation_mode, dcfg.settings.reading_validation_mode = old
            if n == 0:
                plants.append(P("CS/DA/TM values with a name after the typed datum", "...",
                                f"DOE JANE {MRN}", MRN_TOKEN, NAME2))
            continue
        elif carrier == "dcm_private":
            block = ds.private_block(0x0011, f"{NAME} LIS", create=True)
            block.add_new(0x01, "LO", f"{NAME2} {MRN}")
            block.add_new(0x02, "OB", UNAME.encode("utf-16-le"))
            if n == 0:
                plants.append(P("private block and its creator", "...", NAME, NAME2, MRN, UNAME))
        else:
            raise ValueError(carrier)
        ds.save_as(path)
    if not plants:
        raise RuntimeError(f"{carrier}: nothing planted (base series lacks the carrier)")
    return CorpusSlide("dicom", carrier, dst, plants, **kw)


def j2k_with_comment(frame: bytes, text: bytes) -> bytes:
    """A JPEG 2000 codestream with a COM marker segment (Latin-1 text) in its main header, before the first SOT."""
    sot = frame.find(b"\xff\x90")
    if not frame.startswith(b"\xff\x4f") or sot < 0:
        raise ValueError("not a raw J2K codestream")
    com = b"\xff\x64" + struct.pack(">HH", len(text) + 4, 1) + text
    return frame[:sot] + com + frame[sot:]


def dicom_frames_with_text(src: Path, dst: Path, text: bytes) -> int:
    """Copy an encapsulated DICOM file, planting ``text`` in every frame (COM segments in
    JPEG and JPEG 2000 codestreams, bytes after the JPEG EOI); returns the number of frames."""
    import pydicom
    from pydicom.encaps import encapsulate, generate_frames
    ds = pydicom.dcmread(src)
    nf = int(ds.get("NumberOfFrames", 1))
    out = []
    for j, fr in enumerate(generate_frames(ds.PixelData, number_of_frames=nf)):
        fr = bytes(fr)
        if fr.startswith(b"\xff\x4f"):
            fr = j2k_with_comment(fr, text)
        elif fr.startswith(b"\xff\xd8"):
            fr = _insert_after_soi(fr, _com(text)) if j % 2 == 0 else fr.rstrip(b"\0") + text + b"\xff\xd9"
        if len(fr) % 2:
            fr += b"\0"
        out.append(fr)
    ds.PixelData = encapsulate(out)
    ds.save_as(dst)
    return nf
