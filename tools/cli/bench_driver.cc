#include "tools/cli/bench_driver.h"

#include <sys/resource.h>
#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <thread>
#include <vector>

#include "absl/random/random.h"
#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "grpcpp/support/status.h"

namespace stepflow::cli::bench {

Scheduler::Scheduler() : thread_([this] { Loop(); }) {}

Scheduler::~Scheduler() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  thread_.join();
}

void Scheduler::At(absl::Time when, std::function<void()> callback) {
  absl::MutexLock lock(&mu_);
  queue_.push(Entry{when, next_sequence_++, std::move(callback)});
  if (when < waiting_until_) woken_ = true;
}

void Scheduler::Loop() {
  absl::MutexLock lock(&mu_);
  auto woken = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stopping_ || woken_; };
  while (!stopping_) {
    const absl::Time due = queue_.empty() ? absl::InfiniteFuture() : queue_.top().when;
    if (absl::Now() < due) {
      // Wake early for a new, earlier entry or for the stop.
      woken_ = false;
      waiting_until_ = due;
      if (due == absl::InfiniteFuture()) {
        mu_.Await(absl::Condition(&woken));
      } else {
        mu_.AwaitWithDeadline(absl::Condition(&woken), due);
      }
      waiting_until_ = absl::InfinitePast();
      continue;
    }
    std::function<void()> callback =
        std::move(const_cast<Entry&>(queue_.top()).callback);
    queue_.pop();
    mu_.Unlock();
    callback();
    mu_.Lock();
  }
}

OpOutcome OpOutcome::FromStatus(const grpc::Status& status) {
  if (status.ok()) return Ok();
  std::string code = absl::StatusCodeToString(
      static_cast<absl::StatusCode>(status.error_code()));
  return Error(code, status.error_message());
}

namespace {

constexpr char kResourceExhausted[] = "RESOURCE_EXHAUSTED";

class LoadRun {
 public:
  LoadRun(const LoadOptions& options, Scheduler* scheduler)
      : options_(options),
        scheduler_(scheduler),
        limiter_(options.rate),
        remaining_(options.total) {}

  PhaseResult Run(const std::function<std::unique_ptr<Operation>(int slot)>&
                      make_operation) {
    for (int i = 0; i < options_.concurrency; ++i) {
      slots_.push_back(std::make_unique<Slot>());
      slots_.back()->operation = make_operation(i);
    }
    start_ = absl::Now();
    deadline_ = options_.duration > absl::ZeroDuration()
                    ? start_ + options_.duration
                    : absl::InfiniteFuture();
    active_.store(options_.concurrency);
    for (auto& slot : slots_) Next(slot.get());
    PhaseResult result;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(&finished_));
      result.elapsed = end_ - start_;
    }
    // The thread that started a slot's last operation may still be on its
    // way out of Begin().
    while (beginning_.load() > 0) std::this_thread::yield();
    for (auto& slot : slots_) {
      result.completed += slot->completed;
      result.samples.Merge(slot->latencies);
      result.errors.Merge(slot->errors);
    }
    result.latency = result.samples.Summarize();
    return result;
  }

 private:
  // Touched by one operation's callbacks at a time (they are sequential).
  struct Slot {
    std::unique_ptr<Operation> operation;
    LatencySamples latencies;
    ErrorCounts errors;
    int64_t completed = 0;
    absl::Time started;
    int retries = 0;
    // Set while Start() runs, so a `done` called inside it does not recurse.
    std::atomic<bool> starting{false};
    absl::BitGen random;
  };

  // Claims the next operation for `slot` and starts it, now or when the
  // rate cap allows; or retires the slot when the run is over.
  void Next(Slot* slot) {
    absl::Time now = absl::Now();
    if (now >= deadline_ || Stopped() ||
        (options_.total > 0 && remaining_.fetch_sub(1) <= 0)) {
      Retire();
      return;
    }
    slot->retries = 0;
    absl::Time at = limiter_.Reserve(now);
    if (at > now) {
      scheduler_->At(at, [this, slot] { Begin(slot, /*first=*/true); });
    } else {
      Begin(slot, /*first=*/true);
    }
  }

  void Begin(Slot* slot, bool first) {
    beginning_.fetch_add(1);
    if (first) slot->started = absl::Now();
    slot->starting.store(true);
    slot->operation->Start([this, slot](OpOutcome outcome) {
      if (slot->starting.load()) {
        // Called inside Start(): continue on the scheduler, not deeper in
        // this stack.
        scheduler_->At(absl::Now(),
                       [this, slot, outcome = std::move(outcome)]() mutable {
                         Done(slot, std::move(outcome));
                       });
        return;
      }
      Done(slot, std::move(outcome));
    });
    slot->starting.store(false);
    beginning_.fetch_sub(1);
  }

  void Done(Slot* slot, OpOutcome outcome) {
    if (outcome.ok) {
      slot->latencies.Add(absl::Now() - slot->started);
      ++slot->completed;
      Next(slot);
      return;
    }
    slot->errors.Add(outcome.error_code, outcome.message);
    if (outcome.error_code == kResourceExhausted &&
        slot->retries < options_.max_retries && absl::Now() < deadline_ &&
        !Stopped()) {
      ++slot->retries;
      absl::Duration delay =
          Backoff(slot->retries, absl::Uniform(slot->random, 0.0, 1.0));
      scheduler_->After(delay, [this, slot] { Begin(slot, /*first=*/false); });
      return;
    }
    Next(slot);
  }

  bool Stopped() const {
    return options_.stop != nullptr && options_.stop->load();
  }

  void Retire() {
    if (active_.fetch_sub(1) == 1) {
      absl::MutexLock lock(&mu_);
      end_ = absl::Now();
      finished_ = true;
    }
  }

  const LoadOptions options_;
  Scheduler* const scheduler_;
  RateLimiter limiter_;
  std::atomic<int64_t> remaining_;
  std::atomic<int> active_{0};
  // Begin() calls in progress.
  std::atomic<int> beginning_{0};
  std::vector<std::unique_ptr<Slot>> slots_;
  absl::Time start_;
  absl::Time deadline_;

  absl::Mutex mu_;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  absl::Time end_ ABSL_GUARDED_BY(mu_);
};

}  // namespace

PhaseResult RunLoad(
    const LoadOptions& options, Scheduler* scheduler,
    const std::function<std::unique_ptr<Operation>(int slot)>& make_operation) {
  LoadRun run(options, scheduler);
  return run.Run(make_operation);
}

CpuReading ProcessCpu(int pid) {
  CpuReading reading;
  if (pid == 0) {
    rusage usage{};
    if (getrusage(RUSAGE_SELF, &usage) != 0) return reading;
    reading.cpu = absl::DurationFromTimeval(usage.ru_utime) +
                  absl::DurationFromTimeval(usage.ru_stime);
    reading.context_switches = usage.ru_nvcsw + usage.ru_nivcsw;
    return reading;
  }
  // utime and stime are fields 14 and 15 of /proc/PID/stat, counted from
  // the state (field 3) after the parenthesized name, which may hold spaces.
  std::ifstream stat_file(absl::StrCat("/proc/", pid, "/stat"));
  const std::string stat((std::istreambuf_iterator<char>(stat_file)),
                         std::istreambuf_iterator<char>());
  const size_t name_end = stat.rfind(')');
  if (name_end == std::string::npos) return reading;
  std::vector<absl::string_view> fields =
      absl::StrSplit(absl::string_view(stat).substr(name_end + 1), ' ', absl::SkipEmpty());
  int64_t utime = 0;
  int64_t stime = 0;
  if (fields.size() < 13 || !absl::SimpleAtoi(fields[11], &utime) ||
      !absl::SimpleAtoi(fields[12], &stime)) {
    return reading;
  }
  reading.cpu = absl::Seconds(static_cast<double>(utime + stime) /
                              static_cast<double>(sysconf(_SC_CLK_TCK)));
  std::error_code error;
  for (const auto& task :
       std::filesystem::directory_iterator(absl::StrCat("/proc/", pid, "/task"), error)) {
    std::ifstream status(task.path() / "status");
    std::string line;
    while (std::getline(status, line)) {
      int64_t switches = 0;
      if (absl::StrContains(line, "ctxt_switches:") &&
          absl::SimpleAtoi(absl::StripAsciiWhitespace(line.substr(line.find(':') + 1)),
                           &switches)) {
        reading.context_switches += switches;
      }
    }
  }
  return reading;
}

}  // namespace stepflow::cli::bench
