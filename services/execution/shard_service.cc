#include "services/execution/shard_service.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/config/sharding.h"
#include "common/kafka/client.h"
#include "common/log/log.h"
#include "common/rpc/blocking_pool.h"
#include "common/rpc/local_call.h"
#include "common/rpc/server.h"
#include "common/rpc/status.h"
#include "common/status/status_macros.h"
#include "services/eventbus/catalog.h"
#include "services/execution/peer_breaker.h"
#include "stepflow/internal/v1/shard.grpc.pb.h"

namespace stepflow::execution {
namespace {

namespace iv1 = ::stepflow::internal::v1;

// How long a produce to the event bus may take.
constexpr absl::Duration kBusCallTimeout = absl::Seconds(10);
constexpr absl::Duration kMaxLongPoll = absl::Seconds(60);
// The default event bus's topic (see services/eventbus).
constexpr char kDefaultBusTopicName[] = "stepflow.events.default";
// Express executions last 5 minutes at most on AWS; a synchronous start
// waits a little longer for the answer.
constexpr absl::Duration kMaxSyncWait = absl::Seconds(5 * 60 + 10);

// Delivers outbox items to the owning server: in process when that is us.
class GrpcPeers : public Peers {
 public:
  GrpcPeers(uint32_t shard_count, int ordinal, const std::vector<std::string>& addresses,
            absl::Duration call_timeout, prometheus::Registry* registry)
      : shard_count_(shard_count),
        ordinal_(ordinal),
        call_timeout_(call_timeout),
        breaker_(PeerNames(addresses), call_timeout, registry) {
    for (size_t i = 0; i < addresses.size(); ++i) {
      stubs_.push_back(static_cast<int>(i) == ordinal || addresses[i].empty()
                           ? nullptr
                           : iv1::ShardService::NewStub(rpc::MakeChannel(addresses[i])));
    }
    if (stubs_.empty()) stubs_.push_back(nullptr);
  }

  void Attach(ShardCore* local) override { local_ = local; }
  void set_producer(std::unique_ptr<kafka::Producer> producer) { producer_ = std::move(producer); }

  std::vector<absl::Status> PublishEvents(
      absl::Span<const iv1::PublishEvent* const> events) override {
    std::vector<absl::Status> outcomes(events.size());
    if (producer_ == nullptr) return outcomes;  // no bus configured
    std::vector<kafka::OutgoingRecord> records;
    records.reserve(events.size());
    for (const iv1::PublishEvent* event : events) {
      records.push_back({event->topic(), event->key(), event->value()});
    }
    std::vector<absl::StatusOr<kafka::RecordPosition>> produced =
        producer_->ProduceAll(records, kBusCallTimeout);
    for (size_t i = 0; i < produced.size(); ++i) {
      outcomes[i] = produced[i].status();
      // A topic not created yet (the eventbus creates it) is worth
      // retrying, unlike the outbox's other NOT_FOUND answers.
      if (absl::IsNotFound(outcomes[i])) {
        outcomes[i] = absl::UnavailableError(outcomes[i].message());
      }
    }
    return outcomes;
  }

  absl::Status StartChildExecution(const std::string& state_machine_arn,
                                   const std::string& execution_arn,
                                   iv1::StartExecutionShardRequest start,
                                   v1::StartExecutionResponse* response) override {
    start.set_resolve_arn(start.request().state_machine_arn());
    start.mutable_request()->set_state_machine_arn(state_machine_arn);
    RETURN_IF_ERROR(ResolveStart(&start));
    const int owner = OwnerOf(execution_arn);
    if (owner == ordinal_) return local_->StartExecution(start, response);
    return CallPeer(owner, &Stub::StartExecution, start, response);
  }

  // Whether ResolveStart answers without waiting: without a call to a peer
  // and from the cache of state machine records.
  bool ResolvesAtOnce(const iv1::StartExecutionShardRequest& start) {
    const std::string& arn = start.request().state_machine_arn();
    return OwnerOf(arn) == ordinal_ && local_->StateMachineCached(arn);
  }

  // Fills in the revision a start without one runs (see
  // StartExecutionShardRequest.resolve_arn), asking the state machine's
  // owner: this server or a peer.
  absl::Status ResolveStart(iv1::StartExecutionShardRequest* start) {
    ASSIGN_OR_RETURN(ShardCore::ResolvedStart resolved, Resolve(*start));
    *start->mutable_state_machine() = *resolved.machine;
    start->set_version_arn(std::move(resolved.version_arn));
    start->set_alias_arn(std::move(resolved.alias_arn));
    start->clear_resolve_arn();
    return absl::OkStatus();
  }

  // The same answer, apart from the request: a start runs with it as is,
  // without a copy of its request or of the state machine's record.
  absl::StatusOr<ShardCore::ResolvedStart> Resolve(const iv1::StartExecutionShardRequest& start) {
    iv1::ResolveStateMachineRequest lookup;
    lookup.set_arn(start.resolve_arn().empty() ? start.request().state_machine_arn()
                                               : start.resolve_arn());
    lookup.set_routing_key(start.request().name());
    const int owner = OwnerOf(start.request().state_machine_arn());
    if (owner == ordinal_) return local_->ResolveStart(lookup);
    iv1::ResolvedStateMachine answer;
    RETURN_IF_ERROR(CallPeer(owner, &Stub::ResolveStateMachine, lookup, &answer));
    ShardCore::ResolvedStart resolved;
    resolved.machine = std::make_shared<const iv1::StateMachineRecord>(
        std::move(*answer.mutable_state_machine()));
    resolved.version_arn = std::move(*answer.mutable_version_arn());
    resolved.alias_arn = std::move(*answer.mutable_alias_arn());
    return resolved;
  }

  absl::Status CompleteServiceTask(const iv1::ServiceTaskResult& result) override {
    auto content = tasktoken::TaskTokenCodec::Peek(result.task_token());
    if (!content.ok()) return content.status();
    int owner = OwnerOf(content->execution_arn());
    if (owner == ordinal_) return local_->CompleteServiceTask(result, /*sync=*/false);
    return CallPeer<iv1::ServiceTaskResultResponse>(owner, &Stub::CompleteServiceTask, result);
  }

  absl::Status StopExecution(const v1::StopExecutionRequest& request) override {
    int owner = OwnerOf(request.execution_arn());
    v1::StopExecutionResponse response;
    if (owner == ordinal_) return local_->StopExecution(request, &response);
    return CallPeer(owner, &Stub::StopExecution, request, &response);
  }

  absl::Status ProduceEvent(const iv1::PublishEvent& event) override {
    if (producer_ == nullptr) {
      return absl::FailedPreconditionError(
          "this cluster has no event bus (its shard servers run without --kafka-brokers)");
    }
    return producer_->ProduceSync(event.topic(), event.key(), event.value(), kBusCallTimeout);
  }

  absl::Status EnqueueActivityTask(const iv1::ActivityTask& task) override {
    int owner = OwnerOf(config::TaskQueuePartitionKey(task.activity_arn(), task.partition()));
    if (owner == ordinal_) return local_->EnqueueActivityTask(task, /*sync=*/false);
    return CallPeer<iv1::EnqueueActivityTaskResponse>(owner, &Stub::EnqueueActivityTask, task);
  }

  absl::Status ActivityScheduleFailed(const iv1::ActivityScheduleFailedRequest& request) override {
    auto content = tasktoken::TaskTokenCodec::Peek(request.task_token());
    if (!content.ok()) return content.status();
    int owner = OwnerOf(content->execution_arn());
    if (owner == ordinal_) return local_->ActivityScheduleFailed(request, /*sync=*/false);
    return CallPeer<iv1::ActivityScheduleFailedResponse>(owner, &Stub::ActivityScheduleFailed,
                                                         request);
  }

  absl::Status CancelActivityTask(const iv1::ActivityTask& task) override {
    int owner = OwnerOf(config::TaskQueuePartitionKey(task.activity_arn(), task.partition()));
    if (owner == ordinal_) return local_->CancelActivityTask(task, /*sync=*/false);
    return CallPeer<iv1::CancelActivityTaskResponse>(owner, &Stub::CancelActivityTask, task);
  }

  absl::Status CheckActivityExists(const std::string& activity_arn) override {
    int owner = OwnerOf(activity_arn);
    if (owner == ordinal_) return local_->CheckActivityExists(activity_arn);
    v1::DescribeActivityRequest request;
    request.set_activity_arn(activity_arn);
    return CallPeer<v1::DescribeActivityResponse>(owner, &Stub::DescribeActivity, request);
  }

  absl::Status RecordActivityStarted(const iv1::RecordActivityStartedRequest& request) override {
    auto content = tasktoken::TaskTokenCodec::Peek(request.task_token());
    if (!content.ok()) return content.status();
    int owner = OwnerOf(content->execution_arn());
    if (owner == ordinal_) return local_->RecordActivityStarted(request, /*sync=*/false);
    return CallPeer<iv1::RecordActivityStartedResponse>(owner, &Stub::RecordActivityStarted,
                                                        request);
  }

 private:
  using Stub = iv1::ShardService::Stub;

  static std::vector<std::string> PeerNames(const std::vector<std::string>& addresses) {
    std::vector<std::string> names;
    for (size_t i = 0; i < std::max<size_t>(addresses.size(), 1); ++i) {
      names.push_back(i < addresses.size() && !addresses[i].empty()
                          ? absl::StrCat("shard server ", i, " at ", addresses[i])
                          : absl::StrCat("shard server ", i));
    }
    return names;
  }

  // One call to shard server `owner`, bounded by call_timeout_; failed at
  // once while that server is taken for unresponsive (see PeerBreaker).
  template <typename Response, typename Request>
  absl::Status CallPeer(int owner,
                        grpc::Status (Stub::*method)(grpc::ClientContext*, const Request&,
                                                     Response*),
                        const Request& request, Response* response = nullptr) {
    ASSIGN_OR_RETURN(PeerBreaker::Ticket ticket, breaker_.Admit(owner));
    const absl::Time deadline = absl::Now() + call_timeout_;
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(deadline));
    Response ignored;
    absl::Status status = rpc::FromGrpcStatus((stubs_[owner].get()->*method)(
        &context, request, response != nullptr ? response : &ignored));
    breaker_.Settle(ticket, absl::IsDeadlineExceeded(status) && absl::Now() >= deadline);
    return status;
  }

  int OwnerOf(absl::string_view arn) const {
    int owner = static_cast<int>(config::ShardOf(arn, shard_count_) % stubs_.size());
    return stubs_[owner] == nullptr ? ordinal_ : owner;
  }

  uint32_t shard_count_;
  int ordinal_;
  const absl::Duration call_timeout_;
  PeerBreaker breaker_;
  std::vector<std::unique_ptr<iv1::ShardService::Stub>> stubs_;
  ShardCore* local_ = nullptr;
  std::unique_ptr<kafka::Producer> producer_;
};

// Each handler is a one-line hand-off to the core.
class ShardServiceImpl final : public iv1::ShardService::Service {
 public:
  ShardServiceImpl(ShardCore* core, GrpcPeers* peers) : core_(core), peers_(peers) {}

#define STEPFLOW_FORWARD(Method, Request, Response, call)                               \
  grpc::Status Method(grpc::ServerContext*, const Request* request, Response* response) \
      override {                                                                        \
    (void)response;                                                                     \
    return rpc::ToGrpcStatus(call);                                                     \
  }

  STEPFLOW_FORWARD(CreateStateMachine, v1::CreateStateMachineRequest,
                   v1::CreateStateMachineResponse, core_->CreateStateMachine(*request, response))
  STEPFLOW_FORWARD(DescribeStateMachine, v1::DescribeStateMachineRequest,
                   v1::DescribeStateMachineResponse,
                   core_->DescribeStateMachine(*request, response))
  STEPFLOW_FORWARD(DeleteStateMachine, v1::DeleteStateMachineRequest,
                   v1::DeleteStateMachineResponse, core_->DeleteStateMachine(*request))
  STEPFLOW_FORWARD(ListStateMachines, iv1::ListShardRequest, iv1::ListStateMachinesShardResponse,
                   core_->ListStateMachines(*request, response))
  STEPFLOW_FORWARD(DescribeExecution, v1::DescribeExecutionRequest,
                   v1::DescribeExecutionResponse, core_->DescribeExecution(*request, response))
  STEPFLOW_FORWARD(StopExecution, v1::StopExecutionRequest, v1::StopExecutionResponse,
                   core_->StopExecution(*request, response))
  STEPFLOW_FORWARD(GetExecutionHistory, v1::GetExecutionHistoryRequest,
                   v1::GetExecutionHistoryResponse, core_->GetExecutionHistory(*request, response))
  STEPFLOW_FORWARD(ListExecutions, iv1::ListShardRequest, iv1::ListExecutionsShardResponse,
                   core_->ListExecutions(*request, response))
  STEPFLOW_FORWARD(CreateActivity, v1::CreateActivityRequest, v1::CreateActivityResponse,
                   core_->CreateActivity(*request, response))
  STEPFLOW_FORWARD(DescribeActivity, v1::DescribeActivityRequest, v1::DescribeActivityResponse,
                   core_->DescribeActivity(*request, response))
  STEPFLOW_FORWARD(DeleteActivity, v1::DeleteActivityRequest, v1::DeleteActivityResponse,
                   core_->DeleteActivity(*request))
  STEPFLOW_FORWARD(ListActivities, iv1::ListShardRequest, iv1::ListActivitiesShardResponse,
                   core_->ListActivities(*request, response))
  STEPFLOW_FORWARD(EnqueueActivityTask, iv1::ActivityTask, iv1::EnqueueActivityTaskResponse,
                   core_->EnqueueActivityTask(*request))
  STEPFLOW_FORWARD(CancelActivityTask, iv1::ActivityTask, iv1::CancelActivityTaskResponse,
                   core_->CancelActivityTask(*request))
  STEPFLOW_FORWARD(RecordActivityStarted, iv1::RecordActivityStartedRequest,
                   iv1::RecordActivityStartedResponse, core_->RecordActivityStarted(*request))
  STEPFLOW_FORWARD(ActivityScheduleFailed, iv1::ActivityScheduleFailedRequest,
                   iv1::ActivityScheduleFailedResponse, core_->ActivityScheduleFailed(*request))
  // Task results may be called on a thread that must not block, as starts
  // (see StartExecution below).
#define STEPFLOW_TASK_RESULT(Method, Request, Response)                                   \
  grpc::Status Method(grpc::ServerContext* context, const Request* request, Response*)  \
      override {                                                                        \
    bool would_block = false;                                                           \
    absl::Status status =                                                               \
        core_->Method(*request, rpc::CallMayBlock(*context) ? nullptr : &would_block,    \
                      rpc::AnswerLaterOf(context));                                     \
    if (would_block) rpc::DeclineBlockingCall(context);                                 \
    return rpc::ToGrpcStatus(status);                                                   \
  }
  STEPFLOW_TASK_RESULT(SendTaskSuccess, v1::SendTaskSuccessRequest, v1::SendTaskSuccessResponse)
  STEPFLOW_TASK_RESULT(SendTaskFailure, v1::SendTaskFailureRequest, v1::SendTaskFailureResponse)
  STEPFLOW_TASK_RESULT(SendTaskHeartbeat, v1::SendTaskHeartbeatRequest,
                       v1::SendTaskHeartbeatResponse)
#undef STEPFLOW_TASK_RESULT
  STEPFLOW_FORWARD(CompleteServiceTask, iv1::ServiceTaskResult, iv1::ServiceTaskResultResponse,
                   core_->CompleteServiceTask(*request))
  STEPFLOW_FORWARD(UpdateStateMachine, v1::UpdateStateMachineRequest,
                   v1::UpdateStateMachineResponse, core_->UpdateStateMachine(*request, response))
  STEPFLOW_FORWARD(PublishStateMachineVersion, v1::PublishStateMachineVersionRequest,
                   v1::PublishStateMachineVersionResponse,
                   core_->PublishStateMachineVersion(*request, response))
  STEPFLOW_FORWARD(DeleteStateMachineVersion, v1::DeleteStateMachineVersionRequest,
                   v1::DeleteStateMachineVersionResponse,
                   core_->DeleteStateMachineVersion(*request))
  STEPFLOW_FORWARD(ListStateMachineVersions, v1::ListStateMachineVersionsRequest,
                   v1::ListStateMachineVersionsResponse,
                   core_->ListStateMachineVersions(*request, response))
  STEPFLOW_FORWARD(CreateStateMachineAlias, v1::CreateStateMachineAliasRequest,
                   v1::CreateStateMachineAliasResponse,
                   core_->CreateStateMachineAlias(*request, response))
  STEPFLOW_FORWARD(DescribeStateMachineAlias, v1::DescribeStateMachineAliasRequest,
                   v1::DescribeStateMachineAliasResponse,
                   core_->DescribeStateMachineAlias(*request, response))
  STEPFLOW_FORWARD(UpdateStateMachineAlias, v1::UpdateStateMachineAliasRequest,
                   v1::UpdateStateMachineAliasResponse,
                   core_->UpdateStateMachineAlias(*request, response))
  STEPFLOW_FORWARD(DeleteStateMachineAlias, v1::DeleteStateMachineAliasRequest,
                   v1::DeleteStateMachineAliasResponse, core_->DeleteStateMachineAlias(*request))
  STEPFLOW_FORWARD(ListStateMachineAliases, v1::ListStateMachineAliasesRequest,
                   v1::ListStateMachineAliasesResponse,
                   core_->ListStateMachineAliases(*request, response))
  STEPFLOW_FORWARD(DescribeStateMachineForExecution, v1::DescribeStateMachineForExecutionRequest,
                   v1::DescribeStateMachineForExecutionResponse,
                   core_->DescribeStateMachineForExecution(*request, response))
  STEPFLOW_FORWARD(RedriveExecution, v1::RedriveExecutionRequest, v1::RedriveExecutionResponse,
                   core_->RedriveExecution(*request, response))
  STEPFLOW_FORWARD(DescribeMapRun, v1::DescribeMapRunRequest, v1::DescribeMapRunResponse,
                   core_->DescribeMapRun(*request, response))
  STEPFLOW_FORWARD(ListMapRuns, v1::ListMapRunsRequest, v1::ListMapRunsResponse,
                   core_->ListMapRuns(*request, response))
  STEPFLOW_FORWARD(UpdateMapRun, v1::UpdateMapRunRequest, v1::UpdateMapRunResponse,
                   core_->UpdateMapRun(*request, response))
  STEPFLOW_FORWARD(ListMapRunExecutions, v1::ListExecutionsRequest, v1::ListExecutionsResponse,
                   core_->ListMapRunExecutions(*request, response))
#undef STEPFLOW_FORWARD

  // Runs a start (`run(request, resolved, would_block)`) with its state
  // machine resolved first when the request names none (`resolved` is null
  // when it names one). A caller that may not block gets `would_block` to
  // decline with; resolving that would wait (a peer owns the state machine,
  // or its record is not cached) declines before anything is done.
  template <typename Request, typename Run>
  grpc::Status StartResolved(grpc::ServerContext* context, const Request& request, Run run) {
    const bool may_block = rpc::CallMayBlock(*context);
    bool would_block = false;
    bool* declinable = may_block ? nullptr : &would_block;
    absl::Status status;
    if (StartOf(request).has_state_machine()) {
      status = run(request, nullptr, declinable);
    } else if (!may_block && !peers_->ResolvesAtOnce(StartOf(request))) {
      would_block = true;
    } else {
      absl::StatusOr<ShardCore::ResolvedStart> resolved = peers_->Resolve(StartOf(request));
      status = resolved.ok() ? run(request, &*resolved, declinable) : resolved.status();
    }
    if (would_block) rpc::DeclineBlockingCall(context);
    return rpc::ToGrpcStatus(status);
  }
  static const iv1::StartExecutionShardRequest& StartOf(const iv1::StartExecutionShardRequest& r) {
    return r;
  }
  static const iv1::StartExecutionShardRequest& StartOf(
      const iv1::StartSyncExecutionShardRequest& r) {
    return r.start();
  }

  // StartExecution and StartSyncExecution may be called on a thread that
  // must not block (see rpc::CallMayBlock): they then decline whatever
  // would wait, except that StartExecution leaves a start's fsync to the
  // group committer when the caller offers to take the answer later (see
  // rpc::AnswerLaterOf).
  grpc::Status StartExecution(grpc::ServerContext* context,
                              const iv1::StartExecutionShardRequest* request,
                              v1::StartExecutionResponse* response) override {
    return StartResolved(context, *request,
                         [&](const iv1::StartExecutionShardRequest& start,
                             const ShardCore::ResolvedStart* resolved, bool* would_block) {
                           return core_->StartExecution(start, response, would_block,
                                                        rpc::AnswerLaterOf(context), resolved);
                         });
  }

  grpc::Status ResolveStateMachine(grpc::ServerContext*,
                                   const iv1::ResolveStateMachineRequest* request,
                                   iv1::ResolvedStateMachine* response) override {
    auto resolved = core_->ResolveStateMachine(*request);
    if (!resolved.ok()) return rpc::ToGrpcStatus(resolved.status());
    *response = std::move(*resolved);
    return grpc::Status::OK;
  }

  grpc::Status GetStateMachineRecord(grpc::ServerContext*,
                                     const iv1::GetStateMachineRecordRequest* request,
                                     iv1::StateMachineRecord* response) override {
    auto record = core_->GetStateMachineRecord(request->state_machine_arn());
    if (!record.ok()) return rpc::ToGrpcStatus(record.status());
    *response = std::move(*record);
    return grpc::Status::OK;
  }

  // Both wait until the call's deadline at most (a sync start is also
  // bounded by kMaxSyncWait).
  grpc::Status StartSyncExecution(grpc::ServerContext* context,
                                  const iv1::StartSyncExecutionShardRequest* request,
                                  v1::DescribeExecutionResponse* response) override {
    const absl::Time deadline = std::min(absl::Now() + kMaxSyncWait, rpc::CallDeadline(*context));
    std::function<bool()> cancelled = rpc::CancelledLaterOf(*context);
    return StartResolved(context, *request,
                         [&](const iv1::StartSyncExecutionShardRequest& start,
                             const ShardCore::ResolvedStart* resolved, bool* would_block) {
                           return core_->StartSyncExecution(start, deadline, cancelled, response,
                                                            would_block, resolved,
                                                            rpc::AnswerLaterOf(context));
                         });
  }

  grpc::Status AwaitExecutionClosed(grpc::ServerContext* context,
                                    const iv1::AwaitExecutionClosedRequest* request,
                                    v1::DescribeExecutionResponse* response) override {
    const absl::Time deadline =
        std::min(absl::Now() + absl::Milliseconds(std::clamp<int64_t>(
                                   request->wait_ms(), 0, absl::ToInt64Milliseconds(kMaxSyncWait))),
                 rpc::CallDeadline(*context));
    v1::DescribeExecutionRequest describe;
    describe.set_execution_arn(request->execution_arn());
    describe.set_included_data(request->included_data());
    if (rpc::LocalServerContext::LaterAnswer* answer = rpc::AnswerLaterOf(context)) {
      core_->AwaitExecutionClosedLater(describe, deadline, rpc::CancelledLaterOf(*context),
                                       response, std::move(*answer));
      *answer = nullptr;
      return grpc::Status::OK;
    }
    return rpc::ToGrpcStatus(core_->AwaitExecutionClosed(
        describe, deadline, [context] { return rpc::CallCancelled(*context); }, response));
  }

  grpc::Status PollActivityTasks(grpc::ServerContext* context,
                                 const iv1::PollActivityTasksRequest* request,
                                 iv1::PollActivityTasksResponse* response) override {
    absl::Time deadline = absl::Now() + kMaxLongPoll;
    deadline = std::min(deadline, rpc::CallDeadline(*context));
    if (!rpc::CallMayBlock(*context)) {
      // A local caller that may not wait: the poll waits without a thread
      // when it can, or is declined to be made where waiting is allowed.
      const auto* local = dynamic_cast<const rpc::LocalServerContext*>(context);
      if (core_->PollActivityTasksLater(*request, response, deadline, local->CancelledLater(),
                                        rpc::AnswerLaterOf(context)) ==
          ShardCore::LaterPoll::kDeclined) {
        rpc::DeclineBlockingCall(context);
      }
      return grpc::Status::OK;
    }
    if (const auto* local = dynamic_cast<const rpc::LocalServerContext*>(context);
        local != nullptr && rpc::AnswerLaterOf(context) != nullptr) {
      // Declined above, and made again where it may wait: often only
      // because the activity was not looked up yet. Once it is, the poll
      // (or watch) waits in line without this thread; only a backlog keeps
      // it (a thread that waited would notice its caller going away only
      // every TaskQueues::kIdleRecheck).
      if (absl::Status known = core_->LookUpActivity(request->activity_arn()); !known.ok()) {
        return rpc::ToGrpcStatus(known);
      }
      if (core_->PollActivityTasksLater(*request, response, deadline, local->CancelledLater(),
                                        rpc::AnswerLaterOf(context)) !=
          ShardCore::LaterPoll::kDeclined) {
        return grpc::Status::OK;
      }
    }
    return rpc::ToGrpcStatus(core_->PollActivityTasks(
        *request, response, deadline, [context] { return rpc::CallCancelled(*context); }));
  }

 private:
  ShardCore* core_;
  GrpcPeers* peers_;
};

// The request and response types of a ShardService method.
template <typename Method>
struct ShardMethodTypes;
template <typename Req, typename Resp>
struct ShardMethodTypes<grpc::Status (iv1::ShardService::Service::*)(grpc::ServerContext*,
                                                                     const Req*, Resp*)> {
  using Request = Req;
  using Response = Resp;
};

// What the shard server serves over gRPC: every call on gRPC's callback
// API, run by ShardServiceImpl on a thread of a blocking pool (handlers
// wait for WAL fsyncs, executions' ends and long polls) — except starts,
// task results and activity polls, which run on the callback thread unless
// they would wait there (see InlineFirst). Handing a call to the pool costs less than the
// synchronous server's own hand-off to its thread pool, which costs about
// as much as a whole no-op call.
class PooledShardService final : public iv1::ShardService::CallbackService {
 public:
  explicit PooledShardService(ShardServiceImpl* impl) : impl_(impl) {}

// Serves Method with Pooled or InlineFirst.
#define STEPFLOW_SERVE(Method, How)                                                       \
  grpc::ServerUnaryReactor* Method(                                                       \
      grpc::CallbackServerContext* context,                                               \
      const ShardMethodTypes<decltype(&iv1::ShardService::Service::Method)>::Request* request, \
      ShardMethodTypes<decltype(&iv1::ShardService::Service::Method)>::Response* response)     \
      override {                                                                          \
    return How(context, request, response, &iv1::ShardService::Service::Method);          \
  }
#define STEPFLOW_POOLED(Method) STEPFLOW_SERVE(Method, Pooled)
#define STEPFLOW_INLINE_FIRST(Method) STEPFLOW_SERVE(Method, InlineFirst)
  STEPFLOW_POOLED(CreateStateMachine)
  STEPFLOW_POOLED(DescribeStateMachine)
  STEPFLOW_POOLED(DeleteStateMachine)
  STEPFLOW_POOLED(ListStateMachines)
  STEPFLOW_POOLED(DescribeExecution)
  STEPFLOW_POOLED(StopExecution)
  STEPFLOW_POOLED(GetExecutionHistory)
  STEPFLOW_POOLED(ListExecutions)
  STEPFLOW_POOLED(CreateActivity)
  STEPFLOW_POOLED(DescribeActivity)
  STEPFLOW_POOLED(DeleteActivity)
  STEPFLOW_POOLED(ListActivities)
  STEPFLOW_POOLED(EnqueueActivityTask)
  STEPFLOW_POOLED(CancelActivityTask)
  STEPFLOW_POOLED(RecordActivityStarted)
  STEPFLOW_POOLED(ActivityScheduleFailed)
  STEPFLOW_INLINE_FIRST(SendTaskSuccess)
  STEPFLOW_INLINE_FIRST(SendTaskFailure)
  STEPFLOW_INLINE_FIRST(SendTaskHeartbeat)
  STEPFLOW_INLINE_FIRST(StartExecution)
  STEPFLOW_POOLED(CompleteServiceTask)
  STEPFLOW_POOLED(UpdateStateMachine)
  STEPFLOW_POOLED(PublishStateMachineVersion)
  STEPFLOW_POOLED(DeleteStateMachineVersion)
  STEPFLOW_POOLED(ListStateMachineVersions)
  STEPFLOW_POOLED(CreateStateMachineAlias)
  STEPFLOW_POOLED(DescribeStateMachineAlias)
  STEPFLOW_POOLED(UpdateStateMachineAlias)
  STEPFLOW_POOLED(DeleteStateMachineAlias)
  STEPFLOW_POOLED(ListStateMachineAliases)
  STEPFLOW_POOLED(DescribeStateMachineForExecution)
  STEPFLOW_POOLED(RedriveExecution)
  STEPFLOW_POOLED(DescribeMapRun)
  STEPFLOW_POOLED(ListMapRuns)
  STEPFLOW_POOLED(UpdateMapRun)
  STEPFLOW_POOLED(ListMapRunExecutions)
  STEPFLOW_POOLED(ResolveStateMachine)
  STEPFLOW_POOLED(GetStateMachineRecord)
  STEPFLOW_INLINE_FIRST(StartSyncExecution)
  STEPFLOW_INLINE_FIRST(AwaitExecutionClosed)
  // A poll waits in its task queue without a thread when it can, as the
  // transitions above wait for their fsync: an idle remote long poll holds
  // no thread here.
  STEPFLOW_INLINE_FIRST(PollActivityTasks)
#undef STEPFLOW_POOLED
#undef STEPFLOW_INLINE_FIRST
#undef STEPFLOW_SERVE

 private:
  template <typename Request, typename Response>
  grpc::ServerUnaryReactor* Pooled(grpc::CallbackServerContext* context, const Request* request,
                                   Response* response,
                                   grpc::Status (iv1::ShardService::Service::*method)(
                                       grpc::ServerContext*, const Request*, Response*)) {
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    pool_.Run([this, context, request, response, method, reactor] {
      rpc::LocalServerContext local(absl::FromChrono(context->deadline()), context);
      reactor->Finish((impl_->*method)(&local, request, response));
    });
    return reactor;
  }

  // Made on the callback thread when it can be without waiting there (an
  // EXPRESS transition, or one whose only wait is its fsync, answered by
  // the group committer); on the pool otherwise, where it may wait for
  // what it declined for (a busy shard) but still leaves its fsync to be
  // answered later. Only for methods whose handler declines what would
  // wait (see rpc::LocalServerContext).
  template <typename Request, typename Response>
  grpc::ServerUnaryReactor* InlineFirst(grpc::CallbackServerContext* context,
                                        const Request* request, Response* response,
                                        grpc::Status (iv1::ShardService::Service::*method)(
                                            grpc::ServerContext*, const Request*, Response*)) {
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    {
      rpc::LocalServerContext local(absl::FromChrono(context->deadline()), context,
                                    /*may_block=*/false);
      local.OfferAnswerLater(
          [reactor](absl::Status status) { reactor->Finish(rpc::ToGrpcStatus(status)); });
      grpc::Status status = (impl_->*method)(&local, request, response);
      if (local.answered_later()) return reactor;
      if (!local.declined()) {
        reactor->Finish(status);
        return reactor;
      }
    }
    pool_.Run([this, context, request, response, method, reactor] {
      rpc::LocalServerContext local(absl::FromChrono(context->deadline()), context);
      local.OfferAnswerLater(
          [reactor](absl::Status status) { reactor->Finish(rpc::ToGrpcStatus(status)); });
      grpc::Status status = (impl_->*method)(&local, request, response);
      if (!local.answered_later()) reactor->Finish(status);
    });
    return reactor;
  }

  ShardServiceImpl* const impl_;
  // Last member: its destructor finishes the calls still running.
  rpc::BlockingPool pool_;
};

}  // namespace

class ShardServer::Impl {
 public:
  std::unique_ptr<GrpcPeers> peers;
  std::unique_ptr<ShardCore> core;
  std::unique_ptr<ShardServiceImpl> service;
  // Serves `service` over gRPC.
  std::unique_ptr<PooledShardService> pooled_service;
  std::unique_ptr<rpc::RunningServer> server;
};

ShardServer::ShardServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
ShardServer::~ShardServer() { Shutdown(); }

absl::StatusOr<std::unique_ptr<ShardServer>> ShardServer::Start(ShardServerOptions options) {
  auto impl = std::make_unique<Impl>();
  if (options.core.registry == nullptr) options.core.registry = options.registry;
  impl->peers = std::make_unique<GrpcPeers>(options.core.shard_count, options.core.ordinal,
                                            options.peers, options.peer_call_timeout,
                                            options.registry);
  if (!options.kafka_brokers.empty()) {
    ASSIGN_OR_RETURN(auto producer, kafka::Producer::Create(options.kafka_brokers));
    impl->peers->set_producer(std::move(producer));
    if (options.core.status_events_topic.empty()) {
      options.core.status_events_topic = kDefaultBusTopicName;
    }
    if (options.core.execution_logs_topic.empty()) {
      options.core.execution_logs_topic = eventbus::kExecutionLogsTopic;
    }
  }
  ASSIGN_OR_RETURN(impl->core, ShardCore::Open(options.core, impl->peers.get()));
  impl->service = std::make_unique<ShardServiceImpl>(impl->core.get(), impl->peers.get());
  if (!options.embedded) {
    rpc::ServerOptions server_options;
    server_options.listen_address = options.listen_address;
    server_options.component = "shard";
    server_options.registry = options.registry;
    impl->pooled_service = std::make_unique<PooledShardService>(impl->service.get());
    server_options.services = {impl->pooled_service.get()};
    ASSIGN_OR_RETURN(impl->server, rpc::RunningServer::Start(std::move(server_options)));
    log::Info("shard", "shard server serving",
              {{"address", impl->server->address()},
               {"ordinal", options.core.ordinal},
               {"replicas", options.core.replicas},
               {"shards", static_cast<int64_t>(options.core.shard_count)},
               {"data_dir", options.core.data_dir}});
  }
  return std::unique_ptr<ShardServer>(new ShardServer(std::move(impl)));
}

grpc::Service* ShardServer::service() { return impl_->service.get(); }
int ShardServer::port() const { return impl_->server ? impl_->server->port() : 0; }
std::string ShardServer::address() const {
  return impl_->server ? impl_->server->address() : "";
}

std::shared_ptr<grpc::Channel> ShardServer::InProcessChannel() {
  return impl_->server ? impl_->server->InProcessChannel() : nullptr;
}

void ShardServer::Shutdown() {
  if (!impl_) return;
  // Wake long polls first so the server can drain quickly.
  if (impl_->core) impl_->core->Shutdown();
  if (impl_->server) impl_->server->Shutdown(absl::Seconds(2));
}

}  // namespace stepflow::execution
