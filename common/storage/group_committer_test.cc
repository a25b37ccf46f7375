#include "common/storage/group_committer.h"

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/storage/failing_wal_env.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace stepflow::storage {
namespace {

using ::testing::ElementsAreArray;
using ::testing::Optional;

class GroupCommitterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern =
        (std::filesystem::temp_directory_path() / "group_committer_test.XXXXXX").string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
    StoreOptions options;
    options.path = (std::filesystem::path(dir_) / "db").string();
    options.column_families = {"items"};
    options.env = wal_env_.env();
    auto store = Store::Open(options);
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
    items_ = *store_->Family("items");
  }
  void TearDown() override {
    store_.reset();
    std::filesystem::remove_all(dir_);
  }

  WriteBatch One(const std::string& key, const std::string& value) {
    WriteBatch batch;
    batch.Put(items_, key, value);
    return batch;
  }

  // Waits up to 10 s for `key` to be readable; whether it came.
  bool AwaitWritten(const std::string& key) {
    const absl::Time give_up = absl::Now() + absl::Seconds(10);
    while (absl::Now() < give_up) {
      absl::StatusOr<std::optional<std::string>> value = store_->Get(items_, key);
      if (value.ok() && value->has_value()) return true;
      absl::SleepFor(absl::Milliseconds(1));
    }
    return false;
  }

  testing::FailingWalEnv wal_env_;
  std::string dir_;
  std::unique_ptr<Store> store_;
  FamilyId items_ = 0;
};

TEST_F(GroupCommitterTest, BatchesQueuedMeanwhileShareOneWriteAndRunInOrder) {
  GroupCommitter committer(store_.get());
  absl::Notification release;
  absl::Mutex mu;
  std::vector<int> order;
  std::vector<absl::Status> statuses(22);
  // The first batch's continuation holds the continuation thread; the
  // second batch is then written, and its group waits for that thread, which
  // holds up the writing of the next group: the twenty that queue up
  // meanwhile go out together.
  absl::Notification first_written;
  committer.Submit(One("k0", "v0"), [&](absl::Status status) {
    statuses[0] = status;
    first_written.Notify();
    release.WaitForNotification();
    absl::MutexLock lock(&mu);
    order.push_back(0);
  });
  first_written.WaitForNotification();
  auto record = [&](int i) {
    return [&, i](absl::Status status) {
      // Written before it runs: readers see it.
      EXPECT_THAT(*store_->Get(items_, absl::StrCat("k", i)), Optional(absl::StrCat("v", i)));
      statuses[i] = status;
      absl::MutexLock lock(&mu);
      order.push_back(i);
    };
  };
  committer.Submit(One("k1", "v1"), record(1));
  // Lets the held continuation go also when an assertion ends the test,
  // so that the committer's Stop does not wait for it forever.
  absl::Cleanup let_go = [&release] {
    if (!release.HasBeenNotified()) release.Notify();
  };
  ASSERT_TRUE(AwaitWritten("k1"));
  const uint64_t syncs_before = store_->WalSyncs();
  for (int i = 2; i <= 21; ++i) {
    committer.Submit(One(absl::StrCat("k", i), absl::StrCat("v", i)), record(i));
  }
  release.Notify();
  committer.Stop();
  std::vector<int> expected;
  for (int i = 0; i <= 21; ++i) {
    expected.push_back(i);
    EXPECT_TRUE(statuses[i].ok()) << i << ": " << statuses[i];
  }
  EXPECT_THAT(order, ElementsAreArray(expected));
  EXPECT_EQ(committer.batches(), 22u);
  EXPECT_EQ(committer.groups(), 3u);
  EXPECT_EQ(store_->WalSyncs() - syncs_before, 1u);
}

TEST_F(GroupCommitterTest, ContinuationsRunWhileTheNextGroupIsWritten) {
  GroupCommitter committer(store_.get());
  // The first continuation waits for a batch queued after it began: that
  // batch is written meanwhile, not after the continuation returns.
  absl::Notification first_running;
  bool second_seen = false;
  committer.Submit(One("first", "1"), [&](absl::Status) {
    first_running.Notify();
    second_seen = AwaitWritten("second");
  });
  first_running.WaitForNotification();
  absl::Status second;
  committer.Submit(One("second", "2"), [&](absl::Status s) { second = s; });
  committer.Stop();
  EXPECT_TRUE(second_seen);
  EXPECT_TRUE(second.ok()) << second;
}

TEST_F(GroupCommitterTest, ABatchNamingAnUnknownFamilyFailsAlone) {
  GroupCommitter committer(store_.get());
  absl::Notification release;
  absl::Notification first_written;
  committer.Submit(One("a", "1"), [&](absl::Status) {
    first_written.Notify();
    release.WaitForNotification();
  });
  first_written.WaitForNotification();
  absl::Status good_before, bad, good_after;
  committer.Submit(One("b", "2"), [&](absl::Status s) { good_before = s; });
  WriteBatch unknown;
  unknown.Put(items_ + 100, "c", "3");
  committer.Submit(std::move(unknown), [&](absl::Status s) { bad = s; });
  committer.Submit(One("d", "4"), [&](absl::Status s) { good_after = s; });
  release.Notify();
  committer.Stop();
  EXPECT_TRUE(good_before.ok()) << good_before;
  EXPECT_EQ(bad.code(), absl::StatusCode::kInvalidArgument) << bad;
  EXPECT_TRUE(good_after.ok()) << good_after;
  EXPECT_THAT(*store_->Get(items_, "b"), Optional(std::string("2")));
  EXPECT_THAT(*store_->Get(items_, "d"), Optional(std::string("4")));
}

TEST_F(GroupCommitterTest, BatchesThatNeedNoFsyncAreWrittenInOrderWithoutOne) {
  GroupCommitter committer(store_.get());
  absl::Notification release;
  absl::Notification first_written;
  committer.Submit(
      One("a", "1"),
      [&](absl::Status) {
        first_written.Notify();
        release.WaitForNotification();
      },
      /*sync=*/false);
  first_written.WaitForNotification();
  const uint64_t syncs_before = store_->WalSyncs();
  std::vector<int> order;
  for (int i = 0; i < 3; ++i) {
    committer.Submit(One("k", absl::StrCat(i)), [&order, i](absl::Status) { order.push_back(i); },
                     /*sync=*/false);
  }
  release.Notify();
  committer.Stop();
  EXPECT_THAT(order, ElementsAreArray({0, 1, 2}));
  EXPECT_THAT(*store_->Get(items_, "k"), Optional(std::string("2")));  // the last one wins
  EXPECT_EQ(store_->WalSyncs(), syncs_before);
  EXPECT_EQ(committer.groups(), 0u);
  EXPECT_EQ(committer.batches(), 0u);
}

TEST_F(GroupCommitterTest, ConcurrentSubmittersAllGetWritten) {
  GroupCommitter committer(store_.get());
  constexpr int kThreads = 8;
  constexpr int kPerThread = 200;
  std::atomic<int> ok{0};
  std::atomic<int> failed{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        committer.Submit(One(absl::StrCat(t, "-", i), "v"),
                         [&](absl::Status s) { (s.ok() ? ok : failed).fetch_add(1); });
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  committer.Stop();
  EXPECT_EQ(ok.load(), kThreads * kPerThread);
  EXPECT_EQ(failed.load(), 0);
  EXPECT_LE(committer.groups(), committer.batches());
  for (int t = 0; t < kThreads; ++t) {
    EXPECT_THAT(*store_->Get(items_, absl::StrCat(t, "-", kPerThread - 1)),
                Optional(std::string("v")));
  }
}

TEST_F(GroupCommitterTest, AFailedWriteReachesEveryBatchOfItsGroupAndAppliesNothing) {
  GroupCommitter committer(store_.get());
  absl::Mutex mu;
  std::vector<int> order;
  std::vector<absl::Status> statuses(12);
  auto record = [&](int i) {
    return [&, i](absl::Status status) {
      absl::MutexLock lock(&mu);
      statuses[i] = std::move(status);
      order.push_back(i);
    };
  };
  committer.Submit(One("k0", "v0"), record(0));
  ASSERT_TRUE(AwaitWritten("k0"));
  wal_env_.set_failing(true);
  for (int i = 1; i <= 10; ++i) {
    committer.Submit(One(absl::StrCat("k", i), absl::StrCat("v", i)), record(i),
                     /*sync=*/i % 2 == 0);
  }
  // The store refuses writes after a failed one (its WAL is in doubt until
  // it is opened again), also once the disk would take them.
  const absl::Time give_up = absl::Now() + absl::Seconds(10);
  while (wal_env_.refused() == 0 && absl::Now() < give_up) absl::SleepFor(absl::Milliseconds(1));
  wal_env_.set_failing(false);
  committer.Submit(One("k11", "v11"), record(11));
  committer.Stop();

  std::vector<int> expected;
  for (int i = 0; i <= 11; ++i) expected.push_back(i);
  EXPECT_THAT(order, ElementsAreArray(expected));
  EXPECT_TRUE(statuses[0].ok()) << statuses[0];
  for (int i = 1; i <= 11; ++i) {
    EXPECT_EQ(statuses[i].code(), absl::StatusCode::kUnavailable) << i << ": " << statuses[i];
    EXPECT_THAT(*store_->Get(items_, absl::StrCat("k", i)), ::testing::Eq(std::nullopt)) << i;
  }
  EXPECT_THAT(*store_->Get(items_, "k0"), Optional(std::string("v0")));
}

TEST_F(GroupCommitterTest, AfterStopSubmitIsRefusedAtOnce) {
  GroupCommitter committer(store_.get());
  absl::Status written;
  committer.Submit(One("queued", "1"), [&](absl::Status s) { written = s; });
  committer.Stop();  // writes what was queued
  EXPECT_TRUE(written.ok()) << written;
  EXPECT_THAT(*store_->Get(items_, "queued"), Optional(std::string("1")));
  absl::Status refused;
  committer.Submit(One("late", "1"), [&](absl::Status s) { refused = s; });
  EXPECT_EQ(refused.code(), absl::StatusCode::kUnavailable) << refused;
  EXPECT_EQ(*store_->Get(items_, "late"), std::nullopt);
  committer.Stop();  // a second Stop is harmless
}

}  // namespace
}  // namespace stepflow::storage
