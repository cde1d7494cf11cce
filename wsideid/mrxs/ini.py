"""Slidedat.ini: a GLib key file ("[GROUP]" lines, "KEY = VALUE" lines), read strictly.

OpenSlide reads it with GKeyFile (at most 1 MiB). We read it ourselves,
more strictly, because every byte of it reaches the output only through a
profile decision: a duplicate group or key, a line that is neither, or a
control character is refused rather than guessed at (two readers that
disagree on which value counts are how a hidden value gets published).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

from ..errors import MalformedFile

MAX_SIZE = 1 << 20  # OpenSlide's SLIDEDAT_MAX_SIZE
_GROUP = re.compile(r"\[([^\[\]\x00-\x1f]+)\]")
_KEY = re.compile(r"[A-Za-z0-9_.\-]+")
# Group names a message may quote: the vocabulary 3DHistech writes. A level or non-hierarchical
# section is named by the file (HIER_0_VAL_0_SECTION = ...): a name planted there was quoted on
# stderr ("Slidedat.ini has no <name>/IMAGE_CONCAT_FACTOR"; red team round 4).
_SHOWN = re.compile(r"GENERAL|HIERARCHICAL|DATAFILE|(NONHIER)?LAYER_\d{1,3}_(LEVEL|VAL)_\d{1,3}_SECTION", re.ASCII)


def shown(group: str) -> str:
    """``group`` as a message may print it: itself when it is 3DHistech's vocabulary."""
    return group if _SHOWN.fullmatch(group) else "<a group the file names>"


class IniError(MalformedFile):
    """Slidedat.ini is not a key file we can read without guessing."""


@dataclass
class KeyFile:
    """Groups in file order, each an ordered mapping of key to its raw (unescaped) value."""

    groups: dict[str, dict[str, str]] = field(default_factory=dict)

    def get(self, group: str, key: str) -> str | None:
        return self.groups.get(group, {}).get(key)

    def need(self, group: str, key: str) -> str:
        value = self.get(group, key)
        if value is None:
            raise IniError(f"Slidedat.ini has no {shown(group)}/{key}")
        return value

    def need_int(self, group: str, key: str, low: int = 0, high: int = 1 << 30) -> int:
        text = self.need(group, key)
        if not re.fullmatch(r"-?\d{1,10}", text.strip()) or not low <= int(text) <= high:
            raise IniError(f"Slidedat.ini {shown(group)}/{key} is not an integer in [{low}, {high}]")
        return int(text)


    def need_float(self, group: str, key: str, low: float, high: float) -> float:
        """A finite decimal number in [low, high): "1e400" is infinity to a float parser, and
        OpenSlide, which parses the same text, computed a tile width of -2**62 from it."""
        text = self.need(group, key).strip()
        if not re.fullmatch(r"-?\d{1,12}(\.\d{1,12})?", text) or not low <= float(text) < high:
            raise IniError(f"Slidedat.ini {shown(group)}/{key} is not a decimal number in [{low:g}, {high:g})")
        return float(text)


def parse(data: bytes) -> KeyFile:
    if len(data) > MAX_SIZE:
        raise IniError("Slidedat.ini is larger than 1 MiB")
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise IniError("Slidedat.ini is not UTF-8") from None
    kf = KeyFile()
    current: dict[str, str] | None = None
    for n, line in enumerate(text.splitlines(), 1):
        s = line.strip()
        if not s or s.startswith("#") or s.startswith(";"):
            continue
        if any(unicodedata.category(ch).startswith("C") and ch != "\t" for ch in s):
            raise IniError(f"Slidedat.ini line {n} holds a control character")
        m = _GROUP.fullmatch(s)
        if m:
            name = m.group(1)
            if name in kf.groups:
                raise IniError(f"Slidedat.ini line {n} repeats a group")  # (its name is the file's text)
            current = kf.groups[name] = {}
            continue
        key, eq, value = s.partition("=")
        key = key.strip()
        if not eq or current is None or not _KEY.fullmatch(key):
            raise IniError(f"Slidedat.ini line {n} is neither a group nor a key")
        if key in current:
            raise IniError(f"Slidedat.ini line {n} repeats a key")
        current[key] = value.strip()
    return kf


def render(kf: KeyFile) -> bytes:
    """The key file as 3DHistech writes it: UTF-8 with BOM, "KEY = VALUE", CRLF."""
    lines: list[str] = []
    for group, keys in kf.groups.items():
        lines.append(f"[{group}]")
        lines.extend(f"{k} = {v}" for k, v in keys.items())
    return b"\xef\xbb\xbf" + ("\r\n".join(lines) + "\r\n").encode("utf-8")
