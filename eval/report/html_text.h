// Text for HTML pages: escaping and the number formats the report uses.
#pragma once

#include <string>
#include <string_view>

namespace chorus::eval::report {

// Escapes &, <, >, " and ' so that any UTF-8 text is safe both as element
// content and inside a quoted attribute value. Other bytes pass unchanged.
std::string html_escape(std::string_view text);

// A number with at most `significant` significant digits, in plain notation
// when it is neither tiny nor huge ("0.925", "1.2e+09", "NaN" never: non-finite
// values are written as "n/a").
std::string format_number(double value, int significant = 4);

// A fixed number of decimals ("0.930"); non-finite values as "n/a".
std::string format_fixed(double value, int decimals);

// Seconds as "0.8 s", "12.4 s" or "3 min 05 s".
std::string format_seconds(double seconds);

}  // namespace chorus::eval::report
