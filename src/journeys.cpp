// The journeys part of the lifecycle (docs/journeys.md): step programs that emit action
// intents (waits, waits for an event with a timeout, conditions, deterministic splits),
// entered on an event, a machine state or an audience, left on exit criteria or a goal;
// and the delivery rules every intent passes on its way to the outbox (send window, quiet
// hours, frequency caps across journeys, holdouts).
//
// A definition is immutable once installed; a redefinition installs a new one and carries
// each person's instance over by step id. Per journey and person there is one Track: the
// active instance (if any: never two at once) and what the entry rules need across
// instances (the rotation counter, the last entry). Tracks live in one hash map per journey,
// so memory follows the persons who ever entered, not the population.
//
// Between calls an active instance always sits on a waiting step; a call walks it through
// the steps that do not wait, in the same call, until the next wait or its end. The
// definition check refuses a loop through steps that do not wait, so a walk visits each step
// at most once. Every timer carries a part-wide generation number: a timer is live only
// while its track (or deferred intent) still holds that number, so cancelling is forgetting.
//
// Intents decided for one person at one instant — by one event, or by the timers of that
// person due at the same instant — are staged and weighed together, highest journey priority
// first, so a frequency cap keeps the more important message.
#include <algorithm>
#include <cassert>
#include <optional>

#include "life_internal.hpp"
#include "snapshot.hpp"
#include "util.hpp"

namespace cdp::life {
namespace {

namespace dom = simdjson::dom;

constexpr uint16_t kIdle = 0xFFFF;        // Track::step when no instance is active
constexpr uint32_t kNil = 0xFFFFFFFFu;    // end of a deferred-intent list
constexpr uint32_t kDeferredBit = 0x80000000u;  // Timer::item: a deferred intent's slot
constexpr size_t kMaxSteps = 1000;
constexpr int64_t kWeek = 7 * kMsPerDay;

enum class StepKind : uint8_t { kAction, kWait, kWaitUntil, kWaitFor, kIf, kSplit, kGoto, kEnd };

std::string_view KindName(StepKind k) {
  switch (k) {
    case StepKind::kAction: return "action";
    case StepKind::kWait: return "wait";
    case StepKind::kWaitUntil: return "wait_until";
    case StepKind::kWaitFor: return "wait_for";
    case StepKind::kIf: return "if";
    case StepKind::kSplit: return "split";
    case StepKind::kGoto: return "goto";
    case StepKind::kEnd: return "end";
  }
  return "?";
}

struct Step {
  StepKind kind = StepKind::kEnd;
  std::string id;
  std::string action, channel;   // kAction
  Template payload;              // kAction; empty: none
  // kWait: the duration; kWaitUntil: ms after local midnight; kWaitFor: the timeout
  // (kForever: none).
  int64_t ms = 0;
  std::vector<uint32_t> types;   // kWaitFor: the event types awaited
  std::optional<Expr> guard;     // kWaitFor: the event's guard; kIf: the condition
  // Step indexes; the number of steps means "the journey is complete". kWaitFor: yes and
  // no; kIf: then (yes) and else (no); kGoto: yes.
  uint16_t yes = 0, no = 0;
  std::vector<std::pair<uint32_t, uint16_t>> split;  // (cumulative weight, target)
  std::string salt;              // kSplit: "journey:step", the bucket's salt
  // Whether reaching this step ends the walk of this call.
  bool waits() const {
    return kind == StepKind::kWaitUntil || kind == StepKind::kWaitFor || (kind == StepKind::kWait && ms > 0);
  }
};

struct Entry {
  enum class Kind : uint8_t { kEvent, kState, kAudience } kind = Kind::kEvent;
  std::vector<uint32_t> types;   // kEvent
  std::optional<Expr> when;      // kEvent, kState: a guard; kAudience: the audience
  uint32_t machine = 0;          // kState
  std::string from, to;          // kState: state names (from empty: any)
};

enum class Reentry : uint8_t { kOnce, kAlways, kAfter };

struct Def {
  std::string name;
  std::string origin;            // "journey:<name>"
  std::string source;            // the definition as given, minified
  uint32_t machine = 0;          // the interned name: state.<name> reads the current step
  int32_t priority = 0;
  uint32_t holdout_bp = 0;
  std::vector<Entry> entries;
  Reentry reentry = Reentry::kOnce;
  int64_t reentry_after = 0;
  uint32_t max_entries = 0;      // 0: no limit
  std::vector<uint32_t> exit_on;
  std::optional<Expr> exit_when;  // checked before each step
  std::vector<uint32_t> goal_on;
  std::optional<Expr> goal_when;  // the goal event's guard
  std::vector<Step> steps;
};

// How the last instance of a track ended.
enum class End : uint8_t { kNone, kCompleted, kExited, kGoal, kCancelled };

std::string_view EndName(End e) {
  switch (e) {
    case End::kNone: return "none";
    case End::kCompleted: return "completed";
    case End::kExited: return "exited";
    case End::kGoal: return "goal";
    case End::kCancelled: return "cancelled";
  }
  return "?";
}

// One person in one journey.
struct Track {
  int64_t entered = 0;          // when the active (or last) instance entered
  int64_t until = kForever;     // the active instance's pending timer (kForever: none)
  uint64_t entry_oneid = 0;     // the OneID at that entry: idempotency keys, holdout, splits
  uint32_t instance = 0;        // part-wide serial of that instance (its deferred intents)
  uint32_t entry = 0;           // its entry number, in keys: stays with it through merges
  uint32_t entries = 0;         // the rotation counter: entries so far (merges add)
  uint32_t goals = 0;
  uint32_t gen = 0;             // the generation of the pending timer
  uint32_t deferred = kNil;     // the person's deferred intents of this journey (a list)
  uint16_t step = kIdle;
  uint16_t laps = 0;            // backward jumps of the instance: keys of revisited steps differ
  bool holdout = false;
  End ended = End::kNone;
  bool active() const { return step != kIdle; }
};

struct Journey {
  std::shared_ptr<const Def> def;
  absl::flat_hash_map<Ix, Track> tracks;
  uint64_t active = 0;
  // Totals since it was first defined (a redefinition keeps them).
  uint64_t entered = 0, held_out = 0, completed = 0, exited = 0, goals = 0, held_out_goals = 0,
           cancelled = 0;
  uint64_t queued = 0, deferred = 0, capped = 0, suppressed = 0, dropped = 0, withdrawn = 0, no_consent = 0;
};

// A journey's persons in Ix order. Loops that write to the feed or free deferred-intent
// slots (whose order decides the slots reused next) go in this order: a hash map's order
// differs from table to table (abseil salts it with the table's address), so a replayed
// or reloaded engine would not repeat it.
std::vector<Ix> Persons(const Journey& jr) {
  std::vector<Ix> out;
  out.reserve(jr.tracks.size());
  for (const auto& [p, t] : jr.tracks) out.push_back(p);
  std::sort(out.begin(), out.end());
  return out;
}

struct Delivery {
  bool given = false;
  bool window = false, quiet = false;
  int64_t window_from = 0, window_to = 0, quiet_from = 0, quiet_to = 0;  // ms after local midnight
  uint32_t per_day = 0, per_7_days = 0;  // 0: no cap
  std::string source;
  bool capped() const { return per_day > 0 || per_7_days > 0; }
};

// Is tod (ms after local midnight) in [from, to), which may wrap midnight?
bool InDaily(int64_t tod, int64_t from, int64_t to) {
  return from < to ? tod >= from && tod < to : tod >= from || tod < to;
}

bool OpenAt(const Delivery& d, int64_t tod) {
  return (!d.window || InDaily(tod, d.window_from, d.window_to)) && (!d.quiet || !InDaily(tod, d.quiet_from, d.quiet_to));
}

// An intent decided and not yet through the delivery rules.
struct Staged {
  int32_t priority = 0;
  uint32_t journey = 0;
  Ix person = kNoIx;
  uint32_t instance = 0;
  bool held_out = false;
  Intent intent;  // at: when it is due
};

// An intent waiting for the send window to open.
struct Deferred {
  Intent intent;
  int32_t priority = 0;
  uint32_t journey = 0;
  Ix person = kNoIx;
  uint32_t instance = 0;
  uint32_t gen = 0;     // 0: a free slot
  uint32_t next = kNil; // the next in its track's list, or in the free list
};

std::string Minify(dom::element v) { return std::string(simdjson::minify(v)); }

absl::Status CheckKeys(dom::object o, std::string_view path, std::initializer_list<std::string_view> known) {
  for (auto [k, v] : o) {
    if (std::find(known.begin(), known.end(), k) == known.end()) {
      std::string list;
      for (std::string_view n : known) list += Cat(list.empty() ? "" : ", ", n);
      return Bad(Cat(path, ".", k), Cat("unknown field (expected ", list, ")"));
    }
  }
  return absl::OkStatus();
}

// Journey names, step ids and action names go into feed texts as they are (no escaping on
// the hot path), and names and ids into idempotency keys, which ':' separates.
absl::Status CheckName(std::string_view s, std::string_view path, bool colon_ok = false) {
  if (s.empty() || s.size() > 256) return Bad(path, "expected 1 to 256 bytes");
  for (unsigned char c : s)
    if (c < 0x20 || (c == ':' && !colon_ok) || c == '"' || c == '\\')
      return Bad(path, colon_ok ? "no quotes, backslashes or control characters"
                                : "no ':', quotes, backslashes or control characters");
  return absl::OkStatus();
}

// Appends s in quotes: s passed CheckName.
void AppendQuoted(std::string& out, std::string_view s) {
  out += '"';
  out += s;
  out += '"';
}

class JourneysPart final : public Part {
 public:
  using Part::Part;

  std::string_view section() const override { return "journeys"; }
  bool Owns(std::string_view kind) const override { return kind == "journey"; }
  bool Handles(std::string_view op) const override { return op == "enter" || op == "exit"; }
  bool empty() const override { return by_name_.empty(); }

  absl::StatusOr<Installer> Prepare(dom::element root, int64_t now) override;
  absl::Status Drop(std::string_view name) override;
  absl::Status Apply(std::string_view op, dom::object req, Ix p, int64_t now, json::Writer& out) override;
  void OnEvent(Ix p, const LifeEvent& e) override;
  void OnTransition(Ix p, uint32_t machine, uint16_t from, uint16_t to, int64_t ts) override;
  void Advanced(int64_t now) override;
  void Fire(const Timer& t) override;
  void Merge(Ix survivor, Ix absorbed, int64_t now) override;
  void Clear(Ix p) override;
  void Forget(Ix p) override;
  void AppendPerson(json::Writer& w, Ix p) const override;
  void AppendCatalog(json::Writer& w) const override;
  bool StateOf(uint32_t machine, Ix p, Value& out) const override;
  uint64_t bytes() const override;
  void Save(snap::Writer& w) const override;
  absl::Status Load(snap::Reader& r) override;

 private:
  // Definitions.
  absl::StatusOr<std::shared_ptr<Def>> ParseJourney(dom::element v, const std::string& path);
  absl::Status ParseSteps(dom::array steps, const std::string& path, Def& d);
  absl::Status ParseEntry(dom::element v, const std::string& path, Def& d);
  absl::Status ParseTypes(dom::element v, const std::string& path, std::vector<uint32_t>& out);
  absl::StatusOr<Delivery> ParseDelivery(dom::element v);
  void Install(std::shared_ptr<const Def> def, int64_t now);
  void Reindex();

  // Instances.
  const char* Refusal(const Def& d, const Track* t, int64_t now) const;
  bool Enter(uint32_t j, Ix p, int64_t now, std::string_view reason, std::string_view cause, bool force,
             const char** refused = nullptr);
  void Run(uint32_t j, Ix p, Track& t, int64_t now, std::string_view reason, std::string_view cause);
  void Wake(uint32_t j, Ix p, Track& t);
  void Goto(Track& t, uint16_t target) {
    if (target <= t.step) t.laps++;
    t.step = target;
  }
  void Sleep(Track& t, uint32_t j, Ix p, int64_t at) {
    t.until = at;
    t.gen = ++gen_;
    core_.Schedule(at, PartId::kJourneys, p, j, t.gen);
  }
  void Finish(uint32_t j, Ix p, Track& t, int64_t now, End how, std::string_view reason, std::string_view cause);
  void Emit(uint32_t j, Ix p, const Track& t, const Step& s, int64_t now);
  void FeedJourney(Ix p, int64_t ts, const Def& d, const Track& t, std::string_view event, std::string_view step,
                   std::string_view reason, std::string_view cause);

  // Delivery.
  void Flush();
  int64_t NextOpen(int64_t at) const;
  bool OverCap(Ix p, int64_t at) const;
  void Sent(Ix p, int64_t at);
  std::vector<int64_t> Log(Ix p) const;
  void Unlog(Ix p);
  void Relog(uint32_t keep);
  void FeedIntent(Ix p, int64_t ts, const Def& d, std::string_view key, std::string_view step,
                  std::string_view action, std::string_view status, uint64_t id, int64_t at);
  uint32_t NewDeferred();
  void FreeDeferred(uint32_t slot);
  void Release(const Timer& t);
  // Cancels the deferred intents of t's current instance.
  void Withdraw(Journey& jr, Track& t, int64_t now);

  std::vector<std::unique_ptr<Journey>> journeys_;  // by slot; nullptr: a free slot
  absl::flat_hash_map<std::string, uint32_t> by_name_;
  absl::flat_hash_map<uint32_t, uint32_t> by_machine_;  // interned name -> slot
  // What an event type means to which journeys: (slot, role bits).
  enum : uint8_t { kRoleEntry = 1, kRoleExit = 2, kRoleGoal = 4, kRoleWaitFor = 8 };
  std::vector<std::vector<std::pair<uint32_t, uint8_t>>> by_type_;
  absl::flat_hash_map<uint32_t, std::vector<uint32_t>> by_state_machine_;  // machine -> slots
  std::vector<uint32_t> audience_;  // slots with audience entries

  Delivery delivery_;
  std::vector<Staged> staged_;
  std::vector<Deferred> deferred_;
  uint32_t free_ = kNil;
  // The send log: each person's latest deliveries (times ascending, at most keep_) in a
  // block of keep_ + 1 (a count, then the times) of one pool; blocks found by Ix.
  uint32_t keep_ = 0;
  std::vector<uint32_t> log_of_;
  std::vector<int64_t> log_pool_;
  std::vector<uint32_t> log_free_;
  uint32_t gen_ = 0;
  uint32_t instances_ = 0;
};

// --- definitions ---------------------------------------------------------------------

absl::Status JourneysPart::ParseTypes(dom::element v, const std::string& path, std::vector<uint32_t>& out) {
  std::string_view s;
  if (v.get(s) == simdjson::SUCCESS) {
    if (s.empty()) return Bad(path, "expected an event type");
    out.push_back(core_.store.EventType(s));
    return absl::OkStatus();
  }
  dom::array a;
  if (v.get(a) != simdjson::SUCCESS || a.size() == 0) return Bad(path, "expected an event type or a non-empty array of them");
  size_t i = 0;
  for (dom::element x : a) {
    if (x.get(s) != simdjson::SUCCESS || s.empty()) return Bad(Cat(path, "[", i, "]"), "expected an event type");
    out.push_back(core_.store.EventType(s));
    i++;
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return absl::OkStatus();
}

absl::Status JourneysPart::ParseEntry(dom::element v, const std::string& path, Def& d) {
  dom::object o;
  if (v.get(o) != simdjson::SUCCESS)
    return Bad(path, "expected {\"on\": event type}, {\"state\": {\"machine\", \"to\"}} or {\"audience\": expression}");
  Entry e;
  dom::element x;
  if (o["on"].get(x) == simdjson::SUCCESS) {
    if (auto st = CheckKeys(o, path, {"on", "when"}); !st.ok()) return st;
    e.kind = Entry::Kind::kEvent;
    if (auto st = ParseTypes(x, path + ".on", e.types); !st.ok()) return st;
  } else if (o["state"].get(x) == simdjson::SUCCESS) {
    if (auto st = CheckKeys(o, path, {"state", "when"}); !st.ok()) return st;
    e.kind = Entry::Kind::kState;
    dom::object so;
    std::string_view machine, to, from;
    if (x.get(so) != simdjson::SUCCESS) return Bad(path + ".state", "expected {\"machine\": name, \"to\": state}");
    if (auto st = CheckKeys(so, path + ".state", {"machine", "to", "from"}); !st.ok()) return st;
    if (so["machine"].get(machine) != simdjson::SUCCESS || machine.empty())
      return Bad(path + ".state.machine", "expected a machine (or tier set) name");
    if (so["to"].get(to) != simdjson::SUCCESS || to.empty()) return Bad(path + ".state.to", "expected a state name");
    if (so["from"].get(x) == simdjson::SUCCESS && (x.get(from) != simdjson::SUCCESS || from.empty()))
      return Bad(path + ".state.from", "expected a state name");
    e.machine = core_.store.Machine(machine);
    e.to = std::string(to);
    e.from = std::string(from);
  } else if (o["audience"].get(x) == simdjson::SUCCESS) {
    if (auto st = CheckKeys(o, path, {"audience"}); !st.ok()) return st;
    e.kind = Entry::Kind::kAudience;
    auto ex = core_.Compile(x, path + ".audience");
    if (!ex.ok()) return ex.status();
    e.when = std::move(*ex);
  } else {
    return Bad(path, "expected \"on\" (an event type), \"state\" or \"audience\"");
  }
  if (o["when"].get(x) == simdjson::SUCCESS) {
    auto ex = core_.Compile(x, path + ".when");
    if (!ex.ok()) return ex.status();
    e.when = std::move(*ex);
  }
  d.entries.push_back(std::move(e));
  return absl::OkStatus();
}

absl::Status JourneysPart::ParseSteps(dom::array steps, const std::string& path, Def& d) {
  if (steps.size() == 0) return Bad(path, "expected at least one step");
  if (steps.size() > kMaxSteps) return Bad(path, Cat("at most ", kMaxSteps, " steps"));
  const size_t n = steps.size();
  // First the ids (targets may point forward), then everything else.
  std::vector<dom::object> objs;
  absl::flat_hash_map<std::string, uint16_t> ids;
  for (dom::element v : steps) {
    const std::string at = Cat(path, "[", objs.size(), "]");
    dom::object o;
    if (v.get(o) != simdjson::SUCCESS) return Bad(at, "expected a step object");
    Step s;
    std::string_view id;
    dom::element x;
    if (o["id"].get(x) == simdjson::SUCCESS) {
      if (x.get(id) != simdjson::SUCCESS) return Bad(at + ".id", "expected a string");
      if (auto st = CheckName(id, at + ".id"); !st.ok()) return st;
      s.id = std::string(id);
    } else {
      s.id = std::to_string(objs.size());  // the index: give action steps ids of their own
    }
    if (!ids.try_emplace(s.id, static_cast<uint16_t>(objs.size())).second)
      return Bad(at + ".id", Cat("step id \"", s.id, "\" is used twice"));
    d.steps.push_back(std::move(s));
    objs.push_back(o);
  }
  auto target = [&](dom::object o, std::string_view key, const std::string& at, uint16_t dflt,
                    uint16_t& out) -> absl::Status {
    dom::element x;
    if (o[key].get(x) != simdjson::SUCCESS) {
      out = dflt;
      return absl::OkStatus();
    }
    std::string_view id;
    if (x.get(id) != simdjson::SUCCESS) return Bad(Cat(at, ".", key), "expected a step id");
    auto it = ids.find(std::string(id));
    if (it == ids.end()) return Bad(Cat(at, ".", key), Cat("no step has the id \"", id, "\""));
    out = it->second;
    return absl::OkStatus();
  };
  for (size_t i = 0; i < n; ++i) {
    Step& s = d.steps[i];
    dom::object o = objs[i];
    const std::string at = Cat(path, "[", i, "]");
    const uint16_t next = static_cast<uint16_t>(i + 1);
    dom::element x;
    int kinds = 0;
    for (std::string_view k : {"action", "wait", "wait_until", "wait_for", "if", "split", "goto", "end"})
      kinds += o[k].get(x) == simdjson::SUCCESS;
    if (kinds != 1)
      return Bad(at, "expected exactly one of \"action\", \"wait\", \"wait_until\", \"wait_for\", \"if\", \"split\", "
                     "\"goto\", \"end\"");
    absl::Status st;
    std::string_view text;
    if (o["action"].get(x) == simdjson::SUCCESS) {
      s.kind = StepKind::kAction;
      if ((st = CheckKeys(o, at, {"id", "action", "channel", "payload"})); !st.ok()) return st;
      if (x.get(text) != simdjson::SUCCESS) return Bad(at + ".action", "expected an action name");
      if ((st = CheckName(text, at + ".action", /*colon_ok=*/true)); !st.ok()) return st;
      s.action = std::string(text);
      if (o["channel"].get(x) == simdjson::SUCCESS) {
        if (x.get(text) != simdjson::SUCCESS) return Bad(at + ".channel", "expected a string");
        s.channel = std::string(text);
      }
      if (o["payload"].get(x) == simdjson::SUCCESS) {
        auto t = core_.CompileTemplate(x, at + ".payload");
        if (!t.ok()) return t.status();
        s.payload = std::move(*t);
      }
    } else if (o["wait"].get(x) == simdjson::SUCCESS) {
      s.kind = StepKind::kWait;
      if ((st = CheckKeys(o, at, {"id", "wait"})); !st.ok()) return st;
      if ((st = Core::Duration(x, at + ".wait", s.ms)); !st.ok()) return st;
      if (s.ms > 0 && s.ms < kMinTimer) return Bad(at + ".wait", "0 (go straight on) or at least a minute (\"1m\")");
    } else if (o["wait_until"].get(x) == simdjson::SUCCESS) {
      s.kind = StepKind::kWaitUntil;
      if ((st = CheckKeys(o, at, {"id", "wait_until"})); !st.ok()) return st;
      if ((st = Core::TimeOfDay(x, at + ".wait_until", s.ms)); !st.ok()) return st;
    } else if (o["wait_for"].get(x) == simdjson::SUCCESS) {
      s.kind = StepKind::kWaitFor;
      if ((st = CheckKeys(o, at, {"id", "wait_for", "when", "timeout", "yes", "no"})); !st.ok()) return st;
      if ((st = ParseTypes(x, at + ".wait_for", s.types)); !st.ok()) return st;
      s.ms = kForever;
      if (o["timeout"].get(x) == simdjson::SUCCESS) {
        if ((st = Core::Duration(x, at + ".timeout", s.ms)); !st.ok()) return st;
        if (s.ms < kMinTimer) return Bad(at + ".timeout", "at least a minute (\"1m\")");
      }
      if (o["when"].get(x) == simdjson::SUCCESS) {
        auto e = core_.Compile(x, at + ".when");
        if (!e.ok()) return e.status();
        s.guard = std::move(*e);
      }
      if ((st = target(o, "yes", at, next, s.yes)); !st.ok()) return st;
      if ((st = target(o, "no", at, next, s.no)); !st.ok()) return st;
    } else if (o["if"].get(x) == simdjson::SUCCESS) {
      s.kind = StepKind::kIf;
      if ((st = CheckKeys(o, at, {"id", "if", "then", "else"})); !st.ok()) return st;
      auto e = core_.Compile(x, at + ".if");
      if (!e.ok()) return e.status();
      s.guard = std::move(*e);
      if ((st = target(o, "then", at, next, s.yes)); !st.ok()) return st;
      if ((st = target(o, "else", at, next, s.no)); !st.ok()) return st;
    } else if (o["split"].get(x) == simdjson::SUCCESS) {
      s.kind = StepKind::kSplit;
      if ((st = CheckKeys(o, at, {"id", "split"})); !st.ok()) return st;
      dom::array arms;
      if (x.get(arms) != simdjson::SUCCESS || arms.size() < 2)
        return Bad(at + ".split", "expected at least two arms [{\"weight\": N, \"goto\": step id}, ...]");
      uint64_t total = 0;
      size_t k = 0;
      for (dom::element arm : arms) {
        const std::string ap = Cat(at, ".split[", k++, "]");
        dom::object ao;
        uint64_t w;
        if (arm.get(ao) != simdjson::SUCCESS) return Bad(ap, "expected {\"weight\": N, \"goto\": step id}");
        if ((st = CheckKeys(ao, ap, {"weight", "goto"})); !st.ok()) return st;
        if (ao["weight"].get(w) != simdjson::SUCCESS || w == 0 || w > 10000)
          return Bad(ap + ".weight", "expected an integer weight, 1 to 10000");
        uint16_t to;
        dom::element g;
        if (ao["goto"].get(g) != simdjson::SUCCESS) return Bad(ap + ".goto", "expected a step id");
        if ((st = target(ao, "goto", ap, next, to)); !st.ok()) return st;
        total += w;
        s.split.emplace_back(static_cast<uint32_t>(total), to);
      }
      s.salt = Cat(d.name, ":", s.id);
    } else if (o["goto"].get(x) == simdjson::SUCCESS) {
      s.kind = StepKind::kGoto;
      if ((st = CheckKeys(o, at, {"id", "goto"})); !st.ok()) return st;
      if ((st = target(o, "goto", at, next, s.yes)); !st.ok()) return st;
    } else {
      s.kind = StepKind::kEnd;
      if ((st = CheckKeys(o, at, {"id", "end"})); !st.ok()) return st;
      bool b;
      if (o["end"].get(b) != simdjson::SUCCESS || !b) return Bad(at + ".end", "expected true");
    }
  }
  // Steps that do not wait run in one call: a cycle through such steps alone would never
  // end. A depth-first search over their edges finds one.
  auto succ = [&](size_t i, std::vector<uint16_t>& out) {
    out.clear();
    const Step& s = d.steps[i];
    if (s.waits()) return;
    switch (s.kind) {
      case StepKind::kAction: case StepKind::kWait: out.push_back(static_cast<uint16_t>(i + 1)); break;
      case StepKind::kIf: out = {s.yes, s.no}; break;
      case StepKind::kGoto: out.push_back(s.yes); break;
      case StepKind::kSplit: for (auto& [w, to] : s.split) out.push_back(to); break;
      default: break;
    }
  };
  std::vector<uint8_t> color(n, 0);  // 0 new, 1 on the path, 2 done
  std::vector<std::pair<uint16_t, size_t>> stack;  // (step, next successor to try)
  std::vector<uint16_t> out;
  for (size_t root = 0; root < n; ++root) {
    if (color[root]) continue;
    stack.emplace_back(static_cast<uint16_t>(root), 0);
    color[root] = 1;
    while (!stack.empty()) {
      auto& [i, k] = stack.back();
      succ(i, out);
      if (k >= out.size()) {
        color[i] = 2;
        stack.pop_back();
        continue;
      }
      uint16_t to = out[k++];
      if (to >= n || color[to] == 2) continue;
      if (color[to] == 1) {
        std::string loop;
        bool on = false;
        for (auto& [s, _] : stack) {
          on |= s == to;
          if (on) loop += Cat("\"", d.steps[s].id, "\" -> ");
        }
        return Bad(path, Cat("the steps ", loop, "\"", d.steps[to].id,
                             "\" loop without waiting (a wait longer than 0, wait_until or wait_for)"));
      }
      color[to] = 1;
      stack.emplace_back(to, 0);
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<Def>> JourneysPart::ParseJourney(dom::element v, const std::string& path) {
  dom::object o;
  if (v.get(o) != simdjson::SUCCESS) return Bad(path, "expected a journey object");
  if (auto st = CheckKeys(o, path, {"name", "description", "priority", "holdout", "entry", "reentry", "max_entries",
                                    "exit", "goal", "steps"});
      !st.ok())
    return st;
  auto d = std::make_shared<Def>();
  std::string_view name;
  if (o["name"].get(name) != simdjson::SUCCESS) return Bad(path + ".name", "expected the journey's name");
  if (auto st = CheckName(name, path + ".name"); !st.ok()) return st;
  d->name = std::string(name);
  d->origin = Cat("journey:", name);
  d->source = Minify(v);
  dom::element x;
  if (o["description"].get(x) == simdjson::SUCCESS && !x.is_string())
    return Bad(path + ".description", "expected a string");
  if (o["priority"].get(x) == simdjson::SUCCESS) {
    int64_t pr;
    if (x.get(pr) != simdjson::SUCCESS || pr < -1000000 || pr > 1000000)
      return Bad(path + ".priority", "expected an integer (higher goes first), -1000000 to 1000000");
    d->priority = static_cast<int32_t>(pr);
  }
  if (o["holdout"].get(x) == simdjson::SUCCESS) {
    double pct;
    dom::object ho;
    uint64_t bp;
    if (x.get(pct) == simdjson::SUCCESS) {
      if (!(pct >= 0 && pct <= 100)) return Bad(path + ".holdout", "expected a percentage, 0 to 100");
      d->holdout_bp = static_cast<uint32_t>(pct * 100 + 0.5);
    } else if (x.get(ho) == simdjson::SUCCESS) {
      if (auto st = CheckKeys(ho, path + ".holdout", {"basis_points"}); !st.ok()) return st;
      if (ho["basis_points"].get(bp) != simdjson::SUCCESS || bp > 10000)
        return Bad(path + ".holdout.basis_points", "expected an integer, 0 to 10000");
      d->holdout_bp = static_cast<uint32_t>(bp);
    } else {
      return Bad(path + ".holdout", "expected a percentage or {\"basis_points\": N}");
    }
  }
  dom::array arr;
  if (o["entry"].get(x) != simdjson::SUCCESS) return Bad(path + ".entry", "missing: how persons enter the journey");
  if (x.get(arr) == simdjson::SUCCESS) {
    if (arr.size() == 0) return Bad(path + ".entry", "expected at least one entry rule");
    size_t i = 0;
    for (dom::element e : arr)
      if (auto st = ParseEntry(e, Cat(path, ".entry[", i++, "]"), *d); !st.ok()) return st;
  } else if (auto st = ParseEntry(x, path + ".entry", *d); !st.ok()) {
    return st;
  }
  if (o["reentry"].get(x) == simdjson::SUCCESS) {
    std::string_view mode;
    dom::object ro;
    if (x.get(mode) == simdjson::SUCCESS && (mode == "once" || mode == "always")) {
      d->reentry = mode == "once" ? Reentry::kOnce : Reentry::kAlways;
    } else if (x.get(ro) == simdjson::SUCCESS) {
      if (auto st = CheckKeys(ro, path + ".reentry", {"after"}); !st.ok()) return st;
      if (ro["after"].get(x) != simdjson::SUCCESS) return Bad(path + ".reentry.after", "expected a duration");
      if (auto st = Core::Duration(x, path + ".reentry.after", d->reentry_after); !st.ok()) return st;
      d->reentry = Reentry::kAfter;
    } else {
      return Bad(path + ".reentry", "expected \"once\", \"always\" or {\"after\": duration}");
    }
  }
  if (o["max_entries"].get(x) == simdjson::SUCCESS) {
    uint64_t m;
    if (x.get(m) != simdjson::SUCCESS || m == 0 || m > 1000000)
      return Bad(path + ".max_entries", "expected a positive integer");
    d->max_entries = static_cast<uint32_t>(m);
  }
  for (std::string_view key : {"exit", "goal"}) {
    if (o[key].get(x) != simdjson::SUCCESS) continue;
    const std::string at = Cat(path, ".", key);
    dom::object eo;
    if (x.get(eo) != simdjson::SUCCESS || eo.size() == 0)
      return Bad(at, "expected {\"on\": event types, \"when\": expression}");
    if (auto st = CheckKeys(eo, at, {"on", "when"}); !st.ok()) return st;
    const bool exit = key == "exit";
    if (eo["on"].get(x) == simdjson::SUCCESS) {
      if (auto st = ParseTypes(x, at + ".on", exit ? d->exit_on : d->goal_on); !st.ok()) return st;
    } else if (!exit) {
      return Bad(at + ".on", "expected the goal's event type(s)");
    }
    if (eo["when"].get(x) == simdjson::SUCCESS) {
      auto e = core_.Compile(x, at + ".when");
      if (!e.ok()) return e.status();
      (exit ? d->exit_when : d->goal_when) = std::move(*e);
    }
  }
  if (o["steps"].get(x) != simdjson::SUCCESS || x.get(arr) != simdjson::SUCCESS)
    return Bad(path + ".steps", "expected an array of steps");
  if (auto st = ParseSteps(arr, path + ".steps", *d); !st.ok()) return st;
  d->machine = core_.store.Machine(d->name);
  return d;
}

absl::StatusOr<Delivery> JourneysPart::ParseDelivery(dom::element v) {
  Delivery d;
  dom::object o;
  if (v.get(o) != simdjson::SUCCESS)
    return Bad("delivery", "expected {\"send_window\": [from, to], \"quiet_hours\": [from, to], \"caps\": {...}}");
  if (auto st = CheckKeys(o, "delivery", {"send_window", "quiet_hours", "caps"}); !st.ok()) return st;
  d.given = true;
  d.source = Minify(v);
  dom::element x;
  for (std::string_view key : {"send_window", "quiet_hours"}) {
    if (o[key].get(x) != simdjson::SUCCESS) continue;
    const std::string at = Cat("delivery.", key);
    dom::array a;
    if (x.get(a) != simdjson::SUCCESS || a.size() != 2) return Bad(at, "expected [\"HH:MM\", \"HH:MM\"]");
    int64_t from, to;
    if (auto st = Core::TimeOfDay(a.at(0).value(), at + "[0]", from); !st.ok()) return st;
    if (auto st = Core::TimeOfDay(a.at(1).value(), at + "[1]", to); !st.ok()) return st;
    if (from == to) return Bad(at, "the two times are equal: an empty or a whole day");
    const bool window = key == "send_window";
    (window ? d.window : d.quiet) = true;
    (window ? d.window_from : d.quiet_from) = from;
    (window ? d.window_to : d.quiet_to) = to;
  }
  // An open time of day starts where the window opens or where quiet hours end.
  if ((d.window || d.quiet) && !(d.window && OpenAt(d, d.window_from)) && !(d.quiet && OpenAt(d, d.quiet_to)))
    return Bad("delivery", "the quiet hours cover the whole send window: nothing could ever be sent");
  if (o["caps"].get(x) == simdjson::SUCCESS) {
    dom::object co;
    if (x.get(co) != simdjson::SUCCESS) return Bad("delivery.caps", "expected {\"per_day\": N, \"per_7_days\": N}");
    if (auto st = CheckKeys(co, "delivery.caps", {"per_day", "per_7_days"}); !st.ok()) return st;
    for (std::string_view key : {"per_day", "per_7_days"}) {
      uint64_t n;
      if (co[key].get(x) != simdjson::SUCCESS) continue;
      if (x.get(n) != simdjson::SUCCESS || n == 0 || n > 100)
        return Bad(Cat("delivery.caps.", key), "expected an integer, 1 to 100");
      (key == "per_day" ? d.per_day : d.per_7_days) = static_cast<uint32_t>(n);
    }
  }
  return d;
}

absl::StatusOr<Part::Installer> JourneysPart::Prepare(dom::element root, int64_t now) {
  struct Prepared {
    std::vector<std::shared_ptr<const Def>> defs;
    std::optional<Delivery> delivery;
  };
  auto prep = std::make_shared<Prepared>();
  dom::element x;
  if (root["journeys"].get(x) == simdjson::SUCCESS) {
    dom::array a;
    if (x.get(a) != simdjson::SUCCESS) return Bad("journeys", "expected an array of journeys");
    absl::flat_hash_map<std::string, size_t> seen;
    size_t added = 0;
    for (dom::element v : a) {
      const std::string path = Cat("journeys[", prep->defs.size(), "]");
      auto d = ParseJourney(v, path);
      if (!d.ok()) return d.status();
      if (!seen.try_emplace((*d)->name, prep->defs.size()).second)
        return Bad(path + ".name", Cat("the journey \"", (*d)->name, "\" is defined twice"));
      added += !by_name_.contains((*d)->name);
      prep->defs.push_back(std::move(*d));
    }
    if (by_name_.size() + added > core_.limits.max_definitions)
      return Bad("journeys", Cat("more than ", core_.limits.max_definitions, " journeys"));
  }
  if (root["delivery"].get(x) == simdjson::SUCCESS) {
    auto d = ParseDelivery(x);
    if (!d.ok()) return d.status();
    prep->delivery = std::move(*d);
  }
  return Installer([this, prep, now](json::Writer& w) {
    w.Key("journeys").BeginArray();
    for (auto& d : prep->defs) {
      w.String(d->name);
      Install(d, now);
    }
    w.EndArray();
    if (prep->delivery) {
      delivery_ = *prep->delivery;
      Relog(std::max(delivery_.per_day, delivery_.per_7_days));
    }
    w.Key("delivery").Bool(prep->delivery.has_value());
    Reindex();
    Flush();
  });
}

// A new journey takes a free slot; a redefined one keeps its slot, its persons and its
// totals. An active instance stays on the step with the same id when that step waits the
// same way (its deadline stays); otherwise it is cancelled ("definition").
void JourneysPart::Install(std::shared_ptr<const Def> def, int64_t now) {
  auto it = by_name_.find(def->name);
  if (it == by_name_.end()) {
    uint32_t slot = 0;
    while (slot < journeys_.size() && journeys_[slot]) slot++;
    if (slot == journeys_.size()) journeys_.emplace_back();
    journeys_[slot] = std::make_unique<Journey>();
    journeys_[slot]->def = std::move(def);
    by_name_.emplace(journeys_[slot]->def->name, slot);
    return;
  }
  const uint32_t j = it->second;
  Journey& jr = *journeys_[j];
  absl::flat_hash_map<std::string_view, uint16_t> ids;
  for (size_t i = 0; i < def->steps.size(); ++i) ids.emplace(def->steps[i].id, static_cast<uint16_t>(i));
  auto place = [&](const Track& t) -> uint16_t {
    const Step& was = jr.def->steps[t.step];
    auto s = ids.find(was.id);
    if (s == ids.end()) return kIdle;
    const Step& is = def->steps[s->second];
    if (is.kind != was.kind || !is.waits()) return kIdle;
    if (is.kind == StepKind::kWaitFor && (is.ms == kForever) != (t.until == kForever)) return kIdle;
    return s->second;
  };
  // Cancel under the old definition (the feed names the old step), then move the others.
  for (Ix p : Persons(jr)) {
    Track& t = jr.tracks.find(p)->second;
    if (t.active() && place(t) == kIdle) Finish(j, p, t, now, End::kCancelled, "definition", {});
  }
  for (auto& [p, t] : jr.tracks)
    if (t.active()) t.step = place(t);
  jr.def = std::move(def);
}

void JourneysPart::Reindex() {
  by_type_.clear();
  by_machine_.clear();
  by_state_machine_.clear();
  audience_.clear();
  auto add = [&](uint32_t type, uint32_t j, uint8_t role) {
    if (type >= by_type_.size()) by_type_.resize(type + 1);
    auto& v = by_type_[type];
    if (!v.empty() && v.back().first == j) v.back().second |= role;
    else v.emplace_back(j, role);
  };
  for (uint32_t j = 0; j < journeys_.size(); ++j) {
    if (!journeys_[j]) continue;
    const Def& d = *journeys_[j]->def;
    by_machine_[d.machine] = j;
    for (const Entry& e : d.entries) {
      if (e.kind == Entry::Kind::kEvent)
        for (uint32_t t : e.types) add(t, j, kRoleEntry);
      if (e.kind == Entry::Kind::kState) {
        auto& v = by_state_machine_[e.machine];
        if (v.empty() || v.back() != j) v.push_back(j);
      }
      if (e.kind == Entry::Kind::kAudience && (audience_.empty() || audience_.back() != j)) audience_.push_back(j);
    }
    for (uint32_t t : d.exit_on) add(t, j, kRoleExit);
    for (uint32_t t : d.goal_on) add(t, j, kRoleGoal);
    for (const Step& s : d.steps)
      for (uint32_t t : s.types) add(t, j, kRoleWaitFor);
  }
}

absl::Status JourneysPart::Drop(std::string_view name) {
  auto it = by_name_.find(std::string(name));
  if (it == by_name_.end()) return absl::NotFoundError(Cat("journey \"", name, "\" is not defined"));
  const uint32_t j = it->second;
  Journey& jr = *journeys_[j];
  for (Ix p : Persons(jr)) {
    Track& t = jr.tracks.find(p)->second;
    if (t.active()) {
      FeedJourney(p, 0, *jr.def, t, "cancelled", jr.def->steps[t.step].id, "dropped", {});
      t.step = kIdle;
    }
    // Their intents go with the journey, unreported one by one (the outbox drop below).
    for (uint32_t s = t.deferred; s != kNil;) {
      uint32_t next = deferred_[s].next;
      FreeDeferred(s);
      s = next;
    }
  }
  core_.outbox.Drop(0, jr.def->origin);
  by_name_.erase(it);
  journeys_[j].reset();
  Reindex();
  return absl::OkStatus();
}

// --- instances -----------------------------------------------------------------------

// Why an entry is refused by the entry rules, or nullptr.
const char* JourneysPart::Refusal(const Def& d, const Track* t, int64_t now) const {
  if (!t) return nullptr;
  if (t->active()) return "active";
  if (t->entries == 0) return nullptr;
  if (d.max_entries && t->entries >= d.max_entries) return "max_entries";
  if (d.reentry == Reentry::kOnce) return "once";
  if (d.reentry == Reentry::kAfter && now < t->entered + d.reentry_after) return "reentry_window";
  return nullptr;
}

bool JourneysPart::Enter(uint32_t j, Ix p, int64_t now, std::string_view reason, std::string_view cause, bool force,
                         const char** refused) {
  Journey& jr = *journeys_[j];
  const Def& d = *jr.def;
  Track& t = jr.tracks[p];
  const char* why = force && !t.active() ? nullptr : Refusal(d, &t, now);
  if (why) {
    if (refused) *refused = why;
    return false;
  }
  t.entries++;
  t.entry = t.entries;
  t.instance = ++instances_;
  t.entered = now;
  t.entry_oneid = core_.OneId(p);
  t.holdout = Core::Bucket(t.entry_oneid, d.name) < d.holdout_bp;
  t.step = 0;
  t.laps = 0;
  t.until = kForever;
  t.ended = End::kNone;
  jr.active++;
  jr.entered++;
  jr.held_out += t.holdout;
  FeedJourney(p, now, d, t, "entered", {}, reason, cause);
  Run(j, p, t, now, "entry", {});
  return true;
}

// Walks the instance from its current step (reached by reason) until it waits or ends.
void JourneysPart::Run(uint32_t j, Ix p, Track& t, int64_t now, std::string_view reason, std::string_view cause) {
  const Def& d = *journeys_[j]->def;
  const uint16_t n = static_cast<uint16_t>(d.steps.size());
  // The definition has no loop without a wait, so no walk visits a step twice; the bound
  // only makes that visible here.
  for (size_t budget = n + 1u; budget > 0; --budget) {
    if (t.step >= n) return Finish(j, p, t, now, End::kCompleted, "last_step", {});
    if (d.exit_when && core_.Test(*d.exit_when, p, now)) return Finish(j, p, t, now, End::kExited, "condition", {});
    const Step& s = d.steps[t.step];
    FeedJourney(p, now, d, t, "step", s.id, reason, cause);
    cause = {};
    switch (s.kind) {
      case StepKind::kAction:
        Emit(j, p, t, s, now);
        Goto(t, static_cast<uint16_t>(t.step + 1));
        reason = "next";
        break;
      case StepKind::kWait:
        if (s.ms > 0) return Sleep(t, j, p, now + s.ms);
        Goto(t, static_cast<uint16_t>(t.step + 1));
        reason = "next";
        break;
      case StepKind::kWaitUntil: return Sleep(t, j, p, core_.NextLocalTime(now, s.ms));
      case StepKind::kWaitFor:
        if (s.ms != kForever) return Sleep(t, j, p, now + s.ms);
        t.until = kForever;
        t.gen = ++gen_;
        return;
      case StepKind::kIf: {
        bool yes = core_.Test(*s.guard, p, now);
        Goto(t, yes ? s.yes : s.no);
        reason = yes ? "then" : "else";
        break;
      }
      case StepKind::kSplit: {
        const uint64_t b = uint64_t{Core::Bucket(t.entry_oneid, s.salt)} * s.split.back().first / 10000;
        size_t k = 0;
        while (s.split[k].first <= b) k++;
        Goto(t, s.split[k].second);
        reason = "split";
        break;
      }
      case StepKind::kGoto:
        Goto(t, s.yes);
        reason = "goto";
        break;
      case StepKind::kEnd: return Finish(j, p, t, now, End::kCompleted, "end", {});
    }
  }
  Finish(j, p, t, now, End::kCancelled, "step_limit", {});
}

void JourneysPart::Finish(uint32_t j, Ix p, Track& t, int64_t now, End how, std::string_view reason,
                          std::string_view cause) {
  Journey& jr = *journeys_[j];
  const Def& d = *jr.def;
  std::string_view step = t.step < d.steps.size() ? std::string_view(d.steps[t.step].id) : std::string_view();
  std::string_view event = EndName(how);
  FeedJourney(p, now, d, t, event, step, reason, cause);
  // A completed journey's deferred intents still go out; anything else withdraws them
  // (a first-purchase reminder must not follow the purchase).
  if (how != End::kCompleted) Withdraw(jr, t, now);
  t.step = kIdle;
  t.until = kForever;
  t.gen = ++gen_;
  t.ended = how;
  jr.active--;
  switch (how) {
    case End::kCompleted: jr.completed++; break;
    case End::kExited: jr.exited++; break;
    case End::kGoal:
      t.goals++;
      jr.goals++;
      jr.held_out_goals += t.holdout;
      break;
    case End::kCancelled: jr.cancelled++; break;
    case End::kNone: break;
  }
}

void JourneysPart::Emit(uint32_t j, Ix p, const Track& t, const Step& s, int64_t now) {
  const Def& d = *journeys_[j]->def;
  Staged st;
  st.priority = d.priority;
  st.journey = j;
  st.person = p;
  st.instance = t.instance;
  st.held_out = t.holdout;
  Intent& in = st.intent;
  in.key = Cat(d.name, ":", t.entry_oneid, ":", t.entry, ":", s.id);
  if (t.laps) in.key += Cat(":", t.laps);
  in.oneid = core_.OneId(p);
  in.at = in.created = now;
  in.origin = d.origin;
  in.step = s.id;
  in.action = s.action;
  in.channel = s.channel;
  if (!t.holdout && !s.payload.empty()) in.payload = core_.Render(s.payload, p, now);
  staged_.push_back(std::move(st));
}

// Feed texts are written by hand: a step is a feed event, so this is on the path of every
// timer. Names, step ids and actions were checked to need no escaping.
void JourneysPart::FeedJourney(Ix p, int64_t ts, const Def& d, const Track& t, std::string_view event,
                               std::string_view step, std::string_view reason, std::string_view cause) {
  std::string text;
  text.reserve(80 + d.name.size() + step.size());
  text += "{\"journey\":";
  AppendQuoted(text, d.name);
  text += ",\"event\":";
  AppendQuoted(text, event);
  text += ",\"step\":";
  if (step.empty()) text += "null";
  else AppendQuoted(text, step);
  text += ",\"reason\":";
  json::AppendString(text, reason);  // a manual exit's reason is the operator's text
  if (!cause.empty()) {
    text += ",\"cause\":";
    json::AppendString(text, cause);
  }
  text += ",\"entry\":";
  text += std::to_string(t.entry);
  if (event == "entered" && t.holdout) text += ",\"holdout\":true";
  text += '}';
  core_.FeedPerson(p, FeedEvent::Kind::kJourney, ts, std::move(text));
}

void JourneysPart::OnEvent(Ix p, const LifeEvent& e) {
  if (e.type >= by_type_.size() || by_type_[e.type].empty()) return;
  std::string_view type;
  for (auto [j, roles] : by_type_[e.type]) {
    Journey& jr = *journeys_[j];
    const Def& d = *jr.def;
    auto it = jr.tracks.find(p);
    Track* t = it == jr.tracks.end() ? nullptr : &it->second;
    if (type.empty()) type = core_.store.EventTypeName(e.type);
    // A deadline due by the event's time passes first, whenever the host advances: the
    // event meets the instance where the timers would have left it. As many as Advance
    // fires for a person at most: past them the event meets the instance where it stands.
    for (uint32_t n = 0; n < kMaxFirings && t && t->active() && t->until <= e.ts; ++n) Wake(j, p, *t);
    if (t && t->active()) {
      if ((roles & kRoleGoal) && (!d.goal_when || core_.Test(*d.goal_when, p, e.ts))) {
        Finish(j, p, *t, e.ts, End::kGoal, "event", type);
      } else if (roles & kRoleExit) {
        Finish(j, p, *t, e.ts, End::kExited, "event", type);
      } else if (roles & kRoleWaitFor) {
        const Step& s = d.steps[t->step];
        if (s.kind == StepKind::kWaitFor && std::binary_search(s.types.begin(), s.types.end(), e.type) &&
            (!s.guard || core_.Test(*s.guard, p, e.ts))) {
          t->until = kForever;
          t->gen = ++gen_;
          Goto(*t, s.yes);
          Run(j, p, *t, e.ts, "yes", type);
        }
      }
    }
    // The event that ended an instance may start the next one, as the entry rules allow.
    if (!(roles & kRoleEntry) || Refusal(d, t, e.ts)) continue;
    for (const Entry& en : d.entries) {
      if (en.kind != Entry::Kind::kEvent || !std::binary_search(en.types.begin(), en.types.end(), e.type)) continue;
      if (en.when && !core_.Test(*en.when, p, e.ts)) continue;
      Enter(j, p, e.ts, "event", type, false);
      break;
    }
  }
  Flush();
}

void JourneysPart::OnTransition(Ix p, uint32_t machine, uint16_t from, uint16_t to, int64_t ts) {
  auto it = by_state_machine_.find(machine);
  if (it == by_state_machine_.end()) return;
  auto name = [&](uint16_t s) {
    if (s == 0xFFFF) return std::string_view();
    for (auto& part : core_.parts)
      if (auto n = part->StateName(machine, s); !n.empty()) return n;
    return std::string_view();
  };
  const std::string_view to_name = name(to), from_name = name(from);
  for (uint32_t j : it->second) {
    Journey& jr = *journeys_[j];
    const Def& d = *jr.def;
    auto ti = jr.tracks.find(p);
    if (Refusal(d, ti == jr.tracks.end() ? nullptr : &ti->second, ts)) continue;
    for (const Entry& en : d.entries) {
      if (en.kind != Entry::Kind::kState || en.machine != machine || en.to != to_name) continue;
      if (!en.from.empty() && en.from != from_name) continue;
      if (en.when && !core_.Test(*en.when, p, ts)) continue;
      Enter(j, p, ts, "state", Cat(core_.store.MachineName(machine), ":", to_name), false);
      break;
    }
  }
  Flush();
}

// Audience entries: every person with a profile is asked at each Advance, in slot order.
// A person stays in an audience between Advances, so re-entry follows the entry rules (a
// window, a maximum), not the audience's edges.
void JourneysPart::Advanced(int64_t now) {
  if (audience_.empty()) return;
  const ProfileStore& store = core_.store;
  const uint32_t slots = store.slots();
  for (uint32_t slot = 0; slot < slots; ++slot) {
    const Profile* prof = store.AtSlot(slot);
    if (!prof) continue;
    Ix p = core_.Find(prof->oneid);  // kNoIx: the lifecycle has not seen the person yet
    for (uint32_t j : audience_) {
      Journey& jr = *journeys_[j];
      const Def& d = *jr.def;
      if (p != kNoIx) {
        auto ti = jr.tracks.find(p);
        if (Refusal(d, ti == jr.tracks.end() ? nullptr : &ti->second, now)) continue;
      }
      for (const Entry& en : d.entries) {
        if (en.kind != Entry::Kind::kAudience) continue;
        if (p == kNoIx) p = core_.Person(prof->oneid);
        if (!core_.Test(*en.when, p, now)) continue;
        Enter(j, p, now, "audience", {}, false);
        break;
      }
    }
    Flush();
  }
}

// The instance's wait is over at its deadline: a wait or wait_until goes on to the next
// step, a wait_for to its "no" branch.
void JourneysPart::Wake(uint32_t j, Ix p, Track& t) {
  const Step& s = journeys_[j]->def->steps[t.step];
  const int64_t at = t.until;
  t.until = kForever;
  t.gen = ++gen_;  // the heap's copy, when this wake came early (an event), goes stale
  if (s.kind == StepKind::kWaitFor) {
    Goto(t, s.no);
    Run(j, p, t, at, "timeout", {});
  } else {
    Goto(t, static_cast<uint16_t>(t.step + 1));
    Run(j, p, t, at, "timer", {});
  }
}

void JourneysPart::Fire(const Timer& tm) {
  if (tm.item & kDeferredBit) {
    Release(tm);
  } else if (tm.item < journeys_.size() && journeys_[tm.item]) {
    Journey& jr = *journeys_[tm.item];
    auto it = jr.tracks.find(tm.person);
    if (it != jr.tracks.end() && it->second.active() && it->second.gen == tm.gen) Wake(tm.item, tm.person, it->second);
  }
  // The heap orders timers by time, part, then person: when the next one is this person's
  // at the same instant, Advance fires it next, and its intents are weighed with these —
  // unless the person reached Advance's cap, which leaves that timer for the next call.
  const auto& h = core_.heap;
  if (!h.empty() && h.front().at == tm.at && h.front().part == static_cast<uint8_t>(PartId::kJourneys) &&
      h.front().person == tm.person && !core_.Capped(tm.person))
    return;
  Flush();
}

// Merge: entry counters and goals add; of two active instances the earlier entered stays and
// the other is cancelled ("merge"); the absorbed person's instance, timers and deferred
// intents move to the survivor. Keys keep the OneID and entry number of their instance.
void JourneysPart::Merge(Ix a, Ix b, int64_t now) {
  for (uint32_t j = 0; j < journeys_.size(); ++j) {
    if (!journeys_[j]) continue;
    Journey& jr = *journeys_[j];
    auto ib = jr.tracks.find(b);
    if (ib == jr.tracks.end()) continue;
    Track tb = ib->second;
    jr.tracks.erase(ib);
    Track& ta = jr.tracks[a];
    if (tb.active() && ta.active()) {
      if (tb.entered < ta.entered) Finish(j, a, ta, now, End::kCancelled, "merge", {});
      else Finish(j, b, tb, now, End::kCancelled, "merge", {});
    }
    // b's instance carries on when it is the one active; with none active, the later entry
    // is the one the re-entry window counts from.
    const bool take_b = tb.active() || (!ta.active() && (ta.entries == 0 || tb.entered > ta.entered));
    const uint32_t entries = ta.entries + tb.entries, goals = ta.goals + tb.goals, deferred = ta.deferred;
    if (take_b) {
      ta = tb;
      ta.deferred = deferred;
      if (ta.active() && ta.until != kForever) Sleep(ta, j, a, ta.until);  // b's timers die with b
    }
    ta.entries = entries;
    ta.goals = goals;
    for (uint32_t s = tb.deferred; s != kNil;) {
      Deferred& df = deferred_[s];
      const uint32_t next = df.next;
      df.person = a;
      df.gen = ++gen_;
      df.next = ta.deferred;
      ta.deferred = s;
      core_.Schedule(df.intent.at, PartId::kJourneys, a, kDeferredBit | s, df.gen);
      s = next;
    }
  }
  for (int64_t at : Log(b)) Sent(a, at);
  Unlog(b);
}

void JourneysPart::Clear(Ix p) {
  for (auto& jp : journeys_) {
    if (!jp) continue;
    auto it = jp->tracks.find(p);
    if (it == jp->tracks.end()) continue;
    Track& t = it->second;
    jp->active -= t.active();
    for (uint32_t s = t.deferred; s != kNil;) {
      uint32_t next = deferred_[s].next;
      FreeDeferred(s);
      s = next;
    }
    jp->tracks.erase(it);
  }
  Unlog(p);
}

// The deferred intents are the only text a track holds (rendered payloads, keys with the
// OneID); Clear frees their slots, which keep nothing but a free-list link.
void JourneysPart::Forget(Ix p) {
  for (auto& jp : journeys_) {
    if (!jp) continue;
    auto it = jp->tracks.find(p);
    if (it == jp->tracks.end()) continue;
    for (uint32_t s = it->second.deferred; s != kNil; s = deferred_[s].next) Wipe(deferred_[s].intent);
  }
  Clear(p);
}

absl::Status JourneysPart::Apply(std::string_view op, dom::object req, Ix p, int64_t now, json::Writer& out) {
  std::string_view name;
  if (req["journey"].get(name) != simdjson::SUCCESS) return Bad("journey", "expected the journey's name");
  auto it = by_name_.find(std::string(name));
  if (it == by_name_.end()) return absl::NotFoundError(Cat("journey \"", name, "\" is not defined"));
  const uint32_t j = it->second;
  Journey& jr = *journeys_[j];
  out.Key("journey").String(name);
  if (op == "enter") {
    if (auto st = CheckKeys(req, "enter", {"op", "oneid", "type", "value", "ts", "journey", "force"}); !st.ok())
      return st;
    bool force = false;
    dom::element x;
    if (req["force"].get(x) == simdjson::SUCCESS && x.get(force) != simdjson::SUCCESS)
      return Bad("force", "expected true or false");
    const char* why = nullptr;
    bool ok = Enter(j, p, now, "manual", {}, force, &why);
    out.Key("entered").Bool(ok);
    if (!ok) out.Key("refused").String(why);
  } else {
    if (auto st = CheckKeys(req, "exit", {"op", "oneid", "type", "value", "ts", "journey", "reason"}); !st.ok())
      return st;
    std::string_view reason = "manual";
    dom::element x;
    if (req["reason"].get(x) == simdjson::SUCCESS && (x.get(reason) != simdjson::SUCCESS || reason.empty()))
      return Bad("reason", "expected a non-empty string");
    auto ti = jr.tracks.find(p);
    bool active = ti != jr.tracks.end() && ti->second.active();
    if (active) Finish(j, p, ti->second, now, End::kExited, reason, {});
    out.Key("exited").Bool(active);
  }
  auto ti = jr.tracks.find(p);
  out.Key("step");
  if (ti != jr.tracks.end() && ti->second.active()) out.String(jr.def->steps[ti->second.step].id);
  else out.Null();
  Flush();
  return absl::OkStatus();
}

// --- delivery ------------------------------------------------------------------------

// The first instant at or after at when an intent may be delivered. Open times start where
// the window opens or where the quiet hours end.
int64_t JourneysPart::NextOpen(int64_t at) const {
  const Delivery& d = delivery_;
  const TimeZone& z = core_.zone();
  const int32_t day = z.DayOf(at);
  if (OpenAt(d, at - z.DayStart(day))) return at;
  int64_t best = kForever;
  for (int k = 0; k <= 2; ++k) {
    const int64_t start = z.DayStart(day + k);
    for (int64_t tod : {d.window ? d.window_from : -1, d.quiet ? d.quiet_to : -1}) {
      if (tod < 0) continue;
      const int64_t c = start + tod;
      if (c > at && c < best && OpenAt(d, tod)) best = c;
    }
    if (best != kForever) return best;
  }
  return best;  // the definition check guarantees an open time every day
}

// A cap of N is reached when N deliveries already fall in the day (or the 7 days): only a
// person's last max(per_day, per_7_days) deliveries can tell, and they are all the log keeps.
bool JourneysPart::OverCap(Ix p, int64_t at) const {
  const Delivery& d = delivery_;
  if (!d.capped() || p >= log_of_.size() || log_of_[p] == kNil) return false;
  const int64_t* b = &log_pool_[size_t{log_of_[p]} * (keep_ + 1)];
  const TimeZone& z = core_.zone();
  const int32_t day = z.DayOf(at);
  const int64_t day_from = z.DayStart(day), day_to = z.DayStart(day + 1);
  uint32_t today = 0, week = 0;
  for (int64_t k = 1; k <= b[0]; ++k) {
    today += b[k] >= day_from && b[k] < day_to;
    week += b[k] > at - kWeek && b[k] <= at;
  }
  return (d.per_day && today >= d.per_day) || (d.per_7_days && week >= d.per_7_days);
}

void JourneysPart::Sent(Ix p, int64_t at) {
  if (keep_ == 0) return;
  if (p >= log_of_.size()) log_of_.resize(size_t{p} + 1, kNil);
  if (log_of_[p] == kNil) {
    if (!log_free_.empty()) {
      log_of_[p] = log_free_.back();
      log_free_.pop_back();
    } else {
      log_of_[p] = static_cast<uint32_t>(log_pool_.size() / (keep_ + 1));
      log_pool_.resize(log_pool_.size() + keep_ + 1);
    }
    log_pool_[size_t{log_of_[p]} * (keep_ + 1)] = 0;
  }
  int64_t* b = &log_pool_[size_t{log_of_[p]} * (keep_ + 1)];
  int64_t* times = b + 1;
  int64_t n = b[0];
  if (n == keep_) {  // full: the oldest goes (it is older than at, or at is older than all)
    if (at <= times[0]) return;
    std::copy(times + 1, times + n, times);
    n--;
  }
  int64_t* pos = std::upper_bound(times, times + n, at);
  std::copy_backward(pos, times + n, times + n + 1);
  *pos = at;
  b[0] = n + 1;
}

std::vector<int64_t> JourneysPart::Log(Ix p) const {
  if (p >= log_of_.size() || log_of_[p] == kNil) return {};
  const int64_t* b = &log_pool_[size_t{log_of_[p]} * (keep_ + 1)];
  return std::vector<int64_t>(b + 1, b + 1 + b[0]);
}

// The freed block is zeroed: its delivery times are the person's, and the pool is saved
// whole, free blocks included.
void JourneysPart::Unlog(Ix p) {
  if (p >= log_of_.size() || log_of_[p] == kNil) return;
  const size_t block = size_t{log_of_[p]} * (keep_ + 1);
  std::fill(log_pool_.begin() + block, log_pool_.begin() + block + keep_ + 1, 0);
  log_free_.push_back(log_of_[p]);
  log_of_[p] = kNil;
}

// The log keeps as many deliveries per person as the larger cap: a new delivery rule
// repacks it, keeping each person's latest.
void JourneysPart::Relog(uint32_t keep) {
  if (keep == keep_) return;
  std::vector<std::pair<Ix, std::vector<int64_t>>> kept;
  for (Ix p = 0; p < log_of_.size(); ++p)
    if (log_of_[p] != kNil) kept.emplace_back(p, Log(p));
  log_of_.clear();
  log_pool_.clear();
  log_free_.clear();
  keep_ = keep;
  for (auto& [p, times] : kept)
    for (int64_t t : times) Sent(p, t);
}

void JourneysPart::FeedIntent(Ix p, int64_t ts, const Def& d, std::string_view key, std::string_view step,
                              std::string_view action, std::string_view status, uint64_t id, int64_t at) {
  std::string text;
  text.reserve(96 + key.size() + d.name.size() + step.size() + action.size());
  text += "{\"id\":";
  text += id ? std::to_string(id) : "null";
  text += ",\"key\":";
  AppendQuoted(text, key);  // made of a name, numbers and a step id
  text += ",\"journey\":";
  AppendQuoted(text, d.name);
  text += ",\"step\":";
  AppendQuoted(text, step);
  text += ",\"action\":";
  AppendQuoted(text, action);
  text += ",\"status\":";
  AppendQuoted(text, status);
  text += ",\"at\":";
  text += std::to_string(at);
  text += '}';
  core_.FeedPerson(p, FeedEvent::Kind::kIntent, ts, std::move(text));
}

// Puts the staged intents through the delivery rules, highest priority first (stable:
// equal priorities keep the order they were decided in).
void JourneysPart::Flush() {
  if (staged_.empty()) return;
  if (staged_.size() > 1)
    std::stable_sort(staged_.begin(), staged_.end(),
                     [](const Staged& x, const Staged& y) { return x.priority > y.priority; });
  for (Staged& s : staged_) {
    Journey* jr = s.journey < journeys_.size() ? journeys_[s.journey].get() : nullptr;
    Intent& in = s.intent;
    if (!jr || core_.OneId(s.person) == 0) continue;
    if (s.held_out) {
      jr->suppressed++;
      FeedIntent(s.person, in.at, *jr->def, in.key, in.step, in.action, "held_out", 0, in.at);
      continue;
    }
    // Checked when the intent is decided and again when a deferred one is released: the
    // person may withdraw in between.
    if (!core_.Consented(s.person, in.channel)) {
      jr->no_consent++;
      core_.no_consent++;
      FeedIntent(s.person, in.at, *jr->def, in.key, in.step, in.action, "no_consent", 0, in.at);
      continue;
    }
    const int64_t open = NextOpen(in.at);
    if (open != in.at) {
      auto ti = jr->tracks.find(s.person);
      if (ti == jr->tracks.end()) continue;
      const uint32_t slot = NewDeferred();
      Deferred& df = deferred_[slot];
      const int64_t decided = in.at;
      in.at = open;
      FeedIntent(s.person, decided, *jr->def, in.key, in.step, in.action, "deferred", 0, open);
      df.intent = std::move(in);
      df.priority = s.priority;
      df.journey = s.journey;
      df.person = s.person;
      df.instance = s.instance;
      df.gen = ++gen_;
      df.next = ti->second.deferred;
      ti->second.deferred = slot;
      jr->deferred++;
      core_.Schedule(open, PartId::kJourneys, s.person, kDeferredBit | slot, df.gen);
      continue;
    }
    if (OverCap(s.person, in.at)) {
      jr->capped++;
      FeedIntent(s.person, in.at, *jr->def, in.key, in.step, in.action, "capped", 0, in.at);
      continue;
    }
    // The intent goes to the person it is for now (a merge may have happened since). The
    // feed text is written first, so the intent's strings move into the outbox uncopied:
    // the outbox numbers intents in sequence from next(), or refuses (and counts) when full.
    in.oneid = core_.OneId(s.person);
    const bool room = core_.outbox.pending() < core_.limits.max_outbox;
    const uint64_t id = room ? core_.outbox.next() : 0;
    FeedIntent(s.person, in.at, *jr->def, in.key, in.step, in.action, room ? "queued" : "dropped", id, in.at);
    if (room) {
      Sent(s.person, in.at);
      jr->queued++;
      core_.intents++;
    } else {
      jr->dropped++;
    }
    core_.outbox.Add(std::move(in));
  }
  staged_.clear();
}

uint32_t JourneysPart::NewDeferred() {
  if (free_ != kNil) {
    uint32_t s = free_;
    free_ = deferred_[s].next;
    return s;
  }
  deferred_.emplace_back();
  return static_cast<uint32_t>(deferred_.size() - 1);
}

void JourneysPart::FreeDeferred(uint32_t slot) {
  Deferred& df = deferred_[slot];
  df.intent = Intent();
  df.gen = 0;
  df.next = free_;
  free_ = slot;
}

void JourneysPart::Release(const Timer& tm) {
  const uint32_t slot = tm.item & ~kDeferredBit;
  if (slot >= deferred_.size() || deferred_[slot].gen != tm.gen || deferred_[slot].gen == 0) return;
  Deferred& df = deferred_[slot];
  if (df.journey < journeys_.size() && journeys_[df.journey]) {
    Journey& jr = *journeys_[df.journey];
    auto ti = jr.tracks.find(df.person);
    if (ti != jr.tracks.end()) {
      for (uint32_t* link = &ti->second.deferred; *link != kNil; link = &deferred_[*link].next) {
        if (*link == slot) {
          *link = df.next;
          break;
        }
      }
    }
    Staged st;
    st.priority = df.priority;
    st.journey = df.journey;
    st.person = df.person;
    st.instance = df.instance;
    st.intent = std::move(df.intent);
    st.intent.at = tm.at;
    staged_.push_back(std::move(st));
  }
  FreeDeferred(slot);
}

void JourneysPart::Withdraw(Journey& jr, Track& t, int64_t now) {
  for (uint32_t* link = &t.deferred; *link != kNil;) {
    const uint32_t s = *link;
    Deferred& df = deferred_[s];
    if (df.instance != t.instance) {
      link = &df.next;
      continue;
    }
    *link = df.next;
    jr.withdrawn++;
    FeedIntent(df.person, now, *jr.def, df.intent.key, df.intent.step, df.intent.action, "cancelled", 0, df.intent.at);
    FreeDeferred(s);
  }
}

// --- reading -------------------------------------------------------------------------

void JourneysPart::AppendPerson(json::Writer& w, Ix p) const {
  w.Key("journeys").BeginArray();
  for (const auto& jp : journeys_) {
    if (!jp) continue;
    auto it = jp->tracks.find(p);
    if (it == jp->tracks.end()) continue;
    const Track& t = it->second;
    const Def& d = *jp->def;
    w.BeginObject();
    w.Key("journey").String(d.name);
    w.Key("active").Bool(t.active());
    w.Key("step");
    if (t.active()) w.String(d.steps[t.step].id); else w.Null();
    w.Key("entered").Int(t.entered);
    w.Key("entry").Uint(t.entry);
    w.Key("entries").Uint(t.entries);
    w.Key("holdout").Bool(t.holdout);
    w.Key("waiting_until");
    if (t.active() && t.until != kForever) w.Int(t.until); else w.Null();
    if (t.active() && d.steps[t.step].kind == StepKind::kWaitFor) {
      w.Key("waiting_for").BeginArray();
      for (uint32_t type : d.steps[t.step].types) w.String(core_.store.EventTypeName(type));
      w.EndArray();
    }
    w.Key("goals").Uint(t.goals);
    w.Key("last_end");
    if (t.ended == End::kNone) w.Null(); else w.String(EndName(t.ended));
    uint32_t deferred = 0;
    for (uint32_t s = t.deferred; s != kNil; s = deferred_[s].next) deferred++;
    w.Key("deferred").Uint(deferred);
    w.EndObject();
  }
  w.EndArray();
}

void JourneysPart::AppendCatalog(json::Writer& w) const {
  std::vector<const Journey*> list;
  for (const auto& jp : journeys_)
    if (jp) list.push_back(jp.get());
  std::sort(list.begin(), list.end(), [](const Journey* x, const Journey* y) { return x->def->name < y->def->name; });
  w.Key("journeys").BeginArray();
  for (const Journey* jr : list) {
    const Def& d = *jr->def;
    w.BeginObject();
    w.Key("name").String(d.name);
    w.Key("priority").Int(d.priority);
    w.Key("holdout").BeginObject().Key("basis_points").Uint(d.holdout_bp).EndObject();
    w.Key("steps").BeginArray();
    for (const Step& s : d.steps) w.BeginObject().Key("id").String(s.id).Key("kind").String(KindName(s.kind)).EndObject();
    w.EndArray();
    w.Key("active").Uint(jr->active);
    w.Key("persons").Uint(jr->tracks.size());
    w.Key("entered").Uint(jr->entered);
    w.Key("held_out").Uint(jr->held_out);
    w.Key("completed").Uint(jr->completed);
    w.Key("exited").Uint(jr->exited);
    w.Key("goals").Uint(jr->goals);
    w.Key("held_out_goals").Uint(jr->held_out_goals);
    w.Key("cancelled").Uint(jr->cancelled);
    w.Key("intents").BeginObject();
    w.Key("queued").Uint(jr->queued);
    w.Key("deferred").Uint(jr->deferred);
    w.Key("capped").Uint(jr->capped);
    w.Key("held_out").Uint(jr->suppressed);
    w.Key("cancelled").Uint(jr->withdrawn);
    w.Key("dropped").Uint(jr->dropped);
    w.Key("no_consent").Uint(jr->no_consent);
    w.EndObject();
    w.Key("definition").Raw(d.source);
    w.EndObject();
  }
  w.EndArray();
  w.Key("delivery");
  if (delivery_.given) w.Raw(delivery_.source); else w.Null();
}

bool JourneysPart::StateOf(uint32_t machine, Ix p, Value& out) const {
  auto it = by_machine_.find(machine);
  if (it == by_machine_.end()) return false;
  const Journey& jr = *journeys_[it->second];
  auto ti = jr.tracks.find(p);
  out = ti != jr.tracks.end() && ti->second.active() ? Value::String(jr.def->steps[ti->second.step].id) : Value();
  return true;
}

uint64_t JourneysPart::bytes() const {
  uint64_t b = journeys_.capacity() * sizeof(void*) + deferred_.capacity() * sizeof(Deferred) +
               staged_.capacity() * sizeof(Staged);
  for (const auto& jp : journeys_)
    if (jp) b += sizeof(Journey) + jp->tracks.capacity() * (sizeof(std::pair<Ix, Track>) + 1) + jp->def->source.size() * 4;
  for (const Deferred& df : deferred_) b += df.intent.payload.capacity() + df.intent.key.capacity();
  b += log_of_.capacity() * sizeof(uint32_t) + log_pool_.capacity() * sizeof(int64_t) +
       log_free_.capacity() * sizeof(uint32_t);
  for (const auto& v : by_type_) b += sizeof(v) + v.capacity() * sizeof(v[0]);
  return b;
}

// --- snapshots -----------------------------------------------------------------------
//
// The definitions are the core's to re-install; what is saved is which slot each journey
// had (timers name journeys by slot, and a freed slot is reused), each journey's totals
// and tracks, the deferred intents in their slots with the free list, the send log, and
// the generation and instance counters. Tracks go in Ix order, so equal states give equal
// bytes. The staging area is empty between calls: every entry point flushes it, and
// Advance fires a person's timers of one instant one after the other, the last flushing.

// Fixed-size records, padding explicit and zeroed.
struct TrackRec {
  int64_t entered, until;
  uint64_t entry_oneid;
  Ix person;
  uint32_t instance, entry, entries, goals, gen, deferred;
  uint16_t step, laps;
  uint8_t holdout, ended;
  uint8_t pad[6];
};
static_assert(sizeof(TrackRec) == 64);

struct DeferredRec {
  int64_t at, created;
  uint64_t id, oneid;
  int32_t priority;
  uint32_t journey;
  Ix person;
  uint32_t instance, gen, next;
  uint8_t acked;
  uint8_t pad[7];
};
static_assert(sizeof(DeferredRec) == 64);

// A journey's totals, in the order they are saved.
constexpr uint64_t Journey::*kTotals[] = {
    &Journey::active, &Journey::entered, &Journey::held_out, &Journey::completed, &Journey::exited,
    &Journey::goals, &Journey::held_out_goals, &Journey::cancelled, &Journey::queued, &Journey::deferred,
    &Journey::capped, &Journey::suppressed, &Journey::dropped, &Journey::withdrawn, &Journey::no_consent};

void JourneysPart::Save(snap::Writer& w) const {
  assert(staged_.empty());  // see above
  w.Part("lifecycle.journeys");
  w.U64(journeys_.size());
  for (const auto& jp : journeys_) {
    w.Str(jp ? std::string_view(jp->def->name) : std::string_view());
    w.Str(jp ? std::string_view(jp->def->source) : std::string_view());
  }
  w.Str(delivery_.given ? std::string_view(delivery_.source) : std::string_view());
  w.U64(deferred_.size());
  for (const Deferred& df : deferred_) {
    const Intent& in = df.intent;
    DeferredRec x{in.at, in.created, in.id, in.oneid, df.priority, df.journey, df.person, df.instance, df.gen,
                  df.next, static_cast<uint8_t>(in.acked), {}};
    w.Pod(x);
    for (const std::string* f : {&in.key, &in.origin, &in.step, &in.action, &in.channel, &in.payload}) w.Str(*f);
  }
  w.U32(free_);
  std::vector<TrackRec> recs;
  for (const auto& jp : journeys_) {
    if (!jp) continue;
    for (auto total : kTotals) w.U64((*jp).*total);
    // In one pass over the table, then sorted: looking each person up in Ix order would
    // miss the cache once per track.
    recs.clear();
    recs.reserve(jp->tracks.size());
    for (const auto& [p, t] : jp->tracks)
      recs.push_back(TrackRec{t.entered, t.until, t.entry_oneid, p, t.instance, t.entry, t.entries, t.goals, t.gen,
                              t.deferred, t.step, t.laps, static_cast<uint8_t>(t.holdout),
                              static_cast<uint8_t>(t.ended), {}});
    std::sort(recs.begin(), recs.end(), [](const TrackRec& a, const TrackRec& b) { return a.person < b.person; });
    w.Vec(recs);
  }
  w.U32(keep_);
  w.Vec(log_of_);
  w.Vec(log_pool_);
  w.Vec(log_free_);
  w.U32(gen_);
  w.U32(instances_);
}

absl::Status JourneysPart::Load(snap::Reader& r) {
  if (!r.Part("lifecycle.journeys")) return r.status();
  const Ix persons = core_.persons();
  // The installed journeys move to the slots they had.
  std::vector<std::unique_ptr<Journey>> placed(r.Count(2 * sizeof(uint64_t)));
  for (size_t j = 0; j < placed.size() && r.ok(); ++j) {
    const std::string_view name = r.Str(), source = r.Str();
    if (name.empty()) continue;
    auto it = by_name_.find(std::string(name));
    if (it == by_name_.end() || !journeys_[it->second] || journeys_[it->second]->def->source != source) {
      r.Fail(Cat("the journey \"", name, "\" of the snapshot is not installed as it was"));
      break;
    }
    placed[j] = std::move(journeys_[it->second]);
  }
  for (const auto& jp : journeys_)
    if (jp && r.ok()) r.Fail(Cat("the installed journey \"", jp->def->name, "\" is not in the snapshot"));
  if (!r.ok()) return r.status();
  journeys_ = std::move(placed);
  by_name_.clear();
  for (uint32_t j = 0; j < journeys_.size(); ++j)
    if (journeys_[j]) by_name_.emplace(journeys_[j]->def->name, j);
  Reindex();
  if (std::string_view d = r.Str(); r.ok() && d != (delivery_.given ? std::string_view(delivery_.source) : ""))
    r.Fail("the delivery rules of the snapshot are not the ones installed");
  const auto slot_ok = [&](uint32_t s) { return s == kNil || s < deferred_.size(); };

  deferred_.clear();
  deferred_.resize(r.Count(sizeof(DeferredRec) + 6 * sizeof(uint64_t)));
  for (Deferred& df : deferred_) {
    const auto x = r.Pod<DeferredRec>();
    Intent& in = df.intent;
    in.at = x.at;
    in.created = x.created;
    in.id = x.id;
    in.oneid = x.oneid;
    in.acked = x.acked != 0;
    for (std::string* f : {&in.key, &in.origin, &in.step, &in.action, &in.channel, &in.payload}) f->assign(r.Str());
    df.priority = x.priority;
    df.journey = x.journey;
    df.person = x.person;
    df.instance = x.instance;
    df.gen = x.gen;
    df.next = x.next;
    if (r.ok() && ((x.gen != 0 && x.person >= persons) || !slot_ok(x.next) || x.acked > 1)) {
      r.Fail(Cat("deferred intent ", &df - deferred_.data(), " is out of range"));
      break;
    }
  }
  free_ = r.U32();
  if (r.ok() && !slot_ok(free_)) r.Fail("the free list starts out of range");

  // Every deferred slot is on one list at most (a track's or the free list): a list that
  // met itself would never end.
  std::vector<uint8_t> seen(r.ok() ? deferred_.size() : 0);
  auto walk = [&](uint32_t s) {
    for (; s != kNil && r.ok(); s = deferred_[s].next) {
      if (seen[s]) r.Fail(Cat("deferred intent ", s, " is on two lists"));
      seen[s] = 1;
    }
  };
  walk(free_);

  std::vector<TrackRec> recs;
  for (auto& jp : journeys_) {
    if (!jp || !r.ok()) continue;
    Journey& jr = *jp;
    for (auto total : kTotals) jr.*total = r.U64();
    if (!r.Vec(recs)) break;
    jr.tracks.clear();
    jr.tracks.reserve(recs.size());
    // Inserting misses the cache once per track: the slots of the tracks a few places on
    // are fetched meanwhile.
    constexpr size_t kAhead = 16;
    for (size_t i = 0; i < recs.size() && r.ok(); ++i) {
      if (i + kAhead < recs.size()) jr.tracks.prefetch(recs[i + kAhead].person);
      const TrackRec& x = recs[i];
      if (x.person >= persons || (i > 0 && x.person <= recs[i - 1].person) ||
          (x.step != kIdle && x.step >= jr.def->steps.size()) || !slot_ok(x.deferred) || x.holdout > 1 ||
          x.ended > static_cast<uint8_t>(End::kCancelled)) {
        r.Fail(Cat("journey \"", jr.def->name, "\", track ", i, " is out of range"));
        break;
      }
      Track& t = jr.tracks[x.person];
      t.entered = x.entered;
      t.until = x.until;
      t.entry_oneid = x.entry_oneid;
      t.instance = x.instance;
      t.entry = x.entry;
      t.entries = x.entries;
      t.goals = x.goals;
      t.gen = x.gen;
      t.deferred = x.deferred;
      t.step = x.step;
      t.laps = x.laps;
      t.holdout = x.holdout != 0;
      t.ended = static_cast<End>(x.ended);
      walk(t.deferred);
    }
  }

  keep_ = r.U32();
  r.Vec(log_of_);
  r.Vec(log_pool_);
  r.Vec(log_free_);
  if (r.ok()) {
    const size_t block = size_t{keep_} + 1, blocks = log_pool_.size() / block;
    bool ok = keep_ == std::max(delivery_.per_day, delivery_.per_7_days) && log_pool_.size() % block == 0 &&
              log_of_.size() <= persons;
    for (uint32_t b : log_of_) ok = ok && (b == kNil || (b < blocks && log_pool_[b * block] >= 0 &&
                                                         log_pool_[b * block] <= keep_));
    for (uint32_t b : log_free_) ok = ok && b < blocks;
    if (!ok) r.Fail("the send log is out of range");
  }
  gen_ = r.U32();
  instances_ = r.U32();
  staged_.clear();
  return r.status();
}

}  // namespace

std::unique_ptr<Part> MakeJourneys(Core& core) { return std::make_unique<JourneysPart>(core); }

}  // namespace cdp::life
