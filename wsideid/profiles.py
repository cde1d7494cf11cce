"""De-identification profiles: load, validate, merge overrides, make plans.

A profile is a TOML file a privacy officer can read: for each tag, key or
attribute one action. The shipped profiles live in ``formats/`` (inside the
wheel as ``wsideid/formats``); a user file passed with ``--profile`` is
merged on top, section by section. Anything a profile does not list is
unknown and gets the ``[defaults] unknown`` action (remove, recorded) or,
with ``--strict``, refuses the slide: unknown metadata never passes through.

A known name is not enough: a kept value must also pass the value policy
(:mod:`wsideid.valuepolicy`), a declared type or allow-list pattern, or it
is removed (or replaced by the entry's neutral value) and the decision
records the check it failed.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from .dates import DatePolicy, transform_structured, transform_time
from .errors import ProfileError, StrictRefusal
from .model import (DATE, DATETIME, FIELD_ACTIONS, IMAGE_ACTIONS, KEEP, REMOVE, REPLACE, TEXT, TIME,
                    Decision, Field, ImageDecision, Inventory, Plan)
from .valuepolicy import SPEC_KEYS, ValueSpec, check, check_time, control_free, parse_spec

IMAGE_ROLES = ("level", "thumbnail", "label", "macro", "map", "overview", "other")
# Sections that are not field tables.
NON_FIELD_SECTIONS = ("profile", "defaults", "images", "dicom_options")


@dataclass
class Rule:
    action: str
    value: str | None = None
    format: str | None = None
    note: str = ""
    spec: ValueSpec | None = None  # keep/text: what the value must be (None: a bare keep)


def _wildcard(key: str) -> re.Pattern | None:
    """A profile key with ``*`` (any text) or ``#`` (one to four digits), as a regex.

    Why four: a kept key is written to the output as the file spelled it, so its digits are text
    the file chose; an index of 1-4 digits holds no date or record number (``zFine[19870317]``
    was published in round 6 of the planted-PHI audit)."""
    if "*" not in key and "#" not in key:
        return None
    return re.compile("".join(".*" if ch == "*" else r"\d{1,4}" if ch == "#" else re.escape(ch) for ch in key),
                      re.DOTALL)


@dataclass
class Profile:
    name: str
    format: str
    data: dict[str, Any]
    sources: list[str]
    _rules: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def sha256(self) -> str:
        canon = json.dumps(self.data, sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(canon.encode()).hexdigest()

    @property
    def unknown_action(self) -> str:
        return self.data.get("defaults", {}).get("unknown", REMOVE)

    def image_action(self, role: str) -> str:
        return self.data.get("images", {}).get(role, self.data.get("images", {}).get("other", REMOVE))

    def rule(self, section: str, name: str) -> tuple[Rule, str] | None:
        """The rule for ``name`` in ``section``: exact entry first, then wildcard keys."""
        exact, wild = self._section(section)
        if name in exact:
            return exact[name]
        for rx, found in wild:
            if rx.fullmatch(name):
                return found
        return None

    def _section(self, section: str) -> tuple[dict[str, tuple[Rule, str]], list[tuple[re.Pattern, tuple[Rule, str]]]]:
        """A section's rules, parsed once (patterns compiled and checked)."""
        if section not in self._rules:
            exact: dict[str, tuple[Rule, str]] = {}
            wild: list[tuple[re.Pattern, tuple[Rule, str]]] = []
            table = self.data.get(section, {})
            if section not in NON_FIELD_SECTIONS and isinstance(table, dict):
                for key, spec in table.items():
                    where = f"{section}.{key}"
                    exact[key] = (_rule(spec, where), where)
                    rx = _wildcard(key)
                    if rx is not None:
                        wild.append((rx, exact[key]))
            self._rules[section] = (exact, wild)
        return self._rules[section]


def _rule(spec: Any, where: str) -> Rule:
    """One profile entry, checked: every mistake is a ProfileError before any slide is read."""
    if isinstance(spec, str):
        r = Rule(spec)
        if r.action == TEXT:
            raise ProfileError(f"profile entry {where}: text needs a pattern (free text is never kept as it is)")
    elif isinstance(spec, dict):
        unknown = set(spec) - {"action", "value", "format", "note"} - SPEC_KEYS
        if unknown:
            raise ProfileError(f"profile entry {where} has unknown keys {sorted(unknown)}")
        for key in ("action", "value", "format", "note", "type", "else"):
            if key in spec and not isinstance(spec[key], str):
                raise ProfileError(f"profile entry {where}: {key} must be a string, not {_toml_type(spec[key])}")
        r = Rule(spec.get("action", ""), spec.get("value"), spec.get("format"), spec.get("note", ""))
        if r.action in (KEEP, TEXT):
            r.spec = parse_spec(spec, r.action, where)
        elif set(spec) & SPEC_KEYS:
            raise ProfileError(f"profile entry {where}: {', '.join(sorted(set(spec) & SPEC_KEYS))} "
                               "only apply to keep and text")
    else:
        raise ProfileError(f"profile entry {where} must be an action name or a table")
    if r.action not in FIELD_ACTIONS:
        raise ProfileError(f"profile entry {where}: unknown action {r.action!r} (one of {', '.join(FIELD_ACTIONS)})")
    if r.action == REPLACE and r.value is None:
        raise ProfileError(f"profile entry {where}: replace needs a value")
    if r.value is not None and (len(r.value) > MAX_REPLACE_CHARS or not control_free(r.value)):
        raise ProfileError(f"profile entry {where}: a value is printable text of at most {MAX_REPLACE_CHARS}"
                           " characters (it is written into every output)")
    if r.action in (DATE, DATETIME) and not r.format:
        raise ProfileError(f"profile entry {where}: {r.action} needs a format (strftime spelling)")
    if r.action in (KEEP, TEXT) and "*" in where.partition(".")[2]:
        raise ProfileError(f"profile entry {where}: a kept key must be spelled out ('*' would keep whatever "
                           "text stands in the key itself; '#' stands for digits)")
    return r


# A user profile's size: the largest shipped one (DICOM's) is ~90 kB. Profiles were read whole:
# /dev/zero ran a run out of memory, a FIFO hung it, a 20 MB replace value cost 28 s.
MAX_PROFILE_BYTES = 4 << 20
MAX_REPLACE_CHARS = 1024


def _read_toml(path: Path, label: str) -> dict[str, Any]:
    """A TOML file, read as a hostile file: a regular file of at most MAX_PROFILE_BYTES opened
    without blocking, UTF-8 (a BOM or UTF-16 as Notepad saves it is read too), and every failure
    one line (a Latin-1 profile and one of 100,000 nested arrays were internal errors)."""
    from .safefs import read_regular
    try:
        data = read_regular(path, MAX_PROFILE_BYTES + 1)
    except OSError as exc:
        raise ProfileError(f"cannot read profile {label}: {exc.strerror}") from None
    if len(data) > MAX_PROFILE_BYTES:
        raise ProfileError(f"profile {label} is larger than {MAX_PROFILE_BYTES >> 20} MB")
    try:
        if data.startswith((b"\xff\xfe", b"\xfe\xff")):
            text = data.decode("utf-16")
        else:
            text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise ProfileError(f"line {line} of profile {label} is not UTF-8 text") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"profile {label} is not valid TOML: {exc}") from None
    except RecursionError:
        raise ProfileError(f"profile {label} is not valid TOML: nested too deeply") from None


def profile_file(fmt: str) -> str:
    """A format's shipped profile: ``formats/<format>.toml``, ``-`` spelled ``_`` (the
    registry's drivers name their formats; this is the one place the file name is made)."""
    return fmt.replace("-", "_") + ".toml"


def shipped_profile_path(fmt: str) -> Path:
    path = Path(str(resources.files("wsideid") / "formats" / profile_file(fmt)))
    if not fmt or "/" in fmt or os.sep in fmt or fmt.startswith(".") or not path.is_file():
        raise ProfileError(f"no shipped profile for format {fmt!r}")
    return path


def _deep_merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _deep_merge(out[k], v)
        else:
            out[k] = v
    return out


def _merge(base: dict, over: dict) -> dict:
    """Override sections entry by entry; an overriding entry replaces the shipped one whole
    (a shipped date ``format`` must not linger under an override's pattern)."""
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _deep_merge(out[k], v) if k in NON_FIELD_SECTIONS else {**out[k], **v}
        else:
            out[k] = v
    return out


def load_profile(fmt: str, override: str | Path | None = None) -> Profile:
    path = shipped_profile_path(fmt)
    data = _read_toml(path, path.name)
    sources = [f"shipped:{path.name}"]
    if override is not None:
        over = _read_toml(Path(override), str(override))
        _check_tables(over, str(override))
        over_fmt = over.get("profile", {}).get("format")
        if over_fmt is not None:  # "svs" or ["aperio"] matched no slide: the override was ignored for all
            _check_format_name(over_fmt, str(override))
        if over_fmt in (None, fmt):
            data = _merge(data, {k: v for k, v in over.items() if k != "profile"})
            sources.append(f"override:{Path(override).name}")
    validate(data, path.name)
    return Profile(data.get("profile", {}).get("name", fmt), fmt, data, sources)


def _check_format_name(name: Any, label: str) -> None:
    """``[profile] format`` names a format wsideid has a profile for. Why: an override for
    another format is skipped for this slide, so a misspelt one ("svs" for "aperio") was skipped
    for every slide, and the fields the privacy officer meant to remove were kept without a word."""
    shipped = sorted(Path(n).stem.replace("_", "-")
                     for n in (p.name for p in resources.files("wsideid").joinpath("formats").iterdir())
                     if n.endswith(".toml"))
    if not isinstance(name, str) or name not in shipped:
        raise ProfileError(f"{label}: [profile] format must be one of {', '.join(shipped)}")


def _toml_type(value: Any) -> str:
    return {bool: "a boolean", int: "an integer", float: "a float", str: "a string", list: "an array",
            dict: "a table"}.get(type(value), type(value).__name__)


def _check_tables(data: dict[str, Any], label: str) -> None:
    """Every top-level entry is a table: `images = 5` was an internal error, and `[[tags]]`
    silently dropped every rule of the section (the output then failed verification)."""
    for section, table in data.items():
        if not isinstance(table, dict):
            raise ProfileError(f"{label}: {section} must be a table ([{section}]), not {_toml_type(table)}")


def validate(data: dict[str, Any], label: str) -> None:
    """Check every entry now, so a typo fails before any slide is touched."""
    _check_tables(data, label)
    if data.get("defaults", {}).get("unknown", REMOVE) not in (REMOVE, "refuse"):
        raise ProfileError(f"{label}: [defaults] unknown must be 'remove' or 'refuse'")
    for role, action in data.get("images", {}).items():
        if role not in IMAGE_ROLES:
            raise ProfileError(f"{label}: [images] unknown role {role!r}")
        if action not in IMAGE_ACTIONS:
            raise ProfileError(f"{label}: [images] {role} has unknown action {action!r}")
    for section, table in data.items():
        if section in NON_FIELD_SECTIONS:
            continue
        for name, spec in table.items():
            _rule(spec, f"{section}.{name}")


@dataclass
class PlanOptions:
    dates: DatePolicy
    new_id: str | None = None
    strict: bool = False
    keep_macro: bool = False
    label: str | None = None  # None: profile decides; "replace": generated label


def decide(field: Field, rule: Rule | None, where: str, opts: PlanOptions, unknown_action: str) -> Decision:
    if rule is None:
        return Decision(field, REMOVE, None, "unknown", unknown=True)
    v = field.text()
    if rule.action in (KEEP, TEXT):
        verdict = check(field, rule.spec, opts.dates)
        if not verdict.ok:
            spec = rule.spec or ValueSpec()
            if spec.on_fail == REPLACE:
                return Decision(field, REPLACE, spec.neutral, f"{where}: {verdict.note}, replaced", failed=True)
            return Decision(field, REMOVE, None, f"{where}: {verdict.note}", failed=True)
        if verdict.action is None:
            return Decision(field, KEEP, field.value, where)
        return Decision(field, verdict.action, verdict.value, f"{where}: {verdict.note}",
                        removed_parts=verdict.removed)
    if rule.action == REMOVE:
        return Decision(field, REMOVE, None, where)
    if rule.action == REPLACE:
        if "{new_id}" in rule.value and not opts.new_id:
            return Decision(field, REMOVE, None, where + " (no --new-id: removed)")
        return Decision(field, REPLACE, rule.value.replace("{new_id}", opts.new_id or ""), where)
    if rule.action in (DATE, DATETIME):
        new = transform_structured(v, rule.format, opts.dates)
        return Decision(field, rule.action if new is not None else REMOVE, new, where)
    if rule.action == TIME:
        if not check_time(v):
            return Decision(field, REMOVE, None, f"{where}: value failed time", failed=True)
        new = transform_time(v, opts.dates)
        return Decision(field, TIME if new is not None else REMOVE, new, where)
    raise ProfileError(f"unhandled action {rule.action}")


# Sections whose key names come from a fixed dictionary (TIFF tag names or numbers), not from the file.
DICTIONARY_SECTIONS = ("tags",)


def unknown_names(unknowns: list[Decision]) -> str:
    """The unknown keys for a refusal line: a tag's name as it is; a key the file itself named
    (a description key, an XML attribute) only by its section and count, since the name may be
    PHI ("Jane Doe = 1") and refusals reach logs that may be shared (``inspect`` shows them)."""
    named = sorted({d.field.key for d in unknowns if d.field.key.partition(":")[0] in DICTIONARY_SECTIONS})
    from_file: dict[str, int] = {}
    for d in unknowns:
        section = d.field.key.partition(":")[0]
        if section not in DICTIONARY_SECTIONS:
            from_file[section] = from_file.get(section, 0) + 1
    parts = named[:8] + [f"{n} key(s) named by the file in {section}" for section, n in sorted(from_file.items())]
    hint = "; `wsideid inspect` shows them" if from_file else ""
    return ", ".join(parts) + hint


def make_plan(inv: Inventory, profile: Profile, opts: PlanOptions) -> Plan:
    decisions: list[Decision] = []
    for f in inv.fields:
        section, _, name = f.key.partition(":")
        found = profile.rule(section, name)
        rule, where = found if found else (None, "unknown")
        decisions.append(decide(f, rule, where, opts, profile.unknown_action))
    unknowns = [d for d in decisions if d.unknown]
    if unknowns and (opts.strict or profile.unknown_action == "refuse"):
        raise StrictRefusal(f"refused (--strict): {len(unknowns)} field(s) the profile does not know: "
                            f"{unknown_names(unknowns)}")
    images: list[ImageDecision] = []
    unknown_images = [img for img in inv.images if img.role == "unknown"]
    if unknown_images and (opts.strict or profile.unknown_action == "refuse"):
        first = unknown_images[0]
        raise StrictRefusal(f"refused (--strict): {len(unknown_images)} image(s) whose role cannot be established "
                            f"(image {first.index}: {first.extra.get('reason', 'unknown')})")
    for img in inv.images:
        if img.role == "unknown":
            # not a profile role: no profile can keep an image nobody can name
            images.append(ImageDecision(img, "remove", f"unknown image: {img.extra.get('reason', '')}"))
            continue
        action = profile.image_action(img.role)
        rule = f"images.{img.role}"
        if img.role == "macro" and opts.keep_macro:
            action, rule = "keep", "--keep-macro"
        if img.role == "label" and opts.label == "replace":
            action, rule = "replace", "--label replace"
        images.append(ImageDecision(img, action, rule))
    return Plan(inv, decisions, images, profile.name, profile.sha256,
                {"dates": opts.dates.mode, "strict": opts.strict, "keep_macro": opts.keep_macro,
                 "new_id_given": bool(opts.new_id), "new_id": opts.new_id, "profile_sources": profile.sources},
                profile=profile)
