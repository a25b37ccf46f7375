#include "tools/cli/bench_options.h"

#include <algorithm>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "tools/cli/args.h"

namespace stepflow::cli::bench {
namespace {

const std::vector<FlagSpec>& BenchFlags() {
  static const auto* const kFlags = new std::vector<FlagSpec>{
      {.name = "scenario",
       .value_name = "NAME",
       .help = "What one operation is (default express-async):\n"
               "express-async  StartExecution on an EXPRESS machine, done\n"
               "               when accepted; the executions' ends are\n"
               "               counted after the load (ended, ended_per_sec)\n"
               "express-sync   StartSyncExecution on an EXPRESS machine\n"
               "standard       StartExecution on a STANDARD machine,\n"
               "               done when SUCCEEDED is observed\n"
               "activities     a one-Task STANDARD workflow on an activity\n"
               "               served by -c in-process workers, done when\n"
               "               the task's result is answered\n"
               "events         PutEvents -> rule -> EXPRESS execution",
       .choices = {"express-async", "express-sync", "standard", "activities",
                   "events"}},
      {.name = "concurrency",
       .kind = FlagKind::kInt,
       .value_name = "N",
       .help = "Operations in flight at once (default 16).",
       .short_name = 'c'},
      {.name = "total",
       .kind = FlagKind::kInt,
       .value_name = "N",
       .help = "Stop after N operations.",
       .short_name = 'n'},
      {.name = "duration",
       .value_name = "DURATION",
       .help = "Stop after this long, e.g. 10s, 500ms, 2m\n"
               "(default 10s when -n is not given either).",
       .short_name = 'z'},
      {.name = "rate",
       .value_name = "OPS",
       .help = "Cap on operation starts per second (0: none).",
       .short_name = 'q'},
      {.name = "format",
       .value_name = "FORMAT",
       .help = "text (default) or json: one JSON object.",
       .choices = {"text", "json"},
       .short_name = 'O'},
      {.name = "endpoint",
       .value_name = "HOST:PORT",
       .help = "Gateway to load. Without it a throw-away\n"
               "in-process dev cluster is started on a\n"
               "temporary data folder and removed after."},
      {.name = "definition",
       .value_name = "FILE",
       .help = "ASL definition of the workflow to run\n"
               "(default: a 5-state Pass/Choice workflow;\n"
               "not used by activities)."},
      {.name = "input",
       .value_name = "FILE",
       .help = "Execution input, JSON (default: 1 KiB object)."},
      {.name = "delivery",
       .value_name = "MODE",
       .help = "activities: how workers get tasks: poll\n"
               "(the worker SDK's GetActivityTask long\n"
               "polls; default) or stream\n"
               "(StreamActivityTasks with -c credits).",
       .choices = {"poll", "stream"}},
      {.name = "workflow-type",
       .value_name = "TYPE",
       .help = "activities: the one-Task workflow's type:\n"
               "STANDARD (default: a synced write per\n"
               "transition) or EXPRESS (tasks kept in\n"
               "memory, only the start record synced).",
       .choices = {"STANDARD", "EXPRESS"}},
      {.name = "task-timeout",
       .kind = FlagKind::kInt,
       .value_name = "SECONDS",
       .help = "activities: the Task state's TimeoutSeconds\n"
               "(default 300): every round trip arms and,\n"
               "when its task is answered, deletes that timer."},
      {.name = "tasks",
       .kind = FlagKind::kInt,
       .value_name = "N",
       .help = "activities: tasks per execution, run one\n"
               "after the other (default 1). An operation\n"
               "is then one execution of N round trips;\n"
               "the report adds round trips per second,\n"
               "their ratio and CPU per round trip."},
      {.name = "connections",
       .kind = FlagKind::kInt,
       .value_name = "N",
       .help = "gRPC channels to spread the load over\n"
               "(default one per 16 slots, at most 8)."},
      {.name = "slices",
       .kind = FlagKind::kInt,
       .value_name = "N",
       .help = "Run the scenario and the ceiling in N\n"
               "alternating slices of -z/N each, so both see\n"
               "the same machine (default: one per 2 s of -z,\n"
               "at most 10; 1: the scenario, then the\n"
               "ceiling). Between slices the driver waits for\n"
               "executions still running. Not with -n."},
      {.name = "timeout",
       .kind = FlagKind::kNumber,
       .value_name = "SECONDS",
       .help = "Deadline of each RPC (default 30)."},
      {.name = "rss-interval",
       .value_name = "DURATION",
       .help = "How often resident memory is sampled in the\n"
               "scenario's time (default 10s; not in the\n"
               "ceiling's slices): this process's\n"
               "with the in-process cluster, else --rss-pid's.\n"
               "Reported as rss_mb (first, last, max, samples)."},
      {.name = "rss-pid",
       .kind = FlagKind::kInt,
       .value_name = "PID",
       .help = "With --endpoint: a local process whose memory\n"
               "and CPU to measure (e.g. the stepflow dev or\n"
               "shard server)."},
      {.name = "metrics",
       .value_name = "HOST:PORT,...",
       .help = "With --endpoint: the shard servers' /metrics\n"
               "addresses; EXPRESS ends are counted from their\n"
               "stepflow_executions_closed_total (without it,\n"
               "by ListExecutions, which finds only the\n"
               "EXPRESS executions the servers remember)."},
      {.name = "help",
       .kind = FlagKind::kBool,
       .help = "Show this help and exit.",
       .short_name = 'h'},
  };
  return *kFlags;
}

ScenarioKind ScenarioFromName(absl::string_view name) {
  if (name == "express-sync") return ScenarioKind::kExpressSync;
  if (name == "standard") return ScenarioKind::kStandard;
  if (name == "activities") return ScenarioKind::kActivities;
  if (name == "events") return ScenarioKind::kEvents;
  return ScenarioKind::kExpressAsync;
}

}  // namespace

std::string ScenarioName(ScenarioKind scenario) {
  switch (scenario) {
    case ScenarioKind::kExpressAsync:
      return "express-async";
    case ScenarioKind::kExpressSync:
      return "express-sync";
    case ScenarioKind::kStandard:
      return "standard";
    case ScenarioKind::kActivities:
      return "activities";
    case ScenarioKind::kEvents:
      return "events";
  }
  return "express-async";
}

int BenchOptions::EffectiveConnections() const {
  if (connections > 0) return connections;
  return std::clamp((concurrency + 15) / 16, 1, 8);
}

int BenchOptions::EffectiveSlices() const {
  if (total > 0 || duration <= absl::ZeroDuration()) return 1;
  if (slices > 0) return slices;
  absl::Duration remainder;
  return static_cast<int>(std::clamp<int64_t>(
      absl::IDivDuration(duration, kSliceLength, &remainder), 1, kMaxAutoSlices));
}

absl::StatusOr<absl::Duration> ParseBenchDuration(absl::string_view text) {
  struct Unit {
    absl::string_view suffix;
    absl::Duration unit;
  };
  // Longest suffixes first so "ms" is not read as "s".
  static constexpr Unit kUnits[] = {{"ms", absl::Milliseconds(1)},
                                    {"us", absl::Microseconds(1)},
                                    {"s", absl::Seconds(1)},
                                    {"m", absl::Minutes(1)},
                                    {"h", absl::Hours(1)}};
  absl::string_view number = text;
  absl::Duration unit = absl::Seconds(1);
  for (const Unit& candidate : kUnits) {
    if (absl::EndsWith(text, candidate.suffix)) {
      number = text.substr(0, text.size() - candidate.suffix.size());
      unit = candidate.unit;
      break;
    }
  }
  double value = 0;
  if (number.empty() || !absl::SimpleAtod(number, &value) || !(value > 0) ||
      value > 1e9) {
    return absl::InvalidArgumentError(absl::StrCat(
        "bad duration '", text, "' (expected e.g. 10s, 500ms, 2m)"));
  }
  return unit * value;
}

absl::StatusOr<BenchOptions> ParseBenchArgs(
    const std::vector<std::string>& args) {
  absl::StatusOr<ParsedArgs> parsed = ParseArgs(args, BenchFlags());
  if (!parsed.ok()) return parsed.status();
  if (!parsed->positionals.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "unexpected argument '", parsed->positionals.front(), "'"));
  }
  BenchOptions options;
  options.help = parsed->IsSet("help");
  options.scenario = ScenarioFromName(parsed->Get("scenario", "express-async"));
  options.concurrency = static_cast<int>(
      std::min<int64_t>(parsed->GetInt("concurrency", 16), 100000));
  options.total = parsed->GetInt("total", 0);
  if (parsed->Has("duration")) {
    absl::StatusOr<absl::Duration> duration =
        ParseBenchDuration(parsed->Get("duration"));
    if (!duration.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("flag --duration (-z): ", duration.status().message()));
    }
    options.duration = *duration;
  }
  if (options.total == 0 && options.duration == absl::ZeroDuration()) {
    options.duration = kDefaultDuration;
  }
  if (parsed->Has("rate")) {
    std::string rate = parsed->Get("rate");
    if (!absl::SimpleAtod(rate, &options.rate) || !(options.rate >= 0)) {
      return absl::InvalidArgumentError(
          absl::StrCat("flag --rate (-q) needs a number of operations per "
                       "second (0: no cap), got '",
                       rate, "'"));
    }
  }
  options.output =
      parsed->Get("format", "text") == "json" ? Output::kJson : Output::kText;
  options.endpoint = parsed->Get("endpoint");
  if (parsed->Has("endpoint") && options.endpoint.empty()) {
    return absl::InvalidArgumentError("flag --endpoint needs HOST:PORT");
  }
  options.definition_file = parsed->Get("definition");
  options.input_file = parsed->Get("input");
  options.delivery = parsed->Get("delivery", "poll") == "stream"
                         ? Delivery::kStream
                         : Delivery::kPoll;
  options.workflow_type = parsed->Get("workflow-type", "STANDARD");
  options.task_timeout_seconds = parsed->GetInt("task-timeout", 300);
  if (options.task_timeout_seconds < 1 || options.task_timeout_seconds > 99999999) {
    return absl::InvalidArgumentError(
        "flag --task-timeout needs whole seconds from 1 to 99999999 (ASL's TimeoutSeconds)");
  }
  if (parsed->Has("task-timeout") && options.scenario != ScenarioKind::kActivities) {
    return absl::InvalidArgumentError("flag --task-timeout applies to --scenario activities only");
  }
  const int64_t tasks = parsed->GetInt("tasks", 1);
  if (tasks < 1 || tasks > 10000) {
    return absl::InvalidArgumentError("flag --tasks needs a count from 1 to 10000");
  }
  options.tasks_per_execution = static_cast<int>(tasks);
  if (parsed->Has("tasks") && options.scenario != ScenarioKind::kActivities) {
    return absl::InvalidArgumentError("flag --tasks applies to --scenario activities only");
  }
  options.connections = static_cast<int>(
      std::min<int64_t>(parsed->GetInt("connections", 0), 256));
  options.slices = static_cast<int>(std::min<int64_t>(parsed->GetInt("slices", 0), 1000));
  if (parsed->Has("slices")) {
    if (options.slices < 1) {
      return absl::InvalidArgumentError("flag --slices needs a count of 1 or more");
    }
    if (options.total > 0 && options.slices > 1) {
      return absl::InvalidArgumentError(
          "flag --slices applies to timed runs (-z) only: a run of -n operations "
          "measures the scenario, then the ceiling");
    }
  }
  options.rpc_timeout = absl::Seconds(parsed->GetNumber("timeout", 30));
  if (parsed->Has("rss-interval")) {
    absl::StatusOr<absl::Duration> interval = ParseBenchDuration(parsed->Get("rss-interval"));
    if (!interval.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("flag --rss-interval: ", interval.status().message()));
    }
    options.rss_interval = *interval;
  }
  if (parsed->Has("metrics")) {
    if (options.endpoint.empty()) {
      return absl::InvalidArgumentError("flag --metrics applies with --endpoint only");
    }
    options.metrics = absl::StrSplit(parsed->Get("metrics"), ',', absl::SkipEmpty());
    if (options.metrics.empty()) {
      return absl::InvalidArgumentError("flag --metrics needs HOST:PORT");
    }
  }
  options.rss_pid = static_cast<int>(parsed->GetInt("rss-pid", 0));
  if (options.rss_pid < 0) {
    return absl::InvalidArgumentError("flag --rss-pid needs a process id");
  }
  if (options.delivery == Delivery::kStream &&
      options.scenario != ScenarioKind::kActivities) {
    return absl::InvalidArgumentError(
        "flag --delivery applies to --scenario activities only");
  }
  if (parsed->Has("workflow-type") && options.scenario != ScenarioKind::kActivities) {
    return absl::InvalidArgumentError(
        "flag --workflow-type applies to --scenario activities only (the other "
        "scenarios' workflow type is in their name)");
  }
  if (!options.definition_file.empty() &&
      options.scenario == ScenarioKind::kActivities) {
    return absl::InvalidArgumentError(
        "--definition does not apply to --scenario activities (its workflow is "
        "one Task state on "
        "the activity the driver creates)");
  }
  return options;
}

std::string BenchHelp() {
  return absl::StrCat(
      "Usage: stepflow bench [--scenario NAME] [-c N] [-n N | -z DURATION] [-q "
      "OPS]\n"
      "                      [-O text|json] [--endpoint HOST:PORT] [FLAGS]\n\n"
      "Stepflow's load driver. Runs one scenario closed-loop with -c "
      "operations in\n"
      "flight and, against the same gateway, at the same concurrency and for "
      "the\n"
      "same time, a no-op unary RPC (grpc.health.v1.Health/Check): the "
      "ceiling. The\n"
      "two take turns in slices of about 2 s (--slices), so that a drift in "
      "the\n"
      "machine's load weighs on both alike. Every figure is printed with its "
      "ratio\n"
      "to the ceiling's; `ratio` = completed operations per second / ceiling "
      "calls\n"
      "per second, i.e. the share of the gateway's bare RPC rate that the "
      "scenario\n"
      "achieves.\n\n"
      "The driver creates the state machine, activity, bus and rule it needs "
      "under\n"
      "unique names (bench-...), and deletes them at the end. "
      "RESOURCE_EXHAUSTED\n"
      "answers are retried after an exponential backoff with jitter and "
      "counted.\n"
      "Errors are counted by gRPC code; executions that end otherwise than "
      "expected\n"
      "by their status (FAILED, TIMED_OUT, ABORTED). Ctrl-C ends the scenario\n"
      "early; the ceiling then runs as long and the report still comes out.\n\n"
      "Flags:\n",
      FormatFlagHelp(BenchFlags()),
      "\nOutput: text (default), or with -O json exactly one JSON object:\n"
      "  {\"scenario\", \"concurrency\", \"completed\", "
      "\"completed_per_sec\",\n"
      "   \"ceiling_per_sec\", \"ratio\", \"latency_ms\": {\"p50\", \"p90\", "
      "\"p99\", \"max\"},\n"
      "   \"errors\": {\"<code>\": count}, ...extra keys}\n"
      "With the in-process cluster or --rss-pid, \"cpu_per_op\" gives that "
      "process's\n"
      "CPU time per operation and per ceiling call (\"scenario_us\", "
      "\"ceiling_us\",\n"
      "\"ratio\" = ceiling over scenario) and context switches of each.\n"
      "Exit status: 0 when every operation completed; 1 when any failed (the "
      "report\n"
      "is printed all the same) or the run could not be set up; 2 bad "
      "usage.\n");
}

}  // namespace stepflow::cli::bench
