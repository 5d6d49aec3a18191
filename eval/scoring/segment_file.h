// Reading plain-text segment files (one segment a line) with clear errors.
#pragma once

#include <string>
#include <vector>

namespace chorus::eval {

struct SegmentFileOptions {
  bool allow_empty_lines = false;  // an empty line is usually a misaligned file
};

// Lines of a UTF-8 file without their "\n" or "\r\n"; a final newline does not
// start another segment. Throws chorus::Error naming the file (and line) when
// it cannot be read, holds invalid UTF-8, or has an empty line that is not allowed.
std::vector<std::string> read_segment_file(const std::string& path, const SegmentFileOptions& options = {});

}  // namespace chorus::eval
