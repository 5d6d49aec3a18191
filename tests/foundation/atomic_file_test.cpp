// Atomic replacement: complete new content or the old file, never a partial one.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "common/atomic_file.h"
#include "common/error.h"
#include "tests/foundation/test_paths.h"

namespace chorus {
namespace {

std::string read_all(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

TEST(AtomicFile, ReplacesContent) {
  testing::TemporaryFolder dir;
  write_file_atomically(dir / "report.json", "{\"a\": 1}");
  EXPECT_EQ(read_all(dir / "report.json"), "{\"a\": 1}");
  write_file_atomically(dir / "report.json", "{\"a\": 2}");
  EXPECT_EQ(read_all(dir / "report.json"), "{\"a\": 2}");
}

TEST(AtomicFile, WriterFailureKeepsOldContentAndCleansUp) {
  testing::TemporaryFolder dir;
  write_file_atomically(dir / "ckpt", "old");
  EXPECT_THROW(write_file_atomically(dir / "ckpt",
                                     [](const std::filesystem::path& tmp) {
                                       std::ofstream(tmp) << "half-writ";
                                       throw Error("disk full (simulated)");
                                     }),
               Error);
  EXPECT_EQ(read_all(dir / "ckpt"), "old");
  int entries = 0;
  for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator(dir.path())) ++entries;
  EXPECT_EQ(entries, 1);
}

TEST(AtomicFile, MissingFolderIsAClearError) {
  testing::TemporaryFolder dir;
  try {
    write_file_atomically(dir / "no" / "such" / "file", "x");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("does not exist"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace chorus
