"""Slides whose layouts put a label or macro where a reader may take it for tissue.

Each builder writes, with tifffile (or our own writer for NDPI), the layout
another writer produces or an audit crafted (issue 11): a tiled label in an
OME-TIFF series, a macro pyramid stored first (Leica-like), a tiled label
between levels (BIF-like), a tiled label as IFD 0, an SVS label stored as
tiles, an NDPI macro given a magnification. The label carries the planted
accession number and name, as text and as a DataMatrix.
"""

from __future__ import annotations

import struct

import numpy as np
import tifffile

from wsideid import synth

LABEL_TEXT = [synth.ACCESSION, "DOE, JANE"]
W, H = 1024, 768  # level 0 of every layout


def label(w: int = 480, h: int = 360) -> np.ndarray:
    return synth.label_image(w, h, LABEL_TEXT, code=synth.ACCESSION)


def macro() -> np.ndarray:
    return np.ascontiguousarray(np.concatenate([label(400, 400), synth.tissue(800, 400, 9)], axis=1))


def tissue() -> np.ndarray:
    return synth.tissue(W, H, 4)


JPEG = dict(photometric="rgb", compression="jpeg", compressionargs={"level": 85}, metadata=None)


def _levels(tw, base: np.ndarray, n: int, **kw) -> None:
    for k in range(1, n):
        tw.write(np.ascontiguousarray(base[:: 2 ** k, :: 2 ** k]), tile=(128, 128), subfiletype=1, **JPEG, **kw)


def bfconvert_like(path: str) -> None:
    """OME-TIFF, one series per image: the tissue (levels after it), then the
    label and the macro as tiled full-resolution images of their own series."""
    base = tissue()
    with tifffile.TiffWriter(path) as tw:
        tw.write(base, tile=(128, 128), description='<?xml version="1.0"?><OME><Image Name="label"/></OME>',
                 **JPEG)
        _levels(tw, base, 3)
        tw.write(label(), tile=(128, 128), **JPEG)
        tw.write(macro(), tile=(128, 128), **JPEG)


def raw2ometiff_like(path: str) -> None:
    """OME-TIFF with SubIFD pyramids for every series, the label and macro included."""
    base = tissue()
    with tifffile.TiffWriter(path) as tw:
        for img in (base, label(), macro()):
            tw.write(img, tile=(128, 128), subifds=2, **JPEG)
            for k in (1, 2):
                tw.write(np.ascontiguousarray(img[:: 2 ** k, :: 2 ** k]), tile=(128, 128), subfiletype=1, **JPEG)


def leica_like(path: str) -> None:
    """The macro's pyramid first, then the tissue's (a Leica SCN keeps the macro in its own collection)."""
    base, mac = tissue(), macro()
    with tifffile.TiffWriter(path) as tw:
        tw.write(mac, tile=(128, 128), **JPEG)
        _levels(tw, mac, 2)
        tw.write(base, tile=(128, 128), **JPEG)
        _levels(tw, base, 3)


def bif_like(path: str) -> None:
    """Tissue levels with a tiled label between them, described as Ventana does."""
    base = tissue()
    with tifffile.TiffWriter(path) as tw:
        tw.write(base, tile=(128, 128), description="level=0 mag=40 quality=90", **JPEG)
        tw.write(label(), tile=(128, 128), description="Label_Image", **JPEG)
        _levels(tw, base, 3)


def label_first(path: str) -> None:
    """An extra tiled label as IFD 0: OpenSlide's generic-tiff driver makes it level 0."""
    base = tissue()
    with tifffile.TiffWriter(path) as tw:
        tw.write(label(), tile=(128, 128), **JPEG)
        tw.write(base, tile=(128, 128), **JPEG)
        _levels(tw, base, 3)


def svs_tiled_label(path: str) -> None:
    """An Aperio SVS whose label is stored as tiles with NewSubfileType 1 and 'label' in its description."""
    base = tissue()
    head = "Aperio Image Library v12.0.5\r\n"
    desc0 = head + f"{W}x{H} [0,0 {W}x{H}] (128x128) JPEG/RGB Q=70|AppMag = 20|MPP = 0.4990"
    with tifffile.TiffWriter(path) as tw:
        tw.write(base, tile=(128, 128), description=desc0, **JPEG)
        thumb = np.ascontiguousarray(base[::4, ::4])
        tw.write(thumb, rowsperstrip=16, description=head + f"{W}x{H} -> {thumb.shape[1]}x{thumb.shape[0]} - ",
                 **JPEG)
        lvl = np.ascontiguousarray(base[::2, ::2])
        tw.write(lvl, tile=(128, 128), description=head + f"{W}x{H} (128x128) -> {W // 2}x{H // 2} JPEG/RGB Q=70",
                 **JPEG)
        lab = label()
        tw.write(lab, tile=(128, 128), subfiletype=1, description=head + f"label {lab.shape[1]}x{lab.shape[0]}",
                 **JPEG)


def ome_subifds(path: str) -> None:
    """A valid tifffile OME-TIFF whose reduced levels are SubIFDs (tifffile also chains them)."""
    base = tissue()
    with tifffile.TiffWriter(path, ome=True) as tw:
        tw.write(base, tile=(128, 128), subifds=2, photometric="rgb", compression="jpeg")
        for k in (1, 2):
            tw.write(np.ascontiguousarray(base[:: 2 ** k, :: 2 ** k]), tile=(128, 128), subfiletype=1,
                     photometric="rgb", compression="jpeg")


def labelled_level(path: str) -> None:
    """A generic pyramid whose second level (neither the full-resolution one nor
    the smallest) shows a label instead of tissue."""
    base = tissue()
    with tifffile.TiffWriter(path) as tw:
        tw.write(base, tile=(128, 128), **JPEG)
        lvl1 = np.ascontiguousarray(base[::2, ::2]).copy()
        lab = label(480, 360)
        lvl1[12:12 + lab.shape[0], 16:16 + lab.shape[1]] = lab
        tw.write(lvl1, tile=(128, 128), subfiletype=1, **JPEG)
        for k in (2, 3):
            tw.write(np.ascontiguousarray(base[:: 2 ** k, :: 2 ** k]), tile=(128, 128), subfiletype=1, **JPEG)


def ndpi_macro_as_level(src: str, dst: str, magnification: float = 0.5) -> None:
    """``src`` (a synth NDPI) with its macro's Magnification changed from -1."""
    from wsideid.tiff.container import read_tiff
    from wsideid.tiff.writer import OutEntry, OutIfd, write_tiff
    from wsideid.tiff_family.vendors.tiff_base import image_data
    tf = read_tiff(src)
    outs = []
    for ifd in tf.ifds:
        entries = {t: OutEntry(t, e.type, e.count, e.raw) for t, e in ifd.entries.items()
                   if t not in (273, 279, 324, 325)}
        if struct.unpack("<f", ifd.entries[65421].raw)[0] == -1.0:
            entries[65421] = OutEntry(65421, 11, 1, struct.pack("<f", magnification))
        outs.append(OutIfd(entries, image_data(ifd, tf.byteorder)))
    write_tiff(src, dst, outs, "ndpi", "<")
