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

#include "absl/time/time.h"

namespace stepflow::rpc {

class LocalServerContext : public grpc::ServerContext {
 public:
  // `parent`, when not null, is the call being served on whose behalf this
  // one is made: its cancellation cancels this call. It must outlive this
  // context.
  LocalServerContext(absl::Time deadline, const grpc::ServerContextBase* parent)
      : deadline_(deadline), parent_(parent) {}

  absl::Time local_deadline() const { return deadline_; }
  bool LocalCancelled() const;

 private:
  absl::Time deadline_;
  // A synchronous or a callback call.
  const grpc::ServerContextBase* parent_;
};

// The deadline of the call `context` serves (infinite when none).
absl::Time CallDeadline(const grpc::ServerContext& context);
// Whether the caller of `context`'s call went away.
bool CallCancelled(const grpc::ServerContext& context);

}  // namespace stepflow::rpc

#endif  // STEPFLOW_COMMON_RPC_LOCAL_CALL_H_
