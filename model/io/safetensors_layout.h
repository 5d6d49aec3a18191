// The validated layout of a safetensors file (names, dtypes, shapes, byte ranges), parsed without
// LibTorch.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace chorus::model {

// One tensor's entry in the header, after every check has passed: its bytes
// are data[begin, end) of the data buffer, and end - begin equals
// element_bytes × the product of shape.
struct SafetensorsEntry {
  std::string name;
  std::string dtype;  // the format's name: "F32", "BF16", ...
  std::size_t element_bytes = 0;
  std::vector<int64_t> shape;
  std::uint64_t begin = 0;
  std::uint64_t end = 0;
};

struct SafetensorsLayout {
  std::vector<SafetensorsEntry> entries;  // sorted by offset; they tile the data buffer exactly
  std::map<std::string, std::string> metadata;  // "__metadata__"
  std::size_t data_start = 0;                   // byte offset of the data buffer in the file
};

// The dtype names the format defines that Chorus reads, with their element sizes.
const std::vector<std::pair<std::string, std::size_t>>& safetensors_dtypes();

// Parses and validates the header of the file `bytes` (the whole file). Every
// inconsistency is a chorus::Error naming `source` and the problem: header
// length beyond the file or above the format's 100 MB limit, invalid or
// non-object JSON, nesting deeper than the format needs, unknown dtype,
// negative, fractional or overflowing shape, offsets reversed, outside the
// buffer, overlapping or leaving gaps, byte size disagreeing with dtype ×
// shape, duplicate or empty names, non-string metadata, BOOL bytes other
// than 0 and 1. Reads nothing outside `bytes`.
SafetensorsLayout parse_safetensors_layout(std::string_view bytes, const std::string& source);

}  // namespace chorus::model
