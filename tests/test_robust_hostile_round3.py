"""Hostile inputs, third round: the files and servers a user points the tool at besides slides.

Pseudonym maps (``uid-map.csv``, ``patient-map.csv``: read by ``map lookup``, read and appended
by every DICOM ``deid``), profile overrides (``--profile``), QC decision files (``review
apply``), research IDs, and DICOMweb servers (``push``, ``--push``, ``--from-dicomweb``) that
are slow, silent, redirect elsewhere, answer hugely or never confirm a store.

Command lines run as processes (tests/fuzz/proc.py: time limit, 3 GB address space, peak RSS
read back); a refusal is exit 2 with one ``wsideid: error:`` line. The servers are real HTTP
servers on the loopback (tests/hostile_http.py). Each test failed on main but the 409 guard.
"""

from __future__ import annotations

import base64
import csv
import json
import os
import shutil
from pathlib import Path

import pytest

import hostile_http as H
from fuzz.proc import Result, Runner, check_common, check_one_line_error, listing

TIMEOUT = 60
HTTP_ENV = {"WSIDEID_DICOMWEB_TIMEOUT": "2", "WSIDEID_DICOMWEB_RETRIES": "1", "WSIDEID_DICOMWEB_BACKOFF": "0.05"}


@pytest.fixture(scope="module")
def runner():
    r = Runner()
    yield r
    r.close()


@pytest.fixture(scope="module")
def fresh():
    """Processes started afresh: the DICOMweb settings are read from the environment on import."""
    r = Runner(fresh=True)
    yield r
    r.close()


def refused(r: Result, what: str, out: Path | None = None) -> str:
    check_common(r, what)
    assert r.rc == 2, (what, r.rc, r.stdout[-300:], r.stderr)
    check_one_line_error(r, what)
    if out is not None:
        assert [n for n in listing(out) if not n.startswith(".")] == [], (what, listing(out))
    return r.stderr.strip()


# ------------------------------------------------------------------ a DICOM slide and its maps

@pytest.fixture(scope="module")
def lab(tmp_path_factory) -> dict[str, Path]:
    """A synthetic DICOM series, a secret, and one run's OUTDIR and review folder (with both maps)."""
    from wsideid import cli
    from wsideid.synth import make_dicom
    d = tmp_path_factory.mktemp("lab")
    try:
        series = Path(make_dicom(str(d / "series")).path)
    except ImportError:
        pytest.skip("wsidicomizer (the convert extra) is not installed")
    key = d / "key.txt"
    key.write_text(base64.b64encode(b"round3-test-secret-0123456789abc").decode())
    assert cli.main(["deid", str(series), "-o", str(d / "out"), "--review-dir", str(d / "review"), "--secret-file",
                     str(key), "--detect", "off", "--new-id", "R-1"]) == 0
    return {"series": series, "key": key, "out": d / "out", "review": d / "review"}


def _review_copy(lab, tmp_path: Path) -> Path:
    review = tmp_path / "review"
    shutil.copytree(lab["review"], review)
    return review


def _deid(runner, lab, tmp_path: Path, review: Path) -> Result:
    return runner.run(["deid", str(lab["series"]), "-o", str(tmp_path / "out"), "--review-dir", str(review),
                       "--secret-file", str(lab["key"]), "--detect", "off", "--new-id", "R-1"], tmp_path, TIMEOUT)


def _lookup(runner, review: Path, value: str, tmp_path: Path, *extra: str) -> Result:
    return runner.run(["map", "lookup", value, "--review-dir", str(review), *extra], tmp_path, 30)


def _special(kind: str, path: Path) -> None:
    path.unlink()
    if kind == "dev-zero":
        path.symlink_to("/dev/zero")
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "sparse":
        path.write_text("id_old,id_new\n")
        os.truncate(path, 1 << 30)


@pytest.mark.parametrize("command", ["lookup", "deid"])
@pytest.mark.parametrize("kind", ["dev-zero", "fifo", "sparse"])
@pytest.mark.parametrize("which", ["uid-map.csv", "patient-map.csv"])
def test_map_that_is_not_a_small_file(runner, lab, tmp_path, which, kind, command):
    """main: read whole with open(): /dev/zero and a 1 GB sparse map ran out of memory (internal
    error, 2-3 GB of RSS), a FIFO hung both commands."""
    review = _review_copy(lab, tmp_path)
    _special(kind, review / which)
    r = _lookup(runner, review, "R-1", tmp_path) if command == "lookup" else _deid(runner, lab, tmp_path, review)
    refused(r, f"{command} {which} {kind}", tmp_path / "out" if command == "deid" else None)


@pytest.mark.parametrize("command", ["lookup", "deid"])
def test_map_not_utf8(runner, lab, tmp_path, command):
    """main: a Latin-1 byte was an internal error (UnicodeDecodeError), exit 70."""
    review = _review_copy(lab, tmp_path)
    with open(review / "patient-map.csv", "ab") as fh:
        fh.write(b"M\xfcller,R-9\n")
    r = _lookup(runner, review, "R-1", tmp_path) if command == "lookup" else _deid(runner, lab, tmp_path, review)
    assert "not UTF-8" in refused(r, command, tmp_path / "out" if command == "deid" else None)


def test_map_with_a_quote_left_open_is_not_appended_to(runner, lab, tmp_path):
    """main: a quote left open (a cut or hand-edited map) swallowed every row appended after it:
    the run published, and its rows were in the file but no reader could see them."""
    review = _review_copy(lab, tmp_path)
    (review / "uid-map.csv").write_text('id_old,id_new\n"1.2.3,2.25.1\n')
    before = (review / "uid-map.csv").read_bytes()
    line = refused(_deid(runner, lab, tmp_path, review), "deid", tmp_path / "out")
    assert "uid-map.csv" in line and "CSV" in line, line
    assert (review / "uid-map.csv").read_bytes() == before


@pytest.mark.parametrize("which,rows", [
    ("patient-map.csv", "88812345,R-1\n88812345,R-2\n"),  # one original, two new PatientIDs
    ("uid-map.csv", "1.2.3,2.25.7\n1.2.4,2.25.7\n"),  # two original UIDs, one new
])
def test_map_contradicting_itself_is_refused(runner, lab, tmp_path, which, rows):
    """main: a map already holding a contradiction was appended to (the first row won, the rest were
    ignored): the run published and the map stayed useless as proof."""
    review = _review_copy(lab, tmp_path)
    (review / which).write_text("id_old,id_new\n" + rows)
    line = refused(_deid(runner, lab, tmp_path, review), "deid", tmp_path / "out")
    assert "contradicts itself" in line, line
    assert "contradicts itself" in refused(_lookup(runner, review, "R-1", tmp_path), "lookup")


def test_map_saved_as_utf16_is_read_but_not_appended_to(runner, lab, tmp_path):
    """A map a spreadsheet saved again as UTF-16: main's lookup and deid were internal errors. It is
    read for a lookup; a run refuses to append UTF-8 rows to it."""
    review = _review_copy(lab, tmp_path)
    text = (review / "patient-map.csv").read_text()
    (review / "patient-map.csv").write_bytes(text.encode("utf-16"))
    r = _lookup(runner, review, "R-1", tmp_path)
    check_common(r, "lookup")
    assert r.rc == 0 and "patient-map.csv" in r.stdout, (r.rc, r.stdout, r.stderr)
    before = (review / "patient-map.csv").read_bytes()
    assert "UTF-16" in refused(_deid(runner, lab, tmp_path, review), "deid", tmp_path / "out")
    assert (review / "patient-map.csv").read_bytes() == before


def test_map_lookup_shows_control_characters_escaped(runner, lab, tmp_path):
    """A PatientID is the file's text, and the maps keep it: main printed an escape sequence from
    it raw (here one that retitles the terminal and turns it red)."""
    review = _review_copy(lab, tmp_path)
    with open(review / "patient-map.csv", "a") as fh:
        fh.write("\x1b]2;pwned\x07\x1b[31mDOE,R-1\n")
    r = _lookup(runner, review, "R-1", tmp_path)
    check_common(r, "lookup")
    assert r.rc == 0 and "\x1b" not in r.stdout and "\x07" not in r.stdout, repr(r.stdout)
    assert "\\x1b]2;pwned\\x07" in r.stdout


def test_map_append_cut_short_leaves_the_map_as_it_was(lab, tmp_path):
    """A write the file-size limit cuts short (as a full disk does): main wrote what fitted, half a
    row, and returned; the next run read the half row as a mapping. Now the append is cut back."""
    import resource
    import signal

    from wsideid.errors import WsideidError
    from wsideid.pseudomaps import MapKind, append_pairs
    review = _review_copy(lab, tmp_path)
    path = review / "uid-map.csv"
    before = path.read_bytes()
    pairs = [(f"1.2.826.0.1.3680043.8.498.{n}", f"2.25.{n}") for n in range(1000, 1040)]
    old_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (len(before) + 100, hard))
    try:
        with pytest.raises(WsideidError, match="the map is as it was"):
            append_pairs(str(review), MapKind.UID, pairs)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, old_handler)
    assert path.read_bytes() == before


# ------------------------------------------------------------------ profile overrides

@pytest.fixture(scope="module")
def svs(tmp_path_factory) -> Path:
    from wsideid.synth import make_svs
    p = tmp_path_factory.mktemp("svs") / "s.svs"
    make_svs(str(p), 1024, 768)
    return p


def _profile(kind: str, path: Path) -> None:
    raw = {
        "latin1": b'[tags]\nSoftware = { action = "replace", value = "M\xfcller" }\n',
        "deep-array": b"x = " + b"[" * 100000 + b"]" * 100000 + b"\n",
        "images-integer": b"images = 5\n",
        "profile-integer": b"profile = 5\n",
        "fields-array-of-tables": b'[[tags]]\nSoftware = "remove"\n',
        "replace-integer": b'[tags]\nSoftware = { action = "replace", value = 5 }\n',
        "type-array": b'[tags]\nSoftware = { action = "keep", type = ["a"] }\n',
        "format-integer": b'[tags]\nDateTime = { action = "date", format = 5 }\n',
        "replace-control": b'[tags]\nSoftware = { action = "replace", value = "a\\nb\\u0000c" }\n',
        "format-misspelt": b'[profile]\nformat = "svs"\n[tags]\nSoftware = "remove"\n',
    }
    if kind == "dev-zero":
        path.symlink_to("/dev/zero")
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "sparse":
        path.write_bytes(b'[tags]\nSoftware = "remove"\n')
        os.truncate(path, 1 << 30)
    else:
        path.write_bytes(raw[kind])


PROFILE_KINDS = ["dev-zero", "fifo", "sparse", "latin1", "deep-array", "images-integer", "profile-integer",
                 "fields-array-of-tables", "replace-integer", "type-array", "format-integer", "replace-control",
                 "format-misspelt"]


@pytest.mark.parametrize("kind", PROFILE_KINDS)
def test_profile_override_that_cannot_be_a_profile(runner, svs, tmp_path, kind):
    """main: /dev/zero ran out of memory, a FIFO hung, a 1 GB sparse file took 2 GB of RSS;
    Latin-1, deep nesting and values of the wrong TOML type were internal errors (exit 70);
    `[[tags]]` dropped every tag rule (inspect said all was well, deid failed verification); a
    replace value with NUL and newline was accepted (the slide published); `format = "svs"` (the
    format is named aperio) was skipped for every slide, the officer's rules with it."""
    prof = tmp_path / "override.toml"
    _profile(kind, prof)
    r = runner.run(["inspect", str(svs), "--profile", str(prof)], tmp_path, 30)
    refused(r, f"inspect --profile {kind}")


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16"])
def test_profile_saved_by_notepad_is_read(runner, svs, tmp_path, encoding):
    """A BOM (Notepad's UTF-8) was "Invalid statement" and UTF-16 an internal error on main."""
    prof = tmp_path / "override.toml"
    prof.write_bytes('[profile]\nformat = "aperio"\n[images]\nmacro = "keep"\n'.encode(encoding))
    r = runner.run(["inspect", str(svs), "--profile", str(prof), "--json"], tmp_path, 30)
    check_common(r, "inspect")
    assert r.rc == 0, r.stderr
    macro = [im for im in json.loads(r.stdout)["images"] if im["role"] == "macro"]
    assert macro and all(im["action"] == "keep" for im in macro)


# ------------------------------------------------------------------ research IDs

@pytest.mark.parametrize("new_id", ["1987-03-17", "R-19870317", "CASE-2024-03-17"])
def test_research_id_holding_a_date_is_refused(runner, svs, tmp_path, new_id):
    """main: published as the output's name (and where the profile writes the ID), exempt from
    the verifier's search, which treats the research ID as what the output is meant to hold."""
    out = tmp_path / "out"
    r = runner.run(["deid", str(svs), "-o", str(out), "--detect", "off", "--new-id", new_id], tmp_path, TIMEOUT)
    assert "date" in refused(r, "deid", out)


# ------------------------------------------------------------------ QC decision files

@pytest.fixture(scope="module")
def flagged(tmp_path_factory) -> tuple[Path, Path, Path]:
    """A batch with one flagged slide (its kept macro shows a DataMatrix); returns OUTDIR, review, tmp."""
    from test_batch_e2e import MACRO_SVS, make_batch_sources
    from wsideid.batch.runner import BatchOptions, run_batch
    tmp = tmp_path_factory.mktemp("flagged")
    make_batch_sources(tmp)
    m = tmp / "manifest.csv"
    m.write_text(f"source,new_id,keep_macro\nslides/{MACRO_SVS},R-1,yes\n")
    res = run_batch(str(m), str(tmp / "out"), BatchOptions(detect="residual", ocr=False, progress=False))
    if res.counts.get("flagged") != 1:
        pytest.skip(f"the slide was not flagged without OCR: {res.counts}")
    return tmp / "out", tmp / "out-review", tmp


def _fresh_batch(flagged, tmp_path: Path) -> tuple[Path, Path]:
    out, review, _ = flagged
    shutil.copytree(out, tmp_path / "out")
    shutil.copytree(review, tmp_path / "out-review", symlinks=True)
    return tmp_path / "out", tmp_path / "out-review"


def test_a_slide_decided_two_ways_is_not_acted_on(runner, flagged, tmp_path):
    """main: approve then reject of one slide in one file published it (approved) and reported the
    reject as done ("already approved, nothing to do", ok)."""
    out, review = _fresh_batch(flagged, tmp_path)
    d = tmp_path / "decisions.csv"
    d.write_text("new_id,decision,reviewer\nR-1,approve,Anna\nR-1,reject,Ben\n")
    r = runner.run(["review", "apply", str(d), str(out), "--review-dir", str(review), "--json"], tmp_path, TIMEOUT)
    check_common(r, "review apply")
    assert r.rc == 2, (r.stdout, r.stderr)
    rows = json.loads(r.stdout)
    assert [x["ok"] for x in rows] == [False, False] and all("two ways" in x["message"] for x in rows), rows
    assert not (out / "R-1.svs").exists()


def test_reviewer_cell_is_not_published_as_it_is(runner, flagged, tmp_path):
    """The reviewer's name is written into the published audit: main put a cell holding a note with
    a line break (the note pasted into the wrong column) into OUTDIR as it was."""
    out, review = _fresh_batch(flagged, tmp_path)
    d = tmp_path / "decisions.csv"
    with open(d, "w", newline="") as fh:
        csv.writer(fh).writerows([["new_id", "decision", "reviewer"], ["R-1", "approve", "Anna\nJane Doe DOB 1950"]])
    r = runner.run(["review", "apply", str(d), str(out), "--review-dir", str(review), "--json"], tmp_path, TIMEOUT)
    check_common(r, "review apply")
    assert r.rc == 2 and "line break" in json.loads(r.stdout)[0]["message"], (r.stdout, r.stderr)
    assert not (out / "R-1.svs").exists()
    assert all(b"Jane Doe" not in p.read_bytes() for p in out.rglob("*") if p.is_file())


# ------------------------------------------------------------------ DICOMweb servers that misbehave

def _push(fresh, lab, tmp_path: Path, url: str) -> tuple[Result, Path]:
    review = _review_copy(lab, tmp_path)
    r = fresh.run(["push", str(lab["out"]), "--dicomweb", url, "--review-dir", str(review)], tmp_path, TIMEOUT,
                  HTTP_ENV)
    return r, review


@pytest.fixture
def server():
    started: list[H.Server] = []

    def start(*a, **kw) -> H.Server:
        started.append(H.start(*a, **kw))
        return started[-1]
    yield start
    for s in started:
        s.stop()


@pytest.mark.parametrize("post_only", [False, True], ids=["search", "store"])
@pytest.mark.parametrize("mode", [H.Mode.SILENT, H.Mode.DRIBBLE])
def test_push_to_a_server_that_stalls_ends(fresh, lab, tmp_path, server, mode, post_only):
    """main: a server that sent its status line and then one header byte every 0.2 s held `push`
    for ever (requests' timeout bounds each read, not the answer). Now each exchange has a
    deadline (2 s here) and the run ends in one line naming it."""
    s = server(mode, post_only=post_only)
    r, review = _push(fresh, lab, tmp_path, s.url)
    line = refused(r, f"push {mode.value}")
    assert "did not answer within 2s" in line and r.seconds < 30, (line, r.seconds)
    assert not (review / "pushed.csv").exists()


@pytest.mark.parametrize("post_only", [False, True], ids=["search", "store"])
def test_push_follows_no_redirect(fresh, lab, tmp_path, server, post_only):
    """main: a 307 to another host was followed: the search and both STOW-RS requests went there."""
    elsewhere = server(H.Mode.RECORD)
    s = server(H.Mode.REDIRECT, redirect_to=elsewhere.url, post_only=post_only)
    r, review = _push(fresh, lab, tmp_path, s.url)
    assert "redirect" in refused(r, "push redirect")
    assert elsewhere.requests == []
    assert not (review / "pushed.csv").exists()


@pytest.mark.parametrize("post_only", [False, True], ids=["search", "store"])
def test_push_to_a_server_answering_hugely(fresh, lab, tmp_path, server, post_only):
    """main: a 300 MB answer was read whole (658 MB of RSS), and as a STOW-RS answer it counted as
    success: the instances were recorded as sent."""
    s = server(H.Mode.HUGE, post_only=post_only)
    r, review = _push(fresh, lab, tmp_path, s.url)
    refused(r, "push huge")  # within 100 MB of RSS
    assert not (review / "pushed.csv").exists()


@pytest.mark.parametrize("mode", [H.Mode.EMPTY_OK, H.Mode.RECORD])
def test_a_store_the_server_does_not_confirm_is_not_recorded_as_sent(fresh, lab, tmp_path, server, mode):
    """main: 200 with no body, or ``[]``, was taken for success: pushed.csv said sent, and a rerun
    never sent the instances again. A STOW-RS answer must list the instance as stored."""
    s = server(mode)
    r, review = _push(fresh, lab, tmp_path, s.url)
    assert "did not confirm" in refused(r, f"push {mode.value}")
    assert not (review / "pushed.csv").exists()


def test_push_with_a_conflict_answer(fresh, lab, tmp_path, server):
    """Guard (one line on main too): a 409 to STOW-RS is an error and nothing is recorded."""
    s = server(H.Mode.STATUS_409, post_only=True)
    r, review = _push(fresh, lab, tmp_path, s.url)
    assert "409" in refused(r, "push 409")
    assert not (review / "pushed.csv").exists()


def test_push_over_tls_to_an_untrusted_server(fresh, lab, tmp_path, server):
    """A self-signed certificate: one line naming TLS (main said "cannot reach")."""
    tls = H.self_signed(tmp_path)
    if tls is None:
        pytest.skip("no openssl command to make a certificate")
    s = server(H.Mode.RECORD, tls=tls)
    r, _ = _push(fresh, lab, tmp_path, f"https://127.0.0.1:{s.port}/dicom-web")
    assert "TLS" in refused(r, "push tls")


@pytest.mark.parametrize("what", ["pushed.csv", "audit"])
def test_push_with_a_fifo_for_its_record_or_an_audit(fresh, lab, tmp_path, server, what):
    """main: pushed.csv (review folder) or an output's audit (OUTDIR, which may be shared) made a
    FIFO hung `push` before it sent anything."""
    s = server(H.Mode.RECORD)
    review = _review_copy(lab, tmp_path)
    out = tmp_path / "out"
    shutil.copytree(lab["out"], out)
    os.mkfifo(review / "pushed.csv") if what == "pushed.csv" else ((out / "R-1.audit.json").unlink(),
                                                                   os.mkfifo(out / "R-1.audit.json"))
    r = fresh.run(["push", str(out), "--dicomweb", s.url, "--review-dir", str(review)], tmp_path, 30, HTTP_ENV)
    if what == "pushed.csv":
        refused(r, f"push {what} fifo")
    else:  # `push` lists the outputs it did not send on stdout, each with its reason
        check_common(r, "push audit fifo")
        assert r.rc == 2 and "NOT SENT R-1: no audit" in r.stdout, (r.rc, r.stdout, r.stderr)
    assert [m for m in s.requests if m[0] == "POST"] == []


@pytest.mark.parametrize("mode", [H.Mode.DRIBBLE, H.Mode.HUGE, H.Mode.REDIRECT])
def test_fetch_from_a_misbehaving_server(fresh, lab, tmp_path, server, mode):
    """``deid --from-dicomweb``: the search of the study, as in push (main: a hang, 658 MB, a
    request sent on to another host)."""
    elsewhere = server(H.Mode.RECORD)
    s = server(mode, redirect_to=elsewhere.url)
    out = tmp_path / "out"
    r = fresh.run(["deid", "--from-dicomweb", s.url, "--study", "1.2.826.0.1.3680043.8.498.1", "-o", str(out),
                   "--secret-file", str(lab["key"]), "--detect", "off"], tmp_path, TIMEOUT, HTTP_ENV)
    refused(r, f"fetch {mode.value}", out)
    assert elsewhere.requests == []


def test_fetch_of_an_instance_that_comes_a_byte_at_a_time(fresh, lab, tmp_path, server):
    """WADO-RS, streamed to disk: main read it with a per-read timeout only, so a body arriving one
    byte every 0.2 s held ``deid --from-dicomweb`` for ever; the exchange's deadline ends it now."""
    s = server(H.Mode.SLOW_INSTANCE)
    out = tmp_path / "out"
    r = fresh.run(["deid", "--from-dicomweb", s.url, "--study", "1.2.826.0.1.3680043.8.498.1", "-o", str(out),
                   "--secret-file", str(lab["key"]), "--detect", "off"], tmp_path, TIMEOUT, HTTP_ENV)
    line = refused(r, "fetch slow instance", out)
    assert "retrieve (WADO-RS)" in line and "did not answer" in line and r.seconds < 30, (line, r.seconds)
