#include "eval/metrics/porter_stemmer.h"

#include <functional>
#include <utility>
#include <vector>

namespace chorus::eval {
namespace {

using Condition = std::function<bool(const std::string&)>;

struct Rule {
  std::string suffix;  // "*d" stands for "ends with a double consonant"
  std::string replacement;
  Condition condition;  // empty: unconditional
};

bool is_vowel(char c) { return c == 'a' || c == 'e' || c == 'i' || c == 'o' || c == 'u'; }

// A 'y' is a consonant at the start or after a vowel (NLTK's _consonant_flags).
std::vector<bool> consonant_flags(const std::string& w) {
  std::vector<bool> flags(w.size());
  for (std::size_t i = 0; i < w.size(); ++i) {
    if (is_vowel(w[i])) {
      flags[i] = false;
    } else if (w[i] == 'y') {
      flags[i] = i == 0 ? true : !flags[i - 1];
    } else {
      flags[i] = true;
    }
  }
  return flags;
}

bool is_consonant(const std::string& w, std::size_t i) { return consonant_flags(w)[i]; }

// m in [C](VC){m}[V]: the number of vowel-to-consonant transitions.
int measure(const std::string& stem) {
  const auto flags = consonant_flags(stem);
  int m = 0;
  for (std::size_t i = 1; i < flags.size(); ++i) m += (!flags[i - 1] && flags[i]) ? 1 : 0;
  return m;
}

bool has_positive_measure(const std::string& stem) { return measure(stem) > 0; }

bool contains_vowel(const std::string& stem) {
  for (bool consonant : consonant_flags(stem)) {
    if (!consonant) return true;
  }
  return false;
}

bool ends_with(const std::string& w, std::string_view suffix) {
  return w.size() >= suffix.size() && w.compare(w.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string drop(const std::string& w, std::size_t n) { return w.substr(0, w.size() - n); }

bool ends_double_consonant(const std::string& w) {
  return w.size() >= 2 && w[w.size() - 1] == w[w.size() - 2] && is_consonant(w, w.size() - 1);
}

// *o: consonant-vowel-consonant with the last not w, x or y; NLTK also
// accepts a two-letter vowel-consonant word.
bool ends_cvc(const std::string& w) {
  const std::size_t n = w.size();
  if (n >= 3 && is_consonant(w, n - 3) && !is_consonant(w, n - 2) && is_consonant(w, n - 1) && w[n - 1] != 'w' &&
      w[n - 1] != 'x' && w[n - 1] != 'y') {
    return true;
  }
  return n == 2 && !is_consonant(w, 0) && is_consonant(w, 1);
}

// The first rule whose suffix matches decides: applied when its condition
// holds, otherwise the word is returned unchanged.
std::string apply_rules(const std::string& word, const std::vector<Rule>& rules) {
  for (const Rule& rule : rules) {
    if (rule.suffix == "*d" && ends_double_consonant(word)) {
      const std::string stem = drop(word, 2);
      if (!rule.condition || rule.condition(stem)) return stem + rule.replacement;
      return word;
    }
    if (ends_with(word, rule.suffix)) {
      const std::string stem = drop(word, rule.suffix.size());
      if (!rule.condition || rule.condition(stem)) return stem + rule.replacement;
      return word;
    }
  }
  return word;
}

std::string step1a(const std::string& word) {
  if (ends_with(word, "ies") && word.size() == 4) return drop(word, 3) + "ie";
  return apply_rules(word, {{"sses", "ss", {}}, {"ies", "i", {}}, {"ss", "ss", {}}, {"s", "", {}}});
}

std::string step1b(const std::string& word) {
  if (ends_with(word, "ied")) return drop(word, 3) + (word.size() == 4 ? "ie" : "i");
  if (ends_with(word, "eed")) {
    const std::string stem = drop(word, 3);
    return measure(stem) > 0 ? stem + "ee" : word;
  }
  std::string intermediate;
  bool succeeded = false;
  for (const char* suffix : {"ed", "ing"}) {
    if (ends_with(word, suffix)) {
      intermediate = drop(word, std::char_traits<char>::length(suffix));
      if (contains_vowel(intermediate)) {
        succeeded = true;
        break;
      }
    }
  }
  if (!succeeded) return word;
  const char last = intermediate.back();
  return apply_rules(intermediate,
                     {{"at", "ate", {}},
                      {"bl", "ble", {}},
                      {"iz", "ize", {}},
                      {"*d", std::string(1, last), [last](const std::string&) { return last != 'l' && last != 's' && last != 'z'; }},
                      {"", "e", [](const std::string& stem) { return measure(stem) == 1 && ends_cvc(stem); }}});
}

std::string step1c(const std::string& word) {
  return apply_rules(word, {{"y", "i", [](const std::string& stem) {
                               return stem.size() > 1 && is_consonant(stem, stem.size() - 1);
                             }}});
}

std::string step2(const std::string& word) {
  if (ends_with(word, "alli") && has_positive_measure(drop(word, 4))) return step2(drop(word, 4) + "al");
  const Condition m0 = has_positive_measure;
  return apply_rules(word, {{"ational", "ate", m0}, {"tional", "tion", m0}, {"enci", "ence", m0},
                            {"anci", "ance", m0},   {"izer", "ize", m0},    {"bli", "ble", m0},
                            {"alli", "al", m0},     {"entli", "ent", m0},   {"eli", "e", m0},
                            {"ousli", "ous", m0},   {"ization", "ize", m0}, {"ation", "ate", m0},
                            {"ator", "ate", m0},    {"alism", "al", m0},    {"iveness", "ive", m0},
                            {"fulness", "ful", m0}, {"ousness", "ous", m0}, {"aliti", "al", m0},
                            {"iviti", "ive", m0},   {"biliti", "ble", m0},  {"fulli", "ful", m0},
                            {"logi", "log", [&word](const std::string&) { return has_positive_measure(drop(word, 3)); }}});
}

std::string step3(const std::string& word) {
  const Condition m0 = has_positive_measure;
  return apply_rules(word, {{"icate", "ic", m0}, {"ative", "", m0}, {"alize", "al", m0}, {"iciti", "ic", m0},
                            {"ical", "ic", m0}, {"ful", "", m0}, {"ness", "", m0}});
}

std::string step4(const std::string& word) {
  const Condition m1 = [](const std::string& stem) { return measure(stem) > 1; };
  return apply_rules(word, {{"al", "", m1},   {"ance", "", m1}, {"ence", "", m1}, {"er", "", m1},
                            {"ic", "", m1},   {"able", "", m1}, {"ible", "", m1}, {"ant", "", m1},
                            {"ement", "", m1}, {"ment", "", m1}, {"ent", "", m1},
                            {"ion", "", [](const std::string& stem) {
                               return measure(stem) > 1 && (stem.back() == 's' || stem.back() == 't');
                             }},
                            {"ou", "", m1},   {"ism", "", m1},  {"ate", "", m1},  {"iti", "", m1},
                            {"ous", "", m1},  {"ive", "", m1},  {"ize", "", m1}});
}

std::string step5a(const std::string& word) {
  if (ends_with(word, "e")) {
    const std::string stem = drop(word, 1);
    const int m = measure(stem);
    if (m > 1) return stem;
    if (m == 1 && !ends_cvc(stem)) return stem;
  }
  return word;
}

std::string step5b(const std::string& word) {
  return apply_rules(word, {{"ll", "l", [&word](const std::string&) { return measure(drop(word, 1)) > 1; }}});
}

const std::pair<const char*, const char*> kIrregularForms[] = {
    {"sky", "sky"},       {"skies", "sky"},       {"dying", "die"},      {"lying", "lie"},
    {"tying", "tie"},     {"news", "news"},       {"innings", "inning"}, {"inning", "inning"},
    {"outings", "outing"}, {"outing", "outing"},  {"cannings", "canning"}, {"canning", "canning"},
    {"howe", "howe"},     {"proceed", "proceed"}, {"exceed", "exceed"},  {"succeed", "succeed"},
};

}  // namespace

std::string porter_stem(std::string_view input) {
  std::string word(input);
  for (char& c : word) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c + 32);
  }
  for (const auto& [form, stem] : kIrregularForms) {
    if (word == form) return stem;
  }
  if (word.size() <= 2) return word;
  word = step1a(word);
  word = step1b(word);
  word = step1c(word);
  word = step2(word);
  word = step3(word);
  word = step4(word);
  word = step5a(word);
  word = step5b(word);
  return word;
}

}  // namespace chorus::eval
