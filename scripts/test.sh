#!/usr/bin/env bash
# Whole test suite: set up if needed, then pytest (extra args pass through).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$here/scripts/setup.sh" --with-test-tools
cd "$here"
exec .venv/bin/python -m pytest -q "$@"
