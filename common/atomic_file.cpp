#include "common/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <random>

#include "common/error.h"

namespace chorus {
namespace {

std::filesystem::path temporary_sibling(const std::filesystem::path& path) {
  std::random_device device;
  std::mt19937_64 rng(device());
  auto name = "." + path.filename().string() + ".tmp." + std::to_string(::getpid()) + "." +
              std::to_string(rng() % 1000000007ULL);
  return path.parent_path() / name;
}

void fsync_path(const std::filesystem::path& path, bool directory) {
  int fd = ::open(path.c_str(), directory ? (O_RDONLY | O_DIRECTORY) : O_RDONLY);
  if (fd < 0) {
    throw Error(detail::concat("cannot open ", path.string(), " to flush it: ", std::strerror(errno)));
  }
  int rc = ::fsync(fd);
  int saved = errno;
  ::close(fd);
  // Some file systems refuse fsync on directories (EINVAL); the rename is still atomic there.
  if (rc != 0 && !(directory && saved == EINVAL)) {
    throw Error(detail::concat("cannot flush ", path.string(), ": ", std::strerror(saved)));
  }
}

}  // namespace

void write_file_atomically(const std::filesystem::path& path,
                           const std::function<void(const std::filesystem::path&)>& write) {
  auto parent = path.parent_path().empty() ? std::filesystem::path(".") : path.parent_path();
  CHORUS_CHECK(std::filesystem::is_directory(parent), "cannot write ", path.string(),
               ": folder ", parent.string(), " does not exist");
  const auto tmp = temporary_sibling(parent / path.filename());
  try {
    write(tmp);
    fsync_path(tmp, /*directory=*/false);
    std::filesystem::rename(tmp, path);
  } catch (...) {
    std::error_code ignored;
    std::filesystem::remove(tmp, ignored);
    throw;
  }
  fsync_path(parent, /*directory=*/true);
}

void write_file_atomically(const std::filesystem::path& path, std::string_view contents) {
  write_file_atomically(path, [&](const std::filesystem::path& tmp) {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    CHORUS_CHECK(out.good(), "cannot create ", tmp.string());
    out.write(contents.data(), static_cast<std::streamsize>(contents.size()));
    out.flush();
    CHORUS_CHECK(out.good(), "cannot write ", tmp.string());
  });
}

}  // namespace chorus
