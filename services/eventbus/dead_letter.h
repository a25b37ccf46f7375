// Dead letters: where the eventbus stores a delivery it gave up (see
// dispatcher.h). Pure functions, shared by the gateway (which checks a
// target's DeadLetterConfig and creates its topic in PutTargets) and the
// eventbus (which writes to it).
//
// On AWS a target's DeadLetterConfig.Arn names an SQS queue,
// arn:PARTITION:sqs:REGION:ACCOUNT:QUEUE. Stepflow has no SQS: the queue is
// the Kafka topic "stepflow.dead-letter.QUEUE" (DeadLetterTopicForArn). A
// queue name is at most 80 characters of [A-Za-z0-9_-] with an optional
// ".fifo" ending, all of them legal in a topic name, so the mapping is
// one-to-one for the queues of one account and region. Targets without a
// DeadLetterConfig share kSharedDeadLetterTopic.
#ifndef STEPFLOW_SERVICES_EVENTBUS_DEAD_LETTER_H_
#define STEPFLOW_SERVICES_EVENTBUS_DEAD_LETTER_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "stepflow/v1/events.pb.h"

namespace stepflow::eventbus {

// The dead letters of targets without a DeadLetterConfig.
inline constexpr char kSharedDeadLetterTopic[] = "stepflow.eventbus.dead-letter";
// The prefix of a DeadLetterConfig's topic.
inline constexpr char kDeadLetterTopicPrefix[] = "stepflow.dead-letter.";

// The topic of the SQS queue ARN `arn`; INVALID_ARGUMENT (saying what is
// wrong) when `arn` is not an SQS queue ARN.
absl::StatusOr<std::string> DeadLetterTopicForArn(absl::string_view arn);

// The topic `target`'s dead letters go to: its DeadLetterConfig's, or the
// shared one when it has none (or, which PutTargets refuses, a bad one).
std::string DeadLetterTopicFor(const v1::Target& target);

}  // namespace stepflow::eventbus

#endif  // STEPFLOW_SERVICES_EVENTBUS_DEAD_LETTER_H_
