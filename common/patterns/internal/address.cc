#include "common/patterns/internal/address.h"

#include <algorithm>

#include "absl/strings/str_split.h"

namespace stepflow::patterns::internal {

bool ParseIpAddress(absl::string_view text, std::vector<uint8_t>* out) {
  out->clear();
  if (text.find(':') == absl::string_view::npos) {
    std::vector<absl::string_view> parts = absl::StrSplit(text, '.');
    if (parts.size() != 4) return false;
    for (absl::string_view part : parts) {
      if (part.empty() || part.size() > 3) return false;
      int value = 0;
      for (char c : part) {
        if (c < '0' || c > '9') return false;
        value = value * 10 + (c - '0');
      }
      if (value > 255) return false;
      out->push_back(static_cast<uint8_t>(value));
    }
    return true;
  }
  // IPv6: up to 8 groups of hex, one "::" allowed.
  size_t gap = text.find("::");
  if (gap != absl::string_view::npos && text.find("::", gap + 1) != absl::string_view::npos) {
    return false;
  }
  auto parse_groups = [](absl::string_view part, std::vector<uint16_t>* groups) {
    if (part.empty()) return true;
    for (absl::string_view group : absl::StrSplit(part, ':')) {
      if (group.empty() || group.size() > 4) return false;
      uint32_t value = 0;
      for (char c : group) {
        int digit;
        if (c >= '0' && c <= '9') digit = c - '0';
        else if (c >= 'a' && c <= 'f') digit = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F') digit = c - 'A' + 10;
        else return false;
        value = value * 16 + static_cast<uint32_t>(digit);
      }
      groups->push_back(static_cast<uint16_t>(value));
    }
    return true;
  };
  std::vector<uint16_t> head, tail;
  if (gap == absl::string_view::npos) {
    if (!parse_groups(text, &head) || head.size() != 8) return false;
  } else {
    if (!parse_groups(text.substr(0, gap), &head) || !parse_groups(text.substr(gap + 2), &tail)) {
      return false;
    }
    if (head.size() + tail.size() > 7) return false;
    head.resize(8 - tail.size(), 0);
    head.insert(head.end(), tail.begin(), tail.end());
  }
  for (uint16_t group : head) {
    out->push_back(static_cast<uint8_t>(group >> 8));
    out->push_back(static_cast<uint8_t>(group & 0xff));
  }
  return true;
}

void MaskAddress(std::vector<uint8_t>* bytes, int bits) {
  for (size_t i = 0; i < bytes->size(); ++i) {
    int keep = std::clamp(bits - static_cast<int>(i) * 8, 0, 8);
    (*bytes)[i] &= static_cast<uint8_t>(keep == 0 ? 0 : (0xff << (8 - keep)) & 0xff);
  }
}

}  // namespace stepflow::patterns::internal
