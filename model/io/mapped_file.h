// MappedFile: a read-only memory map of a whole file, unmapped on destruction.
#pragma once

#include <cstddef>
#include <filesystem>
#include <string_view>

namespace chorus::model {

class MappedFile {
 public:
  // Maps `path`; a missing, unreadable or non-regular file is a chorus::Error
  // naming it. An empty file maps to an empty view.
  explicit MappedFile(const std::filesystem::path& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  std::string_view bytes() const { return {static_cast<const char*>(data_), size_}; }

 private:
  void* data_ = nullptr;
  std::size_t size_ = 0;
};

}  // namespace chorus::model
