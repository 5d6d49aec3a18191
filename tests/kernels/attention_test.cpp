// chorus::attention against the autograd of the plain formula (float64 gold), the naive
// reference, LibTorch's scaled_dot_product_attention and finite differences; masks, strides,
// dtypes, fully masked rows, out-of-bounds writes and bad input.
#include <ATen/Parallel.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "common/error.h"
#include "kernels/attention.h"
#include "tests/kernels/attention_test_util.h"

namespace chorus::testing {
namespace {

// Floors of the tolerance, relative to max(max |gold|, 1) for unit-normal inputs: the error a
// correct kernel may add beyond twice the naive formula's (summation order, the rounding of O
// in the backward's rowsum(dO * O), the output's own rounding).
double floor_for(torch::ScalarType dtype) { return dtype == torch::kBFloat16 ? 4e-3 : 2e-5; }

// Cost of the naive reference in multiply-adds; beyond this budget the (slow, scalar, double)
// reference is skipped for that case and only the float64 gold is used.
bool reference_affordable(const AttentionCase& c) {
  return c.batch * c.heads * c.nq * c.nk * (c.d + c.dv) <= 4'000'000;
}

void check_case(const AttentionCase& c) {
  const AttentionInputs in = make_inputs(c, 1234);
  const AttentionResult gold = plain_result(in, torch::kFloat64);
  const AttentionResult naive = plain_result(in, c.dtype);
  const AttentionResult fast = op_result(in, AttentionCpuKernel::kFast);
  const double floor = floor_for(c.dtype);
  expect_close_to_gold("out", fast.out, naive.out, gold.out, floor);
  expect_close_to_gold("dq", fast.dq, naive.dq, gold.dq, floor);
  expect_close_to_gold("dk", fast.dk, naive.dk, gold.dk, floor);
  expect_close_to_gold("dv", fast.dv, naive.dv, gold.dv, floor);
  if (gold.dbias.defined())
    expect_close_to_gold("dbias", fast.dbias, naive.dbias, gold.dbias, floor);
  EXPECT_EQ(fast.out.scalar_type(), c.dtype);
  EXPECT_EQ(fast.dq.scalar_type(), c.dtype);
  if (reference_affordable(c)) {
    const AttentionResult ref = op_result(in, AttentionCpuKernel::kReference);
    expect_close_to_gold("reference out", ref.out, naive.out, gold.out, floor);
    expect_close_to_gold("reference dq", ref.dq, naive.dq, gold.dq, floor);
    expect_close_to_gold("reference dk", ref.dk, naive.dk, gold.dk, floor);
    expect_close_to_gold("reference dv", ref.dv, naive.dv, gold.dv, floor);
    if (gold.dbias.defined()) {
      expect_close_to_gold("reference dbias", ref.dbias, naive.dbias, gold.dbias, floor);
    }
    // The fast kernel against the reference directly, at the same tolerance.
    expect_close_to_gold("fast vs reference out", fast.out, naive.out, ref.out, 2 * floor);
    expect_close_to_gold("fast vs reference dk", fast.dk, naive.dk, ref.dk, 2 * floor);
  }
}

// --- Shapes: every (Nq, Nk) pair of {1, 7, 64, 129, 1000}; B, H, D, Dv, masks and layouts rotate
// so that each value of each axis appears, Dv != D in most cases.

std::vector<AttentionCase> shape_cases(int64_t only_nq) {
  const int64_t ns[] = {1, 7, 64, 129, 1000};
  const int64_t ds[] = {16, 64, 80, 128};
  std::vector<AttentionCase> cases;
  int i = 0;
  for (int64_t nq : ns) {
    for (int64_t nk : ns) {
      for (auto dtype : {torch::kFloat32, torch::kBFloat16}) {
        AttentionCase c;
        const bool large = nq * nk >= 64 * 1000;
        c.batch = large ? 1 : (i % 2 ? 3 : 1);
        c.heads = large ? (i % 2 ? 2 : 1) : (i % 3 ? 4 : 1);
        c.nq = nq;
        c.nk = nk;
        c.d = ds[i % 4];
        if (large && c.d > 64) c.d = 64;
        c.dv = i % 5 == 0 ? c.d : (i % 2 ? c.d + 16 : c.d / 2);
        c.causal = i % 4 == 1;
        c.key_lengths = i % 6 == 2;
        c.groups = i % 7 == 3;
        c.bias = i % 5 == 4 ? BiasKind::kPerHead : BiasKind::kNone;
        c.non_contiguous = i % 3 == 0;
        c.dtype = dtype;
        if (nq == only_nq) cases.push_back(c);
        ++i;
      }
    }
  }
  return cases;
}

// One test per Nq (each test process loads LibTorch once, which costs more than a small case).
class AttentionShapes : public ::testing::TestWithParam<int64_t> {};
TEST_P(AttentionShapes, MatchesGoldAndReference) {
  for (const AttentionCase& c : shape_cases(GetParam())) {
    SCOPED_TRACE(c.name());
    check_case(c);
  }
}
INSTANTIATE_TEST_SUITE_P(Grid, AttentionShapes, ::testing::Values(1, 7, 64, 129, 1000),
                         [](const auto& info) { return "Nq" + std::to_string(info.param); });

// --- Masks: every combination of causal x key lengths x groups x bias kind, both dtypes, on a
// rectangular shape that crosses block boundaries.

std::vector<AttentionCase> mask_cases(BiasKind bias) {
  std::vector<AttentionCase> cases;
  for (int combo = 0; combo < 32; ++combo) {
    AttentionCase c;
    c.batch = 3;
    c.heads = 2;
    c.nq = 70;
    c.nk = 150;
    c.d = 32;
    c.dv = 48;
    c.causal = combo & 1;
    c.key_lengths = combo & 2;
    c.groups = combo & 4;
    c.bias = static_cast<BiasKind>((combo >> 3) & 3);
    c.non_contiguous = combo % 3 == 1;
    c.dtype = combo % 2 ? torch::kBFloat16 : torch::kFloat32;
    if (c.bias == bias) cases.push_back(c);
  }
  return cases;
}

std::string bias_kind_name(BiasKind kind) {
  switch (kind) {
    case BiasKind::kFull:
      return "FullBias";
    case BiasKind::kPerHead:
      return "PerHeadBias";
    case BiasKind::kPerBatch:
      return "PerBatchBias";
    case BiasKind::kNone:
      break;
  }
  return "NoBias";
}

// One test per bias kind, each running the 8 boolean-mask combinations.
class AttentionMasks : public ::testing::TestWithParam<BiasKind> {};
TEST_P(AttentionMasks, MatchesGoldAndReference) {
  for (const AttentionCase& c : mask_cases(GetParam())) {
    SCOPED_TRACE(c.name());
    check_case(c);
  }
}
INSTANTIATE_TEST_SUITE_P(Combinations, AttentionMasks,
                         ::testing::Values(BiasKind::kNone, BiasKind::kFull, BiasKind::kPerHead,
                                           BiasKind::kPerBatch),
                         [](const auto& info) { return bias_kind_name(info.param); });

// --- Few queries (decoding steps: one query per sequence), where the kernel takes one query row
// at a time instead of query blocks: every mask combination, both dtypes, key counts around the
// vector width and a block, queries on both sides of the switch (kFewQueries = 2).

TEST(AttentionFewQueries, MatchesGoldAndReference) {
  int i = 0;
  for (int64_t nq : {1, 2, 3}) {
    for (int64_t nk : {1, 15, 33, 130}) {
      for (int combo = 0; combo < 32; combo += 3) {
        AttentionCase c;
        c.batch = 3;
        c.heads = 2;
        c.nq = nq;
        c.nk = nk;
        c.d = i % 2 ? 64 : 24;
        c.dv = i % 3 ? 32 : 40;
        c.causal = combo & 1;
        c.key_lengths = combo & 2;
        c.groups = combo & 4;
        c.bias = static_cast<BiasKind>((combo >> 3) & 3);
        c.non_contiguous = i % 4 == 1;
        c.dtype = i % 5 == 2 ? torch::kBFloat16 : torch::kFloat32;
        SCOPED_TRACE(c.name());
        check_case(c);
        ++i;
      }
    }
  }
}

// --- Without gradients the op calls the kernel with no autograd node; its results are the
// autograd path's, bit for bit, and carry no graph.

TEST(AttentionInference, NoGradGivesTheAutogradPathsResults) {
  for (int64_t nq : {1, 70}) {
    AttentionCase c;
    c.batch = 2;
    c.heads = 3;
    c.nq = nq;
    c.nk = 90;
    c.d = 32;
    c.dv = 48;
    c.causal = true;
    c.key_lengths = true;
    c.bias = BiasKind::kPerHead;
    SCOPED_TRACE(c.name());
    const AttentionInputs in = make_inputs(c, 99);
    AttentionOptions options = in.options;
    options.return_probabilities = true;
    const auto q = in.q.detach().requires_grad_(true);
    const AttentionOutput recorded = attention_forward(q, in.k, in.v, options);
    ASSERT_TRUE(recorded.output.requires_grad());
    AttentionOutput inferred;
    {
      torch::NoGradGuard no_grad;
      inferred = attention_forward(q, in.k, in.v, options);
    }
    EXPECT_FALSE(inferred.output.requires_grad());
    EXPECT_EQ(inferred.output.grad_fn(), nullptr);
    EXPECT_TRUE(torch::equal(inferred.output, recorded.output.detach()));
    EXPECT_TRUE(torch::equal(inferred.logsumexp, recorded.logsumexp));
    EXPECT_TRUE(torch::equal(inferred.probabilities, recorded.probabilities));
    // Inputs that need no gradient take the same path with gradients enabled.
    const AttentionOutput plain = attention_forward(in.q.detach(), in.k, in.v, options);
    EXPECT_TRUE(torch::equal(plain.output, recorded.output.detach()));
  }
}

// --- LibTorch's own fused attention, same dtype, masks given as an additive float mask.

TEST(AttentionSdpa, MatchesScaledDotProductAttention) {
  for (auto dtype : {torch::kFloat32, torch::kBFloat16}) {
    for (bool causal : {false, true}) {
      AttentionCase c;
      c.batch = 2;
      c.heads = 3;
      c.nq = 100;
      c.nk = 300;
      c.d = 64;
      c.dv = 64;
      c.causal = causal;
      c.bias = BiasKind::kPerHead;
      c.dtype = dtype;
      SCOPED_TRACE(c.name());
      const AttentionInputs in = make_inputs(c, 7);
      const AttentionResult fast = op_result(in, AttentionCpuKernel::kFast);
      const AttentionResult gold = plain_result(in, torch::kFloat64);
      auto q = in.q.detach().requires_grad_(true);
      auto k = in.k.detach().requires_grad_(true);
      auto v = in.v.detach().requires_grad_(true);
      auto mask = in.options.bias.to(dtype).masked_fill(in.visible.logical_not(),
                                                        -std::numeric_limits<float>::infinity());
      auto out = at::scaled_dot_product_attention(q, k, v, mask);
      out.backward(in.dout);
      expect_close_to_gold("out vs sdpa", fast.out, out.detach(), gold.out, floor_for(dtype));
      expect_close_to_gold("dq vs sdpa", fast.dq, q.grad(), gold.dq, floor_for(dtype));
      expect_close_to_gold("dk vs sdpa", fast.dk, k.grad(), gold.dk, floor_for(dtype));
      expect_close_to_gold("dv vs sdpa", fast.dv, v.grad(), gold.dv, floor_for(dtype));
      // And SDPA against the same-dtype naive formula's error: both are "naive" estimates.
      EXPECT_LT(max_abs_diff(fast.out, gold.out), 2 * max_abs_diff(out, gold.out) + 1e-5);
    }
  }
}

TEST(AttentionSdpa, MatchesBuiltInCausalForSquareShapes) {
  torch::manual_seed(3);
  auto q = torch::randn({2, 4, 129, 64});
  auto k = torch::randn({2, 4, 129, 64});
  auto v = torch::randn({2, 4, 129, 64});
  AttentionOptions o;
  o.causal = true;
  const auto ours = attention(q, k, v, o);
  const auto theirs = at::scaled_dot_product_attention(q, k, v, {}, 0.0, /*is_causal=*/true);
  EXPECT_LT(max_abs_diff(ours, theirs), 2e-5);
}

// --- Finite differences: central differences of sum(out * w) (accumulated in double) against
// the analytic gradients, for q, k, v and the bias, on a small fp32 problem with every mask.

TEST(AttentionGradients, AgreeWithFiniteDifferences) {
  AttentionCase c;
  c.batch = 2;
  c.heads = 2;
  c.nq = 5;
  c.nk = 9;
  c.d = 6;
  c.dv = 4;
  c.causal = true;
  c.key_lengths = true;
  c.bias = BiasKind::kPerHead;
  AttentionInputs in = make_inputs(c, 11);
  const AttentionResult analytic = op_result(in, AttentionCpuKernel::kFast);
  auto loss = [&](const AttentionInputs& x) {
    torch::NoGradGuard no_grad;
    const auto out = attention(x.q, x.k, x.v, x.options).to(torch::kFloat64);
    return (out * x.dout.to(torch::kFloat64)).sum().item<double>();
  };
  const float h = 1e-2f;
  auto check = [&](const char* name, torch::Tensor AttentionInputs::*field,
                   const torch::Tensor& grad, bool is_bias) {
    torch::Tensor base = is_bias ? in.options.bias : in.*field;
    base = base.contiguous();
    for (int64_t i = 0; i < base.numel(); i += 7) {
      AttentionInputs plus = in, minus = in;
      auto tp = base.clone(), tm = base.clone();
      tp.view(-1)[i] += h;
      tm.view(-1)[i] -= h;
      if (is_bias) {
        plus.options.bias = tp;
        minus.options.bias = tm;
      } else {
        plus.*field = tp;
        minus.*field = tm;
      }
      const double numeric = (loss(plus) - loss(minus)) / (2.0 * h);
      const double exact = grad.contiguous().view(-1)[i].item<double>();
      EXPECT_NEAR(exact, numeric, 2e-3 + 2e-3 * std::abs(numeric)) << name << " element " << i;
    }
  };
  check("q", &AttentionInputs::q, analytic.dq, false);
  check("k", &AttentionInputs::k, analytic.dk, false);
  check("v", &AttentionInputs::v, analytic.dv, false);
  check("bias", nullptr, analytic.dbias, true);
}

// --- Fully masked rows: zeros and -inf, never NaN, in forward and backward.

TEST(AttentionMaskedRows, GiveZerosNotNaN) {
  for (auto dtype : {torch::kFloat32, torch::kBFloat16}) {
    torch::manual_seed(5);
    auto q = torch::randn({2, 2, 20, 32}).to(dtype).requires_grad_(true);
    auto k = torch::randn({2, 2, 40, 32}).to(dtype).requires_grad_(true);
    auto v = torch::randn({2, 2, 40, 16}).to(dtype).requires_grad_(true);
    AttentionOptions o;
    o.key_lengths = torch::tensor({0, 40}, torch::kInt64);  // batch 0 sees nothing
    o.bias = torch::randn({1, 2, 20, 40}).requires_grad_(true);
    const auto result = attention_forward(q, k, v, o);
    result.output.sum().backward();
    EXPECT_EQ(result.output[0].abs().max().item<float>(), 0.0f);
    EXPECT_TRUE(torch::isinf(result.logsumexp[0]).all().item<bool>());
    EXPECT_TRUE(torch::isfinite(result.logsumexp[1]).all().item<bool>());
    for (const auto& g : {q.grad(), k.grad(), v.grad(), o.bias.grad()}) {
      EXPECT_FALSE(g.to(torch::kFloat32).isnan().any().item<bool>());
    }
    EXPECT_EQ(q.grad()[0].abs().max().item<float>(), 0.0f);
    EXPECT_EQ(k.grad()[0].abs().max().item<float>(), 0.0f);
    EXPECT_EQ(v.grad()[0].abs().max().item<float>(), 0.0f);
  }
}

// --- Probabilities (visualisation) and the log-sum-exp against the plain formula.

TEST(AttentionOutputs, ProbabilitiesAndLogSumExpMatchThePlainFormula) {
  AttentionCase c;
  c.batch = 2;
  c.heads = 3;
  c.nq = 33;
  c.nk = 140;
  c.d = 16;
  c.dv = 8;
  c.causal = true;
  c.groups = true;
  c.bias = BiasKind::kPerBatch;
  AttentionInputs in = make_inputs(c, 21);
  in.options.return_probabilities = true;
  for (auto kernel : {AttentionCpuKernel::kFast, AttentionCpuKernel::kReference}) {
    const auto r = attention_forward_with(kernel, in.q, in.k, in.v, in.options);
    auto s = torch::matmul(in.q.to(torch::kFloat64), in.k.to(torch::kFloat64).transpose(-2, -1)) /
                 std::sqrt(16.0) +
             in.options.bias.to(torch::kFloat64);
    s = s.masked_fill(in.visible.logical_not(), -std::numeric_limits<double>::infinity());
    const auto lse = torch::logsumexp(s, -1);
    const auto any = in.visible.any(-1);
    const auto p =
        torch::softmax(s.masked_fill(any.unsqueeze(-1).logical_not(), 0), -1) * any.unsqueeze(-1);
    ASSERT_TRUE(r.probabilities.defined());
    EXPECT_LT(max_abs_diff(r.probabilities, p), 1e-5);
    const auto finite = torch::isfinite(lse);
    EXPECT_TRUE(torch::equal(finite, torch::isfinite(r.logsumexp)));
    EXPECT_LT(max_abs_diff(r.logsumexp.masked_select(finite), lse.masked_select(finite)), 1e-4);
  }
}

// --- Threads: one and several threads give identical results (the work split never changes
// a sum's order).

TEST(AttentionThreads, ResultsDoNotDependOnTheThreadCount) {
  AttentionCase c;
  c.batch = 2;
  c.heads = 3;
  c.nq = 200;
  c.nk = 170;
  c.d = 64;
  c.dv = 64;
  c.causal = true;
  const AttentionInputs in = make_inputs(c, 8);
  const int saved = at::get_num_threads();
  at::set_num_threads(1);
  const AttentionResult one = op_result(in, AttentionCpuKernel::kFast);
  at::set_num_threads(std::max(2, saved));
  const AttentionResult many = op_result(in, AttentionCpuKernel::kFast);
  at::set_num_threads(saved);
  EXPECT_TRUE(torch::equal(one.out, many.out));
  EXPECT_TRUE(torch::equal(one.dq, many.dq));
  EXPECT_TRUE(torch::equal(one.dk, many.dk));
  EXPECT_TRUE(torch::equal(one.dv, many.dv));
}

}  // namespace
}  // namespace chorus::testing
