// The CUDA attention ladder against the CPU naive reference (every version, forward and backward,
// masks, strides, odd sizes, fully masked rows), guard zones around every output, LibTorch's
// scaled_dot_product_attention on the GPU, and the chorus::attention op on CUDA tensors through
// autograd against the CPU op. The dispatcher's choices are checked without a GPU; everything
// else skips when none is visible.
//
//   ./attention_cuda_tests [--filter=Flash] [--list]
//
// Tolerance (as the CPU tests, tests/kernels/attention_test_util.h): an output passes when
// |got - gold| <= 2 |naive - gold| + floor * max(max |gold|, 1), with gold the CPU reference
// (double accumulation) on the same rounded inputs and naive the plain formula run by LibTorch on
// the GPU in the inputs' dtype. Floors: fp32 2e-5; bf16 4e-3 (the CPU tests' value); fp16 1e-3
// (three more mantissa bits than bf16, kept at a quarter for margin). The 16-bit floors are
// looser because the tensor-core kernels round P and dS to 16 bits before the second products
// and sum in a different order, as FlashAttention does.
#include <ATen/Parallel.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime_api.h>
#include <torch/torch.h>

#include <cmath>
#include <cstdlib>
#include <functional>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "common/error.h"
#include "kernels/attention.h"
#include "kernels/cuda/attention_cuda.h"
#include "kernels/cuda/device_query.h"
#include "kernels/torch/attention_op.h"
#include "tests/kernels/mini_test.h"

namespace chorus::kernels::cuda {
namespace {

float kMinusInfinity() { return -std::numeric_limits<float>::infinity(); }

// --- GPU presence.

std::string gpu_unavailable_reason() {
  const DeviceQuery query = query_devices();
  if (query.devices.empty()) {
    return query.unavailable_reason.empty() ? "the CUDA runtime reports zero devices"
                                            : query.unavailable_reason;
  }
  if (!torch::cuda::is_available()) return "LibTorch sees no CUDA device";
  return "";
}

#define REQUIRE_GPU()                                                                  \
  do {                                                                                 \
    const std::string reason_ = gpu_unavailable_reason();                              \
    if (!reason_.empty()) MINI_SKIP("no GPU visible (" + reason_ + "): CUDA test skipped"); \
  } while (false)

void synchronize(const char* what) {
  const cudaError_t status = cudaDeviceSynchronize();
  if (status != cudaSuccess) {
    throw Error(detail::concat(what, ": ", cudaGetErrorString(status)));
  }
}

// --- Cases and inputs.

enum class BiasKind { kNone, kFull, kPerHead, kPerBatch };  // [B,H,..], [1,H,..], [B,1,..]

struct Case {
  int64_t b = 1, h = 1, nq = 1, nk = 1, d = 64, dv = 64;
  bool causal = false, lengths = false, groups = false;
  BiasKind bias = BiasKind::kNone;
  int layout = 0;  // 0 contiguous; 1 heads and rows swapped in memory; 2 last dimension strided
  ElementType dtype = ElementType::kFloat32;

  std::string name() const {
    std::ostringstream out;
    out << "B" << b << "H" << h << "Q" << nq << "K" << nk << "D" << d << "Dv" << dv;
    if (causal) out << "_causal";
    if (lengths) out << "_lengths";
    if (groups) out << "_groups";
    if (bias != BiasKind::kNone) out << "_bias" << static_cast<int>(bias);
    if (layout != 0) out << "_layout" << layout;
    out << "_" << element_type_name(dtype);
    return out.str();
  }
};

torch::ScalarType scalar_type(ElementType t) {
  switch (t) {
    case ElementType::kBFloat16:
      return torch::kBFloat16;
    case ElementType::kFloat16:
      return torch::kFloat16;
    case ElementType::kFloat32:
      break;
  }
  return torch::kFloat32;
}

int64_t element_size(ElementType t) { return t == ElementType::kFloat32 ? 4 : 2; }

// A [B, H, N, E] CPU tensor in `dtype` with one of three memory layouts.
torch::Tensor make_4d(int64_t b, int64_t h, int64_t n, int64_t e, torch::ScalarType dtype,
                      int layout) {
  torch::Tensor t;
  if (layout == 1) {
    t = torch::randn({b, n, h, e}).permute({0, 2, 1, 3});
  } else if (layout == 2) {
    t = torch::randn({b, h, e, n}).transpose(2, 3);
  } else {
    t = torch::randn({b, h, n, e});
  }
  return t.to(dtype);  // keeps the strides
}

struct Inputs {
  torch::Tensor q, k, v, dout;        // CPU, the case's dtype and layout
  torch::Tensor lengths;              // int64 [B] or undefined
  torch::Tensor query_groups;         // int64 [B, Nq] or undefined
  torch::Tensor key_groups;           // int64 [Nk] (shared by the batch) or undefined
  torch::Tensor visibility;           // bool [3, 3] or undefined
  torch::Tensor bias;                 // float32 [B|1, H|1, Nq, Nk] or undefined
  torch::Tensor visible;              // bool [B, 1, Nq, Nk]: every boolean mask part combined
  float scale = 1.f;
};

Inputs make_inputs(const Case& c, uint64_t seed) {
  torch::manual_seed(seed);
  const auto dtype = scalar_type(c.dtype);
  Inputs in;
  in.q = make_4d(c.b, c.h, c.nq, c.d, dtype, c.layout);
  in.k = make_4d(c.b, c.h, c.nk, c.d, dtype, c.layout);
  in.v = make_4d(c.b, c.h, c.nk, c.dv, dtype, c.layout);
  in.dout = make_4d(c.b, c.h, c.nq, c.dv, dtype, c.layout == 2 ? 1 : c.layout);
  in.scale = c.d > 0 ? static_cast<float>(1.0 / std::sqrt(static_cast<double>(c.d))) : 1.f;
  auto visible = torch::ones({c.b, 1, c.nq, c.nk}, torch::kBool);
  const auto rows = torch::arange(c.nq).view({c.nq, 1});
  const auto cols = torch::arange(c.nk).view({1, c.nk});
  if (c.causal) visible = visible & (cols <= rows + (c.nk - c.nq)).view({1, 1, c.nq, c.nk});
  if (c.lengths) {
    // Batch 0 keeps about half its keys, batch 1 none (fully masked rows), batch 2 all of them.
    std::vector<int64_t> lengths;
    for (int64_t b = 0; b < c.b; ++b) {
      lengths.push_back(b % 3 == 0 ? c.nk / 2 + 1 : b % 3 == 1 ? 0 : c.nk);
    }
    in.lengths = torch::tensor(lengths, torch::kInt64);
    visible = visible & (cols.view({1, 1, 1, c.nk}) < in.lengths.view({c.b, 1, 1, 1}));
  }
  if (c.groups) {
    // Three agents; group 2's queries see nothing (fully masked rows), the others a subset.
    in.visibility = torch::tensor({1, 0, 1, 1, 1, 0, 0, 0, 0}, torch::kBool).view({3, 3});
    in.query_groups = torch::randint(0, 3, {c.b, c.nq}, torch::kInt64);
    in.key_groups = torch::randint(0, 3, {c.nk}, torch::kInt64);
    const auto pair =
        in.query_groups.view({c.b, c.nq, 1}) * 3 + in.key_groups.view({1, 1, c.nk});
    visible = visible & in.visibility.flatten().index({pair}).view({c.b, 1, c.nq, c.nk});
  }
  switch (c.bias) {
    case BiasKind::kFull:
      in.bias = torch::randn({c.b, c.h, c.nq, c.nk});
      break;
    case BiasKind::kPerHead:
      in.bias = torch::randn({1, c.h, c.nq, c.nk});
      break;
    case BiasKind::kPerBatch:
      in.bias = torch::randn({c.b, 1, c.nq, c.nk});
      break;
    case BiasKind::kNone:
      break;
  }
  in.visible = visible;
  return in;
}

// Masks (and the bias expanded to [B, H, Nq, Nk]) on one device, in the kernels' layout.
struct MaskStorage {
  torch::Tensor lengths, query_groups, key_groups, visibility, bias;
};

MaskStorage masks_on(const Inputs& in, const Case& c, torch::Device device) {
  MaskStorage m;
  if (in.lengths.defined()) m.lengths = in.lengths.to(device).contiguous();
  if (in.visibility.defined()) {
    m.query_groups = in.query_groups.to(device).contiguous();
    m.key_groups = in.key_groups.to(device).contiguous();
    m.visibility = in.visibility.to(device, torch::kUInt8).contiguous();
  }
  if (in.bias.defined()) m.bias = in.bias.to(device).expand({c.b, c.h, c.nq, c.nk});
  return m;
}

ConstTensorView const_view(const torch::Tensor& t) {
  ConstTensorView v;
  v.data = t.data_ptr();
  for (int i = 0; i < 4; ++i) v.strides[i] = t.stride(i);
  return v;
}

AttentionParams make_params(const Case& c, const torch::Tensor& q, const torch::Tensor& k,
                            const torch::Tensor& v, const MaskStorage& m, float scale) {
  AttentionParams p;
  p.dtype = c.dtype;
  p.batch = c.b;
  p.heads = c.h;
  p.nq = c.nq;
  p.nk = c.nk;
  p.d = c.d;
  p.dv = c.dv;
  p.q = const_view(q);
  p.k = const_view(k);
  p.v = const_view(v);
  p.scale = scale;
  p.mask.causal = c.causal;
  if (m.lengths.defined()) p.mask.key_lengths = m.lengths.data_ptr<int64_t>();
  if (m.visibility.defined()) {
    p.mask.query_groups = m.query_groups.data_ptr<int64_t>();
    p.mask.query_groups_batch_stride = c.nq;
    p.mask.key_groups = m.key_groups.data_ptr<int64_t>();
    p.mask.key_groups_batch_stride = 0;
    p.mask.group_visibility = m.visibility.data_ptr<uint8_t>();
    p.mask.num_groups = 3;
  }
  if (m.bias.defined()) {
    p.mask.bias = m.bias.data_ptr<float>();
    for (int i = 0; i < 4; ++i) p.mask.bias_strides[i] = m.bias.stride(i);
  }
  return p;
}

// --- Results.

struct Results {
  torch::Tensor out, lse, dq, dk, dv, dbias;  // CPU, float32; dbias [B, H, Nq, Nk] if a bias
};

// The CPU naive reference (double accumulation) on fp32 copies of the rounded inputs.
Results reference_results(const Case& c, const Inputs& in) {
  const auto f32 = [](const torch::Tensor& t) { return t.to(torch::kFloat32).contiguous(); };
  const auto q = f32(in.q), k = f32(in.k), v = f32(in.v), dout = f32(in.dout);
  const MaskStorage m = masks_on(in, c, torch::kCPU);
  Case fp32_case = c;
  fp32_case.dtype = ElementType::kFloat32;
  AttentionParams p = make_params(fp32_case, q, k, v, m, in.scale);
  p.parallel_for = [](int64_t n, const std::function<void(int64_t, int64_t)>& body) {
    at::parallel_for(0, n, 1, [&](int64_t begin, int64_t end) { body(begin, end); });
  };
  Results r;
  r.out = torch::empty({c.b, c.h, c.nq, c.dv});
  r.lse = torch::empty({c.b, c.h, c.nq});
  AttentionForwardOutputs o;
  o.out.data = r.out.data_ptr();
  for (int i = 0; i < 4; ++i) o.out.strides[i] = r.out.stride(i);
  o.logsumexp = r.lse.data_ptr<float>();
  attention_forward_reference(p, o);
  r.dq = torch::empty({c.b, c.h, c.nq, c.d});
  r.dk = torch::empty({c.b, c.h, c.nk, c.d});
  r.dv = torch::empty({c.b, c.h, c.nk, c.dv});
  AttentionBackwardArgs a;
  a.out = const_view(r.out);
  a.dout = const_view(dout);
  a.logsumexp = r.lse.data_ptr<float>();
  auto view = [](const torch::Tensor& t) {
    TensorView v;
    v.data = t.data_ptr();
    for (int i = 0; i < 4; ++i) v.strides[i] = t.stride(i);
    return v;
  };
  a.dq = view(r.dq);
  a.dk = view(r.dk);
  a.dv = view(r.dv);
  if (in.bias.defined()) {
    r.dbias = torch::zeros({c.b, c.h, c.nq, c.nk});
    a.dbias = r.dbias.data_ptr<float>();
  }
  attention_backward_reference(p, a);
  return r;
}

// The plain formula by LibTorch on the GPU in the inputs' dtype (the "naive" error estimate).
Results naive_results(const Case& c, const Inputs& in) {
  const torch::Device cuda(torch::kCUDA);
  const auto dtype = scalar_type(c.dtype);
  auto q = in.q.to(cuda).detach().requires_grad_(true);
  auto k = in.k.to(cuda).detach().requires_grad_(true);
  auto v = in.v.to(cuda).detach().requires_grad_(true);
  torch::Tensor bias;
  auto s = torch::matmul(q, k.transpose(-2, -1)) * in.scale;
  if (in.bias.defined()) {
    bias = in.bias.to(cuda, dtype).expand({c.b, c.h, c.nq, c.nk}).contiguous().requires_grad_(true);
    s = s + bias;
  }
  const auto visible = in.visible.to(cuda);
  const auto any = visible.any(-1, /*keepdim=*/true);
  s = s.masked_fill(visible.logical_not(), -std::numeric_limits<double>::infinity());
  s = s.masked_fill(any.logical_not(), 0.0);
  const auto p = torch::softmax(s, -1) * any.to(s.scalar_type());
  const auto out = torch::matmul(p, v);
  (out * in.dout.to(cuda)).sum().backward();
  Results r;
  r.out = out.detach().to(torch::kCPU, torch::kFloat32);
  r.dq = q.grad().to(torch::kCPU, torch::kFloat32);
  r.dk = k.grad().to(torch::kCPU, torch::kFloat32);
  r.dv = v.grad().to(torch::kCPU, torch::kFloat32);
  if (bias.defined()) r.dbias = bias.grad().to(torch::kCPU, torch::kFloat32);
  return r;
}

double floor_for(ElementType t) {
  return t == ElementType::kBFloat16 ? 4e-3 : t == ElementType::kFloat16 ? 1e-3 : 2e-5;
}

double max_abs_diff(const torch::Tensor& a, const torch::Tensor& b) {
  if (a.numel() == 0) return 0;
  return (a.to(torch::kFloat64) - b.to(torch::kFloat64)).abs().max().item<double>();
}

// "" when got is within 2 |naive - gold| + floor * max(max |gold|, 1) of gold, else a report
// with the first mismatches.
std::string compare(const std::string& what, const torch::Tensor& got, const torch::Tensor& naive,
                    const torch::Tensor& gold, double floor) {
  if (!got.defined()) return what + ": missing";
  if (got.sizes() != gold.sizes()) return what + ": wrong shape";
  const auto g = got.to(torch::kFloat64);
  if (g.isnan().any().item<bool>()) return what + ": NaN";
  const double scale = gold.numel() == 0 ? 0.0 : gold.abs().max().item<double>();
  const double tol = 2.0 * max_abs_diff(naive, gold) + floor * std::max(scale, 1.0);
  const auto err = (g - gold.to(torch::kFloat64)).abs();
  const double worst = got.numel() == 0 ? 0.0 : err.max().item<double>();
  if (worst <= tol) return "";
  std::ostringstream out;
  out << what << ": max error " << worst << " > tolerance " << tol << " (naive error "
      << max_abs_diff(naive, gold) << ", max |gold| " << scale << "); first mismatches:";
  const auto bad = (err > tol).nonzero();
  for (int64_t i = 0; i < std::min<int64_t>(bad.size(0), 5); ++i) {
    std::vector<at::indexing::TensorIndex> idx;
    for (int64_t d = 0; d < bad.size(1); ++d) idx.emplace_back(bad[i][d].item<int64_t>());
    out << "\n  at " << bad[i].unsqueeze(0) << " got " << g.index(idx).item<double>() << " want "
        << gold.to(torch::kFloat64).index(idx).item<double>();
  }
  return out.str();
}

// "" when both log-sum-exps are -inf at the same rows and agree elsewhere.
std::string compare_lse(const torch::Tensor& got, const torch::Tensor& gold, ElementType dtype) {
  const auto finite = torch::isfinite(gold);
  if (!torch::equal(finite, torch::isfinite(got))) return "lse: -inf rows differ";
  const auto masked = finite.logical_not();
  if (masked.any().item<bool>() &&
      !(got.masked_select(masked) == kMinusInfinity()).all().item<bool>()) {
    return "lse: a fully masked row is not -inf";
  }
  if (!finite.any().item<bool>()) return "";
  const double worst = max_abs_diff(got.masked_select(finite), gold.masked_select(finite));
  const double tol = dtype == ElementType::kFloat32 ? 1e-4 : 1e-3;
  const double scale = std::max(1.0, gold.masked_select(finite).abs().max().item<double>());
  if (worst <= tol * scale) return "";
  return "lse: max error " + std::to_string(worst) + " > " + std::to_string(tol * scale);
}

// --- Guarded device buffers: canary bytes before and after, and padded rows.

class GuardedBuffer {
 public:
  static constexpr int64_t kGuardBytes = 4096;
  static constexpr int kPattern = 0xA5;
  explicit GuardedBuffer(int64_t bytes) : bytes_(bytes) {
    storage_ = torch::full({bytes + 2 * kGuardBytes}, kPattern,
                           torch::TensorOptions().dtype(torch::kUInt8).device(torch::kCUDA));
  }
  void* data() { return static_cast<uint8_t*>(storage_.data_ptr()) + kGuardBytes; }
  void zero() { storage_.narrow(0, kGuardBytes, bytes_).zero_(); }
  // The whole buffer on the CPU (after the kernels ran).
  torch::Tensor host() const { return storage_.to(torch::kCPU); }
  // Where the guards were overwritten, "" when intact.
  std::string damage(const torch::Tensor& host_bytes) const {
    const uint8_t* p = host_bytes.data_ptr<uint8_t>();
    for (int64_t i = 0; i < kGuardBytes; ++i) {
      if (p[i] != kPattern) return "byte " + std::to_string(i - kGuardBytes) + " before";
      if (p[kGuardBytes + bytes_ + i] != kPattern) return "byte " + std::to_string(i) + " after";
    }
    return "";
  }

 private:
  int64_t bytes_;
  torch::Tensor storage_;
};

constexpr int64_t kRowPad = 3;  // elements of padding after each output row

void padded_strides(int64_t h, int64_t n, int64_t e, int64_t* s) {
  s[3] = 1;
  s[2] = e + kRowPad;
  s[1] = n * s[2];
  s[0] = h * s[1];
}

// A padded [B, H, N, E] output of the case's dtype in a guarded buffer.
struct PaddedOutput {
  int64_t b, h, n, e;
  ElementType dtype;
  GuardedBuffer buffer;
  PaddedOutput(int64_t b_, int64_t h_, int64_t n_, int64_t e_, ElementType t)
      : b(b_), h(h_), n(n_), e(e_), dtype(t), buffer(b_ * h_ * n_ * (e_ + kRowPad) * element_size(t)) {}
  TensorView view() {
    TensorView v;
    v.data = buffer.data();
    padded_strides(h, n, e, v.strides);
    return v;
  }
  // The values as float32 [B, H, N, E]; problems (guards, row gaps) appended to `problems`.
  torch::Tensor read(const std::string& name, std::vector<std::string>* problems) {
    const torch::Tensor bytes = buffer.host();
    const std::string damage = buffer.damage(bytes);
    if (!damage.empty()) problems->push_back(name + " guard damaged at " + damage);
    const auto padded = torch::from_blob(bytes.data_ptr<uint8_t>() + GuardedBuffer::kGuardBytes,
                                         {b, h, n, e + kRowPad}, scalar_type(dtype));
    const auto gap = padded.slice(3, e).contiguous();
    const auto* gap_bytes = static_cast<const uint8_t*>(gap.data_ptr());
    for (int64_t i = 0; i < gap.numel() * element_size(dtype); ++i) {
      if (gap_bytes[i] != GuardedBuffer::kPattern) {
        problems->push_back(name + " wrote into a row gap");
        break;
      }
    }
    return padded.slice(3, 0, e).to(torch::kFloat32).clone();
  }
};

// A contiguous float32 output in a guarded buffer.
struct FloatOutput {
  std::vector<int64_t> sizes;
  GuardedBuffer buffer;
  explicit FloatOutput(std::vector<int64_t> s)
      : sizes(s), buffer(4 * std::max<int64_t>(0, torch::tensor(s).prod().item<int64_t>())) {}
  float* data() { return static_cast<float*>(buffer.data()); }
  torch::Tensor read(const std::string& name, std::vector<std::string>* problems) {
    const torch::Tensor bytes = buffer.host();
    const std::string damage = buffer.damage(bytes);
    if (!damage.empty()) problems->push_back(name + " guard damaged at " + damage);
    return torch::from_blob(bytes.data_ptr<uint8_t>() + GuardedBuffer::kGuardBytes, sizes,
                            torch::kFloat32)
        .clone();
  }
};

// One version on the GPU through the core API, every output guarded.
Results gpu_results(const Case& c, const Inputs& in, AttentionVersion version,
                    std::vector<std::string>* problems) {
  const torch::Device cuda(torch::kCUDA);
  const auto q = in.q.to(cuda), k = in.k.to(cuda), v = in.v.to(cuda), dout = in.dout.to(cuda);
  const MaskStorage m = masks_on(in, c, cuda);
  const AttentionParams p = make_params(c, q, k, v, m, in.scale);

  PaddedOutput out(c.b, c.h, c.nq, c.dv, c.dtype);
  FloatOutput lse({c.b, c.h, c.nq});
  AttentionForwardOutputs o;
  o.out = out.view();
  o.logsumexp = lse.data();
  const size_t fwd_bytes = attention_forward_cuda_workspace_bytes(p, version);
  torch::Tensor fwd_ws = torch::empty({static_cast<int64_t>(std::max<size_t>(fwd_bytes, 1))},
                                      torch::TensorOptions().dtype(torch::kUInt8).device(cuda));
  attention_forward_cuda(p, o, version, nullptr, fwd_bytes ? fwd_ws.data_ptr() : nullptr,
                         fwd_bytes);
  synchronize("forward");

  PaddedOutput dq(c.b, c.h, c.nq, c.d, c.dtype), dk(c.b, c.h, c.nk, c.d, c.dtype),
      dv(c.b, c.h, c.nk, c.dv, c.dtype);
  FloatOutput dbias({c.b, c.h, c.nq, c.nk});
  dbias.buffer.zero();
  AttentionBackwardArgs a;
  a.out.data = o.out.data;
  for (int i = 0; i < 4; ++i) a.out.strides[i] = o.out.strides[i];
  a.dout = const_view(dout);
  a.logsumexp = lse.data();
  a.dq = dq.view();
  a.dk = dk.view();
  a.dv = dv.view();
  a.dbias = in.bias.defined() ? dbias.data() : nullptr;
  const size_t bwd_bytes = attention_backward_cuda_workspace_bytes(p, version);
  torch::Tensor bwd_ws = torch::empty({static_cast<int64_t>(std::max<size_t>(bwd_bytes, 1))},
                                      torch::TensorOptions().dtype(torch::kUInt8).device(cuda));
  attention_backward_cuda(p, a, version, nullptr, bwd_bytes ? bwd_ws.data_ptr() : nullptr,
                          bwd_bytes);
  synchronize("backward");

  Results r;
  r.out = out.read("out", problems);
  r.lse = lse.read("logsumexp", problems);
  r.dq = dq.read("dq", problems);
  r.dk = dk.read("dk", problems);
  r.dv = dv.read("dv", problems);
  const torch::Tensor db = dbias.read("dbias", problems);
  if (in.bias.defined()) {
    r.dbias = db;
  } else if (db.numel() > 0 && db.abs().max().item<float>() != 0.f) {
    problems->push_back("dbias written although none was asked for");
  }
  return r;
}

// Every problem of one version on one case; "" when it passes.
std::string check_case(const Case& c, AttentionVersion version) {
  const Inputs in = make_inputs(c, 1234);
  const Results gold = reference_results(c, in);
  const Results naive = naive_results(c, in);
  std::vector<std::string> problems;
  const Results got = gpu_results(c, in, version, &problems);
  const double floor = floor_for(c.dtype);
  for (const std::string& p :
       {compare("out", got.out, naive.out, gold.out, floor), compare_lse(got.lse, gold.lse, c.dtype),
        compare("dq", got.dq, naive.dq, gold.dq, floor),
        compare("dk", got.dk, naive.dk, gold.dk, floor),
        compare("dv", got.dv, naive.dv, gold.dv, floor),
        in.bias.defined() ? compare("dbias", got.dbias, naive.dbias, gold.dbias, floor)
                          : std::string()}) {
    if (!p.empty()) problems.push_back(p);
  }
  std::string report;
  for (const auto& p : problems) report += "\n    " + p;
  return report;
}

// --- Case grids.

// Every (Nq, Nk) pair of the list, with D, Dv, masks, bias kinds and layouts rotating so that each
// value of each axis appears; D and the dtypes as the version takes them.
std::vector<Case> shape_cases(AttentionVersion version) {
  const int64_t ns[] = {1, 7, 64, 67, 130, 1000};
  std::vector<Case> cases;
  int i = 0;
  for (int64_t nq : ns) {
    for (int64_t nk : ns) {
      Case c;
      c.nq = nq;
      c.nk = nk;
      const bool large = nq * nk >= 64 * 1000;
      c.b = large ? 1 : (i % 2 ? 3 : 2);
      c.h = large ? 2 : (i % 3 ? 3 : 1);
      c.causal = i % 4 == 1;
      c.lengths = i % 6 == 2;
      c.groups = i % 7 == 3;
      c.bias = i % 5 == 4 ? BiasKind::kPerHead : i % 11 == 5 ? BiasKind::kFull : BiasKind::kNone;
      c.layout = i % 3;
      switch (version) {
        case AttentionVersion::kFlash:
          c.d = c.dv = i % 2 ? 128 : 64;
          c.dtype = i % 4 < 2 ? ElementType::kBFloat16 : ElementType::kFloat16;
          break;
        case AttentionVersion::kCublas:
          c.d = i % 2 ? 128 : 64;
          c.dv = i % 3 ? c.d : 32;
          c.layout = i % 2;  // layout 2 (strided rows) falls back; one case below covers it
          c.dtype = i % 3 == 2 ? ElementType::kBFloat16 : ElementType::kFloat32;
          break;
        case AttentionVersion::kNaive:
        case AttentionVersion::kTiled: {
          const int64_t ds[] = {64, 128, 20, 80, 1};
          c.d = ds[i % 5];
          c.dv = i % 4 == 0 ? c.d : (i % 2 ? 33 : 64);
          c.dtype = i % 9 == 4 ? ElementType::kBFloat16
                               : i % 9 == 7 ? ElementType::kFloat16 : ElementType::kFloat32;
          break;
        }
      }
      cases.push_back(c);
      ++i;
    }
  }
  return cases;
}

// Every combination of causal x key lengths x groups, the bias kinds rotating, on a rectangular
// shape that crosses tile boundaries in both directions.
std::vector<Case> mask_cases(AttentionVersion version) {
  std::vector<Case> cases;
  for (int combo = 0; combo < 16; ++combo) {
    Case c;
    c.b = 3;
    c.h = 2;
    c.nq = 70;
    c.nk = 150;
    c.d = c.dv = 64;
    c.causal = combo & 1;
    c.lengths = combo & 2;
    c.groups = combo & 4;
    c.bias = static_cast<BiasKind>(combo % 4);
    c.layout = combo >= 8 ? 1 : 0;
    c.dtype = version == AttentionVersion::kFlash
                  ? (combo % 2 ? ElementType::kFloat16 : ElementType::kBFloat16)
                  : ElementType::kFloat32;
    // Nq > Nk as well: the causal diagonal then hides the first rows entirely.
    if (combo >= 12) std::swap(c.nq, c.nk);
    cases.push_back(c);
  }
  return cases;
}

void run_cases(const std::vector<Case>& cases, AttentionVersion version) {
  int failed = 0;
  for (const Case& c : cases) {
    const std::string report = check_case(c, version);
    MINI_EXPECT(report.empty()) << attention_version_name(version) << " " << c.name() << report;
    if (!report.empty() && ++failed >= 5) {
      MINI_EXPECT(false) << "stopping after 5 failing cases";
      return;
    }
  }
}

// --- The ladder, one version at a time.

MINI_TEST(Naive, MatchesTheReferenceOnTheShapeGrid) {
  REQUIRE_GPU();
  run_cases(shape_cases(AttentionVersion::kNaive), AttentionVersion::kNaive);
}
MINI_TEST(Naive, MatchesTheReferenceForEveryMask) {
  REQUIRE_GPU();
  run_cases(mask_cases(AttentionVersion::kNaive), AttentionVersion::kNaive);
}
MINI_TEST(Tiled, MatchesTheReferenceOnTheShapeGrid) {
  REQUIRE_GPU();
  run_cases(shape_cases(AttentionVersion::kTiled), AttentionVersion::kTiled);
}
MINI_TEST(Tiled, MatchesTheReferenceForEveryMask) {
  REQUIRE_GPU();
  run_cases(mask_cases(AttentionVersion::kTiled), AttentionVersion::kTiled);
}
MINI_TEST(Flash, MatchesTheReferenceOnTheShapeGrid) {
  REQUIRE_GPU();
  run_cases(shape_cases(AttentionVersion::kFlash), AttentionVersion::kFlash);
}
MINI_TEST(Flash, MatchesTheReferenceForEveryMask) {
  REQUIRE_GPU();
  run_cases(mask_cases(AttentionVersion::kFlash), AttentionVersion::kFlash);
}
MINI_TEST(Flash, LongSequencesCrossManyTiles) {
  REQUIRE_GPU();
  std::vector<Case> cases;
  for (int64_t d : {64, 128}) {
    for (bool causal : {false, true}) {
      Case c;
      c.b = 1;
      c.h = 2;
      c.nq = 515;
      c.nk = 1031;
      c.d = c.dv = d;
      c.causal = causal;
      c.lengths = !causal;
      c.dtype = causal ? ElementType::kFloat16 : ElementType::kBFloat16;
      cases.push_back(c);
    }
  }
  run_cases(cases, AttentionVersion::kFlash);
}
MINI_TEST(Cublas, MatchesTheReferenceOnTheShapeGrid) {
  REQUIRE_GPU();
  run_cases(shape_cases(AttentionVersion::kCublas), AttentionVersion::kCublas);
}
MINI_TEST(Cublas, MatchesTheReferenceForEveryMask) {
  REQUIRE_GPU();
  std::vector<Case> cases = mask_cases(AttentionVersion::kCublas);
  Case strided = cases.front();
  strided.layout = 2;  // no unit last stride: the forward falls back to a fused version
  cases.push_back(strided);
  run_cases(cases, AttentionVersion::kCublas);
}

// --- Fully masked rows: exact zeros, -inf log-sum-exp, zero gradients, in every version.

MINI_TEST(MaskedRows, GiveZerosAndMinusInfinityInEveryVersion) {
  REQUIRE_GPU();
  for (AttentionVersion version : {AttentionVersion::kNaive, AttentionVersion::kTiled,
                                   AttentionVersion::kFlash, AttentionVersion::kCublas}) {
    for (ElementType dtype : {ElementType::kFloat32, ElementType::kBFloat16, ElementType::kFloat16}) {
      Case c;
      c.b = 2;
      c.h = 2;
      c.nq = 33;
      c.nk = 77;
      c.d = c.dv = 64;
      c.lengths = true;  // batch 1 sees no key at all
      c.bias = BiasKind::kPerHead;
      c.dtype = dtype;
      const Inputs in = make_inputs(c, 5);
      std::vector<std::string> problems;
      const Results r = gpu_results(c, in, version, &problems);
      const std::string where = std::string(attention_version_name(version)) + " " + c.name();
      MINI_EXPECT(problems.empty()) << where << ": " << problems.front();
      MINI_EXPECT(r.out[1].abs().max().item<float>() == 0.f) << where << " out";
      MINI_EXPECT((r.lse[1] == kMinusInfinity()).all().item<bool>()) << where << " lse";
      MINI_EXPECT(torch::isfinite(r.lse[0]).all().item<bool>()) << where << " lse of batch 0";
      for (const auto& g : {r.dq, r.dk, r.dv, r.dbias}) {
        MINI_EXPECT(!g.isnan().any().item<bool>()) << where << " NaN gradient";
        MINI_EXPECT(g[1].abs().max().item<float>() == 0.f) << where << " nonzero gradient";
      }
    }
  }
}

// --- Small shapes for compute-sanitizer (memcheck, racecheck): every version, every mask.

MINI_TEST(Sanitize, EveryVersionOnSmallShapes) {
  REQUIRE_GPU();
  for (AttentionVersion version : {AttentionVersion::kNaive, AttentionVersion::kTiled,
                                   AttentionVersion::kFlash, AttentionVersion::kCublas}) {
    for (int64_t d : {64, 128}) {
      Case c;
      c.b = 3;  // key lengths: half, none, all
      c.h = 2;
      c.nq = 37;
      c.nk = 70;
      c.d = c.dv = d;
      c.causal = true;
      c.lengths = true;
      c.groups = true;
      c.bias = BiasKind::kPerBatch;
      c.dtype = version == AttentionVersion::kFlash ? ElementType::kBFloat16 : ElementType::kFloat32;
      const std::string report = check_case(c, version);
      MINI_EXPECT(report.empty()) << attention_version_name(version) << " " << c.name() << report;
    }
  }
}

// --- LibTorch's scaled_dot_product_attention on the GPU, same dtype, masks as a float mask.

MINI_TEST(Sdpa, OpMatchesScaledDotProductAttentionOnTheGpu) {
  REQUIRE_GPU();
  for (ElementType dtype : {ElementType::kBFloat16, ElementType::kFloat16, ElementType::kFloat32}) {
    for (bool causal : {false, true}) {
      for (int64_t d : {64, 128}) {
        Case c;
        c.b = 2;
        c.h = 3;
        c.nq = 100;
        c.nk = 300;
        c.d = c.dv = d;
        c.causal = causal;
        c.bias = BiasKind::kPerHead;
        c.dtype = dtype;
        const Inputs in = make_inputs(c, 7);
        const Results gold = reference_results(c, in);
        const torch::Device cuda(torch::kCUDA);
        auto q = in.q.to(cuda).detach().requires_grad_(true);
        auto k = in.k.to(cuda).detach().requires_grad_(true);
        auto v = in.v.to(cuda).detach().requires_grad_(true);
        auto mask = in.bias.to(cuda, scalar_type(dtype))
                        .masked_fill(in.visible.to(cuda).logical_not(), -INFINITY);
        auto theirs = at::scaled_dot_product_attention(q, k, v, mask);
        theirs.backward(in.dout.to(cuda));
        auto q2 = in.q.to(cuda).detach().requires_grad_(true);
        auto k2 = in.k.to(cuda).detach().requires_grad_(true);
        auto v2 = in.v.to(cuda).detach().requires_grad_(true);
        AttentionOptions o;
        o.causal = causal;
        o.bias = in.bias.to(cuda);
        auto ours = chorus::attention(q2, k2, v2, o);
        ours.backward(in.dout.to(cuda));
        const double floor = floor_for(dtype);
        const auto cpu = [](const torch::Tensor& t) { return t.detach().to(torch::kCPU, torch::kFloat32); };
        for (const std::string& p :
             {compare("out vs sdpa", cpu(ours), cpu(theirs), gold.out, floor),
              compare("dq vs sdpa", cpu(q2.grad()), cpu(q.grad()), gold.dq, floor),
              compare("dk vs sdpa", cpu(k2.grad()), cpu(k.grad()), gold.dk, floor),
              compare("dv vs sdpa", cpu(v2.grad()), cpu(v.grad()), gold.dv, floor)}) {
          MINI_EXPECT(p.empty()) << c.name() << ": " << p;
        }
      }
    }
  }
}

// --- The op on CUDA tensors through autograd against the op on the CPU.

MINI_TEST(Op, CudaAutogradMatchesTheCpuOp) {
  REQUIRE_GPU();
  int i = 0;
  for (ElementType dtype : {ElementType::kFloat32, ElementType::kBFloat16, ElementType::kFloat16}) {
    for (int64_t d : {64, 128, 40}) {
      Case c;
      c.b = 3;
      c.h = 2;
      c.nq = 45;
      c.nk = 90;
      c.d = c.dv = d;
      c.causal = i % 2 == 0;
      c.lengths = true;
      c.groups = i % 3 == 1;
      c.bias = BiasKind::kPerBatch;  // its gradient is reduced over the heads
      c.layout = i % 3;
      c.dtype = dtype;
      ++i;
      const Inputs in = make_inputs(c, 31);
      const torch::Device cuda(torch::kCUDA);
      // The CPU op in float32 on the same rounded inputs: the gold for every dtype.
      auto run = [&](const torch::Device& device, torch::ScalarType type, Results* r) {
        auto q = in.q.to(device, type).detach().requires_grad_(true);
        auto k = in.k.to(device, type).detach().requires_grad_(true);
        auto v = in.v.to(device, type).detach().requires_grad_(true);
        AttentionOptions o;
        o.causal = c.causal;
        o.key_lengths = in.lengths;  // mask tensors stay on the CPU: the op moves them
        o.query_groups = in.query_groups;
        o.key_groups = in.key_groups;
        o.group_visibility = in.visibility;
        o.bias = in.bias.to(device).detach().requires_grad_(true);
        o.return_probabilities = true;
        const AttentionOutput out = attention_forward(q, k, v, o);
        out.output.backward(in.dout.to(device, type));
        r->out = out.output.detach().to(torch::kCPU, torch::kFloat32);
        r->lse = out.logsumexp.to(torch::kCPU);
        r->dq = q.grad().to(torch::kCPU, torch::kFloat32);
        r->dk = k.grad().to(torch::kCPU, torch::kFloat32);
        r->dv = v.grad().to(torch::kCPU, torch::kFloat32);
        r->dbias = o.bias.grad().to(torch::kCPU, torch::kFloat32);
        return out;
      };
      Results gold, got;
      const AttentionOutput cpu_out = run(torch::kCPU, torch::kFloat32, &gold);
      const AttentionOutput gpu_out = run(cuda, scalar_type(dtype), &got);
      MINI_EXPECT(gpu_out.output.scalar_type() == scalar_type(dtype)) << c.name();
      MINI_EXPECT(gpu_out.output.is_cuda()) << c.name();
      const Results naive = naive_results(c, in);
      // The naive formula's dbias is per element; the op reduces it over the heads.
      const torch::Tensor naive_dbias = naive.dbias.sum(1, /*keepdim=*/true);
      const double floor = floor_for(dtype);
      for (const std::string& p :
           {compare("op out", got.out, naive.out, gold.out, floor),
            compare_lse(got.lse, gold.lse, dtype),
            compare("op dq", got.dq, naive.dq, gold.dq, floor),
            compare("op dk", got.dk, naive.dk, gold.dk, floor),
            compare("op dv", got.dv, naive.dv, gold.dv, floor),
            compare("op dbias", got.dbias, naive_dbias, gold.dbias, floor),
            compare("op probabilities", gpu_out.probabilities.to(torch::kCPU),
                    cpu_out.probabilities, cpu_out.probabilities, dtype == ElementType::kFloat32 ? 1e-5 : 1e-2)}) {
        MINI_EXPECT(p.empty()) << c.name() << ": " << p;
      }
    }
  }
}

// The op queues its kernels on LibTorch's current stream: on a side stream (not synchronised with
// the default one) the results equal the default stream's.
MINI_TEST(Op, RunsOnTheCurrentStream) {
  REQUIRE_GPU();
  torch::manual_seed(17);
  const auto opts = torch::TensorOptions().dtype(torch::kBFloat16).device(torch::kCUDA);
  const auto q = torch::randn({4, 8, 1000, 64}, opts), k = torch::randn({4, 8, 1500, 64}, opts),
             v = torch::randn({4, 8, 1500, 64}, opts), dout = torch::randn({4, 8, 1000, 64}, opts);
  AttentionOptions o;
  o.causal = true;
  auto run = [&](torch::Tensor* out, torch::Tensor* dq) {
    auto qq = q.detach().requires_grad_(true);
    *out = chorus::attention(qq, k, v, o);
    out->backward(dout);
    *dq = qq.grad();
  };
  torch::Tensor out0, dq0, out1, dq1;
  run(&out0, &dq0);
  synchronize("default stream");
  {
    const c10::cuda::CUDAStream side = c10::cuda::getStreamFromPool();
    const c10::cuda::CUDAStreamGuard guard(side);
    run(&out1, &dq1);
    side.synchronize();
  }
  MINI_EXPECT(torch::equal(out0, out1)) << "forward differs on a side stream";
  // dQ sums with atomics in an unspecified order: equal up to rounding, not bit for bit.
  MINI_EXPECT(max_abs_diff(dq0, dq1) <= 1e-2 * std::max(1.0, dq0.abs().max().item<double>()))
      << "backward differs on a side stream by " << max_abs_diff(dq0, dq1);
}

// Forward kernels make no atomic sums: two runs give identical bits.
MINI_TEST(Determinism, ForwardIsBitwiseRepeatable) {
  REQUIRE_GPU();
  for (AttentionVersion version : {AttentionVersion::kNaive, AttentionVersion::kTiled,
                                   AttentionVersion::kFlash, AttentionVersion::kCublas}) {
    Case c;
    c.b = 2;
    c.h = 3;
    c.nq = 150;
    c.nk = 333;
    c.d = c.dv = 64;
    c.causal = true;
    c.bias = BiasKind::kPerHead;
    c.dtype = version == AttentionVersion::kFlash ? ElementType::kBFloat16 : ElementType::kFloat32;
    const Inputs in = make_inputs(c, 3);
    std::vector<std::string> problems;
    const Results first = gpu_results(c, in, version, &problems);
    const Results second = gpu_results(c, in, version, &problems);
    MINI_EXPECT(problems.empty()) << attention_version_name(version) << ": " << problems.front();
    MINI_EXPECT(torch::equal(first.out, second.out)) << attention_version_name(version) << " out";
    MINI_EXPECT(torch::equal(first.lse.nan_to_num(), second.lse.nan_to_num()))
        << attention_version_name(version) << " lse";
    MINI_EXPECT(torch::equal(first.dk, second.dk)) << attention_version_name(version) << " dk";
    MINI_EXPECT(torch::equal(first.dv, second.dv)) << attention_version_name(version) << " dv";
  }
}

MINI_TEST(Op, RejectsFloat16OnTheCpuAndNamesTheDevice) {
  // Runs without a GPU: the checks come before any kernel.
  const auto q = torch::randn({1, 1, 4, 8}).to(torch::kFloat16);
  try {
    chorus::attention(q, q, q);
    MINI_EXPECT(false) << "float16 on the CPU must throw";
  } catch (const Error& e) {
    MINI_EXPECT(std::string(e.what()).find("float32 or bfloat16") != std::string::npos) << e.what();
  }
}

// --- Argument checks that come before any CUDA call (no GPU needed).

std::string error_of(const std::function<void()>& call) {
  try {
    call();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

MINI_TEST(Arguments, BadArgumentsThrowBeforeAnyKernel) {
  AttentionParams p;
  p.dtype = ElementType::kBFloat16;
  p.batch = 2;
  p.heads = 3;
  p.nq = 5;
  p.nk = 7;
  p.d = p.dv = 64;
  float dummy = 0.f;
  AttentionForwardOutputs o;
  o.out.data = &dummy;
  o.logsumexp = &dummy;
  AttentionBackwardArgs a;
  a.logsumexp = &dummy;
  a.dq.data = a.dk.data = a.dv.data = &dummy;

  std::string message = error_of([&] {
    attention_backward_cuda(p, a, AttentionVersion::kFlash, nullptr, nullptr, 0);
  });
  MINI_EXPECT(message.find("workspace") != std::string::npos &&
              message.find(std::to_string(attention_backward_cuda_workspace_bytes(
                  p, AttentionVersion::kFlash))) != std::string::npos)
      << "missing workspace: '" << message << "'";

  AttentionParams bad = p;
  bad.dtype = static_cast<ElementType>(7);
  message = error_of([&] { attention_forward_cuda(bad, o, AttentionVersion::kTiled, nullptr, nullptr, 0); });
  MINI_EXPECT(message.find("element type") != std::string::npos) << "'" << message << "'";

  bad = p;
  bad.nk = -1;
  message = error_of([&] { attention_forward_cuda(bad, o, AttentionVersion::kTiled, nullptr, nullptr, 0); });
  MINI_EXPECT(message.find("negative size") != std::string::npos && message.find("-1") != std::string::npos)
      << "'" << message << "'";

  bad = p;
  bad.nq = int64_t{1} << 40;
  message = error_of([&] { attention_forward_cuda(bad, o, AttentionVersion::kTiled, nullptr, nullptr, 0); });
  MINI_EXPECT(message.find("32-bit") != std::string::npos) << "'" << message << "'";

  bad = p;
  uint8_t visibility = 1;
  bad.mask.group_visibility = &visibility;  // without query_groups and key_groups
  message = error_of([&] { attention_forward_cuda(bad, o, AttentionVersion::kTiled, nullptr, nullptr, 0); });
  MINI_EXPECT(message.find("group") != std::string::npos) << "'" << message << "'";

  AttentionForwardOutputs missing;
  message = error_of([&] { attention_forward_cuda(p, missing, AttentionVersion::kTiled, nullptr, nullptr, 0); });
  MINI_EXPECT(message.find("logsumexp") != std::string::npos) << "'" << message << "'";

  // Empty problems return before touching the device.
  AttentionParams empty = p;
  empty.nq = 0;
  MINI_EXPECT(error_of([&] {
                attention_forward_cuda(empty, missing, AttentionVersion::kFlash, nullptr, nullptr, 0);
              }).empty());
}

// --- The dispatcher (no GPU needed).

CudaDeviceTraits ampere() {
  CudaDeviceTraits t;
  t.major = 8;
  t.minor = 0;
  t.max_shared_bytes_per_block = 166912;  // A100: 163 KB opt-in
  return t;
}

MINI_TEST(Dispatch, ChoosesTheFastestVersionThatTakesTheCase) {
  const CudaDeviceTraits a100 = ampere();
  MINI_EXPECT(choose_version(a100, ElementType::kBFloat16, 64, 64, true) == AttentionVersion::kFlash);
  MINI_EXPECT(choose_version(a100, ElementType::kFloat16, 128, 128, true) == AttentionVersion::kFlash);
  MINI_EXPECT(choose_version(a100, ElementType::kFloat32, 64, 64, true) == AttentionVersion::kTiled);
  MINI_EXPECT(choose_version(a100, ElementType::kBFloat16, 80, 80, true) == AttentionVersion::kTiled);
  MINI_EXPECT(choose_version(a100, ElementType::kBFloat16, 64, 32, false) == AttentionVersion::kTiled);
  MINI_EXPECT(choose_version(a100, ElementType::kFloat32, 4096, 4096, false) == AttentionVersion::kNaive);
  CudaDeviceTraits turing = a100;
  turing.major = 7;
  turing.minor = 5;
  MINI_EXPECT(choose_version(turing, ElementType::kBFloat16, 64, 64, true) == AttentionVersion::kTiled);
  // 48 KB of shared memory: D = 128's tiles (70 KB forward) do not fit, D = 32's do.
  CudaDeviceTraits small = a100;
  small.max_shared_bytes_per_block = 48 * 1024;
  MINI_EXPECT(choose_version(small, ElementType::kFloat32, 128, 128, false) == AttentionVersion::kNaive);
  MINI_EXPECT(choose_version(small, ElementType::kFloat32, 32, 32, true) == AttentionVersion::kTiled);
}

MINI_TEST(Dispatch, VersionsStepDownTheLadder) {
  const CudaDeviceTraits a100 = ampere();
  AttentionParams p;
  p.dtype = ElementType::kFloat32;
  p.batch = p.heads = 1;
  p.nq = p.nk = 16;
  p.d = p.dv = 64;
  p.q.strides[3] = p.k.strides[3] = p.v.strides[3] = 1;
  p.q.strides[2] = p.k.strides[2] = p.v.strides[2] = 64;
  MINI_EXPECT(effective_forward_version(a100, p, AttentionVersion::kFlash) == AttentionVersion::kTiled);
  MINI_EXPECT(effective_forward_version(a100, p, AttentionVersion::kCublas) == AttentionVersion::kCublas);
  MINI_EXPECT(effective_backward_version(a100, p, AttentionVersion::kCublas) == AttentionVersion::kCublas);
  p.dtype = ElementType::kBFloat16;
  p.nq = 0;  // nothing for cuBLAS to multiply: the fused kernels write the zeros
  MINI_EXPECT(effective_backward_version(a100, p, AttentionVersion::kCublas) == AttentionVersion::kFlash);
  p.nq = 16;
  p.k.strides[3] = 16;  // no unit last stride: cuBLAS cannot read K's rows
  MINI_EXPECT(effective_forward_version(a100, p, AttentionVersion::kCublas) == AttentionVersion::kFlash);
  MINI_EXPECT(effective_backward_version(a100, p, AttentionVersion::kCublas) == AttentionVersion::kFlash);
  p.d = p.dv = 2000;
  MINI_EXPECT(effective_forward_version(a100, p, AttentionVersion::kTiled) == AttentionVersion::kNaive);
}

MINI_TEST(Dispatch, TheEnvironmentOverridesTheChoice) {
  const CudaDeviceTraits a100 = ampere();
  for (AttentionVersion v : {AttentionVersion::kNaive, AttentionVersion::kTiled,
                             AttentionVersion::kFlash, AttentionVersion::kCublas}) {
    AttentionVersion parsed;
    MINI_EXPECT(parse_attention_version(attention_version_name(v), &parsed) && parsed == v);
    setenv("CHORUS_ATTENTION_CUDA_VERSION", attention_version_name(v), 1);
    MINI_EXPECT(requested_version(a100, ElementType::kBFloat16, 64, 64, true) == v)
        << attention_version_name(v);
  }
  setenv("CHORUS_ATTENTION_CUDA_VERSION", "fastest", 1);
  try {
    requested_version(a100, ElementType::kBFloat16, 64, 64, true);
    MINI_EXPECT(false) << "an unknown version name must throw";
  } catch (const Error& e) {
    MINI_EXPECT(std::string(e.what()).find("fastest") != std::string::npos) << e.what();
  }
  unsetenv("CHORUS_ATTENTION_CUDA_VERSION");
  MINI_EXPECT(requested_version(a100, ElementType::kBFloat16, 64, 64, true) == AttentionVersion::kFlash);
}

}  // namespace
}  // namespace chorus::kernels::cuda
