"""Synthetic slides with planted PHI, written by the project's own code.

Used by ``wsideid demo``, the tests and the benchmarks, so that every PHI
carrier listed in docs/phi-reference.md can be exercised without real
patient data. ``PLANTED`` lists the values planted; tests assert that none
of them survives de-identification.

SVS and generic TIFF are written with tifffile; NDPI, which tifffile cannot
write, with our own TIFF writer in NDPI layout over a scratch file holding
the JPEG strips.
"""

from __future__ import annotations

import io
import os
import struct
import tempfile
from dataclasses import dataclass

import numpy as np

# Values planted in the synthetic slides: none may survive de-identification.
PATIENT = "DOE^JANE"
ACCESSION = "S24-12345"
MRN = "88812345"
OPERATOR = "jsmith.lab"
SCANNER_SN = "SS7788"
PLANTED = [PATIENT, "Jane Doe", ACCESSION, MRN, OPERATOR, SCANNER_SN, "St Elsewhere Hospital",
           "2024-03-14", "03/14/24", "2024:03:14", "2024/03/14", "20240314"]


@dataclass
class SynthSlide:
    path: str
    format: str
    planted: list[str]


def tissue(width: int, height: int, seed: int = 0) -> np.ndarray:
    """Pink-and-purple blobs on white, cheap to make and to compress."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    img = np.full((height, width, 3), 242, np.float32)
    for _ in range(12):
        cx, cy = rng.uniform(0, width), rng.uniform(0, height)
        r = rng.uniform(0.05, 0.2) * min(width, height)
        m = np.exp(-(((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * r * r)))
        col = np.array([rng.uniform(150, 220), rng.uniform(60, 140), rng.uniform(150, 210)], np.float32)
        img = img * (1 - m[..., None] * 0.8) + col * (m[..., None] * 0.8)
    img += rng.normal(0, 4, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def label_image(width: int, height: int, lines: list[str], code: str | None = None) -> np.ndarray:
    """A slide label: printed lines of text and, optionally, a DataMatrix code."""
    from PIL import Image, ImageDraw, ImageFont
    im = Image.new("RGB", (width, height), (250, 250, 245))
    draw = ImageDraw.Draw(im)
    try:
        font = ImageFont.truetype("DejaVuSans-Bold.ttf", max(12, height // 10))
    except OSError:
        font = ImageFont.load_default()
    y = height // 20
    x0 = width // 20
    if code:
        try:
            import zxingcpp
            bc = zxingcpp.create_barcode(code, zxingcpp.BarcodeFormat.DataMatrix)
            img = bc.to_image(scale=max(2, min(width, height) // 60))
            dm = Image.fromarray(np.asarray(img)).convert("RGB")
            side = min(width // 2, height // 2)
            dm = dm.resize((side, side), Image.NEAREST)
            im.paste(dm, (width - side - width // 20, height - side - height // 20))
        except Exception:  # noqa: BLE001 - a label without code is still a label
            pass
    for line in lines:
        draw.text((x0, y), line, fill=(10, 10, 10), font=font)
        y += int(font.size * 1.3) if hasattr(font, "size") else 14
    return np.asarray(im)


def _aperio_description(w: int, h: int, extra: str) -> str:
    keys = {
        "AppMag": "20", "MPP": "0.4990", "StripeWidth": "2040", "Filename": f"{ACCESSION}_{PATIENT}",
        "Date": "03/14/24", "Time": "10:22:33", "Time Zone": "GMT+01:00", "User": OPERATOR,
        "ScanScope ID": SCANNER_SN, "Title": f"Jane Doe {ACCESSION}", "Barcode": ACCESSION,
        "ImageID": MRN, "DSR ID": "St Elsewhere Hospital", "Rack": "3", "Slide": "7",
        "CustomField1": f"MRN {MRN}", "Left": "25.69", "Top": "23.44",
        "UnknownNoteKey": "Referred by Dr Who for Jane Doe on 2024-03-14",
    }
    return (f"Aperio Image Library v12.0.5\r\n{w}x{h} [0,0 {w}x{h}] (256x256) JPEG/RGB Q=70{extra}|"
            + "|".join(f"{k} = {v}" for k, v in keys.items()))


def _tiff_tags_with_phi() -> list[tuple]:
    xmp = ('<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:Description dc:creator="Jane Doe" '
           'xmp:CreateDate="2024-03-14"/></x:xmpmeta>').encode()
    return [
        (315, "s", 0, OPERATOR, True),                      # Artist
        (316, "s", 0, "St Elsewhere Hospital PC-12", True),  # HostComputer
        (33432, "s", 0, "(c) St Elsewhere Hospital for Jane Doe", True),  # Copyright
        (269, "s", 0, f"{ACCESSION}.svs", True),            # DocumentName
        (700, "B", len(xmp), xmp, True),                    # XMP
        (65000, "s", 0, f"private note {MRN} Jane Doe", True),  # unknown private tag
    ]


def add_hidden_carriers(src: str, dst: str) -> None:
    """Rewrite ``src`` to ``dst`` with PHI in the less obvious TIFF places.

    EXIF and GPS child IFDs, UTF-16 XP tags, PageName, IPTC and Photoshop
    blocks on the first IFD, and COM/APP1 segments inside the first tiles of
    the first level: the carriers formats.md lists beyond the vendor keys.
    """
    from .tiff.container import read_tiff
    from .tiff.writer import OutEntry, OutIfd, write_tiff
    from .tiff_family.vendors.tiff_base import image_data

    tf = read_tiff(src)
    bo = tf.byteorder

    def text(tag, value):
        raw = value.encode() + b"\0"
        return OutEntry(tag, 2, len(raw), raw)

    def blob(tag, raw, typ=1):
        return OutEntry(tag, typ, len(raw), raw)

    outs = []
    for i, ifd in enumerate(tf.ifds):
        entries = {t: OutEntry(t, e.type, e.count, e.raw) for t, e in ifd.entries.items() if t not in (273, 279, 324, 325)}
        data = image_data(ifd, bo)
        children = {}
        if i == 0:
            entries[285] = text(285, f"{PATIENT} page")
            entries[40093] = blob(40093, "Jane Doe".encode("utf-16-le") + b"\0\0")  # XPAuthor
            entries[33723] = blob(33723, b"\x1c\x02\x50\x00\x08Jane Doe")  # IPTC byline
            entries[34377] = blob(34377, b"8BIM\x04\x04\x00\x00\x00\x00\x00\x0cJane Doe MRN", 7)
            exif = OutIfd({36867: text(36867, "2024:03:14 10:22:33"),
                           37510: blob(37510, b"ASCII\0\0\0Jane Doe MRN " + MRN.encode(), 7),
                           42032: text(42032, "St Elsewhere Hospital"), 42033: text(42033, SCANNER_SN)})
            gps = OutIfd({0: blob(0, bytes([2, 2, 0, 0])), 27: blob(27, b"ASCII\0\0\0St Elsewhere Hospital", 7)})
            children = {34665: [exif], 34853: [gps]}
            with open(src, "rb") as fh:
                for t in range(min(3, len(data.src_offsets))):
                    fh.seek(int(data.src_offsets[t]))
                    tile = fh.read(int(data.src_counts[t]))
                    note = f"Patient Jane Doe MRN {MRN} {ACCESSION}".encode()
                    seg = (b"\xff\xfe" if t != 1 else b"\xff\xe1") + struct.pack(">H", len(note) + 2) + note
                    data.replaced[t] = tile[:2] + seg + tile[2:]
        outs.append(OutIfd(entries, data, children))
    write_tiff(src, dst, outs, tf.kind, bo)


def make_svs(path: str, width: int = 2048, height: int = 1536, with_label: bool = True,
             with_macro: bool = True, seed: int = 1, hidden_carriers: bool = True) -> SynthSlide:
    """An Aperio-like SVS: tiled JPEG levels, thumbnail, LZW label, JPEG macro,
    and (``hidden_carriers``) PHI in EXIF/GPS/XP tags and inside JPEG tiles."""
    import tifffile
    final = path
    if hidden_carriers:
        path = path + ".plain"
    base = tissue(width, height, seed)
    common = dict(photometric="rgb", compression="jpeg", compressionargs={"level": 85},
                  metadata=None, software="Aperio Image Library v12.0.5 2024-03-14", datetime="2024:03:14 10:22:33")
    with tifffile.TiffWriter(path, bigtiff=False) as tw:
        tw.write(base, tile=(256, 256), description=_aperio_description(width, height, ""),
                 extratags=_tiff_tags_with_phi(), **common)
        thumb = base[::4, ::4]
        tw.write(thumb, rowsperstrip=16, subfiletype=0,
                 description=_aperio_description(width, height, "").replace(
                     "(256x256) JPEG/RGB Q=70", f"-> {thumb.shape[1]}x{thumb.shape[0]} - "), **common)
        lvl1 = base[::2, ::2]
        tw.write(lvl1, tile=(256, 256), subfiletype=0,
                 description=f"Aperio Image Library v12.0.5\r\n{width}x{height} (256x256) -> {lvl1.shape[1]}x{lvl1.shape[0]} JPEG/RGB Q=70",
                 **common)
        if with_label:
            lab = label_image(400, 400, [ACCESSION, "DOE, JANE", "03/14/2024"], code=ACCESSION)
            tw.write(lab, rowsperstrip=64, subfiletype=1, photometric="rgb", compression="lzw",
                     description="Aperio Image Library v12.0.5\r\nlabel 400x400", metadata=None)
        if with_macro:
            mac = np.concatenate([label_image(400, 400, [ACCESSION, "DOE, JANE"], code=ACCESSION),
                                  tissue(800, 400, seed + 5)], axis=1)
            tw.write(mac, rowsperstrip=64, subfiletype=9, photometric="rgb", compression="jpeg",
                     description="Aperio Image Library v12.0.5\r\nmacro 1200x400", metadata=None)
    if hidden_carriers:
        try:
            add_hidden_carriers(path, final)
        finally:
            os.unlink(path)
    return SynthSlide(final, "aperio", PLANTED)


def make_generic_tiff(path: str, width: int = 1024, height: int = 768, seed: int = 2) -> SynthSlide:
    import tifffile
    base = tissue(width, height, seed)
    with tifffile.TiffWriter(path) as tw:
        for k in range(3):
            img = base[:: 2 ** k, :: 2 ** k]
            tw.write(img, tile=(128, 128), photometric="rgb", compression="jpeg", metadata=None,
                     description=f"Patient: Jane Doe; MRN {MRN}; scanned 2024-03-14" if k == 0 else None,
                     datetime="2024:03:14 10:22:33" if k == 0 else None, software="SlideScanner 1.0",
                     extratags=_tiff_tags_with_phi() if k == 0 else None, subfiletype=1 if k else 0)
    return SynthSlide(path, "generic-tiff", PLANTED)


def _jpeg_with_restarts(img: np.ndarray, quality: int = 85) -> tuple[bytes, list[int]]:
    """Baseline JPEG with a restart marker after every MCU row, and the McuStarts."""
    from PIL import Image
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, "JPEG", quality=quality, restart_marker_rows=1, subsampling=0)
    data = buf.getvalue()
    sos = data.index(b"\xff\xda")
    first = sos + 2 + struct.unpack(">H", data[sos + 2:sos + 4])[0]
    starts = [first]
    pos = first
    while True:
        i = data.find(b"\xff", pos)
        if i < 0 or i + 1 >= len(data):
            break
        m = data[i + 1]
        if 0xD0 <= m <= 0xD7:
            starts.append(i + 2)
        if m == 0xD9:
            break
        pos = i + 2 if m != 0xFF else i + 1
    return data, starts


def make_ndpi(path: str, width: int = 2048, height: int = 1536, seed: int = 3,
              level_resolution: bool = False) -> SynthSlide:
    """An NDPI-like slide: JPEG strip levels with restart markers, macro and map, PHI tags.

    ``level_resolution``: each level records its own X/YResolution, as real NDPIs do (wsidicomizer
    tells levels apart by it); off by default, which keeps the recorded golden outputs."""
    from .tiff.writer import ImageData, OutEntry, OutIfd, write_tiff
    base = tissue(width, height, seed)
    props = ("Created=2024/03/14\r\nUpdated=2024/03/15\r\nProduct=C13210\r\nNDP.S/N=" + SCANNER_SN +
             "\r\nMacro.S/N=" + SCANNER_SN + "\r\nroi.barcode.macro=0,0,400,400\r\nOperatorNote=Jane Doe " + MRN +
             "\r\n;Date=2024/03/14\r\n;SerialNumber=" + SCANNER_SN + "\r\n")
    scan_profile = f"<ScanProfile><Operator>{OPERATOR}</Operator><Date>2024-03-14</Date><Slide>{ACCESSION}</Slide></ScanProfile>"
    images = []
    for k, mag in enumerate((20.0, 10.0, 5.0)):
        img = np.ascontiguousarray(base[:: 2 ** k, :: 2 ** k])
        data, starts = _jpeg_with_restarts(img)
        images.append((img.shape[1], img.shape[0], mag, data, starts))
    macro = np.concatenate([label_image(400, 400, [ACCESSION, "DOE, JANE"], code=ACCESSION),
                            tissue(800, 400, seed + 9)], axis=1)
    mdata, _ = _jpeg_with_restarts(macro)
    images.append((macro.shape[1], macro.shape[0], -1.0, mdata, None))
    fd, blob = tempfile.mkstemp(suffix=".strips")
    with os.fdopen(fd, "wb") as fh:
        offsets = []
        for im in images:
            offsets.append(fh.tell())
            fh.write(im[3])

    def s(tag, text):
        raw = text.encode() + b"\0"
        return OutEntry(tag, 2, len(raw), raw)

    def u32(tag, *vals, typ=4):
        fmt = {3: "H", 4: "I", 9: "i"}[typ]
        return OutEntry(tag, typ, len(vals), struct.pack(f"<{len(vals)}{fmt}", *vals))

    ifds = []
    for (w, h, mag, data, starts), off in zip(images, offsets):
        res = struct.pack("<II", round(45000 * mag / 20) if level_resolution and mag > 0 else 45000, 1)
        e = {
            256: u32(256, w), 257: u32(257, h), 258: u32(258, 8, 8, 8, typ=3), 259: u32(259, 7, typ=3),
            262: u32(262, 6, typ=3), 271: s(271, "Hamamatsu"), 272: s(272, "C13210"), 277: u32(277, 3, typ=3),
            278: u32(278, h), 282: OutEntry(282, 5, 1, res), 283: OutEntry(283, 5, 1, res), 296: u32(296, 3, typ=3),
            305: s(305, "NDP.scan 3.2.4"), 306: s(306, "2024:03:14 10:22:33"),
            65420: u32(65420, 1, typ=3), 65421: OutEntry(65421, 11, 1, struct.pack("<f", mag)),
            65422: u32(65422, 1000, typ=9), 65423: u32(65423, -2000, typ=9),
            65427: s(65427, f"{ACCESSION} DOE JANE"), 65442: s(65442, SCANNER_SN), 65449: s(65449, props),
            65468: s(65468, ACCESSION), 65480: s(65480, "DataMatrix"), 65477: s(65477, scan_profile),
        }
        if starts is not None:
            e[65424] = u32(65424, 0, typ=9)
            e[65426] = u32(65426, *starts)
        ifds.append(OutIfd(e, ImageData(273, 279, np.array([off], np.int64), np.array([len(data)], np.int64))))
    try:
        write_tiff(blob, path, ifds, "ndpi", "<")
    finally:
        os.unlink(blob)
    return SynthSlide(path, "hamamatsu", PLANTED)


def make_all(folder: str) -> list[SynthSlide]:
    os.makedirs(folder, exist_ok=True)
    return [make_svs(os.path.join(folder, "synthetic-aperio.svs")),
            make_ndpi(os.path.join(folder, "synthetic-hamamatsu.ndpi")),
            make_generic_tiff(os.path.join(folder, "synthetic-generic.tiff"))]


def make_dicom(folder: str) -> SynthSlide:
    """A DICOM WSI series (levels, label, overview) with planted PHI.

    Made by converting a synthetic SVS with wsidicomizer (the ``convert``
    extra) under identifying metadata, then planting more values with
    pydicom: patient and physician names, dates, institution, accession, a
    private block. Raises ImportError when wsidicomizer is not installed.
    """
    import tempfile
    import warnings

    import pydicom
    from wsidicom.metadata import Patient, Series, Slide, Study
    from wsidicomizer import WsiDicomizer
    from wsidicomizer.metadata import WsiDicomizerMetadata

    os.makedirs(folder, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        svs = os.path.join(tmp, "src.svs")
        make_svs(svs, width=1024, height=768, hidden_carriers=False)
        meta = WsiDicomizerMetadata(study=Study(identifier=ACCESSION, accession_number=ACCESSION),
                                    series=Series(number=1), patient=Patient(name=PATIENT, identifier=MRN),
                                    slide=Slide(identifier=ACCESSION))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            WsiDicomizer.convert(svs, folder, metadata=meta, include_label=True, include_overview=True,
                                 include_confidential=True, workers=1)
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name)
        ds = pydicom.dcmread(path)
        ds.PatientName = PATIENT
        ds.PatientID = MRN
        ds.PatientBirthDate = "19700101"
        ds.ReferringPhysicianName = "WHO^DOCTOR"
        ds.InstitutionName = "St Elsewhere Hospital"
        ds.OperatorsName = OPERATOR.upper()
        ds.StudyDate = ds.SeriesDate = ds.ContentDate = "20240314"
        ds.AccessionNumber = ACCESSION
        ds.DeviceSerialNumber = SCANNER_SN
        block = ds.private_block(0x0011, "ST ELSEWHERE LIS", create=True)
        block.add_new(0x01, "LO", f"Jane Doe {MRN}")
        ds.save_as(path)
    return SynthSlide(folder, "dicom", PLANTED)
