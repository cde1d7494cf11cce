"""Synthetic Philips TIFF with planted PHI, written to the published format description.

The layout follows OpenSlide's philips-tiff driver and format page: Software
``Philips DP v1.0``; the IFD 0 ImageDescription a ``DPUfsImport`` XML with
DICOM_* and PIM_DP_* attributes (a Base64 barcode, the device serial, the
operator, acquisition and calibration dates, the source file name in
PIM_DP_SOURCE_FILE and DICOM_DERIVATION_DESCRIPTION, rack and slot); tiled
JPEG levels whose ImageWidth/Length are whole tiles (the reduced levels are
padded), one DICOM_PIXEL_SPACING per level; some tiles absent (byte count 0,
as in multi-ROI scans). The label and macro are either stripped IFDs
described ``Label``/``Macro`` or (``embedded``) Base64 JPEGs in
LABELIMAGE/MACROIMAGE scanned images inside the XML.
"""

from __future__ import annotations

import base64
import io

import numpy as np

from .synth import ACCESSION, MRN, OPERATOR, PATIENT, PLANTED, SCANNER_SN, SynthSlide, label_image, tissue

MPP = 0.25
TILE = 256


def _attr(name: str, value: str, pmsvr: str = "IString", group: str = "0x301D", element: str = "0x1000",
          extra: str = "") -> str:
    return (f'<Attribute Name="{name}" Group="{group}" Element="{element}" PMSVR="{pmsvr}"{extra}>'
            f"{value}</Attribute>")


def _q(*vals) -> str:
    return " ".join(f"&quot;{v}&quot;" for v in vals)


def _jpeg_b64(img: np.ndarray) -> str:
    from PIL import Image
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, "JPEG", quality=85)
    return base64.b64encode(buf.getvalue()).decode()


def philips_xml(levels: int, size: tuple[int, int], label=None, macro=None) -> str:
    spacing = MPP / 1000
    reps = "".join(
        '<DataObject ObjectType="PixelDataRepresentation">'
        + _attr("DICOM_PIXEL_SPACING", _q(f"{spacing * 2 ** k:.9g}", f"{spacing * 2 ** k:.9g}"), "IDoubleArray",
                "0x0028", "0x0030")
        + _attr("PIIM_PIXEL_DATA_REPRESENTATION_NUMBER", str(k), "IUInt16", "0x101D", "0x2001")
        + _attr("PIIM_PIXEL_DATA_REPRESENTATION_COLUMNS", str(size[0] // 2 ** k), "IUInt32", "0x2001", "0x115E")
        + _attr("PIIM_PIXEL_DATA_REPRESENTATION_ROWS", str(size[1] // 2 ** k), "IUInt32", "0x2001", "0x115D")
        + "</DataObject>" for k in range(levels))
    wsi = ('<DataObject ObjectType="DPScannedImage">'
           + _attr("DICOM_DERIVATION_DESCRIPTION", "tiff-useBigTIFF=0-useRgb=0-levels=20,10,5,2-processing=0-q80"
                   f'-sourceFilename=&quot;{ACCESSION}-{PATIENT}&quot;', group="0x0008", element="0x2111")
           + _attr("DICOM_LOSSY_IMAGE_COMPRESSION", "01", group="0x0028", element="0x2110")
           + _attr("DICOM_LOSSY_IMAGE_COMPRESSION_METHOD", _q("PHILIPS_TIFF_1_0"), "IStringArray", "0x0028", "0x2114")
           + _attr("DICOM_PHOTOMETRIC_INTERPRETATION", "RGB", group="0x0028", element="0x0004")
           + _attr("PIM_DP_IMAGE_TYPE", "WSI", element="0x1004")
           + _attr("DICOM_PIXEL_SPACING", _q(f"{spacing:.9g}", f"{spacing:.9g}"), "IDoubleArray", "0x0028", "0x0030")
           + _attr("PIM_DP_SOURCE_FILE", f"{ACCESSION}_{PATIENT}.isyntax", element="0x1005")
           + _attr("PIIM_PIXEL_DATA_REPRESENTATION_SEQUENCE", f"<Array>{reps}</Array>", "IDataObjectArray",
                   "0x1001", "0x1003")
           + "</DataObject>")
    assoc = ""
    for kind, img in (("LABELIMAGE", label), ("MACROIMAGE", macro)):
        if img is not None:
            assoc += ('<DataObject ObjectType="DPScannedImage">' + _attr("PIM_DP_IMAGE_TYPE", kind, element="0x1004")
                      + _attr("PIM_DP_IMAGE_DATA", _jpeg_b64(img), element="0x1005") + "</DataObject>")
    return ('<?xml version="1.0" encoding="UTF-8" ?>\n<DataObject ObjectType="DPUfsImport">'
            + _attr("DICOM_ACQUISITION_DATETIME", "20240314102233.000000", group="0x0008", element="0x002A")
            + _attr("DICOM_DATE_OF_LAST_CALIBRATION", _q("20240314"), "IStringArray", "0x0018", "0x1200")
            + _attr("DICOM_TIME_OF_LAST_CALIBRATION", _q("102233"), "IStringArray", "0x0018", "0x1201")
            + _attr("DICOM_DEVICE_SERIAL_NUMBER", SCANNER_SN, group="0x0018", element="0x1000")
            + _attr("DICOM_MANUFACTURER", "PHILIPS", group="0x0008", element="0x0070")
            + _attr("DICOM_SOFTWARE_VERSIONS", _q("1.6.5807", "20240314_R51"), "IStringArray", "0x0018", "0x1020")
            + _attr("PIIM_DP_SCANNER_OPERATOR_ID", OPERATOR, group="0x101D", element="0x1009")
            + _attr("PIIM_DP_SCANNER_RACK_NUMBER", "7", "IUInt16", "0x101D", "0x1007")
            + _attr("PIIM_DP_SCANNER_SLOT_NUMBER", "3", "IUInt16", "0x101D", "0x1008")
            + _attr("PIM_DP_UFS_BARCODE", base64.b64encode(f"{ACCESSION} {MRN}".encode()).decode(), element="0x1002")
            + _attr("PIM_DP_UFS_INTERFACE_VERSION", "3.0", element="0x1001")
            + _attr("PIM_DP_UFS_NOTE", f"Jane Doe referred by Dr Who, MRN {MRN}", element="0x1010")  # unknown
            + _attr("PIIM_DP_SCANNER_CALIBRATION_STATUS", "OK", group="0x101D", element="0x100A",
                    extra=' Comment="St Elsewhere Hospital"')  # an attribute outside the grammar
            + _attr("PIM_DP_SCANNED_IMAGES", f"<Array>{wsi}{assoc}</Array>", "IDataObjectArray", element="0x1003")
            + "</DataObject>")


def _padded(img: np.ndarray) -> np.ndarray:
    h, w = img.shape[:2]
    ph, pw = -(-h // TILE) * TILE, -(-w // TILE) * TILE
    out = np.full((ph, pw, 3), 255, np.uint8)
    out[:h, :w] = img
    return out


def make_philips_tiff(path: str, width: int = 1536, height: int = 1024, embedded: bool = False,
                      sparse: bool = True, seed: int = 6) -> SynthSlide:
    import tifffile
    base = tissue(width, height, seed)
    lab = label_image(400, 300, [ACCESSION, "DOE, JANE", "03/14/2024"], code=ACCESSION)
    mac = np.concatenate([label_image(300, 300, [ACCESSION, "DOE, JANE"], code=ACCESSION),
                          tissue(600, 300, seed + 5)], axis=1)
    levels = 4
    xml = philips_xml(levels, (width, height), lab if embedded else None, mac if embedded else None)
    common = dict(photometric="rgb", compression="jpeg", compressionargs={"level": 85}, metadata=None)
    res = dict(resolution=(1e4 / MPP, 1e4 / MPP), resolutionunit="CENTIMETER")
    with tifffile.TiffWriter(path, bigtiff=False) as tw:
        tw.write(_padded(base), tile=(TILE, TILE), description=xml.encode(), software="Philips DP v1.0",
                 datetime="2024:03:14 10:22:33", **res, **common)
        for k in range(1, levels):
            tw.write(_padded(base[:: 2 ** k, :: 2 ** k]), tile=(TILE, TILE), subfiletype=1,
                     description=f"level={k} mag={40 // 2 ** k} quality=80", **common)
        if not embedded:
            tw.write(lab, rowsperstrip=64, description=f"Label {ACCESSION}", **common)
            tw.write(mac, rowsperstrip=64, description="Macro", **common)
    if sparse:
        with tifffile.TiffFile(path, mode="r+b") as t:
            page = t.pages[0]
            offs, cnts = list(page.dataoffsets), list(page.databytecounts)
            for i in (len(offs) - 1, len(offs) - 2):  # the last two tiles (bottom right) absent
                offs[i], cnts[i] = 0, 0
            page.tags["TileOffsets"].overwrite(offs)
            page.tags["TileByteCounts"].overwrite(cnts)
    return SynthSlide(path, "philips", PLANTED + ["Dr Who", f"{ACCESSION}-{PATIENT}"])
