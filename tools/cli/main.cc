// The `stepflow` binary: the CLI of cli.h with the process's streams and
// environment, and `stepflow dev` wired to tools/dev.
#include "tools/cli/cli.h"
#include "tools/dev/dev_command.h"

int main(int argc, char** argv) {
  stepflow::cli::Environment env = stepflow::cli::ProcessEnvironment();
  env.run_dev = &stepflow::dev::RunDevCommand;
  return stepflow::cli::Run(argc, argv, env);
}
