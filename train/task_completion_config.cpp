#include "train/task_completion_config.h"

#include <algorithm>

#include "common/error.h"

namespace chorus::train {

std::map<std::string, eval::TaskCompletionSpec> read_task_completion(const Config& config,
                                                                     const ConfigView& evaluation,
                                                                     const std::vector<std::string>& sets) {
  std::map<std::string, eval::TaskCompletionSpec> out;
  const auto declared = evaluation.child_or_empty("task_completion");
  for (const auto& set : declared.keys()) {
    const std::string key = declared.key_path(set);
    if (std::find(sets.begin(), sets.end(), set) == sets.end()) {
      std::string names;
      for (const auto& s : sets) names += (names.empty() ? "" : ", ") + s;
      throw Error(config.origin(key) + ": " + key + ": unknown evaluation set (expected one of: " + names + ")");
    }
    auto spec = eval::read_task_completion_spec(declared.child(set));
    CHORUS_CHECK(spec.kind != eval::PredicateKind::unit_tests, config.origin(key), ": ", key,
                 ": kind unit_tests needs code problems with tests, which this experiment's sets do not have "
                 "(use answer_correct, format or constraint; HumanEval samples are scored by chorus score --task humaneval)");
    out.emplace(set, std::move(spec));
  }
  return out;
}

TaskCompletionResult score_task_completion(const eval::TaskCompletionSpec& spec,
                                           const std::vector<std::string>& outputs,
                                           const std::vector<std::vector<std::string>>& references,
                                           const eval::BootstrapParams& bootstrap) {
  CHORUS_CHECK(references.empty() || references.size() == outputs.size(), "task completion: ", outputs.size(),
               " outputs but ", references.size(), " reference lists");
  std::vector<eval::TaskCompletionExample> examples(outputs.size());
  for (size_t i = 0; i < outputs.size(); ++i) {
    examples[i].output = outputs[i];
    if (!references.empty()) examples[i].references = references[i];
  }
  TaskCompletionResult result;
  result.outcomes = eval::check_task_completion(spec, examples);
  const auto rate = eval::task_completion_rate(result.outcomes, bootstrap);
  result.metric = {{"value", rate.rate},
                   {"ci95", {rate.interval.low, rate.interval.high}},
                   {"ci_half_width", rate.interval.half_width},
                   {"n", rate.examples},
                   {"successes", rate.successes}};
  return result;
}

std::string completion_metric(const std::string& set) { return set + "_completion"; }

}  // namespace chorus::train
