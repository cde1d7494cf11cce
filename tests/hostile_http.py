"""A misbehaving HTTP server on the loopback, for the DICOMweb client's failure paths.

Real sockets, a real server (``http.server`` in a thread), no mock of wsideid's code: the
client under test talks HTTP to it as to a PACS that is broken. Each server answers every
request one way (``Mode``) and records what it was sent, so a test can also show that nothing
reached a server it must not reach (the target of a redirect). Everything it sends is bounded
in size and time, and it stops itself when the test is done.
"""

from __future__ import annotations

import enum
import http.server
import socket
import ssl
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path


class Mode(enum.Enum):
    """How the server answers every request."""

    STATUS_500 = "500"
    STATUS_409 = "409"
    REDIRECT = "redirect"  # 307 to ``Server.redirect_to`` (another host:port)
    HUGE = "huge"  # 200, a JSON body of ``HUGE_BYTES`` (spaces after '[')
    SILENT = "silent"  # reads the request, never answers
    DRIBBLE = "dribble"  # the status line, then one header byte every DRIBBLE_S, never the end
    EMPTY_OK = "empty-ok"  # 200 with no body to everything (a STOW-RS that proves nothing)
    RECORD = "record"  # 200 "[]" to everything, and keep what came
    SLOW_INSTANCE = "slow-instance"  # one instance on every QIDO-RS page, whose WADO-RS body comes a byte at a time


HUGE_BYTES = 300 << 20
DRIBBLE_S = 0.2
LIFETIME_S = 120.0  # the server stops answering after this, whatever the test does


@dataclass
class Server:
    mode: Mode
    post_only: bool = False  # GETs (searches) answered "[]": the mode is for STOW-RS alone
    port: int = 0
    redirect_to: str = ""
    requests: list[tuple[str, str, int]] = field(default_factory=list)  # (method, path, body bytes read)
    _httpd: http.server.ThreadingHTTPServer | None = None
    _stop: threading.Event = field(default_factory=threading.Event)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/dicom-web"

    def stop(self) -> None:
        self._stop.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()


def _handler(server: Server):
    started = time.monotonic()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a) -> None:  # quiet
            pass

        def _drain(self) -> int:
            n = int(self.headers.get("Content-Length") or 0)
            got = 0
            while got < n:
                chunk = self.rfile.read(min(1 << 20, n - got))
                if not chunk:
                    break
                got += len(chunk)
            return got

        def _answer(self) -> None:
            server.requests.append((self.command, self.path, self._drain()))
            mode = server.mode if self.command == "POST" or not server.post_only else Mode.RECORD
            if mode in (Mode.STATUS_500, Mode.STATUS_409):
                self._send(int(mode.value), b'{"error": "no"}')
            elif mode is Mode.REDIRECT:
                self.send_response(307)
                self.send_header("Location", server.redirect_to + self.path.partition("/dicom-web")[2])
                self.send_header("Content-Length", "0")
                self.end_headers()
            elif mode is Mode.HUGE:
                self.send_response(200)
                self.send_header("Content-Type", "application/dicom+json")
                self.send_header("Content-Length", str(HUGE_BYTES + 2))
                self.end_headers()
                piece = b"[" + b" " * ((1 << 20) - 1)
                sent = 0
                try:
                    while sent < HUGE_BYTES and not server._stop.is_set():
                        self.wfile.write(piece)
                        sent += len(piece)
                        piece = b" " * (1 << 20)
                    self.wfile.write(b"]\n")
                except OSError:
                    pass
            elif mode is Mode.SILENT:
                self._wait(None)
            elif mode is Mode.DRIBBLE:
                try:
                    self.wfile.write(b"HTTP/1.1 200 OK\r\n")
                    self.wfile.flush()
                    self._wait(lambda: (self.wfile.write(b"X"), self.wfile.flush()))
                except OSError:
                    pass
            elif mode is Mode.SLOW_INSTANCE and "/instances/" not in self.path:
                self._send(200, b'[{"0020000E": {"vr": "UI", "Value": ["1.2.3.1"]},'
                                b' "00080018": {"vr": "UI", "Value": ["1.2.3.1.1"]}}]')
            elif mode is Mode.SLOW_INSTANCE:
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/dicom")
                    self.send_header("Content-Length", str(1 << 30))
                    self.end_headers()
                    self._wait(lambda: (self.wfile.write(b"\0"), self.wfile.flush()))
                except OSError:
                    pass
            elif mode is Mode.EMPTY_OK:
                self._send(200, b"")
            else:
                self._send(200, b"[]")
            self.close_connection = True

        def _wait(self, tick) -> None:
            while not server._stop.is_set() and time.monotonic() - started < LIFETIME_S:
                time.sleep(DRIBBLE_S)
                if tick is not None:
                    tick()

        def _send(self, code: int, body: bytes) -> None:
            self.send_response(code)
            self.send_header("Content-Type", "application/dicom+json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_PUT = _answer

    return Handler


def start(mode: Mode, redirect_to: str = "", tls: tuple[str, str] | None = None, post_only: bool = False) -> Server:
    """A server on a free loopback port answering every request (``post_only``: every POST) as
    ``mode`` (``tls``: cert and key files)."""
    server = Server(mode, post_only=post_only, redirect_to=redirect_to)
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(server))
    httpd.daemon_threads = True
    if tls is not None:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(*tls)
        httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
    server.port = httpd.server_address[1]
    server._httpd = httpd
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()
    return server


def self_signed(folder: Path) -> tuple[str, str] | None:
    """A self-signed certificate for 127.0.0.1 made by the openssl command (None when it is missing)."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    try:
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                        "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert)], check=True,
                       capture_output=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    return str(cert), str(key)


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
