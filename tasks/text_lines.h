// Reading data files line by line, plain or gzip-compressed (recognised by their magic bytes).
#pragma once

#include <filesystem>
#include <string>
#include <vector>

namespace chorus::tasks {

// The lines of `file` (gzip-compressed files, recognised by their magic bytes, are inflated),
// without their "\n" or "\r\n"; a final line without a newline counts, a final newline adds no
// line.
std::vector<std::string> read_text_lines(const std::filesystem::path& file);

// Whether `file` starts with the gzip magic bytes 1f 8b.
bool is_gzip_file(const std::filesystem::path& file);

}  // namespace chorus::tasks
