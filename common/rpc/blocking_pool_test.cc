#include "common/rpc/blocking_pool.h"

#include <atomic>

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

}  // namespace
}  // namespace stepflow::rpc
