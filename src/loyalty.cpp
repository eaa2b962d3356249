// The loyalty part of the lifecycle (docs/loyalty.md): a points ledger of expiring lots,
// growth value, and member tiers.
//
// Every person in the program is a Member: a few totals, a small vector of lots sorted by
// (expiry, earning order) and at most one pending timer. Everything that happens without
// an event (a lot expiring, a lock ending, an override running out, a periodic or delayed
// downgrade) is a deadline derived from that state, so one timer per person is enough:
// it is set at the earliest deadline and, when it fires, every deadline up to its time is
// processed in order ("catching up"). Events and manual operations catch up to their own
// time first, so the ledger at an instant never depends on whether Advance ran before it.
//
// Amounts are exact: points are integers; per-yuan rates and multipliers are fixed point
// with four decimals, multiplied in 128 bits and rounded down once, so "1.2 × 100 yuan" is
// 120 points, never 119.
#include <algorithm>
#include <cmath>
#include <deque>
#include <optional>

#include "absl/container/flat_hash_map.h"
#include "expr_internal.hpp"
#include "life_internal.hpp"
#include "snapshot.hpp"
#include "tags_internal.hpp"
#include "util.hpp"

namespace cdp::life {
namespace {

namespace dom = simdjson::dom;

constexpr int16_t kNoTier = -1;
constexpr int64_t kScale = 10'000;               // fixed point of rates and multipliers
constexpr int64_t kMaxPoints = 1'000'000'000'000;  // one earning, spending or adjustment
constexpr uint16_t kNoState = 0xFFFF;

// --- the definition ---------------------------------------------------------------------

enum class ExpiryKind : uint8_t { kNever, kAfter, kMonthEnd, kYearEnd };

struct Expiry {
  ExpiryKind kind = ExpiryKind::kNever;
  int64_t n = 0;  // kAfter: ms; kMonthEnd / kYearEnd: whole months / years after the current one

  // The deadline of a lot earned at `earned`: the first instant it no longer counts.
  int64_t At(int64_t earned, const TimeZone& z) const {
    switch (kind) {
      case ExpiryKind::kNever: return kForever;
      case ExpiryKind::kAfter: return earned + n;
      case ExpiryKind::kMonthEnd:
      case ExpiryKind::kYearEnd: {
        int y, m, d;
        CivilFromDays(z.DayOf(earned), y, m, d);
        if (kind == ExpiryKind::kYearEnd) return z.DayStart(DaysFromCivil(int64_t{y} + 1 + n, 1, 1));
        int64_t months = int64_t{y} * 12 + (m - 1) + 1 + n;  // the month after, plus n
        return z.DayStart(DaysFromCivil(months / 12, static_cast<int>(months % 12) + 1, 1));
      }
    }
    return kForever;
  }
};

struct Rule {
  uint32_t name = 0;       // the rule's id in the name pool
  uint32_t type = 0;       // event type
  int64_t per_yuan = 0;    // ×kScale; 0: a fixed number of points
  int64_t points = 0;
  std::optional<Expr> when;
  std::vector<std::pair<std::string, std::vector<std::string>>> where;  // property → accepted values
  Expiry expires;
  int64_t lock = 0;
  bool multiply = false;
  uint32_t max_per_day = 0, max_total = 0;
};

enum class MetricKind : uint8_t { kGrowth, kPoints, kExpr };
enum class Mode : uint8_t { kNone, kOnDrop, kPeriodic };

enum EventFlag : uint8_t { kEarnsPoints = 1, kEarnsGrowth = 2, kRefunds = 4, kReads = 8 };

struct Level {
  uint32_t name;  // name pool id
  double min;
};

struct Program {
  std::string name;
  uint32_t machine = 0;
  std::string json;  // the definition, minified, for the catalog
  std::optional<Expr> enroll;
  std::vector<Rule> points, growth;
  std::vector<int64_t> tier_mult;  // by level, ×kScale
  int64_t birthday_mult = kScale;
  std::optional<Expr> birthday;    // the birthday attribute
  bool refund = false;
  uint32_t refund_type = 0;
  std::string ref_key;
  int64_t refund_within = 0;       // 0: refunds are accepted for ever
  std::vector<Level> levels;
  MetricKind metric = MetricKind::kGrowth;
  std::optional<Expr> metric_expr;
  Mode mode = Mode::kNone;
  int64_t every = 0;
  bool from_registration = false;
  int32_t max_steps = 1;
  int64_t min_dwell = 0;
  std::vector<uint8_t> flags;  // by event type: EventFlag bits
  bool any_event = false;      // the metric or the enrolment guard reads events of any type
};

// --- per person -------------------------------------------------------------------------

struct Lot {
  int64_t points;        // as earned
  int64_t remaining;     // still in the balance
  int64_t spent;         // drawn by spending (or paid to a debt): what a refund claws back
  int64_t earned_at, expires_at;
  int64_t locked_until;  // 0: spendable
  uint64_t seq;          // earning order, engine-wide
  uint32_t rule;         // name pool id of the rule or the operation's reason
  std::string ref;       // the order it came from, for refunds
};

struct GrowthRef {
  int64_t at;
  int64_t value;
  std::string ref;
};

struct Cap {
  uint32_t rule;
  int32_t day;
  uint32_t today, total;
};

enum class OverrideKind : uint8_t { kNone, kFloor, kCeiling, kPin };

struct Override {
  OverrideKind kind = OverrideKind::kNone;
  int16_t level = kNoTier;
  int64_t until = kForever;
};

struct Member {
  std::vector<Lot> lots;  // by (expires_at, seq)
  std::vector<GrowthRef> growth_refs;
  std::vector<Cap> caps;
  int64_t growth = 0, debt = 0;
  int64_t enrolled = 0;
  int64_t earned_since = 0, tier_since = 0;
  int64_t next_eval = kForever;  // periodic downgrade
  int64_t dwell_at = kForever;   // a downgrade on drop waiting for the minimum dwell
  int64_t unlock_at = kForever;  // the earliest lock to end (may be early: then it finds none)
  int64_t wake_at = kForever;    // the pending timer
  double metric = 0;             // at the last evaluation
  uint32_t gen = 0;
  int16_t earned = kNoTier;      // what the rules give
  int16_t tier = kNoTier;        // with the override: what state.<name> reads
  bool redefined = false;        // woken by a redefinition
  Override ov;
};

struct Totals {
  int64_t balance = 0, available = 0, locked = 0;
};

Totals Sum(const Member& m) {
  Totals t;
  for (const Lot& l : m.lots) {
    t.balance += l.remaining;
    (l.locked_until ? t.locked : t.available) += l.remaining;
  }
  return t;
}

// "1.2" for 12000 at kScale.
std::string Scaled(int64_t v) {
  std::string s = std::to_string(v / kScale);
  int64_t frac = v % kScale;
  if (frac == 0) return s;
  std::string f = std::to_string(frac + kScale).substr(1);
  while (f.back() == '0') f.pop_back();
  return Cat(s, ".", f);
}

void MetricValue(json::Writer& w, double v) {
  if (std::nearbyint(v) == v && std::fabs(v) < 9e15) {
    w.Int(static_cast<int64_t>(v));
  } else {
    std::string s;
    expr::AppendDouble(s, v);
    w.Raw(s);
  }
}

void TimeOrNull(json::Writer& w, int64_t ms) {
  if (ms == kForever || ms == 0) w.Null(); else w.Int(ms);
}

// --- reading definitions ------------------------------------------------------------------

absl::Status OnlyKeys(dom::object o, std::string_view path, std::initializer_list<std::string_view> keys) {
  for (auto [k, v] : o) {
    (void)v;
    if (std::find(keys.begin(), keys.end(), k) == keys.end()) {
      std::string known;
      for (std::string_view x : keys) known += known.empty() ? x : Cat(", ", x);
      return Bad(Cat(path, ".", k), Cat("unknown key (expected ", known, ")"));
    }
  }
  return absl::OkStatus();
}

// A positive decimal (rate or multiplier) to fixed point.
absl::Status Decimal(dom::element v, std::string_view path, double max, int64_t& out) {
  double d;
  if (v.get(d) != simdjson::SUCCESS || !(d > 0) || d > max)
    return Bad(path, Cat("expected a number above 0 and at most ", static_cast<int64_t>(max)));
  out = std::llround(d * kScale);
  if (out == 0) return Bad(path, "finer than 0.0001");
  return absl::OkStatus();
}

absl::Status Count(dom::element v, std::string_view path, int64_t lo, int64_t hi, int64_t& out) {
  if (v.get(out) != simdjson::SUCCESS || out < lo || out > hi)
    return Bad(path, Cat("expected an integer from ", lo, " to ", hi));
  return absl::OkStatus();
}

absl::Status ReadExpiry(dom::element v, std::string_view path, Expiry& out) {
  static constexpr std::string_view kWhat =
      "expected \"never\", a duration (\"365d\"), \"month_end\", \"year_end\", {\"after\": duration}, "
      "{\"month_end\": n} or {\"year_end\": n}";
  std::string_view s;
  dom::object o;
  if (v.get(s) == simdjson::SUCCESS) {
    if (s == "never") { out = {ExpiryKind::kNever, 0}; return absl::OkStatus(); }
    if (s == "month_end") { out = {ExpiryKind::kMonthEnd, 0}; return absl::OkStatus(); }
    if (s == "year_end") { out = {ExpiryKind::kYearEnd, 0}; return absl::OkStatus(); }
  } else if (v.get(o) == simdjson::SUCCESS) {
    if (o.size() != 1) return Bad(path, kWhat);
    auto [k, x] = *o.begin();
    out.kind = k == "after" ? ExpiryKind::kAfter : k == "month_end" ? ExpiryKind::kMonthEnd
             : k == "year_end" ? ExpiryKind::kYearEnd : ExpiryKind::kNever;
    if (out.kind == ExpiryKind::kNever) return Bad(path, kWhat);
    if (out.kind != ExpiryKind::kAfter) return Count(x, Cat(path, ".", k), 0, 100, out.n);
    v = x;
  } else if (int64_t n; v.get(n) != simdjson::SUCCESS) {
    return Bad(path, kWhat);
  }
  out.kind = ExpiryKind::kAfter;
  if (auto st = Core::Duration(v, path, out.n); !st.ok()) return Bad(path, kWhat);
  if (out.n == 0) return Bad(path, "a lot that expires when earned: use a longer duration");
  return absl::OkStatus();
}

// --- the part -----------------------------------------------------------------------------

class LoyaltyPart final : public Part {
 public:
  using Part::Part;

  std::string_view section() const override { return "loyalty"; }
  bool Owns(std::string_view kind) const override { return kind == "loyalty"; }
  bool empty() const override { return def_ == nullptr; }

  absl::StatusOr<Installer> Prepare(dom::element root, int64_t now) override;
  absl::Status Drop(std::string_view name) override;

  bool Handles(std::string_view op) const override {
    return op == "earn" || op == "spend" || op == "adjust" || op == "refund" || op == "tier";
  }
  absl::Status Apply(std::string_view op, dom::object req, Ix p, int64_t now, json::Writer& out) override;

  void OnEvent(Ix p, const LifeEvent& e) override;
  void Fire(const Timer& t) override;
  void Merge(Ix survivor, Ix absorbed, int64_t now) override;
  void Clear(Ix p) override {
    if (p < members_.size() && members_[p]) {
      members_[p].reset();
      members_count_--;
    }
  }
  void Forget(Ix p) override;

  void AppendPerson(json::Writer& w, Ix p) const override;
  void AppendCatalog(json::Writer& w) const override;
  bool StateOf(uint32_t machine, Ix p, Value& out) const override {
    if (!def_ || machine != def_->machine) return false;
    const Member* m = Get(p);
    out = m && m->tier != kNoTier ? Value::String(names_[def_->levels[m->tier].name]) : Value();
    return true;
  }
  std::string_view StateName(uint32_t machine, uint16_t s) const override {
    if (machine != named_machine_ || s >= level_names_.size()) return {};
    return names_[level_names_[s]];
  }
  uint64_t bytes() const override;
  void Save(snap::Writer& w) const override;
  absl::Status Load(snap::Reader& r) override;

 private:
  // Names of rules, reasons and levels: interned once and never moved, so their views (and
  // the Values StateOf hands out, always a definition's) stay valid across redefinitions.
  uint32_t Name(std::string_view s) {
    auto it = name_ids_.find(s);
    if (it != name_ids_.end()) return it->second;
    names_.emplace_back(s);
    defined_.push_back(0);  // until a definition naming it is installed
    uint32_t id = static_cast<uint32_t>(names_.size() - 1);
    name_ids_.emplace(names_.back(), id);
    return id;
  }
  // Overwrites the reasons no lot or cap names any more (see Forget).
  void SweepNames();
  Member* Get(Ix p) { return p < members_.size() ? members_[p].get() : nullptr; }
  const Member* Get(Ix p) const { return p < members_.size() ? members_[p].get() : nullptr; }
  Member& Enroll(Ix p, int64_t ts);

  absl::StatusOr<std::vector<Rule>> ReadRules(dom::element v, const std::string& path, bool points);
  absl::StatusOr<std::shared_ptr<Program>> Read(dom::element v, dom::object o);

  // Deadlines.
  int64_t NextDeadline(const Member& m) const;
  void CatchUp(Ix p, Member& m, int64_t t);
  void Reschedule(Ix p, Member& m);
  void Compact(Member& m, int64_t now) const;

  // The ledger.
  void AddLot(Ix p, Member& m, Lot lot, std::string_view op, int64_t multiplier);
  // Takes up to `want` points out of the balance, earliest-expiring first; spendable lots
  // only when spending. Returns what it took.
  int64_t Draw(Member& m, int64_t want, bool spending);
  void Refund(Ix p, Member& m, std::string_view ref, int64_t ts, std::string_view reason, json::Writer* out);
  void Earn(Ix p, Member& m, const Rule& r, const LifeEvent& e, bool points, std::string& scratch);
  int64_t BirthdayMultiplier(Ix p, int64_t ts);
  void FeedPoints(Ix p, Member& m, int64_t ts, std::string_view op, std::string_view ledger, int64_t points,
                  std::string_view reason, absl::FunctionRef<void(json::Writer&)> extra);

  // Tiers.
  bool Metric(Ix p, const Member& m, int64_t ts, double& out);
  double MetricNow(const Member& m) const;
  int16_t LevelFor(double metric) const;
  int16_t Effective(const Member& m) const;
  int64_t NextEval(int64_t anchor, int64_t t) const {
    int64_t every = def_->every;
    if (t < anchor) return anchor + every;
    return anchor + ((t - anchor) / every + 1) * every;
  }
  void Evaluate(Ix p, Member& m, int64_t ts, Reason why, uint32_t cause, bool periodic, bool allow_down = true);
  void SetTier(Ix p, Member& m, int16_t to, int64_t ts, Reason why, uint32_t cause);
  void WriteOverride(json::Writer& w, const Member& m) const;

  std::shared_ptr<const Program> def_;
  std::vector<std::unique_ptr<Member>> members_;  // by Ix
  uint64_t members_count_ = 0;
  uint64_t lot_seq_ = 0;
  uint32_t gen_ = 0;
  // A forgotten reason stays in its place as an empty string (ids are places), out of
  // name_ids_; no name is empty otherwise.
  std::deque<std::string> names_;
  // By name id: named by an installed definition, so never forgotten (not saved: Load
  // derives it from the definitions it installs again).
  std::vector<uint8_t> defined_;
  absl::flat_hash_map<std::string_view, uint32_t> name_ids_;
  // The tier names of the latest definition, kept after a drop so history still reads.
  uint32_t named_machine_ = 0xFFFFFFFFu;
  std::vector<uint32_t> level_names_;
  std::string scratch_;
};

// --- definitions --------------------------------------------------------------------------

absl::StatusOr<std::vector<Rule>> LoyaltyPart::ReadRules(dom::element v, const std::string& path, bool points) {
  dom::array a;
  if (v.get(a) != simdjson::SUCCESS) return Bad(path, "expected an array of earning rules");
  std::vector<Rule> out;
  size_t i = 0;
  for (dom::element x : a) {
    std::string at = Cat(path, "[", i++, "]");
    dom::object o;
    if (x.get(o) != simdjson::SUCCESS) return Bad(at, "expected an earning rule object");
    if (points) {
      if (auto st = OnlyKeys(o, at, {"id", "description", "on", "per_yuan", "points", "when", "where", "expires",
                                     "lock", "multiply", "max_per_day", "max_total"});
          !st.ok())
        return st;
    } else if (auto st = OnlyKeys(o, at, {"id", "description", "on", "per_yuan", "points", "when", "where",
                                          "max_per_day", "max_total"});
               !st.ok()) {
      return st;
    }
    Rule r;
    std::string_view id, on;
    if (o["id"].get(id) != simdjson::SUCCESS || id.empty()) return Bad(Cat(at, ".id"), "expected the rule's name");
    for (const Rule& q : out)
      if (names_[q.name] == id) return Bad(Cat(at, ".id"), Cat("\"", id, "\" is used twice"));
    if (o["on"].get(on) != simdjson::SUCCESS || on.empty())
      return Bad(Cat(at, ".on"), "expected the event type that earns");
    r.name = Name(id);
    r.type = core_.store.EventType(on);
    dom::element e;
    bool rate = o["per_yuan"].get(e) == simdjson::SUCCESS;
    if (rate) {
      if (auto st = Decimal(e, Cat(at, ".per_yuan"), 1e6, r.per_yuan); !st.ok()) return st;
    }
    if (o["points"].get(e) == simdjson::SUCCESS) {
      if (rate) return Bad(at, "\"per_yuan\" or \"points\", not both");
      if (auto st = Count(e, Cat(at, ".points"), 1, kMaxPoints, r.points); !st.ok()) return st;
    } else if (!rate) {
      return Bad(at, "expected \"per_yuan\" (points per yuan of the event's amount) or \"points\" (fixed)");
    }
    if (o["when"].get(e) == simdjson::SUCCESS) {
      auto w = core_.Compile(e, Cat(at, ".when"));
      if (!w.ok()) return w.status();
      r.when = std::move(*w);
    }
    if (o["where"].get(e) == simdjson::SUCCESS) {
      dom::object wo;
      if (e.get(wo) != simdjson::SUCCESS) return Bad(Cat(at, ".where"), "expected {\"property\": value or [values]}");
      for (auto [k, val] : wo) {
        std::string kp = Cat(at, ".where.", k);
        std::vector<std::string> accepted;
        auto one = [&](dom::element y) {
          std::string_view s;
          int64_t n;
          if (y.get(s) == simdjson::SUCCESS) accepted.emplace_back(s);
          else if (y.get(n) == simdjson::SUCCESS) accepted.push_back(std::to_string(n));
          else return false;
          return true;
        };
        dom::array va;
        bool ok = val.get(va) == simdjson::SUCCESS ? va.size() > 0 : one(val);
        if (val.get(va) == simdjson::SUCCESS)
          for (dom::element y : va) ok = ok && one(y);
        if (!ok) return Bad(kp, "expected a string or integer, or a non-empty array of them");
        r.where.emplace_back(std::string(k), std::move(accepted));
      }
    }
    if (o["expires"].get(e) == simdjson::SUCCESS) {
      if (auto st = ReadExpiry(e, Cat(at, ".expires"), r.expires); !st.ok()) return st;
    }
    if (o["lock"].get(e) == simdjson::SUCCESS) {
      if (auto st = Core::Duration(e, Cat(at, ".lock"), r.lock); !st.ok()) return st;
    }
    // Multipliers reward spending; a fixed bonus (following, signing in) stays as stated
    // unless the rule asks for them.
    r.multiply = points && rate;
    if (o["multiply"].get(e) == simdjson::SUCCESS && e.get(r.multiply) != simdjson::SUCCESS)
      return Bad(Cat(at, ".multiply"), "expected true or false");
    int64_t n;
    if (o["max_per_day"].get(e) == simdjson::SUCCESS) {
      if (auto st = Count(e, Cat(at, ".max_per_day"), 1, 1'000'000, n); !st.ok()) return st;
      r.max_per_day = static_cast<uint32_t>(n);
    }
    if (o["max_total"].get(e) == simdjson::SUCCESS) {
      if (auto st = Count(e, Cat(at, ".max_total"), 1, 1'000'000'000, n); !st.ok()) return st;
      r.max_total = static_cast<uint32_t>(n);
    }
    out.push_back(std::move(r));
  }
  return out;
}

absl::StatusOr<std::shared_ptr<Program>> LoyaltyPart::Read(dom::element v, dom::object o) {
  auto g = std::make_shared<Program>();
  if (auto st = OnlyKeys(o, "loyalty", {"name", "description", "enroll", "points", "growth", "tiers"}); !st.ok()) return st;
  std::string_view name;
  if (o["name"].get(name) != simdjson::SUCCESS || name.empty())
    return Bad("loyalty.name", "expected the program's name (what state.<name> reads)");
  // A machine of the same name would answer state.<name> too.
  if (int64_t id = core_.store.FindMachine(name);
      id >= 0 && !core_.part(PartId::kMachines).StateName(static_cast<uint32_t>(id), 0).empty())
    return Bad("loyalty.name", Cat("\"", name, "\" is a lifecycle machine's name"));
  g->name = std::string(name);
  g->json = simdjson::minify(v);
  dom::element e;

  // Tiers first: multipliers name them.
  if (o["tiers"].get(e) == simdjson::SUCCESS) {
    dom::object t;
    if (e.get(t) != simdjson::SUCCESS) return Bad("loyalty.tiers", "expected an object");
    if (auto st = OnlyKeys(t, "loyalty.tiers", {"metric", "levels", "downgrade"}); !st.ok()) return st;
    std::string_view ms;
    dom::object mo;
    if (t["metric"].get(e) != simdjson::SUCCESS) {
      g->metric = MetricKind::kGrowth;
    } else if (e.get(ms) == simdjson::SUCCESS && (ms == "growth" || ms == "points")) {
      g->metric = ms == "growth" ? MetricKind::kGrowth : MetricKind::kPoints;
    } else if (e.get(mo) == simdjson::SUCCESS && mo.size() == 1 && mo["expr"].error() == simdjson::SUCCESS) {
      auto x = core_.Compile(mo["expr"].value(), "loyalty.tiers.metric.expr");
      if (!x.ok()) return x.status();
      std::string_view rt = x->result_type();
      if (rt != "int" && rt != "double" && rt != "money" && rt != "any")
        return Bad("loyalty.tiers.metric.expr", Cat("expected a number, found ", rt));
      g->metric = MetricKind::kExpr;
      g->metric_expr = std::move(*x);
    } else {
      return Bad("loyalty.tiers.metric", "expected \"growth\", \"points\" or {\"expr\": numeric expression}");
    }
    dom::array la;
    if (t["levels"].get(la) != simdjson::SUCCESS || la.size() == 0)
      return Bad("loyalty.tiers.levels", "expected an array of {\"name\", \"min\"}, lowest first");
    if (la.size() > 1000) return Bad("loyalty.tiers.levels", "at most 1000 levels");
    size_t i = 0;
    for (dom::element x : la) {
      std::string at = Cat("loyalty.tiers.levels[", i, "]");
      dom::object lo;
      std::string_view ln;
      double min;
      if (x.get(lo) != simdjson::SUCCESS) return Bad(at, "expected {\"name\", \"min\"}");
      if (auto st = OnlyKeys(lo, at, {"name", "description", "min"}); !st.ok()) return st;
      if (lo["name"].get(ln) != simdjson::SUCCESS || ln.empty()) return Bad(Cat(at, ".name"), "expected a name");
      if (lo["min"].get(min) != simdjson::SUCCESS || !std::isfinite(min))
        return Bad(Cat(at, ".min"), "expected the metric's threshold (a number)");
      if (g->metric != MetricKind::kExpr && std::nearbyint(min) != min)
        return Bad(Cat(at, ".min"), "growth and points are integers: expected an integer");
      if (i == 0 && min != 0) return Bad(Cat(at, ".min"), "the lowest level starts at 0 (every member has a tier)");
      if (i > 0 && !(min > g->levels.back().min))
        return Bad(Cat(at, ".min"), "levels go up: expected more than the previous level's min");
      for (const Level& l : g->levels)
        if (names_[l.name] == ln) return Bad(Cat(at, ".name"), Cat("\"", ln, "\" is used twice"));
      g->levels.push_back(Level{Name(ln), min});
      i++;
    }
    if (t["downgrade"].get(e) == simdjson::SUCCESS) {
      dom::object d;
      if (e.get(d) != simdjson::SUCCESS) return Bad("loyalty.tiers.downgrade", "expected an object");
      if (auto st = OnlyKeys(d, "loyalty.tiers.downgrade", {"mode", "every", "from", "max_steps", "min_dwell"});
          !st.ok())
        return st;
      std::string_view mode = "none";
      if (d["mode"].error() == simdjson::SUCCESS && d["mode"].get(mode) != simdjson::SUCCESS) mode = "?";
      if (mode == "none") g->mode = Mode::kNone;
      else if (mode == "on_drop") g->mode = Mode::kOnDrop;
      else if (mode == "periodic") g->mode = Mode::kPeriodic;
      else return Bad("loyalty.tiers.downgrade.mode", "expected \"none\", \"on_drop\" or \"periodic\"");
      bool periodic = g->mode == Mode::kPeriodic;
      if (d["every"].get(e) == simdjson::SUCCESS) {
        if (!periodic) return Bad("loyalty.tiers.downgrade.every", "only a periodic downgrade has a period");
        if (auto st = Core::Duration(e, "loyalty.tiers.downgrade.every", g->every); !st.ok()) return st;
        if (g->every < kMinTimer) return Bad("loyalty.tiers.downgrade.every", "a period of at least a minute");
      } else if (periodic) {
        return Bad("loyalty.tiers.downgrade.every", "a periodic downgrade needs its period (\"365d\")");
      }
      std::string_view from;
      if (d["from"].get(e) == simdjson::SUCCESS) {
        if (!periodic) return Bad("loyalty.tiers.downgrade.from", "only a periodic downgrade has a start");
        if (e.get(from) != simdjson::SUCCESS || (from != "registration" && from != "last_change"))
          return Bad("loyalty.tiers.downgrade.from", "expected \"registration\" or \"last_change\"");
        g->from_registration = from == "registration";
      }
      int64_t n;
      if (d["max_steps"].get(e) == simdjson::SUCCESS) {
        if (!periodic) return Bad("loyalty.tiers.downgrade.max_steps", "only a periodic downgrade counts steps");
        if (auto st = Count(e, "loyalty.tiers.downgrade.max_steps", 1, 1000, n); !st.ok()) return st;
        g->max_steps = static_cast<int32_t>(n);
      }
      if (d["min_dwell"].get(e) == simdjson::SUCCESS) {
        if (g->mode == Mode::kNone) return Bad("loyalty.tiers.downgrade.min_dwell", "nothing to delay: mode is none");
        if (auto st = Core::Duration(e, "loyalty.tiers.downgrade.min_dwell", g->min_dwell); !st.ok()) return st;
      }
    }
  }
  g->tier_mult.assign(g->levels.size(), kScale);

  if (o["points"].get(e) == simdjson::SUCCESS) {
    dom::object po;
    if (e.get(po) != simdjson::SUCCESS) return Bad("loyalty.points", "expected an object");
    if (auto st = OnlyKeys(po, "loyalty.points", {"earn", "multipliers", "refund"}); !st.ok()) return st;
    if (po["earn"].get(e) == simdjson::SUCCESS) {
      auto r = ReadRules(e, "loyalty.points.earn", true);
      if (!r.ok()) return r.status();
      g->points = std::move(*r);
    }
    if (po["multipliers"].get(e) == simdjson::SUCCESS) {
      dom::object mo;
      if (e.get(mo) != simdjson::SUCCESS) return Bad("loyalty.points.multipliers", "expected an object");
      if (auto st = OnlyKeys(mo, "loyalty.points.multipliers", {"tiers", "birthday", "birthday_attr"}); !st.ok())
        return st;
      if (mo["tiers"].get(e) == simdjson::SUCCESS) {
        dom::object to;
        if (e.get(to) != simdjson::SUCCESS)
          return Bad("loyalty.points.multipliers.tiers", "expected {\"tier\": multiplier}");
        for (auto [k, x] : to) {
          std::string at = Cat("loyalty.points.multipliers.tiers.", k);
          size_t l = 0;
          while (l < g->levels.size() && names_[g->levels[l].name] != k) l++;
          if (l == g->levels.size()) return Bad(at, "no such tier in loyalty.tiers.levels");
          if (auto st = Decimal(x, at, 1000, g->tier_mult[l]); !st.ok()) return st;
        }
      }
      if (mo["birthday"].get(e) == simdjson::SUCCESS) {
        if (auto st = Decimal(e, "loyalty.points.multipliers.birthday", 1000, g->birthday_mult); !st.ok()) return st;
        std::string_view attr = "birthday";
        if (mo["birthday_attr"].get(e) == simdjson::SUCCESS &&
            (e.get(attr) != simdjson::SUCCESS || attr.empty()))
          return Bad("loyalty.points.multipliers.birthday_attr", "expected an attribute name");
        std::string text = "attrs[";
        json::AppendString(text, attr);
        text += "]";
        auto x = Expr::Compile(text, core_.store, core_.lim);
        if (!x.ok()) return Bad("loyalty.points.multipliers.birthday_attr", std::string(x.status().message()));
        g->birthday = std::move(*x);
      } else if (mo["birthday_attr"].error() == simdjson::SUCCESS) {
        return Bad("loyalty.points.multipliers.birthday_attr", "without a \"birthday\" multiplier");
      }
    }
    if (po["refund"].get(e) == simdjson::SUCCESS) {
      dom::object ro;
      std::string_view on, ref;
      if (e.get(ro) != simdjson::SUCCESS) return Bad("loyalty.points.refund", "expected {\"on\", \"ref\"}");
      if (auto st = OnlyKeys(ro, "loyalty.points.refund", {"on", "ref", "within"}); !st.ok()) return st;
      if (ro["on"].get(on) != simdjson::SUCCESS || on.empty())
        return Bad("loyalty.points.refund.on", "expected the refund event type");
      if (ro["ref"].get(ref) != simdjson::SUCCESS || ref.empty())
        return Bad("loyalty.points.refund.ref", "expected the property naming the order (on both events)");
      if (ro["within"].get(e) == simdjson::SUCCESS) {
        if (auto st = Core::Duration(e, "loyalty.points.refund.within", g->refund_within); !st.ok()) return st;
        if (g->refund_within == 0) return Bad("loyalty.points.refund.within", "expected a positive duration");
      }
      g->refund = true;
      g->refund_type = core_.store.EventType(on);
      g->ref_key = std::string(ref);
    }
  }
  if (o["growth"].get(e) == simdjson::SUCCESS) {
    dom::object go;
    if (e.get(go) != simdjson::SUCCESS) return Bad("loyalty.growth", "expected an object");
    if (auto st = OnlyKeys(go, "loyalty.growth", {"earn"}); !st.ok()) return st;
    if (go["earn"].get(e) != simdjson::SUCCESS) return Bad("loyalty.growth.earn", "expected the earning rules");
    auto r = ReadRules(e, "loyalty.growth.earn", false);
    if (!r.ok()) return r.status();
    g->growth = std::move(*r);
  }
  if (!g->levels.empty() && g->metric == MetricKind::kGrowth && g->growth.empty())
    return Bad("loyalty.tiers.metric", "tiers by growth need growth rules (loyalty.growth.earn)");
  if (g->points.empty() && g->growth.empty() && g->levels.empty())
    return Bad("loyalty", "nothing defined: expected points, growth or tiers");
  if (o["enroll"].get(e) == simdjson::SUCCESS) {
    auto x = core_.Compile(e, "loyalty.enroll");
    if (!x.ok()) return x.status();
    g->enroll = std::move(*x);
  }

  // Which event types matter, so every other event costs one lookup.
  auto flag = [&](uint32_t type, uint8_t f) {
    if (type >= g->flags.size()) g->flags.resize(type + 1, 0);
    g->flags[type] |= f;
  };
  for (const Rule& r : g->points) flag(r.type, kEarnsPoints);
  for (const Rule& r : g->growth) flag(r.type, kEarnsGrowth);
  if (g->refund) flag(g->refund_type, kRefunds);
  // An expression metric is re-read on the events it counts; an enrolment guard too, so
  // the event that makes a person a member (member_join) enrols them.
  for (const std::optional<Expr>* x : {&g->metric_expr, &g->enroll}) {
    if (!*x) continue;
    tags::ReadSet rs;
    rs.Add(**x, core_.store);
    for (uint32_t t : rs.events) flag(t, kReads);
    g->any_event |= rs.any_event;
  }
  g->machine = core_.store.Machine(g->name);
  return g;
}

absl::StatusOr<Part::Installer> LoyaltyPart::Prepare(dom::element root, int64_t now) {
  dom::element v;
  if (root["loyalty"].get(v) != simdjson::SUCCESS) return Installer([](json::Writer&) {});
  dom::object o;
  if (v.get(o) != simdjson::SUCCESS) return Bad("loyalty", "expected the program's object");
  auto g = Read(v, o);
  if (!g.ok()) return g.status();
  std::shared_ptr<Program> prog = std::move(*g);
  return Installer([this, prog, now](json::Writer& w) {
    std::shared_ptr<const Program> old = std::move(def_);
    def_ = prog;
    named_machine_ = prog->machine;
    level_names_.clear();
    for (const Level& l : prog->levels) level_names_.push_back(l.name);
    for (const std::vector<Rule>* rules : {&prog->points, &prog->growth})
      for (const Rule& r : *rules) defined_[r.name] = 1;
    for (uint32_t l : level_names_) defined_[l] = 1;
    // Tiers follow their names; a tier that is gone maps to the highest new level its old
    // threshold reaches. The next timer (at `now`) re-evaluates everyone under the new rules.
    std::vector<int16_t> remap;
    if (old) {
      for (const Level& ol : old->levels) {
        int16_t to = prog->levels.empty() ? kNoTier : 0;
        for (size_t i = 0; i < prog->levels.size(); ++i) {
          if (prog->levels[i].name == ol.name) { to = static_cast<int16_t>(i); break; }
          if (prog->levels[i].min <= ol.min) to = static_cast<int16_t>(i);
        }
        remap.push_back(to);
      }
    }
    auto map = [&](int16_t t) { return t == kNoTier || t >= static_cast<int16_t>(remap.size()) ? kNoTier : remap[t]; };
    for (Ix p = 0; p < members_.size(); ++p) {
      Member* m = members_[p].get();
      if (!m) continue;
      m->earned = map(m->earned);
      m->tier = map(m->tier);
      if (m->ov.kind != OverrideKind::kNone) {
        m->ov.level = map(m->ov.level);
        if (m->ov.level == kNoTier) m->ov = Override{};
      }
      m->next_eval = m->dwell_at = kForever;
      m->redefined = true;
      m->wake_at = now;
      m->gen = ++gen_;
      core_.Schedule(now, PartId::kLoyalty, p, 0, m->gen);
    }
    w.Key("loyalty").Bool(true);
  });
}

absl::Status LoyaltyPart::Drop(std::string_view name) {
  if (!def_ || name != def_->name) return absl::NotFoundError(Cat("no loyalty program \"", name, "\""));
  def_.reset();
  // Pending timers find no member and lapse.
  members_.clear();
  members_count_ = 0;
  return absl::OkStatus();
}

// --- the ledger ---------------------------------------------------------------------------

Member& LoyaltyPart::Enroll(Ix p, int64_t ts) {
  if (p >= members_.size()) members_.resize(std::max<size_t>(core_.persons(), p + 1));
  auto& slot = members_[p];
  if (!slot) {
    slot = std::make_unique<Member>();
    slot->enrolled = slot->earned_since = slot->tier_since = ts;
    members_count_++;
  }
  return *slot;
}

void LoyaltyPart::FeedPoints(Ix p, Member& m, int64_t ts, std::string_view op, std::string_view ledger,
                             int64_t points, std::string_view reason,
                             absl::FunctionRef<void(json::Writer&)> extra) {
  std::string text;
  text.reserve(160);  // one allocation for the usual entry, not a doubling series
  json::Writer w(text);
  w.BeginObject();
  w.Key("op").String(op);
  w.Key("ledger").String(ledger);
  w.Key("points").Int(points);
  w.Key("balance").Int(ledger == "growth" ? m.growth : Sum(m).balance);
  if (!reason.empty()) w.Key("reason").String(reason);
  extra(w);
  if (m.debt > 0) w.Key("debt").Int(m.debt);
  w.EndObject();
  core_.FeedPerson(p, FeedEvent::Kind::kPoints, ts, std::move(text));
}

void LoyaltyPart::AddLot(Ix p, Member& m, Lot lot, std::string_view op, int64_t multiplier) {
  // A debt (a refund that found the points already spent) is paid first; what paid it
  // counts as spent, so refunding this order later claws it back again.
  int64_t pay = std::min(m.debt, lot.points);
  m.debt -= pay;
  lot.remaining = lot.points - pay;
  lot.spent = pay;
  lot.seq = ++lot_seq_;
  if (lot.locked_until && lot.remaining > 0) m.unlock_at = std::min(m.unlock_at, lot.locked_until);
  const int64_t earned_at = lot.earned_at, expires = lot.expires_at, locked = lot.locked_until, points = lot.points;
  const uint32_t rule = lot.rule;
  std::string ref = lot.ref;
  if (lot.remaining > 0 || (!lot.ref.empty() && lot.spent > 0)) {
    auto at = std::upper_bound(m.lots.begin(), m.lots.end(), lot, [](const Lot& a, const Lot& b) {
      return a.expires_at != b.expires_at ? a.expires_at < b.expires_at : a.seq < b.seq;
    });
    m.lots.insert(at, std::move(lot));
  }
  FeedPoints(p, m, earned_at, op, "points", points, names_[rule], [&](json::Writer& x) {
    x.Key("expires_at");
    TimeOrNull(x, expires);
    if (locked) x.Key("locked_until").Int(locked);
    if (!ref.empty()) x.Key("ref").String(ref);
    if (multiplier != kScale) x.Key("multiplier").Raw(Scaled(multiplier));
    if (pay) x.Key("debt_paid").Int(pay);
  });
}

int64_t LoyaltyPart::Draw(Member& m, int64_t want, bool spending) {
  int64_t took = 0;
  for (Lot& l : m.lots) {
    if (took == want) break;
    if (l.remaining == 0 || (spending && l.locked_until)) continue;
    int64_t n = std::min(l.remaining, want - took);
    l.remaining -= n;
    l.spent += n;
    took += n;
  }
  return took;
}

void LoyaltyPart::Refund(Ix p, Member& m, std::string_view ref, int64_t ts, std::string_view reason,
                         json::Writer* out) {
  const int64_t within = def_->refund_within;
  auto open = [&](int64_t earned) { return within == 0 || earned + within > ts; };
  int64_t earned = 0, taken = 0, owed = 0;
  for (Lot& l : m.lots) {
    if (l.ref != ref || !open(l.earned_at)) continue;
    earned += l.points;
    taken += l.remaining;
    owed += l.spent;
    // Forgotten by the next compaction: nothing left in it, nothing more to claw back.
    l.remaining = l.spent = 0;
  }
  // What the clawback draws counts as spent from those lots: refunding their own orders
  // later takes it back again, which is right (those points paid for this order's spending).
  int64_t clawed = Draw(m, owed, /*spending=*/false);
  int64_t debt_added = owed - clawed;
  m.debt += debt_added;
  int64_t growth = 0;
  for (GrowthRef& g : m.growth_refs) {
    if (g.ref != ref || !open(g.at)) continue;
    growth += g.value;
    g.value = 0;
  }
  std::erase_if(m.growth_refs, [](const GrowthRef& g) { return g.value == 0; });
  m.growth -= growth;
  if (earned > 0 || owed > 0) {
    FeedPoints(p, m, ts, "refund", "points", -(taken + clawed), reason, [&](json::Writer& x) {
      x.Key("ref").String(ref);
      x.Key("reversed").Int(earned);
      x.Key("taken_back").Int(taken);
      x.Key("from_balance").Int(clawed);
      if (debt_added) x.Key("debt_added").Int(debt_added);
    });
  }
  if (growth > 0)
    FeedPoints(p, m, ts, "refund", "growth", -growth, reason, [&](json::Writer& x) { x.Key("ref").String(ref); });
  if (out) {
    out->Key("ref").String(ref);
    out->Key("reversed").Int(earned);
    out->Key("taken_back").Int(taken);
    out->Key("from_balance").Int(clawed);
    out->Key("debt_added").Int(debt_added);
    out->Key("growth_reversed").Int(growth);
  }
}

int64_t LoyaltyPart::BirthdayMultiplier(Ix p, int64_t ts) {
  if (!def_->birthday) return kScale;
  Value v = core_.Eval(*def_->birthday, p, ts);
  int bm = 0, bd = 0, y;
  int32_t day;
  switch (v.kind) {
    case ValueKind::kDate: CivilFromDays(static_cast<int32_t>(v.i), y, bm, bd); break;
    case ValueKind::kTimestamp:  // any int64 (an attribute, arithmetic): DayOf's offset must not overflow
      if (v.i >= -kLastTime && v.i <= kLastTime) CivilFromDays(core_.zone().DayOf(v.i), y, bm, bd);
      break;
    case ValueKind::kString:
      if (expr::ParseDate(v.str().substr(0, 10), day)) CivilFromDays(day, y, bm, bd);
      break;
    default: return kScale;
  }
  if (bm == 0) return kScale;
  int em, ed;
  CivilFromDays(core_.zone().DayOf(ts), y, em, ed);
  // A 29 February birthday is kept on the 28th in common years.
  if (bm == 2 && bd == 29 && DaysInMonth(y, 2) == 28) bd = 28;
  return em == bm && ed == bd ? def_->birthday_mult : kScale;
}

void LoyaltyPart::Earn(Ix p, Member& m, const Rule& r, const LifeEvent& e, bool points, std::string& scratch) {
  if (r.per_yuan && (!e.has_amount || e.amount <= 0)) return;
  for (const auto& [key, accepted] : r.where) {
    std::string_view v = e.Prop(key, scratch);
    if (std::find(accepted.begin(), accepted.end(), v) == accepted.end()) return;
  }
  Cap* cap = nullptr;
  int32_t day = 0;
  if (r.max_per_day || r.max_total) {
    for (Cap& c : m.caps)
      if (c.rule == r.name) cap = &c;
    day = core_.zone().DayOf(e.ts);
    if (cap) {
      if (r.max_total && cap->total >= r.max_total) return;
      if (r.max_per_day && cap->day == day && cap->today >= r.max_per_day) return;
    }
  }
  if (r.when && !core_.Test(*r.when, p, e.ts)) return;
  int64_t mult = kScale;
  if (points && r.multiply) {
    if (m.tier != kNoTier) mult = def_->tier_mult[m.tier];
    mult = mult * BirthdayMultiplier(p, e.ts) / kScale;
  }
  __int128 n = r.per_yuan ? __int128{e.amount} * r.per_yuan * mult / (__int128{100} * kScale * kScale)
                          : __int128{r.points} * mult / kScale;
  if (n <= 0) return;
  int64_t amount = n > kMaxPoints ? kMaxPoints : static_cast<int64_t>(n);
  if (r.max_per_day || r.max_total) {
    if (!cap) {
      m.caps.push_back(Cap{r.name, day, 0, 0});
      cap = &m.caps.back();
    }
    if (cap->day != day) cap->day = day, cap->today = 0;
    cap->today++;
    cap->total++;
  }
  std::string_view ref = def_->refund ? e.Prop(def_->ref_key, scratch) : std::string_view();
  if (points) {
    Lot lot{amount, 0, 0, e.ts, r.expires.At(e.ts, core_.zone()), r.lock ? e.ts + r.lock : 0, 0, r.name,
            std::string(ref)};
    AddLot(p, m, std::move(lot), "earn", mult);
  } else {
    m.growth += amount;
    if (!ref.empty()) m.growth_refs.push_back(GrowthRef{e.ts, amount, std::string(ref)});
    FeedPoints(p, m, e.ts, "earn", "growth", amount, names_[r.name], [&](json::Writer& x) {
      if (!ref.empty()) x.Key("ref").String(ref);
    });
  }
}

void LoyaltyPart::Compact(Member& m, int64_t now) const {
  const int64_t within = def_ ? def_->refund_within : 0;
  auto closed = [&](int64_t at) { return within > 0 && at + within <= now; };
  std::erase_if(m.lots, [&](const Lot& l) {
    return l.remaining == 0 && (l.ref.empty() || l.spent == 0 || closed(l.earned_at));
  });
  if (within > 0) std::erase_if(m.growth_refs, [&](const GrowthRef& g) { return closed(g.at); });
}

// --- deadlines ----------------------------------------------------------------------------

int64_t LoyaltyPart::NextDeadline(const Member& m) const {
  int64_t d = m.unlock_at;
  for (const Lot& l : m.lots)  // by expiry: the first with points left expires first
    if (l.remaining > 0) {
      d = std::min(d, l.expires_at);
      break;
    }
  if (m.ov.kind != OverrideKind::kNone) d = std::min(d, m.ov.until);
  return std::min({d, m.next_eval, m.dwell_at});
}

void LoyaltyPart::CatchUp(Ix p, Member& m, int64_t t) {
  for (int64_t d; (d = NextDeadline(m)) <= t;) {
    int64_t expired = 0, unlocked = 0;
    uint32_t lots = 0;
    for (Lot& l : m.lots) {
      if (l.expires_at > d) break;
      expired += l.remaining;
      lots += l.remaining > 0;
      l.remaining = 0;
      l.locked_until = 0;
    }
    if (m.unlock_at <= d) {
      m.unlock_at = kForever;
      for (Lot& l : m.lots) {
        if (!l.locked_until || l.remaining == 0) continue;
        if (l.locked_until <= d) {
          unlocked += l.remaining;
          l.locked_until = 0;
        } else {
          m.unlock_at = std::min(m.unlock_at, l.locked_until);
        }
      }
    }
    if (expired)
      FeedPoints(p, m, d, "expire", "points", -expired, "expiry", [&](json::Writer& x) { x.Key("lots").Uint(lots); });
    if (unlocked)
      FeedPoints(p, m, d, "unlock", "points", unlocked, "", [&](json::Writer& x) {
        x.Key("available").Int(Sum(m).available);
      });
    if (m.ov.kind != OverrideKind::kNone && m.ov.until <= d) m.ov = Override{};
    if (m.dwell_at <= d) m.dwell_at = kForever;
    bool periodic = m.next_eval <= d;
    if (def_->levels.empty() || m.earned == kNoTier) {
      m.next_eval = kForever;
      continue;
    }
    Evaluate(p, m, d, Reason::kTimer, 0, periodic);
  }
}

void LoyaltyPart::Reschedule(Ix p, Member& m) {
  int64_t d = NextDeadline(m);
  // A pending earlier timer finds nothing to do and sets the next one itself.
  if (d == kForever || d >= m.wake_at) return;
  m.wake_at = d;
  m.gen = ++gen_;
  core_.Schedule(d, PartId::kLoyalty, p, 0, m.gen);
}

// --- tiers --------------------------------------------------------------------------------

bool LoyaltyPart::Metric(Ix p, const Member& m, int64_t ts, double& out) {
  switch (def_->metric) {
    case MetricKind::kGrowth: out = static_cast<double>(m.growth); return true;
    case MetricKind::kPoints: out = static_cast<double>(Sum(m).balance - m.debt); return true;
    case MetricKind::kExpr: {
      Value v = core_.Eval(*def_->metric_expr, p, ts);
      switch (v.kind) {
        case ValueKind::kInt: out = static_cast<double>(v.i); return true;
        case ValueKind::kMoney: out = static_cast<double>(v.i) / 100; return true;
        case ValueKind::kDouble: out = v.d; return std::isfinite(v.d);
        default: return false;  // null (no profile yet) keeps the last value
      }
    }
  }
  return false;
}

double LoyaltyPart::MetricNow(const Member& m) const {
  switch (def_->metric) {
    case MetricKind::kGrowth: return static_cast<double>(m.growth);
    case MetricKind::kPoints: return static_cast<double>(Sum(m).balance - m.debt);
    case MetricKind::kExpr: return m.metric;
  }
  return 0;
}

int16_t LoyaltyPart::LevelFor(double metric) const {
  const auto& lv = def_->levels;
  auto it = std::upper_bound(lv.begin(), lv.end(), metric, [](double x, const Level& l) { return x < l.min; });
  return static_cast<int16_t>(std::max<ptrdiff_t>(0, (it - lv.begin()) - 1));
}

int16_t LoyaltyPart::Effective(const Member& m) const {
  int16_t t = m.earned;
  switch (m.ov.kind) {
    case OverrideKind::kNone: break;
    case OverrideKind::kPin: return m.ov.level;
    case OverrideKind::kFloor: return std::max(t, m.ov.level);
    case OverrideKind::kCeiling: return t > m.ov.level ? m.ov.level : t;
  }
  return t;
}

void LoyaltyPart::Evaluate(Ix p, Member& m, int64_t ts, Reason why, uint32_t cause, bool periodic,
                           bool allow_down) {
  const Program& g = *def_;
  if (g.levels.empty()) return;
  double metric = m.metric;
  if (Metric(p, m, ts, metric)) m.metric = metric;
  int16_t target = LevelFor(metric), earned = m.earned;
  m.dwell_at = kForever;
  if (earned == kNoTier || target > earned) {
    earned = target;
  } else if (target < earned && allow_down) {
    bool dwelled = ts - m.earned_since >= g.min_dwell;
    if (g.mode == Mode::kOnDrop) {
      if (dwelled) earned = target; else m.dwell_at = m.earned_since + g.min_dwell;
    } else if (g.mode == Mode::kPeriodic && periodic && dwelled) {
      earned = static_cast<int16_t>(std::max<int>(target, earned - g.max_steps));
    }
  }
  bool changed = earned != m.earned;
  if (changed) {
    m.earned = earned;
    m.earned_since = ts;
  }
  if (g.mode == Mode::kPeriodic && (periodic || m.next_eval == kForever || (changed && !g.from_registration)))
    m.next_eval = NextEval(g.from_registration ? m.enrolled : m.earned_since, ts);
  SetTier(p, m, Effective(m), ts, why, cause);
}

void LoyaltyPart::SetTier(Ix p, Member& m, int16_t to, int64_t ts, Reason why, uint32_t cause) {
  if (to == m.tier) return;
  int16_t from = m.tier;
  m.tier = to;
  m.tier_since = ts;
  auto state = [](int16_t t) { return t == kNoTier ? kNoState : static_cast<uint16_t>(t); };
  const Program& g = *def_;
  std::string text;
  text.reserve(128);
  json::Writer w(text);
  w.BeginObject();
  w.Key("tiers").String(g.name);
  w.Key("from");
  if (from == kNoTier) w.Null(); else w.String(names_[g.levels[from].name]);
  w.Key("to");
  if (to == kNoTier) w.Null(); else w.String(names_[g.levels[to].name]);
  w.Key("reason").String(ReasonName(why));
  w.Key("metric");
  MetricValue(w, MetricNow(m));
  if (m.ov.kind != OverrideKind::kNone) {
    w.Key("override");
    WriteOverride(w, m);
  }
  w.EndObject();
  core_.Record(p, Transition{ts, g.machine, state(from), state(to), static_cast<uint8_t>(why), cause},
               FeedEvent::Kind::kTierChanged, std::move(text));
  core_.transitions++;
  core_.Transitioned(p, g.machine, state(from), state(to), ts);
}

void LoyaltyPart::WriteOverride(json::Writer& w, const Member& m) const {
  if (m.ov.kind == OverrideKind::kNone) {
    w.Null();
    return;
  }
  static constexpr std::string_view kKinds[] = {"none", "floor", "ceiling", "pin"};
  w.BeginObject();
  w.Key("kind").String(kKinds[static_cast<int>(m.ov.kind)]);
  w.Key("tier").String(names_[def_->levels[m.ov.level].name]);
  w.Key("until");
  TimeOrNull(w, m.ov.until);
  w.EndObject();
}

// --- inputs -------------------------------------------------------------------------------

void LoyaltyPart::OnEvent(Ix p, const LifeEvent& e) {
  const Program* g = def_.get();
  if (!g) return;
  uint8_t f = e.type < g->flags.size() ? g->flags[e.type] : 0;
  if (f == 0 && !g->any_event) return;
  Member* m = Get(p);
  if (!m) {
    if (g->enroll && !core_.Test(*g->enroll, p, e.ts)) return;
    m = &Enroll(p, e.ts);
  }
  CatchUp(p, *m, e.ts);
  if (f & kRefunds) {
    std::string_view ref = e.Prop(g->ref_key, scratch_);
    if (!ref.empty()) {
      std::string r(ref);
      Refund(p, *m, r, e.ts, "refund", nullptr);
    }
  }
  if (f & kEarnsPoints)
    for (const Rule& r : g->points)
      if (r.type == e.type) Earn(p, *m, r, e, true, scratch_);
  if (f & kEarnsGrowth)
    for (const Rule& r : g->growth)
      if (r.type == e.type) Earn(p, *m, r, e, false, scratch_);
  m->redefined = false;
  Evaluate(p, *m, e.ts, Reason::kEvent, e.type, false);
  Compact(*m, e.ts);
  Reschedule(p, *m);
}

void LoyaltyPart::Fire(const Timer& t) {
  Member* m = Get(t.person);
  if (!def_ || !m || t.gen != m->gen || t.at != m->wake_at) return;  // stale
  m->wake_at = kForever;
  CatchUp(t.person, *m, t.at);
  if (m->redefined) {
    m->redefined = false;
    if (!def_->levels.empty()) Evaluate(t.person, *m, t.at, Reason::kDefinition, 0, false);
  }
  Compact(*m, t.at);
  Reschedule(t.person, *m);
}

void LoyaltyPart::Merge(Ix a, Ix b, int64_t now) {
  Member* mb = Get(b);
  if (!def_ || !mb) return;
  Member* ma = Get(a);
  if (!ma) {
    if (a >= members_.size()) members_.resize(std::max<size_t>(core_.persons(), a + 1));
    members_[a] = std::move(members_[b]);
    ma = members_[a].get();
    ma->wake_at = kForever;  // its timers were the absorbed person's
    Reschedule(a, *ma);
    return;
  }
  CatchUp(a, *ma, now);
  CatchUp(b, *mb, now);
  int64_t before = Sum(*ma).balance, moved = Sum(*mb).balance;
  for (Lot& l : mb->lots) ma->lots.push_back(std::move(l));
  std::sort(ma->lots.begin(), ma->lots.end(), [](const Lot& x, const Lot& y) {
    return x.expires_at != y.expires_at ? x.expires_at < y.expires_at : x.seq < y.seq;
  });
  for (GrowthRef& g : mb->growth_refs) ma->growth_refs.push_back(std::move(g));
  for (const Cap& c : mb->caps) {
    Cap* mine = nullptr;
    for (Cap& x : ma->caps)
      if (x.rule == c.rule) mine = &x;
    if (!mine) {
      ma->caps.push_back(c);
      continue;
    }
    if (c.day > mine->day) mine->day = c.day, mine->today = c.today;
    else if (c.day == mine->day) mine->today += c.today;
    mine->total += c.total;
  }
  ma->growth += mb->growth;
  ma->debt += mb->debt;
  ma->unlock_at = std::min(ma->unlock_at, mb->unlock_at);
  // One person owes and holds points at once no longer: the debt is paid from the balance.
  int64_t paid = Draw(*ma, ma->debt, /*spending=*/false);
  ma->debt -= paid;
  ma->enrolled = std::min(ma->enrolled, mb->enrolled);
  // The survivor's override wins; one set on the absorbed person alone is not lost.
  if (ma->ov.kind == OverrideKind::kNone) ma->ov = mb->ov;
  const bool theirs = mb->earned > ma->earned;
  if (theirs) {
    ma->earned = mb->earned;
    ma->earned_since = mb->earned_since;
  }
  uint64_t absorbed = core_.OneId(b);
  FeedPoints(a, *ma, now, "merge", "points", Sum(*ma).balance - before, "", [&](json::Writer& x) {
    x.Key("absorbed").Uint(absorbed);
    x.Key("moved").Int(moved);
    if (paid) x.Key("debt_paid").Int(paid);
    x.Key("growth").Int(ma->growth);
  });
  if (!def_->levels.empty()) {
    if (def_->mode == Mode::kPeriodic)
      ma->next_eval = NextEval(def_->from_registration ? ma->enrolled : ma->earned_since, now);
    // The tier takes the higher of the two; only a later event or timer may lower it.
    Evaluate(a, *ma, now, Reason::kMerge, 0, false, /*allow_down=*/false);
    // The tier came with the absorbed person: so does the time it was reached.
    if (theirs && ma->tier == mb->tier) ma->tier_since = mb->tier_since;
  }
  Compact(*ma, now);
  Reschedule(a, *ma);
}

absl::Status LoyaltyPart::Apply(std::string_view op, dom::object req, Ix p, int64_t now, json::Writer& out) {
  if (!def_) return absl::FailedPreconditionError("no loyalty program is defined");
  const Program& g = *def_;
  const int64_t ts = now;  // the operation's "ts", checked by Lifecycle::Apply
  dom::element v;
  // Everything is checked before the person changes (catching up included), so a refused
  // operation leaves no trace.
  int64_t points = 0;
  std::string_view reason = op, ref;
  Expiry expiry;
  int64_t lock = 0;
  Override ov;
  bool clear = false;
  if (op == "earn" || op == "spend" || op == "adjust") {
    if (req["points"].get(v) != simdjson::SUCCESS || v.get(points) != simdjson::SUCCESS || points == 0 ||
        points > kMaxPoints || points < -kMaxPoints || (op != "adjust" && points < 0))
      return Bad("points", op == "adjust" ? "expected a non-zero integer" : "expected a positive integer");
    if (req["reason"].get(v) == simdjson::SUCCESS && (v.get(reason) != simdjson::SUCCESS || reason.empty()))
      return Bad("reason", "expected text");
    if (req["ref"].get(v) == simdjson::SUCCESS && v.get(ref) != simdjson::SUCCESS) return Bad("ref", "expected text");
    if (op != "spend") {
      if (req["expires"].get(v) == simdjson::SUCCESS) {
        if (auto st = ReadExpiry(v, "expires", expiry); !st.ok()) return st;
      }
      if (req["lock"].get(v) == simdjson::SUCCESS) {
        if (auto st = Core::Duration(v, "lock", lock); !st.ok()) return st;
      }
    }
  } else if (op == "refund") {
    if (req["ref"].get(ref) != simdjson::SUCCESS || ref.empty())
      return Bad("ref", "expected the order's reference");
  } else {  // tier
    if (g.levels.empty()) return absl::FailedPreconditionError("the loyalty program has no tiers");
    int kinds = 0;
    for (auto [k, kind] : {std::pair{"floor", OverrideKind::kFloor}, std::pair{"ceiling", OverrideKind::kCeiling},
                           std::pair{"pin", OverrideKind::kPin}}) {
      std::string_view name;
      if (req[k].get(v) != simdjson::SUCCESS) continue;
      kinds++;
      if (v.get(name) != simdjson::SUCCESS) return Bad(k, "expected a tier's name");
      ov.kind = kind;
      for (size_t i = 0; i < g.levels.size(); ++i)
        if (names_[g.levels[i].name] == name) ov.level = static_cast<int16_t>(i);
      if (ov.level == kNoTier) return Bad(k, Cat("no tier \"", name, "\""));
    }
    if (req["clear"].get(v) == simdjson::SUCCESS) {
      if (v.get(clear) != simdjson::SUCCESS || !clear) return Bad("clear", "expected true");
      kinds++;
    }
    if (kinds != 1) return Bad("tier", "expected one of \"floor\", \"ceiling\", \"pin\" or \"clear\"");
    if (req["until"].get(v) == simdjson::SUCCESS) {
      if (clear) return Bad("until", "a cleared override has no expiry");
      if (v.get(ov.until) != simdjson::SUCCESS || ov.until > kLastTime)
        return Bad("until", "expected a time (epoch ms, before 9999)");
      if (ov.until <= ts) return Bad("until", "already past at the operation's time");
    }
  }
  if (op == "spend") {
    // Spendable at ts: unexpired and unlocked by then, whether or not Advance got there.
    int64_t avail = 0, locked = 0;
    if (const Member* m = Get(p))
      for (const Lot& l : m->lots) {
        if (l.remaining == 0 || l.expires_at <= ts) continue;
        (l.locked_until && l.locked_until > ts ? locked : avail) += l.remaining;
      }
    if (avail < points)
      return absl::FailedPreconditionError(
          Cat("points: ", points, " wanted, ", avail, " available", locked ? Cat(" (", locked, " locked)") : ""));
  }

  Member& m = Enroll(p, ts);
  CatchUp(p, m, ts);
  out.Key("op").String(op);
  if (op == "earn" || (op == "adjust" && points > 0)) {
    Lot lot{points, 0, 0, ts, expiry.At(ts, core_.zone()), lock ? ts + lock : 0, 0, Name(reason), std::string(ref)};
    AddLot(p, m, std::move(lot), op, kScale);
    out.Key("points").Int(points);
  } else if (op == "spend") {
    Draw(m, points, /*spending=*/true);
    FeedPoints(p, m, ts, "spend", "points", -points, reason, [&](json::Writer& x) {
      if (!ref.empty()) x.Key("ref").String(ref);
    });
    out.Key("points").Int(-points);
  } else if (op == "adjust") {
    // A correction downwards takes what is there, locked or not; the rest is owed.
    int64_t took = Draw(m, -points, /*spending=*/false);
    m.debt += -points - took;
    FeedPoints(p, m, ts, "adjust", "points", -took, reason, [&](json::Writer& x) {
      if (took != -points) x.Key("debt_added").Int(-points - took);
    });
    out.Key("points").Int(-took);
  } else if (op == "refund") {
    Refund(p, m, ref, ts, "refund", &out);
  } else {
    m.ov = clear ? Override{} : ov;
  }
  m.redefined = false;
  Evaluate(p, m, ts, Reason::kManual, 0, false);
  Compact(m, ts);
  Reschedule(p, m);
  Totals t = Sum(m);
  out.Key("balance").Int(t.balance);
  out.Key("available").Int(t.available);
  out.Key("locked").Int(t.locked);
  out.Key("debt").Int(m.debt);
  out.Key("growth").Int(m.growth);
  out.Key("tier");
  if (m.tier == kNoTier) out.Null(); else out.String(names_[g.levels[m.tier].name]);
  if (op == "tier") {
    out.Key("override");
    WriteOverride(out, m);
  }
  return absl::OkStatus();
}

// --- erasure ------------------------------------------------------------------------------

void LoyaltyPart::Forget(Ix p) {
  if (Member* m = Get(p)) {
    for (Lot& l : m->lots) WipeString(l.ref);
    for (GrowthRef& g : m->growth_refs) WipeString(g.ref);
  }
  Clear(p);
  WipeString(scratch_);  // the last event's property as text, perhaps the person's
  SweepNames();
}

// An operator's reason is interned for its lot and outlives it (a spent lot is compacted
// away, its name is not), so which reasons were the forgotten person's alone cannot be
// told from their lots: every reason no remaining lot or cap names is overwritten. None
// can be read afterwards (lots were their only readers), so the others see no change. A
// name a definition interned stays: the definitions hold it anyway, and a loaded part
// would intern it again.
void LoyaltyPart::SweepNames() {
  std::vector<uint8_t> keep(defined_);
  bool any = false;
  for (size_t i = 0; i < names_.size(); ++i) any |= !keep[i] && !names_[i].empty();
  if (!any) return;
  for (const auto& m : members_) {
    if (!m) continue;
    for (const Lot& l : m->lots) keep[l.rule] = 1;
    for (const Cap& c : m->caps) keep[c.rule] = 1;
  }
  for (size_t i = 0; i < names_.size(); ++i) {
    if (keep[i] || names_[i].empty()) continue;
    name_ids_.erase(std::string_view(names_[i]));  // before the key's bytes change
    WipeString(names_[i]);
  }
}

// --- reading ------------------------------------------------------------------------------

void LoyaltyPart::AppendPerson(json::Writer& w, Ix p) const {
  w.Key("loyalty");
  if (!def_) {
    w.Null();
    return;
  }
  const Program& g = *def_;
  const Member* m = Get(p);
  static const Member kEmpty;
  const Member& x = m ? *m : kEmpty;
  Totals t = Sum(x);
  w.BeginObject();
  w.Key("program").String(g.name);
  w.Key("member").Bool(m != nullptr);
  w.Key("points").Int(t.balance);
  w.Key("available").Int(t.available);
  w.Key("locked").Int(t.locked);
  w.Key("debt").Int(x.debt);
  w.Key("growth").Int(x.growth);
  auto level = [&](int16_t l) {
    if (l == kNoTier) w.Null(); else w.String(names_[g.levels[l].name]);
  };
  w.Key("tier");
  level(x.tier);
  w.Key("tier_since");
  if (x.tier == kNoTier) w.Null(); else w.Int(x.tier_since);
  w.Key("earned_tier");
  level(x.earned);
  int16_t next = g.levels.empty() ? kNoTier
               : x.tier == kNoTier ? 0
               : x.tier + 1 < static_cast<int>(g.levels.size()) ? static_cast<int16_t>(x.tier + 1) : kNoTier;
  w.Key("next_tier");
  level(next);
  w.Key("points_to_next_tier");
  if (next == kNoTier) {
    w.Null();
  } else {
    double gap = g.levels[next].min - (m ? MetricNow(x) : 0);
    MetricValue(w, gap > 0 ? gap : 0);
  }
  w.Key("metric");
  if (g.levels.empty()) w.Null(); else MetricValue(w, m ? MetricNow(x) : 0);
  w.Key("next_evaluation");
  TimeOrNull(w, std::min(x.next_eval, x.dwell_at));
  w.Key("override");
  WriteOverride(w, x);
  w.Key("lots").BeginArray();
  for (const Lot& l : x.lots) {
    w.BeginObject();
    w.Key("points").Int(l.points);
    w.Key("remaining").Int(l.remaining);
    w.Key("spent").Int(l.spent);
    w.Key("earned_at").Int(l.earned_at);
    w.Key("expires_at");
    TimeOrNull(w, l.expires_at);
    w.Key("locked_until");
    TimeOrNull(w, l.locked_until);
    w.Key("rule").String(names_[l.rule]);
    w.Key("ref");
    if (l.ref.empty()) w.Null(); else w.String(l.ref);
    w.EndObject();
  }
  w.EndArray();
  w.EndObject();
}

void LoyaltyPart::AppendCatalog(json::Writer& w) const {
  w.Key("loyalty");
  if (!def_) {
    w.Null();
    return;
  }
  const Program& g = *def_;
  w.BeginObject();
  w.Key("name").String(g.name);
  w.Key("members").Uint(members_count_);
  w.Key("points_rules").BeginArray();
  for (const Rule& r : g.points) w.String(names_[r.name]);
  w.EndArray();
  w.Key("growth_rules").BeginArray();
  for (const Rule& r : g.growth) w.String(names_[r.name]);
  w.EndArray();
  w.Key("tiers").BeginArray();
  for (const Level& l : g.levels) w.String(names_[l.name]);
  w.EndArray();
  w.Key("definition").Raw(g.json);
  w.EndObject();
}

uint64_t LoyaltyPart::bytes() const {
  uint64_t b = members_.capacity() * sizeof(members_[0]) + names_.size() * sizeof(std::string);
  for (const auto& m : members_) {
    if (!m) continue;
    b += sizeof(Member) + m->lots.capacity() * sizeof(Lot) + m->growth_refs.capacity() * sizeof(GrowthRef) +
         m->caps.capacity() * sizeof(Cap);
    for (const Lot& l : m->lots)
      if (l.ref.capacity() > 15) b += l.ref.capacity();
  }
  return b;
}

// --- snapshots ----------------------------------------------------------------------------
//
// The part is written as its name pool, the program's identity (its definition is the
// core's to re-install), its counters, then each member in Ix order: a fixed record, its
// lots, growth references and caps, and one string holding the lots' and references'
// order refs end to end. Lots and caps name rules and reasons by their ids in the pool,
// which Load restores as it was.

// A member's fixed fields. The record types below have no padding, so a snapshot's bytes
// depend on the state alone.
struct MemberRec {
  int64_t growth, debt, enrolled, earned_since, tier_since, next_eval, dwell_at, unlock_at, wake_at, ov_until;
  double metric;
  Ix person;
  uint32_t gen;
  int16_t earned, tier, ov_level;
  uint8_t ov_kind, redefined;
};
static_assert(sizeof(MemberRec) == 104);

struct LotRec {
  int64_t points, remaining, spent, earned_at, expires_at, locked_until;
  uint64_t seq;
  uint32_t rule;
  uint32_t ref;  // the ref's length in the member's string of refs
};
static_assert(sizeof(LotRec) == 64);

struct GrowthRec {
  int64_t at, value;
  uint64_t ref;  // the ref's length
};
static_assert(sizeof(GrowthRec) == 24);
static_assert(sizeof(Cap) == 16 && std::is_trivially_copyable_v<Cap>);

void LoyaltyPart::Save(snap::Writer& w) const {
  w.Part("lifecycle.loyalty");
  w.U64(names_.size());
  for (const std::string& s : names_) w.Str(s);
  w.Bool(def_ != nullptr);
  w.Str(def_ ? std::string_view(def_->name) : std::string_view());
  w.U32(named_machine_);
  w.Vec(level_names_);
  w.U64(lot_seq_);
  w.U32(gen_);
  w.U64(members_count_);
  for (Ix p = 0; p < members_.size(); ++p) {
    const Member* m = members_[p].get();
    if (!m) continue;
    w.Pod(MemberRec{m->growth, m->debt, m->enrolled, m->earned_since, m->tier_since, m->next_eval, m->dwell_at,
                    m->unlock_at, m->wake_at, m->ov.until, m->metric, p, m->gen, m->earned, m->tier, m->ov.level,
                    static_cast<uint8_t>(m->ov.kind), static_cast<uint8_t>(m->redefined)});
    uint64_t refs = 0;
    w.U64(m->lots.size());
    for (const Lot& l : m->lots) {
      w.Pod(LotRec{l.points, l.remaining, l.spent, l.earned_at, l.expires_at, l.locked_until, l.seq, l.rule,
                   static_cast<uint32_t>(l.ref.size())});
      refs += l.ref.size();
    }
    w.U64(m->growth_refs.size());
    for (const GrowthRef& g : m->growth_refs) {
      w.Pod(GrowthRec{g.at, g.value, g.ref.size()});
      refs += g.ref.size();
    }
    w.Vec(m->caps);
    w.U64(refs);
    for (const Lot& l : m->lots) w.Raw(l.ref.data(), l.ref.size());
    for (const GrowthRef& g : m->growth_refs) w.Raw(g.ref.data(), g.ref.size());
  }
}

absl::Status LoyaltyPart::Load(snap::Reader& r) {
  if (!r.Part("lifecycle.loyalty")) return r.status();
  // The pool becomes the saved one, ids and all, so lots and caps keep theirs and a loaded
  // part saves the bytes it was loaded from. The re-installed definition interned its names
  // in a pool of its own making: its ids are rewritten to the saved pool's. That pool may
  // go, although names are otherwise never freed: a part that only had its definitions
  // installed has handed out no view of them.
  std::deque<std::string> pool;
  absl::flat_hash_map<std::string_view, uint32_t> ids;
  for (uint64_t i = 0, n = r.Count(sizeof(uint64_t)); i < n && r.ok(); ++i) {
    pool.emplace_back(r.Str());
    if (pool.back().empty()) continue;  // a forgotten reason: holds its place, names nothing
    if (!ids.emplace(pool.back(), static_cast<uint32_t>(i)).second) r.Fail(Cat("name ", i, " is listed twice"));
  }
  if (!r.ok()) return r.status();
  std::vector<uint32_t> remap;  // the installed pool's ids to the saved pool's
  for (const std::string& s : names_) {
    auto it = ids.find(s);
    if (it == ids.end()) {  // a name no lot or cap uses (the saved pool has all the definition's)
      pool.push_back(s);
      it = ids.emplace(pool.back(), static_cast<uint32_t>(pool.size() - 1)).first;
    }
    remap.push_back(it->second);
  }
  if (def_) {
    auto g = std::make_shared<Program>(*def_);
    for (std::vector<Rule>* rules : {&g->points, &g->growth})
      for (Rule& x : *rules) x.name = remap[x.name];
    for (Level& l : g->levels) l.name = remap[l.name];
    def_ = std::move(g);
  }
  names_ = std::move(pool);
  name_ids_ = std::move(ids);
  // The names the installed definitions named are the installed pool's: a forget keeps them.
  defined_.assign(names_.size(), 0);
  for (uint32_t id : remap) defined_[id] = 1;
  auto name = [&](uint32_t id) -> uint32_t {
    if (id >= names_.size()) r.Fail(Cat("name ", id, " of a pool of ", names_.size()));
    else if (names_[id].empty()) r.Fail(Cat("name ", id, " was forgotten but is in use"));
    return id;
  };
  const bool has_program = r.Bool();
  const std::string_view program = r.Str();
  if (r.ok() && (has_program != (def_ != nullptr) || (def_ && program != def_->name)))
    r.Fail(Cat("the snapshot's loyalty program (\"", program, "\") is not the one installed (\"",
               def_ ? std::string_view(def_->name) : std::string_view(), "\")"));
  named_machine_ = r.U32();
  r.Vec(level_names_);
  for (uint32_t l : level_names_) name(l);
  lot_seq_ = r.U64();
  gen_ = r.U32();

  members_.clear();
  members_count_ = r.Count(sizeof(MemberRec));
  if (members_count_ && !def_) r.Fail("members without a program");
  if (r.ok() && members_count_) members_.resize(core_.persons());
  const int levels = def_ ? static_cast<int>(def_->levels.size()) : 0;
  auto level_ok = [&](int16_t t) { return t == kNoTier || (t >= 0 && t < levels); };
  Ix last = 0;
  std::vector<uint32_t> lens;  // a member's ref lengths, lots first
  for (uint64_t i = 0; i < members_count_ && r.ok(); ++i) {
    const auto x = r.Pod<MemberRec>();
    if (!r.ok()) break;
    // In Ix order, so each person once.
    if (x.person >= members_.size() || (i > 0 && x.person <= last)) {
      r.Fail(Cat("member ", i, " is person ", x.person, " (", core_.persons(), " persons, the last was ", last, ")"));
      break;
    }
    if (!level_ok(x.earned) || !level_ok(x.tier) || x.ov_kind > static_cast<uint8_t>(OverrideKind::kPin) ||
        (x.ov_kind != 0 && (x.ov_level == kNoTier || !level_ok(x.ov_level))) || x.redefined > 1) {
      r.Fail(Cat("member ", i, ": a tier or override out of range"));
      break;
    }
    last = x.person;
    auto m = std::make_unique<Member>();
    m->growth = x.growth;
    m->debt = x.debt;
    m->enrolled = x.enrolled;
    m->earned_since = x.earned_since;
    m->tier_since = x.tier_since;
    m->next_eval = x.next_eval;
    m->dwell_at = x.dwell_at;
    m->unlock_at = x.unlock_at;
    m->wake_at = x.wake_at;
    m->metric = x.metric;
    m->gen = x.gen;
    m->earned = x.earned;
    m->tier = x.tier;
    m->redefined = x.redefined != 0;
    m->ov = Override{static_cast<OverrideKind>(x.ov_kind), x.ov_level, x.ov_until};
    lens.clear();
    m->lots.resize(r.ArrayCount<LotRec>());
    for (Lot& l : m->lots) {
      const auto y = r.Pod<LotRec>();
      l = Lot{y.points, y.remaining, y.spent, y.earned_at, y.expires_at, y.locked_until, y.seq, name(y.rule), {}};
      lens.push_back(y.ref);
    }
    m->growth_refs.resize(r.ArrayCount<GrowthRec>());
    for (GrowthRef& g : m->growth_refs) {
      const auto y = r.Pod<GrowthRec>();
      g.at = y.at;
      g.value = y.value;
      lens.push_back(y.ref > UINT32_MAX ? UINT32_MAX : static_cast<uint32_t>(y.ref));
    }
    r.Vec(m->caps);
    for (Cap& c : m->caps) c.rule = name(c.rule);
    std::string_view refs = r.Str();
    if (!r.ok()) break;
    size_t k = 0;
    auto take = [&](std::string& out) {
      const uint32_t n = lens[k++];
      if (n > refs.size()) return r.Fail(Cat("member ", i, ": its refs are ", refs.size(), " bytes short"));
      out.assign(refs.substr(0, n));
      refs.remove_prefix(n);
    };
    for (Lot& l : m->lots) take(l.ref);
    for (GrowthRef& g : m->growth_refs) take(g.ref);
    if (r.ok() && !refs.empty()) r.Fail(Cat("member ", i, ": ", refs.size(), " bytes of refs left over"));
    members_[x.person] = std::move(m);
  }
  return r.status();
}

}  // namespace

std::unique_ptr<Part> MakeLoyalty(Core& core) { return std::make_unique<LoyaltyPart>(core); }

}  // namespace cdp::life
