// The text front end: a hand-written lexer and recursive-descent parser producing an Ast.
// It checks syntax only (and the shape of window-function calls, which is syntax); types
// and names are the compiler's, so text and JSON get the same checks and messages.
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>

#include "expr_internal.hpp"
#include "json_util.hpp"
#include "util.hpp"

namespace cdp::expr {
namespace {

enum class Tok : uint8_t { kEnd, kIdent, kInt, kDouble, kDuration, kString, kPunct };

struct Token {
  Tok t = Tok::kEnd;
  uint32_t pos = 0, len = 0;
  int64_t i = 0;
  double d = 0;
  std::string s;  // kString: the unescaped bytes
};

bool IsIdentStart(unsigned char c) { return std::isalpha(c) || c == '_' || c >= 0x80; }
bool IsIdentChar(unsigned char c) { return std::isalnum(c) || c == '_' || c >= 0x80; }

void AppendUtf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

class Parser {
 public:
  Parser(std::string_view text, const ExprLimits& lim, Ast& ast) : text_(text), lim_(lim), ast_(ast) {}

  absl::Status Run() {
    if (!Next()) return err_;
    int root = ParseExpr();
    if (root < 0) return err_;
    if (tok_.t != Tok::kEnd) {
      Fail(tok_.pos, Cat("expected an operator or the end of the expression, found ", Found()));
      return err_;
    }
    ast_.root = root;
    return absl::OkStatus();
  }

 private:
  // ---- errors ----
  std::string Where(uint32_t pos) const {
    uint32_t line = 1, col = 1;
    for (size_t k = 0; k < pos && k < text_.size(); ++k) {
      unsigned char c = static_cast<unsigned char>(text_[k]);
      if (c == '\n') { ++line; col = 1; }
      else if ((c & 0xC0) != 0x80) ++col;  // count characters, not bytes
    }
    return Cat("line ", line, ", column ", col);
  }
  int Fail(uint32_t pos, std::string_view msg) {
    if (err_.ok()) err_ = absl::InvalidArgumentError(Cat(Where(pos), ": ", msg));
    return -1;
  }
  std::string Found() const {
    if (tok_.t == Tok::kEnd) return "the end of the expression";
    std::string_view t = text_.substr(tok_.pos, tok_.len);
    if (t.size() > 24) return Cat("'", t.substr(0, 20), "...'");
    return Cat("'", t, "'");
  }

  // ---- lexer ----
  bool Next() {
    size_t p = cur_;
    for (;;) {  // white space and // comments
      while (p < text_.size() && (text_[p] == ' ' || text_[p] == '\t' || text_[p] == '\n' || text_[p] == '\r')) ++p;
      if (text_.substr(p, 2) != "//") break;
      while (p < text_.size() && text_[p] != '\n') ++p;
    }
    tok_ = Token();
    tok_.pos = static_cast<uint32_t>(p);
    if (p >= text_.size()) {
      cur_ = p;
      return true;
    }
    unsigned char c = static_cast<unsigned char>(text_[p]);
    size_t start = p;
    if (IsIdentStart(c)) {
      while (p < text_.size() && IsIdentChar(static_cast<unsigned char>(text_[p]))) ++p;
      tok_.t = Tok::kIdent;
    } else if (std::isdigit(c)) {
      if (!LexNumber(p)) return false;
    } else if (c == '"' || c == '\'') {
      if (!LexString(p)) return false;
    } else {
      static constexpr std::string_view kTwo[] = {"==", "!=", "<=", ">=", "&&", "||"};
      tok_.t = Tok::kPunct;
      bool two = false;
      for (auto op : kTwo)
        if (text_.substr(p, 2) == op) { p += 2; two = true; break; }
      if (!two) {
        if (!std::strchr("()[],.?:!-+*/%<>", c) || c == 0) {
          Fail(static_cast<uint32_t>(p), Cat("unexpected character '", text_.substr(p, c >= 0x80 ? 3 : 1), "'"));
          return false;
        }
        ++p;
      }
    }
    tok_.len = static_cast<uint32_t>(p - start);
    cur_ = p;
    return true;
  }

  bool LexNumber(size_t& p) {
    size_t start = p;
    auto digits = [&] { while (p < text_.size() && std::isdigit(static_cast<unsigned char>(text_[p]))) ++p; };
    digits();
    bool is_double = false;
    if (p + 1 < text_.size() && text_[p] == '.' && std::isdigit(static_cast<unsigned char>(text_[p + 1]))) {
      ++p;
      digits();
      is_double = true;
    }
    if (p < text_.size() && (text_[p] == 'e' || text_[p] == 'E')) {
      size_t q = p + 1;
      if (q < text_.size() && (text_[q] == '+' || text_[q] == '-')) ++q;
      if (q < text_.size() && std::isdigit(static_cast<unsigned char>(text_[q]))) {
        p = q;
        digits();
        is_double = true;
      }
    }
    std::string_view num = text_.substr(start, p - start);
    if (is_double) {
      std::string copy(num);
      char* end = nullptr;
      double d = std::strtod(copy.c_str(), &end);
      if (!std::isfinite(d)) return Fail(static_cast<uint32_t>(start), Cat("number out of range: ", num)) >= 0;
      tok_.t = Tok::kDouble;
      tok_.d = d;
    } else {
      int64_t v = 0;
      if (!ParseInt(num, v)) return Fail(static_cast<uint32_t>(start), Cat("integer out of range: ", num)) >= 0;
      tok_.t = Tok::kInt;
      tok_.i = v;
      if (p < text_.size() && std::isalpha(static_cast<unsigned char>(text_[p])))
        return LexDuration(start, p, v);
    }
    if (p < text_.size() && IsIdentChar(static_cast<unsigned char>(text_[p])))
      return Fail(static_cast<uint32_t>(p), Cat("unexpected '", text_.substr(p, 1), "' after the number ", num)) >= 0;
    return true;
  }

  static bool ParseInt(std::string_view s, int64_t& v) {
    v = 0;
    for (char ch : s) {
      if (__builtin_mul_overflow(v, 10, &v) || __builtin_add_overflow(v, ch - '0', &v)) return false;
    }
    return true;
  }

  // 30d, 12h, 15m, 10s, 500ms and runs of them (1d12h). p is just past the first number.
  bool LexDuration(size_t start, size_t& p, int64_t first) {
    int64_t total = 0, n = first;
    for (;;) {
      int64_t unit;
      if (!DurationUnit(text_, p, unit)) return Fail(static_cast<uint32_t>(p), Cat("unknown duration unit in '", text_.substr(start, p + 1 - start), "': use d, h, m, s or ms")) >= 0;
      int64_t part;
      if (__builtin_mul_overflow(n, unit, &part) || __builtin_add_overflow(total, part, &total))
        return Fail(static_cast<uint32_t>(start), "duration out of range") >= 0;
      if (p < text_.size() && std::isdigit(static_cast<unsigned char>(text_[p]))) {
        size_t q = p;
        while (p < text_.size() && std::isdigit(static_cast<unsigned char>(text_[p]))) ++p;
        if (!ParseInt(text_.substr(q, p - q), n)) return Fail(static_cast<uint32_t>(q), "duration out of range") >= 0;
        if (p >= text_.size() || !std::isalpha(static_cast<unsigned char>(text_[p])))
          return Fail(static_cast<uint32_t>(p), "a duration part needs a unit (d, h, m, s or ms)") >= 0;
        continue;
      }
      if (p < text_.size() && IsIdentChar(static_cast<unsigned char>(text_[p])))
        return Fail(static_cast<uint32_t>(p), Cat("unknown duration unit in '", text_.substr(start, p + 1 - start), "': use d, h, m, s or ms")) >= 0;
      break;
    }
    tok_.t = Tok::kDuration;
    tok_.i = total;
    return true;
  }

  bool LexString(size_t& p) {
    size_t start = p;
    char q = text_[p++];
    std::string& out = tok_.s;
    for (;;) {
      if (p >= text_.size()) return Fail(static_cast<uint32_t>(start), "unterminated string") >= 0;
      char c = text_[p];
      if (c == q) { ++p; break; }
      // As in the JSON AST, where a NUL cannot be told from the end of a C string.
      if (c == '\0') return Fail(static_cast<uint32_t>(p), "strings may not contain NUL") >= 0;
      if (c != '\\') { out += c; ++p; continue; }
      if (p + 1 >= text_.size()) return Fail(static_cast<uint32_t>(start), "unterminated string") >= 0;
      char e = text_[p + 1];
      p += 2;
      switch (e) {
        case 'n': out += '\n'; break;
        case 't': out += '\t'; break;
        case 'r': out += '\r'; break;
        case '\\': out += '\\'; break;
        case '\'': out += '\''; break;
        case '"': out += '"'; break;
        case '/': out += '/'; break;
        case 'u': {
          uint32_t cp = 0;
          for (int k = 0; k < 4; ++k, ++p) {
            if (p >= text_.size() || !std::isxdigit(static_cast<unsigned char>(text_[p])))
              return Fail(static_cast<uint32_t>(p - 2 - k), "\\u needs four hex digits") >= 0;
            char h = text_[p];
            cp = cp * 16 + static_cast<uint32_t>(std::isdigit(static_cast<unsigned char>(h)) ? h - '0' : (h | 0x20) - 'a' + 10);
          }
          if (cp >= 0xD800 && cp <= 0xDFFF) return Fail(static_cast<uint32_t>(p - 6), "\\u escapes a surrogate") >= 0;
          if (cp == 0) return Fail(static_cast<uint32_t>(p - 6), "strings may not contain NUL") >= 0;
          AppendUtf8(out, cp);
          break;
        }
        default:
          return Fail(static_cast<uint32_t>(p - 2), Cat("unknown escape '\\", text_.substr(p - 1, 1), "'")) >= 0;
      }
    }
    tok_.t = Tok::kString;
    return true;
  }

  bool IsPunct(std::string_view s) const {
    return tok_.t == Tok::kPunct && text_.substr(tok_.pos, tok_.len) == s;
  }
  bool IsIdent(std::string_view s) const {
    return tok_.t == Tok::kIdent && text_.substr(tok_.pos, tok_.len) == s;
  }
  std::string_view TokText() const { return text_.substr(tok_.pos, tok_.len); }
  bool Expect(std::string_view punct, std::string_view what) {
    if (!IsPunct(punct)) return Fail(tok_.pos, Cat("expected '", punct, "' ", what, ", found ", Found())) >= 0;
    return Next();
  }

  // ---- nodes ----
  int Add(Op op, uint32_t pos) {
    if (ast_.nodes.size() >= lim_.max_nodes) {
      return Fail(pos, Cat("the expression has more than ", lim_.max_nodes, " nodes"));
    }
    Node n;
    n.op = op;
    n.pos = pos;
    ast_.nodes.push_back(std::move(n));
    return static_cast<int>(ast_.nodes.size() - 1);
  }
  int Unary(Op op, uint32_t pos, int a) {
    int n = Add(op, pos);
    if (n >= 0) ast_.nodes[n].args = {a};
    return n;
  }
  int Binary(Op op, uint32_t pos, int a, int b) {
    int n = Add(op, pos);
    if (n >= 0) ast_.nodes[n].args = {a, b};
    return n;
  }

  struct DepthGuard {
    Parser& p;
    explicit DepthGuard(Parser& pp) : p(pp) { ++p.depth_; }
    ~DepthGuard() { --p.depth_; }
  };
  bool TooDeep() {
    if (depth_ > lim_.max_depth) {
      Fail(tok_.pos, Cat("the expression nests deeper than ", lim_.max_depth, " levels"));
      return true;
    }
    return false;
  }

  // ---- grammar ----
  int ParseExpr() {
    DepthGuard g(*this);
    if (TooDeep()) return -1;
    int c = ParseLogic(Op::kOr);
    if (c < 0 || !IsPunct("?")) return c;
    uint32_t pos = tok_.pos;
    if (!Next()) return -1;
    int a = ParseExpr();
    if (a < 0) return -1;
    if (!Expect(":", "after the 'then' branch of ?:")) return -1;
    int b = ParseExpr();
    if (b < 0) return -1;
    int n = Add(Op::kCond, pos);
    if (n >= 0) ast_.nodes[n].args = {c, a, b};
    return n;
  }

  // || over && over relations; a run of the same operator becomes one n-ary node.
  int ParseLogic(Op op) {
    int x = op == Op::kOr ? ParseLogic(Op::kAnd) : ParseRelation();
    if (x < 0) return -1;
    std::string_view punct = op == Op::kOr ? "||" : "&&";
    int n = -1;
    while (IsPunct(punct)) {
      uint32_t pos = tok_.pos;
      if (!Next()) return -1;
      int y = op == Op::kOr ? ParseLogic(Op::kAnd) : ParseRelation();
      if (y < 0) return -1;
      if (n < 0) {
        n = Add(op, pos);
        if (n < 0) return -1;
        ast_.nodes[n].args.push_back(x);
      }
      ast_.nodes[n].args.push_back(y);
    }
    return n >= 0 ? n : x;
  }

  int ParseRelation() {
    int x = ParseAdditive();
    while (x >= 0) {
      Op op;
      if (IsPunct("==")) op = Op::kEq;
      else if (IsPunct("!=")) op = Op::kNe;
      else if (IsPunct("<")) op = Op::kLt;
      else if (IsPunct("<=")) op = Op::kLe;
      else if (IsPunct(">")) op = Op::kGt;
      else if (IsPunct(">=")) op = Op::kGe;
      else if (IsIdent("in")) op = Op::kIn;
      else break;
      uint32_t pos = tok_.pos;
      if (!Next()) return -1;
      int y = ParseAdditive();
      if (y < 0) return -1;
      x = Binary(op, pos, x, y);
    }
    return x;
  }

  int ParseAdditive() {
    int x = ParseMultiplicative();
    while (x >= 0 && (IsPunct("+") || IsPunct("-"))) {
      Op op = IsPunct("+") ? Op::kAdd : Op::kSub;
      uint32_t pos = tok_.pos;
      if (!Next()) return -1;
      int y = ParseMultiplicative();
      if (y < 0) return -1;
      x = Binary(op, pos, x, y);
    }
    return x;
  }

  int ParseMultiplicative() {
    int x = ParseUnary();
    while (x >= 0 && (IsPunct("*") || IsPunct("/") || IsPunct("%"))) {
      Op op = IsPunct("*") ? Op::kMul : IsPunct("/") ? Op::kDiv : Op::kMod;
      uint32_t pos = tok_.pos;
      if (!Next()) return -1;
      int y = ParseUnary();
      if (y < 0) return -1;
      x = Binary(op, pos, x, y);
    }
    return x;
  }

  int ParseUnary() {
    if (IsPunct("!") || IsPunct("-")) {
      DepthGuard g(*this);
      if (TooDeep()) return -1;
      Op op = IsPunct("!") ? Op::kNot : Op::kNeg;
      uint32_t pos = tok_.pos;
      if (!Next()) return -1;
      int a = ParseUnary();
      if (a < 0) return -1;
      return Unary(op, pos, a);
    }
    return ParsePostfix();
  }

  int ParsePostfix() {
    int x = ParsePrimary();
    while (x >= 0) {
      if (IsPunct(".")) {
        if (!Next()) return -1;
        if (tok_.t != Tok::kIdent) return Fail(tok_.pos, Cat("expected a method name after '.', found ", Found()));
        std::string name(TokText());
        uint32_t pos = tok_.pos;
        if (!Next()) return -1;
        if (!IsPunct("(")) {
          return Fail(pos, Cat("'", name, "' is not a method call: fields exist only on attrs, person, ids, tags, state and event"));
        }
        const FnInfo* f = FindFn(name);
        if (!f || !f->method) {
          Agg agg;
          if (AggFromName(name, agg)) return Fail(pos, Cat(name, " is a window function: write ", name, "(event, window)"));
          return Fail(pos, Cat(f ? Cat("'", name, "' cannot be called as a method") : Cat("unknown method '", name, "'")));
        }
        int n = Add(Op::kCall, pos);
        if (n < 0) return -1;
        ast_.nodes[n].fn = f->fn;
        ast_.nodes[n].args.push_back(x);
        if (!ParseArgs(n, name)) return -1;
        x = n;
      } else if (IsPunct("[")) {
        uint32_t pos = tok_.pos;
        if (!Next()) return -1;
        int i = ParseExpr();
        if (i < 0) return -1;
        if (!Expect("]", "after the index")) return -1;
        x = Binary(Op::kIndex, pos, x, i);
      } else {
        break;
      }
    }
    return x;
  }

  // After '(' of a call whose node n is made: arguments up to ')'.
  bool ParseArgs(int n, std::string_view name) {
    if (!Next()) return false;  // '('
    if (IsPunct(")")) return Next();
    for (;;) {
      int a = ParseExpr();
      if (a < 0) return false;
      ast_.nodes[n].args.push_back(a);
      if (IsPunct(",")) {
        if (!Next()) return false;
        continue;
      }
      return Expect(")", Cat("after the arguments of ", name));
    }
  }

  int Literal(ValueKind k, uint32_t pos) {
    int n = Add(Op::kLit, pos);
    if (n >= 0) ast_.nodes[n].lit.kind = k;
    return n;
  }

  int ParsePrimary() {
    uint32_t pos = tok_.pos;
    int n = -1;
    switch (tok_.t) {
      case Tok::kEnd:
        return Fail(pos, "expected a value, found the end of the expression");
      case Tok::kInt:
      case Tok::kDuration:
        n = Literal(tok_.t == Tok::kInt ? ValueKind::kInt : ValueKind::kDuration, pos);
        if (n >= 0) ast_.nodes[n].lit.i = tok_.i;
        return n >= 0 && Next() ? n : -1;
      case Tok::kDouble:
        n = Literal(ValueKind::kDouble, pos);
        if (n >= 0) ast_.nodes[n].lit.d = tok_.d;
        return n >= 0 && Next() ? n : -1;
      case Tok::kString:
        n = Literal(ValueKind::kString, pos);
        if (n >= 0) ast_.nodes[n].lit.s = std::move(tok_.s);
        return n >= 0 && Next() ? n : -1;
      case Tok::kPunct:
        if (IsPunct("(")) {
          if (!Next()) return -1;
          n = ParseExpr();
          if (n < 0 || !Expect(")", "to close '('")) return -1;
          return n;
        }
        if (IsPunct("[")) return ParseList();
        return Fail(pos, Cat("expected a value, found ", Found()));
      case Tok::kIdent:
        break;
    }
    std::string name(TokText());
    if (name == "true" || name == "false") {
      n = Literal(ValueKind::kBool, pos);
      if (n >= 0) ast_.nodes[n].lit.i = name == "true";
      return n >= 0 && Next() ? n : -1;
    }
    if (name == "null") {
      n = Literal(ValueKind::kNull, pos);
      return n >= 0 && Next() ? n : -1;
    }
    if (!Next()) return -1;
    Ref ref;
    if (RefFromName(name, ref)) return ParseRef(ref, name, pos);
    if (IsPunct("(")) {
      Agg agg;
      if (AggFromName(name, agg)) return ParseAgg(agg, name, pos);
      const FnInfo* f = FindFn(name);
      if (!f) {
        if (IsWindowName(name)) return Fail(pos, Cat(name, "(...) is a window: it goes in a window function, e.g. count(order, ", name, "(...))"));
        return Fail(pos, Cat("unknown function '", name, "'"));
      }
      n = Add(Op::kCall, pos);
      if (n < 0) return -1;
      ast_.nodes[n].fn = f->fn;
      return ParseArgs(n, name) ? n : -1;
    }
    if (IsWindowName(name)) return Fail(pos, Cat("'", name, "' is a window: it goes in a window function, e.g. count(order, ", name, ")"));
    return Fail(pos, Cat("unknown name '", name, "': values are literals, calls, or fields of attrs, person, ids, tags, state and event"));
  }

  int ParseList() {
    uint32_t pos = tok_.pos;
    int n = Add(Op::kList, pos);
    if (n < 0 || !Next()) return -1;
    if (IsPunct("]")) return Next() ? n : -1;
    for (;;) {
      int a = ParseExpr();
      if (a < 0) return -1;
      if (ast_.nodes[n].args.size() >= lim_.max_list)
        return Fail(pos, Cat("the list has more than ", lim_.max_list, " items"));
      ast_.nodes[n].args.push_back(a);
      if (IsPunct(",")) {
        if (!Next()) return -1;
        continue;
      }
      return Expect("]", "after the list items") ? n : -1;
    }
  }

  // attrs.city, attrs["会员 等级"], person.first_seen, ids.mobile, event.amount, ...
  int ParseRef(Ref ref, std::string_view root, uint32_t pos) {
    std::string field;
    if (IsPunct(".")) {
      if (!Next()) return -1;
      if (tok_.t != Tok::kIdent) return Fail(tok_.pos, Cat("expected a field name after '", root, ".', found ", Found()));
      field = TokText();
      if (!Next()) return -1;
    } else if (IsPunct("[")) {
      if (!Next()) return -1;
      if (tok_.t != Tok::kString) return Fail(tok_.pos, Cat("expected a field name in quotes after '", root, "[', found ", Found()));
      field = tok_.s;
      if (!Next() || !Expect("]", "after the field name")) return -1;
    } else {
      return Fail(tok_.pos, Cat("expected '.' and a field name after '", root, "', found ", Found()));
    }
    if (ref == Ref::kEvent && !in_filter_)
      return Fail(pos, "event fields exist only in the filter of a window function, e.g. count(order, 30d, event.amount > 100)");
    int n = Add(Op::kRef, pos);
    if (n < 0) return -1;
    ast_.nodes[n].ref = ref;
    ast_.nodes[n].name = std::move(field);
    return n;
  }

  static bool IsWindowName(std::string_view s) {
    return s == "last_days" || s == "between" || s == "this_month" || s == "last_month" ||
           s == "this_year" || s == "last_year";
  }
  bool AtWindow() const {
    return tok_.t == Tok::kDuration || (tok_.t == Tok::kIdent && IsWindowName(TokText()));
  }

  // count(order, 30d, event.channel == "tmall"): event[.prop] [, window] [, filter].
  int ParseAgg(Agg agg, std::string_view name, uint32_t pos) {
    if (in_filter_) return Fail(pos, Cat("window functions cannot be nested in the filter of another (", name, ")"));
    int n = Add(Op::kAgg, pos);
    if (n < 0 || !Next()) return -1;  // '('
    ast_.nodes[n].agg = agg;
    if (tok_.t == Tok::kIdent) ast_.nodes[n].name = TokText();
    else if (tok_.t == Tok::kString && !tok_.s.empty()) ast_.nodes[n].name = tok_.s;
    else return Fail(tok_.pos, Cat("expected an event type as the first argument of ", name, ", found ", Found()));
    if (!Next()) return -1;
    if (IsPunct(".")) {
      if (!Next()) return -1;
      if (tok_.t != Tok::kIdent) return Fail(tok_.pos, Cat("expected an event property after '.', found ", Found()));
      ast_.nodes[n].prop = TokText();
      if (!Next()) return -1;
    }
    bool have_window = false, have_filter = false;
    while (IsPunct(",") && !have_filter) {
      if (!Next()) return -1;
      if (!have_window && AtWindow()) {
        if (!ParseWindow(ast_.nodes[n].window)) return -1;
        have_window = true;
        continue;
      }
      if (AtWindow()) return Fail(tok_.pos, Cat(name, " takes one window"));
      in_filter_ = true;
      int f = ParseExpr();
      in_filter_ = false;
      if (f < 0) return -1;
      ast_.nodes[n].args.push_back(f);
      have_filter = true;
    }
    return Expect(")", Cat("after the arguments of ", name)) ? n : -1;
  }

  bool ParseWindow(Window& w) {
    uint32_t pos = tok_.pos;
    if (tok_.t == Tok::kDuration) {
      if (tok_.i <= 0 || tok_.i % kMsPerDay != 0)
        return Fail(pos, "a window is a whole number of days, e.g. 30d") >= 0;
      if (tok_.i / kMsPerDay > kMaxWindowDays)
        return Fail(pos, Cat("a window is at most ", kMaxWindowDays, " days")) >= 0;
      w.kind = Window::kLastDays;
      w.n = static_cast<int32_t>(tok_.i / kMsPerDay);
      return Next();
    }
    std::string name(TokText());
    if (!Next()) return false;
    if (name == "last_days") {
      if (!Expect("(", "after last_days")) return false;
      if (tok_.t != Tok::kInt || tok_.i < 1 || tok_.i > kMaxWindowDays)
        return Fail(tok_.pos, Cat("expected a number of days (1 to ", kMaxWindowDays, "), found ", Found())) >= 0;
      w.kind = Window::kLastDays;
      w.n = static_cast<int32_t>(tok_.i);
      if (!Next()) return false;
      if (IsPunct(",")) {
        if (!Next()) return false;
        if (!IsIdent("true") && !IsIdent("false"))
          return Fail(tok_.pos, Cat("expected true or false (include today), found ", Found())) >= 0;
        w.include_today = IsIdent("true");
        if (!Next()) return false;
      }
      return Expect(")", "after the arguments of last_days");
    }
    if (name == "between") {
      if (!Expect("(", "after between")) return false;
      if (!DateArg(w.from) || !Expect(",", "between the dates of between") || !DateArg(w.to)) return false;
      if (w.from > w.to) return Fail(pos, "between: the first date is after the second") >= 0;
      w.kind = Window::kBetween;
      return Expect(")", "after the arguments of between");
    }
    w.kind = name == "this_month" ? Window::kThisMonth : name == "last_month" ? Window::kLastMonth
           : name == "this_year" ? Window::kThisYear : Window::kLastYear;
    if (IsPunct("(")) {
      if (!Next()) return false;
      return Expect(")", Cat("after ", name, "("));
    }
    return true;
  }

  // "2024-03-01" or date("2024-03-01").
  bool DateArg(int32_t& day) {
    bool call = IsIdent("date");
    if (call && (!Next() || !Expect("(", "after date"))) return false;
    if (tok_.t != Tok::kString) return Fail(tok_.pos, Cat("expected a date \"YYYY-MM-DD\", found ", Found())) >= 0;
    if (!ParseDate(tok_.s, day)) return Fail(tok_.pos, Cat("not a date (YYYY-MM-DD): ", Found())) >= 0;
    if (!Next()) return false;
    return !call || Expect(")", "after the date");
  }

  static constexpr int64_t kMaxWindowDays = 36'600;

  std::string_view text_;
  const ExprLimits& lim_;
  Ast& ast_;
  Token tok_;
  size_t cur_ = 0;
  uint32_t depth_ = 0;
  bool in_filter_ = false;
  absl::Status err_;
};

}  // namespace

absl::Status ParseText(std::string_view text, const ExprLimits& lim, Ast& ast) {
  if (text.size() > lim.max_text_bytes)
    return absl::InvalidArgumentError(Cat("the expression is ", text.size(), " bytes, over the limit of ", lim.max_text_bytes));
  size_t bad = json::FirstInvalidUtf8(text);
  if (bad != std::string_view::npos) {
    uint32_t line, col;
    json::LineColumn(text, bad, line, col);
    return absl::InvalidArgumentError(Cat("line ", line, ", byte ", col, ": invalid UTF-8"));
  }
  ast.nodes.clear();
  ast.where = [text](const Node& n) {
    uint32_t line = 1, col = 1;
    for (size_t k = 0; k < n.pos && k < text.size(); ++k) {
      unsigned char c = static_cast<unsigned char>(text[k]);
      if (c == '\n') { line++; col = 1; }
      else if ((c & 0xC0) != 0x80) ++col;
    }
    return Cat("line ", line, ", column ", col);
  };
  Parser p(text, lim, ast);
  return p.Run();
}

}  // namespace cdp::expr
