// GroupCommitter: durable writes for callers that must not wait for them.
//
// A caller hands over a batch with the work that must follow its fsync and
// returns at once; one thread writes every batch queued meanwhile as a
// single WriteBatch (one WAL append, and one fsync unless no batch of the
// group needs it), then each batch's continuation runs, in submission
// order. RocksDB inserts a batch into the memtable only after its WAL
// record is synced, so nothing of a batch is visible to readers before it
// is durable.
//
// This is what lets a gRPC callback thread run a transition without a
// thread of its own blocked on the fsync: no hand-off to a blocking pool,
// no write-group follower to wake.
//
//   storage::GroupCommitter committer(store);
//   committer.Submit(std::move(batch), [reactor](absl::Status written) {
//     reactor->Finish(rpc::ToGrpcStatus(written));
//   });
//
// Continuations run on a second thread, the continuation thread, in
// submission order, while the first writes the next group: answering a
// group's callers (a third of the committer's work under load) does not
// hold up the next write and its fsync. At most one written group waits
// for that thread; the writer waits behind it.
//
// Thread-safe. Continuations must not block; one that submits again is
// fine (its batch joins a later group).
#ifndef STEPFLOW_COMMON_STORAGE_GROUP_COMMITTER_H_
#define STEPFLOW_COMMON_STORAGE_GROUP_COMMITTER_H_

#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "common/storage/store.h"

namespace stepflow::storage {

class GroupCommitter {
 public:
  // `store` must outlive the committer. A group holds at most
  // `max_group_bytes` of batches (and always at least one batch).
  explicit GroupCommitter(Store* store, size_t max_group_bytes = 4 << 20);
  // Stop().
  ~GroupCommitter();

  GroupCommitter(const GroupCommitter&) = delete;
  GroupCommitter& operator=(const GroupCommitter&) = delete;

  using Continuation = absl::AnyInvocable<void(absl::Status) &&>;

  // Queues `batch`; `done` runs on the continuation thread with the write's
  // status once the batch is durable (or its write failed: then nothing of
  // it was applied). After Stop(), `done` runs at once on the caller's
  // thread with UNAVAILABLE. A batch queued without `sync` is written in
  // order with the others but needs no fsync: a group of such batches only
  // is written unsynced.
  void Submit(WriteBatch batch, Continuation done, bool sync = true);

  // Writes what is queued, runs those continuations and joins the threads;
  // later calls return at once.
  void Stop();

  // Synced writes made (one per group with a batch to sync, see
  // Store::SyncedWrites) and the batches queued with `sync` they held,
  // since start.
  uint64_t groups() const;
  uint64_t batches() const;

 private:
  struct Entry {
    WriteBatch batch;
    Continuation done;
    bool sync = true;
    // Why the store refused the batch, which was then left out of its
    // group's write.
    std::optional<absl::Status> refused;
  };

  // A written group's continuations and the status they get.
  struct Written {
    std::deque<Entry> group;
    absl::Status status;
  };

  void Loop();
  void RunContinuations();
  // Writes `group` and hands it to the continuation thread.
  void WriteGroup(std::deque<Entry> group);
  void CountWrite(size_t batches);

  Store* const store_;
  const size_t max_group_bytes_;
  mutable absl::Mutex mu_;
  std::deque<Entry> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t groups_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t batches_ ABSL_GUARDED_BY(mu_) = 0;
  // Written groups whose continuations have not run yet, oldest first;
  // `writer_done_` once the writing thread has ended.
  absl::Mutex written_mu_;
  std::deque<Written> written_ ABSL_GUARDED_BY(written_mu_);
  bool writer_done_ ABSL_GUARDED_BY(written_mu_) = false;
  // Joined by Stop(); serialises Stop() callers.
  absl::Mutex stop_mu_;
  std::thread thread_ ABSL_GUARDED_BY(stop_mu_);
  std::thread continuation_thread_ ABSL_GUARDED_BY(stop_mu_);
};

}  // namespace stepflow::storage

#endif  // STEPFLOW_COMMON_STORAGE_GROUP_COMMITTER_H_
