#include "services/execution/shard_core.h"

#include <algorithm>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/config/sharding.h"
#include "common/json/json.h"
#include "common/log/log.h"
#include "common/status/status_macros.h"
#include "google/protobuf/util/message_differencer.h"
#include "google/protobuf/util/time_util.h"
#include "services/execution/keys.h"

namespace stepflow::execution {
namespace {

using internal::v1::ActivityRecord;
using internal::v1::ActivityTask;
using internal::v1::ExecutionRecord;
using internal::v1::StateMachineRecord;

constexpr char kComponent[] = "shard";
constexpr int kDefaultHistoryPage = 100;
constexpr int kMaxHistoryPage = 1000;

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

}  // namespace

ShardCore::ShardCore(const ShardCoreOptions& options, Peers* peers)
    : options_(options),
      peers_(peers),
      codec_(options.token_secret),
      shard_mu_(new absl::Mutex[options.shard_count]) {}

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
  storage::StoreOptions store_options;
  store_options.path = options_.data_dir;
  store_options.column_families = {keys::kMeta,       keys::kStateMachines, keys::kActivities,
                                   keys::kDefinitions, keys::kExecutions,    keys::kHistory,
                                   keys::kVisibility,  keys::kTasks,         keys::kOutbox,
                                   keys::kTimers};
  ASSIGN_OR_RETURN(store_, storage::Store::Open(store_options));
  ASSIGN_OR_RETURN(families_.meta, store_->Family(keys::kMeta));
  ASSIGN_OR_RETURN(families_.state_machines, store_->Family(keys::kStateMachines));
  ASSIGN_OR_RETURN(families_.activities, store_->Family(keys::kActivities));
  ASSIGN_OR_RETURN(families_.definitions, store_->Family(keys::kDefinitions));
  ASSIGN_OR_RETURN(families_.executions, store_->Family(keys::kExecutions));
  ASSIGN_OR_RETURN(families_.history, store_->Family(keys::kHistory));
  ASSIGN_OR_RETURN(families_.visibility, store_->Family(keys::kVisibility));
  ASSIGN_OR_RETURN(families_.tasks, store_->Family(keys::kTasks));
  ASSIGN_OR_RETURN(families_.outbox, store_->Family(keys::kOutbox));
  ASSIGN_OR_RETURN(families_.timers, store_->Family(keys::kTimers));

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

  // Continue sequences after whatever is stored.
  uint64_t last_outbox = 0;
  RETURN_IF_ERROR(store_->Scan(families_.outbox, "", "", /*reverse=*/true,
                               [&](std::string_view key, std::string_view) {
                                 last_outbox = storage::DecodeUint64(key);
                                 return false;
                               }));
  next_outbox_seq_ = last_outbox + 1;
  RETURN_IF_ERROR(LoadTaskQueues());
  outbox_thread_ = std::thread([this] { OutboxLoop(); });
  timer_thread_ = std::thread([this] { TimerLoop(); });
  return absl::OkStatus();
}

absl::Status ShardCore::LoadTaskQueues() {
  uint64_t max_seq = 0;
  size_t loaded = 0;
  absl::MutexLock lock(&queues_mu_);
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
        queues_[task.activity_arn()].push_back(QueuedTask{seq, std::move(task)});
        ++loaded;
        return true;
      }));
  RETURN_IF_ERROR(parse_status);
  next_task_seq_ = max_seq + 1;
  if (loaded > 0) log::Info(kComponent, "recovered queued activity tasks", {{"count", loaded}});
  return absl::OkStatus();
}

void ShardCore::Shutdown() {
  {
    absl::MutexLock lock(&queues_mu_);
    shutting_down_ = true;
    queues_cv_.SignalAll();
  }
  {
    absl::MutexLock lock(&outbox_mu_);
    outbox_stop_ = true;
  }
  if (outbox_thread_.joinable()) outbox_thread_.join();
  {
    absl::MutexLock lock(&timers_mu_);
    timers_stop_ = true;
  }
  if (timer_thread_.joinable()) timer_thread_.join();
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
  absl::MutexLock lock(&ShardMutex(shard));
  ASSIGN_OR_RETURN(auto existing, Read<StateMachineRecord>(families_.state_machines, key));
  if (existing.has_value()) {
    // Creating the same state machine again is idempotent, as on AWS.
    if (!SameStateMachine(*existing, request)) {
      return absl::AlreadyExistsError(
          absl::StrCat("StateMachineAlreadyExists: State Machine Already Exists: '", arn, "'"));
    }
    response->set_state_machine_arn(arn);
    *response->mutable_creation_date() = existing->creation_date();
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
  record.set_revision_id(absl::StrCat(absl::ToUnixMicros(now)));
  *record.mutable_logging_configuration() = request.logging_configuration();
  *record.mutable_tracing_configuration() = request.tracing_configuration();
  storage::WriteBatch batch;
  batch.Put(families_.state_machines, key, record.SerializeAsString());
  batch.Put(families_.definitions, keys::DefinitionKey(arn, record.revision_id()),
            record.definition());
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
  ASSIGN_OR_RETURN(StateMachineRecord record, GetStateMachineRecord(request.state_machine_arn()));
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
  absl::MutexLock lock(&ShardMutex(shard));
  // Deleting is idempotent on AWS: an unknown ARN succeeds. Running
  // executions keep their own copy of the definition revision.
  storage::WriteBatch batch;
  batch.Delete(families_.state_machines, keys::ResourceKey(shard, arn));
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

absl::Status ShardCore::CreateActivity(const v1::CreateActivityRequest& request,
                                       v1::CreateActivityResponse* response) {
  const std::string arn = config::ActivityArn(options_.arn_scope, request.name());
  ASSIGN_OR_RETURN(uint32_t shard, OwnedShard(arn));
  const std::string key = keys::ResourceKey(shard, arn);
  absl::MutexLock lock(&ShardMutex(shard));
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
  absl::MutexLock lock(&ShardMutex(shard));
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

asl::ExecutionContext MakeContext(const ExecutionRecord& record, const StateMachineRecord* machine,
                                  const tasktoken::TaskTokenCodec& codec) {
  asl::ExecutionContext context;
  context.execution_arn = record.execution_arn();
  context.execution_name = record.name();
  context.execution_input = record.input();
  context.state_machine_arn = record.state_machine_arn();
  auto slash = record.state_machine_arn().rfind(':');
  context.state_machine_name = record.state_machine_arn().substr(slash + 1);
  if (machine != nullptr) context.role_arn = machine->role_arn();
  context.start_time = FromProto(record.start_date());
  std::string execution_arn = record.execution_arn();
  context.mint_task_token = [&codec, execution_arn](int64_t scheduled_event_id) {
    internal::v1::TaskTokenContent content;
    content.set_execution_arn(execution_arn);
    content.set_scheduled_event_id(scheduled_event_id);
    return codec.Encode(content);
  };
  return context;
}

}  // namespace

absl::Status ShardCore::CommitTransition(uint32_t shard, ExecutionRecord& record,
                                         asl::Outcome& outcome, storage::WriteBatch& batch) {
  const absl::Time now = options_.clock->Now();
  for (const v1::HistoryEvent& event : outcome.events) {
    batch.Put(families_.history, keys::HistoryKey(shard, record.execution_arn(), event.id()),
              event.SerializeAsString());
  }
  if (!outcome.closed_status.empty()) {
    record.set_status(outcome.closed_status);
    record.set_output(outcome.output);
    record.set_error(outcome.error);
    record.set_cause(outcome.cause);
    *record.mutable_stop_date() = ToProto(now);
  }
  batch.Put(families_.executions, keys::ResourceKey(shard, record.execution_arn()),
            record.SerializeAsString());
  for (asl::ActivityDispatch& dispatch : outcome.dispatches) {
    internal::v1::OutboxItem item;
    ActivityTask* task = item.mutable_enqueue_activity_task();
    task->set_activity_arn(dispatch.activity_arn);
    task->set_task_token(dispatch.task_token);
    task->set_input(std::move(dispatch.input));
    *task->mutable_scheduled_date() = ToProto(now);
    task->set_task_id(absl::StrCat(record.execution_arn(), "#", dispatch.scheduled_event_id));
    batch.Put(families_.outbox, keys::OutboxKey(next_outbox_seq_++), item.SerializeAsString());
  }
  absl::Time earliest = absl::InfiniteFuture();
  for (const asl::TimerRequest& timer : outcome.timers) {
    batch.Put(families_.timers, keys::TimerKey(timer.fire_at, record.execution_arn(), timer.timer_id),
              "");
    earliest = std::min(earliest, timer.fire_at);
  }
  RETURN_IF_ERROR(store_->Write(batch, /*sync=*/true));
  if (!outcome.dispatches.empty()) WakeOutbox();
  if (earliest != absl::InfiniteFuture()) WakeTimers(earliest);
  if (!outcome.closed_status.empty()) {
    log::Info(kComponent, "execution closed",
              {{"execution", record.execution_arn()}, {"status", record.status()}});
  }
  return absl::OkStatus();
}

absl::Status ShardCore::StartExecution(const internal::v1::StartExecutionShardRequest& request,
                                       v1::StartExecutionResponse* response) {
  const StateMachineRecord& machine = request.state_machine();
  const std::string execution_arn = config::ExecutionArn(
      options_.arn_scope, machine.name(), request.request().name());
  ASSIGN_OR_RETURN(uint32_t shard, OwnedShard(execution_arn));
  const std::string key = keys::ResourceKey(shard, execution_arn);
  absl::MutexLock lock(&ShardMutex(shard));
  ASSIGN_OR_RETURN(auto existing, Read<ExecutionRecord>(families_.executions, key));
  if (existing.has_value()) {
    // Execution names are idempotency keys: the same name and input while
    // the execution runs returns it again.
    if (existing->status() == "RUNNING" && existing->input() == request.request().input()) {
      response->set_execution_arn(execution_arn);
      *response->mutable_start_date() = existing->start_date();
      return absl::OkStatus();
    }
    return absl::AlreadyExistsError(
        absl::StrCat("ExecutionAlreadyExists: Execution Already Exists: '", execution_arn, "'"));
  }
  // Keep this revision's definition beside the execution: an update or
  // delete of the state machine must not change a running execution.
  storage::WriteBatch batch;
  const std::string definition_key =
      keys::DefinitionKey(machine.state_machine_arn(), machine.revision_id());
  ASSIGN_OR_RETURN(auto stored_definition, store_->Get(families_.definitions, definition_key));
  if (!stored_definition.has_value()) {
    batch.Put(families_.definitions, definition_key, machine.definition());
  }
  std::shared_ptr<const asl::Definition> definition;
  {
    auto parsed = asl::Definition::Parse(machine.definition());
    if (!parsed.ok()) return parsed.status();
    definition = *parsed;
    absl::MutexLock cache_lock(&definitions_mu_);
    definitions_.emplace(definition_key, definition);
  }

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

  asl::ExecutionContext context = MakeContext(record, &machine, codec_);
  asl::Interpreter interpreter(*definition, context);
  asl::Outcome outcome = interpreter.Start(record.mutable_state(), record.input(), now);
  batch.Put(families_.visibility,
            keys::VisibilityPrefix(machine.state_machine_arn()) +
                keys::VisibilitySortKey(now, execution_arn),
            "");
  RETURN_IF_ERROR(CommitTransition(shard, record, outcome, batch));
  log::Debug(kComponent, "execution started", {{"execution", execution_arn}});
  response->set_execution_arn(execution_arn);
  *response->mutable_start_date() = record.start_date();
  return absl::OkStatus();
}

absl::Status ShardCore::DescribeExecution(const v1::DescribeExecutionRequest& request,
                                          v1::DescribeExecutionResponse* response) {
  ASSIGN_OR_RETURN(uint32_t shard, OwnedShard(request.execution_arn()));
  ASSIGN_OR_RETURN(auto record, Read<ExecutionRecord>(
                                    families_.executions,
                                    keys::ResourceKey(shard, request.execution_arn())));
  if (!record.has_value()) return ExecutionDoesNotExist(request.execution_arn());
  response->set_execution_arn(record->execution_arn());
  response->set_state_machine_arn(record->state_machine_arn());
  response->set_name(record->name());
  response->set_status(record->status());
  *response->mutable_start_date() = record->start_date();
  if (record->has_stop_date()) *response->mutable_stop_date() = record->stop_date();
  response->set_input(record->input());
  response->mutable_input_details()->set_included(true);
  if (record->status() == "SUCCEEDED") {
    response->set_output(record->output());
    response->mutable_output_details()->set_included(true);
  }
  response->set_error(record->error());
  response->set_cause(record->cause());
  return absl::OkStatus();
}

absl::Status ShardCore::StopExecution(const v1::StopExecutionRequest& request,
                                      v1::StopExecutionResponse* response) {
  ASSIGN_OR_RETURN(uint32_t shard, OwnedShard(request.execution_arn()));
  const std::string key = keys::ResourceKey(shard, request.execution_arn());
  absl::MutexLock lock(&ShardMutex(shard));
  ASSIGN_OR_RETURN(auto record, Read<ExecutionRecord>(families_.executions, key));
  if (!record.has_value()) return ExecutionDoesNotExist(request.execution_arn());
  if (record->status() != "RUNNING") {
    // Stopping a closed execution changes nothing.
    *response->mutable_stop_date() = record->stop_date();
    return absl::OkStatus();
  }
  ASSIGN_OR_RETURN(auto definition,
                   LoadDefinition(record->state_machine_arn(), record->revision_id()));
  asl::ExecutionContext context = MakeContext(*record, nullptr, codec_);
  asl::Interpreter interpreter(*definition, context);
  asl::Outcome outcome = interpreter.Abort(record->mutable_state(), request.error(),
                                           request.cause(), options_.clock->Now());
  storage::WriteBatch batch;
  RETURN_IF_ERROR(CommitTransition(shard, *record, outcome, batch));
  *response->mutable_stop_date() = record->stop_date();
  return absl::OkStatus();
}

absl::Status ShardCore::GetExecutionHistory(const v1::GetExecutionHistoryRequest& request,
                                            v1::GetExecutionHistoryResponse* response) {
  const std::string& arn = request.execution_arn();
  ASSIGN_OR_RETURN(uint32_t shard, OwnedShard(arn));
  ASSIGN_OR_RETURN(auto record,
                   Read<ExecutionRecord>(families_.executions, keys::ResourceKey(shard, arn)));
  if (!record.has_value()) return ExecutionDoesNotExist(arn);
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
  const std::string prefix = keys::HistoryPrefix(shard, arn);
  const std::string start = start_id > 0 ? keys::HistoryKey(shard, arn, start_id) : "";
  absl::Status parse_status;
  int64_t continue_at = 0;
  RETURN_IF_ERROR(store_->Scan(
      families_.history, prefix, start, request.reverse_order(),
      [&](std::string_view, std::string_view value) {
        v1::HistoryEvent event;
        if (!event.ParseFromArray(value.data(), static_cast<int>(value.size()))) {
          parse_status = absl::DataLossError("corrupt history event");
          return false;
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
        return true;
      }));
  RETURN_IF_ERROR(parse_status);
  if (continue_at > 0) response->set_next_token(std::to_string(continue_at));
  return absl::OkStatus();
}

absl::Status ShardCore::ListExecutions(const internal::v1::ListShardRequest& request,
                                       internal::v1::ListExecutionsShardResponse* response) {
  const std::string prefix = keys::VisibilityPrefix(request.state_machine_arn());
  const int limit = request.limit() > 0 ? request.limit() : 100;
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
        if (!record->has_value()) return true;
        if (!request.status_filter().empty() && (*record)->status() != request.status_filter()) {
          return true;
        }
        (*record)->clear_state();
        *response->add_executions() = std::move(**record);
        return response->executions_size() < limit;
      }));
  return status;
}

// --- Activity task queues -------------------------------------------------

absl::Status ShardCore::EnqueueActivityTask(const ActivityTask& task) {
  ASSIGN_OR_RETURN(uint32_t shard, OwnedShard(task.activity_arn()));
  ASSIGN_OR_RETURN(auto activity, Read<ActivityRecord>(families_.activities,
                                                       keys::ResourceKey(shard, task.activity_arn())));
  if (!activity.has_value()) return ActivityDoesNotExist(task.activity_arn());
  absl::MutexLock lock(&queues_mu_);
  const std::string id_key = keys::TaskIdKey(shard, task.task_id());
  ASSIGN_OR_RETURN(auto seen, store_->Get(families_.tasks, id_key));
  if (seen.has_value()) return absl::OkStatus();  // a redelivered outbox item
  const uint64_t seq = next_task_seq_++;
  storage::WriteBatch batch;
  batch.Put(families_.tasks, keys::TaskKey(shard, task.activity_arn(), seq),
            task.SerializeAsString());
  batch.Put(families_.tasks, id_key, "");
  RETURN_IF_ERROR(store_->Write(batch, /*sync=*/true));
  queues_[task.activity_arn()].push_back(QueuedTask{seq, task});
  queues_cv_.SignalAll();
  return absl::OkStatus();
}

absl::Status ShardCore::GetActivityTask(const v1::GetActivityTaskRequest& request,
                                        v1::GetActivityTaskResponse* response,
                                        absl::Time deadline,
                                        const std::function<bool()>& cancelled) {
  const std::string& arn = request.activity_arn();
  ASSIGN_OR_RETURN(uint32_t shard, OwnedShard(arn));
  ASSIGN_OR_RETURN(auto activity,
                   Read<ActivityRecord>(families_.activities, keys::ResourceKey(shard, arn)));
  if (!activity.has_value()) return ActivityDoesNotExist(arn);

  QueuedTask taken;
  {
    absl::MutexLock lock(&queues_mu_);
    while (true) {
      if (shutting_down_) return absl::UnavailableError("the shard server is shutting down");
      auto it = queues_.find(arn);
      if (it != queues_.end() && !it->second.empty()) {
        // A poller whose caller went away must not take a task it cannot
        // hand over.
        if (cancelled && cancelled()) return absl::OkStatus();
        taken = std::move(it->second.front());
        it->second.pop_front();
        break;
      }
      const absl::Time now = absl::Now();
      if (now >= deadline || (cancelled && cancelled())) return absl::OkStatus();
      // Wake at least every 500 ms to notice cancelled calls.
      queues_cv_.WaitWithDeadline(&queues_mu_, std::min(deadline, now + absl::Milliseconds(500)));
    }
  }
  // Hand-over: the task leaves the backlog and the execution's shard learns
  // that it started, in one durable write.
  internal::v1::OutboxItem item;
  item.mutable_activity_started()->set_task_token(taken.task.task_token());
  item.mutable_activity_started()->set_worker_name(request.worker_name());
  storage::WriteBatch batch;
  batch.Delete(families_.tasks, keys::TaskKey(shard, arn, taken.seq));
  batch.Put(families_.outbox, keys::OutboxKey(next_outbox_seq_++), item.SerializeAsString());
  if (absl::Status status = store_->Write(batch, /*sync=*/true); !status.ok()) {
    absl::MutexLock lock(&queues_mu_);
    queues_[arn].push_front(std::move(taken));
    return status;
  }
  WakeOutbox();
  response->set_task_token(taken.task.task_token());
  response->set_input(taken.task.input());
  return absl::OkStatus();
}

// --- Task results ---------------------------------------------------------

absl::Status ShardCore::ApplyTaskResult(const std::string& task_token, bool ignore_stale,
                                        const TaskStep& step) {
  ASSIGN_OR_RETURN(internal::v1::TaskTokenContent content, codec_.Decode(task_token));
  ASSIGN_OR_RETURN(uint32_t shard, OwnedShard(content.execution_arn()));
  const std::string key = keys::ResourceKey(shard, content.execution_arn());
  absl::MutexLock lock(&ShardMutex(shard));
  ASSIGN_OR_RETURN(auto record, Read<ExecutionRecord>(families_.executions, key));
  if (!record.has_value()) {
    return absl::NotFoundError("TaskDoesNotExist: Task Does Not Exist: 'the execution is gone'");
  }
  if (record->status() != "RUNNING" ||
      !asl::Interpreter::AwaitsTask(record->state(), content.scheduled_event_id())) {
    return ignore_stale ? absl::OkStatus() : TaskNoLongerExists();
  }
  ASSIGN_OR_RETURN(auto definition,
                   LoadDefinition(record->state_machine_arn(), record->revision_id()));
  asl::ExecutionContext context = MakeContext(*record, nullptr, codec_);
  asl::Interpreter interpreter(*definition, context);
  auto outcome = step(interpreter, record->mutable_state(), options_.clock->Now());
  if (!outcome.ok()) {
    if (absl::IsFailedPrecondition(outcome.status())) {
      return ignore_stale ? absl::OkStatus() : TaskNoLongerExists();
    }
    return outcome.status();
  }
  storage::WriteBatch batch;
  return CommitTransition(shard, *record, *outcome, batch);
}

absl::Status ShardCore::RecordActivityStarted(
    const internal::v1::RecordActivityStartedRequest& request) {
  auto content = codec_.Decode(request.task_token());
  if (!content.ok()) return content.status();
  const int64_t scheduled = content->scheduled_event_id();
  return ApplyTaskResult(request.task_token(), /*ignore_stale=*/true,
                         [&](asl::Interpreter& interpreter, internal::v1::ExecutionState* state,
                             absl::Time now) {
                           return interpreter.ActivityStarted(state, scheduled,
                                                              request.worker_name(), now);
                         });
}

absl::Status ShardCore::ActivityScheduleFailed(
    const internal::v1::ActivityScheduleFailedRequest& request) {
  auto content = codec_.Decode(request.task_token());
  if (!content.ok()) return content.status();
  const int64_t scheduled = content->scheduled_event_id();
  return ApplyTaskResult(request.task_token(), /*ignore_stale=*/true,
                         [&](asl::Interpreter& interpreter, internal::v1::ExecutionState* state,
                             absl::Time now) {
                           return interpreter.ActivityDoesNotExist(state, scheduled,
                                                                   request.activity_arn(), now);
                         });
}

absl::Status ShardCore::SendTaskSuccess(const v1::SendTaskSuccessRequest& request) {
  ASSIGN_OR_RETURN(auto content, codec_.Decode(request.task_token()));
  const int64_t scheduled = content.scheduled_event_id();
  return ApplyTaskResult(request.task_token(), /*ignore_stale=*/false,
                         [&](asl::Interpreter& interpreter, internal::v1::ExecutionState* state,
                             absl::Time now) {
                           return interpreter.ActivitySucceeded(state, scheduled,
                                                                request.output(), now);
                         });
}

absl::Status ShardCore::SendTaskFailure(const v1::SendTaskFailureRequest& request) {
  ASSIGN_OR_RETURN(auto content, codec_.Decode(request.task_token()));
  const int64_t scheduled = content.scheduled_event_id();
  return ApplyTaskResult(request.task_token(), /*ignore_stale=*/false,
                         [&](asl::Interpreter& interpreter, internal::v1::ExecutionState* state,
                             absl::Time now) {
                           return interpreter.ActivityFailed(state, scheduled, request.error(),
                                                             request.cause(), now);
                         });
}

absl::Status ShardCore::SendTaskHeartbeat(const v1::SendTaskHeartbeatRequest& request) {
  ASSIGN_OR_RETURN(auto content, codec_.Decode(request.task_token()));
  const int64_t scheduled = content.scheduled_event_id();
  return ApplyTaskResult(request.task_token(), /*ignore_stale=*/false,
                         [&](asl::Interpreter& interpreter, internal::v1::ExecutionState* state,
                             absl::Time now) {
                           return interpreter.ActivityHeartbeat(state, scheduled, now);
                         });
}

// --- Timers ---------------------------------------------------------------

void ShardCore::WakeTimers(absl::Time fire_at) {
  absl::MutexLock lock(&timers_mu_);
  if (fire_at < next_timer_wake_) {
    next_timer_wake_ = fire_at;
    timers_changed_ = true;
  }
}

absl::Status ShardCore::FireTimer(const std::string& key) {
  // key: fire ms (8) | execution arn | 0 | timer id (8)
  const std::string execution_arn = key.substr(8, key.size() - 8 - 9);
  const int64_t timer_id = static_cast<int64_t>(storage::DecodeUint64(key.substr(key.size() - 8)));
  ASSIGN_OR_RETURN(uint32_t shard, OwnedShard(execution_arn));
  absl::MutexLock lock(&ShardMutex(shard));
  storage::WriteBatch batch;
  batch.Delete(families_.timers, key);
  ASSIGN_OR_RETURN(auto record, Read<ExecutionRecord>(families_.executions,
                                                      keys::ResourceKey(shard, execution_arn)));
  if (!record.has_value() || record->status() != "RUNNING") {
    return store_->Write(batch, /*sync=*/false);
  }
  ASSIGN_OR_RETURN(auto definition,
                   LoadDefinition(record->state_machine_arn(), record->revision_id()));
  asl::ExecutionContext context = MakeContext(*record, nullptr, codec_);
  asl::Interpreter interpreter(*definition, context);
  auto outcome = interpreter.TimerFired(record->mutable_state(), timer_id, options_.clock->Now());
  if (!outcome.ok()) {
    // A timer whose wait ended otherwise (the task answered, the branch
    // failed): nothing to do.
    return store_->Write(batch, /*sync=*/false);
  }
  return CommitTransition(shard, *record, *outcome, batch);
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
    {
      absl::MutexLock lock(&timers_mu_);
      // Sleep until the earliest known timer, an earlier one is armed, or
      // a second passed (the clock may move), or until stopped.
      const absl::Duration wait =
          std::min(absl::Seconds(1), next_timer_wake_ - options_.clock->Now());
      if (wait > absl::ZeroDuration()) {
        timers_changed_ = false;
        auto wake = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(timers_mu_) {
          return timers_stop_ || timers_changed_;
        };
        timers_mu_.AwaitWithTimeout(absl::Condition(&wake), wait);
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

void ShardCore::WakeOutbox() {
  absl::MutexLock lock(&outbox_mu_);
  outbox_wake_ = true;
}

void ShardCore::OutboxLoop() {
  absl::Duration backoff = absl::Milliseconds(50);
  while (true) {
    {
      absl::MutexLock lock(&outbox_mu_);
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(outbox_mu_) {
        return outbox_wake_ || outbox_stop_;
      };
      outbox_mu_.AwaitWithTimeout(absl::Condition(&ready), absl::Seconds(1));
      if (outbox_stop_) return;
      outbox_wake_ = false;
    }
    std::vector<std::pair<std::string, internal::v1::OutboxItem>> items;
    absl::Status scan = store_->Scan(families_.outbox, "", "", false,
                                     [&](std::string_view key, std::string_view value) {
                                       internal::v1::OutboxItem item;
                                       if (item.ParseFromArray(value.data(), static_cast<int>(value.size()))) {
                                         items.emplace_back(std::string(key), std::move(item));
                                       }
                                       return items.size() < 256;
                                     });
    if (!scan.ok()) {
      log::Error(kComponent, "outbox scan failed", {{"error", scan.ToString()}});
      continue;
    }
    storage::WriteBatch done;
    bool failed = false;
    bool new_reports = false;
    for (auto& [key, item] : items) {
      absl::Status status;
      if (item.has_enqueue_activity_task()) {
        const ActivityTask& task = item.enqueue_activity_task();
        status = peers_->EnqueueActivityTask(task);
        if (absl::IsNotFound(status)) {
          // The activity is gone: tell the execution, through the outbox
          // again so the report survives restarts.
          internal::v1::OutboxItem report;
          report.mutable_activity_schedule_failed()->set_task_token(task.task_token());
          report.mutable_activity_schedule_failed()->set_activity_arn(task.activity_arn());
          done.Put(families_.outbox, keys::OutboxKey(next_outbox_seq_++),
                   report.SerializeAsString());
          new_reports = true;
          status = absl::OkStatus();
        }
      } else if (item.has_activity_started()) {
        status = peers_->RecordActivityStarted(item.activity_started());
      } else if (item.has_activity_schedule_failed()) {
        status = peers_->ActivityScheduleFailed(item.activity_schedule_failed());
      }
      if (status.ok() || absl::IsInvalidArgument(status) || absl::IsNotFound(status)) {
        // Delivered, or refused for good (nothing to retry).
        if (!status.ok()) {
          log::Warn(kComponent, "outbox item refused", {{"error", status.ToString()}});
        }
        done.Delete(families_.outbox, key);
      } else {
        failed = true;
        log::Warn(kComponent, "outbox delivery failed; will retry",
                  {{"error", status.ToString()}});
      }
    }
    if (!done.empty()) {
      // Synced: it may carry new reports that must not be lost.
      if (absl::Status status = store_->Write(done, /*sync=*/true); !status.ok()) {
        log::Error(kComponent, "outbox cleanup failed", {{"error", status.ToString()}});
      }
      if (new_reports) WakeOutbox();
    }
    if (failed) {
      absl::MutexLock lock(&outbox_mu_);
      auto stopping = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(outbox_mu_) { return outbox_stop_; };
      outbox_mu_.AwaitWithTimeout(absl::Condition(&stopping), backoff);
      backoff = std::min(backoff * 2, absl::Seconds(5));
      outbox_wake_ = true;
    } else {
      backoff = absl::Milliseconds(50);
      if (items.size() >= 256) WakeOutbox();
    }
  }
}

}  // namespace stepflow::execution
