#include "services/gateway/event_bridge.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <map>
#include <set>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "common/asl/jsonpath.h"
#include "common/json/json.h"
#include "common/kafka/client.h"
#include "common/kafka/topic_admin.h"
#include "common/log/log.h"
#include "common/patterns/pattern.h"
#include "common/rpc/status.h"
#include "common/status/status_macros.h"
#include "services/eventbus/archive.h"
#include "services/eventbus/catalog.h"
#include "services/eventbus/dead_letter.h"
#include "services/eventbus/envelope.h"
#include "services/eventbus/schedule.h"
#include "services/gateway/validation.h"

namespace stepflow::gateway {
namespace {

constexpr char kComponent[] = "gateway";
constexpr absl::Duration kDefaultDeadline = absl::Seconds(30);
// Longest wait for Kafka inside one call.
constexpr absl::Duration kKafkaTimeout = absl::Seconds(10);
// Time kept back from the caller's deadline to send the reply.
constexpr absl::Duration kReplyMargin = absl::Milliseconds(500);
constexpr int kDefaultListLimit = 100;
constexpr int kMaxListLimit = 100;
constexpr int kMaxTargetsPerRule = 5;
constexpr char kNamePattern[] =
    "Member must satisfy regular expression pattern: [\\.\\-_A-Za-z0-9]+";
constexpr char kEnabled[] = "ENABLED";
constexpr char kDisabled[] = "DISABLED";

absl::Time DeadlineOf(const grpc::ServerContext* context) {
  return std::min(absl::FromChrono(context->deadline()),
                  absl::Now() + kDefaultDeadline);
}

bool IsNameChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_';
}

// A bus, rule or target name: [\.\-_A-Za-z0-9]+ of min..max characters.
absl::Status ValidateName(absl::string_view field, absl::string_view name,
                          size_t max) {
  RETURN_IF_ERROR(ValidateLength(field, name, 1, max));
  if (!std::all_of(name.begin(), name.end(), IsNameChar)) {
    return ConstraintViolation(field, name, kNamePattern);
  }
  return absl::OkStatus();
}

absl::Status BusNotFound(absl::string_view bus) {
  return rpc::NotFound("ResourceNotFoundException",
                       absl::StrCat("Event bus ", bus, " does not exist."));
}

absl::Status RuleNotFound(absl::string_view rule, absl::string_view bus) {
  return rpc::NotFound(
      "ResourceNotFoundException",
      absl::StrCat("Rule ", rule, " does not exist on EventBus ", bus, "."));
}

// The bus name a name-or-ARN field holds ("" = default).
absl::StatusOr<std::string> BusNameOf(const config::ArnScope& scope,
                                      absl::string_view field,
                                      const std::string& name_or_arn) {
  if (name_or_arn.empty()) return std::string(eventbus::kDefaultBusName);
  RETURN_IF_ERROR(ValidateLength(field, name_or_arn, 1, 1600));
  absl::string_view name = name_or_arn;
  if (absl::StartsWith(name, "arn:")) {
    const std::string prefix = eventbus::EventBusArn(scope, "");
    if (!absl::StartsWith(name, prefix)) return BusNotFound(name_or_arn);
    name.remove_prefix(prefix.size());
  }
  RETURN_IF_ERROR(ValidateName(field, name, 256));
  return std::string(name);
}

int ListLimit(int limit) { return limit == 0 ? kDefaultListLimit : limit; }

absl::Status ValidateListLimit(int limit) {
  if (limit < 0)
    return ConstraintViolation(
        "limit", limit, "Member must have value greater than or equal to 1");
  if (limit > kMaxListLimit) {
    return ConstraintViolation(
        "limit", limit, "Member must have value less than or equal to 100");
  }
  return absl::OkStatus();
}

// One page of `items` (sorted by name) with names starting with `prefix`,
// after the name the token holds. Sets `next_token` if more remain.
template <typename Item, typename NameOf, typename Add>
absl::Status Paginate(const std::vector<Item>& items, absl::string_view prefix,
                      const std::string& token, int limit, NameOf name_of,
                      Add add, std::string* next_token) {
  RETURN_IF_ERROR(ValidateListLimit(limit));
  std::string after;
  if (!token.empty()) RETURN_IF_ERROR(DecodePageToken(token, &after));
  int taken = 0;
  for (const Item& item : items) {
    const std::string& name = name_of(item);
    if (!absl::StartsWith(name, prefix) || (!token.empty() && name <= after))
      continue;
    if (taken == ListLimit(limit)) {
      *next_token = EncodePageToken(after);
      return absl::OkStatus();
    }
    add(item);
    after = name;
    ++taken;
  }
  return absl::OkStatus();
}

google::protobuf::Timestamp NowTimestamp() {
  const absl::Duration since = absl::Now() - absl::UnixEpoch();
  google::protobuf::Timestamp now;
  now.set_seconds(absl::ToInt64Seconds(since));
  now.set_nanos(
      static_cast<int32_t>(absl::ToInt64Nanoseconds(since % absl::Seconds(1))));
  return now;
}

// rate() or cron(), as the eventbus fires them (schedule.h, cron.h); AWS
// says no more than that about what is wrong.
absl::Status ValidateScheduleExpression(const std::string& expression) {
  RETURN_IF_ERROR(ValidateLength("scheduleExpression", expression, 0, 256));
  if (!eventbus::ValidateSchedule(expression).ok()) {
    return rpc::InvalidArgument("ValidationException",
                                "Parameter ScheduleExpression is not valid.");
  }
  return absl::OkStatus();
}

absl::Status ValidateRuleState(const std::string& state) {
  if (state.empty() || state == kEnabled || state == kDisabled ||
      state == "ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS") {
    return absl::OkStatus();
  }
  return ConstraintViolation("state", state,
                             "Member must satisfy enum value set: "
                             "[ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS, "
                             "DISABLED, ENABLED]");
}

bool HasTransformer(const v1::Target& target) {
  return !target.input_transformer().input_template().empty() ||
         !target.input_transformer().input_paths_map().empty();
}

// A target's Id, as AWS checks it for the whole request (`position` counts
// from 1): its value and place are in the message.
absl::Status ValidateTargetId(int position, const std::string& id) {
  absl::string_view constraint;
  if (id.empty()) {
    constraint = "Member must have length greater than or equal to 1";
  } else if (id.size() > 64) {
    constraint = "Member must have length less than or equal to 64";
  } else if (!std::all_of(id.begin(), id.end(), IsNameChar)) {
    constraint = kNamePattern;
  } else {
    return absl::OkStatus();
  }
  return rpc::InvalidArgument(
      "ValidationException",
      absl::StrCat("1 validation error detected: Value '", id, "' at 'targets.", position,
                   ".member.id' failed to satisfy constraint: ", constraint));
}

// What AWS refuses for the whole PutTargets call in one target: more than
// one way to build the input, or a placeholder of its InputTemplate that is
// neither in InputPathsMap nor predefined.
absl::Status ValidateTargetInputs(const v1::Target& target) {
  const int inputs = (target.input().empty() ? 0 : 1) +
                     (target.input_path().empty() ? 0 : 1) +
                     (HasTransformer(target) ? 1 : 0);
  if (inputs > 1) {
    return rpc::InvalidArgument(
        "ValidationException",
        absl::StrCat("Only one of Input, InputPath, or InputTransformer must be provided for "
                     "target ",
                     target.id(), "."));
  }
  const v1::InputTransformer& transformer = target.input_transformer();
  const std::string& tmpl = transformer.input_template();
  for (size_t open = tmpl.find('<'); open != std::string::npos; open = tmpl.find('<', open + 1)) {
    size_t end = open + 1;
    while (end < tmpl.size() && (IsNameChar(tmpl[end]))) ++end;
    if (end == open + 1 || end >= tmpl.size() || tmpl[end] != '>') continue;
    const std::string name = tmpl.substr(open + 1, end - open - 1);
    static constexpr absl::string_view kPredefined[] = {
        "aws.events.rule-arn", "aws.events.rule-name", "aws.events.event",
        "aws.events.event.json", "aws.events.event.ingestion-time"};
    if (transformer.input_paths_map().contains(name) ||
        std::find(std::begin(kPredefined), std::end(kPredefined), name) !=
            std::end(kPredefined)) {
      continue;
    }
    return rpc::InvalidArgument("ValidationException",
                                absl::StrCat("InputTemplate for target ", target.id(),
                                             " contains invalid placeholder ", name, "."));
  }
  return absl::OkStatus();
}

// Why a target cannot be stored; OK if it can.
absl::Status ValidateTarget(const config::ArnScope& scope,
                            const v1::Target& target) {
  RETURN_IF_ERROR(ValidateLength("targets.member.arn", target.arn(), 1, 1600));
  if (!config::StateMachineNameFromArn(scope, target.arn()).ok()) {
    return rpc::InvalidArgument(
        "ValidationException",
        absl::StrCat("Target ", target.id(),
                     ": Stepflow targets must be state machine ARNs of this "
                     "cluster, not '",
                     target.arn(), "'"));
  }
  const bool has_transformer = HasTransformer(target);
  if (!target.input().empty()) {
    RETURN_IF_ERROR(
        ValidateLength("targets.member.input", target.input(), 0, 8192));
    if (!json::Parse(target.input()).ok()) {
      return rpc::InvalidArgument(
          "ValidationException",
          absl::StrCat("Target ", target.id(), ": Input is not valid JSON."));
    }
  }
  if (!target.input_path().empty()) {
    RETURN_IF_ERROR(ValidateLength("targets.member.inputPath",
                                   target.input_path(), 0, 256));
    if (target.input_path()[0] != '$') {
      return rpc::InvalidArgument(
          "ValidationException",
          absl::StrCat("Target ", target.id(),
                       ": InputPath must be a JSONPath starting with $."));
    }
  }
  if (has_transformer) {
    const v1::InputTransformer& transformer = target.input_transformer();
    RETURN_IF_ERROR(ValidateLength("targets.member.inputTransformer.inputTemplate",
                                   transformer.input_template(), 1, 8192));
    if (transformer.input_paths_map_size() > 100) {
      return rpc::InvalidArgument(
          "ValidationException",
          absl::StrCat("Target ", target.id(),
                       ": InputPathsMap has more than 100 entries."));
    }
    for (const auto& [name, path] : transformer.input_paths_map()) {
      if (absl::StartsWithIgnoreCase(name, "aws.")) {
        return rpc::InvalidArgument(
            "ValidationException",
            absl::StrCat("Target ", target.id(), ": InputPathsMap key ", name,
                         " is reserved (keys cannot start with \"AWS.\")."));
      }
      if (path.empty() || path[0] != '$' || !asl::JsonPath::Parse(path).ok()) {
        return rpc::InvalidArgument(
            "ValidationException",
            absl::StrCat("Target ", target.id(), ": InputPathsMap value of ",
                         name, " is not a JSONPath starting with $."));
      }
    }
  }
  // AWS's RetryPolicy bounds (an unset event age is 0 here).
  const v1::RetryPolicy& policy = target.retry_policy();
  if (policy.has_maximum_retry_attempts()) {
    const char* field = "targets.member.retryPolicy.maximumRetryAttempts";
    if (policy.maximum_retry_attempts() < 0) {
      return ConstraintViolation(
          field, policy.maximum_retry_attempts(),
          "Member must have value greater than or equal to 0");
    }
    if (policy.maximum_retry_attempts() > 185) {
      return ConstraintViolation(
          field, policy.maximum_retry_attempts(),
          "Member must have value less than or equal to 185");
    }
  }
  if (policy.maximum_event_age_in_seconds() != 0) {
    const char* field = "targets.member.retryPolicy.maximumEventAgeInSeconds";
    if (policy.maximum_event_age_in_seconds() < 60) {
      return ConstraintViolation(
          field, policy.maximum_event_age_in_seconds(),
          "Member must have value greater than or equal to 60");
    }
    if (policy.maximum_event_age_in_seconds() > 86400) {
      return ConstraintViolation(
          field, policy.maximum_event_age_in_seconds(),
          "Member must have value less than or equal to 86400");
    }
  }
  // DeadLetterConfig.Arn: an SQS queue ARN, whose queue names the target's
  // dead-letter topic (eventbus/dead_letter.h).
  if (target.has_dead_letter_config()) {
    const std::string& arn = target.dead_letter_config().arn();
    RETURN_IF_ERROR(ValidateLength("targets.member.deadLetterConfig.arn", arn,
                                   1, 1600));
    absl::StatusOr<std::string> topic = eventbus::DeadLetterTopicForArn(arn);
    if (!topic.ok()) {
      return rpc::InvalidArgument(
          "ValidationException",
          absl::StrCat("Target ", target.id(),
                       ": Parameter DeadLetterConfig.Arn is not valid: ",
                       topic.status().message()));
    }
  }
  return absl::OkStatus();
}


absl::Status ArchiveNotFound(absl::string_view name) {
  return rpc::NotFound("ResourceNotFoundException",
                       absl::StrCat("Archive ", name, " does not exist."));
}

absl::Status ReplayNotFound(absl::string_view name) {
  return rpc::NotFound("ResourceNotFoundException",
                       absl::StrCat("Replay ", name, " does not exist."));
}

absl::Status NotValid(absl::string_view parameter, absl::string_view reason) {
  return rpc::InvalidArgument(
      "ValidationException",
      absl::StrCat("Parameter ", parameter, " is not valid. Reason: ", reason));
}

// An archive's event pattern: empty, or one PutRule would take.
absl::Status ValidateArchivePattern(const std::string& pattern) {
  if (pattern.empty()) return absl::OkStatus();
  RETURN_IF_ERROR(
      ValidateLength("eventPattern", pattern, 0, patterns::kMaxPatternBytes));
  absl::StatusOr<patterns::Pattern> parsed = patterns::Pattern::Parse(pattern);
  if (!parsed.ok()) {
    return rpc::InvalidArgument("InvalidEventPatternException",
                                std::string(parsed.status().message()));
  }
  return absl::OkStatus();
}

absl::Status ValidateRetentionDays(int days) {
  if (days < 0) {
    return ConstraintViolation(
        "retentionDays", days, "Member must have value greater than or equal to 0");
  }
  return absl::OkStatus();
}

absl::Status ValidateArchiveState(const std::string& state) {
  static constexpr const char* kStates[] = {"ENABLED",  "DISABLED",
                                            "CREATING", "UPDATING",
                                            "CREATE_FAILED", "UPDATE_FAILED"};
  if (state.empty() || std::find(std::begin(kStates), std::end(kStates),
                                 state) != std::end(kStates)) {
    return absl::OkStatus();
  }
  return ConstraintViolation(
      "state", state,
      "Member must satisfy enum value set: [DISABLED, CREATE_FAILED, "
      "UPDATE_FAILED, CREATING, UPDATING, ENABLED]");
}

absl::Status ValidateReplayState(const std::string& state) {
  static constexpr const char* kStates[] = {
      eventbus::kReplayStarting,  eventbus::kReplayRunning,
      eventbus::kReplayCancelling, eventbus::kReplayCompleted,
      eventbus::kReplayCancelled, eventbus::kReplayFailed};
  if (state.empty() || std::find(std::begin(kStates), std::end(kStates),
                                 state) != std::end(kStates)) {
    return absl::OkStatus();
  }
  return ConstraintViolation(
      "state", state,
      "Member must satisfy enum value set: [CANCELLED, CANCELLING, FAILED, "
      "COMPLETED, STARTING, RUNNING]");
}

using eventbus::EntryError;

}  // namespace

size_t PutEventsEntrySize(const v1::PutEventsRequestEntry& entry) {
  size_t size = entry.has_time() ? 14 : 0;
  size += entry.source().size() + entry.detail_type().size() +
          entry.detail().size();
  for (const std::string& resource : entry.resources()) size += resource.size();
  return size;
}

absl::StatusOr<std::unique_ptr<EventBridgeService>> EventBridgeService::Create(
    const GatewayOptions& options) {
  std::unique_ptr<EventBridgeService> service(new EventBridgeService(options));
  if (options.kafka_brokers.empty()) return service;
  if (options.event_bus_partitions < 1) {
    return absl::InvalidArgumentError(
        "event bus partitions must be at least 1");
  }
  ASSIGN_OR_RETURN(service->producer_,
                   kafka::Producer::Create(options.kafka_brokers));
  service->admin_ = std::make_unique<kafka::TopicAdmin>(
      kafka::TopicAdminOptions{.brokers = options.kafka_brokers,
                               .mode = options.kafka_topic_creation,
                               .embedded = options.embedded_kafka});
  eventbus::CatalogOptions catalog_options;
  catalog_options.brokers = options.kafka_brokers;
  catalog_options.admin = service->admin_.get();
  catalog_options.producer = service->producer_.get();
  catalog_options.arn_scope = options.arn_scope;
  ASSIGN_OR_RETURN(service->catalog_,
                   eventbus::Catalog::Start(std::move(catalog_options)));
  // The default bus always exists, so does its topic; the eventbus (or an
  // operator) may have created it already.
  absl::Status topic = service->admin_->EnsureTopic(
      {.name = eventbus::BusTopic(eventbus::kDefaultBusName),
       .partitions = options.event_bus_partitions},
      absl::Seconds(5));
  if (!topic.ok()) {
    log::Warn(kComponent, "cannot make sure the default event bus topic exists",
              {{"error", topic}});
  }
  // Shard servers write execution logs there (logging configurations).
  topic = service->admin_->EnsureTopic(
      {.name = eventbus::kExecutionLogsTopic, .partitions = options.event_bus_partitions},
      absl::Seconds(5));
  if (!topic.ok()) {
    log::Warn(kComponent, "cannot make sure the execution logs topic exists", {{"error", topic}});
  }
  // Creates the catalog topic if needed, so eventbus replicas find it, and
  // reads it; calls retry this if the brokers do not answer yet.
  if (service->Ready(absl::Now() + absl::Seconds(5)).ok()) {
    log::Info(kComponent, "event bus catalog read");
  }
  return service;
}

EventBridgeService::EventBridgeService(const GatewayOptions& options)
    : options_(options) {}

EventBridgeService::~EventBridgeService() {
  // The catalog writes through the producer: it goes first.
  catalog_.reset();
  producer_.reset();
}

absl::Status EventBridgeService::Ready(absl::Time deadline) {
  if (catalog_ == nullptr) {
    return absl::UnavailableError(
        "this gateway has no Kafka brokers (--kafka-brokers), which event "
        "buses need");
  }
  if (ready_.load()) return absl::OkStatus();
  absl::Status status =
      catalog_->WaitReady(std::min(deadline - absl::Now(), kKafkaTimeout));
  if (!status.ok()) {
    return absl::UnavailableError(absl::StrCat(
        "the event bus catalog is not readable yet: ", status.message()));
  }
  ready_.store(true);
  return absl::OkStatus();
}

absl::StatusOr<std::string> EventBridgeService::ExistingBus(
    const std::string& name_or_arn) const {
  ASSIGN_OR_RETURN(std::string name,
                   BusNameOf(options_.arn_scope, "eventBusName", name_or_arn));
  if (!catalog_->FindBus(name).has_value()) return BusNotFound(name);
  return name;
}

absl::StatusOr<v1::Rule> EventBridgeService::ExistingRule(
    const std::string& bus, const std::string& rule) const {
  absl::optional<v1::Rule> found = catalog_->FindRule(bus, rule);
  if (!found.has_value()) return RuleNotFound(rule, bus);
  return *found;
}

// ---- Event buses ----

grpc::Status EventBridgeService::CreateEventBus(
    grpc::ServerContext* context, const v1::CreateEventBusRequest* request,
    v1::CreateEventBusResponse* response) {
  return rpc::ToGrpcStatus([&]() -> absl::Status {
    const std::string& name = request->name();
    RETURN_IF_ERROR(ValidateLength("name", name, 1, 256));
    if (absl::StrContains(name, '/')) {
      return rpc::InvalidArgument("ValidationException",
                                  "Event bus name must not contain '/'.");
    }
    RETURN_IF_ERROR(ValidateName("name", name, 256));
    if (!request->event_source_name().empty()) {
      return rpc::InvalidArgument(
          "ValidationException",
          "Partner event sources are not supported by Stepflow.");
    }
    RETURN_IF_ERROR(
        ValidateLength("description", request->description(), 0, 512));
    RETURN_IF_ERROR(Ready(DeadlineOf(context)));
    if (catalog_->FindBus(name).has_value()) {
      return rpc::AlreadyExists(
          "ResourceAlreadyExistsException",
          absl::StrCat("Event bus ", name, " already exists."));
    }
    // The topic first: a bus anyone can see always has somewhere to put
    // its events.
    RETURN_IF_ERROR(
        admin_->EnsureTopic({.name = eventbus::BusTopic(name),
                             .partitions = options_.event_bus_partitions},
                            kKafkaTimeout));
    v1::EventBus bus;
    bus.set_name(name);
    bus.set_arn(eventbus::EventBusArn(options_.arn_scope, name));
    bus.set_description(request->description());
    *bus.mutable_creation_time() = NowTimestamp();
    *bus.mutable_last_modified_time() = bus.creation_time();
    RETURN_IF_ERROR(catalog_->PutBus(bus));
    log::Info(kComponent, "event bus created",
              {{"bus", name}, {"topic", eventbus::BusTopic(name)}});
    response->set_event_bus_arn(bus.arn());
    response->set_description(bus.description());
    return absl::OkStatus();
  }());
}

grpc::Status EventBridgeService::DescribeEventBus(
    grpc::ServerContext* context, const v1::DescribeEventBusRequest* request,
    v1::DescribeEventBusResponse* response) {
  return rpc::ToGrpcStatus([&]() -> absl::Status {
    ASSIGN_OR_RETURN(std::string name,
                     BusNameOf(options_.arn_scope, "name", request->name()));
    RETURN_IF_ERROR(Ready(DeadlineOf(context)));
    absl::optional<v1::EventBus> bus = catalog_->FindBus(name);
    if (!bus.has_value()) return BusNotFound(name);
    response->set_name(bus->name());
    response->set_arn(bus->arn());
    response->set_description(bus->description());
    response->set_policy(bus->policy());
    if (bus->has_creation_time())
      *response->mutable_creation_time() = bus->creation_time();
    if (bus->has_last_modified_time()) {
      *response->mutable_last_modified_time() = bus->last_modified_time();
    }
    return absl::OkStatus();
  }());
}

grpc::Status EventBridgeService::ListEventBuses(
    grpc::ServerContext* context, const v1::ListEventBusesRequest* request,
    v1::ListEventBusesResponse* response) {
  return rpc::ToGrpcStatus([&]() -> absl::Status {
    RETURN_IF_ERROR(
        ValidateLength("namePrefix", request->name_prefix(), 0, 256));
    RETURN_IF_ERROR(Ready(DeadlineOf(context)));
    return Paginate(
        catalog_->ListBuses(), request->name_prefix(), request->next_token(),
        request->limit(),
        [](const v1::EventBus& bus) -> const std::string& {
          return bus.name();
        },
        [response](const v1::EventBus& bus) {
          *response->add_event_buses() = bus;
        },
        response->mutable_next_token());
  }());
}

grpc::Status EventBridgeService::DeleteEventBus(
    grpc::ServerContext* context, const v1::DeleteEventBusRequest* request,
    v1::DeleteEventBusResponse*) {
  return rpc::ToGrpcStatus([&]() -> absl::Status {
    RETURN_IF_ERROR(ValidateName("name", request->name(), 256));
    if (request->name() == eventbus::kDefaultBusName) {
      return rpc::InvalidArgument("ValidationException",
                                  "Cannot delete event bus default.");
    }
    RETURN_IF_ERROR(Ready(DeadlineOf(context)));
    // Deleting a bus that does not exist succeeds, as on AWS. The topic is
    // kept (with its events) for consumers still reading it.
    if (!catalog_->FindBus(request->name()).has_value())
      return absl::OkStatus();
    RETURN_IF_ERROR(catalog_->DeleteBus(request->name()));
    log::Info(kComponent, "event bus deleted", {{"bus", request->name()}});
    return absl::OkStatus();
  }());
}

// ---- Events ----

grpc::Status EventBridgeService::PutEvents(grpc::ServerContext* context,
                                           const v1::PutEventsRequest* request,
                                           v1::PutEventsResponse* response) {
  return rpc::ToGrpcStatus([&]() -> absl::Status {
    const int count = request->entries_size();
    if (count < 1) {
      return ConstraintViolation(
          "entries", "Member must have length greater than or equal to 1");
    }
    if (count > kMaxPutEventsEntries) {
      return ConstraintViolation(
          "entries", "Member must have length less than or equal to 10");
    }
    size_t total = 0;
    for (const auto& entry : request->entries())
      total += PutEventsEntrySize(entry);
    if (total > kMaxPutEventsBytes) {
      return rpc::InvalidArgument(
          "ValidationException",
          "Total size of the entries in the request is over the limit.");
    }
    const absl::Time deadline = DeadlineOf(context);
    RETURN_IF_ERROR(Ready(deadline));

    const absl::Time now = absl::Now();
    std::vector<absl::optional<EntryError>> errors(count);
    std::vector<std::string> ids(count);
    std::vector<kafka::OutgoingRecord> records;
    std::vector<int> record_entry;  // entry index of each record
    for (int i = 0; i < count; ++i) {
      const v1::PutEventsRequestEntry& entry = request->entries(i);
      auto fail = [&errors, i](std::string code, std::string message) {
        errors[i] = EntryError{std::move(code), std::move(message)};
      };
      if (std::optional<eventbus::EntryError> error = eventbus::CheckEntryFields(entry)) {
        errors[i] = std::move(*error);
        continue;
      }
      absl::StatusOr<std::string> bus =
          BusNameOf(options_.arn_scope, "eventBusName", entry.event_bus_name());
      if (absl::IsNotFound(
              bus.status())) {  // an ARN of another account or region
        fail("ResourceNotFoundException",
             absl::StrCat("Event bus ", entry.event_bus_name(),
                          " does not exist."));
        continue;
      }
      if (!bus.ok()) {
        fail("InvalidArgument",
             absl::StrCat("Parameter EventBusName is not valid. Reason: ",
                          bus.status().message()));
        continue;
      }
      if (!catalog_->FindBus(*bus).has_value()) {
        // AWS accepts an event for a bus of this account that does not
        // exist, with an id, and drops it.
        ids[i] = RandomUuid();
        continue;
      }
      absl::Time time = now;
      if (entry.has_time()) {
        time = absl::FromUnixSeconds(entry.time().seconds()) +
               absl::Nanoseconds(entry.time().nanos());
      }
      ids[i] = RandomUuid();
      records.push_back(
          {eventbus::BusTopic(*bus), ids[i],
           eventbus::EventEnvelope(options_.arn_scope, ids[i], entry, time)});
      record_entry.push_back(i);
    }

    // Every valid entry at once; each is accepted only once Kafka has it.
    // Kafka gets the caller's deadline less a margin to answer in, so an
    // outage yields per-entry InternalFailure rather than a lost reply.
    const absl::Duration kafka_timeout = std::max(
        absl::Milliseconds(100),
        std::min(deadline - absl::Now() - kReplyMargin, kKafkaTimeout));
    std::vector<absl::StatusOr<kafka::RecordPosition>> stored =
        producer_->ProduceAll(records, kafka_timeout);
    for (size_t r = 0; r < records.size(); ++r) {
      if (stored[r].ok()) continue;
      log::Warn(kComponent, "PutEvents entry not stored",
                {{"topic", records[r].topic}, {"error", stored[r].status()}});
      errors[record_entry[r]] =
          EntryError{"InternalFailure", "Internal service error."};
    }

    int failed = 0;
    for (int i = 0; i < count; ++i) {
      v1::PutEventsResultEntry* result = response->add_entries();
      if (errors[i].has_value()) {
        ++failed;
        result->set_error_code(errors[i]->code);
        result->set_error_message(errors[i]->message);
      } else {
        result->set_event_id(ids[i]);
      }
    }
    response->set_failed_entry_count(failed);
    return absl::OkStatus();
  }());
}

// ---- Rules ----

grpc::Status EventBridgeService::PutRule(grpc::ServerContext* context,
                                         const v1::PutRuleRequest* request,
                                         v1::PutRuleResponse* response) {
  return rpc::ToGrpcStatus([&]() -> absl::Status {
    RETURN_IF_ERROR(ValidateName("name", request->name(), 64));
    ASSIGN_OR_RETURN(std::string bus,
                     BusNameOf(options_.arn_scope, "eventBusName",
                               request->event_bus_name()));
    RETURN_IF_ERROR(
        ValidateLength("description", request->description(), 0, 512));
    RETURN_IF_ERROR(ValidateLength("roleArn", request->role_arn(), 0, 1600));
    RETURN_IF_ERROR(ValidateRuleState(request->state()));
    if (request->event_pattern().empty() &&
        request->schedule_expression().empty()) {
      return rpc::InvalidArgument(
          "ValidationException",
          "Parameter(s) EventPattern or ScheduleExpression must be specified.");
    }
    if (!request->schedule_expression().empty()) {
      RETURN_IF_ERROR(
          ValidateScheduleExpression(request->schedule_expression()));
      if (bus != eventbus::kDefaultBusName) {
        return rpc::InvalidArgument(
            "ValidationException",
            "ScheduleExpression is supported only on the default event bus.");
      }
    }
    if (!request->event_pattern().empty()) {
      RETURN_IF_ERROR(ValidateLength("eventPattern", request->event_pattern(),
                                     0, patterns::kMaxPatternBytes));
      absl::StatusOr<patterns::Pattern> pattern =
          patterns::Pattern::Parse(request->event_pattern());
      if (!pattern.ok()) {
        return rpc::InvalidArgument("InvalidEventPatternException",
                                    std::string(pattern.status().message()));
      }
    }
    RETURN_IF_ERROR(Ready(DeadlineOf(context)));
    if (!catalog_->FindBus(bus).has_value()) return BusNotFound(bus);
    v1::Rule rule;
    rule.set_name(request->name());
    rule.set_arn(eventbus::RuleArn(options_.arn_scope, bus, request->name()));
    rule.set_event_pattern(request->event_pattern());
    rule.set_schedule_expression(request->schedule_expression());
    rule.set_state(request->state().empty() ? kEnabled : request->state());
    rule.set_description(request->description());
    rule.set_role_arn(request->role_arn());
    rule.set_event_bus_name(bus);
    rule.set_created_by(options_.arn_scope.account);
    RETURN_IF_ERROR(catalog_->PutRule(rule));
    response->set_rule_arn(rule.arn());
    return absl::OkStatus();
  }());
}

grpc::Status EventBridgeService::DescribeRule(
    grpc::ServerContext* context, const v1::DescribeRuleRequest* request,
    v1::DescribeRuleResponse* response) {
  return rpc::ToGrpcStatus([&]() -> absl::Status {
    RETURN_IF_ERROR(ValidateName("name", request->name(), 64));
    RETURN_IF_ERROR(Ready(DeadlineOf(context)));
    ASSIGN_OR_RETURN(std::string bus, ExistingBus(request->event_bus_name()));
    ASSIGN_OR_RETURN(v1::Rule rule, ExistingRule(bus, request->name()));
    response->set_name(rule.name());
    response->set_arn(rule.arn());
    response->set_event_pattern(rule.event_pattern());
    response->set_schedule_expression(rule.schedule_expression());
    response->set_state(rule.state());
    response->set_description(rule.description());
    response->set_role_arn(rule.role_arn());
    response->set_managed_by(rule.managed_by());
    response->set_event_bus_name(rule.event_bus_name());
    response->set_created_by(rule.created_by());
    return absl::OkStatus();
  }());
}

grpc::Status EventBridgeService::ListRules(grpc::ServerContext* context,
                                           const v1::ListRulesRequest* request,
                                           v1::ListRulesResponse* response) {
  return rpc::ToGrpcStatus([&]() -> absl::Status {
    RETURN_IF_ERROR(
        ValidateLength("namePrefix", request->name_prefix(), 0, 64));
    RETURN_IF_ERROR(Ready(DeadlineOf(context)));
    ASSIGN_OR_RETURN(std::string bus, ExistingBus(request->event_bus_name()));
    return Paginate(
        catalog_->ListRules(bus), request->name_prefix(), request->next_token(),
        request->limit(),
        [](const v1::Rule& rule) -> const std::string& { return rule.name(); },
        [response](const v1::Rule& rule) {
          v1::Rule* item = response->add_rules();
          *item = rule;
          item->clear_created_by();  // AWS returns CreatedBy from DescribeRule
                                     // only
        },
        response->mutable_next_token());
  }());
}

grpc::Status EventBridgeService::DeleteRule(
    grpc::ServerContext* context, const v1::DeleteRuleRequest* request,
    v1::DeleteRuleResponse*) {
  return rpc::ToGrpcStatus([&]() -> absl::Status {
    RETURN_IF_ERROR(ValidateName("name", request->name(), 64));
    RETURN_IF_ERROR(Ready(DeadlineOf(context)));
    ASSIGN_OR_RETURN(std::string bus, ExistingBus(request->event_bus_name()));
    // Deleting a rule that does not exist succeeds, as on AWS.
    if (!catalog_->FindRule(bus, request->name()).has_value())
      return absl::OkStatus();
    if (!catalog_->ListTargets(bus, request->name()).empty()) {
      return rpc::InvalidArgument(
          "ValidationException", "Rule can't be deleted since it has targets.");
    }
    return catalog_->DeleteRule(bus, request->name());
  }());
}

absl::Status EventBridgeService::SetRuleState(
    const std::string& name, const std::string& bus_name_or_arn,
    const char* state, absl::Time deadline) {
  RETURN_IF_ERROR(ValidateName("name", name, 64));
  RETURN_IF_ERROR(Ready(deadline));
  ASSIGN_OR_RETURN(std::string bus, ExistingBus(bus_name_or_arn));
  ASSIGN_OR_RETURN(v1::Rule rule, ExistingRule(bus, name));
  if (rule.state() == state) return absl::OkStatus();
  rule.set_state(state);
  return catalog_->PutRule(rule);
}

grpc::Status EventBridgeService::EnableRule(
    grpc::ServerContext* context, const v1::EnableRuleRequest* request,
    v1::EnableRuleResponse*) {
  return rpc::ToGrpcStatus(SetRuleState(request->name(),
                                        request->event_bus_name(), kEnabled,
                                        DeadlineOf(context)));
}

grpc::Status EventBridgeService::DisableRule(
    grpc::ServerContext* context, const v1::DisableRuleRequest* request,
    v1::DisableRuleResponse*) {
  return rpc::ToGrpcStatus(SetRuleState(request->name(),
                                        request->event_bus_name(), kDisabled,
                                        DeadlineOf(context)));
}

// ---- Targets ----

grpc::Status EventBridgeService::PutTargets(
    grpc::ServerContext* context, const v1::PutTargetsRequest* request,
    v1::PutTargetsResponse* response) {
  return rpc::ToGrpcStatus([&]() -> absl::Status {
    RETURN_IF_ERROR(ValidateName("rule", request->rule(), 64));
    if (request->targets_size() < 1) {
      return ConstraintViolation(
          "targets", "Member must have length greater than or equal to 1");
    }
    if (request->targets_size() > 10) {
      return ConstraintViolation(
          "targets", "Member must have length less than or equal to 10");
    }
    for (int i = 0; i < request->targets_size(); ++i) {
      RETURN_IF_ERROR(ValidateTargetId(i + 1, request->targets(i).id()));
    }
    RETURN_IF_ERROR(Ready(DeadlineOf(context)));
    ASSIGN_OR_RETURN(std::string bus, ExistingBus(request->event_bus_name()));
    RETURN_IF_ERROR(ExistingRule(bus, request->rule()).status());
    for (const v1::Target& target : request->targets()) {
      RETURN_IF_ERROR(ValidateTargetInputs(target));
    }
    std::vector<v1::Target> existing =
        catalog_->ListTargets(bus, request->rule());
    // A rule has at most 5 targets; AWS refuses the whole call beyond.
    std::set<std::string> ids;
    for (const v1::Target& target : existing) ids.insert(target.id());
    for (const v1::Target& target : request->targets()) ids.insert(target.id());
    if (static_cast<int>(ids.size()) > kMaxTargetsPerRule) {
      return rpc::ResourceExhausted("LimitExceededException",
                                    "The requested resource exceeds the maximum number allowed.");
    }
    int failed = 0;
    for (const v1::Target& target : request->targets()) {
      absl::Status status = ValidateTarget(options_.arn_scope, target);
      const bool known = std::any_of(
          existing.begin(), existing.end(),
          [&](const v1::Target& t) { return t.id() == target.id(); });
      // The dead-letter topic first, so the eventbus has somewhere to write.
      if (status.ok() && admin_ != nullptr && target.has_dead_letter_config()) {
        status = admin_->EnsureTopic(
            {.name = eventbus::DeadLetterTopicFor(target), .partitions = 1},
            kKafkaTimeout);
      }
      if (status.ok())
        status = catalog_->PutTarget(bus, request->rule(), target);
      if (!status.ok()) {
        ++failed;
        v1::PutTargetsResultEntry* entry = response->add_failed_entries();
        entry->set_target_id(target.id());
        std::string code(rpc::ErrorName(status));
        entry->set_error_code(code.empty() ? "InternalFailure" : code);
        absl::string_view message = status.message();
        if (!code.empty())
          message.remove_prefix(std::min(message.size(), code.size() + 2));
        entry->set_error_message(std::string(message));
        continue;
      }
      if (!known) existing.push_back(target);
    }
    response->set_failed_entry_count(failed);
    return absl::OkStatus();
  }());
}

grpc::Status EventBridgeService::RemoveTargets(
    grpc::ServerContext* context, const v1::RemoveTargetsRequest* request,
    v1::RemoveTargetsResponse* response) {
  return rpc::ToGrpcStatus([&]() -> absl::Status {
    RETURN_IF_ERROR(ValidateName("rule", request->rule(), 64));
    if (request->ids_size() < 1) {
      return ConstraintViolation(
          "ids", "Member must have length greater than or equal to 1");
    }
    if (request->ids_size() > 100) {
      return ConstraintViolation(
          "ids", "Member must have length less than or equal to 100");
    }
    for (const std::string& id : request->ids())
      RETURN_IF_ERROR(ValidateName("ids.member", id, 64));
    RETURN_IF_ERROR(Ready(DeadlineOf(context)));
    ASSIGN_OR_RETURN(std::string bus, ExistingBus(request->event_bus_name()));
    RETURN_IF_ERROR(ExistingRule(bus, request->rule()).status());
    std::vector<v1::Target> existing =
        catalog_->ListTargets(bus, request->rule());
    int failed = 0;
    for (const std::string& id : request->ids()) {
      // Removing an id the rule does not have succeeds, as on AWS.
      const bool known =
          std::any_of(existing.begin(), existing.end(),
                      [&](const v1::Target& t) { return t.id() == id; });
      if (!known) continue;
      absl::Status status = catalog_->DeleteTarget(bus, request->rule(), id);
      if (!status.ok()) {
        ++failed;
        v1::RemoveTargetsResultEntry* entry = response->add_failed_entries();
        entry->set_target_id(id);
        entry->set_error_code("InternalFailure");
        entry->set_error_message(std::string(status.message()));
      }
    }
    response->set_failed_entry_count(failed);
    return absl::OkStatus();
  }());
}

grpc::Status EventBridgeService::ListTargetsByRule(
    grpc::ServerContext* context, const v1::ListTargetsByRuleRequest* request,
    v1::ListTargetsByRuleResponse* response) {
  return rpc::ToGrpcStatus([&]() -> absl::Status {
    RETURN_IF_ERROR(ValidateName("rule", request->rule(), 64));
    RETURN_IF_ERROR(Ready(DeadlineOf(context)));
    ASSIGN_OR_RETURN(std::string bus, ExistingBus(request->event_bus_name()));
    RETURN_IF_ERROR(ExistingRule(bus, request->rule()).status());
    return Paginate(
        catalog_->ListTargets(bus, request->rule()), "", request->next_token(),
        request->limit(),
        [](const v1::Target& target) -> const std::string& {
          return target.id();
        },
        [response](const v1::Target& target) {
          *response->add_targets() = target;
        },
        response->mutable_next_token());
  }());
}

grpc::Status EventBridgeService::ListRuleNamesByTarget(
    grpc::ServerContext* context,
    const v1::ListRuleNamesByTargetRequest* request,
    v1::ListRuleNamesByTargetResponse* response) {
  return rpc::ToGrpcStatus([&]() -> absl::Status {
    RETURN_IF_ERROR(
        ValidateLength("targetArn", request->target_arn(), 1, 1600));
    RETURN_IF_ERROR(Ready(DeadlineOf(context)));
    ASSIGN_OR_RETURN(std::string bus, ExistingBus(request->event_bus_name()));
    std::vector<std::string> names;
    for (const v1::Rule& rule : catalog_->ListRules(bus)) {
      for (const v1::Target& target : catalog_->ListTargets(bus, rule.name())) {
        if (target.arn() == request->target_arn()) {
          names.push_back(rule.name());
          break;
        }
      }
    }
    return Paginate(
        names, "", request->next_token(), request->limit(),
        [](const std::string& name) -> const std::string& { return name; },
        [response](const std::string& name) { response->add_rule_names(name); },
        response->mutable_next_token());
  }());
}


// ---- Archives ----

absl::StatusOr<v1::DescribeArchiveResponse> EventBridgeService::ExistingArchive(
    const std::string& name) const {
  absl::optional<v1::DescribeArchiveResponse> archive =
      catalog_->FindArchive(name);
  if (!archive.has_value()) return ArchiveNotFound(name);
  return *archive;
}

v1::DescribeArchiveResponse EventBridgeService::WithStats(
    v1::DescribeArchiveResponse archive) const {
  int64_t event_count = 0;
  int64_t size_bytes = 0;
  catalog_->SumArchiveStats(archive.archive_name(),
                            eventbus::ArchiveIncarnation(archive), &event_count,
                            &size_bytes);
  archive.set_event_count(event_count);
  archive.set_size_bytes(size_bytes);
  return archive;
}

grpc::Status EventBridgeService::CreateArchive(
    grpc::ServerContext* context, const v1::CreateArchiveRequest* request,
    v1::CreateArchiveResponse* response) {
  return rpc::ToGrpcStatus([&]() -> absl::Status {
    RETURN_IF_ERROR(ValidateName("archiveName", request->archive_name(), 48));
    RETURN_IF_ERROR(ValidateLength("eventSourceArn",
                                   request->event_source_arn(), 1, 1600));
    RETURN_IF_ERROR(
        ValidateLength("description", request->description(), 0, 512));
    RETURN_IF_ERROR(ValidateArchivePattern(request->event_pattern()));
    RETURN_IF_ERROR(ValidateRetentionDays(request->retention_days()));
    if (!absl::StartsWith(request->event_source_arn(), "arn:")) {
      return NotValid("EventSourceArn", "Provided Arn is not in correct format.");
    }
    RETURN_IF_ERROR(Ready(DeadlineOf(context)));
    ASSIGN_OR_RETURN(std::string bus, ExistingBus(request->event_source_arn()));
    if (catalog_->FindArchive(request->archive_name()).has_value()) {
      return rpc::AlreadyExists(
          "ResourceAlreadyExistsException",
          absl::StrCat("Archive ", request->archive_name(), " already exists."));
    }
    v1::DescribeArchiveResponse archive;
    archive.set_archive_name(request->archive_name());
    archive.set_archive_arn(
        eventbus::ArchiveArn(options_.arn_scope, request->archive_name()));
    archive.set_event_source_arn(eventbus::EventBusArn(options_.arn_scope, bus));
    archive.set_description(request->description());
    archive.set_event_pattern(request->event_pattern());
    archive.set_state(eventbus::kArchiveEnabled);
    archive.set_kms_key_identifier(request->kms_key_identifier());
    archive.set_retention_days(request->retention_days());
    *archive.mutable_creation_time() = NowTimestamp();
    // The topic first, so the eventbus has somewhere to archive to.
    std::map<std::string, std::string> config;
    if (request->retention_days() > 0) {
      config["retention.ms"] =
          absl::StrCat(int64_t{request->retention_days()} * 24 * 3600 * 1000);
    } else {
      config["retention.ms"] = "-1";
    }
    RETURN_IF_ERROR(admin_->EnsureTopic({.name = eventbus::ArchiveTopic(archive),
                                         .partitions = 1,
                                         .config = std::move(config)},
                                        kKafkaTimeout));
    RETURN_IF_ERROR(catalog_->PutArchive(archive));
    log::Info(kComponent, "archive created",
              {{"archive", archive.archive_name()},
               {"bus", bus},
               {"topic", eventbus::ArchiveTopic(archive)}});
    response->set_archive_arn(archive.archive_arn());
    response->set_state(archive.state());
    *response->mutable_creation_time() = archive.creation_time();
    return absl::OkStatus();
  }());
}

grpc::Status EventBridgeService::DescribeArchive(
    grpc::ServerContext* context, const v1::DescribeArchiveRequest* request,
    v1::DescribeArchiveResponse* response) {
  return rpc::ToGrpcStatus([&]() -> absl::Status {
    RETURN_IF_ERROR(ValidateName("archiveName", request->archive_name(), 48));
    RETURN_IF_ERROR(Ready(DeadlineOf(context)));
    ASSIGN_OR_RETURN(v1::DescribeArchiveResponse archive,
                     ExistingArchive(request->archive_name()));
    *response = WithStats(std::move(archive));
    return absl::OkStatus();
  }());
}

grpc::Status EventBridgeService::UpdateArchive(
    grpc::ServerContext* context, const v1::UpdateArchiveRequest* request,
    v1::UpdateArchiveResponse* response) {
  return rpc::ToGrpcStatus([&]() -> absl::Status {
    RETURN_IF_ERROR(ValidateName("archiveName", request->archive_name(), 48));
    RETURN_IF_ERROR(
        ValidateLength("description", request->description(), 0, 512));
    RETURN_IF_ERROR(ValidateArchivePattern(request->event_pattern()));
    if (request->has_retention_days())
      RETURN_IF_ERROR(ValidateRetentionDays(request->retention_days()));
    if (request->event_pattern().empty() && !request->has_retention_days() &&
        request->description().empty()) {
      return rpc::InvalidArgument(
          "ValidationException",
          "At least one of EventPattern, RetentionDays or Description must be provided.");
    }
    RETURN_IF_ERROR(Ready(DeadlineOf(context)));
    ASSIGN_OR_RETURN(v1::DescribeArchiveResponse archive,
                     ExistingArchive(request->archive_name()));
    if (!request->description().empty())
      archive.set_description(request->description());
    if (!request->event_pattern().empty())
      archive.set_event_pattern(request->event_pattern());
    if (!request->kms_key_identifier().empty())
      archive.set_kms_key_identifier(request->kms_key_identifier());
    // A new retention applies to replays at once (they skip older events);
    // the topic keeps the retention it was created with.
    if (request->has_retention_days())
      archive.set_retention_days(request->retention_days());
    RETURN_IF_ERROR(catalog_->PutArchive(archive));
    response->set_archive_arn(archive.archive_arn());
    response->set_state(archive.state());
    *response->mutable_creation_time() = archive.creation_time();
    return absl::OkStatus();
  }());
}

grpc::Status EventBridgeService::ListArchives(
    grpc::ServerContext* context, const v1::ListArchivesRequest* request,
    v1::ListArchivesResponse* response) {
  return rpc::ToGrpcStatus([&]() -> absl::Status {
    RETURN_IF_ERROR(
        ValidateLength("namePrefix", request->name_prefix(), 0, 48));
    RETURN_IF_ERROR(ValidateLength("eventSourceArn",
                                   request->event_source_arn(), 0, 1600));
    RETURN_IF_ERROR(ValidateArchiveState(request->state()));
    RETURN_IF_ERROR(Ready(DeadlineOf(context)));
    // AWS: a source bus that does not exist is an error, not an empty list.
    if (!request->event_source_arn().empty()) {
      RETURN_IF_ERROR(ExistingBus(request->event_source_arn()).status());
    }
    std::vector<v1::DescribeArchiveResponse> archives;
    for (v1::DescribeArchiveResponse& archive : catalog_->ListArchives()) {
      if (!request->event_source_arn().empty() &&
          archive.event_source_arn() != request->event_source_arn())
        continue;
      if (!request->state().empty() && archive.state() != request->state())
        continue;
      archives.push_back(std::move(archive));
    }
    return Paginate(
        archives, request->name_prefix(), request->next_token(),
        request->limit(),
        [](const v1::DescribeArchiveResponse& archive) -> const std::string& {
          return archive.archive_name();
        },
        [this, response](const v1::DescribeArchiveResponse& archive) {
          const v1::DescribeArchiveResponse counted = WithStats(archive);
          v1::Archive* item = response->add_archives();
          item->set_archive_name(counted.archive_name());
          item->set_event_source_arn(counted.event_source_arn());
          item->set_state(counted.state());
          item->set_state_reason(counted.state_reason());
          item->set_retention_days(counted.retention_days());
          item->set_size_bytes(counted.size_bytes());
          item->set_event_count(counted.event_count());
          *item->mutable_creation_time() = counted.creation_time();
        },
        response->mutable_next_token());
  }());
}

grpc::Status EventBridgeService::DeleteArchive(
    grpc::ServerContext* context, const v1::DeleteArchiveRequest* request,
    v1::DeleteArchiveResponse*) {
  return rpc::ToGrpcStatus([&]() -> absl::Status {
    RETURN_IF_ERROR(ValidateName("archiveName", request->archive_name(), 48));
    RETURN_IF_ERROR(Ready(DeadlineOf(context)));
    RETURN_IF_ERROR(ExistingArchive(request->archive_name()).status());
    RETURN_IF_ERROR(catalog_->DeleteArchive(request->archive_name()));
    log::Info(kComponent, "archive deleted",
              {{"archive", request->archive_name()}});
    return absl::OkStatus();
  }());
}

// ---- Replays ----

grpc::Status EventBridgeService::StartReplay(
    grpc::ServerContext* context, const v1::StartReplayRequest* request,
    v1::StartReplayResponse* response) {
  return rpc::ToGrpcStatus([&]() -> absl::Status {
    RETURN_IF_ERROR(ValidateName("replayName", request->replay_name(), 64));
    RETURN_IF_ERROR(
        ValidateLength("description", request->description(), 0, 512));
    RETURN_IF_ERROR(ValidateLength("eventSourceArn",
                                   request->event_source_arn(), 1, 1600));
    RETURN_IF_ERROR(ValidateLength("destination.arn",
                                   request->destination().arn(), 1, 1600));
    if (!request->has_event_start_time()) {
      return NotValid("EventStartTime", "EventStartTime is a required argument.");
    }
    if (!request->has_event_end_time()) {
      return NotValid("EventEndTime", "EventEndTime is a required argument.");
    }
    const absl::Time start = eventbus::FromTimestamp(request->event_start_time());
    const absl::Time end = eventbus::FromTimestamp(request->event_end_time());
    if (start >= end) {
      return NotValid("EventEndTime", "EventStartTime must be before EventEndTime.");
    }
    // An end in the future is taken: the replay sends what the archive
    // holds when it starts.
    absl::optional<std::string> archive_name = eventbus::ArchiveNameFromArn(
        options_.arn_scope, request->event_source_arn());
    if (!archive_name.has_value()) {
      return NotValid("EventSourceArn", "Provided Arn is not in correct format.");
    }
    RETURN_IF_ERROR(Ready(DeadlineOf(context)));
    absl::StatusOr<v1::DescribeArchiveResponse> archive = ExistingArchive(*archive_name);
    if (absl::IsNotFound(archive.status())) {
      return NotValid("EventSourceArn", absl::StrCat("Archive ", *archive_name, " does not exist."));
    }
    if (!archive.ok()) return archive.status();
    ASSIGN_OR_RETURN(std::string bus, ExistingBus(request->destination().arn()));
    if (request->destination().arn() != archive->event_source_arn()) {
      return NotValid("Destination.Arn",
                      "Cross event bus replay is not permitted.");
    }
    for (const std::string& rule_arn : request->destination().filter_arns()) {
      const std::vector<v1::Rule> rules = catalog_->ListRules(bus);
      if (std::none_of(rules.begin(), rules.end(), [&](const v1::Rule& rule) {
            return rule.arn() == rule_arn;
          })) {
        return NotValid("Destination.FilterArns",
                        absl::StrCat("Rule ", rule_arn, " does not exist on "
                                     "EventBus ", bus, "."));
      }
    }
    if (catalog_->FindReplay(request->replay_name()).has_value()) {
      return rpc::AlreadyExists(
          "ResourceAlreadyExistsException",
          absl::StrCat("Replay ", request->replay_name(), " already exists."));
    }
    const std::vector<v1::DescribeReplayResponse> replays =
        catalog_->ListReplays();
    const auto active = std::count_if(
        replays.begin(), replays.end(), [](const v1::DescribeReplayResponse& r) {
          return !eventbus::ReplayFinished(r.state());
        });
    if (active >= kMaxActiveReplays) {
      return rpc::ResourceExhausted("LimitExceededException",
                                    "The requested resource exceeds the maximum number allowed.");
    }
    v1::DescribeReplayResponse replay;
    replay.set_replay_name(request->replay_name());
    replay.set_replay_arn(
        eventbus::ReplayArn(options_.arn_scope, request->replay_name()));
    replay.set_description(request->description());
    replay.set_state(eventbus::kReplayStarting);
    replay.set_event_source_arn(archive->archive_arn());
    *replay.mutable_destination() = request->destination();
    *replay.mutable_event_start_time() = request->event_start_time();
    *replay.mutable_event_end_time() = request->event_end_time();
    *replay.mutable_replay_start_time() = NowTimestamp();
    RETURN_IF_ERROR(catalog_->PutReplay(replay));
    log::Info(kComponent, "replay started",
              {{"replay", replay.replay_name()},
               {"archive", archive->archive_name()}});
    response->set_replay_arn(replay.replay_arn());
    response->set_state(replay.state());
    *response->mutable_replay_start_time() = replay.replay_start_time();
    return absl::OkStatus();
  }());
}

grpc::Status EventBridgeService::DescribeReplay(
    grpc::ServerContext* context, const v1::DescribeReplayRequest* request,
    v1::DescribeReplayResponse* response) {
  return rpc::ToGrpcStatus([&]() -> absl::Status {
    RETURN_IF_ERROR(ValidateName("replayName", request->replay_name(), 64));
    RETURN_IF_ERROR(Ready(DeadlineOf(context)));
    absl::optional<v1::DescribeReplayResponse> replay =
        catalog_->FindReplay(request->replay_name());
    if (!replay.has_value()) return ReplayNotFound(request->replay_name());
    replay->set_state(eventbus::VisibleReplayState(
        *replay, catalog_->ReplayCancelRequested(replay->replay_name())));
    *response = std::move(*replay);
    return absl::OkStatus();
  }());
}

grpc::Status EventBridgeService::ListReplays(
    grpc::ServerContext* context, const v1::ListReplaysRequest* request,
    v1::ListReplaysResponse* response) {
  return rpc::ToGrpcStatus([&]() -> absl::Status {
    RETURN_IF_ERROR(
        ValidateLength("namePrefix", request->name_prefix(), 0, 64));
    RETURN_IF_ERROR(ValidateLength("eventSourceArn",
                                   request->event_source_arn(), 0, 1600));
    RETURN_IF_ERROR(ValidateReplayState(request->state()));
    RETURN_IF_ERROR(Ready(DeadlineOf(context)));
    std::vector<v1::DescribeReplayResponse> replays;
    for (v1::DescribeReplayResponse& replay : catalog_->ListReplays()) {
      replay.set_state(eventbus::VisibleReplayState(
          replay, catalog_->ReplayCancelRequested(replay.replay_name())));
      if (!request->event_source_arn().empty() &&
          replay.event_source_arn() != request->event_source_arn())
        continue;
      if (!request->state().empty() && replay.state() != request->state())
        continue;
      replays.push_back(std::move(replay));
    }
    return Paginate(
        replays, request->name_prefix(), request->next_token(),
        request->limit(),
        [](const v1::DescribeReplayResponse& replay) -> const std::string& {
          return replay.replay_name();
        },
        [response](const v1::DescribeReplayResponse& replay) {
          v1::Replay* item = response->add_replays();
          item->set_replay_name(replay.replay_name());
          item->set_event_source_arn(replay.event_source_arn());
          item->set_state(replay.state());
          item->set_state_reason(replay.state_reason());
          *item->mutable_event_start_time() = replay.event_start_time();
          *item->mutable_event_end_time() = replay.event_end_time();
          if (replay.has_event_last_replayed_time()) {
            *item->mutable_event_last_replayed_time() =
                replay.event_last_replayed_time();
          }
          *item->mutable_replay_start_time() = replay.replay_start_time();
          if (replay.has_replay_end_time())
            *item->mutable_replay_end_time() = replay.replay_end_time();
        },
        response->mutable_next_token());
  }());
}

grpc::Status EventBridgeService::CancelReplay(
    grpc::ServerContext* context, const v1::CancelReplayRequest* request,
    v1::CancelReplayResponse* response) {
  return rpc::ToGrpcStatus([&]() -> absl::Status {
    RETURN_IF_ERROR(ValidateName("replayName", request->replay_name(), 64));
    RETURN_IF_ERROR(Ready(DeadlineOf(context)));
    absl::optional<v1::DescribeReplayResponse> replay =
        catalog_->FindReplay(request->replay_name());
    if (!replay.has_value()) return ReplayNotFound(request->replay_name());
    const std::string state = eventbus::VisibleReplayState(
        *replay, catalog_->ReplayCancelRequested(replay->replay_name()));
    if (state != eventbus::kReplayStarting && state != eventbus::kReplayRunning) {
      return rpc::FailedPrecondition(
          "IllegalStatusException",
          absl::StrCat("Replay ", replay->replay_name(), " is in state ", state,
                       " and cannot be cancelled."));
    }
    RETURN_IF_ERROR(catalog_->RequestReplayCancel(replay->replay_name()));
    response->set_replay_arn(replay->replay_arn());
    response->set_state(eventbus::kReplayCancelling);
    return absl::OkStatus();
  }());
}

// ---- Patterns ----

grpc::Status EventBridgeService::TestEventPattern(
    grpc::ServerContext*, const v1::TestEventPatternRequest* request,
    v1::TestEventPatternResponse* response) {
  return rpc::ToGrpcStatus([&]() -> absl::Status {
    // AWS bounds the pattern's length; an empty event is not an event.
    RETURN_IF_ERROR(ValidateLength("eventPattern", request->event_pattern(), 1,
                                   patterns::kMaxPatternBytes));
    if (request->event().empty())
      return absl::InvalidArgumentError(patterns::kInvalidEventMessage);
    ASSIGN_OR_RETURN(
        bool result,
        patterns::TestEventPattern(request->event_pattern(), request->event()));
    response->set_result(result);
    return absl::OkStatus();
  }());
}

}  // namespace stepflow::gateway
