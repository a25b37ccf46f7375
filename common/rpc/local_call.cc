#include "common/rpc/local_call.h"

#include "absl/time/clock.h"

namespace stepflow::rpc {

namespace {

bool ParentCancelled(const grpc::ServerContextBase* parent) {
  if (parent == nullptr) return false;
  if (const auto* sync = dynamic_cast<const grpc::ServerContext*>(parent)) {
    return CallCancelled(*sync);
  }
  return parent->IsCancelled();
}

}  // namespace

bool LocalServerContext::LocalCancelled() const { return ParentCancelled(parent_); }

std::function<bool()> LocalServerContext::CancelledLater() const {
  return [parent = parent_] { return ParentCancelled(parent); };
}

absl::Time CallDeadline(const grpc::ServerContext& context) {
  if (const auto* local = dynamic_cast<const LocalServerContext*>(&context)) {
    return local->local_deadline();
  }
  return absl::FromChrono(context.deadline());
}

bool CallCancelled(const grpc::ServerContext& context) {
  if (const auto* local = dynamic_cast<const LocalServerContext*>(&context)) {
    return local->LocalCancelled();
  }
  return context.IsCancelled();
}

std::function<bool()> CancelledLaterOf(const grpc::ServerContext& context) {
  if (const auto* local = dynamic_cast<const LocalServerContext*>(&context)) {
    return local->CancelledLater();
  }
  return [&context] { return context.IsCancelled(); };
}

bool CallMayBlock(const grpc::ServerContext& context) {
  const auto* local = dynamic_cast<const LocalServerContext*>(&context);
  return local == nullptr || local->may_block();
}

void DeclineBlockingCall(grpc::ServerContext* context) {
  if (auto* local = dynamic_cast<LocalServerContext*>(context)) local->Decline();
}

LocalServerContext::LaterAnswer* AnswerLaterOf(grpc::ServerContext* context) {
  auto* local = dynamic_cast<LocalServerContext*>(context);
  if (local == nullptr || !local->answer_later_offered_ || !local->answer_later_) return nullptr;
  return &local->answer_later_;
}

}  // namespace stepflow::rpc
