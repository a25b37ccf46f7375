// The `stepflow` command-line tool: the Stepflow API (AWS Step Functions over
// gRPC) for people and shell scripts.
//
//   stepflow state-machines create --name Orders --definition orders.asl.json
//   stepflow executions start Orders --input '{"id": 7}'
//   stepflow executions history arn:aws:states:...:execution:Orders:run-1
//   stepflow --output text executions list --state-machine Orders
//
// Each command makes one or a few unary RPCs on stepflow.v1.StepFunctions at
// --endpoint (env STEPFLOW_ENDPOINT, default 127.0.0.1:7233, the gateway of
// `stepflow dev`) and prints the response as JSON shaped like the AWS CLI's
// output for the same operation (see render.h), or with `--output text` one
// tab-separated line per item. Exit status: 0 success, 1 error (printed as
// "error: <gRPC code>: <message>"), 2 bad usage (usage printed to stderr).
// `stepflow local run` and `stepflow validate` call no server: they run the
// interpreter or the validator in this process (local_commands.h) and also
// report the outcome in the exit status.
// `stepflow dev ...` is handed to Environment::run_dev untouched, and
// `stepflow bench ...` to Environment::run_bench.
//
// Run() is the whole program minus the process: everything it touches outside
// itself comes through Environment, so tests run it in-process against a fake
// server.
#ifndef STEPFLOW_TOOLS_CLI_CLI_H_
#define STEPFLOW_TOOLS_CLI_CLI_H_

#include <functional>
#include <iosfwd>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "grpcpp/channel.h"

namespace stepflow::cli {

inline constexpr char kVersion[] = "0.1.0";
inline constexpr char kDefaultEndpoint[] = "127.0.0.1:7233";
inline constexpr char kEndpointEnvVar[] = "STEPFLOW_ENDPOINT";

// The process around Run(). The streams must outlive the Run() call.
struct Environment {
  std::istream* in = nullptr;
  std::ostream* out = nullptr;
  std::ostream* err = nullptr;
  // Value of an environment variable, nullopt if unset.
  std::function<std::optional<std::string>(const std::string& name)> getenv;
  // A channel to `endpoint` (host:port or any gRPC target).
  std::function<std::shared_ptr<grpc::ChannelInterface>(
      const std::string& endpoint)>
      make_channel;
  // Runs `stepflow dev`; argv[0] is "dev". Returns the exit code.
  std::function<int(int argc, char** argv)> run_dev;
  // Runs `stepflow bench` on the arguments after "bench", printing to the
  // given streams. Returns the exit code.
  std::function<int(const std::vector<std::string>& args, std::ostream& out,
                    std::ostream& err)>
      run_bench;
};

// std::cin/cout/cerr, the process environment and insecure channels; run_dev
// and run_bench are left empty for the caller (main.cc) to fill in.
Environment ProcessEnvironment();

// Runs the CLI on `argv` (argv[0] is the program name) and returns the exit
// status: 0 success, 1 error, 2 bad usage.
int Run(int argc, char** argv, const Environment& env);

}  // namespace stepflow::cli

#endif  // STEPFLOW_TOOLS_CLI_CLI_H_
