// EventBridge joins the keys of an event and of a pattern with '.' before
// it matches them, so {"a.b": 1} and {"a": {"b": 1}} are the same event.
// These helpers give an event's nested form, which the matchers walk.
#ifndef STEPFLOW_COMMON_PATTERNS_INTERNAL_DOTTED_H_
#define STEPFLOW_COMMON_PATTERNS_INTERNAL_DOTTED_H_

#include "common/json/json.h"

namespace stepflow::patterns::internal {

// Whether the object `object` has a member whose name holds a '.' (its
// own members only: a matcher asks of each object it looks into).
bool HasDottedName(const json::Value& object);

// `value` with each member "a.b" moved to "a": {"b": ...}. Values that land
// on one key are merged: objects member by member, anything else into an
// array of all of them (an array in an event matches when an element does).
json::Value ExpandDottedKeys(const json::Value& value, json::Allocator& allocator);

}  // namespace stepflow::patterns::internal

#endif  // STEPFLOW_COMMON_PATTERNS_INTERNAL_DOTTED_H_
