// Renders Stepflow API responses as the AWS CLI prints the same operation's
// output, so scripts written against `aws stepfunctions ...` read ours too.
//
// The proto field names are AWS's in snake_case, so protobuf's JSON mapping
// (lowerCamelCase names) yields AWS's keys: state_machine_arn ->
// "stateMachineArn", execution_started_event_details ->
// "executionStartedEventDetails". On top of that mapping:
//   - 64-bit integers are JSON numbers ("id": 3), as in AWS; proto3 JSON
//     would print them as strings.
//   - Fields at their proto default are omitted (AWS omits absent members),
//     except repeated fields of the top-level message, which are always
//     present ("stateMachines": []), as AWS lists never are absent.
//   - Timestamps are RFC 3339 / ISO-8601 UTC strings
//     ("2024-05-01T12:00:00.250Z").
//
//   v1::DescribeExecutionResponse response = ...;
//   absl::StatusOr<std::string> text = RenderJson(response);  // pretty
//
// Pure functions; thread-safe.
#ifndef STEPFLOW_TOOLS_CLI_RENDER_H_
#define STEPFLOW_TOOLS_CLI_RENDER_H_

#include <string>

#include "absl/status/statusor.h"
#include "common/json/json.h"
#include "google/protobuf/message.h"
#include "google/protobuf/timestamp.pb.h"

namespace stepflow::cli {

// The AWS-shaped JSON document for `message`.
absl::StatusOr<json::Document> ToJson(const google::protobuf::Message& message);

// ToJson, pretty-printed with 2-space indentation and a trailing newline.
absl::StatusOr<std::string> RenderJson(
    const google::protobuf::Message& message);

// A timestamp for the text output format: RFC 3339 UTC, or "-" when unset.
std::string FormatTimestamp(const google::protobuf::Timestamp& timestamp);

}  // namespace stepflow::cli

#endif  // STEPFLOW_TOOLS_CLI_RENDER_H_
