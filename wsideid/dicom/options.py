"""The PS3.15 Annex E options a run selects: names -> profile columns, and the date policy.

Every option of Table E.1-1 has a name (``--dicom-option NAME``) and a
column in the profile; a profile names combinations of them in
``[dicom_options.combinations]`` (``--dicom-option research``) and may
switch some on for every run (``default_options``). Why a separate module:
the checks between options (full dates vs. modified dates, clean pixel data
needs regions) are the same for ``deid``, ``inspect`` and ``verify``.
"""

from __future__ import annotations

from ..dates import KEEP, DatePolicy
from ..enums import MacroPolicy
from ..errors import WsideidError
from ..model import Plan
from ..options import DeidOptions
from ..profiles import Profile
from .rules import OPTIONS, DicomRules


def option_columns(names: tuple[str, ...], options: DeidOptions, profile: Profile | None = None) -> set[str]:
    """The profile columns for the chosen option names (combinations expanded); refuses
    unknown names and contradictory choices with a one-line error."""
    combos: dict[str, list[str]] = {}
    if profile is not None:
        combos = profile.data.get("dicom_options", {}).get("combinations", {})
    expanded: list[str] = []
    for name in names:
        expanded += [str(n) for n in combos[name]] if name in combos else [name]
    cols: set[str] = set()
    for name in expanded:
        if name not in OPTIONS:
            known = sorted(OPTIONS) + sorted(f"{c} (combination)" for c in combos)
            raise WsideidError(f"unknown DICOM option {name!r} (one of {', '.join(known)})")
        cols.add(OPTIONS[name])
    mode = options.dates.mode
    if mode in ("shift", "year"):
        cols.add("modified_dates")
    elif "modified_dates" in cols:
        raise WsideidError("retain-longitudinal-modified-dates needs --dates shift (or year)")
    if "full_dates" in cols and mode != "remove":
        raise WsideidError("retain-longitudinal-full-dates keeps dates as they are: it cannot be combined with "
                           f"--dates {mode} (Modified Dates)")
    if "clean_pixels" in cols and not (options.regions or options.macro == MacroPolicy.BLANK_LABEL):
        raise WsideidError("clean-pixel-data needs the regions to blank (--region X,Y,W,H or --macro blank-label)")
    return cols


def date_policy(policy: DatePolicy, rules: DicomRules) -> DatePolicy:
    """Retain Full Dates (113106) keeps dates and times where its column says K; anything
    else follows the run's --dates policy."""
    return DatePolicy(KEEP) if "full_dates" in rules.columns else policy


def note_macro_choice(plan: Plan, macro: MacroPolicy | None) -> Plan:
    """``--macro blank-label`` on DICOM: the OVERVIEW's label area cannot be blanked yet (no
    label location for DICOM overviews), so the overview is removed (fail closed) and the
    decision says so instead of removing it silently."""
    if macro == MacroPolicy.BLANK_LABEL:
        for d in plan.images:
            if d.image.role == "overview" and d.action == "remove":
                d.rule += " (--macro blank-label: not available for DICOM overviews yet, removed instead)"
    return plan
