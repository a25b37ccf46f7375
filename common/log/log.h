// Leveled, structured logging: one line per call, as `key=value` text or as
// JSON, written to stderr with a single write(2).
//
// This Abseil release has no absl/log, so every Stepflow binary logs through
// this small library. A call names the component that logs, a constant
// message, and any number of typed fields:
//
//   namespace log = stepflow::log;
//   log::SetMinLevel(log::Level::kDebug);         // usually from a flag
//   log::SetFormat(log::Format::kJson);
//   log::Info("gateway", "listening", {{"port", 7233}, {"tls", false}});
//   log::Error("execution", "append failed",
//              {{"arn", arn}, {"error", status}});
//
// Text:  2026-11-25T18:30:00.123Z INFO gateway: listening port=7233 tls=false
// JSON:  {"ts":"2026-11-25T18:30:00.123Z","level":"info",
//         "component":"gateway","msg":"listening","port":7233,"tls":false}
//
// In text form a value is written bare unless it is empty or contains a
// space, `"`, `=`, `\` or a control character; then it is quoted and escaped.
// Messages have control characters escaped so a call is always one line.
//
// Thread-safety: every function may be called concurrently from any thread.
// The settings are process-wide atomics; lines from concurrent calls never
// interleave.
#ifndef STEPFLOW_COMMON_LOG_LOG_H_
#define STEPFLOW_COMMON_LOG_LOG_H_

#include <concepts>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <string>
#include <string_view>
#include <type_traits>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace stepflow::log {

enum class Level { kDebug = 0, kInfo, kWarn, kError };
enum class Format { kText, kJson };

// Process-wide settings; defaults are kInfo, kText, stderr.
void SetMinLevel(Level level);
Level MinLevel();
void SetFormat(Format format);
Format CurrentFormat();

// True if a call at `level` would be written; use it to skip building
// expensive fields.
inline bool Enabled(Level level) { return level >= MinLevel(); }

// Parses "debug", "info", "warn" (or "warning") and "error", ignoring case.
// INVALID_ARGUMENT for anything else.
absl::StatusOr<Level> ParseLevel(std::string_view name);
// Parses "text" and "json", ignoring case.
absl::StatusOr<Format> ParseFormat(std::string_view name);
// "debug", "info", "warn", "error".
std::string_view LevelName(Level level);

// One `key=value` pair of a log call.
//
// A Field does not own its key or its string / Status value: it only refers
// to them, so build Fields in the argument list of a logging call (where
// temporaries live until the call returns) and never store one.
class Field {
 public:
  Field(std::string_view key, std::string_view value)
      : key_(key), type_(Type::kString), string_(value) {}
  Field(std::string_view key, const char* value)
      : key_(key),
        type_(Type::kString),
        string_(value == nullptr ? std::string_view("(null)") : value) {}
  Field(std::string_view key, char* value)
      : Field(key, static_cast<const char*>(value)) {}
  Field(std::string_view key, const std::string& value)
      : key_(key), type_(Type::kString), string_(value) {}
#ifndef ABSL_USES_STD_STRING_VIEW
  // This Abseil build has its own string_view (e.g. Status::message()).
  Field(std::string_view key, absl::string_view value)
      : key_(key), type_(Type::kString), string_(value.data(), value.size()) {}
#endif
  Field(std::string_view key, int64_t value)
      : key_(key), type_(Type::kInt), int_(value) {}
  Field(std::string_view key, int value)
      : key_(key), type_(Type::kInt), int_(value) {}
  Field(std::string_view key, uint64_t value)
      : key_(key), type_(Type::kUint), uint_(value) {}
  Field(std::string_view key, double value)
      : key_(key), type_(Type::kDouble), double_(value) {}
  Field(std::string_view key, bool value)
      : key_(key), type_(Type::kBool), bool_(value) {}
  // Logs status.ToString(); "OK" for an ok status.
  Field(std::string_view key, const absl::Status& value)
      : key_(key), type_(Type::kStatus), status_(&value) {}

  // Every other integer type (uint32_t, long long, size_t on other ABIs...)
  // so that no call is ambiguous. (bool prefers the non-template overload.)
  template <std::integral T>
  Field(std::string_view key, T value)
      : key_(key),
        type_(std::is_signed_v<T> ? Type::kInt : Type::kUint),
        int_(0) {
    if constexpr (std::is_signed_v<T>) {
      int_ = static_cast<int64_t>(value);
    } else {
      uint_ = static_cast<uint64_t>(value);
    }
  }

  // Without this a pointer would silently convert to bool.
  template <typename T>
  Field(std::string_view key, T* value) = delete;

  // Appends ` key=value` (text) or `,"key":value` (JSON) to `out`.
  void AppendText(std::string* out) const;
  void AppendJson(std::string* out) const;

 private:
  enum class Type { kString, kInt, kUint, kDouble, kBool, kStatus };

  std::string_view key_;
  Type type_;
  union {
    std::string_view string_;
    int64_t int_;
    uint64_t uint_;
    double double_;
    bool bool_;
    const absl::Status* status_;
  };
};

// Writes one line if `level` >= MinLevel().
void Write(Level level, std::string_view component, std::string_view message,
           std::initializer_list<Field> fields = {});

inline void Debug(std::string_view component, std::string_view message,
                  std::initializer_list<Field> fields = {}) {
  Write(Level::kDebug, component, message, fields);
}
inline void Info(std::string_view component, std::string_view message,
                 std::initializer_list<Field> fields = {}) {
  Write(Level::kInfo, component, message, fields);
}
inline void Warn(std::string_view component, std::string_view message,
                 std::initializer_list<Field> fields = {}) {
  Write(Level::kWarn, component, message, fields);
}
inline void Error(std::string_view component, std::string_view message,
                  std::initializer_list<Field> fields = {}) {
  Write(Level::kError, component, message, fields);
}

// Formats one line (without the trailing newline) exactly as Write would,
// regardless of MinLevel(). `timestamp` is the RFC 3339 text to use.
std::string FormatLine(Format format, std::string_view timestamp, Level level,
                       std::string_view component, std::string_view message,
                       std::initializer_list<Field> fields);

// For tests: routes every line (without its trailing newline) to `sink`
// instead of stderr; an empty function restores stderr. The sink is called
// under the logger's lock, so it needs no locking of its own, but it must not
// log.
void SetSinkForTest(std::function<void(std::string_view line)> sink);

}  // namespace stepflow::log

#endif  // STEPFLOW_COMMON_LOG_LOG_H_
