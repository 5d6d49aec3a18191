// (source, target) text pairs from JSON lines, TSV, two line-aligned text files, or one text file cut into
// language-model chunks; plain or gzipped.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "tasks/text_lines.h"

#include "common/config.h"

namespace chorus::train {

struct TextPair {
  std::string source;
  std::string target;
};

enum class TextPairFormat { text, jsonl, tsv, lm };

// Where the pairs of one split are and how to pick them out of each line.
struct TextPairSource {
  TextPairFormat format = TextPairFormat::text;
  std::filesystem::path source_file;  // text: the source side, one sentence a line
  std::filesystem::path target_file;  // text: the target side, line-aligned with source_file
  std::filesystem::path file;         // jsonl, tsv: one pair a line; lm: running text
  // jsonl: the (top-level) fields; tsv with header: the header's column names.
  std::string source_field = "source";
  std::string target_field = "target";
  // tsv: whether the first line names the columns; without one, columns are picked by index.
  bool header = false;
  int64_t source_column = 0;
  int64_t target_column = 1;
  // lm: each non-empty line is split at whitespace into words and cut into chunks of at most
  // chunk_words words (the last chunk of a line may be shorter; chunks never span lines), joined by
  // single spaces; every chunk is a target and `prompt` its source (the empty text by default).
  int64_t chunk_words = 64;
  std::string prompt;
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
// lm: lines that are empty after stripping give no chunk (they count in skipped_empty); the source
// (the prompt) may be empty, so skip_empty applies to the target only.
std::vector<TextPair> load_text_pairs(const TextPairSource& source, const TextPairOptions& options,
                                      TextPairStats* stats = nullptr);

// Line reading (plain or gzip) lives with the tasks; the data readers here share it.
using tasks::is_gzip_file;
using tasks::read_text_lines;

const char* to_string(TextPairFormat format);

// Reads one split's block of a config: for text `{source: PATH, target: PATH}`; for jsonl
// `{file: PATH, source_field, target_field}`; for tsv `{file: PATH, header, source_column,
// target_column}` or, with header: true, `{..., source_field, target_field}`; for lm `{file: PATH}`
// (chunk_words and prompt are keys of the data block, set by the caller). Paths resolve against
// the config file's folder and must exist.
TextPairSource read_text_pair_source(const ConfigView& view, TextPairFormat format);

// The chunks of one line of running text for the lm format (see TextPairSource::chunk_words):
// words split at ASCII whitespace, at most chunk_words a chunk, joined by single spaces.
std::vector<std::string> split_into_chunks(std::string_view line, int64_t chunk_words);

}  // namespace chorus::train
