#include "common/asl/fuzz/execution_driver.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/asl/interpreter.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "google/protobuf/util/message_differencer.h"
#include "rapidjson/stringbuffer.h"
#include "rapidjson/writer.h"

namespace stepflow::asl::fuzz {
namespace {

using ::stepflow::internal::v1::ExecutionState;

// An arbitrary fixed start, so runs replay exactly from their seed.
constexpr int64_t kStartUnixSeconds = 1700000000;

constexpr absl::string_view kActivityErrors[] = {
    "Boom",
    "Custom.Error",
    "States.TaskFailed",
    "States.Timeout",
    "States.HeartbeatTimeout",
    "States.Runtime",
    "States.ALL",
    "States.DataLimitExceeded",
    "",
    "Ünïcödé.Error",
    "States.Permissions",
};

absl::Time FromProto(const google::protobuf::Timestamp& ts) {
  return absl::FromUnixSeconds(ts.seconds()) + absl::Nanoseconds(ts.nanos());
}

// Map fields (assigned variables) in key order, so equal events give equal
// bytes.
std::string DeterministicBytes(const google::protobuf::Message& message) {
  std::string bytes;
  {
    google::protobuf::io::StringOutputStream stream(&bytes);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    message.SerializeToCodedStream(&coded);
  }
  return bytes;
}

// The closed_status that a close event type stands for, or empty.
absl::string_view CloseStatusOf(absl::string_view type) {
  if (type == "ExecutionSucceeded") return "SUCCEEDED";
  if (type == "ExecutionFailed") return "FAILED";
  if (type == "ExecutionTimedOut") return "TIMED_OUT";
  if (type == "ExecutionAborted") return "ABORTED";
  return "";
}

template <typename T>
const T& Pick(std::mt19937_64& rng, const std::vector<T>& items) {
  return items[std::uniform_int_distribution<size_t>(0, items.size() - 1)(rng)];
}

bool Chance(std::mt19937_64& rng, double p) {
  return std::uniform_real_distribution<double>(0, 1)(rng) < p;
}

int Uniform(std::mt19937_64& rng, int lo, int hi) {
  return std::uniform_int_distribution<int>(lo, hi)(rng);
}

// --- Random JSON ------------------------------------------------------------

using Writer = rapidjson::Writer<rapidjson::StringBuffer>;

void WriteString(Writer& w, absl::string_view s) {
  w.String(s.data(), static_cast<rapidjson::SizeType>(s.size()));
}

void WriteRandomScalar(std::mt19937_64& rng, Writer& w) {
  static const std::vector<std::string> kStrings = {
      "",
      "a",
      "abc",
      "hello world",
      "2024-01-01T00:00:00Z",
      "2023-11-14T22:13:20.5+01:00",
      "not-a-date",
      "h\xC3\xA9llo",
      "\xF0\x9F\x98\x80 emoji",
      std::string("nul\0inside", 10),
      "a*b",
      "{}",
      "{\"a\":[1,2]}",
      "YWJj",
      "1",
      "true",
      "$.a",
      "States.Format('x')",
      "\xE2\x80\xAE rtl",
  };
  switch (Uniform(rng, 0, 9)) {
    case 0:
      w.Null();
      return;
    case 1:
      w.Bool(Chance(rng, 0.5));
      return;
    case 2:
    case 3:
      w.Int(Uniform(rng, -3, 10));
      return;
    case 4: {
      switch (Uniform(rng, 0, 7)) {
        case 0:
          w.Int64(std::numeric_limits<int64_t>::max());
          return;
        case 1:
          w.Int64(std::numeric_limits<int64_t>::min());
          return;
        case 2:
          w.Uint64(std::numeric_limits<uint64_t>::max());
          return;
        case 3:
          w.Double(1e300);
          return;
        case 4:
          w.Double(-0.0);
          return;
        case 5:
          w.Double(5e-324);
          return;
        case 6:
          w.Int64(9007199254740993LL);
          return;
        default:
          w.Double(1.5);
          return;
      }
    }
    default:
      WriteString(w, Pick(rng, kStrings));
      return;
  }
}

void WriteRandomJson(std::mt19937_64& rng, int depth, Writer& w) {
  static const std::vector<std::string> kKeys = {
      "a", "b", "c", "n", "s", "t", "x", "items", "r", "v", "a b", ""};
  const int kind = depth <= 0 ? 0 : Uniform(rng, 0, 3);
  if (kind == 0 || kind == 1) {
    WriteRandomScalar(rng, w);
  } else if (kind == 2) {
    w.StartObject();
    const int n = Uniform(rng, 0, 4);
    for (int i = 0; i < n; ++i) {
      WriteString(w, Pick(rng, kKeys));
      WriteRandomJson(rng, depth - 1, w);
    }
    w.EndObject();
  } else {
    w.StartArray();
    const int n = Uniform(rng, 0, 4);
    for (int i = 0; i < n; ++i) WriteRandomJson(rng, depth - 1, w);
    w.EndArray();
  }
}

// --- Loops that never wait --------------------------------------------------

// A machine that cannot finish before its first state waits.
bool StartsByWaiting(const StateMachine& machine) {
  const State* start = machine.Find(machine.start_at);
  if (start == nullptr) return false;
  if (start->type == StateType::kTask) return true;
  return start->type == StateType::kWait && start->seconds.value.has_value() &&
         *start->seconds.value > 0 &&
         start->input_path.kind == PathField::Kind::kDefault;
}

// Transitions out of `state` that may be taken in the same interpreter call
// that entered it.
std::vector<const std::string*> ImmediateTransitions(const State& state) {
  std::vector<const std::string*> out;
  auto add = [&](const std::string& name) {
    if (!name.empty()) out.push_back(&name);
  };
  switch (state.type) {
    case StateType::kPass:
      add(state.next);
      break;
    case StateType::kChoice:
      for (const auto& rule : state.choices) add(rule->next());
      for (const ConditionRule& rule : state.conditions) add(rule.next);
      add(state.default_next);
      break;
    case StateType::kWait:
      if (!(state.seconds.value.has_value() && *state.seconds.value > 0))
        add(state.next);
      break;
    case StateType::kParallel: {
      // A branch that fails at once fails the state, so Catch is immediate;
      // Next only when every branch may finish at once.
      bool may_finish = true;
      for (const auto& branch : state.branches)
        may_finish &= !StartsByWaiting(*branch);
      if (may_finish) add(state.next);
      for (const Catcher& catcher : state.catchers) add(catcher.next);
      break;
    }
    case StateType::kMap:  // an empty item list finishes at once
      add(state.next);
      for (const Catcher& catcher : state.catchers) add(catcher.next);
      break;
    case StateType::kTask:  // waits for its activity (or fails uncatchably)
      // A JSONata Task's Arguments may fail to evaluate, which Catch handles.
      if (state.jsonata) {
        for (const Catcher& catcher : state.catchers) add(catcher.next);
      }
      break;
    case StateType::kSucceed:
    case StateType::kFail:
      break;
  }
  return out;
}

bool MachineMayLoop(const StateMachine& machine) {
  for (const auto& [name, state] : machine.states) {
    for (const auto& branch : state.branches) {
      if (MachineMayLoop(*branch)) return true;
    }
    if (state.processor && MachineMayLoop(*state.processor)) return true;
  }
  // Depth-first search for a back edge, iteratively (machines can be long).
  enum Color { kWhite, kGrey, kBlack };
  std::map<std::string, Color, std::less<>> color;
  for (const auto& [name, state] : machine.states) {
    if (color[name] != kWhite) continue;
    std::vector<std::pair<const State*, size_t>> stack;
    std::vector<std::vector<const std::string*>> edges;
    color[name] = kGrey;
    stack.emplace_back(&state, 0);
    edges.push_back(ImmediateTransitions(state));
    while (!stack.empty()) {
      auto& [current, next_edge] = stack.back();
      if (next_edge == edges.back().size()) {
        color[current->name] = kBlack;
        stack.pop_back();
        edges.pop_back();
        continue;
      }
      const std::string& target = *edges.back()[next_edge++];
      const State* target_state = machine.Find(target);
      if (target_state == nullptr) continue;
      Color& c = color[target];
      if (c == kGrey) return true;
      if (c == kBlack) continue;
      c = kGrey;
      stack.emplace_back(target_state, 0);
      edges.push_back(ImmediateTransitions(*target_state));
    }
  }
  return false;
}

// --- The driver -------------------------------------------------------------

class Driver {
 public:
  Driver(const Definition& definition, absl::string_view input,
         std::mt19937_64& rng, const DriveOptions& options)
      : definition_(definition), input_(input), rng_(rng), options_(options) {
    context_.execution_arn =
        "arn:aws:states:us-east-1:123456789012:execution:fuzz:e1";
    context_.execution_name = "e1";
    context_.execution_input = std::string(input);
    context_.state_machine_arn =
        "arn:aws:states:us-east-1:123456789012:stateMachine:fuzz";
    context_.state_machine_name = "fuzz";
    context_.role_arn = "arn:aws:iam::123456789012:role/fuzz";
    context_.start_time = now_;
    context_.mint_task_token = [](int64_t id) {
      return absl::StrCat("token-", id);
    };
    if (Chance(rng_, 0.5)) {
      // Jitter and States.UUID draw from here; 0 and values near 1 are the
      // interesting ends.
      context_.random_unit = [this] {
        switch (Uniform(rng_, 0, 3)) {
          case 0:
            return 0.0;
          case 1:
            return std::nextafter(1.0, 0.0);
          default:
            return std::uniform_real_distribution<double>(0, 1)(rng_);
        }
      };
    }
    // Serialized forms are only checked when the shard could have been given
    // this definition and input (gRPC strings are valid UTF-8).
    check_round_trip_ = options.check_serialization && IsValidUtf8(input);
  }

  DriveResult Run() {
    Interpreter interpreter(definition_, context_);
    interpreter_ = &interpreter;
    Absorb(interpreter.Start(&state_, input_, now_), "Start");
    while (!closed_ && result_.steps < options_.max_steps &&
           result_.events < options_.max_events && result_.violations.empty()) {
      ++result_.steps;
      if (!Step()) {
        Violation(
            "the execution is running but waits for no task and no timer");
        break;
      }
    }
    if (closed_) ProbeAfterClose();
    interpreter_ = nullptr;
    return std::move(result_);
  }

 private:
  struct PendingTask {
    int64_t id;
    bool started = false;
  };

  void Violation(std::string text) {
    if (result_.violations.size() < 10) {
      result_.violations.push_back(
          absl::StrCat(text, " (after ", result_.events, " events)"));
    }
  }

  void Absorb(const Outcome& outcome, absl::string_view call) {
    bool closed_here = false;
    if (options_.trace != nullptr) {
      options_.trace->push_back(absl::StrCat(call, " at ",
                                             absl::FormatTime(now_)));
      for (const v1::HistoryEvent& event : outcome.events) {
        options_.trace->push_back(absl::StrCat("  ", event.ShortDebugString()));
      }
    }
    for (size_t k = 0; k < outcome.events.size(); ++k) {
      const v1::HistoryEvent& event = outcome.events[k];
      if (closed_ || closed_here) {
        Violation(absl::StrCat(call, ": event ", event.id(), " (", event.type(),
                               ") after the execution closed"));
      }
      if (event.id() != next_event_id_) {
        Violation(absl::StrCat(call, ": event id ", event.id(), " (",
                               event.type(), "), expected ", next_event_id_));
      }
      next_event_id_ = event.id() + 1;
      if ((event.id() == 1) != (event.type() == "ExecutionStarted")) {
        Violation(
            absl::StrCat(call, ": event ", event.id(), " is ", event.type()));
      }
      if (event.previous_event_id() < 0 ||
          event.previous_event_id() >= event.id()) {
        Violation(absl::StrCat(call, ": event ", event.id(),
                               " names previous event ",
                               event.previous_event_id()));
      }
      const absl::Time at = FromProto(event.timestamp());
      if (at < last_event_time_) {
        Violation(absl::StrCat(call, ": event ", event.id(), " at ",
                               absl::FormatTime(at),
                               " is earlier than the one before"));
      }
      last_event_time_ = at;
      if (absl::string_view status = CloseStatusOf(event.type());
          !status.empty()) {
        closed_here = true;
        if (k + 1 != outcome.events.size()) {
          Violation(absl::StrCat(call, ": close event ", event.type(),
                                 " is not the last"));
        }
        if (status != outcome.closed_status) {
          Violation(absl::StrCat(call, ": ", event.type(),
                                 " with closed_status '", outcome.closed_status,
                                 "'"));
        }
      }
      // Text format: no complaints about invalid UTF-8, map keys sorted.
      for (unsigned char c : event.ShortDebugString()) {
        result_.history_hash = (result_.history_hash ^ c) * 1099511628211ull;
      }
      if (check_round_trip_) {
        v1::HistoryEvent copy;
        if (!copy.ParseFromString(DeterministicBytes(event))) {
          Violation(absl::StrCat(
              call, ": event ", event.id(), " (", event.type(),
              ") does not survive serialization (invalid UTF-8?)"));
        }
      }
    }
    if (!outcome.closed_status.empty()) {
      if (!closed_here) {
        Violation(absl::StrCat(call, ": closed_status ", outcome.closed_status,
                               " without a close event"));
      }
      if (!state_.frames().empty()) {
        Violation(absl::StrCat(call, ": ", state_.frames_size(),
                               " frames survive the close"));
      }
      closed_ = true;
      result_.closed_status = outcome.closed_status;
    }
    for (const TimerRequest& timer : outcome.timers) {
      if (timer.fire_at < now_) {
        Violation(absl::StrCat(
            call, ": timer ", timer.timer_id, " armed in the past (",
            absl::FormatDuration(timer.fire_at - now_), ")"));
      }
      timers_.push_back(timer);
    }
    for (const ActivityDispatch& dispatch : outcome.dispatches) {
      const bool named =
          std::any_of(outcome.events.begin(), outcome.events.end(),
                      [&](const v1::HistoryEvent& e) {
                        return e.id() == dispatch.scheduled_event_id &&
                               e.type() == "ActivityScheduled";
                      });
      // Activities of a distributed map's child executions are scheduled
      // by events outside this history.
      if (!named && dispatch.scheduled_event_id < kFirstChildEventId) {
        Violation(absl::StrCat(
            call, ": dispatch for event ", dispatch.scheduled_event_id,
            " which is not an ActivityScheduled event of the transition"));
      }
      tasks_.push_back(PendingTask{dispatch.scheduled_event_id});
      all_task_ids_.push_back(dispatch.scheduled_event_id);
    }
    if (check_round_trip_) {
      ExecutionState copy;
      if (!copy.ParseFromString(state_.SerializeAsString())) {
        Violation(absl::StrCat(
            call, ": the execution state does not survive serialization"));
      }
    }
    result_.events += static_cast<int64_t>(outcome.events.size());
  }

  // A call the interpreter rejected must leave the state as it was.
  void CheckRejected(const ExecutionState& before, absl::string_view call) {
    if (!google::protobuf::util::MessageDifferencer::Equals(before, state_)) {
      Violation(
          absl::StrCat(call, " was rejected but changed the execution state"));
    }
  }

  void Deliver(const absl::StatusOr<Outcome>& outcome,
               const ExecutionState& before, absl::string_view call) {
    if (outcome.ok()) {
      Absorb(*outcome, call);
    } else {
      CheckRejected(before, call);
    }
  }

  void MaybeAdvanceClock() {
    if (Chance(rng_, 0.5)) now_ += absl::Seconds(Uniform(rng_, 0, 120));
  }

  std::string ActivityOutput() {
    switch (Uniform(rng_, 0, 39)) {
      case 0:
        return "not json";
      case 1:
        return std::string(300 * 1024, '7');  // a number over 256 KiB
      case 2:
        return absl::StrCat("\"", std::string(270 * 1024, 'x'), "\"");
      case 3:
        return std::string(500, '[') + std::string(500, ']');
      default:
        return RandomJson(rng_, 3);
    }
  }

  // Delivers one external event; false when there is nothing to deliver.
  bool Step() {
    tasks_.erase(std::remove_if(tasks_.begin(), tasks_.end(),
                                [&](const PendingTask& t) {
                                  return !Interpreter::AwaitsTask(state_, t.id);
                                }),
                 tasks_.end());
    if (tasks_.empty() && timers_.empty()) return false;
    const ExecutionState before = state_;
    const int roll = Uniform(rng_, 0, 99);
    if (roll == 0 && Chance(rng_, 0.3)) {
      now_ += absl::Seconds(Uniform(rng_, 0, 5));
      Absorb(interpreter_->Abort(&state_, "Fuzz.Stop", "stopped by the driver",
                                 now_),
             "Abort");
      return true;
    }
    if (roll < 6) {
      StaleReport(before);
      return true;
    }
    const bool timer = !timers_.empty() && (tasks_.empty() || roll < 50);
    if (timer) {
      // Mostly the earliest, as a clock would; sometimes another one late.
      auto it =
          std::min_element(timers_.begin(), timers_.end(),
                           [](const TimerRequest& a, const TimerRequest& b) {
                             return a.fire_at < b.fire_at;
                           });
      if (Chance(rng_, 0.2)) {
        it = timers_.begin() +
             Uniform(rng_, 0, static_cast<int>(timers_.size()) - 1);
      }
      const TimerRequest request = *it;
      timers_.erase(it);
      fired_timers_.push_back(request.timer_id);
      now_ = std::max(now_, request.fire_at);
      Deliver(interpreter_->TimerFired(&state_, request.timer_id, now_), before,
              absl::StrCat("TimerFired(", request.timer_id, ")"));
      return true;
    }
    PendingTask& task =
        tasks_[Uniform(rng_, 0, static_cast<int>(tasks_.size()) - 1)];
    const int64_t id = task.id;
    MaybeAdvanceClock();
    const int action = Uniform(rng_, 0, 99);
    if (action < 20) {
      const bool again = task.started;
      task.started = true;
      auto outcome =
          interpreter_->ActivityStarted(&state_, id, "fuzz-worker", now_);
      if (again && outcome.ok() && !outcome->events.empty()) {
        Violation(absl::StrCat("ActivityStarted(", id, ") twice gave events"));
      }
      Deliver(outcome, before, absl::StrCat("ActivityStarted(", id, ")"));
    } else if (action < 55) {
      Deliver(
          interpreter_->ActivitySucceeded(&state_, id, ActivityOutput(), now_),
          before, absl::StrCat("ActivitySucceeded(", id, ")"));
    } else if (action < 85) {
      const absl::string_view error =
          kActivityErrors[Uniform(rng_, 0, std::size(kActivityErrors) - 1)];
      Deliver(interpreter_->ActivityFailed(&state_, id, error, "fuzzed cause",
                                           now_),
              before, absl::StrCat("ActivityFailed(", id, ", ", error, ")"));
    } else if (action < 95) {
      Deliver(interpreter_->ActivityHeartbeat(&state_, id, now_), before,
              absl::StrCat("ActivityHeartbeat(", id, ")"));
    } else {
      Deliver(
          interpreter_->ActivityDoesNotExist(
              &state_, id, "arn:aws:states:us-east-1:1:activity:gone", now_),
          before, absl::StrCat("ActivityDoesNotExist(", id, ")"));
    }
    return true;
  }

  // A report about a task or timer that is not awaited: must be rejected.
  void StaleReport(const ExecutionState& before) {
    if (Chance(rng_, 0.5)) {
      int64_t id = state_.next_event_id() + Uniform(rng_, 0, 5);
      if (!all_task_ids_.empty() && Chance(rng_, 0.7))
        id = Pick(rng_, all_task_ids_);
      if (Interpreter::AwaitsTask(state_, id)) return;
      absl::StatusOr<Outcome> outcome =
          Chance(rng_, 0.5)
              ? interpreter_->ActivitySucceeded(&state_, id, "{}", now_)
              : interpreter_->ActivityFailed(&state_, id, "Boom", "", now_);
      if (outcome.ok()) {
        Violation(absl::StrCat("a report for task ", id,
                               ", which is not awaited, was accepted"));
        Absorb(*outcome, "stale activity report");
      } else {
        CheckRejected(before, absl::StrCat("stale activity report ", id));
      }
      return;
    }
    int64_t id = state_.next_timer_id() + Uniform(rng_, 1, 5);
    if (!fired_timers_.empty() && Chance(rng_, 0.7))
      id = Pick(rng_, fired_timers_);
    auto outcome = interpreter_->TimerFired(&state_, id, now_);
    if (outcome.ok()) {
      Violation(absl::StrCat("timer ", id,
                             ", already fired or never armed, was accepted"));
      Absorb(*outcome, "stale timer");
    } else {
      CheckRejected(before, absl::StrCat("stale timer ", id));
    }
  }

  // Nothing a closed execution is sent may add to its history.
  void ProbeAfterClose() {
    for (const TimerRequest& timer : timers_) {
      auto outcome = interpreter_->TimerFired(&state_, timer.timer_id,
                                              std::max(now_, timer.fire_at));
      if (outcome.ok() && !outcome->events.empty()) {
        Violation(absl::StrCat("timer ", timer.timer_id,
                               " fired after the close added ",
                               outcome->events[0].type()));
      }
    }
    for (int64_t id : all_task_ids_) {
      auto outcome = interpreter_->ActivitySucceeded(&state_, id, "{}", now_);
      if (outcome.ok() && !outcome->events.empty()) {
        Violation(absl::StrCat("task ", id, " answered after the close added ",
                               outcome->events[0].type()));
      }
    }
  }

  const Definition& definition_;
  const std::string input_;
  std::mt19937_64& rng_;
  const DriveOptions options_;
  absl::Time now_ = absl::FromUnixSeconds(kStartUnixSeconds);
  absl::Time last_event_time_ = absl::InfinitePast();
  ExecutionContext context_;
  Interpreter* interpreter_ = nullptr;
  ExecutionState state_;
  int64_t next_event_id_ = 1;
  bool closed_ = false;
  bool check_round_trip_ = true;
  std::vector<TimerRequest> timers_;
  std::vector<int64_t> fired_timers_;
  std::vector<PendingTask> tasks_;
  std::vector<int64_t> all_task_ids_;
  DriveResult result_;
};

}  // namespace

DriveResult DriveExecution(const Definition& definition,
                           absl::string_view input, std::mt19937_64& rng,
                           const DriveOptions& options) {
  return Driver(definition, input, rng, options).Run();
}

bool MayLoopWithoutWaiting(const Definition& definition) {
  return MachineMayLoop(definition.root());
}

std::string RandomJson(std::mt19937_64& rng, int depth) {
  rapidjson::StringBuffer buffer;
  Writer writer(buffer);
  WriteRandomJson(rng, depth, writer);
  return std::string(buffer.GetString(), buffer.GetSize());
}

bool IsValidUtf8(absl::string_view text) {
  size_t i = 0;
  while (i < text.size()) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    int extra;
    uint32_t cp;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      extra = 1;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      extra = 2;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      extra = 3;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (i + extra >= text.size()) return false;
    for (int k = 1; k <= extra; ++k) {
      const unsigned char next = static_cast<unsigned char>(text[i + k]);
      if ((next & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (next & 0x3F);
    }
    static constexpr uint32_t kMin[] = {0, 0x80, 0x800, 0x10000};
    if (cp < kMin[extra] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
      return false;
    i += extra + 1;
  }
  return true;
}

}  // namespace stepflow::asl::fuzz
