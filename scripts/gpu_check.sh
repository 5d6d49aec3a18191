#!/usr/bin/env bash
# One command for a GPU machine: build the CUDA attention kernels, their LibTorch op, the CUDA
# tests and the CUDA benchmark against the machine's own torch (CHORUS_KERNELS_ONLY: LibTorch from
# pip, nvcc and CMake suffice; nothing is fetched), then run the tests, compute-sanitizer
# (memcheck, racecheck) on small shapes and a short benchmark, and write a markdown summary.
#
#   scripts/gpu_check.sh [SUMMARY.md]     (default: $OUT/gpu_check.md, else ./gpu_check.md)
#
# Environment: PYTHON (an interpreter with torch; default python3), BUILD_DIR (default
# build-gpu-check), CUDA_ARCHS (default: the visible GPU's, e.g. 90; 80;90 without one),
# BENCH_MIN_TIME (seconds per measurement, default 0.05), JOBS (default: all cores),
# BUILD_TIMEOUT (seconds, default 330; a 2-core machine needs about 900).
# Every step has a time limit so that the whole run stays within about 8 minutes. Without a GPU
# the build still runs, the tests report themselves skipped and the GPU-only steps are skipped.
set -u
cd "$(dirname "$0")/.."
ROOT=$(pwd)

SUMMARY=${1:-${OUT:+$OUT/gpu_check.md}}
SUMMARY=${SUMMARY:-$ROOT/gpu_check.md}
mkdir -p "$(dirname "$SUMMARY")"
PYTHON=${PYTHON:-python3}
BUILD_DIR=${BUILD_DIR:-build-gpu-check}
JOBS=${JOBS:-$(nproc)}
BENCH_MIN_TIME=${BENCH_MIN_TIME:-0.05}
BUILD_TIMEOUT=${BUILD_TIMEOUT:-330}
LOGS=$BUILD_DIR/gpu_check_logs
mkdir -p "$LOGS"
START=$(date +%s)

log() { echo "[gpu_check $(($(date +%s) - START))s] $*"; }
section() { printf '\n## %s\n\n' "$1" >>"$SUMMARY"; }
# Appends the last lines of a log as a code block.
tail_block() { printf '```\n' >>"$SUMMARY"; tail -n "${2:-25}" "$1" >>"$SUMMARY"; printf '```\n' >>"$SUMMARY"; }

# --- Tools.
NVCC=$(command -v nvcc || true)
[ -z "$NVCC" ] && [ -x /usr/local/cuda/bin/nvcc ] && NVCC=/usr/local/cuda/bin/nvcc
CMAKE=$(command -v cmake || true)
GENERATOR="Unix Makefiles"
command -v ninja >/dev/null 2>&1 && GENERATOR=Ninja
TORCH_PREFIX=$("$PYTHON" -c 'import torch.utils; print(torch.utils.cmake_prefix_path)' 2>/dev/null || true)
TORCH_VERSION=$("$PYTHON" -c 'import torch; print(torch.__version__)' 2>/dev/null || echo "not found")
GPU_NAME=$(nvidia-smi --query-gpu=name,driver_version,compute_cap --format=csv,noheader 2>/dev/null | head -n1)
if [ -z "${CUDA_ARCHS:-}" ]; then
  CAP=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -n1 | tr -d ' .')
  CUDA_ARCHS=${CAP:-80;90}
fi

{
  echo "# Chorus GPU check"
  echo
  echo "| | |"
  echo "|---|---|"
  echo "| date | $(date -u '+%Y-%m-%d %H:%M UTC') |"
  echo "| commit | $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo ' (modified)') |"
  echo "| GPU | ${GPU_NAME:-none visible} |"
  echo "| torch | $TORCH_VERSION |"
  echo "| nvcc | $( [ -n "$NVCC" ] && "$NVCC" --version | tail -n1 || echo 'not found') |"
  echo "| cmake | $( [ -n "$CMAKE" ] && "$CMAKE" --version | head -n1 || echo 'not found') |"
  echo "| architectures | $CUDA_ARCHS |"
} >"$SUMMARY"

if [ -z "$NVCC" ] || [ -z "$CMAKE" ] || [ -z "$TORCH_PREFIX" ]; then
  section "Result"
  echo "Missing a tool: nvcc='$NVCC' cmake='$CMAKE' torch prefix='$TORCH_PREFIX' (PYTHON=$PYTHON)." >>"$SUMMARY"
  log "missing nvcc, cmake or torch; summary in $SUMMARY"
  exit 1
fi

# --- Configure and build (kernels only).
section "Build"
log "configuring $BUILD_DIR (architectures $CUDA_ARCHS, $GENERATOR)"
if ! timeout 180 "$CMAKE" -S . -B "$BUILD_DIR" -G "$GENERATOR" -DCMAKE_BUILD_TYPE=Release \
    -DCHORUS_KERNELS_ONLY=ON -DCHORUS_CUDA=ON -DCHORUS_USE_PCH=OFF \
    "-DCHORUS_CUDA_ARCHITECTURES=$CUDA_ARCHS" "-DCMAKE_CUDA_COMPILER=$NVCC" \
    "-DCMAKE_PREFIX_PATH=$TORCH_PREFIX" >"$LOGS/configure.log" 2>&1; then
  echo "Configure failed:" >>"$SUMMARY"
  tail_block "$LOGS/configure.log" 40
  log "configure failed; summary in $SUMMARY"
  exit 1
fi
BUILD_START=$(date +%s)
log "building attention_cuda_tests and attention_cuda with $JOBS jobs"
if ! timeout "$BUILD_TIMEOUT" "$CMAKE" --build "$BUILD_DIR" -j "$JOBS" --target attention_cuda_tests attention_cuda \
    >"$LOGS/build.log" 2>&1; then
  echo "Build failed:" >>"$SUMMARY"
  grep -E "error|Error" "$LOGS/build.log" | head -n 30 >"$LOGS/build_errors.log" || true
  tail_block "$LOGS/build_errors.log" 30
  tail_block "$LOGS/build.log" 20
  log "build failed; summary in $SUMMARY"
  exit 1
fi
echo "Built in $(($(date +%s) - BUILD_START)) s." >>"$SUMMARY"
TESTS=$BUILD_DIR/tests/kernels/attention_cuda_tests
BENCH=$BUILD_DIR/benchmarks/attention_cuda
STATUS=0

# --- Tests.
section "Tests"
log "running the CUDA tests"
timeout 240 "$TESTS" >"$LOGS/tests.log" 2>&1
TEST_RC=$?
echo "| test | result |" >>"$SUMMARY"
echo "|---|---|" >>"$SUMMARY"
grep -E '^\[ +(OK|SKIPPED|FAILED) +\]' "$LOGS/tests.log" |
  sed -E 's/^\[ +([A-Z]+) +\] ([^ :]+).*/| \2 | \1 |/' >>"$SUMMARY"
echo >>"$SUMMARY"
tail -n1 "$LOGS/tests.log" >>"$SUMMARY"
case $TEST_RC in
  0) ;;
  77) echo "(every GPU test skipped: no GPU visible)" >>"$SUMMARY" ;;
  124) echo "**The tests ran past their 240 s limit.**" >>"$SUMMARY"; STATUS=1 ;;
  *) echo "**Failures:**" >>"$SUMMARY"; grep -B2 -A12 "failed:" "$LOGS/tests.log" | head -n 80 >"$LOGS/failures.log"
     tail_block "$LOGS/failures.log" 80; STATUS=1 ;;
esac

HAVE_GPU=0
[ -n "$GPU_NAME" ] && [ "$TEST_RC" != 77 ] && HAVE_GPU=1

# --- compute-sanitizer on small shapes (every allocation its own, so memcheck sees the bounds).
section "compute-sanitizer"
SANITIZER=$(command -v compute-sanitizer || true)
[ -z "$SANITIZER" ] && [ -x /usr/local/cuda/bin/compute-sanitizer ] && SANITIZER=/usr/local/cuda/bin/compute-sanitizer
if [ "$HAVE_GPU" = 1 ] && [ -n "$SANITIZER" ]; then
  for tool in memcheck racecheck; do
    log "compute-sanitizer --tool $tool"
    PYTORCH_NO_CUDA_MEMORY_CACHING=1 timeout 150 "$SANITIZER" --tool "$tool" --error-exitcode 3 \
      "$TESTS" --filter=Sanitize. >"$LOGS/sanitizer_$tool.log" 2>&1
    rc=$?
    case $rc in
      0) echo "- $tool: clean ($(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' "$LOGS/sanitizer_$tool.log" | tail -n1))" >>"$SUMMARY" ;;
      124) echo "- $tool: ran past its 150 s limit" >>"$SUMMARY"; STATUS=1 ;;
      *) echo "- $tool: **exit $rc**" >>"$SUMMARY"; tail_block "$LOGS/sanitizer_$tool.log" 40; STATUS=1 ;;
    esac
  done
else
  echo "Skipped (GPU visible: $HAVE_GPU, compute-sanitizer: ${SANITIZER:-not found})." >>"$SUMMARY"
fi

# --- Benchmark.
section "Benchmark"
if [ "$HAVE_GPU" = 1 ]; then
  log "benchmark (--quick, min_time $BENCH_MIN_TIME s)"
  timeout 200 "$BENCH" --quick "--min_time=$BENCH_MIN_TIME" "--markdown=$LOGS/bench.md" \
    >"$LOGS/bench.log" 2>&1
  rc=$?
  if [ -s "$LOGS/bench.md" ]; then cat "$LOGS/bench.md" >>"$SUMMARY"; fi
  [ $rc != 0 ] && { echo "Benchmark exit $rc:" >>"$SUMMARY"; tail_block "$LOGS/bench.log" 20; }
  printf '\nFull output:\n' >>"$SUMMARY"
  tail_block "$LOGS/bench.log" 200
else
  "$BENCH" >"$LOGS/bench.log" 2>&1
  echo "Skipped: $(tail -n1 "$LOGS/bench.log")" >>"$SUMMARY"
fi

section "Result"
echo "$( [ $STATUS = 0 ] && echo PASS || echo FAIL ) in $(($(date +%s) - START)) s; logs in $LOGS." >>"$SUMMARY"
log "done ($( [ $STATUS = 0 ] && echo PASS || echo FAIL )); summary in $SUMMARY"
exit $STATUS
