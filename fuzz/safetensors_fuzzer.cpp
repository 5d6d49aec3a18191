// libFuzzer target: the safetensors header parser must reject or accept any bytes without reading
// out of bounds.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>
#include <vector>

#include "common/error.h"
#include "model/io/safetensors_layout.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  // A heap copy of exactly `size` bytes, so AddressSanitizer flags any read past the end.
  std::vector<char> bytes(data, data + size);
  const std::string_view view(bytes.data(), bytes.size());
  try {
    const chorus::model::SafetensorsLayout layout =
        chorus::model::parse_safetensors_layout(view, "fuzz");
    // Accepted: the promised invariants must hold, and every tensor's bytes must be readable.
    std::uint64_t cursor = 0;
    std::vector<char> sink;
    for (const auto& entry : layout.entries) {
      if (entry.begin != cursor || entry.end < entry.begin) __builtin_trap();
      std::uint64_t numel = 1;
      for (std::int64_t dim : entry.shape) numel *= static_cast<std::uint64_t>(dim);
      if (numel * entry.element_bytes != entry.end - entry.begin) __builtin_trap();
      sink.resize(entry.end - entry.begin);
      if (!sink.empty())
        std::memcpy(sink.data(), view.data() + layout.data_start + entry.begin, sink.size());
      cursor = entry.end;
    }
    if (layout.data_start + cursor != size) __builtin_trap();
  } catch (const chorus::Error&) {
    // Rejected with a message: the expected outcome for most inputs.
  }
  return 0;
}
