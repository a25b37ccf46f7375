#include "services/eventbus/dead_letter.h"

#include <algorithm>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace stepflow::eventbus {
namespace {

constexpr size_t kMaxQueueNameLength = 80;

bool IsQueueNameCharacter(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '-' ||
         c == '_';
}

}  // namespace

absl::StatusOr<std::string> DeadLetterTopicForArn(absl::string_view arn) {
  auto bad = [arn](absl::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat(
        "'", arn, "' is not an SQS queue ARN (arn:aws:sqs:REGION:ACCOUNT:QUEUE): ",
        why));
  };
  const std::vector<absl::string_view> parts = absl::StrSplit(arn, ':');
  if (parts.size() != 6 || parts[0] != "arn") {
    return bad("expected six ':'-separated fields starting with \"arn\"");
  }
  if (!absl::StartsWith(parts[1], "aws")) return bad("unknown partition");
  if (parts[2] != "sqs") return bad("the service must be sqs");
  if (parts[3].empty()) return bad("the region is missing");
  if (parts[4].size() != 12 ||
      !std::all_of(parts[4].begin(), parts[4].end(), [](char c) {
        return absl::ascii_isdigit(static_cast<unsigned char>(c));
      })) {
    return bad("the account must be 12 digits");
  }
  absl::string_view queue = parts[5];
  if (queue.empty() || queue.size() > kMaxQueueNameLength) {
    return bad("the queue name must have 1 to 80 characters");
  }
  absl::string_view stem = queue;
  if (absl::EndsWith(stem, ".fifo")) stem.remove_suffix(5);
  if (stem.empty() ||
      !std::all_of(stem.begin(), stem.end(), IsQueueNameCharacter)) {
    return bad(
        "the queue name may hold only letters, digits, '-' and '_' (and end "
        "in .fifo)");
  }
  return absl::StrCat(kDeadLetterTopicPrefix, queue);
}

std::string DeadLetterTopicFor(const v1::Target& target) {
  if (!target.has_dead_letter_config() ||
      target.dead_letter_config().arn().empty()) {
    return kSharedDeadLetterTopic;
  }
  absl::StatusOr<std::string> topic =
      DeadLetterTopicForArn(target.dead_letter_config().arn());
  return topic.ok() ? *topic : std::string(kSharedDeadLetterTopic);
}

}  // namespace stepflow::eventbus
