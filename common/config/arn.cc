#include "common/config/arn.h"

#include <algorithm>

#include "absl/container/inlined_vector.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/config/sharding.h"
#include "common/status/status_macros.h"

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

// An ARN's ':'-separated parts, as views of it.
using ArnParts = absl::InlinedVector<absl::string_view, 10>;

ArnParts SplitArn(absl::string_view arn) {
  ArnParts parts;
  size_t begin = 0;
  while (true) {
    const size_t colon = arn.find(':', begin);
    if (colon == absl::string_view::npos) {
      parts.push_back(arn.substr(begin));
      return parts;
    }
    parts.push_back(arn.substr(begin, colon - begin));
    begin = colon + 1;
  }
}

// Checks that `arn` names a resource of `type` with `resource_parts` parts
// in this scope, and gives its parts (the resource's from index 6). Views,
// not copies: every call the gateway serves parses an ARN or two.
absl::StatusOr<ArnParts> ParseScopedParts(const ArnScope& scope, absl::string_view arn,
                                          absl::string_view type, size_t resource_parts) {
  if (arn.substr(0, 4) != "arn:") {
    return InvalidArn(arn, "Invalid ARN prefix");
  }
  ArnParts parts = SplitArn(arn);
  if (parts.size() < 7 || parts[0] != "arn") {
    return InvalidArn(arn, "Invalid ARN prefix");
  }
  if (parts[2] != "states" || parts[5] != type || parts.size() - 6 != resource_parts) {
    return InvalidArn(arn, "Resource type not valid in this context");
  }
  if (parts[1] != scope.partition || parts[3] != scope.region || parts[4] != scope.account) {
    return InvalidArn(arn, "Invalid region or account");
  }
  for (size_t i = 6; i < parts.size(); ++i) {
    if (parts[i].empty()) return InvalidArn(arn, "Invalid resource name");
  }
  return parts;
}

absl::StatusOr<ParsedArn> ParseScoped(const ArnScope& scope, absl::string_view arn,
                                      absl::string_view type, size_t resource_parts) {
  ASSIGN_OR_RETURN(ArnParts parts, ParseScopedParts(scope, arn, type, resource_parts));
  ParsedArn parsed;
  parsed.service = std::string(parts[2]);
  parsed.resource_type = std::string(parts[5]);
  parsed.resource.reserve(parts.size() - 6);
  for (size_t i = 6; i < parts.size(); ++i) parsed.resource.emplace_back(parts[i]);
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
  ArnParts parts = SplitArn(arn);
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
  const size_t resource_parts = colons >= 7 ? 2 : 1;
  ASSIGN_OR_RETURN(ArnParts parts, ParseScopedParts(scope, arn, "stateMachine", resource_parts));
  StateMachineRef ref;
  ref.name = std::string(parts[6]);
  if (resource_parts == 1) {
    ref.state_machine_arn = std::string(arn);  // already StateMachineArn(scope, name)
    return ref;
  }
  ref.state_machine_arn = StateMachineArn(scope, ref.name);
  const absl::string_view qualifier = parts[7];
  const bool digits =
      std::all_of(qualifier.begin(), qualifier.end(), [](char c) { return c >= '0' && c <= '9'; });
  if (digits) {
    if (!absl::SimpleAtoi(qualifier, &ref.version) || ref.version <= 0) {
      return InvalidArn(arn, "Invalid version number");
    }
  } else if (ValidateAliasName(qualifier).ok()) {
    ref.alias = std::string(qualifier);
  } else {
    return InvalidArn(arn, "Invalid alias name");
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
