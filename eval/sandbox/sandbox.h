// Running an untrusted command in a child process with resource limits, no network and a scratch folder.
#pragma once

#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace chorus::eval {

// What the child may do with the network.
enum class NetworkPolicy {
  isolated,               // a fresh network namespace (loopback only, down); refuse to run when none can be made
  isolated_if_possible,   // the same, but run with the host network when no namespace can be made
  shared,                 // no namespace: the child sees the host network (trusted commands only)
};

struct SandboxLimits {
  double wall_s = 10;            // enforced by the parent: SIGKILL to the whole process group
  double cpu_s = 10;             // RLIMIT_CPU (whole seconds, rounded up); SIGXCPU, then SIGKILL a second later
  std::size_t memory_mb = 1024;  // RLIMIT_AS: address space, so allocations fail instead of the OOM killer
  std::size_t file_size_mb = 64;     // RLIMIT_FSIZE: the largest file the child may write
  std::size_t max_processes = 64;    // RLIMIT_NPROC (per user, as Linux counts it; not enforced for root)
  std::size_t max_open_files = 256;  // RLIMIT_NOFILE
  std::size_t output_bytes = 1 << 20;  // per stream; the child is killed when it writes more
};

struct SandboxCommand {
  // argv[0] is looked up on the parent's PATH when it holds no '/'.
  std::vector<std::string> argv;
  // Written into the scratch folder before the run (name relative to it -> content).
  std::map<std::string, std::string> files;
  // Standard input; /dev/null when absent.
  std::optional<std::string> stdin_text;
  // Added to the cleaned environment (PATH, HOME and TMPDIR = the scratch folder, LANG and LC_ALL =
  // C.UTF-8, PYTHONDONTWRITEBYTECODE=1, PYTHONHASHSEED=0); a name given here replaces the default.
  std::map<std::string, std::string> environment;
  SandboxLimits limits;
  NetworkPolicy network = NetworkPolicy::isolated;
  // Where the scratch folder is made; the system's temporary folder when empty.
  std::filesystem::path scratch_parent;
};

// The limit that ended the run, if one did.
enum class SandboxLimit { none, cpu, memory, wall, output, file_size };
const char* to_string(SandboxLimit limit);

struct SandboxResult {
  std::optional<int> exit_code;    // when the child exited
  std::optional<int> term_signal;  // when a signal ended it
  SandboxLimit limit_hit = SandboxLimit::none;
  double wall_s = 0;
  double cpu_s = 0;  // user + system of the child and the descendants it waited for
  std::string stdout_text;
  std::string stderr_text;
  bool stdout_truncated = false;
  bool stderr_truncated = false;
  bool network_isolated = false;
  std::string network_method;  // "netns", "userns+netns" or "none"
  std::filesystem::path scratch_folder;  // already removed when run_sandboxed returns

  bool succeeded() const { return exit_code && *exit_code == 0 && limit_hit == SandboxLimit::none; }
  // "exit 0", "exit 1", "signal 9 (Killed)", followed by the limit when one was hit.
  std::string describe() const;
};

// Runs `command` and waits for it (at most the wall limit plus a short grace). Throws chorus::Error
// when the command cannot be started (program not found, no isolation under NetworkPolicy::isolated,
// scratch folder not writable); a command that runs and fails is a result, not an error.
//
// The child gets: its own process group; a new network namespace (as root, or through a user
// namespace otherwise); the limits above; a scratch folder as working directory, HOME and TMPDIR,
// removed afterwards; the cleaned environment; no file descriptors but 0, 1 and 2. It is not
// chrooted: it can read whatever the calling user can read and write outside the scratch folder
// where the user may. Safe to call from several threads at once.
SandboxResult run_sandboxed(const SandboxCommand& command);

// Which network isolation this process can get: "netns", "userns+netns", or "none" with the
// reasons in `why_not`. Forks a short-lived child to find out.
std::string probe_network_isolation(std::string* why_not = nullptr);

}  // namespace chorus::eval
