// Hand-made run folders for the HTML report's tests (fixtures, not the output of a real run).
#include "report_fixture.h"

#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <stdexcept>

namespace chorus::eval::report::testing {

namespace fs = std::filesystem;
using nlohmann::json;

void write_text(const fs::path& path, const std::string& text) {
  fs::create_directories(path.parent_path());
  std::ofstream out(path, std::ios::binary);
  out << text;
  if (!out) throw std::runtime_error("cannot write " + path.string());
}

std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path.string());
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

namespace {

json metric(double value, double low, double high) {
  return {{"value", value},
          {"ci95", {low, high}},
          {"ci_half_width", (high - low) / 2},
          {"n", 200},
          {"answered_by", "x"}};
}

json report_json(const FixtureOptions& options) {
  json systems = json::array();
  systems.push_back({{"name", "agent-kv"},
                     {"description", "agent 'kv' alone"},
                     {"metrics",
                      {{"kv_subs", metric(0.9, 0.85, 0.94)},
                       {"kv_math", metric(0.1, 0.06, 0.15)},
                       {"bleu", metric(41.5, 38.0, 45.0)}}}});
  systems.push_back({{"name", "agent-math"},
                     {"description", "agent 'math' alone"},
                     {"metrics",
                      {{"kv_subs", metric(0.0, 0.0, 0.0)},
                       {"kv_math", metric(0.25, 0.2, 0.31)},
                       {"bleu", metric(12.0, 10.0, 14.5)}}}});
  systems.push_back({{"name", kHostile},
                     {"description", "description " + kHostile},
                     {"metrics",
                      {{"kv_subs", metric(0.6, 0.53, 0.66)},
                       {"kv_math", metric(0.75, 0.69, 0.8)},
                       {"bleu", metric(30.0, 27.0, 33.0)}}}});
  if (options.with_cost) {
    const double flops[] = {2.0e6, 3.0e6, 9.0e7};
    for (size_t i = 0; i < systems.size(); ++i) {
      systems[i]["cost"] = {{"agent_calls", i == 2 ? 2.0 : 1.0},
                            {"tokens_in", 6.0},
                            {"tokens_out", 3.0},
                            {"flops", flops[i]},
                            {"seconds", 0.001 * static_cast<double>(i + 1)}};
    }
  }
  json report = {
      {"experiment", "kv_arithmetic"},
      {"note", "hand-made test fixture, not a real run"},
      {"seed", 7},
      {"world", {{"keys", 40}, {"max_value", 10}}},
      {"metric_definitions", {{"kv_subs", "exact match " + kHostile}, {"kv_math", "exact match"}}},
      {"systems", systems},
      {"comparisons",
       {{{"system", kHostile},
         {"baseline", "agent-kv"},
         {"metric", "kv_math"},
         {"difference", 0.65},
         {"p_value", 0.001},
         {"test", "paired bootstrap"}}}},
      {"phases",
       {{"pretrain", {{"seconds", 12.5}}},
        {"pretrain_kv", {{"seconds", 10.0}, {"cached", true}}},
        {"total", {{"seconds", 95.0}}}}}};
  if (options.with_curve) {
    report["curve"] = {{{"lambda", 0.0}, {"score", 0.8}, {"cost", 3.0}},
                       {{"lambda", 0.5}, {"score", 0.7}, {"cost", 1.5}},
                       {{"lambda", 1.0}, {"score", 0.4}, {"cost", 1.0}}};
  }
  if (options.with_budget_curves) {
    // Scores on the first metric (kv_subs); costs in FLOPs between the agents' and the team's.
    auto cost = [](double flops) { return json{{"agent_calls", 1.0}, {"flops", flops}}; };
    auto lambda_point = [&](double lambda, double score, double flops) {
      return json{{"lambda", lambda}, {"score", score}, {"cost", cost(flops)}};
    };
    auto budget_point = [&](double budget, double score, double flops, bool feasible) {
      return json{{"budget", budget},     {"score", score},
                  {"ci95", {score - 0.05, score + 0.05}},
                  {"cost", cost(flops)},  {"cost_vs_best_team", flops / 9.0e7},
                  {"feasible", feasible}, {"mu", 0.25},
                  {"policy_lambda", 0.5}};
    };
    const json reinforce = {lambda_point(0.0, 0.85, 6.0e7), lambda_point(0.5, 0.7, 2.5e7),
                            lambda_point(1.0, 0.4, 4.0e6)};
    const json ppo = {lambda_point(0.0, 0.8, 5.0e7), lambda_point(1.0, 0.35, 3.5e6)};
    const json reinforce_budgets = {budget_point(0.1, 0.3, 8.0e6, false),
                                    budget_point(0.5, 0.65, 4.0e7, true)};
    const json ppo_budgets = {budget_point(0.5, 0.6, 3.8e7, true)};
    report["curve"] = reinforce;
    report["budget_curve"] = reinforce_budgets;
    report["curves_by_objective"] = {{"reinforce", reinforce}, {"ppo", ppo}};
    report["budget_curves_by_objective"] = {{"reinforce", reinforce_budgets},
                                            {"ppo", ppo_budgets}};
    json router = systems[0];
    router["name"] = "router-reinforce-lambda-0.5";
    router["metrics"]["kv_subs"]["value"] = 0.7;
    router["cost"] = cost(2.5e7);
    report["systems"].push_back(router);
  }
  return report;
}

std::string metrics_log(double first_loss, bool torn_last_line) {
  std::string text;
  double loss = first_loss;
  for (int step = 10; step <= 100; step += 10, loss *= 0.6) {
    text += json({{"step", step},
                  {"split", "train"},
                  {"loss", loss},
                  {"lr", 0.001},
                  {"grad_norm", 1.5},
                  {"tokens", 512},
                  {"tokens_per_s", 9000.0}})
                .dump() +
            "\n";
    if (step % 50 == 0)
      text +=
          json({{"step", step}, {"split", "eval"}, {"exact_match", step / 120.0}}).dump() + "\n";
  }
  text += "{\"step\":100,\"split\":\"eval\",\"exact_match\":null}\n";  // a non-finite value,
                                                                       // written as null
  if (torn_last_line) text += "{\"step\":110,\"spl";
  return text;
}

std::string transcripts() {
  std::string text;
  const char* systems[] = {"agent-kv", "agent-math"};
  for (const char* system : systems) {
    text += json({{"system", system},
                  {"set", "kv_math"},
                  {"input", "bavo + tesku"},
                  {"target", "3 9"},
                  {"output", std::string(system) == "agent-kv" ? "3 9" : "3 7"}})
                .dump() +
            "\n";
  }
  text += json({{"system", kHostile},
                {"set", "kv_subs"},
                {"input", kHostile},
                {"target", "1 + 2"},
                {"output", "1 " + kHostile}})
              .dump() +
          "\n";
  return text;
}

std::string attention() {
  std::string text;
  for (int head = 0; head < 2; ++head) {
    text += json({{"system", "team-fusion"},
                  {"set", "kv_math_heldout"},
                  {"example", 0},
                  {"agent", "kv"},
                  {"layer", 0},
                  {"head", head},
                  {"query_tokens", {"bavo", "+", kHostile, "</s>"}},
                  {"key_tokens", {"<null>", "31", "+", "8", "</s>"}},
                  {"weights",
                   {{0.1, 0.6, 0.1, 0.1, 0.1},
                    {0.2, 0.2, 0.2, 0.2, 0.2},
                    {0.05, 0.05, 0.1, 0.7, 0.1},
                    {0.5, 0.1, 0.1, 0.1, 0.2}}},
                  {"gate", {0.125, 0.25, 0.5, 1.0}}})
                .dump() +
            "\n";
  }
  return text;
}

}  // namespace

void write_fixture_run(const fs::path& folder, const FixtureOptions& options) {
  if (fs::exists(folder)) throw std::runtime_error("fixture folder exists: " + folder.string());
  fs::create_directories(folder);
  write_text(folder / "report.json", report_json(options).dump(2) + "\n");
  if (!options.with_optional_files) return;
  write_text(folder / "config.yaml",
             "# hand-made test fixture\nexperiment: kv_arithmetic\nnote: |\n  " + kHostile + "\n");
  write_text(folder / "pretrain" / "kv" / "metrics.jsonl", metrics_log(4.0, false));
  write_text(folder / "teams" / "fusion" / "metrics.jsonl", metrics_log(2.0, true));
  write_text(folder / "transcripts.jsonl", transcripts());
  write_text(folder / "attention.jsonl", attention());
}

}  // namespace chorus::eval::report::testing
