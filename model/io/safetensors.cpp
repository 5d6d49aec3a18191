#include "model/io/safetensors.h"

#include <torch/torch.h>
#include <nlohmann/json.hpp>

#include <cstring>
#include <fstream>

#include "common/atomic_file.h"
#include "common/error.h"
#include "model/io/mapped_file.h"
#include "model/io/safetensors_layout.h"

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "safetensors stores little-endian bytes; this reader copies them as they are");

namespace chorus::model {
namespace {

constexpr const char* kMetadataKey = "__metadata__";

// The torch dtype of each safetensors dtype name (sizes agree with safetensors_dtypes()).
const std::vector<std::pair<std::string, torch::ScalarType>>& torch_dtypes() {
  static const std::vector<std::pair<std::string, torch::ScalarType>> table = {
      {"BOOL", torch::kBool},
      {"U8", torch::kByte},
      {"I8", torch::kChar},
      {"I16", torch::kShort},
      {"U16", torch::kUInt16},
      {"I32", torch::kInt},
      {"U32", torch::kUInt32},
      {"I64", torch::kLong},
      {"U64", torch::kUInt64},
      {"F16", torch::kHalf},
      {"BF16", torch::kBFloat16},
      {"F32", torch::kFloat},
      {"F64", torch::kDouble},
      {"F8_E4M3", torch::kFloat8_e4m3fn},
      {"F8_E5M2", torch::kFloat8_e5m2}};
  return table;
}

torch::ScalarType torch_dtype(const std::string& name) {
  for (const auto& [dtype, type] : torch_dtypes())
    if (dtype == name) return type;
  throw Error("safetensors: no torch dtype for " +
              name);  // unreachable: the layout checked the name
}

const char* dtype_name(torch::ScalarType type) {
  for (const auto& [dtype, stored] : torch_dtypes())
    if (stored == type) return dtype.c_str();
  return nullptr;
}

std::string supported_dtypes() {
  std::string out;
  for (const auto& entry : torch_dtypes()) out += (out.empty() ? "" : " ") + entry.first;
  return out;
}

}  // namespace

SafetensorsContents parse_safetensors(std::string_view bytes, const std::string& source) {
  const SafetensorsLayout layout = parse_safetensors_layout(bytes, source);
  SafetensorsContents contents;
  contents.metadata = layout.metadata;
  contents.weights.set_source(source);
  const char* data = bytes.data() + layout.data_start;
  for (const SafetensorsEntry& entry : layout.entries) {
    torch::Tensor tensor =
        torch::empty(entry.shape, torch::TensorOptions().dtype(torch_dtype(entry.dtype)));
    if (entry.end > entry.begin)
      std::memcpy(tensor.data_ptr(), data + entry.begin, entry.end - entry.begin);
    contents.weights.insert(entry.name, std::move(tensor));
  }
  return contents;
}

SafetensorsContents read_safetensors(const std::filesystem::path& file) {
  MappedFile mapped(file);
  return parse_safetensors(mapped.bytes(), file.string());
}

WeightMap load_safetensors(const std::filesystem::path& file) {
  return read_safetensors(file).weights;
}

void save_safetensors(const std::filesystem::path& file, const WeightMap& weights,
                      const std::map<std::string, std::string>& metadata) {
  std::vector<torch::Tensor> host;
  host.reserve(weights.size());
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header[kMetadataKey] = metadata;
  std::uint64_t offset = 0;
  for (const auto& [name, tensor] : weights) {
    CHORUS_CHECK(name != kMetadataKey, file.string(), ": a tensor cannot be called '", kMetadataKey,
                 "'");
    const char* dtype = dtype_name(tensor.scalar_type());
    CHORUS_CHECK(dtype != nullptr, file.string(), ": tensor '", name, "' has dtype ",
                 c10::toString(tensor.scalar_type()),
                 ", which safetensors cannot store (supported: ", supported_dtypes(), ")");
    host.push_back(tensor.detach().to(torch::kCPU).contiguous());
    const std::uint64_t bytes = static_cast<std::uint64_t>(host.back().nbytes());
    header[name] = {{"dtype", dtype},
                    {"shape", tensor.sizes().vec()},
                    {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  std::string header_text = header.dump();
  // Pad with spaces so the data buffer starts 8-byte aligned, as the reference writer does.
  header_text.append((8 - header_text.size() % 8) % 8, ' ');

  write_file_atomically(file, [&](const std::filesystem::path& tmp) {
    std::ofstream out(tmp, std::ios::binary);
    CHORUS_CHECK(out.good(), tmp.string(), ": cannot open for writing");
    const std::uint64_t header_bytes = header_text.size();
    out.write(reinterpret_cast<const char*>(&header_bytes), 8);
    out.write(header_text.data(), static_cast<std::streamsize>(header_text.size()));
    for (const torch::Tensor& tensor : host)
      out.write(static_cast<const char*>(tensor.data_ptr()),
                static_cast<std::streamsize>(tensor.nbytes()));
    out.flush();
    CHORUS_CHECK(out.good(), tmp.string(), ": write failed");
  });
}

}  // namespace chorus::model
