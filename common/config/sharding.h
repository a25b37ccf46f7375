// Logical shards and the map from shards to shard servers.
//
// Every execution, state machine and activity belongs to one logical shard,
// chosen by a stable hash of its ARN. The shard count is fixed when a
// cluster is created. Shard servers own shards by `shard % replicas ==
// ordinal`, so adding logical shards never re-hashes anything.
//
//   ShardMap map(256, {"10.0.0.1:7300", "10.0.0.2:7300"});
//   const std::string& owner = map.ServerFor(execution_arn);
//
// Immutable after construction; safe to share between threads.
#ifndef STEPFLOW_COMMON_CONFIG_SHARDING_H_
#define STEPFLOW_COMMON_CONFIG_SHARDING_H_

#include <cstdint>
#include <optional>
#include <string>
#include "absl/strings/string_view.h"
#include <vector>

#include "absl/status/statusor.h"

namespace stepflow::config {

inline constexpr uint32_t kDefaultShardCount = 256;

// 64-bit FNV-1a: stable across processes, platforms and releases (never
// change it: stored data is placed by it).
uint64_t StableHash(absl::string_view key);

uint32_t ShardOf(absl::string_view key, uint32_t shard_count);

// Activity task queues are split into partitions, each placed on the shard
// of its partition key, so one busy activity spreads over shard servers.
// The count is a cluster setting like the shard count: every gateway and
// shard server must use the same one.
inline constexpr int kDefaultTaskQueuePartitions = 4;
inline constexpr int kMaxTaskQueuePartitions = 256;

// Partition 0 is keyed by the activity ARN itself (so it lives with the
// activity); partition p > 0 by "ARN#p".
std::string TaskQueuePartitionKey(absl::string_view activity_arn, int partition);

// Ids that must route to the shard of another resource (a map run and its
// child executions live in their parent execution's record): UUID-shaped,
// with the first 16 hex digits (the 8-4-4 groups) replaced by the stable
// hash of `owner_key`. ShardOfRoutableId gives ShardOf(owner_key) back.
std::string RoutableId(absl::string_view owner_key, absl::string_view uuid);
// The owner's stable hash carried by `id`; nullopt when `id` is not one.
std::optional<uint64_t> RoutingHashOfId(absl::string_view id);
inline uint32_t ShardOfRoutingHash(uint64_t hash, uint32_t shard_count) {
  return static_cast<uint32_t>(hash % shard_count);
}

// Whether server `ordinal` of `replicas` owns `shard`.
inline bool Owns(uint32_t shard, int ordinal, int replicas) {
  return static_cast<int>(shard % static_cast<uint32_t>(replicas)) == ordinal;
}

class ShardMap {
 public:
  ShardMap(uint32_t shard_count, std::vector<std::string> servers)
      : shard_count_(shard_count), servers_(std::move(servers)) {}

  // Parses "host:port,host:port,...": server i is ordinal i.
  static absl::StatusOr<ShardMap> Parse(uint32_t shard_count,
                                        absl::string_view servers);

  uint32_t shard_count() const { return shard_count_; }
  const std::vector<std::string>& servers() const { return servers_; }
  int OrdinalForShard(uint32_t shard) const {
    return static_cast<int>(shard % servers_.size());
  }
  int OrdinalFor(absl::string_view key) const {
    return OrdinalForShard(ShardOf(key, shard_count_));
  }
  const std::string& ServerFor(absl::string_view key) const {
    return servers_[OrdinalFor(key)];
  }

 private:
  uint32_t shard_count_;
  std::vector<std::string> servers_;
};

}  // namespace stepflow::config

#endif  // STEPFLOW_COMMON_CONFIG_SHARDING_H_
