// Flags of `stepflow bench` (ghz-like: -c, -n, -z, -q, -O) and their parsing.
//
//   absl::StatusOr<BenchOptions> options =
//       ParseBenchArgs({"--scenario", "standard", "-n", "20", "-c", "4"});
//
// Pure functions; thread-safe.
#ifndef STEPFLOW_TOOLS_CLI_BENCH_OPTIONS_H_
#define STEPFLOW_TOOLS_CLI_BENCH_OPTIONS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace stepflow::cli::bench {

enum class ScenarioKind {
  kExpressAsync,
  kExpressSync,
  kStandard,
  kActivities,
  kEvents
};
enum class Delivery { kPoll, kStream };
enum class Output { kText, kJson };

// "express-async", "express-sync", "standard", "activities", "events".
std::string ScenarioName(ScenarioKind scenario);

struct BenchOptions {
  ScenarioKind scenario = ScenarioKind::kExpressAsync;
  // Operations in flight at once (closed loop: each slot starts the next
  // operation when its previous one has finished).
  int concurrency = 16;
  // Stop after this many operations (0: no count limit).
  int64_t total = 0;
  // Stop after this long (zero: no time limit). With neither -n nor -z the
  // run lasts kDefaultDuration; with both, whichever comes first.
  absl::Duration duration = absl::ZeroDuration();
  // Operation starts per second across all slots; 0: no cap.
  double rate = 0;
  Output output = Output::kText;
  // Gateway to load; empty: a throw-away in-process dev cluster.
  std::string endpoint;
  // ASL definition and execution input files; empty: the built-in ones.
  std::string definition_file;
  std::string input_file;
  // How the activities scenario's workers get their tasks.
  Delivery delivery = Delivery::kPoll;
  // The type of the activities scenario's one-Task workflow: STANDARD or
  // EXPRESS.
  std::string workflow_type = "STANDARD";
  // The TimeoutSeconds of the activities scenario's Task state.
  int64_t task_timeout_seconds = 300;
  // Activity tasks each execution of the activities scenario runs, one
  // after the other (its Task state again while a Choice says more are
  // left); 1: the one-Task workflow.
  int tasks_per_execution = 1;
  // gRPC channels (connections) the load is spread over; 0: one per 16
  // slots, at most 8.
  int connections = 0;
  // The scenario and the ceiling alternate in this many slices of the
  // duration each, so that both see the same load on a shared machine;
  // 0: one slice per kSliceLength of -z (at most kMaxAutoSlices), and a
  // single one (scenario, then ceiling) for -n runs.
  int slices = 0;
  // Deadline of each RPC.
  absl::Duration rpc_timeout = absl::Seconds(30);
  // Resident memory is sampled this often during the scenario: of this
  // process with the in-process cluster, of `rss_pid` when set (a local
  // server under --endpoint).
  absl::Duration rss_interval = absl::Seconds(10);
  int rss_pid = 0;
  // With --endpoint: the shard servers' /metrics addresses ("host:port"),
  // from which EXPRESS ends are counted; empty: by ListExecutions.
  std::vector<std::string> metrics;
  bool help = false;

  // The channel count actually used.
  int EffectiveConnections() const;
  // The slice count actually used.
  int EffectiveSlices() const;
};

inline constexpr absl::Duration kDefaultDuration = absl::Seconds(10);
inline constexpr absl::Duration kSliceLength = absl::Seconds(2);
inline constexpr int kMaxAutoSlices = 10;

// Parses the arguments after "bench". INVALID_ARGUMENT with a message for
// the user on an unknown flag or a bad value.
absl::StatusOr<BenchOptions> ParseBenchArgs(
    const std::vector<std::string>& args);

// "10s", "500ms", "2m", "1.5s", "1h"; a bare number is seconds.
absl::StatusOr<absl::Duration> ParseBenchDuration(absl::string_view text);

// The full `stepflow bench --help` text.
std::string BenchHelp();

}  // namespace stepflow::cli::bench

#endif  // STEPFLOW_TOOLS_CLI_BENCH_OPTIONS_H_
