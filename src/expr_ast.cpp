// The JSON front end and the canonical writer, and the name tables both front ends share.
#include <charconv>
#include <cmath>
#include <string>

#include "cdp/record.hpp"
#include "expr_internal.hpp"
#include "json_util.hpp"
#include "simdjson.h"
#include "util.hpp"

namespace cdp::expr {

// ---- names ---------------------------------------------------------------------------

namespace {
struct OpEntry {
  Op op;
  std::string_view name;
};
constexpr OpEntry kOps[] = {
    {Op::kList, "list"}, {Op::kNot, "!"}, {Op::kNeg, "neg"}, {Op::kAnd, "&&"}, {Op::kOr, "||"},
    {Op::kCond, "?:"}, {Op::kEq, "=="}, {Op::kNe, "!="}, {Op::kLt, "<"}, {Op::kLe, "<="},
    {Op::kGt, ">"}, {Op::kGe, ">="}, {Op::kIn, "in"}, {Op::kAdd, "+"}, {Op::kSub, "-"},
    {Op::kMul, "*"}, {Op::kDiv, "/"}, {Op::kMod, "%"}, {Op::kIndex, "[]"},
};
constexpr std::string_view kRefs[] = {"attrs", "person", "ids", "tags", "state", "event"};
constexpr FnInfo kFns[] = {
    {"has", Fn::kHas, 1, 1, false},
    {"size", Fn::kSize, 1, 1, true},
    {"contains", Fn::kContains, 2, 2, true},
    {"startsWith", Fn::kStartsWith, 2, 2, true},
    {"endsWith", Fn::kEndsWith, 2, 2, true},
    {"matches", Fn::kMatches, 2, 2, true},
    {"lower", Fn::kLower, 1, 1, true},
    {"upper", Fn::kUpper, 1, 1, true},
    {"year", Fn::kYear, 1, 2, true},
    {"month", Fn::kMonth, 1, 2, true},
    {"day", Fn::kDay, 1, 2, true},
    {"weekday", Fn::kWeekday, 1, 2, true},
    {"hour", Fn::kHour, 1, 2, true},
    {"days_between", Fn::kDaysBetween, 2, 2, false},
    {"today", Fn::kToday, 0, 0, false},
    {"now", Fn::kNow, 0, 0, false},
    {"int", Fn::kInt, 1, 1, false},
    {"double", Fn::kDouble, 1, 1, false},
    {"string", Fn::kString, 1, 1, false},
    {"abs", Fn::kAbs, 1, 1, false},
    {"least", Fn::kLeast, 2, 2, false},
    {"greatest", Fn::kGreatest, 2, 2, false},
    {"date", Fn::kDate, 1, 1, false},
    {"timestamp", Fn::kTimestamp, 1, 1, false},
    {"money", Fn::kMoney, 1, 1, false},
    {"yuan", Fn::kYuan, 1, 1, false},
    {"duration", Fn::kDuration, 1, 1, false},
    {"consent", Fn::kConsent, 1, 1, false},
};
constexpr std::string_view kAggs[] = {"count", "sum", "avg", "min", "max", "distinct",
                                      "active_days", "first", "last", "days_since"};
}  // namespace

std::string_view OpName(Op op) {
  for (const auto& e : kOps)
    if (e.op == op) return e.name;
  return "?";
}
bool OpFromName(std::string_view s, Op& op) {
  for (const auto& e : kOps)
    if (e.name == s) { op = e.op; return true; }
  return false;
}
std::string_view RefName(Ref r) { return kRefs[static_cast<int>(r)]; }
bool RefFromName(std::string_view s, Ref& r) {
  for (size_t k = 0; k < std::size(kRefs); ++k)
    if (kRefs[k] == s) { r = static_cast<Ref>(k); return true; }
  return false;
}
const FnInfo* FindFn(std::string_view name) {
  for (const auto& f : kFns)
    if (f.name == name) return &f;
  return nullptr;
}
const FnInfo& FnInfoOf(Fn fn) { return kFns[static_cast<int>(fn)]; }
std::string_view AggName(Agg a) { return kAggs[static_cast<int>(a)]; }
bool AggFromName(std::string_view s, Agg& a) {
  for (size_t k = 0; k < std::size(kAggs); ++k)
    if (kAggs[k] == s) { a = static_cast<Agg>(k); return true; }
  return false;
}
bool AggTakesProp(Agg a) {
  return a == Agg::kSum || a == Agg::kAvg || a == Agg::kMin || a == Agg::kMax || a == Agg::kDistinct;
}
std::string_view WindowPeriodName(Window::Kind k) {
  switch (k) {
    case Window::kThisMonth: return "this_month";
    case Window::kLastMonth: return "last_month";
    case Window::kThisYear: return "this_year";
    case Window::kLastYear: return "last_year";
    default: return "";
  }
}

// ---- the canonical writer ------------------------------------------------------------

namespace {

void WriteLiteral(json::Writer& w, const Literal& l) {
  w.BeginObject().Key("lit");
  std::string tmp;
  switch (l.kind) {
    case ValueKind::kNull: w.Null(); break;
    case ValueKind::kBool: w.Bool(l.i != 0); break;
    case ValueKind::kInt:
    case ValueKind::kTimestamp:
    case ValueKind::kDuration: w.Int(l.i); break;
    case ValueKind::kDouble: AppendDouble(tmp, l.d); w.Raw(tmp); break;
    case ValueKind::kMoney: AppendMoney(tmp, l.i); w.String(tmp); break;
    case ValueKind::kString: w.String(l.s); break;
    case ValueKind::kDate: w.String(DateText(static_cast<int32_t>(l.i))); break;
    case ValueKind::kList: w.Null(); break;  // not a literal kind
  }
  w.Key("type").String(ValueKindName(l.kind)).EndObject();
}

void WriteNode(json::Writer& w, const Ast& ast, int n) {
  const Node& x = ast.nodes[n];
  auto args = [&](size_t from) {
    w.Key("args").BeginArray();
    for (size_t k = from; k < x.args.size(); ++k) WriteNode(w, ast, x.args[k]);
    w.EndArray();
  };
  switch (x.op) {
    case Op::kLit: WriteLiteral(w, x.lit); return;
    case Op::kRef: w.BeginObject().Key("ref").String(RefName(x.ref)).Key("name").String(x.name).EndObject(); return;
    case Op::kCall:
      w.BeginObject().Key("call").String(FnInfoOf(x.fn).name);
      args(0);
      w.EndObject();
      return;
    case Op::kAgg: {
      w.BeginObject().Key("agg").String(AggName(x.agg)).Key("event").String(x.name);
      if (!x.prop.empty()) w.Key("prop").String(x.prop);
      const Window& win = x.window;
      if (win.kind != Window::kAll) {
        w.Key("window").BeginObject();
        if (win.kind == Window::kLastDays) {
          w.Key("last_days").Int(win.n);
          if (!win.include_today) w.Key("include_today").Bool(false);
        } else if (win.kind == Window::kBetween) {
          w.Key("from").String(DateText(win.from)).Key("to").String(DateText(win.to));
        } else {
          w.Key("period").String(WindowPeriodName(win.kind));
        }
        w.EndObject();
      }
      if (!x.args.empty()) {
        w.Key("where");
        WriteNode(w, ast, x.args[0]);
      }
      w.EndObject();
      return;
    }
    default:
      w.BeginObject().Key("op").String(OpName(x.op));
      args(0);
      w.EndObject();
      return;
  }
}

}  // namespace

std::string WriteJson(const Ast& ast) {
  std::string out;
  json::Writer w(out);
  WriteNode(w, ast, ast.root);
  return out;
}

// ---- the JSON reader -----------------------------------------------------------------

namespace {

namespace dom = simdjson::dom;

class JsonReader {
 public:
  JsonReader(const ExprLimits& lim, Ast& ast) : lim_(lim), ast_(ast) {}

  int Build(dom::element e, const std::string& path, uint32_t depth) {
    if (depth > lim_.max_depth) return Fail(path, Cat("the expression nests deeper than ", lim_.max_depth, " levels"));
    if (ast_.nodes.size() >= lim_.max_nodes) return Fail(path, Cat("the expression has more than ", lim_.max_nodes, " nodes"));
    dom::object obj;
    if (e.get_object().get(obj)) return Fail(path, "expected an object (a node)");
    std::string_view kind;
    for (auto field : obj) {
      std::string_view k = field.key;
      if (k == "lit" || k == "op" || k == "ref" || k == "call" || k == "agg") {
        if (!kind.empty()) return Fail(path, Cat("a node has one of lit, op, ref, call, agg; found both ", kind, " and ", k));
        kind = k;
      }
    }
    if (kind.empty()) return Fail(path, "a node needs one of the keys lit, op, ref, call, agg");
    int n = static_cast<int>(ast_.nodes.size());
    ast_.nodes.emplace_back();
    ast_.nodes[n].path = path;
    bool ok;
    if (kind == "lit") ok = BuildLit(obj, n, path);
    else if (kind == "ref") ok = BuildRef(obj, n, path);
    else if (kind == "agg") ok = BuildAgg(obj, n, path, depth);
    else ok = BuildOpOrCall(obj, n, path, depth, kind == "call");
    return ok ? n : -1;
  }

  absl::Status err;

 private:
  int Fail(const std::string& path, std::string_view msg) {
    if (err.ok()) err = absl::InvalidArgumentError(Cat(path.empty() ? "root" : path, ": ", msg));
    return -1;
  }
  bool Bad(const std::string& path, std::string_view msg) { return Fail(path, msg) >= 0; }
  static std::string Sub(const std::string& path, std::string_view key) {
    return path.empty() ? std::string(key) : Cat(path, ".", key);
  }

  bool CheckKeys(dom::object obj, const std::string& path, std::initializer_list<std::string_view> allowed) {
    for (auto field : obj) {
      bool known = false;
      for (auto a : allowed) known |= field.key == a;
      if (!known) return Bad(path, Cat("unknown key \"", field.key, "\""));
    }
    return true;
  }

  bool GetString(dom::object obj, std::string_view key, const std::string& path, std::string_view& out) {
    if (obj[key].get_string().get(out)) return Bad(path, Cat("\"", key, "\" must be a string"));
    return true;
  }

  bool BuildLit(dom::object obj, int n, const std::string& path) {
    if (!CheckKeys(obj, path, {"lit", "type"})) return false;
    dom::element v = obj["lit"].value_unsafe();
    std::string_view type;
    bool typed = obj["type"].get_string().get(type) == simdjson::SUCCESS;
    if (!typed && obj["type"].error() != simdjson::NO_SUCH_FIELD) return Bad(path, "\"type\" must be a string");
    Literal& l = ast_.nodes[n].lit;
    ast_.nodes[n].op = Op::kLit;
    auto number_text = [&](std::string& out) {
      int64_t i;
      double d;
      if (v.get_int64().get(i) == simdjson::SUCCESS) { out = std::to_string(i); return true; }
      if (v.get_double().get(d) == simdjson::SUCCESS) { AppendDouble(out, d); return true; }
      return false;
    };
    if (!typed) {
      switch (v.type()) {
        case dom::element_type::NULL_VALUE: type = "null"; break;
        case dom::element_type::BOOL: type = "bool"; break;
        case dom::element_type::INT64: type = "int"; break;
        case dom::element_type::UINT64: return Bad(path, "integer out of range");
        case dom::element_type::DOUBLE: type = "double"; break;
        case dom::element_type::STRING: type = "string"; break;
        default: return Bad(path, "a literal is null, a boolean, a number or a string (lists are {\"op\":\"list\"})");
      }
    }
    std::string_view s;
    bool is_string = v.get_string().get(s) == simdjson::SUCCESS;
    auto want = [&](bool ok, std::string_view what) { return ok || Bad(path, Cat("a ", type, " literal needs ", what)); };
    if (type == "null") {
      l.kind = ValueKind::kNull;
      return want(v.is_null(), "\"lit\": null");
    }
    if (type == "bool") {
      bool b = false;
      l.kind = ValueKind::kBool;
      if (!want(v.get_bool().get(b) == simdjson::SUCCESS, "true or false")) return false;
      l.i = b;
      return true;
    }
    if (type == "int") {
      l.kind = ValueKind::kInt;
      return want(v.get_int64().get(l.i) == simdjson::SUCCESS, "an integer (int64)");
    }
    if (type == "double") {
      l.kind = ValueKind::kDouble;
      if (!want(v.get_double().get(l.d) == simdjson::SUCCESS, "a number")) return false;
      if (l.d == 0) l.d = 0;  // no negative zero: it would not survive a round trip
      return true;
    }
    if (type == "string") {
      l.kind = ValueKind::kString;
      if (!want(is_string, "a string")) return false;
      l.s = s;
      if (l.s.find('\0') != std::string::npos) return Bad(path, "strings may not contain NUL");
      return true;
    }
    if (type == "money") {
      l.kind = ValueKind::kMoney;
      std::string text;
      if (is_string) text = s;
      else if (!number_text(text)) return want(false, "a decimal amount in yuan, \"199.00\"");
      auto fen = YuanToFen(text);
      if (!fen.ok()) return Bad(path, Cat("money: ", fen.status().message()));
      l.i = *fen;
      return true;
    }
    if (type == "timestamp") {
      l.kind = ValueKind::kTimestamp;
      if (v.get_int64().get(l.i) == simdjson::SUCCESS) return true;
      if (!want(is_string, "epoch milliseconds or an ISO-8601 string")) return false;
      auto t = ParseTimestamp(s);
      if (!t.ok()) return Bad(path, Cat("timestamp: ", t.status().message()));
      l.i = *t;
      return true;
    }
    if (type == "duration") {
      l.kind = ValueKind::kDuration;
      if (v.get_int64().get(l.i) == simdjson::SUCCESS) return true;
      return want(false, "an integer number of milliseconds");
    }
    if (type == "date") {
      l.kind = ValueKind::kDate;
      int32_t day;
      if (!want(is_string && ParseDate(s, day), "a date \"YYYY-MM-DD\"")) return false;
      l.i = day;
      return true;
    }
    return Bad(path, Cat("unknown literal type \"", type, "\""));
  }

  bool BuildRef(dom::object obj, int n, const std::string& path) {
    if (!CheckKeys(obj, path, {"ref", "name"})) return false;
    std::string_view ref, name;
    if (!GetString(obj, "ref", path, ref) || !GetString(obj, "name", path, name)) return false;
    Node& x = ast_.nodes[n];
    x.op = Op::kRef;
    if (!RefFromName(ref, x.ref)) return Bad(path, Cat("unknown ref \"", ref, "\": use attrs, person, ids, tags, state or event"));
    if (x.ref == Ref::kEvent && !in_filter_) return Bad(path, "event fields exist only in the \"where\" of an aggregate");
    x.name = name;
    return true;
  }

  bool BuildArgs(dom::object obj, int n, const std::string& path, uint32_t depth) {
    dom::array args;
    auto f = obj["args"];
    if (f.error() == simdjson::NO_SUCH_FIELD) return true;
    if (f.get_array().get(args)) return Bad(path, "\"args\" must be an array");
    size_t k = 0;
    for (dom::element a : args) {
      if (k >= lim_.max_list) return Bad(path, Cat("more than ", lim_.max_list, " arguments"));
      int c = Build(a, Sub(path, Cat("args[", k, "]")), depth + 1);
      if (c < 0) return false;
      ast_.nodes[n].args.push_back(c);
      ++k;
    }
    return true;
  }

  bool BuildOpOrCall(dom::object obj, int n, const std::string& path, uint32_t depth, bool call) {
    if (!CheckKeys(obj, path, {call ? "call" : "op", "args"})) return false;
    std::string_view name;
    if (!GetString(obj, call ? "call" : "op", path, name)) return false;
    if (call) {
      const FnInfo* f = FindFn(name);
      Agg agg;
      if (!f && AggFromName(name, agg)) return Bad(path, Cat(name, " is an aggregate: {\"agg\":\"", name, "\",\"event\":...}"));
      if (!f) return Bad(path, Cat("unknown function \"", name, "\""));
      ast_.nodes[n].op = Op::kCall;
      ast_.nodes[n].fn = f->fn;
    } else {
      Op op;
      if (!OpFromName(name, op)) return Bad(path, Cat("unknown op \"", name, "\""));
      ast_.nodes[n].op = op;
    }
    if (!BuildArgs(obj, n, path, depth)) return false;
    if (call) return true;  // arity is the compiler's, as for text
    size_t have = ast_.nodes[n].args.size(), want;
    Op op = ast_.nodes[n].op;
    switch (op) {
      case Op::kList: return true;
      case Op::kNot: case Op::kNeg: want = 1; break;
      case Op::kCond: want = 3; break;
      case Op::kAnd: case Op::kOr:
        if (have < 2) return Bad(path, Cat("\"", name, "\" needs at least 2 args"));
        return true;
      default: want = 2; break;
    }
    if (have != want) return Bad(path, Cat("\"", name, "\" needs ", want, " arg", want == 1 ? "" : "s", ", found ", have));
    return true;
  }

  bool BuildAgg(dom::object obj, int n, const std::string& path, uint32_t depth) {
    if (!CheckKeys(obj, path, {"agg", "event", "prop", "window", "where"})) return false;
    std::string_view name, event, prop;
    if (!GetString(obj, "agg", path, name)) return false;
    Node& x = ast_.nodes[n];
    x.op = Op::kAgg;
    if (!AggFromName(name, x.agg)) return Bad(path, Cat("unknown aggregate \"", name, "\""));
    if (in_filter_) return Bad(path, "aggregates cannot be nested in the \"where\" of another");
    if (!GetString(obj, "event", path, event)) return false;
    if (event.empty()) return Bad(path, "\"event\" is empty");
    x.name = event;
    if (obj["prop"].error() != simdjson::NO_SUCH_FIELD) {
      if (!GetString(obj, "prop", path, prop)) return false;
      x.prop = prop;
    }
    dom::object win;
    auto wf = obj["window"];
    if (wf.error() != simdjson::NO_SUCH_FIELD) {
      std::string wpath = Sub(path, "window");
      if (wf.get_object().get(win)) return Bad(wpath, "expected an object");
      if (!BuildWindow(win, x.window, wpath)) return false;
    }
    auto where = obj["where"];
    if (where.error() != simdjson::NO_SUCH_FIELD) {
      in_filter_ = true;
      int f = Build(where.value_unsafe(), Sub(path, "where"), depth + 1);
      in_filter_ = false;
      if (f < 0) return false;
      ast_.nodes[n].args.push_back(f);
    }
    return true;
  }

  bool BuildWindow(dom::object obj, Window& w, const std::string& path) {
    int64_t n;
    if (obj["last_days"].get_int64().get(n) == simdjson::SUCCESS) {
      if (!CheckKeys(obj, path, {"last_days", "include_today"})) return false;
      if (n < 1 || n > 36'600) return Bad(path, "last_days is 1 to 36600");
      w.kind = Window::kLastDays;
      w.n = static_cast<int32_t>(n);
      auto inc = obj["include_today"];
      if (inc.error() != simdjson::NO_SUCH_FIELD && inc.get_bool().get(w.include_today))
        return Bad(path, "include_today must be true or false");
      return true;
    }
    std::string_view s;
    if (obj["period"].get_string().get(s) == simdjson::SUCCESS) {
      if (!CheckKeys(obj, path, {"period"})) return false;
      for (auto k : {Window::kThisMonth, Window::kLastMonth, Window::kThisYear, Window::kLastYear})
        if (WindowPeriodName(k) == s) { w.kind = k; return true; }
      return Bad(path, Cat("unknown period \"", s, "\": this_month, last_month, this_year or last_year"));
    }
    std::string_view from, to;
    if (obj["from"].get_string().get(from) == simdjson::SUCCESS && obj["to"].get_string().get(to) == simdjson::SUCCESS) {
      if (!CheckKeys(obj, path, {"from", "to"})) return false;
      if (!ParseDate(from, w.from) || !ParseDate(to, w.to)) return Bad(path, "from and to are dates \"YYYY-MM-DD\"");
      if (w.from > w.to) return Bad(path, "from is after to");
      w.kind = Window::kBetween;
      return true;
    }
    return Bad(path, "a window is {\"last_days\":N[,\"include_today\":false]}, {\"period\":\"this_month\"} or {\"from\":\"YYYY-MM-DD\",\"to\":\"YYYY-MM-DD\"}");
  }

  const ExprLimits& lim_;
  Ast& ast_;
  bool in_filter_ = false;
};

}  // namespace

absl::Status ParseJson(std::string_view text, const ExprLimits& lim, Ast& ast) {
  uint64_t cap = uint64_t{lim.max_text_bytes} * 8;
  if (text.size() > cap)
    return absl::InvalidArgumentError(Cat("the AST is ", text.size(), " bytes, over the limit of ", cap));
  ast.nodes.clear();
  ast.where = [](const Node& n) { return n.path.empty() ? std::string("root") : n.path; };
  if (text.empty()) return absl::InvalidArgumentError("the AST is empty");
  dom::parser parser;
  dom::element root;
  if (parser.parse(text.data(), text.size()).get(root)) {
    json::Problem p = json::Locate(text);
    uint32_t line = 1, col = 1;
    json::LineColumn(text, p.offset, line, col);
    return absl::InvalidArgumentError(Cat("invalid JSON at line ", line, ", column ", col, ": ",
                                          p.found ? p.message : std::string("malformed")));
  }
  JsonReader r(lim, ast);
  int n = r.Build(root, "", 1);
  if (n < 0) return r.err;
  ast.root = n;
  return absl::OkStatus();
}

}  // namespace cdp::expr
