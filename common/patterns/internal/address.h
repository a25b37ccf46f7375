// IP address text and CIDR masks, shared by the cidr condition and the rule
// index (which files cidr conditions under their masked network).
#ifndef STEPFLOW_COMMON_PATTERNS_INTERNAL_ADDRESS_H_
#define STEPFLOW_COMMON_PATTERNS_INTERNAL_ADDRESS_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "absl/strings/string_view.h"

namespace stepflow::patterns::internal {

// An IPv4 (size 4) or IPv6 (size 16) address.
struct IpAddress {
  std::array<uint8_t, 16> bytes{};
  size_t size = 0;
};

// Parses dotted-quad IPv4 or RFC 4291 IPv6 text; false when `text` is
// neither. Allocates nothing: the rule index tries it on event strings.
bool ParseIpAddress(absl::string_view text, IpAddress* out);
bool ParseIpAddress(absl::string_view text, std::vector<uint8_t>* out);

// Clears every bit of the address after the first `bits`.
void MaskAddress(uint8_t* bytes, size_t size, int bits);
inline void MaskAddress(std::vector<uint8_t>* bytes, int bits) {
  MaskAddress(bytes->data(), bytes->size(), bits);
}

}  // namespace stepflow::patterns::internal

#endif  // STEPFLOW_COMMON_PATTERNS_INTERNAL_ADDRESS_H_
