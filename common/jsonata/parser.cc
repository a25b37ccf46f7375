// Tokenizer, Pratt parser and the post-processing pass that turns the parse
// tree into evaluation steps (paths, stages, ancestry slots), following the
// structure of the JSONata reference implementation so that precedence and
// error codes agree with it.
#include <cmath>
#include <cstdlib>
#include <map>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/json/utf8.h"
#include "common/jsonata/internal.h"

namespace stepflow::jsonata {
namespace {

int OperatorBindingPower(absl::string_view op) {
  static const std::map<std::string, int, std::less<>> kPowers = {
      {".", 75},  {"[", 80},  {"]", 0},   {"{", 70},  {"}", 0},  {"(", 80},
      {")", 0},   {",", 0},   {"@", 80},  {"#", 80},  {";", 80}, {":", 80},
      {"?", 20},  {"+", 50},  {"-", 50},  {"*", 60},  {"/", 60}, {"%", 60},
      {"|", 20},  {"=", 40},  {"<", 40},  {">", 40},  {"^", 40}, {"**", 60},
      {"..", 20}, {":=", 10}, {"!=", 40}, {"<=", 40}, {">=", 40},
      {"~>", 40}, {"and", 30}, {"or", 25}, {"in", 40}, {"&", 50},
      {"!", 0},   {"~", 0}};
  auto it = kPowers.find(op);
  return it == kPowers.end() ? -1 : it->second;
}

bool IsOperatorChar(char c) {
  return std::string_view("[]{}(),@#;:?+-*/%|=<>^&!~.").find(c) !=
         std::string_view::npos;
}

bool IsSpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v';
}

struct Token {
  enum Type { kNone, kName, kVariable, kOperator, kString, kNumber, kValue,
              kRegex };
  Type type = kNone;
  std::string value;
  double number = 0;
  int literal = 0;
  std::shared_ptr<Regex> regex;
  int64_t position = 0;
};

BinaryOp ToBinaryOp(absl::string_view op) {
  static const std::map<std::string, BinaryOp, std::less<>> kOps = {
      {"and", BinaryOp::kAnd}, {"or", BinaryOp::kOr},   {"+", BinaryOp::kAdd},
      {"-", BinaryOp::kSub},   {"*", BinaryOp::kMul},   {"/", BinaryOp::kDiv},
      {"%", BinaryOp::kMod},   {"=", BinaryOp::kEq},    {"!=", BinaryOp::kNe},
      {"<", BinaryOp::kLt},    {"<=", BinaryOp::kLe},   {">", BinaryOp::kGt},
      {">=", BinaryOp::kGe},   {"&", BinaryOp::kConcat}, {"..", BinaryOp::kRange},
      {"in", BinaryOp::kIn}};
  auto it = kOps.find(op);
  return it == kOps.end() ? BinaryOp::kOther : it->second;
}

class Lexer {
 public:
  explicit Lexer(absl::string_view src) : src_(src) {}

  // Returns false at the end of input.
  bool Next(bool prefix, Token* tok) {
    if (pos_ >= src_.size()) return false;
    while (pos_ < src_.size() && IsSpace(src_[pos_])) ++pos_;
    if (At(pos_) == '/' && At(pos_ + 1) == '*') {
      size_t start = pos_;
      pos_ += 2;
      while (!(At(pos_) == '*' && At(pos_ + 1) == '/')) {
        ++pos_;
        if (pos_ >= src_.size()) throw Error("S0106").WithPosition(start);
      }
      pos_ += 2;
      return Next(prefix, tok);
    }
    if (pos_ >= src_.size()) return false;
    *tok = Token();
    char c = src_[pos_];
    if (!prefix && c == '/') {
      ++pos_;
      tok->type = Token::kRegex;
      tok->position = pos_;
      tok->regex = ScanRegex();
      return true;
    }
    static const char* kDouble[] = {"..", ":=", "!=", ">=", "<=", "**", "~>"};
    for (const char* d : kDouble) {
      if (c == d[0] && At(pos_ + 1) == d[1]) {
        pos_ += 2;
        return Make(Token::kOperator, d, tok);
      }
    }
    if (IsOperatorChar(c)) {
      ++pos_;
      return Make(Token::kOperator, std::string(1, c), tok);
    }
    if (c == '"' || c == '\'') {
      char quote = c;
      ++pos_;
      std::string out;
      while (pos_ < src_.size()) {
        c = src_[pos_];
        if (c == '\\') {
          ++pos_;
          c = At(pos_);
          switch (c) {
            case '"': out += '"'; break;
            case '\\': out += '\\'; break;
            case '/': out += '/'; break;
            case 'b': out += '\b'; break;
            case 'f': out += '\f'; break;
            case 'n': out += '\n'; break;
            case 'r': out += '\r'; break;
            case 't': out += '\t'; break;
            case 'u': {
              uint32_t cp = 0;
              if (!Hex4(pos_ + 1, &cp)) throw Error("S0104").WithPosition(pos_);
              pos_ += 4;
              if (cp >= 0xD800 && cp < 0xDC00 && At(pos_ + 1) == '\\' &&
                  At(pos_ + 2) == 'u') {
                uint32_t lo = 0;
                if (Hex4(pos_ + 3, &lo) && lo >= 0xDC00 && lo < 0xE000) {
                  cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                  pos_ += 6;
                }
              }
              json::AppendUtf8(cp, &out);
              break;
            }
            default:
              throw Error("S0103").WithPosition(pos_).WithToken(
                  std::string(1, c));
          }
        } else if (c == quote) {
          ++pos_;
          tok->value = std::move(out);
          tok->type = Token::kString;
          return true;
        } else {
          out += c;
        }
        ++pos_;
      }
      throw Error("S0101").WithPosition(pos_);
    }
    // numbers: -?(0|[1-9][0-9]*)(\.[0-9]+)?([Ee][-+]?[0-9]+)?
    if (c >= '0' && c <= '9') {
      size_t i = pos_;
      if (src_[i] == '0') {
        ++i;
      } else {
        while (i < src_.size() && isdigit(static_cast<unsigned char>(src_[i]))) ++i;
      }
      if (At(i) == '.' && isdigit(static_cast<unsigned char>(At(i + 1)))) {
        ++i;
        while (i < src_.size() && isdigit(static_cast<unsigned char>(src_[i]))) ++i;
      }
      if (At(i) == 'e' || At(i) == 'E') {
        size_t j = i + 1;
        if (At(j) == '+' || At(j) == '-') ++j;
        if (isdigit(static_cast<unsigned char>(At(j)))) {
          while (j < src_.size() && isdigit(static_cast<unsigned char>(src_[j]))) ++j;
          i = j;
        }
      }
      std::string text(src_.substr(pos_, i - pos_));
      double d = std::strtod(text.c_str(), nullptr);
      if (!std::isfinite(d)) {
        throw Error("S0102").WithPosition(pos_).WithToken(text);
      }
      tok->type = Token::kNumber;
      tok->number = d;
      tok->position = pos_;
      pos_ = i;
      return true;
    }
    if (c == '`') {
      ++pos_;
      size_t end = src_.find('`', pos_);
      if (end != absl::string_view::npos) {
        tok->value = std::string(src_.substr(pos_, end - pos_));
        tok->type = Token::kName;
        tok->position = end + 1;
        pos_ = end + 1;
        return true;
      }
      pos_ = src_.size();
      throw Error("S0105").WithPosition(pos_);
    }
    size_t i = pos_;
    while (i < src_.size() && !IsSpace(src_[i]) && !IsOperatorChar(src_[i])) ++i;
    if (src_[pos_] == '$') {
      tok->value = std::string(src_.substr(pos_ + 1, i - pos_ - 1));
      pos_ = i;
      tok->type = Token::kVariable;
      tok->position = pos_;
      return true;
    }
    std::string name(src_.substr(pos_, i - pos_));
    pos_ = i;
    tok->position = pos_;
    if (name == "or" || name == "in" || name == "and") {
      tok->type = Token::kOperator;
      tok->value = name;
      return true;
    }
    if (name == "true" || name == "false" || name == "null") {
      tok->type = Token::kValue;
      tok->literal = name == "null" ? 0 : name == "true" ? 1 : 2;
      tok->value = name;
      return true;
    }
    if (pos_ == src_.size() && name.empty()) return false;
    tok->type = Token::kName;
    tok->value = std::move(name);
    return true;
  }

 private:
  char At(size_t i) const { return i < src_.size() ? src_[i] : '\0'; }

  bool Make(Token::Type type, std::string value, Token* tok) {
    tok->type = type;
    tok->value = std::move(value);
    tok->position = pos_;
    return true;
  }

  bool Hex4(size_t at, uint32_t* cp) const {
    if (at + 4 > src_.size()) return false;
    uint32_t v = 0;
    for (size_t k = 0; k < 4; ++k) {
      char h = src_[at + k];
      v <<= 4;
      if (h >= '0' && h <= '9') v |= h - '0';
      else if (h >= 'a' && h <= 'f') v |= h - 'a' + 10;
      else if (h >= 'A' && h <= 'F') v |= h - 'A' + 10;
      else return false;
    }
    *cp = v;
    return true;
  }

  std::shared_ptr<Regex> ScanRegex() {
    size_t start = pos_;
    int depth = 0;
    while (pos_ < src_.size()) {
      char c = src_[pos_];
      if (c == '/' && depth == 0) {
        size_t backslashes = 0;
        while (pos_ >= backslashes + 1 && src_[pos_ - backslashes - 1] == '\\') {
          ++backslashes;
        }
        if (backslashes % 2 == 0) {
          std::string pattern(src_.substr(start, pos_ - start));
          if (pattern.empty()) throw Error("S0301").WithPosition(pos_);
          ++pos_;
          auto re = std::make_shared<Regex>();
          re->source = pattern;
          while (At(pos_) == 'i' || At(pos_) == 'm') {
            if (src_[pos_] == 'i') re->ignore_case = true;
            if (src_[pos_] == 'm') re->multiline = true;
            ++pos_;
          }
          auto compiled = CompiledRegex::Compile(
              pattern, {.ignore_case = re->ignore_case,
                        .multiline = re->multiline});
          if (!compiled.ok()) throw Error("S0302").WithPosition(pos_);
          re->compiled = *std::move(compiled);
          return re;
        }
      }
      bool escaped = pos_ > 0 && src_[pos_ - 1] == '\\';
      if ((c == '(' || c == '[' || c == '{') && !escaped) ++depth;
      if ((c == ')' || c == ']' || c == '}') && !escaped) --depth;
      ++pos_;
    }
    throw Error("S0302").WithPosition(pos_);
  }

  absl::string_view src_;
  size_t pos_ = 0;
};

class Parser {
 public:
  explicit Parser(absl::string_view src) : src_(src), lexer_(src) {}

  NodePtr Run() {
    Advance("", false);
    NodePtr expr = Expression(0);
    if (node_->id != "(end)") {
      throw Error("S0201").WithPosition(node_->position).WithToken(node_->value);
    }
    expr = Process(expr);
    MarkSimplePaths(expr.get());
    if (expr->type == NodeType::kParent || expr->has_seeking_parent) {
      throw Error("S0217").WithPosition(expr->position).WithToken(
          expr->type == NodeType::kParent ? "parent" : "path");
    }
    return expr;
  }

 private:
  int Lbp(const Node& n) const {
    const std::string& id = n.id;
    if (id == "(end)" || id == "(name)" || id == "(literal)" ||
        id == "(regex)") {
      return 0;
    }
    static const char* kZero[] = {":", ";", ",", ")", "]", "}", "..", "|",
                                  "**"};
    for (const char* z : kZero) if (id == z) return 0;
    return OperatorBindingPower(id);
  }

  NodePtr Advance(absl::string_view id, bool infix) {
    if (!id.empty() && node_->id != id) {
      Error e(node_->id == "(end)" ? "S0203" : "S0202");
      e.WithPosition(node_->position).WithToken(node_->value);
      e.WithValue(MakeString(std::string(id)));
      throw e;
    }
    Token tok;
    auto n = std::make_shared<Node>();
    if (!lexer_.Next(infix, &tok)) {
      n->id = "(end)";
      n->type = NodeType::kEnd;
      n->value = "(end)";
      n->position = src_.size();
      node_ = n;
      return n;
    }
    n->value = tok.value;
    n->position = tok.position;
    switch (tok.type) {
      case Token::kName:
        n->id = "(name)";
        n->type = NodeType::kName;
        break;
      case Token::kVariable:
        n->id = "(name)";
        n->type = NodeType::kVariable;
        break;
      case Token::kOperator:
        if (OperatorBindingPower(tok.value) < 0 || tok.value == "!" ||
            tok.value == "~") {
          throw Error("S0204").WithPosition(tok.position).WithToken(tok.value);
        }
        n->id = tok.value;
        n->type = NodeType::kOperator;
        break;
      case Token::kString:
        n->id = "(literal)";
        n->type = NodeType::kString;
        break;
      case Token::kNumber:
        n->id = "(literal)";
        n->type = NodeType::kNumber;
        n->number = tok.number;
        n->value = NumberToString(tok.number);
        break;
      case Token::kValue:
        n->id = "(literal)";
        n->type = NodeType::kValue;
        n->literal = tok.literal;
        break;
      case Token::kRegex:
        n->id = "(regex)";
        n->type = NodeType::kRegex;
        n->regex = tok.regex;
        n->value = tok.regex->source;
        break;
      case Token::kNone:
        break;
    }
    node_ = n;
    return n;
  }

  // Bounds the parser's recursion so that a deeply nested expression text
  // is an error rather than a stack overflow.
  struct DepthGuard {
    explicit DepthGuard(Parser* p) : parser(p) {
      if (++parser->depth_ > kMaxNesting) {
        Error e("U1001");
        e.message = "nesting";
        e.position = parser->node_ ? parser->node_->position : 0;
        throw e;
      }
    }
    ~DepthGuard() { --parser->depth_; }
    Parser* parser;
  };
  static constexpr int kMaxNesting = 500;

  NodePtr Expression(int rbp) {
    DepthGuard guard(this);
    NodePtr t = node_;
    Advance("", true);
    NodePtr left = Nud(t);
    while (rbp < Lbp(*node_)) {
      t = node_;
      Advance("", false);
      left = Led(t, left);
    }
    return left;
  }

  NodePtr Nud(const NodePtr& t) {
    const std::string& id = t->id;
    if (id == "(end)" || id == "(name)" || id == "(literal)" ||
        id == "(regex)" || id == "and" || id == "or" || id == "in") {
      return t;
    }
    if (id == "-") {
      t->expression = Expression(70);
      t->type = NodeType::kUnary;
      return t;
    }
    if (id == "*") { t->type = NodeType::kWildcard; return t; }
    if (id == "**") { t->type = NodeType::kDescendant; return t; }
    if (id == "%") { t->type = NodeType::kParent; return t; }
    if (id == "(") {
      while (node_->id != ")") {
        t->expressions.push_back(Expression(0));
        if (node_->id != ";") break;
        Advance(";", false);
      }
      Advance(")", true);
      t->type = NodeType::kBlock;
      return t;
    }
    if (id == "[") {
      if (node_->id != "]") {
        for (;;) {
          NodePtr item = Expression(0);
          if (node_->id == "..") {
            auto range = std::make_shared<Node>();
            range->type = NodeType::kBinary;
            range->value = "..";
            range->op = BinaryOp::kRange;
            range->position = node_->position;
            range->lhs = item;
            Advance("..", false);
            range->rhs = Expression(0);
            item = range;
          }
          t->expressions.push_back(item);
          if (node_->id != ",") break;
          Advance(",", false);
        }
      }
      Advance("]", true);
      t->type = NodeType::kUnary;
      return t;
    }
    if (id == "{") return ObjectParser(t, nullptr);
    if (id == "|") {
      t->type = NodeType::kTransform;
      t->pattern = Expression(0);
      Advance("|", false);
      t->update = Expression(0);
      if (node_->id == ",") {
        Advance(",", false);
        t->remove = Expression(0);
      }
      Advance("|", false);
      return t;
    }
    throw Error("S0211").WithPosition(t->position).WithToken(t->value);
  }

  NodePtr ObjectParser(const NodePtr& t, const NodePtr& left) {
    std::vector<std::pair<NodePtr, NodePtr>> pairs;
    if (node_->id != "}") {
      for (;;) {
        NodePtr n = Expression(0);
        Advance(":", false);
        NodePtr v = Expression(0);
        pairs.emplace_back(n, v);
        if (node_->id != ",") break;
        Advance(",", false);
      }
    }
    Advance("}", true);
    t->pairs = std::move(pairs);
    if (!left) {
      t->type = NodeType::kUnary;
    } else {
      t->lhs = left;
      t->type = NodeType::kBinary;
    }
    return t;
  }

  NodePtr Led(const NodePtr& t, const NodePtr& left) {
    const std::string& id = t->id;
    if (id == "(") {
      t->procedure = left;
      t->type = NodeType::kFunction;
      if (node_->id != ")") {
        for (;;) {
          if (node_->type == NodeType::kOperator && node_->id == "?") {
            t->type = NodeType::kPartial;
            t->arguments.push_back(node_);
            Advance("?", false);
          } else {
            t->arguments.push_back(Expression(0));
          }
          if (node_->id != ",") break;
          Advance(",", false);
        }
      }
      Advance(")", true);
      if (left->type == NodeType::kName &&
          (left->value == "function" || left->value == "\xCE\xBB")) {
        for (size_t i = 0; i < t->arguments.size(); ++i) {
          if (t->arguments[i]->type != NodeType::kVariable) {
            throw Error("S0208")
                .WithPosition(t->arguments[i]->position)
                .WithToken(t->arguments[i]->value)
                .WithValue(MakeNumber(static_cast<double>(i + 1)));
          }
        }
        t->type = NodeType::kLambda;
        if (node_->id == "<") {
          int64_t sig_pos = node_->position;
          int depth = 1;
          std::string sig = "<";
          while (depth > 0 && node_->id != "{" && node_->id != "(end)") {
            NodePtr tok = Advance("", false);
            if (tok->id == ">") --depth;
            else if (tok->id == "<") ++depth;
            sig += tok->value;
          }
          Advance(">", false);
          try {
            t->signature = ParseSignature(sig);
          } catch (Error& e) {
            e.position += sig_pos;
            throw;
          }
        }
        Advance("{", false);
        t->body = Expression(0);
        Advance("}", false);
      }
      return t;
    }
    if (id == "[") {
      if (node_->id == "]") {
        Node* step = left.get();
        while (step && step->type == NodeType::kBinary && step->value == "[") {
          step = step->lhs.get();
        }
        step->keep_array = true;
        Advance("]", false);
        return left;
      }
      t->lhs = left;
      t->rhs = Expression(0);
      t->type = NodeType::kBinary;
      Advance("]", true);
      return t;
    }
    if (id == "^") {
      Advance("(", false);
      for (;;) {
        SortTerm term;
        if (node_->id == "<") {
          Advance("<", false);
        } else if (node_->id == ">") {
          term.descending = true;
          Advance(">", false);
        }
        term.expr = Expression(0);
        t->terms.push_back(term);
        if (node_->id != ",") break;
        Advance(",", false);
      }
      Advance(")", false);
      t->lhs = left;
      t->type = NodeType::kBinary;
      return t;
    }
    if (id == "{") return ObjectParser(t, left);
    if (id == ":=") {
      if (left->type != NodeType::kVariable) {
        throw Error("S0212").WithPosition(left->position).WithToken(left->value);
      }
      t->lhs = left;
      t->rhs = Expression(OperatorBindingPower(":=") - 1);
      t->type = NodeType::kBinary;
      return t;
    }
    if (id == "@" || id == "#") {
      t->lhs = left;
      t->rhs = Expression(OperatorBindingPower(id));
      if (t->rhs->type != NodeType::kVariable) {
        throw Error("S0214").WithPosition(t->rhs->position).WithToken(id);
      }
      t->type = NodeType::kBinary;
      return t;
    }
    if (id == "?") {
      t->type = NodeType::kCondition;
      t->condition = left;
      t->then = Expression(0);
      if (node_->id == ":") {
        Advance(":", false);
        t->otherwise = Expression(0);
      }
      return t;
    }
    // generic left-associative binary operator
    int bp = OperatorBindingPower(id);
    if (bp <= 0) {
      throw Error("S0201").WithPosition(t->position).WithToken(t->value);
    }
    t->lhs = left;
    t->rhs = Expression(bp);
    t->type = NodeType::kBinary;
    return t;
  }

  // ---- post-processing

  static bool PlainStep(const Node& step) {
    return !step.has_stages && !step.has_predicate && !step.tuple &&
           !step.has_focus && !step.has_index && !step.keep_array &&
           !step.group && !step.ancestor && !step.cons_array;
  }

  static void MarkSimplePaths(Node* n) {
    if (!n) return;
    if (n->type == NodeType::kPath && !n->group && !n->keep_singleton_array &&
        !n->tuple && !n->has_seeking_parent && !n->steps.empty()) {
      bool simple = true;
      for (size_t i = 0; i < n->steps.size() && simple; ++i) {
        const Node& step = *n->steps[i];
        bool kind_ok = step.type == NodeType::kName ||
                       (i == 0 && step.type == NodeType::kVariable);
        simple = kind_ok && PlainStep(step);
      }
      n->simple_path = simple;
    }
    ForEachChild(*n, [](const NodePtr& c) { MarkSimplePaths(c.get()); });
  }

  NodePtr PathOf(const NodePtr& step) {
    auto p = std::make_shared<Node>();
    p->type = NodeType::kPath;
    p->position = step->position;
    p->steps.push_back(step);
    return p;
  }

  void PushAncestry(Node* result, Node* value) {
    if (value->has_seeking_parent || value->type == NodeType::kParent) {
      std::vector<SlotPtr> slots = value->seeking_parent;
      if (value->type == NodeType::kParent) slots.push_back(value->slot);
      if (!result->has_seeking_parent) {
        result->seeking_parent = slots;
        result->has_seeking_parent = true;
      } else {
        result->seeking_parent.insert(result->seeking_parent.end(),
                                      slots.begin(), slots.end());
      }
    }
  }

  SlotPtr SeekParent(Node* node, SlotPtr slot) {
    switch (node->type) {
      case NodeType::kName:
      case NodeType::kWildcard:
        slot->level--;
        if (slot->level == 0) {
          if (node->ancestor) {
            ancestry_[slot->index]->slot->label = node->ancestor->label;
          }
          node->ancestor = slot;
          node->tuple = true;
        }
        break;
      case NodeType::kParent:
        slot->level++;
        break;
      case NodeType::kBlock:
        if (!node->expressions.empty()) {
          node->tuple = true;
          slot = SeekParent(node->expressions.back().get(), slot);
        }
        break;
      case NodeType::kPath: {
        node->tuple = true;
        int index = static_cast<int>(node->steps.size()) - 1;
        slot = SeekParent(node->steps[index--].get(), slot);
        while (slot->level > 0 && index >= 0) {
          slot = SeekParent(node->steps[index--].get(), slot);
        }
        break;
      }
      default:
        throw Error("S0217").WithPosition(node->position).WithToken(
            TypeName(node->type));
    }
    return slot;
  }

  static std::string TypeName(NodeType t) {
    switch (t) {
      case NodeType::kBinary: return "binary";
      case NodeType::kUnary: return "unary";
      case NodeType::kFunction: return "function";
      case NodeType::kCondition: return "condition";
      case NodeType::kString: return "string";
      case NodeType::kNumber: return "number";
      case NodeType::kValue: return "value";
      case NodeType::kVariable: return "variable";
      case NodeType::kLambda: return "lambda";
      case NodeType::kApply: return "apply";
      case NodeType::kBind: return "bind";
      case NodeType::kSort: return "sort";
      case NodeType::kDescendant: return "descendant";
      case NodeType::kRegex: return "regex";
      case NodeType::kTransform: return "transform";
      case NodeType::kPartial: return "partial";
      default: return "expression";
    }
  }

  void ResolveAncestry(Node* path) {
    Node* last = path->steps.back().get();
    std::vector<SlotPtr> slots = last->seeking_parent;
    if (last->type == NodeType::kParent) slots.push_back(last->slot);
    for (SlotPtr slot : slots) {
      int index = static_cast<int>(path->steps.size()) - 2;
      while (slot->level > 0) {
        if (index < 0) {
          path->seeking_parent.push_back(slot);
          path->has_seeking_parent = true;
          break;
        }
        Node* step = path->steps[index--].get();
        while (index >= 0 && step->has_focus && path->steps[index]->has_focus) {
          step = path->steps[index--].get();
        }
        slot = SeekParent(step, slot);
      }
    }
  }

  static NodePtr TailCallOptimize(NodePtr expr) {
    if (expr->type == NodeType::kFunction && !expr->has_predicate) {
      auto thunk = std::make_shared<Node>();
      thunk->type = NodeType::kLambda;
      thunk->thunk = true;
      thunk->position = expr->position;
      thunk->body = expr;
      return thunk;
    }
    if (expr->type == NodeType::kCondition) {
      expr->then = TailCallOptimize(expr->then);
      if (expr->otherwise) expr->otherwise = TailCallOptimize(expr->otherwise);
      return expr;
    }
    if (expr->type == NodeType::kBlock && !expr->expressions.empty()) {
      expr->expressions.back() = TailCallOptimize(expr->expressions.back());
    }
    return expr;
  }

  NodePtr Process(const NodePtr& expr) {
    DepthGuard guard(this);
    NodePtr result;
    switch (expr->type) {
      case NodeType::kBinary: {
        const std::string& op = expr->value;
        if (op == ".") {
          NodePtr lstep = Process(expr->lhs);
          if (lstep->type == NodeType::kPath) {
            result = lstep;
          } else {
            result = PathOf(lstep);
          }
          if (lstep->type == NodeType::kParent) {
            result->seeking_parent = {lstep->slot};
            result->has_seeking_parent = true;
          }
          NodePtr rest = Process(expr->rhs);
          if (rest->type == NodeType::kPath) {
            for (auto& s : rest->steps) result->steps.push_back(s);
          } else {
            if (rest->has_predicate) {
              rest->stages = std::move(rest->predicate);
              rest->predicate.clear();
              rest->has_predicate = false;
              rest->has_stages = true;
            }
            result->steps.push_back(rest);
          }
          for (auto& step : result->steps) {
            if (step->type == NodeType::kNumber ||
                step->type == NodeType::kValue) {
              Error e("S0213");
              e.WithPosition(step->position);
              if (step->type == NodeType::kNumber) {
                e.WithValue(MakeNumber(step->number));
              } else {
                e.WithValue(step->literal == 0 ? MakeNull()
                                               : MakeBool(step->literal == 1));
              }
              throw e;
            }
            if (step->type == NodeType::kString) step->type = NodeType::kName;
          }
          for (auto& step : result->steps) {
            if (step->keep_array) result->keep_singleton_array = true;
          }
          Node* first = result->steps.front().get();
          if (first->type == NodeType::kUnary && first->value == "[") {
            first->cons_array = true;
          }
          Node* last = result->steps.back().get();
          if (last->type == NodeType::kUnary && last->value == "[") {
            last->cons_array = true;
          }
          ResolveAncestry(result.get());
        } else if (op == "[") {
          result = Process(expr->lhs);
          Node* step = result.get();
          bool stages = false;
          if (result->type == NodeType::kPath) {
            step = result->steps.back().get();
            stages = true;
          }
          if (step->group) throw Error("S0209").WithPosition(expr->position);
          NodePtr pred = Process(expr->rhs);
          if (pred->has_seeking_parent) {
            for (auto& slot : pred->seeking_parent) {
              if (slot->level == 1) {
                SeekParent(step, slot);
              } else {
                slot->level--;
              }
            }
            PushAncestry(step, pred.get());
          }
          Stage st;
          st.expr = pred;
          st.position = expr->position;
          if (stages) {
            step->stages.push_back(st);
            step->has_stages = true;
          } else {
            step->predicate.push_back(st);
            step->has_predicate = true;
          }
        } else if (op == "{") {
          result = Process(expr->lhs);
          if (result->group) throw Error("S0210").WithPosition(expr->position);
          auto g = std::make_shared<Group>();
          g->position = expr->position;
          for (auto& [k, v] : expr->pairs) {
            g->pairs.emplace_back(Process(k), Process(v));
          }
          result->group = g;
        } else if (op == "^") {
          result = Process(expr->lhs);
          if (result->type != NodeType::kPath) result = PathOf(result);
          auto sort = std::make_shared<Node>();
          sort->type = NodeType::kSort;
          sort->position = expr->position;
          for (auto& term : expr->terms) {
            SortTerm t;
            t.descending = term.descending;
            t.expr = Process(term.expr);
            PushAncestry(sort.get(), t.expr.get());
            sort->terms.push_back(t);
          }
          result->steps.push_back(sort);
          ResolveAncestry(result.get());
        } else if (op == ":=") {
          result = std::make_shared<Node>();
          result->type = NodeType::kBind;
          result->value = op;
          result->position = expr->position;
          result->lhs = Process(expr->lhs);
          result->rhs = Process(expr->rhs);
          PushAncestry(result.get(), result->rhs.get());
        } else if (op == "@") {
          result = Process(expr->lhs);
          Node* step = result.get();
          if (result->type == NodeType::kPath) step = result->steps.back().get();
          if (step->has_stages || step->has_predicate) {
            throw Error("S0215").WithPosition(expr->position);
          }
          if (step->type == NodeType::kSort) {
            throw Error("S0216").WithPosition(expr->position);
          }
          if (expr->keep_array) step->keep_array = true;
          step->focus = expr->rhs->value;
          step->has_focus = true;
          step->tuple = true;
        } else if (op == "#") {
          result = Process(expr->lhs);
          Node* step = result.get();
          if (result->type == NodeType::kPath) {
            step = result->steps.back().get();
          } else {
            result = PathOf(result);
            if (step->has_predicate) {
              step->stages = std::move(step->predicate);
              step->predicate.clear();
              step->has_predicate = false;
              step->has_stages = true;
            }
          }
          if (!step->has_stages) {
            step->index = expr->rhs->value;
            step->has_index = true;
          } else {
            Stage st;
            st.is_index = true;
            st.value = expr->rhs->value;
            st.position = expr->position;
            step->stages.push_back(st);
          }
          step->tuple = true;
        } else if (op == "~>") {
          result = std::make_shared<Node>();
          result->type = NodeType::kApply;
          result->value = op;
          result->position = expr->position;
          result->lhs = Process(expr->lhs);
          result->rhs = Process(expr->rhs);
          result->keep_array = result->lhs->keep_array || result->rhs->keep_array;
        } else {
          result = std::make_shared<Node>();
          result->type = NodeType::kBinary;
          result->value = op;
          result->op = ToBinaryOp(op);
          result->position = expr->position;
          result->lhs = Process(expr->lhs);
          result->rhs = Process(expr->rhs);
          PushAncestry(result.get(), result->lhs.get());
          PushAncestry(result.get(), result->rhs.get());
        }
        break;
      }
      case NodeType::kUnary: {
        result = std::make_shared<Node>();
        result->type = NodeType::kUnary;
        result->value = expr->value;
        result->position = expr->position;
        if (expr->value == "[") {
          for (auto& item : expr->expressions) {
            NodePtr v = Process(item);
            PushAncestry(result.get(), v.get());
            result->expressions.push_back(v);
          }
        } else if (expr->value == "{") {
          for (auto& [k, v] : expr->pairs) {
            NodePtr key = Process(k);
            PushAncestry(result.get(), key.get());
            NodePtr val = Process(v);
            PushAncestry(result.get(), val.get());
            result->pairs.emplace_back(key, val);
          }
        } else {
          result->expression = Process(expr->expression);
          if (expr->value == "-" &&
              result->expression->type == NodeType::kNumber) {
            result = result->expression;
            result->number = -result->number;
            result->value = NumberToString(result->number);
          } else {
            PushAncestry(result.get(), result->expression.get());
          }
        }
        break;
      }
      case NodeType::kFunction:
      case NodeType::kPartial: {
        result = std::make_shared<Node>();
        result->type = expr->type;
        result->value = expr->value;
        result->position = expr->position;
        for (auto& arg : expr->arguments) {
          NodePtr a = Process(arg);
          PushAncestry(result.get(), a.get());
          result->arguments.push_back(a);
        }
        result->procedure = Process(expr->procedure);
        break;
      }
      case NodeType::kLambda: {
        result = std::make_shared<Node>();
        result->type = NodeType::kLambda;
        result->arguments = expr->arguments;
        result->signature = expr->signature;
        result->position = expr->position;
        result->body = TailCallOptimize(Process(expr->body));
        break;
      }
      case NodeType::kCondition: {
        result = std::make_shared<Node>();
        result->type = NodeType::kCondition;
        result->position = expr->position;
        result->condition = Process(expr->condition);
        PushAncestry(result.get(), result->condition.get());
        result->then = Process(expr->then);
        PushAncestry(result.get(), result->then.get());
        if (expr->otherwise) {
          result->otherwise = Process(expr->otherwise);
          PushAncestry(result.get(), result->otherwise.get());
        }
        break;
      }
      case NodeType::kTransform: {
        result = std::make_shared<Node>();
        result->type = NodeType::kTransform;
        result->position = expr->position;
        result->pattern = Process(expr->pattern);
        result->update = Process(expr->update);
        if (expr->remove) result->remove = Process(expr->remove);
        break;
      }
      case NodeType::kBlock: {
        result = std::make_shared<Node>();
        result->type = NodeType::kBlock;
        result->position = expr->position;
        for (auto& item : expr->expressions) {
          NodePtr part = Process(item);
          PushAncestry(result.get(), part.get());
          if (part->cons_array ||
              (part->type == NodeType::kPath && part->steps[0]->cons_array)) {
            result->cons_array = true;
          }
          result->expressions.push_back(part);
        }
        break;
      }
      case NodeType::kName:
        result = PathOf(expr);
        if (expr->keep_array) result->keep_singleton_array = true;
        break;
      case NodeType::kParent: {
        result = std::make_shared<Node>();
        result->type = NodeType::kParent;
        result->position = expr->position;
        result->slot = std::make_shared<Slot>();
        result->slot->label = absl::StrCat("!", ancestor_label_++);
        result->slot->level = 1;
        result->slot->index = ancestor_index_++;
        ancestry_.push_back(result.get());
        break;
      }
      case NodeType::kString:
      case NodeType::kNumber:
      case NodeType::kValue:
      case NodeType::kWildcard:
      case NodeType::kDescendant:
      case NodeType::kVariable:
      case NodeType::kRegex:
        result = expr;
        break;
      case NodeType::kOperator:
        if (expr->value == "and" || expr->value == "or" ||
            expr->value == "in") {
          expr->type = NodeType::kName;
          result = Process(expr);
        } else if (expr->value == "?") {
          result = expr;
        } else {
          throw Error("S0201").WithPosition(expr->position).WithToken(
              expr->value);
        }
        break;
      default: {
        Error e(expr->id == "(end)" ? "S0207" : "S0206");
        e.WithPosition(expr->position).WithToken(expr->value);
        throw e;
      }
    }
    if (expr->keep_array) result->keep_array = true;
    return result;
  }

  absl::string_view src_;
  Lexer lexer_;
  NodePtr node_;
  int depth_ = 0;
  int ancestor_label_ = 0;
  int ancestor_index_ = 0;
  std::vector<Node*> ancestry_;
};

}  // namespace

NodePtr Parse(absl::string_view text) { return Parser(text).Run(); }

std::shared_ptr<Signature> ParseSignature(absl::string_view sig) {
  auto result = std::make_shared<Signature>();
  SigParam param;
  SigParam* prev = nullptr;
  auto find_closing = [&](size_t start, char open, char close) {
    int depth = 1;
    size_t pos = start;
    while (pos < sig.size()) {
      ++pos;
      if (pos >= sig.size()) break;
      if (sig[pos] == close) {
        if (--depth == 0) break;
      } else if (sig[pos] == open) {
        ++depth;
      }
    }
    return pos;
  };
  auto next = [&]() {
    result->params.push_back(param);
    param = SigParam();
  };
  size_t position = 1;
  while (position < sig.size()) {
    char symbol = sig[position];
    if (symbol == ':') break;
    prev = result->params.empty() ? nullptr : &result->params.back();
    switch (symbol) {
      case 's': case 'n': case 'b': case 'l': case 'o':
        param.chars = std::string(1, symbol) + "m";
        param.type = symbol;
        next();
        break;
      case 'a':
        param.chars = "asnblfom";
        param.type = 'a';
        next();
        break;
      case 'f':
        param.chars = "f";
        param.type = 'f';
        next();
        break;
      case 'j':
        param.chars = "asnblom";
        param.type = 'j';
        next();
        break;
      case 'x':
        param.chars = "asnblfom";
        param.type = 'x';
        next();
        break;
      case '-':
        if (prev) {
          prev->context = true;
          prev->context_chars = prev->chars;
          prev->quant = '?';
        }
        break;
      case '?':
      case '+':
        if (prev) prev->quant = symbol;
        break;
      case '(': {
        size_t end = find_closing(position, '(', ')');
        std::string choice(sig.substr(position + 1, end - position - 1));
        if (choice.find('<') != std::string::npos) {
          Error e("S0402");
          e.WithValue(MakeString(choice)).WithPosition(position);
          throw e;
        }
        param.chars = choice + "m";
        param.type = '(';
        position = end;
        next();
        break;
      }
      case '<':
        if (prev && (prev->type == 'a' || prev->type == 'f')) {
          size_t end = find_closing(position, '<', '>');
          prev->subtype = std::string(sig.substr(position + 1, end - position - 1));
          position = end;
        } else {
          Error e("S0401");
          e.WithValue(MakeString(prev ? std::string(1, prev->type) : ""))
              .WithPosition(position);
          throw e;
        }
        break;
      default:
        break;
    }
    ++position;
  }
  return result;
}

}  // namespace stepflow::jsonata
