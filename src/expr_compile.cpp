// The compiler: Ast → Program. It normalises the Ast (so both front ends write the same
// canonical JSON), checks what can be checked without a person, resolves names to ids and
// lays the nodes out flat. Types are checked only where both sides are known: an attribute
// is `any` until evaluation, and a runtime mismatch is null, not an error.
#include <string>
#include <vector>

#include "cdp/record.hpp"
#include "expr_internal.hpp"
#include "util.hpp"

namespace cdp::expr {

std::string_view TyName(Ty t) {
  return t == Ty::kAny ? std::string_view("any") : ValueKindName(static_cast<ValueKind>(t));
}

namespace {

bool IsNum(Ty t) { return t == Ty::kInt || t == Ty::kDouble || t == Ty::kMoney; }
Ty TyOf(ValueKind k) { return static_cast<Ty>(k); }

class Compiler {
 public:
  Compiler(Ast& ast, Names& names, const ExprLimits& lim, Program& p)
      : ast_(ast), names_(names), lim_(lim), p_(p) {}

  absl::Status Run() {
    if (!CheckDepth()) return err_;
    if (!Normalize(ast_.root)) return err_;
    p_.ast_json = WriteJson(ast_);
    Info info;
    int root = Lower(ast_.root, info);
    if (root < 0) return err_;
    p_.root = static_cast<uint32_t>(root);
    p_.type = info.ty;
    p_.time_dependent = info.time;
    return absl::OkStatus();
  }

 private:
  struct Info {
    Ty ty = Ty::kAny;
    bool time = false;  // the value may change with time alone
    int slope = 0;      // ±1: the value is ±now() plus something time-independent
  };

  int Fail(int n, std::string_view msg) {
    if (err_.ok()) err_ = absl::InvalidArgumentError(Cat(ast_.where(ast_.nodes[n]), ": ", msg));
    return -1;
  }
  bool Bad(int n, std::string_view msg) { return Fail(n, msg) >= 0; }

  // Iterative, before anything recursive runs: a left-leaning chain (a + b + c ..., or
  // x.f().g()...) nests without the parser recursing.
  bool CheckDepth() {
    std::vector<std::pair<int, uint32_t>> stack{{ast_.root, 1}};
    while (!stack.empty()) {
      auto [n, d] = stack.back();
      stack.pop_back();
      if (d > lim_.max_depth) return Bad(n, Cat("the expression nests deeper than ", lim_.max_depth, " levels"));
      for (int c : ast_.nodes[n].args) stack.push_back({c, d + 1});
    }
    return true;
  }

  // Constant constructors become literals; -literal becomes a literal.
  bool Normalize(int n) {
    for (int c : ast_.nodes[n].args)
      if (!Normalize(c)) return false;
    Node& x = ast_.nodes[n];
    if (x.op == Op::kNeg && ast_.nodes[x.args[0]].op == Op::kLit) {
      Literal l = ast_.nodes[x.args[0]].lit;
      bool fold = true;
      switch (l.kind) {
        case ValueKind::kInt:
        case ValueKind::kMoney:
        case ValueKind::kDuration:
          if (l.i == INT64_MIN) fold = false;
          else l.i = -l.i;
          break;
        case ValueKind::kDouble: l.d = l.d == 0 ? 0 : -l.d; break;
        default: fold = false;
      }
      if (fold) {
        x.op = Op::kLit;
        x.lit = std::move(l);
        x.args.clear();
      }
      return true;
    }
    if (x.op != Op::kCall || x.args.size() != 1 || ast_.nodes[x.args[0]].op != Op::kLit) return true;
    const Literal& a = ast_.nodes[x.args[0]].lit;
    Literal out;
    bool is_str = a.kind == ValueKind::kString;
    switch (x.fn) {
      case Fn::kDate:
        if (!is_str) return true;
        out.kind = ValueKind::kDate;
        {
          int32_t day;
          if (!ParseDate(a.s, day)) return Bad(n, Cat("date: expected \"YYYY-MM-DD\", found \"", a.s, "\""));
          out.i = day;
        }
        break;
      case Fn::kTimestamp: {
        if (!is_str) return true;
        auto t = ParseTimestamp(a.s);
        if (!t.ok()) return Bad(n, Cat("timestamp: ", t.status().message()));
        out.kind = ValueKind::kTimestamp;
        out.i = *t;
        break;
      }
      case Fn::kMoney:
      case Fn::kYuan: {
        std::string text;
        if (is_str) text = a.s;
        else if (a.kind == ValueKind::kInt) text = std::to_string(a.i);
        else if (a.kind == ValueKind::kDouble) AppendDouble(text, a.d);
        else return true;
        auto fen = YuanToFen(text);
        if (!fen.ok()) return Bad(n, Cat(FnInfoOf(x.fn).name, ": ", fen.status().message()));
        out.kind = ValueKind::kMoney;
        out.i = *fen;
        break;
      }
      case Fn::kDuration:
        if (!is_str) return true;
        out.kind = ValueKind::kDuration;
        if (!ParseDurationText(a.s, out.i)) return Bad(n, Cat("duration: expected e.g. \"30d\", \"1d12h\", \"500ms\", found \"", a.s, "\""));
        break;
      default:
        return true;
    }
    x.op = Op::kLit;
    x.lit = std::move(out);
    x.args.clear();
    return true;
  }

  uint32_t Emit(PNode node, const std::vector<uint32_t>& kids) {
    node.kid = static_cast<uint32_t>(p_.kids.size());
    node.nkids = static_cast<uint8_t>(kids.size());
    p_.kids.insert(p_.kids.end(), kids.begin(), kids.end());
    p_.nodes.push_back(node);
    return static_cast<uint32_t>(p_.nodes.size() - 1);
  }
  int Const(Value v) {
    PNode node;
    node.op = POp::kConst;
    node.k = v;
    return static_cast<int>(Emit(node, {}));
  }
  Value StrConst(std::string s) {
    p_.strings.push_back(std::move(s));
    return Value::String(p_.strings.back());
  }

  bool Is(int n, Op op) const { return ast_.nodes[n].op == op; }

  int Lower(int n, Info& info) {
    const Node& x = ast_.nodes[n];
    switch (x.op) {
      case Op::kLit: return LowerLit(x, info);
      case Op::kRef: return LowerRef(n, info);
      case Op::kCall: return LowerCall(n, info);
      case Op::kAgg: return LowerAgg(n, info);
      default: break;
    }
    // Operators: lower the operands first.
    std::vector<uint32_t> kids;
    std::vector<Info> in(x.args.size());
    for (size_t k = 0; k < x.args.size(); ++k) {
      int c = Lower(x.args[k], in[k]);
      if (c < 0) return -1;
      kids.push_back(static_cast<uint32_t>(c));
      info.time |= in[k].time;
    }
    auto opname = [&] { return Cat("'", OpName(x.op) == "neg" ? "-" : OpName(x.op), "'"); };
    auto mismatch = [&](Ty a, Ty b) {
      return Fail(n, Cat(opname(), " does not apply to ", TyName(a), " and ", TyName(b)));
    };
    PNode node;
    node.op = POp::kConst;
    switch (x.op) {
      case Op::kList: {
        info.ty = Ty::kList;
        if (kids.size() > lim_.max_list) return Fail(n, Cat("the list has more than ", lim_.max_list, " items"));
        bool constant = true;
        for (uint32_t c : kids) constant &= p_.nodes[c].op == POp::kConst;
        if (constant) {
          std::vector<Value> items;
          for (uint32_t c : kids) items.push_back(p_.nodes[c].k);
          p_.lists.push_back(std::move(items));
          return Const(Value::List(p_.lists.back().data(), static_cast<uint32_t>(p_.lists.back().size())));
        }
        if (kids.size() > 255) return Fail(n, "a list built from non-constant items has at most 255 of them");
        node.op = POp::kList;
        break;
      }
      case Op::kNot:
        if (!Logical(x.args[0], in[0].ty)) return -1;
        info.ty = Ty::kBool;
        node.op = POp::kNot;
        break;
      case Op::kNeg: {
        Ty t = in[0].ty;
        if (t != Ty::kAny && t != Ty::kNull && !IsNum(t) && t != Ty::kDuration)
          return Fail(n, Cat("'-' does not apply to ", TyName(t)));
        info.ty = t;
        info.slope = -in[0].slope;
        node.op = POp::kNeg;
        break;
      }
      case Op::kAnd:
      case Op::kOr:
        if (kids.size() > 255) return Fail(n, Cat(opname(), " joins at most 255 operands; nest with parentheses"));
        for (size_t k = 0; k < kids.size(); ++k)
          if (!Logical(x.args[k], in[k].ty)) return -1;
        info.ty = Ty::kBool;
        node.op = x.op == Op::kAnd ? POp::kAnd : POp::kOr;
        break;
      case Op::kCond:
        if (!Logical(x.args[0], in[0].ty)) return -1;
        info.ty = in[1].ty == in[2].ty ? in[1].ty : in[1].ty == Ty::kNull ? in[2].ty : in[2].ty == Ty::kNull ? in[1].ty : Ty::kAny;
        node.op = POp::kCond;
        break;
      case Op::kEq:
      case Op::kNe:
      case Op::kLt:
      case Op::kLe:
      case Op::kGt:
      case Op::kGe: {
        Ty a = in[0].ty, b = in[1].ty;
        bool ordering = x.op != Op::kEq && x.op != Op::kNe;
        bool known = a != Ty::kAny && b != Ty::kAny;
        if (ordering && (a == Ty::kNull || b == Ty::kNull))
          return Fail(n, Cat(opname(), " with null is always false: test for null with == null or has()"));
        if (ordering && (a == Ty::kBool || b == Ty::kBool || a == Ty::kList || b == Ty::kList))
          return mismatch(a, b);
        if (known && a != Ty::kNull && b != Ty::kNull && a != b && !(IsNum(a) && IsNum(b)))
          return Fail(n, Cat(opname(), " compares ", TyName(a), " with ", TyName(b), ": always ", x.op == Op::kNe ? "true" : "false"));
        static constexpr POp kCmp[] = {POp::kEq, POp::kNe, POp::kLt, POp::kLe, POp::kGt, POp::kGe};
        node.op = kCmp[static_cast<int>(x.op) - static_cast<int>(Op::kEq)];
        if (in[0].slope && !in[1].time) node.flags = kLinearLeft | (in[0].slope < 0 ? kSlopeNegative : 0);
        else if (in[1].slope && !in[0].time) node.flags = kLinearRight | (in[1].slope < 0 ? kSlopeNegative : 0);
        info.ty = Ty::kBool;
        break;
      }
      case Op::kIn:
        if (in[1].ty != Ty::kList && in[1].ty != Ty::kAny && in[1].ty != Ty::kNull)
          return Fail(n, Cat("'in' needs a list on its right, found ", TyName(in[1].ty)));
        info.ty = Ty::kBool;
        node.op = POp::kIn;
        break;
      case Op::kAdd:
      case Op::kSub:
      case Op::kMul:
      case Op::kDiv:
      case Op::kMod: {
        Ty a = in[0].ty, b = in[1].ty;
        Ty r;
        if (!ArithType(x.op, a, b, r)) return mismatch(a, b);
        info.ty = r;
        if (x.op == Op::kAdd) {
          if (in[0].slope && !in[1].time) info.slope = in[0].slope;
          else if (in[1].slope && !in[0].time) info.slope = in[1].slope;
        } else if (x.op == Op::kSub) {
          if (in[0].slope && !in[1].time) info.slope = in[0].slope;
          else if (in[1].slope && !in[0].time) info.slope = -in[1].slope;
        }
        static constexpr POp kArith[] = {POp::kAdd, POp::kSub, POp::kMul, POp::kDiv, POp::kMod};
        node.op = kArith[static_cast<int>(x.op) - static_cast<int>(Op::kAdd)];
        break;
      }
      case Op::kIndex:
        if (in[0].ty != Ty::kList && in[0].ty != Ty::kAny && in[0].ty != Ty::kNull)
          return Fail(n, Cat("'[]' indexes a list, found ", TyName(in[0].ty)));
        if (in[1].ty != Ty::kInt && in[1].ty != Ty::kAny && in[1].ty != Ty::kNull)
          return Fail(n, Cat("a list index is an int, found ", TyName(in[1].ty)));
        info.ty = Ty::kAny;
        node.op = POp::kIndex;
        break;
      default:
        return Fail(n, "internal: unexpected node");
    }
    return static_cast<int>(Emit(node, kids));
  }

  bool Logical(int n, Ty t) {
    if (t == Ty::kBool || t == Ty::kAny || t == Ty::kNull) return true;
    return Bad(n, Cat("expected a condition (bool), found ", TyName(t)));
  }

  // The static type of a op b, or false when no values of these types combine.
  static bool ArithType(Op op, Ty a, Ty b, Ty& r) {
    auto bad_alone = [op](Ty t) {
      if (t == Ty::kBool || t == Ty::kList) return true;
      if (t == Ty::kString) return op != Op::kAdd;
      if (t == Ty::kTimestamp || t == Ty::kDate) return op != Op::kAdd && op != Op::kSub;
      if (t == Ty::kDuration) return op == Op::kMod;
      if (t == Ty::kMoney || t == Ty::kDouble) return op == Op::kMod;
      return false;
    };
    if (bad_alone(a) || bad_alone(b)) return false;
    if (a == Ty::kNull || b == Ty::kNull) { r = Ty::kNull; return true; }
    if (a == Ty::kAny || b == Ty::kAny) { r = Ty::kAny; return true; }
    auto is = [&](Ty x, Ty y) { return a == x && b == y; };
    if (a == Ty::kMoney || b == Ty::kMoney) {
      if (!IsNum(a) || !IsNum(b)) return false;
      switch (op) {
        case Op::kAdd: case Op::kSub: r = Ty::kMoney; return true;
        case Op::kMul: if (a == b) return false; r = Ty::kMoney; return true;
        case Op::kDiv:
          if (a != Ty::kMoney) return false;
          r = b == Ty::kMoney ? Ty::kDouble : Ty::kMoney;
          return true;
        default: return false;
      }
    }
    if (IsNum(a) && IsNum(b)) {
      r = a == Ty::kInt && b == Ty::kInt ? Ty::kInt : Ty::kDouble;
      return op != Op::kMod || r == Ty::kInt;
    }
    switch (op) {
      case Op::kAdd:
        if (is(Ty::kString, Ty::kString)) { r = Ty::kString; return true; }
        if (is(Ty::kTimestamp, Ty::kDuration) || is(Ty::kDuration, Ty::kTimestamp)) { r = Ty::kTimestamp; return true; }
        if (is(Ty::kDuration, Ty::kDuration)) { r = Ty::kDuration; return true; }
        if (is(Ty::kDate, Ty::kInt) || is(Ty::kInt, Ty::kDate)) { r = Ty::kDate; return true; }
        return false;
      case Op::kSub:
        if (is(Ty::kTimestamp, Ty::kDuration)) { r = Ty::kTimestamp; return true; }
        if (is(Ty::kTimestamp, Ty::kTimestamp) || is(Ty::kDuration, Ty::kDuration)) { r = Ty::kDuration; return true; }
        if (is(Ty::kDate, Ty::kInt)) { r = Ty::kDate; return true; }
        if (is(Ty::kDate, Ty::kDate)) { r = Ty::kInt; return true; }
        return false;
      case Op::kMul:
        if (is(Ty::kDuration, Ty::kInt) || is(Ty::kInt, Ty::kDuration)) { r = Ty::kDuration; return true; }
        return false;
      case Op::kDiv:
        if (is(Ty::kDuration, Ty::kInt)) { r = Ty::kDuration; return true; }
        return false;
      default:
        return false;
    }
  }

  int LowerLit(const Node& x, Info& info) {
    const Literal& l = x.lit;
    info.ty = TyOf(l.kind);
    Value v;
    switch (l.kind) {
      case ValueKind::kNull: break;
      case ValueKind::kBool: v = Value::Bool(l.i != 0); break;
      case ValueKind::kInt: v = Value::Int(l.i); break;
      case ValueKind::kDouble: v = Value::Double(l.d); break;
      case ValueKind::kMoney: v = Value::Money(l.i); break;
      case ValueKind::kString: v = StrConst(l.s); break;
      case ValueKind::kTimestamp: v = Value::Timestamp(l.i); break;
      case ValueKind::kDuration: v = Value::Duration(l.i); break;
      case ValueKind::kDate: v = Value::Date(l.i); break;
      case ValueKind::kList: break;
    }
    return Const(v);
  }

  int LowerRef(int n, Info& info) {
    const Node& x = ast_.nodes[n];
    PNode node;
    node.op = POp::kAttr;
    info.ty = Ty::kAny;
    switch (x.ref) {
      case Ref::kAttrs: node.id = names_.Attr(x.name); break;
      case Ref::kPerson:
        if (x.name == "first_seen") node.op = POp::kFirstSeen;
        else if (x.name == "last_seen") node.op = POp::kLastSeen;
        else return Fail(n, Cat("unknown person field '", x.name, "': person.first_seen or person.last_seen"));
        info.ty = Ty::kTimestamp;
        break;
      case Ref::kIds: {
        int t = names_.IdType(x.name);
        if (t < 0) return Fail(n, Cat("unknown identifier type '", x.name, "'"));
        node.op = POp::kIds;
        node.id = static_cast<uint32_t>(t);
        info.ty = Ty::kInt;
        break;
      }
      case Ref::kTags: node.op = POp::kTag; node.id = names_.Tag(x.name); break;
      case Ref::kState: node.op = POp::kState; node.id = names_.Machine(x.name); break;
      case Ref::kEvent:
        if (x.name == "amount") { node.op = POp::kEventAmount; info.ty = Ty::kMoney; }
        else if (x.name == "ts") { node.op = POp::kEventTs; info.ty = Ty::kTimestamp; }
        else { node.op = POp::kEventProp; node.id = names_.PropKey(x.name); }
        break;
    }
    return static_cast<int>(Emit(node, {}));
  }

  // Type requirements of scalar function arguments.
  bool Want(int n, Ty t, std::initializer_list<Ty> ok, std::string_view fn, size_t arg) {
    if (t == Ty::kAny || t == Ty::kNull) return true;
    for (Ty o : ok)
      if (o == t) return true;
    return Bad(n, Cat(fn, ": argument ", arg + 1, " cannot be ", TyName(t)));
  }

  int LowerCall(int n, Info& info) {
    const Node& x = ast_.nodes[n];
    const FnInfo& f = FnInfoOf(x.fn);
    size_t argc = x.args.size();
    if (argc < f.min_args || argc > f.max_args) {
      std::string want = f.min_args == f.max_args ? Cat(f.min_args) : Cat(f.min_args, " or ", f.max_args);
      return Fail(n, Cat(f.name, " takes ", want, " argument", f.max_args == 1 ? "" : "s", ", found ", argc));
    }
    PNode node;
    node.op = POp::kCall;
    node.aux = static_cast<uint8_t>(x.fn);
    // has(ids.x) asks whether the person holds one: the count is never null.
    if (x.fn == Fn::kHas && Is(x.args[0], Op::kRef) && ast_.nodes[x.args[0]].ref == Ref::kIds) {
      Info in;
      int c = LowerRef(x.args[0], in);
      if (c < 0) return -1;
      p_.nodes[c].op = POp::kHasIds;
      info.ty = Ty::kBool;
      return c;
    }
    // consent("sms") reads the channel's statement, an attribute (subject.hpp), so the
    // channel is a literal, resolved now with the default for it.
    if (x.fn == Fn::kConsent) {
      const Node& c = ast_.nodes[x.args[0]];
      if (c.op != Op::kLit || c.lit.kind != ValueKind::kString)
        return Fail(x.args[0], "consent: the channel is a string literal, e.g. consent(\"sms\")");
      if (!ValidTypeName(c.lit.s)) return Fail(x.args[0], "consent: channel names are 1-64 of [A-Za-z0-9_.-]");
      node.op = POp::kConsent;
      node.id = names_.Attr(Cat(kConsentPrefix, c.lit.s));
      node.aux = names_.ConsentDefault(c.lit.s);
      info.ty = Ty::kBool;
      return static_cast<int>(Emit(node, {}));
    }
    // A zone argument of a date part is a literal, loaded now.
    if (argc == 2 && (x.fn == Fn::kYear || x.fn == Fn::kMonth || x.fn == Fn::kDay || x.fn == Fn::kWeekday || x.fn == Fn::kHour)) {
      const Node& z = ast_.nodes[x.args[1]];
      if (z.op != Op::kLit || z.lit.kind != ValueKind::kString)
        return Fail(x.args[1], Cat(f.name, ": the zone is a string literal, e.g. \"Europe/Berlin\""));
      auto zone = TimeZone::Load(z.lit.s);
      if (!zone.ok()) return Fail(x.args[1], std::string(zone.status().message()));
      p_.zones.push_back(*zone);
      node.extra = static_cast<uint32_t>(p_.zones.size());
      argc = 1;
    }
    std::vector<uint32_t> kids;
    std::vector<Info> in(argc);
    for (size_t k = 0; k < argc; ++k) {
      int c = Lower(x.args[k], in[k]);
      if (c < 0) return -1;
      kids.push_back(static_cast<uint32_t>(c));
      info.time |= in[k].time;
    }
    auto want = [&](size_t k, std::initializer_list<Ty> ok) { return Want(x.args[k], in[k].ty, ok, f.name, k); };
    const Ty S = Ty::kString, I = Ty::kInt, D = Ty::kDouble, M = Ty::kMoney, T = Ty::kTimestamp,
             U = Ty::kDuration, DT = Ty::kDate, L = Ty::kList, B = Ty::kBool;
    switch (x.fn) {
      case Fn::kHas: info.ty = B; break;
      case Fn::kSize: if (!want(0, {S, L})) return -1; info.ty = I; break;
      case Fn::kContains:
        if (!want(0, {S, L})) return -1;
        if (in[0].ty == S && !want(1, {S})) return -1;
        info.ty = B;
        break;
      case Fn::kStartsWith:
      case Fn::kEndsWith:
        if (!want(0, {S}) || !want(1, {S})) return -1;
        info.ty = B;
        break;
      case Fn::kMatches: {
        if (!want(0, {S}) || !want(1, {S})) return -1;
        const Node& pat = ast_.nodes[x.args[1]];
        if (pat.op == Op::kLit && pat.lit.kind == ValueKind::kString) {
          Regex re;
          std::string why;
          size_t at = 0;
          if (!CompileRegex(pat.lit.s, re, &why, &at))
            return Fail(x.args[1], Cat("matches: bad pattern at byte ", at, ": ", why));
          re.tree.clear();
          re.tree.shrink_to_fit();
          p_.regexes.push_back(std::move(re));
          node.extra = static_cast<uint32_t>(p_.regexes.size());
        }
        info.ty = B;
        break;
      }
      case Fn::kLower:
      case Fn::kUpper: if (!want(0, {S})) return -1; info.ty = S; break;
      case Fn::kHour: if (!want(0, {T})) return -1; info.ty = I; break;
      case Fn::kYear:
      case Fn::kMonth:
      case Fn::kDay:
      case Fn::kWeekday: if (!want(0, {T, DT})) return -1; info.ty = I; break;
      case Fn::kDaysBetween: if (!want(0, {T, DT}) || !want(1, {T, DT})) return -1; info.ty = I; break;
      case Fn::kToday: info.ty = DT; info.time = true; break;
      case Fn::kNow: info.ty = T; info.time = true; info.slope = 1; break;
      case Fn::kInt: if (!want(0, {I, D, M, S, B, T, U, DT})) return -1; info.ty = I; break;
      case Fn::kDouble: if (!want(0, {I, D, M, S})) return -1; info.ty = D; break;
      case Fn::kString: if (!want(0, {I, D, M, S, B, T, U, DT})) return -1; info.ty = S; break;
      case Fn::kAbs: if (!want(0, {I, D, M, U})) return -1; info.ty = in[0].ty; break;
      case Fn::kLeast:
      case Fn::kGreatest: {
        Ty a = in[0].ty, b = in[1].ty;
        if (!want(0, {I, D, M, S, T, U, DT}) || !want(1, {I, D, M, S, T, U, DT})) return -1;
        if (a != Ty::kAny && b != Ty::kAny && a != b && !(IsNum(a) && IsNum(b)))
          return Fail(n, Cat(f.name, " compares ", TyName(a), " with ", TyName(b)));
        info.ty = a == b ? a : Ty::kAny;
        break;
      }
      case Fn::kDate: if (!want(0, {T, DT, S})) return -1; info.ty = DT; break;
      case Fn::kTimestamp: if (!want(0, {I, T, DT, S})) return -1; info.ty = T; break;
      case Fn::kMoney:
      case Fn::kYuan: if (!want(0, {I, D, M, S})) return -1; info.ty = M; break;
      case Fn::kDuration: if (!want(0, {I, U, S})) return -1; info.ty = U; break;
      case Fn::kConsent: break;  // lowered above
    }
    return static_cast<int>(Emit(node, kids));
  }

  int LowerAgg(int n, Info& info) {
    const Node& x = ast_.nodes[n];
    std::string_view name = AggName(x.agg);
    if (AggTakesProp(x.agg) && x.prop.empty())
      return Fail(n, Cat(name, " needs an event property, e.g. ", name, "(order.amount, 30d)"));
    if (!AggTakesProp(x.agg) && !x.prop.empty())
      return Fail(n, Cat(name, " takes an event type, not a property: ", name, "(", x.name, ")"));
    PNode node;
    node.op = POp::kAgg;
    node.aux = static_cast<uint8_t>(x.agg);
    node.id = x.name == "*" ? kAnyEventType : names_.EventType(x.name);
    if (x.prop == "amount") node.flags = kPropAmount;
    else if (!x.prop.empty()) { node.flags = kPropKey; node.extra = names_.PropKey(x.prop); }
    node.win = static_cast<uint32_t>(p_.windows.size());
    p_.windows.push_back(x.window);
    info.time = x.window.relative() || x.agg == Agg::kDaysSince;
    switch (x.agg) {
      case Agg::kCount: case Agg::kDistinct: case Agg::kActiveDays: case Agg::kDaysSince: info.ty = Ty::kInt; break;
      case Agg::kFirst: case Agg::kLast: info.ty = Ty::kTimestamp; break;
      case Agg::kAvg: info.ty = node.flags == kPropAmount ? Ty::kMoney : Ty::kDouble; break;
      default: info.ty = node.flags == kPropAmount ? Ty::kMoney : Ty::kAny; break;
    }
    std::vector<uint32_t> kids;
    if (!x.args.empty()) {
      Info fi;
      int c = Lower(x.args[0], fi);
      if (c < 0) return -1;
      if (!Logical(x.args[0], fi.ty)) return -1;
      info.time |= fi.time;
      kids.push_back(static_cast<uint32_t>(c));
    }
    return static_cast<int>(Emit(node, kids));
  }

  Ast& ast_;
  Names& names_;
  const ExprLimits& lim_;
  Program& p_;
  absl::Status err_;
};

}  // namespace

absl::Status CompileAst(Ast& ast, Names& names, const ExprLimits& lim, Program& p) {
  p.zone = names.Zone();
  return Compiler(ast, names, lim, p).Run();
}

}  // namespace cdp::expr

namespace cdp {

absl::StatusOr<Expr> Expr::Compile(std::string_view text, Names& names, const ExprLimits& lim) {
  expr::Ast ast;
  auto p = std::make_shared<expr::Program>();
  absl::Status st = expr::ParseText(text, lim, ast);
  if (st.ok()) st = expr::CompileAst(ast, names, lim, *p);
  if (!st.ok()) return st;
  return Expr(std::move(p));
}

absl::StatusOr<Expr> Expr::FromAst(std::string_view json, Names& names, const ExprLimits& lim) {
  expr::Ast ast;
  auto p = std::make_shared<expr::Program>();
  absl::Status st = expr::ParseJson(json, lim, ast);
  if (st.ok()) st = expr::CompileAst(ast, names, lim, *p);
  if (!st.ok()) return st;
  return Expr(std::move(p));
}

const std::string& Expr::AstJson() const { return p_->ast_json; }
bool Expr::time_dependent() const { return p_->time_dependent; }
std::string_view Expr::result_type() const { return expr::TyName(p_->type); }
const TimeZone& Expr::zone() const { return p_->zone; }

}  // namespace cdp
