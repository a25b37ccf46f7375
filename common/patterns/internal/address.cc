#include "common/patterns/internal/address.h"

#include <algorithm>


namespace stepflow::patterns::internal {

namespace {

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Colon-separated groups of 1 to 4 hex digits (none for empty text), at
// most 8.
bool ParseGroups(absl::string_view text, uint16_t (&groups)[8], size_t* count) {
  *count = 0;
  if (text.empty()) return true;
  uint32_t value = 0;
  int digits = 0;
  for (size_t i = 0; i <= text.size(); ++i) {
    if (i == text.size() || text[i] == ':') {
      if (digits == 0 || *count == 8) return false;
      groups[(*count)++] = static_cast<uint16_t>(value);
      value = 0;
      digits = 0;
      continue;
    }
    int digit = HexDigit(text[i]);
    if (digit < 0 || digits == 4) return false;
    value = value * 16 + static_cast<uint32_t>(digit);
    ++digits;
  }
  return true;
}

}  // namespace

bool ParseIpAddress(absl::string_view text, IpAddress* out) {
  out->size = 0;
  if (text.find(':') == absl::string_view::npos) {
    // Four dot-separated decimal parts of 1 to 3 digits, each at most 255.
    size_t parts = 0;
    int value = 0, digits = 0;
    for (size_t i = 0; i <= text.size(); ++i) {
      if (i == text.size() || text[i] == '.') {
        if (digits == 0 || value > 255 || parts == 4) return false;
        out->bytes[parts++] = static_cast<uint8_t>(value);
        value = 0;
        digits = 0;
      } else if (text[i] >= '0' && text[i] <= '9' && digits < 3) {
        value = value * 10 + (text[i] - '0');
        ++digits;
      } else {
        return false;
      }
    }
    if (parts != 4) return false;
    out->size = 4;
    return true;
  }
  // IPv6: up to 8 groups of hex, one "::" standing for the missing ones.
  size_t gap = text.find("::");
  if (gap != absl::string_view::npos && text.find("::", gap + 1) != absl::string_view::npos) {
    return false;
  }
  uint16_t head[8], tail[8];
  size_t head_count = 0, tail_count = 0;
  if (gap == absl::string_view::npos) {
    if (!ParseGroups(text, head, &head_count) || head_count != 8) return false;
  } else {
    if (!ParseGroups(text.substr(0, gap), head, &head_count) ||
        !ParseGroups(text.substr(gap + 2), tail, &tail_count) || head_count + tail_count > 7) {
      return false;
    }
  }
  out->bytes.fill(0);
  for (size_t i = 0; i < head_count; ++i) {
    out->bytes[2 * i] = static_cast<uint8_t>(head[i] >> 8);
    out->bytes[2 * i + 1] = static_cast<uint8_t>(head[i] & 0xff);
  }
  for (size_t i = 0; i < tail_count; ++i) {
    size_t group = 8 - tail_count + i;
    out->bytes[2 * group] = static_cast<uint8_t>(tail[i] >> 8);
    out->bytes[2 * group + 1] = static_cast<uint8_t>(tail[i] & 0xff);
  }
  out->size = 16;
  return true;
}

bool ParseIpAddress(absl::string_view text, std::vector<uint8_t>* out) {
  IpAddress address;
  if (!ParseIpAddress(text, &address)) return false;
  out->assign(address.bytes.begin(), address.bytes.begin() + static_cast<std::ptrdiff_t>(address.size));
  return true;
}

void MaskAddress(uint8_t* bytes, size_t size, int bits) {
  for (size_t i = 0; i < size; ++i) {
    int keep = std::clamp(bits - static_cast<int>(i) * 8, 0, 8);
    bytes[i] &= static_cast<uint8_t>(keep == 0 ? 0 : (0xff << (8 - keep)) & 0xff);
  }
}

}  // namespace stepflow::patterns::internal
