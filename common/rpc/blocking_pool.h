// BlockingPool: threads for work that may block (a WAL fsync, the wait for
// a synchronous execution's end) on behalf of gRPC callback handlers, whose
// threads must never block. A thread is started whenever no idle one can
// take a call, so no call waits behind blocked ones (as with gRPC's
// synchronous server) — unless the system refuses a thread, in which case
// the call waits for a running one, or, with none running, runs on the
// caller's thread (logged either way). Threads idle for longer than
// `idle_timeout` exit while more than `keep_idle` are idle.
//
//   rpc::BlockingPool pool;
//   pool.Run([reactor, ...] { ...blocking call...; reactor->Finish(status); });
//
// Thread-safe. The destructor runs every queued call and joins the threads.
#ifndef STEPFLOW_COMMON_RPC_BLOCKING_POOL_H_
#define STEPFLOW_COMMON_RPC_BLOCKING_POOL_H_

#include <deque>
#include <functional>
#include <map>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace stepflow::rpc {

class BlockingPool {
 public:
  explicit BlockingPool(int keep_idle = 16, absl::Duration idle_timeout = absl::Seconds(30));
  ~BlockingPool();

  BlockingPool(const BlockingPool&) = delete;
  BlockingPool& operator=(const BlockingPool&) = delete;

  void Run(std::function<void()> call);

  // Threads alive now (for tests and metrics).
  int threads() const;

 private:
  void Loop();
  // Threads that have left Loop, to be joined without the lock.
  std::vector<std::thread> TakeExited() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const int keep_idle_;
  const absl::Duration idle_timeout_;
  mutable absl::Mutex mu_;
  std::deque<std::function<void()>> queue_ ABSL_GUARDED_BY(mu_);
  int idle_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::map<std::thread::id, std::thread> threads_ ABSL_GUARDED_BY(mu_);
  std::vector<std::thread::id> exited_ ABSL_GUARDED_BY(mu_);
};

}  // namespace stepflow::rpc

#endif  // STEPFLOW_COMMON_RPC_BLOCKING_POOL_H_
