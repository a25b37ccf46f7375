#include "tools/cli/bench_command.h"

#include <netdb.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <optional>
#include <sstream>
#include <thread>

#include "absl/random/random.h"
#include "absl/synchronization/mutex.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/match.h"
#include "absl/strings/str_format.h"
#include "common/config/process.h"
#include "common/config/signals.h"
#include "common/log/log.h"
#include "common/rpc/server.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/support/channel_arguments.h"
#include "prometheus/metric_family.h"
#include "prometheus/registry.h"
#include "tools/cli/bench_driver.h"
#include "tools/cli/bench_options.h"
#include "tools/cli/bench_report.h"
#include "tools/cli/bench_scenarios.h"
#include "tools/cli/bench_stats.h"
#include "tools/dev/dev_cluster.h"

namespace stepflow::cli::bench {
namespace {

// The ceiling runs at least this long, so that a short -n run still gets a
// steady ceiling figure.
constexpr absl::Duration kMinCeilingDuration = absl::Seconds(1);
constexpr absl::Duration kConnectTimeout = absl::Seconds(10);

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file) return absl::NotFoundError(absl::StrCat("cannot read ", path));
  std::ostringstream text;
  text << file.rdbuf();
  return text.str();
}

// `count` channels to `endpoint`, each with a connection of its own (a
// distinct channel argument keeps gRPC from sharing one subchannel).
std::vector<std::shared_ptr<grpc::Channel>> MakeChannels(
    const std::string& endpoint, int count) {
  std::vector<std::shared_ptr<grpc::Channel>> channels;
  for (int i = 0; i < count; ++i) {
    grpc::ChannelArguments arguments;
    arguments.SetInt("stepflow.bench_channel", i);
    arguments.SetMaxReceiveMessageSize(rpc::kMaxMessageBytes);
    arguments.SetMaxSendMessageSize(rpc::kMaxMessageBytes);
    channels.push_back(grpc::CreateCustomChannel(
        endpoint, grpc::InsecureChannelCredentials(), arguments));
  }
  return channels;
}

// The samples of counter `name` in `registry`, summed by the key `key_of`
// gives their labels (samples it gives no key are left out).
std::map<std::string, int64_t> SumCounter(
    const prometheus::Registry& registry, const std::string& name,
    const std::function<std::optional<std::string>(
        const std::vector<prometheus::ClientMetric::Label>&)>& key_of) {
  std::map<std::string, int64_t> counts;
  for (const prometheus::MetricFamily& family : registry.Collect()) {
    if (family.name != name) continue;
    for (const prometheus::ClientMetric& metric : family.metric) {
      if (std::optional<std::string> key = key_of(metric.label)) {
        counts[*key] += static_cast<int64_t>(metric.counter.value);
      }
    }
  }
  return counts;
}

// The value of label `name`, empty when absent.
std::string LabelValue(const std::vector<prometheus::ClientMetric::Label>& labels,
                       const std::string& name) {
  for (const prometheus::ClientMetric::Label& label : labels) {
    if (label.name == name) return label.value;
  }
  return "";
}

// EXPRESS executions the in-process cluster closed so far, by status
// (stepflow_executions_closed_total).
std::map<std::string, int64_t> ClosedExpressExecutions(const prometheus::Registry& registry) {
  return SumCounter(registry, "stepflow_executions_closed_total",
                    [](const auto& labels) -> std::optional<std::string> {
                      if (LabelValue(labels, "type") != "EXPRESS") return std::nullopt;
                      return LabelValue(labels, "status");
                    });
}

// Tasks the in-process cluster handed to workers so far, by how they met
// their poller (stepflow_activity_polls_total without its "empty" polls).
std::map<std::string, int64_t> ActivityHandOvers(const prometheus::Registry& registry) {
  return SumCounter(registry, "stepflow_activity_polls_total",
                    [](const auto& labels) -> std::optional<std::string> {
                      std::string result = LabelValue(labels, "result");
                      if (result.empty() || result == "empty") return std::nullopt;
                      return result;
                    });
}

// GET /metrics of `address` ("host:port"); the page without its headers.
absl::StatusOr<std::string> FetchMetrics(const std::string& address) {
  const size_t colon = address.rfind(':');
  if (colon == std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat("--metrics ", address, ": no port"));
  }
  const std::string host = address.substr(0, colon);
  const std::string port = address.substr(colon + 1);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (getaddrinfo(host.c_str(), port.c_str(), &hints, &found) != 0 || found == nullptr) {
    return absl::UnavailableError(absl::StrCat("cannot resolve ", address));
  }
  std::unique_ptr<addrinfo, decltype(&freeaddrinfo)> addresses(found, &freeaddrinfo);
  const int fd = socket(found->ai_family, found->ai_socktype, found->ai_protocol);
  if (fd < 0) return absl::UnavailableError("cannot open a socket");
  struct Closer {
    int fd;
    ~Closer() { close(fd); }
  } closer{fd};
  timeval timeout{.tv_sec = 10, .tv_usec = 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof(timeout));
  if (connect(fd, found->ai_addr, found->ai_addrlen) != 0) {
    return absl::UnavailableError(absl::StrCat("cannot connect to ", address));
  }
  const std::string request =
      absl::StrCat("GET /metrics HTTP/1.0\r\nHost: ", host, "\r\n\r\n");
  if (send(fd, request.data(), request.size(), MSG_NOSIGNAL) !=
      static_cast<ssize_t>(request.size())) {
    return absl::UnavailableError(absl::StrCat("cannot send to ", address));
  }
  std::string response;
  char buffer[16384];
  while (true) {
    const ssize_t got = recv(fd, buffer, sizeof(buffer), 0);
    if (got < 0) return absl::UnavailableError(absl::StrCat("cannot read from ", address));
    if (got == 0) break;
    response.append(buffer, static_cast<size_t>(got));
  }
  const size_t body = response.find("\r\n\r\n");
  if (!absl::StartsWith(response, "HTTP/1.") || body == std::string::npos ||
      response.find(" 200 ") > body) {
    return absl::UnavailableError(absl::StrCat("GET /metrics of ", address, " failed"));
  }
  return response.substr(body + 4);
}

// A temporary data folder, removed with this object.
class TemporaryFolder {
 public:
  TemporaryFolder() {
    absl::BitGen random;
    path_ = std::filesystem::temp_directory_path() /
            absl::StrFormat("stepflow-bench-%d-%08x", getpid(),
                            absl::Uniform<uint32_t>(random));
  }
  ~TemporaryFolder() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  TemporaryFolder(const TemporaryFolder&) = delete;
  TemporaryFolder& operator=(const TemporaryFolder&) = delete;
  std::string path() const { return path_.string(); }

 private:
  std::filesystem::path path_;
};

// UNAVAILABLE unless every channel connects within `timeout`.
absl::Status WaitConnected(
    const std::vector<std::shared_ptr<grpc::Channel>>& channels,
    const std::string& endpoint, absl::Duration timeout) {
  absl::Time deadline = absl::Now() + timeout;
  for (const auto& channel : channels) {
    if (!channel->WaitForConnected(absl::ToChronoTime(deadline))) {
      return absl::UnavailableError(
          absl::StrCat("cannot connect to ", endpoint, " within ",
                       absl::FormatDuration(timeout)));
    }
  }
  return absl::OkStatus();
}

// Turns SIGINT and SIGTERM into a flag the load checks, so that Ctrl-C ends
// the current phase early with a report, and the temporary cluster is still
// stopped and removed. Construct it before any thread starts: it blocks the
// signals in the threads started afterwards.
class InterruptWatcher {
 public:
  InterruptWatcher() {
    config::PrepareServerProcess();
    thread_ = std::thread([this] { Watch(); });
  }
  ~InterruptWatcher() {
    done_.store(true);
    thread_.join();
  }
  InterruptWatcher(const InterruptWatcher&) = delete;
  InterruptWatcher& operator=(const InterruptWatcher&) = delete;

  // Set by a signal; the owner may clear it to let the next phase run.
  std::atomic<bool>* interrupted() { return &interrupted_; }
  bool ever_interrupted() const { return ever_interrupted_.load(); }

 private:
  void Watch() {
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGTERM);
    // Wakes up now and then to notice the end of the run.
    const timespec tick{0, 100 * 1000 * 1000};
    while (!done_.load()) {
      if (sigtimedwait(&signals, nullptr, &tick) > 0) {
        interrupted_.store(true);
        ever_interrupted_.store(true);
      }
    }
  }

  std::atomic<bool> done_{false};
  std::atomic<bool> interrupted_{false};
  std::atomic<bool> ever_interrupted_{false};
  std::thread thread_;
};

// Resident memory of `pid` (0: this process) in MiB; 0 when unreadable.
double ResidentMiB(int pid) {
  std::ifstream statm(pid == 0 ? std::string("/proc/self/statm")
                               : absl::StrCat("/proc/", pid, "/statm"));
  uint64_t pages = 0, resident = 0;
  if (!(statm >> pages >> resident)) return 0;
  return static_cast<double>(resident) * static_cast<double>(sysconf(_SC_PAGESIZE)) /
         (1024.0 * 1024.0);
}

// Runs `phase` and adds to its result the CPU time and context switches
// process `pid` spent meanwhile, when `measure`.
PhaseResult MeasuredPhase(bool measure, int pid, const std::function<PhaseResult()>& phase) {
  if (!measure) return phase();
  const CpuReading before = ProcessCpu(pid);
  PhaseResult result = phase();
  const CpuReading after = ProcessCpu(pid);
  result.cpu = after.cpu - before.cpu;
  result.context_switches = after.context_switches - before.context_switches;
  return result;
}

// Samples resident memory every `interval` from construction until Stop:
// the first sample at once, the last at Stop.
// Samples a process's resident memory every `interval` of the scenario's
// time: paused while the ceiling runs between slices, so the samples show
// the scenario's memory only. The first sample is taken at once, the last
// by Stop() at the end of the scenario's last slice (a Stop() while paused,
// after a run cut short in a ceiling slice, adds none).
class RssSampler {
 public:
  RssSampler(int pid, absl::Duration interval)
      : pid_(pid), interval_(interval), next_due_(absl::Now() + interval) {
    samples_.push_back(ResidentMiB(pid_));
    thread_ = std::thread([this] {
      absl::MutexLock lock(&mu_);
      while (!stopping_) {
        if (paused_) {
          mu_.Await(absl::Condition(this, &RssSampler::StoppingOrRunning));
          continue;
        }
        if (!mu_.AwaitWithDeadline(absl::Condition(this, &RssSampler::StoppingOrPaused),
                                   next_due_)) {
          samples_.push_back(ResidentMiB(pid_));
          next_due_ += interval_;
        }
      }
    });
  }
  RssSampler(const RssSampler&) = delete;
  RssSampler& operator=(const RssSampler&) = delete;
  ~RssSampler() { Stop(); }

  void Pause() {
    absl::MutexLock lock(&mu_);
    if (paused_) return;
    paused_ = true;
    until_due_ = std::max(next_due_ - absl::Now(), absl::ZeroDuration());
  }
  void Resume() {
    absl::MutexLock lock(&mu_);
    if (!paused_) return;
    paused_ = false;
    next_due_ = absl::Now() + until_due_;
  }

  std::vector<double> Stop() {
    {
      absl::MutexLock lock(&mu_);
      if (stopping_) return samples_;
      stopping_ = true;
    }
    thread_.join();
    absl::MutexLock lock(&mu_);
    if (!paused_) samples_.push_back(ResidentMiB(pid_));
    return samples_;
  }

 private:
  bool StoppingOrPaused() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return stopping_ || paused_;
  }
  bool StoppingOrRunning() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return stopping_ || !paused_;
  }

  const int pid_;
  const absl::Duration interval_;
  absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool paused_ ABSL_GUARDED_BY(mu_) = false;
  absl::Time next_due_ ABSL_GUARDED_BY(mu_);
  absl::Duration until_due_ ABSL_GUARDED_BY(mu_);
  std::vector<double> samples_ ABSL_GUARDED_BY(mu_);
  std::thread thread_;
};

int PrintError(std::ostream& err, const absl::Status& status) {
  err << "error: " << absl::StatusCodeToString(status.code()) << ": "
      << status.message() << "\n";
  return 1;
}

}  // namespace

int RunBenchCommand(const std::vector<std::string>& args, std::ostream& out,
                    std::ostream& err) {
  absl::StatusOr<BenchOptions> parsed = ParseBenchArgs(args);
  if (!parsed.ok()) {
    err << "error: " << parsed.status().message() << "\n"
        << "Usage: stepflow bench [--scenario NAME] [-c N] [-n N | -z "
           "DURATION] [FLAGS]\n"
        << "Run `stepflow bench --help` for details.\n";
    return 2;
  }
  const BenchOptions& options = *parsed;
  if (options.help) {
    out << BenchHelp();
    return 0;
  }
  InterruptWatcher interrupts;
  ScenarioContext context;
  context.options = &options;
  context.definition = DefaultDefinition();
  context.input = DefaultInput();
  if (!options.definition_file.empty()) {
    absl::StatusOr<std::string> definition = ReadFile(options.definition_file);
    if (!definition.ok()) return PrintError(err, definition.status());
    context.definition = *definition;
  }
  if (!options.input_file.empty()) {
    absl::StatusOr<std::string> input = ReadFile(options.input_file);
    if (!input.ok()) return PrintError(err, input.status());
    context.input = *input;
  }

  BenchReport report;
  report.scenario = ScenarioName(options.scenario);
  report.concurrency = options.concurrency;
  report.connections = options.EffectiveConnections();
  report.rate_cap = options.rate;
  report.ceiling_rpc = kCeilingRpc;

  // The cluster, when there is no --endpoint. Declared before everything
  // that talks to it, so it stops last.
  std::optional<TemporaryFolder> folder;
  std::unique_ptr<dev::DevCluster> cluster;
  if (options.endpoint.empty()) {
    log::SetMinLevel(log::Level::kWarn);
    folder.emplace();
    dev::DevClusterOptions cluster_options;
    cluster_options.data_dir = folder->path();
    cluster_options.gateway_listen = "127.0.0.1:0";
    cluster_options.with_eventbus = options.scenario == ScenarioKind::kEvents;
    absl::StatusOr<std::unique_ptr<dev::DevCluster>> started =
        dev::DevCluster::Start(std::move(cluster_options));
    if (!started.ok()) {
      return PrintError(
          err,
          absl::Status(started.status().code(),
                       absl::StrCat("cannot start the in-process dev cluster: ",
                                    started.status().message())));
    }
    cluster = std::move(*started);
    context.endpoint = cluster->gateway_address();
    context.closed_express =
        [registry = &cluster->registry()]() -> absl::StatusOr<std::map<std::string, int64_t>> {
      return ClosedExpressExecutions(*registry);
    };
    context.activity_hand_overs = [registry = &cluster->registry()] {
      return ActivityHandOvers(*registry);
    };
    report.target =
        absl::StrCat("in-process dev cluster, gateway ", context.endpoint);
  } else {
    context.endpoint = options.endpoint;
    report.target = absl::StrCat("gateway ", context.endpoint);
    if (!options.metrics.empty()) {
      context.closed_express =
          [addresses = options.metrics]() -> absl::StatusOr<std::map<std::string, int64_t>> {
        std::map<std::string, int64_t> counts;
        for (const std::string& address : addresses) {
          absl::StatusOr<std::string> page = FetchMetrics(address);
          if (!page.ok()) return page.status();
          AddClosedExpress(*page, &counts);
        }
        return counts;
      };
    }
  }

  context.channels = MakeChannels(context.endpoint, report.connections);
  Scheduler scheduler;
  context.scheduler = &scheduler;
  absl::StatusOr<std::unique_ptr<Scenario>> scenario = MakeScenario(context);
  if (!scenario.ok()) return PrintError(err, scenario.status());

  // A failure to connect or to set up still gives a report, with that
  // failure as its one error, so scripts see every outcome in one shape.
  absl::Status set_up =
      WaitConnected(context.channels, context.endpoint,
                    std::min(kConnectTimeout, options.rpc_timeout));
  bool connected = set_up.ok();
  if (connected) set_up = (*scenario)->SetUp();

  LoadOptions load;
  load.concurrency = options.concurrency;
  load.total = options.total;
  load.duration = options.duration;
  load.rate = options.rate;
  load.stop = interrupts.interrupted();
  const int slices = options.EffectiveSlices();
  // The scenario and the ceiling take turns, slice by slice, so that a
  // drift in the machine's load (shared machines have them) weighs on both.
  // A Ctrl-C during a scenario slice ends it; the ceiling's then runs as
  // long, and the run ends there (a second Ctrl-C ends that too). One
  // during a ceiling slice ends that slice and the run.
  // The process whose memory and CPU are measured: the in-process
  // cluster's (this one), or --rss-pid's.
  const bool measure_process = cluster != nullptr || options.rss_pid > 0;
  auto run_ceiling = [&](absl::Duration length) {
    LoadOptions ceiling = load;
    ceiling.total = 0;
    ceiling.rate = 0;
    ceiling.duration = length;
    report.ceiling.Add(MeasuredPhase(measure_process, options.rss_pid, [&] {
      return RunLoad(ceiling, &scheduler, [&](int slot) {
        return MakeHealthCheckOperation(
            context.channels[static_cast<size_t>(slot) % context.channels.size()],
            options.rpc_timeout);
      });
    }));
  };
  if (set_up.ok()) {
    std::optional<RssSampler> rss;
    if (measure_process) {
      rss.emplace(options.rss_pid, options.rss_interval);
      report.rss_of = options.rss_pid > 0 ? absl::StrCat("process ", options.rss_pid)
                                          : "this process: driver and in-process cluster";
      report.cpu_of = report.rss_of;
    }
    const absl::Duration slice_length = load.duration / slices;
    report.slices = 0;
    for (int slice = 0; slice < slices; ++slice) {
      ++report.slices;
      if (rss.has_value()) rss->Resume();
      LoadOptions part = load;
      if (slices > 1) {
        // The last slice takes what rounding left over.
        part.duration = slice + 1 < slices ? slice_length
                                           : load.duration - slice_length * (slices - 1);
      }
      PhaseResult measured = MeasuredPhase(measure_process, options.rss_pid, [&] {
        return RunLoad(part, &scheduler,
                       [&](int slot) { return (*scenario)->MakeOperation(slot); });
      });
      const absl::Duration measured_for = measured.elapsed;
      report.run.Add(measured);
      (*scenario)->Settle();
      const bool interrupted = interrupts.interrupted()->exchange(false);
      const bool last = slice + 1 == slices || interrupted;
      if (rss.has_value()) {
        if (last) {
          report.rss_mb = rss->Stop();
        } else {
          rss->Pause();
        }
      }
      // Slices after the first are as long as the scenario's; a single one
      // at least kMinCeilingDuration, for a steady figure after a short -n.
      run_ceiling(slices > 1 ? measured_for : std::max(measured_for, kMinCeilingDuration));
      if (last || interrupts.interrupted()->exchange(false)) break;
    }
    if (rss.has_value() && report.rss_mb.empty()) report.rss_mb = rss->Stop();
    (*scenario)->Finish(&report);
  } else {
    report.run.errors.Add(absl::StatusCodeToString(set_up.code()),
                          std::string(set_up.message()));
    if (connected) run_ceiling(kMinCeilingDuration);
  }
  report.interrupted = interrupts.ever_interrupted();
  if (connected) (*scenario)->TearDown();
  scenario->reset();
  if (cluster) cluster->Shutdown();

  out << (options.output == Output::kJson ? RenderJson(report)
                                          : RenderText(report));
  out.flush();
  if (!set_up.ok()) {
    PrintError(err, set_up);
    if (!connected && !options.endpoint.empty()) {
      err << "hint: is a Stepflow gateway listening there? (without "
             "--endpoint the bench starts its own cluster)\n";
    }
    return 1;
  }
  int64_t failures =
      report.run.errors.Total() - report.run.errors.Count("RESOURCE_EXHAUSTED");
  // Operations refused RESOURCE_EXHAUSTED too often are missing from -n.
  bool short_of_total =
      options.total > 0 && report.run.completed < options.total;
  if (failures > 0 || report.run.completed == 0 || short_of_total) return 1;
  return 0;
}

}  // namespace stepflow::cli::bench
