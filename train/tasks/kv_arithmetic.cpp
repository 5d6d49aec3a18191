// Key-value arithmetic: vocabulary, keys, values and example generation.
#include "train/tasks/kv_arithmetic.h"

#include <algorithm>
#include <set>

#include "common/error.h"

namespace chorus::train {

std::string to_string(KvTask task) {
  switch (task) {
    case KvTask::kv_subs: return "kv_subs";
    case KvTask::num_math: return "num_math";
    case KvTask::kv_math: return "kv_math";
  }
  return "?";
}

KvTask parse_kv_task(const std::string& name, const std::string& where) {
  if (name == "kv_subs") return KvTask::kv_subs;
  if (name == "num_math") return KvTask::num_math;
  if (name == "kv_math") return KvTask::kv_math;
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

KvArithmeticOptions checked(const KvArithmeticOptions& o) {
  CHORUS_CHECK(o.keys >= 2, "kv arithmetic: keys = ", o.keys, "; expected at least 2");
  CHORUS_CHECK(o.max_value >= 1, "kv arithmetic: max_value = ", o.max_value, "; expected at least 1");
  CHORUS_CHECK(o.train_keys >= 1 && o.train_keys < o.keys, "kv arithmetic: train_keys = ", o.train_keys,
               "; expected 1 .. keys - 1 = ", o.keys - 1, " so that some keys are held out");
  return o;
}

}  // namespace

KvArithmetic::KvArithmetic(const KvArithmeticOptions& options)
    : options_(checked(options)),
      tokenizer_([&] {
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

const std::vector<int64_t>& KvArithmetic::key_ids(KeySet set) const {
  return set == KeySet::train ? train_ : set == KeySet::heldout ? heldout_ : all_;
}

KvExample KvArithmetic::sample(KvTask task, const KvSampling& sampling, std::mt19937_64& rng) const {
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  std::uniform_int_distribution<int64_t> number(0, options_.max_value);
  const auto& pool = key_ids(sampling.keys);
  std::uniform_int_distribution<size_t> pick(0, pool.size() - 1);
  // An operand: its surface token and its value.
  auto operand = [&](bool may_be_key) -> std::pair<std::string, int64_t> {
    const bool key = task != KvTask::num_math && may_be_key;
    if (key) {
      const auto k = pool[pick(rng)];
      return {keys_[static_cast<size_t>(k)], values_[static_cast<size_t>(k)]};
    }
    const auto v = number(rng);
    return {std::to_string(v), v};
  };
  KvExample ex;
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
  if (task == KvTask::kv_subs) {
    ex.target = std::to_string(a) + " " + op + " " + std::to_string(b);
  } else {
    ex.target = std::to_string(apply(a, op, b));
  }
  return ex;
}

}  // namespace chorus::train
