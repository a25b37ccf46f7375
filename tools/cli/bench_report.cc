#include "tools/cli/bench_report.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/json/json.h"

namespace stepflow::cli::bench {
namespace {

double Milliseconds(absl::Duration duration) {
  return absl::ToDoubleMilliseconds(duration);
}

// Rounded to 4 significant decimals so the JSON stays readable.
double Round(double value, double scale = 1e4) {
  if (!std::isfinite(value)) return 0;
  return std::round(value * scale) / scale;
}

json::Value LatencyObject(const LatencySummary& latency,
                          json::Allocator& allocator) {
  json::Value object(rapidjson::kObjectType);
  object.AddMember("p50", Round(Milliseconds(latency.p50)), allocator);
  object.AddMember("p90", Round(Milliseconds(latency.p90)), allocator);
  object.AddMember("p99", Round(Milliseconds(latency.p99)), allocator);
  object.AddMember("max", Round(Milliseconds(latency.max)), allocator);
  return object;
}

json::Value CountsObject(const std::map<std::string, int64_t>& counts,
                         json::Allocator& allocator) {
  json::Value object(rapidjson::kObjectType);
  for (const auto& [key, count] : counts) {
    object.AddMember(json::Value(key.c_str(), allocator), json::Value(count),
                     allocator);
  }
  return object;
}

json::Value StringsObject(const std::map<std::string, std::string>& strings,
                          json::Allocator& allocator) {
  json::Value object(rapidjson::kObjectType);
  for (const auto& [key, text] : strings) {
    object.AddMember(json::Value(key.c_str(), allocator),
                     json::Value(text.c_str(), allocator), allocator);
  }
  return object;
}

// `value` / `base`, 0 when the base is 0.
double RatioOf(double value, double base) {
  return base > 0 ? value / base : 0;
}

// A phase's CPU time and context switches per operation.
struct PerOperation {
  double cpu_us = 0;
  double context_switches = 0;
};
PerOperation PerOperationOf(const PhaseResult& phase) {
  const double count = static_cast<double>(phase.completed);
  return {absl::ToDoubleMicroseconds(*phase.cpu) / count,
          static_cast<double>(phase.context_switches) / count};
}
// Whether both phases were measured and did something.
bool HasCpuPerOperation(const BenchReport& report) {
  return report.run.cpu.has_value() && report.ceiling.cpu.has_value() &&
         report.run.completed > 0 && report.ceiling.completed > 0;
}

// The scenario's figures per round trip, when an operation is several
// (BenchReport::round_trips_per_operation).
struct PerRoundTrip {
  int64_t completed = 0;
  double per_sec = 0;
  double ratio = 0;
  std::optional<PerOperation> cpu;  // when HasCpuPerOperation
};
PerRoundTrip PerRoundTripOf(const BenchReport& report) {
  const int n = report.round_trips_per_operation;
  PerRoundTrip trips{.completed = report.run.completed * n,
                     .per_sec = report.run.PerSecond() * n,
                     .ratio = report.Ratio() * n};
  if (HasCpuPerOperation(report)) {
    const PerOperation run = PerOperationOf(report.run);
    trips.cpu = PerOperation{run.cpu_us / n, run.context_switches / n};
  }
  return trips;
}

std::string FormatMs(absl::Duration duration) {
  return absl::StrFormat("%.3f ms", Milliseconds(duration));
}

std::string FormatErrors(const ErrorCounts& errors) {
  if (errors.counts().empty()) return "none\n";
  std::string out;
  bool first = true;
  for (const auto& [code, count] : errors.counts()) {
    absl::StrAppend(&out, first ? "" : std::string(16, ' '), code, " ", count);
    auto message = errors.first_messages().find(code);
    if (message != errors.first_messages().end() && !message->second.empty()) {
      absl::StrAppend(&out, " (first: ", message->second, ")");
    }
    absl::StrAppend(&out, "\n");
    first = false;
  }
  return out;
}

}  // namespace

double PhaseResult::PerSecond() const {
  double seconds = absl::ToDoubleSeconds(elapsed);
  return seconds > 0 ? static_cast<double>(completed) / seconds : 0;
}

void PhaseResult::Add(const PhaseResult& slice) {
  completed += slice.completed;
  elapsed += slice.elapsed;
  samples.Merge(slice.samples);
  errors.Merge(slice.errors);
  latency = samples.Summarize();
  if (slice.cpu.has_value()) {
    cpu = cpu.value_or(absl::ZeroDuration()) + *slice.cpu;
    context_switches += slice.context_switches;
  }
}

double BenchReport::Ratio() const {
  return RatioOf(run.PerSecond(), ceiling.PerSecond());
}

std::string RenderJson(const BenchReport& report) {
  json::Document doc(rapidjson::kObjectType);
  json::Allocator& allocator = doc.GetAllocator();
  doc.AddMember("scenario", json::Value(report.scenario.c_str(), allocator),
                allocator);
  doc.AddMember("concurrency", report.concurrency, allocator);
  doc.AddMember("completed", json::Value(report.run.completed), allocator);
  doc.AddMember("completed_per_sec", Round(report.run.PerSecond(), 100),
                allocator);
  doc.AddMember("ceiling_per_sec", Round(report.ceiling.PerSecond(), 100),
                allocator);
  doc.AddMember("ratio", Round(report.Ratio(), 1e6), allocator);
  doc.AddMember("latency_ms", LatencyObject(report.run.latency, allocator),
                allocator);
  doc.AddMember("errors", CountsObject(report.run.errors.counts(), allocator),
                allocator);

  // Extra keys.
  doc.AddMember("error_messages",
                StringsObject(report.run.errors.first_messages(), allocator),
                allocator);
  doc.AddMember("duration_sec",
                Round(absl::ToDoubleSeconds(report.run.elapsed)), allocator);
  doc.AddMember("connections", report.connections, allocator);
  doc.AddMember("slices", report.slices, allocator);
  doc.AddMember("rate_cap", report.rate_cap, allocator);
  doc.AddMember("target", json::Value(report.target.c_str(), allocator),
                allocator);
  if (!report.statuses.empty()) {
    doc.AddMember("statuses", CountsObject(report.statuses, allocator),
                  allocator);
  }
  if (report.schedule_to_start.has_value()) {
    doc.AddMember("schedule_to_start_ms",
                  LatencyObject(*report.schedule_to_start, allocator),
                  allocator);
  }
  if (!report.delivery.empty()) {
    doc.AddMember("delivery", json::Value(report.delivery.c_str(), allocator),
                  allocator);
  }
  if (!report.workflow_type.empty()) {
    doc.AddMember("workflow_type", json::Value(report.workflow_type.c_str(), allocator),
                  allocator);
  }
  if (report.interrupted) doc.AddMember("interrupted", true, allocator);
  if (!report.latency_note.empty()) {
    doc.AddMember("latency_note",
                  json::Value(report.latency_note.c_str(), allocator),
                  allocator);
  }
  for (const auto& [key, value] : report.extras) {
    doc.AddMember(json::Value(key.c_str(), allocator),
                  json::Value(Round(value)), allocator);
  }
  if (!report.rss_mb.empty()) {
    json::Value rss(rapidjson::kObjectType);
    json::Value samples(rapidjson::kArrayType);
    for (double sample : report.rss_mb) samples.PushBack(Round(sample), allocator);
    rss.AddMember("of", json::Value(report.rss_of.c_str(), allocator), allocator);
    rss.AddMember("first", Round(report.rss_mb.front()), allocator);
    rss.AddMember("last", Round(report.rss_mb.back()), allocator);
    rss.AddMember("max", Round(*std::max_element(report.rss_mb.begin(), report.rss_mb.end())),
                  allocator);
    rss.AddMember("samples", samples, allocator);
    doc.AddMember("rss_mb", rss, allocator);
  }
  if (HasCpuPerOperation(report)) {
    const PerOperation run = PerOperationOf(report.run);
    const PerOperation ceiling = PerOperationOf(report.ceiling);
    json::Value cpu(rapidjson::kObjectType);
    cpu.AddMember("of", json::Value(report.cpu_of.c_str(), allocator), allocator);
    cpu.AddMember("scenario_us", Round(run.cpu_us), allocator);
    cpu.AddMember("ceiling_us", Round(ceiling.cpu_us), allocator);
    cpu.AddMember("ratio", Round(RatioOf(ceiling.cpu_us, run.cpu_us)), allocator);
    cpu.AddMember("scenario_context_switches", Round(run.context_switches), allocator);
    cpu.AddMember("ceiling_context_switches", Round(ceiling.context_switches), allocator);
    doc.AddMember("cpu_per_op", cpu, allocator);
  }
  if (report.round_trips_per_operation > 1) {
    const PerRoundTrip per_trip = PerRoundTripOf(report);
    json::Value trips(rapidjson::kObjectType);
    trips.AddMember("per_operation", report.round_trips_per_operation, allocator);
    trips.AddMember("completed", json::Value(per_trip.completed), allocator);
    trips.AddMember("per_sec", Round(per_trip.per_sec, 100), allocator);
    trips.AddMember("ratio", Round(per_trip.ratio, 1e6), allocator);
    if (per_trip.cpu.has_value()) {
      trips.AddMember("cpu_us", Round(per_trip.cpu->cpu_us), allocator);
      trips.AddMember("context_switches", Round(per_trip.cpu->context_switches), allocator);
    }
    doc.AddMember("round_trips", trips, allocator);
  }
  json::Value latency_ratio(rapidjson::kObjectType);
  const LatencySummary& run = report.run.latency;
  const LatencySummary& ceiling = report.ceiling.latency;
  latency_ratio.AddMember(
      "p50",
      Round(RatioOf(Milliseconds(run.p50), Milliseconds(ceiling.p50)), 100),
      allocator);
  latency_ratio.AddMember(
      "p90",
      Round(RatioOf(Milliseconds(run.p90), Milliseconds(ceiling.p90)), 100),
      allocator);
  latency_ratio.AddMember(
      "p99",
      Round(RatioOf(Milliseconds(run.p99), Milliseconds(ceiling.p99)), 100),
      allocator);
  latency_ratio.AddMember(
      "max",
      Round(RatioOf(Milliseconds(run.max), Milliseconds(ceiling.max)), 100),
      allocator);
  doc.AddMember("latency_ratio", latency_ratio, allocator);

  json::Value ceiling_object(rapidjson::kObjectType);
  ceiling_object.AddMember(
      "rpc", json::Value(report.ceiling_rpc.c_str(), allocator), allocator);
  ceiling_object.AddMember("calls", json::Value(report.ceiling.completed),
                           allocator);
  ceiling_object.AddMember("duration_sec",
                           Round(absl::ToDoubleSeconds(report.ceiling.elapsed)),
                           allocator);
  ceiling_object.AddMember("latency_ms", LatencyObject(ceiling, allocator),
                           allocator);
  ceiling_object.AddMember(
      "errors", CountsObject(report.ceiling.errors.counts(), allocator),
      allocator);
  doc.AddMember("ceiling", ceiling_object, allocator);
  return json::Serialize(doc) + "\n";
}

std::string RenderText(const BenchReport& report) {
  const PhaseResult& run = report.run;
  const PhaseResult& ceiling = report.ceiling;
  std::string out = absl::StrFormat(
      "scenario        %s%s, %d in flight over %d channel(s)%s\n",
      report.scenario,
      report.delivery.empty()
          ? ""
          : absl::StrCat(" (", report.delivery, " delivery",
                         report.workflow_type.empty() ? "" : ", ", report.workflow_type,
                         ")"),
      report.concurrency, report.connections,
      report.rate_cap > 0
          ? absl::StrFormat(", capped at %.0f/s", report.rate_cap)
          : std::string());
  absl::StrAppend(&out, "target          ", report.target, "\n");
  if (report.interrupted) {
    absl::StrAppend(&out, "interrupted     the run was cut short (Ctrl-C)\n");
  }
  absl::StrAppend(
      &out, absl::StrFormat("ceiling         %s: %d calls in %.2f s = %.1f/s%s\n",
                            report.ceiling_rpc, ceiling.completed,
                            absl::ToDoubleSeconds(ceiling.elapsed),
                            ceiling.PerSecond(),
                            report.slices > 1
                                ? absl::StrFormat(" (in %d slices, alternating with the "
                                                  "scenario's)",
                                                  report.slices)
                                : std::string()));
  absl::StrAppend(
      &out, absl::StrFormat(
                "completed       %d in %.2f s = %.1f/s  (ratio %.4f of the "
                "ceiling's %.1f/s)\n",
                run.completed, absl::ToDoubleSeconds(run.elapsed),
                run.PerSecond(), report.Ratio(), ceiling.PerSecond()));
  const PerRoundTrip per_trip = PerRoundTripOf(report);
  if (report.round_trips_per_operation > 1) {
    absl::StrAppend(
        &out, absl::StrFormat("round trips     %d a completed operation: %.1f/s  (ratio %.4f of "
                              "the ceiling's)\n",
                              report.round_trips_per_operation, per_trip.per_sec,
                              per_trip.ratio));
  }
  auto latency_line = [&](absl::string_view name, absl::Duration value,
                          absl::Duration base) {
    absl::StrAppend(
        &out,
        absl::StrFormat("latency %-7s %-12s (ceiling %s: %.1fx)\n", name,
                        FormatMs(value), FormatMs(base),
                        RatioOf(Milliseconds(value), Milliseconds(base))));
  };
  latency_line("p50", run.latency.p50, ceiling.latency.p50);
  latency_line("p90", run.latency.p90, ceiling.latency.p90);
  latency_line("p99", run.latency.p99, ceiling.latency.p99);
  latency_line("max", run.latency.max, ceiling.latency.max);
  if (!report.latency_note.empty())
    absl::StrAppend(&out, "                (", report.latency_note, ")\n");
  if (report.schedule_to_start.has_value()) {
    const LatencySummary& s = *report.schedule_to_start;
    absl::StrAppend(
        &out,
        absl::StrFormat(
            "sched-to-start  p50 %s, p90 %s, p99 %s, max %s "
            "(p50 %.1fx the ceiling's)\n",
            FormatMs(s.p50), FormatMs(s.p90), FormatMs(s.p99), FormatMs(s.max),
            RatioOf(Milliseconds(s.p50), Milliseconds(ceiling.latency.p50))));
  }
  if (!report.statuses.empty()) {
    std::string statuses;
    for (const auto& [status, count] : report.statuses) {
      absl::StrAppend(&statuses, statuses.empty() ? "" : ", ", status, " ",
                      count);
    }
    absl::StrAppend(&out, "statuses        ", statuses, "\n");
  }
  for (const auto& [key, value] : report.extras) {
    absl::StrAppend(&out, absl::StrFormat("%-15s %.4g\n", key, value));
  }
  if (!report.rss_mb.empty()) {
    absl::StrAppend(
        &out, absl::StrFormat("rss MiB         first %.1f  last %.1f  max %.1f  (%d samples, %s)\n",
                              report.rss_mb.front(), report.rss_mb.back(),
                              *std::max_element(report.rss_mb.begin(), report.rss_mb.end()),
                              static_cast<int>(report.rss_mb.size()), report.rss_of));
  }
  if (HasCpuPerOperation(report)) {
    const PerOperation run_cpu = PerOperationOf(run);
    const PerOperation ceiling_cpu = PerOperationOf(ceiling);
    absl::StrAppend(
        &out, absl::StrFormat("cpu per op      %.1f us, %.2f context switches  (ceiling %.1f us, "
                              "%.2f: ratio %.4f; %s)\n",
                              run_cpu.cpu_us, run_cpu.context_switches, ceiling_cpu.cpu_us,
                              ceiling_cpu.context_switches,
                              RatioOf(ceiling_cpu.cpu_us, run_cpu.cpu_us), report.cpu_of));
    if (report.round_trips_per_operation > 1) {
      absl::StrAppend(
          &out, absl::StrFormat("cpu per trip    %.1f us, %.2f context switches  (ratio %.4f of "
                                "the ceiling's per call)\n",
                                per_trip.cpu->cpu_us, per_trip.cpu->context_switches,
                                RatioOf(ceiling_cpu.cpu_us, per_trip.cpu->cpu_us)));
    }
  }
  absl::StrAppend(&out, "errors          ", FormatErrors(run.errors));
  if (!ceiling.errors.counts().empty()) {
    absl::StrAppend(&out, "ceiling errors  ", FormatErrors(ceiling.errors));
  }
  return out;
}

}  // namespace stepflow::cli::bench
