// The report of one `stepflow bench` run: the scenario's figures beside the
// ceiling's (a no-op unary RPC measured the same way), as text for people
// or as one JSON object for scripts.
#ifndef STEPFLOW_TOOLS_CLI_BENCH_REPORT_H_
#define STEPFLOW_TOOLS_CLI_BENCH_REPORT_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "tools/cli/bench_stats.h"

namespace stepflow::cli::bench {

// The outcome of one load phase (the scenario, or the ceiling).
struct PhaseResult {
  int64_t completed = 0;
  absl::Duration elapsed;
  // Summary of `samples`.
  LatencySummary latency;
  LatencySamples samples;
  ErrorCounts errors;
  // CPU time and context switches of the measured process over the phase
  // (see BenchReport::cpu_of); unset when no process was measured.
  std::optional<absl::Duration> cpu;
  int64_t context_switches = 0;

  // completed / elapsed; 0 for an empty phase.
  double PerSecond() const;
  // Adds a later slice of the same phase: counts and times add up, the
  // latencies are summarized over both.
  void Add(const PhaseResult& slice);
};

struct BenchReport {
  std::string scenario;
  int concurrency = 0;
  int connections = 0;
  // Where the load went ("in-process dev cluster at 127.0.0.1:41234").
  std::string target;
  double rate_cap = 0;
  // The ceiling's RPC, e.g. "grpc.health.v1.Health/Check".
  std::string ceiling_rpc;
  PhaseResult run;
  PhaseResult ceiling;
  // How many alternating slices the two were measured in (1: the scenario,
  // then the ceiling).
  int slices = 1;
  // Execution outcomes by status, where the scenario observes them.
  std::map<std::string, int64_t> statuses;
  // activities: from StartExecution to the worker's handler.
  std::optional<LatencySummary> schedule_to_start;
  // What `latency_ms` measures, when it is not start-to-completion.
  std::string latency_note;
  // More figures of the scenario, as extra top-level JSON keys and one
  // text line each (e.g. "describe_calls_per_execution").
  std::map<std::string, double> extras;
  // Resident memory in MiB, sampled during the scenario (first at its
  // start, last at its end), and whose it is.
  std::vector<double> rss_mb;
  std::string rss_of;
  // Whose CPU time run.cpu and ceiling.cpu are (the same process as
  // rss_of's): reported per operation, with the ceiling's over the
  // scenario's, a ratio that a machine's load moves less than the rates'.
  std::string cpu_of;

  // activities: how the workers get tasks ("poll" or "stream").
  std::string delivery;
  // activities: the one-Task workflow's type.
  std::string workflow_type;
  // activities with --tasks N > 1: an operation is an execution of N
  // activity round trips; the report then gives rates, the ratio and CPU
  // per round trip too ("round_trips"). 1 otherwise.
  int round_trips_per_operation = 1;
  // Ended early by Ctrl-C (SIGINT) or SIGTERM.
  bool interrupted = false;

  // run / ceiling operations per second; 0 when the ceiling measured none.
  double Ratio() const;
};

// Exactly one JSON object (and a newline):
//   {"scenario", "concurrency", "completed", "completed_per_sec",
//    "ceiling_per_sec", "ratio", "latency_ms": {"p50", "p90", "p99", "max"},
//    "errors": {"<code>": count}, then extra keys}.
std::string RenderJson(const BenchReport& report);

// Aligned lines for people, every figure with its ratio to the ceiling's.
std::string RenderText(const BenchReport& report);

}  // namespace stepflow::cli::bench

#endif  // STEPFLOW_TOOLS_CLI_BENCH_REPORT_H_
