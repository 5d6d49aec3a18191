// The config dialect: YAML files with includes and command-line overrides, validated by use. Every
// YAML file Chorus reads (experiments, agents, task completion specs) goes through it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"

namespace chorus {

namespace detail {
struct ConfigState;  // the resolved YAML tree, key origins and the keys read so far
}

class ConfigView;

// What a value in the config is (a null value counts as absent).
enum class ConfigValueKind { absent, scalar, list, map };

// A YAML experiment config assembled from a file, its includes and command-line overrides.
// See docs/CONFIGS.md for the rules.
class Config {
 public:
  // Loads `path`. A top-level key `include` (a string or a list of strings; paths relative to the
  // including file) names files merged first, in order; the including file's own keys are merged
  // last (maps merge deeply, scalars and lists are replaced). Includes may include (a cycle is an
  // error naming the chain). Then each override "a.b.c=value" is applied in order: the value is
  // parsed as YAML (3, 0.5, true, [1, 2], {a: 1}, text) and replaces what was at the key;
  // intermediate maps are created when absent. A malformed override (no '=', empty key, bad YAML)
  // is an error quoting it. A missing file or a YAML syntax error is an error naming the file and line.
  // Text that is not UTF-8, a key name over 200 bytes, a file over 16 MiB, maps and lists nested
  // deeper than 64 levels, more than 100000 values in one file (counting every use of an alias), more
  // than 256 included files or an alias inside the map or list it names is an error (docs/CONFIGS.md).
  static Config load(const std::filesystem::path& path, const std::vector<std::string>& overrides = {});
  // The same from text (tests; includes are resolved against `base_dir`). `name` stands for the
  // file in messages.
  static Config parse(std::string_view yaml, const std::string& name,
                      const std::filesystem::path& base_dir = ".",
                      const std::vector<std::string>& overrides = {});

  // The resolved document (no `include` key), as YAML text: this is what a run folder saves.
  std::string to_yaml() const;
  // Writes to_yaml() to `path` atomically.
  void save(const std::filesystem::path& path) const;
  // Where the value at `key_path` ("trainer.lr", "tasks[1].name") was set: "dir/file.yaml:12" or
  // "override 'trainer.lr=3'". For a key that is absent, the origin of its nearest present parent.
  std::string origin(const std::string& key_path) const;
  // The name of the top-level file (or the `name` given to parse).
  const std::string& name() const;

  // The root view; reading goes through views.
  ConfigView root() const;

  // After every consumer has read what it needs: throws chorus::Error listing every key that was
  // never read, each with its origin and, when one exists, the closest key that *was* read at the
  // same level (Levenshtein distance <= max(2, len/3)):
  //   "experiments/quickstart.yaml:14: unknown key 'trainer.learnig_rate' (did you mean 'trainer.learning_rate'?)"
  void check_all_keys_used() const;
  // The keys check_all_keys_used would reject, one message per key (empty when all were read).
  std::vector<std::string> unused_keys() const;

 private:
  explicit Config(std::shared_ptr<detail::ConfigState> state);
  std::shared_ptr<detail::ConfigState> state_;
};

// A view of one map in the config (the root or a nested map). Views are cheap copies that share
// the config; they stay valid after the Config object is gone, and may be read from several threads.
//
// Every accessor marks the key as known (so check_all_keys_used accepts it) even when it is absent
// and a default is used; has() only asks and marks nothing. A key whose value is null (`key:` or
// `key: ~`, or the override `key=null`) counts as absent. Every error names the origin (file:line),
// the full key path and what was expected, e.g.
//   "exp.yaml:7: trainer.steps: expected an integer, got 'ten'"
//   "exp.yaml:3: missing required key 'agents.math.layers' (an integer)"
class ConfigView {
 public:
  // The key path of this map: "" for the root, "trainer", "agents.math", "tasks[1]".
  const std::string& path() const { return path_; }
  // The full key path of `key` in this map ("trainer.lr").
  std::string key_path(const std::string& key) const;
  // Where this map's key `key` was set (see Config::origin).
  std::string origin(const std::string& key) const;
  // Whether `key` is present with a non-null value. Does not mark the key as known.
  bool has(const std::string& key) const;
  // What the value at `key` is. Does not mark the key as known.
  ConfigValueKind kind_of(const std::string& key) const;
  // How messages show the value at `key`: 'text' for a scalar, "a list", "a map", "null", "nothing".
  std::string describe(const std::string& key) const;
  // An error about `key` in the dialect's form, for checks a consumer makes itself:
  //   "<where key was set>: <key path>: <message>", e.g. throw view.error("dim", "must be even, got 7").
  Error error(const std::string& key, const std::string& message) const;
  // Every key of this map must be one of `allowed`; the first that is not is an error at its own line,
  // with the closest allowed key when one is close enough (`context` follows "unknown key"):
  //   "exp.yaml:9: arms.sel.graph.dims: unknown key (expected one of adjacency, dim; did you mean 'dim'?)"
  // Marks nothing: the keys are marked as they are read.
  void check_keys(const std::vector<std::string>& allowed, const std::string& context = "") const;

  // Required (error when absent) and optional forms. T: bool, int64_t, int, double, std::string,
  // std::vector<int64_t>, std::vector<double>, std::vector<std::string>. Integers are accepted where
  // a double is asked; a double is NOT accepted where an integer is asked ("expected an integer, got 0.5").
  template <class T>
  T get(const std::string& key) const;
  template <class T>
  T get(const std::string& key, const T& fallback) const;

  // Numbers with an inclusive range check, used like: view.get_int("steps", 100, /*min=*/1).
  // Without a fallback the key is required. The fallback is not range-checked.
  int64_t get_int(const std::string& key, std::optional<int64_t> fallback = {},
                  std::optional<int64_t> min = {}, std::optional<int64_t> max = {}) const;
  double get_double(const std::string& key, std::optional<double> fallback = {},
                    std::optional<double> min = {}, std::optional<double> max = {}) const;
  // One of `allowed` ("expected one of bridge, hidden; got 'brige' (did you mean 'bridge'?)").
  std::string get_choice(const std::string& key, const std::vector<std::string>& allowed,
                         std::optional<std::string> fallback = {}) const;
  // A path value resolved against the directory of the file that set it (overrides: the current
  // directory); absolute paths are kept. The result is absolute and lexically normal. must_exist:
  // error "exp.yaml:9: data.train: file 'x.jsonl' does not exist (resolved to '/abs/x.jsonl')".
  // A fallback is returned as given (after the existence check when must_exist).
  std::filesystem::path get_path(const std::string& key, bool must_exist,
                                 std::optional<std::filesystem::path> fallback = {}) const;

  // A nested map; the required form errors when absent or not a map. The optional form gives an
  // empty view when absent (and errors when present but not a map).
  ConfigView child(const std::string& key) const;
  ConfigView child_or_empty(const std::string& key) const;
  // The value at `key` (required; any type) as YAML text, with every key under it marked known:
  // for a consumer that validates the whole subtree itself (its messages name each key's place
  // through Config::origin). Quoted scalars stay quoted.
  std::string subtree_yaml(const std::string& key) const;
  // The keys of this map in document order (for maps whose keys are user-chosen names, e.g.
  // agents: {kv: ..., math: ...}); marks them known. Empty for an empty view.
  std::vector<std::string> keys() const;
  // The number of items of the list at `key` (required; errors when absent or not a list); marks it
  // known. Items of any list are read with keys "key[i]" (get<std::vector<int64_t>>("rows[1]"),
  // get<std::string>("names[0]")), as every accessor takes a key path relative to this map.
  std::size_t list_size(const std::string& key) const;
  // A list of maps (e.g. tasks: [{name: ..}, ..]) as views with paths "tasks[0]", ...
  // The required form errors when absent; the optional form gives an empty list.
  std::vector<ConfigView> list(const std::string& key) const;
  std::vector<ConfigView> list_or_empty(const std::string& key) const;

 private:
  friend class Config;
  ConfigView(std::shared_ptr<detail::ConfigState> state, std::string path)
      : state_(std::move(state)), path_(std::move(path)) {}
  std::vector<ConfigView> list_impl(const std::string& key, bool required) const;
  std::shared_ptr<detail::ConfigState> state_;
  std::string path_;
};

}  // namespace chorus
