// The `stepflow` binary: the CLI of cli.h with the process's streams and
// environment, `stepflow dev` wired to tools/dev and `stepflow bench` to the
// load driver.
#include "tools/cli/bench_command.h"
#include "tools/cli/cli.h"
#include "tools/dev/dev_command.h"

int main(int argc, char** argv) {
  stepflow::cli::Environment env = stepflow::cli::ProcessEnvironment();
  env.run_dev = &stepflow::dev::RunDevCommand;
  env.run_bench = &stepflow::cli::bench::RunBenchCommand;
  return stepflow::cli::Run(argc, argv, env);
}
