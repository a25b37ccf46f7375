// The tree-walking evaluator. Sequence handling (flattening, singleton
// unwrapping, keep-array flags, tuple streams for @/#/% bindings) mirrors the
// JSONata reference implementation step by step so that results agree on the
// many corner cases its test suite pins down.
#include <cmath>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/jsonata/internal.h"

namespace stepflow::jsonata {
namespace {

bool IsNumeric(const Val& v) {
  if (!v || v->kind != Item::kNumber) return false;
  if (std::isnan(v->number)) return false;
  if (!std::isfinite(v->number)) throw Error("D1001").WithValue(v);
  return true;
}

bool IsInteger(const Val& v) {
  return v && v->kind == Item::kNumber && std::isfinite(v->number) &&
         std::floor(v->number) == v->number;
}

// Pushes the members of a sequence-like `v` (or `v` itself) onto `out`.
void PushFlat(std::vector<Val>* out, const Val& v) {
  if (IsArray(v)) {
    size_t n = ArraySize(v);
    for (size_t i = 0; i < n; ++i) out->push_back(ArrayAt(v, i));
  } else {
    out->push_back(v);
  }
}

Val AsSequence(const Val& v) {
  if (IsArray(v)) {
    if (v->kind == Item::kJson) return Expand(v);
    return v;
  }
  Val s = MakeSequence();
  if (v) s->arr.push_back(v);
  return s;
}

}  // namespace

Val Append(Val a, Val b) {
  if (!a) return b;
  if (!b) return a;
  Val out = MakeArray();
  PushFlat(&out->arr, a);
  PushFlat(&out->arr, b);
  return out;
}

Val Lookup(const Val& input, absl::string_view key) {
  if (!input) return nullptr;
  if (IsArray(input)) {
    Val result = MakeSequence();
    size_t n = ArraySize(input);
    for (size_t i = 0; i < n; ++i) {
      Val res = Lookup(ArrayAt(input, i), key);
      if (res) {
        if (IsArray(res)) {
          PushFlat(&result->arr, res);
        } else {
          result->arr.push_back(res);
        }
      }
    }
    return result;
  }
  if (IsObject(input)) return ObjectGet(input, key);
  return nullptr;
}

Frame* Evaluator::NewFrame(Frame* parent) {
  frames_.emplace_back();
  frames_.back().parent = parent;
  return &frames_.back();
}

Frame* Evaluator::FrameFromTuple(Frame* parent, const Val& tuple) {
  Frame* f = NewFrame(parent);
  if (!tuple) return f;
  for (const auto& [k, v] : tuple->obj) f->Bind(k, v);
  return f;
}

Val Evaluator::Lookup(Frame* frame, absl::string_view name) {
  Val v;
  if (frame->Find(name, &v)) return v;
  const Builtin* b = FindBuiltin(name);
  if (!b) return nullptr;
  auto fn = std::make_shared<Function>();
  fn->kind = Function::kBuiltin;
  fn->builtin = b;
  return MakeFunction(fn);
}

Val Evaluator::Evaluate(const Node* expr, const Val& input, Frame* frame) {
  if (++depth_ > env_.max_depth) {
    throw Error("U1001").WithPosition(expr->position);
  }
  if (++steps_ > env_.max_steps) {
    Error e("U1001");
    e.WithPosition(expr->position);
    e.message = "steps";
    throw e;
  }
  Val result;
  switch (expr->type) {
    case NodeType::kPath:
      result = EvaluatePath(expr, input, frame);
      break;
    case NodeType::kBinary:
      result = EvaluateBinary(expr, input, frame);
      break;
    case NodeType::kUnary:
      result = EvaluateUnary(expr, input, frame);
      break;
    case NodeType::kName:
      result = jsonata::Lookup(input, expr->value);
      break;
    case NodeType::kString:
      result = MakeString(expr->value);
      break;
    case NodeType::kNumber:
      result = MakeNumber(expr->number);
      break;
    case NodeType::kValue:
      result = expr->literal == 0 ? MakeNull() : MakeBool(expr->literal == 1);
      break;
    case NodeType::kWildcard:
      result = EvaluateWildcard(input);
      break;
    case NodeType::kDescendant:
      result = EvaluateDescendants(input);
      break;
    case NodeType::kParent: {
      Val v;
      if (frame->Find(expr->slot->label, &v)) result = v;
      break;
    }
    case NodeType::kCondition: {
      Val cond = Evaluate(expr->condition.get(), input, frame);
      if (Truthy(cond)) {
        result = Evaluate(expr->then.get(), input, frame);
      } else if (expr->otherwise) {
        result = Evaluate(expr->otherwise.get(), input, frame);
      }
      break;
    }
    case NodeType::kBlock: {
      Frame* f = NewFrame(frame);
      for (const auto& e : expr->expressions) result = Evaluate(e.get(), input, f);
      break;
    }
    case NodeType::kBind: {
      result = Evaluate(expr->rhs.get(), input, frame);
      frame->Bind(expr->lhs->value, result);
      break;
    }
    case NodeType::kRegex: {
      auto fn = std::make_shared<Function>();
      fn->kind = Function::kRegex;
      fn->regex = expr->regex;
      result = MakeFunction(fn);
      break;
    }
    case NodeType::kFunction:
      result = EvaluateFunction(expr, input, frame, nullptr);
      break;
    case NodeType::kVariable:
      if (expr->value.empty()) {
        result = input && input->outer_wrapper && !input->arr.empty()
                     ? input->arr[0]
                     : input;
      } else {
        result = Lookup(frame, expr->value);
      }
      break;
    case NodeType::kLambda: {
      auto fn = std::make_shared<Function>();
      fn->kind = Function::kLambda;
      fn->node = expr;
      fn->env = frame;
      fn->input = input;
      for (const auto& a : expr->arguments) fn->params.push_back(a->value);
      fn->signature = expr->signature;
      fn->thunk = expr->thunk;
      result = MakeFunction(fn);
      break;
    }
    case NodeType::kPartial:
      result = EvaluatePartial(expr, input, frame);
      break;
    case NodeType::kApply:
      result = EvaluateApply(expr, input, frame);
      break;
    case NodeType::kTransform: {
      auto fn = std::make_shared<Function>();
      fn->kind = Function::kTransform;
      fn->node = expr;
      fn->env = frame;
      result = MakeFunction(fn);
      break;
    }
    default:
      break;
  }
  if (expr->has_predicate) {
    for (const auto& p : expr->predicate) {
      result = EvaluateFilter(p.expr.get(), result, frame);
    }
  }
  if (expr->type != NodeType::kPath && expr->group) {
    result = EvaluateGroup(*expr->group, result, frame);
  }
  if (IsSequence(result) && !result->tuple_stream) {
    if (expr->keep_array) result->keep_singleton = true;
    size_t n = ArraySize(result);
    if (n == 0) {
      result = nullptr;
    } else if (n == 1 && !result->keep_singleton) {
      result = ArrayAt(result, 0);
    }
  }
  --depth_;
  return result;
}

Val Evaluator::EvaluatePath(const Node* expr, const Val& input, Frame* frame) {
  if (expr->simple_path && !IsArray(input)) {
    // Same result as the general algorithm while every intermediate value is
    // a single non-array; otherwise fall through to it.
    Val cur = input;
    size_t i = 0;
    bool fallback = false;
    if (expr->steps[0]->type == NodeType::kVariable) {
      cur = Evaluate(expr->steps[0].get(), input, frame);
      i = 1;
    }
    const size_t n = expr->steps.size();
    for (; i < n && cur; ++i) {
      if (IsArray(cur)) {
        fallback = true;
        break;
      }
      cur = IsObject(cur) ? ObjectGet(cur, expr->steps[i]->value) : nullptr;
    }
    if (!fallback && !IsSequence(cur)) return cur;
  }
  Val input_seq;
  if (IsArray(input) && expr->steps[0]->type != NodeType::kVariable) {
    input_seq = AsSequence(input);
  } else {
    input_seq = MakeSequence();
    input_seq->arr.push_back(input);
  }
  Val result;
  bool is_tuple = false;
  Val tuples;
  for (size_t i = 0; i < expr->steps.size(); ++i) {
    const Node* step = expr->steps[i].get();
    if (step->tuple) is_tuple = true;
    if (i == 0 && step->cons_array) {
      result = Evaluate(step, input_seq, frame);
    } else if (is_tuple) {
      tuples = EvaluateTupleStep(step, input_seq, tuples, frame);
    } else {
      result = EvaluateStep(step, input_seq, frame,
                            i == expr->steps.size() - 1);
    }
    if (!is_tuple && (!result || (IsArray(result) && ArraySize(result) == 0))) {
      break;
    }
    if (!step->has_focus) input_seq = AsSequence(result);
  }
  if (is_tuple) {
    if (expr->tuple) {
      result = tuples;
    } else {
      result = MakeSequence();
      if (tuples) {
        for (const auto& t : tuples->arr) result->arr.push_back(ObjectGet(t, "@"));
      }
    }
  }
  if (expr->keep_singleton_array) {
    if (result && result->kind == Item::kArray && result->cons &&
        !result->sequence) {
      Val s = MakeSequence();
      s->arr.push_back(result);
      result = s;
    }
    if (result && result->kind == Item::kArray) result->keep_singleton = true;
  }
  if (expr->group) {
    result = EvaluateGroup(*expr->group, is_tuple ? tuples : result, frame);
  }
  return result;
}

Val Evaluator::EvaluateStep(const Node* expr, const Val& input, Frame* frame,
                            bool last) {
  if (expr->type == NodeType::kSort) {
    Val result = EvaluateSort(expr, input, frame);
    if (expr->has_stages) result = EvaluateStages(expr->stages, result, frame);
    return result;
  }
  std::vector<Val> results;
  size_t n = ArraySize(input);
  for (size_t i = 0; i < n; ++i) {
    Val res = Evaluate(expr, ArrayAt(input, i), frame);
    if (expr->has_stages) {
      for (const auto& st : expr->stages) {
        res = EvaluateFilter(st.expr.get(), res, frame);
      }
    }
    if (res) results.push_back(res);
  }
  if (last && results.size() == 1 && IsArray(results[0]) &&
      !IsSequence(results[0])) {
    return results[0];
  }
  Val out = MakeSequence();
  for (const auto& res : results) {
    if (!IsArray(res) || (res->kind == Item::kArray && res->cons)) {
      out->arr.push_back(res);
    } else {
      PushFlat(&out->arr, res);
    }
  }
  return out;
}

Val Evaluator::EvaluateStages(const std::vector<Stage>& stages, Val input,
                              Frame* frame) {
  Val result = input;
  for (const auto& st : stages) {
    if (st.is_index) {
      if (!result) continue;
      for (size_t i = 0; i < result->arr.size(); ++i) {
        ObjectSet(result->arr[i].get(), st.value,
                  MakeNumber(static_cast<double>(i)));
      }
    } else {
      result = EvaluateFilter(st.expr.get(), result, frame);
    }
  }
  return result;
}

namespace {
Val CopyTuple(const Val& t) {
  Val c = MakeObject();
  for (const auto& [k, v] : t->obj) ObjectSet(c.get(), k, v);
  return c;
}
}  // namespace

Val Evaluator::EvaluateTupleStep(const Node* expr, const Val& input,
                                 Val tuples, Frame* frame) {
  if (expr->type == NodeType::kSort) {
    Val result;
    if (tuples) {
      result = EvaluateSort(expr, tuples, frame);
    } else {
      Val sorted = EvaluateSort(expr, input, frame);
      result = MakeSequence();
      result->tuple_stream = true;
      for (size_t i = 0; i < sorted->arr.size(); ++i) {
        Val t = MakeObject();
        ObjectSet(t.get(), "@", sorted->arr[i]);
        if (expr->has_index) {
          ObjectSet(t.get(), expr->index, MakeNumber(static_cast<double>(i)));
        }
        result->arr.push_back(t);
      }
    }
    if (expr->has_stages) result = EvaluateStages(expr->stages, result, frame);
    return result;
  }
  Val result = MakeSequence();
  result->tuple_stream = true;
  if (!tuples) {
    tuples = MakeSequence();
    size_t n = ArraySize(input);
    for (size_t i = 0; i < n; ++i) {
      Val t = MakeObject();
      ObjectSet(t.get(), "@", ArrayAt(input, i));
      tuples->arr.push_back(t);
    }
  }
  for (const auto& tuple : tuples->arr) {
    Frame* step_env = FrameFromTuple(frame, tuple);
    Val at = ObjectGet(tuple, "@");
    Val res = Evaluate(expr, at, step_env);
    if (!res) continue;
    std::vector<Val> items;
    bool res_tuple = res->kind == Item::kArray && res->tuple_stream;
    if (!IsArray(res)) {
      items.push_back(res);
    } else {
      PushFlat(&items, res);
    }
    for (size_t b = 0; b < items.size(); ++b) {
      Val t = CopyTuple(tuple);
      if (res_tuple) {
        for (const auto& [k, v] : items[b]->obj) ObjectSet(t.get(), k, v);
      } else {
        if (expr->has_focus) {
          ObjectSet(t.get(), expr->focus, items[b]);
          ObjectSet(t.get(), "@", at);
        } else {
          ObjectSet(t.get(), "@", items[b]);
        }
        if (expr->has_index) {
          ObjectSet(t.get(), expr->index, MakeNumber(static_cast<double>(b)));
        }
        if (expr->ancestor) ObjectSet(t.get(), expr->ancestor->label, at);
      }
      result->arr.push_back(t);
    }
  }
  if (expr->has_stages) result = EvaluateStages(expr->stages, result, frame);
  return result;
}

Val Evaluator::EvaluateFilter(const Node* pred, Val input, Frame* frame) {
  Val results = MakeSequence();
  if (input && input->kind == Item::kArray && input->tuple_stream) {
    results->tuple_stream = true;
  }
  if (!IsArray(input)) {
    Val s = MakeSequence();
    if (input) s->arr.push_back(input);
    input = s;
  }
  size_t n = ArraySize(input);
  if (pred->type == NodeType::kNumber) {
    double idx = std::floor(pred->number);
    if (idx < 0) idx += static_cast<double>(n);
    if (idx >= 0 && idx < static_cast<double>(n)) {
      Val item = ArrayAt(input, static_cast<size_t>(idx));
      if (item) {
        if (IsArray(item)) {
          results = item;
        } else {
          results->arr.push_back(item);
        }
      }
    }
    return results;
  }
  bool tuple = input->kind == Item::kArray && input->tuple_stream;
  for (size_t index = 0; index < n; ++index) {
    Val item = ArrayAt(input, index);
    Val context = item;
    Frame* env = frame;
    if (tuple) {
      context = ObjectGet(item, "@");
      env = FrameFromTuple(frame, item);
    }
    Val res = Evaluate(pred, context, env);
    if (IsNumeric(res)) {
      Val a = MakeArray();
      a->arr.push_back(res);
      res = a;
    }
    bool all_numbers = IsArray(res) && ArraySize(res) > 0;
    if (all_numbers) {
      size_t m = ArraySize(res);
      for (size_t k = 0; k < m; ++k) {
        if (!IsNumeric(ArrayAt(res, k))) {
          all_numbers = false;
          break;
        }
      }
    }
    if (all_numbers) {
      size_t m = ArraySize(res);
      for (size_t k = 0; k < m; ++k) {
        double ii = std::floor(ArrayAt(res, k)->number);
        if (ii < 0) ii += static_cast<double>(n);
        if (ii == static_cast<double>(index)) results->arr.push_back(item);
      }
    } else if (Truthy(res)) {
      results->arr.push_back(item);
    }
  }
  return results;
}

Val Evaluator::EvaluateBinary(const Node* expr, const Val& input,
                              Frame* frame) {
  const std::string& op = expr->value;
  const BinaryOp code = expr->op;
  Val lhs = Evaluate(expr->lhs.get(), input, frame);
  if (code == BinaryOp::kAnd || code == BinaryOp::kOr) {
    bool l = Truthy(lhs);
    if (code == BinaryOp::kAnd) {
      if (!l) return MakeBool(false);
      return MakeBool(Truthy(Evaluate(expr->rhs.get(), input, frame)));
    }
    if (l) return MakeBool(true);
    return MakeBool(Truthy(Evaluate(expr->rhs.get(), input, frame)));
  }
  Val rhs = Evaluate(expr->rhs.get(), input, frame);
  try {
    if (code == BinaryOp::kAdd || code == BinaryOp::kSub ||
        code == BinaryOp::kMul || code == BinaryOp::kDiv ||
        code == BinaryOp::kMod) {
      if (lhs && !IsNumeric(lhs)) throw Error("T2001").WithValue(lhs);
      if (rhs && !IsNumeric(rhs)) throw Error("T2002").WithValue(rhs);
      if (!lhs || !rhs) return nullptr;
      double a = lhs->number, b = rhs->number, r = 0;
      switch (code) {
        case BinaryOp::kAdd: r = a + b; break;
        case BinaryOp::kSub: r = a - b; break;
        case BinaryOp::kMul: r = a * b; break;
        case BinaryOp::kDiv: r = a / b; break;
        default: r = std::fmod(a, b); break;
      }
      return MakeNumber(r);
    }
    if (code == BinaryOp::kEq || code == BinaryOp::kNe) {
      if (!lhs || !rhs) return MakeBool(false);
      bool eq = DeepEqual(lhs, rhs);
      return MakeBool(code == BinaryOp::kEq ? eq : !eq);
    }
    if (code == BinaryOp::kLt || code == BinaryOp::kLe ||
        code == BinaryOp::kGt || code == BinaryOp::kGe) {
      auto comparable = [](const Val& v) {
        return !v || v->kind == Item::kString || v->kind == Item::kNumber;
      };
      if (!comparable(lhs) || !comparable(rhs)) {
        bool lbad = !(lhs && (lhs->kind == Item::kString ||
                              lhs->kind == Item::kNumber));
        throw Error("T2010").WithValue(lbad ? lhs : rhs);
      }
      if (!lhs || !rhs) return nullptr;
      if (lhs->kind != rhs->kind) {
        throw Error("T2009").WithValue(lhs).WithValue2(rhs);
      }
      int cmp;
      if (lhs->kind == Item::kNumber) {
        cmp = lhs->number < rhs->number ? -1 : lhs->number > rhs->number ? 1 : 0;
        if (std::isnan(lhs->number) || std::isnan(rhs->number)) {
          return MakeBool(false);
        }
      } else {
        cmp = lhs->str.compare(rhs->str);
      }
      bool r = code == BinaryOp::kLt   ? cmp < 0
               : code == BinaryOp::kLe ? cmp <= 0
               : code == BinaryOp::kGt ? cmp > 0
                                       : cmp >= 0;
      return MakeBool(r);
    }
    if (code == BinaryOp::kConcat) {
      std::string s;
      std::vector<Val> none;
      if (lhs) {
        std::vector<Val> a{lhs};
        Val str = FindBuiltin("string")->impl(*this, a, nullptr);
        s += str->str;
      }
      if (rhs) {
        std::vector<Val> a{rhs};
        Val str = FindBuiltin("string")->impl(*this, a, nullptr);
        s += str->str;
      }
      return MakeString(std::move(s));
    }
    if (code == BinaryOp::kRange) {
      if (lhs && !IsInteger(lhs)) throw Error("T2003").WithValue(lhs);
      if (rhs && !IsInteger(rhs)) throw Error("T2004").WithValue(rhs);
      if (!lhs || !rhs) return nullptr;
      double a = lhs->number, b = rhs->number;
      if (a > b) return nullptr;
      double size = b - a + 1;
      if (size > 1e7) throw Error("D2014").WithValue(MakeNumber(size));
      return MakeRange(a, static_cast<size_t>(size));
    }
    if (code == BinaryOp::kIn) {
      if (!lhs || !rhs) return MakeBool(false);
      auto strict_eq = [&](const Val& v) {
        if (!v) return false;
        if (IsArray(v) || IsObject(v) || IsFunction(v) || IsArray(lhs) ||
            IsObject(lhs) || IsFunction(lhs)) {
          return v == lhs;
        }
        return DeepEqual(v, lhs);
      };
      if (!IsArray(rhs)) return MakeBool(strict_eq(rhs));
      size_t n = ArraySize(rhs);
      for (size_t i = 0; i < n; ++i) {
        if (strict_eq(ArrayAt(rhs, i))) return MakeBool(true);
      }
      return MakeBool(false);
    }
  } catch (Error& e) {
    e.position = expr->position;
    e.WithToken(op);
    throw;
  }
  throw Error("S0201").WithPosition(expr->position).WithToken(op);
}

Val Evaluator::EvaluateUnary(const Node* expr, const Val& input,
                             Frame* frame) {
  if (expr->value == "-") {
    Val v = Evaluate(expr->expression.get(), input, frame);
    if (!v) return nullptr;
    if (IsNumeric(v)) return MakeNumber(-v->number);
    throw Error("D1002").WithPosition(expr->position).WithToken("-").WithValue(v);
  }
  if (expr->value == "[") {
    if (expr->expressions.size() == 1 &&
        expr->expressions[0]->type == NodeType::kBinary &&
        expr->expressions[0]->value == "..") {
      Val v = Evaluate(expr->expressions[0].get(), input, frame);
      if (v && v->kind == Item::kArray && v->range) {
        Val r = MakeRange(v->range_start, v->range_size);
        r->sequence = false;
        r->cons = expr->cons_array;
        return r;
      }
      Val result = MakeArray();
      if (v) PushFlat(&result->arr, v);
      if (expr->cons_array) result->cons = true;
      return result;
    }
    Val result = MakeArray();
    for (const auto& item : expr->expressions) {
      Val v = Evaluate(item.get(), input, frame);
      if (!v) continue;
      if (item->type == NodeType::kUnary && item->value == "[") {
        result->arr.push_back(v);
      } else {
        PushFlat(&result->arr, v);
      }
    }
    if (expr->cons_array) result->cons = true;
    return result;
  }
  // object constructor
  auto g = std::make_shared<Group>();
  Group group;
  group.pairs = expr->pairs;
  group.position = expr->position;
  return EvaluateGroup(group, input, frame);
}

Val Evaluator::EvaluateWildcard(const Val& in) {
  Val input = in;
  Val results = MakeSequence();
  if (input && input->kind == Item::kArray && input->outer_wrapper &&
      !input->arr.empty()) {
    input = input->arr[0];
  }
  if (IsObject(input) || IsArray(input)) {
    // Arrays are objects keyed by index here, as in JavaScript.
    auto visit = [&](const std::string&, const Val& value) {
      if (IsArray(value)) {
        std::function<void(const Val&)> flatten = [&](const Val& v) {
          if (IsArray(v)) {
            size_t n = ArraySize(v);
            for (size_t i = 0; i < n; ++i) flatten(ArrayAt(v, i));
          } else {
            results->arr.push_back(v);
          }
        };
        flatten(value);
        results->sequence = false;
      } else {
        results->arr.push_back(value);
      }
    };
    if (IsArray(input)) {
      size_t n = ArraySize(input);
      for (size_t i = 0; i < n; ++i) visit("", ArrayAt(input, i));
    } else {
      ForEachMember(input, visit);
    }
  }
  return results;
}

namespace {
void RecurseDescendants(const Val& input, std::vector<Val>* results,
                        int depth = 0) {
  if (depth > kMaxValueNesting) ThrowTooDeep();
  if (!IsArray(input)) results->push_back(input);
  if (IsArray(input)) {
    size_t n = ArraySize(input);
    for (size_t i = 0; i < n; ++i) {
      RecurseDescendants(ArrayAt(input, i), results, depth + 1);
    }
  } else if (IsObject(input)) {
    ForEachMember(input, [&](const std::string&, const Val& m) {
      RecurseDescendants(m, results, depth + 1);
    });
  }
}
}  // namespace

Val Evaluator::EvaluateDescendants(const Val& input) {
  if (!input) return nullptr;
  Val seq = MakeSequence();
  RecurseDescendants(input, &seq->arr);
  if (seq->arr.size() == 1) return seq->arr[0];
  return seq;
}

Val Evaluator::EvaluateGroup(const Group& group, Val input, Frame* frame) {
  bool reduce = input && input->kind == Item::kArray && input->tuple_stream;
  std::vector<Val> items;
  if (!IsArray(input)) {
    items.push_back(input);
  } else {
    PushFlat(&items, input);
  }
  if (items.empty()) items.push_back(nullptr);
  struct Entry {
    Val data;
    size_t expr_index;
  };
  std::vector<std::pair<std::string, Entry>> groups;
  absl::flat_hash_map<std::string, size_t> index;
  for (const auto& item : items) {
    Frame* env = reduce ? FrameFromTuple(frame, item) : frame;
    for (size_t p = 0; p < group.pairs.size(); ++p) {
      Val key = Evaluate(group.pairs[p].first.get(),
                         reduce && item ? ObjectGet(item, "@") : item, env);
      if (key && key->kind != Item::kString) {
        throw Error("T1003").WithPosition(group.position).WithValue(key);
      }
      if (!key) continue;
      auto it = index.find(key->str);
      if (it != index.end()) {
        Entry& e = groups[it->second].second;
        if (e.expr_index != p) {
          throw Error("D1009").WithPosition(group.position).WithValue(key);
        }
        e.data = Append(e.data, item);
      } else {
        index.emplace(key->str, groups.size());
        groups.push_back({key->str, Entry{item, p}});
      }
    }
  }
  Val result = MakeObject();
  for (auto& [key, entry] : groups) {
    Val context = entry.data;
    Frame* env = frame;
    if (reduce && entry.data) {
      Val tuple;
      if (!IsArray(entry.data)) {
        tuple = CopyTuple(entry.data);
      } else {
        tuple = CopyTuple(entry.data->arr[0]);
        for (size_t i = 1; i < entry.data->arr.size(); ++i) {
          for (const auto& [k, v] : entry.data->arr[i]->obj) {
            ObjectSet(tuple.get(), k, Append(ObjectGet(tuple, k), v));
          }
        }
      }
      context = ObjectGet(tuple, "@");
      ObjectRemove(tuple.get(), "@");
      env = FrameFromTuple(frame, tuple);
    }
    Val value = Evaluate(group.pairs[entry.expr_index].second.get(), context, env);
    if (value) ObjectSet(result.get(), key, value);
  }
  return result;
}

Val Evaluator::EvaluateSort(const Node* expr, const Val& input, Frame* frame) {
  Val in = AsSequence(input);
  bool tuple_sort = in->kind == Item::kArray && in->tuple_stream;
  auto greater = [&](const Val& a, const Val& b) {
    int comp = 0;
    for (size_t i = 0; comp == 0 && i < expr->terms.size(); ++i) {
      const SortTerm& term = expr->terms[i];
      Val ctx = a;
      Frame* env = frame;
      if (tuple_sort) {
        ctx = ObjectGet(a, "@");
        env = FrameFromTuple(frame, a);
      }
      Val aa = Evaluate(term.expr.get(), ctx, env);
      ctx = b;
      env = frame;
      if (tuple_sort) {
        ctx = ObjectGet(b, "@");
        env = FrameFromTuple(frame, b);
      }
      Val bb = Evaluate(term.expr.get(), ctx, env);
      if (!aa) {
        comp = bb ? 1 : 0;
        continue;
      }
      if (!bb) {
        comp = -1;
        continue;
      }
      auto ok = [](const Val& v) {
        return v->kind == Item::kString || v->kind == Item::kNumber;
      };
      if (!ok(aa) || !ok(bb)) {
        throw Error("T2008").WithPosition(expr->position).WithValue(ok(aa) ? bb : aa);
      }
      if (aa->kind != bb->kind) {
        throw Error("T2007").WithPosition(expr->position).WithValue(aa).WithValue2(bb);
      }
      if (aa->kind == Item::kNumber) {
        comp = aa->number == bb->number ? 0 : aa->number < bb->number ? -1 : 1;
      } else {
        int c = aa->str.compare(bb->str);
        comp = c == 0 ? 0 : c < 0 ? -1 : 1;
      }
      if (term.descending) comp = -comp;
    }
    return comp == 1;
  };
  std::vector<Val> items;
  PushFlat(&items, in);
  // Stable merge sort, taking from the right run only when strictly greater.
  std::vector<Val> tmp(items.size());
  std::function<void(size_t, size_t)> sort = [&](size_t lo, size_t hi) {
    if (hi - lo < 2) return;
    size_t mid = lo + (hi - lo) / 2;
    sort(lo, mid);
    sort(mid, hi);
    size_t i = lo, j = mid, k = lo;
    while (i < mid && j < hi) {
      if (greater(items[i], items[j])) tmp[k++] = items[j++];
      else tmp[k++] = items[i++];
    }
    while (i < mid) tmp[k++] = items[i++];
    while (j < hi) tmp[k++] = items[j++];
    for (size_t x = lo; x < hi; ++x) items[x] = tmp[x];
  };
  sort(0, items.size());
  Val out = MakeSequence();
  out->arr = std::move(items);
  out->tuple_stream = tuple_sort;
  return out;
}

Val Evaluator::EvaluateFunction(const Node* expr, const Val& input,
                                Frame* frame, const Val* applyto) {
  Val proc = Evaluate(expr->procedure.get(), input, frame);
  if (!proc && expr->procedure->type == NodeType::kPath &&
      expr->procedure->steps[0]->type == NodeType::kName) {
    Val found;
    if (frame->Find(expr->procedure->steps[0]->value, &found) ||
        FindBuiltin(expr->procedure->steps[0]->value)) {
      throw Error("T1005").WithPosition(expr->position).WithToken(
          expr->procedure->steps[0]->value);
    }
  }
  std::vector<Val> args;
  if (applyto) args.push_back(*applyto);
  for (const auto& a : expr->arguments) {
    args.push_back(Evaluate(a.get(), input, frame));
  }
  std::string name = expr->procedure->type == NodeType::kPath
                         ? expr->procedure->steps[0]->value
                         : expr->procedure->value;
  try {
    return Apply(proc, std::move(args), input, frame);
  } catch (Error& e) {
    if (e.position < 0) e.position = expr->position;
    if (!e.has_token) e.WithToken(name);
    throw;
  }
}

Val Evaluator::Apply(const Val& proc, std::vector<Val> args, const Val& input,
                     Frame* frame) {
  Val result = ApplyInner(proc, std::move(args), input, frame);
  while (IsFunction(result) && result->fn->kind == Function::kLambda &&
         result->fn->thunk) {
    const Function& th = *result->fn;
    const Node* call = th.node->body.get();
    Val next = Evaluate(call->procedure.get(), th.input, th.env);
    std::vector<Val> nargs;
    for (const auto& a : call->arguments) {
      nargs.push_back(Evaluate(a.get(), th.input, th.env));
    }
    try {
      result = ApplyInner(next, std::move(nargs), input, frame);
    } catch (Error& e) {
      if (e.position < 0) e.position = call->position;
      if (!e.has_token && call->procedure->type == NodeType::kVariable) {
        e.WithToken(call->procedure->value);
      }
      throw;
    }
  }
  return result;
}

Val Evaluator::ValidateAndApplyBuiltin(const Builtin* b, std::vector<Val> args,
                                       const Val& input, Frame* frame) {
  std::vector<Val> validated =
      b->signature ? ValidateArgs(*b->signature, std::move(args), input)
                   : std::move(args);
  return b->impl(*this, validated, input);
}

Val Evaluator::ApplyInner(const Val& proc, std::vector<Val> args,
                          const Val& input, Frame* frame) {
  if (!IsFunction(proc)) throw Error("T1006");
  const Function& fn = *proc->fn;
  switch (fn.kind) {
    case Function::kLambda: {
      std::vector<Val> validated =
          fn.signature ? ValidateArgs(*fn.signature, std::move(args), input)
                       : std::move(args);
      return ApplyProcedure(fn, std::move(validated));
    }
    case Function::kBuiltin:
      return ValidateAndApplyBuiltin(fn.builtin, std::move(args), input, frame);
    case Function::kPartialBuiltin: {
      std::vector<Val> full;
      size_t next = 0;
      for (size_t i = 0; i < fn.bound.size(); ++i) {
        if (fn.placeholder[i]) {
          full.push_back(next < args.size() ? args[next] : nullptr);
          ++next;
        } else {
          full.push_back(fn.bound[i]);
        }
      }
      while (!full.empty() && !full.back()) full.pop_back();
      return ValidateAndApplyBuiltin(fn.builtin, std::move(full), input, frame);
    }
    case Function::kChain: {
      Val x = args.empty() ? nullptr : args[0];
      Val inner = Apply(fn.f, {x}, nullptr, frame);
      return Apply(fn.g, {inner}, nullptr, frame);
    }
    case Function::kTransform:
      return ApplyTransform(fn, args);
    case Function::kRegex:
    case Function::kRegexNext: {
      std::string subject;
      size_t from = 0;
      if (fn.kind == Function::kRegex) {
        if (args.empty() || !IsString(args[0])) return nullptr;
        subject = args[0]->str;
      } else {
        subject = fn.subject;
        from = fn.offset;
        if (from >= subject.size()) return nullptr;
      }
      RegexMatch m;
      if (!RegexSearch(*fn.regex, subject, from, &m, &regex_steps_left)) {
        return nullptr;
      }
      if (fn.kind == Function::kRegexNext && m.match.empty()) {
        throw Error("D1004").WithValue(MakeString(fn.regex->source));
      }
      Val o = MakeObject();
      ObjectSet(o.get(), "match", MakeString(m.match));
      ObjectSet(o.get(), "start", MakeNumber(static_cast<double>(m.start)));
      ObjectSet(o.get(), "end", MakeNumber(static_cast<double>(m.end)));
      Val groups = MakeArray();
      for (auto& g : m.groups) groups->arr.push_back(MakeString(g));
      ObjectSet(o.get(), "groups", groups);
      auto next = std::make_shared<Function>();
      next->kind = Function::kRegexNext;
      next->regex = fn.regex;
      next->subject = subject;
      next->offset = m.end == m.start ? m.end + 1 : m.end;
      ObjectSet(o.get(), "next", MakeFunction(next));
      return o;
    }
  }
  throw Error("T1006");
}

Val Evaluator::ApplyProcedure(const Function& fn, std::vector<Val> args) {
  Frame* env = NewFrame(fn.env);
  for (size_t i = 0; i < fn.params.size(); ++i) {
    env->Bind(fn.params[i], i < args.size() ? args[i] : nullptr);
  }
  return Evaluate(fn.node->body.get(), fn.input, env);
}

Val Evaluator::ApplyTransform(const Function& fn, std::vector<Val>& args) {
  const Node* expr = fn.node;
  if (args.size() > 1 ||
      (!args.empty() && args[0] && !IsObject(args[0]) && !IsArray(args[0]))) {
    throw Error("T0410").WithIndex(1).WithValue(args.empty() ? nullptr : args[0]);
  }
  Val obj = args.empty() ? nullptr : args[0];
  if (!obj) return nullptr;
  Val clone_fn = Lookup(fn.env, "clone");
  if (clone_fn && !IsFunction(clone_fn)) {
    throw Error("T2013").WithPosition(expr->position);
  }
  Val result = DeepClone(obj);
  Val matches = Evaluate(expr->pattern.get(), result, fn.env);
  if (!matches) return result;
  std::vector<Val> list;
  if (IsArray(matches)) {
    PushFlat(&list, matches);
  } else {
    list.push_back(matches);
  }
  for (const auto& match : list) {
    Val update = Evaluate(expr->update.get(), match, fn.env);
    if (update) {
      if (!IsObject(update)) {
        throw Error("T2011").WithPosition(expr->update->position).WithValue(update);
      }
      if (match && match->kind == Item::kObject) {
        ForEachMember(update, [&](const std::string& k, const Val& v) {
          ObjectSet(match.get(), k, v);
        });
      }
    }
    if (expr->remove) {
      Val deletions = Evaluate(expr->remove.get(), match, fn.env);
      if (deletions) {
        Val original = deletions;
        std::vector<Val> names;
        if (IsArray(deletions)) PushFlat(&names, deletions);
        else names.push_back(deletions);
        for (const auto& n : names) {
          if (!IsString(n)) {
            throw Error("T2012").WithPosition(expr->remove->position).WithValue(original);
          }
        }
        if (match && match->kind == Item::kObject) {
          for (const auto& n : names) ObjectRemove(match.get(), n->str);
        }
      }
    }
  }
  return result;
}

Val Evaluator::EvaluatePartial(const Node* expr, const Val& input,
                               Frame* frame) {
  std::vector<Val> args;
  std::vector<bool> holes;
  for (const auto& a : expr->arguments) {
    if (a->type == NodeType::kOperator && a->value == "?") {
      args.push_back(nullptr);
      holes.push_back(true);
    } else {
      args.push_back(Evaluate(a.get(), input, frame));
      holes.push_back(false);
    }
  }
  Val proc = Evaluate(expr->procedure.get(), input, frame);
  std::string name = expr->procedure->type == NodeType::kPath
                         ? expr->procedure->steps[0]->value
                         : expr->procedure->value;
  if (!proc && expr->procedure->type == NodeType::kPath) {
    Val found;
    if (frame->Find(name, &found) || FindBuiltin(name)) {
      throw Error("T1007").WithPosition(expr->position).WithToken(name);
    }
  }
  if (IsFunction(proc) && proc->fn->kind == Function::kLambda) {
    const Function& src = *proc->fn;
    auto fn = std::make_shared<Function>();
    fn->kind = Function::kLambda;
    fn->node = src.node;
    fn->input = src.input;
    fn->env = NewFrame(src.env);
    for (size_t i = 0; i < src.params.size(); ++i) {
      if (i < holes.size() && holes[i]) {
        fn->params.push_back(src.params[i]);
      } else {
        fn->env->Bind(src.params[i], i < args.size() ? args[i] : nullptr);
      }
    }
    return MakeFunction(fn);
  }
  if (IsFunction(proc) && (proc->fn->kind == Function::kBuiltin ||
                           proc->fn->kind == Function::kPartialBuiltin)) {
    const Function& src = *proc->fn;
    auto fn = std::make_shared<Function>();
    fn->kind = Function::kPartialBuiltin;
    fn->builtin = src.builtin;
    if (src.kind == Function::kBuiltin) {
      size_t arity = static_cast<size_t>(src.builtin->arity);
      for (size_t i = 0; i < arity; ++i) {
        bool hole = i < holes.size() && holes[i];
        fn->bound.push_back(i < args.size() && !hole ? args[i] : nullptr);
        fn->placeholder.push_back(hole);
      }
    } else {
      size_t next = 0;
      for (size_t i = 0; i < src.bound.size(); ++i) {
        if (src.placeholder[i]) {
          bool hole = next < holes.size() && holes[next];
          fn->bound.push_back(!hole && next < args.size() ? args[next] : nullptr);
          fn->placeholder.push_back(hole);
          ++next;
        } else {
          fn->bound.push_back(src.bound[i]);
          fn->placeholder.push_back(false);
        }
      }
    }
    return MakeFunction(fn);
  }
  if (IsFunction(proc)) {
    // Other callables: wrap as a chain-free closure via a lambda-like partial.
    auto fn = std::make_shared<Function>(*proc->fn);
    return MakeFunction(fn);
  }
  throw Error("T1008").WithPosition(expr->position).WithToken(name);
}

Val Evaluator::EvaluateApply(const Node* expr, const Val& input, Frame* frame) {
  Val lhs = Evaluate(expr->lhs.get(), input, frame);
  if (expr->rhs->type == NodeType::kFunction) {
    return EvaluateFunction(expr->rhs.get(), input, frame, &lhs);
  }
  Val func = Evaluate(expr->rhs.get(), input, frame);
  if (!IsFunction(func)) {
    throw Error("T2006").WithPosition(expr->position).WithValue(func);
  }
  if (IsFunction(lhs)) {
    auto fn = std::make_shared<Function>();
    fn->kind = Function::kChain;
    fn->f = lhs;
    fn->g = func;
    return MakeFunction(fn);
  }
  return Apply(func, {lhs}, nullptr, frame);
}

int Evaluator::FunctionArity(const Val& f) {
  const Function& fn = *f->fn;
  switch (fn.kind) {
    case Function::kLambda: return static_cast<int>(fn.params.size());
    case Function::kBuiltin: return fn.builtin->arity;
    case Function::kPartialBuiltin: {
      int n = 0;
      for (bool h : fn.placeholder) n += h ? 1 : 0;
      return n;
    }
    case Function::kChain: return 1;
    default: return 1;
  }
}

Val Evaluator::CallHof(const Val& f, const Val& a1, const Val& a2,
                       const Val& a3) {
  std::vector<Val> args{a1};
  int arity = FunctionArity(f);
  if (arity >= 2) args.push_back(a2);
  if (arity >= 3) args.push_back(a3);
  return Apply(f, std::move(args), nullptr, root);
}

// ---------------------------------------------------------------- signatures

namespace {

// Backtracking match of argument type symbols against the parameters,
// greedy like the regular expression the reference implementation builds.
bool MatchParams(const std::vector<SigParam>& params, size_t pi,
                 const std::string& sig, size_t pos, bool anchored,
                 std::vector<std::string>* captures, size_t* end) {
  if (pi == params.size()) {
    if (anchored && pos != sig.size()) return false;
    *end = pos;
    return true;
  }
  const SigParam& p = params[pi];
  auto accepts = [&](size_t at) {
    return at < sig.size() && p.chars.find(sig[at]) != std::string::npos;
  };
  size_t max = 0;
  while (accepts(pos + max) && (p.quant == '+' || max < 1)) ++max;
  size_t min = p.quant == '?' ? 0 : 1;
  for (size_t take = max + 1; take-- > min;) {
    (*captures)[pi] = sig.substr(pos, take);
    if (MatchParams(params, pi + 1, sig, pos + take, anchored, captures, end)) {
      return true;
    }
    if (take == 0) break;
  }
  return false;
}

const char* ArrayTypeName(const std::string& subtype) {
  switch (subtype.empty() ? ' ' : subtype[0]) {
    case 'a': return "arrays";
    case 'b': return "booleans";
    case 'f': return "functions";
    case 'n': return "numbers";
    case 'o': return "objects";
    case 's': return "strings";
  }
  return "values";
}

}  // namespace

std::vector<Val> ValidateArgs(const Signature& sig, std::vector<Val> args,
                              const Val& context) {
  std::string supplied;
  for (const auto& a : args) supplied += TypeSymbol(a);
  std::vector<std::string> captures(sig.params.size());
  size_t end = 0;
  if (!MatchParams(sig.params, 0, supplied, 0, true, &captures, &end)) {
    size_t good_to = 0;
    for (size_t n = 1; n <= sig.params.size(); ++n) {
      std::vector<SigParam> partial(sig.params.begin(), sig.params.begin() + n);
      std::vector<std::string> caps(n);
      size_t e = 0;
      if (!MatchParams(partial, 0, supplied, 0, false, &caps, &e)) break;
      good_to = e;
    }
    throw Error("T0410")
        .WithIndex(static_cast<int>(good_to) + 1)
        .WithValue(good_to < args.size() ? args[good_to] : nullptr);
  }
  std::vector<Val> validated;
  size_t arg_index = 0;
  for (size_t i = 0; i < sig.params.size(); ++i) {
    const SigParam& p = sig.params[i];
    const std::string& match = captures[i];
    if (match.empty()) {
      if (p.context) {
        char ct = TypeSymbol(context);
        if (p.context_chars.find(ct) != std::string::npos) {
          validated.push_back(context);
        } else {
          throw Error("T0411").WithValue(context).WithIndex(
              static_cast<int>(arg_index) + 1);
        }
      } else {
        validated.push_back(arg_index < args.size() ? args[arg_index] : nullptr);
        ++arg_index;
      }
      continue;
    }
    for (char single : match) {
      Val arg = arg_index < args.size() ? args[arg_index] : nullptr;
      if (p.type == 'a') {
        if (single == 'm') {
          arg = nullptr;
        } else {
          bool ok = true;
          if (!p.subtype.empty()) {
            if (single != 'a' && match != p.subtype) {
              ok = false;
            } else if (single == 'a' && arg) {
              size_t n = ArraySize(arg);
              if (n > 0) {
                char item_type = TypeSymbol(ArrayAt(arg, 0));
                if (item_type != p.subtype[0]) {
                  ok = false;
                } else {
                  for (size_t k = 0; k < n; ++k) {
                    if (TypeSymbol(ArrayAt(arg, k)) != item_type) ok = false;
                  }
                }
              }
            }
          }
          if (!ok) {
            Error e("T0412");
            e.WithValue(arg).WithIndex(static_cast<int>(arg_index) + 1);
            e.type = ArrayTypeName(p.subtype);
            throw e;
          }
          if (single != 'a') {
            Val wrapped = MakeArray();
            wrapped->arr.push_back(arg);
            arg = wrapped;
          }
        }
      }
      validated.push_back(arg);
      ++arg_index;
    }
  }
  return validated;
}

}  // namespace stepflow::jsonata
