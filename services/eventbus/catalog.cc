#include "services/eventbus/catalog.h"

#include <algorithm>
#include <cstdio>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "common/kafka/client.h"
#include "common/kafka/topic_admin.h"
#include "common/kafka/topic_reader.h"
#include "common/log/log.h"
#include "common/status/status_macros.h"
#include "google/protobuf/util/json_util.h"

namespace stepflow::eventbus {
namespace {

constexpr char kComponent[] = "eventbus-catalog";
constexpr char kBusTopicPrefix[] = "stepflow.events.";
constexpr absl::string_view kBusKey = "bus/";
constexpr absl::string_view kRuleKey = "rule/";
constexpr absl::string_view kTargetKey = "target/";
constexpr absl::string_view kArchiveKey = "archive/";
constexpr absl::string_view kArchiveStatsKey = "archive-stats/";
constexpr absl::string_view kReplayKey = "replay/";
constexpr absl::string_view kReplayCancelKey = "replay-cancel/";

// FNV-1a: stable across builds and machines, unlike std::hash.
uint64_t StableHash(absl::string_view text) {
  uint64_t hash = 14695981039346656037ull;
  for (unsigned char c : text) {
    hash ^= c;
    hash *= 1099511628211ull;
  }
  return hash;
}

absl::StatusOr<std::string> ToJson(const google::protobuf::Message& message) {
  std::string text;
  auto status = google::protobuf::util::MessageToJsonString(message, &text);
  if (!status.ok()) return absl::InternalError(std::string(status.message()));
  return text;
}

template <typename Message>
bool FromJson(const std::string& text, Message* message) {
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = true;  // records written by newer releases
  return google::protobuf::util::JsonStringToMessage(text, message, options)
      .ok();
}

// Entries of `map` whose key starts with `prefix`.
template <typename Value>
std::vector<Value> WithPrefix(const std::map<std::string, Value>& map,
                              const std::string& prefix) {
  std::vector<Value> out;
  for (auto it = map.lower_bound(prefix);
       it != map.end() && absl::StartsWith(it->first, prefix); ++it) {
    out.push_back(it->second);
  }
  return out;
}

// Applies one record to `map`: erases on a tombstone, else parses. False
// for a value that does not parse.
template <typename Message>
bool ApplyTo(std::map<std::string, Message>* map, absl::string_view key,
             const absl::optional<std::string>& value) {
  if (!value.has_value()) {
    map->erase(std::string(key));
    return true;
  }
  Message message;
  if (!FromJson(*value, &message)) return false;
  (*map)[std::string(key)] = std::move(message);
  return true;
}

template <typename Value>
std::vector<Value> Values(const std::map<std::string, Value>& map) {
  std::vector<Value> out;
  out.reserve(map.size());
  for (const auto& [key, value] : map) out.push_back(value);
  return out;
}

template <typename Value>
absl::optional<Value> Find(const std::map<std::string, Value>& map,
                           absl::string_view key) {
  auto it = map.find(std::string(key));
  if (it == map.end()) return absl::nullopt;
  return it->second;
}

}  // namespace

std::string BusTopic(absl::string_view bus_name) {
  std::string topic = absl::StrCat(kBusTopicPrefix, bus_name);
  if (topic.size() <= kafka::kMaxTopicNameLength) return topic;
  char hash[17];
  std::snprintf(hash, sizeof(hash), "%016llx",
                static_cast<unsigned long long>(StableHash(bus_name)));
  topic.resize(kafka::kMaxTopicNameLength - 17);
  absl::StrAppend(&topic, ".", hash);
  return topic;
}

std::string EventBusArn(const config::ArnScope& scope,
                        absl::string_view bus_name) {
  return absl::StrCat("arn:", scope.partition, ":events:", scope.region, ":",
                      scope.account, ":event-bus/", bus_name);
}

std::string RuleArn(const config::ArnScope& scope, absl::string_view bus_name,
                    absl::string_view rule_name) {
  std::string arn =
      absl::StrCat("arn:", scope.partition, ":events:", scope.region, ":",
                   scope.account, ":rule/");
  if (bus_name != kDefaultBusName) absl::StrAppend(&arn, bus_name, "/");
  absl::StrAppend(&arn, rule_name);
  return arn;
}

absl::StatusOr<std::unique_ptr<Catalog>> Catalog::Start(
    CatalogOptions options) {
  if (options.brokers.empty())
    return absl::InvalidArgumentError("the catalog needs Kafka brokers");
  std::unique_ptr<Catalog> catalog(new Catalog(std::move(options)));
  Catalog* self = catalog.get();
  ASSIGN_OR_RETURN(
      catalog->reader_,
      kafka::TopicReader::Start(
          self->options_.brokers, self->options_.topic,
          [self](const kafka::TopicRecord& record) { self->Apply(record); }));
  return catalog;
}

Catalog::Catalog(CatalogOptions options) : options_(std::move(options)) {}

Catalog::~Catalog() { reader_.reset(); }

absl::Status Catalog::EnsureTopic(absl::Duration timeout) {
  if (options_.admin == nullptr || topic_ensured_.load())
    return absl::OkStatus();
  // One partition: every change to the catalog is in one order.
  RETURN_IF_ERROR(
      options_.admin->EnsureTopic({.name = options_.topic,
                                   .partitions = 1,
                                   .config = {{"cleanup.policy", "compact"}}},
                                  timeout));
  topic_ensured_.store(true);
  return absl::OkStatus();
}

absl::Status Catalog::WaitReady(absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  RETURN_IF_ERROR(EnsureTopic(timeout));
  return reader_->WaitCaughtUp(deadline - absl::Now());
}

void Catalog::Apply(const kafka::TopicRecord& record) {
  absl::string_view key = record.key;
  const bool tombstone = !record.value.has_value();
  bool applied = true;
  absl::MutexLock lock(&mu_);
  if (absl::ConsumePrefix(&key, kBusKey)) {
    v1::EventBus bus;
    if (tombstone) {
      buses_.erase(std::string(key));
    } else if ((applied = FromJson(*record.value, &bus))) {
      buses_[std::string(key)] = std::move(bus);
    }
  } else if (absl::ConsumePrefix(&key, kRuleKey)) {
    v1::Rule rule;
    if (tombstone) {
      rules_.erase(std::string(key));
    } else if ((applied = FromJson(*record.value, &rule))) {
      rules_[std::string(key)] = std::move(rule);
    }
  } else if (absl::ConsumePrefix(&key, kTargetKey)) {
    v1::Target target;
    if (tombstone) {
      targets_.erase(std::string(key));
    } else if ((applied = FromJson(*record.value, &target))) {
      targets_[std::string(key)] = std::move(target);
    }
  } else if (absl::ConsumePrefix(&key, kArchiveStatsKey)) {
    applied = ApplyTo(&archive_stats_, key, record.value);
  } else if (absl::ConsumePrefix(&key, kArchiveKey)) {
    applied = ApplyTo(&archives_, key, record.value);
  } else if (absl::ConsumePrefix(&key, kReplayCancelKey)) {
    if (tombstone) {
      replay_cancels_.erase(std::string(key));
    } else {
      replay_cancels_.insert(std::string(key));
    }
  } else if (absl::ConsumePrefix(&key, kReplayKey)) {
    applied = ApplyTo(&replays_, key, record.value);
  } else {
    applied = false;
  }
  if (!applied) {
    log::Warn(kComponent, "ignoring an unreadable catalog record",
              {{"key", record.key}, {"offset", record.offset}});
    return;
  }
  generation_.fetch_add(1);
}

absl::optional<v1::EventBus> Catalog::FindBus(absl::string_view name) const {
  if (name == kDefaultBusName) {
    v1::EventBus bus;
    bus.set_name(kDefaultBusName);
    bus.set_arn(EventBusArn(options_.arn_scope, kDefaultBusName));
    return bus;
  }
  absl::MutexLock lock(&mu_);
  auto it = buses_.find(std::string(name));
  if (it == buses_.end()) return absl::nullopt;
  return it->second;
}

std::vector<v1::EventBus> Catalog::ListBuses() const {
  std::vector<v1::EventBus> out;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [name, bus] : buses_) out.push_back(bus);
  }
  v1::EventBus default_bus = *FindBus(kDefaultBusName);
  auto at = std::lower_bound(out.begin(), out.end(), default_bus,
                             [](const v1::EventBus& a, const v1::EventBus& b) {
                               return a.name() < b.name();
                             });
  out.insert(at, std::move(default_bus));
  return out;
}

absl::optional<v1::Rule> Catalog::FindRule(absl::string_view bus,
                                           absl::string_view rule) const {
  absl::MutexLock lock(&mu_);
  auto it = rules_.find(absl::StrCat(bus, "/", rule));
  if (it == rules_.end()) return absl::nullopt;
  return it->second;
}

std::vector<v1::Rule> Catalog::ListRules(absl::string_view bus) const {
  absl::MutexLock lock(&mu_);
  return WithPrefix(rules_, absl::StrCat(bus, "/"));
}

std::vector<v1::Target> Catalog::ListTargets(absl::string_view bus,
                                             absl::string_view rule) const {
  absl::MutexLock lock(&mu_);
  return WithPrefix(targets_, absl::StrCat(bus, "/", rule, "/"));
}

absl::optional<v1::DescribeArchiveResponse> Catalog::FindArchive(
    absl::string_view name) const {
  absl::MutexLock lock(&mu_);
  return Find(archives_, name);
}

std::vector<v1::DescribeArchiveResponse> Catalog::ListArchives() const {
  absl::MutexLock lock(&mu_);
  return Values(archives_);
}

void Catalog::SumArchiveStats(absl::string_view archive,
                              absl::string_view incarnation,
                              int64_t* event_count, int64_t* size_bytes) const {
  *event_count = 0;
  *size_bytes = 0;
  absl::MutexLock lock(&mu_);
  for (const v1::Archive& stats :
       WithPrefix(archive_stats_, absl::StrCat(archive, "/", incarnation, "/"))) {
    *event_count += stats.event_count();
    *size_bytes += stats.size_bytes();
  }
}

absl::optional<v1::DescribeReplayResponse> Catalog::FindReplay(
    absl::string_view name) const {
  absl::MutexLock lock(&mu_);
  return Find(replays_, name);
}

std::vector<v1::DescribeReplayResponse> Catalog::ListReplays() const {
  absl::MutexLock lock(&mu_);
  return Values(replays_);
}

bool Catalog::ReplayCancelRequested(absl::string_view name) const {
  absl::MutexLock lock(&mu_);
  return replay_cancels_.count(std::string(name)) > 0;
}

absl::Status Catalog::Write(const std::string& key,
                            absl::optional<std::string> value) {
  if (options_.producer == nullptr) {
    return absl::FailedPreconditionError("this catalog is read-only");
  }
  const absl::Time deadline = absl::Now() + options_.write_timeout;
  RETURN_IF_ERROR(EnsureTopic(options_.write_timeout));
  absl::optional<absl::string_view> view;
  if (value.has_value()) view = absl::string_view(*value);
  ASSIGN_OR_RETURN(kafka::RecordPosition position,
                   options_.producer->Produce(options_.topic, key, view,
                                              options_.write_timeout));
  return reader_->WaitFor(position, deadline - absl::Now());
}

absl::Status Catalog::PutBus(const v1::EventBus& bus) {
  ASSIGN_OR_RETURN(std::string value, ToJson(bus));
  return Write(absl::StrCat(kBusKey, bus.name()), std::move(value));
}

absl::Status Catalog::DeleteBus(absl::string_view name) {
  // Targets and rules first: a reader never sees a rule without its bus
  // because the bus went first.
  for (const v1::Rule& rule : ListRules(name)) {
    RETURN_IF_ERROR(DeleteRule(name, rule.name()));
  }
  return Write(absl::StrCat(kBusKey, name), absl::nullopt);
}

absl::Status Catalog::PutRule(const v1::Rule& rule) {
  ASSIGN_OR_RETURN(std::string value, ToJson(rule));
  return Write(absl::StrCat(kRuleKey, rule.event_bus_name(), "/", rule.name()),
               std::move(value));
}

absl::Status Catalog::DeleteRule(absl::string_view bus,
                                 absl::string_view rule) {
  for (const v1::Target& target : ListTargets(bus, rule)) {
    RETURN_IF_ERROR(DeleteTarget(bus, rule, target.id()));
  }
  return Write(absl::StrCat(kRuleKey, bus, "/", rule), absl::nullopt);
}

absl::Status Catalog::PutTarget(absl::string_view bus, absl::string_view rule,
                                const v1::Target& target) {
  ASSIGN_OR_RETURN(std::string value, ToJson(target));
  return Write(absl::StrCat(kTargetKey, bus, "/", rule, "/", target.id()),
               std::move(value));
}

absl::Status Catalog::DeleteTarget(absl::string_view bus,
                                   absl::string_view rule,
                                   absl::string_view id) {
  return Write(absl::StrCat(kTargetKey, bus, "/", rule, "/", id),
               absl::nullopt);
}

}  // namespace stepflow::eventbus

namespace stepflow::eventbus {

absl::Status Catalog::PutArchive(const v1::DescribeArchiveResponse& archive) {
  ASSIGN_OR_RETURN(std::string value, ToJson(archive));
  return Write(absl::StrCat(kArchiveKey, archive.archive_name()),
               std::move(value));
}

absl::Status Catalog::DeleteArchive(absl::string_view name) {
  std::vector<std::string> stats_keys;
  {
    absl::MutexLock lock(&mu_);
    const std::string prefix = absl::StrCat(name, "/");
    for (auto it = archive_stats_.lower_bound(prefix);
         it != archive_stats_.end() && absl::StartsWith(it->first, prefix);
         ++it) {
      stats_keys.push_back(it->first);
    }
  }
  // The archive first: its stats mean nothing without it.
  RETURN_IF_ERROR(Write(absl::StrCat(kArchiveKey, name), absl::nullopt));
  for (const std::string& key : stats_keys) {
    RETURN_IF_ERROR(Write(absl::StrCat(kArchiveStatsKey, key), absl::nullopt));
  }
  return absl::OkStatus();
}

absl::Status Catalog::PutArchiveStats(absl::string_view archive,
                                      absl::string_view incarnation,
                                      absl::string_view replica,
                                      int64_t event_count, int64_t size_bytes) {
  v1::Archive stats;
  stats.set_event_count(event_count);
  stats.set_size_bytes(size_bytes);
  ASSIGN_OR_RETURN(std::string value, ToJson(stats));
  return Write(absl::StrCat(kArchiveStatsKey, archive, "/", incarnation, "/",
                            replica),
               std::move(value));
}

absl::Status Catalog::PutReplay(const v1::DescribeReplayResponse& replay) {
  ASSIGN_OR_RETURN(std::string value, ToJson(replay));
  return Write(absl::StrCat(kReplayKey, replay.replay_name()),
               std::move(value));
}

absl::Status Catalog::RequestReplayCancel(absl::string_view name) {
  v1::CancelReplayRequest request;
  request.set_replay_name(std::string(name));
  ASSIGN_OR_RETURN(std::string value, ToJson(request));
  return Write(absl::StrCat(kReplayCancelKey, name), std::move(value));
}

}  // namespace stepflow::eventbus
