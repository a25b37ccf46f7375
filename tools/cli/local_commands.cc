#include "tools/cli/local_commands.h"

#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "common/json/json.h"
#include "common/patterns/pattern.h"
#include "common/status/status_macros.h"
#include "tools/cli/render.h"
#include "tools/local/local_runner.h"
#include "tools/local/shell_task_handler.h"

namespace stepflow::cli {
namespace {

json::Value StringValue(absl::string_view text, json::Allocator& allocator) {
  return json::Value(text.data(), static_cast<rapidjson::SizeType>(text.size()),
                     allocator);
}

absl::Status RejectTextOutput(const Invocation& inv,
                              absl::string_view command) {
  if (inv.output == OutputFormat::kText) {
    return UsageError(absl::StrCat("`stepflow ", command,
                                   "` prints JSON only; drop --output text"));
  }
  return absl::OkStatus();
}

// ReadSource, with a file that cannot be read counted as bad usage.
absl::StatusOr<std::string> ReadArgument(const Invocation& inv,
                                         absl::string_view source,
                                         absl::string_view what) {
  absl::StatusOr<std::string> text = ReadSource(inv, source, what);
  if (!text.ok()) return UsageError(text.status().message());
  return text;
}

bool HasErrors(const std::vector<asl::Diagnostic>& diagnostics) {
  for (const asl::Diagnostic& d : diagnostics) {
    if (d.severity == "ERROR") return true;
  }
  return false;
}

}  // namespace

std::string FormatDiagnostic(const asl::Diagnostic& diagnostic) {
  return absl::StrCat(diagnostic.code, " at ",
                      diagnostic.location.empty() ? "/" : diagnostic.location,
                      ": ", diagnostic.message);
}

absl::Status LocalRun(const Invocation& inv) {
  const ParsedArgs& args = inv.args;
  RETURN_IF_ERROR(RejectTextOutput(inv, "local run"));
  if (!args.Has("definition")) return UsageError("--definition is required");
  if (args.Has("input") && args.Has("input-file")) {
    return UsageError("give at most one of --input and --input-file");
  }
  if (args.Get("definition") == "-" && args.Get("input-file") == "-") {
    return UsageError("--definition and --input-file cannot both read stdin");
  }

  local::LocalRunOptions options;
  ASSIGN_OR_RETURN(options.definition,
                   ReadArgument(inv, args.Get("definition"), "definition"));
  if (args.Has("input-file")) {
    ASSIGN_OR_RETURN(options.input,
                     ReadArgument(inv, args.Get("input-file"), "input"));
  } else {
    options.input = args.Get("input", "{}");
  }
  options.type = args.Get("type", "STANDARD");
  options.name = args.Get("name", "local");
  options.real_time = args.IsSet("real-time");
  options.task_handler =
      args.Has("task-handler")
          ? local::ShellTaskHandler(args.Get("task-handler"))
          : local::FailingTaskHandler("no --task-handler was given");

  // The diagnostics, one per line, say more than the one-line
  // InvalidDefinition message RunLocally would return.
  std::vector<asl::Diagnostic> diagnostics =
      asl::ValidateDefinition(options.definition);
  if (HasErrors(diagnostics)) {
    for (const asl::Diagnostic& d : diagnostics) {
      inv.err << FormatDiagnostic(d) << "\n";
    }
    return SilentExit(2);
  }

  absl::StatusOr<local::LocalRunResult> result = local::RunLocally(options);
  if (absl::IsInvalidArgument(result.status())) {
    return UsageError(result.status().message());  // input, name, type
  }
  RETURN_IF_ERROR(result.status());

  json::Document doc;
  json::Allocator& a = doc.GetAllocator();
  doc.SetObject();
  doc.AddMember("status", StringValue(result->status, a), a);
  if (result->status == "SUCCEEDED") {
    absl::StatusOr<json::Document> output = json::Parse(result->output);
    doc.AddMember(
        "output",
        output.ok() ? json::Copy(*output, a) : StringValue(result->output, a),
        a);
  }
  if (!result->error.empty()) {
    doc.AddMember("error", StringValue(result->error, a), a);
  }
  if (!result->cause.empty()) {
    doc.AddMember("cause", StringValue(result->cause, a), a);
  }
  if (args.IsSet("history")) {
    json::Value history(rapidjson::kArrayType);
    for (const v1::HistoryEvent& event : result->history) {
      ASSIGN_OR_RETURN(json::Document rendered, ToJson(event));
      history.PushBack(json::Copy(rendered, a), a);
    }
    doc.AddMember("history", history, a);
  }
  inv.out << json::SerializePretty(doc) << "\n";
  if (result->status == "SUCCEEDED") return absl::OkStatus();
  return SilentExit(1);
}

absl::Status Validate(const Invocation& inv) {
  RETURN_IF_ERROR(RejectTextOutput(inv, "validate"));
  ASSIGN_OR_RETURN(std::string definition,
                   ReadArgument(inv, inv.args.positionals[0], "definition"));
  std::vector<asl::Diagnostic> diagnostics =
      asl::ValidateDefinition(definition);

  json::Document doc;
  json::Allocator& a = doc.GetAllocator();
  doc.SetObject();
  const bool fail = HasErrors(diagnostics);
  doc.AddMember("result", StringValue(fail ? "FAIL" : "OK", a), a);
  json::Value list(rapidjson::kArrayType);
  for (const asl::Diagnostic& d : diagnostics) {
    json::Value item(rapidjson::kObjectType);
    item.AddMember("severity", StringValue(d.severity, a), a);
    item.AddMember("code", StringValue(d.code, a), a);
    item.AddMember("message", StringValue(d.message, a), a);
    item.AddMember("location", StringValue(d.location, a), a);
    list.PushBack(item, a);
  }
  doc.AddMember("diagnostics", list, a);
  doc.AddMember("truncated", false, a);
  inv.out << json::SerializePretty(doc) << "\n";
  return fail ? SilentExit(1) : absl::OkStatus();
}

absl::Status TestEventPattern(const Invocation& inv) {
  RETURN_IF_ERROR(RejectTextOutput(inv, "events test-pattern"));
  const ParsedArgs& args = inv.args;
  // Exactly one source for each document.
  auto read = [&](absl::string_view inline_flag, absl::string_view file_flag,
                  absl::string_view what) -> absl::StatusOr<std::string> {
    if (args.IsSet(inline_flag) == args.IsSet(file_flag)) {
      return UsageError(absl::StrCat("give exactly one of --", inline_flag, " and --", file_flag));
    }
    if (args.IsSet(inline_flag)) return std::string(args.Get(inline_flag));
    return ReadArgument(inv, args.Get(file_flag), what);
  };
  ASSIGN_OR_RETURN(std::string pattern, read("pattern", "pattern-file", "pattern"));
  ASSIGN_OR_RETURN(std::string event, read("event", "event-file", "event"));
  absl::StatusOr<bool> result = patterns::TestEventPattern(pattern, event);
  if (!result.ok()) {
    inv.err << result.status().message() << "\n";
    return SilentExit(2);
  }
  inv.out << (*result ? "true" : "false") << "\n";
  return absl::OkStatus();
}

}  // namespace stepflow::cli
