// Regular expressions for JSONata: JavaScript's syntax and semantics, matched
// by PCRE2 with limits on steps and memory.
#ifndef STEPFLOW_COMMON_JSONATA_REGEX_H_
#define STEPFLOW_COMMON_JSONATA_REGEX_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

// PCRE2's compiled-pattern type (pcre2_code_8), kept out of this header.
struct pcre2_real_code_8;

namespace stepflow::jsonata {

// One match, on byte offsets of the subject. A group that took no part in
// the match is an empty string, as JSONata reports it.
struct RegexMatch {
  size_t start = 0, end = 0;
  std::string match;
  std::vector<std::string> groups;
};

// A compiled pattern. Matching never recurses on the thread's stack, and its
// work is bounded: a caller passes a step budget (shared by every search of
// one evaluation, say), each backtracking step spends one, and a search that
// runs out fails with RESOURCE_EXHAUSTED. A pattern that backtracks
// catastrophically on a long subject therefore fails fast, and the same input
// fails the same way on any machine. Memory for backtracking is bounded too.
// Immutable after Compile; Search may run on many threads at once.
class CompiledRegex {
 public:
  struct Flags {
    bool ignore_case = false;
    bool multiline = false;
  };

  // INVALID_ARGUMENT with PCRE2's message and offset when the pattern is not
  // a valid expression.
  static absl::StatusOr<std::unique_ptr<CompiledRegex>> Compile(
      absl::string_view pattern, Flags flags);

  CompiledRegex(const CompiledRegex&) = delete;
  CompiledRegex& operator=(const CompiledRegex&) = delete;
  ~CompiledRegex();

  // Finds the first match that starts at or after byte offset `from` (moved
  // forward to the next character boundary when it falls inside one). The
  // text before `from` still counts for lookbehind and \b. False when there
  // is none. With `steps_left`, each step of matching spends one from it.
  absl::StatusOr<bool> Search(absl::string_view subject, size_t from,
                              RegexMatch* match,
                              uint64_t* steps_left = nullptr) const;

  // Whether the whole subject matches; groups are filled when `match` is set.
  absl::StatusOr<bool> FullMatch(absl::string_view subject,
                                 RegexMatch* match = nullptr,
                                 uint64_t* steps_left = nullptr) const;

 private:
  explicit CompiledRegex(pcre2_real_code_8* code) : code_(code) {}

  pcre2_real_code_8* code_;
};

}  // namespace stepflow::jsonata

#endif  // STEPFLOW_COMMON_JSONATA_REGEX_H_
