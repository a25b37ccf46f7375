// What a person types where the API wants an ARN: either the full ARN or just
// the resource's name, which is expanded in the CLI's ARN scope
// (--region/--account):
//
//   config::ArnScope scope;  // us-east-1, 123456789012
//   StateMachineArnFor(scope, "Orders")
//       == "arn:aws:states:us-east-1:123456789012:stateMachine:Orders"
//   StateMachineArnFor(scope, "arn:aws:states:...")  // returned unchanged
//
// Pure functions; thread-safe.
#ifndef STEPFLOW_TOOLS_CLI_NAMES_H_
#define STEPFLOW_TOOLS_CLI_NAMES_H_

#include <string>

#include "absl/strings/string_view.h"
#include "common/config/arn.h"

namespace stepflow::cli {

// True if `text` is an ARN ("arn:" prefix) rather than a bare name.
bool LooksLikeArn(absl::string_view text);

// `name_or_arn` unchanged if it is an ARN (so version and alias ARNs pass
// through), else the state machine ARN of that name in `scope`.
std::string StateMachineArnFor(const config::ArnScope& scope,
                               absl::string_view name_or_arn);

// Same rule for activities ("...:activity:NAME").
std::string ActivityArnFor(const config::ArnScope& scope,
                           absl::string_view name_or_arn);

}  // namespace stepflow::cli

#endif  // STEPFLOW_TOOLS_CLI_NAMES_H_
