// The files of a run folder that the HTML report shows, read into plain structs and checked.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace chorus::eval::report {

// One metric of one system in report.json: {value, ci95: [lo, hi], n, answered_by}.
struct MetricScore {
  std::string metric;
  double value = 0;
  std::optional<std::pair<double, double>> ci95;
  std::optional<int64_t> n;
  std::string answered_by;
};

// One system of report.json; `cost` holds the per-example means of its optional cost object
// (agent_calls, tokens_in, tokens_out, flops, seconds), empty when the report has none.
struct SystemScores {
  std::string name;
  std::string description;
  std::vector<MetricScore> metrics;
  std::map<std::string, double> cost;
};

// A paired significance test of a system against a baseline on one metric.
struct Comparison {
  std::string system, baseline, metric, test;
  double difference = 0;
  double p_value = 1;
};

// A phase of the run and its wall time; `details` are its other fields, formatted ("cached: true").
struct Phase {
  std::string name;
  std::optional<double> seconds;
  std::string details;
};

// A point of an accuracy-cost trade-off curve (a router's lambda sweep). `cost_key` names what
// `cost` is when the point gives a cost object ("flops", else "agent_calls"); empty for a number.
struct CurvePoint {
  double lambda = 0;
  double score = 0;
  double cost = 0;
  std::string cost_key;
};

// A point of a budget curve (a router held to a cost budget): the budget (a fraction of the
// reference team's cost), score and cost as a curve point's, and what the calibration chose.
struct BudgetPoint {
  double budget = 0;
  double score = 0;
  double cost = 0;
  std::string cost_key;
  std::optional<std::pair<double, double>> ci95;
  std::optional<double> cost_vs_best_team, mu, policy_lambda;
  std::optional<bool> feasible;
};

// A top-level report.json entry the page has no section for, as compact and as indented JSON.
struct OtherEntry {
  std::string key, compact, indented;
};

// report.json. Keys the page does not know are kept in `other`.
struct RunReport {
  std::string experiment;
  std::optional<int64_t> seed;
  std::string config_hash;
  std::vector<SystemScores> systems;
  std::vector<std::pair<std::string, std::string>> metric_definitions;
  std::vector<Comparison> comparisons;
  std::vector<Phase> phases;
  std::vector<CurvePoint> curve;
  std::vector<BudgetPoint> budget_curve;
  // Per training objective ("reinforce", "ppo"), in file order; `curve` and `budget_curve` are
  // usually the first objective's.
  std::vector<std::pair<std::string, std::vector<CurvePoint>>> curves_by_objective;
  std::vector<std::pair<std::string, std::vector<BudgetPoint>>> budget_curves_by_objective;
  std::vector<OtherEntry> other;
};

// Reads and checks report.json; a malformed file is a chorus::Error naming the file and the line
// (bad JSON) or the key (wrong shape), e.g. "report.json: systems[1].metrics.kv_subs.value: ...".
RunReport read_run_report(const std::filesystem::path& path);

// One line of a trainer's metrics.jsonl: {"step": 10, "split": "train", "loss": 1.2, ...}.
// Null values (non-finite when written) are left out.
struct MetricsRecord {
  int64_t step = 0;
  std::string split;
  std::vector<std::pair<std::string, double>> values;
};

// A metrics.jsonl file found under the run folder, named by its folder relative to the run
// ("pretrain/kv", "teams/fusion").
struct MetricsLogFile {
  std::string name;
  std::vector<MetricsRecord> records;
};

// Every metrics.jsonl under `run_folder` (any depth), sorted by name. A torn last line (its writer
// was killed mid-write) is skipped; any other malformed line is an error naming file and line.
std::vector<MetricsLogFile> read_metrics_logs(const std::filesystem::path& run_folder);

// One line of transcripts.jsonl: a system's output on one example of an evaluation set. `correct`
// is the line's own verdict when it has one; otherwise the page compares output and target exactly
// (the kv experiment's exact match).
struct TranscriptLine {
  std::string system, set, input, target, output;
  std::optional<bool> correct;
};
std::vector<TranscriptLine> read_transcripts(const std::filesystem::path& path);

// One line of attention.jsonl: the attention of an anchor's query tokens over an augmenting
// agent's key tokens for one example, layer and head; weights[query][key].
struct AttentionMap {
  std::string system, set, agent;
  int64_t example = 0, layer = 0, head = 0;
  std::vector<std::string> query_tokens, key_tokens;
  std::vector<std::vector<double>> weights;
  // Other lists with one number per query token (e.g. the fusion gate), in file order.
  std::vector<std::pair<std::string, std::vector<double>>> per_query;
};
std::vector<AttentionMap> read_attention_maps(const std::filesystem::path& path);

}  // namespace chorus::eval::report
