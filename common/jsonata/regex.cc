#include "common/jsonata/regex.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace stepflow::jsonata {
namespace {

// Backtracking steps of one start position, a backstop to the caller's
// budget (which spans start positions; PCRE2's own limit does not).
constexpr uint32_t kMatchLimit = 20'000'000;
// Memory for backtracking, in KiB.
constexpr uint32_t kHeapLimitKib = 64 * 1024;

// Options that make PCRE2 read and match a pattern as JavaScript does:
// \uhhhh and \u{h..} escapes, [^] for any character and [] for none, an
// unset back-reference matching the empty string, and $ (without the m flag)
// only at the very end. Patterns and subjects are UTF-8, matched by code
// point; \d, \w and \s keep their ASCII meaning as in JavaScript.
constexpr uint32_t kCompileOptions = PCRE2_UTF | PCRE2_ALT_BSUX |
                                     PCRE2_ALLOW_EMPTY_CLASS |
                                     PCRE2_MATCH_UNSET_BACKREF |
                                     PCRE2_DOLLAR_ENDONLY |
                                     PCRE2_NEVER_BACKSLASH_C |
                                     // A callout before every item counts
                                     // the steps against the budget.
                                     PCRE2_AUTO_CALLOUT;

struct CompileContextDeleter {
  void operator()(pcre2_compile_context* c) const { pcre2_compile_context_free(c); }
};
struct MatchDataDeleter {
  void operator()(pcre2_match_data* d) const { pcre2_match_data_free(d); }
};

// The limits are the same for every search, so one context, made on first
// use and never changed, serves all threads; a search with a budget copies it
// to add its own counter.
const pcre2_match_context* LimitedMatchContext() {
  static const pcre2_match_context* const kContext = [] {
    pcre2_match_context* context = pcre2_match_context_create(nullptr);
    pcre2_set_match_limit(context, kMatchLimit);
    pcre2_set_heap_limit(context, kHeapLimitKib);
    return context;
  }();
  return kContext;
}

struct MatchContextDeleter {
  void operator()(pcre2_match_context* c) const { pcre2_match_context_free(c); }
};

int SpendStep(pcre2_callout_block*, void* data) {
  uint64_t* steps_left = static_cast<uint64_t*>(data);
  if (*steps_left == 0) return PCRE2_ERROR_CALLOUT;
  --*steps_left;
  return 0;
}

std::string ErrorText(int code) {
  PCRE2_UCHAR buffer[256];
  if (pcre2_get_error_message(code, buffer, sizeof(buffer)) < 0) {
    return absl::StrCat("error ", code);
  }
  return reinterpret_cast<const char*>(buffer);
}

// Moves a byte offset forward past UTF-8 continuation bytes.
size_t CharacterBoundary(absl::string_view s, size_t at) {
  while (at < s.size() && (static_cast<unsigned char>(s[at]) & 0xC0) == 0x80) {
    ++at;
  }
  return at;
}

absl::StatusOr<bool> Match(pcre2_code* code, absl::string_view subject,
                           size_t from, uint32_t options, RegexMatch* match,
                           uint64_t* steps_left) {
  std::unique_ptr<pcre2_match_data, MatchDataDeleter> data(
      pcre2_match_data_create_from_pattern(code, nullptr));
  if (data == nullptr) return absl::ResourceExhaustedError("Out of memory");
  std::unique_ptr<pcre2_match_context, MatchContextDeleter> counting;
  pcre2_match_context* context =
      const_cast<pcre2_match_context*>(LimitedMatchContext());
  if (steps_left != nullptr) {
    counting.reset(pcre2_match_context_copy(context));
    if (counting == nullptr) return absl::ResourceExhaustedError("Out of memory");
    pcre2_set_callout(counting.get(), SpendStep, steps_left);
    context = counting.get();
  }
  const int rc = pcre2_match(code, reinterpret_cast<PCRE2_SPTR>(subject.data()),
                             subject.size(), from, options, data.get(), context);
  if (rc == PCRE2_ERROR_NOMATCH) return false;
  if (rc == PCRE2_ERROR_MATCHLIMIT || rc == PCRE2_ERROR_HEAPLIMIT ||
      rc == PCRE2_ERROR_DEPTHLIMIT || rc == PCRE2_ERROR_CALLOUT) {
    return absl::ResourceExhaustedError(
        "The regular expression needs too many steps to match this string");
  }
  if (rc < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("Regular expression error: ", ErrorText(rc)));
  }
  if (match == nullptr) return true;
  const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(data.get());
  match->start = ovector[0];
  match->end = ovector[1];
  match->match = std::string(subject.substr(match->start, match->end - match->start));
  uint32_t groups = 0;
  pcre2_pattern_info(code, PCRE2_INFO_CAPTURECOUNT, &groups);
  match->groups.clear();
  match->groups.reserve(groups);
  for (uint32_t i = 1; i <= groups; ++i) {
    const PCRE2_SIZE begin = ovector[2 * i], end = ovector[2 * i + 1];
    if (i >= static_cast<uint32_t>(rc) || begin == PCRE2_UNSET) {
      match->groups.emplace_back();
    } else {
      match->groups.push_back(std::string(subject.substr(begin, end - begin)));
    }
  }
  return true;
}

}  // namespace

absl::StatusOr<std::unique_ptr<CompiledRegex>> CompiledRegex::Compile(
    absl::string_view pattern, Flags flags) {
  std::unique_ptr<pcre2_compile_context, CompileContextDeleter> context(
      pcre2_compile_context_create(nullptr));
  if (context == nullptr) return absl::ResourceExhaustedError("Out of memory");
  // JavaScript ends lines at \n and \r; \r\n counts once.
  pcre2_set_newline(context.get(), PCRE2_NEWLINE_ANYCRLF);
  pcre2_set_compile_extra_options(context.get(), PCRE2_EXTRA_ALT_BSUX);
  uint32_t options = kCompileOptions;
  if (flags.ignore_case) options |= PCRE2_CASELESS;
  if (flags.multiline) options |= PCRE2_MULTILINE;
  int error = 0;
  PCRE2_SIZE offset = 0;
  pcre2_code* code =
      pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                    options, &error, &offset, context.get());
  if (code == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(
        "Invalid regular expression at offset ", offset, ": ", ErrorText(error)));
  }
  return std::unique_ptr<CompiledRegex>(new CompiledRegex(code));
}

CompiledRegex::~CompiledRegex() { pcre2_code_free(code_); }

absl::StatusOr<bool> CompiledRegex::Search(absl::string_view subject,
                                           size_t from, RegexMatch* match,
                                           uint64_t* steps_left) const {
  if (from > subject.size()) return false;
  return Match(code_, subject, CharacterBoundary(subject, from), 0, match,
               steps_left);
}

absl::StatusOr<bool> CompiledRegex::FullMatch(absl::string_view subject,
                                              RegexMatch* match,
                                              uint64_t* steps_left) const {
  return Match(code_, subject, 0, PCRE2_ANCHORED | PCRE2_ENDANCHORED, match,
               steps_left);
}

}  // namespace stepflow::jsonata
