// metrics.cpp — the funnel, FAST+ and CLV reports (metrics.hpp, docs/metrics.md).
#include "metrics.hpp"

#include <algorithm>
#include <cmath>
#include <deque>
#include <initializer_list>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "expr_internal.hpp"
#include "json_util.hpp"
#include "simdjson.h"
#include "util.hpp"

namespace cdp::metrics {
namespace {

namespace dom = simdjson::dom;

constexpr uint32_t kMaxSteps = 32;
constexpr uint32_t kMaxLayers = 32;
constexpr uint32_t kMaxTop = 1000;
constexpr uint32_t kDefaultTop = 20;
constexpr uint32_t kMaxWindowDays = 36600;  // the expression language's longest window

absl::Status Bad(std::string_view path, std::string_view message) {
  return absl::InvalidArgumentError(Cat(path, ": ", message));
}

int64_t SatAdd(int64_t a, int64_t b) {
  int64_t r;
  if (!__builtin_add_overflow(a, b, &r)) return r;
  return b > 0 ? INT64_MAX : INT64_MIN;
}

// --- reading the request ------------------------------------------------------------

// One object of the request with its path ("fast.period"). Its keys are checked against
// the ones the metric reads: a typo ("within_day") must be an error, not an option
// silently ignored.
class Obj {
 public:
  static absl::StatusOr<Obj> Of(dom::element e, std::string path,
                                std::initializer_list<std::string_view> keys) {
    dom::object o;
    if (e.get(o)) return Bad(path, "expected an object");
    for (auto [key, val] : o) {
      std::string_view k = key;
      if (std::find(keys.begin(), keys.end(), k) == keys.end()) {
        std::string known;
        for (std::string_view x : keys) known += Cat(known.empty() ? "" : ", ", x);
        return Bad(path, Cat("unknown key \"", k, "\" (expected one of: ", known, ")"));
      }
    }
    return Obj(o, std::move(path));
  }

  const std::string& path() const { return path_; }
  std::string PathOf(std::string_view key) const { return Cat(path_, ".", key); }
  std::optional<dom::element> Get(std::string_view key) const {
    dom::element v;
    if (o_[key].get(v)) return std::nullopt;
    return v;
  }

  // A non-empty string. Absent: an error when required, else out is left empty.
  absl::Status String(std::string_view key, bool required, std::string_view& out) const {
    auto v = Get(key);
    if (!v) return required ? Bad(PathOf(key), "missing") : absl::OkStatus();
    if (v->get(out) || out.empty()) return Bad(PathOf(key), "expected a non-empty string");
    return absl::OkStatus();
  }
  // A local date "YYYY-MM-DD". Absent: an error when required, else nullopt.
  absl::Status Date(std::string_view key, bool required, std::optional<int32_t>& out) const {
    auto v = Get(key);
    if (!v) return required ? Bad(PathOf(key), "missing") : absl::OkStatus();
    std::string_view s;
    int32_t day;
    if (v->get(s) || !expr::ParseDate(s, day))
      return Bad(PathOf(key), Cat("expected a date \"YYYY-MM-DD\", found ", simdjson::minify(*v)));
    out = day;
    return absl::OkStatus();
  }
  // An integer in [lo, hi]; absent: out is left as it is.
  absl::Status Uint(std::string_view key, uint64_t lo, uint64_t hi, uint32_t& out) const {
    auto v = Get(key);
    if (!v) return absl::OkStatus();
    uint64_t x;
    if (v->get(x) || x < lo || x > hi)
      return Bad(PathOf(key), Cat("expected an integer from ", lo, " to ", hi, ", found ", simdjson::minify(*v)));
    out = static_cast<uint32_t>(x);
    return absl::OkStatus();
  }

 private:
  Obj(dom::object o, std::string path) : o_(o), path_(std::move(path)) {}
  dom::object o_;
  std::string path_;
};

// A range of local days and the instants it covers: [from_ms, to_ms).
struct Window {
  int32_t from_day = 0, to_day = 0;
  int64_t from_ms = 0, to_ms = 0;
};

Window MakeWindow(const TimeZone& zone, int32_t from_day, int32_t to_day) {
  return {from_day, to_day, zone.DayStart(from_day), zone.DayStart(to_day + 1)};
}

// Reads {"from":..,"to":..} (both required) from o's keys.
absl::Status ReadWindow(const Obj& o, const TimeZone& zone, Window& w) {
  std::optional<int32_t> from, to;
  if (auto st = o.Date("from", true, from); !st.ok()) return st;
  if (auto st = o.Date("to", true, to); !st.ok()) return st;
  if (*from > *to) return Bad(o.PathOf("to"), "is before from");
  if (*to - *from >= static_cast<int32_t>(kMaxWindowDays))
    return Bad(o.PathOf("to"), Cat("the period is longer than ", kMaxWindowDays, " days"));
  w = MakeWindow(zone, *from, *to);
  return absl::OkStatus();
}

// --- the population -----------------------------------------------------------------

// Calls f(slot) for each live slot of the population in ascending order while f returns
// true. Member slots that are free (or past the store) are skipped: an audience bitmap
// may be older than the last merge.
template <typename F>
void ForEachSlot(const Population& pop, F&& f) {
  const uint32_t n = pop.store.slots();
  if (!pop.members) {
    for (uint32_t s = 0; s < n; ++s)
      if (pop.store.AtSlot(s) && !f(s)) return;
    return;
  }
  // The C iterator, not Roaring::end(): that one is a function-local static shared by
  // every bitmap of the process.
  roaring_uint32_iterator_t it;
  roaring_init_iterator(&pop.members->roaring, &it);
  for (; it.has_value && it.current_value < n; roaring_advance_uint32_iterator(&it))
    if (pop.store.AtSlot(it.current_value) && !f(it.current_value)) return;
}

// --- report helpers -------------------------------------------------------------------

void WriteMoney(json::Writer& w, int64_t fen) {
  std::string s;
  expr::AppendMoney(s, fen);
  w.Raw(s);
}

// num / den rounded to 4 decimals (a rate is read, not computed with); null when den is 0.
void WriteRate(json::Writer& w, uint64_t num, uint64_t den) {
  if (den == 0) {
    w.Null();
    return;
  }
  std::string s;
  expr::AppendDouble(s, std::round(static_cast<double>(num) / static_cast<double>(den) * 1e4) / 1e4);
  w.Raw(s);
}

void WriteDates(json::Writer& w, const Window& win) {
  w.BeginObject();
  w.Key("from").String(expr::DateText(win.from_day));
  w.Key("to").String(expr::DateText(win.to_day));
  w.EndObject();
}

// The values of an event property as groups of a report, each with `width` counters. A
// value's key is its JSON text, so 1 and "1" stay apart and the key prints as the value.
class Groups {
 public:
  explicit Groups(size_t width) : width_(width) {}
  uint64_t* Row(std::string_view key) {
    auto it = index_.find(key);
    if (it == index_.end()) {
      keys_.emplace_back(key);
      it = index_.emplace(keys_.back(), static_cast<uint32_t>(keys_.size() - 1)).first;
      counts_.resize(counts_.size() + width_, 0);
    }
    return &counts_[it->second * width_];
  }
  size_t size() const { return keys_.size(); }
  std::string_view Key(uint32_t g) const { return keys_[g]; }
  const uint64_t* Counts(uint32_t g) const { return &counts_[g * width_]; }
  // Group indexes by counter col descending, then by key: a total order.
  std::vector<uint32_t> Ranked(size_t col) const {
    std::vector<uint32_t> order(keys_.size());
    for (uint32_t g = 0; g < order.size(); ++g) order[g] = g;
    std::sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) {
      uint64_t ca = Counts(a)[col], cb = Counts(b)[col];
      return ca != cb ? ca > cb : keys_[a] < keys_[b];
    });
    return order;
  }

 private:
  size_t width_;
  std::deque<std::string> keys_;  // stable: the index points into them
  absl::flat_hash_map<std::string_view, uint32_t, StrHash, StrEq> index_;
  std::vector<uint64_t> counts_;
};

void ValueKey(const Value& v, std::string& out) {
  out.clear();
  AppendValueJson(out, v);
}

// --- funnel ---------------------------------------------------------------------------

struct FunnelSpec {
  std::vector<std::string_view> steps;  // event type names
  std::vector<uint32_t> types;          // the distinct event types of the steps
  std::vector<uint32_t> step_type;      // step -> index into types
  Window win;
  uint32_t within_days = 0;  // 0: no limit
  int64_t within_ms = 0;
  std::string_view by;
  uint32_t by_key = 0;
  uint32_t top = kDefaultTop;
};

absl::Status ReadFunnel(dom::element root, Names& names, FunnelSpec& f) {
  auto o = Obj::Of(root, "funnel", {"metric", "steps", "from", "to", "within_days", "by", "top"});
  if (!o.ok()) return o.status();
  auto steps = o->Get("steps");
  dom::array arr;
  if (!steps) return Bad("funnel.steps", "missing");
  if (steps->get(arr)) return Bad("funnel.steps", "expected a list of event type names");
  if (arr.size() == 0 || arr.size() > kMaxSteps)
    return Bad("funnel.steps", Cat("expected 1 to ", kMaxSteps, " steps, found ", arr.size()));
  size_t i = 0;
  for (dom::element el : arr) {
    std::string_view s;
    if (el.get(s) || s.empty())
      return Bad(Cat("funnel.steps[", i, "]"), Cat("expected an event type name, found ", simdjson::minify(el)));
    uint32_t t = names.EventType(s);
    auto at = std::find(f.types.begin(), f.types.end(), t);
    f.step_type.push_back(static_cast<uint32_t>(at - f.types.begin()));
    if (at == f.types.end()) f.types.push_back(t);
    f.steps.push_back(s);
    ++i;
  }
  if (auto st = ReadWindow(*o, names.Zone(), f.win); !st.ok()) return st;
  if (auto st = o->Uint("within_days", 1, kMaxWindowDays, f.within_days); !st.ok()) return st;
  f.within_ms = int64_t{f.within_days} * kMsPerDay;
  if (auto st = o->String("by", false, f.by); !st.ok()) return st;
  if (!f.by.empty()) f.by_key = names.PropKey(f.by);
  return o->Uint("top", 1, kMaxTop, f.top);
}

// How many steps a person reaches: the longest prefix of the steps matched by distinct
// events, each at or after the previous one's time and, with a limit, less than within_ms
// after the first. ts[t]: the person's event times of types[t] in the window, ascending.
//
// For one first event, taking at each step the earliest event that fits is optimal (any
// other choice only moves later steps later). A later first event yields a chain that is
// pointwise no earlier, so without a limit the earliest first event is the answer, and a
// chain that ran out of events (rather than out of time) ends the search.
uint32_t FunnelDepth(const FunnelSpec& f, const std::vector<std::vector<int64_t>>& ts,
                     std::vector<int64_t>& used) {
  const std::vector<int64_t>& first = ts[f.step_type[0]];
  const uint32_t k = static_cast<uint32_t>(f.steps.size());
  if (first.empty()) return 0;
  if (k == 1) return 1;
  uint32_t best = 1;
  for (size_t i = 0; i < first.size(); ++i) {
    std::fill(used.begin(), used.end(), -1);  // per type: the last event taken
    used[f.step_type[0]] = static_cast<int64_t>(i);
    int64_t prev = first[i];
    const int64_t deadline = f.within_ms ? SatAdd(first[i], f.within_ms) : INT64_MAX;
    uint32_t d = 1;
    bool ran_out = false;
    for (; d < k; ++d) {
      const uint32_t t = f.step_type[d];
      const std::vector<int64_t>& l = ts[t];
      int64_t j = std::lower_bound(l.begin(), l.end(), prev) - l.begin();
      j = std::max(j, used[t] + 1);
      if (j >= static_cast<int64_t>(l.size())) {
        ran_out = true;
        break;
      }
      if (l[j] >= deadline) break;
      used[t] = j;
      prev = l[j];
    }
    best = std::max(best, d);
    if (best == k || ran_out || !f.within_ms) break;
  }
  return best;
}

void WriteFunnelSteps(json::Writer& w, const FunnelSpec& f, const uint64_t* reached, bool names) {
  w.BeginArray();
  for (size_t i = 0; i < f.steps.size(); ++i) {
    w.BeginObject();
    if (names) w.Key("event").String(f.steps[i]);
    w.Key("persons").Uint(reached[i]);
    w.Key("from_previous");
    if (i == 0) w.Null();
    else WriteRate(w, reached[i], reached[i - 1]);
    w.Key("from_first");
    WriteRate(w, reached[i], reached[0]);
    w.EndObject();
  }
  w.EndArray();
}

absl::StatusOr<std::string> RunFunnel(const Population& pop, dom::element root, Names& names) {
  FunnelSpec f;
  if (auto st = ReadFunnel(root, names, f); !st.ok()) return st;
  const size_t k = f.steps.size();
  std::vector<uint64_t> reached(k, 0);
  Groups groups(k);
  std::vector<std::vector<int64_t>> ts(f.types.size());
  std::vector<int64_t> used(f.types.size());
  std::string key;
  uint64_t persons = 0;
  ForEachSlot(pop, [&](uint32_t slot) {
    ++persons;
    pop.with_subject(slot, [&](const Subject& s) {
      key.clear();
      for (size_t t = 0; t < f.types.size(); ++t) {
        ts[t].clear();
        const bool first_step = t == f.step_type[0];
        s.Scan(f.types[t], f.win.from_ms, f.win.to_ms, false, [&](const EventView& e) {
          if (first_step && !f.by.empty() && ts[t].empty()) ValueKey(s.Prop(e, f.by_key), key);
          ts[t].push_back(e.ts);
          return true;
        });
      }
      const uint32_t depth = FunnelDepth(f, ts, used);
      if (depth == 0) return;
      uint64_t* row = f.by.empty() ? nullptr : groups.Row(key);
      for (uint32_t d = 0; d < depth; ++d) {
        ++reached[d];
        if (row) ++row[d];
      }
    });
    return true;
  });

  std::string out;
  json::Writer w(out);
  w.BeginObject();
  w.Key("metric").String("funnel");
  w.Key("from").String(expr::DateText(f.win.from_day));
  w.Key("to").String(expr::DateText(f.win.to_day));
  w.Key("within_days");
  if (f.within_days) w.Uint(f.within_days);
  else w.Null();
  w.Key("persons").Uint(persons);
  w.Key("steps");
  WriteFunnelSteps(w, f, reached.data(), true);
  w.Key("by");
  if (f.by.empty()) {
    w.Null();
  } else {
    std::vector<uint32_t> order = groups.Ranked(0);
    w.BeginObject();
    w.Key("prop").String(f.by);
    w.Key("values").Uint(groups.size());
    w.Key("groups").BeginArray();
    std::vector<uint64_t> other(k, 0);
    for (size_t r = 0; r < order.size(); ++r) {
      const uint64_t* c = groups.Counts(order[r]);
      if (r >= f.top) {
        for (size_t d = 0; d < k; ++d) other[d] += c[d];
        continue;
      }
      w.BeginObject();
      w.Key("value").Raw(groups.Key(order[r]));
      w.Key("steps");
      WriteFunnelSteps(w, f, c, false);
      w.EndObject();
    }
    w.EndArray();
    w.Key("other");
    if (order.size() <= f.top) {
      w.Null();
    } else {
      w.BeginObject();
      w.Key("values").Uint(order.size() - f.top);
      w.Key("steps");
      WriteFunnelSteps(w, f, other.data(), false);
      w.EndObject();
    }
    w.EndObject();
  }
  w.EndObject();
  return out;
}

// --- FAST+ ------------------------------------------------------------------------------

struct FastSpec {
  std::vector<std::string_view> layer_names;  // shallow to deep
  std::vector<Expr> layers;
  // A lifecycle machine as the layers: its states after the initial one, in ladder order.
  std::string_view machine;
  std::vector<std::string> machine_states;
  std::vector<int> layer_of_state;  // state index -> layer index, -1 for the initial state
  Window period, previous;
  bool connection = false;
  std::string_view conn_event, conn_prop;
  uint32_t conn_type = 0, conn_key = 0;
  uint32_t top = kDefaultTop;
};

absl::Status ReadFast(dom::element root, Names& names, const ExprLimits& lim, const Lifecycle* life, FastSpec& f) {
  auto o = Obj::Of(root, "fast", {"metric", "layers", "machine", "period", "previous", "connection"});
  if (!o.ok()) return o.status();
  auto layers = o->Get("layers");
  dom::array arr;
  if (auto m = o->Get("machine")) {
    if (layers) return Bad("fast.machine", "give \"layers\" or \"machine\", not both");
    if (m->get(f.machine) || f.machine.empty()) return Bad("fast.machine", "expected a machine's name");
    uint16_t initial = 0;
    if (!life || !life->Describe(f.machine, f.machine_states, initial))
      return Bad("fast.machine", Cat("no lifecycle machine named ", f.machine));
    if (f.machine_states.size() < 2) return Bad("fast.machine", "the machine needs a state besides its initial one");
    for (size_t i = 0; i < f.machine_states.size(); ++i) {
      f.layer_of_state.push_back(i == initial ? -1 : static_cast<int>(f.layer_names.size()));
      if (i != initial) f.layer_names.push_back(f.machine_states[i]);
    }
  } else if (!layers) {
    return Bad("fast.layers", "missing (or name a lifecycle \"machine\")");
  }
  if (f.machine.empty()) {  // layers as conditions
    if (layers->get(arr)) return Bad("fast.layers", "expected a list of {\"name\",\"when\"}, shallow to deep");
    if (arr.size() == 0 || arr.size() > kMaxLayers)
      return Bad("fast.layers", Cat("expected 1 to ", kMaxLayers, " layers, found ", arr.size()));
    size_t i = 0;
    for (dom::element el : arr) {
      auto l = Obj::Of(el, Cat("fast.layers[", i, "]"), {"name", "when"});
      if (!l.ok()) return l.status();
      std::string_view name;
      if (auto st = l->String("name", true, name); !st.ok()) return st;
      if (std::find(f.layer_names.begin(), f.layer_names.end(), name) != f.layer_names.end())
        return Bad(l->PathOf("name"), Cat("layer \"", name, "\" is defined twice"));
      auto when = l->Get("when");
      if (!when) return Bad(l->PathOf("when"), "missing");
      // The condition as text, or as the JSON AST a UI builds.
      std::string_view text;
      absl::StatusOr<Expr> e = absl::InvalidArgumentError("expected an expression (text or JSON AST object)");
      if (!when->get(text)) e = Expr::Compile(text, names, lim);
      else if (when->is_object()) e = Expr::FromAst(simdjson::minify(*when), names, lim);
      if (!e.ok()) return Bad(l->PathOf("when"), std::string(e.status().message()));
      std::string_view type = e->result_type();
      if (type != "bool" && type != "any")
        return Bad(l->PathOf("when"), Cat("expected a condition (bool), found ", type));
      f.layer_names.push_back(name);
      f.layers.push_back(*std::move(e));
      ++i;
    }
  }

  auto period = o->Get("period");
  if (!period) return Bad("fast.period", "missing");
  auto p = Obj::Of(*period, "fast.period", {"from", "to"});
  if (!p.ok()) return p.status();
  if (auto st = ReadWindow(*p, names.Zone(), f.period); !st.ok()) return st;
  if (auto prev = o->Get("previous")) {
    auto q = Obj::Of(*prev, "fast.previous", {"from", "to"});
    if (!q.ok()) return q.status();
    if (auto st = ReadWindow(*q, names.Zone(), f.previous); !st.ok()) return st;
  } else {
    // The period of the same length just before.
    const int32_t len = f.period.to_day - f.period.from_day + 1;
    f.previous = MakeWindow(names.Zone(), f.period.from_day - len, f.period.from_day - 1);
  }

  if (auto conn = o->Get("connection")) {
    auto c = Obj::Of(*conn, "fast.connection", {"event", "prop", "top"});
    if (!c.ok()) return c.status();
    if (auto st = c->String("event", true, f.conn_event); !st.ok()) return st;
    if (auto st = c->String("prop", true, f.conn_prop); !st.ok()) return st;
    if (auto st = c->Uint("top", 1, kMaxTop, f.top); !st.ok()) return st;
    f.connection = true;
    f.conn_type = names.EventType(f.conn_event);
    f.conn_key = names.PropKey(f.conn_prop);
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> RunFast(const Population& pop, dom::element root, Names& names,
                                    const ExprLimits& lim) {
  FastSpec f;
  if (auto st = ReadFast(root, names, lim, pop.lifecycle, f); !st.ok()) return st;
  const size_t nl = f.layer_names.size();
  // Each layer's condition is judged at the last instant of a period, so relative
  // windows (this_month, 30d) and comparisons with now() read that period.
  const int64_t now = f.period.to_ms - 1, before = f.previous.to_ms - 1;
  std::vector<uint64_t> in_layer(nl, 0), in_layer_before(nl, 0);
  uint64_t persons = 0, capital = 0, capital_before = 0, deepened = 0;
  uint64_t visitors = 0, active = 0;
  Groups fields(2);  // visitors, active
  std::vector<std::string> seen;  // the person's distinct field keys
  size_t seen_n = 0;
  std::string key;
  Evaluator ev(lim);
  absl::Status failed;

  // The deepest layer whose condition holds at t, or -1.
  auto layer_at = [&](const Subject& s, int64_t t, uint32_t slot) -> int {
    if (!f.machine.empty()) {
      int st = pop.lifecycle->StateAt(f.machine, pop.store.AtSlot(slot)->oneid, t);
      return st < 0 ? -1 : f.layer_of_state[st];
    }
    for (size_t i = nl; i-- > 0;) {
      auto r = ev.Eval(f.layers[i], s, t);
      if (!r.ok()) {
        failed = absl::Status(r.status().code(),
                              Cat("fast.layers[", i, "].when: ", r.status().message(), " (OneID ",
                                  pop.store.AtSlot(slot)->oneid, ")"));
        return -1;
      }
      if (r->value.kind == ValueKind::kBool && r->value.b) return static_cast<int>(i);
    }
    return -1;
  };

  ForEachSlot(pop, [&](uint32_t slot) {
    ++persons;
    pop.with_subject(slot, [&](const Subject& s) {
      const int cur = layer_at(s, now, slot);
      if (!failed.ok()) return;
      const int prev = layer_at(s, before, slot);
      if (!failed.ok()) return;
      if (cur >= 0) {
        ++capital;
        ++in_layer[cur];
      }
      if (prev >= 0) {
        ++capital_before;
        ++in_layer_before[prev];
      }
      if (cur > prev) ++deepened;
      if (!f.connection) return;
      seen_n = 0;
      s.Scan(f.conn_type, f.period.from_ms, f.period.to_ms, false, [&](const EventView& e) {
        ValueKey(s.Prop(e, f.conn_key), key);
        if (std::find(seen.begin(), seen.begin() + seen_n, key) != seen.begin() + seen_n) return true;
        if (seen_n == seen.size()) seen.emplace_back();
        seen[seen_n++] = key;
        uint64_t* row = fields.Row(key);
        ++row[0];
        if (cur >= 0) ++row[1];
        return true;
      });
      if (seen_n > 0) {
        ++visitors;
        if (cur >= 0) ++active;
      }
    });
    return failed.ok();
  });
  if (!failed.ok()) return failed;

  std::string out;
  json::Writer w(out);
  w.BeginObject();
  w.Key("metric").String("fast");
  w.Key("period");
  WriteDates(w, f.period);
  w.Key("previous");
  WriteDates(w, f.previous);
  w.Key("persons").Uint(persons);
  w.Key("capital").Uint(capital);
  w.Key("previous_capital").Uint(capital_before);
  w.Key("layers").BeginArray();
  for (size_t i = 0; i < nl; ++i) {
    w.BeginObject();
    w.Key("name").String(f.layer_names[i]);
    w.Key("persons").Uint(in_layer[i]);
    w.Key("previous_persons").Uint(in_layer_before[i]);
    w.EndObject();
  }
  w.EndArray();
  w.Key("conversion").BeginObject();
  w.Key("deepened").Uint(deepened);
  w.Key("rate");
  WriteRate(w, deepened, capital_before);
  w.EndObject();
  w.Key("connection");
  if (!f.connection) {
    w.Null();
  } else {
    auto counts = [&](uint64_t v, uint64_t a) {
      w.Key("visitors").Uint(v);
      w.Key("active").Uint(a);
      w.Key("rate");
      WriteRate(w, a, v);
    };
    w.BeginObject();
    w.Key("event").String(f.conn_event);
    w.Key("prop").String(f.conn_prop);
    counts(visitors, active);
    w.Key("fields").BeginArray();
    std::vector<uint32_t> order = fields.Ranked(0);
    uint64_t other_v = 0, other_a = 0;
    for (size_t r = 0; r < order.size(); ++r) {
      const uint64_t* c = fields.Counts(order[r]);
      if (r >= f.top) {
        other_v += c[0];
        other_a += c[1];
        continue;
      }
      w.BeginObject();
      w.Key("value").Raw(fields.Key(order[r]));
      counts(c[0], c[1]);
      w.EndObject();
    }
    w.EndArray();
    w.Key("other");
    if (order.size() <= f.top) {
      w.Null();
    } else {
      w.BeginObject();
      w.Key("values").Uint(order.size() - f.top);
      counts(other_v, other_a);
      w.EndObject();
    }
    w.EndObject();
  }
  w.EndObject();
  return out;
}

// --- CLV --------------------------------------------------------------------------------

struct ClvSpec {
  std::string_view event;
  uint32_t type = 0;
  std::optional<int32_t> from_day, to_day;
  int64_t from_ms = INT64_MIN, to_ms = INT64_MAX;
  bool referrer = false;
  std::string_view ref_prop, ref_id_type;
  uint32_t ref_key = 0;
  uint32_t ref_type = 0;
  uint32_t top = kDefaultTop;
};

absl::Status ReadClv(dom::element root, Names& names, ClvSpec& c) {
  auto o = Obj::Of(root, "clv", {"metric", "event", "referrer", "from", "to", "top"});
  if (!o.ok()) return o.status();
  if (auto st = o->String("event", true, c.event); !st.ok()) return st;
  c.type = names.EventType(c.event);
  if (auto st = o->Date("from", false, c.from_day); !st.ok()) return st;
  if (auto st = o->Date("to", false, c.to_day); !st.ok()) return st;
  if (c.from_day && c.to_day && *c.from_day > *c.to_day) return Bad("clv.to", "is before from");
  if (c.from_day) c.from_ms = names.Zone().DayStart(*c.from_day);
  if (c.to_day) c.to_ms = names.Zone().DayStart(*c.to_day + 1);
  if (auto st = o->Uint("top", 0, kMaxTop, c.top); !st.ok()) return st;
  if (auto ref = o->Get("referrer")) {
    auto r = Obj::Of(*ref, "clv.referrer", {"prop", "id_type"});
    if (!r.ok()) return r.status();
    if (auto st = r->String("prop", true, c.ref_prop); !st.ok()) return st;
    if (auto st = r->String("id_type", true, c.ref_id_type); !st.ok()) return st;
    int t = names.IdType(c.ref_id_type);
    if (t < 0) return Bad("clv.referrer.id_type", Cat("unknown identifier type \"", c.ref_id_type, "\""));
    c.referrer = true;
    c.ref_key = names.PropKey(c.ref_prop);
    c.ref_type = static_cast<uint32_t>(t);
  }
  return absl::OkStatus();
}

// The live person an identifier value names (0: none), through the population's resolve
// when it has one (a scoped type's value is written SCOPE/VALUE, as for cdp_resolve).
uint64_t ResolveReferrer(const Population& pop, uint32_t type, const Value& v, std::string& raw) {
  if (v.kind == ValueKind::kString) raw.assign(v.str());
  else if (v.kind == ValueKind::kInt) raw = std::to_string(v.i);
  else return 0;
  if (pop.resolve) return pop.resolve(type, raw);
  const IdentityGraph& g = pop.store.graph();
  NodeId n = g.Find(type, raw);
  return n == kNoNode ? 0 : g.OneIdOf(n);
}

absl::StatusOr<std::string> RunClv(const Population& pop, dom::element root, Names& names) {
  ClvSpec c;
  if (auto st = ReadClv(root, names, c); !st.ok()) return st;
  struct Row {
    uint64_t oneid;
    int64_t own = 0, propagation = 0;
    uint32_t referred = 0;
  };
  std::vector<Row> rows;
  absl::flat_hash_map<uint64_t, uint32_t> row_of;  // OneID -> row
  uint64_t buyers = 0;
  ForEachSlot(pop, [&](uint32_t slot) {
    Row row{pop.store.AtSlot(slot)->oneid};
    bool bought = false;
    pop.with_subject(slot, [&](const Subject& s) {
      s.Scan(c.type, c.from_ms, c.to_ms, false, [&](const EventView& e) {
        row.own = SatAdd(row.own, e.amount);
        bought = true;
        return true;
      });
    });
    buyers += bought;
    row_of.emplace(row.oneid, static_cast<uint32_t>(rows.size()));
    rows.push_back(row);
    return true;
  });

  // Propagation: every person of the store whose events name a referrer is a referred
  // buyer, inside the population or not; the referrer is credited when it is in the
  // population. The attribution is first-touch: the referrer named by the buyer's earliest
  // such event, and the buyer's events from that one on (inside the window) are the value
  // the referral propagated. Only events are read, so the profile view is enough here.
  uint64_t referred = 0, resolved = 0, self = 0, unresolved = 0;
  if (c.referrer) {
    std::string raw;
    const uint32_t n = pop.store.slots();
    for (uint32_t slot = 0; slot < n; ++slot) {
      const Profile* p = pop.store.AtSlot(slot);
      if (!p) continue;
      ProfileView v(pop.store, p, p->oneid);
      Value ref;
      int64_t since = 0;
      v.Scan(c.type, INT64_MIN, INT64_MAX, false, [&](const EventView& e) {
        Value x = v.Prop(e, c.ref_key);
        if (x.is_null() || (x.kind == ValueKind::kString && x.len == 0)) return true;
        ref = x;
        since = e.ts;
        return false;
      });
      if (ref.is_null()) continue;
      ++referred;
      const uint64_t referrer = ResolveReferrer(pop, c.ref_type, ref, raw);
      if (referrer == 0) {
        ++unresolved;
        continue;
      }
      if (referrer == p->oneid) {
        ++self;
        continue;
      }
      ++resolved;
      auto it = row_of.find(referrer);
      if (it == row_of.end()) continue;
      int64_t value = 0;
      v.Scan(c.type, std::max(since, c.from_ms), c.to_ms, false, [&](const EventView& e) {
        value = SatAdd(value, e.amount);
        return true;
      });
      Row& r = rows[it->second];
      r.propagation = SatAdd(r.propagation, value);
      ++r.referred;
    }
  }

  int64_t own = 0, propagation = 0;
  uint64_t with_propagation = 0;
  std::vector<uint32_t> listed;
  for (uint32_t i = 0; i < rows.size(); ++i) {
    own = SatAdd(own, rows[i].own);
    propagation = SatAdd(propagation, rows[i].propagation);
    with_propagation += rows[i].propagation != 0;
    if (rows[i].own != 0 || rows[i].propagation != 0) listed.push_back(i);
  }
  auto clv = [&](uint32_t i) { return SatAdd(rows[i].own, rows[i].propagation); };
  const size_t top = std::min<size_t>(c.top, listed.size());
  std::partial_sort(listed.begin(), listed.begin() + top, listed.end(), [&](uint32_t a, uint32_t b) {
    int64_t ca = clv(a), cb = clv(b);
    return ca != cb ? ca > cb : rows[a].oneid < rows[b].oneid;
  });

  std::string out;
  json::Writer w(out);
  w.BeginObject();
  w.Key("metric").String("clv");
  w.Key("event").String(c.event);
  w.Key("from");
  if (c.from_day) w.String(expr::DateText(*c.from_day));
  else w.Null();
  w.Key("to");
  if (c.to_day) w.String(expr::DateText(*c.to_day));
  else w.Null();
  w.Key("persons").Uint(rows.size());
  w.Key("buyers").Uint(buyers);
  w.Key("own");
  WriteMoney(w, own);
  w.Key("propagation");
  WriteMoney(w, propagation);
  w.Key("clv");
  WriteMoney(w, SatAdd(own, propagation));
  w.Key("with_propagation").Uint(with_propagation);
  w.Key("referrals");
  if (!c.referrer) {
    w.Null();
  } else {
    w.BeginObject();
    w.Key("prop").String(c.ref_prop);
    w.Key("id_type").String(c.ref_id_type);
    w.Key("referred").Uint(referred);
    w.Key("resolved").Uint(resolved);
    w.Key("self").Uint(self);
    w.Key("unresolved").Uint(unresolved);
    w.EndObject();
  }
  w.Key("top").BeginArray();
  for (size_t k = 0; k < top; ++k) {
    const Row& r = rows[listed[k]];
    w.BeginObject();
    w.Key("oneid").Uint(r.oneid);
    w.Key("own");
    WriteMoney(w, r.own);
    w.Key("propagation");
    WriteMoney(w, r.propagation);
    w.Key("clv");
    WriteMoney(w, clv(listed[k]));
    w.Key("referred").Uint(r.referred);
    w.EndObject();
  }
  w.EndArray();
  w.EndObject();
  return out;
}

}  // namespace

absl::StatusOr<std::string> Run(const Population& pop, std::string_view request_json, Names& names,
                                const ExprLimits& lim) {
  // The locator first, so that a syntax error gets a line and column.
  if (auto st = json::CheckSyntax(request_json, "request", /*with_path=*/true); !st.ok()) return st;
  dom::parser parser;
  dom::element root;
  if (auto err = parser.parse(request_json.data(), request_json.size()).get(root); err)
    return Bad("request", simdjson::error_message(err));
  if (!root.is_object()) return Bad("request", "expected a JSON object");
  std::string_view metric;
  dom::element m;
  if (root["metric"].get(m)) return Bad("metric", "missing (expected \"funnel\", \"fast\" or \"clv\")");
  if (m.get(metric)) return Bad("metric", "expected a string: \"funnel\", \"fast\" or \"clv\"");
  if (metric == "funnel") return RunFunnel(pop, root, names);
  if (metric == "fast") return RunFast(pop, root, names, lim);
  if (metric == "clv") return RunClv(pop, root, names);
  return Bad("metric", Cat("unknown metric \"", metric, "\" (expected \"funnel\", \"fast\" or \"clv\")"));
}

}  // namespace cdp::metrics
