#!/usr/bin/env bash
# One-shot, idempotent set-up for a fresh Debian/Ubuntu machine: system
# packages the detectors and validators need, then a project venv in .venv.
# Sourced by scripts/demo.sh and scripts/test.sh, so users never run it by hand.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"

# Python itself and its venv module: a fresh Debian has neither (python3 -m venv fails without
# python3-venv: "ensurepip is not available").
apt_packages=(python3 python3-venv)
apt_packages+=(tesseract-ocr tesseract-ocr-eng libzbar0 dicom3tools libjpeg-turbo-progs libturbojpeg0 fonts-dejavu-core)
# English word lists (SCOWL 70, American and British; OpenMedSpel medical words) for the name test of detect/name_lexicon.py.
apt_packages+=(wamerican-large wbritish-large hunspell-en-med)
# SCOWL 50 (common words) for the ordinary-pair rule of detect/name_lexicon.py.
apt_packages+=(wamerican)
test_packages=()
if [ "${1:-}" = "--with-test-tools" ]; then
  # The test suite also drives the QC page in a real headless browser, and uses a real DICOMweb
  # server (the tests start their own on free ports) with its WSI plugin, an independent check
  # that pushed series are pyramids (issue 15). Tests that need one skip without it, so a
  # failed install of these warns instead of stopping the set-up.
  test_packages=(chromium orthanc orthanc-dicomweb orthanc-wsi)
fi
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
if command -v dpkg-query >/dev/null 2>&1; then
  missing=()
  for p in "${apt_packages[@]}"; do installed "$p" || missing+=("$p"); done
  missing_tests=()
  for p in "${test_packages[@]}"; do installed "$p" || missing_tests+=("$p"); done
  if [ ${#missing[@]} -gt 0 ] || [ ${#missing_tests[@]} -gt 0 ]; then
    sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    # first: on a fresh machine apt knows no package yet. Not fatal: a mirror hiccup must not stop
    # a machine that lacks only an optional test tool; a missing required package fails below.
    $sudo apt-get update -qq >&2 || echo "wsideid setup: warning: apt-get update failed" >&2
    if [ ${#missing[@]} -gt 0 ]; then
      echo "wsideid setup: installing system packages: ${missing[*]}" >&2
      DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >&2
    fi
    available=()
    for p in "${missing_tests[@]}"; do apt-cache show "$p" >/dev/null 2>&1 && available+=("$p"); done
    if [ ${#available[@]} -gt 0 ]; then
      echo "wsideid setup: installing test tools: ${available[*]}" >&2
      DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${available[@]}" >&2 \
        || echo "wsideid setup: warning: could not install ${available[*]}; the tests that need them skip" >&2
    fi
  fi
fi

python="${PYTHON:-python3}"
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "wsideid setup: needs Python 3.11 or newer; $python is $("$python" -V 2>&1 || echo missing)." \
       "Install one and run again with PYTHON=/path/to/python3.11 (or newer)" >&2
  exit 1
fi
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
