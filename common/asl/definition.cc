#include "common/asl/definition.h"

#include <cmath>
#include <deque>
#include <set>
#include <tuple>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/asl/timestamp.h"
#include "common/json/utf8.h"

namespace stepflow::asl {

std::optional<Integration> ParseIntegration(absl::string_view resource, std::string* error) {
  return ParseIntegration(resource, /*any_service=*/false, error);
}

std::optional<Integration> ParseIntegration(absl::string_view resource, bool any_service,
                                            std::string* error) {
  // arn:PARTITION:states:::SERVICE:ACTION[.PATTERN]
  std::vector<absl::string_view> parts = absl::StrSplit(resource, absl::MaxSplits(':', 6));
  if (parts.size() != 7 || parts[0] != "arn" || parts[1].empty() || parts[2] != "states" ||
      !parts[3].empty() || !parts[4].empty()) {
    return std::nullopt;
  }
  Integration integration;
  integration.service = std::string(parts[5]);
  absl::string_view action = parts[6];
  absl::string_view pattern;
  if (size_t dot = action.find('.'); dot != absl::string_view::npos) {
    pattern = action.substr(dot);
    action = action.substr(0, dot);
  }
  integration.action = std::string(action);
  integration.resource_name = absl::StrCat(action, pattern);
  bool sync_allowed = any_service;
  if (integration.service == "states" && integration.action == "startExecution") {
    sync_allowed = true;
  } else if (!any_service &&
             !(integration.service == "events" && integration.action == "putEvents")) {
    *error = absl::StrCat("The resource '", resource,
                          "' is not supported; this release runs activity ARNs and the "
                          "integrations arn:aws:states:::states:startExecution[.sync|.sync:2|"
                          ".waitForTaskToken] and arn:aws:states:::events:putEvents"
                          "[.waitForTaskToken]");
    return std::nullopt;
  }
  if (pattern.empty()) {
    integration.pattern = IntegrationPattern::kRequestResponse;
  } else if (pattern == ".waitForTaskToken") {
    integration.pattern = IntegrationPattern::kWaitForTaskToken;
  } else if (pattern == ".sync" && sync_allowed) {
    integration.pattern = IntegrationPattern::kSync;
  } else if (pattern == ".sync:2" && sync_allowed) {
    integration.pattern = IntegrationPattern::kSync2;
  } else {
    *error = absl::StrCat("The resource provided ", resource,
                          " is not recognized. The value is not a valid resource ARN, or the "
                          "resource is not available in this region.");
    return std::nullopt;
  }
  return integration;
}

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

const State* StateMachine::Find(absl::string_view name) const {
  auto it = states.find(name);
  return it == states.end() ? nullptr : &it->second;
}

namespace {

using FieldSet = std::set<std::string, std::less<>>;

const FieldSet& AllowedFields(StateType type) {
  static const FieldSet kPass = {"Type", "Comment", "Next", "End", "InputPath", "OutputPath",
                                 "ResultPath", "Parameters", "Result"};
  static const FieldSet kTask = {"Type", "Comment", "Next", "End", "InputPath", "OutputPath",
                                 "ResultPath", "Parameters", "ResultSelector", "Resource",
                                 "TimeoutSeconds", "TimeoutSecondsPath", "HeartbeatSeconds",
                                 "HeartbeatSecondsPath", "Retry", "Catch", "Credentials"};
  static const FieldSet kChoice = {"Type", "Comment", "InputPath", "OutputPath", "Choices",
                                   "Default"};
  static const FieldSet kWait = {"Type", "Comment", "Next", "End", "InputPath", "OutputPath",
                                 "Seconds", "SecondsPath", "Timestamp", "TimestampPath"};
  static const FieldSet kSucceed = {"Type", "Comment", "InputPath", "OutputPath"};
  static const FieldSet kFail = {"Type", "Comment", "Error", "Cause", "ErrorPath", "CausePath"};
  static const FieldSet kParallel = {"Type", "Comment", "Next", "End", "InputPath",
                                     "OutputPath", "ResultPath", "Parameters", "ResultSelector",
                                     "Branches", "Retry", "Catch"};
  static const FieldSet kMap = {"Type", "Comment", "Next", "End", "InputPath", "OutputPath",
                                "ResultPath", "Parameters", "ResultSelector", "ItemsPath",
                                "ItemSelector", "ItemProcessor", "Iterator", "MaxConcurrency",
                                "MaxConcurrencyPath", "Retry", "Catch", "Label",
                                "ToleratedFailurePercentage", "ToleratedFailurePercentagePath",
                                "ToleratedFailureCount", "ToleratedFailureCountPath",
                                "ItemReader", "ItemBatcher", "ResultWriter"};
  switch (type) {
    case StateType::kPass: return kPass;
    case StateType::kTask: return kTask;
    case StateType::kChoice: return kChoice;
    case StateType::kWait: return kWait;
    case StateType::kSucceed: return kSucceed;
    case StateType::kFail: return kFail;
    case StateType::kParallel: return kParallel;
    case StateType::kMap: return kMap;
  }
  return kPass;
}

// Fields a state with "QueryLanguage": "JSONata" may not have.
const FieldSet& JsonPathOnlyFields() {
  static const FieldSet kFields = {
      "InputPath", "OutputPath", "ResultPath", "Parameters", "ResultSelector", "Result",
      "ItemsPath", "SecondsPath", "TimestampPath", "TimeoutSecondsPath", "HeartbeatSecondsPath",
      "ErrorPath", "CausePath", "MaxConcurrencyPath", "ToleratedFailureCountPath",
      "ToleratedFailurePercentagePath", "Iterator"};
  return kFields;
}

// Fields only a JSONata state has.
const FieldSet& JsonataOnlyFields(StateType type) {
  static const FieldSet kNone;
  static const FieldSet kOutput = {"Output"};
  static const FieldSet kArgumentsOutput = {"Arguments", "Output"};
  static const FieldSet kMap = {"Items", "Output"};
  switch (type) {
    case StateType::kTask:
    case StateType::kParallel:
      return kArgumentsOutput;
    case StateType::kMap:
      return kMap;
    case StateType::kFail:
      return kNone;
    default:
      return kOutput;
  }
}

bool HasTransition(StateType type) {
  return type != StateType::kChoice && type != StateType::kSucceed && type != StateType::kFail;
}

}  // namespace

// Builds a Definition from a parsed document, collecting diagnostics rather
// than stopping at the first problem.
class DefinitionParser {
 public:
  explicit DefinitionParser(Definition* def) : def_(def) {}

  static std::pair<std::shared_ptr<Definition>, std::vector<Diagnostic>> ParseText(
      absl::string_view text, bool any_resource = false) {
    std::shared_ptr<Definition> def(new Definition());
    if (text.find_first_not_of(" \t\r\n") == absl::string_view::npos) {
      return {nullptr, {Diagnostic{"ERROR", "SCHEMA_VALIDATION_FAILED",
                                   "Definition must be a valid JSON object", "/"}}};
    }
    auto doc = json::Parse(text);
    if (!doc.ok()) {
      return {nullptr, {Diagnostic{"ERROR", "INVALID_JSON_DESCRIPTION",
                                   std::string(doc.status().message()), "/"}}};
    }
    def->document_ = std::move(*doc);
    DefinitionParser parser(def.get());
    parser.any_resource_ = any_resource;
    std::vector<Diagnostic> diagnostics = parser.Run();
    return {std::move(def), std::move(diagnostics)};
  }

  std::vector<Diagnostic> Run() {
    const json::Value& root = def_->document_;
    if (!root.IsObject()) {
      Error("SCHEMA_VALIDATION_FAILED", "Definition must be a valid JSON object", "/");
      return std::move(diagnostics_);
    }
    static const FieldSet kTopFields = {"Comment", "StartAt", "States", "TimeoutSeconds",
                                        "Version", "QueryLanguage"};
    for (const auto& member : root.GetObject()) {
      absl::string_view key(member.name.GetString(), member.name.GetStringLength());
      if (!kTopFields.count(key)) {
        Error("SCHEMA_VALIDATION_FAILED", absl::StrCat("Field '", key, "' is not supported"),
              absl::StrCat("/", key));
      }
    }
    if (auto* comment = StringField(root, "Comment", "")) def_->comment_ = *comment;
    CheckQueryLanguage(root, "");
    machine_jsonata_ = root.HasMember("QueryLanguage") && root["QueryLanguage"].IsString() &&
                       absl::string_view(root["QueryLanguage"].GetString()) == "JSONata";
    if (root.HasMember("TimeoutSeconds")) {
      const json::Value& timeout = root["TimeoutSeconds"];
      if (!timeout.IsInt64() || timeout.GetInt64() <= 0 || timeout.GetInt64() > 99999999) {
        Error("SCHEMA_VALIDATION_FAILED",
              "The value for the field 'TimeoutSeconds' must be a positive integer",
              "/TimeoutSeconds");
      } else {
        def_->timeout_seconds_ = timeout.GetInt64();
      }
    }
    ParseMachine(root, "", &def_->root_);
    // The states now sit where they stay (map nodes of machines the
    // definition owns), so pointers between them hold.
    Link(&def_->root_);
    return std::move(diagnostics_);
  }

 private:
  void Error(std::string code, std::string message, std::string location) {
    diagnostics_.push_back(Diagnostic{"ERROR", std::move(code), std::move(message),
                                      location.empty() ? "/" : std::move(location)});
  }

  void CheckQueryLanguage(const json::Value& obj, const std::string& where) {
    if (!obj.HasMember("QueryLanguage")) return;
    const json::Value& value = obj["QueryLanguage"];
    if (!value.IsString() || (std::string(value.GetString()) != "JSONPath" &&
                              std::string(value.GetString()) != "JSONata")) {
      Error("SCHEMA_VALIDATION_FAILED",
            "The value for the field 'QueryLanguage' must be 'JSONPath' or 'JSONata'",
            where + "/QueryLanguage");
    }
  }

  // The state's query language: its own QueryLanguage, else the machine's.
  // A state may switch to JSONata in a JSONPath machine, not the reverse.
  bool StateUsesJsonata(const json::Value& state, const std::string& where) {
    if (!state.HasMember("QueryLanguage") || !state["QueryLanguage"].IsString()) {
      return machine_jsonata_;
    }
    const absl::string_view language = state["QueryLanguage"].GetString();
    if (language == "JSONPath" && machine_jsonata_) {
      Error("SCHEMA_VALIDATION_FAILED",
            "'QueryLanguage' can not be 'JSONPath' if set to 'JSONata' for whole state machine",
            where);
      return true;
    }
    return language == "JSONata";
  }

  static bool IsExpression(const json::Value& value) {
    if (!value.IsString()) return false;
    absl::string_view text(value.GetString(), value.GetStringLength());
    return text.size() >= 4 && absl::StartsWith(text, "{%") && absl::EndsWith(text, "%}");
  }

  // Compiles every `{% ... %}` string in `value` (a JSONata state's
  // template or scalar field) once, for the interpreter to evaluate.
  void CompileTemplate(const json::Value& value, const std::string& location) {
    if (IsExpression(value)) {
      absl::string_view text(value.GetString(), value.GetStringLength());
      text.remove_prefix(2);
      text.remove_suffix(2);
      jsonata::EvalError error;
      auto expression = jsonata::Expression::Compile(text, &error);
      if (!expression.ok()) {
        Error("SCHEMA_VALIDATION_FAILED",
              absl::StrCat("The JSONata expression '", text,
                           "' is not valid: ", error.code, ": ", error.message),
              location);
        return;
      }
      def_->expressions_.emplace(&value, std::move(*expression));
    } else if (value.IsObject()) {
      for (const auto& member : value.GetObject()) {
        CompileTemplate(member.value, absl::StrCat(location, "/", member.name.GetString()));
      }
    } else if (value.IsArray()) {
      for (rapidjson::SizeType i = 0; i < value.Size(); ++i) {
        CompileTemplate(value[i], absl::StrCat(location, "/", i));
      }
    }
  }

  // A JSONata template field (Arguments, Output, Assign, ItemSelector,
  // Items): any JSON value, its `{% %}` strings compiled.
  const json::Value* JsonataField(const json::Value& obj, const char* field,
                                  const std::string& where) {
    if (!obj.HasMember(field)) return nullptr;
    const json::Value& value = obj[field];
    CompileTemplate(value, absl::StrCat(where, "/", field));
    return &value;
  }

  // A scalar field of a JSONata state given as a `{% %}` expression: kept
  // in state->expressions; true when it was one.
  bool ExpressionField(const json::Value& obj, const char* field, const std::string& where,
                       State* state) {
    if (!obj.HasMember(field) || !IsExpression(obj[field])) return false;
    CompileTemplate(obj[field], absl::StrCat(where, "/", field));
    state->expressions[field] = &obj[field];
    return true;
  }

  // Assign of a JSONata state: an object of variable names (no ".$").
  const json::Value* JsonataAssign(const json::Value& obj, const std::string& where) {
    const json::Value* assign = AssignField(obj, where);
    if (assign != nullptr) CompileTemplate(*assign, where + "/Assign");
    return assign;
  }

  // Choices of a JSONata Choice state: Condition rules.
  void ParseConditions(const json::Value& value, const std::string& where, State* state) {
    if (!Require(value, {"Choices"}, where)) return;
    const json::Value& choices = value["Choices"];
    if (!choices.IsArray() || choices.Empty()) {
      Error("SCHEMA_VALIDATION_FAILED",
            "The value for the field 'Choices' must be a non-empty ARRAY", where + "/Choices");
      return;
    }
    static const FieldSet kFields = {"Condition", "Next", "Comment", "Assign", "Output"};
    for (rapidjson::SizeType i = 0; i < choices.Size(); ++i) {
      const json::Value& item = choices[i];
      std::string at = absl::StrCat(where, "/Choices/", i);
      if (!item.IsObject()) {
        Error("SCHEMA_VALIDATION_FAILED", "A choice rule must be an OBJECT", at);
        continue;
      }
      for (const auto& member : item.GetObject()) {
        absl::string_view key(member.name.GetString(), member.name.GetStringLength());
        if (!kFields.count(key)) {
          Error("SCHEMA_VALIDATION_FAILED",
                absl::StrCat("Field '", key,
                             "' is not supported in a choice rule with QueryLanguage 'JSONata'"),
                absl::StrCat(at, "/", key));
        }
      }
      if (!Require(item, {"Condition", "Next"}, at)) continue;
      ConditionRule rule;
      const json::Value& condition = item["Condition"];
      if (!condition.IsBool() && !IsExpression(condition)) {
        Error("SCHEMA_VALIDATION_FAILED",
              "The value for the field 'Condition' must be a BOOLEAN or a JSONata expression",
              at + "/Condition");
        continue;
      }
      CompileTemplate(condition, at + "/Condition");
      rule.condition = &condition;
      if (const std::string* next = StringField(item, "Next", at)) rule.next = *next;
      rule.assign = JsonataAssign(item, at);
      rule.output = JsonataField(item, "Output", at);
      state->conditions.push_back(std::move(rule));
    }
    if (const std::string* fallback = StringField(value, "Default", where)) {
      state->default_next = *fallback;
    }
  }

  // Checks the required fields of an object and reports them together, as
  // AWS does: "These fields are required: [States, StartAt]".
  bool Require(const json::Value& obj, std::initializer_list<const char*> fields,
               const std::string& where) {
    std::vector<std::string> missing;
    for (const char* field : fields) {
      if (!obj.HasMember(field)) missing.emplace_back(field);
    }
    if (missing.empty()) return true;
    Error("SCHEMA_VALIDATION_FAILED",
          absl::StrCat("These fields are required: [", absl::StrJoin(missing, ", "), "]"), where);
    return false;
  }

  const std::string* StringField(const json::Value& obj, const char* field,
                                 const std::string& where) {
    if (!obj.HasMember(field)) return nullptr;
    const json::Value& value = obj[field];
    if (!value.IsString()) {
      Error("SCHEMA_VALIDATION_FAILED",
            absl::StrCat("The value for the field '", field, "' must be a STRING"),
            absl::StrCat(where, "/", field));
      return nullptr;
    }
    scratch_.emplace_back(value.GetString(), value.GetStringLength());
    return &scratch_.back();
  }

  std::optional<ReferencePath> PathValue(const json::Value& obj, const char* field,
                                         const std::string& where) {
    const std::string* text = StringField(obj, field, where);
    if (text == nullptr) return std::nullopt;
    auto path = ReferencePath::Parse(*text);
    if (!path.ok()) {
      Error("INVALID_JSON_PATH",
            absl::StrCat("The value for the field '", field, "' must be a valid JSONPath: ", *text),
            absl::StrCat(where, "/", field));
      return std::nullopt;
    }
    return std::move(*path);
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
            absl::StrCat("The value for the field '", field, "' must be a STRING or null"),
            location);
      return;
    }
    auto path = ReferencePath::Parse(value.GetString());
    const bool result_path = absl::string_view(field) == "ResultPath";
    if (path.ok() && !(result_path && (path->is_context() || path->is_variable()))) {
      out->kind = PathField::Kind::kPath;
      out->path = std::move(*path);
      return;
    }
    // InputPath, OutputPath and ItemsPath may select several nodes;
    // ResultPath must name one.
    if (!result_path) {
      auto general = JsonPath::Parse(value.GetString());
      if (general.ok()) {
        out->kind = PathField::Kind::kPath;
        out->any = std::make_shared<const JsonPath>(std::move(*general));
        return;
      }
    }
    Error("INVALID_JSON_PATH",
          absl::StrCat("The value for the field '", field,
                       "' must be a valid JSONPath: ", value.GetString()),
          location);
  }

  // The call, when each of its path arguments is a Path (a reference
  // path, or any JSONPath, as the values of "*.$" fields).
  static absl::StatusOr<IntrinsicCall> WithValidPaths(IntrinsicCall call) {
    for (const std::string& path : call.PathArguments()) {
      if (ReferencePath::Parse(path).ok()) continue;
      if (absl::Status general = JsonPath::Parse(path).status(); !general.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat("invalid path '", path, "': ", general.message()));
      }
    }
    return call;
  }

  void CheckTemplate(const json::Value& value, const std::string& location) {
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
          if (IntrinsicCall::LooksLikeCall(text)) {
            auto call = IntrinsicCall::Parse(text);
            if (call.ok()) call = WithValidPaths(std::move(*call));
            if (!call.ok()) {
              Error("SCHEMA_VALIDATION_FAILED",
                    absl::StrCat("The value for the field '", key,
                                 "' must be a valid intrinsic function call: ",
                                 call.status().message()),
                    where);
            } else {
              def_->intrinsics_.emplace(&member.value, std::move(*call));
            }
          } else if (def_->RememberReference(text) == nullptr) {
            auto general = JsonPath::Parse(text);
            if (general.ok()) {
              def_->paths_.emplace(&member.value, std::move(*general));
              continue;
            }
            Error("INVALID_JSON_PATH",
                  absl::StrCat("The value for the field '", key,
                               "' must be a valid JSONPath: ", text),
                  where);
          }
        } else {
          CheckTemplate(member.value, where);
        }
      }
    } else if (value.IsArray()) {
      for (rapidjson::SizeType i = 0; i < value.Size(); ++i) {
        CheckTemplate(value[i], absl::StrCat(location, "/", i));
      }
    }
  }

  const json::Value* TemplateField(const json::Value& obj, const char* field,
                                   const std::string& where, bool object_only) {
    if (!obj.HasMember(field)) return nullptr;
    const json::Value& value = obj[field];
    if (object_only && !value.IsObject()) {
      Error("SCHEMA_VALIDATION_FAILED",
            absl::StrCat("The value for the field '", field, "' must be an OBJECT"),
            absl::StrCat(where, "/", field));
      return nullptr;
    }
    CheckTemplate(value, absl::StrCat(where, "/", field));
    return &value;
  }

  // Assign: an object whose keys name variables (ending in ".$" when the
  // value is a path or intrinsic call).
  const json::Value* AssignField(const json::Value& obj, const std::string& where) {
    const json::Value* assign = TemplateField(obj, "Assign", where, /*object_only=*/true);
    if (assign == nullptr) return nullptr;
    for (const auto& member : assign->GetObject()) {
      absl::string_view key(member.name.GetString(), member.name.GetStringLength());
      if (key.size() > 2 && key.substr(key.size() - 2) == ".$") key.remove_suffix(2);
      bool valid = !key.empty() && key.size() <= 80 &&
                   !std::isdigit(static_cast<unsigned char>(key[0]));
      for (char c : key) {
        valid &= std::isalnum(static_cast<unsigned char>(c)) || c == '_' ||
                 static_cast<unsigned char>(c) >= 0x80;
      }
      if (!valid) {
        Error("SCHEMA_VALIDATION_FAILED",
              absl::StrCat("The variable name '", key,
                           "' is invalid: use letters, digits and underscores, not starting "
                           "with a digit"),
              absl::StrCat(where, "/Assign/", key));
      }
    }
    return assign;
  }

  // A positive integer, given literally (`field`) or through `field`Path.
  void ParseIntOrPath(const json::Value& obj, const char* field, const std::string& where,
                      bool allow_zero, IntOrPath* out) {
    std::string path_field = absl::StrCat(field, "Path");
    bool literal = obj.HasMember(field);
    bool path = obj.HasMember(path_field.c_str());
    if (literal && path) {
      Error("SCHEMA_VALIDATION_FAILED",
            absl::StrCat("These fields cannot both be set: [", field, ", ", path_field, "]"),
            where);
      return;
    }
    if (literal) {
      const json::Value& value = obj[field];
      if (!value.IsInt64() || value.GetInt64() < (allow_zero ? 0 : 1) ||
          value.GetInt64() > 99999999) {
        Error("SCHEMA_VALIDATION_FAILED",
              absl::StrCat("The value for the field '", field, "' must be ",
                           allow_zero ? "a non-negative" : "a positive", " integer"),
              absl::StrCat(where, "/", field));
      } else {
        out->value = value.GetInt64();
      }
    } else if (path) {
      out->path = PathValue(obj, path_field.c_str(), where);
    }
  }

  std::vector<std::string> ErrorEquals(const json::Value& obj, const std::string& where) {
    std::vector<std::string> errors;
    if (!obj.HasMember("ErrorEquals")) return errors;
    const json::Value& list = obj["ErrorEquals"];
    if (!list.IsArray() || list.Empty()) {
      Error("SCHEMA_VALIDATION_FAILED",
            "The value for the field 'ErrorEquals' must be a non-empty ARRAY of STRINGs",
            where + "/ErrorEquals");
      return errors;
    }
    for (const auto& item : list.GetArray()) {
      if (!item.IsString()) {
        Error("SCHEMA_VALIDATION_FAILED",
              "The value for the field 'ErrorEquals' must be a non-empty ARRAY of STRINGs",
              where + "/ErrorEquals");
        return {};
      }
      errors.emplace_back(item.GetString(), item.GetStringLength());
    }
    bool has_all = std::find(errors.begin(), errors.end(), "States.ALL") != errors.end();
    if (has_all && errors.size() > 1) {
      Error("SCHEMA_VALIDATION_FAILED",
            "'States.ALL' must appear alone in 'ErrorEquals'", where + "/ErrorEquals");
    }
    return errors;
  }

  void ParseRetry(const json::Value& obj, const std::string& where, State* state) {
    if (!obj.HasMember("Retry")) return;
    const json::Value& list = obj["Retry"];
    if (!list.IsArray()) {
      Error("SCHEMA_VALIDATION_FAILED", "The value for the field 'Retry' must be an ARRAY",
            where + "/Retry");
      return;
    }
    static const FieldSet kFields = {"ErrorEquals", "IntervalSeconds", "MaxAttempts",
                                     "BackoffRate", "MaxDelaySeconds", "JitterStrategy",
                                     "Comment"};
    for (rapidjson::SizeType i = 0; i < list.Size(); ++i) {
      const json::Value& item = list[i];
      std::string at = absl::StrCat(where, "/Retry/", i);
      if (!item.IsObject()) {
        Error("SCHEMA_VALIDATION_FAILED", "A retrier must be an OBJECT", at);
        continue;
      }
      for (const auto& member : item.GetObject()) {
        absl::string_view key(member.name.GetString(), member.name.GetStringLength());
        if (!kFields.count(key)) {
          Error("SCHEMA_VALIDATION_FAILED", absl::StrCat("Field '", key, "' is not supported"),
                absl::StrCat(at, "/", key));
        }
      }
      if (!Require(item, {"ErrorEquals"}, at)) continue;
      Retrier retrier;
      retrier.error_equals = ErrorEquals(item, at);
      if (item.HasMember("IntervalSeconds")) {
        const json::Value& v = item["IntervalSeconds"];
        if (!v.IsInt64() || v.GetInt64() < 1 || v.GetInt64() > 99999999) {
          Error("SCHEMA_VALIDATION_FAILED",
                "The value for the field 'IntervalSeconds' must be a positive integer",
                at + "/IntervalSeconds");
        } else {
          retrier.interval_seconds = static_cast<double>(v.GetInt64());
        }
      }
      if (item.HasMember("MaxAttempts")) {
        const json::Value& v = item["MaxAttempts"];
        if (!v.IsInt64() || v.GetInt64() < 0 || v.GetInt64() > 99999999) {
          Error("SCHEMA_VALIDATION_FAILED",
                "The value for the field 'MaxAttempts' must be a non-negative integer",
                at + "/MaxAttempts");
        } else {
          retrier.max_attempts = v.GetInt64();
        }
      }
      if (item.HasMember("BackoffRate")) {
        const json::Value& v = item["BackoffRate"];
        if (!v.IsNumber() || v.GetDouble() < 1.0) {
          Error("SCHEMA_VALIDATION_FAILED",
                "The value for the field 'BackoffRate' must be a number greater than or equal "
                "to 1.0",
                at + "/BackoffRate");
        } else {
          retrier.backoff_rate = v.GetDouble();
        }
      }
      if (item.HasMember("MaxDelaySeconds")) {
        const json::Value& v = item["MaxDelaySeconds"];
        if (!v.IsInt64() || v.GetInt64() < 1 || v.GetInt64() > 31622400) {
          Error("SCHEMA_VALIDATION_FAILED",
                "The value for the field 'MaxDelaySeconds' must be a positive integer",
                at + "/MaxDelaySeconds");
        } else {
          retrier.max_delay_seconds = v.GetInt64();
        }
      }
      if (const std::string* jitter = StringField(item, "JitterStrategy", at)) {
        if (*jitter == "FULL") {
          retrier.full_jitter = true;
        } else if (*jitter != "NONE") {
          Error("SCHEMA_VALIDATION_FAILED",
                "The value for the field 'JitterStrategy' must be one of [FULL, NONE]",
                at + "/JitterStrategy");
        }
      }
      bool all = retrier.error_equals.size() == 1 && retrier.error_equals[0] == "States.ALL";
      if (all && i + 1 != list.Size()) {
        Error("SCHEMA_VALIDATION_FAILED",
              "A retrier with 'States.ALL' must be the last retrier", at + "/ErrorEquals");
      }
      state->retry.push_back(std::move(retrier));
    }
  }

  void ParseCatch(const json::Value& obj, const std::string& where, State* state) {
    if (!obj.HasMember("Catch")) return;
    const json::Value& list = obj["Catch"];
    if (!list.IsArray()) {
      Error("SCHEMA_VALIDATION_FAILED", "The value for the field 'Catch' must be an ARRAY",
            where + "/Catch");
      return;
    }
    const bool jsonata = state->jsonata;
    const FieldSet kFields = {"ErrorEquals", "Next", jsonata ? "Output" : "ResultPath",
                              "Comment", "Assign"};
    for (rapidjson::SizeType i = 0; i < list.Size(); ++i) {
      const json::Value& item = list[i];
      std::string at = absl::StrCat(where, "/Catch/", i);
      if (!item.IsObject()) {
        Error("SCHEMA_VALIDATION_FAILED", "A catcher must be an OBJECT", at);
        continue;
      }
      for (const auto& member : item.GetObject()) {
        absl::string_view key(member.name.GetString(), member.name.GetStringLength());
        if (!kFields.count(key)) {
          Error("SCHEMA_VALIDATION_FAILED", absl::StrCat("Field '", key, "' is not supported"),
                absl::StrCat(at, "/", key));
        }
      }
      if (!Require(item, {"ErrorEquals", "Next"}, at)) continue;
      Catcher catcher;
      catcher.error_equals = ErrorEquals(item, at);
      if (const std::string* next = StringField(item, "Next", at)) catcher.next = *next;
      if (jsonata) {
        catcher.assign = JsonataAssign(item, at);
        catcher.output = JsonataField(item, "Output", at);
      } else {
        ParsePathField(item, "ResultPath", at, &catcher.result_path);
        catcher.assign = AssignField(item, at);
      }
      bool all = catcher.error_equals.size() == 1 && catcher.error_equals[0] == "States.ALL";
      if (all && i + 1 != list.Size()) {
        Error("SCHEMA_VALIDATION_FAILED",
              "A catcher with 'States.ALL' must be the last catcher", at + "/ErrorEquals");
      }
      state->catchers.push_back(std::move(catcher));
    }
  }

  // Resolves the names a machine's states transition to by Next or StartAt
  // into pointers, names their event types and notes distributed Maps, for
  // the interpreter's sake.
  void Link(StateMachine* machine) {
    machine->start_state = machine->Find(machine->start_at);
    for (auto& [name, state] : machine->states) {
      if (!state.next.empty()) state.next_state = machine->Find(state.next);
      state.entered_event_type = absl::StrCat(StateTypeName(state.type), "StateEntered");
      state.exited_event_type = absl::StrCat(StateTypeName(state.type), "StateExited");
      if (state.distributed) def_->has_distributed_map_ = true;
      for (auto& branch : state.branches) Link(branch.get());
      if (state.processor != nullptr) Link(state.processor.get());
    }
  }

  void ParseMachine(const json::Value& obj, const std::string& where, StateMachine* machine) {
    if (!Require(obj, {"States", "StartAt"}, where)) {
      // Keep going where possible so every problem is reported.
      if (!obj.HasMember("States")) return;
    }
    if (const std::string* start = StringField(obj, "StartAt", where)) machine->start_at = *start;
    const json::Value& states = obj["States"];
    if (!states.IsObject() || states.MemberCount() == 0) {
      Error("SCHEMA_VALIDATION_FAILED", "The value for the field 'States' must be a non-empty OBJECT",
            where + "/States");
      return;
    }
    std::set<std::string, std::less<>> names;
    for (const auto& member : states.GetObject()) {
      std::string name(member.name.GetString(), member.name.GetStringLength());
      names.insert(name);
      if (!all_names_.insert(name).second) {
        Error("SCHEMA_VALIDATION_FAILED",
              absl::StrCat("State names must be unique across the state machine: '", name, "'"),
              absl::StrCat(where, "/States/", name));
      }
      ParseState(name, member.value, absl::StrCat(where, "/States/", name), machine);
    }
    CheckTransitions(*machine, names, where);
  }

  void ParseState(const std::string& name, const json::Value& value, const std::string& where,
                  StateMachine* machine) {
    if (name.empty() || name.size() > 80) {
      Error("SCHEMA_VALIDATION_FAILED", "State names must be between 1 and 80 characters long",
            where);
    }
    if (!value.IsObject()) {
      Error("SCHEMA_VALIDATION_FAILED", "A state must be an OBJECT", where);
      return;
    }
    if (!Require(value, {"Type"}, where)) return;
    const std::string* type = StringField(value, "Type", where);
    if (type == nullptr) return;
    static const std::map<std::string, StateType, std::less<>> kTypes = {
        {"Pass", StateType::kPass},         {"Task", StateType::kTask},
        {"Choice", StateType::kChoice},     {"Wait", StateType::kWait},
        {"Succeed", StateType::kSucceed},   {"Fail", StateType::kFail},
        {"Parallel", StateType::kParallel}, {"Map", StateType::kMap}};
    auto found = kTypes.find(*type);
    if (found == kTypes.end()) {
      Error("SCHEMA_VALIDATION_FAILED",
            absl::StrCat("The value '", *type,
                         "' is not a valid state type; expected one of Pass, Task, Choice, Wait, "
                         "Succeed, Fail, Parallel, Map"),
            where + "/Type");
      return;
    }
    State state;
    state.name = name;
    state.type = found->second;
    CheckQueryLanguage(value, where);
    state.jsonata = StateUsesJsonata(value, where);
    const FieldSet& allowed = AllowedFields(state.type);
    for (const auto& member : value.GetObject()) {
      absl::string_view key(member.name.GetString(), member.name.GetStringLength());
      if (key == "QueryLanguage") continue;
      if (key == "Assign" && state.type != StateType::kSucceed && state.type != StateType::kFail) {
        continue;
      }
      const bool jsonata_field = JsonataOnlyFields(state.type).count(key) > 0;
      if (state.jsonata && JsonPathOnlyFields().count(key)) {
        Error("SCHEMA_VALIDATION_FAILED",
              absl::StrCat("Field '", key, "' is not supported for state type '", *type,
                           "' with QueryLanguage 'JSONata'"),
              absl::StrCat(where, "/", key));
      } else if (jsonata_field && !state.jsonata) {
        Error("SCHEMA_VALIDATION_FAILED",
              absl::StrCat("Field '", key, "' is not supported for state type '", *type,
                           "' with QueryLanguage 'JSONPath'"),
              absl::StrCat(where, "/", key));
      } else if (!allowed.count(key) && !jsonata_field) {
        Error("SCHEMA_VALIDATION_FAILED",
              absl::StrCat("Field '", key, "' is not supported for state type '", *type, "'"),
              absl::StrCat(where, "/", key));
      }
    }
    if (auto* comment = StringField(value, "Comment", where)) state.comment = *comment;
    if (HasTransition(state.type)) {
      const std::string* next = StringField(value, "Next", where);
      bool has_end = false;
      if (value.HasMember("End")) {
        if (!value["End"].IsBool()) {
          Error("SCHEMA_VALIDATION_FAILED", "The value for the field 'End' must be a BOOLEAN",
                where + "/End");
        } else {
          has_end = value["End"].GetBool();
        }
      }
      if (next != nullptr && has_end) {
        Error("SCHEMA_VALIDATION_FAILED", "A state may not have both 'Next' and 'End': true",
              where);
      } else if (next == nullptr && !has_end && !value.HasMember("Next")) {
        Error("SCHEMA_VALIDATION_FAILED",
              "The state must have either a 'Next' field or 'End': true", where);
      }
      if (next != nullptr) state.next = *next;
      state.end = has_end;
    }
    ParseRetry(value, where, &state);
    ParseCatch(value, where, &state);
    if (state.jsonata) {
      ParseJsonataState(value, where, &state);
      machine->states.emplace(name, std::move(state));
      return;
    }
    ParsePathField(value, "InputPath", where, &state.input_path);
    ParsePathField(value, "OutputPath", where, &state.output_path);
    ParsePathField(value, "ResultPath", where, &state.result_path);
    state.parameters = TemplateField(value, "Parameters", where, /*object_only=*/false);
    if (value.HasMember("Result")) state.result = &value["Result"];
    state.result_selector = TemplateField(value, "ResultSelector", where, /*object_only=*/true);
    if (state.type != StateType::kSucceed && state.type != StateType::kFail) {
      state.assign = AssignField(value, where);
    }

    switch (state.type) {
      case StateType::kTask:
        ParseTask(value, where, &state);
        break;
      case StateType::kChoice:
        ParseChoice(value, where, &state);
        break;
      case StateType::kWait:
        ParseWait(value, where, &state);
        break;
      case StateType::kFail:
        if (auto* error = StringField(value, "Error", where)) state.error = *error;
        if (auto* cause = StringField(value, "Cause", where)) state.cause = *cause;
        for (auto [field, path, call] :
             {std::tuple{"ErrorPath", &state.error_path, &state.error_call},
              std::tuple{"CausePath", &state.cause_path, &state.cause_call}}) {
          if (value.HasMember(field) && value[field].IsString() &&
              IntrinsicCall::LooksLikeCall(value[field].GetString())) {
            auto parsed = IntrinsicCall::Parse(value[field].GetString());
            if (parsed.ok()) parsed = WithValidPaths(std::move(*parsed));
            if (!parsed.ok()) {
              Error("SCHEMA_VALIDATION_FAILED",
                    absl::StrCat("The value for the field '", field,
                                 "' must be a valid intrinsic function call: ",
                                 parsed.status().message()),
                    absl::StrCat(where, "/", field));
            } else {
              def_->intrinsics_.emplace(&value[field], std::move(*parsed));
              *call = &value[field];
            }
          } else {
            *path = PathValue(value, field, where);
          }
        }
        if (value.HasMember("Error") && value.HasMember("ErrorPath")) {
          Error("SCHEMA_VALIDATION_FAILED",
                "These fields cannot both be set: [Error, ErrorPath]", where);
        }
        if (value.HasMember("Cause") && value.HasMember("CausePath")) {
          Error("SCHEMA_VALIDATION_FAILED",
                "These fields cannot both be set: [Cause, CausePath]", where);
        }
        break;
      case StateType::kParallel:
        ParseParallel(value, where, &state);
        break;
      case StateType::kMap:
        ParseMap(value, where, &state);
        break;
      default:
        break;
    }
    machine->states.emplace(name, std::move(state));
  }

  // The fields of a JSONata state after the common ones: templates, and
  // scalar fields that may be `{% %}` expressions instead of literals.
  void ParseJsonataState(const json::Value& value, const std::string& where, State* state) {
    if (state->type != StateType::kFail) state->output = JsonataField(value, "Output", where);
    if (state->type != StateType::kSucceed && state->type != StateType::kFail) {
      state->assign = JsonataAssign(value, where);
    }
    switch (state->type) {
      case StateType::kTask: {
        state->arguments = JsonataField(value, "Arguments", where);
        const bool timeout = ExpressionField(value, "TimeoutSeconds", where, state);
        const bool heartbeat = ExpressionField(value, "HeartbeatSeconds", where, state);
        if (!Require(value, {"Resource"}, where)) return;
        CheckCredentials(value, where);
        ParseResource(value, where, state);
        if (!timeout) ParseIntOrPath(value, "TimeoutSeconds", where, false, &state->timeout_seconds);
        if (!heartbeat) {
          ParseIntOrPath(value, "HeartbeatSeconds", where, false, &state->heartbeat_seconds);
        }
        break;
      }
      case StateType::kChoice:
        ParseConditions(value, where, state);
        break;
      case StateType::kWait: {
        int given = (value.HasMember("Seconds") ? 1 : 0) + (value.HasMember("Timestamp") ? 1 : 0);
        if (given != 1) {
          Error("SCHEMA_VALIDATION_FAILED",
                "A Wait state must have exactly one of: [Seconds, Timestamp]", where);
          return;
        }
        if (!ExpressionField(value, "Seconds", where, state)) {
          ParseIntOrPath(value, "Seconds", where, /*allow_zero=*/true, &state->seconds);
        }
        if (!ExpressionField(value, "Timestamp", where, state)) {
          if (const std::string* timestamp = StringField(value, "Timestamp", where)) {
            auto parsed = ParseTimestamp(*timestamp);
            if (!parsed.ok()) {
              Error("SCHEMA_VALIDATION_FAILED", "String does not match RFC3339 timestamp",
                    where + "/Timestamp");
            } else {
              state->timestamp = *parsed;
            }
          }
        }
        break;
      }
      case StateType::kFail:
        if (!ExpressionField(value, "Error", where, state)) {
          if (auto* error = StringField(value, "Error", where)) state->error = *error;
        }
        if (!ExpressionField(value, "Cause", where, state)) {
          if (auto* cause = StringField(value, "Cause", where)) state->cause = *cause;
        }
        break;
      case StateType::kParallel:
        state->arguments = JsonataField(value, "Arguments", where);
        ParseParallel(value, where, state);
        break;
      case StateType::kMap: {
        JsonataField(value, "Items", where);
        if (value.HasMember("Items")) state->expressions["Items"] = &value["Items"];
        for (const char* field :
             {"MaxConcurrency", "ToleratedFailureCount", "ToleratedFailurePercentage"}) {
          ExpressionField(value, field, where, state);
        }
        if (value.HasMember("ItemBatcher") && value["ItemBatcher"].IsObject()) {
          const std::string at = where + "/ItemBatcher";
          for (const char* field : {"MaxItemsPerBatch", "MaxInputBytesPerBatch"}) {
            ExpressionField(value["ItemBatcher"], field, at, state);
          }
        }
        ParseMap(value, where, state);
        state->item_selector = JsonataField(value, "ItemSelector", where);
        break;
      }
      default:
        break;
    }
  }

  void ParseResource(const json::Value& value, const std::string& where, State* state) {
    const std::string* resource = StringField(value, "Resource", where);
    if (resource != nullptr) {
      std::string problem;
      std::optional<Integration> integration =
          ParseIntegration(*resource, /*any_service=*/any_resource_, &problem);
      if (!integration && problem.empty() && any_resource_ &&
          absl::StartsWith(*resource, "arn:")) {
        state->resource = *resource;  // e.g. a Lambda function's ARN
        return;
      }
      if (integration.has_value()) {
        state->resource = *resource;
        state->integration = std::move(*integration);
      } else if (!problem.empty()) {
        Error("INVALID_RESOURCE", problem, where + "/Resource");
      } else if (resource->rfind("arn:", 0) != 0 ||
                 resource->find(":activity:") == std::string::npos) {
        Error("INVALID_RESOURCE",
              absl::StrCat("The resource '", *resource,
                           "' is not supported; this release runs activity ARNs "
                           "(arn:aws:states:REGION:ACCOUNT:activity:NAME) and the "
                           "states:startExecution and events:putEvents integrations"),
              where + "/Resource");
      } else {
        state->resource = *resource;
      }
    }
  }

  // Credentials must name the role to assume (RoleArn, or RoleArn.$ / a
  // JSONata RoleArn giving it at run time).
  void CheckCredentials(const json::Value& value, const std::string& where) {
    if (!value.HasMember("Credentials") || !value["Credentials"].IsObject()) return;
    const json::Value& credentials = value["Credentials"];
    if (credentials.HasMember("RoleArn") || credentials.HasMember("RoleArn.$")) return;
    Error("SCHEMA_VALIDATION_FAILED", "The field 'RoleArn' is required but was missing",
          where + "/Credentials");
  }

  void ParseTask(const json::Value& value, const std::string& where, State* state) {
    if (!Require(value, {"Resource"}, where)) return;
    CheckCredentials(value, where);
    ParseResource(value, where, state);
    ParseIntOrPath(value, "TimeoutSeconds", where, false, &state->timeout_seconds);
    ParseIntOrPath(value, "HeartbeatSeconds", where, false, &state->heartbeat_seconds);
    if (state->heartbeat_seconds.value && state->timeout_seconds.value &&
        *state->heartbeat_seconds.value >= *state->timeout_seconds.value) {
      Error("SCHEMA_VALIDATION_FAILED", "HeartbeatSeconds must be smaller than TimeoutSeconds",
            where);
    }
  }

  void ParseChoice(const json::Value& value, const std::string& where, State* state) {
    if (!Require(value, {"Choices"}, where)) return;
    const json::Value& choices = value["Choices"];
    if (!choices.IsArray() || choices.Empty()) {
      Error("SCHEMA_VALIDATION_FAILED",
            "The value for the field 'Choices' must be a non-empty ARRAY", where + "/Choices");
      return;
    }
    for (rapidjson::SizeType i = 0; i < choices.Size(); ++i) {
      std::vector<ChoiceDiagnostic> problems;
      auto rule = ChoiceRule::Parse(choices[i], /*top_level=*/true,
                                    absl::StrCat(where, "/Choices/", i), &problems);
      for (ChoiceDiagnostic& problem : problems) {
        Error(std::move(problem.code), std::move(problem.message), std::move(problem.location));
      }
      if (rule) {
        for (const std::string& text : rule->Paths()) def_->RememberReference(text);
        state->choices.push_back(std::move(rule));
        state->choice_assigns.push_back(
            AssignField(choices[i], absl::StrCat(where, "/Choices/", i)));
      }
    }
    if (const std::string* fallback = StringField(value, "Default", where)) {
      state->default_next = *fallback;
    }
  }

  void ParseWait(const json::Value& value, const std::string& where, State* state) {
    int given = 0;
    for (const char* field : {"Seconds", "SecondsPath", "Timestamp", "TimestampPath"}) {
      given += value.HasMember(field) ? 1 : 0;
    }
    if (given != 1) {
      Error("SCHEMA_VALIDATION_FAILED",
            "A Wait state must have exactly one of: [Seconds, SecondsPath, Timestamp, "
            "TimestampPath]",
            where);
      return;
    }
    ParseIntOrPath(value, "Seconds", where, /*allow_zero=*/true, &state->seconds);
    if (const std::string* timestamp = StringField(value, "Timestamp", where)) {
      auto parsed = ParseTimestamp(*timestamp);
      if (!parsed.ok()) {
        Error("SCHEMA_VALIDATION_FAILED", "String does not match RFC3339 timestamp",
              where + "/Timestamp");
      } else {
        state->timestamp = *parsed;
      }
    }
    state->timestamp_path = PathValue(value, "TimestampPath", where);
  }

  void ParseParallel(const json::Value& value, const std::string& where, State* state) {
    if (!Require(value, {"Branches"}, where)) return;
    const json::Value& branches = value["Branches"];
    if (!branches.IsArray() || branches.Empty()) {
      Error("SCHEMA_VALIDATION_FAILED",
            "The value for the field 'Branches' must be a non-empty ARRAY", where + "/Branches");
      return;
    }
    for (rapidjson::SizeType i = 0; i < branches.Size(); ++i) {
      std::string at = absl::StrCat(where, "/Branches/", i);
      if (!branches[i].IsObject()) {
        Error("SCHEMA_VALIDATION_FAILED", "A branch must be an OBJECT", at);
        continue;
      }
      auto machine = std::make_unique<StateMachine>();
      ParseMachine(branches[i], at, machine.get());
      state->branches.push_back(std::move(machine));
    }
  }

  void ParseMap(const json::Value& value, const std::string& where, State* state) {
    const bool processor = value.HasMember("ItemProcessor");
    const bool iterator = value.HasMember("Iterator");
    if (processor == iterator) {
      Error("SCHEMA_VALIDATION_FAILED",
            processor ? "These fields cannot both be set: [ItemProcessor, Iterator]"
                      : "These fields are required: [ItemProcessor]",
            where);
      return;
    }
    const char* field = processor ? "ItemProcessor" : "Iterator";
    const json::Value& body = value[field];
    std::string at = absl::StrCat(where, "/", field);
    if (!body.IsObject()) {
      Error("SCHEMA_VALIDATION_FAILED",
            absl::StrCat("The value for the field '", field, "' must be an OBJECT"), at);
      return;
    }
    ParseProcessorConfig(body, at, state);
    state->processor = std::make_unique<StateMachine>();
    ParseMachine(body, at, state->processor.get());
    ParsePathField(value, "ItemsPath", where, &state->items_path);
    state->item_selector = TemplateField(value, "ItemSelector", where, /*object_only=*/true);
    if (state->item_selector != nullptr && state->parameters != nullptr) {
      Error("SCHEMA_VALIDATION_FAILED",
            "These fields cannot both be set: [ItemSelector, Parameters]", where);
    }
    if (!state->expressions.count("MaxConcurrency")) {
      ParseIntOrPath(value, "MaxConcurrency", where, /*allow_zero=*/true,
                     &state->max_concurrency);
    }
    if (const std::string* label = StringField(value, "Label", where)) {
      if (std::optional<std::string> problem = LabelProblem(*label)) {
        Error("SCHEMA_VALIDATION_FAILED", *problem, where + "/Label");
      }
      state->label = *label;
    }
    for (const char* only_distributed : {"ItemReader", "ItemBatcher", "ResultWriter",
                                         "ToleratedFailurePercentage",
                                         "ToleratedFailurePercentagePath",
                                         "ToleratedFailureCount", "ToleratedFailureCountPath"}) {
      // AWS runs an inline JSONata Map that gives a tolerated failure (it
      // has no use there); a JSONPath one it refuses.
      const bool tolerance = absl::StartsWith(only_distributed, "ToleratedFailure");
      if (tolerance && state->jsonata) continue;
      if (value.HasMember(only_distributed) && !state->distributed) {
        Error("SCHEMA_VALIDATION_FAILED",
              absl::StrCat("Field '", only_distributed, "' is only supported in DISTRIBUTED mode"),
              absl::StrCat(where, "/", only_distributed));
      }
    }
    if (!state->distributed) return;
    ParseItemBatcher(value, where, state);
    // A JSONata state may give these as expressions (in state->expressions).
    if (!state->expressions.count("ToleratedFailureCount")) {
      ParseIntOrPath(value, "ToleratedFailureCount", where, /*allow_zero=*/true,
                     &state->tolerated_failure_count);
    }
    if (state->expressions.count("ToleratedFailurePercentage")) {
      // Evaluated when the Map starts.
    } else if (value.HasMember("ToleratedFailurePercentage") &&
        value.HasMember("ToleratedFailurePercentagePath")) {
      Error("SCHEMA_VALIDATION_FAILED",
            "These fields cannot both be set: [ToleratedFailurePercentage, "
            "ToleratedFailurePercentagePath]",
            where);
    } else if (value.HasMember("ToleratedFailurePercentage")) {
      const json::Value& percentage = value["ToleratedFailurePercentage"];
      if (!percentage.IsNumber() || percentage.GetDouble() < 0 || percentage.GetDouble() > 100) {
        Error("SCHEMA_VALIDATION_FAILED",
              "The value for the field 'ToleratedFailurePercentage' must be a number between 0 "
              "and 100",
              where + "/ToleratedFailurePercentage");
      } else {
        state->tolerated_failure_percentage = percentage.GetDouble();
      }
    } else {
      state->tolerated_failure_percentage_path =
          PathValue(value, "ToleratedFailurePercentagePath", where);
    }
    for (auto [field, out] : {std::pair{"ItemReader", &state->item_reader},
                              std::pair{"ResultWriter", &state->result_writer}}) {
      if (!value.HasMember(field)) continue;
      const json::Value& config = value[field];
      const std::string at_field = absl::StrCat(where, "/", field);
      if (!config.IsObject()) {
        Error("SCHEMA_VALIDATION_FAILED",
              absl::StrCat("The value for the field '", field, "' must be an OBJECT"), at_field);
        continue;
      }
      if (Require(config, {"Resource"}, at_field)) StringField(config, "Resource", at_field);
      if (state->jsonata) {
        JsonataField(config, "Arguments", at_field);
      } else {
        TemplateField(config, "Parameters", at_field, /*object_only=*/true);
      }
      *out = &config;
    }
  }

  // ItemProcessor.ProcessorConfig: {"Mode": INLINE | DISTRIBUTED,
  // "ExecutionType": STANDARD | EXPRESS (DISTRIBUTED only, and required there)}.
  void ParseProcessorConfig(const json::Value& body, const std::string& at, State* state) {
    if (!body.HasMember("ProcessorConfig")) return;
    const json::Value& config = body["ProcessorConfig"];
    const std::string where = at + "/ProcessorConfig";
    if (!config.IsObject()) {
      Error("SCHEMA_VALIDATION_FAILED",
            "The value for the field 'ProcessorConfig' must be an OBJECT", where);
      return;
    }
    for (const auto& member : config.GetObject()) {
      absl::string_view key(member.name.GetString(), member.name.GetStringLength());
      if (key != "Mode" && key != "ExecutionType") {
        Error("SCHEMA_VALIDATION_FAILED", absl::StrCat("Field '", key, "' is not supported"),
              absl::StrCat(where, "/", key));
      }
    }
    if (const std::string* mode = StringField(config, "Mode", where)) {
      if (*mode == "DISTRIBUTED") {
        state->distributed = true;
      } else if (*mode != "INLINE") {
        Error("SCHEMA_VALIDATION_FAILED",
              "The value for the field 'Mode' must be one of [INLINE, DISTRIBUTED]",
              where + "/Mode");
      }
    }
    if (!state->distributed) {
      if (config.HasMember("ExecutionType")) {
        Error("SCHEMA_VALIDATION_FAILED",
              "Field 'ExecutionType' is only supported in DISTRIBUTED mode",
              where + "/ExecutionType");
      }
      return;
    }
    if (!Require(config, {"ExecutionType"}, where)) return;
    if (const std::string* type = StringField(config, "ExecutionType", where)) {
      if (*type == "EXPRESS") {
        state->express_children = true;
      } else if (*type != "STANDARD") {
        Error("SCHEMA_VALIDATION_FAILED",
              "The value for the field 'ExecutionType' must be one of [STANDARD, EXPRESS]",
              where + "/ExecutionType");
      }
    }
  }

  // AWS's rules for a map run label, in its words; nullopt when valid.
  static std::optional<std::string> LabelProblem(const std::string& label) {
    if (label.empty()) return "Label cannot be empty";
    static constexpr absl::string_view kForbidden = " ?*<>{}[]:;,\\|^~$#%&`\"/";
    size_t characters = 0;
    for (size_t i = 0; i < label.size();) {
      const size_t begin = i;
      const uint32_t cp = json::NextCodePoint(label, &i);
      ++characters;
      const bool control = cp < 0x20 || (cp >= 0x7F && cp < 0xA0);
      if (control || (cp < 0x80 && kForbidden.find(static_cast<char>(cp)) != kForbidden.npos)) {
        return absl::StrCat("Label contains invalid character: '",
                            absl::string_view(label).substr(begin, i - begin), "'");
      }
    }
    if (characters > 40) return "Label cannot exceed 40 characters";
    return std::nullopt;
  }

  // ItemBatcher: at least one limit, each positive, given literally or
  // through a path; BatchInput is a payload template.
  void ParseItemBatcher(const json::Value& value, const std::string& where, State* state) {
    if (!value.HasMember("ItemBatcher")) return;
    const json::Value& batcher = value["ItemBatcher"];
    const std::string at = where + "/ItemBatcher";
    if (!batcher.IsObject()) {
      Error("SCHEMA_VALIDATION_FAILED", "The value for the field 'ItemBatcher' must be an OBJECT",
            at);
      return;
    }
    static const FieldSet kFields = {"MaxItemsPerBatch", "MaxItemsPerBatchPath",
                                     "MaxInputBytesPerBatch", "MaxInputBytesPerBatchPath",
                                     "BatchInput"};
    for (const auto& member : batcher.GetObject()) {
      absl::string_view key(member.name.GetString(), member.name.GetStringLength());
      if (!kFields.count(key)) {
        Error("SCHEMA_VALIDATION_FAILED", absl::StrCat("Field '", key, "' is not supported"),
              absl::StrCat(at, "/", key));
      }
    }
    state->item_batcher = true;
    if (!state->expressions.count("MaxItemsPerBatch")) {
      ParseIntOrPath(batcher, "MaxItemsPerBatch", at, /*allow_zero=*/false,
                     &state->max_items_per_batch);
    }
    if (!state->expressions.count("MaxInputBytesPerBatch")) {
      ParseIntOrPath(batcher, "MaxInputBytesPerBatch", at, /*allow_zero=*/false,
                     &state->max_input_bytes_per_batch);
    }
    if (state->max_input_bytes_per_batch.value &&
        *state->max_input_bytes_per_batch.value > kMaxBatchBytes) {
      Error("SCHEMA_VALIDATION_FAILED",
            absl::StrCat("The value for the field 'MaxInputBytesPerBatch' must be at most ",
                         kMaxBatchBytes),
            at + "/MaxInputBytesPerBatch");
    }
    if (!batcher.HasMember("MaxItemsPerBatch") && !batcher.HasMember("MaxItemsPerBatchPath") &&
        !batcher.HasMember("MaxInputBytesPerBatch") &&
        !batcher.HasMember("MaxInputBytesPerBatchPath")) {
      Error("SCHEMA_VALIDATION_FAILED",
            "ItemBatcher must have at least one of: [MaxItemsPerBatch, MaxItemsPerBatchPath, "
            "MaxInputBytesPerBatch, MaxInputBytesPerBatchPath]",
            at);
    }
    state->batch_input = state->jsonata
                             ? JsonataField(batcher, "BatchInput", at)
                             : TemplateField(batcher, "BatchInput", at, /*object_only=*/true);
  }

  // A batch is at most 256 KiB, as every state input.
  static constexpr int64_t kMaxBatchBytes = 256 * 1024;

  void CheckTransitions(const StateMachine& machine,
                        const std::set<std::string, std::less<>>& names,
                        const std::string& where) {
    size_t before = diagnostics_.size();
    auto check = [&](const std::string& target, const std::string& location) {
      if (!target.empty() && names.count(target) == 0) {
        Error("MISSING_TRANSITION_TARGET", absl::StrCat("Missing 'Next' target: ", target),
              location);
      }
    };
    if (!machine.start_at.empty()) check(machine.start_at, where + "/StartAt");
    for (const auto& [name, state] : machine.states) {
      std::string at = absl::StrCat(where, "/States/", name);
      check(state.next, at + "/Next");
      check(state.default_next, at + "/Default");
      for (size_t i = 0; i < state.choices.size(); ++i) {
        check(state.choices[i]->next(), absl::StrCat(at, "/Choices/", i, "/Next"));
      }
      for (size_t i = 0; i < state.catchers.size(); ++i) {
        check(state.catchers[i].next, absl::StrCat(at, "/Catch/", i, "/Next"));
      }
      for (size_t i = 0; i < state.conditions.size(); ++i) {
        check(state.conditions[i].next, absl::StrCat(at, "/Choices/", i, "/Next"));
      }
    }
    if (diagnostics_.size() != before || machine.start_at.empty() ||
        machine.states.size() != names.size()) {
      return;
    }
    // Every state must be reachable from StartAt.
    std::set<std::string, std::less<>> seen;
    std::deque<std::string> queue = {machine.start_at};
    while (!queue.empty()) {
      std::string name = std::move(queue.front());
      queue.pop_front();
      if (!seen.insert(name).second) continue;
      const State* state = machine.Find(name);
      if (state == nullptr) continue;
      if (!state->next.empty()) queue.push_back(state->next);
      if (!state->default_next.empty()) queue.push_back(state->default_next);
      for (const auto& rule : state->choices) queue.push_back(rule->next());
      for (const auto& rule : state->conditions) queue.push_back(rule.next);
      for (const auto& catcher : state->catchers) queue.push_back(catcher.next);
    }
    for (const auto& [name, state] : machine.states) {
      if (!seen.count(name)) {
        Error("UNREACHABLE_STATE", absl::StrCat("State '", name, "' is not reachable"),
              absl::StrCat(where, "/States/", name));
      }
    }
    // Some path must end the machine.
    bool terminal = false;
    for (const auto& [name, state] : machine.states) {
      terminal |= state.end || state.type == StateType::kSucceed ||
                  state.type == StateType::kFail;
    }
    if (!terminal) {
      Error("SCHEMA_VALIDATION_FAILED", "No terminal state: no state has 'End': true or is a "
            "Succeed or Fail state", where.empty() ? "/" : where);
    }
  }

  Definition* def_;
  bool any_resource_ = false;  // Definition::Parse(text, any_resource)
  bool machine_jsonata_ = false;  // top-level "QueryLanguage": "JSONata"
  std::vector<Diagnostic> diagnostics_;
  std::deque<std::string> scratch_;
  std::set<std::string, std::less<>> all_names_;
};

absl::StatusOr<std::shared_ptr<const Definition>> Definition::Parse(absl::string_view text) {
  return Parse(text, /*any_resource=*/false);
}

absl::StatusOr<std::shared_ptr<const Definition>> Definition::Parse(absl::string_view text,
                                                                    bool any_resource) {
  auto [def, diagnostics] = DefinitionParser::ParseText(text, any_resource);
  if (!diagnostics.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("InvalidDefinition: ", InvalidDefinitionMessage(diagnostics)));
  }
  return std::shared_ptr<const Definition>(std::move(def));
}

std::vector<Diagnostic> ValidateDefinition(absl::string_view text) {
  return DefinitionParser::ParseText(text).second;
}

namespace {

void CollectExpressDiagnostics(const StateMachine& machine, const std::string& where,
                               std::vector<Diagnostic>* out) {
  for (const auto& [name, state] : machine.states) {
    const std::string at = absl::StrCat(where, "/States/", name);
    if (state.type == StateType::kTask) {
      // Activity Tasks stay allowed: unlike AWS, Stepflow serves EXPRESS
      // executions' activity tasks (from memory).
      const std::string resource = at + "/Resource";
      if (state.integration.pattern == IntegrationPattern::kSync ||
                 state.integration.pattern == IntegrationPattern::kSync2) {
        out->push_back({"ERROR", "SCHEMA_VALIDATION_FAILED",
                        "Express state machine does not support '.sync' service integration",
                        resource});
      } else if (state.integration.present() &&
                 state.integration.pattern == IntegrationPattern::kWaitForTaskToken) {
        // AWS's message has two spaces before "at".
        out->push_back({"ERROR", "SCHEMA_VALIDATION_FAILED",
                        "Express state machine does not support '.waitForTaskToken' service "
                        "integration ",
                        resource});
      }
    }
    for (size_t i = 0; i < state.branches.size(); ++i) {
      CollectExpressDiagnostics(*state.branches[i], absl::StrCat(at, "/Branches/", i), out);
    }
    if (state.processor != nullptr) {
      CollectExpressDiagnostics(*state.processor, at + "/ItemProcessor", out);
    }
  }
}

}  // namespace

std::vector<Diagnostic> ExpressDiagnostics(const Definition& definition) {
  std::vector<Diagnostic> diagnostics;
  CollectExpressDiagnostics(definition.root(), "", &diagnostics);
  return diagnostics;
}

std::string InvalidDefinitionMessage(const std::vector<Diagnostic>& diagnostics) {
  std::vector<std::string> parts;
  for (const Diagnostic& d : diagnostics) {
    parts.push_back(absl::StrCat(d.code, ": ", d.message, " at ", d.location));
  }
  return absl::StrCat("Invalid State Machine Definition: '", absl::StrJoin(parts, ", "), "'");
}

}  // namespace stepflow::asl
