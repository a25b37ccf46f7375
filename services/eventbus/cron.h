// CronSchedule: an EventBridge cron() schedule expression, parsed, and the
// times it fires at. Pure: the next firing is a function of the expression
// and a time only.
//
//   ASSIGN_OR_RETURN(CronSchedule cron,
//                    CronSchedule::Parse("cron(0 12 ? * MON-FRI *)"));
//   absl::optional<absl::Time> next = cron.NextAfter(absl::Now());
//
// The syntax is AWS's: six fields, "Minutes Hours Day-of-month Month
// Day-of-week Year", in UTC.
//   Minutes 0-59, Hours 0-23, Year 1970-2199:  , - * /
//   Day-of-month 1-31:                         , - * ? / L W
//   Month 1-12 or JAN-DEC:                     , - * /
//   Day-of-week 1-7 or SUN-SAT (1 = Sunday):   , - * ? L #
// Exactly one of Day-of-month and Day-of-week is "?". "a/n" counts from a
// in steps of n ("*/n" from the field's first value, "a-b/n" within a-b).
// A range whose start is above its end wraps around (FRI-MON, 22-2), except
// in Year. Day-of-month "L" is the month's last day, "nW" the weekday
// (Monday-Friday) nearest day n within the same month, "LW" the month's
// last weekday. Day-of-week "L" is Saturday (the week's last day), "nL" the
// month's last day n (6L: its last Friday), "n#k" its k-th day n (3#2: the
// second Tuesday). L, W and # stand alone in their field, not in lists.
//
// Thread-safety: immutable once parsed; copyable.
#ifndef STEPFLOW_SERVICES_EVENTBUS_CRON_H_
#define STEPFLOW_SERVICES_EVENTBUS_CRON_H_

#include <bitset>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/civil_time.h"
#include "absl/time/time.h"
#include "absl/types/optional.h"

namespace stepflow::eventbus {

inline constexpr int kCronFirstYear = 1970;
inline constexpr int kCronLastYear = 2199;

class CronSchedule {
 public:
  // INVALID_ARGUMENT saying what is wrong for anything but a valid
  // "cron(...)" expression.
  static absl::StatusOr<CronSchedule> Parse(absl::string_view expression);

  // The first firing strictly after `after` (firings are whole UTC
  // minutes); nullopt when the schedule never fires again (its years are
  // over, or no day in them matches, e.g. "30 FEB"), or not by `until`
  // (which bounds the search: a schedule that fires rarely or never costs
  // little to ask about a short window).
  absl::optional<absl::Time> NextAfter(
      absl::Time after, absl::Time until = absl::InfiniteFuture()) const;

  // Whether the schedule fires on `day` (at some hour and minute).
  bool FiresOn(absl::CivilDay day) const;

 private:
  CronSchedule() = default;

  std::bitset<60> minutes_;
  std::bitset<24> hours_;
  std::bitset<13> months_;  // 1..12
  std::bitset<kCronLastYear - kCronFirstYear + 1> years_;

  // Day-of-month; unused when dom_any_ ("?").
  bool dom_any_ = false;
  std::bitset<32> days_;        // 1..31
  bool last_day_ = false;       // L
  bool last_weekday_ = false;   // LW
  int nearest_weekday_to_ = 0;  // nW: n, else 0

  // Day-of-week; unused when dow_any_ ("?"). Values 1..7, 1 = Sunday.
  bool dow_any_ = false;
  std::bitset<8> weekdays_;
  int last_of_weekday_ = 0;  // nL: n, else 0
  int nth_weekday_ = 0;      // n#k: n, else 0
  int nth_ = 0;              // n#k: k
};

}  // namespace stepflow::eventbus

#endif  // STEPFLOW_SERVICES_EVENTBUS_CRON_H_
