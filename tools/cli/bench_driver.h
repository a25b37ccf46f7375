// The closed-loop load engine of `stepflow bench`.
//
// RunLoad keeps `concurrency` operations in flight: each slot starts an
// operation, and when it has finished, the next one, until `total`
// operations were started or `duration` has passed. Operations are
// asynchronous (gRPC's callback API), so a handful of gRPC threads drive any
// concurrency; waits (rate cap, backoff, poll pacing) are timers on one
// Scheduler thread, never sleeping threads.
//
//   Scheduler scheduler;
//   LoadOptions load{.concurrency = 64, .duration = absl::Seconds(10)};
//   PhaseResult result = RunLoad(load, &scheduler, [&](int slot) {
//     return std::make_unique<MyOperation>(channels[slot % channels.size()]);
//   });
#ifndef STEPFLOW_TOOLS_CLI_BENCH_DRIVER_H_
#define STEPFLOW_TOOLS_CLI_BENCH_DRIVER_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <queue>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "tools/cli/bench_report.h"

namespace grpc {
class Status;
}  // namespace grpc

namespace stepflow::cli::bench {

// Runs callbacks at given times on its own thread. Thread-safe. The
// destructor drops callbacks not yet due and joins the thread; it must not
// be called from a callback.
class Scheduler {
 public:
  Scheduler();
  ~Scheduler();
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  void At(absl::Time when, std::function<void()> callback);
  void After(absl::Duration delay, std::function<void()> callback) {
    At(absl::Now() + delay, std::move(callback));
  }

 private:
  struct Entry {
    absl::Time when;
    uint64_t sequence;  // FIFO among equal times
    std::function<void()> callback;
    bool operator>(const Entry& other) const {
      return when != other.when ? when > other.when : sequence > other.sequence;
    }
  };
  void Loop();

  absl::Mutex mu_;
  std::priority_queue<Entry, std::vector<Entry>, std::greater<Entry>> queue_
      ABSL_GUARDED_BY(mu_);
  uint64_t next_sequence_ ABSL_GUARDED_BY(mu_) = 0;
  // When the loop, waiting, wakes by itself (InfiniteFuture: only for a new
  // entry; InfinitePast: it is not waiting). Only an entry due before that
  // wakes it: most entries are timeouts far behind the first.
  absl::Time waiting_until_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  bool woken_ ABSL_GUARDED_BY(mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

// How one operation ended.
struct OpOutcome {
  bool ok = true;
  // gRPC code name ("UNAVAILABLE") or execution status ("FAILED").
  std::string error_code;
  std::string message;

  static OpOutcome Ok() { return {}; }
  static OpOutcome Error(std::string code, std::string message) {
    return {false, std::move(code), std::move(message)};
  }
  static OpOutcome FromStatus(const grpc::Status& status);
};

// One unit of load (an execution started and seen to its end, a health
// check). A slot owns one Operation and runs it again and again, never
// twice at once, so an Operation may keep its request/response buffers.
class Operation {
 public:
  virtual ~Operation() = default;
  // Starts one operation; `done` is called exactly once, on any thread
  // (possibly inside Start), when it has ended.
  virtual void Start(std::function<void(OpOutcome)> done) = 0;
};

struct LoadOptions {
  int concurrency = 1;
  // Operations to run; 0: no limit.
  int64_t total = 0;
  // Time limit; zero: none. Operations in flight at the limit are finished.
  absl::Duration duration = absl::ZeroDuration();
  // Operation starts per second over all slots; 0: no cap.
  double rate = 0;
  // When set (e.g. by Ctrl-C), slots start no more operations; those in
  // flight are finished. Null: never. Must outlive RunLoad.
  const std::atomic<bool>* stop = nullptr;
  // Retries of an operation refused with RESOURCE_EXHAUSTED (each counted in
  // the errors) before it counts as failed.
  int max_retries = 20;
};

// The CPU time and context switches of process `pid` so far: this
// process (every thread) for 0, from getrusage; another from /proc (CPU
// in clock ticks). Zero for a process that cannot be read.
struct CpuReading {
  absl::Duration cpu;
  int64_t context_switches = 0;
};
CpuReading ProcessCpu(int pid);

// Runs the load and returns its figures: completed operations, their
// latencies (from the first start, retries included, to done) and errors.
// `make_operation(slot)` is called once per slot before the load starts.
PhaseResult RunLoad(
    const LoadOptions& options, Scheduler* scheduler,
    const std::function<std::unique_ptr<Operation>(int slot)>& make_operation);

}  // namespace stepflow::cli::bench

#endif  // STEPFLOW_TOOLS_CLI_BENCH_DRIVER_H_
