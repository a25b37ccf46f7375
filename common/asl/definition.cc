#include "common/asl/definition.h"

#include <deque>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace stepflow::asl {

absl::string_view StateTypeName(StateType type) {
  switch (type) {
    case StateType::kPass: return "Pass";
    case StateType::kTask: return "Task";
    case StateType::kChoice: return "Choice";
    case StateType::kWait: return "Wait";
    case StateType::kSucceed: return "Succeed";
    case StateType::kFail: return "Fail";
    case StateType::kParallel: return "Parallel";
    case StateType::kMap: return "Map";
  }
  return "Unknown";
}

// Builds a Definition from a parsed document, collecting diagnostics rather
// than stopping at the first problem.
class DefinitionParser {
 public:
  explicit DefinitionParser(Definition* def) : def_(def) {}

  static std::pair<std::shared_ptr<Definition>, std::vector<Diagnostic>> ParseText(
      absl::string_view text) {
    std::shared_ptr<Definition> def(new Definition());
    auto doc = json::Parse(text);
    if (!doc.ok()) {
      return {nullptr, {Diagnostic{"ERROR", "INVALID_JSON_DESCRIPTION",
                                   std::string(doc.status().message()), "/"}}};
    }
    def->document_ = std::move(*doc);
    std::vector<Diagnostic> diagnostics = DefinitionParser(def.get()).Run();
    return {std::move(def), std::move(diagnostics)};
  }

  std::vector<Diagnostic> Run() {
    const json::Value& root = def_->document_;
    if (!root.IsObject()) {
      Error("SCHEMA_VALIDATION_FAILED", "The definition must be a JSON object", "/");
      return std::move(diagnostics_);
    }
    static const std::set<absl::string_view> kTopFields = {
        "Comment", "StartAt", "States", "TimeoutSeconds", "Version", "QueryLanguage"};
    for (const auto& member : root.GetObject()) {
      absl::string_view key(member.name.GetString(), member.name.GetStringLength());
      if (!kTopFields.count(key)) {
        Error("SCHEMA_VALIDATION_FAILED",
              absl::StrCat("Field '", key, "' is not supported"), absl::StrCat("/", key));
      }
    }
    if (auto* comment = StringField(root, "Comment", "/")) def_->comment_ = *comment;
    const json::Value* start = root.HasMember("StartAt") ? &root["StartAt"] : nullptr;
    if (start == nullptr) {
      Error("SCHEMA_VALIDATION_FAILED", "The field 'StartAt' is required but was missing", "/");
    } else if (!start->IsString()) {
      Error("SCHEMA_VALIDATION_FAILED", "The field 'StartAt' must be a string", "/StartAt");
    } else {
      def_->start_at_ = start->GetString();
    }
    const json::Value* states = root.HasMember("States") ? &root["States"] : nullptr;
    if (states == nullptr) {
      Error("SCHEMA_VALIDATION_FAILED", "The field 'States' is required but was missing", "/");
      return std::move(diagnostics_);
    }
    if (!states->IsObject() || states->MemberCount() == 0) {
      Error("SCHEMA_VALIDATION_FAILED", "The field 'States' must be a non-empty object",
            "/States");
      return std::move(diagnostics_);
    }
    for (const auto& member : states->GetObject()) {
      ParseState(std::string(member.name.GetString(), member.name.GetStringLength()),
                 member.value);
    }
    CheckTransitions();
    return std::move(diagnostics_);
  }

 private:
  void Error(std::string code, std::string message, std::string location) {
    diagnostics_.push_back(Diagnostic{"ERROR", std::move(code), std::move(message),
                                      std::move(location)});
  }

  const std::string* StringField(const json::Value& obj, const char* field,
                                 const std::string& where) {
    if (!obj.HasMember(field)) return nullptr;
    const json::Value& value = obj[field];
    if (!value.IsString()) {
      Error("SCHEMA_VALIDATION_FAILED",
            absl::StrCat("The field '", field, "' must be a string"),
            absl::StrCat(where == "/" ? "" : where, "/", field));
      return nullptr;
    }
    scratch_.emplace_back(value.GetString(), value.GetStringLength());
    return &scratch_.back();
  }

  void ParsePathField(const json::Value& obj, const char* field, const std::string& where,
                      PathField* out) {
    if (!obj.HasMember(field)) return;
    const json::Value& value = obj[field];
    std::string location = absl::StrCat(where, "/", field);
    if (value.IsNull()) {
      out->kind = PathField::Kind::kNull;
      return;
    }
    if (!value.IsString()) {
      Error("SCHEMA_VALIDATION_FAILED",
            absl::StrCat("The field '", field, "' must be a string or null"), location);
      return;
    }
    auto path = ReferencePath::Parse(value.GetString());
    if (!path.ok() || path->is_context()) {
      Error("INVALID_JSON_PATH",
            absl::StrCat("The value for the field '", field,
                         "' must be a valid JSONPath: ", value.GetString()),
            location);
      return;
    }
    out->kind = PathField::Kind::kPath;
    out->path = std::move(*path);
  }

  void CheckParameters(const json::Value& value, const std::string& location) {
    if (value.IsObject()) {
      for (const auto& member : value.GetObject()) {
        absl::string_view key(member.name.GetString(), member.name.GetStringLength());
        std::string where = absl::StrCat(location, "/", key);
        if (key.size() > 2 && key.substr(key.size() - 2) == ".$") {
          if (!member.value.IsString()) {
            Error("SCHEMA_VALIDATION_FAILED",
                  absl::StrCat("The value for the field '", key,
                               "' must be a STRING that contains a JSONPath"),
                  where);
            continue;
          }
          absl::string_view text(member.value.GetString(), member.value.GetStringLength());
          if (text.substr(0, 7) == "States.") {
            Error("SCHEMA_VALIDATION_FAILED",
                  absl::StrCat("Intrinsic functions are not supported yet: ", text), where);
          } else if (!ReferencePath::Parse(text).ok()) {
            Error("INVALID_JSON_PATH",
                  absl::StrCat("The value for the field '", key,
                               "' must be a valid JSONPath: ", text),
                  where);
          }
        } else {
          CheckParameters(member.value, where);
        }
      }
    } else if (value.IsArray()) {
      for (rapidjson::SizeType i = 0; i < value.Size(); ++i) {
        CheckParameters(value[i], absl::StrCat(location, "/", i));
      }
    }
  }

  bool ParseNonNegativeInt(const json::Value& obj, const char* field, const std::string& where,
                           int64_t* out) {
    if (!obj.HasMember(field)) return false;
    const json::Value& value = obj[field];
    if (!value.IsInt64() || value.GetInt64() <= 0) {
      Error("SCHEMA_VALIDATION_FAILED",
            absl::StrCat("The field '", field, "' must be a positive integer"),
            absl::StrCat(where, "/", field));
      return false;
    }
    *out = value.GetInt64();
    return true;
  }

  void ParseState(std::string name, const json::Value& value) {
    std::string where = absl::StrCat("/States/", name);
    state_names_.insert(name);
    if (name.empty() || name.size() > 80) {
      Error("SCHEMA_VALIDATION_FAILED",
            "State names must be between 1 and 80 characters long", where);
    }
    if (!value.IsObject()) {
      Error("SCHEMA_VALIDATION_FAILED", "A state must be a JSON object", where);
      return;
    }
    State state;
    state.name = name;
    const std::string* type = StringField(value, "Type", where);
    if (type == nullptr) {
      if (!value.HasMember("Type")) {
        Error("SCHEMA_VALIDATION_FAILED", "The field 'Type' is required but was missing",
              where);
      }
      return;
    }
    static const std::map<absl::string_view, StateType> kTypes = {
        {"Pass", StateType::kPass},         {"Task", StateType::kTask},
        {"Choice", StateType::kChoice},     {"Wait", StateType::kWait},
        {"Succeed", StateType::kSucceed},   {"Fail", StateType::kFail},
        {"Parallel", StateType::kParallel}, {"Map", StateType::kMap}};
    auto found = kTypes.find(*type);
    if (found == kTypes.end()) {
      Error("SCHEMA_VALIDATION_FAILED",
            absl::StrCat("The value '", *type,
                         "' is not a valid state type; expected one of Pass, Task, "
                         "Choice, Wait, Succeed, Fail, Parallel, Map"),
            where + "/Type");
      return;
    }
    state.type = found->second;
    switch (state.type) {
      case StateType::kChoice:
      case StateType::kWait:
      case StateType::kParallel:
      case StateType::kMap:
        Error("UNSUPPORTED_FEATURE",
              absl::StrCat("State type '", *type, "' is not supported by this release"),
              where + "/Type");
        return;
      default:
        break;
    }

    // Fields each supported type allows (ASL specification, "State Type
    // Fields" table).
    std::set<absl::string_view> allowed = {"Type", "Comment"};
    bool transitions = false;
    switch (state.type) {
      case StateType::kPass:
        allowed.insert({"Next", "End", "InputPath", "OutputPath", "ResultPath", "Parameters",
                        "Result"});
        transitions = true;
        break;
      case StateType::kTask:
        allowed.insert({"Next", "End", "InputPath", "OutputPath", "ResultPath", "Parameters",
                        "ResultSelector", "Resource", "TimeoutSeconds", "HeartbeatSeconds"});
        transitions = true;
        break;
      case StateType::kSucceed:
        allowed.insert({"InputPath", "OutputPath"});
        break;
      case StateType::kFail:
        allowed.insert({"Error", "Cause"});
        break;
      default:
        break;
    }
    for (const auto& member : value.GetObject()) {
      absl::string_view key(member.name.GetString(), member.name.GetStringLength());
      if (!allowed.count(key)) {
        Error("SCHEMA_VALIDATION_FAILED",
              absl::StrCat("Field '", key, "' is not supported for state type '", *type,
                           "'"),
              absl::StrCat(where, "/", key));
      }
    }
    if (auto* comment = StringField(value, "Comment", where)) state.comment = *comment;
    if (transitions) {
      const std::string* next = StringField(value, "Next", where);
      bool has_end = false;
      if (value.HasMember("End")) {
        if (!value["End"].IsBool()) {
          Error("SCHEMA_VALIDATION_FAILED", "The field 'End' must be a boolean",
                where + "/End");
        } else {
          has_end = value["End"].GetBool();
        }
      }
      if (next != nullptr && has_end) {
        Error("SCHEMA_VALIDATION_FAILED",
              "A state may not have both 'Next' and 'End': true", where);
      } else if (next == nullptr && !has_end && !value.HasMember("Next")) {
        Error("SCHEMA_VALIDATION_FAILED",
              "The state must have either a 'Next' field or 'End': true", where);
      }
      if (next != nullptr) state.next = *next;
      state.end = has_end;
    }
    ParsePathField(value, "InputPath", where, &state.input_path);
    ParsePathField(value, "OutputPath", where, &state.output_path);
    ParsePathField(value, "ResultPath", where, &state.result_path);
    if (value.HasMember("Parameters")) {
      state.parameters = &value["Parameters"];
      CheckParameters(*state.parameters, where + "/Parameters");
    }
    if (value.HasMember("Result")) state.result = &value["Result"];
    if (value.HasMember("ResultSelector")) {
      state.result_selector = &value["ResultSelector"];
      if (!state.result_selector->IsObject()) {
        Error("SCHEMA_VALIDATION_FAILED", "The field 'ResultSelector' must be an object",
              where + "/ResultSelector");
      }
      CheckParameters(*state.result_selector, where + "/ResultSelector");
    }
    if (state.type == StateType::kTask) {
      const std::string* resource = StringField(value, "Resource", where);
      if (resource == nullptr) {
        if (!value.HasMember("Resource")) {
          Error("SCHEMA_VALIDATION_FAILED",
                "The field 'Resource' is required but was missing", where);
        }
      } else if (resource->rfind("arn:", 0) != 0 ||
                 resource->find(":activity:") == std::string::npos) {
        Error("INVALID_RESOURCE",
              absl::StrCat("The resource '", *resource,
                           "' is not supported; this release runs activity ARNs "
                           "(arn:aws:states:REGION:ACCOUNT:activity:NAME)"),
              where + "/Resource");
      } else {
        state.resource = *resource;
      }
      ParseNonNegativeInt(value, "TimeoutSeconds", where, &state.timeout_seconds);
      ParseNonNegativeInt(value, "HeartbeatSeconds", where, &state.heartbeat_seconds);
      if (state.heartbeat_seconds > 0 && state.timeout_seconds > 0 &&
          state.heartbeat_seconds >= state.timeout_seconds) {
        Error("SCHEMA_VALIDATION_FAILED",
              "HeartbeatSeconds must be smaller than TimeoutSeconds", where);
      }
    }
    if (state.type == StateType::kFail) {
      if (auto* error = StringField(value, "Error", where)) state.error = *error;
      if (auto* cause = StringField(value, "Cause", where)) state.cause = *cause;
    }
    def_->states_.emplace(name, std::move(state));
  }

  void CheckTransitions() {
    if (!def_->start_at_.empty() && state_names_.count(def_->start_at_) == 0) {
      Error("MISSING_TRANSITION_TARGET",
            absl::StrCat("Missing 'Next' target: ", def_->start_at_), "/StartAt");
    }
    for (const auto& [name, state] : def_->states_) {
      if (!state.next.empty() && state_names_.count(state.next) == 0) {
        Error("MISSING_TRANSITION_TARGET", absl::StrCat("Missing 'Next' target: ", state.next),
              absl::StrCat("/States/", name, "/Next"));
      }
    }
    if (!diagnostics_.empty()) return;
    // Every state must be reachable from StartAt.
    std::set<std::string> seen;
    std::deque<std::string> queue = {def_->start_at_};
    while (!queue.empty()) {
      std::string name = std::move(queue.front());
      queue.pop_front();
      if (!seen.insert(name).second) continue;
      const State& state = def_->states_.at(name);
      if (!state.next.empty()) queue.push_back(state.next);
    }
    for (const auto& [name, state] : def_->states_) {
      if (!seen.count(name)) {
        Error("UNREACHABLE_STATE", absl::StrCat("State '", name, "' is not reachable"),
              absl::StrCat("/States/", name));
      }
    }
  }

  Definition* def_;
  std::vector<Diagnostic> diagnostics_;
  std::deque<std::string> scratch_;
  std::set<std::string, std::less<>> state_names_;
};

const State* Definition::FindState(absl::string_view name) const {
  auto it = states_.find(name);
  return it == states_.end() ? nullptr : &it->second;
}

absl::StatusOr<std::shared_ptr<const Definition>> Definition::Parse(absl::string_view text) {
  auto [def, diagnostics] = DefinitionParser::ParseText(text);
  if (!diagnostics.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("InvalidDefinition: ", InvalidDefinitionMessage(diagnostics)));
  }
  return std::shared_ptr<const Definition>(std::move(def));
}

std::vector<Diagnostic> ValidateDefinition(absl::string_view text) {
  return DefinitionParser::ParseText(text).second;
}

std::string InvalidDefinitionMessage(const std::vector<Diagnostic>& diagnostics) {
  std::vector<std::string> parts;
  for (const Diagnostic& d : diagnostics) {
    parts.push_back(absl::StrCat(d.code, ": ", d.message, " at ", d.location));
  }
  return absl::StrCat("Invalid State Machine Definition: '", absl::StrJoin(parts, ", "), "'");
}

}  // namespace stepflow::asl
