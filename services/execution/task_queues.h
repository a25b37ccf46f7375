// TaskQueues: the in-memory side of the activity task queue partitions a
// shard server owns — the backlog of each activity (all its local
// partitions merged in arrival order), the pollers waiting on it, and the
// scaling metrics operators autoscale workers on.
//
// ShardCore keeps the durable copy of the backlog in RocksDB and calls
// Add / Take / PutBack / Remove around its writes; this class does no I/O.
//
//   TaskQueues queues(registry, clock);
//   queues.Add({seq, shard, task});
//   auto taken = queues.Take(arn, /*max_tasks=*/8, kMaxBatchBytes, deadline, cancelled);
//
// A poller waits on its own condition variable, in its activity's line of
// waiting pollers, so a task wakes exactly one poller of its activity (the
// one waiting longest), and idle pollers cost a wake-up every kIdleRecheck
// only (to notice callers that went away).
//
// Direct hand-over: a transition that schedules a task may Claim the
// longest-waiting poller of its activity before it writes (recording
// ActivityStarted for that poller in the same write, with no backlog
// record), then Hand it the task once the write is durable, or Release it
// when the write fails. A claimed poller waits for one or the other
// whatever its deadline, which takes no longer than the write.
//
// Thread-safe.
#ifndef STEPFLOW_SERVICES_EXECUTION_TASK_QUEUES_H_
#define STEPFLOW_SERVICES_EXECUTION_TASK_QUEUES_H_

#include <cstdint>
#include <atomic>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/functional/any_invocable.h"
#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock/clock.h"
#include "stepflow/internal/v1/shard.pb.h"

namespace prometheus {
class Counter;
class Gauge;
class Histogram;
class Registry;
template <typename T>
class Family;
}  // namespace prometheus

namespace stepflow::execution {

class TaskQueues {
 public:
  struct Queued {
    uint64_t seq = 0;    // durable backlog key order
    uint32_t shard = 0;  // the logical shard of the task's partition
    internal::v1::ActivityTask task;
  };
  // Why a poll ended, as the poll-result metric counts it.
  enum class PollResult { kSyncMatch, kBacklog, kEmpty };
  // A Take call waiting for a task (opaque outside this class).
  struct Waiter;

  // `registry` may be null (no metrics); `clock` gives schedule-to-start
  // and backlog ages. Both must outlive the queues.
  TaskQueues(prometheus::Registry* registry, clock::Clock* clock);
  ~TaskQueues();

  TaskQueues(const TaskQueues&) = delete;
  TaskQueues& operator=(const TaskQueues&) = delete;

  // Appends a durably stored task and wakes one poller of its activity.
  void Add(Queued queued);
  // Drops the task `task_id` of `activity_arn` if still queued.
  std::optional<Queued> Remove(absl::string_view activity_arn, absl::string_view task_id);

  // Waits until `activity_arn` has a task, `deadline` passes, `cancelled()`
  // turns true or Shutdown; then takes up to `max_tasks` tasks (at least one
  // whatever its size, then no more than `max_bytes` of inputs). Empty when
  // nothing came. UNAVAILABLE after Shutdown. `*handed` (when not null) is
  // set when the tasks returned were handed over directly (see Claim):
  // they have no backlog record and their ActivityStarted is recorded.
  absl::StatusOr<std::vector<Queued>> Take(const std::string& activity_arn, int max_tasks,
                                           size_t max_bytes, absl::Time deadline,
                                           const std::function<bool()>& cancelled,
                                           const std::string& worker_name = "",
                                           bool* handed = nullptr);
  // Claims the poller of `activity_arn` that has waited longest for a task
  // with `input_bytes` of input (setting `*worker_name` to its worker's
  // name), or null when none waits. A poller that takes several tasks may
  // be claimed again, up to its batch (in tasks and bytes), until a claim
  // of it is handed over. The claimed poller waits until the caller calls
  // Hand or Release for each claim, which it must, soon; it then answers
  // with every task handed to it.
  Waiter* Claim(const std::string& activity_arn, size_t input_bytes, std::string* worker_name);
  // Gives the claimed poller a task.
  void Hand(Waiter* waiter, Queued queued);
  // Gives up a claim: a poller left with no claim and no task goes back to
  // waiting (or to its caller).
  void Release(Waiter* waiter);
  // Waits, without taking anything, until a task of `activity_arn` arrives
  // that no taking poller here waits for (or one is already waiting),
  // `deadline` passes, `cancelled()` turns true or Shutdown. True when a
  // task waits. A watcher is woken per such task, not all of them.
  absl::StatusOr<bool> Watch(const std::string& activity_arn, absl::Time deadline,
                             const std::function<bool()>& cancelled);
  // Returns taken tasks to the front (their hand-over failed).
  void PutBack(const std::string& activity_arn, std::vector<Queued> tasks);

  // How a poll that waits without a thread (TakeLater) is answered: with
  // the tasks handed to it directly (see Claim: their ActivityStarted is
  // recorded and they have no backlog record), or with none.
  using TakeAnswer = absl::AnyInvocable<void(absl::StatusOr<std::vector<Queued>> handed) &&>;
  // Take for direct hand-overs only, without a thread waiting. False, with
  // nothing done, when `activity_arn` has a backlog now or the queues are
  // shut down: the caller then polls with Take. Otherwise the poll waits
  // in line as Take's do, and `answer` is called once, never with the
  // queues' lock held:
  //  - with the tasks handed to it, by the Hand that settles its last
  //    claim (on that transition's thread);
  //  - with none when a task enters the backlog and wakes it (the caller
  //    takes that task with Take), when its claims are all released, or
  //    from ExpireLater once `deadline` passed or `cancelled()` is true;
  //  - UNAVAILABLE at Shutdown (or destruction).
  // `make_answer` makes `answer`, only when the poll waits (under the
  // queues' lock: it must do nothing else).
  bool TakeLater(const std::string& activity_arn, int max_tasks, size_t max_bytes,
                 absl::Time deadline, std::function<bool()> cancelled,
                 const std::string& worker_name, absl::FunctionRef<TakeAnswer()> make_answer);
  // How a watch that waits without a thread (WatchLater) is answered: as
  // Watch returns.
  using WatchAnswer = absl::AnyInvocable<void(absl::StatusOr<bool> backlog) &&>;
  // Watch without a thread waiting. False, with nothing done, when
  // `activity_arn` has a backlog now or the queues are shut down: the
  // caller then watches with Watch (which answers at once). Otherwise
  // `answer` is called once, never with the queues' lock held: true when a
  // task enters the backlog that no taker waits for and this watch is the
  // first still wanted; false from ExpireLater once `deadline` passed or
  // `cancelled()` is true; UNAVAILABLE at Shutdown. `make_answer` as for
  // TakeLater.
  bool WatchLater(const std::string& activity_arn, absl::Time deadline,
                  std::function<bool()> cancelled, absl::FunctionRef<WatchAnswer()> make_answer);
  // Answers the TakeLater polls and WatchLater watches past their deadline
  // or whose caller went away (polls not claimed); called about once a
  // second, and at NextLaterDeadline.
  void ExpireLater(absl::Time now);
  // The earliest deadline of a TakeLater poll or WatchLater watch still
  // waiting; infinite when none waits.
  absl::Time NextLaterDeadline();

  // Takers of `activity_arn` waiting in line now (not yet woken or
  // claimed).
  size_t WaitingPollers(const std::string& activity_arn);
  // Tasks of `activity_arn` in its backlog here now (not handed over).
  size_t BacklogSize(const std::string& activity_arn);
  // For a poll (or a watch, when `watch`) whose time is up as it comes:
  // true when no task waits in the backlog, so that it is answered empty
  // at once (a poll counts as an empty one, as a timed-out Take does);
  // false when there is a backlog to take.
  bool EmptyNow(const std::string& activity_arn, bool watch);

  // Wakes every poller and makes Take fail from now on.
  void Shutdown();

  // Memory the queued tasks of every activity take (their inputs, tokens
  // and ids), for admission control: the backlog lives in memory, also
  // when it is stored.
  uint64_t QueuedBytes() const { return queued_bytes_.load(std::memory_order_relaxed); }

  // Sets the backlog-age gauges from the clock; called about once a second.
  void RefreshAges();

  // How often pollers recheck whether their caller went away.
  static constexpr absl::Duration kIdleRecheck = absl::Seconds(20);

 private:
  struct Queue {
    std::deque<Queued> backlog;
    // Unclaimed takers not yet woken for a task, longest waiting first.
    std::deque<Waiter*> waiters;
    // Watchers (see Watch), woken only when no taker waits; then those
    // of WatchLater, longest waiting first.
    absl::CondVar watched;
    int watching = 0;
    std::deque<Waiter*> later_watchers;
    // Metrics of this activity (null without a registry).
    prometheus::Gauge* backlog_size = nullptr;
    prometheus::Gauge* backlog_age = nullptr;
    prometheus::Counter* sync_match = nullptr;
    prometheus::Counter* from_backlog = nullptr;
    prometheus::Counter* empty = nullptr;
    prometheus::Histogram* schedule_to_start = nullptr;
  };

  // TakeLater polls taken out of the queues, to answer once the lock is
  // released.
  using Settled = std::vector<std::unique_ptr<Waiter>>;

  Queue& QueueFor(const std::string& activity_arn) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void UpdateGauges(Queue& queue) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Wakes a taker if one waits (taking it out of the line), else a watcher.
  // A TakeLater poll woken so goes to `settled` (answered with no task)
  // unless it is claimed.
  void WakeOne(Queue& queue, Settled* settled) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // A new TakeLater poll or WatchLater watch, at the end of `line` and
  // owned by `later_`.
  Waiter* AddLater(std::deque<Waiter*>& line, const std::string& activity_arn,
                   absl::Time deadline, std::function<bool()> cancelled)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Takes the TakeLater poll `waiter` out of its line and of `later_`, to
  // be answered with `status` (or its handed tasks when OK).
  void Settle(Waiter* waiter, absl::Status status, Settled* settled)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Counts the handed tasks of a poll in the metrics.
  void CountHanded(Queue& queue, const std::vector<Queued>& handed)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  static void Answer(Settled settled);

  prometheus::Registry* registry_;
  clock::Clock* clock_;
  prometheus::Family<prometheus::Gauge>* backlog_size_family_ = nullptr;
  prometheus::Family<prometheus::Gauge>* backlog_age_family_ = nullptr;
  prometheus::Family<prometheus::Counter>* polls_family_ = nullptr;
  prometheus::Family<prometheus::Histogram>* schedule_to_start_family_ = nullptr;

  // What a queued task counts in QueuedBytes().
  static uint64_t Footprint(const Queued& queued);

  absl::Mutex mu_;
  absl::flat_hash_map<std::string, std::unique_ptr<Queue>> queues_ ABSL_GUARDED_BY(mu_);
  // The TakeLater polls and WatchLater watches not answered yet.
  absl::flat_hash_map<Waiter*, std::unique_ptr<Waiter>> later_ ABSL_GUARDED_BY(mu_);
  std::atomic<uint64_t> queued_bytes_{0};
  bool shut_down_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace stepflow::execution

#endif  // STEPFLOW_SERVICES_EXECUTION_TASK_QUEUES_H_
