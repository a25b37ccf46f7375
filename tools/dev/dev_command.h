// `stepflow dev`: the whole cluster in one process (gateway, a shard server
// owning every logical shard, eventbus, an embedded Kafka-protocol broker),
// with RocksDB under a data folder. Runs until SIGINT/SIGTERM.
#ifndef STEPFLOW_TOOLS_DEV_DEV_COMMAND_H_
#define STEPFLOW_TOOLS_DEV_DEV_COMMAND_H_

namespace stepflow::dev {

// argv[0] is "dev"; returns the process exit code.
int RunDevCommand(int argc, char** argv);

}  // namespace stepflow::dev

#endif  // STEPFLOW_TOOLS_DEV_DEV_COMMAND_H_
