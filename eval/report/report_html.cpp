// The HTML report: one page, sections in reading order, every text escaped, every chart inline SVG.
#include "eval/report/report_html.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <iterator>
#include <map>
#include <set>
#include <sstream>

#include "common/atomic_file.h"
#include "common/error.h"
#include "eval/report/html_text.h"
#include "eval/report/page_assets.h"
#include "eval/report/run_files.h"
#include "eval/report/svg_charts.h"

namespace chorus::eval::report {
namespace {

namespace fs = std::filesystem;

// Beyond these the page would grow past what a browser shows comfortably; the page says so.
constexpr size_t kMaxExamples = 5000;
constexpr size_t kMaxAttentionMaps = 1000;

std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  CHORUS_CHECK(in, "cannot open '", path.string(), "'");
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// "<table class=...><thead><tr><th>..</th>...</tr></thead><tbody>"
std::string table_start(const std::string& css_class, const std::vector<std::string>& headers) {
  std::string html = "<table class=\"" + css_class + "\"><thead><tr>";
  for (const auto& h : headers) html += "<th>" + html_escape(h) + "</th>";
  return html + "</tr></thead><tbody>";
}

std::string code(const std::string& text) { return "<code>" + html_escape(text) + "</code>"; }

// A sentence saying that an optional input is absent and what would fill the section.
std::string absent(const std::string& sentence) {
  return "<p class=\"absent\">" + sentence + "</p>";
}

bool is_fraction(double v) { return std::isfinite(v) && v >= 0 && v <= 1; }

// Metric names in the order they first appear across systems.
std::vector<std::string> metric_names(const RunReport& report) {
  std::vector<std::string> names;
  for (const auto& s : report.systems) {
    for (const auto& m : s.metrics) {
      if (std::find(names.begin(), names.end(), m.metric) == names.end()) names.push_back(m.metric);
    }
  }
  return names;
}

const MetricScore* find_metric(const SystemScores& system, const std::string& metric) {
  for (const auto& m : system.metrics) {
    if (m.metric == metric) return &m;
  }
  return nullptr;
}

// Accuracies share one axis [0, 1]; a metric on another scale (BLEU, counts) gets its own chart.
bool metric_is_fraction(const RunReport& report, const std::string& metric) {
  for (const auto& s : report.systems) {
    const auto* m = find_metric(s, metric);
    if (!m) continue;
    if (!is_fraction(m->value)) return false;
    if (m->ci95 && !(is_fraction(m->ci95->first) && is_fraction(m->ci95->second))) return false;
  }
  return true;
}

// ---- header ----

std::string folder_name(const fs::path& folder) {
  auto path = fs::absolute(folder).lexically_normal();
  if (path.filename().empty()) path = path.parent_path();
  return path.filename().string();
}

void write_overview(std::ostringstream& out, const fs::path& folder, const RunReport& report) {
  out << "<header id=\"overview\"><h1>Chorus report: "
      << html_escape(report.experiment.empty() ? "experiment" : report.experiment)
      << "</h1><dl class=\"facts\">";
  out << "<dt>run folder</dt><dd>" << code(folder_name(folder)) << "</dd>";
  out << "<dt>experiment</dt><dd>"
      << html_escape(report.experiment.empty() ? "(not named in report.json)" : report.experiment)
      << "</dd>";
  out << "<dt>seed</dt><dd>" << (report.seed ? std::to_string(*report.seed) : "(not recorded)")
      << "</dd>";
  out << "<dt>config hash</dt><dd>"
      << (report.config_hash.empty() ? "(not recorded in report.json)" : code(report.config_hash))
      << "</dd>";
  for (const auto& phase : report.phases) {
    if (phase.name == "total" && phase.seconds)
      out << "<dt>wall time</dt><dd>" << format_seconds(*phase.seconds) << "</dd>";
  }
  // Short entries inline; long ones (diagnostics objects) folded, indented.
  for (const auto& entry : report.other) {
    out << "<dt>" << html_escape(entry.key) << "</dt><dd>";
    if (entry.compact.size() <= 120) {
      out << code(entry.compact);
    } else {
      out << "<details><summary>" << code(entry.compact.substr(0, 80) + " \u2026")
          << "</summary><pre>" << html_escape(entry.indented) << "</pre></details>";
    }
    out << "</dd>";
  }
  out << "</dl>";
  if (report.phases.empty()) {
    out << absent("report.json records no phases (wall time per phase).");
  } else {
    out << "<details open><summary>Phases</summary>"
        << table_start("phases", {"phase", "wall time", "details"});
    for (const auto& phase : report.phases) {
      out << "<tr><td>" << html_escape(phase.name) << "</td><td class=\"num\">"
          << (phase.seconds ? format_seconds(*phase.seconds) : "") << "</td><td>"
          << html_escape(phase.details) << "</td></tr>";
    }
    out << "</tbody></table></details>";
  }
  out << "</header>";
}

// ---- scores ----

std::string score_cell(const MetricScore& m) {
  std::string cell =
      "<td class=\"num\"><span class=\"value\">" + format_fixed(m.value, 3) + "</span>";
  if (m.ci95)
    cell += "<br><small>[" + format_fixed(m.ci95->first, 3) + ", " +
            format_fixed(m.ci95->second, 3) + "]</small>";
  std::string note;
  if (m.n) note += "n=" + std::to_string(*m.n);
  if (!m.answered_by.empty())
    note += (note.empty() ? "" : ", ") + std::string("by ") + m.answered_by;
  if (!note.empty()) cell += "<br><small class=\"note\">" + html_escape(note) + "</small>";
  return cell + "</td>";
}

BarChart score_chart(const RunReport& report, const std::vector<std::string>& metrics,
                     const std::string& title) {
  BarChart chart;
  chart.title = title;
  chart.y_label = metrics.size() == 1 ? metrics.front() : "score";
  chart.groups = metrics;
  for (size_t s = 0; s < report.systems.size(); ++s) {
    chart.series.push_back(report.systems[s].name);
    chart.series_colors.push_back(s);
  }
  for (const auto& metric : metrics) {
    std::vector<std::optional<Bar>> group;
    for (const auto& system : report.systems) {
      const auto* m = find_metric(system, metric);
      group.push_back(m ? std::make_optional(Bar{m->value, m->ci95}) : std::nullopt);
    }
    chart.bars.push_back(std::move(group));
  }
  return chart;
}

void write_scores(std::ostringstream& out, const RunReport& report) {
  out << "<section id=\"scores\"><h2>Scores</h2>";
  const auto metrics = metric_names(report);
  if (report.systems.empty() || metrics.empty()) {
    out << absent("report.json lists no systems with metrics.") << "</section>";
    return;
  }
  out << "<p>Bars are each system's score on the full evaluation set; whiskers are 95% bootstrap "
         "intervals.</p>";
  std::vector<std::string> fractions;
  for (const auto& metric : metrics) {
    if (metric_is_fraction(report, metric)) fractions.push_back(metric);
  }
  out << "<div class=\"charts\">";
  if (!fractions.empty())
    out << bar_chart_svg(score_chart(report, fractions, "Scores with 95% intervals"));
  for (const auto& metric : metrics) {
    if (!metric_is_fraction(report, metric))
      out << bar_chart_svg(score_chart(report, {metric}, metric + " with 95% intervals"));
  }
  out << "</div>";

  out << "<table class=\"scores\"><thead><tr><th>system</th>";
  for (const auto& metric : metrics) out << "<th>" << html_escape(metric) << "</th>";
  out << "</tr></thead><tbody>";
  for (size_t s = 0; s < report.systems.size(); ++s) {
    const auto& system = report.systems[s];
    out << "<tr><td><span class=\"swatch\" style=\"background:" << series_color(s) << "\"></span>"
        << html_escape(system.name) << "<br><small>" << html_escape(system.description)
        << "</small></td>";
    for (const auto& metric : metrics) {
      const auto* m = find_metric(system, metric);
      out << (m ? score_cell(*m) : "<td></td>");
    }
    out << "</tr>";
  }
  out << "</tbody></table>";

  if (!report.metric_definitions.empty()) {
    out << "<dl class=\"definitions\">";
    for (const auto& [metric, text] : report.metric_definitions) {
      out << "<dt>" << html_escape(metric) << "</dt><dd>" << html_escape(text) << "</dd>";
    }
    out << "</dl>";
  }
  out << "<h3>Paired comparisons</h3>";
  if (report.comparisons.empty()) {
    out << absent("report.json has no paired comparisons.");
  } else {
    out << table_start("comparisons",
                       {"system", "baseline", "metric", "difference", "p-value", "test"});
    for (const auto& c : report.comparisons) {
      const bool significant = c.p_value < 0.05;
      out << "<tr" << (significant ? " class=\"significant\"" : "") << "><td>"
          << html_escape(c.system) << "</td><td>" << html_escape(c.baseline) << "</td><td>"
          << html_escape(c.metric) << "</td><td class=\"num\">" << (c.difference > 0 ? "+" : "")
          << format_fixed(c.difference, 3) << "</td><td class=\"num\">"
          << format_number(c.p_value, 3) << (significant ? " *" : "") << "</td><td>"
          << html_escape(c.test) << "</td></tr>";
    }
    out << "</tbody></table><p class=\"note\">* p &lt; 0.05.</p>";
  }
  out << "</section>";
}

// ---- cost ----

// The cost to plot against: FLOPs when every costed system has them, else agent calls, else the
// first key they all share.
std::string cost_axis(const std::vector<const SystemScores*>& costed) {
  auto shared = [&](const std::string& key) {
    return std::all_of(costed.begin(), costed.end(),
                       [&](const auto* s) { return s->cost.count(key) > 0; });
  };
  if (shared("flops")) return "flops";
  if (shared("agent_calls")) return "agent_calls";
  for (const auto& [key, value] : costed.front()->cost) {
    if (shared(key)) return key;
  }
  return "";
}

void write_cost_table(std::ostringstream& out, const RunReport& report,
                      const std::vector<std::string>& keys) {
  out << "<table class=\"costs\"><thead><tr><th>system</th>";
  for (const auto& key : keys) out << "<th>" << html_escape(key) << "</th>";
  out << "</tr></thead><tbody>";
  for (const auto& system : report.systems) {
    out << "<tr><td>" << html_escape(system.name) << "</td>";
    for (const auto& key : keys) {
      const auto it = system.cost.find(key);
      out << "<td class=\"num\">" << (it == system.cost.end() ? "" : format_number(it->second, 4))
          << "</td>";
    }
    out << "</tr>";
  }
  out << "</tbody></table>";
}

// One curve to draw: its legend name and points (x = cost, y = score, labels).
struct CurveSeries {
  std::string name;
  std::vector<double> cost, score;
  std::vector<std::string> labels;
  std::string cost_key;
};

CurveSeries lambda_series(const std::string& name, const std::vector<CurvePoint>& points) {
  CurveSeries s{name, {}, {}, {}, ""};
  for (const auto& p : points) {
    s.cost.push_back(p.cost);
    s.score.push_back(p.score);
    s.labels.push_back("\u03bb=" + format_number(p.lambda, 3));
    if (s.cost_key.empty()) s.cost_key = p.cost_key;
  }
  return s;
}

CurveSeries budget_series(const std::string& name, const std::vector<BudgetPoint>& points) {
  CurveSeries s{name, {}, {}, {}, ""};
  for (const auto& p : points) {
    s.cost.push_back(p.cost);
    s.score.push_back(p.score);
    // An infeasible budget (no cost weight kept the validation cost under it) is marked.
    s.labels.push_back("b=" + format_number(p.budget, 3) +
                       (p.feasible && !*p.feasible ? " (infeasible)" : ""));
    if (s.cost_key.empty()) s.cost_key = p.cost_key;
  }
  return s;
}

// What the curves' costs are ("flops", "agent_calls"): the first curve's that says.
std::string chart_cost_key(const std::vector<CurveSeries>& curves) {
  for (const auto& c : curves) {
    if (!c.cost_key.empty()) return c.cost_key;
  }
  return "";
}

bool same_points(const CurveSeries& a, const CurveSeries& b) {
  return a.cost == b.cost && a.score == b.score && a.labels == b.labels;
}

// Every curve of the report: per objective its lambda sweep and budget curve; `curve` and
// `budget_curve` on their own when no per-objective curve repeats them.
std::vector<CurveSeries> tradeoff_series(const RunReport& report) {
  std::vector<CurveSeries> all;
  for (const auto& [objective, points] : report.curves_by_objective) {
    all.push_back(lambda_series("\u03bb sweep \u00b7 " + objective, points));
    for (const auto& [budget_objective, budget_points] : report.budget_curves_by_objective) {
      if (budget_objective == objective)
        all.push_back(budget_series("budget \u00b7 " + objective, budget_points));
    }
  }
  for (const auto& [objective, points] : report.budget_curves_by_objective) {
    const bool drawn = std::any_of(report.curves_by_objective.begin(),
                                   report.curves_by_objective.end(),
                                   [&](const auto& c) { return c.first == objective; });
    if (!drawn) all.push_back(budget_series("budget \u00b7 " + objective, points));
  }
  auto add_unless_repeated = [&](CurveSeries s) {
    if (s.cost.empty()) return;
    if (std::none_of(all.begin(), all.end(), [&](const auto& o) { return same_points(o, s); }))
      all.push_back(std::move(s));
  };
  add_unless_repeated(lambda_series("\u03bb sweep", report.curve));
  add_unless_repeated(budget_series("budget", report.budget_curve));
  return all;
}

void write_budget_table(std::ostringstream& out, const std::string& objective,
                        const std::vector<BudgetPoint>& points) {
  out << "<table class=\"budgets\"><caption>budget curve" +
             (objective.empty() ? std::string() : " \u00b7 " + html_escape(objective)) +
             "</caption><thead><tr><th>budget</th><th>score</th><th>95% interval</th>"
             "<th>cost</th><th>cost vs best team</th><th>\u03bc</th><th>feasible</th>"
             "<th>router \u03bb</th></tr></thead><tbody>";
  auto cell = [&](const std::optional<double>& v) {
    out << "<td class=\"num\">" << (v ? format_number(*v, 4) : "") << "</td>";
  };
  for (const auto& p : points) {
    out << "<tr><td class=\"num\">" << format_number(p.budget, 4) << "</td>";
    cell(p.score);
    out << "<td class=\"num\">"
        << (p.ci95 ? format_number(p.ci95->first, 3) + " to " + format_number(p.ci95->second, 3)
                   : "")
        << "</td>";
    cell(p.cost);
    cell(p.cost_vs_best_team);
    cell(p.mu);
    out << "<td>" << (p.feasible ? (*p.feasible ? "yes" : "no") : "") << "</td>";
    cell(p.policy_lambda);
    out << "</tr>";
  }
  out << "</tbody></table>";
}

// The system metric the curves score: the one under which most curve points are some system's
// exact score and cost (the routers of the curves are systems too); "" when none is.
std::string curve_metric(const RunReport& report, const std::vector<CurveSeries>& curves,
                         const std::string& cost_key) {
  if (cost_key.empty()) return "";
  std::string best;
  size_t best_matches = 0;
  for (const auto& metric : metric_names(report)) {
    size_t matches = 0;
    for (const auto& c : curves) {
      for (size_t i = 0; i < c.cost.size(); ++i) {
        matches += std::any_of(report.systems.begin(), report.systems.end(), [&](const auto& s) {
          const auto* m = find_metric(s, metric);
          const auto cost = s.cost.find(cost_key);
          return m && cost != s.cost.end() && m->value == c.score[i] && cost->second == c.cost[i];
        });
      }
    }
    if (matches > best_matches) {
      best = metric;
      best_matches = matches;
    }
  }
  return best;
}

// The router curves in one accuracy-cost plot. A report with only `curve` gets the one-series
// chart it always had; with budget or per-objective curves, every curve is a labelled series and
// the fixed systems (those on no curve) are points, at the curves' metric and cost.
void write_tradeoff_curves(std::ostringstream& out, const RunReport& report) {
  out << "<h3>Trade-off curve</h3>";
  const bool several = !report.budget_curve.empty() || !report.curves_by_objective.empty() ||
                       !report.budget_curves_by_objective.empty();
  if (report.curve.empty() && !several) {
    out << absent(
        "report.json has no <code>curve</code> (a list of {lambda, score, cost}; router "
        "experiments write one).");
    return;
  }
  LineChart chart;
  chart.title = "score vs cost along the curve";
  chart.x = {"cost", false};
  chart.y = {"score", false};
  std::vector<double> xs;
  bool fractions = true;
  if (!several) {
    Series series{"curve", {}, {}, {}, 0, true, true};
    for (const auto& p : report.curve) {
      series.x.push_back(p.cost);
      series.y.push_back(p.score);
      series.point_labels.push_back("\u03bb=" + format_number(p.lambda, 3));
      fractions = fractions && is_fraction(p.score);
    }
    xs = series.x;
    chart.series.push_back(std::move(series));
  } else {
    const auto curves = tradeoff_series(report);
    const std::string cost_key = chart_cost_key(curves);
    const std::string metric = curve_metric(report, curves, cost_key);
    chart.title = "score vs cost: router curves and fixed systems";
    chart.x.label = cost_key.empty() ? "cost" : cost_key + " per example";
    chart.y.label = metric.empty() ? "score" : "score (" + metric + ")";
    // The curves take the first colours and the legend; the systems, labelled beside their
    // points, take the colours after them.
    for (size_t i = 0; i < curves.size(); ++i) {
      const auto& c = curves[i];
      chart.series.push_back({c.name, c.cost, c.score, c.labels, i, true, true});
      xs.insert(xs.end(), c.cost.begin(), c.cost.end());
      for (const double v : c.score) fractions = fractions && is_fraction(v);
    }
    // A system at exactly a curve point's score and cost is that point's router: not drawn twice.
    if (!metric.empty()) {
      for (size_t s = 0; s < report.systems.size(); ++s) {
        const auto& system = report.systems[s];
        const auto* m = find_metric(system, metric);
        const auto cost = system.cost.find(cost_key);
        if (!m || cost == system.cost.end()) continue;
        const bool on_curve = std::any_of(curves.begin(), curves.end(), [&](const auto& c) {
          for (size_t i = 0; i < c.cost.size(); ++i) {
            if (c.cost[i] == cost->second && c.score[i] == m->value) return true;
          }
          return false;
        });
        if (on_curve) continue;
        chart.series.push_back({system.name, {cost->second}, {m->value}, {system.name},
                                curves.size() + s, false, true, false});
        xs.push_back(cost->second);
        fractions = fractions && is_fraction(m->value);
      }
    }
  }
  chart.x.log = spans_decades(xs, 20);
  if (fractions) chart.y_range = std::make_pair(0.0, 1.0);
  out << "<div class=\"charts\">" << line_chart_svg(chart) << "</div>";
  if (several && !report.systems.empty() &&
      curve_metric(report, tradeoff_series(report), chart_cost_key(tradeoff_series(report)))
          .empty()) {
    out << "<p class=\"note\">The systems are not plotted: no curve point is a system's score "
           "and cost, so which metric the curves score is not known.</p>";
  }
  if (several) {
    for (const auto& [objective, points] : report.budget_curves_by_objective)
      write_budget_table(out, objective, points);
    if (report.budget_curves_by_objective.empty() && !report.budget_curve.empty())
      write_budget_table(out, "", report.budget_curve);
  }
}

void write_costs(std::ostringstream& out, const RunReport& report) {
  out << "<section id=\"cost\"><h2>Accuracy and cost</h2>";
  std::vector<const SystemScores*> costed;
  std::vector<std::string> keys;
  for (const auto& system : report.systems) {
    if (system.cost.empty()) continue;
    costed.push_back(&system);
    for (const auto& [key, value] : system.cost) {
      if (std::find(keys.begin(), keys.end(), key) == keys.end()) keys.push_back(key);
    }
  }
  const std::string axis = costed.empty() ? "" : cost_axis(costed);
  if (costed.empty()) {
    out << absent(
        "report.json records no cost per system (expected <code>systems[i].cost</code> = "
        "{agent_calls, tokens_in, tokens_out, flops, seconds}, means per example), so there "
        "is no accuracy\u2013cost plot.");
  } else {
    out << "<p>Mean cost per example. Each plot puts a metric against <code>" << html_escape(axis)
        << "</code>; up and to the left is better.</p>";
    write_cost_table(out, report, keys);
    out << "<div class=\"charts\">";
    for (const auto& metric : metric_names(report)) {
      LineChart chart;
      chart.title = metric + " vs " + axis;
      chart.x = {axis + " per example", false};
      chart.y = {metric, false};
      chart.legend = false;
      if (metric_is_fraction(report, metric)) chart.y_range = std::make_pair(0.0, 1.0);
      std::vector<double> xs;
      for (size_t s = 0; s < report.systems.size(); ++s) {
        const auto& system = report.systems[s];
        const auto* m = find_metric(system, metric);
        const auto cost = system.cost.find(axis);
        if (!m || cost == system.cost.end()) continue;
        chart.series.push_back(
            {system.name, {cost->second}, {m->value}, {system.name}, s, false, true});
        xs.push_back(cost->second);
      }
      chart.x.log = spans_decades(xs, 20);
      out << line_chart_svg(chart);
    }
    out << "</div>";
    std::string missing;
    for (const auto& system : report.systems) {
      if (!system.cost.count(axis)) missing += (missing.empty() ? "" : ", ") + system.name;
    }
    if (!missing.empty())
      out << "<p class=\"note\">Not plotted (no " << html_escape(axis)
          << "): " << html_escape(missing) << ".</p>";
  }
  write_tradeoff_curves(out, report);
  out << "</section>";
}

// ---- training curves ----

// The series of one split of a metrics log: metric name -> (steps, values), in first-seen order.
std::vector<Series> split_series(const MetricsLogFile& log,
                                 const std::function<bool(const std::string&)>& take_split,
                                 const std::function<bool(const std::string&)>& take_metric,
                                 bool prefix_split) {
  std::vector<Series> series;
  for (const auto& record : log.records) {
    if (!take_split(record.split)) continue;
    for (const auto& [key, value] : record.values) {
      if (!take_metric(key)) continue;
      const std::string name = prefix_split ? record.split + "/" + key : key;
      auto it = std::find_if(series.begin(), series.end(),
                             [&](const Series& s) { return s.name == name; });
      if (it == series.end()) {
        series.push_back({name, {}, {}, {}, series.size(), true, false});
        it = series.end() - 1;
      }
      it->x.push_back(static_cast<double>(record.step));
      it->y.push_back(value);
    }
  }
  for (auto& s : series) s.points = s.x.size() <= 20;  // sparse evaluations read better as dots
  return series;
}

std::string last_train_values(const MetricsLogFile& log) {
  for (auto it = log.records.rbegin(); it != log.records.rend(); ++it) {
    if (it->split != "train") continue;
    std::string text = "last logged step " + std::to_string(it->step) + ":";
    for (const auto& [key, value] : it->values)
      text += " " + key + " " + format_number(value, 4) + ";";
    text.pop_back();
    return text;
  }
  return "no training records";
}

void write_training(std::ostringstream& out, const std::vector<MetricsLogFile>& logs) {
  out << "<section id=\"training\"><h2>Training curves</h2>";
  if (logs.empty()) {
    out << absent(
               "No <code>metrics.jsonl</code> under the run folder (trainers write one per "
               "phase, e.g. <code>pretrain/&lt;agent&gt;/</code> and "
               "<code>teams/&lt;team&gt;/</code>).")
        << "</section>";
    return;
  }
  for (const auto& log : logs) {
    out << "<h3>" << html_escape(log.name) << "</h3>";
    if (log.records.empty()) {
      out << absent("Its metrics.jsonl holds no records yet.");
      continue;
    }
    out << "<p class=\"note\">" << html_escape(last_train_values(log))
        << "</p><div class=\"charts\">";
    LineChart loss;
    loss.title = log.name + ": training loss";
    loss.x = {"step", false};
    loss.y = {"loss", false};
    loss.series = split_series(
        log, [](const std::string& s) { return s == "train"; },
        [](const std::string& k) { return k == "loss"; }, false);
    if (!loss.series.empty()) {
      loss.y.log = spans_decades(loss.series.front().y, 20);
      loss.legend = false;
      out << line_chart_svg(loss);
    }
    std::set<std::string> other_splits;
    for (const auto& r : log.records) {
      if (r.split != "train") other_splits.insert(r.split);
    }
    LineChart evaluation;
    evaluation.title = log.name + ": evaluation";
    evaluation.x = {"step", false};
    evaluation.y = {"metric", false};
    evaluation.series = split_series(
        log, [](const std::string& s) { return s != "train"; },
        [](const std::string&) { return true; }, other_splits.size() > 1);
    bool fractions = true;
    for (const auto& s : evaluation.series)
      fractions = fractions && std::all_of(s.y.begin(), s.y.end(), is_fraction);
    if (fractions) evaluation.y_range = std::make_pair(0.0, 1.0);
    if (!evaluation.series.empty()) out << line_chart_svg(evaluation);
    out << "</div>";
    if (loss.series.empty()) out << absent("No training loss in this log.");
    if (evaluation.series.empty()) out << absent("No evaluation records in this log.");
  }
  out << "</section>";
}

// ---- examples ----

std::vector<std::string> split_words(const std::string& text) {
  std::vector<std::string> words;
  std::istringstream in(text);
  for (std::string word; in >> word;) words.push_back(word);
  return words;
}

// The output with the words that are not in a longest common subsequence with the target marked.
std::string highlight_mismatch(const std::string& target, const std::string& output) {
  const auto t = split_words(target), o = split_words(output);
  if (o.empty()) return "<em class=\"empty\">(empty)</em>";
  std::vector<bool> kept(o.size(), false);
  if (o.size() * t.size() <= 250000) {  // longer pairs are shown unaligned
    std::vector<std::vector<int>> lcs(o.size() + 1, std::vector<int>(t.size() + 1, 0));
    for (size_t i = o.size(); i-- > 0;) {
      for (size_t j = t.size(); j-- > 0;) {
        lcs[i][j] = o[i] == t[j] ? lcs[i + 1][j + 1] + 1 : std::max(lcs[i + 1][j], lcs[i][j + 1]);
      }
    }
    for (size_t i = 0, j = 0; i < o.size() && j < t.size();) {
      if (o[i] == t[j]) {
        kept[i++] = true;
        ++j;
      } else if (lcs[i + 1][j] >= lcs[i][j + 1]) {
        ++i;
      } else {
        ++j;
      }
    }
  }
  std::string html;
  for (size_t i = 0; i < o.size(); ++i) {
    if (i > 0) html += " ";
    html += kept[i] ? html_escape(o[i]) : "<mark>" + html_escape(o[i]) + "</mark>";
  }
  return html;
}

void write_select(std::ostringstream& out, const std::string& id, const std::string& label,
                  const std::vector<std::string>& values) {
  out << "<label>" << label << " <select id=\"" << id << "\"><option value=\"\">all</option>";
  for (const auto& v : values)
    out << "<option value=\"" << html_escape(v) << "\">" << html_escape(v) << "</option>";
  out << "</select></label> ";
}

template <class Lines, class Field>
std::vector<std::string> distinct(const Lines& lines, Field field) {
  std::vector<std::string> values;
  for (const auto& line : lines) {
    if (std::find(values.begin(), values.end(), field(line)) == values.end())
      values.push_back(field(line));
  }
  return values;
}

void write_examples(std::ostringstream& out, const fs::path& file) {
  out << "<section id=\"examples\"><h2>Examples</h2>";
  if (!fs::is_regular_file(file)) {
    out << absent(
               "No <code>transcripts.jsonl</code> in the run folder, so there are no examples to "
               "browse.")
        << "</section>";
    return;
  }
  const auto lines = read_transcripts(file);
  if (lines.empty()) {
    out << absent("<code>transcripts.jsonl</code> is empty.") << "</section>";
    return;
  }
  out << "<p>Outputs recorded in <code>transcripts.jsonl</code>. Words of a wrong output that "
         "do not match the target are <mark>marked</mark>.</p><div class=\"controls\">";
  write_select(out, "example-system", "system",
               distinct(lines, [](const auto& l) { return l.system; }));
  write_select(out, "example-set", "set", distinct(lines, [](const auto& l) { return l.set; }));
  out << "<label><input type=\"checkbox\" id=\"example-wrong\"> wrong only</label> <span "
         "id=\"example-count\"></span></div>";
  if (lines.size() > kMaxExamples) {
    out << "<p class=\"note\">Showing the first " << kMaxExamples << " of " << lines.size()
        << " lines.</p>";
  }
  out << table_start("examples", {"system", "set", "input", "target", "output", ""});
  for (size_t i = 0; i < lines.size() && i < kMaxExamples; ++i) {
    const auto& l = lines[i];
    const bool correct = l.correct.value_or(l.output == l.target);
    out << "<tr class=\"example " << (correct ? "right" : "wrong") << "\" data-system=\""
        << html_escape(l.system) << "\" data-set=\"" << html_escape(l.set) << "\"><td>"
        << html_escape(l.system) << "</td><td>" << html_escape(l.set) << "</td><td class=\"text\">"
        << html_escape(l.input) << "</td><td class=\"text\">" << html_escape(l.target)
        << "</td><td class=\"text\">"
        << (correct ? html_escape(l.output) : highlight_mismatch(l.target, l.output))
        << "</td><td class=\"verdict\" title=\"" << (correct ? "correct" : "wrong") << "\">"
        << (correct ? "\u2713" : "\u2717") << "</td></tr>";
  }
  out << "</tbody></table></section>";
}

// ---- attention ----

std::string attention_label(const AttentionMap& m) {
  std::string label = m.system;
  if (!m.set.empty()) label += " \u00b7 " + m.set;
  label += " \u00b7 example " + std::to_string(m.example);
  if (!m.agent.empty()) label += " \u00b7 agent " + m.agent;
  return label + " \u00b7 layer " + std::to_string(m.layer) + " \u00b7 head " +
         std::to_string(m.head);
}

// One picker per field that varies across the maps (system, set, example, agent, layer, head).
struct AttentionField {
  const char* name;
  std::string (*value)(const AttentionMap&);
};
const AttentionField kAttentionFields[] = {
    {"system", [](const AttentionMap& m) { return m.system; }},
    {"set", [](const AttentionMap& m) { return m.set; }},
    {"example", [](const AttentionMap& m) { return std::to_string(m.example); }},
    {"agent", [](const AttentionMap& m) { return m.agent; }},
    {"layer", [](const AttentionMap& m) { return std::to_string(m.layer); }},
    {"head", [](const AttentionMap& m) { return std::to_string(m.head); }},
};

void write_attention_pickers(std::ostringstream& out, const std::vector<AttentionMap>& maps) {
  out << "<div class=\"controls\" id=\"attention-pickers\">";
  for (const auto& field : kAttentionFields) {
    const auto values = distinct(maps, field.value);
    out << "<label>" << field.name << " <select class=\"attention-picker\" data-field=\""
        << field.name << "\">";
    for (const auto& v : values) {
      out << "<option value=\"" << html_escape(v) << "\">" << html_escape(v) << "</option>";
    }
    out << "</select></label> ";
  }
  out << "<span id=\"attention-none\" hidden>no map for this choice</span></div>";
}

void write_attention(std::ostringstream& out, const fs::path& file) {
  out << "<section id=\"attention\"><h2>Cross-agent attention</h2>";
  if (!fs::is_regular_file(file)) {
    out << absent(
               "No <code>attention.jsonl</code> in the run folder, so there are no attention "
               "heatmaps (the experiment writes one line per system, example, layer and head: "
               "query_tokens, key_tokens, weights).")
        << "</section>";
    return;
  }
  auto maps = read_attention_maps(file);
  if (maps.empty()) {
    out << absent("<code>attention.jsonl</code> is empty.") << "</section>";
    return;
  }
  out << "<p>Rows are the anchor's query tokens, columns the augmenting agent's key tokens; each "
         "row is that query's attention weights (white 0, dark blue the map's largest weight).</p>";
  if (maps.size() > kMaxAttentionMaps) {
    out << "<p class=\"note\">Showing the first " << kMaxAttentionMaps << " of " << maps.size()
        << " maps.</p>";
    maps.resize(kMaxAttentionMaps);
  }
  write_attention_pickers(out, maps);
  for (size_t i = 0; i < maps.size(); ++i) {
    const auto& m = maps[i];
    Heatmap heatmap{attention_label(m),
                    "anchor query tokens",
                    (m.agent.empty() ? std::string("augmenting agent") : m.agent) + " key tokens",
                    m.query_tokens,
                    m.key_tokens,
                    m.weights,
                    m.per_query};
    out << "<div class=\"attention-map\"";
    for (const auto& field : kAttentionFields) {
      out << " data-" << field.name << "=\"" << html_escape(field.value(m)) << "\"";
    }
    out << (i == 0 ? "" : " hidden") << ">" << heatmap_svg(heatmap) << "</div>";
  }
  out << "</section>";
}

// ---- config ----

void write_config(std::ostringstream& out, const fs::path& file) {
  out << "<section id=\"config\"><h2>Configuration</h2>";
  if (!fs::is_regular_file(file)) {
    out << absent("No <code>config.yaml</code> in the run folder.") << "</section>";
    return;
  }
  out << "<details><summary>config.yaml (resolved)</summary><pre>" << html_escape(read_text(file))
      << "</pre></details></section>";
}

}  // namespace

std::string render_report_html(const fs::path& run_folder) {
  CHORUS_CHECK(fs::is_directory(run_folder), "run folder '", run_folder.string(),
               "' does not exist");
  const fs::path report_file = run_folder / "report.json";
  CHORUS_CHECK(fs::is_regular_file(report_file), "'", run_folder.string(),
               "' holds no report.json; expected a run folder written by chorus train");
  const RunReport report = read_run_report(report_file);
  const auto logs = read_metrics_logs(run_folder);

  std::ostringstream out;
  const std::string title =
      "Chorus report: " +
      (report.experiment.empty() ? folder_name(run_folder) : report.experiment) + " (" +
      folder_name(run_folder) + ")";
  write_page_start(out, title);
  write_overview(out, run_folder, report);
  write_scores(out, report);
  write_costs(out, report);
  write_training(out, logs);
  write_examples(out, run_folder / "transcripts.jsonl");
  write_attention(out, run_folder / "attention.jsonl");
  write_config(out, run_folder / "config.yaml");
  write_page_end(out);
  return out.str();
}

fs::path write_report_html(const fs::path& run_folder) {
  const std::string html = render_report_html(run_folder);
  const fs::path path = run_folder / "report.html";
  write_file_atomically(path, html);
  return path;
}

}  // namespace chorus::eval::report
