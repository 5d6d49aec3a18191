// Inline SVG charts: scales with readable ticks, then lines, bars and heatmap cells.
#include "eval/report/svg_charts.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>

#include "eval/report/html_text.h"

namespace chorus::eval::report {
namespace {

// Mean advance of a 12 px sans-serif glyph; layout only needs an estimate (no font metrics here).
constexpr double kGlyphWidth = 6.6;
constexpr const char* kFont = "font-family=\"sans-serif\"";

std::string px(double v) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%.1f", v);
  return buffer;
}

// Cuts long labels to `max_chars` bytes at a UTF-8 character boundary, with an ellipsis.
std::string shorten(const std::string& text, size_t max_chars) {
  if (text.size() <= max_chars) return text;
  size_t cut = max_chars - 1;
  while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;
  return text.substr(0, cut) + "\u2026";
}

double text_width(const std::string& text) {
  return kGlyphWidth * static_cast<double>(text.size());
}

// A 1-2-5 step near `raw`, so that ticks land on round numbers.
double nice_step(double raw) {
  const double magnitude = std::pow(10.0, std::floor(std::log10(raw)));
  const double fraction = raw / magnitude;
  const double nice = fraction <= 1 ? 1 : fraction <= 2 ? 2 : fraction <= 5 ? 5 : 10;
  return nice * magnitude;
}

// Maps data values on [lo, hi] (linear or log10) to pixels on [from, to].
struct Scale {
  double lo = 0, hi = 1;
  bool log = false;
  double from = 0, to = 1;
  double step = 0.2;  // linear tick spacing

  double operator()(double v) const {
    const double t = log ? (std::log10(v) - std::log10(lo)) / (std::log10(hi) - std::log10(lo))
                         : (v - lo) / (hi - lo);
    return from + t * (to - from);
  }

  std::vector<double> ticks() const {
    std::vector<double> out;
    if (log) {
      const int first = static_cast<int>(std::round(std::log10(lo)));
      const int last = static_cast<int>(std::round(std::log10(hi)));
      // A single decade would give two ticks; add 2x and 5x to keep the axis readable.
      const std::vector<double> mantissas =
          last - first <= 1 ? std::vector<double>{1, 2, 5} : std::vector<double>{1};
      for (int e = first; e <= last; ++e) {
        for (const double m : mantissas) {
          const double v = m * std::pow(10.0, e);
          if (v <= hi * (1 + 1e-9)) out.push_back(v);
        }
      }
      return out;
    }
    for (double v = lo; v <= hi + step * 1e-6; v += step)
      out.push_back(std::abs(v) < step * 1e-9 ? 0.0 : v);
    return out;
  }
};

Scale make_scale(const std::vector<double>& values, bool want_log,
                 const std::optional<std::pair<double, double>>& fixed, double from, double to) {
  Scale s;
  s.from = from;
  s.to = to;
  std::vector<double> finite;
  for (const double v : values) {
    if (std::isfinite(v)) finite.push_back(v);
  }
  if (finite.empty()) finite = {0.0, 1.0};
  double lo = *std::min_element(finite.begin(), finite.end());
  double hi = *std::max_element(finite.begin(), finite.end());
  if (fixed) {
    lo = std::min(lo, fixed->first);
    hi = std::max(hi, fixed->second);
  }
  s.log = want_log && lo > 0;
  if (s.log) {
    s.lo = std::pow(10.0, std::floor(std::log10(lo)));
    s.hi = std::pow(10.0, std::ceil(std::log10(hi)));
    if (s.hi <= s.lo) s.hi = s.lo * 10;
    return s;
  }
  if (hi - lo < 1e-12 * std::max(1.0, std::abs(hi))) {  // one value: centre it in a unit-wide range
    const double pad = lo == 0 ? 1.0 : std::abs(lo) * 0.1;
    lo -= pad;
    hi += pad;
  }
  s.step = nice_step((hi - lo) / 5);
  s.lo = fixed ? lo : std::floor(lo / s.step) * s.step;
  s.hi = fixed ? hi : std::ceil(hi / s.step) * s.step;
  return s;
}

void text(std::ostringstream& out, double x, double y, const std::string& content,
          const std::string& attributes) {
  out << "<text x=\"" << px(x) << "\" y=\"" << px(y) << "\" " << attributes << ">"
      << html_escape(content) << "</text>";
}

void open_svg(std::ostringstream& out, double width, double height, const std::string& title,
              const std::string& kind) {
  out << "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart " << kind << "\" width=\""
      << px(width) << "\" height=\"" << px(height) << "\" viewBox=\"0 0 " << px(width) << " "
      << px(height) << "\" role=\"img\" "
      << "aria-label=\"" << html_escape(title) << "\" " << kFont << " font-size=\"12\">";
  out << "<title>" << html_escape(title) << "</title>";
  text(out, 8, 18, shorten(title, static_cast<size_t>(width / kGlyphWidth)),
       "font-size=\"13\" font-weight=\"bold\"");
}

// Grid lines, tick labels and axis titles around the plot box [left, right] x [top, bottom].
void draw_axes(std::ostringstream& out, const Scale& xs, const Scale& ys,
               const std::string& x_label, const std::string& y_label, bool x_ticks = true) {
  const double left = xs.from, right = xs.to, bottom = ys.from, top = ys.to;
  out << "<g class=\"grid\" stroke=\"#e3e3e3\">";
  for (const double v : ys.ticks()) {
    out << "<line x1=\"" << px(left) << "\" x2=\"" << px(right) << "\" y1=\"" << px(ys(v))
        << "\" y2=\"" << px(ys(v)) << "\"/>";
  }
  if (x_ticks) {
    for (const double v : xs.ticks()) {
      out << "<line x1=\"" << px(xs(v)) << "\" x2=\"" << px(xs(v)) << "\" y1=\"" << px(top)
          << "\" y2=\"" << px(bottom) << "\"/>";
    }
  }
  out << "</g>";
  out << "<rect x=\"" << px(left) << "\" y=\"" << px(top) << "\" width=\"" << px(right - left)
      << "\" height=\"" << px(bottom - top) << "\" fill=\"none\" stroke=\"#888\"/>";
  out << "<g class=\"ticks\" fill=\"#333\" font-size=\"11\">";
  for (const double v : ys.ticks())
    text(out, left - 6, ys(v) + 4, format_number(v, 4), "text-anchor=\"end\"");
  if (x_ticks) {
    for (const double v : xs.ticks())
      text(out, xs(v), bottom + 15, format_number(v, 4), "text-anchor=\"middle\"");
  }
  out << "</g>";
  text(out, (left + right) / 2, bottom + 34, x_label + (xs.log ? " (log scale)" : ""),
       "class=\"axis-label\" text-anchor=\"middle\"");
  const double y_mid = (top + bottom) / 2;
  text(
      out, 14, y_mid, y_label + (ys.log ? " (log scale)" : ""),
      "class=\"axis-label\" text-anchor=\"middle\" transform=\"rotate(-90 14 " + px(y_mid) + ")\"");
}

// A legend in a column right of the plot: a colour swatch and the (shortened) name per entry.
void draw_legend(std::ostringstream& out, double x, double y,
                 const std::vector<std::pair<std::string, size_t>>& entries) {
  out << "<g class=\"legend\">";
  for (size_t i = 0; i < entries.size(); ++i) {
    const double row = y + 18.0 * static_cast<double>(i);
    out << "<rect x=\"" << px(x) << "\" y=\"" << px(row - 9)
        << "\" width=\"12\" height=\"10\" fill=\"" << series_color(entries[i].second) << "\"/>";
    text(out, x + 17, row, shorten(entries[i].first, 22), "");
  }
  out << "</g>";
}

double legend_width(const std::vector<std::string>& names) {
  double widest = 0;
  for (const auto& name : names) widest = std::max(widest, text_width(shorten(name, 22)));
  return widest + 34;
}

std::string blues(double t) {
  // ColorBrewer "Blues" stops, interpolated: white for 0, dark blue for the maximum.
  static const int stops[][3] = {
      {247, 251, 255}, {198, 219, 239}, {107, 174, 214}, {33, 113, 181}, {8, 48, 107}};
  t = std::clamp(std::isfinite(t) ? t : 0.0, 0.0, 1.0) * 4;
  const int i = std::min(3, static_cast<int>(t));
  const double f = t - i;
  char buffer[16];
  int rgb[3];
  for (int c = 0; c < 3; ++c)
    rgb[c] = static_cast<int>(std::lround(stops[i][c] + f * (stops[i + 1][c] - stops[i][c])));
  std::snprintf(buffer, sizeof buffer, "#%02x%02x%02x", rgb[0], rgb[1], rgb[2]);
  return buffer;
}

}  // namespace

std::string series_color(size_t index) {
  static const char* palette[] = {"#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f",
                                  "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"};
  return palette[index % (sizeof palette / sizeof palette[0])];
}

bool spans_decades(const std::vector<double>& values, double ratio) {
  double lo = INFINITY, hi = 0;
  for (const double v : values) {
    if (!std::isfinite(v)) continue;
    if (v <= 0) return false;
    lo = std::min(lo, v);
    hi = std::max(hi, v);
  }
  return hi > 0 && hi / lo >= ratio;
}

std::string line_chart_svg(const LineChart& chart) {
  std::vector<double> xs_all, ys_all;
  std::vector<std::pair<std::string, size_t>> entries;
  std::vector<std::string> names;
  for (const auto& s : chart.series) {
    for (size_t i = 0; i < s.x.size() && i < s.y.size(); ++i) {
      if (std::isfinite(s.x[i]) && std::isfinite(s.y[i])) {
        xs_all.push_back(s.x[i]);
        ys_all.push_back(s.y[i]);
      }
    }
    if (!s.in_legend) continue;
    entries.emplace_back(s.name, s.color);
    names.push_back(s.name);
  }
  const bool legend = chart.legend && !entries.empty();
  const double plot_width = 400, plot_height = 210;
  const double left = 70, top = 34;
  const double width = left + plot_width + (legend ? 16 + legend_width(names) : 24);
  const double height = top + plot_height + 48;
  const Scale xs = make_scale(xs_all, chart.x.log, std::nullopt, left, left + plot_width);
  const Scale ys = make_scale(ys_all, chart.y.log, chart.y_range, top + plot_height, top);

  std::ostringstream out;
  open_svg(out, width, height, chart.title, "line-chart");
  draw_axes(out, xs, ys, chart.x.label, chart.y.label);
  if (xs_all.empty())
    text(out, left + plot_width / 2, top + plot_height / 2, "no data",
         "text-anchor=\"middle\" fill=\"#888\"");
  for (const auto& s : chart.series) {
    const std::string color = series_color(s.color);
    std::vector<std::pair<double, double>> points;
    std::vector<std::string> labels;
    for (size_t i = 0; i < s.x.size() && i < s.y.size(); ++i) {
      if (!std::isfinite(s.x[i]) || !std::isfinite(s.y[i])) continue;
      if ((xs.log && s.x[i] <= 0) || (ys.log && s.y[i] <= 0)) continue;
      points.emplace_back(xs(s.x[i]), ys(s.y[i]));
      labels.push_back(i < s.point_labels.size() ? s.point_labels[i] : std::string());
    }
    out << "<g class=\"series\" data-series=\"" << html_escape(s.name) << "\"><title>"
        << html_escape(s.name) << "</title>";
    if (s.lines && points.size() > 1) {
      out << "<polyline fill=\"none\" stroke=\"" << color << "\" stroke-width=\"1.8\" points=\"";
      for (const auto& [x, y] : points) out << px(x) << "," << px(y) << " ";
      out << "\"/>";
    }
    if (s.points || points.size() == 1) {
      for (const auto& [x, y] : points) {
        out << "<circle cx=\"" << px(x) << "\" cy=\"" << px(y) << "\" r=\"4\" fill=\"" << color
            << "\" stroke=\"#fff\"/>";
      }
    }
    for (size_t i = 0; i < points.size(); ++i) {
      if (labels[i].empty()) continue;
      const std::string label = shorten(labels[i], 24);
      const bool flip =
          points[i].first + 6 + text_width(label) > left + plot_width;  // keep it inside the plot
      text(out, points[i].first + (flip ? -6 : 6), points[i].second - 6, label,
           std::string("class=\"point-label\" font-size=\"11\" fill=\"#222\"") +
               (flip ? " text-anchor=\"end\"" : ""));
    }
    out << "</g>";
  }
  if (legend) draw_legend(out, left + plot_width + 16, top + 10, entries);
  out << "</svg>";
  return out.str();
}

std::string bar_chart_svg(const BarChart& chart) {
  std::vector<double> values = {0.0};
  bool fraction = true;  // every value and interval within [0, 1]: use a fixed [0, 1] axis
  for (const auto& group : chart.bars) {
    for (const auto& bar : group) {
      if (!bar) continue;
      values.push_back(bar->value);
      if (bar->interval) {
        values.push_back(bar->interval->first);
        values.push_back(bar->interval->second);
      }
    }
  }
  for (const double v : values) fraction = fraction && v >= 0 && v <= 1;
  std::vector<std::pair<std::string, size_t>> entries;
  for (size_t s = 0; s < chart.series.size(); ++s) {
    entries.emplace_back(chart.series[s],
                         s < chart.series_colors.size() ? chart.series_colors[s] : s);
  }
  const double bar_width = 16;
  const double group_width =
      std::max(110.0, bar_width * static_cast<double>(chart.series.size()) + 24);
  const double plot_width =
      group_width * static_cast<double>(std::max<size_t>(1, chart.groups.size()));
  const double plot_height = 220, left = 70, top = 34;
  const double width = left + plot_width + 16 + legend_width(chart.series);
  const double height = top + plot_height + 48;
  const Scale ys = make_scale(
      values, false, fraction ? std::make_optional(std::make_pair(0.0, 1.0)) : std::nullopt,
      top + plot_height, top);
  Scale xs;  // only its pixel span: groups are categories
  xs.from = left;
  xs.to = left + plot_width;

  std::ostringstream out;
  open_svg(out, width, height, chart.title, "bar-chart");
  draw_axes(out, xs, ys, "", chart.y_label, false);
  const double zero = ys(0.0);
  for (size_t g = 0; g < chart.groups.size(); ++g) {
    const double group_left = left + group_width * static_cast<double>(g);
    const double bars_left =
        group_left + (group_width - bar_width * static_cast<double>(chart.series.size())) / 2;
    text(out, group_left + group_width / 2, top + plot_height + 16,
         shorten(chart.groups[g], static_cast<size_t>(group_width / kGlyphWidth)),
         "class=\"group-label\" text-anchor=\"middle\" font-size=\"11\"");
    for (size_t s = 0; s < chart.series.size() && g < chart.bars.size() && s < chart.bars[g].size();
         ++s) {
      const auto& bar = chart.bars[g][s];
      if (!bar || !std::isfinite(bar->value)) continue;
      const double x = bars_left + bar_width * static_cast<double>(s);
      const double y = ys(bar->value);
      std::string tip =
          chart.series[s] + " \u00b7 " + chart.groups[g] + ": " + format_number(bar->value, 4);
      if (bar->interval) {
        tip += " (95% interval " + format_number(bar->interval->first, 4) + " to " +
               format_number(bar->interval->second, 4) + ")";
      }
      out << "<rect class=\"bar\" data-group=\"" << html_escape(chart.groups[g])
          << "\" data-series=\"" << html_escape(chart.series[s]) << "\" data-value=\""
          << format_number(bar->value, 17) << "\" x=\"" << px(x + 1) << "\" y=\""
          << px(std::min(y, zero)) << "\" width=\"" << px(bar_width - 2) << "\" height=\""
          << px(std::abs(zero - y)) << "\" fill=\"" << series_color(entries[s].second)
          << "\"><title>" << html_escape(tip) << "</title></rect>";
      if (bar->interval) {
        const double cx = x + bar_width / 2, lo = ys(bar->interval->first),
                     hi = ys(bar->interval->second);
        out << "<path class=\"interval\" stroke=\"#222\" stroke-width=\"1.2\" fill=\"none\" d=\"M"
            << px(cx) << " " << px(lo) << "V" << px(hi) << "M" << px(cx - 4) << " " << px(lo) << "H"
            << px(cx + 4) << "M" << px(cx - 4) << " " << px(hi) << "H" << px(cx + 4) << "\"/>";
      }
    }
  }
  draw_legend(out, left + plot_width + 16, top + 10, entries);
  out << "</svg>";
  return out.str();
}

std::string heatmap_svg(const Heatmap& heatmap) {
  const double cell_w = 36, cell_h = 24;
  double widest_row = 0, widest_column = 0, max_value = 0;
  for (const auto& r : heatmap.rows) widest_row = std::max(widest_row, text_width(shorten(r, 18)));
  for (const auto& c : heatmap.columns)
    widest_column = std::max(widest_column, text_width(shorten(c, 18)));
  for (const auto& row : heatmap.values) {
    for (const double v : row) {
      if (std::isfinite(v)) max_value = std::max(max_value, v);
    }
  }
  const double columns = static_cast<double>(heatmap.columns.size()),
               rows = static_cast<double>(heatmap.rows.size());
  const double left = 34 + widest_row + 8;
  const double top = 40 + widest_column * 0.72 + 8;     // column labels are turned 45 degrees
  const double notes_x = left + columns * cell_w + 12;  // the row_values columns
  const double note_w = 64;
  const double key_x = notes_x + note_w * static_cast<double>(heatmap.row_values.size()) + 12;
  const double width = std::max({key_x + 90, text_width(heatmap.title) + 24, 320.0});
  const double height = std::max(top + rows * cell_h + 30, top + 150);
  const bool show_values = heatmap.columns.size() <= 24;

  std::ostringstream out;
  open_svg(out, width, height, heatmap.title, "heatmap");
  text(out, left + columns * cell_w / 2, 34, heatmap.column_axis,
       "class=\"axis-label\" text-anchor=\"middle\" font-size=\"11\"");
  const double mid = top + rows * cell_h / 2;
  text(out, 14, mid, heatmap.row_axis,
       "class=\"axis-label\" text-anchor=\"middle\" font-size=\"11\" transform=\"rotate(-90 14 " +
           px(mid) + ")\"");
  for (size_t c = 0; c < heatmap.columns.size(); ++c) {
    const double x = left + cell_w * (static_cast<double>(c) + 0.5), y = top - 6;
    text(out, x, y, shorten(heatmap.columns[c], 18),
         "class=\"column-label\" transform=\"rotate(-45 " + px(x) + " " + px(y) + ")\"");
  }
  for (size_t n = 0; n < heatmap.row_values.size(); ++n) {
    const double x = notes_x + note_w * (static_cast<double>(n) + 0.5), y = top - 6;
    text(out, x, y, shorten(heatmap.row_values[n].first, 14),
         "class=\"column-label\" font-style=\"italic\" transform=\"rotate(-45 " + px(x) + " " +
             px(y) + ")\"");
    const auto& values = heatmap.row_values[n].second;
    for (size_t r = 0; r < heatmap.rows.size() && r < values.size(); ++r) {
      text(out, notes_x + note_w * static_cast<double>(n + 1) - 6,
           top + cell_h * static_cast<double>(r) + cell_h / 2 + 4, format_number(values[r], 3),
           "class=\"row-value\" text-anchor=\"end\" font-size=\"11\"");
    }
  }
  for (size_t r = 0; r < heatmap.rows.size() && r < heatmap.values.size(); ++r) {
    const double y = top + cell_h * static_cast<double>(r);
    text(out, left - 6, y + cell_h / 2 + 4, shorten(heatmap.rows[r], 18),
         "class=\"row-label\" text-anchor=\"end\"");
    for (size_t c = 0; c < heatmap.columns.size() && c < heatmap.values[r].size(); ++c) {
      const double v = heatmap.values[r][c];
      const double t = max_value > 0 ? v / max_value : 0;
      const double x = left + cell_w * static_cast<double>(c);
      out << "<rect class=\"cell\" x=\"" << px(x) << "\" y=\"" << px(y) << "\" width=\""
          << px(cell_w) << "\" height=\"" << px(cell_h) << "\" fill=\"" << blues(t)
          << "\" stroke=\"#fff\"><title>"
          << html_escape(heatmap.rows[r] + " \u2192 " + heatmap.columns[c] + ": " +
                         format_number(v, 4))
          << "</title></rect>";
      if (show_values) {
        text(out, x + cell_w / 2, y + cell_h / 2 + 3.5, format_fixed(v, 2),
             std::string("font-size=\"9\" text-anchor=\"middle\" fill=\"") +
                 (t > 0.55 ? "#fff" : "#222") + "\"");
      }
    }
  }
  // The colour key: ten steps from 0 to the largest weight.
  out << "<g class=\"color-key\">";
  for (int i = 0; i < 10; ++i) {
    out << "<rect x=\"" << px(key_x) << "\" y=\"" << px(top + 100 - 10.0 * (i + 1))
        << "\" width=\"14\" height=\"10\" fill=\"" << blues((i + 0.5) / 10) << "\"/>";
  }
  text(out, key_x + 20, top + 4, format_number(max_value, 3), "font-size=\"11\"");
  text(out, key_x + 20, top + 100, "0", "font-size=\"11\"");
  out << "</g></svg>";
  return out.str();
}

}  // namespace chorus::eval::report
