#include "eval/scoring/corpus_scoring.h"

#include <cstdio>

#include "common/error.h"
#include "eval/metrics/answer_match.h"
#include "eval/metrics/bleu.h"
#include "eval/metrics/chrf.h"
#include "eval/metrics/rouge.h"

namespace chorus::eval {
namespace {

std::string fixed(double value, int width) {
  char buffer[64];
  std::snprintf(buffer, sizeof(buffer), "%.*f", width, value);
  return buffer;
}

ConfidenceInterval scaled(ConfidenceInterval ci, double factor) {
  ci.score *= factor;
  ci.mean *= factor;
  ci.half_width *= factor;
  ci.low *= factor;
  ci.high *= factor;
  return ci;
}

std::string rouge_display_name(const std::string& type) {
  if (type == "rougeL") return "ROUGE-L";
  if (type == "rougeLsum") return "ROUGE-Lsum";
  return "ROUGE-" + type.substr(5);
}

std::string bootstrap_fields(const std::optional<ConfidenceInterval>& ci) {
  if (!ci) return "";
  return "|bs:" + std::to_string(ci->resamples) + "|seed:" + std::to_string(ci->seed);
}

}  // namespace

const std::vector<std::string>& valid_metric_names() {
  static const std::vector<std::string> names = {"bleu",   "chrf",   "chrf++",    "rouge1", "rouge2",
                                                 "rougeL", "rougeLsum", "em", "f1"};
  return names;
}

void check_metric_names(const std::vector<std::string>& names) {
  CHORUS_CHECK(!names.empty(), "no metric given (valid: bleu, chrf, chrf++, rouge1, rouge2, rougeL, rougeLsum, em, f1)");
  for (const auto& name : names) {
    bool known = false;
    for (const auto& valid : valid_metric_names()) known = known || valid == name;
    if (!known) {
      std::string list;
      for (const auto& valid : valid_metric_names()) list += (list.empty() ? "" : ", ") + valid;
      throw Error("unknown metric '" + name + "' (valid: " + list + ")");
    }
  }
}

std::vector<MetricResult> score_corpus(const std::vector<std::string>& hypotheses,
                                       const std::vector<std::vector<std::string>>& references,
                                       const CorpusScoringOptions& options) {
  check_metric_names(options.metrics);
  CHORUS_CHECK(!hypotheses.empty(), "no hypotheses to score (expected at least one segment)");
  const int nrefs = static_cast<int>(references.size());

  // ROUGE types share one pass over the data.
  std::vector<std::string> rouge_types;
  for (const auto& m : options.metrics) {
    if (m.rfind("rouge", 0) == 0) rouge_types.push_back(m);
  }
  std::vector<SegmentStatistics> rouge_stats;
  std::optional<RougeScorer> rouge;
  if (!rouge_types.empty()) {
    rouge.emplace(rouge_types, RougeParams{options.rouge_stem});
    rouge_stats = rouge->segment_statistics(hypotheses, references);
  }

  const auto interval = [&](const SegmentStatistics& stats, const ScoreFromTotals& fn,
                            double factor) -> std::optional<ConfidenceInterval> {
    if (!options.confidence) return std::nullopt;
    return scaled(bootstrap_confidence_interval(stats, fn, options.bootstrap), factor);
  };

  std::vector<MetricResult> results;
  for (const auto& metric : options.metrics) {
    MetricResult r;
    r.key = metric;
    if (metric == "bleu") {
      BleuParams params;
      params.lowercase = options.lowercase;
      const BleuScorer bleu(params);
      const auto stats = bleu.segment_statistics(hypotheses, references);
      const BleuScore score = bleu.score_from_totals(stats.totals());
      r.name = "BLEU";
      r.score = score.score;
      r.details = score.verbose();
      r.interval = interval(stats, bleu.score_function(), 1.0);
      r.signature = bleu.signature(nrefs, r.interval ? &*r.interval : nullptr);
    } else if (metric == "chrf" || metric == "chrf++") {
      ChrfParams params;
      params.lowercase = options.lowercase;
      params.word_order = metric == "chrf++" ? 2 : 0;
      const ChrfScorer chrf(params);
      const auto stats = chrf.segment_statistics(hypotheses, references);
      r.name = chrf.name();
      r.score = chrf.score_from_totals(stats.totals()).score;
      r.interval = interval(stats, chrf.score_function(), 1.0);
      r.signature = chrf.signature(nrefs, r.interval ? &*r.interval : nullptr);
    } else if (metric.rfind("rouge", 0) == 0) {
      std::size_t k = 0;
      while (rouge_types[k] != metric) ++k;
      const auto totals = rouge_stats[k].totals();
      r.name = rouge_display_name(metric);
      r.score = 100.0 * RougeScorer::mean_f(totals);
      r.details = "(P = " + fixed(100.0 * totals[0] / totals[3], 2) + " R = " + fixed(100.0 * totals[1] / totals[3], 2) + ")";
      r.interval = interval(rouge_stats[k], RougeScorer::score_function(), 100.0);
      r.signature = rouge->signature(nrefs, r.interval ? &*r.interval : nullptr);
    } else {
      const bool em = metric == "em";
      const auto stats = answer_statistics(em ? exact_match : token_f1, hypotheses, references);
      r.name = em ? "EM" : "F1";
      r.score = 100.0 * mean_value(stats.totals());
      r.interval = interval(stats, mean_value, 100.0);
      r.signature = "nrefs:" + std::to_string(nrefs) + bootstrap_fields(r.interval) + "|norm:squad|multi:max";
    }
    results.push_back(std::move(r));
  }
  return results;
}

std::string format_result(const MetricResult& result, int width) {
  std::string out = result.name + "|" + result.signature + " = " + fixed(result.score, width);
  if (result.interval) {
    out += " (\u03bc = " + fixed(result.interval->mean, width) + " \u00b1 " + fixed(result.interval->half_width, width) + ")";
  }
  if (!result.details.empty()) out += " " + result.details;
  return out;
}

}  // namespace chorus::eval
