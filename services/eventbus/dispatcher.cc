#include "services/eventbus/dispatcher.h"

#include <librdkafka/rdkafka.h>

#include <algorithm>
#include <cstdio>
#include <set>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "common/asl/jsonpath.h"
#include "common/log/log.h"
#include "common/patterns/pattern.h"
#include "common/patterns/rule_set.h"
#include "common/status/status_macros.h"
#include "prometheus/counter.h"
#include "services/eventbus/archive.h"
#include "services/eventbus/catalog.h"
#include "services/eventbus/dead_letter.h"
#include "services/eventbus/schedule.h"

namespace stepflow::eventbus {
namespace {

constexpr char kComponent[] = "eventbus";
constexpr char kBusTopicsRegex[] = "^stepflow\\.events\\..+";
// Events written this long before the latest catalog catch-up began are
// older than every rule change it saw (allowing for clock skew).
constexpr absl::Duration kCatchUpSlack = absl::Seconds(2);
// Events taken from the consumer at once.
constexpr size_t kMaxBatch = 500;
// The longest wait for events to arrive (or for room in a partition's
// window) before committing what was delivered meanwhile.
constexpr int kPollMillis = 50;
// How long deliveries under way may take to finish when the group takes
// the partitions away.
constexpr absl::Duration kRevokeGrace = absl::Seconds(2);

uint64_t Fnv1a(absl::string_view text,
               uint64_t hash = 14695981039346656037ull) {
  for (unsigned char c : text) {
    hash ^= c;
    hash *= 1099511628211ull;
  }
  return hash;
}

std::string Hex64(uint64_t value) {
  char out[17];
  std::snprintf(out, sizeof(out), "%016llx",
                static_cast<unsigned long long>(value));
  return out;
}

bool Retryable(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kDeadlineExceeded:
    case absl::StatusCode::kResourceExhausted:
    case absl::StatusCode::kAborted:
    case absl::StatusCode::kInternal:
    case absl::StatusCode::kUnknown:
      return true;
    default:
      return false;
  }
}

// InputTransformer: each <name> of the template replaced by its value, as
// EventBridge fills it in. Inside a string of a JSON template a placeholder
// takes a string's characters, escaped (the template's quotes stay), a
// number's or boolean's text, and nothing for a path that found nothing; an
// object or array there makes the template invalid, and EventBridge
// delivers nothing (an error here). Elsewhere in a JSON template it takes
// the value's JSON text (null when the path found nothing). A template that
// is not JSON once filled in is text: strings go in as their characters,
// objects and arrays as their JSON text without its quotes
// ({acc_id:1,tier:gold}), and the result is a JSON string.
absl::StatusOr<std::string> Transform(const v1::InputTransformer& transformer,
                                      const v1::Rule& rule,
                                      const json::Value& event,
                                      absl::string_view event_text) {
  json::Document values;
  values.SetObject();
  json::Allocator& a = values.GetAllocator();
  struct Filled {
    std::string json;  // the value's JSON text; empty when nothing was found
    // An object or an array that an InputPathsMap path selected (the
    // predefined variables keep their JSON text everywhere).
    bool composite = false;
  };
  std::map<std::string, Filled> json_of;  // variable -> its value
  for (const auto& [name, path_text] : transformer.input_paths_map()) {
    absl::StatusOr<asl::JsonPath> path = asl::JsonPath::Parse(path_text);
    if (!path.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("InputPathsMap ", name, ": ", path.status().message()));
    }
    absl::StatusOr<json::Value> value = path->Evaluate(event, a);
    if (value.ok()) {
      json_of[name] = {json::Serialize(*value), value->IsObject() || value->IsArray()};
    } else {
      json_of[name] = {};
    }
  }
  auto quoted = [](absl::string_view text) {
    json::Value string(text.data(),
                       static_cast<rapidjson::SizeType>(text.size()));
    return json::Serialize(string);
  };
  json_of["aws.events.rule-arn"] = {quoted(rule.arn())};
  json_of["aws.events.rule-name"] = {quoted(rule.name())};
  // AWS: aws.events.event is the event without its detail, "detail-type"
  // named "detailType"; built only for a template that uses it.
  const bool wants_event =
      transformer.input_template().find("<aws.events.event>") != std::string::npos;
  if (wants_event && event.IsObject()) {
    json::Value without_detail(rapidjson::kObjectType);
    for (auto it = event.MemberBegin(); it != event.MemberEnd(); ++it) {
      const absl::string_view key(it->name.GetString(), it->name.GetStringLength());
      if (key == "detail") continue;
      without_detail.AddMember(
          key == "detail-type" ? json::Value("detailType", a) : json::Value(it->name, a),
          json::Value(it->value, a), a);
    }
    json_of["aws.events.event"] = {json::Serialize(without_detail)};
  } else if (wants_event) {
    json_of["aws.events.event"] = {std::string(event_text)};
  }
  json_of["aws.events.event.json"] = {std::string(event_text)};
  if (event.IsObject() && event.HasMember("time")) {
    json_of["aws.events.event.ingestion-time"] = {json::Serialize(event["time"])};
  }

  const std::string& tmpl = transformer.input_template();
  bool composite_in_string = false;
  // `text_template`: strings go in as their characters everywhere.
  auto substitute = [&](bool text_template) {
    std::string out;
    bool in_string = false;  // inside a string literal of the template
    size_t i = 0;
    while (i < tmpl.size()) {
      const char c = tmpl[i];
      const size_t close = c == '<' ? tmpl.find('>', i) : std::string::npos;
      auto found = close == std::string::npos
                       ? json_of.end()
                       : json_of.find(tmpl.substr(i + 1, close - i - 1));
      if (found == json_of.end()) {
        if (c == '\\' && in_string && i + 1 < tmpl.size()) {
          out.append(tmpl, i, 2);  // an escape: the next byte is no quote
          i += 2;
          continue;
        }
        if (c == '"') in_string = !in_string;
        out.push_back(c);
        ++i;
        continue;
      }
      const Filled& value = found->second;
      const bool is_string = value.json.size() >= 2 && value.json.front() == '"';
      if (value.json.empty()) {
        if (!text_template && !in_string) out.append("null");
      } else if (text_template) {
        if (is_string) {
          out.append(json::Parse(value.json)->GetString());
        } else if (value.composite) {
          out.append(absl::StrReplaceAll(value.json, {{"\"", ""}}));
        } else {
          out.append(value.json);
        }
      } else if (in_string) {
        if (value.composite) composite_in_string = true;
        // Escaped characters, without the quotes of a JSON string.
        const std::string characters = is_string ? value.json : quoted(value.json);
        out.append(characters, 1, characters.size() - 2);
      } else {
        out.append(value.json);
      }
      i = close + 1;
    }
    return out;
  };
  std::string out = substitute(false);
  if (json::Parse(out).ok()) {
    if (composite_in_string) {
      return absl::InvalidArgumentError(
          "InputTemplate puts an object or an array inside a JSON string; EventBridge "
          "delivers nothing for such a template");
    }
    return out;
  }
  // Not a JSON template: plain text, which executions take as a JSON string.
  return quoted(substitute(true));
}

}  // namespace

// The partitions the group assigned to this replica, as the rebalance
// callback (on the delivery thread) last set them.
struct Dispatcher::Assignment {
  mutable absl::Mutex mu;
  std::set<std::pair<std::string, int>> partitions ABSL_GUARDED_BY(mu);
  // Counts assignments and revocations: a message read under an older one
  // belongs to partitions since taken away (and read again if given back).
  uint64_t epoch ABSL_GUARDED_BY(mu) = 0;
  // Called on the consumer thread before partitions are taken away.
  std::function<void()> on_revoke ABSL_GUARDED_BY(mu);
  // Called on the consumer thread for events [from, to) of a partition
  // the brokers dropped before the group delivered them.
  std::function<void(const std::string& topic, int32_t partition, int64_t from, int64_t to)>
      on_lost ABSL_GUARDED_BY(mu);
};

namespace {

// Reports, for each newly assigned partition, the events between the
// group's committed offset and the first one the brokers still hold: with
// auto.offset.reset=earliest they would otherwise go unnoticed.
void ReportDroppedSinceCommit(rd_kafka_t* consumer,
                              const rd_kafka_topic_partition_list_t* partitions,
                              Dispatcher::Assignment* assignment) {
  constexpr int kTimeoutMs = 5000;
  std::function<void(const std::string&, int32_t, int64_t, int64_t)> on_lost;
  {
    absl::MutexLock lock(&assignment->mu);
    on_lost = assignment->on_lost;
  }
  if (!on_lost || partitions->cnt == 0) return;
  rd_kafka_topic_partition_list_t* committed = rd_kafka_topic_partition_list_copy(partitions);
  if (rd_kafka_committed(consumer, committed, kTimeoutMs) == RD_KAFKA_RESP_ERR_NO_ERROR) {
    for (int i = 0; i < committed->cnt; ++i) {
      const rd_kafka_topic_partition_t& entry = committed->elems[i];
      if (entry.err != RD_KAFKA_RESP_ERR_NO_ERROR || entry.offset < 0) continue;
      int64_t low = 0;
      int64_t high = 0;
      if (rd_kafka_query_watermark_offsets(consumer, entry.topic, entry.partition, &low, &high,
                                           kTimeoutMs) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        continue;
      }
      if (entry.offset < low) on_lost(entry.topic, entry.partition, entry.offset, low);
    }
  }
  rd_kafka_topic_partition_list_destroy(committed);
}

// Applies the group's assignment, records it and logs it: which replica
// delivers which partitions is the first thing to know when events seem
// not to arrive.
void OnRebalance(rd_kafka_t* consumer, rd_kafka_resp_err_t err,
                 rd_kafka_topic_partition_list_t* partitions, void* opaque) {
  auto* assignment = static_cast<Dispatcher::Assignment*>(opaque);
  std::string list;
  for (int i = 0; i < partitions->cnt; ++i) {
    absl::StrAppend(&list, i > 0 ? "," : "", partitions->elems[i].topic, "/",
                    partitions->elems[i].partition);
  }
  if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
    log::Info(kComponent, "partitions assigned", {{"partitions", list}});
    ReportDroppedSinceCommit(consumer, partitions, assignment);
    rd_kafka_assign(consumer, partitions);
    absl::MutexLock lock(&assignment->mu);
    ++assignment->epoch;
    assignment->partitions.clear();
    for (int i = 0; i < partitions->cnt; ++i) {
      assignment->partitions.emplace(partitions->elems[i].topic,
                                     partitions->elems[i].partition);
    }
  } else {
    log::Info(kComponent, "partitions revoked", {{"partitions", list}});
    std::function<void()> on_revoke;
    {
      absl::MutexLock lock(&assignment->mu);
      on_revoke = assignment->on_revoke;
    }
    if (on_revoke) on_revoke();
    rd_kafka_assign(consumer, nullptr);
    absl::MutexLock lock(&assignment->mu);
    ++assignment->epoch;
    assignment->partitions.clear();
  }
}

}  // namespace

std::string TargetExecutionName(absl::string_view event_id,
                                absl::string_view rule_arn,
                                absl::string_view target_id) {
  std::string name;
  for (char c : event_id) {
    if (name.size() == 40) break;
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                    (c >= '0' && c <= '9') || c == '-' || c == '_';
    name.push_back(ok ? c : '_');
  }
  // Both hashes: the rule and target, and the whole id (which may have been
  // cut or had characters replaced above).
  const uint64_t delivery = Fnv1a(target_id, Fnv1a("\n", Fnv1a(rule_arn)));
  absl::StrAppend(&name, "-", Hex64(delivery), Hex64(Fnv1a(event_id)));
  return name;
}

std::string DeadLetterRecord(absl::string_view event_text,
                             absl::string_view rule_arn,
                             absl::string_view target_id,
                             absl::string_view execution_name,
                             const absl::Status& error, int attempts) {
  json::Document record;
  record.SetObject();
  json::Allocator& a = record.GetAllocator();
  auto text = [&a](absl::string_view s) {
    return json::Value(s.data(), static_cast<rapidjson::SizeType>(s.size()), a);
  };
  absl::StatusOr<json::Document> event = json::Parse(event_text);
  record.AddMember("event",
                   event.ok() ? json::Copy(*event, a) : text(event_text), a);
  record.AddMember("rule", text(rule_arn), a);
  record.AddMember("target", text(target_id), a);
  record.AddMember("execution", text(execution_name), a);
  record.AddMember("error", text(error.ToString()), a);
  record.AddMember("attempts", attempts, a);
  return json::Serialize(record);
}

absl::StatusOr<std::string> TargetInput(const v1::Target& target,
                                        const v1::Rule& rule,
                                        const json::Value& event,
                                        absl::string_view event_text) {
  if (!target.input().empty()) return target.input();
  if (!target.input_path().empty()) {
    ASSIGN_OR_RETURN(asl::JsonPath path,
                     asl::JsonPath::Parse(target.input_path()));
    json::Document scratch;
    absl::StatusOr<json::Value> value =
        path.Evaluate(event, scratch.GetAllocator());
    if (!value.ok()) {
      if (absl::IsNotFound(value.status())) return std::string("null");
      return value.status();
    }
    return json::Serialize(*value);
  }
  if (!target.input_transformer().input_template().empty()) {
    return Transform(target.input_transformer(), rule, event, event_text);
  }
  return std::string(event_text);
}

// An archive of a bus, ready to match events.
struct BusArchive {
  std::string name;
  std::string incarnation;
  std::string topic;
  absl::Time created;
  absl::optional<patterns::Pattern> pattern;  // none: every event
};

// The enabled event-pattern rules and the archives of one bus, compiled.
struct Dispatcher::BusRules {
  std::string bus;
  patterns::RuleSet matcher;
  // `matcher` compiled, for the delivery threads to share without a lock.
  std::shared_ptr<const patterns::Matcher> compiled;
  std::map<std::string, v1::Rule> rules;
  std::vector<BusArchive> archives;
};

absl::StatusOr<std::unique_ptr<Dispatcher>> Dispatcher::Start(
    DispatcherOptions options) {
  if (options.brokers.empty())
    return absl::InvalidArgumentError("the dispatcher needs brokers");
  if (!options.now) options.now = [] { return absl::Now(); };
  if (options.catalog == nullptr || !options.start_execution) {
    return absl::InvalidArgumentError(
        "the dispatcher needs a catalog and a way to start executions");
  }
  if (options.delivery_threads < 1 || options.partition_window < 1) {
    return absl::InvalidArgumentError(
        "the dispatcher needs at least one delivery thread and a partition "
        "window of at least one event");
  }
  char errstr[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  std::map<std::string, std::string> settings = {
      {"bootstrap.servers", options.brokers},
      {"client.id", "stepflow-eventbus"},
      {"group.id", options.group_id},
      {"enable.auto.commit", "false"},
      {"auto.offset.reset", "earliest"},
      // New buses' topics join the subscription within about a second.
      {"topic.metadata.refresh.interval.ms", "1000"},
      // A replica that died hands its partitions over after this long (and
      // the mock broker waits this long for members at each rebalance, e.g.
      // when a new bus topic joins the subscription). Kafka's minimum.
      {"session.timeout.ms", "6000"},
      {"heartbeat.interval.ms", "1000"},
      // How long a fetch waits for new events. Kafka answers as soon as any
      // arrive, but the embedded broker (librdkafka's mock) only when the
      // wait is over, which an idle bus's next event then waits too (500 ms
      // by default).
      {"fetch.wait.max.ms", "100"},
  };
  for (const auto& [key, value] : options.consumer_config)
    settings[key] = value;
  for (const auto& [key, value] : settings) {
    if (rd_kafka_conf_set(conf, key.c_str(), value.c_str(), errstr,
                          sizeof(errstr)) != RD_KAFKA_CONF_OK) {
      rd_kafka_conf_destroy(conf);
      return absl::InvalidArgumentError(
          absl::StrCat("Kafka consumer ", key, ": ", errstr));
    }
  }
  auto assignment = std::make_shared<Assignment>();
  rd_kafka_conf_set_opaque(conf, assignment.get());
  rd_kafka_conf_set_rebalance_cb(conf, OnRebalance);
  rd_kafka_t* consumer =
      rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
  if (consumer == nullptr) {
    return absl::InternalError(
        absl::StrCat("cannot create the Kafka consumer: ", errstr));
  }
  rd_kafka_poll_set_consumer(consumer);
  return std::unique_ptr<Dispatcher>(
      new Dispatcher(std::move(options), consumer, std::move(assignment)));
}

Dispatcher::Dispatcher(DispatcherOptions options, rd_kafka_t* consumer,
                       std::shared_ptr<Assignment> assignment)
    : options_(std::move(options)),
      consumer_(consumer),
      assignment_(std::move(assignment)) {
  {
    absl::MutexLock lock(&assignment_->mu);
    assignment_->on_revoke = [this] { OnRevoke(); };
    assignment_->on_lost = [this](const std::string& topic, int32_t partition, int64_t from,
                                  int64_t to) { ReportLost(topic, partition, from, to); };
  }
  for (int i = 0; i < options_.delivery_threads; ++i)
    deliverers_.emplace_back([this] { DeliveryLoop(); });
  loop_ = std::thread([this] { Loop(); });
  scheduler_ = std::thread([this] { ScheduleLoop(); });
}

Dispatcher::~Dispatcher() {
  {
    absl::MutexLock lock(&progress_mu_);
    stopping_.store(true);
  }
  loop_.join();
  scheduler_.join();
  for (std::thread& deliverer : deliverers_) deliverer.join();
  // Closing revokes the partitions (OnRevoke commits what was delivered).
  rd_kafka_consumer_close(consumer_);
  rd_kafka_destroy(consumer_);
}

bool Dispatcher::OwnsPartition(const std::string& topic, int partition) const {
  absl::MutexLock lock(&assignment_->mu);
  return assignment_->partitions.count({topic, partition}) > 0;
}

bool Dispatcher::SleepUnlessStopping(absl::Duration duration) {
  const absl::Time until = absl::Now() + duration;
  while (absl::Now() < until) {
    if (stopping_.load()) return false;
    absl::SleepFor(std::min(absl::Milliseconds(50), until - absl::Now()));
  }
  return !stopping_.load();
}

void Dispatcher::ScheduleLoop() {
  absl::Time last = options_.now();
  // Rules whose expression does not parse (written by an older release),
  // logged once.
  std::set<std::string> warned;
  absl::Time stats_flushed = absl::Now();
  while (SleepUnlessStopping(options_.schedule_interval)) {
    if (absl::Now() - stats_flushed >= options_.stats_interval) {
      FlushArchiveStats();
      stats_flushed = absl::Now();
    }
    const absl::Time now = options_.now();
    for (const v1::Rule& rule : options_.catalog->ListRules(kDefaultBusName)) {
      if (rule.schedule_expression().empty() || rule.state() == "DISABLED")
        continue;
      absl::StatusOr<std::vector<absl::Time>> times =
          ScheduleFireTimes(rule.schedule_expression(), last, now);
      if (!times.ok()) {
        if (warned.insert(rule.arn()).second) {
          log::Warn(kComponent, "skipping a rule whose schedule does not parse",
                    {{"rule", rule.arn()},
                     {"schedule", rule.schedule_expression()},
                     {"error", times.status()}});
        }
        continue;
      }
      for (absl::Time at : *times) {
        if (stopping_.load()) return;
        FireScheduled(rule, at);
      }
    }
    last = now;
  }
}

void Dispatcher::FireScheduled(const v1::Rule& rule, absl::Time at) {
  // arn:PARTITION:events:REGION:ACCOUNT:rule/NAME
  std::vector<std::string> arn = absl::StrSplit(rule.arn(), ':');
  const std::string region = arn.size() > 3 ? arn[3] : "";
  const std::string account = arn.size() > 4 ? arn[4] : "";
  const std::string id = ScheduledEventId(rule.arn(), at);
  json::Document event;
  event.SetObject();
  json::Allocator& a = event.GetAllocator();
  auto text = [&a](absl::string_view s) {
    return json::Value(s.data(), static_cast<rapidjson::SizeType>(s.size()), a);
  };
  event.AddMember("version", "0", a);
  event.AddMember("id", text(id), a);
  event.AddMember("detail-type", "Scheduled Event", a);
  event.AddMember("source", "aws.events", a);
  event.AddMember("account", text(account), a);
  event.AddMember(
      "time",
      text(absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", at, absl::UTCTimeZone())), a);
  event.AddMember("region", text(region), a);
  json::Value resources(rapidjson::kArrayType);
  resources.PushBack(text(rule.arn()), a);
  event.AddMember("resources", resources, a);
  event.AddMember("detail", json::Value(rapidjson::kObjectType), a);
  const std::string event_text = json::Serialize(event);
  // One line per rule and firing on each replica: which replicas fired a
  // tick (each starts the same executions; the first start wins).
  log::Info(kComponent, "scheduled rule fired",
            {{"rule", rule.arn()},
             {"at", absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", at,
                                     absl::UTCTimeZone())}});
  for (const v1::Target& target :
       options_.catalog->ListTargets(kDefaultBusName, rule.name())) {
    const std::string name = TargetExecutionName(id, rule.arn(), target.id());
    absl::StatusOr<std::string> input =
        TargetInput(target, rule, event, event_text);
    if (!input.ok()) {
      if (!Abandon(id, event_text, rule, target, name, input.status(), 0))
        return;
      continue;
    }
    if (!StartWithRetries(rule, target, name, *input, id, event_text, at))
      return;
  }
}

void Dispatcher::Refresh() {
  const uint64_t generation = options_.catalog->generation();
  if (generation == generation_) return;
  generation_ = generation;
  rules_by_topic_.clear();
  for (const v1::EventBus& bus : options_.catalog->ListBuses()) {
    auto rules = std::make_shared<BusRules>();
    rules->bus = bus.name();
    for (const v1::Rule& rule : options_.catalog->ListRules(bus.name())) {
      if (rule.event_pattern().empty() || rule.state() == "DISABLED") continue;
      absl::Status added =
          rules->matcher.Add(rule.name(), rule.event_pattern());
      if (!added.ok()) {
        log::Warn(kComponent, "skipping a rule whose pattern does not compile",
                  {{"rule", rule.arn()}, {"error", added}});
        continue;
      }
      rules->rules[rule.name()] = rule;
    }
    rules->compiled = rules->matcher.Snapshot();
    for (const v1::DescribeArchiveResponse& archive :
         options_.catalog->ListArchives()) {
      if (BusNameFromArn(archive.event_source_arn()) != bus.name() ||
          archive.state() != kArchiveEnabled)
        continue;
      BusArchive compiled{archive.archive_name(), ArchiveIncarnation(archive),
                          ArchiveTopic(archive),
                          FromTimestamp(archive.creation_time()),
                          absl::nullopt};
      if (!archive.event_pattern().empty()) {
        absl::StatusOr<patterns::Pattern> pattern =
            patterns::Pattern::Parse(archive.event_pattern());
        if (!pattern.ok()) {
          log::Warn(kComponent,
                    "skipping an archive whose pattern does not compile",
                    {{"archive", archive.archive_name()},
                     {"error", pattern.status()}});
          continue;
        }
        compiled.pattern = std::move(*pattern);
      }
      rules->archives.push_back(std::move(compiled));
    }
    rules_by_topic_[BusTopic(bus.name())] = std::move(rules);
  }
}

bool Dispatcher::Archive(const BusRules& bus, const json::Value& event,
                         const std::string& event_id,
                         absl::string_view event_text, absl::Time written) {
  if (!options_.archive_event) return true;
  for (const BusArchive& archive : bus.archives) {
    // Events from before the archive was created are not its.
    if (written < archive.created) continue;
    if (archive.pattern.has_value() && !archive.pattern->Matches(event))
      continue;
    absl::Duration backoff = options_.initial_backoff;
    for (int attempt = 1;; ++attempt) {
      absl::Status stored = options_.archive_event(archive.topic, event_id,
                                                   std::string(event_text));
      if (stored.ok()) {
        archived_.fetch_add(1);
        absl::MutexLock lock(&stats_mu_);
        ArchiveStats& stats =
            archive_stats_[{archive.name, archive.incarnation}];
        stats.event_count += 1;
        stats.size_bytes += static_cast<int64_t>(event_text.size());
        stats.dirty = true;
        break;
      }
      if (attempt >= options_.max_attempts) {
        log::Error(kComponent, "cannot archive an event; the archive misses it",
                   {{"archive", archive.name},
                    {"event", event_id},
                    {"error", stored}});
        break;
      }
      if (!SleepUnlessStopping(backoff)) return false;
      backoff = std::min(backoff * 2, options_.max_backoff);
    }
  }
  return true;
}

void Dispatcher::FlushArchiveStats() {
  std::vector<std::pair<std::pair<std::string, std::string>, ArchiveStats>>
      changed;
  {
    absl::MutexLock lock(&stats_mu_);
    for (auto& [key, stats] : archive_stats_) {
      if (!stats.dirty) continue;
      changed.emplace_back(key, stats);
      stats.dirty = false;
    }
  }
  for (const auto& [key, stats] : changed) {
    absl::Status written = options_.catalog->PutArchiveStats(
        key.first, key.second, options_.replica_id, stats.event_count,
        stats.size_bytes);
    if (!written.ok()) {
      log::Warn(kComponent, "cannot write archive stats; retrying",
                {{"archive", key.first}, {"error", written}});
      absl::MutexLock lock(&stats_mu_);
      archive_stats_[key].dirty = true;
    }
  }
}

void Dispatcher::ReportLost(const std::string& topic, int32_t partition, int64_t from,
                            int64_t to) {
  if (to <= from) return;
  log::Error(kComponent,
             "events lost before delivery: the brokers no longer hold them (retention or a "
             "truncated log); raise the topic's retention or add eventbus replicas",
             {{"topic", topic},
              {"partition", static_cast<int64_t>(partition)},
              {"from_offset", from},
              {"to_offset", to},
              {"events", to - from}});
  lost_.fetch_add(to - from);
  if (options_.lost_counter != nullptr) {
    options_.lost_counter->Increment(static_cast<double>(to - from));
  }
}

void Dispatcher::Loop() {
  // Matching before the catalog is read would skip rules: wait for it.
  while (!stopping_.load()) {
    absl::Status ready = options_.catalog->WaitReady(absl::Seconds(5));
    if (ready.ok()) break;
    log::Warn(kComponent, "waiting for the event bus catalog",
              {{"error", ready}});
    SleepUnlessStopping(absl::Milliseconds(500));
  }
  // Joining the group only now: a member that does not poll while its
  // join is under way stalls the group's rebalance.
  rd_kafka_topic_partition_list_t* topics =
      rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(topics, kBusTopicsRegex,
                                    RD_KAFKA_PARTITION_UA);
  rd_kafka_resp_err_t err = rd_kafka_subscribe(consumer_, topics);
  rd_kafka_topic_partition_list_destroy(topics);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    log::Error(kComponent,
               "cannot subscribe to the event bus topics; delivering nothing",
               {{"error", rd_kafka_err2str(err)}});
    return;
  }
  struct MessageDeleter {
    void operator()(rd_kafka_message_t* message) const {
      rd_kafka_message_destroy(message);
    }
  };
  using MessagePtr = std::unique_ptr<rd_kafka_message_t, MessageDeleter>;
  auto epoch = [this] {
    absl::MutexLock lock(&assignment_->mu);
    return assignment_->epoch;
  };
  // The offset expected next from each partition read under `read_epoch`.
  std::map<std::pair<std::string, int32_t>, int64_t> next_offsets;
  uint64_t read_epoch = epoch();
  while (!stopping_.load()) {
    CommitDelivered();
    // A batch of what has arrived: one catalog catch-up serves all of it.
    std::vector<MessagePtr> batch;
    uint64_t batch_epoch = epoch();
    if (batch_epoch != read_epoch) {
      next_offsets.clear();  // a new assignment: the commit check covers its start
      read_epoch = batch_epoch;
    }
    for (int timeout_ms = kPollMillis; batch.size() < kMaxBatch;
         timeout_ms = 0) {
      MessagePtr message(rd_kafka_consumer_poll(consumer_, timeout_ms));
      // A rebalance during the poll: what was read before it is no longer
      // ours to deliver (the message just read, if any, is).
      const uint64_t now_epoch = epoch();
      if (now_epoch != batch_epoch) {
        batch.clear();
        batch_epoch = now_epoch;
        next_offsets.clear();
        read_epoch = now_epoch;
      }
      if (message == nullptr) break;
      if (message->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        log::Debug(kComponent, "event bus consumer",
                   {{"error", rd_kafka_message_errstr(message.get())}});
        continue;
      }
      // Bus topics are neither compacted nor transactional: their offsets
      // run without gaps, so a jump means the brokers dropped events
      // while this consumer lagged behind.
      const std::pair<std::string, int32_t> where(rd_kafka_topic_name(message->rkt),
                                                  message->partition);
      auto expected = next_offsets.find(where);
      if (expected != next_offsets.end() && message->offset > expected->second) {
        ReportLost(where.first, where.second, expected->second, message->offset);
      }
      next_offsets[where] = message->offset + 1;
      batch.push_back(std::move(message));
    }
    if (batch.empty()) continue;
    const bool recent =
        std::any_of(batch.begin(), batch.end(), [this](const MessagePtr& m) {
          rd_kafka_timestamp_type_t type;
          const int64_t millis = rd_kafka_message_timestamp(m.get(), &type);
          const absl::Time written = millis >= 0 ? absl::FromUnixMillis(millis)
                                                 : absl::InfiniteFuture();
          return written >= caught_up_from_ - kCatchUpSlack;
        });
    if (recent) {
      const absl::Time started = absl::Now();
      absl::Status ready = options_.catalog->WaitReady(absl::Seconds(5));
      if (ready.ok()) {
        caught_up_from_ = started;
      } else {
        log::Warn(kComponent, "event bus catalog may be behind",
                  {{"error", ready}});
      }
    }
    for (const MessagePtr& message : batch) {
      const std::string topic = rd_kafka_topic_name(message->rkt);
      absl::string_view text(static_cast<const char*>(message->payload),
                             message->payload == nullptr ? 0 : message->len);
      rd_kafka_timestamp_type_t type;
      const int64_t millis = rd_kafka_message_timestamp(message.get(), &type);
      const absl::Time written =
          millis >= 0 ? absl::FromUnixMillis(millis) : absl::Now();
      // Stopped: this and the rest stay uncommitted.
      if (!Enqueue(topic, message->partition, message->offset, text, written))
        break;
    }
  }
}

bool Dispatcher::Enqueue(const std::string& topic, int32_t partition,
                         int64_t offset, absl::string_view event_text,
                         absl::Time written) {
  Refresh();
  Job job;
  auto found = rules_by_topic_.find(topic);
  if (found != rules_by_topic_.end()) job.bus = found->second;
  job.offset = offset;
  job.topic = topic;
  job.event_text = std::string(event_text);
  job.written = written;
  const int64_t window = options_.partition_window;
  while (true) {
    {
      absl::MutexLock lock(&progress_mu_);
      std::shared_ptr<PartitionProgress>& progress =
          progress_[{topic, partition}];
      if (progress == nullptr) {
        progress = std::make_shared<PartitionProgress>();
        progress->topic = topic;
        progress->partition = partition;
      }
      auto has_room = [this, &progress]() ABSL_SHARED_LOCKS_REQUIRED(
                          progress_mu_) {
        return static_cast<int64_t>(progress->pending.size()) <
                   options_.partition_window ||
               stopping_.load();
      };
      progress_mu_.AwaitWithTimeout(absl::Condition(&has_room),
                                    absl::Milliseconds(kPollMillis));
      if (stopping_.load()) return false;
      if (static_cast<int64_t>(progress->pending.size()) < window) {
        progress->pending.emplace(offset, false);
        job.progress = progress;
        queue_.push_back(std::move(job));
        return true;
      }
    }
    // The window is full: commit what its oldest events' deliveries
    // allow while waiting for them.
    CommitDelivered();
  }
}

void Dispatcher::DeliveryLoop() {
  auto ready = [this]() ABSL_SHARED_LOCKS_REQUIRED(progress_mu_) {
    return !queue_.empty() || stopping_.load();
  };
  while (true) {
    Job job;
    {
      absl::MutexLock lock(&progress_mu_);
      progress_mu_.Await(absl::Condition(&ready));
      if (stopping_.load()) return;
      job = std::move(queue_.front());
      queue_.pop_front();
      ++delivering_;
    }
    const bool delivered =
        job.bus == nullptr  // a deleted bus
        || Deliver(*job.bus, job.topic, job.event_text, job.written);
    absl::MutexLock lock(&progress_mu_);
    --delivering_;
    // Stopped mid-delivery: the event stays uncommitted.
    if (!delivered) continue;
    PartitionProgress& progress = *job.progress;
    progress.pending[job.offset] = true;
    while (!progress.pending.empty() && progress.pending.begin()->second) {
      progress.deliverable_from = progress.pending.begin()->first + 1;
      progress.pending.erase(progress.pending.begin());
    }
  }
}

void Dispatcher::CommitDelivered() {
  rd_kafka_topic_partition_list_t* offsets = nullptr;
  {
    absl::MutexLock lock(&progress_mu_);
    for (auto& [key, progress] : progress_) {
      if (progress->deliverable_from <= progress->committed) continue;
      if (offsets == nullptr) offsets = rd_kafka_topic_partition_list_new(4);
      rd_kafka_topic_partition_list_add(offsets, progress->topic.c_str(),
                                        progress->partition)
          ->offset = progress->deliverable_from;
      progress->committed = progress->deliverable_from;
    }
  }
  if (offsets == nullptr) return;
  const rd_kafka_resp_err_t err =
      rd_kafka_commit(consumer_, offsets, /*async=*/1);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    // Those events are delivered again later, starting nothing twice.
    log::Warn(kComponent, "cannot commit event bus offsets",
              {{"error", rd_kafka_err2str(err)}});
  }
  rd_kafka_topic_partition_list_destroy(offsets);
}

void Dispatcher::OnRevoke() {
  {
    absl::MutexLock lock(&progress_mu_);
    // Not started: the partitions' next owner delivers them.
    queue_.clear();
    auto settled = [this]() ABSL_SHARED_LOCKS_REQUIRED(progress_mu_) {
      return delivering_ == 0 || stopping_.load();
    };
    if (!progress_mu_.AwaitWithTimeout(absl::Condition(&settled),
                                       kRevokeGrace)) {
      log::Warn(kComponent,
                "deliveries still under way as partitions are revoked; their "
                "events are delivered again by the next owner");
    }
  }
  // Not waited for: the commit goes to the group coordinator ahead of this
  // member's rejoin, and waiting would hold the rebalance up for as long as
  // the coordinator does not answer.
  CommitDelivered();
  absl::MutexLock lock(&progress_mu_);
  progress_.clear();
}

bool Dispatcher::Deliver(const BusRules& bus, const std::string& topic,
                         absl::string_view event_text, absl::Time written) {
  absl::StatusOr<json::Document> event = json::Parse(event_text);
  if (!event.ok() || !event->IsObject() || !event->HasMember("id") ||
      !(*event)["id"].IsString()) {
    log::Warn(kComponent, "skipping a record that is not an event",
              {{"topic", topic}});
    abandoned_.fetch_add(1);
    return true;
  }
  const std::string event_id = (*event)["id"].GetString();
  const std::string replay_name = ReplayNameOf(*event);
  absl::optional<v1::DescribeReplayResponse> replay;
  if (replay_name.empty()) {
    if (!Archive(bus, *event, event_id, event_text, written)) return false;
  } else {
    replay = options_.catalog->FindReplay(replay_name);
    if (!replay.has_value()) {
      log::Warn(kComponent, "skipping an event of an unknown replay",
                {{"replay", replay_name}, {"event", event_id}});
      return true;
    }
  }
  const std::string delivery_key = ReplayDeliveryKey(event_id, replay_name);
  for (const std::string& rule_name : bus.compiled->Match(*event)) {
    const v1::Rule& rule = bus.rules.at(rule_name);
    if (replay.has_value() && !ReplayTargetsRule(*replay, rule.arn())) continue;
    for (const v1::Target& target :
         options_.catalog->ListTargets(bus.bus, rule_name)) {
      const std::string name =
          TargetExecutionName(delivery_key, rule.arn(), target.id());
      absl::StatusOr<std::string> input =
          TargetInput(target, rule, *event, event_text);
      if (!input.ok()) {
        if (!Abandon(event_id, event_text, rule, target, name, input.status(),
                     0))
          return false;
        continue;
      }
      if (!StartWithRetries(rule, target, name, *input, event_id, event_text,
                            written))
        return false;
    }
  }
  return true;
}

bool Dispatcher::Abandon(const std::string& event_id,
                         absl::string_view event_text, const v1::Rule& rule,
                         const v1::Target& target, const std::string& name,
                         const absl::Status& error, int attempts) {
  log::Error(kComponent, "event delivery given up",
             {{"rule", rule.arn()},
              {"target", target.id()},
              {"execution", name},
              {"attempts", attempts},
              {"error", error}});
  // The event's offset is committed only once its dead letter is stored:
  // the write is tried until it succeeds, or until stopping (then the
  // event is delivered again, by this replica or another).
  if (options_.dead_letter) {
    const std::string record = DeadLetterRecord(
        event_text, rule.arn(), target.id(), name, error, attempts);
    const std::string topic = DeadLetterTopicFor(target);
    absl::Duration backoff = options_.initial_backoff;
    for (;;) {
      absl::Status stored = options_.dead_letter(topic, event_id, record);
      if (stored.ok()) break;
      log::Error(kComponent, "cannot write the dead-letter record; retrying",
                 {{"rule", rule.arn()},
                  {"target", target.id()},
                  {"execution", name},
                  {"topic", topic},
                  {"error", stored}});
      if (!SleepUnlessStopping(backoff)) return false;
      backoff = std::min(backoff * 2, options_.max_backoff);
    }
  }
  // Counted once its dead letter is written: a caller that sees the count
  // finds the record.
  abandoned_.fetch_add(1);
  if (options_.abandoned_counter != nullptr)
    options_.abandoned_counter->Increment();
  return true;
}

bool Dispatcher::StartWithRetries(const v1::Rule& rule,
                                  const v1::Target& target,
                                  const std::string& name,
                                  const std::string& input,
                                  const std::string& event_id,
                                  absl::string_view event_text,
                                  absl::Time event_time) {
  const v1::RetryPolicy& policy = target.retry_policy();
  const int max_attempts = policy.has_maximum_retry_attempts()
                               ? policy.maximum_retry_attempts() + 1
                               : options_.max_attempts;
  const absl::Duration max_age =
      policy.maximum_event_age_in_seconds() > 0
          ? absl::Seconds(policy.maximum_event_age_in_seconds())
          : options_.max_event_age;
  absl::Duration backoff = options_.initial_backoff;
  for (int attempt = 1;; ++attempt) {
    absl::Status status = options_.start_execution(target.arn(), name, input);
    if (status.ok() || absl::IsAlreadyExists(status)) {
      delivered_.fetch_add(1);
      if (options_.delivered_counter != nullptr)
        options_.delivered_counter->Increment();
      log::Debug(
          kComponent, "event delivered",
          {{"rule", rule.arn()}, {"target", target.id()}, {"execution", name}});
      return true;
    }
    if (!Retryable(status.code()) || attempt >= max_attempts) {
      return Abandon(event_id, event_text, rule, target, name, status,
                     attempt);
    }
    // No retry begins once the event is older than its maximum age.
    if (options_.now() + backoff > event_time + max_age) {
      return Abandon(event_id, event_text, rule, target, name,
                     absl::Status(status.code(),
                                  absl::StrCat("MaximumEventAgeInSeconds (",
                                               absl::ToInt64Seconds(max_age),
                                               ") reached; last error: ",
                                               status.message())),
                     attempt);
    }
    if (!SleepUnlessStopping(backoff)) return false;
    backoff = std::min(backoff * 2, options_.max_backoff);
  }
}

}  // namespace stepflow::eventbus
