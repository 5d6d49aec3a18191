// Training progress: formatting and the terminal / log-file policies.
#include "train/progress.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <utility>

namespace chorus::train {

std::string format_eta(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "--:--";
  const auto total = static_cast<int64_t>(std::llround(seconds));
  const int64_t hours = total / 3600, minutes = (total / 60) % 60, secs = total % 60;
  char buffer[48];
  if (hours > 0) {
    std::snprintf(buffer, sizeof buffer, "%lld:%02lld:%02lld", static_cast<long long>(hours),
                  static_cast<long long>(minutes), static_cast<long long>(secs));
  } else {
    std::snprintf(buffer, sizeof buffer, "%02lld:%02lld", static_cast<long long>(minutes),
                  static_cast<long long>(secs));
  }
  return buffer;
}

std::string format_bar(int64_t done, int64_t total, int width) {
  width = std::max(width, 1);
  int filled = 0;
  if (total > 0) {
    const int64_t clamped = std::clamp<int64_t>(done, 0, total);
    filled = static_cast<int>(clamped * width / total);
  }
  return "[" + std::string(filled, '#') + std::string(width - filled, '.') + "]";
}

std::string format_progress_line(const ProgressSnapshot& s, int bar_width) {
  char numbers[160];
  std::snprintf(numbers, sizeof numbers, "  loss %.4f  %.0f tok/s  ETA %s", s.loss, s.tokens_per_s,
                format_eta(s.eta_seconds).c_str());
  return s.name + "  step " + std::to_string(s.step) + "/" + std::to_string(s.total) + " " +
         format_bar(s.step, s.total, bar_width) + numbers;
}

Progress::Progress(std::string name, int64_t total_steps, int64_t first_step, int64_t every, bool enabled,
                   bool terminal, std::FILE* out, double min_interval_s)
    : name_(std::move(name)),
      total_(total_steps),
      first_step_(first_step),
      every_(std::max<int64_t>(every, 1)),
      enabled_(enabled),
      terminal_(terminal),
      out_(out),
      min_interval_s_(min_interval_s),
      start_(Clock::now()),
      last_print_(start_) {}

bool Progress::is_terminal(std::FILE* out) { return out != nullptr && isatty(fileno(out)) != 0; }

void Progress::update(int64_t step, double loss, int64_t tokens) {
  if (!enabled_) return;
  tokens_ += tokens;
  const auto now = Clock::now();
  const double elapsed = std::chrono::duration<double>(now - start_).count();
  const int64_t done_here = step - first_step_;
  ProgressSnapshot snapshot;
  snapshot.name = name_;
  snapshot.step = step;
  snapshot.total = total_;
  snapshot.loss = loss;
  snapshot.tokens_per_s = elapsed > 0 ? static_cast<double>(tokens_) / elapsed : 0;
  snapshot.eta_seconds = done_here > 0 ? elapsed / static_cast<double>(done_here) * static_cast<double>(total_ - step)
                                       : -1;
  if (terminal_) {
    std::fprintf(out_, "\r%s\x1b[K", format_progress_line(snapshot).c_str());
    std::fflush(out_);
    line_open_ = true;
    return;
  }
  const bool first = !printed_any_;
  const bool last = step >= total_;
  const bool due = step % every_ == 0 &&
                   std::chrono::duration<double>(now - last_print_).count() >= min_interval_s_;
  if (!(first || last || due)) return;
  emit(format_progress_line(snapshot));
  last_print_ = now;
  printed_any_ = true;
}

void Progress::message(const std::string& text) {
  if (!enabled_) return;
  emit(text);
}

void Progress::emit(const std::string& line) {
  if (line_open_) {
    std::fputs("\r\x1b[K", out_);  // the bar is redrawn below the line at the next update
    line_open_ = false;
  }
  std::fprintf(out_, "%s\n", line.c_str());
  std::fflush(out_);
}

void Progress::finish() {
  if (!enabled_ || !line_open_) return;
  std::fputc('\n', out_);
  std::fflush(out_);
  line_open_ = false;
}

}  // namespace chorus::train
