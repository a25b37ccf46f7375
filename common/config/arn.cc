#include "common/config/arn.h"

#include <algorithm>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/config/sharding.h"

namespace stepflow::config {
namespace {

std::string Prefix(const ArnScope& scope) {
  return absl::StrCat("arn:", scope.partition, ":states:", scope.region, ":",
                      scope.account, ":");
}

absl::Status InvalidArn(absl::string_view arn, absl::string_view why) {
  return absl::InvalidArgumentError(
      absl::StrCat("InvalidArn: Invalid Arn: '", why, ": ", arn, "'"));
}

absl::StatusOr<ParsedArn> ParseScoped(const ArnScope& scope,
                                      absl::string_view arn,
                                      absl::string_view type, size_t parts) {
  if (arn.substr(0, 4) != "arn:") {
    return InvalidArn(arn, "Invalid ARN prefix");
  }
  auto parsed = ParseArn(arn);
  if (!parsed.ok()) return parsed.status();
  if (parsed->service != "states" || parsed->resource_type != type ||
      parsed->resource.size() != parts) {
    return InvalidArn(arn, "Resource type not valid in this context");
  }
  if (!absl::StartsWith(arn, Prefix(scope))) {
    return InvalidArn(arn, "Invalid region or account");
  }
  for (const auto& part : parsed->resource) {
    if (part.empty()) return InvalidArn(arn, "Invalid resource name");
  }
  return parsed;
}

}  // namespace

std::string StateMachineArn(const ArnScope& scope, absl::string_view name) {
  return absl::StrCat(Prefix(scope), "stateMachine:", name);
}

std::string ExecutionArn(const ArnScope& scope, absl::string_view state_machine,
                         absl::string_view execution) {
  return absl::StrCat(Prefix(scope), "execution:", state_machine, ":",
                      execution);
}

std::string ActivityArn(const ArnScope& scope, absl::string_view name) {
  return absl::StrCat(Prefix(scope), "activity:", name);
}

absl::StatusOr<ParsedArn> ParseArn(absl::string_view arn) {
  // Views, so that only the parts kept are copied (every call the gateway
  // serves parses an ARN or two).
  std::vector<absl::string_view> parts = absl::StrSplit(arn, ':');
  if (parts.size() < 7 || parts[0] != "arn") {
    return InvalidArn(arn, "Invalid ARN prefix");
  }
  ParsedArn parsed;
  parsed.service = std::string(parts[2]);
  parsed.resource_type = std::string(parts[5]);
  parsed.resource.reserve(parts.size() - 6);
  for (size_t i = 6; i < parts.size(); ++i) parsed.resource.emplace_back(parts[i]);
  return parsed;
}

absl::StatusOr<std::string> StateMachineNameFromArn(const ArnScope& scope,
                                                    absl::string_view arn) {
  auto parsed = ParseScoped(scope, arn, "stateMachine", 1);
  if (!parsed.ok()) return parsed.status();
  return parsed->resource[0];
}

absl::StatusOr<std::pair<std::string, std::string>> ExecutionNamesFromArn(
    const ArnScope& scope, absl::string_view arn) {
  auto parsed = ParseScoped(scope, arn, "execution", 2);
  if (!parsed.ok()) return parsed.status();
  return std::make_pair(parsed->resource[0], parsed->resource[1]);
}

absl::StatusOr<std::string> ActivityNameFromArn(const ArnScope& scope,
                                                absl::string_view arn) {
  auto parsed = ParseScoped(scope, arn, "activity", 1);
  if (!parsed.ok()) return parsed.status();
  return parsed->resource[0];
}

absl::StatusOr<StateMachineRef> ParseStateMachineRef(const ArnScope& scope,
                                                     absl::string_view arn) {
  const size_t colons = static_cast<size_t>(std::count(arn.begin(), arn.end(), ':'));
  auto parsed = ParseScoped(scope, arn, "stateMachine", colons >= 7 ? 2 : 1);
  if (!parsed.ok()) return parsed.status();
  StateMachineRef ref;
  ref.name = parsed->resource[0];
  ref.state_machine_arn = StateMachineArn(scope, ref.name);
  if (parsed->resource.size() == 2) {
    const std::string& qualifier = parsed->resource[1];
    const bool digits = std::all_of(qualifier.begin(), qualifier.end(),
                                    [](char c) { return c >= '0' && c <= '9'; });
    if (digits) {
      if (!absl::SimpleAtoi(qualifier, &ref.version) || ref.version <= 0) {
        return InvalidArn(arn, "Invalid version number");
      }
    } else if (ValidateAliasName(qualifier).ok()) {
      ref.alias = qualifier;
    } else {
      return InvalidArn(arn, "Invalid alias name");
    }
  }
  return ref;
}

absl::StatusOr<MapRunRef> ParseMapRunArn(const ArnScope& scope, absl::string_view arn) {
  auto parsed = ParseScoped(scope, arn, "mapRun", 2);
  if (!parsed.ok()) return parsed.status();
  MapRunRef ref;
  ref.run_name = parsed->resource[0];
  ref.run_id = parsed->resource[1];
  const size_t slash = ref.run_name.find('/');
  if (slash == std::string::npos || slash == 0 || slash + 1 == ref.run_name.size()) {
    return InvalidArn(arn, "Invalid map run name");
  }
  std::optional<uint64_t> hash = RoutingHashOfId(ref.run_id);
  if (!hash.has_value()) return InvalidArn(arn, "Invalid map run id");
  ref.routing_hash = *hash;
  return ref;
}

std::optional<uint64_t> MapRunChildRoutingHash(const ArnScope& scope, absl::string_view arn) {
  auto names = ExecutionNamesFromArn(scope, arn);
  if (!names.ok() || names->first.find('/') == std::string::npos) return std::nullopt;
  return RoutingHashOfId(names->second);
}

std::string StateMachineVersionArn(absl::string_view state_machine_arn, int64_t version) {
  return absl::StrCat(state_machine_arn, ":", version);
}

std::string StateMachineAliasArn(absl::string_view state_machine_arn, absl::string_view alias) {
  return absl::StrCat(state_machine_arn, ":", alias);
}

absl::Status ValidateAliasName(absl::string_view name) {
  auto invalid = [&](absl::string_view constraint) {
    return absl::InvalidArgumentError(absl::StrCat(
        "ValidationException: 1 validation error detected: Value '", name,
        "' at 'name' failed to satisfy constraint: ", constraint));
  };
  if (name.empty() || name.size() > 80) {
    return invalid("Member must have length between 1 and 80");
  }
  bool non_digit = false;
  for (char c : name) {
    const bool digit = c >= '0' && c <= '9';
    const bool other = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-' ||
                       c == '_' || c == '.';
    if (!digit && !other) {
      return invalid("Member must satisfy regular expression pattern: "
                     "^(?=.*[a-zA-Z_\\-\\.])[a-zA-Z0-9_\\-\\.]+$");
    }
    non_digit |= other;
  }
  if (!non_digit) {
    return invalid("Member must satisfy regular expression pattern: "
                   "^(?=.*[a-zA-Z_\\-\\.])[a-zA-Z0-9_\\-\\.]+$");
  }
  return absl::OkStatus();
}

absl::Status ValidateResourceName(absl::string_view name) {
  auto invalid = [&] {
    return absl::InvalidArgumentError(
        absl::StrCat("InvalidName: Invalid Name: '", name, "'"));
  };
  if (name.empty() || name.size() > 80) return invalid();
  for (unsigned char c : name) {
    if (c <= 0x20 || c == 0x7f || (c >= 0x80 && c <= 0x9f)) return invalid();
    switch (c) {
      case '<': case '>': case '{': case '}': case '[': case ']':
      case '?': case '*': case '"': case '#': case '%': case '\\':
      case '^': case '|': case '~': case '`': case '$': case '&':
      case ',': case ';': case ':': case '/':
        return invalid();
      default:
        break;
    }
  }
  return absl::OkStatus();
}

}  // namespace stepflow::config
