#!/usr/bin/env bash
# Sets everything up (scripts/setup.sh), then runs the whole test suite through ctest.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$ROOT/scripts/setup.sh"
BUILD_DIR=${CHORUS_BUILD_DIR:-$ROOT/build}
VENV=${CHORUS_VENV:-$HOME/.cache/chorus/venv-torch-2.11.0}
cd "$BUILD_DIR"
exec "$VENV/bin/ctest" --output-on-failure --parallel "${CHORUS_JOBS:-$(nproc)}" "$@"
