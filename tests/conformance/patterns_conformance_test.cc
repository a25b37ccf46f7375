// Runs the EventBridge pattern cases in patterns/*.json through
// patterns::TestEventPattern (the operation the gateway serves). A case has
// "pattern" (JSON) or "pattern_text", an event ("event", completed with the
// envelope fields AWS requires; "raw_event" or "raw_event_text" as is), and
// the expected "result" (true/false) or "error" message.
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "common/json/json.h"
#include "common/patterns/pattern.h"
#include "gtest/gtest.h"

namespace stepflow::patterns {
namespace {

std::string ReadFile(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

std::string EventText(const json::Value& test_case) {
  if (test_case.HasMember("raw_event_text")) return test_case["raw_event_text"].GetString();
  if (test_case.HasMember("raw_event")) return json::Serialize(test_case["raw_event"]);
  json::Document event;
  event.CopyFrom(test_case["event"], event.GetAllocator());
  const char* envelope[][2] = {{"id", "1"},          {"source", "test-source"},
                               {"detail-type", "t"}, {"account", "123456789012"},
                               {"region", "us-east-2"}, {"time", "2022-07-13T13:48:01Z"}};
  for (const auto& [key, value] : envelope) {
    if (!event.HasMember(key)) {
      event.AddMember(json::Value(key, event.GetAllocator()), json::Value(value, event.GetAllocator()),
                      event.GetAllocator());
    }
  }
  return json::Serialize(event);
}

TEST(PatternsConformanceTest, AllCases) {
  const char* source_dir = std::getenv("STEPFLOW_SOURCE_DIR");
  ASSERT_NE(source_dir, nullptr) << "STEPFLOW_SOURCE_DIR is not set";
  int cases = 0;
  for (const auto& entry :
       std::filesystem::directory_iterator(std::filesystem::path(source_dir) / "tests/conformance/patterns")) {
    if (entry.path().extension() != ".json") continue;
    absl::StatusOr<json::Document> table = json::Parse(ReadFile(entry.path()));
    ASSERT_TRUE(table.ok()) << entry.path() << ": " << table.status();
    for (const json::Value& test_case : table->GetArray()) {
      SCOPED_TRACE(test_case["name"].GetString());
      ++cases;
      std::string pattern = test_case.HasMember("pattern_text") ? test_case["pattern_text"].GetString()
                                                                : json::Serialize(test_case["pattern"]);
      absl::StatusOr<bool> result = TestEventPattern(pattern, EventText(test_case));
      if (test_case.HasMember("error")) {
        EXPECT_FALSE(result.ok());
        EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument);
        EXPECT_EQ(result.status().message(), test_case["error"].GetString());
      } else {
        ASSERT_TRUE(result.ok()) << result.status();
        EXPECT_EQ(*result, test_case["result"].GetBool());
      }
    }
  }
  EXPECT_GT(cases, 50);
}

}  // namespace
}  // namespace stepflow::patterns
