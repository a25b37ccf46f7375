// The `stepflow` commands that need no server: `stepflow local run` runs a
// workflow in this process (tools/local/local_runner.h), `stepflow
// validate` checks a definition (asl::ValidateDefinition), `stepflow events
// test-pattern` matches an event against an EventBridge pattern
// (patterns::TestEventPattern). Their entries in
// the command table are in commands.cc, with the flags and --help text.
//
// Both print one JSON object on stdout and report the outcome in the exit
// status (see each function), through SilentExit.
#ifndef STEPFLOW_TOOLS_CLI_LOCAL_COMMANDS_H_
#define STEPFLOW_TOOLS_CLI_LOCAL_COMMANDS_H_

#include <string>

#include "absl/status/status.h"
#include "common/asl/definition.h"
#include "tools/cli/commands.h"

namespace stepflow::cli {

// `stepflow local run`: {"status", "output" (a JSON value, when SUCCEEDED),
// "error", "cause" (when not empty), "history" (with --history)}. Exit 0
// when the execution SUCCEEDED, 1 for any other status or if the runner
// fails, 2 for bad usage or an invalid definition (its diagnostics go to
// stderr, one per line, as FormatDiagnostic writes them).
absl::Status LocalRun(const Invocation& inv);

// `stepflow validate FILE`: ValidateStateMachineDefinition's response,
// {"result": "OK"|"FAIL", "diagnostics": [...], "truncated": false}. Exit 0
// for OK, 1 for FAIL, 2 for bad usage (e.g. an unreadable file).
absl::Status Validate(const Invocation& inv);

// `stepflow events test-pattern`: TestEventPattern, here, with no server.
// Prints "true" or "false" and exits 0; an invalid pattern or event prints
// AWS's message on stderr and exits 2 (as does bad usage).
absl::Status TestEventPattern(const Invocation& inv);

// "CODE at LOCATION: MESSAGE".
std::string FormatDiagnostic(const asl::Diagnostic& diagnostic);

}  // namespace stepflow::cli

#endif  // STEPFLOW_TOOLS_CLI_LOCAL_COMMANDS_H_
