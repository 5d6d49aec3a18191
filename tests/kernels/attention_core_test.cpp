// The attention core called directly: sentinel guard zones around every output catch
// out-of-bounds writes; the fast kernel agrees with the reference. And the op's bad-input errors.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "common/error.h"
#include "kernels/attention.h"
#include "kernels/cpu/cpu_isa.h"
#include "kernels/torch/attention_op.h"

namespace chorus::kernels {
namespace {

// A buffer of `size` elements of `bytes` each with guard zones on both sides, filled with a
// byte pattern that no kernel writes.
class GuardedBuffer {
 public:
  static constexpr int64_t kGuardBytes = 4096;
  static constexpr unsigned char kPattern = 0xA5;
  GuardedBuffer(int64_t elements, int64_t bytes)
      : bytes_(elements * bytes),
        storage_(static_cast<size_t>(bytes_ + 2 * kGuardBytes), kPattern) {}
  void* data() { return storage_.data() + kGuardBytes; }
  float* floats() { return static_cast<float*>(data()); }
  // Where the guards were overwritten (empty when intact).
  std::string damage() const {
    for (int64_t i = 0; i < kGuardBytes; ++i) {
      if (storage_[i] != kPattern) return "byte " + std::to_string(i - kGuardBytes) + " before";
      if (storage_[kGuardBytes + bytes_ + i] != kPattern)
        return "byte " + std::to_string(i) + " after";
    }
    return "";
  }

 private:
  int64_t bytes_;
  std::vector<unsigned char> storage_;
};

struct CoreCase {
  int64_t b, h, nq, nk, d, dv;
  bool bf16;
};

// Row-major strides of [B, H, N, E], with rows padded by `pad` elements (so a kernel that writes
// a padded tile would touch the gaps; they are checked too).
void padded_strides(int64_t h, int64_t n, int64_t e, int64_t pad, int64_t* s) {
  s[3] = 1;
  s[2] = e + pad;
  s[1] = n * s[2];
  s[0] = h * s[1];
}

class AttentionGuards : public ::testing::TestWithParam<CoreCase> {};

TEST_P(AttentionGuards, KernelsWriteOnlyTheirOutputs) {
  const CoreCase c = GetParam();
  const ElementType type = c.bf16 ? ElementType::kBFloat16 : ElementType::kFloat32;
  const auto dtype = c.bf16 ? torch::kBFloat16 : torch::kFloat32;
  const int64_t esize = c.bf16 ? 2 : 4;
  const int64_t pad = 3;
  torch::manual_seed(9);
  auto q = torch::randn({c.b, c.h, c.nq, c.d}).to(dtype);
  auto k = torch::randn({c.b, c.h, c.nk, c.d}).to(dtype);
  auto v = torch::randn({c.b, c.h, c.nk, c.dv}).to(dtype);
  auto dout = torch::randn({c.b, c.h, c.nq, c.dv}).to(dtype);
  auto bias = torch::randn({c.b, c.h, c.nq, c.nk});
  auto lengths = torch::full({c.b}, c.nk - 2, torch::kInt64);
  AttentionParams p;
  p.dtype = type;
  p.batch = c.b;
  p.heads = c.h;
  p.nq = c.nq;
  p.nk = c.nk;
  p.d = c.d;
  p.dv = c.dv;
  auto view = [](const torch::Tensor& t) {
    ConstTensorView view;
    view.data = t.data_ptr();
    for (int i = 0; i < 4; ++i) view.strides[i] = t.stride(i);
    return view;
  };
  p.q = view(q);
  p.k = view(k);
  p.v = view(v);
  p.scale = 0.125f;
  p.mask.causal = true;
  p.mask.key_lengths = lengths.data_ptr<int64_t>();
  p.mask.bias = bias.data_ptr<float>();
  for (int i = 0; i < 4; ++i) p.mask.bias_strides[i] = bias.stride(i);

  struct Run {
    GuardedBuffer out, lse, probs, dq, dk, dv, dbias;
  };
  auto make_run = [&] {
    return Run{GuardedBuffer(c.b * c.h * c.nq * (c.dv + pad), esize),
               GuardedBuffer(c.b * c.h * c.nq, 4),
               GuardedBuffer(c.b * c.h * c.nq * c.nk, 4),
               GuardedBuffer(c.b * c.h * c.nq * (c.d + pad), esize),
               GuardedBuffer(c.b * c.h * c.nk * (c.d + pad), esize),
               GuardedBuffer(c.b * c.h * c.nk * (c.dv + pad), esize),
               GuardedBuffer(c.b * c.h * c.nq * c.nk, 4)};
  };
  Run fast = make_run(), ref = make_run();
  for (Run* r : {&fast, &ref}) {
    AttentionForwardOutputs o;
    o.out.data = r->out.data();
    padded_strides(c.h, c.nq, c.dv, pad, o.out.strides);
    o.logsumexp = r->lse.floats();
    o.probabilities = r->probs.floats();
    std::memset(r->dbias.data(), 0, sizeof(float) * c.b * c.h * c.nq * c.nk);
    if (r == &fast) {
      attention_forward_cpu(p, o);
    } else {
      attention_forward_reference(p, o);
    }
    AttentionBackwardArgs a;
    a.out.data = o.out.data;
    std::memcpy(a.out.strides, o.out.strides, sizeof(a.out.strides));
    a.dout = view(dout);
    a.logsumexp = o.logsumexp;
    a.dq.data = r->dq.data();
    padded_strides(c.h, c.nq, c.d, pad, a.dq.strides);
    a.dk.data = r->dk.data();
    padded_strides(c.h, c.nk, c.d, pad, a.dk.strides);
    a.dv.data = r->dv.data();
    padded_strides(c.h, c.nk, c.dv, pad, a.dv.strides);
    a.dbias = r->dbias.floats();
    if (r == &fast) {
      attention_backward_cpu(p, a);
    } else {
      attention_backward_reference(p, a);
    }
    for (const auto& [name, buffer] : {std::pair<const char*, GuardedBuffer*>{"out", &r->out},
                                       {"logsumexp", &r->lse},
                                       {"probabilities", &r->probs},
                                       {"dq", &r->dq},
                                       {"dk", &r->dk},
                                       {"dv", &r->dv},
                                       {"dbias", &r->dbias}}) {
      EXPECT_EQ(buffer->damage(), "") << (r == &fast ? "fast " : "reference ") << name;
    }
  }
  // The row gaps (padding of the strided outputs) are untouched, and the results agree.
  auto as_tensor = [&](GuardedBuffer& g, int64_t n, int64_t e) {
    return torch::from_blob(g.data(), {c.b, c.h, n, e + pad}, dtype).to(torch::kFloat32);
  };
  const double tol = c.bf16 ? 3e-2 : 2e-5;
  const struct {
    const char* name;
    GuardedBuffer *fast, *ref;
    int64_t n, e;
  } outputs[] = {{"out", &fast.out, &ref.out, c.nq, c.dv},
                 {"dq", &fast.dq, &ref.dq, c.nq, c.d},
                 {"dk", &fast.dk, &ref.dk, c.nk, c.d},
                 {"dv", &fast.dv, &ref.dv, c.nk, c.dv}};
  for (const auto& o : outputs) {
    auto f = as_tensor(*o.fast, o.n, o.e), r = as_tensor(*o.ref, o.n, o.e);
    auto gap = torch::from_blob(o.fast->data(), {c.b, c.h, o.n, o.e + pad}, dtype)
                   .slice(3, o.e)
                   .contiguous();
    const auto gap_bytes = static_cast<const unsigned char*>(gap.data_ptr());
    for (int64_t i = 0; i < gap.numel() * esize; ++i) {
      ASSERT_EQ(gap_bytes[i], GuardedBuffer::kPattern) << o.name << " wrote into a row gap";
    }
    const double scale = r.slice(3, 0, o.e).abs().max().item<double>();
    EXPECT_LE((f.slice(3, 0, o.e) - r.slice(3, 0, o.e)).abs().max().item<double>(),
              tol * std::max(1.0, scale))
        << o.name;
  }
  auto lse_f = torch::from_blob(fast.lse.data(), {c.b * c.h * c.nq});
  auto lse_r = torch::from_blob(ref.lse.data(), {c.b * c.h * c.nq});
  // Fully masked rows (causal and short key lengths hide every key of the first rows) give -inf
  // in both; the rest agree.
  const auto finite = torch::isfinite(lse_r);
  EXPECT_TRUE(torch::equal(finite, torch::isfinite(lse_f)));
  EXPECT_TRUE(torch::equal(lse_f.masked_select(finite.logical_not()),
                           lse_r.masked_select(finite.logical_not())));
  if (finite.any().item<bool>()) {
    EXPECT_LT((lse_f - lse_r).masked_select(finite).abs().max().item<float>(), 1e-4);
  }
  auto pf = torch::from_blob(fast.probs.data(), {c.b * c.h * c.nq * c.nk});
  auto pr = torch::from_blob(ref.probs.data(), {c.b * c.h * c.nq * c.nk});
  EXPECT_LT((pf - pr).abs().max().item<float>(), c.bf16 ? 1e-3 : 1e-5);
  auto bf = torch::from_blob(fast.dbias.data(), {c.b * c.h * c.nq * c.nk});
  auto br = torch::from_blob(ref.dbias.data(), {c.b * c.h * c.nq * c.nk});
  EXPECT_LT((bf - br).abs().max().item<float>(), c.bf16 ? 3e-2 : 1e-5);
}

INSTANTIATE_TEST_SUITE_P(Shapes, AttentionGuards,
                         ::testing::Values(CoreCase{1, 1, 1, 1, 1, 1, false},
                                           CoreCase{2, 3, 67, 131, 20, 12, false},
                                           CoreCase{1, 2, 130, 70, 80, 33, true},
                                           CoreCase{1, 1, 5, 300, 128, 128, false}),
                         [](const auto& info) {
                           const CoreCase& c = info.param;
                           return "Q" + std::to_string(c.nq) + "K" + std::to_string(c.nk) + "D" +
                                  std::to_string(c.d) + "Dv" + std::to_string(c.dv) +
                                  (c.bf16 ? "_bf16" : "_fp32");
                         });

TEST(AttentionIsa, ReportsWhichPathRuns) {
  // The ISA tests (ctest entries with CHORUS_CPU_ISA set) rerun this binary per path; this
  // records which one ran so a log shows it.
  RecordProperty("cpu_isa", cpu_isa_name(active_cpu_isa()));
  SUCCEED() << cpu_isa_name(active_cpu_isa());
}

// --- Bad input: a chorus::Error naming the argument and the expected shape.

void expect_error(const std::function<void()>& call, const std::vector<std::string>& fragments) {
  try {
    call();
    ADD_FAILURE() << "expected chorus::Error";
  } catch (const chorus::Error& e) {
    const std::string message = e.what();
    for (const auto& f : fragments) {
      EXPECT_NE(message.find(f), std::string::npos) << "'" << f << "' missing from: " << message;
    }
  }
}

TEST(AttentionBadInput, NamesTheArgumentAndTheExpectedShape) {
  const auto q = torch::randn({2, 3, 5, 8});
  const auto k = torch::randn({2, 3, 7, 8});
  const auto v = torch::randn({2, 3, 7, 4});
  expect_error([&] { chorus::attention(q[0], k, v); }, {"q", "[B, H, Nq, D]", "[3, 5, 8]"});
  expect_error([&] { chorus::attention(q, k.unsqueeze(0), v); }, {"k", "[B, H, Nk, D]"});
  expect_error(
      [&] {
        chorus::attention(q, torch::randn({2, 3, 7, 9}), v);
      },
      {"k", "[2, 3, Nk, 8]", "[2, 3, 7, 9]"});
  expect_error([&] { chorus::attention(q, torch::randn({2, 4, 7, 8}), v); }, {"k", "[2, 4, 7, 8]"});
  expect_error(
      [&] {
        chorus::attention(q, k, torch::randn({2, 3, 6, 4}));
      },
      {"v", "[2, 3, 7, Dv]", "[2, 3, 6, 4]"});
  expect_error([&] { chorus::attention(q.to(torch::kFloat64), k, v); },
               {"q", "float32 or bfloat16"});
  expect_error([&] { chorus::attention(q, k.to(torch::kBFloat16), v); }, {"dtype", "BFloat16"});
  chorus::AttentionOptions o;
  o.key_lengths = torch::tensor({3}, torch::kInt64);
  expect_error([&] { chorus::attention(q, k, v, o); }, {"key_lengths", "[B] = [2]", "[1]"});
  o = {};
  o.key_lengths = torch::tensor({3.0, 2.0});
  expect_error([&] { chorus::attention(q, k, v, o); }, {"key_lengths", "int64"});
  o = {};
  o.bias = torch::randn({2, 3, 5, 6});
  expect_error([&] { chorus::attention(q, k, v, o); },
               {"bias", "[2|1, 3|1, 5, 7]", "[2, 3, 5, 6]"});
  o = {};
  o.group_visibility = torch::ones({2, 2}, torch::kBool);
  o.query_groups = torch::zeros({5}, torch::kInt64);
  expect_error([&] { chorus::attention(q, k, v, o); }, {"group", "key_groups"});
  o.key_groups = torch::zeros({6}, torch::kInt64);
  expect_error([&] { chorus::attention(q, k, v, o); }, {"key_groups", "[Nk] = [7]", "[6]"});
  o.key_groups = torch::tensor({0, 1, 2, 0, 0, 0, 0}, torch::kInt64);
  expect_error([&] { chorus::attention(q, k, v, o); }, {"key_groups", "[0, 2)", "[0, 2]"});
  o.key_groups = torch::zeros({7}, torch::kInt64);
  o.query_groups = torch::full({2, 5}, -1, torch::kInt64);
  expect_error([&] { chorus::attention(q, k, v, o); }, {"query_groups", "[0, 2)"});
  o.query_groups = torch::zeros({2, 5}, torch::kInt64);
  o.group_visibility = torch::ones({2, 3}, torch::kBool);
  expect_error([&] { chorus::attention(q, k, v, o); }, {"group_visibility", "[G, G]", "[2, 3]"});
  o.group_visibility = torch::ones({2, 2});
  expect_error([&] { chorus::attention(q, k, v, o); }, {"group_visibility", "bool"});
  o = {};
  o.scale = std::nan("");
  expect_error([&] { chorus::attention(q, k, v, o); }, {"scale", "finite"});
  // Valid calls still run after all of that.
  EXPECT_EQ(chorus::attention(q, k, v).sizes(), (std::vector<int64_t>{2, 3, 5, 4}));
}

}  // namespace
}  // namespace chorus::kernels
