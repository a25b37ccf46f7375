// Private to common/jsonata: the syntax tree, the evaluation-time value model
// and the built-in function table. Not for use outside this folder.
#ifndef STEPFLOW_COMMON_JSONATA_INTERNAL_H_
#define STEPFLOW_COMMON_JSONATA_INTERNAL_H_

#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"
#include "common/json/json.h"
#include "common/jsonata/jsonata.h"
#include "common/jsonata/regex.h"

namespace stepflow::jsonata {

struct Item;
using Val = std::shared_ptr<Item>;  // nullptr is JSONata's `undefined`

// An error raised inside the engine; thrown as a C++ exception internally and
// converted to EvalError / absl::Status at the library boundary.
struct Error {
  std::string code;
  int64_t position = -1;
  std::string token;
  bool has_token = false;
  Val value, value2;
  bool has_value = false, has_value2 = false;
  int index = 0;
  bool has_index = false;
  std::string type;      // T0412
  std::string message;   // D3137 / D3141 / D3140 function name / exp
  std::string extra;

  Error() = default;
  explicit Error(std::string c) : code(std::move(c)) {}
  Error& WithValue(Val v) { value = std::move(v); has_value = true; return *this; }
  Error& WithValue2(Val v) { value2 = std::move(v); has_value2 = true; return *this; }
  Error& WithToken(std::string t) { token = std::move(t); has_token = true; return *this; }
  Error& WithPosition(int64_t p) { position = p; return *this; }
  Error& WithIndex(int i) { index = i; has_index = true; return *this; }
};

// ---------------------------------------------------------------- signatures

struct SigParam {
  std::string chars;  // accepted type symbols (s n b l o a f m ...)
  char quant = 0;     // 0, '?', '+'
  bool context = false;
  std::string context_chars;
  char type = 0;      // 's','n','b','l','o','a','f','j','x','(' for choice
  std::string subtype;
};

struct Signature {
  std::vector<SigParam> params;
};

// Throws S0401/S0402 with `position` relative to the signature start.
std::shared_ptr<Signature> ParseSignature(absl::string_view text);

// ---------------------------------------------------------------- syntax tree

enum class NodeType {
  kPath, kBinary, kUnary, kName, kString, kNumber, kValue, kWildcard,
  kDescendant, kParent, kCondition, kBlock, kBind, kRegex, kFunction,
  kVariable, kLambda, kPartial, kApply, kTransform, kSort, kOperator, kEnd,
};

struct Slot {
  std::string label;
  int level = 1;
  int index = 0;
};
using SlotPtr = std::shared_ptr<Slot>;

class Node;
using NodePtr = std::shared_ptr<Node>;

struct Stage {
  bool is_index = false;  // else filter
  NodePtr expr;
  std::string value;       // index variable
  int64_t position = 0;
};

struct SortTerm {
  bool descending = false;
  NodePtr expr;
};

struct Regex {
  std::string source;
  bool ignore_case = false, multiline = false;
  std::unique_ptr<CompiledRegex> compiled;
};

struct Group {
  std::vector<std::pair<NodePtr, NodePtr>> pairs;
  int64_t position = 0;
};

// Binary operators, resolved once at compile time.
enum class BinaryOp : uint8_t {
  kOther, kAnd, kOr, kAdd, kSub, kMul, kDiv, kMod, kEq, kNe, kLt, kLe, kGt,
  kGe, kConcat, kRange, kIn,
};

class Node {
 public:
  NodeType type = NodeType::kEnd;
  BinaryOp op = BinaryOp::kOther;
  std::string id;          // parser symbol id
  std::string value;       // operator, name, string literal, variable
  double number = 0;
  int literal = 0;         // kValue: 0 null, 1 true, 2 false
  int64_t position = 0;

  NodePtr lhs, rhs, expression;
  std::vector<NodePtr> expressions;              // block, array constructor
  std::vector<std::pair<NodePtr, NodePtr>> pairs;  // object constructor
  std::vector<NodePtr> arguments;
  NodePtr procedure, body;
  std::shared_ptr<Signature> signature;
  NodePtr condition, then, otherwise;
  NodePtr pattern, update, remove;
  std::vector<NodePtr> steps;
  std::vector<Stage> predicate, stages;
  bool has_predicate = false, has_stages = false;
  std::shared_ptr<Group> group;
  std::vector<SortTerm> terms;
  bool keep_array = false, cons_array = false, keep_singleton_array = false;
  bool tuple = false, thunk = false;
  // kPath of plain field names (optionally after one variable), with no
  // predicates, bindings or grouping: evaluated by direct lookups.
  bool simple_path = false;
  bool has_focus = false, has_index = false;
  std::string focus, index;
  SlotPtr slot, ancestor;
  std::vector<SlotPtr> seeking_parent;
  bool has_seeking_parent = false;
  std::shared_ptr<Regex> regex;
};

// Calls visit(child) for each child pointer of `n` (null ones too), in one
// fixed order: the one walk over the tree that compile-time passes share.
// A lambda's parameters (its `arguments`) are visited only when
// `lambda_parameters` is true.
template <typename Visit>
void ForEachChild(const Node& n, Visit&& visit, bool lambda_parameters = true) {
  visit(n.lhs);
  visit(n.rhs);
  visit(n.expression);
  for (const auto& c : n.expressions) visit(c);
  for (const auto& [k, v] : n.pairs) {
    visit(k);
    visit(v);
  }
  if (lambda_parameters || n.type != NodeType::kLambda) {
    for (const auto& c : n.arguments) visit(c);
  }
  visit(n.procedure);
  visit(n.body);
  visit(n.condition);
  visit(n.then);
  visit(n.otherwise);
  visit(n.pattern);
  visit(n.update);
  visit(n.remove);
  for (const auto& c : n.steps) visit(c);
  for (const auto& s : n.predicate) visit(s.expr);
  for (const auto& s : n.stages) visit(s.expr);
  if (n.group) {
    for (const auto& [k, v] : n.group->pairs) {
      visit(k);
      visit(v);
    }
  }
  for (const auto& t : n.terms) visit(t.expr);
}

// Parses and post-processes `text` into the evaluation tree; throws Error.
NodePtr Parse(absl::string_view text);

// ---------------------------------------------------------------- values

struct Frame;
struct Builtin;
struct Function;

// An evaluation-time value. Arrays and objects of the input document are
// referenced (kJson) rather than copied; values made during evaluation are
// native. Sequence flags follow jsonata-js.
struct Item {
  Item() = default;
  Item(const Item&) = delete;
  Item& operator=(const Item&) = delete;
  // Releases nested children iteratively, so that a deeply nested value does
  // not recurse through destructors.
  ~Item();
  enum Kind : uint8_t {
    kNull, kBool, kNumber, kString, kArray, kObject, kFunction, kJson
  };
  Kind kind = kNull;
  bool boolean = false;
  bool sequence = false, keep_singleton = false, cons = false;
  bool outer_wrapper = false, tuple_stream = false;
  double number = 0;
  std::string str;
  std::vector<Val> arr;
  std::vector<std::pair<std::string, Val>> obj;
  std::unique_ptr<absl::flat_hash_map<std::string, size_t>> obj_index;
  std::shared_ptr<Function> fn;
  const json::Value* json = nullptr;
  // A kArray made by the range operator holds its numbers implicitly (arr
  // stays empty) so that [1..10000000] costs no per-element allocation.
  bool range = false;
  double range_start = 0;
  size_t range_size = 0;
};

struct Function {
  enum Kind { kLambda, kBuiltin, kPartialBuiltin, kRegex, kRegexNext, kChain,
              kTransform };
  Kind kind = kLambda;
  // kLambda / kTransform
  const Node* node = nullptr;
  Frame* env = nullptr;
  Val input;
  std::vector<std::string> params;
  std::shared_ptr<Signature> signature;
  bool thunk = false;
  // kBuiltin / kPartialBuiltin
  const Builtin* builtin = nullptr;
  std::vector<Val> bound;          // partial: bound args
  std::vector<bool> placeholder;   // partial: slot awaits an argument
  // kRegex / kRegexNext
  std::shared_ptr<Regex> regex;
  std::string subject;
  size_t offset = 0;
  // kChain
  Val f, g;
};

struct Frame {
  Frame* parent = nullptr;
  std::vector<std::pair<std::string, Val>> vars;
  bool Find(absl::string_view name, Val* out) const;
  void Bind(absl::string_view name, Val value);
};

// ---------------------------------------------------------------- helpers

Val MakeNull();
Val MakeBool(bool b);
Val MakeNumber(double d);
Val MakeString(std::string s);
Val MakeArray();
Val MakeSequence();
Val MakeObject();
Val MakeFunction(std::shared_ptr<Function> f);
Val MakeRange(double start, size_t size);
Val Wrap(const json::Value* v);
Val WrapRoot(const json::Value* v);

inline bool IsArray(const Val& v) {
  return v && (v->kind == Item::kArray ||
               (v->kind == Item::kJson && v->json->IsArray()));
}
inline bool IsObject(const Val& v) {
  return v && (v->kind == Item::kObject ||
               (v->kind == Item::kJson && v->json->IsObject()));
}
inline bool IsString(const Val& v) { return v && v->kind == Item::kString; }
inline bool IsNumber(const Val& v) { return v && v->kind == Item::kNumber; }
inline bool IsBool(const Val& v) { return v && v->kind == Item::kBool; }
inline bool IsNull(const Val& v) { return v && v->kind == Item::kNull; }
inline bool IsFunction(const Val& v) { return v && v->kind == Item::kFunction; }
inline bool IsSequence(const Val& v) {
  return v && v->kind == Item::kArray && v->sequence;
}
// Turns a referenced input array/object into a native one whose members are
// references (one level); other values are returned unchanged.
Val Expand(const Val& v);
size_t ArraySize(const Val& v);
Val ArrayAt(const Val& v, size_t i);
Val ObjectGet(const Val& v, absl::string_view key);
void ObjectSet(Item* obj, absl::string_view key, Val value);
void ObjectRemove(Item* obj, absl::string_view key);
template <typename F>
void ForEachMember(const Val& v, F&& f) {
  if (v->kind == Item::kObject) {
    for (const auto& [k, m] : v->obj) f(k, m);
  } else {
    for (const auto& m : v->json->GetObject()) {
      f(std::string(m.name.GetString(), m.name.GetStringLength()),
        Wrap(&m.value));
    }
  }
}
size_t ObjectSize(const Val& v);

// JSON.stringify-like text; numbers at 15 significant digits when `fifteen`.
std::string Stringify(const Val& v, bool pretty, bool fifteen);
// JavaScript Number.prototype.toString.
std::string NumberToString(double d);
bool DeepEqual(const Val& a, const Val& b, int depth = 0);
bool Truthy(const Val& v);  // fn.boolean; undefined -> false
Val DeepClone(const Val& v, int depth = 0);
// Values nest at most this deep where they are walked recursively (output,
// $string, equality, cloning); deeper is error U1001 rather than a stack
// overflow.
constexpr int kMaxValueNesting = 2000;
[[noreturn]] void ThrowTooDeep();
char TypeSymbol(const Val& v);

// ---------------------------------------------------------------- evaluator

class Evaluator;
using BuiltinImpl = Val (*)(Evaluator& ev, std::vector<Val>& args,
                            const Val& focus);

struct Builtin {
  const char* name;
  const char* signature_text;
  int arity;  // declared parameter count of the reference implementation
  BuiltinImpl impl;
  std::shared_ptr<Signature> signature;
};

// The built-in table, by name (without '$'), or nullptr.
const Builtin* FindBuiltin(absl::string_view name);

class Evaluator {
 public:
  Evaluator(const Environment& env) : env_(env) {}
  Val Evaluate(const Node* expr, const Val& input, Frame* frame);
  Val Apply(const Val& proc, std::vector<Val> args, const Val& input,
            Frame* frame);
  Frame* NewFrame(Frame* parent);
  const Environment& env() const { return env_; }
  int FunctionArity(const Val& f);
  // Calls `f` with (value, index, array) cut to its arity.
  Val CallHof(const Val& f, const Val& a1, const Val& a2, const Val& a3);
  Val ValidateAndApplyBuiltin(const Builtin* b, std::vector<Val> args,
                              const Val& input, Frame* frame);
  Frame* root = nullptr;
  // Regular-expression steps this evaluation may still take, across all its
  // searches: enough for any linear search of the largest payload many times
  // over, and well under a second of matching.
  uint64_t regex_steps_left = 25'000'000;

 private:
  Val EvaluatePath(const Node* expr, const Val& input, Frame* frame);
  Val EvaluateStep(const Node* expr, const Val& input, Frame* frame,
                   bool last);
  Val EvaluateStages(const std::vector<Stage>& stages, Val input,
                     Frame* frame);
  Val EvaluateTupleStep(const Node* expr, const Val& input, Val tuples,
                        Frame* frame);
  Val EvaluateFilter(const Node* pred, Val input, Frame* frame);
  Val EvaluateBinary(const Node* expr, const Val& input, Frame* frame);
  Val EvaluateUnary(const Node* expr, const Val& input, Frame* frame);
  Val EvaluateWildcard(const Val& input);
  Val EvaluateDescendants(const Val& input);
  Val EvaluateGroup(const Group& group, Val input, Frame* frame);
  Val EvaluateSort(const Node* expr, const Val& input, Frame* frame);
  Val EvaluateFunction(const Node* expr, const Val& input, Frame* frame,
                       const Val* applyto);
  Val EvaluatePartial(const Node* expr, const Val& input, Frame* frame);
  Val EvaluateApply(const Node* expr, const Val& input, Frame* frame);
  Val ApplyInner(const Val& proc, std::vector<Val> args, const Val& input,
                 Frame* frame);
  Val ApplyProcedure(const Function& fn, std::vector<Val> args);
  Val ApplyTransform(const Function& fn, std::vector<Val>& args);
  Frame* FrameFromTuple(Frame* parent, const Val& tuple);
  Val Lookup(Frame* frame, absl::string_view name);

  const Environment& env_;
  std::deque<Frame> frames_;
  int depth_ = 0;
  int64_t steps_ = 0;
};

std::vector<Val> ValidateArgs(const Signature& sig, std::vector<Val> args,
                              const Val& context);
// fn.append of jsonata-js.
Val Append(Val a, Val b);
Val Lookup(const Val& input, absl::string_view key);

// The first match at or after byte offset `from`; throws Error when the
// match runs out of memory or of the steps left in `steps_left`.
bool RegexSearch(const Regex& re, const std::string& s, size_t from,
                 RegexMatch* m, uint64_t* steps_left);

}  // namespace stepflow::jsonata

#endif  // STEPFLOW_COMMON_JSONATA_INTERNAL_H_
