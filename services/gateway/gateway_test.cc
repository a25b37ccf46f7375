// The gateway against a shard service in its own process (as in
// `stepflow dev`): what it forwards for StartExecution, and that a shard
// handler may answer after it has returned (from its group committer).
#include "services/gateway/gateway.h"

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "common/rpc/local_call.h"
#include "common/rpc/status.h"
#include "gtest/gtest.h"
#include "stepflow/internal/v1/shard.grpc.pb.h"
#include "stepflow/v1/states.grpc.pb.h"

namespace stepflow::gateway {
namespace {

namespace iv1 = internal::v1;

constexpr char kMachineArn[] = "arn:aws:states:us-east-1:123456789012:stateMachine:orders";

// Records the starts it is given. A start named "later" is answered from
// another thread after the handler has returned, as the shard's group
// committer answers.
class RecordingShard final : public iv1::ShardService::Service {
 public:
  ~RecordingShard() override {
    absl::MutexLock lock(&mu_);
    for (std::thread& thread : answerers_) thread.join();
  }

  grpc::Status StartExecution(grpc::ServerContext* context,
                              const iv1::StartExecutionShardRequest* request,
                              v1::StartExecutionResponse* response) override {
    {
      absl::MutexLock lock(&mu_);
      starts_.push_back(*request);
    }
    response->set_execution_arn(absl::StrCat("arn:test:", request->request().name()));
    if (request->request().name() != "later") return grpc::Status::OK;
    rpc::LocalServerContext::LaterAnswer* later = rpc::AnswerLaterOf(context);
    if (later == nullptr) {
      return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, "no answer offered");
    }
    {
      absl::MutexLock lock(&mu_);
      answerers_.emplace_back([answer = std::move(*later)]() mutable {
        absl::SleepFor(absl::Milliseconds(50));
        std::move(answer)(absl::OkStatus());
      });
    }
    *later = nullptr;
    // What the handler returns now is not the call's answer.
    return grpc::Status(grpc::StatusCode::INTERNAL, "not the answer");
  }

  std::vector<iv1::StartExecutionShardRequest> starts() {
    absl::MutexLock lock(&mu_);
    return starts_;
  }

 private:
  absl::Mutex mu_;
  std::vector<iv1::StartExecutionShardRequest> starts_ ABSL_GUARDED_BY(mu_);
  std::vector<std::thread> answerers_ ABSL_GUARDED_BY(mu_);
};

class GatewayTest : public ::testing::Test {
 protected:
  void SetUp() override {
    GatewayOptions options;
    options.shard_map = config::ShardMap(16, {"in-process"});
    options.local_shard_services = {&shard_};
    options.listen_address = "127.0.0.1:0";
    options.new_execution_name = [] { return std::string("generated-1"); };
    auto gateway = Gateway::Start(std::move(options));
    ASSERT_TRUE(gateway.ok()) << gateway.status();
    gateway_ = *std::move(gateway);
    stub_ = v1::StepFunctions::NewStub(gateway_->InProcessChannel());
  }
  void TearDown() override {
    if (gateway_) gateway_->Shutdown();
  }

  grpc::Status Start(const std::string& name, v1::StartExecutionResponse* response) {
    v1::StartExecutionRequest request;
    request.set_state_machine_arn(kMachineArn);
    request.set_name(name);
    request.set_input(R"({"n": 1})");
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
    return stub_->StartExecution(&context, request, response);
  }

  RecordingShard shard_;  // outlives the gateway
  std::unique_ptr<Gateway> gateway_;
  std::unique_ptr<v1::StepFunctions::Stub> stub_;
};

TEST_F(GatewayTest, MarksTheNamesItGenerates) {
  v1::StartExecutionResponse response;
  ASSERT_TRUE(Start("", &response).ok());
  ASSERT_TRUE(Start("chosen", &response).ok());
  std::vector<iv1::StartExecutionShardRequest> starts = shard_.starts();
  ASSERT_EQ(starts.size(), 2u);
  EXPECT_EQ(starts[0].request().name(), "generated-1");
  EXPECT_TRUE(starts[0].name_generated());
  EXPECT_EQ(starts[1].request().name(), "chosen");
  EXPECT_FALSE(starts[1].name_generated());
  // The shard resolves the revision the name's start runs.
  EXPECT_EQ(starts[1].resolve_arn(), kMachineArn);
}

TEST_F(GatewayTest, AShardHandlerMayAnswerAfterItReturned) {
  v1::StartExecutionResponse response;
  const absl::Time before = absl::Now();
  grpc::Status status = Start("later", &response);
  EXPECT_TRUE(status.ok()) << status.error_message();
  EXPECT_GE(absl::Now() - before, absl::Milliseconds(50));
  EXPECT_EQ(response.execution_arn(), "arn:test:later");
}

}  // namespace
}  // namespace stepflow::gateway
