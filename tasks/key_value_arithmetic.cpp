// Key-value arithmetic: vocabulary, keys, values and example generation.
#include "tasks/key_value_arithmetic.h"

#include <algorithm>
#include <set>

#include "common/error.h"

namespace chorus::tasks {

std::string to_string(ArithmeticTask task) {
  switch (task) {
    case ArithmeticTask::kv_subs:
      return "kv_subs";
    case ArithmeticTask::num_math:
      return "num_math";
    case ArithmeticTask::kv_math:
      return "kv_math";
  }
  return "?";
}

ArithmeticTask parse_arithmetic_task(const std::string& name, const std::string& where) {
  if (name == "kv_subs") return ArithmeticTask::kv_subs;
  if (name == "num_math") return ArithmeticTask::num_math;
  if (name == "kv_math") return ArithmeticTask::kv_math;
  throw Error(where + ": unknown task '" + name + "' (expected kv_subs, num_math or kv_math)");
}

namespace {

// Made-up pronounceable keys ("bavo", "tesku"): consonant-vowel syllables, 2 or 3 of them.
std::vector<std::string> make_keys(int64_t count, std::mt19937_64& rng) {
  static const char consonants[] = "bdfgklmnprstvz";
  static const char vowels[] = "aeiou";
  std::set<std::string> seen;
  std::vector<std::string> keys;
  while (static_cast<int64_t>(keys.size()) < count) {
    const int syllables = 2 + static_cast<int>(rng() % 2);
    std::string key;
    for (int s = 0; s < syllables; ++s) {
      key += consonants[rng() % (sizeof(consonants) - 1)];
      key += vowels[rng() % (sizeof(vowels) - 1)];
    }
    if (seen.insert(key).second) keys.push_back(key);
  }
  return keys;
}

std::vector<std::string> vocabulary(const std::vector<std::string>& keys, int64_t max_value) {
  std::vector<std::string> words = {"+", "-"};
  for (int64_t v = -max_value; v <= 2 * max_value; ++v) words.push_back(std::to_string(v));
  words.insert(words.end(), keys.begin(), keys.end());
  return words;
}

KeyValueArithmeticOptions checked(const KeyValueArithmeticOptions& o) {
  CHORUS_CHECK(o.keys >= 2, "kv arithmetic: keys = ", o.keys, "; expected at least 2");
  CHORUS_CHECK(o.max_value >= 1, "kv arithmetic: max_value = ", o.max_value,
               "; expected at least 1");
  CHORUS_CHECK(o.train_keys >= 1 && o.train_keys < o.keys,
               "kv arithmetic: train_keys = ", o.train_keys,
               "; expected 1 .. keys - 1 = ", o.keys - 1, " so that some keys are held out");
  return o;
}

}  // namespace

KeyValueArithmetic::KeyValueArithmetic(const KeyValueArithmeticOptions& options)
    : options_(checked(options)), tokenizer_([&] {
        std::mt19937_64 rng(options.seed * 0x9E3779B97F4A7C15ULL + 17);
        keys_ = make_keys(options.keys, rng);
        std::uniform_int_distribution<int64_t> value(0, options.max_value);
        for (int64_t k = 0; k < options.keys; ++k) values_.push_back(value(rng));
        all_.resize(static_cast<size_t>(options.keys));
        for (int64_t k = 0; k < options.keys; ++k) all_[static_cast<size_t>(k)] = k;
        auto order = all_;
        std::shuffle(order.begin(), order.end(), rng);
        train_.assign(order.begin(), order.begin() + options.train_keys);
        heldout_.assign(order.begin() + options.train_keys, order.end());
        std::sort(train_.begin(), train_.end());
        std::sort(heldout_.begin(), heldout_.end());
        return model::WordLevelTokenizer(vocabulary(keys_, options.max_value));
      }()) {}

const std::vector<int64_t>& KeyValueArithmetic::key_ids(KeySet set) const {
  return set == KeySet::train ? train_ : set == KeySet::heldout ? heldout_ : all_;
}

ArithmeticExample KeyValueArithmetic::sample(ArithmeticTask task,
                                             const ArithmeticSampling& sampling,
                                             std::mt19937_64& rng) const {
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  std::uniform_int_distribution<int64_t> number(0, options_.max_value);
  const auto& pool = key_ids(sampling.keys);
  std::uniform_int_distribution<size_t> pick(0, pool.size() - 1);
  // An operand: its surface token and its value.
  auto operand = [&](bool may_be_key) -> std::pair<std::string, int64_t> {
    const bool key = task != ArithmeticTask::num_math && may_be_key;
    if (key) {
      const auto k = pool[pick(rng)];
      return {keys_[static_cast<size_t>(k)], values_[static_cast<size_t>(k)]};
    }
    const auto v = number(rng);
    return {std::to_string(v), v};
  };
  ArithmeticExample ex;
  const bool single = unit(rng) < sampling.single_fraction;
  if (single) {
    auto [word, value] = operand(true);
    ex.input = word;
    ex.target = std::to_string(value);
    ex.operand_positions = {0};
    ex.operand_values = {value};
    return ex;
  }
  const bool mixed = unit(rng) < sampling.mixed_fraction;
  const bool a_number = mixed && (rng() & 1) != 0;
  const bool b_number = mixed && !a_number;
  auto [a_word, a] = operand(!a_number);
  const char op = (rng() & 1) != 0 ? '+' : '-';
  auto [b_word, b] = operand(!b_number);
  ex.input = a_word + " " + op + " " + b_word;
  ex.operand_positions = {0, 2};
  ex.operand_values = {a, b};
  ex.op = op;
  if (task == ArithmeticTask::kv_subs) {
    ex.target = std::to_string(a) + " " + op + " " + std::to_string(b);
  } else {
    ex.target = std::to_string(apply(a, op, b));
  }
  return ex;
}

KeyValueArithmeticOptions read_key_value_world(const ConfigView& v, uint64_t seed) {
  KeyValueArithmeticOptions o;
  o.keys = v.get_int("keys", 300, 2, 100000);
  o.max_value = v.get_int("max_value", 99, 1, 100000);
  o.train_keys = v.get_int("train_keys", 210, 1, o.keys - 1);
  o.seed = seed;
  return o;
}

std::vector<ArithmeticExample> arithmetic_examples(const KeyValueArithmetic& world,
                                                   ArithmeticTask task,
                                                   const ArithmeticSampling& sampling,
                                                   int64_t count, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<ArithmeticExample> out;
  out.reserve(static_cast<size_t>(count));
  for (int64_t i = 0; i < count; ++i) out.push_back(world.sample(task, sampling, rng));
  return out;
}

namespace {

// FNV-1a of the names: a default stream number that does not move when splits are reordered.
uint64_t stable_stream(const std::string& task, const std::string& split) {
  uint64_t h = 1469598103934665603ULL;
  for (unsigned char c : task + "/" + split) h = (h ^ c) * 1099511628211ULL;
  return h % 1000003ULL + 1000;
}

Task generate(const ConfigView& view, const std::string& name, uint64_t seed) {
  const auto g = view.child("generator");
  const KeyValueArithmetic world(read_key_value_world(g.child_or_empty("world"), seed));
  const auto task =
      parse_arithmetic_task(g.get_choice("task", {"kv_subs", "num_math", "kv_math"}), g.path());
  ArithmeticSampling sampling;
  const auto keys = g.get_choice("keys", {"all", "train", "heldout"}, std::string("all"));
  sampling.keys = keys == "train"     ? KeySet::train
                  : keys == "heldout" ? KeySet::heldout
                                      : KeySet::all;
  sampling.single_fraction = g.get_double("single_fraction", 0.0, 0.0, 1.0);
  sampling.mixed_fraction = g.get_double("mixed_fraction", 0.0, 0.0, 1.0);
  Task out;
  out.name = name;
  out.description = to_string(task) + " over " + keys + " keys (" +
                    std::to_string(world.options().keys) + " keys, values 0.." +
                    std::to_string(world.options().max_value) + ")";
  out.fields = {"input"};
  out.has_references = true;
  const auto splits = g.child("splits");
  for (const auto& split : splits.keys()) {
    int64_t count = 0;
    uint64_t stream = stable_stream(name, split);
    if (splits.kind_of(split) == ConfigValueKind::map) {
      const auto s = splits.child(split);
      count = s.get_int("examples", std::nullopt, 1);
      stream = static_cast<uint64_t>(s.get_int("stream", static_cast<int64_t>(stream), 0));
    } else {
      count = splits.get_int(split, std::nullopt, 1);
    }
    const auto examples = arithmetic_examples(world, task, sampling, count, seed * 1000 + stream);
    auto& rows = out.splits[split];
    for (size_t i = 0; i < examples.size(); ++i) {
      Example ex;
      ex.id = name + "." + split + ":" + std::to_string(i + 1);
      ex.fields["input"] = examples[i].input;
      ex.references = {examples[i].target};
      rows.push_back(std::move(ex));
    }
  }
  CHORUS_CHECK(!out.splits.empty(), g.origin("splits"), ": ", g.key_path("splits"),
               ": expected at least one split (e.g. test: 1000)");
  return out;
}

}  // namespace

void register_key_value_arithmetic_generator() {
  register_task_generator("key_value_arithmetic", generate);
}

}  // namespace chorus::tasks
