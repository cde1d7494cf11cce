"""Date policies: remove, year, keyed per-subject shift, free-text scrubbing."""

from __future__ import annotations

import datetime as dt

import pytest

from wsideid.dates import (DatePolicy, DatePolicyError, find_dates, make_policy, scrub_text, spellings,
                           transform_structured)
from wsideid.keys import Secret

S1 = Secret(b"0123456789abcdef-secret-one", "file")
S2 = Secret(b"0123456789abcdef-secret-two", "file")


def test_shift_is_consistent_per_subject_and_keyed():
    a = make_policy("shift", S1, "patient-7")
    b = make_policy("shift", S1, "patient-7")
    c = make_policy("shift", S2, "patient-7")
    d = make_policy("shift", S1, "patient-8")
    assert a.offset_days == b.offset_days
    assert a.offset_days != c.offset_days or a.offset_days != d.offset_days
    assert 1 <= a.offset_days <= 3652


def test_shift_needs_secret_and_subject():
    with pytest.raises(DatePolicyError):
        make_policy("shift", None, "p")
    with pytest.raises(DatePolicyError):
        make_policy("shift", S1, None)
    with pytest.raises(DatePolicyError):
        make_policy("sometimes")


@pytest.mark.parametrize("value,fmt,policy,expected", [
    ("12/29/09", "%m/%d/%y", DatePolicy("remove"), None),
    ("12/29/09", "%m/%d/%y", DatePolicy("year"), "01/01/09"),
    ("12/29/09", "%m/%d/%y", DatePolicy("shift", 10), "12/19/09"),
    ("2017:02:07 13:07:45", "%Y:%m:%d %H:%M:%S", DatePolicy("shift", 7), "2017:01:31 13:07:45"),
    ("2017:02:07 13:07:45", "%Y:%m:%d %H:%M:%S", DatePolicy("year"), "2017:01:01 00:00:00"),
    ("garbage", "%Y/%m/%d", DatePolicy("shift", 3), None),  # unparsable: removed, fail closed
])
def test_structured(value, fmt, policy, expected):
    assert transform_structured(value, fmt, policy) == expected


@pytest.mark.parametrize("text", ["2024-03-05", "20240305", "03/05/24", "03/05/2024", "5.3.2024",
                                  "05-MAR-2024", "March 5, 2024", "5 March 2024", "2024:03:05 10:00:00"])
def test_free_text_spellings_are_found(text):
    assert [d for _, _, d in find_dates(f"scanned {text} ok")] == [dt.date(2024, 3, 5)]


def test_versions_and_sizes_are_not_dates():
    assert find_dates("Aperio Image Library v12.0.15 46000x32914 (240x240) Q=70") == []


def test_scrub_text_applies_policy():
    new, seen = scrub_text("on 2024-03-05 by x", DatePolicy("shift", 5))
    assert new == "on 2024-02-29 by x" and seen == [dt.date(2024, 3, 5)]
    new, _ = scrub_text("on 2024-03-05 by x", DatePolicy("remove"))
    assert "2024" not in new


def test_spellings_cover_common_forms():
    s = spellings(dt.date(2009, 12, 29))
    for form in ("2009-12-29", "20091229", "12/29/09", "29.12.2009", "2009:12:29", "29-dec-2009"):
        assert form in s


def test_secret_never_shows_in_repr():
    assert "secret-one" not in repr(S1)
