#include "common/storage/group_committer.h"

#include <utility>
#include <vector>

namespace stepflow::storage {

GroupCommitter::GroupCommitter(Store* store, size_t max_group_bytes)
    : store_(store), max_group_bytes_(max_group_bytes) {
  absl::MutexLock lock(&stop_mu_);
  thread_ = std::thread([this] { Loop(); });
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
  std::deque<Entry> group;
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](GroupCommitter* c) ABSL_EXCLUSIVE_LOCKS_REQUIRED(c->mu_) {
            return !c->queue_.empty() || c->stopping_;
          },
          this));
      if (queue_.empty()) return;  // stopping, and everything written
      size_t bytes = 0;
      while (!queue_.empty() &&
             (group.empty() || bytes + queue_.front().batch.ByteSize() <= max_group_bytes_)) {
        bytes += queue_.front().batch.ByteSize();
        group.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
    }
    WriteGroup(group);
    group.clear();
  }
}

void GroupCommitter::CountWrite(size_t batches) {
  absl::MutexLock lock(&mu_);
  ++groups_;
  batches_ += batches;
}

void GroupCommitter::WriteGroup(std::deque<Entry>& group) {
  if (group.size() == 1) {
    Entry& entry = group.front();
    if (!entry.batch.empty() && entry.sync) CountWrite(1);
    absl::Status written = store_->Write(entry.batch, entry.sync);
    std::move(entry.done)(std::move(written));
    return;
  }
  // A batch the store would refuse fails alone, not the group it came with.
  std::vector<Entry*> members;
  std::vector<const WriteBatch*> batches;
  size_t synced = 0;
  for (Entry& entry : group) {
    if (absl::Status known = store_->CheckFamilies(entry.batch); !known.ok()) {
      std::move(entry.done)(std::move(known));
      continue;
    }
    batches.push_back(&entry.batch);
    members.push_back(&entry);
    if (entry.sync) ++synced;
  }
  WriteBatch merged = WriteBatch::Concat(batches);
  if (!merged.empty() && synced > 0) CountWrite(synced);
  const absl::Status written = store_->Write(merged, /*sync=*/synced > 0);
  for (Entry* entry : members) std::move(entry->done)(written);
}

}  // namespace stepflow::storage
