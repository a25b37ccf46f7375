#include "services/eventbus/cron.h"

#include <algorithm>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/status/status_macros.h"

namespace stepflow::eventbus {
namespace {

constexpr const char* kMonthNames[] = {"JAN", "FEB", "MAR", "APR",
                                       "MAY", "JUN", "JUL", "AUG",
                                       "SEP", "OCT", "NOV", "DEC"};
constexpr const char* kDayNames[] = {"SUN", "MON", "TUE", "WED",
                                     "THU", "FRI", "SAT"};

// What a field accepts.
struct FieldSpec {
  const char* name;
  int min;
  int max;
  // Names of min, min+1, ... (months, days of week); null: numbers only.
  const char* const* names = nullptr;
  bool wraps = true;   // ranges like 22-2 wrap around
  bool steps = true;   // "/" allowed
  int index_base = 0;  // the bit of value v is v - index_base
};

constexpr FieldSpec kMinutes{"Minutes", 0, 59};
constexpr FieldSpec kHours{"Hours", 0, 23};
constexpr FieldSpec kDaysOfMonth{"Day-of-month", 1, 31};
constexpr FieldSpec kMonths{"Month", 1, 12, kMonthNames};
constexpr FieldSpec kDaysOfWeek{"Day-of-week", 1, 7, kDayNames, true, false};
constexpr FieldSpec kYears{"Year", kCronFirstYear, kCronLastYear, nullptr,
                           false,  true,           kCronFirstYear};

absl::Status Invalid(const FieldSpec& field, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat(field.name, ": ", why));
}

// One value of `field`: a number in range or one of its names.
absl::StatusOr<int> ParseValue(const FieldSpec& field, absl::string_view text) {
  if (field.names != nullptr) {
    const std::string upper = absl::AsciiStrToUpper(text);
    for (int i = 0; i <= field.max - field.min; ++i) {
      if (upper == field.names[i]) return field.min + i;
    }
  }
  int value = 0;
  if (text.empty() ||
      !std::all_of(text.begin(), text.end(), absl::ascii_isdigit) ||
      !absl::SimpleAtoi(text, &value)) {
    return Invalid(field, absl::StrCat("'", text, "' is not a value"));
  }
  if (value < field.min || value > field.max) {
    return Invalid(
        field, absl::StrCat(value, " is not in ", field.min, "-", field.max));
  }
  return value;
}

// A comma-separated list of *, a, a-b, each optionally followed by /step,
// into `out` (indexed by value).
template <size_t N>
absl::Status ParseList(const FieldSpec& field, absl::string_view text,
                       std::bitset<N>* out) {
  for (absl::string_view item : absl::StrSplit(text, ',')) {
    int step = 1;
    absl::string_view base = item;
    if (const size_t slash = item.find('/'); slash != absl::string_view::npos) {
      if (!field.steps) return Invalid(field, "'/' is not allowed");
      base = item.substr(0, slash);
      absl::string_view step_text = item.substr(slash + 1);
      if (step_text.empty() ||
          !std::all_of(step_text.begin(), step_text.end(),
                       absl::ascii_isdigit) ||
          !absl::SimpleAtoi(step_text, &step) || step < 1 ||
          step > field.max - field.min + 1) {
        return Invalid(field,
                       absl::StrCat("'", step_text, "' is not an increment"));
      }
    }
    int first = field.min;
    int last = field.max;
    if (base != "*") {
      const size_t dash = base.find('-');
      ASSIGN_OR_RETURN(first, ParseValue(field, base.substr(0, dash)));
      if (dash != absl::string_view::npos) {
        ASSIGN_OR_RETURN(last, ParseValue(field, base.substr(dash + 1)));
        if (first > last && !field.wraps) {
          return Invalid(field, absl::StrCat("range ", base, " is backwards"));
        }
      } else if (step == 1) {
        last = first;  // a single value; "a/n" runs to the field's end
      }
    }
    // Walks first..last, wrapping past max when first > last.
    const int span = field.max - field.min + 1;
    const int count = (last - first + span) % span + 1;
    for (int k = 0; k < count; k += step) {
      const int value = field.min + (first - field.min + k) % span;
      out->set(static_cast<size_t>(value - field.index_base));
    }
  }
  return absl::OkStatus();
}

int DaysInMonth(absl::CivilMonth month) {
  return static_cast<int>((absl::CivilDay(month + 1) - 1).day());
}

// 1 = Sunday ... 7 = Saturday.
int DayOfWeek(absl::CivilDay day) {
  switch (absl::GetWeekday(day)) {
    case absl::Weekday::sunday:
      return 1;
    case absl::Weekday::monday:
      return 2;
    case absl::Weekday::tuesday:
      return 3;
    case absl::Weekday::wednesday:
      return 4;
    case absl::Weekday::thursday:
      return 5;
    case absl::Weekday::friday:
      return 6;
    case absl::Weekday::saturday:
      return 7;
  }
  return 0;
}

// The weekday nearest day `n` of `month` without leaving the month; 0 when
// the month has no day n.
int NearestWeekday(absl::CivilMonth month, int n) {
  const int last = DaysInMonth(month);
  if (n > last) return 0;
  const int weekday = DayOfWeek(absl::CivilDay(month.year(), month.month(), n));
  if (weekday == 7) return n > 1 ? n - 1 : n + 2;     // Saturday
  if (weekday == 1) return n < last ? n + 1 : n - 2;  // Sunday
  return n;
}

}  // namespace

absl::StatusOr<CronSchedule> CronSchedule::Parse(absl::string_view expression) {
  if (!absl::StartsWith(expression, "cron(") ||
      !absl::EndsWith(expression, ")")) {
    return absl::InvalidArgumentError("not a cron(...) expression");
  }
  std::vector<absl::string_view> fields =
      absl::StrSplit(expression.substr(5, expression.size() - 6), ' ');
  if (fields.size() != 6) {
    return absl::InvalidArgumentError(
        absl::StrCat("a cron expression has 6 fields separated by single "
                     "spaces, not ",
                     fields.size()));
  }
  CronSchedule cron;
  RETURN_IF_ERROR(ParseList(kMinutes, fields[0], &cron.minutes_));
  RETURN_IF_ERROR(ParseList(kHours, fields[1], &cron.hours_));
  RETURN_IF_ERROR(ParseList(kMonths, fields[3], &cron.months_));
  RETURN_IF_ERROR(ParseList(kYears, fields[5], &cron.years_));

  const absl::string_view dom = fields[2];
  const absl::string_view dow = fields[4];
  cron.dom_any_ = dom == "?";
  cron.dow_any_ = dow == "?";
  if (cron.dom_any_ == cron.dow_any_) {
    return absl::InvalidArgumentError(
        "exactly one of Day-of-month and Day-of-week must be '?'");
  }
  if (!cron.dom_any_) {
    if (dom == "L") {
      cron.last_day_ = true;
    } else if (dom == "LW") {
      cron.last_weekday_ = true;
    } else if (absl::EndsWith(dom, "W")) {
      ASSIGN_OR_RETURN(cron.nearest_weekday_to_,
                       ParseValue(kDaysOfMonth, dom.substr(0, dom.size() - 1)));
    } else if (absl::StrContains(dom, 'L') || absl::StrContains(dom, 'W')) {
      return Invalid(kDaysOfMonth, "L and W stand alone (L, LW or nW)");
    } else {
      RETURN_IF_ERROR(ParseList(kDaysOfMonth, dom, &cron.days_));
    }
  }
  if (!cron.dow_any_) {
    if (const size_t hash = dow.find('#'); hash != absl::string_view::npos) {
      ASSIGN_OR_RETURN(cron.nth_weekday_,
                       ParseValue(kDaysOfWeek, dow.substr(0, hash)));
      absl::string_view nth = dow.substr(hash + 1);
      if (nth.size() != 1 || nth[0] < '1' || nth[0] > '5') {
        return Invalid(kDaysOfWeek, "n#k needs k in 1-5, alone in the field");
      }
      cron.nth_ = nth[0] - '0';
    } else if (dow == "L") {
      cron.weekdays_.set(7);  // the last day of the week: Saturday
    } else if (absl::EndsWith(dow, "L")) {
      ASSIGN_OR_RETURN(cron.last_of_weekday_,
                       ParseValue(kDaysOfWeek, dow.substr(0, dow.size() - 1)));
    } else {
      RETURN_IF_ERROR(ParseList(kDaysOfWeek, dow, &cron.weekdays_));
    }
  }
  return cron;
}

bool CronSchedule::FiresOn(absl::CivilDay day) const {
  const int64_t year = day.year();
  if (year < kCronFirstYear || year > kCronLastYear ||
      !years_.test(static_cast<size_t>(year - kCronFirstYear)) ||
      !months_.test(static_cast<size_t>(day.month()))) {
    return false;
  }
  const absl::CivilMonth month(day);
  const int d = day.day();
  if (dow_any_) {  // a Day-of-month schedule
    if (last_day_) return d == DaysInMonth(month);
    if (last_weekday_) return d == NearestWeekday(month, DaysInMonth(month));
    if (nearest_weekday_to_ > 0)
      return d == NearestWeekday(month, nearest_weekday_to_);
    return days_.test(static_cast<size_t>(d));
  }
  const int weekday = DayOfWeek(day);
  if (last_of_weekday_ > 0)
    return weekday == last_of_weekday_ && d + 7 > DaysInMonth(month);
  if (nth_weekday_ > 0)
    return weekday == nth_weekday_ && (d - 1) / 7 + 1 == nth_;
  return weekdays_.test(static_cast<size_t>(weekday));
}

absl::optional<absl::Time> CronSchedule::NextAfter(absl::Time after,
                                                   absl::Time until) const {
  const absl::TimeZone utc = absl::UTCTimeZone();
  const absl::CivilMinute first_year_start(kCronFirstYear, 1, 1, 0, 0);
  absl::CivilMinute start = absl::ToCivilMinute(after, utc) + 1;
  if (start < first_year_start) start = first_year_start;
  absl::CivilDay last_day(kCronLastYear, 12, 31);
  if (until != absl::InfiniteFuture() &&
      absl::ToCivilDay(until, utc) < last_day) {
    last_day = absl::ToCivilDay(until, utc);
  }
  for (absl::CivilDay day(start); day <= last_day;) {
    if (!years_.test(static_cast<size_t>(day.year() - kCronFirstYear))) {
      day = absl::CivilDay(absl::CivilYear(day) + 1);
      continue;
    }
    if (!months_.test(static_cast<size_t>(day.month()))) {
      day = absl::CivilDay(absl::CivilMonth(day) + 1);
      continue;
    }
    if (FiresOn(day)) {
      const bool today = day == absl::CivilDay(start);
      for (int h = today ? start.hour() : 0; h < 24; ++h) {
        if (!hours_.test(static_cast<size_t>(h))) continue;
        const int from = today && h == start.hour() ? start.minute() : 0;
        for (int m = from; m < 60; ++m) {
          if (minutes_.test(static_cast<size_t>(m))) {
            const absl::Time next = absl::FromCivil(
                absl::CivilMinute(day.year(), day.month(), day.day(), h, m),
                utc);
            if (next > until) return absl::nullopt;
            return next;
          }
        }
      }
    }
    ++day;
  }
  return absl::nullopt;
}

}  // namespace stepflow::eventbus
