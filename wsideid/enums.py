"""The closed sets of choices that cross stage boundaries, as enums.

Why ``StrEnum``: a member equals its string (``VerifyMode.FULL == "full"``)
and serialises as it (audit JSON, CLI choices), so profiles, audits and the
command line keep their words while code compares against named members
and an unknown word fails where it enters (``DeidOptions.__post_init__``)
instead of deep in a stage.
"""

from __future__ import annotations

from enum import StrEnum


class FieldAction(StrEnum):
    KEEP = "keep"
    REMOVE = "remove"
    REPLACE = "replace"
    DATE = "date"
    TIME = "time"
    DATETIME = "datetime"
    TEXT = "text"


class ImageAction(StrEnum):
    KEEP = "keep"
    REMOVE = "remove"
    REPLACE = "replace"  # a generated label showing the research ID
    BLANK_LABEL = "blank-label"  # a macro kept with its label area blanked


class Role(StrEnum):
    LEVEL = "level"
    THUMBNAIL = "thumbnail"
    LABEL = "label"
    MACRO = "macro"
    OVERVIEW = "overview"
    MAP = "map"
    OTHER = "other"
    UNKNOWN = "unknown"  # no role established: removed


class DateMode(StrEnum):
    REMOVE = "remove"
    YEAR = "year"
    SHIFT = "shift"
    KEEP = "keep"  # not a --dates choice: DICOM's Retain Full Dates option only (dates.KEEP)


class VerifyMode(StrEnum):
    SAMPLE = "sample"
    FULL = "full"


class DetectMode(StrEnum):
    OFF = "off"
    RESIDUAL = "residual"  # kept images of the output
    ALL = "all"  # also the removed label and macro of the source


class MacroPolicy(StrEnum):
    REMOVE = "remove"
    KEEP = "keep"
    BLANK_LABEL = "blank-label"


class LabelPolicy(StrEnum):
    REMOVE = "remove"
    REPLACE = "replace"


class Fill(StrEnum):
    WHITE = "white"
    BLACK = "black"
    GRAY = "gray"


class Status(StrEnum):
    PUBLISHED = "published"
    FLAGGED = "flagged"
    FAILED = "failed"
