#!/usr/bin/env bash
# Whole test suite: set up if needed, then pytest (extra args pass through).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$here/scripts/setup.sh" --with-test-tools
cd "$here"
# The sources formats/dicom.toml is generated from (PS3.15 Table E.1-1 and the
# WSI IOD), so the suite can prove the committed profile is what they give.
wheels=.venv/std-wheels
if [ ! -d "$wheels" ] || ! ls "$wheels"/idiscore-*.whl >/dev/null 2>&1; then
  mkdir -p "$wheels"
  .venv/bin/pip download -q --disable-pip-version-check --no-deps -d "$wheels" \
    idiscore==1.2.0 dicom-standard==0.1.0 >/dev/null 2>&1 || echo "wsideid test: profile source wheels not available; that check is skipped" >&2
fi
export WSIDEID_STD_WHEELS="$here/$wheels"
# One worker per core (pytest-xdist): the suite is ~4,500 tests (4,467 collected 2026-12-03), several of which drive real
# servers, browsers and converters; pass -n 0 to run it in one process.
exec .venv/bin/python -m pytest -q -n auto "$@"
