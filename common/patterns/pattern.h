// EventBridge event patterns: parsing with AWS's validation rules and
// messages, and matching one event against one pattern.
//
//   absl::StatusOr<patterns::Pattern> pattern =
//       patterns::Pattern::Parse(R"({"source": ["shop"], "detail": {"total": [{"numeric": [">", 100]}]}})");
//   if (!pattern.ok()) return pattern.status();  // "Event pattern is not valid. Reason: ..."
//   bool hit = pattern->Matches(event_value);
//
// Semantics follow EventBridge: every field of the pattern must match
// (AND); the values listed for a field are alternatives (OR); an event array
// field matches when any element matches; numeric operators only match JSON
// numbers; null matches null but not a missing field; {"exists": false}
// matches a missing field (exists only looks at leaf values, so a field that
// holds an object does not "exist" for it). Elements of an event array of
// objects are matched one at a time, so two conditions below one array must
// hold in the same element.
//
// A Pattern is immutable once parsed; const methods may be called
// concurrently.
#ifndef STEPFLOW_COMMON_PATTERNS_PATTERN_H_
#define STEPFLOW_COMMON_PATTERNS_PATTERN_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/json/json.h"

namespace stepflow::patterns {

// The longest pattern text PutRule and TestEventPattern accept, in bytes.
inline constexpr size_t kMaxPatternBytes = 4096;
// Numbers in numeric matches must lie within +/- this bound; values are
// compared at 6 decimal places, as EventBridge does.
inline constexpr double kMaxNumericMagnitude = 5.0e9;
// The most alternatives a pattern may expand to (the product of the value
// lists of its fields, summed over $or branches).
inline constexpr int64_t kMaxCombinations = 1000;
// Wildcard values with more '*' than this are "too complex".
inline constexpr int kMaxWildcards = 5;

// One condition on a leaf value (an element of a pattern's value list).
struct Condition {
  enum class Kind {
    kString,            // exact string
    kNumber,            // exact number (compared numerically)
    kTrue,
    kFalse,
    kNull,
    kPrefix,            // text
    kPrefixIgnoreCase,  // text (lowercased)
    kSuffix,
    kSuffixIgnoreCase,
    kEqualsIgnoreCase,  // text (lowercased)
    kWildcard,          // text (the raw wildcard pattern)
    kNumeric,           // lower/upper bounds
    kExists,            // exists (true/false)
    kCidr,              // address bytes + mask bits
    kAnythingBut,       // strings / numbers, or a prefix/suffix/wildcard/ignore-case
  };
  enum class AnythingBut { kValues, kPrefix, kSuffix, kWildcard, kIgnoreCase };

  Kind kind = Kind::kString;
  std::string text;
  double number = 0;
  // kNumeric: an absent bound is unbounded.
  bool has_lower = false, lower_inclusive = false;
  bool has_upper = false, upper_inclusive = false;
  double lower = 0, upper = 0;
  bool exists = false;
  // kCidr: 4 or 16 address bytes, already masked.
  std::vector<uint8_t> cidr_address;
  int cidr_bits = 0;
  // kAnythingBut.
  AnythingBut anything_but = AnythingBut::kValues;
  std::vector<std::string> but_strings;  // lowercased for kIgnoreCase
  std::vector<double> but_numbers;

  bool MatchesLeaf(const json::Value& value) const;
};

// An object of a pattern: its fields (AND) and its $or groups.
struct PatternNode {
  struct Field {
    std::string key;
    // Exactly one of the two is set: a value list or a nested object.
    std::vector<Condition> conditions;
    std::unique_ptr<PatternNode> child;
    // For a value list with exists:false: its path from the pattern's root
    // (names joined with '.'), and the paths of the fields with other
    // conditions that come before it in name order. EventBridge's matcher
    // takes fields in that order; in an array of objects an exists:false
    // holds only if no element has the field, unless one of those fields
    // has already picked an element.
    std::string absence_path;
    std::vector<std::string> earlier_paths;
  };
  std::vector<Field> fields;
  // Each group is a list of alternatives; every group must be satisfied.
  std::vector<std::vector<PatternNode>> or_groups;

  // `object` is an event object, or null for "absent". With `dotted`, an
  // object the match looks into that has a dotted member name ("a.b") sets
  // it and ends the match: the event's nested form must be matched instead
  // (Pattern::Matches does).
  bool Matches(const json::Value* object, bool* dotted = nullptr) const;
  // The same for `object`, found at `path` (member names) inside an
  // element of the event array `elements`.
  bool MatchesElement(const json::Value* object, const json::Value* elements,
                      std::vector<const std::string*>* path, bool* dotted) const;
};

class Pattern {
 public:
  // Parses and validates `text`. INVALID_ARGUMENT carries AWS's
  // InvalidEventPatternException message ("Event pattern is not valid.
  // Reason: ...").
  static absl::StatusOr<Pattern> Parse(absl::string_view text);

  // Whether `event` (a JSON object; anything else never matches) matches.
  bool Matches(const json::Value& event) const;
  // Parses `event_text` first; INVALID_ARGUMENT when it is not JSON.
  absl::StatusOr<bool> Matches(absl::string_view event_text) const;

  const PatternNode& root() const { return *root_; }

 private:
  explicit Pattern(std::unique_ptr<PatternNode> root) : root_(std::move(root)) {}
  std::shared_ptr<const PatternNode> root_;
};

// The TestEventPattern operation: validates the pattern and that `event` is
// an EventBridge event as AWS checks it (a JSON object with id, account,
// source, time, region and detail-type), then matches. INVALID_ARGUMENT with
// AWS's message for a bad pattern (InvalidEventPatternException) or event
// (ValidationException, kInvalidEventMessage).
absl::StatusOr<bool> TestEventPattern(absl::string_view pattern, absl::string_view event);

// AWS's message for an event TestEventPattern refuses.
inline constexpr absl::string_view kInvalidEventMessage = "Parameter Event is not valid.";

}  // namespace stepflow::patterns

#endif  // STEPFLOW_COMMON_PATTERNS_PATTERN_H_
