// Tasks: named splits of examples that teams are trained and evaluated on, read from data files
// (JSON lines, TSV, line-aligned text files; plain or gzip) or made by a registered generator.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "common/config.h"

namespace chorus::tasks {

// One example: its named input fields and its references (the acceptable outputs).
struct Example {
  std::string id;                             // where it came from: "test.jsonl:12", "generated:7"
  std::map<std::string, std::string> fields;  // "input" and any others ("context", "en", "fr")
  std::vector<std::string> references;        // empty when the task has none

  // The field `name`, or a chorus::Error naming the example and the fields it has.
  const std::string& field(const std::string& name) const;
};

struct Task {
  std::string name;
  std::string description;
  std::vector<std::string> fields;  // every example has these fields ("input" first)
  bool has_references = false;      // every example has at least one reference
  std::map<std::string, std::vector<Example>> splits;  // "train", "valid", "test", ...

  bool has_split(const std::string& split) const { return splits.count(split) > 0; }
  // The examples of `split`, or a chorus::Error listing the splits the task has.
  const std::vector<Example>& split(const std::string& split) const;
};

// Makes a task from its config block (everything but `generator`, which it reads itself).
using TaskGenerator =
    std::function<Task(const ConfigView& view, const std::string& name, uint64_t seed)>;
// Registers a generator under `kind`; registering a kind twice is a chorus::Error.
void register_task_generator(const std::string& kind, TaskGenerator generator);
// The registered kinds, sorted.
std::vector<std::string> task_generator_kinds();

// Reads tasks.<name>. A file task:
//   format: jsonl | tsv | text      (default: from the first file's extension)
//   splits: {train: FILE, valid: FILE, test: FILE}   (any split names; jsonl and tsv)
//   fields: {input: question, context: ctx}          (example field -> JSON key or TSV column;
//                                                     default {input: input})
//   references: answers | [ref1, ref2]               (a field holding a string or a list of
//                                                     strings, or several fields; absent: none)
//   header: true                                     (tsv: the first line names the columns;
//                                                     without one, columns are 0-based indices)
//   limit: 200 | {train: 1000, test: 200}           (the first N examples of a split)
// For format text each split is a map of line-aligned files: {input: x.en, fr: x.fr,
// references: [x.de, x.de2]}. A generated task: generator: {kind: KIND, ...} (see
// task_generator_kinds()). Errors name the file and line (a missing field, a value that is not
// text, bad JSON, ill-formed UTF-8) or the key (an empty split, an unknown format).
Task read_task(const ConfigView& view, const std::string& name, uint64_t seed);

// The first `limit` examples (all when limit <= 0 or larger).
std::vector<Example> first_examples(const std::vector<Example>& examples, int64_t limit);

}  // namespace chorus::tasks
