#include "services/execution/task_queues.h"

#include <algorithm>
#include <utility>

#include "absl/cleanup/cleanup.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"

namespace stepflow::execution {
namespace {

// Metrics are labelled by activity name: ARNs are long and all alike.
std::string ActivityLabel(absl::string_view activity_arn) {
  const size_t colon = activity_arn.rfind(':');
  return std::string(colon == absl::string_view::npos ? activity_arn
                                                      : activity_arn.substr(colon + 1));
}

absl::Time FromProto(const google::protobuf::Timestamp& timestamp) {
  return absl::FromUnixSeconds(timestamp.seconds()) + absl::Nanoseconds(timestamp.nanos());
}

}  // namespace

struct TaskQueues::Waiter {
  std::string worker_name;
  // Whether the poll's caller went away (may be null).
  const std::function<bool()>* cancelled = nullptr;
  absl::CondVar wake;
  bool listed = false;  // in its queue's `waiters`
  // Most tasks, and bytes of inputs beyond the first task, the poller takes.
  int max_tasks = 1;
  size_t max_bytes = 0;
  // Claims a transition will Hand or Release, and the input bytes they
  // count for.
  int claims = 0;
  size_t claimed_bytes = 0;
  std::vector<Queued> handed;
  // A TakeLater poll: answered through `answer` rather than woken, and
  // owned by the queues' `later_` until then (`cancelled` points at
  // `later_cancelled`).
  TakeAnswer answer;
  // A WatchLater watch instead (in its queue's `later_watchers` while
  // listed): answered through `watch_answer`, with `backlog`.
  WatchAnswer watch_answer;
  bool backlog = false;
  std::function<bool()> later_cancelled;
  std::string activity_arn;
  absl::Time deadline = absl::InfiniteFuture();
  absl::Status status;  // what it is answered with, once settled
};

TaskQueues::TaskQueues(prometheus::Registry* registry, clock::Clock* clock)
    : registry_(registry), clock_(clock) {
  if (registry_ == nullptr) return;
  backlog_size_family_ = &prometheus::BuildGauge()
                              .Name("stepflow_activity_backlog_tasks")
                              .Help("Activity tasks waiting for a worker, on this server.")
                              .Register(*registry_);
  backlog_age_family_ = &prometheus::BuildGauge()
                             .Name("stepflow_activity_backlog_age_seconds")
                             .Help("How long the oldest waiting task of the activity has "
                                   "waited (0 when none waits).")
                             .Register(*registry_);
  polls_family_ = &prometheus::BuildCounter()
                       .Name("stepflow_activity_polls_total")
                       .Help("Poll results: tasks handed over by how they met their poller, "
                             "sync_match (the poller was waiting when the task came) or "
                             "backlog (the task was waiting); empty (a poll that timed out).")
                       .Register(*registry_);
  schedule_to_start_family_ = &prometheus::BuildHistogram()
                                   .Name("stepflow_activity_schedule_to_start_seconds")
                                   .Help("From a task's scheduling to its hand-over to a worker.")
                                   .Register(*registry_);
}

TaskQueues::~TaskQueues() {
  Settled settled;
  {
    absl::MutexLock lock(&mu_);
    while (!later_.empty()) {
      Settle(later_.begin()->first, absl::UnavailableError("the shard server is shutting down"),
             &settled);
    }
  }
  Answer(std::move(settled));
}

TaskQueues::Queue& TaskQueues::QueueFor(const std::string& activity_arn) {
  std::unique_ptr<Queue>& slot = queues_[activity_arn];
  if (slot == nullptr) {
    slot = std::make_unique<Queue>();
    if (registry_ != nullptr) {
      const std::map<std::string, std::string> labels = {{"activity", ActivityLabel(activity_arn)}};
      slot->backlog_size = &backlog_size_family_->Add(labels);
      slot->backlog_age = &backlog_age_family_->Add(labels);
      auto with_result = [&](const char* result) {
        auto tagged = labels;
        tagged["result"] = result;
        return &polls_family_->Add(tagged);
      };
      slot->sync_match = with_result("sync_match");
      slot->from_backlog = with_result("backlog");
      slot->empty = with_result("empty");
      slot->schedule_to_start = &schedule_to_start_family_->Add(
          labels, prometheus::Histogram::BucketBoundaries{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                          0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60,
                                                          300, 3600});
    }
  }
  return *slot;
}

void TaskQueues::UpdateGauges(Queue& queue) {
  if (queue.backlog_size == nullptr) return;
  queue.backlog_size->Set(static_cast<double>(queue.backlog.size()));
  queue.backlog_age->Set(
      queue.backlog.empty()
          ? 0.0
          : std::max(0.0, absl::ToDoubleSeconds(
                              clock_->Now() - FromProto(queue.backlog.front().task.scheduled_date()))));
}

void TaskQueues::WakeOne(Queue& queue, Settled* settled) {
  while (!queue.waiters.empty()) {
    Waiter* waiter = queue.waiters.front();
    queue.waiters.pop_front();
    waiter->listed = false;
    if (!waiter->answer) {
      // A thread: if its caller went away, it passes the wake-up on.
      waiter->wake.Signal();
      return;
    }
    // Claimed, it is answered once its claims are settled, and then passes
    // the wake-up on (see Hand).
    if (waiter->claims > 0) return;
    // It takes no backlog itself: it is answered with nothing, and its
    // caller comes back with Take — unless that caller went away, and then
    // the next poller is woken instead.
    const bool gone =
        waiter->cancelled != nullptr && *waiter->cancelled && (*waiter->cancelled)();
    Settle(waiter, absl::OkStatus(), settled);
    if (!gone) return;
  }
  if (queue.watching > 0) {
    queue.watched.Signal();
    return;
  }
  // A watch whose caller went away is answered too, and the next woken.
  while (!queue.later_watchers.empty()) {
    Waiter* watcher = queue.later_watchers.front();
    const bool gone =
        watcher->cancelled != nullptr && *watcher->cancelled && (*watcher->cancelled)();
    watcher->backlog = !gone;
    Settle(watcher, absl::OkStatus(), settled);
    if (!gone) return;
  }
}

void TaskQueues::Settle(Waiter* waiter, absl::Status status, Settled* settled) {
  if (waiter->listed) {
    Queue& queue = QueueFor(waiter->activity_arn);
    std::deque<Waiter*>& line = waiter->watch_answer ? queue.later_watchers : queue.waiters;
    line.erase(std::find(line.begin(), line.end(), waiter));
    waiter->listed = false;
  }
  auto it = later_.find(waiter);
  if (it == later_.end()) return;
  waiter->status = std::move(status);
  settled->push_back(std::move(it->second));
  later_.erase(it);
}

void TaskQueues::CountHanded(Queue& queue, const std::vector<Queued>& handed) {
  if (queue.schedule_to_start == nullptr) return;
  const absl::Time now = clock_->Now();
  for (const Queued& queued : handed) {
    queue.schedule_to_start->Observe(
        std::max(0.0, absl::ToDoubleSeconds(now - FromProto(queued.task.scheduled_date()))));
    queue.sync_match->Increment();
  }
}

void TaskQueues::Answer(Settled settled) {
  for (std::unique_ptr<Waiter>& waiter : settled) {
    if (waiter->watch_answer) {
      if (!waiter->status.ok()) {
        std::move(waiter->watch_answer)(std::move(waiter->status));
      } else {
        std::move(waiter->watch_answer)(waiter->backlog);
      }
    } else if (!waiter->status.ok()) {
      std::move(waiter->answer)(std::move(waiter->status));
    } else {
      std::move(waiter->answer)(std::move(waiter->handed));
    }
  }
}

bool TaskQueues::TakeLater(const std::string& activity_arn, int max_tasks, size_t max_bytes,
                           absl::Time deadline, std::function<bool()> cancelled,
                           const std::string& worker_name,
                           absl::FunctionRef<TakeAnswer()> make_answer) {
  absl::MutexLock lock(&mu_);
  if (shut_down_) return false;
  Queue& queue = QueueFor(activity_arn);
  if (!queue.backlog.empty()) return false;
  Waiter* waiter = AddLater(queue.waiters, activity_arn, deadline, std::move(cancelled));
  waiter->worker_name = worker_name;
  waiter->max_tasks = std::max(1, max_tasks);
  waiter->max_bytes = max_bytes;
  waiter->answer = make_answer();
  return true;
}

bool TaskQueues::WatchLater(const std::string& activity_arn, absl::Time deadline,
                            std::function<bool()> cancelled,
                            absl::FunctionRef<WatchAnswer()> make_answer) {
  absl::MutexLock lock(&mu_);
  if (shut_down_) return false;
  Queue& queue = QueueFor(activity_arn);
  if (!queue.backlog.empty()) return false;
  AddLater(queue.later_watchers, activity_arn, deadline, std::move(cancelled))->watch_answer =
      make_answer();
  return true;
}

TaskQueues::Waiter* TaskQueues::AddLater(std::deque<Waiter*>& line,
                                         const std::string& activity_arn, absl::Time deadline,
                                         std::function<bool()> cancelled) {
  auto owned = std::make_unique<Waiter>();
  Waiter* waiter = owned.get();
  waiter->later_cancelled = std::move(cancelled);
  if (waiter->later_cancelled) waiter->cancelled = &waiter->later_cancelled;
  waiter->activity_arn = activity_arn;
  waiter->deadline = deadline;
  line.push_back(waiter);
  waiter->listed = true;
  later_.emplace(waiter, std::move(owned));
  return waiter;
}

absl::Time TaskQueues::NextLaterDeadline() {
  absl::MutexLock lock(&mu_);
  absl::Time next = absl::InfiniteFuture();
  for (const auto& [waiter, owned] : later_) next = std::min(next, waiter->deadline);
  return next;
}

void TaskQueues::ExpireLater(absl::Time now) {
  Settled settled;
  {
    absl::MutexLock lock(&mu_);
    std::vector<Waiter*> due;
    for (auto& [waiter, owned] : later_) {
      if (waiter->claims > 0) continue;  // answered once its claims settle
      const bool expired = now >= waiter->deadline;
      if (!expired && (waiter->cancelled == nullptr || !(*waiter->cancelled)())) continue;
      // As Take counts them: a poll that timed out, not one whose caller
      // left (nor a watch).
      Queue& queue = QueueFor(waiter->activity_arn);
      if (expired && !waiter->watch_answer && queue.empty != nullptr) queue.empty->Increment();
      due.push_back(waiter);
    }
    for (Waiter* waiter : due) Settle(waiter, absl::OkStatus(), &settled);
  }
  Answer(std::move(settled));
}

TaskQueues::Waiter* TaskQueues::Claim(const std::string& activity_arn, size_t input_bytes,
                                      std::string* worker_name) {
  Settled settled;
  absl::Cleanup answer = [&settled] { Answer(std::move(settled)); };
  absl::MutexLock lock(&mu_);
  if (shut_down_) return nullptr;
  auto it = queues_.find(activity_arn);
  if (it == queues_.end()) return nullptr;
  Queue& queue = *it->second;
  // A poller whose caller went away gets no task: it is woken to leave.
  while (!queue.waiters.empty() && queue.waiters.front()->claims == 0 &&
         queue.waiters.front()->cancelled != nullptr && *queue.waiters.front()->cancelled &&
         (*queue.waiters.front()->cancelled)()) {
    Waiter* gone = queue.waiters.front();
    queue.waiters.pop_front();
    gone->listed = false;
    if (gone->answer) {
      Settle(gone, absl::OkStatus(), &settled);
    } else {
      gone->wake.Signal();
    }
  }
  if (queue.waiters.empty()) return nullptr;
  Waiter* waiter = queue.waiters.front();
  if (waiter->claims > 0 && waiter->claimed_bytes + input_bytes > waiter->max_bytes) {
    return nullptr;  // too much for one answer; the backlog takes it
  }
  ++waiter->claims;
  waiter->claimed_bytes += input_bytes;
  // A poller that can take more stays first in line, so the tasks of one
  // group commit go to it together.
  if (waiter->claims >= waiter->max_tasks) {
    queue.waiters.pop_front();
    waiter->listed = false;
  }
  *worker_name = waiter->worker_name;
  return waiter;
}

void TaskQueues::Hand(Waiter* waiter, Queued queued) {
  Settled settled;
  {
    absl::MutexLock lock(&mu_);
    --waiter->claims;
    waiter->handed.push_back(std::move(queued));
    // The poller answers once its other claims are settled: no more come.
    Queue& queue = QueueFor(waiter->handed.back().task.activity_arn());
    if (waiter->listed) {
      queue.waiters.erase(std::find(queue.waiters.begin(), queue.waiters.end(), waiter));
      waiter->listed = false;
    }
    if (!waiter->answer) {
      waiter->wake.Signal();
    } else if (waiter->claims == 0) {
      CountHanded(queue, waiter->handed);
      // A wake-up for the backlog may have reached it while it was
      // claimed: pass it on.
      if (!queue.backlog.empty()) WakeOne(queue, &settled);
      Settle(waiter, absl::OkStatus(), &settled);
    }
  }
  Answer(std::move(settled));
}

void TaskQueues::Release(Waiter* waiter) {
  Settled settled;
  {
    absl::MutexLock lock(&mu_);
    --waiter->claims;
    if (!waiter->answer) {
      waiter->wake.Signal();
    } else if (waiter->claims == 0) {
      // Its caller polls again (with what was handed, if anything).
      if (!waiter->handed.empty()) CountHanded(QueueFor(waiter->activity_arn), waiter->handed);
      Settle(waiter, absl::OkStatus(), &settled);
    }
  }
  Answer(std::move(settled));
}

uint64_t TaskQueues::Footprint(const Queued& queued) {
  // The strings dominate; the rest is a fixed overhead per task.
  constexpr uint64_t kPerTask = 128;
  return kPerTask + queued.task.input().size() + queued.task.task_token().size() +
         queued.task.task_id().size() + queued.task.activity_arn().size();
}

void TaskQueues::Add(Queued queued) {
  Settled settled;
  {
    absl::MutexLock lock(&mu_);
    Queue& queue = QueueFor(queued.task.activity_arn());
    queued_bytes_.fetch_add(Footprint(queued), std::memory_order_relaxed);
    queue.backlog.push_back(std::move(queued));
    UpdateGauges(queue);
    WakeOne(queue, &settled);
  }
  Answer(std::move(settled));
}

absl::StatusOr<bool> TaskQueues::Watch(const std::string& activity_arn, absl::Time deadline,
                                       const std::function<bool()>& cancelled) {
  Settled settled;
  absl::Cleanup answer = [&settled] { Answer(std::move(settled)); };
  absl::MutexLock lock(&mu_);
  Queue& queue = QueueFor(activity_arn);
  while (true) {
    if (shut_down_) return absl::UnavailableError("the shard server is shutting down");
    if (!queue.backlog.empty()) {
      if (cancelled && cancelled()) {
        // Woken for a task this watcher can no longer act on: pass it on.
        WakeOne(queue, &settled);
        return false;
      }
      return true;
    }
    const absl::Time now = absl::Now();
    if (now >= deadline || (cancelled && cancelled())) return false;
    ++queue.watching;
    queue.watched.WaitWithDeadline(&mu_, std::min(deadline, now + kIdleRecheck));
    --queue.watching;
  }
}

std::optional<TaskQueues::Queued> TaskQueues::Remove(absl::string_view activity_arn,
                                                     absl::string_view task_id) {
  absl::MutexLock lock(&mu_);
  auto it = queues_.find(activity_arn);
  if (it == queues_.end()) return std::nullopt;
  Queue& queue = *it->second;
  auto found = std::find_if(queue.backlog.begin(), queue.backlog.end(),
                            [&](const Queued& queued) { return queued.task.task_id() == task_id; });
  if (found == queue.backlog.end()) return std::nullopt;
  Queued removed = std::move(*found);
  queue.backlog.erase(found);
  queued_bytes_.fetch_sub(Footprint(removed), std::memory_order_relaxed);
  UpdateGauges(queue);
  return removed;
}

absl::StatusOr<std::vector<TaskQueues::Queued>> TaskQueues::Take(
    const std::string& activity_arn, int max_tasks, size_t max_bytes, absl::Time deadline,
    const std::function<bool()>& cancelled, const std::string& worker_name, bool* handed) {
  std::vector<Queued> taken;
  if (handed != nullptr) *handed = false;
  Settled settled;
  absl::Cleanup answer = [&settled] { Answer(std::move(settled)); };
  absl::MutexLock lock(&mu_);
  Queue& queue = QueueFor(activity_arn);
  Waiter me;
  me.worker_name = worker_name;
  me.max_tasks = std::max(1, max_tasks);
  me.max_bytes = max_bytes;
  me.cancelled = &cancelled;
  auto leave_line = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (!me.listed) return;
    queue.waiters.erase(std::find(queue.waiters.begin(), queue.waiters.end(), &me));
    me.listed = false;
  };
  bool waited = false;
  while (true) {
    if (me.claims > 0 || !me.handed.empty()) {
      // Transitions are writing tasks for this poller: whatever else
      // happens, each hands its task over or lets go once its write
      // returns.
      while (me.claims > 0) me.wake.Wait(&mu_);
      if (!me.handed.empty()) {
        leave_line();
        taken = std::move(me.handed);
        if (handed != nullptr) *handed = true;
        // A wake-up for the backlog may have reached this poller while it
        // was claimed: pass it on.
        if (!queue.backlog.empty()) WakeOne(queue, &settled);
        CountHanded(queue, taken);
        return taken;
      }
      continue;  // all released: wait on as before
    }
    if (shut_down_) {
      leave_line();
      return absl::UnavailableError("the shard server is shutting down");
    }
    // A poller whose caller went away must not take a task it cannot hand
    // over; a wake-up meant for it goes to another.
    if (cancelled && cancelled()) {
      leave_line();
      if (!queue.backlog.empty()) WakeOne(queue, &settled);
      return taken;
    }
    if (!queue.backlog.empty()) {
      leave_line();
      break;
    }
    const absl::Time now = absl::Now();
    if (now >= deadline) {
      leave_line();
      if (queue.empty != nullptr) queue.empty->Increment();
      return taken;
    }
    if (!me.listed) {
      queue.waiters.push_back(&me);
      me.listed = true;
    }
    waited = true;
    me.wake.WaitWithDeadline(&mu_, std::min(deadline, now + kIdleRecheck));
  }
  size_t bytes = 0;
  const absl::Time now = clock_->Now();
  while (!queue.backlog.empty() && static_cast<int>(taken.size()) < std::max(1, max_tasks)) {
    const size_t size = queue.backlog.front().task.input().size();
    if (!taken.empty() && bytes + size > max_bytes) break;
    bytes += size;
    taken.push_back(std::move(queue.backlog.front()));
    queue.backlog.pop_front();
    queued_bytes_.fetch_sub(Footprint(taken.back()), std::memory_order_relaxed);
    if (queue.schedule_to_start != nullptr) {
      queue.schedule_to_start->Observe(std::max(
          0.0, absl::ToDoubleSeconds(now - FromProto(taken.back().task.scheduled_date()))));
      (waited ? queue.sync_match : queue.from_backlog)->Increment();
    }
  }
  UpdateGauges(queue);
  // More work than this poller took: pass the wake-up on.
  if (!queue.backlog.empty()) WakeOne(queue, &settled);
  return taken;
}

void TaskQueues::PutBack(const std::string& activity_arn, std::vector<Queued> tasks) {
  Settled settled;
  {
    absl::MutexLock lock(&mu_);
    Queue& queue = QueueFor(activity_arn);
    for (auto it = tasks.rbegin(); it != tasks.rend(); ++it) {
      queued_bytes_.fetch_add(Footprint(*it), std::memory_order_relaxed);
      queue.backlog.push_front(std::move(*it));
    }
    UpdateGauges(queue);
    WakeOne(queue, &settled);
  }
  Answer(std::move(settled));
}

size_t TaskQueues::WaitingPollers(const std::string& activity_arn) {
  absl::MutexLock lock(&mu_);
  auto it = queues_.find(activity_arn);
  return it == queues_.end() ? 0 : it->second->waiters.size();
}

size_t TaskQueues::BacklogSize(const std::string& activity_arn) {
  absl::MutexLock lock(&mu_);
  auto it = queues_.find(activity_arn);
  return it == queues_.end() ? 0 : it->second->backlog.size();
}

bool TaskQueues::EmptyNow(const std::string& activity_arn, bool watch) {
  absl::MutexLock lock(&mu_);
  if (shut_down_) return false;
  Queue& queue = QueueFor(activity_arn);
  if (!queue.backlog.empty()) return false;
  if (!watch && queue.empty != nullptr) queue.empty->Increment();
  return true;
}

void TaskQueues::Shutdown() {
  Settled settled;
  {
    absl::MutexLock lock(&mu_);
    shut_down_ = true;
    for (auto& [arn, queue] : queues_) {
      for (Waiter* waiter : queue->waiters) {
        if (!waiter->answer) waiter->wake.Signal();
      }
      queue->watched.SignalAll();
    }
    // Claimed polls are answered once their claims settle.
    std::vector<Waiter*> unclaimed;
    for (auto& [waiter, owned] : later_) {
      if (waiter->claims == 0) unclaimed.push_back(waiter);
    }
    for (Waiter* waiter : unclaimed) {
      Settle(waiter, absl::UnavailableError("the shard server is shutting down"), &settled);
    }
  }
  Answer(std::move(settled));
}

void TaskQueues::RefreshAges() {
  absl::MutexLock lock(&mu_);
  for (auto& [arn, queue] : queues_) UpdateGauges(*queue);
}

}  // namespace stepflow::execution
