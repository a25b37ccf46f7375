// A parsed, validated Amazon States Language definition.
//
//   auto def = Definition::Parse(text);   // InvalidDefinition on any error
//   if (!def.ok()) ...
//   const StateMachine& root = (*def)->root();
//   const State* start = root.Find(root.start_at);
//
// A definition is a tree of state machines: the top level, each Parallel
// branch and each Map processor. ValidateDefinition reports every problem
// at once, in the shape of ValidateStateMachineDefinition (code, message,
// location); Parse fails with AWS's InvalidDefinition message made of the
// same diagnostics.
//
// States with "QueryLanguage": "JSONata" (the machine's or their own; a
// state may not go back to JSONPath in a JSONata machine) have Arguments,
// Output, Assign, Choice Conditions, Map Items and `{% ... %}` scalar
// fields instead of the JSONPath fields, which they refuse. Every
// `{% ... %}` string is compiled here, once (see Jsonata()); one that does
// not compile is a SCHEMA_VALIDATION_FAILED diagnostic with JSONata's error.
//
// A Definition is immutable after Parse and safe to share between threads;
// States point into the JSON document it owns.
#ifndef STEPFLOW_COMMON_ASL_DEFINITION_H_
#define STEPFLOW_COMMON_ASL_DEFINITION_H_

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/asl/choice.h"
#include "common/asl/intrinsics.h"
#include "common/asl/jsonpath.h"
#include "common/asl/path.h"
#include "common/json/json.h"
#include "common/jsonata/jsonata.h"

namespace stepflow::asl {

enum class StateType { kPass, kTask, kChoice, kWait, kSucceed, kFail, kParallel, kMap };

absl::string_view StateTypeName(StateType type);

// InputPath / OutputPath / ResultPath / ItemsPath: absent (the default),
// JSON null, or a path.
struct PathField {
  enum class Kind { kDefault, kNull, kPath };
  Kind kind = Kind::kDefault;
  // A reference path (names and indexes), or else a general JSONPath
  // (wildcards, slices, filters) where AWS allows one.
  std::optional<ReferencePath> path;
  std::shared_ptr<const JsonPath> any;
  const std::string& text() const { return path ? path->text() : any->text(); }
};

struct Retrier {
  std::vector<std::string> error_equals;
  double interval_seconds = 1;
  int64_t max_attempts = 3;
  double backoff_rate = 2.0;
  int64_t max_delay_seconds = 0;  // 0 = no cap
  bool full_jitter = false;
};

struct Catcher {
  std::vector<std::string> error_equals;
  std::string next;
  PathField result_path;
  const json::Value* assign = nullptr;
  const json::Value* output = nullptr;  // JSONata
};

// A rule of a Choice state in JSONata: `condition` is `true`/`false` or a
// `{% %}` string; `assign` and `output` (may be null) apply when it matches.
struct ConditionRule {
  const json::Value* condition = nullptr;
  std::string next;
  const json::Value* assign = nullptr;
  const json::Value* output = nullptr;
};

struct State;

// The top level, a Parallel branch or a Map processor.
struct StateMachine {
  std::string start_at;
  std::map<std::string, State, std::less<>> states;
  // The StartAt state, resolved once the definition is parsed (nullptr when
  // it does not exist), so running a machine need not look it up by name.
  const State* start_state = nullptr;
  const State* Find(absl::string_view name) const;
};

// An integer field given literally or through a *Path field.
struct IntOrPath {
  std::optional<int64_t> value;
  std::optional<ReferencePath> path;
  bool present() const { return value.has_value() || path.has_value(); }
};

// How a service-integration Task waits (AWS's integration patterns).
enum class IntegrationPattern {
  kRequestResponse,  // done when the call answers
  kSync,             // ".sync": done when the started job is (Output as a string)
  kSync2,            // ".sync:2": the same, with Input/Output as JSON
  kWaitForTaskToken  // done when SendTaskSuccess/Failure names the task's token
};

// A Task whose Resource is an optimized service integration,
// arn:PARTITION:states:::SERVICE:ACTION[.PATTERN]: `service` "states"
// (startExecution) or "events" (putEvents). Empty for activities.
struct Integration {
  std::string service;
  std::string action;
  IntegrationPattern pattern = IntegrationPattern::kRequestResponse;
  // "startExecution.sync:2": what history events call the resource.
  std::string resource_name;
  bool present() const { return !service.empty(); }
};

// The integration a Task Resource names; nullopt when it is not one.
// `error` (when set) explains a Resource that looks like an integration
// but is not one this release runs.
std::optional<Integration> ParseIntegration(absl::string_view resource, std::string* error);
// The same, accepting any SERVICE:ACTION with any of the patterns when
// `any_service` (TestState with a mock, where nothing is called).
std::optional<Integration> ParseIntegration(absl::string_view resource, bool any_service,
                                            std::string* error);

struct State {
  std::string name;
  StateType type = StateType::kPass;
  std::string next;  // empty when `end` (and for Choice, Succeed, Fail)
  // The state `next` names, in the same machine, resolved once the
  // definition is parsed; nullptr when `next` is empty or names nothing.
  const State* next_state = nullptr;
  // The types of its history events, "<Type>StateEntered" and
  // "<Type>StateExited", set once the definition is parsed.
  std::string entered_event_type;
  std::string exited_event_type;
  bool end = false;
  std::string comment;
  PathField input_path;
  PathField output_path;
  PathField result_path;
  const json::Value* parameters = nullptr;       // Pass, Task, Parallel, Map (legacy)
  const json::Value* result = nullptr;           // Pass
  const json::Value* result_selector = nullptr;  // Task, Parallel, Map
  std::vector<Retrier> retry;                    // Task, Parallel, Map
  std::vector<Catcher> catchers;                 // Task, Parallel, Map
  const json::Value* assign = nullptr;           // all but Succeed, Fail

  // "QueryLanguage": "JSONata" (the state's or the machine's). Such a state
  // has none of the JSONPath fields above but Arguments and Output
  // templates, and its scalar fields may be `{% %}` expressions, kept in
  // `expressions` by field name ("Seconds", "Timestamp", "TimeoutSeconds",
  // "HeartbeatSeconds", "Items", "MaxConcurrency", "Error", "Cause").
  bool jsonata = false;
  const json::Value* arguments = nullptr;  // Task, Parallel
  const json::Value* output = nullptr;     // all but Fail
  std::map<std::string, const json::Value*, std::less<>> expressions;
  std::vector<ConditionRule> conditions;   // Choice in JSONata

  // Task: an activity ARN, or a service integration (`integration`).
  std::string resource;
  Integration integration;
  IntOrPath timeout_seconds;
  IntOrPath heartbeat_seconds;

  // Choice
  std::vector<std::unique_ptr<ChoiceRule>> choices;
  // Each rule's Assign (null when it has none), applied instead of the
  // state's when that rule matches, as ConditionRule::assign in JSONata.
  std::vector<const json::Value*> choice_assigns;
  std::string default_next;

  // Wait
  IntOrPath seconds;
  std::optional<absl::Time> timestamp;
  std::optional<ReferencePath> timestamp_path;

  // Fail
  std::string error;
  std::string cause;
  std::optional<ReferencePath> error_path;
  std::optional<ReferencePath> cause_path;
  // ErrorPath / CausePath given as intrinsic calls (see Definition::Intrinsic).
  const json::Value* error_call = nullptr;
  const json::Value* cause_call = nullptr;

  // Parallel
  std::vector<std::unique_ptr<StateMachine>> branches;

  // Map
  std::unique_ptr<StateMachine> processor;
  PathField items_path;
  const json::Value* item_selector = nullptr;
  IntOrPath max_concurrency;
  std::string label;

  // Map in DISTRIBUTED mode: iterations are child workflow executions of
  // one map run.
  bool distributed = false;
  bool express_children = false;  // ProcessorConfig.ExecutionType EXPRESS
  bool item_batcher = false;      // ItemBatcher given
  IntOrPath max_items_per_batch;
  IntOrPath max_input_bytes_per_batch;
  const json::Value* batch_input = nullptr;  // ItemBatcher.BatchInput template
  IntOrPath tolerated_failure_count;
  std::optional<double> tolerated_failure_percentage;
  std::optional<ReferencePath> tolerated_failure_percentage_path;
  // Validated but not run by this release (no S3): the map run fails with
  // States.ItemReaderFailed / States.ResultWriterFailed.
  const json::Value* item_reader = nullptr;
  const json::Value* result_writer = nullptr;
};

struct Diagnostic {
  std::string severity = "ERROR";  // "ERROR" | "WARNING"
  std::string code;                // e.g. "SCHEMA_VALIDATION_FAILED"
  std::string message;
  std::string location;            // JSON pointer, e.g. "/States/Foo/Next"
};

class Definition {
 public:
  static absl::StatusOr<std::shared_ptr<const Definition>> Parse(absl::string_view text);
  // TestState with a mock calls no service, so its Task may name any
  // resource ARN, as on AWS: `any_resource` accepts every
  // arn:...:states:::SERVICE:ACTION[.PATTERN] and every other ARN.
  static absl::StatusOr<std::shared_ptr<const Definition>> Parse(absl::string_view text,
                                                                 bool any_resource);

  const StateMachine& root() const { return root_; }
  const std::string& start_at() const { return root_.start_at; }
  const std::string& comment() const { return comment_; }
  // Execution-level TimeoutSeconds; 0 = none.
  int64_t timeout_seconds() const { return timeout_seconds_; }
  // Whether some Map state, at any depth, runs in DISTRIBUTED mode; without
  // one, every event belongs to the execution's own history.
  bool has_distributed_map() const { return has_distributed_map_; }
  // A state of the top-level machine.
  const State* FindState(absl::string_view name) const { return root_.Find(name); }
  // The general JSONPath of a "key.$" template value that is not a
  // reference path, or nullptr.
  const JsonPath* TemplatePath(const json::Value* value) const {
    auto it = paths_.find(value);
    return it == paths_.end() ? nullptr : &it->second;
  }
  // The parsed reference path of a "key.$" template value or of a Choice
  // rule's Variable or *Path operand, by its text; nullptr when the
  // definition has no such reference path.
  const ReferencePath* Reference(absl::string_view text) const {
    auto it = references_.find(text);
    return it == references_.end() ? nullptr : &it->second;
  }
  // The compiled JSONata expression of a `{% ... %}` string of a JSONata
  // state, or nullptr when the value is not one (a literal).
  const jsonata::Expression* Jsonata(const json::Value* value) const {
    auto it = expressions_.find(value);
    return it == expressions_.end() ? nullptr : it->second.get();
  }
  // The parsed intrinsic call of a "key.$" template value, or nullptr.
  const IntrinsicCall* Intrinsic(const json::Value* value) const {
    auto it = intrinsics_.find(value);
    return it == intrinsics_.end() ? nullptr : &it->second;
  }

 private:
  friend class DefinitionParser;
  Definition() = default;
  json::Document document_;  // owns the JSON the states point into
  StateMachine root_;
  // Intrinsic calls in templates, parsed once, by their JSON value.
  std::map<const json::Value*, IntrinsicCall> intrinsics_;
  std::map<const json::Value*, JsonPath> paths_;
  // `{% %}` strings of JSONata states, compiled once, by their JSON value.
  std::map<const json::Value*, std::unique_ptr<jsonata::Expression>> expressions_;
  // Reference paths, parsed once, by their text.
  std::map<std::string, ReferencePath, std::less<>> references_;
  // Parses `text` as a reference path and keeps it; nullptr when it is not
  // one.
  const ReferencePath* RememberReference(absl::string_view text) {
    auto it = references_.find(text);
    if (it != references_.end()) return &it->second;
    auto path = ReferencePath::Parse(text);
    if (!path.ok()) return nullptr;
    return &references_.emplace(std::string(text), std::move(*path)).first->second;
  }
  std::string comment_;
  int64_t timeout_seconds_ = 0;
  bool has_distributed_map_ = false;
};

// Every problem in `text`, empty when it is a valid definition.
std::vector<Diagnostic> ValidateDefinition(absl::string_view text);

// What an EXPRESS state machine may not hold, in AWS's words: service
// integrations that wait (".sync", ".waitForTaskToken"), in any state,
// nested ones included. (AWS also refuses activity Tasks there; Stepflow
// serves them.)
std::vector<Diagnostic> ExpressDiagnostics(const Definition& definition);

// "Invalid State Machine Definition: 'CODE: message at /location, ...'"
std::string InvalidDefinitionMessage(const std::vector<Diagnostic>& diagnostics);

}  // namespace stepflow::asl

#endif  // STEPFLOW_COMMON_ASL_DEFINITION_H_
