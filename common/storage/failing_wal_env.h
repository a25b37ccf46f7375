// FailingWalEnv: a RocksDB environment whose write-ahead-log appends and
// syncs fail while a test asks them to, to exercise what a failed durable
// write does (storage::Store, GroupCommitter and their callers); or whose
// syncs take longer, to hold a durable write in flight.
//
//   storage::testing::FailingWalEnv env;
//   StoreOptions options;
//   options.env = env.env();
//   ... open the store, write ...
//   env.set_failing(true);   // the next WAL append fails: nothing is written
//
// Thread-safe. Must outlive every store opened with it.
#ifndef STEPFLOW_COMMON_STORAGE_FAILING_WAL_ENV_H_
#define STEPFLOW_COMMON_STORAGE_FAILING_WAL_ENV_H_

#include <atomic>
#include <cstdint>
#include <memory>

namespace rocksdb {
class Env;
}  // namespace rocksdb

namespace stepflow::storage::testing {

class FailingWalEnv {
 public:
  FailingWalEnv();
  ~FailingWalEnv();
  FailingWalEnv(const FailingWalEnv&) = delete;
  FailingWalEnv& operator=(const FailingWalEnv&) = delete;

  rocksdb::Env* env() const { return env_.get(); }
  // While true, appends to and syncs of WAL files fail with an I/O error.
  void set_failing(bool failing) { failing_->store(failing); }
  // WAL appends and syncs refused so far.
  uint64_t refused() const { return refused_->load(); }
  // Each WAL sync first sleeps this long (0: not at all).
  void set_sync_delay_ms(int64_t delay_ms) { sync_delay_ms_->store(delay_ms); }

 private:
  std::shared_ptr<std::atomic<bool>> failing_;
  std::shared_ptr<std::atomic<uint64_t>> refused_;
  std::shared_ptr<std::atomic<int64_t>> sync_delay_ms_;
  std::unique_ptr<rocksdb::Env> env_;
};

}  // namespace stepflow::storage::testing

#endif  // STEPFLOW_COMMON_STORAGE_FAILING_WAL_ENV_H_
