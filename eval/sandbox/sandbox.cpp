// The sandboxed child process: everything is prepared before fork, the child only makes system calls.
#include "eval/sandbox/sandbox.h"

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include "common/error.h"

namespace chorus::eval {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

// Grace after the child exits for descendants still holding its pipes (they are killed first).
constexpr auto kDrainGrace = std::chrono::milliseconds(200);

// Records the child writes to the status pipe before exec (the pipe closes on exec).
enum ChildRecord : int {
  kIsolatedNetns = 1,
  kIsolatedUserns = 2,
  kNotIsolated = 3,
  kFailedNetwork = -1,
  kFailedRedirect = -2,
  kFailedChdir = -3,
  kFailedRlimit = -4,
  kFailedExec = -5,
};

struct Record {
  int kind;
  int error;
};

class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() { reset(); }
  Fd(Fd&& other) noexcept : fd_(other.release()) {}
  Fd& operator=(Fd&& other) noexcept {
    if (this != &other) {
      reset();
      fd_ = other.release();
    }
    return *this;
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  int release() {
    const int fd = fd_;
    fd_ = -1;
    return fd;
  }
  void reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
};

std::string errno_text(int error) { return std::strerror(error); }

void make_pipe(Fd& read_end, Fd& write_end) {
  int fds[2];
  CHORUS_CHECK(::pipe2(fds, O_CLOEXEC) == 0, "sandbox: cannot create a pipe: ", errno_text(errno));
  read_end = Fd(fds[0]);
  write_end = Fd(fds[1]);
}

bool is_executable_file(const fs::path& path) {
  std::error_code ec;
  return fs::is_regular_file(path, ec) && ::access(path.c_str(), X_OK) == 0;
}

// The program's path as execve needs it: names without '/' are looked up on the parent's PATH.
fs::path resolve_program(const std::string& name) {
  CHORUS_CHECK(!name.empty(), "sandbox: empty program name (argv[0])");
  if (name.find('/') != std::string::npos) {
    CHORUS_CHECK(is_executable_file(name), "sandbox: program '", name, "' does not exist or is not executable");
    return name;
  }
  const char* path = std::getenv("PATH");
  std::stringstream dirs(path ? path : "/usr/local/bin:/usr/bin:/bin");
  for (std::string dir; std::getline(dirs, dir, ':');) {
    const fs::path candidate = fs::path(dir.empty() ? "." : dir) / name;
    if (is_executable_file(candidate)) return candidate;
  }
  throw Error("sandbox: program '" + name + "' not found on PATH");
}

// Removes a folder the child may have left unreadable (chmod 000 sub-folders).
void remove_scratch(const fs::path& folder) {
  std::error_code ec;
  fs::remove_all(folder, ec);
  if (!ec) return;
  for (auto it = fs::recursive_directory_iterator(folder, fs::directory_options::skip_permission_denied, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    ::chmod(it->path().c_str(), 0700);
  }
  ::chmod(folder.c_str(), 0700);
  // A folder made unreadable is only listed once its mode is fixed: repeat a few times for nesting.
  for (int attempt = 0; attempt < 8; ++attempt) {
    ec.clear();
    fs::remove_all(folder, ec);
    if (!ec) return;
    for (auto it = fs::recursive_directory_iterator(folder, ec); !ec && it != fs::recursive_directory_iterator();
         it.increment(ec)) {
      ::chmod(it->path().c_str(), 0700);
    }
  }
}

fs::path make_scratch_folder(const fs::path& parent_in) {
  const fs::path parent = parent_in.empty() ? fs::temp_directory_path() : parent_in;
  std::string pattern = (parent / "chorus-sandbox-XXXXXX").string();
  CHORUS_CHECK(::mkdtemp(pattern.data()) != nullptr, "sandbox: cannot create a scratch folder under '",
               parent.string(), "': ", errno_text(errno));
  return pattern;
}

void write_scratch_file(const fs::path& scratch, const std::string& name, const std::string& content) {
  const fs::path relative(name);
  CHORUS_CHECK(!name.empty() && relative.is_relative(), "sandbox: file name '", name,
               "' must be a relative path inside the scratch folder");
  for (const auto& part : relative) {
    CHORUS_CHECK(part != "..", "sandbox: file name '", name, "' must not leave the scratch folder");
  }
  const fs::path target = scratch / relative;
  fs::create_directories(target.parent_path());
  std::ofstream out(target, std::ios::binary);
  out.write(content.data(), static_cast<std::streamsize>(content.size()));
  out.close();
  CHORUS_CHECK(out.good(), "sandbox: cannot write '", target.string(), "'");
}

// Owns the strings behind a char* array for execve.
struct CStringArray {
  std::vector<std::string> strings;
  std::vector<char*> pointers;
  void finish() {
    pointers.clear();
    for (auto& s : strings) pointers.push_back(s.data());
    pointers.push_back(nullptr);
  }
};

CStringArray make_environment(const SandboxCommand& command, const fs::path& scratch) {
  std::map<std::string, std::string> env;
  const char* path = std::getenv("PATH");
  env["PATH"] = path ? path : "/usr/local/bin:/usr/bin:/bin";
  env["HOME"] = scratch.string();
  env["TMPDIR"] = scratch.string();
  env["LANG"] = "C.UTF-8";
  env["LC_ALL"] = "C.UTF-8";
  env["PYTHONDONTWRITEBYTECODE"] = "1";
  env["PYTHONHASHSEED"] = "0";
  for (const auto& [name, value] : command.environment) {
    CHORUS_CHECK(!name.empty() && name.find('=') == std::string::npos, "sandbox: bad environment variable name '",
                 name, "'");
    env[name] = value;
  }
  CStringArray out;
  for (const auto& [name, value] : env) out.strings.push_back(name + "=" + value);
  out.finish();
  return out;
}

struct PreparedLimit {
  int resource;
  rlimit value;
};

rlim_t megabytes(std::size_t mb) { return static_cast<rlim_t>(mb) << 20; }

std::vector<PreparedLimit> prepare_limits(const SandboxLimits& limits) {
  CHORUS_CHECK(limits.cpu_s > 0 && limits.wall_s > 0, "sandbox: cpu_s and wall_s must be positive (got ",
               limits.cpu_s, " and ", limits.wall_s, ")");
  CHORUS_CHECK(limits.memory_mb > 0 && limits.max_open_files >= 3 && limits.max_processes > 0,
               "sandbox: memory_mb and max_processes must be positive and max_open_files at least 3");
  const auto cpu = static_cast<rlim_t>(std::ceil(limits.cpu_s));
  // The soft CPU limit sends SIGXCPU; the hard one, a second later, SIGKILL (a program may catch SIGXCPU).
  return {
      {RLIMIT_CPU, {cpu, cpu + 1}},
      {RLIMIT_AS, {megabytes(limits.memory_mb), megabytes(limits.memory_mb)}},
      {RLIMIT_FSIZE, {megabytes(limits.file_size_mb), megabytes(limits.file_size_mb)}},
      {RLIMIT_NPROC, {static_cast<rlim_t>(limits.max_processes), static_cast<rlim_t>(limits.max_processes)}},
      {RLIMIT_NOFILE, {static_cast<rlim_t>(limits.max_open_files), static_cast<rlim_t>(limits.max_open_files)}},
      {RLIMIT_CORE, {0, 0}},
  };
}

// --- In the child: async-signal-safe calls only, then execve or _exit. ---

void child_report(int status_fd, int kind, int error) {
  const Record record{kind, error};
  [[maybe_unused]] const ssize_t n = ::write(status_fd, &record, sizeof record);
}

[[noreturn]] void child_fail(int status_fd, int kind) {
  child_report(status_fd, kind, errno);
  ::_exit(127);
}

// Returns the isolation record kind, or 0 on failure (errno set by the last attempt).
int child_isolate_network() {
  if (::unshare(CLONE_NEWNET) == 0) return kIsolatedNetns;
  // Without CAP_SYS_ADMIN: a user namespace gives it inside, where the network namespace is made.
  if (::unshare(CLONE_NEWUSER | CLONE_NEWNET) == 0) return kIsolatedUserns;
  return 0;
}

void child_close_other_fds(int keep) {
#ifdef SYS_close_range
  bool done = true;
  if (keep > 3 && ::syscall(SYS_close_range, 3u, static_cast<unsigned>(keep - 1), 0u) != 0) done = false;
  if (done && ::syscall(SYS_close_range, static_cast<unsigned>(keep + 1), ~0u, 0u) != 0) done = false;
  if (done) return;
#endif
  for (int fd = 3; fd < 65536; ++fd) {
    if (fd != keep) ::close(fd);
  }
}

struct ChildSetup {
  const char* program;
  char* const* argv;
  char* const* envp;
  const char* scratch;
  pid_t parent;
  int stdin_fd, stdout_fd, stderr_fd, status_fd;
  NetworkPolicy network;
  const std::vector<PreparedLimit>* limits;
};

[[noreturn]] void child_main(const ChildSetup& s) {
  ::setpgid(0, 0);
  // Dies with the thread that started it (an interrupted evaluation leaves no sleepers behind).
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() != s.parent) ::_exit(127);
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  struct sigaction default_action {};
  default_action.sa_handler = SIG_DFL;
  for (int sig = 1; sig < NSIG; ++sig) ::sigaction(sig, &default_action, nullptr);

  if (s.network != NetworkPolicy::shared) {
    const int isolated = child_isolate_network();
    if (isolated == 0 && s.network == NetworkPolicy::isolated) child_fail(s.status_fd, kFailedNetwork);
    child_report(s.status_fd, isolated == 0 ? kNotIsolated : isolated, 0);
  } else {
    child_report(s.status_fd, kNotIsolated, 0);
  }

  if (::dup2(s.stdin_fd, 0) < 0 || ::dup2(s.stdout_fd, 1) < 0 || ::dup2(s.stderr_fd, 2) < 0) {
    child_fail(s.status_fd, kFailedRedirect);
  }
  if (::chdir(s.scratch) != 0) child_fail(s.status_fd, kFailedChdir);
  child_close_other_fds(s.status_fd);
  for (const auto& limit : *s.limits) {
    if (::setrlimit(limit.resource, &limit.value) != 0) child_fail(s.status_fd, kFailedRlimit);
  }
  ::execve(s.program, s.argv, s.envp);
  child_fail(s.status_fd, kFailedExec);
}

// --- In the parent. ---

int open_pidfd(pid_t pid) {
#ifdef SYS_pidfd_open
  return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
#else
  return -1;
#endif
}

// Reads what is available from `fd` into `out` (at most `cap` bytes kept). Returns false at EOF.
bool read_some(int fd, std::string& out, std::size_t cap, bool& truncated) {
  char buffer[65536];
  const ssize_t n = ::read(fd, buffer, sizeof buffer);
  if (n < 0) return errno == EINTR || errno == EAGAIN;
  if (n == 0) return false;
  const std::size_t room = out.size() < cap ? cap - out.size() : 0;
  out.append(buffer, std::min(room, static_cast<std::size_t>(n)));
  if (static_cast<std::size_t>(n) > room) truncated = true;
  return true;
}

const char* stage_text(int kind) {
  switch (kind) {
    case kFailedRedirect: return "redirecting standard streams";
    case kFailedChdir: return "entering the scratch folder";
    case kFailedRlimit: return "setting resource limits";
    case kFailedExec: return "executing the program";
    default: return "preparing the child";
  }
}

bool mentions_memory_exhaustion(const std::string& text) {
  for (const char* marker : {"MemoryError", "std::bad_alloc", "Cannot allocate memory", "out of memory"}) {
    if (text.find(marker) != std::string::npos) return true;
  }
  return false;
}

double seconds(const timeval& t) { return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) * 1e-6; }

}  // namespace

const char* to_string(SandboxLimit limit) {
  switch (limit) {
    case SandboxLimit::none: return "none";
    case SandboxLimit::cpu: return "cpu";
    case SandboxLimit::memory: return "memory";
    case SandboxLimit::wall: return "wall";
    case SandboxLimit::output: return "output";
    case SandboxLimit::file_size: return "file_size";
  }
  return "none";
}

std::string SandboxResult::describe() const {
  std::string text;
  if (exit_code) {
    text = "exit " + std::to_string(*exit_code);
  } else if (term_signal) {
    const char* name = sigabbrev_np(*term_signal);
    text = "signal " + std::to_string(*term_signal) + (name ? std::string(" (SIG") + name + ")" : std::string());
  } else {
    text = "not started";
  }
  if (limit_hit != SandboxLimit::none) text += std::string(", ") + to_string(limit_hit) + " limit";
  return text;
}

SandboxResult run_sandboxed(const SandboxCommand& command) {
  CHORUS_CHECK(!command.argv.empty(), "sandbox: no command given (empty argv)");
  const fs::path program = resolve_program(command.argv.front());
  const auto limits = prepare_limits(command.limits);

  SandboxResult result;
  result.scratch_folder = make_scratch_folder(command.scratch_parent);
  struct ScratchGuard {
    fs::path folder;
    ~ScratchGuard() { remove_scratch(folder); }
  } scratch_guard{result.scratch_folder};

  for (const auto& [name, content] : command.files) write_scratch_file(result.scratch_folder, name, content);

  CStringArray argv;
  argv.strings = command.argv;
  argv.strings.front() = program.string();
  argv.finish();
  const CStringArray envp = make_environment(command, result.scratch_folder);
  const std::string scratch = result.scratch_folder.string();

  // Standard input: an unlinked file in the scratch folder, so no writer can block on a full pipe.
  Fd stdin_fd;
  if (command.stdin_text) {
    const fs::path stdin_path = result.scratch_folder / ".stdin";
    write_scratch_file(result.scratch_folder, ".stdin", *command.stdin_text);
    stdin_fd = Fd(::open(stdin_path.c_str(), O_RDONLY | O_CLOEXEC));
    fs::remove(stdin_path);
  } else {
    stdin_fd = Fd(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  }
  CHORUS_CHECK(stdin_fd.get() >= 0, "sandbox: cannot open the standard input: ", errno_text(errno));

  Fd out_read, out_write, err_read, err_write, status_read, status_write;
  make_pipe(out_read, out_write);
  make_pipe(err_read, err_write);
  make_pipe(status_read, status_write);

  const ChildSetup setup{program.c_str(), argv.pointers.data(), envp.pointers.data(), scratch.c_str(),
                         ::getpid(),      stdin_fd.get(),       out_write.get(),      err_write.get(),
                         status_write.get(), command.network,   &limits};
  const auto start = Clock::now();
  const pid_t pid = ::fork();
  CHORUS_CHECK(pid >= 0, "sandbox: fork failed: ", errno_text(errno));
  if (pid == 0) child_main(setup);

  // Both sides set the group, so a kill right after fork already reaches it.
  ::setpgid(pid, pid);
  stdin_fd.reset();
  out_write.reset();
  err_write.reset();
  status_write.reset();

  // Until exec the child reports on the status pipe; exec closes it.
  Record failure{0, 0};
  for (Record record{}; ;) {
    const ssize_t n = ::read(status_read.get(), &record, sizeof record);
    if (n < 0 && errno == EINTR) continue;
    if (n != static_cast<ssize_t>(sizeof record)) break;
    if (record.kind < 0) {
      failure = record;
    } else {
      result.network_isolated = record.kind != kNotIsolated;
      result.network_method = record.kind == kIsolatedNetns ? "netns"
                              : record.kind == kIsolatedUserns ? "userns+netns"
                                                               : "none";
    }
  }
  if (failure.kind != 0) {
    int status = 0;
    ::waitpid(pid, &status, 0);
    if (failure.kind == kFailedNetwork) {
      throw Error("sandbox: cannot isolate the network: unshare(CLONE_NEWNET) and unshare(CLONE_NEWUSER | "
                  "CLONE_NEWNET) both failed (last error: " + errno_text(failure.error) +
                  "); the caller may allow running with the host network (NetworkPolicy::isolated_if_possible)");
    }
    throw Error(std::string("sandbox: cannot run '") + program.string() + "': " + stage_text(failure.kind) +
                " failed: " + errno_text(failure.error));
  }

  const auto deadline = start + std::chrono::duration_cast<Clock::duration>(
                                    std::chrono::duration<double>(command.limits.wall_s));
  Fd pidfd(open_pidfd(pid));
  bool out_open = true, err_open = true, exited = false, killed = false;
  int status = 0;
  rusage usage{};
  std::optional<Clock::time_point> drain_until;

  const auto kill_group = [&] { ::kill(-pid, SIGKILL); };
  const auto try_reap = [&](int flags) {
    const pid_t r = ::wait4(pid, &status, flags, &usage);
    if (r == pid) {
      exited = true;
      result.wall_s = std::chrono::duration<double>(Clock::now() - start).count();
      // Descendants left behind die with the group; the pipes then reach EOF.
      kill_group();
      drain_until = Clock::now() + kDrainGrace;
    }
  };

  while (!exited || out_open || err_open) {
    const auto now = Clock::now();
    if (!exited && !killed && now >= deadline) {
      result.limit_hit = SandboxLimit::wall;
      killed = true;
      kill_group();
    }
    if (exited && drain_until && now >= *drain_until) break;

    pollfd fds[3];
    nfds_t count = 0;
    const int out_index = out_open ? static_cast<int>(count) : -1;
    if (out_open) fds[count++] = {out_read.get(), POLLIN, 0};
    const int err_index = err_open ? static_cast<int>(count) : -1;
    if (err_open) fds[count++] = {err_read.get(), POLLIN, 0};
    const int pid_index = (!exited && pidfd.get() >= 0) ? static_cast<int>(count) : -1;
    if (pid_index >= 0) fds[count++] = {pidfd.get(), POLLIN, 0};

    const auto until = exited ? *drain_until : (killed ? now + std::chrono::seconds(1) : deadline);
    auto wait_ms = std::chrono::duration_cast<std::chrono::milliseconds>(until - now).count() + 1;
    if (!exited && pidfd.get() < 0) wait_ms = std::min<long long>(wait_ms, 10);  // no pidfd: poll waitpid
    const int ready = ::poll(fds, count, static_cast<int>(std::max<long long>(wait_ms, 0)));
    if (ready < 0 && errno != EINTR) throw Error(std::string("sandbox: poll failed: ") + errno_text(errno));

    const auto read_stream = [&](int index, Fd& fd, std::string& text, bool& truncated, bool& open) {
      if (index < 0 || !(fds[index].revents & (POLLIN | POLLHUP | POLLERR))) return;
      if (!read_some(fd.get(), text, command.limits.output_bytes, truncated)) open = false;
      if (truncated && !killed && !exited) {
        result.limit_hit = SandboxLimit::output;
        killed = true;
        kill_group();
      }
    };
    if (ready > 0) {
      read_stream(out_index, out_read, result.stdout_text, result.stdout_truncated, out_open);
      read_stream(err_index, err_read, result.stderr_text, result.stderr_truncated, err_open);
    }
    if (!exited) try_reap(killed ? 0 : WNOHANG);
  }

  result.cpu_s = seconds(usage.ru_utime) + seconds(usage.ru_stime);
  if (WIFEXITED(status)) result.exit_code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) result.term_signal = WTERMSIG(status);

  if (result.limit_hit == SandboxLimit::none) {
    const int sig = result.term_signal.value_or(0);
    if (sig == SIGXCPU || (sig == SIGKILL && result.cpu_s >= std::ceil(command.limits.cpu_s))) {
      result.limit_hit = SandboxLimit::cpu;
    } else if (sig == SIGXFSZ) {
      result.limit_hit = SandboxLimit::file_size;
    } else if (!result.succeeded() && mentions_memory_exhaustion(result.stderr_text)) {
      // RLIMIT_AS makes allocations fail rather than kill: the program's own report tells.
      result.limit_hit = SandboxLimit::memory;
    }
  }
  return result;
}

std::string probe_network_isolation(std::string* why_not) {
  Fd read_end, write_end;
  make_pipe(read_end, write_end);
  const pid_t pid = ::fork();
  CHORUS_CHECK(pid >= 0, "sandbox: fork failed: ", errno_text(errno));
  if (pid == 0) {
    int kind = 0;
    int error = 0;
    if (::unshare(CLONE_NEWNET) == 0) {
      kind = kIsolatedNetns;
    } else {
      const int first = errno;
      if (::unshare(CLONE_NEWUSER | CLONE_NEWNET) == 0) {
        kind = kIsolatedUserns;
      } else {
        kind = kNotIsolated;
        error = first * 1000 + errno;
      }
    }
    const Record record{kind, error};
    [[maybe_unused]] const ssize_t n = ::write(write_end.get(), &record, sizeof record);
    ::_exit(0);
  }
  write_end.reset();
  Record record{kNotIsolated, 0};
  const ssize_t n = ::read(read_end.get(), &record, sizeof record);
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (n != static_cast<ssize_t>(sizeof record)) record = {kNotIsolated, 0};
  if (record.kind == kIsolatedNetns) return "netns";
  if (record.kind == kIsolatedUserns) return "userns+netns";
  if (why_not) {
    *why_not = "unshare(CLONE_NEWNET): " + errno_text(record.error / 1000) +
               "; unshare(CLONE_NEWUSER | CLONE_NEWNET): " + errno_text(record.error % 1000);
  }
  return "none";
}

}  // namespace chorus::eval
