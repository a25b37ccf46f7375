// Command-line argument parsing for the `stepflow` CLI.
//
// GNU-style long flags only: "--flag value", "--flag=value" and, for boolean
// flags, a bare "--flag" (or "--flag=true|false"). A flag may also have a
// one-letter alias ("-h"). "--" ends flag parsing; a lone "-" is a positional
// (it conventionally means stdin). Flags are declared up front, so
// "--flag value" is unambiguous and unknown flags are reported instead of
// being mistaken for positionals.
//
//   std::vector<FlagSpec> specs = {
//       {.name = "name", .value_name = "NAME", .help = "Resource name."},
//       {.name = "reverse", .kind = FlagKind::kBool, .help = "Newest first."}};
//   absl::StatusOr<ParsedArgs> args =
//       ParseArgs({"describe", "--name=x", "--reverse"}, specs);
//   // args->Get("name") == "x", args->Has("reverse"),
//   // args->positionals == {"describe"}
//
// Pure functions; thread-safe.
#ifndef STEPFLOW_TOOLS_CLI_ARGS_H_
#define STEPFLOW_TOOLS_CLI_ARGS_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace stepflow::cli {

enum class FlagKind {
  kBool,    // no value; stored as "true" (or the explicit "=true|false")
  kString,  // any value
  kInt,     // a positive integer
  kNumber,  // a positive decimal number, e.g. "2.5"
};

struct FlagSpec {
  std::string name;  // without the leading "--"
  FlagKind kind = FlagKind::kString;
  std::string value_name;            // placeholder shown in help, e.g. "FILE"
  std::string help;                  // may contain '\n' for more lines
  std::vector<std::string> choices;  // if not empty, the only allowed values
  char short_name = 0;               // one-letter alias, e.g. 'h' for "-h"
};

struct ParsedArgs {
  // Flag name -> value as given ("true"/"false" for booleans); when a flag is
  // repeated the last value wins.
  std::map<std::string, std::string> flags;
  std::vector<std::string> positionals;

  bool Has(absl::string_view name) const;
  // True if a boolean flag is present and not "false".
  bool IsSet(absl::string_view name) const;
  std::string Get(absl::string_view name,
                  absl::string_view default_value = "") const;
  // For kInt flags (already validated by ParseArgs); `default_value` if absent.
  int64_t GetInt(absl::string_view name, int64_t default_value = 0) const;
  // For kNumber flags; `default_value` if absent.
  double GetNumber(absl::string_view name, double default_value = 0) const;
};

// Parses `args` (without the program name) against `specs`. With
// `stop_at_positional`, parsing ends at the first positional: it and every
// argument after it are returned verbatim in `positionals`; this lets a
// caller read global flags before a subcommand and hand the rest on.
//
// Errors are INVALID_ARGUMENT with a message meant for the user: unknown
// flag, missing value, a value for a boolean flag, a malformed number, a
// value outside `choices`.
absl::StatusOr<ParsedArgs> ParseArgs(const std::vector<std::string>& args,
                                     const std::vector<FlagSpec>& specs,
                                     bool stop_at_positional = false);

// Help lines for `specs`, one flag per entry, aligned:
//   "  --name NAME           Resource name.\n"
std::string FormatFlagHelp(const std::vector<FlagSpec>& specs);

// One help row: `term` indented by two, `help` (lines split at '\n') aligned
// in the help column.
std::string FormatHelpRow(absl::string_view term, absl::string_view help);

}  // namespace stepflow::cli

#endif  // STEPFLOW_TOOLS_CLI_ARGS_H_
