// The self-contained HTML report of a run folder (report.html beside report.json).
#pragma once

#include <filesystem>
#include <string>

namespace chorus::eval::report {

// Builds the page from the files of `run_folder`: report.json (required), config.yaml, every
// metrics.jsonl below it, transcripts.jsonl and attention.jsonl (each optional: the page says so
// when one is missing). One file with inline CSS, SVG and a little script; it loads nothing.
// Throws chorus::Error when the folder or report.json is missing, or a file is malformed (the
// message names the file and the line or key).
std::string render_report_html(const std::filesystem::path& run_folder);

// Writes render_report_html(run_folder) to run_folder/report.html atomically; returns that path.
std::filesystem::path write_report_html(const std::filesystem::path& run_folder);

}  // namespace chorus::eval::report
