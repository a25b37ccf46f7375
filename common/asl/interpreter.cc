#include "common/asl/interpreter.h"

#include <algorithm>
#include <cmath>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/asl/timestamp.h"
#include "google/protobuf/timestamp.pb.h"

namespace stepflow::asl {
namespace {

using ::stepflow::internal::v1::ExecutionState;
using ::stepflow::internal::v1::Frame;

// What a frame's timer_id waits for.
enum TimerKind : int32_t { kWaitTimer = 1, kRetryTimer = 2 };

constexpr char kRuntime[] = "States.Runtime";
constexpr char kTimeout[] = "States.Timeout";
constexpr char kHeartbeatTimeout[] = "States.HeartbeatTimeout";

void SetTimestamp(absl::Time time, google::protobuf::Timestamp* out) {
  const int64_t nanos = absl::ToUnixNanos(time);
  out->set_seconds(nanos / 1000000000);
  out->set_nanos(static_cast<int32_t>(nanos % 1000000000));
}

absl::Time FromProto(const google::protobuf::Timestamp& ts) {
  return absl::FromUnixSeconds(ts.seconds()) + absl::Nanoseconds(ts.nanos());
}

// An ASL error raised while running a state.
struct StateError {
  std::string error;
  std::string cause;
  // A missed heartbeat: reported as States.Timeout, but also matched by
  // States.HeartbeatTimeout.
  bool heartbeat = false;
};

// AWS's limit on the history of one execution.
constexpr int64_t kMaxHistoryEvents = 25000;

// Largest state input, output or result AWS accepts (256 KiB).
constexpr size_t kMaxPayloadBytes = 256 * 1024;

// Whether an ErrorEquals list matches `error` (AWS's rules: States.ALL
// matches everything but States.Runtime, which nothing catches;
// States.TaskFailed everything but that and the timeouts).
bool Matches(const std::vector<std::string>& error_equals, const StateError& failure) {
  const std::string& error = failure.error;
  if (error == kRuntime) return false;
  for (const std::string& name : error_equals) {
    if (name == error) return true;
    if (name == kHeartbeatTimeout && failure.heartbeat) return true;
    if (name == "States.ALL") return true;
    if (name == "States.TaskFailed" && error != kTimeout && error != kHeartbeatTimeout) {
      return true;
    }
  }
  return false;
}

json::Value StringValue(absl::string_view text, json::Allocator& a) {
  return json::Value(text.data(), static_cast<rapidjson::SizeType>(text.size()), a);
}

}  // namespace

// One transition: runs frames until every one waits or the execution
// closes, accumulating events and effects into an Outcome.
class Interpreter::Run {
 public:
  Run(const Interpreter& interpreter, ExecutionState* state, absl::Time now)
      : definition_(interpreter.definition_),
        context_(interpreter.context_),
        state_(state),
        now_(now) {}

  Outcome Finish() { return std::move(outcome_); }
  bool closed() const { return !outcome_.closed_status.empty(); }

  // --- Events ---------------------------------------------------------------

  v1::HistoryEvent* Emit(absl::string_view type, bool advance_cursor = true) {
    v1::HistoryEvent& event = outcome_.events.emplace_back();
    event.set_type(std::string(type));
    const int64_t id = state_->next_event_id() == 0 ? 1 : state_->next_event_id();
    event.set_id(id);
    // AWS links each event to the one before it, except that the first
    // state entered names no predecessor, and a Map iteration's end event
    // does not become the predecessor of what follows.
    const bool first_state = id == 2 && absl::EndsWith(type, "StateEntered");
    event.set_previous_event_id(first_state ? 0 : state_->last_event_id());
    SetTimestamp(now_, event.mutable_timestamp());
    state_->set_next_event_id(id + 1);
    if (advance_cursor) state_->set_last_event_id(id);
    return &event;
  }

  // --- Frames ---------------------------------------------------------------

  Frame* F(int64_t id) {
    auto* frames = state_->mutable_frames();
    auto it = frames->find(id);
    return it == frames->end() ? nullptr : &it->second;
  }

  Frame* NewFrame(int64_t parent, int32_t index) {
    const int64_t id = state_->next_frame_id() + 1;
    state_->set_next_frame_id(id);
    Frame& frame = (*state_->mutable_frames())[id];
    frame.set_id(id);
    frame.set_parent_id(parent);
    frame.set_index(index);
    return &frame;
  }

  const StateMachine* MachineOf(const Frame& frame) {
    if (frame.parent_id() == 0) return &definition_.root();
    Frame* parent = F(frame.parent_id());
    if (parent == nullptr) return nullptr;
    const State* owner = StateOf(*parent);
    if (owner == nullptr) return nullptr;
    if (owner->type == StateType::kParallel) {
      return frame.index() < static_cast<int>(owner->branches.size())
                 ? owner->branches[frame.index()].get()
                 : nullptr;
    }
    return owner->processor.get();
  }

  const State* StateOf(const Frame& frame) {
    const StateMachine* machine = MachineOf(frame);
    return machine == nullptr ? nullptr : machine->Find(frame.state());
  }

  // Removes a frame and everything below it, giving up their tasks.
  // The frames whose parent is `parent_id` (0: the top-level ones), in
  // creation order. The frames map iterates in no fixed order, and events
  // emitted per child must come out the same on every run and replica.
  std::vector<int64_t> ChildrenOf(int64_t parent_id) const {
    std::vector<int64_t> children;
    for (const auto& [id, frame] : state_->frames()) {
      if (frame.parent_id() == parent_id) children.push_back(id);
    }
    std::sort(children.begin(), children.end());
    return children;
  }

  void DropFrame(int64_t id) {
    for (int64_t child : ChildrenOf(id)) DropFrame(child);
    if (Frame* frame = F(id); frame != nullptr && frame->scheduled_event_id() != 0) {
      outcome_.cancelled_tasks.push_back(frame->scheduled_event_id());
    }
    state_->mutable_frames()->erase(id);
  }

  void DropChildren(int64_t id) {
    for (int64_t child : ChildrenOf(id)) DropFrame(child);
  }

  // --- The work queue -------------------------------------------------------
  // States are entered from a FIFO queue rather than by recursion, so long
  // synchronous chains cannot exhaust the stack, and Parallel branches
  // advance in step as they do on AWS.

  void Enqueue(int64_t frame, std::string name, std::string input) {
    queue_.push_back(Step{frame, std::move(name), std::move(input)});
  }

  void Drain() {
    ++drain_depth_;
    while (!queue_.empty() && !closed()) {
      Step step = std::move(queue_.front());
      queue_.pop_front();
      if (F(step.frame) == nullptr) continue;  // dropped meanwhile
      EnterState(step.frame, step.name, std::move(step.input));
      // Between two steps of the outermost loop no temporary document is
      // alive: their memory can be reused.
      if (drain_depth_ == 1) {
        arena_.Clear();
        context_docs_.clear();
      }
      // AWS ends an execution whose history outgrows its limit, which also
      // bounds a loop that never waits.
      if (!closed() && state_->next_event_id() > kMaxHistoryEvents) {
        FailExecution(kRuntime,
                      absl::StrCat("The execution reached the maximum number of history "
                                   "events (", kMaxHistoryEvents, ")."));
      }
    }
    --drain_depth_;
    if (closed()) queue_.clear();
  }

  // --- Execution-level ------------------------------------------------------

  void Start(absl::string_view input) {
    state_->set_next_event_id(1);
    auto* details = Emit("ExecutionStarted")->mutable_execution_started_event_details();
    details->set_input(std::string(input));
    details->mutable_input_details()->set_truncated(false);
    details->set_role_arn(context_.role_arn);
    if (definition_.timeout_seconds() > 0) {
      state_->set_execution_timeout_timer(ArmTimer(absl::Seconds(definition_.timeout_seconds())));
    }
    Frame* root = NewFrame(0, 0);
    Enqueue(root->id(), definition_.start_at(), std::string(input));
    Drain();
  }

  void Redrive() {
    *state_->mutable_frames() = state_->redrive_frames();
    state_->clear_redrive_frames();
    Emit("ExecutionRedriven")
        ->mutable_execution_redriven_event_details()
        ->set_redrive_count(context_.redrive_count);
    if (definition_.timeout_seconds() > 0) {
      state_->set_execution_timeout_timer(ArmTimer(absl::Seconds(definition_.timeout_seconds())));
    }
    // Frames waiting for children keep waiting; the others enter their
    // state again.
    std::set<int64_t> parents;
    for (const auto& [id, frame] : state_->frames()) parents.insert(frame.parent_id());
    std::vector<int64_t> leaves;
    for (const auto& [id, frame] : state_->frames()) {
      if (!parents.count(id)) leaves.push_back(id);
    }
    std::sort(leaves.begin(), leaves.end());
    for (int64_t id : leaves) {
      const Frame& frame = *F(id);
      Enqueue(id, frame.state(), frame.input());
    }
    Drain();
  }

  void CloseExecution(absl::string_view status) {
    outcome_.closed_status = std::string(status);
    state_->clear_execution_timeout_timer();
    if (status != "SUCCEEDED") {
      *state_->mutable_redrive_frames() =
          redrive_snapshot_.has_value() ? *redrive_snapshot_ : state_->frames();
    }
    for (int64_t id : ChildrenOf(0)) DropFrame(id);
    queue_.clear();
  }

  void SucceedExecution(const std::string& output) {
    auto* details = Emit("ExecutionSucceeded")->mutable_execution_succeeded_event_details();
    details->set_output(output);
    details->mutable_output_details()->set_truncated(false);
    outcome_.output = output;
    CloseExecution("SUCCEEDED");
  }

  void FailExecution(absl::string_view error, absl::string_view cause) {
    auto* details = Emit("ExecutionFailed")->mutable_execution_failed_event_details();
    details->set_error(std::string(error));
    details->set_cause(std::string(cause));
    outcome_.error = std::string(error);
    outcome_.cause = std::string(cause);
    CloseExecution("FAILED");
  }

  void AbortExecution(absl::string_view error, absl::string_view cause) {
    auto* details = Emit("ExecutionAborted")->mutable_execution_aborted_event_details();
    details->set_error(std::string(error));
    details->set_cause(std::string(cause));
    outcome_.error = std::string(error);
    outcome_.cause = std::string(cause);
    CloseExecution("ABORTED");
  }

  void TimeOutExecution() {
    auto* details = Emit("ExecutionTimedOut")->mutable_execution_timed_out_event_details();
    details->set_error(kTimeout);
    details->set_cause("The execution timed out");
    outcome_.error = kTimeout;
    outcome_.cause = "The execution timed out";
    CloseExecution("TIMED_OUT");
  }

  int64_t ArmTimer(absl::Duration delay) {
    const int64_t id = state_->next_timer_id() + 1;
    state_->set_next_timer_id(id);
    outcome_.timers.push_back(TimerRequest{id, now_ + delay});
    return id;
  }

  // --- States ---------------------------------------------------------------

  void EnterState(int64_t frame_id, const std::string& name, std::string input) {
    Frame* frame = F(frame_id);
    const StateMachine* machine = MachineOf(*frame);
    const State* state = machine == nullptr ? nullptr : machine->Find(name);
    if (state == nullptr) {
      // Validation guarantees targets exist; a definition that lost one is
      // failed rather than left hanging.
      FailExecution(kRuntime, absl::StrCat("State '", name, "' does not exist"));
      return;
    }
    v1::HistoryEvent* entered = Emit(absl::StrCat(StateTypeName(state->type), "StateEntered"));
    auto* details = entered->mutable_state_entered_event_details();
    details->set_name(name);
    details->set_input(input);
    details->mutable_input_details()->set_truncated(false);
    Frame fresh;
    fresh.set_id(frame->id());
    fresh.set_parent_id(frame->parent_id());
    fresh.set_index(frame->index());
    fresh.set_item_value(frame->item_value());
    *fresh.mutable_variables() = frame->variables();
    fresh.set_state(name);
    fresh.set_input(std::move(input));
    fresh.set_entered_event_id(entered->id());
    SetTimestamp(now_, fresh.mutable_entered_time());
    *frame = std::move(fresh);
    Execute(frame_id);
  }

  // Runs the frame's current state (also again after a retry backoff).
  void Execute(int64_t frame_id) {
    Frame* frame = F(frame_id);
    const State& state = *StateOf(*frame);
    switch (state.type) {
      case StateType::kPass:
        RunPass(frame_id, state);
        return;
      case StateType::kTask:
        ScheduleTask(frame_id, state);
        return;
      case StateType::kChoice:
        RunChoice(frame_id, state);
        return;
      case StateType::kWait:
        RunWait(frame_id, state);
        return;
      case StateType::kSucceed:
        RunSucceed(frame_id, state);
        return;
      case StateType::kFail:
        RunFail(frame_id, state);
        return;
      case StateType::kParallel:
        StartParallel(frame_id, state);
        return;
      case StateType::kMap:
        StartMap(frame_id, state);
        return;
    }
  }

  // Emits <Type>StateExited with the output and the variables assigned,
  // and applies the assignments.
  void EmitExited(int64_t frame_id, const State& state, const std::string& output,
                  const std::map<std::string, std::string>& assigned) {
    auto* details = Emit(absl::StrCat(StateTypeName(state.type), "StateExited"))
                        ->mutable_state_exited_event_details();
    details->set_name(state.name);
    details->set_output(output);
    details->mutable_output_details()->set_truncated(false);
    ApplyAssignments(frame_id, assigned, details);
  }

  // Emits <Type>StateExited and moves on: to Next, or ends the frame.
  void ExitState(int64_t frame_id, const State& state, std::string output,
                 const std::map<std::string, std::string>& assigned = {}) {
    if (output.size() > kMaxPayloadBytes) {
      HandleError(frame_id,
                  StateError{"States.DataLimitExceeded",
                             absl::StrCat("The state/task '", state.name,
                                          "' returned a result with a size exceeding the "
                                          "maximum number of bytes service limit.")});
      return;
    }
    EmitExited(frame_id, state, output, assigned);
    if (state.end) {
      FrameSucceeded(frame_id, std::move(output));
    } else {
      Enqueue(frame_id, state.next, std::move(output));
    }
  }

  void FrameSucceeded(int64_t frame_id, std::string output) {
    Frame* frame = F(frame_id);
    if (frame->parent_id() == 0) {
      SucceedExecution(output);
      return;
    }
    const int64_t parent_id = frame->parent_id();
    const int32_t index = frame->index();
    Frame* parent = F(parent_id);
    const State* owner = StateOf(*parent);
    if (owner->type == StateType::kMap) {
      auto* details = Emit("MapIterationSucceeded", /*advance_cursor=*/false)
                          ->mutable_map_iteration_succeeded_event_details();
      details->set_name(owner->name);
      details->set_index(index);
    }
    *parent->mutable_child_outputs(index) = std::move(output);
    parent->set_running_children(parent->running_children() - 1);
    DropFrame(frame_id);
    ChildDone(parent_id);
  }

  void FrameFailed(int64_t frame_id, const StateError& failure) {
    Frame* frame = F(frame_id);
    if (frame->parent_id() == 0) {
      FailExecution(failure.error, failure.cause);
      return;
    }
    // What a redrive reopens if this failure ends the execution: the
    // frames before the failed one's siblings are cut short.
    if (!redrive_snapshot_.has_value()) redrive_snapshot_ = state_->frames();
    const int64_t parent_id = frame->parent_id();
    Frame* parent = F(parent_id);
    const State* owner = StateOf(*parent);
    if (owner->type == StateType::kMap) {
      auto* details = Emit("MapIterationFailed", /*advance_cursor=*/false)
                          ->mutable_map_iteration_failed_event_details();
      details->set_name(owner->name);
      details->set_index(frame->index());
    }
    // A failing branch or iteration stops the others; AWS records what was
    // cut short.
    if (const State* failing = StateOf(*frame);
        failing != nullptr && failing->type == StateType::kTask) {
      Emit("TaskStateAborted");
    }
    for (int64_t sibling : ChildrenOf(parent_id)) {
      if (sibling != frame_id) EmitAborted(sibling, owner);
    }
    DropChildren(parent_id);
    parent = F(parent_id);
    parent->set_waiting_children(false);
    if (!WillRetry(*parent, *owner, failure)) {
      Emit(owner->type == StateType::kMap ? "MapStateFailed" : "ParallelStateFailed");
    }
    HandleError(parent_id, failure);
  }

  // Events for a frame stopped because a sibling failed: its running state
  // is aborted, and a Map iteration too.
  void EmitAborted(int64_t frame_id, const State* owner) {
    const std::vector<int64_t> children = ChildrenOf(frame_id);
    Frame* frame = F(frame_id);
    if (const State* current = StateOf(*frame); current != nullptr) {
      for (int64_t child : children) EmitAborted(child, current);
      if (current->type == StateType::kTask || current->type == StateType::kWait ||
          current->type == StateType::kParallel || current->type == StateType::kMap) {
        Emit(absl::StrCat(StateTypeName(current->type), "StateAborted"));
      }
    }
    if (owner != nullptr && owner->type == StateType::kMap) {
      auto* details = Emit("MapIterationAborted", /*advance_cursor=*/false)
                          ->mutable_map_iteration_aborted_event_details();
      details->set_name(owner->name);
      details->set_index(frame->index());
    }
  }

  // Whether HandleError will schedule a retry for `failure`.
  static bool WillRetry(const Frame& frame, const State& state, const StateError& failure) {
    for (size_t i = 0; i < state.retry.size(); ++i) {
      const Retrier& retrier = state.retry[i];
      if (!Matches(retrier.error_equals, failure)) continue;
      const int attempts = static_cast<int>(i) < frame.retrier_attempts_size()
                               ? frame.retrier_attempts(static_cast<int>(i))
                               : 0;
      return attempts < retrier.max_attempts;
    }
    return false;
  }

  // Retry, then Catch, then fail the frame.
  void HandleError(int64_t frame_id, const StateError& failure) {
    Frame* frame = F(frame_id);
    const State& state = *StateOf(*frame);
    for (size_t i = 0; i < state.retry.size(); ++i) {
      const Retrier& retrier = state.retry[i];
      if (!Matches(retrier.error_equals, failure)) continue;
      while (frame->retrier_attempts_size() <= static_cast<int>(i)) frame->add_retrier_attempts(0);
      const int attempts = frame->retrier_attempts(static_cast<int>(i));
      if (attempts >= retrier.max_attempts) break;  // exhausted: on to Catch
      double delay = retrier.interval_seconds * std::pow(retrier.backoff_rate, attempts);
      if (retrier.max_delay_seconds > 0) {
        delay = std::min(delay, static_cast<double>(retrier.max_delay_seconds));
      }
      // A huge BackoffRate must not overflow into a timer in the past.
      constexpr double kMaxDelaySeconds = 99999999;
      if (!std::isfinite(delay) || delay > kMaxDelaySeconds) delay = kMaxDelaySeconds;
      if (retrier.full_jitter) {
        delay *= context_.random_unit ? context_.random_unit() : 0.5;
      }
      frame->set_retrier_attempts(static_cast<int>(i), attempts + 1);
      frame->set_retry_count(frame->retry_count() + 1);
      frame->set_timer_kind(kRetryTimer);
      frame->set_timer_id(ArmTimer(absl::Milliseconds(std::llround(delay * 1000))));
      redrive_snapshot_.reset();  // handled: the execution goes on
      return;
    }
    for (const Catcher& catcher : state.catchers) {
      if (!Matches(catcher.error_equals, failure)) continue;
      json::Document doc(&arena_);
      auto& a = doc.GetAllocator();
      json::Value error_output(rapidjson::kObjectType);
      error_output.AddMember("Error", StringValue(failure.error, a), a);
      error_output.AddMember("Cause", StringValue(failure.cause, a), a);
      auto raw = json::Parse(frame->input(), &arena_);
      std::map<std::string, std::string> assigned;
      if (auto problem = EvaluateAssign(*F(frame_id), catcher.assign, error_output, &assigned)) {
        FrameFailed(frame_id, *problem);
        return;
      }
      json::Value combined;
      if (auto problem = ApplyResultPath(state, catcher.result_path, raw.ok() ? *raw : doc,
                                         std::move(error_output), &combined, a)) {
        FrameFailed(frame_id, *problem);
        return;
      }
      std::string output = json::Serialize(combined);
      EmitExited(frame_id, state, output, assigned);
      Enqueue(frame_id, catcher.next, std::move(output));
      redrive_snapshot_.reset();  // handled: the execution goes on
      return;
    }
    FrameFailed(frame_id, failure);
  }

  StateError RuntimeError(const Frame& frame, absl::string_view message) {
    return StateError{kRuntime, absl::StrCat("An error occurred while executing the state '",
                                             frame.state(), "' (entered at the event id #",
                                             frame.entered_event_id(), "). ", message)};
  }

  // --- Input and output processing ------------------------------------------

  const json::Value& ContextObject(const Frame& frame) {
    // Each call builds a new document and keeps the earlier ones alive: a
    // Choice rule may hold values of two $$ paths at once.
    json::Document& doc = context_docs_.emplace_back();
    auto& a = doc.GetAllocator();
    doc.SetObject();
    json::Value execution(rapidjson::kObjectType);
    execution.AddMember("Id", StringValue(context_.execution_arn, a), a);
    auto input = json::Parse(context_.execution_input);
    execution.AddMember("Input", input.ok() ? json::Copy(*input, a) : json::Value(), a);
    execution.AddMember("Name", StringValue(context_.execution_name, a), a);
    execution.AddMember("RoleArn", StringValue(context_.role_arn, a), a);
    execution.AddMember("StartTime", StringValue(FormatTimestamp(context_.start_time), a), a);
    execution.AddMember("RedriveCount", context_.redrive_count, a);
    doc.AddMember("Execution", execution, a);
    json::Value state(rapidjson::kObjectType);
    state.AddMember("EnteredTime",
                    StringValue(FormatTimestamp(FromProto(frame.entered_time())), a), a);
    state.AddMember("Name", StringValue(frame.state(), a), a);
    if (const State* current = StateOf(frame);
        current != nullptr && current->type == StateType::kTask) {
      state.AddMember("RetryCount", frame.retry_count(), a);
    }
    doc.AddMember("State", state, a);
    json::Value machine(rapidjson::kObjectType);
    machine.AddMember("Id", StringValue(context_.state_machine_arn, a), a);
    machine.AddMember("Name", StringValue(context_.state_machine_name, a), a);
    doc.AddMember("StateMachine", machine, a);
    if (!task_token_.empty()) {
      json::Value task(rapidjson::kObjectType);
      task.AddMember("Token", StringValue(task_token_, a), a);
      doc.AddMember("Task", task, a);
    }
    if (map_item_.has_value()) {
      json::Value item(rapidjson::kObjectType);
      item.AddMember("Index", map_item_->first, a);
      auto value = json::Parse(map_item_->second);
      item.AddMember("Value", value.ok() ? json::Copy(*value, a) : json::Value(), a);
      json::Value map(rapidjson::kObjectType);
      map.AddMember("Item", item, a);
      doc.AddMember("Map", map, a);
    }
    return doc;
  }

  // The value of workflow variable `name` as `frame` sees it (its own
  // scope, then the enclosing ones), or nullptr.
  const json::Value* Variable(const Frame& frame, const std::string& name) {
    for (const Frame* scope = &frame; scope != nullptr;
         scope = scope->parent_id() == 0 ? nullptr : F(scope->parent_id())) {
      auto it = scope->variables().find(name);
      if (it == scope->variables().end()) continue;
      auto& cached = variable_cache_[std::make_pair(scope->id(), name)];
      if (!cached) {
        auto parsed = json::Parse(it->second);
        if (!parsed.ok()) return nullptr;
        cached = std::make_unique<json::Document>(std::move(*parsed));
      }
      return cached.get();
    }
    return nullptr;
  }

  std::string MissingMessage(const Frame& frame, const ReferencePath& path,
                             const json::Value& input) {
    if (path.is_context()) return path.MissingMessage(ContextObject(frame));
    if (path.is_variable()) {
      const json::Value* value = Variable(frame, path.variable());
      if (value == nullptr) return absl::StrCat("No results for path: ", path.Canonical());
      return path.MissingMessage(*value);
    }
    return path.MissingMessage(input);
  }

  // Resolves `path` against `input`, the context object or a variable.
  const json::Value* Resolve(const Frame& frame, const ReferencePath& path,
                             const json::Value& input) {
    if (path.is_context()) return path.Find(ContextObject(frame));
    if (path.is_variable()) {
      const json::Value* value = Variable(frame, path.variable());
      return value == nullptr ? nullptr : path.Find(*value);
    }
    return path.Find(input);
  }

  // Evaluates an Assign block against `source` (the state's result) with
  // the variables as they were before the state.
  std::optional<StateError> EvaluateAssign(const Frame& frame, const json::Value* assign,
                                           const json::Value& source,
                                           std::map<std::string, std::string>* out) {
    if (assign == nullptr) return std::nullopt;
    json::Document doc(&arena_);
    json::Value values;
    if (auto error = ApplyTemplate(frame, *assign, source, &values, doc.GetAllocator())) {
      return error;
    }
    for (const auto& member : values.GetObject()) {
      (*out)[std::string(member.name.GetString(), member.name.GetStringLength())] =
          json::Serialize(member.value);
    }
    return std::nullopt;
  }

  void ApplyAssignments(int64_t frame_id, const std::map<std::string, std::string>& assigned,
                        v1::StateExitedEventDetails* details) {
    if (assigned.empty()) return;
    Frame* frame = F(frame_id);
    for (const auto& [name, value] : assigned) {
      (*frame->mutable_variables())[name] = value;
      (*details->mutable_assigned_variables())[name] = value;
      variable_cache_.erase(std::make_pair(frame_id, name));
    }
    details->mutable_assigned_variables_details()->set_truncated(false);
  }

  // A general JSONPath: an array of every match (empty when none, as AWS
  // gives), or the single value a definite one names.
  std::optional<StateError> SelectGeneral(const Frame& frame, const JsonPath& path,
                                          const json::Value& input, json::Value* out,
                                          json::Allocator& allocator) {
    const json::Value* root = &input;
    if (path.is_context()) {
      root = &ContextObject(frame);
    } else if (path.is_variable()) {
      root = Variable(frame, path.variable_name());
      if (root == nullptr) {
        return RuntimeError(frame, absl::StrCat("Invalid path '", path.text(),
                                                "' : The variable is not defined"));
      }
    }
    auto value = path.Evaluate(*root, allocator);
    if (value.ok()) {
      *out = std::move(*value);
      return std::nullopt;
    }
    if (absl::IsNotFound(value.status()) && !path.is_single_value()) {
      out->SetArray();
      return std::nullopt;
    }
    return RuntimeError(frame, absl::StrCat("Invalid path '", path.text(), "' : ",
                                            value.status().message()));
  }

  std::optional<StateError> SelectPath(const Frame& frame, const PathField& field,
                                       const json::Value& input, json::Value* out,
                                       json::Allocator& allocator) {
    switch (field.kind) {
      case PathField::Kind::kDefault:
        *out = json::Copy(input, allocator);
        return std::nullopt;
      case PathField::Kind::kNull:
        out->SetObject();
        return std::nullopt;
      case PathField::Kind::kPath: {
        if (field.any) return SelectGeneral(frame, *field.any, input, out, allocator);
        const json::Value* found = Resolve(frame, *field.path, input);
        if (found == nullptr) {
          return RuntimeError(frame, absl::StrCat("Invalid path '", field.path->text(), "' : ",
                                                  MissingMessage(frame, *field.path, input)));
        }
        *out = json::Copy(*found, allocator);
        return std::nullopt;
      }
    }
    return std::nullopt;
  }

  // Evaluates a Parameters / ResultSelector / ItemSelector template.
  std::optional<StateError> ApplyTemplate(const Frame& frame, const json::Value& tmpl,
                                          const json::Value& input, json::Value* out,
                                          json::Allocator& allocator) {
    if (tmpl.IsObject()) {
      out->SetObject();
      for (const auto& member : tmpl.GetObject()) {
        absl::string_view key(member.name.GetString(), member.name.GetStringLength());
        if (key.size() > 2 && key.substr(key.size() - 2) == ".$" && member.value.IsString()) {
          absl::string_view field_name = key.substr(0, key.size() - 2);
          if (const JsonPath* general = definition_.TemplatePath(&member.value)) {
            json::Value value;
            if (auto error = SelectGeneral(frame, *general, input, &value, allocator)) {
              return error;
            }
            out->AddMember(StringValue(field_name, allocator), std::move(value), allocator);
            continue;
          }
          if (const IntrinsicCall* call = definition_.Intrinsic(&member.value)) {
            auto value = EvaluateIntrinsic(frame, *call, input, allocator);
            if (!value.ok()) {
              absl::string_view message = value.status().message();
              absl::ConsumePrefix(&message, "States.Runtime: ");
              return RuntimeError(frame, message);
            }
            out->AddMember(StringValue(field_name, allocator), std::move(*value), allocator);
            continue;
          }
          auto path = ReferencePath::Parse(member.value.GetString());
          if (!path.ok()) return RuntimeError(frame, path.status().message());
          const json::Value* found = Resolve(frame, *path, input);
          if (found == nullptr) {
            return RuntimeError(
                frame, absl::StrCat("The JSONPath '", path->text(), "' specified for the field '",
                                    key, "' could not be found in the input '",
                                    json::Serialize(input), "'"));
          }
          out->AddMember(StringValue(field_name, allocator), json::Copy(*found, allocator),
                         allocator);
        } else {
          json::Value value;
          if (auto error = ApplyTemplate(frame, member.value, input, &value, allocator)) {
            return error;
          }
          out->AddMember(json::Value(member.name, allocator), value, allocator);
        }
      }
      return std::nullopt;
    }
    if (tmpl.IsArray()) {
      out->SetArray();
      for (const auto& item : tmpl.GetArray()) {
        json::Value value;
        if (auto error = ApplyTemplate(frame, item, input, &value, allocator)) return error;
        out->PushBack(value, allocator);
      }
      return std::nullopt;
    }
    *out = json::Copy(tmpl, allocator);
    return std::nullopt;
  }

  absl::StatusOr<json::Value> EvaluateIntrinsic(const Frame& frame, const IntrinsicCall& call,
                                                const json::Value& input,
                                                json::Allocator& allocator) {
    PathResolver resolve = [&](absl::string_view text,
                               json::Allocator& a) -> absl::StatusOr<json::Value> {
      auto path = ReferencePath::Parse(text);
      if (!path.ok()) return path.status();
      const json::Value* found = Resolve(frame, *path, input);
      if (found == nullptr) return absl::NotFoundError(text);
      return json::Copy(*found, a);
    };
    // Deterministic within a transition; the outcome is what persists.
    struct UnitRandom : RandomSource {
      const ExecutionContext* context;
      uint64_t counter = 0;
      uint64_t Next() override {
        if (context->random_unit) {
          return static_cast<uint64_t>(context->random_unit() * 18446744073709551615.0);
        }
        // splitmix64 of a counter when no source was given.
        uint64_t z = (counter += 0x9e3779b97f4a7c15ull);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        return z ^ (z >> 31);
      }
    } random;
    random.context = &context_;
    return call.Evaluate(resolve, random, allocator);
  }

  // InputPath then Parameters: the state's effective input.
  std::optional<StateError> EffectiveInput(const Frame& frame, const State& state,
                                           const json::Value& raw, json::Value* out,
                                           json::Allocator& allocator) {
    json::Value selected;
    if (auto error = SelectPath(frame, state.input_path, raw, &selected, allocator)) {
      return error;
    }
    if (state.parameters == nullptr) {
      *out = std::move(selected);
      return std::nullopt;
    }
    return ApplyTemplate(frame, *state.parameters, selected, out, allocator);
  }

  std::optional<StateError> ApplyResultPath(const State& state, const PathField& result_path,
                                            const json::Value& raw, json::Value result,
                                            json::Value* out, json::Allocator& allocator) {
    switch (result_path.kind) {
      case PathField::Kind::kDefault:
        *out = std::move(result);
        return std::nullopt;
      case PathField::Kind::kNull:
        *out = json::Copy(raw, allocator);
        return std::nullopt;
      case PathField::Kind::kPath:
        if (result_path.path->is_root()) {
          *out = std::move(result);
          return std::nullopt;
        }
        if (!raw.IsObject()) {
          return StateError{kRuntime,
                            absl::StrCat("An error occurred while executing the state '",
                                         state.name, "'. Unable to apply ResultPath '",
                                         result_path.path->text(), "' to input '",
                                         json::Serialize(raw), "'")};
        }
        *out = json::Copy(raw, allocator);
        if (auto status = result_path.path->Set(out, std::move(result), allocator);
            !status.ok()) {
          return StateError{kRuntime, std::string(status.message())};
        }
        return std::nullopt;
    }
    return std::nullopt;
  }

  // ResultSelector, ResultPath, OutputPath: a state's output from its raw
  // input and result.
  std::optional<StateError> StateOutput(const Frame& frame, const State& state,
                                        const json::Value& raw, json::Value result,
                                        std::string* out_text,
                                        std::map<std::string, std::string>* assigned) {
    json::Document doc(&arena_);
    auto& a = doc.GetAllocator();
    json::Value selected;
    if (state.result_selector != nullptr) {
      if (auto error = ApplyTemplate(frame, *state.result_selector, result, &selected, a)) {
        return error;
      }
    } else {
      selected = std::move(result);
    }
    if (auto error = EvaluateAssign(frame, state.assign, selected, assigned)) return error;
    json::Value combined;
    if (auto error = ApplyResultPath(state, state.result_path, raw, std::move(selected),
                                     &combined, a)) {
      return error;
    }
    json::Value output;
    if (auto error = SelectPath(frame, state.output_path, combined, &output, a)) return error;
    *out_text = json::Serialize(output);
    return std::nullopt;
  }

  std::optional<json::Document> ParseInput(int64_t frame_id) {
    auto raw = json::Parse(F(frame_id)->input(), &arena_);
    if (!raw.ok()) {
      FrameFailed(frame_id, RuntimeError(*F(frame_id), raw.status().message()));
      return std::nullopt;
    }
    return std::move(*raw);
  }

  // A positive integer given literally or through a path of the input.
  std::optional<int64_t> ResolveInt(int64_t frame_id, const IntOrPath& field,
                                    const json::Value& input, absl::string_view name) {
    if (field.value) return *field.value;
    if (!field.path) return 0;
    const Frame& frame = *F(frame_id);
    const ReferencePath& path = *field.path;
    const json::Value* found = Resolve(frame, path, input);
    std::optional<std::string> problem;
    if (name == "Seconds") {
      // AWS's wording for each way a Wait's SecondsPath can be wrong.
      if (found == nullptr) {
        problem = absl::StrCat("The SecondsPath parameter does not reference an input value: ",
                               path.text());
      } else if (!found->IsInt64()) {
        problem = absl::StrCat("The SecondsPath parameter cannot be parsed as a long value: ",
                               path.text(), " == ", json::Serialize(*found));
      } else if (found->GetInt64() < 0) {
        problem = absl::StrCat("The SecondsPath parameter references a negative value: ",
                               path.text(), " == ", found->GetInt64());
      }
    } else if (found == nullptr) {
      problem = absl::StrCat("Invalid path '", path.text(), "' : ",
                             MissingMessage(frame, path, input));
    } else if (!found->IsInt64() || found->GetInt64() < 0) {
      std::string shown = found->IsString() ? found->GetString() : json::Serialize(*found);
      problem = absl::StrCat("The ", name, "Path field refers to value \"", shown,
                             "\" which is not a valid integer: ", path.text());
    }
    if (problem) {
      FrameFailed(frame_id, RuntimeError(frame, *problem));
      return std::nullopt;
    }
    return found->GetInt64();
  }

  // --- State types ----------------------------------------------------------

  void RunPass(int64_t frame_id, const State& state) {
    auto raw = ParseInput(frame_id);
    if (!raw) return;
    json::Document doc(&arena_);
    auto& a = doc.GetAllocator();
    json::Value result;
    if (state.result != nullptr) {
      json::Value ignored;
      if (auto error = SelectPath(*F(frame_id), state.input_path, *raw, &ignored, a)) {
        FrameFailed(frame_id, *error);
        return;
      }
      result = json::Copy(*state.result, a);
    } else if (auto error = EffectiveInput(*F(frame_id), state, *raw, &result, a)) {
      FrameFailed(frame_id, *error);
      return;
    }
    std::string output;
    std::map<std::string, std::string> assigned;
    // Pass has no ResultSelector; StateOutput skips it when absent.
    if (auto error =
            StateOutput(*F(frame_id), state, *raw, std::move(result), &output, &assigned)) {
      FrameFailed(frame_id, *error);
      return;
    }
    ExitState(frame_id, state, std::move(output), assigned);
  }

  void RunSucceed(int64_t frame_id, const State& state) {
    auto raw = ParseInput(frame_id);
    if (!raw) return;
    json::Document doc(&arena_);
    auto& a = doc.GetAllocator();
    json::Value selected, output;
    if (auto error = SelectPath(*F(frame_id), state.input_path, *raw, &selected, a)) {
      FrameFailed(frame_id, *error);
      return;
    }
    if (auto error = SelectPath(*F(frame_id), state.output_path, selected, &output, a)) {
      FrameFailed(frame_id, *error);
      return;
    }
    std::string text = json::Serialize(output);
    EmitExited(frame_id, state, text, {});
    FrameSucceeded(frame_id, std::move(text));
  }

  void RunFail(int64_t frame_id, const State& state) {
    StateError failure{state.error, state.cause};
    if (state.error_call || state.cause_call) {
      auto raw = ParseInput(frame_id);
      if (!raw) return;
      for (auto [call_value, out] : {std::pair{state.error_call, &failure.error},
                                     std::pair{state.cause_call, &failure.cause}}) {
        if (call_value == nullptr) continue;
        json::Document doc(&arena_);
        auto value = EvaluateIntrinsic(*F(frame_id), *definition_.Intrinsic(call_value), *raw,
                                       doc.GetAllocator());
        if (!value.ok()) {
          absl::string_view message = value.status().message();
          absl::ConsumePrefix(&message, "States.Runtime: ");
          FrameFailed(frame_id, RuntimeError(*F(frame_id), message));
          return;
        }
        *out = value->IsString() ? std::string(value->GetString(), value->GetStringLength())
                                 : json::Serialize(*value);
      }
    }
    if (state.error_path || state.cause_path) {
      auto raw = ParseInput(frame_id);
      if (!raw) return;
      for (auto [path, out] : {std::pair{&state.error_path, &failure.error},
                               std::pair{&state.cause_path, &failure.cause}}) {
        if (!path->has_value()) continue;
        const json::Value* found = Resolve(*F(frame_id), **path, *raw);
        if (found == nullptr || !found->IsString()) {
          FrameFailed(frame_id,
                      RuntimeError(*F(frame_id),
                                   absl::StrCat("The JSONPath '", (*path)->text(),
                                                "' did not resolve to a string")));
          return;
        }
        *out = std::string(found->GetString(), found->GetStringLength());
      }
    }
    // A Fail state cannot be caught by itself: its frame fails.
    FrameFailed(frame_id, failure);
  }

  void RunChoice(int64_t frame_id, const State& state) {
    auto raw = ParseInput(frame_id);
    if (!raw) return;
    json::Document doc(&arena_);
    auto& a = doc.GetAllocator();
    json::Value input;
    if (auto error = SelectPath(*F(frame_id), state.input_path, *raw, &input, a)) {
      FrameFailed(frame_id, *error);
      return;
    }
    ChoicePathResolver resolve = [&](absl::string_view text) -> absl::StatusOr<const json::Value*> {
      auto path = ReferencePath::Parse(text);
      if (!path.ok()) return path.status();
      const json::Value* found = Resolve(*F(frame_id), *path, input);
      if (found == nullptr) return absl::NotFoundError(text);
      return found;
    };
    std::string next;
    for (const auto& rule : state.choices) {
      auto matched = rule->Evaluate(resolve);
      if (!matched.ok()) {
        absl::string_view message = matched.status().message();
        if (absl::ConsumePrefix(&message, "States.Runtime: ")) {
          FrameFailed(frame_id, RuntimeError(*F(frame_id), message));
        } else {
          FrameFailed(frame_id, RuntimeError(*F(frame_id), matched.status().message()));
        }
        return;
      }
      if (*matched) {
        next = rule->next();
        break;
      }
    }
    if (next.empty()) next = state.default_next;
    if (next.empty()) {
      FrameFailed(frame_id, StateError{"States.NoChoiceMatched", "No Matches!"});
      return;
    }
    json::Value output;
    if (auto error = SelectPath(*F(frame_id), state.output_path, input, &output, a)) {
      FrameFailed(frame_id, *error);
      return;
    }
    std::map<std::string, std::string> assigned;
    if (auto error = EvaluateAssign(*F(frame_id), state.assign, input, &assigned)) {
      FrameFailed(frame_id, *error);
      return;
    }
    std::string text = json::Serialize(output);
    EmitExited(frame_id, state, text, assigned);
    Enqueue(frame_id, next, std::move(text));
  }

  void RunWait(int64_t frame_id, const State& state) {
    auto raw = ParseInput(frame_id);
    if (!raw) return;
    json::Document doc(&arena_);
    auto& a = doc.GetAllocator();
    json::Value input;
    if (auto error = SelectPath(*F(frame_id), state.input_path, *raw, &input, a)) {
      FrameFailed(frame_id, *error);
      return;
    }
    absl::Time fire_at = now_;
    if (state.seconds.present()) {
      auto seconds = ResolveInt(frame_id, state.seconds, input, "Seconds");
      if (!seconds) return;
      fire_at = now_ + absl::Seconds(*seconds);
    } else if (state.timestamp) {
      fire_at = *state.timestamp;
    } else if (state.timestamp_path) {
      const json::Value* found = Resolve(*F(frame_id), *state.timestamp_path, input);
      absl::Time parsed;
      if (found == nullptr || !found->IsString() ||
          !TryParseTimestamp(absl::string_view(found->GetString(), found->GetStringLength()),
                             &parsed)) {
        std::string shown = found == nullptr ? ""
                            : found->IsString() ? std::string(found->GetString())
                                                : json::Serialize(*found);
        FrameFailed(frame_id,
                    RuntimeError(*F(frame_id),
                                 absl::StrCat("The TimestampPath parameter does not reference a "
                                              "valid ISO-8601 extended offset date-time format "
                                              "string: ",
                                              state.timestamp_path->text(),
                                              found == nullptr ? "" : " == ", shown)));
        return;
      }
      fire_at = parsed;
    }
    // AWS keeps delays in a signed 32-bit count of seconds.
    if (fire_at - now_ > absl::Seconds(2147483647)) {
      FrameFailed(frame_id, RuntimeError(*F(frame_id), "Wait state delay is too long."));
      return;
    }
    if (fire_at <= now_) {
      FinishWait(frame_id, state);
      return;
    }
    Frame* frame = F(frame_id);
    frame->set_timer_kind(kWaitTimer);
    frame->set_timer_id(ArmTimer(fire_at - now_));
  }

  void FinishWait(int64_t frame_id, const State& state) {
    auto raw = ParseInput(frame_id);
    if (!raw) return;
    json::Document doc(&arena_);
    auto& a = doc.GetAllocator();
    json::Value input, output;
    if (auto error = SelectPath(*F(frame_id), state.input_path, *raw, &input, a)) {
      FrameFailed(frame_id, *error);
      return;
    }
    if (auto error = SelectPath(*F(frame_id), state.output_path, input, &output, a)) {
      FrameFailed(frame_id, *error);
      return;
    }
    std::map<std::string, std::string> assigned;
    if (auto error = EvaluateAssign(*F(frame_id), state.assign, input, &assigned)) {
      FrameFailed(frame_id, *error);
      return;
    }
    F(frame_id)->clear_timer_id();
    ExitState(frame_id, state, json::Serialize(output), assigned);
  }

  void ScheduleTask(int64_t frame_id, const State& state) {
    auto raw = ParseInput(frame_id);
    if (!raw) return;
    // The token names the ActivityScheduled event about to be emitted, so
    // Parameters can pass $$.Task.Token along.
    const int64_t scheduled_id = state_->next_event_id();
    task_token_ = context_.mint_task_token ? context_.mint_task_token(scheduled_id) : "";
    json::Document doc(&arena_);
    auto& a = doc.GetAllocator();
    json::Value effective;
    auto error = EffectiveInput(*F(frame_id), state, *raw, &effective, a);
    task_token_.clear();
    if (error) {
      FrameFailed(frame_id, *error);
      return;
    }
    auto timeout = ResolveInt(frame_id, state.timeout_seconds, *raw, "TimeoutSeconds");
    if (!timeout) return;
    auto heartbeat = ResolveInt(frame_id, state.heartbeat_seconds, *raw, "HeartbeatSeconds");
    if (!heartbeat) return;
    std::string task_input = json::Serialize(effective);
    v1::HistoryEvent* scheduled = Emit("ActivityScheduled");
    auto* details = scheduled->mutable_activity_scheduled_event_details();
    details->set_resource(state.resource);
    details->set_input(task_input);
    details->mutable_input_details()->set_truncated(false);
    details->set_timeout_in_seconds(*timeout);
    details->set_heartbeat_in_seconds(*heartbeat);
    Frame* frame = F(frame_id);
    frame->set_scheduled_event_id(scheduled->id());
    frame->set_task_started(false);
    frame->set_activity_arn(state.resource);
    frame->set_heartbeat_seconds(*heartbeat);
    frame->clear_timer_id();
    if (*timeout > 0) frame->set_task_timeout_timer(ArmTimer(absl::Seconds(*timeout)));
    outcome_.dispatches.push_back(ActivityDispatch{
        state.resource, scheduled->id(),
        context_.mint_task_token ? context_.mint_task_token(scheduled->id()) : "",
        std::move(task_input), *timeout, *heartbeat});
  }

  int64_t FindTaskFrame(int64_t scheduled_event_id) {
    if (scheduled_event_id == 0) return 0;
    for (const auto& [id, frame] : state_->frames()) {
      if (frame.scheduled_event_id() == scheduled_event_id) return id;
    }
    return 0;
  }

  void ClearTask(Frame* frame) {
    frame->clear_scheduled_event_id();
    frame->clear_task_started();
    frame->clear_activity_arn();
    frame->clear_task_timeout_timer();
    frame->clear_heartbeat_timer();
    frame->clear_heartbeat_seconds();
  }

  void TaskStarted(int64_t frame_id, absl::string_view worker_name) {
    Frame* frame = F(frame_id);
    if (frame->task_started()) return;
    auto* event = Emit("ActivityStarted");
    event->mutable_activity_started_event_details()->set_worker_name(std::string(worker_name));
    frame->set_task_started(true);
    if (frame->heartbeat_seconds() > 0) {
      frame->set_heartbeat_timer(ArmTimer(absl::Seconds(frame->heartbeat_seconds())));
    }
  }

  void TaskSucceeded(int64_t frame_id, absl::string_view output_text) {
    auto* succeeded = Emit("ActivitySucceeded")->mutable_activity_succeeded_event_details();
    succeeded->set_output(std::string(output_text));
    succeeded->mutable_output_details()->set_truncated(false);
    Frame* frame = F(frame_id);
    ClearTask(frame);
    const State& state = *StateOf(*frame);
    auto raw = ParseInput(frame_id);
    if (!raw) return;
    auto result = json::Parse(output_text, &arena_);
    if (!result.ok()) {
      HandleError(frame_id, StateError{kRuntime, "The task output is not valid JSON"});
      return;
    }
    std::string output;
    std::map<std::string, std::string> assigned;
    if (auto error = StateOutput(*F(frame_id), state, *raw,
                                 std::move(static_cast<json::Value&>(*result)), &output,
                                 &assigned)) {
      HandleError(frame_id, *error);
      return;
    }
    ExitState(frame_id, state, std::move(output), assigned);
  }

  void TaskFailed(int64_t frame_id, absl::string_view event_type, absl::string_view error,
                  absl::string_view cause, bool heartbeat = false) {
    v1::HistoryEvent* event = Emit(event_type);
    if (event_type == "ActivityFailed") {
      auto* details = event->mutable_activity_failed_event_details();
      details->set_error(std::string(error));
      details->set_cause(std::string(cause));
    } else {
      auto* details = event->mutable_activity_timed_out_event_details();
      details->set_error(std::string(error));
      details->set_cause(std::string(cause));
    }
    ClearTask(F(frame_id));
    HandleError(frame_id, StateError{std::string(error), std::string(cause), heartbeat});
  }

  void StartParallel(int64_t frame_id, const State& state) {
    auto raw = ParseInput(frame_id);
    if (!raw) return;
    json::Document doc(&arena_);
    auto& a = doc.GetAllocator();
    json::Value effective;
    if (auto error = EffectiveInput(*F(frame_id), state, *raw, &effective, a)) {
      HandleError(frame_id, *error);
      return;
    }
    std::string input = json::Serialize(effective);
    Emit("ParallelStateStarted");
    Frame* frame = F(frame_id);
    const int total = static_cast<int>(state.branches.size());
    frame->set_waiting_children(true);
    frame->set_total_children(total);
    frame->set_next_child(total);
    frame->set_running_children(total);
    frame->clear_child_outputs();
    for (int i = 0; i < total; ++i) frame->add_child_outputs();
    for (int i = 0; i < total; ++i) {
      Frame* branch = NewFrame(frame_id, i);
      Enqueue(branch->id(), state.branches[i]->start_at, input);
    }
  }

  void StartMap(int64_t frame_id, const State& state) {
    auto raw = ParseInput(frame_id);
    if (!raw) return;
    json::Document doc(&arena_);
    auto& a = doc.GetAllocator();
    json::Value selected;
    if (auto error = SelectPath(*F(frame_id), state.input_path, *raw, &selected, a)) {
      HandleError(frame_id, *error);
      return;
    }
    json::Value items;
    if (state.items_path.kind == PathField::Kind::kPath && state.items_path.any) {
      if (auto error = SelectGeneral(*F(frame_id), *state.items_path.any, selected, &items, a)) {
        HandleError(frame_id, *error);
        return;
      }
    } else if (state.items_path.kind == PathField::Kind::kPath) {
      const json::Value* found = Resolve(*F(frame_id), *state.items_path.path, selected);
      if (found == nullptr) {
        HandleError(frame_id,
                    RuntimeError(*F(frame_id),
                                 absl::StrCat("Invalid path '", state.items_path.path->text(),
                                              "' : No results for path: ",
                                              state.items_path.path->Canonical())));
        return;
      }
      items = json::Copy(*found, a);
    } else {
      items = json::Copy(selected, a);
    }
    if (!items.IsArray()) {
      HandleError(frame_id, RuntimeError(*F(frame_id),
                                         absl::StrCat("Unable to apply ItemsPath: the value is "
                                                      "not an array: ",
                                                      json::Serialize(items))));
      return;
    }
    auto max = ResolveInt(frame_id, state.max_concurrency, selected, "MaxConcurrency");
    if (!max) return;
    auto* started = Emit("MapStateStarted")->mutable_map_state_started_event_details();
    started->set_length(static_cast<int32_t>(items.Size()));
    Frame* frame = F(frame_id);
    frame->set_waiting_children(true);
    frame->set_total_children(static_cast<int32_t>(items.Size()));
    frame->set_next_child(0);
    frame->set_running_children(0);
    frame->set_max_concurrency(static_cast<int32_t>(*max));
    frame->clear_child_outputs();
    for (rapidjson::SizeType i = 0; i < items.Size(); ++i) frame->add_child_outputs();
    frame->set_items(json::Serialize(items));
    frame->set_effective_input(json::Serialize(selected));
    Pump(frame_id);
  }

  // Starts Map iterations while the concurrency limit allows. Each runs
  // until it waits or ends before the next starts, as AWS orders them.
  void Pump(int64_t frame_id) {
    if (!pumping_.insert(frame_id).second) return;
    while (true) {
      Frame* frame = F(frame_id);
      if (frame == nullptr || !frame->waiting_children() || closed()) break;
      const State& state = *StateOf(*frame);
      if (frame->next_child() >= frame->total_children()) break;
      if (frame->max_concurrency() > 0 && frame->running_children() >= frame->max_concurrency()) {
        break;
      }
      const int32_t index = frame->next_child();
      frame->set_next_child(index + 1);
      frame->set_running_children(frame->running_children() + 1);
      auto items = json::Parse(frame->items(), &arena_);
      auto effective = json::Parse(frame->effective_input(), &arena_);
      if (!items.ok() || !effective.ok()) break;
      const json::Value& item = (*items)[static_cast<rapidjson::SizeType>(index)];
      std::string item_text = json::Serialize(item);
      std::string input = item_text;
      if (const json::Value* selector =
              state.item_selector != nullptr ? state.item_selector : state.parameters) {
        map_item_ = std::make_pair(static_cast<int64_t>(index), item_text);
        json::Document doc(&arena_);
        json::Value selected;
        auto error = ApplyTemplate(*frame, *selector, *effective, &selected, doc.GetAllocator());
        map_item_.reset();
        if (error) {
          pumping_.erase(frame_id);
          DropChildren(frame_id);
          F(frame_id)->set_waiting_children(false);
          Emit("MapStateFailed");
          HandleError(frame_id, *error);
          return;
        }
        input = json::Serialize(selected);
      }
      auto* details = Emit("MapIterationStarted")->mutable_map_iteration_started_event_details();
      details->set_name(state.name);
      details->set_index(index);
      Frame* child = NewFrame(frame_id, index);
      child->set_item_value(item_text);
      Enqueue(child->id(), state.processor->start_at, std::move(input));
      Drain();
    }
    pumping_.erase(frame_id);
    MaybeCompleteChildren(frame_id);
  }

  void ChildDone(int64_t parent_id) {
    Frame* parent = F(parent_id);
    if (parent == nullptr || !parent->waiting_children()) return;
    if (pumping_.count(parent_id)) return;  // the pump loop goes on
    if (StateOf(*parent)->type == StateType::kMap) {
      Pump(parent_id);
      return;
    }
    MaybeCompleteChildren(parent_id);
  }

  void MaybeCompleteChildren(int64_t frame_id) {
    Frame* frame = F(frame_id);
    if (frame == nullptr || !frame->waiting_children() || closed()) return;
    if (frame->next_child() < frame->total_children() || frame->running_children() > 0) return;
    frame->set_waiting_children(false);
    const State& state = *StateOf(*frame);
    Emit(state.type == StateType::kMap ? "MapStateSucceeded" : "ParallelStateSucceeded");
    json::Document doc(&arena_);
    auto& a = doc.GetAllocator();
    json::Value results(rapidjson::kArrayType);
    for (const std::string& text : frame->child_outputs()) {
      auto value = json::Parse(text, &arena_);
      results.PushBack(value.ok() ? json::Copy(*value, a) : json::Value(), a);
    }
    auto raw = ParseInput(frame_id);
    if (!raw) return;
    std::string output;
    std::map<std::string, std::string> assigned;
    if (auto error =
            StateOutput(*F(frame_id), state, *raw, std::move(results), &output, &assigned)) {
      HandleError(frame_id, *error);
      return;
    }
    frame = F(frame_id);
    frame->clear_child_outputs();
    frame->clear_items();
    frame->clear_effective_input();
    ExitState(frame_id, state, std::move(output), assigned);
  }

  // --- Timers ---------------------------------------------------------------

  absl::Status Fire(int64_t timer_id) {
    if (timer_id != 0 && timer_id == state_->execution_timeout_timer()) {
      TimeOutExecution();
      return absl::OkStatus();
    }
    for (const auto& [id, frame] : state_->frames()) {
      if (frame.timer_id() == timer_id) {
        const int64_t frame_id = id;
        const int32_t kind = frame.timer_kind();
        F(frame_id)->clear_timer_id();
        if (kind == kWaitTimer) {
          FinishWait(frame_id, *StateOf(*F(frame_id)));
        } else {
          Execute(frame_id);  // a retry: the state runs again
        }
        Drain();
        return absl::OkStatus();
      }
      if (frame.task_timeout_timer() == timer_id || frame.heartbeat_timer() == timer_id) {
        const int64_t frame_id = id;
        const bool heartbeat = frame.heartbeat_timer() == timer_id;
        outcome_.cancelled_tasks.push_back(frame.scheduled_event_id());
        // AWS reports a missed heartbeat as States.Timeout too.
        TaskFailed(frame_id, "ActivityTimedOut", kTimeout, "", heartbeat);
        Drain();
        return absl::OkStatus();
      }
    }
    return absl::FailedPreconditionError(absl::StrCat("timer ", timer_id, " is not armed"));
  }

  // --- TestState --------------------------------------------------------

  // Runs the root frame's current state once and describes what happened.
  v1::TestStateResponse Test(const v1::TestStateRequest& request) {
    v1::TestStateResponse response;
    const bool inspect =
        request.inspection_level() == "DEBUG" || request.inspection_level() == "TRACE";
    v1::InspectionData* data = response.mutable_inspection_data();
    const int64_t frame_id = state_->frames().begin()->first;
    const Frame& frame = *F(frame_id);
    const State& state = *StateOf(frame);
    json::Document doc(&arena_);
    auto& a = doc.GetAllocator();
    auto fail = [&](const StateError& error) {
      response.set_status("FAILED");
      response.set_error(error.error);
      response.set_cause(error.cause);
    };
    auto raw = json::Parse(frame.input());
    data->set_input(frame.input());
    json::Value after_input;
    if (auto error = SelectPath(frame, state.input_path, *raw, &after_input, a)) {
      fail(*error);
      return Finish(response, inspect);
    }
    data->set_after_input_path(json::Serialize(after_input));
    std::map<std::string, std::string> assigned;
    auto succeed = [&](const std::string& output, const std::string& next) {
      response.set_status("SUCCEEDED");
      response.set_output(output);
      if (!next.empty()) response.set_next_state(next);
    };
    switch (state.type) {
      case StateType::kSucceed: {
        json::Value output;
        if (auto error = SelectPath(frame, state.output_path, after_input, &output, a)) {
          fail(*error);
        } else {
          succeed(json::Serialize(output), "");
        }
        break;
      }
      case StateType::kFail:
        fail(StateError{state.error, state.cause});
        break;
      case StateType::kWait:
      case StateType::kChoice: {
        std::string next = state.next;
        if (state.type == StateType::kChoice) {
          ChoicePathResolver resolve =
              [&](absl::string_view text) -> absl::StatusOr<const json::Value*> {
            auto path = ReferencePath::Parse(text);
            if (!path.ok()) return path.status();
            const json::Value* found = Resolve(frame, *path, after_input);
            if (found == nullptr) return absl::NotFoundError(text);
            return found;
          };
          next.clear();
          for (const auto& rule : state.choices) {
            auto matched = rule->Evaluate(resolve);
            if (!matched.ok()) {
              absl::string_view message = matched.status().message();
              absl::ConsumePrefix(&message, "States.Runtime: ");
              fail(RuntimeError(frame, message));
              return Finish(response, inspect);
            }
            if (*matched) {
              next = rule->next();
              break;
            }
          }
          if (next.empty()) next = state.default_next;
          if (next.empty()) {
            fail(StateError{"States.NoChoiceMatched", "No Matches!"});
            break;
          }
        }
        if (auto error = EvaluateAssign(frame, state.assign, after_input, &assigned)) {
          fail(*error);
          break;
        }
        json::Value output;
        if (auto error = SelectPath(frame, state.output_path, after_input, &output, a)) {
          fail(*error);
        } else {
          succeed(json::Serialize(output), next);
        }
        break;
      }
      case StateType::kPass:
      case StateType::kTask: {
        json::Value after_parameters;
        if (state.parameters != nullptr) {
          task_token_ = "test-state-task-token";
          auto error = ApplyTemplate(frame, *state.parameters, after_input, &after_parameters, a);
          task_token_.clear();
          if (error) {
            fail(*error);
            break;
          }
        } else {
          after_parameters = json::Copy(after_input, a);
        }
        data->set_after_parameters(json::Serialize(after_parameters));
        json::Value result;
        if (state.type == StateType::kPass) {
          result = state.result != nullptr ? json::Copy(*state.result, a)
                                           : json::Copy(after_parameters, a);
        } else if (!request.mock().result().empty()) {
          auto mocked = json::Parse(request.mock().result());
          result = json::Copy(*mocked, a);
        } else {
          StateError error{request.mock().error_output().error(),
                           request.mock().error_output().cause()};
          TestError(request, state, error, &response);
          break;
        }
        data->set_result(json::Serialize(result));
        json::Value selected;
        if (state.result_selector != nullptr) {
          if (auto error = ApplyTemplate(frame, *state.result_selector, result, &selected, a)) {
            fail(*error);
            break;
          }
          data->set_after_result_selector(json::Serialize(selected));
        } else {
          selected = std::move(result);
        }
        if (auto error = EvaluateAssign(frame, state.assign, selected, &assigned)) {
          fail(*error);
          break;
        }
        json::Value combined;
        if (auto error = ApplyResultPath(state, state.result_path, *raw, std::move(selected),
                                         &combined, a)) {
          fail(*error);
          break;
        }
        data->set_after_result_path(json::Serialize(combined));
        json::Value output;
        if (auto error = SelectPath(frame, state.output_path, combined, &output, a)) {
          fail(*error);
        } else {
          succeed(json::Serialize(output), state.end ? "" : state.next);
        }
        break;
      }
      default:
        break;
    }
    // The variables as they are after the state.
    json::Value variables(rapidjson::kObjectType);
    for (const auto& [name, value] : frame.variables()) {
      if (assigned.count(name)) continue;
      auto parsed = json::Parse(value);
      if (parsed.ok()) variables.AddMember(StringValue(name, a), json::Copy(*parsed, a), a);
    }
    for (const auto& [name, value] : assigned) {
      auto parsed = json::Parse(value);
      if (parsed.ok()) variables.AddMember(StringValue(name, a), json::Copy(*parsed, a), a);
    }
    data->set_variables(json::Serialize(variables));
    return Finish(response, inspect);
  }

  // A mocked task error: retriable, caught or failed, as AWS reports it.
  void TestError(const v1::TestStateRequest& request, const State& state,
                 const StateError& failure, v1::TestStateResponse* response) {
    const int retried = request.state_configuration().retrier_retry_count();
    v1::InspectionData* data = response->mutable_inspection_data();
    for (size_t i = 0; i < state.retry.size(); ++i) {
      const Retrier& retrier = state.retry[i];
      if (!Matches(retrier.error_equals, failure)) continue;
      if (retried < retrier.max_attempts) {
        response->set_status("RETRIABLE");
        response->set_error(failure.error);
        response->set_cause(failure.cause);
        data->mutable_error_details()->set_retry_index(static_cast<int32_t>(i));
        double delay = retrier.interval_seconds * std::pow(retrier.backoff_rate, retried);
        if (retrier.max_delay_seconds > 0) {
          delay = std::min(delay, static_cast<double>(retrier.max_delay_seconds));
        }
        data->mutable_error_details()->set_retry_backoff_interval_seconds(
            static_cast<int32_t>(delay));
        return;
      }
      break;
    }
    for (size_t i = 0; i < state.catchers.size(); ++i) {
      const Catcher& catcher = state.catchers[i];
      if (!Matches(catcher.error_equals, failure)) continue;
      json::Document doc(&arena_);
      auto& a = doc.GetAllocator();
      json::Value error_output(rapidjson::kObjectType);
      error_output.AddMember("Error", StringValue(failure.error, a), a);
      error_output.AddMember("Cause", StringValue(failure.cause, a), a);
      auto raw = json::Parse(F(state_->frames().begin()->first)->input());
      json::Value combined;
      if (auto problem = ApplyResultPath(state, catcher.result_path, *raw,
                                         std::move(error_output), &combined, a)) {
        response->set_status("FAILED");
        response->set_error(problem->error);
        response->set_cause(problem->cause);
        return;
      }
      response->set_status("CAUGHT_ERROR");
      response->set_error(failure.error);
      response->set_cause(failure.cause);
      response->set_output(json::Serialize(combined));
      response->set_next_state(catcher.next);
      data->mutable_error_details()->set_catch_index(static_cast<int32_t>(i));
      return;
    }
    response->set_status("FAILED");
    response->set_error(failure.error);
    response->set_cause(failure.cause);
  }

  static v1::TestStateResponse Finish(v1::TestStateResponse& response, bool inspect) {
    if (!inspect) response.clear_inspection_data();
    return response;
  }

  absl::Status Heartbeat(int64_t frame_id) {
    Frame* frame = F(frame_id);
    if (frame->heartbeat_seconds() > 0) {
      frame->set_heartbeat_timer(ArmTimer(absl::Seconds(frame->heartbeat_seconds())));
    }
    return absl::OkStatus();
  }

 private:
  struct Step {
    int64_t frame;
    std::string name;
    std::string input;
  };

  const Definition& definition_;
  const ExecutionContext& context_;
  ExecutionState* state_;
  absl::Time now_;
  Outcome outcome_;
  std::deque<Step> queue_;
  int drain_depth_ = 0;
  // Backs the short-lived JSON documents of one step; see Drain.
  rapidjson::MemoryPoolAllocator<> arena_{64 * 1024};
  std::set<int64_t> pumping_;
  std::string task_token_;
  std::optional<std::pair<int64_t, std::string>> map_item_;
  std::deque<json::Document> context_docs_;
  std::map<std::pair<int64_t, std::string>, std::unique_ptr<json::Document>> variable_cache_;
  // The frames as they were when a branch or iteration failed, kept until
  // the failure is retried or caught; see CloseExecution.
  std::optional<google::protobuf::Map<int64_t, Frame>> redrive_snapshot_;

  friend class Interpreter;
};

Outcome Interpreter::Start(ExecutionState* state, absl::string_view input, absl::Time now) {
  Run run(*this, state, now);
  run.Start(input);
  return run.Finish();
}

bool Interpreter::AwaitsTask(const ExecutionState& state, int64_t scheduled_event_id) {
  if (scheduled_event_id == 0) return false;
  for (const auto& [id, frame] : state.frames()) {
    if (frame.scheduled_event_id() == scheduled_event_id) return true;
  }
  return false;
}

namespace {

absl::Status NotAwaited(int64_t scheduled_event_id) {
  return absl::FailedPreconditionError(
      absl::StrCat("no activity with scheduled event id ", scheduled_event_id, " is awaited"));
}

}  // namespace

absl::StatusOr<Outcome> Interpreter::ActivityStarted(ExecutionState* state,
                                                     int64_t scheduled_event_id,
                                                     absl::string_view worker_name,
                                                     absl::Time now) {
  Run run(*this, state, now);
  const int64_t frame = run.FindTaskFrame(scheduled_event_id);
  if (frame == 0) return NotAwaited(scheduled_event_id);
  if (run.F(frame)->task_started()) {
    return absl::FailedPreconditionError("the activity has already started");
  }
  run.TaskStarted(frame, worker_name);
  return run.Finish();
}

absl::StatusOr<Outcome> Interpreter::ActivitySucceeded(ExecutionState* state,
                                                       int64_t scheduled_event_id,
                                                       absl::string_view output, absl::Time now) {
  Run run(*this, state, now);
  const int64_t frame = run.FindTaskFrame(scheduled_event_id);
  if (frame == 0) return NotAwaited(scheduled_event_id);
  run.TaskStarted(frame, "");
  run.TaskSucceeded(frame, output);
  run.Drain();
  return run.Finish();
}

absl::StatusOr<Outcome> Interpreter::ActivityFailed(ExecutionState* state,
                                                    int64_t scheduled_event_id,
                                                    absl::string_view error,
                                                    absl::string_view cause, absl::Time now) {
  Run run(*this, state, now);
  const int64_t frame = run.FindTaskFrame(scheduled_event_id);
  if (frame == 0) return NotAwaited(scheduled_event_id);
  run.TaskStarted(frame, "");
  run.TaskFailed(frame, "ActivityFailed", error, cause);
  run.Drain();
  return run.Finish();
}

absl::StatusOr<Outcome> Interpreter::ActivityHeartbeat(ExecutionState* state,
                                                       int64_t scheduled_event_id,
                                                       absl::Time now) {
  Run run(*this, state, now);
  const int64_t frame = run.FindTaskFrame(scheduled_event_id);
  if (frame == 0) return NotAwaited(scheduled_event_id);
  if (absl::Status status = run.Heartbeat(frame); !status.ok()) return status;
  return run.Finish();
}

absl::StatusOr<Outcome> Interpreter::ActivityDoesNotExist(ExecutionState* state,
                                                          int64_t scheduled_event_id,
                                                          absl::string_view activity_arn,
                                                          absl::Time now) {
  Run run(*this, state, now);
  const int64_t frame = run.FindTaskFrame(scheduled_event_id);
  if (frame == 0) return NotAwaited(scheduled_event_id);
  run.ClearTask(run.F(frame));
  run.FrameFailed(frame, run.RuntimeError(*run.F(frame),
                                          absl::StrCat("The activity ", activity_arn,
                                                       " does not exist.")));
  run.Drain();
  return run.Finish();
}

absl::StatusOr<Outcome> Interpreter::TimerFired(ExecutionState* state, int64_t timer_id,
                                                absl::Time now) {
  Run run(*this, state, now);
  if (absl::Status status = run.Fire(timer_id); !status.ok()) return status;
  return run.Finish();
}

namespace {

// The names a state transitions to.
std::vector<std::string> Targets(const json::Value& state) {
  std::vector<std::string> targets;
  auto add = [&](const json::Value& obj, const char* field) {
    if (obj.IsObject() && obj.HasMember(field) && obj[field].IsString()) {
      targets.emplace_back(obj[field].GetString());
    }
  };
  add(state, "Next");
  add(state, "Default");
  for (const char* list : {"Choices", "Catch"}) {
    if (state.HasMember(list) && state[list].IsArray()) {
      for (const auto& item : state[list].GetArray()) add(item, "Next");
    }
  }
  return targets;
}

absl::Status TestStateInvalid(absl::string_view message) {
  return absl::InvalidArgumentError(absl::StrCat("ValidationException: ", message));
}

}  // namespace

absl::StatusOr<v1::TestStateResponse> TestState(const v1::TestStateRequest& request,
                                                const ExecutionContext& context) {
  auto parsed = json::Parse(request.definition());
  if (!parsed.ok() || !parsed->IsObject()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "InvalidDefinition: Invalid State Machine Definition: 'INVALID_JSON_DESCRIPTION: ",
        parsed.ok() ? "the definition must be a JSON object" : parsed.status().message(), "'"));
  }
  json::Document& given = *parsed;
  std::string name = request.state_name().empty() ? "TestState" : request.state_name();
  json::Document machine;
  auto& a = machine.GetAllocator();
  machine.SetObject();
  json::Value states(rapidjson::kObjectType);
  const json::Value* state = nullptr;
  if (given.HasMember("States")) {
    if (request.state_name().empty() || !given["States"].IsObject() ||
        !given["States"].HasMember(name.c_str())) {
      return TestStateInvalid("state_name must name a state of the given state machine");
    }
    state = &given["States"][name.c_str()];
  } else {
    state = &given;
  }
  if (!state->IsObject()) return TestStateInvalid("the state must be a JSON object");
  // The state alone, its transition targets stubbed, so it validates.
  states.AddMember(StringValue(name, a), json::Copy(*state, a), a);
  for (const std::string& target : Targets(*state)) {
    if (target == name || states.HasMember(target.c_str())) continue;
    json::Value stub(rapidjson::kObjectType);
    stub.AddMember("Type", "Succeed", a);
    states.AddMember(StringValue(target, a), stub, a);
  }
  machine.AddMember("StartAt", StringValue(name, a), a);
  machine.AddMember("States", states, a);
  auto parsed_definition = Definition::Parse(json::Serialize(machine));
  if (!parsed_definition.ok()) return parsed_definition.status();
  std::shared_ptr<const Definition> definition = *parsed_definition;
  const State* tested = definition->FindState(name);
  if (tested->type == StateType::kParallel || tested->type == StateType::kMap) {
    return TestStateInvalid("TestState does not run Parallel or Map states in this release");
  }
  if (tested->type == StateType::kTask && request.mock().result().empty() &&
      request.mock().error_output().error().empty()) {
    return TestStateInvalid(
        "a Task state that runs an activity needs a mock: give mock.result or "
        "mock.error_output");
  }
  if (!request.mock().result().empty() && !json::Parse(request.mock().result()).ok()) {
    return TestStateInvalid("mock.result must be valid JSON");
  }
  const std::string input = request.input().empty() ? "{}" : request.input();
  if (!json::Parse(input).ok()) {
    return absl::InvalidArgumentError("InvalidExecutionInput: the input must be valid JSON");
  }
  Interpreter interpreter(*definition, context);
  ::stepflow::internal::v1::ExecutionState state_proto;
  Interpreter::Run run(interpreter, &state_proto, context.start_time);
  Frame* frame = run.NewFrame(0, 0);
  frame->set_state(name);
  frame->set_input(input);
  frame->set_entered_event_id(1);
  if (!request.variables().empty()) {
    auto variables = json::Parse(request.variables());
    if (!variables.ok() || !variables->IsObject()) {
      return TestStateInvalid("variables must be a JSON object");
    }
    for (const auto& member : variables->GetObject()) {
      (*frame->mutable_variables())[member.name.GetString()] = json::Serialize(member.value);
    }
  }
  return run.Test(request);
}

absl::StatusOr<Outcome> Interpreter::Redrive(ExecutionState* state, absl::Time now) {
  if (state->redrive_frames().empty()) {
    return absl::FailedPreconditionError("the execution has no failed states to run again");
  }
  Run run(*this, state, now);
  run.Redrive();
  return run.Finish();
}

Outcome Interpreter::Abort(ExecutionState* state, absl::string_view error,
                           absl::string_view cause, absl::Time now) {
  Run run(*this, state, now);
  run.AbortExecution(error, cause);
  return run.Finish();
}

}  // namespace stepflow::asl
