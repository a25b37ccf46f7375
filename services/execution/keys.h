// Key layout of the shard server's RocksDB column families. Keys are
// big-endian so that iteration order is shard, then sequence/time order.
// Every per-shard key starts with the 4-byte logical shard id: a logical
// shard is a key prefix, so shards can later move between servers.
#ifndef STEPFLOW_SERVICES_EXECUTION_KEYS_H_
#define STEPFLOW_SERVICES_EXECUTION_KEYS_H_

#include <cstdint>
#include <algorithm>
#include <string>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/storage/store.h"

namespace stepflow::execution::keys {

// Column families.
inline constexpr char kMeta[] = "meta";
inline constexpr char kStateMachines[] = "state_machines";
inline constexpr char kActivities[] = "activities";
inline constexpr char kDefinitions[] = "definitions";
inline constexpr char kExecutions[] = "executions";
inline constexpr char kHistory[] = "history";
inline constexpr char kVisibility[] = "visibility";
inline constexpr char kTasks[] = "tasks";
inline constexpr char kOutbox[] = "outbox";
// Events for the bus (outbox items too), apart so that their deliveries
// never hold back the others'.
inline constexpr char kEventOutbox[] = "event_outbox";
inline constexpr char kTimers[] = "timers";
inline constexpr char kVersions[] = "versions";
inline constexpr char kRetention[] = "retention";
inline constexpr char kMapRuns[] = "map_runs";

// Keys of the meta family.
inline constexpr char kShardCountKey[] = "shard_count";
// The ownership epoch: bumped, durably, each time a server opens the
// folder, before its first transition. RocksDB lets one process at a time
// open a folder, so the value cannot change while a server runs, and
// transitions do not write it again.
inline constexpr char kOwnerEpochKey[] = "owner_epoch";

inline std::string ShardPrefix(uint32_t shard) {
  std::string key;
  storage::AppendUint32(&key, shard);
  return key;
}

// shard | arn
inline std::string ResourceKey(uint32_t shard, absl::string_view arn) {
  std::string key = ShardPrefix(shard);
  key.append(arn.data(), arn.size());
  return key;
}

// state machine arn | 0 | revision id
inline std::string DefinitionKey(absl::string_view state_machine_arn,
                                 absl::string_view revision_id) {
  std::string key(state_machine_arn);
  key.push_back('\0');
  key.append(revision_id.data(), revision_id.size());
  return key;
}

// Published versions of a state machine, newest first:
// shard | 'v' | state machine arn | 0 | ~version.
inline std::string VersionPrefix(uint32_t shard, absl::string_view state_machine_arn) {
  std::string key = ShardPrefix(shard);
  key.push_back('v');
  key.append(state_machine_arn.data(), state_machine_arn.size());
  key.push_back('\0');
  return key;
}
inline std::string VersionKey(uint32_t shard, absl::string_view state_machine_arn,
                              int64_t version) {
  std::string key = VersionPrefix(shard, state_machine_arn);
  storage::AppendUint64(&key, ~static_cast<uint64_t>(version));
  return key;
}

// Aliases of a state machine, by name: shard | 'a' | state machine arn | 0 |
// alias name. Same family as the versions.
inline std::string AliasPrefix(uint32_t shard, absl::string_view state_machine_arn) {
  std::string key = ShardPrefix(shard);
  key.push_back('a');
  key.append(state_machine_arn.data(), state_machine_arn.size());
  key.push_back('\0');
  return key;
}
inline std::string AliasKey(uint32_t shard, absl::string_view state_machine_arn,
                            absl::string_view alias) {
  std::string key = AliasPrefix(shard, state_machine_arn);
  key.append(alias.data(), alias.size());
  return key;
}

// shard | execution arn | 0 [| event id]. Each value is a HistoryChunk: the
// events of one transition, keyed by the first one's id (older stores: one
// HistoryEvent per key).
inline std::string HistoryPrefix(uint32_t shard, absl::string_view execution_arn) {
  std::string key = ResourceKey(shard, execution_arn);
  key.push_back('\0');
  return key;
}
inline std::string HistoryKey(uint32_t shard, absl::string_view execution_arn,
                              int64_t event_id) {
  std::string key = HistoryPrefix(shard, execution_arn);
  storage::AppendUint64(&key, static_cast<uint64_t>(event_id));
  return key;
}

// Visibility index for ListExecutions, newest first within a state machine:
// state machine arn | 0 | ~start nanos | execution arn. Server-local (not
// shard-prefixed): it is an index over whatever this server owns.
inline std::string VisibilityPrefix(absl::string_view state_machine_arn) {
  std::string key(state_machine_arn);
  key.push_back('\0');
  return key;
}
inline std::string VisibilitySortKey(absl::Time start, absl::string_view execution_arn) {
  std::string key;
  storage::AppendUint64(&key, ~static_cast<uint64_t>(absl::ToUnixNanos(start)));
  key.append(execution_arn.data(), execution_arn.size());
  return key;
}

// Closed executions by the time they may be purged: purge time (Unix ms) |
// execution arn. Server-local like the visibility index.
inline std::string RetentionKey(absl::Time purge_at, absl::string_view execution_arn) {
  std::string key;
  storage::AppendUint64(&key, static_cast<uint64_t>(std::max<int64_t>(0, absl::ToUnixMillis(purge_at))));
  key.append(execution_arn.data(), execution_arn.size());
  return key;
}

// Activity task backlog: shard | 'q' | activity arn | 0 | sequence.
inline std::string TaskQueuePrefix(uint32_t shard, absl::string_view activity_arn) {
  std::string key = ShardPrefix(shard);
  key.push_back('q');
  key.append(activity_arn.data(), activity_arn.size());
  key.push_back('\0');
  return key;
}
inline std::string TaskKey(uint32_t shard, absl::string_view activity_arn, uint64_t seq) {
  std::string key = TaskQueuePrefix(shard, activity_arn);
  storage::AppendUint64(&key, seq);
  return key;
}
// Task ids a partition accepted from another server (idempotent enqueue),
// by the day (Unix days) they came: shard | 'i' | day | task id. Whole
// days are dropped at once when they are old enough (TaskIdDayStart).
inline std::string TaskIdDayStart(uint32_t shard, uint32_t day) {
  std::string key = ShardPrefix(shard);
  key.push_back('i');
  storage::AppendUint32(&key, day);
  return key;
}
inline std::string TaskIdKey(uint32_t shard, uint32_t day, absl::string_view task_id) {
  std::string key = TaskIdDayStart(shard, day);
  key.append(task_id.data(), task_id.size());
  return key;
}
// Stores written before ids had days hold shard | 'i' | task id, and a task
// id is an execution ARN, then '#': they all sort in [shard|'i'|"arn:",
// shard|'i'|"arn;").
inline std::string LegacyTaskIdsBegin(uint32_t shard) {
  std::string key = ShardPrefix(shard);
  key.append("iarn:");
  return key;
}
inline std::string LegacyTaskIdsEnd(uint32_t shard) {
  std::string key = ShardPrefix(shard);
  key.append("iarn;");
  return key;
}

// Durable timers, in firing order: fire time (Unix ms) | execution arn | 0 |
// timer id. Server-local like the visibility index.
inline std::string TimerKey(absl::Time fire_at, absl::string_view execution_arn,
                            int64_t timer_id) {
  std::string key;
  storage::AppendUint64(&key, static_cast<uint64_t>(std::max<int64_t>(0, absl::ToUnixMillis(fire_at))));
  key.append(execution_arn.data(), execution_arn.size());
  key.push_back('\0');
  storage::AppendUint64(&key, static_cast<uint64_t>(timer_id));
  return key;
}

// Executions that started map runs, by routing hash (config::RoutableId):
// shard | hash | execution arn. A map run ARN or child execution name
// carries the hash, which finds its parent here.
inline std::string MapRunIndexPrefix(uint32_t shard, uint64_t routing_hash) {
  std::string key = ShardPrefix(shard);
  storage::AppendUint64(&key, routing_hash);
  return key;
}
inline std::string MapRunIndexKey(uint32_t shard, uint64_t routing_hash,
                                  absl::string_view execution_arn) {
  std::string key = MapRunIndexPrefix(shard, routing_hash);
  key.append(execution_arn.data(), execution_arn.size());
  return key;
}

inline std::string OutboxKey(uint64_t seq) {
  std::string key;
  storage::AppendUint64(&key, seq);
  return key;
}

}  // namespace stepflow::execution::keys

#endif  // STEPFLOW_SERVICES_EXECUTION_KEYS_H_
