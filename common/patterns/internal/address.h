// IP address text and CIDR masks, shared by the cidr condition and the rule
// index (which files cidr conditions under their masked network).
#ifndef STEPFLOW_COMMON_PATTERNS_INTERNAL_ADDRESS_H_
#define STEPFLOW_COMMON_PATTERNS_INTERNAL_ADDRESS_H_

#include <cstdint>
#include <vector>

#include "absl/strings/string_view.h"

namespace stepflow::patterns::internal {

// Parses dotted-quad IPv4 (4 bytes) or RFC 4291 IPv6 text (16 bytes) into
// `out`; false when `text` is neither.
bool ParseIpAddress(absl::string_view text, std::vector<uint8_t>* out);

// Clears every bit of `bytes` after the first `bits`.
void MaskAddress(std::vector<uint8_t>* bytes, int bits);

}  // namespace stepflow::patterns::internal

#endif  // STEPFLOW_COMMON_PATTERNS_INTERNAL_ADDRESS_H_
