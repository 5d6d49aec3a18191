// The HTML report on hand-made run folders: escaping, sections, bar geometry, missing files,
// errors.
#include <gtest/gtest.h>

#include <unistd.h>
#include <filesystem>
#include <map>
#include <regex>
#include <string>

#include "common/error.h"
#include "eval/report/html_text.h"
#include "eval/report/report_html.h"
#include "report_fixture.h"

namespace chorus::eval::report {
namespace {

namespace fs = std::filesystem;
using testing::FixtureOptions;
using testing::kHostile;
using testing::read_text;
using testing::write_fixture_run;
using testing::write_text;

class ReportHtmlTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() /
            ("chorus-report-test-" + std::to_string(::getpid()) + "-" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
  }
  void TearDown() override { fs::remove_all(root_); }

  // The chorus::Error message of render_report_html(folder), or "" when it renders.
  static std::string render_error(const fs::path& folder) {
    try {
      render_report_html(folder);
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  }

  fs::path root_;
};

size_t count(const std::string& text, const std::string& part) {
  size_t n = 0;
  for (size_t at = text.find(part); at != std::string::npos; at = text.find(part, at + 1)) ++n;
  return n;
}

TEST(HtmlEscape, EscapesMarkupAndQuotesKeepsUnicode) {
  EXPECT_EQ(html_escape("<a href=\"x\" title='y'>&amp;</a>"),
            "&lt;a href=&quot;x&quot; title=&#39;y&#39;&gt;&amp;amp;&lt;/a&gt;");
  EXPECT_EQ(html_escape("caf\u00e9 \u6570\u5b66 \U0001F600"), "caf\u00e9 \u6570\u5b66 \U0001F600");
  EXPECT_EQ(html_escape(""), "");
}

TEST_F(ReportHtmlTest, HostileStringsAreEscapedEverywhere) {
  write_fixture_run(root_);
  const std::string html = render_report_html(root_);
  // The only scripts are the page's own two; no fixture text opens an element or ends one.
  EXPECT_EQ(count(html, "<script"), 2u);
  EXPECT_EQ(html.find("alert(\"x\")"), std::string::npos);
  EXPECT_EQ(html.find("'q'"), std::string::npos);
  const std::string escaped = html_escape(kHostile);
  // System name (table, legend title, bar attribute), description, definition, transcripts,
  // attention tokens and config.yaml all carry it.
  EXPECT_GE(count(html, escaped), 6u)
      << "the escaped text should appear wherever the fixture used it";
  EXPECT_NE(html.find("caf\u00e9 \u6570\u5b66 \U0001F600"), std::string::npos)
      << "UTF-8 text kept as is";
  EXPECT_NE(html.find("<meta charset=\"utf-8\">"), std::string::npos);
}

TEST_F(ReportHtmlTest, EverySectionIsPresent) {
  write_fixture_run(root_);
  const std::string html = render_report_html(root_);
  for (const char* id :
       {"overview", "scores", "cost", "training", "examples", "attention", "config"}) {
    EXPECT_NE(html.find(std::string("id=\"") + id + "\""), std::string::npos) << id;
  }
  EXPECT_NE(html.find("class=\"chart bar-chart\""), std::string::npos);
  EXPECT_NE(html.find("aria-label=\"bleu with 95% intervals\""), std::string::npos)
      << "BLEU is not on the [0, 1] axis";
  EXPECT_NE(html.find("aria-label=\"kv_math vs flops\""), std::string::npos);
  EXPECT_NE(html.find("aria-label=\"score vs cost along the curve\""), std::string::npos);
  EXPECT_NE(html.find("aria-label=\"pretrain/kv: training loss\""), std::string::npos);
  EXPECT_NE(html.find("aria-label=\"teams/fusion: evaluation\""), std::string::npos);
  EXPECT_EQ(count(html, "class=\"chart heatmap\""), 2u);
  EXPECT_EQ(count(html, "class=\"attention-picker\" data-field="), 6u);
  EXPECT_EQ(count(html, "class=\"row-value\""), 8u) << "the gate of each query of both maps";
  EXPECT_EQ(count(html, "<tr class=\"example "), 3u);
  EXPECT_EQ(count(html, "<tr class=\"example wrong\""), 2u);
  EXPECT_NE(html.find(">3 <mark>7</mark><"), std::string::npos)
      << "the wrong word of '3 7' against '3 9' is marked";
  EXPECT_NE(html.find("seed</dt><dd>7"), std::string::npos);
  EXPECT_NE(html.find("1 min 35 s"), std::string::npos) << "the total wall time";
  EXPECT_EQ(html.find("class=\"absent\""), std::string::npos)
      << "nothing is missing in the full fixture";
}

TEST_F(ReportHtmlTest, BarHeightsAreProportionalToValues) {
  write_fixture_run(root_);
  const std::string html = render_report_html(root_);
  const std::regex bar(
      "<rect class=\"bar\" data-group=\"([^\"]*)\" data-series=\"([^\"]*)\" "
      "data-value=\"([^\"]*)\" x=\"[0-9.]+\" "
      "y=\"([0-9.]+)\" width=\"[0-9.]+\" height=\"([0-9.]+)\"");
  std::map<std::string, std::vector<std::pair<double, double>>>
      by_group;  // group -> (value, height)
  for (auto it = std::sregex_iterator(html.begin(), html.end(), bar); it != std::sregex_iterator();
       ++it) {
    by_group[(*it)[1]].emplace_back(std::stod((*it)[3]), std::stod((*it)[5]));
  }
  ASSERT_EQ(by_group.size(), 3u) << "kv_subs, kv_math and bleu";
  for (const auto& [group, bars] : by_group) {
    ASSERT_EQ(bars.size(), 3u) << group;
    double pixels_per_unit = 0;
    for (const auto& [value, height] : bars) {
      if (value > 0) pixels_per_unit = std::max(pixels_per_unit, height / value);
    }
    ASSERT_GT(pixels_per_unit, 0) << group;
    for (const auto& [value, height] : bars) {
      EXPECT_NEAR(height, value * pixels_per_unit, 0.11)
          << group << " value " << value;  // 0.1 px rounding
    }
  }
  // The accuracy bars share one [0, 1] axis 220 px tall.
  EXPECT_NEAR(by_group["kv_math"][2].second, 0.75 * 220, 0.11);
}

TEST_F(ReportHtmlTest, MissingOptionalFilesAreSaidPlainly) {
  write_fixture_run(root_, {false, false, false});
  const std::string html = render_report_html(root_);
  EXPECT_NE(html.find("records no cost per system"), std::string::npos);
  EXPECT_NE(html.find("has no <code>curve</code>"), std::string::npos);
  EXPECT_NE(html.find("No <code>metrics.jsonl</code> under the run folder"), std::string::npos);
  EXPECT_NE(html.find("No <code>transcripts.jsonl</code>"), std::string::npos);
  EXPECT_NE(html.find("No <code>attention.jsonl</code>"), std::string::npos);
  EXPECT_NE(html.find("No <code>config.yaml</code>"), std::string::npos);
  EXPECT_NE(html.find("class=\"chart bar-chart\""), std::string::npos)
      << "the scores are still drawn";
}

// The data-series names of the chart titled `title`, in drawing order.
std::vector<std::string> chart_series(const std::string& html, const std::string& title) {
  const size_t start = html.find("aria-label=\"" + title + "\"");
  if (start == std::string::npos) return {};
  const size_t end = html.find("</svg>", start);
  const std::string svg = html.substr(start, end - start);
  std::vector<std::string> names;
  const std::regex series("<g class=\"series\" data-series=\"([^\"]*)\"");
  for (auto it = std::sregex_iterator(svg.begin(), svg.end(), series);
       it != std::sregex_iterator(); ++it)
    names.push_back((*it)[1]);
  return names;
}

TEST_F(ReportHtmlTest, LambdaCurveAloneIsTheOneSeriesChart) {
  write_fixture_run(root_);
  const std::string html = render_report_html(root_);
  EXPECT_EQ(chart_series(html, "score vs cost along the curve"),
            std::vector<std::string>{"curve"});
  EXPECT_EQ(html.find("router curves and fixed systems"), std::string::npos);
  EXPECT_EQ(html.find("class=\"budgets\""), std::string::npos);
  EXPECT_NE(html.find(">\u03bb=0.5</text>"), std::string::npos);
}

TEST_F(ReportHtmlTest, BudgetAndObjectiveCurvesAreLabelledSeries) {
  FixtureOptions options;
  options.with_budget_curves = true;
  write_fixture_run(root_, options);
  const std::string html = render_report_html(root_);
  const std::string title = "score vs cost: router curves and fixed systems";
  // curve and budget_curve repeat reinforce's and are not drawn again; the router system sits on
  // the reinforce sweep and is not drawn as a point; the fixed systems are.
  // Objectives in file order (the fixture's JSON sorts keys: ppo first).
  const std::vector<std::string> expected = {
      "\u03bb sweep \u00b7 ppo",       "budget \u00b7 ppo",
      "\u03bb sweep \u00b7 reinforce", "budget \u00b7 reinforce",
      "agent-kv",                      "agent-math",
      html_escape(kHostile)};
  EXPECT_EQ(chart_series(html, title), expected);
  const size_t chart = html.find("aria-label=\"" + title + "\"");
  const std::string svg = html.substr(chart, html.find("</svg>", chart) - chart);
  const size_t legend = svg.find("<g class=\"legend\">");
  ASSERT_NE(legend, std::string::npos);
  for (const char* name : {"\u03bb sweep \u00b7 reinforce", "budget \u00b7 reinforce",
                           "\u03bb sweep \u00b7 ppo", "budget \u00b7 ppo"}) {
    EXPECT_NE(svg.find(std::string(">") + name + "</text>", legend), std::string::npos) << name;
  }
  EXPECT_EQ(svg.find(">agent-math</text>", legend), std::string::npos)
      << "systems are labelled beside their points, not in the legend";
  EXPECT_NE(svg.find(">agent-math</text>"), std::string::npos);
  EXPECT_NE(svg.find(">b=0.1 (infeasible)</text>"), std::string::npos);
  EXPECT_NE(svg.find(">b=0.5</text>"), std::string::npos);
  EXPECT_NE(svg.find("flops per example (log scale)"), std::string::npos);
  EXPECT_NE(svg.find("score (kv_subs)"), std::string::npos)
      << "the metric under which the router system is a curve point";
  EXPECT_EQ(svg.find("router-reinforce-lambda-0.5"), std::string::npos);
  EXPECT_EQ(count(html, "<table class=\"budgets\">"), 2u) << "one per objective";
  EXPECT_NE(html.find("budget curve \u00b7 ppo"), std::string::npos);
  EXPECT_EQ(html.find("aria-label=\"score vs cost along the curve\""), std::string::npos);
}

TEST_F(ReportHtmlTest, CurvesNotRepeatedPerObjectiveAreDrawnOnTheirOwn) {
  write_fixture_run(root_);
  const std::string curves =
      R"("curve": [{"lambda": 0, "score": 0.6, "cost": {"flops": 20}}],
         "budget_curve": [{"budget": 0.5, "score": 0.55, "cost": {"flops": 12}}]})";
  write_text(root_ / "report.json",
             R"({"systems": [{"name": "arm", "metrics": {"em": {"value": 0.5}}, "cost": {"flops": 10}},
                 {"name": "router-budget", "metrics": {"em": {"value": 0.55}}, "cost": {"flops": 12}}],)" +
                 curves);
  std::string html = render_report_html(root_);
  const std::string title = "score vs cost: router curves and fixed systems";
  EXPECT_EQ(chart_series(html, title), (std::vector<std::string>{"\u03bb sweep", "budget", "arm"}));
  EXPECT_EQ(count(html, "<table class=\"budgets\">"), 1u);
  EXPECT_EQ(html.find("The systems are not plotted"), std::string::npos);

  // No system is a curve point: the curves' metric is unknown and the systems are left out.
  write_text(root_ / "report.json",
             R"({"systems": [{"name": "arm", "metrics": {"em": {"value": 0.5}}, "cost": {"flops": 10}}],)" +
                 curves);
  html = render_report_html(root_);
  EXPECT_EQ(chart_series(html, title), (std::vector<std::string>{"\u03bb sweep", "budget"}));
  EXPECT_NE(html.find("The systems are not plotted"), std::string::npos);
}

TEST_F(ReportHtmlTest, MalformedBudgetCurveNamesTheKey) {
  write_fixture_run(root_);
  write_text(
      root_ / "report.json",
      R"({"systems": [], "budget_curves_by_objective": {"ppo": [{"budget": 0.5, "score": 0.5, "cost": 1}, {"budget": "half", "score": 0.5, "cost": 1}]}})");
  std::string message = render_error(root_);
  EXPECT_NE(message.find(
                "report.json: budget_curves_by_objective.ppo[1].budget: expected a number, got "
                "\"half\""),
            std::string::npos)
      << message;
  write_text(root_ / "report.json", R"({"systems": [], "curves_by_objective": [1]})");
  message = render_error(root_);
  EXPECT_NE(message.find("report.json: curves_by_objective: expected an object of objective"),
            std::string::npos)
      << message;
  write_text(root_ / "report.json",
             R"({"systems": [], "budget_curve": [{"budget": 1, "score": 1, "cost": 1, "feasible": "yes"}]})");
  message = render_error(root_);
  EXPECT_NE(message.find("report.json: budget_curve[0].feasible: expected true or false"),
            std::string::npos)
      << message;
}

TEST_F(ReportHtmlTest, WritesReportHtmlAtomically) {
  write_fixture_run(root_);
  const fs::path written = write_report_html(root_);
  EXPECT_EQ(written, root_ / "report.html");
  EXPECT_EQ(read_text(written), render_report_html(root_));
  size_t files = 0;
  for (const auto& entry : fs::directory_iterator(root_)) files += entry.is_regular_file();
  EXPECT_EQ(files, 5u)
      << "report.json, config.yaml, transcripts, attention and report.html; no temporary left";
}

TEST_F(ReportHtmlTest, MalformedReportJsonNamesFileAndLine) {
  write_fixture_run(root_);
  write_text(root_ / "report.json",
             "{\n  \"experiment\": \"kv_arithmetic\",\n  \"systems\": [,]\n}\n");
  const std::string message = render_error(root_);
  EXPECT_NE(message.find((root_ / "report.json").string() + ":3:"), std::string::npos) << message;
  EXPECT_NE(message.find("not valid JSON"), std::string::npos) << message;
}

TEST_F(ReportHtmlTest, WrongShapeNamesTheKey) {
  write_fixture_run(root_);
  write_text(
      root_ / "report.json",
      R"({"systems": [{"name": "a", "metrics": {"em": {"value": 1}}}, {"name": "b", "metrics": {"em": {"value": "high"}}}]})");
  std::string message = render_error(root_);
  EXPECT_NE(
      message.find("report.json: systems[1].metrics.em.value: expected a number, got \"high\""),
      std::string::npos)
      << message;
  write_text(root_ / "report.json", R"({"experiment": "kv_arithmetic"})");
  message = render_error(root_);
  EXPECT_NE(message.find("report.json: systems: missing"), std::string::npos) << message;
}

TEST_F(ReportHtmlTest, MalformedJsonLinesNameFileAndLine) {
  write_fixture_run(root_);
  write_text(root_ / "transcripts.jsonl",
             "{\"system\": \"a\", \"set\": \"s\", \"input\": \"i\", \"target\": \"t\", \"output\": "
             "\"o\"}\n{oops\n");
  std::string message = render_error(root_);
  EXPECT_NE(message.find("transcripts.jsonl:2: not valid JSON"), std::string::npos) << message;

  fs::remove(root_ / "transcripts.jsonl");
  write_text(
      root_ / "attention.jsonl",
      R"({"system": "t", "query_tokens": ["a"], "key_tokens": ["x", "y"], "weights": [[0.5]]})"
      "\n");
  message = render_error(root_);
  EXPECT_NE(message.find("attention.jsonl:1: weights[0]: expected a row of 2 numbers"),
            std::string::npos)
      << message;

  fs::remove(root_ / "attention.jsonl");
  write_text(root_ / "teams" / "fusion" / "metrics.jsonl",
             "{\"step\": \"ten\", \"split\": \"train\"}\n");
  message = render_error(root_);
  EXPECT_NE(message.find("teams/fusion/metrics.jsonl:1: step: expected an integer"),
            std::string::npos)
      << message;
}

TEST_F(ReportHtmlTest, MissingFolderOrReportIsAnError) {
  EXPECT_NE(render_error(root_ / "nowhere").find("nowhere' does not exist"), std::string::npos);
  fs::create_directories(root_);
  EXPECT_NE(render_error(root_).find("holds no report.json"), std::string::npos);
}

}  // namespace
}  // namespace chorus::eval::report
