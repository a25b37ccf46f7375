#include "services/execution/shard_service.h"

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <filesystem>
#include <memory>
#include <string>

#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "common/clock/clock.h"
#include "common/rpc/server.h"
#include "google/protobuf/descriptor.h"
#include "gtest/gtest.h"
#include "stepflow/internal/v1/shard.grpc.pb.h"

namespace stepflow::execution {
namespace {

// The shard server serves its methods through a hand-written list (one
// callback handler per method); a method the list misses would answer
// UNIMPLEMENTED. Every method of the service, as its descriptor names them,
// must reach the shard, whatever it then answers to an empty request.
TEST(ShardServiceTest, EveryMethodOfTheServiceIsServed) {
  const std::filesystem::path dir = std::filesystem::temp_directory_path() /
                                    ("shard_service_test_" + std::to_string(getpid()));
  std::filesystem::remove_all(dir);
  clock::RealClock clock;
  ShardServerOptions options;
  options.core.clock = &clock;
  options.core.data_dir = dir.string();
  options.core.shard_count = 16;
  options.listen_address = "127.0.0.1:0";
  auto server = ShardServer::Start(options);
  ASSERT_TRUE(server.ok()) << server.status();

  const google::protobuf::ServiceDescriptor* service =
      google::protobuf::DescriptorPool::generated_pool()->FindServiceByName(
          internal::v1::ShardService::service_full_name());
  ASSERT_NE(service, nullptr);
  ASSERT_GT(service->method_count(), 0);
  grpc::GenericStub stub(rpc::MakeChannel((*server)->address()));
  for (int i = 0; i < service->method_count(); ++i) {
    const std::string method =
        "/" + service->full_name() + "/" + service->method(i)->name();
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(2)));
    grpc::Slice empty;
    grpc::ByteBuffer request(&empty, 1);
    grpc::ByteBuffer response;
    grpc::Status status;
    absl::Notification done;
    stub.UnaryCall(&context, method, grpc::StubOptions(), &request, &response,
                   [&](grpc::Status answered) {
                     status = std::move(answered);
                     done.Notify();
                   });
    ASSERT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(10))) << method;
    EXPECT_NE(status.error_code(), grpc::StatusCode::UNIMPLEMENTED)
        << method << ": " << status.error_message();
  }
  (*server)->Shutdown();
  server->reset();
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace stepflow::execution
