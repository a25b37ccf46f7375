#include "services/eventbus/archive.h"

#include <cinttypes>
#include <cstdio>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/config/sharding.h"
#include "common/kafka/topic_admin.h"

namespace stepflow::eventbus {
namespace {

std::string EventsArnPrefix(const config::ArnScope& scope) {
  return absl::StrCat("arn:", scope.partition, ":events:", scope.region, ":",
                      scope.account, ":");
}

}  // namespace

std::string ArchiveArn(const config::ArnScope& scope, absl::string_view name) {
  return absl::StrCat(EventsArnPrefix(scope), "archive/", name);
}

std::string ReplayArn(const config::ArnScope& scope, absl::string_view name) {
  return absl::StrCat(EventsArnPrefix(scope), "replay/", name);
}

absl::optional<std::string> ArchiveNameFromArn(const config::ArnScope& scope,
                                               absl::string_view arn) {
  const std::string prefix = ArchiveArn(scope, "");
  if (!absl::StartsWith(arn, prefix) || arn.size() == prefix.size())
    return absl::nullopt;
  return std::string(arn.substr(prefix.size()));
}

std::string BusNameFromArn(absl::string_view arn) {
  constexpr absl::string_view kMarker = ":event-bus/";
  const size_t at = arn.find(kMarker);
  if (!absl::StartsWith(arn, "arn:") || at == absl::string_view::npos)
    return "";
  return std::string(arn.substr(at + kMarker.size()));
}

std::string ArchiveIncarnation(const v1::DescribeArchiveResponse& archive) {
  return absl::StrCat(
      absl::ToUnixMillis(FromTimestamp(archive.creation_time())));
}

std::string ArchiveTopic(const v1::DescribeArchiveResponse& archive) {
  std::string topic = absl::StrCat("stepflow.archive.", archive.archive_name(),
                                   ".", ArchiveIncarnation(archive));
  if (topic.size() <= kafka::kMaxTopicNameLength) return topic;
  char hash[17];
  std::snprintf(hash, sizeof(hash), "%016" PRIx64, config::StableHash(topic));
  topic.resize(kafka::kMaxTopicNameLength - 17);
  absl::StrAppend(&topic, ".", hash);
  return topic;
}

bool ReplayFinished(absl::string_view state) {
  return state == kReplayCompleted || state == kReplayCancelled ||
         state == kReplayFailed;
}

std::string VisibleReplayState(const v1::DescribeReplayResponse& replay,
                               bool cancel_requested) {
  if (cancel_requested && !ReplayFinished(replay.state()))
    return kReplayCancelling;
  return replay.state();
}

absl::Time FromTimestamp(const google::protobuf::Timestamp& timestamp) {
  return absl::FromUnixSeconds(timestamp.seconds()) +
         absl::Nanoseconds(timestamp.nanos());
}

google::protobuf::Timestamp ToTimestamp(absl::Time time) {
  const absl::Duration since = time - absl::UnixEpoch();
  google::protobuf::Timestamp out;
  out.set_seconds(absl::ToInt64Seconds(absl::Floor(since, absl::Seconds(1))));
  out.set_nanos(static_cast<int32_t>(
      absl::ToInt64Nanoseconds(since - absl::Floor(since, absl::Seconds(1)))));
  return out;
}

absl::optional<absl::Time> EventTime(const json::Value& event) {
  if (!event.IsObject() || !event.HasMember("time") ||
      !event["time"].IsString())
    return absl::nullopt;
  absl::Time time;
  std::string error;
  if (!absl::ParseTime(absl::RFC3339_full, event["time"].GetString(), &time,
                       &error)) {
    return absl::nullopt;
  }
  return time;
}

bool ReplaySends(const v1::DescribeReplayResponse& replay, int retention_days,
                 absl::Time time, absl::Time now) {
  if (time < FromTimestamp(replay.event_start_time()) ||
      time >= FromTimestamp(replay.event_end_time())) {
    return false;
  }
  return retention_days <= 0 || time >= now - absl::Hours(24) * retention_days;
}

absl::optional<std::string> ReplayedEvent(absl::string_view event_text,
                                          absl::string_view replay_name) {
  absl::StatusOr<json::Document> event = json::Parse(event_text);
  if (!event.ok() || !event->IsObject()) return absl::nullopt;
  json::Allocator& a = event->GetAllocator();
  event->RemoveMember(kReplayNameField);
  event->AddMember(
      kReplayNameField,
      json::Value(replay_name.data(),
                  static_cast<rapidjson::SizeType>(replay_name.size()), a),
      a);
  return json::Serialize(*event);
}

std::string ReplayNameOf(const json::Value& event) {
  if (!event.IsObject() || !event.HasMember(kReplayNameField) ||
      !event[kReplayNameField].IsString())
    return "";
  return event[kReplayNameField].GetString();
}

std::string ReplayDeliveryKey(absl::string_view event_id,
                              absl::string_view replay_name) {
  if (replay_name.empty()) return std::string(event_id);
  return absl::StrCat(event_id, "/replay/", replay_name);
}

bool ReplayTargetsRule(const v1::DescribeReplayResponse& replay,
                       absl::string_view rule_arn) {
  const auto& filter = replay.destination().filter_arns();
  if (filter.empty()) return true;
  for (const std::string& arn : filter) {
    if (arn == rule_arn) return true;
  }
  return false;
}

}  // namespace stepflow::eventbus
