#include "common/storage/store.h"

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "rocksdb/cache.h"
#include "rocksdb/comparator.h"
#include "rocksdb/convenience.h"
#include "rocksdb/db.h"
#include "rocksdb/filter_policy.h"
#include "rocksdb/options.h"
#include "rocksdb/slice.h"
#include "rocksdb/slice_transform.h"
#include "rocksdb/statistics.h"
#include "rocksdb/status.h"
#include "rocksdb/table.h"
#include "rocksdb/write_batch.h"

namespace stepflow::storage {
namespace {

// The insert-hint prefix of a sequenced family's keys: all but the
// trailing 8-byte sequence.
class KeyWithoutSequence final : public rocksdb::SliceTransform {
 public:
  const char* Name() const override { return "stepflow.KeyWithoutSequence"; }
  rocksdb::Slice Transform(const rocksdb::Slice& key) const override {
    return rocksdb::Slice(key.data(), key.size() - kSequenceBytes);
  }
  bool InDomain(const rocksdb::Slice& key) const override { return key.size() > kSequenceBytes; }

 private:
  static constexpr size_t kSequenceBytes = 8;
};

bool Listed(const std::vector<std::string>& names, const std::string& name) {
  return std::find(names.begin(), names.end(), name) != names.end();
}

absl::string_view AbslView(std::string_view s) {
  return absl::string_view(s.data(), s.size());
}

rocksdb::Slice ToSlice(std::string_view s) {
  return rocksdb::Slice(s.data(), s.size());
}

std::string_view ToView(const rocksdb::Slice& s) {
  return std::string_view(s.data(), s.size());
}

// rocksdb::WriteBatch only accepts column families as handles, but all it
// reads from one is the family's id (and its comparator, for the timestamp
// size). Our batches are built without a Store at hand, so they name
// families by id through this stand-in; FamilyId *is* the RocksDB column
// family id, and the DB resolves it when the batch is written.
class FamilyIdHandle final : public rocksdb::ColumnFamilyHandle {
 public:
  explicit FamilyIdHandle(FamilyId id) : id_(static_cast<uint32_t>(id)) {}

  const std::string& GetName() const override {
    static const std::string* const kName = new std::string("(by id)");
    return *kName;
  }
  uint32_t GetID() const override { return id_; }
  rocksdb::Status GetDescriptor(rocksdb::ColumnFamilyDescriptor*) override {
    return rocksdb::Status::NotSupported("FamilyIdHandle has no descriptor");
  }
  const rocksdb::Comparator* GetComparator() const override {
    return rocksdb::BytewiseComparator();
  }

 private:
  uint32_t id_;
};

// Crashes with a message: a batch operation failing means a key or value
// over 4 GiB, which no caller of ours produces.
void CheckBatchOp(const rocksdb::Status& s, const char* op) {
  if (s.ok()) return;
  std::fprintf(stderr, "stepflow::storage::WriteBatch::%s failed: %s\n", op,
               s.ToString().c_str());
  std::abort();
}

// The smallest string greater than every string starting with `prefix`, or
// nullopt if there is none (empty or all-0xff prefix).
std::optional<std::string> PrefixSuccessor(std::string_view prefix) {
  std::string s(prefix);
  while (!s.empty()) {
    unsigned char last = static_cast<unsigned char>(s.back());
    if (last != 0xff) {
      s.back() = static_cast<char>(last + 1);
      return s;
    }
    s.pop_back();
  }
  return std::nullopt;
}

rocksdb::CompressionType PickCompression(
    std::initializer_list<rocksdb::CompressionType> preferred) {
  std::vector<rocksdb::CompressionType> supported =
      rocksdb::GetSupportedCompressions();
  for (rocksdb::CompressionType type : preferred) {
    if (std::find(supported.begin(), supported.end(), type) !=
        supported.end()) {
      return type;
    }
  }
  return rocksdb::kNoCompression;
}

}  // namespace

absl::Status FromRocksStatus(const rocksdb::Status& s) {
  if (s.ok()) return absl::OkStatus();
  std::string message = absl::StrCat("rocksdb: ", s.ToString());
  if (s.IsNotFound()) return absl::NotFoundError(message);
  if (s.IsInvalidArgument()) return absl::InvalidArgumentError(message);
  if (s.IsCorruption()) return absl::DataLossError(message);
  if (s.IsNotSupported()) return absl::UnimplementedError(message);
  if (s.IsNoSpace() || s.IsMemoryLimit()) {
    return absl::ResourceExhaustedError(message);
  }
  if (s.IsTimedOut()) return absl::DeadlineExceededError(message);
  if (s.IsBusy() || s.IsAborted()) return absl::AbortedError(message);
  if (s.IsIOError() || s.IsTryAgain() || s.IsShutdownInProgress()) {
    return absl::UnavailableError(message);
  }
  return absl::InternalError(message);
}

// ---------------------------------------------------------------- WriteBatch

WriteBatch::WriteBatch() : rep_(std::make_unique<rocksdb::WriteBatch>()) {}
WriteBatch::~WriteBatch() = default;
WriteBatch::WriteBatch(WriteBatch&& other) noexcept
    : rep_(std::exchange(other.rep_, std::make_unique<rocksdb::WriteBatch>())),
      families_(std::move(other.families_)) {
  other.families_.clear();
}
WriteBatch& WriteBatch::operator=(WriteBatch&& other) noexcept {
  if (this != &other) {
    rep_ = std::exchange(other.rep_, std::make_unique<rocksdb::WriteBatch>());
    families_ = std::move(other.families_);
    other.families_.clear();
  }
  return *this;
}

void WriteBatch::Put(FamilyId family, std::string_view key,
                     std::string_view value) {
  FamilyIdHandle handle(family);
  CheckBatchOp(rep_->Put(&handle, ToSlice(key), ToSlice(value)), "Put");
  NoteFamily(family);
}

void WriteBatch::Delete(FamilyId family, std::string_view key) {
  FamilyIdHandle handle(family);
  CheckBatchOp(rep_->Delete(&handle, ToSlice(key)), "Delete");
  NoteFamily(family);
}

void WriteBatch::DeleteRange(FamilyId family, std::string_view begin, std::string_view end) {
  FamilyIdHandle handle(family);
  CheckBatchOp(rep_->DeleteRange(&handle, ToSlice(begin), ToSlice(end)), "DeleteRange");
  NoteFamily(family);
}

void WriteBatch::NoteFamily(FamilyId family) {
  if (std::find(families_.begin(), families_.end(), family) == families_.end()) {
    families_.push_back(family);
  }
}

WriteBatch WriteBatch::Concat(const std::vector<const WriteBatch*>& batches) {
  // RocksDB's encoding of a batch: an 8-byte sequence number and a 4-byte
  // little-endian operation count, then the operations.
  constexpr size_t kHeader = 12;
  size_t bytes = kHeader;
  uint32_t count = 0;
  for (const WriteBatch* batch : batches) {
    bytes += batch->rep_->GetDataSize() - kHeader;
    count += batch->rep_->Count();
  }
  std::string rep;
  rep.reserve(bytes);
  rep.append(kHeader, '\0');
  for (int i = 0; i < 4; ++i) rep[8 + i] = static_cast<char>((count >> (8 * i)) & 0xff);
  WriteBatch merged;
  for (const WriteBatch* batch : batches) {
    rep.append(batch->rep_->Data(), kHeader, std::string::npos);
    for (FamilyId family : batch->families_) merged.NoteFamily(family);
  }
  merged.rep_ = std::make_unique<rocksdb::WriteBatch>(std::move(rep));
  return merged;
}

void WriteBatch::Clear() {
  rep_->Clear();
  families_.clear();
}

size_t WriteBatch::Count() const { return rep_->Count(); }

size_t WriteBatch::ByteSize() const { return rep_->GetDataSize(); }

// --------------------------------------------------------------------- Store

struct Store::Impl {
  std::unique_ptr<rocksdb::DB> db;
  // Tickers only (no timers): counts WAL fsyncs for the group-commit
  // metrics at the cost of a few atomic increments per write.
  std::shared_ptr<rocksdb::Statistics> statistics;
  std::atomic<uint64_t> synced_writes{0};
  std::function<void(const absl::Status&)> on_write_failure;
  mutable absl::Mutex failure_mu;
  absl::Status write_failure ABSL_GUARDED_BY(failure_mu);
  // Parallel vectors, "default" first.
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  std::vector<std::string> names;

  // nullptr if `family` is not an open family.
  rocksdb::ColumnFamilyHandle* Handle(FamilyId family) const {
    for (rocksdb::ColumnFamilyHandle* handle : handles) {
      if (static_cast<FamilyId>(handle->GetID()) == family) return handle;
    }
    return nullptr;
  }

  ~Impl() {
    if (db == nullptr) return;
    for (rocksdb::ColumnFamilyHandle* handle : handles) {
      // Only fails for a handle of another DB, which cannot happen here.
      db->DestroyColumnFamilyHandle(handle).PermitUncheckedError();
    }
    // A destructor has no one to report to; RocksDB syncs what it must
    // (synced writes are already durable) and Close only fails on I/O errors
    // that the next Open reports again.
    db->Close().PermitUncheckedError();
  }
};

Store::Store(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Store::~Store() = default;

absl::StatusOr<std::unique_ptr<Store>> Store::Open(
    const StoreOptions& options) {
  if (options.path.empty()) {
    return absl::InvalidArgumentError("StoreOptions.path is empty");
  }

  rocksdb::DBOptions db_options;
  // Two background threads for flushes and compactions (the machine has 2
  // cores); writes are small and frequent, so keep the simple write path:
  // no pipelined writes, and the WAL is written on every Write.
  db_options.IncreaseParallelism(2);
  db_options.create_if_missing = options.create_if_missing;
  if (options.env != nullptr) db_options.env = options.env;
  db_options.create_missing_column_families = true;
  db_options.enable_pipelined_write = false;
  db_options.manual_wal_flush = false;
  // Writers waiting for a group commit block at once instead of spinning
  // and yielding for up to 100 us first: with dozens of writers waiting on
  // an fsync and two cores, the spinning took CPU from the work.
  db_options.enable_write_thread_adaptive_yield = false;
  // With several families a quiet one would otherwise pin old WAL files.
  db_options.max_total_wal_size = 256 << 20;
  // All families' memtables together stay within four of one family's
  // (128 MiB by default): each family may otherwise hold up to four full
  // memtables, and a busy server's resident memory grew by that much.
  db_options.db_write_buffer_size = 4 * options.write_buffer_bytes;
  db_options.bytes_per_sync = 1 << 20;
  db_options.keep_log_file_num = 5;
  db_options.max_log_file_size = 16 << 20;
  std::shared_ptr<rocksdb::Statistics> statistics = rocksdb::CreateDBStatistics();
  statistics->set_stats_level(rocksdb::StatsLevel::kExceptTimers);
  db_options.statistics = statistics;

  rocksdb::BlockBasedTableOptions table_options;
  table_options.block_cache = rocksdb::NewLRUCache(options.block_cache_bytes);
  table_options.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
  table_options.cache_index_and_filter_blocks = true;
  table_options.pin_l0_filter_and_index_blocks_in_cache = true;
  std::shared_ptr<rocksdb::TableFactory> table_factory(
      rocksdb::NewBlockBasedTableFactory(table_options));

  rocksdb::ColumnFamilyOptions cf_options;
  cf_options.write_buffer_size = options.write_buffer_bytes;
  cf_options.max_write_buffer_number = 4;
  cf_options.level_compaction_dynamic_level_bytes = true;
  cf_options.compression =
      PickCompression({rocksdb::kLZ4Compression, rocksdb::kSnappyCompression});
  cf_options.bottommost_compression = PickCompression(
      {rocksdb::kZSTD, rocksdb::kLZ4Compression, rocksdb::kSnappyCompression});
  cf_options.table_factory = table_factory;

  // RocksDB must open every family the database has; start from the
  // requested ones and add any others found on disk.
  std::vector<std::string> names = {rocksdb::kDefaultColumnFamilyName};
  auto add_name = [&names](const std::string& name) {
    if (std::find(names.begin(), names.end(), name) == names.end()) {
      names.push_back(name);
    }
  };
  for (const std::string& name : options.column_families) {
    if (name.empty()) {
      return absl::InvalidArgumentError("empty column family name");
    }
    add_name(name);
  }
  std::vector<std::string> existing;
  // Fails when there is no database yet; DB::Open then creates one or
  // reports that it is missing.
  if (rocksdb::DB::ListColumnFamilies(db_options, options.path, &existing)
          .ok()) {
    for (const std::string& name : existing) add_name(name);
  }

  std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
  descriptors.reserve(names.size());
  // Insert hints (sequenced and rewritten families) are ignored with
  // concurrent memtable writes; nearly every write comes through one
  // thread (the group committer's) anyway.
  db_options.allow_concurrent_memtable_write =
      options.sequenced_families.empty() && options.rewritten_families.empty();
  const auto sequenced = std::make_shared<KeyWithoutSequence>();
  const std::shared_ptr<const rocksdb::SliceTransform> whole_key(rocksdb::NewNoopTransform());
  for (const std::string& name : names) {
    rocksdb::ColumnFamilyOptions family = cf_options;
    if (Listed(options.point_lookup_families, name)) {
      family.memtable_whole_key_filtering = true;
      family.memtable_prefix_bloom_size_ratio = 0.02;
    }
    if (Listed(options.sequenced_families, name)) {
      family.memtable_insert_with_hint_prefix_extractor = sequenced;
    } else if (Listed(options.rewritten_families, name)) {
      family.memtable_insert_with_hint_prefix_extractor = whole_key;
    }
    descriptors.emplace_back(name, family);
  }

  auto impl = std::make_unique<Impl>();
  rocksdb::DB* db = nullptr;
  rocksdb::Status s = rocksdb::DB::Open(db_options, options.path, descriptors,
                                        &impl->handles, &db);
  if (!s.ok()) {
    return absl::Status(
        FromRocksStatus(s).code(),
        absl::StrCat("opening store at ", options.path, ": ", s.ToString()));
  }
  impl->db.reset(db);
  impl->statistics = std::move(statistics);
  impl->names = std::move(names);
  impl->on_write_failure = options.on_write_failure;
  return std::unique_ptr<Store>(new Store(std::move(impl)));
}

absl::StatusOr<FamilyId> Store::Family(std::string_view name) const {
  for (size_t i = 0; i < impl_->names.size(); ++i) {
    if (impl_->names[i] == name) {
      return static_cast<FamilyId>(impl_->handles[i]->GetID());
    }
  }
  return absl::NotFoundError(
      absl::StrCat("no column family \"", AbslView(name), "\""));
}

std::vector<std::string> Store::FamilyNames() const { return impl_->names; }

uint64_t Store::WalSyncs() const {
  return impl_->statistics->getTickerCount(rocksdb::WAL_FILE_SYNCED);
}

uint64_t Store::SyncedWrites() const {
  return impl_->synced_writes.load(std::memory_order_relaxed);
}

absl::StatusOr<std::optional<std::string>> Store::Get(
    FamilyId family, std::string_view key) const {
  rocksdb::ColumnFamilyHandle* handle = impl_->Handle(family);
  if (handle == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown column family id ", family));
  }
  std::string value;
  rocksdb::Status s =
      impl_->db->Get(rocksdb::ReadOptions(), handle, ToSlice(key), &value);
  if (s.IsNotFound()) return std::nullopt;
  if (!s.ok()) return FromRocksStatus(s);
  return std::optional<std::string>(std::move(value));
}

absl::Status Store::CheckFamilies(const WriteBatch& batch) const {
  for (FamilyId family : batch.families_) {
    if (impl_->Handle(family) == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("write batch names unknown column family id ", family));
    }
  }
  return absl::OkStatus();
}

absl::Status Store::Write(WriteBatch& batch, bool sync) {
  if (absl::Status known = CheckFamilies(batch); !known.ok()) return known;
  if (batch.empty()) return absl::OkStatus();
  rocksdb::WriteOptions write_options;
  write_options.sync = sync;
  if (sync) impl_->synced_writes.fetch_add(1, std::memory_order_relaxed);
  const rocksdb::Status written = impl_->db->Write(write_options, batch.rep_.get());
  if (written.ok()) return absl::OkStatus();
  absl::Status status = FromRocksStatus(written);
  if (written.IsIOError() || written.IsNoSpace() || written.IsCorruption()) {
    bool first = false;
    {
      absl::MutexLock lock(&impl_->failure_mu);
      if (impl_->write_failure.ok()) {
        impl_->write_failure = status;
        first = true;
      }
    }
    if (first && impl_->on_write_failure) impl_->on_write_failure(status);
  }
  return status;
}

absl::Status Store::WriteFailure() const {
  absl::MutexLock lock(&impl_->failure_mu);
  return impl_->write_failure;
}

absl::Status Store::Scan(
    FamilyId family, std::string_view prefix, std::string_view start,
    bool reverse,
    absl::FunctionRef<bool(std::string_view key, std::string_view value)> fn)
    const {
  rocksdb::ColumnFamilyHandle* handle = impl_->Handle(family);
  if (handle == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown column family id ", family));
  }

  // The bounds let RocksDB stop at the edge of the prefix range without
  // reading (and skipping tombstones of) the keys beyond it.
  const std::optional<std::string> successor = PrefixSuccessor(prefix);
  const std::string lower(prefix);
  rocksdb::Slice lower_slice(lower);
  rocksdb::Slice upper_slice;
  rocksdb::ReadOptions read_options;
  if (!prefix.empty()) read_options.iterate_lower_bound = &lower_slice;
  if (successor.has_value()) {
    upper_slice = rocksdb::Slice(*successor);
    read_options.iterate_upper_bound = &upper_slice;
  }

  std::unique_ptr<rocksdb::Iterator> it(
      impl_->db->NewIterator(read_options, handle));
  if (!reverse) {
    if (start.empty() || start <= prefix) {
      it->Seek(ToSlice(prefix));
    } else {
      it->Seek(ToSlice(start));
    }
  } else {
    if (!start.empty() && start < prefix) {
      return absl::OkStatus();  // Every key with the prefix is > start.
    }
    if (start.empty() ||
        (successor.has_value() && std::string_view(*successor) <= start)) {
      it->SeekToLast();
    } else {
      it->SeekForPrev(ToSlice(start));
    }
  }

  for (; it->Valid(); reverse ? it->Prev() : it->Next()) {
    std::string_view key = ToView(it->key());
    // The bounds already guarantee this; kept so that a bound bug can only
    // end a scan early, never leak keys of another prefix.
    if (key.substr(0, prefix.size()) != prefix) break;
    if (!fn(key, ToView(it->value()))) break;
  }
  return FromRocksStatus(it->status());
}

absl::Status Store::Flush() {
  rocksdb::FlushOptions flush_options;
  flush_options.wait = true;
  return FromRocksStatus(impl_->db->Flush(flush_options, impl_->handles));
}

// ---------------------------------------------------------------- Key coding

void AppendUint64(std::string* key, uint64_t v) {
  char buf[8];
  for (int i = 7; i >= 0; --i) {
    buf[i] = static_cast<char>(v & 0xff);
    v >>= 8;
  }
  key->append(buf, sizeof(buf));
}

void AppendUint32(std::string* key, uint32_t v) {
  char buf[4];
  for (int i = 3; i >= 0; --i) {
    buf[i] = static_cast<char>(v & 0xff);
    v >>= 8;
  }
  key->append(buf, sizeof(buf));
}

namespace {
uint64_t DecodeBigEndian(std::string_view bytes, size_t width,
                         const char* what) {
  if (bytes.size() < width) {
    std::fprintf(stderr,
                 "stepflow::storage::%s: need %zu bytes, got %zu (corrupt "
                 "key?)\n",
                 what, width, bytes.size());
    std::abort();
  }
  uint64_t v = 0;
  for (size_t i = 0; i < width; ++i) {
    v = (v << 8) | static_cast<unsigned char>(bytes[i]);
  }
  return v;
}
}  // namespace

uint64_t DecodeUint64(std::string_view bytes) {
  return DecodeBigEndian(bytes, 8, "DecodeUint64");
}

uint32_t DecodeUint32(std::string_view bytes) {
  return static_cast<uint32_t>(DecodeBigEndian(bytes, 4, "DecodeUint32"));
}

}  // namespace stepflow::storage
