// The commands of the `stepflow` CLI as data: what each accepts (used both to
// parse the command line and to print --help) and the function that runs it.
// cli.cc dispatches on this table; adding a command is one entry in
// Commands() plus its function in commands.cc (local_commands.cc for the
// commands that need no server).
#ifndef STEPFLOW_TOOLS_CLI_COMMANDS_H_
#define STEPFLOW_TOOLS_CLI_COMMANDS_H_

#include <atomic>
#include <chrono>
#include <iosfwd>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/rpc/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/config/arn.h"
#include "grpcpp/client_context.h"
#include "stepflow/v1/states.grpc.pb.h"
#include "tools/cli/args.h"

namespace stepflow::cli {

enum class OutputFormat { kJson, kText };

// A unary method of the StepFunctions stub, e.g.
// &v1::StepFunctions::StubInterface::DescribeExecution.
template <typename Request, typename Response>
using StubMethod = grpc::Status (v1::StepFunctions::StubInterface::*)(
    grpc::ClientContext*, const Request&, Response*);

// Whether a call may be sent again after a failure that leaves unknown
// whether the server acted on it: reads (Describe*, List*, Get* except
// GetActivityTask, which hands a task out), and StartExecution with a name
// (a second start of the same name and input is the same execution).
bool IsRetrySafe(const google::protobuf::Message& request);
bool IsRetrySafe(const v1::StartExecutionRequest& request);

// How Rpc backs off from RESOURCE_EXHAUSTED (a throttled or saturated
// service) and UNAVAILABLE: attempt k waits a random time in [d/2, d] for
// d = min(initial * 2^(k-1), max), the jitter keeping many clients refused
// together from coming back together.
struct RetryPolicy {
  absl::Duration initial_backoff = absl::Milliseconds(100);
  absl::Duration max_backoff = absl::Seconds(2);
};

// The wait before retry number `retry` (1 for the first) drawn with
// `uniform01`, a random number in [0, 1).
absl::Duration RetryDelay(const RetryPolicy& policy, int retry, double uniform01);

// Issues unary StepFunctions calls, each with its own deadline `timeout` from
// when it starts. Retry-safe calls (IsRetrySafe) refused with
// RESOURCE_EXHAUSTED or UNAVAILABLE are sent again after a backoff
// (RetryPolicy) as long as the next attempt starts before that deadline;
// every attempt shares it, so a call never takes longer than `timeout`.
// Not copyable; the stub must outlive it. Const methods may be called
// concurrently if the stub allows it (gRPC stubs do).
class Rpc {
 public:
  Rpc(v1::StepFunctions::StubInterface* stub, absl::Duration timeout,
      RetryPolicy retry = {})
      : stub_(stub), timeout_(timeout), retry_(retry) {}
  Rpc(const Rpc&) = delete;
  Rpc& operator=(const Rpc&) = delete;

  template <typename Request, typename Response>
  [[nodiscard]] absl::Status Call(StubMethod<Request, Response> method,
                                  const Request& request,
                                  Response* response) const {
    const absl::Time deadline = absl::Now() + timeout_;
    const bool retry_safe = IsRetrySafe(request);
    for (int retry = 1;; ++retry) {
      grpc::ClientContext context;
      context.set_deadline(absl::ToChronoTime(deadline));
      grpc::Status status = (stub_->*method)(&context, request, response);
      if (status.ok() || !retry_safe || !IsBackoffCode(status.error_code())) {
        return rpc::FromGrpcStatus(status);
      }
      const absl::Duration delay = NextDelay(retry);
      if (absl::Now() + delay >= deadline) return rpc::FromGrpcStatus(status);
      retries_.fetch_add(1, std::memory_order_relaxed);
      absl::SleepFor(delay);
      response->Clear();
    }
  }

  // Attempts sent again so far (all calls); for tests and diagnostics.
  int retries() const { return retries_.load(std::memory_order_relaxed); }

 private:
  static bool IsBackoffCode(grpc::StatusCode code) {
    return code == grpc::StatusCode::RESOURCE_EXHAUSTED ||
           code == grpc::StatusCode::UNAVAILABLE;
  }
  // The backoff before retry number `retry`, jittered.
  absl::Duration NextDelay(int retry) const;

  v1::StepFunctions::StubInterface* const stub_;
  const absl::Duration timeout_;
  const RetryPolicy retry_;
  mutable std::atomic<int> retries_{0};
};

// Everything a command's function gets. References are valid for the call.
struct Invocation {
  const ParsedArgs& args;  // the command's flags (and global ones) and
                           // positionals, already checked against its spec
  const config::ArnScope& scope;  // for NAME -> ARN
  OutputFormat output;
  const Rpc& rpc;
  std::istream& in;  // for "-" (read from stdin) arguments
  std::ostream& out;
  std::ostream& err;  // for what a command reports besides its result
};

struct PositionalSpec {
  std::string name;  // e.g. "ARN|NAME"
  std::string help;
};

// A command is "stepflow GROUP NAME ..."; a command with an empty `name` is
// its group's only command, "stepflow GROUP ..." (e.g. `stepflow validate`).
struct CommandSpec {
  std::string group;        // e.g. "state-machines"
  std::string name;         // e.g. "describe"; empty for a one-command group
  std::string synopsis;     // what follows "stepflow GROUP NAME" in the usage
  std::string summary;      // one line, for the group's command list
  std::string description;  // paragraphs for --help
  std::vector<PositionalSpec> positionals;  // all required, in this order
  std::vector<FlagSpec> flags;              // besides the global flags
  absl::Status (*run)(const Invocation& invocation);
};

struct GroupSpec {
  std::string name;
  std::string summary;
};

// The command groups, in help order; "dev" is not among them (it is not
// parsed here but handed on whole).
const std::vector<GroupSpec>& CommandGroups();
const std::vector<CommandSpec>& Commands();

// A status meaning "the command line is wrong": the CLI prints `message` and
// the command's usage to stderr and exits 2.
absl::Status UsageError(absl::string_view message);
bool IsUsageError(const absl::Status& status);

// A status meaning "the command has printed everything it had to say (its
// result on stdout, any details on stderr); exit with `exit_code`", for
// commands whose exit status reports an outcome, not just success.
absl::Status SilentExit(int exit_code);
// The exit code of a SilentExit status, nullopt for any other status.
std::optional<int> SilentExitCode(const absl::Status& status);

// The contents of `source`: a file path (an AWS-CLI-style "file://" prefix is
// accepted), or "-" for `inv.in`. `what` names the document in errors, which
// are absl::ErrnoToStatus's (e.g. NOT_FOUND).
absl::StatusOr<std::string> ReadSource(const Invocation& inv,
                                       absl::string_view source,
                                       absl::string_view what);

}  // namespace stepflow::cli

#endif  // STEPFLOW_TOOLS_CLI_COMMANDS_H_
