"""Date policies: remove, reduce to year, or shift by a keyed per-subject offset.

The shift offset is HMAC(secret, subject) mod a range, so two slides of the
same patient processed months apart get the same offset without a lookup
table, and the offset cannot be recovered without the secret. Dates are
always moved into the past (never into the future, where they would look
like errors) by 1 to ``SHIFT_RANGE_DAYS`` days. Time-of-day is kept under
``shift`` (whole-day shifts keep intervals exact) and dropped otherwise.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from .errors import WsideidError
from .keys import Secret

POLICIES = ("remove", "year", "shift")
SHIFT_RANGE_DAYS = 3652
MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]


class DatePolicyError(WsideidError):
    """The date options are inconsistent (e.g. shift without a secret)."""


@dataclass(frozen=True)
class DatePolicy:
    mode: str = "remove"
    offset_days: int = 0  # subtracted from every date under "shift"

    def describe(self) -> str:
        return {"remove": "dates removed", "year": "dates reduced to the year",
                "shift": "dates shifted by a keyed per-subject offset"}[self.mode]


def make_policy(mode: str, secret: Secret | None = None, subject: str | None = None) -> DatePolicy:
    if mode not in POLICIES:
        raise DatePolicyError(f"unknown date policy {mode!r} (choose remove, year or shift)")
    if mode != "shift":
        return DatePolicy(mode)
    if secret is None or secret.source == "random per run":
        raise DatePolicyError("--dates shift needs a secret (--secret-file or $WSIDEID_SECRET) so offsets stay consistent")
    if not subject:
        raise DatePolicyError("--dates shift needs --subject (the patient key that gets one offset)")
    return DatePolicy("shift", subject_offset_days(secret, subject))


def subject_offset_days(secret: Secret, subject: str) -> int:
    return 1 + secret.integer("date-shift", subject.strip(), bits=64) % SHIFT_RANGE_DAYS


def _apply(d: dt.datetime, policy: DatePolicy) -> dt.datetime | None:
    if policy.mode == "remove":
        return None
    if policy.mode == "year":
        return dt.datetime(d.year, 1, 1)
    return d - dt.timedelta(days=policy.offset_days)


def transform_structured(value: str, fmt: str, policy: DatePolicy) -> str | None:
    """A date field with a known spelling (strftime ``fmt``): new value or None to remove.

    An unparsable value is removed: we cannot prove it holds no date.
    """
    try:
        parsed = dt.datetime.strptime(value.strip(), fmt)
    except ValueError:
        return None
    new = _apply(parsed, policy)
    return None if new is None else new.strftime(fmt)


def transform_time(value: str, policy: DatePolicy) -> str | None:
    """Time of day: kept under shift (intervals survive), removed otherwise."""
    return value if policy.mode == "shift" else None


# --- free text -------------------------------------------------------------

_MON = r"(?P<mon>jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]*\.?"
_PATTERNS = [
    # 2024-03-05, 2024/03/05, 2024:03:05, 2024.03.05 (optionally with a time)
    re.compile(r"(?<!\d)(?P<y>(?:19|20)\d\d)(?P<s>[-/:.])(?P<m>0?[1-9]|1[0-2])(?P=s)(?P<d>0?[1-9]|[12]\d|3[01])(?!\d)"),
    # 20240305
    re.compile(r"(?<!\d)(?P<y>(?:19|20)\d\d)(?P<m>0[1-9]|1[0-2])(?P<d>0[1-9]|[12]\d|3[01])(?!\d)"),
    # 03/05/24, 03/05/2024, 03-05-2024 (US order first; DD/MM when MM is impossible)
    re.compile(r"(?<![\d/])(?P<a>\d{1,2})(?P<s>[/-])(?P<b>\d{1,2})(?P=s)(?P<y>(?:19|20)?\d\d)(?![\d/])"),
    # 05.03.2024, 5.3.24
    re.compile(r"(?<![\d.])(?P<d>\d{1,2})\.(?P<m>\d{1,2})\.(?P<y>(?:19|20)?\d\d)(?![\d.])"),
    # 05-MAR-2024, 5 March 2024
    re.compile(r"(?<!\d)(?P<d>\d{1,2})[- ]" + _MON + r"[- ,]+(?P<y>(?:19|20)?\d\d)(?!\d)", re.I),
    # March 5, 2024 / Mar 5 2024
    re.compile(_MON + r" (?P<d>\d{1,2})(?:st|nd|rd|th)?,? (?P<y>(?:19|20)\d\d)(?!\d)", re.I),
]


def _year(y: str) -> int:
    n = int(y)
    if len(y) == 2:
        n += 2000 if n < 70 else 1900
    return n


def _match_date(m: re.Match) -> dt.date | None:
    g = m.groupdict()
    try:
        y = _year(g["y"])
        if g.get("mon"):
            return dt.date(y, MONTHS.index(g["mon"][:3].lower()) + 1, int(g["d"]))
        if g.get("a") is not None:
            a, b = int(g["a"]), int(g["b"])
            if 1 <= a <= 12:
                return dt.date(y, a, b)
            return dt.date(y, b, a)
        return dt.date(y, int(g["m"]), int(g["d"]))
    except (ValueError, TypeError):
        return None


def find_dates(text: str) -> list[tuple[int, int, dt.date]]:
    """Every date spelling in free text as (start, end, date), non-overlapping."""
    found: list[tuple[int, int, dt.date]] = []
    taken: list[tuple[int, int]] = []
    for pat in _PATTERNS:
        for m in pat.finditer(text):
            s, e = m.span()
            if any(s < te and ts < e for ts, te in taken):
                continue
            d = _match_date(m)
            if d is not None:
                found.append((s, e, d))
                taken.append((s, e))
    return sorted(found)


def scrub_text(text: str, policy: DatePolicy) -> tuple[str, list[dt.date]]:
    """Apply the policy to every date inside free text; returns (text, dates seen)."""
    hits = find_dates(text)
    if not hits:
        return text, []
    out, last = [], 0
    for s, e, d in hits:
        out.append(text[last:s])
        new = _apply(dt.datetime(d.year, d.month, d.day), policy)
        if new is None:
            out.append("[date removed]")
        else:
            out.append(new.strftime("%Y-%m-%d"))
        last = e
    out.append(text[last:])
    return "".join(out), [d for _, _, d in hits]


def spellings(d: dt.date) -> list[str]:
    """Common spellings of one date, for the residual scan of outputs."""
    y, m, day = d.year, d.month, d.day
    yy = f"{y % 100:02d}"
    mon = MONTHS[m - 1]
    s = {
        f"{y}-{m:02d}-{day:02d}", f"{y}{m:02d}{day:02d}", f"{y}:{m:02d}:{day:02d}", f"{y}/{m:02d}/{day:02d}",
        f"{y}.{m:02d}.{day:02d}",
        f"{m:02d}/{day:02d}/{yy}", f"{m:02d}/{day:02d}/{y}", f"{m}/{day}/{yy}", f"{m}/{day}/{y}",
        f"{day:02d}/{m:02d}/{y}", f"{day:02d}.{m:02d}.{y}", f"{day:02d}-{m:02d}-{y}", f"{m:02d}-{day:02d}-{y}",
        f"{day:02d}-{mon}-{y}", f"{day} {mon} {y}", f"{mon} {day}, {y}", f"{mon} {day} {y}",
    }
    return sorted(s)


def parse_any(value: str) -> list[dt.date]:
    """Dates inside a value, whatever its spelling (for residual needles)."""
    return [d for _, _, d in find_dates(value)]
