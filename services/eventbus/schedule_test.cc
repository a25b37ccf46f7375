#include "services/eventbus/schedule.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace stepflow::eventbus {
namespace {

using ::testing::ElementsAre;

TEST(ParseRateTest, AcceptsAwsRates) {
  EXPECT_EQ(*ParseRate("rate(1 minute)"), absl::Minutes(1));
  EXPECT_EQ(*ParseRate("rate(5 minutes)"), absl::Minutes(5));
  EXPECT_EQ(*ParseRate("rate(1 hour)"), absl::Hours(1));
  EXPECT_EQ(*ParseRate("rate(2 days)"), absl::Hours(48));
}

TEST(ParseRateTest, RejectsOthers) {
  for (const char* bad :
       {"rate(1 minutes)", "rate(5 minute)", "rate(0 minutes)",
        "rate(-1 minute)", "rate(1 second)", "rate(minute)", "rate(1  minute)",
        "cron(0 12 * * ? *)", "rate(1 minute", "rate(+2 minutes)"}) {
    EXPECT_FALSE(ParseRate(bad).ok()) << bad;
  }
}

TEST(FireTimesTest, MultiplesOfThePeriodInTheWindow) {
  const absl::Time base = absl::FromUnixSeconds(1700000040);  // a whole minute
  EXPECT_THAT(
      FireTimes(absl::Minutes(1), base - absl::Seconds(1),
                base + absl::Seconds(150)),
      ElementsAre(base, base + absl::Minutes(1), base + absl::Minutes(2)));
  EXPECT_THAT(FireTimes(absl::Minutes(1), base, base + absl::Seconds(59)),
              ElementsAre());
  EXPECT_THAT(FireTimes(absl::Minutes(1), base + absl::Seconds(1), base),
              ElementsAre());
}

TEST(ScheduledEventIdTest, StableAndDistinct) {
  const absl::Time t = absl::FromUnixSeconds(1700000040);
  EXPECT_EQ(ScheduledEventId("arn:r", t), ScheduledEventId("arn:r", t));
  EXPECT_NE(ScheduledEventId("arn:r", t),
            ScheduledEventId("arn:r", t + absl::Minutes(1)));
  EXPECT_NE(ScheduledEventId("arn:r", t), ScheduledEventId("arn:s", t));
  EXPECT_EQ(ScheduledEventId("arn:r", t).size(), 36u);
}

}  // namespace
}  // namespace stepflow::eventbus
