// Lifecycle machines (docs/lifecycle.md): data-defined state machines over a person's
// events, timers and conditions — AIPL, FAST+ layers, new → active → dormant → churned.
//
// Per machine, each person has one cell: the state, when it was entered, and the earliest
// pending deadline of the state's timers. A timer in the core's heap carries the cell's
// generation, so leaving a state cancels its timers without touching the heap. Before an
// event is applied, a deadline of the person's that is due by the event's time fires
// first, so the order of an event and a timer never depends on when the host advances.
//
// The hot path is an event no transition reads: one byte per event type says whether any
// transition (or the start rule) of the machine reads it, and a condition transition is
// examined only when its guard reads that event type, attributes the record carried, or
// something any record moves (person.*, tags, states).
#include <algorithm>
#include <optional>

#include "life_internal.hpp"
#include "tags_internal.hpp"
#include "util.hpp"

namespace cdp::life {
namespace {

namespace dom = simdjson::dom;

constexpr uint16_t kNone = 0xFFFF;  // not in the machine (yet)
constexpr uint16_t kAny = 0xFFFE;   // "from": "*"
constexpr int kMaxChain = 32;       // condition transitions taken in a row

enum class Trigger : uint8_t { kEvent, kAfter, kAt, kPeriodEnd, kCondition };
enum class Period : uint8_t { kNone, kDay, kWeek, kMonth, kQuarter, kYear };

std::string_view PeriodName(Period p) {
  switch (p) {
    case Period::kNone: return "none";
    case Period::kDay: return "day";
    case Period::kWeek: return "week";
    case Period::kMonth: return "month";
    case Period::kQuarter: return "quarter";
    case Period::kYear: return "year";
  }
  return "none";
}

bool ParsePeriod(std::string_view s, Period& out) {
  for (Period p : {Period::kDay, Period::kWeek, Period::kMonth, Period::kQuarter, Period::kYear})
    if (s == PeriodName(p)) { out = p; return true; }
  return false;
}

struct Trans {
  std::vector<uint16_t> from;  // state indexes, or {kAny}
  uint16_t to = kNone;         // kNone: "restart" (stay, restart the state's timers)
  Trigger trigger = Trigger::kEvent;
  std::vector<uint32_t> events;  // kEvent: event types (empty: any event)
  int64_t after = 0;             // kAfter: ms in the state
  int64_t tod = 0;               // kAt: local time of day (ms after midnight)
  int32_t days = 0;              // kAt: on the Nth local day after entering (0: the next such time)
  Period period = Period::kNone; // kPeriodEnd
  bool has_when = false;
  std::optional<Expr> when;
  tags::ReadSet reads;           // of the guard (condition transitions)
  std::string action, channel;   // an intent to emit when taken (action empty: none)
  Template payload;
  std::string label;             // "transitions[3]", for reasons
  bool From(uint16_t s) const { return from[0] == kAny || std::find(from.begin(), from.end(), s) != from.end(); }
};

struct Def {
  uint32_t id = 0;  // ProfileStore::Machine
  std::string name, description, json;
  int64_t version = 1;
  std::vector<std::string> states;
  uint16_t initial = 0;
  bool monotonic = false;
  Period reset = Period::kNone;  // per-period machines go back to initial at each period's start
  std::vector<uint32_t> start;   // event types that enter a person (empty: any record)
  bool start_any = true;
  uint32_t import_attr = 0;      // an attribute carrying the state from outside
  bool has_import = false;
  std::vector<Trans> trans;
  // Indexes into trans, per state: event, timer and condition transitions ("*" included).
  std::vector<std::vector<uint16_t>> on_event, timers, conditions;
  std::vector<uint8_t> reads_event;   // by event type: a transition or the start rule reads it
  bool any_event = false;             // a transition fires on any event
  bool cond_on_any_record = false;    // a condition reads attributes, person.*, tags or states
  std::vector<uint32_t> cond_events;  // event types conditions read (sorted)
  bool cond_any_event = false;
};

struct Cell {
  int64_t entered = 0;
  int64_t due = kForever;          // the state's next timer deadline
  int64_t period_due = kForever;   // the next period reset
  uint32_t gen = 0;
  uint16_t state = kNone;
  uint16_t unused = 0;  // named, so no padding: snapshots copy cells byte for byte
};

struct Machine {
  std::unique_ptr<Def> def;
  std::vector<Cell> cells;          // by Ix
  std::vector<uint64_t> in;         // by Ix, a bit: in the machine (the cache-friendly skip test)
  std::vector<uint64_t> counts;     // persons per state
  uint64_t refused = 0;             // backward moves refused on a monotonic machine
};

class Machines final : public Part {
 public:
  explicit Machines(Core& core) : Part(core) {}

  std::string_view section() const override { return "machines"; }
  bool Owns(std::string_view kind) const override { return kind == "machine"; }
  bool Handles(std::string_view op) const override { return op == "set_state"; }
  bool empty() const override { return live_ == 0; }

  absl::StatusOr<Installer> Prepare(dom::element root, int64_t now) override;
  absl::Status Drop(std::string_view name) override;
  absl::Status Apply(std::string_view op, dom::object req, Ix p, int64_t now, json::Writer& out) override;
  void OnEvent(Ix, const LifeEvent&) override {}
  void OnRecord(Ix p, const LifeEvent& e) override;
  void Fire(const Timer& t) override;
  void Merge(Ix survivor, Ix absorbed, int64_t now) override;
  void Clear(Ix p) override;
  void AppendPerson(json::Writer& w, Ix p) const override;
  void AppendCatalog(json::Writer& w) const override;
  bool StateOf(uint32_t machine, Ix p, Value& out) const override;
  std::string_view StateName(uint32_t machine, uint16_t s) const override;
  bool Describe(uint32_t machine, std::vector<std::string>& states, uint16_t& initial) const override {
    int64_t mi = FindMachine(machine);
    if (mi < 0) return false;
    states = machines_[mi].def->states;
    initial = machines_[mi].def->initial;
    return true;
  }
  uint64_t bytes() const override;
  void Save(snap::Writer& w) const override;
  absl::Status Load(snap::Reader& r) override;

 private:
  absl::StatusOr<std::unique_ptr<Def>> Parse(dom::element el, const std::string& path);
  Cell& CellOf(Machine& m, Ix p) {
    if (p >= m.cells.size()) m.cells.resize(std::max<size_t>(core_.persons(), p + 1));
    return m.cells[p];
  }
  const Cell* CellAt(const Machine& m, Ix p) const { return p < m.cells.size() ? &m.cells[p] : nullptr; }
  int64_t Deadline(const Def& d, const Trans& t, int64_t entered) const;
  int64_t PeriodStart(Period per, int64_t after) const;  // the first period start > after
  // Moves p to state to at ts; records, feeds, schedules, emits the action, follows conditions.
  void Enter(uint32_t mi, Ix p, uint16_t to, int64_t ts, Reason why, const Trans* t, uint32_t cause);
  void Schedule(uint32_t mi, Ix p, Cell& c);
  // Takes the first condition transition whose guard holds, repeatedly.
  void FollowConditions(uint32_t mi, Ix p, int64_t ts);
  // Fires the person's due timers of machine mi up to ts (inclusive).
  void CatchUp(uint32_t mi, Ix p, int64_t ts);
  void FireState(uint32_t mi, Ix p, int64_t at);
  void FirePeriod(uint32_t mi, Ix p, int64_t at);
  bool Backward(const Def& d, uint16_t from, uint16_t to) const {
    return d.monotonic && from != kNone && to != kNone && to < from;
  }
  int64_t FindMachine(uint32_t id) const {
    for (size_t i = 0; i < machines_.size(); ++i)
      if (machines_[i].def && machines_[i].def->id == id) return static_cast<int64_t>(i);
    return -1;
  }

  std::vector<Machine> machines_;  // by index (the timer item); a dropped one has no def
  uint32_t live_ = 0;
};

// --- definitions ----------------------------------------------------------------------

absl::StatusOr<std::unique_ptr<Def>> Machines::Parse(dom::element el, const std::string& path) {
  auto d = std::make_unique<Def>();
  dom::object o;
  if (el.get(o) != simdjson::SUCCESS) return Bad(path, "expected a machine definition (an object)");
  d->json = simdjson::minify(el);
  static constexpr std::string_view kKeys[] = {"name", "description", "version", "states", "initial", "monotonic",
                                               "reset", "start", "import", "transitions"};
  for (auto [k, v] : o)
    if (std::find(std::begin(kKeys), std::end(kKeys), k) == std::end(kKeys))
      return Bad(Cat(path, ".", k), "unknown key");
  std::string_view s;
  if (o["name"].get(s) != simdjson::SUCCESS || s.empty() || s.size() > 128)
    return Bad(Cat(path, ".name"), "expected a name (1 to 128 bytes)");
  d->name.assign(s);
  std::string at = Cat(path, " (", d->name, ")");
  if (o["description"].get(s) == simdjson::SUCCESS) d->description.assign(s);
  if (dom::element v; o["version"].get(v) == simdjson::SUCCESS && v.get(d->version) != simdjson::SUCCESS)
    return Bad(Cat(at, ".version"), "expected an integer");
  dom::array states;
  if (o["states"].get(states) != simdjson::SUCCESS || states.size() == 0 || states.size() > 1000)
    return Bad(Cat(at, ".states"), "expected an array of 1 to 1000 state names");
  for (dom::element x : states) {
    if (x.get(s) != simdjson::SUCCESS || s.empty() || s.size() > 128)
      return Bad(Cat(at, ".states[", d->states.size(), "]"), "expected a state name (1 to 128 bytes)");
    if (std::find(d->states.begin(), d->states.end(), s) != d->states.end())
      return Bad(Cat(at, ".states[", d->states.size(), "]"), Cat("\"", s, "\" is listed twice"));
    d->states.emplace_back(s);
  }
  auto state_index = [&](std::string_view name, const std::string& p, uint16_t& out) -> absl::Status {
    auto it = std::find(d->states.begin(), d->states.end(), name);
    if (it == d->states.end()) return Bad(p, Cat("unknown state \"", name, "\""));
    out = static_cast<uint16_t>(it - d->states.begin());
    return absl::OkStatus();
  };
  if (o["initial"].get(s) == simdjson::SUCCESS) {
    if (auto st = state_index(s, Cat(at, ".initial"), d->initial); !st.ok()) return st;
  } else if (dom::element v; o["initial"].get(v) == simdjson::SUCCESS) {
    return Bad(Cat(at, ".initial"), "expected a state name");
  }
  if (dom::element v; o["monotonic"].get(v) == simdjson::SUCCESS && v.get(d->monotonic) != simdjson::SUCCESS)
    return Bad(Cat(at, ".monotonic"), "expected true or false");
  if (o["reset"].get(s) == simdjson::SUCCESS) {
    if (!ParsePeriod(s, d->reset)) return Bad(Cat(at, ".reset"), "expected day, week, month, quarter or year");
  } else if (dom::element v; o["reset"].get(v) == simdjson::SUCCESS) {
    return Bad(Cat(at, ".reset"), "expected day, week, month, quarter or year");
  }
  auto event_list = [&](dom::element v, const std::string& p, std::vector<uint32_t>& out, bool& any) -> absl::Status {
    dom::array a;
    if (v.get(s) == simdjson::SUCCESS) {
      if (s.empty()) return Bad(p, "expected an event type");
      if (s == "*") any = true;
      else out.push_back(core_.store.EventType(s));
      return absl::OkStatus();
    }
    if (v.get(a) != simdjson::SUCCESS || a.size() == 0) return Bad(p, "expected an event type or a list of them");
    for (dom::element x : a) {
      if (x.get(s) != simdjson::SUCCESS || s.empty() || s == "*") return Bad(p, "expected event type names");
      out.push_back(core_.store.EventType(s));
    }
    return absl::OkStatus();
  };
  if (dom::element v; o["start"].get(v) == simdjson::SUCCESS) {
    bool any = false;
    if (auto st = event_list(v, Cat(at, ".start"), d->start, any); !st.ok()) return st;
    d->start_any = any;
  }
  if (o["import"].get(s) == simdjson::SUCCESS && !s.empty()) {
    d->has_import = true;
    d->import_attr = core_.store.Attr(s);
  } else if (dom::element v; o["import"].get(v) == simdjson::SUCCESS) {
    return Bad(Cat(at, ".import"), "expected an attribute name");
  }

  dom::array trans;
  if (o["transitions"].get(trans) != simdjson::SUCCESS) return Bad(Cat(at, ".transitions"), "expected an array");
  if (trans.size() > 10000) return Bad(Cat(at, ".transitions"), "more than 10000 transitions");
  for (dom::element x : trans) {
    Trans t;
    t.label = Cat("transitions[", d->trans.size(), "]");
    std::string tp = Cat(at, ".", t.label);
    dom::object to;
    if (x.get(to) != simdjson::SUCCESS) return Bad(tp, "expected a transition (an object)");
    static constexpr std::string_view kTKeys[] = {"from", "to", "on", "after", "at", "days", "when", "restart",
                                                  "action", "channel", "payload"};
    for (auto [k, v] : to)
      if (std::find(std::begin(kTKeys), std::end(kTKeys), k) == std::end(kTKeys))
        return Bad(Cat(tp, ".", k), "unknown key");
    dom::element v;
    if (to["from"].get(v) != simdjson::SUCCESS) return Bad(tp, "missing \"from\" (a state, a list of states, or \"*\")");
    dom::array fa;
    if (v.get(s) == simdjson::SUCCESS && s == "*") {
      t.from.push_back(kAny);
    } else if (v.get(s) == simdjson::SUCCESS) {
      uint16_t i;
      if (auto st = state_index(s, Cat(tp, ".from"), i); !st.ok()) return st;
      t.from.push_back(i);
    } else if (v.get(fa) == simdjson::SUCCESS && fa.size() > 0) {
      for (dom::element f : fa) {
        uint16_t i;
        if (f.get(s) != simdjson::SUCCESS) return Bad(Cat(tp, ".from"), "expected state names");
        if (auto st = state_index(s, Cat(tp, ".from"), i); !st.ok()) return st;
        t.from.push_back(i);
      }
    } else {
      return Bad(Cat(tp, ".from"), "expected a state, a list of states, or \"*\"");
    }
    bool restart = false;
    if (to["restart"].get(v) == simdjson::SUCCESS && v.get(restart) != simdjson::SUCCESS)
      return Bad(Cat(tp, ".restart"), "expected true or false");
    if (to["to"].get(s) == simdjson::SUCCESS) {
      if (restart) return Bad(tp, "\"restart\" stays in the state: it has no \"to\"");
      if (auto st = state_index(s, Cat(tp, ".to"), t.to); !st.ok()) return st;
    } else if (!restart) {
      return Bad(tp, "missing \"to\" (or \"restart\": true to stay and restart the state's timers)");
    }
    int triggers = 0;
    if (to["on"].get(v) == simdjson::SUCCESS) {
      triggers++;
      bool any = false;
      if (auto st = event_list(v, Cat(tp, ".on"), t.events, any); !st.ok()) return st;
      if (any) t.events.clear();
      t.trigger = Trigger::kEvent;
    }
    if (to["after"].get(v) == simdjson::SUCCESS) {
      triggers++;
      t.trigger = Trigger::kAfter;
      if (auto st = Core::Duration(v, Cat(tp, ".after"), t.after); !st.ok()) return st;
      if (t.after < kMinTimer)
        return Bad(Cat(tp, ".after"), "at least a minute (\"1m\"); to move at once, use a \"when\" condition");
    }
    if (to["at"].get(v) == simdjson::SUCCESS) {
      triggers++;
      if (v.get(s) == simdjson::SUCCESS && s.size() > 4 && s.substr(s.size() - 4) == "_end" &&
          ParsePeriod(s.substr(0, s.size() - 4), t.period)) {
        t.trigger = Trigger::kPeriodEnd;
      } else {
        t.trigger = Trigger::kAt;
        if (auto st = Core::TimeOfDay(v, Cat(tp, ".at"), t.tod); !st.ok())
          return Bad(Cat(tp, ".at"), "expected a local time \"HH:MM\" or a period end (day_end, week_end, "
                                     "month_end, quarter_end, year_end)");
      }
    }
    if (to["days"].get(v) == simdjson::SUCCESS) {
      uint64_t n;
      if (t.trigger != Trigger::kAt) return Bad(Cat(tp, ".days"), "goes with \"at\": \"HH:MM\"");
      if (v.get(n) != simdjson::SUCCESS || n > 36600) return Bad(Cat(tp, ".days"), "expected 0 to 36600");
      t.days = static_cast<int32_t>(n);
    }
    if (to["when"].get(v) == simdjson::SUCCESS) {
      auto e = core_.Compile(v, Cat(tp, ".when"));
      if (!e.ok()) return e.status();
      t.when = std::move(*e);
      t.has_when = true;
      t.reads.Add(*t.when, core_.store);
      t.reads.Normalize();
    }
    if (triggers == 0) {
      if (!t.has_when) return Bad(tp, "needs a trigger: \"on\" (events), \"after\", \"at\", or a \"when\" condition");
      if (t.to == kNone) return Bad(tp, "a condition transition needs \"to\"");
      t.trigger = Trigger::kCondition;
    }
    if (triggers > 1) return Bad(tp, "one trigger per transition: \"on\", \"after\" or \"at\"");
    if (t.to == kNone && t.trigger != Trigger::kEvent) return Bad(Cat(tp, ".restart"), "restarts on events only");
    if (to["action"].get(v) == simdjson::SUCCESS) {
      if (v.get(s) != simdjson::SUCCESS || s.empty() || s.size() > 128)
        return Bad(Cat(tp, ".action"), "expected an action name");
      t.action.assign(s);
      if (to["channel"].get(s) == simdjson::SUCCESS) t.channel.assign(s);
      if (to["payload"].get(v) == simdjson::SUCCESS) {
        auto tpl = core_.CompileTemplate(v, Cat(tp, ".payload"));
        if (!tpl.ok()) return tpl.status();
        t.payload = std::move(*tpl);
      }
    } else if (to["payload"].get(v) == simdjson::SUCCESS || to["channel"].get(v) == simdjson::SUCCESS) {
      return Bad(tp, "\"payload\" and \"channel\" go with \"action\"");
    }
    if (d->monotonic && t.to != kNone && t.from[0] != kAny)
      for (uint16_t f : t.from)
        if (t.to < f)
          return Bad(Cat(tp, ".to"), Cat(d->name, " is monotonic: ", d->states[f], " -> ", d->states[t.to],
                                         " moves backwards"));
    d->trans.push_back(std::move(t));
  }

  // Indexes.
  const size_t n = d->states.size();
  d->on_event.resize(n);
  d->timers.resize(n);
  d->conditions.resize(n);
  for (size_t i = 0; i < d->trans.size(); ++i) {
    const Trans& t = d->trans[i];
    auto& list = t.trigger == Trigger::kEvent ? d->on_event : t.trigger == Trigger::kCondition ? d->conditions : d->timers;
    for (size_t st = 0; st < n; ++st)
      if (t.From(static_cast<uint16_t>(st))) list[st].push_back(static_cast<uint16_t>(i));
    if (t.trigger == Trigger::kEvent) {
      if (t.events.empty()) d->any_event = true;
      for (uint32_t e : t.events) {
        if (e >= d->reads_event.size()) d->reads_event.resize(e + 1);
        d->reads_event[e] = 1;
      }
    }
    if (t.trigger == Trigger::kCondition) {
      const tags::ReadSet& r = t.reads;
      d->cond_on_any_record |= !r.attrs.empty() || r.person || !r.tags.empty() || r.state;
      d->cond_any_event |= r.any_event;
      d->cond_events.insert(d->cond_events.end(), r.events.begin(), r.events.end());
    }
  }
  std::sort(d->cond_events.begin(), d->cond_events.end());
  for (uint32_t e : d->start) {
    if (e >= d->reads_event.size()) d->reads_event.resize(e + 1);
    d->reads_event[e] = 1;
  }
  d->id = core_.store.Machine(d->name);
  return d;
}

absl::StatusOr<Part::Installer> Machines::Prepare(dom::element root, int64_t now) {
  dom::element section;
  if (root["machines"].get(section) != simdjson::SUCCESS) return Installer([](json::Writer&) {});
  dom::array a;
  if (section.get(a) != simdjson::SUCCESS) return Bad("machines", "expected an array of machine definitions");
  auto defs = std::make_shared<std::vector<std::unique_ptr<Def>>>();
  size_t i = 0;
  for (dom::element el : a) {
    auto d = Parse(el, Cat("machines[", i++, "]"));
    if (!d.ok()) return d.status();
    for (const auto& other : *defs)
      if (other->name == (*d)->name) return Bad(Cat("machines[", i - 1, "]"), Cat(other->name, " is defined twice"));
    defs->push_back(std::move(*d));
  }
  uint32_t after = live_;
  for (const auto& d : *defs)
    if (FindMachine(d->id) < 0) after++;
  if (after > core_.limits.max_definitions)
    return absl::ResourceExhaustedError(Cat("machines: ", after, " would pass limits.max_lifecycle_definitions (",
                                            core_.limits.max_definitions, ")"));
  return Installer([this, defs, now](json::Writer& w) {
    w.Key("machines").BeginArray();
    for (auto& d : *defs) {
      w.String(d->name);
      int64_t at = FindMachine(d->id);
      uint32_t mi;
      std::vector<uint16_t> remap;  // old state index -> new (kNone: gone)
      if (at >= 0) {
        mi = static_cast<uint32_t>(at);
        const Def& old = *machines_[mi].def;
        for (const std::string& s : old.states) {
          auto it = std::find(d->states.begin(), d->states.end(), s);
          remap.push_back(it == d->states.end() ? kNone : static_cast<uint16_t>(it - d->states.begin()));
        }
      } else {
        mi = static_cast<uint32_t>(machines_.size());
        machines_.emplace_back();
        live_++;
      }
      Machine& m = machines_[mi];
      m.def = std::move(d);
      m.counts.assign(m.def->states.size(), 0);
      if (core_.loading) continue;  // the snapshot holds everyone's cells
      // Persons already in the machine keep their state when it still exists (else they
      // go to the initial state); their timers are rescheduled under the new rules. A new
      // machine enters every person with a profile at now.
      std::vector<std::pair<Ix, uint16_t>> moved;
      for (Ix p = 1; p < m.cells.size(); ++p) {
        Cell& c = m.cells[p];
        if (c.state == kNone || core_.OneId(p) == 0) continue;
        uint16_t ns = remap.empty() ? kNone : remap[c.state];
        if (ns == kNone) {
          moved.emplace_back(p, c.state);
          c.state = kNone;
          continue;
        }
        c.state = ns;
        m.counts[ns]++;
        c.gen++;
        c.period_due = m.def->reset == Period::kNone ? kForever : PeriodStart(m.def->reset, now);
        if (c.period_due != kForever) core_.Schedule(c.period_due, PartId::kMachines, p, mi * 2 + 1, c.gen);
        Schedule(mi, p, c);
      }
      for (auto [p, old] : moved) {
        Enter(mi, p, m.def->initial, now, Reason::kDefinition, nullptr, 0);
        FollowConditions(mi, p, now);
      }
      if (at < 0) {
        for (uint32_t slot = 0; slot < core_.store.slots(); ++slot) {
          const Profile* prof = core_.store.AtSlot(slot);
          if (!prof) continue;
          Ix p = core_.Person(prof->oneid);
          if (CellOf(m, p).state != kNone) continue;
          Enter(mi, p, m.def->initial, now, Reason::kDefinition, nullptr, 0);
          FollowConditions(mi, p, now);
        }
      }
    }
    w.EndArray();
  });
}

absl::Status Machines::Drop(std::string_view name) {
  for (Machine& m : machines_) {
    if (!m.def || m.def->name != name) continue;
    for (Ix p = 0; p < m.cells.size(); ++p)
      if (m.cells[p].state != kNone) core_.state_changed.push_back(core_.OneId(p));
    core_.outbox.Drop(0, Cat("machine:", name));  // its unacknowledged intents go with it
    m = Machine();
    live_--;
    return absl::OkStatus();
  }
  return absl::NotFoundError(Cat("no machine named ", name));
}

// --- running --------------------------------------------------------------------------

int64_t Machines::PeriodStart(Period per, int64_t after) const {
  const TimeZone& z = core_.zone();
  int32_t day = z.DayOf(after);
  int y, mo, dd;
  CivilFromDays(day, y, mo, dd);
  int32_t next;
  switch (per) {
    case Period::kDay: next = day + 1; break;
    case Period::kWeek: next = day + (8 - WeekdayOfDay(day)); break;  // the next Monday
    case Period::kMonth: next = mo == 12 ? DaysFromCivil(y + 1, 1, 1) : DaysFromCivil(y, mo + 1, 1); break;
    case Period::kQuarter: {
      int q = (mo - 1) / 3;
      next = q == 3 ? DaysFromCivil(y + 1, 1, 1) : DaysFromCivil(y, q * 3 + 4, 1);
      break;
    }
    case Period::kYear: next = DaysFromCivil(y + 1, 1, 1); break;
    default: return kForever;
  }
  return z.DayStart(next);
}

int64_t Machines::Deadline(const Def&, const Trans& t, int64_t entered) const {
  switch (t.trigger) {
    case Trigger::kAfter: return entered + t.after;
    case Trigger::kAt:
      if (t.days == 0) return core_.NextLocalTime(entered, t.tod);
      return core_.zone().DayStart(core_.zone().DayOf(entered) + t.days) + t.tod;
    case Trigger::kPeriodEnd: return PeriodStart(t.period, entered);
    default: return kForever;
  }
}

void Machines::Schedule(uint32_t mi, Ix p, Cell& c) {
  const Def& d = *machines_[mi].def;
  c.due = kForever;
  for (uint16_t ti : d.timers[c.state]) c.due = std::min(c.due, Deadline(d, d.trans[ti], c.entered));
  if (c.due != kForever) core_.Schedule(c.due, PartId::kMachines, p, mi * 2, c.gen);
}

void Machines::Enter(uint32_t mi, Ix p, uint16_t to, int64_t ts, Reason why, const Trans* t, uint32_t cause) {
  Machine& m = machines_[mi];
  const Def& d = *m.def;
  Cell& c = CellOf(m, p);
  uint16_t from = c.state;
  if (from != kNone) m.counts[from]--;
  if (p / 64 >= m.in.size()) m.in.resize(p / 64 + 1);
  m.in[p / 64] |= uint64_t{1} << (p % 64);
  m.counts[to]++;
  c.state = to;
  c.entered = ts;
  c.gen++;
  if (from == kNone && d.reset != Period::kNone) {
    c.period_due = PeriodStart(d.reset, ts);
    core_.Schedule(c.period_due, PartId::kMachines, p, mi * 2 + 1, c.gen);
  }
  // A transition's intent is not emitted to a person who has not consented to its
  // channel; its feed event says so, as no intent event will.
  const bool act = t && !t->action.empty();
  const bool consented = !act || core_.Consented(p, t->channel);
  std::string text;
  text.reserve(160);  // one allocation for the feed text
  json::Writer w(text);
  w.BeginObject();
  w.Key("machine").String(d.name);
  if (from == kNone) w.Key("from").Null(); else w.Key("from").String(d.states[from]);
  w.Key("to").String(d.states[to]);
  w.Key("reason").String(ReasonName(why));
  if (why == Reason::kEvent) w.Key("event").String(core_.store.EventTypeName(cause));
  if (t) w.Key("transition").String(t->label);
  w.Key("version").Int(d.version);
  if (!consented) w.Key("intent").String("no_consent");
  w.EndObject();
  core_.Record(p, Transition{ts, d.id, from, to, static_cast<uint8_t>(why), cause}, FeedEvent::Kind::kStateChanged,
               std::move(text));
  core_.transitions++;
  if (!consented) {
    core_.no_consent++;
  } else if (act) {
    Intent in;
    in.oneid = core_.OneId(p);
    in.at = in.created = ts;
    in.origin = Cat("machine:", d.name);
    in.step = Cat(from == kNone ? "" : d.states[from], "->", d.states[to]);
    in.key = Cat(in.origin, ":", in.oneid, ":", in.step, ":", ts);
    in.action = t->action;
    in.channel = t->channel;
    if (!t->payload.empty()) in.payload = core_.Render(t->payload, p, ts);
    if (core_.outbox.Add(std::move(in))) core_.intents++;
  }
  Schedule(mi, p, c);
  core_.Transitioned(p, d.id, from, to, ts);
}

void Machines::FollowConditions(uint32_t mi, Ix p, int64_t ts) {
  for (int step = 0; step < kMaxChain; ++step) {
    const Def& d = *machines_[mi].def;
    Cell& c = CellOf(machines_[mi], p);
    const Trans* taken = nullptr;
    for (uint16_t ti : d.conditions[c.state]) {
      const Trans& t = d.trans[ti];
      if (t.to == c.state || Backward(d, c.state, t.to)) continue;
      if (core_.Test(*t.when, p, ts)) { taken = &t; break; }
    }
    if (!taken) return;
    Enter(mi, p, taken->to, ts, Reason::kCondition, taken, 0);
  }
}

void Machines::FireState(uint32_t mi, Ix p, int64_t at) {
  const Def& d = *machines_[mi].def;
  Cell& c = CellOf(machines_[mi], p);
  const int64_t entered = c.entered;
  for (uint16_t ti : d.timers[c.state]) {
    const Trans& t = d.trans[ti];
    if (Deadline(d, t, entered) != at) continue;
    if (Backward(d, c.state, t.to)) continue;
    if (t.has_when && !core_.Test(*t.when, p, at)) continue;
    Enter(mi, p, t.to, at, Reason::kTimer, &t, ti);
    FollowConditions(mi, p, at);
    return;
  }
  // No timer due now was taken (its guard was false): wait for the state's next deadline.
  int64_t next = kForever;
  for (uint16_t ti : d.timers[c.state]) {
    int64_t dl = Deadline(d, d.trans[ti], entered);
    if (dl > at) next = std::min(next, dl);
  }
  c.due = next;
  if (next != kForever) core_.Schedule(next, PartId::kMachines, p, mi * 2, c.gen);
}

void Machines::FirePeriod(uint32_t mi, Ix p, int64_t at) {
  const Def& d = *machines_[mi].def;
  Cell& c = CellOf(machines_[mi], p);
  c.period_due = PeriodStart(d.reset, at);
  // The new period begins at the initial state (monotonic ladders are per period); the
  // period's conditions then place the person again. A person already there stays, with
  // no transition to record.
  if (c.state != d.initial) Enter(mi, p, d.initial, at, Reason::kPeriod, nullptr, 0);
  core_.Schedule(c.period_due, PartId::kMachines, p, mi * 2 + 1, c.gen);
  FollowConditions(mi, p, at);
}

void Machines::CatchUp(uint32_t mi, Ix p, int64_t ts) {
  for (uint32_t n = 0; n < kMaxFirings; ++n) {
    Cell& c = CellOf(machines_[mi], p);
    if (c.state == kNone) return;
    int64_t due = std::min(c.due, c.period_due);
    if (due > ts) return;
    if (c.period_due <= c.due) FirePeriod(mi, p, c.period_due);
    else FireState(mi, p, c.due);
  }
}

void Machines::Fire(const Timer& t) {
  uint32_t mi = t.item / 2;
  if (mi >= machines_.size() || !machines_[mi].def) return;
  Cell& c = CellOf(machines_[mi], t.person);
  if (c.state == kNone) return;
  if (t.item % 2 == 1) {
    if (c.period_due == t.at) FirePeriod(mi, t.person, t.at);
  } else if (c.gen == t.gen && c.due == t.at) {
    FireState(mi, t.person, t.at);
  }
}

void Machines::OnRecord(Ix p, const LifeEvent& e) {
  const bool has_event = e.type != kAnyEventType;
  for (uint32_t mi = 0; mi < machines_.size(); ++mi) {
    Machine& m = machines_[mi];
    if (!m.def) continue;
    const Def& d = *m.def;
    const bool reads = has_event && (d.any_event || (e.type < d.reads_event.size() && d.reads_event[e.type]));
    const bool cond = d.cond_on_any_record ||
                      (has_event && (d.cond_any_event || std::binary_search(d.cond_events.begin(), d.cond_events.end(), e.type)));
    // Most records touch nothing of a machine the person is already in: one bit says so.
    if (!reads && !cond && !d.has_import && p / 64 < m.in.size() && (m.in[p / 64] >> (p % 64) & 1)) continue;
    CatchUp(mi, p, e.ts);
    Cell& c = CellOf(m, p);
    if (c.state == kNone) {
      bool starts = d.start_any ? true : has_event && std::find(d.start.begin(), d.start.end(), e.type) != d.start.end();
      if (!starts) continue;
      Enter(mi, p, d.initial, e.ts, Reason::kInitial, nullptr, 0);
    }
    // An imported state (an attribute the record carries).
    if (d.has_import && e.batch && e.record) {
      const std::string& attr = core_.store.AttrName(d.import_attr);
      for (uint32_t i = 0; i < e.record->attrs_count; ++i) {
        const FieldIn& f = e.batch->fields[e.record->attrs_begin + i];
        if (f.kind != ValueKind::kString || e.batch->Name(f) != attr) continue;
        std::string_view want = e.batch->Str(f);
        auto it = std::find(d.states.begin(), d.states.end(), want);
        Cell& cc = CellOf(m, p);
        if (it == d.states.end()) continue;
        auto to = static_cast<uint16_t>(it - d.states.begin());
        if (to == cc.state) continue;
        if (Backward(d, cc.state, to)) { m.refused++; continue; }
        Enter(mi, p, to, e.ts, Reason::kImport, nullptr, 0);
      }
    }
    if (reads) {
      Cell& cc = CellOf(m, p);
      for (uint16_t ti : d.on_event[cc.state]) {
        const Trans& t = d.trans[ti];
        if (!t.events.empty() && std::find(t.events.begin(), t.events.end(), e.type) == t.events.end()) continue;
        if (t.to != kNone && (t.to == cc.state || Backward(d, cc.state, t.to))) {
          if (t.to != cc.state) m.refused++;
          continue;
        }
        if (t.has_when && !core_.Test(*t.when, p, e.ts)) continue;
        if (t.to == kNone) {  // restart: the state's clock starts again, no transition
          cc.entered = e.ts;
          cc.gen++;
          Schedule(mi, p, cc);
        } else {
          Enter(mi, p, t.to, e.ts, Reason::kEvent, &t, e.type);
        }
        break;
      }
    }
    if (!d.conditions[CellOf(m, p).state].empty()) FollowConditions(mi, p, e.ts);
  }
}

absl::Status Machines::Apply(std::string_view, dom::object req, Ix p, int64_t now, json::Writer& out) {
  std::string_view name, state;
  if (req["machine"].get(name) != simdjson::SUCCESS) return Bad("machine", "missing (the machine's name)");
  if (req["state"].get(state) != simdjson::SUCCESS) return Bad("state", "missing (the state to set)");
  int64_t at = -1;
  for (size_t i = 0; i < machines_.size(); ++i)
    if (machines_[i].def && machines_[i].def->name == name) at = static_cast<int64_t>(i);
  if (at < 0) return absl::NotFoundError(Cat("no machine named ", name));
  auto mi = static_cast<uint32_t>(at);
  const Def& d = *machines_[mi].def;
  auto it = std::find(d.states.begin(), d.states.end(), state);
  if (it == d.states.end()) return Bad("state", Cat(name, " has no state \"", state, "\""));
  auto to = static_cast<uint16_t>(it - d.states.begin());
  CatchUp(mi, p, now);
  Cell& c = CellOf(machines_[mi], p);
  if (Backward(d, c.state, to))
    return absl::FailedPreconditionError(Cat(name, " is monotonic: ", d.states[c.state], " -> ", state,
                                             " moves backwards"));
  out.Key("machine").String(name);
  out.Key("from");
  if (c.state == kNone) out.Null(); else out.String(d.states[c.state]);
  out.Key("to").String(state);
  out.Key("changed").Bool(c.state != to);
  if (c.state != to) {
    Enter(mi, p, to, now, Reason::kManual, nullptr, 0);
    FollowConditions(mi, p, now);
  }
  return absl::OkStatus();
}

void Machines::Merge(Ix a, Ix b, int64_t now) {
  for (uint32_t mi = 0; mi < machines_.size(); ++mi) {
    Machine& m = machines_[mi];
    if (!m.def) continue;
    const Def& d = *m.def;
    // Deadlines due by the merge fire first, so the outcome does not depend on when the
    // host last advanced.
    CatchUp(mi, a, now);
    CatchUp(mi, b, now);
    const Cell* cb = CellAt(m, b);
    if (!cb || cb->state == kNone) continue;
    Cell ob = *cb;
    Cell& ca = CellOf(m, a);
    // Monotonic: the furthest stage; otherwise the state entered last (the latest news).
    bool take = ca.state == kNone ||
                (d.monotonic ? ob.state > ca.state : (ob.state != ca.state && ob.entered > ca.entered));
    if (!take) continue;
    uint16_t from = ca.state;
    if (from != kNone) m.counts[from]--;
    m.counts[ob.state]++;
    if (a / 64 >= m.in.size()) m.in.resize(a / 64 + 1);
    m.in[a / 64] |= uint64_t{1} << (a % 64);
    ca.state = ob.state;
    ca.entered = ob.entered;
    ca.gen++;
    if (ca.period_due == kForever && d.reset != Period::kNone) {
      ca.period_due = PeriodStart(d.reset, now);
      core_.Schedule(ca.period_due, PartId::kMachines, a, mi * 2 + 1, ca.gen);
    }
    std::string text;
    json::Writer w(text);
    w.BeginObject().Key("machine").String(d.name);
    if (from == kNone) w.Key("from").Null(); else w.Key("from").String(d.states[from]);
    w.Key("to").String(d.states[ob.state]).Key("reason").String(ReasonName(Reason::kMerge));
    w.Key("absorbed").Uint(core_.OneId(b)).EndObject();
    core_.Record(a, Transition{now, d.id, from, ob.state, static_cast<uint8_t>(Reason::kMerge), 0},
                 FeedEvent::Kind::kStateChanged, std::move(text));
    Schedule(mi, a, ca);
    core_.Transitioned(a, d.id, from, ob.state, now);
  }
}

void Machines::Clear(Ix p) {
  for (Machine& m : machines_) {
    if (!m.def || p >= m.cells.size()) continue;
    Cell& c = m.cells[p];
    if (c.state != kNone) m.counts[c.state]--;
    if (p / 64 < m.in.size()) m.in[p / 64] &= ~(uint64_t{1} << (p % 64));
    c = Cell();
    c.gen = 1;  // past every timer scheduled for p
  }
}

// --- reading --------------------------------------------------------------------------

void Machines::AppendPerson(json::Writer& w, Ix p) const {
  w.Key("states").BeginObject();
  for (const Machine& m : machines_) {
    if (!m.def) continue;
    const Cell* c = CellAt(m, p);
    if (!c || c->state == kNone) continue;
    w.Key(m.def->name).BeginObject();
    w.Key("state").String(m.def->states[c->state]);
    w.Key("since").Int(c->entered);
    w.Key("next");
    int64_t next = std::min(c->due, c->period_due);
    if (next == kForever) w.Null(); else w.Int(next);
    w.EndObject();
  }
  w.EndObject();
}

void Machines::AppendCatalog(json::Writer& w) const {
  w.Key("machines").BeginArray();
  for (const Machine& m : machines_) {
    if (!m.def) continue;
    const Def& d = *m.def;
    w.BeginObject();
    w.Key("name").String(d.name);
    w.Key("version").Int(d.version);
    if (!d.description.empty()) w.Key("description").String(d.description);
    w.Key("monotonic").Bool(d.monotonic);
    w.Key("reset").String(PeriodName(d.reset));
    w.Key("initial").String(d.states[d.initial]);
    w.Key("transitions").Uint(d.trans.size());
    w.Key("persons").BeginObject();
    for (size_t s = 0; s < d.states.size(); ++s) w.Key(d.states[s]).Uint(m.counts[s]);
    w.EndObject();
    w.Key("refused_backward").Uint(m.refused);
    w.Key("definition").Raw(d.json);
    w.EndObject();
  }
  w.EndArray();
}

bool Machines::StateOf(uint32_t machine, Ix p, Value& out) const {
  for (const Machine& m : machines_) {
    if (!m.def || m.def->id != machine) continue;
    const Cell* c = CellAt(m, p);
    out = c && c->state != kNone ? Value::String(m.def->states[c->state]) : Value();
    return true;
  }
  return false;
}

std::string_view Machines::StateName(uint32_t machine, uint16_t s) const {
  for (const Machine& m : machines_)
    if (m.def && m.def->id == machine && s < m.def->states.size()) return m.def->states[s];
  return {};
}

uint64_t Machines::bytes() const {
  uint64_t b = 0;
  for (const Machine& m : machines_) b += m.cells.capacity() * sizeof(Cell) + (m.def ? m.def->json.size() : 0);
  return b;
}

// --- snapshots --------------------------------------------------------------------------

// Per slot (a dropped machine's slot stays empty, as the definitions replayed it): the
// cells and in-bits by person, the persons per state, the refused moves.
void Machines::Save(snap::Writer& w) const {
  w.U64(machines_.size());
  for (const Machine& m : machines_) {
    w.Bool(m.def != nullptr);
    if (!m.def) continue;
    w.U32(m.def->id);
    w.Vec(m.cells);
    w.Vec(m.in);
    w.Vec(m.counts);
    w.U64(m.refused);
  }
}

absl::Status Machines::Load(snap::Reader& r) {
  const uint64_t n = r.U64();
  if (r.ok() && n != machines_.size())
    r.Fail(Cat(n, " machine slots saved, ", machines_.size(), " defined by the saved definitions"));
  const Ix persons = core_.persons();
  for (uint32_t mi = 0; mi < machines_.size() && r.ok(); ++mi) {
    Machine& m = machines_[mi];
    const bool live = r.Bool();
    if (!r.ok()) break;
    if (live != (m.def != nullptr)) {
      r.Fail(Cat("machine slot ", mi, live ? " is saved in use but not defined" : " is defined but saved empty"));
      break;
    }
    if (!live) continue;
    const Def& d = *m.def;
    if (r.U32() != d.id && r.ok()) r.Fail(Cat("machine slot ", mi, " was not ", d.name));
    r.Vec(m.cells);
    r.Vec(m.in);
    r.Vec(m.counts);
    m.refused = r.U64();
    if (!r.ok()) break;
    if (m.cells.size() > persons || m.in.size() > (persons + 63) / 64 || m.counts.size() != d.states.size()) {
      r.Fail(Cat(d.name, ": its cells do not fit the persons or its states"));
      break;
    }
    for (const Cell& c : m.cells)
      if (c.state != kNone && c.state >= d.states.size()) {
        r.Fail(Cat(d.name, ": a person is in state ", c.state, " of ", d.states.size()));
        break;
      }
  }
  return r.status();
}

}  // namespace

std::unique_ptr<Part> MakeMachines(Core& core) { return std::make_unique<Machines>(core); }

}  // namespace cdp::life
