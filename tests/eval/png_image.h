// A minimal PNG reader for tests: 8-bit RGB or RGBA, not interlaced (what Chromium's screenshots
// are).
#pragma once

#include <cstdint>
#include <filesystem>
#include <vector>

namespace chorus::testing {

struct RgbImage {
  int width = 0, height = 0;
  std::vector<uint8_t> rgb;  // row-major, 3 bytes per pixel
  const uint8_t* at(int x, int y) const { return &rgb[(static_cast<size_t>(y) * width + x) * 3]; }
};

// Throws std::runtime_error naming what is unsupported or broken.
RgbImage read_png(const std::filesystem::path& path);

}  // namespace chorus::testing
