// The Porter stemmer in NLTK's default NLTK_EXTENSIONS mode, which rouge-score uses.
#pragma once

#include <string>
#include <string_view>

namespace chorus::eval {

// Stems one lowercase ASCII word exactly as nltk.stem.porter.PorterStemmer()
// (mode NLTK_EXTENSIONS): the irregular-forms pool, the 'ies'/'ied' and
// 'alli'/'fulli'/'logi' extensions and the two-letter *o rule.
std::string porter_stem(std::string_view word);

}  // namespace chorus::eval
