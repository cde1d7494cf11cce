"""Plain data passed between the pipeline stages.

Stages talk only through these types, so each can be tested alone and the
plan can be printed (``inspect``), recorded (audit) and asserted on (tests)
without running the writer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Protocol

# Actions a profile can give a field.
KEEP, REMOVE, REPLACE, DATE, TIME, DATETIME, TEXT = "keep", "remove", "replace", "date", "time", "datetime", "text"
FIELD_ACTIONS = (KEEP, REMOVE, REPLACE, DATE, TIME, DATETIME, TEXT)
# Actions for whole images.
IMAGE_ACTIONS = ("keep", "remove", "replace", "blank-label")


class ValueKind(str, Enum):
    """What a field's value is, for the value policy and the verifier.

    Only TEXT and IDENTIFIER values can name a person, so only they (and the
    dates inside them) become residual needles when removed; a removed
    NUMBER or CODE ("TEXT" in a DICOM CS) would match harmless bytes
    elsewhere and refuse clean slides.
    """

    TEXT = "text"            # free text: can carry anything
    IDENTIFIER = "identifier"  # IDs, names, serials, UIDs: always needles when removed
    NUMBER = "number"        # parses wholly as a number (or a list of numbers)
    CODE = "code"            # enumerated or coded value (DICOM CS, TIFF enumerations)
    DATE = "date"            # a date/time under the date policy
    BINARY = "binary"        # opaque bytes, summarised (never a needle as a whole)


@dataclass
class Field:
    """One metadata item found in a slide.

    ``path`` locates it for humans and audits (``ifd[3]/ImageDescription/Date``);
    ``key`` is what the profile is looked up by (``tag:DateTime``,
    ``aperio:Date``, ``ndpi:Created``).
    """

    path: str
    key: str
    value: Any
    ifd: int | None = None
    tag: int | None = None
    subkey: str | None = None  # key inside a container field (description, property map)
    kind: ValueKind = ValueKind.TEXT  # set by the inventory where the type is known (DICOM VR, numeric tags)
    raw: bytes | None = None  # stored bytes of a binary value a check must parse (an ICC profile)

    def text(self) -> str:
        return self.value if isinstance(self.value, str) else str(self.value)


@dataclass
class ImageInfo:
    """One image in the slide: a pyramid level, thumbnail, label, macro, map..."""

    index: int  # image index (TIFF: TiffFile.image_ifds(), top-level IFDs first) or instance index (DICOM)
    role: str  # level | thumbnail | label | macro | map | overview | other | unknown (extra["reason"] says why)
    width: int
    height: int
    compression: str
    tiled: bool
    tile_count: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Inventory:
    """Everything a format module found in a slide, as data."""

    format: str  # "aperio" | "hamamatsu" | "generic-tiff" | "dicom"
    path: str
    images: list[ImageInfo]
    fields: list[Field]
    container: Any = None  # format-specific parse, for the writer
    notes: list[str] = field(default_factory=list)


@dataclass
class Decision:
    """What happens to one field: the action, the new value, and why."""

    field: Field
    action: str
    new_value: Any = None
    rule: str = ""  # which profile entry decided ("aperio:Date", "unknown-key")
    unknown: bool = False
    # Parts of the original value the new value leaves out (dropped Aperio
    # header tokens, ICC profile texts): needles for the verifier, never audited.
    removed_parts: list[str] = field(default_factory=list)

    @property
    def removes_value(self) -> bool:
        """The original value must not appear in the output afterwards."""
        return self.action in (REMOVE, REPLACE, DATE, TIME, DATETIME) and self.new_value != self.field.value


@dataclass
class ImageDecision:
    image: ImageInfo
    action: str
    rule: str = ""


class StoredBytes(Protocol):
    """New bytes kept outside memory (a spill file), read back on demand."""

    size: int

    def read(self) -> bytes: ...


@dataclass(slots=True)
class FrameEdit:
    """One blanked frame of a DICOM instance: where its new bytes are kept (the edited JPEG
    stream padded to even length; native: the frame's bytes) and the frame-local boxes blanked
    in it (before MCU growth). ``kind``: jpeg (coefficient domain), native (fill written), j2k
    (re-encoded reversibly). The bytes live in a spill file (``dicom.redact.Spilled``), not in
    memory: a region over every frame of a level would otherwise hold the level."""

    stored: StoredBytes
    boxes: list[tuple[int, int, int, int]] = field(default_factory=list)
    kind: str = "jpeg"

    @property
    def data(self) -> bytes:
        """The frame's new bytes, read now (one frame at a time, never the image)."""
        return self.stored.read()

    @property
    def size(self) -> int:
        return self.stored.size


@dataclass
class FrameEdits:
    """New frames per instance index, decided in planning (``dicom.redact.plan_frames``):
    the writer writes them, the verifier checks them; the fill is what was asked."""

    frames: dict[int, dict[int, FrameEdit]] = field(default_factory=dict)
    fill: str = "white"
    reencoded: dict[int, list[int]] = field(default_factory=dict)  # instance -> JPEG 2000 frames re-encoded (audit)

    def of(self, index: int) -> dict[int, FrameEdit]:
        return self.frames.get(index, {})


@dataclass
class Plan:
    inventory: Inventory
    fields: list[Decision]
    images: list[ImageDecision]
    profile_name: str
    profile_sha256: str
    options: dict[str, Any]
    regions: list[tuple[int, int, int, int]] = field(default_factory=list)
    profile: Any = None  # the Profile used, so verification can re-plan the output
    macro_boxes: list[tuple[int, tuple[int, int, int, int]]] = field(default_factory=list)  # (image, label box) blanked
    frame_edits: FrameEdits | None = None  # DICOM: the frames the regions (and stream rule) change, per instance

    def unknowns(self) -> list[Decision]:
        return [d for d in self.fields if d.unknown]

    def removed_values(self) -> list[str]:
        """Original values that must not survive anywhere in the output."""
        out: list[str] = []
        for d in self.fields:
            if d.removes_value and d.field.value not in (None, ""):
                out.append(d.field.text())
            out.extend(p for p in d.removed_parts if p)
        return out

    def decision_for(self, path: str) -> Decision | None:
        for d in self.fields:
            if d.field.path == path:
                return d
        return None
