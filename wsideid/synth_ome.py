"""Synthetic OME-TIFF with planted PHI, written to the OME-TIFF specification.

Why our own OME-XML rather than tifffile's: tifffile writes only the
structural part; a Bio-Formats export also carries Experimenter, image
names and descriptions, AcquisitionDate, TiffData UUID file names, the
instrument's model and serial number and structured annotations. Each of
those carriers gets a planted value (``synth.PLANTED``). The pixels are
written by tifffile: JPEG tiles with a two-level SubIFD pyramid (as
bfconvert and tifffile write it), then the label and the macro as their own
OME Images named ``label`` and ``macro``.
"""

from __future__ import annotations

from xml.sax.saxutils import quoteattr

import numpy as np

from .synth import ACCESSION, MRN, OPERATOR, PATIENT, PLANTED, SCANNER_SN, SynthSlide, label_image, tissue

NS = "http://www.openmicroscopy.org/Schemas/OME/2016-06"
UUID = "urn:uuid:5f2b7d1e-9c3a-4e61-8b0d-24031410223a"
MPP = 0.25


def _pixels(k: int, w: int, h: int, ifd: int, physical: bool) -> str:
    phys = (f' PhysicalSizeX="{MPP}" PhysicalSizeXUnit="µm" PhysicalSizeY="{MPP}" PhysicalSizeYUnit="µm"'
            if physical else "")
    return (f'<Pixels ID="Pixels:{k}" DimensionOrder="XYCZT" Type="uint8" SizeX="{w}" SizeY="{h}" SizeC="3" '
            f'SizeZ="1" SizeT="1" Interleaved="true"{phys}>'
            f'<Channel ID="Channel:{k}:0" SamplesPerPixel="3" Name={quoteattr("H&E " + PATIENT)}><LightPath/></Channel>'
            f'<TiffData IFD="{ifd}" PlaneCount="1"><UUID FileName={quoteattr(ACCESSION + "_" + PATIENT + ".ome.tif")}>'
            f'{UUID}</UUID></TiffData></Pixels>')


def ome_xml(size: tuple[int, int], label: tuple[int, int] | None, macro: tuple[int, int] | None) -> str:
    """The OME-XML of the fixture, with PHI in every carrier the schema offers."""
    w, h = size
    images = [f'<Image ID="Image:0" Name={quoteattr(ACCESSION + " Jane Doe")}>'
              '<AcquisitionDate>2024-03-14T10:22:33</AcquisitionDate>'
              '<ExperimenterRef ID="Experimenter:0"/>'
              f'<Description>MRN {MRN} Jane Doe, scanned 03/14/24</Description>'
              '<InstrumentRef ID="Instrument:0"/><ObjectiveSettings ID="Objective:0" Medium="Air"/>'
              + _pixels(0, w, h, 0, True) + '<AnnotationRef ID="Annotation:0"/></Image>']
    ifd = 1
    for k, (name, wh) in enumerate((("label", label), ("macro", macro)), 1):
        if wh is not None:
            images.append(f'<Image ID="Image:{k}" Name="{name}">{_pixels(k, *wh, ifd, False)}</Image>')
            ifd += 1
    return ('<?xml version="1.0" encoding="UTF-8"?>'
            f'<OME xmlns="{NS}" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
            f'xsi:schemaLocation="{NS} {NS}/ome.xsd" UUID="{UUID}" Creator="OME Bio-Formats 6.8.0">'
            f'<Experimenter ID="Experimenter:0" FirstName="Jane" LastName="Doe" UserName="{OPERATOR}" '
            'Email="jane.doe@st-elsewhere.example" Institution="St Elsewhere Hospital"/>'
            '<Instrument ID="Instrument:0"><Microscope Manufacturer="Acme" Model="Scan 9000" '
            f'SerialNumber="{SCANNER_SN}"/><Objective ID="Objective:0" Model="Plan-Apo 20x" '
            f'SerialNumber="{SCANNER_SN}-OBJ" NominalMagnification="20.0" LensNA="0.8" Immersion="Air"/></Instrument>'
            + "".join(images) +
            '<StructuredAnnotations><CommentAnnotation ID="Annotation:0"><Value>Referred by Dr Who for '
            'Jane Doe on 2024-03-14</Value></CommentAnnotation><MapAnnotation ID="Annotation:1"><Value>'
            f'<M K="Patient">{PATIENT}</M><M K="MRN">{MRN}</M></Value></MapAnnotation></StructuredAnnotations>'
            '</OME>')


def make_ome_tiff(path: str, width: int = 1536, height: int = 1024, with_label: bool = True,
                  with_macro: bool = True, seed: int = 4) -> SynthSlide:
    import tifffile
    base = tissue(width, height, seed)
    lab = label_image(400, 300, [ACCESSION, "DOE, JANE", "03/14/2024"], code=ACCESSION) if with_label else None
    mac = (np.concatenate([label_image(300, 300, [ACCESSION, "DOE, JANE"], code=ACCESSION),
                           tissue(600, 300, seed + 5)], axis=1) if with_macro else None)
    xml = ome_xml((width, height), lab.shape[1::-1] if lab is not None else None,
                  mac.shape[1::-1] if mac is not None else None)
    res = dict(resolution=(1e4 / MPP, 1e4 / MPP), resolutionunit="CENTIMETER")
    common = dict(photometric="rgb", compression="jpeg", compressionargs={"level": 85}, metadata=None)
    from .synth import _tiff_tags_with_phi
    with tifffile.TiffWriter(path, bigtiff=False, ome=False) as tw:
        tw.write(base, tile=(256, 256), subifds=2, description=xml.encode(), software="tifffile.py 2024.8.30",
                 datetime="2024:03:14 10:22:33", extratags=_tiff_tags_with_phi(), **res, **common)
        for k in (2, 4):
            tw.write(base[::k, ::k], tile=(256, 256), subfiletype=1, **res, **common)
        if lab is not None:
            tw.write(lab, rowsperstrip=64, subfiletype=1, **common)
        if mac is not None:
            tw.write(mac, rowsperstrip=64, subfiletype=1, **common)
    return SynthSlide(path, "ome-tiff", PLANTED + [UUID.split(":")[-1], "Dr Who", "jane.doe"])
