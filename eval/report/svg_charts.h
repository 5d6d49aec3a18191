// Inline SVG charts for the HTML report: line/point charts, grouped bars with intervals, heatmaps.
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace chorus::eval::report {

// The colour of the i-th series (Tableau 10; it cycles). The page gives each system the same
// colour in every chart by passing the system's index.
std::string series_color(size_t index);

struct Axis {
  std::string label;
  bool log = false;  // log10 scale; ignored (linear) when some value is not positive
};

// True when `values` are all positive and span at least `ratio` (a log axis reads better).
bool spans_decades(const std::vector<double>& values, double ratio = 50);

struct Series {
  std::string name;
  std::vector<double> x, y;               // non-finite points are skipped
  std::vector<std::string> point_labels;  // empty, or one text per point drawn beside it
  size_t color = 0;                       // index into series_color
  bool lines = true;                      // join the points
  bool points = false;                    // mark every point (a single point is always marked)
  bool in_legend = true;                  // false: named only by its point labels and tooltip
};

struct LineChart {
  std::string title;
  Axis x, y;
  std::vector<Series> series;
  bool legend = true;
  std::optional<std::pair<double, double>> y_range;  // fixed y limits (e.g. [0, 1] for accuracies)
};

// An <svg> element (no XML prolog) with axes, ticks, grid, axis labels and a legend.
std::string line_chart_svg(const LineChart& chart);

struct Bar {
  double value = 0;
  std::optional<std::pair<double, double>> interval;  // drawn as an error bar
};

// Bars grouped along x (e.g. one group per metric), one bar per series in each group (e.g. one
// per system). Bars start at 0. Each bar is a <rect class="bar"> with data-group, data-series and
// data-value attributes, so that tests and scripts can read what was drawn.
struct BarChart {
  std::string title;
  std::string y_label;
  std::vector<std::string> groups;
  std::vector<std::string> series;
  std::vector<size_t> series_colors;                  // one per series; default: the series index
  std::vector<std::vector<std::optional<Bar>>> bars;  // [group][series]
};
std::string bar_chart_svg(const BarChart& chart);

// A matrix of weights: rows labelled on the left, columns on top, white (0) to dark blue (the
// largest value), with a colour key.
struct Heatmap {
  std::string title;
  std::string row_axis, column_axis;
  std::vector<std::string> rows, columns;
  std::vector<std::vector<double>> values;  // [row][column]
  // Extra numbers per row (e.g. a gate per query), printed in named columns right of the cells.
  std::vector<std::pair<std::string, std::vector<double>>> row_values;
};
std::string heatmap_svg(const Heatmap& heatmap);

}  // namespace chorus::eval::report
