// The JSON value type used everywhere in Stepflow: RapidJSON's DOM.
//
// RapidJSON is mutable, keeps object keys in document order (AWS output
// preserves key order) and parses a 10 KiB document about 4x faster than
// nlohmann::json; see the README's design notes.
//
//   absl::StatusOr<json::Document> doc = json::Parse(R"({"a": 1})");
//   if (!doc.ok()) return doc.status();
//   std::string text = json::Serialize(*doc);
//
// Functions here are thread-safe; a Document is not (one owner at a time).
#ifndef STEPFLOW_COMMON_JSON_JSON_H_
#define STEPFLOW_COMMON_JSON_JSON_H_

#include <string>
#include "absl/strings/string_view.h"

#include "absl/status/statusor.h"
#include "rapidjson/document.h"

namespace stepflow::json {

using Document = rapidjson::Document;
using Value = rapidjson::Value;
using Allocator = rapidjson::Document::AllocatorType;

// How deep arrays and objects may nest in parsed text. Deeper text is
// refused: parsing it, and walking the value afterwards, would recurse past
// what a thread's stack holds.
inline constexpr int kMaxDepth = 1000;

// Parses `text` as one JSON value (numbers at full double precision).
// INVALID_ARGUMENT names the byte offset and the reason on failure.
absl::StatusOr<Document> Parse(absl::string_view text);

// Whether `text` is one JSON value, as Parse would find (the same status),
// without building it: for checks that throw the value away. A std::string
// (not a view) because its terminator lets the scan run 16 bytes at a time.
absl::Status Validate(const std::string& text);

// Parses into values owned by `allocator` (an arena that outlives the
// document), for hot paths that make many short-lived documents.
absl::StatusOr<Document> Parse(absl::string_view text, Allocator* allocator);

// Parses the first JSON value of `text` and ignores what follows it (as
// Jackson's readTree does).
absl::StatusOr<Document> ParseFirstValue(absl::string_view text, Allocator* allocator);

// Parses `text` into `*out`, whose values `allocator` owns (it must outlive
// them); faster than Parse for text held in a std::string.
absl::Status ParseInto(const std::string& text, Allocator& allocator, Value* out);

// The offset of the first "\\uXXXX" escape in `text` that is an unpaired
// UTF-16 surrogate (no character, and not UTF-8 once decoded), or npos.
// Parse refuses such text; callers that parse with RapidJSON directly use
// this to do the same.
size_t FindUnpairedSurrogate(absl::string_view text);

// Compact serialization, without insignificant whitespace.
// `expected_size`, when known (say, the size of the text the value was
// parsed from), spares the buffer its growing steps.
std::string Serialize(const Value& value, size_t expected_size = 0);

// Indented serialization for people (CLI output).
std::string SerializePretty(const Value& value);

// Deep copy of `value` owned by `allocator`.
Value Copy(const Value& value, Allocator& allocator);

// The JSON type name AWS uses in messages: "object", "array", "string",
// "number", "boolean", "null".
absl::string_view TypeName(const Value& value);

}  // namespace stepflow::json

#endif  // STEPFLOW_COMMON_JSON_JSON_H_
