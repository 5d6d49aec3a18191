// The metrics of a run: JSON lines appended as training goes, HDF5 series at checkpoints.
#include "train/metrics_log.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <sstream>

#include "common/atomic_file.h"
#include "common/error.h"
#include "model/io/hdf5_tensor_file.h"

namespace chorus::train {

namespace fs = std::filesystem;

std::string format_metrics_record(const MetricsRecord& record) {
  std::ostringstream out;
  out << "{\"step\":" << record.step << ",\"split\":" << nlohmann::json(record.split).dump();
  for (const auto& [name, value] : record.values) {
    CHORUS_CHECK(name != "step" && name != "split", "metric name \"", name, "\" is reserved in metrics.jsonl");
    out << "," << nlohmann::json(name).dump() << ":";
    if (std::isfinite(value)) {
      char buffer[64];
      std::snprintf(buffer, sizeof buffer, "%.17g", value);
      out << buffer;
    } else {
      out << "null";
    }
  }
  out << "}";
  return out.str();
}

MetricsRecord parse_metrics_record(const std::string& line, const std::string& where) {
  nlohmann::json json;
  try {
    json = nlohmann::json::parse(line);
  } catch (const nlohmann::json::exception& e) {
    throw Error(::chorus::detail::concat(where, ": not a JSON object (", e.what(), ")"));
  }
  CHORUS_CHECK(json.is_object() && json.contains("step") && json["step"].is_number_integer() &&
                   json.contains("split") && json["split"].is_string(),
               where, ": expected an object with an integer \"step\" and a string \"split\"");
  MetricsRecord record;
  record.step = json["step"].get<int64_t>();
  record.split = json["split"].get<std::string>();
  for (const auto& [key, value] : json.items()) {
    if (key == "step" || key == "split") continue;
    if (value.is_null()) {
      record.values[key] = std::nan("");
    } else {
      CHORUS_CHECK(value.is_number(), where, ": metric \"", key, "\" should be a number or null");
      record.values[key] = value.get<double>();
    }
  }
  return record;
}

std::vector<MetricsRecord> read_metrics_jsonl(const fs::path& path) {
  std::vector<MetricsRecord> records;
  std::ifstream in(path, std::ios::binary);
  if (!in) return records;
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  size_t start = 0;
  int64_t line_number = 0;
  while (start < text.size()) {
    const size_t end = text.find('\n', start);
    ++line_number;
    if (end == std::string::npos) break;  // torn last line: its writer was killed mid-write
    const std::string line = text.substr(start, end - start);
    start = end + 1;
    if (line.empty()) continue;
    records.push_back(parse_metrics_record(line, path.string() + ":" + std::to_string(line_number)));
  }
  return records;
}

MetricsLog::MetricsLog(const fs::path& folder, int64_t keep_until_step) : folder_(folder) {
  const fs::path path = jsonl_path();
  if (keep_until_step != 0 && fs::exists(path)) {
    for (MetricsRecord& record : read_metrics_jsonl(path)) {
      if (keep_until_step < 0 || record.step <= keep_until_step) records_.push_back(std::move(record));
    }
  }
  std::string kept;
  for (const MetricsRecord& record : records_) kept += format_metrics_record(record) + "\n";
  write_file_atomically(path, kept);
  out_.open(path, std::ios::binary | std::ios::app);
  CHORUS_CHECK(out_, "cannot open ", path.string(), " for appending");
}

void MetricsLog::append(const MetricsRecord& record) {
  const std::string line = format_metrics_record(record) + "\n";
  out_ << line;
  out_.flush();
  CHORUS_CHECK(out_, "cannot write to ", jsonl_path().string());
  records_.push_back(record);
}

void MetricsLog::save_h5() const {
  std::map<std::string, std::pair<std::vector<double>, std::vector<int64_t>>> series;
  for (const MetricsRecord& record : records_) {
    for (const auto& [name, value] : record.values) {
      // '/' separates groups in HDF5; metric names such as "rouge/1" keep their parts with ':'.
      std::string key = record.split + "." + name;
      std::replace(key.begin(), key.end(), '/', ':');
      auto& [values, steps] = series[key];
      values.push_back(value);
      steps.push_back(record.step);
    }
  }
  model::TensorFile file;
  for (auto& [name, data] : series) {
    const auto count = static_cast<int64_t>(data.first.size());
    file.tensors.emplace_back(name, torch::from_blob(data.first.data(), {count}, torch::kFloat64).clone());
    file.tensors.emplace_back(name + ".step", torch::from_blob(data.second.data(), {count}, torch::kInt64).clone());
  }
  file.metadata["content"] = "chorus training metrics: <split>.<metric> values with <split>.<metric>.step";
  model::save_tensor_file(h5_path(), file);
}

}  // namespace chorus::train
