#include "common/rpc/local_call.h"

#include "absl/time/clock.h"

namespace stepflow::rpc {

bool LocalServerContext::LocalCancelled() const {
  if (parent_ == nullptr) return false;
  if (const auto* sync = dynamic_cast<const grpc::ServerContext*>(parent_)) {
    return CallCancelled(*sync);
  }
  return parent_->IsCancelled();
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

}  // namespace stepflow::rpc
