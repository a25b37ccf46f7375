#include "services/worker/worker.h"

#include <atomic>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "prometheus/registry.h"
#include "services/worker/fake_step_functions.h"

namespace stepflow::worker {
namespace {

using ::testing::ElementsAre;
using ::testing::Field;
using ::testing::HasSubstr;
using ::testing::UnorderedElementsAre;

constexpr char kActivity[] =
    "arn:aws:states:us-east-1:123456789012:activity:test";
// Generous bound for things that should take milliseconds, so a loaded
// machine does not fail the test; it is never slept, only waited on.
constexpr absl::Duration kWait = absl::Seconds(10);

class WorkerTest : public ::testing::Test {
 protected:
  WorkerOptions Options() {
    WorkerOptions options;
    options.activity_arn = kActivity;
    options.worker_name = "test-worker";
    options.initial_backoff = absl::Milliseconds(10);
    options.max_backoff = absl::Milliseconds(50);
    return options;
  }

  FakeStepFunctions& fake() { return server_.fake(); }

  FakeStepFunctionsServer server_;
};

TaskResult Echo(const Task& task) {
  if (task.input == "fail") return TaskResult::Failure("Boom", "asked to fail");
  return TaskResult::Success(task.input);
}

// Three tasks for Echo: two successes and a failure.
void AddThreeTasks(FakeStepFunctions& fake) {
  fake.AddTask("t1", R"({"a":1})");
  fake.AddTask("t2", "fail");
  fake.AddTask("t3", "[]");
}

// The results Echo reports for AddThreeTasks's tasks.
auto EchoedThreeTasks() {
  using R = FakeStepFunctions::Result;
  return UnorderedElementsAre(
      AllOf(Field(&R::task_token, "t1"), Field(&R::success, true),
            Field(&R::output, R"({"a":1})")),
      AllOf(Field(&R::task_token, "t2"), Field(&R::success, false), Field(&R::error, "Boom"),
            Field(&R::cause, "asked to fail")),
      AllOf(Field(&R::task_token, "t3"), Field(&R::success, true), Field(&R::output, "[]")));
}

// What on_reported heard: each task's input and its report's end.
class ReportLog {
 public:
  using Entry = std::pair<std::string, absl::StatusCode>;
  // Records into this log; the log must outlive the Worker.
  std::function<void(const Task&, const absl::Status&)> Recorder() {
    return [this](const Task& task, const absl::Status& status) {
      absl::MutexLock lock(&mu_);
      entries_.emplace_back(task.input, status.code());
    };
  }
  // Waits until `n` reports were heard; false on timeout.
  bool WaitFor(size_t n) {
    absl::MutexLock lock(&mu_);
    auto enough = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return entries_.size() >= n; };
    return mu_.AwaitWithTimeout(absl::Condition(&enough), kWait);
  }
  std::vector<Entry> entries() {
    absl::MutexLock lock(&mu_);
    return entries_;
  }

 private:
  absl::Mutex mu_;
  std::vector<Entry> entries_ ABSL_GUARDED_BY(mu_);
};

// on_reported hears of every result once its report ended: OK when the
// service took it, the last error when it refused it for good.
TEST_F(WorkerTest, OnReportedHearsHowEachReportEnded) {
  fake().AddTask("t1", "ok");
  WorkerOptions options = Options();
  ReportLog reported;
  options.on_reported = reported.Recorder();
  Worker worker(options, Echo, server_.NewChannel());
  ASSERT_TRUE(worker.Start().ok());
  ASSERT_TRUE(fake().WaitForResults(1, kWait));
  fake().FailReports(grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, "TaskTimedOut"), 1);
  fake().AddTask("t2", "late");
  reported.WaitFor(2);
  worker.Stop();
  EXPECT_THAT(reported.entries(), ElementsAre(std::make_pair(std::string("ok"), absl::StatusCode::kOk),
                                    std::make_pair(std::string("late"),
                                                   absl::StatusCode::kFailedPrecondition)));
}

TEST_F(WorkerTest, DeliversTasksAndReportsResults) {
  AddThreeTasks(fake());
  WorkerOptions options = Options();
  options.concurrency = 2;
  Worker worker(options, Echo, server_.NewChannel());
  ASSERT_TRUE(worker.Start().ok());
  ASSERT_TRUE(fake().WaitForResults(3, kWait));
  worker.Stop();

  EXPECT_THAT(fake().results(), EchoedThreeTasks());
  EXPECT_THAT(fake().worker_names(), ::testing::Each("test-worker"));
  WorkerStats stats = worker.stats();
  EXPECT_EQ(stats.tasks_received, 3u);
  EXPECT_EQ(stats.tasks_succeeded, 2u);
  EXPECT_EQ(stats.tasks_failed, 1u);
  EXPECT_EQ(stats.poll_errors, 0u);
  EXPECT_EQ(stats.report_errors, 0u);
}

// Over a stream, each result goes back on it with the credit its task
// freed, and its answer comes back there: no unary report, no separate
// credit grant.
TEST_F(WorkerTest, StreamedTasksAreReportedOnTheStreamWithTheirCredits) {
  fake().EnableStreaming();
  AddThreeTasks(fake());
  WorkerOptions options = Options();
  options.concurrency = 2;
  ReportLog reported;
  options.on_reported = reported.Recorder();
  Worker worker(options, Echo, server_.NewChannel());
  ASSERT_TRUE(worker.Start().ok());
  ASSERT_TRUE(fake().WaitForResults(3, kWait));
  ASSERT_TRUE(reported.WaitFor(3));
  worker.Stop();

  EXPECT_THAT(fake().results(), EchoedThreeTasks());
  EXPECT_EQ(fake().stream_reports(), 3);
  EXPECT_EQ(fake().polls(), 0);
  // Two to open the stream, then one with each report.
  EXPECT_EQ(fake().stream_credits(), 5);
  EXPECT_THAT(reported.entries(),
              ::testing::Each(Field(&ReportLog::Entry::second, absl::StatusCode::kOk)));
  EXPECT_EQ(worker.stats().report_errors, 0u);
}

// A report the service refuses on the stream is not made again; one it
// answers with a transient error is, and lands.
TEST_F(WorkerTest, StreamedReportsAreRetriedOnlyOnTransientErrors) {
  fake().EnableStreaming();
  fake().FailReports(grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, "TaskTimedOut: late"),
                     1);
  WorkerOptions options = Options();
  ReportLog reported;
  options.on_reported = reported.Recorder();
  Worker worker(options, Echo, server_.NewChannel());
  ASSERT_TRUE(worker.Start().ok());
  fake().AddTask("t1", "late");
  ASSERT_TRUE(reported.WaitFor(1));
  fake().FailReports(grpc::Status(grpc::StatusCode::UNAVAILABLE, "busy"), 1);
  fake().AddTask("t2", "retried");
  ASSERT_TRUE(reported.WaitFor(2));
  worker.Stop();
  EXPECT_THAT(reported.entries(),
              ElementsAre(std::make_pair(std::string("late"), absl::StatusCode::kFailedPrecondition),
                          std::make_pair(std::string("retried"), absl::StatusCode::kOk)));
  EXPECT_THAT(fake().results(), ElementsAre(Field(&FakeStepFunctions::Result::task_token, "t2")));
  EXPECT_EQ(fake().stream_reports(), 3);
  EXPECT_EQ(worker.stats().report_errors, 2u);
}

// A result whose stream ended while its handler ran still lands: on the
// next stream or as a unary call. (If the stream ends after the report
// reached the service but before its answer came, the report is made
// again, which a real service refuses as a repeat; this fake takes both.)
TEST_F(WorkerTest, ResultOfATaskWhoseStreamEndedStillLands) {
  fake().EnableStreaming();
  absl::Notification running;
  absl::Notification release;
  Worker worker(Options(), [&](const Task& task) {
    running.Notify();
    release.WaitForNotificationWithTimeout(kWait);
    return TaskResult::Success(task.input);
  }, server_.NewChannel());
  ASSERT_TRUE(worker.Start().ok());
  fake().AddTask("t1", R"({"kept":true})");
  ASSERT_TRUE(running.WaitForNotificationWithTimeout(kWait));
  fake().DropStreams();
  release.Notify();
  ASSERT_TRUE(fake().WaitForResults(1, kWait));
  worker.Stop();
  EXPECT_THAT(fake().results(),
              ::testing::Each(AllOf(Field(&FakeStepFunctions::Result::task_token, "t1"),
                                    Field(&FakeStepFunctions::Result::output,
                                          R"({"kept":true})"))));
}

TEST_F(WorkerTest, HandlerExceptionBecomesFailure) {
  fake().AddTask("t1", "{}");
  Worker worker(
      Options(),
      [](const Task&) -> TaskResult { throw std::runtime_error("oops"); },
      server_.NewChannel());
  ASSERT_TRUE(worker.Start().ok());
  ASSERT_TRUE(fake().WaitForResults(1, kWait));
  worker.Stop();
  ASSERT_EQ(fake().results().size(), 1u);
  EXPECT_EQ(fake().results()[0].error, "HandlerException");
  EXPECT_EQ(fake().results()[0].cause, "oops");
}

TEST_F(WorkerTest, TruncatesErrorAndCauseToAwsLimits) {
  fake().AddTask("t1", "{}");
  Worker worker(
      Options(),
      [](const Task&) {
        return TaskResult::Failure(std::string(300, 'e'),
                                   std::string(40000, 'c'));
      },
      server_.NewChannel());
  ASSERT_TRUE(worker.Start().ok());
  ASSERT_TRUE(fake().WaitForResults(1, kWait));
  worker.Stop();
  EXPECT_EQ(fake().results()[0].error.size(), 256u);
  EXPECT_EQ(fake().results()[0].cause.size(), 32768u);
}

TEST_F(WorkerTest, SendsHeartbeatsWhileHandlerRuns) {
  fake().AddTask("t1", "{}");
  WorkerOptions options = Options();
  options.heartbeat_interval = absl::Milliseconds(20);
  FakeStepFunctions* fake_service = &fake();
  Worker worker(
      options,
      [fake_service](const Task& task) {
        // Return only once the service has heard from us a few times.
        bool got = fake_service->WaitForHeartbeats(task.task_token, 3, kWait);
        return got ? TaskResult::Success("{}")
                   : TaskResult::Failure("NoHeartbeats", "");
      },
      server_.NewChannel());
  ASSERT_TRUE(worker.Start().ok());
  ASSERT_TRUE(fake().WaitForResults(1, kWait));
  const int heartbeats_at_end = fake().heartbeats("t1");
  worker.Stop();
  EXPECT_TRUE(fake().results()[0].success);
  EXPECT_GE(heartbeats_at_end, 3);
  EXPECT_GE(worker.stats().heartbeats_sent, 3u);
  // None after the handler returned (at most one already in flight).
  EXPECT_LE(fake().heartbeats("t1"), heartbeats_at_end + 1);
}

TEST_F(WorkerTest, NoHeartbeatsWhenIntervalIsZero) {
  fake().AddTask("t1", "{}");
  Worker worker(
      Options(),
      [](const Task& task) {
        EXPECT_FALSE(task.Cancelled());
        EXPECT_EQ(task.cancelled, nullptr);
        return TaskResult::Success("{}");
      },
      server_.NewChannel());
  ASSERT_TRUE(worker.Start().ok());
  ASSERT_TRUE(fake().WaitForResults(1, kWait));
  worker.Stop();
  EXPECT_EQ(fake().heartbeats("t1"), 0);
}

TEST_F(WorkerTest, HeartbeatSayingTaskIsGoneCancelsIt) {
  fake().SetHeartbeatStatus(grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                                         "TaskTimedOut: Task Timed Out"));
  fake().AddTask("t1", "{}");
  WorkerOptions options = Options();
  options.heartbeat_interval = absl::Milliseconds(10);
  absl::Notification handler_done;
  std::atomic<bool> saw_cancel{false};
  Worker worker(
      options,
      [&](const Task& task) {
        const absl::Time give_up = absl::Now() + kWait;
        while (!task.Cancelled() && absl::Now() < give_up) {
          absl::SleepFor(absl::Milliseconds(1));
        }
        saw_cancel = task.Cancelled();
        handler_done.Notify();
        return TaskResult::Success("{}");
      },
      server_.NewChannel());
  ASSERT_TRUE(worker.Start().ok());
  ASSERT_TRUE(handler_done.WaitForNotificationWithTimeout(kWait));
  worker.Stop();
  EXPECT_TRUE(saw_cancel);
  EXPECT_TRUE(fake().results().empty());  // The result was dropped.
  EXPECT_EQ(worker.stats().tasks_abandoned, 1u);
  EXPECT_EQ(fake().heartbeats("t1"), 1);  // No more after "gone".
}

TEST_F(WorkerTest, StopInterruptsPendingLongPollPromptly) {
  WorkerOptions options = Options();
  options.concurrency = 3;
  options.poll_timeout = absl::Seconds(60);
  Worker worker(options, Echo, server_.NewChannel());
  ASSERT_TRUE(worker.Start().ok());
  ASSERT_TRUE(fake().WaitForPendingPolls(3, kWait));
  const absl::Time start = absl::Now();
  worker.Stop();
  EXPECT_LT(absl::Now() - start, absl::Seconds(2));
  worker.Wait();                              // Returns at once once stopped.
  EXPECT_EQ(worker.stats().poll_errors, 0u);  // Cancellation is no error.
}

TEST_F(WorkerTest, StopWaitsForInFlightHandlerAndReportsIt) {
  fake().AddTask("t1", "{}");
  absl::Notification started, release;
  Worker worker(
      Options(),
      [&](const Task&) {
        started.Notify();
        release.WaitForNotification();
        return TaskResult::Success(R"("done")");
      },
      server_.NewChannel());
  ASSERT_TRUE(worker.Start().ok());
  ASSERT_TRUE(started.WaitForNotificationWithTimeout(kWait));
  EXPECT_EQ(worker.stats().tasks_in_flight, 1u);
  absl::Notification stopped;
  std::thread stopper([&] {
    worker.Stop();
    stopped.Notify();
  });
  std::thread waiter([&] { worker.Wait(); });
  EXPECT_FALSE(stopped.WaitForNotificationWithTimeout(absl::Milliseconds(50)));
  release.Notify();
  stopper.join();
  waiter.join();
  ASSERT_EQ(fake().results().size(), 1u);
  EXPECT_EQ(fake().results()[0].output, R"("done")");
  // No new task is taken once stopping.
  EXPECT_EQ(worker.stats().tasks_received, 1u);
  EXPECT_EQ(worker.stats().tasks_in_flight, 0u);
}

TEST_F(WorkerTest, BacksOffOnUnavailableThenRecovers) {
  fake().FailPolls(grpc::Status(grpc::StatusCode::UNAVAILABLE, "down"), 5);
  fake().AddTask("t1", "{}");
  Worker worker(Options(), Echo, server_.NewChannel());
  const absl::Time start = absl::Now();
  ASSERT_TRUE(worker.Start().ok());
  ASSERT_TRUE(fake().WaitForResults(1, kWait));
  const absl::Duration elapsed = absl::Now() - start;
  worker.Stop();
  // Five failures, then the poll that got the task. With delays jittered in
  // [d/2, d] for d = 10, 20, 40, 50, 50 ms, the retries took at least
  // 5 + 10 + 20 + 25 + 25 ms: no busy loop.
  EXPECT_GE(elapsed, absl::Milliseconds(85));
  EXPECT_GE(fake().polls(), 6);  // Plus, maybe, the next long poll.
  EXPECT_EQ(worker.stats().poll_errors, 5u);
  EXPECT_EQ(worker.stats().tasks_received, 1u);
}

TEST_F(WorkerTest, BackoffIsCappedAtMaxBackoff) {
  fake().FailPolls(grpc::Status(grpc::StatusCode::UNAVAILABLE, "down"), -1);
  WorkerOptions options = Options();
  options.initial_backoff = absl::Milliseconds(5);
  options.max_backoff = absl::Milliseconds(20);
  Worker worker(options, Echo, server_.NewChannel());
  const absl::Time start = absl::Now();
  ASSERT_TRUE(worker.Start().ok());
  // Uncapped doubling from 5 ms would need over 10 s for 12 polls
  // (5 * 2^11 ms alone); capped, each retry waits at most 20 ms.
  ASSERT_TRUE(fake().WaitForPolls(12, kWait));
  const absl::Duration elapsed = absl::Now() - start;
  worker.Stop();
  EXPECT_LT(elapsed, absl::Seconds(5));
  EXPECT_GE(elapsed, absl::Milliseconds(2 + 5 + 10 + 10 * 8));
}

TEST_F(WorkerTest, StopInterruptsBackoff) {
  fake().FailPolls(grpc::Status(grpc::StatusCode::UNAVAILABLE, "down"), -1);
  WorkerOptions options = Options();
  options.initial_backoff = absl::Seconds(30);
  options.max_backoff = absl::Seconds(30);
  Worker worker(options, Echo, server_.NewChannel());
  ASSERT_TRUE(worker.Start().ok());
  ASSERT_TRUE(fake().WaitForPolls(1, kWait));
  const absl::Time start = absl::Now();
  worker.Stop();
  EXPECT_LT(absl::Now() - start, absl::Seconds(2));
  EXPECT_EQ(fake().polls(), 1);
}

TEST_F(WorkerTest, EmptyPollsReturnedAtOnceAreBackedOff) {
  // A service that answers "no task" immediately must not make us spin.
  fake().SetPollHold(absl::ZeroDuration());
  WorkerOptions options = Options();
  options.poll_timeout = absl::Seconds(1);
  Worker worker(options, Echo, server_.NewChannel());
  const absl::Time start = absl::Now();
  ASSERT_TRUE(worker.Start().ok());
  ASSERT_TRUE(fake().WaitForPolls(5, kWait));
  const absl::Duration elapsed = absl::Now() - start;
  worker.Stop();
  EXPECT_GE(elapsed, absl::Milliseconds(5 + 10 + 20 + 25));
  EXPECT_EQ(worker.stats().poll_errors, 0u);
}

TEST_F(WorkerTest, RetriesTransientReportErrors) {
  fake().FailReports(grpc::Status(grpc::StatusCode::UNAVAILABLE, "down"), 2);
  fake().AddTask("t1", "{}");
  Worker worker(Options(), Echo, server_.NewChannel());
  ASSERT_TRUE(worker.Start().ok());
  ASSERT_TRUE(fake().WaitForResults(1, kWait));
  worker.Stop();
  EXPECT_TRUE(fake().results()[0].success);
  EXPECT_EQ(worker.stats().report_errors, 2u);
}

// A saturated service refuses with RESOURCE_EXHAUSTED: the report is sent
// again after growing, jittered backoffs (10 ms initial: at least
// 5 + 10 + 20 ms over three refusals), for a success and a failure alike.
TEST_F(WorkerTest, BacksOffFromThrottledReports) {
  const grpc::Status throttled(grpc::StatusCode::RESOURCE_EXHAUSTED,
                               "ThrottlingException: Rate exceeded");
  fake().FailReports(throttled, 3);
  fake().AddTask("t1", "{}");
  Worker worker(Options(), Echo, server_.NewChannel());
  const absl::Time start = absl::Now();
  ASSERT_TRUE(worker.Start().ok());
  ASSERT_TRUE(fake().WaitForResults(1, kWait));
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(5 + 10 + 20));
  EXPECT_TRUE(fake().results()[0].success);
  EXPECT_EQ(worker.stats().report_errors, 3u);

  fake().FailReports(throttled, 2);
  fake().AddTask("t2", "fail");
  ASSERT_TRUE(fake().WaitForResults(2, kWait));
  worker.Stop();
  EXPECT_EQ(fake().results()[1].task_token, "t2");
  EXPECT_FALSE(fake().results()[1].success);
  EXPECT_EQ(worker.stats().report_errors, 5u);
}

TEST_F(WorkerTest, DoesNotRetryRejectedReports) {
  fake().FailReports(grpc::Status(grpc::StatusCode::NOT_FOUND,
                                  "TaskDoesNotExist: Task Does Not Exist"),
                     1);
  fake().AddTask("t1", "{}");
  fake().AddTask("t2", "{}");
  Worker worker(Options(), Echo, server_.NewChannel());
  ASSERT_TRUE(worker.Start().ok());
  ASSERT_TRUE(fake().WaitForResults(1, kWait));
  worker.Stop();
  // t1's report was rejected and dropped; t2's went through.
  EXPECT_THAT(fake().results(),
              ElementsAre(Field(&FakeStepFunctions::Result::task_token, "t2")));
  EXPECT_EQ(worker.stats().report_errors, 1u);
}

TEST_F(WorkerTest, RejectedOutputIsReportedAsFailure) {
  fake().FailReports(
      grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                   "InvalidOutput: output is larger than 262144 bytes"),
      1);
  fake().AddTask("t1", "{}");
  Worker worker(Options(), Echo, server_.NewChannel());
  ASSERT_TRUE(worker.Start().ok());
  ASSERT_TRUE(fake().WaitForResults(1, kWait));
  worker.Stop();
  ASSERT_EQ(fake().results().size(), 1u);
  EXPECT_FALSE(fake().results()[0].success);
  EXPECT_EQ(fake().results()[0].error, "InvalidOutput");
  EXPECT_THAT(fake().results()[0].cause, HasSubstr("larger than"));
}

TEST_F(WorkerTest, RecordsMetrics) {
  auto registry = std::make_shared<prometheus::Registry>();
  fake().AddTask("t1", "{}");
  fake().AddTask("t2", "fail");
  Worker worker(Options(), Echo, server_.NewChannel(), registry);
  ASSERT_TRUE(worker.Start().ok());
  ASSERT_TRUE(fake().WaitForResults(2, kWait));
  worker.Stop();

  double succeeded = -1, failed = -1;
  uint64_t observed = 0;
  for (const prometheus::MetricFamily& family : registry->Collect()) {
    for (const prometheus::ClientMetric& metric : family.metric) {
      std::string outcome;
      for (const prometheus::ClientMetric::Label& label : metric.label) {
        if (label.name == "outcome") outcome = label.value;
      }
      if (family.name == "stepflow_worker_tasks_total") {
        (outcome == "succeeded" ? succeeded : failed) = metric.counter.value;
      } else if (family.name == "stepflow_worker_task_seconds") {
        observed = metric.histogram.sample_count;
      }
    }
  }
  EXPECT_EQ(succeeded, 1);
  EXPECT_EQ(failed, 1);
  EXPECT_EQ(observed, 2u);
}

TEST_F(WorkerTest, StartValidatesOptions) {
  WorkerOptions options = Options();
  options.activity_arn = "";
  EXPECT_EQ(Worker(options, Echo, server_.NewChannel()).Start().code(),
            absl::StatusCode::kInvalidArgument);
  options = Options();
  options.concurrency = 0;
  EXPECT_EQ(Worker(options, Echo, server_.NewChannel()).Start().code(),
            absl::StatusCode::kInvalidArgument);
  options = Options();
  EXPECT_EQ(Worker(options, Echo).Start().code(),  // No channel, no endpoint.
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Worker(Options(), nullptr, server_.NewChannel()).Start().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(WorkerTest, CannotStartTwiceOrAfterStop) {
  Worker worker(Options(), Echo, server_.NewChannel());
  ASSERT_TRUE(worker.Start().ok());
  EXPECT_EQ(worker.Start().code(), absl::StatusCode::kFailedPrecondition);
  worker.Stop();
  worker.Stop();  // Idempotent.
  EXPECT_EQ(worker.Start().code(), absl::StatusCode::kFailedPrecondition);

  Worker never_started(Options(), Echo, server_.NewChannel());
  never_started.Stop();
  never_started.Wait();
  EXPECT_EQ(never_started.Start().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_F(WorkerTest, ConnectsToEndpointWhenNoChannelIsGiven) {
  fake().AddTask("t1", "{}");
  WorkerOptions options = Options();
  options.endpoint = server_.address();
  Worker worker(options, Echo);
  ASSERT_TRUE(worker.Start().ok());
  ASSERT_TRUE(fake().WaitForResults(1, kWait));
  worker.Stop();
}

}  // namespace
}  // namespace stepflow::worker
