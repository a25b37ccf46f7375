// Text helpers shared by the single-pattern matcher and the rule index.
#ifndef STEPFLOW_COMMON_PATTERNS_INTERNAL_TEXT_H_
#define STEPFLOW_COMMON_PATTERNS_INTERNAL_TEXT_H_

#include <cmath>
#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"

namespace stepflow::patterns::internal {

// Lowercase, code point by code point (Unicode's simple case mapping, so
// "ÄBC" gives "äbc"); bytes that are not UTF-8 are kept as they are.
std::string Lower(absl::string_view text);

// Whether `text` matches the EventBridge wildcard `pattern`: '*' stands for
// any run of characters, "\*" for a literal '*' and "\\" for a '\'.
bool WildcardMatches(absl::string_view pattern, absl::string_view text);

// EventBridge compares numbers at 6 decimal places within +/- 5e9.
inline bool InNumericRange(double value) { return value >= -5.0e9 && value <= 5.0e9; }
inline int64_t ScaledNumber(double value) { return static_cast<int64_t>(std::llround(value * 1e6)); }

}  // namespace stepflow::patterns::internal

#endif  // STEPFLOW_COMMON_PATTERNS_INTERNAL_TEXT_H_
