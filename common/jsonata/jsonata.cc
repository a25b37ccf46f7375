#include "common/jsonata/jsonata.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <new>
#include <set>

#include "absl/strings/str_cat.h"
#include "common/jsonata/internal.h"

namespace stepflow::jsonata {
namespace {

// JSONata's message catalogue; {{x}} inserts JSON text, {{{x}}} raw text.
const std::map<std::string, std::string>& Messages() {
  static const auto* const kMessages = new std::map<std::string, std::string>{
      {"S0101", "String literal must be terminated by a matching quote"},
      {"S0102", "Number out of range: {{token}}"},
      {"S0103", "Unsupported escape sequence: \\{{token}}"},
      {"S0104", "The escape sequence \\u must be followed by 4 hex digits"},
      {"S0105", "Quoted property name must be terminated with a backquote (`)"},
      {"S0106", "Comment has no closing tag"},
      {"S0201", "Syntax error: {{token}}"},
      {"S0202", "Expected {{value}}, got {{token}}"},
      {"S0203", "Expected {{value}} before end of expression"},
      {"S0204", "Unknown operator: {{token}}"},
      {"S0205", "Unexpected token: {{token}}"},
      {"S0206", "Unknown expression type: {{token}}"},
      {"S0207", "Unexpected end of expression"},
      {"S0208", "Parameter {{value}} of function definition must be a variable name (start with $)"},
      {"S0209", "A predicate cannot follow a grouping expression in a step"},
      {"S0210", "Each step can only have one grouping expression"},
      {"S0211", "The symbol {{token}} cannot be used as a unary operator"},
      {"S0212", "The left side of := must be a variable name (start with $)"},
      {"S0213", "The literal value {{value}} cannot be used as a step within a path expression"},
      {"S0214", "The right side of {{token}} must be a variable name (start with $)"},
      {"S0215", "A context variable binding must precede any predicates on a step"},
      {"S0216", "A context variable binding must precede the 'order-by' clause on a step"},
      {"S0217", "The object representing the 'parent' cannot be derived from this expression"},
      {"S0301", "Empty regular expressions are not allowed"},
      {"S0302", "No terminating / in regular expression"},
      {"S0402", "Choice groups containing parameterized types are not supported"},
      {"S0401", "Type parameters can only be applied to functions and arrays"},
      {"S0500", "Attempted to evaluate an expression containing syntax error(s)"},
      {"T0410", "Argument {{index}} of function {{token}} does not match function signature"},
      {"T0411", "Context value is not a compatible type with argument {{index}} of function {{token}}"},
      {"T0412", "Argument {{index}} of function {{token}} must be an array of {{type}}"},
      {"D1001", "Number out of range: {{value}}"},
      {"D1002", "Cannot negate a non-numeric value: {{value}}"},
      {"T1003", "Key in object structure must evaluate to a string; got: {{value}}"},
      {"D1004", "Regular expression matches zero length string"},
      {"T1005", "Attempted to invoke a non-function. Did you mean ${{{token}}}?"},
      {"T1006", "Attempted to invoke a non-function"},
      {"T1007", "Attempted to partially apply a non-function. Did you mean ${{{token}}}?"},
      {"T1008", "Attempted to partially apply a non-function"},
      {"D1009", "Multiple key definitions evaluate to same key: {{value}}"},
      {"T1010", "The matcher function argument passed to function {{token}} does not return the correct object structure"},
      {"T2001", "The left side of the {{token}} operator must evaluate to a number"},
      {"T2002", "The right side of the {{token}} operator must evaluate to a number"},
      {"T2003", "The left side of the range operator (..) must evaluate to an integer"},
      {"T2004", "The right side of the range operator (..) must evaluate to an integer"},
      {"T2006", "The right side of the function application operator ~> must be a function"},
      {"T2007", "Type mismatch when comparing values {{value}} and {{value2}} in order-by clause"},
      {"T2008", "The expressions within an order-by clause must evaluate to numeric or string values"},
      {"T2009", "The values {{value}} and {{value2}} either side of operator {{token}} must be of the same data type"},
      {"T2010", "The expressions either side of operator {{token}} must evaluate to numeric or string values"},
      {"T2011", "The insert/update clause of the transform expression must evaluate to an object: {{value}}"},
      {"T2012", "The delete clause of the transform expression must evaluate to a string or array of strings: {{value}}"},
      {"T2013", "The transform expression clones the input object using the $clone() function.  This has been overridden in the current scope by a non-function."},
      {"D2014", "The size of the sequence allocated by the range operator (..) must not exceed 1e7.  Attempted to allocate {{value}}."},
      {"D3001", "Attempting to invoke string function on Infinity or NaN"},
      {"D3010", "Second argument of replace function cannot be an empty string"},
      {"D3011", "Fourth argument of replace function must evaluate to a positive number"},
      {"D3012", "Attempted to replace a matched string with a non-string value"},
      {"D3020", "Third argument of split function must evaluate to a positive number"},
      {"D3030", "Unable to cast value to a number: {{value}}"},
      {"D3040", "Third argument of match function must evaluate to a positive number"},
      {"D3050", "The second argument of reduce function must be a function with at least two arguments"},
      {"D3060", "The sqrt function cannot be applied to a negative number: {{value}}"},
      {"D3061", "The power function has resulted in a value that cannot be represented as a JSON number: base={{value}}, exponent={{exp}}"},
      {"D3070", "The single argument form of the sort function can only be applied to an array of strings or an array of numbers.  Use the second argument to specify a comparison function"},
      {"D3080", "The picture string must only contain a maximum of two sub-pictures"},
      {"D3081", "The sub-picture must not contain more than one instance of the 'decimal-separator' character"},
      {"D3082", "The sub-picture must not contain more than one instance of the 'percent' character"},
      {"D3083", "The sub-picture must not contain more than one instance of the 'per-mille' character"},
      {"D3084", "The sub-picture must not contain both a 'percent' and a 'per-mille' character"},
      {"D3085", "The mantissa part of a sub-picture must contain at least one character that is either an 'optional digit character' or a member of the 'decimal digit family'"},
      {"D3086", "The sub-picture must not contain a passive character that is preceded by an active character and that is followed by another active character"},
      {"D3087", "The sub-picture must not contain a 'grouping-separator' character that appears adjacent to a 'decimal-separator' character"},
      {"D3088", "The sub-picture must not contain a 'grouping-separator' at the end of the integer part"},
      {"D3089", "The sub-picture must not contain two adjacent instances of the 'grouping-separator' character"},
      {"D3090", "The integer part of the sub-picture must not contain a member of the 'decimal digit family' that is followed by an instance of the 'optional digit character'"},
      {"D3091", "The fractional part of the sub-picture must not contain an instance of the 'optional digit character' that is followed by a member of the 'decimal digit family'"},
      {"D3092", "A sub-picture that contains a 'percent' or 'per-mille' character must not contain a character treated as an 'exponent-separator'"},
      {"D3093", "The exponent part of the sub-picture must comprise only of one or more characters that are members of the 'decimal digit family'"},
      {"D3100", "The radix of the formatBase function must be between 2 and 36.  It was given {{value}}"},
      {"D3110", "The argument of the toMillis function must be an ISO 8601 formatted timestamp. Given {{value}}"},
      {"D3130", "Formatting or parsing an integer as a sequence starting with {{value}} is not supported by this implementation"},
      {"D3131", "In a decimal digit pattern, all digits must be from the same decimal group"},
      {"D3132", "Unknown component specifier {{value}} in date/time picture string"},
      {"D3133", "The 'name' modifier can only be applied to months and days in the date/time picture string, not {{value}}"},
      {"D3134", "The timezone integer format specifier cannot have more than four digits"},
      {"D3135", "No matching closing bracket ']' in date/time picture string"},
      {"D3136", "The date/time picture string is missing specifiers required to parse the timestamp"},
      {"D3137", "{{{message}}}"},
      {"D3138", "The $single() function expected exactly 1 matching result.  Instead it matched more."},
      {"D3139", "The $single() function expected exactly 1 matching result.  Instead it matched 0."},
      {"D3140", "Malformed URL passed to ${{{functionName}}}(): {{value}}"},
      {"D3141", "{{{message}}}"},
      {"U1001", "Stack overflow error: the expression exceeded the maximum evaluation depth"},
  };
  return *kMessages;
}

std::string JsonText(const std::string& s) {
  return Stringify(MakeString(s), false, false);
}

std::string FieldText(const Error& e, absl::string_view field, bool raw) {
  if (field == "token") {
    if (!e.has_token) return "undefined";
    return raw ? e.token : JsonText(e.token);
  }
  if (field == "value") {
    if (!e.has_value || !e.value) return "undefined";
    if (raw && IsString(e.value)) return e.value->str;
    return Stringify(e.value, false, false);
  }
  if (field == "value2") {
    if (!e.has_value2 || !e.value2) return "undefined";
    return Stringify(e.value2, false, false);
  }
  if (field == "index") return e.has_index ? std::to_string(e.index) : "undefined";
  if (field == "type") return JsonText(e.type);
  if (field == "exp") return e.extra;
  if (field == "message" || field == "functionName") return e.message;
  return "undefined";
}

std::string RenderMessage(const Error& e) {
  if (e.code == "U1001" && e.message == "steps") {
    return "The expression exceeded the maximum number of evaluation steps";
  }
  if (e.code == "U1001" && e.message == "nesting") {
    return "The expression is nested too deeply";
  }
  if (e.code == "U1001" && e.message == "value nesting") {
    return "The value is nested too deeply";
  }
  auto it = Messages().find(e.code);
  if (it == Messages().end()) return e.message;
  const std::string& tpl = it->second;
  std::string out;
  for (size_t i = 0; i < tpl.size();) {
    if (tpl.compare(i, 3, "{{{") == 0) {
      size_t end = tpl.find("}}}", i + 3);
      out += FieldText(e, tpl.substr(i + 3, end - i - 3), true);
      i = end + 3;
    } else if (tpl.compare(i, 2, "{{") == 0) {
      size_t end = tpl.find("}}", i + 2);
      out += FieldText(e, tpl.substr(i + 2, end - i - 2), false);
      i = end + 2;
    } else {
      out += tpl[i++];
    }
  }
  return out;
}

EvalError ToEvalError(const Error& e) {
  EvalError out;
  out.code = e.code;
  out.message = RenderMessage(e);
  out.position = e.position;
  out.token = e.token;
  return out;
}

// Collects the names read as variables and the names the expression binds
// itself (:=, lambda parameters, @ and # bindings).
void CollectVariables(const Node* n, std::set<std::string>* read,
                      std::set<std::string>* bound) {
  if (!n) return;
  if (n->type == NodeType::kVariable) read->insert(n->value);
  if (n->type == NodeType::kBind && n->lhs) bound->insert(n->lhs->value);
  if (n->type == NodeType::kLambda) {
    for (const auto& a : n->arguments) bound->insert(a->value);
  }
  if (n->has_focus) bound->insert(n->focus);
  if (n->has_index) bound->insert(n->index);
  for (const auto& s : n->stages) {
    if (s.is_index) bound->insert(s.value);
  }
  ForEachChild(
      *n, [&](const NodePtr& c) { CollectVariables(c.get(), read, bound); },
      /*lambda_parameters=*/false);
}

// Converts a result to JSON the way JSON.stringify would see it.
bool ToJson(const Val& v, json::Value* out, json::Allocator& alloc,
            int depth = 0) {
  if (!v || v->kind == Item::kFunction) return false;
  if (depth > kMaxValueNesting) ThrowTooDeep();
  switch (v->kind) {
    case Item::kNull:
      out->SetNull();
      return true;
    case Item::kBool:
      out->SetBool(v->boolean);
      return true;
    case Item::kNumber: {
      double d = v->number;
      if (!std::isfinite(d)) throw Error("D1001").WithValue(v);
      if (d == std::floor(d) && std::fabs(d) < 9007199254740992.0) {
        out->SetInt64(static_cast<int64_t>(d));
      } else {
        out->SetDouble(d);
      }
      return true;
    }
    case Item::kString:
      out->SetString(v->str.data(), static_cast<rapidjson::SizeType>(v->str.size()),
                     alloc);
      return true;
    case Item::kJson:
      *out = json::Copy(*v->json, alloc);
      return true;
    case Item::kArray: {
      out->SetArray();
      const size_t n = ArraySize(v);
      out->Reserve(static_cast<rapidjson::SizeType>(n), alloc);
      for (size_t i = 0; i < n; ++i) {
        Val e = ArrayAt(v, i);
        json::Value j;
        if (!e) continue;
        if (e->kind == Item::kFunction) {
          j.SetNull();
        } else {
          ToJson(e, &j, alloc, depth + 1);
        }
        out->PushBack(j, alloc);
      }
      return true;
    }
    case Item::kObject: {
      out->SetObject();
      for (const auto& [k, m] : v->obj) {
        json::Value j;
        if (!ToJson(m, &j, alloc, depth + 1)) continue;
        out->AddMember(json::Value(k.data(), static_cast<rapidjson::SizeType>(k.size()),
                                   alloc),
                       j, alloc);
      }
      return true;
    }
    default:
      return false;
  }
}

}  // namespace

absl::Status ToStatus(const EvalError& error) {
  return absl::InvalidArgumentError(absl::StrCat(error.code, ": ", error.message));
}

EvalError ParseError(const absl::Status& status) {
  EvalError out;
  absl::string_view text = status.message();
  size_t colon = text.find(": ");
  if (colon == absl::string_view::npos) {
    out.message = std::string(text);
  } else {
    out.code = std::string(text.substr(0, colon));
    out.message = std::string(text.substr(colon + 2));
  }
  return out;
}

Expression::~Expression() = default;

absl::StatusOr<std::unique_ptr<Expression>> Expression::Compile(
    absl::string_view text, EvalError* error) {
  std::unique_ptr<Expression> expr(new Expression());
  expr->text_ = std::string(text);
  try {
    expr->root_ = Parse(expr->text_);
  } catch (const Error& e) {
    EvalError ee = ToEvalError(e);
    if (error) *error = ee;
    return ToStatus(ee);
  } catch (const std::exception& e) {
    EvalError ee{"S0201", absl::StrCat("Syntax error: ", e.what())};
    if (error) *error = ee;
    return ToStatus(ee);
  }
  std::set<std::string> read, bound;
  CollectVariables(expr->root_.get(), &read, &bound);
  for (const std::string& name : read) {
    if (bound.count(name) > 0 || FindBuiltin(name) != nullptr) continue;
    expr->variables_.push_back(name);
  }
  return expr;
}

absl::StatusOr<Result> Expression::Evaluate(const json::Value* input,
                                            const Bindings& bindings,
                                            const Environment& env,
                                            json::Allocator* allocator,
                                            EvalError* error) const {
  Evaluator ev(env);
  try {
    Frame* root = ev.NewFrame(nullptr);
    ev.root = root;
    for (const auto& [name, value] : bindings) {
      root->Bind(name, value ? Wrap(value) : nullptr);
    }
    Val in = WrapRoot(input);
    root->Bind("$", in);
    if (IsArray(in)) {
      Val seq = MakeSequence();
      seq->arr.push_back(in);
      seq->outer_wrapper = true;
      in = seq;
    }
    Frame* frame = ev.NewFrame(root);
    Val v = ev.Evaluate(root_.get(), in, frame);
    Result result;
    result.defined = ToJson(v, &result.value, *allocator);
    result.function = IsFunction(v);
    return result;
  } catch (const Error& e) {
    EvalError ee = ToEvalError(e);
    if (error) *error = ee;
    return ToStatus(ee);
  } catch (const std::bad_alloc&) {
    EvalError ee{"D1001", "Out of memory while evaluating the expression"};
    if (error) *error = ee;
    return ToStatus(ee);
  }
}

}  // namespace stepflow::jsonata
