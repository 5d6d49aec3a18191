// Reading report.json, metrics.jsonl, transcripts.jsonl and attention.jsonl for the HTML report.
#include "eval/report/run_files.h"

#include <algorithm>
#include <fstream>
#include <functional>
#include <iterator>
#include <tuple>
#include <nlohmann/json.hpp>

#include "common/error.h"

namespace chorus::eval::report {
namespace {

namespace fs = std::filesystem;
// Ordered: the page lists systems' metrics and phases in the order the file gives them.
using Json = nlohmann::ordered_json;

std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  CHORUS_CHECK(in, "cannot open '", path.string(), "'");
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// nlohmann reports the (1-based) byte offset where parsing stopped; people look for line:column.
std::string line_and_column(const std::string& text, size_t byte) {
  const size_t offset = std::min(byte > 0 ? byte - 1 : 0, text.size());
  size_t line = 1, column = 1;
  for (size_t i = 0; i < offset; ++i) {
    if (text[i] == '\n') {
      ++line;
      column = 1;
    } else {
      ++column;
    }
  }
  return std::to_string(line) + ":" + std::to_string(column);
}

Json parse_json(const std::string& text, const std::string& file) {
  try {
    return Json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    throw Error(file + ":" + line_and_column(text, e.byte) + ": not valid JSON (" + e.what() + ")");
  }
}

// Typed access to a JSON document whose errors name the file and the key path ("systems[2].name").
class Fields {
 public:
  explicit Fields(std::string where) : where_(std::move(where)) {}

  [[noreturn]] void fail(const std::string& key, const std::string& expected,
                         const Json& got) const {
    throw Error(where_ + ": " + key + ": expected " + expected + ", got " + got.dump());
  }
  const Json& member(const Json& object, const std::string& path, const std::string& key) const {
    if (!object.is_object()) fail(path, "an object", object);
    const auto it = object.find(key);
    if (it == object.end()) throw Error(where_ + ": " + join(path, key) + ": missing");
    return *it;
  }
  double number(const Json& value, const std::string& key) const {
    if (!value.is_number()) fail(key, "a number", value);
    return value.get<double>();
  }
  int64_t integer(const Json& value, const std::string& key) const {
    if (!value.is_number_integer()) fail(key, "an integer", value);
    return value.get<int64_t>();
  }
  std::string string(const Json& value, const std::string& key) const {
    if (!value.is_string()) fail(key, "a string", value);
    return value.get<std::string>();
  }
  std::vector<std::string> strings(const Json& value, const std::string& key) const {
    if (!value.is_array()) fail(key, "a list of strings", value);
    std::vector<std::string> out;
    for (size_t i = 0; i < value.size(); ++i)
      out.push_back(string(value[i], key + "[" + std::to_string(i) + "]"));
    return out;
  }
  std::string optional_string(const Json& object, const std::string& path,
                              const std::string& key) const {
    return object.contains(key) ? string(object[key], join(path, key)) : std::string();
  }
  static std::string join(const std::string& path, const std::string& key) {
    return path.empty() ? key : path + "." + key;
  }

 private:
  std::string where_;
};

MetricScore read_metric(const Fields& f, const std::string& name, const Json& json,
                        const std::string& path) {
  MetricScore m;
  m.metric = name;
  m.value = f.number(f.member(json, path, "value"), path + ".value");
  if (json.contains("ci95") && !json["ci95"].is_null()) {
    const auto& ci = json["ci95"];
    if (!ci.is_array() || ci.size() != 2) f.fail(path + ".ci95", "a list [low, high]", ci);
    m.ci95 = std::make_pair(f.number(ci[0], path + ".ci95[0]"), f.number(ci[1], path + ".ci95[1]"));
  }
  if (json.contains("n")) m.n = f.integer(json["n"], path + ".n");
  m.answered_by = f.optional_string(json, path, "answered_by");
  return m;
}

SystemScores read_system(const Fields& f, const Json& json, const std::string& path) {
  SystemScores s;
  s.name = f.string(f.member(json, path, "name"), path + ".name");
  s.description = f.optional_string(json, path, "description");
  const auto& metrics = f.member(json, path, "metrics");
  if (!metrics.is_object()) f.fail(path + ".metrics", "an object of metrics", metrics);
  for (const auto& [name, value] : metrics.items()) {
    s.metrics.push_back(read_metric(f, name, value, path + ".metrics." + name));
  }
  if (json.contains("cost") && !json["cost"].is_null()) {
    const auto& cost = json["cost"];
    if (!cost.is_object()) f.fail(path + ".cost", "an object of per-example means", cost);
    // Non-numeric fields (a unit, a note) are not plotted.
    for (const auto& [key, value] : cost.items()) {
      if (value.is_number()) s.cost[key] = value.get<double>();
    }
  }
  return s;
}

Comparison read_comparison(const Fields& f, const Json& json, const std::string& path) {
  Comparison c;
  c.system = f.string(f.member(json, path, "system"), path + ".system");
  c.baseline = f.string(f.member(json, path, "baseline"), path + ".baseline");
  c.metric = f.string(f.member(json, path, "metric"), path + ".metric");
  c.difference = f.number(f.member(json, path, "difference"), path + ".difference");
  c.p_value = f.number(f.member(json, path, "p_value"), path + ".p_value");
  c.test = f.optional_string(json, path, "test");
  return c;
}

Phase read_phase(const std::string& name, const Json& json) {
  Phase p;
  p.name = name;
  if (json.is_number()) {
    p.seconds = json.get<double>();
    return p;
  }
  if (!json.is_object()) {
    p.details = json.dump();
    return p;
  }
  for (const auto& [key, value] : json.items()) {
    if (key == "seconds" && value.is_number()) {
      p.seconds = value.get<double>();
    } else {
      p.details += (p.details.empty() ? "" : ", ") + key + ": " +
                   (value.is_string() ? value.get<std::string>() : value.dump());
    }
  }
  return p;
}

// A curve point's cost: a number, or the same cost object as a system's, of which FLOPs are
// plotted when there and agent calls otherwise.
std::pair<double, std::string> read_point_cost(const Fields& f, const Json& json,
                                               const std::string& path) {
  const auto& cost = f.member(json, path, "cost");
  if (!cost.is_object()) return {f.number(cost, path + ".cost"), ""};
  const char* key = cost.contains("flops") ? "flops" : "agent_calls";
  return {f.number(f.member(cost, path + ".cost", key), path + ".cost." + key), key};
}

CurvePoint read_curve_point(const Fields& f, const Json& json, const std::string& path) {
  CurvePoint p;
  p.lambda = f.number(f.member(json, path, "lambda"), path + ".lambda");
  p.score = f.number(f.member(json, path, "score"), path + ".score");
  std::tie(p.cost, p.cost_key) = read_point_cost(f, json, path);
  return p;
}

std::optional<double> optional_number(const Fields& f, const Json& json, const std::string& path,
                                      const std::string& key) {
  if (!json.contains(key) || json[key].is_null()) return std::nullopt;
  return f.number(json[key], path + "." + key);
}

BudgetPoint read_budget_point(const Fields& f, const Json& json, const std::string& path) {
  BudgetPoint p;
  p.budget = f.number(f.member(json, path, "budget"), path + ".budget");
  p.score = f.number(f.member(json, path, "score"), path + ".score");
  std::tie(p.cost, p.cost_key) = read_point_cost(f, json, path);
  if (json.contains("ci95") && !json["ci95"].is_null()) {
    const auto& ci = json["ci95"];
    if (!ci.is_array() || ci.size() != 2) f.fail(path + ".ci95", "a list [low, high]", ci);
    p.ci95 = std::make_pair(f.number(ci[0], path + ".ci95[0]"), f.number(ci[1], path + ".ci95[1]"));
  }
  p.cost_vs_best_team = optional_number(f, json, path, "cost_vs_best_team");
  p.mu = optional_number(f, json, path, "mu");
  p.policy_lambda = optional_number(f, json, path, "policy_lambda");
  if (json.contains("feasible") && !json["feasible"].is_null()) {
    if (!json["feasible"].is_boolean())
      f.fail(path + ".feasible", "true or false", json["feasible"]);
    p.feasible = json["feasible"].get<bool>();
  }
  return p;
}

// A list of points under `path`, each read by `read`.
template <typename Point, typename Read>
std::vector<Point> read_points(const Fields& f, const Json& json, const std::string& path,
                               const std::string& expected, Read read) {
  if (!json.is_array()) f.fail(path, expected, json);
  std::vector<Point> points;
  for (size_t i = 0; i < json.size(); ++i)
    points.push_back(read(f, json[i], path + "[" + std::to_string(i) + "]"));
  return points;
}

// An object of objective: list of points under `path`, in file order.
template <typename Point, typename Read>
std::vector<std::pair<std::string, std::vector<Point>>> read_points_by_objective(
    const Fields& f, const Json& json, const std::string& path, const std::string& expected,
    Read read) {
  if (!json.is_object()) f.fail(path, "an object of objective: " + expected, json);
  std::vector<std::pair<std::string, std::vector<Point>>> out;
  for (const auto& [objective, points] : json.items()) {
    out.emplace_back(objective,
                     read_points<Point>(f, points, path + "." + objective, expected, read));
  }
  return out;
}

// Calls `visit` for each non-empty line of a JSON-lines file with "file:line" for messages.
void for_each_json_line(const fs::path& path,
                        const std::function<void(const Json&, const std::string&)>& visit) {
  const std::string text = read_text(path);
  size_t start = 0;
  int64_t number = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    const bool torn = end == std::string::npos;
    if (torn) end = text.size();
    ++number;
    const std::string line = text.substr(start, end - start);
    start = end + 1;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = path.string() + ":" + std::to_string(number);
    Json json;
    try {
      json = Json::parse(line);
    } catch (const nlohmann::json::parse_error& e) {
      if (torn) return;  // a last line without its newline: the writer was killed mid-write
      throw Error(where + ": not valid JSON (" + e.what() + ")");
    }
    if (!json.is_object()) throw Error(where + ": expected a JSON object, got " + json.dump());
    visit(json, where);
  }
}

}  // namespace

RunReport read_run_report(const fs::path& path) {
  const std::string file = path.string();
  const Json json = parse_json(read_text(path), file);
  const Fields f(file);
  if (!json.is_object()) f.fail("(top level)", "an object", json);
  RunReport r;
  r.experiment = f.optional_string(json, "", "experiment");
  if (json.contains("seed")) r.seed = f.integer(json["seed"], "seed");
  r.config_hash = f.optional_string(json, "", "config_hash");
  const auto& systems = f.member(json, "", "systems");
  if (!systems.is_array()) f.fail("systems", "a list of systems", systems);
  for (size_t i = 0; i < systems.size(); ++i) {
    r.systems.push_back(read_system(f, systems[i], "systems[" + std::to_string(i) + "]"));
  }
  if (json.contains("metric_definitions")) {
    const auto& definitions = json["metric_definitions"];
    if (!definitions.is_object())
      f.fail("metric_definitions", "an object of metric: text", definitions);
    for (const auto& [metric, text] : definitions.items()) {
      r.metric_definitions.emplace_back(metric, f.string(text, "metric_definitions." + metric));
    }
  }
  if (json.contains("comparisons")) {
    const auto& comparisons = json["comparisons"];
    if (!comparisons.is_array()) f.fail("comparisons", "a list", comparisons);
    for (size_t i = 0; i < comparisons.size(); ++i) {
      r.comparisons.push_back(
          read_comparison(f, comparisons[i], "comparisons[" + std::to_string(i) + "]"));
    }
  }
  if (json.contains("phases")) {
    const auto& phases = json["phases"];
    if (!phases.is_object()) f.fail("phases", "an object of phase: {seconds}", phases);
    for (const auto& [name, value] : phases.items()) r.phases.push_back(read_phase(name, value));
  }
  const char* curve_shape = "a list of {lambda, score, cost}";
  const char* budget_shape = "a list of {budget, score, cost}";
  if (json.contains("curve"))
    r.curve = read_points<CurvePoint>(f, json["curve"], "curve", curve_shape, read_curve_point);
  if (json.contains("budget_curve")) {
    r.budget_curve = read_points<BudgetPoint>(f, json["budget_curve"], "budget_curve",
                                              budget_shape, read_budget_point);
  }
  if (json.contains("curves_by_objective")) {
    r.curves_by_objective = read_points_by_objective<CurvePoint>(
        f, json["curves_by_objective"], "curves_by_objective", curve_shape, read_curve_point);
  }
  if (json.contains("budget_curves_by_objective")) {
    r.budget_curves_by_objective = read_points_by_objective<BudgetPoint>(
        f, json["budget_curves_by_objective"], "budget_curves_by_objective", budget_shape,
        read_budget_point);
  }
  for (const auto& [key, value] : json.items()) {
    static const char* known[] = {"experiment",          "seed",
                                  "config_hash",         "systems",
                                  "metric_definitions",  "comparisons",
                                  "phases",              "curve",
                                  "budget_curve",        "curves_by_objective",
                                  "budget_curves_by_objective"};
    if (std::find(std::begin(known), std::end(known), key) == std::end(known))
      r.other.push_back({key, value.dump(), value.dump(2)});
  }
  return r;
}

std::vector<MetricsLogFile> read_metrics_logs(const fs::path& run_folder) {
  std::vector<MetricsLogFile> logs;
  std::error_code error;
  for (fs::recursive_directory_iterator it(run_folder, error), end; !error && it != end;
       it.increment(error)) {
    if (it->path().filename() != "metrics.jsonl" || !it->is_regular_file()) continue;
    MetricsLogFile log;
    log.name = it->path().parent_path().lexically_relative(run_folder).generic_string();
    if (log.name == ".") log.name = "(run folder)";
    for_each_json_line(it->path(), [&](const Json& json, const std::string& where) {
      const Fields f(where);
      MetricsRecord record;
      record.step = f.integer(f.member(json, "", "step"), "step");
      record.split = json.contains("split") ? f.string(json["split"], "split") : "train";
      // Numbers are plotted; nulls (non-finite values) and any text fields are not.
      for (const auto& [key, value] : json.items()) {
        if (key != "step" && key != "split" && value.is_number())
          record.values.emplace_back(key, value.get<double>());
      }
      log.records.push_back(std::move(record));
    });
    logs.push_back(std::move(log));
  }
  CHORUS_CHECK(!error, "cannot list the run folder '", run_folder.string(), "': ", error.message());
  std::sort(logs.begin(), logs.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
  return logs;
}

std::vector<TranscriptLine> read_transcripts(const fs::path& path) {
  std::vector<TranscriptLine> lines;
  for_each_json_line(path, [&](const Json& json, const std::string& where) {
    const Fields f(where);
    auto text = [&](const char* key) { return f.string(f.member(json, "", key), key); };
    TranscriptLine line{text("system"), text("set"),    text("input"),
                        text("target"), text("output"), std::nullopt};
    if (json.contains("correct")) {
      if (!json["correct"].is_boolean()) f.fail("correct", "true or false", json["correct"]);
      line.correct = json["correct"].get<bool>();
    }
    lines.push_back(std::move(line));
  });
  return lines;
}

std::vector<AttentionMap> read_attention_maps(const fs::path& path) {
  std::vector<AttentionMap> maps;
  for_each_json_line(path, [&](const Json& json, const std::string& where) {
    const Fields f(where);
    AttentionMap m;
    m.system = f.string(f.member(json, "", "system"), "system");
    m.set = f.optional_string(json, "", "set");
    m.agent = f.optional_string(json, "", "agent");
    m.example = json.contains("example") ? f.integer(json["example"], "example") : 0;
    m.layer = json.contains("layer") ? f.integer(json["layer"], "layer") : 0;
    m.head = json.contains("head") ? f.integer(json["head"], "head") : 0;
    m.query_tokens = f.strings(f.member(json, "", "query_tokens"), "query_tokens");
    m.key_tokens = f.strings(f.member(json, "", "key_tokens"), "key_tokens");
    const auto& weights = f.member(json, "", "weights");
    if (!weights.is_array() || weights.size() != m.query_tokens.size()) {
      f.fail("weights",
             "a list of " + std::to_string(m.query_tokens.size()) + " rows (one per query token)",
             weights);
    }
    for (size_t q = 0; q < weights.size(); ++q) {
      const std::string row_key = "weights[" + std::to_string(q) + "]";
      if (!weights[q].is_array() || weights[q].size() != m.key_tokens.size()) {
        f.fail(row_key,
               "a row of " + std::to_string(m.key_tokens.size()) + " numbers (one per key token)",
               weights[q]);
      }
      std::vector<double> row;
      for (size_t k = 0; k < weights[q].size(); ++k)
        row.push_back(f.number(weights[q][k], row_key + "[" + std::to_string(k) + "]"));
      m.weights.push_back(std::move(row));
    }
    for (const auto& [key, value] : json.items()) {
      const bool per_query =
          key != "weights" && value.is_array() && !value.empty() &&
          value.size() == m.query_tokens.size() &&
          std::all_of(value.begin(), value.end(), [](const Json& v) { return v.is_number(); });
      if (per_query) m.per_query.emplace_back(key, value.get<std::vector<double>>());
    }
    maps.push_back(std::move(m));
  });
  return maps;
}

}  // namespace chorus::eval::report
