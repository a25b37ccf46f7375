// Reference paths as the States Language uses them in InputPath, OutputPath,
// ResultPath and "key.$" parameters: `$`, `$.a.b`, `$['a b'][0]`, and `$$...`
// into the context object.
//
//   auto path = ReferencePath::Parse("$.order.items[0]");
//   const json::Value* v = path->Find(input);     // nullptr: no such node
//   RETURN_IF_ERROR(path->Set(&doc, std::move(result), alloc));
//
// Parsed paths are immutable and thread-compatible.
#ifndef STEPFLOW_COMMON_ASL_PATH_H_
#define STEPFLOW_COMMON_ASL_PATH_H_

#include <string>
#include "absl/strings/string_view.h"
#include <variant>
#include <vector>

#include "absl/status/statusor.h"
#include "common/json/json.h"

namespace stepflow::asl {

class ReferencePath {
 public:
  // INVALID_ARGUMENT naming the path and the offending position.
  static absl::StatusOr<ReferencePath> Parse(absl::string_view text);

  const std::string& text() const { return text_; }
  // True for `$$...` paths into the context object.
  bool is_context() const { return context_; }
  // `$name...` paths into a workflow variable: its name, or empty.
  const std::string& variable() const { return variable_; }
  bool is_variable() const { return !variable_.empty(); }
  bool is_root() const { return segments_.empty(); }
  // The steps of the path; step i is the member name `*name(i)`, or an
  // index when name(i) is nullptr.
  size_t size() const { return segments_.size(); }
  const std::string* name(size_t i) const { return std::get_if<std::string>(&segments_[i]); }

  // The node the path names in `root`, or nullptr when there is none.
  const json::Value* Find(const json::Value& root) const;

  // Places `value` at the path inside `root` (an object), creating missing
  // intermediate objects the way ResultPath does. Fails when an existing
  // node on the way is not an object, or for index segments.
  absl::Status Set(json::Value* root, json::Value value,
                   json::Allocator& allocator) const;

  // AWS's rendering in error messages: $['a']['b'][0].
  std::string Canonical() const;

  // Why Find(root) found nothing, as AWS words it: "No results for path:
  // $['a']['b']" when only the last step is missing, "Missing property in
  // path $['a']" when an earlier one is.
  std::string MissingMessage(const json::Value& root) const;

 private:
  using Segment = std::variant<std::string, int64_t>;
  std::string CanonicalPrefix(size_t segments) const;
  std::string text_;
  bool context_ = false;
  std::string variable_;
  std::vector<Segment> segments_;
};

}  // namespace stepflow::asl

#endif  // STEPFLOW_COMMON_ASL_PATH_H_
