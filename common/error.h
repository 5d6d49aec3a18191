// Chorus's exception type and the check macro that formats what was expected.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>

namespace chorus {

// Thrown for every user-facing error: bad input files, keys, shapes, flags.
// The message names the offending thing and what was expected.
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

namespace detail {
template <typename... Parts>
std::string concat(const Parts&... parts) {
  std::ostringstream out;
  (out << ... << parts);
  return out.str();
}
}  // namespace detail

}  // namespace chorus

// CHORUS_CHECK(cond, "message parts", ...): throws chorus::Error when cond is false.
#define CHORUS_CHECK(cond, ...)                                      \
  do {                                                               \
    if (!(cond)) {                                                   \
      throw ::chorus::Error(::chorus::detail::concat(__VA_ARGS__));  \
    }                                                                \
  } while (false)
