"""The planted-PHI matrix (attacker audit): one needle, every place, every format.

A single unique needle (a person's name, an accession number and a date)
is planted in exactly one *place* per slide: a TIFF tag of every type on
every IFD (SubIFDs and reduced levels included), EXIF/GPS sub-IFD fields,
XMP/IPTC/Photoshop/ICC blobs, vendor private tags, JPEG segments of tiles,
JPEGTables and associated images, bytes after EOI or between tiles or after
the last IFD, vendor XML and key-value fields, DICOM elements of every text
VR, sequences, overlays, the preamble and file meta, MIRAX Slidedat.ini
sections and data/index files, and image-level carriers (a label that
looks like a thumbnail, a macro that looks like a level, a label stored as
a SubIFD). Every slide is built at test time by the project's own writers
(tifffile, pydicom, wsideid.tiff.writer, the synth_* modules).

``Place.kind`` says how a leak is judged: ``bytes`` (no needle spelling in
any encoding anywhere in OUTDIR) or ``image`` (the label/macro image of
``dims`` is not published as any image, nor as an OpenSlide associated
image, unless the slide is flagged or refused).
"""

from __future__ import annotations

import base64
import re
import shutil
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

import phi_corpus as pc
from wsideid.synth import label_image, tissue

NAME_DCM = "QUIXOTE^ZEPHYRINA"
NAME = "Zephyrina Quixote"
ACC = "ZX24-77139"
DATE_ISO = "1987-03-17"
DATE_DA = "19870317"
NEEDLE = f"{NAME} {ACC} {DATE_ISO}"
# what must not reach OUTDIR: the name parts, the accession and the date's spellings
SEARCH = ["zephyrina", "quixote", "zx24-77139", "zx2477139", DATE_ISO, DATE_DA, "03/17/1987", "17.03.1987",
          "1987:03:17", "17/03/1987", "1987/03/17"]


def b64_forms(text: str) -> list[str]:
    """Base64 of ``text`` at the three alignments it can take inside a longer encoded blob."""
    out = []
    for k in range(3):
        enc = base64.b64encode(b"\0" * k + text.encode()).decode()
        skip = {0: 0, 1: 4, 2: 4}[k]
        out.append(enc[skip:-4])
    return [s for s in out if len(s) >= 12]


SEARCH_B64 = b64_forms(NAME) + b64_forms(ACC + " ")


@dataclass(frozen=True)
class Place:
    id: str
    build: Callable[[Path], Path]          # folder -> input (file or folder)
    kind: str = "bytes"                      # bytes | image
    dims: tuple[int, int] | None = None      # image kind: the (w, h) that must not be published


# ------------------------------------------------------------------ small helpers
def ascii_entry(tag: int, text: str):
    return pc._ascii(tag, text)


def blob_entry(tag: int, raw: bytes, typ: int = 7):
    return pc._blob(tag, raw, typ)


def n_ifds(path: Path) -> int:
    from wsideid.tiff.container import read_tiff
    return len(read_tiff(str(path)).ifds)


def tag_text(path: Path, ifd: int, tag: int) -> str | None:
    from wsideid.tiff.container import read_tiff
    e = read_tiff(str(path)).ifds[ifd].entries.get(tag)
    return None if e is None else e.raw.rstrip(b"\0").decode("latin-1")


def com(text: bytes) -> bytes:
    return b"\xff\xfe" + struct.pack(">H", len(text) + 2) + text


def app(n: int, text: bytes) -> bytes:
    return bytes([0xFF, 0xE0 + n]) + struct.pack(">H", len(text) + 2) + text


def insert_after_soi(stream: bytes, seg: bytes) -> bytes:
    return stream[:2] + seg + stream[2:]


def insert_before_sos(stream: bytes, seg: bytes) -> bytes:
    i = stream.find(b"\xff\xda")
    return stream[:i] + seg + stream[i:] if i > 0 else stream


def insert_before_eoi(stream: bytes, seg: bytes) -> bytes:
    return stream[:-2] + seg + stream[-2:] if stream.endswith(b"\xff\xd9") else stream


def after_first_rst(stream: bytes, seg: bytes) -> bytes:
    """A COM segment right after the first RSTn marker inside the scan (a marker where entropy data goes)."""
    sos = stream.find(b"\xff\xda")
    for i in range(sos + 2, len(stream) - 1):
        if stream[i] == 0xFF and 0xD0 <= stream[i + 1] <= 0xD7:
            return stream[:i + 2] + seg + stream[i + 2:]
    return stream


def with_restarts(stream: bytes) -> bool:
    return b"\xff\xdd" in stream[:stream.find(b"\xff\xda") + 2]


def append_bytes(path: Path, text: bytes) -> None:
    with open(path, "ab") as fh:
        fh.write(text)


# ------------------------------------------------------------------ TIFF bases
_BASES: dict[str, Path] = {}


def base(fmt: str, folder: Path) -> Path:
    """The clean synthetic base of ``fmt`` (svs | ndpi | tiff | subifd), built once per session folder."""
    key = f"{folder.parent}/{fmt}"
    if key in _BASES and _BASES[key].exists():
        return _BASES[key]
    d = folder.parent / "matrix-bases"
    d.mkdir(exist_ok=True)
    p = {"svs": lambda: pc.make_clean_svs(d / "clean.svs"), "ndpi": lambda: pc.make_clean_ndpi(d / "clean.ndpi"),
         "tiff": lambda: pc.make_clean_generic(d / "clean.tiff"),
         "tiff-be": lambda: make_generic_variant(d / "clean-be.tiff", byteorder=">"),
         "bigtiff": lambda: make_generic_variant(d / "clean-big.tiff", bigtiff=True),
         "subifd": lambda: make_subifd_pyramid(d / "clean-subifd.tiff")}[fmt]()
    _BASES[key] = p
    return p


EXT = {"svs": ".svs", "ndpi": ".ndpi", "tiff": ".tiff", "subifd": ".tiff", "tiff-be": ".tiff", "bigtiff": ".tiff"}


def make_generic_variant(path: Path, **kw) -> Path:
    """The clean generic pyramid written big-endian or as BigTIFF."""
    import tifffile
    img = tissue(pc.W, pc.H, 12)
    with tifffile.TiffWriter(path, **kw) as tw:
        for k in range(3):
            tw.write(np.ascontiguousarray(img[:: 2 ** k, :: 2 ** k]), tile=(128, 128), photometric="rgb",
                     compression="jpeg", metadata=None, software="SlideScanner 1.0", subfiletype=1 if k else 0)
    return path


def make_subifd_pyramid(path: Path, level_tags: list | None = None, top_tags: list | None = None,
                        sub_label: bool = False) -> Path:
    """A generic tiled pyramid stored as SubIFDs of level 0 (as libvips and bfconvert write it);
    ``level_tags`` are tifffile extratags written on every reduced level (SubIFD)."""
    import tifffile
    img = tissue(pc.W, pc.H, 31)
    kw = dict(tile=(128, 128), photometric="rgb", compression="jpeg", metadata=None)
    with tifffile.TiffWriter(path) as tw:
        tw.write(img, subifds=2 + (1 if sub_label else 0), software="SlideScanner 1.0",
                 extratags=list(top_tags or []), **kw)
        for k in (1, 2):
            tw.write(np.ascontiguousarray(img[:: 2 ** k, :: 2 ** k]), subfiletype=1,
                     extratags=list(level_tags or []), **kw)
        if sub_label:
            tw.write(label_image(384, 128, [NAME.upper(), ACC]), subfiletype=1, **kw)
    return path


def tiff_with(fmt: str, ifds: str, tags: dict[int, Callable[[Path, int], object]], tile_edit=None,
              children=None) -> Callable[[Path], Path]:
    """Builder: the base of ``fmt`` rewritten with ``tags[tag](base, ifd) -> OutEntry`` set on
    ``ifds`` ("all", "first", "others" or "label,macro" style indices)."""
    def build(folder: Path) -> Path:
        src = base(fmt, folder)
        n = n_ifds(src)
        which = {"all": range(n), "first": [0], "others": range(1, n)}.get(ifds) or [int(i) for i in ifds.split(",")]
        ov = {i: {t: f(src, i) for t, f in tags.items()} for i in which}
        ov = {i: {t: e for t, e in d.items() if e is not None} for i, d in ov.items()}
        if fmt == "ndpi" and tile_edit is not None:
            shift_mcu_starts(src, ov, tile_edit)
        dst = folder / f"slide{EXT[fmt]}"
        pc.rewrite_tiff(src, dst, ov, children, tile_edit)
        return dst
    return build


def shift_mcu_starts(src: Path, ov: dict, tile_edit) -> None:
    """NDPI McuStarts (65426) count from the strip's start: shift them by what the edit inserted before the scan."""
    from wsideid.tiff.container import decode_values, read_tiff
    from wsideid.tiff_family.vendors.tiff_base import image_data
    tf = read_tiff(str(src))
    for i, ifd in enumerate(tf.ifds):
        e = ifd.entries.get(65426)
        data = image_data(ifd, tf.byteorder)
        if e is None or data is None:
            continue
        with open(src, "rb") as fh:
            fh.seek(int(data.src_offsets[0]))
            raw = fh.read(int(data.src_counts[0]))
        new = tile_edit(i, 0, raw)
        if new is None:
            continue
        delta = new.find(b"\xff\xda") - raw.find(b"\xff\xda")
        vals = [v + delta for v in decode_values(e, tf.byteorder)]
        from wsideid.tiff.writer import OutEntry
        ov.setdefault(i, {})[65426] = OutEntry(65426, 4, len(vals), struct.pack(f"<{len(vals)}I", *vals))


def _keep_then(tag: int, sep: str = " "):
    """The IFD's own value of ``tag`` (if any) followed by the needle."""
    def f(src: Path, i: int):
        old = tag_text(src, i, tag)
        return ascii_entry(tag, (old + sep if old else "") + NEEDLE)
    return f


def _needle_only(tag: int):
    return lambda src, i: ascii_entry(tag, NEEDLE)


ASCII_TAGS = {"DocumentName": 269, "ImageDescription": 270, "Make": 271, "Model": 272, "PageName": 285,
              "Software": 305, "DateTime": 306, "Artist": 315, "HostComputer": 316, "TargetPrinter": 337,
              "ImageID": 32781, "Copyright": 33432, "InkNames": 333, "private65000": 65000}

# ------------------------------------------------------------------ ICC / XMP / IPTC / Photoshop / EXIF
XMP = (f'<?xpacket begin="" id="W5M0MpCehiHzreSzNTczkc9d"?><x:xmpmeta xmlns:x="adobe:ns:meta/">'
       f'<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description '
       f'xmlns:dc="http://purl.org/dc/elements/1.1/" dc:creator="{NAME}"><dc:title>{ACC}</dc:title>'
       f'<dc:date>{DATE_ISO}</dc:date></rdf:Description></rdf:RDF></x:xmpmeta><?xpacket end="w"?>').encode()


def iptc() -> bytes:
    out = b""
    for ds, text in ((80, NAME), (5, ACC), (55, DATE_DA), (120, NEEDLE)):
        raw = text.encode()
        out += b"\x1c\x02" + bytes([ds]) + struct.pack(">H", len(raw)) + raw
    return out


def photoshop() -> bytes:
    body = iptc()
    res = b"8BIM\x04\x04\x00\x00" + struct.pack(">I", len(body)) + body
    cap = NEEDLE.encode()
    res += b"8BIM\x04\x0c\x00\x00" + struct.pack(">I", len(cap)) + cap + (b"\0" if len(cap) % 2 else b"")
    return res


def exif_children(tag: int, typ: str) -> dict:
    """EXIF IFD (34665) or GPS IFD (34853) holding ``tag`` with the needle."""
    if typ == "ascii":
        e = ascii_entry(tag, NEEDLE)
    elif typ == "usercomment":
        e = blob_entry(tag, b"ASCII\0\0\0" + NEEDLE.encode())
    elif typ == "utf16":
        e = blob_entry(tag, NEEDLE.encode("utf-16-le") + b"\0\0", 1)
    else:
        e = blob_entry(tag, NEEDLE.encode())
    parent = 34853 if typ.startswith("gps") or tag < 40 else 34665
    ents = {tag: e}
    if parent == 34853:
        ents[0] = blob_entry(0, bytes([2, 2, 0, 0]), 1)
    return {0: {parent: [ents]}}


EXIF_PLACES = {"UserComment": (37510, "usercomment"), "ImageUniqueID": (42016, "ascii"),
               "CameraOwnerName": (42032, "ascii"), "BodySerialNumber": (42033, "ascii"),
               "LensSerialNumber": (42037, "ascii"), "MakerNote": (37500, "raw"),
               "DateTimeOriginal": (36867, "ascii"), "GPSProcessingMethod": (27, "usercomment"),
               "GPSAreaInformation": (28, "usercomment"), "GPSDateStamp": (29, "ascii")}


# ------------------------------------------------------------------ JPEG stream edits
def tile_edit_for(where: str, how: str) -> Callable:
    """tile_edit(ifd, tile, raw): plant in the tiles/strips of IFDs ``where`` ("0", "all", "1,3,4")."""
    note = NEEDLE.encode()
    seg = {"com": com(note), "app1": app(1, b"Exif\0\0" + note), "app13": app(13, b"Photoshop 3.0\0" + note),
           "app15": app(15, note), "app0": app(0, b"JFXX\0" + note)}

    def edit(i: int, t: int, raw: bytes):
        if where != "all" and str(i) not in where.split(","):
            return None
        if raw[:2] != b"\xff\xd8":
            return None
        if how in seg:
            return insert_after_soi(raw, seg[how])
        if how == "before_sos":
            return insert_before_sos(raw, com(note))
        if how == "before_eoi":
            return insert_before_eoi(raw, com(note))
        if how == "after_eoi":
            return raw + note
        if how == "after_eoi_ffd9":
            return raw + note + b"\xff\xd9"
        if how == "after_eoi_soi":  # a second whole image after the first
            return raw + b"\xff\xd8" + com(note) + b"\xff\xd9"
        if how == "after_rst":
            return after_first_rst(raw, com(note)) if with_restarts(raw) else None
        raise ValueError(how)
    return edit


def jpegtables_edit(how: str):
    def f(src: Path, i: int):
        from wsideid.tiff.container import read_tiff
        tf = read_tiff(str(src))
        e = tf.ifds[i].entries.get(347)
        t = e.raw if e is not None else tables_of_first_tile(src, tf, i)
        if t is None:
            return None
        if how == "com":
            t = insert_after_soi(t, com(NEEDLE.encode()))
        elif how == "app":
            t = insert_after_soi(t, app(12, b"Ducky\0" + NEEDLE.encode()))
        elif how == "after_eoi":
            t = t + NEEDLE.encode()
        return blob_entry(347, t)
    return f


def tables_of_first_tile(src: Path, tf, i: int) -> bytes | None:
    """SOI + the DQT/DHT segments of the IFD's first tile + EOI: a JPEGTables the tiles agree with."""
    from wsideid.tiff_family.vendors.tiff_base import image_data
    data = image_data(tf.ifds[i], tf.byteorder)
    if data is None or not len(data.src_offsets):
        return None
    with open(src, "rb") as fh:
        fh.seek(int(data.src_offsets[0]))
        raw = fh.read(int(data.src_counts[0]))
    if raw[:2] != b"\xff\xd8":
        return None
    out, pos = b"\xff\xd8", 2
    while pos + 4 <= len(raw) and raw[pos] == 0xFF and raw[pos + 1] not in (0xDA, 0xD9):
        n = struct.unpack(">H", raw[pos + 2:pos + 4])[0]
        if raw[pos + 1] in (0xDB, 0xC4):
            out += raw[pos:pos + 2 + n]
        pos += 2 + n
    return out + b"\xff\xd9"


# ------------------------------------------------------------------ gaps
def gap_after_last_ifd(fmt: str) -> Callable[[Path], Path]:
    def build(folder: Path) -> Path:
        dst = folder / f"slide{EXT[fmt]}"
        shutil.copyfile(base(fmt, folder), dst)
        append_bytes(dst, b"\0" + NEEDLE.encode() + b"\0" + NEEDLE.encode("utf-16-le"))
        return dst
    return build


def gap_between_tiles(fmt: str) -> Callable[[Path], Path]:
    def build(folder: Path) -> Path:
        dst = folder / f"slide{EXT[fmt]}"
        shutil.copyfile(base(fmt, folder), dst)
        pc.plant_slack(dst, (NEEDLE + " ").encode())
        return dst
    return build


def gap_after_header(fmt: str) -> Callable[[Path], Path]:
    """The bytes between the header and the first IFD: the first IFD is moved to the end, the old
    place overwritten with the needle."""
    def build(folder: Path) -> Path:
        from wsideid.tiff.container import read_tiff
        dst = folder / f"slide{EXT[fmt]}"
        shutil.copyfile(base(fmt, folder), dst)
        tf = read_tiff(str(dst))
        if tf.kind not in ("classic", "ndpi"):
            return dst
        with open(dst, "r+b") as fh:
            head = fh.read(8)
            first = struct.unpack(tf.byteorder + "I", head[4:8])[0]
            fh.seek(first)
            cnt = struct.unpack(tf.byteorder + "H", fh.read(2))[0]
            fh.seek(first)
            ifd = fh.read(2 + 12 * cnt + 4)
            fh.seek(0, 2)
            if fh.tell() % 2:
                fh.write(b"\0")
            new = fh.tell()
            fh.write(ifd)
            fh.seek(first)
            fh.write((NEEDLE.encode() + b" ") * (len(ifd) // (len(NEEDLE) + 1)) + b"\0" * (len(ifd) % (len(NEEDLE) + 1)))
            fh.seek(4)
            fh.write(struct.pack(tf.byteorder + "I", new))
        return dst
    return build


# ------------------------------------------------------------------ image-level carriers
LABEL_DIMS = (384, 256)


def label_as_thumbnail(folder: Path) -> Path:
    """SVS whose label (the name printed on it) carries a thumbnail's description, stripped, NewSubfileType 0."""
    import tifffile
    img = tissue(pc.W, pc.H, 41)
    common = dict(photometric="rgb", compression="jpeg", compressionargs={"level": 85}, metadata=None,
                  software=pc.APERIO_SOFTWARE)
    path = folder / "slide.svs"
    with tifffile.TiffWriter(path) as tw:
        tw.write(img, tile=(256, 256), description=pc.aperio_description(pc.W, pc.H), **common)
        tw.write(label_image(*LABEL_DIMS, [NAME.upper(), ACC, DATE_ISO]), rowsperstrip=16, subfiletype=0,
                 description=f"{pc.APERIO_SOFTWARE}\r\n{pc.W}x{pc.H} -> {LABEL_DIMS[0]}x{LABEL_DIMS[1]} - ", **common)
        tw.write(img[::2, ::2], tile=(256, 256), subfiletype=0,
                 description=f"{pc.APERIO_SOFTWARE}\r\n{pc.W}x{pc.H} (256x256) -> 256x192 JPEG/RGB Q=70", **common)
    return path


MACRO_LEVEL_DIMS = (256, 192)


def macro_as_level(fmt: str) -> Callable[[Path], Path]:
    """A macro photo (label with the name + glass) with a level's size, aspect, tiling and markers."""
    def build(folder: Path) -> Path:
        import tifffile
        img = tissue(pc.W, pc.H, 42)
        w, h = MACRO_LEVEL_DIMS
        macro = np.concatenate([label_image(h, h, [NAME.upper(), ACC]), tissue(w - h, h, 43)], axis=1)
        common = dict(photometric="rgb", compression="jpeg", compressionargs={"level": 85}, metadata=None)
        path = folder / f"slide{EXT[fmt]}"
        with tifffile.TiffWriter(path) as tw:
            if fmt == "svs":
                common["software"] = pc.APERIO_SOFTWARE
                tw.write(img, tile=(256, 256), description=pc.aperio_description(pc.W, pc.H), **common)
                tw.write(img[::4, ::4], rowsperstrip=16, subfiletype=0,
                         description=f"{pc.APERIO_SOFTWARE}\r\n{pc.W}x{pc.H} -> 128x96 - ", **common)
                tw.write(macro, tile=(256, 256), subfiletype=0,
                         description=f"{pc.APERIO_SOFTWARE}\r\n{pc.W}x{pc.H} (256x256) -> {w}x{h} JPEG/RGB Q=70",
                         **common)
            else:
                tw.write(img, tile=(128, 128), **common)
                tw.write(macro, tile=(128, 128), subfiletype=1, **common)
                tw.write(img[::4, ::4], tile=(128, 128), subfiletype=1, **common)
        return path
    return build


def label_as_subifd(folder: Path) -> Path:
    return make_subifd_pyramid(folder / "slide.tiff", sub_label=True)


# ------------------------------------------------------------------ vendor XML and key-value text
_NUM = re.compile(r"^\s*[-+]?\d+(\.\d+)?([eE][-+]?\d+)?\s*$")


def append_to_xml_values(xml: str, skip: tuple[str, ...] = (), skip_text: tuple[str, ...] = ()) -> str:
    """Every non-numeric attribute value and text node of ``xml`` followed by the needle (namespace
    declarations, references and ``skip`` attributes left alone so the slide keeps its structure)."""
    def attr(m):
        name, q, val = m.group(1), m.group(2), m.group(3)
        if (name.startswith("xmlns") or name.startswith("xsi:") or name in skip or _NUM.match(val) or not val
                or name in ("ID", "version", "encoding")):
            return m.group(0)
        return f"{name}={q}{val} {NEEDLE}{q}"
    out = re.sub(r'([\w:.-]+)=(["\'])(.*?)\2', attr, xml)

    def text(m):
        tag, val = m.group(1), m.group(3)
        if not val.strip() or _NUM.match(val) or tag in skip_text:
            return m.group(0)
        return f"<{tag}{m.group(2)}>{val} {NEEDLE}<"
    return re.sub(r"<([\w:.-]+)([^<>]*)>([^<>]+)<", text, out)


XML_MAKERS = {  # vendor -> (synth module, its XML function(s), maker, output name)
    "ome": ("wsideid.synth_ome", ("ome_xml",), lambda m, p: m.make_ome_tiff(p, 512, 384), "slide.ome.tiff"),
    "philips": ("wsideid.synth_philips", ("philips_xml",), lambda m, p: m.make_philips_tiff(p, 512, 512),
                "slide.tiff"),
    "bif": ("wsideid.synth_vendors", ("bif_iscan", "bif_encodeinfo"), lambda m, p: m.make_bif(p, cols=2, rows=2),
            "slide.bif"),
    "scn": ("wsideid.synth_vendors", ("scn_xml",), lambda m, p: m.make_scn(p, 512, 384), "slide.scn"),
    "qptiff": ("wsideid.synth_qptiff", ("qpi_xml",), lambda m, p: m.make_qptiff(p, fluorescence=False, width=512,
                                                                                 height=384), "slide.qptiff"),
}


def names_in_xml(xml: str) -> str:
    """An element and an attribute whose *names* are the needle's tokens, before the root's end tag."""
    end = xml.rstrip().rfind("</")
    return xml[:end] + '<Quixote_Zephyrina ZX24-77139="1"><D19870317>x</D19870317></Quixote_Zephyrina>' + xml[end:]


def xml_vendor(vendor: str, names: bool = False) -> Callable[[Path], Path]:
    """A vendor slide of the synth modules whose XML has the needle after every non-numeric value
    (the module's XML function wrapped while the slide is written)."""
    return xml_edited(vendor, names_in_xml if names else (lambda x: append_to_xml_values(x, *SKIP[vendor])))


def xml_edited(vendor: str, edit: Callable[[str], str]) -> Callable[[Path], Path]:
    """A vendor slide of the synth modules whose XML passes through ``edit`` while it is written."""
    import importlib

    def build(folder: Path) -> Path:
        modname, funcs, make, name = XML_MAKERS[vendor]
        mod = importlib.import_module(modname)
        saved = {f: getattr(mod, f) for f in funcs}

        def wrap(fn):
            def inner(*a, **kw):
                res = fn(*a, **kw)
                if isinstance(res, tuple):
                    return (edit(res[0]),) + tuple(res[1:])
                return edit(res) if res.lstrip().startswith("<") else res
            return inner
        try:
            for f, fn in saved.items():
                setattr(mod, f, wrap(fn))
            dst = folder / name
            make(mod, str(dst))
        finally:
            for f, fn in saved.items():
                setattr(mod, f, fn)
        return dst
    return build


# (attributes, elements) whose value decides where pixels are or which image is which
SKIP = {"ome": (("DimensionOrder", "Type", "FileName", "Name", "Creator"), ()),
        "philips": (("Name", "Group", "Element", "PMSVR"), ()),
        "scn": (("model", "name"), ()), "bif": (("Direction",), ()), "qptiff": ((), ("ImageType",))}


def svs_description(variant: str) -> Callable[[Path], Path]:
    """SVS IFD 0 description pipes: the needle as (or after) the value of every key the profile keeps,
    as an unknown key's value, as a key name, as a bare token, after a NUL, and in the header line."""
    import tomllib

    def build(folder: Path) -> Path:
        prof = tomllib.loads((Path(__file__).resolve().parents[1] / "formats" / "aperio.toml").read_text())
        kept = [k for k, v in prof["description"].items() if isinstance(v, dict) and not k.startswith("@")]
        src = base("svs", folder)
        keys = {}
        if variant == "kept-values-after":
            keys = {k: f"20 {NEEDLE}" for k in kept if "*" not in k}
        elif variant == "kept-values-only":
            keys = {k: NEEDLE for k in kept if "*" not in k}
        elif variant == "free-places":
            keys = {"PatientNote": NEEDLE, NEEDLE: "1"}
        elif variant == "after-nul":
            keys = {"MPP": f"0.4990\0{NEEDLE}", "AppMag": f"20\r{NEEDLE}"}
        header = None
        if variant == "free-places":
            header = f"{pc.APERIO_SOFTWARE}\r\n{pc.W}x{pc.H} [0,0 {pc.W}x{pc.H}] (256x256) JPEG/RGB Q=70 {NEEDLE}"
        desc = pc.aperio_description(pc.W, pc.H, header, keys)
        if variant == "free-places":  # a bare token, UTF-16 text in a value
            desc += f"|{NEEDLE}|Title = " + NEEDLE.encode("utf-16-le").decode("latin-1")
        dst = folder / "slide.svs"
        pc.rewrite_tiff(src, dst, {0: {270: ascii_entry(270, desc)}})
        return dst
    return build


def ndpi_props(variant: str) -> Callable[[Path], Path]:
    """NDPI 65449 properties: the needle after every kept key's value, as a key, a bare line."""
    import tomllib

    def build(folder: Path) -> Path:
        src = base("ndpi", folder)
        prof = tomllib.loads((Path(__file__).resolve().parents[1] / "formats" / "hamamatsu.toml").read_text())
        kept = [k for k, v in prof["properties"].items() if isinstance(v, dict) and "*" not in k and "#" not in k
                and not k.startswith("@")]
        props = pc.NDPI_PROPS + "".join(f"{k}=1 {NEEDLE}\r\n" for k in kept)   # after every kept key's value
        props += f"{NEEDLE}=1\r\n{NEEDLE}\r\nCreated=1987/03/17\r\n"            # a key, a bare line, a date
        dst = folder / "slide.ndpi"
        pc.rewrite_tiff(src, dst, {i: {65449: ascii_entry(65449, props)} for i in range(n_ifds(src))})
        return dst
    return build


# NDPI private tags that hold text (or that no reader uses: the unknown ones are removed)
NDPI_TEXT = (65427, 65434, 65442, 65448, 65449, 65468, 65477, 65480, 65450, 65451, 65452, 65453, 65454)


def subifd_places() -> list[Place]:
    """Tags on level 0 and on every SubIFD level of a SubIFD pyramid (written by tifffile)."""
    ex = [(tag, 2, 0, NEEDLE, True) for tag in ASCII_TAGS.values() if tag not in (305, 306, 333)]
    ex += [(306, 2, 0, "1987:03:17 10:22:33", True), (700, 1, len(XMP), XMP, True),
           (33723, 7, len(iptc()), iptc(), True), (34377, 1, len(photoshop()), photoshop(), True),
           (34675, 7, len(pc.icc_profile(NEEDLE)), pc.icc_profile(NEEDLE), True)]
    return [Place("subifd-tags-on-levels", lambda f: make_subifd_pyramid(f / "slide.tiff", level_tags=ex)),
            Place("subifd-tags-on-level0", lambda f: make_subifd_pyramid(f / "slide.tiff", top_tags=ex))]


def codec_base(compression: str) -> Callable[[Path], Path]:
    def make(folder: Path) -> Path:
        import tifffile
        key = f"{folder.parent}/codec-{compression}"
        if key in _BASES and _BASES[key].exists():
            return _BASES[key]
        d = folder.parent / "matrix-bases"
        d.mkdir(exist_ok=True)
        path = d / f"clean-{compression}.tiff"
        img = tissue(pc.W, pc.H, 51)
        with tifffile.TiffWriter(path) as tw:
            for k in range(3):
                tw.write(np.ascontiguousarray(img[:: 2 ** k, :: 2 ** k]), tile=(128, 128), photometric="rgb",
                         compression=None if compression == "none" else compression, metadata=None,
                         subfiletype=1 if k else 0)
        _BASES[key] = path
        return path
    return make


def codec_trailing_places() -> list[Place]:
    """Bytes after the end of deflate / LZW / uncompressed tile data, inside the tile's byte count."""
    out = []
    for comp in ("zlib", "lzw", "none"):
        def build(folder: Path, comp=comp) -> Path:
            src = codec_base(comp)(folder)
            dst = folder / "slide.tiff"
            pc.rewrite_tiff(src, dst, {}, None, lambda i, t, raw: raw + b"\0" + NEEDLE.encode())
            return dst
        out.append(Place(f"tiff-{comp}-bytes-after-tile-data", build))
    return out


JPEG_HOWS = ("com", "app1", "app13", "app15", "before_sos", "before_eoi", "after_eoi", "after_eoi_ffd9",
             "after_eoi_soi")


def cycling_edit(offset: int = 0) -> Callable:
    """Every JPEG place at once: tile t of IFD i gets JPEG_HOWS[(offset + i + t) % 9]."""
    edits = {h: tile_edit_for("all", h) for h in JPEG_HOWS}
    return lambda i, t, raw: edits[JPEG_HOWS[(offset + i + t) % len(JPEG_HOWS)]](i, t, raw)


def tiff_places() -> list[Place]:
    """Places that each published clean on their own are planted together (one slide per group,
    so the matrix stays fast); places whose slide is refused stand alone."""
    out: list[Place] = subifd_places() + codec_trailing_places()
    blobs = {700: lambda s, i: blob_entry(700, XMP, 1), 33723: lambda s, i: blob_entry(33723, iptc(), 7),
             34377: lambda s, i: blob_entry(34377, photoshop(), 1),
             34675: lambda s, i: blob_entry(34675, pc.icc_profile(NEEDLE)),
             40092: lambda s, i: blob_entry(40092, NEEDLE.encode("utf-16-le") + b"\0\0", 1),
             306: lambda s, i: ascii_entry(306, "1987:03:17 10:22:33")}
    exif: dict = {34665: [{}], 34853: [{0: blob_entry(0, bytes([2, 2, 0, 0]), 1)}]}
    for tag, typ in EXIF_PLACES.values():
        (parent, ents), = exif_children(tag, typ)[0].items()
        exif[parent][0].update(ents[0])
    for fmt in ("tiff-be", "bigtiff"):
        out.append(Place(f"{fmt}-ascii-tags-all-ifds", tiff_with(fmt, "all", {
            tag: _needle_only(tag) for tag in ASCII_TAGS.values() if tag not in (271, 272, 305)})))
        out.append(Place(f"{fmt}-jpeg-segments", tiff_with(fmt, "all", {700: lambda s, i: blob_entry(700, XMP, 1)},
                                                            cycling_edit(0))))
    for fmt in ("svs", "ndpi", "tiff"):
        ascii_tags = {tag: (_keep_then(tag) if tag in (271, 272, 305) else _needle_only(tag))
                      for tag in ASCII_TAGS.values() if not (fmt in ("svs", "ndpi") and tag == 270)}
        out.append(Place(f"{fmt}-ascii-tags-all-ifds", tiff_with(fmt, "all", ascii_tags)))
        out.append(Place(f"{fmt}-xmp-iptc-photoshop-icc-xp-datetime", tiff_with(fmt, "all", blobs)))
        out.append(Place(f"{fmt}-exif-gps-ifds", tiff_with(fmt, "first", {}, children={0: exif})))
        for off in ((0, 4, 8) if fmt == "ndpi" else (0,)):
            out.append(Place(f"{fmt}-jpeg-segments-{off}", tiff_with(fmt, "all", {}, cycling_edit(off))))
        out.append(Place(f"{fmt}-jpegtables", tiff_with(fmt, "all", {347: lambda s, i: jpegtables_edit(
            ("com", "app", "after_eoi")[i % 3])(s, i)})))
        out.append(Place(f"{fmt}-gap-after-last-ifd", gap_after_last_ifd(fmt)))
        if fmt != "ndpi":  # (an NDPI IFD is followed by its offsets' high words: it cannot be moved whole)
            out.append(Place(f"{fmt}-gap-after-header", gap_after_header(fmt)))
            out.append(Place(f"{fmt}-gap-between-tiles", gap_between_tiles(fmt)))
        out.append(Place(f"{fmt}-text-tags-as-other-types", tiff_with(fmt, "all", {
            305: lambda s, i: blob_entry(305, NEEDLE.encode(), 1), 271: lambda s, i: blob_entry(271, NEEDLE.encode(), 7),
            272: lambda s, i: blob_entry(272, ((tag_text(s, i, 272) or "x") + "\0" + NEEDLE + "\0").encode(), 2),
            315: lambda s, i: blob_entry(315, NEEDLE.encode("utf-16-le"), 1)})))
    out.append(Place("ndpi-jpeg-after-rst", tiff_with("ndpi", "all", {}, tile_edit_for("all", "after_rst"))))
    out.append(Place("ndpi-private-text-tags", tiff_with("ndpi", "all", {t: _needle_only(t) for t in NDPI_TEXT})))
    out.append(Place("ndpi-private-numeric-tag-as-text", tiff_with("ndpi", "all", {65421: _needle_only(65421)})))
    for variant in ("kept-values-after", "kept-values-only", "after-nul", "free-places"):
        out.append(Place(f"svs-description-{variant}", svs_description(variant)))
    out.append(Place("svs-description-ifds-1-4-key", tiff_with("svs", "1,2,3,4", {270: _keep_then(270, "|Title = ")})))
    out.append(Place("svs-description-ifds-1-4-free", tiff_with("svs", "1,2,3,4", {270: _keep_then(270, " ")})))
    out.append(Place("ndpi-props", ndpi_props("all")))
    for vendor in ("ome", "philips", "bif", "scn", "qptiff"):
        out.append(Place(f"{vendor}-xml-every-value", xml_vendor(vendor)))
        out.append(Place(f"{vendor}-xml-element-attribute-names", xml_vendor(vendor, names=True)))
    out.append(Place("svs-label-as-thumbnail", label_as_thumbnail, "image", LABEL_DIMS))
    out.append(Place("svs-macro-as-level", macro_as_level("svs"), "image", MACRO_LEVEL_DIMS))
    out.append(Place("tiff-macro-as-level", macro_as_level("tiff"), "image", MACRO_LEVEL_DIMS))
    out.append(Place("tiff-label-as-subifd", label_as_subifd, "image", (384, 128)))
    return out


# ------------------------------------------------------------------ DICOM
def dicom_base(folder: Path) -> Path:
    """The clean DICOM WSI series (wsidicomizer from the clean SVS), once per session folder."""
    key = f"{folder.parent}/dicom"
    if key not in _BASES or not _BASES[key].exists():
        _BASES[key] = pc.make_clean_dicom(folder.parent / "matrix-bases" / "dicom", base("svs", folder))
    return _BASES[key]


def _item(**kw):
    from pydicom.dataset import Dataset
    d = Dataset()
    for k, v in kw.items():
        setattr(d, k, v)
    return d


def _seq(*items):
    from pydicom.sequence import Sequence
    return Sequence(list(items))


def _code(value: str, scheme: str, meaning: str):
    return _item(CodeValue=value, CodingSchemeDesignator=scheme, CodeMeaning=meaning)


def _raw(ds, tag: int, vr: str, text: str | bytes) -> None:
    """An element written as it is, whatever its VR allows (hostile values)."""
    import pydicom
    from pydicom.dataelem import RawDataElement
    raw = text if isinstance(text, bytes) else text.encode()
    if len(raw) % 2:
        raw += b" " if vr not in ("OB", "UN", "UI") else b"\0"
    ds[tag] = RawDataElement(pydicom.tag.Tag(tag), vr, len(raw), raw, 0, False, True)


UID_WITH_DATE = f"1.2.826.0.1.3680043.{DATE_DA}.2477139"


def _pn(ds):
    for kw in ("PatientName", "ReferringPhysicianName", "OperatorsName", "PerformingPhysicianName",
               "NameOfPhysiciansReadingStudy", "PhysiciansOfRecord", "RequestingPhysician"):
        setattr(ds, kw, NAME_DCM)


def _lo(ds):
    ds.PatientID = ACC
    ds.OtherPatientIDs = ACC
    ds.StudyDescription = NEEDLE
    ds.SeriesDescription = NEEDLE
    ds.ProtocolName = NEEDLE
    ds.InstitutionName = NEEDLE
    ds.DeviceSerialNumber = ACC
    ds.ContainerIdentifier = ACC
    ds.ManufacturerModelName = f"{pc.APERIO_SOFTWARE} {NAME}"


def _lt_st_ut(ds):
    ds.ImageComments = NEEDLE                     # LT
    ds.AdditionalPatientHistory = NEEDLE          # LT
    ds.InstitutionAddress = NEEDLE                # ST
    ds.DerivationDescription = NEEDLE             # ST
    ds.add_new(0x0040A160, "UT", NEEDLE)          # TextValue (UT) at the top level


def _sh(ds):
    ds.AccessionNumber = ACC
    ds.StationName = "QUIXOTE-WS"
    ds.StudyID = ACC
    ds.ReferringPhysicianTelephoneNumbers = ACC


def _cs(ds):
    _raw(ds, 0x00100040, "CS", "QUIXOTE")          # PatientSex
    _raw(ds, 0x00480011, "CS", "ZEPHYRINA")        # FocusMethod
    _raw(ds, 0x00080064, "CS", "QUIXOTE")          # ConversionType
    it = list(ds.ImageType)[:4] + ["QUIXOTE"]
    ds.ImageType = it


def _da_dt_tm(ds):
    ds.PatientBirthDate = DATE_DA
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = ds.AcquisitionDate = DATE_DA
    ds.AcquisitionDateTime = DATE_DA + "102233"
    _raw(ds, 0x00080030, "TM", f"102233 {NAME}")   # StudyTime with a name after it
    _raw(ds, 0x00080033, "TM", DATE_DA)           # a "time" that is a date


def _ui(ds):
    ds.StudyInstanceUID = UID_WITH_DATE
    ds.FrameOfReferenceUID = UID_WITH_DATE + ".1"
    ds.ReferencedSOPSequence = _seq(_item(ReferencedSOPClassUID=ds.SOPClassUID,
                                          ReferencedSOPInstanceUID=UID_WITH_DATE + ".2"))


def _ae(ds):
    ds.RetrieveAETitle = "QUIXOTE"
    ds.file_meta.SourceApplicationEntityTitle = "ZEPHYRINA"
    ds.file_meta.SendingApplicationEntityTitle = "QUIXOTE"
    ds.file_meta.ReceivingApplicationEntityTitle = "QUIXOTE"


def _private(ds):
    block = ds.private_block(0x0011, "QUIXOTE LIS", create=True)
    block.add_new(0x01, "LO", NEEDLE)
    block.add_new(0x02, "UT", NEEDLE)
    block.add_new(0x03, "OB", NEEDLE.encode("utf-16-le"))
    block.add_new(0x04, "PN", NAME_DCM)
    block.add_new(0x05, "DA", DATE_DA)
    inner = _item()
    ib = inner.private_block(0x0013, "ACME 1.0", create=True)
    ib.add_new(0x01, "LO", NEEDLE)
    block.add_new(0x06, "SQ", _seq(inner))


def _private_known_creator(ds):
    """A private block under a creator the profile may list as safe, its values holding the needle."""
    import tomllib
    prof = tomllib.loads((Path(__file__).resolve().parents[1] / "formats" / "dicom.toml").read_text())
    safe = prof["dicom_options"].get("safe_private", {})
    creators = [k for k in safe if isinstance(k, str)][:3] or ["ACME"]
    for n, creator in enumerate(creators):
        block = ds.private_block(0x0019 + 2 * n, creator, create=True)
        for e in range(0x01, 0x20):
            block.add_new(e, "LO", NEEDLE)


def _nested(ds):
    ds.ReferencedPatientSequence = _seq(_item(PatientName=NAME_DCM, PatientID=ACC, PatientBirthDate=DATE_DA))
    ds.ReferencedStudySequence = _seq(_item(ReferencedSOPClassUID="1.2.840.10008.3.1.2.3.1",
                                            ReferencedSOPInstanceUID=UID_WITH_DATE,
                                            ReferencedPatientSequence=_seq(_item(PatientName=NAME_DCM))))
    ds.RequestAttributesSequence = _seq(_item(RequestedProcedureID=ACC, ScheduledProcedureStepID=ACC,
                                              RequestedProcedureDescription=NEEDLE))
    ds.OtherPatientIDsSequence = _seq(_item(PatientID=ACC, IssuerOfPatientID=NAME))


def _annotation(ds):
    text = _item(UnformattedTextValue=NEEDLE, BoundingBoxAnnotationUnits="PIXEL",
                 BoundingBoxTopLeftHandCorner=[1, 1], BoundingBoxBottomRightHandCorner=[50, 10])
    graphic = _item(GraphicAnnotationUnits="PIXEL", GraphicDimensions=2, NumberOfGraphicPoints=2,
                    GraphicData=[1.0, 1.0, 5.0, 5.0], GraphicType="POLYLINE")
    ds.GraphicAnnotationSequence = _seq(_item(GraphicLayer="QUIXOTE", TextObjectSequence=_seq(text),
                                              GraphicObjectSequence=_seq(graphic)))
    ds.GraphicLayerSequence = _seq(_item(GraphicLayer="QUIXOTE", GraphicLayerOrder=1,
                                         GraphicLayerDescription=NEEDLE))


def _overlay(ds):
    rows, cols = 16, 64
    bits = np.unpackbits(np.frombuffer((NEEDLE.encode() * 8)[: rows * cols // 8], np.uint8))
    ds.add_new(0x60000010, "US", rows)
    ds.add_new(0x60000011, "US", cols)
    ds.add_new(0x60000040, "CS", "G")
    ds.add_new(0x60000050, "SS", [1, 1])
    ds.add_new(0x60000100, "US", 1)
    ds.add_new(0x60000102, "US", 0)
    ds.add_new(0x60000022, "LO", NEEDLE)
    ds.add_new(0x60001500, "LO", NEEDLE)
    ds.add_new(0x60003000, "OW", np.packbits(bits).tobytes())


def _preamble_meta(ds):
    ds.preamble = NEEDLE.encode().ljust(128, b"\0")
    ds.file_meta.ImplementationVersionName = "QUIXOTE"
    ds.file_meta.PrivateInformationCreatorUID = "1.2.3.4"
    ds.file_meta.PrivateInformation = NEEDLE.encode()


def _icon(ds):
    rows, cols = 8, 32
    px = (NEEDLE.encode() * 10)[: rows * cols]
    ds.IconImageSequence = _seq(_item(Rows=rows, Columns=cols, SamplesPerPixel=1, PhotometricInterpretation="MONOCHROME2",
                                      BitsAllocated=8, BitsStored=8, HighBit=7, PixelRepresentation=0,
                                      PixelData=px, ImageComments=NEEDLE))
    ds["IconImageSequence"][0]["PixelData"].VR = "OB"


def _acq_context(ds):
    items = [_item(ValueType="TEXT", ConceptNameCodeSequence=_seq(_code("121106", "DCM", "Comment")), TextValue=NEEDLE),
             _item(ValueType="PNAME", ConceptNameCodeSequence=_seq(_code("121008", "DCM", "Person Observer Name")),
                   PersonName=NAME_DCM),
             _item(ValueType="DATE", ConceptNameCodeSequence=_seq(_code("111526", "DCM", "DateTime Started")),
                   Date=DATE_DA),
             _item(ValueType="CODE", ConceptNameCodeSequence=_seq(_code("111704", "DCM", "Processing type")),
                   ConceptCodeSequence=_seq(_code("ZX2477139", "99QUIX", NEEDLE)))]
    ds.AcquisitionContextSequence = _seq(*items)


def _specimen(ds):
    prep = _item(SpecimenPreparationStepContentItemSequence=_seq(
        _item(ValueType="TEXT", ConceptNameCodeSequence=_seq(_code("121041", "DCM", "Specimen Identifier")),
              TextValue=ACC),
        _item(ValueType="PNAME", ConceptNameCodeSequence=_seq(_code("121008", "DCM", "Person Observer Name")),
              PersonName=NAME_DCM),
        _item(ValueType="DATETIME", ConceptNameCodeSequence=_seq(_code("111701", "DCM", "Date and time of processing")),
              DateTime=DATE_DA + "1022")))
    sp = _item(SpecimenIdentifier=ACC, SpecimenUID=UID_WITH_DATE, SpecimenShortDescription=NEEDLE,
               SpecimenDetailedDescription=NEEDLE,
               IssuerOfTheSpecimenIdentifierSequence=_seq(_item(LocalNamespaceEntityID=NAME)),
               SpecimenPreparationSequence=_seq(prep))
    ds.SpecimenDescriptionSequence = _seq(sp)
    ds.IssuerOfTheContainerIdentifierSequence = _seq(_item(LocalNamespaceEntityID=NAME))
    ds.ContainerIdentifier = ACC


def _frames(how: str):
    def f(ds):
        from pydicom.encaps import encapsulate, generate_frames
        if "PixelData" not in ds or not ds.file_meta.TransferSyntaxUID.is_compressed:
            return
        nf = int(ds.get("NumberOfFrames", 1))
        note = NEEDLE.encode()
        out = []
        for fr in generate_frames(ds.PixelData, number_of_frames=nf):
            fr = bytes(fr)
            if fr.startswith(b"\xff\xd8"):
                fr = fr.rstrip(b"\0")
                fr = {"app13": lambda s: insert_after_soi(s, app(13, b"Photoshop 3.0\0" + note)),
                      "app2": lambda s: insert_after_soi(s, app(2, b"ICC_PROFILE\0" + note)),
                      "com_before_sos": lambda s: insert_before_sos(s, com(note)),
                      "after_eoi": lambda s: s + note}[how](fr)
            if len(fr) % 2:
                fr += b"\0"
            out.append(fr)
        ds.PixelData = encapsulate(out)
    return f


def _urls_waveform(ds):
    ds.add_new(0x00287FE0, "UR", f"https://pacs.example/wado/{ACC}?name=Quixote")   # PixelDataProviderURL
    ds.RetrieveURL = f"https://pacs.example/{ACC}"
    wave = _item(WaveformOriginality="ORIGINAL", NumberOfWaveformChannels=1, NumberOfWaveformSamples=len(NEEDLE) // 2,
                 SamplingFrequency=100, WaveformBitsAllocated=16, WaveformSampleInterpretation="SS",
                 ChannelDefinitionSequence=_seq(_item(ChannelLabel=ACC)))
    wave.add_new(0x54001010, "OW", NEEDLE.encode()[: len(NEEDLE) // 2 * 2])
    ds.WaveformSequence = _seq(wave)
    ds.add_new(0x50000022, "LO", NEEDLE)  # CurveDescription (retired repeating group)


def _native_pixel_tail(ds):
    """Native pixel data longer than rows x columns x samples x frames: the tail holds the needle."""
    if ds.file_meta.TransferSyntaxUID.is_compressed or "PixelData" not in ds:
        return
    ds.PixelData = bytes(ds.PixelData) + NEEDLE.encode() + (b"\0" if len(NEEDLE) % 2 else b"")


def _extended_offset_table(ds):
    """Extended Offset Table (7FE0,0001) and its lengths (7FE0,0002): 8-byte numbers anyone can fill with text."""
    note = (NEEDLE.encode() + b" ")[:40]
    ds.add_new(0x7FE00001, "OV", note)
    ds.add_new(0x7FE00002, "OV", note)


def _trailing(ds):
    ds.add_new(0xFFFCFFFC, "OB", NEEDLE.encode())


DICOM_PLACES = {"PN-every-person": _pn, "LO": _lo, "LT-ST-UT": _lt_st_ut, "SH": _sh, "CS": _cs,
                "DA-DT-TM": _da_dt_tm, "UI": _ui, "AE": _ae, "private-blocks": _private,
                "private-safe-creators": _private_known_creator, "nested-sequences": _nested,
                "text-graphic-annotation": _annotation, "overlay": _overlay, "preamble-file-meta": _preamble_meta,
                "icon-image": _icon, "acquisition-context": _acq_context, "specimen-description": _specimen,
                "frames-app13": _frames("app13"), "frames-app2": _frames("app2"),
                "frames-com-before-sos": _frames("com_before_sos"), "frames-after-eoi": _frames("after_eoi"),
                "dataset-trailing-padding": _trailing, "urls-waveform-curve": _urls_waveform,
                "native-pixel-tail": _native_pixel_tail, "extended-offset-table": _extended_offset_table}


def dicom_builder(edit: Callable, real: Path | None = None, append: bool = False,
                  extra_files: bool = False) -> Callable[[Path], Path]:
    def build(folder: Path) -> Path:
        import pydicom
        src = real if real is not None else dicom_base(folder)
        dst = folder / "in"
        dst.mkdir()
        files = [src] if src.is_file() else sorted(src.iterdir())
        for n, p in enumerate(files):
            ds = pydicom.dcmread(p)
            edit(ds)
            out = dst / f"{n}.dcm"
            ds.save_as(out, enforce_file_format=True)
            if append:
                append_bytes(out, NEEDLE.encode())
        if extra_files:  # what a PACS export or a person leaves beside the instances
            (dst / "README.txt").write_text(f"slides of {NEEDLE}\n")
            (dst / ".notes").write_text(NEEDLE)
            (dst / f"{ACC}.txt").write_text("x")
        return dst if len(files) > 1 or extra_files else dst / "0.dcm"
    return build


def _all(*fs: Callable) -> Callable:
    def edit(ds):
        for f in fs:
            f(ds)
    return edit


def _lse(kind: str):
    """JPEG-LS frames with an LSE segment (0xFFF8) before the scan: preset parameters followed by the
    needle (an over-long segment), or a mapping table (ID 2) whose entries spell the needle."""
    def f(ds):
        from pydicom.encaps import encapsulate, generate_frames
        nf = int(ds.get("NumberOfFrames", 1))
        note = NEEDLE.encode()
        if kind == "overlong":
            body = b"\x01" + struct.pack(">5H", 255, 3, 7, 21, 64) + note
        else:
            body = b"\x02\x05\x01" + note  # ID 2, table 5, 1-byte entries: MAXTAB+1 = len(note)
        seg = b"\xff\xf8" + struct.pack(">H", len(body) + 2) + body
        out = []
        for fr in generate_frames(ds.PixelData, number_of_frames=nf):
            fr = insert_before_sos(bytes(fr), seg)
            out.append(fr + (b"\0" if len(fr) % 2 else b""))
        ds.PixelData = encapsulate(out)
    return f


def j2k_plant(cs: bytes, kind: str) -> bytes:
    """A J2K codestream with the needle in a marker segment decoders skip or read as numbers:
    PLM (main header), PLT (first tile-part header, Psot grown), an over-long CRG or QCD."""
    note = NEEDLE.encode()
    sot = cs.find(b"\xff\x90")
    if kind == "plm":
        seg = b"\xff\x57" + struct.pack(">H", len(note) + 3) + b"\x00" + note
        return cs[:sot] + seg + cs[sot:]
    if kind == "plt":
        seg = b"\xff\x58" + struct.pack(">H", len(note) + 3) + b"\x00" + note
        psot = struct.unpack(">I", cs[sot + 6:sot + 10])[0]
        head = cs[sot:sot + 6] + struct.pack(">I", psot + len(seg) if psot else 0) + cs[sot + 10:sot + 12]
        return cs[:sot] + head + seg + cs[sot + 12:]
    marker = {"crg": b"\xff\x63", "qcd": b"\xff\x5c"}[kind]
    at = cs.find(marker, 0, sot)
    if at < 0:
        if kind != "crg":
            return cs
        ncomp = struct.unpack(">H", cs[4 + 36:4 + 38])[0]
        seg = b"\xff\x63" + struct.pack(">H", 2 + 4 * ncomp + len(note)) + b"\0\0\0\0" * ncomp + note
        return cs[:sot] + seg + cs[sot:]
    n = struct.unpack(">H", cs[at + 2:at + 4])[0]
    return cs[:at + 2] + struct.pack(">H", n + len(note)) + cs[at + 4:at + 2 + n] + note + cs[at + 2 + n:]


def _j2k_frames(kind: str):
    def f(ds):
        from pydicom.encaps import encapsulate, generate_frames
        nf = int(ds.get("NumberOfFrames", 1))
        out = []
        for fr in generate_frames(ds.PixelData, number_of_frames=nf):
            fr = bytes(fr)
            if fr.startswith(b"\xff\x4f"):
                fr = j2k_plant(fr, kind)
            out.append(fr + (b"\0" if len(fr) % 2 else b""))
        ds.PixelData = encapsulate(out)
    return f


def _frames_cycling(ds):
    """Each frame gets another JPEG place (APP13, APP2, COM before SOS, bytes after EOI)."""
    from pydicom.encaps import encapsulate, generate_frames
    if "PixelData" not in ds or not ds.file_meta.TransferSyntaxUID.is_compressed:
        return
    nf = int(ds.get("NumberOfFrames", 1))
    hows = ("app13", "app2", "com_before_sos", "after_eoi")
    out = []
    for j, fr in enumerate(generate_frames(ds.PixelData, number_of_frames=nf)):
        holder = _item()
        holder.file_meta = ds.file_meta
        holder.PixelData = encapsulate([bytes(fr)])
        _frames(hows[j % len(hows)])(holder)
        out.append(next(generate_frames(holder.PixelData, number_of_frames=1)))
    ds.PixelData = encapsulate([bytes(f) + (b"\0" if len(f) % 2 else b"") for f in out])


# groups of places that each published clean on their own (one slide per group keeps the matrix fast)
DICOM_GROUPS = {
    "text-VRs-PN-LO-LT-ST-UT-SH-DA-DT-TM-UI-AE": ("PN-every-person", "LO", "LT-ST-UT", "SH", "DA-DT-TM", "UI", "AE"),
    "private-nested-annotation-overlay-icon": ("private-blocks", "private-safe-creators", "nested-sequences",
                                               "text-graphic-annotation", "overlay", "icon-image"),
    "preamble-meta-context-specimen-urls-padding": ("preamble-file-meta", "acquisition-context",
                                                    "specimen-description", "urls-waveform-curve",
                                                    "dataset-trailing-padding", "extended-offset-table"),
    "CS": ("CS",),
}


def dicom_with_orphan(folder: Path) -> Path:
    """The clean series plus one instance of another series (and study) full of the needle."""
    import pydicom
    from pydicom.uid import generate_uid
    dst = dicom_builder(lambda ds: None)(folder)
    first = sorted(dst.iterdir())[0]
    ds = pydicom.dcmread(first)
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID = generate_uid(), generate_uid(), generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    _pn(ds)
    _lo(ds)
    ds.SeriesDescription = NEEDLE
    ds.save_as(dst / f"zz-{ACC}.dcm", enforce_file_format=True)
    return dst


def dicom_places(real_files: dict[str, Path]) -> list[Place]:
    out = [Place(f"dicom-{k}", dicom_builder(_all(*(DICOM_PLACES[p] for p in v)))) for k, v in DICOM_GROUPS.items()]
    out.append(Place("dicom-frames-jpeg-segments", dicom_builder(_frames_cycling)))
    out.append(Place("dicom-bytes-after-dataset", dicom_builder(lambda ds: None, append=True)))
    out.append(Place("dicom-other-files-in-folder", dicom_builder(lambda ds: None, extra_files=True)))
    out.append(Place("dicom-orphan-series-in-folder", dicom_with_orphan))
    for name, path in real_files.items():
        if name in ("jpegls", "j2k"):
            continue
        pixels = _native_pixel_tail if name == "highdicom" else _frames_cycling
        out.append(Place(f"real-{name}-all-groups", dicom_builder(_all(*(DICOM_PLACES[p] for g in (
            "text-VRs-PN-LO-LT-ST-UT-SH-DA-DT-TM-UI-AE", "private-nested-annotation-overlay-icon",
            "preamble-meta-context-specimen-urls-padding") for p in DICOM_GROUPS[g])), real=path)))
        out.append(Place(f"real-{name}-pixel-data", dicom_builder(pixels, real=path)))
    if "j2k" in real_files:
        for kind in ("plm", "plt", "crg", "qcd"):
            out.append(Place(f"real-j2k-{kind}", dicom_builder(_j2k_frames(kind), real=real_files["j2k"])))
    if "jpegls" in real_files:
        for kind in ("overlong", "mapping-table"):
            out.append(Place(f"real-jpegls-lse-{kind}", dicom_builder(_lse(kind), real=real_files["jpegls"])))
    return out


# ------------------------------------------------------------------ MIRAX
def _ini_edit(path: Path, edit: Callable[[list[str]], list[str]]) -> None:
    raw = path.read_bytes()
    bom = raw.startswith(b"\xef\xbb\xbf")
    lines = raw[3 if bom else 0:].decode().split("\r\n")
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + "\r\n".join(edit(lines)).encode())


def _every_section(lines: list[str]) -> list[str]:
    """An unknown key and a comment in every section, and a section of its own (a bare line is refused)."""
    out = []
    for ln in lines:
        out.append(ln)
        if ln.startswith("["):
            out += [f"PATIENT_NOTE = {NEEDLE}", f"# {NEEDLE}"]
    return out[:-1] + ["[QUIXOTE_PATIENT]", f"NAME = {NEEDLE}", "QUIXOTE_ZX24_77139 = 1", ""]


_MRXS_STRUCTURAL = ("IMAGENUMBER", "COUNT", "_SECTION", "INDEXFILE", "FILE_", "DIGITIZER", "IMAGE_FORMAT",
                    "CONCAT", "CameraImage", "SLIDE_ID", "MICROMETER", "OVERLAP", "HIER_", "_TYPE", "SLIDE_VERSION",
                    "OBJECTIVE_MAGNIFICATION", "FILL_COLOR")


def _kept_values(lines: list[str]) -> list[str]:
    """The needle after the value of every key that does not place pixels."""
    out = []
    for ln in lines:
        if "=" in ln and not ln.startswith("[") and not any(s in ln.split("=")[0] for s in _MRXS_STRUCTURAL):
            ln = f"{ln} {NEEDLE}"
        out.append(ln)
    return out


def mrxs_place(kind: str) -> Callable[[Path], Path]:
    def build(folder: Path) -> Path:
        from wsideid.mrxs.synth import make_mrxs
        path = folder / "slide.mrxs"
        make_mrxs(str(path), tiles_x=2, tiles_y=2, levels=2,
                  tile_comment=NEEDLE.encode() if kind == "tile-com" else None)
        data = folder / "slide"
        if kind == "ini-every-section":
            _ini_edit(data / "Slidedat.ini", _every_section)
        elif kind == "ini-semicolon-comment":  # GLib (OpenSlide) refuses it, and its message quotes the line
            _ini_edit(data / "Slidedat.ini", lambda lines: lines[:2] + [f"; {NEEDLE}"] + lines[2:])
        elif kind == "ini-repeated-group":  # refused: the message must not name the group
            _ini_edit(data / "Slidedat.ini", lambda lines: lines[:-1] + ["[QUIXOTE_ZEPHYRINA]", "A = 1",
                                                                          "[QUIXOTE_ZEPHYRINA]", "B = 1", ""])
        elif kind == "ini-kept-values":
            _ini_edit(data / "Slidedat.ini", _kept_values)
        elif kind == "data-header":  # the zero run after the data file's header
            raw = bytearray((data / "Data0000.dat").read_bytes())
            at = raw.index(b'ProfileName="Quokka Profile 7";') + 40
            raw[at:at + len(NEEDLE)] = NEEDLE.encode()
            (data / "Data0000.dat").write_bytes(bytes(raw))
        elif kind == "files-tails":  # after the last record of the data and index files, an extra file
            append_bytes(data / "Data0000.dat", NEEDLE.encode())
            append_bytes(data / "Index.dat", NEEDLE.encode())
            (data / "notes.txt").write_text(NEEDLE)
            path.write_text(f"MIRAX slide of {NEEDLE}\n")
        return path
    return build


def mrxs_places() -> list[Place]:
    return [Place(f"mrxs-{k}", mrxs_place(k)) for k in ("ini-every-section", "ini-semicolon-comment", "ini-repeated-group",
                                                          "ini-kept-values", "data-header",
                                                          "files-tails", "tile-com")]


# ------------------------------------------------------------------ real slides (../shared/testdata)
REAL_TIFF = {"cmu1-svs": "svs/CMU-1-Small-Region.svs", "tcga-j2k-svs": "svs/tcga-cr-7395-01a-01-ts1.svs",
             "ndpi": "ndpi/test3-TRITC-2-560.ndpi", "boxes-deflate-tiff": "tiff/openslide-python_boxes.tiff",
             "large-image-tiff": "tiff/large_image_converter_cmu1_small.tiff",
             "ome-aics": "ome-tiff/aics_s_1_t_1_c_1_z_1.ome.tiff", "ome-viv": "ome-tiff/viv_multi-channel.ome.tif",
             "libvips-subifd": "tiff/libvips_subifd_pyramid_cmu1_small.tif"}


def real_tile_edit() -> Callable:
    """JPEG tiles: every JPEG place in turn; JPEG 2000 tiles: COM, PLM, PLT in turn."""
    jpeg = cycling_edit(0)
    kinds = ("com", "plm", "plt")

    def edit(i, t, raw):
        if raw[:2] == b"\xff\x4f":
            k = kinds[(i + t) % 3]
            return pc.j2k_with_comment(raw, NEEDLE.encode()) if k == "com" else j2k_plant(raw, k)
        return jpeg(i, t, raw)
    return edit


def real_tiff_place(path: Path, what: str) -> Callable[[Path], Path]:
    def build(folder: Path) -> Path:
        dst = folder / ("slide" + "".join(path.suffixes[-2:] if path.name.endswith(".ome.tiff") else path.suffixes[-1:]))
        if what == "tail":  # after the last IFD, and an ImageDescription overwritten in place
            shutil.copyfile(path, dst)
            append_bytes(dst, b"\0" + NEEDLE.encode())
            return dst
        tags = {315: _needle_only(315), 316: _needle_only(316), 269: _needle_only(269),
                700: lambda s, i: blob_entry(700, XMP, 1), 34675: lambda s, i: blob_entry(34675, pc.icc_profile(NEEDLE))}
        ndpi = path.suffix == ".ndpi"
        edit = real_tile_edit()
        ov = {i: {t: f(path, i) for t, f in tags.items()} for i in range(n_ifds(path))}
        if ndpi:
            shift_mcu_starts(path, ov, edit)
        pc.rewrite_tiff(path, dst, ov, None, edit)
        return dst
    return build


def real_tiff_places(testdata: Path) -> list[Place]:
    out = []
    for name, rel in REAL_TIFF.items():
        p = testdata / rel
        if name != "libvips-subifd":  # (its SubIFD offsets cannot be carried by a top-level rewrite)
            out.append(Place(f"real-{name}-tags-and-tiles", real_tiff_place(p, "tags")))
        out.append(Place(f"real-{name}-tail", real_tiff_place(p, "tail")))
    return out
