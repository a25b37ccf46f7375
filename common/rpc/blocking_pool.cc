#include "common/rpc/blocking_pool.h"

#include <system_error>
#include <utility>

#include "common/log/log.h"

namespace stepflow::rpc {

BlockingPool::BlockingPool(int keep_idle, absl::Duration idle_timeout)
    : keep_idle_(keep_idle), idle_timeout_(idle_timeout) {}

BlockingPool::~BlockingPool() {
  std::map<std::thread::id, std::thread> threads;
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  // Threads drain the queue before they leave; new ones may not start now.
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      threads.swap(threads_);
      exited_.clear();
    }
    if (threads.empty()) break;
    for (auto& [id, thread] : threads) thread.join();
    threads.clear();
  }
}

void BlockingPool::Run(std::function<void()> call) {
  std::vector<std::thread> exited;
  std::function<void()> here;
  {
    absl::MutexLock lock(&mu_);
    exited = TakeExited();
    queue_.push_back(std::move(call));
    // Each idle thread takes one queued call; start one for the rest.
    if (idle_ < static_cast<int>(queue_.size())) {
      try {
        std::thread thread([this] { Loop(); });
        const std::thread::id id = thread.get_id();
        threads_.emplace(id, std::move(thread));
      } catch (const std::system_error& error) {
        // Out of threads: the call waits for a running one to be free —
        // or, with none running to ever take it, runs on the caller's
        // thread rather than never.
        log::Error("rpc", "cannot start a thread for a blocking call",
                   {{"threads", static_cast<int64_t>(threads_.size())},
                    {"error", error.what()}});
        if (threads_.empty()) {
          here = std::move(queue_.back());
          queue_.pop_back();
        }
      }
    }
  }
  for (std::thread& thread : exited) thread.join();
  if (here) here();
}

int BlockingPool::threads() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int>(threads_.size() - exited_.size());
}

void BlockingPool::Loop() {
  absl::MutexLock lock(&mu_);
  while (true) {
    if (!queue_.empty()) {
      std::function<void()> call = std::move(queue_.front());
      queue_.pop_front();
      mu_.Unlock();
      call();
      call = nullptr;  // its captures go before the lock is taken again
      mu_.Lock();
      continue;
    }
    if (stopping_) break;
    ++idle_;
    const bool woken = mu_.AwaitWithTimeout(
        absl::Condition(
            +[](BlockingPool* pool) ABSL_EXCLUSIVE_LOCKS_REQUIRED(pool->mu_) {
              return !pool->queue_.empty() || pool->stopping_;
            },
            this),
        idle_timeout_);
    --idle_;
    if (!woken && idle_ >= keep_idle_) break;
  }
  exited_.push_back(std::this_thread::get_id());
}

std::vector<std::thread> BlockingPool::TakeExited() {
  std::vector<std::thread> exited;
  for (const std::thread::id& id : exited_) {
    auto it = threads_.find(id);
    exited.push_back(std::move(it->second));
    threads_.erase(it);
  }
  exited_.clear();
  return exited;
}

}  // namespace stepflow::rpc
