"""Synthetic Akoya/PerkinElmer QPTIFF with planted PHI, in tifffile's QPI layout.

Every IFD carries a ``PerkinElmer-QPI-ImageDescription`` XML with the
carriers a Vectra/Polaris file has: SlideID, Barcode, ComputerName,
Identifier, ValidationCode, a ScanProfile (escaped XML naming the operator
and a study path) and a Responsivity calibration record with a date. Two
layouts: ``fluorescence`` (one LZW strip image per channel at full and at
half resolution, as Vectra 3 writes; OpenSlide reads none of it) and
brightfield (one tiled RGB JPEG image per level, which OpenSlide reads as a
generic tiled TIFF). Thumbnail, Overview (the macro) and Label follow.
"""

from __future__ import annotations

from xml.sax.saxutils import escape

import numpy as np

from .synth import ACCESSION, MRN, OPERATOR, PLANTED, SCANNER_SN, SynthSlide, label_image, tissue

CHANNELS = [("DAPI", "0,0,255"), ("Opal 520", "0,255,0"), ("Opal 570", "255,255,0"), ("Opal 690", "255,0,0")]
SOFTWARE = "PerkinElmer-QPI"
IDENT = "7d1c2b3a-2403-1410-2233-5f2b7d1e9c3a"


def qpi_xml(image_type: str, name: str | None = None, color: str | None = None) -> str:
    profile = escape(f'<ScanProfile><Operator>{OPERATOR}</Operator><Study>\\\\lab\\studies\\{ACCESSION} Jane Doe'
                     '</Study></ScanProfile>')
    chan = f"<Name>{name}</Name><Color>{color}</Color>" if name else ""
    return ('<?xml version="1.0" encoding="utf-16"?>\r\n<PerkinElmer-QPI-ImageDescription>'
            f"<DescriptionVersion>2</DescriptionVersion><AcquisitionSoftware>{SOFTWARE}</AcquisitionSoftware>"
            f"<ImageType>{image_type}</ImageType><Identifier>{IDENT}</Identifier>"
            f"<SlideID>{ACCESSION} DOE^JANE</SlideID><Barcode>{MRN}</Barcode>"
            f"<ComputerName>VECTRA-{SCANNER_SN}</ComputerName><IsUnmixedComponent>False</IsUnmixedComponent>"
            f"<ExposureTime>150</ExposureTime><SignalUnits>64</SignalUnits>{chan}<Objective>20x</Objective>"
            f"<ScanProfile>{profile}</ScanProfile><ValidationCode>VC-{MRN}</ValidationCode>"
            "<Responsivity><Filter><Name>DAPI</Name><Date>2024-03-14T10:22:33</Date>"
            "<Operator>Jane Doe</Operator></Filter></Responsivity>"
            '<PatientNote lang="en">Referred by Dr Who</PatientNote>'  # unknown element
            "</PerkinElmer-QPI-ImageDescription>")


def make_qptiff(path: str, fluorescence: bool = True, width: int = 1024, height: int = 768,
                seed: int = 8) -> SynthSlide:
    import tifffile
    base = tissue(width, height, seed)
    lab = label_image(300, 200, [ACCESSION, "DOE, JANE"], code=ACCESSION)
    mac = np.concatenate([label_image(200, 200, [ACCESSION], code=ACCESSION), tissue(400, 200, seed + 1)], axis=1)
    rgb = dict(photometric="rgb", compression="jpeg", compressionargs={"level": 85})
    with tifffile.TiffWriter(path, bigtiff=False) as tw:
        def write(img, xml, **kw):
            tw.write(img, description=xml.encode(), software=SOFTWARE, metadata=None,
                     datetime="2024:03:14 10:22:33", **kw)
        if fluorescence:
            planes = [base[..., k % 3] for k in range(len(CHANNELS))]
            for (name, color), p in zip(CHANNELS, planes):
                write(p, qpi_xml("FullResolution", name, color), photometric="minisblack", compression="lzw",
                      rowsperstrip=64)
            write(base[::4, ::4], qpi_xml("Thumbnail"), **{**rgb, "rowsperstrip": 64})
            for (name, color), p in zip(CHANNELS, planes):
                write(p[::2, ::2], qpi_xml("ReducedResolution", name, color), photometric="minisblack",
                      compression="lzw", rowsperstrip=64, subfiletype=1)
        else:
            write(base, qpi_xml("FullResolution", "Brightfield", "255,255,255"), tile=(256, 256), **rgb)
            write(base[::4, ::4], qpi_xml("Thumbnail"), **{**rgb, "rowsperstrip": 64})
            for k in (2, 4):
                write(base[::k, ::k], qpi_xml("ReducedResolution", "Brightfield", "255,255,255"), tile=(256, 256),
                      subfiletype=1, **rgb)
        write(mac, qpi_xml("Overview"), **{**rgb, "rowsperstrip": 64})
        write(lab, qpi_xml("Label"), photometric="rgb", compression="lzw", rowsperstrip=64)
    return SynthSlide(path, "qptiff", PLANTED + [IDENT, "VECTRA-", "Dr Who", "studies"])
