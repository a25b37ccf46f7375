#include "common/rpc/local_call.h"

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/support/method_handler.h>

#include <atomic>
#include <future>
#include <memory>
#include <string>

#include "absl/time/clock.h"
#include "common/rpc/server.h"
#include "gtest/gtest.h"

namespace stepflow::rpc {
namespace {

constexpr char kWait[] = "/stepflow.test.Local/Wait";

// Serves kWait by making a "local call" on behalf of the served one, and
// reports what the local call saw of its parent's deadline and
// cancellation.
class ParentService : public grpc::Service {
 public:
  ParentService() {
    AddMethod(new grpc::internal::RpcServiceMethod(
        kWait, grpc::internal::RpcMethod::NORMAL_RPC,
        new grpc::internal::RpcMethodHandler<ParentService, grpc::ByteBuffer, grpc::ByteBuffer>(
            [](ParentService* self, grpc::ServerContext* context, const grpc::ByteBuffer*,
               grpc::ByteBuffer*) { return self->Wait(context); },
            this)));
  }

  std::promise<absl::Time> parent_deadline;
  std::promise<bool> local_saw_cancel;

 private:
  grpc::Status Wait(grpc::ServerContext* context) {
    parent_deadline.set_value(CallDeadline(*context));
    LocalServerContext local(absl::InfiniteFuture(), context);
    const absl::Time give_up = absl::Now() + absl::Seconds(10);
    while (!CallCancelled(local) && absl::Now() < give_up) absl::SleepFor(absl::Milliseconds(5));
    local_saw_cancel.set_value(CallCancelled(local));
    return grpc::Status(grpc::StatusCode::CANCELLED, "the caller went away");
  }
};

TEST(LocalCallTest, CarriesItsOwnDeadline) {
  const absl::Time deadline = absl::Now() + absl::Seconds(3);
  LocalServerContext context(deadline, nullptr);
  EXPECT_EQ(CallDeadline(context), deadline);
  EXPECT_FALSE(CallCancelled(context));
  // A local call made on behalf of another local call.
  LocalServerContext nested(deadline + absl::Seconds(1), &context);
  EXPECT_EQ(CallDeadline(nested), deadline + absl::Seconds(1));
  EXPECT_FALSE(CallCancelled(nested));
}

TEST(LocalCallTest, CallsThatMayNotBlockCanBeDeclined) {
  LocalServerContext may_block(absl::InfiniteFuture(), nullptr);
  EXPECT_TRUE(CallMayBlock(may_block));
  DeclineBlockingCall(&may_block);
  EXPECT_TRUE(may_block.declined());

  LocalServerContext must_not(absl::InfiniteFuture(), nullptr, /*may_block=*/false);
  EXPECT_FALSE(CallMayBlock(must_not));
  EXPECT_FALSE(must_not.declined());
  DeclineBlockingCall(&must_not);
  EXPECT_TRUE(must_not.declined());

  // A call that came through gRPC may always block; declining it does
  // nothing.
  grpc::ServerContext remote;
  EXPECT_TRUE(CallMayBlock(remote));
  DeclineBlockingCall(&remote);
}

TEST(LocalCallTest, AHandlerMayTakeTheOfferedAnswerAndGiveItLater) {
  // Nothing offered: nothing to take.
  LocalServerContext plain(absl::InfiniteFuture(), nullptr, /*may_block=*/false);
  EXPECT_EQ(AnswerLaterOf(&plain), nullptr);
  EXPECT_FALSE(plain.answered_later());
  grpc::ServerContext remote;
  EXPECT_EQ(AnswerLaterOf(&remote), nullptr);

  absl::Status answered = absl::UnknownError("not answered");
  LocalServerContext::LaterAnswer kept;
  {
    LocalServerContext offered(absl::InfiniteFuture(), nullptr, /*may_block=*/false);
    offered.OfferAnswerLater([&answered](absl::Status status) { answered = status; });
    EXPECT_FALSE(offered.answered_later());
    LocalServerContext::LaterAnswer* answer = AnswerLaterOf(&offered);
    ASSERT_NE(answer, nullptr);
    kept = std::move(*answer);
    *answer = nullptr;
    EXPECT_TRUE(offered.answered_later());
    EXPECT_EQ(AnswerLaterOf(&offered), nullptr);  // taken once only
  }
  // The context is gone; the answer still reaches the caller.
  std::move(kept)(absl::OkStatus());
  EXPECT_TRUE(answered.ok()) << answered;

  // Offered but not taken: the caller answers itself.
  LocalServerContext untaken(absl::InfiniteFuture(), nullptr, /*may_block=*/false);
  untaken.OfferAnswerLater([](absl::Status) {});
  EXPECT_NE(AnswerLaterOf(&untaken), nullptr);
  EXPECT_FALSE(untaken.answered_later());
}

TEST(LocalCallTest, EndsWhenTheCallerOfItsParentGoesAway) {
  ParentService service;
  ServerOptions options;
  options.listen_address = "127.0.0.1:0";
  options.component = "test";
  options.services = {&service};
  auto server = RunningServer::Start(std::move(options));
  ASSERT_TRUE(server.ok()) << server.status();

  grpc::GenericStub stub(MakeChannel((*server)->address()));
  grpc::ClientContext context;
  const absl::Time deadline = absl::Now() + absl::Milliseconds(300);
  context.set_deadline(absl::ToChronoTime(deadline));
  grpc::Slice slice(std::string("x"));
  grpc::ByteBuffer request(&slice, 1);
  grpc::ByteBuffer response;
  std::promise<grpc::Status> done;
  stub.UnaryCall(&context, kWait, grpc::StubOptions(), &request, &response,
                 [&done](grpc::Status status) { done.set_value(std::move(status)); });
  EXPECT_EQ(done.get_future().get().error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);

  // The served call knew its caller's deadline, and the local call saw the
  // cancellation that followed it.
  auto parent_deadline = service.parent_deadline.get_future();
  ASSERT_EQ(parent_deadline.wait_for(std::chrono::seconds(15)), std::future_status::ready);
  EXPECT_LT(absl::AbsDuration(parent_deadline.get() - deadline), absl::Milliseconds(100));
  auto saw_cancel = service.local_saw_cancel.get_future();
  ASSERT_EQ(saw_cancel.wait_for(std::chrono::seconds(15)), std::future_status::ready);
  EXPECT_TRUE(saw_cancel.get());
  (*server)->Shutdown(absl::Seconds(1));
}

}  // namespace
}  // namespace stepflow::rpc
