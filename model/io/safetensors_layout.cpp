#include "model/io/safetensors_layout.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstring>
#include <limits>
#include <unordered_set>

#include "common/error.h"

namespace chorus::model {
namespace {

// The reference implementation refuses headers above 100 MB; so do we.
constexpr std::uint64_t kMaxHeaderBytes = 100'000'000;
// Object > tensor entry > shape array: anything deeper is not a safetensors header.
constexpr int kMaxJsonDepth = 4;
constexpr const char* kMetadataKey = "__metadata__";

std::size_t element_bytes(const std::string& dtype) {
  for (const auto& [name, bytes] : safetensors_dtypes())
    if (name == dtype) return bytes;
  return 0;
}

std::string supported_dtypes() {
  std::string out;
  for (const auto& entry : safetensors_dtypes()) out += (out.empty() ? "" : " ") + entry.first;
  return out;
}

// Nesting depth of JSON text, ignoring brackets inside strings. Checked before
// parsing so hostile input cannot make the parser or the value tree deep.
int json_depth(std::string_view text) {
  int depth = 0, deepest = 0;
  bool in_string = false, escaped = false;
  for (char c : text) {
    if (in_string) {
      if (escaped)
        escaped = false;
      else if (c == '\\')
        escaped = true;
      else if (c == '"')
        in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      deepest = std::max(deepest, ++depth);
    } else if (c == '}' || c == ']') {
      --depth;
    }
  }
  return deepest;
}

std::uint64_t checked_multiply(std::uint64_t a, std::uint64_t b, const std::string& where) {
  std::uint64_t product = 0;
  CHORUS_CHECK(!__builtin_mul_overflow(a, b, &product), where,
               ": shape is too large (overflows 64 bits)");
  return product;
}

SafetensorsEntry parse_entry(const std::string& name, const nlohmann::json& value,
                             const std::string& source) {
  const std::string where = detail::concat(source, ": tensor '", name, "'");
  CHORUS_CHECK(value.is_object(), where, ": header entry is ", value.type_name(),
               ", expected an object");
  SafetensorsEntry entry;
  entry.name = name;

  auto dtype = value.find("dtype");
  CHORUS_CHECK(dtype != value.end() && dtype->is_string(), where, ": missing string field 'dtype'");
  entry.dtype = dtype->get<std::string>();
  entry.element_bytes = element_bytes(entry.dtype);
  CHORUS_CHECK(entry.element_bytes != 0, where, ": unknown dtype '", entry.dtype,
               "' (supported: ", supported_dtypes(), ")");

  auto shape = value.find("shape");
  CHORUS_CHECK(shape != value.end() && shape->is_array(), where, ": missing array field 'shape'");
  std::uint64_t numel = 1, padded_numel = 1;
  for (const nlohmann::json& dim : *shape) {
    CHORUS_CHECK(dim.is_number_unsigned(), where, ": shape entry ", dim.dump(),
                 " is not a non-negative integer");
    const std::uint64_t size = dim.get<std::uint64_t>();
    CHORUS_CHECK(size <= static_cast<std::uint64_t>(std::numeric_limits<int64_t>::max()), where,
                 ": shape entry ", size, " is too large");
    numel = checked_multiply(numel, size, where);
    // Strides multiply every dimension (zero-sized ones count as 1): keep them in range too.
    padded_numel = checked_multiply(padded_numel, std::max<std::uint64_t>(size, 1), where);
    entry.shape.push_back(static_cast<int64_t>(size));
  }
  CHORUS_CHECK(padded_numel <= static_cast<std::uint64_t>(std::numeric_limits<int64_t>::max()),
               where, ": shape is too large");

  auto offsets = value.find("data_offsets");
  CHORUS_CHECK(offsets != value.end() && offsets->is_array() && offsets->size() == 2 &&
                   (*offsets)[0].is_number_unsigned() && (*offsets)[1].is_number_unsigned(),
               where, ": 'data_offsets' must be two non-negative integers [begin, end]");
  entry.begin = (*offsets)[0].get<std::uint64_t>();
  entry.end = (*offsets)[1].get<std::uint64_t>();
  CHORUS_CHECK(entry.begin <= entry.end, where, ": data_offsets [", entry.begin, ", ", entry.end,
               "] are reversed");
  const std::uint64_t expected_bytes = checked_multiply(numel, entry.element_bytes, where);
  CHORUS_CHECK(entry.end - entry.begin == expected_bytes, where, ": data_offsets [", entry.begin,
               ", ", entry.end, "] hold ", entry.end - entry.begin, " bytes but dtype ",
               entry.dtype, " and shape ", shape->dump(), " need ", expected_bytes);
  return entry;
}

std::map<std::string, std::string> parse_metadata(const nlohmann::json& value,
                                                  const std::string& source) {
  CHORUS_CHECK(value.is_object(), source, ": '__metadata__' is ", value.type_name(),
               ", expected an object");
  std::map<std::string, std::string> metadata;
  for (auto it = value.begin(); it != value.end(); ++it) {
    CHORUS_CHECK(it.value().is_string(), source, ": '__metadata__' value of '", it.key(), "' is ",
                 it.value().type_name(), ", expected a string");
    metadata.emplace(it.key(), it.value().get<std::string>());
  }
  return metadata;
}

}  // namespace

const std::vector<std::pair<std::string, std::size_t>>& safetensors_dtypes() {
  static const std::vector<std::pair<std::string, std::size_t>> dtypes = {
      {"BOOL", 1}, {"U8", 1},  {"I8", 1},  {"I16", 2},     {"U16", 2},
      {"I32", 4},  {"U32", 4}, {"I64", 8}, {"U64", 8},     {"F16", 2},
      {"BF16", 2}, {"F32", 4}, {"F64", 8}, {"F8_E4M3", 1}, {"F8_E5M2", 1}};
  return dtypes;
}

SafetensorsLayout parse_safetensors_layout(std::string_view bytes, const std::string& source) {
  CHORUS_CHECK(bytes.size() >= 8, source, ": ", bytes.size(),
               " bytes is too short for a safetensors file (the 8-byte header length is missing)");
  std::uint64_t header_bytes = 0;
  for (int i = 7; i >= 0; --i)
    header_bytes = (header_bytes << 8) | static_cast<unsigned char>(bytes[i]);
  CHORUS_CHECK(header_bytes <= kMaxHeaderBytes, source, ": header length ", header_bytes,
               " exceeds the format's limit of ", kMaxHeaderBytes,
               " bytes (is this a safetensors file?)");
  CHORUS_CHECK(header_bytes <= bytes.size() - 8, source, ": header length ", header_bytes,
               " runs past the end of the file (", bytes.size(), " bytes)");
  const std::string_view header_text = bytes.substr(8, header_bytes);
  CHORUS_CHECK(!header_text.empty() && header_text.front() == '{', source,
               ": the header does not start with '{' (is this a safetensors file?)");
  CHORUS_CHECK(json_depth(header_text) <= kMaxJsonDepth, source,
               ": the JSON header is nested deeper than ", kMaxJsonDepth, " levels");

  // Parse, rejecting names that appear twice at the top level (a plain parse keeps the last).
  std::unordered_set<std::string> seen;
  std::string duplicate;
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(
        header_text.begin(), header_text.end(),
        [&](int depth, nlohmann::json::parse_event_t event, nlohmann::json& parsed) {
          if (event == nlohmann::json::parse_event_t::key && depth == 1 && parsed.is_string() &&
              !seen.insert(parsed.get<std::string>()).second && duplicate.empty())
            duplicate = parsed.get<std::string>();
          return true;
        });
  } catch (const nlohmann::json::exception& e) {
    throw Error(detail::concat(source, ": the header is not valid JSON (", e.what(), ")"));
  }
  CHORUS_CHECK(duplicate.empty(), source, ": the header names '", duplicate, "' twice");
  CHORUS_CHECK(header.is_object(), source, ": the header is ", header.type_name(),
               ", expected a JSON object");

  SafetensorsLayout layout;
  layout.data_start = 8 + static_cast<std::size_t>(header_bytes);
  for (auto it = header.begin(); it != header.end(); ++it) {
    if (it.key() == kMetadataKey) {
      layout.metadata = parse_metadata(it.value(), source);
    } else {
      CHORUS_CHECK(!it.key().empty(), source, ": the header has a tensor with an empty name");
      layout.entries.push_back(parse_entry(it.key(), it.value(), source));
    }
  }

  // The byte buffer must be tiled exactly: sorted by offset, each tensor starts
  // where the previous ended and the last ends at the end of the file.
  std::stable_sort(layout.entries.begin(), layout.entries.end(),
                   [](const SafetensorsEntry& a, const SafetensorsEntry& b) {
                     return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
                   });
  const std::uint64_t buffer_bytes = bytes.size() - layout.data_start;
  std::uint64_t cursor = 0;
  for (const SafetensorsEntry& entry : layout.entries) {
    CHORUS_CHECK(entry.end <= buffer_bytes, source, ": tensor '", entry.name, "' data_offsets [",
                 entry.begin, ", ", entry.end, "] run past the end of the data buffer (",
                 buffer_bytes, " bytes)");
    CHORUS_CHECK(entry.begin >= cursor, source, ": tensor '", entry.name, "' data_offsets [",
                 entry.begin, ", ", entry.end, "] overlap the previous tensor, which ends at ",
                 cursor);
    CHORUS_CHECK(entry.begin == cursor, source, ": tensor '", entry.name, "' starts at byte ",
                 entry.begin, " leaving a gap after the previous tensor, which ends at ", cursor);
    cursor = entry.end;
  }
  CHORUS_CHECK(cursor == buffer_bytes, source, ": the tensors cover ", cursor, " bytes of a ",
               buffer_bytes, "-byte data buffer (truncated or trailing bytes)");

  // Any byte but 0 and 1 would be an invalid bool in memory.
  const std::string_view data = bytes.substr(layout.data_start);
  for (const SafetensorsEntry& entry : layout.entries) {
    if (entry.dtype != "BOOL") continue;
    const std::string_view values = data.substr(entry.begin, entry.end - entry.begin);
    const auto bad =
        std::find_if(values.begin(), values.end(), [](char c) { return c != 0 && c != 1; });
    CHORUS_CHECK(bad == values.end(), source, ": tensor '", entry.name, "' (BOOL) holds byte ",
                 static_cast<int>(static_cast<unsigned char>(*bad)), ", expected 0 or 1");
  }
  return layout;
}

}  // namespace chorus::model
