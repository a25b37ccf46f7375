// Durable-write benchmark, two modes run by tools/bench/durable_vs_rocksdb.sh:
//
//   stepflow-durability-bench --mode gateway --target 127.0.0.1:7100
//       --concurrency 64 --seconds 10 --payload 1024   (one command line)
//     Creates a one-state Standard state machine and starts executions with
//     `payload`-byte inputs through the gateway, keeping `concurrency`
//     StartExecution calls in flight with gRPC's callback API (each completion
//     starts the next call; no thread per call, so the client takes little of
//     the CPU the servers it measures share); each start is one durable
//     transition (history + record + listing in one synced WriteBatch).
//     Prints "transitions_per_second N" and "failed_starts N".
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
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/blocking_counter.h"
#include "absl/synchronization/mutex.h"
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

// Keeps one StartExecution call in flight per slot with gRPC's callback API:
// each completion starts the slot's next call, so the client needs no thread
// per call (gRPC's own threads run the completions) and costs the servers it
// shares the machine with as little CPU as it can. Stop() makes every slot
// retire at its next completion and returns once all have, so no completion
// touches the loop after Stop(). The stub must outlive the loop; done() and
// failed() may be read from any thread.
class StartLoop {
 public:
  StartLoop(v1::StepFunctions::Stub* stub, const std::string& state_machine_arn,
            const std::string& input, int concurrency)
      : stub_(stub), slots_(concurrency), retired_(concurrency) {
    for (int index = 0; index < concurrency; ++index) {
      Slot& slot = slots_[index];
      slot.index = index;
      slot.request.set_state_machine_arn(state_machine_arn);
      slot.request.set_input(input);
    }
  }
  StartLoop(const StartLoop&) = delete;
  StartLoop& operator=(const StartLoop&) = delete;
  ~StartLoop() { Stop(); }

  // Call once.
  void Start() {
    started_ = true;
    for (Slot& slot : slots_) Issue(&slot);
  }

  // Waits for the calls in flight, each bounded by its deadline. Called by
  // the owner's thread; later calls return at once.
  void Stop() {
    if (!started_ || stopped_) return;
    stopping_ = true;
    retired_.Wait();
    stopped_ = true;
  }

  int64_t done() const { return done_.load(); }
  int64_t failed() const { return failed_.load(); }

 private:
  // A slot's request, response and context belong to its one call in flight.
  struct Slot {
    int index = 0;
    int64_t sequence = 0;
    v1::StartExecutionRequest request;
    v1::StartExecutionResponse response;
    std::optional<grpc::ClientContext> context;  // a context serves one call only
  };

  void Issue(Slot* slot) {
    slot->request.set_name(absl::StrCat("e-", slot->index, "-", slot->sequence++));
    slot->context.emplace();
    slot->context->set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
    stub_->async()->StartExecution(&*slot->context, &slot->request, &slot->response,
                                   [this, slot](grpc::Status status) { Complete(slot, status); });
  }

  // Runs on a gRPC thread. The call's own reference keeps it alive through
  // this callback, so replacing the slot's context here is safe.
  void Complete(Slot* slot, const grpc::Status& status) {
    if (status.ok()) {
      ++done_;
    } else {
      ++failed_;
    }
    if (stopping_) {
      retired_.DecrementCount();  // last touch of the loop by this slot
      return;
    }
    Issue(slot);
  }

  v1::StepFunctions::Stub* const stub_;
  std::vector<Slot> slots_;
  absl::BlockingCounter retired_;
  bool started_ = false;  // owner's thread only
  bool stopped_ = false;  // owner's thread only
  std::atomic<bool> stopping_{false};
  std::atomic<int64_t> done_{0};
  std::atomic<int64_t> failed_{0};
};

int RunGateway(const Settings& settings) {
  if (settings.concurrency < 1) {
    std::cerr << "--concurrency must be at least 1\n";
    return 2;
  }
  // The distribution's Abseil leaves deadlock-cycle detection on; its
  // bookkeeping on the mutexes gRPC creates for every call was about 5% of
  // the client's CPU, which the servers it measures would otherwise lose.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
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
  StartLoop loop(stub.get(), created.state_machine_arn(), input, settings.concurrency);
  loop.Start();
  absl::SleepFor(absl::Seconds(1));  // warm-up
  const int64_t first = loop.done();
  const absl::Time begin = absl::Now();
  absl::SleepFor(absl::Seconds(settings.seconds));
  const int64_t last = loop.done();
  const double elapsed = absl::ToDoubleSeconds(absl::Now() - begin);
  loop.Stop();
  std::cout << "transitions_per_second " << static_cast<double>(last - first) / elapsed << "\n"
            << "failed_starts " << loop.failed() << "\n";
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
  flags.Add("concurrency", &settings.concurrency,
            "StartExecution calls in flight (gateway mode) or writer threads (rocksdb mode)");
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
