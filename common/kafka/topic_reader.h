// TopicReader: reads every partition of one topic from its beginning and
// keeps following it, handing each record to a callback — the way each
// replica rebuilds an in-memory view from a compacted topic. No consumer
// group: every reader sees every record, and nothing is committed.
//
//   ASSIGN_OR_RETURN(std::unique_ptr<TopicReader> reader,
//                    TopicReader::Start(brokers, "stepflow.eventbus.config",
//                                       [&](const TopicRecord& r) {
//                                       view.Apply(r); }));
//   RETURN_IF_ERROR(reader->WaitCaughtUp(absl::Seconds(5)));  // view is
//   current ASSIGN_OR_RETURN(RecordPosition at, producer->Produce(...));
//   RETURN_IF_ERROR(reader->WaitFor(at, absl::Seconds(5)));  // reads its write
//
// A topic that does not exist yet is looked for again every 200 ms; its
// partitions are taken from the first metadata that lists it (partitions
// added later are not read).
//
// Thread-safety: all methods may be called concurrently. The handler runs
// on the reader's own thread, one record at a time, in offset order within
// a partition; it must not call back into the reader.
#ifndef STEPFLOW_COMMON_KAFKA_TOPIC_READER_H_
#define STEPFLOW_COMMON_KAFKA_TOPIC_READER_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "absl/types/optional.h"
#include "common/kafka/client.h"

typedef struct rd_kafka_s rd_kafka_t;

namespace stepflow::kafka {

struct TopicRecord {
  int32_t partition = -1;
  int64_t offset = -1;
  std::string key;
  // nullopt for a tombstone.
  absl::optional<std::string> value;
};

class TopicReader {
 public:
  using Handler = std::function<void(const TopicRecord&)>;

  // Starts reading. INVALID_ARGUMENT for an empty broker list or topic.
  // Does not wait for the brokers.
  static absl::StatusOr<std::unique_ptr<TopicReader>> Start(
      const std::string& brokers, const std::string& topic, Handler handler);

  TopicReader(const TopicReader&) = delete;
  TopicReader& operator=(const TopicReader&) = delete;
  // Stops the reading thread; the handler is not called after this returns.
  ~TopicReader();

  // OK once every record stored before this call has been handled.
  // UNAVAILABLE if the brokers cannot say where the topic ends or the topic
  // does not exist, DEADLINE_EXCEEDED if reading does not get there in time.
  absl::Status WaitCaughtUp(absl::Duration timeout);

  // OK once the record at `position` (a Producer result) has been handled.
  absl::Status WaitFor(RecordPosition position, absl::Duration timeout);

 private:
  TopicReader(rd_kafka_t* handle, std::string topic, Handler handler);
  void ReadLoop();
  // Assigns every partition from offset 0; false while the topic is unknown.
  bool Assign();
  // Ends of every partition, by asking the brokers.
  absl::StatusOr<std::vector<int64_t>> HighWatermarks(absl::Duration timeout);

  rd_kafka_t* const handle_;
  const std::string topic_;
  const Handler handler_;
  std::atomic<bool> stopping_{false};

  absl::Mutex mu_;
  // The next offset to handle, per partition; empty until assigned.
  std::vector<int64_t> next_offset_ ABSL_GUARDED_BY(mu_);

  std::thread reader_;  // last: started once everything above exists
};

}  // namespace stepflow::kafka

#endif  // STEPFLOW_COMMON_KAFKA_TOPIC_READER_H_
