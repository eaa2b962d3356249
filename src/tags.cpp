// The tag engine: definitions, evaluation per kind, incremental upkeep and Advance.
#include <algorithm>
#include <charconv>
#include <cmath>
#include <functional>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "bitmap_io.hpp"
#include "cdp/calendar.hpp"
#include "json_util.hpp"
#include "simdjson.h"
#include "snapshot.hpp"
#include "tags_internal.hpp"
#include "util.hpp"

namespace cdp {

using tags::Column;
using tags::Def;
using tags::Kind;
using tags::Shape;
namespace dom = simdjson::dom;

namespace tags {

// --- what an expression reads -------------------------------------------------------

void ReadSet::AddAst(simdjson::dom::element n, Names& names) {
  dom::object o;
  if (n.get(o) == simdjson::SUCCESS) {
    std::string_view ref, agg, call;
    if (o["ref"].get(ref) == simdjson::SUCCESS) {
      std::string_view name;
      if (o["name"].get(name) != simdjson::SUCCESS) name = {};
      if (ref == "attrs") attrs.push_back(names.Attr(name));
      else if (ref == "tags") tags.push_back(names.Tag(name));
      else if (ref == "person" || ref == "ids") person = true;
      else if (ref == "state") state = true;
    }
    if (o["agg"].get(agg) == simdjson::SUCCESS) {
      std::string_view ev;
      if (o["event"].get(ev) == simdjson::SUCCESS) {
        if (ev == "*") any_event = true;
        else events.push_back(names.EventType(ev));
      }
    }
    if (o["call"].get(call) == simdjson::SUCCESS) {
      if (call == "now" || call == "today") clock = true;
      // consent("sms") reads the channel's consent attribute (its argument is a literal).
      std::string_view channel;
      if (call == "consent" && o["args"].at(0)["lit"].get(channel) == simdjson::SUCCESS)
        attrs.push_back(names.Attr(Cat(kConsentPrefix, channel)));
    }
    for (auto [k, v] : o) AddAst(v, names);
    return;
  }
  dom::array a;
  if (n.get(a) == simdjson::SUCCESS)
    for (dom::element v : a) AddAst(v, names);
}

void ReadSet::Add(const Expr& e, Names& names) {
  dom::parser p;
  dom::element root;
  if (p.parse(e.AstJson()).get(root) == simdjson::SUCCESS) AddAst(root, names);
}

void ReadSet::Normalize() {
  for (auto* v : {&attrs, &events, &tags}) {
    std::sort(v->begin(), v->end());
    v->erase(std::unique(v->begin(), v->end()), v->end());
  }
}

}  // namespace tags

namespace {

// --- parsing definitions --------------------------------------------------------------

absl::Status Bad(std::string_view path, std::string_view what) {
  return absl::InvalidArgumentError(Cat(path, ": ", what));
}

struct Parser {
  ProfileStore& names;
  const ExprLimits& lim;
  std::string path;  // of the definition being read: "tags[2]" or "tag"

  absl::StatusOr<Expr> Compile(dom::element v, std::string_view field) {
    std::string_view text;
    std::string p = Cat(path, ".", field);
    if (v.get(text) == simdjson::SUCCESS) {
      auto e = Expr::Compile(text, names, lim);
      if (!e.ok()) return Bad(p, std::string(e.status().message()));
      return e;
    }
    dom::object o;
    if (v.get(o) == simdjson::SUCCESS) {  // a JSON AST, as UIs build it
      auto e = Expr::FromAst(simdjson::minify(v), names, lim);
      if (!e.ok()) return Bad(p, std::string(e.status().message()));
      return e;
    }
    return Bad(p, "expected an expression (text or JSON AST)");
  }

  absl::Status String(dom::element v, std::string_view field, std::string& out, bool allow_empty = false) {
    std::string_view s;
    if (v.get(s) != simdjson::SUCCESS) return Bad(Cat(path, ".", field), "expected a string");
    if (!allow_empty && s.empty()) return Bad(Cat(path, ".", field), "must not be empty");
    if (s.size() > 1024) return Bad(Cat(path, ".", field), "longer than 1024 bytes");
    out.assign(s);
    return absl::OkStatus();
  }

  absl::Status Number(dom::element v, std::string_view field, double& out) {
    if (v.get(out) != simdjson::SUCCESS || !std::isfinite(out)) return Bad(Cat(path, ".", field), "expected a number");
    return absl::OkStatus();
  }

  absl::Status Uint(dom::element v, std::string_view field, uint64_t lo, uint64_t hi, uint64_t& out) {
    if (v.get(out) != simdjson::SUCCESS || out < lo || out > hi)
      return Bad(Cat(path, ".", field), Cat("expected an integer from ", lo, " to ", hi));
    return absl::OkStatus();
  }

  // "30d", 30, or {"last_days": 30}: the last N local days including today.
  absl::Status WindowOf(dom::element v, std::string_view field, tags::Window& w) {
    std::string p = Cat(path, ".", field);
    uint64_t n = 0;
    std::string_view s;
    dom::object o;
    if (v.get(n) == simdjson::SUCCESS) {
    } else if (v.get(s) == simdjson::SUCCESS && s.size() >= 2 && s.back() == 'd') {
      auto r = std::from_chars(s.data(), s.data() + s.size() - 1, n);
      if (r.ec != std::errc() || r.ptr != s.data() + s.size() - 1) return Bad(p, "expected a window like \"30d\"");
    } else if (v.get(o) == simdjson::SUCCESS && o["last_days"].get(n) == simdjson::SUCCESS) {
    } else {
      return Bad(p, "expected a window: \"30d\", 30 or {\"last_days\":30}");
    }
    if (n < 1 || n > 36600) return Bad(p, "a window is 1 to 36600 days");
    w.last_days = static_cast<int32_t>(n);
    return absl::OkStatus();
  }

  absl::Status EventList(dom::element v, std::string_view field, std::vector<uint32_t>& out) {
    std::string_view s;
    dom::array a;
    std::string p = Cat(path, ".", field);
    if (v.get(s) == simdjson::SUCCESS) {
      if (s.empty()) return Bad(p, "must not be empty");
      out.push_back(names.EventType(s));
      return absl::OkStatus();
    }
    if (v.get(a) != simdjson::SUCCESS || a.size() == 0) return Bad(p, "expected an event type or a list of them");
    for (dom::element x : a) {
      if (x.get(s) != simdjson::SUCCESS || s.empty()) return Bad(p, "expected event type names");
      out.push_back(names.EventType(s));
    }
    return absl::OkStatus();
  }

  absl::Status ValueKindOf(const Expr& e, std::string_view field, Def& d) {
    std::string_view t = e.result_type();
    if (t == "int") d.value_kind = ValueKind::kInt;
    else if (t == "double") d.value_kind = ValueKind::kDouble;
    else if (t == "money") d.value_kind = ValueKind::kMoney;
    else if (t == "timestamp") d.value_kind = ValueKind::kTimestamp;
    else if (t == "date") d.value_kind = ValueKind::kDate;
    else if (t == "duration") d.value_kind = ValueKind::kDuration;
    else return Bad(Cat(path, ".", field), Cat("a statistic needs a numeric or time result; this expression gives ",
                                               t, " (give \"type\", or use a rule tag)"));
    return absl::OkStatus();
  }

  absl::Status Rule(dom::object o, Def& d) {
    dom::element v;
    if (o["rules"].get(v) == simdjson::SUCCESS) {
      dom::array a;
      if (v.get(a) != simdjson::SUCCESS || a.size() == 0)
        return Bad(Cat(path, ".rules"), "expected a non-empty array of {\"when\", \"value\"}");
      size_t i = 0;
      for (dom::element r : a) {
        std::string p = Cat("rules[", i++, "]");
        dom::object ro;
        if (r.get(ro) != simdjson::SUCCESS) return Bad(Cat(path, ".", p), "expected {\"when\": expr, \"value\": string}");
        dom::element w, val;
        if (ro["when"].get(w) != simdjson::SUCCESS) return Bad(Cat(path, ".", p), "missing \"when\"");
        if (ro["value"].get(val) != simdjson::SUCCESS) return Bad(Cat(path, ".", p), "missing \"value\"");
        for (auto [k, x] : ro)
          if (k != "when" && k != "value") return Bad(Cat(path, ".", p, ".", k), "unknown key");
        auto e = Compile(w, Cat(p, ".when"));
        if (!e.ok()) return e.status();
        Def::Rule rule{std::move(*e), {}};
        if (auto st = String(val, Cat(p, ".value"), rule.value); !st.ok()) return st;
        d.rules.push_back(std::move(rule));
      }
      if (o["default"].get(v) == simdjson::SUCCESS) {
        d.has_default = true;
        if (auto st = String(v, "default", d.default_value); !st.ok()) return st;
      }
      d.shape = Shape::kCategory;
      d.value_kind = ValueKind::kString;
      return absl::OkStatus();
    }
    if (o["when"].get(v) != simdjson::SUCCESS)
      return Bad(path, "a rule tag needs \"rules\" (value rules) or \"when\" (one condition)");
    auto e = Compile(v, "when");
    if (!e.ok()) return e.status();
    d.exprs.push_back(std::move(*e));
    d.shape = Shape::kCategory;
    d.value_kind = ValueKind::kBool;
    return absl::OkStatus();
  }

  absl::Status Statistic(dom::object o, Def& d) {
    dom::element v;
    std::string text;
    if (o["expr"].get(v) == simdjson::SUCCESS) {
      auto e = Compile(v, "expr");
      if (!e.ok()) return e.status();
      d.exprs.push_back(std::move(*e));
    } else {
      // {"fn": "sum", "event": "order", "prop": "amount", "window": "30d", "where": "..."}:
      // written as the expression it means, so it evaluates (and explains) the same way.
      std::string fn, event, prop, where;
      if (o["fn"].get(v) != simdjson::SUCCESS) return Bad(path, "a statistic needs \"expr\" or \"fn\" and \"event\"");
      if (auto st = String(v, "fn", fn); !st.ok()) return st;
      static constexpr std::string_view kFns[] = {"count", "sum", "avg", "min", "max", "distinct",
                                                  "active_days", "first", "last", "days_since"};
      if (std::find(std::begin(kFns), std::end(kFns), fn) == std::end(kFns))
        return Bad(Cat(path, ".fn"), "expected count, sum, avg, min, max, distinct, active_days, first, last or days_since");
      if (o["event"].get(v) != simdjson::SUCCESS) return Bad(path, "missing \"event\"");
      if (auto st = String(v, "event", event); !st.ok()) return st;
      std::string ev;
      json::AppendString(ev, event);
      text = Cat(fn, "(", ev);
      if (o["prop"].get(v) == simdjson::SUCCESS) {
        if (auto st = String(v, "prop", prop); !st.ok()) return st;
        text = Cat(fn, "(", ev, ".", prop);  // a property name is an identifier (else use "expr")
      }
      if (o["window"].get(v) == simdjson::SUCCESS) {
        tags::Window w;
        if (auto st = WindowOf(v, "window", w); !st.ok()) return st;
        text += Cat(", ", w.last_days, "d");
      }
      if (o["where"].get(v) == simdjson::SUCCESS) {
        if (auto st = String(v, "where", where); !st.ok()) return st;
        text += Cat(", ", where);
      }
      text += ")";
      auto e = Expr::Compile(text, names, lim);
      if (!e.ok()) return Bad(path, Cat("statistic `", text, "`: ", e.status().message()));
      d.exprs.push_back(std::move(*e));
    }
    d.shape = Shape::kNumber;
    if (o["type"].get(v) == simdjson::SUCCESS) {
      std::string t;
      if (auto st = String(v, "type", t); !st.ok()) return st;
      static constexpr std::pair<std::string_view, ValueKind> kTypes[] = {
          {"int", ValueKind::kInt}, {"double", ValueKind::kDouble}, {"money", ValueKind::kMoney},
          {"timestamp", ValueKind::kTimestamp}, {"date", ValueKind::kDate}, {"duration", ValueKind::kDuration}};
      auto it = std::find_if(std::begin(kTypes), std::end(kTypes), [&](const auto& x) { return x.first == t; });
      if (it == std::end(kTypes)) return Bad(Cat(path, ".type"), "expected int, double, money, timestamp, date or duration");
      d.value_kind = it->second;
      return absl::OkStatus();
    }
    return ValueKindOf(d.exprs[0], o["expr"].error() == simdjson::SUCCESS ? "expr" : "fn", d);
  }

  absl::Status Bucket(dom::object o, Def& d) {
    dom::element v;
    if (o["expr"].get(v) != simdjson::SUCCESS) return Bad(path, "a bucket tag needs \"expr\" (a number to bucket)");
    auto e = Compile(v, "expr");
    if (!e.ok()) return e.status();
    d.exprs.push_back(std::move(*e));
    dom::array a;
    if (o["buckets"].get(a) != simdjson::SUCCESS || a.size() == 0)
      return Bad(Cat(path, ".buckets"), "expected a non-empty array of {\"min\", \"max\", \"value\"}");
    size_t i = 0;
    for (dom::element b : a) {
      std::string p = Cat("buckets[", i++, "]");
      dom::object bo;
      if (b.get(bo) != simdjson::SUCCESS) return Bad(Cat(path, ".", p), "expected {\"min\", \"max\", \"value\"}");
      Def::Bucket bk;
      for (auto [k, x] : bo) {
        absl::Status st;
        if (k == "min") st = Number(x, Cat(p, ".min"), bk.min);
        else if (k == "max") st = Number(x, Cat(p, ".max"), bk.max);
        else if (k == "value") st = String(x, Cat(p, ".value"), bk.value);
        else st = Bad(Cat(path, ".", p, ".", k), "unknown key");
        if (!st.ok()) return st;
      }
      if (bk.value.empty()) return Bad(Cat(path, ".", p), "missing \"value\"");
      if (!(bk.min < bk.max)) return Bad(Cat(path, ".", p), "min must be below max (a bucket is [min, max))");
      d.buckets.push_back(std::move(bk));
    }
    if (o["default"].get(v) == simdjson::SUCCESS) {
      d.has_default = true;
      if (auto st = String(v, "default", d.default_value); !st.ok()) return st;
    }
    d.shape = Shape::kCategory;
    return absl::OkStatus();
  }

  absl::Status Rfm(dom::object o, Def& d) {
    std::string event = "order";
    uint64_t days = 365;
    dom::element v;
    if (o["event"].get(v) == simdjson::SUCCESS)
      if (auto st = String(v, "event", event); !st.ok()) return st;
    if (o["window_days"].get(v) == simdjson::SUCCESS)
      if (auto st = Uint(v, "window_days", 1, 36600, days); !st.ok()) return st;
    std::string ev;
    json::AppendString(ev, event);
    const std::string defaults[3] = {Cat("days_since(", ev, ")"), Cat("count(", ev, ", ", days, "d)"),
                                     Cat("sum(", ev, ".amount, ", days, "d)")};
    static constexpr std::string_view kDims[3] = {"recency", "frequency", "monetary"};
    static constexpr std::string_view kShort[3] = {"r", "f", "m"};
    for (int k = 0; k < 3; ++k) {
      if (o[kDims[k]].get(v) == simdjson::SUCCESS) {
        auto e = Compile(v, kDims[k]);
        if (!e.ok()) return e.status();
        d.exprs.push_back(std::move(*e));
      } else {
        auto e = Expr::Compile(defaults[k], names, lim);
        if (!e.ok()) return Bad(path, std::string(e.status().message()));
        d.exprs.push_back(std::move(*e));
      }
    }
    if (o["quantiles"].get(v) == simdjson::SUCCESS) {
      uint64_t q;
      if (auto st = Uint(v, "quantiles", 2, 10, q); !st.ok()) return st;
      d.rfm.quantiles = true;
      d.rfm.levels = static_cast<uint32_t>(q);
    } else {
      dom::object th;
      if (o["thresholds"].get(th) != simdjson::SUCCESS)
        return Bad(path, "an rfm tag needs \"thresholds\" ({\"r\":[...],\"f\":[...],\"m\":[...]}) or \"quantiles\"");
      for (int k = 0; k < 3; ++k) {
        dom::array a;
        std::string p = Cat(path, ".thresholds.", kShort[k]);
        if (th[kShort[k]].get(a) != simdjson::SUCCESS || a.size() == 0 || a.size() > 9)
          return Bad(p, "expected 1 to 9 ascending numbers");
        for (dom::element x : a) {
          double t;
          if (x.get(t) != simdjson::SUCCESS || !std::isfinite(t) ||
              (!d.rfm.cuts[k].empty() && !(t > d.rfm.cuts[k].back())))
            return Bad(p, "expected 1 to 9 ascending numbers");
          d.rfm.cuts[k].push_back(t);
        }
      }
    }
    dom::array groups;
    if (o["groups"].get(groups) == simdjson::SUCCESS) {
      size_t i = 0;
      for (dom::element g : groups) {
        std::string p = Cat("groups[", i++, "]");
        dom::object go;
        if (g.get(go) != simdjson::SUCCESS) return Bad(Cat(path, ".", p), "expected {\"value\", \"r\", \"f\", \"m\"}");
        Def::Rfm::Group grp;
        for (auto [k, x] : go) {
          if (k == "value") {
            if (auto st = String(x, Cat(p, ".value"), grp.value); !st.ok()) return st;
            continue;
          }
          int dim = k == "r" ? 0 : k == "f" ? 1 : k == "m" ? 2 : -1;
          if (dim < 0) return Bad(Cat(path, ".", p, ".", k), "unknown key");
          dom::array r;
          int64_t lo, hi;
          if (x.get(r) != simdjson::SUCCESS || r.size() != 2 || r.at(0).get(lo) || r.at(1).get(hi) || lo > hi)
            return Bad(Cat(path, ".", p, ".", k), "expected [lowest score, highest score]");
          grp.range[dim] = {static_cast<int>(lo), static_cast<int>(hi)};
        }
        if (grp.value.empty()) return Bad(Cat(path, ".", p), "missing \"value\"");
        d.rfm.groups.push_back(std::move(grp));
      }
    }
    if (o["default"].get(v) == simdjson::SUCCESS) {
      d.has_default = true;
      if (auto st = String(v, "default", d.default_value); !st.ok()) return st;
    }
    d.shape = Shape::kCategory;
    return absl::OkStatus();
  }

  absl::Status Preference(dom::object o, Def& d) {
    dom::element v;
    if (o["event"].get(v) != simdjson::SUCCESS) return Bad(path, "a preference tag needs \"event\"");
    if (auto st = EventList(v, "event", d.pref.events); !st.ok()) return st;
    if (o["prop"].get(v) != simdjson::SUCCESS) return Bad(path, "a preference tag needs \"prop\"");
    std::string prop;
    if (auto st = String(v, "prop", prop); !st.ok()) return st;
    d.pref.prop = names.PropKey(prop);
    uint64_t top = 1;
    if (o["top"].get(v) == simdjson::SUCCESS)
      if (auto st = Uint(v, "top", 1, 20, top); !st.ok()) return st;
    d.pref.top = static_cast<uint32_t>(top);
    if (o["weight"].get(v) == simdjson::SUCCESS) {
      std::string w;
      if (auto st = String(v, "weight", w); !st.ok()) return st;
      if (w != "count" && w != "amount") return Bad(Cat(path, ".weight"), "expected \"count\" or \"amount\"");
      d.pref.weight_amount = w == "amount";
    }
    if (o["half_life_days"].get(v) == simdjson::SUCCESS) {
      if (auto st = Number(v, "half_life_days", d.pref.half_life_days); !st.ok()) return st;
      if (d.pref.half_life_days <= 0) return Bad(Cat(path, ".half_life_days"), "must be positive");
    }
    if (o["window"].get(v) == simdjson::SUCCESS)
      if (auto st = WindowOf(v, "window", d.pref.window); !st.ok()) return st;
    d.shape = top == 1 ? Shape::kCategory : Shape::kList;
    d.value_kind = top == 1 ? ValueKind::kString : ValueKind::kList;
    for (uint32_t e : d.pref.events) d.reads.events.push_back(e);
    return absl::OkStatus();
  }

  absl::Status Score(dom::object o, Def& d) {
    dom::array a;
    if (o["rules"].get(a) != simdjson::SUCCESS || a.size() == 0)
      return Bad(Cat(path, ".rules"), "expected a non-empty array of {\"event\", \"points\"}");
    size_t i = 0;
    for (dom::element r : a) {
      std::string p = Cat("rules[", i++, "]");
      dom::object ro;
      if (r.get(ro) != simdjson::SUCCESS) return Bad(Cat(path, ".", p), "expected {\"event\", \"points\", \"cap\", \"per\"}");
      Def::ScoreRule sr;
      bool has_event = false, has_points = false;
      for (auto [k, x] : ro) {
        std::string fp = Cat(path, ".", p, ".", k);
        if (k == "event") {
          std::string e;
          if (auto st = String(x, Cat(p, ".event"), e); !st.ok()) return st;
          sr.event = names.EventType(e);
          has_event = true;
        } else if (k == "points") {
          if (x.get(sr.points) != simdjson::SUCCESS || sr.points < -1'000'000 || sr.points > 1'000'000)
            return Bad(fp, "expected an integer from -1000000 to 1000000");
          has_points = true;
        } else if (k == "cap") {
          if (x.get(sr.cap) != simdjson::SUCCESS || sr.cap < 1 || sr.cap > 1'000'000'000)
            return Bad(fp, "expected a positive integer");
        } else if (k == "per") {
          std::string_view s;
          if (x.get(s) != simdjson::SUCCESS) return Bad(fp, "expected day, week, month or forever");
          if (s == "day") sr.per = Def::ScoreRule::kDay;
          else if (s == "week") sr.per = Def::ScoreRule::kWeek;
          else if (s == "month") sr.per = Def::ScoreRule::kMonth;
          else if (s == "forever") sr.per = Def::ScoreRule::kForever;
          else return Bad(fp, "expected day, week, month or forever");
        } else {
          return Bad(fp, "unknown key");
        }
      }
      if (!has_event || !has_points) return Bad(Cat(path, ".", p), "needs \"event\" and \"points\"");
      if ((sr.cap != 0) != (sr.per != Def::ScoreRule::kNone))
        return Bad(Cat(path, ".", p), "\"cap\" and \"per\" go together");
      d.score.rules.push_back(sr);
      d.reads.events.push_back(sr.event);
    }
    dom::element v;
    if (o["half_life_days"].get(v) == simdjson::SUCCESS) {
      if (auto st = Number(v, "half_life_days", d.score.half_life_days); !st.ok()) return st;
      if (d.score.half_life_days <= 0) return Bad(Cat(path, ".half_life_days"), "must be positive");
    }
    if (o["window"].get(v) == simdjson::SUCCESS)
      if (auto st = WindowOf(v, "window", d.score.window); !st.ok()) return st;
    d.shape = Shape::kNumber;
    d.value_kind = d.score.half_life_days > 0 ? ValueKind::kDouble : ValueKind::kInt;
    return absl::OkStatus();
  }

  absl::StatusOr<std::unique_ptr<Def>> One(dom::element el) {
    dom::object o;
    if (el.get(o) != simdjson::SUCCESS) return Bad(path, "expected a tag definition object");
    auto d = std::make_unique<Def>();
    dom::element v;
    if (o["name"].get(v) != simdjson::SUCCESS) return Bad(path, "missing \"name\"");
    if (auto st = String(v, "name", d->name); !st.ok()) return st;
    for (unsigned char c : d->name)
      if (c < 0x20 || c == '.' || c == '"' || c == '\\')
        return Bad(Cat(path, ".name"), "a tag name has no control characters, dots, quotes or backslashes");
    path = Cat(path, " (", d->name, ")");
    if (o["kind"].get(v) != simdjson::SUCCESS) return Bad(path, "missing \"kind\"");
    std::string kind;
    if (auto st = String(v, "kind", kind); !st.ok()) return st;
    if (o["version"].get(v) == simdjson::SUCCESS) {
      uint64_t ver;
      if (auto st = Uint(v, "version", 1, INT64_MAX, ver); !st.ok()) return st;
      d->version = static_cast<int64_t>(ver);
    }
    if (o["description"].get(v) == simdjson::SUCCESS)
      if (auto st = String(v, "description", d->description, true); !st.ok()) return st;
    static const absl::flat_hash_map<std::string_view, std::vector<std::string_view>> kKeys = {
        {"rule", {"rules", "default", "when"}},
        {"statistic", {"expr", "fn", "event", "prop", "window", "where", "type"}},
        {"bucket", {"expr", "buckets", "default"}},
        {"rfm", {"event", "window_days", "recency", "frequency", "monetary", "thresholds", "quantiles", "groups", "default"}},
        {"preference", {"event", "prop", "top", "weight", "half_life_days", "window"}},
        {"score", {"rules", "half_life_days", "window"}},
        {"import", {"attribute"}},
    };
    auto keys = kKeys.find(kind);
    if (keys == kKeys.end())
      return Bad(Cat(path, ".kind"), "expected rule, statistic, bucket, rfm, preference, score or import");
    for (auto [k, x] : o) {
      if (k == "name" || k == "kind" || k == "version" || k == "description") continue;
      if (std::find(keys->second.begin(), keys->second.end(), k) == keys->second.end())
        return Bad(Cat(path, ".", k), Cat("unknown key for a ", kind, " tag"));
    }
    absl::Status st;
    if (kind == "rule") d->kind = Kind::kRule, st = Rule(o, *d);
    else if (kind == "statistic") d->kind = Kind::kStatistic, st = Statistic(o, *d);
    else if (kind == "bucket") d->kind = Kind::kBucket, st = Bucket(o, *d);
    else if (kind == "rfm") d->kind = Kind::kRfm, st = Rfm(o, *d);
    else if (kind == "preference") d->kind = Kind::kPreference, st = Preference(o, *d);
    else if (kind == "score") d->kind = Kind::kScore, st = Score(o, *d);
    else {
      d->kind = Kind::kImport;
      std::string attr = d->name;
      if (o["attribute"].get(v) == simdjson::SUCCESS)
        if (st = String(v, "attribute", attr); !st.ok()) return st;
      d->import_attr = names.Attr(attr);
      d->reads.attrs.push_back(d->import_attr);
      d->shape = Shape::kCategory;
    }
    if (!st.ok()) return st;
    for (const Def::Rule& r : d->rules) d->reads.Add(r.when, names);
    for (const Expr& e : d->exprs) d->reads.Add(e, names);
    d->reads.Normalize();
    d->id = names.Tag(d->name);
    for (const Def::Rule& r : d->rules) d->time_dependent |= r.when.time_dependent();
    for (const Expr& e : d->exprs) d->time_dependent |= e.time_dependent();
    if (d->kind == Kind::kPreference) d->time_dependent = d->pref.window.last_days > 0;
    if (d->kind == Kind::kScore) d->time_dependent = d->score.window.last_days > 0 || d->score.half_life_days > 0;
    d->json = simdjson::minify(el);
    return d;
  }
};

// --- evaluation -----------------------------------------------------------------------

struct Out {
  Value v;
  int64_t vu = kForever;
  int32_t reason = -1;  // rule or bucket index (-1: default or none); rfm: scores r*100+f*10+m
};

bool IsTrue(const Value& v) { return v.kind == ValueKind::kBool && v.b; }

bool AsNumber(const Value& v, double& out) {
  switch (v.kind) {
    case ValueKind::kInt: out = static_cast<double>(v.i); return true;
    case ValueKind::kDouble: out = v.d; return std::isfinite(v.d);
    case ValueKind::kMoney: out = static_cast<double>(v.i) / 100.0; return true;
    default: return false;
  }
}

// The first local midnight at which a window of the last n days (today included) loses
// its oldest event: the day the event leaves, as a time.
int64_t LeaveTime(const TimeZone& z, int32_t oldest_day, int32_t n) {
  return z.DayStart(oldest_day + n);
}

}  // namespace

struct TagEngine::Scratch {
  Evaluator ev;
  std::vector<Value> list;
  std::vector<std::string> texts;
  absl::flat_hash_map<std::string_view, double> weights;
  std::vector<std::pair<std::string_view, double>> ranked;
  std::vector<uint8_t> changed;  // by tag id, during one slot's evaluation
  explicit Scratch(const ExprLimits& lim) : ev(lim) {}
};

namespace {

Out Evaluate(const Def& d, const TaggedView& s, int64_t now, TagEngine::Scratch& sc, const TimeZone& zone,
             const ProfileStore& store);

}  // namespace

TagEngine::TagEngine(ProfileStore& store, Feed& feed, const ExprLimits& lim, uint32_t max_tags)
    : store_(store), feed_(feed), lim_(lim), max_tags_(max_tags), scratch_(std::make_unique<Scratch>(lim)) {}
TagEngine::~TagEngine() = default;

int64_t TagEngine::Find(std::string_view name) const {
  for (uint32_t t : order_)
    if (defs_[t]->name == name) return t;
  return -1;
}

Value TagEngine::Get(uint32_t tag, uint32_t slot) const {
  if (tag >= columns_.size() || !columns_[tag]) return Value();
  return columns_[tag]->Get(slot);
}

const tags::Column* TagEngine::column(uint32_t tag) const {
  return tag < columns_.size() ? columns_[tag].get() : nullptr;
}

uint64_t TagEngine::bytes() const {
  uint64_t b = due_.capacity() * 8 + heap_.capacity() * 16 + universe_.getSizeInBytes();
  for (const auto& c : columns_)
    if (c) b += c->bytes();
  return b;
}

absl::Status TagEngine::CheckCycles(const std::vector<std::unique_ptr<Def>>& incoming) const {
  // The graph after the definitions land: incoming replaces existing of the same id.
  absl::flat_hash_map<uint32_t, const Def*> g;
  for (uint32_t t : order_) g[t] = defs_[t].get();
  for (const auto& d : incoming) g[d->id] = d.get();
  // Depth-first search with colours; the stack is the path.
  absl::flat_hash_map<uint32_t, int> colour;
  std::vector<uint32_t> stack;
  std::string cycle;
  std::function<bool(uint32_t)> visit = [&](uint32_t t) {
    colour[t] = 1;
    stack.push_back(t);
    for (uint32_t dep : g[t]->reads.tags) {
      if (colour[dep] == 1) {
        auto at = std::find(stack.begin(), stack.end(), dep);
        for (; at != stack.end(); ++at) cycle += Cat(g[*at]->name, " -> ");
        cycle += g[dep]->name;
        return true;
      }
      if (colour[dep] == 0 && visit(dep)) return true;
    }
    stack.pop_back();
    colour[t] = 2;
    return false;
  };
  std::vector<uint32_t> ids;
  for (const auto& [t, d] : g) ids.push_back(t);
  std::sort(ids.begin(), ids.end());
  for (uint32_t t : ids)
    if (colour[t] == 0 && visit(t)) return absl::InvalidArgumentError(Cat("tag cycle: ", cycle));
  return absl::OkStatus();
}

void TagEngine::Reorder() {
  // Topological order, ties by id, so the order (and the feed) is deterministic.
  std::vector<uint32_t> ids;
  for (uint32_t t = 0; t < defs_.size(); ++t)
    if (defs_[t]) ids.push_back(t);
  order_.clear();
  absl::flat_hash_set<uint32_t> placed;
  while (order_.size() < ids.size()) {
    for (uint32_t t : ids) {
      if (placed.contains(t)) continue;
      bool ready = true;
      for (uint32_t dep : defs_[t]->reads.tags) ready &= placed.contains(dep);
      if (!ready) continue;
      placed.insert(t);
      order_.push_back(t);
      // Reading a time-dependent tag makes a tag time-dependent.
      for (uint32_t dep : defs_[t]->reads.tags) defs_[t]->time_dependent |= defs_[dep]->time_dependent;
    }
  }
}

absl::StatusOr<std::string> TagEngine::Define(std::string_view text, int64_t now) {
  if (auto st = json::CheckSyntax(text, "tag definitions"); !st.ok()) return st;
  dom::parser parser;
  dom::element root;
  if (parser.parse(text).get(root) != simdjson::SUCCESS)
    return absl::InvalidArgumentError("tag definitions: not a JSON document");
  std::vector<std::unique_ptr<Def>> incoming;
  Parser ps{store_, lim_, {}};
  dom::array arr;
  if (root.get(arr) == simdjson::SUCCESS) {
    size_t i = 0;
    for (dom::element el : arr) {
      ps.path = Cat("tags[", i++, "]");
      auto d = ps.One(el);
      if (!d.ok()) return d.status();
      incoming.push_back(std::move(*d));
    }
  } else {
    ps.path = "tag";
    auto d = ps.One(root);
    if (!d.ok()) return d.status();
    incoming.push_back(std::move(*d));
  }
  if (incoming.empty()) return absl::InvalidArgumentError("tag definitions: an empty list");
  absl::flat_hash_set<uint32_t> seen;
  for (const auto& d : incoming)
    if (!seen.insert(d->id).second)
      return absl::InvalidArgumentError(Cat("tag definitions: ", d->name, " is defined twice"));
  size_t after = order_.size();
  for (const auto& d : incoming)
    if (d->id >= defs_.size() || !defs_[d->id]) ++after;
  if (after > max_tags_)
    return absl::ResourceExhaustedError(Cat("tag definitions: ", after, " tags would pass limits.max_tags (", max_tags_, ")"));
  // A tag read by an incoming definition must exist: report it by name.
  for (const auto& d : incoming)
    for (uint32_t dep : d->reads.tags) {
      bool known = (dep < defs_.size() && defs_[dep]) || seen.contains(dep);
      if (!known) {
        return absl::InvalidArgumentError(Cat("tag ", d->name, " reads tags.", store_.TagName(dep),
                                              ", which is not defined: define it first, or in the same call"));
      }
    }
  if (auto st = CheckCycles(incoming); !st.ok()) return st;

  // Install, then evaluate what changed and every tag that reads it, over every person.
  absl::flat_hash_set<uint32_t> stale;
  std::vector<std::pair<uint32_t, int64_t>> versions;
  for (auto& d : incoming) {
    uint32_t id = d->id;
    if (id >= defs_.size()) {
      defs_.resize(id + 1);
      columns_.resize(id + 1);
    }
    auto col = std::make_unique<Column>();
    col->shape = d->shape;
    col->kind = d->value_kind;
    columns_[id] = std::move(col);
    defs_[id] = std::move(d);
    stale.insert(id);
  }
  Reorder();
  for (bool grew = true; grew;) {
    grew = false;
    for (uint32_t t : order_)
      if (!stale.contains(t))
        for (uint32_t dep : defs_[t]->reads.tags)
          if (stale.contains(dep)) {
            stale.insert(t);
            grew = true;
            break;
          }
  }
  const uint32_t slots = store_.slots();
  if (due_.size() < slots) due_.resize(slots, kForever);
  std::vector<uint8_t> dirty(order_.size());
  for (size_t i = 0; i < order_.size(); ++i) dirty[i] = stale.contains(order_[i]);

  // rfm by quantiles: the cut points come from the population as it is now.
  for (uint32_t t : order_) {
    Def& d = *defs_[t];
    if (d.kind != Kind::kRfm || !d.rfm.quantiles || !stale.contains(t)) continue;
    std::array<std::vector<double>, 3> vals;
    for (uint32_t s = 0; s < slots; ++s) {
      if (!store_.AtSlot(s)) continue;
      TaggedView view(*this, s);
      for (int k = 0; k < 3; ++k) {
        auto r = scratch_->ev.Eval(d.exprs[k], view, now);
        double x;
        if (r.ok() && AsNumber(r->value, x)) vals[k].push_back(x);
      }
    }
    for (int k = 0; k < 3; ++k) {
      auto& v = vals[k];
      std::sort(v.begin(), v.end());
      d.rfm.cuts[k].clear();
      if (v.empty()) continue;
      for (uint32_t q = 1; q < d.rfm.levels; ++q) {
        double c = v[std::min(v.size() - 1, v.size() * q / d.rfm.levels)];
        if (d.rfm.cuts[k].empty() || c > d.rfm.cuts[k].back()) d.rfm.cuts[k].push_back(c);
      }
    }
  }
  // Evaluation is ordered by dependency within each person, and every person is
  // independent, so one pass over the slots evaluates all stale tags.
  std::vector<uint64_t> changed(defs_.size(), 0);
  universe_ = Bitmap();
  for (uint32_t s = 0; s < slots; ++s) {
    if (!store_.AtSlot(s)) continue;
    universe_.add(s);
    EvaluateSlot(s, dirty, now, /*feed=*/false, /*all_time=*/false);
    for (uint32_t t : order_)
      if (scratch_->changed[t]) changed[t]++;
  }
  universe_.runOptimize();
  for (auto& c : columns_)
    if (c) {
      for (Bitmap& b : c->by_code) b.runOptimize();
      for (Bitmap& b : c->slices) b.runOptimize();
      c->exists.runOptimize();
    }

  std::string out;
  json::Writer w(out);
  w.BeginObject().Key("defined").BeginArray();
  for (uint32_t t : order_) {
    if (!stale.contains(t)) continue;
    const Def& d = *defs_[t];
    w.BeginObject();
    w.Key("name").String(d.name);
    w.Key("version").Int(d.version);
    w.Key("persons").Uint(columns_[t]->with_value);
    w.Key("changed").Uint(changed[t]);
    w.EndObject();
    FeedEvent& e = feed_.Append(FeedEvent::Kind::kTagDefined);
    e.ts = now;
    e.count = static_cast<uint32_t>(std::min<int64_t>(d.version, UINT32_MAX));
    e.a = columns_[t]->with_value;
    e.b = changed[t];
    e.text = feed_.AddText(d.name);
  }
  w.EndArray().EndObject();
  return out;
}

absl::Status TagEngine::Drop(std::string_view name) {
  int64_t t = Find(name);
  if (t < 0) return absl::NotFoundError(Cat("tag ", name, " is not defined"));
  for (uint32_t o : order_)
    for (uint32_t dep : defs_[o]->reads.tags)
      if (dep == t && o != t)
        return absl::FailedPreconditionError(Cat("tag ", name, " is read by tag ", defs_[o]->name, ": drop or redefine it first"));
  FeedEvent& e = feed_.Append(FeedEvent::Kind::kTagDropped);
  e.count = static_cast<uint32_t>(std::min<int64_t>(defs_[t]->version, UINT32_MAX));
  e.text = feed_.AddText(std::string(name));
  defs_[t].reset();
  columns_[t].reset();
  Reorder();
  return absl::OkStatus();
}

void TagEngine::Schedule(uint32_t slot, int64_t due) {
  if (due_.size() <= slot) due_.resize(slot + 1, kForever);
  if (due_[slot] == due) return;  // its heap entry stands
  due_[slot] = due;
  if (due == kForever) return;
  heap_.emplace_back(due, slot);
  std::push_heap(heap_.begin(), heap_.end(), std::greater<>());
}

void TagEngine::Clear(uint32_t slot) {
  universe_.remove(slot);
  for (uint32_t t : order_) columns_[t]->Clear(slot);
  if (slot < due_.size()) due_[slot] = kForever;
}

uint32_t TagEngine::EvaluateSlot(uint32_t slot, const std::vector<uint8_t>& dirty, int64_t now, bool feed,
                                 bool all_time) {
  Scratch& sc = *scratch_;
  sc.changed.assign(defs_.size(), 0);
  TaggedView view(*this, slot);
  int64_t due = all_time || slot >= due_.size() ? kForever : due_[slot];
  uint32_t n = 0;
  for (size_t i = 0; i < order_.size(); ++i) {
    const uint32_t t = order_[i];
    const Def& d = *defs_[t];
    bool go = dirty[i];
    if (!go)
      for (uint32_t dep : d.reads.tags) go |= sc.changed[dep] != 0;
    if (!go) continue;
    Column& col = *columns_[t];
    // The old value stays readable after Set: codes and lists are interned for good.
    const Value before = feed ? col.Get(slot) : Value();
    Out o = Evaluate(d, view, now, sc, store_.Zone(), store_);
    evaluations_++;
    due = std::min(due, o.vu);
    if (!col.Set(slot, o.v)) continue;
    sc.changed[t] = 1;
    ++n;
    if (!feed) continue;
    FeedEvent& e = feed_.Append(FeedEvent::Kind::kTagChanged);
    e.ts = now;
    e.a = view.profile() ? view.profile()->oneid : 0;
    e.count = static_cast<uint32_t>(std::min<int64_t>(d.version, UINT32_MAX));
    std::string text;
    json::Writer w(text);
    w.BeginObject();
    w.Key("tag").String(d.name);
    std::string before_text;
    AppendValueJson(before_text, before);
    w.Key("from").Raw(before_text);
    std::string after;
    AppendValueJson(after, col.Get(slot));
    w.Key("to").Raw(after);
    w.Key("reason");
    switch (d.kind) {
      case Kind::kRule:
        if (d.rules.empty()) w.String("condition");
        else w.String(o.reason >= 0 ? Cat("rules[", o.reason, "]") : d.has_default ? "default" : "no rule matched");
        break;
      case Kind::kBucket:
        w.String(o.reason >= 0 ? Cat("buckets[", o.reason, "]") : d.has_default ? "default" : "no bucket matched");
        break;
      case Kind::kRfm:
        w.String(o.reason >= 0 ? Cat("R", o.reason / 100, " F", o.reason / 10 % 10, " M", o.reason % 10) : "no score");
        break;
      case Kind::kImport: {
        std::string_view src = "";
        if (const Profile* p = view.profile())
          for (const AttrValue& a : p->attrs)
            if (a.attr == d.import_attr) src = store_.SourceName(a.source);
        w.String(Cat("imported from ", src));
        break;
      }
      default:
        w.String(Cat("evaluated (", tags::KindName(d.kind), ")"));
    }
    w.EndObject();
    e.text = feed_.AddText(std::move(text));
  }
  Schedule(slot, due);
  return n;
}

void TagEngine::Update(int64_t now, std::vector<uint32_t>* freed_out) {
  std::vector<ProfileChange> changed;
  std::vector<uint32_t> freed;
  store_.TakeChanges(changed, freed);
  if (order_.empty()) {
    for (uint32_t s : freed) universe_.remove(s);
    for (const ProfileChange& c : changed) universe_.add(c.slot);
    if (freed_out) freed_out->swap(freed);
    return;
  }
  for (uint32_t s : freed) Clear(s);
  std::vector<uint8_t> dirty(order_.size());
  for (const ProfileChange& c : changed) {
    if (!store_.AtSlot(c.slot)) continue;
    universe_.add(c.slot);
    for (size_t i = 0; i < order_.size(); ++i) {
      const tags::ReadSet& r = defs_[order_[i]]->reads;
      auto meets = [](const std::vector<uint32_t>& a, const std::vector<uint32_t>& b) {
        for (size_t x = 0, y = 0; x < a.size() && y < b.size();) {
          if (a[x] == b[y]) return true;
          a[x] < b[y] ? ++x : ++y;
        }
        return false;
      };
      // A new record always moves person.last_seen, so person.* readers are affected.
      dirty[i] = c.all || r.person || (r.any_event && !c.events.empty()) || meets(r.attrs, c.attrs) ||
                 meets(r.events, c.events);
    }
    EvaluateSlot(c.slot, dirty, now, /*feed=*/true, /*all_time=*/false);
  }
  if (freed_out) freed_out->swap(freed);
}

uint32_t TagEngine::Forget(std::span<const uint64_t> oneids) {
  uint32_t n = 0;
  for (uint64_t id : oneids) {
    const int64_t slot = store_.SlotOf(id);
    if (slot < 0) continue;
    Clear(static_cast<uint32_t>(slot));
    ++n;
  }
  for (uint32_t t : order_) columns_[t]->WipeUnheld();
  // Stale entries would surface and be dropped by Advance anyway, so removing them
  // changes no outcome; a cleared slot's entries are among them.
  std::erase_if(heap_, [&](const std::pair<int64_t, uint32_t>& e) {
    return e.second >= due_.size() || due_[e.second] != e.first;
  });
  std::make_heap(heap_.begin(), heap_.end(), std::greater<>());
  // The last evaluation's texts (an rfm group, an import's JSON) may be the person's.
  for (std::string& s : scratch_->texts) WipeString(s);
  return n;
}

void TagEngine::StatesChanged(const std::vector<uint64_t>& oneids, int64_t now) {
  std::vector<uint8_t> dirty(order_.size());
  bool any = false;
  for (size_t i = 0; i < order_.size(); ++i) any |= (dirty[i] = defs_[order_[i]]->reads.state);
  if (!any) return;
  std::vector<uint32_t> slots;
  for (uint64_t id : oneids)
    if (int64_t s = store_.SlotOf(id); s >= 0) slots.push_back(static_cast<uint32_t>(s));
  std::sort(slots.begin(), slots.end());
  slots.erase(std::unique(slots.begin(), slots.end()), slots.end());
  for (uint32_t slot : slots)
    if (store_.AtSlot(slot)) EvaluateSlot(slot, dirty, now, /*feed=*/true, /*all_time=*/false);
}

TagEngine::AdvanceStats TagEngine::Advance(int64_t now) {
  AdvanceStats st;
  std::vector<uint32_t> due;
  while (!heap_.empty() && heap_.front().first <= now) {
    std::pop_heap(heap_.begin(), heap_.end(), std::greater<>());
    auto [t, slot] = heap_.back();
    heap_.pop_back();
    if (slot < due_.size() && due_[slot] == t) due.push_back(slot);
  }
  std::sort(due.begin(), due.end());
  due.erase(std::unique(due.begin(), due.end()), due.end());
  std::vector<uint8_t> dirty(order_.size());
  for (size_t i = 0; i < order_.size(); ++i) dirty[i] = defs_[order_[i]]->time_dependent;
  for (uint32_t slot : due) {
    if (!store_.AtSlot(slot)) continue;
    st.persons++;
    st.changed += EvaluateSlot(slot, dirty, now, /*feed=*/true, /*all_time=*/true);
  }
  // Stale entries at the top are dropped so next is exact.
  while (!heap_.empty() && (heap_.front().second >= due_.size() || due_[heap_.front().second] != heap_.front().first)) {
    std::pop_heap(heap_.begin(), heap_.end(), std::greater<>());
    heap_.pop_back();
  }
  st.next = heap_.empty() ? kForever : heap_.front().first;
  return st;
}

std::string TagEngine::CatalogJson() const {
  std::string out;
  json::Writer w(out);
  w.BeginObject().Key("tags").BeginArray();
  for (uint32_t t : order_) {
    const Def& d = *defs_[t];
    const Column& c = *columns_[t];
    w.BeginObject();
    w.Key("name").String(d.name);
    w.Key("kind").String(tags::KindName(d.kind));
    w.Key("version").Int(d.version);
    w.Key("description").String(d.description);
    w.Key("type").String(d.value_kind == ValueKind::kList ? "list" : ValueKindName(d.value_kind));
    w.Key("index").String(tags::ShapeName(d.shape));
    w.Key("time_dependent").Bool(d.time_dependent);
    w.Key("reads").BeginArray();
    for (uint32_t dep : d.reads.tags) w.String(defs_[dep]->name);
    w.EndArray();
    w.Key("persons").Uint(c.with_value);
    if (d.shape != Shape::kNumber) w.Key("values").Uint(c.strings.size() - c.dead);
    if (d.kind == Kind::kRfm) {
      w.Key("cuts").BeginObject();
      static constexpr std::string_view kShort[3] = {"r", "f", "m"};
      for (int k = 0; k < 3; ++k) {
        w.Key(kShort[k]).BeginArray();
        for (double x : d.rfm.cuts[k]) w.Double(x);
        w.EndArray();
      }
      w.EndObject();
    }
    w.Key("definition").Raw(d.json);
    w.EndObject();
  }
  w.EndArray().EndObject();
  return out;
}

void TagEngine::AppendPersonTags(std::string& out, uint32_t slot) const {
  json::Writer w(out);
  w.BeginObject();
  for (uint32_t t : order_) {
    Value v = columns_[t]->Get(slot);
    if (v.is_null()) continue;
    w.Key(defs_[t]->name).BeginObject();
    std::string val;
    AppendValueJson(val, v);
    w.Key("value").Raw(val);
    w.Key("version").Int(defs_[t]->version);
    w.EndObject();
  }
  w.EndObject();
}

// --- evaluation per kind ----------------------------------------------------------------

namespace {

int Score3(double v, const std::vector<double>& cuts, bool lower_is_better) {
  int s = 1;
  for (double c : cuts) s += lower_is_better ? v <= c : v >= c;
  return s;
}

// Scans the events of a type in the last n days (all time when n is 0), calling f with
// each event and its local day; returns the earliest day seen (INT32_MAX if none).
template <typename F>
int32_t ScanWindow(const TaggedView& s, const TimeZone& z, uint32_t type, int32_t today, int32_t n, F&& f) {
  int64_t from = n > 0 ? z.DayStart(today - n + 1) : INT64_MIN;
  int32_t oldest = INT32_MAX;
  s.Scan(type, from, INT64_MAX, false, [&](const EventView& e) {
    int32_t day = z.DayOf(e.ts);
    oldest = std::min(oldest, day);
    f(e, day);
    return true;
  });
  return oldest;
}

Out Evaluate(const Def& d, const TaggedView& s, int64_t now, TagEngine::Scratch& sc, const TimeZone& zone,
             const ProfileStore& store) {
  Out o;
  auto eval = [&](const Expr& e) -> Value {
    auto r = sc.ev.Eval(e, s, now);
    if (!r.ok()) return Value();  // out of steps: the tag has no value for this person
    o.vu = std::min(o.vu, r->valid_until);
    return r->value;
  };
  switch (d.kind) {
    case Kind::kRule: {
      if (d.rules.empty()) {
        o.v = Value::Bool(IsTrue(eval(d.exprs[0])));
        return o;
      }
      for (size_t i = 0; i < d.rules.size(); ++i)
        if (IsTrue(eval(d.rules[i].when))) {
          o.v = Value::String(d.rules[i].value);
          o.reason = static_cast<int32_t>(i);
          return o;
        }
      if (d.has_default) o.v = Value::String(d.default_value);
      return o;
    }
    case Kind::kStatistic:
      o.v = eval(d.exprs[0]);
      return o;
    case Kind::kBucket: {
      double x;
      if (AsNumber(eval(d.exprs[0]), x))
        for (size_t i = 0; i < d.buckets.size(); ++i)
          if (x >= d.buckets[i].min && x < d.buckets[i].max) {
            o.v = Value::String(d.buckets[i].value);
            o.reason = static_cast<int32_t>(i);
            return o;
          }
      if (d.has_default) o.v = Value::String(d.default_value);
      return o;
    }
    case Kind::kRfm: {
      int sc3[3];
      for (int k = 0; k < 3; ++k) {
        double x;
        if (!AsNumber(eval(d.exprs[k]), x)) {
          if (d.has_default) o.v = Value::String(d.default_value);
          return o;
        }
        sc3[k] = Score3(x, d.rfm.cuts[k], k == 0);
      }
      o.reason = sc3[0] * 100 + sc3[1] * 10 + sc3[2];
      if (d.rfm.groups.empty()) {
        sc.texts.resize(1);
        sc.texts[0] = Cat("R", sc3[0], "F", sc3[1], "M", sc3[2]);
        o.v = Value::String(sc.texts[0]);
        return o;
      }
      for (const auto& g : d.rfm.groups) {
        bool in = true;
        for (int k = 0; k < 3; ++k) in &= sc3[k] >= g.range[k].first && sc3[k] <= g.range[k].second;
        if (in) {
          o.v = Value::String(g.value);
          return o;
        }
      }
      if (d.has_default) o.v = Value::String(d.default_value);
      return o;
    }
    case Kind::kPreference: {
      const auto& p = d.pref;
      const int32_t today = zone.DayOf(now);
      sc.weights.clear();
      int32_t oldest = INT32_MAX;
      for (uint32_t type : p.events) {
        oldest = std::min(oldest, ScanWindow(s, zone, type, today, p.window.last_days, [&](const EventView& e, int32_t day) {
          Value v = s.Prop(e, p.prop);
          if (v.kind != ValueKind::kString || v.len == 0) return;
          double w = p.weight_amount ? static_cast<double>(e.amount) : 1.0;
          if (p.half_life_days > 0) w *= std::exp2(-(today - day) / p.half_life_days);
          sc.weights[v.str()] += w;
        }));
      }
      if (p.window.last_days > 0 && oldest != INT32_MAX)
        o.vu = std::min(o.vu, LeaveTime(zone, oldest, p.window.last_days));
      if (sc.weights.empty()) return o;
      sc.ranked.assign(sc.weights.begin(), sc.weights.end());
      std::sort(sc.ranked.begin(), sc.ranked.end(), [](const auto& a, const auto& b) {
        return a.second != b.second ? a.second > b.second : a.first < b.first;
      });
      // Non-positive weights (refunds weighted by amount) are not a preference.
      while (!sc.ranked.empty() && !(sc.ranked.back().second > 0)) sc.ranked.pop_back();
      if (sc.ranked.empty()) return o;
      if (p.top == 1) {
        o.v = Value::String(sc.ranked[0].first);
        return o;
      }
      sc.list.clear();
      for (size_t i = 0; i < sc.ranked.size() && i < p.top; ++i) sc.list.push_back(Value::String(sc.ranked[i].first));
      o.v = Value::List(sc.list.data(), static_cast<uint32_t>(sc.list.size()));
      return o;
    }
    case Kind::kScore: {
      const auto& p = d.score;
      const int32_t today = zone.DayOf(now);
      double total = 0;
      int64_t itotal = 0;
      int32_t oldest = INT32_MAX;
      bool any = false;
      for (const auto& r : p.rules) {
        int64_t period = INT64_MIN, used = 0;
        oldest = std::min(oldest, ScanWindow(s, zone, r.event, today, p.window.last_days, [&](const EventView&, int32_t day) {
          int64_t key = 0;
          switch (r.per) {
            case Def::ScoreRule::kDay: key = day; break;
            case Def::ScoreRule::kWeek: {  // weeks start on Monday; day 0 was a Thursday
              int64_t x = int64_t{day} + 3;
              key = x >= 0 ? x / 7 : -((-x + 6) / 7);
              break;
            }
            case Def::ScoreRule::kMonth: {
              int y, m, dd;
              CivilFromDays(day, y, m, dd);
              key = int64_t{y} * 12 + m;
              break;
            }
            default: break;
          }
          int64_t pts = r.points;
          if (r.per != Def::ScoreRule::kNone) {
            // Events of one type come in time order, so periods come in order too.
            if (key != period) period = key, used = 0;
            if (pts > 0) pts = std::min(pts, std::max<int64_t>(0, r.cap - used));
            used += pts > 0 ? pts : 0;
          }
          any = true;
          itotal += pts;
          total += p.half_life_days > 0 ? pts * std::exp2(-(today - day) / p.half_life_days) : static_cast<double>(pts);
        }));
      }
      if (!any) {
        o.v = p.half_life_days > 0 ? Value::Double(0) : Value::Int(0);
        return o;
      }
      if (p.window.last_days > 0 && oldest != INT32_MAX)
        o.vu = std::min(o.vu, LeaveTime(zone, oldest, p.window.last_days));
      if (p.half_life_days > 0) {
        o.vu = std::min(o.vu, zone.DayStart(today + 1));
        o.v = Value::Double(std::round(total * 100) / 100);
      } else {
        o.v = Value::Int(itotal);
      }
      return o;
    }
    case Kind::kImport: {
      Value v = s.Attr(d.import_attr);
      if (v.kind == ValueKind::kString || v.kind == ValueKind::kBool || v.is_null()) {
        o.v = v;
        return o;
      }
      sc.texts.resize(1);
      sc.texts[0].clear();
      AppendValueJson(sc.texts[0], v);
      o.v = Value::String(sc.texts[0]);
      (void)store;
      return o;
    }
  }
  return o;
}

}  // namespace

// --- snapshots ---

namespace {

// A pending re-evaluation (an entry of heap_) as saved: std::pair is not trivially
// copyable, and its padding would be uninitialised.
struct SavedTimer {
  int64_t due;
  uint32_t slot;
  uint32_t zero;
};

}  // namespace

void TagEngine::Save(snap::Writer& w) const {
  w.Part("tags");
  w.U64(evaluations_);
  // Definitions in dependency order, each as its JSON plus what defining it computed
  // that the JSON does not say: time dependence inherited from the tags it read (sticky:
  // Reorder only ever adds it) and rfm quantile cut points taken from the population then.
  w.U64(order_.size());
  for (uint32_t t : order_) {
    const Def& d = *defs_[t];
    w.U32(t);
    w.Str(d.json);
    w.Bool(d.time_dependent);
    for (const std::vector<double>& c : d.rfm.cuts) w.Vec(c);
    columns_[t]->Save(w);
  }
  SaveBitmap(w, universe_);
  w.Vec(due_);
  // The heap as it is, stale entries included (they surface and are dropped as in the
  // original), so Load needs no re-heapify: a million timers cost a copy, not a sort.
  std::vector<SavedTimer> timers(heap_.size());
  for (size_t i = 0; i < heap_.size(); ++i) timers[i] = {heap_[i].first, heap_[i].second, 0};
  w.Vec(timers);
}

absl::Status TagEngine::Load(snap::Reader& r) {
  if (!defs_.empty() || !universe_.isEmpty() || !due_.empty())
    return absl::FailedPreconditionError("TagEngine::Load needs a freshly constructed engine");
  if (!r.Part("tags")) return r.status();
  evaluations_ = r.U64();
  const uint32_t slots = store_.slots();
  // At least an id, the JSON's length, a flag and three cut lists' lengths each.
  const uint64_t n = r.Count(4 + 8 + 1 + 3 * 8);
  if (n > max_tags_) r.Fail(Cat(n, " tags, over limits.max_tags (", max_tags_, ")"));
  std::vector<std::unique_ptr<Def>> incoming;
  std::vector<std::unique_ptr<Column>> cols;
  std::vector<uint8_t> time_dependent;
  std::vector<uint32_t> saved_order;
  dom::parser parser;
  Parser ps{store_, lim_, {}};
  for (uint64_t i = 0; i < n && r.ok(); ++i) {
    const uint32_t id = r.U32();
    const std::string_view json = r.Str();
    const bool td = r.Bool();
    std::array<std::vector<double>, 3> cuts;
    for (auto& c : cuts) r.Vec(c);
    if (!r.ok()) break;
    // The same parse Define does, without its checks against the installed tags (the
    // set is checked whole below) and without evaluating anything.
    dom::element root;
    if (parser.parse(json).get(root) != simdjson::SUCCESS) {
      r.Fail(Cat("tag ", id, ": its definition is not JSON"));
      break;
    }
    ps.path = "tag";
    auto d = ps.One(root);
    if (!d.ok()) {
      r.Fail(Cat("tag ", id, ": ", d.status().message()));
      break;
    }
    if ((*d)->id != id) {
      r.Fail(Cat("tag ", (*d)->name, " was saved as tag ", id, " but is tag ", (*d)->id, " now"));
      break;
    }
    (*d)->rfm.cuts = std::move(cuts);
    auto col = std::make_unique<Column>();
    col->shape = (*d)->shape;
    col->kind = (*d)->value_kind;
    if (!col->Load(r, slots)) break;
    incoming.push_back(std::move(*d));
    cols.push_back(std::move(col));
    time_dependent.push_back(td);
    saved_order.push_back(id);
  }
  if (!r.ok()) return r.status();

  // What Define refuses cannot be in a snapshot, and Reorder relies on it.
  absl::flat_hash_set<uint32_t> ids;
  for (const auto& d : incoming)
    if (!ids.insert(d->id).second) r.Fail(Cat("tag ", d->name, " is saved twice"));
  for (const auto& d : incoming)
    for (uint32_t dep : d->reads.tags)
      if (!ids.contains(dep)) r.Fail(Cat("tag ", d->name, " reads tags.", store_.TagName(dep), ", which is not saved"));
  if (!r.ok()) return r.status();
  if (auto st = CheckCycles(incoming); !st.ok()) r.Fail(std::string(st.message()));
  if (!r.ok()) return r.status();
  for (size_t i = 0; i < incoming.size(); ++i) {
    const uint32_t id = incoming[i]->id;
    if (id >= defs_.size()) {
      defs_.resize(id + 1);
      columns_.resize(id + 1);
    }
    defs_[id] = std::move(incoming[i]);
    columns_[id] = std::move(cols[i]);
  }
  Reorder();
  if (order_ != saved_order) {
    r.Fail("the tags' dependency order differs from the saved one");
    return r.status();
  }
  for (size_t i = 0; i < order_.size(); ++i) defs_[order_[i]]->time_dependent = time_dependent[i];

  if (!LoadBitmap(r, universe_)) return r.status();
  if (!universe_.isEmpty() && universe_.maximum() >= slots) r.Fail("the universe holds a slot past the store's");
  r.Vec(due_);
  if (due_.size() > slots) r.Fail(Cat("due times for ", due_.size(), " slots, but the store has ", slots));
  std::vector<SavedTimer> timers;
  r.Vec(timers);
  if (!r.ok()) return r.status();
  heap_.resize(timers.size());
  for (size_t i = 0; i < timers.size(); ++i) {
    // Schedule sizes due_ before it pushes, so every entry's slot has a due time.
    if (timers[i].slot >= due_.size()) {
      r.Fail(Cat("a re-evaluation of slot ", timers[i].slot, ", past the due times"));
      return r.status();
    }
    heap_[i] = {timers[i].due, timers[i].slot};
  }
  if (!std::is_heap(heap_.begin(), heap_.end(), std::greater<>())) r.Fail("the re-evaluation queue is not a heap");
  return r.status();
}

}  // namespace cdp
