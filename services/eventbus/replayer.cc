#include "services/eventbus/replayer.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "common/json/json.h"
#include "common/kafka/client.h"
#include "common/kafka/topic_reader.h"
#include "common/log/log.h"
#include "services/eventbus/archive.h"
#include "services/eventbus/catalog.h"

namespace stepflow::eventbus {
namespace {

constexpr char kComponent[] = "eventbus-replay";

// An archived event a replay sends.
struct Pending {
  absl::Time time;
  std::string id;
  std::string text;  // with "replay-name"
};

}  // namespace

absl::StatusOr<std::unique_ptr<Replayer>> Replayer::Start(
    ReplayerOptions options) {
  if (options.brokers.empty() || options.catalog == nullptr ||
      options.producer == nullptr || !options.owns_replays ||
      options.batch_size < 1) {
    return absl::InvalidArgumentError(
        "the replayer needs brokers, a catalog, a producer and an owner test");
  }
  if (!options.now) options.now = [] { return absl::Now(); };
  return std::unique_ptr<Replayer>(new Replayer(std::move(options)));
}

Replayer::Replayer(ReplayerOptions options)
    : options_(std::move(options)), loop_([this] { Loop(); }) {}

Replayer::~Replayer() {
  stopping_.store(true);
  loop_.join();
}

bool Replayer::SleepUnlessStopping(absl::Duration duration) {
  const absl::Time until = absl::Now() + duration;
  while (absl::Now() < until) {
    if (stopping_.load()) return false;
    absl::SleepFor(std::min(absl::Milliseconds(50), until - absl::Now()));
  }
  return !stopping_.load();
}

void Replayer::Loop() {
  while (SleepUnlessStopping(options_.poll_interval)) {
    if (!options_.owns_replays()) continue;
    for (v1::DescribeReplayResponse& replay : options_.catalog->ListReplays()) {
      if (stopping_.load()) return;
      if (ReplayFinished(replay.state())) continue;
      Run(std::move(replay));
    }
  }
}

void Replayer::Finish(v1::DescribeReplayResponse replay, const char* state,
                      const std::string& reason) {
  replay.set_state(state);
  replay.set_state_reason(reason);
  *replay.mutable_replay_end_time() = ToTimestamp(options_.now());
  absl::Status written = options_.catalog->PutReplay(replay);
  if (!written.ok()) {
    log::Warn(kComponent, "cannot write the end of a replay; it runs again",
              {{"replay", replay.replay_name()}, {"error", written}});
    return;
  }
  finished_.fetch_add(1);
  log::Info(kComponent, "replay ended",
            {{"replay", replay.replay_name()}, {"state", state}});
}

void Replayer::Run(v1::DescribeReplayResponse replay) {
  const std::string& name = replay.replay_name();
  if (options_.catalog->ReplayCancelRequested(name)) {
    Finish(std::move(replay), kReplayCancelled, "");
    return;
  }
  absl::optional<v1::DescribeArchiveResponse> archive;
  for (const v1::DescribeArchiveResponse& candidate :
       options_.catalog->ListArchives()) {
    if (candidate.archive_arn() == replay.event_source_arn()) {
      archive = candidate;
    }
  }
  std::string bus = BusNameFromArn(replay.destination().arn());
  if (!options_.catalog->FindBus(bus).has_value()) bus.clear();
  if (!archive.has_value() || bus.empty()) {
    Finish(std::move(replay), kReplayFailed,
           !archive.has_value()
               ? "The archive of the replay no longer exists."
               : "The destination event bus no longer exists.");
    return;
  }
  if (replay.state() != kReplayRunning) {
    replay.set_state(kReplayRunning);
    absl::Status written = options_.catalog->PutReplay(replay);
    if (!written.ok()) {
      log::Warn(kComponent, "cannot mark a replay running; trying again",
                {{"replay", name}, {"error", written}});
      return;
    }
    log::Info(kComponent, "replay running",
              {{"replay", name}, {"archive", archive->archive_name()}});
  }

  // The archive to its current end; what the window holds, oldest first.
  const absl::Time now = options_.now();
  absl::Mutex mu;
  std::vector<Pending> pending;
  // Archiving is at least once (a delivery repeated after a restart
  // archives its event again): each event id is replayed once.
  absl::flat_hash_set<std::string> ids;
  auto reader = kafka::TopicReader::Start(
      options_.brokers, ArchiveTopic(*archive),
      [&](const kafka::TopicRecord& record) {
        if (!record.value.has_value()) return;
        absl::StatusOr<json::Document> event = json::Parse(*record.value);
        if (!event.ok()) return;
        absl::optional<absl::Time> time = EventTime(*event);
        if (!time.has_value() || !event->HasMember("id") ||
            !(*event)["id"].IsString() ||
            !ReplaySends(replay, archive->retention_days(), *time, now)) {
          return;
        }
        absl::optional<std::string> text = ReplayedEvent(*record.value, name);
        if (!text.has_value()) return;
        absl::MutexLock lock(&mu);
        if (!ids.insert((*event)["id"].GetString()).second) return;
        pending.push_back(
            {*time, (*event)["id"].GetString(), std::move(*text)});
      });
  absl::Status read = reader.ok()
                          ? (*reader)->WaitCaughtUp(options_.read_timeout)
                          : reader.status();
  if (reader.ok()) reader->reset();  // no handler runs after this
  if (!read.ok()) {
    log::Warn(kComponent, "cannot read an archive; the replay tries again",
              {{"replay", name}, {"error", read}});
    return;
  }
  std::stable_sort(
      pending.begin(), pending.end(),
      [](const Pending& a, const Pending& b) { return a.time < b.time; });

  const std::string topic = BusTopic(bus);
  for (size_t from = 0; from < pending.size();
       from += static_cast<size_t>(options_.batch_size)) {
    if (stopping_.load() || !options_.owns_replays()) return;
    if (options_.catalog->ReplayCancelRequested(name)) {
      Finish(std::move(replay), kReplayCancelled, "");
      return;
    }
    const size_t to = std::min(pending.size(),
                               from + static_cast<size_t>(options_.batch_size));
    std::vector<kafka::OutgoingRecord> records;
    for (size_t i = from; i < to; ++i)
      records.push_back({topic, pending[i].id, pending[i].text});
    for (const auto& sent :
         options_.producer->ProduceAll(records, absl::Seconds(10))) {
      if (!sent.ok()) {
        log::Warn(kComponent, "cannot send replayed events; trying again",
                  {{"replay", name}, {"error", sent.status()}});
        return;
      }
    }
    *replay.mutable_event_last_replayed_time() =
        ToTimestamp(pending[to - 1].time);
    absl::Status written = options_.catalog->PutReplay(replay);
    if (!written.ok()) {
      log::Warn(kComponent, "cannot write replay progress",
                {{"replay", name}, {"error", written}});
    }
  }
  log::Info(
      kComponent, "replay sent its events",
      {{"replay", name}, {"events", static_cast<int64_t>(pending.size())}});
  Finish(std::move(replay), kReplayCompleted, "");
}

}  // namespace stepflow::eventbus
