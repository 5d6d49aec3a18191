// report.json from the typed report.
#include "experiment/report.h"

#include "common/atomic_file.h"

namespace chorus::experiment {
namespace {

nlohmann::json cost_json(const collab::ComputeCost& c) { return collab::to_json(c); }

nlohmann::json metric_json(const MetricEntry& m) {
  nlohmann::json j = {{"value", m.value}, {"n", m.n}, {"answered_by", m.answered_by}};
  if (m.interval) {
    j["ci95"] = {m.interval->low, m.interval->high};
    j["ci_half_width"] = m.interval->half_width;
  }
  if (m.successes) j["successes"] = *m.successes;
  return j;
}

}  // namespace

nlohmann::json to_json(const Report& r) {
  nlohmann::json j;
  j["schema"] = "chorus.report";
  j["schema_version"] = kReportSchemaVersion;
  j["experiment"] = r.experiment;
  j["seed"] = r.seed;
  j["config_hash"] = r.config_hash;
  j["provenance"] = {{"chorus_version", r.chorus_version},
                     {"libtorch_version", r.libtorch_version}};
  j["agents"] = r.agents;
  j["tasks"] = nlohmann::json::array();
  for (const auto& t : r.tasks) {
    j["tasks"].push_back({{"name", t.name},
                          {"description", t.description},
                          {"evaluated_split", t.evaluated_split},
                          {"evaluated_examples", t.evaluated},
                          {"splits", t.split_sizes},
                          {"fields", t.fields},
                          {"references", t.references},
                          {"metrics", t.metrics}});
  }
  j["metric_definitions"] = r.metric_definitions;
  j["systems"] = nlohmann::json::array();
  for (const auto& s : r.systems) {
    nlohmann::json metrics = nlohmann::json::object();
    for (const auto& [key, m] : s.metrics) metrics[key] = metric_json(m);
    nlohmann::json by_task = nlohmann::json::object();
    for (const auto& [task, c] : s.cost_by_task) by_task[task] = cost_json(c);
    nlohmann::json system = {{"name", s.name},
                             {"kind", s.kind},
                             {"description", s.description},
                             {"agents", s.agents},
                             {"baseline", s.baseline},
                             {"metrics", metrics},
                             {"cost", cost_json(s.cost)},
                             {"cost_by_task", by_task}};
    if (!s.training.is_null()) system["training"] = s.training;
    if (!s.decisions.empty()) system["decisions"] = s.decisions;
    j["systems"].push_back(std::move(system));
  }
  j["best_single_agent"] = nlohmann::json::array();
  for (const auto& b : r.best_single_agent) {
    j["best_single_agent"].push_back({{"task", b.task},
                                      {"system", b.system},
                                      {"agent", b.agent},
                                      {"chosen_on", b.chosen_on},
                                      {"metric", b.metric},
                                      {"value", b.value}});
  }
  j["comparisons"] = nlohmann::json::array();
  for (const auto& c : r.comparisons) {
    j["comparisons"].push_back({{"system", c.system},
                                {"baseline", c.baseline},
                                {"baseline_role", c.baseline_role},
                                {"metric", c.metric},
                                {"difference", c.difference},
                                {"p_value", c.p_value},
                                {"test", c.test}});
  }
  j["phases"] = nlohmann::json::object();
  for (const auto& [name, phase] : r.phases) j["phases"][name] = phase;
  return j;
}

std::filesystem::path write_report(const std::filesystem::path& folder, const Report& report) {
  const auto path = folder / "report.json";
  write_file_atomically(path, to_json(report).dump(2) + "\n");
  return path;
}

}  // namespace chorus::experiment
