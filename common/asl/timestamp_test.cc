#include "common/asl/timestamp.h"

#include "gtest/gtest.h"

namespace stepflow::asl {
namespace {

absl::Time Utc(int y, int mo, int d, int h, int mi, int s) {
  return absl::FromCivil(absl::CivilSecond(y, mo, d, h, mi, s),
                         absl::UTCTimeZone());
}

TEST(TimestampTest, ParsesTheDocumentedForms) {
  EXPECT_EQ(*ParseTimestamp("2016-03-14T01:59:00Z"),
            Utc(2016, 3, 14, 1, 59, 0));
  EXPECT_EQ(*ParseTimestamp("2016-03-14T01:59:00.5Z"),
            Utc(2016, 3, 14, 1, 59, 0) + absl::Milliseconds(500));
  EXPECT_EQ(*ParseTimestamp("2024-12-05T21:29:29.243167252Z"),
            Utc(2024, 12, 5, 21, 29, 29) + absl::Nanoseconds(243167252));
  EXPECT_EQ(*ParseTimestamp("2016-03-14T02:59:00+01:00"),
            Utc(2016, 3, 14, 1, 59, 0));
  EXPECT_EQ(*ParseTimestamp("2016-03-13T21:29:00-04:30"),
            Utc(2016, 3, 14, 1, 59, 0));
  EXPECT_EQ(*ParseTimestamp("2016-03-14T01:59:00-00:00"),
            Utc(2016, 3, 14, 1, 59, 0));
  EXPECT_EQ(*ParseTimestamp("2024-02-29T23:59:59Z"),
            Utc(2024, 2, 29, 23, 59, 59));
  EXPECT_EQ(*ParseTimestamp("2000-02-29T00:00:00Z"), Utc(2000, 2, 29, 0, 0, 0));
  EXPECT_EQ(*ParseTimestamp("0000-01-01T00:00:00Z"), Utc(0, 1, 1, 0, 0, 0));
  EXPECT_EQ(*ParseTimestamp("2016-03-14T01:59:00+18:00"),
            Utc(2016, 3, 14, 1, 59, 0) - absl::Hours(18));
}

TEST(TimestampTest, AcceptsTheFractionsAwsAccepts) {
  // LocalStack's test_wait_timestamppath, recorded against AWS.
  for (const char* fraction :
       {"", ".0", ".00", ".000", ".000000", ".0000000", ".123456789"}) {
    std::string text = std::string("2023-12-11T22:01:34") + fraction + "Z";
    EXPECT_TRUE(IsTimestamp(text)) << text;
  }
}

TEST(TimestampTest, RejectsEverythingElse) {
  for (const char* bad : {
           "",
           "2016-03-14",                       // date only
           "2016-03-14T01:59:00",              // no offset (AWS fails it)
           "2016-03-14T01:59:00.000000",       // no offset (AWS fails it)
           "2016-03-14t01:59:00Z",             // lowercase t
           "2016-03-14T01:59:00z",             // lowercase z
           "2016-03-14 01:59:00Z",             // space separator
           "2023-02-24 12:15:56.832957",       // Python's str(datetime)
           "2016-03-14T01:59Z",                // no seconds
           "2016-03-14T01:59:00.Z",            // empty fraction
           "2016-03-14T01:59:00.1234567890Z",  // ten fraction digits
           "2016-03-14T01:59:00+01",           // short offset
           "2016-03-14T01:59:00+0100",         // offset without colon
           "2016-03-14T01:59:00+18:01",        // beyond +-18:00
           "2016-03-14T01:59:00+01:60",
           "2016-03-14T01:59:00ZZ",  // trailing text
           "2016-03-14T01:59:00Z ",
           " 2016-03-14T01:59:00Z",
           "16-03-14T01:59:00Z",  // two-digit year
           "+2016-03-14T01:59:00Z",
           "2016-3-14T01:59:00Z",
           "2016-00-14T01:59:00Z",  // month 0
           "2016-13-14T01:59:00Z",  // month 13
           "2016-03-00T01:59:00Z",  // day 0
           "2016-04-31T01:59:00Z",  // April 31st
           "2023-02-29T01:59:00Z",  // not a leap year
           "1900-02-29T01:59:00Z",  // century, not a leap year
           "2016-03-14T24:00:00Z",  // hour 24
           "2016-03-14T01:60:00Z",
           "2016-03-14T01:59:60Z",  // leap second
           "2016-03-14T01:59:0aZ",
           "2016-03-14T01:59:00.12a4Z",
       }) {
    EXPECT_FALSE(IsTimestamp(bad)) << bad;
    absl::StatusOr<absl::Time> parsed = ParseTimestamp(bad);
    ASSERT_FALSE(parsed.ok()) << bad;
    EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(parsed.status().message().find(std::string("'") + bad + "'"),
              std::string::npos);
  }
}

TEST(TimestampTest, TryParseLeavesOutputAloneOnFailure) {
  absl::Time out = absl::UnixEpoch();
  EXPECT_FALSE(TryParseTimestamp("nope", &out));
  EXPECT_EQ(out, absl::UnixEpoch());
  EXPECT_TRUE(TryParseTimestamp("1970-01-01T00:00:01Z", &out));
  EXPECT_EQ(out, absl::FromUnixSeconds(1));
  EXPECT_TRUE(TryParseTimestamp("1970-01-01T00:00:01Z", nullptr));
}

TEST(TimestampTest, FormatsLikeTheContextObject) {
  EXPECT_EQ(FormatTimestamp(Utc(2024, 1, 2, 3, 4, 5) + absl::Milliseconds(678)),
            "2024-01-02T03:04:05.678Z");
  EXPECT_EQ(FormatTimestamp(Utc(2024, 1, 2, 3, 4, 5)),
            "2024-01-02T03:04:05.000Z");
  // Sub-millisecond digits are truncated, not rounded.
  EXPECT_EQ(
      FormatTimestamp(Utc(2024, 1, 2, 3, 4, 5) + absl::Microseconds(999999)),
      "2024-01-02T03:04:05.999Z");
  EXPECT_EQ(FormatTimestamp(*ParseTimestamp("2024-01-02T04:04:05.678+01:00")),
            "2024-01-02T03:04:05.678Z");
}

TEST(TimestampTest, RoundTrips) {
  absl::Time t = Utc(2031, 7, 9, 12, 0, 0) + absl::Milliseconds(42);
  EXPECT_EQ(*ParseTimestamp(FormatTimestamp(t)), t);
}

}  // namespace
}  // namespace stepflow::asl
