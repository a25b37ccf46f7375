// Clean shutdown on SIGINT / SIGTERM for the long-running binaries.
//
//   int main(...) {
//     config::BlockTerminationSignals();   // first, before any thread starts
//     ... start servers ...
//     config::WaitForTerminationSignal();
//     ... shut down ...
//   }
#ifndef STEPFLOW_COMMON_CONFIG_SIGNALS_H_
#define STEPFLOW_COMMON_CONFIG_SIGNALS_H_

namespace stepflow::config {

// Blocks SIGINT and SIGTERM in this thread and every thread it starts later,
// so that only WaitForTerminationSignal receives them.
void BlockTerminationSignals();

// Returns the signal that arrived (SIGINT or SIGTERM).
int WaitForTerminationSignal();

// Sends this process SIGTERM, from any thread: how a server that cannot go
// on makes WaitForTerminationSignal return and shuts down as if stopped.
void RequestTermination();

}  // namespace stepflow::config

#endif  // STEPFLOW_COMMON_CONFIG_SIGNALS_H_
