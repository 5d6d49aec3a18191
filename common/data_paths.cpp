#include "common/data_paths.h"

#include <cstdlib>

#include "common/error.h"

namespace chorus {

std::optional<std::filesystem::path> find_data_root() {
  if (const char* env = std::getenv("CHORUS_DATA"); env != nullptr && *env != '\0') {
    std::filesystem::path root(env);
    CHORUS_CHECK(std::filesystem::is_directory(root), "CHORUS_DATA=", root.string(),
                 " is not a folder (expected the data sets' root, e.g. ../shared/data)");
    return root;
  }
  std::error_code ec;
  auto dir = std::filesystem::current_path(ec);
  if (ec) return std::nullopt;
  // The repository's convention is a `shared/data` folder beside the clone; tests
  // run from build subfolders, so look upwards a few levels.
  for (int depth = 0; depth < 6 && !dir.empty(); ++depth) {
    auto candidate = dir / ".." / "shared" / "data";
    if (std::filesystem::is_directory(candidate)) return std::filesystem::canonical(candidate);
    if (dir == dir.parent_path()) break;
    dir = dir.parent_path();
  }
  return std::nullopt;
}

std::optional<std::filesystem::path> find_data_file(const std::filesystem::path& relative) {
  auto root = find_data_root();
  if (!root) return std::nullopt;
  auto path = *root / relative;
  if (!std::filesystem::exists(path)) return std::nullopt;
  return path;
}

}  // namespace chorus
