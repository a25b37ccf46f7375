#include "services/eventbus/schedule.h"

#include <cstdint>
#include <cstdio>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "services/eventbus/cron.h"

namespace stepflow::eventbus {
namespace {

uint64_t Fnv1a(absl::string_view text,
               uint64_t hash = 14695981039346656037ull) {
  for (unsigned char c : text) {
    hash ^= c;
    hash *= 1099511628211ull;
  }
  return hash;
}

}  // namespace

absl::StatusOr<absl::Duration> ParseRate(absl::string_view expression) {
  const auto invalid = [&expression] {
    return absl::InvalidArgumentError(
        absl::StrCat("not a rate(VALUE UNIT) expression: '", expression, "'"));
  };
  if (!absl::StartsWith(expression, "rate(") ||
      !absl::EndsWith(expression, ")")) {
    return invalid();
  }
  absl::string_view inner = expression.substr(5, expression.size() - 6);
  std::vector<absl::string_view> parts = absl::StrSplit(inner, ' ');
  int64_t value = 0;
  if (parts.size() != 2 || !absl::SimpleAtoi(parts[0], &value) || value < 1 ||
      parts[0][0] == '+' || value > 1000000) {
    return invalid();
  }
  // AWS: "rate(1 minute)", "rate(5 minutes)"; not "rate(1 minutes)".
  absl::string_view unit = parts[1];
  const bool plural = absl::EndsWith(unit, "s");
  if (plural != (value > 1)) return invalid();
  if (plural) unit.remove_suffix(1);
  if (unit == "minute") return absl::Minutes(value);
  if (unit == "hour") return absl::Hours(value);
  if (unit == "day") return absl::Hours(24 * value);
  return invalid();
}

std::vector<absl::Time> FireTimes(absl::Duration period, absl::Time after,
                                  absl::Time until) {
  std::vector<absl::Time> times;
  if (period <= absl::ZeroDuration() || until <= after) return times;
  const absl::Duration since = after - absl::UnixEpoch();
  absl::Time next = absl::UnixEpoch() + absl::Floor(since, period) + period;
  for (; next <= until && times.size() < 1000; next += period)
    times.push_back(next);
  return times;
}

absl::StatusOr<std::vector<absl::Time>> ScheduleFireTimes(
    absl::string_view expression, absl::Time after, absl::Time until) {
  if (absl::StartsWith(expression, "cron(")) {
    absl::StatusOr<CronSchedule> cron = CronSchedule::Parse(expression);
    if (!cron.ok()) return cron.status();
    std::vector<absl::Time> times;
    for (absl::optional<absl::Time> next = cron->NextAfter(after, until);
         next.has_value() && times.size() < 1000;
         next = cron->NextAfter(*next, until)) {
      times.push_back(*next);
    }
    return times;
  }
  absl::StatusOr<absl::Duration> period = ParseRate(expression);
  if (!period.ok()) return period.status();
  return FireTimes(*period, after, until);
}

absl::Status ValidateSchedule(absl::string_view expression) {
  if (absl::StartsWith(expression, "cron(")) {
    return CronSchedule::Parse(expression).status();
  }
  return ParseRate(expression).status();
}

std::string ScheduledEventId(absl::string_view rule_arn, absl::Time time) {
  const std::string seed =
      absl::StrCat(rule_arn, "@", absl::ToUnixSeconds(time));
  const uint64_t hi = Fnv1a(seed);
  const uint64_t lo = Fnv1a(seed, hi);
  char out[37];
  std::snprintf(out, sizeof(out), "%08x-%04x-%04x-%04x-%012llx",
                static_cast<unsigned>(hi >> 32),
                static_cast<unsigned>((hi >> 16) & 0xffff),
                static_cast<unsigned>(hi & 0xffff),
                static_cast<unsigned>(lo >> 48),
                static_cast<unsigned long long>(lo & 0xffffffffffffull));
  return out;
}

}  // namespace stepflow::eventbus
