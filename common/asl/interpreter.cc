#include "common/asl/interpreter.h"

#include <optional>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "google/protobuf/timestamp.pb.h"

namespace stepflow::asl {
namespace {

using internal::v1::ExecutionState;

std::string FormatTimestamp(absl::Time time) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", time, absl::UTCTimeZone());
}

void SetTimestamp(absl::Time time, google::protobuf::Timestamp* out) {
  const int64_t nanos = absl::ToUnixNanos(time);
  out->set_seconds(nanos / 1000000000);
  out->set_nanos(static_cast<int32_t>(nanos % 1000000000));
}

// An ASL runtime error (States.Runtime and friends) that fails the execution.
struct RuntimeError {
  std::string error;
  std::string cause;
};

}  // namespace

// One transition: accumulates events and effects into an Outcome.
class Interpreter::Run {
 public:
  Run(const Interpreter& interpreter, ExecutionState* state, absl::Time now)
      : definition_(interpreter.definition_),
        context_(interpreter.context_),
        state_(state),
        now_(now) {}

  Outcome Finish() { return std::move(outcome_); }

  v1::HistoryEvent* Emit(absl::string_view type) {
    v1::HistoryEvent& event = outcome_.events.emplace_back();
    event.set_type(std::string(type));
    int64_t id = state_->next_event_id() == 0 ? 1 : state_->next_event_id();
    event.set_id(id);
    // AWS links each event to the one before it, except the first state
    // entered, which names no predecessor (0) just like ExecutionStarted.
    const bool first_state = id == 2 && absl::EndsWith(type, "StateEntered");
    event.set_previous_event_id(first_state ? 0 : id - 1);
    SetTimestamp(now_, event.mutable_timestamp());
    state_->set_next_event_id(id + 1);
    return &event;
  }

  void ExecutionStarted(absl::string_view input) {
    auto* details = Emit("ExecutionStarted")->mutable_execution_started_event_details();
    details->set_input(std::string(input));
    details->mutable_input_details()->set_truncated(false);
    details->set_role_arn(context_.role_arn);
  }

  // Enters `name` with `input` and runs states until one waits or the
  // execution closes.
  void Advance(std::string name, std::string input) {
    while (true) {
      const State* state = definition_.FindState(name);
      if (state == nullptr) {
        // Validation guarantees targets exist; a stored execution whose
        // definition lost a state is failed rather than left hanging.
        FailExecution("States.Runtime", absl::StrCat("State '", name, "' does not exist"));
        return;
      }
      v1::HistoryEvent* entered = Emit(absl::StrCat(StateTypeName(state->type), "StateEntered"));
      auto* details = entered->mutable_state_entered_event_details();
      details->set_name(name);
      details->set_input(input);
      details->mutable_input_details()->set_truncated(false);
      state_->set_current_state(name);
      state_->set_state_input(input);
      state_->set_state_entered_event_id(entered->id());
      state_->clear_pending_scheduled_event_id();
      state_->clear_pending_started();
      state_->clear_pending_activity_arn();
      state_->clear_pending_started_event_id();

      std::optional<std::string> output;
      switch (state->type) {
        case StateType::kPass:
          output = RunPass(*state, input);
          break;
        case StateType::kTask:
          ScheduleTask(*state, input);
          return;
        case StateType::kSucceed:
          output = RunSucceed(*state, input);
          if (output) SucceedExecution(*output);
          return;
        case StateType::kFail:
          FailExecution(state->error, state->cause);
          return;
        default:
          FailExecution("States.Runtime",
                        absl::StrCat("State type '", StateTypeName(state->type),
                                     "' is not supported by this release"));
          return;
      }
      if (!output) return;  // the execution failed
      if (!ExitState(*state, *output)) return;
      name = state->next;
      input = std::move(*output);
    }
  }

  // Emits <Type>StateExited; true when the execution moves on to `next`.
  bool ExitState(const State& state, const std::string& output) {
    auto* details = Emit(absl::StrCat(StateTypeName(state.type), "StateExited"))
                        ->mutable_state_exited_event_details();
    details->set_name(state.name);
    details->set_output(output);
    details->mutable_output_details()->set_truncated(false);
    if (state.end) {
      SucceedExecution(output);
      return false;
    }
    return true;
  }

  void SucceedExecution(const std::string& output) {
    auto* details = Emit("ExecutionSucceeded")->mutable_execution_succeeded_event_details();
    details->set_output(output);
    details->mutable_output_details()->set_truncated(false);
    outcome_.closed_status = "SUCCEEDED";
    outcome_.output = output;
  }

  void FailExecution(absl::string_view error, absl::string_view cause) {
    auto* details = Emit("ExecutionFailed")->mutable_execution_failed_event_details();
    details->set_error(std::string(error));
    details->set_cause(std::string(cause));
    outcome_.closed_status = "FAILED";
    outcome_.error = std::string(error);
    outcome_.cause = std::string(cause);
  }

  void Abort(absl::string_view error, absl::string_view cause) {
    auto* details = Emit("ExecutionAborted")->mutable_execution_aborted_event_details();
    details->set_error(std::string(error));
    details->set_cause(std::string(cause));
    outcome_.closed_status = "ABORTED";
    outcome_.error = std::string(error);
    outcome_.cause = std::string(cause);
  }

  void FailWithRuntimeError(const RuntimeError& failure) {
    FailExecution(failure.error, failure.cause);
  }

  RuntimeError PathError(const State& state, absl::string_view message) {
    return RuntimeError{
        "States.Runtime",
        absl::StrCat("An error occurred while executing the state '", state.name,
                     "' (entered at the event id #", state_->state_entered_event_id(), "). ",
                     message)};
  }

  // --- Input and output processing -----------------------------------

  // Fills `out` with the node `field` selects from `input`.
  std::optional<RuntimeError> SelectPath(const State& state, const PathField& field,
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
        const json::Value* found = field.path->Find(input);
        if (found == nullptr) {
          return PathError(state, absl::StrCat("Invalid path '", field.path->text(),
                                               "' : No results for path: ",
                                               field.path->Canonical()));
        }
        *out = json::Copy(*found, allocator);
        return std::nullopt;
      }
    }
    return std::nullopt;
  }

  const json::Value& ContextObject(const State& state) {
    if (!context_doc_) {
      context_doc_.emplace();
      json::Document& doc = *context_doc_;
      auto& a = doc.GetAllocator();
      auto str = [&](absl::string_view s) {
        return json::Value(s.data(), static_cast<rapidjson::SizeType>(s.size()), a);
      };
      doc.SetObject();
      json::Value execution(rapidjson::kObjectType);
      execution.AddMember("Id", str(context_.execution_arn), a);
      auto input = json::Parse(context_.execution_input);
      execution.AddMember("Input", input.ok() ? json::Copy(*input, a) : json::Value(), a);
      execution.AddMember("Name", str(context_.execution_name), a);
      execution.AddMember("RoleArn", str(context_.role_arn), a);
      execution.AddMember("StartTime", str(FormatTimestamp(context_.start_time)), a);
      execution.AddMember("RedriveCount", 0, a);
      doc.AddMember("Execution", execution, a);
      json::Value state_obj(rapidjson::kObjectType);
      state_obj.AddMember("EnteredTime", str(FormatTimestamp(now_)), a);
      state_obj.AddMember("Name", str(state.name), a);
      state_obj.AddMember("RetryCount", 0, a);
      doc.AddMember("State", state_obj, a);
      json::Value machine(rapidjson::kObjectType);
      machine.AddMember("Id", str(context_.state_machine_arn), a);
      machine.AddMember("Name", str(context_.state_machine_name), a);
      doc.AddMember("StateMachine", machine, a);
      if (!task_token_.empty()) {
        json::Value task(rapidjson::kObjectType);
        task.AddMember("Token", str(task_token_), a);
        doc.AddMember("Task", task, a);
      }
    }
    return *context_doc_;
  }

  // Evaluates a Parameters / ResultSelector template against `input`.
  std::optional<RuntimeError> ApplyTemplate(const State& state, const json::Value& tmpl,
                                            const json::Value& input, json::Value* out,
                                            json::Allocator& allocator) {
    if (tmpl.IsObject()) {
      out->SetObject();
      for (const auto& member : tmpl.GetObject()) {
        absl::string_view key(member.name.GetString(), member.name.GetStringLength());
        if (key.size() > 2 && key.substr(key.size() - 2) == ".$" && member.value.IsString()) {
          absl::string_view field_name = key.substr(0, key.size() - 2);
          auto path = ReferencePath::Parse(member.value.GetString());
          if (!path.ok()) {
            return PathError(state, std::string(path.status().message()));
          }
          const json::Value& root = path->is_context() ? ContextObject(state) : input;
          const json::Value* found = path->Find(root);
          if (found == nullptr) {
            return PathError(
                state, absl::StrCat("The JSONPath '", path->text(), "' specified for the field '",
                                    key, "' could not be found in the input '",
                                    json::Serialize(root), "'"));
          }
          out->AddMember(json::Value(field_name.data(),
                                     static_cast<rapidjson::SizeType>(field_name.size()),
                                     allocator),
                         json::Copy(*found, allocator), allocator);
        } else {
          json::Value value;
          if (auto error = ApplyTemplate(state, member.value, input, &value, allocator)) {
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
        if (auto error = ApplyTemplate(state, item, input, &value, allocator)) return error;
        out->PushBack(value, allocator);
      }
      return std::nullopt;
    }
    *out = json::Copy(tmpl, allocator);
    return std::nullopt;
  }

  // InputPath then Parameters: the state's effective input.
  std::optional<RuntimeError> EffectiveInput(const State& state, const json::Value& raw,
                                             json::Value* out, json::Allocator& allocator) {
    json::Value selected;
    if (auto error = SelectPath(state, state.input_path, raw, &selected, allocator)) {
      return error;
    }
    if (state.parameters == nullptr) {
      *out = std::move(selected);
      return std::nullopt;
    }
    return ApplyTemplate(state, *state.parameters, selected, out, allocator);
  }

  // ResultPath then OutputPath: the state's output from its raw input and
  // its result.
  std::optional<RuntimeError> StateOutput(const State& state, const json::Value& raw,
                                          json::Value result, json::Value* out,
                                          json::Allocator& allocator) {
    json::Value combined;
    switch (state.result_path.kind) {
      case PathField::Kind::kDefault:
        combined = std::move(result);
        break;
      case PathField::Kind::kNull:
        combined = json::Copy(raw, allocator);
        break;
      case PathField::Kind::kPath:
        if (state.result_path.path->is_root()) {
          combined = std::move(result);
          break;
        }
        if (!raw.IsObject()) {
          return PathError(state, absl::StrCat("Unable to apply ResultPath '",
                                               state.result_path.path->text(),
                                               "' to input '", json::Serialize(raw),
                                               "': the input is not an object"));
        }
        combined = json::Copy(raw, allocator);
        if (auto status = state.result_path.path->Set(&combined, std::move(result), allocator);
            !status.ok()) {
          return PathError(state, status.message());
        }
        break;
    }
    return SelectPath(state, state.output_path, combined, out, allocator);
  }

  std::optional<std::string> RunPass(const State& state, const std::string& input_text) {
    json::Document doc;
    auto& a = doc.GetAllocator();
    auto raw = json::Parse(input_text);
    if (!raw.ok()) {
      FailExecution("States.Runtime", std::string(raw.status().message()));
      return std::nullopt;
    }
    json::Value result;
    if (state.result != nullptr) {
      result = json::Copy(*state.result, a);
    } else if (auto error = EffectiveInput(state, *raw, &result, a)) {
      FailWithRuntimeError(*error);
      return std::nullopt;
    }
    json::Value output;
    if (auto error = StateOutput(state, *raw, std::move(result), &output, a)) {
      FailWithRuntimeError(*error);
      return std::nullopt;
    }
    return json::Serialize(output);
  }

  std::optional<std::string> RunSucceed(const State& state, const std::string& input_text) {
    json::Document doc;
    auto& a = doc.GetAllocator();
    auto raw = json::Parse(input_text);
    if (!raw.ok()) {
      FailExecution("States.Runtime", std::string(raw.status().message()));
      return std::nullopt;
    }
    json::Value selected, output;
    if (auto error = SelectPath(state, state.input_path, *raw, &selected, a)) {
      FailWithRuntimeError(*error);
      return std::nullopt;
    }
    if (auto error = SelectPath(state, state.output_path, selected, &output, a)) {
      FailWithRuntimeError(*error);
      return std::nullopt;
    }
    auto* details =
        Emit("SucceedStateExited")->mutable_state_exited_event_details();
    details->set_name(state.name);
    std::string text = json::Serialize(output);
    details->set_output(text);
    details->mutable_output_details()->set_truncated(false);
    return text;
  }

  void ScheduleTask(const State& state, const std::string& input_text) {
    // The token names the ActivityScheduled event about to be emitted, so
    // Parameters can pass $$.Task.Token along.
    const int64_t scheduled_id = state_->next_event_id();
    task_token_ = context_.mint_task_token ? context_.mint_task_token(scheduled_id) : "";
    json::Document doc;
    auto& a = doc.GetAllocator();
    auto raw = json::Parse(input_text);
    if (!raw.ok()) {
      FailExecution("States.Runtime", std::string(raw.status().message()));
      return;
    }
    json::Value effective;
    if (auto error = EffectiveInput(state, *raw, &effective, a)) {
      FailWithRuntimeError(*error);
      return;
    }
    std::string task_input = json::Serialize(effective);
    v1::HistoryEvent* scheduled = Emit("ActivityScheduled");
    auto* details = scheduled->mutable_activity_scheduled_event_details();
    details->set_resource(state.resource);
    details->set_input(task_input);
    details->mutable_input_details()->set_truncated(false);
    details->set_timeout_in_seconds(state.timeout_seconds);
    details->set_heartbeat_in_seconds(state.heartbeat_seconds);
    state_->set_pending_scheduled_event_id(scheduled->id());
    state_->set_pending_activity_arn(state.resource);
    outcome_.dispatches.push_back(ActivityDispatch{state.resource, scheduled->id(), task_token_,
                                                   std::move(task_input), state.timeout_seconds,
                                                   state.heartbeat_seconds});
  }

  // Validates that `scheduled_event_id` is what the execution waits for and
  // returns the waiting Task state.
  absl::StatusOr<const State*> PendingTask(int64_t scheduled_event_id) {
    if (state_->pending_scheduled_event_id() == 0 ||
        state_->pending_scheduled_event_id() != scheduled_event_id) {
      return absl::FailedPreconditionError(
          absl::StrCat("no activity with scheduled event id ", scheduled_event_id,
                       " is waiting"));
    }
    const State* state = definition_.FindState(state_->current_state());
    if (state == nullptr || state->type != StateType::kTask) {
      return absl::FailedPreconditionError("the current state is not a Task state");
    }
    return state;
  }

  void EnsureStarted(absl::string_view worker_name) {
    if (state_->pending_started()) return;
    auto* event = Emit("ActivityStarted");
    event->mutable_activity_started_event_details()->set_worker_name(std::string(worker_name));
    state_->set_pending_started(true);
    state_->set_pending_started_event_id(event->id());
  }

  void ClearPending() {
    state_->clear_pending_scheduled_event_id();
    state_->clear_pending_started();
    state_->clear_pending_activity_arn();
    state_->clear_pending_started_event_id();
  }

  void CompleteTask(const State& state, absl::string_view output_text) {
    auto* succeeded = Emit("ActivitySucceeded")->mutable_activity_succeeded_event_details();
    succeeded->set_output(std::string(output_text));
    succeeded->mutable_output_details()->set_truncated(false);
    ClearPending();
    json::Document doc;
    auto& a = doc.GetAllocator();
    auto raw = json::Parse(state_->state_input());
    auto result = json::Parse(output_text);
    if (!raw.ok() || !result.ok()) {
      FailExecution("States.Runtime",
                    absl::StrCat("An error occurred while executing the state '", state.name,
                                 "': the task output is not valid JSON"));
      return;
    }
    json::Value selected;
    if (state.result_selector != nullptr) {
      if (auto error = ApplyTemplate(state, *state.result_selector, *result, &selected, a)) {
        FailWithRuntimeError(*error);
        return;
      }
    } else {
      selected = json::Copy(*result, a);
    }
    json::Value output;
    if (auto error = StateOutput(state, *raw, std::move(selected), &output, a)) {
      FailWithRuntimeError(*error);
      return;
    }
    std::string text = json::Serialize(output);
    if (!ExitState(state, text)) return;
    Advance(state.next, std::move(text));
  }

  void FailTask(absl::string_view error, absl::string_view cause) {
    auto* details = Emit("ActivityFailed")->mutable_activity_failed_event_details();
    details->set_error(std::string(error));
    details->set_cause(std::string(cause));
    ClearPending();
    FailExecution(error, cause);
  }

 private:
  const Definition& definition_;
  const ExecutionContext& context_;
  ExecutionState* state_;
  absl::Time now_;
  Outcome outcome_;
  std::string task_token_;
  std::optional<json::Document> context_doc_;
};

Outcome Interpreter::Start(ExecutionState* state, absl::string_view input, absl::Time now) {
  Run run(*this, state, now);
  state->set_next_event_id(1);
  run.ExecutionStarted(input);
  run.Advance(definition_.start_at(), std::string(input));
  return run.Finish();
}

absl::StatusOr<Outcome> Interpreter::ActivityStarted(ExecutionState* state,
                                                     int64_t scheduled_event_id,
                                                     absl::string_view worker_name,
                                                     absl::Time now) {
  Run run(*this, state, now);
  auto pending = run.PendingTask(scheduled_event_id);
  if (!pending.ok()) return pending.status();
  if (state->pending_started()) {
    return absl::FailedPreconditionError("the activity has already started");
  }
  run.EnsureStarted(worker_name);
  return run.Finish();
}

absl::StatusOr<Outcome> Interpreter::ActivitySucceeded(ExecutionState* state,
                                                       int64_t scheduled_event_id,
                                                       absl::string_view output, absl::Time now) {
  Run run(*this, state, now);
  auto pending = run.PendingTask(scheduled_event_id);
  if (!pending.ok()) return pending.status();
  run.EnsureStarted("");
  run.CompleteTask(**pending, output);
  return run.Finish();
}

absl::StatusOr<Outcome> Interpreter::ActivityFailed(ExecutionState* state,
                                                    int64_t scheduled_event_id,
                                                    absl::string_view error,
                                                    absl::string_view cause, absl::Time now) {
  Run run(*this, state, now);
  auto pending = run.PendingTask(scheduled_event_id);
  if (!pending.ok()) return pending.status();
  run.EnsureStarted("");
  run.FailTask(error, cause);
  return run.Finish();
}

absl::StatusOr<Outcome> Interpreter::ActivityDoesNotExist(ExecutionState* state,
                                                          int64_t scheduled_event_id,
                                                          absl::string_view activity_arn,
                                                          absl::Time now) {
  Run run(*this, state, now);
  auto pending = run.PendingTask(scheduled_event_id);
  if (!pending.ok()) return pending.status();
  run.ClearPending();
  run.FailWithRuntimeError(run.PathError(
      **pending, absl::StrCat("The activity ", activity_arn, " does not exist.")));
  return run.Finish();
}

Outcome Interpreter::Abort(ExecutionState* state, absl::string_view error,
                           absl::string_view cause, absl::Time now) {
  Run run(*this, state, now);
  run.Abort(error, cause);
  return run.Finish();
}

}  // namespace stepflow::asl
