#include "tests/eval/perturbation.h"

#include <iterator>
#include <random>
#include <sstream>

namespace chorus::eval::testing {
namespace {

std::vector<std::string> words_of(const std::string& line) {
  std::vector<std::string> words;
  std::istringstream in(line);
  for (std::string w; in >> w;) words.push_back(w);
  return words;
}

std::string join(const std::vector<std::string>& words, const std::string& sep = " ") {
  std::string out;
  for (std::size_t i = 0; i < words.size(); ++i) out += (i ? sep : "") + words[i];
  return out;
}

// Replacements that exercise Unicode handling: accents, curly quotes, dashes,
// non-ASCII spaces (which Python's split() honours), case specials that
// lowercase to ASCII or to two code points, final sigma, wide forms, emoji.
const char* const kUnicodeWords[] = {
    "caf\u00e9",   "\u201cquoted\u201d", "don\u2019t",     "\u2014",          "na\u00efve",
    "Stra\u00dfe", "\u212aelvin",        "\u0130stanbul",  "\u039f\u0394\u039f\u03a3",
    "\uff21\uff22\uff23", "\U0001F600", "e\u0301t\u00e9", "\u00c9COLE",      "\u2026",
};
const char* const kUnicodeSpaces[] = {"\u00a0", "\u3000", "\u2009", "\u202f"};
const char* const kPunctuation[] = {",", ".", "!", "?", ";", ":", "\"", "'", "(", ")", "&amp;", "&quot;", "-", "3.5", "1,000", "10-20"};

std::string perturb_words(std::vector<std::string> words, Perturbation kind, std::mt19937_64& rng) {
  const auto pick = [&](std::size_t n) { return static_cast<std::size_t>(rng() % n); };
  switch (kind) {
    case Perturbation::kIdentity:
      break;
    case Perturbation::kDropWords:
      for (int k = 0; k < 2 && words.size() > 1; ++k) words.erase(words.begin() + pick(words.size()));
      break;
    case Perturbation::kSwapWords:
      for (int k = 0; k < 2 && words.size() > 1; ++k) {
        const std::size_t i = pick(words.size() - 1);
        std::swap(words[i], words[i + 1]);
      }
      break;
    case Perturbation::kCasing:
      for (auto& w : words) {
        const auto choice = pick(4);
        for (std::size_t c = 0; c < w.size(); ++c) {
          char& ch = w[c];
          if (choice == 0 && ch >= 'a' && ch <= 'z') ch = static_cast<char>(ch - 32);
          if (choice == 1 && ch >= 'A' && ch <= 'Z') ch = static_cast<char>(ch + 32);
          if (choice == 2 && c == 0 && ch >= 'a' && ch <= 'z') ch = static_cast<char>(ch - 32);
        }
      }
      break;
    case Perturbation::kPunctuation:
      for (auto& w : words) {
        if (!w.empty() && (w.back() == '.' || w.back() == ',') && pick(2) == 0) w.pop_back();
        const auto choice = pick(6);
        if (choice == 0) w += kPunctuation[pick(std::size(kPunctuation))];
        if (choice == 1) w = std::string(kPunctuation[pick(std::size(kPunctuation))]) + w;
        if (choice == 2) w += " .";
      }
      if (pick(3) == 0) words.push_back("<skipped>");
      break;
    case Perturbation::kUnicode: {
      for (int k = 0; k < 3 && !words.empty(); ++k) words[pick(words.size())] = kUnicodeWords[pick(std::size(kUnicodeWords))];
      std::string out;
      for (std::size_t i = 0; i < words.size(); ++i) {
        if (i > 0) out += pick(3) == 0 ? kUnicodeSpaces[pick(std::size(kUnicodeSpaces))] : " ";
        out += words[i];
      }
      return out;
    }
    case Perturbation::kTruncate:
      words.resize(words.size() / 2);
      break;
    case Perturbation::kRepeat:
      if (!words.empty()) {
        const std::size_t i = pick(words.size());
        const std::size_t len = std::min<std::size_t>(3, words.size() - i);
        std::vector<std::string> copy(words.begin() + i, words.begin() + i + len);
        words.insert(words.begin() + i, copy.begin(), copy.end());
      }
      break;
    case Perturbation::kEmpty:
      return pick(2) == 0 ? std::string() : std::string("   ");
    case Perturbation::kCombined:
      words = words_of(perturb_words(words, Perturbation::kDropWords, rng));
      words = words_of(perturb_words(words, Perturbation::kCasing, rng));
      return perturb_words(words_of(perturb_words(words, Perturbation::kPunctuation, rng)), Perturbation::kUnicode, rng);
  }
  return join(words);
}

}  // namespace

std::string perturb(const std::string& line, Perturbation kind, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  return perturb_words(words_of(line), kind, rng);
}

std::vector<std::string> perturb_all(const std::vector<std::string>& lines, int offset, std::uint64_t seed) {
  std::vector<std::string> out;
  for (std::size_t i = 0; i < lines.size(); ++i) {
    const auto kind = static_cast<Perturbation>((static_cast<int>(i) + offset) % kPerturbationKinds);
    out.push_back(perturb(lines[i], kind, seed + i));
  }
  return out;
}

std::string split_into_lines(const std::string& text) {
  const auto words = words_of(text);
  std::string out;
  int since_break = 0;
  for (std::size_t i = 0; i < words.size(); ++i) {
    if (i > 0) out += since_break == 0 ? "\n" : " ";
    out += words[i];
    ++since_break;
    if (words[i].back() == '.' || since_break == 7) since_break = 0;
  }
  return out;
}

}  // namespace chorus::eval::testing
