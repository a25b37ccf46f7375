#include "common/log/log.h"

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <limits>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace stepflow::log {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::MatchesRegex;
using ::testing::SizeIs;

// Captures lines and restores the process-wide settings after each test.
class LogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    SetSinkForTest(
        [this](std::string_view line) { lines_.emplace_back(line); });
  }
  void TearDown() override {
    SetSinkForTest(nullptr);
    SetMinLevel(Level::kInfo);
    SetFormat(Format::kText);
  }

  std::vector<std::string> lines_;
};

TEST_F(LogTest, TextLineHasTimestampLevelComponentMessageAndFields) {
  Info("gateway", "listening",
       {{"port", 7233}, {"host", "0.0.0.0"}, {"tls", false}});
  ASSERT_THAT(lines_, SizeIs(1));
  EXPECT_THAT(
      lines_[0],
      MatchesRegex("[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}"
                   "\\.[0-9]{3}Z INFO gateway: listening port=7233 "
                   "host=0\\.0\\.0\\.0 tls=false"));
}

TEST_F(LogTest, TextQuotesAndEscapesValuesThatNeedIt) {
  std::string line =
      FormatLine(Format::kText, "T", Level::kWarn, "exec", "multi\nline",
                 {{"a", "two words"},
                  {"b", "say \"hi\""},
                  {"c", "k=v"},
                  {"d", ""},
                  {"e", "back\\slash"},
                  {"f", "tab\there"},
                  {"plain", "arn:aws:states:x"}});
  EXPECT_EQ(line,
            "T WARN exec: multi\\nline a=\"two words\" b=\"say \\\"hi\\\"\" "
            "c=\"k=v\" d=\"\" e=\"back\\\\slash\" f=\"tab\\there\" "
            "plain=arn:aws:states:x");
}

TEST_F(LogTest, JsonLineHasTypedFields) {
  SetFormat(Format::kJson);
  std::string owned = "owned string";
  Error("worker", "task \"failed\"",
        {{"count", int64_t{-3}},
         {"big", std::numeric_limits<uint64_t>::max()},
         {"ratio", 0.25},
         {"ok", true},
         {"name", owned},
         {"esc", "a\\b\n\x01"}});
  ASSERT_THAT(lines_, SizeIs(1));
  EXPECT_THAT(lines_[0],
              MatchesRegex("\\{\"ts\":\"[0-9T:.-]+Z\",\"level\":\"error\","
                           "\"component\":\"worker\",.*"));
  EXPECT_THAT(lines_[0],
              HasSubstr("\"msg\":\"task \\\"failed\\\"\",\"count\":-3,"
                        "\"big\":18446744073709551615,\"ratio\":0.25,"
                        "\"ok\":true,\"name\":\"owned string\","
                        "\"esc\":\"a\\\\b\\n\\u0001\"}"));
}

TEST_F(LogTest, JsonWritesNonFiniteDoublesAsStringsAndRepairsUtf8) {
  std::string line =
      FormatLine(Format::kJson, "T", Level::kInfo, "c", "m",
                 {{"nan", std::numeric_limits<double>::quiet_NaN()},
                  {"inf", std::numeric_limits<double>::infinity()},
                  {"utf8", "caf\xc3\xa9"},
                  {"bad",
                   "x\xff"
                   "y"}});
  EXPECT_EQ(
      line,
      "{\"ts\":\"T\",\"level\":\"info\",\"component\":\"c\",\"msg\":\"m\","
      "\"nan\":\"NaN\",\"inf\":\"Infinity\",\"utf8\":\"caf\xc3\xa9\","
      "\"bad\":\"x\\ufffdy\"}");
}

TEST_F(LogTest, StatusAndOtherIntegerTypes) {
  absl::Status status = absl::NotFoundError("no such execution");
  uint32_t u32 = 7;
  long long ll = -9;
  unsigned short us = 3;
  std::string line = FormatLine(Format::kText, "T", Level::kInfo, "c", "m",
                                {{"err", status},
                                 {"ok", absl::OkStatus()},
                                 {"u32", u32},
                                 {"ll", ll},
                                 {"us", us},
                                 {"sv", status.message()}});
  EXPECT_EQ(line,
            "T INFO c: m err=\"NOT_FOUND: no such execution\" ok=OK u32=7 "
            "ll=-9 us=3 sv=\"no such execution\"");
}

TEST_F(LogTest, NullCStringIsLoggedAsNull) {
  const char* nothing = nullptr;
  EXPECT_EQ(
      FormatLine(Format::kText, "T", Level::kInfo, "c", "m", {{"p", nothing}}),
      "T INFO c: m p=(null)");
}

TEST_F(LogTest, MinLevelFiltersLowerLevels) {
  EXPECT_EQ(MinLevel(), Level::kInfo);
  Debug("c", "hidden");
  Info("c", "shown-info");
  SetMinLevel(Level::kError);
  EXPECT_FALSE(Enabled(Level::kWarn));
  Warn("c", "hidden-warn");
  Error("c", "shown-error");
  SetMinLevel(Level::kDebug);
  Debug("c", "shown-debug");
  ASSERT_THAT(lines_, SizeIs(3));
  EXPECT_THAT(lines_[0], HasSubstr(" INFO c: shown-info"));
  EXPECT_THAT(lines_[1], HasSubstr(" ERROR c: shown-error"));
  EXPECT_THAT(lines_[2], HasSubstr(" DEBUG c: shown-debug"));
}

TEST_F(LogTest, ConcurrentWritersProduceWholeLines) {
  constexpr int kThreads = 4;
  constexpr int kPerThread = 200;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([t] {
      for (int i = 0; i < kPerThread; ++i) {
        Info("c", "tick", {{"thread", t}, {"i", i}});
      }
    });
  }
  for (auto& thread : threads) thread.join();
  ASSERT_THAT(lines_, SizeIs(kThreads * kPerThread));
  for (const std::string& line : lines_) {
    EXPECT_THAT(line, MatchesRegex(".*Z INFO c: tick thread=[0-9] i=[0-9]+"));
  }
}

// The default sink: one newline-terminated line per call on file descriptor 2.
TEST(StderrTest, WritesNewlineTerminatedLinesToStderr) {
  std::FILE* tmp = std::tmpfile();
  ASSERT_NE(tmp, nullptr);
  int saved = ::dup(STDERR_FILENO);
  ASSERT_GE(saved, 0);
  ASSERT_GE(::dup2(::fileno(tmp), STDERR_FILENO), 0);
  Info("gateway", "first", {{"k", 1}});
  Warn("gateway", "second");
  ::dup2(saved, STDERR_FILENO);
  ::close(saved);

  std::rewind(tmp);
  std::string contents;
  char buf[256];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), tmp)) > 0)
    contents.append(buf, n);
  std::fclose(tmp);
  EXPECT_THAT(contents, MatchesRegex("[^\n]*Z INFO gateway: first k=1\n"
                                     "[^\n]*Z WARN gateway: second\n"));
}

TEST(ParseTest, ParsesLevelsAndFormats) {
  EXPECT_EQ(*ParseLevel("debug"), Level::kDebug);
  EXPECT_EQ(*ParseLevel("INFO"), Level::kInfo);
  EXPECT_EQ(*ParseLevel("warn"), Level::kWarn);
  EXPECT_EQ(*ParseLevel("Warning"), Level::kWarn);
  EXPECT_EQ(*ParseLevel("error"), Level::kError);
  EXPECT_EQ(ParseLevel("verbose").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(*ParseFormat("json"), Format::kJson);
  EXPECT_EQ(*ParseFormat("Text"), Format::kText);
  EXPECT_FALSE(ParseFormat("xml").ok());
  EXPECT_THAT((std::vector<std::string_view>{
                  LevelName(Level::kDebug), LevelName(Level::kInfo),
                  LevelName(Level::kWarn), LevelName(Level::kError)}),
              ElementsAre("debug", "info", "warn", "error"));
}

}  // namespace
}  // namespace stepflow::log
