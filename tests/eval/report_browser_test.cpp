// The HTML report in a real browser: headless Chromium loads the page, its script runs without
// error, and a screenshot shows the charts. Skips when no Chromium is on PATH.
#include <gtest/gtest.h>

#include <unistd.h>
#include <cstdlib>
#include <filesystem>
#include <sstream>
#include <string>

#include "eval/report/report_html.h"
#include "png_image.h"
#include "report_fixture.h"

namespace chorus::eval::report {
namespace {

namespace fs = std::filesystem;

// The first of Chromium's usual program names found on PATH, or "".
std::string find_chromium() {
  const char* path = std::getenv("PATH");
  std::istringstream dirs(path ? path : "");
  std::vector<std::string> folders;
  for (std::string dir; std::getline(dirs, dir, ':');) folders.push_back(dir);
  for (const char* name : {"chromium", "chromium-browser", "google-chrome"}) {
    for (const auto& dir : folders) {
      const fs::path candidate = fs::path(dir) / name;
      if (!dir.empty() && ::access(candidate.c_str(), X_OK) == 0) return candidate.string();
    }
  }
  return "";
}

class ReportBrowserTest : public ::testing::Test {
 protected:
  void SetUp() override {
    chromium_ = find_chromium();
    if (chromium_.empty()) {
      GTEST_SKIP() << "no chromium on PATH (scripts/setup.sh installs the Debian package "
                      "'chromium'); the report "
                      "page was not checked in a browser";
    }
    root_ = fs::temp_directory_path() / ("chorus-report-browser-" + std::to_string(::getpid()));
    fs::remove_all(root_);
    testing::write_fixture_run(root_ / "run");
    page_ = write_report_html(root_ / "run");
  }
  void TearDown() override {
    if (!root_.empty()) fs::remove_all(root_);
  }

  // Runs headless Chromium on the page with `flags`; its stdout goes to `out`, stderr to `log`.
  // --no-sandbox: the sandbox cannot start as root (CI containers); the page is our own file.
  int run_chromium(const std::string& flags, const fs::path& out, const fs::path& log) const {
    const std::string command = "timeout 120 '" + chromium_ +
                                "' --headless --no-sandbox --disable-gpu " +
                                "--no-first-run --user-data-dir='" + (root_ / "profile").string() +
                                "' " + flags + " 'file://" + fs::absolute(page_).string() + "' >'" +
                                out.string() + "' 2>'" + log.string() + "'";
    return std::system(command.c_str());
  }

  std::string chromium_;
  fs::path root_, page_;
};

TEST_F(ReportBrowserTest, ScriptRunsWithoutErrors) {
  const fs::path dom = root_ / "dom.html", log = root_ / "dom.log";
  ASSERT_EQ(
      run_chromium("--virtual-time-budget=5000 --enable-logging=stderr --v=0 --dump-dom", dom, log),
      0)
      << testing::read_text(log);
  const std::string html = testing::read_text(dom);
  const std::string messages = testing::read_text(log);
  EXPECT_NE(html.find("data-rendered=\"ok\""), std::string::npos)
      << "the page's script did not finish:\n"
      << messages;
  EXPECT_EQ(html.find("data-errors="), std::string::npos) << "uncaught errors in the page:\n"
                                                          << html.substr(0, 4000);
  EXPECT_EQ(messages.find("Uncaught"), std::string::npos) << messages;
  EXPECT_EQ(messages.find("Content Security Policy"), std::string::npos)
      << "the page tried to load something:\n"
      << messages;
  EXPECT_NE(html.find("3 of 3 shown"), std::string::npos) << "the example filter ran";
}

TEST_F(ReportBrowserTest, ScreenshotShowsTheCharts) {
  const fs::path png = root_ / "page.png", log = root_ / "shot.log";
  ASSERT_EQ(
      run_chromium("--hide-scrollbars --window-size=1280,1400 --screenshot='" + png.string() + "'",
                   root_ / "shot.out", log),
      0)
      << testing::read_text(log);
  ASSERT_TRUE(fs::is_regular_file(png)) << testing::read_text(log);
  const auto image = chorus::testing::read_png(png);
  ASSERT_EQ(image.width, 1280);
  ASSERT_EQ(image.height, 1400);
  // Text and grid lines are grey; the bars and markers are the only strongly coloured pixels.
  size_t coloured = 0, ink = 0;
  for (int y = 0; y < image.height; ++y) {
    for (int x = 0; x < image.width; ++x) {
      const uint8_t* p = image.at(x, y);
      const int hi = std::max({p[0], p[1], p[2]}), lo = std::min({p[0], p[1], p[2]});
      coloured += hi - lo > 60;
      ink += hi < 200;
    }
  }
  const double pixels = static_cast<double>(image.width) * image.height;
  EXPECT_GT(static_cast<double>(coloured), 0.005 * pixels)
      << "too few coloured pixels: the charts did not render";
  EXPECT_GT(static_cast<double>(ink), 0.01 * pixels) << "the page looks blank";
}

}  // namespace
}  // namespace chorus::eval::report
