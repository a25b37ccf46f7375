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

std::string RoutableId(absl::string_view owner_key, absl::string_view uuid) {
  const std::string hash = absl::StrCat(absl::Hex(StableHash(owner_key), absl::kZeroPad16));
  // 8-4-4 hex digits, then the rest of the UUID from its fourth group on.
  std::string id = absl::StrCat(hash.substr(0, 8), "-", hash.substr(8, 4), "-", hash.substr(12, 4));
  if (uuid.size() > 18) absl::StrAppend(&id, uuid.substr(18));
  return id;
}

std::optional<uint64_t> RoutingHashOfId(absl::string_view id) {
  if (id.size() < 19 || id[8] != '-' || id[13] != '-' || id[18] != '-') return std::nullopt;
  uint64_t hash = 0;
  for (size_t i = 0; i < 18; ++i) {
    if (i == 8 || i == 13) continue;
    const char c = id[i];
    int digit;
    if (c >= '0' && c <= '9') {
      digit = c - '0';
    } else if (c >= 'a' && c <= 'f') {
      digit = c - 'a' + 10;
    } else {
      return std::nullopt;
    }
    hash = (hash << 4) | static_cast<uint64_t>(digit);
  }
  return hash;
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
