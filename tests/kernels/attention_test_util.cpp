// Test helpers for the attention op (see attention_test_util.h).
#include "tests/kernels/attention_test_util.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <limits>
#include <sstream>

namespace chorus::testing {

std::string AttentionCase::name() const {
  std::ostringstream out;
  out << "B" << batch << "H" << heads << "Q" << nq << "K" << nk << "D" << d << "Dv" << dv;
  if (causal) out << "_causal";
  if (key_lengths) out << "_lengths";
  if (groups) out << "_groups";
  if (bias == BiasKind::kFull) out << "_bias";
  if (bias == BiasKind::kPerHead) out << "_biasH";
  if (bias == BiasKind::kPerBatch) out << "_biasB";
  if (non_contiguous) out << "_strided";
  out << (dtype == torch::kBFloat16 ? "_bf16" : "_fp32");
  return out.str();
}

namespace {

// A [B, H, N, E] tensor in one of three memory layouts: contiguous; heads and rows swapped in
// memory; or the last dimension strided (the transpose of a contiguous [B, H, E, N]).
torch::Tensor make_4d(int64_t b, int64_t h, int64_t n, int64_t e, torch::ScalarType dtype,
                      int layout) {
  const auto opts = torch::TensorOptions().dtype(torch::kFloat32);
  torch::Tensor t;
  switch (layout) {
    case 1:
      t = torch::randn({b, n, h, e}, opts).permute({0, 2, 1, 3});
      break;
    case 2:
      t = torch::randn({b, h, e, n}, opts).transpose(2, 3);
      break;
    default:
      t = torch::randn({b, h, n, e}, opts);
      break;
  }
  // Converting keeps the strides of a non-contiguous tensor (preserve format).
  return t.to(dtype);
}

}  // namespace

AttentionInputs make_inputs(const AttentionCase& c, uint64_t seed) {
  torch::manual_seed(seed);
  AttentionInputs in;
  in.q = make_4d(c.batch, c.heads, c.nq, c.d, c.dtype, c.non_contiguous ? 1 : 0);
  in.k = make_4d(c.batch, c.heads, c.nk, c.d, c.dtype, c.non_contiguous ? 2 : 0);
  in.v = make_4d(c.batch, c.heads, c.nk, c.dv, c.dtype, c.non_contiguous ? 1 : 0);
  in.dout = make_4d(c.batch, c.heads, c.nq, c.dv, c.dtype, c.non_contiguous ? 2 : 0);
  AttentionOptions& o = in.options;
  o.causal = c.causal;
  auto visible = torch::ones({c.batch, 1, c.nq, c.nk}, torch::kBool);
  const auto rows = torch::arange(c.nq).view({c.nq, 1});
  const auto cols = torch::arange(c.nk).view({1, c.nk});
  if (c.causal) visible = visible & (cols <= rows + (c.nk - c.nq)).view({1, 1, c.nq, c.nk});
  if (c.key_lengths) {
    // Batch 0 keeps about half its keys, batch 1 none (fully masked rows), batch 2 all of them.
    std::vector<int64_t> lengths;
    for (int64_t b = 0; b < c.batch; ++b) {
      lengths.push_back(b % 3 == 0 ? c.nk / 2 + 1 : b % 3 == 1 ? 0 : c.nk);
    }
    o.key_lengths = torch::tensor(lengths, torch::kInt64);
    visible = visible & (cols.view({1, 1, 1, c.nk}) < o.key_lengths.view({c.batch, 1, 1, 1}));
  }
  if (c.groups) {
    // Three agents; group 2's queries see nothing (fully masked rows), the others see a subset.
    o.group_visibility = torch::tensor({1, 0, 1, 1, 1, 0, 0, 0, 0}, torch::kBool).view({3, 3});
    o.query_groups = torch::randint(0, 3, {c.batch, c.nq}, torch::kInt64);
    o.key_groups = torch::randint(0, 3, {c.nk}, torch::kInt64);
    const auto pair = o.query_groups.view({c.batch, c.nq, 1}) * 3 + o.key_groups.view({1, 1, c.nk});
    visible = visible & o.group_visibility.flatten().index({pair}).view({c.batch, 1, c.nq, c.nk});
  }
  switch (c.bias) {
    case BiasKind::kFull:
      o.bias = torch::randn({c.batch, c.heads, c.nq, c.nk});
      break;
    case BiasKind::kPerHead:
      o.bias = torch::randn({1, c.heads, c.nq, c.nk});
      break;
    case BiasKind::kPerBatch:
      o.bias = torch::randn({c.batch, 1, c.nq, c.nk});
      break;
    case BiasKind::kNone:
      break;
  }
  in.visible = visible;
  return in;
}

torch::Tensor plain_attention(const torch::Tensor& q, const torch::Tensor& k,
                              const torch::Tensor& v, const torch::Tensor& visible,
                              const torch::Tensor& bias, double scale) {
  auto s = torch::matmul(q, k.transpose(-2, -1)) * scale;
  if (bias.defined()) s = s + bias.to(s.scalar_type());
  const auto any = visible.any(-1, /*keepdim=*/true);
  s = s.masked_fill(visible.logical_not(), -std::numeric_limits<double>::infinity());
  s = s.masked_fill(any.logical_not(), 0.0);
  const auto p = torch::softmax(s, -1) * any.to(s.scalar_type());
  return torch::matmul(p, v);
}

AttentionResult plain_result(const AttentionInputs& in, torch::ScalarType dtype) {
  auto q = in.q.detach().to(dtype).requires_grad_(true);
  auto k = in.k.detach().to(dtype).requires_grad_(true);
  auto v = in.v.detach().to(dtype).requires_grad_(true);
  torch::Tensor bias;
  if (in.options.bias.defined()) bias = in.options.bias.detach().to(dtype).requires_grad_(true);
  const double scale = in.options.scale.value_or(1.0 / std::sqrt(static_cast<double>(q.size(3))));
  auto out = plain_attention(q, k, v, in.visible, bias, scale);
  (out * in.dout.to(dtype)).sum().backward();
  AttentionResult r{out.detach(), q.grad(), k.grad(), v.grad(), {}};
  if (bias.defined()) r.dbias = bias.grad();
  return r;
}

AttentionResult op_result(const AttentionInputs& in, AttentionCpuKernel kernel) {
  auto q = in.q.detach().requires_grad_(true);
  auto k = in.k.detach().requires_grad_(true);
  auto v = in.v.detach().requires_grad_(true);
  AttentionOptions o = in.options;
  if (o.bias.defined()) o.bias = o.bias.detach().requires_grad_(true);
  auto out = attention_forward_with(kernel, q, k, v, o).output;
  out.backward(in.dout);
  AttentionResult r{out.detach(), q.grad(), k.grad(), v.grad(), {}};
  if (o.bias.defined()) r.dbias = o.bias.grad();
  return r;
}

double max_abs_diff(const torch::Tensor& a, const torch::Tensor& b) {
  if (a.numel() == 0) return 0;
  return (a.to(torch::kFloat64) - b.to(torch::kFloat64)).abs().max().item<double>();
}

void expect_close_to_gold(const std::string& what, const torch::Tensor& got,
                          const torch::Tensor& naive, const torch::Tensor& gold, double floor) {
  ASSERT_TRUE(got.defined()) << what << ": missing";
  ASSERT_EQ(got.sizes(), gold.sizes()) << what;
  ASSERT_FALSE(got.to(torch::kFloat64).isnan().any().item<bool>()) << what << ": NaN";
  const double scale = gold.numel() == 0 ? 0.0 : gold.abs().max().item<double>();
  const double tol = 2.0 * max_abs_diff(naive, gold) + floor * std::max(scale, 1.0);
  const auto err = (got.to(torch::kFloat64) - gold.to(torch::kFloat64)).abs();
  const double worst = got.numel() == 0 ? 0.0 : err.max().item<double>();
  if (worst <= tol) return;
  const auto bad = (err > tol).nonzero();
  std::ostringstream out;
  out << what << ": max error " << worst << " > tolerance " << tol << " (naive error "
      << max_abs_diff(naive, gold) << ", max |gold| " << scale << "); first mismatches:";
  const auto flat_got = got.to(torch::kFloat64);
  for (int64_t i = 0; i < std::min<int64_t>(bad.size(0), 5); ++i) {
    std::vector<at::indexing::TensorIndex> idx;
    for (int64_t d = 0; d < bad.size(1); ++d) idx.emplace_back(bad[i][d].item<int64_t>());
    out << "\n  at " << bad[i].sizes() << " " << bad[i].to(torch::kInt64).unsqueeze(0) << " got "
        << flat_got.index(idx).item<double>() << " want "
        << gold.to(torch::kFloat64).index(idx).item<double>();
  }
  ADD_FAILURE() << out.str();
}

}  // namespace chorus::testing
