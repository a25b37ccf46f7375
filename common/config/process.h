// Process-wide settings every long-running Stepflow server applies first
// thing in main, before any thread starts.
//
//   int main(int argc, char** argv) {
//     config::PrepareServerProcess();
//     ...
//   }
#ifndef STEPFLOW_COMMON_CONFIG_PROCESS_H_
#define STEPFLOW_COMMON_CONFIG_PROCESS_H_

namespace stepflow::config {

// Blocks SIGINT and SIGTERM for WaitForTerminationSignal (see signals.h),
// turns off Abseil's mutex deadlock-cycle detection (a debugging aid that
// the distribution's Abseil leaves on, whose lock-graph bookkeeping costs a
// busy shard server about 5% of its CPU), and caps glibc's malloc arenas
// so that resident memory levels off under steady load.
void PrepareServerProcess();

}  // namespace stepflow::config

#endif  // STEPFLOW_COMMON_CONFIG_PROCESS_H_
