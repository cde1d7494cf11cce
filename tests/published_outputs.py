"""What a run left in OUTDIR that a lab would hand over: slide files at its top, anything in a
sub-folder (a DICOM or MIRAX output), and the sub-folders themselves (an empty one is a
half-written output too). Shared by the PHI-corpus and planted-PHI tests."""

from __future__ import annotations

import os
from pathlib import Path

SLIDE_SUFFIXES = (".svs", ".ndpi", ".tif", ".tiff", ".dcm", ".scn", ".bif", ".qptiff", ".mrxs")


def published(outdir: Path) -> list[str]:
    out = []
    for dirpath, dirs, files in os.walk(outdir):
        for f in files:
            if f.lower().endswith(SLIDE_SUFFIXES) or Path(dirpath) != Path(outdir):
                out.append(os.path.relpath(os.path.join(dirpath, f), outdir))
        out += [d for d in dirs if Path(dirpath) == Path(outdir)]
    return out
