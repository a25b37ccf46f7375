// The shard server's logic, without the RPC layer: the state machine and
// activity catalog (with each state machine's revisions, versions and
// aliases, kept on the shard of the state machine's ARN), Standard
// executions and their history (each execution keeps the revision it
// started with; closed ones are purged after the retention), the activity
// task queues, and the transactional outbox, all stored in one RocksDB
// database.
//
// Each logical shard this server owns is a key prefix. Every change to an
// execution is one WriteBatch (history events + execution record + outbox
// items) written with a synced WAL before anything it implies becomes
// visible; effects on other shards (handing a task to the activity's queue,
// reporting that a worker picked a task up) and events for the bus leave
// through the outbox, which background threads drain and retry until
// delivered, also after a restart.
//
//   auto core = ShardCore::Open(options, &peers);
//   RETURN_IF_ERROR((*core)->StartExecution(request, &response));
//
// Thread-safe: calls for one logical shard are serialized by that shard's
// mutex; calls for different shards run in parallel and share WAL fsyncs.
#ifndef STEPFLOW_SERVICES_EXECUTION_SHARD_CORE_H_
#define STEPFLOW_SERVICES_EXECUTION_SHARD_CORE_H_

#include <atomic>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/btree_set.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/types/span.h"
#include "common/asl/definition.h"
#include "common/asl/interpreter.h"
#include "common/clock/clock.h"
#include "common/config/arn.h"
#include "common/config/sharding.h"
#include "common/storage/group_committer.h"
#include "common/storage/store.h"
#include "common/tasktoken/task_token.h"
#include "prometheus/counter.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"
#include "services/execution/delivery_pool.h"
#include "services/execution/shard_lock.h"
#include "services/execution/task_queues.h"
#include "stepflow/internal/v1/shard.pb.h"
#include "stepflow/v1/states.pb.h"

namespace stepflow::execution {

class ShardCore;

// Delivery of outbox items to the shard that must act on them (possibly
// this server itself).
class Peers {
 public:
  virtual ~Peers() = default;
  // ShardCore::Open hands over the core it opened once the core is ready
  // and before any of the core's threads can call a peer: a peer that is
  // this server itself answers through it. The core's restart delivers
  // what its outbox holds at once, often to itself.
  virtual void Attach(ShardCore* local) = 0;
  virtual absl::Status EnqueueActivityTask(const internal::v1::ActivityTask& task) = 0;
  virtual absl::Status RecordActivityStarted(
      const internal::v1::RecordActivityStartedRequest& request) = 0;
  virtual absl::Status ActivityScheduleFailed(
      const internal::v1::ActivityScheduleFailedRequest& request) = 0;
  // Removes a queued task nobody should get any more. Best effort: a
  // worker that already took it is refused when it answers.
  virtual absl::Status CancelActivityTask(const internal::v1::ActivityTask& task) = 0;
  // OK when the activity exists, ActivityDoesNotExist (NOT_FOUND) when not:
  // a queue partition may live on another server than its activity.
  virtual absl::Status CheckActivityExists(const std::string& activity_arn) = 0;
  // Produces events to the bus's Kafka topics (at least once), all at
  // once: one outcome per event, in order. Events of one key are never
  // passed in one call (their order holds only one after another).
  virtual std::vector<absl::Status> PublishEvents(
      absl::Span<const internal::v1::PublishEvent* const> events) = 0;
  // Starts the child execution `execution_arn` of a parent's
  // states:startExecution task: the owner of `state_machine_arn` resolves
  // start.request().state_machine_arn() (which may name a version or an
  // alias) and the owner of the execution starts it.
  virtual absl::Status StartChildExecution(const std::string& state_machine_arn,
                                           const std::string& execution_arn,
                                           internal::v1::StartExecutionShardRequest start,
                                           v1::StartExecutionResponse* response) = 0;
  // Produces one event of an events:putEvents task to its bus's topic:
  // NOT_FOUND when the topic (the bus) does not exist, FAILED_PRECONDITION
  // when this server has no Kafka brokers.
  virtual absl::Status ProduceEvent(const internal::v1::PublishEvent& event) = 0;
  // Applies a service task's result at its execution's owner.
  virtual absl::Status CompleteServiceTask(const internal::v1::ServiceTaskResult& result) = 0;
  // StopExecution at the execution's owner.
  virtual absl::Status StopExecution(const v1::StopExecutionRequest& request) = 0;
};

struct ShardCoreOptions {
  std::string data_dir;
  uint32_t shard_count = 256;
  int ordinal = 0;
  int replicas = 1;
  config::ArnScope arn_scope;
  std::string token_secret = tasktoken::kDevelopmentSecret;
  clock::Clock* clock = nullptr;  // required; must outlive the core
  // Closed executions (record, history, listing entries) are deleted this
  // long after they closed, by a sweep every `retention_sweep_interval`.
  absl::Duration execution_retention = absl::Hours(24 * 90);
  // EXPRESS executions are kept this long after they close (AWS keeps
  // none; this leaves time to look at one), and the sweep runs at least
  // every quarter of it.
  absl::Duration express_execution_retention = absl::Minutes(10);
  // EXPRESS executions that end within their asynchronous start are not
  // stored at all (AWS keeps nothing of them either): the most recent ones
  // stay describable and listable from memory, up to about this many bytes
  // of records (and no longer than express_execution_retention); the
  // oldest go first. 0 keeps none.
  size_t recent_express_bytes = size_t{8} << 20;
  absl::Duration retention_sweep_interval = absl::Hours(1);
  // Admission control: StartExecution and RedriveExecution answer
  // RESOURCE_EXHAUSTED at once while this many transitions are in flight
  // (waiting for their shard or their WAL fsync); 0 admits everything.
  // Transitions of running executions (task results, timers, stops) are
  // never refused: they finish work instead of adding it.
  int max_inflight_transitions = 4096;
  // Admission control too: starts are refused while the activity task
  // backlogs of this server's queue partitions take more memory than this
  // (they are kept in memory, stored or not); 0: no bound.
  uint64_t max_queued_task_bytes = uint64_t{512} << 20;
  // Partitions of every activity's task queue (a cluster setting: the same
  // on every shard server and gateway). A task goes to the partition its
  // id hashes to.
  int task_queue_partitions = config::kDefaultTaskQueuePartitions;
  // Publish "Step Functions Execution Status Change" events (start, redrive,
  // close) to this Kafka topic, the default bus's, through the outbox;
  // empty: none.
  std::string status_events_topic;
  // Write the history events of executions whose state machine has a
  // logging configuration (level ALL, ERROR or FATAL) to this Kafka topic,
  // as AWS writes them to CloudWatch Logs, through the outbox; empty: none.
  std::string execution_logs_topic;
  // Where the durability metrics go (transitions, fsyncs, batch sizes);
  // optional, must outlive the core.
  prometheus::Registry* registry = nullptr;
  // Called once, on the writing thread, when the store first fails a write
  // for the disk (see storage::StoreOptions::on_write_failure). Every
  // transition is then refused with UNAVAILABLE, and nothing of it is
  // applied, until the core is opened again; the shard server exits so
  // that its restart recovers the store.
  std::function<void(const absl::Status&)> on_store_failure;
  // What the store's files go through; RocksDB's default when null (tests
  // pass one whose writes fail on demand).
  rocksdb::Env* store_env = nullptr;
};

// Counters of the write path since Open, for tests and benchmarks.
struct DurabilityStats {
  uint64_t transitions = 0;    // committed execution transitions
  uint64_t synced_writes = 0;  // batches written synced (see SyncedBatches)
  uint64_t wal_syncs = 0;      // WAL fsyncs (shared by concurrent writers)
  uint64_t rejected = 0;       // starts refused by admission control
  uint64_t closed = 0;         // executions closed (any type and status)
};

class ShardCore {
 public:
  // `peers` must outlive the core. Fails when the data folder was created
  // with a different logical shard count.
  static absl::StatusOr<std::unique_ptr<ShardCore>> Open(const ShardCoreOptions& options,
                                                         Peers* peers);
  ~ShardCore();

  ShardCore(const ShardCore&) = delete;
  ShardCore& operator=(const ShardCore&) = delete;

  // Stops the outbox thread and wakes long polls; later calls fail.
  void Shutdown();

  // Catalog.
  absl::Status CreateStateMachine(const v1::CreateStateMachineRequest& request,
                                  v1::CreateStateMachineResponse* response);
  absl::Status DescribeStateMachine(const v1::DescribeStateMachineRequest& request,
                                    v1::DescribeStateMachineResponse* response);
  absl::Status DeleteStateMachine(const v1::DeleteStateMachineRequest& request);
  absl::StatusOr<internal::v1::StateMachineRecord> GetStateMachineRecord(
      const std::string& state_machine_arn);
  absl::Status ListStateMachines(const internal::v1::ListShardRequest& request,
                                 internal::v1::ListStateMachinesShardResponse* response);
  // Every change of definition, role or configuration is a new revision;
  // running executions keep theirs.
  absl::Status UpdateStateMachine(const v1::UpdateStateMachineRequest& request,
                                  v1::UpdateStateMachineResponse* response);
  absl::Status PublishStateMachineVersion(const v1::PublishStateMachineVersionRequest& request,
                                          v1::PublishStateMachineVersionResponse* response);
  absl::Status DeleteStateMachineVersion(const v1::DeleteStateMachineVersionRequest& request);
  absl::Status ListStateMachineVersions(const v1::ListStateMachineVersionsRequest& request,
                                        v1::ListStateMachineVersionsResponse* response);
  // Aliases live with their state machine; the gateway routes by the
  // state machine ARN of the first routed version.
  absl::Status CreateStateMachineAlias(const v1::CreateStateMachineAliasRequest& request,
                                       v1::CreateStateMachineAliasResponse* response);
  absl::Status DescribeStateMachineAlias(const v1::DescribeStateMachineAliasRequest& request,
                                         v1::DescribeStateMachineAliasResponse* response);
  absl::Status UpdateStateMachineAlias(const v1::UpdateStateMachineAliasRequest& request,
                                       v1::UpdateStateMachineAliasResponse* response);
  absl::Status DeleteStateMachineAlias(const v1::DeleteStateMachineAliasRequest& request);
  absl::Status ListStateMachineAliases(const v1::ListStateMachineAliasesRequest& request,
                                       v1::ListStateMachineAliasesResponse* response);
  // The revision a start through a state machine, version or alias ARN
  // runs (with its definition).
  absl::StatusOr<internal::v1::ResolvedStateMachine> ResolveStateMachine(
      const internal::v1::ResolveStateMachineRequest& request);
  // The revision a start runs when its request names none (see
  // StartExecutionShardRequest.resolve_arn): ResolveStateMachine's answer,
  // with the current revision shared with the cache rather than copied.
  struct ResolvedStart {
    std::shared_ptr<const internal::v1::StateMachineRecord> machine;
    std::string version_arn;
    std::string alias_arn;
  };
  absl::StatusOr<ResolvedStart> ResolveStart(
      const internal::v1::ResolveStateMachineRequest& request);
  // Whether the state machine's record is cached, so that resolving a start
  // through it takes no lock (see LockOf; a transition may hold one across
  // its fsync).
  bool StateMachineCached(const std::string& state_machine_arn);
  absl::Status CreateActivity(const v1::CreateActivityRequest& request,
                              v1::CreateActivityResponse* response);
  absl::Status DescribeActivity(const v1::DescribeActivityRequest& request,
                                v1::DescribeActivityResponse* response);
  absl::Status DeleteActivity(const v1::DeleteActivityRequest& request);
  absl::Status ListActivities(const internal::v1::ListShardRequest& request,
                              internal::v1::ListActivitiesShardResponse* response);

  // Executions.
  // An EXPRESS execution runs without a WAL fsync per transition; an
  // asynchronous start's first transition is synced (the start record that
  // makes it at-least-once), a synchronous start's is not (at-most-once).
  //
  // With `would_block` (a caller on a thread that must not wait, such as
  // gRPC's callback threads): a start that would have to wait — for a WAL
  // fsync, a busy shard, a write of its definition — does nothing at all
  // and sets *would_block; the caller then starts it again where it may
  // wait. Only EXPRESS executions that end within their start can go
  // through without waiting — unless the caller also passes `answer_later`:
  // then a start whose only wait would be its WAL fsync takes that function,
  // hands its transition to the group committer and returns; the function
  // is called (on the group committer's continuation thread) with the
  // start's status once the transition is durable, with *response filled
  // in. The caller must not answer the call itself when `*answer_later` has
  // been taken (is empty).
  // A caller that may wait can pass `answer_later` too: the start may then
  // wait for a busy shard, but not for its fsync.
  using AnswerLater = absl::AnyInvocable<void(absl::Status) &&>;
  // `resolved`: the revision to run when the request names none.
  absl::Status StartExecution(const internal::v1::StartExecutionShardRequest& request,
                              v1::StartExecutionResponse* response,
                              bool* would_block = nullptr, AnswerLater* answer_later = nullptr,
                              const ResolvedStart* resolved = nullptr);
  absl::Status DescribeExecution(const v1::DescribeExecutionRequest& request,
                                 v1::DescribeExecutionResponse* response);
  // Waits until the execution is no longer RUNNING and answers as
  // DescribeExecution with `request.included_data()`; DEADLINE_EXCEEDED
  // when `deadline` passes first, CANCELLED when `cancelled()` turns true
  // (the execution runs on in both cases). Does not poll: the transition
  // that closes the execution wakes the callers waiting for its ARN only.
  absl::Status AwaitExecutionClosed(const v1::DescribeExecutionRequest& request,
                                    absl::Time deadline, const std::function<bool()>& cancelled,
                                    v1::DescribeExecutionResponse* response);
  // AwaitExecutionClosed without a thread: `answer` is called once, with
  // *response filled in when the status is OK, by the transition that
  // closes the execution, or by the timer loop once `deadline` passed
  // (DEADLINE_EXCEEDED) or `cancelled()` turned true (CANCELLED, looked at
  // about every kLaterCloseRecheck), or at once when the execution is not
  // running or does not exist. `cancelled` and `response` must stay valid
  // until then.
  void AwaitExecutionClosedLater(const v1::DescribeExecutionRequest& request,
                                 absl::Time deadline, std::function<bool()> cancelled,
                                 v1::DescribeExecutionResponse* response, AnswerLater answer);
  // StartExecution, then AwaitExecutionClosed of the execution it started.
  // `would_block` as for StartExecution: only an execution that ends within
  // its start is answered without waiting — unless the caller also passes
  // `answer_later`: then a start that would wait for the close takes it
  // and waits as AwaitExecutionClosedLater does, holding no thread.
  absl::Status StartSyncExecution(const internal::v1::StartSyncExecutionShardRequest& request,
                                  absl::Time deadline, const std::function<bool()>& cancelled,
                                  v1::DescribeExecutionResponse* response,
                                  bool* would_block = nullptr,
                                  const ResolvedStart* resolved = nullptr,
                                  AnswerLater* answer_later = nullptr);
  absl::Status StopExecution(const v1::StopExecutionRequest& request,
                             v1::StopExecutionResponse* response);
  absl::Status GetExecutionHistory(const v1::GetExecutionHistoryRequest& request,
                                   v1::GetExecutionHistoryResponse* response);
  absl::Status ListExecutions(const internal::v1::ListShardRequest& request,
                              internal::v1::ListExecutionsShardResponse* response);
  // Runs a FAILED, TIMED_OUT or ABORTED Standard execution again from the
  // states that did not succeed; ExecutionNotRedrivable otherwise.
  absl::Status RedriveExecution(const v1::RedriveExecutionRequest& request,
                                v1::RedriveExecutionResponse* response);
  absl::Status DescribeStateMachineForExecution(
      const v1::DescribeStateMachineForExecutionRequest& request,
      v1::DescribeStateMachineForExecutionResponse* response);

  // Map runs of distributed Map states. They live in their parent
  // execution's record; the map run ARN (and a child execution's name)
  // carries the parent's routing hash, which the map run index resolves.
  // ResourceNotFound for unknown map runs, ExecutionDoesNotExist for
  // unknown executions, InvalidToken for bad page tokens.
  absl::Status DescribeMapRun(const v1::DescribeMapRunRequest& request,
                              v1::DescribeMapRunResponse* response);
  absl::Status ListMapRuns(const v1::ListMapRunsRequest& request,
                           v1::ListMapRunsResponse* response);
  // One durable transition of the parent execution (see
  // asl::Interpreter::UpdateMapRun); ValidationException when the map run
  // is not running.
  absl::Status UpdateMapRun(const v1::UpdateMapRunRequest& request,
                            v1::UpdateMapRunResponse* response);
  // The child executions of request.map_run_arn(), newest first, paged.
  absl::Status ListMapRunExecutions(const v1::ListExecutionsRequest& request,
                                    v1::ListExecutionsResponse* response);

  // Deletes the closed executions whose retention ended by the clock's now,
  // and the task ids of enqueues from other servers older than yesterday
  // (see EnqueueActivityTask); the timer thread calls it every sweep
  // interval, tests call it directly.
  absl::Status PurgeExpiredExecutions();

  // Activity task queues (this server owns the shard of the task's
  // partition).
  //
  // Calls that deliver outbox items take `sync`: an item delivered from
  // this server's own outbox needs no fsync of its own, because its outbox
  // entry is deleted by a later write to the same write-ahead log (so it
  // cannot outlive the delivery) and is delivered again (idempotently) if
  // a crash loses both.
  //
  // An enqueue is idempotent by task id for a day or two: the ids are kept
  // by the day they came, today's and yesterday's are looked at, and older
  // days are dropped whole. That covers an outbox's repeat of a delivery
  // whose deletion a crash lost (the repeat comes when its server is back);
  // a repeat later than that queues the task again, and a worker that gets
  // it is refused when it answers if its execution moved on.
  absl::Status EnqueueActivityTask(const internal::v1::ActivityTask& task, bool sync = true);
  // Drops the task `task.task_id()` from its queue (if still queued) and
  // keeps a later enqueue of it (for as long as ids are kept) from adding
  // it again.
  absl::Status CancelActivityTask(const internal::v1::ActivityTask& task, bool sync = true);
  // Waits until a task of the activity arrives in any partition this
  // server owns, `deadline` (capped by request.wait_ms()) passes or
  // `cancelled()` turns true; then hands over up to max_tasks tasks. An
  // empty response means no task.
  absl::Status PollActivityTasks(const internal::v1::PollActivityTasksRequest& request,
                                 internal::v1::PollActivityTasksResponse* response,
                                 absl::Time deadline, const std::function<bool()>& cancelled);
  // PollActivityTasks for a caller that takes its answer later and may not
  // wait (a call from a gRPC callback thread): the poll waits in line
  // without a thread, for tasks handed over directly by the transitions
  // that schedule them (a watch, for a task entering the backlog).
  enum class LaterPoll {
    // It took `*answer_later` (left empty): `response` is filled and
    // `*answer_later` called once, maybe on another thread, and
    // `cancelled` is called until then.
    kWaiting,
    // Its time was up already and nothing waits here: answered empty in
    // `response` at once (OK), `*answer_later` untouched.
    kAnswered,
    // Nothing done: the poll must run as PollActivityTasks (a backlog to
    // hand over or to report, an activity not looked up yet).
    kDeclined,
  };
  LaterPoll PollActivityTasksLater(const internal::v1::PollActivityTasksRequest& request,
                                   internal::v1::PollActivityTasksResponse* response,
                                   absl::Time deadline, std::function<bool()> cancelled,
                                   AnswerLater* answer_later);
  // What PollActivityTasks checks before it waits: a partition of the
  // activity is owned here, and the activity exists (asked of its owner,
  // maybe another server, unless an answer is cached; an expired one is
  // taken meanwhile, see ActivityServable).
  absl::Status LookUpActivity(const std::string& activity_arn);
  // PollActivityTasks for one task, waiting until `deadline`.
  absl::Status GetActivityTask(const v1::GetActivityTaskRequest& request,
                               v1::GetActivityTaskResponse* response, absl::Time deadline,
                               const std::function<bool()>& cancelled);
  // OK or ActivityDoesNotExist, from this server's catalog (the activity's
  // own shard must be owned here).
  absl::Status CheckActivityExists(const std::string& activity_arn);

  // Task results (this server owns the execution's shard). `would_block`
  // and `answer_later` as for SendTaskSuccess below.
  absl::Status RecordActivityStarted(const internal::v1::RecordActivityStartedRequest& request,
                                     bool sync = true, bool* would_block = nullptr,
                                     AnswerLater* answer_later = nullptr);
  absl::Status ActivityScheduleFailed(const internal::v1::ActivityScheduleFailedRequest& request,
                                      bool sync = true);
  // `would_block` and `answer_later` as for StartExecution: the transition
  // is answered by the group committer; without `answer_later` a STANDARD
  // one declines and an EXPRESS one is written at once, unsynced.
  absl::Status SendTaskSuccess(const v1::SendTaskSuccessRequest& request,
                               bool* would_block = nullptr, AnswerLater* answer_later = nullptr);
  absl::Status SendTaskFailure(const v1::SendTaskFailureRequest& request,
                               bool* would_block = nullptr, AnswerLater* answer_later = nullptr);
  absl::Status SendTaskHeartbeat(const v1::SendTaskHeartbeatRequest& request,
                                 bool* would_block = nullptr,
                                 AnswerLater* answer_later = nullptr);
  // What became of a service-integration task (its call answered, its
  // child execution closed); a result for a task no longer awaited is
  // ignored.
  absl::Status CompleteServiceTask(const internal::v1::ServiceTaskResult& result,
                                   bool sync = true);

  // Fires every durable timer due at the clock's now; the timer thread
  // calls it, tests driving a fake clock call it directly.
  absl::Status FireDueTimers();

  uint32_t shard_count() const { return options_.shard_count; }
  // Grows by one at every Open of the same folder.
  uint64_t owner_epoch() const { return storage::DecodeUint64(owner_epoch_); }

  DurabilityStats Stats() const;
  // Pollers of the activity waiting in line on this server now.
  size_t WaitingPollers(const std::string& activity_arn) {
    return task_queues_->WaitingPollers(activity_arn);
  }
  // Executions some AwaitExecutionClosed(Later) call is waiting for now.
  size_t AwaitedExecutions();

  // Activity ARN by scheduled event id, of the tasks an execution awaits.
  using PendingTasks = std::map<int64_t, std::string>;

 private:
  struct Families {
    storage::FamilyId meta, state_machines, activities, definitions, executions, history,
        visibility, tasks, outbox, event_outbox, timers, versions, retention, map_runs;
  };

  // Counts a transition in flight for the lifetime of the slot.
  class InflightSlot {
   public:
    explicit InflightSlot(ShardCore* core) : core_(core) { core_->AddInflight(1); }
    ~InflightSlot() { core_->AddInflight(-1); }
    InflightSlot(const InflightSlot&) = delete;
    InflightSlot& operator=(const InflightSlot&) = delete;

   private:
    ShardCore* core_;
  };
  struct Metrics {
    prometheus::Counter* transitions = nullptr;
    prometheus::Counter* rejected = nullptr;
    prometheus::Gauge* wal_syncs = nullptr;
    prometheus::Gauge* synced_writes = nullptr;
    prometheus::Gauge* inflight = nullptr;
    prometheus::Histogram* batch_bytes = nullptr;
    prometheus::Histogram* batch_ops = nullptr;
    // stepflow_executions_closed_total by kClosedTypes x kClosedStatuses.
    prometheus::Counter* closed[2][4] = {};
    // stepflow_outbox_deliveries_total by kOutboxItemKinds x
    // kOutboxOutcomes, and stepflow_outbox_delay_seconds by kind.
    prometheus::Counter* outbox_deliveries[8][3] = {};
    prometheus::Histogram* outbox_delay[8] = {};
  };
  static constexpr const char* kOutboxItemKinds[8] = {
      "activity_task", "activity_started", "activity_schedule_failed", "cancel_activity_task",
      "event",         "service_call",     "service_task_result",      "stop_child_execution"};
  static constexpr const char* kOutboxOutcomes[3] = {"delivered", "refused", "retried"};
  // Counts one delivery attempt of `item` that ended with `status`.
  void CountOutboxDelivery(const internal::v1::OutboxItem& item, const absl::Status& status,
                           absl::Time now);
  static constexpr const char* kClosedTypes[2] = {"STANDARD", "EXPRESS"};
  static constexpr const char* kClosedStatuses[4] = {"SUCCEEDED", "FAILED", "TIMED_OUT",
                                                     "ABORTED"};
  // Counts an execution that closed with `status`.
  void CountClosed(const internal::v1::ExecutionRecord& record, const std::string& status);

  ShardCore(const ShardCoreOptions& options, Peers* peers);
  absl::Status Init();
  void RegisterMetrics();
  void AddInflight(int delta);
  // RESOURCE_EXHAUSTED when admission control refuses new work.
  absl::Status Admit();
  absl::Status LoadTaskQueues();

  absl::StatusOr<uint32_t> OwnedShard(absl::string_view arn) const;
  // The lock of the resources routed by `routing_key` (the key OwnedShard
  // is given) or by a routing hash: a stripe of its logical shard. Keys
  // that share a shard by design share their routing key or hash, so they
  // share a stripe; keys that share a shard by chance never relied on its
  // lock, as they may as well fall in different shards. Finer than a lock
  // per shard: a transition holds its lock until its write is durable, and
  // every other transition that met it had to wait (or be made again on a
  // thread that may wait).
  ShardLock& LockOf(absl::string_view routing_key);
  ShardLock& LockOfHash(uint64_t routing_hash) { return lock_stripes_[routing_hash % stripes_]; }

  template <typename Message>
  absl::StatusOr<std::optional<Message>> Read(storage::FamilyId family, const std::string& key);

  // Publishes the current revision of `machine` (bumping its last_version)
  // unless a version of it exists; the caller holds the machine's lock and
  // writes `machine` in `batch`.
  absl::StatusOr<internal::v1::StateMachineVersionRecord> PublishLocked(
      uint32_t shard, internal::v1::StateMachineRecord& machine, const std::string& description,
      absl::Time now, storage::WriteBatch& batch);
  absl::StatusOr<std::vector<internal::v1::StateMachineVersionRecord>> ReadVersions(
      uint32_t shard, const std::string& state_machine_arn);
  absl::StatusOr<std::vector<internal::v1::StateMachineAliasRecord>> ReadAliases(
      uint32_t shard, const std::string& state_machine_arn);
  // Checks that every routed version exists; ResourceNotFound otherwise.
  absl::Status CheckRouting(uint32_t shard, const std::string& state_machine_arn,
                            const google::protobuf::RepeatedPtrField<v1::RoutingConfigurationListItem>&
                                routing);
  absl::Status PurgeExecution(const std::string& retention_key, absl::string_view execution_arn);
  // Drops, once per day, the task ids of owned shards from before
  // yesterday, and those stored before ids had days.
  absl::Status PurgeOldTaskIds();

  // The parent record holding map run `map_run_arn` (or, with a child's
  // name, the run of that child) and where in it; see DescribeMapRun.
  struct FoundMapRun {
    uint32_t shard = 0;
    internal::v1::ExecutionRecord record;
    int run = -1;    // index in record.state().map_runs()
    int child = -1;  // index in the run's children, when looking for one
  };
  absl::StatusOr<FoundMapRun> FindMapRun(uint64_t routing_hash, absl::string_view map_run_arn,
                                         absl::string_view run_name = "",
                                         absl::string_view child_name = "");
  // Adds the execution to the map run index once it has a map run.
  void IndexMapRuns(uint32_t shard, internal::v1::ExecutionRecord& record,
                    storage::WriteBatch& batch);
  // DescribeExecution of a child execution of a map run.
  absl::Status DescribeMapRunChild(uint64_t routing_hash, const v1::DescribeExecutionRequest& request,
                                   v1::DescribeExecutionResponse* response);

  // The stored record of a state machine this server's catalog holds
  // (null when there is none), from the cache when it can.
  absl::StatusOr<std::shared_ptr<const internal::v1::StateMachineRecord>> CachedStateMachine(
      uint32_t shard, const std::string& state_machine_arn);
  // Drops the cached record; every write of a state machine record calls it
  // under the record's lock.
  void ForgetStateMachine(const std::string& state_machine_arn);

  absl::StatusOr<std::shared_ptr<const asl::Definition>> LoadDefinition(
      const std::string& state_machine_arn, const std::string& revision_id);

  // Writes one transition of `record` (history, record, outbox) durably.
  // `before` holds the tasks awaited before the transition: the queued ones
  // the transition gave up are cancelled at their activity's queue.
  // EXPRESS transitions are written without `sync` unless `start_record`.
  // `batch` is consumed (a synced one is handed to the group committer).
  absl::Status CommitTransition(uint32_t shard, internal::v1::ExecutionRecord& record,
                                asl::Outcome& outcome,
                                storage::WriteBatch& batch,
                                const PendingTasks* before = nullptr, bool sync = true,
                                bool start_record = false);
  // CommitTransition in two halves, for a write made elsewhere (the group
  // committer): what follows the write, found while adding the transition
  // to `batch`.
  struct CommitEffects {
    std::vector<TaskQueues::Queued> local_tasks;
    bool wake_outbox = false;
    // It wrote an event for the bus.
    bool wake_events = false;
    absl::Time earliest_timer = absl::InfiniteFuture();
    bool closed = false;
    // A closed EXPRESS execution whose keys the batch deletes: it is kept
    // in memory from then on (see LeavesStoreWhenClosed).
    bool left_store = false;
    size_t batch_bytes = 0;
    size_t batch_ops = 0;
    // The record as written (see running_records_).
    std::string record_key;
    std::string record_value;
    // The outbox sequence of the transition's first published event (0:
    // none), in publishing_ until its write has ended.
    uint64_t first_publish_seq = 0;
  };
  CommitEffects PrepareCommit(uint32_t shard, internal::v1::ExecutionRecord& record,
                              asl::Outcome& outcome, storage::WriteBatch& batch,
                              const PendingTasks* before);
  // Puts the keys of `outcome`'s new timers into `batch`, and deletes
  // those of timers the state no longer waits for (keeping the record's
  // timer_fire_ms in step); the earliest new fire time.
  absl::Time StoreTimers(internal::v1::ExecutionRecord& record, const asl::Outcome& outcome,
                         storage::WriteBatch& batch);
  // Writes `batch` synced through the group committer and waits for it.
  absl::Status WriteSynced(storage::WriteBatch batch);
  // Batches written synced, whether alone or in one of the committer's
  // groups.
  uint64_t SyncedBatches() const;
  // Once the batch is written. `record` is the same when it returns (it is
  // not const: parts of it may be set aside meanwhile).
  void AfterCommit(CommitEffects& effects, internal::v1::ExecutionRecord& record);
  // CommitTransition by the group committer, for a caller that keeps what
  // it holds (its execution's lock, or its new execution's name) until the
  // write is done: then the claims are released, `release` runs, and
  // `answer` is called with the write's status. Without `sync` the
  // transition is written in order but needs no fsync (EXPRESS).
  void CommitLater(uint32_t shard, internal::v1::ExecutionRecord record, asl::Outcome& outcome,
                   storage::WriteBatch batch, const PendingTasks* before,
                   std::vector<std::string> claimed, absl::AnyInvocable<void() &&> release,
                   AnswerLater answer, bool sync = true);
  // Names of new executions whose start the group committer is writing
  // (their lock is not held meanwhile): another start of the same name
  // waits for it.
  absl::Mutex committing_mu_;
  absl::flat_hash_set<std::string> committing_ ABSL_GUARDED_BY(committing_mu_);
  bool StartCommitting(const std::string& execution_arn);
  // Locks `lock`: waits for it, or, for a caller that may not wait
  // (`would_block` not null), takes it only if it is free. False when it
  // was not taken.
  static bool LockUnlessBusy(ShardLock& lock, const bool* would_block);
  void AwaitStartCommitted(const std::string& execution_arn);
  // What a synchronous start answers when its execution ended within the
  // start (no wait for the close, no read of the record).
  struct SyncAnswer {
    std::string included_data;  // of the StartSyncExecution request
    bool answered = false;      // `closed` is the answer
    // The caller waits for the close without a thread (listed as an
    // AwaitExecutionClosedLater caller before the start): a start that
    // runs on need not be declined.
    bool waits_later = false;
    v1::DescribeExecutionResponse closed;
  };
  absl::Status StartExecutionImpl(const internal::v1::StartExecutionShardRequest& request,
                                  bool synchronous, v1::StartExecutionResponse* response,
                                  SyncAnswer* sync_answer = nullptr,
                                  bool* would_block = nullptr,
                                  AnswerLater* answer_later = nullptr,
                                  const ResolvedStart* resolved = nullptr);
  // Whether a transition leaves anything for the outbox or the timers.
  // `machine`: the execution's state machine (record.state_machine() once
  // the record has it).
  bool NeedsOutbox(const internal::v1::ExecutionRecord& record,
                   const internal::v1::StateMachineRecord& machine,
                   const asl::Outcome& outcome) const;
  // Counts a committed transition (batch_ops 0: nothing was written).
  void CountTransition(size_t batch_bytes, size_t batch_ops);
  absl::Duration RetentionOf(const internal::v1::ExecutionRecord& record) const {
    return record.state_machine_type() == "EXPRESS" ? options_.express_execution_retention
                                                    : options_.execution_retention;
  }

  // Loads the running execution a task token names and applies `step`.
  using TaskStep = std::function<absl::StatusOr<asl::Outcome>(
      asl::Interpreter&, internal::v1::ExecutionState*, absl::Time)>;
  absl::Status ApplyTaskResult(const std::string& task_token, bool ignore_stale,
                               const TaskStep& step, bool sync = true,
                               bool* would_block = nullptr, AnswerLater* answer_later = nullptr);

  // Wakes the AwaitExecutionClosed calls waiting for `execution_arn`,
  // handing them a copy of `left_store`: the closed record, when no store
  // keeps it (see LeavesStoreWhenClosed); null when they read it again.
  // Answers the AwaitExecutionClosedLater calls waiting for it.
  void NotifyClosed(const std::string& execution_arn,
                    const internal::v1::ExecutionRecord* left_store);
  // A caller of AwaitExecutionClosedLater while it waits.
  struct LaterCloseWaiter {
    uint64_t id;  // set when listed
    std::string execution_arn;
    std::string included_data;
    absl::Time deadline;
    std::function<bool()> cancelled;
    v1::DescribeExecutionResponse* response;
    AnswerLater answer;
  };
  // Lists `waiter` under its ARN, then answers it at once if its execution
  // is not running (or cannot be read); else it stays listed.
  void AwaitOrAnswer(std::unique_ptr<LaterCloseWaiter> waiter);
  // Lists `waiter` under its ARN: its id; 0, with `waiter` left as it
  // was, when the server is stopping.
  uint64_t ListLaterCloseWaiter(std::unique_ptr<LaterCloseWaiter>& waiter);
  // Takes a listed waiter back; null when its close, its deadline or a
  // stop has answered it already.
  std::unique_ptr<LaterCloseWaiter> UnlistLaterCloseWaiter(const std::string& execution_arn,
                                                           uint64_t id);
  // Answers the waiters whose deadline passed or whose caller went away
  // (every kLaterCloseRecheck at most); when to call it again.
  absl::Time ExpireLaterCloseWaiters(absl::Time now);

  // Makes a service task's call (an outbox item). A result to report, or
  // a status the outbox retries (the call is idempotent).
  absl::StatusOr<internal::v1::ServiceTaskResult> CallService(
      const internal::v1::ServiceCall& call);
  absl::StatusOr<internal::v1::ServiceTaskResult> StartChildExecution(
      const internal::v1::ServiceCall& call);
  absl::StatusOr<internal::v1::ServiceTaskResult> PutEvents(
      const internal::v1::ServiceCall& call);
  // The outbox items of a transition's service calls, and the bookkeeping
  // of the child executions its startExecution tasks start and give up.
  void AddServiceEffects(internal::v1::ExecutionRecord& record, const asl::Outcome& outcome,
                         storage::WriteBatch& batch);

  // The outbox is two lanes, each a column family delivered by a thread of
  // its own: the bus's events, and everything else. A bus that is slow or
  // down then holds back no task, report or service call.
  struct OutboxLane {
    const char* name;
    storage::FamilyId family = 0;
    absl::Mutex mu;
    // Starts set: items left by a previous incarnation drain at once.
    bool wake ABSL_GUARDED_BY(mu) = true;
    bool stop ABSL_GUARDED_BY(mu) = false;
    // Items delivered on their own, back with their outcome.
    struct Delivered {
      std::string key;
      internal::v1::OutboxItem item;
      absl::Status status;
      // An item to write in the item's place (a report to its execution).
      std::optional<internal::v1::OutboxItem> report;
      absl::Time at;
    };
    std::vector<Delivered> delivered ABSL_GUARDED_BY(mu);
    std::thread thread;
  };
  // Deliveries of one lane under way at once, at most.
  static constexpr size_t kMaxOutboxInFlight = 1024;
  // Delivers one item other than an event. `report`: an item to write in
  // its place. Settled (OutboxItemSettled) or to be retried.
  absl::Status DeliverOutboxItem(const internal::v1::OutboxItem& item,
                                 std::optional<internal::v1::OutboxItem>* report);
  // Every outbox item is written through here: stamped with its time, into
  // its lane.
  void PutOutboxItem(storage::WriteBatch& batch, const std::string& key,
                     internal::v1::OutboxItem& item);
  void OutboxLoop(OutboxLane& lane);
  static void WakeLane(OutboxLane& lane);
  void WakeOutbox() { WakeLane(items_outbox_); }
  void TimerLoop();
  void WakeTimers(absl::Time fire_at);
  // A poll or watch waits in the task queues until `deadline`: wakes the
  // timer loop if it sleeps past that, so that it answers then.
  void WakeTimersForPoll(absl::Time deadline);
  absl::Status FireTimer(const std::string& key);

  ShardCoreOptions options_;
  Peers* peers_;
  tasktoken::TaskTokenCodec codec_;
  std::unique_ptr<storage::Store> store_;
  // Writes the transitions of starts made on threads that must not wait
  // (see StartExecution); stopped first at shutdown.
  std::unique_ptr<storage::GroupCommitter> committer_;
  Families families_{};
  // A multiple of the shard count (see LockOf): a stripe lies in one shard.
  const uint64_t stripes_;
  std::unique_ptr<ShardLock[]> lock_stripes_;
  Metrics metrics_;
  std::atomic<int> inflight_{0};
  // This incarnation's ownership epoch (see keys::kOwnerEpochKey), encoded.
  std::string owner_epoch_;
  std::atomic<uint64_t> transitions_{0};
  std::atomic<uint64_t> rejected_{0};
  std::atomic<uint64_t> closed_{0};

  // The stored record of `key` (an execution's), from running_records_
  // when there.
  absl::StatusOr<std::optional<internal::v1::ExecutionRecord>> ReadExecution(
      const std::string& key);
  // After a durable write of an execution's record: keeps it while the
  // execution runs, drops it once closed.
  void KeepRunningRecord(std::string key, std::string value, bool running);

  // The records of running executions as this server last wrote them
  // (serialized, by key), so that the next transition of one reads no
  // store: a task's result comes within milliseconds of its start. Kept
  // after each durable write of a record, which its lock orders;
  // emptied when it holds more than kRunningRecordBytes.
  static constexpr size_t kRunningRecordBytes = size_t{16} << 20;
  absl::Mutex running_records_mu_;
  absl::flat_hash_map<std::string, std::string> running_records_
      ABSL_GUARDED_BY(running_records_mu_);
  size_t running_record_bytes_ ABSL_GUARDED_BY(running_records_mu_) = 0;

  absl::Mutex definitions_mu_;
  absl::flat_hash_map<std::string, std::shared_ptr<const asl::Definition>> definitions_
      ABSL_GUARDED_BY(definitions_mu_);

  // Closed asynchronous EXPRESS executions that ended within their start
  // (see StartExecutionImpl), newest last: never stored (writing them cost
  // more than the rest of such a start, and AWS keeps nothing of EXPRESS
  // executions), but DescribeExecution, StopExecution, ListExecutions and
  // name checks find the recent ones here, within
  // options_.recent_express_bytes and express_execution_retention. A
  // restart forgets them: those executions have run already.
  // Kept serialized: one allocation to free when it leaves (freeing a
  // cold parsed record, string by string, cost more than its serialization).
  //
  // The names of those executions outlive their records: a name is ~60
  // bytes where a record is kilobytes, so a start that repeats one (an
  // event redelivered to its target after an eventbus replica failed, say)
  // is still refused with ExecutionAlreadyExists for
  // express_execution_retention, or until kRecentExpressNames newer names
  // came, long after the byte bound dropped the record. Names the cluster
  // generated are not kept beyond their records: no caller repeats a name
  // it did not choose (AWS refuses no repeated EXPRESS name at all), and a
  // busy shard's map stays as small as its records. One entry per name, by
  // 64-bit hash of the execution ARN (the record, while kept, says which
  // ARN it is).
  struct RecentExpress {
    int64_t closed_ns = 0;  // when the execution closed (Unix nanoseconds)
    uint64_t seq = 0;       // its entry in recent_express_records_
    // The serialized ExecutionRecord, without its state or state machine;
    // null once the byte bound dropped it.
    std::unique_ptr<char[]> record;
    uint32_t record_size = 0;
    bool name_kept = false;  // in recent_express_names_ too
  };
  struct RecentExpressRecordEntry {
    uint64_t name_hash = 0;
    uint64_t seq = 0;
    absl::Time closed;
    size_t bytes = 0;
  };
  static constexpr size_t kRecentExpressNames = size_t{1} << 19;
  absl::Mutex recent_express_mu_;
  absl::flat_hash_map<uint64_t, RecentExpress> recent_express_
      ABSL_GUARDED_BY(recent_express_mu_);
  // Kept records, oldest first, for the byte bound and the retention.
  std::deque<RecentExpressRecordEntry> recent_express_records_
      ABSL_GUARDED_BY(recent_express_mu_);
  size_t recent_express_bytes_ ABSL_GUARDED_BY(recent_express_mu_) = 0;
  uint64_t recent_express_seq_ ABSL_GUARDED_BY(recent_express_mu_) = 0;
  // Names, oldest first, for the count bound and the retention: the hash
  // and the time it closed (a name used again has a newer entry further
  // on; only the newest removes it).
  std::deque<std::pair<uint64_t, int64_t>> recent_express_names_
      ABSL_GUARDED_BY(recent_express_mu_);
  // Whether an EXPRESS execution of that ARN closed recently (see above).
  bool RecentExpressNameTaken(const std::string& arn);
  // `keep_name`: whether the name outlives the record (see above).
  void KeepRecentExpress(internal::v1::ExecutionRecord record, bool keep_name);
  // Drops entries beyond the byte bound or older than the retention.
  void EvictRecentExpress(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(recent_express_mu_);
  std::optional<internal::v1::ExecutionRecord> RecentExpressRecord(const std::string& arn);

  // State machine records of this server's catalog, as last written: most
  // starts resolve their revision here without reading the store.
  absl::Mutex machine_cache_mu_;
  absl::flat_hash_map<std::string, std::shared_ptr<const internal::v1::StateMachineRecord>>
      machine_cache_ ABSL_GUARDED_BY(machine_cache_mu_);

  // Activity queues in memory, mirroring the durable backlog.
  std::unique_ptr<TaskQueues> task_queues_;
  // Serialize the idempotency check and write of enqueues of one task id
  // (striped by its hash, so different tasks enqueue in parallel).
  static constexpr size_t kEnqueueStripes = 64;
  absl::Mutex enqueue_mu_[kEnqueueStripes];
  absl::Mutex& EnqueueMutex(absl::string_view task_id) {
    return enqueue_mu_[config::StableHash(task_id) % kEnqueueStripes];
  }
  std::atomic<uint64_t> next_task_seq_{1};
  // Activities known to exist, with when that was last confirmed: a
  // partition on another server than its activity asks the activity's
  // owner at most every kActivityExistsTtl. One confirmed before still
  // counts while its owner cannot be reached (it is asked again a TTL
  // later); a refusal drops it.
  static constexpr absl::Duration kActivityExistsTtl = absl::Seconds(2);
  absl::Mutex activity_exists_mu_;
  absl::flat_hash_map<std::string, absl::Time> activity_exists_ ABSL_GUARDED_BY(activity_exists_mu_);
  // A look-up under way, whose answer every caller that comes meanwhile
  // takes: a burst of first polls asks the activity's owner once.
  struct ActivityLookUp {
    absl::Mutex mu;
    bool done ABSL_GUARDED_BY(mu) = false;
    absl::Status status ABSL_GUARDED_BY(mu);
  };
  absl::flat_hash_map<std::string, std::shared_ptr<ActivityLookUp>> activity_look_ups_
      ABSL_GUARDED_BY(activity_exists_mu_);
  absl::Status CachedActivityExists(const std::string& activity_arn);
  // For a transition scheduling a task: true when the cache holds a
  // confirmation no older than kActivityExistsTtl + kScheduleGrace; never
  // does I/O. The transition's own look-up (CachedActivityExists) asked
  // again moments before if the confirmation had expired, so an older one
  // here is that same answer, aged while the transition ran. Without the
  // grace, a task scheduled as its confirmation expired left through the
  // outbox, behind whatever that held: seconds of status events under load.
  bool ActivityKnownToExist(const std::string& activity_arn);
  static constexpr absl::Duration kScheduleGrace = absl::Seconds(2);
  // For polls: true when the cache holds a confirmation, also an expired
  // one, which the refresher then asks the owner about again (a poll need
  // not wait for that question: an owner slow to answer, or unreachable
  // and timing out, holds up no poll). Never does I/O.
  bool ActivityServable(const std::string& activity_arn);
  // Asks the owners of the activities ActivityServable found expired, one
  // at a time, on a thread of its own.
  void RefreshLoop();
  absl::Mutex refresh_mu_;
  std::deque<std::string> refresh_queue_ ABSL_GUARDED_BY(refresh_mu_);
  absl::flat_hash_set<std::string> refreshing_ ABSL_GUARDED_BY(refresh_mu_);
  bool refresh_stop_ ABSL_GUARDED_BY(refresh_mu_) = false;
  std::thread refresh_thread_;
  // Puts `task`'s backlog record into `batch` and moves the task to
  // `queued`, when this server owns the task's queue partition and knows
  // the activity exists; the caller adds `queued` to task_queues_ once the
  // batch is written, under the execution's lock. False (and
  // nothing changed): the task must go through the outbox.
  bool QueueLocally(internal::v1::ActivityTask& task, storage::WriteBatch& batch,
                    std::vector<TaskQueues::Queued>* queued);
  // Direct hand-over of a transition's new tasks to pollers already waiting
  // here: for each task QueueLocally will queue, claims the activity's
  // longest-waiting poller and records ActivityStarted for it in `outcome`
  // (so the transition's one write also hands the task over). Returns the
  // claimed task ids; the caller holds the execution's lock and
  // calls ReleaseClaims with them after CommitTransition (which hands the
  // tasks over when its write succeeds: HandOrQueue).
  std::vector<std::string> ClaimPollers(asl::Interpreter& interpreter,
                                        internal::v1::ExecutionRecord& record,
                                        asl::Outcome& outcome, absl::Time now);
  // Lets go the claimed pollers of tasks that were not handed over.
  void ReleaseClaims(const std::vector<std::string>& task_ids);
  bool Claimed(const std::string& task_id);
  // After a transition's write: to the claimed poller, else to the backlog.
  void HandOrQueue(TaskQueues::Queued queued);
  // Puts tasks handed to a poller that went away back in the backlog:
  // stored again (through the group committer, not waited for) unless
  // they live in memory.
  void ReturnToBacklog(const std::string& arn, std::vector<TaskQueues::Queued> tasks);
  // The hand-over of tasks taken from the backlog (see PollActivityTasks).
  absl::Status HandOver(const std::string& worker_name, const std::string& arn,
                        std::vector<TaskQueues::Queued>& taken);
  // Answers a poll with tasks handed over, or puts them back when its
  // caller went away.
  absl::Status Deliver(const std::string& arn, std::vector<TaskQueues::Queued> taken,
                       const std::function<bool()>& cancelled,
                       internal::v1::PollActivityTasksResponse* response);
  absl::Mutex claims_mu_;
  absl::flat_hash_map<std::string, TaskQueues::Waiter*> claims_ ABSL_GUARDED_BY(claims_mu_);
  // The interpreter's ExecutionContext::activity_exists: asked under the
  // execution's lock, it answers from the cache when it can (a
  // miss reads this server's catalog or asks the activity's owner).
  std::function<bool(const std::string&)> ActivityExistsAnswer();
  // The shard of the first partition of `activity_arn` this server owns;
  // FAILED_PRECONDITION when it owns none.
  absl::StatusOr<uint32_t> FirstOwnedPartitionShard(absl::string_view activity_arn) const;

  // Outbox keys of ActivityStarted items already delivered directly by a
  // hand-over; the next hand-over's write deletes them.
  absl::Mutex started_cleanup_mu_;
  std::vector<std::string> started_cleanup_ ABSL_GUARDED_BY(started_cleanup_mu_);

  std::atomic<uint64_t> next_outbox_seq_{1};
  // The outbox sequence for a published event of a transition whose
  // effects are `effects`; registers the transition's first one in
  // publishing_.
  uint64_t NextPublishSeq(CommitEffects& effects);
  // Its write has ended (written or failed): the transition's published
  // events leave publishing_.
  void PublishWriteEnded(const CommitEffects& effects);
  // Below this outbox sequence every published event's write has ended:
  // the outbox scans from no later than there, so that an event is never
  // left behind a later one of its execution.
  uint64_t PublishWatermark();
  absl::Mutex publish_mu_;
  // The first published-event sequence of each transition whose write has
  // not ended.
  absl::btree_set<uint64_t> publishing_ ABSL_GUARDED_BY(publish_mu_);
  OutboxLane items_outbox_{"items"};
  OutboxLane events_outbox_{"events"};
  // The outbox's deliveries (and hand-overs' writes) run on these threads.
  static constexpr int kOutboxDeliveryThreads = 31;
  std::unique_ptr<DeliveryPool> delivery_pool_;

  // One per AwaitExecutionClosed call, on its stack, listed under the ARN
  // it waits for while it waits: a closing execution signals only its own
  // waiters, and an execution nobody awaits costs one map lookup.
  struct CloseWaiter {
    absl::CondVar closed_cv;
    bool closed = false;  // guarded by close_waiters_mu_
    // The record as it closed, when no store keeps it (see
    // LeavesStoreWhenClosed); guarded by close_waiters_mu_.
    std::shared_ptr<const internal::v1::ExecutionRecord> closed_record;
  };
  absl::Mutex close_waiters_mu_;
  absl::flat_hash_map<std::string, std::vector<CloseWaiter*>> close_waiters_
      ABSL_GUARDED_BY(close_waiters_mu_);
  bool close_waiters_stop_ ABSL_GUARDED_BY(close_waiters_mu_) = false;
  // AwaitExecutionClosedLater's callers, by ARN.
  absl::flat_hash_map<std::string, std::vector<std::unique_ptr<LaterCloseWaiter>>>
      later_close_waiters_ ABSL_GUARDED_BY(close_waiters_mu_);
  // How often the timer loop looks whether their callers went away.
  static constexpr absl::Duration kLaterCloseRecheck = absl::Milliseconds(200);
  uint64_t later_close_last_id_ ABSL_GUARDED_BY(close_waiters_mu_) = 0;
  absl::Time later_close_checked_ ABSL_GUARDED_BY(close_waiters_mu_) = absl::InfinitePast();
  absl::Time later_close_earliest_ ABSL_GUARDED_BY(close_waiters_mu_) = absl::InfiniteFuture();

  absl::Mutex timers_mu_;
  // Starts in the past: timers that came due while the server was down
  // fire at once.
  absl::Time next_timer_wake_ ABSL_GUARDED_BY(timers_mu_) = absl::InfinitePast();
  bool timers_stop_ ABSL_GUARDED_BY(timers_mu_) = false;
  bool timers_changed_ ABSL_GUARDED_BY(timers_mu_) = false;
  // When the sleeping timer loop wakes next; in the past while it runs.
  absl::Time timer_loop_wakes_at_ ABSL_GUARDED_BY(timers_mu_) = absl::InfinitePast();
  std::thread timer_thread_;
  absl::Time next_retention_sweep_ = absl::InfinitePast();  // timer thread only
  // The Unix day whose older task ids were last dropped (see
  // PurgeOldTaskIds); -1 before the first sweep.
  absl::Mutex task_id_purge_mu_;
  int64_t task_ids_purged_on_ ABSL_GUARDED_BY(task_id_purge_mu_) = -1;
};

}  // namespace stepflow::execution

#endif  // STEPFLOW_SERVICES_EXECUTION_SHARD_CORE_H_
