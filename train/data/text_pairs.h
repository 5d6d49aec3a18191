// (source, target) text pairs from JSON lines, TSV or two line-aligned text files, plain or gzipped.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "train/config.h"

namespace chorus::train {

struct TextPair {
  std::string source;
  std::string target;
};

enum class TextPairFormat { text, jsonl, tsv };

// Where the pairs of one split are and how to pick them out of each line.
struct TextPairSource {
  TextPairFormat format = TextPairFormat::text;
  std::filesystem::path source_file;  // text: the source side, one sentence a line
  std::filesystem::path target_file;  // text: the target side, line-aligned with source_file
  std::filesystem::path file;         // jsonl, tsv: one pair a line
  // jsonl: the (top-level) fields; tsv with header: the header's column names.
  std::string source_field = "source";
  std::string target_field = "target";
  // tsv: whether the first line names the columns; without one, columns are picked by index.
  bool header = false;
  int64_t source_column = 0;
  int64_t target_column = 1;
};

struct TextPairOptions {
  int64_t max_examples = 0;  // keep the first N pairs (after skipping); 0: all
  bool skip_empty = true;    // drop pairs whose source or target is empty (after stripping)
  bool strip = true;         // trim ASCII whitespace at both ends of each side
};

struct TextPairStats {
  int64_t lines = 0;          // data lines read (a TSV header and blank JSON lines excluded)
  int64_t skipped_empty = 0;  // pairs dropped by skip_empty
};

// Loads the pairs. Errors (chorus::Error) name the file and, where it applies, the 1-based line:
// a missing file, ill-formed UTF-8, bad JSON, a missing or non-string field, a TSV row with too
// few columns, a header without the named column, and two text files with different line counts.
std::vector<TextPair> load_text_pairs(const TextPairSource& source, const TextPairOptions& options,
                                      TextPairStats* stats = nullptr);

// The lines of `file` (gzip-compressed files, recognised by their magic bytes, are inflated),
// without their "\n" or "\r\n"; a final line without a newline counts, a final newline adds no line.
std::vector<std::string> read_text_lines(const std::filesystem::path& file);

// Whether `file` starts with the gzip magic bytes 1f 8b.
bool is_gzip_file(const std::filesystem::path& file);

const char* to_string(TextPairFormat format);

// Reads one split's block of a config: for text `{source: PATH, target: PATH}`; for jsonl
// `{file: PATH, source_field, target_field}`; for tsv `{file: PATH, header, source_column,
// target_column}` or, with header: true, `{..., source_field, target_field}`. Paths resolve against
// the config file's folder and must exist.
TextPairSource read_text_pair_source(const ConfigView& view, TextPairFormat format);

}  // namespace chorus::train
