// stepflow-worker: serves an activity by running a command per task, so a
// worker can be written in any language. See kUsage below.
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <ctime>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/config/arn.h"
#include "common/log/log.h"
#include "common/metrics/metrics.h"
#include "prometheus/registry.h"
#include "services/worker/command_handler.h"
#include "services/worker/command_runner.h"
#include "services/worker/worker.h"

namespace stepflow::worker {
namespace {

constexpr char kComponent[] = "worker";

constexpr char kUsage[] =
    R"(Usage: stepflow-worker --endpoint HOST:PORT --activity NAME_OR_ARN [FLAGS] -- COMMAND [ARGS...]

Serves a Stepflow activity by running COMMAND once per task: it receives
tasks from the StepFunctions service (pushed over StreamActivityTasks, never
more than it has free slots for; or long-polled with GetActivityTask), runs
COMMAND with the task input (JSON) on stdin and reports the result.

  - COMMAND exits 0: its stdout, without trailing whitespace, is the task
    output (SendTaskSuccess). It must be valid JSON; otherwise the task fails
    with error "InvalidOutput" and a cause saying what is wrong.
  - COMMAND exits non-zero or is killed: the task fails (SendTaskFailure). If
    stdout is a JSON object with string fields "error" and/or "cause", they
    are used, e.g. {"error": "CardDeclined", "cause": "insufficient funds"};
    otherwise the error is "ProcessExited" ("ProcessKilled" after a signal)
    and the cause "exit code N: <last 1 KiB of stderr>".
  - COMMAND cannot be started: the task fails with "ProcessStartFailed".

COMMAND is run directly (no shell; looked up in PATH), in its own process
group, with the worker's environment and working directory; its stderr is
captured, not shown. Use `-- /bin/sh -c '...'` for shell syntax.

Flags:
  --endpoint HOST:PORT     StepFunctions gRPC endpoint (gateway). Required.
  --activity NAME_OR_ARN   Activity to serve: a full activity ARN, or a name
                           that becomes
                           arn:aws:states:REGION:ACCOUNT:activity:NAME.
                           Required.
  --region REGION          Region of the ARN built from a name.
                           Default: us-east-1.
  --account ACCOUNT        Account id of the ARN built from a name.
                           Default: 123456789012.
  --concurrency N          Tasks run at once. Default: 1.
  --delivery stream|poll   How tasks arrive: a stream with credits, which
                           also carries the results back (falls back to
                           polling if the service cannot stream), or one
                           GetActivityTask long poll per slot, with results
                           sent as SendTaskSuccess / SendTaskFailure calls.
                           Default: stream.
  --worker-name NAME       Name recorded in the ActivityStarted history
                           event. Default: HOSTNAME-PID.
  --heartbeat-seconds S    Send SendTaskHeartbeat every S seconds (fractions
                           allowed) while COMMAND runs; 0 sends none. If the
                           service answers that the task no longer exists
                           (it timed out), COMMAND is killed. Default: 0.
  --poll-timeout-seconds S How long one GetActivityTask may wait for a task
                           (--delivery poll).
                           Default: 60.
  --stop-timeout-seconds S After SIGINT/SIGTERM, how long to wait for running
                           commands before killing them; 0 waits for as long
                           as they run. Default: 0.
  --metrics-port P         Serve Prometheus metrics at
                           http://0.0.0.0:P/metrics (stepflow_worker_*);
                           0 picks a free port and logs it. Default: off.
  --log-level L            debug, info, warn or error. Default: info.
  --log-format F           text or json (logs go to stderr). Default: text.
  -h, --help               Show this help and exit.

Flags take their value as the next argument or after '=' (--concurrency=4).

Signals: SIGINT or SIGTERM stops gracefully: no more polling, running
commands finish and their results are reported, then the worker exits 0.
A second SIGINT/SIGTERM (or the stop timeout) kills the running commands:
SIGTERM to each command's process group, SIGKILL 5 s later; their tasks fail
with "ProcessKilled".

Exit status: 0 after a stop, 1 if the worker cannot start, 2 on bad usage.

Example:
  stepflow-worker --endpoint localhost:7233 --activity resize-image \
      --concurrency 4 --heartbeat-seconds 10 -- python3 resize.py
)";

struct Flags {
  std::string endpoint;
  std::string activity;
  std::string region = "us-east-1";
  std::string account = "123456789012";
  int concurrency = 1;
  worker::Delivery delivery = worker::Delivery::kStream;
  std::string worker_name;
  double heartbeat_seconds = 0;
  double poll_timeout_seconds = 60;
  double stop_timeout_seconds = 0;
  int metrics_port = -1;
  std::string log_level = "info";
  std::string log_format = "text";
  bool help = false;
  std::vector<std::string> command;
};

absl::Status ParseNonNegative(const std::string& flag, const std::string& text,
                              double* out) {
  if (!absl::SimpleAtod(text, out) || !(*out >= 0) || *out > 1e9) {
    return absl::InvalidArgumentError(absl::StrCat(
        flag, ": expected a non-negative number of seconds, got '", text, "'"));
  }
  return absl::OkStatus();
}

absl::StatusOr<Flags> ParseFlags(int argc, char** argv) {
  Flags flags;
  int i = 1;
  for (; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--") {
      ++i;
      break;
    }
    if (arg == "-h" || arg == "--help") {
      flags.help = true;
      return flags;
    }
    if (!absl::StartsWith(arg, "--")) {
      return absl::InvalidArgumentError(absl::StrCat(
          "unexpected argument '", arg,
          "'; put the command after '--': ... -- COMMAND [ARGS...]"));
    }
    std::string name = arg;
    std::string value;
    bool has_value = false;
    if (size_t eq = arg.find('='); eq != std::string::npos) {
      name = arg.substr(0, eq);
      value = arg.substr(eq + 1);
      has_value = true;
    }
    static const char* const kKnown[] = {"--endpoint",
                                         "--activity",
                                         "--region",
                                         "--account",
                                         "--concurrency",
                                         "--delivery",
                                         "--worker-name",
                                         "--heartbeat-seconds",
                                         "--poll-timeout-seconds",
                                         "--stop-timeout-seconds",
                                         "--metrics-port",
                                         "--log-level",
                                         "--log-format"};
    bool known = false;
    for (const char* k : kKnown) known = known || name == k;
    if (!known) {
      return absl::InvalidArgumentError(
          absl::StrCat("unknown flag '", name, "'"));
    }
    if (!has_value) {
      if (i + 1 >= argc) {
        return absl::InvalidArgumentError(absl::StrCat(name, " needs a value"));
      }
      value = argv[++i];
    }
    if (name == "--endpoint") {
      flags.endpoint = value;
    } else if (name == "--activity") {
      flags.activity = value;
    } else if (name == "--region") {
      flags.region = value;
    } else if (name == "--account") {
      flags.account = value;
    } else if (name == "--worker-name") {
      flags.worker_name = value;
    } else if (name == "--log-level") {
      flags.log_level = value;
    } else if (name == "--log-format") {
      flags.log_format = value;
    } else if (name == "--concurrency") {
      if (!absl::SimpleAtoi(value, &flags.concurrency) ||
          flags.concurrency < 1 || flags.concurrency > 1024) {
        return absl::InvalidArgumentError(absl::StrCat(
            "--concurrency: expected an integer from 1 to 1024, got '", value,
            "'"));
      }
    } else if (name == "--delivery") {
      if (value == "stream") {
        flags.delivery = worker::Delivery::kStream;
      } else if (value == "poll") {
        flags.delivery = worker::Delivery::kPoll;
      } else {
        return absl::InvalidArgumentError(
            absl::StrCat("--delivery: expected 'stream' or 'poll', got '", value, "'"));
      }
    } else if (name == "--metrics-port") {
      if (!absl::SimpleAtoi(value, &flags.metrics_port) ||
          flags.metrics_port < 0 || flags.metrics_port > 65535) {
        return absl::InvalidArgumentError(absl::StrCat(
            "--metrics-port: expected a port from 0 to 65535, got '", value,
            "'"));
      }
    } else if (name == "--heartbeat-seconds") {
      absl::Status s = ParseNonNegative(name, value, &flags.heartbeat_seconds);
      if (!s.ok()) return s;
    } else if (name == "--poll-timeout-seconds") {
      absl::Status s =
          ParseNonNegative(name, value, &flags.poll_timeout_seconds);
      if (!s.ok()) return s;
      if (flags.poll_timeout_seconds <= 0) {
        return absl::InvalidArgumentError(
            "--poll-timeout-seconds must be positive");
      }
    } else if (name == "--stop-timeout-seconds") {
      absl::Status s =
          ParseNonNegative(name, value, &flags.stop_timeout_seconds);
      if (!s.ok()) return s;
    }
  }
  for (; i < argc; ++i) flags.command.push_back(argv[i]);

  if (flags.endpoint.empty()) {
    return absl::InvalidArgumentError("--endpoint is required");
  }
  if (flags.activity.empty()) {
    return absl::InvalidArgumentError("--activity is required");
  }
  if (flags.command.empty()) {
    return absl::InvalidArgumentError(
        "no command; give it after '--': ... -- COMMAND [ARGS...]");
  }
  return flags;
}

absl::StatusOr<std::string> ActivityArn(const Flags& flags) {
  if (absl::StartsWith(flags.activity, "arn:")) {
    absl::StatusOr<config::ParsedArn> parsed = config::ParseArn(flags.activity);
    if (!parsed.ok()) return parsed.status();
    if (parsed->resource_type != "activity") {
      return absl::InvalidArgumentError(absl::StrCat(
          "--activity: '", flags.activity, "' is not an activity ARN"));
    }
    return flags.activity;
  }
  absl::Status valid = config::ValidateResourceName(flags.activity);
  if (!valid.ok()) return valid;
  config::ArnScope scope;
  scope.region = flags.region;
  scope.account = flags.account;
  return config::ActivityArn(scope, flags.activity);
}

std::string DefaultWorkerName() {
  char host[256] = {};
  if (gethostname(host, sizeof(host) - 1) != 0 || host[0] == '\0') {
    return absl::StrCat("worker-", getpid());
  }
  return absl::StrCat(host, "-", getpid());
}

int Usage(const absl::Status& error) {
  std::fprintf(stderr,
               "stepflow-worker: %s\nRun 'stepflow-worker --help' for usage.\n",
               std::string(error.message()).c_str());
  return 2;
}

int Main(int argc, char** argv) {
  // Signals are taken synchronously by sigwait on this thread: block them
  // before any other thread exists so that every thread inherits the mask.
  // SIGUSR1 is our own "stop finished" wake-up.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGUSR1);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  absl::StatusOr<Flags> parsed = ParseFlags(argc, argv);
  if (!parsed.ok()) return Usage(parsed.status());
  const Flags& flags = *parsed;
  if (flags.help) {
    std::fputs(kUsage, stdout);
    return 0;
  }
  absl::StatusOr<log::Level> level = log::ParseLevel(flags.log_level);
  if (!level.ok()) return Usage(level.status());
  absl::StatusOr<log::Format> format = log::ParseFormat(flags.log_format);
  if (!format.ok()) return Usage(format.status());
  log::SetMinLevel(*level);
  log::SetFormat(*format);
  absl::StatusOr<std::string> activity_arn = ActivityArn(flags);
  if (!activity_arn.ok()) return Usage(activity_arn.status());
  if (!IsRunnable(flags.command[0])) {
    return Usage(absl::NotFoundError(
        absl::StrCat("command '", flags.command[0],
                     "' is not an executable file (nor found in PATH)")));
  }

  std::shared_ptr<prometheus::Registry> registry;
  std::unique_ptr<metrics::MetricsServer> metrics_server;
  if (flags.metrics_port >= 0) {
    registry = std::make_shared<prometheus::Registry>();
    absl::StatusOr<std::unique_ptr<metrics::MetricsServer>> started =
        metrics::MetricsServer::Start(
            absl::StrCat("0.0.0.0:", flags.metrics_port), registry);
    if (!started.ok()) {
      log::Error(kComponent, "cannot serve metrics",
                 {{"error", started.status()}});
      return 1;
    }
    metrics_server = std::move(*started);
    log::Info(kComponent, "serving metrics",
              {{"port", metrics_server->port()}});
  }

  CommandRunner runner(flags.command);
  WorkerOptions options;
  options.endpoint = flags.endpoint;
  options.activity_arn = *activity_arn;
  options.worker_name =
      flags.worker_name.empty() ? DefaultWorkerName() : flags.worker_name;
  options.concurrency = flags.concurrency;
  options.delivery = flags.delivery;
  options.poll_timeout = absl::Seconds(flags.poll_timeout_seconds);
  options.heartbeat_interval = absl::Seconds(flags.heartbeat_seconds);
  Worker worker(options, MakeCommandHandler(&runner), nullptr, registry);
  if (absl::Status started = worker.Start(); !started.ok()) {
    log::Error(kComponent, "cannot start", {{"error", started}});
    return 1;
  }
  log::Info(kComponent, "serving activity",
            {{"endpoint", flags.endpoint},
             {"activity", *activity_arn},
             {"command", flags.command[0]}});

  int signal_number = 0;
  do {
    sigwait(&signals, &signal_number);
  } while (signal_number == SIGUSR1);  // Not ours yet: nothing is stopping.
  log::Info(kComponent,
            "signal received; stopping after the running commands finish "
            "(signal again to kill them)",
            {{"signal", signal_number}});

  std::atomic<bool> stopped{false};
  const pthread_t main_thread = pthread_self();
  std::thread stopper([&] {
    worker.Stop();
    stopped.store(true);
    pthread_kill(main_thread, SIGUSR1);
  });
  absl::Time kill_at =
      flags.stop_timeout_seconds > 0
          ? absl::Now() + absl::Seconds(flags.stop_timeout_seconds)
          : absl::InfiniteFuture();
  while (!stopped.load()) {
    int got;
    if (kill_at == absl::InfiniteFuture()) {
      if (sigwait(&signals, &got) != 0) continue;
    } else {
      timespec timeout = absl::ToTimespec(
          std::max(kill_at - absl::Now(), absl::ZeroDuration()));
      got = sigtimedwait(&signals, nullptr, &timeout);
      if (got < 0 && errno == EINTR) continue;
    }
    if (got == SIGUSR1) continue;  // The loop condition decides.
    if (got < 0) {
      log::Warn(kComponent, "stop timeout reached; killing running commands");
    } else {
      log::Warn(kComponent, "second signal; killing running commands",
                {{"signal", got}});
    }
    runner.KillAll();
    kill_at = absl::InfiniteFuture();
  }
  stopper.join();
  WorkerStats stats = worker.stats();
  log::Info(kComponent, "exiting",
            {{"tasks_received", stats.tasks_received},
             {"tasks_succeeded", stats.tasks_succeeded},
             {"tasks_failed", stats.tasks_failed}});
  return 0;
}

}  // namespace
}  // namespace stepflow::worker

int main(int argc, char** argv) { return stepflow::worker::Main(argc, argv); }
