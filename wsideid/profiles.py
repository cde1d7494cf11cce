"""De-identification profiles: load, validate, merge overrides, make plans.

A profile is a TOML file a privacy officer can read: for each tag, key or
attribute one action. The shipped profiles live in ``formats/`` (inside the
wheel as ``wsideid/formats``); a user file passed with ``--profile`` is
merged on top, section by section. Anything a profile does not list is
unknown and gets the ``[defaults] unknown`` action (remove, recorded) or,
with ``--strict``, refuses the slide: unknown metadata never passes through.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import re
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from .dates import DatePolicy, scrub_text, transform_structured, transform_time
from .errors import ProfileError, StrictRefusal
from .model import (DATE, DATETIME, FIELD_ACTIONS, IMAGE_ACTIONS, KEEP, REMOVE, REPLACE, TEXT, TIME,
                    Decision, Field, ImageDecision, Inventory, Plan)

FORMAT_PROFILES = {"aperio": "aperio.toml", "hamamatsu": "hamamatsu.toml",
                   "generic-tiff": "generic_tiff.toml", "dicom": "dicom.toml"}
IMAGE_ROLES = ("level", "thumbnail", "label", "macro", "map", "overview", "other")


@dataclass
class Rule:
    action: str
    value: str | None = None
    format: str | None = None
    note: str = ""


@dataclass
class Profile:
    name: str
    format: str
    data: dict[str, Any]
    sources: list[str]

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
        """The rule for ``name`` in ``section``: exact entry first, then glob patterns."""
        table = self.data.get(section, {})
        if name in table:
            return _rule(table[name], f"{section}.{name}"), f"{section}.{name}"
        for pattern, spec in table.items():
            if "*" in pattern and fnmatch.fnmatchcase(name, pattern.replace("[", "[[]")):
                return _rule(spec, f"{section}.{pattern}"), f"{section}.{pattern}"
        return None


def _rule(spec: Any, where: str) -> Rule:
    if isinstance(spec, str):
        r = Rule(spec)
    elif isinstance(spec, dict):
        unknown = set(spec) - {"action", "value", "format", "note"}
        if unknown:
            raise ProfileError(f"profile entry {where} has unknown keys {sorted(unknown)}")
        r = Rule(spec.get("action", ""), spec.get("value"), spec.get("format"), spec.get("note", ""))
    else:
        raise ProfileError(f"profile entry {where} must be an action name or a table")
    if r.action not in FIELD_ACTIONS:
        raise ProfileError(f"profile entry {where}: unknown action {r.action!r} (one of {', '.join(FIELD_ACTIONS)})")
    if r.action == REPLACE and r.value is None:
        raise ProfileError(f"profile entry {where}: replace needs a value")
    if r.action in (DATE, DATETIME) and not r.format:
        raise ProfileError(f"profile entry {where}: {r.action} needs a format (strftime spelling)")
    return r


def _read_toml(path: Path, label: str) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except OSError as exc:
        raise ProfileError(f"cannot read profile {label}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"profile {label} is not valid TOML: {exc}") from None


def shipped_profile_path(fmt: str) -> Path:
    name = FORMAT_PROFILES.get(fmt)
    if name is None:
        raise ProfileError(f"no shipped profile for format {fmt!r}")
    return Path(str(resources.files("wsideid") / "formats" / name))


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = v
    return out


def load_profile(fmt: str, override: str | Path | None = None) -> Profile:
    path = shipped_profile_path(fmt)
    data = _read_toml(path, path.name)
    sources = [f"shipped:{path.name}"]
    if override is not None:
        over = _read_toml(Path(override), str(override))
        over_fmt = over.get("profile", {}).get("format")
        if over_fmt in (None, fmt):
            data = _merge(data, {k: v for k, v in over.items() if k != "profile"})
            sources.append(f"override:{Path(override).name}")
    validate(data, path.name)
    return Profile(data.get("profile", {}).get("name", fmt), fmt, data, sources)


def validate(data: dict[str, Any], label: str) -> None:
    """Check every entry now, so a typo fails before any slide is touched."""
    if data.get("defaults", {}).get("unknown", REMOVE) not in (REMOVE, "refuse"):
        raise ProfileError(f"{label}: [defaults] unknown must be 'remove' or 'refuse'")
    for role, action in data.get("images", {}).items():
        if role not in IMAGE_ROLES:
            raise ProfileError(f"{label}: [images] unknown role {role!r}")
        if action not in IMAGE_ACTIONS:
            raise ProfileError(f"{label}: [images] {role} has unknown action {action!r}")
    for section, table in data.items():
        if section in ("profile", "defaults", "images", "dicom_options") or not isinstance(table, dict):
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
    if rule.action == KEEP:
        return Decision(field, KEEP, field.value, where)
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
        new = transform_time(v, opts.dates)
        return Decision(field, TIME if new is not None else REMOVE, new, where)
    if rule.action == TEXT:
        new, _ = scrub_text(v, opts.dates)
        return Decision(field, TEXT if new != v else KEEP, new, where)
    raise ProfileError(f"unhandled action {rule.action}")


def make_plan(inv: Inventory, profile: Profile, opts: PlanOptions) -> Plan:
    decisions: list[Decision] = []
    for f in inv.fields:
        section, _, name = f.key.partition(":")
        found = profile.rule(section, name)
        rule, where = found if found else (None, "unknown")
        decisions.append(decide(f, rule, where, opts, profile.unknown_action))
    unknowns = [d for d in decisions if d.unknown]
    if unknowns and (opts.strict or profile.unknown_action == "refuse"):
        names = ", ".join(sorted({d.field.key for d in unknowns})[:8])
        raise StrictRefusal(f"refused (--strict): {len(unknowns)} field(s) the profile does not know: {names}")
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


_ID_SAFE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
# Device names Windows refuses as file names, with or without an extension.
_RESERVED = re.compile(r"^(con|prn|aux|nul|com[0-9]|lpt[0-9])(\..*)?$", re.IGNORECASE)


def check_new_id(new_id: str) -> str:
    """Research IDs become file names and metadata: keep them plain."""
    if not _ID_SAFE.match(new_id) or new_id in (".", "..") or ".." in new_id or _RESERVED.match(new_id):
        raise ProfileError("--new-id must be 1-64 letters, digits, '.', '_' or '-' (got an unsafe value)")
    return new_id
