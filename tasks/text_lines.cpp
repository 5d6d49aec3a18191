// Line reading through zlib: gzread inflates gzip members and passes other files through.
#include "tasks/text_lines.h"

#include <zlib.h>

#include <cerrno>
#include <cstring>
#include <fstream>

#include "common/error.h"

namespace chorus::tasks {

bool is_gzip_file(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  unsigned char magic[2] = {0, 0};
  in.read(reinterpret_cast<char*>(magic), 2);
  return in.gcount() == 2 && magic[0] == 0x1f && magic[1] == 0x8b;
}

std::vector<std::string> read_text_lines(const std::filesystem::path& file) {
  CHORUS_CHECK(std::filesystem::is_regular_file(file), "data file '", file.string(),
               "' does not exist (expected a text file, plain or gzip-compressed)");
  const bool gzip = is_gzip_file(file);
  // gzread inflates gzip members and passes other files through unchanged.
  gzFile in = gzopen(file.c_str(), "rb");
  CHORUS_CHECK(in != nullptr, "cannot open data file '", file.string(),
               "': ", std::strerror(errno));
  gzbuffer(in, 1 << 17);
  std::string text;
  std::vector<char> chunk(1 << 17);
  for (;;) {
    const int n = gzread(in, chunk.data(), static_cast<unsigned>(chunk.size()));
    if (n < 0) {
      int code = 0;
      const std::string message = gzerror(in, &code);
      gzclose(in);
      throw Error("cannot read data file '" + file.string() + "'" + (gzip ? " (gzip)" : "") + ": " +
                  message);
    }
    if (n == 0) break;
    text.append(chunk.data(), static_cast<size_t>(n));
  }
  // A truncated gzip stream reads as a short file without an error from gzread; gzclose reports it.
  const int closed = gzclose(in);
  CHORUS_CHECK(closed == Z_OK, "cannot read data file '", file.string(),
               "': the gzip stream is truncated or corrupt");
  std::vector<std::string> lines;
  size_t start = 0;
  while (start < text.size()) {
    auto end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    size_t stop = end;
    if (stop > start && text[stop - 1] == '\r') --stop;
    lines.emplace_back(text, start, stop - start);
    start = end + 1;
  }
  return lines;
}

}  // namespace chorus::tasks
