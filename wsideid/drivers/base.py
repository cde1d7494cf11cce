"""The driver contract: what the runner may ask of a format, and nothing more.

Why a contract: the runner (open -> plan -> write -> verify -> publish ->
audit) must not know any format, so that a new format is one driver (or,
in the TIFF family, one vendor module), one profile and one registry line.
Everything format-specific sits behind these methods; every driver answers
all of them (``in_place`` may refuse).

Stages and their objects, in order:

- ``open(path) -> Opened``: the parsed container and the input's files
  (one for a TIFF, every instance for a DICOM folder). Never writes.
- ``plan(opened, options) -> Plan``: the inventory (every field and image
  with its role), the profile's decisions, the CLI overrides (macro, label,
  regions) and the driver's own refinements. The plan is complete here:
  every decision apply needs (blanked boxes, frame edits) is recorded in
  it, and no later stage changes it.
- ``write(opened, plan, scratch, final_name, options, on_recipe) -> Written``: the
  output under the temporary name ``scratch`` (a file, or a folder the
  driver makes). ``on_recipe(recipe)``, where the driver hands the output's
  plan once the layout is fixed (TIFF: compared with the file as it is hashed); ``on_recipe.checked()``, where the write
  runs a check beside its copy (TIFF: the stream rule's), once that is done
  (the residual scan's early reads start then).
- ``verify(opened, plan, written, options) -> VerifyReport``: named checks
  over the written output (see ``wsideid.checks``).
- ``residual_images(plan, written)`` and ``source_images(opened, plan)``:
  which images the PHI detectors read (``ImageRef``), after and before;
  ``residual_early(opened, plan)``: those of the residual images whose pixels
  the run leaves unchanged, read from the source while the output is written
  (``wsideid.slide_scan_thread``; a driver that can name none returns []).
- ``start_hashing(opened, options)``: the output's hash (and the input's) with the
  run's algorithm (``hashing.py``: BLAKE3 by default, ``--hash sha256|blake3|none``,
  the same for every driver): ``.written(written)`` once the output is written, before
  verification reads it (stamps taken; a TIFF output hashed from disk in a thread),
  ``.result(written, report)`` (the hashes; the ``output-hash`` row: the files hashed are the
  ones verified, unchanged since written), ``.unchanged(written)`` (None, or why the output
  is not the one hashed: asked again just before the rename).
- ``removed_preview(input_path, plan, index)`` and ``kept_previews(output, plan, scans)``:
  the QC page's copies of a removed source image and of the scanned kept images of the
  published output (the page itself knows no format).
- ``output_name(input_path, stem)``: the published name;
  ``companion_names(stem)``: names published beside it (MIRAX's folder).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Protocol

from ..checks import Check, VerifyReport
from ..model import Plan
from ..options import DeidOptions
from ..profiles import profile_file  # noqa: F401 - drivers name their profile with it

if TYPE_CHECKING:
    from ..detect.barcodes import Decoded


class Container(enum.Enum):
    """How a format is recognised: the registry sniffs the container, then asks the
    drivers of that container (in registry order) which one claims it."""

    TIFF = "tiff"
    DICOM = "dicom"
    MIRAX = "mirax"  # a .mrxs file and the folder of its stem


@dataclass
class Opened:
    """An input the driver has parsed: ``container`` is the driver's own object
    (a ``TiffFile``, a ``DicomSource``); ``files`` are the input's content files."""

    driver: "Driver"
    path: str
    container: Any
    files: list[str]

    @property
    def format(self) -> str:
        return self.driver.name

    @property
    def module(self) -> Any:
        """A TIFF-family driver's vendor module (what ``wsideid.tiff_family.inplace`` builds with)."""
        return getattr(self.driver, "vendor", None)


@dataclass
class Written:
    """What ``write`` made: ``ready`` is renamed into place at publish time (a file or
    a folder); ``companions`` are (ready path, output name) published before it, beside it
    (a MIRAX slide's folder); ``state`` is the driver's own record (edits, instances)."""

    ready: str
    state: Any = None
    images: list["ImageRef"] = field(default_factory=list)  # kept images the residual scan reads
    companions: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class ImageRef:
    """One image the PHI detectors read: its role, its index (as the plan numbers images)
    and how to read it (a PIL image in bounded memory); or a reduced level they skip because
    a smaller scanned level of its pyramid covers it (``wsideid.level_cover``), recorded as such."""

    role: str
    index: int
    read: Callable[[], Any]
    covered_by: int | None = None  # a level skipped by ``level_cover``: the covering level's index; never read
    decoded: Decoded | None = None  # codes the plan decoded on these very pixels (not decoded again)


class Driver(Protocol):
    name: str  # the format's name in plans, audits and profiles ("aperio", "dicom")
    title: str  # for people: "Aperio SVS"
    container: Container
    extensions: tuple[str, ...]  # output extensions; the first is the default
    reads_folders: bool  # a folder is one slide (DICOM series)
    supports_in_place: bool
    phi_carriers: tuple[str, ...]  # where the format holds PHI (docs/phi-reference.md)

    @property
    def profile(self) -> str: ...  # the shipped profile's file name in formats/

    def claims(self, container: Any) -> bool: ...
    def open(self, path: str) -> Opened: ...
    def plan(self, opened: Opened, options: DeidOptions) -> Plan: ...
    def write(self, opened: Opened, plan: Plan, scratch: str, final_name: str, options: DeidOptions,
              on_recipe: Any = None) -> Written: ...  # on_recipe: the runner's write events (hashing, residual scan)
    def verify(self, opened: Opened, plan: Plan, written: Written, options: DeidOptions) -> VerifyReport: ...
    def verify_existing(self, opened: Opened, output: str, options: DeidOptions) -> VerifyReport: ...
    def source_images(self, opened: Opened, plan: Plan) -> list[ImageRef]: ...
    def residual_images(self, plan: Plan, written: Written) -> list[ImageRef]: ...
    def residual_early(self, opened: Opened, plan: Plan) -> list[ImageRef]: ...  # unchanged ones, from the source
    def label_images(self, opened: Opened) -> list[ImageRef]: ...  # ``wsideid scan``
    def start_hashing(self, opened: Opened, options: DeidOptions) -> Any: ...
    def output_name(self, input_path: str, stem: str) -> str: ...
    def companion_names(self, stem: str) -> list[str]: ...
    def removed_preview(self, input_path: str, plan: Plan, index: int) -> Any: ...  # QC page; None: not shown
    def kept_previews(self, output: str, plan: Plan, scans: list) -> list[ImageRef]: ...  # QC page, published output
    def in_place(self, opened: Opened, plan: Plan, options: DeidOptions) -> Any: ...  # supports_in_place only


def record_unchanged(report: VerifyReport, stamps: Any, algorithm: str, seconds: float) -> None:
    """``output-hash``: the files hashed now are the ones verified (stamped once written)."""
    report.add_seconds(Check.OUTPUT_HASH, seconds)
    why = stamps.unchanged() if stamps is not None else "the output was never stamped"
    report.record(Check.OUTPUT_HASH, why is None, why or f"{algorithm} of the files on disk, unchanged "
                  "(inode, size, mtime, ctime) since they were written and verified")
