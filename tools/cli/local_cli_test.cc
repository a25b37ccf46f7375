// `stepflow local run` and `stepflow validate` end to end: the real binary
// (STEPFLOW_CLI_BIN) as a subprocess, checking its stdout JSON, stderr and
// exit status, with shell task handlers.
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/json/json.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/worker/command_runner.h"

namespace stepflow::cli {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::StartsWith;

constexpr char kPass[] = R"({"StartAt": "A", "States": {
    "A": {"Type": "Pass", "Parameters": {"greeting.$": "$.name"}, "End": true}}})";

constexpr char kTask[] = R"({"StartAt": "Work", "States": {
    "Work": {"Type": "Task", "Resource": "arn:aws:states:us-east-1:123456789012:activity:work",
             "End": true}}})";

struct Result {
  int exit_code = -1;
  std::string out;
  std::string err;
};

class LocalCliTest : public ::testing::Test {
 protected:
  // Writes `contents` to a new file in the test's temporary directory.
  std::string WriteFile(const std::string& name, const std::string& contents) {
    std::string path =
        absl::StrCat(::testing::TempDir(), "/local_cli_test_", name);
    std::ofstream(path) << contents;
    return path;
  }

  Result Stepflow(std::vector<std::string> args,
                  const std::string& stdin_text = "") {
    args.insert(args.begin(), STEPFLOW_CLI_BIN);
    worker::CommandRunnerOptions options;
    options.stderr_tail_bytes = 1 << 16;
    worker::CommandRunner runner(args, options);
    absl::StatusOr<worker::CommandResult> run = runner.Run(stdin_text);
    EXPECT_TRUE(run.ok()) << run.status();
    if (!run.ok()) return {};
    EXPECT_FALSE(run->signaled);
    return {run->exit_code, run->stdout_data, run->stderr_tail};
  }

  // stdout as exactly one JSON object.
  json::Document Json(const Result& result) {
    absl::StatusOr<json::Document> doc = json::Parse(result.out);
    EXPECT_TRUE(doc.ok()) << doc.status() << "\nstdout: " << result.out;
    if (!doc.ok()) return json::Document();
    EXPECT_TRUE(doc->IsObject()) << result.out;
    return *std::move(doc);
  }

  static std::string Str(const json::Value& object, const char* key) {
    auto member = object.FindMember(key);
    if (member == object.MemberEnd() || !member->value.IsString())
      return "<absent>";
    return member->value.GetString();
  }
};

TEST_F(LocalCliTest, HelpListsBothCommands) {
  Result top = Stepflow({"--help"});
  EXPECT_EQ(top.exit_code, 0);
  EXPECT_THAT(top.out, HasSubstr("\n  local "));
  EXPECT_THAT(top.out, HasSubstr("\n  validate "));

  Result group = Stepflow({"local", "--help"});
  EXPECT_EQ(group.exit_code, 0);
  EXPECT_THAT(group.out, HasSubstr("\n  run "));

  Result run = Stepflow({"local", "run", "--help"});
  EXPECT_EQ(run.exit_code, 0);
  EXPECT_THAT(run.out,
              StartsWith("Usage: stepflow local run --definition FILE|-"));
  for (const char* flag :
       {"--definition", "--input", "--input-file", "--type", "--name",
        "--history", "--task-handler", "--real-time", "Exit status"}) {
    EXPECT_THAT(run.out, HasSubstr(flag));
  }

  Result validate = Stepflow({"validate", "--help"});
  EXPECT_EQ(validate.exit_code, 0);
  EXPECT_THAT(validate.out, StartsWith("Usage: stepflow validate FILE|-\n"));
  EXPECT_THAT(validate.out, HasSubstr("Exit status"));
}

TEST_F(LocalCliTest, RunSucceedsWithOutputAsAJsonValue) {
  std::string definition = WriteFile("pass.json", kPass);
  Result result = Stepflow({"local", "run", "--definition", definition,
                            "--input", R"({"name": "Ada"})"});
  EXPECT_EQ(result.exit_code, 0) << result.err;
  EXPECT_THAT(result.err, IsEmpty());
  json::Document doc = Json(result);
  EXPECT_EQ(Str(doc, "status"), "SUCCEEDED");
  ASSERT_TRUE(doc.HasMember("output"));
  EXPECT_EQ(json::Serialize(doc["output"]), R"({"greeting":"Ada"})");
  EXPECT_FALSE(doc.HasMember("error"));
  EXPECT_FALSE(doc.HasMember("cause"));
  EXPECT_FALSE(doc.HasMember("history"));
}

TEST_F(LocalCliTest, HistoryIsRenderedLikeExecutionsHistory) {
  std::string definition = WriteFile("pass-history.json", kPass);
  Result result = Stepflow({"local", "run", "--definition", definition,
                            "--history", "--input", R"({"name": "Ada"})"});
  EXPECT_EQ(result.exit_code, 0) << result.err;
  json::Document doc = Json(result);
  ASSERT_TRUE(doc.HasMember("history") && doc["history"].IsArray());
  const json::Value& history = doc["history"];
  std::vector<std::string> types;
  for (const auto& event : history.GetArray())
    types.push_back(Str(event, "type"));
  EXPECT_THAT(types, ElementsAre("ExecutionStarted", "PassStateEntered",
                                 "PassStateExited", "ExecutionSucceeded"));
  const json::Value& first = history[0];
  EXPECT_EQ(first["id"].GetInt(), 1);  // a number, as in AWS
  EXPECT_TRUE(first["timestamp"].IsString());
  EXPECT_FALSE(first.HasMember("previousEventId"));
  EXPECT_EQ(Str(first["executionStartedEventDetails"], "input"),
            R"({"name": "Ada"})");
  const json::Value& entered = history[1];
  EXPECT_EQ(Str(entered["stateEnteredEventDetails"], "name"), "A");
  EXPECT_EQ(history[3]["previousEventId"].GetInt(), 3);
}

TEST_F(LocalCliTest, ShellTaskHandler) {
  std::string definition = WriteFile("task.json", kTask);
  Result cat = Stepflow({"local", "run", "--definition", definition, "--input",
                         R"({"n": 1})", "--task-handler", "cat"});
  EXPECT_EQ(cat.exit_code, 0) << cat.err;
  json::Document doc = Json(cat);
  EXPECT_EQ(Str(doc, "status"), "SUCCEEDED");
  EXPECT_EQ(json::Serialize(doc["output"]), R"({"n":1})");

  Result env =
      Stepflow({"local", "run", "--definition", definition, "--task-handler",
                R"(printf '{"arn": "%s"}' "$STEPFLOW_ACTIVITY_ARN")"});
  EXPECT_EQ(env.exit_code, 0) << env.err;
  doc = Json(env);
  EXPECT_EQ(Str(doc["output"], "arn"),
            "arn:aws:states:us-east-1:123456789012:activity:work");
}

TEST_F(LocalCliTest, FailingHandlerExitsOneWithItsErrorAndCause) {
  std::string definition = WriteFile("task-fail.json", kTask);
  Result result = Stepflow(
      {"local", "run", "--definition", definition, "--task-handler",
       R"(echo '{"error": "CardDeclined", "cause": "insufficient funds"}'; exit 1)"});
  EXPECT_EQ(result.exit_code, 1);
  json::Document doc = Json(result);
  EXPECT_EQ(Str(doc, "status"), "FAILED");
  EXPECT_EQ(Str(doc, "error"), "CardDeclined");
  EXPECT_EQ(Str(doc, "cause"), "insufficient funds");
  EXPECT_FALSE(doc.HasMember("output"));

  Result plain = Stepflow({"local", "run", "--definition", definition,
                           "--task-handler", "echo broken >&2; exit 3"});
  EXPECT_EQ(plain.exit_code, 1);
  doc = Json(plain);
  EXPECT_EQ(Str(doc, "error"), "ProcessExited");
  EXPECT_THAT(Str(doc, "cause"), HasSubstr("exit code 3"));
  EXPECT_THAT(Str(doc, "cause"), HasSubstr("broken"));
}

TEST_F(LocalCliTest, WithoutATaskHandlerTasksFail) {
  std::string definition = WriteFile("task-none.json", kTask);
  Result result = Stepflow({"local", "run", "--definition", definition});
  EXPECT_EQ(result.exit_code, 1);
  json::Document doc = Json(result);
  EXPECT_EQ(Str(doc, "status"), "FAILED");
  EXPECT_EQ(Str(doc, "error"), "States.TaskFailed");
  EXPECT_EQ(Str(doc, "cause"), "no --task-handler was given");
}

TEST_F(LocalCliTest, RetryAndWaitTakeNoRealTime) {
  std::string definition =
      WriteFile("retry.json", R"({"StartAt": "Nap", "States": {
      "Nap": {"Type": "Wait", "Seconds": 3600, "Next": "Work"},
      "Work": {"Type": "Task", "Resource": "arn:aws:states:us-east-1:123456789012:activity:w",
               "Retry": [{"ErrorEquals": ["States.ALL"], "IntervalSeconds": 600,
                          "MaxAttempts": 2}],
               "End": true}}})");
  // Fails twice (counting in a file), then echoes its input.
  std::string counter = WriteFile("retry-counter", "");
  std::string handler = absl::StrCat("echo x >> ", counter, "; [ $(wc -l < ",
                                     counter, ") -ge 3 ] && cat || exit 1");
  const absl::Time start = absl::Now();
  Result result = Stepflow({"local", "run", "--definition", definition,
                            "--task-handler", handler, "--history"});
  EXPECT_LT(absl::Now() - start, absl::Seconds(30));
  EXPECT_EQ(result.exit_code, 0) << result.out << result.err;
  json::Document doc = Json(result);
  EXPECT_EQ(Str(doc, "status"), "SUCCEEDED");
  int failed = 0;
  for (const auto& event : doc["history"].GetArray())
    failed += Str(event, "type") == "ActivityFailed";
  EXPECT_EQ(failed, 2);
}

TEST_F(LocalCliTest, ExpressTimesOut) {
  std::string definition =
      WriteFile("express.json", R"({"StartAt": "Nap", "States": {
      "Nap": {"Type": "Wait", "Seconds": 600, "End": true}}})");
  Result result = Stepflow(
      {"local", "run", "--definition", definition, "--type", "EXPRESS"});
  EXPECT_EQ(result.exit_code, 1);
  json::Document doc = Json(result);
  EXPECT_EQ(Str(doc, "status"), "TIMED_OUT");
  EXPECT_EQ(Str(doc, "error"), "States.Timeout");

  Result standard = Stepflow({"local", "run", "--definition", definition});
  EXPECT_EQ(standard.exit_code, 0);
}

TEST_F(LocalCliTest, DefinitionFromStdinAndInputFromFile) {
  std::string input = WriteFile("input.json", R"({"name": "Grace"})");
  Result result = Stepflow({"local", "run", "--definition", "-", "--input-file",
                            input, "--name", "run-7"},
                           kPass);
  EXPECT_EQ(result.exit_code, 0) << result.err;
  EXPECT_EQ(json::Serialize(Json(result)["output"]), R"({"greeting":"Grace"})");
}

TEST_F(LocalCliTest, InvalidDefinitionExitsTwoWithDiagnostics) {
  std::string definition =
      WriteFile("invalid.json", R"({"StartAt": "Nope", "States": {
      "A": {"Type": "Pass", "Next": "Missing"}}})");
  Result result = Stepflow({"local", "run", "--definition", definition});
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_THAT(result.out, IsEmpty());
  std::vector<std::string> lines =
      absl::StrSplit(result.err, '\n', absl::SkipEmpty());
  ASSERT_GE(lines.size(), 2u) << result.err;
  for (const std::string& line : lines) {
    EXPECT_THAT(line, ::testing::MatchesRegex("[A-Z_]+ at /[^:]*: .+")) << line;
  }
  EXPECT_THAT(result.err, HasSubstr(" at /StartAt: "));
}

TEST_F(LocalCliTest, BadUsageExitsTwo) {
  std::string definition = WriteFile("usage.json", kPass);
  struct Case {
    std::vector<std::string> args;
    std::string message;
  };
  for (const Case& c : std::vector<Case>{
           {{"local", "run"}, "--definition is required"},
           {{"local", "run", "--definition", definition, "--type", "FAST"},
            "--type"},
           {{"local", "run", "--definition", definition, "--input", "{oops"},
            "InvalidExecutionInput"},
           {{"local", "run", "--definition", definition, "--name", "a b"},
            "InvalidName"},
           {{"local", "run", "--definition", "/nonexistent/def.json"},
            "cannot read"},
           {{"local", "run", "--definition", definition, "--input", "{}",
             "--input-file", "x"},
            "at most one"},
           {{"local", "run", "--definition", definition, "--output", "text"},
            "JSON only"},
           {{"validate"}, "missing argument FILE|-"},
           {{"validate", "/nonexistent/def.json"}, "cannot read"},
       }) {
    Result result = Stepflow(c.args);
    EXPECT_EQ(result.exit_code, 2) << c.args.back();
    EXPECT_THAT(result.out, IsEmpty()) << c.args.back();
    EXPECT_THAT(result.err, HasSubstr(c.message)) << c.args.back();
    EXPECT_THAT(result.err, HasSubstr("Usage: stepflow ")) << c.args.back();
  }
}

TEST_F(LocalCliTest, ValidateOk) {
  std::string definition = WriteFile("valid.json", kTask);
  Result result = Stepflow({"validate", definition});
  EXPECT_EQ(result.exit_code, 0) << result.err;
  EXPECT_EQ(json::Serialize(Json(result)),
            R"({"result":"OK","diagnostics":[],"truncated":false})");
}

TEST_F(LocalCliTest, ValidateFail) {
  Result result = Stepflow({"validate", "-"}, R"({"StartAt": "A", "States": {
      "A": {"Type": "Wait", "End": true}}})");
  EXPECT_EQ(result.exit_code, 1);
  json::Document doc = Json(result);
  EXPECT_EQ(Str(doc, "result"), "FAIL");
  EXPECT_FALSE(doc["truncated"].GetBool());
  ASSERT_TRUE(doc["diagnostics"].IsArray());
  ASSERT_GE(doc["diagnostics"].Size(), 1u);
  const json::Value& first = doc["diagnostics"][0];
  EXPECT_EQ(Str(first, "severity"), "ERROR");
  EXPECT_NE(Str(first, "code"), "<absent>");
  EXPECT_NE(Str(first, "message"), "<absent>");
  EXPECT_THAT(Str(first, "location"), StartsWith("/States/A"));

  Result not_json = Stepflow({"validate", "-"}, "{");
  EXPECT_EQ(not_json.exit_code, 1);
  EXPECT_EQ(Str(Json(not_json), "result"), "FAIL");
}

constexpr char kOrderEvent[] =
    R"({"id": "1", "source": "shop", "detail-type": "Order", "account": "123456789012",
        "region": "us-east-1", "time": "2026-11-25T00:00:00Z", "resources": [],
        "detail": {"total": 150}})";

TEST_F(LocalCliTest, EventsTestPatternPrintsTheResult) {
  Result hit = Stepflow({"events", "test-pattern", "--pattern",
                         R"({"detail": {"total": [{"numeric": [">", 100]}]}})", "--event", kOrderEvent});
  EXPECT_EQ(hit.exit_code, 0) << hit.err;
  EXPECT_EQ(hit.out, "true\n");
  EXPECT_THAT(hit.err, IsEmpty());

  Result miss = Stepflow({"events", "test-pattern", "--pattern", R"({"source": ["other"]})",
                          "--event", kOrderEvent});
  EXPECT_EQ(miss.exit_code, 0) << miss.err;
  EXPECT_EQ(miss.out, "false\n");
}

TEST_F(LocalCliTest, EventsTestPatternReadsFilesAndStdin) {
  std::string pattern = WriteFile("pattern.json", R"({"source": ["shop"]})");
  Result from_files = Stepflow({"events", "test-pattern", "--pattern-file", pattern, "--event-file", "-"},
                               kOrderEvent);
  EXPECT_EQ(from_files.exit_code, 0) << from_files.err;
  EXPECT_EQ(from_files.out, "true\n");
}

TEST_F(LocalCliTest, EventsTestPatternReportsAwsErrors) {
  Result bad_pattern = Stepflow({"events", "test-pattern", "--pattern", R"({"source": "shop"})",
                                 "--event", kOrderEvent});
  EXPECT_EQ(bad_pattern.exit_code, 2);
  EXPECT_THAT(bad_pattern.out, IsEmpty());
  EXPECT_EQ(bad_pattern.err,
            "Event pattern is not valid. Reason: \"source\" must be an object or an array\n");

  Result bad_event = Stepflow({"events", "test-pattern", "--pattern", R"({"source": ["shop"]})",
                               "--event", R"({"source": "shop"})"});
  EXPECT_EQ(bad_event.exit_code, 2);
  EXPECT_THAT(bad_event.out, IsEmpty());
  EXPECT_EQ(bad_event.err, "Parameter Event is not valid.\n");

  Result no_event = Stepflow({"events", "test-pattern", "--pattern", R"({"source": ["shop"]})"});
  EXPECT_EQ(no_event.exit_code, 2);
  EXPECT_THAT(no_event.err, HasSubstr("give exactly one of --event and --event-file"));
}

}  // namespace
}  // namespace stepflow::cli
