// Process-wide settings every long-running Stepflow server applies first
// thing in main, before any thread starts.
//
//   int main(int argc, char** argv) {
//     config::PrepareServerProcess();
//     ...
//   }
#ifndef STEPFLOW_COMMON_CONFIG_PROCESS_H_
#define STEPFLOW_COMMON_CONFIG_PROCESS_H_

#include <cstddef>
#include <optional>

namespace stepflow::config {

// Blocks SIGINT and SIGTERM for WaitForTerminationSignal (see signals.h),
// turns off Abseil's mutex deadlock-cycle detection (a debugging aid that
// the distribution's Abseil leaves on, whose lock-graph bookkeeping costs a
// busy shard server about 5% of its CPU), and caps glibc's malloc arenas
// so that resident memory levels off under steady load (TCMalloc's thread
// caches too: see BoundAllocatorThreadCaches).
void PrepareServerProcess();

// TCMalloc lets its per-thread caches grow to 32 MiB in all by default. A
// server has a hundred threads or so, and under steady load its resident
// memory climbed by that much over minutes (express-sync at 6,000/s: +16
// MiB in 190 s, still rising); bounded to kAllocatorThreadCacheBytes, it
// stays flat after the first seconds, at the same throughput. Leaves an
// operator's TCMALLOC_MAX_TOTAL_THREAD_CACHE_BYTES alone, and does nothing
// in a process without TCMalloc.
inline constexpr size_t kAllocatorThreadCacheBytes = size_t{8} << 20;
void BoundAllocatorThreadCaches();

// TCMalloc's current bound on its thread caches; nullopt without TCMalloc.
std::optional<size_t> AllocatorThreadCacheBytes();

}  // namespace stepflow::config

#endif  // STEPFLOW_COMMON_CONFIG_PROCESS_H_
