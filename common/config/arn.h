// Amazon Resource Names for Stepflow's resources, built and checked the way
// AWS Step Functions does, so clients and tooling that parse ARNs keep
// working:
//
//   arn:aws:states:us-east-1:123456789012:stateMachine:Orders
//   arn:aws:states:us-east-1:123456789012:execution:Orders:run-1
//   arn:aws:states:us-east-1:123456789012:activity:charge-card
//
// Region and account come from configuration (ArnScope). Pure functions.
#ifndef STEPFLOW_COMMON_CONFIG_ARN_H_
#define STEPFLOW_COMMON_CONFIG_ARN_H_

#include <cstdint>
#include <optional>
#include <string>
#include "absl/strings/string_view.h"

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace stepflow::config {

struct ArnScope {
  std::string partition = "aws";
  std::string region = "us-east-1";
  std::string account = "123456789012";
};

std::string StateMachineArn(const ArnScope& scope, absl::string_view name);
std::string ExecutionArn(const ArnScope& scope, absl::string_view state_machine,
                         absl::string_view execution);
std::string ActivityArn(const ArnScope& scope, absl::string_view name);

struct ParsedArn {
  std::string service;        // "states"
  std::string resource_type;  // "stateMachine", "execution", "activity", ...
  std::vector<std::string> resource;  // the ':'-separated parts after the type
};

// Splits an ARN; INVALID_ARGUMENT "InvalidArn: Invalid Arn: '...'" if it is
// not one.
absl::StatusOr<ParsedArn> ParseArn(absl::string_view arn);

// The name of the state machine `arn` names; InvalidArn if it is not a
// state machine ARN of this scope.
absl::StatusOr<std::string> StateMachineNameFromArn(const ArnScope& scope,
                                                    absl::string_view arn);
// (state machine name, execution name) of an execution ARN.
absl::StatusOr<std::pair<std::string, std::string>> ExecutionNamesFromArn(
    const ArnScope& scope, absl::string_view arn);
absl::StatusOr<std::string> ActivityNameFromArn(const ArnScope& scope,
                                                absl::string_view arn);

// A state machine ARN, possibly qualified by a version number or an alias
// name: stateMachine:Orders, stateMachine:Orders:3, stateMachine:Orders:prod.
struct StateMachineRef {
  std::string state_machine_arn;  // always unqualified
  std::string name;
  int64_t version = 0;  // > 0 for a version ARN
  std::string alias;    // non-empty for an alias ARN
  bool qualified() const { return version > 0 || !alias.empty(); }
};

// Parses any of the three forms; InvalidArn otherwise.
absl::StatusOr<StateMachineRef> ParseStateMachineRef(const ArnScope& scope,
                                                     absl::string_view arn);
std::string StateMachineVersionArn(absl::string_view state_machine_arn, int64_t version);
std::string StateMachineAliasArn(absl::string_view state_machine_arn, absl::string_view alias);

// A map run ARN, arn:...:mapRun:<machine>/<label or id>:<run id>. Its run
// id carries the parent execution's routing hash (see RoutableId).
struct MapRunRef {
  std::string run_name;  // <machine>/<label or id>
  std::string run_id;
  uint64_t routing_hash = 0;
};
// InvalidArn unless `arn` is a map run ARN of this scope minted by Stepflow.
absl::StatusOr<MapRunRef> ParseMapRunArn(const ArnScope& scope, absl::string_view arn);

// The routing hash of a child execution of a map run
// (arn:...:execution:<machine>/<label or id>:<child id>), nullopt when `arn`
// names no such child (a top-level execution's state machine part has no
// '/').
std::optional<uint64_t> MapRunChildRoutingHash(const ArnScope& scope, absl::string_view arn);

// AWS's rule for alias names: 1-80 characters of letters, digits, '-', '_'
// and '.', not all digits (that would read as a version). Error:
// "ValidationException: ...".
absl::Status ValidateAliasName(absl::string_view name);

// AWS's rule for state machine, execution and activity names: 1-80
// characters, none of whitespace, brackets, wildcards, control characters or
// " # % \ ^ | ~ ` $ & , ; : /. Error: "InvalidName: Invalid Name: '...'".
absl::Status ValidateResourceName(absl::string_view name);

}  // namespace stepflow::config

#endif  // STEPFLOW_COMMON_CONFIG_ARN_H_
