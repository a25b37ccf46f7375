// Calls to a gRPC service implementation in the same process without
// gRPC: the caller invokes the service's handler directly with a
// LocalServerContext, which carries the caller's deadline and
// cancellation. No serialization, no completion queue, no thread hop.
// Handlers that look at their call's deadline or cancellation read them
// through CallDeadline / CallCancelled, which understand both kinds of
// context.
//
//   rpc::LocalServerContext context(deadline, parent_context);
//   grpc::Status status = service->Method(&context, &request, &response);
#ifndef STEPFLOW_COMMON_RPC_LOCAL_CALL_H_
#define STEPFLOW_COMMON_RPC_LOCAL_CALL_H_

#include <grpcpp/server_context.h>

#include <functional>
#include <utility>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/time/time.h"

namespace stepflow::rpc {

class LocalServerContext : public grpc::ServerContext {
 public:
  // `parent`, when not null, is the call being served on whose behalf this
  // one is made: its cancellation cancels this call. It must outlive this
  // context.
  //
  // `may_block` false: the caller's thread must not wait (a gRPC callback
  // thread). A handler that supports this declines work that would wait
  // (see DeclineBlockingCall) and the caller calls again from a thread that
  // may; other handlers ignore it, so only handlers known never to wait, or
  // to decline, may be called so.
  LocalServerContext(absl::Time deadline, const grpc::ServerContextBase* parent,
                     bool may_block = true)
      : deadline_(deadline), parent_(parent), may_block_(may_block) {}

  absl::Time local_deadline() const { return deadline_; }
  bool LocalCancelled() const;
  // LocalCancelled for a handler that answers later: it asks the parent
  // call, which lives until the answer, so it may be called after this
  // context is gone.
  std::function<bool()> CancelledLater() const;
  bool may_block() const { return may_block_; }
  bool declined() const { return declined_; }
  void Decline() { declined_ = true; }

  // How a handler answers after it has returned (see AnswerLaterOf).
  using LaterAnswer = absl::AnyInvocable<void(absl::Status) &&>;
  // A caller that need not have the answer on return (a callback handler)
  // offers `answer`: a handler that supports it may take it and call it
  // once, from any thread, after it returns; the caller then answers
  // with what that call brings instead of the handler's return value.
  void OfferAnswerLater(LaterAnswer answer) {
    answer_later_ = std::move(answer);
    answer_later_offered_ = true;
  }
  // Whether the handler took the offered answer.
  bool answered_later() const { return answer_later_offered_ && !answer_later_; }

 private:
  absl::Time deadline_;
  // A synchronous or a callback call.
  const grpc::ServerContextBase* parent_;
  const bool may_block_;
  bool declined_ = false;
  bool answer_later_offered_ = false;
  LaterAnswer answer_later_;

  friend LaterAnswer* AnswerLaterOf(grpc::ServerContext* context);
};

// The deadline of the call `context` serves (infinite when none).
absl::Time CallDeadline(const grpc::ServerContext& context);
// Whether the caller of `context`'s call went away.
bool CallCancelled(const grpc::ServerContext& context);
// CallCancelled as a function a handler that answers later may call after
// it has returned (see LocalServerContext::CancelledLater); for a call
// not made locally, valid while `context` is.
std::function<bool()> CancelledLaterOf(const grpc::ServerContext& context);
// Whether the handler of `context`'s call may wait (false only for a local
// call made with may_block false).
bool CallMayBlock(const grpc::ServerContext& context);
// Declines a call that may not block (see LocalServerContext): the handler
// then returns without having done anything.
void DeclineBlockingCall(grpc::ServerContext* context);
// The answer `context`'s caller offered to take later (see
// LocalServerContext::OfferAnswerLater), or null. A handler that takes it
// moves it out and leaves it empty (`*answer = nullptr`), and must not rely
// on `context` once it has returned.
LocalServerContext::LaterAnswer* AnswerLaterOf(grpc::ServerContext* context);

}  // namespace stepflow::rpc

#endif  // STEPFLOW_COMMON_RPC_LOCAL_CALL_H_
