"""DICOMweb in and out: read a study by QIDO-RS/WADO-RS, send verified outputs by STOW-RS.

Repositories move slides in and out of a PACS over DICOMweb, not by copying
folders. The HTTP is dicomweb-client's (a maintained client); this module
only decides what is fetched and what may be sent:

- In: the study's instances are listed (QIDO-RS, dicomweb-client) and
  retrieved one at a time in their stored transfer syntax (WADO-RS,
  ``transfer-syntax=*``) over the client's session. dicomweb-client reads a
  whole instance into memory before decoding it, and a level-0 instance can
  be gigabytes, so the response is streamed instead: python-multipart (a
  maintained streaming parser) splits the multipart body and each chunk goes
  straight to the (owner-only) temporary folder. Memory holds a chunk, not
  an instance, and the file holds the server's bytes unchanged.
- Out: each file is sent as its own bytes, streamed by STOW-RS (see
  _StowBody). Only an output whose audit in OUTDIR says it was published after
  every verification check passed is sent, and only files whose hash is the
  one the audit recorded for the verified output (a file changed or added
  after verification is refused). What was sent is appended to
  ``pushed.csv`` in the review folder, so a rerun after a failure sends only
  the rest.

Connection failures and server errors are retried (urllib3's Retry, with
back-off); what still fails is one WsideidError line. The session is
wsideid.httpsafe's: every exchange has a deadline (a server that accepts and
never answers, or answers a byte at a time, does not hang the run), no
redirect is followed (a request is never re-sent to a host the user did not
name) and an answer read whole is bounded. An instance counts as sent only
when the server's STOW-RS answer lists it as stored.
"""

from __future__ import annotations

import csv
import json
import os
import time
from dataclasses import dataclass, field
from typing import Iterator
from urllib.parse import urlsplit, urlunsplit

from .errors import WsideidError

PUSH_RECORD = "pushed.csv"
PUSH_COLUMNS = ["time", "server", "output_name", "sop_instance_uid", "sha256"]
TIMEOUT_S = float(os.environ.get("WSIDEID_DICOMWEB_TIMEOUT", "120"))
RETRIES = int(os.environ.get("WSIDEID_DICOMWEB_RETRIES", "4"))
BACKOFF_S = float(os.environ.get("WSIDEID_DICOMWEB_BACKOFF", "0.5"))
ANY_SYNTAX = (("application/dicom", "*"),)
_SOP_INSTANCE, _SERIES = "00080018", "0020000E"


class DicomWebError(WsideidError):
    """The server could not be reached, or answered with an error."""


def server_name(url: str) -> str:
    """The URL without user name, password, query or fragment: what the records may hold."""
    p = urlsplit(url)
    host = p.hostname or ""
    if p.port:
        host += f":{p.port}"
    return urlunsplit((p.scheme, host, p.path.rstrip("/"), "", ""))


def _check_url(url: str) -> str:
    p = urlsplit(url)
    if p.scheme not in ("http", "https") or not p.hostname:
        raise DicomWebError(f"not a DICOMweb URL (http[s]://host[:port]/root): {server_name(url) or url[:40]!r}")
    return url.rstrip("/")


def client(url: str):
    """A dicomweb-client for ``url`` with retries (connection errors, 429/5xx) over a
    wsideid.httpsafe session (a deadline per exchange, no redirects, bounded answers)."""
    from dicomweb_client.api import DICOMwebClient
    from urllib3.util.retry import Retry

    from .httpsafe import Session

    import logging
    for name in ("retrying", "urllib3", "dicomweb_client"):  # their warnings would print tracebacks on stderr
        logging.getLogger(name).setLevel(logging.CRITICAL)
    retry = Retry(total=RETRIES, connect=RETRIES, read=RETRIES, status=RETRIES, backoff_factor=BACKOFF_S,
                  status_forcelist=(429, 500, 502, 503, 504), allowed_methods=None, raise_on_status=False,
                  redirect=False)
    session = Session(TIMEOUT_S, retry)
    c = DICOMwebClient(url=_check_url(url), session=session)
    c.set_http_retry_params(retry=False)  # the adapter retries; not both
    c.wsideid_session = session  # for the streamed retrieval (see retrieve_to_file)
    return c


def _explain(exc: Exception, url: str, what: str) -> DicomWebError:
    """One line for a failed request (no traceback, no credentials from the URL)."""
    import requests

    from .httpsafe import Redirected, TooLarge
    where = server_name(url)
    if isinstance(exc, Redirected) and exc.response is not None:
        return DicomWebError(f"DICOMweb {what} failed: {where} answered HTTP {exc.response.status_code}, a redirect"
                             " elsewhere (not followed: give the server's own DICOMweb root)")
    if isinstance(exc, TooLarge):
        return DicomWebError(f"DICOMweb {what} failed: {where} answered more than a DICOMweb answer holds ({exc})")
    if isinstance(exc, requests.exceptions.SSLError):
        return DicomWebError(f"DICOMweb {what} failed: TLS with {where} failed (certificate not trusted,"
                             " or no TLS server there)")
    if isinstance(exc, requests.HTTPError) and exc.response is not None:
        return DicomWebError(f"DICOMweb {what} failed: {where} answered HTTP {exc.response.status_code}"
                             f" {exc.response.reason or ''}".rstrip())
    if isinstance(exc, requests.Timeout):
        return DicomWebError(f"DICOMweb {what} failed: {where} did not answer within {TIMEOUT_S:.0f}s")
    if isinstance(exc, requests.ConnectionError):
        return DicomWebError(f"DICOMweb {what} failed: cannot reach {where} (after {RETRIES} retries)")
    return DicomWebError(f"DICOMweb {what} failed at {where}: {type(exc).__name__}")


def _request_errors() -> tuple[type[BaseException], ...]:
    import requests
    return (requests.RequestException, ValueError, KeyError)


# -- in -----------------------------------------------------------------------

def _value(item: dict, tag: str) -> str:
    vals = (item.get(tag) or {}).get("Value") or [""]
    return str(vals[0])


MAX_INSTANCES = 10_000  # a slide is a few to some hundreds of instances; a study a few slides


def list_instances(c, url: str, study: str) -> list[tuple[str, str]]:
    """(series UID, SOP instance UID) of every instance of the study (QIDO-RS, page after page).

    The pages are asked for here, not by dicomweb-client's ``get_remaining``, which asks until a
    page comes back empty: a server answering every offset with the same instance kept the run
    asking for ever. A page that adds no new instance ends the listing, and a study of more than
    MAX_INSTANCES is refused."""
    items: dict[str, tuple[str, str]] = {}
    while True:
        try:
            page = c.search_for_instances(study_instance_uid=study, fields=[_SERIES, _SOP_INSTANCE],
                                          offset=len(items) or None)
        except _request_errors() as exc:
            raise _explain(exc, url, "search (QIDO-RS)") from None
        new = {_value(i, _SOP_INSTANCE): (_value(i, _SERIES), _value(i, _SOP_INSTANCE)) for i in page or []
               if isinstance(i, dict) and _value(i, _SOP_INSTANCE) and _value(i, _SOP_INSTANCE) not in items}
        if not new:
            break
        items.update(new)
        if len(items) > MAX_INSTANCES:
            raise DicomWebError(f"the study on {server_name(url)} lists more than {MAX_INSTANCES} instances")
    out = sorted(items.values())
    if not out:
        raise DicomWebError(f"the study asked for (--study) has no instances on {server_name(url)}")
    return out


CHUNK = 1 << 20
_ACCEPT = 'multipart/related; type="application/dicom"; transfer-syntax=*'


def retrieve_to_file(c, url: str, study: str, series: str, sop: str, path: str) -> None:
    """WADO-RS one instance, streamed into ``path`` (a multipart body of one part, or a bare application/dicom)."""
    from python_multipart.multipart import MultipartParser, parse_options_header

    from .httpsafe import exchange
    target = f"{c.base_url}/studies/{study}/series/{series}/instances/{sop}"
    parts = 0
    with open(path, "xb") as fh, exchange(TIMEOUT_S) as ex:  # the deadline covers the streamed body too
        try:
            with c.wsideid_session.get(target, headers={"Accept": _ACCEPT}, stream=True) as resp:
                resp.raise_for_status()
                media, params = parse_options_header(resp.headers.get("Content-Type", ""))
                if media == b"application/dicom":
                    for chunk in resp.iter_content(CHUNK):
                        ex.progress(len(chunk))
                        fh.write(chunk)
                    ex.raise_if_expired()
                    return
                if media != b"multipart/related" or b"boundary" not in params:
                    raise DicomWebError(f"DICOMweb retrieve (WADO-RS) failed: {server_name(url)} answered"
                                        f" {media.decode('latin-1')[:40]!r}, not DICOM")

                def begin():
                    nonlocal parts
                    parts += 1

                def data(buf: bytes, start: int, end: int) -> None:
                    if parts == 1:
                        fh.write(buf[start:end])
                parser = MultipartParser(params[b"boundary"], {"on_part_begin": begin, "on_part_data": data})
                for chunk in resp.iter_content(CHUNK):
                    ex.progress(len(chunk))
                    parser.write(chunk)
                ex.raise_if_expired()
                parser.finalize()
        except _request_errors() as exc:  # a body cut by the deadline is a timeout, not a lost server
            raise _explain(_timed_out(ex) or exc, url, "retrieve (WADO-RS)") from None
    if parts != 1:
        raise DicomWebError(f"DICOMweb retrieve (WADO-RS) failed: {server_name(url)} sent {parts} parts for one instance")


def _timed_out(ex) -> Exception | None:
    from .httpsafe import Expired
    return Expired("deadline passed") if ex.expired else None


def fetch_study(url: str, study: str, folder: str) -> list[str]:
    """Write every instance of ``study`` into ``folder`` (one file each); returns the paths.

    Instances come in their stored transfer syntax, byte for byte as the
    server sends them, so the pixels the de-identification copies are the server's.
    """
    from .dicom.uids import is_registry_uid
    if not study or not all(p.isdigit() for p in study.split(".")) or is_registry_uid(study):
        raise DicomWebError("--study needs a Study Instance UID (digits and dots)")
    c = client(url)
    paths = []
    for n, (series, sop) in enumerate(list_instances(c, url, study)):
        path = os.path.join(folder, f"instance-{n:05d}.dcm")
        retrieve_to_file(c, url, study, series, sop, path)
        paths.append(path)
    return paths


# -- out ----------------------------------------------------------------------

@dataclass
class PushResult:
    """What one push did: instances sent now, already sent before, outputs refused (and why)."""

    sent: int = 0
    already: int = 0
    refused: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)


def _sent_digest(path: str) -> str:
    """What the push record (``_record``) names a sent file by: sha256, whatever the audit used,
    so a record written before the audit's algorithm changed still knows what was sent."""
    from .hashing import sha256_file
    return sha256_file(path)


def _audit_hash(path: str, algorithm: str) -> str:
    """The hash the DICOM driver records in the audit for each output file (the same function,
    under the algorithm the audit names)."""
    from .hashing import file_digest, parse
    return file_digest(path, parse(algorithm))


def _audit(outdir: str, name: str) -> dict | None:
    """The output's audit, or None; read as any table file (a regular file of bounded size opened
    without blocking: OUTDIR may be shared, and a FIFO named like an audit hung ``push``)."""
    from .tables import read_table_file
    try:
        audit = json.loads(read_table_file(os.path.join(outdir, name + ".audit.json"), "an audit"))
    except (WsideidError, ValueError, RecursionError):
        return None
    return audit if isinstance(audit, dict) else None


def verified_files(outdir: str, name: str) -> list[str]:
    """The DICOM files of output ``name`` in OUTDIR, if its audit proves them verified; else WsideidError.

    Proof: the audit says published, lists verification checks and all of
    them passed, and records the hash of every file (a file changed or
    added after verification is not the verified output).
    """
    audit = _audit(outdir, name)
    if audit is None:
        raise WsideidError(f"{name}: no audit in OUTDIR, never verified; not sent")
    checks = audit.get("verification") or []
    if audit.get("status") != "published" or not checks or not all(c.get("ok") for c in checks):
        raise WsideidError(f"{name}: its audit does not say published and verified; not sent")
    if audit.get("format") != "dicom":
        return []  # a verified TIFF output: not DICOM, nothing to send
    path = os.path.join(outdir, name)
    files = sorted(os.path.join(path, n) for n in os.listdir(path)) if os.path.isdir(path) else [path]
    from .audit import record_hashes
    algorithm, hashes = record_hashes(audit)
    recorded = {v for k, v in hashes.items() if k.startswith("output")}
    if not recorded:
        raise WsideidError(f"{name}: the audit holds no output hashes (--no-hash), so the files cannot be shown"
                           " to be the verified ones; not sent")
    for f in files:
        if os.path.islink(f) or not os.path.isfile(f) or _audit_hash(f, algorithm) not in recorded:
            raise WsideidError(f"{name}: {os.path.basename(f)} is not a file verification recorded; not sent")
    return files


def outputs_in(outdir: str) -> list[str]:
    """The names of the outputs in OUTDIR: every entry but audits, summaries and temporary folders."""
    names = []
    for n in sorted(os.listdir(outdir)):
        if n.startswith(".") or n.endswith((".audit.json", ".json", ".csv", ".html", ".txt", ".xlsx")):
            continue
        names.append(n)
    return names


def _read_record(review: str) -> set[tuple[str, str, str]]:
    """What pushed.csv says was sent. A record that is no small regular file of UTF-8 CSV is an
    error, not "nothing sent" (a FIFO hung ``push``, /dev/zero ran it out of memory, a Latin-1
    byte was an internal error)."""
    import io

    from .cells import unescape_row
    from .tables import decode_text, read_table_file
    path = os.path.join(review, PUSH_RECORD)
    if not os.path.lexists(path):
        return set()
    text = decode_text(read_table_file(path, PUSH_RECORD), PUSH_RECORD)
    try:
        rows = list(map(unescape_row, csv.DictReader(io.StringIO(text, newline=""), strict=True)))
        return {(r["server"], r["sop_instance_uid"], r["sha256"]) for r in rows}
    except (csv.Error, KeyError, TypeError):
        raise WsideidError(f"{PUSH_RECORD} in the review folder is damaged (not the CSV push writes);"
                           " move it aside to send everything again") from None


def _record(review: str, server: str, name: str, sop: str, digest: str) -> None:
    from .cells import csv_line
    from .naming import make_review_dir
    from .safefs import append
    make_review_dir(review)
    line = csv_line([time.strftime("%Y-%m-%dT%H:%M:%S%z"), server, name, sop, digest])
    append(os.path.join(review, PUSH_RECORD), line.encode("utf-8"), csv_line(PUSH_COLUMNS).encode(), root=review)


class _StowBody:
    """A multipart/related body holding one DICOM file, read in pieces as requests sends it.

    dicomweb-client's store_instances re-encodes a whole dataset in memory
    (a level-0 instance several times over); this sends the verified file's
    own bytes with a Content-Length, never holding more than a read's worth.
    ``seek``/``tell`` let urllib3 rewind it for a retry.
    """

    def __init__(self, path: str, boundary: str):
        self._head = f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode()
        self._tail = f"\r\n--{boundary}--\r\n".encode()
        self._fh = open(path, "rb")
        self._size = os.fstat(self._fh.fileno()).st_size
        self.len = len(self._head) + self._size + len(self._tail)
        self._pos = 0

    def __len__(self) -> int:
        return self.len

    def tell(self) -> int:
        return self._pos

    def seek(self, pos: int, whence: int = 0) -> int:
        self._pos = pos if whence == 0 else (self._pos + pos if whence == 1 else self.len + pos)
        return self._pos

    def read(self, n: int = -1) -> bytes:
        n = self.len - self._pos if n is None or n < 0 else min(n, self.len - self._pos)
        out = bytearray()
        while len(out) < n:
            p, want = self._pos, n - len(out)
            head, body_end = len(self._head), len(self._head) + self._size
            if p < head:
                piece = self._head[p:p + want]
            elif p < body_end:
                piece = os.pread(self._fh.fileno(), min(want, CHUNK), p - head)
                if not piece:
                    raise WsideidError("a file being sent shrank")
            else:
                piece = self._tail[p - body_end:p - body_end + want]
            out += piece
            self._pos += len(piece)
        return bytes(out)

    def close(self) -> None:
        self._fh.close()


def _send(c, url: str, path: str) -> str:
    """STOW-RS one instance (its file's bytes, streamed); returns its SOP Instance UID. A refusal is an error."""
    import uuid

    import pydicom
    from pydicom.errors import InvalidDicomError
    try:
        sop = str(pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["SOPInstanceUID"]).SOPInstanceUID)
    except (InvalidDicomError, OSError, ValueError, AttributeError) as exc:
        raise WsideidError(f"{os.path.basename(path)}: cannot be read to send ({type(exc).__name__})") from None
    boundary = uuid.uuid4().hex
    body = _StowBody(path, boundary)
    headers = {"Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}',
               "Accept": "application/dicom+json"}
    try:
        with c.wsideid_session.post(f"{c.base_url}/studies", data=body, headers=headers) as resp:
            resp.raise_for_status()
            answer = resp.json() if resp.content else {}
    except _request_errors() as exc:
        raise _explain(exc, url, "store (STOW-RS)") from None
    finally:
        body.close()
    if sop not in _stored(answer):
        raise DicomWebError(f"DICOMweb store (STOW-RS) failed: {server_name(url)} did not confirm it stored"
                            f" {os.path.basename(path)}")
    return sop


def _stored(answer) -> set[str]:
    """The SOP Instance UIDs a STOW-RS answer lists as stored (Referenced SOP Sequence), none
    listed as failed. Why: an answer of 200 with no body, ``[]`` or 300 MB of blanks was taken
    for success, recorded in pushed.csv, and the instance was never sent again."""
    if not isinstance(answer, dict) or (answer.get("00081198") or {}).get("Value"):
        return set()
    items = (answer.get("00081199") or {}).get("Value") or []
    return {str(v) for it in items if isinstance(it, dict)
            for v in ((it.get("00081155") or {}).get("Value") or [])}


def _sendable(outdir: str, names: list[str]) -> Iterator[tuple[str, list[str] | WsideidError]]:
    for name in names:
        try:
            yield name, verified_files(outdir, name)
        except WsideidError as exc:
            yield name, exc


def push(outdir: str, url: str, review: str, names: list[str] | None = None) -> PushResult:
    """Send the verified DICOM outputs ``names`` (default: all) of OUTDIR; skip what ``pushed.csv`` has."""
    if not os.path.isdir(outdir):
        raise WsideidError("OUTDIR does not exist")
    c = client(url)
    server = server_name(url)
    try:  # the server is asked first: a wrong URL is an error even when nothing is left to send
        c.search_for_studies(limit=1)
    except _request_errors() as exc:
        raise _explain(exc, url, "search (QIDO-RS)") from None
    done = _read_record(review)
    res = PushResult()
    for name, files in _sendable(outdir, names if names is not None else outputs_in(outdir)):
        if isinstance(files, WsideidError):
            res.refused.append(str(files))
            continue
        if not files:
            continue
        for path in files:
            digest = _sent_digest(path)
            if any(s == server and h == digest for s, _, h in done):
                res.already += 1
                continue
            sop = _send(c, url, path)
            _record(review, server, name, sop, digest)
            done.add((server, sop, digest))
            res.sent += 1
        res.outputs.append(name)
    return res
