// The 13a tokeniser of mteval-v13a.pl as sacrebleu 2.x implements it.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace chorus::eval {

// Tokenises one segment (code points): drops "<skipped>", unescapes &quot;
// &amp; &lt; &gt;, splits off punctuation and symbols, periods and commas
// unless next to a digit, and a dash after a digit. Returns the tokens joined
// by single spaces, like sacrebleu's Tokenizer13a.
std::u32string tokenize_13a(std::u32string_view line);

// Splits a tokenised line on single spaces.
std::vector<std::u32string_view> split_tokens(std::u32string_view tokenized);

}  // namespace chorus::eval
