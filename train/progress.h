// Training progress on stderr: a redrawn bar on a terminal, plain periodic lines otherwise.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>

namespace chorus::train {

// "MM:SS" below an hour, "H:MM:SS" above; "--:--" when unknown (negative or not finite).
std::string format_eta(double seconds);

// "[####......]" with `width` cells filled in proportion to done/total.
std::string format_bar(int64_t done, int64_t total, int width);

// What one progress line shows.
struct ProgressSnapshot {
  std::string name;
  int64_t step = 0;  // steps done
  int64_t total = 0;
  double loss = 0;
  double tokens_per_s = 0;
  double eta_seconds = -1;
};

// "name  step 120/3000 [####......]  loss 0.4312  1234 tok/s  ETA 02:13"
std::string format_progress_line(const ProgressSnapshot& snapshot, int bar_width = 20);

class Progress {
 public:
  // terminal: redraw one line with '\r' after every step; otherwise print a
  // line every `every` steps but at most every `min_interval_s` seconds (plus
  // the first and the last step). `enabled` false prints nothing.
  Progress(std::string name, int64_t total_steps, int64_t first_step, int64_t every, bool enabled, bool terminal,
           std::FILE* out = stderr, double min_interval_s = 10.0);

  // Whether `out` is a terminal (for the constructor's `terminal`).
  static bool is_terminal(std::FILE* out);

  // After step `step` (steps done) with its loss and the tokens it consumed.
  void update(int64_t step, double loss, int64_t tokens);

  // Prints a separate line (e.g. evaluation results) without breaking the bar.
  void message(const std::string& text);

  // Ends the redrawn line.
  void finish();

 private:
  using Clock = std::chrono::steady_clock;
  void emit(const std::string& line);

  std::string name_;
  int64_t total_;
  int64_t first_step_;
  int64_t every_;
  bool enabled_;
  bool terminal_;
  std::FILE* out_;
  double min_interval_s_;
  Clock::time_point start_;
  Clock::time_point last_print_;
  bool printed_any_ = false;
  bool line_open_ = false;
  int64_t tokens_ = 0;
};

}  // namespace chorus::train
