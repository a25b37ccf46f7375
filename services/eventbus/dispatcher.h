// Dispatcher: the eventbus's delivery loop. It consumes every event bus
// topic (stepflow.events.*) in a Kafka consumer group, matches each event
// against the enabled rules of its bus (patterns::RuleSet, rebuilt when the
// Catalog changes) and starts an execution for each target of each matching
// rule. An event's offset is committed only once every target accepted it,
// so delivery is at least once; the execution name is derived from (event
// id, rule ARN, target id), so a redelivered event starts nothing twice.
//
// Target input, as EventBridge builds it: Input (constant JSON), InputPath
// (a JSONPath into the event), InputTransformer (InputPathsMap variables
// substituted into InputTemplate), or else the whole event.
//
// Failures: a retryable error (UNAVAILABLE, DEADLINE_EXCEEDED, ...) is
// retried with exponential backoff as the target's RetryPolicy says
// (MaximumRetryAttempts, MaximumEventAgeInSeconds; the options' defaults
// where it says nothing); then, or at once for an error retrying cannot fix
// (e.g. the state machine does not exist), the delivery is given up:
// logged, handed to `dead_letter` with the event, rule, target and error
// for the target's dead-letter topic (dead_letter.h: its DeadLetterConfig's,
// else the shared one), and counted. A dead letter that cannot be written
// is retried: the event's offset is not committed before it is stored.
//
// Every target starts its executions with StartExecution, EXPRESS state
// machines' too: EventBridge rules start state machines asynchronously (see
// the README's "Targets").
//
// Scheduled rules (on the default bus, enabled) fire when their schedule
// says (schedule.h): rate() at multiples of its period counted from the
// Unix epoch, cron() at the minutes it names (cron.h). Each
// replica starts the targets' executions of each firing with names derived
// from (rule, firing time, target), so however many replicas run, each
// firing starts each target once. A scheduled event is AWS's: source
// "aws.events", detail-type "Scheduled Event", the rule ARN as its one
// resource, detail {}.
//
// Archives (archive.h): before delivering an original event (one without
// "replay-name") the dispatcher copies it to the topic of each archive of
// its bus whose pattern it matches, if Kafka took it in after the archive
// was created, and counts it in the archive's EventCount and SizeBytes,
// which it writes to the catalog (key archive-stats/.../<replica_id>) every
// `stats_interval`. A replayed event is delivered only to the rules its
// replay names, with execution names of its own, and is not archived. A
// redelivered event is archived again (and counted again); its executions
// are still started once.
//
// Before matching an event the dispatcher makes sure its catalog view holds
// every rule change stored before the event was read, so a rule created
// before an event was put applies to it.
//
// Concurrency: the consumer thread hands each event to a pool of
// `delivery_threads` threads, which take events in the order they were read
// (so the first delivery attempts of a partition's events begin in offset
// order; an event's targets are tried one after another). At most
// `partition_window` events of one partition are past its oldest event not
// yet delivered; when that many are, reading waits. A partition's offset is
// committed (in batches, asynchronously) up to its oldest event not yet
// delivered, so a slow or retrying target holds back the commit of every
// later event of its partition, never the other way round. When the group
// takes partitions away, the events not yet started are dropped, those under
// way get a short while to finish, and what is delivered is committed as
// the partitions go; the rest is delivered again by their next owner.
//
// Thread-safety: constructed and destroyed by one thread; the counters and
// OwnsPartition may be called from any thread. Runs background threads for
// consuming, delivering, and schedules with archive stats.
#ifndef STEPFLOW_SERVICES_EVENTBUS_DISPATCHER_H_
#define STEPFLOW_SERVICES_EVENTBUS_DISPATCHER_H_

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/json/json.h"
#include "stepflow/v1/events.pb.h"

typedef struct rd_kafka_s rd_kafka_t;

namespace prometheus {
class Counter;
}  // namespace prometheus

namespace stepflow::eventbus {

class Catalog;

// The name of the execution `target` gets for event `event_id` through
// `rule_arn`: at most 80 characters of [A-Za-z0-9-_], the same for the same
// three inputs.
std::string TargetExecutionName(absl::string_view event_id,
                                absl::string_view rule_arn,
                                absl::string_view target_id);

// The execution input for `target` from `event` (whose text is
// `event_text`). INVALID_ARGUMENT when a path or template cannot be applied.
absl::StatusOr<std::string> TargetInput(const v1::Target& target,
                                        const v1::Rule& rule,
                                        const json::Value& event,
                                        absl::string_view event_text);

// A given-up delivery as the dead-letter record's JSON value: {"event",
// "rule", "target", "execution", "error", "attempts"}.
std::string DeadLetterRecord(absl::string_view event_text,
                             absl::string_view rule_arn,
                             absl::string_view target_id,
                             absl::string_view execution_name,
                             const absl::Status& error, int attempts);

// Starts one execution; OK also when it already exists (a redelivery).
using StartExecutionFn = std::function<absl::Status(
    const std::string& state_machine_arn, const std::string& name,
    const std::string& input)>;

struct DispatcherOptions {
  std::string brokers;
  std::string group_id = "stepflow-eventbus";
  // Not owned; must outlive the dispatcher.
  Catalog* catalog = nullptr;
  StartExecutionFn start_execution;
  // Stores a given-up delivery in `topic` (DeadLetterTopicFor the target;
  // key: event id, value: DeadLetterRecord); retried with backoff while it
  // fails. Null: given-up deliveries are only logged.
  std::function<absl::Status(const std::string& topic, const std::string& key,
                             const std::string& value)>
      dead_letter;
  // Incremented per execution started and per delivery given up; null: none.
  // Not owned; must outlive the dispatcher.
  prometheus::Counter* delivered_counter = nullptr;
  prometheus::Counter* abandoned_counter = nullptr;
  // Incremented by every event the brokers dropped before this group
  // delivered it (retention, a truncated log); null: none.
  prometheus::Counter* lost_counter = nullptr;
  // librdkafka consumer properties applied after ours (e.g. a shorter
  // "session.timeout.ms" so a replica that died hands over sooner).
  std::map<std::string, std::string> consumer_config;
  // Attempts and event age for targets whose RetryPolicy does not say
  // (AWS: MaximumRetryAttempts + 1 attempts; no retry begins after
  // MaximumEventAgeInSeconds counted from when Kafka took the event in).
  int max_attempts = 8;
  absl::Duration max_event_age = absl::Hours(24);
  // The clock schedules fire by; absl::Now when unset.
  std::function<absl::Time()> now;
  // How often scheduled rules are looked at.
  absl::Duration schedule_interval = absl::Seconds(1);
  // Stores an archived event (topic, key: event id, value: the event);
  // null: nothing is archived.
  std::function<absl::Status(const std::string& topic, const std::string& key,
                             const std::string& value)>
      archive_event;
  // Names this replica in the archive stats records it writes (which needs
  // a writable catalog); unique per process.
  std::string replica_id;
  absl::Duration stats_interval = absl::Seconds(1);
  absl::Duration initial_backoff = absl::Milliseconds(100);
  absl::Duration max_backoff = absl::Seconds(5);
  // Events delivered at once (each thread makes one start_execution call at
  // a time). 1: one event after another, in the order they were read.
  int delivery_threads = 32;
  // Events of one partition read past its oldest event not yet delivered.
  int partition_window = 256;
};

class Dispatcher {
 public:
  // Starts consuming; INVALID_ARGUMENT for missing options.
  static absl::StatusOr<std::unique_ptr<Dispatcher>> Start(
      DispatcherOptions options);
  Dispatcher(const Dispatcher&) = delete;
  Dispatcher& operator=(const Dispatcher&) = delete;
  // Stops consuming; an event being delivered is left uncommitted (another
  // replica delivers it again, starting nothing twice).
  ~Dispatcher();

  // Executions started (or found already started), and deliveries given up.
  int64_t delivered() const { return delivered_.load(); }
  int64_t abandoned() const { return abandoned_.load(); }
  // Events archived (one per archive an event went to).
  int64_t archived() const { return archived_.load(); }
  // Events the brokers no longer held when this group came to read them:
  // a committed offset below a partition's first, or a jump in the
  // offsets read. Each loss is logged as an error.
  int64_t lost() const { return lost_.load(); }

  // The consumer's partitions (internal; public for the rebalance callback).
  struct Assignment;

  // Whether this replica's consumer is assigned `partition` of `topic` now.
  // Thread-safe.
  bool OwnsPartition(const std::string& topic, int partition) const;

 private:
  struct BusRules;
  // The events of one assigned partition handed to the delivery threads and
  // not yet committed. Guarded by progress_mu_.
  struct PartitionProgress {
    std::string topic;
    int32_t partition = 0;
    // Offsets read and not yet part of a delivered prefix: whether each
    // is delivered.
    std::map<int64_t, bool> pending;
    // The offset to commit (the next one to deliver), and the one last
    // committed; -1: none.
    int64_t deliverable_from = -1;
    int64_t committed = -1;
  };
  // One event read, waiting for a delivery thread.
  struct Job {
    std::shared_ptr<PartitionProgress> progress;
    int64_t offset = 0;
    // The rules of the event's bus as of reading; null: a deleted bus.
    std::shared_ptr<const BusRules> bus;
    std::string topic;
    std::string event_text;
    absl::Time written;
  };
  Dispatcher(DispatcherOptions options, rd_kafka_t* consumer,
             std::shared_ptr<Assignment> assignment);
  void Loop();
  // Hands an event read in the current assignment to the delivery threads,
  // once its partition's window has room; false if stopped first.
  bool Enqueue(const std::string& topic, int32_t partition, int64_t offset,
               absl::string_view event_text, absl::Time written);
  void DeliveryLoop();
  // Commits (asynchronously) every partition's delivered prefix that grew
  // since last time.
  void CommitDelivered();
  // The group is taking every partition away (on the consumer thread, in
  // the rebalance callback): see the class comment.
  void OnRevoke();
  // Rebuilds the matchers if the catalog changed.
  void Refresh();
  // False if stopped before every target accepted the event.
  // `written`: when Kafka took the event in.
  bool Deliver(const BusRules& bus, const std::string& topic,
               absl::string_view event_text, absl::Time written);
  // Copies an original event to the archives of `bus` it matches; false if
  // stopped first.
  bool Archive(const BusRules& bus, const json::Value& event,
               const std::string& event_id, absl::string_view event_text,
               absl::Time written);
  // Writes the archive stats that changed since the last call.
  void FlushArchiveStats();
  // Retries `start` per the target's RetryPolicy, else the options; false
  // if stopped meanwhile. `event_time`: when Kafka took the event in (a
  // scheduled event: its firing time), which its age counts from.
  bool StartWithRetries(const v1::Rule& rule, const v1::Target& target,
                        const std::string& name, const std::string& input,
                        const std::string& event_id,
                        absl::string_view event_text, absl::Time event_time);
  // Gives a delivery up: logs it, stores its dead letter (retrying the
  // write) and counts it; false if stopped before the dead letter was
  // stored.
  bool Abandon(const std::string& event_id, absl::string_view event_text,
               const v1::Rule& rule, const v1::Target& target,
               const std::string& name, const absl::Status& error,
               int attempts);
  bool SleepUnlessStopping(absl::Duration duration);
  void ScheduleLoop();
  // Starts the targets of `rule` for its firing at `at`.
  void FireScheduled(const v1::Rule& rule, absl::Time at);

  const DispatcherOptions options_;
  rd_kafka_t* const consumer_;
  std::atomic<bool> stopping_{false};
  std::atomic<int64_t> delivered_{0};
  std::atomic<int64_t> abandoned_{0};
  std::atomic<int64_t> archived_{0};
  std::atomic<int64_t> lost_{0};
  // Logs and counts events [from, to) of a partition as lost.
  void ReportLost(const std::string& topic, int32_t partition, int64_t from, int64_t to);
  // Events and bytes this replica archived, by "<archive>/<incarnation>",
  // and whether they changed since written to the catalog.
  struct ArchiveStats {
    int64_t event_count = 0;
    int64_t size_bytes = 0;
    bool dirty = false;
  };
  absl::Mutex stats_mu_;
  std::map<std::pair<std::string, std::string>, ArchiveStats> archive_stats_
      ABSL_GUARDED_BY(stats_mu_);
  const std::shared_ptr<Assignment> assignment_;
  // Touched by the loop thread only.
  uint64_t generation_ = ~uint64_t{0};
  std::map<std::string, std::shared_ptr<BusRules>> rules_by_topic_;
  absl::Time caught_up_from_ = absl::InfinitePast();
  // Events read and not yet committed, by partition; the delivery queue.
  absl::Mutex progress_mu_;
  std::map<std::pair<std::string, int32_t>, std::shared_ptr<PartitionProgress>>
      progress_ ABSL_GUARDED_BY(progress_mu_);
  std::deque<Job> queue_ ABSL_GUARDED_BY(progress_mu_);
  // Delivery threads delivering an event.
  int delivering_ ABSL_GUARDED_BY(progress_mu_) = 0;
  // Last: started once everything above exists.
  std::vector<std::thread> deliverers_;
  std::thread loop_;
  std::thread scheduler_;
};

}  // namespace stepflow::eventbus

#endif  // STEPFLOW_SERVICES_EVENTBUS_DISPATCHER_H_
