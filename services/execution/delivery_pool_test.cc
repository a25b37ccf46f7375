#include "services/execution/delivery_pool.h"

#include <atomic>
#include <memory>
#include <vector>

#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"

namespace stepflow::execution {
namespace {

TEST(DeliveryPoolTest, SubmitReturnsAtOnceAndRunsTheWorkOnThePool) {
  DeliveryPool pool(2);
  absl::Notification release;
  absl::Notification ran;
  pool.Submit([&] {
    release.WaitForNotification();
    ran.Notify();
  });
  EXPECT_FALSE(ran.HasBeenNotified());  // the caller did not wait for it
  release.Notify();
  EXPECT_TRUE(ran.WaitForNotificationWithTimeout(absl::Seconds(10)));
}

TEST(DeliveryPoolTest, RunAllFinishesWhileEveryThreadRunsSubmittedWork) {
  DeliveryPool pool(2);
  absl::Notification release;
  std::atomic<int> started{0};
  std::atomic<int> finished{0};
  for (int i = 0; i < 4; ++i) {
    pool.Submit([&] {
      started.fetch_add(1);
      release.WaitForNotification();
      finished.fetch_add(1);
    });
  }
  std::vector<int> done(8, 0);
  pool.RunAll(done.size(), [&](size_t i) { done[i] = 1; });  // on the caller's thread
  for (int value : done) EXPECT_EQ(value, 1);
  EXPECT_LE(started.load(), 2);
  release.Notify();
  const absl::Time end = absl::Now() + absl::Seconds(10);
  while (finished.load() < 4 && absl::Now() < end) absl::SleepFor(absl::Milliseconds(5));
  EXPECT_EQ(finished.load(), 4);
}

}  // namespace
}  // namespace stepflow::execution
