"""What a caller asks of one de-identification run (``DeidOptions``).

Why its own module: the runner, every driver, the batch and the CLI share
these options; defined beside the runner they tied the DICOM driver to the
TIFF pipeline in an import cycle. It sits low in the import graph and
imports no driver.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from .dates import DatePolicy
from .keys import Secret
from .naming import OutputName


@dataclass
class DeidOptions:
    dates: DatePolicy = field(default_factory=DatePolicy)
    profile: str | None = None
    new_id: str | None = None
    strict: bool = False
    keep_macro: bool = False
    verify: str = "sample"  # sample | full
    overwrite: bool = False
    hash_outputs: bool = True
    audit_dir: str | None = None  # default: next to the output
    dicom: Any = None  # wsideid.dicom.plan.DicomOptions (DICOM input or --to-dicom)
    detect: str = "residual"  # off | residual (kept images) | all (also the removed label/macro)
    ocr: bool = True
    identifiers: list[str] = field(default_factory=list)  # known originals, matched fuzzily by the detectors
    review_dir: str | None = None  # flagged outputs go here; default: sibling "<OUTDIR>-review"
    regions: list[tuple[int, int, int, int]] = field(default_factory=list)  # level-0 X,Y,W,H to blank
    fill: str = "white"
    macro: str | None = None  # remove | keep | blank-label (None: the profile decides)
    in_place: bool = False  # rewrite the input itself (explicit only; see inplace.py)
    label: str | None = None  # remove | replace (a generated label with the research ID); None: profile
    keep_name: bool = False  # name the output after the input, if the PHI text classifier passes that name
    secret: Secret | None = None  # keyed pseudonyms, UIDs, audit key hashes; None: random per run (warned)
    naming: OutputName | None = None  # a name already chosen by the caller (--to-dicom's inner steps, batch)


def with_secret(options: DeidOptions) -> DeidOptions:
    """Options carrying the run's secret: the one given (here or in the DICOM options), else a
    random one (warned about once)."""
    if options.secret is not None:
        return options
    given = getattr(options.dicom, "secret", None)
    if given is not None:
        return replace(options, secret=given)
    from .keys import run_secret
    return replace(options, secret=run_secret(None, once=True))
