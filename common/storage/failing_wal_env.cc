#include "common/storage/failing_wal_env.h"

#include <chrono>
#include <string>
#include <thread>
#include <utility>

#include "absl/strings/match.h"
#include "rocksdb/env.h"
#include "rocksdb/file_system.h"

namespace stepflow::storage::testing {
namespace {

using rocksdb::IODebugContext;
using rocksdb::IOOptions;
using rocksdb::IOStatus;

struct Switch {
  std::shared_ptr<std::atomic<bool>> failing;
  std::shared_ptr<std::atomic<uint64_t>> refused;
  std::shared_ptr<std::atomic<int64_t>> sync_delay_ms;

  void DelaySync() const {
    if (const int64_t delay = sync_delay_ms->load(); delay > 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(delay));
    }
  }

  // An I/O error while failing, else OK.
  IOStatus Check() const {
    if (!failing->load()) return IOStatus::OK();
    refused->fetch_add(1);
    return IOStatus::IOError("injected WAL write failure");
  }
};

class FailingWalFile : public rocksdb::FSWritableFileOwnerWrapper {
 public:
  FailingWalFile(std::unique_ptr<rocksdb::FSWritableFile> file, Switch fault)
      : FSWritableFileOwnerWrapper(std::move(file)), fault_(std::move(fault)) {}

  IOStatus Append(const rocksdb::Slice& data, const IOOptions& options,
                  IODebugContext* dbg) override {
    if (IOStatus s = fault_.Check(); !s.ok()) return s;
    return FSWritableFileOwnerWrapper::Append(data, options, dbg);
  }
  IOStatus Append(const rocksdb::Slice& data, const IOOptions& options,
                  const rocksdb::DataVerificationInfo& info, IODebugContext* dbg) override {
    if (IOStatus s = fault_.Check(); !s.ok()) return s;
    return FSWritableFileOwnerWrapper::Append(data, options, info, dbg);
  }
  IOStatus Sync(const IOOptions& options, IODebugContext* dbg) override {
    fault_.DelaySync();
    if (IOStatus s = fault_.Check(); !s.ok()) return s;
    return FSWritableFileOwnerWrapper::Sync(options, dbg);
  }
  IOStatus Fsync(const IOOptions& options, IODebugContext* dbg) override {
    fault_.DelaySync();
    if (IOStatus s = fault_.Check(); !s.ok()) return s;
    return FSWritableFileOwnerWrapper::Fsync(options, dbg);
  }

 private:
  Switch fault_;
};

class FailingWalFileSystem : public rocksdb::FileSystemWrapper {
 public:
  FailingWalFileSystem(std::shared_ptr<rocksdb::FileSystem> target, Switch fault)
      : FileSystemWrapper(std::move(target)), fault_(std::move(fault)) {}

  const char* Name() const override { return "FailingWalFileSystem"; }

  IOStatus NewWritableFile(const std::string& name, const rocksdb::FileOptions& options,
                           std::unique_ptr<rocksdb::FSWritableFile>* file,
                           IODebugContext* dbg) override {
    IOStatus s = FileSystemWrapper::NewWritableFile(name, options, file, dbg);
    if (s.ok() && absl::EndsWith(name, ".log")) {
      *file = std::make_unique<FailingWalFile>(std::move(*file), fault_);
    }
    return s;
  }

 private:
  Switch fault_;
};

}  // namespace

FailingWalEnv::FailingWalEnv()
    : failing_(std::make_shared<std::atomic<bool>>(false)),
      refused_(std::make_shared<std::atomic<uint64_t>>(0)),
      sync_delay_ms_(std::make_shared<std::atomic<int64_t>>(0)),
      env_(rocksdb::NewCompositeEnv(std::make_shared<FailingWalFileSystem>(
          rocksdb::FileSystem::Default(), Switch{failing_, refused_, sync_delay_ms_}))) {}

FailingWalEnv::~FailingWalEnv() = default;

}  // namespace stepflow::storage::testing
