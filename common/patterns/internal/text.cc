#include "common/patterns/internal/text.h"

#include <vector>

#include "absl/strings/ascii.h"

namespace stepflow::patterns::internal {

std::string Lower(absl::string_view text) {
  std::string out(text);
  absl::AsciiStrToLower(&out);
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
