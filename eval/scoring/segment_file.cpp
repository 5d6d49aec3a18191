#include "eval/scoring/segment_file.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "common/error.h"
#include "common/text/utf8.h"

namespace chorus::eval {

std::vector<std::string> read_segment_file(const std::string& path, const SegmentFileOptions& options) {
  std::ifstream in(path, std::ios::binary);
  CHORUS_CHECK(in.good(), "cannot open segment file '", path, "': ", std::strerror(errno));
  std::ostringstream buffer;
  buffer << in.rdbuf();
  const std::string content = buffer.str();

  std::vector<std::string> lines;
  std::size_t start = 0;
  while (start < content.size()) {
    std::size_t end = content.find('\n', start);
    if (end == std::string::npos) end = content.size();
    std::size_t stop = end;
    if (stop > start && content[stop - 1] == '\r') --stop;
    std::string line = content.substr(start, stop - start);
    const std::size_t number = lines.size() + 1;
    if (const auto bad = find_invalid_utf8(line)) {
      throw Error(detail::concat(path, ":", number, ": invalid UTF-8 at byte ", *bad + 1,
                                 " of the line (expected UTF-8 text)"));
    }
    CHORUS_CHECK(options.allow_empty_lines || !line.empty(), path, ":", number,
                 ": empty line (every line is one segment; pass --allow-empty-lines to score empty segments)");
    lines.push_back(std::move(line));
    start = end + 1;
  }
  return lines;
}

}  // namespace chorus::eval
