#include "common/metrics/rpc_metrics.h"

#include <array>
#include <atomic>
#include <chrono>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "grpcpp/support/interceptor.h"
#include "grpcpp/support/status.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/histogram.h"

namespace stepflow::metrics {
namespace {

using grpc::experimental::InterceptionHookPoints;

constexpr size_t kMaxMethods = 1000;
constexpr int kNumCodes = 17;  // OK (0) .. UNAUTHENTICATED (16).

constexpr std::array<std::string_view, kNumCodes> kCodeNames = {
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
};

// Series of one (service, method). The histogram is created up front; the
// counters lazily, one per code actually returned.
struct MethodMetrics {
  std::string service;
  std::string method;
  prometheus::Histogram* latency = nullptr;
  std::array<std::atomic<prometheus::Counter*>, kNumCodes> handled{};
};

// Shared by the factory and its interceptors, so that a call still running
// while the server tears its factories down never touches freed memory.
class State {
 public:
  State(prometheus::Registry& registry, std::string component)
      : component_(std::move(component)),
        handled_(prometheus::BuildCounter()
                     .Name("stepflow_rpc_server_handled_total")
                     .Help("RPCs completed by the server, by status code.")
                     .Register(registry)),
        latency_(prometheus::BuildHistogram()
                     .Name("stepflow_rpc_server_handling_seconds")
                     .Help("Time from the start of an RPC to its status.")
                     .Register(registry)) {}

  MethodMetrics* Lookup(const char* full_method) {
    std::string_view name = full_method == nullptr ? "" : full_method;
    {
      absl::ReaderMutexLock lock(&mu_);
      auto it = methods_.find(absl::string_view(name.data(), name.size()));
      if (it != methods_.end()) return it->second.get();
    }
    absl::MutexLock lock(&mu_);
    auto it = methods_.find(absl::string_view(name.data(), name.size()));
    if (it != methods_.end()) return it->second.get();
    if (methods_.size() >= kMaxMethods) {
      if (other_ == nullptr) other_ = Create("other", "other");
      return other_.get();
    }
    auto [service, method] = Split(name);
    std::unique_ptr<MethodMetrics>& slot = methods_[std::string(name)];
    slot = Create(service, method);
    return slot.get();
  }

  prometheus::Counter* Handled(MethodMetrics* m, int code) {
    if (code < 0 || code >= kNumCodes) code = grpc::StatusCode::UNKNOWN;
    prometheus::Counter* counter =
        m->handled[code].load(std::memory_order_acquire);
    if (counter == nullptr) {
      // Family::Add returns the existing series for equal labels, so a race
      // between two first calls is harmless.
      counter = &handled_.Add({{"component", component_},
                               {"service", m->service},
                               {"method", m->method},
                               {"code", std::string(kCodeNames[code])}});
      m->handled[code].store(counter, std::memory_order_release);
    }
    return counter;
  }

 private:
  // "/pkg.Service/Method" -> {"pkg.Service", "Method"}.
  static std::pair<std::string_view, std::string_view> Split(
      std::string_view name) {
    if (name.size() > 1 && name[0] == '/') {
      size_t slash = name.find('/', 1);
      if (slash != std::string_view::npos && slash > 1 &&
          slash + 1 < name.size()) {
        return {name.substr(1, slash - 1), name.substr(slash + 1)};
      }
    }
    return {"unknown", name.empty() ? std::string_view("unknown") : name};
  }

  std::unique_ptr<MethodMetrics> Create(std::string_view service,
                                        std::string_view method) {
    auto m = std::make_unique<MethodMetrics>();
    m->service = std::string(service);
    m->method = std::string(method);
    m->latency = &latency_.Add(
        {{"component", component_},
         {"service", m->service},
         {"method", m->method}},
        prometheus::Histogram::BucketBoundaries{
            0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
            0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60});
    return m;
  }

  const std::string component_;
  prometheus::Family<prometheus::Counter>& handled_;
  prometheus::Family<prometheus::Histogram>& latency_;

  absl::Mutex mu_;
  absl::flat_hash_map<std::string, std::unique_ptr<MethodMetrics>> methods_
      ABSL_GUARDED_BY(mu_);
  std::unique_ptr<MethodMetrics> other_ ABSL_GUARDED_BY(mu_);
};

class MetricsInterceptor : public grpc::experimental::Interceptor {
 public:
  MetricsInterceptor(std::shared_ptr<State> state, MethodMetrics* metrics)
      : state_(std::move(state)),
        metrics_(metrics),
        start_(std::chrono::steady_clock::now()) {}

  ~MetricsInterceptor() override {
    if (!recorded_) Record(grpc::StatusCode::CANCELLED);
  }

  void Intercept(
      grpc::experimental::InterceptorBatchMethods* methods) override {
    if (!recorded_ && methods->QueryInterceptionHookPoint(
                          InterceptionHookPoints::PRE_SEND_STATUS)) {
      Record(methods->GetSendStatus().error_code());
    }
    methods->Proceed();
  }

 private:
  void Record(int code) {
    recorded_ = true;
    std::chrono::duration<double> elapsed =
        std::chrono::steady_clock::now() - start_;
    metrics_->latency->Observe(elapsed.count());
    state_->Handled(metrics_, code)->Increment();
  }

  std::shared_ptr<State> state_;
  MethodMetrics* metrics_;
  std::chrono::steady_clock::time_point start_;
  // Batches of one call are intercepted one at a time, so no lock.
  bool recorded_ = false;
};

class Factory : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit Factory(std::shared_ptr<State> state) : state_(std::move(state)) {}

  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    return new MetricsInterceptor(state_, state_->Lookup(info->method()));
  }

 private:
  std::shared_ptr<State> state_;
};

}  // namespace

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
MakeServerMetricsInterceptorFactory(prometheus::Registry& registry,
                                    std::string component) {
  return std::make_unique<Factory>(
      std::make_shared<State>(registry, std::move(component)));
}

std::string_view GrpcCodeName(int code) {
  if (code < 0 || code >= kNumCodes) return "UNKNOWN";
  return kCodeNames[code];
}

}  // namespace stepflow::metrics
