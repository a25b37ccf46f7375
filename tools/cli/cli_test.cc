// The CLI end to end in-process: Run() against a fake StepFunctions server on
// an in-process channel (no ports, no cluster).
#include "tools/cli/cli.h"

#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "gmock/gmock.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/server.h"
#include "grpcpp/server_builder.h"
#include "gtest/gtest.h"
#include "stepflow/v1/states.grpc.pb.h"
#include "tools/cli/commands.h"

namespace stepflow::cli {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

constexpr char kOrdersArn[] =
    "arn:aws:states:us-east-1:123456789012:stateMachine:Orders";

// Answers a handful of calls from canned data and records the requests.
class FakeStepFunctions final : public v1::StepFunctions::Service {
 public:
  grpc::Status CreateStateMachine(
      grpc::ServerContext*, const v1::CreateStateMachineRequest* request,
      v1::CreateStateMachineResponse* response) override {
    absl::MutexLock lock(&mu_);
    create_requests_.push_back(*request);
    response->set_state_machine_arn(absl::StrCat(
        "arn:aws:states:eu-west-1:42:stateMachine:", request->name()));
    response->mutable_creation_date()->set_seconds(1714564800);
    return grpc::Status::OK;
  }

  grpc::Status DescribeStateMachine(
      grpc::ServerContext*, const v1::DescribeStateMachineRequest* request,
      v1::DescribeStateMachineResponse* response) override {
    absl::MutexLock lock(&mu_);
    describe_arns_.push_back(request->state_machine_arn());
    return grpc::Status(grpc::StatusCode::NOT_FOUND,
                        absl::StrCat("StateMachineDoesNotExist: State Machine "
                                     "Does Not Exist: '",
                                     request->state_machine_arn(), "'"));
  }

  // Three pages: a,b | c,d | e.
  grpc::Status ListStateMachines(
      grpc::ServerContext*, const v1::ListStateMachinesRequest* request,
      v1::ListStateMachinesResponse* response) override {
    absl::MutexLock lock(&mu_);
    list_tokens_.push_back(request->next_token());
    std::vector<std::string> names;
    std::string next;
    if (request->next_token().empty()) {
      names = {"a", "b"};
      next = "page2";
    } else if (request->next_token() == "page2") {
      names = {"c", "d"};
      next = "page3";
    } else {
      names = {"e"};
    }
    for (const std::string& name : names) {
      auto* item = response->add_state_machines();
      item->set_state_machine_arn(absl::StrCat(
          "arn:aws:states:us-east-1:123456789012:stateMachine:", name));
      item->set_name(name);
      item->set_type("STANDARD");
    }
    response->set_next_token(next);
    return grpc::Status::OK;
  }

  // One execution per state machine, started later for later names.
  grpc::Status ListExecutions(grpc::ServerContext*,
                              const v1::ListExecutionsRequest* request,
                              v1::ListExecutionsResponse* response) override {
    std::string name = request->state_machine_arn().substr(
        request->state_machine_arn().rfind(':') + 1);
    auto* item = response->add_executions();
    item->set_execution_arn(absl::StrCat(
        "arn:aws:states:us-east-1:123456789012:execution:", name, ":run"));
    item->set_status("RUNNING");
    item->mutable_start_date()->set_seconds(1714564800 + name[0]);
    return grpc::Status::OK;
  }

  grpc::Status GetExecutionHistory(
      grpc::ServerContext*, const v1::GetExecutionHistoryRequest* request,
      v1::GetExecutionHistoryResponse* response) override {
    absl::MutexLock lock(&mu_);
    history_requests_.push_back(*request);
    v1::HistoryEvent* event = response->add_events();
    if (request->next_token().empty()) {
      event->set_id(1);
      event->set_type("ExecutionStarted");
      event->mutable_timestamp()->set_seconds(1714564800);
      event->mutable_execution_started_event_details()->set_input("{}");
      response->set_next_token("more");
    } else {
      event->set_id(2);
      event->set_previous_event_id(1);
      event->set_type("PassStateEntered");
      event->mutable_timestamp()->set_seconds(1714564801);
      event->mutable_state_entered_event_details()->set_name("P");
    }
    return grpc::Status::OK;
  }

  grpc::Status DeleteActivity(grpc::ServerContext*,
                              const v1::DeleteActivityRequest* request,
                              v1::DeleteActivityResponse*) override {
    absl::MutexLock lock(&mu_);
    deleted_activities_.push_back(request->activity_arn());
    return grpc::Status::OK;
  }

  grpc::Status DescribeMapRun(grpc::ServerContext*, const v1::DescribeMapRunRequest* request,
                              v1::DescribeMapRunResponse* response) override {
    response->set_map_run_arn(request->map_run_arn());
    response->set_status("RUNNING");
    response->mutable_start_date()->set_seconds(1714564800);
    response->set_max_concurrency(4);
    response->mutable_execution_counts()->set_running(4);
    response->mutable_execution_counts()->set_pending(6);
    response->mutable_execution_counts()->set_total(10);
    return grpc::Status::OK;
  }

  grpc::Status UpdateMapRun(grpc::ServerContext*, const v1::UpdateMapRunRequest* request,
                            v1::UpdateMapRunResponse*) override {
    absl::MutexLock lock(&mu_);
    update_map_run_requests_.push_back(*request);
    return grpc::Status::OK;
  }

  // The next `refusals_` calls of the three below answer `refusal_`; then
  // they succeed. Each call is counted.
  grpc::Status DescribeExecution(grpc::ServerContext*,
                                 const v1::DescribeExecutionRequest* request,
                                 v1::DescribeExecutionResponse* response) override {
    if (grpc::Status refused = Refusal(); !refused.ok()) return refused;
    response->set_execution_arn(request->execution_arn());
    response->set_status("SUCCEEDED");
    response->set_output("{}");
    return grpc::Status::OK;
  }

  grpc::Status StartExecution(grpc::ServerContext*, const v1::StartExecutionRequest* request,
                              v1::StartExecutionResponse* response) override {
    if (grpc::Status refused = Refusal(); !refused.ok()) return refused;
    response->set_execution_arn(
        absl::StrCat("arn:aws:states:us-east-1:123456789012:execution:Orders:", request->name()));
    return grpc::Status::OK;
  }

  grpc::Status GetActivityTask(grpc::ServerContext*, const v1::GetActivityTaskRequest*,
                               v1::GetActivityTaskResponse*) override {
    return Refusal();
  }

  grpc::Status Refusal() {
    absl::MutexLock lock(&mu_);
    ++calls_;
    if (refusals_ == 0) return grpc::Status::OK;
    if (refusals_ > 0) --refusals_;
    return refusal_;
  }

  absl::Mutex mu_;
  int refusals_ ABSL_GUARDED_BY(mu_) = 0;  // -1: every call
  grpc::Status refusal_ ABSL_GUARDED_BY(mu_);
  int calls_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<v1::UpdateMapRunRequest> update_map_run_requests_ ABSL_GUARDED_BY(mu_);
  std::vector<v1::CreateStateMachineRequest> create_requests_
      ABSL_GUARDED_BY(mu_);
  std::vector<std::string> describe_arns_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> list_tokens_ ABSL_GUARDED_BY(mu_);
  std::vector<v1::GetExecutionHistoryRequest> history_requests_
      ABSL_GUARDED_BY(mu_);
  std::vector<std::string> deleted_activities_ ABSL_GUARDED_BY(mu_);
};

struct Result {
  int exit_code;
  std::string out;
  std::string err;
};

class CliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    grpc::ServerBuilder builder;
    builder.RegisterService(&service_);
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
  }
  void TearDown() override { server_->Shutdown(); }

  Result RunCli(std::vector<std::string> args,
                const std::string& stdin_text = "") {
    std::istringstream in(stdin_text);
    std::ostringstream out, err;
    Environment env;
    env.in = &in;
    env.out = &out;
    env.err = &err;
    env.getenv = [this](const std::string& name) -> std::optional<std::string> {
      auto it = env_vars_.find(name);
      if (it == env_vars_.end()) return std::nullopt;
      return it->second;
    };
    env.make_channel = [this](const std::string& endpoint)
        -> std::shared_ptr<grpc::ChannelInterface> {
      endpoints_.push_back(endpoint);
      if (real_channels_) {
        return grpc::CreateChannel(endpoint,
                                   grpc::InsecureChannelCredentials());
      }
      return server_->InProcessChannel(grpc::ChannelArguments());
    };
    env.run_dev = [this](int argc, char** argv) {
      dev_argv_.assign(argv, argv + argc);
      return 7;
    };
    env.run_bench = [this](const std::vector<std::string>& args,
                           std::ostream& out, std::ostream&) {
      bench_args_ = args;
      out << "bench ran\n";
      return 5;
    };
    args.insert(args.begin(), "stepflow");
    std::vector<char*> argv;
    for (std::string& arg : args) argv.push_back(arg.data());
    int code = cli::Run(static_cast<int>(argv.size()), argv.data(), env);
    return {code, out.str(), err.str()};
  }

  FakeStepFunctions service_;
  std::unique_ptr<grpc::Server> server_;
  bool real_channels_ = false;  // else in-process channels to service_
  std::map<std::string, std::string> env_vars_;
  std::vector<std::string> endpoints_;
  std::vector<std::string> dev_argv_;
  std::vector<std::string> bench_args_;
};

TEST_F(CliTest, Version) {
  Result result = RunCli({"--version"});
  EXPECT_EQ(result.exit_code, 0);
  EXPECT_EQ(result.out, absl::StrCat("stepflow ", kVersion, "\n"));
}

TEST_F(CliTest, HelpAtEveryLevel) {
  Result top = RunCli({"--help"});
  EXPECT_EQ(top.exit_code, 0);
  EXPECT_THAT(top.out, HasSubstr("state-machines"));
  EXPECT_THAT(top.out, HasSubstr("--endpoint HOST:PORT"));
  EXPECT_THAT(top.out, HasSubstr("STEPFLOW_ENDPOINT"));

  for (const GroupSpec& group : CommandGroups()) {
    Result result = RunCli({group.name, "--help"});
    EXPECT_EQ(result.exit_code, 0) << group.name;
    EXPECT_THAT(top.out, HasSubstr(group.name));
    for (const CommandSpec& command : Commands()) {
      if (command.group == group.name) {
        EXPECT_THAT(result.out, HasSubstr(command.name));
      }
    }
  }
  for (const CommandSpec& command : Commands()) {
    Result result = RunCli({command.group, command.name, "-h"});
    EXPECT_EQ(result.exit_code, 0) << command.group << " " << command.name;
    EXPECT_THAT(result.out,
                StartsWith(absl::StrCat("Usage: stepflow ", command.group, " ",
                                        command.name)));
    for (const FlagSpec& flag : command.flags) {
      EXPECT_THAT(result.out, HasSubstr("--" + flag.name));
    }
    for (const PositionalSpec& positional : command.positionals) {
      EXPECT_THAT(result.out, HasSubstr(positional.name));
    }
    EXPECT_THAT(result.out, HasSubstr("--timeout SECONDS"));
  }
  EXPECT_TRUE(endpoints_.empty());  // help never connects
}

TEST_F(CliTest, BadUsageExitsTwoWithUsageOnStderr) {
  Result none = RunCli({});
  EXPECT_EQ(none.exit_code, 2);
  EXPECT_THAT(none.err, HasSubstr("Usage: stepflow"));

  Result group = RunCli({"nope"});
  EXPECT_EQ(group.exit_code, 2);
  EXPECT_THAT(group.err, HasSubstr("unknown command group 'nope'"));

  Result command = RunCli({"executions", "frobnicate"});
  EXPECT_EQ(command.exit_code, 2);
  EXPECT_THAT(command.err, HasSubstr("Usage: stepflow executions"));

  Result flag = RunCli({"executions", "history", "arn:x", "--bogus"});
  EXPECT_EQ(flag.exit_code, 2);
  EXPECT_THAT(flag.err, HasSubstr("error: unknown flag --bogus"));
  EXPECT_THAT(flag.err,
              HasSubstr("Usage: stepflow executions history EXECUTION_ARN"));

  Result missing = RunCli({"executions", "describe"});
  EXPECT_EQ(missing.exit_code, 2);
  EXPECT_THAT(missing.err, HasSubstr("missing argument EXECUTION_ARN"));

  Result extra = RunCli({"state-machines", "describe", "a", "b"});
  EXPECT_EQ(extra.exit_code, 2);
  EXPECT_THAT(extra.err, HasSubstr("unexpected argument 'b'"));

  Result bad_choice = RunCli({"executions", "list", "--status", "DONE"});
  EXPECT_EQ(bad_choice.exit_code, 2);
  EXPECT_THAT(bad_choice.err, HasSubstr("--status must be one of RUNNING"));
  EXPECT_TRUE(endpoints_.empty());  // none of the above got to an RPC

  // Checked by the command itself, still before any RPC.
  Result no_name =
      RunCli({"state-machines", "create", "--definition-string", "{}"});
  EXPECT_EQ(no_name.exit_code, 2);
  EXPECT_THAT(no_name.err, HasSubstr("--name is required"));
  Result two_inputs = RunCli({"executions", "start", "Orders", "--input={}",
                              "--input-file", "x.json"});
  EXPECT_EQ(two_inputs.exit_code, 2);
  EXPECT_THAT(two_inputs.err, HasSubstr("Usage: stepflow executions start"));
}

TEST_F(CliTest, CreateReadsDefinitionFromStdinWithGlobalFlagsAnywhere) {
  Result result =
      RunCli({"--region", "eu-west-1", "state-machines", "--account=42",
              "create", "--name", "Orders", "--definition", "-",
              "--type=EXPRESS", "--endpoint", "gw:1"},
             R"({"StartAt":"P","States":{"P":{"Type":"Pass","End":true}}})");
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_EQ(result.out,
            "{\n"
            "  \"stateMachineArn\": "
            "\"arn:aws:states:eu-west-1:42:stateMachine:Orders\",\n"
            "  \"creationDate\": \"2024-05-01T12:00:00Z\"\n"
            "}\n");
  EXPECT_THAT(endpoints_, ElementsAre("gw:1"));
  absl::MutexLock lock(&service_.mu_);
  ASSERT_EQ(service_.create_requests_.size(), 1u);
  EXPECT_EQ(service_.create_requests_[0].name(), "Orders");
  EXPECT_EQ(service_.create_requests_[0].type(), "EXPRESS");
  EXPECT_THAT(service_.create_requests_[0].definition(),
              HasSubstr("\"StartAt\":\"P\""));
}

TEST_F(CliTest, CreateReportsUnreadableDefinitionFile) {
  Result result = RunCli({"state-machines", "create", "--name", "x",
                          "--definition", "/nonexistent/def.json"});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_THAT(result.err,
              StartsWith("error: NOT_FOUND: cannot read definition file "
                         "'/nonexistent/def.json'"));
}

TEST_F(CliTest, ServerErrorPrintsCodeAndMessage) {
  Result result = RunCli({"state-machines", "describe", "Orders"});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_EQ(result.out, "");
  EXPECT_EQ(result.err,
            absl::StrCat("error: NOT_FOUND: StateMachineDoesNotExist: State "
                         "Machine Does Not Exist: '",
                         kOrdersArn, "'\n"));
  absl::MutexLock lock(&service_.mu_);
  EXPECT_THAT(service_.describe_arns_, ElementsAre(kOrdersArn));
}

TEST_F(CliTest, EndpointFromEnvironmentUnlessFlagGiven) {
  RunCli({"activities", "delete", "a"});
  env_vars_["STEPFLOW_ENDPOINT"] = "env-host:9";
  RunCli({"activities", "delete", "b"});
  RunCli({"activities", "delete", "c", "--endpoint=flag-host:8"});
  EXPECT_THAT(endpoints_,
              ElementsAre("127.0.0.1:7233", "env-host:9", "flag-host:8"));
  absl::MutexLock lock(&service_.mu_);
  EXPECT_THAT(service_.deleted_activities_,
              ElementsAre("arn:aws:states:us-east-1:123456789012:activity:a",
                          "arn:aws:states:us-east-1:123456789012:activity:b",
                          "arn:aws:states:us-east-1:123456789012:activity:c"));
}

TEST_F(CliTest, DeletePrintsNothing) {
  Result result = RunCli({"activities", "delete", "a"});
  EXPECT_EQ(result.exit_code, 0);
  EXPECT_EQ(result.out, "");
}

TEST_F(CliTest, ListFollowsPagesUnlessMaxResults) {
  Result all = RunCli({"--output", "text", "state-machines", "list"});
  ASSERT_EQ(all.exit_code, 0) << all.err;
  EXPECT_EQ(
      all.out,
      "arn:aws:states:us-east-1:123456789012:stateMachine:a\tSTANDARD\t-\n"
      "arn:aws:states:us-east-1:123456789012:stateMachine:b\tSTANDARD\t-\n"
      "arn:aws:states:us-east-1:123456789012:stateMachine:c\tSTANDARD\t-\n"
      "arn:aws:states:us-east-1:123456789012:stateMachine:d\tSTANDARD\t-\n"
      "arn:aws:states:us-east-1:123456789012:stateMachine:e\tSTANDARD\t-\n");
  {
    absl::MutexLock lock(&service_.mu_);
    EXPECT_THAT(service_.list_tokens_, ElementsAre("", "page2", "page3"));
    service_.list_tokens_.clear();
  }

  Result one = RunCli(
      {"state-machines", "list", "--max-results", "2", "--next-token=page2"});
  ASSERT_EQ(one.exit_code, 0) << one.err;
  EXPECT_THAT(one.out, HasSubstr("stateMachine:c"));
  EXPECT_THAT(one.out, HasSubstr("\"nextToken\": \"page3\""));
  EXPECT_THAT(one.out, Not(HasSubstr("stateMachine:e")));
  absl::MutexLock lock(&service_.mu_);
  EXPECT_THAT(service_.list_tokens_, ElementsAre("page2"));
}

TEST_F(CliTest, ExecutionsListWithoutStateMachineMergesNewestFirst) {
  Result result =
      RunCli({"executions", "list", "--max-results=3", "--output=text"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_EQ(result.out,
            "arn:aws:states:us-east-1:123456789012:execution:e:run\tRUNNING\t"
            "2024-05-01T12:01:41Z\n"
            "arn:aws:states:us-east-1:123456789012:execution:d:run\tRUNNING\t"
            "2024-05-01T12:01:40Z\n"
            "arn:aws:states:us-east-1:123456789012:execution:c:run\tRUNNING\t"
            "2024-05-01T12:01:39Z\n");
}

TEST_F(CliTest, HistoryJsonAndText) {
  Result json = RunCli({"executions", "history", "arn:exec", "--reverse"});
  ASSERT_EQ(json.exit_code, 0) << json.err;
  EXPECT_THAT(json.out, HasSubstr("\"events\": ["));
  EXPECT_THAT(json.out, HasSubstr("\"id\": 1,"));
  EXPECT_THAT(json.out, HasSubstr("\"previousEventId\": 1,"));
  EXPECT_THAT(json.out, HasSubstr("\"executionStartedEventDetails\": {"));
  EXPECT_THAT(json.out, HasSubstr("\"timestamp\": \"2024-05-01T12:00:01Z\""));
  EXPECT_THAT(json.out, Not(HasSubstr("nextToken")));
  {
    absl::MutexLock lock(&service_.mu_);
    ASSERT_EQ(service_.history_requests_.size(), 2u);
    EXPECT_TRUE(service_.history_requests_[0].reverse_order());
    EXPECT_EQ(service_.history_requests_[0].execution_arn(), "arn:exec");
    EXPECT_FALSE(service_.history_requests_[0].has_include_execution_data());
  }

  Result text = RunCli({"executions", "history", "arn:exec", "--output", "text",
                        "--no-include-execution-data"});
  ASSERT_EQ(text.exit_code, 0) << text.err;
  EXPECT_EQ(text.out,
            "1\t2024-05-01T12:00:00Z\tExecutionStarted\t{\"input\":\"{}\"}\n"
            "2\t2024-05-01T12:00:01Z\tPassStateEntered\t{\"name\":\"P\"}\n");
  absl::MutexLock lock(&service_.mu_);
  EXPECT_TRUE(service_.history_requests_.back().has_include_execution_data());
  EXPECT_FALSE(service_.history_requests_.back().include_execution_data());
}

TEST_F(CliTest, MapRunsDescribeAndUpdate) {
  const std::string arn = "arn:aws:states:us-east-1:123456789012:mapRun:Orders/fan:0-1-2-3-4";
  Result described = RunCli({"map-runs", "describe", arn, "--output", "text"});
  EXPECT_EQ(described.exit_code, 0) << described.err;
  EXPECT_EQ(described.out,
            absl::StrCat(arn, "\tRUNNING\t2024-05-01T12:00:00Z\t-\tmaxConcurrency=4\tpending=6\t"
                              "running=4\tsucceeded=0\tfailed=0\ttimedOut=0\taborted=0\ttotal=10\n"));

  // 0 is a value (no limit), not "unset"; unset fields stay unset.
  Result updated = RunCli({"map-runs", "update", arn, "--max-concurrency", "0",
                           "--tolerated-failure-percentage", "12.5"});
  EXPECT_EQ(updated.exit_code, 0) << updated.err;
  EXPECT_EQ(updated.out, "");
  {
    absl::MutexLock lock(&service_.mu_);
    ASSERT_EQ(service_.update_map_run_requests_.size(), 1u);
    const v1::UpdateMapRunRequest& request = service_.update_map_run_requests_[0];
    EXPECT_EQ(request.map_run_arn(), arn);
    EXPECT_TRUE(request.has_max_concurrency());
    EXPECT_EQ(request.max_concurrency(), 0);
    EXPECT_FLOAT_EQ(request.tolerated_failure_percentage(), 12.5f);
    EXPECT_FALSE(request.has_tolerated_failure_count());
  }
  Result nothing = RunCli({"map-runs", "update", arn});
  EXPECT_EQ(nothing.exit_code, 2);
  EXPECT_THAT(nothing.err, HasSubstr("--max-concurrency"));
  Result bad = RunCli({"map-runs", "update", arn, "--max-concurrency", "many"});
  EXPECT_EQ(bad.exit_code, 2);
}

TEST_F(CliTest, UnavailableServerGivesAHint) {
  // Port 1 on loopback: nothing listens there, so the connect is refused.
  real_channels_ = true;
  Result result = RunCli({"activities", "delete", "a", "--timeout", "5",
                          "--endpoint", "127.0.0.1:1"});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_THAT(result.err, StartsWith("error: UNAVAILABLE: "));
  EXPECT_THAT(result.err, HasSubstr("hint: is a Stepflow gateway listening "
                                    "at 127.0.0.1:1?"));
}

// ---- Backoff on RESOURCE_EXHAUSTED and UNAVAILABLE ----

constexpr char kExecutionArn[] =
    "arn:aws:states:us-east-1:123456789012:execution:Orders:run-1";

class RpcRetryTest : public CliTest {
 protected:
  void Refuse(grpc::StatusCode code, int times) {
    absl::MutexLock lock(&service_.mu_);
    service_.refusal_ = grpc::Status(code, "ThrottlingException: Rate exceeded");
    service_.refusals_ = times;
  }
  int Calls() {
    absl::MutexLock lock(&service_.mu_);
    return service_.calls_;
  }

  std::unique_ptr<v1::StepFunctions::Stub> Stub() {
    return v1::StepFunctions::NewStub(server_->InProcessChannel(grpc::ChannelArguments()));
  }
  static constexpr RetryPolicy kFast{.initial_backoff = absl::Milliseconds(2),
                                     .max_backoff = absl::Milliseconds(10)};
};

TEST(RetryDelayTest, DoublesUpToTheCapWithJitterInTheUpperHalf) {
  const RetryPolicy policy{.initial_backoff = absl::Milliseconds(100),
                           .max_backoff = absl::Seconds(1)};
  EXPECT_EQ(RetryDelay(policy, 1, 0.0), absl::Milliseconds(50));
  EXPECT_GT(RetryDelay(policy, 1, 0.999999), absl::Milliseconds(99));
  EXPECT_LE(RetryDelay(policy, 1, 0.999999), absl::Milliseconds(100));
  EXPECT_EQ(RetryDelay(policy, 2, 0.0), absl::Milliseconds(100));
  EXPECT_EQ(RetryDelay(policy, 3, 0.5), absl::Milliseconds(300));
  EXPECT_EQ(RetryDelay(policy, 10, 0.0), absl::Milliseconds(500));
  EXPECT_EQ(RetryDelay(policy, 1000, 0.5), absl::Milliseconds(750));
}

TEST(IsRetrySafeTest, ReadsAndNamedStartsOnly) {
  EXPECT_TRUE(IsRetrySafe(v1::DescribeExecutionRequest()));
  EXPECT_TRUE(IsRetrySafe(v1::ListExecutionsRequest()));
  EXPECT_TRUE(IsRetrySafe(v1::GetExecutionHistoryRequest()));
  EXPECT_FALSE(IsRetrySafe(v1::GetActivityTaskRequest()));
  EXPECT_FALSE(IsRetrySafe(v1::DeleteActivityRequest()));
  EXPECT_FALSE(IsRetrySafe(v1::StartSyncExecutionRequest()));
  v1::StartExecutionRequest start;
  EXPECT_FALSE(IsRetrySafe(start));
  start.set_name("run-1");
  EXPECT_TRUE(IsRetrySafe(start));
}

TEST_F(RpcRetryTest, ReadRetriesResourceExhaustedAndUnavailableUntilItSucceeds) {
  auto stub = Stub();
  Rpc rpc(stub.get(), absl::Seconds(10), kFast);
  Refuse(grpc::StatusCode::RESOURCE_EXHAUSTED, 3);
  v1::DescribeExecutionRequest request;
  request.set_execution_arn(kExecutionArn);
  v1::DescribeExecutionResponse response;
  ASSERT_TRUE(rpc.Call(&v1::StepFunctions::StubInterface::DescribeExecution, request,
                       &response)
                  .ok());
  EXPECT_EQ(response.status(), "SUCCEEDED");
  EXPECT_EQ(Calls(), 4);
  EXPECT_EQ(rpc.retries(), 3);

  Refuse(grpc::StatusCode::UNAVAILABLE, 2);
  ASSERT_TRUE(rpc.Call(&v1::StepFunctions::StubInterface::DescribeExecution, request,
                       &response)
                  .ok());
  EXPECT_EQ(Calls(), 7);
}

TEST_F(RpcRetryTest, OtherErrorsAreNotRetried) {
  auto stub = Stub();
  Rpc rpc(stub.get(), absl::Seconds(10), kFast);
  Refuse(grpc::StatusCode::INTERNAL, 1);
  v1::DescribeExecutionRequest request;
  v1::DescribeExecutionResponse response;
  absl::Status status =
      rpc.Call(&v1::StepFunctions::StubInterface::DescribeExecution, request, &response);
  EXPECT_EQ(status.code(), absl::StatusCode::kInternal);
  EXPECT_EQ(Calls(), 1);
}

TEST_F(RpcRetryTest, StartIsRetriedOnlyWithAName) {
  auto stub = Stub();
  Rpc rpc(stub.get(), absl::Seconds(10), kFast);
  v1::StartExecutionRequest start;
  start.set_state_machine_arn(kOrdersArn);
  v1::StartExecutionResponse response;
  // Without a name a lost answer could mean a second execution.
  Refuse(grpc::StatusCode::RESOURCE_EXHAUSTED, 1);
  absl::Status status =
      rpc.Call(&v1::StepFunctions::StubInterface::StartExecution, start, &response);
  EXPECT_EQ(status.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(rpc::ErrorName(status), "ThrottlingException");
  EXPECT_EQ(Calls(), 1);

  start.set_name("run-1");
  Refuse(grpc::StatusCode::RESOURCE_EXHAUSTED, 2);
  ASSERT_TRUE(
      rpc.Call(&v1::StepFunctions::StubInterface::StartExecution, start, &response).ok());
  EXPECT_EQ(response.execution_arn(), kExecutionArn);
  EXPECT_EQ(Calls(), 4);
}

TEST_F(RpcRetryTest, GetActivityTaskIsNotRetried) {
  auto stub = Stub();
  Rpc rpc(stub.get(), absl::Seconds(10), kFast);
  Refuse(grpc::StatusCode::RESOURCE_EXHAUSTED, 1);
  v1::GetActivityTaskRequest request;
  v1::GetActivityTaskResponse response;
  EXPECT_EQ(
      rpc.Call(&v1::StepFunctions::StubInterface::GetActivityTask, request, &response).code(),
      absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(Calls(), 1);
}

TEST_F(RpcRetryTest, GivesUpWithinTheCallsDeadline) {
  auto stub = Stub();
  const absl::Duration timeout = absl::Milliseconds(400);
  Rpc rpc(stub.get(), timeout,
          {.initial_backoff = absl::Milliseconds(20), .max_backoff = absl::Milliseconds(80)});
  Refuse(grpc::StatusCode::RESOURCE_EXHAUSTED, -1);
  v1::DescribeExecutionRequest request;
  v1::DescribeExecutionResponse response;
  const absl::Time started = absl::Now();
  absl::Status status =
      rpc.Call(&v1::StepFunctions::StubInterface::DescribeExecution, request, &response);
  const absl::Duration took = absl::Now() - started;
  EXPECT_EQ(status.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_LE(took, timeout + absl::Milliseconds(100));
  // Backoffs of 10-20, 20-40, 40-80, 40-80 ms ...: several attempts fit.
  EXPECT_GE(Calls(), 4);
}

TEST_F(RpcRetryTest, CommandsBackOffThroughRun) {
  Refuse(grpc::StatusCode::RESOURCE_EXHAUSTED, 2);
  Result result = RunCli({"executions", "describe", kExecutionArn});
  EXPECT_EQ(result.exit_code, 0) << result.err;
  EXPECT_THAT(result.out, HasSubstr("SUCCEEDED"));
  EXPECT_EQ(Calls(), 3);
}

TEST_F(CliTest, DevIsHandedOnWhole) {
  Result result =
      RunCli({"--endpoint", "x:1", "dev", "--data-dir", "/tmp/d", "--help"});
  EXPECT_EQ(result.exit_code, 7);
  EXPECT_THAT(dev_argv_, ElementsAre("dev", "--data-dir", "/tmp/d", "--help"));
}

TEST_F(CliTest, BenchGetsItsArgumentsAndTheGlobalFlagsBeforeIt) {
  Result result = RunCli({"--endpoint", "x:1", "--output", "json", "bench",
                          "-c", "4", "--scenario", "standard"});
  EXPECT_EQ(result.exit_code, 5);
  EXPECT_EQ(result.out, "bench ran\n");
  EXPECT_THAT(bench_args_,
              ElementsAre("--endpoint", "x:1", "--format", "json", "-c", "4",
                          "--scenario", "standard"));
  // STEPFLOW_ENDPOINT is for the API commands: without --endpoint the bench
  // runs its own cluster.
  env_vars_["STEPFLOW_ENDPOINT"] = "y:2";
  RunCli({"bench", "-n", "1"});
  EXPECT_THAT(bench_args_, ElementsAre("-n", "1"));
  EXPECT_THAT(RunCli({"--help"}).out, HasSubstr("\n  bench "));
}

}  // namespace
}  // namespace stepflow::cli
