// chorus::attention on the CPU against LibTorch's scaled_dot_product_attention, in one binary.
//
// For each shape, both implementations run forward and forward+backward on the same inputs and
// thread count (torch::set_num_threads; default all cores). Counters: FLOP/s (DESIGN.md
// convention: forward 4*B*H*Nq*Nk*D, backward 2.5x forward, causal halves both; group masks are
// counted dense) and the fraction of the machine's fp32 GEMM rate, measured first in the same
// process with LibTorch's mm on 2048^2. A table of Chorus/LibTorch ratios closes the run.
//
//   ./build/benchmarks/attention_cpu [--benchmark_filter=N1024] [--benchmark_min_time=0.5s]
#include <ATen/Parallel.h>
#include <benchmark/benchmark.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "kernels/cpu/cpu_isa.h"
#include "kernels/torch/attention_op.h"

namespace {

struct Shape {
  std::string label;
  int64_t b, h, nq, nk, d;
  bool causal;
  bool groups;  // cross-agent: 3 agents' keys, queries see the other agents and themselves per a
                // mask
  double forward_flop() const {
    const double f = 4.0 * b * h * nq * nk * d;
    return causal ? f / 2 : f;
  }
};

std::vector<Shape> shapes() {
  std::vector<Shape> s;
  for (int64_t n : {128, 512, 1024, 2048}) {
    for (bool causal : {false, true}) {
      s.push_back({"B4H8N" + std::to_string(n) + "D64" + (causal ? "_causal" : ""), 4, 8, n, n, 64,
                   causal, false});
    }
  }
  for (int64_t nk : {128, 2048}) {
    s.push_back({"decode_B1H8Nq1Nk" + std::to_string(nk) + "D64", 1, 8, 1, nk, 64, false, false});
  }
  s.push_back({"cross_agent_B4H8Nq128Nk3x128D64", 4, 8, 128, 3 * 128, 64, false, true});
  return s;
}

double g_matmul_peak = 0;  // FLOP/s, measured before the benchmarks run

double measure_matmul_peak() {
  const int64_t n = 2048;
  torch::manual_seed(0);
  auto a = torch::randn({n, n}), b = torch::randn({n, n}), c = torch::empty({n, n});
  torch::mm_out(c, a, b);
  double best = 0;
  for (int rep = 0; rep < 5; ++rep) {
    const auto t0 = std::chrono::steady_clock::now();
    torch::mm_out(c, a, b);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    best = std::max(best, 2.0 * n * n * n / s);
  }
  return best;
}

struct Problem {
  torch::Tensor q, k, v, dout;
  chorus::AttentionOptions options;
  torch::Tensor sdpa_mask;  // bool [1, 1, Nq, Nk] where a mask is needed, else undefined
};

Problem make_problem(const Shape& s, bool grad) {
  torch::manual_seed(1);
  Problem p;
  p.q = torch::randn({s.b, s.h, s.nq, s.d}).requires_grad_(grad);
  p.k = torch::randn({s.b, s.h, s.nk, s.d}).requires_grad_(grad);
  p.v = torch::randn({s.b, s.h, s.nk, s.d}).requires_grad_(grad);
  p.dout = torch::randn({s.b, s.h, s.nq, s.d});
  p.options.causal = s.causal;
  if (s.groups) {
    // Queries of the anchor (group 0) interleave with helpers' positions; keys come in three
    // agent blocks. Agent g sees itself and the agent after it.
    p.options.group_visibility =
        torch::tensor({1, 1, 0, 0, 1, 1, 1, 0, 1}, torch::kBool).view({3, 3});
    p.options.query_groups = torch::arange(s.nq, torch::kInt64) % 3;
    p.options.key_groups = torch::div(torch::arange(s.nk, torch::kInt64), s.nk / 3, "floor");
    const auto pair =
        p.options.query_groups.view({s.nq, 1}) * 3 + p.options.key_groups.view({1, s.nk});
    p.sdpa_mask = p.options.group_visibility.flatten().index({pair}).view({1, 1, s.nq, s.nk});
  }
  return p;
}

torch::Tensor run_sdpa(const Shape& s, const Problem& p) {
  if (p.sdpa_mask.defined()) return at::scaled_dot_product_attention(p.q, p.k, p.v, p.sdpa_mask);
  return at::scaled_dot_product_attention(p.q, p.k, p.v, {}, 0.0, s.causal);
}

void run_benchmark(benchmark::State& state, const Shape& s, bool chorus_impl, bool backward) {
  const Problem p = make_problem(s, backward);
  auto step = [&] {
    torch::Tensor out = chorus_impl ? chorus::attention(p.q, p.k, p.v, p.options) : run_sdpa(s, p);
    if (backward) {
      auto grads = torch::autograd::grad({out}, {p.q, p.k, p.v}, {p.dout});
      benchmark::DoNotOptimize(grads[0].data_ptr());
    } else {
      benchmark::DoNotOptimize(out.data_ptr());
    }
  };
  step();  // warm-up: buffers, thread pool
  for (auto _ : state) step();
  const double flop = s.forward_flop() * (backward ? 3.5 : 1.0);
  state.counters["FLOP/s"] = benchmark::Counter(flop, benchmark::Counter::kIsIterationInvariantRate,
                                                benchmark::Counter::kIs1000);
  state.counters["threads"] = at::get_num_threads();
}

// Keeps each run's FLOP/s so the closing table can compare implementations shape by shape.
class RatioReporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    for (const auto& run : runs) {
      if (run.run_type != Run::RT_Iteration || run.error_occurred) continue;
      const auto it = run.counters.find("FLOP/s");
      if (it == run.counters.end()) continue;
      rates_[run.run_name.function_name] = it->second.value;
    }
    ConsoleReporter::ReportRuns(runs);
  }
  double rate(const std::string& name) const {
    const auto it = rates_.find(name);
    return it == rates_.end() ? 0.0 : it->second;
  }

 private:
  std::map<std::string, double> rates_;
};

std::string name_of(const Shape& s, bool chorus_impl, bool backward) {
  return std::string("attention/") + (chorus_impl ? "chorus" : "libtorch_sdpa") + "/" +
         (backward ? "fwd_bwd" : "fwd") + "/" + s.label;
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  g_matmul_peak = measure_matmul_peak();
  std::printf("fp32 matmul peak (LibTorch mm 2048^2, %d threads): %.1f GFLOP/s; CPU ISA %s\n",
              at::get_num_threads(), g_matmul_peak / 1e9,
              chorus::kernels::cpu_isa_name(chorus::kernels::active_cpu_isa()));
  const auto all = shapes();
  for (const auto& s : all) {
    for (bool backward : {false, true}) {
      for (bool chorus_impl : {true, false}) {
        benchmark::RegisterBenchmark(name_of(s, chorus_impl, backward).c_str(),
                                     [s, chorus_impl, backward](benchmark::State& st) {
                                       run_benchmark(st, s, chorus_impl, backward);
                                     })
            ->Unit(benchmark::kMillisecond)
            ->UseRealTime();
      }
    }
  }
  RatioReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  std::printf("\n%-36s %10s %10s %12s %12s %10s\n", "shape", "fwd ratio", "fwd+bwd", "fwd GFLOP/s",
              "fwd/peak", "sdpa/peak");
  for (const auto& s : all) {
    const double cf = reporter.rate(name_of(s, true, false)),
                 tf = reporter.rate(name_of(s, false, false));
    const double cb = reporter.rate(name_of(s, true, true)),
                 tb = reporter.rate(name_of(s, false, true));
    if (cf == 0 && cb == 0) continue;
    std::printf("%-36s %9.2fx %9.2fx %12.1f %11.1f%% %9.1f%%\n", s.label.c_str(),
                tf > 0 ? cf / tf : 0.0, tb > 0 ? cb / tb : 0.0, cf / 1e9, 100 * cf / g_matmul_peak,
                100 * tf / g_matmul_peak);
  }
  std::printf("ratio = Chorus FLOP/s / LibTorch SDPA FLOP/s (same shapes, threads and inputs)\n");
  benchmark::Shutdown();
  return 0;
}
