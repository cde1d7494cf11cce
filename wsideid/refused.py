"""Files recognised by their content only to be refused by name: one table.

Two kinds share :data:`REFUSED`, one entry type (:class:`Refused`):

- other whole-slide formats, with a conversion ``route``: wsideid has no
  parser it could trust for these (no open reader, or one that leaves
  structures nobody checks), so it does not pretend to de-identify them.
  Rather than "unrecognised content", the user learns what the file is and
  how to turn it into a format wsideid publishes (docs/formats.md). They are
  checked before any driver (a VSI starts like a TIFF);
- files that are not slides at all (JPEG, PNG, PDF, ...; no route): named in
  the "not a supported slide: the file is ..." message once no driver claims
  the input (``sniff.describe_bytes``).

Each entry says how its content is recognised (magic bytes, or the structure
beside it for MIRAX); detection never looks at the file name. Refusing one
more format is one line here.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from typing import Callable

from .errors import UnsupportedFormat
from .safefs import read_regular

HEAD_BYTES = 64 << 10  # iSyntax's XML header reaches the DPUfsImport marker well within this
DOCS = "docs/formats.md"
ROUTE_DICOM = "convert it to DICOM with wsidicomizer"
ROUTE_OME = "convert it to OME-TIFF with bfconvert (Bio-Formats)"


@dataclass(frozen=True)
class Magic:
    """A byte string at an offset: a matcher of a ``Refused`` entry (the path is not looked at)."""

    magic: bytes
    offset: int = 0

    def matches(self, head: bytes) -> bool:
        return head[self.offset:self.offset + len(self.magic)] == self.magic

    def __call__(self, path: str, head: bytes) -> bool:
        return self.matches(head)


@dataclass(frozen=True)
class Refused:
    """One format refused by name: what the user is told the file is, how it is recognised
    from ``(path, first HEAD_BYTES bytes)``, and, for a slide format, the conversion route."""

    name: str
    matches: Callable[[str, bytes], bool]
    route: str | None = None  # None: not a slide at all

    @property
    def is_slide(self) -> bool:
        return self.route is not None

    def message(self) -> str:
        if self.route is None:
            return not_a_slide(self.name)
        return f"{self.name} is not supported: {self.route} (see {DOCS})"


def not_a_slide(what: str) -> str:
    """The refusal of a file no driver claims, saying what it looks like (``sniff.describe_bytes``)."""
    return f"not a supported slide: the file is {what}"



def _isyntax(path: str, head: bytes) -> bool:
    # the DPUfsImport XML header, ended by CR LF EOT, then binary data (libisyntax, wsi-anon)
    marker = head.find(b"\r\n\x04")
    return marker > 0 and b"DPUfsImport" in head[:marker] and head.lstrip()[:1] == b"<"


def _czi(path: str, head: bytes) -> bool:
    return len(head) >= 32 and head.startswith(b"ZISRAWFILE")


_TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")


def _vsi(path: str, head: bytes) -> bool:
    # a TIFF header, then at byte 8 the VSI tag-stream header: int16 size 24, int16 version 21321
    if len(head) < 12 or head[:4] not in _TIFF_MAGIC[:2]:
        return False
    bo = "<" if head[:2] == b"II" else ">"
    return struct.unpack(bo + "hh", head[8:12]) == (24, 21321)


def _ets(path: str, head: bytes) -> bool:
    return head.startswith(b"SIS\x00") and b"ETS\x00" in head[:256]


def _ini_section(head: bytes, section: bytes) -> bool:
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    return text.startswith(section)


def _vms(path: str, head: bytes) -> bool:
    return _ini_section(head, b"[Virtual Microscope Specimen]")


def _vmu(path: str, head: bytes) -> bool:
    return _ini_section(head, b"[Uncompressed Virtual Microscope Specimen]")


def _slidedat(folder: str) -> bool:
    try:
        return b"[GENERAL]" in read_head(os.path.join(folder, "Slidedat.ini"))
    except OSError:
        return False


def _mirax(path: str, head: bytes) -> bool:
    # the .mrxs file is opaque; its structure is the folder of the same stem holding
    # Slidedat.ini with a [GENERAL] section (or the folder itself was given)
    if os.path.isdir(path):
        return _slidedat(path)
    if head[:4] in _TIFF_MAGIC or head[128:132] == b"DICM":
        return False  # a slide of a format wsideid reads, whatever lies beside it
    return _slidedat(os.path.splitext(path)[0])


REFUSED: tuple[Refused, ...] = (
    # other slide formats, with their route (checked before any driver)
    Refused("Philips iSyntax", _isyntax,
            "export it as DICOM from the Philips IMS, or convert it to DICOM with wsidicomizer"),
    Refused("Zeiss CZI", _czi, f"{ROUTE_OME}, or {ROUTE_DICOM}"),
    Refused("Olympus/Evident VSI", _vsi, f"{ROUTE_OME}, or {ROUTE_DICOM}"),
    Refused("Olympus/Evident ETS (a VSI's pixel store)", _ets, f"{ROUTE_OME} from its .vsi file"),
    Refused("Hamamatsu VMS", _vms, f"{ROUTE_OME}, or {ROUTE_DICOM}"),
    Refused("Hamamatsu VMU", _vmu, f"{ROUTE_OME}"),
    # a complete MIRAX slide is read by wsideid.mrxs; what reaches this table is a folder given
    # instead of its .mrxs file, or a Slidedat.ini without the structure the reader needs
    Refused("3DHistech MIRAX (MRXS) given as its folder or incomplete", _mirax,
            "give the .mrxs file whose folder of the same stem holds Slidedat.ini ([GENERAL] SLIDE_ID, "
            f"[HIERARCHICAL]), Index.dat and the data files; or {ROUTE_DICOM}"),
    # not slides at all (named once no driver claims the file)
    Refused("a JPEG image", Magic(b"\xff\xd8\xff")),
    Refused("a PNG image", Magic(b"\x89PNG")),
    Refused("a ZIP archive", Magic(b"PK\x03\x04")),
    Refused("a PDF document", Magic(b"%PDF")),
    Refused("a GIF image", Magic(b"GIF8")),
    Refused("a BMP image", Magic(b"BM")),
    Refused("a JPEG 2000 file", Magic(b"\x00\x00\x00\x0cjP")),
    Refused("an XML document", Magic(b"<?xml")),
)
SLIDE_FORMATS: tuple[Refused, ...] = tuple(r for r in REFUSED if r.is_slide)
NOT_SLIDES: tuple[Refused, ...] = tuple(r for r in REFUSED if not r.is_slide)


def read_head(path: str | os.PathLike, n: int = HEAD_BYTES) -> bytes:
    """The first ``n`` bytes of a regular file (OSError, IsADirectoryError raised: the caller words
    them); ``safefs.read_regular``: a FIFO (a MIRAX Slidedat.ini made one) hung the open."""
    return read_regular(path, n)


def recognise(path: str, head: bytes | None = None) -> Refused | None:
    """The other slide format the content is, or None."""
    if head is None:
        try:
            head = read_head(path)
        except OSError:  # a folder or an unreadable file: recognised by its path alone, if at all
            head = b""
    for fmt in SLIDE_FORMATS:
        if fmt.matches(path, head):
            return fmt
    return None


def looks_like(head: bytes) -> Refused | None:
    """The non-slide file the first bytes show (a JPEG, a PDF, ...), or None."""
    for fmt in NOT_SLIDES:
        if fmt.matches("", head):
            return fmt
    return None


def refuse_if_known(path: str | os.PathLike) -> None:
    """Raise UnsupportedFormat with the format's name and route when the content is another slide format."""
    fmt = recognise(os.fspath(path))
    if fmt is not None:
        raise UnsupportedFormat(fmt.message())
