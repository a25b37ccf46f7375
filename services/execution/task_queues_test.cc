#include "services/execution/task_queues.h"

#include <atomic>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/clock/clock.h"
#include "gtest/gtest.h"

namespace stepflow::execution {
namespace {

constexpr char kArn[] = "arn:aws:states:us-east-1:123456789012:activity:work";
// Bounds waits for things that take milliseconds; never slept.
constexpr absl::Duration kWait = absl::Seconds(10);

TaskQueues::Queued TaskWithInput(int n, const std::string& input) {
  TaskQueues::Queued queued;
  queued.seq = static_cast<uint64_t>(n);
  queued.task.set_activity_arn(kArn);
  queued.task.set_task_id(absl::StrCat("task-", n));
  queued.task.set_input(input);
  return queued;
}

// A Take running on a thread of its own, as a poll does.
class Poll {
 public:
  Poll(TaskQueues* queues, int max_tasks, size_t max_bytes, absl::Duration wait,
       const std::atomic<bool>* cancelled = nullptr)
      : thread_([=, this] {
          result_ = queues->Take(
              kArn, max_tasks, max_bytes, absl::Now() + wait,
              [cancelled] { return cancelled != nullptr && cancelled->load(); }, "worker",
              &handed_);
        }) {}
  // Waits for the Take to return.
  std::vector<TaskQueues::Queued> Tasks() {
    thread_.join();
    EXPECT_TRUE(result_.ok()) << result_.status();
    return result_.ok() ? std::move(*result_) : std::vector<TaskQueues::Queued>();
  }
  bool handed() const { return handed_; }

 private:
  absl::StatusOr<std::vector<TaskQueues::Queued>> result_;
  bool handed_ = false;
  std::thread thread_;
};

bool AwaitWaiting(TaskQueues& queues, size_t count) {
  const absl::Time give_up = absl::Now() + kWait;
  while (queues.WaitingPollers(kArn) != count) {
    if (absl::Now() > give_up) return false;
    absl::SleepFor(absl::Milliseconds(1));
  }
  return true;
}

class TaskQueuesTest : public ::testing::Test {
 protected:
  clock::RealClock clock_;
  TaskQueues queues_{nullptr, &clock_};
};

// The transitions of one group commit each claim the waiting poller; it
// answers with every task handed to it, once all its claims are settled.
TEST_F(TaskQueuesTest, APollerTakingABatchIsClaimedByEachTransitionUpToItsBatch) {
  Poll poll(&queues_, /*max_tasks=*/3, /*max_bytes=*/1 << 20, kWait);
  ASSERT_TRUE(AwaitWaiting(queues_, 1));
  std::string worker;
  TaskQueues::Waiter* first = queues_.Claim(kArn, 10, &worker);
  TaskQueues::Waiter* second = queues_.Claim(kArn, 10, &worker);
  TaskQueues::Waiter* third = queues_.Claim(kArn, 10, &worker);
  ASSERT_NE(first, nullptr);
  EXPECT_EQ(worker, "worker");
  EXPECT_EQ(second, first);
  EXPECT_EQ(third, first);
  // Its batch is full: it left the line.
  EXPECT_EQ(queues_.WaitingPollers(kArn), 0u);
  EXPECT_EQ(queues_.Claim(kArn, 10, &worker), nullptr);

  queues_.Hand(first, TaskWithInput(1, "{}"));
  queues_.Release(second);  // that transition's write failed
  queues_.Hand(third, TaskWithInput(3, "{}"));
  std::vector<TaskQueues::Queued> tasks = poll.Tasks();
  ASSERT_EQ(tasks.size(), 2u);
  EXPECT_EQ(tasks[0].task.task_id(), "task-1");
  EXPECT_EQ(tasks[1].task.task_id(), "task-3");
  EXPECT_TRUE(poll.handed());
}

// Once a claim is handed over, the poller takes no more claims: it answers
// as soon as the others are settled.
TEST_F(TaskQueuesTest, APollerHandedATaskLeavesTheLine) {
  Poll poll(&queues_, /*max_tasks=*/5, /*max_bytes=*/1 << 20, kWait);
  ASSERT_TRUE(AwaitWaiting(queues_, 1));
  std::string worker;
  TaskQueues::Waiter* waiter = queues_.Claim(kArn, 10, &worker);
  ASSERT_NE(waiter, nullptr);
  EXPECT_EQ(queues_.WaitingPollers(kArn), 1u);  // room for four more
  queues_.Hand(waiter, TaskWithInput(1, "{}"));
  EXPECT_EQ(queues_.Claim(kArn, 10, &worker), nullptr);
  EXPECT_EQ(poll.Tasks().size(), 1u);
}

// Claims stop short of the poller's byte limit (past its first task), so an
// answer stays under gRPC's message limit.
TEST_F(TaskQueuesTest, ClaimsStayWithinThePollersBytes) {
  Poll poll(&queues_, /*max_tasks=*/10, /*max_bytes=*/100, kWait);
  ASSERT_TRUE(AwaitWaiting(queues_, 1));
  std::string worker;
  TaskQueues::Waiter* big = queues_.Claim(kArn, 80, &worker);
  ASSERT_NE(big, nullptr);
  EXPECT_EQ(queues_.Claim(kArn, 30, &worker), nullptr);
  TaskQueues::Waiter* small = queues_.Claim(kArn, 20, &worker);
  EXPECT_EQ(small, big);
  queues_.Hand(big, TaskWithInput(1, std::string(80, ' ')));
  queues_.Hand(small, TaskWithInput(2, std::string(20, ' ')));
  EXPECT_EQ(poll.Tasks().size(), 2u);
}

// A poller whose claims were all released waits on, and ends empty at its
// deadline.
TEST_F(TaskQueuesTest, APollerWhoseClaimsWereReleasedWaitsOn) {
  Poll poll(&queues_, /*max_tasks=*/2, /*max_bytes=*/1 << 20, absl::Milliseconds(300));
  ASSERT_TRUE(AwaitWaiting(queues_, 1));
  std::string worker;
  TaskQueues::Waiter* waiter = queues_.Claim(kArn, 10, &worker);
  ASSERT_NE(waiter, nullptr);
  queues_.Release(waiter);
  EXPECT_TRUE(poll.Tasks().empty());
  EXPECT_FALSE(poll.handed());
}

// A poller whose caller went away is not claimed: it is woken to leave.
TEST_F(TaskQueuesTest, APollerWhoseCallerWentAwayIsNotClaimed) {
  std::atomic<bool> cancelled{false};
  Poll poll(&queues_, /*max_tasks=*/1, /*max_bytes=*/1 << 20, absl::Seconds(30), &cancelled);
  ASSERT_TRUE(AwaitWaiting(queues_, 1));
  cancelled = true;
  const absl::Time start = absl::Now();
  std::string worker;
  EXPECT_EQ(queues_.Claim(kArn, 10, &worker), nullptr);
  EXPECT_TRUE(poll.Tasks().empty());
  // Woken by the claim, not by its idle recheck (20 s) or deadline.
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
}


// What a TakeLater poll was answered with, from whichever thread.
struct LaterAnswers {
  absl::Mutex mu;
  std::vector<absl::StatusOr<std::vector<TaskQueues::Queued>>> answers ABSL_GUARDED_BY(mu);

  // Makes the answer of one poll.
  absl::FunctionRef<TaskQueues::TakeAnswer()> Maker() {
    make_ = [this]() -> TaskQueues::TakeAnswer {
      return [this](absl::StatusOr<std::vector<TaskQueues::Queued>> handed) {
        absl::MutexLock lock(&mu);
        answers.push_back(std::move(handed));
      };
    };
    return make_;
  }
  size_t count() {
    absl::MutexLock lock(&mu);
    return answers.size();
  }
  // The inputs of the tasks answer `i` brought, or its error.
  std::vector<std::string> Inputs(size_t i) {
    absl::MutexLock lock(&mu);
    if (i >= answers.size()) return {"(no such answer)"};
    if (!answers[i].ok()) return {answers[i].status().ToString()};
    std::vector<std::string> inputs;
    for (const TaskQueues::Queued& queued : *answers[i]) inputs.push_back(queued.task.input());
    return inputs;
  }

 private:
  std::function<TaskQueues::TakeAnswer()> make_;
};

class TakeLaterTest : public TaskQueuesTest {
 protected:
  bool TakeLater(absl::Duration wait, int max_tasks = 3, std::function<bool()> cancelled = {}) {
    return queues_.TakeLater(kArn, max_tasks, 1 << 20, absl::Now() + wait, std::move(cancelled),
                             "worker", answers_.Maker());
  }
  LaterAnswers answers_;
};

// A poll waiting without a thread is claimed like a waiting Take and
// answered, on the handing thread, once its last claim is handed over.
TEST_F(TakeLaterTest, IsAnsweredByTheHandOfItsLastClaim) {
  ASSERT_TRUE(TakeLater(kWait));
  EXPECT_EQ(queues_.WaitingPollers(kArn), 1u);
  std::string worker;
  TaskQueues::Waiter* first = queues_.Claim(kArn, 10, &worker);
  TaskQueues::Waiter* second = queues_.Claim(kArn, 10, &worker);
  ASSERT_NE(first, nullptr);
  EXPECT_EQ(first, second);
  EXPECT_EQ(worker, "worker");
  queues_.Hand(first, TaskWithInput(1, "a"));
  EXPECT_EQ(answers_.count(), 0u) << "answered before its other claim settled";
  queues_.Hand(second, TaskWithInput(2, "b"));
  ASSERT_EQ(answers_.count(), 1u);
  EXPECT_EQ(answers_.Inputs(0), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(queues_.WaitingPollers(kArn), 0u);
}

// A backlog is the caller's to take with Take: TakeLater declines, and a
// task entering the backlog answers a waiting poll with nothing.
TEST_F(TakeLaterTest, LeavesTheBacklogToTake) {
  queues_.Add(TaskWithInput(1, "a"));
  EXPECT_FALSE(TakeLater(kWait));
  EXPECT_EQ(answers_.count(), 0u);
  Poll take(&queues_, 1, 1 << 20, kWait);
  ASSERT_EQ(take.Tasks().size(), 1u);

  ASSERT_TRUE(TakeLater(kWait));
  queues_.Add(TaskWithInput(2, "b"));
  ASSERT_EQ(answers_.count(), 1u);
  EXPECT_TRUE(answers_.Inputs(0).empty());
  Poll again(&queues_, 1, 1 << 20, kWait);
  std::vector<TaskQueues::Queued> tasks = again.Tasks();
  ASSERT_EQ(tasks.size(), 1u);
  EXPECT_EQ(tasks[0].task.input(), "b");
}

// A task entering the backlog wakes the first poll whose caller is still
// there: one that went away would never come back for it, and the task
// would wait for the next poll or task while a live poll waited on.
TEST_F(TakeLaterTest, ABacklogWakesThePollAfterOnesWhoseCallersWentAway) {
  std::atomic<bool> gone{false};
  ASSERT_TRUE(TakeLater(kWait, 3, [&gone] { return gone.load(); }));
  ASSERT_TRUE(TakeLater(kWait, 3, [&gone] { return gone.load(); }));
  ASSERT_TRUE(TakeLater(kWait, 3, [] { return false; }));
  ASSERT_TRUE(TakeLater(kWait, 3, [] { return false; }));
  gone = true;
  queues_.Add(TaskWithInput(1, "a"));
  // The two that went away and the first live one are answered (empty: the
  // live one's caller takes the backlog); the last waits on.
  ASSERT_EQ(answers_.count(), 3u);
  for (size_t i = 0; i < 3; ++i) EXPECT_TRUE(answers_.Inputs(i).empty());
  EXPECT_EQ(queues_.WaitingPollers(kArn), 1u);
  Poll take(&queues_, 1, 1 << 20, kWait);
  std::vector<TaskQueues::Queued> tasks = take.Tasks();
  ASSERT_EQ(tasks.size(), 1u);
  EXPECT_EQ(tasks[0].task.input(), "a");
}

// What the shard's timer thread wakes for, so that a waiting poll answers
// empty at its deadline rather than up to a second later.
TEST_F(TakeLaterTest, NextLaterDeadlineIsTheEarliestOfThePollsStillWaiting) {
  EXPECT_EQ(queues_.NextLaterDeadline(), absl::InfiniteFuture());
  const absl::Time asked = absl::Now();
  ASSERT_TRUE(TakeLater(absl::Seconds(30)));
  ASSERT_TRUE(TakeLater(absl::Seconds(10)));
  const absl::Time next = queues_.NextLaterDeadline();
  EXPECT_GE(next, asked + absl::Seconds(10));
  EXPECT_LT(next, asked + absl::Seconds(30));
  queues_.ExpireLater(absl::Now() + absl::Seconds(11));
  EXPECT_EQ(answers_.count(), 1u);
  EXPECT_GE(queues_.NextLaterDeadline(), asked + absl::Seconds(30));
  queues_.ExpireLater(absl::Now() + absl::Seconds(31));
  EXPECT_EQ(queues_.NextLaterDeadline(), absl::InfiniteFuture());
}

// Its deadline and its caller's cancellation are noticed by ExpireLater;
// a claimed poll waits for its claims whatever they say.
TEST_F(TakeLaterTest, ExpiresPastItsDeadlineOrCancelledButNotWhileClaimed) {
  std::atomic<bool> cancelled{false};
  ASSERT_TRUE(TakeLater(absl::Seconds(30), 3, [&cancelled] { return cancelled.load(); }));
  queues_.ExpireLater(absl::Now());
  EXPECT_EQ(answers_.count(), 0u);
  cancelled = true;
  queues_.ExpireLater(absl::Now());
  EXPECT_EQ(answers_.count(), 1u);
  EXPECT_TRUE(answers_.Inputs(0).empty());
  EXPECT_EQ(queues_.WaitingPollers(kArn), 0u);

  ASSERT_TRUE(TakeLater(absl::Seconds(30)));
  queues_.ExpireLater(absl::Now() + absl::Seconds(31));
  EXPECT_EQ(answers_.count(), 2u);
  EXPECT_TRUE(answers_.Inputs(1).empty());

  ASSERT_TRUE(TakeLater(absl::Seconds(30), /*max_tasks=*/1));
  std::string worker;
  TaskQueues::Waiter* claim = queues_.Claim(kArn, 10, &worker);
  ASSERT_NE(claim, nullptr);
  queues_.ExpireLater(absl::Now() + absl::Seconds(31));
  EXPECT_EQ(answers_.count(), 2u) << "a claimed poll was expired";
  queues_.Hand(claim, TaskWithInput(1, "a"));
  ASSERT_EQ(answers_.count(), 3u);
  EXPECT_EQ(answers_.Inputs(2), (std::vector<std::string>{"a"}));
}

// Every claim released: answered with nothing (its caller polls again).
TEST_F(TakeLaterTest, ReleasedClaimsAnswerWithNothing) {
  ASSERT_TRUE(TakeLater(kWait, /*max_tasks=*/1));
  std::string worker;
  TaskQueues::Waiter* claim = queues_.Claim(kArn, 10, &worker);
  ASSERT_NE(claim, nullptr);
  queues_.Release(claim);
  ASSERT_EQ(answers_.count(), 1u);
  EXPECT_TRUE(answers_.Inputs(0).empty()) << "answered OK with no task";
}

// Shutdown answers UNAVAILABLE, and no poll waits without a thread after it.
TEST_F(TakeLaterTest, ShutdownAnswersUnavailable) {
  ASSERT_TRUE(TakeLater(kWait));
  queues_.Shutdown();
  ASSERT_EQ(answers_.count(), 1u);
  {
    absl::MutexLock lock(&answers_.mu);
    EXPECT_EQ(answers_.answers[0].status().code(), absl::StatusCode::kUnavailable);
  }
  EXPECT_FALSE(TakeLater(kWait));
}

// Watches without a thread (WatchLater), as a shard server's watch of a
// queue spread over several servers waits.
class WatchLaterTest : public TaskQueuesTest {
 protected:
  bool WatchLater(absl::Duration wait, std::function<bool()> cancelled = {}) {
    return queues_.WatchLater(kArn, absl::Now() + wait, std::move(cancelled),
                              [this]() -> TaskQueues::WatchAnswer {
                                return [this](absl::StatusOr<bool> backlog) {
                                  absl::MutexLock lock(&mu_);
                                  answers_.push_back(std::move(backlog));
                                };
                              });
  }
  std::vector<absl::StatusOr<bool>> Answers() {
    absl::MutexLock lock(&mu_);
    return answers_;
  }

 private:
  absl::Mutex mu_;
  std::vector<absl::StatusOr<bool>> answers_ ABSL_GUARDED_BY(mu_);

 protected:
  std::atomic<int> expired_{0};
};

TEST_F(WatchLaterTest, OneWatchIsAnsweredPerTaskThatEntersTheBacklog) {
  ASSERT_TRUE(WatchLater(kWait));
  ASSERT_TRUE(WatchLater(kWait));
  EXPECT_TRUE(Answers().empty());
  queues_.Add(TaskWithInput(1, "a"));
  std::vector<absl::StatusOr<bool>> answers = Answers();
  ASSERT_EQ(answers.size(), 1u);
  ASSERT_TRUE(answers[0].ok());
  EXPECT_TRUE(*answers[0]);
  // With a backlog there already, a watch is declined (Watch answers it at
  // once); the other one still waits.
  EXPECT_FALSE(WatchLater(kWait));
  EXPECT_EQ(Answers().size(), 1u);
  Poll take(&queues_, 1, 1 << 20, kWait);
  ASSERT_EQ(take.Tasks().size(), 1u);
  queues_.Add(TaskWithInput(2, "b"));
  ASSERT_EQ(Answers().size(), 2u);
  EXPECT_TRUE(*Answers()[1]);
}

TEST_F(WatchLaterTest, AWaitingTakerGetsTheTaskInstead) {
  ASSERT_TRUE(WatchLater(kWait));
  Poll take(&queues_, 1, 1 << 20, kWait);
  ASSERT_TRUE(AwaitWaiting(queues_, 1));
  queues_.Add(TaskWithInput(1, "a"));
  ASSERT_EQ(take.Tasks().size(), 1u);
  EXPECT_TRUE(Answers().empty());
}

TEST_F(WatchLaterTest, AWatchWhoseCallerWentAwayIsAnsweredFalseAndTheNextOneWoken) {
  std::atomic<bool> gone{false};
  ASSERT_TRUE(WatchLater(kWait, [&gone] { return gone.load(); }));
  ASSERT_TRUE(WatchLater(kWait, [] { return false; }));
  gone = true;
  queues_.Add(TaskWithInput(1, "a"));
  std::vector<absl::StatusOr<bool>> answers = Answers();
  ASSERT_EQ(answers.size(), 2u);
  EXPECT_FALSE(*answers[0]);
  EXPECT_TRUE(*answers[1]);
}

TEST_F(WatchLaterTest, ExpiresAtItsDeadlineOrWhenItsCallerLeftAndShutdownAnswersUnavailable) {
  std::atomic<bool> gone{false};
  const absl::Time soon = absl::Now() + absl::Milliseconds(1);
  ASSERT_TRUE(queues_.WatchLater(kArn, soon, {}, [this]() -> TaskQueues::WatchAnswer {
    return [this](absl::StatusOr<bool> backlog) {
      EXPECT_TRUE(backlog.ok() && !*backlog);
      expired_.fetch_add(1);
    };
  }));
  ASSERT_TRUE(WatchLater(kWait, [&gone] { return gone.load(); }));
  ASSERT_TRUE(WatchLater(kWait));
  EXPECT_EQ(queues_.NextLaterDeadline(), soon);
  queues_.ExpireLater(soon);
  EXPECT_EQ(expired_.load(), 1);
  EXPECT_TRUE(Answers().empty());
  gone = true;
  queues_.ExpireLater(absl::Now());
  ASSERT_EQ(Answers().size(), 1u);
  EXPECT_FALSE(*Answers()[0]);
  queues_.Shutdown();
  ASSERT_EQ(Answers().size(), 2u);
  EXPECT_EQ(Answers()[1].status().code(), absl::StatusCode::kUnavailable);
  EXPECT_FALSE(WatchLater(kWait));
}

}  // namespace
}  // namespace stepflow::execution
