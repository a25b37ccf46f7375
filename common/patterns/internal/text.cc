#include "common/patterns/internal/text.h"

#include <locale.h>
#include <wctype.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "absl/strings/ascii.h"
#include "common/json/utf8.h"

namespace stepflow::patterns::internal {

namespace {

// The C.UTF-8 locale's case mappings (glibc has it built in); null when the
// system lacks it, and then only ASCII is folded.
locale_t Utf8Locale() {
  static const locale_t locale = newlocale(LC_CTYPE_MASK, "C.UTF-8", static_cast<locale_t>(0));
  return locale;
}

}  // namespace

std::string Lower(absl::string_view text) {
  std::string out(text);
  const bool ascii = std::all_of(text.begin(), text.end(),
                                 [](char c) { return static_cast<unsigned char>(c) < 0x80; });
  if (ascii || Utf8Locale() == static_cast<locale_t>(0)) {
    absl::AsciiStrToLower(&out);
    return out;
  }
  // Each code point's lowercase form, so that "ÄBC" equals "äbc" ignoring
  // case as it does for EventBridge (Java's per-character case mapping).
  out.clear();
  for (size_t i = 0; i < text.size();) {
    const size_t start = i;
    const uint32_t code_point = json::NextCodePoint(text, &i);
    const wint_t lowered = towlower_l(static_cast<wint_t>(code_point), Utf8Locale());
    if (static_cast<uint32_t>(lowered) == code_point) {
      out.append(text.data() + start, i - start);  // kept byte for byte
    } else {
      json::AppendUtf8(static_cast<uint32_t>(lowered), &out);
    }
  }
  return out;
}

bool WildcardMatches(absl::string_view pattern, absl::string_view text) {
  // Tokens: a literal byte, or a star (is_star). Escapes become literals.
  struct Token {
    char c;
    bool is_star;
  };
  std::vector<Token> tokens;
  tokens.reserve(pattern.size());
  for (size_t i = 0; i < pattern.size(); ++i) {
    if (pattern[i] == '\\' && i + 1 < pattern.size()) {
      tokens.push_back({pattern[++i], false});
    } else {
      tokens.push_back({pattern[i], pattern[i] == '*'});
    }
  }
  // Greedy matching with backtracking to the last star: linear in practice.
  size_t t = 0, p = 0, star = std::string::npos, resume = 0;
  while (t < text.size()) {
    if (p < tokens.size() && !tokens[p].is_star && tokens[p].c == text[t]) {
      ++p;
      ++t;
    } else if (p < tokens.size() && tokens[p].is_star) {
      star = p++;
      resume = t;
    } else if (star != std::string::npos) {
      p = star + 1;
      t = ++resume;
    } else {
      return false;
    }
  }
  while (p < tokens.size() && tokens[p].is_star) ++p;
  return p == tokens.size();
}

}  // namespace stepflow::patterns::internal
