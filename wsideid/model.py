"""Plain data passed between the pipeline stages.

Stages talk only through these types, so each can be tested alone and the
plan can be printed (``inspect``), recorded (audit) and asserted on (tests)
without running the writer.
"""

from __future__ import annotations

import re

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
    # TIFF tags: the stored field type (1 BYTE, 2 ASCII, 3 SHORT, ...), and for stored numbers
    # their numpy type with byte order ("<u2"; ``raw`` then holds them): a kept number must be
    # stored as numbers and its bytes must not spell text (``valuepolicy``, ``textbytes.words_in_numbers``).
    stored_type: int | None = None
    dtype: str | None = None

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
    failed: bool = False  # the value failed its type or pattern (``values-pass-policy`` of a re-planned output)

    @property
    def removes_value(self) -> bool:
        """The original value must not appear in the output afterwards."""
        return self.action in (REMOVE, REPLACE, DATE, TIME, DATETIME) and self.new_value != self.field.value


_INDEX = re.compile(r"\[\d+\]$")


def file_chose_last(path: str, known: bool, rule: str) -> bool:
    """Whether the path's last segment is text the file chose, not a profile's name.

    Unknown fields always are; a known one too when its rule does not name the key literally (a
    pattern such as ``description.CustomField*`` matched it), because then the file chose the rest."""
    if not known:
        return True
    return _INDEX.sub("", path.rsplit("/", 1)[-1]) not in rule


def names_from_file(d: Decision) -> bool:
    return file_chose_last(d.field.path, not d.unknown, d.rule)


def vouched_prefixes(decisions: list[Decision]) -> set[str]:
    """Path prefixes (whole segments) of the fields whose every name a profile spelled: structure."""
    out: set[str] = set()
    for d in decisions:
        if not names_from_file(d):
            segs = d.field.path.split("/")
            out.update("/".join(segs[:i]) for i in range(1, len(segs)))
    return out


def split_file_text(path: str, vouched: set[str]) -> tuple[str, str]:
    """(structural head, the rest) of a path whose last segment the file chose: the head is the
    longest prefix a profile-named field shares; the rest (an unknown XML element's name and the
    attribute under it, a key) is the file's text, to be hashed or masked whole."""
    segs = path.split("/")
    k = len(segs) - 1
    # "ifd[N]/<tag>": the tag's name comes from the tag table (or is its number), never the file
    floor = min(2, k) if segs[0].startswith("ifd[") else 0
    while k > floor and "/".join(segs[:k]) not in vouched:
        k -= 1
    return "/".join(segs[:k]), "/".join(segs[k:])


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

    def nothing_kept(self) -> str:
        """The refusal when every image is removed, naming the roles removed: a lone LABEL
        instance or a macro-only file is a common input, and the user must see why nothing came."""
        from collections import Counter
        roles = Counter(d.image.role for d in self.images)
        listed = ", ".join(f"{n} {r}" for r, n in sorted(roles.items())) or "none"
        return f"nothing to publish: the plan removes every image of the input ({listed})"

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
