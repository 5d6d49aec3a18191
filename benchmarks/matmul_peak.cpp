// The machine's measured fp32 matrix-multiply peak: the denominator of every kernel's efficiency.
//
// Kernel benchmarks report achieved FLOP/s "against the machine's measured
// matrix-multiply peak" (DESIGN.md); this binary measures that peak with
// LibTorch's CPU GEMM (MKL/oneDNN in the wheel) at the thread counts the
// kernels run with, and a register-resident FMA loop as the core's ceiling.
//
//   ./build/benchmarks/matmul_peak --benchmark_counters_tabular=true
#include <benchmark/benchmark.h>
#include <torch/torch.h>

#include "kernels/cpu/cpu_isa.h"

namespace {

// GEMM C[n,n] = A[n,n] B[n,n]: 2 n^3 FLOP.
void BM_TorchMatmulFp32(benchmark::State& state) {
  const int64_t n = state.range(0);
  const int threads = static_cast<int>(state.range(1));
  const int saved = at::get_num_threads();
  at::set_num_threads(threads);
  torch::manual_seed(0);
  auto a = torch::randn({n, n});
  auto b = torch::randn({n, n});
  auto c = torch::empty({n, n});
  torch::mm_out(c, a, b);  // warm-up: page in, let the library pick its kernel
  for (auto _ : state) {
    torch::mm_out(c, a, b);
    benchmark::DoNotOptimize(c.data_ptr<float>());
    benchmark::ClobberMemory();
  }
  at::set_num_threads(saved);
  const double flop = 2.0 * static_cast<double>(n) * n * n;
  state.counters["FLOP/s"] = benchmark::Counter(flop, benchmark::Counter::kIsIterationInvariantRate,
                                                benchmark::Counter::kIs1000);
  state.counters["threads"] = threads;
}

constexpr int kLanes = 16 * 16;
constexpr int kRepeat = 4096;

// Independent FMA chains the compiler vectorises, cloned per ISA and picked at
// load time: 16 accumulators of 16 lanes hide the FMA latency.
__attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
void fma_chains(float* acc, float a, float b) {
  for (int r = 0; r < kRepeat; ++r) {
#pragma GCC unroll 16
    for (int i = 0; i < kLanes; ++i) acc[i] = __builtin_fmaf(acc[i], a, b);
  }
}

// An upper bound for one core that no GEMM reaches.
void BM_FmaLoopFp32OneCore(benchmark::State& state) {
  alignas(64) float acc[kLanes];
  for (int i = 0; i < kLanes; ++i) acc[i] = 0.001f * static_cast<float>(i);
  for (auto _ : state) {
    fma_chains(acc, 0.999999f, 1e-7f);
    benchmark::DoNotOptimize(acc);
  }
  state.counters["FLOP/s"] = benchmark::Counter(2.0 * kLanes * kRepeat, benchmark::Counter::kIsIterationInvariantRate,
                                                benchmark::Counter::kIs1000);
  state.SetLabel(chorus::kernels::cpu_isa_name(chorus::kernels::detect_cpu_isa()));
}

void matmul_args(benchmark::internal::Benchmark* bench) {
  const int max_threads = at::get_num_threads();
  for (int64_t n : {256, 512, 1024, 2048}) {
    bench->Args({n, 1});
    if (max_threads > 1) bench->Args({n, max_threads});
  }
  bench->ArgNames({"n", "threads"})->Unit(benchmark::kMillisecond)->UseRealTime();
}

BENCHMARK(BM_TorchMatmulFp32)->Apply(matmul_args);
BENCHMARK(BM_FmaLoopFp32OneCore);

}  // namespace

BENCHMARK_MAIN();
