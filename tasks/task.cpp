// File tasks: JSON lines, TSV and line-aligned text files read into examples; the generator
// registry.
#include "tasks/task.h"

#include <algorithm>
#include <mutex>

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/text/utf8.h"
#include "tasks/key_value_arithmetic.h"
#include "tasks/text_lines.h"

namespace chorus::tasks {
namespace {

std::string at_line(const std::filesystem::path& file, size_t index) {
  return file.string() + ":" + std::to_string(index + 1);
}

std::string joined(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
  return out;
}

std::map<std::string, TaskGenerator>& generators() {
  static std::map<std::string, TaskGenerator> registry;
  return registry;
}
std::mutex& registry_mutex() {
  static std::mutex m;
  return m;
}

// The built-in generators, registered on first use.
void ensure_builtin_generators() {
  static std::once_flag once;
  std::call_once(once, [] { register_key_value_arithmetic_generator(); });
}

// The lines of a data file, checked for UTF-8.
std::vector<std::string> data_lines(const std::filesystem::path& file) {
  auto lines = read_text_lines(file);
  for (size_t i = 0; i < lines.size(); ++i) {
    if (const auto bad = find_invalid_utf8(lines[i])) {
      throw Error(at_line(file, i) + ": invalid UTF-8 at byte " + std::to_string(*bad + 1) +
                  " of the line (expected UTF-8 text)");
    }
  }
  return lines;
}

bool blank(const std::string& line) {
  return std::all_of(line.begin(), line.end(),
                     [](char c) { return c == ' ' || c == '\t' || c == '\r'; });
}

// A JSON value as text: strings as they are, numbers and booleans as JSON writes them.
std::string scalar_text(const nlohmann::json& value, const std::string& where,
                        const std::string& key) {
  if (value.is_string()) return value.get<std::string>();
  if (value.is_number() || value.is_boolean()) return value.dump();
  throw Error(where + ": field '" + key + "' is " + std::string(value.type_name()) +
              " (expected text, a number or a boolean)");
}

std::vector<std::string> split_tabs(const std::string& line) {
  std::vector<std::string> columns;
  size_t start = 0;
  for (;;) {
    const auto tab = line.find('\t', start);
    columns.push_back(
        line.substr(start, tab == std::string::npos ? std::string::npos : tab - start));
    if (tab == std::string::npos) return columns;
    start = tab + 1;
  }
}

enum class Format { jsonl, tsv, text };

Format format_of(const std::string& name) {
  if (name == "jsonl") return Format::jsonl;
  if (name == "tsv") return Format::tsv;
  return Format::text;
}

std::string guess_format(const std::filesystem::path& file) {
  auto name = file.filename().string();
  if (name.size() > 3 && name.substr(name.size() - 3) == ".gz") name.resize(name.size() - 3);
  const auto ext = std::filesystem::path(name).extension().string();
  if (ext == ".jsonl" || ext == ".json" || ext == ".ndjson") return "jsonl";
  if (ext == ".tsv") return "tsv";
  return "text";
}

// What a file task reads from each row: example field -> JSON key or TSV column, and the reference
// sources (one field holding a string or a list, or several fields of one string each).
struct FieldMap {
  std::vector<std::pair<std::string, std::string>> fields;  // example field, file field
  std::vector<std::string> references;
};

std::vector<Example> read_jsonl(const std::filesystem::path& file, const FieldMap& map,
                                const std::string& key) {
  const auto lines = data_lines(file);
  std::vector<Example> out;
  for (size_t i = 0; i < lines.size(); ++i) {
    if (blank(lines[i])) continue;
    const auto where = at_line(file, i);
    nlohmann::json row;
    try {
      row = nlohmann::json::parse(lines[i]);
    } catch (const nlohmann::json::exception& e) {
      throw Error(where + ": not a JSON object (" + e.what() + ")");
    }
    CHORUS_CHECK(row.is_object(), where, ": expected a JSON object, got ", row.type_name());
    Example ex;
    ex.id = file.filename().string() + ":" + std::to_string(i + 1);
    for (const auto& [field, source] : map.fields) {
      const auto it = row.find(source);
      CHORUS_CHECK(it != row.end(), where, ": missing field '", source, "' (", key, ".fields.",
                   field, ")");
      ex.fields[field] = scalar_text(*it, where, source);
    }
    for (const auto& source : map.references) {
      const auto it = row.find(source);
      CHORUS_CHECK(it != row.end(), where, ": missing field '", source, "' (", key, ".references)");
      if (it->is_array()) {
        CHORUS_CHECK(!it->empty(), where, ": field '", source,
                     "' is an empty list (expected at least one reference)");
        for (const auto& r : *it) ex.references.push_back(scalar_text(r, where, source));
      } else {
        ex.references.push_back(scalar_text(*it, where, source));
      }
    }
    out.push_back(std::move(ex));
  }
  return out;
}

std::vector<Example> read_tsv(const std::filesystem::path& file, const FieldMap& map, bool header,
                              const std::string& key) {
  const auto lines = data_lines(file);
  size_t first = 0;
  std::map<std::string, size_t> column_of;
  if (header) {
    CHORUS_CHECK(!lines.empty(), file.string(), ": empty file (", key,
                 ".header is true: expected a header line)");
    const auto names = split_tabs(lines[0]);
    for (size_t c = 0; c < names.size(); ++c) column_of[names[c]] = c;
    first = 1;
  }
  auto column = [&](const std::string& name, const std::string& what) -> size_t {
    if (header) {
      const auto it = column_of.find(name);
      if (it == column_of.end()) {
        std::vector<std::string> names;
        for (const auto& [n, c] : column_of) names.push_back(n);
        throw Error(at_line(file, 0) + ": no column '" + name + "' in the header (" + what +
                    "; columns: " + joined(names) + ")");
      }
      return it->second;
    }
    try {
      size_t used = 0;
      const auto index = std::stoul(name, &used);
      if (used == name.size()) return index;
    } catch (const std::exception&) {
    }
    throw Error(key + ": column '" + name + "' (" + what +
                ") must be a 0-based index when the TSV file has no header (set header: true to "
                "use names)");
  };
  std::vector<std::pair<std::string, size_t>> fields;
  for (const auto& [field, source] : map.fields)
    fields.emplace_back(field, column(source, key + ".fields." + field));
  std::vector<size_t> references;
  for (const auto& source : map.references)
    references.push_back(column(source, key + ".references"));
  std::vector<Example> out;
  for (size_t i = first; i < lines.size(); ++i) {
    if (lines[i].empty()) continue;
    const auto columns = split_tabs(lines[i]);
    auto get = [&](size_t c) -> const std::string& {
      CHORUS_CHECK(c < columns.size(), at_line(file, i), ": ", columns.size(),
                   " columns (expected at least ", c + 1, ")");
      return columns[c];
    };
    Example ex;
    ex.id = file.filename().string() + ":" + std::to_string(i + 1);
    for (const auto& [field, c] : fields) ex.fields[field] = get(c);
    for (const auto c : references) ex.references.push_back(get(c));
    out.push_back(std::move(ex));
  }
  return out;
}

// format text: a split is a map of line-aligned files, one per field, plus `references`.
std::vector<Example> read_text_split(const ConfigView& split) {
  std::vector<std::pair<std::string, std::vector<std::string>>> columns;
  std::vector<std::string> files;
  for (const auto& field : split.keys()) {
    if (field == "references") continue;
    const auto path = split.get_path(field, true);
    columns.emplace_back(field, data_lines(path));
    files.push_back(path.string());
  }
  std::vector<std::vector<std::string>> references;
  if (split.kind_of("references") == ConfigValueKind::list) {
    const auto count = split.get<std::vector<std::string>>("references").size();
    for (size_t r = 0; r < count; ++r) {  // each resolved against the file that set it
      const auto path = split.get_path("references[" + std::to_string(r) + "]", true);
      references.push_back(data_lines(path));
      files.push_back(path.string());
    }
  } else if (split.has("references")) {
    const auto path = split.get_path("references", true);
    references.push_back(data_lines(path));
    files.push_back(path.string());
  }
  CHORUS_CHECK(!columns.empty(), split.origin(""), ": ", split.path(),
               ": expected at least one field file (e.g. input: test.en)");
  const size_t n = columns.front().second.size();
  auto check_count = [&](size_t count, const std::string& file) {
    CHORUS_CHECK(count == n, split.path(), ": '", file, "' has ", count, " lines but '",
                 files.front(), "' has ", n,
                 " (line-aligned files must have the same number of lines)");
  };
  for (size_t c = 0; c < columns.size(); ++c) check_count(columns[c].second.size(), files[c]);
  for (size_t r = 0; r < references.size(); ++r)
    check_count(references[r].size(), files[columns.size() + r]);
  std::vector<Example> out;
  for (size_t i = 0; i < n; ++i) {
    Example ex;
    ex.id = std::filesystem::path(files.front()).filename().string() + ":" + std::to_string(i + 1);
    for (const auto& [field, lines] : columns) ex.fields[field] = lines[i];
    for (const auto& lines : references) ex.references.push_back(lines[i]);
    out.push_back(std::move(ex));
  }
  return out;
}

Task read_file_task(const ConfigView& view, const std::string& name) {
  Task task;
  task.name = name;
  task.description = view.get<std::string>("description", "");
  const auto splits = view.child("splits");
  const auto split_names = splits.keys();
  CHORUS_CHECK(!split_names.empty(), view.origin("splits"), ": ", splits.path(),
               ": expected at least one split (e.g. test: data/test.jsonl)");
  // A split is a file (jsonl, tsv) or a map of line-aligned files (text).
  std::string guessed = "text";
  const bool first_is_map = splits.kind_of(split_names.front()) == ConfigValueKind::map;
  if (!first_is_map) guessed = guess_format(splits.get_path(split_names.front(), true));
  const auto format = format_of(view.get_choice("format", {"jsonl", "tsv", "text"}, guessed));

  FieldMap map;
  if (format != Format::text) {
    const auto fields = view.child_or_empty("fields");
    for (const auto& field : fields.keys())
      map.fields.emplace_back(field, fields.get<std::string>(field));
    if (map.fields.empty())
      map.fields.emplace_back(
          "input", format == Format::tsv && !view.get<bool>("header", false) ? "0" : "input");
    if (view.kind_of("references") == ConfigValueKind::list) {
      map.references = view.get<std::vector<std::string>>("references");
    } else if (view.has("references")) {
      map.references = {view.get<std::string>("references")};
    }
  }
  const bool header = format == Format::tsv ? view.get<bool>("header", false) : false;
  const auto limits = view.child_or_empty("limit");
  const int64_t every =
      view.has("limit") && limits.keys().empty() ? view.get_int("limit", 0, 0) : 0;

  for (const auto& split : split_names) {
    const std::string key = view.key_path("splits") + "." + split;
    std::vector<Example> examples;
    if (format == Format::text) {
      examples = read_text_split(splits.child(split));
    } else {
      const auto file = splits.get_path(split, true);
      examples = format == Format::jsonl ? read_jsonl(file, map, view.path())
                                         : read_tsv(file, map, header, view.path());
    }
    CHORUS_CHECK(!examples.empty(), splits.origin(split), ": ", key,
                 ": no examples (an empty split)");
    const int64_t limit = limits.keys().empty() ? every : limits.get_int(split, 0, 0);
    task.splits[split] = first_examples(examples, limit);
  }
  (void)limits.keys();
  // Fields and references must agree across splits: a system reads the same fields everywhere.
  const auto& first = task.splits.begin()->second.front();
  for (const auto& [field, value] : first.fields) task.fields.push_back(field);
  std::stable_sort(
      task.fields.begin(), task.fields.end(),
      [](const std::string& a, const std::string& b) { return a == "input" && b != "input"; });
  task.has_references = true;
  for (const auto& [split, examples] : task.splits) {
    for (const auto& ex : examples) {
      CHORUS_CHECK(ex.fields.size() == first.fields.size(), view.path(), ": example ", ex.id,
                   " of split '", split, "' has other fields than ", first.id,
                   " (expected the same fields in every split)");
      task.has_references = task.has_references && !ex.references.empty();
    }
  }
  CHORUS_CHECK(std::find(task.fields.begin(), task.fields.end(), "input") != task.fields.end(),
               view.path(), ": the examples have no field 'input' (fields: ", joined(task.fields),
               "); name one of them input in ", view.key_path("fields"),
               ", e.g. fields: {input: question}");
  return task;
}

}  // namespace

const std::string& Example::field(const std::string& name) const {
  const auto it = fields.find(name);
  if (it != fields.end()) return it->second;
  std::vector<std::string> names;
  for (const auto& [n, v] : fields) names.push_back(n);
  throw Error("example " + id + " has no field '" + name + "' (fields: " + joined(names) + ")");
}

const std::vector<Example>& Task::split(const std::string& split) const {
  const auto it = splits.find(split);
  if (it != splits.end()) return it->second;
  std::vector<std::string> names;
  for (const auto& [n, v] : splits) names.push_back(n);
  throw Error("task '" + name + "' has no split '" + split + "' (splits: " + joined(names) + ")");
}

void register_task_generator(const std::string& kind, TaskGenerator generator) {
  std::lock_guard<std::mutex> lock(registry_mutex());
  CHORUS_CHECK(generators().emplace(kind, std::move(generator)).second, "task generator '", kind,
               "' registered twice");
}

std::vector<std::string> task_generator_kinds() {
  ensure_builtin_generators();
  std::lock_guard<std::mutex> lock(registry_mutex());
  std::vector<std::string> kinds;
  for (const auto& [kind, g] : generators()) kinds.push_back(kind);
  return kinds;
}

Task read_task(const ConfigView& view, const std::string& name, uint64_t seed) {
  if (!view.has("generator")) return read_file_task(view, name);
  const auto generator = view.child("generator");
  const auto kinds = task_generator_kinds();
  const auto kind = generator.get_choice("kind", kinds);
  TaskGenerator make;
  {
    std::lock_guard<std::mutex> lock(registry_mutex());
    make = generators().at(kind);
  }
  auto task = make(view, name, seed);
  task.name = name;
  task.description = view.get<std::string>("description", task.description);
  return task;
}

std::vector<Example> first_examples(const std::vector<Example>& examples, int64_t limit) {
  if (limit <= 0 || static_cast<size_t>(limit) >= examples.size()) return examples;
  return {examples.begin(), examples.begin() + limit};
}

}  // namespace chorus::tasks
