"""A generated LABEL instance showing only the research ID.

Used with ``--dicom-option generated-label``: the scanned label photo is
never copied; a new label image (the ID printed and as a DataMatrix, from
``wsideid.label_image``) replaces its pixel data, uncompressed, in the
de-identified header of the original label instance.
"""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian

from ..errors import WsideidError
from .plan import DicomPlanData
from .source import Instance

MAX_SIDE = 4096
# Slide Label module (Type 2 on a LABEL instance): what the generated label shows.
SET_KEYWORDS = ("LabelText", "BarcodeValue")
_DROP = ("LossyImageCompressionMethod", "LossyImageCompressionRatio", "ConcatenationUID",
         "InConcatenationNumber", "InConcatenationTotalNumber", "ConcatenationFrameOffsetNumber",
         "ExtendedOffsetTable", "ExtendedOffsetTableLengths", "ICCProfile", "PixelPaddingValue")


def generated_label(inst: Instance, ds: Dataset, data: DicomPlanData, folder: str) -> tuple[Instance, Dataset]:
    from ..label_image import make_label_image

    if not data.new_id:
        raise WsideidError("a generated label needs --new-id (the label shows it)")
    w = int(ds.get("TotalPixelMatrixColumns", ds.get("Columns", 0)) or 0)
    h = int(ds.get("TotalPixelMatrixRows", ds.get("Rows", 0)) or 0)
    if not (16 <= w <= MAX_SIDE and 16 <= h <= MAX_SIDE):
        w, h = 600, 300
    img = np.asarray(make_label_image(data.new_id, (w, h)).convert("RGB"), dtype=np.uint8)
    ds = copy.deepcopy(ds)  # kept elements are shared with the input's dataset: never change them in place
    for name in _DROP:
        if name in ds:
            del ds[name]
    ds.Rows, ds.Columns = h, w
    ds.TotalPixelMatrixRows, ds.TotalPixelMatrixColumns = h, w
    ds.NumberOfFrames = 1
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "RGB", 0
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.LossyImageCompression = "00"
    ds.BurnedInAnnotation = "YES"  # the research ID, nothing else
    for kw in SET_KEYWORDS:
        setattr(ds, kw, data.new_id)
    ds.PixelData = img.tobytes()
    ds["PixelData"].VR = "OB"
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    return dataclasses.replace(inst, span=None), ds
