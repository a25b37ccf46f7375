// Durable-write benchmark, two modes run by tools/bench/durable_vs_rocksdb.sh:
//
//   stepflow-durability-bench --mode gateway --target 127.0.0.1:7100
//       --concurrency 64 --seconds 10 --payload 1024   (one command line)
//     Creates a one-state Standard state machine and starts executions with
//     `payload`-byte inputs from `concurrency` threads through the gateway;
//     each start is one durable transition (history + record + listing in one
//     synced WriteBatch). Prints "transitions_per_second N".
//
//   stepflow-durability-bench --mode rocksdb --dir /tmp/x --concurrency 64
//       --seconds 10 --batch-bytes 3000 --batch-ops 6   (one command line)
//     The ceiling on the same disk: `concurrency` threads each writing
//     WriteBatches of that size with sync=true into a fresh store (RocksDB
//     groups concurrent synced writers into one fsync). Prints
//     "batches_per_second N" and "fsyncs_per_batch F".
#include <grpcpp/grpcpp.h>

#include <atomic>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/config/flags.h"
#include "common/rpc/server.h"
#include "common/storage/store.h"
#include "stepflow/v1/states.grpc.pb.h"

namespace stepflow {
namespace {

struct Settings {
  std::string mode;
  std::string target;
  std::string dir;
  int concurrency = 64;
  int seconds = 10;
  int payload = 1024;
  int batch_bytes = 3000;
  int batch_ops = 6;
};

int RunGateway(const Settings& settings) {
  auto channel = rpc::MakeChannel(settings.target);
  auto stub = v1::StepFunctions::NewStub(channel);
  v1::CreateStateMachineRequest create;
  create.set_name(absl::StrCat("bench-", absl::ToUnixMicros(absl::Now())));
  create.set_type("STANDARD");
  create.set_role_arn("arn:aws:iam::123456789012:role/stepflow");
  create.set_definition(R"({"StartAt": "A", "States": {"A": {"Type": "Pass", "End": true}}})");
  v1::CreateStateMachineResponse created;
  {
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
    grpc::Status status = stub->CreateStateMachine(&context, create, &created);
    if (!status.ok()) {
      std::cerr << "CreateStateMachine: " << status.error_message() << "\n";
      return 1;
    }
  }
  const std::string input =
      absl::StrCat(R"({"pad":")", std::string(std::max(0, settings.payload - 10), 'x'), R"("})");
  std::atomic<int64_t> done{0};
  std::atomic<int64_t> failed{0};
  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < settings.concurrency; ++t) {
    threads.emplace_back([&, t] {
      for (int64_t i = 0; !stop; ++i) {
        v1::StartExecutionRequest start;
        start.set_state_machine_arn(created.state_machine_arn());
        start.set_name(absl::StrCat("e-", t, "-", i));
        start.set_input(input);
        v1::StartExecutionResponse started;
        grpc::ClientContext context;
        context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
        if (stub->StartExecution(&context, start, &started).ok()) {
          ++done;
        } else {
          ++failed;
        }
      }
    });
  }
  absl::SleepFor(absl::Seconds(1));  // warm-up
  const int64_t first = done.load();
  const absl::Time begin = absl::Now();
  absl::SleepFor(absl::Seconds(settings.seconds));
  const int64_t last = done.load();
  const double elapsed = absl::ToDoubleSeconds(absl::Now() - begin);
  stop = true;
  for (std::thread& thread : threads) thread.join();
  std::cout << "transitions_per_second " << static_cast<double>(last - first) / elapsed << "\n"
            << "failed_starts " << failed.load() << "\n";
  return 0;
}

int RunRocksDb(const Settings& settings) {
  storage::StoreOptions options;
  options.path = settings.dir;
  options.column_families = {"bench"};
  auto store = storage::Store::Open(options);
  if (!store.ok()) {
    std::cerr << store.status() << "\n";
    return 1;
  }
  auto family = (*store)->Family("bench");
  if (!family.ok()) return 1;
  const int ops = std::max(1, settings.batch_ops);
  const std::string value(std::max(1, settings.batch_bytes / ops - 24), 'v');
  std::atomic<int64_t> done{0};
  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < settings.concurrency; ++t) {
    threads.emplace_back([&, t] {
      storage::WriteBatch batch;
      for (uint64_t i = 0; !stop; ++i) {
        batch.Clear();
        for (int op = 0; op < ops; ++op) {
          std::string key = absl::StrCat("t", t, "-");
          storage::AppendUint64(&key, i);
          storage::AppendUint32(&key, static_cast<uint32_t>(op));
          batch.Put(*family, key, value);
        }
        if ((*store)->Write(batch, /*sync=*/true).ok()) ++done;
      }
    });
  }
  absl::SleepFor(absl::Seconds(1));
  const int64_t first = done.load();
  const uint64_t first_syncs = (*store)->WalSyncs();
  const absl::Time begin = absl::Now();
  absl::SleepFor(absl::Seconds(settings.seconds));
  const int64_t last = done.load();
  const uint64_t last_syncs = (*store)->WalSyncs();
  const double elapsed = absl::ToDoubleSeconds(absl::Now() - begin);
  stop = true;
  for (std::thread& thread : threads) thread.join();
  const double batches = static_cast<double>(last - first);
  std::cout << "batches_per_second " << batches / elapsed << "\n"
            << "fsyncs_per_batch "
            << (batches > 0 ? static_cast<double>(last_syncs - first_syncs) / batches : 0) << "\n";
  return 0;
}

}  // namespace
}  // namespace stepflow

int main(int argc, char** argv) {
  stepflow::Settings settings;
  stepflow::config::FlagSet flags("stepflow-durability-bench",
                                  "Durable transitions through the gateway vs. raw RocksDB.");
  flags.Add("mode", &settings.mode, "gateway or rocksdb");
  flags.Add("target", &settings.target, "gateway address (gateway mode)");
  flags.Add("dir", &settings.dir, "fresh RocksDB folder (rocksdb mode)");
  flags.Add("concurrency", &settings.concurrency, "concurrent writers");
  flags.Add("seconds", &settings.seconds, "measured seconds (after 1 s of warm-up)");
  flags.Add("payload", &settings.payload, "execution input bytes (gateway mode)");
  flags.Add("batch-bytes", &settings.batch_bytes, "bytes per write batch (rocksdb mode)");
  flags.Add("batch-ops", &settings.batch_ops, "puts per write batch (rocksdb mode)");
  if (auto code = flags.ParseOrExit(argc, argv)) return *code;
  if (settings.mode == "gateway") return stepflow::RunGateway(settings);
  if (settings.mode == "rocksdb") return stepflow::RunRocksDb(settings);
  std::cerr << "--mode must be gateway or rocksdb\n";
  return 2;
}
