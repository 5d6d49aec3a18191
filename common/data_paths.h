// Where Chorus finds the public data sets (CHORUS_DATA, else ../shared/data).
#pragma once

#include <filesystem>
#include <optional>

namespace chorus {

// The data root: $CHORUS_DATA when set (it must then exist), else the first of
// `../shared/data` relative to the working directory or its parents that exists.
// Returns nullopt when none is found; callers decide whether that is an error
// (a run) or a reason to skip (a test).
std::optional<std::filesystem::path> find_data_root();

// find_data_root() / relative when that path exists, else nullopt.
std::optional<std::filesystem::path> find_data_file(const std::filesystem::path& relative);

}  // namespace chorus
