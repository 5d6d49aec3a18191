// Loading text pairs: line reading through zlib (gzip or plain), then per-format field extraction.
#include "train/data/text_pairs.h"

#include <zlib.h>

#include <cstring>
#include <fstream>
#include <string_view>

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/text/utf8.h"

namespace chorus::train {
namespace {

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

std::string_view strip_ascii(std::string_view text) {
  while (!text.empty() && is_space(text.front())) text.remove_prefix(1);
  while (!text.empty() && is_space(text.back())) text.remove_suffix(1);
  return text;
}

std::string where(const std::filesystem::path& file, size_t line_index) {
  return file.string() + ":" + std::to_string(line_index + 1);
}

void check_utf8(const std::filesystem::path& file, const std::vector<std::string>& lines) {
  for (size_t i = 0; i < lines.size(); ++i) {
    if (const auto bad = find_invalid_utf8(lines[i])) {
      throw Error(where(file, i) + ": invalid UTF-8 at byte " + std::to_string(*bad + 1) +
                  " of the line (expected UTF-8 text)");
    }
  }
}

std::vector<std::string> split_tabs(const std::string& line) {
  std::vector<std::string> columns;
  size_t start = 0;
  for (;;) {
    const auto tab = line.find('\t', start);
    columns.push_back(line.substr(start, tab == std::string::npos ? std::string::npos : tab - start));
    if (tab == std::string::npos) return columns;
    start = tab + 1;
  }
}

// Adds a pair unless it is empty (and skipped), honouring max_examples; false once the cap is reached.
bool add_pair(std::vector<TextPair>& pairs, std::string source, std::string target, const TextPairOptions& options,
              TextPairStats& stats) {
  ++stats.lines;
  if (options.strip) {
    source = std::string(strip_ascii(source));
    target = std::string(strip_ascii(target));
  }
  if (options.skip_empty && (source.empty() || target.empty())) {
    ++stats.skipped_empty;
    return true;
  }
  pairs.push_back({std::move(source), std::move(target)});
  return options.max_examples <= 0 || static_cast<int64_t>(pairs.size()) < options.max_examples;
}

void load_text(const TextPairSource& s, const TextPairOptions& options, std::vector<TextPair>& pairs,
               TextPairStats& stats) {
  auto sources = read_text_lines(s.source_file);
  auto targets = read_text_lines(s.target_file);
  CHORUS_CHECK(sources.size() == targets.size(), "the source file '", s.source_file.string(), "' has ",
               sources.size(), " lines but the target file '", s.target_file.string(), "' has ", targets.size(),
               " (expected line-aligned files)");
  check_utf8(s.source_file, sources);
  check_utf8(s.target_file, targets);
  for (size_t i = 0; i < sources.size(); ++i) {
    if (!add_pair(pairs, std::move(sources[i]), std::move(targets[i]), options, stats)) return;
  }
}

void load_jsonl(const TextPairSource& s, const TextPairOptions& options, std::vector<TextPair>& pairs,
                TextPairStats& stats) {
  const auto lines = read_text_lines(s.file);
  check_utf8(s.file, lines);
  const auto field = [&](const nlohmann::json& object, const std::string& name, size_t i) {
    const auto it = object.find(name);
    CHORUS_CHECK(it != object.end(), where(s.file, i), ": missing field '", name, "' (expected a string)");
    CHORUS_CHECK(it->is_string(), where(s.file, i), ": field '", name, "' is ", it->type_name(),
                 " (expected a string)");
    return it->get<std::string>();
  };
  for (size_t i = 0; i < lines.size(); ++i) {
    if (strip_ascii(lines[i]).empty()) continue;  // blank lines separate nothing in JSON lines
    nlohmann::json object;
    try {
      object = nlohmann::json::parse(lines[i]);
    } catch (const nlohmann::json::parse_error& e) {
      throw Error(where(s.file, i) + ": bad JSON (" + e.what() + ")");
    }
    CHORUS_CHECK(object.is_object(), where(s.file, i), ": expected a JSON object, got ", object.type_name());
    if (!add_pair(pairs, field(object, s.source_field, i), field(object, s.target_field, i), options, stats)) return;
  }
}

void load_tsv(const TextPairSource& s, const TextPairOptions& options, std::vector<TextPair>& pairs,
              TextPairStats& stats) {
  const auto lines = read_text_lines(s.file);
  check_utf8(s.file, lines);
  size_t first = 0;
  int64_t source_column = s.source_column, target_column = s.target_column;
  if (s.header) {
    CHORUS_CHECK(!lines.empty(), s.file.string(), ": empty file (expected a header line naming the columns)");
    const auto names = split_tabs(lines[0]);
    const auto column_of = [&](const std::string& name) -> int64_t {
      for (size_t c = 0; c < names.size(); ++c) {
        if (strip_ascii(names[c]) == name) return static_cast<int64_t>(c);
      }
      std::string known;
      for (const auto& n : names) known += (known.empty() ? "'" : ", '") + n + "'";
      throw Error(where(s.file, 0) + ": the header has no column '" + name + "' (it has " + known + ")");
    };
    source_column = column_of(s.source_field);
    target_column = column_of(s.target_field);
    first = 1;
  }
  const auto needed = static_cast<size_t>(std::max(source_column, target_column) + 1);
  for (size_t i = first; i < lines.size(); ++i) {
    if (lines[i].empty()) {  // a blank line is an empty pair
      if (!add_pair(pairs, {}, {}, options, stats)) return;
      continue;
    }
    auto columns = split_tabs(lines[i]);
    CHORUS_CHECK(columns.size() >= needed, where(s.file, i), ": ", columns.size(), " column(s), expected at least ",
                 needed, " (source column ", source_column, ", target column ", target_column, ", 0-based)");
    if (!add_pair(pairs, std::move(columns[static_cast<size_t>(source_column)]),
                  std::move(columns[static_cast<size_t>(target_column)]), options, stats)) {
      return;
    }
  }
}

void load_lm(const TextPairSource& s, const TextPairOptions& options, std::vector<TextPair>& pairs,
             TextPairStats& stats) {
  CHORUS_CHECK(s.chunk_words >= 1, s.file.string(), ": chunk_words = ", s.chunk_words, " (expected at least 1)");
  const auto lines = read_text_lines(s.file);
  check_utf8(s.file, lines);
  const std::string prompt = options.strip ? std::string(strip_ascii(s.prompt)) : s.prompt;
  for (const auto& line : lines) {
    ++stats.lines;
    const auto chunks = split_into_chunks(line, s.chunk_words);
    if (chunks.empty()) {
      ++stats.skipped_empty;
      continue;
    }
    for (const auto& chunk : chunks) {
      pairs.push_back({prompt, chunk});
      if (options.max_examples > 0 && static_cast<int64_t>(pairs.size()) >= options.max_examples) return;
    }
  }
}

}  // namespace

std::vector<std::string> split_into_chunks(std::string_view line, int64_t chunk_words) {
  CHORUS_CHECK(chunk_words >= 1, "chunk_words = ", chunk_words, " (expected at least 1)");
  std::vector<std::string> chunks;
  std::string chunk;
  int64_t words = 0;
  size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && is_space(line[i])) ++i;
    if (i == line.size()) break;
    const size_t start = i;
    while (i < line.size() && !is_space(line[i])) ++i;
    if (words == chunk_words) {
      chunks.push_back(std::move(chunk));
      chunk.clear();
      words = 0;
    }
    if (words > 0) chunk += ' ';
    chunk.append(line.substr(start, i - start));
    ++words;
  }
  if (words > 0) chunks.push_back(std::move(chunk));
  return chunks;
}

const char* to_string(TextPairFormat format) {
  switch (format) {
    case TextPairFormat::text: return "text";
    case TextPairFormat::jsonl: return "jsonl";
    case TextPairFormat::tsv: return "tsv";
    case TextPairFormat::lm: return "lm";
  }
  return "?";
}

std::vector<TextPair> load_text_pairs(const TextPairSource& source, const TextPairOptions& options,
                                      TextPairStats* stats) {
  TextPairStats local;
  std::vector<TextPair> pairs;
  switch (source.format) {
    case TextPairFormat::text: load_text(source, options, pairs, local); break;
    case TextPairFormat::jsonl: load_jsonl(source, options, pairs, local); break;
    case TextPairFormat::tsv: load_tsv(source, options, pairs, local); break;
    case TextPairFormat::lm: load_lm(source, options, pairs, local); break;
  }
  if (stats != nullptr) *stats = local;
  return pairs;
}

TextPairSource read_text_pair_source(const ConfigView& v, TextPairFormat format) {
  TextPairSource s;
  s.format = format;
  switch (format) {
    case TextPairFormat::text:
      s.source_file = v.get_path("source", /*must_exist=*/true);
      s.target_file = v.get_path("target", /*must_exist=*/true);
      break;
    case TextPairFormat::jsonl:
      s.file = v.get_path("file", /*must_exist=*/true);
      s.source_field = v.get<std::string>("source_field", s.source_field);
      s.target_field = v.get<std::string>("target_field", s.target_field);
      break;
    case TextPairFormat::tsv:
      s.file = v.get_path("file", /*must_exist=*/true);
      s.header = v.get<bool>("header", false);
      if (s.header) {
        s.source_field = v.get<std::string>("source_field", s.source_field);
        s.target_field = v.get<std::string>("target_field", s.target_field);
      } else {
        s.source_column = v.get_int("source_column", 0, 0);
        s.target_column = v.get_int("target_column", 1, 0);
      }
      break;
    case TextPairFormat::lm:
      s.file = v.get_path("file", /*must_exist=*/true);
      break;
  }
  return s;
}

}  // namespace chorus::train
