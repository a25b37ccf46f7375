// PeerBreaker: remembers which shard servers stopped answering, so that
// calls to a server that hangs (stopped, or its host unreachable without a
// reset) fail at once instead of each holding a thread until its deadline.
//
// A call that runs into its own deadline marks its peer unresponsive. From
// then on one call at a time goes through to that peer (the probe) and the
// others fail at once with UNAVAILABLE, which the outbox retries later and
// a client may retry. Any answer from the peer, an error included, marks it
// responsive again. Calls to a peer that refuses connections need nothing
// of this: gRPC fails them at once by itself.
//
//   PeerBreaker breaker({"shard server 0 at 10.0.0.1:7300", ...}, registry);
//   absl::StatusOr<PeerBreaker::Ticket> ticket = breaker.Admit(peer);
//   if (!ticket.ok()) return ticket.status();
//   absl::Status status = Call(peer, deadline);
//   breaker.Settle(*ticket, /*hung=*/absl::IsDeadlineExceeded(status) && Now() >= deadline);
//
// Thread-safe.
#ifndef STEPFLOW_SERVICES_EXECUTION_PEER_BREAKER_H_
#define STEPFLOW_SERVICES_EXECUTION_PEER_BREAKER_H_

#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace prometheus {
class Counter;
class Gauge;
class Registry;
}  // namespace prometheus

namespace stepflow::execution {

class PeerBreaker {
 public:
  // A call let through to a peer; hand it back to Settle.
  struct Ticket {
    int peer = 0;
    // The one call let through to an unresponsive peer.
    bool probe = false;
  };

  // `names` says, per peer index, what the peer is in messages and logs;
  // `call_timeout` is the deadline of each call, for messages. Metrics go
  // to `registry` when it is not null (it must outlive the breaker).
  PeerBreaker(std::vector<std::string> names, absl::Duration call_timeout,
              prometheus::Registry* registry = nullptr);
  PeerBreaker(const PeerBreaker&) = delete;
  PeerBreaker& operator=(const PeerBreaker&) = delete;

  // Lets a call to `peer` through, or answers UNAVAILABLE at once when the
  // peer is unresponsive and its probe is still out.
  absl::StatusOr<Ticket> Admit(int peer);

  // Reports how the call of `ticket` ended: `hung` when it ran into its own
  // deadline without an answer.
  void Settle(const Ticket& ticket, bool hung);

  bool Unresponsive(int peer) const;

 private:
  struct Peer {
    std::string name;
    bool unresponsive = false;
    bool probe_out = false;
    absl::Time since;  // when it was found unresponsive
    prometheus::Counter* failed_fast = nullptr;
    prometheus::Gauge* unresponsive_gauge = nullptr;
  };

  const absl::Duration call_timeout_;
  mutable absl::Mutex mu_;
  std::vector<Peer> peers_ ABSL_GUARDED_BY(mu_);
};

}  // namespace stepflow::execution

#endif  // STEPFLOW_SERVICES_EXECUTION_PEER_BREAKER_H_
