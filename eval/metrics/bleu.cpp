#include "eval/metrics/bleu.h"

#include <cmath>
#include <cstdio>

#include "common/error.h"
#include "eval/metrics/ngram_counts.h"
#include "eval/metrics/tokenizer_13a.h"
#include "eval/text/python_text.h"
#include "common/text/utf8.h"

namespace chorus::eval {
namespace {

// sacrebleu's my_log: log(0) is floored to -9999999999 instead of -inf.
double floored_log(double x) { return x == 0.0 ? -9999999999.0 : std::log(x); }

double default_smooth_value(BleuSmoothing s) {
  switch (s) {
    case BleuSmoothing::kFloor:
      return 0.1;
    case BleuSmoothing::kAddK:
      return 1.0;
    default:
      return 0.0;
  }
}

// Lowercases (optionally), strips trailing whitespace and tokenises with 13a.
std::u32string preprocess(const std::string& segment, bool lowercase) {
  std::u32string text = decode_utf8(segment, "BLEU segment");
  if (lowercase) text = python_lower(text);
  std::size_t end = text.size();
  while (end > 0 && is_python_space(text[end - 1])) --end;
  text.resize(end);
  return tokenize_13a(text);
}

struct TokenizedSegment {
  std::u32string text;
  std::vector<std::uint32_t> ids;
};

std::vector<std::vector<NgramCount>> count_all_orders(const std::vector<std::uint32_t>& ids, int max_order,
                                                      std::vector<NgramKey>& scratch) {
  std::vector<std::vector<NgramCount>> by_order(static_cast<std::size_t>(max_order));
  for (int n = 1; n <= max_order; ++n) {
    ngram_keys(ids, n, 32, scratch);
    by_order[n - 1] = count_ngrams(scratch);
  }
  return by_order;
}

// sacrebleu's _get_closest_ref_len: the closest length, the shorter on ties.
double closest_ref_len(std::size_t hyp_len, const std::vector<std::size_t>& ref_lens) {
  long best_diff = -1;
  long best_len = -1;
  for (std::size_t len : ref_lens) {
    const long diff = std::labs(static_cast<long>(hyp_len) - static_cast<long>(len));
    if (best_diff == -1 || diff < best_diff) {
      best_diff = diff;
      best_len = static_cast<long>(len);
    } else if (diff == best_diff && static_cast<long>(len) < best_len) {
      best_len = static_cast<long>(len);
    }
  }
  return static_cast<double>(best_len);
}

std::string format_fixed(double value, int digits) {
  char buffer[64];
  std::snprintf(buffer, sizeof(buffer), "%.*f", digits, value);
  return buffer;
}

}  // namespace

BleuSmoothing parse_bleu_smoothing(const std::string& name) {
  if (name == "none") return BleuSmoothing::kNone;
  if (name == "floor") return BleuSmoothing::kFloor;
  if (name == "add-k") return BleuSmoothing::kAddK;
  if (name == "exp") return BleuSmoothing::kExp;
  throw Error("unknown BLEU smoothing '" + name + "' (expected one of: none, floor, add-k, exp)");
}

std::string BleuScore::verbose() const {
  std::string out;
  for (std::size_t i = 0; i < precisions.size(); ++i) {
    if (i > 0) out += "/";
    out += format_fixed(precisions[i], 1);
  }
  const double ratio = ref_len > 0 ? sys_len / ref_len : 0.0;
  out += " (BP = " + format_fixed(brevity_penalty, 3) + " ratio = " + format_fixed(ratio, 3) +
         " hyp_len = " + std::to_string(static_cast<long>(sys_len)) +
         " ref_len = " + std::to_string(static_cast<long>(ref_len)) + ")";
  return out;
}

BleuScorer::BleuScorer(BleuParams params) : params_(params) {
  CHORUS_CHECK(params_.max_ngram_order >= 1 && params_.max_ngram_order <= 4,
               "BLEU max n-gram order must be in 1..4, got ", params_.max_ngram_order);
}

SegmentStatistics BleuScorer::segment_statistics(const std::vector<std::string>& hypotheses,
                                                 const std::vector<std::vector<std::string>>& references) const {
  CHORUS_CHECK(!references.empty(), "BLEU: no reference streams (expected at least one)");
  for (std::size_t r = 0; r < references.size(); ++r) {
    CHORUS_CHECK(references[r].size() == hypotheses.size(), "BLEU: reference stream ", r, " has ",
                 references[r].size(), " segments but there are ", hypotheses.size(), " hypotheses");
  }
  const int order = params_.max_ngram_order;
  SegmentStatistics stats;
  stats.width = 2 + 2 * static_cast<std::size_t>(order);
  stats.values.reserve(stats.width * hypotheses.size());

  TokenInterner<std::u32string_view> interner;
  std::vector<NgramKey> scratch;
  std::vector<std::u32string> ref_texts(references.size());
  std::vector<std::vector<NgramCount>> ref_lists;
  for (std::size_t s = 0; s < hypotheses.size(); ++s) {
    interner.clear();
    std::vector<std::size_t> ref_lens;
    std::vector<std::vector<std::vector<NgramCount>>> ref_counts;
    for (std::size_t r = 0; r < references.size(); ++r) {
      ref_texts[r] = preprocess(references[r][s], params_.lowercase);
      std::vector<std::uint32_t> ids;
      for (auto token : split_tokens(ref_texts[r])) ids.push_back(interner.id(token));
      ref_lens.push_back(ids.size());
      ref_counts.push_back(count_all_orders(ids, order, scratch));
    }
    const std::u32string hyp_text = preprocess(hypotheses[s], params_.lowercase);
    std::vector<std::uint32_t> hyp_ids;
    for (auto token : split_tokens(hyp_text)) hyp_ids.push_back(interner.id(token));

    std::vector<double> row(stats.width, 0.0);
    row[0] = static_cast<double>(hyp_ids.size());
    row[1] = closest_ref_len(hyp_ids.size(), ref_lens);
    for (int n = 1; n <= order; ++n) {
      ngram_keys(hyp_ids, n, 32, scratch);
      const std::size_t total = scratch.size();
      const auto hyp_counts = count_ngrams(scratch);
      ref_lists.clear();
      for (const auto& counts : ref_counts) ref_lists.push_back(counts[n - 1]);
      row[2 + n - 1] = static_cast<double>(clipped_overlap(hyp_counts, max_counts(ref_lists)));
      row[2 + order + n - 1] = static_cast<double>(total);
    }
    stats.values.insert(stats.values.end(), row.begin(), row.end());
  }
  return stats;
}

BleuScore BleuScorer::score_from_totals(std::vector<double> totals) const {
  const int order = params_.max_ngram_order;
  CHORUS_CHECK(totals.size() == 2 + 2 * static_cast<std::size_t>(order), "BLEU statistics have ", totals.size(),
               " values, expected ", 2 + 2 * order);
  BleuScore result;
  result.sys_len = totals[0];
  result.ref_len = totals[1];
  result.counts.assign(totals.begin() + 2, totals.begin() + 2 + order);
  result.totals.assign(totals.begin() + 2 + order, totals.end());
  result.precisions.assign(static_cast<std::size_t>(order), 0.0);

  result.brevity_penalty = 1.0;
  if (result.sys_len < result.ref_len) {
    result.brevity_penalty = result.sys_len > 0 ? std::exp(1.0 - result.ref_len / result.sys_len) : 0.0;
  }
  bool any_correct = false;
  for (double c : result.counts) any_correct = any_correct || c != 0.0;
  if (!any_correct) return result;

  const double smooth_value = params_.smooth_value.value_or(default_smooth_value(params_.smoothing));
  double smooth_mteval = 1.0;
  int effective = order;
  for (int n = 1; n <= order; ++n) {
    double& correct = result.counts[n - 1];
    double& total = result.totals[n - 1];
    if (params_.smoothing == BleuSmoothing::kAddK && n > 1) {
      correct += smooth_value;
      total += smooth_value;
    }
    if (total == 0.0) break;
    if (params_.effective_order) effective = n;
    if (correct == 0.0) {
      if (params_.smoothing == BleuSmoothing::kExp) {
        smooth_mteval *= 2;
        result.precisions[n - 1] = 100.0 / (smooth_mteval * total);
      } else if (params_.smoothing == BleuSmoothing::kFloor) {
        result.precisions[n - 1] = 100.0 * smooth_value / total;
      }
    } else {
      result.precisions[n - 1] = 100.0 * correct / total;
    }
  }
  double log_sum = 0.0;
  for (int n = 0; n < effective; ++n) log_sum += floored_log(result.precisions[n]);
  result.score = result.brevity_penalty * std::exp(log_sum / effective);
  return result;
}

ScoreFromTotals BleuScorer::score_function() const {
  return [scorer = *this](const std::vector<double>& totals) { return scorer.score_from_totals(totals).score; };
}

BleuScore BleuScorer::corpus_score(const std::vector<std::string>& hypotheses,
                                   const std::vector<std::vector<std::string>>& references) const {
  return score_from_totals(segment_statistics(hypotheses, references).totals());
}

BleuScore BleuScorer::sentence_score(const std::string& hypothesis, const std::vector<std::string>& references) const {
  std::vector<std::vector<std::string>> streams;
  for (const auto& ref : references) streams.push_back({ref});
  return corpus_score({hypothesis}, streams);
}

std::string BleuScorer::signature(int num_refs, const ConfidenceInterval* bootstrap) const {
  std::string out = "nrefs:" + std::to_string(num_refs);
  if (bootstrap != nullptr) {
    out += "|bs:" + std::to_string(bootstrap->resamples) + "|seed:" + std::to_string(bootstrap->seed);
  }
  out += std::string("|case:") + (params_.lowercase ? "lc" : "mixed");
  out += std::string("|eff:") + (params_.effective_order ? "yes" : "no");
  out += "|tok:13a|smooth:";
  switch (params_.smoothing) {
    case BleuSmoothing::kNone:
      out += "none";
      break;
    case BleuSmoothing::kExp:
      out += "exp";
      break;
    case BleuSmoothing::kFloor:
      out += "floor[" + format_fixed(params_.smooth_value.value_or(0.1), 2) + "]";
      break;
    case BleuSmoothing::kAddK:
      out += "add-k[" + format_fixed(params_.smooth_value.value_or(1.0), 2) + "]";
      break;
  }
  return out + "|version:" + kSacrebleuVersion;
}

}  // namespace chorus::eval
