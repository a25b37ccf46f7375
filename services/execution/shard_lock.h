// ShardLock: the lock of one stripe of a logical shard (see
// ShardCore::LockOf), held by a transition from the read of its records to
// the end of its durable write. A transition handed
// to the group committer (see ShardCore::StartExecution) keeps it until the
// committer has written it, so the lock is released on another thread than
// the one that took it — which absl::Mutex does not allow.
//
//   ShardLockGuard guard(&lock);   // or lock.TryLock() / lock.Unlock()
#ifndef STEPFLOW_SERVICES_EXECUTION_SHARD_LOCK_H_
#define STEPFLOW_SERVICES_EXECUTION_SHARD_LOCK_H_

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace stepflow::execution {

class ShardLock {
 public:
  ShardLock() = default;
  ShardLock(const ShardLock&) = delete;
  ShardLock& operator=(const ShardLock&) = delete;

  void Lock() {
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(&free_));
    free_ = false;
  }
  bool TryLock() {
    absl::MutexLock lock(&mu_);
    if (!free_) return false;
    free_ = false;
    return true;
  }
  // By any thread, once per Lock() or successful TryLock().
  void Unlock() {
    absl::MutexLock lock(&mu_);
    free_ = true;
  }

 private:
  absl::Mutex mu_;
  bool free_ ABSL_GUARDED_BY(mu_) = true;
};

// Holds a ShardLock for a scope.
class ShardLockGuard {
 public:
  explicit ShardLockGuard(ShardLock* lock) : lock_(lock) { lock_->Lock(); }
  ~ShardLockGuard() { lock_->Unlock(); }
  ShardLockGuard(const ShardLockGuard&) = delete;
  ShardLockGuard& operator=(const ShardLockGuard&) = delete;

 private:
  ShardLock* const lock_;
};

}  // namespace stepflow::execution

#endif  // STEPFLOW_SERVICES_EXECUTION_SHARD_LOCK_H_
