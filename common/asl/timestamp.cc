#include "common/asl/timestamp.h"

#include <cstdint>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/civil_time.h"

namespace stepflow::asl {
namespace {

// Reads exactly `width` ASCII digits at `*pos`, advancing past them.
bool Digits(absl::string_view text, size_t* pos, int width, int* out) {
  if (text.size() - *pos < static_cast<size_t>(width)) return false;
  int value = 0;
  for (int i = 0; i < width; ++i) {
    char c = text[*pos + i];
    if (c < '0' || c > '9') return false;
    value = value * 10 + (c - '0');
  }
  *pos += width;
  *out = value;
  return true;
}

bool Literal(absl::string_view text, size_t* pos, char expected) {
  if (*pos >= text.size() || text[*pos] != expected) return false;
  ++*pos;
  return true;
}

bool IsLeapYear(int year) {
  return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
}

int DaysInMonth(int year, int month) {
  static constexpr int kDays[] = {31, 28, 31, 30, 31, 30,
                                  31, 31, 30, 31, 30, 31};
  return month == 2 && IsLeapYear(year) ? 29 : kDays[month - 1];
}

}  // namespace

bool TryParseTimestamp(absl::string_view text, absl::Time* out) {
  size_t pos = 0;
  int year, month, day, hour, minute, second;
  if (!Digits(text, &pos, 4, &year) || !Literal(text, &pos, '-') ||
      !Digits(text, &pos, 2, &month) || !Literal(text, &pos, '-') ||
      !Digits(text, &pos, 2, &day) || !Literal(text, &pos, 'T') ||
      !Digits(text, &pos, 2, &hour) || !Literal(text, &pos, ':') ||
      !Digits(text, &pos, 2, &minute) || !Literal(text, &pos, ':') ||
      !Digits(text, &pos, 2, &second)) {
    return false;
  }
  if (month < 1 || month > 12 || day < 1 || day > DaysInMonth(year, month) ||
      hour > 23 || minute > 59 || second > 59) {
    return false;
  }
  int64_t nanos = 0;
  if (pos < text.size() && text[pos] == '.') {
    ++pos;
    int digits = 0;
    while (pos < text.size() && text[pos] >= '0' && text[pos] <= '9') {
      if (++digits > 9) return false;
      nanos = nanos * 10 + (text[pos] - '0');
      ++pos;
    }
    if (digits == 0) return false;
    for (int i = digits; i < 9; ++i) nanos *= 10;
  }
  int offset_seconds = 0;
  if (Literal(text, &pos, 'Z')) {
    // UTC.
  } else if (pos < text.size() && (text[pos] == '+' || text[pos] == '-')) {
    const int sign = text[pos] == '-' ? -1 : 1;
    ++pos;
    int offset_hours, offset_minutes;
    if (!Digits(text, &pos, 2, &offset_hours) || !Literal(text, &pos, ':') ||
        !Digits(text, &pos, 2, &offset_minutes)) {
      return false;
    }
    if (offset_minutes > 59 || offset_hours * 60 + offset_minutes > 18 * 60)
      return false;
    offset_seconds = sign * (offset_hours * 3600 + offset_minutes * 60);
  } else {
    return false;
  }
  if (pos != text.size()) return false;
  if (out != nullptr) {
    *out = absl::FromCivil(
               absl::CivilSecond(year, month, day, hour, minute, second),
               absl::UTCTimeZone()) -
           absl::Seconds(offset_seconds) + absl::Nanoseconds(nanos);
  }
  return true;
}

absl::StatusOr<absl::Time> ParseTimestamp(absl::string_view text) {
  absl::Time time;
  if (!TryParseTimestamp(text, &time)) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", text,
                     "' is not an RFC 3339 timestamp "
                     "(YYYY-MM-DDThh:mm:ss[.fraction] followed by Z "
                     "or an offset such as +01:00)"));
  }
  return time;
}

bool IsTimestamp(absl::string_view text) {
  return TryParseTimestamp(text, nullptr);
}

std::string FormatTimestamp(absl::Time time) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", time, absl::UTCTimeZone());
}

}  // namespace stepflow::asl
