#include "common/storage/store.h"

#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/storage/failing_wal_env.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "rocksdb/status.h"

namespace stepflow::storage {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::Optional;
using ::testing::UnorderedElementsAre;

using KV = std::pair<std::string, std::string>;

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern =
        (std::filesystem::temp_directory_path() / "store_test.XXXXXX").string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  StoreOptions Options(std::vector<std::string> families) {
    StoreOptions options;
    options.path = (std::filesystem::path(dir_) / "db").string();
    options.column_families = std::move(families);
    return options;
  }

  std::unique_ptr<Store> OpenOrDie(std::vector<std::string> families) {
    absl::StatusOr<std::unique_ptr<Store>> store =
        Store::Open(Options(std::move(families)));
    EXPECT_TRUE(store.ok()) << store.status();
    return store.ok() ? *std::move(store) : nullptr;
  }

  // All key/value pairs a scan visits, in visiting order.
  static std::vector<KV> ScanAll(const Store& store, FamilyId family,
                                 std::string_view prefix,
                                 std::string_view start, bool reverse,
                                 size_t limit = 1000) {
    std::vector<KV> out;
    absl::Status s = store.Scan(family, prefix, start, reverse,
                                [&](std::string_view k, std::string_view v) {
                                  out.emplace_back(k, v);
                                  return out.size() < limit;
                                });
    EXPECT_TRUE(s.ok()) << s;
    return out;
  }

  std::string dir_;
};

TEST_F(StoreTest, PutGetDeleteAndMissingKey) {
  auto store = OpenOrDie({"items"});
  ASSERT_NE(store, nullptr);
  FamilyId items = *store->Family("items");

  WriteBatch batch;
  batch.Put(items, "a", "1");
  batch.Put(items, "b", "2");
  EXPECT_EQ(batch.Count(), 2u);
  EXPECT_FALSE(batch.empty());
  ASSERT_TRUE(store->Write(batch, /*sync=*/true).ok());

  EXPECT_THAT(*store->Get(items, "a"), Optional(std::string("1")));
  EXPECT_EQ(*store->Get(items, "zzz"), std::nullopt);

  batch.Clear();
  EXPECT_TRUE(batch.empty());
  batch.Delete(items, "a");
  ASSERT_TRUE(store->Write(batch, /*sync=*/false).ok());
  EXPECT_EQ(*store->Get(items, "a"), std::nullopt);
  EXPECT_THAT(*store->Get(items, "b"), Optional(std::string("2")));
}

// A family opened for point lookups (a bloom filter in its memtables)
// answers them as any other, across many keys, deletes and a reopen.
TEST_F(StoreTest, PointLookupFamilyAnswersPresentAndAbsentKeys) {
  StoreOptions options = Options({"records", "plain"});
  options.point_lookup_families = {"records"};
  {
    auto opened = Store::Open(options);
    ASSERT_TRUE(opened.ok()) << opened.status();
    Store& store = **opened;
    FamilyId records = *store.Family("records");
    WriteBatch batch;
    for (int i = 0; i < 1000; ++i) batch.Put(records, absl::StrCat("key-", i), absl::StrCat(i));
    ASSERT_TRUE(store.Write(batch, /*sync=*/false).ok());
    batch.Clear();
    batch.Delete(records, "key-7");
    ASSERT_TRUE(store.Write(batch, /*sync=*/false).ok());
    for (int i = 0; i < 1000; ++i) {
      auto value = store.Get(records, absl::StrCat("key-", i));
      ASSERT_TRUE(value.ok());
      if (i == 7) {
        EXPECT_EQ(*value, std::nullopt);
      } else {
        EXPECT_THAT(*value, Optional(absl::StrCat(i)));
      }
      EXPECT_EQ(*store.Get(records, absl::StrCat("absent-", i)), std::nullopt);
    }
    EXPECT_EQ(*store.Get(*store.Family("plain"), "key-1"), std::nullopt);
  }
  auto reopened = Store::Open(options);
  ASSERT_TRUE(reopened.ok()) << reopened.status();
  EXPECT_THAT(*(*reopened)->Get(*(*reopened)->Family("records"), "key-999"),
              Optional(std::string("999")));
  EXPECT_EQ(*(*reopened)->Get(*(*reopened)->Family("records"), "key-7"), std::nullopt);
}

// Families whose memtables insert from hints (a sequence under a prefix,
// records rewritten whole) read and scan as any other, whatever the order
// of the writes, short keys and a reopen included.
TEST_F(StoreTest, HintedFamiliesReadAndScanAsAnyOther) {
  StoreOptions options = Options({"history", "records"});
  options.sequenced_families = {"history"};
  options.rewritten_families = {"records"};
  auto sequenced_key = [](int entity, uint64_t sequence) {
    std::string key = absl::StrCat("entity-", entity, "/");
    AppendUint64(&key, sequence);
    return key;
  };
  std::vector<std::string> expected;
  {
    auto opened = Store::Open(options);
    ASSERT_TRUE(opened.ok()) << opened.status();
    Store& store = **opened;
    FamilyId history = *store.Family("history");
    FamilyId records = *store.Family("records");
    // Entities take turns, each writing its sequence in order but one
    // step written late; records are rewritten at each step.
    for (uint64_t step = 0; step < 50; ++step) {
      for (int entity = 0; entity < 20; ++entity) {
        WriteBatch batch;
        const uint64_t sequence = step == 10 ? 60 : step == 49 ? 10 : step;
        batch.Put(history, sequenced_key(entity, sequence), absl::StrCat(sequence));
        batch.Put(records, absl::StrCat("record-", entity), absl::StrCat(step));
        ASSERT_TRUE(store.Write(batch, /*sync=*/false).ok());
      }
    }
    WriteBatch shorts;
    shorts.Put(history, "short", "s");  // out of the hints' domain
    ASSERT_TRUE(store.Write(shorts, /*sync=*/false).ok());
    for (int entity = 0; entity < 20; ++entity) {
      EXPECT_THAT(*store.Get(records, absl::StrCat("record-", entity)),
                  Optional(std::string("49")));
    }
    EXPECT_THAT(*store.Get(history, "short"), Optional(std::string("s")));
  }
  // Sequences 0 to 48 (10 written last), then 60 (written at step 10).
  for (uint64_t sequence = 0; sequence < 49; ++sequence) expected.push_back(absl::StrCat(sequence));
  expected.push_back("60");
  auto reopened = Store::Open(options);
  ASSERT_TRUE(reopened.ok()) << reopened.status();
  Store& store = **reopened;
  FamilyId history = *store.Family("history");
  for (int entity = 0; entity < 20; ++entity) {
    std::vector<std::string> values;
    ASSERT_TRUE(store
                    .Scan(history, absl::StrCat("entity-", entity, "/"), "", false,
                          [&](std::string_view, std::string_view value) {
                            values.emplace_back(value);
                            return true;
                          })
                    .ok());
    EXPECT_EQ(values, expected) << "entity " << entity;
  }
  EXPECT_THAT(*store.Get(*store.Family("records"), "record-3"), Optional(std::string("49")));
}

// Concatenated batches apply as one: every operation, in the batches'
// order (a later put or delete of a key wins), their families merged.
TEST_F(StoreTest, ConcatenatedBatchesApplyInOrderInOneWrite) {
  auto store = OpenOrDie({"x", "y"});
  ASSERT_NE(store, nullptr);
  FamilyId x = *store->Family("x");
  FamilyId y = *store->Family("y");
  ASSERT_TRUE([&] {
    WriteBatch seed;
    seed.Put(x, "gone", "old");
    return store->Write(seed, /*sync=*/false);
  }().ok());

  WriteBatch first;
  first.Put(x, "k", "first");
  first.Put(x, "kept", "1");
  WriteBatch second;
  second.Put(x, "k", "second");  // later operations win
  second.Delete(x, "gone");
  second.Put(y, "k", "in-y");
  second.Put(y, "long", std::string(300, 'v'));  // a length of two bytes
  WriteBatch empty;
  WriteBatch group = WriteBatch::Concat({&first, &empty, &second});
  EXPECT_EQ(group.Count(), 6u);
  EXPECT_EQ(group.ByteSize(), first.ByteSize() + empty.ByteSize() + second.ByteSize() - 24)
      << "one 12-byte header for all";
  EXPECT_EQ(first.Count(), 2u);  // the concatenated batches are unchanged
  ASSERT_TRUE(store->Write(group, /*sync=*/true).ok());

  EXPECT_THAT(*store->Get(x, "k"), Optional(std::string("second")));
  EXPECT_THAT(*store->Get(x, "kept"), Optional(std::string("1")));
  EXPECT_EQ(*store->Get(x, "gone"), std::nullopt);
  EXPECT_THAT(*store->Get(y, "k"), Optional(std::string("in-y")));
  EXPECT_THAT(*store->Get(y, "long"), Optional(std::string(300, 'v')));
  EXPECT_TRUE(WriteBatch::Concat({}).empty());

  // The families a concatenated batch names are checked as its own are.
  WriteBatch bad;
  bad.Put(99, "k", "v");
  WriteBatch carrier;
  carrier.Put(x, "never", "v");
  WriteBatch carried = WriteBatch::Concat({&carrier, &bad});
  EXPECT_FALSE(store->CheckFamilies(carried).ok());
  EXPECT_EQ(store->Write(carried, /*sync=*/false).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(*store->Get(x, "never"), std::nullopt);
}

// A range deletion drops [begin, end) of its family only, keys flushed to
// files and keys still in the memtable alike, and keeps doing so after a
// reopen; a put after it in the same batch stands.
TEST_F(StoreTest, DeleteRangeDropsHalfOpenRangeOfOneFamily) {
  auto store = OpenOrDie({"x", "y"});
  ASSERT_NE(store, nullptr);
  FamilyId x = *store->Family("x");
  FamilyId y = *store->Family("y");
  WriteBatch seed;
  for (const char* key : {"a", "b1", "b2", "c"}) {
    seed.Put(x, key, "v");
    seed.Put(y, key, "v");
  }
  ASSERT_TRUE(store->Write(seed, /*sync=*/false).ok());
  ASSERT_TRUE(store->Flush().ok());
  WriteBatch late;
  late.Put(x, "b3", "v");  // only in the memtable
  ASSERT_TRUE(store->Write(late, /*sync=*/false).ok());

  WriteBatch drop;
  drop.DeleteRange(x, "b", "c");
  drop.Put(x, "b9", "after");
  EXPECT_EQ(drop.Count(), 2u);
  ASSERT_TRUE(store->Write(drop, /*sync=*/true).ok());
  auto keys = [&](FamilyId family) {
    std::vector<std::string> found;
    EXPECT_TRUE(store->Scan(family, "", "", false, [&](std::string_view key, std::string_view) {
                       found.emplace_back(key);
                       return true;
                     })
                    .ok());
    return found;
  };
  EXPECT_THAT(keys(x), ElementsAre("a", "b9", "c"));
  EXPECT_THAT(keys(y), ElementsAre("a", "b1", "b2", "c"));
  EXPECT_EQ(*store->Get(x, "b1"), std::nullopt);

  store.reset();
  store = OpenOrDie({"x", "y"});
  ASSERT_NE(store, nullptr);
  EXPECT_THAT(keys(x), ElementsAre("a", "b9", "c"));

  WriteBatch bad;
  bad.DeleteRange(99, "a", "b");
  EXPECT_EQ(store->Write(bad, /*sync=*/false).code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(StoreTest, FamiliesAreSeparateKeySpaces) {
  auto store = OpenOrDie({"x", "y"});
  ASSERT_NE(store, nullptr);
  FamilyId def = *store->Family("default");
  FamilyId x = *store->Family("x");
  FamilyId y = *store->Family("y");
  EXPECT_NE(x, y);
  EXPECT_NE(def, x);

  WriteBatch batch;
  batch.Put(x, "k", "in-x");
  batch.Put(y, "k", "in-y");
  ASSERT_TRUE(store->Write(batch, true).ok());
  EXPECT_THAT(*store->Get(x, "k"), Optional(std::string("in-x")));
  EXPECT_THAT(*store->Get(y, "k"), Optional(std::string("in-y")));
  EXPECT_EQ(*store->Get(def, "k"), std::nullopt);
}

TEST_F(StoreTest, UnknownFamilyIsNotFoundAndBadIdsAreRejected) {
  auto store = OpenOrDie({"x"});
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->Family("nope").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store->Get(999, "k").status().code(),
            absl::StatusCode::kInvalidArgument);

  // A batch naming a bad id writes nothing, not even its valid part.
  FamilyId x = *store->Family("x");
  WriteBatch batch;
  batch.Put(x, "k", "v");
  batch.Put(999, "k", "v");
  EXPECT_EQ(store->Write(batch, true).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(*store->Get(x, "k"), std::nullopt);
  // A refused batch is the caller's error, not the disk's.
  EXPECT_TRUE(store->WriteFailure().ok());
}

TEST_F(StoreTest, ReopenPreservesDataAndFamilies) {
  FamilyId first_b;
  {
    auto store = OpenOrDie({"a", "b"});
    ASSERT_NE(store, nullptr);
    first_b = *store->Family("b");
    WriteBatch batch;
    batch.Put(*store->Family("a"), "ka", "va");
    batch.Put(first_b, "kb", "vb");
    ASSERT_TRUE(store->Write(batch, true).ok());
  }
  {
    // Fewer families requested: "a" is still opened because it exists.
    auto store = OpenOrDie({"b"});
    ASSERT_NE(store, nullptr);
    EXPECT_EQ(*store->Family("b"), first_b);
    EXPECT_THAT(*store->Get(*store->Family("a"), "ka"),
                Optional(std::string("va")));
    EXPECT_THAT(*store->Get(first_b, "kb"), Optional(std::string("vb")));
    EXPECT_THAT(store->FamilyNames(),
                UnorderedElementsAre("default", "a", "b"));
    ASSERT_TRUE(store->Flush().ok());
  }
  {
    // Data now lives in SST files rather than the WAL; a new family is added.
    auto store = OpenOrDie({"a", "b", "c"});
    ASSERT_NE(store, nullptr);
    EXPECT_THAT(*store->Get(first_b, "kb"), Optional(std::string("vb")));
    EXPECT_TRUE(store->Family("c").ok());
    EXPECT_EQ(store->FamilyNames().front(), "default");
  }
}

// RocksDB's behaviour the group committer and the shard server rely on: a
// batch whose WAL write fails is not applied, the store then refuses every
// write (its state on disk is in doubt until it is opened again), and
// opening it again recovers what was written before.
TEST_F(StoreTest, FailedWalWriteAppliesNothingAndLaterWritesAreRefused) {
  testing::FailingWalEnv env;
  StoreOptions options = Options({"a"});
  options.env = env.env();
  std::vector<absl::Status> reported;
  options.on_write_failure = [&reported](const absl::Status& status) {
    reported.push_back(status);
  };
  {
    absl::StatusOr<std::unique_ptr<Store>> store = Store::Open(options);
    ASSERT_TRUE(store.ok()) << store.status();
    const FamilyId a = *(*store)->Family("a");
    WriteBatch before;
    before.Put(a, "before", "1");
    ASSERT_TRUE((*store)->Write(before, /*sync=*/true).ok());

    env.set_failing(true);
    WriteBatch failed;
    failed.Put(a, "failed", "2");
    absl::Status written = (*store)->Write(failed, /*sync=*/true);
    env.set_failing(false);
    EXPECT_EQ(written.code(), absl::StatusCode::kUnavailable) << written;
    EXPECT_THAT(std::string(written.message()), ::testing::HasSubstr("injected"));
    EXPECT_GT(env.refused(), 0u);
    EXPECT_THAT(*(*store)->Get(a, "failed"), ::testing::Eq(std::nullopt));

    WriteBatch after;
    after.Put(a, "after", "3");
    EXPECT_EQ((*store)->Write(after, /*sync=*/true).code(), absl::StatusCode::kUnavailable);
    EXPECT_THAT(*(*store)->Get(a, "before"), Optional(std::string("1")));
    // Reported once, with the first failure.
    ASSERT_EQ(reported.size(), 1u);
    EXPECT_EQ(reported[0], written);
    EXPECT_EQ((*store)->WriteFailure(), written);
  }
  absl::StatusOr<std::unique_ptr<Store>> store = Store::Open(options);
  ASSERT_TRUE(store.ok()) << store.status();
  const FamilyId a = *(*store)->Family("a");
  EXPECT_THAT(*(*store)->Get(a, "before"), Optional(std::string("1")));
  EXPECT_THAT(*(*store)->Get(a, "failed"), ::testing::Eq(std::nullopt));
  EXPECT_THAT(*(*store)->Get(a, "after"), ::testing::Eq(std::nullopt));
  WriteBatch again;
  again.Put(a, "again", "4");
  EXPECT_TRUE((*store)->Write(again, /*sync=*/true).ok());
  EXPECT_TRUE((*store)->WriteFailure().ok());
  EXPECT_EQ(reported.size(), 1u);
}

TEST_F(StoreTest, OpenFailsWhenMissingAndNotCreating) {
  StoreOptions options = Options({});
  options.create_if_missing = false;
  absl::StatusOr<std::unique_ptr<Store>> store = Store::Open(options);
  EXPECT_FALSE(store.ok());
  EXPECT_EQ(Store::Open(StoreOptions{}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(StoreTest, SecondOpenOfSameDirectoryFails) {
  auto store = OpenOrDie({});
  ASSERT_NE(store, nullptr);
  absl::StatusOr<std::unique_ptr<Store>> again = Store::Open(Options({}));
  EXPECT_FALSE(again.ok());
}

class ScanTest : public StoreTest {
 protected:
  void SetUp() override {
    StoreTest::SetUp();
    store_ = OpenOrDie({"f"});
    ASSERT_NE(store_, nullptr);
    f_ = *store_->Family("f");
    WriteBatch batch;
    for (const char* key : {"a", "b/1", "b/2", "b/3", "b0", "c", "\xff\xff"}) {
      batch.Put(f_, key, std::string("v") + key);
    }
    ASSERT_TRUE(store_->Write(batch, false).ok());
  }

  static std::vector<std::string> Keys(const std::vector<KV>& kvs) {
    std::vector<std::string> keys;
    for (const KV& kv : kvs) keys.push_back(kv.first);
    return keys;
  }

  std::unique_ptr<Store> store_;
  FamilyId f_;
};

TEST_F(ScanTest, ForwardPrefix) {
  std::vector<KV> kvs = ScanAll(*store_, f_, "b/", "", false);
  EXPECT_THAT(kvs, ElementsAre(KV{"b/1", "vb/1"}, KV{"b/2", "vb/2"},
                               KV{"b/3", "vb/3"}));
}

TEST_F(ScanTest, ReversePrefix) {
  EXPECT_THAT(Keys(ScanAll(*store_, f_, "b/", "", true)),
              ElementsAre("b/3", "b/2", "b/1"));
}

TEST_F(ScanTest, ForwardFromStart) {
  EXPECT_THAT(Keys(ScanAll(*store_, f_, "b/", "b/2", false)),
              ElementsAre("b/2", "b/3"));
  // A start between keys begins at the next key.
  EXPECT_THAT(Keys(ScanAll(*store_, f_, "b/", "b/15", false)),
              ElementsAre("b/2", "b/3"));
  // A start before the prefix range begins at its edge; after it, nothing.
  EXPECT_THAT(Keys(ScanAll(*store_, f_, "b/", "a", false)),
              ElementsAre("b/1", "b/2", "b/3"));
  EXPECT_THAT(ScanAll(*store_, f_, "b/", "c", false), IsEmpty());
}

TEST_F(ScanTest, ReverseFromStart) {
  EXPECT_THAT(Keys(ScanAll(*store_, f_, "b/", "b/2", true)),
              ElementsAre("b/2", "b/1"));
  EXPECT_THAT(Keys(ScanAll(*store_, f_, "b/", "b/25", true)),
              ElementsAre("b/2", "b/1"));
  EXPECT_THAT(Keys(ScanAll(*store_, f_, "b/", "zzz", true)),
              ElementsAre("b/3", "b/2", "b/1"));
  EXPECT_THAT(ScanAll(*store_, f_, "b/", "a", true), IsEmpty());
}

TEST_F(ScanTest, StopsWhenCallbackReturnsFalse) {
  EXPECT_THAT(Keys(ScanAll(*store_, f_, "b/", "", false, /*limit=*/2)),
              ElementsAre("b/1", "b/2"));
  EXPECT_THAT(Keys(ScanAll(*store_, f_, "b/", "", true, /*limit=*/1)),
              ElementsAre("b/3"));
}

TEST_F(ScanTest, EmptyPrefixAndAllFfPrefixCoverTheEdges) {
  EXPECT_THAT(Keys(ScanAll(*store_, f_, "", "", false)),
              ElementsAre("a", "b/1", "b/2", "b/3", "b0", "c", "\xff\xff"));
  EXPECT_THAT(Keys(ScanAll(*store_, f_, "", "", true, /*limit=*/2)),
              ElementsAre("\xff\xff", "c"));
  EXPECT_THAT(Keys(ScanAll(*store_, f_, "\xff", "", true)),
              ElementsAre("\xff\xff"));
  EXPECT_THAT(Keys(ScanAll(*store_, f_, "b", "", false)),
              ElementsAre("b/1", "b/2", "b/3", "b0"));
}

TEST_F(ScanTest, DeletedKeysAreSkipped) {
  WriteBatch batch;
  batch.Delete(f_, "b/2");
  ASSERT_TRUE(store_->Write(batch, false).ok());
  EXPECT_THAT(Keys(ScanAll(*store_, f_, "b/", "", false)),
              ElementsAre("b/1", "b/3"));
  EXPECT_THAT(Keys(ScanAll(*store_, f_, "b/", "b/2", true)),
              ElementsAre("b/1"));
}

TEST_F(StoreTest, ConcurrentSyncedBatchesAreAtomic) {
  auto store = OpenOrDie({"f"});
  ASSERT_NE(store, nullptr);
  FamilyId f = *store->Family("f");
  constexpr int kThreads = 4;
  constexpr int kBatches = 25;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kBatches; ++i) {
        // Each batch writes a pair of keys; a reader must see both or none.
        std::string key;
        AppendUint32(&key, t);
        AppendUint32(&key, i);
        WriteBatch batch;
        batch.Put(f, "left/" + key, "x");
        batch.Put(f, "right/" + key, "x");
        EXPECT_TRUE(store->Write(batch, /*sync=*/true).ok());
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(ScanAll(*store, f, "left/", "", false).size(),
            size_t{kThreads * kBatches});
  EXPECT_EQ(ScanAll(*store, f, "right/", "", false).size(),
            size_t{kThreads * kBatches});
}

TEST(KeyEncodingTest, RoundTripsAndSortsNumerically) {
  std::vector<uint64_t> values = {
      0, 1, 255, 256, 65535, 1ull << 32, 0x0102030405060708ull, ~0ull};
  std::vector<std::string> encoded;
  for (uint64_t v : values) {
    std::string key = "p";
    AppendUint64(&key, v);
    ASSERT_EQ(key.size(), 9u);
    EXPECT_EQ(DecodeUint64(std::string_view(key).substr(1)), v);
    encoded.push_back(key);
  }
  // Byte order equals numeric order.
  for (size_t i = 1; i < encoded.size(); ++i) {
    EXPECT_LT(encoded[i - 1], encoded[i]) << values[i];
  }

  std::string key;
  AppendUint64(&key, 0x0102030405060708ull);
  EXPECT_EQ(key, std::string("\x01\x02\x03\x04\x05\x06\x07\x08", 8));

  std::string a, b, c;
  AppendUint32(&a, 9);
  AppendUint32(&b, 256);
  AppendUint32(&c, 0xfffffffe);
  EXPECT_LT(a, b);
  EXPECT_LT(b, c);
  EXPECT_EQ(DecodeUint32(a), 9u);
  EXPECT_EQ(DecodeUint32(c), 0xfffffffeu);
  EXPECT_EQ(b, std::string("\x00\x00\x01\x00", 4));
}

TEST(KeyEncodingDeathTest, ShortInputCrashesWithMessage) {
  EXPECT_DEATH(DecodeUint64("abc"), "need 8 bytes, got 3");
}

TEST(StatusTest, ConvertsRocksStatuses) {
  EXPECT_TRUE(FromRocksStatus(rocksdb::Status::OK()).ok());
  EXPECT_EQ(FromRocksStatus(rocksdb::Status::NotFound("x")).code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(FromRocksStatus(rocksdb::Status::Corruption("x")).code(),
            absl::StatusCode::kDataLoss);
  EXPECT_EQ(FromRocksStatus(rocksdb::Status::IOError("disk")).code(),
            absl::StatusCode::kUnavailable);
  EXPECT_EQ(FromRocksStatus(rocksdb::Status::NoSpace("full")).code(),
            absl::StatusCode::kResourceExhausted);
  absl::Status s = FromRocksStatus(rocksdb::Status::InvalidArgument("bad"));
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("bad"), absl::string_view::npos);
}

}  // namespace
}  // namespace stepflow::storage
