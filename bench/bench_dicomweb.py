"""Peak memory of `deid --from-dicomweb`'s retrieval: one big instance from a real Orthanc.

Prints the instance size and the peak RSS of the retrieving process and of
a process sending it on by STOW-RS (both stream, so the peaks must not
follow the size). Needs the Debian packages orthanc and orthanc-dicomweb, and the real
sample highdicom_sm_image.dcm (its frames are repeated to make the big
instance). Usage: python bench/bench_dicomweb.py [MiB]
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(HERE), str(HERE / "tests")]

PUSH = """
import sys
from wsideid.dicomweb import _send, client
_send(client(sys.argv[1]), sys.argv[1], sys.argv[2])
print(next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM")) // 1024)
"""
CHILD = """
import sys
from wsideid.dicomweb import fetch_study
paths = fetch_study(sys.argv[1], sys.argv[2], sys.argv[3])
# VmHWM, not ru_maxrss: the latter keeps the forking parent's size across exec
print(next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM")) // 1024)
"""


def big_instance(path: Path, mib: int) -> str:
    import pydicom
    from realdata import TESTDATA
    ds = pydicom.dcmread(TESTDATA / "dicom" / "highdicom_sm_image.dcm")
    frame = bytes(ds.PixelData)[: len(ds.PixelData) // int(ds.NumberOfFrames)]
    n = max(1, (mib << 20) // len(frame))
    ds.NumberOfFrames = n
    ds.PixelData = frame * n
    ds.save_as(path)
    return str(ds.StudyInstanceUID)


def main() -> None:
    import orthanc
    mib = int(sys.argv[1]) if len(sys.argv) > 1 else 400
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        study = big_instance(t / "big.dcm", mib)
        size = (t / "big.dcm").stat().st_size
        server = orthanc.start(t / "orthanc")
        try:
            req = urllib.request.Request(server.url + "/instances", data=(t / "big.dcm").read_bytes(), method="POST")
            urllib.request.urlopen(req, timeout=600).read()
            (t / "big.dcm").unlink()
            (t / "fetched").mkdir()
            out = subprocess.run([sys.executable, "-c", CHILD, server.dicomweb, study, str(t / "fetched")],
                                 capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(HERE)})
            if out.returncode:
                sys.exit(out.stderr.strip().splitlines()[-1])
            got = sum(p.stat().st_size for p in (t / "fetched").iterdir())
            print(f"instance {size / 2**20:.0f} MiB, fetched {got / 2**20:.0f} MiB,"
                  f" peak RSS of the fetching process {int(out.stdout.split()[-1])} MiB")
            target = orthanc.start(t / "orthanc-2")
            try:
                (fetched,) = (t / "fetched").iterdir()
                out = subprocess.run([sys.executable, "-c", PUSH, target.dicomweb, str(fetched)],
                                     capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(HERE)})
                if out.returncode:
                    sys.exit(out.stderr.strip().splitlines()[-1])
                print(f"STOW-RS of the same instance: peak RSS of the sending process {int(out.stdout.split()[-1])} MiB,"
                      f" {len(target.get('/instances'))} instance stored")
            finally:
                target.stop()
        finally:
            server.stop()


if __name__ == "__main__":
    main()
