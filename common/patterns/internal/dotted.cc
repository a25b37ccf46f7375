#include "common/patterns/internal/dotted.h"

#include <cstring>
#include <vector>

#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"

namespace stepflow::patterns::internal {
namespace {

json::Value::MemberIterator FindMember(json::Value& object, absl::string_view name) {
  for (auto it = object.MemberBegin(); it != object.MemberEnd(); ++it) {
    if (absl::string_view(it->name.GetString(), it->name.GetStringLength()) == name) return it;
  }
  return object.MemberEnd();
}

// Puts `from` into `into`, both already expanded.
void Merge(json::Value& into, json::Value& from, json::Allocator& allocator) {
  if (into.IsObject() && from.IsObject()) {
    for (auto it = from.MemberBegin(); it != from.MemberEnd(); ++it) {
      auto existing =
          FindMember(into, absl::string_view(it->name.GetString(), it->name.GetStringLength()));
      if (existing == into.MemberEnd()) {
        into.AddMember(it->name, it->value, allocator);
      } else {
        Merge(existing->value, it->value, allocator);
      }
    }
    return;
  }
  if (!into.IsArray()) {
    json::Value first(std::move(into));
    into.SetArray();
    into.PushBack(first, allocator);
  }
  if (from.IsArray()) {
    for (json::Value& element : from.GetArray()) into.PushBack(element, allocator);
  } else {
    into.PushBack(from, allocator);
  }
}

}  // namespace

bool HasDottedName(const json::Value& object) {
  for (auto it = object.MemberBegin(); it != object.MemberEnd(); ++it) {
    if (std::memchr(it->name.GetString(), '.', it->name.GetStringLength()) != nullptr) return true;
  }
  return false;
}

json::Value ExpandDottedKeys(const json::Value& value, json::Allocator& allocator) {
  if (value.IsArray()) {
    json::Value out(rapidjson::kArrayType);
    for (const json::Value& element : value.GetArray()) {
      out.PushBack(ExpandDottedKeys(element, allocator), allocator);
    }
    return out;
  }
  if (!value.IsObject()) return json::Value(value, allocator);
  json::Value out(rapidjson::kObjectType);
  for (auto it = value.MemberBegin(); it != value.MemberEnd(); ++it) {
    std::vector<absl::string_view> segments =
        absl::StrSplit(absl::string_view(it->name.GetString(), it->name.GetStringLength()), '.');
    json::Value nested = ExpandDottedKeys(it->value, allocator);
    for (size_t i = segments.size() - 1; i > 0; --i) {
      json::Value wrapper(rapidjson::kObjectType);
      wrapper.AddMember(json::Value(segments[i].data(), static_cast<rapidjson::SizeType>(
                                                            segments[i].size()),
                                    allocator),
                        nested, allocator);
      nested = std::move(wrapper);
    }
    auto existing = FindMember(out, segments[0]);
    if (existing == out.MemberEnd()) {
      out.AddMember(json::Value(segments[0].data(),
                                static_cast<rapidjson::SizeType>(segments[0].size()), allocator),
                    nested, allocator);
    } else {
      Merge(existing->value, nested, allocator);
    }
  }
  return out;
}

}  // namespace stepflow::patterns::internal
