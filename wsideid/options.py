"""What a caller asks of one de-identification run (``DeidOptions``).

Why its own module: the runner, every driver, the batch and the CLI share
these options; defined beside the runner they tied the DICOM driver to the
TIFF pipeline in an import cycle. It sits low in the import graph and
imports no driver.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import TYPE_CHECKING

from .dates import DatePolicy
from .enums import DetectMode, Fill, LabelPolicy, MacroPolicy, VerifyMode
from .errors import WsideidError
from .keys import Secret
from .naming import OutputName

if TYPE_CHECKING:  # the DICOM options type, without importing pydicom for a TIFF run
    from .dicom.plan import DicomOptions


@dataclass
class DeidOptions:
    dates: DatePolicy = field(default_factory=DatePolicy)
    profile: str | None = None
    new_id: str | None = None
    strict: bool = False
    keep_macro: bool = False
    verify: VerifyMode = VerifyMode.SAMPLE
    overwrite: bool = False
    hash_outputs: bool = True  # False: no hash at all (same as hash="none")
    hash: str = "blake3"  # the output's hash in the audit: blake3 | sha256 | none (see hashing.py)
    hash_input: bool = False  # also hash the input, for the lab record (a second pass over the input)
    audit_dir: str | None = None  # default: next to the output
    dicom: DicomOptions | None = None  # DICOM input or --to-dicom
    detect: DetectMode = DetectMode.RESIDUAL
    ocr: bool = True
    identifiers: list[str] = field(default_factory=list)  # known originals, matched fuzzily by the detectors
    review_dir: str | None = None  # flagged outputs go here; default: sibling "<OUTDIR>-review"
    regions: list[tuple[int, int, int, int]] = field(default_factory=list)  # level-0 X,Y,W,H to blank
    fill: Fill = Fill.WHITE
    macro: MacroPolicy | None = None  # None: the profile decides
    in_place: bool = False  # rewrite the input itself (explicit only; see inplace.py)
    label: LabelPolicy | None = None  # replace: a generated label with the research ID; None: the profile
    keep_name: bool = False  # name the output after the input, if the PHI text classifier passes that name
    secret: Secret | None = None  # keyed pseudonyms, UIDs, audit key hashes; None: random per run (warned)
    naming: OutputName | None = None  # a name already chosen by the caller (--to-dicom's inner steps, batch)
    subject: str | None = None  # patient key (--subject, manifest): DICOM PatientID becomes its keyed pseudonym
    series: str | None = None  # one slide of a DICOM folder holding several: its pyramid's Series Instance UID

    def __post_init__(self) -> None:
        """Words from the CLI, a manifest or a caller become enum members here, or the run
        is refused in one line before any work."""
        self.verify = _member(VerifyMode, self.verify, "verify")
        self.detect = _member(DetectMode, self.detect, "detect")
        self.fill = _member(Fill, self.fill, "fill")
        self.macro = _member(MacroPolicy, self.macro, "macro") if self.macro else None
        self.label = _member(LabelPolicy, self.label, "label") if self.label else None


def _member(kind: type[StrEnum], value, what: str):
    try:
        return kind(value)
    except ValueError:
        raise WsideidError(f"--{what} {value!r} is not one of {', '.join(m.value for m in kind)}") from None


def with_secret(options: DeidOptions) -> DeidOptions:
    """Options carrying the run's secret: the one given (here or in the DICOM options), else a
    random one (warned about once)."""
    if options.secret is not None:
        return options
    given = options.dicom.secret if options.dicom is not None else None
    if given is not None:
        return replace(options, secret=given)
    from .keys import run_secret
    return replace(options, secret=run_secret(None, once=True))


def hash_algorithm(options: DeidOptions):
    """The run's hash (``hashing.HashAlgorithm``): ``hash_outputs=False`` means none."""
    from .hashing import HashAlgorithm, parse
    return parse(options.hash) if options.hash_outputs else HashAlgorithm.NONE
