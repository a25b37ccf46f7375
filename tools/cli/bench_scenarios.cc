#include "tools/cli/bench_scenarios.h"

#include <unistd.h>

#include <atomic>
#include <deque>
#include <map>
#include <optional>
#include <thread>

#include "absl/container/flat_hash_map.h"
#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "common/rpc/status.h"
#include "grpcpp/channel.h"
#include "grpcpp/client_context.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/support/byte_buffer.h"
#include "services/worker/worker.h"
#include "stepflow/v1/events.grpc.pb.h"
#include "stepflow/v1/states.grpc.pb.h"

namespace stepflow::cli::bench {
namespace {

// The longest wait between two DescribeExecution polls of one execution
// whose workflow runs for less than 200 ms.
constexpr absl::Duration kMaxPollDelay = absl::Milliseconds(50);
// The longest wait before the first poll.
constexpr absl::Duration kMaxFirstPollDelay = absl::Seconds(10);
// The first wait after a poll that found the execution running, when the
// pacer has nothing better.
constexpr absl::Duration kMinPollDelay = absl::Microseconds(500);
// How long the events scenario waits, after the load, for target executions
// that stop making progress.
constexpr absl::Duration kEventsDrainStall = absl::Seconds(10);
// How often the ends of executions are counted while the driver waits for
// them: after the load, and between slices (where every millisecond of
// waiting stretches the run).
constexpr absl::Duration kDrainPoll = absl::Milliseconds(100);
constexpr absl::Duration kSettlePoll = absl::Milliseconds(10);
// Between slices the wait ends sooner when the ends stop coming (the wait
// after the load still reports the executions that never ended).
constexpr absl::Duration kSettleStall = absl::Seconds(1);
// How long the events scenario waits for its probe event's execution.
constexpr absl::Duration kProbeDeliveryTimeout = absl::Seconds(60);
// The field the activities scenario stamps into each input, read back by
// its workers to measure schedule-to-start.
constexpr char kStampKey[] = "\"stepflow_bench_start_us\":";
// And the key of the operation the input belongs to, which the worker's
// report of the task's result finds the operation by.
constexpr char kOperationKey[] = "\"stepflow_bench_op\":\"";
// With --tasks N > 1: the tasks left, counting this one, in the first
// task's input (N)...
constexpr char kTasksLeftKey[] = "\"stepflow_bench_tasks\":";
// ... and in each later one's, the result of the task before (its Task
// state's ResultPath, which the Choice after it reads): {"left": tasks
// left, "reported_us": when the worker reported it}.
constexpr char kLoopResultPath[] = "$.stepflow_bench_result";
constexpr char kLoopResultKey[] = "\"stepflow_bench_result\":{\"left\":";
constexpr char kReportedKey[] = "\"reported_us\":";

std::unique_ptr<grpc::ClientContext> NewContext(absl::Duration timeout) {
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  return context;
}

std::string UniqueName(absl::string_view kind) {
  absl::BitGen random;
  return absl::StrFormat("bench-%s-%d-%08x", kind, getpid(),
                         absl::Uniform<uint32_t>(random));
}

bool IsTerminal(absl::string_view status) {
  return status == "SUCCEEDED" || status == "FAILED" || status == "TIMED_OUT" ||
         status == "ABORTED";
}

// A setup or teardown call: synchronous, with the RPC timeout, its failure
// as an absl::Status saying which step failed.
template <typename Stub, typename Request, typename Response>
absl::Status Call(absl::string_view step, Stub* stub,
                  grpc::Status (Stub::*method)(grpc::ClientContext*,
                                               const Request&, Response*),
                  const Request& request, Response* response,
                  absl::Duration timeout) {
  std::unique_ptr<grpc::ClientContext> context = NewContext(timeout);
  grpc::Status status = (stub->*method)(context.get(), request, response);
  if (status.ok()) return absl::OkStatus();
  absl::Status error = rpc::FromGrpcStatus(status);
  return absl::Status(error.code(), absl::StrCat(step, ": ", error.message()));
}

// Counts execution outcomes by status across all slots. Thread-safe.
class StatusTally {
 public:
  void Add(const std::string& status) {
    absl::MutexLock lock(&mu_);
    ++counts_[status];
  }
  std::map<std::string, int64_t> counts() const {
    absl::MutexLock lock(&mu_);
    return counts_;
  }

 private:
  mutable absl::Mutex mu_;
  std::map<std::string, int64_t> counts_ ABSL_GUARDED_BY(mu_);
};

// Learns how long executions run (stop_date - start_date as the server
// reports them), so the first DescribeExecution of an execution comes about
// when it is likely over: most executions then need one poll. Thread-safe.
class PollPacer {
 public:
  // The first poll comes at 0.9x the average run time.
  absl::Duration FirstDelay() const {
    return std::min(Average() * 0.9, kMaxFirstPollDelay);
  }
  // The wait after the `retry`-th poll (1, 2, ...) that found the execution
  // still running: from 1/16 of the average run time (at least
  // kMinPollDelay), doubling, up to the larger of kMaxPollDelay and a
  // quarter of the average — so a slow workflow is not polled every 50 ms,
  // and its latency is over-measured by at most about a quarter.
  absl::Duration RetryDelay(int retry) const {
    absl::Duration average = Average();
    absl::Duration delay = std::max(average / 16, kMinPollDelay);
    absl::Duration cap = std::max(kMaxPollDelay, average / 4);
    for (int i = 1; i < retry && delay < cap; ++i) delay *= 2;
    return std::min(delay, cap);
  }
  void Observe(absl::Duration run_time) {
    int64_t sample =
        absl::ToInt64Nanoseconds(std::max(run_time, absl::ZeroDuration()));
    int64_t average = average_ns_.load(std::memory_order_relaxed);
    // An exponential moving average over ~16 samples; lost updates between
    // racing slots do not matter.
    average_ns_.store(average == 0 ? sample : average + (sample - average) / 16,
                      std::memory_order_relaxed);
  }

 private:
  absl::Duration Average() const {
    return absl::Nanoseconds(average_ns_.load(std::memory_order_relaxed));
  }

  std::atomic<int64_t> average_ns_{0};
};

absl::Time ToTime(const google::protobuf::Timestamp& timestamp) {
  return absl::FromUnixSeconds(timestamp.seconds()) +
         absl::Nanoseconds(timestamp.nanos());
}

// `input` with kStampKey set to the current time in microseconds (and
// kOperationKey to `operation`, when not empty; kTasksLeftKey to `tasks`
// when more than 1), when it is a JSON object; unchanged otherwise.
std::string StampInput(const std::string& input, const std::string& operation = "",
                       int tasks = 1) {
  size_t open = input.find_first_not_of(" \t\r\n");
  if (open == std::string::npos || input[open] != '{') return input;
  size_t next = input.find_first_not_of(" \t\r\n", open + 1);
  bool empty_object = next != std::string::npos && input[next] == '}';
  std::string key_field =
      operation.empty() ? "" : absl::StrCat(kOperationKey, operation, "\",");
  if (tasks > 1) absl::StrAppend(&key_field, kTasksLeftKey, tasks, ",");
  return absl::StrCat(input.substr(0, open + 1), key_field, kStampKey,
                      absl::ToUnixMicros(absl::Now()), empty_object ? "" : ",",
                      input.substr(open + 1));
}

// The operation key StampInput wrote, if any (empty otherwise).
std::string ReadOperationKey(const std::string& input) {
  size_t at = input.find(kOperationKey);
  if (at == std::string::npos) return "";
  at += sizeof(kOperationKey) - 1;
  size_t end = input.find('"', at);
  return end == std::string::npos ? "" : input.substr(at, end - at);
}

// The digits after `key` in `text`, if it is there.
std::optional<int64_t> ReadNumberAfter(const std::string& text, std::string_view key) {
  size_t at = text.find(key);
  if (at == std::string::npos) return std::nullopt;
  int64_t number = 0;
  for (size_t i = at + key.size(); i < text.size() && text[i] >= '0' && text[i] <= '9'; ++i) {
    number = number * 10 + (text[i] - '0');
  }
  return number;
}

// The stamp StampInput wrote, if any.
std::optional<absl::Time> ReadStamp(const std::string& input) {
  std::optional<int64_t> micros = ReadNumberAfter(input, kStampKey);
  if (!micros.has_value()) return std::nullopt;
  return absl::FromUnixMicros(*micros);
}

// When an activity task was scheduled, at the latest: the report of the
// execution's task before (--tasks), or else the execution's start.
std::optional<absl::Time> ReadTaskStamp(const std::string& input) {
  if (input.find(kLoopResultKey) != std::string::npos) {
    if (std::optional<int64_t> micros = ReadNumberAfter(input, kReportedKey)) {
      return absl::FromUnixMicros(*micros);
    }
  }
  return ReadStamp(input);
}

// The tasks an activity task's execution has left to run, this one
// included: 1 for a one-Task workflow's.
int64_t ReadTasksLeft(const std::string& input) {
  std::optional<int64_t> left = ReadNumberAfter(input, kLoopResultKey);
  if (!left.has_value()) left = ReadNumberAfter(input, kTasksLeftKey);
  return left.value_or(1);
}

// What the StartExecution operations of one scenario share.
struct ExecutionShared {
  std::string state_machine_arn;
  std::string input;
  // Count only SUCCEEDED executions as completed (standard, activities);
  // otherwise any end (express-async).
  bool expect_success = true;
  // Stamp each input with its start time (activities).
  bool stamp_input = false;
  // Activity tasks per execution (activities).
  int tasks = 1;
  absl::Duration timeout;
  Scheduler* scheduler = nullptr;
  PollPacer pacer;
  StatusTally statuses;
  std::atomic<int64_t> describe_calls{0};
  // DescribeExecution calls answered RESOURCE_EXHAUSTED (polled again).
  std::atomic<int64_t> describe_refusals{0};
};

// StartExecution, then DescribeExecution (METADATA_ONLY) until the
// execution has ended. The whole operation is bounded by the RPC timeout.
class ExecutionOperation final : public Operation {
 public:
  ExecutionOperation(const std::shared_ptr<grpc::Channel>& channel,
                     ExecutionShared* shared)
      : stub_(v1::StepFunctions::NewStub(channel)), shared_(shared) {
    start_request_.set_state_machine_arn(shared->state_machine_arn);
    start_request_.set_input(shared->input);
    describe_request_.set_included_data("METADATA_ONLY");
  }

  void Start(std::function<void(OpOutcome)> done) override {
    done_ = std::move(done);
    give_up_at_ = absl::Now() + shared_->timeout;
    if (shared_->stamp_input)
      start_request_.set_input(StampInput(shared_->input));
    context_ = NewContext(shared_->timeout);
    stub_->async()->StartExecution(
        context_.get(), &start_request_, &start_response_,
        [this](grpc::Status status) {
          if (!status.ok()) return Finish(OpOutcome::FromStatus(status));
          describe_request_.set_execution_arn(start_response_.execution_arn());
          retries_ = 0;
          SchedulePoll(shared_->pacer.FirstDelay());
        });
  }

 private:
  void SchedulePoll(absl::Duration delay) {
    if (delay <= absl::ZeroDuration()) {
      Poll();
    } else {
      shared_->scheduler->After(delay, [this] { Poll(); });
    }
  }

  void Poll() {
    shared_->describe_calls.fetch_add(1, std::memory_order_relaxed);
    context_ =
        NewContext(std::max(give_up_at_ - absl::Now(), absl::Milliseconds(1)));
    stub_->async()->DescribeExecution(
        context_.get(), &describe_request_, &describe_response_,
        [this](grpc::Status status) {
          if (status.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED &&
              absl::Now() < give_up_at_) {
            // Only the watching is refused: the execution runs on, so poll
            // it again later rather than start another.
            shared_->describe_refusals.fetch_add(1, std::memory_order_relaxed);
            return SchedulePoll(shared_->pacer.RetryDelay(++retries_));
          }
          if (!status.ok()) return Finish(OpOutcome::FromStatus(status));
          const std::string& execution_status = describe_response_.status();
          if (!IsTerminal(execution_status)) {
            if (absl::Now() >= give_up_at_) {
              return Finish(OpOutcome::Error(
                  "DEADLINE_EXCEEDED",
                  absl::StrCat("execution still ", execution_status, " after ",
                               absl::FormatDuration(shared_->timeout),
                               " (see --timeout)")));
            }
            return SchedulePoll(shared_->pacer.RetryDelay(++retries_));
          }
          shared_->pacer.Observe(ToTime(describe_response_.stop_date()) -
                                 ToTime(describe_response_.start_date()));
          shared_->statuses.Add(execution_status);
          if (shared_->expect_success && execution_status != "SUCCEEDED") {
            return Finish(OpOutcome::Error(
                execution_status, absl::StrCat(describe_response_.error(), ": ",
                                               describe_response_.cause())));
          }
          Finish(OpOutcome::Ok());
        });
  }

  void Finish(OpOutcome outcome) {
    std::function<void(OpOutcome)> done = std::move(done_);
    done(std::move(outcome));
  }

  std::unique_ptr<v1::StepFunctions::Stub> stub_;
  ExecutionShared* const shared_;
  std::function<void(OpOutcome)> done_;
  std::unique_ptr<grpc::ClientContext> context_;
  absl::Time give_up_at_;
  // Polls of this execution that found it running.
  int retries_ = 0;
  v1::StartExecutionRequest start_request_;
  v1::StartExecutionResponse start_response_;
  v1::DescribeExecutionRequest describe_request_;
  v1::DescribeExecutionResponse describe_response_;
};

// StartSyncExecution: one call that answers with the execution's end.
class SyncExecutionOperation final : public Operation {
 public:
  SyncExecutionOperation(const std::shared_ptr<grpc::Channel>& channel,
                         ExecutionShared* shared)
      : stub_(v1::StepFunctions::NewStub(channel)), shared_(shared) {
    request_.set_state_machine_arn(shared->state_machine_arn);
    request_.set_input(shared->input);
    request_.set_included_data("METADATA_ONLY");
  }

  void Start(std::function<void(OpOutcome)> done) override {
    done_ = std::move(done);
    context_ = NewContext(shared_->timeout);
    stub_->async()->StartSyncExecution(
        context_.get(), &request_, &response_, [this](grpc::Status status) {
          std::function<void(OpOutcome)> done = std::move(done_);
          if (!status.ok()) return done(OpOutcome::FromStatus(status));
          shared_->statuses.Add(response_.status());
          if (response_.status() != "SUCCEEDED") {
            return done(OpOutcome::Error(
                response_.status(),
                absl::StrCat(response_.error(), ": ", response_.cause())));
          }
          done(OpOutcome::Ok());
        });
  }

 private:
  std::unique_ptr<v1::StepFunctions::Stub> stub_;
  ExecutionShared* const shared_;
  std::function<void(OpOutcome)> done_;
  std::unique_ptr<grpc::ClientContext> context_;
  v1::StartSyncExecutionRequest request_;
  v1::StartSyncExecutionResponse response_;
};

// The activities scenario's operations in flight, by the key stamped into
// their executions' inputs. An operation ends when both its StartExecution
// has been answered and a worker's report of its task's result has been
// answered (the one-Task execution closes in that transition), or at its
// first error: no DescribeExecution polls, so a round trip costs the
// gateway calls a worker and a starter cannot do without.
class RoundTrips {
 public:
  // Registers an operation that ends with `done`; its key.
  std::string Expect(std::function<void(OpOutcome)> done) {
    absl::MutexLock lock(&mu_);
    std::string key = absl::StrCat(next_key_++);
    pending_[key].done = std::move(done);
    return key;
  }
  // The operation's start (`start`) or its task's report was answered. It
  // ends once its start was answered and the report came or either failed
  // (a failed start never gets a report to wait for); so `done` is never
  // called before the start's callback runs. Unknown keys are ignored (an
  // operation that timed out, a task of another run).
  void Arrived(const std::string& key, bool start, OpOutcome outcome) {
    std::function<void(OpOutcome)> done;
    OpOutcome result;
    {
      absl::MutexLock lock(&mu_);
      auto it = pending_.find(key);
      if (it == pending_.end()) return;
      Pending& pending = it->second;
      (start ? pending.start_answered : pending.reported) = true;
      if (!outcome.ok && !pending.error.has_value()) pending.error = std::move(outcome);
      if (!pending.start_answered || (!pending.reported && !pending.error.has_value())) return;
      result = pending.error.has_value() ? std::move(*pending.error) : OpOutcome::Ok();
      done = std::move(pending.done);
      pending_.erase(it);
    }
    done(std::move(result));
  }

 private:
  struct Pending {
    std::function<void(OpOutcome)> done;
    bool start_answered = false;
    bool reported = false;
    std::optional<OpOutcome> error;
  };
  absl::Mutex mu_;
  uint64_t next_key_ ABSL_GUARDED_BY(mu_) = 0;
  std::map<std::string, Pending> pending_ ABSL_GUARDED_BY(mu_);
};

// StartExecution of a one-Task workflow, done when its task's result has
// been reported (see RoundTrips) or, failing that, after the RPC timeout.
class RoundTripOperation final : public Operation {
 public:
  RoundTripOperation(const std::shared_ptr<grpc::Channel>& channel, ExecutionShared* shared,
                     std::shared_ptr<RoundTrips> trips)
      : stub_(v1::StepFunctions::NewStub(channel)), shared_(shared), trips_(std::move(trips)) {
    request_.set_state_machine_arn(shared->state_machine_arn);
  }

  void Start(std::function<void(OpOutcome)> done) override {
    const std::string key = trips_->Expect(std::move(done));
    request_.set_input(StampInput(shared_->input, key, shared_->tasks));
    context_ = NewContext(shared_->timeout);
    stub_->async()->StartExecution(
        context_.get(), &request_, &response_, [this, key](grpc::Status status) {
          if (status.ok()) {
            // The report may never come (a lost task): the operation then
            // fails after the RPC timeout. `trips_` outlives the run.
            shared_->scheduler->After(shared_->timeout, [trips = trips_, key] {
              trips->Arrived(key, /*start=*/false,
                             OpOutcome::Error("DEADLINE_EXCEEDED",
                                              "no result was reported for the task in time "
                                              "(see --timeout)"));
            });
          }
          trips_->Arrived(key, /*start=*/true,
                          status.ok() ? OpOutcome::Ok() : OpOutcome::FromStatus(status));
        });
  }

 private:
  std::unique_ptr<v1::StepFunctions::Stub> stub_;
  ExecutionShared* const shared_;
  const std::shared_ptr<RoundTrips> trips_;
  std::unique_ptr<grpc::ClientContext> context_;
  v1::StartExecutionRequest request_;
  v1::StartExecutionResponse response_;
};

// StartExecution alone: done once the start is accepted (what a caller
// of an asynchronous EXPRESS workflow waits for); the scenario counts the
// executions' ends afterwards.
class StartOnlyOperation final : public Operation {
 public:
  StartOnlyOperation(const std::shared_ptr<grpc::Channel>& channel, ExecutionShared* shared,
                     std::atomic<int64_t>* accepted)
      : stub_(v1::StepFunctions::NewStub(channel)), shared_(shared), accepted_(accepted) {
    request_.set_state_machine_arn(shared->state_machine_arn);
    request_.set_input(shared->input);
  }

  void Start(std::function<void(OpOutcome)> done) override {
    done_ = std::move(done);
    context_ = NewContext(shared_->timeout);
    stub_->async()->StartExecution(
        context_.get(), &request_, &response_, [this](grpc::Status status) {
          std::function<void(OpOutcome)> done = std::move(done_);
          if (!status.ok()) return done(OpOutcome::FromStatus(status));
          accepted_->fetch_add(1, std::memory_order_relaxed);
          done(OpOutcome::Ok());
        });
  }

 private:
  std::unique_ptr<v1::StepFunctions::Stub> stub_;
  ExecutionShared* const shared_;
  std::atomic<int64_t>* const accepted_;
  std::function<void(OpOutcome)> done_;
  std::unique_ptr<grpc::ClientContext> context_;
  v1::StartExecutionRequest request_;
  v1::StartExecutionResponse response_;
};

class HealthCheckOperation final : public Operation {
 public:
  HealthCheckOperation(std::shared_ptr<grpc::Channel> channel,
                       absl::Duration timeout)
      : stub_(std::move(channel)), timeout_(timeout) {
    // An empty HealthCheckRequest (service "": the whole server) is zero
    // bytes on the wire.
    grpc::Slice empty;
    request_ = grpc::ByteBuffer(&empty, 1);
  }

  void Start(std::function<void(OpOutcome)> done) override {
    done_ = std::move(done);
    context_ = NewContext(timeout_);
    stub_.UnaryCall(
        context_.get(), "/grpc.health.v1.Health/Check", grpc::StubOptions(),
        &request_, &response_, [this](grpc::Status status) {
          std::function<void(OpOutcome)> done = std::move(done_);
          if (!status.ok()) return done(OpOutcome::FromStatus(status));
          // HealthCheckResponse{status: SERVING} is field 1,
          // varint 1: the bytes 08 01.
          grpc::Slice slice;
          if (!response_.DumpToSingleSlice(&slice).ok() || slice.size() != 2 ||
              slice.begin()[0] != 0x08 || slice.begin()[1] != 0x01) {
            return done(OpOutcome::Error(
                "NOT_SERVING",
                absl::StrCat("the health check did not answer SERVING (",
                             slice.size(), " bytes)")));
          }
          done(OpOutcome::Ok());
        });
  }

 private:
  grpc::GenericStub stub_;
  const absl::Duration timeout_;
  std::function<void(OpOutcome)> done_;
  std::unique_ptr<grpc::ClientContext> context_;
  grpc::ByteBuffer request_;
  grpc::ByteBuffer response_;
};

// PutEvents of one event that the scenario's rule routes to its state
// machine.
class PutEventsOperation final : public Operation {
 public:
  PutEventsOperation(const std::shared_ptr<grpc::Channel>& channel,
                     const v1::PutEventsRequestEntry& entry,
                     absl::Duration timeout, std::atomic<int64_t>* accepted)
      : stub_(v1::EventBridge::NewStub(channel)),
        timeout_(timeout),
        accepted_(accepted) {
    *request_.add_entries() = entry;
  }

  void Start(std::function<void(OpOutcome)> done) override {
    done_ = std::move(done);
    context_ = NewContext(timeout_);
    stub_->async()->PutEvents(
        context_.get(), &request_, &response_, [this](grpc::Status status) {
          std::function<void(OpOutcome)> done = std::move(done_);
          if (!status.ok()) return done(OpOutcome::FromStatus(status));
          if (response_.failed_entry_count() > 0) {
            std::string code = "FailedEntry";
            std::string message;
            if (response_.entries_size() > 0) {
              if (!response_.entries(0).error_code().empty())
                code = response_.entries(0).error_code();
              message = response_.entries(0).error_message();
            }
            return done(OpOutcome::Error(code, message));
          }
          accepted_->fetch_add(1, std::memory_order_relaxed);
          done(OpOutcome::Ok());
        });
  }

 private:
  std::unique_ptr<v1::EventBridge::Stub> stub_;
  const absl::Duration timeout_;
  std::atomic<int64_t>* const accepted_;
  std::function<void(OpOutcome)> done_;
  std::unique_ptr<grpc::ClientContext> context_;
  v1::PutEventsRequest request_;
  v1::PutEventsResponse response_;
};

// express-async, express-sync, standard: one state machine, one execution
// per operation.
class StateMachineScenario : public Scenario {
 public:
  StateMachineScenario(const ScenarioContext& context, std::string type,
                       bool sync, bool expect_success)
      : context_(context),
        stub_(v1::StepFunctions::NewStub(context.channels.front())),
        type_(std::move(type)),
        sync_(sync) {
    shared_.input = context.input;
    shared_.expect_success = expect_success;
    shared_.timeout = context.options->rpc_timeout;
    shared_.scheduler = context.scheduler;
    if (type_ == "EXPRESS" && context.closed_express) {
      absl::StatusOr<std::map<std::string, int64_t>> before = context.closed_express();
      if (before.ok()) {
        closed_before_ = std::move(*before);
      } else {
        closed_before_status_ = before.status();
      }
    }
  }

  absl::Status SetUp() override {
    return CreateStateMachine(context_.definition);
  }

  std::unique_ptr<Operation> MakeOperation(int slot) override {
    const auto& channel =
        context_.channels[static_cast<size_t>(slot) % context_.channels.size()];
    if (sync_)
      return std::make_unique<SyncExecutionOperation>(channel, &shared_);
    if (type_ == "EXPRESS")
      return std::make_unique<StartOnlyOperation>(channel, &shared_, &accepted_);
    return std::make_unique<ExecutionOperation>(channel, &shared_);
  }

  void Settle() override {
    // Only when the ends can be counted cheaply and completely: listing
    // finds only the EXPRESS executions the servers still remember.
    if (sync_ || type_ != "EXPRESS" || !context_.closed_express) return;
    absl::Duration waited;
    absl::Status error;  // counted again, and reported, after the load
    (void)AwaitEnded(accepted_.load() + probe_ended_, kSettlePoll, kSettleStall, &waited, &error);
    settle_waited_ += waited;
  }

  void Finish(BenchReport* report) override {
    if (!sync_ && type_ == "EXPRESS") return FinishStartsOnly(report);
    report->statuses = shared_.statuses.counts();
    int64_t ended = 0;
    for (const auto& [status, count] : report->statuses) ended += count;
    if (!sync_ && ended > 0) {
      // What observing the end costs: polls per execution (1 is the least).
      if (int64_t refusals = shared_.describe_refusals.load(); refusals > 0) {
        report->extras["describe_resource_exhausted"] =
            static_cast<double>(refusals);
      }
      report->extras["describe_calls_per_execution"] =
          static_cast<double>(shared_.describe_calls.load()) /
          static_cast<double>(ended);
    }
  }

  void TearDown() override {
    if (shared_.state_machine_arn.empty()) return;
    v1::DeleteStateMachineRequest request;
    request.set_state_machine_arn(shared_.state_machine_arn);
    v1::DeleteStateMachineResponse response;
    (void)Call("DeleteStateMachine", stub_.get(),
               &v1::StepFunctions::Stub::DeleteStateMachine, request, &response,
               timeout());
  }

 protected:
  absl::Status CreateStateMachine(const std::string& definition) {
    v1::CreateStateMachineRequest request;
    request.set_name(UniqueName(type_ == "EXPRESS" ? "express" : "standard"));
    request.set_definition(definition);
    request.set_type(type_);
    request.set_role_arn("arn:aws:iam::123456789012:role/stepflow-bench");
    v1::CreateStateMachineResponse response;
    absl::Status status = Call("CreateStateMachine", stub_.get(),
                               &v1::StepFunctions::Stub::CreateStateMachine,
                               request, &response, timeout());
    if (status.ok()) shared_.state_machine_arn = response.state_machine_arn();
    return status;
  }

  absl::Duration timeout() const { return context_.options->rpc_timeout; }

  // Waits until as many executions of the state machine have ended as
  // `expected`, looking every `poll`, or until their count stops growing
  // for `stall`; the ended ones by status (the last count made), and how
  // long the wait took. A failure to count ends the wait; it is returned
  // in `*error`.
  std::map<std::string, int64_t> AwaitEnded(int64_t expected, absl::Duration poll,
                                            absl::Duration stall, absl::Duration* waited,
                                            absl::Status* error) {
    const absl::Time drain_start = absl::Now();
    std::map<std::string, int64_t> ended;
    int64_t total_ended = 0;
    absl::Time last_progress = drain_start;
    while (expected > 0) {
      std::map<std::string, int64_t> counts;
      absl::Status status = CountEndedExecutions(&counts);
      if (!status.ok()) {
        *error = std::move(status);
        break;
      }
      int64_t now_ended = 0;
      for (const auto& [name, count] : counts) now_ended += count;
      if (now_ended > total_ended) last_progress = absl::Now();
      total_ended = now_ended;
      ended = std::move(counts);
      if (total_ended >= expected || absl::Now() - last_progress > stall) break;
      absl::SleepFor(poll);
    }
    *waited = absl::Now() - drain_start;
    return ended;
  }

  // AwaitEnded after the load: a failure to count is one of the run's
  // errors.
  std::map<std::string, int64_t> AwaitEndedAfterLoad(int64_t expected, BenchReport* report,
                                                     absl::Duration* waited) {
    absl::Status error;
    std::map<std::string, int64_t> ended =
        AwaitEnded(expected, kDrainPoll, kEventsDrainStall, waited, &error);
    if (!error.ok()) {
      report->run.errors.Add(absl::StatusCodeToString(error.code()),
                             std::string(error.message()));
    }
    return ended;
  }

  // Ended executions of the state machine by status: for EXPRESS, the
  // cluster's closed counter since the scenario began when the bench can
  // read it (the cluster keeps only the recent EXPRESS executions, as AWS
  // keeps none); otherwise listed (all pages).
  absl::Status CountEndedExecutions(std::map<std::string, int64_t>* counts) {
    if (type_ == "EXPRESS" && context_.closed_express) {
      if (!closed_before_status_.ok()) return closed_before_status_;
      absl::StatusOr<std::map<std::string, int64_t>> now = context_.closed_express();
      if (!now.ok()) return now.status();
      for (const auto& [status, count] : *now) {
        auto before = closed_before_.find(status);
        const int64_t since = count - (before == closed_before_.end() ? 0 : before->second);
        if (since > 0) (*counts)[status] = since;
      }
      return absl::OkStatus();
    }
    v1::ListExecutionsRequest request;
    request.set_state_machine_arn(shared_.state_machine_arn);
    request.set_max_results(1000);
    while (true) {
      v1::ListExecutionsResponse response;
      absl::Status status = Call("ListExecutions", stub_.get(),
                                 &v1::StepFunctions::Stub::ListExecutions,
                                 request, &response, timeout());
      if (!status.ok()) return status;
      for (const v1::ExecutionListItem& item : response.executions()) {
        if (IsTerminal(item.status())) ++(*counts)[item.status()];
      }
      if (response.next_token().empty()) return absl::OkStatus();
      request.set_next_token(response.next_token());
    }
  }

  const ScenarioContext& context_;
  std::unique_ptr<v1::StepFunctions::Stub> stub_;
  const std::string type_;
  const bool sync_;
  ExecutionShared shared_;
  // Starts (express-async) or events (events) accepted.
  std::atomic<int64_t> accepted_{0};
  // context_.closed_express() when the scenario began.
  std::map<std::string, int64_t> closed_before_;
  absl::Status closed_before_status_;
  // events: 1 once the probe event's execution was seen.
  int64_t probe_ended_ = 0;
  // The waits of Settle() so far: part of the time the ends took.
  absl::Duration settle_waited_ = absl::ZeroDuration();

 private:
  // express-async: completed = accepted starts over the load; the ends
  // (any status, as `statuses` shows) are counted after it, and a started
  // execution that never ended is an error.
  void FinishStartsOnly(BenchReport* report) {
    const int64_t accepted = accepted_.load();
    absl::Duration waited;
    std::map<std::string, int64_t> ended = AwaitEndedAfterLoad(accepted, report, &waited);
    int64_t total_ended = 0;
    for (const auto& [status, count] : ended) total_ended += count;
    if (total_ended < accepted) {
      report->run.errors.Add("NOT_ENDED",
                             absl::StrCat(accepted - total_ended,
                                          " started executions had not ended ",
                                          absl::FormatDuration(kEventsDrainStall),
                                          " after the last one that did",
                                          context_.closed_express
                                              ? ""
                                              : " (listed: give --metrics to count ends "
                                                "beyond the EXPRESS executions the shard "
                                                "servers remember)"));
    }
    report->statuses = ended;
    report->extras["ended"] = static_cast<double>(total_ended);
    const double span = absl::ToDoubleSeconds(report->run.elapsed + settle_waited_ + waited);
    if (span > 0) report->extras["ended_per_sec"] = static_cast<double>(total_ended) / span;
    report->latency_note =
        "completed counts accepted StartExecution calls and latency_ms is theirs; ended "
        "counts the executions seen ended afterwards, ended_per_sec over the load plus "
        "the wait for them";
  }
};

// Serves an activity through StreamActivityTasks (the cluster pushes tasks
// against credits) instead of the worker SDK's long polls: one stream per
// channel, `slots` credits in all. Each task's result goes back on its
// stream as a report, with the credit its slot frees, so at most `slots`
// tasks are in hand at once, as with `slots` polling workers; the report's
// answer comes back on the stream too.
//
// The streams run on gRPC's callback API: the results of the tasks of each
// message read go back in one request, and requests made while one is
// being written are merged into the next. Start() once, Stop() once (the
// destructor calls it).
class StreamingWorkers {
 public:
  // `on_task` is called with each task's input and gives its result,
  // `on_reported` with its input and its report's answer, both on gRPC
  // threads.
  StreamingWorkers(const std::vector<std::shared_ptr<grpc::Channel>>& channels,
                   std::string activity_arn, int slots,
                   std::function<std::string(const std::string& input)> on_task,
                   std::function<void(const std::string& input, const grpc::Status& status)>
                       on_reported)
      : activity_arn_(std::move(activity_arn)),
        on_task_(std::move(on_task)),
        on_reported_(std::move(on_reported)) {
    int streams = std::max(1, std::min<int>(slots, channels.size()));
    for (int i = 0; i < streams; ++i) {
      streams_.push_back(std::make_unique<Stream>(
          this, v1::StepFunctions::NewStub(channels[i]),
          slots / streams + (i < slots % streams ? 1 : 0)));
    }
  }
  ~StreamingWorkers() { Stop(); }
  StreamingWorkers(const StreamingWorkers&) = delete;
  StreamingWorkers& operator=(const StreamingWorkers&) = delete;

  // Opens the streams. A stream the server ends at once (UNIMPLEMENTED from
  // a cluster without the RPC, INVALID_ARGUMENT, ...) is this call's error.
  absl::Status Start() {
    for (auto& stream : streams_) stream->Open(activity_arn_);
    started_ = true;
    // A refusal comes back at once; a working stream stays open.
    absl::Time deadline = absl::Now() + kStreamProbe;
    bool refused = false;
    for (auto& stream : streams_) refused = stream->AwaitEnd(deadline) || refused;
    if (refused) {
      Stop();
      absl::Status status = rpc::FromGrpcStatus(final_status_);
      if (status.ok()) {
        status = absl::UnavailableError("the server closed the stream at once");
      }
      std::string hint =
          absl::IsUnimplemented(status)
              ? " (--delivery stream is not supported by this cluster yet; use "
                "--delivery poll)"
              : "";
      return absl::Status(
          status.code(),
          absl::StrCat("StreamActivityTasks: ", status.message(), hint));
    }
    return absl::OkStatus();
  }

  // Ends the streams; reports still unanswered are dropped (their
  // operations time out like lost tasks).
  void Stop() {
    if (!started_ || stopped_) return;
    stopped_ = true;
    for (auto& stream : streams_) {
      grpc::Status status = stream->Cancel();
      // The server's own refusal says more than our cancellation.
      if (!status.ok() &&
          (final_status_.ok() ||
           final_status_.error_code() == grpc::StatusCode::CANCELLED)) {
        final_status_ = status;
      }
    }
  }

  int64_t report_errors() const { return report_errors_.load(); }
  // Tasks per message that carried any, over every stream: how much the
  // cluster batches deliveries under load.
  double tasks_per_message() const {
    const int64_t messages = task_messages_.load();
    return messages == 0 ? 0.0 : static_cast<double>(tasks_.load()) / messages;
  }

 private:
  static constexpr absl::Duration kStreamProbe = absl::Milliseconds(300);

  class Stream final : public grpc::ClientBidiReactor<v1::StreamActivityTasksRequest,
                                                      v1::StreamActivityTasksResponse> {
   public:
    Stream(StreamingWorkers* workers, std::unique_ptr<v1::StepFunctions::Stub> stub,
           int credits)
        : workers_(workers), stub_(std::move(stub)), credits_(credits) {}

    void Open(const std::string& activity_arn) {
      context_.set_wait_for_ready(true);
      stub_->async()->StreamActivityTasks(&context_, this);
      v1::StreamActivityTasksRequest first;
      first.set_activity_arn(activity_arn);
      first.set_worker_name("stepflow-bench");
      first.set_credits(credits_);
      Send(std::move(first));
      StartRead(&message_);
      StartCall();
    }

    // True once the stream has ended, waiting until `deadline` at most.
    bool AwaitEnd(absl::Time deadline) {
      absl::MutexLock lock(&mu_);
      mu_.AwaitWithDeadline(absl::Condition(&ended_), deadline);
      return ended_;
    }

    // Cancels the stream and waits for its end; its status.
    grpc::Status Cancel() {
      context_.TryCancel();
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(&ended_));
      return status_;
    }

    void OnReadDone(bool ok) override {
      if (!ok) return;  // the stream is ending: OnDone follows
      for (const v1::TaskReportAnswer& answer : message_.answers()) {
        std::string input;
        {
          absl::MutexLock lock(&mu_);
          auto it = unanswered_.find(answer.report_id());
          if (it == unanswered_.end()) continue;
          input = std::move(it->second);
          unanswered_.erase(it);
        }
        grpc::Status status(static_cast<grpc::StatusCode>(answer.code()), answer.message());
        if (!status.ok()) workers_->report_errors_.fetch_add(1);
        workers_->on_reported_(input, status);
      }
      if (message_.tasks_size() > 0) {
        workers_->task_messages_.fetch_add(1, std::memory_order_relaxed);
        workers_->tasks_.fetch_add(message_.tasks_size(), std::memory_order_relaxed);
        v1::StreamActivityTasksRequest reports;
        for (v1::DeliveredActivityTask& task : *message_.mutable_tasks()) {
          std::string result = workers_->on_task_(task.input());
          v1::TaskReport* report = reports.add_reports();
          report->mutable_success()->set_task_token(std::move(*task.mutable_task_token()));
          report->mutable_success()->set_output(std::move(result));
          absl::MutexLock lock(&mu_);
          report->set_report_id(next_report_id_++);
          unanswered_.emplace(report->report_id(), std::move(*task.mutable_input()));
        }
        reports.set_credits(message_.tasks_size());
        Send(std::move(reports));
      }
      StartRead(&message_);
    }

    void OnWriteDone(bool ok) override {
      const v1::StreamActivityTasksRequest* next = nullptr;
      {
        absl::MutexLock lock(&mu_);
        writes_.pop_front();
        if (!ok) {
          write_failed_ = true;
          writes_.clear();
        } else if (!writes_.empty()) {
          next = &writes_.front();
        }
        writing_ = next != nullptr;
      }
      if (next != nullptr) StartWrite(next);
    }

    void OnDone(const grpc::Status& status) override {
      absl::MutexLock lock(&mu_);
      status_ = status;
      ended_ = true;
    }

   private:
    // Queues `request`, merged into the last queued one unless that one is
    // being written, and writes it when no write is under way.
    void Send(v1::StreamActivityTasksRequest request) {
      const v1::StreamActivityTasksRequest* start = nullptr;
      {
        absl::MutexLock lock(&mu_);
        if (write_failed_) return;
        if (writes_.empty() || (writing_ && writes_.size() == 1)) {
          writes_.push_back(std::move(request));
        } else {
          v1::StreamActivityTasksRequest& last = writes_.back();
          last.set_credits(last.credits() + request.credits());
          for (v1::TaskReport& report : *request.mutable_reports()) {
            *last.add_reports() = std::move(report);
          }
        }
        if (!writing_) {
          writing_ = true;
          start = &writes_.front();
        }
      }
      if (start != nullptr) StartWrite(start);
    }

    StreamingWorkers* const workers_;
    const std::unique_ptr<v1::StepFunctions::Stub> stub_;
    const int credits_;
    grpc::ClientContext context_;
    // Read into by one read at a time.
    v1::StreamActivityTasksResponse message_;
    absl::Mutex mu_;
    // The inputs of the reports not yet answered.
    absl::flat_hash_map<uint64_t, std::string> unanswered_ ABSL_GUARDED_BY(mu_);
    uint64_t next_report_id_ ABSL_GUARDED_BY(mu_) = 0;
    // Requests to write, the first one being written when `writing_`.
    std::deque<v1::StreamActivityTasksRequest> writes_ ABSL_GUARDED_BY(mu_);
    bool writing_ ABSL_GUARDED_BY(mu_) = false;
    bool write_failed_ ABSL_GUARDED_BY(mu_) = false;
    bool ended_ ABSL_GUARDED_BY(mu_) = false;
    grpc::Status status_ ABSL_GUARDED_BY(mu_);
  };

  const std::string activity_arn_;
  const std::function<std::string(const std::string&)> on_task_;
  const std::function<void(const std::string&, const grpc::Status&)> on_reported_;
  std::vector<std::unique_ptr<Stream>> streams_;
  bool started_ = false;
  bool stopped_ = false;
  grpc::Status final_status_;
  std::atomic<int64_t> report_errors_{0};
  std::atomic<int64_t> task_messages_{0};
  std::atomic<int64_t> tasks_{0};
};

// A one-Task workflow (STANDARD unless --workflow-type says EXPRESS) on an
// activity served by in-process workers (the C++ worker SDK) with one slot
// per load slot.
class ActivitiesScenario final : public StateMachineScenario {
 public:
  explicit ActivitiesScenario(const ScenarioContext& context)
      : StateMachineScenario(context, context.options->workflow_type, /*sync=*/false,
                             /*expect_success=*/true) {
    shared_.stamp_input = true;
    shared_.tasks = context.options->tasks_per_execution;
  }

  absl::Status SetUp() override {
    v1::CreateActivityRequest request;
    request.set_name(UniqueName("activity"));
    v1::CreateActivityResponse response;
    absl::Status status = Call("CreateActivity", stub_.get(),
                               &v1::StepFunctions::Stub::CreateActivity,
                               request, &response, timeout());
    if (!status.ok()) return status;
    activity_arn_ = response.activity_arn();
    const int tasks = context_.options->tasks_per_execution;
    std::string definition =
        tasks == 1
            ? absl::StrCat(
                  R"({"Comment":"stepflow bench: one activity task","StartAt":"Work","States":{"Work":{"Type":"Task","Resource":")",
                  activity_arn_, R"(","TimeoutSeconds":)", context_.options->task_timeout_seconds,
                  R"(,"End":true}}})")
            // The Task state again while its result says tasks are left.
            : absl::StrCat(
                  R"({"Comment":"stepflow bench: activity tasks one after the other","StartAt":"Work","States":{"Work":{"Type":"Task","Resource":")",
                  activity_arn_, R"(","TimeoutSeconds":)", context_.options->task_timeout_seconds,
                  R"(,"ResultPath":")", kLoopResultPath,
                  R"(","Next":"More"},"More":{"Type":"Choice","Choices":[{"Variable":")",
                  kLoopResultPath,
                  R"(.left","NumericGreaterThan":0,"Next":"Work"}],"Default":"Done"},"Done":{"Type":"Succeed"}}})");
    status = CreateStateMachine(definition);
    if (!status.ok()) return status;
    if (context_.activity_hand_overs) hand_overs_before_ = context_.activity_hand_overs();

    // Records the task's schedule-to-start; its result.
    auto record_wait = [this, tasks](const std::string& input) -> std::string {
      if (std::optional<absl::Time> stamp = ReadTaskStamp(input)) {
        absl::Duration wait = absl::Now() - *stamp;
        absl::MutexLock lock(&mu_);
        schedule_to_start_.Add(wait);
      }
      if (tasks == 1) return R"({"done":true})";
      return absl::StrCat(R"({"left":)", ReadTasksLeft(input) - 1, ",", kReportedKey,
                          absl::ToUnixMicros(absl::Now()), "}");
    };
    // `trips` outlives the workers: they stop before the scenario ends.
    // The operation ends with its execution's last task, or a failed one.
    auto report_done = [trips = trips_.get()](const std::string& input,
                                              const absl::Status& status) {
      if (status.ok() && ReadTasksLeft(input) > 1) return;
      trips->Arrived(ReadOperationKey(input), /*start=*/false,
                     status.ok() ? OpOutcome::Ok()
                                 : OpOutcome::Error(absl::StatusCodeToString(status.code()),
                                                    std::string(status.message())));
    };
    if (context_.options->delivery == Delivery::kStream) {
      streaming_ = std::make_unique<StreamingWorkers>(
          context_.channels, activity_arn_, context_.options->concurrency, record_wait,
          [report_done](const std::string& input, const grpc::Status& status) {
            report_done(input, rpc::FromGrpcStatus(status));
          });
      return streaming_->Start();
    }
    worker::WorkerOptions options;
    options.endpoint = context_.endpoint;
    options.activity_arn = activity_arn_;
    options.worker_name = "stepflow-bench";
    options.concurrency = context_.options->concurrency;
    // Long polls, one per slot (the SDK's default is a stream).
    options.delivery = worker::Delivery::kPoll;
    options.initial_backoff = absl::Milliseconds(10);
    options.max_backoff = absl::Seconds(1);
    options.on_reported = [report_done](const worker::Task& task, const absl::Status& status) {
      report_done(task.input, status);
    };
    worker_ = std::make_unique<worker::Worker>(
        options, [record_wait](const worker::Task& task) {
          return worker::TaskResult::Success(record_wait(task.input));
        });
    return worker_->Start();
  }

  void Finish(BenchReport* report) override {
    StopWorkers();
    report->delivery =
        context_.options->delivery == Delivery::kStream ? "stream" : "poll";
    report->workflow_type = context_.options->workflow_type;
    report->round_trips_per_operation = context_.options->tasks_per_execution;
    if (streaming_) {
      report->extras["stream_tasks_per_message"] = streaming_->tasks_per_message();
    }
    if (context_.activity_hand_overs) {
      // How tasks met their pollers: a sync match costs no transition of
      // its own (ActivityStarted goes in the scheduling write), a task
      // taken from the backlog does.
      std::map<std::string, int64_t> after = context_.activity_hand_overs();
      const double sync = after["sync_match"] - hand_overs_before_["sync_match"];
      const double backlog = after["backlog"] - hand_overs_before_["backlog"];
      if (sync + backlog > 0) report->extras["sync_match_share"] = sync / (sync + backlog);
    }
    if (streaming_ && streaming_->report_errors() > 0) {
      report->extras["task_report_errors"] =
          static_cast<double>(streaming_->report_errors());
    }
    if (worker_) {
      worker::WorkerStats stats = worker_->stats();
      if (stats.report_errors + stats.poll_errors > 0) {
        report->extras["task_report_errors"] =
            static_cast<double>(stats.report_errors);
        report->extras["task_poll_errors"] =
            static_cast<double>(stats.poll_errors);
      }
    }
    // The executions' ends, counted once after the load (not polled per
    // execution during it).
    std::map<std::string, int64_t> ended;
    if (absl::Status counted = CountEndedExecutions(&ended); !counted.ok()) {
      report->run.errors.Add(absl::StatusCodeToString(counted.code()),
                             std::string(counted.message()));
    }
    report->statuses = ended;
    report->latency_note =
        context_.options->tasks_per_execution == 1
            ? "completed counts round trips: StartExecution answered and the task's "
              "result answered (SendTaskSuccess when polling, a report on the stream when "
              "streaming; it closes the one-Task execution); statuses are the executions' "
              "ends, listed once after the load"
            : "completed counts executions of --tasks round trips each: StartExecution "
              "answered and the last task's result answered (SendTaskSuccess when "
              "polling, a report on the stream when streaming; it closes the "
              "execution); schedule-to-start of a later task is counted from the "
              "worker's report of the task before; statuses are the executions' ends, "
              "listed once after the load";
    absl::MutexLock lock(&mu_);
    report->schedule_to_start = schedule_to_start_.Summarize();
  }

  std::unique_ptr<Operation> MakeOperation(int slot) override {
    const auto& channel =
        context_.channels[static_cast<size_t>(slot) % context_.channels.size()];
    return std::make_unique<RoundTripOperation>(channel, &shared_, trips_);
  }

  void TearDown() override {
    StopWorkers();
    StateMachineScenario::TearDown();
    if (activity_arn_.empty()) return;
    v1::DeleteActivityRequest request;
    request.set_activity_arn(activity_arn_);
    v1::DeleteActivityResponse response;
    (void)Call("DeleteActivity", stub_.get(),
               &v1::StepFunctions::Stub::DeleteActivity, request, &response,
               timeout());
  }

 private:
  void StopWorkers() {
    if (worker_) worker_->Stop();
    if (streaming_) streaming_->Stop();
  }

  std::string activity_arn_;
  std::map<std::string, int64_t> hand_overs_before_;
  const std::shared_ptr<RoundTrips> trips_ = std::make_shared<RoundTrips>();
  std::unique_ptr<worker::Worker> worker_;
  std::unique_ptr<StreamingWorkers> streaming_;
  absl::Mutex mu_;
  LatencySamples schedule_to_start_ ABSL_GUARDED_BY(mu_);
};

// PutEvents -> a rule on a bus of its own -> an EXPRESS execution. An
// operation is one accepted PutEvents; after the load the scenario waits for
// the target executions to end and counts those as completed.
class EventsScenario final : public StateMachineScenario {
 public:
  explicit EventsScenario(const ScenarioContext& context)
      : StateMachineScenario(context, "EXPRESS", /*sync=*/false,
                             /*expect_success=*/false),
        events_(v1::EventBridge::NewStub(context.channels.front())) {}

  absl::Status SetUp() override {
    absl::Status status = CreateStateMachine(context_.definition);
    if (!status.ok()) return status;
    bus_name_ = UniqueName("bus");
    detail_type_ = UniqueName("event");
    {
      v1::CreateEventBusRequest request;
      request.set_name(bus_name_);
      v1::CreateEventBusResponse response;
      status = Call("CreateEventBus", events_.get(),
                    &v1::EventBridge::Stub::CreateEventBus, request, &response,
                    timeout());
      if (!status.ok()) return status;
      bus_created_ = true;
    }
    rule_name_ = UniqueName("rule");
    {
      v1::PutRuleRequest request;
      request.set_name(rule_name_);
      request.set_event_bus_name(bus_name_);
      request.set_event_pattern(
          absl::StrCat(R"({"source":["stepflow.bench"],"detail-type":[")",
                       detail_type_, R"("]})"));
      v1::PutRuleResponse response;
      status = Call("PutRule", events_.get(), &v1::EventBridge::Stub::PutRule,
                    request, &response, timeout());
      if (!status.ok()) return status;
      rule_created_ = true;
    }
    {
      v1::PutTargetsRequest request;
      request.set_rule(rule_name_);
      request.set_event_bus_name(bus_name_);
      v1::Target* target = request.add_targets();
      target->set_id("bench");
      target->set_arn(shared_.state_machine_arn);
      target->set_role_arn("arn:aws:iam::123456789012:role/stepflow-bench");
      target->set_input_path("$.detail");
      v1::PutTargetsResponse response;
      status =
          Call("PutTargets", events_.get(), &v1::EventBridge::Stub::PutTargets,
               request, &response, timeout());
      if (!status.ok()) return status;
      if (response.failed_entry_count() > 0 &&
          response.failed_entries_size() > 0) {
        return absl::FailedPreconditionError(absl::StrCat(
            "PutTargets: ", response.failed_entries(0).error_code(), ": ",
            response.failed_entries(0).error_message()));
      }
    }
    entry_.set_source("stepflow.bench");
    entry_.set_detail_type(detail_type_);
    entry_.set_event_bus_name(bus_name_);
    entry_.set_detail(context_.input);
    return AwaitDelivery();
  }

  std::unique_ptr<Operation> MakeOperation(int slot) override {
    const auto& channel =
        context_.channels[static_cast<size_t>(slot) % context_.channels.size()];
    return std::make_unique<PutEventsOperation>(channel, entry_, timeout(),
                                                &accepted_);
  }

  // Waits until as many target executions have ended as events were
  // accepted, or until their count stops growing for kEventsDrainStall.
  void Finish(BenchReport* report) override {
    int64_t accepted = accepted_.load();
    absl::Duration waited;
    std::map<std::string, int64_t> ended =
        AwaitEndedAfterLoad(accepted + probe_ended_, report, &waited);
    int64_t total_ended = -probe_ended_;
    for (const auto& [status, count] : ended) total_ended += count;
    if (probe_ended_ > 0 && ended["SUCCEEDED"] > 0) --ended["SUCCEEDED"];
    report->statuses = ended;
    report->statuses["EVENTS_ACCEPTED"] = accepted;
    // Completed = target executions seen ended; the time is the load's plus
    // the drain's.
    report->run.completed = total_ended;
    report->run.elapsed += settle_waited_ + waited;
    report->latency_note =
        "latency_ms is PutEvents until the bus accepted the event; completed "
        "counts target "
        "executions seen ended, over the load plus the wait for them";
  }

  // One probe event, then a wait until its execution is seen: the bus's
  // consumers have joined and read, so the load measures delivery, not the
  // consumer group forming over a new bus. The probe counts nowhere (its
  // execution is discounted from the ends counted after the load).
  absl::Status AwaitDelivery() {
    v1::PutEventsRequest put;
    *put.add_entries() = entry_;
    v1::PutEventsResponse answer;
    absl::Status status = Call("PutEvents", events_.get(), &v1::EventBridge::Stub::PutEvents, put,
                               &answer, timeout());
    if (!status.ok()) return status;
    if (answer.failed_entry_count() > 0) {
      return absl::FailedPreconditionError("PutEvents refused the probe event");
    }
    const absl::Time give_up = absl::Now() + kProbeDeliveryTimeout;
    while (absl::Now() < give_up) {
      std::map<std::string, int64_t> counts;
      status = CountEndedExecutions(&counts);
      if (!status.ok()) return status;
      if (!counts.empty()) {
        probe_ended_ = 1;
        return absl::OkStatus();
      }
      absl::SleepFor(absl::Milliseconds(100));
    }
    return absl::DeadlineExceededError(absl::StrCat(
        "the probe event started no execution within ",
        absl::FormatDuration(kProbeDeliveryTimeout), " (is an eventbus running?)"));
  }

  void TearDown() override {
    if (rule_created_) {
      v1::RemoveTargetsRequest remove;
      remove.set_rule(rule_name_);
      remove.set_event_bus_name(bus_name_);
      remove.add_ids("bench");
      v1::RemoveTargetsResponse removed;
      (void)Call("RemoveTargets", events_.get(),
                 &v1::EventBridge::Stub::RemoveTargets, remove, &removed,
                 timeout());
      v1::DeleteRuleRequest request;
      request.set_name(rule_name_);
      request.set_event_bus_name(bus_name_);
      v1::DeleteRuleResponse response;
      (void)Call("DeleteRule", events_.get(),
                 &v1::EventBridge::Stub::DeleteRule, request, &response,
                 timeout());
    }
    if (bus_created_) {
      v1::DeleteEventBusRequest request;
      request.set_name(bus_name_);
      v1::DeleteEventBusResponse response;
      (void)Call("DeleteEventBus", events_.get(),
                 &v1::EventBridge::Stub::DeleteEventBus, request, &response,
                 timeout());
    }
    StateMachineScenario::TearDown();
  }

 private:
  std::unique_ptr<v1::EventBridge::Stub> events_;
  std::string bus_name_;
  std::string rule_name_;
  std::string detail_type_;
  bool bus_created_ = false;
  bool rule_created_ = false;
  v1::PutEventsRequestEntry entry_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Scenario>> MakeScenario(
    const ScenarioContext& context) {
  switch (context.options->scenario) {
    case ScenarioKind::kExpressAsync:
      return std::make_unique<StateMachineScenario>(context, "EXPRESS",
                                                    /*sync=*/false,
                                                    /*expect_success=*/false);
    case ScenarioKind::kExpressSync:
      return std::make_unique<StateMachineScenario>(context, "EXPRESS",
                                                    /*sync=*/true,
                                                    /*expect_success=*/true);
    case ScenarioKind::kStandard:
      return std::make_unique<StateMachineScenario>(context, "STANDARD",
                                                    /*sync=*/false,
                                                    /*expect_success=*/true);
    case ScenarioKind::kActivities:
      return std::make_unique<ActivitiesScenario>(context);
    case ScenarioKind::kEvents:
      return std::make_unique<EventsScenario>(context);
  }
  return absl::InvalidArgumentError("unknown scenario");
}

std::unique_ptr<Operation> MakeHealthCheckOperation(
    std::shared_ptr<grpc::Channel> channel, absl::Duration timeout) {
  return std::make_unique<HealthCheckOperation>(std::move(channel), timeout);
}

std::string DefaultDefinition() {
  return R"({
  "Comment": "stepflow bench: five Pass/Choice states",
  "StartAt": "Prepare",
  "States": {
    "Prepare": {"Type": "Pass", "Result": {"route": "fast"}, "ResultPath": "$.bench", "Next": "Route"},
    "Route": {"Type": "Choice",
              "Choices": [{"Variable": "$.bench.route", "StringEquals": "fast", "Next": "Fast"}],
              "Default": "Slow"},
    "Fast": {"Type": "Pass", "Result": "fast", "ResultPath": "$.path", "Next": "Finish"},
    "Slow": {"Type": "Pass", "Result": "slow", "ResultPath": "$.path", "Next": "Finish"},
    "Finish": {"Type": "Pass", "End": true}
  }
})";
}

std::string DefaultInput() {
  std::string head =
      R"({"order_id":"bench-0001","customer":{"id":42,"tier":"gold"},"items":[1,2,3],"note":")";
  std::string tail = R"("})";
  return absl::StrCat(head, std::string(1024 - head.size() - tail.size(), 'x'),
                      tail);
}

}  // namespace stepflow::cli::bench
