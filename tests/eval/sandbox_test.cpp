// The sandbox: exit status, each limit on its own, output cap, no network, scratch folder, clean environment.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include "common/error.h"
#include "eval/metrics/task_completion.h"
#include "eval/sandbox/sandbox.h"

namespace chorus::eval {
namespace {

namespace fs = std::filesystem;

SandboxCommand shell(const std::string& script) {
  SandboxCommand command;
  command.argv = {"/bin/sh", "-c", script};
  command.limits.wall_s = 20;
  command.limits.cpu_s = 20;
  return command;
}

// The Python the predicates use, or empty (the test then skips) when there is none.
std::string python_or_empty() {
  try {
    return resolve_python("python3").string();
  } catch (const Error&) {
    return {};
  }
}

#define REQUIRE_PYTHON(python)                                       \
  const std::string python = python_or_empty();                      \
  if (python.empty()) GTEST_SKIP() << "no python3 on PATH to run the test program"

TEST(Sandbox, CapturesExitCodeAndStreams) {
  const auto r = run_sandboxed(shell("echo out; echo err >&2; exit 3"));
  ASSERT_TRUE(r.exit_code.has_value());
  EXPECT_EQ(*r.exit_code, 3);
  EXPECT_FALSE(r.term_signal.has_value());
  EXPECT_EQ(r.stdout_text, "out\n");
  EXPECT_EQ(r.stderr_text, "err\n");
  EXPECT_EQ(r.limit_hit, SandboxLimit::none);
  EXPECT_FALSE(r.succeeded());
  EXPECT_EQ(r.describe(), "exit 3");
  EXPECT_TRUE(run_sandboxed(shell("exit 0")).succeeded());
}

TEST(Sandbox, StandardInputIsGivenTextOrEmpty) {
  SandboxCommand command;
  command.argv = {"cat"};
  command.stdin_text = "line one\nline two\n";
  EXPECT_EQ(run_sandboxed(command).stdout_text, "line one\nline two\n");
  command.stdin_text.reset();
  const auto r = run_sandboxed(command);
  EXPECT_TRUE(r.succeeded());
  EXPECT_EQ(r.stdout_text, "");
}

TEST(Sandbox, FilesAreWrittenIntoTheScratchFolder) {
  auto command = shell("cat sub/input.txt");
  command.files["sub/input.txt"] = "given\n";
  EXPECT_EQ(run_sandboxed(command).stdout_text, "given\n");
  command.files = {{"../escape.txt", "x"}};
  EXPECT_THROW(run_sandboxed(command), Error);
}

TEST(Sandbox, CpuLimitKillsABusyLoop) {
  auto command = shell("while :; do :; done");
  command.limits.cpu_s = 1;
  command.limits.wall_s = 30;
  const auto r = run_sandboxed(command);
  EXPECT_EQ(r.limit_hit, SandboxLimit::cpu) << r.describe();
  std::cout << r.describe() << " after " << r.cpu_s << " s CPU, " << r.wall_s << " s wall\n";
  ASSERT_TRUE(r.term_signal.has_value());
  EXPECT_TRUE(*r.term_signal == SIGXCPU || *r.term_signal == SIGKILL) << *r.term_signal;
  EXPECT_GE(r.cpu_s, 0.5);  // rusage samples the CPU time the limit is checked against: ~0.9 s seen
  EXPECT_LT(r.wall_s, 25);
}

TEST(Sandbox, WallLimitKillsASleeperAndItsProcessGroup) {
  // The background sleep is in the same group: it must die with the shell.
  auto command = shell("sleep 30 & echo $!; wait");
  command.limits.wall_s = 0.5;
  const auto r = run_sandboxed(command);
  EXPECT_EQ(r.limit_hit, SandboxLimit::wall) << r.describe();
  ASSERT_TRUE(r.term_signal.has_value());
  EXPECT_EQ(*r.term_signal, SIGKILL);
  EXPECT_GE(r.wall_s, 0.5);
  EXPECT_LT(r.wall_s, 5);
  EXPECT_LT(r.cpu_s, 0.5);
  const int background = std::atoi(r.stdout_text.c_str());
  ASSERT_GT(background, 0) << r.stdout_text;
  // Killed: gone, or a zombie waiting for a reaper that is not ours.
  std::string state = "gone";
  std::ifstream stat("/proc/" + std::to_string(background) + "/stat");
  for (int tries = 0; stat && tries < 50; ++tries) {
    std::string line;
    std::getline(stat, line);
    const auto close = line.rfind(')');
    state = close == std::string::npos ? "gone" : line.substr(close + 2, 1);
    if (state == "Z" || state == "gone") break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    stat = std::ifstream("/proc/" + std::to_string(background) + "/stat");
    if (!stat) state = "gone";
  }
  EXPECT_TRUE(state == "gone" || state == "Z") << "background sleep still in state " << state;
}

TEST(Sandbox, MemoryLimitStopsAnAllocation) {
  REQUIRE_PYTHON(python);
  SandboxCommand command;
  command.argv = {python, "-I", "-c", "b = bytearray(512 * 1024 * 1024); print(len(b))"};
  command.limits.memory_mb = 256;
  const auto r = run_sandboxed(command);
  EXPECT_EQ(r.limit_hit, SandboxLimit::memory) << r.describe() << "\n" << r.stderr_text;
  EXPECT_NE(r.stderr_text.find("MemoryError"), std::string::npos) << r.stderr_text;
  EXPECT_EQ(r.stdout_text, "");
  // The same program fits under a larger limit.
  command.limits.memory_mb = 2048;
  const auto fits = run_sandboxed(command);
  EXPECT_TRUE(fits.succeeded()) << fits.describe() << "\n" << fits.stderr_text;
  EXPECT_EQ(fits.stdout_text, "536870912\n");
}

TEST(Sandbox, OutputCapTruncatesAndStops) {
  auto command = shell("yes");
  command.limits.output_bytes = 1000;
  const auto r = run_sandboxed(command);
  EXPECT_EQ(r.limit_hit, SandboxLimit::output) << r.describe();
  EXPECT_EQ(r.stdout_text.size(), 1000u);
  EXPECT_TRUE(r.stdout_truncated);
  EXPECT_LT(r.wall_s, 10);
}

TEST(Sandbox, FileSizeLimit) {
  auto command = shell("exec head -c 3000000 /dev/zero > big");
  command.limits.file_size_mb = 1;
  const auto r = run_sandboxed(command);
  EXPECT_EQ(r.limit_hit, SandboxLimit::file_size) << r.describe() << " " << r.stderr_text;
}

// A listener in the test's own network namespace: reachable with a shared network, not from a sandbox.
class Listener {
 public:
  Listener() {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    address.sin_port = 0;
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 || ::listen(fd_, 8) != 0) {
      throw std::runtime_error("cannot listen on 127.0.0.1");
    }
    socklen_t length = sizeof address;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&address), &length);
    port_ = ntohs(address.sin_port);
  }
  ~Listener() { ::close(fd_); }
  int port() const { return port_; }

 private:
  int fd_ = -1;
  int port_ = 0;
};

std::string connect_program(int port) {
  return "import socket\n"
         "s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)\n"
         "s.settimeout(3)\n"
         "try:\n"
         "    s.connect(('127.0.0.1', " + std::to_string(port) + "))\n"
         "    print('connected')\n"
         "except OSError as e:\n"
         "    print('refused', e.errno)\n";
}

TEST(Sandbox, NetworkIsUnreachable) {
  std::string why_not;
  const std::string method = probe_network_isolation(&why_not);
  if (method == "none") GTEST_SKIP() << "network isolation is not available on this machine: " << why_not;
  REQUIRE_PYTHON(python);
  std::cout << "network isolation by " << method << "\n";
  const Listener listener;

  SandboxCommand command;
  command.argv = {python, "-I", "-c", connect_program(listener.port())};
  command.network = NetworkPolicy::shared;
  const auto shared = run_sandboxed(command);
  EXPECT_EQ(shared.stdout_text, "connected\n") << shared.stderr_text;  // the probe itself works
  EXPECT_FALSE(shared.network_isolated);

  command.network = NetworkPolicy::isolated;
  const auto isolated = run_sandboxed(command);
  EXPECT_TRUE(isolated.succeeded()) << isolated.stderr_text;
  EXPECT_EQ(isolated.stdout_text.rfind("refused", 0), 0u) << isolated.stdout_text;
  EXPECT_TRUE(isolated.network_isolated);
  EXPECT_EQ(isolated.network_method, method);

  // A public address: no route at all inside the namespace.
  command.argv = {python, "-I", "-c",
                  "import socket\ntry:\n    socket.create_connection(('1.1.1.1', 53), timeout=3)\n    print('connected')\n"
                  "except OSError as e:\n    print('unreachable', e.errno)\n"};
  const auto outside = run_sandboxed(command);
  EXPECT_EQ(outside.stdout_text.rfind("unreachable", 0), 0u) << outside.stdout_text;
}

// Where no namespace can be made: refused by default, run with the host network only when allowed.
TEST(Sandbox, WithoutIsolationRefusesUnlessAllowed) {
  std::string why_not;
  if (probe_network_isolation(&why_not) != "none") {
    GTEST_SKIP() << "network isolation is available here: the refusal path cannot be exercised";
  }
  auto command = shell("echo ran");
  try {
    run_sandboxed(command);
    FAIL() << "expected a refusal";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("cannot isolate the network"), std::string::npos) << e.what();
  }
  command.network = NetworkPolicy::isolated_if_possible;
  const auto r = run_sandboxed(command);
  EXPECT_EQ(r.stdout_text, "ran\n");
  EXPECT_FALSE(r.network_isolated);
  EXPECT_EQ(r.network_method, "none");
}

TEST(Sandbox, ScratchFolderIsTheWorkingDirectoryAndIsRemoved) {
  // Even a sub-folder the child makes unreadable is removed.
  const auto r = run_sandboxed(shell("pwd; echo data > file; mkdir -p locked/inner; touch locked/inner/f; chmod 000 locked"));
  ASSERT_TRUE(r.succeeded()) << r.stderr_text;
  EXPECT_EQ(r.stdout_text, r.scratch_folder.string() + "\n");
  EXPECT_EQ(r.scratch_folder.filename().string().rfind("chorus-sandbox-", 0), 0u);
  EXPECT_FALSE(fs::exists(r.scratch_folder));
}

TEST(Sandbox, EnvironmentIsCleaned) {
  ::setenv("CHORUS_SANDBOX_TEST_SECRET", "leaked", 1);
  auto command = shell("env");
  command.environment["EXTRA"] = "given";
  const auto r = run_sandboxed(command);
  ::unsetenv("CHORUS_SANDBOX_TEST_SECRET");
  ASSERT_TRUE(r.succeeded()) << r.stderr_text;
  std::set<std::string> names;
  std::istringstream lines(r.stdout_text);
  for (std::string line; std::getline(lines, line);) {
    const auto eq = line.find('=');
    if (eq != std::string::npos) names.insert(line.substr(0, eq));
  }
  // sh itself exports PWD (and some shells OLDPWD, SHLVL, _): the rest is ours.
  for (const char* shell_own : {"PWD", "OLDPWD", "SHLVL", "_"}) names.erase(shell_own);
  const std::set<std::string> expected = {"EXTRA", "HOME",           "LANG",    "LC_ALL",
                                          "PATH",  "PYTHONDONTWRITEBYTECODE", "PYTHONHASHSEED", "TMPDIR"};
  EXPECT_EQ(names, expected) << r.stdout_text;
  EXPECT_NE(r.stdout_text.find("HOME=" + r.scratch_folder.string() + "\n"), std::string::npos) << r.stdout_text;
  EXPECT_EQ(r.stdout_text.find("leaked"), std::string::npos);
}

TEST(Sandbox, OnlyStandardStreamsAreOpen) {
  // Not close-on-exec, and numbered past the descriptor ls opens on /proc/self/fd: the child must not see it.
  const int opened = ::open("/dev/null", O_RDONLY);
  const int stray = ::fcntl(opened, F_DUPFD, 10);
  ::close(opened);
  ASSERT_GE(stray, 10);
  const auto r = run_sandboxed(shell("ls /proc/self/fd"));
  ::close(stray);
  ASSERT_TRUE(r.succeeded()) << r.stderr_text;
  std::set<std::string> fds;
  std::istringstream listing(r.stdout_text);
  for (std::string fd; listing >> fd;) fds.insert(fd);
  fds.erase("3");  // ls's own handle on the listed folder
  EXPECT_EQ(fds, (std::set<std::string>{"0", "1", "2"})) << r.stdout_text;
}

TEST(Sandbox, RunsConcurrentlyFromThreads) {
  std::vector<SandboxResult> results(6);
  std::vector<std::thread> threads;
  for (std::size_t i = 0; i < results.size(); ++i) {
    threads.emplace_back([&, i] { results[i] = run_sandboxed(shell("sleep 0.2; echo " + std::to_string(i))); });
  }
  for (auto& t : threads) t.join();
  for (std::size_t i = 0; i < results.size(); ++i) {
    EXPECT_TRUE(results[i].succeeded());
    EXPECT_EQ(results[i].stdout_text, std::to_string(i) + "\n");
  }
}

TEST(Sandbox, StartFailuresAreErrors) {
  SandboxCommand command;
  command.argv = {"chorus-no-such-program"};
  try {
    run_sandboxed(command);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("program 'chorus-no-such-program' not found on PATH"), std::string::npos)
        << e.what();
  }
  command.argv = {"/bin/sh"};
  command.limits.cpu_s = 0;
  EXPECT_THROW(run_sandboxed(command), Error);
}

}  // namespace
}  // namespace chorus::eval
