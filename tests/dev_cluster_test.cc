// `stepflow dev`: the whole cluster in one process, stopped with Ctrl-C
// (SIGINT), its data surviving a restart.
#include <signal.h>

#include <filesystem>

#include <grpcpp/grpcpp.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "stepflow/v1/states.grpc.pb.h"
#include "tests/fixture/child_process.h"
#include "tests/fixture/cluster.h"

namespace stepflow {
namespace {

using ::testing::HasSubstr;

class DevClusterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           absl::StrCat("stepflow-dev-test-", getpid());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    port_ = testing::PickFreePort();
    metrics_port_ = testing::PickFreePort();
  }
  void TearDown() override {
    if (HasFailure() && dev_) std::cerr << dev_->LogTail();
    dev_.reset();
    std::filesystem::remove_all(dir_);
  }

  void StartDev() {
    auto dev = testing::ChildProcess::Start(
        "stepflow-dev",
        {STEPFLOW_CLI_BIN, "dev", "--data-dir", (dir_ / "data").string(), "--listen",
         absl::StrCat("127.0.0.1:", port_), "--metrics-listen",
         absl::StrCat("127.0.0.1:", metrics_port_), "--shards", "32"},
        (dir_ / "dev.log").string());
    ASSERT_TRUE(dev.ok()) << dev.status();
    dev_ = std::move(*dev);
    auto ready = dev_->WaitForOutput("Press Ctrl-C to stop.", absl::Seconds(60));
    ASSERT_TRUE(ready.ok()) << ready.status();
    ASSERT_TRUE(testing::WaitServing(address(), absl::Seconds(10)).ok());
    stub_ = v1::StepFunctions::NewStub(grpc::CreateChannel(address(), grpc::InsecureChannelCredentials()));
  }

  std::string address() const { return absl::StrCat("127.0.0.1:", port_); }

  std::filesystem::path dir_;
  int port_ = 0;
  int metrics_port_ = 0;
  std::unique_ptr<testing::ChildProcess> dev_;
  std::unique_ptr<v1::StepFunctions::Stub> stub_;
};

TEST_F(DevClusterTest, PrintsEndpointsStopsOnCtrlCAndKeepsData) {
  ASSERT_NO_FATAL_FAILURE(StartDev());
  std::string log = dev_->LogTail();
  EXPECT_THAT(log, HasSubstr(absl::StrCat("gateway (public API): 127.0.0.1:", port_)));
  EXPECT_THAT(log, HasSubstr("kafka (embedded):"));
  EXPECT_THAT(log, HasSubstr("eventbus:"));
  EXPECT_THAT(log, HasSubstr(absl::StrCat("metrics:              http://127.0.0.1:", metrics_port_)));

  v1::CreateStateMachineRequest create;
  create.set_name("dev-machine");
  create.set_definition(R"({"StartAt": "P", "States": {"P": {"Type": "Pass", "Result": {"ok": true}, "End": true}}})");
  v1::CreateStateMachineResponse created;
  grpc::ClientContext c1;
  ASSERT_TRUE(stub_->CreateStateMachine(&c1, create, &created).ok());
  v1::StartExecutionRequest start;
  start.set_state_machine_arn(created.state_machine_arn());
  start.set_name("first");
  v1::StartExecutionResponse started;
  grpc::ClientContext c2;
  ASSERT_TRUE(stub_->StartExecution(&c2, start, &started).ok());

  auto metrics = testing::HttpGet(absl::StrCat("127.0.0.1:", metrics_port_), "/metrics");
  ASSERT_TRUE(metrics.ok()) << metrics.status();
  EXPECT_THAT(*metrics, HasSubstr("method=\"StartExecution\""));
  // The gateway calls the shard server in its process directly (no shard
  // RPC metrics); the shard's own metrics are there.
  EXPECT_THAT(*metrics, HasSubstr("stepflow_shard_transitions_total 1"));

  EXPECT_EQ(dev_->Stop(SIGINT, absl::Seconds(20)), 0);
  EXPECT_THAT(dev_->LogTail(), HasSubstr("Stepflow dev cluster stopped."));

  ASSERT_NO_FATAL_FAILURE(StartDev());
  v1::DescribeExecutionRequest describe;
  describe.set_execution_arn(started.execution_arn());
  v1::DescribeExecutionResponse described;
  grpc::ClientContext c3;
  ASSERT_TRUE(stub_->DescribeExecution(&c3, describe, &described).ok());
  EXPECT_EQ(described.status(), "SUCCEEDED");
  EXPECT_EQ(described.output(), R"({"ok":true})");
  EXPECT_EQ(dev_->Stop(SIGTERM, absl::Seconds(20)), 0);
}

// The gateway calls the shard server of its process directly: the caller's
// deadline still ends the gateway's and the shard's work on a synchronous
// start (the execution runs on).
TEST_F(DevClusterTest, InProcessCallsKeepTheCallersDeadline) {
  ASSERT_NO_FATAL_FAILURE(StartDev());
  v1::CreateStateMachineRequest create;
  create.set_name("dev-slow");
  create.set_type("EXPRESS");
  create.set_definition(R"({"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 60, "End": true}}})");
  v1::CreateStateMachineResponse created;
  grpc::ClientContext c1;
  ASSERT_TRUE(stub_->CreateStateMachine(&c1, create, &created).ok());

  v1::StartSyncExecutionRequest start;
  start.set_state_machine_arn(created.state_machine_arn());
  start.set_name("short-deadline");
  v1::StartSyncExecutionResponse response;
  grpc::ClientContext c2;
  c2.set_deadline(absl::ToChronoTime(absl::Now() + absl::Milliseconds(500)));
  EXPECT_EQ(stub_->StartSyncExecution(&c2, start, &response).error_code(),
            grpc::StatusCode::DEADLINE_EXCEEDED);

  // The gateway's handler returned soon after the deadline (its metrics
  // count a call only once it has returned), not when the Wait ends.
  const absl::Time give_up = absl::Now() + absl::Seconds(10);
  bool handled = false;
  while (!handled && absl::Now() < give_up) {
    auto metrics = testing::HttpGet(absl::StrCat("127.0.0.1:", metrics_port_), "/metrics");
    ASSERT_TRUE(metrics.ok()) << metrics.status();
    handled = absl::StrContains(*metrics, "method=\"StartSyncExecution\"");
    if (!handled) absl::SleepFor(absl::Milliseconds(100));
  }
  EXPECT_TRUE(handled) << "the synchronous start was still being served 10 s after its deadline";
  EXPECT_EQ(dev_->Stop(SIGTERM, absl::Seconds(20)), 0);
}

TEST_F(DevClusterTest, RefusesADifferentShardCount) {
  ASSERT_NO_FATAL_FAILURE(StartDev());
  EXPECT_EQ(dev_->Stop(SIGINT, absl::Seconds(20)), 0);
  auto dev = testing::ChildProcess::Start(
      "stepflow-dev",
      {STEPFLOW_CLI_BIN, "dev", "--data-dir", (dir_ / "data").string(), "--listen",
       absl::StrCat("127.0.0.1:", port_), "--metrics-listen", "", "--shards", "64"},
      (dir_ / "dev2.log").string());
  ASSERT_TRUE(dev.ok());
  auto line = (*dev)->WaitForOutput("logical shards, but", absl::Seconds(30));
  EXPECT_TRUE(line.ok()) << line.status();
  EXPECT_EQ((*dev)->Stop(SIGTERM, absl::Seconds(10)), 1);
}

}  // namespace
}  // namespace stepflow
