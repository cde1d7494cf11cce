#!/usr/bin/env bash
# One-shot, idempotent set-up for a fresh Debian/Ubuntu machine: system
# packages the detectors and validators need, then a project venv in .venv.
# Sourced by scripts/demo.sh and scripts/test.sh, so users never run it by hand.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"

apt_packages=(tesseract-ocr tesseract-ocr-eng libzbar0 dicom3tools libjpeg-turbo-progs libturbojpeg0 fonts-dejavu-core)
# English word lists (SCOWL 70, American and British; OpenMedSpel medical words) for the name test of detect/name_lexicon.py.
apt_packages+=(wamerican-large wbritish-large hunspell-en-med)
# SCOWL 50 (common words) for the ordinary-pair rule of detect/name_lexicon.py.
apt_packages+=(wamerican)
# The test suite also drives the QC page in a real headless browser.
if [ "${1:-}" = "--with-test-tools" ]; then
  apt_packages+=(chromium)
  # A real DICOMweb server for the DICOMweb tests (the tests start their own on free ports),
  # and its WSI plugin, an independent check that pushed series are pyramids (issue 15).
  apt_packages+=(orthanc orthanc-dicomweb)
  if apt-cache show orthanc-wsi >/dev/null 2>&1; then apt_packages+=(orthanc-wsi); fi
fi
missing=()
if command -v dpkg-query >/dev/null 2>&1; then
  for p in "${apt_packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
fi
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  echo "wsideid setup: installing system packages: ${missing[*]}" >&2
  $sudo apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >&2
fi

python="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  echo "wsideid setup: creating .venv" >&2
  "$python" -m venv .venv
fi
stamp=.venv/.wsideid-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "wsideid setup: installing the package and its dependencies" >&2
  .venv/bin/pip install -q --disable-pip-version-check -e ".[test]" >&2
  touch "$stamp"
fi
# The package is installed editable, so pip compiled none of its modules: where
# PYTHONDONTWRITEBYTECODE is set (CI images, containers) every run compiled each module it
# imports, in memory, again (0.1 GB slide, --detect off: 0.90 -> 0.72 CPU s a run once
# compiled). A source changed later is recompiled by Python as usual.
.venv/bin/python -m compileall -q wsideid >/dev/null
