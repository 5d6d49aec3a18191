#!/usr/bin/env bash
# Sets everything up (scripts/setup.sh), then runs Chorus's main job on its embedded default:
# `chorus train experiments/quickstart.yaml` (key-value arithmetic composed from two agents that
# Chorus trains from scratch; about 12 minutes on two idle cores, agents cached for later runs).
# Extra arguments go to `chorus train` (e.g. `seed=1`, `--out runs/mine`).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$ROOT/scripts/setup.sh"
cd "$ROOT"
exec "${CHORUS_BUILD_DIR:-$ROOT/build}/chorus" train experiments/quickstart.yaml "$@"
