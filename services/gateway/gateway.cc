#include "services/gateway/gateway.h"

#include <grpcpp/alarm.h>
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <deque>
#include <list>
#include <optional>
#include <set>
#include <thread>

#include "absl/functional/function_ref.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "common/asl/definition.h"
#include "common/asl/interpreter.h"
#include "common/log/log.h"
#include "common/patterns/pattern.h"
#include "common/rpc/blocking_pool.h"
#include "common/rpc/local_call.h"
#include "common/rpc/server.h"
#include "common/rpc/status.h"
#include "common/status/status_macros.h"
#include "common/storage/store.h"
#include "common/tasktoken/task_token.h"
#include "google/protobuf/util/time_util.h"
#include "services/gateway/event_bridge.h"
#include "services/gateway/validation.h"
#include "stepflow/internal/v1/shard.grpc.pb.h"
#include "stepflow/v1/events.grpc.pb.h"
#include "stepflow/v1/states.grpc.pb.h"

namespace stepflow::gateway {
namespace {

namespace iv1 = ::stepflow::internal::v1;
using Stub = iv1::ShardService::Stub;
using ShardServiceBase = iv1::ShardService::Service;
using AsyncStub = iv1::ShardService::StubInterface::async_interface;

constexpr char kComponent[] = "gateway";
constexpr absl::Duration kDefaultDeadline = absl::Seconds(30);
// Activity polls: AWS holds an empty GetActivityTask for 60 s.
constexpr absl::Duration kLongPoll = absl::Seconds(60);
// A poll answers this long before the caller's deadline, and a shard
// server's poll answer may take this long to arrive.
constexpr absl::Duration kPollAnswerMargin = absl::Seconds(1);
// How long a take may spend handing its tasks over (a durable write and the
// executions' ActivityStarted) after its wait: generous, since a take cut
// short by its deadline after the hand-over would lose the tasks.
constexpr absl::Duration kTakeAnswerMargin = absl::Seconds(10);
// A long poll answered empty early is made again only when at least this
// much of it is left.
constexpr absl::Duration kRepollMinimum = absl::Milliseconds(10);
// How long a stream's internal poll lasts before it is renewed: also how
// long a stream that was cancelled, or a gateway shutting down, may wait
// for a poll that found nothing.
constexpr absl::Duration kStreamPollWindow = absl::Seconds(1);
// How long a poll of several servers waits before watching a server again
// that was unavailable.
constexpr absl::Duration kUnavailableRewatch = absl::Milliseconds(100);
constexpr int kMaxTasksPerPoll = 100;
// Polls a stream runs at once, at most (see TaskStream::Poll).
constexpr int kPollsPerStream = 8;
// A poll takes up to 1/kPollShare of a stream's unfilled credits.
constexpr int kPollShare = 2;
// AWS: traceHeader is at most 256 characters; Express executions are
// billed for 64 MB.
constexpr int kMaxTraceHeaderBytes = 256;
constexpr int64_t kExpressBilledMemoryMb = 64;
// Express executions last 5 minutes at most: a synchronous start waits that
// long (and a little more for the answer) unless its caller's deadline is
// sooner.
constexpr absl::Duration kMaxSyncWait = absl::Seconds(5 * 60 + 15);
constexpr int kDefaultPageSize = 100;
constexpr int kMaxPageSize = 1000;

int PageSize(int requested) {
  return requested > 0 ? std::min(requested, kMaxPageSize) : kDefaultPageSize;
}

absl::Status Unimplemented(absl::string_view method) {
  return absl::UnimplementedError(
      absl::StrCat(method, " is not implemented yet in this Stepflow release"));
}

// Sort key of an execution in listings: newest first, then by ARN.
std::string ExecutionSortKey(const iv1::ExecutionRecord& record) {
  std::string key;
  const int64_t nanos =
      record.start_date().seconds() * 1000000000 + record.start_date().nanos();
  storage::AppendUint64(&key, ~static_cast<uint64_t>(nanos));
  key.append(record.execution_arn());
  return key;
}

// A float as Java prints it in AWS's messages: 101 is "101.0".
std::string JavaFloat(float value) {
  if (value == std::floor(value) && std::fabs(value) < 1e7f) {
    return absl::StrFormat("%.1f", value);
  }
  return absl::StrCat(value);
}

absl::Status ValidateMaxResults(int max_results) {
  if (max_results < 0) {
    return ConstraintViolation("maxResults", max_results,
                               "Member must have value greater than or equal to 0");
  }
  if (max_results > kMaxPageSize) {
    return ConstraintViolation("maxResults", max_results,
                               "Member must have value less than or equal to 1000");
  }
  return absl::OkStatus();
}

// AWS's LoggingConfiguration rules: a known level, and exactly one log
// group for any level but OFF.
absl::Status ValidateLogging(const v1::LoggingConfiguration& logging) {
  const std::string& level = logging.level();
  if (!level.empty() && level != "ALL" && level != "ERROR" && level != "FATAL" &&
      level != "OFF") {
    return ConstraintViolation("loggingConfiguration.level", level,
                               "Member must satisfy enum value set: [ALL, ERROR, FATAL, OFF]");
  }
  const bool one_destination =
      logging.destinations_size() == 1 &&
      !logging.destinations(0).cloud_watch_logs_log_group().log_group_arn().empty();
  if ((!level.empty() && level != "OFF" && !one_destination) ||
      logging.destinations_size() > 1) {
    return absl::InvalidArgumentError(
        "InvalidLoggingConfiguration: Invalid Logging Configuration: Must specify exactly one "
        "Log Destination.");
  }
  return absl::OkStatus();
}

// ListExecutions' statusFilter and redriveFilter.
absl::Status ValidateExecutionFilters(const v1::ListExecutionsRequest& request) {
  static const std::set<std::string> kStatuses = {"RUNNING", "SUCCEEDED", "FAILED",
                                                  "TIMED_OUT", "ABORTED", "PENDING_REDRIVE"};
  if (!request.status_filter().empty() && !kStatuses.count(request.status_filter())) {
    return ConstraintViolation(
        "statusFilter", request.status_filter(),
        "Member must satisfy enum value set: [RUNNING, SUCCEEDED, FAILED, TIMED_OUT, "
        "ABORTED, PENDING_REDRIVE]");
  }
  if (!request.redrive_filter().empty() && request.redrive_filter() != "REDRIVEN" &&
      request.redrive_filter() != "NOT_REDRIVEN") {
    return ConstraintViolation("redriveFilter", request.redrive_filter(),
                               "Member must satisfy enum value set: [REDRIVEN, NOT_REDRIVEN]");
  }
  return absl::OkStatus();
}

absl::Status ValidateVersionDescription(bool publish, const std::string& description) {
  RETURN_IF_ERROR(ValidateLength("versionDescription", description, 0, 256));
  if (!publish && !description.empty()) {
    return absl::InvalidArgumentError(
        "ValidationException: Version description can only be set when publish is true");
  }
  return absl::OkStatus();
}

// One or two distinct versions of one state machine whose weights sum to
// 100; sets `state_machine_arn` to that state machine.
absl::Status ValidateRouting(
    const config::ArnScope& scope,
    const google::protobuf::RepeatedPtrField<v1::RoutingConfigurationListItem>& routing,
    std::string* state_machine_arn) {
  if (routing.empty() || routing.size() > 2) {
    return ConstraintViolation("routingConfiguration",
                               "Member must have length less than or equal to 2 and greater "
                               "than or equal to 1");
  }
  int total = 0;
  std::set<std::string> versions;
  for (const auto& item : routing) {
    ASSIGN_OR_RETURN(config::StateMachineRef ref,
                     config::ParseStateMachineRef(scope, item.state_machine_version_arn()));
    if (ref.version == 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "ValidationException: Routing configuration must contain state machine version "
          "ARNs: '", item.state_machine_version_arn(), "'"));
    }
    if (state_machine_arn->empty()) *state_machine_arn = ref.state_machine_arn;
    if (ref.state_machine_arn != *state_machine_arn) {
      return absl::InvalidArgumentError(
          "ValidationException: Routing configuration must contain versions of the same "
          "state machine");
    }
    if (!versions.insert(item.state_machine_version_arn()).second) {
      return absl::InvalidArgumentError(
          "ValidationException: Routing configuration must contain distinct versions");
    }
    if (item.weight() < 0 || item.weight() > 100) {
      return ConstraintViolation("routingConfiguration.member.weight",
                                 "Member must have value between 0 and 100");
    }
    total += item.weight();
  }
  if (total != 100) {
    return absl::InvalidArgumentError(
        "ValidationException: Sum of routing configuration weights must equal 100");
  }
  return absl::OkStatus();
}

// A client context for a call made on behalf of `parent` (a synchronous or
// a callback call, or none): it follows the parent's cancellation.
std::unique_ptr<grpc::ClientContext> ChildContextOf(const grpc::ServerContextBase* parent) {
  if (const auto* sync = dynamic_cast<const grpc::ServerContext*>(parent)) {
    return grpc::ClientContext::FromServerContext(*sync);
  }
  if (const auto* callback = dynamic_cast<const grpc::CallbackServerContext*>(parent)) {
    return grpc::ClientContext::FromCallbackServerContext(*callback);
  }
  return std::make_unique<grpc::ClientContext>();
}

}  // namespace

// One ShardService method, as the gateway calls it: through a stub
// (blocking, or with a callback), or directly on a shard service in this
// process.
template <typename Request, typename Response>
struct ShardMethod {
  grpc::Status (Stub::*remote)(grpc::ClientContext*, const Request&, Response*);
  grpc::Status (ShardServiceBase::*local)(grpc::ServerContext*, const Request*, Response*);
  void (AsyncStub::*remote_async)(grpc::ClientContext*, const Request*, Response*,
                                  std::function<void(grpc::Status)>);
};

template <typename Request, typename Response>
ShardMethod<Request, Response> MakeShardMethod(
    grpc::Status (Stub::*remote)(grpc::ClientContext*, const Request&, Response*),
    grpc::Status (ShardServiceBase::*local)(grpc::ServerContext*, const Request*, Response*),
    void (AsyncStub::*remote_async)(grpc::ClientContext*, const Request*, Response*,
                                    std::function<void(grpc::Status)>)) {
  return {remote, local, remote_async};
}

#define STEPFLOW_SHARD_METHOD(name) \
  MakeShardMethod(&Stub::name, &ShardServiceBase::name, &AsyncStub::name)

// How a call to a shard server that answered UNAVAILABLE (restarting, or
// not yet up) is made again: after 50 ms, doubling up to 1 s, while the
// call's deadline leaves room for the wait.
class UnavailableRetry {
 public:
  // The wait before the next attempt after `status`; none when the call
  // ends with `status`.
  std::optional<absl::Duration> After(const grpc::Status& status, absl::Time deadline,
                                      int ordinal) {
    if (status.error_code() != grpc::StatusCode::UNAVAILABLE || absl::Now() + next_ >= deadline) {
      return std::nullopt;
    }
    log::Debug(kComponent, "shard server unavailable; retrying",
               {{"ordinal", ordinal}, {"error", status.error_message()}});
    const absl::Duration wait = next_;
    next_ = std::min(next_ * 2, absl::Seconds(1));
    return wait;
  }

 private:
  absl::Duration next_ = absl::Milliseconds(50);
};

// What a call to a shard server does when the server is unavailable.
enum class OnUnavailable {
  kRetry,   // tries again, with backoff, until the call's deadline
  kAnswer,  // answers UNAVAILABLE (its caller has something else to do)
};

// Paces polls made again after empty answers. A server answers a poll
// empty early when its poller was woken for a backlog (the next poll takes
// it) or claimed for a task another poll took: the first quick empty answer
// in a row is polled again at once, the later ones after 10 ms, doubling up
// to 160 ms, so that a server that kept answering early could not make the
// gateway spin.
class RepollPacer {
 public:
  // The pause before the next poll, after one that took `took` to answer
  // with `tasks` tasks.
  absl::Duration Next(absl::Duration took, int tasks) {
    if (tasks > 0 || took >= kQuick) {
      quick_in_a_row_ = 0;
      return absl::ZeroDuration();
    }
    ++quick_in_a_row_;
    if (quick_in_a_row_ == 1) return absl::ZeroDuration();
    return absl::Milliseconds(10) * (1 << std::min(quick_in_a_row_ - 2, 4));
  }

 private:
  static constexpr absl::Duration kQuick = absl::Milliseconds(10);
  int quick_in_a_row_ = 0;
};

// Runs `next` after `pause`: at once when it is zero, else from an alarm
// kept in `*alarm` (released as it fires, which breaks the cycle of the
// alarm holding `next` holding its owner).
void AfterPause(absl::Duration pause, std::unique_ptr<grpc::Alarm>* alarm,
                std::function<void()> next) {
  if (pause <= absl::ZeroDuration()) return next();
  *alarm = std::make_unique<grpc::Alarm>();
  (*alarm)->Set(absl::ToChronoTime(absl::Now() + pause),
                [alarm, next = std::move(next)](bool) {
                  // gRPC keeps what runs this until it returns.
                  alarm->reset();
                  next();
                });
}

// A call to a shard server in another process made for a callback handler:
// no thread waits for it, and an UnavailableRetry waits on a timer. Deletes
// itself once it has called `done`.
template <typename Request, typename Response>
class RemoteShardCall {
 public:
  RemoteShardCall(AsyncStub* stub, const ShardMethod<Request, Response>& method,
                  const grpc::CallbackServerContext* parent, int ordinal, absl::Time deadline,
                  const Request& request, Response* response,
                  std::function<void(absl::Status)> done, OnUnavailable on_unavailable)
      : stub_(stub),
        method_(method.remote_async),
        parent_(parent),
        ordinal_(ordinal),
        deadline_(deadline),
        request_(request),
        response_(response),
        done_(std::move(done)),
        on_unavailable_(on_unavailable) {}

  void Attempt() {
    context_ = ChildContextOf(parent_);
    context_->set_deadline(absl::ToChronoTime(deadline_));
    (stub_->*method_)(context_.get(), &request_, response_,
                      [this](grpc::Status status) { Answered(std::move(status)); });
  }

 private:
  void Answered(grpc::Status status) {
    if (std::optional<absl::Duration> wait =
            on_unavailable_ == OnUnavailable::kRetry ? retry_.After(status, deadline_, ordinal_)
                                                     : std::nullopt) {
      // A fresh alarm per retry: this may run inside the last one's callback.
      retry_alarms_.emplace_back().Set(absl::ToChronoTime(absl::Now() + *wait),
                                       [this](bool) { Attempt(); });
      return;
    }
    std::function<void(absl::Status)> done = std::move(done_);
    delete this;
    done(rpc::FromGrpcStatus(status));
  }

  AsyncStub* const stub_;
  void (AsyncStub::*const method_)(grpc::ClientContext*, const Request*, Response*,
                                   std::function<void(grpc::Status)>);
  const grpc::CallbackServerContext* const parent_;
  const int ordinal_;
  const absl::Time deadline_;
  const Request& request_;
  Response* const response_;
  std::function<void(absl::Status)> done_;
  const OnUnavailable on_unavailable_;
  std::unique_ptr<grpc::ClientContext> context_;
  UnavailableRetry retry_;
  std::list<grpc::Alarm> retry_alarms_;
};

// Routes calls to shard servers and retries the unavailable ones. A shard
// server in this process is called directly (see common/rpc/local_call.h).
class ShardRouter {
 public:
  ShardRouter(const config::ShardMap& map,
              const std::vector<std::shared_ptr<grpc::Channel>>& channels,
              const std::vector<ShardServiceBase*>& local_services)
      : map_(map) {
    for (size_t i = 0; i < map.servers().size(); ++i) {
      stubs_.push_back(iv1::ShardService::NewStub(
          i < channels.size() && channels[i] != nullptr ? channels[i]
                                                         : rpc::MakeChannel(map.servers()[i])));
      local_services_.push_back(i < local_services.size() ? local_services[i] : nullptr);
    }
  }

  size_t size() const { return stubs_.size(); }
  Stub* stub(int ordinal) const { return stubs_[ordinal].get(); }
  int OwnerOf(absl::string_view key) const { return map_.OrdinalFor(key); }
  // The server of the shard a routing hash (config::RoutableId) names.
  int OwnerOfRoutingHash(uint64_t hash) const {
    return map_.OrdinalForShard(config::ShardOfRoutingHash(hash, map_.shard_count()));
  }

  // Calls `method` on server `ordinal`, retrying UNAVAILABLE with backoff
  // until `deadline`.
  // `parent` is the public call being served: its cancellation (a client
  // that went away) cancels the call to the shard server too.
  template <typename Request, typename Response>
  absl::Status Call(const grpc::ServerContextBase* parent, int ordinal, absl::Time deadline,
                    const ShardMethod<Request, Response>& method, const Request& request,
                    Response* response) {
    if (ShardServiceBase* local = local_services_[ordinal]; local != nullptr) {
      rpc::LocalServerContext context(deadline, parent);
      return rpc::FromGrpcStatus((local->*method.local)(&context, &request, response));
    }
    UnavailableRetry retry;
    while (true) {
      std::unique_ptr<grpc::ClientContext> context = ChildContextOf(parent);
      context->set_deadline(absl::ToChronoTime(deadline));
      grpc::Status status =
          (stubs_[ordinal].get()->*method.remote)(context.get(), request, response);
      std::optional<absl::Duration> wait = retry.After(status, deadline, ordinal);
      if (!wait.has_value()) return rpc::FromGrpcStatus(status);
      absl::SleepFor(*wait);
    }
  }

  // How a shard service in this process is called for a callback handler.
  enum class LocalCall {
    // On a thread of the blocking pool: its handlers may wait for a WAL
    // fsync or an execution's end.
    kPooled,
    // On the handler's own thread, unless the shard's handler declines
    // (see rpc::LocalServerContext); then on a thread of the blocking pool.
    // Either way the handler may answer later (a start answered by the
    // shard's group committer once durable).
    kInlineUnlessDeclined,
  };

  // Calls `method` on server `ordinal` for a callback handler, without
  // blocking its thread, and calls `done` with the answer. `request` and
  // `response` must stay valid until then.
  template <typename Request, typename Response>
  void CallAsync(const grpc::CallbackServerContext* parent, int ordinal, absl::Time deadline,
                 const ShardMethod<Request, Response>& method, const Request& request,
                 Response* response, std::function<void(absl::Status)> done,
                 LocalCall local_call = LocalCall::kPooled,
                 OnUnavailable on_unavailable = OnUnavailable::kRetry) {
    if (ShardServiceBase* local = local_services_[ordinal]; local != nullptr) {
      if (local_call == LocalCall::kInlineUnlessDeclined) {
        // The handler may also answer later, from the shard's group
        // committer, instead of declining a start that would wait for its
        // fsync.
        auto answer = std::make_shared<std::function<void(absl::Status)>>(std::move(done));
        rpc::LocalServerContext context(deadline, parent, /*may_block=*/false);
        context.OfferAnswerLater([answer](absl::Status status) { (*answer)(std::move(status)); });
        grpc::Status status = (local->*method.local)(&context, &request, response);
        if (context.answered_later()) return;
        if (!context.declined()) return (*answer)(rpc::FromGrpcStatus(status));
        done = std::move(*answer);
      }
      local_calls_.Run([local, call = method.local, parent, deadline, &request, response,
                        local_call, done = std::move(done)]() mutable {
        rpc::LocalServerContext context(deadline, parent);
        if (local_call == LocalCall::kPooled) {
          return done(rpc::FromGrpcStatus((local->*call)(&context, &request, response)));
        }
        // Declined: here it may wait for its shard, but its fsync is still
        // the committer's to wait for, not this thread's.
        auto answer = std::make_shared<std::function<void(absl::Status)>>(std::move(done));
        context.OfferAnswerLater([answer](absl::Status status) { (*answer)(std::move(status)); });
        grpc::Status status = (local->*call)(&context, &request, response);
        if (!context.answered_later()) (*answer)(rpc::FromGrpcStatus(status));
      });
      return;
    }
    (new RemoteShardCall<Request, Response>(stubs_[ordinal]->async(), method, parent, ordinal,
                                            deadline, request, response, std::move(done),
                                            on_unavailable))
        ->Attempt();
  }

  template <typename Request, typename Response>
  absl::Status CallOwner(const grpc::ServerContextBase* parent, absl::string_view key,
                         absl::Time deadline, const ShardMethod<Request, Response>& method,
                         const Request& request, Response* response) {
    return Call(parent, OwnerOf(key), deadline, method, request, response);
  }

 private:
  config::ShardMap map_;
  std::vector<std::unique_ptr<Stub>> stubs_;
  // By ordinal; null for servers reached through stubs_.
  std::vector<ShardServiceBase*> local_services_;
  // Last member: its destructor finishes the local calls still running.
  rpc::BlockingPool local_calls_;
};

namespace {

absl::Time DeadlineOf(const grpc::ServerContextBase* context, absl::Duration fallback) {
  absl::Time deadline = absl::FromChrono(context->deadline());
  return std::min(deadline, absl::Now() + fallback);
}

// The most frequent calls, which only forward to one shard server, run on
// gRPC's callback API: handing each call to a thread of the synchronous
// server's pool costs about as much as a whole no-op call.
using StepFunctionsServiceBase = v1::StepFunctions::WithCallbackMethod_StartExecution<
    v1::StepFunctions::WithCallbackMethod_StartSyncExecution<
        v1::StepFunctions::WithCallbackMethod_DescribeExecution<
            v1::StepFunctions::WithCallbackMethod_SendTaskSuccess<
                v1::StepFunctions::WithCallbackMethod_SendTaskFailure<
                    v1::StepFunctions::WithCallbackMethod_SendTaskHeartbeat<
                        v1::StepFunctions::WithCallbackMethod_StreamActivityTasks<
                            v1::StepFunctions::WithCallbackMethod_GetActivityTask<
                                v1::StepFunctions::WithCallbackMethod_GetActivityTasks<
                                    v1::StepFunctions::Service>>>>>>>>>;

// Serves a callback call: `body` either fails, which ends the call with its
// status, or hands the call to ShardRouter::CallAsync with Finisher(reactor)
// and succeeds.
template <typename Body>
grpc::ServerUnaryReactor* Serve(grpc::CallbackServerContext* context, Body body) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (absl::Status status = body(reactor); !status.ok()) {
    reactor->Finish(rpc::ToGrpcStatus(status));
  }
  return reactor;
}

std::function<void(absl::Status)> Finisher(grpc::ServerUnaryReactor* reactor) {
  return [reactor](absl::Status status) { reactor->Finish(rpc::ToGrpcStatus(status)); };
}

class StepFunctionsService final : public StepFunctionsServiceBase {
 public:
  StepFunctionsService(const GatewayOptions& options, ShardRouter* router)
      : options_(options), router_(router) {}

  grpc::Status CreateStateMachine(grpc::ServerContext* context,
                                  const v1::CreateStateMachineRequest* request,
                                  v1::CreateStateMachineResponse* response) override {
    return rpc::ToGrpcStatus([&]() -> absl::Status {
      RETURN_IF_ERROR(config::ValidateResourceName(request->name()));
      if (!request->type().empty() && request->type() != "STANDARD" &&
          request->type() != "EXPRESS") {
        return ConstraintViolation("type", request->type(),
                                   "Member must satisfy enum value set: [STANDARD, EXPRESS]");
      }
      RETURN_IF_ERROR(ValidateLength("definition", request->definition(), 1, kMaxDefinitionBytes));
      ASSIGN_OR_RETURN(std::shared_ptr<const asl::Definition> definition,
                       asl::Definition::Parse(request->definition()));
      if (request->type() == "EXPRESS") {
        std::vector<asl::Diagnostic> express = asl::ExpressDiagnostics(*definition);
        if (!express.empty()) {
          return absl::InvalidArgumentError(
              absl::StrCat("InvalidDefinition: ", asl::InvalidDefinitionMessage({express[0]})));
        }
      }
      RETURN_IF_ERROR(ValidateVersionDescription(request->publish(), request->version_description()));
      RETURN_IF_ERROR(ValidateLogging(request->logging_configuration()));
      const std::string arn = config::StateMachineArn(options_.arn_scope, request->name());
      return router_->CallOwner(context, arn, DeadlineOf(context, kDefaultDeadline),
                                STEPFLOW_SHARD_METHOD(CreateStateMachine), *request, response);
    }());
  }

  grpc::Status DescribeStateMachine(grpc::ServerContext* context,
                                    const v1::DescribeStateMachineRequest* request,
                                    v1::DescribeStateMachineResponse* response) override {
    return rpc::ToGrpcStatus([&]() -> absl::Status {
      ASSIGN_OR_RETURN(config::StateMachineRef ref,
                       config::ParseStateMachineRef(options_.arn_scope,
                                                    request->state_machine_arn()));
      return router_->CallOwner(context, ref.state_machine_arn,
                                DeadlineOf(context, kDefaultDeadline),
                                STEPFLOW_SHARD_METHOD(DescribeStateMachine), *request, response);
    }());
  }

  grpc::Status DeleteStateMachine(grpc::ServerContext* context,
                                  const v1::DeleteStateMachineRequest* request,
                                  v1::DeleteStateMachineResponse* response) override {
    return rpc::ToGrpcStatus([&]() -> absl::Status {
      RETURN_IF_ERROR(
          config::StateMachineNameFromArn(options_.arn_scope, request->state_machine_arn())
              .status());
      return router_->CallOwner(context, request->state_machine_arn(),
                                DeadlineOf(context, kDefaultDeadline),
                                STEPFLOW_SHARD_METHOD(DeleteStateMachine), *request, response);
    }());
  }

  grpc::Status ListStateMachines(grpc::ServerContext* context,
                                 const v1::ListStateMachinesRequest* request,
                                 v1::ListStateMachinesResponse* response) override {
    return rpc::ToGrpcStatus([&]() -> absl::Status {
      iv1::ListShardRequest shard_request;
      RETURN_IF_ERROR(DecodePageToken(request->next_token(), shard_request.mutable_after_key()));
      const int page = PageSize(request->max_results());
      shard_request.set_limit(page + 1);
      std::vector<iv1::StateMachineRecord> all;
      const absl::Time deadline = DeadlineOf(context, kDefaultDeadline);
      for (size_t i = 0; i < router_->size(); ++i) {
        iv1::ListStateMachinesShardResponse part;
        RETURN_IF_ERROR(router_->Call(context, static_cast<int>(i), deadline,
                                      STEPFLOW_SHARD_METHOD(ListStateMachines), shard_request,
                                      &part));
        for (auto& record : *part.mutable_state_machines()) all.push_back(std::move(record));
      }
      std::sort(all.begin(), all.end(), [](const auto& a, const auto& b) { return a.name() < b.name(); });
      for (int i = 0; i < static_cast<int>(all.size()) && i < page; ++i) {
        auto* item = response->add_state_machines();
        item->set_state_machine_arn(all[i].state_machine_arn());
        item->set_name(all[i].name());
        item->set_type(all[i].type());
        *item->mutable_creation_date() = all[i].creation_date();
      }
      if (static_cast<int>(all.size()) > page) {
        response->set_next_token(EncodePageToken(all[page - 1].name()));
      }
      return absl::OkStatus();
    }());
  }

  grpc::Status ValidateStateMachineDefinition(
      grpc::ServerContext*, const v1::ValidateStateMachineDefinitionRequest* request,
      v1::ValidateStateMachineDefinitionResponse* response) override {
    return rpc::ToGrpcStatus([&]() -> absl::Status {
      RETURN_IF_ERROR(ValidateLength("definition", request->definition(), 1, kMaxDefinitionBytes));
      if (!request->type().empty() && request->type() != "STANDARD" &&
          request->type() != "EXPRESS") {
        return ConstraintViolation("type", request->type(),
                                   "Member must satisfy enum value set: [STANDARD, EXPRESS]");
      }
      const int limit = request->max_results() > 0 ? request->max_results() : 100;
      std::vector<asl::Diagnostic> diagnostics = asl::ValidateDefinition(request->definition());
      if (diagnostics.empty() && request->type() == "EXPRESS") {
        if (auto definition = asl::Definition::Parse(request->definition()); definition.ok()) {
          diagnostics = asl::ExpressDiagnostics(**definition);
        }
      }
      bool any_error = false;
      for (const asl::Diagnostic& d : diagnostics) {
        any_error |= d.severity == "ERROR";
        if (request->severity() == "ERROR" && d.severity != "ERROR") continue;
        if (response->diagnostics_size() == limit) {
          response->set_truncated(true);
          break;
        }
        auto* out = response->add_diagnostics();
        out->set_severity(d.severity);
        out->set_code(d.code);
        out->set_message(d.message);
        out->set_location(d.location);
      }
      response->set_result(any_error ? "FAIL" : "OK");
      return absl::OkStatus();
    }());
  }

  grpc::Status TestState(grpc::ServerContext*, const v1::TestStateRequest* request,
                         v1::TestStateResponse* response) override {
    return rpc::ToGrpcStatus([&]() -> absl::Status {
      RETURN_IF_ERROR(ValidateLength("definition", request->definition(), 1, kMaxDefinitionBytes));
      RETURN_IF_ERROR(ValidateLength("input", request->input(), 0, kMaxPayloadBytes));
      static const std::set<std::string> kLevels = {"", "INFO", "DEBUG", "TRACE"};
      if (!kLevels.count(request->inspection_level())) {
        return ConstraintViolation("inspectionLevel", request->inspection_level(),
                                   "Member must satisfy enum value set: [INFO, DEBUG, TRACE]");
      }
      asl::ExecutionContext context;
      context.has_redrive_count = false;  // as AWS's TestState context
      context.execution_arn = config::ExecutionArn(options_.arn_scope, "TestState", "test-state");
      context.execution_name = "test-state";
      context.execution_input = request->input().empty() ? "{}" : request->input();
      context.state_machine_arn = config::StateMachineArn(options_.arn_scope, "TestState");
      context.state_machine_name = "TestState";
      context.role_arn = request->role_arn();
      context.start_time = absl::Now();
      ASSIGN_OR_RETURN(*response, asl::TestState(*request, context));
      return absl::OkStatus();
    }());
  }

  grpc::ServerUnaryReactor* StartExecution(grpc::CallbackServerContext* context,
                                           const v1::StartExecutionRequest* request,
                                           v1::StartExecutionResponse* response) override {
    return Serve(context, [&](grpc::ServerUnaryReactor* reactor) -> absl::Status {
      ASSIGN_OR_RETURN(config::StateMachineRef ref,
                       config::ParseStateMachineRef(options_.arn_scope,
                                                    request->state_machine_arn()));
      auto shard_request = std::make_shared<iv1::StartExecutionShardRequest>();
      *shard_request->mutable_request() = *request;
      v1::StartExecutionRequest& start = *shard_request->mutable_request();
      if (start.name().empty()) {
        start.set_name(options_.new_execution_name());
        shard_request->set_name_generated(true);
      }
      RETURN_IF_ERROR(config::ValidateResourceName(start.name()));
      if (start.input().empty()) start.set_input("{}");
      RETURN_IF_ERROR(ValidateJsonPayload("input", start.input(), "InvalidExecutionInput",
                                          kMaxPayloadBytes));
      // The execution's owner has the catalog owner pick the revision: the
      // state machine's current one, a version's, or one of an alias's
      // versions by the name's hash.
      shard_request->set_resolve_arn(request->state_machine_arn());
      start.set_state_machine_arn(ref.state_machine_arn);
      const std::string execution_arn =
          config::ExecutionArn(options_.arn_scope, ref.name, start.name());
      router_->CallAsync(context, router_->OwnerOf(execution_arn),
                         DeadlineOf(context, kDefaultDeadline),
                         STEPFLOW_SHARD_METHOD(StartExecution), *shard_request, response,
                         [reactor, shard_request](absl::Status status) {
                           reactor->Finish(rpc::ToGrpcStatus(status));
                         },
                         ShardRouter::LocalCall::kInlineUnlessDeclined);
      return absl::OkStatus();
    });
  }

  // Starts an EXPRESS execution and answers once it has closed. The shard
  // that owns the execution starts it and waits for the transition that
  // closes it, in one call; when the caller's deadline passes first the
  // call answers DEADLINE_EXCEEDED and the execution runs on.
  grpc::ServerUnaryReactor* StartSyncExecution(grpc::CallbackServerContext* context,
                                               const v1::StartSyncExecutionRequest* request,
                                               v1::StartSyncExecutionResponse* response) override {
    return Serve(context, [&](grpc::ServerUnaryReactor* reactor) -> absl::Status {
      ASSIGN_OR_RETURN(config::StateMachineRef ref,
                       config::ParseStateMachineRef(options_.arn_scope,
                                                    request->state_machine_arn()));
      auto shard_request = std::make_shared<iv1::StartSyncExecutionShardRequest>();
      iv1::StartExecutionShardRequest& shard_start = *shard_request->mutable_start();
      v1::StartExecutionRequest& start = *shard_start.mutable_request();
      start.set_state_machine_arn(request->state_machine_arn());
      start.set_name(request->name().empty() ? options_.new_execution_name() : request->name());
      start.set_input(request->input().empty() ? "{}" : request->input());
      start.set_trace_header(request->trace_header());
      RETURN_IF_ERROR(config::ValidateResourceName(start.name()));
      RETURN_IF_ERROR(ValidateJsonPayload("input", start.input(), "InvalidExecutionInput",
                                          kMaxPayloadBytes));
      RETURN_IF_ERROR(ValidateLength("traceHeader", start.trace_header(), 0, kMaxTraceHeaderBytes));
      if (!request->included_data().empty() && request->included_data() != "ALL_DATA" &&
          request->included_data() != "METADATA_ONLY") {
        return ConstraintViolation("includedData", request->included_data(),
                                   "Member must satisfy enum value set: [ALL_DATA, METADATA_ONLY]");
      }
      shard_request->set_included_data(request->included_data());
      // The wait for the end of the execution has the caller's whole
      // deadline. The execution's owner resolves the revision (and refuses
      // a STANDARD state machine).
      const absl::Time wait_deadline =
          std::min(absl::FromChrono(context->deadline()), absl::Now() + kMaxSyncWait);
      shard_start.set_resolve_arn(request->state_machine_arn());
      start.set_state_machine_arn(ref.state_machine_arn);
      const std::string execution_arn =
          config::ExecutionArn(options_.arn_scope, ref.name, start.name());
      auto closed = std::make_shared<v1::DescribeExecutionResponse>();
      router_->CallAsync(
          context, router_->OwnerOf(execution_arn), wait_deadline,
          STEPFLOW_SHARD_METHOD(StartSyncExecution), *shard_request, closed.get(),
          [reactor, request, response, shard_request, closed](absl::Status status) {
            if (status.ok()) FillSyncResponse(*request, *closed, response);
            reactor->Finish(rpc::ToGrpcStatus(status));
          },
          ShardRouter::LocalCall::kInlineUnlessDeclined);
      return absl::OkStatus();
    });
  }

  // A closed EXPRESS execution as StartSyncExecution answers it.
  static void FillSyncResponse(const v1::StartSyncExecutionRequest& request,
                               const v1::DescribeExecutionResponse& closed,
                               v1::StartSyncExecutionResponse* response) {
    response->set_execution_arn(closed.execution_arn());
    // The ARN the caller started through (a version or alias ARN too).
    response->set_state_machine_arn(request.state_machine_arn());
    response->set_name(closed.name());
    *response->mutable_start_date() = closed.start_date();
    *response->mutable_stop_date() = closed.stop_date();
    response->set_status(closed.status());
    response->set_error(closed.error());
    response->set_cause(closed.cause());
    response->set_input(closed.input());
    *response->mutable_input_details() = closed.input_details();
    response->set_output(closed.output());
    *response->mutable_output_details() = closed.output_details();
    response->set_trace_header(request.trace_header());
    // As AWS bills Express: duration rounded up to the next 100 ms, and
    // 64 MB of memory.
    using google::protobuf::util::TimeUtil;
    constexpr int64_t kBillingStepNanos = 100 * 1000 * 1000;
    const int64_t run_nanos = TimeUtil::TimestampToNanoseconds(closed.stop_date()) -
                              TimeUtil::TimestampToNanoseconds(closed.start_date());
    const int64_t billed_steps =
        std::max<int64_t>(1, (run_nanos + kBillingStepNanos - 1) / kBillingStepNanos);
    response->mutable_billing_details()->set_billed_duration_in_milliseconds(billed_steps * 100);
    response->mutable_billing_details()->set_billed_memory_used_in_mb(kExpressBilledMemoryMb);
  }

  grpc::ServerUnaryReactor* DescribeExecution(grpc::CallbackServerContext* context,
                                              const v1::DescribeExecutionRequest* request,
                                              v1::DescribeExecutionResponse* response) override {
    return Serve(context, [&](grpc::ServerUnaryReactor* reactor) -> absl::Status {
      RETURN_IF_ERROR(
          config::ExecutionNamesFromArn(options_.arn_scope, request->execution_arn()).status());
      if (!request->included_data().empty() && request->included_data() != "ALL_DATA" &&
          request->included_data() != "METADATA_ONLY") {
        return ConstraintViolation("includedData", request->included_data(),
                                   "Member must satisfy enum value set: [ALL_DATA, METADATA_ONLY]");
      }
      // A map run's child execution lives in its parent's record.
      std::optional<uint64_t> map_run_child =
          config::MapRunChildRoutingHash(options_.arn_scope, request->execution_arn());
      const int owner = map_run_child.has_value() ? router_->OwnerOfRoutingHash(*map_run_child)
                                                  : router_->OwnerOf(request->execution_arn());
      router_->CallAsync(context, owner, DeadlineOf(context, kDefaultDeadline),
                         STEPFLOW_SHARD_METHOD(DescribeExecution), *request, response,
                         Finisher(reactor));
      return absl::OkStatus();
    });
  }


  // --- Map runs: served by the parent execution's shard, which the map run
  // ARN's id names (config::RoutableId).

  grpc::Status DescribeMapRun(grpc::ServerContext* context,
                              const v1::DescribeMapRunRequest* request,
                              v1::DescribeMapRunResponse* response) override {
    return rpc::ToGrpcStatus([&]() -> absl::Status {
      ASSIGN_OR_RETURN(config::MapRunRef ref,
                       config::ParseMapRunArn(options_.arn_scope, request->map_run_arn()));
      return router_->Call(context, router_->OwnerOfRoutingHash(ref.routing_hash),
                           DeadlineOf(context, kDefaultDeadline),
                           STEPFLOW_SHARD_METHOD(DescribeMapRun), *request, response);
    }());
  }

  grpc::Status ListMapRuns(grpc::ServerContext* context, const v1::ListMapRunsRequest* request,
                           v1::ListMapRunsResponse* response) override {
    return rpc::ToGrpcStatus([&]() -> absl::Status {
      RETURN_IF_ERROR(
          config::ExecutionNamesFromArn(options_.arn_scope, request->execution_arn()).status());
      RETURN_IF_ERROR(ValidateMaxResults(request->max_results()));
      return router_->CallOwner(context, request->execution_arn(),
                                DeadlineOf(context, kDefaultDeadline),
                                STEPFLOW_SHARD_METHOD(ListMapRuns), *request, response);
    }());
  }

  grpc::Status UpdateMapRun(grpc::ServerContext* context, const v1::UpdateMapRunRequest* request,
                            v1::UpdateMapRunResponse* response) override {
    return rpc::ToGrpcStatus([&]() -> absl::Status {
      ASSIGN_OR_RETURN(config::MapRunRef ref,
                       config::ParseMapRunArn(options_.arn_scope, request->map_run_arn()));
      if (request->has_max_concurrency() && request->max_concurrency() < 0) {
        return ConstraintViolation("maxConcurrency", request->max_concurrency(),
                                   "Member must have value greater than or equal to 0");
      }
      if (request->has_tolerated_failure_percentage() &&
          !(request->tolerated_failure_percentage() >= 0 &&
            request->tolerated_failure_percentage() <= 100)) {
        return ConstraintViolation("toleratedFailurePercentage",
                                   JavaFloat(request->tolerated_failure_percentage()),
                                   "Member must have value between 0 and 100");
      }
      if (request->has_tolerated_failure_count() && request->tolerated_failure_count() < 0) {
        return ConstraintViolation("toleratedFailureCount", request->tolerated_failure_count(),
                                   "Member must have value greater than or equal to 0");
      }
      return router_->Call(context, router_->OwnerOfRoutingHash(ref.routing_hash),
                           DeadlineOf(context, kDefaultDeadline),
                           STEPFLOW_SHARD_METHOD(UpdateMapRun), *request, response);
    }());
  }

  // ListExecutions with map_run_arn: the run's child executions.
  absl::Status ListMapRunExecutions(grpc::ServerContext* context,
                                    const v1::ListExecutionsRequest& request,
                                    v1::ListExecutionsResponse* response) {
    if (!request.state_machine_arn().empty()) {
      return absl::InvalidArgumentError(
          "ValidationException: Must provide only one of StateMachine ARN or MapRun ARN");
    }
    ASSIGN_OR_RETURN(config::MapRunRef ref,
                     config::ParseMapRunArn(options_.arn_scope, request.map_run_arn()));
    RETURN_IF_ERROR(ValidateMaxResults(request.max_results()));
    RETURN_IF_ERROR(ValidateExecutionFilters(request));
    // Child executions are never redriven one by one.
    if (request.redrive_filter() == "REDRIVEN") return absl::OkStatus();
    return router_->Call(context, router_->OwnerOfRoutingHash(ref.routing_hash),
                         DeadlineOf(context, kDefaultDeadline),
                         STEPFLOW_SHARD_METHOD(ListMapRunExecutions), request, response);
  }

  grpc::Status StopExecution(grpc::ServerContext* context, const v1::StopExecutionRequest* request,
                             v1::StopExecutionResponse* response) override {
    return rpc::ToGrpcStatus([&]() -> absl::Status {
      RETURN_IF_ERROR(
          config::ExecutionNamesFromArn(options_.arn_scope, request->execution_arn()).status());
      RETURN_IF_ERROR(ValidateLength("error", request->error(), 0, 256));
      RETURN_IF_ERROR(ValidateLength("cause", request->cause(), 0, 32768));
      return router_->CallOwner(context, request->execution_arn(),
                                DeadlineOf(context, kDefaultDeadline),
                                STEPFLOW_SHARD_METHOD(StopExecution), *request, response);
    }());
  }

  grpc::Status GetExecutionHistory(grpc::ServerContext* context,
                                   const v1::GetExecutionHistoryRequest* request,
                                   v1::GetExecutionHistoryResponse* response) override {
    return rpc::ToGrpcStatus([&]() -> absl::Status {
      RETURN_IF_ERROR(
          config::ExecutionNamesFromArn(options_.arn_scope, request->execution_arn()).status());
      RETURN_IF_ERROR(ValidateMaxResults(request->max_results()));
      return router_->CallOwner(context, request->execution_arn(),
                                DeadlineOf(context, kDefaultDeadline),
                                STEPFLOW_SHARD_METHOD(GetExecutionHistory), *request, response);
    }());
  }

  grpc::Status ListExecutions(grpc::ServerContext* context,
                              const v1::ListExecutionsRequest* request,
                              v1::ListExecutionsResponse* response) override {
    return rpc::ToGrpcStatus([&]() -> absl::Status {
      if (request->state_machine_arn().empty() && request->map_run_arn().empty()) {
        return absl::InvalidArgumentError(
            "ValidationException: Must provide a StateMachine ARN or MapRun ARN");
      }
      if (!request->map_run_arn().empty()) {
        return ListMapRunExecutions(context, *request, response);
      }
      ASSIGN_OR_RETURN(config::StateMachineRef ref,
                       config::ParseStateMachineRef(options_.arn_scope,
                                                    request->state_machine_arn()));
      RETURN_IF_ERROR(ValidateMaxResults(request->max_results()));
      RETURN_IF_ERROR(ValidateExecutionFilters(*request));
      const absl::Time deadline = DeadlineOf(context, kDefaultDeadline);
      // AWS refuses listings of unknown state machines, versions and
      // aliases.
      iv1::ResolveStateMachineRequest lookup;
      lookup.set_arn(request->state_machine_arn());
      iv1::ResolvedStateMachine resolved;
      RETURN_IF_ERROR(router_->CallOwner(context, ref.state_machine_arn, deadline,
                                         STEPFLOW_SHARD_METHOD(ResolveStateMachine), lookup,
                                         &resolved));
      iv1::ListShardRequest shard_request;
      RETURN_IF_ERROR(DecodePageToken(request->next_token(), shard_request.mutable_after_key()));
      // A token is the sort key of the last execution listed: ~start time,
      // then the execution's ARN.
      const std::string& after = shard_request.after_key();
      if (!after.empty() && (after.size() < 12 || after.compare(8, 4, "arn:") != 0)) {
        return absl::InvalidArgumentError(
            absl::StrCat("InvalidToken: Invalid Token: '", request->next_token(), "'"));
      }
      const int page = PageSize(request->max_results());
      shard_request.set_limit(page + 1);
      shard_request.set_state_machine_arn(request->state_machine_arn());
      shard_request.set_status_filter(request->status_filter());
      shard_request.set_redrive_filter(request->redrive_filter());
      std::vector<std::pair<std::string, iv1::ExecutionRecord>> all;
      for (size_t i = 0; i < router_->size(); ++i) {
        iv1::ListExecutionsShardResponse part;
        RETURN_IF_ERROR(router_->Call(context, static_cast<int>(i), deadline,
                                      STEPFLOW_SHARD_METHOD(ListExecutions), shard_request, &part));
        for (auto& record : *part.mutable_executions()) {
          all.emplace_back(ExecutionSortKey(record), std::move(record));
        }
      }
      std::sort(all.begin(), all.end(),
                [](const auto& a, const auto& b) { return a.first < b.first; });
      for (int i = 0; i < static_cast<int>(all.size()) && i < page; ++i) {
        const iv1::ExecutionRecord& record = all[i].second;
        auto* item = response->add_executions();
        item->set_execution_arn(record.execution_arn());
        item->set_state_machine_arn(record.state_machine_arn());
        item->set_name(record.name());
        item->set_status(record.status());
        *item->mutable_start_date() = record.start_date();
        if (record.has_stop_date()) *item->mutable_stop_date() = record.stop_date();
        item->set_state_machine_version_arn(record.state_machine_version_arn());
        item->set_state_machine_alias_arn(record.state_machine_alias_arn());
        item->set_redrive_count(record.redrive_count());
        if (record.has_redrive_date()) *item->mutable_redrive_date() = record.redrive_date();
      }
      if (static_cast<int>(all.size()) > page) {
        response->set_next_token(EncodePageToken(all[page - 1].first));
      }
      return absl::OkStatus();
    }());
  }

  grpc::Status CreateActivity(grpc::ServerContext* context,
                              const v1::CreateActivityRequest* request,
                              v1::CreateActivityResponse* response) override {
    return rpc::ToGrpcStatus([&]() -> absl::Status {
      RETURN_IF_ERROR(config::ValidateResourceName(request->name()));
      const std::string arn = config::ActivityArn(options_.arn_scope, request->name());
      return router_->CallOwner(context, arn, DeadlineOf(context, kDefaultDeadline),
                                STEPFLOW_SHARD_METHOD(CreateActivity), *request, response);
    }());
  }

  grpc::Status DescribeActivity(grpc::ServerContext* context,
                                const v1::DescribeActivityRequest* request,
                                v1::DescribeActivityResponse* response) override {
    return rpc::ToGrpcStatus([&]() -> absl::Status {
      RETURN_IF_ERROR(
          config::ActivityNameFromArn(options_.arn_scope, request->activity_arn()).status());
      return router_->CallOwner(context, request->activity_arn(),
                                DeadlineOf(context, kDefaultDeadline),
                                STEPFLOW_SHARD_METHOD(DescribeActivity), *request, response);
    }());
  }

  grpc::Status DeleteActivity(grpc::ServerContext* context,
                              const v1::DeleteActivityRequest* request,
                              v1::DeleteActivityResponse* response) override {
    return rpc::ToGrpcStatus([&]() -> absl::Status {
      RETURN_IF_ERROR(
          config::ActivityNameFromArn(options_.arn_scope, request->activity_arn()).status());
      return router_->CallOwner(context, request->activity_arn(),
                                DeadlineOf(context, kDefaultDeadline),
                                STEPFLOW_SHARD_METHOD(DeleteActivity), *request, response);
    }());
  }

  grpc::Status ListActivities(grpc::ServerContext* context,
                              const v1::ListActivitiesRequest* request,
                              v1::ListActivitiesResponse* response) override {
    return rpc::ToGrpcStatus([&]() -> absl::Status {
      iv1::ListShardRequest shard_request;
      RETURN_IF_ERROR(DecodePageToken(request->next_token(), shard_request.mutable_after_key()));
      const int page = PageSize(request->max_results());
      shard_request.set_limit(page + 1);
      std::vector<iv1::ActivityRecord> all;
      const absl::Time deadline = DeadlineOf(context, kDefaultDeadline);
      for (size_t i = 0; i < router_->size(); ++i) {
        iv1::ListActivitiesShardResponse part;
        RETURN_IF_ERROR(router_->Call(context, static_cast<int>(i), deadline,
                                      STEPFLOW_SHARD_METHOD(ListActivities), shard_request, &part));
        for (auto& record : *part.mutable_activities()) all.push_back(std::move(record));
      }
      std::sort(all.begin(), all.end(), [](const auto& a, const auto& b) { return a.name() < b.name(); });
      for (int i = 0; i < static_cast<int>(all.size()) && i < page; ++i) {
        auto* item = response->add_activities();
        item->set_activity_arn(all[i].activity_arn());
        item->set_name(all[i].name());
        *item->mutable_creation_date() = all[i].creation_date();
      }
      if (static_cast<int>(all.size()) > page) {
        response->set_next_token(EncodePageToken(all[page - 1].name()));
      }
      return absl::OkStatus();
    }());
  }

  grpc::ServerUnaryReactor* GetActivityTask(grpc::CallbackServerContext* context,
                                            const v1::GetActivityTaskRequest* request,
                                            v1::GetActivityTaskResponse* response) override {
    return Serve(context, [&](grpc::ServerUnaryReactor* reactor) -> absl::Status {
      RETURN_IF_ERROR(ValidatePoll(request->activity_arn(), request->worker_name()));
      auto polled = std::make_shared<iv1::PollActivityTasksResponse>();
      LongPoll(context, request->activity_arn(), request->worker_name(), 1, polled,
               [reactor, response, polled](absl::Status status) {
                 if (status.ok() && polled->tasks_size() > 0) {
                   response->set_task_token(std::move(*polled->mutable_tasks(0)->mutable_task_token()));
                   response->set_input(std::move(*polled->mutable_tasks(0)->mutable_input()));
                 }
                 reactor->Finish(rpc::ToGrpcStatus(status));
               });
      return absl::OkStatus();
    });
  }

  grpc::ServerUnaryReactor* GetActivityTasks(grpc::CallbackServerContext* context,
                                             const v1::GetActivityTasksRequest* request,
                                             v1::GetActivityTasksResponse* response) override {
    return Serve(context, [&](grpc::ServerUnaryReactor* reactor) -> absl::Status {
      RETURN_IF_ERROR(ValidatePoll(request->activity_arn(), request->worker_name()));
      if (request->max_tasks() < 1 || request->max_tasks() > kMaxTasksPerPoll) {
        return ConstraintViolation("maxTasks", request->max_tasks(),
                                   absl::StrCat("Member must have value between 1 and ",
                                                kMaxTasksPerPoll));
      }
      auto polled = std::make_shared<iv1::PollActivityTasksResponse>();
      LongPoll(context, request->activity_arn(), request->worker_name(), request->max_tasks(),
               polled, [reactor, response, polled](absl::Status status) {
                 if (status.ok()) response->mutable_tasks()->Swap(polled->mutable_tasks());
                 reactor->Finish(rpc::ToGrpcStatus(status));
               });
      return absl::OkStatus();
    });
  }

  grpc::ServerBidiReactor<v1::StreamActivityTasksRequest, v1::StreamActivityTasksResponse>*
  StreamActivityTasks(grpc::CallbackServerContext* context) override {
    return new TaskStream(this, context);
  }

  grpc::ServerUnaryReactor* SendTaskSuccess(grpc::CallbackServerContext* context,
                                            const v1::SendTaskSuccessRequest* request,
                                            v1::SendTaskSuccessResponse* response) override {
    return Serve(context, [&](grpc::ServerUnaryReactor* reactor) -> absl::Status {
      return Report(context, *request, response, Finisher(reactor));
    });
  }

  grpc::ServerUnaryReactor* SendTaskFailure(grpc::CallbackServerContext* context,
                                            const v1::SendTaskFailureRequest* request,
                                            v1::SendTaskFailureResponse* response) override {
    return Serve(context, [&](grpc::ServerUnaryReactor* reactor) -> absl::Status {
      return Report(context, *request, response, Finisher(reactor));
    });
  }

  grpc::ServerUnaryReactor* SendTaskHeartbeat(grpc::CallbackServerContext* context,
                                              const v1::SendTaskHeartbeatRequest* request,
                                              v1::SendTaskHeartbeatResponse* response) override {
    return Serve(context, [&](grpc::ServerUnaryReactor* reactor) -> absl::Status {
      return Report(context, *request, response, Finisher(reactor));
    });
  }


  grpc::Status UpdateStateMachine(grpc::ServerContext* context,
                                  const v1::UpdateStateMachineRequest* request,
                                  v1::UpdateStateMachineResponse* response) override {
    return rpc::ToGrpcStatus([&]() -> absl::Status {
      RETURN_IF_ERROR(
          config::StateMachineNameFromArn(options_.arn_scope, request->state_machine_arn())
              .status());
      if (request->definition().empty() && request->role_arn().empty() &&
          !request->has_logging_configuration() && !request->has_tracing_configuration()) {
        return absl::InvalidArgumentError(
            "MissingRequiredParameter: Either the definition, the role ARN, the "
            "LoggingConfiguration, or the TracingConfiguration must be specified");
      }
      if (!request->definition().empty()) {
        RETURN_IF_ERROR(
            ValidateLength("definition", request->definition(), 1, kMaxDefinitionBytes));
        ASSIGN_OR_RETURN(std::shared_ptr<const asl::Definition> definition,
                         asl::Definition::Parse(request->definition()));
        // What an EXPRESS machine may not run: its type is asked for only
        // when the definition has such a state.
        if (std::vector<asl::Diagnostic> express = asl::ExpressDiagnostics(*definition);
            !express.empty()) {
          v1::DescribeStateMachineRequest describe;
          describe.set_state_machine_arn(request->state_machine_arn());
          v1::DescribeStateMachineResponse machine;
          RETURN_IF_ERROR(router_->CallOwner(context, request->state_machine_arn(),
                                             DeadlineOf(context, kDefaultDeadline),
                                             STEPFLOW_SHARD_METHOD(DescribeStateMachine),
                                             describe, &machine));
          if (machine.type() == "EXPRESS") {
            return absl::InvalidArgumentError(
                absl::StrCat("InvalidDefinition: ", asl::InvalidDefinitionMessage({express[0]})));
          }
        }
      }
      RETURN_IF_ERROR(ValidateLength("roleArn", request->role_arn(), 0, 256));
      RETURN_IF_ERROR(
          ValidateVersionDescription(request->publish(), request->version_description()));
      RETURN_IF_ERROR(ValidateLogging(request->logging_configuration()));
      return router_->CallOwner(context, request->state_machine_arn(),
                                DeadlineOf(context, kDefaultDeadline),
                                STEPFLOW_SHARD_METHOD(UpdateStateMachine), *request, response);
    }());
  }

  grpc::Status PublishStateMachineVersion(grpc::ServerContext* context,
                                          const v1::PublishStateMachineVersionRequest* request,
                                          v1::PublishStateMachineVersionResponse* response) override {
    return rpc::ToGrpcStatus([&]() -> absl::Status {
      RETURN_IF_ERROR(
          config::StateMachineNameFromArn(options_.arn_scope, request->state_machine_arn())
              .status());
      RETURN_IF_ERROR(ValidateLength("description", request->description(), 0, 256));
      RETURN_IF_ERROR(ValidateLength("revisionId", request->revision_id(), 0, 2048));
      return router_->CallOwner(
          context, request->state_machine_arn(), DeadlineOf(context, kDefaultDeadline),
          STEPFLOW_SHARD_METHOD(PublishStateMachineVersion), *request, response);
    }());
  }

  grpc::Status DeleteStateMachineVersion(grpc::ServerContext* context,
                                         const v1::DeleteStateMachineVersionRequest* request,
                                         v1::DeleteStateMachineVersionResponse* response) override {
    return rpc::ToGrpcStatus([&]() -> absl::Status {
      ASSIGN_OR_RETURN(config::StateMachineRef ref,
                       config::ParseStateMachineRef(options_.arn_scope,
                                                    request->state_machine_version_arn()));
      if (ref.version == 0) {
        return absl::InvalidArgumentError(
            absl::StrCat("InvalidArn: Invalid Arn: 'Not a state machine version ARN: ",
                         request->state_machine_version_arn(), "'"));
      }
      return router_->CallOwner(
          context, ref.state_machine_arn, DeadlineOf(context, kDefaultDeadline),
          STEPFLOW_SHARD_METHOD(DeleteStateMachineVersion), *request, response);
    }());
  }

  grpc::Status ListStateMachineVersions(grpc::ServerContext* context,
                                        const v1::ListStateMachineVersionsRequest* request,
                                        v1::ListStateMachineVersionsResponse* response) override {
    return rpc::ToGrpcStatus([&]() -> absl::Status {
      RETURN_IF_ERROR(
          config::StateMachineNameFromArn(options_.arn_scope, request->state_machine_arn())
              .status());
      RETURN_IF_ERROR(ValidateMaxResults(request->max_results()));
      return router_->CallOwner(
          context, request->state_machine_arn(), DeadlineOf(context, kDefaultDeadline),
          STEPFLOW_SHARD_METHOD(ListStateMachineVersions), *request, response);
    }());
  }

  grpc::Status CreateStateMachineAlias(grpc::ServerContext* context,
                                       const v1::CreateStateMachineAliasRequest* request,
                                       v1::CreateStateMachineAliasResponse* response) override {
    return rpc::ToGrpcStatus([&]() -> absl::Status {
      RETURN_IF_ERROR(config::ValidateAliasName(request->name()));
      RETURN_IF_ERROR(ValidateLength("description", request->description(), 0, 256));
      std::string machine_arn;
      RETURN_IF_ERROR(
          ValidateRouting(options_.arn_scope, request->routing_configuration(), &machine_arn));
      return router_->CallOwner(context, machine_arn, DeadlineOf(context, kDefaultDeadline),
                                STEPFLOW_SHARD_METHOD(CreateStateMachineAlias), *request, response);
    }());
  }

  grpc::Status DescribeStateMachineAlias(grpc::ServerContext* context,
                                         const v1::DescribeStateMachineAliasRequest* request,
                                         v1::DescribeStateMachineAliasResponse* response) override {
    return rpc::ToGrpcStatus([&]() -> absl::Status {
      ASSIGN_OR_RETURN(std::string machine_arn, AliasOwner(request->state_machine_alias_arn()));
      return router_->CallOwner(context, machine_arn, DeadlineOf(context, kDefaultDeadline),
                                STEPFLOW_SHARD_METHOD(DescribeStateMachineAlias), *request,
                                response);
    }());
  }

  grpc::Status UpdateStateMachineAlias(grpc::ServerContext* context,
                                       const v1::UpdateStateMachineAliasRequest* request,
                                       v1::UpdateStateMachineAliasResponse* response) override {
    return rpc::ToGrpcStatus([&]() -> absl::Status {
      ASSIGN_OR_RETURN(std::string machine_arn, AliasOwner(request->state_machine_alias_arn()));
      RETURN_IF_ERROR(ValidateLength("description", request->description(), 0, 256));
      if (request->description().empty() && request->routing_configuration().empty()) {
        return absl::InvalidArgumentError(
            "ValidationException: Either the description or the RoutingConfiguration must be "
            "specified");
      }
      if (!request->routing_configuration().empty()) {
        std::string routed_machine;
        RETURN_IF_ERROR(ValidateRouting(options_.arn_scope, request->routing_configuration(),
                                        &routed_machine));
        if (routed_machine != machine_arn) {
          return absl::InvalidArgumentError(
              "ValidationException: Routing configuration must contain versions of the alias's "
              "state machine");
        }
      }
      return router_->CallOwner(context, machine_arn, DeadlineOf(context, kDefaultDeadline),
                                STEPFLOW_SHARD_METHOD(UpdateStateMachineAlias), *request, response);
    }());
  }

  grpc::Status DeleteStateMachineAlias(grpc::ServerContext* context,
                                       const v1::DeleteStateMachineAliasRequest* request,
                                       v1::DeleteStateMachineAliasResponse* response) override {
    return rpc::ToGrpcStatus([&]() -> absl::Status {
      ASSIGN_OR_RETURN(std::string machine_arn, AliasOwner(request->state_machine_alias_arn()));
      return router_->CallOwner(context, machine_arn, DeadlineOf(context, kDefaultDeadline),
                                STEPFLOW_SHARD_METHOD(DeleteStateMachineAlias), *request, response);
    }());
  }

  grpc::Status ListStateMachineAliases(grpc::ServerContext* context,
                                       const v1::ListStateMachineAliasesRequest* request,
                                       v1::ListStateMachineAliasesResponse* response) override {
    return rpc::ToGrpcStatus([&]() -> absl::Status {
      ASSIGN_OR_RETURN(config::StateMachineRef ref,
                       config::ParseStateMachineRef(options_.arn_scope,
                                                    request->state_machine_arn()));
      if (!ref.alias.empty()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "InvalidArn: Invalid Arn: 'Resource type not valid in this context: ",
            request->state_machine_arn(), "'"));
      }
      RETURN_IF_ERROR(ValidateMaxResults(request->max_results()));
      return router_->CallOwner(context, ref.state_machine_arn,
                                DeadlineOf(context, kDefaultDeadline),
                                STEPFLOW_SHARD_METHOD(ListStateMachineAliases), *request, response);
    }());
  }

  grpc::Status RedriveExecution(grpc::ServerContext* context,
                                const v1::RedriveExecutionRequest* request,
                                v1::RedriveExecutionResponse* response) override {
    return rpc::ToGrpcStatus([&]() -> absl::Status {
      RETURN_IF_ERROR(
          config::ExecutionNamesFromArn(options_.arn_scope, request->execution_arn()).status());
      RETURN_IF_ERROR(ValidateLength("clientToken", request->client_token(), 0, 64));
      return router_->CallOwner(context, request->execution_arn(),
                                DeadlineOf(context, kDefaultDeadline),
                                STEPFLOW_SHARD_METHOD(RedriveExecution), *request, response);
    }());
  }

  grpc::Status DescribeStateMachineForExecution(
      grpc::ServerContext* context, const v1::DescribeStateMachineForExecutionRequest* request,
      v1::DescribeStateMachineForExecutionResponse* response) override {
    return rpc::ToGrpcStatus([&]() -> absl::Status {
      RETURN_IF_ERROR(
          config::ExecutionNamesFromArn(options_.arn_scope, request->execution_arn()).status());
      if (!request->included_data().empty() && request->included_data() != "ALL_DATA" &&
          request->included_data() != "METADATA_ONLY") {
        return ConstraintViolation("includedData", request->included_data(),
                                   "Member must satisfy enum value set: [ALL_DATA, METADATA_ONLY]");
      }
      return router_->CallOwner(
          context, request->execution_arn(), DeadlineOf(context, kDefaultDeadline),
          STEPFLOW_SHARD_METHOD(DescribeStateMachineForExecution), *request, response);
    }());
  }

  // Later releases build these.
#define STEPFLOW_NOT_YET(Method)                                                     \
  grpc::Status Method(grpc::ServerContext*, const v1::Method##Request*,             \
                      v1::Method##Response*) override {                             \
    return rpc::ToGrpcStatus(Unimplemented(#Method));                                \
  }
  STEPFLOW_NOT_YET(TagResource)
  STEPFLOW_NOT_YET(UntagResource)
  STEPFLOW_NOT_YET(ListTagsForResource)

 private:
  // The state machine an alias ARN belongs to (its owner routes the call).
  absl::StatusOr<std::string> AliasOwner(const std::string& alias_arn) const {
    ASSIGN_OR_RETURN(config::StateMachineRef ref,
                     config::ParseStateMachineRef(options_.arn_scope, alias_arn));
    if (ref.alias.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("InvalidArn: Invalid Arn: 'Not a state machine alias ARN: ", alias_arn, "'"));
    }
    return ref.state_machine_arn;
  }

  absl::Status ValidatePoll(const std::string& activity_arn, const std::string& worker_name) const {
    RETURN_IF_ERROR(config::ActivityNameFromArn(options_.arn_scope, activity_arn).status());
    return ValidateLength("workerName", worker_name, 0, 80);
  }

  // When a long poll answers empty: 60 s from now as on AWS, or sooner if
  // the caller's deadline is sooner.
  static absl::Time LongPollEnd(const grpc::ServerContextBase* context) {
    return std::min(absl::Now() + kLongPoll,
                    absl::FromChrono(context->deadline()) - kPollAnswerMargin);
  }

  // GetActivityTask(s): polls the activity's partitions for up to
  // `max_tasks` tasks until LongPollEnd, into `*polled`, and calls `done`.
  // When one server holds every partition (the usual case), that is one
  // asynchronous call there: no thread waits for the tasks, here or, when
  // the server is in this process, there (the transition that hands them
  // over answers). With several, PollPartitions watches them all, without
  // a thread either.
  void LongPoll(grpc::CallbackServerContext* context, const std::string& activity_arn,
                const std::string& worker_name, int max_tasks,
                std::shared_ptr<iv1::PollActivityTasksResponse> polled,
                std::function<void(absl::Status)> done) {
    const absl::Time until = LongPollEnd(context);
    if (const std::vector<int> owners = PartitionOwners(activity_arn); owners.size() == 1) {
      auto poll = std::make_shared<OneServerLongPoll>();
      poll->context = context;
      poll->owner = owners[0];
      poll->until = until;
      poll->request.set_activity_arn(activity_arn);
      poll->request.set_worker_name(worker_name);
      poll->request.set_max_tasks(max_tasks);
      poll->response = std::move(polled);
      poll->done = std::move(done);
      PollOneServer(std::move(poll));
      return;
    }
    PollPartitions(context, activity_arn, worker_name, max_tasks, until, std::move(polled),
                   std::move(done));
  }

  // A long poll of a queue one server holds, kept until its answer.
  struct OneServerLongPoll {
    grpc::CallbackServerContext* context = nullptr;
    int owner = 0;
    absl::Time until;
    iv1::PollActivityTasksRequest request;
    std::shared_ptr<iv1::PollActivityTasksResponse> response;
    std::function<void(absl::Status)> done;
    absl::Time asked;
    RepollPacer pacer;
    std::unique_ptr<grpc::Alarm> pause;
  };

  // One call to the server for what is left of the long poll. The server
  // may answer empty before then (its poller was woken for a backlog, or
  // claimed for a task another took): the poll is then made again (paced),
  // from a pool thread so that answers made at once cannot nest, until
  // tasks come, the time is up or the caller goes away.
  void PollOneServer(std::shared_ptr<OneServerLongPoll> poll) {
    poll->asked = absl::Now();
    poll->request.set_wait_ms(
        std::max<int64_t>(0, absl::ToInt64Milliseconds(poll->until - poll->asked)));
    const iv1::PollActivityTasksRequest& request = poll->request;
    iv1::PollActivityTasksResponse* response = poll->response.get();
    response->Clear();
    router_->CallAsync(
        poll->context, poll->owner, std::max(poll->until, absl::Now()) + kTakeAnswerMargin,
        STEPFLOW_SHARD_METHOD(PollActivityTasks), request, response,
        [this, poll](absl::Status status) {
          // (Not for the last milliseconds: the server's deadline is
          // `until` rounded down to one.)
          if (status.ok() && poll->response->tasks_size() == 0 &&
              poll->until - absl::Now() > kRepollMinimum && !poll->context->IsCancelled()) {
            AfterPause(poll->pacer.Next(absl::Now() - poll->asked, 0), &poll->pause,
                       [this, poll] { poll_pool_.Run([this, poll] { PollOneServer(poll); }); });
            return;
          }
          std::function<void(absl::Status)> done = std::move(poll->done);
          done(std::move(status));
        },
        ShardRouter::LocalCall::kInlineUnlessDeclined);
  }

  // Polls the partitions of an activity's task queue, held by several
  // servers (one server's are PollOneServer's), for up to `max_tasks`
  // tasks until `until`, into `*response`, and calls `done`. Every server
  // holding a partition serves all of its local partitions at once. Each
  // is looked at quickly first (a backlog may sit on one while another is
  // empty); then all of them are watched: a watch answers when a task
  // arrives there that no poller of that server waits for, and the poll
  // then takes from that server. So a poller is never starved while any
  // partition has a backlog, a task meets a waiting poller at once
  // wherever it lands, and an idle poller costs one waiting call per
  // server and no thread here: every step is an asynchronous call, made
  // again from the last one's answer.
  //
  // Only watches are ever cancelled here: a take that is cancelled after
  // the server handed its tasks over would lose them (their ActivityStarted
  // is recorded, and nobody has them), so the takes here do not wait.
  void PollPartitions(const grpc::CallbackServerContext* context, const std::string& activity_arn,
                      const std::string& worker_name, int max_tasks, absl::Time until,
                      std::shared_ptr<iv1::PollActivityTasksResponse> response,
                      std::function<void(absl::Status)> done) {
    auto poll = std::make_shared<SpreadPoll>();
    poll->context = context;
    poll->owners = PartitionOwners(activity_arn);
    poll->until = until;
    poll->take.set_activity_arn(activity_arn);
    poll->take.set_worker_name(worker_name);
    poll->take.set_max_tasks(max_tasks);
    poll->response = std::move(response);
    poll->done = std::move(done);
    Sweep(poll, next_poll_owner_.fetch_add(1, std::memory_order_relaxed) % poll->owners.size());
  }

  // A poll of PollPartitions, kept until its answer by the calls it makes.
  struct SpreadPoll {
    const grpc::CallbackServerContext* context = nullptr;
    std::vector<int> owners;
    absl::Time until;
    iv1::PollActivityTasksRequest take;
    std::shared_ptr<iv1::PollActivityTasksResponse> response;
    std::function<void(absl::Status)> done;
  };

  // One round of watches, one on every server of a SpreadPoll.
  struct WatchRound {
    iv1::PollActivityTasksRequest request;
    std::vector<iv1::PollActivityTasksResponse> responses;
    absl::Mutex mu;
    // By server; a watch made again replaces its context (not once the
    // round is decided).
    std::vector<std::unique_ptr<grpc::ClientContext>> contexts ABSL_GUARDED_BY(mu);
    std::vector<grpc::Status> statuses ABSL_GUARDED_BY(mu);
    // The waits before watching an unavailable server again: each only
    // touched by its own watch's steps, which follow one another.
    std::vector<std::unique_ptr<grpc::Alarm>> alarms;
    size_t pending ABSL_GUARDED_BY(mu) = 0;
    std::optional<size_t> backlog ABSL_GUARDED_BY(mu);
    bool decided ABSL_GUARDED_BY(mu) = false;
  };

  // A quick look at each server, from the one at `first` on: a take that
  // does not wait, which ends the poll when tasks came; then watches. A
  // server found unavailable is not tried again here: the watches find
  // when it is back.
  void Sweep(std::shared_ptr<SpreadPoll> poll, size_t first, size_t looked = 0) {
    if (looked == poll->owners.size()) return WatchOrEnd(std::move(poll));
    const int owner = poll->owners[(first + looked) % poll->owners.size()];
    poll->take.set_wait_ms(0);
    poll->response->Clear();
    router_->CallAsync(
        poll->context, owner, absl::Now() + kTakeAnswerMargin,
        STEPFLOW_SHARD_METHOD(PollActivityTasks), poll->take, poll->response.get(),
        [this, poll, first, looked](absl::Status status) {
          // One unreachable server does not stop polling the others.
          if (!status.ok() && !absl::IsUnavailable(status) && !absl::IsDeadlineExceeded(status)) {
            return EndSpreadPoll(poll, std::move(status));
          }
          if (poll->response->tasks_size() > 0) return EndSpreadPoll(poll, absl::OkStatus());
          Sweep(poll, first, looked + 1);
        },
        ShardRouter::LocalCall::kPooled, OnUnavailable::kAnswer);
  }

  // Watches every server until one reports a waiting task (then sweeps
  // from it), `until` passes or the caller goes away.
  void WatchOrEnd(std::shared_ptr<SpreadPoll> poll) {
    if (absl::Now() >= poll->until) return EndSpreadPoll(poll, absl::OkStatus());
    if (poll->context->IsCancelled()) {
      return EndSpreadPoll(poll, absl::CancelledError("the caller went away"));
    }
    auto round = std::make_shared<WatchRound>();
    const size_t count = poll->owners.size();
    round->request.set_activity_arn(poll->take.activity_arn());
    round->request.set_max_tasks(0);  // watch only
    round->request.set_wait_ms(
        std::max<int64_t>(0, absl::ToInt64Milliseconds(poll->until - absl::Now())));
    round->responses.resize(count);
    round->alarms.resize(count);
    {
      absl::MutexLock lock(&round->mu);
      round->statuses.resize(count);
      for (size_t i = 0; i < count; ++i) round->contexts.push_back(WatchContext(*poll));
      round->pending = count;
    }
    for (size_t i = 0; i < count; ++i) Watch(poll, round, i);
  }

  // Made from the caller's context, so that a watch ends when it goes away.
  static std::unique_ptr<grpc::ClientContext> WatchContext(const SpreadPoll& poll) {
    std::unique_ptr<grpc::ClientContext> context = ChildContextOf(poll.context);
    context->set_deadline(absl::ToChronoTime(poll.until + kPollAnswerMargin));
    return context;
  }

  // Starts watch `index` of `round`, on its current context.
  void Watch(const std::shared_ptr<SpreadPoll>& poll, const std::shared_ptr<WatchRound>& round,
             size_t index) {
    grpc::ClientContext* context = nullptr;
    {
      absl::MutexLock lock(&round->mu);
      context = round->contexts[index].get();
    }
    router_->stub(poll->owners[index])
        ->async()
        ->PollActivityTasks(context, &round->request, &round->responses[index],
                            [this, poll, round, index](grpc::Status status) {
                              WatchAnswered(poll, round, index, std::move(status));
                            });
  }

  // A watch of `round` answered. A server that is unavailable (restarting)
  // is watched again a moment later, until the round is decided. The first
  // backlog, or the last answer, decides the round and cancels the other
  // watches (they take nothing); the last answer goes on.
  void WatchAnswered(const std::shared_ptr<SpreadPoll>& poll,
                     const std::shared_ptr<WatchRound>& round, size_t index,
                     grpc::Status status) {
    std::vector<grpc::ClientContext*> to_cancel;
    bool last = false;
    {
      absl::MutexLock lock(&round->mu);
      if (status.error_code() == grpc::StatusCode::UNAVAILABLE && !round->decided &&
          absl::Now() + kUnavailableRewatch < poll->until && !poll->context->IsCancelled()) {
        AfterPause(kUnavailableRewatch, &round->alarms[index],
                   [this, poll, round, index] { WatchAgain(poll, round, index); });
        return;
      }
      if (status.ok() && round->responses[index].backlog() && !round->backlog.has_value()) {
        round->backlog = index;
      }
      round->statuses[index] = std::move(status);
      last = --round->pending == 0;
      if (!round->decided && (round->backlog.has_value() || last)) {
        round->decided = true;
        if (!last) {
          for (const std::unique_ptr<grpc::ClientContext>& context : round->contexts) {
            to_cancel.push_back(context.get());
          }
        }
      }
    }
    // Once decided, no context is replaced, and each stays until the
    // round's last callback has run. (Not under the lock: a cancelled
    // call's callback may run before TryCancel returns.)
    for (grpc::ClientContext* context : to_cancel) context->TryCancel();
    if (!last) return;
    std::optional<size_t> backlog;
    std::vector<grpc::Status> statuses;
    {
      absl::MutexLock lock(&round->mu);
      backlog = round->backlog;
      statuses = round->statuses;
    }
    if (backlog.has_value()) return Sweep(poll, *backlog);
    for (const grpc::Status& answer : statuses) {
      const grpc::StatusCode code = answer.error_code();
      if (code != grpc::StatusCode::OK && code != grpc::StatusCode::CANCELLED &&
          code != grpc::StatusCode::DEADLINE_EXCEEDED && code != grpc::StatusCode::UNAVAILABLE) {
        return EndSpreadPoll(poll, rpc::FromGrpcStatus(answer));
      }
    }
    WatchOrEnd(poll);
  }

  // The wait after an unavailable server is over: its watch is made again,
  // or counts as cancelled if the round was decided meanwhile.
  void WatchAgain(const std::shared_ptr<SpreadPoll>& poll,
                  const std::shared_ptr<WatchRound>& round, size_t index) {
    bool decided = false;
    {
      absl::MutexLock lock(&round->mu);
      decided = round->decided;
      // A decision after this cancels the new context too (a call started
      // on a cancelled context ends at once).
      if (!decided) {
        round->contexts[index] = WatchContext(*poll);
        round->responses[index].Clear();
      }
    }
    if (!decided) return Watch(poll, round, index);
    WatchAnswered(poll, round, index, grpc::Status(grpc::StatusCode::CANCELLED, "watch ended"));
  }

  // Answers the poll: its last step.
  void EndSpreadPoll(const std::shared_ptr<SpreadPoll>& poll, absl::Status status) {
    std::function<void(absl::Status)> done = std::move(poll->done);
    done(std::move(status));
  }

  // The servers holding the partitions of an activity's task queue.
  std::vector<int> PartitionOwners(const std::string& activity_arn) const {
    std::vector<int> owners;
    for (int partition = 0; partition < options_.task_queue_partitions; ++partition) {
      const int owner =
          router_->OwnerOf(config::TaskQueuePartitionKey(activity_arn, partition));
      if (std::find(owners.begin(), owners.end(), owner) == owners.end()) owners.push_back(owner);
    }
    return owners;
  }

  // Checks a task report as its unary call does and hands it to the shard
  // server of its execution, whose answer `done` gets; or the error, and
  // `done` is not called. `request` and `response` must stay valid until
  // `done` is called.
  absl::Status Report(const grpc::CallbackServerContext* context,
                      const v1::SendTaskSuccessRequest& request,
                      v1::SendTaskSuccessResponse* response, std::function<void(absl::Status)> done) {
    return ForwardReport(context, STEPFLOW_SHARD_METHOD(SendTaskSuccess), request, response,
                         std::move(done));
  }
  absl::Status Report(const grpc::CallbackServerContext* context,
                      const v1::SendTaskFailureRequest& request,
                      v1::SendTaskFailureResponse* response, std::function<void(absl::Status)> done) {
    return ForwardReport(context, STEPFLOW_SHARD_METHOD(SendTaskFailure), request, response,
                         std::move(done));
  }
  absl::Status Report(const grpc::CallbackServerContext* context,
                      const v1::SendTaskHeartbeatRequest& request,
                      v1::SendTaskHeartbeatResponse* response,
                      std::function<void(absl::Status)> done) {
    return ForwardReport(context, STEPFLOW_SHARD_METHOD(SendTaskHeartbeat), request, response,
                         std::move(done));
  }

  // What a report's unary call checks beyond its token.
  static absl::Status CheckReport(const v1::SendTaskSuccessRequest& request) {
    return ValidateJsonPayload("output", request.output(), "InvalidOutput", kMaxPayloadBytes);
  }
  static absl::Status CheckReport(const v1::SendTaskFailureRequest& request) {
    RETURN_IF_ERROR(ValidateLength("error", request.error(), 0, 256));
    return ValidateLength("cause", request.cause(), 0, 32768);
  }
  static absl::Status CheckReport(const v1::SendTaskHeartbeatRequest&) { return absl::OkStatus(); }

  template <typename Request, typename Response>
  absl::Status ForwardReport(const grpc::CallbackServerContext* context,
                             const ShardMethod<Request, Response>& method, const Request& request,
                             Response* response, std::function<void(absl::Status)> done) {
    ASSIGN_OR_RETURN(auto token, PeekToken(request.task_token()));
    RETURN_IF_ERROR(CheckReport(request));
    router_->CallAsync(context, router_->OwnerOf(token.execution_arn()),
                       DeadlineOf(context, kDefaultDeadline), method, request, response,
                       std::move(done), ShardRouter::LocalCall::kInlineUnlessDeclined);
    return absl::OkStatus();
  }

  // One StreamActivityTasks call, on gRPC's callback API, so that a stream
  // holds no thread while it waits for credits or reads requests.
  //
  // Requests are read as they come: credits add up, and reports go to their
  // shard servers at once. While the stream has credits, polls take tasks
  // (up to the credits left) and queue them; a poll holds no thread while
  // it waits. Tasks and report answers are written in arrival order;
  // those that arrive while a message is being written are merged into the
  // next one, so a busy stream sends fewer, larger messages. The call ends
  // once the worker has half-closed or gone away, or an error came, and
  // nothing the stream started is still running.
  class TaskStream final : public grpc::ServerBidiReactor<v1::StreamActivityTasksRequest,
                                                          v1::StreamActivityTasksResponse> {
   public:
    TaskStream(StepFunctionsService* service, grpc::CallbackServerContext* context)
        : service_(service), context_(context) {
      StartRead(&request_);
    }

    void OnReadDone(bool ok) override {
      if (!ok) {  // half-closed by the worker, or the call is over
        {
          absl::MutexLock lock(&mu_);
          read_closed_ = true;
        }
        return Advance();
      }
      bool read_on = true;
      {
        absl::MutexLock lock(&mu_);
        if (!opened_) {
          opened_ = true;
          activity_arn_ = request_.activity_arn();
          worker_name_ = request_.worker_name();
          absl::Status valid = service_->ValidatePoll(activity_arn_, worker_name_);
          if (!valid.ok()) {
            error_ = std::move(valid);
            read_on = false;
          }
        }
        // In any request: a negative grant would take back tasks already
        // on their way.
        if (read_on && request_.credits() < 0) {
          error_ = ConstraintViolation("credits", "Member must not be negative");
          read_on = false;
        }
        if (read_on) {
          credits_ += request_.credits();
          reports_in_flight_ += request_.reports_size();
        }
      }
      if (read_on) {
        // The credits first: a poll they start waits in its task queue
        // before the reports' transitions run, so a transition that
        // schedules the execution's next task hands it over in its own
        // write (a sync match) rather than through the backlog and a
        // hand-over transition of its own.
        Advance();
        for (v1::TaskReport& report : *request_.mutable_reports()) Send(std::move(report));
        StartRead(&request_);
      }
      Advance();
    }

    void OnWriteDone(bool ok) override {
      {
        absl::MutexLock lock(&mu_);
        writing_ = false;
        outgoing_.pop_front();
        if (!ok) {
          // The worker is gone: what was written is lost to it only (its
          // tasks come back after their timeouts), and nothing more goes.
          write_failed_ = true;
          outgoing_.clear();
        }
      }
      Advance();
    }

    void OnCancel() override {
      {
        absl::MutexLock lock(&mu_);
        cancelled_ = true;
      }
      Advance();
    }

    void OnDone() override { delete this; }

   private:
    // A report on its way to its shard server.
    struct ReportCall {
      v1::TaskReport report;
      v1::SendTaskSuccessResponse success;
      v1::SendTaskFailureResponse failure;
      v1::SendTaskHeartbeatResponse heartbeat;
    };

    void Send(v1::TaskReport report) {
      auto* call = new ReportCall{std::move(report), {}, {}, {}};
      auto done = [this, call](absl::Status status) {
        v1::TaskReportAnswer answer;
        answer.set_report_id(call->report.report_id());
        answer.set_code(static_cast<int>(status.code()));
        answer.set_message(std::string(status.message()));
        delete call;
        Advance([&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
          --reports_in_flight_;
          *NextMessageLocked().add_answers() = std::move(answer);
        });
      };
      const v1::TaskReport& r = call->report;
      absl::Status sent;
      switch (r.report_case()) {
        case v1::TaskReport::kSuccess:
          sent = service_->Report(context_, r.success(), &call->success, done);
          break;
        case v1::TaskReport::kFailure:
          sent = service_->Report(context_, r.failure(), &call->failure, done);
          break;
        case v1::TaskReport::kHeartbeat:
          sent = service_->Report(context_, r.heartbeat(), &call->heartbeat, done);
          break;
        default:
          sent = absl::InvalidArgumentError(
              "ValidationException: a task report must be a success, a failure or a "
              "heartbeat");
      }
      if (!sent.ok()) done(std::move(sent));
    }

    // The message new tasks and answers go into: the last queued one,
    // unless it is being written.
    v1::StreamActivityTasksResponse& NextMessageLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      if (outgoing_.empty() || (writing_ && outgoing_.size() == 1)) outgoing_.emplace_back();
      return outgoing_.back();
    }

    bool EndingLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return read_closed_ || error_.has_value() || write_failed_ || cancelled_;
    }

    // Applies `update` to the state, then starts what the state allows:
    // the next write, a poll, or the end. A thread that changes what the
    // end waits for does so through `update`: between a change made apart
    // and its Advance, another thread could end the call, and the reactor
    // is deleted once it has ended.
    void Advance(absl::FunctionRef<void()> update = [] {}) {
      const v1::StreamActivityTasksResponse* write = nullptr;
      int polls = 0;
      bool probe = false;
      std::optional<grpc::Status> finish;
      {
        absl::MutexLock lock(&mu_);
        update();
        if (finished_) return;
        if (!writing_ && !outgoing_.empty() && !write_failed_ && !cancelled_) {
          writing_ = true;
          write = &outgoing_.front();
        }
        // The first poll also looks the activity up, credits or not; more
        // start once it has, as many as the credits no poll has reserved
        // call for (each reserves its share when it starts).
        if (opened_ && !EndingLocked()) {
          if (!poll_started_) {
            probe = true;
            poll_started_ = true;
            polls = 1;
          } else if (probed_) {
            const int64_t share = (credits_ + kPollShare - 1) / kPollShare;
            for (int64_t free = credits_ - reserved_;
                 free > 0 && polls_ + polls < kPollsPerStream; free -= std::min(free, share)) {
              ++polls;
            }
          }
          polls_ += polls;
        }
        if (EndingLocked() && polls_ == 0 && reports_in_flight_ == 0 && !writing_ &&
            (outgoing_.empty() || write_failed_ || cancelled_)) {
          finished_ = true;
          finish = error_.has_value() ? rpc::ToGrpcStatus(*error_) : grpc::Status::OK;
        }
      }
      if (write != nullptr) StartWrite(write);
      if (probe) {
        // The look-up waits for its answer: on a thread of the pool.
        service_->poll_pool_.Run([this] { Poll(/*probe_first=*/true); });
      } else {
        // Later polls wait without a thread: started here, they are in
        // line before this thread goes on (see OnReadDone).
        for (int i = 0; i < polls; ++i) Poll(/*probe_first=*/false);
      }
      if (finish.has_value()) Finish(*finish);
    }

    // Takes tasks while the stream has credits that no other poll of it
    // may fill; the first one (`probe_first`, on a thread of the pool)
    // looks the activity up before. Each takes up to half the unfilled
    // credits, and credits freed while the polls are out start more (up
    // to kPollsPerStream), so that polls nearly always wait for every
    // credit: a task that meets a waiting poll is handed over in its
    // transition's own write; one that finds none goes through the
    // backlog and a hand-over transition of its own, and while the polls
    // hand over a backlog, new tasks find none waiting and queue behind
    // it.
    void Poll(bool probe_first) {
      if (probe_first) {
        // Errors of a missing activity are found before any wait: a watch
        // that waits for nothing.
        iv1::PollActivityTasksRequest probe;
        probe.set_activity_arn(activity_arn_);
        probe.set_max_tasks(0);
        iv1::PollActivityTasksResponse ignored;
        absl::Status exists = service_->router_->CallOwner(
            context_, config::TaskQueuePartitionKey(activity_arn_, 0),
            DeadlineOf(context_, kDefaultDeadline), STEPFLOW_SHARD_METHOD(PollActivityTasks),
            probe, &ignored);
        bool failed = !exists.ok();
        Advance([&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
          if (failed) {
            error_ = std::move(exists);
            --polls_;
          } else {
            probed_ = true;
          }
        });
        if (failed) return;
      }
      if (const std::vector<int> owners = service_->PartitionOwners(activity_arn_);
          owners.size() == 1) {
        // One server holds every partition: a poll is one call there,
        // which need not hold a thread here while it waits.
        PollOneServer(owners[0]);
        return;
      }
      PollSeveralServers();
    }

    // Poll's loop when several servers hold the partitions: each poll is
    // PollPartitions, made again from its answer.
    void PollSeveralServers(int held = 0) {
      int wanted = 0;
      bool done = false;
      // Ends the poll when done: the last touch of the reactor here.
      Advance([&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { ReserveLocked(held, &wanted, &done); });
      if (done) return;
      auto polled = std::make_shared<iv1::PollActivityTasksResponse>();
      service_->PollPartitions(
          context_, activity_arn_, worker_name_, wanted, absl::Now() + kStreamPollWindow, polled,
          [this, polled, wanted](absl::Status status) {
            bool done = false;
            Advance([&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
              TakePolledLocked(wanted, std::move(status), polled.get(), &done);
            });
            if (!done) PollSeveralServers(wanted);
          });
    }

    // A poll of PollOneServer, kept until its answer.
    struct OneServerPoll {
      iv1::PollActivityTasksRequest request;
      iv1::PollActivityTasksResponse response;
      absl::Time asked;
      RepollPacer pacer;
      std::unique_ptr<grpc::Alarm> pause;
    };

    // Poll's loop when one server (`owner`) holds every partition: each
    // poll is an asynchronous call there, made again from its answer. A
    // local server answers it from the transition that hands the tasks
    // over, so no thread waits for them on either side; a poll it cannot
    // answer so (a backlog to hand over) runs on a thread of the router.
    void PollOneServer(int owner, RepollPacer pacer = {}, int held = 0) {
      int wanted = 0;
      bool done = false;
      // Ends the poll when done: the last touch of the reactor here.
      Advance([&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { ReserveLocked(held, &wanted, &done); });
      if (done) return;
      auto poll = std::make_shared<OneServerPoll>();
      poll->asked = absl::Now();
      poll->pacer = pacer;
      poll->request.set_activity_arn(activity_arn_);
      poll->request.set_worker_name(worker_name_);
      poll->request.set_max_tasks(wanted);
      poll->request.set_wait_ms(absl::ToInt64Milliseconds(kStreamPollWindow));
      service_->router_->CallAsync(
          context_, owner, absl::Now() + kStreamPollWindow + kTakeAnswerMargin,
          STEPFLOW_SHARD_METHOD(PollActivityTasks), poll->request, &poll->response,
          [this, owner, poll, wanted](absl::Status status) {
            const int tasks = poll->response.tasks_size();
            bool done = false;
            Advance([&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
              TakePolledLocked(wanted, std::move(status), &poll->response, &done);
            });
            if (done) return;
            // The stream stays while this poll is counted, so also while
            // it pauses.
            AfterPause(poll->pacer.Next(absl::Now() - poll->asked, tasks), &poll->pause,
                       [this, owner, poll, wanted] { PollOneServer(owner, poll->pacer, wanted); });
          },
          ShardRouter::LocalCall::kInlineUnlessDeclined);
    }

    // What the next poll may take: `*wanted` credits reserved for it, or
    // `*done` (the poll ends) when none is left or the stream ends. `held`:
    // the reservation of the poll's previous round, kept until now so that
    // a pause between rounds does not look like spare credits (another
    // poll, with a pacer of its own, would start meanwhile).
    void ReserveLocked(int held, int* wanted, bool* done) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      reserved_ -= held;
      const int64_t share = (credits_ + kPollShare - 1) / kPollShare;
      *wanted =
          static_cast<int>(std::min({credits_ - reserved_, share, int64_t{kMaxTasksPerPoll}}));
      if (*wanted <= 0 || EndingLocked()) {
        --polls_;
        *done = true;
      } else {
        reserved_ += *wanted;
      }
    }

    // A poll for `wanted` tasks answered: its tasks go into the next
    // message; an error ends the poll (`*done`) and the stream. A poll that
    // goes on keeps its reservation until its next round (ReserveLocked).
    void TakePolledLocked(int wanted, absl::Status status,
                          iv1::PollActivityTasksResponse* polled, bool* done)
        ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      if (!status.ok()) {
        if (!error_.has_value() && !cancelled_) error_ = std::move(status);
        reserved_ -= wanted;
        --polls_;
        *done = true;
        return;
      }
      if (polled->tasks_size() == 0) return;
      credits_ -= polled->tasks_size();
      auto* tasks = NextMessageLocked().mutable_tasks();
      for (v1::DeliveredActivityTask& task : *polled->mutable_tasks()) {
        *tasks->Add() = std::move(task);
      }
    }

    StepFunctionsService* const service_;
    grpc::CallbackServerContext* const context_;
    // Read into by one read at a time.
    v1::StreamActivityTasksRequest request_;
    // Set by the first request; read by the poll.
    std::string activity_arn_;
    std::string worker_name_;

    absl::Mutex mu_;
    bool opened_ ABSL_GUARDED_BY(mu_) = false;
    bool read_closed_ ABSL_GUARDED_BY(mu_) = false;
    bool write_failed_ ABSL_GUARDED_BY(mu_) = false;
    bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
    std::optional<absl::Status> error_ ABSL_GUARDED_BY(mu_);
    int64_t credits_ ABSL_GUARDED_BY(mu_) = 0;
    // Polls running, and the credits they may fill.
    int polls_ ABSL_GUARDED_BY(mu_) = 0;
    int64_t reserved_ ABSL_GUARDED_BY(mu_) = 0;
    bool poll_started_ ABSL_GUARDED_BY(mu_) = false;
    bool probed_ ABSL_GUARDED_BY(mu_) = false;  // the activity exists
    int reports_in_flight_ ABSL_GUARDED_BY(mu_) = 0;
    // Messages to write, the first one being written when `writing_`.
    std::deque<v1::StreamActivityTasksResponse> outgoing_ ABSL_GUARDED_BY(mu_);
    bool writing_ ABSL_GUARDED_BY(mu_) = false;
    bool finished_ ABSL_GUARDED_BY(mu_) = false;
  };

  static absl::StatusOr<iv1::TaskTokenContent> PeekToken(const std::string& token) {
    RETURN_IF_ERROR(ValidateLength("taskToken", token, 1, 1024));
    return tasktoken::TaskTokenCodec::Peek(token);
  }

  const GatewayOptions& options_;
  ShardRouter* router_;
  std::atomic<size_t> next_poll_owner_{0};
  // Threads for the steps of polls that must not run on the thread they
  // come from: a stream's first poll (which looks the activity up) and a
  // poll made again from an answer that may have come at once. Last member:
  // its destructor finishes those still running.
  rpc::BlockingPool poll_pool_;
};

#undef STEPFLOW_NOT_YET
#undef STEPFLOW_SHARD_METHOD

}  // namespace

class Gateway::Impl {
 public:
  GatewayOptions options;
  std::unique_ptr<ShardRouter> router;
  std::unique_ptr<StepFunctionsService> states;
  std::unique_ptr<EventBridgeService> events;
  std::unique_ptr<rpc::RunningServer> server;
};

Gateway::Gateway(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Gateway::~Gateway() { Shutdown(); }

absl::StatusOr<std::unique_ptr<Gateway>> Gateway::Start(GatewayOptions options) {
  if (options.shard_map.servers().empty()) {
    return absl::InvalidArgumentError("the gateway needs at least one shard server address");
  }
  if (!options.new_execution_name) options.new_execution_name = RandomUuid;
  auto impl = std::make_unique<Impl>();
  impl->options = std::move(options);
  std::vector<ShardServiceBase*> local_services;
  for (grpc::Service* service : impl->options.local_shard_services) {
    auto* shard_service = dynamic_cast<ShardServiceBase*>(service);
    if (service != nullptr && shard_service == nullptr) {
      return absl::InvalidArgumentError("a local shard service is not a ShardService");
    }
    local_services.push_back(shard_service);
  }
  impl->router = std::make_unique<ShardRouter>(impl->options.shard_map,
                                               impl->options.shard_channels, local_services);
  impl->states = std::make_unique<StepFunctionsService>(impl->options, impl->router.get());
  ASSIGN_OR_RETURN(impl->events, EventBridgeService::Create(impl->options));
  if (!impl->options.embedded) {
    rpc::ServerOptions server_options;
    server_options.listen_address = impl->options.listen_address;
    server_options.component = kComponent;
    server_options.registry = impl->options.registry;
    server_options.services = {impl->states.get(), impl->events.get()};
    ASSIGN_OR_RETURN(impl->server, rpc::RunningServer::Start(std::move(server_options)));
    log::Info(kComponent, "gateway serving",
              {{"address", impl->server->address()},
               {"shard_servers", static_cast<int64_t>(impl->options.shard_map.servers().size())},
               {"shards", static_cast<int64_t>(impl->options.shard_map.shard_count())}});
  }
  return std::unique_ptr<Gateway>(new Gateway(std::move(impl)));
}

std::vector<grpc::Service*> Gateway::services() {
  return {impl_->states.get(), impl_->events.get()};
}
int Gateway::port() const { return impl_->server ? impl_->server->port() : 0; }
std::string Gateway::address() const { return impl_->server ? impl_->server->address() : ""; }

std::shared_ptr<grpc::Channel> Gateway::InProcessChannel() {
  return impl_->server ? impl_->server->InProcessChannel() : nullptr;
}

void Gateway::Shutdown() {
  if (impl_ && impl_->server) impl_->server->Shutdown(absl::Seconds(2));
}

}  // namespace stepflow::gateway
