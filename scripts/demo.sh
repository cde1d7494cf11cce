#!/usr/bin/env bash
# Main job: set up if needed, then de-identify generated sample slides.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$here/scripts/setup.sh"
exec "$here/.venv/bin/wsideid" demo "$@"
