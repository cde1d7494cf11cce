"""The one date parser: spellings issue 10 found surviving, European and Asian forms,
versions that are not dates, and the spellings the verifier searches for."""

from __future__ import annotations

import datetime as dt

import pytest

from wsideid.dates import DatePolicy, find_dates, month_names, parse_any, scrub_text, spellings

D = dt.date(2019, 12, 31)

ISSUE_SPELLINGS = ["12.31.2019", "31Dec2019", "2019_12_31", "Dec-31-2019", "31122019", "12312019",
                   "31st December 2019", "12 31 2019", "2019-Dec-31", "31. Dezember 2019", "2019年12月31日"]
EUROPEAN = ["31.12.19", "31.12.2019", "31/12/2019", "31-12-2019", "31 décembre 2019", "31 DÉC. 2019",
            "31 de diciembre de 2019", "31-dic-2019", "31 dicembre 2019", "31 december 2019", "31-dez-2019",
            "31 de dezembro de 2019", "31. Dez. 2019", "2019-12-31T23:59:59", "2019:12:31 23:59:59"]
ASIAN = ["2019年12月31日", "2019年 12月 31日", "2019年12月31号", "２０１９年１２月３１日", "2019년 12월 31일",
         "2019년12월31일", "2019/12/31", "2019.12.31", "2019-12-31 23:59"]
OTHER = ["20191231", "20191231235959", "20191231235959.123", "Dec 31, 2019", "December 31st, 2019",
         "31-DEC-2019", "2019 Dec 31", "2019Dec31", "12/31/19", "12/31/2019", "12-31-2019", "12_31_2019"]


@pytest.mark.parametrize("text", ISSUE_SPELLINGS + EUROPEAN + ASIAN + OTHER)
def test_every_spelling_is_found_in_text(text):
    hits = find_dates(f"scanned {text} by the lab.")
    assert [d for _, _, d in hits] == [D], text
    s, e, _ = hits[0]
    assert f"scanned {text} by the lab."[s:e].strip()  # a real span


@pytest.mark.parametrize("text", ISSUE_SPELLINGS + EUROPEAN + ASIAN + OTHER)
def test_every_spelling_is_generated(text):
    # the scanner folds case and ignores a trailing time; spellings are lower case, date part only
    known = set(spellings(D))
    date_part = text.split("T")[0] if "T2" in text else text
    for cut in (date_part, date_part[:10], date_part[:8], date_part[:11], date_part[:12], date_part[:13]):
        if cut.lower() in known or cut.casefold() in known:
            return
    pytest.fail(f"{text!r} not among the spellings")


@pytest.mark.parametrize("day", [dt.date(2019, 12, 31), dt.date(2001, 1, 1), dt.date(1999, 3, 5),
                                 dt.date(2024, 2, 29), dt.date(2012, 11, 12), dt.date(2020, 8, 3)])
def test_every_generated_spelling_parses_back(day):
    s = spellings(day)
    assert len(s) > 300
    for form in s:
        assert day in parse_any(form), form
        assert day in parse_any(f"on {form.upper()} at 10:00"), form


@pytest.mark.parametrize("lang_name,month", [("januar", 1), ("janvier", 1), ("enero", 1), ("gennaio", 1),
                                             ("januari", 1), ("janeiro", 1), ("février", 2), ("fevereiro", 2),
                                             ("märz", 3), ("maart", 3), ("março", 3), ("mai", 5), ("mei", 5),
                                             ("maggio", 5), ("juin", 6), ("giugno", 6), ("juillet", 7),
                                             ("luglio", 7), ("août", 8), ("agosto", 8), ("settembre", 9),
                                             ("setembro", 9), ("oktober", 10), ("ottobre", 10), ("outubro", 10),
                                             ("noviembre", 11), ("dezember", 12), ("dicembre", 12)])
def test_month_names_in_seven_languages(lang_name, month):
    assert lang_name in month_names(month)
    assert parse_any(f"3 {lang_name} 2018") == [dt.date(2018, month, 3)]
    assert parse_any(f"3 {lang_name.upper()} 2018") == [dt.date(2018, month, 3)]


@pytest.mark.parametrize("text", ["NDP.scan 2.5.89", "v1.2.3", "10.0.51", "2.5.89.1234",
                                  "Aperio Image Library v12.0.15 46000x32914 (240x240) Q=70",
                                  "version 31.12.19", "firmware 1.12.2019", "v.5.3.2024", "192.168.10.20",
                                  "build 2.5.89.1234 of 6.1.7601", "0.25061990", "123456789",
                                  "C9600-12", "MPP = 0.4990", "AppMag = 20", "10 20 30", "1-2-19"])
def test_versions_and_numbers_are_not_dates(text):
    assert find_dates(text) == []
    assert scrub_text(text, DatePolicy("remove"))[0] == text


def test_ambiguous_dates_give_both_readings():
    assert parse_any("03/05/2024") == [dt.date(2024, 3, 5), dt.date(2024, 5, 3)]
    assert parse_any("03.05.2024") == [dt.date(2024, 5, 3), dt.date(2024, 3, 5)]
    assert parse_any("01022019") == [dt.date(2019, 2, 1), dt.date(2019, 1, 2)]
    assert parse_any("31.12.2019") == [D]


def test_shift_leaves_no_unshifted_copy_in_any_spelling():
    text = "scan 2019-12-31, copy 31Dec2019 / 12.31.2019 / 2019年12月31日 / 31. Dezember 2019 / NDP.scan 2.5.89"
    new, seen = scrub_text(text, DatePolicy("shift", 7))
    assert seen == [D] * 5
    assert new.count("2019-12-24") == 5 and "NDP.scan 2.5.89" in new
    assert not any(d == D for d in parse_any(new))
    low = new.lower()
    assert not [s for s in spellings(D) if s in low and len(s) >= 8]


def test_compact_date_time_keeps_its_shape():
    new, _ = scrub_text("DT 20191231235959", DatePolicy("shift", 7))
    assert new == "DT 20191224235959"
    new, _ = scrub_text("DT 20191231235959", DatePolicy("remove"))
    assert "20191231" not in new
