#include "eval/metrics/tokenizer_13a.h"

#include "eval/text/python_text.h"

namespace chorus::eval {
namespace {

void replace_all(std::u32string& text, std::u32string_view from, std::u32string_view to) {
  std::size_t pos = text.find(from);
  if (pos == std::u32string::npos) return;
  std::u32string out;
  out.reserve(text.size());
  std::size_t last = 0;
  while (pos != std::u32string::npos) {
    out.append(text, last, pos - last);
    out.append(to);
    last = pos + from.size();
    pos = text.find(from, last);
  }
  out.append(text, last, std::u32string::npos);
  text.swap(out);
}

inline bool is_digit(char32_t c) { return c >= '0' && c <= '9'; }
inline bool is_period_or_comma(char32_t c) { return c == '.' || c == ','; }

// The character class [\{-\~\[-\` -\&\(-\+\:-\@\/] of the first rule.
inline bool is_split_symbol(char32_t c) {
  return (c >= '{' && c <= '~') || (c >= '[' && c <= '`') || (c >= ' ' && c <= '&') || (c >= '(' && c <= '+') ||
         (c >= ':' && c <= '@') || c == '/';
}

}  // namespace

std::u32string tokenize_13a(std::u32string_view input) {
  std::u32string line(input);
  replace_all(line, U"<skipped>", U"");
  replace_all(line, U"-\n", U"");
  replace_all(line, U"\n", U" ");
  if (line.find(U'&') != std::u32string::npos) {
    replace_all(line, U"&quot;", U"\"");
    replace_all(line, U"&amp;", U"&");
    replace_all(line, U"&lt;", U"<");
    replace_all(line, U"&gt;", U">");
  }

  // Rule 1: pad symbols with spaces (the line itself is padded too).
  std::u32string a;
  a.reserve(line.size() * 2 + 2);
  a.push_back(U' ');
  for (char32_t c : line) {
    if (is_split_symbol(c)) {
      a.push_back(U' ');
      a.push_back(c);
      a.push_back(U' ');
    } else {
      a.push_back(c);
    }
  }
  a.push_back(U' ');

  // Rules 2-4 are two-character patterns; Python's re.sub scans left to right
  // and resumes after each match, which these loops reproduce.
  std::u32string b;
  b.reserve(a.size() * 2);
  for (std::size_t i = 0; i < a.size();) {  // ([^0-9])([\.,]) -> "\1 \2 "
    if (i + 1 < a.size() && !is_digit(a[i]) && is_period_or_comma(a[i + 1])) {
      b.push_back(a[i]);
      b.push_back(U' ');
      b.push_back(a[i + 1]);
      b.push_back(U' ');
      i += 2;
    } else {
      b.push_back(a[i++]);
    }
  }
  a.clear();
  for (std::size_t i = 0; i < b.size();) {  // ([\.,])([^0-9]) -> " \1 \2"
    if (i + 1 < b.size() && is_period_or_comma(b[i]) && !is_digit(b[i + 1])) {
      a.push_back(U' ');
      a.push_back(b[i]);
      a.push_back(U' ');
      a.push_back(b[i + 1]);
      i += 2;
    } else {
      a.push_back(b[i++]);
    }
  }
  b.clear();
  for (std::size_t i = 0; i < a.size();) {  // ([0-9])(-) -> "\1 \2 "
    if (i + 1 < a.size() && is_digit(a[i]) && a[i + 1] == U'-') {
      b.push_back(a[i]);
      b.push_back(U' ');
      b.push_back(U'-');
      b.push_back(U' ');
      i += 2;
    } else {
      b.push_back(a[i++]);
    }
  }

  std::u32string out;
  out.reserve(b.size());
  for (std::u32string_view word : python_split(b)) {
    if (!out.empty()) out.push_back(U' ');
    out.append(word);
  }
  return out;
}

std::vector<std::u32string_view> split_tokens(std::u32string_view tokenized) {
  std::vector<std::u32string_view> tokens;
  std::size_t start = 0;
  while (start < tokenized.size()) {
    std::size_t end = tokenized.find(U' ', start);
    if (end == std::u32string_view::npos) end = tokenized.size();
    tokens.push_back(tokenized.substr(start, end - start));
    start = end + 1;
  }
  return tokens;
}

}  // namespace chorus::eval
