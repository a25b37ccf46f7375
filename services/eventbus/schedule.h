// Schedule expressions of scheduled rules, as EventBridge writes them:
// "rate(VALUE UNIT)" with UNIT minute(s), hour(s) or day(s) (singular for
// 1, plural otherwise), and "cron(...)" (see cron.h). Pure functions.
#ifndef STEPFLOW_SERVICES_EVENTBUS_SCHEDULE_H_
#define STEPFLOW_SERVICES_EVENTBUS_SCHEDULE_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace stepflow::eventbus {

// The period of a rate() expression. INVALID_ARGUMENT for anything else.
absl::StatusOr<absl::Duration> ParseRate(absl::string_view expression);

// The times in (after, until] at which a schedule with `period` fires:
// multiples of the period counted from the Unix epoch, oldest first.
std::vector<absl::Time> FireTimes(absl::Duration period, absl::Time after,
                                  absl::Time until);

// The times in (after, until] at which `expression` (rate() or cron())
// fires, oldest first, at most 1000. INVALID_ARGUMENT for an expression
// that is neither, saying why.
absl::StatusOr<std::vector<absl::Time>> ScheduleFireTimes(
    absl::string_view expression, absl::Time after, absl::Time until);

// OK for a valid rate() or cron() expression; INVALID_ARGUMENT saying why.
absl::Status ValidateSchedule(absl::string_view expression);

// The id of the scheduled event a rule gets at `time`: UUID-shaped and the
// same on every eventbus replica, so the executions it starts are too.
std::string ScheduledEventId(absl::string_view rule_arn, absl::Time time);

}  // namespace stepflow::eventbus

#endif  // STEPFLOW_SERVICES_EVENTBUS_SCHEDULE_H_
