// Store: the one RocksDB database of a Stepflow service, with named column
// families, atomic batched writes, point reads and ordered prefix scans.
//
// Keys are raw bytes compared bytewise; the Append/Decode helpers at the end
// encode integers big-endian so that byte order equals numeric order, which
// makes "events of execution X in order" a prefix scan:
//
//   StoreOptions options;
//   options.path = "/var/lib/stepflow/execution";
//   options.column_families = {"executions", "history"};
//   ASSIGN_OR_RETURN(std::unique_ptr<Store> store, Store::Open(options));
//   ASSIGN_OR_RETURN(FamilyId history, store->Family("history"));
//
//   std::string key = execution_id;
//   AppendUint64(&key, event_id);
//   WriteBatch batch;
//   batch.Put(history, key, event_bytes);
//   RETURN_IF_ERROR(store->Write(batch, /*sync=*/true));
//
//   RETURN_IF_ERROR(store->Scan(history, execution_id, /*start=*/"",
//                               /*reverse=*/false,
//                               [&](std::string_view k, std::string_view v) {
//                                 events.emplace_back(v);
//                                 return true;  // keep going
//                               }));
//
// Thread-safety: a Store may be used from any number of threads at once
// (RocksDB is thread-safe). A WriteBatch is a plain value: it needs external
// synchronisation if shared.
#ifndef STEPFLOW_COMMON_STORAGE_STORE_H_
#define STEPFLOW_COMMON_STORAGE_STORE_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace rocksdb {
class Env;
class Status;
class WriteBatch;
}  // namespace rocksdb

namespace stepflow::storage {

// Converts a RocksDB status; NotFound, InvalidArgument, Busy/TimedOut/TryAgain,
// NotSupported, Aborted and Corruption map to their nearest absl codes, I/O
// errors to UNAVAILABLE and the rest to INTERNAL.
absl::Status FromRocksStatus(const rocksdb::Status& s);

// Identifies a column family of one open Store (see Store::Family). Ids are
// stable across reopening the same database.
using FamilyId = int;

// A set of puts and deletes applied atomically by Store::Write. Operations
// apply in the order they were added. Not thread-safe.
class WriteBatch {
 public:
  WriteBatch();
  ~WriteBatch();
  WriteBatch(WriteBatch&& other) noexcept;
  WriteBatch& operator=(WriteBatch&& other) noexcept;
  WriteBatch(const WriteBatch&) = delete;
  WriteBatch& operator=(const WriteBatch&) = delete;

  void Put(FamilyId family, std::string_view key, std::string_view value);
  void Delete(FamilyId family, std::string_view key);
  // Deletes the keys in [begin, end) of `family`: one range tombstone,
  // for dropping a whole key range at once (seldom: many tombstones slow
  // reads down until compaction removes them).
  void DeleteRange(FamilyId family, std::string_view begin, std::string_view end);
  // Removes every operation.
  void Clear();
  // One batch with the operations of `batches`, in their order, so that
  // one Store::Write applies them all (a group of transitions sharing one
  // write and one fsync). Their encodings are put end to end: a copy of
  // the bytes, no re-encoding of each operation.
  static WriteBatch Concat(const std::vector<const WriteBatch*>& batches);

  // Number of operations.
  size_t Count() const;
  bool empty() const { return Count() == 0; }
  // Bytes of the encoded batch (roughly keys + values + a few per op).
  size_t ByteSize() const;

 private:
  friend class Store;

  // Records that the batch touches `family`.
  void NoteFamily(FamilyId family);

  std::unique_ptr<rocksdb::WriteBatch> rep_;
  // Families the batch touches, checked by Store::Write before anything is
  // written so that a bad id cannot leave a batch half applied.
  std::vector<FamilyId> families_;
};

struct StoreOptions {
  // Directory of the database.
  std::string path;
  // Families to open, besides "default" which always exists. Families
  // already in the database but missing here are opened too.
  std::vector<std::string> column_families;
  bool create_if_missing = true;
  // Shared LRU block cache for all families.
  size_t block_cache_bytes = 64 << 20;
  // Per-family memtable size.
  size_t write_buffer_bytes = 32 << 20;
  // Families read mostly by point lookups of keys that are often absent
  // (an existence check): their memtables keep a bloom filter of whole
  // keys, so such a lookup skips the memtables' skip lists.
  std::vector<std::string> point_lookup_families;
  // Families whose keys end in an 8-byte big-endian sequence, written in
  // order under the rest of the key (a history): the memtable starts each
  // insert from where the last one under the same rest went, rather than
  // searching its skip list from the top.
  std::vector<std::string> sequenced_families;
  // Families whose keys are mostly rewritten (a record per entity): the
  // memtable starts each insert from where the key last went.
  // Either list, when not empty, turns concurrent memtable writes off for
  // the whole store (RocksDB ignores the hints with them): each write
  // group's leader inserts the group's batches one after the other.
  std::vector<std::string> rewritten_families;
  // What RocksDB's files and threads go through; RocksDB's default when
  // null. Must outlive the store. Tests pass one whose writes fail on
  // demand (storage::testing::FailingWalEnv).
  rocksdb::Env* env = nullptr;
  // Called once, on the writing thread, when a write first fails for the
  // disk (an I/O error, a full disk, corruption). RocksDB then refuses
  // every later write, since what its log holds is in doubt, until the
  // store is opened again, which recovers what was written: a server
  // cannot go on without a restart.
  std::function<void(const absl::Status&)> on_write_failure;
};

// An open database. Closed by the destructor. See the file comment for
// thread-safety.
class Store {
 public:
  // Opens (or creates, with `create_if_missing`) the database at
  // `options.path` and creates missing column families.
  static absl::StatusOr<std::unique_ptr<Store>> Open(
      const StoreOptions& options);

  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;
  ~Store();

  // The id of family `name` ("default" always exists); NOT_FOUND if unknown.
  absl::StatusOr<FamilyId> Family(std::string_view name) const;

  // The value of `key`, or nullopt if absent.
  absl::StatusOr<std::optional<std::string>> Get(FamilyId family,
                                                 std::string_view key) const;

  // Applies `batch` atomically; it is left unchanged (Clear it to reuse it).
  // With `sync` the call returns after the write-ahead log is fsynced;
  // RocksDB groups concurrent synced writers into one fsync, so durable
  // throughput comes from writing from several threads. INVALID_ARGUMENT,
  // with nothing written, if the batch names an unknown family.
  absl::Status Write(WriteBatch& batch, bool sync);
  // INVALID_ARGUMENT if `batch` names a family this store does not have
  // (what Write refuses a batch for before writing anything).
  absl::Status CheckFamilies(const WriteBatch& batch) const;

  // Calls `fn` for each key that starts with `prefix`, in key order (or
  // reverse key order), until `fn` returns false. Forward scans begin at the
  // first key >= `start`, reverse scans at the last key <= `start`; an empty
  // `start` begins at the edge of the prefix range. The views passed to `fn`
  // are valid only during the call. Sees a consistent snapshot.
  absl::Status Scan(
      FamilyId family, std::string_view prefix, std::string_view start,
      bool reverse,
      absl::FunctionRef<bool(std::string_view key, std::string_view value)> fn)
      const;

  // Writes every family's memtable to SST files and waits for it.
  absl::Status Flush();

  // The names of all open families, "default" first.
  std::vector<std::string> FamilyNames() const;

  // Write-ahead-log fsyncs since Open. Concurrent synced writers share one
  // (RocksDB's group commit), so this grows slower than SyncedWrites().
  uint64_t WalSyncs() const;
  // Calls of Write with `sync` since Open.
  uint64_t SyncedWrites() const;
  // The first write failure for the disk (see StoreOptions::
  // on_write_failure); OK while there has been none.
  absl::Status WriteFailure() const;

 private:
  struct Impl;
  explicit Store(std::unique_ptr<Impl> impl);

  std::unique_ptr<Impl> impl_;
};

// Big-endian integer encoding for keys, so byte order == numeric order.
void AppendUint64(std::string* key, uint64_t v);
void AppendUint32(std::string* key, uint32_t v);
// Decode the first 8 (4) bytes of `bytes`; crashes if there are fewer.
uint64_t DecodeUint64(std::string_view bytes);
uint32_t DecodeUint32(std::string_view bytes);

}  // namespace stepflow::storage

#endif  // STEPFLOW_COMMON_STORAGE_STORE_H_
