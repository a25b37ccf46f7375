// Timestamps as the States Language uses them: the literal of a Choice
// rule's Timestamp* operators, IsTimestamp, the Wait state's Timestamp and
// TimestampPath, and the times of the context object ($$.Execution.StartTime,
// $$.State.EnteredTime).
//
//   absl::StatusOr<absl::Time> t = ParseTimestamp("2016-03-14T01:59:00Z");
//   bool ok = IsTimestamp("2016-03-14T01:59:00.5+01:00");          // true
//   std::string s = FormatTimestamp(*t);       // "2016-03-14T01:59:00.000Z"
//
// Accepted text (RFC 3339 profile of ISO 8601, as AWS documents it):
//
//   YYYY-MM-DDThh:mm:ss[.f{1,9}](Z|+hh:mm|-hh:mm)
//
// - An uppercase "T" and an uppercase "Z" are required, as the AWS Choice and
//   Wait documentation states ("an uppercase T must separate the date and
//   time portions", "an uppercase Z must denote that a numeric time zone
//   offset isn't present"). Lowercase "t"/"z" and a space separator are
//   rejected.
// - The offset is required: AWS fails "2012-10-09T19:00:55" and
//   "...:55.000000" (no Z) with States.Runtime in Wait TimestampPath
//   (recorded against AWS by LocalStack's test_wait_timestamppath).
// - Fractional seconds are optional and may have 1 to 9 digits (AWS accepts
//   ".00Z", ".000Z", ".000000Z", ".0000000Z" and nanosecond timestamps); ten
//   or more digits are rejected, as Java's ISO_OFFSET_DATE_TIME (whose
//   wording AWS's error messages quote) rejects them. The full fraction is
//   kept; comparisons are exact to the nanosecond.
// - Fields are range-checked the way a strict ISO parser does: month 01-12, a
//   day that exists in that month (leap years included), hour 00-23, minute
//   00-59, second 00-59 (no leap second 60, no 24:00:00), offset up to 18:00.
// - Seconds are required (RFC 3339), although Java's ISO parser would take
//   "2016-03-14T01:59Z"; AWS's behaviour for that form is unverified.
//
// All functions are thread-safe and allocate nothing except FormatTimestamp's
// result.
#ifndef STEPFLOW_COMMON_ASL_TIMESTAMP_H_
#define STEPFLOW_COMMON_ASL_TIMESTAMP_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace stepflow::asl {

// The instant `text` names. INVALID_ARGUMENT (with the text quoted) when it
// is not a timestamp in the profile above.
absl::StatusOr<absl::Time> ParseTimestamp(absl::string_view text);

// ParseTimestamp without the error message: false when `text` is not a
// timestamp, else sets `*out` (when not null). Never allocates.
bool TryParseTimestamp(absl::string_view text, absl::Time* out);

// True when ParseTimestamp(text) would succeed. Never allocates.
bool IsTimestamp(absl::string_view text);

// The context-object format AWS uses: UTC, millisecond precision (truncated),
// e.g. "2024-01-02T03:04:05.678Z".
std::string FormatTimestamp(absl::Time time);

}  // namespace stepflow::asl

#endif  // STEPFLOW_COMMON_ASL_TIMESTAMP_H_
