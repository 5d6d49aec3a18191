// The config dialect: loading with includes, overrides, typed reads and the unused-key check.
#include "common/config.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <charconv>
#include <fstream>
#include <limits>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <type_traits>
#include <utility>

#include "common/atomic_file.h"
#include "common/error.h"
#include "common/text/utf8.h"

namespace fs = std::filesystem;

namespace chorus {

namespace detail {

// Where a key was set, and the directory its relative paths are resolved against.
struct Origin {
  std::string where;  // "dir/file.yaml:12" or "override 'a.b=3'"
  fs::path dir;       // absolute
};

struct ConfigState {
  YAML::Node doc{YAML::NodeType::Map};
  std::string name;                       // the top-level file as shown in messages
  std::map<std::string, Origin> origins;  // full key path -> where it was set
  std::set<std::string> known;            // key paths some consumer asked for
  std::map<std::string, std::string> resolved_paths;  // key path -> absolute path, for paths read by get_path
  size_t includes = 0;                    // files included while loading
  mutable std::mutex mutex;               // views may be read from several threads
};

}  // namespace detail

namespace {

using detail::ConfigState;
using detail::Origin;
using Origins = std::map<std::string, Origin>;

// ---------------------------------------------------------------------------------------------
// Key paths: "a.b[2].c" <-> steps.

struct Step {
  bool is_index = false;
  std::string key;
  size_t index = 0;
};

std::string join_key(const std::string& prefix, const std::string& key) {
  return prefix.empty() ? key : prefix + "." + key;
}

std::string join_index(const std::string& prefix, size_t index) {
  return prefix + "[" + std::to_string(index) + "]";
}

bool valid_key_name(const std::string& key) {
  return !key.empty() && key.find_first_of(".[]=") == std::string::npos;
}

// Parses a key path; nullopt when malformed (empty names, stray brackets, leading index).
std::optional<std::vector<Step>> parse_key_path(const std::string& path) {
  std::vector<Step> steps;
  size_t pos = 0;
  while (true) {
    const size_t end = path.find_first_of(".[", pos);
    std::string name = path.substr(pos, end == std::string::npos ? std::string::npos : end - pos);
    if (!valid_key_name(name)) return std::nullopt;
    steps.push_back({false, name, 0});
    pos = end;
    while (pos != std::string::npos && path[pos] == '[') {
      const size_t close = path.find(']', pos);
      if (close == std::string::npos || close == pos + 1) return std::nullopt;
      size_t index = 0;
      const char* first = path.data() + pos + 1;
      const char* last = path.data() + close;
      const auto [ptr, ec] = std::from_chars(first, last, index);
      if (ec != std::errc() || ptr != last) return std::nullopt;
      steps.push_back({true, "", index});
      pos = close + 1 == path.size() ? std::string::npos : close + 1;
    }
    if (pos == std::string::npos) break;
    if (path[pos] != '.') return std::nullopt;
    ++pos;
  }
  return steps;
}

// The parent of a key path ("a.b[1].c" -> "a.b[1]", "a.b[1]" -> "a.b", "a" -> "").
std::string parent_path(const std::string& path) {
  const size_t cut = path.find_last_of(".[");
  return cut == std::string::npos ? std::string() : path.substr(0, cut);
}

// The node at a key path; nullopt when some step is absent (a null value counts as present here).
std::optional<YAML::Node> find_node(const ConfigState& state, const std::string& path) {
  const std::lock_guard<std::mutex> lock(state.mutex);
  YAML::Node cur = state.doc;
  if (path.empty()) return cur;
  const auto steps = parse_key_path(path);
  if (!steps) return std::nullopt;
  for (const Step& step : *steps) {
    const YAML::Node& c = cur;
    if (step.is_index) {
      if (!c.IsSequence() || step.index >= c.size()) return std::nullopt;
      const YAML::Node next = c[step.index];
      cur.reset(next);
    } else {
      if (!c.IsMap()) return std::nullopt;
      const YAML::Node next = c[step.key];  // an absent key gives an invalid node: never reset() to it
      if (!next.IsDefined()) return std::nullopt;
      cur.reset(next);
    }
  }
  return cur;
}

bool is_present(const std::optional<YAML::Node>& node) { return node && !node->IsNull(); }

// Whether a file exists; a name that cannot be looked up (too long, in a folder that cannot be
// searched) does not.
bool file_exists(const fs::path& path) {
  std::error_code error;
  return fs::exists(path, error);
}

std::string describe_node(const YAML::Node& node) {
  if (node.IsMap()) return "a map";
  if (node.IsSequence()) return "a list";
  if (node.IsNull()) return "null";
  return "'" + node.Scalar() + "'";
}

size_t levenshtein(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

// The closest of `candidates` to `word` within max(2, |word|/3) edits.
std::optional<std::string> closest(const std::string& word, const std::vector<std::string>& candidates) {
  const size_t limit = std::max<size_t>(2, word.size() / 3);
  std::optional<std::string> best;
  size_t best_distance = limit + 1;
  for (const std::string& candidate : candidates) {
    const size_t d = levenshtein(word, candidate);
    if (d > 0 && d < best_distance) {
      best = candidate;
      best_distance = d;
    }
  }
  return best;
}

// ---------------------------------------------------------------------------------------------
// Loading and merging.

// Where the keys of one source (a file or an override) come from.
struct Source {
  std::string file;                  // display name of the file
  fs::path dir;                      // absolute directory for relative paths
  std::optional<std::string> fixed;  // overrides: one origin for every key

  std::string where(const YAML::Node& node) const {
    if (fixed) return *fixed;
    return file + ":" + std::to_string(node.Mark().line + 1);
  }
};

// A key path for a message: valid UTF-8, at most 80 bytes and an ellipsis.
std::string shown_key(const std::string& prefix, const std::string& key) {
  const std::string path = join_key(prefix, key);
  return path.size() <= 80 ? to_valid_utf8(path) : to_valid_utf8(path.substr(0, 80)) + "...";
}

// Limits that keep a broken or hostile document from exhausting the stack, the memory or the time of
// whoever reads it (a config is a few hundred values, nested a few levels).
constexpr size_t kMaxDepth = 64;               // maps and lists inside each other
constexpr size_t kMaxValues = 100000;          // values in one source, counting every use of an alias
constexpr std::uintmax_t kMaxFileBytes = 16u << 20;
constexpr size_t kMaxIncludes = 256;           // files included, in all
constexpr size_t kMaxKeyBytes = 200;           // a key name

// Records the origin of every key and list element under `node` (whose path is `prefix`, `depth`
// levels down); checks key names, duplicates, the nesting depth and the number of values on the way.
// The walk follows aliases, so an alias inside the node it names ends at the depth limit.
void record_origins(const YAML::Node& node, const std::string& prefix, const Source& source, Origins& out,
                    bool skip_include, size_t depth, size_t& values) {
  if (node.IsScalar()) {
    // YAML is Unicode text; invalid bytes would come back as U+FFFD from the saved config.
    const auto invalid = find_invalid_utf8(node.Scalar());
    CHORUS_CHECK(!invalid, source.where(node), ": ", prefix.empty() ? "the value" : prefix,
                 ": not valid UTF-8 (byte ", invalid.value_or(0) + 1, " of the value)");
    return;
  }
  const auto count = [&](const YAML::Node& child, const std::string& path) {
    CHORUS_CHECK(++values <= kMaxValues, source.where(child), ": ", path, ": more than ", kMaxValues,
                 " values in one document (an alias repeated many times?)");
    CHORUS_CHECK(depth + 1 <= kMaxDepth || !(child.IsMap() || child.IsSequence()), source.where(child), ": ",
                 path, ": nested deeper than ", kMaxDepth, " levels (or an alias inside the map or list it names)");
  };
  if (node.IsMap()) {
    std::map<std::string, std::string> seen;
    for (auto it = node.begin(); it != node.end(); ++it) {
      const YAML::Node key_node = it->first;  // a copy: `it->` gives a temporary
      CHORUS_CHECK(key_node.IsScalar(), source.where(key_node), ": ", prefix.empty() ? "" : prefix + ": ",
                   "keys must be plain names, got ", describe_node(key_node));
      const std::string key = key_node.Scalar();
      CHORUS_CHECK(!find_invalid_utf8(key), source.where(key_node), ": key '", shown_key(prefix, key),
                   "': not valid UTF-8");
      CHORUS_CHECK(key.size() <= kMaxKeyBytes, source.where(key_node), ": key '", shown_key(prefix, key),
                   "': a key name is at most ", kMaxKeyBytes, " bytes, got ", key.size());
      CHORUS_CHECK(valid_key_name(key), source.where(key_node), ": key '", join_key(prefix, key),
                   "': a key name must be non-empty and free of '.', '[', ']' and '=' (they separate key paths)");
      const std::string where = source.where(key_node);
      const auto [previous, inserted] = seen.emplace(key, where);
      CHORUS_CHECK(inserted, where, ": duplicate key '", join_key(prefix, key), "' (first set at ",
                   previous->second, ")");
      if (skip_include && key == "include") continue;
      const std::string path = join_key(prefix, key);
      const YAML::Node value = it->second;
      count(value, path);
      out[path] = Origin{where, source.dir};
      record_origins(value, path, source, out, false, depth + 1, values);
    }
  } else if (node.IsSequence()) {
    for (size_t i = 0; i < node.size(); ++i) {
      const std::string path = join_index(prefix, i);
      const YAML::Node item = node[i];
      count(item, path);
      out[path] = Origin{source.where(item), source.dir};
      record_origins(item, path, source, out, false, depth + 1, values);
    }
  }
}

// A copy of `node` (checked by record_origins) in which every alias is expanded into a node of its
// own, so that merging or overriding one place never changes another. Tags are kept (a quoted
// scalar stays a string); marks are not needed any more, the origins hold them.
YAML::Node expand_aliases(const YAML::Node& node) {
  if (node.IsMap()) {
    YAML::Node out(YAML::NodeType::Map);
    for (auto it = node.begin(); it != node.end(); ++it) out[it->first.Scalar()] = expand_aliases(it->second);
    return out;
  }
  if (node.IsSequence()) {
    YAML::Node out(YAML::NodeType::Sequence);
    for (size_t i = 0; i < node.size(); ++i) out.push_back(expand_aliases(node[i]));
    return out;
  }
  if (node.IsScalar()) {
    YAML::Node out(node.Scalar());
    out.SetTag(node.Tag());
    return out;
  }
  return YAML::Node(YAML::NodeType::Null);
}

bool has_path_prefix(const std::string& path, const std::string& prefix) {
  return path.size() >= prefix.size() && path.compare(0, prefix.size(), prefix) == 0 &&
         (path.size() == prefix.size() || path[prefix.size()] == '.' || path[prefix.size()] == '[');
}

// Removes the origins of `path` and everything below it.
void erase_origins(Origins& origins, const std::string& path) {
  auto it = origins.lower_bound(path);
  while (it != origins.end() && it->first.compare(0, path.size(), path) == 0) {
    it = has_path_prefix(it->first, path) ? origins.erase(it) : std::next(it);
  }
}

// Copies the origins of `path` and everything below it from `from`.
void copy_origins(Origins& origins, const Origins& from, const std::string& path) {
  for (auto it = from.lower_bound(path); it != from.end() && it->first.compare(0, path.size(), path) == 0; ++it) {
    if (has_path_prefix(it->first, path)) origins[it->first] = it->second;
  }
}

// Merges the map `src` into the map `dst` (at `prefix`): maps merge deeply, everything else is replaced.
void merge_map(ConfigState& state, YAML::Node dst, const YAML::Node& src, const std::string& prefix,
               const Origins& src_origins, bool skip_include) {
  for (auto it = src.begin(); it != src.end(); ++it) {
    const std::string key = it->first.Scalar();
    if (skip_include && key == "include") continue;
    const std::string path = join_key(prefix, key);
    const YAML::Node value = it->second;  // a copy: `it->` gives a temporary
    const YAML::Node& const_dst = dst;
    const YAML::Node existing = const_dst[key];
    if (existing.IsDefined() && existing.IsMap() && value.IsMap()) {
      state.origins[path] = src_origins.at(path);
      merge_map(state, dst[key], value, path, src_origins, false);
    } else {
      erase_origins(state.origins, path);
      dst[key] = YAML::Clone(value);
      copy_origins(state.origins, src_origins, path);
    }
  }
}

// The text of a config file, at most kMaxFileBytes (read in full: files in /proc say they are empty).
std::string read_text(const fs::path& path, const std::string& display) {
  std::ifstream in(path, std::ios::binary);
  CHORUS_CHECK(in, "cannot read config file '", display, "'");
  std::string text;
  char buffer[1 << 16];
  while (in.read(buffer, sizeof buffer) || in.gcount() > 0) {
    text.append(buffer, static_cast<size_t>(in.gcount()));
    CHORUS_CHECK(text.size() <= kMaxFileBytes, "config file '", display, "' is larger than ", kMaxFileBytes >> 20,
                 " MiB; a config is a few kilobytes");
  }
  CHORUS_CHECK(in.eof(), "cannot read config file '", display, "'");
  return text;
}

// fs::weakly_canonical without the exception (a name too long, a loop of symbolic links): an Error
// that names the file and says why.
fs::path canonical_path(const fs::path& path, const std::string& where, const std::string& what) {
  std::error_code error;
  fs::path canonical = fs::weakly_canonical(path, error);
  CHORUS_CHECK(!error, where, what, " '", path.string(), "' cannot be resolved: ", error.message());
  return canonical;
}

// The type of a file, or an Error naming it (a name too long, a folder that cannot be searched).
fs::file_status file_status(const fs::path& path, const std::string& where, const std::string& what) {
  std::error_code error;
  const fs::file_status status = fs::status(path, error);
  CHORUS_CHECK(!error || status.type() == fs::file_type::not_found, where, what, " '", path.string(),
               "' cannot be read: ", error.message());
  return status;
}

YAML::Node parse_yaml(const std::string& text, const std::string& display) {
  try {
    return YAML::Load(text);
  } catch (const YAML::Exception& e) {
    if (e.mark.is_null()) throw Error(chorus::detail::concat(display, ": YAML syntax error: ", e.msg));
    throw Error(chorus::detail::concat(display, ":", e.mark.line + 1, ":", e.mark.column + 1,
                                       ": YAML syntax error: ", e.msg));
  }
}

struct FileRef {
  std::string display;   // as shown in messages
  fs::path display_dir;  // directory part of `display`, for the display names of its includes
  fs::path real_dir;     // absolute directory, for reading includes and resolving paths
};

std::string chain_text(const std::vector<std::string>& chain, const std::string& last) {
  std::string text;
  for (const std::string& file : chain) text += file + " -> ";
  return text + last;
}

// Merges `doc` (the content of `file`) into the state: its includes first, in order, then its own keys.
// `chain` holds the files being loaded (display names) and `chain_real` their canonical paths.
void merge_file(ConfigState& state, const YAML::Node& doc, const FileRef& file, std::vector<std::string>& chain,
                std::vector<fs::path>& chain_real) {
  if (!doc.IsDefined() || doc.IsNull()) return;  // an empty file
  CHORUS_CHECK(doc.IsMap(), file.display, ":", doc.Mark().line + 1,
               ": expected a map of keys at the top level, got ", describe_node(doc));
  const Source source{file.display, file.real_dir, std::nullopt};

  std::vector<std::pair<std::string, std::string>> includes;  // (name, where)
  const YAML::Node include = doc["include"];
  if (include.IsDefined() && !include.IsNull()) {
    const std::string where = source.where(include);
    if (include.IsScalar()) {
      includes.emplace_back(include.Scalar(), where);
    } else if (include.IsSequence()) {
      for (const YAML::Node& item : include) {
        CHORUS_CHECK(item.IsScalar(), source.where(item), ": include: expected a file name, got ", describe_node(item));
        includes.emplace_back(item.Scalar(), source.where(item));
      }
    } else {
      throw Error(chorus::detail::concat(where, ": include: expected a file name or a list of file names, got ",
                                 describe_node(include)));
    }
  }

  for (const auto& [name, where] : includes) {
    CHORUS_CHECK(!name.empty(), where, ": include: expected a file name, got ''");
    const fs::path relative(name);
    const fs::path real = relative.is_absolute() ? relative : file.real_dir / relative;
    const fs::path display_path =
        relative.is_absolute() ? relative : (file.display_dir / relative).lexically_normal();
    const std::string display = display_path.generic_string();
    const fs::path canonical = canonical_path(real, where, ": included file");
    for (const fs::path& open : chain_real) {
      CHORUS_CHECK(open != canonical, where, ": include cycle: ", chain_text(chain, display));
    }
    const fs::file_status status = file_status(real, where, ": included file");
    CHORUS_CHECK(fs::exists(status), where, ": included file '", name, "' does not exist (resolved to '",
                 canonical.string(), "')");
    CHORUS_CHECK(fs::is_regular_file(status), where, ": included file '", name, "' is not a regular file (resolved to '",
                 canonical.string(), "')");
    CHORUS_CHECK(++state.includes <= kMaxIncludes, where, ": more than ", kMaxIncludes,
                 " files included in all (one file included from many places?)");
    const YAML::Node included = parse_yaml(read_text(real, display), display);
    chain.push_back(display);
    chain_real.push_back(canonical);
    merge_file(state, included, FileRef{display, display_path.parent_path(), canonical.parent_path()}, chain,
               chain_real);
    chain.pop_back();
    chain_real.pop_back();
  }

  Origins own;
  size_t values = 0;
  record_origins(doc, "", source, own, /*skip_include=*/true, 0, values);
  merge_map(state, state.doc, expand_aliases(doc), "", own, /*skip_include=*/true);
}

std::string trim(const std::string& text) {
  const size_t first = text.find_first_not_of(" \t\r\n");
  if (first == std::string::npos) return "";
  const size_t last = text.find_last_not_of(" \t\r\n");
  return text.substr(first, last - first + 1);
}

// Applies one "a.b.c=value" override: the value replaces whatever was at the key.
void apply_override(ConfigState& state, const std::string& text) {
  const std::string quoted = "override '" + to_valid_utf8(text) + "'";
  const size_t eq = text.find('=');
  CHORUS_CHECK(eq != std::string::npos, quoted, ": expected key.path=value (e.g. trainer.lr=0.001)");
  const std::string key = trim(text.substr(0, eq));
  CHORUS_CHECK(!key.empty(), quoted, ": the key before '=' is empty (expected key.path=value)");
  const auto steps = parse_key_path(key);
  CHORUS_CHECK(steps, quoted, ": '", key,
               "' is not a key path (expected names separated by '.', list items as name[0])");
  CHORUS_CHECK(steps->size() <= kMaxDepth, quoted, ": the key path is deeper than ", kMaxDepth, " levels");
  for (const Step& step : *steps) {
    if (step.is_index) continue;
    CHORUS_CHECK(!find_invalid_utf8(step.key), quoted, ": key '", shown_key("", step.key), "': not valid UTF-8");
    CHORUS_CHECK(step.key.size() <= kMaxKeyBytes, quoted, ": key '", shown_key("", step.key), "': a key name is at most ",
                 kMaxKeyBytes, " bytes, got ", step.key.size());
  }

  YAML::Node value;
  const std::string value_text = trim(text.substr(eq + 1));
  if (value_text.empty()) {
    value = YAML::Node(std::string());
  } else {
    try {
      value = YAML::Load(value_text);
    } catch (const YAML::Exception& e) {
      throw Error(chorus::detail::concat(quoted, ": the value is not valid YAML: ", e.msg));
    }
  }
  const Source source{"", fs::current_path(), quoted};
  std::string path;
  Origins value_origins;
  YAML::Node cur = state.doc;
  for (size_t i = 0; i < steps->size(); ++i) {
    const Step& step = (*steps)[i];
    const bool last = i + 1 == steps->size();
    const std::string parent = path;
    path = step.is_index ? join_index(path, step.index) : join_key(path, step.key);
    const YAML::Node& c = cur;
    if (step.is_index) {
      CHORUS_CHECK(c.IsSequence(), quoted, ": '", parent, "' is ", describe_node(c), ", not a list");
      CHORUS_CHECK(step.index < c.size(), quoted, ": '", parent, "' has ", c.size(), " items, no item ",
                   step.index);
    } else {
      CHORUS_CHECK(c.IsMap(), quoted, ": '", parent, "' is ", describe_node(c), ", not a map");
    }
    if (last) {
      erase_origins(state.origins, path);
      size_t values = 0;
      record_origins(value, path, source, value_origins, false, steps->size(), values);
      copy_origins(state.origins, value_origins, path);
      state.origins[path] = Origin{quoted, source.dir};
      if (step.is_index) {
        cur[step.index] = expand_aliases(value);
      } else {
        cur[step.key] = expand_aliases(value);
      }
      return;
    }
    YAML::Node next;
    if (step.is_index) {
      next.reset(cur[step.index]);
    } else {
      const YAML::Node existing = c[step.key];
      if (!existing.IsDefined() || existing.IsNull()) {
        erase_origins(state.origins, path);
        cur[step.key] = YAML::Node(YAML::NodeType::Map);
        state.origins[path] = Origin{quoted, source.dir};
      }
      next.reset(cur[step.key]);
    }
    cur.reset(next);
  }
}

std::shared_ptr<ConfigState> build(const YAML::Node& doc, const FileRef& file, const std::optional<fs::path>& real,
                                   const std::vector<std::string>& overrides) {
  auto state = std::make_shared<ConfigState>();
  state->name = file.display;
  std::vector<std::string> chain{file.display};
  std::vector<fs::path> chain_real;
  if (real) chain_real.push_back(*real);
  merge_file(*state, doc, file, chain, chain_real);
  for (const std::string& text : overrides) apply_override(*state, text);
  return state;
}

// ---------------------------------------------------------------------------------------------
// Reading values.

std::string origin_of(const ConfigState& state, const std::string& key_path) {
  for (std::string path = key_path; !path.empty(); path = parent_path(path)) {
    const auto it = state.origins.find(path);
    if (it != state.origins.end()) return it->second.where;
  }
  return state.name;
}

fs::path origin_dir(const ConfigState& state, const std::string& key_path) {
  for (std::string path = key_path; !path.empty(); path = parent_path(path)) {
    const auto it = state.origins.find(path);
    if (it != state.origins.end()) return it->second.dir;
  }
  return fs::current_path();
}

// Marks a key path and all its parents as read.
void mark_known(ConfigState& state, const std::string& key_path) {
  const std::lock_guard<std::mutex> lock(state.mutex);
  for (std::string path = key_path; !path.empty(); path = parent_path(path)) {
    if (!state.known.insert(path).second) break;  // its parents are marked already
  }
}

[[noreturn]] void throw_type_error(const ConfigState& state, const std::string& path, const std::string& what,
                                   const YAML::Node& node, const std::string& note = "") {
  throw Error(chorus::detail::concat(origin_of(state, path), ": ", path, ": expected ", what, ", got ", describe_node(node), note));
}

[[noreturn]] void throw_missing(const ConfigState& state, const std::string& path, const std::string& what) {
  throw Error(chorus::detail::concat(origin_of(state, parent_path(path)), ": missing required key '", path, "' (", what, ")"));
}

// A quoted scalar ("10", or !!str 10) is a string, never a number or a boolean.
bool is_string_scalar(const YAML::Node& node) {
  return node.IsScalar() && (node.Tag() == "!" || node.Tag() == "tag:yaml.org,2002:str");
}
bool is_plain_scalar(const YAML::Node& node) { return node.IsScalar() && !is_string_scalar(node); }

std::optional<double> parse_double(const std::string& text) {
  static const std::map<std::string, double> special = {
      {".inf", std::numeric_limits<double>::infinity()},   {"+.inf", std::numeric_limits<double>::infinity()},
      {"-.inf", -std::numeric_limits<double>::infinity()}, {".nan", std::numeric_limits<double>::quiet_NaN()}};
  std::string lower = text;
  std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
  if (const auto it = special.find(lower); it != special.end()) return it->second;
  if (text.empty() || text.find_first_not_of("0123456789+-.eE") != std::string::npos) return std::nullopt;
  if (text.find_first_of("0123456789") == std::string::npos) return std::nullopt;
  std::istringstream in(text);
  in.imbue(std::locale::classic());
  double value = 0;
  in >> value;
  if (in.fail() || in.peek() != std::char_traits<char>::eof()) return std::nullopt;
  return value;
}

// Reader<T>::read converts one node or throws naming `path`.
template <class T>
struct Reader;

template <>
struct Reader<bool> {
  static constexpr const char* what = "a boolean (true or false)";
  static bool read(const ConfigState& state, const std::string& path, const YAML::Node& node) {
    bool value = false;
    if (!is_plain_scalar(node) || !YAML::convert<bool>::decode(node, value)) {
      throw_type_error(state, path, what, node);
    }
    return value;
  }
};

template <>
struct Reader<int64_t> {
  static constexpr const char* what = "an integer";
  // `expected` says what was asked in messages (get_int: with its range).
  static int64_t read(const ConfigState& state, const std::string& path, const YAML::Node& node,
                      const std::string& expected = what) {
    if (!is_plain_scalar(node)) throw_type_error(state, path, expected, node);
    const std::string& text = node.Scalar();
    const char* first = text.data() + (!text.empty() && text[0] == '+' ? 1 : 0);
    const char* last = text.data() + text.size();
    int64_t value = 0;
    const auto [ptr, ec] = std::from_chars(first, last, value);
    if (ec == std::errc::result_out_of_range) throw_type_error(state, path, expected, node, " (out of range)");
    if (ec != std::errc() || ptr != last || first == last) throw_type_error(state, path, expected, node);
    return value;
  }
};

template <>
struct Reader<int> {
  static constexpr const char* what = "an integer";
  static int read(const ConfigState& state, const std::string& path, const YAML::Node& node) {
    const int64_t value = Reader<int64_t>::read(state, path, node);
    if (value < std::numeric_limits<int>::min() || value > std::numeric_limits<int>::max()) {
      throw_type_error(state, path, what, node, " (out of range for a 32-bit integer)");
    }
    return static_cast<int>(value);
  }
};

template <>
struct Reader<double> {
  static constexpr const char* what = "a number";
  static double read(const ConfigState& state, const std::string& path, const YAML::Node& node,
                     const std::string& expected = what) {
    if (!is_plain_scalar(node)) throw_type_error(state, path, expected, node);
    const auto value = parse_double(node.Scalar());
    if (!value) throw_type_error(state, path, expected, node);
    return *value;
  }
};

template <>
struct Reader<std::string> {
  static constexpr const char* what = "a string";
  static std::string read(const ConfigState& state, const std::string& path, const YAML::Node& node) {
    if (!node.IsScalar()) throw_type_error(state, path, what, node);
    return node.Scalar();
  }
};

template <class E>
struct ListWhat;
template <>
struct ListWhat<int64_t> {
  static constexpr const char* what = "a list of integers";
};
template <>
struct ListWhat<double> {
  static constexpr const char* what = "a list of numbers";
};
template <>
struct ListWhat<std::string> {
  static constexpr const char* what = "a list of strings";
};

template <class E>
struct Reader<std::vector<E>> {
  static constexpr const char* what = ListWhat<E>::what;
  static std::vector<E> read(const ConfigState& state, const std::string& path, const YAML::Node& node) {
    if (!node.IsSequence()) throw_type_error(state, path, what, node);
    std::vector<E> values;
    values.reserve(node.size());
    for (size_t i = 0; i < node.size(); ++i) {
      values.push_back(Reader<E>::read(state, join_index(path, i), node[i]));
    }
    return values;
  }
};

std::string format_number(double value) {
  std::ostringstream out;
  out.imbue(std::locale::classic());
  out << value;
  return out.str();
}
std::string format_number(int64_t value) { return std::to_string(value); }

template <class N>
std::string range_text(const char* what, const std::optional<N>& min, const std::optional<N>& max) {
  if (min && max) return chorus::detail::concat(what, " in [", format_number(*min), ", ", format_number(*max), "]");
  if (min) return chorus::detail::concat(what, " >= ", format_number(*min));
  return chorus::detail::concat(what, " <= ", format_number(*max));
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Config.

Config::Config(std::shared_ptr<detail::ConfigState> state) : state_(std::move(state)) {}

Config Config::load(const fs::path& path, const std::vector<std::string>& overrides) {
  const std::string display = path.lexically_normal().generic_string();
  const fs::file_status status = file_status(path, "", "config file");
  CHORUS_CHECK(fs::exists(status), "config file '", display, "' does not exist");
  CHORUS_CHECK(fs::is_regular_file(status), "config file '", display, "' is not a regular file");
  const fs::path real = canonical_path(path, "", "config file");
  const YAML::Node doc = parse_yaml(read_text(path, display), display);
  return Config(build(doc, FileRef{display, path.lexically_normal().parent_path(), real.parent_path()}, real,
                      overrides));
}

Config Config::parse(std::string_view yaml, const std::string& name, const fs::path& base_dir,
                     const std::vector<std::string>& overrides) {
  const YAML::Node doc = parse_yaml(std::string(yaml), name);
  return Config(build(doc, FileRef{name, base_dir, fs::absolute(base_dir).lexically_normal()}, std::nullopt,
                      overrides));
}

namespace {

// Emits a node keeping quoted scalars quoted ("10" stays a string when read back). A value that a
// consumer read as a path (`resolved`, by key path) is written resolved, so the text means the same
// wherever it is saved (a run folder's config.yaml is read from the run folder).
void emit(YAML::Emitter& out, const YAML::Node& node, const std::string& prefix,
          const std::map<std::string, std::string>& resolved) {
  if (node.IsMap()) {
    out << YAML::BeginMap;
    for (auto it = node.begin(); it != node.end(); ++it) {
      // Keys are at most kMaxKeyBytes of valid UTF-8, so even escaped they stay within YAML's
      // 1024 characters for a plain "key:".
      const std::string key = it->first.Scalar();
      out << YAML::Key << key << YAML::Value;
      emit(out, it->second, join_key(prefix, key), resolved);
    }
    out << YAML::EndMap;
  } else if (node.IsSequence()) {
    out << YAML::BeginSeq;
    for (size_t i = 0; i < node.size(); ++i) emit(out, node[i], join_index(prefix, i), resolved);
    out << YAML::EndSeq;
  } else if (node.IsScalar()) {
    const auto path = resolved.find(prefix);
    if (path != resolved.end()) {
      out << YAML::DoubleQuoted << path->second;
      return;
    }
    if (is_string_scalar(node) || node.Scalar().empty()) out << YAML::DoubleQuoted;
    out << node.Scalar();
  } else {
    out << YAML::Null;
  }
}

}  // namespace

std::string Config::to_yaml() const {
  YAML::Emitter out;
  const std::lock_guard<std::mutex> lock(state_->mutex);
  emit(out, state_->doc, "", state_->resolved_paths);
  return std::string(out.c_str()) + "\n";
}

void Config::save(const fs::path& path) const { write_file_atomically(path, to_yaml()); }

std::string Config::origin(const std::string& key_path) const { return origin_of(*state_, key_path); }

const std::string& Config::name() const { return state_->name; }

ConfigView Config::root() const { return ConfigView(state_, ""); }

std::vector<std::string> Config::unused_keys() const {
  const ConfigState& state = *state_;
  const std::lock_guard<std::mutex> lock(state.mutex);
  std::vector<std::string> messages;
  const auto report = [&](const std::string& path) {
    const std::string parent = parent_path(path);
    const std::string name = path.substr(parent.empty() ? 0 : parent.size() + 1);
    std::vector<std::string> siblings;
    for (const std::string& known : state.known) {
      if (parent_path(known) == parent && known.size() > parent.size() &&
          (parent.empty() || known[parent.size()] == '.')) {
        siblings.push_back(known.substr(parent.empty() ? 0 : parent.size() + 1));
      }
    }
    std::string message = origin_of(state, path) + ": unknown key '" + path + "'";
    if (const auto guess = closest(name, siblings)) message += " (did you mean '" + join_key(parent, *guess) + "'?)";
    messages.push_back(message);
  };
  // Walks maps the consumers entered; reports the first unread key on each branch.
  const auto walk = [&](const auto& self, const YAML::Node& node, const std::string& prefix) -> void {
    if (node.IsMap()) {
      for (auto it = node.begin(); it != node.end(); ++it) {
        const std::string path = join_key(prefix, it->first.Scalar());
        if (state.known.count(path) == 0) {
          report(path);
        } else {
          self(self, it->second, path);
        }
      }
    } else if (node.IsSequence()) {
      for (size_t i = 0; i < node.size(); ++i) {
        const std::string path = join_index(prefix, i);
        if (state.known.count(path) != 0) self(self, node[i], path);
      }
    }
  };
  walk(walk, state.doc, "");
  return messages;
}

void Config::check_all_keys_used() const {
  const std::vector<std::string> messages = unused_keys();
  if (messages.empty()) return;
  std::string text;
  for (const std::string& message : messages) text += (text.empty() ? "" : "\n") + message;
  throw Error(text);
}

// ---------------------------------------------------------------------------------------------
// ConfigView.

std::string ConfigView::key_path(const std::string& key) const { return join_key(path_, key); }

std::string ConfigView::origin(const std::string& key) const { return origin_of(*state_, key_path(key)); }

bool ConfigView::has(const std::string& key) const { return is_present(find_node(*state_, key_path(key))); }

ConfigValueKind ConfigView::kind_of(const std::string& key) const {
  const auto node = find_node(*state_, key_path(key));
  if (!is_present(node)) return ConfigValueKind::absent;
  if (node->IsMap()) return ConfigValueKind::map;
  if (node->IsSequence()) return ConfigValueKind::list;
  return ConfigValueKind::scalar;
}

std::string ConfigView::describe(const std::string& key) const {
  const auto node = find_node(*state_, key_path(key));
  return node ? describe_node(*node) : "nothing";
}

Error ConfigView::error(const std::string& key, const std::string& message) const {
  return Error(origin(key) + ": " + key_path(key) + ": " + message);
}

void ConfigView::check_keys(const std::vector<std::string>& allowed, const std::string& context) const {
  const auto node = find_node(*state_, path_);
  if (!is_present(node) || !node->IsMap()) return;
  for (auto it = node->begin(); it != node->end(); ++it) {
    const std::string key = it->first.Scalar();
    if (std::find(allowed.begin(), allowed.end(), key) != allowed.end()) continue;
    std::string listed;
    for (const std::string& name : allowed) listed += (listed.empty() ? "" : ", ") + name;
    std::string message = "unknown key" + (context.empty() ? std::string() : " " + context) + " (expected " +
                          (allowed.size() == 1 ? "" : "one of ") + listed;
    if (const auto guess = closest(key, allowed)) message += "; did you mean '" + *guess + "'?";
    throw error(key, message + ")");
  }
}

template <class T>
T ConfigView::get(const std::string& key) const {
  const std::string path = key_path(key);
  mark_known(*state_, path);
  const auto node = find_node(*state_, path);
  if (!is_present(node)) throw_missing(*state_, path, Reader<T>::what);
  return Reader<T>::read(*state_, path, *node);
}

template <class T>
T ConfigView::get(const std::string& key, const T& fallback) const {
  const std::string path = key_path(key);
  mark_known(*state_, path);
  const auto node = find_node(*state_, path);
  if (!is_present(node)) return fallback;
  return Reader<T>::read(*state_, path, *node);
}

#define CHORUS_CONFIG_INSTANTIATE(T)                                     \
  template T ConfigView::get<T>(const std::string& key) const;          \
  template T ConfigView::get<T>(const std::string& key, const T& fallback) const;
CHORUS_CONFIG_INSTANTIATE(bool)
CHORUS_CONFIG_INSTANTIATE(int64_t)
CHORUS_CONFIG_INSTANTIATE(int)
CHORUS_CONFIG_INSTANTIATE(double)
CHORUS_CONFIG_INSTANTIATE(std::string)
CHORUS_CONFIG_INSTANTIATE(std::vector<int64_t>)
CHORUS_CONFIG_INSTANTIATE(std::vector<double>)
CHORUS_CONFIG_INSTANTIATE(std::vector<std::string>)
#undef CHORUS_CONFIG_INSTANTIATE

int64_t ConfigView::get_int(const std::string& key, std::optional<int64_t> fallback, std::optional<int64_t> min,
                            std::optional<int64_t> max) const {
  const std::string path = key_path(key);
  mark_known(*state_, path);
  const auto node = find_node(*state_, path);
  if (!is_present(node)) {
    if (fallback) return *fallback;
    throw_missing(*state_, path, (min || max) ? range_text("an integer", min, max) : "an integer");
  }
  const std::string expected = (min || max) ? range_text("an integer", min, max) : "an integer";
  const int64_t value = Reader<int64_t>::read(*state_, path, *node, expected);
  if ((min && value < *min) || (max && value > *max)) throw_type_error(*state_, path, expected, *node);
  return value;
}

double ConfigView::get_double(const std::string& key, std::optional<double> fallback, std::optional<double> min,
                              std::optional<double> max) const {
  const std::string path = key_path(key);
  mark_known(*state_, path);
  const auto node = find_node(*state_, path);
  if (!is_present(node)) {
    if (fallback) return *fallback;
    throw_missing(*state_, path, (min || max) ? range_text("a number", min, max) : "a number");
  }
  const std::string expected = (min || max) ? range_text("a number", min, max) : "a number";
  const double value = Reader<double>::read(*state_, path, *node, expected);
  // NaN fails every comparison, so it is rejected whenever a range is asked for.
  if ((min || max) && !((!min || value >= *min) && (!max || value <= *max))) {
    throw_type_error(*state_, path, expected, *node);
  }
  return value;
}

std::string ConfigView::get_choice(const std::string& key, const std::vector<std::string>& allowed,
                                   std::optional<std::string> fallback) const {
  std::string listed;
  for (const std::string& option : allowed) listed += (listed.empty() ? "" : ", ") + option;
  const std::string path = key_path(key);
  mark_known(*state_, path);
  const auto node = find_node(*state_, path);
  if (!is_present(node)) {
    if (fallback) return *fallback;
    throw_missing(*state_, path, "one of " + listed);
  }
  if (!node->IsScalar()) throw_type_error(*state_, path, "one of " + listed, *node);
  const std::string value = node->Scalar();
  if (std::find(allowed.begin(), allowed.end(), value) != allowed.end()) return value;
  std::string message = chorus::detail::concat(origin_of(*state_, path), ": ", path, ": expected one of ", listed, "; got '",
                                       value, "'");
  if (const auto guess = closest(value, allowed)) message += " (did you mean '" + *guess + "'?)";
  throw Error(message);
}

fs::path ConfigView::get_path(const std::string& key, bool must_exist, std::optional<fs::path> fallback) const {
  const std::string path = key_path(key);
  mark_known(*state_, path);
  const auto node = find_node(*state_, path);
  if (!is_present(node)) {
    if (!fallback) throw_missing(*state_, path, "a path");
    CHORUS_CHECK(!must_exist || file_exists(*fallback), origin_of(*state_, parent_path(path)), ": ", path,
                 ": the default file '", fallback->string(), "' does not exist");
    return *fallback;
  }
  if (!node->IsScalar() || node->Scalar().empty()) throw_type_error(*state_, path, "a path", *node);
  const fs::path value(node->Scalar());
  const fs::path resolved = value.is_absolute() ? value.lexically_normal()
                                                : (origin_dir(*state_, path) / value).lexically_normal();
  CHORUS_CHECK(!must_exist || file_exists(resolved), origin_of(*state_, path), ": ", path, ": file '",
               node->Scalar(), "' does not exist (resolved to '", resolved.string(), "')");
  if (!value.is_absolute()) {
    const std::lock_guard<std::mutex> lock(state_->mutex);
    state_->resolved_paths[path] = resolved.string();
  }
  return resolved;
}

ConfigView ConfigView::child(const std::string& key) const {
  const std::string path = key_path(key);
  mark_known(*state_, path);
  const auto node = find_node(*state_, path);
  if (!is_present(node)) throw_missing(*state_, path, "a map");
  if (!node->IsMap()) throw_type_error(*state_, path, "a map", *node);
  return ConfigView(state_, path);
}

ConfigView ConfigView::child_or_empty(const std::string& key) const {
  const std::string path = key_path(key);
  mark_known(*state_, path);
  const auto node = find_node(*state_, path);
  if (is_present(node) && !node->IsMap()) throw_type_error(*state_, path, "a map", *node);
  return ConfigView(state_, path);
}

std::string ConfigView::subtree_yaml(const std::string& key) const {
  const std::string path = key_path(key);
  mark_known(*state_, path);
  const auto node = find_node(*state_, path);
  if (!is_present(node)) throw_missing(*state_, path, "a value");
  const auto mark_all = [&](const auto& self, const YAML::Node& n, const std::string& prefix) -> void {
    if (n.IsMap()) {
      for (auto it = n.begin(); it != n.end(); ++it) {
        const std::string sub = join_key(prefix, it->first.Scalar());
        mark_known(*state_, sub);
        self(self, it->second, sub);
      }
    } else if (n.IsSequence()) {
      for (size_t i = 0; i < n.size(); ++i) {
        const std::string sub = join_index(prefix, i);
        mark_known(*state_, sub);
        self(self, n[i], sub);
      }
    }
  };
  mark_all(mark_all, *node, path);
  YAML::Emitter out;
  const std::lock_guard<std::mutex> lock(state_->mutex);
  emit(out, *node, path, state_->resolved_paths);
  return std::string(out.c_str()) + "\n";
}

std::vector<std::string> ConfigView::keys() const {
  std::vector<std::string> names;
  const auto node = find_node(*state_, path_);
  if (!is_present(node) || !node->IsMap()) return names;
  for (auto it = node->begin(); it != node->end(); ++it) {
    names.push_back(it->first.Scalar());
    mark_known(*state_, key_path(names.back()));
  }
  return names;
}

std::size_t ConfigView::list_size(const std::string& key) const {
  const std::string path = key_path(key);
  mark_known(*state_, path);
  const auto node = find_node(*state_, path);
  if (!is_present(node)) throw_missing(*state_, path, "a list");
  if (!node->IsSequence()) throw_type_error(*state_, path, "a list", *node);
  return node->size();
}

std::vector<ConfigView> ConfigView::list(const std::string& key) const { return list_impl(key, true); }

std::vector<ConfigView> ConfigView::list_or_empty(const std::string& key) const { return list_impl(key, false); }

std::vector<ConfigView> ConfigView::list_impl(const std::string& key, bool required) const {
  const std::string path = key_path(key);
  mark_known(*state_, path);
  const auto node = find_node(*state_, path);
  std::vector<ConfigView> views;
  if (!is_present(node)) {
    if (required) throw_missing(*state_, path, "a list of maps");
    return views;
  }
  if (!node->IsSequence()) throw_type_error(*state_, path, "a list of maps", *node);
  for (size_t i = 0; i < node->size(); ++i) {
    const std::string item = join_index(path, i);
    const YAML::Node element = (*node)[i];
    if (!element.IsMap()) throw_type_error(*state_, item, "a map", element);
    mark_known(*state_, item);
    views.push_back(ConfigView(state_, item));
  }
  return views;
}

}  // namespace chorus
