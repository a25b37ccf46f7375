#include "common/rpc/blocking_pool.h"

#include <sys/resource.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <thread>

#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"

namespace stepflow::rpc {
namespace {

// Calls that block until all of them run at once: a pool that made a call
// wait for a blocked one would never release them.
TEST(BlockingPoolTest, BlockedCallsNeverHoldUpOthers) {
  constexpr int kCalls = 40;
  BlockingPool pool(/*keep_idle=*/2, absl::Seconds(30));
  absl::Mutex mu;
  int running = 0;
  std::atomic<int> finished{0};
  for (int i = 0; i < kCalls; ++i) {
    pool.Run([&] {
      absl::MutexLock lock(&mu);
      ++running;
      EXPECT_TRUE(mu.AwaitWithTimeout(
          absl::Condition(+[](int* n) { return *n == kCalls; }, &running), absl::Seconds(20)));
      finished.fetch_add(1);
    });
  }
  const absl::Time give_up = absl::Now() + absl::Seconds(20);
  while (finished.load() < kCalls && absl::Now() < give_up) absl::SleepFor(absl::Milliseconds(5));
  EXPECT_EQ(finished.load(), kCalls);
  EXPECT_GE(pool.threads(), kCalls);
}

TEST(BlockingPoolTest, IdleThreadsBeyondTheKeptOnesExit) {
  BlockingPool pool(/*keep_idle=*/2, absl::Milliseconds(100));
  absl::Notification release;
  std::atomic<int> finished{0};
  for (int i = 0; i < 10; ++i) {
    pool.Run([&] {
      release.WaitForNotification();
      finished.fetch_add(1);
    });
  }
  EXPECT_GE(pool.threads(), 10);
  release.Notify();
  const absl::Time give_up = absl::Now() + absl::Seconds(20);
  while ((finished.load() < 10 || pool.threads() > 3) && absl::Now() < give_up) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  EXPECT_EQ(finished.load(), 10);
  EXPECT_LE(pool.threads(), 3);
  // The pool still serves calls after its threads shrank.
  absl::Notification ran;
  pool.Run([&] { ran.Notify(); });
  EXPECT_TRUE(ran.WaitForNotificationWithTimeout(absl::Seconds(20)));
}

TEST(BlockingPoolTest, DestructionRunsQueuedCalls) {
  std::atomic<int> finished{0};
  {
    BlockingPool pool;
    for (int i = 0; i < 100; ++i) {
      pool.Run([&] {
        absl::SleepFor(absl::Microseconds(100));
        finished.fetch_add(1);
      });
    }
  }
  EXPECT_EQ(finished.load(), 100);
}

// When the system refuses a thread. The limit on a user's threads
// (RLIMIT_NPROC) binds only an unprivileged user, so these run in a child
// process that drops root for nobody; elsewhere they are skipped.
class RefusedThreadTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) {
      GTEST_SKIP() << "needs root, to become a user whose thread limit binds";
    }
    GTEST_FLAG_SET(death_test_style, "threadsafe");
  }

  // In the child: exits with `code` unless it became nobody.
  static void BecomeNobody(int code) {
    if (setgid(65534) != 0 || setuid(65534) != 0) std::_Exit(code);
  }
  // In the child: no thread can be started from now on.
  static void RefuseNewThreads(int code) {
    const rlimit none{1, 1};
    if (setrlimit(RLIMIT_NPROC, &none) != 0) std::_Exit(code);
    std::thread probe;
    try {
      probe = std::thread([] {});
    } catch (const std::system_error&) {
      return;
    }
    probe.join();
    std::_Exit(code);  // the limit did not bind
  }
};

TEST_F(RefusedThreadTest, ACallWaitsForARunningThread) {
  EXPECT_EXIT(
      {
        BecomeNobody(3);
        BlockingPool pool(/*keep_idle=*/1, absl::Seconds(30));
        absl::Notification first_started;
        absl::Notification release;
        std::atomic<bool> second_ran{false};
        pool.Run([&] {
          first_started.Notify();
          release.WaitForNotification();
        });
        first_started.WaitForNotification();
        RefuseNewThreads(4);
        const std::thread::id caller = std::this_thread::get_id();
        std::atomic<bool> second_on_caller{false};
        pool.Run([&] {
          second_on_caller = std::this_thread::get_id() == caller;
          second_ran = true;
        });
        absl::SleepFor(absl::Milliseconds(200));
        if (second_ran.load()) std::_Exit(5);  // it did not wait
        release.Notify();
        const absl::Time give_up = absl::Now() + absl::Seconds(5);
        while (!second_ran.load() && absl::Now() < give_up) absl::SleepFor(absl::Milliseconds(5));
        if (!second_ran.load()) std::_Exit(6);
        if (second_on_caller.load()) std::_Exit(7);
        if (pool.threads() != 1) std::_Exit(8);
        std::_Exit(0);
      },
      ::testing::ExitedWithCode(0), "cannot start a thread for a blocking call");
}

TEST_F(RefusedThreadTest, WithNoThreadRunningACallRunsOnTheCallersThread) {
  EXPECT_EXIT(
      {
        BecomeNobody(3);
        RefuseNewThreads(4);
        BlockingPool pool;
        const std::thread::id caller = std::this_thread::get_id();
        std::atomic<bool> ran_on_caller{false};
        pool.Run([&] { ran_on_caller = std::this_thread::get_id() == caller; });
        if (!ran_on_caller.load()) std::_Exit(5);
        if (pool.threads() != 0) std::_Exit(6);
        std::_Exit(0);
      },
      ::testing::ExitedWithCode(0), "cannot start a thread for a blocking call");
}

}  // namespace
}  // namespace stepflow::rpc
