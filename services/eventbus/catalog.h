// Catalog: the event buses, rules and targets of a Stepflow cluster, kept in
// a compacted Kafka topic (kConfigTopic) that every gateway and eventbus
// replica reads into the same in-memory view.
//
// One record per object, keyed
//   bus/<bus>                    value: stepflow.v1.EventBus (protobuf JSON)
//   rule/<bus>/<rule>            value: stepflow.v1.Rule
//   target/<bus>/<rule>/<id>     value: stepflow.v1.Target
//   archive/<archive>            value: stepflow.v1.DescribeArchiveResponse
//   archive-stats/<archive>/<incarnation>/<replica>
//                                value: stepflow.v1.Archive, only its
//                                event_count and size_bytes: what one
//                                eventbus replica archived (archive.h)
//   replay/<replay>              value: stepflow.v1.DescribeReplayResponse
//   replay-cancel/<replay>       value: stepflow.v1.CancelReplayRequest
// and a tombstone (null value) when the object is deleted, so compaction
// keeps exactly the live definitions. Names never contain '/' (the gateway
// validates them), so keys are unambiguous. The "default" bus is never
// stored: it always exists.
//
//   ASSIGN_OR_RETURN(std::unique_ptr<Catalog> catalog,
//   Catalog::Start(options));
//   RETURN_IF_ERROR(catalog->WaitReady(absl::Seconds(5)));
//   RETURN_IF_ERROR(catalog->PutBus(bus));   // visible here when it returns
//   absl::optional<v1::EventBus> found = catalog->FindBus("orders");
//
// Writes return once the record is acknowledged by Kafka (acks=all) and read
// back by this replica, so a caller reads its own writes; other replicas see
// it as soon as their readers get to it (well under a second). Two replicas
// writing the same object at once both succeed and the later record wins;
// the checks callers make before writing (e.g. "already exists") are against
// this replica's view.
//
// Thread-safety: all methods may be called concurrently.
#ifndef STEPFLOW_SERVICES_EVENTBUS_CATALOG_H_
#define STEPFLOW_SERVICES_EVENTBUS_CATALOG_H_

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "absl/types/optional.h"
#include "common/config/arn.h"
#include "stepflow/v1/events.pb.h"

namespace stepflow::kafka {
class Producer;
class TopicAdmin;
class TopicReader;
struct TopicRecord;
}  // namespace stepflow::kafka

namespace stepflow::eventbus {

// The compacted topic holding the catalog.
inline constexpr char kConfigTopic[] = "stepflow.eventbus.config";
inline constexpr char kDefaultBusName[] = "default";
// Where shard servers write the history events of executions whose state
// machine has a logging configuration (`stepflow executions logs` reads it);
// the gateway creates it.
inline constexpr char kExecutionLogsTopic[] = "stepflow.execution-logs";

// The Kafka topic carrying the events of bus `bus_name`:
// "stepflow.events.<bus_name>", or for names too long for Kafka a prefix of
// it and a hash of the whole name.
std::string BusTopic(absl::string_view bus_name);

// arn:<partition>:events:<region>:<account>:event-bus/<name>
std::string EventBusArn(const config::ArnScope& scope,
                        absl::string_view bus_name);
// arn:...:rule/<name> on the default bus, arn:...:rule/<bus>/<name> on others.
std::string RuleArn(const config::ArnScope& scope, absl::string_view bus_name,
                    absl::string_view rule_name);

struct CatalogOptions {
  // librdkafka `bootstrap.servers`. Required.
  std::string brokers;
  std::string topic = kConfigTopic;
  // Creates the topic (one partition, compacted) if it is missing; null:
  // someone else creates it. Not owned; must outlive the catalog.
  const kafka::TopicAdmin* admin = nullptr;
  // Writes the records; null for a read-only catalog (writes then fail
  // with FAILED_PRECONDITION). Not owned; must outlive the catalog.
  kafka::Producer* producer = nullptr;
  // For the ARN of the default bus.
  config::ArnScope arn_scope;
  // How long a write may wait for Kafka and for reading itself back.
  absl::Duration write_timeout = absl::Seconds(10);
};

class Catalog {
 public:
  // Starts reading the topic in the background; does not wait for it.
  // INVALID_ARGUMENT for missing options.
  static absl::StatusOr<std::unique_ptr<Catalog>> Start(CatalogOptions options);

  Catalog(const Catalog&) = delete;
  Catalog& operator=(const Catalog&) = delete;
  ~Catalog();

  // OK once the view holds every record stored before this call (creating
  // the topic first if needed). UNAVAILABLE / DEADLINE_EXCEEDED otherwise.
  absl::Status WaitReady(absl::Duration timeout);

  // Reads: copies of the current view.
  absl::optional<v1::EventBus> FindBus(absl::string_view name) const;
  // Sorted by name; includes "default".
  std::vector<v1::EventBus> ListBuses() const;
  absl::optional<v1::Rule> FindRule(absl::string_view bus,
                                    absl::string_view rule) const;
  // The rules of `bus`, sorted by name.
  std::vector<v1::Rule> ListRules(absl::string_view bus) const;
  // The targets of a rule, sorted by id.
  std::vector<v1::Target> ListTargets(absl::string_view bus,
                                      absl::string_view rule) const;
  absl::optional<v1::DescribeArchiveResponse> FindArchive(
      absl::string_view name) const;
  // Sorted by name.
  std::vector<v1::DescribeArchiveResponse> ListArchives() const;
  // The sums of the stats records of `archive` for its `incarnation`.
  void SumArchiveStats(absl::string_view archive, absl::string_view incarnation,
                       int64_t* event_count, int64_t* size_bytes) const;
  absl::optional<v1::DescribeReplayResponse> FindReplay(
      absl::string_view name) const;
  // Sorted by name.
  std::vector<v1::DescribeReplayResponse> ListReplays() const;
  bool ReplayCancelRequested(absl::string_view name) const;

  // Grows with every change applied to the view.
  uint64_t generation() const { return generation_.load(); }

  // Writes.
  absl::Status PutBus(const v1::EventBus& bus);
  // Deletes the bus with its rules and their targets.
  absl::Status DeleteBus(absl::string_view name);
  // `rule.event_bus_name()` names the bus.
  absl::Status PutRule(const v1::Rule& rule);
  absl::Status DeleteRule(absl::string_view bus, absl::string_view rule);
  absl::Status PutTarget(absl::string_view bus, absl::string_view rule,
                         const v1::Target& target);
  absl::Status DeleteTarget(absl::string_view bus, absl::string_view rule,
                            absl::string_view id);
  absl::Status PutArchive(const v1::DescribeArchiveResponse& archive);
  // Deletes the archive with its stats records.
  absl::Status DeleteArchive(absl::string_view name);
  absl::Status PutArchiveStats(absl::string_view archive,
                               absl::string_view incarnation,
                               absl::string_view replica, int64_t event_count,
                               int64_t size_bytes);
  absl::Status PutReplay(const v1::DescribeReplayResponse& replay);
  absl::Status RequestReplayCancel(absl::string_view name);

 private:
  explicit Catalog(CatalogOptions options);
  void Apply(const kafka::TopicRecord& record);
  // Produces one record (nullopt value: tombstone) and waits to read it.
  absl::Status Write(const std::string& key, absl::optional<std::string> value);
  absl::Status EnsureTopic(absl::Duration timeout);

  const CatalogOptions options_;
  std::atomic<uint64_t> generation_{0};
  std::atomic<bool> topic_ensured_{false};

  mutable absl::Mutex mu_;
  // Keyed "<bus>", "<bus>/<rule>" and "<bus>/<rule>/<id>".
  std::map<std::string, v1::EventBus> buses_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, v1::Rule> rules_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, v1::Target> targets_ ABSL_GUARDED_BY(mu_);
  // Keyed by name: archives, replays, replays asked to cancel.
  std::map<std::string, v1::DescribeArchiveResponse> archives_
      ABSL_GUARDED_BY(mu_);
  std::map<std::string, v1::DescribeReplayResponse> replays_
      ABSL_GUARDED_BY(mu_);
  std::set<std::string> replay_cancels_ ABSL_GUARDED_BY(mu_);
  // Keyed "<archive>/<incarnation>/<replica>".
  std::map<std::string, v1::Archive> archive_stats_ ABSL_GUARDED_BY(mu_);

  std::unique_ptr<kafka::TopicReader> reader_;  // last: its thread calls Apply
};

}  // namespace stepflow::eventbus

#endif  // STEPFLOW_SERVICES_EVENTBUS_CATALOG_H_
