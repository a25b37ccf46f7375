// Early-return helpers for absl::Status / absl::StatusOr (this Abseil release
// has no status_macros.h of its own).
//
//   absl::Status Load() {
//     RETURN_IF_ERROR(Open());
//     ASSIGN_OR_RETURN(std::string bytes, ReadAll());
//     ...
//   }
#ifndef STEPFLOW_COMMON_STATUS_STATUS_MACROS_H_
#define STEPFLOW_COMMON_STATUS_STATUS_MACROS_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define STEPFLOW_STATUS_CONCAT_INNER_(a, b) a##b
#define STEPFLOW_STATUS_CONCAT_(a, b) STEPFLOW_STATUS_CONCAT_INNER_(a, b)

#define RETURN_IF_ERROR(expr)                             \
  do {                                                    \
    ::absl::Status stepflow_status_ = (expr);             \
    if (!stepflow_status_.ok()) return stepflow_status_;  \
  } while (0)

#define ASSIGN_OR_RETURN(lhs, expr)                                          \
  STEPFLOW_ASSIGN_OR_RETURN_IMPL_(                                           \
      STEPFLOW_STATUS_CONCAT_(stepflow_statusor_, __LINE__), lhs, expr)

#define STEPFLOW_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, expr) \
  auto statusor = (expr);                                    \
  if (!statusor.ok()) return std::move(statusor).status();   \
  lhs = std::move(statusor).value()

#endif  // STEPFLOW_COMMON_STATUS_STATUS_MACROS_H_
