#include "tools/cli/names.h"

namespace stepflow::cli {

bool LooksLikeArn(absl::string_view text) {
  return text.substr(0, 4) == "arn:";
}

std::string StateMachineArnFor(const config::ArnScope& scope,
                               absl::string_view name_or_arn) {
  if (LooksLikeArn(name_or_arn)) return std::string(name_or_arn);
  return config::StateMachineArn(scope, name_or_arn);
}

std::string ActivityArnFor(const config::ArnScope& scope,
                           absl::string_view name_or_arn) {
  if (LooksLikeArn(name_or_arn)) return std::string(name_or_arn);
  return config::ActivityArn(scope, name_or_arn);
}

}  // namespace stepflow::cli
