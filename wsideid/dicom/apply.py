"""Write de-identified instances by replaying the plan's operations.

The header is rebuilt element by element from the plan (nothing is carried
over that the plan did not decide), written with pydicom, and the pixel
data element is then appended as raw bytes copied from the input, so frame
bytes are identical and never decoded or held whole in memory.
"""

from __future__ import annotations

import pydicom
from pydicom.datadict import dictionary_VR
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence

from ..errors import WsideidError
from ..model import Plan
from .failures import third_party
from .pixels import copy_range
from .plan import IMPLEMENTATION, DicomPlanData, tag_name
from .record import add_record
from .redact import write_pixels
from .source import Instance

IDENTITY_FROM_NEW_ID = ("PatientName", "PatientID", "ContainerIdentifier")
STRING_VRS = {"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST", "TM", "UC", "UI", "UR", "UT"}


def _vr_for(elem: DataElement, value) -> str:
    """A replacement string written under a wrong (binary) VR takes the dictionary VR instead."""
    if isinstance(value, str) and elem.VR not in STRING_VRS:
        try:
            return dictionary_VR(elem.tag)
        except KeyError:
            return "UN"
    return elem.VR


def _rebuild(ds: Dataset, prefix: str, ops: dict) -> Dataset:
    out = Dataset()
    for elem in ds:
        path = f"{prefix}/{elem.keyword or tag_name(int(elem.tag))}"
        op = ops.get(path)
        if op is None or op.kind == "remove":
            continue  # fail closed: an element the plan did not decide is not written
        if op.kind == "keep":
            out.add(elem)  # the same element object: its value is not converted (or judged) again
        elif op.kind == "set":
            out.add(DataElement(elem.tag, _vr_for(elem, op.value), Sequence(op.value) if elem.VR == "SQ" else op.value))
        elif op.kind == "walk":
            items = []
            for k, item in enumerate(elem.value or []):
                ipath = f"{path}[{k}]"
                if ops.get(ipath) is not None and ops[ipath].kind == "drop-item":
                    continue
                items.append(_rebuild(item, ipath, ops))
            out.add(DataElement(elem.tag, "SQ", Sequence(items)))
    return out


def build_instance(inst: Instance, plan: Plan) -> Dataset:
    """The de-identified header of one instance (no pixel data), with its file meta; everything
    it follows (operations, frame edits, regions) is read from the frozen ``plan``."""
    data: DicomPlanData = plan.inventory.container
    ds = _rebuild(inst.ds, f"inst[{inst.index}]", data.ops)
    meta = FileMetaDataset()
    for elem in inst.ds.file_meta:
        op = data.ops.get(f"inst[{inst.index}]/meta/{elem.keyword or tag_name(int(elem.tag))}")
        if op is None or op.kind == "remove" or int(elem.tag) == 0x00020000:
            continue
        meta.add(DataElement(elem.tag, elem.VR, op.value if op.kind == "set" else elem.value))
    if "SOPInstanceUID" in ds:
        meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    for kw, value in IMPLEMENTATION.items():
        setattr(meta, kw, value)
    blanked = plan.frame_edits is not None and any(e.boxes for e in plan.frame_edits.of(inst.index).values())
    label = dict(plan.macro_boxes).get(inst.index)
    add_record(ds, plan.profile_name, plan.profile_sha256, data.columns, data.policy, inst.index in data.structured,
               list(plan.regions) if blanked and label is None else [], label)
    if data.new_id:  # identity from the research ID, also where the input left it out
        for kw in IDENTITY_FROM_NEW_ID:
            if kw not in ds:
                setattr(ds, kw, (data.patient_id if kw == "PatientID" else None) or data.new_id)
    ds.file_meta = meta
    ds.preamble = b"\0" * 128
    return ds


def write_instance(ds: Dataset, inst: Instance, out_path: str, frames: dict | None = None) -> None:
    """Header by pydicom, then the pixel data element copied byte for byte
    (or, with blanked ``frames``, written anew around them).

    Not fsynced, like the TIFF-family writer's output: the source is never
    touched, and a file torn by a crash after publication no longer matches
    the hash its audit and lab record hold (batch recovery checks it). An
    fsync per instance made a DICOM run wait for the disk, several seconds a
    gigabyte, where a copy does not."""
    try:
        with open(out_path, "xb") as fh:
            pydicom.dcmwrite(fh, ds, enforce_file_format=True)
            if inst.span is not None and frames:
                write_pixels(inst, frames, fh)
            elif inst.span is not None:
                copy_range(inst.path, inst.span.start, inst.span.end, fh)
            fh.flush()
    except WsideidError:
        raise
    except OSError as exc:
        raise WsideidError(f"cannot write instance {inst.index}: {exc.strerror or type(exc).__name__}") from None
    except Exception as exc:  # noqa: BLE001 - pydicom refuses some values it read itself
        raise WsideidError(third_party(f"cannot encode instance {inst.index}", exc)) from None
