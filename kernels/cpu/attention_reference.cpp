// The naive attention reference: one query row at a time, every sum in double.
#include <cmath>
#include <limits>
#include <vector>

#include "kernels/attention.h"
#include "kernels/cpu/element_io.h"

namespace chorus::kernels {
namespace {

using cpu::load_element;
using cpu::mask_allows;
using cpu::view_offset;

constexpr double kMinusInf = -std::numeric_limits<double>::infinity();

void run_heads(const AttentionParams& p, const std::function<void(int64_t, int64_t)>& body) {
  const int64_t heads = p.batch * p.heads;
  if (p.parallel_for) {
    p.parallel_for(heads, body);
  } else {
    body(0, heads);
  }
}

// Scores of query row qi against every key (scaled, biased, -inf where masked).
void row_scores(const AttentionParams& p, int64_t b, int64_t h, int64_t qi,
                std::vector<double>& s) {
  s.assign(p.nk, kMinusInf);
  for (int64_t j = 0; j < p.nk; ++j) {
    if (!mask_allows(p, b, qi, j)) continue;
    double dot = 0;
    for (int64_t c = 0; c < p.d; ++c) {
      dot += static_cast<double>(
                 load_element(p.q.data, p.dtype, view_offset(p.q.strides, b, h, qi, c))) *
             load_element(p.k.data, p.dtype, view_offset(p.k.strides, b, h, j, c));
    }
    double value = dot * p.scale;
    if (p.mask.bias != nullptr) value += p.mask.bias[view_offset(p.mask.bias_strides, b, h, qi, j)];
    s[j] = value;
  }
}

// Turns scores into probabilities in place; returns the log-sum-exp (-inf when all are masked).
double softmax_in_place(std::vector<double>& s) {
  double max_score = kMinusInf;
  for (double x : s) max_score = std::max(max_score, x);
  if (max_score == kMinusInf) {
    for (double& x : s) x = 0;
    return kMinusInf;
  }
  double sum = 0;
  for (double& x : s) {
    x = x == kMinusInf ? 0.0 : std::exp(x - max_score);
    sum += x;
  }
  for (double& x : s) x /= sum;
  return max_score + std::log(sum);
}

}  // namespace

void attention_forward_reference(const AttentionParams& p, const AttentionForwardOutputs& out) {
  run_heads(p, [&](int64_t begin, int64_t end) {
    std::vector<double> s, o;
    for (int64_t bh = begin; bh < end; ++bh) {
      const int64_t b = bh / p.heads, h = bh % p.heads;
      for (int64_t i = 0; i < p.nq; ++i) {
        row_scores(p, b, h, i, s);
        const double lse = softmax_in_place(s);
        o.assign(p.dv, 0.0);
        for (int64_t j = 0; j < p.nk; ++j) {
          if (s[j] == 0) continue;
          for (int64_t c = 0; c < p.dv; ++c) {
            o[c] += s[j] * load_element(p.v.data, p.dtype, view_offset(p.v.strides, b, h, j, c));
          }
        }
        for (int64_t c = 0; c < p.dv; ++c) {
          cpu::store_element(out.out.data, p.dtype, view_offset(out.out.strides, b, h, i, c),
                             static_cast<float>(o[c]));
        }
        out.logsumexp[bh * p.nq + i] = static_cast<float>(lse);
        if (out.probabilities != nullptr) {
          float* row = out.probabilities + (bh * p.nq + i) * p.nk;
          for (int64_t j = 0; j < p.nk; ++j) row[j] = static_cast<float>(s[j]);
        }
      }
    }
  });
}

void attention_backward_reference(const AttentionParams& p, const AttentionBackwardArgs& args) {
  run_heads(p, [&](int64_t begin, int64_t end) {
    std::vector<double> s, dp, dq, dk, dv;
    for (int64_t bh = begin; bh < end; ++bh) {
      const int64_t b = bh / p.heads, h = bh % p.heads;
      dk.assign(p.nk * p.d, 0.0);
      dv.assign(p.nk * p.dv, 0.0);
      for (int64_t i = 0; i < p.nq; ++i) {
        row_scores(p, b, h, i, s);
        softmax_in_place(s);
        std::vector<double> dout_row(p.dv);
        for (int64_t c = 0; c < p.dv; ++c) {
          dout_row[c] =
              load_element(args.dout.data, p.dtype, view_offset(args.dout.strides, b, h, i, c));
        }
        // dP_j = dO . v_j; dS_j = P_j (dP_j - sum_k P_k dP_k).
        dp.assign(p.nk, 0.0);
        double row_dot = 0;
        for (int64_t j = 0; j < p.nk; ++j) {
          if (s[j] == 0) continue;
          double acc = 0;
          for (int64_t c = 0; c < p.dv; ++c) {
            acc +=
                dout_row[c] * load_element(p.v.data, p.dtype, view_offset(p.v.strides, b, h, j, c));
          }
          dp[j] = acc;
          row_dot += s[j] * acc;
        }
        dq.assign(p.d, 0.0);
        for (int64_t j = 0; j < p.nk; ++j) {
          const double ds = s[j] * (dp[j] - row_dot);
          if (args.dbias != nullptr)
            args.dbias[(bh * p.nq + i) * p.nk + j] = static_cast<float>(ds);
          if (s[j] == 0) continue;
          for (int64_t c = 0; c < p.dv; ++c) dv[j * p.dv + c] += s[j] * dout_row[c];
          for (int64_t c = 0; c < p.d; ++c) {
            dq[c] += ds * p.scale *
                     load_element(p.k.data, p.dtype, view_offset(p.k.strides, b, h, j, c));
            dk[j * p.d + c] +=
                ds * p.scale *
                load_element(p.q.data, p.dtype, view_offset(p.q.strides, b, h, i, c));
          }
        }
        for (int64_t c = 0; c < p.d; ++c) {
          cpu::store_element(args.dq.data, p.dtype, view_offset(args.dq.strides, b, h, i, c),
                             static_cast<float>(dq[c]));
        }
      }
      for (int64_t j = 0; j < p.nk; ++j) {
        for (int64_t c = 0; c < p.d; ++c) {
          cpu::store_element(args.dk.data, p.dtype, view_offset(args.dk.strides, b, h, j, c),
                             static_cast<float>(dk[j * p.d + c]));
        }
        for (int64_t c = 0; c < p.dv; ++c) {
          cpu::store_element(args.dv.data, p.dtype, view_offset(args.dv.strides, b, h, j, c),
                             static_cast<float>(dv[j * p.dv + c]));
        }
      }
    }
  });
}

const char* element_type_name(ElementType type) {
  switch (type) {
    case ElementType::kFloat32:
      return "float32";
    case ElementType::kBFloat16:
      return "bfloat16";
    case ElementType::kFloat16:
      return "float16";
  }
  return "unknown";
}

}  // namespace chorus::kernels
