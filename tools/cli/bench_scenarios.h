// The scenarios of `stepflow bench` and the ceiling's no-op RPC.
//
// A Scenario creates what its operations need (a state machine, an
// activity and its workers, a bus and a rule) under unique names, makes one
// Operation per load slot, completes the report after the load, and deletes
// what it created. The ceiling operation is grpc.health.v1.Health/Check,
// which every Stepflow server (the gateway included) serves.
#ifndef STEPFLOW_TOOLS_CLI_BENCH_SCENARIOS_H_
#define STEPFLOW_TOOLS_CLI_BENCH_SCENARIOS_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "tools/cli/bench_driver.h"
#include "tools/cli/bench_options.h"
#include "tools/cli/bench_report.h"

namespace grpc {
class Channel;
}  // namespace grpc

namespace stepflow::cli::bench {

inline constexpr char kCeilingRpc[] = "grpc.health.v1.Health/Check";

// What a scenario works with. Everything pointed to outlives the scenario.
struct ScenarioContext {
  const BenchOptions* options = nullptr;
  // The gateway ("host:port"), for the activity workers' own channel.
  std::string endpoint;
  // Slot i uses channels[i % size]; at least one.
  std::vector<std::shared_ptr<grpc::Channel>> channels;
  Scheduler* scheduler = nullptr;
  // ASL definition and execution input (JSON text).
  std::string definition;
  std::string input;
  // EXPRESS executions closed so far in the cluster, by status (the
  // shard servers' stepflow_executions_closed_total); empty when the bench
  // cannot read it (--endpoint without --metrics), and the scenarios list
  // executions instead, which finds only the recent ones.
  std::function<absl::StatusOr<std::map<std::string, int64_t>>()> closed_express;
  // Tasks handed to workers so far, by how they met their poller
  // ("sync_match", "backlog"); only with the in-process cluster.
  std::function<std::map<std::string, int64_t>()> activity_hand_overs;
};

// Thread-safety: SetUp, Settle, Finish and TearDown are called from one
// thread, in that order (Settle once per slice); MakeOperation between SetUp and the load, and the operations
// run concurrently on gRPC threads.
class Scenario {
 public:
  virtual ~Scenario() = default;
  // Creates the scenario's resources (and starts its workers).
  [[nodiscard]] virtual absl::Status SetUp() = 0;
  virtual std::unique_ptr<Operation> MakeOperation(int slot) = 0;
  // After each slice of the load, before the ceiling's next slice: waits
  // until the work the slice's operations left running has ended (the
  // executions that express-async starts and events delivers), so that the
  // ceiling does not share the machine with it. The default waits for
  // nothing.
  virtual void Settle() {}
  // After the load: stops workers, waits for deliveries, and adds the
  // scenario's own figures to `report` (whose `run` holds the load's).
  virtual void Finish(BenchReport* report) = 0;
  // Deletes what SetUp created; best effort.
  virtual void TearDown() = 0;
};

absl::StatusOr<std::unique_ptr<Scenario>> MakeScenario(
    const ScenarioContext& context);

// One Health/Check call per operation; ok when the answer is SERVING.
std::unique_ptr<Operation> MakeHealthCheckOperation(
    std::shared_ptr<grpc::Channel> channel, absl::Duration timeout);

// The built-in workflow: five Pass/Choice states (four run).
std::string DefaultDefinition();
// The built-in input: a JSON object of exactly 1 KiB.
std::string DefaultInput();

}  // namespace stepflow::cli::bench

#endif  // STEPFLOW_TOOLS_CLI_BENCH_SCENARIOS_H_
