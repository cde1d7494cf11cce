"""Synthetic Ventana BIF and Leica SCN slides, written to their published descriptions.

Made at test time by tifffile (nothing committed), small, with fake PHI in
every carrier the descriptions list (:data:`BIF_PHI`, :data:`SCN_PHI`):
the tests look for each planted value in the output. Layouts follow
OpenSlide's ventana and leica drivers and format pages (facts and sources:
../shared/research/formats-more.md), so OpenSlide reads the fixture as
the vendor before and after de-identification.
"""

from __future__ import annotations

import base64

import numpy as np
import tifffile

from .synth import label_image, tissue

# Planted values: each must be absent from a de-identified output.
BIF_PHI = {
    "Barcode1D": "BIFBC-55731",
    "Barcode2D": "BIF2D-88120",
    "UnitNumber": "DP200-SN-440917",
    "UserName": "jrivera.histo",
    "BaseName": "S26-004213_A1",
    "JP2FileName": "S26-004213_A1.jp2",
    "BuildDate": "2025-11-03 14:22:07",
    "Note": "PATIENT MORALES^ELENA",   # text of an element outside the BIF structure
    "Comment": "accession 26-77-1043",  # an XML comment
    "Artist": "tech ONEILL",
}
SCN_PHI = {
    "barcode": "SCNBC-30917",
    "name": "H26-1187 KOWALSKI",
    "creationDate": "2025-10-17T09:14:55.312Z",
    "serial": "LSN-7730466104",
    "uuid": "9f1c2d8e-5b7a-4c3e-8d21-77aa0b9c4e10",
    "user": "operator MBEKI",           # unknown attribute on the collection
    "imagename": "macro of H26-1187",
}
SCN_NS = "http://www.leica-microsystems.com/scn/2010/10/01"


def _jpeg(img, tile, **kw):
    return dict(tile=tile, photometric="rgb", compression="jpeg", compressionargs={"level": 85}, metadata=None, **kw)


def _xmp(text: str) -> list[tuple]:
    raw = text.encode("utf-8")
    return [(700, 1, len(raw), raw, True)]


def bif_iscan(phi: dict[str, str], root: bool = True) -> str:
    attrs = (f'Barcode1D="{phi["Barcode1D"]}" Barcode2D="{phi["Barcode2D"]}" BaseName="{phi["BaseName"]}" '
             f'BuildDate="{phi["BuildDate"]}" BuildVersion="1.1.0.15854" FocusMode="Auto" '
             f'JP2FileName="{phi["JP2FileName"]}" Magnification="40" ScanMode="1" ScanRes="0.2325" '
             f'ScannerModel="VENTANA DP 200" ShowLabel="1" UnitNumber="{phi["UnitNumber"]}" '
             f'UserName="{phi["UserName"]}" Z-layers="1" Z-spacing="1"')
    body = (f'<iScan {attrs}><AOI0 Left="10" Top="20" Right="900" Bottom="700"/>'
            f'<Note>{phi["Note"]}</Note></iScan>')
    return (f'<?xml version="1.0" encoding="utf-8"?><!-- {phi["Comment"]} -->'
            f'<Metadata>{body}</Metadata>') if root else body


def bif_encodeinfo(phi: dict[str, str], cols: int, rows: int, tile: int) -> str:
    # one AOI; one joint per axis (tiles numbered from 1, bottom row first, serpentine), no overlap
    joints = (f'<TileJointInfo FlagJoined="1" Direction="RIGHT" Tile1="1" Tile2="2" OverlapX="0" OverlapY="0" '
              f'Confidence="90"/>'
              f'<TileJointInfo FlagJoined="1" Direction="UP" Tile1="1" Tile2="{2 * cols}" OverlapX="0" '
              f'OverlapY="0" Confidence="90"/>')
    return (f'<?xml version="1.0" encoding="utf-8"?><EncodeInfo Ver="2">'
            f'<SlideInfo>{bif_iscan(phi, root=False)}</SlideInfo>'
            f'<SlideStitchInfo><ImageInfo AOIScanned="1" AOIIndex="0" Width="{tile}" Height="{tile}" '
            f'NumRows="{rows}" NumCols="{cols}" Pos-X="0" Pos-Y="0">{joints}</ImageInfo></SlideStitchInfo>'
            f'<AoiOrigin><AOI0 OriginX="0" OriginY="0"/></AoiOrigin>'
            f'<Operator>{phi["UserName"]}</Operator></EncodeInfo>')


def make_bif(path: str, cols: int = 4, rows: int = 3, tile: int = 256, levels: int = 3,
             phi: dict[str, str] | None = None, thumbnail: bool = True) -> dict[str, str]:
    """A BigTIFF BIF: Label_Image (iScan XMP), Probability_Image, Thumbnail, then the
    levels (``level=N mag=M quality=90``, JPEG tiles) with EncodeInfo on level 0."""
    phi = dict(BIF_PHI if phi is None else phi)
    w, h = cols * tile, rows * tile
    base = tissue(w, h, seed=11)
    lab = label_image(384, 256, [phi["Barcode1D"], phi["UserName"]], code=phi["Barcode2D"])
    with tifffile.TiffWriter(path, bigtiff=True) as tw:
        tw.write(lab, photometric="rgb", compression="lzw", rowsperstrip=64, description="Label_Image",
                 software="ScanOutputManager 1.1.0.15854", metadata=None,
                 extratags=_xmp(bif_iscan(phi)) + [(315, 2, 0, phi["Artist"], True)])
        tw.write((base[::8, ::8, 0] > 128).astype(np.uint8) * 255, photometric="minisblack", rowsperstrip=64,
                 description="Probability_Image", metadata=None)
        if thumbnail:
            tw.write(np.ascontiguousarray(base[::8, ::8]), photometric="rgb", rowsperstrip=64, compression="jpeg",
                     description="Thumbnail", metadata=None)
        for lv in range(levels):
            img = np.ascontiguousarray(base[::2 ** lv, ::2 ** lv])
            extra = _xmp(bif_encodeinfo(phi, cols, rows, tile)) if lv == 0 else []
            tw.write(img, description=f"level={lv} mag={40 // 2 ** lv} quality=90", extratags=extra,
                     resolution=(1e4 / 0.2325 / 2 ** lv, 1e4 / 0.2325 / 2 ** lv), resolutionunit="CENTIMETER",
                     **_jpeg(img, (tile, tile)))
    return phi


def scn_xml(phi: dict[str, str], w: int, h: int, mw: int, mh: int, nm_px: int, levels: int,
            macro_levels: int) -> str:
    """The SCN collection: the macro image (offset 0,0, the collection's size) at IFDs
    0.., the main image after it; sizes in nm."""
    cw, ch = 2 * w * nm_px, 2 * h * nm_px  # the slide (and the macro's view) is larger than the scanned area
    macro_nm = cw // mw
    macro_dims = "".join(f'<dimension sizeX="{mw >> r}" sizeY="{mh >> r}" r="{r}" ifd="{r}"/>'
                         for r in range(macro_levels))
    main_dims = "".join(f'<dimension sizeX="{w >> r}" sizeY="{h >> r}" r="{r}" ifd="{macro_levels + r}"/>'
                        for r in range(levels))
    barcode = base64.b64encode(phi["barcode"].encode()).decode()
    device = f'<device model="Leica SCN400;Leica SCN" version="1.5.1.10804 2012/05/10 13:29:07;1.5.1.10864" ' \
             f'serial="{phi["serial"]}"/>'
    return (f'<?xml version="1.0" encoding="utf-8"?>'
            f'<scn xmlns="{SCN_NS}"><collection name="{phi["name"]}" uuid="{phi["uuid"]}" '
            f'sizeX="{cw}" sizeY="{ch}" user="{phi["user"]}"><barcode>{barcode}</barcode>'
            f'<image name="{phi["imagename"]}" uuid="{phi["uuid"]}"><creationDate>{phi["creationDate"]}</creationDate>'
            f'{device}<pixels sizeX="{mw}" sizeY="{mh}">{macro_dims}</pixels>'
            f'<view sizeX="{cw}" sizeY="{ch}" offsetX="0" offsetY="0" spacingZ="0"/>'
            f'<scanSettings><objectiveSettings><objective>5</objective></objectiveSettings>'
            f'<illuminationSettings><numericalAperture>0.1</numericalAperture>'
            f'<illuminationSource>brightfield</illuminationSource></illuminationSettings></scanSettings></image>'
            f'<image name="main" uuid="{phi["uuid"]}"><creationDate>{phi["creationDate"]}</creationDate>{device}'
            f'<pixels sizeX="{w}" sizeY="{h}">{main_dims}</pixels>'
            f'<view sizeX="{w * nm_px}" sizeY="{h * nm_px}" offsetX="{(cw - w * nm_px) // 2}" '
            f'offsetY="{(ch - h * nm_px) // 2}" spacingZ="0"/>'
            f'<scanSettings><objectiveSettings><objective>20</objective></objectiveSettings>'
            f'<illuminationSettings><numericalAperture>0.4</numericalAperture>'
            f'<illuminationSource>brightfield</illuminationSource></illuminationSettings></scanSettings></image>'
            f'</collection></scn>'), macro_nm


def make_scn(path: str, w: int = 1024, h: int = 768, tile: int = 256, levels: int = 3,
             phi: dict[str, str] | None = None) -> dict[str, str]:
    """A BigTIFF SCN: the macro pyramid first (IFD 0 carries the collection XML), then the main image."""
    phi = dict(SCN_PHI if phi is None else phi)
    nm_px = 500
    mw, mh = 512, 256
    macro_levels = 2
    xml, _ = scn_xml(phi, w, h, mw, mh, nm_px, levels, macro_levels)
    base = tissue(w, h, seed=12)
    mac = label_image(mw, mh, [phi["barcode"], phi["name"]], code=phi["barcode"])
    with tifffile.TiffWriter(path, bigtiff=True) as tw:
        for r in range(macro_levels):
            img = np.ascontiguousarray(mac[::2 ** r, ::2 ** r])
            tw.write(img, description=xml if r == 0 else None, software="Leica SCN",
                     **({} if r else {"extratags": [(315, 2, 0, phi["user"], True)]}),
                     **_jpeg(img, (128, 128)))
        for r in range(levels):
            img = np.ascontiguousarray(base[::2 ** r, ::2 ** r])
            res = 1e7 / nm_px / 2 ** r  # pixels per cm
            tw.write(img, resolution=(res, res), resolutionunit="CENTIMETER", **_jpeg(img, (tile, tile)))
    return phi


# Aperio GT450: the header is "Aperio Leica Biosystems GT450 v1.0.1", regions spelled [0,0,WxH],
# 256x256 tiles, IFD 1 a JPEG thumbnail, levels by 4, an LZW label (predictor 2) and a JPEG macro
# (svsutil's README, "Leica/Aperio GT450 operated at 40x").
GT450_PHI = {
    "Barcode": "GT-BC-662019", "Filename": "H26-5512_B3", "Title": "NGUYEN THI H26-5512",
    "User": "a.kowalczyk", "ScanScope ID": "SS45007731", "DSR ID": "pathsrv-07.stmary.local",
    "ImageID": "4471203", "Case Notes": "MRN 00938812 frozen section",
}
GT450_HEADER = "Aperio Leica Biosystems GT450 v1.0.1"


def _gt450_keys(phi: dict[str, str]) -> str:
    keys = {"AppMag": "40", "Barcode": phi["Barcode"], "Date": "11/05/25", "DSR ID": phi["DSR ID"],
            "Exposure Scale": "0.000001", "Exposure Time": "8", "Filename": phi["Filename"], "Filtered": "3",
            "Focus Offset": "0.089996", "Gamma": "2.2", "ImageID": phi["ImageID"], "Left": "25.517",
            "MPP": "0.2630", "Rack": "12", "ScanScope ID": phi["ScanScope ID"], "ScannerType": "GT450",
            "SessionMode": "NR", "Slide": "4", "StripeWidth": "1024", "Time": "14:51:26",
            "Time Zone": "GMT-0500", "Title": phi["Title"], "Top": "20.0175", "User": phi["User"],
            "Case Notes": phi["Case Notes"]}
    return "|".join(f"{k} = {v}" for k, v in keys.items())


def make_gt450_svs(path: str, width: int = 1024, height: int = 768, phi: dict[str, str] | None = None) -> dict[str, str]:
    phi = dict(GT450_PHI if phi is None else phi)
    base = tissue(width, height, seed=13)
    keys = _gt450_keys(phi)
    common = dict(photometric="rgb", compression="jpeg", compressionargs={"level": 91}, metadata=None,
                  software=f"{GT450_HEADER} 2025-11-05", datetime="2025:11:05 14:51:26")
    head = f"{GT450_HEADER}\r\n{width}x{height} [0,0,{width}x{height}] (256x256)"
    with tifffile.TiffWriter(path, bigtiff=False) as tw:
        tw.write(base, tile=(256, 256), description=f"{head} JPEG/RGB Q=91|{keys}", **common)
        thumb = np.ascontiguousarray(base[::4, ::4])
        tw.write(thumb, rowsperstrip=16, description=f"{GT450_HEADER}\r\n{width}x{height} -> "
                 f"{thumb.shape[1]}x{thumb.shape[0]} - |{keys}", **common)
        low = np.ascontiguousarray(base[::4, ::4])
        tw.write(low, tile=(256, 256), description=f"{head} -> {low.shape[1]}x{low.shape[0]} JPEG/RGB Q=91",
                 **common)
        lab = label_image(400, 400, [phi["Barcode"], phi["Title"]], code=phi["Barcode"])
        tw.write(lab, rowsperstrip=64, subfiletype=1, photometric="rgb", compression="lzw", predictor=2,
                 description=f"{GT450_HEADER}\r\nlabel 400x400", metadata=None)
        mac = np.concatenate([lab, tissue(800, 400, seed=14)], axis=1)
        tw.write(mac, rowsperstrip=64, subfiletype=9, photometric="rgb", compression="jpeg",
                 description=f"{GT450_HEADER}\r\nmacro 1200x400", metadata=None)
    return phi


# --- NDPI beyond 4 GB ----------------------------------------------------------
# Two uncompressed "map" images (magnification -2) of zeros come first in the data, so every
# later strip lies beyond 4 GB and needs NDPI's high offset words. Their bytes are a hole in a
# sparse file: the fixture takes a few hundred KB of disk whatever its size.
BIG_MAP_SIDES = ((65535, 65535), (65535, 2))


class _Recipe(Exception):
    def __init__(self, recipe):
        self.recipe = recipe


def write_sparse(blob: str, path: str, ifds, hole_end: int) -> None:
    """What ``write_tiff(blob, path, ifds, "ndpi")`` writes, with the source bytes before
    ``hole_end`` (a hole, zeros) left as a hole in ``path`` too."""
    import os

    from .tiff.writer import write_tiff

    def stop(recipe):
        raise _Recipe(recipe)
    try:
        write_tiff(blob, path + ".never", ifds, "ndpi", "<", on_recipe=stop)
    except _Recipe as r:
        recipe = r.recipe
    else:  # pragma: no cover - write_tiff always calls on_recipe
        raise AssertionError("no recipe")
    assert not recipe.edits
    with open(blob, "rb") as src, open(path, "wb") as dst:
        dst.write(recipe.meta)
        pos = len(recipe.meta)
        for off, length in recipe.runs.tolist():
            start = max(off, hole_end)
            if start < off + length:
                dst.seek(pos + start - off)
                dst.write(os.pread(src.fileno(), off + length - start, start))
            pos += length
        dst.truncate(pos)


def make_ndpi_over_4gb(path: str, width: int = 1024, height: int = 768) -> dict[str, int]:
    """An NDPI whose pyramid and macro strips all lie beyond 4 GB (sparse); returns sizes."""
    import os
    import struct
    import tempfile

    from .synth import _jpeg_with_restarts
    from .tiff.writer import ImageData, OutEntry, OutIfd

    base = tissue(width, height, seed=21)
    strips = []
    for k, mag in enumerate((20.0, 10.0, 5.0)):
        img = np.ascontiguousarray(base[:: 2 ** k, :: 2 ** k])
        data, starts = _jpeg_with_restarts(img)
        strips.append((img.shape[1], img.shape[0], mag, data, starts, 7, 3))
    macro = label_image(600, 300, ["NDPI-4G-CASE-7781"], code="NDPI-4G-CASE-7781")
    mdata, _ = _jpeg_with_restarts(macro)
    strips.append((600, 300, -1.0, mdata, None, 7, 3))

    def u(tag, *vals, typ=4):
        fmt = {3: "H", 4: "I", 9: "i"}[typ]
        return OutEntry(tag, typ, len(vals), struct.pack(f"<{len(vals)}{fmt}", *vals))

    def s(tag, text):
        raw = text.encode() + b"\0"
        return OutEntry(tag, 2, len(raw), raw)

    fd, blob = tempfile.mkstemp(suffix=".strips", dir=os.path.dirname(os.path.abspath(path)))
    ifds, hole_end = [], 0
    with os.fdopen(fd, "wb") as fh:
        for w, h in BIG_MAP_SIDES:  # zeros: a hole
            ifds.append((w, h, -2.0, hole_end, w * h, None, 1, 1))
            hole_end += w * h
        fh.truncate(hole_end)
        fh.seek(hole_end)
        for w, h, mag, data, starts, comp, spp in strips:
            ifds.append((w, h, mag, fh.tell(), len(data), starts, comp, spp))
            fh.write(data)
    out = []
    for w, h, mag, off, n, starts, comp, spp in ifds:
        e = {256: u(256, w), 257: u(257, h), 258: u(258, *([8] * spp), typ=3), 259: u(259, comp, typ=3),
             262: u(262, 6 if comp == 7 else 1, typ=3), 271: s(271, "Hamamatsu"), 272: s(272, "C13210"),
             277: u(277, spp, typ=3), 278: u(278, h), 282: OutEntry(282, 5, 1, struct.pack("<II", 45000, 1)),
             283: OutEntry(283, 5, 1, struct.pack("<II", 45000, 1)), 296: u(296, 3, typ=3),
             65420: u(65420, 1, typ=3), 65421: OutEntry(65421, 11, 1, struct.pack("<f", mag)),
             65422: u(65422, 1000, typ=9), 65423: u(65423, -2000, typ=9),
             65442: s(65442, "NDPI4G-SN-55120"), 65449: s(65449, "NDP.S/N=NDPI4G-SN-55120\r\nProduct=C13210\r\n")}
        if starts is not None:
            e[65424] = u(65424, 0, typ=9)
            e[65426] = u(65426, *starts)
        out.append(OutIfd(e, ImageData(273, 279, np.array([off], np.int64), np.array([n], np.int64))))
    # the pyramid first in the IFD chain (NDPI order), the maps last; their data stays first
    out = out[2:] + out[:2]
    try:
        write_sparse(blob, path, out, hole_end)
    finally:
        os.unlink(blob)
    return {"hole": hole_end, "size": os.path.getsize(path)}


def make_j2k_svs(path: str, width: int = 1024, height: int = 768, mpp: float | None = None, seed: int = 4) -> None:
    """A TCGA-style Aperio SVS: JPEG 2000 tiles (33005, RGB, irreversible), a JPEG thumbnail and a
    J2K level 1, with no MPP in the description unless ``mpp`` is given (the TCGA sample has none)."""
    base = tissue(width, height, seed)
    head = f"Aperio Image Library v11.0.37\r\n{width}x{height} (256x256) J2K/KDU Q=70"
    extra = f"|AppMag = 20|MPP = {mpp:g}" if mpp is not None else ""
    j2k = dict(photometric="rgb", compression=33005, compressionargs={"level": 70}, metadata=None, tile=(256, 256))
    with tifffile.TiffWriter(path, bigtiff=False) as tw:
        tw.write(base, description=head + extra, **j2k)
        thumb = base[::4, ::4]
        tw.write(thumb, rowsperstrip=16, subfiletype=0, photometric="rgb", compression="jpeg",
                 compressionargs={"level": 85}, metadata=None,
                 description=f"Aperio Image Library v11.0.37\n{width}x{height} -> {thumb.shape[1]}x{thumb.shape[0]} - ")
        lvl1 = base[::2, ::2]
        tw.write(lvl1, subfiletype=0, description=f"{head} -> {lvl1.shape[1]}x{lvl1.shape[0]} J2K/KDU Q=70", **j2k)
