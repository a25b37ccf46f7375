// A parsed, validated Amazon States Language definition.
//
//   auto def = Definition::Parse(text);   // InvalidDefinition on any error
//   if (!def.ok()) ...
//   const State* start = (*def)->FindState((*def)->start_at());
//
// ValidateDefinition reports every problem at once, in the shape of
// ValidateStateMachineDefinition (code, message, location); Parse fails with
// AWS's InvalidDefinition message made of the same diagnostics.
//
// A Definition is immutable after Parse and safe to share between threads.
#ifndef STEPFLOW_COMMON_ASL_DEFINITION_H_
#define STEPFLOW_COMMON_ASL_DEFINITION_H_

#include <map>
#include <memory>
#include <optional>
#include <string>
#include "absl/strings/string_view.h"
#include <vector>

#include "absl/status/statusor.h"
#include "common/asl/path.h"
#include "common/json/json.h"

namespace stepflow::asl {

enum class StateType { kPass, kTask, kChoice, kWait, kSucceed, kFail, kParallel, kMap };

absl::string_view StateTypeName(StateType type);

// InputPath / OutputPath / ResultPath: absent (the default), JSON null, or a
// path.
struct PathField {
  enum class Kind { kDefault, kNull, kPath };
  Kind kind = Kind::kDefault;
  std::optional<ReferencePath> path;
};

struct State {
  std::string name;
  StateType type = StateType::kPass;
  std::string next;  // empty when `end`
  bool end = false;
  std::string comment;
  PathField input_path;
  PathField output_path;
  PathField result_path;
  const json::Value* parameters = nullptr;       // Pass, Task
  const json::Value* result = nullptr;           // Pass
  const json::Value* result_selector = nullptr;  // Task
  std::string resource;                          // Task
  int64_t timeout_seconds = 0;                   // Task; 0 = none
  int64_t heartbeat_seconds = 0;                 // Task; 0 = none
  std::string error;                             // Fail
  std::string cause;                             // Fail
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

  const std::string& start_at() const { return start_at_; }
  const std::string& comment() const { return comment_; }
  const State* FindState(absl::string_view name) const;
  const std::map<std::string, State, std::less<>>& states() const { return states_; }

 private:
  friend class DefinitionParser;
  Definition() = default;
  json::Document document_;  // owns the JSON the states point into
  std::string start_at_;
  std::string comment_;
  std::map<std::string, State, std::less<>> states_;
};

// Every problem in `text`, empty when it is a valid definition.
std::vector<Diagnostic> ValidateDefinition(absl::string_view text);

// "Invalid State Machine Definition: 'CODE: message at /location, ...'"
std::string InvalidDefinitionMessage(const std::vector<Diagnostic>& diagnostics);

}  // namespace stepflow::asl

#endif  // STEPFLOW_COMMON_ASL_DEFINITION_H_
