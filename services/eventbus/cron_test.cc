#include "services/eventbus/cron.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/eventbus/schedule.h"

namespace stepflow::eventbus {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

absl::Time At(const std::string& text) {
  absl::Time time;
  std::string error;
  EXPECT_TRUE(absl::ParseTime("%Y-%m-%d %H:%M", text, absl::UTCTimeZone(),
                              &time, &error))
      << text << ": " << error;
  return time;
}

// The next firing of `expression` after `after`, written as At() reads it;
// "never" when there is none, the error when it does not parse.
std::string Next(const std::string& expression, const std::string& after) {
  absl::StatusOr<CronSchedule> cron = CronSchedule::Parse(expression);
  if (!cron.ok()) return std::string(cron.status().message());
  absl::optional<absl::Time> next = cron->NextAfter(At(after));
  if (!next.has_value()) return "never";
  return absl::FormatTime("%Y-%m-%d %H:%M", *next, absl::UTCTimeZone());
}

TEST(CronNextTest, EveryDayAcrossMonthEndsAndLeapYears) {
  EXPECT_EQ(Next("cron(0 12 * * ? *)", "2024-02-28 12:00"), "2024-02-29 12:00");
  EXPECT_EQ(Next("cron(0 12 * * ? *)", "2023-02-28 12:00"), "2023-03-01 12:00");
  EXPECT_EQ(Next("cron(0 12 * * ? *)", "2023-12-31 12:00"), "2024-01-01 12:00");
  // Strictly after: the firing itself is not "next".
  EXPECT_EQ(Next("cron(0 12 * * ? *)", "2024-03-01 11:59"), "2024-03-01 12:00");
  EXPECT_EQ(Next("cron(0 12 * * ? *)", "2024-03-01 12:00"), "2024-03-02 12:00");
  EXPECT_EQ(Next("cron(0 0 29 2 ? *)", "2024-03-01 00:00"), "2028-02-29 00:00");
  EXPECT_EQ(Next("cron(0 0 31 * ? *)", "2026-04-01 00:00"), "2026-05-31 00:00");
}

TEST(CronNextTest, IncrementsListsRangesAndWraps) {
  EXPECT_EQ(Next("cron(0/15 * * * ? *)", "2026-11-26 10:07"),
            "2026-11-26 10:15");
  EXPECT_EQ(Next("cron(*/15 * * * ? *)", "2026-11-26 10:45"),
            "2026-11-26 11:00");
  EXPECT_EQ(Next("cron(1/10 * * * ? *)", "2026-11-26 10:01"),
            "2026-11-26 10:11");
  EXPECT_EQ(Next("cron(5/20 * * * ? *)", "2026-11-26 10:46"),
            "2026-11-26 11:05");
  EXPECT_EQ(Next("cron(10-20/5 8 * * ? *)", "2026-11-26 08:16"),
            "2026-11-26 08:20");
  EXPECT_EQ(Next("cron(0 10,15 * * ? *)", "2026-11-26 10:00"),
            "2026-11-26 15:00");
  EXPECT_EQ(Next("cron(0 22-2 * * ? *)", "2026-11-26 03:00"),
            "2026-11-26 22:00");
  EXPECT_EQ(Next("cron(0 22-2 * * ? *)", "2026-11-26 23:00"),
            "2026-11-27 00:00");
  EXPECT_EQ(Next("cron(0 0 1/10 * ? *)", "2026-10-21 00:00"),
            "2026-10-31 00:00");
  EXPECT_EQ(Next("cron(0 0 1 NOV-FEB ? *)", "2026-03-01 00:00"),
            "2026-11-01 00:00");
}

TEST(CronNextTest, NamesOfMonthsAndDays) {
  // 2026-11-26 is a Thursday; 2027-01-01 a Friday.
  EXPECT_EQ(Next("cron(0 8 ? JAN,MAR MON-FRI 2027)", "2026-11-26 00:00"),
            "2027-01-01 08:00");
  EXPECT_EQ(Next("cron(0 8 ? * mon *)", "2026-11-26 00:00"),
            "2026-11-30 08:00");
  EXPECT_EQ(Next("cron(0 8 ? * 2 *)", "2026-11-26 00:00"), "2026-11-30 08:00");
  EXPECT_EQ(Next("cron(0 8 ? * 1 *)", "2026-11-26 00:00"), "2026-11-29 08:00");
  EXPECT_EQ(Next("cron(0 8 ? * FRI-MON *)", "2026-11-26 00:00"),
            "2026-11-27 08:00");
  EXPECT_EQ(Next("cron(0 8 ? * FRI-MON *)", "2026-11-30 08:00"),
            "2026-12-04 08:00");
}

TEST(CronNextTest, LastDays) {
  EXPECT_EQ(Next("cron(0 0 L * ? *)", "2024-01-31 00:00"), "2024-02-29 00:00");
  EXPECT_EQ(Next("cron(0 0 L * ? *)", "2023-02-01 00:00"), "2023-02-28 00:00");
  EXPECT_EQ(Next("cron(0 0 L * ? *)", "2024-04-15 00:00"), "2024-04-30 00:00");
  // Day-of-week L: Saturday. 6L: the month's last Friday.
  EXPECT_EQ(Next("cron(0 0 ? * L *)", "2026-11-26 00:00"), "2026-11-28 00:00");
  EXPECT_EQ(Next("cron(15 10 ? * 6L *)", "2026-11-26 00:00"),
            "2026-11-27 10:15");
  EXPECT_EQ(Next("cron(15 10 ? * 6L *)", "2026-11-27 10:15"),
            "2026-12-25 10:15");
  EXPECT_EQ(Next("cron(0 0 ? * FRIL *)", "2026-11-26 00:00"),
            "2026-11-27 00:00");
  // February 2027 has four Sundays, the last on the 28th.
  EXPECT_EQ(Next("cron(0 0 ? FEB 1L *)", "2027-01-01 00:00"),
            "2027-02-28 00:00");
}

TEST(CronNextTest, NearestWeekdays) {
  // 2026-11-15 is a Sunday: the Monday after.
  EXPECT_EQ(Next("cron(0 9 15W * ? *)", "2026-11-01 00:00"),
            "2026-11-16 09:00");
  // 2026-08-15 is a Saturday: the Friday before.
  EXPECT_EQ(Next("cron(0 9 15W * ? *)", "2026-08-01 00:00"),
            "2026-08-14 09:00");
  // 2026-08-01 is a Saturday: not July 31 but Monday the 3rd.
  EXPECT_EQ(Next("cron(0 0 1W * ? *)", "2026-07-31 00:00"), "2026-08-03 00:00");
  // 2027-01-31 is a Sunday: not February 1 but Friday the 29th.
  EXPECT_EQ(Next("cron(0 0 31W * ? *)", "2027-01-02 00:00"),
            "2027-01-29 00:00");
  EXPECT_EQ(Next("cron(0 0 LW * ? *)", "2027-01-02 00:00"), "2027-01-29 00:00");
  // A weekday stays: 2026-11-26 is a Thursday.
  EXPECT_EQ(Next("cron(0 0 26W * ? *)", "2026-11-01 00:00"),
            "2026-11-26 00:00");
  // No 31st in November: December's.
  EXPECT_EQ(Next("cron(0 0 31W * ? *)", "2026-11-01 00:00"),
            "2026-12-31 00:00");
}

TEST(CronNextTest, NthDayOfWeek) {
  // Tuesdays of November 2026: 3, 10, 17, 24; December: 1, 8, ...
  EXPECT_EQ(Next("cron(0 9 ? * 3#2 *)", "2026-11-01 00:00"),
            "2026-11-10 09:00");
  EXPECT_EQ(Next("cron(0 9 ? * 3#2 *)", "2026-11-10 09:00"),
            "2026-12-08 09:00");
  EXPECT_EQ(Next("cron(0 9 ? * TUE#4 *)", "2026-11-01 00:00"),
            "2026-11-24 09:00");
  // A fifth Tuesday: none in November 2026, December 29 has one.
  EXPECT_EQ(Next("cron(0 9 ? * 3#5 *)", "2026-11-01 00:00"),
            "2026-12-29 09:00");
}

TEST(CronNextTest, YearBoundsAndNeverAgain) {
  EXPECT_EQ(Next("cron(0 0 1 1 ? 2199)", "2198-06-01 00:00"),
            "2199-01-01 00:00");
  EXPECT_EQ(Next("cron(0 0 1 1 ? 2199)", "2199-01-01 00:00"), "never");
  EXPECT_EQ(Next("cron(59 23 31 12 ? *)", "2199-12-31 23:59"), "never");
  EXPECT_EQ(Next("cron(* * * * ? 1970)", "2026-11-26 00:00"), "never");
  EXPECT_EQ(Next("cron(* * * * ? 1970)", "1960-05-05 00:00"),
            "1970-01-01 00:00");
  EXPECT_EQ(Next("cron(0 0 30 2 ? *)", "2026-11-26 00:00"), "never");
  EXPECT_EQ(Next("cron(0 0 ? 2 1#5 2026-2027)", "2026-01-01 00:00"), "never");
  EXPECT_EQ(Next("cron(0 0 1 1 ? 2030-2032/2)", "2030-01-01 00:00"),
            "2032-01-01 00:00");
  EXPECT_EQ(Next("cron(0 0 1 1 ? 2030,2035)", "2030-01-01 00:00"),
            "2035-01-01 00:00");
}

TEST(CronNextTest, BoundedSearch) {
  absl::StatusOr<CronSchedule> cron = CronSchedule::Parse("cron(0 0 1 1 ? *)");
  ASSERT_TRUE(cron.ok());
  EXPECT_EQ(cron->NextAfter(At("2026-11-26 00:00"), At("2026-12-31 23:59")),
            absl::nullopt);
  EXPECT_EQ(cron->NextAfter(At("2026-11-26 00:00"), At("2027-01-01 00:00")),
            At("2027-01-01 00:00"));
  EXPECT_EQ(cron->NextAfter(At("2026-11-26 00:00")), At("2027-01-01 00:00"));
}

TEST(CronParseTest, RefusesInvalidExpressionsSayingWhy) {
  const std::pair<const char*, const char*> cases[] = {
      {"cron(0 12 * * * *)", "exactly one of Day-of-month and Day-of-week"},
      {"cron(0 12 ? * ? *)", "exactly one of Day-of-month and Day-of-week"},
      {"cron(0 12 1 * MON *)", "exactly one of Day-of-month and Day-of-week"},
      {"cron(60 * * * ? *)", "Minutes: 60 is not in 0-59"},
      {"cron(0 24 * * ? *)", "Hours: 24 is not in 0-23"},
      {"cron(0 0 32 * ? *)", "Day-of-month: 32 is not in 1-31"},
      {"cron(0 0 0 * ? *)", "Day-of-month: 0 is not in 1-31"},
      {"cron(0 0 * 13 ? *)", "Month: 13 is not in 1-12"},
      {"cron(0 0 * JANUARY ? *)", "Month: 'JANUARY' is not a value"},
      {"cron(0 0 ? * 8 *)", "Day-of-week: 8 is not in 1-7"},
      {"cron(0 0 ? * 0 *)", "Day-of-week: 0 is not in 1-7"},
      {"cron(0 0 * * ? 1969)", "Year: 1969 is not in 1970-2199"},
      {"cron(0 0 * * ? 2200)", "Year: 2200 is not in 1970-2199"},
      {"cron(0 0 * * ? 2030-2020)", "Year: range 2030-2020 is backwards"},
      {"cron(0 0 * * ?)", "6 fields"},
      {"cron(0 0 * * ? * *)", "6 fields"},
      {"cron(0  0 * * ? *)", "6 fields"},
      {"cron(0 0 * * ? *", "not a cron(...) expression"},
      {"cron(0 0 ? * 3#6 *)", "Day-of-week: n#k needs k in 1-5"},
      {"cron(0 0 ? * 3#1,6#3 *)", "Day-of-week: n#k needs k in 1-5"},
      {"cron(0 0 ? * */2 *)", "Day-of-week: '/' is not allowed"},
      {"cron(0 0 L,15 * ? *)", "Day-of-month: L and W stand alone"},
      {"cron(0 0 1-5W * ? *)", "Day-of-month: '1-5' is not a value"},
      {"cron(*/0 * * * ? *)", "Minutes: '0' is not an increment"},
      {"cron(a * * * ? *)", "Minutes: 'a' is not a value"},
      {"cron(-5 * * * ? *)", "Minutes: '' is not a value"},
      {"cron(5, * * * ? *)", "Minutes: '' is not a value"},
      {"cron(+5 * * * ? *)", "Minutes: '+5' is not a value"},
  };
  for (const auto& [expression, why] : cases) {
    absl::StatusOr<CronSchedule> cron = CronSchedule::Parse(expression);
    ASSERT_FALSE(cron.ok()) << expression;
    EXPECT_EQ(cron.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(cron.status().message(), HasSubstr(why)) << expression;
    EXPECT_FALSE(ValidateSchedule(expression).ok()) << expression;
  }
}

TEST(CronParseTest, AcceptsAwsExamples) {
  for (const char* good :
       {"cron(0 10 * * ? *)", "cron(15 12 * * ? *)", "cron(0 18 ? * MON-FRI *)",
        "cron(0 8 1 * ? *)", "cron(0/15 * * * ? *)",
        "cron(0/10 * ? * MON-FRI *)", "cron(0/5 8-17 ? * MON-FRI *)",
        "cron(0 9 ? * 2#1 *)", "cron(0 0 L * ? *)", "cron(0 0 LW * ? *)",
        "cron(0 0 ? * 6L *)"}) {
    EXPECT_TRUE(CronSchedule::Parse(good).ok()) << good;
    EXPECT_TRUE(ValidateSchedule(good).ok()) << good;
  }
}

TEST(ScheduleFireTimesTest, CronAndRate) {
  absl::StatusOr<std::vector<absl::Time>> cron = ScheduleFireTimes(
      "cron(0/20 * * * ? *)", At("2026-11-26 10:00"), At("2026-11-26 11:00"));
  ASSERT_TRUE(cron.ok()) << cron.status();
  EXPECT_THAT(*cron, ElementsAre(At("2026-11-26 10:20"), At("2026-11-26 10:40"),
                                 At("2026-11-26 11:00")));
  absl::StatusOr<std::vector<absl::Time>> rate = ScheduleFireTimes(
      "rate(30 minutes)", At("2026-11-26 10:00"), At("2026-11-26 11:00"));
  ASSERT_TRUE(rate.ok()) << rate.status();
  EXPECT_THAT(*rate,
              ElementsAre(At("2026-11-26 10:30"), At("2026-11-26 11:00")));
  EXPECT_FALSE(ScheduleFireTimes("cron(0 0 * * * *)", At("2026-11-26 10:00"),
                                 At("2026-11-26 11:00"))
                   .ok());
  EXPECT_FALSE(ValidateSchedule("every day").ok());
}

}  // namespace
}  // namespace stepflow::eventbus
