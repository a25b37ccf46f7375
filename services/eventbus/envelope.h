// The events the bus stores: AWS's envelope around an entry, and the
// "Step Functions Execution Status Change" events shard servers publish to
// the default bus when an execution starts, is redriven or closes.
//
//   std::string stored = EventEnvelope(scope, event_id, entry, now);
//   std::string change = ExecutionStatusChangeEvent(scope, record_fields, now);
#ifndef STEPFLOW_SERVICES_EVENTBUS_ENVELOPE_H_
#define STEPFLOW_SERVICES_EVENTBUS_ENVELOPE_H_

#include <cstdint>
#include <optional>
#include <string>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/config/arn.h"
#include "stepflow/v1/events.pb.h"

namespace stepflow::eventbus {

// The stored event: AWS's envelope ({"version":"0","id",...,"detail"}),
// `detail` being a JSON object's text. `time` is written RFC 3339 UTC with
// whole seconds, as AWS does.
std::string EventEnvelope(const config::ArnScope& scope, absl::string_view id,
                          const v1::PutEventsRequestEntry& entry, absl::Time time);

// Why PutEvents refuses one entry (its ErrorCode and ErrorMessage).
struct EntryError {
  std::string code;
  std::string message;
};

// AWS's checks of a PutEvents entry's Source, DetailType, Detail (a JSON
// object) and Resources; the caller checks the bus.
std::optional<EntryError> CheckEntryFields(const v1::PutEventsRequestEntry& entry);

// What a status change event says about its execution.
struct ExecutionStatus {
  std::string execution_arn;
  std::string state_machine_arn;
  std::string name;
  std::string status;  // RUNNING, SUCCEEDED, FAILED, TIMED_OUT, ABORTED
  absl::Time start_date;
  absl::Time stop_date = absl::InfinitePast();  // InfinitePast: still running
  std::string input;
  std::string output;  // when SUCCEEDED
  std::string error;
  std::string cause;
  int redrive_count = 0;
};

inline constexpr char kStatusChangeSource[] = "aws.states";
inline constexpr char kStatusChangeDetailType[] = "Step Functions Execution Status Change";

// The envelope of a status change, as AWS puts it on the default bus. Its
// id is derived from (execution, status, redrive count), so publishing the
// same change twice yields the same event, which targets start once.
std::string ExecutionStatusChangeEvent(const config::ArnScope& scope,
                                       const ExecutionStatus& execution, absl::Time time);

}  // namespace stepflow::eventbus

#endif  // STEPFLOW_SERVICES_EVENTBUS_ENVELOPE_H_
