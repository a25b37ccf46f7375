#include "tools/cli/commands.h"

#include <algorithm>
#include <cerrno>
#include <fstream>
#include <functional>
#include <iterator>
#include <sstream>
#include <tuple>

#include "absl/random/random.h"
#include "absl/strings/cord.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "common/json/json.h"
#include "common/kafka/topic_reader.h"
#include "common/status/status_macros.h"
#include "services/eventbus/catalog.h"
#include "tools/cli/local_commands.h"
#include "tools/cli/names.h"
#include "tools/cli/render.h"

namespace stepflow::cli {
namespace {

constexpr char kUsagePayloadUrl[] = "type.stepflow.dev/cli.UsageError";
constexpr char kSilentExitPayloadUrl[] = "type.stepflow.dev/cli.SilentExit";

const std::vector<std::string> kExecutionStatuses = {
    "RUNNING",   "SUCCEEDED", "FAILED",
    "TIMED_OUT", "ABORTED",   "PENDING_REDRIVE"};

// ---------------------------------------------------------------------------
// Output

// Prints `response` in the chosen format: AWS-shaped JSON (nothing at all for
// an empty response, as the AWS CLI does), or the lines `text` writes.
absl::Status Emit(const Invocation& inv,
                  const google::protobuf::Message& response,
                  const std::function<void(std::ostream&)>& text) {
  if (inv.output == OutputFormat::kText) {
    if (text) text(inv.out);
    return absl::OkStatus();
  }
  ASSIGN_OR_RETURN(json::Document doc, ToJson(response));
  if (doc.IsObject() && doc.MemberCount() == 0) return absl::OkStatus();
  inv.out << json::SerializePretty(doc) << "\n";
  return absl::OkStatus();
}

// One line of tab-separated fields.
void Line(std::ostream& out, const std::vector<std::string>& fields) {
  out << absl::StrJoin(fields, "\t") << "\n";
}

// ---------------------------------------------------------------------------
// Paging

// Calls `method` from `request`'s next_token on, appending each page's items
// (`items(page)`) to `merged`. With `follow`, pages are fetched until one has
// no next_token and `merged` ends with none; otherwise one page is fetched
// and its next_token kept, so the user can continue with --next-token.
template <typename Request, typename Response, typename Items>
absl::Status FetchPages(const Rpc& rpc, StubMethod<Request, Response> method,
                        Request request, bool follow, Items items,
                        Response* merged) {
  while (true) {
    Response page;
    RETURN_IF_ERROR(rpc.Call(method, request, &page));
    for (auto& item : *items(page)) items(*merged)->Add(std::move(item));
    merged->set_next_token(follow ? "" : page.next_token());
    if (!follow || page.next_token().empty()) return absl::OkStatus();
    request.set_next_token(page.next_token());
  }
}

// --max-results N asks for one page of N; without it every page is fetched.
bool FollowPages(const Invocation& inv) { return !inv.args.Has("max-results"); }

// ---------------------------------------------------------------------------
// state-machines

// --logging-level, --log-group and --include-execution-data, when any is
// given, as the request's LoggingConfiguration.
template <typename Request>
void SetLogging(const ParsedArgs& args, Request* request) {
  if (!args.Has("logging-level") && !args.Has("log-group") &&
      !args.IsSet("include-execution-data")) {
    return;
  }
  v1::LoggingConfiguration* logging = request->mutable_logging_configuration();
  logging->set_level(args.Get("logging-level"));
  logging->set_include_execution_data(args.IsSet("include-execution-data"));
  if (args.Has("log-group")) {
    logging->add_destinations()->mutable_cloud_watch_logs_log_group()->set_log_group_arn(
        args.Get("log-group"));
  }
}

// Reads the execution logs topic from its beginning, printing the records
// of the execution or state machine asked for; with --follow it goes on.
absl::Status ExecutionLogs(const Invocation& inv) {
  const ParsedArgs& args = inv.args;
  if (args.Has("execution") == args.Has("state-machine")) {
    return UsageError("give exactly one of --execution ARN and --state-machine ARN|NAME");
  }
  if (!args.Has("kafka-brokers")) return UsageError("--kafka-brokers is required");
  const std::string field = args.Has("execution") ? "execution_arn" : "state_machine_arn";
  const std::string wanted = args.Has("execution")
                                 ? args.Get("execution")
                                 : StateMachineArnFor(inv.scope, args.Get("state-machine"));
  // Shard servers produce the records of an execution concurrently, so the
  // topic may hold them out of order: what exists is printed sorted (by
  // execution, then event id); with --follow, later records as they come.
  struct Logged {
    std::string execution;
    int64_t id = 0;
    std::string text;
  };
  absl::Mutex mu;
  std::vector<Logged> backlog;
  bool live = false;
  ASSIGN_OR_RETURN(
      std::unique_ptr<kafka::TopicReader> reader,
      kafka::TopicReader::Start(
          args.Get("kafka-brokers"), eventbus::kExecutionLogsTopic,
          [&](const kafka::TopicRecord& record) {
            if (!record.value.has_value()) return;
            auto log = json::Parse(*record.value);
            if (!log.ok() || !log->IsObject() || !log->HasMember(field.c_str()) ||
                !(*log)[field.c_str()].IsString() ||
                wanted != (*log)[field.c_str()].GetString()) {
              return;
            }
            Logged logged;
            logged.text = *record.value;
            if (log->HasMember("execution_arn") && (*log)["execution_arn"].IsString()) {
              logged.execution = (*log)["execution_arn"].GetString();
            }
            if (log->HasMember("id") && (*log)["id"].IsString()) {
              (void)absl::SimpleAtoi((*log)["id"].GetString(), &logged.id);
            }
            absl::MutexLock lock(&mu);
            if (live) {
              inv.out << logged.text << "\n" << std::flush;
            } else {
              backlog.push_back(std::move(logged));
            }
          }));
  absl::Status caught_up = reader->WaitCaughtUp(absl::Seconds(15));
  if (!caught_up.ok()) {
    return absl::UnavailableError(
        absl::StrCat("cannot read the execution logs from ", args.Get("kafka-brokers"), ": ",
                     caught_up.message()));
  }
  {
    absl::MutexLock lock(&mu);
    std::stable_sort(backlog.begin(), backlog.end(), [](const Logged& a, const Logged& b) {
      return std::tie(a.execution, a.id) < std::tie(b.execution, b.id);
    });
    for (const Logged& logged : backlog) inv.out << logged.text << "\n";
    inv.out << std::flush;
    backlog.clear();
    live = true;
  }
  if (args.IsSet("follow")) {
    while (true) absl::SleepFor(absl::Seconds(1));  // until interrupted
  }
  return absl::OkStatus();
}

absl::Status CreateStateMachine(const Invocation& inv) {
  const ParsedArgs& args = inv.args;
  if (!args.Has("name")) return UsageError("--name is required");
  if (args.Has("definition") == args.Has("definition-string")) {
    return UsageError(
        "give exactly one of --definition FILE|- and --definition-string JSON");
  }
  v1::CreateStateMachineRequest request;
  request.set_name(args.Get("name"));
  if (args.Has("definition")) {
    ASSIGN_OR_RETURN(std::string definition,
                     ReadSource(inv, args.Get("definition"), "definition"));
    request.set_definition(std::move(definition));
  } else {
    request.set_definition(args.Get("definition-string"));
  }
  request.set_type(args.Get("type"));
  request.set_role_arn(args.Get("role-arn"));
  SetLogging(args, &request);
  request.set_publish(args.IsSet("publish"));
  request.set_version_description(args.Get("version-description"));
  v1::CreateStateMachineResponse response;
  RETURN_IF_ERROR(
      inv.rpc.Call(&v1::StepFunctions::StubInterface::CreateStateMachine,
                   request, &response));
  return Emit(inv, response, [&](std::ostream& out) {
    std::vector<std::string> fields = {response.state_machine_arn()};
    if (!response.state_machine_version_arn().empty()) {
      fields.push_back(response.state_machine_version_arn());
    }
    Line(out, fields);
  });
}

absl::Status UpdateStateMachine(const Invocation& inv) {
  const ParsedArgs& args = inv.args;
  if (args.Has("definition") && args.Has("definition-string")) {
    return UsageError(
        "give at most one of --definition FILE|- and --definition-string JSON");
  }
  v1::UpdateStateMachineRequest request;
  request.set_state_machine_arn(StateMachineArnFor(inv.scope, args.positionals[0]));
  if (args.Has("definition")) {
    ASSIGN_OR_RETURN(std::string definition,
                     ReadSource(inv, args.Get("definition"), "definition"));
    request.set_definition(std::move(definition));
  } else {
    request.set_definition(args.Get("definition-string"));
  }
  request.set_role_arn(args.Get("role-arn"));
  SetLogging(args, &request);
  request.set_publish(args.IsSet("publish"));
  request.set_version_description(args.Get("version-description"));
  v1::UpdateStateMachineResponse response;
  RETURN_IF_ERROR(inv.rpc.Call(&v1::StepFunctions::StubInterface::UpdateStateMachine,
                               request, &response));
  return Emit(inv, response, [&](std::ostream& out) {
    std::vector<std::string> fields = {response.revision_id(),
                                       FormatTimestamp(response.update_date())};
    if (!response.state_machine_version_arn().empty()) {
      fields.push_back(response.state_machine_version_arn());
    }
    Line(out, fields);
  });
}

absl::Status PublishStateMachineVersion(const Invocation& inv) {
  v1::PublishStateMachineVersionRequest request;
  request.set_state_machine_arn(StateMachineArnFor(inv.scope, inv.args.positionals[0]));
  request.set_revision_id(inv.args.Get("revision-id"));
  request.set_description(inv.args.Get("description"));
  v1::PublishStateMachineVersionResponse response;
  RETURN_IF_ERROR(inv.rpc.Call(
      &v1::StepFunctions::StubInterface::PublishStateMachineVersion, request, &response));
  return Emit(inv, response, [&](std::ostream& out) {
    Line(out, {response.state_machine_version_arn(), FormatTimestamp(response.creation_date())});
  });
}

absl::Status ListStateMachineVersions(const Invocation& inv) {
  v1::ListStateMachineVersionsRequest request;
  request.set_state_machine_arn(StateMachineArnFor(inv.scope, inv.args.positionals[0]));
  request.set_max_results(static_cast<int32_t>(inv.args.GetInt("max-results")));
  request.set_next_token(inv.args.Get("next-token"));
  v1::ListStateMachineVersionsResponse response;
  RETURN_IF_ERROR(FetchPages(
      inv.rpc, &v1::StepFunctions::StubInterface::ListStateMachineVersions, request,
      FollowPages(inv),
      [](v1::ListStateMachineVersionsResponse& page) {
        return page.mutable_state_machine_versions();
      },
      &response));
  return Emit(inv, response, [&](std::ostream& out) {
    for (const auto& item : response.state_machine_versions()) {
      Line(out, {item.state_machine_version_arn(), FormatTimestamp(item.creation_date())});
    }
  });
}

absl::Status DeleteStateMachineVersion(const Invocation& inv) {
  v1::DeleteStateMachineVersionRequest request;
  request.set_state_machine_version_arn(inv.args.positionals[0]);
  v1::DeleteStateMachineVersionResponse response;
  RETURN_IF_ERROR(inv.rpc.Call(
      &v1::StepFunctions::StubInterface::DeleteStateMachineVersion, request, &response));
  return Emit(inv, response, nullptr);
}

// "--routing VERSION_ARN=WEIGHT[,VERSION_ARN=WEIGHT]".
absl::Status ParseRouting(
    absl::string_view text,
    google::protobuf::RepeatedPtrField<v1::RoutingConfigurationListItem>* routing) {
  for (absl::string_view part : absl::StrSplit(text, ',', absl::SkipEmpty())) {
    const size_t equals = part.rfind('=');
    int weight = 0;
    if (equals == absl::string_view::npos ||
        !absl::SimpleAtoi(part.substr(equals + 1), &weight)) {
      return UsageError(absl::StrCat("--routing wants VERSION_ARN=WEIGHT pairs, got '", part,
                                     "'"));
    }
    auto* item = routing->Add();
    item->set_state_machine_version_arn(std::string(part.substr(0, equals)));
    item->set_weight(weight);
  }
  return absl::OkStatus();
}

void AliasLine(std::ostream& out, const v1::DescribeStateMachineAliasResponse& alias) {
  std::vector<std::string> routes;
  for (const auto& item : alias.routing_configuration()) {
    routes.push_back(absl::StrCat(item.state_machine_version_arn(), "=", item.weight()));
  }
  Line(out, {alias.state_machine_alias_arn(), absl::StrJoin(routes, ","),
             alias.description()});
}

absl::Status CreateStateMachineAlias(const Invocation& inv) {
  if (!inv.args.Has("name")) return UsageError("--name is required");
  if (!inv.args.Has("routing")) return UsageError("--routing is required");
  v1::CreateStateMachineAliasRequest request;
  request.set_name(inv.args.Get("name"));
  request.set_description(inv.args.Get("description"));
  RETURN_IF_ERROR(ParseRouting(inv.args.Get("routing"), request.mutable_routing_configuration()));
  v1::CreateStateMachineAliasResponse response;
  RETURN_IF_ERROR(inv.rpc.Call(&v1::StepFunctions::StubInterface::CreateStateMachineAlias,
                               request, &response));
  return Emit(inv, response, [&](std::ostream& out) {
    Line(out, {response.state_machine_alias_arn(), FormatTimestamp(response.creation_date())});
  });
}

absl::Status DescribeStateMachineAlias(const Invocation& inv) {
  v1::DescribeStateMachineAliasRequest request;
  request.set_state_machine_alias_arn(inv.args.positionals[0]);
  v1::DescribeStateMachineAliasResponse response;
  RETURN_IF_ERROR(inv.rpc.Call(&v1::StepFunctions::StubInterface::DescribeStateMachineAlias,
                               request, &response));
  return Emit(inv, response, [&](std::ostream& out) { AliasLine(out, response); });
}

absl::Status UpdateStateMachineAlias(const Invocation& inv) {
  v1::UpdateStateMachineAliasRequest request;
  request.set_state_machine_alias_arn(inv.args.positionals[0]);
  request.set_description(inv.args.Get("description"));
  RETURN_IF_ERROR(ParseRouting(inv.args.Get("routing"), request.mutable_routing_configuration()));
  v1::UpdateStateMachineAliasResponse response;
  RETURN_IF_ERROR(inv.rpc.Call(&v1::StepFunctions::StubInterface::UpdateStateMachineAlias,
                               request, &response));
  return Emit(inv, response, [&](std::ostream& out) {
    Line(out, {FormatTimestamp(response.update_date())});
  });
}

absl::Status DeleteStateMachineAlias(const Invocation& inv) {
  v1::DeleteStateMachineAliasRequest request;
  request.set_state_machine_alias_arn(inv.args.positionals[0]);
  v1::DeleteStateMachineAliasResponse response;
  RETURN_IF_ERROR(inv.rpc.Call(&v1::StepFunctions::StubInterface::DeleteStateMachineAlias,
                               request, &response));
  return Emit(inv, response, nullptr);
}

absl::Status ListStateMachineAliases(const Invocation& inv) {
  v1::ListStateMachineAliasesRequest request;
  request.set_state_machine_arn(StateMachineArnFor(inv.scope, inv.args.positionals[0]));
  request.set_max_results(static_cast<int32_t>(inv.args.GetInt("max-results")));
  request.set_next_token(inv.args.Get("next-token"));
  v1::ListStateMachineAliasesResponse response;
  RETURN_IF_ERROR(FetchPages(
      inv.rpc, &v1::StepFunctions::StubInterface::ListStateMachineAliases, request,
      FollowPages(inv),
      [](v1::ListStateMachineAliasesResponse& page) {
        return page.mutable_state_machine_aliases();
      },
      &response));
  return Emit(inv, response, [&](std::ostream& out) {
    for (const auto& item : response.state_machine_aliases()) {
      Line(out, {item.state_machine_alias_arn(), FormatTimestamp(item.creation_date())});
    }
  });
}

absl::Status DescribeStateMachine(const Invocation& inv) {
  v1::DescribeStateMachineRequest request;
  request.set_state_machine_arn(
      StateMachineArnFor(inv.scope, inv.args.positionals[0]));
  v1::DescribeStateMachineResponse response;
  RETURN_IF_ERROR(
      inv.rpc.Call(&v1::StepFunctions::StubInterface::DescribeStateMachine,
                   request, &response));
  return Emit(inv, response, [&](std::ostream& out) {
    Line(out, {response.state_machine_arn(), response.status(), response.type(),
               FormatTimestamp(response.creation_date())});
  });
}

absl::Status ListStateMachines(const Invocation& inv) {
  v1::ListStateMachinesRequest request;
  request.set_max_results(static_cast<int32_t>(inv.args.GetInt("max-results")));
  request.set_next_token(inv.args.Get("next-token"));
  v1::ListStateMachinesResponse response;
  RETURN_IF_ERROR(FetchPages(
      inv.rpc, &v1::StepFunctions::StubInterface::ListStateMachines, request,
      FollowPages(inv),
      [](v1::ListStateMachinesResponse& page) {
        return page.mutable_state_machines();
      },
      &response));
  return Emit(inv, response, [&](std::ostream& out) {
    for (const auto& item : response.state_machines()) {
      Line(out, {item.state_machine_arn(), item.type(),
                 FormatTimestamp(item.creation_date())});
    }
  });
}

absl::Status DeleteStateMachine(const Invocation& inv) {
  v1::DeleteStateMachineRequest request;
  request.set_state_machine_arn(
      StateMachineArnFor(inv.scope, inv.args.positionals[0]));
  v1::DeleteStateMachineResponse response;
  RETURN_IF_ERROR(
      inv.rpc.Call(&v1::StepFunctions::StubInterface::DeleteStateMachine,
                   request, &response));
  return Emit(inv, response, nullptr);
}

// ---------------------------------------------------------------------------
// executions

absl::Status StartExecution(const Invocation& inv) {
  const ParsedArgs& args = inv.args;
  if (args.Has("input") && args.Has("input-file")) {
    return UsageError("give at most one of --input and --input-file");
  }
  v1::StartExecutionRequest request;
  request.set_state_machine_arn(
      StateMachineArnFor(inv.scope, args.positionals[0]));
  request.set_name(args.Get("name"));
  if (args.Has("input-file")) {
    ASSIGN_OR_RETURN(std::string input,
                     ReadSource(inv, args.Get("input-file"), "input"));
    request.set_input(std::move(input));
  } else {
    request.set_input(args.Get("input"));
  }
  v1::StartExecutionResponse response;
  RETURN_IF_ERROR(inv.rpc.Call(
      &v1::StepFunctions::StubInterface::StartExecution, request, &response));
  return Emit(inv, response, [&](std::ostream& out) {
    Line(out, {response.execution_arn()});
  });
}

absl::Status DescribeExecution(const Invocation& inv) {
  v1::DescribeExecutionRequest request;
  request.set_execution_arn(inv.args.positionals[0]);
  v1::DescribeExecutionResponse response;
  RETURN_IF_ERROR(
      inv.rpc.Call(&v1::StepFunctions::StubInterface::DescribeExecution,
                   request, &response));
  return Emit(inv, response, [&](std::ostream& out) {
    std::vector<std::string> fields = {response.execution_arn(),
                                       response.status(),
                                       FormatTimestamp(response.start_date()),
                                       FormatTimestamp(response.stop_date())};
    if (response.status() == "SUCCEEDED") {
      fields.push_back(response.output());
    } else if (!response.error().empty() || !response.cause().empty()) {
      fields.push_back(response.error());
      fields.push_back(response.cause());
    }
    Line(out, fields);
  });
}

// The "...EventDetails" member of a rendered HistoryEvent, as compact JSON;
// empty if the event has none.
std::string EventDetailsText(const json::Document& event) {
  for (const auto& member : event.GetObject()) {
    if (absl::EndsWith(member.name.GetString(), "EventDetails")) {
      return json::Serialize(member.value);
    }
  }
  return "";
}

absl::Status GetExecutionHistory(const Invocation& inv) {
  const ParsedArgs& args = inv.args;
  v1::GetExecutionHistoryRequest request;
  request.set_execution_arn(args.positionals[0]);
  request.set_max_results(static_cast<int32_t>(args.GetInt("max-results")));
  request.set_reverse_order(args.IsSet("reverse"));
  request.set_next_token(args.Get("next-token"));
  if (args.IsSet("no-include-execution-data")) {
    request.set_include_execution_data(false);
  }
  v1::GetExecutionHistoryResponse response;
  RETURN_IF_ERROR(FetchPages(
      inv.rpc, &v1::StepFunctions::StubInterface::GetExecutionHistory, request,
      FollowPages(inv),
      [](v1::GetExecutionHistoryResponse& page) {
        return page.mutable_events();
      },
      &response));
  if (inv.output == OutputFormat::kJson) return Emit(inv, response, nullptr);
  for (const v1::HistoryEvent& event : response.events()) {
    ASSIGN_OR_RETURN(json::Document rendered, ToJson(event));
    std::vector<std::string> fields = {absl::StrCat(event.id()),
                                       FormatTimestamp(event.timestamp()),
                                       event.type()};
    std::string details = EventDetailsText(rendered);
    if (!details.empty()) fields.push_back(std::move(details));
    Line(inv.out, fields);
  }
  return absl::OkStatus();
}

bool NewestFirst(const v1::ExecutionListItem& a,
                 const v1::ExecutionListItem& b) {
  if (a.start_date().seconds() != b.start_date().seconds()) {
    return a.start_date().seconds() > b.start_date().seconds();
  }
  return a.start_date().nanos() > b.start_date().nanos();
}

absl::Status ListExecutions(const Invocation& inv) {
  const ParsedArgs& args = inv.args;
  v1::ListExecutionsRequest request;
  request.set_status_filter(args.Get("status"));
  request.set_redrive_filter(args.Get("redrive-filter"));
  request.set_max_results(static_cast<int32_t>(args.GetInt("max-results")));
  request.set_next_token(args.Get("next-token"));
  auto items = [](v1::ListExecutionsResponse& page) {
    return page.mutable_executions();
  };
  v1::ListExecutionsResponse response;

  if (args.Has("map-run")) {
    if (args.Has("state-machine")) {
      return UsageError("give at most one of --state-machine and --map-run");
    }
    request.set_map_run_arn(args.Get("map-run"));
    RETURN_IF_ERROR(
        FetchPages(inv.rpc, &v1::StepFunctions::StubInterface::ListExecutions,
                   request, FollowPages(inv), items, &response));
  } else if (args.Has("state-machine")) {
    request.set_state_machine_arn(
        StateMachineArnFor(inv.scope, args.Get("state-machine")));
    RETURN_IF_ERROR(
        FetchPages(inv.rpc, &v1::StepFunctions::StubInterface::ListExecutions,
                   request, FollowPages(inv), items, &response));
  } else {
    // The API lists one state machine's executions; without --state-machine
    // we ask every state machine and merge, newest first.
    if (args.Has("next-token")) {
      return UsageError("--next-token needs --state-machine");
    }
    v1::ListStateMachinesResponse machines;
    RETURN_IF_ERROR(FetchPages(
        inv.rpc, &v1::StepFunctions::StubInterface::ListStateMachines,
        v1::ListStateMachinesRequest(), /*follow=*/true,
        [](v1::ListStateMachinesResponse& page) {
          return page.mutable_state_machines();
        },
        &machines));
    request.set_max_results(0);
    for (const auto& machine : machines.state_machines()) {
      request.set_state_machine_arn(machine.state_machine_arn());
      absl::Status status = FetchPages(
          inv.rpc, &v1::StepFunctions::StubInterface::ListExecutions, request,
          /*follow=*/true, items, &response);
      // Deleted since we listed it: it has nothing to show any more.
      if (absl::IsNotFound(status)) continue;
      RETURN_IF_ERROR(status);
    }
    auto* executions = response.mutable_executions();
    std::stable_sort(executions->begin(), executions->end(), NewestFirst);
    if (args.Has("max-results")) {
      int64_t limit = args.GetInt("max-results");
      while (executions->size() > limit) executions->RemoveLast();
    }
    response.clear_next_token();
  }
  return Emit(inv, response, [&](std::ostream& out) {
    for (const auto& item : response.executions()) {
      Line(out, {item.execution_arn(), item.status(),
                 FormatTimestamp(item.start_date())});
    }
  });
}

// ---------------------------------------------------------------------------
// map-runs

absl::Status DescribeMapRun(const Invocation& inv) {
  v1::DescribeMapRunRequest request;
  request.set_map_run_arn(inv.args.positionals[0]);
  v1::DescribeMapRunResponse response;
  RETURN_IF_ERROR(inv.rpc.Call(&v1::StepFunctions::StubInterface::DescribeMapRun,
                               request, &response));
  return Emit(inv, response, [&](std::ostream& out) {
    const v1::MapRunCounts& children = response.execution_counts();
    Line(out, {response.map_run_arn(), response.status(),
               FormatTimestamp(response.start_date()),
               FormatTimestamp(response.stop_date()),
               absl::StrCat("maxConcurrency=", response.max_concurrency()),
               absl::StrCat("pending=", children.pending()),
               absl::StrCat("running=", children.running()),
               absl::StrCat("succeeded=", children.succeeded()),
               absl::StrCat("failed=", children.failed()),
               absl::StrCat("timedOut=", children.timed_out()),
               absl::StrCat("aborted=", children.aborted()),
               absl::StrCat("total=", children.total())});
  });
}

absl::Status ListMapRuns(const Invocation& inv) {
  const ParsedArgs& args = inv.args;
  v1::ListMapRunsRequest request;
  request.set_execution_arn(args.positionals[0]);
  request.set_max_results(static_cast<int32_t>(args.GetInt("max-results")));
  request.set_next_token(args.Get("next-token"));
  v1::ListMapRunsResponse response;
  RETURN_IF_ERROR(FetchPages(
      inv.rpc, &v1::StepFunctions::StubInterface::ListMapRuns, request,
      FollowPages(inv),
      [](v1::ListMapRunsResponse& page) { return page.mutable_map_runs(); },
      &response));
  return Emit(inv, response, [&](std::ostream& out) {
    for (const auto& item : response.map_runs()) {
      Line(out, {item.map_run_arn(), FormatTimestamp(item.start_date()),
                 FormatTimestamp(item.stop_date())});
    }
  });
}

absl::Status UpdateMapRun(const Invocation& inv) {
  const ParsedArgs& args = inv.args;
  v1::UpdateMapRunRequest request;
  request.set_map_run_arn(args.positionals[0]);
  if (!args.Has("max-concurrency") && !args.Has("tolerated-failure-count") &&
      !args.Has("tolerated-failure-percentage")) {
    return UsageError(
        "give at least one of --max-concurrency, --tolerated-failure-count and "
        "--tolerated-failure-percentage");
  }
  if (args.Has("max-concurrency")) {
    int32_t value = 0;
    if (!absl::SimpleAtoi(args.Get("max-concurrency"), &value)) {
      return UsageError("--max-concurrency needs an integer (0: no limit)");
    }
    request.set_max_concurrency(value);
  }
  if (args.Has("tolerated-failure-count")) {
    int64_t value = 0;
    if (!absl::SimpleAtoi(args.Get("tolerated-failure-count"), &value)) {
      return UsageError("--tolerated-failure-count needs an integer");
    }
    request.set_tolerated_failure_count(value);
  }
  if (args.Has("tolerated-failure-percentage")) {
    float value = 0;
    if (!absl::SimpleAtof(args.Get("tolerated-failure-percentage"), &value)) {
      return UsageError("--tolerated-failure-percentage needs a number");
    }
    request.set_tolerated_failure_percentage(value);
  }
  v1::UpdateMapRunResponse response;
  RETURN_IF_ERROR(inv.rpc.Call(&v1::StepFunctions::StubInterface::UpdateMapRun,
                               request, &response));
  return Emit(inv, response, nullptr);
}

absl::Status RedriveExecution(const Invocation& inv) {
  v1::RedriveExecutionRequest request;
  request.set_execution_arn(inv.args.positionals[0]);
  request.set_client_token(inv.args.Get("client-token"));
  v1::RedriveExecutionResponse response;
  RETURN_IF_ERROR(inv.rpc.Call(&v1::StepFunctions::StubInterface::RedriveExecution,
                               request, &response));
  return Emit(inv, response, [&](std::ostream& out) {
    Line(out, {FormatTimestamp(response.redrive_date())});
  });
}

absl::Status DescribeStateMachineForExecution(const Invocation& inv) {
  v1::DescribeStateMachineForExecutionRequest request;
  request.set_execution_arn(inv.args.positionals[0]);
  v1::DescribeStateMachineForExecutionResponse response;
  RETURN_IF_ERROR(inv.rpc.Call(
      &v1::StepFunctions::StubInterface::DescribeStateMachineForExecution, request, &response));
  return Emit(inv, response, [&](std::ostream& out) {
    Line(out, {response.state_machine_arn(), response.revision_id(),
               FormatTimestamp(response.update_date())});
  });
}

absl::Status StopExecution(const Invocation& inv) {
  v1::StopExecutionRequest request;
  request.set_execution_arn(inv.args.positionals[0]);
  request.set_error(inv.args.Get("error"));
  request.set_cause(inv.args.Get("cause"));
  v1::StopExecutionResponse response;
  RETURN_IF_ERROR(inv.rpc.Call(&v1::StepFunctions::StubInterface::StopExecution,
                               request, &response));
  return Emit(inv, response, [&](std::ostream& out) {
    Line(out, {FormatTimestamp(response.stop_date())});
  });
}

// ---------------------------------------------------------------------------
// test-state

absl::Status TestState(const Invocation& inv) {
  if (!inv.args.Has("definition")) return UsageError("--definition is required");
  v1::TestStateRequest request;
  ASSIGN_OR_RETURN(std::string definition,
                   ReadSource(inv, inv.args.Get("definition"), "definition"));
  request.set_definition(definition);
  if (inv.args.Has("input")) request.set_input(inv.args.Get("input"));
  request.set_state_name(inv.args.Get("state-name"));
  request.set_inspection_level(inv.args.Get("inspection-level"));
  request.set_variables(inv.args.Get("variables"));
  request.set_role_arn(inv.args.Get("role-arn"));
  request.set_reveal_secrets(inv.args.IsSet("reveal-secrets"));
  request.set_context(inv.args.Get("context"));
  if (inv.args.Has("mock-result")) request.mutable_mock()->set_result(inv.args.Get("mock-result"));
  if (inv.args.Has("mock-error")) {
    request.mutable_mock()->mutable_error_output()->set_error(inv.args.Get("mock-error"));
    request.mutable_mock()->mutable_error_output()->set_cause(inv.args.Get("mock-cause"));
  }
  if (inv.args.Has("retry-count")) {
    int count = 0;
    if (!absl::SimpleAtoi(inv.args.Get("retry-count"), &count) || count < 0) {
      return UsageError("--retry-count wants a non-negative integer");
    }
    request.mutable_state_configuration()->set_retrier_retry_count(count);
  }
  if (inv.args.Has("map-iteration-failure-count")) {
    int count = 0;
    if (!absl::SimpleAtoi(inv.args.Get("map-iteration-failure-count"), &count) || count < 0) {
      return UsageError("--map-iteration-failure-count wants a non-negative integer");
    }
    request.mutable_state_configuration()->set_map_iteration_failure_count(count);
  }
  request.mutable_state_configuration()->set_map_item_reader_data(
      inv.args.Get("map-item-reader-data"));
  request.mutable_state_configuration()->set_error_caused_by_state(
      inv.args.Get("error-caused-by-state"));
  v1::TestStateResponse response;
  RETURN_IF_ERROR(
      inv.rpc.Call(&v1::StepFunctions::StubInterface::TestState, request, &response));
  return Emit(inv, response, [&](std::ostream& out) {
    Line(out, {response.status(), response.next_state(), response.output(), response.error()});
  });
}

// ---------------------------------------------------------------------------
// activities

absl::Status CreateActivity(const Invocation& inv) {
  v1::CreateActivityRequest request;
  request.set_name(inv.args.positionals[0]);
  v1::CreateActivityResponse response;
  RETURN_IF_ERROR(inv.rpc.Call(
      &v1::StepFunctions::StubInterface::CreateActivity, request, &response));
  return Emit(inv, response,
              [&](std::ostream& out) { Line(out, {response.activity_arn()}); });
}

absl::Status DescribeActivity(const Invocation& inv) {
  v1::DescribeActivityRequest request;
  request.set_activity_arn(ActivityArnFor(inv.scope, inv.args.positionals[0]));
  v1::DescribeActivityResponse response;
  RETURN_IF_ERROR(inv.rpc.Call(
      &v1::StepFunctions::StubInterface::DescribeActivity, request, &response));
  return Emit(inv, response, [&](std::ostream& out) {
    Line(out,
         {response.activity_arn(), FormatTimestamp(response.creation_date())});
  });
}

absl::Status ListActivities(const Invocation& inv) {
  v1::ListActivitiesRequest request;
  request.set_max_results(static_cast<int32_t>(inv.args.GetInt("max-results")));
  request.set_next_token(inv.args.Get("next-token"));
  v1::ListActivitiesResponse response;
  RETURN_IF_ERROR(FetchPages(
      inv.rpc, &v1::StepFunctions::StubInterface::ListActivities, request,
      FollowPages(inv),
      [](v1::ListActivitiesResponse& page) {
        return page.mutable_activities();
      },
      &response));
  return Emit(inv, response, [&](std::ostream& out) {
    for (const auto& item : response.activities()) {
      Line(out, {item.activity_arn(), FormatTimestamp(item.creation_date())});
    }
  });
}

absl::Status DeleteActivity(const Invocation& inv) {
  v1::DeleteActivityRequest request;
  request.set_activity_arn(ActivityArnFor(inv.scope, inv.args.positionals[0]));
  v1::DeleteActivityResponse response;
  RETURN_IF_ERROR(inv.rpc.Call(
      &v1::StepFunctions::StubInterface::DeleteActivity, request, &response));
  return Emit(inv, response, nullptr);
}

// ---------------------------------------------------------------------------
// Flags shared by several commands

FlagSpec MaxResultsFlag(absl::string_view items) {
  return {.name = "max-results",
          .kind = FlagKind::kInt,
          .value_name = "N",
          .help = absl::StrCat("Fetch one page of at most N ", items,
                               " and print its\nnextToken (if any). Without "
                               "it, every page is\nfetched and printed "
                               "together.")};
}

FlagSpec PublishFlag() {
  return {.name = "publish",
          .kind = FlagKind::kBool,
          .help = "Also publish the result as a new version."};
}

FlagSpec VersionDescriptionFlag() {
  return {.name = "version-description",
          .value_name = "TEXT",
          .help = "Description of the version --publish makes."};
}

FlagSpec LoggingLevelFlag() {
  return {.name = "logging-level",
          .value_name = "LEVEL",
          .help = "Log the executions' history events: ALL, ERROR\n(failures), FATAL "
                  "(execution failures) or OFF;\nread them with `stepflow executions logs`.",
          .choices = {"ALL", "ERROR", "FATAL", "OFF"}};
}

FlagSpec LogGroupFlag() {
  return {.name = "log-group",
          .value_name = "ARN",
          .help = "The log group ARN the logs are filed under\n(required with "
                  "--logging-level ALL|ERROR|FATAL)."};
}

FlagSpec IncludeExecutionDataFlag() {
  return {.name = "include-execution-data",
          .kind = FlagKind::kBool,
          .help = "Keep inputs and outputs in the logged events."};
}

FlagSpec RoutingFlag() {
  return {.name = "routing",
          .value_name = "ROUTES",
          .help = "VERSION_ARN=WEIGHT, or two such pairs\nseparated by a comma; "
                  "the weights sum to 100."};
}

FlagSpec NextTokenFlag() {
  return {.name = "next-token",
          .value_name = "TOKEN",
          .help =
              "Start from this page (the nextToken printed\nby an "
              "earlier call with --max-results)."};
}

}  // namespace

absl::Status UsageError(absl::string_view message) {
  absl::Status status = absl::InvalidArgumentError(message);
  status.SetPayload(kUsagePayloadUrl, absl::Cord("1"));
  return status;
}

bool IsUsageError(const absl::Status& status) {
  return status.GetPayload(kUsagePayloadUrl).has_value();
}

absl::Status SilentExit(int exit_code) {
  absl::Status status = absl::UnknownError(
      absl::StrCat("the command exits with status ", exit_code));
  status.SetPayload(kSilentExitPayloadUrl, absl::Cord(absl::StrCat(exit_code)));
  return status;
}

std::optional<int> SilentExitCode(const absl::Status& status) {
  auto payload = status.GetPayload(kSilentExitPayloadUrl);
  int exit_code = 0;
  if (!payload.has_value() ||
      !absl::SimpleAtoi(std::string(*payload), &exit_code)) {
    return std::nullopt;
  }
  return exit_code;
}

absl::StatusOr<std::string> ReadSource(const Invocation& inv,
                                       absl::string_view source,
                                       absl::string_view what) {
  if (source == "-") {
    return std::string(std::istreambuf_iterator<char>(inv.in),
                       std::istreambuf_iterator<char>());
  }
  std::string path(source);
  if (absl::StartsWith(path, "file://")) path = path.substr(7);
  std::ifstream file(path, std::ios::binary);
  if (!file) {
    return absl::ErrnoToStatus(
        errno, absl::StrCat("cannot read ", what, " file '", path, "'"));
  }
  std::ostringstream contents;
  contents << file.rdbuf();
  if (file.bad()) {
    return absl::ErrnoToStatus(
        errno, absl::StrCat("cannot read ", what, " file '", path, "'"));
  }
  return contents.str();
}

const std::vector<GroupSpec>& CommandGroups() {
  static const auto* const kGroups = new std::vector<GroupSpec>{
      {"state-machines", "Manage state machines, their versions and aliases."},
      {"executions",
       "Start, describe, list, stop, redrive executions; read history."},
      {"map-runs",
       "Describe, list and update Distributed Map runs."},
      {"activities", "Create, describe, list and delete activities."},
      {"local", "Run a workflow in this process, without a cluster."},
      {"validate", "Check an ASL definition and list its problems."},
      {"test-state", "Run one state in isolation on the server (TestState)."},
      {"events", "EventBridge tools (event patterns)."},
  };
  return *kGroups;
}

const std::vector<CommandSpec>& Commands() {
  static const auto* const kCommands = new std::vector<CommandSpec>{
      // ---- state-machines ----
      {.group = "state-machines",
       .name = "create",
       .synopsis = "--name NAME (--definition FILE|- | --definition-string "
                   "JSON) [--type STANDARD|EXPRESS] [--role-arn ARN] "
                   "[--logging-level LEVEL --log-group ARN [--include-execution-data]] "
                   "[--publish [--version-description TEXT]]",
       .summary = "Create a state machine from an ASL definition.",
       .description =
           "Creates a state machine (CreateStateMachine) from an Amazon "
           "States\n"
           "Language definition and prints its stateMachineArn and "
           "creationDate.\nThe definition is validated by the server; "
           "errors come back as\nInvalidDefinition.",
       .flags =
           {{.name = "name",
             .value_name = "NAME",
             .help = "Name of the state machine (required; 1-80\ncharacters, "
                     "no whitespace or ARN separators)."},
            {.name = "definition",
             .value_name = "FILE|-",
             .help = "Read the definition from FILE (a \"file://\"\nprefix "
                     "is accepted) or, for \"-\", from stdin."},
            {.name = "definition-string",
             .value_name = "JSON",
             .help = "The definition itself, as a JSON string."},
            {.name = "type",
             .value_name = "TYPE",
             .help = "STANDARD (default) or EXPRESS.",
             .choices = {"STANDARD", "EXPRESS"}},
            {.name = "role-arn",
             .value_name = "ARN",
             .help = "IAM role ARN recorded with the state machine\n(accepted "
                     "for compatibility; Stepflow does not\nassume it)."},
            LoggingLevelFlag(),
            LogGroupFlag(),
            IncludeExecutionDataFlag(),
            PublishFlag(),
            VersionDescriptionFlag()},
       .run = &CreateStateMachine},
      {.group = "state-machines",
       .name = "describe",
       .synopsis = "ARN|NAME",
       .summary = "Show a state machine, including its definition.",
       .description =
           "Describes a state machine (DescribeStateMachine): name, status,\n"
           "type, definition, roleArn, revisionId, creationDate. A version "
           "ARN\n(STATE_MACHINE_ARN:N) describes that version.",
       .positionals = {{"ARN|NAME",
                        "State machine ARN, or a name in the current\n"
                        "--region/--account."}},
       .run = &DescribeStateMachine},
      {.group = "state-machines",
       .name = "list",
       .synopsis = "[--max-results N] [--next-token TOKEN]",
       .summary = "List state machines.",
       .description =
           "Lists state machines (ListStateMachines) as\n"
           "{\"stateMachines\": [...]}. Text output: one line per state "
           "machine,\nARN<TAB>TYPE<TAB>CREATION_DATE.",
       .flags = {MaxResultsFlag("state machines"), NextTokenFlag()},
       .run = &ListStateMachines},
      {.group = "state-machines",
       .name = "delete",
       .synopsis = "ARN|NAME",
       .summary = "Delete a state machine.",
       .description =
           "Deletes a state machine (DeleteStateMachine) with its versions "
           "and\naliases. Running executions finish with the revision they "
           "started\nwith. Prints nothing.",
       .positionals = {{"ARN|NAME",
                        "State machine ARN, or a name in the current\n"
                        "--region/--account."}},
       .run = &DeleteStateMachine},

      {.group = "state-machines",
       .name = "update",
       .synopsis = "ARN|NAME [--definition FILE|- | --definition-string JSON] "
                   "[--role-arn ARN] [--logging-level LEVEL --log-group ARN "
                   "[--include-execution-data]] [--publish [--version-description TEXT]]",
       .summary = "Change a state machine's definition or role.",
       .description =
           "Updates a state machine (UpdateStateMachine). A change makes a "
           "new\nrevision; running executions keep the revision they started "
           "with.\nPrints the revisionId and updateDate, and with --publish "
           "the\nstateMachineVersionArn of the version published.",
       .positionals = {{"ARN|NAME",
                        "State machine ARN, or a name in the current\n"
                        "--region/--account."}},
       .flags = {{.name = "definition",
                  .value_name = "FILE|-",
                  .help = "Read the new definition from FILE (a\n\"file://\" "
                          "prefix is accepted) or, for \"-\", from\nstdin."},
                 {.name = "definition-string",
                  .value_name = "JSON",
                  .help = "The new definition itself, as a JSON string."},
                 {.name = "role-arn",
                  .value_name = "ARN",
                  .help = "New IAM role ARN."},
                 LoggingLevelFlag(),
                 LogGroupFlag(),
                 IncludeExecutionDataFlag(),
                 PublishFlag(),
                 VersionDescriptionFlag()},
       .run = &UpdateStateMachine},
      {.group = "state-machines",
       .name = "publish-version",
       .synopsis = "ARN|NAME [--revision-id ID] [--description TEXT]",
       .summary = "Publish the current revision as a version.",
       .description =
           "Publishes the state machine's current revision as a numbered,\n"
           "immutable version (PublishStateMachineVersion) and prints its ARN\n"
           "(STATE_MACHINE_ARN:N). Publishing a revision that already has a\n"
           "version returns that version.",
       .positionals = {{"ARN|NAME",
                        "State machine ARN, or a name in the current\n"
                        "--region/--account."}},
       .flags = {{.name = "revision-id",
                  .value_name = "ID",
                  .help = "Publish only if this is still the current\nrevision "
                          "(ConflictException otherwise)."},
                 {.name = "description",
                  .value_name = "TEXT",
                  .help = "Description of the version."}},
       .run = &PublishStateMachineVersion},
      {.group = "state-machines",
       .name = "list-versions",
       .synopsis = "ARN|NAME [--max-results N] [--next-token TOKEN]",
       .summary = "List a state machine's versions, newest first.",
       .description =
           "Lists the published versions of a state machine\n"
           "(ListStateMachineVersions), newest first. Text output: one line "
           "per\nversion, VERSION_ARN<TAB>CREATION_DATE.",
       .positionals = {{"ARN|NAME",
                        "State machine ARN, or a name in the current\n"
                        "--region/--account."}},
       .flags = {MaxResultsFlag("versions"), NextTokenFlag()},
       .run = &ListStateMachineVersions},
      {.group = "state-machines",
       .name = "delete-version",
       .synopsis = "VERSION_ARN",
       .summary = "Delete a version no alias routes to.",
       .description =
           "Deletes a state machine version (DeleteStateMachineVersion).\n"
           "Refused (ConflictException) while an alias routes to it. Prints\n"
           "nothing.",
       .positionals = {{"VERSION_ARN", "State machine version ARN."}},
       .run = &DeleteStateMachineVersion},
      {.group = "state-machines",
       .name = "create-alias",
       .synopsis = "--name NAME --routing VERSION_ARN=WEIGHT[,VERSION_ARN=WEIGHT] "
                   "[--description TEXT]",
       .summary = "Create an alias routing to one or two versions.",
       .description =
           "Creates an alias (CreateStateMachineAlias) that routes executions\n"
           "started through it to one or two versions of one state machine,\n"
           "by weight (the weights sum to 100). Prints the alias ARN\n"
           "(STATE_MACHINE_ARN:NAME).",
       .flags = {{.name = "name",
                  .value_name = "NAME",
                  .help = "Alias name (required; letters, digits, '-',\n'_' and "
                          "'.', not all digits)."},
                 RoutingFlag(),
                 {.name = "description",
                  .value_name = "TEXT",
                  .help = "Description of the alias."}},
       .run = &CreateStateMachineAlias},
      {.group = "state-machines",
       .name = "describe-alias",
       .synopsis = "ALIAS_ARN",
       .summary = "Show an alias and its routing.",
       .description =
           "Describes an alias (DescribeStateMachineAlias). Text output:\n"
           "ALIAS_ARN<TAB>VERSION_ARN=WEIGHT,...<TAB>DESCRIPTION.",
       .positionals = {{"ALIAS_ARN", "State machine alias ARN."}},
       .run = &DescribeStateMachineAlias},
      {.group = "state-machines",
       .name = "update-alias",
       .synopsis = "ALIAS_ARN [--routing VERSION_ARN=WEIGHT[,...]] "
                   "[--description TEXT]",
       .summary = "Change an alias's routing or description.",
       .description =
           "Updates an alias (UpdateStateMachineAlias); give --routing, "
           "--description\nor both. Prints the updateDate.",
       .positionals = {{"ALIAS_ARN", "State machine alias ARN."}},
       .flags = {RoutingFlag(),
                 {.name = "description",
                  .value_name = "TEXT",
                  .help = "New description of the alias."}},
       .run = &UpdateStateMachineAlias},
      {.group = "state-machines",
       .name = "delete-alias",
       .synopsis = "ALIAS_ARN",
       .summary = "Delete an alias.",
       .description = "Deletes an alias (DeleteStateMachineAlias). Prints nothing.",
       .positionals = {{"ALIAS_ARN", "State machine alias ARN."}},
       .run = &DeleteStateMachineAlias},
      {.group = "state-machines",
       .name = "list-aliases",
       .synopsis = "ARN|NAME [--max-results N] [--next-token TOKEN]",
       .summary = "List a state machine's aliases.",
       .description =
           "Lists the aliases of a state machine (ListStateMachineAliases), "
           "or,\nfor a version ARN, the aliases routing to it. Text output: "
           "one line\nper alias, ALIAS_ARN<TAB>CREATION_DATE.",
       .positionals = {{"ARN|NAME",
                        "State machine or version ARN, or a name in\nthe "
                        "current --region/--account."}},
       .flags = {MaxResultsFlag("aliases"), NextTokenFlag()},
       .run = &ListStateMachineAliases},

      // ---- executions ----
      {.group = "executions",
       .name = "start",
       .synopsis =
           "STATE_MACHINE_ARN|NAME [--name NAME] [--input JSON | --input-file "
           "FILE|-]",
       .summary = "Start an execution of a state machine.",
       .description =
           "Starts an execution (StartExecution) and prints its executionArn\n"
           "and startDate. It does not wait for the execution to finish; use\n"
           "`stepflow executions describe` or `history` for that.",
       .positionals = {{"STATE_MACHINE_ARN|NAME",
                        "State machine (or version/alias) ARN, or a\nstate "
                        "machine name in the current --region/--account."}},
       .flags = {{.name = "name",
                  .value_name = "NAME",
                  .help = "Execution name (default: generated). For\nSTANDARD "
                          "state machines it is an idempotency key."},
                 {.name = "input",
                  .value_name = "JSON",
                  .help = "Execution input, a JSON text (default \"{}\")."},
                 {.name = "input-file",
                  .value_name = "FILE|-",
                  .help = "Read the input from FILE (a \"file://\" prefix\nis "
                          "accepted) or, for \"-\", from stdin."}},
       .run = &StartExecution},
      {.group = "executions",
       .name = "describe",
       .synopsis = "EXECUTION_ARN",
       .summary = "Show an execution's status, input and output.",
       .description =
           "Describes an execution (DescribeExecution): status, startDate,\n"
           "stopDate, input, output (when SUCCEEDED), error and cause. Text\n"
           "output: ARN<TAB>STATUS<TAB>START<TAB>STOP, then the output, or "
           "the\nerror and cause.",
       .positionals = {{"EXECUTION_ARN", "Execution ARN."}},
       .run = &DescribeExecution},
      {.group = "executions",
       .name = "history",
       .synopsis = "EXECUTION_ARN [--reverse] [--max-results N] [--next-token "
                   "TOKEN] [--no-include-execution-data]",
       .summary = "Show an execution's history events.",
       .description =
           "Prints an execution's history (GetExecutionHistory) as\n"
           "{\"events\": [...]}, each event with timestamp, type, id,\n"
           "previousEventId and its ...EventDetails. Text output: one line "
           "per\nevent, ID<TAB>TIMESTAMP<TAB>TYPE<TAB>DETAILS_JSON.",
       .positionals = {{"EXECUTION_ARN", "Execution ARN."}},
       .flags = {{.name = "reverse",
                  .kind = FlagKind::kBool,
                  .help = "Newest event first."},
                 MaxResultsFlag("events"),
                 NextTokenFlag(),
                 {.name = "no-include-execution-data",
                  .kind = FlagKind::kBool,
                  .help = "Leave input and output out of the event\ndetails."}},
       .run = &GetExecutionHistory},
      {.group = "executions",
       .name = "logs",
       .synopsis = "(--execution ARN | --state-machine ARN|NAME) --kafka-brokers "
                   "HOST:PORT[,...] [--follow]",
       .summary = "Print the logged events of executions.",
       .description =
           "Prints the history events that shard servers logged for "
           "executions\nwhose state machine has a logging configuration "
           "(--logging-level),\none JSON object per line in the shape AWS "
           "writes to CloudWatch\nLogs (id, type, details, previous_event_id, "
           "event_timestamp,\nexecution_arn), read from the Kafka topic "
           "stepflow.execution-logs.\nWhat is logged so far comes sorted by "
           "execution and event id; with\n--follow, later records follow as they arrive.",
       .flags = {{.name = "execution",
                  .value_name = "ARN",
                  .help = "Only this execution's events."},
                 {.name = "state-machine",
                  .value_name = "ARN|NAME",
                  .help = "Only the events of this state machine's\nexecutions."},
                 {.name = "kafka-brokers",
                  .value_name = "HOST:PORT[,...]",
                  .help = "The cluster's Kafka brokers (`stepflow dev`\nprints them)."},
                 {.name = "follow",
                  .kind = FlagKind::kBool,
                  .help = "Keep printing new events until interrupted."}},
       .run = &ExecutionLogs},
      {.group = "executions",
       .name = "list",
       .synopsis = "[--state-machine ARN|NAME | --map-run ARN] [--status STATUS] "
                   "[--redrive-filter FILTER] [--max-results N] "
                   "[--next-token TOKEN]",
       .summary = "List executions, newest first.",
       .description =
           "Lists executions (ListExecutions) as {\"executions\": [...]}, "
           "newest\nfirst. Without --state-machine, the executions of every "
           "state\nmachine are listed together (--next-token then cannot be "
           "used, and\n--max-results just cuts the list). Text output: one "
           "line per\nexecution, ARN<TAB>STATUS<TAB>START_DATE.",
       .flags = {{.name = "state-machine",
                  .value_name = "ARN|NAME",
                  .help = "Only this state machine's (or version's or\n"
                          "alias's) executions."},
                 {.name = "map-run",
                  .value_name = "MAP_RUN_ARN",
                  .help = "Only the child executions of this Map Run\n"
                          "(not with --state-machine)."},
                 {.name = "status",
                  .value_name = "STATUS",
                  .help = "Only executions with this status: RUNNING,\n"
                          "SUCCEEDED, FAILED, TIMED_OUT, ABORTED or\n"
                          "PENDING_REDRIVE.",
                  .choices = kExecutionStatuses},
                 {.name = "redrive-filter",
                  .value_name = "FILTER",
                  .help = "REDRIVEN: only executions redriven at least\n"
                          "once; NOT_REDRIVEN: only the others.",
                  .choices = {"REDRIVEN", "NOT_REDRIVEN"}},
                 MaxResultsFlag("executions"),
                 NextTokenFlag()},
       .run = &ListExecutions},
      {.group = "executions",
       .name = "redrive",
       .synopsis = "EXECUTION_ARN [--client-token TOKEN]",
       .summary = "Run a failed execution again from where it failed.",
       .description =
           "Redrives a FAILED, TIMED_OUT or ABORTED Standard execution\n"
           "(RedriveExecution) that stopped less than 14 days ago: the states\n"
           "that did not succeed run again, successful Parallel branches and\n"
           "Map iterations are kept. Prints the redriveDate.",
       .positionals = {{"EXECUTION_ARN", "Execution ARN."}},
       .flags = {{.name = "client-token",
                  .value_name = "TOKEN",
                  .help = "Idempotency token: a retry with the same\ntoken "
                          "does not redrive again."}},
       .run = &RedriveExecution},
      {.group = "executions",
       .name = "describe-state-machine",
       .synopsis = "EXECUTION_ARN",
       .summary = "Show the state machine revision an execution runs.",
       .description =
           "Describes the state machine as of the revision the execution\n"
           "started with (DescribeStateMachineForExecution), which later\n"
           "updates do not change. Text output:\n"
           "STATE_MACHINE_ARN<TAB>REVISION_ID<TAB>UPDATE_DATE.",
       .positionals = {{"EXECUTION_ARN", "Execution ARN."}},
       .run = &DescribeStateMachineForExecution},
      {.group = "executions",
       .name = "stop",
       .synopsis = "EXECUTION_ARN [--error ERROR] [--cause CAUSE]",
       .summary = "Stop (abort) a running execution.",
       .description =
           "Stops a running execution (StopExecution); its status becomes\n"
           "ABORTED. Prints the stopDate.",
       .positionals = {{"EXECUTION_ARN", "Execution ARN."}},
       .flags = {{.name = "error",
                  .value_name = "ERROR",
                  .help =
                      "Error code recorded in the ExecutionAborted\nevent."},
                 {.name = "cause",
                  .value_name = "CAUSE",
                  .help = "Human-readable cause recorded with it."}},
       .run = &StopExecution},

      // ---- map-runs ----
      {.group = "map-runs",
       .name = "describe",
       .synopsis = "MAP_RUN_ARN",
       .summary = "Show a Map Run's status, settings and counts.",
       .description =
           "Describes the Map Run of a Distributed Map state (DescribeMapRun):\n"
           "status, startDate, stopDate, maxConcurrency, the tolerated\n"
           "failures, itemCounts and executionCounts (pending, running,\n"
           "succeeded, failed, timedOut, aborted, total) and redriveCount.\n"
           "Map Run ARNs are in the MapRunStarted event of the parent's\n"
           "history and in `stepflow map-runs list`. Text output:\n"
           "ARN<TAB>STATUS<TAB>START<TAB>STOP<TAB>maxConcurrency=N, then the\n"
           "child execution counts as name=N.",
       .positionals = {{"MAP_RUN_ARN", "Map Run ARN."}},
       .run = &DescribeMapRun},
      {.group = "map-runs",
       .name = "list",
       .synopsis = "EXECUTION_ARN [--max-results N] [--next-token TOKEN]",
       .summary = "List the Map Runs an execution started, newest first.",
       .description =
           "Lists the Map Runs of an execution (ListMapRuns) as\n"
           "{\"mapRuns\": [...]}, newest first. Their child executions are\n"
           "listed by `stepflow executions list --map-run ARN`. Text output:\n"
           "one line per Map Run, ARN<TAB>START_DATE<TAB>STOP_DATE.",
       .positionals = {{"EXECUTION_ARN", "The parent execution's ARN."}},
       .flags = {MaxResultsFlag("map runs"), NextTokenFlag()},
       .run = &ListMapRuns},
      {.group = "map-runs",
       .name = "update",
       .synopsis = "MAP_RUN_ARN [--max-concurrency N] "
                   "[--tolerated-failure-count N] "
                   "[--tolerated-failure-percentage P]",
       .summary = "Change a running Map Run's concurrency or tolerance.",
       .description =
           "Updates a RUNNING Map Run (UpdateMapRun). A new maxConcurrency\n"
           "applies to the child executions not started yet (more start at\n"
           "once when it grows); new tolerances judge the failures from now\n"
           "on. Prints nothing on success.",
       .positionals = {{"MAP_RUN_ARN", "Map Run ARN."}},
       .flags = {{.name = "max-concurrency",
                  .value_name = "N",
                  .help = "Child executions running at once; 0 means\nno "
                          "limit."},
                 {.name = "tolerated-failure-count",
                  .value_name = "N",
                  .help = "Failed items the run tolerates (0 or more)."},
                 {.name = "tolerated-failure-percentage",
                  .value_name = "P",
                  .help = "Percentage of failed items the run\ntolerates "
                          "(0 to 100)."}},
       .run = &UpdateMapRun},

      // ---- activities ----
      {.group = "activities",
       .name = "create",
       .synopsis = "NAME",
       .summary = "Create an activity.",
       .description =
           "Creates an activity (CreateActivity) that workers poll for tasks,\n"
           "and prints its activityArn and creationDate. Creating an "
           "existing\nactivity again returns the same ARN.",
       .positionals = {{"NAME", "Activity name."}},
       .run = &CreateActivity},
      {.group = "activities",
       .name = "describe",
       .synopsis = "ARN|NAME",
       .summary = "Show an activity.",
       .description = "Describes an activity (DescribeActivity).",
       .positionals = {{"ARN|NAME",
                        "Activity ARN, or a name in the current\n"
                        "--region/--account."}},
       .run = &DescribeActivity},
      {.group = "activities",
       .name = "list",
       .synopsis = "[--max-results N] [--next-token TOKEN]",
       .summary = "List activities.",
       .description =
           "Lists activities (ListActivities) as {\"activities\": [...]}. "
           "Text\noutput: one line per activity, ARN<TAB>CREATION_DATE.",
       .flags = {MaxResultsFlag("activities"), NextTokenFlag()},
       .run = &ListActivities},
      {.group = "activities",
       .name = "delete",
       .synopsis = "ARN|NAME",
       .summary = "Delete an activity.",
       .description = "Deletes an activity (DeleteActivity). Prints nothing.",
       .positionals = {{"ARN|NAME",
                        "Activity ARN, or a name in the current\n"
                        "--region/--account."}},
       .run = &DeleteActivity},

      // ---- local, validate: no server ----
      {.group = "local",
       .name = "run",
       .synopsis = "--definition FILE|- [--input JSON | --input-file FILE|-] "
                   "[--type STANDARD|EXPRESS] [--name NAME] [--history] "
                   "[--task-handler CMD] [--real-time]",
       .summary = "Run one execution in this process; print its result.",
       .description =
           "Runs one execution of a definition in this process with "
           "Stepflow's\n"
           "interpreter, with no cluster, and prints one JSON object:\n"
           "  {\"status\": \"SUCCEEDED\"|\"FAILED\"|\"TIMED_OUT\"|"
           "\"ABORTED\",\n"
           "   \"output\": <a JSON value; only when SUCCEEDED>,\n"
           "   \"error\": \"...\", \"cause\": \"...\"   (when present),\n"
           "   \"history\": [<events as `executions history` prints them>]\n"
           "                                   (with --history)}\n"
           "\n"
           "Time is virtual: Wait states, Retry intervals and timeouts "
           "take no\n"
           "real time (unless --real-time), so a workflow that waits a day\n"
           "finishes at once; the history's timestamps show the virtual "
           "time.\n"
           "Tasks run one at a time, in the order they are scheduled, "
           "through\n"
           "--task-handler; without it every Task fails with\n"
           "States.TaskFailed (\"no --task-handler was given\"). EXPRESS\n"
           "executions time out (TIMED_OUT, States.Timeout) after 5 "
           "minutes,\n"
           "as on AWS. The execution's ARN is\n"
           "arn:aws:states:us-east-1:123456789012:execution:local:NAME.\n"
           "\n"
           "Task handler protocol (that of stepflow-worker): CMD runs "
           "through\n"
           "/bin/sh -c with the task input on stdin, the Task's Resource in\n"
           "$STEPFLOW_ACTIVITY_ARN and its task token in "
           "$STEPFLOW_TASK_TOKEN.\n"
           "Exit 0 with JSON on stdout: success, with that output. Exit 0 "
           "with\n"
           "anything else: failure \"InvalidOutput\". Non-zero exit: "
           "failure,\n"
           "with error and cause from a JSON object {\"error\": ..., "
           "\"cause\":\n"
           "...} on stdout if there is one, else \"ProcessExited\" (or\n"
           "\"ProcessKilled\") and \"exit code N: <end of stderr>\". Retry "
           "and\n"
           "Catch see these errors.\n"
           "\n"
           "Exit status: 0 when the execution SUCCEEDED; 1 when it did not "
           "(or\n"
           "the run could not finish: an error line on stderr); 2 for bad\n"
           "usage, bad input, or an invalid definition, whose problems are\n"
           "printed to stderr one per line as \"CODE at LOCATION: "
           "MESSAGE\".\n"
           "\n"
           "No server is called: --endpoint, --region, --account and "
           "--timeout\n"
           "have no effect, and --output text is refused.",
       .flags =
           {{.name = "definition",
             .value_name = "FILE|-",
             .help = "The ASL definition (required): FILE (a\n\"file://\" "
                     "prefix is accepted) or, for \"-\",\nstdin."},
            {.name = "input",
             .value_name = "JSON",
             .help = "Execution input, a JSON text (default \"{}\")."},
            {.name = "input-file",
             .value_name = "FILE|-",
             .help = "Read the input from FILE or, for \"-\", from\nstdin."},
            {.name = "type",
             .value_name = "TYPE",
             .help = "STANDARD (default) or EXPRESS (5-minute\nlimit).",
             .choices = {"STANDARD", "EXPRESS"}},
            {.name = "name",
             .value_name = "NAME",
             .help = "Execution name, seen as $$.Execution.Name\n"
                     "(default \"local\")."},
            {.name = "history",
             .kind = FlagKind::kBool,
             .help = "Include the execution's history events."},
            {.name = "task-handler",
             .value_name = "CMD",
             .help = "Shell command that runs each activity task\n"
                     "(protocol above)."},
            {.name = "real-time",
             .kind = FlagKind::kBool,
             .help = "Really wait for Wait states, retries and\ntimeouts "
                     "instead of using a virtual clock."}},
       .run = &LocalRun},
      {.group = "test-state",
       .name = "",
       .synopsis = "--definition FILE|- [--input JSON] [--state-name NAME] "
                   "[--inspection-level INFO|DEBUG|TRACE] [--mock-result JSON | "
                   "--mock-error ERROR [--mock-cause CAUSE]] [--retry-count N] "
                   "[--map-iteration-failure-count N] [--map-item-reader-data JSON] "
                   "[--error-caused-by-state NAME] "
                   "[--variables JSON] [--context JSON] [--role-arn ARN] [--reveal-secrets]",
       .summary = "Run one state in isolation (TestState).",
       .description =
           "Runs one state with the given input on the server (TestState) and\n"
           "prints its output, error, cause, next state and status\n"
           "(SUCCEEDED, FAILED, RETRIABLE or CAUGHT_ERROR). With\n"
           "--inspection-level DEBUG the data after each processing step\n"
           "(InputPath, Parameters, result, ResultSelector, ResultPath) and the\n"
           "variables are printed too. A Task state needs a mocked result or\n"
           "error, a Parallel or Map state a mocked result (an array; an object\n"
           "for a Map with a ResultWriter) or error; other states take no mock.\n"
           "A mock takes either a result or an error, and no --reveal-secrets.\n"
           "The definition is a single state, or a whole state machine with\n"
           "--state-name naming the state (which may be nested in a Parallel's\n"
           "branch or a Map's processor). The state runs under the name\n"
           "StateName, as on AWS.",
       .flags = {{.name = "definition",
                  .value_name = "FILE|-",
                  .help = "The state (or state machine) definition\n(required)."},
                 {.name = "input", .value_name = "JSON", .help = "The state's input (default {})."},
                 {.name = "state-name",
                  .value_name = "NAME",
                  .help = "The state to test within a state machine."},
                 {.name = "inspection-level",
                  .value_name = "LEVEL",
                  .help = "INFO (default), DEBUG or TRACE.",
                  .choices = {"INFO", "DEBUG", "TRACE"}},
                 {.name = "mock-result",
                  .value_name = "JSON",
                  .help = "The result a Task state's task returns."},
                 {.name = "mock-error",
                  .value_name = "ERROR",
                  .help = "The error a Task state's task fails with."},
                 {.name = "mock-cause", .value_name = "CAUSE", .help = "Its cause."},
                 {.name = "retry-count",
                  .value_name = "N",
                  .help = "Retries already made (decides RETRIABLE\nversus caught or failed)."},
                 {.name = "map-iteration-failure-count",
                  .value_name = "N",
                  .help = "Iterations of a Map that failed (checked\nagainst its tolerated "
                          "failures)."},
                 {.name = "map-item-reader-data",
                  .value_name = "JSON",
                  .help = "What a Map's ItemReader read: a JSON array\nof the items."},
                 {.name = "error-caused-by-state",
                  .value_name = "NAME",
                  .help = "The state inside a Map or Parallel that a\nmocked error comes "
                          "from (passed on; this\nrelease does not use it)."},
                 {.name = "variables",
                  .value_name = "JSON",
                  .help = "Workflow variables as a JSON object."},
                 {.name = "context",
                  .value_name = "JSON",
                  .help = "The Context object ($$) the state sees,\nin place of the one "
                          "TestState makes."},
                 {.name = "role-arn", .value_name = "ARN", .help = "Role ARN for the context."},
                 {.name = "reveal-secrets",
                  .kind = FlagKind::kBool,
                  .help = "Ask for the raw HTTP request and response\n(refused with a mock)."}},
       .run = &TestState},
      {.group = "validate",
       .name = "",
       .synopsis = "FILE|-",
       .summary = "Check an ASL definition and list its problems.",
       .description =
           "Checks an Amazon States Language definition as the server does\n"
           "(ValidateStateMachineDefinition, but here, with no server) and\n"
           "prints the result:\n"
           "  {\"result\": \"OK\"|\"FAIL\",\n"
           "   \"diagnostics\": [{\"severity\", \"code\", \"message\", "
           "\"location\"}],\n"
           "   \"truncated\": false}\n"
           "Every problem is listed; location is a JSON pointer into the\n"
           "definition, e.g. \"/States/Wait/Seconds\".\n"
           "\n"
           "Exit status: 0 when the result is OK; 1 when it is FAIL; 2 for "
           "bad\nusage (e.g. a file that cannot be read).\n"
           "\n"
           "No server is called: --endpoint, --region, --account and "
           "--timeout\n"
           "have no effect, and --output text is refused.",
       .positionals = {{"FILE|-",
                        "The definition: a file (a \"file://\" prefix is\n"
                        "accepted) or, for \"-\", stdin."}},
       .run = &Validate},
      {.group = "events",
       .name = "test-pattern",
       .synopsis = "(--pattern JSON | --pattern-file FILE|-) (--event JSON | --event-file FILE|-)",
       .summary = "Check whether an event matches an EventBridge pattern.",
       .description =
           "Matches an event against an EventBridge event pattern as the\n"
           "TestEventPattern operation does, here, with no server, and prints\n"
           "`true` or `false`. The pattern is checked with AWS's rules; the\n"
           "event must be a full EventBridge event (with id, account, source,\n"
           "time, region and detail-type).\n"
           "\n"
           "Exit status: 0 with `true` or `false` on stdout; 2 for an invalid\n"
           "pattern or event (AWS's message on stderr, e.g. \"Event pattern is\n"
           "not valid. Reason: ...\") or bad usage.\n"
           "\n"
           "No server is called: --endpoint, --region, --account and --timeout\n"
           "have no effect, and --output text is refused.",
       .flags = {{.name = "pattern", .value_name = "JSON", .help = "The event pattern, a JSON text."},
                 {.name = "pattern-file",
                  .value_name = "FILE|-",
                  .help = "Read the pattern from FILE or, for \"-\", from\nstdin."},
                 {.name = "event", .value_name = "JSON", .help = "The event, a JSON text."},
                 {.name = "event-file",
                  .value_name = "FILE|-",
                  .help = "Read the event from FILE or, for \"-\", from\nstdin."}},
       .run = &TestEventPattern},
  };
  return *kCommands;
}

bool IsRetrySafe(const google::protobuf::Message& request) {
  const std::string& type = request.GetDescriptor()->name();
  if (type == "GetActivityTaskRequest") return false;
  return absl::StartsWith(type, "Describe") || absl::StartsWith(type, "List") ||
         absl::StartsWith(type, "Get");
}

bool IsRetrySafe(const v1::StartExecutionRequest& request) {
  return !request.name().empty();
}

absl::Duration RetryDelay(const RetryPolicy& policy, int retry,
                          double uniform01) {
  absl::Duration delay = policy.initial_backoff;
  for (int i = 1; i < retry && delay < policy.max_backoff; ++i) delay *= 2;
  delay = std::min(delay, policy.max_backoff);
  return delay / 2 + delay / 2 * uniform01;
}

absl::Duration Rpc::NextDelay(int retry) const {
  absl::BitGen random;
  return RetryDelay(retry_, retry, absl::Uniform<double>(random, 0.0, 1.0));
}

}  // namespace stepflow::cli
