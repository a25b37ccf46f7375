#include "common/config/sharding.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace stepflow::config {

uint64_t StableHash(absl::string_view key) {
  uint64_t hash = 14695981039346656037ull;
  for (unsigned char c : key) {
    hash ^= c;
    hash *= 1099511628211ull;
  }
  return hash;
}

uint32_t ShardOf(absl::string_view key, uint32_t shard_count) {
  return static_cast<uint32_t>(StableHash(key) % shard_count);
}

std::string TaskQueuePartitionKey(absl::string_view activity_arn, int partition) {
  if (partition == 0) return std::string(activity_arn);
  return absl::StrCat(activity_arn, "#", partition);
}

absl::StatusOr<ShardMap> ShardMap::Parse(uint32_t shard_count,
                                         absl::string_view servers) {
  if (shard_count == 0) {
    return absl::InvalidArgumentError("shard count must be at least 1");
  }
  std::vector<std::string> list;
  for (absl::string_view part : absl::StrSplit(servers, ',')) {
    part = absl::StripAsciiWhitespace(part);
    if (part.empty()) continue;
    if (part.find(':') == absl::string_view::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("shard server address '", part, "' has no port"));
    }
    list.emplace_back(part);
  }
  if (list.empty()) {
    return absl::InvalidArgumentError("no shard server addresses given");
  }
  if (list.size() > shard_count) {
    return absl::InvalidArgumentError(
        absl::StrCat(list.size(), " shard servers but only ", shard_count,
                     " logical shards"));
  }
  return ShardMap(shard_count, std::move(list));
}

}  // namespace stepflow::config
