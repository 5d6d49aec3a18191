// Atomic file replacement: write to a sibling temporary file, fsync, rename.
#pragma once

#include <filesystem>
#include <functional>
#include <string_view>

namespace chorus {

// Calls write(tmp_path) to produce the new content in a temporary file next to
// `path`, flushes it to disk and renames it over `path`. Readers see either the
// old file or the complete new one, never a partial write; if `write` throws,
// the temporary file is removed and `path` is untouched.
void write_file_atomically(const std::filesystem::path& path,
                           const std::function<void(const std::filesystem::path& tmp_path)>& write);

// Convenience overload for text/bytes already in memory.
void write_file_atomically(const std::filesystem::path& path, std::string_view contents);

}  // namespace chorus
