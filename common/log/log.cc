#include "common/log/log.h"

#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <string>
#include <utility>

#include "absl/base/attributes.h"
#include "absl/base/const_init.h"
#include "absl/base/thread_annotations.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace stepflow::log {
namespace {

std::atomic<int> g_min_level{static_cast<int>(Level::kInfo)};
std::atomic<int> g_format{static_cast<int>(Format::kText)};

// Serialises output so lines never interleave, and guards the test sink.
ABSL_CONST_INIT absl::Mutex g_mu(absl::kConstInit);
std::function<void(std::string_view)>* g_sink ABSL_GUARDED_BY(g_mu) = nullptr;

absl::string_view AbslView(std::string_view s) {
  return absl::string_view(s.data(), s.size());
}

// Writes all of `data` to stderr, retrying on EINTR and short writes. A
// logger has nowhere to report its own failure, so errors drop the line.
void WriteToStderr(std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::write(STDERR_FILENO, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return;
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
}

constexpr char kHex[] = "0123456789abcdef";

void AppendHexEscape(std::string* out, unsigned char c, bool json) {
  if (json) {
    out->append("\\u00");
  } else {
    out->append("\\x");
  }
  out->push_back(kHex[c >> 4]);
  out->push_back(kHex[c & 0xf]);
}

// Length of the valid UTF-8 sequence starting at s[i], or 0 if invalid.
size_t Utf8SequenceLength(std::string_view s, size_t i) {
  const auto byte = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  unsigned char c = byte(i);
  size_t len;
  uint32_t min;
  if (c < 0x80) return 1;
  if ((c & 0xe0) == 0xc0) {
    len = 2;
    min = 0x80;
  } else if ((c & 0xf0) == 0xe0) {
    len = 3;
    min = 0x800;
  } else if ((c & 0xf8) == 0xf0) {
    len = 4;
    min = 0x10000;
  } else {
    return 0;
  }
  if (i + len > s.size()) return 0;
  uint32_t cp = c & (0x7f >> len);
  for (size_t k = 1; k < len; ++k) {
    if ((byte(i + k) & 0xc0) != 0x80) return 0;
    cp = (cp << 6) | (byte(i + k) & 0x3f);
  }
  if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
  return len;
}

// JSON string contents (without the quotes). Invalid UTF-8 becomes U+FFFD
// so that every line is valid JSON.
void AppendJsonEscaped(std::string* out, std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c >= 0x80) {
      size_t len = Utf8SequenceLength(s, i);
      if (len == 0) {
        out->append("\\ufffd");
        ++i;
      } else {
        out->append(s.data() + i, len);
        i += len;
      }
      continue;
    }
    switch (c) {
      case '"':
        out->append("\\\"");
        break;
      case '\\':
        out->append("\\\\");
        break;
      case '\n':
        out->append("\\n");
        break;
      case '\r':
        out->append("\\r");
        break;
      case '\t':
        out->append("\\t");
        break;
      case '\b':
        out->append("\\b");
        break;
      case '\f':
        out->append("\\f");
        break;
      default:
        if (c < 0x20 || c == 0x7f) {
          AppendHexEscape(out, c, /*json=*/true);
        } else {
          out->push_back(static_cast<char>(c));
        }
    }
    ++i;
  }
}

void AppendJsonString(std::string* out, std::string_view s) {
  out->push_back('"');
  AppendJsonEscaped(out, s);
  out->push_back('"');
}

// Text escapes for control characters; `quote_chars` also escapes `"` and
// `\` (inside a quoted value).
void AppendTextEscaped(std::string* out, std::string_view s, bool quote_chars) {
  for (char ch : s) {
    unsigned char c = static_cast<unsigned char>(ch);
    switch (c) {
      case '\n':
        out->append("\\n");
        break;
      case '\r':
        out->append("\\r");
        break;
      case '\t':
        out->append("\\t");
        break;
      case '"':
      case '\\':
        if (quote_chars) out->push_back('\\');
        out->push_back(ch);
        break;
      default:
        if (c < 0x20 || c == 0x7f) {
          AppendHexEscape(out, c, /*json=*/false);
        } else {
          out->push_back(ch);
        }
    }
  }
}

bool NeedsQuoting(std::string_view s) {
  if (s.empty()) return true;
  for (char ch : s) {
    unsigned char c = static_cast<unsigned char>(ch);
    if (c <= ' ' || c == '"' || c == '=' || c == '\\' || c == 0x7f) {
      return true;
    }
  }
  return false;
}

void AppendTextValue(std::string* out, std::string_view s) {
  if (!NeedsQuoting(s)) {
    out->append(s);
    return;
  }
  out->push_back('"');
  AppendTextEscaped(out, s, /*quote_chars=*/true);
  out->push_back('"');
}

// Shortest text that reads back as the same double; non-finite values have
// no JSON number form, so `finite` reports whether it is a plain number.
std::string FormatDouble(double v, bool* finite) {
  *finite = std::isfinite(v);
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "Infinity" : "-Infinity";
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), v);
  return std::string(buf, end);
}

std::string_view UpperLevelName(Level level) {
  switch (level) {
    case Level::kDebug:
      return "DEBUG";
    case Level::kInfo:
      return "INFO";
    case Level::kWarn:
      return "WARN";
    case Level::kError:
      return "ERROR";
  }
  return "UNKNOWN";
}

std::string NowTimestamp() {
  return absl::FormatTime("%Y-%m-%d%ET%H:%M:%E3SZ", absl::Now(),
                          absl::UTCTimeZone());
}

}  // namespace

void SetMinLevel(Level level) {
  g_min_level.store(static_cast<int>(level), std::memory_order_relaxed);
}

Level MinLevel() {
  return static_cast<Level>(g_min_level.load(std::memory_order_relaxed));
}

void SetFormat(Format format) {
  g_format.store(static_cast<int>(format), std::memory_order_relaxed);
}

Format CurrentFormat() {
  return static_cast<Format>(g_format.load(std::memory_order_relaxed));
}

absl::StatusOr<Level> ParseLevel(std::string_view name) {
  std::string lower = absl::AsciiStrToLower(AbslView(name));
  if (lower == "debug") return Level::kDebug;
  if (lower == "info") return Level::kInfo;
  if (lower == "warn" || lower == "warning") return Level::kWarn;
  if (lower == "error") return Level::kError;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown log level \"", AbslView(name),
                   "\" (want debug, info, warn or error)"));
}

absl::StatusOr<Format> ParseFormat(std::string_view name) {
  std::string lower = absl::AsciiStrToLower(AbslView(name));
  if (lower == "text") return Format::kText;
  if (lower == "json") return Format::kJson;
  return absl::InvalidArgumentError(absl::StrCat(
      "unknown log format \"", AbslView(name), "\" (want text or json)"));
}

std::string_view LevelName(Level level) {
  switch (level) {
    case Level::kDebug:
      return "debug";
    case Level::kInfo:
      return "info";
    case Level::kWarn:
      return "warn";
    case Level::kError:
      return "error";
  }
  return "unknown";
}

void Field::AppendText(std::string* out) const {
  out->push_back(' ');
  out->append(key_);
  out->push_back('=');
  switch (type_) {
    case Type::kString:
      AppendTextValue(out, string_);
      break;
    case Type::kInt:
      absl::StrAppend(out, int_);
      break;
    case Type::kUint:
      absl::StrAppend(out, uint_);
      break;
    case Type::kDouble: {
      bool finite;
      out->append(FormatDouble(double_, &finite));
      break;
    }
    case Type::kBool:
      out->append(bool_ ? "true" : "false");
      break;
    case Type::kStatus: {
      std::string text = status_->ToString();
      AppendTextValue(out, text);
      break;
    }
  }
}

void Field::AppendJson(std::string* out) const {
  out->push_back(',');
  AppendJsonString(out, key_);
  out->push_back(':');
  switch (type_) {
    case Type::kString:
      AppendJsonString(out, string_);
      break;
    case Type::kInt:
      absl::StrAppend(out, int_);
      break;
    case Type::kUint:
      absl::StrAppend(out, uint_);
      break;
    case Type::kDouble: {
      bool finite;
      std::string text = FormatDouble(double_, &finite);
      if (finite) {
        out->append(text);
      } else {
        AppendJsonString(out, text);
      }
      break;
    }
    case Type::kBool:
      out->append(bool_ ? "true" : "false");
      break;
    case Type::kStatus:
      AppendJsonString(out, status_->ToString());
      break;
  }
}

std::string FormatLine(Format format, std::string_view timestamp, Level level,
                       std::string_view component, std::string_view message,
                       std::initializer_list<Field> fields) {
  std::string line;
  line.reserve(64 + message.size() + 24 * fields.size());
  if (format == Format::kJson) {
    line.append("{\"ts\":");
    AppendJsonString(&line, timestamp);
    line.append(",\"level\":");
    AppendJsonString(&line, LevelName(level));
    line.append(",\"component\":");
    AppendJsonString(&line, component);
    line.append(",\"msg\":");
    AppendJsonString(&line, message);
    for (const Field& field : fields) field.AppendJson(&line);
    line.push_back('}');
  } else {
    line.append(timestamp);
    line.push_back(' ');
    line.append(UpperLevelName(level));
    line.push_back(' ');
    AppendTextEscaped(&line, component, /*quote_chars=*/false);
    line.append(": ");
    AppendTextEscaped(&line, message, /*quote_chars=*/false);
    for (const Field& field : fields) field.AppendText(&line);
  }
  return line;
}

void Write(Level level, std::string_view component, std::string_view message,
           std::initializer_list<Field> fields) {
  if (!Enabled(level)) return;
  std::string line = FormatLine(CurrentFormat(), NowTimestamp(), level,
                                component, message, fields);
  absl::MutexLock lock(&g_mu);
  if (g_sink != nullptr) {
    (*g_sink)(line);
    return;
  }
  line.push_back('\n');
  WriteToStderr(line);
}

void SetSinkForTest(std::function<void(std::string_view line)> sink) {
  absl::MutexLock lock(&g_mu);
  delete g_sink;
  g_sink = sink ? new std::function<void(std::string_view)>(std::move(sink))
                : nullptr;
}

}  // namespace stepflow::log
