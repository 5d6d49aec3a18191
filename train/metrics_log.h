// The metrics of a run: metrics.jsonl (one record per line, appended) and metrics.h5 (series).
#pragma once

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

namespace chorus::train {

// One line of metrics.jsonl: {"step":..,"split":"train"|"eval", <metric>:<value>, ...}.
struct MetricsRecord {
  int64_t step = 0;
  std::string split;
  std::map<std::string, double> values;
};

// Formats a record as one JSON line (no newline); doubles with 17 significant
// digits so they read back bit for bit, non-finite values as null.
std::string format_metrics_record(const MetricsRecord& record);

// Parses one line of metrics.jsonl; throws chorus::Error naming `where` on bad JSON.
MetricsRecord parse_metrics_record(const std::string& line, const std::string& where);

// Reads every complete record of a metrics.jsonl file (a torn last line, left
// by a killed process, is ignored).
std::vector<MetricsRecord> read_metrics_jsonl(const std::filesystem::path& path);

class MetricsLog {
 public:
  // Opens <folder>/metrics.jsonl keeping only the records with step <=
  // keep_until_step (the file is rewritten atomically when it drops any); -1
  // keeps everything, 0 starts empty.
  MetricsLog(const std::filesystem::path& folder, int64_t keep_until_step);

  // Appends the record to metrics.jsonl and flushes it.
  void append(const MetricsRecord& record);

  // Rewrites metrics.h5 atomically: per "<split>.<metric>" one float64 dataset
  // of values and one int64 dataset "<split>.<metric>.step".
  void save_h5() const;

  const std::vector<MetricsRecord>& records() const { return records_; }
  std::filesystem::path jsonl_path() const { return folder_ / "metrics.jsonl"; }
  std::filesystem::path h5_path() const { return folder_ / "metrics.h5"; }

 private:
  std::filesystem::path folder_;
  std::vector<MetricsRecord> records_;
  std::ofstream out_;
};

}  // namespace chorus::train
