"""An HTTP session for servers the tool does not control (a PACS, over DICOMweb).

requests' ``timeout`` bounds each socket read, not an exchange, and it follows redirects and
reads whole bodies. Against a broken or hostile server (hostile inputs, round 3) that meant: a
server that sent a status line and then one header byte every 0.2 s held ``push`` for ever; a
300 MB answer to a search was read whole into memory (658 MB of RSS); a 307 to another host
re-sent the request there. This session:

- gives every exchange a deadline: ``seconds`` for the answer to begin and end, plus the time
  the bytes it moves need at ``MIN_RATE`` (so a slide of gigabytes may stream as long as it
  keeps moving). A watchdog thread shuts the exchange's sockets down when it passes, which ends
  a blocked read or write; the exchange then fails as a timeout (``Expired``), its retries
  included (the deadline spans them);
- follows no redirect: a 3xx is an error (``Redirected``), its Location is not trusted;
- reads an answer that is not streamed to at most ``MAX_ANSWER_BYTES`` (``TooLarge``).

Streamed answers are read by the caller inside ``exchange()``, calling ``progress`` per chunk.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from typing import Any, Iterator

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

MAX_ANSWER_BYTES = 64 << 20  # a QIDO-RS listing or a STOW-RS answer; retrieved instances are streamed
MIN_RATE = 64 << 10  # bytes a second an exchange must move on average once its first deadline is spent
TICK_S = 0.1


class Expired(requests.Timeout):
    """The exchange did not finish by its deadline (its sockets were shut down)."""


class Redirected(requests.HTTPError):
    """The server answered with a redirect, which is not followed."""


class TooLarge(requests.RequestException):
    """The server's answer is larger than MAX_ANSWER_BYTES."""


class Exchange:
    """One request and its answer: the time by which it must be done and the connections it uses."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.expires = time.monotonic() + seconds
        self.expired = False
        self.conns: list[HTTPConnection] = []
        self._lock = threading.Lock()

    def raise_if_expired(self) -> None:
        """After a read: a deadline that passed meanwhile cut the answer short (a header line cut
        by the shutdown parsed as a bodiless 200), so what was read is not the answer."""
        if self.expired:
            raise Expired(f"no answer within the deadline ({self.seconds:.0f}s)")

    def progress(self, nbytes: int) -> None:
        """``nbytes`` moved: the deadline moves by the time they need at MIN_RATE."""
        with self._lock:
            self.expires += nbytes / MIN_RATE

    def attach(self, conn: HTTPConnection) -> None:
        with self._lock:
            self.conns.append(conn)
            dead = self.expired
        if dead:
            _shut(conn)

    def check(self, now: float) -> None:
        """Past the deadline: shut every connection down, on every tick (a retry's new
        connection had no socket yet when it was attached)."""
        with self._lock:
            if now < self.expires:
                return
            self.expired = True
            conns = list(self.conns)
        for c in conns:
            _shut(c)


def _shut(conn: HTTPConnection) -> None:
    sock = getattr(conn, "sock", None)
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


class _Watchdog:
    """One daemon thread for the process, checking the live exchanges every TICK_S."""

    def __init__(self) -> None:
        self._live: set[Exchange] = set()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def add(self, ex: Exchange) -> None:
        with self._lock:
            self._live.add(ex)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="wsideid-http-deadline", daemon=True)
                self._thread.start()

    def remove(self, ex: Exchange) -> None:
        with self._lock:
            self._live.discard(ex)

    def _run(self) -> None:
        while True:
            time.sleep(TICK_S)
            with self._lock:
                live = list(self._live)
            now = time.monotonic()
            for ex in live:
                ex.check(now)


_WATCHDOG = _Watchdog()
_CURRENT = threading.local()


def current() -> Exchange | None:
    return getattr(_CURRENT, "exchange", None)


@contextlib.contextmanager
def exchange(seconds: float) -> Iterator[Exchange]:
    """The deadline for the requests this thread makes inside the block (an outer one is kept)."""
    outer = current()
    if outer is not None:
        yield outer
        return
    ex = Exchange(seconds)
    _CURRENT.exchange = ex
    _WATCHDOG.add(ex)
    try:
        yield ex
    finally:
        _WATCHDOG.remove(ex)
        _CURRENT.exchange = None


class _Watched:
    """Registers a connection with the thread's exchange before each request it sends."""

    def request(self, *args: Any, **kwargs: Any) -> Any:
        ex = current()
        if ex is not None:
            ex.attach(self)  # type: ignore[arg-type]
        return super().request(*args, **kwargs)  # type: ignore[misc]


class _Conn(_Watched, HTTPConnection):
    pass


class _SConn(_Watched, HTTPSConnection):
    pass


class _Pool(HTTPConnectionPool):
    ConnectionCls = _Conn


class _SPool(HTTPSConnectionPool):
    ConnectionCls = _SConn


class _Adapter(HTTPAdapter):
    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _Pool, "https": _SPool}


class Session(requests.Session):
    """requests' session with the three rules above; ``seconds`` is each exchange's first deadline."""

    def __init__(self, seconds: float, retry: Any = None):
        super().__init__()
        self.seconds = seconds
        for scheme in ("http://", "https://"):
            self.mount(scheme, _Adapter(max_retries=retry) if retry is not None else _Adapter())

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", self.seconds)
        kwargs["allow_redirects"] = False
        stream = bool(kwargs.pop("stream", False))
        with exchange(self.seconds) as ex:
            body = kwargs.get("data")
            if body is not None and hasattr(body, "__len__"):
                ex.progress(len(body))
            try:
                resp = super().request(method, url, *args, stream=True, **kwargs)
                if resp.is_redirect or 300 <= resp.status_code < 400:
                    resp.close()
                    raise Redirected(f"redirect {resp.status_code} not followed", response=resp)
                if not stream:
                    _read_bounded(resp, ex)
                ex.raise_if_expired()
            except requests.RequestException:
                if ex.expired:
                    raise Expired(f"no answer within the deadline ({self.seconds:.0f}s)") from None
                raise
            return resp


def _read_bounded(resp: requests.Response, ex: Exchange) -> None:
    """The whole answer into ``resp.content``, at most MAX_ANSWER_BYTES."""
    declared = resp.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > MAX_ANSWER_BYTES:
        resp.close()
        raise TooLarge(f"answer of {int(declared) >> 20} MB")
    body = bytearray()
    for chunk in resp.iter_content(1 << 16):
        body += chunk
        ex.progress(len(chunk))
        if len(body) > MAX_ANSWER_BYTES:
            resp.close()
            raise TooLarge(f"answer over {MAX_ANSWER_BYTES >> 20} MB")
    resp._content = bytes(body)  # what requests itself sets when it reads a body whole
    resp._content_consumed = True
