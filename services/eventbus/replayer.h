// Replayer: runs the replays of the catalog (see archive.h) on the one
// eventbus replica that `owns_replays` says runs them (the eventbus: the one
// its consumer group gave partition 0 of the default bus topic, so another
// replica takes over when it stops).
//
// A replay STARTING goes RUNNING, its archive's topic is read to its end,
// the events whose time is in the replay's window (and within the archive's
// retention) are sent, oldest first and marked with "replay-name", to the
// destination bus's topic in batches; after each batch the replay's
// EventLastReplayedTime is written to the catalog and a cancel request is
// looked for. It ends COMPLETED, CANCELLED, or FAILED (its archive or
// destination bus is gone). Replays run one at a time.
//
// State lives in the catalog only, so a replay interrupted by a stop or a
// hand-over is run again from the start of its window by whichever replica
// runs replays next: the events sent twice start nothing twice, since their
// execution names derive from (event, replay, rule, target).
//
// Thread-safety: constructed and destroyed by one thread. Runs one
// background thread.
#ifndef STEPFLOW_SERVICES_EVENTBUS_REPLAYER_H_
#define STEPFLOW_SERVICES_EVENTBUS_REPLAYER_H_

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "stepflow/v1/events.pb.h"

namespace stepflow::kafka {
class Producer;
}  // namespace stepflow::kafka

namespace stepflow::eventbus {

class Catalog;

struct ReplayerOptions {
  std::string brokers;
  // Writable. Not owned; must outlive the replayer.
  Catalog* catalog = nullptr;
  // Sends the replayed events. Not owned; must outlive the replayer.
  kafka::Producer* producer = nullptr;
  // Whether this replica runs replays now.
  std::function<bool()> owns_replays;
  std::function<absl::Time()> now;  // absl::Now when unset
  absl::Duration poll_interval = absl::Milliseconds(500);
  // Events sent per batch (and per progress write).
  int batch_size = 100;
  // How long reading an archive to its end may take before the replay is
  // tried again.
  absl::Duration read_timeout = absl::Seconds(30);
};

class Replayer {
 public:
  // INVALID_ARGUMENT for missing options.
  static absl::StatusOr<std::unique_ptr<Replayer>> Start(
      ReplayerOptions options);
  Replayer(const Replayer&) = delete;
  Replayer& operator=(const Replayer&) = delete;
  // Stops; a replay under way is left for the next run.
  ~Replayer();

  // Replays run to an end (COMPLETED, CANCELLED or FAILED) here.
  int64_t finished() const { return finished_.load(); }

 private:
  explicit Replayer(ReplayerOptions options);
  void Loop();
  // Runs one replay until it ends or this replica stops.
  void Run(v1::DescribeReplayResponse replay);
  // Writes `replay` ended in `state`.
  void Finish(v1::DescribeReplayResponse replay, const char* state,
              const std::string& reason);
  bool SleepUnlessStopping(absl::Duration duration);

  const ReplayerOptions options_;
  std::atomic<bool> stopping_{false};
  std::atomic<int64_t> finished_{0};
  std::thread loop_;  // last: started once everything above exists
};

}  // namespace stepflow::eventbus

#endif  // STEPFLOW_SERVICES_EVENTBUS_REPLAYER_H_
