#include "services/eventbus/envelope.h"

#include <cinttypes>
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "common/config/sharding.h"
#include "common/json/json.h"

namespace stepflow::eventbus {
namespace {

// A version-4-shaped UUID from 128 hash bits of `key`.
std::string UuidFromKey(absl::string_view key) {
  const uint64_t high = config::StableHash(key);
  const uint64_t low = config::StableHash(absl::StrCat(key, "#", high));
  char text[37];
  std::snprintf(text, sizeof(text), "%08" PRIx64 "-%04" PRIx64 "-4%03" PRIx64 "-%04" PRIx64
                "-%012" PRIx64,
                high >> 32, (high >> 16) & 0xffff, high & 0xfff,
                ((low >> 48) & 0x3fff) | 0x8000, low & uint64_t{0xffffffffffff});
  return text;
}

}  // namespace

std::optional<EntryError> CheckEntryFields(const v1::PutEventsRequestEntry& entry) {
  auto invalid = [](absl::string_view field, absl::string_view reason) {
    return EntryError{"InvalidArgument",
                      absl::StrCat("Parameter ", field, " is not valid. Reason: ", reason)};
  };
  if (entry.source().empty()) return invalid("Source", "Source is a required argument.");
  if (entry.detail_type().empty()) {
    return invalid("DetailType", "DetailType is a required argument.");
  }
  if (entry.detail().empty()) return invalid("Detail", "Detail is a required argument.");
  if (entry.source().size() > 256) return invalid("Source", "Source exceeds 256 characters.");
  if (entry.detail_type().size() > 128) {
    return invalid("DetailType", "DetailType exceeds 128 characters.");
  }
  absl::StatusOr<json::Document> detail = json::Parse(entry.detail());
  if (!detail.ok() || !detail->IsObject()) {
    return EntryError{"MalformedDetail", "Detail is malformed."};
  }
  for (const std::string& resource : entry.resources()) {
    if (resource.empty() || resource.size() > 2048) {
      return invalid("Resources", "each resource must have 1 to 2048 characters.");
    }
  }
  return std::nullopt;
}

std::string EventEnvelope(const config::ArnScope& scope, absl::string_view id,
                          const v1::PutEventsRequestEntry& entry,
                          absl::Time time) {
  json::Document event;
  event.SetObject();
  json::Allocator& a = event.GetAllocator();
  auto text = [&a](absl::string_view s) {
    return json::Value(s.data(), static_cast<rapidjson::SizeType>(s.size()), a);
  };
  event.AddMember("version", "0", a);
  event.AddMember("id", text(id), a);
  event.AddMember("detail-type", text(entry.detail_type()), a);
  event.AddMember("source", text(entry.source()), a);
  event.AddMember("account", text(scope.account), a);
  event.AddMember(
      "time",
      text(absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", time, absl::UTCTimeZone())),
      a);
  event.AddMember("region", text(scope.region), a);
  json::Value resources(rapidjson::kArrayType);
  for (const std::string& resource : entry.resources())
    resources.PushBack(text(resource), a);
  event.AddMember("resources", resources, a);
  absl::StatusOr<json::Document> detail = json::Parse(entry.detail());
  event.AddMember("detail",
                  detail.ok() ? json::Copy(*detail, a)
                              : json::Value(rapidjson::kObjectType),
                  a);
  return json::Serialize(event);
}


std::string ExecutionStatusChangeEvent(const config::ArnScope& scope,
                                       const ExecutionStatus& execution, absl::Time time) {
  json::Document detail;
  detail.SetObject();
  json::Allocator& a = detail.GetAllocator();
  auto text = [&a](absl::string_view s) {
    return json::Value(s.data(), static_cast<rapidjson::SizeType>(s.size()), a);
  };
  auto text_or_null = [&](const std::string& s, bool present) {
    return present ? text(s) : json::Value(rapidjson::kNullType);
  };
  const bool closed = execution.stop_date != absl::InfinitePast();
  const bool succeeded = execution.status == "SUCCEEDED";
  const bool failed = closed && !succeeded;
  detail.AddMember("executionArn", text(execution.execution_arn), a);
  detail.AddMember("stateMachineArn", text(execution.state_machine_arn), a);
  detail.AddMember("name", text(execution.name), a);
  detail.AddMember("status", text(execution.status), a);
  // Dates are Unix milliseconds, as AWS writes them in these events.
  detail.AddMember("startDate", json::Value(absl::ToUnixMillis(execution.start_date)), a);
  detail.AddMember("stopDate",
                   closed ? json::Value(absl::ToUnixMillis(execution.stop_date))
                          : json::Value(rapidjson::kNullType),
                   a);
  detail.AddMember("input", text(execution.input), a);
  detail.AddMember("output", text_or_null(execution.output, succeeded), a);
  json::Value included(rapidjson::kObjectType);
  included.AddMember("included", true, a);
  detail.AddMember("inputDetails", json::Value(included, a), a);
  detail.AddMember("outputDetails",
                   succeeded ? json::Value(included, a) : json::Value(rapidjson::kNullType), a);
  detail.AddMember("error", text_or_null(execution.error, failed && !execution.error.empty()), a);
  detail.AddMember("cause", text_or_null(execution.cause, failed && !execution.cause.empty()), a);
  detail.AddMember("redriveCount", execution.redrive_count, a);

  v1::PutEventsRequestEntry entry;
  entry.set_source(kStatusChangeSource);
  entry.set_detail_type(kStatusChangeDetailType);
  entry.add_resources(execution.execution_arn);
  entry.set_detail(json::Serialize(detail));
  const std::string id = UuidFromKey(absl::StrCat(execution.execution_arn, "|", execution.status,
                                                  "|", execution.redrive_count));
  return EventEnvelope(scope, id, entry, time);
}

}  // namespace stepflow::eventbus
