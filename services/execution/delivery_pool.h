// DeliveryPool: a fixed set of threads that runs the deliveries of one
// outbox batch at once, so that deliveries waiting on other servers or on
// their own fsync overlap (and share WAL fsyncs through group commit)
// instead of queueing behind one another.
//
//   DeliveryPool pool(16);
//   pool.RunAll(items.size(), [&](size_t i) { statuses[i] = Deliver(items[i]); });
//
// RunAll may be called from one thread at a time. The destructor joins the
// threads.
#ifndef STEPFLOW_SERVICES_EXECUTION_DELIVERY_POOL_H_
#define STEPFLOW_SERVICES_EXECUTION_DELIVERY_POOL_H_

#include <cstddef>
#include <functional>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace stepflow::execution {

class DeliveryPool {
 public:
  explicit DeliveryPool(int threads) {
    for (int i = 0; i < threads; ++i) threads_.emplace_back([this] { Work(); });
  }
  ~DeliveryPool() {
    {
      absl::MutexLock lock(&mu_);
      stop_ = true;
    }
    for (std::thread& thread : threads_) thread.join();
  }
  DeliveryPool(const DeliveryPool&) = delete;
  DeliveryPool& operator=(const DeliveryPool&) = delete;

  // Runs task(0..count-1) on the pool (and on the calling thread) and
  // returns when all have returned.
  void RunAll(size_t count, const std::function<void(size_t)>& task) {
    if (count == 0) return;
    {
      absl::MutexLock lock(&mu_);
      task_ = &task;
      count_ = count;
      next_ = 0;
      running_ = 0;
    }
    // The caller works too, so a pool of N runs N + 1 at once.
    RunSome();
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(this, &DeliveryPool::AllDone));
    task_ = nullptr;
  }

 private:
  bool HasWork() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return stop_ || (task_ != nullptr && next_ < count_);
  }
  bool AllDone() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return next_ >= count_ && running_ == 0;
  }

  // Takes and runs indices until none is left.
  void RunSome() {
    while (true) {
      size_t index;
      const std::function<void(size_t)>* task;
      {
        absl::MutexLock lock(&mu_);
        if (task_ == nullptr || next_ >= count_) return;
        index = next_++;
        task = task_;
        ++running_;
      }
      (*task)(index);
      absl::MutexLock lock(&mu_);
      --running_;
    }
  }

  void Work() {
    while (true) {
      {
        absl::MutexLock lock(&mu_);
        mu_.Await(absl::Condition(this, &DeliveryPool::HasWork));
        if (stop_) return;
      }
      RunSome();
    }
  }

  absl::Mutex mu_;
  const std::function<void(size_t)>* task_ ABSL_GUARDED_BY(mu_) = nullptr;
  size_t count_ ABSL_GUARDED_BY(mu_) = 0;
  size_t next_ ABSL_GUARDED_BY(mu_) = 0;
  size_t running_ ABSL_GUARDED_BY(mu_) = 0;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;
};

}  // namespace stepflow::execution

#endif  // STEPFLOW_SERVICES_EXECUTION_DELIVERY_POOL_H_
