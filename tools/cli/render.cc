#include "tools/cli/render.h"

#include <cstdint>

#include "absl/strings/numbers.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/util/json_util.h"
#include "google/protobuf/util/time_util.h"

namespace stepflow::cli {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;

bool IsWellKnownType(const Descriptor* type) {
  // Timestamp, Duration, Struct, wrappers...: protobuf's JSON mapping already
  // gives them their special form, which is what we want to keep.
  return absl::string_view(type->file()->name()).substr(0, 16) ==
         "google/protobuf/";
}

void FixValue(const FieldDescriptor* field, json::Value& value, json::Allocator& allocator);

// Rewrites `object` (the protobuf JSON of a message of `type`) in place.
void FixMessage(const Descriptor* type, json::Value& object, json::Allocator& allocator) {
  if (!object.IsObject() || IsWellKnownType(type)) return;
  // AWS always shows the flags of inputDetails / outputDetails
  // ({"truncated": false}, {"included": true}); protobuf omits false ones.
  const bool print_flags = absl::EndsWith(type->name(), "ExecutionDataDetails");
  for (int i = 0; i < type->field_count(); ++i) {
    const FieldDescriptor* field = type->field(i);
    auto member = object.FindMember(field->json_name().c_str());
    if (member == object.MemberEnd()) {
      if (print_flags && field->cpp_type() == FieldDescriptor::CPPTYPE_BOOL &&
          !field->is_repeated()) {
        object.AddMember(json::Value(field->json_name().c_str(), allocator), json::Value(false),
                         allocator);
      }
      continue;
    }
    json::Value& value = member->value;
    if (field->is_map()) {
      const FieldDescriptor* map_value = field->message_type()->map_value();
      if (!value.IsObject()) continue;
      for (auto& entry : value.GetObject()) FixValue(map_value, entry.value, allocator);
    } else if (field->is_repeated()) {
      if (!value.IsArray()) continue;
      for (auto& element : value.GetArray()) FixValue(field, element, allocator);
    } else {
      FixValue(field, value, allocator);
    }
  }
}

// Fixes one (non-repeated) value of `field`'s type.
void FixValue(const FieldDescriptor* field, json::Value& value, json::Allocator& allocator) {
  switch (field->cpp_type()) {
    case FieldDescriptor::CPPTYPE_INT64: {
      int64_t number = 0;
      if (value.IsString() && absl::SimpleAtoi(value.GetString(), &number)) {
        value.SetInt64(number);
      }
      break;
    }
    case FieldDescriptor::CPPTYPE_UINT64: {
      uint64_t number = 0;
      if (value.IsString() && absl::SimpleAtoi(value.GetString(), &number)) {
        value.SetUint64(number);
      }
      break;
    }
    case FieldDescriptor::CPPTYPE_MESSAGE:
      FixMessage(field->message_type(), value, allocator);
      break;
    default:
      break;
  }
}

}  // namespace

absl::StatusOr<json::Document> ToJson(
    const google::protobuf::Message& message) {
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = false;
  options.always_print_primitive_fields = false;
  options.preserve_proto_field_names = false;  // lowerCamelCase = AWS names
  std::string text;
  auto status =
      google::protobuf::util::MessageToJsonString(message, &text, options);
  if (!status.ok()) {
    return absl::InternalError(absl::StrCat("cannot render ",
                                            message.GetTypeName(),
                                            " as JSON: ", status.ToString()));
  }
  absl::StatusOr<json::Document> doc = json::Parse(text);
  if (!doc.ok()) return doc.status();
  const Descriptor* type = message.GetDescriptor();
  FixMessage(type, *doc, doc->GetAllocator());

  // Always-present top-level lists, kept in field order: rebuild the object
  // in declaration order (protobuf prints fields in that order too).
  json::Value ordered(rapidjson::kObjectType);
  json::Allocator& allocator = doc->GetAllocator();
  for (int i = 0; i < type->field_count(); ++i) {
    const FieldDescriptor* field = type->field(i);
    json::Value key(field->json_name().c_str(), allocator);
    auto member = doc->FindMember(field->json_name().c_str());
    if (member != doc->MemberEnd()) {
      ordered.AddMember(key, member->value, allocator);
    } else if (field->is_repeated() && !field->is_map()) {
      ordered.AddMember(key, json::Value(rapidjson::kArrayType), allocator);
    }
  }
  doc->SetObject();
  for (auto& member : ordered.GetObject()) {
    doc->AddMember(member.name, member.value, allocator);
  }
  return doc;
}

absl::StatusOr<std::string> RenderJson(
    const google::protobuf::Message& message) {
  absl::StatusOr<json::Document> doc = ToJson(message);
  if (!doc.ok()) return doc.status();
  return absl::StrCat(json::SerializePretty(*doc), "\n");
}

std::string FormatTimestamp(const google::protobuf::Timestamp& timestamp) {
  if (timestamp.seconds() == 0 && timestamp.nanos() == 0) return "-";
  return google::protobuf::util::TimeUtil::ToString(timestamp);
}

}  // namespace stepflow::cli
