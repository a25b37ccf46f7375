// Archives and replays: the names, states and rules the gateway (which
// takes the API calls) and the eventbus (which archives and replays) share.
// Pure functions.
//
// An archive records the events put on its source bus that match its
// optional pattern, from its creation on. The eventbus's dispatcher copies
// each such event, as its delivery loop reads it, to the archive's own Kafka
// topic (ArchiveTopic). A topic per archive, not one shared topic: Kafka
// then keeps and expires an archive's events by the archive's own
// retention (retention.ms from RetentionDays where the brokers take topic
// configuration), a replay reads only the archive it replays, and deleting
// an archive leaves nothing of it in the topic a re-created archive of the
// same name reads (the topic name holds the creation time). Deleted
// archives' topics are left to operators or to their retention.
//
// A replay copies the archived events whose `time` is in [EventStartTime,
// EventEndTime) back onto the destination bus, each with AWS's
// "replay-name" field added; the dispatcher delivers such an event only to
// the rules the replay names (all of the bus's when it names none), gives
// its executions names of their own (ReplayDeliveryKey), and archives it
// never again.
#ifndef STEPFLOW_SERVICES_EVENTBUS_ARCHIVE_H_
#define STEPFLOW_SERVICES_EVENTBUS_ARCHIVE_H_

#include <string>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/optional.h"
#include "common/config/arn.h"
#include "common/json/json.h"
#include "google/protobuf/timestamp.pb.h"
#include "stepflow/v1/events.pb.h"

namespace stepflow::eventbus {

inline constexpr char kArchiveEnabled[] = "ENABLED";

inline constexpr char kReplayStarting[] = "STARTING";
inline constexpr char kReplayRunning[] = "RUNNING";
inline constexpr char kReplayCancelling[] = "CANCELLING";
inline constexpr char kReplayCompleted[] = "COMPLETED";
inline constexpr char kReplayCancelled[] = "CANCELLED";
inline constexpr char kReplayFailed[] = "FAILED";

// The envelope field marking a replayed event, as AWS names it.
inline constexpr char kReplayNameField[] = "replay-name";

// arn:<partition>:events:<region>:<account>:archive/<name>
std::string ArchiveArn(const config::ArnScope& scope, absl::string_view name);
// arn:<partition>:events:<region>:<account>:replay/<name>
std::string ReplayArn(const config::ArnScope& scope, absl::string_view name);
// The name in an archive ARN of `scope`; nullopt for anything else.
absl::optional<std::string> ArchiveNameFromArn(const config::ArnScope& scope,
                                               absl::string_view arn);

// The bus name of an event bus ARN (what follows "event-bus/"); "" for
// anything else. The eventbus matches buses by name: it does not know the
// cluster's ARN scope.
std::string BusNameFromArn(absl::string_view arn);

// Identifies one archive among those ever created with its name: its
// creation time in Unix milliseconds.
std::string ArchiveIncarnation(const v1::DescribeArchiveResponse& archive);
// "stepflow.archive.<name>.<incarnation>", or for names too long for Kafka
// a prefix of it and a hash of the whole.
std::string ArchiveTopic(const v1::DescribeArchiveResponse& archive);

// COMPLETED, CANCELLED and FAILED: the replay is over.
bool ReplayFinished(absl::string_view state);
// The state a caller sees: CANCELLING once a cancel was asked for and the
// replay is not over yet.
std::string VisibleReplayState(const v1::DescribeReplayResponse& replay,
                               bool cancel_requested);

absl::Time FromTimestamp(const google::protobuf::Timestamp& timestamp);
google::protobuf::Timestamp ToTimestamp(absl::Time time);

// The `time` of an event envelope; nullopt when it has none that parses.
absl::optional<absl::Time> EventTime(const json::Value& event);

// Whether a replay sends an archived event of `time`: in [EventStartTime,
// EventEndTime) and, for a retention of N > 0 days, not older than N days
// at `now`.
bool ReplaySends(const v1::DescribeReplayResponse& replay, int retention_days,
                 absl::Time time, absl::Time now);

// `event_text` with "replay-name": `replay_name` added (replacing one it
// had); nullopt if it is not a JSON object.
absl::optional<std::string> ReplayedEvent(absl::string_view event_text,
                                          absl::string_view replay_name);

// The replay an event envelope was sent by; "" for an original event.
std::string ReplayNameOf(const json::Value& event);

// What execution names of a delivery derive from: the event id, and for a
// replayed event also the replay, so a replay starts new executions rather
// than finding the original delivery's.
std::string ReplayDeliveryKey(absl::string_view event_id,
                              absl::string_view replay_name);

// Whether the dispatcher delivers a replayed event to `rule_arn`: the
// replay names no rules, or names this one.
bool ReplayTargetsRule(const v1::DescribeReplayResponse& replay,
                       absl::string_view rule_arn);

}  // namespace stepflow::eventbus

#endif  // STEPFLOW_SERVICES_EVENTBUS_ARCHIVE_H_
