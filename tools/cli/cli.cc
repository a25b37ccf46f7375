#include "tools/cli/cli.h"

#include <algorithm>

#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "tools/cli/args.h"
#include "tools/cli/commands.h"

namespace stepflow::cli {
namespace {

constexpr double kDefaultTimeoutSeconds = 30;

// Accepted before the group, between group and command, and after the
// command; a later occurrence wins.
const std::vector<FlagSpec>& GlobalFlags() {
  static const auto* const kFlags = new std::vector<FlagSpec>{
      {.name = "endpoint",
       .value_name = "HOST:PORT",
       .help = absl::StrCat("Stepflow gateway to call (any gRPC target).\n"
                            "Default: $",
                            kEndpointEnvVar, " if set,\nelse ",
                            kDefaultEndpoint, " (`stepflow dev`).")},
      {.name = "region",
       .value_name = "REGION",
       .help = "Region used to turn NAMEs into ARNs\n(default us-east-1)."},
      {.name = "account",
       .value_name = "ACCOUNT",
       .help = "Account id used to turn NAMEs into ARNs\n"
               "(default 123456789012)."},
      {.name = "timeout",
       .kind = FlagKind::kNumber,
       .value_name = "SECONDS",
       .help = "Deadline of each RPC (default 30). Reads and\n"
               "named starts refused with RESOURCE_EXHAUSTED or\n"
               "UNAVAILABLE are sent again, with jittered\n"
               "exponential backoff, within that deadline."},
      {.name = "output",
       .value_name = "FORMAT",
       .help = "json (default): AWS-CLI-shaped JSON;\n"
               "text: one tab-separated line per item.",
       .choices = {"json", "text"}},
      {.name = "help",
       .kind = FlagKind::kBool,
       .help = "Show help for the command (or group) and exit.",
       .short_name = 'h'},
      {.name = "version",
       .kind = FlagKind::kBool,
       .help = "Print the version and exit."},
  };
  return *kFlags;
}

const GroupSpec* FindGroup(absl::string_view name) {
  for (const GroupSpec& group : CommandGroups()) {
    if (group.name == name) return &group;
  }
  return nullptr;
}

const CommandSpec* FindCommand(absl::string_view group,
                               absl::string_view name) {
  for (const CommandSpec& command : Commands()) {
    if (command.group == group && command.name == name) return &command;
  }
  return nullptr;
}

std::string TopHelp() {
  std::string out = absl::StrCat(
      "stepflow ", kVersion,
      ": command-line client for Stepflow (the AWS Step Functions API over "
      "gRPC).\n\n"
      "Usage: stepflow [GLOBAL FLAGS] GROUP COMMAND [ARGS] [FLAGS]\n"
      "       stepflow [GLOBAL FLAGS] validate FILE|-\n"
      "       stepflow dev [DEV FLAGS]\n"
      "       stepflow bench [BENCH FLAGS]\n\n"
      "Command groups:\n");
  for (const GroupSpec& group : CommandGroups()) {
    absl::StrAppend(&out, "  ", group.name,
                    std::string(18 - group.name.size(), ' '), group.summary,
                    "\n");
  }
  absl::StrAppend(
      &out,
      "  dev               Run a whole Stepflow cluster in this process\n",
      "                    (see `stepflow dev --help`).\n",
      "  bench             Load-test a gateway (or a throw-away in-process\n",
      "                    cluster) and compare with a no-op RPC's rate\n",
      "                    (see `stepflow bench --help`).\n\n",
      "Global flags (before or after the command):\n",
      FormatFlagHelp(GlobalFlags()),
      "\nNAME -> ARN: where an ARN is expected, a bare state machine or "
      "activity\nname is expanded to "
      "arn:aws:states:REGION:ACCOUNT:stateMachine:NAME\n(or :activity:NAME).\n"
      "\nOutput: JSON shaped like the AWS CLI's for the same operation\n"
      "(camelCase keys, ISO-8601 dates), or `--output text`.\n"
      "Exit status: 0 success; 1 error, printed to stderr as\n"
      "\"error: <gRPC code>: <message>\"; 2 bad usage. `local run` and\n"
      "`validate` need no server and report their outcome in the exit\n"
      "status too (see their --help).\n\n"
      "Run `stepflow GROUP --help` to list a group's commands and\n"
      "`stepflow GROUP COMMAND --help` (`stepflow validate --help`) for a\n"
      "command's arguments.\n");
  return out;
}

std::string TopUsage() {
  std::string groups;
  for (const GroupSpec& group : CommandGroups()) {
    absl::StrAppend(&groups, group.name, "|");
  }
  return absl::StrCat("Usage: stepflow [GLOBAL FLAGS] ", groups,
                      "dev|bench ...\nRun `stepflow --help` for details.\n");
}

std::string GroupHelp(const GroupSpec& group) {
  std::string out = absl::StrCat("stepflow ", group.name, ": ", group.summary,
                                 "\n\nUsage: stepflow ", group.name,
                                 " COMMAND [ARGS] [FLAGS]\n\nCommands:\n");
  // Summaries line up after the group's longest command name.
  size_t width = 10;
  for (const CommandSpec& command : Commands()) {
    if (command.group == group.name) width = std::max(width, command.name.size());
  }
  for (const CommandSpec& command : Commands()) {
    if (command.group != group.name) continue;
    absl::StrAppend(&out, "  ", command.name,
                    std::string(width + 2 - command.name.size(), ' '), command.summary,
                    "\n");
  }
  absl::StrAppend(&out, "\nRun `stepflow ", group.name,
                  " COMMAND --help` for a command's arguments and flags;\n"
                  "`stepflow --help` for the global flags.\n");
  return out;
}

std::string GroupUsage(const GroupSpec& group) {
  std::string commands;
  for (const CommandSpec& command : Commands()) {
    if (command.group != group.name) continue;
    absl::StrAppend(&commands, commands.empty() ? "" : "|", command.name);
  }
  return absl::StrCat("Usage: stepflow ", group.name, " ", commands,
                      " ...\nRun `stepflow ", group.name,
                      " --help` for details.\n");
}

// "GROUP NAME", or "GROUP" for a one-command group.
std::string CommandPath(const CommandSpec& command) {
  return command.name.empty() ? command.group
                              : absl::StrCat(command.group, " ", command.name);
}

std::string CommandUsageLine(const CommandSpec& command) {
  return absl::StrCat("Usage: stepflow ", CommandPath(command),
                      command.synopsis.empty() ? "" : " ", command.synopsis,
                      "\n");
}

std::string CommandHelp(const CommandSpec& command) {
  std::string out =
      absl::StrCat(CommandUsageLine(command), "\n", command.description, "\n");
  if (!command.positionals.empty()) {
    absl::StrAppend(&out, "\nArguments:\n");
    for (const PositionalSpec& positional : command.positionals) {
      absl::StrAppend(&out, FormatHelpRow(positional.name, positional.help));
    }
  }
  if (!command.flags.empty()) {
    absl::StrAppend(&out, "\nFlags:\n", FormatFlagHelp(command.flags));
  }
  absl::StrAppend(&out, "\nGlobal flags:\n", FormatFlagHelp(GlobalFlags()));
  return out;
}

std::string CommandUsage(const CommandSpec& command) {
  return absl::StrCat(CommandUsageLine(command), "Run `stepflow ",
                      CommandPath(command), " --help` for details.\n");
}

int BadUsage(const Environment& env, absl::string_view message,
             const std::string& usage) {
  *env.err << "error: " << message << "\n" << usage;
  return 2;
}

// Later flags override earlier ones.
void MergeFlags(const ParsedArgs& from, ParsedArgs* into) {
  for (const auto& [name, value] : from.flags) into->flags[name] = value;
}

// 3. and 4.: parses `args` (what follows the command's name, or its group's
// for a one-command group) with `merged` holding the global flags given
// before, and runs the command.
int RunCommand(const CommandSpec& command, const std::vector<std::string>& args,
               ParsedArgs merged, const Environment& env) {
  // 3. The command's own arguments, with the global flags allowed among them.
  std::vector<FlagSpec> specs = GlobalFlags();
  specs.insert(specs.end(), command.flags.begin(), command.flags.end());
  absl::StatusOr<ParsedArgs> own = ParseArgs(args, specs);
  if (!own.ok()) {
    return BadUsage(env, own.status().message(), CommandUsage(command));
  }
  MergeFlags(*own, &merged);
  merged.positionals = own->positionals;
  if (merged.IsSet("help")) {
    *env.out << CommandHelp(command);
    return 0;
  }
  if (merged.IsSet("version")) {
    *env.out << "stepflow " << kVersion << "\n";
    return 0;
  }
  if (merged.positionals.size() != command.positionals.size()) {
    std::string message =
        merged.positionals.size() < command.positionals.size()
            ? absl::StrCat("missing argument ",
                           command.positionals[merged.positionals.size()].name)
            : absl::StrCat("unexpected argument '",
                           merged.positionals[command.positionals.size()], "'");
    return BadUsage(env, message, CommandUsage(command));
  }

  // 4. Run it.
  std::string endpoint = kDefaultEndpoint;
  if (std::optional<std::string> from_env =
          env.getenv ? env.getenv(kEndpointEnvVar) : std::nullopt;
      from_env.has_value() && !from_env->empty()) {
    endpoint = *from_env;
  }
  endpoint = merged.Get("endpoint", endpoint);
  config::ArnScope scope;
  scope.region = merged.Get("region", scope.region);
  scope.account = merged.Get("account", scope.account);
  OutputFormat output = merged.Get("output", "json") == "text"
                            ? OutputFormat::kText
                            : OutputFormat::kJson;
  absl::Duration timeout =
      absl::Seconds(merged.GetNumber("timeout", kDefaultTimeoutSeconds));

  std::unique_ptr<v1::StepFunctions::Stub> stub =
      v1::StepFunctions::NewStub(env.make_channel(endpoint));
  Rpc rpc(stub.get(), timeout);
  Invocation invocation{merged,  scope,    output,  rpc,
                        *env.in, *env.out, *env.err};
  absl::Status status = command.run(invocation);
  env.out->flush();
  if (status.ok()) return 0;
  if (std::optional<int> exit_code = SilentExitCode(status)) return *exit_code;
  if (IsUsageError(status)) {
    return BadUsage(env, status.message(), CommandUsage(command));
  }
  *env.err << "error: " << absl::StatusCodeToString(status.code()) << ": "
           << status.message() << "\n";
  if (absl::IsUnavailable(status)) {
    *env.err << "hint: is a Stepflow gateway listening at " << endpoint
             << "? (`stepflow dev` starts one; see --endpoint)\n";
  }
  return 1;
}

}  // namespace

Environment ProcessEnvironment() {
  Environment env;
  env.in = &std::cin;
  env.out = &std::cout;
  env.err = &std::cerr;
  env.getenv = [](const std::string& name) -> std::optional<std::string> {
    const char* value = std::getenv(name.c_str());
    if (value == nullptr) return std::nullopt;
    return std::string(value);
  };
  env.make_channel = [](const std::string& endpoint)
      -> std::shared_ptr<grpc::ChannelInterface> {
    return grpc::CreateChannel(endpoint, grpc::InsecureChannelCredentials());
  };
  return env;
}

int Run(int argc, char** argv, const Environment& env) {
  std::vector<std::string> args(argv + (argc > 0 ? 1 : 0), argv + argc);

  // 1. Global flags, up to the group.
  absl::StatusOr<ParsedArgs> top =
      ParseArgs(args, GlobalFlags(), /*stop_at_positional=*/true);
  if (!top.ok()) return BadUsage(env, top.status().message(), TopUsage());
  ParsedArgs merged;
  MergeFlags(*top, &merged);
  if (merged.IsSet("version")) {
    *env.out << "stepflow " << kVersion << "\n";
    return 0;
  }
  std::vector<std::string> rest = top->positionals;
  if (rest.empty()) {
    if (merged.IsSet("help")) {
      *env.out << TopHelp();
      return 0;
    }
    return BadUsage(env, "missing command", TopUsage());
  }

  if (rest[0] == "dev") {
    if (!env.run_dev) {
      *env.err << "error: stepflow dev is not available here\n";
      return 1;
    }
    // Everything from "dev" on is the dev command's own argv.
    int dev_index = argc - static_cast<int>(rest.size());
    return env.run_dev(argc - dev_index, argv + dev_index);
  }
  if (rest[0] == "bench") {
    if (!env.run_bench) {
      *env.err << "error: stepflow bench is not available here\n";
      return 1;
    }
    // Global flags given before "bench" apply to it; its own come after
    // them and win. STEPFLOW_ENDPOINT does not: without --endpoint the
    // bench runs its own cluster.
    std::vector<std::string> bench_args;
    if (merged.Has("endpoint")) bench_args = {"--endpoint", merged.Get("endpoint")};
    if (merged.Has("timeout")) {
      bench_args.insert(bench_args.end(), {"--timeout", merged.Get("timeout")});
    }
    if (merged.Has("output")) {
      bench_args.insert(bench_args.end(), {"--format", merged.Get("output")});
    }
    if (merged.IsSet("help")) bench_args.push_back("--help");
    bench_args.insert(bench_args.end(), rest.begin() + 1, rest.end());
    return env.run_bench(bench_args, *env.out, *env.err);
  }
  const GroupSpec* group = FindGroup(rest[0]);
  if (group == nullptr) {
    return BadUsage(env, absl::StrCat("unknown command group '", rest[0], "'"),
                    TopUsage());
  }

  // A one-command group: what follows the group is the command's own.
  if (const CommandSpec* only = FindCommand(group->name, ""); only != nullptr) {
    return RunCommand(*only,
                      std::vector<std::string>(rest.begin() + 1, rest.end()),
                      std::move(merged), env);
  }

  // 2. Global flags between the group and the command.
  absl::StatusOr<ParsedArgs> middle =
      ParseArgs(std::vector<std::string>(rest.begin() + 1, rest.end()),
                GlobalFlags(), /*stop_at_positional=*/true);
  if (!middle.ok()) {
    return BadUsage(env, middle.status().message(), GroupUsage(*group));
  }
  MergeFlags(*middle, &merged);
  rest = middle->positionals;
  if (rest.empty()) {
    if (merged.IsSet("help")) {
      *env.out << GroupHelp(*group);
      return 0;
    }
    return BadUsage(env, "missing command", GroupUsage(*group));
  }
  const CommandSpec* command = FindCommand(group->name, rest[0]);
  if (command == nullptr) {
    return BadUsage(
        env, absl::StrCat("unknown command '", group->name, " ", rest[0], "'"),
        GroupUsage(*group));
  }
  return RunCommand(*command,
                    std::vector<std::string>(rest.begin() + 1, rest.end()),
                    std::move(merged), env);
}

}  // namespace stepflow::cli
