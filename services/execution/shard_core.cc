#include "services/execution/shard_core.h"

#include <algorithm>
#include <cstdio>
#include <map>
#include <memory>
#include <set>
#include <utility>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/synchronization/notification.h"
#include "absl/hash/hash.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/config/sharding.h"
#include "common/json/json.h"
#include "common/log/log.h"
#include "services/eventbus/catalog.h"
#include "services/eventbus/envelope.h"
#include "common/status/status_macros.h"
#include "google/protobuf/util/json_util.h"
#include "google/protobuf/util/message_differencer.h"
#include "google/protobuf/util/time_util.h"
#include "services/execution/keys.h"
#include "services/execution/map_runs.h"

namespace stepflow::execution {
namespace {

// At least this many locks (see ShardCore::LockOf): with 64 transitions
// in flight on 256 shards, a lock per shard was often held by another's
// fsync when a transition came for it.
constexpr uint64_t kMinLockStripes = 4096;

using internal::v1::ActivityRecord;
using internal::v1::ActivityTask;
using internal::v1::ExecutionRecord;
using internal::v1::StateMachineRecord;

constexpr char kComponent[] = "shard";
constexpr int kDefaultHistoryPage = 100;
constexpr int kMaxHistoryPage = 1000;
constexpr int kDefaultCatalogPage = 100;
constexpr int kMaxCatalogPage = 1000;
// AWS's quotas per state machine.
constexpr int kMaxVersions = 1000;
constexpr int kMaxAliases = 100;
// AWS redrives executions within 14 days of their stop, at most 1000 times.
constexpr absl::Duration kRedriveWindow = absl::Hours(24 * 14);
constexpr int kMaxRedrives = 1000;
// Inputs of one batch of polled tasks stay well under gRPC's 4 MiB message
// limit.
constexpr size_t kMaxBatchInputBytes = 3 << 20;

// The payload `event` carries, a JSON input or output, when its type has
// one that neighbouring events often repeat; null otherwise.
std::string* HistoryPayloadOf(v1::HistoryEvent& event) {
  using Details = v1::HistoryEvent::DetailsCase;
  switch (event.details_case()) {
    case Details::kStateEnteredEventDetails:
      return event.mutable_state_entered_event_details()->mutable_input();
    case Details::kStateExitedEventDetails:
      return event.mutable_state_exited_event_details()->mutable_output();
    case Details::kActivityScheduledEventDetails:
      return event.mutable_activity_scheduled_event_details()->mutable_input();
    case Details::kTaskScheduledEventDetails:
      return event.mutable_task_scheduled_event_details()->mutable_parameters();
    case Details::kLambdaFunctionScheduledEventDetails:
      return event.mutable_lambda_function_scheduled_event_details()->mutable_input();
    case Details::kExecutionStartedEventDetails:
      return event.mutable_execution_started_event_details()->mutable_input();
    case Details::kExecutionSucceededEventDetails:
      return event.mutable_execution_succeeded_event_details()->mutable_output();
    default:
      return nullptr;
  }
}

// Appends field `field`, length-delimited, of `size` bytes to `out`: its
// tag and length.
void AppendLengthDelimitedHeader(uint32_t field, size_t size, std::string* out) {
  auto varint = [out](uint64_t value) {
    for (;; value >>= 7) {
      if (value < 0x80) {
        out->push_back(static_cast<char>(value));
        return;
      }
      out->push_back(static_cast<char>((value & 0x7f) | 0x80));
    }
  };
  varint((static_cast<uint64_t>(field) << 3) | 2);
  varint(size);
}

// Serializes `events` (consecutive ids, one transition's) as a
// HistoryChunk into `chunk`. A payload an earlier event of the chunk
// carries is stored once (HistoryChunk.shared_payloads); the events are
// left as they were.
void SerializeHistoryChunk(asl::EventList& events, size_t begin, size_t end,
                           std::string* chunk) {
  static_assert(internal::v1::HistoryChunk::kEventsFieldNumber == 1000);
  static_assert(internal::v1::HistoryChunk::kSharedPayloadsFieldNumber == 1001);
  // Small payloads are not worth a reference.
  constexpr size_t kMinShared = 64;
  std::vector<std::pair<int, int>> shared;  // (event, from)
  std::vector<std::pair<int, const std::string*>> carried;  // (event, its payload)
  for (size_t i = begin; i < end; ++i) {
    v1::HistoryEvent& event = events[i];
    const int index = static_cast<int>(i - begin);
    std::string* payload = HistoryPayloadOf(event);
    int from = -1;
    if (payload != nullptr && payload->size() >= kMinShared) {
      // The latest carrier first: a repeat is mostly of the event before.
      for (auto it = carried.rbegin(); it != carried.rend(); ++it) {
        if (*it->second == *payload) {
          from = it->first;
          break;
        }
      }
    }
    std::string kept;
    if (from >= 0) {
      payload->swap(kept);
      shared.emplace_back(index, from);
    }
    const size_t size = event.ByteSizeLong();
    AppendLengthDelimitedHeader(1000, size, chunk);
    const size_t at = chunk->size();
    chunk->resize(at + size);
    event.SerializeWithCachedSizesToArray(reinterpret_cast<uint8_t*>(chunk->data() + at));
    if (from >= 0) {
      payload->swap(kept);
    } else if (payload != nullptr && payload->size() >= kMinShared) {
      carried.emplace_back(index, payload);
    }
  }
  for (const auto& [event, from] : shared) {
    internal::v1::SharedPayload reference;
    reference.set_event(event);
    reference.set_from(from);
    AppendLengthDelimitedHeader(1001, reference.ByteSizeLong(), chunk);
    reference.AppendToString(chunk);
  }
}

// A stored history value: a chunk, or the single event that older stores
// keep per key. Shared payloads are put back in the events that share them.
bool ParseHistoryChunk(std::string_view value, internal::v1::HistoryChunk* chunk) {
  if (!chunk->ParseFromArray(value.data(), static_cast<int>(value.size()))) return false;
  if (chunk->events_size() == 0) {
    chunk->Clear();
    return chunk->add_events()->ParseFromArray(value.data(), static_cast<int>(value.size()));
  }
  for (const internal::v1::SharedPayload& reference : chunk->shared_payloads()) {
    if (reference.event() < 0 || reference.event() >= chunk->events_size() ||
        reference.from() < 0 || reference.from() >= reference.event()) {
      return false;
    }
    std::string* payload = HistoryPayloadOf(*chunk->mutable_events(reference.event()));
    const std::string* from = HistoryPayloadOf(*chunk->mutable_events(reference.from()));
    if (payload == nullptr || from == nullptr) return false;
    *payload = *from;
  }
  chunk->clear_shared_payloads();
  return true;
}

google::protobuf::Timestamp ToProto(absl::Time time) {
  google::protobuf::Timestamp ts;
  const int64_t nanos = absl::ToUnixNanos(time);
  ts.set_seconds(nanos / 1000000000);
  ts.set_nanos(static_cast<int32_t>(nanos % 1000000000));
  return ts;
}

absl::Time FromProto(const google::protobuf::Timestamp& ts) {
  return absl::FromUnixSeconds(ts.seconds()) + absl::Nanoseconds(ts.nanos());
}

// Days since the Unix epoch (UTC).
uint32_t UnixDay(absl::Time time) {
  return static_cast<uint32_t>(std::max<int64_t>(0, absl::ToUnixSeconds(time) / 86400));
}

absl::Status StateMachineDoesNotExist(absl::string_view arn) {
  return absl::NotFoundError(
      absl::StrCat("StateMachineDoesNotExist: State Machine Does Not Exist: '", arn, "'"));
}

absl::Status ExecutionDoesNotExist(absl::string_view arn) {
  return absl::NotFoundError(
      absl::StrCat("ExecutionDoesNotExist: Execution Does Not Exist: '", arn, "'"));
}

absl::Status ActivityDoesNotExist(absl::string_view arn) {
  return absl::NotFoundError(
      absl::StrCat("ActivityDoesNotExist: Activity Does Not Exist: '", arn, "'"));
}

absl::Status TaskNoLongerExists() {
  return absl::FailedPreconditionError(
      "TaskTimedOut: Task Timed Out: 'Provided task does not exist anymore'");
}

bool SameStateMachine(const StateMachineRecord& stored,
                      const v1::CreateStateMachineRequest& request) {
  using google::protobuf::util::MessageDifferencer;
  return stored.definition() == request.definition() &&
         stored.role_arn() == request.role_arn() &&
         stored.type() == (request.type().empty() ? "STANDARD" : request.type()) &&
         MessageDifferencer::Equals(stored.logging_configuration(),
                                    request.logging_configuration()) &&
         MessageDifferencer::Equals(stored.tracing_configuration(),
                                    request.tracing_configuration());
}

absl::Status ConflictException(absl::string_view message) {
  return absl::AlreadyExistsError(absl::StrCat("ConflictException: ", message));
}

absl::Status ResourceNotFound(absl::string_view arn) {
  return absl::NotFoundError(absl::StrCat("ResourceNotFound: Resource not found: '", arn, "'"));
}

absl::Status InvalidToken(absl::string_view token) {
  return absl::InvalidArgumentError(absl::StrCat("InvalidToken: Invalid Token: '", token, "'"));
}

// A revision id in UUID form, unique per state machine: it hashes the ARN,
// the revision counter and the time.
std::string NewRevisionId(const StateMachineRecord& record, absl::Time now) {
  const std::string seed = absl::StrCat(record.state_machine_arn(), "#",
                                        record.revision_count(), "#", absl::ToUnixNanos(now));
  const uint64_t hi = config::StableHash(absl::StrCat("hi:", seed));
  const uint64_t lo = config::StableHash(absl::StrCat("lo:", seed));
  char out[37];
  std::snprintf(out, sizeof(out), "%08x-%04x-%04x-%04x-%012llx",
                static_cast<unsigned>(hi >> 32), static_cast<unsigned>((hi >> 16) & 0xffff),
                static_cast<unsigned>(hi & 0xffff), static_cast<unsigned>(lo >> 48),
                static_cast<unsigned long long>(lo & 0xffffffffffffull));
  return out;
}

bool SameRouting(const google::protobuf::RepeatedPtrField<v1::RoutingConfigurationListItem>& a,
                 const google::protobuf::RepeatedPtrField<v1::RoutingConfigurationListItem>& b) {
  if (a.size() != b.size()) return false;
  std::map<std::string, int> weights;
  for (const auto& item : a) weights[item.state_machine_version_arn()] = item.weight();
  for (const auto& item : b) {
    auto it = weights.find(item.state_machine_version_arn());
    if (it == weights.end() || it->second != item.weight()) return false;
  }
  return true;
}


// The activity of every task the execution awaits, by scheduled event id.
ShardCore::PendingTasks PendingActivityTasks(const internal::v1::ExecutionState& state) {
  ShardCore::PendingTasks pending;
  for (const auto& [id, frame] : state.frames()) {
    if (frame.scheduled_event_id() != 0 && !frame.activity_arn().empty()) {
      pending.emplace(frame.scheduled_event_id(), frame.activity_arn());
    }
  }
  return pending;
}

// Every listing an execution appears in: its state machine's, and the
// version's and alias's it started through.
std::vector<std::string> VisibilityKeys(const ExecutionRecord& record) {
  const std::string sort_key =
      keys::VisibilitySortKey(FromProto(record.start_date()), record.execution_arn());
  std::vector<std::string> result = {keys::VisibilityPrefix(record.state_machine_arn()) + sort_key};
  for (const std::string& arn :
       {record.state_machine_version_arn(), record.state_machine_alias_arn()}) {
    if (!arn.empty()) result.push_back(keys::VisibilityPrefix(arn) + sort_key);
  }
  return result;
}

// Whether a closing transition deletes the execution's keys instead of
// storing it closed: an EXPRESS execution is then kept in memory only, as
// those that end within their start are (AWS keeps nothing queryable of
// EXPRESS executions, and a closed one has nothing left to redo after a
// crash). Not one a parent's task started (the parent's repeated start
// must find it), nor one with map runs (their index names it), nor a
// synchronous start's whose caller waits on a thread (it may start waiting
// only after the close, and must find it).
bool LeavesStoreWhenClosed(const ExecutionRecord& record) {
  return record.state_machine_type() == "EXPRESS" && !record.has_parent_task() &&
         !record.synchronous() && record.state().map_runs().empty() &&
         !record.map_runs_indexed();
}

// Whether RedriveExecution may run `record` again at `now`, with AWS's
// reasons when not (ExecutionNotRedrivable).
absl::Status Redrivable(const ExecutionRecord& record, absl::Time now) {
  auto not_redrivable = [&](absl::string_view why) {
    return absl::FailedPreconditionError(absl::StrCat("ExecutionNotRedrivable: ", why));
  };
  if (record.state_machine_type() == "EXPRESS") {
    return not_redrivable("Express executions cannot be redriven");
  }
  if (record.status() != "FAILED" && record.status() != "TIMED_OUT" &&
      record.status() != "ABORTED") {
    return not_redrivable(
        absl::StrCat("Execution is ", record.status(), " and cannot be redriven"));
  }
  if (FromProto(record.stop_date()) + kRedriveWindow < now) {
    return not_redrivable("Execution can only be redriven within 14 days of its stop date");
  }
  if (record.redrive_count() >= kMaxRedrives) {
    return not_redrivable(
        absl::StrCat("Execution has reached the maximum of ", kMaxRedrives, " redrives"));
  }
  if (record.state().redrive_frames().empty()) {
    return not_redrivable("Execution has no failed state to run again");
  }
  return absl::OkStatus();
}

// DescribeExecution's answer for `record` at `now`.
void DescribeRecord(const ExecutionRecord& record, bool include_data, absl::Time now,
                    v1::DescribeExecutionResponse* response) {
  response->set_execution_arn(record.execution_arn());
  response->set_state_machine_arn(record.state_machine_arn());
  response->set_name(record.name());
  response->set_status(record.status());
  *response->mutable_start_date() = record.start_date();
  if (record.has_stop_date()) *response->mutable_stop_date() = record.stop_date();
  if (include_data) response->set_input(record.input());
  response->mutable_input_details()->set_included(include_data);
  if (record.status() == "SUCCEEDED") {
    if (include_data) response->set_output(record.output());
    response->mutable_output_details()->set_included(include_data);
  }
  response->set_error(record.error());
  response->set_cause(record.cause());
  response->set_state_machine_version_arn(record.state_machine_version_arn());
  response->set_state_machine_alias_arn(record.state_machine_alias_arn());
  response->set_redrive_count(record.redrive_count());
  if (record.has_redrive_date()) *response->mutable_redrive_date() = record.redrive_date();
  if (absl::Status redrivable = Redrivable(record, now); redrivable.ok()) {
    response->set_redrive_status("REDRIVABLE");
  } else {
    response->set_redrive_status("NOT_REDRIVABLE");
    response->set_redrive_status_reason(
        std::string(redrivable.message().substr(redrivable.message().find(": ") + 2)));
  }
}

}  // namespace

ShardCore::ShardCore(const ShardCoreOptions& options, Peers* peers)
    : options_(options),
      peers_(peers),
      codec_(options.token_secret),
      stripes_(static_cast<uint64_t>(options.shard_count) *
               std::max<uint64_t>(1, (kMinLockStripes + options.shard_count - 1) /
                                         options.shard_count)),
      lock_stripes_(new ShardLock[stripes_]) {}

ShardLock& ShardCore::LockOf(absl::string_view routing_key) {
  return LockOfHash(config::StableHash(routing_key));
}

absl::StatusOr<std::unique_ptr<ShardCore>> ShardCore::Open(const ShardCoreOptions& options,
                                                           Peers* peers) {
  if (options.clock == nullptr) return absl::InvalidArgumentError("a clock is required");
  if (options.shard_count == 0 || options.replicas <= 0 || options.ordinal < 0 ||
      options.ordinal >= options.replicas) {
    return absl::InvalidArgumentError(absl::StrCat(
        "invalid shard ownership: ordinal ", options.ordinal, " of ", options.replicas,
        " replicas over ", options.shard_count, " logical shards"));
  }
  std::unique_ptr<ShardCore> core(new ShardCore(options, peers));
  RETURN_IF_ERROR(core->Init());
  return core;
}

ShardCore::~ShardCore() { Shutdown(); }

absl::Status ShardCore::Init() {
  if (options_.task_queue_partitions < 1 ||
      options_.task_queue_partitions > config::kMaxTaskQueuePartitions) {
    return absl::InvalidArgumentError(absl::StrCat("the task queue partition count must be 1..",
                                                   config::kMaxTaskQueuePartitions, ", not ",
                                                   options_.task_queue_partitions));
  }
  storage::StoreOptions store_options;
  store_options.path = options_.data_dir;
  store_options.column_families = {keys::kMeta,       keys::kStateMachines, keys::kActivities,
                                   keys::kDefinitions, keys::kExecutions,    keys::kHistory,
                                   keys::kVisibility,  keys::kTasks,         keys::kOutbox,
                                   keys::kEventOutbox, keys::kTimers,        keys::kVersions,
                                   keys::kRetention,   keys::kMapRuns};
  // A start looks its name up before it writes: usually a miss.
  store_options.point_lookup_families = {keys::kExecutions};
  // Each transition rewrites its execution's record and adds a history
  // chunk after the last one.
  store_options.rewritten_families = {keys::kExecutions};
  store_options.sequenced_families = {keys::kHistory};
  store_options.env = options_.store_env;
  store_options.on_write_failure = options_.on_store_failure;
  ASSIGN_OR_RETURN(store_, storage::Store::Open(store_options));
  committer_ = std::make_unique<storage::GroupCommitter>(store_.get());
  ASSIGN_OR_RETURN(families_.meta, store_->Family(keys::kMeta));
  ASSIGN_OR_RETURN(families_.state_machines, store_->Family(keys::kStateMachines));
  ASSIGN_OR_RETURN(families_.activities, store_->Family(keys::kActivities));
  ASSIGN_OR_RETURN(families_.definitions, store_->Family(keys::kDefinitions));
  ASSIGN_OR_RETURN(families_.executions, store_->Family(keys::kExecutions));
  ASSIGN_OR_RETURN(families_.history, store_->Family(keys::kHistory));
  ASSIGN_OR_RETURN(families_.visibility, store_->Family(keys::kVisibility));
  ASSIGN_OR_RETURN(families_.tasks, store_->Family(keys::kTasks));
  ASSIGN_OR_RETURN(families_.outbox, store_->Family(keys::kOutbox));
  ASSIGN_OR_RETURN(families_.event_outbox, store_->Family(keys::kEventOutbox));
  items_outbox_.family = families_.outbox;
  events_outbox_.family = families_.event_outbox;
  ASSIGN_OR_RETURN(families_.timers, store_->Family(keys::kTimers));
  ASSIGN_OR_RETURN(families_.versions, store_->Family(keys::kVersions));
  ASSIGN_OR_RETURN(families_.retention, store_->Family(keys::kRetention));
  ASSIGN_OR_RETURN(families_.map_runs, store_->Family(keys::kMapRuns));

  // The logical shard count places every key; it can never change for a
  // data folder.
  ASSIGN_OR_RETURN(auto stored_count, store_->Get(families_.meta, keys::kShardCountKey));
  const std::string wanted = std::to_string(options_.shard_count);
  if (!stored_count.has_value()) {
    storage::WriteBatch batch;
    batch.Put(families_.meta, keys::kShardCountKey, wanted);
    RETURN_IF_ERROR(store_->Write(batch, /*sync=*/true));
  } else if (*stored_count != wanted) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the data folder ", options_.data_dir, " was created with ", *stored_count,
        " logical shards, but this server was started with --shards ", wanted,
        "; the shard count of a cluster cannot change"));
  }

  // A new ownership epoch for this incarnation, durable before any
  // transition carries it.
  ASSIGN_OR_RETURN(auto stored_epoch, store_->Get(families_.meta, keys::kOwnerEpochKey));
  uint64_t epoch = 1;
  if (stored_epoch.has_value()) {
    if (stored_epoch->size() != 8) return absl::DataLossError("corrupt ownership epoch");
    epoch = storage::DecodeUint64(*stored_epoch) + 1;
  }
  owner_epoch_.clear();
  storage::AppendUint64(&owner_epoch_, epoch);
  {
    storage::WriteBatch batch;
    batch.Put(families_.meta, keys::kOwnerEpochKey, owner_epoch_);
    RETURN_IF_ERROR(store_->Write(batch, /*sync=*/true));
  }

  // Continue sequences after whatever is stored.
  uint64_t last_outbox = 0;
  for (storage::FamilyId family : {families_.outbox, families_.event_outbox}) {
    RETURN_IF_ERROR(store_->Scan(family, "", "", /*reverse=*/true,
                                 [&](std::string_view key, std::string_view) {
                                   last_outbox = std::max(last_outbox, storage::DecodeUint64(key));
                                   return false;
                                 }));
  }
  next_outbox_seq_ = last_outbox + 1;
  task_queues_ = std::make_unique<TaskQueues>(options_.registry, options_.clock);
  RETURN_IF_ERROR(LoadTaskQueues());
  RegisterMetrics();
  delivery_pool_ = std::make_unique<DeliveryPool>(kOutboxDeliveryThreads);
  peers_->Attach(this);
  for (OutboxLane* lane : {&items_outbox_, &events_outbox_}) {
    lane->thread = std::thread([this, lane] { OutboxLoop(*lane); });
  }
  timer_thread_ = std::thread([this] { TimerLoop(); });
  refresh_thread_ = std::thread([this] { RefreshLoop(); });
  return absl::OkStatus();
}

void ShardCore::RegisterMetrics() {
  if (options_.registry == nullptr) return;
  prometheus::Registry& registry = *options_.registry;
  metrics_.transitions = &prometheus::BuildCounter()
                              .Name("stepflow_shard_transitions_total")
                              .Help("Execution transitions committed durably.")
                              .Register(registry)
                              .Add({});
  metrics_.rejected = &prometheus::BuildCounter()
                           .Name("stepflow_shard_admission_rejected_total")
                           .Help("Starts and redrives refused with RESOURCE_EXHAUSTED.")
                           .Register(registry)
                           .Add({});
  metrics_.wal_syncs = &prometheus::BuildGauge()
                            .Name("stepflow_shard_wal_fsyncs")
                            .Help("Write-ahead-log fsyncs since start (group commit shares one "
                                  "among concurrent transitions).")
                            .Register(registry)
                            .Add({});
  metrics_.synced_writes = &prometheus::BuildGauge()
                                .Name("stepflow_shard_synced_writes")
                                .Help("Write batches written synced since start (many may share one write and its fsync).")
                                .Register(registry)
                                .Add({});
  metrics_.inflight = &prometheus::BuildGauge()
                           .Name("stepflow_shard_transitions_in_flight")
                           .Help("Transitions waiting for their shard or their fsync.")
                           .Register(registry)
                           .Add({});
  metrics_.batch_bytes = &prometheus::BuildHistogram()
                              .Name("stepflow_shard_transition_batch_bytes")
                              .Help("Bytes of each transition's write batch.")
                              .Register(registry)
                              .Add({}, prometheus::Histogram::BucketBoundaries{
                                           256, 1024, 4096, 16384, 65536, 262144, 1048576});
  metrics_.batch_ops = &prometheus::BuildHistogram()
                            .Name("stepflow_shard_transition_batch_ops")
                            .Help("Puts and deletes in each transition's write batch.")
                            .Register(registry)
                            .Add({}, prometheus::Histogram::BucketBoundaries{
                                         2, 4, 8, 16, 32, 64, 128, 512});
  // Completions are observable without listing executions (AWS lists no
  // EXPRESS ones, and this server keeps only the recent ones).
  auto& closed = prometheus::BuildCounter()
                     .Name("stepflow_executions_closed_total")
                     .Help("Executions closed, by state machine type and status.")
                     .Register(registry);
  for (int type = 0; type < 2; ++type) {
    for (int status = 0; status < 4; ++status) {
      metrics_.closed[type][status] =
          &closed.Add({{"type", kClosedTypes[type]}, {"status", kClosedStatuses[status]}});
    }
  }
  // The outbox carries tasks for other servers, reports, service calls and
  // the bus's events: its delay is how late all of them arrive.
  auto& deliveries =
      prometheus::BuildCounter()
          .Name("stepflow_outbox_deliveries_total")
          .Help("Outbox deliveries by item kind and outcome (delivered; refused for good; "
                "retried later).")
          .Register(registry);
  auto& delay = prometheus::BuildHistogram()
                    .Name("stepflow_outbox_delay_seconds")
                    .Help("Time from an outbox item's write to its delivery, by item kind.")
                    .Register(registry);
  for (int kind = 0; kind < 8; ++kind) {
    for (int outcome = 0; outcome < 3; ++outcome) {
      metrics_.outbox_deliveries[kind][outcome] = &deliveries.Add(
          {{"item", kOutboxItemKinds[kind]}, {"outcome", kOutboxOutcomes[outcome]}});
    }
    metrics_.outbox_delay[kind] = &delay.Add(
        {{"item", kOutboxItemKinds[kind]}},
        prometheus::Histogram::BucketBoundaries{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                                0.25, 0.5, 1, 2.5, 5, 10, 30, 60});
  }
}

void ShardCore::PutOutboxItem(storage::WriteBatch& batch, const std::string& key,
                              internal::v1::OutboxItem& item) {
  item.set_written_unix_micros(absl::ToUnixMicros(absl::Now()));
  batch.Put(item.has_publish_event() ? families_.event_outbox : families_.outbox, key,
            item.SerializeAsString());
}

namespace {

// Whether an outbox item's delivery is over: delivered, or refused for good
// (nothing to retry).
bool OutboxItemSettled(const absl::Status& status) {
  return status.ok() || absl::IsInvalidArgument(status) || absl::IsNotFound(status);
}

// The index of `item`'s kind in kOutboxItemKinds; -1 for an empty item.
int OutboxItemKind(const internal::v1::OutboxItem& item) {
  using Item = internal::v1::OutboxItem;
  switch (item.item_case()) {
    case Item::kEnqueueActivityTask: return 0;
    case Item::kActivityStarted: return 1;
    case Item::kActivityScheduleFailed: return 2;
    case Item::kCancelActivityTask: return 3;
    case Item::kPublishEvent: return 4;
    case Item::kServiceCall: return 5;
    case Item::kServiceTaskResult: return 6;
    case Item::kStopChildExecution: return 7;
    case Item::ITEM_NOT_SET: break;
  }
  return -1;
}

}  // namespace

void ShardCore::CountOutboxDelivery(const internal::v1::OutboxItem& item,
                                    const absl::Status& status, absl::Time now) {
  const int kind = OutboxItemKind(item);
  if (kind < 0 || metrics_.outbox_delay[0] == nullptr) return;
  const int outcome = status.ok() ? 0 : OutboxItemSettled(status) ? 1 : 2;
  metrics_.outbox_deliveries[kind][outcome]->Increment();
  if (outcome != 2 && item.written_unix_micros() > 0) {
    metrics_.outbox_delay[kind]->Observe(
        absl::ToDoubleSeconds(now - absl::FromUnixMicros(item.written_unix_micros())));
  }
}

void ShardCore::CountClosed(const ExecutionRecord& record, const std::string& status) {
  closed_.fetch_add(1, std::memory_order_relaxed);
  if (metrics_.closed[0][0] == nullptr) return;
  const int type = record.state_machine_type() == "EXPRESS" ? 1 : 0;
  for (int i = 0; i < 4; ++i) {
    if (status == kClosedStatuses[i]) {
      metrics_.closed[type][i]->Increment();
      return;
    }
  }
}

void ShardCore::AddInflight(int delta) {
  const int now = inflight_.fetch_add(delta, std::memory_order_relaxed) + delta;
  if (metrics_.inflight != nullptr) metrics_.inflight->Set(now);
}

absl::Status ShardCore::Admit() {
  const int limit = options_.max_inflight_transitions;
  const uint64_t backlog_limit = options_.max_queued_task_bytes;
  const bool transitions_full = limit > 0 && inflight_.load(std::memory_order_relaxed) >= limit;
  const bool backlog_full = backlog_limit > 0 && task_queues_->QueuedBytes() > backlog_limit;
  if (!transitions_full && !backlog_full) return absl::OkStatus();
  rejected_.fetch_add(1, std::memory_order_relaxed);
  if (metrics_.rejected != nullptr) metrics_.rejected->Increment();
  // AWS's name and text for a throttled call, so clients that switch on the
  // error name back off.
  if (transitions_full) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "ThrottlingException: Rate exceeded (the shard server has ", limit,
        " transitions in flight; retry later)"));
  }
  return absl::ResourceExhaustedError(absl::StrCat(
      "ThrottlingException: Rate exceeded (the activity task backlog of the shard server "
      "holds more than ",
      backlog_limit >> 20, " MiB; retry when workers have taken tasks)"));
}

DurabilityStats ShardCore::Stats() const {
  DurabilityStats stats;
  stats.transitions = transitions_.load(std::memory_order_relaxed);
  stats.rejected = rejected_.load(std::memory_order_relaxed);
  stats.closed = closed_.load(std::memory_order_relaxed);
  if (store_ != nullptr) {
    stats.synced_writes = SyncedBatches();
    stats.wal_syncs = store_->WalSyncs();
  }
  return stats;
}

absl::Status ShardCore::LoadTaskQueues() {
  uint64_t max_seq = 0;
  size_t loaded = 0;
  absl::Status parse_status;
  RETURN_IF_ERROR(store_->Scan(
      families_.tasks, "", "", /*reverse=*/false, [&](std::string_view key, std::string_view value) {
        if (key.size() < 5 || key[4] != 'q') return true;
        ActivityTask task;
        if (!task.ParseFromArray(value.data(), static_cast<int>(value.size()))) {
          parse_status = absl::DataLossError("corrupt task record");
          return false;
        }
        uint64_t seq = storage::DecodeUint64(key.substr(key.size() - 8));
        max_seq = std::max(max_seq, seq);
        const uint32_t shard = storage::DecodeUint32(key.substr(0, 4));
        task_queues_->Add(TaskQueues::Queued{seq, shard, std::move(task)});
        ++loaded;
        return true;
      }));
  RETURN_IF_ERROR(parse_status);
  next_task_seq_ = max_seq + 1;
  if (loaded > 0) log::Info(kComponent, "recovered queued activity tasks", {{"count", loaded}});
  return absl::OkStatus();
}

void ShardCore::Shutdown() {
  if (task_queues_ != nullptr) task_queues_->Shutdown();
  absl::flat_hash_map<std::string, std::vector<std::unique_ptr<LaterCloseWaiter>>> later;
  {
    absl::MutexLock lock(&close_waiters_mu_);
    close_waiters_stop_ = true;
    for (auto& [arn, waiters] : close_waiters_) {
      for (CloseWaiter* waiter : waiters) waiter->closed_cv.Signal();
    }
    later = std::move(later_close_waiters_);
    later_close_waiters_.clear();
  }
  for (auto& [arn, waiters] : later) {
    for (std::unique_ptr<LaterCloseWaiter>& waiter : waiters) {
      std::move(waiter->answer)(absl::UnavailableError("the shard server is shutting down"));
    }
  }
  for (OutboxLane* lane : {&items_outbox_, &events_outbox_}) {
    {
      absl::MutexLock lock(&lane->mu);
      lane->stop = true;
    }
    if (lane->thread.joinable()) lane->thread.join();
  }
  {
    absl::MutexLock lock(&timers_mu_);
    timers_stop_ = true;
  }
  if (timer_thread_.joinable()) timer_thread_.join();
  {
    absl::MutexLock lock(&refresh_mu_);
    refresh_stop_ = true;
  }
  if (refresh_thread_.joinable()) refresh_thread_.join();
  // Once the threads that commit transitions are done: what was handed
  // over is written and answered; later transitions get UNAVAILABLE.
  if (committer_ != nullptr) committer_->Stop();
}

absl::StatusOr<uint32_t> ShardCore::OwnedShard(absl::string_view arn) const {
  uint32_t shard = config::ShardOf(arn, options_.shard_count);
  if (!config::Owns(shard, options_.ordinal, options_.replicas)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "logical shard ", shard, " is not owned by shard server ", options_.ordinal, " of ",
        options_.replicas, " (check the shard map of the caller)"));
  }
  return shard;
}

template <typename Message>
absl::StatusOr<std::optional<Message>> ShardCore::Read(storage::FamilyId family,
                                                       const std::string& key) {
  ASSIGN_OR_RETURN(auto bytes, store_->Get(family, key));
  if (!bytes.has_value()) return std::optional<Message>();
  Message message;
  if (!message.ParseFromString(*bytes)) {
    return absl::DataLossError(absl::StrCat("corrupt ", Message::descriptor()->name()));
  }
  return std::optional<Message>(std::move(message));
}

// --- Catalog --------------------------------------------------------------

absl::Status ShardCore::CreateStateMachine(const v1::CreateStateMachineRequest& request,
                                           v1::CreateStateMachineResponse* response) {
  const std::string arn = config::StateMachineArn(options_.arn_scope, request.name());
  ASSIGN_OR_RETURN(uint32_t shard, OwnedShard(arn));
  const std::string key = keys::ResourceKey(shard, arn);
  ShardLockGuard lock(&LockOf(arn));
  ASSIGN_OR_RETURN(auto existing, Read<StateMachineRecord>(families_.state_machines, key));
  if (existing.has_value()) {
    // Creating the same state machine again is idempotent, as on AWS.
    if (!SameStateMachine(*existing, request)) {
      return absl::AlreadyExistsError(
          absl::StrCat("StateMachineAlreadyExists: State Machine Already Exists: '", arn, "'"));
    }
    response->set_state_machine_arn(arn);
    *response->mutable_creation_date() = existing->creation_date();
    if (request.publish()) {
      storage::WriteBatch batch;
      ASSIGN_OR_RETURN(auto version, PublishLocked(shard, *existing, request.version_description(),
                                                   options_.clock->Now(), batch));
      batch.Put(families_.state_machines, key, existing->SerializeAsString());
      ForgetStateMachine(arn);
      RETURN_IF_ERROR(store_->Write(batch, /*sync=*/true));
      response->set_state_machine_version_arn(version.version_arn());
    }
    return absl::OkStatus();
  }
  const absl::Time now = options_.clock->Now();
  StateMachineRecord record;
  record.set_state_machine_arn(arn);
  record.set_name(request.name());
  record.set_definition(request.definition());
  record.set_role_arn(request.role_arn());
  record.set_type(request.type().empty() ? "STANDARD" : request.type());
  record.set_status("ACTIVE");
  *record.mutable_creation_date() = ToProto(now);
  *record.mutable_update_date() = ToProto(now);
  record.set_revision_count(1);
  record.set_revision_id(NewRevisionId(record, now));
  *record.mutable_logging_configuration() = request.logging_configuration();
  *record.mutable_tracing_configuration() = request.tracing_configuration();
  storage::WriteBatch batch;
  if (request.publish()) {
    ASSIGN_OR_RETURN(auto version,
                     PublishLocked(shard, record, request.version_description(), now, batch));
    response->set_state_machine_version_arn(version.version_arn());
  }
  batch.Put(families_.state_machines, key, record.SerializeAsString());
  batch.Put(families_.definitions, keys::DefinitionKey(arn, record.revision_id()),
            record.definition());
  ForgetStateMachine(arn);
  RETURN_IF_ERROR(store_->Write(batch, /*sync=*/true));
  log::Info(kComponent, "state machine created", {{"arn", arn}});
  response->set_state_machine_arn(arn);
  *response->mutable_creation_date() = record.creation_date();
  return absl::OkStatus();
}

absl::StatusOr<StateMachineRecord> ShardCore::GetStateMachineRecord(const std::string& arn) {
  ASSIGN_OR_RETURN(uint32_t shard, OwnedShard(arn));
  ASSIGN_OR_RETURN(auto record,
                   Read<StateMachineRecord>(families_.state_machines, keys::ResourceKey(shard, arn)));
  if (!record.has_value()) return StateMachineDoesNotExist(arn);
  return *record;
}

absl::Status ShardCore::DescribeStateMachine(const v1::DescribeStateMachineRequest& request,
                                             v1::DescribeStateMachineResponse* response) {
  ASSIGN_OR_RETURN(config::StateMachineRef ref,
                   config::ParseStateMachineRef(options_.arn_scope, request.state_machine_arn()));
  if (!ref.alias.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "InvalidArn: Invalid Arn: 'Resource type not valid in this context: ",
        request.state_machine_arn(), "'"));
  }
  StateMachineRecord record;
  if (ref.version > 0) {
    // A version describes the revision it snapshots, under its own ARN.
    internal::v1::ResolveStateMachineRequest resolve;
    resolve.set_arn(request.state_machine_arn());
    ASSIGN_OR_RETURN(auto resolved, ResolveStateMachine(resolve));
    ASSIGN_OR_RETURN(uint32_t shard, OwnedShard(ref.state_machine_arn));
    ASSIGN_OR_RETURN(auto version, Read<internal::v1::StateMachineVersionRecord>(
                                       families_.versions,
                                       keys::VersionKey(shard, ref.state_machine_arn, ref.version)));
    record = std::move(*resolved.mutable_state_machine());
    record.set_state_machine_arn(request.state_machine_arn());
    record.set_description(version.has_value() ? version->description() : "");
    if (version.has_value()) *record.mutable_creation_date() = version->creation_date();
  } else {
    ASSIGN_OR_RETURN(record, GetStateMachineRecord(request.state_machine_arn()));
  }
  response->set_state_machine_arn(record.state_machine_arn());
  response->set_name(record.name());
  response->set_status(record.status());
  response->set_definition(record.definition());
  response->set_role_arn(record.role_arn());
  response->set_type(record.type());
  *response->mutable_creation_date() = record.creation_date();
  *response->mutable_logging_configuration() = record.logging_configuration();
  *response->mutable_tracing_configuration() = record.tracing_configuration();
  response->set_revision_id(record.revision_id());
  response->set_description(record.description());
  return absl::OkStatus();
}

absl::Status ShardCore::DeleteStateMachine(const v1::DeleteStateMachineRequest& request) {
  const std::string& arn = request.state_machine_arn();
  ASSIGN_OR_RETURN(uint32_t shard, OwnedShard(arn));
  ShardLockGuard lock(&LockOf(arn));
  // Deleting is idempotent on AWS: an unknown ARN succeeds. Running
  // executions keep their own copy of the definition revision.
  // Its versions and aliases go with it.
  storage::WriteBatch batch;
  batch.Delete(families_.state_machines, keys::ResourceKey(shard, arn));
  ForgetStateMachine(arn);
  for (const std::string& prefix : {keys::VersionPrefix(shard, arn), keys::AliasPrefix(shard, arn)}) {
    RETURN_IF_ERROR(store_->Scan(families_.versions, prefix, "", false,
                                 [&](std::string_view key, std::string_view) {
                                   batch.Delete(families_.versions, key);
                                   return true;
                                 }));
  }
  RETURN_IF_ERROR(store_->Write(batch, /*sync=*/true));
  log::Info(kComponent, "state machine deleted", {{"arn", arn}});
  return absl::OkStatus();
}

absl::Status ShardCore::ListStateMachines(const internal::v1::ListShardRequest& request,
                                          internal::v1::ListStateMachinesShardResponse* response) {
  std::vector<StateMachineRecord> records;
  absl::Status parse_status;
  RETURN_IF_ERROR(store_->Scan(families_.state_machines, "", "", false,
                               [&](std::string_view, std::string_view value) {
                                 StateMachineRecord record;
                                 if (!record.ParseFromArray(value.data(), static_cast<int>(value.size()))) {
                                   parse_status = absl::DataLossError("corrupt state machine");
                                   return false;
                                 }
                                 if (record.name() > request.after_key()) {
                                   records.push_back(std::move(record));
                                 }
                                 return true;
                               }));
  RETURN_IF_ERROR(parse_status);
  std::sort(records.begin(), records.end(),
            [](const auto& a, const auto& b) { return a.name() < b.name(); });
  const size_t limit = request.limit() > 0 ? static_cast<size_t>(request.limit()) : records.size();
  for (size_t i = 0; i < records.size() && i < limit; ++i) {
    *response->add_state_machines() = std::move(records[i]);
  }
  return absl::OkStatus();
}

// --- Revisions, versions and aliases ---------------------------------------


namespace {

// Every record of `Message` under `prefix` of `family`, in key order.
template <typename Message>
absl::StatusOr<std::vector<Message>> ScanRecords(const storage::Store& store,
                                                 storage::FamilyId family,
                                                 const std::string& prefix,
                                                 absl::string_view what) {
  std::vector<Message> records;
  absl::Status parse_status;
  RETURN_IF_ERROR(store.Scan(family, prefix, "", false,
                             [&](std::string_view, std::string_view value) {
                               Message record;
                               if (!record.ParseFromArray(value.data(),
                                                          static_cast<int>(value.size()))) {
                                 parse_status = absl::DataLossError(
                                     absl::StrCat("corrupt ", what, " record"));
                                 return false;
                               }
                               records.push_back(std::move(record));
                               return true;
                             }));
  RETURN_IF_ERROR(parse_status);
  return records;
}

}  // namespace

absl::StatusOr<std::vector<internal::v1::StateMachineVersionRecord>> ShardCore::ReadVersions(
    uint32_t shard, const std::string& state_machine_arn) {
  return ScanRecords<internal::v1::StateMachineVersionRecord>(
      *store_, families_.versions, keys::VersionPrefix(shard, state_machine_arn), "version");
}

absl::StatusOr<std::vector<internal::v1::StateMachineAliasRecord>> ShardCore::ReadAliases(
    uint32_t shard, const std::string& state_machine_arn) {
  return ScanRecords<internal::v1::StateMachineAliasRecord>(
      *store_, families_.versions, keys::AliasPrefix(shard, state_machine_arn), "alias");
}

absl::StatusOr<internal::v1::StateMachineVersionRecord> ShardCore::PublishLocked(
    uint32_t shard, StateMachineRecord& machine, const std::string& description, absl::Time now,
    storage::WriteBatch& batch) {
  ASSIGN_OR_RETURN(auto versions, ReadVersions(shard, machine.state_machine_arn()));
  // Publishing a revision that already has a version returns that version.
  for (const auto& version : versions) {
    if (version.state_machine().revision_id() == machine.revision_id()) return version;
  }
  if (versions.size() >= static_cast<size_t>(kMaxVersions)) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "ServiceQuotaExceededException: The state machine '", machine.state_machine_arn(),
        "' has reached the maximum of ", kMaxVersions, " versions"));
  }
  internal::v1::StateMachineVersionRecord version;
  version.set_version(machine.last_version() + 1);
  version.set_version_arn(
      config::StateMachineVersionArn(machine.state_machine_arn(), version.version()));
  version.set_description(description);
  *version.mutable_creation_date() = ToProto(now);
  machine.set_last_version(version.version());
  *version.mutable_state_machine() = machine;
  batch.Put(families_.versions,
            keys::VersionKey(shard, machine.state_machine_arn(), version.version()),
            version.SerializeAsString());
  log::Info(kComponent, "state machine version published", {{"arn", version.version_arn()}});
  return version;
}

absl::Status ShardCore::UpdateStateMachine(const v1::UpdateStateMachineRequest& request,
                                           v1::UpdateStateMachineResponse* response) {
  const std::string& arn = request.state_machine_arn();
  ASSIGN_OR_RETURN(uint32_t shard, OwnedShard(arn));
  const std::string key = keys::ResourceKey(shard, arn);
  ShardLockGuard lock(&LockOf(arn));
  ASSIGN_OR_RETURN(auto record, Read<StateMachineRecord>(families_.state_machines, key));
  if (!record.has_value()) return StateMachineDoesNotExist(arn);
  using google::protobuf::util::MessageDifferencer;
  bool changed = false;
  if (!request.definition().empty() && request.definition() != record->definition()) {
    record->set_definition(request.definition());
    changed = true;
  }
  if (!request.role_arn().empty() && request.role_arn() != record->role_arn()) {
    record->set_role_arn(request.role_arn());
    changed = true;
  }
  if (request.has_logging_configuration() &&
      !MessageDifferencer::Equals(request.logging_configuration(),
                                  record->logging_configuration())) {
    *record->mutable_logging_configuration() = request.logging_configuration();
    changed = true;
  }
  if (request.has_tracing_configuration() &&
      !MessageDifferencer::Equals(request.tracing_configuration(),
                                  record->tracing_configuration())) {
    *record->mutable_tracing_configuration() = request.tracing_configuration();
    changed = true;
  }
  const absl::Time now = options_.clock->Now();
  storage::WriteBatch batch;
  if (changed) {
    // A new revision; the old one stays stored for the executions and
    // versions that use it.
    record->set_revision_count(record->revision_count() + 1);
    record->set_revision_id(NewRevisionId(*record, now));
    *record->mutable_update_date() = ToProto(now);
    batch.Put(families_.definitions, keys::DefinitionKey(arn, record->revision_id()),
              record->definition());
  }
  if (request.publish()) {
    ASSIGN_OR_RETURN(auto version,
                     PublishLocked(shard, *record, request.version_description(), now, batch));
    response->set_state_machine_version_arn(version.version_arn());
  }
  batch.Put(families_.state_machines, key, record->SerializeAsString());
  ForgetStateMachine(arn);
  RETURN_IF_ERROR(store_->Write(batch, /*sync=*/true));
  if (changed) {
    log::Info(kComponent, "state machine updated",
              {{"arn", arn}, {"revision", record->revision_id()}});
  }
  *response->mutable_update_date() = record->update_date();
  response->set_revision_id(record->revision_id());
  return absl::OkStatus();
}

absl::Status ShardCore::PublishStateMachineVersion(
    const v1::PublishStateMachineVersionRequest& request,
    v1::PublishStateMachineVersionResponse* response) {
  const std::string& arn = request.state_machine_arn();
  ASSIGN_OR_RETURN(uint32_t shard, OwnedShard(arn));
  const std::string key = keys::ResourceKey(shard, arn);
  ShardLockGuard lock(&LockOf(arn));
  ASSIGN_OR_RETURN(auto record, Read<StateMachineRecord>(families_.state_machines, key));
  if (!record.has_value()) return StateMachineDoesNotExist(arn);
  if (!request.revision_id().empty() && request.revision_id() != record->revision_id()) {
    return ConflictException(absl::StrCat(
        "Failed to publish the State Machine version for revision ", request.revision_id(),
        ". The current State Machine revision is ", record->revision_id(), "."));
  }
  storage::WriteBatch batch;
  ASSIGN_OR_RETURN(auto version, PublishLocked(shard, *record, request.description(),
                                               options_.clock->Now(), batch));
  batch.Put(families_.state_machines, key, record->SerializeAsString());
  ForgetStateMachine(arn);
  RETURN_IF_ERROR(store_->Write(batch, /*sync=*/true));
  response->set_state_machine_version_arn(version.version_arn());
  *response->mutable_creation_date() = version.creation_date();
  return absl::OkStatus();
}

absl::Status ShardCore::DeleteStateMachineVersion(
    const v1::DeleteStateMachineVersionRequest& request) {
  ASSIGN_OR_RETURN(config::StateMachineRef ref,
                   config::ParseStateMachineRef(options_.arn_scope,
                                                request.state_machine_version_arn()));
  if (ref.version == 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "InvalidArn: Invalid Arn: 'Not a state machine version ARN: ",
        request.state_machine_version_arn(), "'"));
  }
  ASSIGN_OR_RETURN(uint32_t shard, OwnedShard(ref.state_machine_arn));
  ShardLockGuard lock(&LockOf(ref.state_machine_arn));
  ASSIGN_OR_RETURN(auto aliases, ReadAliases(shard, ref.state_machine_arn));
  std::vector<std::string> routing_here;
  for (const auto& alias : aliases) {
    for (const auto& item : alias.routing_configuration()) {
      if (item.state_machine_version_arn() == request.state_machine_version_arn()) {
        routing_here.push_back(alias.alias_arn());
      }
    }
  }
  if (!routing_here.empty()) {
    return ConflictException(absl::StrCat(
        "Version to be deleted must not be referenced by an alias. Current list of aliases "
        "referencing this version: [",
        absl::StrJoin(routing_here, ", "), "]"));
  }
  // Deleting a version that does not exist succeeds, as on AWS.
  storage::WriteBatch batch;
  batch.Delete(families_.versions, keys::VersionKey(shard, ref.state_machine_arn, ref.version));
  RETURN_IF_ERROR(store_->Write(batch, /*sync=*/true));
  return absl::OkStatus();
}

absl::Status ShardCore::ListStateMachineVersions(
    const v1::ListStateMachineVersionsRequest& request,
    v1::ListStateMachineVersionsResponse* response) {
  const std::string& arn = request.state_machine_arn();
  ASSIGN_OR_RETURN(uint32_t shard, OwnedShard(arn));
  ASSIGN_OR_RETURN(auto record,
                   Read<StateMachineRecord>(families_.state_machines, keys::ResourceKey(shard, arn)));
  if (!record.has_value()) return StateMachineDoesNotExist(arn);
  // The token is the version number to continue at (newest first).
  int64_t continue_at = 0;
  if (!request.next_token().empty() &&
      (!absl::SimpleAtoi(request.next_token(), &continue_at) || continue_at <= 0)) {
    return InvalidToken(request.next_token());
  }
  const int limit = request.max_results() > 0 ? std::min(request.max_results(), kMaxCatalogPage)
                                              : kDefaultCatalogPage;
  ASSIGN_OR_RETURN(auto versions, ReadVersions(shard, arn));
  for (const auto& version : versions) {
    if (continue_at > 0 && version.version() > continue_at) continue;
    if (response->state_machine_versions_size() == limit) {
      response->set_next_token(std::to_string(version.version()));
      break;
    }
    auto* item = response->add_state_machine_versions();
    item->set_state_machine_version_arn(version.version_arn());
    *item->mutable_creation_date() = version.creation_date();
  }
  return absl::OkStatus();
}

absl::Status ShardCore::CheckRouting(
    uint32_t shard, const std::string& state_machine_arn,
    const google::protobuf::RepeatedPtrField<v1::RoutingConfigurationListItem>& routing) {
  for (const auto& item : routing) {
    ASSIGN_OR_RETURN(config::StateMachineRef ref,
                     config::ParseStateMachineRef(options_.arn_scope,
                                                  item.state_machine_version_arn()));
    if (ref.state_machine_arn != state_machine_arn || ref.version == 0) {
      return absl::InvalidArgumentError(
          "ValidationException: Routing configuration must contain versions of the same "
          "state machine");
    }
    ASSIGN_OR_RETURN(auto version, Read<internal::v1::StateMachineVersionRecord>(
                                       families_.versions,
                                       keys::VersionKey(shard, state_machine_arn, ref.version)));
    if (!version.has_value()) return ResourceNotFound(item.state_machine_version_arn());
  }
  return absl::OkStatus();
}

absl::Status ShardCore::CreateStateMachineAlias(const v1::CreateStateMachineAliasRequest& request,
                                                v1::CreateStateMachineAliasResponse* response) {
  if (request.routing_configuration().empty()) {
    return absl::InvalidArgumentError("ValidationException: routingConfiguration is required");
  }
  ASSIGN_OR_RETURN(config::StateMachineRef first,
                   config::ParseStateMachineRef(
                       options_.arn_scope,
                       request.routing_configuration(0).state_machine_version_arn()));
  const std::string& machine_arn = first.state_machine_arn;
  ASSIGN_OR_RETURN(uint32_t shard, OwnedShard(machine_arn));
  ShardLockGuard lock(&LockOf(machine_arn));
  ASSIGN_OR_RETURN(auto machine, Read<StateMachineRecord>(families_.state_machines,
                                                          keys::ResourceKey(shard, machine_arn)));
  if (!machine.has_value()) return StateMachineDoesNotExist(machine_arn);
  RETURN_IF_ERROR(CheckRouting(shard, machine_arn, request.routing_configuration()));
  const std::string key = keys::AliasKey(shard, machine_arn, request.name());
  ASSIGN_OR_RETURN(auto existing, Read<internal::v1::StateMachineAliasRecord>(families_.versions, key));
  if (existing.has_value()) {
    // The same alias again is idempotent; anything else conflicts.
    if (existing->description() != request.description() ||
        !SameRouting(existing->routing_configuration(), request.routing_configuration())) {
      return ConflictException(absl::StrCat("Failed to create alias because an alias with the same name '",
                                            request.name(),
                                            "' and a different configuration already exists."));
    }
    response->set_state_machine_alias_arn(existing->alias_arn());
    *response->mutable_creation_date() = existing->creation_date();
    return absl::OkStatus();
  }
  ASSIGN_OR_RETURN(auto aliases, ReadAliases(shard, machine_arn));
  if (aliases.size() >= static_cast<size_t>(kMaxAliases)) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "ServiceQuotaExceededException: The state machine '", machine_arn,
        "' has reached the maximum of ", kMaxAliases, " aliases"));
  }
  const absl::Time now = options_.clock->Now();
  internal::v1::StateMachineAliasRecord alias;
  alias.set_alias_arn(config::StateMachineAliasArn(machine_arn, request.name()));
  alias.set_state_machine_arn(machine_arn);
  alias.set_name(request.name());
  alias.set_description(request.description());
  *alias.mutable_routing_configuration() = request.routing_configuration();
  *alias.mutable_creation_date() = ToProto(now);
  *alias.mutable_update_date() = ToProto(now);
  storage::WriteBatch batch;
  batch.Put(families_.versions, key, alias.SerializeAsString());
  RETURN_IF_ERROR(store_->Write(batch, /*sync=*/true));
  log::Info(kComponent, "state machine alias created", {{"arn", alias.alias_arn()}});
  response->set_state_machine_alias_arn(alias.alias_arn());
  *response->mutable_creation_date() = alias.creation_date();
  return absl::OkStatus();
}

namespace {

absl::StatusOr<config::StateMachineRef> ParseAliasArn(const config::ArnScope& scope,
                                                      const std::string& arn) {
  ASSIGN_OR_RETURN(config::StateMachineRef ref, config::ParseStateMachineRef(scope, arn));
  if (ref.alias.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("InvalidArn: Invalid Arn: 'Not a state machine alias ARN: ", arn, "'"));
  }
  return ref;
}

}  // namespace

absl::Status ShardCore::DescribeStateMachineAlias(
    const v1::DescribeStateMachineAliasRequest& request,
    v1::DescribeStateMachineAliasResponse* response) {
  ASSIGN_OR_RETURN(config::StateMachineRef ref,
                   ParseAliasArn(options_.arn_scope, request.state_machine_alias_arn()));
  ASSIGN_OR_RETURN(uint32_t shard, OwnedShard(ref.state_machine_arn));
  ASSIGN_OR_RETURN(auto alias, Read<internal::v1::StateMachineAliasRecord>(
                                   families_.versions,
                                   keys::AliasKey(shard, ref.state_machine_arn, ref.alias)));
  if (!alias.has_value()) return ResourceNotFound(request.state_machine_alias_arn());
  response->set_state_machine_alias_arn(alias->alias_arn());
  response->set_name(alias->name());
  response->set_description(alias->description());
  *response->mutable_routing_configuration() = alias->routing_configuration();
  *response->mutable_creation_date() = alias->creation_date();
  *response->mutable_update_date() = alias->update_date();
  return absl::OkStatus();
}

absl::Status ShardCore::UpdateStateMachineAlias(const v1::UpdateStateMachineAliasRequest& request,
                                                v1::UpdateStateMachineAliasResponse* response) {
  ASSIGN_OR_RETURN(config::StateMachineRef ref,
                   ParseAliasArn(options_.arn_scope, request.state_machine_alias_arn()));
  ASSIGN_OR_RETURN(uint32_t shard, OwnedShard(ref.state_machine_arn));
  ShardLockGuard lock(&LockOf(ref.state_machine_arn));
  const std::string key = keys::AliasKey(shard, ref.state_machine_arn, ref.alias);
  ASSIGN_OR_RETURN(auto alias, Read<internal::v1::StateMachineAliasRecord>(families_.versions, key));
  if (!alias.has_value()) return ResourceNotFound(request.state_machine_alias_arn());
  if (!request.routing_configuration().empty()) {
    RETURN_IF_ERROR(CheckRouting(shard, ref.state_machine_arn, request.routing_configuration()));
    *alias->mutable_routing_configuration() = request.routing_configuration();
  }
  if (!request.description().empty()) alias->set_description(request.description());
  *alias->mutable_update_date() = ToProto(options_.clock->Now());
  storage::WriteBatch batch;
  batch.Put(families_.versions, key, alias->SerializeAsString());
  RETURN_IF_ERROR(store_->Write(batch, /*sync=*/true));
  *response->mutable_update_date() = alias->update_date();
  return absl::OkStatus();
}

absl::Status ShardCore::DeleteStateMachineAlias(const v1::DeleteStateMachineAliasRequest& request) {
  ASSIGN_OR_RETURN(config::StateMachineRef ref,
                   ParseAliasArn(options_.arn_scope, request.state_machine_alias_arn()));
  ASSIGN_OR_RETURN(uint32_t shard, OwnedShard(ref.state_machine_arn));
  ShardLockGuard lock(&LockOf(ref.state_machine_arn));
  const std::string key = keys::AliasKey(shard, ref.state_machine_arn, ref.alias);
  ASSIGN_OR_RETURN(auto alias, Read<internal::v1::StateMachineAliasRecord>(families_.versions, key));
  if (!alias.has_value()) return ResourceNotFound(request.state_machine_alias_arn());
  storage::WriteBatch batch;
  batch.Delete(families_.versions, key);
  RETURN_IF_ERROR(store_->Write(batch, /*sync=*/true));
  return absl::OkStatus();
}

absl::Status ShardCore::ListStateMachineAliases(const v1::ListStateMachineAliasesRequest& request,
                                                v1::ListStateMachineAliasesResponse* response) {
  ASSIGN_OR_RETURN(config::StateMachineRef ref,
                   config::ParseStateMachineRef(options_.arn_scope, request.state_machine_arn()));
  ASSIGN_OR_RETURN(uint32_t shard, OwnedShard(ref.state_machine_arn));
  ASSIGN_OR_RETURN(auto machine,
                   Read<StateMachineRecord>(families_.state_machines,
                                            keys::ResourceKey(shard, ref.state_machine_arn)));
  if (!machine.has_value()) return StateMachineDoesNotExist(ref.state_machine_arn);
  const int limit = request.max_results() > 0 ? std::min(request.max_results(), kMaxCatalogPage)
                                              : kDefaultCatalogPage;
  // The token is the alias name to continue at (aliases are in name order).
  ASSIGN_OR_RETURN(auto aliases, ReadAliases(shard, ref.state_machine_arn));
  if (!request.next_token().empty() && !config::ValidateAliasName(request.next_token()).ok()) {
    return InvalidToken(request.next_token());
  }
  for (const auto& alias : aliases) {
    // Listing by a version ARN lists the aliases that route to it.
    if (ref.version > 0 &&
        std::none_of(alias.routing_configuration().begin(), alias.routing_configuration().end(),
                     [&](const auto& item) {
                       return item.state_machine_version_arn() == request.state_machine_arn();
                     })) {
      continue;
    }
    if (!request.next_token().empty() && alias.name() < request.next_token()) continue;
    if (response->state_machine_aliases_size() == limit) {
      response->set_next_token(alias.name());
      break;
    }
    auto* item = response->add_state_machine_aliases();
    item->set_state_machine_alias_arn(alias.alias_arn());
    *item->mutable_creation_date() = alias.creation_date();
  }
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<const StateMachineRecord>> ShardCore::CachedStateMachine(
    uint32_t shard, const std::string& state_machine_arn) {
  {
    absl::MutexLock cache_lock(&machine_cache_mu_);
    auto cached = machine_cache_.find(state_machine_arn);
    if (cached != machine_cache_.end()) return cached->second;
  }
  // Read and cached under the record's lock, which every write of the
  // record holds while it forgets the cached one: no stale record enters.
  ShardLockGuard lock(&LockOf(state_machine_arn));
  ASSIGN_OR_RETURN(auto record, Read<StateMachineRecord>(
                                    families_.state_machines,
                                    keys::ResourceKey(shard, state_machine_arn)));
  if (!record.has_value()) return std::shared_ptr<const StateMachineRecord>();
  auto shared = std::make_shared<const StateMachineRecord>(std::move(*record));
  absl::MutexLock cache_lock(&machine_cache_mu_);
  machine_cache_.insert_or_assign(state_machine_arn, shared);
  return shared;
}

bool ShardCore::StateMachineCached(const std::string& state_machine_arn) {
  absl::MutexLock cache_lock(&machine_cache_mu_);
  return machine_cache_.contains(state_machine_arn);
}

void ShardCore::ForgetStateMachine(const std::string& state_machine_arn) {
  absl::MutexLock cache_lock(&machine_cache_mu_);
  machine_cache_.erase(state_machine_arn);
}

absl::StatusOr<internal::v1::ResolvedStateMachine> ShardCore::ResolveStateMachine(
    const internal::v1::ResolveStateMachineRequest& request) {
  ASSIGN_OR_RETURN(ResolvedStart start, ResolveStart(request));
  internal::v1::ResolvedStateMachine resolved;
  *resolved.mutable_state_machine() = *start.machine;
  resolved.set_version_arn(std::move(start.version_arn));
  resolved.set_alias_arn(std::move(start.alias_arn));
  return resolved;
}

absl::StatusOr<ShardCore::ResolvedStart> ShardCore::ResolveStart(
    const internal::v1::ResolveStateMachineRequest& request) {
  ASSIGN_OR_RETURN(config::StateMachineRef ref,
                   config::ParseStateMachineRef(options_.arn_scope, request.arn()));
  ASSIGN_OR_RETURN(uint32_t shard, OwnedShard(ref.state_machine_arn));
  ResolvedStart resolved;
  ASSIGN_OR_RETURN(std::shared_ptr<const StateMachineRecord> machine,
                   CachedStateMachine(shard, ref.state_machine_arn));
  if (machine == nullptr) return StateMachineDoesNotExist(ref.state_machine_arn);
  if (!ref.qualified()) {
    resolved.machine = std::move(machine);
    return resolved;
  }
  int64_t version_number = ref.version;
  if (!ref.alias.empty()) {
    ASSIGN_OR_RETURN(auto alias, Read<internal::v1::StateMachineAliasRecord>(
                                     families_.versions,
                                     keys::AliasKey(shard, ref.state_machine_arn, ref.alias)));
    if (!alias.has_value()) return ResourceNotFound(request.arn());
    // Weighted choice, stable for a routing key: retries of a named start
    // pick the same version.
    const int bucket = static_cast<int>(config::StableHash(request.routing_key()) % 100);
    int cumulative = 0;
    std::string chosen;
    for (const auto& item : alias->routing_configuration()) {
      if (item.weight() == 0) continue;
      chosen = item.state_machine_version_arn();
      cumulative += item.weight();
      if (bucket < cumulative) break;
    }
    ASSIGN_OR_RETURN(config::StateMachineRef version_ref,
                     config::ParseStateMachineRef(options_.arn_scope, chosen));
    version_number = version_ref.version;
    resolved.alias_arn = alias->alias_arn();
  }
  ASSIGN_OR_RETURN(auto version,
                   Read<internal::v1::StateMachineVersionRecord>(
                       families_.versions,
                       keys::VersionKey(shard, ref.state_machine_arn, version_number)));
  if (!version.has_value()) {
    return StateMachineDoesNotExist(
        config::StateMachineVersionArn(ref.state_machine_arn, version_number));
  }
  resolved.machine =
      std::make_shared<const StateMachineRecord>(std::move(*version->mutable_state_machine()));
  resolved.version_arn = version->version_arn();
  return resolved;
}

absl::Status ShardCore::CreateActivity(const v1::CreateActivityRequest& request,
                                       v1::CreateActivityResponse* response) {
  const std::string arn = config::ActivityArn(options_.arn_scope, request.name());
  ASSIGN_OR_RETURN(uint32_t shard, OwnedShard(arn));
  const std::string key = keys::ResourceKey(shard, arn);
  ShardLockGuard lock(&LockOf(arn));
  ASSIGN_OR_RETURN(auto existing, Read<ActivityRecord>(families_.activities, key));
  if (existing.has_value()) {
    // CreateActivity is idempotent on AWS.
    response->set_activity_arn(arn);
    *response->mutable_creation_date() = existing->creation_date();
    return absl::OkStatus();
  }
  ActivityRecord record;
  record.set_activity_arn(arn);
  record.set_name(request.name());
  *record.mutable_creation_date() = ToProto(options_.clock->Now());
  storage::WriteBatch batch;
  batch.Put(families_.activities, key, record.SerializeAsString());
  RETURN_IF_ERROR(store_->Write(batch, /*sync=*/true));
  log::Info(kComponent, "activity created", {{"arn", arn}});
  response->set_activity_arn(arn);
  *response->mutable_creation_date() = record.creation_date();
  return absl::OkStatus();
}

absl::Status ShardCore::DescribeActivity(const v1::DescribeActivityRequest& request,
                                         v1::DescribeActivityResponse* response) {
  ASSIGN_OR_RETURN(uint32_t shard, OwnedShard(request.activity_arn()));
  ASSIGN_OR_RETURN(auto record, Read<ActivityRecord>(
                                    families_.activities,
                                    keys::ResourceKey(shard, request.activity_arn())));
  if (!record.has_value()) return ActivityDoesNotExist(request.activity_arn());
  response->set_activity_arn(record->activity_arn());
  response->set_name(record->name());
  *response->mutable_creation_date() = record->creation_date();
  return absl::OkStatus();
}

absl::Status ShardCore::DeleteActivity(const v1::DeleteActivityRequest& request) {
  ASSIGN_OR_RETURN(uint32_t shard, OwnedShard(request.activity_arn()));
  ShardLockGuard lock(&LockOf(request.activity_arn()));
  storage::WriteBatch batch;
  batch.Delete(families_.activities, keys::ResourceKey(shard, request.activity_arn()));
  RETURN_IF_ERROR(store_->Write(batch, /*sync=*/true));
  return absl::OkStatus();
}

absl::Status ShardCore::ListActivities(const internal::v1::ListShardRequest& request,
                                       internal::v1::ListActivitiesShardResponse* response) {
  std::vector<ActivityRecord> records;
  RETURN_IF_ERROR(store_->Scan(families_.activities, "", "", false,
                               [&](std::string_view, std::string_view value) {
                                 ActivityRecord record;
                                 if (record.ParseFromArray(value.data(), static_cast<int>(value.size())) &&
                                     record.name() > request.after_key()) {
                                   records.push_back(std::move(record));
                                 }
                                 return true;
                               }));
  std::sort(records.begin(), records.end(),
            [](const auto& a, const auto& b) { return a.name() < b.name(); });
  const size_t limit = request.limit() > 0 ? static_cast<size_t>(request.limit()) : records.size();
  for (size_t i = 0; i < records.size() && i < limit; ++i) {
    *response->add_activities() = std::move(records[i]);
  }
  return absl::OkStatus();
}

// --- Executions -----------------------------------------------------------

absl::StatusOr<std::shared_ptr<const asl::Definition>> ShardCore::LoadDefinition(
    const std::string& state_machine_arn, const std::string& revision_id) {
  const std::string key = keys::DefinitionKey(state_machine_arn, revision_id);
  {
    absl::MutexLock lock(&definitions_mu_);
    auto it = definitions_.find(key);
    if (it != definitions_.end()) return it->second;
  }
  ASSIGN_OR_RETURN(auto text, store_->Get(families_.definitions, key));
  if (!text.has_value()) {
    return absl::DataLossError(absl::StrCat("definition revision ", revision_id, " of ",
                                            state_machine_arn, " is missing"));
  }
  ASSIGN_OR_RETURN(auto definition, asl::Definition::Parse(*text));
  absl::MutexLock lock(&definitions_mu_);
  definitions_.emplace(key, definition);
  return definition;
}

namespace {

// `activity_exists` answers ExecutionContext::activity_exists; each answer
// is kept for the transition, so a Map scheduling many tasks of one
// activity asks once.
asl::ExecutionContext MakeContext(const ExecutionRecord& record, const StateMachineRecord* machine,
                                  const tasktoken::TaskTokenCodec& codec,
                                  std::function<bool(const std::string&)> activity_exists) {
  asl::ExecutionContext context;
  context.activity_exists = [activity_exists = std::move(activity_exists),
                             answers = std::make_shared<std::map<std::string, bool, std::less<>>>()](
                                absl::string_view activity_arn) {
    auto it = answers->find(activity_arn);
    if (it == answers->end()) {
      const std::string arn(activity_arn);
      it = answers->emplace(arn, activity_exists(arn)).first;
    }
    return it->second;
  };
  context.execution_arn = record.execution_arn();
  context.execution_name = record.name();
  context.execution_input = record.input();
  context.state_machine_arn = record.state_machine_arn();
  auto slash = record.state_machine_arn().rfind(':');
  context.state_machine_name = record.state_machine_arn().substr(slash + 1);
  if (machine != nullptr) context.role_arn = machine->role_arn();
  context.start_time = FromProto(record.start_date());
  context.redrive_count = record.redrive_count();
  // AWS ends Express executions after 5 minutes (States.Timeout).
  if (record.state_machine_type() == "EXPRESS") {
    context.max_duration = absl::Minutes(5);
    context.has_redrive_count = false;
  }
  std::string execution_arn = record.execution_arn();
  context.mint_task_token = [&codec, execution_arn](int64_t scheduled_event_id) {
    internal::v1::TaskTokenContent content;
    content.set_execution_arn(execution_arn);
    content.set_scheduled_event_id(scheduled_event_id);
    return codec.Encode(content);
  };
  // Map run ids and child execution names carry the execution's routing
  // hash, so their ARNs alone find this shard (part 0 is a label).
  context.mint_id = [execution_arn](int64_t event_id, int64_t part) {
    return MintMapRunId(execution_arn, event_id, part);
  };
  return context;
}

// Whether a logging level logs events of `type`: ALL every event, ERROR
// the failures and aborts, FATAL those of the execution (AWS's levels).
bool LoggedAt(absl::string_view level, absl::string_view type) {
  static const auto* const kFatal = new std::set<std::string, std::less<>>{
      "ExecutionAborted", "ExecutionFailed", "ExecutionTimedOut"};
  static const auto* const kError = new std::set<std::string, std::less<>>{
      "ExecutionAborted", "ExecutionFailed", "ExecutionTimedOut", "FailStateEntered",
      "LambdaFunctionFailed", "LambdaFunctionScheduleFailed", "LambdaFunctionStartFailed",
      "LambdaFunctionTimedOut", "MapStateAborted", "MapStateFailed", "MapIterationAborted",
      "MapIterationFailed", "MapRunAborted", "MapRunFailed", "ParallelStateAborted",
      "ParallelStateFailed", "TaskFailed", "TaskStartFailed", "TaskStateAborted",
      "TaskSubmitFailed", "TaskTimedOut", "WaitStateAborted", "ActivityFailed",
      "ActivityScheduleFailed", "ActivityTimedOut"};
  if (level == "ALL") return true;
  if (level == "ERROR") return kError->count(type) > 0;
  if (level == "FATAL") return kFatal->count(type) > 0;
  return false;
}

// One history event as a log record, in the shape AWS writes to CloudWatch
// Logs (ids and the timestamp as strings), with the state machine and log
// group added so readers can filter. Without execution data, the event's
// input, output and parameters are left out.
std::string ExecutionLogRecord(const ExecutionRecord& record, const v1::HistoryEvent& event,
                               const v1::LoggingConfiguration& logging) {
  json::Document log;
  log.SetObject();
  auto& a = log.GetAllocator();
  auto text = [&a](absl::string_view s) {
    return json::Value(s.data(), static_cast<rapidjson::SizeType>(s.size()), a);
  };
  log.AddMember("id", text(absl::StrCat(event.id())), a);
  log.AddMember("type", text(event.type()), a);
  json::Value details(rapidjson::kObjectType);
  std::string event_json;
  google::protobuf::util::JsonPrintOptions options;
  if (google::protobuf::util::MessageToJsonString(event, &event_json, options).ok()) {
    auto parsed = json::Parse(event_json);
    if (parsed.ok() && parsed->IsObject()) {
      for (auto& member : parsed->GetObject()) {
        const absl::string_view name(member.name.GetString(), member.name.GetStringLength());
        if (!absl::EndsWith(name, "EventDetails") || !member.value.IsObject()) continue;
        details = json::Copy(member.value, a);
      }
    }
  }
  if (!logging.include_execution_data()) {
    for (const char* field : {"input", "output", "parameters"}) details.RemoveMember(field);
  }
  log.AddMember("details", details, a);
  log.AddMember("previous_event_id", text(absl::StrCat(event.previous_event_id())), a);
  log.AddMember("event_timestamp",
                text(absl::StrCat(event.timestamp().seconds() * 1000 +
                                  event.timestamp().nanos() / 1000000)),
                a);
  log.AddMember("execution_arn", text(record.execution_arn()), a);
  log.AddMember("redrive_count", text(absl::StrCat(record.redrive_count())), a);
  log.AddMember("state_machine_arn", text(record.state_machine_arn()), a);
  if (!logging.destinations().empty()) {
    log.AddMember("log_group_arn",
                  text(logging.destinations(0).cloud_watch_logs_log_group().log_group_arn()), a);
  }
  return json::Serialize(log);
}

// A child execution's start, from a startExecution task's parameters
// (StateMachineArn, Input, Name, TraceHeader), as AWS reads them.
struct ChildStart {
  v1::StartExecutionRequest request;
  std::string state_machine_arn;  // unqualified: where it is resolved
  std::string execution_arn;
};

// An id in UUID form derived from `seed`: the same for the same seed, so a
// call the outbox makes again names the same child.
std::string DerivedUuid(absl::string_view seed) {
  const uint64_t hi = config::StableHash(absl::StrCat("hi:", seed));
  const uint64_t lo = config::StableHash(absl::StrCat("lo:", seed));
  char out[37];
  std::snprintf(out, sizeof(out), "%08x-%04x-4%03x-%04x-%012llx",
                static_cast<unsigned>(hi >> 32), static_cast<unsigned>((hi >> 16) & 0xffff),
                static_cast<unsigned>(hi & 0xfff),
                static_cast<unsigned>(0x8000 | ((lo >> 48) & 0x3fff)),
                static_cast<unsigned long long>(lo & 0xffffffffffffull));
  return out;
}

absl::StatusOr<ChildStart> ChildStartOf(const config::ArnScope& scope,
                                        absl::string_view parameters,
                                        absl::string_view task_token) {
  auto invalid = [](absl::string_view message) {
    return absl::InvalidArgumentError(absl::StrCat("ValidationException: ", message));
  };
  ASSIGN_OR_RETURN(json::Document doc, json::Parse(parameters));
  if (!doc.IsObject()) return invalid("The parameters must be a JSON object");
  auto member = [&doc](const char* name) -> const json::Value* {
    auto it = doc.FindMember(name);
    return it == doc.MemberEnd() ? nullptr : &it->value;
  };
  const json::Value* arn = member("StateMachineArn");
  if (arn == nullptr || !arn->IsString()) {
    return invalid("1 validation error detected: Value null at 'stateMachineArn' failed to "
                   "satisfy constraint: Member must not be null");
  }
  ChildStart start;
  ASSIGN_OR_RETURN(config::StateMachineRef ref,
                   config::ParseStateMachineRef(scope, arn->GetString()));
  start.state_machine_arn = ref.state_machine_arn;
  start.request.set_state_machine_arn(arn->GetString());
  const json::Value* name = member("Name");
  if (name != nullptr && !name->IsNull()) {
    if (!name->IsString()) return invalid("Name must be a string");
    start.request.set_name(name->GetString());
  } else {
    start.request.set_name(DerivedUuid(task_token));
  }
  RETURN_IF_ERROR(config::ValidateResourceName(start.request.name()));
  const json::Value* input = member("Input");
  if (input == nullptr || input->IsNull()) {
    start.request.set_input("{}");
  } else if (input->IsString()) {
    // A string is the input's JSON text, as the API takes it.
    if (!json::Parse(input->GetString()).ok()) {
      return absl::InvalidArgumentError(
          "InvalidExecutionInput: Invalid State Machine Execution Input: 'Input is not valid "
          "JSON'");
    }
    start.request.set_input(input->GetString());
  } else {
    start.request.set_input(json::Serialize(*input));
  }
  if (start.request.input().size() > 256 * 1024) {
    return absl::InvalidArgumentError(
        "InvalidExecutionInput: Invalid State Machine Execution Input: 'Input exceeds the "
        "maximum size of 262144 bytes'");
  }
  if (const json::Value* trace = member("TraceHeader"); trace != nullptr && trace->IsString()) {
    start.request.set_trace_header(trace->GetString());
  }
  start.execution_arn = config::ExecutionArn(scope, ref.name, start.request.name());
  return start;
}

// Whether the outbox should make a failed call again: the callee may
// answer later. Anything else is the call's answer.
bool Transient(const absl::Status& status) {
  return absl::IsUnavailable(status) || absl::IsDeadlineExceeded(status) ||
         absl::IsResourceExhausted(status) || absl::IsAborted(status) ||
         absl::IsInternal(status) || absl::IsUnknown(status) || absl::IsCancelled(status);
}

// A failed Step Functions API call as a task error, in AWS's words:
// StepFunctions.StateMachineDoesNotExistException, with the message and
// the service's details as the cause.
internal::v1::ServiceTaskResult StepFunctionsFailure(const absl::Status& status,
                                                     absl::string_view request_id) {
  absl::string_view message = status.message();
  std::string code = "InvalidParameterValue";
  if (size_t colon = message.find(": "); colon != absl::string_view::npos &&
                                          message.substr(0, colon).find(' ') ==
                                              absl::string_view::npos) {
    code = std::string(message.substr(0, colon));
    message.remove_prefix(colon + 2);
  }
  internal::v1::ServiceTaskResult result;
  result.set_kind(internal::v1::ServiceTaskResult::FAILED);
  result.set_error(absl::StrCat("StepFunctions.", code,
                                absl::EndsWith(code, "Exception") ? "" : "Exception"));
  result.set_cause(absl::StrCat(message, " (Service: AWSStepFunctions; Status Code: 400; Error Code: ",
                                code, "; Request ID: ", request_id, "; Proxy: null)"));
  return result;
}

int64_t EpochMillis(const google::protobuf::Timestamp& ts) {
  return ts.seconds() * 1000 + ts.nanos() / 1000000;
}

// What a closed child execution reports to the parent task that started it
// with .sync (Input and Output as JSON text) or .sync:2 (as JSON): AWS's
// DescribeExecution fields; the task fails with States.TaskFailed and these
// fields as the cause unless the child succeeded.
internal::v1::ServiceTaskResult ChildReport(const ExecutionRecord& record) {
  const bool as_json = record.parent_task().report() == "sync:2";
  json::Document doc;
  doc.SetObject();
  auto& a = doc.GetAllocator();
  auto add_string = [&](const char* key, const std::string& value) {
    doc.AddMember(json::Value(key, a), json::Value(value.c_str(),
                                                   static_cast<rapidjson::SizeType>(value.size()), a),
                  a);
  };
  auto add_data = [&](const char* key, const std::string& text) {
    json::Value value;
    auto parsed = json::Parse(text);
    if (as_json && parsed.ok()) {
      value = json::Copy(*parsed, a);
    } else {
      value.SetString(text.c_str(), static_cast<rapidjson::SizeType>(text.size()), a);
    }
    doc.AddMember(json::Value(key, a), value, a);
  };
  auto add_included = [&](const char* key) {
    json::Value details(rapidjson::kObjectType);
    details.AddMember("Included", true, a);
    doc.AddMember(json::Value(key, a), details, a);
  };
  const bool succeeded = record.status() == "SUCCEEDED";
  if (!succeeded) {
    if (!record.cause().empty()) add_string("Cause", record.cause());
    if (!record.error().empty()) add_string("Error", record.error());
  }
  add_string("ExecutionArn", record.execution_arn());
  add_data("Input", record.input());
  add_included("InputDetails");
  add_string("Name", record.name());
  if (succeeded) {
    add_data("Output", record.output());
    add_included("OutputDetails");
  }
  doc.AddMember("StartDate", EpochMillis(record.start_date()), a);
  add_string("StateMachineArn", record.state_machine_arn());
  add_string("Status", record.status());
  doc.AddMember("StopDate", EpochMillis(record.stop_date()), a);
  internal::v1::ServiceTaskResult result;
  result.set_task_token(record.parent_task().task_token());
  result.set_from_child(true);
  if (succeeded) {
    result.set_kind(internal::v1::ServiceTaskResult::SUCCEEDED);
    result.set_output(json::Serialize(doc));
  } else {
    result.set_kind(internal::v1::ServiceTaskResult::FAILED);
    result.set_error("States.TaskFailed");
    result.set_cause(json::Serialize(doc));
  }
  return result;
}

}  // namespace

namespace {

uint64_t NameHash(const std::string& execution_arn) {
  return absl::Hash<std::string>{}(execution_arn);
}

}  // namespace

void ShardCore::KeepRecentExpress(ExecutionRecord record, bool keep_name) {
  if (options_.recent_express_bytes == 0) return;
  record.clear_state();
  record.clear_state_machine();
  const absl::Time closed = FromProto(record.stop_date());
  const int64_t closed_ns = absl::ToUnixNanos(closed);
  const size_t size = record.ByteSizeLong();
  std::unique_ptr<char[]> serialized(new char[size]);  // not zeroed: written at once
  record.SerializeWithCachedSizesToArray(reinterpret_cast<uint8_t*>(serialized.get()));
  const size_t bytes = size + sizeof(RecentExpressRecordEntry) + 2 * sizeof(RecentExpress);
  const uint64_t name_hash = NameHash(record.execution_arn());
  absl::MutexLock lock(&recent_express_mu_);
  const uint64_t seq = ++recent_express_seq_;
  // A name used again replaces the older entry (whose order entries are
  // then stale and skipped when they come first).
  RecentExpress& entry = recent_express_[name_hash];
  entry.closed_ns = closed_ns;
  entry.seq = seq;
  entry.record = std::move(serialized);
  entry.record_size = static_cast<uint32_t>(size);
  entry.name_kept = keep_name;
  if (keep_name) recent_express_names_.emplace_back(name_hash, closed_ns);
  recent_express_records_.push_back({name_hash, seq, closed, bytes});
  recent_express_bytes_ += bytes;
  EvictRecentExpress(closed);
}

void ShardCore::EvictRecentExpress(absl::Time now) {
  const int64_t expired_ns = absl::ToUnixNanos(now - options_.express_execution_retention);
  while (!recent_express_names_.empty()) {
    const auto [hash, closed_ns] = recent_express_names_.front();
    if (recent_express_names_.size() <= kRecentExpressNames && closed_ns > expired_ns) break;
    auto found = recent_express_.find(hash);
    if (found != recent_express_.end() && found->second.closed_ns == closed_ns) {
      recent_express_.erase(found);
    }
    recent_express_names_.pop_front();
  }
  while (!recent_express_records_.empty()) {
    const RecentExpressRecordEntry& oldest = recent_express_records_.front();
    if (recent_express_bytes_ <= options_.recent_express_bytes &&
        oldest.closed + options_.express_execution_retention > now) {
      return;
    }
    auto found = recent_express_.find(oldest.name_hash);
    if (found != recent_express_.end() && found->second.seq == oldest.seq) {
      if (found->second.name_kept) {
        found->second.record.reset();
        found->second.record_size = 0;
      } else {
        recent_express_.erase(found);
      }
    }
    recent_express_bytes_ -= oldest.bytes;
    recent_express_records_.pop_front();
  }
}

bool ShardCore::RecentExpressNameTaken(const std::string& arn) {
  const uint64_t name_hash = NameHash(arn);
  absl::MutexLock lock(&recent_express_mu_);
  auto found = recent_express_.find(name_hash);
  return found != recent_express_.end() &&
         found->second.closed_ns >
             absl::ToUnixNanos(options_.clock->Now() - options_.express_execution_retention);
}

std::optional<ExecutionRecord> ShardCore::RecentExpressRecord(const std::string& arn) {
  const uint64_t name_hash = NameHash(arn);
  absl::MutexLock lock(&recent_express_mu_);
  auto found = recent_express_.find(name_hash);
  if (found == recent_express_.end() || found->second.record == nullptr) return std::nullopt;
  if (found->second.closed_ns <=
      absl::ToUnixNanos(options_.clock->Now() - options_.express_execution_retention)) {
    return std::nullopt;
  }
  ExecutionRecord record;
  if (!record.ParseFromArray(found->second.record.get(),
                             static_cast<int>(found->second.record_size)) ||
      record.execution_arn() != arn) {
    return std::nullopt;  // another name of the same hash
  }
  return record;
}

void ShardCore::CountTransition(size_t batch_bytes, size_t batch_ops) {
  transitions_.fetch_add(1, std::memory_order_relaxed);
  if (metrics_.transitions == nullptr) return;
  metrics_.transitions->Increment();
  if (batch_ops == 0) return;  // nothing written
  metrics_.batch_bytes->Observe(static_cast<double>(batch_bytes));
  metrics_.batch_ops->Observe(static_cast<double>(batch_ops));
  metrics_.wal_syncs->Set(static_cast<double>(store_->WalSyncs()));
  metrics_.synced_writes->Set(static_cast<double>(SyncedBatches()));
}

bool ShardCore::NeedsOutbox(const ExecutionRecord& record, const StateMachineRecord& machine,
                            const asl::Outcome& outcome) const {
  if (!outcome.dispatches.empty() || !outcome.cancelled_tasks.empty() || !outcome.timers.empty() ||
      !outcome.service_calls.empty() || !record.children().empty() ||
      !record.parent_task().report().empty() || !record.state().map_runs().empty()) {
    return true;
  }
  if (!options_.status_events_topic.empty() && record.state_machine_type() != "EXPRESS") {
    return true;
  }
  const v1::LoggingConfiguration& logging = machine.logging_configuration();
  if (options_.execution_logs_topic.empty() || logging.level().empty() ||
      logging.level() == "OFF") {
    return false;
  }
  for (const v1::HistoryEvent& event : outcome.events) {
    if (LoggedAt(logging.level(), event.type())) return true;
  }
  return false;
}

absl::Status ShardCore::CommitTransition(uint32_t shard, ExecutionRecord& record,
                                         asl::Outcome& outcome, storage::WriteBatch& batch,
                                         const PendingTasks* before, bool sync,
                                         bool start_record) {
  // EXPRESS: no fsync of its own (a later synced write, or the OS, makes it
  // durable), as AWS runs them in memory; the WAL keeps the order, so a
  // crash loses a suffix of transitions, never one in the middle.
  if (record.state_machine_type() == "EXPRESS" && !start_record) sync = false;
  CommitEffects effects = PrepareCommit(shard, record, outcome, batch, before);
  // Synced, by the group committer: the transitions of other shards that
  // reach it meanwhile share this write and its fsync. Nothing the
  // transition implies (outbox delivery, timers, the RPC answer) happens
  // before it. Unsynced only for a delivery from this server's own outbox
  // (see EnqueueActivityTask): its item stays until a later write in the
  // same WAL, and a replay after a crash repeats the same transition, with
  // the same event and task ids, which every receiver takes idempotently.
  absl::Status written = sync ? WriteSynced(std::move(batch)) : store_->Write(batch, /*sync=*/false);
  PublishWriteEnded(effects);
  RETURN_IF_ERROR(written);
  AfterCommit(effects, record);
  return absl::OkStatus();
}

uint64_t ShardCore::SyncedBatches() const {
  // The committer writes many batches with one synced write. Its groups
  // are read before its batches, which never count fewer.
  const uint64_t groups = committer_->groups();
  const uint64_t merged_away = committer_->batches() - groups;
  return store_->SyncedWrites() + merged_away;
}

absl::Status ShardCore::WriteSynced(storage::WriteBatch batch) {
  absl::Notification written;
  absl::Status status;
  committer_->Submit(std::move(batch), [&](absl::Status result) {
    status = std::move(result);
    written.Notify();
  });
  written.WaitForNotification();
  return status;
}

ShardCore::CommitEffects ShardCore::PrepareCommit(uint32_t shard, ExecutionRecord& record,
                                                  asl::Outcome& outcome,
                                                  storage::WriteBatch& batch,
                                                  const PendingTasks* before) {
  const absl::Time now = options_.clock->Now();
  const bool express = record.state_machine_type() == "EXPRESS";
  CommitEffects effects;
  bool cancels = false;
  if (before != nullptr) {
    for (int64_t scheduled_event_id : outcome.cancelled_tasks) {
      auto pending = before->find(scheduled_event_id);
      if (pending == before->end()) continue;
      internal::v1::OutboxItem item;
      ActivityTask* task = item.mutable_cancel_activity_task();
      task->set_activity_arn(pending->second);
      task->set_task_id(absl::StrCat(record.execution_arn(), "#", scheduled_event_id));
      PutOutboxItem(batch, keys::OutboxKey(next_outbox_seq_++), item);
      cancels = true;
    }
  }
  // EXPRESS executions keep no history, as on AWS: their events go to the
  // execution-log topic when their state machine logs them.
  // One key per run of consecutive ids (normally the whole transition).
  if (!express && !outcome.events.empty()) {
    std::string chunk;
    int64_t first_id = 0;
    auto put_chunk = [&] {
      if (chunk.empty()) return;
      batch.Put(families_.history, keys::HistoryKey(shard, record.execution_arn(), first_id),
                chunk);
      chunk.clear();
    };
    // Runs of consecutive ids, a chunk each.
    asl::EventList& events = outcome.events;
    for (size_t begin = 0; begin < events.size();) {
      size_t end = begin + 1;
      while (end < events.size() && events[end].id() == events[end - 1].id() + 1) ++end;
      first_id = events[begin].id();
      SerializeHistoryChunk(events, begin, end, &chunk);
      put_chunk();
      begin = end;
    }
  }
  if (!outcome.closed_status.empty()) {
    record.set_status(outcome.closed_status);
    record.set_output(outcome.output);
    record.set_error(outcome.error);
    record.set_cause(outcome.cause);
    *record.mutable_stop_date() = ToProto(now);
    effects.left_store = LeavesStoreWhenClosed(record);
    if (!effects.left_store) {
      batch.Put(families_.retention,
                keys::RetentionKey(now + RetentionOf(record), record.execution_arn()), "");
    }
  }
  // AWS sends status-change events for STANDARD executions only.
  if (!options_.status_events_topic.empty() && !express) {
    bool status_changed = !outcome.closed_status.empty();
    for (const v1::HistoryEvent& event : outcome.events) {
      status_changed = status_changed || event.type() == "ExecutionStarted" ||
                       event.type() == "ExecutionRedriven";
    }
    if (status_changed) {
      eventbus::ExecutionStatus status;
      status.execution_arn = record.execution_arn();
      status.state_machine_arn = record.state_machine_arn();
      status.name = record.name();
      status.status = record.status();
      status.start_date = FromProto(record.start_date());
      if (record.has_stop_date()) status.stop_date = FromProto(record.stop_date());
      status.input = record.input();
      status.output = record.output();
      status.error = record.error();
      status.cause = record.cause();
      status.redrive_count = record.redrive_count();
      internal::v1::OutboxItem item;
      internal::v1::PublishEvent* publish = item.mutable_publish_event();
      publish->set_topic(options_.status_events_topic);
      publish->set_key(record.execution_arn());
      publish->set_value(eventbus::ExecutionStatusChangeEvent(options_.arn_scope, status, now));
      PutOutboxItem(batch, keys::OutboxKey(NextPublishSeq(effects)), item);
    }
  }
  const v1::LoggingConfiguration& logging = record.state_machine().logging_configuration();
  if (!options_.execution_logs_topic.empty() && !logging.level().empty() &&
      logging.level() != "OFF") {
    for (const v1::HistoryEvent& event : outcome.events) {
      if (!LoggedAt(logging.level(), event.type())) continue;
      internal::v1::OutboxItem item;
      internal::v1::PublishEvent* publish = item.mutable_publish_event();
      publish->set_topic(options_.execution_logs_topic);
      publish->set_key(record.execution_arn());
      publish->set_value(ExecutionLogRecord(record, event, logging));
      PutOutboxItem(batch, keys::OutboxKey(NextPublishSeq(effects)), item);
    }
  }
  const bool service_effects = !outcome.service_calls.empty() || !record.children().empty() ||
                               (!outcome.closed_status.empty() &&
                                !record.parent_task().report().empty());
  if (service_effects) AddServiceEffects(record, outcome, batch);
  IndexMapRuns(shard, record, batch);
  const absl::Time earliest = StoreTimers(record, outcome, batch);
  effects.record_key = keys::ResourceKey(shard, record.execution_arn());
  if (effects.left_store) {
    batch.Delete(families_.executions, effects.record_key);
    for (const std::string& visibility_key : VisibilityKeys(record)) {
      batch.Delete(families_.visibility, visibility_key);
    }
  } else {
    effects.record_value = record.SerializeAsString();
    batch.Put(families_.executions, effects.record_key, effects.record_value);
  }
  // Tasks of partitions this server owns go into the transition's own
  // batch and reach their queue once it is written; others leave through
  // the outbox.
  std::vector<TaskQueues::Queued>& local_tasks = effects.local_tasks;
  bool outboxed_dispatches = false;
  for (asl::ActivityDispatch& dispatch : outcome.dispatches) {
    internal::v1::OutboxItem item;
    ActivityTask* task = item.mutable_enqueue_activity_task();
    task->set_activity_arn(dispatch.activity_arn);
    task->set_task_token(dispatch.task_token);
    task->set_input(std::move(dispatch.input));
    *task->mutable_scheduled_date() = ToProto(now);
    task->set_task_id(absl::StrCat(record.execution_arn(), "#", dispatch.scheduled_event_id));
    task->set_partition(static_cast<int32_t>(
        config::ShardOf(task->task_id(), static_cast<uint32_t>(options_.task_queue_partitions))));
    task->set_in_memory(express);
    if (QueueLocally(*task, batch, &local_tasks)) continue;
    PutOutboxItem(batch, keys::OutboxKey(next_outbox_seq_++), item);
    outboxed_dispatches = true;
  }
  effects.batch_bytes = batch.ByteSize();
  effects.batch_ops = batch.Count();
  effects.wake_outbox = outboxed_dispatches || cancels || service_effects;
  // At once: a rule may start a workflow when another one ends.
  effects.wake_events = effects.first_publish_seq != 0;
  effects.earliest_timer = earliest;
  effects.closed = !outcome.closed_status.empty();
  return effects;
}

namespace {

// The timers a state waits for: the ids asl::Interpreter::TimerFired acts
// on (any other fires for nothing).
absl::flat_hash_set<int64_t> ArmedTimers(const internal::v1::ExecutionState& state) {
  absl::flat_hash_set<int64_t> armed;
  auto add = [&armed](int64_t id) {
    if (id != 0) armed.insert(id);
  };
  add(state.execution_timeout_timer());
  for (const auto& [id, frame] : state.frames()) {
    add(frame.timer_id());
    add(frame.task_timeout_timer());
    add(frame.heartbeat_timer());
    if (frame.has_child_execution()) add(frame.child_execution().timeout_timer());
  }
  return armed;
}

}  // namespace

absl::Time ShardCore::StoreTimers(ExecutionRecord& record, const asl::Outcome& outcome,
                                  storage::WriteBatch& batch) {
  auto& fire_ms = *record.mutable_state()->mutable_timer_fire_ms();
  absl::Time earliest = absl::InfiniteFuture();
  for (const asl::TimerRequest& timer : outcome.timers) {
    batch.Put(families_.timers, keys::TimerKey(timer.fire_at, record.execution_arn(), timer.timer_id),
              "");
    fire_ms[timer.timer_id] = absl::ToUnixMillis(timer.fire_at);
    earliest = std::min(earliest, timer.fire_at);
  }
  if (fire_ms.empty()) return earliest;
  // A closed execution waits for nothing (a redrive arms timers anew).
  const absl::flat_hash_set<int64_t> armed =
      outcome.closed_status.empty() ? ArmedTimers(record.state()) : absl::flat_hash_set<int64_t>();
  for (auto it = fire_ms.begin(); it != fire_ms.end();) {
    if (armed.contains(it->first)) {
      ++it;
      continue;
    }
    batch.Delete(families_.timers, keys::TimerKey(absl::FromUnixMillis(it->second),
                                                  record.execution_arn(), it->first));
    it = fire_ms.erase(it);
  }
  return earliest;
}

void ShardCore::AfterCommit(CommitEffects& effects, ExecutionRecord& record) {
  // First: the tasks handed over below may be answered at once.
  KeepRunningRecord(std::move(effects.record_key), std::move(effects.record_value),
                    record.status() == "RUNNING");
  CountTransition(effects.batch_bytes, effects.batch_ops);
  for (TaskQueues::Queued& queued : effects.local_tasks) HandOrQueue(std::move(queued));
  effects.local_tasks.clear();
  if (effects.wake_outbox) WakeOutbox();
  if (effects.wake_events) WakeLane(events_outbox_);
  if (effects.earliest_timer != absl::InfiniteFuture()) WakeTimers(effects.earliest_timer);
  if (effects.closed) {
    // EXPRESS executions come by the thousand per second: theirs is a
    // debug line.
    log::Write(record.state_machine_type() == "EXPRESS" ? log::Level::kDebug : log::Level::kInfo,
               kComponent, "execution closed",
               {{"execution", record.execution_arn()}, {"status", record.status()}});
    CountClosed(record, record.status());
    if (!effects.left_store) return NotifyClosed(record.execution_arn(), nullptr);
    // Kept before its waiters wake: they may describe it. Neither the
    // memory nor a waiter needs its state or state machine: set aside, not
    // copied.
    internal::v1::ExecutionState state;
    state.Swap(record.mutable_state());
    StateMachineRecord machine;
    machine.Swap(record.mutable_state_machine());
    KeepRecentExpress(record, /*keep_name=*/!record.name_generated());
    NotifyClosed(record.execution_arn(), &record);
    record.mutable_state()->Swap(&state);
    record.mutable_state_machine()->Swap(&machine);
  }
}

void ShardCore::KeepRunningRecord(std::string key, std::string value, bool running) {
  if (key.empty()) return;
  absl::MutexLock lock(&running_records_mu_);
  auto it = running_records_.find(key);
  if (it != running_records_.end()) {
    running_record_bytes_ -= it->first.size() + it->second.size();
    if (!running) {
      running_records_.erase(it);
      return;
    }
    running_record_bytes_ += it->first.size() + value.size();
    it->second = std::move(value);
    return;
  }
  if (!running) return;
  if (running_record_bytes_ + key.size() + value.size() > kRunningRecordBytes) {
    // Crude but bounded: the store has every record.
    running_records_.clear();
    running_record_bytes_ = 0;
  }
  running_record_bytes_ += key.size() + value.size();
  running_records_.emplace(std::move(key), std::move(value));
}

absl::StatusOr<std::optional<ExecutionRecord>> ShardCore::ReadExecution(const std::string& key) {
  std::string value;
  {
    absl::MutexLock lock(&running_records_mu_);
    auto it = running_records_.find(key);
    if (it == running_records_.end()) return Read<ExecutionRecord>(families_.executions, key);
    value = it->second;
  }
  ExecutionRecord record;
  if (!record.ParseFromString(value)) return absl::DataLossError("corrupt execution record");
  return record;
}

void ShardCore::CommitLater(uint32_t shard, ExecutionRecord record, asl::Outcome& outcome,
                            storage::WriteBatch batch, const PendingTasks* before,
                            std::vector<std::string> claimed, absl::AnyInvocable<void() &&> release,
                            AnswerLater answer, bool sync) {
  CommitEffects effects = PrepareCommit(shard, record, outcome, batch, before);
  AddInflight(1);  // the caller's slot ends with the write, not its return
  committer_->Submit(
      std::move(batch),
      [this, effects = std::move(effects), record = std::move(record),
       claimed = std::move(claimed), release = std::move(release),
       answer = std::move(answer)](absl::Status written) mutable {
        PublishWriteEnded(effects);
        if (written.ok()) AfterCommit(effects, record);
        ReleaseClaims(claimed);
        std::move(release)();
        AddInflight(-1);
        std::move(answer)(std::move(written));
      },
      sync);
}

bool ShardCore::LockUnlessBusy(ShardLock& lock, const bool* would_block) {
  if (would_block == nullptr) {
    lock.Lock();
    return true;
  }
  // It may be held across another transition's fsync.
  return lock.TryLock();
}

bool ShardCore::StartCommitting(const std::string& execution_arn) {
  absl::MutexLock lock(&committing_mu_);
  return committing_.contains(execution_arn);
}

void ShardCore::AwaitStartCommitted(const std::string& execution_arn) {
  struct Wait {
    ShardCore* core;
    const std::string* arn;
    bool Done() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(core->committing_mu_) {
      return !core->committing_.contains(*arn);
    }
  } wait{this, &execution_arn};
  absl::MutexLock lock(&committing_mu_);
  committing_mu_.Await(absl::Condition(&wait, &Wait::Done));
}

absl::Status ShardCore::StartExecution(const internal::v1::StartExecutionShardRequest& request,
                                       v1::StartExecutionResponse* response,
                                       bool* would_block, AnswerLater* answer_later,
                                       const ResolvedStart* resolved) {
  return StartExecutionImpl(request, /*synchronous=*/false, response, /*sync_answer=*/nullptr,
                            would_block, answer_later, resolved);
}

absl::Status ShardCore::StartExecutionImpl(const internal::v1::StartExecutionShardRequest& request,
                                           bool synchronous,
                                           v1::StartExecutionResponse* response,
                                           SyncAnswer* sync_answer, bool* would_block,
                                           AnswerLater* answer_later,
                                           const ResolvedStart* resolved) {
  const StateMachineRecord& machine =
      resolved != nullptr ? *resolved->machine : request.state_machine();
  const std::string& version_arn =
      resolved != nullptr ? resolved->version_arn : request.version_arn();
  const std::string& alias_arn = resolved != nullptr ? resolved->alias_arn : request.alias_arn();
  // Declines (see StartExecution) before anything is done.
  auto decline = [would_block] {
    *would_block = true;
    return absl::OkStatus();
  };
  // Only an EXPRESS start can end within the start, and only a start whose
  // caller takes the answer later can leave its fsync to the committer.
  const bool may_answer_later = answer_later != nullptr && *answer_later && !synchronous;
  if (would_block != nullptr && machine.type() != "EXPRESS" && !may_answer_later) {
    return decline();
  }
  RETURN_IF_ERROR(Admit());
  InflightSlot slot(this);
  const std::string execution_arn = config::ExecutionArn(
      options_.arn_scope, machine.name(), request.request().name());
  ASSIGN_OR_RETURN(uint32_t shard, OwnedShard(execution_arn));
  const std::string key = keys::ResourceKey(shard, execution_arn);
  // Keep this revision's definition beside the execution: an update or
  // delete of the state machine must not change a running execution. A
  // definition in the cache is stored (it enters the cache once read from
  // the store or written with a transition), so most starts neither read
  // nor parse it.
  storage::WriteBatch batch;
  const std::string definition_key =
      keys::DefinitionKey(machine.state_machine_arn(), machine.revision_id());
  std::shared_ptr<const asl::Definition> definition;
  {
    absl::MutexLock cache_lock(&definitions_mu_);
    auto cached = definitions_.find(definition_key);
    if (cached != definitions_.end()) definition = cached->second;
  }
  const bool definition_cached = definition != nullptr;
  if (!definition_cached) {
    ASSIGN_OR_RETURN(auto stored_definition, store_->Get(families_.definitions, definition_key));
    if (!stored_definition.has_value()) {
      batch.Put(families_.definitions, definition_key, machine.definition());
    }
    auto parsed = asl::Definition::Parse(machine.definition());
    if (!parsed.ok()) return parsed.status();
    definition = *parsed;
  }

  // The first transition depends on nothing stored: it runs before the
  // execution's lock is taken.
  const absl::Time now = options_.clock->Now();
  ExecutionRecord record;
  record.set_execution_arn(execution_arn);
  record.set_state_machine_arn(machine.state_machine_arn());
  record.set_name(request.request().name());
  record.set_status("RUNNING");
  record.set_input(request.request().input());
  *record.mutable_start_date() = ToProto(now);
  record.set_state_machine_type(machine.type());
  record.set_revision_id(machine.revision_id());
  record.set_state_machine_version_arn(version_arn);
  record.set_state_machine_alias_arn(alias_arn);
  if (request.has_parent_task()) *record.mutable_parent_task() = request.parent_task();
  record.set_name_generated(request.name_generated());
  // A caller that waits on a thread may start waiting only after the
  // close: the closed record stays stored for it. One listed before the
  // start is handed the record as the execution closes.
  record.set_synchronous(synchronous && !(sync_answer != nullptr && sync_answer->waits_later));
  // The record gets its copy of the state machine only when it is stored
  // (below): an EXPRESS execution that ends within its start needs none.

  asl::ExecutionContext context = MakeContext(record, &machine, codec_, ActivityExistsAnswer());
  asl::Interpreter interpreter(*definition, context);
  asl::Outcome outcome = interpreter.Start(record.mutable_state(), record.input(), now);

  // An EXPRESS execution that ended within its start and left nothing to
  // deliver needs nothing stored: a synchronous start answers with it
  // directly (AWS keeps no EXPRESS executions to describe or list, and its
  // names are not unique), and an asynchronous one has already run, so
  // its record is written without waiting for an fsync.
  const bool express = machine.type() == "EXPRESS";
  const bool ended_alone =
      express && !outcome.closed_status.empty() && !NeedsOutbox(record, machine, outcome);
  const bool answers_at_once = ended_alone && definition_cached &&
                               !(!synchronous && request.has_parent_task()) &&
                               !(synchronous && sync_answer == nullptr);
  // A start that is only to wait for its fsync can be answered from the
  // group committer instead (a child's start, whose parent's outbox may
  // repeat it, keeps the plain path).
  const bool commit_later = !answers_at_once && may_answer_later &&
                            definition_cached && !request.has_parent_task();
  // A synchronous EXPRESS start is written without an fsync: one whose
  // caller waits for the close without a thread has nothing to wait for.
  const bool sync_runs_on = express && synchronous && sync_answer != nullptr &&
                            sync_answer->waits_later && definition_cached &&
                            !request.has_parent_task();
  if (would_block != nullptr && !answers_at_once && !commit_later && !sync_runs_on) {
    return decline();
  }
  // Such an execution: its definition stored if it is not yet (before it
  // enters the cache, see above; later transitions in the same write-ahead
  // log come after it), its record closed, its start answered.
  auto close_at_once = [&]() -> absl::Status {
    if (!definition_cached) {
      if (batch.Count() > 0) RETURN_IF_ERROR(store_->Write(batch, /*sync=*/false));
      absl::MutexLock cache_lock(&definitions_mu_);
      definitions_.emplace(definition_key, definition);
    }
    record.set_status(outcome.closed_status);
    record.set_output(std::move(outcome.output));
    record.set_error(std::move(outcome.error));
    record.set_cause(std::move(outcome.cause));
    *record.mutable_stop_date() = ToProto(now);
    CountTransition(0, 0);
    CountClosed(record, record.status());
    response->set_execution_arn(execution_arn);
    *response->mutable_start_date() = record.start_date();
    return absl::OkStatus();
  };
  if (ended_alone && synchronous && sync_answer != nullptr) {
    RETURN_IF_ERROR(close_at_once());
    DescribeRecord(record, sync_answer->included_data != "METADATA_ONLY", now, &sync_answer->closed);
    sync_answer->answered = true;
    return absl::OkStatus();
  }

  if (ended_alone && !synchronous && !request.has_parent_task() && request.name_generated()) {
    // A fresh name: no execution to look for under its lock, and
    // nothing stored (see below).
    RETURN_IF_ERROR(close_at_once());
    KeepRecentExpress(std::move(record), /*keep_name=*/false);
    return absl::OkStatus();
  }
  ShardLock& shard_lock = LockOf(execution_arn);
  if (!LockUnlessBusy(shard_lock, would_block)) return decline();
  absl::Cleanup unlock = [&shard_lock] { shard_lock.Unlock(); };
  // A name the gateway made up (a random UUID) is nobody else's: no start
  // of it to wait for, and nothing stored under it to look up.
  const bool fresh_name = request.name_generated() && !request.has_parent_task();
  // A start of this name being written by the group committer decides
  // this one's answer: wait for it (or decline).
  std::optional<ExecutionRecord> existing;
  if (!fresh_name) {
    if (would_block == nullptr) {
      AwaitStartCommitted(execution_arn);
    } else if (StartCommitting(execution_arn)) {
      return decline();
    }
    ASSIGN_OR_RETURN(existing, Read<ExecutionRecord>(families_.executions, key));
    if (!existing.has_value() && express) existing = RecentExpressRecord(execution_arn);
  }
  if (!fresh_name && !existing.has_value() && express && RecentExpressNameTaken(execution_arn)) {
    // Closed, and its record no longer kept: refused as a closed one is.
    return absl::AlreadyExistsError(
        absl::StrCat("ExecutionAlreadyExists: Execution Already Exists: '", execution_arn, "'"));
  }
  if (existing.has_value()) {
    // Execution names are idempotency keys: the same name and input while
    // the execution runs returns it again; so does a parent task starting
    // its child again (its outbox repeats calls it cannot be sure of).
    const bool same_parent_task =
        !request.parent_task().task_token().empty() &&
        existing->parent_task().task_token() == request.parent_task().task_token();
    // A .sync task must hear of the child's end, which goes to the task
    // that started it only: another's running execution is refused.
    const bool needs_report = !request.parent_task().report().empty();
    if (same_parent_task || (!needs_report && existing->status() == "RUNNING" &&
                             existing->input() == request.request().input())) {
      response->set_execution_arn(execution_arn);
      *response->mutable_start_date() = existing->start_date();
      return absl::OkStatus();
    }
    return absl::AlreadyExistsError(
        absl::StrCat("ExecutionAlreadyExists: Execution Already Exists: '", execution_arn, "'"));
  }
  if (ended_alone && !request.has_parent_task()) {
    // Asynchronous (a synchronous one answered above): it has run, so
    // nothing is redone after a crash and nothing is stored; the recent
    // ones stay in memory to be described and listed. A child started by
    // a parent's task is written: the parent's repeated start must find it.
    RETURN_IF_ERROR(close_at_once());
    KeepRecentExpress(std::move(record), /*keep_name=*/!request.name_generated());
    return absl::OkStatus();
  }
  // Stored from here on, with the state machine it runs (its definition is
  // stored apart, by revision).
  *record.mutable_state_machine() = machine;
  record.mutable_state_machine()->clear_definition();
  for (const std::string& visibility_key : VisibilityKeys(record)) {
    batch.Put(families_.visibility, visibility_key, "");
  }
  const std::vector<std::string> claimed = ClaimPollers(interpreter, record, outcome, now);
  if (commit_later) {
    // Answered once durable. A new execution's records are its own: only
    // its name stays reserved until then, not its lock.
    response->set_execution_arn(execution_arn);
    *response->mutable_start_date() = record.start_date();
    absl::AnyInvocable<void() &&> release = [] {};
    if (!fresh_name) {
      {
        absl::MutexLock lock(&committing_mu_);
        committing_.insert(execution_arn);
      }
      release = [this, execution_arn] {
        absl::MutexLock lock(&committing_mu_);
        committing_.erase(execution_arn);
      };
    }
    CommitLater(shard, std::move(record), outcome, std::move(batch), /*before=*/nullptr, claimed,
                std::move(release), std::move(*answer_later));
    *answer_later = nullptr;
    return absl::OkStatus();
  }
  absl::Status committed = CommitTransition(shard, record, outcome, batch, /*before=*/nullptr,
                                            /*sync=*/true, /*start_record=*/!synchronous);
  ReleaseClaims(claimed);
  RETURN_IF_ERROR(committed);
  if (!definition_cached) {
    absl::MutexLock cache_lock(&definitions_mu_);
    definitions_.emplace(definition_key, definition);
  }
  log::Debug(kComponent, "execution started", {{"execution", execution_arn}});
  response->set_execution_arn(execution_arn);
  *response->mutable_start_date() = record.start_date();
  if (sync_answer != nullptr && record.status() != "RUNNING") {
    DescribeRecord(record, sync_answer->included_data != "METADATA_ONLY", now, &sync_answer->closed);
    sync_answer->answered = true;
  }
  return absl::OkStatus();
}

absl::Status ShardCore::DescribeExecution(const v1::DescribeExecutionRequest& request,
                                          v1::DescribeExecutionResponse* response) {
  if (auto hash = config::MapRunChildRoutingHash(options_.arn_scope, request.execution_arn())) {
    return DescribeMapRunChild(*hash, request, response);
  }
  ASSIGN_OR_RETURN(uint32_t shard, OwnedShard(request.execution_arn()));
  ASSIGN_OR_RETURN(auto record, Read<ExecutionRecord>(
                                    families_.executions,
                                    keys::ResourceKey(shard, request.execution_arn())));
  if (!record.has_value()) record = RecentExpressRecord(request.execution_arn());
  if (!record.has_value()) return ExecutionDoesNotExist(request.execution_arn());
  DescribeRecord(*record, request.included_data() != "METADATA_ONLY", options_.clock->Now(),
                 response);
  return absl::OkStatus();
}

void ShardCore::NotifyClosed(const std::string& execution_arn,
                             const ExecutionRecord* left_store) {
  std::vector<std::unique_ptr<LaterCloseWaiter>> later;
  {
    absl::MutexLock lock(&close_waiters_mu_);
    if (auto it = later_close_waiters_.find(execution_arn); it != later_close_waiters_.end()) {
      later = std::move(it->second);
      later_close_waiters_.erase(it);
    }
    if (auto it = close_waiters_.find(execution_arn); it != close_waiters_.end()) {
      std::shared_ptr<const ExecutionRecord> closed =
          left_store != nullptr ? std::make_shared<const ExecutionRecord>(*left_store) : nullptr;
      for (CloseWaiter* waiter : it->second) {
        waiter->closed = true;
        waiter->closed_record = closed;
        waiter->closed_cv.Signal();
      }
    }
  }
  for (std::unique_ptr<LaterCloseWaiter>& waiter : later) {
    if (left_store == nullptr) {
      // Read again, now closed (a redrive that reopened it meanwhile
      // makes it wait again).
      AwaitOrAnswer(std::move(waiter));
      continue;
    }
    DescribeRecord(*left_store, waiter->included_data != "METADATA_ONLY",
                   options_.clock->Now(), waiter->response);
    std::move(waiter->answer)(absl::OkStatus());
  }
}

void ShardCore::AwaitExecutionClosedLater(const v1::DescribeExecutionRequest& request,
                                          absl::Time deadline, std::function<bool()> cancelled,
                                          v1::DescribeExecutionResponse* response,
                                          AnswerLater answer) {
  AwaitOrAnswer(std::make_unique<LaterCloseWaiter>(
      LaterCloseWaiter{0, request.execution_arn(), request.included_data(), deadline,
                       std::move(cancelled), response, std::move(answer)}));
}

void ShardCore::AwaitOrAnswer(std::unique_ptr<LaterCloseWaiter> waiter) {
  v1::DescribeExecutionRequest describe;
  describe.set_execution_arn(waiter->execution_arn);
  describe.set_included_data(waiter->included_data);
  const uint64_t id = ListLaterCloseWaiter(waiter);
  if (id == 0) {
    return std::move(waiter->answer)(absl::UnavailableError("the shard server is shutting down"));
  }
  // Listed before the record is read: a close committed after the read
  // finds it listed, one committed before is in the record.
  v1::DescribeExecutionResponse described;
  absl::Status status = DescribeExecution(describe, &described);
  if (status.ok() && described.status() == "RUNNING") return;
  std::unique_ptr<LaterCloseWaiter> taken = UnlistLaterCloseWaiter(describe.execution_arn(), id);
  if (taken == nullptr) return;
  if (status.ok()) *taken->response = std::move(described);
  std::move(taken->answer)(std::move(status));
}

uint64_t ShardCore::ListLaterCloseWaiter(std::unique_ptr<LaterCloseWaiter>& waiter) {
  const absl::Time deadline = waiter->deadline;
  uint64_t id = 0;
  {
    absl::MutexLock lock(&close_waiters_mu_);
    if (close_waiters_stop_) return 0;
    id = waiter->id = ++later_close_last_id_;
    later_close_earliest_ = std::min(later_close_earliest_, deadline);
    std::string arn = waiter->execution_arn;
    later_close_waiters_[std::move(arn)].push_back(std::move(waiter));
  }
  // The timer loop answers it at its deadline, and looks at its caller.
  WakeTimersForPoll(std::min(deadline, absl::Now() + kLaterCloseRecheck));
  return id;
}

std::unique_ptr<ShardCore::LaterCloseWaiter> ShardCore::UnlistLaterCloseWaiter(
    const std::string& execution_arn, uint64_t id) {
  absl::MutexLock lock(&close_waiters_mu_);
  auto it = later_close_waiters_.find(execution_arn);
  if (it == later_close_waiters_.end()) return nullptr;
  std::vector<std::unique_ptr<LaterCloseWaiter>>& listed = it->second;
  std::unique_ptr<LaterCloseWaiter> taken;
  for (auto entry = listed.begin(); entry != listed.end(); ++entry) {
    if ((*entry)->id != id) continue;
    taken = std::move(*entry);
    listed.erase(entry);
    break;
  }
  if (listed.empty()) later_close_waiters_.erase(it);
  return taken;
}

absl::Time ShardCore::ExpireLaterCloseWaiters(absl::Time now) {
  std::vector<std::pair<std::unique_ptr<LaterCloseWaiter>, absl::Status>> ended;
  absl::Time next = absl::InfiniteFuture();
  {
    absl::MutexLock lock(&close_waiters_mu_);
    if (later_close_waiters_.empty()) return absl::InfiniteFuture();
    if (now < later_close_earliest_ && now < later_close_checked_ + kLaterCloseRecheck) {
      return std::min(later_close_earliest_, later_close_checked_ + kLaterCloseRecheck);
    }
    later_close_checked_ = now;
    later_close_earliest_ = absl::InfiniteFuture();
    for (auto it = later_close_waiters_.begin(); it != later_close_waiters_.end();) {
      std::vector<std::unique_ptr<LaterCloseWaiter>>& listed = it->second;
      for (auto entry = listed.begin(); entry != listed.end();) {
        LaterCloseWaiter& waiter = **entry;
        if (now >= waiter.deadline) {
          ended.emplace_back(std::move(*entry),
                             absl::DeadlineExceededError(absl::StrCat(
                                 "Execution is still running: '", waiter.execution_arn, "'")));
        } else if (waiter.cancelled && waiter.cancelled()) {
          ended.emplace_back(std::move(*entry), absl::CancelledError("the caller went away"));
        } else {
          later_close_earliest_ = std::min(later_close_earliest_, waiter.deadline);
          ++entry;
          continue;
        }
        entry = listed.erase(entry);
      }
      if (listed.empty()) {
        later_close_waiters_.erase(it++);
      } else {
        ++it;
      }
    }
    if (!later_close_waiters_.empty()) {
      next = std::min(later_close_earliest_, now + kLaterCloseRecheck);
    }
  }
  for (auto& [waiter, status] : ended) std::move(waiter->answer)(std::move(status));
  return next;
}

absl::Status ShardCore::AwaitExecutionClosed(const v1::DescribeExecutionRequest& request,
                                             absl::Time deadline,
                                             const std::function<bool()>& cancelled,
                                             v1::DescribeExecutionResponse* response) {
  // How often a waiter looks at `cancelled()`: a caller that went away
  // leaves within this long.
  constexpr absl::Duration kCancelRecheck = absl::Milliseconds(200);
  const std::string& arn = request.execution_arn();
  CloseWaiter waiter;
  {
    absl::MutexLock lock(&close_waiters_mu_);
    if (close_waiters_stop_) return absl::UnavailableError("the shard server is shutting down");
    close_waiters_[arn].push_back(&waiter);
  }
  // Listed before the record is read: a close committed after the read
  // finds the waiter, one committed before it is in the record.
  auto unlist = [&]() {
    absl::MutexLock lock(&close_waiters_mu_);
    auto it = close_waiters_.find(arn);
    if (it == close_waiters_.end()) return;
    std::vector<CloseWaiter*>& waiters = it->second;
    waiters.erase(std::remove(waiters.begin(), waiters.end(), &waiter), waiters.end());
    if (waiters.empty()) close_waiters_.erase(it);
  };
  while (true) {
    v1::DescribeExecutionResponse described;
    if (absl::Status status = DescribeExecution(request, &described); !status.ok()) {
      unlist();
      return status;
    }
    if (described.status() != "RUNNING") {
      unlist();
      *response = std::move(described);
      return absl::OkStatus();
    }
    std::shared_ptr<const ExecutionRecord> left_store;
    {
      absl::MutexLock lock(&close_waiters_mu_);
      while (!waiter.closed && !close_waiters_stop_) {
        const absl::Time now = absl::Now();
        if (now >= deadline || (cancelled && cancelled())) break;
        waiter.closed_cv.WaitWithDeadline(&close_waiters_mu_,
                                          std::min(deadline, now + kCancelRecheck));
      }
      if (waiter.closed && waiter.closed_record != nullptr) {
        // Nothing to read again: no store holds it (the memory may keep
        // none), and it cannot be redriven.
        left_store = std::move(waiter.closed_record);
      } else if (waiter.closed) {
        // Read the record again, now closed (a redrive that reopened it
        // meanwhile makes this wait again).
        waiter.closed = false;
        waiter.closed_record = nullptr;
        continue;
      }
    }
    unlist();
    if (left_store != nullptr) {
      DescribeRecord(*left_store, request.included_data() != "METADATA_ONLY",
                     options_.clock->Now(), response);
      return absl::OkStatus();
    }
    bool stopping;
    {
      absl::MutexLock lock(&close_waiters_mu_);
      stopping = close_waiters_stop_;
    }
    if (stopping) return absl::UnavailableError("the shard server is shutting down");
    if (cancelled && cancelled()) return absl::CancelledError("the caller went away");
    return absl::DeadlineExceededError(
        absl::StrCat("Execution is still running: '", arn, "'"));
  }
}

size_t ShardCore::AwaitedExecutions() {
  absl::MutexLock lock(&close_waiters_mu_);
  size_t awaited = close_waiters_.size();
  for (const auto& [arn, waiters] : later_close_waiters_) {
    if (!close_waiters_.contains(arn)) ++awaited;
  }
  return awaited;
}

absl::Status ShardCore::StartSyncExecution(
    const internal::v1::StartSyncExecutionShardRequest& request, absl::Time deadline,
    const std::function<bool()>& cancelled, v1::DescribeExecutionResponse* response,
    bool* would_block, const ResolvedStart* resolved, AnswerLater* answer_later) {
  const StateMachineRecord& machine =
      resolved != nullptr ? *resolved->machine : request.start().state_machine();
  if (machine.type() != "EXPRESS") {
    return absl::InvalidArgumentError(
        "StateMachineTypeNotSupported: State machine type is not supported.");
  }
  v1::StartExecutionResponse started;
  SyncAnswer answer;
  answer.included_data = request.included_data();
  // A caller that takes the answer later waits for the close without a
  // thread: listed before the start, so that no close can come first.
  std::string execution_arn;
  uint64_t listed = 0;
  if (answer_later != nullptr && *answer_later) {
    execution_arn =
        config::ExecutionArn(options_.arn_scope, machine.name(), request.start().request().name());
    auto waiter = std::make_unique<LaterCloseWaiter>(
        LaterCloseWaiter{0, execution_arn, request.included_data(), deadline, cancelled, response,
                         std::move(*answer_later)});
    listed = ListLaterCloseWaiter(waiter);
    if (listed == 0) {
      *answer_later = std::move(waiter->answer);
      return absl::UnavailableError("the shard server is shutting down");
    }
    *answer_later = nullptr;
    answer.waits_later = true;
  }
  absl::Status status = StartExecutionImpl(request.start(), /*synchronous=*/true, &started,
                                           &answer, would_block, /*answer_later=*/nullptr,
                                           resolved);
  const bool declined = would_block != nullptr && *would_block;
  if (listed != 0) {
    if (status.ok() && !declined && !answer.answered) return absl::OkStatus();  // waits listed
    // Answered here after all, unless its deadline or a stop answered it.
    std::unique_ptr<LaterCloseWaiter> waiter = UnlistLaterCloseWaiter(execution_arn, listed);
    if (waiter == nullptr) return absl::OkStatus();
    *answer_later = std::move(waiter->answer);
  }
  RETURN_IF_ERROR(status);
  if (declined) return absl::OkStatus();
  if (answer.answered) {
    *response = std::move(answer.closed);
    return absl::OkStatus();
  }
  v1::DescribeExecutionRequest describe;
  describe.set_execution_arn(started.execution_arn());
  describe.set_included_data(request.included_data());
  return AwaitExecutionClosed(describe, deadline, cancelled, response);
}

absl::Status ShardCore::RedriveExecution(const v1::RedriveExecutionRequest& request,
                                         v1::RedriveExecutionResponse* response) {
  RETURN_IF_ERROR(Admit());
  InflightSlot slot(this);
  const std::string& arn = request.execution_arn();
  ASSIGN_OR_RETURN(uint32_t shard, OwnedShard(arn));
  const std::string key = keys::ResourceKey(shard, arn);
  ShardLockGuard lock(&LockOf(arn));
  ASSIGN_OR_RETURN(auto record, Read<ExecutionRecord>(families_.executions, key));
  if (!record.has_value()) return ExecutionDoesNotExist(arn);
  // A retry of the redrive that already happened answers the same.
  if (!request.client_token().empty() && request.client_token() == record->redrive_client_token()) {
    *response->mutable_redrive_date() = record->redrive_date();
    return absl::OkStatus();
  }
  const absl::Time now = options_.clock->Now();
  RETURN_IF_ERROR(Redrivable(*record, now));
  ASSIGN_OR_RETURN(auto definition,
                   LoadDefinition(record->state_machine_arn(), record->revision_id()));
  record->set_redrive_count(record->redrive_count() + 1);
  asl::ExecutionContext context = MakeContext(*record, &record->state_machine(), codec_, ActivityExistsAnswer());
  asl::Interpreter interpreter(*definition, context);
  ASSIGN_OR_RETURN(asl::Outcome outcome, interpreter.Redrive(record->mutable_state(), now));
  record->set_status("RUNNING");
  record->clear_stop_date();
  record->clear_output();
  record->clear_error();
  record->clear_cause();
  *record->mutable_redrive_date() = ToProto(now);
  record->set_redrive_client_token(request.client_token());
  storage::WriteBatch batch;
  RETURN_IF_ERROR(CommitTransition(shard, *record, outcome, batch));
  log::Info(kComponent, "execution redriven",
            {{"execution", arn}, {"redrive_count", record->redrive_count()}});
  *response->mutable_redrive_date() = record->redrive_date();
  return absl::OkStatus();
}

absl::Status ShardCore::DescribeStateMachineForExecution(
    const v1::DescribeStateMachineForExecutionRequest& request,
    v1::DescribeStateMachineForExecutionResponse* response) {
  ASSIGN_OR_RETURN(uint32_t shard, OwnedShard(request.execution_arn()));
  ASSIGN_OR_RETURN(auto record, Read<ExecutionRecord>(
                                    families_.executions,
                                    keys::ResourceKey(shard, request.execution_arn())));
  if (!record.has_value()) return ExecutionDoesNotExist(request.execution_arn());
  // The revision the execution runs, not the state machine's current one.
  ASSIGN_OR_RETURN(auto definition,
                   store_->Get(families_.definitions,
                               keys::DefinitionKey(record->state_machine_arn(),
                                                   record->revision_id())));
  if (!definition.has_value()) {
    return absl::DataLossError(absl::StrCat("definition revision ", record->revision_id(),
                                            " of ", record->state_machine_arn(), " is missing"));
  }
  const StateMachineRecord& machine = record->state_machine();
  response->set_state_machine_arn(record->state_machine_arn());
  const size_t colon = record->state_machine_arn().rfind(':');
  response->set_name(record->state_machine_arn().substr(colon + 1));
  if (request.included_data() != "METADATA_ONLY") response->set_definition(*definition);
  response->set_role_arn(machine.role_arn());
  *response->mutable_update_date() =
      machine.has_update_date() ? machine.update_date() : record->start_date();
  *response->mutable_logging_configuration() = machine.logging_configuration();
  *response->mutable_tracing_configuration() = machine.tracing_configuration();
  response->set_revision_id(record->revision_id());
  return absl::OkStatus();
}

absl::Status ShardCore::StopExecution(const v1::StopExecutionRequest& request,
                                      v1::StopExecutionResponse* response) {
  InflightSlot slot(this);
  ASSIGN_OR_RETURN(uint32_t shard, OwnedShard(request.execution_arn()));
  const std::string key = keys::ResourceKey(shard, request.execution_arn());
  ShardLockGuard lock(&LockOf(request.execution_arn()));
  ASSIGN_OR_RETURN(auto record, Read<ExecutionRecord>(families_.executions, key));
  if (!record.has_value()) record = RecentExpressRecord(request.execution_arn());
  if (!record.has_value()) return ExecutionDoesNotExist(request.execution_arn());
  if (record->status() != "RUNNING") {
    // Stopping a closed execution changes nothing.
    *response->mutable_stop_date() = record->stop_date();
    return absl::OkStatus();
  }
  ASSIGN_OR_RETURN(auto definition,
                   LoadDefinition(record->state_machine_arn(), record->revision_id()));
  asl::ExecutionContext context = MakeContext(*record, &record->state_machine(), codec_, ActivityExistsAnswer());
  asl::Interpreter interpreter(*definition, context);
  const PendingTasks before = PendingActivityTasks(record->state());
  asl::Outcome outcome = interpreter.Abort(record->mutable_state(), request.error(),
                                           request.cause(), options_.clock->Now());
  storage::WriteBatch batch;
  RETURN_IF_ERROR(CommitTransition(shard, *record, outcome, batch, &before));
  *response->mutable_stop_date() = record->stop_date();
  return absl::OkStatus();
}

absl::Status ShardCore::GetExecutionHistory(const v1::GetExecutionHistoryRequest& request,
                                            v1::GetExecutionHistoryResponse* response) {
  const std::string& arn = request.execution_arn();
  ASSIGN_OR_RETURN(uint32_t shard, OwnedShard(arn));
  ASSIGN_OR_RETURN(auto record,
                   Read<ExecutionRecord>(families_.executions, keys::ResourceKey(shard, arn)));
  if (!record.has_value()) record = RecentExpressRecord(arn);
  if (!record.has_value()) return ExecutionDoesNotExist(arn);
  if (record->state_machine_type() == "EXPRESS") {
    return absl::InvalidArgumentError(
        "InvalidArn: Invalid Arn: 'Resource type not valid in this context: express'");
  }
  int limit = request.max_results() > 0 ? std::min(request.max_results(), kMaxHistoryPage)
                                        : kDefaultHistoryPage;
  int64_t start_id = 0;
  if (!request.next_token().empty() &&
      (!absl::SimpleAtoi(request.next_token(), &start_id) || start_id <= 0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("InvalidToken: Invalid Token: '", request.next_token(), "'"));
  }
  const bool include_data =
      !request.has_include_execution_data() || request.include_execution_data();
  const bool reverse = request.reverse_order();
  const std::string prefix = keys::HistoryPrefix(shard, arn);
  // A page from an event on starts at the chunk holding it: the last one
  // that begins at or before it.
  std::string start;
  if (start_id > 0) {
    RETURN_IF_ERROR(store_->Scan(families_.history, prefix,
                                 keys::HistoryKey(shard, arn, start_id), /*reverse=*/true,
                                 [&](std::string_view key, std::string_view) {
                                   start.assign(key);
                                   return false;
                                 }));
    if (start.empty() && reverse) return absl::OkStatus();  // nothing at or before it
  }
  absl::Status parse_status;
  int64_t continue_at = 0;
  RETURN_IF_ERROR(store_->Scan(
      families_.history, prefix, start, reverse,
      [&](std::string_view, std::string_view value) {
        internal::v1::HistoryChunk chunk;
        if (!ParseHistoryChunk(value, &chunk)) {
          parse_status = absl::DataLossError("corrupt history event");
          return false;
        }
        const int count = chunk.events_size();
        for (int i = 0; i < count; ++i) {
          v1::HistoryEvent& event = *chunk.mutable_events(reverse ? count - 1 - i : i);
          if (start_id > 0 && (reverse ? event.id() > start_id : event.id() < start_id)) {
            continue;
          }
          if (response->events_size() == limit) {
            continue_at = event.id();
            return false;
          }
          if (!include_data) {
            // Drop inputs and outputs, keeping everything else.
            auto* reflection = event.GetReflection();
            const auto* descriptor = event.GetDescriptor();
            const auto* oneof = descriptor->FindOneofByName("details");
            if (const auto* field = reflection->GetOneofFieldDescriptor(event, oneof)) {
              auto* details = reflection->MutableMessage(&event, field);
              for (const char* name : {"input", "output"}) {
                if (const auto* f = details->GetDescriptor()->FindFieldByName(name)) {
                  details->GetReflection()->ClearField(details, f);
                }
              }
            }
          }
          *response->add_events() = std::move(event);
        }
        return true;
      }));
  RETURN_IF_ERROR(parse_status);
  if (continue_at > 0) response->set_next_token(std::to_string(continue_at));
  return absl::OkStatus();
}

absl::Status ShardCore::ListExecutions(const internal::v1::ListShardRequest& request,
                                       internal::v1::ListExecutionsShardResponse* response) {
  const std::string prefix = keys::VisibilityPrefix(request.state_machine_arn());
  const size_t limit = request.limit() > 0 ? static_cast<size_t>(request.limit()) : 100;
  auto wanted = [&](const ExecutionRecord& record) {
    if (!request.status_filter().empty() && record.status() != request.status_filter()) {
      return false;
    }
    return !((request.redrive_filter() == "REDRIVEN" && record.redrive_count() == 0) ||
             (request.redrive_filter() == "NOT_REDRIVEN" && record.redrive_count() > 0));
  };
  // By sort key: the stored executions (at most `limit`), and the recent
  // EXPRESS ones kept in memory only; the page is the first `limit` of both.
  std::vector<std::pair<std::string, ExecutionRecord>> stored;
  absl::Status status;
  RETURN_IF_ERROR(store_->Scan(
      families_.visibility, prefix, "", false, [&](std::string_view key, std::string_view) {
        std::string_view sort_key = key.substr(prefix.size());
        if (!request.after_key().empty() && sort_key <= std::string_view(request.after_key())) {
          return true;
        }
        std::string execution_arn(sort_key.substr(8));
        uint32_t shard = config::ShardOf(execution_arn, options_.shard_count);
        auto record = Read<ExecutionRecord>(families_.executions,
                                            keys::ResourceKey(shard, execution_arn));
        if (!record.ok()) {
          status = record.status();
          return false;
        }
        if (!record->has_value() || !wanted(**record)) return true;
        (*record)->clear_state();
        stored.emplace_back(std::string(sort_key), std::move(**record));
        return stored.size() < limit;
      }));
  RETURN_IF_ERROR(status);
  std::vector<std::pair<std::string, ExecutionRecord>> recent;
  {
    absl::MutexLock lock(&recent_express_mu_);
    const absl::Time now = options_.clock->Now();
    const int64_t expired_ns = absl::ToUnixNanos(now - options_.express_execution_retention);
    for (const auto& [name_hash, entry] : recent_express_) {
      if (entry.record == nullptr || entry.closed_ns <= expired_ns) continue;
      ExecutionRecord record;
      if (!record.ParseFromArray(entry.record.get(), static_cast<int>(entry.record_size))) {
        continue;
      }
      const std::string& arn = record.execution_arn();
      if (record.state_machine_arn() != request.state_machine_arn() &&
          record.state_machine_version_arn() != request.state_machine_arn() &&
          record.state_machine_alias_arn() != request.state_machine_arn()) {
        continue;
      }
      if (!wanted(record)) continue;
      std::string sort_key = keys::VisibilitySortKey(FromProto(record.start_date()), arn);
      if (!request.after_key().empty() && sort_key <= request.after_key()) continue;
      recent.emplace_back(std::move(sort_key), std::move(record));
    }
  }
  std::sort(recent.begin(), recent.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  size_t s = 0;
  size_t r = 0;
  while (static_cast<size_t>(response->executions_size()) < limit &&
         (s < stored.size() || r < recent.size())) {
    const bool from_stored =
        r == recent.size() || (s < stored.size() && stored[s].first < recent[r].first);
    *response->add_executions() =
        from_stored ? std::move(stored[s++].second) : std::move(recent[r++].second);
  }
  return absl::OkStatus();
}

// --- Retention ------------------------------------------------------------

absl::Status ShardCore::PurgeExecution(const std::string& retention_key,
                                       absl::string_view execution_arn) {
  ASSIGN_OR_RETURN(uint32_t shard, OwnedShard(execution_arn));
  ShardLockGuard lock(&LockOf(execution_arn));
  storage::WriteBatch batch;
  batch.Delete(families_.retention, retention_key);
  const std::string key = keys::ResourceKey(shard, execution_arn);
  ASSIGN_OR_RETURN(auto record, Read<ExecutionRecord>(families_.executions, key));
  if (record.has_value() && record->status() != "RUNNING" &&
      FromProto(record->stop_date()) + RetentionOf(*record) <= options_.clock->Now()) {
    batch.Delete(families_.executions, key);
    if (record->map_runs_indexed()) {
      batch.Delete(families_.map_runs,
                   keys::MapRunIndexKey(shard, config::StableHash(execution_arn), execution_arn));
    }
    for (const std::string& visibility_key : VisibilityKeys(*record)) {
      batch.Delete(families_.visibility, visibility_key);
    }
    RETURN_IF_ERROR(store_->Scan(families_.history, keys::HistoryPrefix(shard, execution_arn), "",
                                 false, [&](std::string_view history_key, std::string_view) {
                                   batch.Delete(families_.history, history_key);
                                   return true;
                                 }));
    log::Debug(kComponent, "execution purged", {{"execution", std::string(execution_arn)}});
  }
  return store_->Write(batch, /*sync=*/false);
}

absl::Status ShardCore::PurgeExpiredExecutions() {
  {
    absl::MutexLock lock(&recent_express_mu_);
    EvictRecentExpress(options_.clock->Now());
  }
  RETURN_IF_ERROR(PurgeOldTaskIds());
  const int64_t now_ms = absl::ToUnixMillis(options_.clock->Now());
  while (true) {
    std::vector<std::string> due;
    RETURN_IF_ERROR(store_->Scan(families_.retention, "", "", false,
                                 [&](std::string_view key, std::string_view) {
                                   if (static_cast<int64_t>(storage::DecodeUint64(key)) > now_ms) {
                                     return false;
                                   }
                                   due.emplace_back(key);
                                   return due.size() < 1024;
                                 }));
    for (const std::string& key : due) {
      RETURN_IF_ERROR(PurgeExecution(key, absl::string_view(key).substr(8)));
    }
    if (due.size() < 1024) return absl::OkStatus();
  }
}

absl::Status ShardCore::PurgeOldTaskIds() {
  const uint32_t today = UnixDay(options_.clock->Now());
  absl::MutexLock lock(&task_id_purge_mu_);
  if (task_ids_purged_on_ == today) return absl::OkStatus();
  storage::WriteBatch batch;
  for (uint32_t shard = 0; shard < options_.shard_count; ++shard) {
    if (!config::Owns(shard, options_.ordinal, options_.replicas)) continue;
    if (today >= 1) {
      batch.DeleteRange(families_.tasks, keys::TaskIdDayStart(shard, 0),
                        keys::TaskIdDayStart(shard, today - 1));
    }
    batch.DeleteRange(families_.tasks, keys::LegacyTaskIdsBegin(shard),
                      keys::LegacyTaskIdsEnd(shard));
  }
  // Unsynced: a crash before it reaches the disk only has it done again.
  RETURN_IF_ERROR(store_->Write(batch, /*sync=*/false));
  task_ids_purged_on_ = today;
  return absl::OkStatus();
}

// --- Activity task queues -------------------------------------------------

absl::StatusOr<uint32_t> ShardCore::FirstOwnedPartitionShard(
    absl::string_view activity_arn) const {
  for (int partition = 0; partition < options_.task_queue_partitions; ++partition) {
    auto shard = OwnedShard(config::TaskQueuePartitionKey(activity_arn, partition));
    if (shard.ok()) return *shard;
  }
  return absl::FailedPreconditionError(absl::StrCat(
      "no task queue partition of ", activity_arn, " is owned by shard server ", options_.ordinal,
      " of ", options_.replicas, " (check the shard map of the caller)"));
}

absl::Status ShardCore::CheckActivityExists(const std::string& activity_arn) {
  ASSIGN_OR_RETURN(uint32_t shard, OwnedShard(activity_arn));
  ASSIGN_OR_RETURN(auto activity, Read<ActivityRecord>(families_.activities,
                                                       keys::ResourceKey(shard, activity_arn)));
  if (!activity.has_value()) return ActivityDoesNotExist(activity_arn);
  return absl::OkStatus();
}

absl::Status ShardCore::CachedActivityExists(const std::string& activity_arn) {
  const absl::Time now = absl::Now();
  std::shared_ptr<ActivityLookUp> look_up;
  bool asking = false;
  {
    absl::MutexLock lock(&activity_exists_mu_);
    auto it = activity_exists_.find(activity_arn);
    if (it != activity_exists_.end() && now - it->second < kActivityExistsTtl) {
      return absl::OkStatus();
    }
    std::shared_ptr<ActivityLookUp>& slot = activity_look_ups_[activity_arn];
    if (slot == nullptr) {
      slot = std::make_shared<ActivityLookUp>();
      asking = true;
    }
    look_up = slot;
  }
  if (!asking) {
    absl::MutexLock lock(&look_up->mu);
    look_up->mu.Await(absl::Condition(&look_up->done));
    return look_up->status;
  }
  // The activity's own shard may be here or on another server.
  absl::Status exists = OwnedShard(activity_arn).ok() ? CheckActivityExists(activity_arn)
                                                      : peers_->CheckActivityExists(activity_arn);
  // Read before activity_exists_mu_ is taken: the queues have a lock of
  // their own.
  const bool queued_here = !exists.ok() && !absl::IsNotFound(exists) &&
                           task_queues_->BacklogSize(activity_arn) > 0;
  {
    absl::MutexLock lock(&activity_exists_mu_);
    if (exists.ok()) {
      activity_exists_[activity_arn] = now;
    } else if (absl::IsNotFound(exists)) {
      activity_exists_.erase(activity_arn);
    } else if (activity_exists_.contains(activity_arn) || queued_here) {
      // The owner is unreachable (down, restarting): an activity confirmed
      // before, or one with tasks queued here (a partition queues a task
      // only once the activity is confirmed; after a restart its stored
      // tasks are that proof), is taken to exist still, so that the
      // partitions here go on serving its workers meanwhile. The owner is
      // asked again a TTL later, not by every poll meanwhile.
      activity_exists_[activity_arn] = now;
      exists = absl::OkStatus();
    }
    activity_look_ups_.erase(activity_arn);
  }
  absl::MutexLock lock(&look_up->mu);
  look_up->status = exists;
  look_up->done = true;
  return exists;
}

std::function<bool(const std::string&)> ShardCore::ActivityExistsAnswer() {
  return [this](const std::string& resource) {
    // Only activities are looked up; an answer other than NOT_FOUND (the
    // owner unreachable, the shard moving) counts as "exists": the task is
    // scheduled, and a missing activity is then reported by the partition
    // that cannot queue it (ActivityScheduleFailed).
    if (!absl::StrContains(resource, ":activity:")) return true;
    return !absl::IsNotFound(CachedActivityExists(resource));
  };
}

bool ShardCore::ActivityKnownToExist(const std::string& activity_arn) {
  absl::MutexLock lock(&activity_exists_mu_);
  auto it = activity_exists_.find(activity_arn);
  return it != activity_exists_.end() &&
         absl::Now() - it->second < kActivityExistsTtl + kScheduleGrace;
}

bool ShardCore::ActivityServable(const std::string& activity_arn) {
  {
    absl::MutexLock lock(&activity_exists_mu_);
    auto it = activity_exists_.find(activity_arn);
    if (it == activity_exists_.end()) return false;
    if (absl::Now() - it->second < kActivityExistsTtl) return true;
  }
  absl::MutexLock lock(&refresh_mu_);
  if (!refresh_stop_ && refreshing_.insert(activity_arn).second) {
    refresh_queue_.push_back(activity_arn);
  }
  return true;
}

void ShardCore::RefreshLoop() {
  while (true) {
    std::string activity_arn;
    {
      absl::MutexLock lock(&refresh_mu_);
      refresh_mu_.Await(absl::Condition(
          +[](ShardCore* core) ABSL_EXCLUSIVE_LOCKS_REQUIRED(core->refresh_mu_) {
            return core->refresh_stop_ || !core->refresh_queue_.empty();
          },
          this));
      if (refresh_stop_) return;
      activity_arn = std::move(refresh_queue_.front());
      refresh_queue_.pop_front();
    }
    // Updates the cache: confirmed again, dropped on a refusal, or kept
    // for another TTL while the owner cannot be reached.
    (void)CachedActivityExists(activity_arn);
    absl::MutexLock lock(&refresh_mu_);
    refreshing_.erase(activity_arn);
  }
}

std::vector<std::string> ShardCore::ClaimPollers(asl::Interpreter& interpreter,
                                                 ExecutionRecord& record, asl::Outcome& outcome,
                                                 absl::Time now) {
  std::vector<std::string> claimed;
  for (const asl::ActivityDispatch& dispatch : outcome.dispatches) {
    std::string task_id = absl::StrCat(record.execution_arn(), "#", dispatch.scheduled_event_id);
    const auto partition = static_cast<int>(
        config::ShardOf(task_id, static_cast<uint32_t>(options_.task_queue_partitions)));
    // Only where QueueLocally will queue the task.
    if (!OwnedShard(config::TaskQueuePartitionKey(dispatch.activity_arn, partition)).ok() ||
        !ActivityKnownToExist(dispatch.activity_arn)) {
      continue;
    }
    std::string worker_name;
    TaskQueues::Waiter* waiter =
        task_queues_->Claim(dispatch.activity_arn, dispatch.input.size(), &worker_name);
    if (waiter == nullptr) continue;
    absl::StatusOr<asl::Outcome> started = interpreter.ActivityStarted(
        record.mutable_state(), dispatch.scheduled_event_id, worker_name, now);
    if (!started.ok()) {
      task_queues_->Release(waiter);
      continue;
    }
    for (const v1::HistoryEvent& event : started->events) *outcome.events.Add() = event;
    for (const asl::TimerRequest& timer : started->timers) outcome.timers.push_back(timer);
    absl::MutexLock lock(&claims_mu_);
    claims_[task_id] = waiter;
    claimed.push_back(std::move(task_id));
  }
  return claimed;
}

void ShardCore::ReleaseClaims(const std::vector<std::string>& task_ids) {
  for (const std::string& task_id : task_ids) {
    TaskQueues::Waiter* waiter = nullptr;
    {
      absl::MutexLock lock(&claims_mu_);
      auto it = claims_.find(task_id);
      if (it == claims_.end()) continue;  // handed over
      waiter = it->second;
      claims_.erase(it);
    }
    task_queues_->Release(waiter);
  }
}

bool ShardCore::Claimed(const std::string& task_id) {
  absl::MutexLock lock(&claims_mu_);
  return claims_.contains(task_id);
}

void ShardCore::HandOrQueue(TaskQueues::Queued queued) {
  TaskQueues::Waiter* waiter = nullptr;
  {
    absl::MutexLock lock(&claims_mu_);
    auto it = claims_.find(queued.task.task_id());
    if (it != claims_.end()) {
      waiter = it->second;
      claims_.erase(it);
    }
  }
  if (waiter != nullptr) {
    task_queues_->Hand(waiter, std::move(queued));
  } else {
    task_queues_->Add(std::move(queued));
  }
}

bool ShardCore::QueueLocally(ActivityTask& task, storage::WriteBatch& batch,
                             std::vector<TaskQueues::Queued>* queued) {
  auto shard =
      OwnedShard(config::TaskQueuePartitionKey(task.activity_arn(), task.partition()));
  if (!shard.ok()) return false;
  // A task handed to a claimed poller (see ClaimPollers) leaves its id
  // only: its ActivityStarted is in this same write, so it is never in the
  // backlog, and a crash before the poller answers loses it as a crash
  // after any hand-over does (its timeout brings it back).
  const bool claimed = Claimed(task.task_id());
  // A missing or unconfirmed activity is the outbox path's to report
  // (ActivityScheduleFailed); the interpreter's lookup just now normally
  // left a fresh answer in the cache, so no I/O happens here.
  if (!claimed && !ActivityKnownToExist(task.activity_arn())) return false;
  // No enqueue mutex and no seen-check: this task id is new (only a later
  // transition of the same execution, serialized behind the execution's lock the
  // caller holds, can cancel it), and a transition lost in a crash loses
  // its backlog record with it, so its replay queues the task once.
  // Nor is its id kept: with no outbox item, nothing can enqueue it again.
  const uint64_t seq = next_task_seq_++;
  if (!task.in_memory() && !claimed) {
    batch.Put(families_.tasks, keys::TaskKey(*shard, task.activity_arn(), seq),
              task.SerializeAsString());
  }
  queued->push_back(TaskQueues::Queued{seq, *shard, std::move(task)});
  return true;
}

absl::Status ShardCore::EnqueueActivityTask(const ActivityTask& task, bool sync) {
  ASSIGN_OR_RETURN(uint32_t shard, OwnedShard(config::TaskQueuePartitionKey(
                                       task.activity_arn(), task.partition())));
  RETURN_IF_ERROR(CachedActivityExists(task.activity_arn()));
  absl::MutexLock lock(&EnqueueMutex(task.task_id()));
  const uint32_t today = UnixDay(options_.clock->Now());
  const std::string id_key = keys::TaskIdKey(shard, today, task.task_id());
  for (const std::string& key : {id_key, keys::TaskIdKey(shard, today - 1, task.task_id())}) {
    ASSIGN_OR_RETURN(auto seen, store_->Get(families_.tasks, key));
    if (seen.has_value()) return absl::OkStatus();  // a redelivered outbox item
  }
  const uint64_t seq = next_task_seq_++;
  storage::WriteBatch batch;
  // An in-memory task leaves only its id behind (unsynced), which keeps a
  // redelivered enqueue from queueing it twice.
  if (!task.in_memory()) {
    batch.Put(families_.tasks, keys::TaskKey(shard, task.activity_arn(), seq),
              task.SerializeAsString());
  }
  batch.Put(families_.tasks, id_key, "");
  RETURN_IF_ERROR(store_->Write(batch, sync && !task.in_memory()));
  task_queues_->Add(TaskQueues::Queued{seq, shard, task});
  return absl::OkStatus();
}

absl::Status ShardCore::CancelActivityTask(const ActivityTask& task, bool sync) {
  ASSIGN_OR_RETURN(uint32_t shard, OwnedShard(config::TaskQueuePartitionKey(
                                       task.activity_arn(), task.partition())));
  absl::MutexLock lock(&EnqueueMutex(task.task_id()));
  storage::WriteBatch batch;
  // Marked as seen: an enqueue delivered after this cancel adds nothing.
  batch.Put(families_.tasks,
            keys::TaskIdKey(shard, UnixDay(options_.clock->Now()), task.task_id()), "");
  std::optional<TaskQueues::Queued> removed =
      task_queues_->Remove(task.activity_arn(), task.task_id());
  if (removed.has_value()) {
    batch.Delete(families_.tasks, keys::TaskKey(removed->shard, task.activity_arn(), removed->seq));
  }
  absl::Status written = store_->Write(batch, sync);
  if (!written.ok() && removed.has_value()) {
    task_queues_->PutBack(task.activity_arn(), {std::move(*removed)});
  }
  return written;
}

absl::Status ShardCore::LookUpActivity(const std::string& activity_arn) {
  RETURN_IF_ERROR(FirstOwnedPartitionShard(activity_arn).status());
  if (ActivityServable(activity_arn)) return absl::OkStatus();
  return CachedActivityExists(activity_arn);
}

absl::Status ShardCore::PollActivityTasks(const internal::v1::PollActivityTasksRequest& request,
                                          internal::v1::PollActivityTasksResponse* response,
                                          absl::Time deadline,
                                          const std::function<bool()>& cancelled) {
  const std::string& arn = request.activity_arn();
  RETURN_IF_ERROR(LookUpActivity(arn));
  deadline = std::min(deadline, absl::Now() + absl::Milliseconds(std::max<int64_t>(
                                                  0, request.wait_ms())));
  if (request.max_tasks() == 0) {
    ASSIGN_OR_RETURN(bool backlog, task_queues_->Watch(arn, deadline, cancelled));
    response->set_backlog(backlog);
    return absl::OkStatus();
  }
  bool handed = false;
  ASSIGN_OR_RETURN(std::vector<TaskQueues::Queued> taken,
                   task_queues_->Take(arn, std::clamp(request.max_tasks(), 1, 100),
                                      kMaxBatchInputBytes, deadline, cancelled,
                                      request.worker_name(), &handed));
  if (taken.empty()) return absl::OkStatus();
  // A task handed over by its transition is already recorded as started
  // and has no backlog record: nothing to write.
  if (!handed) RETURN_IF_ERROR(HandOver(request.worker_name(), arn, taken));
  return Deliver(arn, std::move(taken), cancelled, response);
}

ShardCore::LaterPoll ShardCore::PollActivityTasksLater(
    const internal::v1::PollActivityTasksRequest& request,
    internal::v1::PollActivityTasksResponse* response, absl::Time deadline,
    std::function<bool()> cancelled, AnswerLater* answer_later) {
  const std::string& arn = request.activity_arn();
  if (answer_later == nullptr || !*answer_later || !FirstOwnedPartitionShard(arn).ok() ||
      !ActivityServable(arn)) {
    return LaterPoll::kDeclined;
  }
  const absl::Time now = absl::Now();
  deadline = std::min(deadline, now + absl::Milliseconds(std::max<int64_t>(0, request.wait_ms())));
  // A quick look (wait_ms 0, as a spread poll's sweep makes) that finds
  // nothing is answered here, not by the timer loop a thread hop later.
  if (deadline <= now && task_queues_->EmptyNow(arn, /*watch=*/request.max_tasks() == 0)) {
    return LaterPoll::kAnswered;
  }
  if (request.max_tasks() == 0) {
    // A watch (see PollActivityTasks).
    const bool waiting = task_queues_->WatchLater(
        arn, deadline, std::move(cancelled), [&]() -> TaskQueues::WatchAnswer {
          return [response, answer = std::move(*answer_later)](
                     absl::StatusOr<bool> backlog) mutable {
            if (!backlog.ok()) return std::move(answer)(backlog.status());
            response->set_backlog(*backlog);
            std::move(answer)(absl::OkStatus());
          };
        });
    if (!waiting) return LaterPoll::kDeclined;
    *answer_later = nullptr;
    WakeTimersForPoll(deadline);
    return LaterPoll::kWaiting;
  }
  const bool waiting = task_queues_->TakeLater(
      arn, std::clamp(request.max_tasks(), 1, 100), kMaxBatchInputBytes, deadline, cancelled,
      request.worker_name(), [&]() -> TaskQueues::TakeAnswer {
        return [this, arn, response, cancelled, answer = std::move(*answer_later)](
                   absl::StatusOr<std::vector<TaskQueues::Queued>> handed) mutable {
          if (!handed.ok()) return std::move(answer)(handed.status());
          if (!handed->empty() && cancelled && cancelled()) {
            // As in Deliver: the caller went away while the tasks were
            // written; they go back to the backlog, stored first unless
            // they live in memory, without waiting here (this may be the
            // group committer's continuation thread).
            ReturnToBacklog(arn, *std::move(handed));
            return std::move(answer)(absl::OkStatus());
          }
          for (TaskQueues::Queued& queued : *handed) {
            v1::DeliveredActivityTask* delivered = response->add_tasks();
            delivered->set_task_token(std::move(*queued.task.mutable_task_token()));
            delivered->set_input(std::move(*queued.task.mutable_input()));
          }
          std::move(answer)(absl::OkStatus());
        };
      });
  if (!waiting) return LaterPoll::kDeclined;
  *answer_later = nullptr;
  WakeTimersForPoll(deadline);
  return LaterPoll::kWaiting;
}

void ShardCore::ReturnToBacklog(const std::string& arn, std::vector<TaskQueues::Queued> tasks) {
  storage::WriteBatch undo;
  for (const TaskQueues::Queued& queued : tasks) {
    if (queued.task.in_memory()) continue;
    undo.Put(families_.tasks, keys::TaskKey(queued.shard, arn, queued.seq),
             queued.task.SerializeAsString());
  }
  if (undo.empty()) return task_queues_->PutBack(arn, std::move(tasks));
  committer_->Submit(std::move(undo),
                     [this, arn, tasks = std::move(tasks)](absl::Status written) mutable {
                       // Not stored: they come back after their timeouts, as
                       // tasks of a worker that died.
                       if (written.ok()) task_queues_->PutBack(arn, std::move(tasks));
                     });
}

absl::Status ShardCore::HandOver(const std::string& worker_name, const std::string& arn,
                                 std::vector<TaskQueues::Queued>& taken) {
  // Hand-over: the tasks leave the backlog in one durable write (with an
  // outbox item per task as the fallback for reporting it started), and the
  // executions' shards record ActivityStarted before the worker has the
  // task, so its answer can never reach the execution first (as on AWS,
  // where GetActivityTask records it). The write and the records run at
  // once, sharing a group commit rather than following each other: a
  // record that lands without the hand-over (a crash, a failed write) only
  // marks a task started that is still queued, which a later hand-over
  // finds a no-op.
  storage::WriteBatch batch;
  bool any_stored = false;
  for (const TaskQueues::Queued& queued : taken) {
    if (!queued.task.in_memory()) {
      batch.Delete(families_.tasks, keys::TaskKey(queued.shard, arn, queued.seq));
      any_stored = true;
    }
  }
  // The records of executions on this server's shards are made here, their
  // fsyncs left to the group committer, so they share one group with the
  // hand-over's write; the others (and any whose shard is busy) are made
  // on the delivery pool, through their servers.
  struct Pending {
    absl::Mutex mu;
    size_t count ABSL_GUARDED_BY(mu) = 0;
    void Add() {
      absl::MutexLock lock(&mu);
      ++count;
    }
    void Done() {
      absl::MutexLock lock(&mu);
      --count;
    }
    void Await() {
      absl::MutexLock lock(&mu);
      mu.Await(absl::Condition(
          +[](size_t* n) { return *n == 0; }, &count));
    }
  } pending;
  std::unique_ptr<bool[]> started(new bool[taken.size()]());
  // Records made before this returns (EXPRESS) need no outbox item.
  std::vector<bool> recorded_at_once(taken.size(), false);
  std::vector<internal::v1::RecordActivityStartedRequest> records(taken.size());
  std::vector<size_t> through_peers;
  for (size_t i = 0; i < taken.size(); ++i) {
    records[i].set_task_token(taken[i].task.task_token());
    records[i].set_worker_name(worker_name);
    auto content = codec_.Decode(records[i].task_token());
    if (!content.ok() || !OwnedShard(content->execution_arn()).ok()) {
      through_peers.push_back(i);
      continue;
    }
    bool would_block = false;
    pending.Add();
    AnswerLater later = [&pending, &started, i](absl::Status status) {
      started[i] = status.ok();
      pending.Done();
    };
    absl::Status status = RecordActivityStarted(records[i], /*sync=*/true, &would_block, &later);
    if (!later) continue;  // answered by the committer
    pending.Done();
    if (would_block) {
      through_peers.push_back(i);
    } else {
      started[i] = status.ok();  // written at once (EXPRESS), or nothing to record
      recorded_at_once[i] = started[i];
    }
  }
  // An outbox item per task whose record is not made yet, as the fallback
  // for reporting it started.
  std::vector<std::string> started_keys(taken.size());
  for (size_t i = 0; i < taken.size(); ++i) {
    if (recorded_at_once[i]) continue;
    internal::v1::OutboxItem item;
    item.mutable_activity_started()->set_task_token(taken[i].task.task_token());
    item.mutable_activity_started()->set_worker_name(worker_name);
    started_keys[i] = keys::OutboxKey(next_outbox_seq_++);
    PutOutboxItem(batch, started_keys[i], item);
  }
  if (!batch.empty()) {
    // The outbox items of earlier hand-overs whose records were made leave
    // with this write rather than with one of their own on the way to a
    // worker; one still there when the outbox looks only repeats an
    // idempotent delivery.
    absl::MutexLock lock(&started_cleanup_mu_);
    for (const std::string& key : started_cleanup_) batch.Delete(families_.outbox, key);
    started_cleanup_.clear();
  }
  absl::Status written;
  if (any_stored) {
    pending.Add();
    committer_->Submit(std::move(batch), [&pending, &written](absl::Status status) {
      written = std::move(status);
      pending.Done();
    });
  } else if (!batch.empty()) {
    // In-memory tasks only: nothing here must outlive a crash.
    written = store_->Write(batch, /*sync=*/false);
  }
  delivery_pool_->RunAll(through_peers.size(), [&](size_t j) {
    const size_t i = through_peers[j];
    started[i] = peers_->RecordActivityStarted(records[i]).ok();
  });
  pending.Await();
  if (!written.ok()) {
    task_queues_->PutBack(arn, std::move(taken));
    return written;
  }
  // The outbox items of the records made above go with the next hand-over;
  // the others are the outbox's to deliver now.
  bool undelivered = false;
  {
    absl::MutexLock lock(&started_cleanup_mu_);
    for (size_t i = 0; i < taken.size(); ++i) {
      if (started_keys[i].empty()) continue;  // recorded at once: no item
      if (started[i]) {
        started_cleanup_.push_back(std::move(started_keys[i]));
      } else {
        undelivered = true;
      }
    }
  }
  if (undelivered) WakeOutbox();
  return absl::OkStatus();
}

absl::Status ShardCore::Deliver(const std::string& arn, std::vector<TaskQueues::Queued> taken,
                                const std::function<bool()>& cancelled,
                                internal::v1::PollActivityTasksResponse* response) {
  if (cancelled && cancelled()) {
    // The caller went away while the hand-over was written: its answer
    // would be dropped, so the tasks go back to the backlog (their
    // ActivityStarted is already recorded; a later hand-over is then a
    // no-op for the execution). Checked last, so that only the moment of
    // sending the answer remains, as with any worker that dies on receipt.
    storage::WriteBatch undo;
    for (const TaskQueues::Queued& queued : taken) {
      if (queued.task.in_memory()) continue;
      undo.Put(families_.tasks, keys::TaskKey(queued.shard, arn, queued.seq),
               queued.task.SerializeAsString());
    }
    if (!undo.empty()) RETURN_IF_ERROR(store_->Write(undo, /*sync=*/true));
    task_queues_->PutBack(arn, std::move(taken));
    return absl::OkStatus();
  }
  for (TaskQueues::Queued& queued : taken) {
    v1::DeliveredActivityTask* delivered = response->add_tasks();
    delivered->set_task_token(queued.task.task_token());
    delivered->set_input(std::move(*queued.task.mutable_input()));
  }
  return absl::OkStatus();
}

absl::Status ShardCore::GetActivityTask(const v1::GetActivityTaskRequest& request,
                                        v1::GetActivityTaskResponse* response,
                                        absl::Time deadline,
                                        const std::function<bool()>& cancelled) {
  internal::v1::PollActivityTasksRequest poll;
  poll.set_activity_arn(request.activity_arn());
  poll.set_worker_name(request.worker_name());
  poll.set_max_tasks(1);
  poll.set_wait_ms(std::max<int64_t>(0, absl::ToInt64Milliseconds(deadline - absl::Now())));
  internal::v1::PollActivityTasksResponse polled;
  RETURN_IF_ERROR(PollActivityTasks(poll, &polled, deadline, cancelled));
  if (polled.tasks_size() > 0) {
    response->set_task_token(polled.tasks(0).task_token());
    response->set_input(polled.tasks(0).input());
  }
  return absl::OkStatus();
}

// --- Task results ---------------------------------------------------------

absl::Status ShardCore::ApplyTaskResult(const std::string& task_token, bool ignore_stale,
                                        const TaskStep& step, bool sync, bool* would_block,
                                        AnswerLater* answer_later) {
  InflightSlot slot(this);
  ASSIGN_OR_RETURN(internal::v1::TaskTokenContent content, codec_.Decode(task_token));
  ASSIGN_OR_RETURN(uint32_t shard, OwnedShard(content.execution_arn()));
  const std::string key = keys::ResourceKey(shard, content.execution_arn());
  // Declines (see StartExecution) before anything is done.
  auto decline = [would_block] {
    *would_block = true;
    return absl::OkStatus();
  };
  ShardLock& shard_lock = LockOf(content.execution_arn());
  if (!LockUnlessBusy(shard_lock, would_block)) return decline();
  bool handed_over = false;  // to the group committer, which unlocks
  absl::Cleanup unlock = [&shard_lock, &handed_over] {
    if (!handed_over) shard_lock.Unlock();
  };
  ASSIGN_OR_RETURN(auto record, ReadExecution(key));
  if (!record.has_value()) {
    // A closed EXPRESS execution is kept in memory only: its tasks are
    // over, as those of a stored closed one are.
    if (RecentExpressRecord(content.execution_arn()).has_value()) {
      return ignore_stale ? absl::OkStatus() : TaskNoLongerExists();
    }
    return absl::NotFoundError("TaskDoesNotExist: Task Does Not Exist: 'the execution is gone'");
  }
  // A caller that may not wait hands the transition to the group committer
  // when it can take the answer later, an EXPRESS one too: a write of its
  // own would wait behind the committer's fsync in RocksDB's write queue.
  // Without that, only an EXPRESS transition is written here (unsynced).
  const bool express = record->state_machine_type() == "EXPRESS";
  const bool commit_later = answer_later != nullptr && *answer_later;
  if (would_block != nullptr && !express && !commit_later) return decline();
  if (record->status() == "ABORTED" && !ignore_stale) {
    // StopExecution cancelled every task of the execution.
    return absl::NotFoundError(
        "TaskDoesNotExist: Task Does Not Exist: 'the execution was stopped'");
  }
  if (record->status() != "RUNNING" ||
      !asl::Interpreter::AwaitsTask(record->state(), content.scheduled_event_id())) {
    return ignore_stale ? absl::OkStatus() : TaskNoLongerExists();
  }
  ASSIGN_OR_RETURN(auto definition,
                   LoadDefinition(record->state_machine_arn(), record->revision_id()));
  asl::ExecutionContext context = MakeContext(*record, &record->state_machine(), codec_, ActivityExistsAnswer());
  asl::Interpreter interpreter(*definition, context);
  const PendingTasks before = PendingActivityTasks(record->state());
  const absl::Time now = options_.clock->Now();
  auto outcome = step(interpreter, record->mutable_state(), now);
  if (!outcome.ok()) {
    if (absl::IsFailedPrecondition(outcome.status())) {
      return ignore_stale ? absl::OkStatus() : TaskNoLongerExists();
    }
    return outcome.status();
  }
  // The execution's next task (a workflow of several, a retry) goes to a
  // waiting poller in this same write, as a new execution's first does.
  std::vector<std::string> claimed = ClaimPollers(interpreter, *record, *outcome, now);
  storage::WriteBatch batch;
  if (commit_later) {
    handed_over = true;
    // As CommitTransition: an EXPRESS transition needs no fsync.
    CommitLater(shard, *std::move(record), *outcome, std::move(batch), &before,
                std::move(claimed), [&shard_lock] { shard_lock.Unlock(); },
                std::move(*answer_later), /*sync=*/sync && !express);
    *answer_later = nullptr;
    return absl::OkStatus();
  }
  absl::Status committed = CommitTransition(shard, *record, *outcome, batch, &before, sync);
  ReleaseClaims(claimed);
  return committed;
}

absl::Status ShardCore::RecordActivityStarted(
    const internal::v1::RecordActivityStartedRequest& request, bool sync, bool* would_block,
    AnswerLater* answer_later) {
  auto content = codec_.Decode(request.task_token());
  if (!content.ok()) return content.status();
  const int64_t scheduled = content->scheduled_event_id();
  return ApplyTaskResult(request.task_token(), /*ignore_stale=*/true,
                         [&](asl::Interpreter& interpreter, internal::v1::ExecutionState* state,
                             absl::Time now) {
                           return interpreter.ActivityStarted(state, scheduled,
                                                              request.worker_name(), now);
                         },
                         sync, would_block, answer_later);
}

absl::Status ShardCore::ActivityScheduleFailed(
    const internal::v1::ActivityScheduleFailedRequest& request, bool sync) {
  auto content = codec_.Decode(request.task_token());
  if (!content.ok()) return content.status();
  const int64_t scheduled = content->scheduled_event_id();
  return ApplyTaskResult(request.task_token(), /*ignore_stale=*/true,
                         [&](asl::Interpreter& interpreter, internal::v1::ExecutionState* state,
                             absl::Time now) {
                           return interpreter.ActivityDoesNotExist(state, scheduled,
                                                                   request.activity_arn(), now);
                         },
                         sync);
}

absl::Status ShardCore::SendTaskSuccess(const v1::SendTaskSuccessRequest& request, bool* would_block,
                                        AnswerLater* answer_later) {
  ASSIGN_OR_RETURN(auto content, codec_.Decode(request.task_token()));
  const int64_t scheduled = content.scheduled_event_id();
  return ApplyTaskResult(request.task_token(), /*ignore_stale=*/false,
                         [&](asl::Interpreter& interpreter, internal::v1::ExecutionState* state,
                             absl::Time now) {
                           return interpreter.ActivitySucceeded(state, scheduled,
                                                                request.output(), now);
                         },
                         /*sync=*/true, would_block, answer_later);
}

absl::Status ShardCore::SendTaskFailure(const v1::SendTaskFailureRequest& request, bool* would_block,
                                        AnswerLater* answer_later) {
  ASSIGN_OR_RETURN(auto content, codec_.Decode(request.task_token()));
  const int64_t scheduled = content.scheduled_event_id();
  return ApplyTaskResult(request.task_token(), /*ignore_stale=*/false,
                         [&](asl::Interpreter& interpreter, internal::v1::ExecutionState* state,
                             absl::Time now) {
                           return interpreter.ActivityFailed(state, scheduled, request.error(),
                                                             request.cause(), now);
                         },
                         /*sync=*/true, would_block, answer_later);
}

absl::Status ShardCore::SendTaskHeartbeat(const v1::SendTaskHeartbeatRequest& request, bool* would_block,
                                          AnswerLater* answer_later) {
  ASSIGN_OR_RETURN(auto content, codec_.Decode(request.task_token()));
  const int64_t scheduled = content.scheduled_event_id();
  return ApplyTaskResult(request.task_token(), /*ignore_stale=*/false,
                         [&](asl::Interpreter& interpreter, internal::v1::ExecutionState* state,
                             absl::Time now) {
                           return interpreter.ActivityHeartbeat(state, scheduled, now);
                         },
                         /*sync=*/true, would_block, answer_later);
}

absl::Status ShardCore::CompleteServiceTask(const internal::v1::ServiceTaskResult& result,
                                            bool sync) {
  ASSIGN_OR_RETURN(auto content, codec_.Decode(result.task_token()));
  const int64_t scheduled = content.scheduled_event_id();
  return ApplyTaskResult(
      result.task_token(), /*ignore_stale=*/true,
      [&](asl::Interpreter& interpreter, internal::v1::ExecutionState* state,
          absl::Time now) -> absl::StatusOr<asl::Outcome> {
        if (result.from_child()) {
          for (const auto& [id, frame] : state->frames()) {
            if (frame.scheduled_event_id() == scheduled && !frame.task_submitted()) {
              return absl::AbortedError("the task's call has not been answered yet");
            }
          }
        }
        switch (result.kind()) {
          case internal::v1::ServiceTaskResult::SUBMITTED:
            return interpreter.ServiceTaskSubmitted(state, scheduled, result.output(), now);
          case internal::v1::ServiceTaskResult::FAILED:
            return interpreter.ActivityFailed(state, scheduled, result.error(), result.cause(),
                                              now);
          default:
            return interpreter.ActivitySucceeded(state, scheduled, result.output(), now);
        }
      },
      sync);
}

// --- Service integrations ---------------------------------------------------

void ShardCore::AddServiceEffects(ExecutionRecord& record, const asl::Outcome& outcome,
                                  storage::WriteBatch& batch) {
  auto add_item = [&](internal::v1::OutboxItem& item) {
    PutOutboxItem(batch, keys::OutboxKey(next_outbox_seq_++), item);
  };
  for (const asl::ServiceCall& service : outcome.service_calls) {
    internal::v1::OutboxItem item;
    internal::v1::ServiceCall* call = item.mutable_service_call();
    call->set_task_token(service.task_token);
    call->set_service(service.integration.service);
    call->set_action(service.integration.action);
    call->set_resource_name(service.integration.resource_name);
    call->set_pattern(static_cast<int32_t>(service.integration.pattern));
    call->set_parameters(service.parameters);
    call->set_execution_arn(record.execution_arn());
    call->set_state_machine_arn(record.state_machine_arn());
    add_item(item);
    // A child the task waits for is stopped when the task is given up.
    if (service.integration.action == "startExecution" &&
        service.integration.pattern != asl::IntegrationPattern::kRequestResponse) {
      auto child = ChildStartOf(options_.arn_scope, service.parameters, service.task_token);
      if (child.ok()) (*record.mutable_children())[service.scheduled_event_id] = child->execution_arn;
    }
  }
  for (int64_t scheduled_event_id : outcome.cancelled_tasks) {
    auto child = record.children().find(scheduled_event_id);
    if (child == record.children().end()) continue;
    internal::v1::OutboxItem item;
    v1::StopExecutionRequest* stop = item.mutable_stop_child_execution();
    stop->set_execution_arn(child->second);
    stop->set_error("States.Aborted");
    stop->set_cause(absl::StrCat("The parent execution ", record.execution_arn(),
                                 " no longer waits for this execution"));
    add_item(item);
  }
  for (auto it = record.mutable_children()->begin(); it != record.mutable_children()->end();) {
    if (asl::Interpreter::AwaitsTask(record.state(), it->first) &&
        outcome.closed_status.empty()) {
      ++it;
    } else {
      it = record.mutable_children()->erase(it);
    }
  }
  if (!outcome.closed_status.empty() && !record.parent_task().report().empty()) {
    internal::v1::OutboxItem item;
    *item.mutable_service_task_result() = ChildReport(record);
    add_item(item);
  }
}

absl::StatusOr<internal::v1::ServiceTaskResult> ShardCore::StartChildExecution(
    const internal::v1::ServiceCall& call) {
  const std::string request_id = DerivedUuid(absl::StrCat("request:", call.task_token()));
  auto child = ChildStartOf(options_.arn_scope, call.parameters(), call.task_token());
  if (!child.ok()) return StepFunctionsFailure(child.status(), request_id);
  internal::v1::StartExecutionShardRequest start;
  *start.mutable_request() = child->request;
  internal::v1::ParentTask* parent = start.mutable_parent_task();
  parent->set_task_token(call.task_token());
  parent->set_execution_arn(call.execution_arn());
  const auto pattern = static_cast<asl::IntegrationPattern>(call.pattern());
  if (pattern == asl::IntegrationPattern::kSync) parent->set_report("sync");
  if (pattern == asl::IntegrationPattern::kSync2) parent->set_report("sync:2");
  v1::StartExecutionResponse started;
  absl::Status status = peers_->StartChildExecution(child->state_machine_arn,
                                                    child->execution_arn, start, &started);
  if (Transient(status)) return status;
  if (!status.ok()) return StepFunctionsFailure(status, request_id);
  json::Document doc;
  doc.SetObject();
  auto& a = doc.GetAllocator();
  doc.AddMember("ExecutionArn", json::Value(started.execution_arn().c_str(), a), a);
  doc.AddMember("StartDate", EpochMillis(started.start_date()), a);
  internal::v1::ServiceTaskResult result;
  result.set_kind(pattern == asl::IntegrationPattern::kRequestResponse
                      ? internal::v1::ServiceTaskResult::SUCCEEDED
                      : internal::v1::ServiceTaskResult::SUBMITTED);
  result.set_output(json::Serialize(doc));
  return result;
}

absl::StatusOr<internal::v1::ServiceTaskResult> ShardCore::PutEvents(
    const internal::v1::ServiceCall& call) {
  internal::v1::ServiceTaskResult result;
  auto fail = [&result](absl::string_view error, absl::string_view cause) {
    result.set_kind(internal::v1::ServiceTaskResult::FAILED);
    result.set_error(std::string(error));
    result.set_cause(std::string(cause));
    return result;
  };
  auto parameters = json::Parse(call.parameters());
  const json::Value* entries = nullptr;
  if (parameters.ok() && parameters->IsObject() && parameters->HasMember("Entries")) {
    entries = &(*parameters)["Entries"];
  }
  if (entries == nullptr || !entries->IsArray() || entries->Empty() || entries->Size() > 10) {
    return fail("EventBridge.ValidationException",
                "1 validation error detected: Value at 'entries' failed to satisfy constraint: "
                "Member must have length between 1 and 10");
  }
  const absl::Time now = options_.clock->Now();
  json::Document answer;
  answer.SetObject();
  auto& a = answer.GetAllocator();
  json::Value answers(rapidjson::kArrayType);
  int failed = 0;
  for (rapidjson::SizeType i = 0; i < entries->Size(); ++i) {
    const json::Value& given = (*entries)[i];
    v1::PutEventsRequestEntry entry;
    auto text = [&given](const char* name) -> std::string {
      auto it = given.IsObject() ? given.FindMember(name) : given.MemberEnd();
      if (!given.IsObject() || it == given.MemberEnd()) return "";
      return it->value.IsString() ? it->value.GetString() : json::Serialize(it->value);
    };
    entry.set_source(text("Source"));
    entry.set_detail_type(text("DetailType"));
    entry.set_detail(text("Detail"));  // an object is sent as its text
    entry.set_event_bus_name(text("EventBusName"));
    entry.set_trace_header(text("TraceHeader"));
    if (given.IsObject() && given.HasMember("Resources") && given["Resources"].IsArray()) {
      for (const json::Value& resource : given["Resources"].GetArray()) {
        if (resource.IsString()) entry.add_resources(resource.GetString());
      }
    }
    // AWS adds the calling state machine and execution to the resources.
    entry.add_resources(call.state_machine_arn());
    entry.add_resources(call.execution_arn());
    std::optional<eventbus::EntryError> error = eventbus::CheckEntryFields(entry);
    std::string bus = entry.event_bus_name().empty() ? std::string(eventbus::kDefaultBusName)
                                                     : entry.event_bus_name();
    const std::string bus_arn_prefix = eventbus::EventBusArn(options_.arn_scope, "");
    if (absl::StartsWith(bus, "arn:")) {
      if (absl::StartsWith(bus, bus_arn_prefix)) {
        bus = bus.substr(bus_arn_prefix.size());
      } else if (!error) {
        error = eventbus::EntryError{"ResourceNotFoundException",
                                     absl::StrCat("Event bus ", bus, " does not exist.")};
      }
    }
    // The same id when the call is made again, so rules start their
    // targets once.
    const std::string event_id = DerivedUuid(absl::StrCat("event:", call.task_token(), "#", i));
    if (!error) {
      internal::v1::PublishEvent event;
      event.set_topic(eventbus::BusTopic(bus));
      event.set_key(event_id);
      event.set_value(eventbus::EventEnvelope(options_.arn_scope, event_id, entry, now));
      absl::Status produced = peers_->ProduceEvent(event);
      if (absl::IsNotFound(produced) && bus != eventbus::kDefaultBusName) {
        error = eventbus::EntryError{"ResourceNotFoundException",
                                     absl::StrCat("Event bus ", bus, " does not exist.")};
      } else if (absl::IsFailedPrecondition(produced)) {
        return fail("EventBridge.InternalException", produced.message());
      } else if (!produced.ok()) {
        return absl::UnavailableError(produced.message());  // made again later
      }
    }
    json::Value item(rapidjson::kObjectType);
    if (error) {
      ++failed;
      item.AddMember("ErrorCode", json::Value(error->code.c_str(), a), a);
      item.AddMember("ErrorMessage", json::Value(error->message.c_str(), a), a);
    } else {
      item.AddMember("EventId", json::Value(event_id.c_str(), a), a);
    }
    answers.PushBack(item, a);
  }
  answer.AddMember("Entries", answers, a);
  answer.AddMember("FailedEntryCount", failed, a);
  if (failed > 0) return fail("EventBridge.FailedEntry", json::Serialize(answer));
  result.set_kind(static_cast<asl::IntegrationPattern>(call.pattern()) ==
                          asl::IntegrationPattern::kWaitForTaskToken
                      ? internal::v1::ServiceTaskResult::SUBMITTED
                      : internal::v1::ServiceTaskResult::SUCCEEDED);
  result.set_output(json::Serialize(answer));
  return result;
}

absl::StatusOr<internal::v1::ServiceTaskResult> ShardCore::CallService(
    const internal::v1::ServiceCall& call) {
  absl::StatusOr<internal::v1::ServiceTaskResult> result;
  if (call.service() == "states" && call.action() == "startExecution") {
    result = StartChildExecution(call);
  } else if (call.service() == "events" && call.action() == "putEvents") {
    result = PutEvents(call);
  } else {
    // Definitions are checked when stored; this is an item of a newer
    // release read by an older one.
    internal::v1::ServiceTaskResult failed;
    failed.set_kind(internal::v1::ServiceTaskResult::FAILED);
    failed.set_error("States.Runtime");
    failed.set_cause(absl::StrCat("The resource ", call.service(), ":", call.resource_name(),
                                  " is not supported by this server"));
    result = std::move(failed);
  }
  if (result.ok()) result->set_task_token(call.task_token());
  return result;
}

// --- Timers ---------------------------------------------------------------

void ShardCore::WakeTimers(absl::Time fire_at) {
  absl::MutexLock lock(&timers_mu_);
  if (fire_at < next_timer_wake_) {
    next_timer_wake_ = fire_at;
    timers_changed_ = true;
  }
}

void ShardCore::WakeTimersForPoll(absl::Time deadline) {
  // The loop reads NextLaterDeadline and sets timer_loop_wakes_at_ under
  // this lock: it either sees the new deadline or is woken here.
  absl::MutexLock lock(&timers_mu_);
  if (deadline < timer_loop_wakes_at_) timers_changed_ = true;
}

absl::Status ShardCore::FireTimer(const std::string& key) {
  // key: fire ms (8) | execution arn | 0 | timer id (8)
  const std::string execution_arn = key.substr(8, key.size() - 8 - 9);
  const int64_t timer_id = static_cast<int64_t>(storage::DecodeUint64(key.substr(key.size() - 8)));
  InflightSlot slot(this);
  ASSIGN_OR_RETURN(uint32_t shard, OwnedShard(execution_arn));
  ShardLockGuard lock(&LockOf(execution_arn));
  storage::WriteBatch batch;
  batch.Delete(families_.timers, key);
  ASSIGN_OR_RETURN(auto record, Read<ExecutionRecord>(families_.executions,
                                                      keys::ResourceKey(shard, execution_arn)));
  if (!record.has_value() || record->status() != "RUNNING") {
    return store_->Write(batch, /*sync=*/false);
  }
  ASSIGN_OR_RETURN(auto definition,
                   LoadDefinition(record->state_machine_arn(), record->revision_id()));
  asl::ExecutionContext context = MakeContext(*record, &record->state_machine(), codec_, ActivityExistsAnswer());
  asl::Interpreter interpreter(*definition, context);
  const PendingTasks before = PendingActivityTasks(record->state());
  const absl::Time now = options_.clock->Now();
  auto outcome = interpreter.TimerFired(record->mutable_state(), timer_id, now);
  if (!outcome.ok()) {
    // A timer whose wait ended otherwise (the task answered, the branch
    // failed): nothing to do.
    return store_->Write(batch, /*sync=*/false);
  }
  // A task after a Wait, or a retry after its backoff.
  const std::vector<std::string> claimed = ClaimPollers(interpreter, *record, *outcome, now);
  absl::Status committed = CommitTransition(shard, *record, *outcome, batch, &before);
  ReleaseClaims(claimed);
  return committed;
}

absl::Status ShardCore::FireDueTimers() {
  const int64_t now_ms = absl::ToUnixMillis(options_.clock->Now());
  std::vector<std::string> due;
  absl::Time next = absl::InfiniteFuture();
  RETURN_IF_ERROR(store_->Scan(families_.timers, "", "", false,
                               [&](std::string_view key, std::string_view) {
                                 const int64_t fire_ms = static_cast<int64_t>(storage::DecodeUint64(key));
                                 if (fire_ms > now_ms) {
                                   next = absl::FromUnixMillis(fire_ms);
                                   return false;
                                 }
                                 due.emplace_back(key);
                                 return due.size() < 1024;
                               }));
  for (const std::string& key : due) {
    if (absl::Status status = FireTimer(key); !status.ok()) {
      log::Warn(kComponent, "timer failed; will retry", {{"error", status.ToString()}});
      next = std::min(next, options_.clock->Now() + absl::Seconds(1));
    }
  }
  if (due.size() >= 1024) next = options_.clock->Now();
  WakeTimers(next);
  return absl::OkStatus();
}

void ShardCore::TimerLoop() {
  while (true) {
    task_queues_->RefreshAges();
    task_queues_->ExpireLater(absl::Now());
    const absl::Time later_close_due = ExpireLaterCloseWaiters(absl::Now());
    if (options_.clock->Now() >= next_retention_sweep_) {
      next_retention_sweep_ =
          options_.clock->Now() +
          std::min(options_.retention_sweep_interval,
                   std::max(absl::Seconds(1), options_.express_execution_retention / 4));
      if (absl::Status status = PurgeExpiredExecutions(); !status.ok()) {
        log::Error(kComponent, "retention sweep failed", {{"error", status.ToString()}});
      }
    }
    {
      absl::MutexLock lock(&timers_mu_);
      // Sleep until the earliest known timer, an earlier one is armed, a
      // waiting poll's deadline (it answers empty then, not up to a second
      // later, which could be past its caller's own deadline), or a second
      // passed (the clock may move), or until stopped.
      const absl::Duration wait =
          std::min({absl::Seconds(1), next_timer_wake_ - options_.clock->Now(),
                    task_queues_->NextLaterDeadline() - absl::Now(),
                    later_close_due - absl::Now()});
      if (wait > absl::ZeroDuration()) {
        timers_changed_ = false;
        auto wake = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(timers_mu_) {
          return timers_stop_ || timers_changed_;
        };
        timer_loop_wakes_at_ = absl::Now() + wait;
        timers_mu_.AwaitWithTimeout(absl::Condition(&wake), wait);
        timer_loop_wakes_at_ = absl::InfinitePast();
        if (timers_stop_) return;
        if (timers_changed_ && next_timer_wake_ > options_.clock->Now()) continue;
      }
      if (timers_stop_) return;
      next_timer_wake_ = absl::InfiniteFuture();
    }
    if (absl::Status status = FireDueTimers(); !status.ok()) {
      log::Error(kComponent, "timer scan failed", {{"error", status.ToString()}});
    }
  }
}

// --- Outbox ---------------------------------------------------------------

uint64_t ShardCore::NextPublishSeq(CommitEffects& effects) {
  absl::MutexLock lock(&publish_mu_);
  const uint64_t seq = next_outbox_seq_++;
  if (effects.first_publish_seq == 0) {
    effects.first_publish_seq = seq;
    publishing_.insert(seq);
  }
  return seq;
}

void ShardCore::PublishWriteEnded(const CommitEffects& effects) {
  if (effects.first_publish_seq == 0) return;
  absl::MutexLock lock(&publish_mu_);
  publishing_.erase(effects.first_publish_seq);
}

uint64_t ShardCore::PublishWatermark() {
  // Under the lock that NextPublishSeq takes: a published event allocated
  // after this either is in publishing_ or has a sequence above the one
  // read here.
  absl::MutexLock lock(&publish_mu_);
  return publishing_.empty() ? next_outbox_seq_.load() : *publishing_.begin();
}

void ShardCore::WakeLane(OutboxLane& lane) {
  absl::MutexLock lock(&lane.mu);
  lane.wake = true;
}

absl::Status ShardCore::DeliverOutboxItem(const internal::v1::OutboxItem& item,
                                        std::optional<internal::v1::OutboxItem>* report) {
  absl::Status status;
  if (item.has_enqueue_activity_task()) {
    const ActivityTask& task = item.enqueue_activity_task();
    status = peers_->EnqueueActivityTask(task);
    if (absl::IsNotFound(status)) {
      // The activity is gone: tell the execution, through the outbox
      // again so the report survives restarts.
      internal::v1::OutboxItem answer;
      answer.mutable_activity_schedule_failed()->set_task_token(task.task_token());
      answer.mutable_activity_schedule_failed()->set_activity_arn(task.activity_arn());
      *report = std::move(answer);
      status = absl::OkStatus();
    }
  } else if (item.has_activity_started()) {
    status = peers_->RecordActivityStarted(item.activity_started());
  } else if (item.has_activity_schedule_failed()) {
    status = peers_->ActivityScheduleFailed(item.activity_schedule_failed());
  } else if (item.has_cancel_activity_task()) {
    status = peers_->CancelActivityTask(item.cancel_activity_task());
  } else if (item.has_service_call()) {
    // The call's answer goes to the task at once (its execution is on
    // this server), so the task is submitted before the token can come
    // back; when that fails, through the outbox again. The call itself
    // is idempotent, and this item is deleted only after the answer's
    // transition in the same write-ahead log.
    auto result = CallService(item.service_call());
    if (result.ok()) {
      if (!CompleteServiceTask(*result, /*sync=*/false).ok()) {
        internal::v1::OutboxItem answer;
        *answer.mutable_service_task_result() = std::move(*result);
        *report = std::move(answer);
      }
    } else {
      status = result.status();  // transient: made again later
    }
  } else if (item.has_service_task_result()) {
    status = peers_->CompleteServiceTask(item.service_task_result());
    if (!Transient(status)) status = absl::OkStatus();
  } else if (item.has_stop_child_execution()) {
    v1::StopExecutionRequest stop = item.stop_child_execution();
    status = peers_->StopExecution(stop);
    if (!Transient(status)) status = absl::OkStatus();  // closed already, or gone
  }
  return status;
}

void ShardCore::OutboxLoop(OutboxLane& lane) {
  // Scans start after what the last scan delivered: the deleted items
  // before it stay in RocksDB as tombstones for a while, and skipping them
  // at every wake-up would cost more than the deliveries. Item keys are
  // allocated before their batch commits, so a batch may land behind the
  // cursor; a scan from the start every second finds such stragglers —
  // except published events, which the cursor never passes while they are
  // being written (see PublishWatermark).
  //
  // The cursor moves past items that failed, too: they are tried again by
  // the next scan from the start, after a backoff, while later items go
  // on. Otherwise the items for a peer that is down, once they fill a
  // scan, would hold back everything behind them: tasks for other servers,
  // reports, the bus's events.
  std::string cursor;
  // The next scan from the start: a second after the last one, or, while
  // items fail, when the backoff ends (the stragglers wait for it too).
  absl::Time from_start_at = absl::InfinitePast();
  bool retry_pending = false;
  absl::Duration backoff = absl::Milliseconds(50);
  // Keys (topic, key) with an event that failed since the last scan from
  // the start: their later events wait for it.
  absl::flat_hash_set<std::pair<std::string, std::string>> held_keys;
  // Items other than events are delivered each on its own (DeliveryPool::
  // Submit) and come back through lane.delivered: one slow delivery (a
  // peer that hangs, a service call) holds back no other. Their keys, until
  // they are back; later scans pass over them.
  absl::flat_hash_set<std::string> in_flight;
  while (true) {
    {
      absl::MutexLock lock(&lane.mu);
      auto ready = [&lane]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(lane.mu) {
        return lane.wake || lane.stop;
      };
      lane.mu.AwaitWithTimeout(
          absl::Condition(&ready),
          std::clamp(from_start_at - absl::Now(), absl::ZeroDuration(), absl::Seconds(1)));
      if (lane.stop) {
        // The deliveries still running use this core: wait for them.
        auto all_back = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(lane.mu) {
          return lane.delivered.size() >= in_flight.size();
        };
        lane.mu.Await(absl::Condition(&all_back));
        return;
      }
      lane.wake = false;
    }
    std::vector<OutboxLane::Delivered> delivered;
    {
      absl::MutexLock lock(&lane.mu);
      delivered.swap(lane.delivered);
    }
    const bool from_start = absl::Now() >= from_start_at;
    if (from_start) {
      cursor.clear();
      held_keys.clear();
      retry_pending = false;
      from_start_at = absl::Now() + absl::Seconds(1);
    }
    // Read before the scan: every published event below it was written
    // (or failed) before the scan began, so the scan sees it.
    const std::string publish_watermark = keys::OutboxKey(PublishWatermark());
    std::vector<std::pair<std::string, internal::v1::OutboxItem>> items;
    const size_t scan_limit = std::min<size_t>(256, kMaxOutboxInFlight - in_flight.size());
    absl::Status scan = absl::OkStatus();
    if (scan_limit > 0) {
      scan = store_->Scan(lane.family, "", cursor, false,
                          [&](std::string_view key, std::string_view value) {
                            if (in_flight.contains(absl::string_view(key.data(), key.size()))) {
                              return true;
                            }
                            internal::v1::OutboxItem item;
                            if (item.ParseFromArray(value.data(), static_cast<int>(value.size()))) {
                              items.emplace_back(std::string(key), std::move(item));
                            }
                            return items.size() < scan_limit;
                          });
    }
    if (!scan.ok()) {
      // The deliveries that came back are still settled below.
      log::Error(kComponent, "outbox scan failed",
                 {{"lane", lane.name}, {"error", scan.ToString()}});
      items.clear();
    }
    // Every item is idempotent at its receiver (and a cancel marks its task
    // seen), so they are delivered all at once, in any order — except
    // published events of one key (an execution's log records and status
    // changes), which go out one after another in the order their
    // transitions wrote them, so that a reader of the topic's partition
    // sees them in order. An event that fails holds back the later ones of
    // its key until it is delivered.
    std::vector<absl::Status> statuses(items.size());
    std::vector<size_t> others;
    // The events of each (topic, key), in order.
    std::vector<std::vector<size_t>> event_lanes;
    {
      absl::flat_hash_map<std::pair<std::string_view, std::string_view>, size_t> lane_of_key;
      for (size_t i = 0; i < items.size(); ++i) {
        if (!items[i].second.has_publish_event()) {
          others.push_back(i);
          continue;
        }
        const internal::v1::PublishEvent& event = items[i].second.publish_event();
        auto [it, added] =
            lane_of_key.try_emplace({event.topic(), event.key()}, event_lanes.size());
        if (added) event_lanes.emplace_back();
        event_lanes[it->second].push_back(i);
      }
    }
    // The events go out in waves, each one call that shares the producer's
    // batches: the first event of every key, then the next of every key
    // whose last one was delivered, and so on. A round trip to the brokers
    // per wave, not per event: under load the bus gets thousands of status
    // changes a second, and everything else in the outbox waits for them.
    auto hold_later_events = [&](const std::vector<size_t>& indexes, size_t from) {
      for (size_t later = from; later < indexes.size(); ++later) {
        statuses[indexes[later]] =
            absl::AbortedError("an earlier event of its key is not delivered yet");
      }
    };
    auto publish_events = [&] {
      std::vector<size_t> position(event_lanes.size(), 0);
      std::vector<size_t> open;
      for (size_t lane = 0; lane < event_lanes.size(); ++lane) {
        const internal::v1::PublishEvent& first = items[event_lanes[lane][0]].second.publish_event();
        if (held_keys.contains(std::make_pair(first.topic(), first.key()))) {
          hold_later_events(event_lanes[lane], 0);
        } else {
          open.push_back(lane);
        }
      }
      std::vector<const internal::v1::PublishEvent*> wave;
      while (!open.empty()) {
        wave.clear();
        for (size_t lane : open) {
          wave.push_back(&items[event_lanes[lane][position[lane]]].second.publish_event());
        }
        std::vector<absl::Status> outcomes = peers_->PublishEvents(wave);
        size_t still_open = 0;
        for (size_t w = 0; w < open.size(); ++w) {
          const size_t lane = open[w];
          const std::vector<size_t>& indexes = event_lanes[lane];
          absl::Status& status = statuses[indexes[position[lane]]];
          status = w < outcomes.size() ? std::move(outcomes[w])
                                       : absl::InternalError("no outcome for the event");
          if (!OutboxItemSettled(status)) {
            hold_later_events(indexes, position[lane] + 1);
            const internal::v1::PublishEvent& event = *wave[w];
            held_keys.emplace(event.topic(), event.key());
            continue;
          }
          if (++position[lane] < indexes.size()) open[still_open++] = lane;
        }
        open.resize(still_open);
      }
    };
    for (size_t i : others) {
      in_flight.insert(items[i].first);
      delivery_pool_->Submit([this, &lane, key = items[i].first,
                              item = std::move(items[i].second)]() mutable {
        std::optional<internal::v1::OutboxItem> report;
        absl::Status status = DeliverOutboxItem(item, &report);
        absl::MutexLock lock(&lane.mu);
        lane.delivered.push_back({std::move(key), std::move(item), std::move(status),
                                  std::move(report), absl::Now()});
        lane.wake = true;
      });
    }
    if (!event_lanes.empty()) publish_events();
    storage::WriteBatch done;
    bool failed = false;
    bool new_reports = false;
    int retried = 0;
    absl::Status first_failure;
    auto settle = [&](const std::string& key, const internal::v1::OutboxItem& item,
                      const absl::Status& status, std::optional<internal::v1::OutboxItem>& report,
                      absl::Time at) {
      CountOutboxDelivery(item, status, at);
      if (report.has_value()) {
        PutOutboxItem(done, keys::OutboxKey(next_outbox_seq_++), *report);
        new_reports = true;
      }
      if (OutboxItemSettled(status)) {
        // Delivered, or refused for good (nothing to retry).
        if (!status.ok()) {
          log::Warn(kComponent, "outbox item refused", {{"error", status.ToString()}});
        }
        done.Delete(lane.family, key);
        return;
      }
      failed = true;
      // Aborted is expected: an item waiting for another one (an event
      // behind an earlier one of its key, or see CompleteServiceTask).
      if (absl::IsAborted(status)) return;
      if (retried++ == 0) first_failure = status;
    };
    const absl::Time published_at = absl::Now();
    std::optional<internal::v1::OutboxItem> no_report;  // an event leaves none
    for (const std::vector<size_t>& indexes : event_lanes) {
      for (size_t i : indexes) {
        settle(items[i].first, items[i].second, statuses[i], no_report, published_at);
      }
    }
    for (OutboxLane::Delivered& back : delivered) {
      settle(back.key, back.item, back.status, back.report, back.at);
    }
    if (!done.empty()) {
      // Synced only when it carries new reports, which must not be lost; a
      // lost deletion merely delivers an idempotent item again.
      if (absl::Status status = store_->Write(done, /*sync=*/new_reports); !status.ok()) {
        log::Error(kComponent, "outbox cleanup failed", {{"error", status.ToString()}});
      }
      if (new_reports) WakeOutbox();
    }
    // Only now: the scan above was not to take them again.
    for (const OutboxLane::Delivered& back : delivered) in_flight.erase(back.key);
    if (!items.empty()) cursor = items.back().first;
    // A published event still being written may have a sequence below the
    // cursor: the next scan starts no later than the first such one, so
    // that it is not left behind later events of its execution.
    if (&lane == &events_outbox_) cursor = std::min(cursor, publish_watermark);
    if (failed && !retry_pending) {
      retry_pending = true;
      from_start_at = absl::Now() + backoff;
      // One line per retry, not per round: while a peer is down, every
      // round fails the items for it.
      if (retried > 0) {
        log::Warn(kComponent, "outbox deliveries failed; will retry",
                  {{"lane", lane.name},
                   {"items", absl::StrCat(retried)},
                   {"retry_in", absl::FormatDuration(backoff)},
                   {"error", first_failure.ToString()}});
      }
      backoff = std::min(backoff * 2, absl::Seconds(5));
    } else if (!failed && from_start) {
      backoff = absl::Milliseconds(50);
    }
    if (items.size() >= 256) WakeLane(lane);
  }
}

// --- Map runs ---------------------------------------------------------------

void ShardCore::IndexMapRuns(uint32_t shard, ExecutionRecord& record,
                             storage::WriteBatch& batch) {
  if (record.map_runs_indexed() || record.state().map_runs().empty()) return;
  record.set_map_runs_indexed(true);
  batch.Put(families_.map_runs,
            keys::MapRunIndexKey(shard, config::StableHash(record.execution_arn()),
                                 record.execution_arn()),
            "");
}

absl::StatusOr<ShardCore::FoundMapRun> ShardCore::FindMapRun(uint64_t routing_hash,
                                                             absl::string_view map_run_arn,
                                                             absl::string_view run_name,
                                                             absl::string_view child_name) {
  const bool child = !child_name.empty();
  auto not_found = [&]() {
    return child ? ExecutionDoesNotExist(absl::StrCat(map_run_arn, child_name))
                 : ResourceNotFound(map_run_arn);
  };
  FoundMapRun found;
  found.shard = config::ShardOfRoutingHash(routing_hash, options_.shard_count);
  if (!config::Owns(found.shard, options_.ordinal, options_.replicas)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "logical shard ", found.shard, " is not owned by shard server ", options_.ordinal,
        " of ", options_.replicas, " (check the shard map of the caller)"));
  }
  // Executions whose ARNs share the hash: one, but for a collision.
  std::vector<std::string> parents;
  const std::string prefix = keys::MapRunIndexPrefix(found.shard, routing_hash);
  RETURN_IF_ERROR(store_->Scan(families_.map_runs, prefix, "", false,
                               [&](std::string_view key, std::string_view) {
                                 parents.emplace_back(key.substr(prefix.size()));
                                 return true;
                               }));
  for (const std::string& parent : parents) {
    ASSIGN_OR_RETURN(auto record, Read<ExecutionRecord>(families_.executions,
                                                        keys::ResourceKey(found.shard, parent)));
    if (!record.has_value()) continue;
    const auto& runs = record->state().map_runs();
    for (int i = 0; i < runs.size(); ++i) {
      const internal::v1::MapRunSummary& run = runs.Get(i);
      if (child) {
        if (run.run_name() != run_name) continue;
        for (int c = 0; c < run.child_status_size(); ++c) {
          if (MapRunChildName(parent, run, c) == child_name) {
            found.run = i;
            found.child = c;
            break;
          }
        }
        if (found.child < 0) continue;
      } else if (run.map_run_arn() != map_run_arn) {
        continue;
      }
      found.run = i;
      found.record = std::move(*record);
      return found;
    }
  }
  return not_found();
}

absl::Status ShardCore::DescribeMapRun(const v1::DescribeMapRunRequest& request,
                                       v1::DescribeMapRunResponse* response) {
  ASSIGN_OR_RETURN(config::MapRunRef ref,
                   config::ParseMapRunArn(options_.arn_scope, request.map_run_arn()));
  ASSIGN_OR_RETURN(FoundMapRun found, FindMapRun(ref.routing_hash, request.map_run_arn()));
  DescribeMapRunSummary(found.record.state().map_runs(found.run), found.record.execution_arn(),
                        response);
  return absl::OkStatus();
}

absl::Status ShardCore::ListMapRuns(const v1::ListMapRunsRequest& request,
                                    v1::ListMapRunsResponse* response) {
  ASSIGN_OR_RETURN(uint32_t shard, OwnedShard(request.execution_arn()));
  ASSIGN_OR_RETURN(auto record, Read<ExecutionRecord>(
                                    families_.executions,
                                    keys::ResourceKey(shard, request.execution_arn())));
  if (!record.has_value()) return ExecutionDoesNotExist(request.execution_arn());
  return ListMapRunsOf(*record, request, response);
}

absl::Status ShardCore::ListMapRunExecutions(const v1::ListExecutionsRequest& request,
                                             v1::ListExecutionsResponse* response) {
  ASSIGN_OR_RETURN(config::MapRunRef ref,
                   config::ParseMapRunArn(options_.arn_scope, request.map_run_arn()));
  ASSIGN_OR_RETURN(FoundMapRun found, FindMapRun(ref.routing_hash, request.map_run_arn()));
  return ListMapRunChildren(found.record.execution_arn(), found.record.state().map_runs(found.run),
                            request, response);
}

absl::Status ShardCore::DescribeMapRunChild(uint64_t routing_hash,
                                            const v1::DescribeExecutionRequest& request,
                                            v1::DescribeExecutionResponse* response) {
  ASSIGN_OR_RETURN(auto names,
                   config::ExecutionNamesFromArn(options_.arn_scope, request.execution_arn()));
  auto found = FindMapRun(routing_hash, "", names.first, names.second);
  if (!found.ok()) {
    return absl::IsNotFound(found.status()) ? ExecutionDoesNotExist(request.execution_arn())
                                            : found.status();
  }
  const internal::v1::MapRunSummary& run = found->record.state().map_runs(found->run);
  const int index = found->child;
  const std::string status = MapRunChildStatusName(run.child_status(index));
  if (status.empty()) return ExecutionDoesNotExist(request.execution_arn());
  response->set_execution_arn(request.execution_arn());
  response->set_state_machine_arn(MapRunStateMachineArn(run));
  response->set_name(names.second);
  response->set_status(status);
  if (index < run.child_start_ms_size()) {
    *response->mutable_start_date() = ToProto(absl::FromUnixMillis(run.child_start_ms(index)));
  }
  if (index < run.child_stop_ms_size() && run.child_stop_ms(index) > 0) {
    *response->mutable_stop_date() = ToProto(absl::FromUnixMillis(run.child_stop_ms(index)));
  }
  // A child's input and output are not kept once it has started and ended.
  response->mutable_input_details()->set_included(false);
  response->set_map_run_arn(run.map_run_arn());
  const bool unsuccessful = status == "FAILED" || status == "TIMED_OUT" || status == "ABORTED";
  response->set_redrive_status(unsuccessful ? "REDRIVABLE_BY_MAP_RUN" : "NOT_REDRIVABLE");
  if (!unsuccessful) {
    response->set_redrive_status_reason(
        absl::StrCat("Execution is ", status, " and cannot be redriven"));
  }
  return absl::OkStatus();
}

absl::Status ShardCore::UpdateMapRun(const v1::UpdateMapRunRequest& request,
                                     v1::UpdateMapRunResponse*) {
  InflightSlot slot(this);
  ASSIGN_OR_RETURN(config::MapRunRef ref,
                   config::ParseMapRunArn(options_.arn_scope, request.map_run_arn()));
  const uint32_t shard = config::ShardOfRoutingHash(ref.routing_hash, options_.shard_count);
  ShardLockGuard lock(&LockOfHash(ref.routing_hash));
  ASSIGN_OR_RETURN(FoundMapRun found, FindMapRun(ref.routing_hash, request.map_run_arn()));
  ExecutionRecord& record = found.record;
  const internal::v1::MapRunSummary& run = record.state().map_runs(found.run);
  if (record.status() != "RUNNING" || run.status() != "RUNNING") {
    return absl::InvalidArgumentError(absl::StrCat(
        "ValidationException: Map Run ", request.map_run_arn(), " is ", run.status(),
        " and cannot be updated"));
  }
  asl::MapRunUpdate update;
  update.map_run_arn = request.map_run_arn();
  if (request.has_max_concurrency()) update.max_concurrency = request.max_concurrency();
  if (request.has_tolerated_failure_percentage()) {
    update.tolerated_failure_percentage = request.tolerated_failure_percentage();
  }
  if (request.has_tolerated_failure_count()) {
    update.tolerated_failure_count = request.tolerated_failure_count();
  }
  ASSIGN_OR_RETURN(auto definition,
                   LoadDefinition(record.state_machine_arn(), record.revision_id()));
  asl::ExecutionContext context = MakeContext(record, &record.state_machine(), codec_, ActivityExistsAnswer());
  asl::Interpreter interpreter(*definition, context);
  const PendingTasks before = PendingActivityTasks(record.state());
  ASSIGN_OR_RETURN(asl::Outcome outcome,
                   interpreter.UpdateMapRun(record.mutable_state(), update, options_.clock->Now()));
  storage::WriteBatch batch;
  RETURN_IF_ERROR(CommitTransition(shard, record, outcome, batch, &before));
  log::Info(kComponent, "map run updated", {{"map_run", request.map_run_arn()}});
  return absl::OkStatus();
}

}  // namespace stepflow::execution
