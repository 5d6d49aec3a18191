// Metric statistics over outputs and references, by name.
#include "experiment/scoring.h"

#include <algorithm>
#include <map>

#include "common/error.h"
#include "eval/metrics/answer_match.h"
#include "eval/metrics/bleu.h"
#include "eval/metrics/chrf.h"
#include "eval/metrics/diversity.h"
#include "eval/metrics/rouge.h"

namespace chorus::experiment {
namespace {

// Reference streams: streams[r][s], every example padded to the longest list with its first
// reference.
std::vector<std::vector<std::string>> streams_of(
    const std::vector<std::vector<std::string>>& references) {
  size_t width = 0;
  for (const auto& r : references) width = std::max(width, r.size());
  std::vector<std::vector<std::string>> streams(width, std::vector<std::string>(references.size()));
  for (size_t s = 0; s < references.size(); ++s) {
    CHORUS_CHECK(!references[s].empty(), "example ", s, " has no reference");
    for (size_t r = 0; r < width; ++r)
      streams[r][s] = r < references[s].size() ? references[s][r] : references[s][0];
  }
  return streams;
}

double exact_equal(std::string_view a, std::string_view b) { return a == b ? 1.0 : 0.0; }

}  // namespace

const std::vector<std::string>& metric_names() {
  static const std::vector<std::string> names = {
      "em",     "f1",     "accuracy",  "bleu",      "chrf",      "chrf++",    "rouge1",
      "rouge2", "rougeL", "rougeLsum", "distinct1", "distinct2", "repetition"};
  return names;
}

bool needs_references(const std::string& metric) {
  return metric != "distinct1" && metric != "distinct2" && metric != "repetition";
}

bool decomposable(const std::string& metric) { return needs_references(metric); }

bool higher_is_better(const std::string& metric) {
  return metric != "repetition" && metric != "perplexity";
}

std::string metric_definition(const std::string& metric) {
  static const std::map<std::string, std::string> definitions = {
      {"em", "exact match after SQuAD normalisation, best over references (0..1)"},
      {"f1", "token F1 after SQuAD normalisation, best over references (0..1)"},
      {"accuracy", "output equal to a reference byte for byte (0..1)"},
      {"bleu", "corpus BLEU, sacrebleu defaults (13a, exp smoothing; 0..100)"},
      {"chrf", "chrF2, sacrebleu defaults (0..100)"},
      {"chrf++", "chrF2++ (word bigrams), sacrebleu defaults (0..100)"},
      {"rouge1", "ROUGE-1 F, rouge-score conventions (0..100)"},
      {"rouge2", "ROUGE-2 F, rouge-score conventions (0..100)"},
      {"rougeL", "ROUGE-L F, rouge-score conventions (0..100)"},
      {"rougeLsum", "ROUGE-Lsum F, rouge-score conventions (0..100)"},
      {"distinct1", "distinct unigrams / all unigrams over the outputs"},
      {"distinct2", "distinct bigrams / all bigrams over the outputs"},
      {"repetition", "fraction of repeated 4-grams within outputs (lower is better)"},
      {"completion", "task completion: the task's success predicate holds (0..1)"},
      {"perplexity",
       "perplexity of the outputs under the reference language model (lower is better)"}};
  const auto it = definitions.find(metric);
  return it == definitions.end() ? metric : it->second;
}

MetricStatistics metric_statistics(const std::string& metric,
                                   const std::vector<std::string>& outputs,
                                   const std::vector<std::vector<std::string>>& references) {
  CHORUS_CHECK(decomposable(metric), "metric '", metric, "' has no per-example statistics");
  CHORUS_CHECK(outputs.size() == references.size(), outputs.size(), " outputs for ",
               references.size(), " reference lists");
  const auto streams = streams_of(references);
  MetricStatistics m;
  if (metric == "bleu") {
    const eval::BleuScorer bleu;
    m.stats = bleu.segment_statistics(outputs, streams);
    m.score = bleu.score_function();
  } else if (metric == "chrf" || metric == "chrf++") {
    eval::ChrfParams params;
    params.word_order = metric == "chrf++" ? 2 : 0;
    const eval::ChrfScorer chrf(params);
    m.stats = chrf.segment_statistics(outputs, streams);
    m.score = chrf.score_function();
  } else if (metric.rfind("rouge", 0) == 0) {
    const eval::RougeScorer rouge({metric});
    m.stats = rouge.segment_statistics(outputs, streams).front();
    m.score = [](const std::vector<double>& totals) {
      return 100.0 * eval::RougeScorer::mean_f(totals);
    };
  } else if (metric == "em" || metric == "f1" || metric == "accuracy") {
    auto* fn = metric == "em"   ? &eval::exact_match
               : metric == "f1" ? &eval::token_f1
                                : &exact_equal;
    m.stats = eval::answer_statistics(fn, outputs, streams);
    m.score = &eval::mean_value;
  } else {
    throw Error("unknown metric '" + metric + "'");
  }
  return m;
}

MetricValue score_metric(const std::string& metric, const std::vector<std::string>& outputs,
                         const std::vector<std::vector<std::string>>& references, int resamples,
                         uint64_t seed) {
  MetricValue v;
  v.n = static_cast<int64_t>(outputs.size());
  if (metric == "distinct1" || metric == "distinct2") {
    v.value = eval::distinct_n(outputs, metric == "distinct1" ? 1 : 2);
    return v;
  }
  if (metric == "repetition") {
    v.value = eval::repetition_rate(outputs);
    return v;
  }
  const auto m = metric_statistics(metric, outputs, references);
  v.value = m.score(m.stats.totals());
  if (resamples > 0)
    v.interval = eval::bootstrap_confidence_interval(m.stats, m.score, {resamples, seed});
  return v;
}

std::vector<double> example_scores(const std::string& metric,
                                   const std::vector<std::string>& outputs,
                                   const std::vector<std::vector<std::string>>& references) {
  std::vector<double> out;
  out.reserve(outputs.size());
  if (metric == "bleu") {
    const eval::BleuScorer bleu;
    for (size_t s = 0; s < outputs.size(); ++s)
      out.push_back(bleu.sentence_score(outputs[s], references[s]).score);
    return out;
  }
  if (metric == "chrf" || metric == "chrf++") {
    eval::ChrfParams params;
    params.word_order = metric == "chrf++" ? 2 : 0;
    const eval::ChrfScorer chrf(params);
    for (size_t s = 0; s < outputs.size(); ++s)
      out.push_back(chrf.sentence_score(outputs[s], references[s]).score);
    return out;
  }
  const auto m = metric_statistics(metric, outputs, references);
  for (size_t s = 0; s < m.stats.segments(); ++s) {
    const double* row = m.stats.row(s);
    out.push_back(m.score(std::vector<double>(row, row + m.stats.width)));
  }
  return out;
}

}  // namespace chorus::experiment
