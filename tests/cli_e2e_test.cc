// The `stepflow` CLI against a real cluster: every command, its JSON output
// and its errors.
#include <stdio.h>
#include <sys/wait.h>

#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/json/json.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/fixture/cluster.h"

namespace stepflow {
namespace {

using ::testing::HasSubstr;

struct CliResult {
  int exit_code = -1;
  std::string out;  // stdout and stderr together
};

class CliTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto cluster = testing::TestCluster::Start({.shard_servers = 2, .logical_shards = 8,
                                                .eventbus = false});
    ASSERT_TRUE(cluster.ok()) << cluster.status();
    cluster_ = cluster->release();
  }
  static void TearDownTestSuite() { delete cluster_; }
  void TearDown() override {
    if (HasFailure()) std::cerr << cluster_->Logs();
  }

  // Runs `stepflow --endpoint GATEWAY args...`.
  CliResult Run(const std::vector<std::string>& args, bool merge_stderr = false) {
    std::string command = absl::StrCat(STEPFLOW_CLI_BIN, " --endpoint ", cluster_->gateway_address());
    for (const std::string& arg : args) {
      std::string quoted = "'";
      for (char c : arg) quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
      absl::StrAppend(&command, " ", quoted, "'");
    }
    if (merge_stderr) command += " 2>&1";
    CliResult result;
    FILE* pipe = popen(command.c_str(), "r");
    char buffer[4096];
    size_t n;
    while ((n = fread(buffer, 1, sizeof(buffer), pipe)) > 0) result.out.append(buffer, n);
    int status = pclose(pipe);
    result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return result;
  }

  json::Document Json(const CliResult& result) {
    EXPECT_EQ(result.exit_code, 0) << result.out;
    auto doc = json::Parse(result.out);
    EXPECT_TRUE(doc.ok()) << result.out;
    return doc.ok() ? std::move(*doc) : json::Document();
  }

  static testing::TestCluster* cluster_;
};

testing::TestCluster* CliTest::cluster_ = nullptr;

TEST_F(CliTest, StateMachinesExecutionsAndActivities) {
  const std::string definition_file = cluster_->work_dir() + "/hello.asl.json";
  std::ofstream(definition_file)
      << R"({"StartAt": "Hello", "States": {"Hello": {"Type": "Pass", "Result": {"hello": "world"}, "End": true}}})";

  json::Document created = Json(Run({"state-machines", "create", "--name", "hello",
                                     "--definition", definition_file}));
  ASSERT_TRUE(created.IsObject());
  EXPECT_STREQ(created["stateMachineArn"].GetString(),
               "arn:aws:states:us-east-1:123456789012:stateMachine:hello");

  json::Document described = Json(Run({"state-machines", "describe", "hello"}));
  ASSERT_TRUE(described.IsObject());
  EXPECT_STREQ(described["type"].GetString(), "STANDARD");
  EXPECT_STREQ(described["status"].GetString(), "ACTIVE");

  json::Document listed = Json(Run({"state-machines", "list"}));
  ASSERT_TRUE(listed.IsObject());
  EXPECT_EQ(listed["stateMachines"].Size(), 1u);

  json::Document started = Json(Run({"executions", "start", "hello", "--name", "run-1",
                                     "--input", R"({"x": 1})"}));
  ASSERT_TRUE(started.IsObject());
  const std::string execution = started["executionArn"].GetString();
  EXPECT_EQ(execution, "arn:aws:states:us-east-1:123456789012:execution:hello:run-1");

  json::Document execution_described = Json(Run({"executions", "describe", execution}));
  ASSERT_TRUE(execution_described.IsObject());
  EXPECT_STREQ(execution_described["status"].GetString(), "SUCCEEDED");
  EXPECT_STREQ(execution_described["output"].GetString(), R"({"hello":"world"})");

  json::Document history = Json(Run({"executions", "history", execution}));
  ASSERT_TRUE(history.IsObject());
  std::vector<std::string> types;
  for (const auto& event : history["events"].GetArray()) types.push_back(event["type"].GetString());
  EXPECT_EQ(absl::StrJoin(types, ","),
            "ExecutionStarted,PassStateEntered,PassStateExited,ExecutionSucceeded");

  json::Document executions = Json(Run({"executions", "list", "--state-machine", "hello",
                                        "--status", "SUCCEEDED"}));
  ASSERT_TRUE(executions.IsObject());
  EXPECT_EQ(executions["executions"].Size(), 1u);

  json::Document activity = Json(Run({"activities", "create", "approve"}));
  ASSERT_TRUE(activity.IsObject());
  EXPECT_STREQ(activity["activityArn"].GetString(),
               "arn:aws:states:us-east-1:123456789012:activity:approve");
  json::Document activities = Json(Run({"activities", "list"}));
  ASSERT_TRUE(activities.IsObject());
  EXPECT_EQ(activities["activities"].Size(), 1u);

  // An execution waiting on a task, stopped from the CLI.
  std::ofstream(definition_file)
      << R"({"StartAt": "Wait", "States": {"Wait": {"Type": "Task", "Resource": "arn:aws:states:us-east-1:123456789012:activity:approve", "End": true}}})";
  Json(Run({"state-machines", "create", "--name", "approval", "--definition", definition_file}));
  json::Document waiting = Json(Run({"executions", "start", "approval", "--name", "w"}));
  ASSERT_TRUE(waiting.IsObject());
  const std::string waiting_arn = waiting["executionArn"].GetString();
  EXPECT_EQ(Run({"executions", "stop", waiting_arn, "--error", "Rejected", "--cause", "by hand"})
                .exit_code, 0);
  json::Document stopped = Json(Run({"executions", "describe", waiting_arn}));
  ASSERT_TRUE(stopped.IsObject());
  EXPECT_STREQ(stopped["status"].GetString(), "ABORTED");
  EXPECT_STREQ(stopped["error"].GetString(), "Rejected");

  EXPECT_EQ(Run({"state-machines", "delete", "hello"}).exit_code, 0);
  CliResult missing = Run({"state-machines", "describe", "hello"}, /*merge_stderr=*/true);
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_THAT(missing.out, HasSubstr("error: NOT_FOUND: StateMachineDoesNotExist"));
}

TEST_F(CliTest, TestStateRunsOneState) {
  const std::string state_file = cluster_->work_dir() + "/state.json";
  std::ofstream(state_file) << R"({"Type": "Pass", "Parameters": {"x.$": "$.a"}, "Next": "N"})";
  json::Document result = Json(Run({"test-state", "--definition", state_file, "--input",
                                    R"({"a": 3})", "--inspection-level", "DEBUG"}));
  ASSERT_TRUE(result.IsObject());
  EXPECT_STREQ(result["status"].GetString(), "SUCCEEDED");
  EXPECT_STREQ(result["nextState"].GetString(), "N");
  EXPECT_STREQ(result["output"].GetString(), R"({"x":3})");
  EXPECT_STREQ(result["inspectionData"]["afterParameters"].GetString(), R"({"x":3})");
}

TEST_F(CliTest, BadDefinitionAndUsage) {
  const std::string definition_file = cluster_->work_dir() + "/bad.asl.json";
  std::ofstream(definition_file) << R"({"StartAt": "Nope", "States": {}})";
  CliResult bad = Run({"state-machines", "create", "--name", "bad", "--definition", definition_file},
                      /*merge_stderr=*/true);
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_THAT(bad.out, HasSubstr("error: INVALID_ARGUMENT: InvalidDefinition"));
  CliResult usage = Run({"executions", "start"}, /*merge_stderr=*/true);
  EXPECT_EQ(usage.exit_code, 2);
  EXPECT_THAT(usage.out, HasSubstr("Usage"));
}

TEST_F(CliTest, VersionsAliasesAndRedrive) {
  const std::string arn = "arn:aws:states:us-east-1:123456789012:stateMachine:versioned";
  json::Document created = Json(Run(
      {"state-machines", "create", "--name", "versioned", "--publish", "--definition-string",
       R"({"StartAt": "P", "States": {"P": {"Type": "Pass", "Result": 1, "End": true}}})"}));
  ASSERT_TRUE(created.IsObject());
  EXPECT_EQ(std::string(created["stateMachineVersionArn"].GetString()), arn + ":1");
  json::Document updated = Json(Run(
      {"state-machines", "update", "versioned", "--publish", "--version-description", "two",
       "--definition-string",
       R"({"StartAt": "P", "States": {"P": {"Type": "Pass", "Result": 2, "End": true}}})"}));
  ASSERT_TRUE(updated.IsObject());
  EXPECT_EQ(std::string(updated["stateMachineVersionArn"].GetString()), arn + ":2");
  EXPECT_TRUE(updated.HasMember("revisionId"));
  CliResult versions = Run({"--output", "text", "state-machines", "list-versions", "versioned"});
  EXPECT_EQ(versions.exit_code, 0);
  EXPECT_EQ(versions.out.find(arn + ":2\t"), 0u) << versions.out;
  EXPECT_THAT(versions.out, HasSubstr(arn + ":1\t"));

  json::Document alias = Json(Run({"state-machines", "create-alias", "--name", "live", "--routing",
                                   absl::StrCat(arn, ":1=50,", arn, ":2=50")}));
  ASSERT_TRUE(alias.IsObject());
  const std::string alias_arn = alias["stateMachineAliasArn"].GetString();
  EXPECT_EQ(alias_arn, arn + ":live");
  json::Document described = Json(Run({"state-machines", "describe-alias", alias_arn}));
  ASSERT_TRUE(described.IsObject());
  EXPECT_EQ(described["routingConfiguration"].Size(), 2u);
  CliResult bad_routing = Run({"state-machines", "create-alias", "--name", "x", "--routing",
                               "no-weight"}, /*merge_stderr=*/true);
  EXPECT_EQ(bad_routing.exit_code, 2) << bad_routing.out;

  json::Document started = Json(Run({"executions", "start", alias_arn, "--name", "via-alias"}));
  ASSERT_TRUE(started.IsObject());
  const std::string execution = started["executionArn"].GetString();
  json::Document execution_described = Json(Run({"executions", "describe", execution}));
  ASSERT_TRUE(execution_described.IsObject());
  EXPECT_EQ(std::string(execution_described["stateMachineAliasArn"].GetString()), alias_arn);
  json::Document for_execution = Json(Run({"executions", "describe-state-machine", execution}));
  ASSERT_TRUE(for_execution.IsObject());
  EXPECT_EQ(std::string(for_execution["stateMachineArn"].GetString()), arn);
  CliResult refused = Run({"executions", "redrive", execution}, /*merge_stderr=*/true);
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_THAT(refused.out, HasSubstr("ExecutionNotRedrivable"));

  EXPECT_EQ(Run({"state-machines", "update-alias", alias_arn, "--routing", arn + ":1=100"})
                .exit_code, 0);
  EXPECT_EQ(Run({"state-machines", "delete-version", arn + ":2"}).exit_code, 0);
  EXPECT_EQ(Run({"state-machines", "delete-alias", alias_arn}).exit_code, 0);
  CliResult aliases = Run({"state-machines", "list-aliases", "versioned"});
  EXPECT_EQ(aliases.exit_code, 0);
  EXPECT_THAT(aliases.out, ::testing::Not(HasSubstr(alias_arn)));
}

TEST_F(CliTest, ExecutionLogsOfALoggedExpressMachine) {
  const std::string definition =
      R"({"StartAt": "A", "States": {"A": {"Type": "Pass", "Next": "B"},
          "B": {"Type": "Pass", "Result": {"done": true}, "End": true}}})";
  const std::string log_group = "arn:aws:logs:us-east-1:123456789012:log-group:flows:*";
  CliResult refused = Run({"state-machines", "create", "--name", "unlogged", "--type", "EXPRESS",
                           "--definition-string", definition, "--logging-level", "ALL"},
                          /*merge_stderr=*/true);
  EXPECT_NE(refused.exit_code, 0);
  EXPECT_THAT(refused.out, HasSubstr("Must specify exactly one Log Destination."));

  json::Document created = Json(Run({"state-machines", "create", "--name", "logged", "--type",
                                     "EXPRESS", "--definition-string", definition,
                                     "--logging-level", "ALL", "--log-group", log_group,
                                     "--include-execution-data"}));
  ASSERT_TRUE(created.IsObject());
  json::Document described = Json(Run({"state-machines", "describe", "logged"}));
  ASSERT_TRUE(described.IsObject());
  EXPECT_STREQ(described["loggingConfiguration"]["level"].GetString(), "ALL");

  json::Document started =
      Json(Run({"executions", "start", "logged", "--name", "logged-1", "--input", R"({"n": 1})"}));
  ASSERT_TRUE(started.IsObject());
  const std::string execution = started["executionArn"].GetString();
  // The records reach Kafka through the shard's outbox, shortly after.
  std::vector<std::string> types;
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (absl::Now() < deadline) {
    CliResult logs = Run({"executions", "logs", "--execution", execution, "--kafka-brokers",
                          cluster_->kafka_bootstrap()});
    ASSERT_EQ(logs.exit_code, 0) << logs.out;
    types.clear();
    for (absl::string_view line : absl::StrSplit(logs.out, '\n', absl::SkipEmpty())) {
      auto record = json::Parse(line);
      ASSERT_TRUE(record.ok()) << line;
      EXPECT_EQ(std::string((*record)["execution_arn"].GetString()), execution);
      types.push_back((*record)["type"].GetString());
    }
    if (!types.empty() && types.back() == "ExecutionSucceeded") break;
    absl::SleepFor(absl::Milliseconds(300));
  }
  EXPECT_THAT(types, ::testing::ElementsAre("ExecutionStarted", "PassStateEntered",
                                            "PassStateExited", "PassStateEntered",
                                            "PassStateExited", "ExecutionSucceeded"));
  CliResult usage = Run({"executions", "logs", "--kafka-brokers", cluster_->kafka_bootstrap()},
                        /*merge_stderr=*/true);
  EXPECT_NE(usage.exit_code, 0);
  EXPECT_THAT(usage.out, HasSubstr("give exactly one of --execution"));
}

}  // namespace
}  // namespace stepflow
