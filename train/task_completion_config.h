// Task completion in experiments: the success predicate each evaluation set declares under
// `evaluation.task_completion`, and its rate per system for the report.
#pragma once

#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "eval/metrics/significance.h"
#include "eval/metrics/task_completion.h"
#include "common/config.h"

namespace chorus::train {

// `evaluation.task_completion`: a map from an evaluation set's name to its predicate spec
// (eval/metrics/task_completion.h), e.g.
//   task_completion:
//     kv_subs: {kind: format, format: "regex:-?[0-9]+( [-+*] -?[0-9]+)*"}
//     kv_math_heldout: {kind: answer_correct, normalization: number}
// Sets not named have no predicate. A name that is not one of `sets`, a bad spec (messages name the
// file and line of the key, through includes and overrides) or a predicate these sets cannot run
// (unit_tests needs code problems) is a chorus::Error, raised while the config is read.
std::map<std::string, eval::TaskCompletionSpec> read_task_completion(const Config& config,
                                                                     const ConfigView& evaluation,
                                                                     const std::vector<std::string>& sets);

// One system's outputs on one set under its predicate.
struct TaskCompletionResult {
  std::vector<eval::PredicateOutcome> outcomes;  // per example, in order
  nlohmann::json metric;  // {value, ci95, ci_half_width, n, successes}: the report's metric entry
};

// references[i]: the reference answers of example i (used by answer_correct only).
TaskCompletionResult score_task_completion(const eval::TaskCompletionSpec& spec,
                                           const std::vector<std::string>& outputs,
                                           const std::vector<std::vector<std::string>>& references,
                                           const eval::BootstrapParams& bootstrap);

// The report's metric name for a set's task completion: "<set>_completion".
std::string completion_metric(const std::string& set);

}  // namespace chorus::train
