// Reading and writing safetensors files (Hugging Face's flat, header-plus-bytes tensor format).
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <string_view>

#include "model/io/weight_map.h"

namespace chorus::model {

// The format: an 8-byte little-endian header length N, N bytes of JSON
// {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ...,
//  "__metadata__": {"key": "value", ...}}, then the byte buffer the offsets
// index. Supported dtypes: BOOL U8 I8 I16 U16 I32 U32 I64 U64 F16 BF16 F32 F64
// F8_E4M3 F8_E5M2.
struct SafetensorsContents {
  WeightMap weights;                            // in the order of their data offsets
  std::map<std::string, std::string> metadata;  // the "__metadata__" object
};

// Reads every tensor of `file` into CPU tensors (one read of the file, one
// copy per tensor). Every inconsistency is a chorus::Error naming the file and
// the problem, never an out-of-bounds read: header length beyond the file,
// invalid or non-object JSON, unknown dtype, negative or overflowing shape,
// offsets reversed, outside the buffer, overlapping or leaving gaps, byte size
// disagreeing with dtype × shape, duplicate names, non-string metadata.
SafetensorsContents read_safetensors(const std::filesystem::path& file);

// read_safetensors(file).weights.
WeightMap load_safetensors(const std::filesystem::path& file);

// The same parser over bytes already in memory; `source` names them in errors.
// (The fuzzer drives this entry point.)
SafetensorsContents parse_safetensors(std::string_view bytes, const std::string& source);

// Writes `weights` (any device, any layout; copied to contiguous CPU bytes) with
// `metadata` as "__metadata__", atomically via chorus::write_file_atomically.
// Tensors are laid out in WeightMap order; the header is padded with spaces to
// a multiple of 8 bytes, like the reference writer, so data stays aligned.
void save_safetensors(const std::filesystem::path& file, const WeightMap& weights,
                      const std::map<std::string, std::string>& metadata = {});

}  // namespace chorus::model
