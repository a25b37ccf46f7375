#include "services/execution/peer_breaker.h"

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>

#include <map>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/log/log.h"

namespace stepflow::execution {

PeerBreaker::PeerBreaker(std::vector<std::string> names, absl::Duration call_timeout,
                         prometheus::Registry* registry)
    : call_timeout_(call_timeout) {
  peers_.resize(names.size());
  for (size_t i = 0; i < names.size(); ++i) peers_[i].name = std::move(names[i]);
  if (registry == nullptr) return;
  auto& failed_fast = prometheus::BuildCounter()
                          .Name("stepflow_peer_calls_failed_fast_total")
                          .Help("Calls to another shard server failed at once because it had "
                                "stopped answering (one probe call at a time goes through).")
                          .Register(*registry);
  auto& unresponsive = prometheus::BuildGauge()
                           .Name("stepflow_peer_unresponsive")
                           .Help("1 while another shard server is taken for unresponsive: a "
                                 "call to it ran into its deadline and none has answered since.")
                           .Register(*registry);
  for (size_t i = 0; i < peers_.size(); ++i) {
    const std::map<std::string, std::string> labels = {{"peer", std::to_string(i)}};
    peers_[i].failed_fast = &failed_fast.Add(labels);
    peers_[i].unresponsive_gauge = &unresponsive.Add(labels);
  }
}

absl::StatusOr<PeerBreaker::Ticket> PeerBreaker::Admit(int peer) {
  absl::MutexLock lock(&mu_);
  Peer& state = peers_[peer];
  if (!state.unresponsive) return Ticket{peer, /*probe=*/false};
  if (!state.probe_out) {
    state.probe_out = true;
    return Ticket{peer, /*probe=*/true};
  }
  if (state.failed_fast != nullptr) state.failed_fast->Increment();
  return absl::UnavailableError(absl::StrCat(
      state.name, " has not answered since ", absl::FormatTime(state.since),
      " (a call to it ran past its ", absl::FormatDuration(call_timeout_),
      " deadline); calls to it fail at once while one call at a time tries it again"));
}

void PeerBreaker::Settle(const Ticket& ticket, bool hung) {
  absl::MutexLock lock(&mu_);
  Peer& state = peers_[ticket.peer];
  if (ticket.probe) state.probe_out = false;
  if (hung == state.unresponsive) return;
  if (hung) {
    state.unresponsive = true;
    state.since = absl::Now();
    if (state.unresponsive_gauge != nullptr) state.unresponsive_gauge->Set(1);
    log::Warn("shard", "a shard server stopped answering; calls to it now fail at once",
              {{"peer", state.name}, {"deadline", absl::FormatDuration(call_timeout_)}});
    return;
  }
  state.unresponsive = false;
  if (state.unresponsive_gauge != nullptr) state.unresponsive_gauge->Set(0);
  log::Info("shard", "a shard server answers again",
            {{"peer", state.name},
             {"unresponsive_for", absl::FormatDuration(absl::Now() - state.since)}});
}

bool PeerBreaker::Unresponsive(int peer) const {
  absl::MutexLock lock(&mu_);
  return peers_[peer].unresponsive;
}

}  // namespace stepflow::execution
