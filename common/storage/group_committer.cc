#include "common/storage/group_committer.h"

#include <utility>
#include <vector>

namespace stepflow::storage {

GroupCommitter::GroupCommitter(Store* store, size_t max_group_bytes)
    : store_(store), max_group_bytes_(max_group_bytes) {
  absl::MutexLock lock(&stop_mu_);
  thread_ = std::thread([this] { Loop(); });
  continuation_thread_ = std::thread([this] { RunContinuations(); });
}

GroupCommitter::~GroupCommitter() { Stop(); }

void GroupCommitter::Submit(WriteBatch batch, Continuation done, bool sync) {
  {
    absl::MutexLock lock(&mu_);
    if (!stopping_) {
      queue_.push_back(Entry{std::move(batch), std::move(done), sync});
      return;
    }
  }
  std::move(done)(absl::UnavailableError("the store is shutting down"));
}

void GroupCommitter::Stop() {
  absl::MutexLock stop_lock(&stop_mu_);
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (thread_.joinable()) thread_.join();
  if (continuation_thread_.joinable()) continuation_thread_.join();
}

uint64_t GroupCommitter::groups() const {
  absl::MutexLock lock(&mu_);
  return groups_;
}

uint64_t GroupCommitter::batches() const {
  absl::MutexLock lock(&mu_);
  return batches_;
}

void GroupCommitter::Loop() {
  while (true) {
    {
      // At most one written group waits for the continuation thread: when
      // continuations are what holds things up, what comes meanwhile joins
      // one later group rather than many small ones.
      absl::MutexLock lock(&written_mu_);
      written_mu_.Await(absl::Condition(
          +[](GroupCommitter* c) ABSL_EXCLUSIVE_LOCKS_REQUIRED(c->written_mu_) {
            return c->written_.empty();
          },
          this));
    }
    std::deque<Entry> group;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](GroupCommitter* c) ABSL_EXCLUSIVE_LOCKS_REQUIRED(c->mu_) {
            return !c->queue_.empty() || c->stopping_;
          },
          this));
      if (queue_.empty()) break;  // stopping, and everything written
      size_t bytes = 0;
      while (!queue_.empty() &&
             (group.empty() || bytes + queue_.front().batch.ByteSize() <= max_group_bytes_)) {
        bytes += queue_.front().batch.ByteSize();
        group.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
    }
    WriteGroup(std::move(group));
  }
  absl::MutexLock lock(&written_mu_);
  writer_done_ = true;
}

void GroupCommitter::RunContinuations() {
  while (true) {
    std::deque<Written> ready;
    {
      absl::MutexLock lock(&written_mu_);
      written_mu_.Await(absl::Condition(
          +[](GroupCommitter* c) ABSL_EXCLUSIVE_LOCKS_REQUIRED(c->written_mu_) {
            return !c->written_.empty() || c->writer_done_;
          },
          this));
      if (written_.empty()) return;  // the writer ended, and everything ran
      ready.swap(written_);
    }
    for (Written& written : ready) {
      for (Entry& entry : written.group) {
        std::move(entry.done)(entry.refused.has_value() ? *std::move(entry.refused)
                                                        : written.status);
      }
    }
  }
}

void GroupCommitter::CountWrite(size_t batches) {
  absl::MutexLock lock(&mu_);
  ++groups_;
  batches_ += batches;
}

void GroupCommitter::WriteGroup(std::deque<Entry> group) {
  Written written;
  if (group.size() == 1) {
    Entry& entry = group.front();
    if (!entry.batch.empty() && entry.sync) CountWrite(1);
    written.status = store_->Write(entry.batch, entry.sync);
    written.group = std::move(group);
  } else {
    // A batch the store would refuse fails alone, not the group it came
    // with; its continuation runs in its place in the order.
    std::vector<const WriteBatch*> batches;
    size_t synced = 0;
    for (Entry& entry : group) {
      if (absl::Status known = store_->CheckFamilies(entry.batch); !known.ok()) {
        entry.refused = std::move(known);
        continue;
      }
      batches.push_back(&entry.batch);
      if (entry.sync) ++synced;
    }
    WriteBatch merged = WriteBatch::Concat(batches);
    if (!merged.empty() && synced > 0) CountWrite(synced);
    written.status = store_->Write(merged, /*sync=*/synced > 0);
    written.group = std::move(group);
  }
  // The batches are not needed any more: freed here, not on the
  // continuation thread.
  for (Entry& entry : written.group) entry.batch = WriteBatch();
  absl::MutexLock lock(&written_mu_);
  written_.push_back(std::move(written));
}

}  // namespace stepflow::storage
