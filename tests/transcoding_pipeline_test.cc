// examples/transcoding-pipeline end to end (scenario: a pipeline of child
// workflows): a STANDARD parent runs an EXPRESS ingest child, then process
// and publish children, each with states:startExecution.sync:2, on three
// shard servers, with the example's activities served by stepflow-worker
// processes running its scripts.
#include <grpcpp/grpcpp.h>

#include "absl/strings/str_cat.h"
#include "common/json/json.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "stepflow/v1/states.grpc.pb.h"
#include "tests/fixture/api_client.h"
#include "tests/fixture/child_process.h"
#include "tests/fixture/cluster.h"
#include "tests/fixture/example_files.h"

namespace stepflow {
namespace {

constexpr char kExample[] = "transcoding-pipeline";

std::string ExamplePath(const std::string& name) { return testing::ExamplePath(kExample, name); }
std::string ExampleFile(const std::string& name) { return testing::ExampleFile(kExample, name); }

class TranscodingPipelineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto cluster = testing::TestCluster::Start({.shard_servers = 3, .logical_shards = 16});
    ASSERT_TRUE(cluster.ok()) << cluster.status();
    cluster_ = std::move(*cluster);
    api_ = std::make_unique<testing::StepFunctionsClient>(cluster_->GatewayChannel());
    for (const char* activity : {"probe-video", "encode-video", "check-output"}) {
      api_->CreateActivity(activity);
      auto worker = testing::ChildProcess::Start(
          activity,
          {STEPFLOW_WORKER_BIN, "--endpoint", cluster_->gateway_address(), "--activity",
           activity, "--", "/bin/sh", ExamplePath(absl::StrCat(activity, ".sh"))},
          absl::StrCat(cluster_->work_dir(), "/", activity, ".log"));
      ASSERT_TRUE(worker.ok()) << worker.status();
      workers_.push_back(std::move(*worker));
    }
    api_->CreateStateMachine("ingest", ExampleFile("ingest.asl.json"), "EXPRESS");
    for (const char* machine : {"process", "publish"}) {
      api_->CreateStateMachine(machine, ExampleFile(absl::StrCat(machine, ".asl.json")));
    }
    main_ = api_->CreateStateMachine("main", ExampleFile("main.asl.json"));
  }
  void TearDown() override {
    for (auto& worker : workers_) worker->Stop(SIGTERM, absl::Seconds(10));
    if (HasFailure() && cluster_) std::cerr << cluster_->Logs();
  }

  std::unique_ptr<testing::TestCluster> cluster_;
  std::unique_ptr<testing::StepFunctionsClient> api_;
  std::vector<std::unique_ptr<testing::ChildProcess>> workers_;
  std::string main_;
};

TEST_F(TranscodingPipelineTest, ChildWorkflowsRunInTurnAndPublishTheVideo) {
  const std::string run = api_->StartExecution(main_, R"({"video": "holiday-4k"})", "holiday");
  auto closed = api_->AwaitClosed(run, absl::Seconds(90));
  ASSERT_EQ(closed.status(), "SUCCEEDED") << closed.error() << ": " << closed.cause();
  EXPECT_EQ(closed.output(), R"({"published":"encoded/holiday-4k.uhd.mp4","profile":"uhd"})");

  std::vector<std::string> types;
  for (const auto& event : api_->History(run)) types.push_back(event.type());
  EXPECT_EQ(std::count(types.begin(), types.end(), "TaskSubmitted"), 3);
  EXPECT_EQ(std::count(types.begin(), types.end(), "TaskSucceeded"), 3);
  EXPECT_EQ(types.back(), "ExecutionSucceeded");

  // A smaller video takes the standard profile.
  const std::string small = api_->StartExecution(main_, R"({"video": "cat"})", "cat");
  auto small_closed = api_->AwaitClosed(small, absl::Seconds(90));
  ASSERT_EQ(small_closed.status(), "SUCCEEDED");
  EXPECT_EQ(small_closed.output(), R"({"published":"encoded/cat.sd.mp4","profile":"sd"})");
}

}  // namespace
}  // namespace stepflow
