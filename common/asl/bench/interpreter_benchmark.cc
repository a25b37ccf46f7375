// Throughput of the ASL interpreter: state transitions per CPU-second on one
// thread, for the workflows in workflows/*.asl.json run over
// workflows/input.json; plus one JSON parse + serialize of that input, the
// yardstick for what a transition costs.
//
// A benchmark, run on demand (tools/bench/interpreter_vs_peer.sh compares it
// with the Node.js peer aws-local-stepfunctions); not a ctest test.
//
//   interpreter_benchmark [--workflows_dir=DIR] [--benchmark_* flags]
//
// The workflows folder defaults to $STEPFLOW_BENCH_WORKFLOWS, else to this
// source folder's workflows/ (compiled in).
//
// One iteration of BM_Execution/<workflow> is one whole execution: a fresh
// ExecutionState and Interpreter, Interpreter::Start on the input, the
// definition parsed once beforehand. The workflows are synchronous (no Task,
// no Wait), so Start runs each to its end. A transition is one state
// entered: the counter state_transitions_per_second counts the outcome's
// *StateEntered history events (Parallel branch states included), divided
// by the CPU time of the loop (Counter::kIsRate).
#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "benchmark/benchmark.h"
#include "common/asl/definition.h"
#include "common/asl/interpreter.h"
#include "common/json/json.h"

#ifndef STEPFLOW_BENCH_WORKFLOWS_DIR
#define STEPFLOW_BENCH_WORKFLOWS_DIR "common/asl/bench/workflows"
#endif

namespace stepflow::asl {
namespace {

struct Workflow {
  std::string name;  // file name without .asl.json
  std::shared_ptr<const Definition> definition;
};

// The compact form of input.json: what an execution is started with and
// what BM_JsonParseSerialize parses.
std::string& Input() {
  static std::string* input = new std::string;
  return *input;
}

bool ReadFile(const std::filesystem::path& path, std::string* out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  std::ostringstream text;
  text << in.rdbuf();
  *out = text.str();
  return true;
}

int64_t StatesEntered(const Outcome& outcome) {
  int64_t entered = 0;
  for (const v1::HistoryEvent& event : outcome.events) {
    if (absl::EndsWith(event.type(), "StateEntered")) ++entered;
  }
  return entered;
}

ExecutionContext ContextFor(const Workflow* workflow) {
  ExecutionContext context;
  context.execution_arn = absl::StrCat(
      "arn:aws:states:us-east-1:123456789012:execution:", workflow->name,
      ":bench");
  context.execution_name = "bench";
  context.execution_input = Input();
  context.state_machine_arn = absl::StrCat(
      "arn:aws:states:us-east-1:123456789012:stateMachine:", workflow->name);
  context.state_machine_name = workflow->name;
  context.start_time = absl::FromUnixSeconds(1700000000);
  // Input() is json::Serialize output, as the gateway hands inputs over.
  context.input_is_canonical = true;
  return context;
}

void BM_Execution(benchmark::State& state, const Workflow* workflow) {
  const ExecutionContext context = ContextFor(workflow);
  const absl::Time now = context.start_time;
  const absl::string_view input = Input();

  int64_t transitions = 0;
  int64_t executions = 0;
  for (auto _ : state) {
    ::stepflow::internal::v1::ExecutionState execution;
    Interpreter interpreter(*workflow->definition, context);
    Outcome outcome = interpreter.Start(&execution, input, now);
    if (outcome.closed_status != "SUCCEEDED") {
      state.SkipWithError(absl::StrCat(workflow->name, " did not succeed: ",
                                       outcome.closed_status, " ",
                                       outcome.error, " ", outcome.cause)
                              .c_str());
      break;
    }
    transitions += StatesEntered(outcome);
    ++executions;
    benchmark::DoNotOptimize(outcome);
  }
  state.counters["state_transitions_per_second"] = benchmark::Counter(
      static_cast<double>(transitions), benchmark::Counter::kIsRate);
  state.counters["transitions_per_execution"] =
      executions == 0
          ? 0.0
          : static_cast<double>(transitions) / static_cast<double>(executions);
}

// One parse and one compact serialize of the same ~1 KiB payload: a
// transition parses its input at least once and serializes its output.
void BM_JsonParseSerialize(benchmark::State& state) {
  const absl::string_view input = Input();
  for (auto _ : state) {
    auto doc = json::Parse(input);
    if (!doc.ok()) {
      state.SkipWithError("input.json does not parse");
      break;
    }
    std::string text = json::Serialize(*doc);
    benchmark::DoNotOptimize(text);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) *
                          static_cast<int64_t>(input.size()));
}

// Removes --workflows_dir=DIR from argv (benchmark::Initialize rejects flags
// it does not know); falls back to $STEPFLOW_BENCH_WORKFLOWS, then to the
// compiled-in source folder.
std::string WorkflowsDir(int* argc, char** argv) {
  constexpr absl::string_view kFlag = "--workflows_dir=";
  std::string dir;
  int kept = 1;
  for (int i = 1; i < *argc; ++i) {
    absl::string_view arg = argv[i];
    if (absl::StartsWith(arg, kFlag)) {
      dir = std::string(arg.substr(kFlag.size()));
    } else {
      argv[kept++] = argv[i];
    }
  }
  *argc = kept;
  if (!dir.empty()) return dir;
  if (const char* env = std::getenv("STEPFLOW_BENCH_WORKFLOWS");
      env != nullptr && *env != '\0') {
    return env;
  }
  return STEPFLOW_BENCH_WORKFLOWS_DIR;
}

// Loads input.json and every *.asl.json of `dir`; prints why and returns
// false on any problem.
bool Load(const std::filesystem::path& dir, std::vector<Workflow>* workflows) {
  std::string raw_input;
  if (!ReadFile(dir / "input.json", &raw_input)) {
    std::cerr << "interpreter_benchmark: cannot read " << (dir / "input.json")
              << "\n";
    return false;
  }
  auto input = json::Parse(raw_input);
  if (!input.ok()) {
    std::cerr << "interpreter_benchmark: input.json: " << input.status()
              << "\n";
    return false;
  }
  Input() = json::Serialize(*input);

  std::vector<std::filesystem::path> files;
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator(dir, error)) {
    if (absl::EndsWith(entry.path().filename().string(), ".asl.json"))
      files.push_back(entry.path());
  }
  if (error || files.empty()) {
    std::cerr << "interpreter_benchmark: no *.asl.json in " << dir << "\n";
    return false;
  }
  std::sort(files.begin(), files.end());
  for (const auto& file : files) {
    std::string text;
    if (!ReadFile(file, &text)) {
      std::cerr << "interpreter_benchmark: cannot read " << file << "\n";
      return false;
    }
    auto definition = Definition::Parse(text);
    if (!definition.ok()) {
      std::cerr << "interpreter_benchmark: " << file << ": "
                << definition.status() << "\n";
      return false;
    }
    std::string name = file.filename().string();
    name.resize(name.size() - std::string_view(".asl.json").size());
    workflows->push_back(Workflow{std::move(name), *std::move(definition)});
  }
  return true;
}

}  // namespace
}  // namespace stepflow::asl

int main(int argc, char** argv) {
  using stepflow::asl::Workflow;
  for (int i = 1; i < argc; ++i) {
    if (std::string_view(argv[i]) == "--help" ||
        std::string_view(argv[i]) == "-h") {
      std::cout
          << "interpreter_benchmark: ASL interpreter state transitions per "
             "second.\n"
             "  --workflows_dir=DIR  *.asl.json workflows and input.json "
             "(default: "
             "$STEPFLOW_BENCH_WORKFLOWS, else " STEPFLOW_BENCH_WORKFLOWS_DIR
             ")\n"
             "  --count=N            run each workflow N times and exit, for "
             "instruction\n"
             "                       counts under callgrind or perf stat "
             "(--benchmark_filter=NAME\n"
             "                       may follow to pick one)\n"
             "  --history            print each workflow's history events (text\n"
             "                       format) and exit, to check that a change left\n"
             "                       them as they were\n"
             "Google Benchmark's flags follow.\n";
      break;
    }
  }
  // --count=N: run every workflow N times outside Google Benchmark and
  // exit, for instruction counts (valgrind --tool=callgrind, perf stat),
  // which unlike timings do not depend on what else the machine does.
  int64_t count = 0;
  for (int i = 1; i < argc; ++i) {
    if (absl::StartsWith(argv[i], "--count=")) {
      count = std::atoll(argv[i] + 8);
      for (int j = i; j + 1 < argc; ++j) argv[j] = argv[j + 1];
      --argc;
      break;
    }
  }
  bool print_history = false;
  for (int i = 1; i < argc; ++i) {
    if (std::string_view(argv[i]) == "--history") {
      print_history = true;
      for (int j = i; j + 1 < argc; ++j) argv[j] = argv[j + 1];
      --argc;
      break;
    }
  }
  const std::string dir = stepflow::asl::WorkflowsDir(&argc, argv);
  // Registered benchmarks keep pointers into this vector; it lives until exit.
  static std::vector<Workflow> workflows;
  if (!stepflow::asl::Load(dir, &workflows)) return 1;
  if (print_history) {
    for (const Workflow& workflow : workflows) {
      const stepflow::asl::ExecutionContext context =
          stepflow::asl::ContextFor(&workflow);
      ::stepflow::internal::v1::ExecutionState execution;
      stepflow::asl::Interpreter interpreter(*workflow.definition, context);
      stepflow::asl::Outcome outcome =
          interpreter.Start(&execution, stepflow::asl::Input(), context.start_time);
      std::cout << "# " << workflow.name << "\n";
      for (const auto& event : outcome.events) std::cout << event.DebugString();
      std::cout << "# state\n" << execution.DebugString();
    }
    return 0;
  }
  if (count > 0) {
    const std::string filter = argc > 1 && absl::StartsWith(argv[1], "--benchmark_filter=")
                                   ? std::string(argv[1] + 19)
                                   : "";
    for (const Workflow& workflow : workflows) {
      if (!filter.empty() && workflow.name.find(filter) == std::string::npos) continue;
      const stepflow::asl::ExecutionContext context =
          stepflow::asl::ContextFor(&workflow);
      int64_t transitions = 0;
      for (int64_t i = 0; i < count; ++i) {
        ::stepflow::internal::v1::ExecutionState execution;
        stepflow::asl::Interpreter interpreter(*workflow.definition, context);
        stepflow::asl::Outcome outcome =
            interpreter.Start(&execution, stepflow::asl::Input(), context.start_time);
        transitions += stepflow::asl::StatesEntered(outcome);
      }
      std::cout << workflow.name << ": " << count << " executions, " << transitions
                << " transitions\n";
    }
    return 0;
  }
  for (const Workflow& workflow : workflows) {
    benchmark::RegisterBenchmark(("BM_Execution/" + workflow.name).c_str(),
                                 stepflow::asl::BM_Execution, &workflow);
  }
  benchmark::RegisterBenchmark("BM_JsonParseSerialize",
                               stepflow::asl::BM_JsonParseSerialize);

  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
