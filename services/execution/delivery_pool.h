// DeliveryPool: a fixed set of threads that runs independent pieces of
// work at once, so that calls waiting on other servers or on their own
// fsync overlap (and share WAL fsyncs through group commit) instead of
// queueing behind one another: the outbox's deliveries, or the writes of
// one activity task hand-over.
//
//   DeliveryPool pool(16);
//   pool.RunAll(items.size(), [&](size_t i) { statuses[i] = Deliver(items[i]); });
//
// RunAll may be called from several threads at once; their jobs share the
// pool's threads in arrival order, and each caller also works on its own
// job, so a job finishes even while the pool is busy with others. Submit
// runs one piece of work later, without waiting for it; RunAll's jobs go
// first. The destructor joins the threads (no RunAll may be running then,
// and work submitted but not started is dropped).
#ifndef STEPFLOW_SERVICES_EXECUTION_DELIVERY_POOL_H_
#define STEPFLOW_SERVICES_EXECUTION_DELIVERY_POOL_H_

#include <algorithm>
#include <cstddef>
#include <deque>
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

  // Runs `work` on a thread of the pool once one is free of RunAll's jobs.
  void Submit(std::function<void()> work) {
    absl::MutexLock lock(&mu_);
    submitted_.push_back(std::move(work));
  }

  // Runs task(0..count-1) on the pool (and on the calling thread) and
  // returns when all have returned.
  void RunAll(size_t count, const std::function<void(size_t)>& task) {
    if (count == 0) return;
    if (count == 1) {
      task(0);  // nothing to overlap: no thread hand-off
      return;
    }
    Job job;
    job.task = &task;
    job.count = count;
    {
      absl::MutexLock lock(&mu_);
      open_.push_back(&job);
    }
    // The caller works too, so a pool of N runs N + 1 at once.
    while (true) {
      size_t index;
      {
        absl::MutexLock lock(&mu_);
        if (job.next >= job.count) break;
        index = TakeIndex(&job);
      }
      task(index);
      absl::MutexLock lock(&mu_);
      --job.running;
    }
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(&job, &Job::Done));
  }

 private:
  struct Job {
    const std::function<void(size_t)>* task = nullptr;
    size_t count = 0;
    size_t next = 0;     // guarded by mu_
    size_t running = 0;  // guarded by mu_
    bool Done() const { return next >= count && running == 0; }
  };

  bool HasWork() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return stop_ || !open_.empty() || !submitted_.empty();
  }

  // Claims the next index of `job`, which has one left; a job with none
  // left leaves the open list.
  size_t TakeIndex(Job* job) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    const size_t index = job->next++;
    ++job->running;
    if (job->next >= job->count) open_.erase(std::find(open_.begin(), open_.end(), job));
    return index;
  }

  void Work() {
    while (true) {
      Job* job = nullptr;
      size_t index = 0;
      std::function<void()> work;
      {
        absl::MutexLock lock(&mu_);
        mu_.Await(absl::Condition(this, &DeliveryPool::HasWork));
        if (stop_) return;
        if (!open_.empty()) {
          job = open_.front();
          index = TakeIndex(job);
        } else {
          work = std::move(submitted_.front());
          submitted_.pop_front();
        }
      }
      if (job == nullptr) {
        work();
        continue;
      }
      (*job->task)(index);
      absl::MutexLock lock(&mu_);
      --job->running;
    }
  }

  absl::Mutex mu_;
  // Jobs with indices nobody has claimed yet, oldest first.
  std::vector<Job*> open_ ABSL_GUARDED_BY(mu_);
  std::deque<std::function<void()>> submitted_ ABSL_GUARDED_BY(mu_);
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;
};

}  // namespace stepflow::execution

#endif  // STEPFLOW_SERVICES_EXECUTION_DELIVERY_POOL_H_
