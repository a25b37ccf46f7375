#include "common/asl/path.h"

#include <cctype>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace stepflow::asl {
namespace {

absl::Status Invalid(absl::string_view text, size_t pos, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat(
      "invalid path '", text, "' at position ", pos, ": ", why));
}

bool IsNameChar(char c) {
  return c != '.' && c != '[' && c != ']' && c != '\'' && c != ' ' &&
         c != '*' && c != '(' && c != ')' && c != '?' && c != '@';
}

}  // namespace

absl::StatusOr<ReferencePath> ReferencePath::Parse(absl::string_view text) {
  ReferencePath path;
  path.text_ = std::string(text);
  if (text.empty() || text[0] != '$') {
    return Invalid(text, 0, "a path must start with '$'");
  }
  size_t i = 1;
  if (i < text.size() && text[i] == '$') {
    path.context_ = true;
    ++i;
  } else if (i < text.size() && (std::isalpha(static_cast<unsigned char>(text[i])) ||
                                 text[i] == '_' || static_cast<unsigned char>(text[i]) >= 0x80)) {
    // A workflow variable: $name, then the path inside its value.
    size_t start = i;
    while (i < text.size() && (std::isalnum(static_cast<unsigned char>(text[i])) ||
                               text[i] == '_' || static_cast<unsigned char>(text[i]) >= 0x80)) {
      ++i;
    }
    path.variable_ = std::string(text.substr(start, i - start));
  }
  while (i < text.size()) {
    char c = text[i];
    if (c == '.') {
      ++i;
      size_t start = i;
      while (i < text.size() && IsNameChar(text[i])) ++i;
      if (i == start) return Invalid(text, start, "expected a field name");
      path.segments_.emplace_back(std::string(text.substr(start, i - start)));
    } else if (c == '[') {
      ++i;
      if (i < text.size() && (text[i] == '\'' || text[i] == '"')) {
        char quote = text[i++];
        std::string name;
        // The key is taken as written up to the closing quote and bracket,
        // backslashes included, as AWS does.
        while (i < text.size() && !(text[i] == quote && i + 1 < text.size() && text[i + 1] == ']')) {
          name.push_back(text[i++]);
        }
        if (i >= text.size()) return Invalid(text, i, "unterminated string");
        ++i;
        if (i >= text.size() || text[i] != ']') {
          return Invalid(text, i, "expected ']'");
        }
        ++i;
        path.segments_.emplace_back(std::move(name));
      } else {
        size_t start = i;
        while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) ++i;
        if (i == start || i >= text.size() || text[i] != ']') {
          return Invalid(text, start,
                         "expected an array index or a quoted field name");
        }
        int64_t index = 0;
        if (!absl::SimpleAtoi(text.substr(start, i - start), &index)) {
          return Invalid(text, start, "the array index is too large");
        }
        path.segments_.emplace_back(index);
        ++i;
      }
    } else {
      return Invalid(text, i, absl::StrCat("unexpected character '",
                                           std::string(1, c), "'"));
    }
  }
  return path;
}

const json::Value* ReferencePath::Find(const json::Value& root) const {
  const json::Value* node = &root;
  for (const Segment& segment : segments_) {
    if (const auto* name = std::get_if<std::string>(&segment)) {
      if (!node->IsObject()) return nullptr;
      auto it = node->FindMember(
          json::Value(rapidjson::StringRef(name->data(), name->size())));
      if (it == node->MemberEnd()) return nullptr;
      node = &it->value;
    } else {
      int64_t index = std::get<int64_t>(segment);
      if (!node->IsArray() || index >= static_cast<int64_t>(node->Size())) {
        return nullptr;
      }
      node = &(*node)[static_cast<rapidjson::SizeType>(index)];
    }
  }
  return node;
}

absl::Status ReferencePath::Set(json::Value* root, json::Value value,
                                json::Allocator& allocator) const {
  if (segments_.empty()) {
    *root = std::move(value);
    return absl::OkStatus();
  }
  json::Value* node = root;
  for (size_t i = 0; i < segments_.size(); ++i) {
    const auto* name = std::get_if<std::string>(&segments_[i]);
    if (name == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat(
          "Unable to apply ResultPath '", text_, "': array indexes are not allowed"));
    }
    if (!node->IsObject()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "Unable to apply ResultPath '", text_,
          "': a node on the path is not an object"));
    }
    json::Value key(rapidjson::StringRef(name->data(), name->size()));
    auto it = node->FindMember(key);
    bool last = i + 1 == segments_.size();
    if (it == node->MemberEnd()) {
      json::Value owned_key(name->data(), static_cast<rapidjson::SizeType>(name->size()), allocator);
      if (last) {
        node->AddMember(owned_key, value, allocator);
        return absl::OkStatus();
      }
      node->AddMember(owned_key, json::Value(rapidjson::kObjectType), allocator);
      node = &(node->MemberEnd() - 1)->value;
    } else if (last) {
      it->value = std::move(value);
      return absl::OkStatus();
    } else {
      node = &it->value;
    }
  }
  return absl::OkStatus();
}

std::string ReferencePath::Canonical() const { return CanonicalPrefix(segments_.size()); }

std::string ReferencePath::MissingMessage(const json::Value& root) const {
  const json::Value* node = &root;
  for (size_t i = 0; i < segments_.size(); ++i) {
    const json::Value* next = nullptr;
    if (const auto* name = std::get_if<std::string>(&segments_[i])) {
      if (node->IsObject()) {
        auto it = node->FindMember(json::Value(rapidjson::StringRef(name->data(), name->size())));
        if (it != node->MemberEnd()) next = &it->value;
      }
    } else {
      int64_t index = std::get<int64_t>(segments_[i]);
      if (node->IsArray() && index < static_cast<int64_t>(node->Size())) {
        next = &(*node)[static_cast<rapidjson::SizeType>(index)];
      }
    }
    if (next == nullptr) {
      if (i + 1 == segments_.size()) return absl::StrCat("No results for path: ", Canonical());
      return absl::StrCat("Missing property in path ", CanonicalPrefix(i + 1));
    }
    node = next;
  }
  return absl::StrCat("No results for path: ", Canonical());
}

std::string ReferencePath::CanonicalPrefix(size_t count) const {
  std::string out = context_ ? "$$" : absl::StrCat("$", variable_);
  for (size_t i = 0; i < count && i < segments_.size(); ++i) {
    const Segment& segment = segments_[i];
    if (const auto* name = std::get_if<std::string>(&segment)) {
      absl::StrAppend(&out, "['", *name, "']");
    } else {
      absl::StrAppend(&out, "[", std::get<int64_t>(segment), "]");
    }
  }
  return out;
}

}  // namespace stepflow::asl
