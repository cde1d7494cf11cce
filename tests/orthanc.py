"""A real Orthanc server (Debian packages orthanc, orthanc-dicomweb, optionally orthanc-wsi) for tests.

Started on free ports with a temporary storage folder and a generated
configuration, waited for, and stopped (by its own process id) at the end.
Tests using it are skipped when the packages are absent
(``bash scripts/setup.sh --with-test-tools`` installs them).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

PLUGIN_DIRS = ("/usr/share/orthanc/plugins", "/usr/lib/orthanc", "/usr/local/share/orthanc/plugins")
START_WAIT_S = 60.0  # a start-up bound (the test fails, never hangs), not a speed assertion


def _binary() -> str | None:
    return shutil.which("Orthanc") or next((p for p in ("/usr/sbin/Orthanc",) if os.access(p, os.X_OK)), None)


def plugin(name: str) -> str | None:
    """Where Debian put ``lib<name>.so`` (the plugin folder, or the library folder's versioned file)."""
    for d in PLUGIN_DIRS:
        p = Path(d)
        if not p.is_dir():
            continue
        for f in sorted(p.glob(f"lib{name}.so*")):
            if f.is_file():
                return str(f)
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Orthanc:
    """One running server: its REST root and DICOMweb root."""

    url: str
    proc: subprocess.Popen
    wsi: bool

    @property
    def dicomweb(self) -> str:
        return self.url + "/dicom-web"

    def get(self, path: str):
        with urllib.request.urlopen(self.url + path, timeout=30) as r:
            data = r.read()
        return json.loads(data) if data[:1] in (b"{", b"[") else data

    def upload(self, path: str | Path) -> dict:
        req = urllib.request.Request(self.url + "/instances", data=Path(path).read_bytes(), method="POST",
                                     headers={"Content-Type": "application/dicom"})
        with urllib.request.urlopen(req, timeout=60) as r:
            return json.loads(r.read())

    def stop(self) -> None:
        """Killed, not asked to stop: its storage is the test's temporary folder, and a clean
        shutdown took 3 s a server (6 s of every DICOMweb test's teardown)."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def start(folder: Path) -> Orthanc:
    """Start Orthanc storing into ``folder``; skips the test when the packages are missing."""
    binary, dicomweb = _binary(), plugin("OrthancDicomWeb")
    if not binary or not dicomweb:
        pytest.skip("Orthanc with its DICOMweb plugin is not installed (apt-get install orthanc orthanc-dicomweb)")
    wsi = plugin("OrthancWSI")
    folder.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    config = {
        "Name": "wsideid-test", "StorageDirectory": str(folder / "db"), "IndexDirectory": str(folder / "db"),
        "HttpPort": port, "DicomPort": _free_port(), "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False, "HttpCompressionEnabled": False,
        "Plugins": [dicomweb] + ([wsi] if wsi else []),
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
    }
    cfg = folder / "orthanc.json"
    cfg.write_text(json.dumps(config))
    log = open(folder / "orthanc.log", "wb")
    proc = subprocess.Popen([binary, str(cfg)], stdout=log, stderr=subprocess.STDOUT, cwd=folder)
    log.close()
    server = Orthanc(f"http://127.0.0.1:{port}", proc, wsi is not None)
    deadline = time.monotonic() + START_WAIT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"Orthanc exited at start-up: {(folder / 'orthanc.log').read_text()[-2000:]}")
        try:
            server.get("/system")
            return server
        except (urllib.error.URLError, ConnectionError, OSError):
            time.sleep(0.2)
    server.stop()
    raise RuntimeError("Orthanc did not answer")
