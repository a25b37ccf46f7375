// Runs an ASL execution to the end (or to a bound) under random external
// events, checking the interpreter's invariants along the way. Shared by
// the property test and the libFuzzer target in this folder.
//
//   std::mt19937_64 rng(seed);
//   DriveResult result = DriveExecution(*definition, R"({"a": 1})", rng);
//   EXPECT_TRUE(result.violations.empty()) << absl::StrJoin(result.violations,
//   "\n");
//
// The driver plays the shard's part with a virtual clock: it starts the
// execution, then repeatedly either fires one armed timer (advancing the
// clock to it), or answers one awaited activity (started, succeeded with
// random JSON, failed with a random error name, heartbeat, "does not
// exist"), or delivers a stale report, or (rarely) stops the execution.
// It stops once the execution closes or a bound is reached; a run that hits
// the bound while still waiting for something is a legitimately long run
// (a loop through a Wait or a Task), not a failure.
//
// Invariants checked (each broken one becomes a line in `violations`):
// - history event ids are 1, 2, 3, ... across all transitions, each
//   previous_event_id names an earlier event, timestamps never go back;
// - the close event is the last of its transition and matches
//   closed_status, no event follows it, no frame survives it, and no
//   pending timer or activity report produces events afterwards;
// - a rejected report (a stale activity or timer) changes nothing;
// - timers are never armed in the past;
// - a running execution always waits for something (a task or a timer);
// - the state and events survive a protobuf round trip (the shard persists
//   them) whenever the definition and input were valid UTF-8.
//
// Functions here are thread-compatible: they share nothing but what the
// caller passes in.
#ifndef STEPFLOW_COMMON_ASL_FUZZ_EXECUTION_DRIVER_H_
#define STEPFLOW_COMMON_ASL_FUZZ_EXECUTION_DRIVER_H_

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "common/asl/definition.h"

namespace stepflow::asl::fuzz {

struct DriveOptions {
  int max_events = 2000;  // history events per execution
  int max_steps = 500;    // external events delivered after the start
  // Whether events and state must survive a protobuf round trip; pass
  // false when the definition text was not valid UTF-8 (the gateway would
  // have refused it).
  bool check_serialization = true;
  // When set, every call the driver makes and every event it receives is
  // appended here as a line (for finding where two runs part ways).
  std::vector<std::string>* trace = nullptr;
};

struct DriveResult {
  // "SUCCEEDED" / "FAILED" / "TIMED_OUT" / "ABORTED", or empty when the run
  // reached a bound while the execution was still (legitimately) running.
  std::string closed_status;
  int64_t events = 0;
  int steps = 0;
  // FNV-1a of the deterministic serialization of every history event: two
  // runs with the same definition, input and seed must agree.
  uint64_t history_hash = 14695981039346656037ull;
  // Broken invariants, human-readable; empty on success.
  std::vector<std::string> violations;
};

// Starts an execution of `definition` with `input` and drives it as
// described above, drawing every random choice from `rng`.
DriveResult DriveExecution(const Definition& definition,
                           absl::string_view input, std::mt19937_64& rng,
                           const DriveOptions& options = {});

// Whether some cycle of transitions could be taken over and over within a
// single interpreter call, without waiting for a timer or an activity: a
// loop through Pass, Choice, Wait states that may wait zero seconds,
// Parallel and Map states (their branches may finish at once). The
// interpreter has no history-length limit, so such a loop never returns;
// callers skip these definitions (conservatively: some flagged loops would
// leave through a Choice). Nested branches and Map processors count too.
bool MayLoopWithoutWaiting(const Definition& definition);

// Whether `text` is well-formed UTF-8 (no surrogates, no overlong forms).
bool IsValidUtf8(absl::string_view text);

// A random JSON value of at most `depth` levels, shaped so that paths such
// as $.a, $.n, $.items[0] and $.t often select something. Always valid
// UTF-8.
std::string RandomJson(std::mt19937_64& rng, int depth = 3);

}  // namespace stepflow::asl::fuzz

#endif  // STEPFLOW_COMMON_ASL_FUZZ_EXECUTION_DRIVER_H_
