// The message of the chorus::Error an action throws, for tests of error texts.
#pragma once

#include <gtest/gtest.h>

#include <string>

#include "common/error.h"

namespace chorus::testing {

// The message of the chorus::Error thrown by `action` (fails the test when none is thrown).
template <class F>
std::string error_of(F&& action) {
  try {
    action();
  } catch (const Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected a chorus::Error";
  return "";
}

}  // namespace chorus::testing
