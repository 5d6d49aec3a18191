// The CUDA attention ladder against cuBLAS and LibTorch's scaled_dot_product_attention, forced to
// each of its backends (flash, memory-efficient, cuDNN, math), in one run on one GPU.
//
// Every implementation runs the same bf16 inputs. Times are CUDA-event medians of repetitions,
// each preceded by a write of a buffer twice the size of L2 so that no run finds the previous
// one's data in cache. Counters: TFLOP/s with the DESIGN.md convention (forward 4*B*H*Nq*Nk*D,
// backward 2.5x forward, causal halves both; group masks count dense), the fraction of the bf16
// GEMM rate measured first in the same process (LibTorch's mm on 8192^2), and the speed relative
// to the fastest LibTorch backend of the same row. Decode rows (Nq = 1) report the bytes of K and
// V read per second instead. Chorus's kernels are called through the core (kernels/cuda/
// attention_cuda.h), outputs and workspace allocated once, so no op or autograd overhead counts.
//
// The timing loop is this file's own rather than Google Benchmark's: the GPU machines the
// benchmark is meant for have LibTorch, nvcc and CMake but not Google Benchmark
// (scripts/gpu_check.sh builds it with CHORUS_KERNELS_ONLY).
//
//   ./attention_cuda [--min_time=0.2] [--filter=N4096] [--quick] [--markdown=FILE]
//
// Without a GPU it says so and exits with 0.
#include <ATen/Context.h>
#include <ATen/cuda/CUDAContext.h>
#include <cuda_runtime_api.h>
#include <torch/torch.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "common/error.h"
#include "kernels/attention.h"
#include "kernels/cuda/attention_cuda.h"
#include "kernels/cuda/device_query.h"

namespace {

using chorus::kernels::AttentionBackwardArgs;
using chorus::kernels::AttentionForwardOutputs;
using chorus::kernels::AttentionParams;
using chorus::kernels::ElementType;
namespace kc = chorus::kernels::cuda;

void check_cuda(cudaError_t status, const char* what) {
  if (status != cudaSuccess) {
    throw chorus::Error(chorus::detail::concat(what, ": ", cudaGetErrorString(status)));
  }
}

struct Shape {
  std::string label;
  int64_t b, h, nq, nk, d;
  bool causal;
  bool groups;  // cross-agent: keys of 3 agents, each query sees its own agent and one other
  double forward_flop() const {
    const double f = 4.0 * b * h * nq * nk * d;
    return causal ? f / 2 : f;
  }
  bool decode() const { return nq == 1; }
  double kv_bytes() const { return 2.0 * b * h * nk * d * 2; }  // bf16 K and V
};

std::vector<Shape> shapes(bool quick) {
  std::vector<Shape> s;
  // 16k tokens per batch (B * N), H * D = 2048.
  const std::vector<int64_t> ns = quick ? std::vector<int64_t>{1024, 4096, 16384}
                                        : std::vector<int64_t>{512, 1024, 2048, 4096, 8192, 16384};
  for (int64_t d : {64, 128}) {
    for (int64_t n : ns) {
      for (bool causal : {false, true}) {
        const int64_t b = 16384 / n, h = 2048 / d;
        s.push_back({"B" + std::to_string(b) + "H" + std::to_string(h) + "N" + std::to_string(n) +
                         "D" + std::to_string(d) + (causal ? "_causal" : ""),
                     b, h, n, n, d, causal, false});
      }
    }
  }
  for (int64_t nk : {4096, 16384}) {
    s.push_back({"decode_B16H16Nq1Nk" + std::to_string(nk) + "D128", 16, 16, 1, nk, 128, false,
                 false});
  }
  s.push_back({"cross_agent_B8H16Nq1024Nk3x1024D128", 8, 16, 1024, 3 * 1024, 128, false, true});
  // Small enough for the naive version: the whole ladder on one row.
  s.push_back({"ladder_B1H16N1024D64", 1, 16, 1024, 1024, 64, false, false});
  return s;
}

// --- Timing.

class Timer {
 public:
  Timer(double min_time, size_t l2_bytes) : min_time_(min_time) {
    flush_ = torch::empty({static_cast<int64_t>(std::max<size_t>(2 * l2_bytes, 1 << 20))},
                          torch::TensorOptions().dtype(torch::kUInt8).device(torch::kCUDA));
    check_cuda(cudaEventCreate(&start_), "cudaEventCreate");
    check_cuda(cudaEventCreate(&stop_), "cudaEventCreate");
  }
  // Median milliseconds of fn over repetitions (at least 3, until min_time of kernel time or 200).
  double median_ms(const std::function<void()>& fn) {
    cudaStream_t stream = at::cuda::getCurrentCUDAStream();
    fn();  // warm-up (and first-call set-up such as cuBLAS handles)
    check_cuda(cudaStreamSynchronize(stream), "warm-up");
    std::vector<double> times;
    double total = 0;
    while (times.size() < 3 || (total < min_time_ * 1e3 && times.size() < 200)) {
      check_cuda(cudaMemsetAsync(flush_.data_ptr(), static_cast<int>(times.size() & 0xff),
                                 flush_.numel(), stream),
                 "L2 flush");
      check_cuda(cudaEventRecord(start_, stream), "cudaEventRecord");
      fn();
      check_cuda(cudaEventRecord(stop_, stream), "cudaEventRecord");
      check_cuda(cudaEventSynchronize(stop_), "cudaEventSynchronize");
      float ms = 0;
      check_cuda(cudaEventElapsedTime(&ms, start_, stop_), "cudaEventElapsedTime");
      times.push_back(ms);
      total += ms;
    }
    std::sort(times.begin(), times.end());
    return times[times.size() / 2];
  }

 private:
  double min_time_;
  torch::Tensor flush_;
  cudaEvent_t start_{}, stop_{};
};

// --- Problems.

struct Problem {
  torch::Tensor q, k, v, dout, out, lse, dq, dk, dv;  // bf16 [B,H,N,D] (lse float32)
  torch::Tensor query_groups, key_groups, visibility;  // device, for group shapes
  torch::Tensor sdpa_mask;                             // bool [1, 1, Nq, Nk] for group shapes
};

Problem make_problem(const Shape& s) {
  torch::manual_seed(1);
  const auto opts = torch::TensorOptions().dtype(torch::kBFloat16).device(torch::kCUDA);
  Problem p;
  p.q = torch::randn({s.b, s.h, s.nq, s.d}, opts);
  p.k = torch::randn({s.b, s.h, s.nk, s.d}, opts);
  p.v = torch::randn({s.b, s.h, s.nk, s.d}, opts);
  p.dout = torch::randn({s.b, s.h, s.nq, s.d}, opts);
  p.out = torch::empty_like(p.q);
  p.lse = torch::empty({s.b, s.h, s.nq}, opts.dtype(torch::kFloat32));
  p.dq = torch::empty_like(p.q);
  p.dk = torch::empty_like(p.k);
  p.dv = torch::empty_like(p.v);
  if (s.groups) {
    // Keys: agent 0, 1, 2 in thirds; queries of agent a see agents a and (a + 1) % 3.
    const auto dev = torch::TensorOptions().dtype(torch::kInt64).device(torch::kCUDA);
    p.key_groups = torch::arange(s.nk, dev) / (s.nk / 3);
    p.query_groups = torch::arange(s.nq, dev) % 3;
    p.visibility = torch::tensor({1, 1, 0, 0, 1, 1, 1, 0, 1}, torch::kUInt8).view({3, 3}).to(torch::kCUDA);
    p.sdpa_mask = p.visibility.to(torch::kBool)
                      .index({p.query_groups.view({s.nq, 1}), p.key_groups.view({1, s.nk})})
                      .view({1, 1, s.nq, s.nk});
  }
  return p;
}

chorus::kernels::ConstTensorView const_view(const torch::Tensor& t) {
  chorus::kernels::ConstTensorView v;
  v.data = t.data_ptr();
  for (int i = 0; i < 4; ++i) v.strides[i] = t.stride(i);
  return v;
}

chorus::kernels::TensorView view(const torch::Tensor& t) {
  chorus::kernels::TensorView v;
  v.data = t.data_ptr();
  for (int i = 0; i < 4; ++i) v.strides[i] = t.stride(i);
  return v;
}

AttentionParams params_for(const Shape& s, const Problem& p) {
  AttentionParams a;
  a.dtype = ElementType::kBFloat16;
  a.batch = s.b;
  a.heads = s.h;
  a.nq = s.nq;
  a.nk = s.nk;
  a.d = a.dv = s.d;
  a.q = const_view(p.q);
  a.k = const_view(p.k);
  a.v = const_view(p.v);
  a.scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(s.d)));
  a.mask.causal = s.causal;
  if (s.groups) {
    a.mask.query_groups = p.query_groups.data_ptr<int64_t>();
    a.mask.key_groups = p.key_groups.data_ptr<int64_t>();
    a.mask.group_visibility = p.visibility.data_ptr<uint8_t>();
    a.mask.num_groups = 3;
  }
  return a;
}

// --- LibTorch's backends.

struct SdpaBackend {
  const char* name;
  void (*enable)();
};

void only(bool flash, bool efficient, bool cudnn, bool math) {
  auto& ctx = at::globalContext();
  ctx.setSDPUseFlash(flash);
  ctx.setSDPUseMemEfficient(efficient);
  ctx.setSDPUseCuDNN(cudnn);
  ctx.setSDPUseMath(math);
}

const SdpaBackend kSdpaBackends[] = {
    {"torch_flash", [] { only(true, false, false, false); }},
    {"torch_efficient", [] { only(false, true, false, false); }},
    {"torch_cudnn", [] { only(false, false, true, false); }},
    {"torch_math", [] { only(false, false, false, true); }},
};

// --- Rows.

struct Row {
  std::string shape, pass, impl;
  double ms = 0;
  double rate = 0;  // TFLOP/s, or GB/s for decode rows
  bool decode = false;
  std::string note;  // why an implementation did not run
};

std::string fmt(double x, int digits) {
  std::ostringstream out;
  out.setf(std::ios::fixed);
  out.precision(digits);
  out << x;
  return out.str();
}

double measure_gemm_peak(Timer& timer) {
  const int64_t n = 8192;
  const auto opts = torch::TensorOptions().dtype(torch::kBFloat16).device(torch::kCUDA);
  auto a = torch::randn({n, n}, opts), b = torch::randn({n, n}, opts), c = torch::empty({n, n}, opts);
  const double ms = timer.median_ms([&] { torch::mm_out(c, a, b); });
  return 2.0 * n * n * n / (ms * 1e-3);
}

}  // namespace

int main(int argc, char** argv) {
  double min_time = 0.2;
  std::string filter, markdown;
  bool quick = false;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg.rfind("--min_time=", 0) == 0) {
      min_time = std::atof(arg.c_str() + 11);
    } else if (arg.rfind("--filter=", 0) == 0) {
      filter = arg.substr(9);
    } else if (arg.rfind("--markdown=", 0) == 0) {
      markdown = arg.substr(11);
    } else if (arg == "--quick") {
      quick = true;
    } else {
      std::fprintf(stderr, "usage: %s [--min_time=SECONDS] [--filter=TEXT] [--quick] [--markdown=FILE]\n",
                   argv[0]);
      return 2;
    }
  }
  const kc::DeviceQuery devices = kc::query_devices();
  if (devices.devices.empty() || !torch::cuda::is_available()) {
    std::printf("attention_cuda: no GPU visible (%s): benchmark skipped\n",
                devices.unavailable_reason.empty() ? "LibTorch sees no CUDA device"
                                                   : devices.unavailable_reason.c_str());
    return 0;
  }
  try {
    int device = 0;
    check_cuda(cudaGetDevice(&device), "cudaGetDevice");
    int l2 = 0;
    check_cuda(cudaDeviceGetAttribute(&l2, cudaDevAttrL2CacheSize, device), "L2 size");
    const kc::DeviceInfo& info = devices.devices[static_cast<size_t>(device)];
    Timer timer(min_time, static_cast<size_t>(l2));
    const double peak = measure_gemm_peak(timer);
    std::printf("%s (sm_%d%d, %d SMs, L2 %d MB), CUDA runtime %d, LibTorch %s\n", info.name.c_str(),
                info.major, info.minor, info.multiprocessors, l2 >> 20, devices.runtime_version,
                TORCH_VERSION);
    std::printf("bf16 GEMM rate (mm 8192^2): %.1f TFLOP/s\n\n", peak / 1e12);
    std::printf("%-40s %-4s %-16s %10s %12s %7s %9s\n", "shape", "pass", "implementation", "ms",
                "TFLOP/s|GB/s", "%peak", "vs torch");
    const kc::CudaDeviceTraits traits = kc::current_device_traits();
    cudaStream_t stream = at::cuda::getCurrentCUDAStream();
    std::vector<Row> all;
    for (const Shape& s : shapes(quick)) {
      if (!filter.empty() && s.label.find(filter) == std::string::npos) continue;
      Problem p = make_problem(s);
      const AttentionParams params = params_for(s, p);
      std::vector<Row> rows;
      auto record = [&](const char* pass, const std::string& impl, const std::function<void()>& fn) {
        Row r;
        r.shape = s.label;
        r.pass = pass;
        r.impl = impl;
        r.decode = s.decode();
        try {
          r.ms = timer.median_ms(fn);
          const double flop = std::strcmp(pass, "fwd") == 0 ? s.forward_flop() : 2.5 * s.forward_flop();
          r.rate = r.decode ? s.kv_bytes() / (r.ms * 1e-3) / 1e9 : flop / (r.ms * 1e-3) / 1e12;
        } catch (const std::exception& e) {
          r.note = e.what();
          r.note = r.note.substr(0, r.note.find('\n'));
          cudaGetLastError();
        }
        rows.push_back(r);
      };
      // Chorus: each version through the core.
      AttentionForwardOutputs fwd;
      fwd.out = view(p.out);
      fwd.logsumexp = p.lse.data_ptr<float>();
      for (kc::AttentionVersion version : {kc::AttentionVersion::kNaive, kc::AttentionVersion::kTiled,
                                           kc::AttentionVersion::kFlash, kc::AttentionVersion::kCublas}) {
        const bool naive = version == kc::AttentionVersion::kNaive;
        if (naive && s.forward_flop() > 2e10) continue;  // seconds per call beyond this
        const std::string name = std::string("chorus_") + kc::attention_version_name(version);
        if (kc::effective_forward_version(traits, params, version) != version) continue;
        const size_t bytes = kc::attention_forward_cuda_workspace_bytes(params, version);
        torch::Tensor ws = torch::empty({static_cast<int64_t>(std::max<size_t>(bytes, 1))},
                                        p.q.options().dtype(torch::kUInt8));
        record("fwd", name, [&] {
          kc::attention_forward_cuda(params, fwd, version, stream, ws.data_ptr(), bytes);
        });
        if (s.decode()) continue;
        if (kc::effective_backward_version(traits, params, version) != version) continue;
        kc::attention_forward_cuda(params, fwd, version, stream, ws.data_ptr(), bytes);
        AttentionBackwardArgs bwd;
        bwd.out = const_view(p.out);
        bwd.dout = const_view(p.dout);
        bwd.logsumexp = p.lse.data_ptr<float>();
        bwd.dq = view(p.dq);
        bwd.dk = view(p.dk);
        bwd.dv = view(p.dv);
        const size_t bwd_bytes = kc::attention_backward_cuda_workspace_bytes(params, version);
        torch::Tensor bwd_ws = torch::empty({static_cast<int64_t>(bwd_bytes)}, p.q.options().dtype(torch::kUInt8));
        record("bwd", name, [&] {
          kc::attention_backward_cuda(params, bwd, version, stream, bwd_ws.data_ptr(), bwd_bytes);
        });
      }
      // LibTorch, one backend at a time.
      for (const SdpaBackend& backend : kSdpaBackends) {
        backend.enable();
        const std::optional<at::Tensor> mask =
            s.groups ? std::optional<at::Tensor>(p.sdpa_mask) : std::nullopt;
        record("fwd", backend.name, [&] {
          torch::NoGradGuard no_grad;
          at::scaled_dot_product_attention(p.q, p.k, p.v, mask, 0.0, s.causal);
        });
        if (s.decode()) continue;
        try {
          auto q = p.q.detach().requires_grad_(true), k = p.k.detach().requires_grad_(true),
               v = p.v.detach().requires_grad_(true);
          auto out = at::scaled_dot_product_attention(q, k, v, mask, 0.0, s.causal);
          record("bwd", backend.name, [&] {
            torch::autograd::grad({out}, {q, k, v}, {p.dout}, /*retain_graph=*/true);
          });
        } catch (const std::exception& e) {
          Row r;
          r.shape = s.label;
          r.pass = "bwd";
          r.impl = backend.name;
          r.note = std::string(e.what()).substr(0, std::string(e.what()).find('\n'));
          rows.push_back(r);
        }
      }
      only(true, true, true, true);
      // Ratios against the fastest LibTorch backend of the same pass.
      std::map<std::string, double> best_torch;
      for (const Row& r : rows) {
        if (r.note.empty() && r.impl.rfind("torch_", 0) == 0) {
          auto it = best_torch.find(r.pass);
          if (it == best_torch.end() || r.ms < it->second) best_torch[r.pass] = r.ms;
        }
      }
      for (const Row& r : rows) {
        if (!r.note.empty()) {
          std::printf("%-40s %-4s %-16s %10s   n/a: %s\n", r.shape.c_str(), r.pass.c_str(),
                      r.impl.c_str(), "-", r.note.substr(0, 60).c_str());
          continue;
        }
        const auto it = best_torch.find(r.pass);
        const double ratio = it == best_torch.end() ? 0 : it->second / r.ms;
        std::printf("%-40s %-4s %-16s %10.3f %12.1f %7s %8.2fx\n", r.shape.c_str(), r.pass.c_str(),
                    r.impl.c_str(), r.ms, r.rate,
                    r.decode ? "-" : fmt(100.0 * r.rate * 1e12 / peak, 1).c_str(), ratio);
      }
      std::fflush(stdout);
      all.insert(all.end(), rows.begin(), rows.end());
    }
    if (!markdown.empty()) {
      std::ofstream md(markdown, std::ios::app);
      md << "### attention_cuda: " << info.name << " (bf16 GEMM " << fmt(peak / 1e12, 1)
         << " TFLOP/s measured)\n\n";
      md << "| shape | pass | implementation | ms | TFLOP/s (GB/s for decode) |\n|---|---|---|---|---|\n";
      for (const Row& r : all) {
        md << "| " << r.shape << " | " << r.pass << " | " << r.impl << " | "
           << (r.note.empty() ? fmt(r.ms, 3) : "n/a") << " | "
           << (r.note.empty() ? fmt(r.rate, 1) : r.note.substr(0, 60)) << " |\n";
      }
      md << "\n";
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "attention_cuda: %s\n", e.what());
    return 1;
  }
  return 0;
}
