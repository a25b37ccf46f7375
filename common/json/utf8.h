// UTF-8 decoding and encoding for the places that must count or compare
// characters the way AWS (Java, UTF-16) does.
//
//   size_t i = 0;
//   while (i < s.size()) uint32_t cp = json::NextCodePoint(s, &i);
#ifndef STEPFLOW_COMMON_JSON_UTF8_H_
#define STEPFLOW_COMMON_JSON_UTF8_H_

#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"

namespace stepflow::json {

// Decodes the code point at `*i` (< s.size()) and advances past it; an
// invalid or truncated sequence reads its first byte as itself and advances
// by one.
inline uint32_t NextCodePoint(absl::string_view s, size_t* i) {
  const unsigned char b0 = static_cast<unsigned char>(s[*i]);
  const int len = b0 < 0x80           ? 1
                  : (b0 >> 5) == 0x6  ? 2
                  : (b0 >> 4) == 0xE  ? 3
                  : (b0 >> 3) == 0x1E ? 4
                                      : 0;
  if (len <= 1 || *i + len > s.size()) {
    ++*i;
    return b0;
  }
  uint32_t cp = b0 & (0x7F >> len);
  for (int k = 1; k < len; ++k) {
    const unsigned char b = static_cast<unsigned char>(s[*i + k]);
    if ((b & 0xC0) != 0x80) {
      ++*i;
      return b0;
    }
    cp = (cp << 6) | (b & 0x3F);
  }
  *i += len;
  return cp;
}

// Appends the UTF-8 encoding of `cp`.
inline void AppendUtf8(uint32_t cp, std::string* out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

}  // namespace stepflow::json

#endif  // STEPFLOW_COMMON_JSON_UTF8_H_
