// report.json: the one typed, versioned record of an experiment's results, written in one place
// (schema: docs/report.schema.json, described in docs/REPORTS.md). report.html renders from it.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "collab/cost.h"
#include "eval/metrics/significance.h"

namespace chorus::experiment {

// Bumped whenever a field changes meaning or is removed (adding optional fields keeps it).
inline constexpr int kReportSchemaVersion = 2;

struct MetricEntry {
  double value = 0;
  std::optional<eval::ConfidenceInterval> interval;  // 95%, bootstrap over examples
  int64_t n = 0;                                     // examples scored
  std::string answered_by;                           // the system
  std::optional<int64_t> successes;                  // task completion
};

struct SystemReport {
  std::string name, kind, description;
  std::vector<std::string> agents;
  bool baseline = false;                       // an agent alone, added by the engine
  std::map<std::string, MetricEntry> metrics;  // "<task>/<metric>"
  collab::ComputeCost cost;                    // per-example mean over every evaluated example
  std::map<std::string, collab::ComputeCost> cost_by_task;  // per-example means
  nlohmann::json training = nullptr;                // what the build step trained (trainable kinds)
  std::map<std::string, nlohmann::json> decisions;  // per task, the mechanism's summary
};

struct ComparisonEntry {
  std::string system, baseline, metric, test;
  double difference = 0;  // system - baseline
  double p_value = 1;
  std::string baseline_role;  // "agent" or "best single agent"
};

struct BestSingleAgent {
  std::string task, system, agent, chosen_on, metric;
  double value = 0;  // on chosen_on
};

struct TaskSummary {
  std::string name, description, evaluated_split;
  std::map<std::string, int64_t> split_sizes;
  int64_t evaluated = 0;
  std::vector<std::string> metrics;  // primary first
  std::vector<std::string> fields;
  bool references = false;
};

struct Report {
  std::string experiment;
  uint64_t seed = 0;
  std::string config_hash, chorus_version, libtorch_version;
  nlohmann::json agents = nlohmann::json::array();
  std::vector<TaskSummary> tasks;
  std::map<std::string, std::string> metric_definitions;  // "<task>/<metric>" -> meaning
  std::vector<SystemReport> systems;
  std::vector<BestSingleAgent> best_single_agent;
  std::vector<ComparisonEntry> comparisons;
  std::vector<std::pair<std::string, nlohmann::json>> phases;  // name -> {seconds, ...}
};

nlohmann::json to_json(const Report& report);
// Writes report.json into `folder` atomically; returns its path.
std::filesystem::path write_report(const std::filesystem::path& folder, const Report& report);

}  // namespace chorus::experiment
