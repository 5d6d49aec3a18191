// The GPT-2 pre-tokenisation pattern, matched by hand: splits text into the words byte-level BPE
// merges within.
#pragma once

#include <string_view>
#include <vector>

namespace chorus::model {

// Splits `text` as the regular expression
//   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
// does with repeated leftmost matching (alternatives tried in order, each
// greedy). The pieces are views into `text` and cover it completely.
std::vector<std::string_view> gpt2_pretokenize(std::string_view text);

}  // namespace chorus::model
