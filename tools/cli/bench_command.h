// `stepflow bench`: Stepflow's load driver (see bench_options.h for the
// flags and tools/bench/README.md for what the figures mean).
//
// Runs one scenario (bench_scenarios.h) closed-loop against a gateway —
// --endpoint, or a throw-away in-process dev cluster on a temporary data
// folder — then the ceiling, a no-op unary RPC on the same gateway at the
// same concurrency for the same time, and prints both with their ratio.
#ifndef STEPFLOW_TOOLS_CLI_BENCH_COMMAND_H_
#define STEPFLOW_TOOLS_CLI_BENCH_COMMAND_H_

#include <iosfwd>
#include <string>
#include <vector>

namespace stepflow::cli::bench {

// `args` are the arguments after "bench". The report goes to `out`, errors
// to `err`. Returns the exit status: 0 every operation completed, 1 some
// failed or the run could not be set up, 2 bad usage.
int RunBenchCommand(const std::vector<std::string>& args, std::ostream& out,
                    std::ostream& err);

}  // namespace stepflow::cli::bench

#endif  // STEPFLOW_TOOLS_CLI_BENCH_COMMAND_H_
