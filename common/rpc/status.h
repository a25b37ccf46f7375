// Status plumbing for our gRPC services: conversion between absl::Status
// and grpc::Status, and AWS-style errors.
//
// Our API mirrors AWS Step Functions / EventBridge, whose errors have a name
// ("StateMachineDoesNotExist", "ValidationException") that clients switch
// on. We carry that name at the start of the status message, so it survives
// any hop that keeps code and message (gRPC, logs, the HTTP gateway):
//
//   return rpc::NotFound("StateMachineDoesNotExist",
//                        absl::StrCat("State Machine Does Not Exist: '",
//                                     arn, "'"));
//   // -> NOT_FOUND "StateMachineDoesNotExist: State Machine Does Not
//   //    Exist: 'arn:...'"
//
//   absl::Status s = rpc::FromGrpcStatus(stub->DescribeStateMachine(...));
//   if (rpc::ErrorName(s) == "StateMachineDoesNotExist") { ... }
//
//   grpc::Status Service::Foo(...) { return rpc::ToGrpcStatus(DoFoo(...)); }
//
// Thread-safety: all functions are pure.
#ifndef STEPFLOW_COMMON_RPC_STATUS_H_
#define STEPFLOW_COMMON_RPC_STATUS_H_

#include <string_view>

#include "absl/status/status.h"
#include "grpcpp/support/status.h"

namespace stepflow::rpc {

// Same code (the numbering is shared) and message; payloads and error
// details are dropped. Codes outside gRPC's range become UNKNOWN.
grpc::Status ToGrpcStatus(const absl::Status& s);
absl::Status FromGrpcStatus(const grpc::Status& s);

// `code` with message "<error_name>: <message>" ("<error_name>:" if
// `message` is empty). `error_name` should be an identifier starting with
// an upper-case letter (dots allowed), or ErrorName will not find it.
[[nodiscard]] absl::Status AwsError(absl::StatusCode code,
                                    std::string_view error_name,
                                    std::string_view message);

[[nodiscard]] absl::Status NotFound(std::string_view error_name,
                                    std::string_view message);
[[nodiscard]] absl::Status AlreadyExists(std::string_view error_name,
                                         std::string_view message);
[[nodiscard]] absl::Status InvalidArgument(std::string_view error_name,
                                           std::string_view message);
[[nodiscard]] absl::Status FailedPrecondition(std::string_view error_name,
                                              std::string_view message);
[[nodiscard]] absl::Status ResourceExhausted(std::string_view error_name,
                                             std::string_view message);
// UNIMPLEMENTED "<what> is not implemented yet".
[[nodiscard]] absl::Status Unimplemented(std::string_view what);

// The AWS error name of `s`: the part of its message before the first ": "
// (or before a final ":") if that part looks like an identifier
// ([A-Z][A-Za-z0-9_.]*, at most 128 characters); "" otherwise, and for OK.
// The view points into `s`, which must outlive it.
std::string_view ErrorName(const absl::Status& s);
// The message without the error name and its ": " (the whole message if
// there is no error name). Points into `s`.
std::string_view ErrorMessage(const absl::Status& s);

}  // namespace stepflow::rpc

#endif  // STEPFLOW_COMMON_RPC_STATUS_H_
