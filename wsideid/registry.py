"""The one list of formats: every driver, in the order they are asked to claim an input.

Everything that depends on "which formats exist" derives from ``DRIVERS``:
format detection (``open_input``), profile lookup (``Driver.profile``),
output extensions (``possible_outputs``), the PHI reference
(``scripts/gen_phi_reference.py``) and the per-driver tests. Adding a
TIFF-family format is one vendor module, one profile in ``formats/``, and
one line in ``TIFF_VENDORS``; a new container is one driver class and one
line in ``DRIVERS``.

A file that no driver claims is refused with what it is, from the one
table ``wsideid.refused.REFUSED``: another slide format by name with a
conversion route, a file that is not a slide ("the file is a JPEG image"),
or "unrecognised content".
"""

from __future__ import annotations

import os
import stat

from .drivers.base import Driver, Opened
from .drivers.dicom import DicomDriver
from .drivers.mirax import MiraxDriver
from .drivers.tiff import TiffDriver, read_container
from .errors import UnsupportedFormat, WsideidError
from .refused import read_head
from .sniff import HEAD_BYTES, describe_bytes, is_dicom_input
from .tiff.container import TiffFile, sniff
from .tiff.tags import MAKE, SOFTWARE, TILE_OFFSETS
from . import naming, refused
from .tiff_family.vendors import aperio, generic_tiff, hamamatsu, leica, ome_tiff, philips, qptiff, ventana

# Order matters: the most specific claim first (NDPI's private tag, then Aperio's
# description), the generic tiled TIFF last. Detection never looks at the file name.
TIFF_VENDORS = [hamamatsu, aperio, philips, qptiff, ventana, leica, ome_tiff, generic_tiff]
TIFF_DRIVERS: list[TiffDriver] = [TiffDriver(v) for v in TIFF_VENDORS]
DICOM = DicomDriver()
MIRAX = MiraxDriver()
DRIVERS: list[Driver] = [*TIFF_DRIVERS, DICOM, MIRAX]


def by_name(name: str) -> Driver:
    for d in DRIVERS:
        if d.name == name:
            return d
    raise WsideidError(f"no driver for format {name!r}")


def names() -> list[str]:
    return [d.name for d in DRIVERS]


def tiff_driver(tf: TiffFile) -> TiffDriver:
    """The TIFF-family driver whose vendor claims ``tf``; refused with what was seen."""
    for d in TIFF_DRIVERS:
        if d.claims(tf):
            return d
    first = tf.ifds[0] if tf.ifds else None
    seen = []
    if first is not None:
        seen.append("first IFD " + ("tiled" if first.has(TILE_OFFSETS) else "not tiled"))
        # named, not quoted: a refusal is printed and logged, and these tags are the file's text
        # (a name planted in Software was quoted on stderr; red team round 4)
        seen += [f"{label} set" for tag, label in ((SOFTWARE, "Software"), (MAKE, "Make")) if first.text(tag)]
    raise UnsupportedFormat(f"unsupported TIFF: no vendor module claims it ({', '.join(seen) or 'no IFDs'})")


def open_input(path: str | os.PathLike, series: str | None = None) -> Opened:
    """Detect the format from content (magic bytes, vendor markers), never the name, and open it.

    ``series`` picks one slide of a DICOM folder holding several (``dicom.slides``); other formats refuse it."""
    path = os.fspath(path)
    refuse_special(path)
    if os.path.isdir(path) and is_dicom_input(path):
        return DICOM.open(path, series)  # a folder of DICOM instances
    if series is not None and not DICOM.claims(path):
        raise WsideidError("--series (series_uid) picks a slide of a DICOM input only")
    if MIRAX.claims(path):
        return MIRAX.open(path)
    refused.refuse_if_known(path)  # other slide formats recognised and refused by name, with a route
    try:
        head = read_head(path, HEAD_BYTES)
    except IsADirectoryError:
        raise UnsupportedFormat("is a directory, not a slide file") from None
    except OSError as exc:
        raise WsideidError(f"cannot read the input: {exc.strerror}") from None
    if sniff(head[:8]) is not None:
        tf = read_container(path)
        return tiff_driver(tf).open(path, tf)
    if DICOM.claims(path):
        return DICOM.open(path, series)
    raise UnsupportedFormat(refused.not_a_slide(describe_bytes(head)))


def content_files(path: str) -> list[str]:
    """The files a slide's pseudonym is taken from, without opening the slide: the files
    ``open_input(path).files`` lists for a file input, so a batch names a slide as a single
    ``deid`` does (a DICOM folder's slide files are picked by ``dicom.slides``)."""
    if MIRAX.claims(path):
        from .mrxs.slide import slide_files
        try:
            return slide_files(path)
        except OSError as exc:
            raise WsideidError(f"cannot read the input to name it: {exc.strerror or type(exc).__name__}") from None
    return naming.content_files(path)


def refuse_special(path: str, what: str = "the input") -> None:
    """A FIFO, socket or device is no slide: refused before anything opens it, because opening a
    FIFO blocks until a writer comes (a hang) and a device such as /dev/zero never ends.
    ``what``: how the message names the path (``wsideid verify`` checks its output too)."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return  # missing or unreadable: the caller's own open words it
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        raise UnsupportedFormat(f"{what} is not a regular file (a pipe, socket or device): not a slide")


def possible_outputs(source: str, stem: str, to_dicom: bool = False) -> set[str]:
    """Every name (lower case) an output of ``source`` may get, and its audit; taken without
    parsing the slide, so a TIFF counts every TIFF-family extension (a possible collision
    is refused, never risked). ``to_dicom``: the converted slide's folder is the name itself."""
    if to_dicom:
        outs = {stem}
    elif is_dicom_input(source):
        outs = {DICOM.output_name(source, stem)}
    elif MIRAX.claims(source):
        outs = {MIRAX.output_name(source, stem), *MIRAX.companion_names(stem)}
    else:
        outs = {d.output_name(source, stem) for d in TIFF_DRIVERS} | {stem + d.extensions[0] for d in TIFF_DRIVERS}
    return {n.lower() for o in outs for n in (o, o + ".audit.json")}
