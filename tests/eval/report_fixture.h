// Hand-made run folders for the HTML report's tests (fixtures, not the output of a real run).
#pragma once

#include <filesystem>
#include <string>

namespace chorus::eval::report::testing {

// A string that breaks naive HTML: markup, an attribute breaker, entities and non-ASCII text.
inline const std::string kHostile =
    "<script>alert(\"x\")</script> & 'q' </td> caf\u00e9 \u6570\u5b66 \U0001F600";

struct FixtureOptions {
  bool with_cost = true;   // systems[i].cost in report.json
  bool with_curve = true;  // a top-level curve
  bool with_optional_files =
      true;  // config.yaml, metrics.jsonl files, transcripts.jsonl, attention.jsonl
  // A router run's curves: budget_curve, curves_by_objective and budget_curves_by_objective
  // ("reinforce", "ppo"; curve and budget_curve repeat reinforce's), cost objects with FLOPs, and
  // a fourth system "router-reinforce-lambda-0.5" that is a point of the reinforce lambda sweep.
  bool with_budget_curves = false;
};

// Writes a small run folder: report.json with three systems (one named kHostile) on two accuracy
// metrics and one BLEU-like metric, and, as options say, the optional files. The folder must not
// exist.
void write_fixture_run(const std::filesystem::path& folder, const FixtureOptions& options = {});

void write_text(const std::filesystem::path& path, const std::string& text);
std::string read_text(const std::filesystem::path& path);

}  // namespace chorus::eval::report::testing
