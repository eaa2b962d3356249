// Internal to the lifecycle (src/lifecycle.cpp, machines.cpp, loyalty.cpp, journeys.cpp):
// the core the three parts share — the person index, the timer heap, the outbox, person
// histories, guard evaluation and payload templates — and the interface each part
// implements.
//
// Persons are indexed by a dense Ix handed out on first sight of a OneID and never reused
// (a merged-away person's Ix stays empty), so parts keep their per-person state in plain
// vectors indexed by Ix. Ix 0 is nobody (OneID 0): its state is always empty, and reading
// an unknown person reads it. Parts' const methods must accept any Ix below persons() even
// when their vectors have not grown to it yet. Timers are (at, part, person, item, gen) in one min-heap; a part
// bumps its own generation counter to cancel a timer lazily. Firing order is by time, then
// part, person and item, so Advance is deterministic.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "cdp/lifecycle.hpp"
#include "json_util.hpp"
#include "simdjson.h"
#include "snapshot.hpp"

namespace cdp::life {

using Ix = uint32_t;
inline constexpr Ix kNoIx = 0xFFFFFFFFu;

// The shortest a definition may make a timer that can come round again (a machine's
// "after", a journey's "wait" and "timeout", a periodic downgrade). An Advance's work
// grows with the rounds it covers: two states 1 ms apart make 3.5e10 transitions in 400
// days, and 0 ms never ends. Hosts advance every few minutes at best, so nothing shorter
// than a minute can be meant.
inline constexpr int64_t kMinTimer = 60'000;
// Deadlines of one person fired in one Advance, or caught up before one event, at most.
// A one-minute cycle still fires 525,600 times a year, each time with its feed event:
// past this many, the person's other due deadlines wait, in order, for the next Advance
// (an event goes on with the person where they stand).
inline constexpr uint32_t kMaxFirings = 1000;

enum class PartId : uint8_t { kMachines = 0, kLoyalty = 1, kJourneys = 2 };

// Timer and Transition have no padding (part and reason take four bytes), so snapshots,
// which copy them byte for byte, are the same from run to run.
struct Timer {
  int64_t at;
  uint32_t part;  // PartId
  Ix person;
  uint32_t item;  // the part's meaning (a machine, a journey instance, a lot ...)
  uint32_t gen;   // the part's generation when scheduled; stale when it moved on
  bool operator>(const Timer& o) const {
    if (at != o.at) return at > o.at;
    if (part != o.part) return part > o.part;
    if (person != o.person) return person > o.person;
    if (item != o.item) return item > o.item;
    return gen > o.gen;
  }
};

// One entry of a person's history: a machine transition, a tier change, a journey step.
struct Transition {
  int64_t ts;
  uint32_t machine;  // ProfileStore::Machine id of the machine, tier set or journey
  uint16_t from, to; // state indexes (0xFFFF: none)
  uint32_t reason;   // Reason
  uint32_t cause;    // event type for kEvent, transition index for timers, else 0
};
static_assert(sizeof(Timer) == 24 && sizeof(Transition) == 24);
enum class Reason : uint8_t { kEvent, kTimer, kCondition, kPeriod, kManual, kImport, kMerge, kInitial, kDefinition };
std::string_view ReasonName(Reason r);

// A host-facing action intent.
struct Intent {
  uint64_t id = 0;          // outbox sequence (cursor)
  uint64_t oneid = 0;
  int64_t at = 0;           // when it became deliverable (a deferred intent: the deferred time)
  int64_t created = 0;      // when it was decided
  std::string key;          // idempotency key: the same decision always has the same key
  std::string origin;       // "journey:fan" or "machine:aipl"
  std::string step;         // the journey step id or "from->to"
  std::string action;
  std::string channel;
  std::string payload;      // rendered JSON
  bool acked = false;
};

class Outbox {
 public:
  explicit Outbox(uint32_t max) : max_(max) {}
  // Adds an intent; returns its id, or 0 (and counts a drop) when the outbox is full.
  uint64_t Add(Intent in);
  // Unacknowledged intents with id >= cursor, at most limit; returns the next cursor.
  uint64_t Read(uint64_t cursor, uint32_t limit, std::vector<const Intent*>& out) const;
  bool Ack(uint64_t id);
  uint64_t AckThrough(uint64_t id);
  // Drops a person's unacknowledged intents (cancellation by origin when origin is not
  // empty); oneid 0: every person's (a dropped journey). Returns how many.
  uint64_t Drop(uint64_t oneid, std::string_view origin = {});
  // Erasure: every intent of these OneIDs, acknowledged or not, becomes an empty
  // acknowledged entry (OneID 0, no times, its strings overwritten). The entries keep
  // their ids, since an intent's id is its place (first_ + index); Compact frees them
  // once they reach the front. Returns how many intents were the persons'.
  uint64_t Forget(std::span<const uint64_t> oneids);
  uint64_t pending() const { return pending_; }
  uint64_t dropped() const { return dropped_; }
  uint64_t next() const { return next_; }
  uint64_t bytes() const;
  void Save(snap::Writer& w) const;
  void Load(snap::Reader& r);  // into an empty outbox; failures are left in r

 private:
  void Compact();
  // Acknowledges in: it is never read again, so its payload goes at once.
  void Retire(Intent& in);
  std::deque<Intent> items_;  // ids first_ .. next_-1
  uint64_t first_ = 1, next_ = 1;
  uint64_t pending_ = 0, dropped_ = 0;
  uint32_t max_;
};

// A JSON payload whose strings may hold {{expression}} placeholders. A string that is one
// placeholder becomes the expression's typed value (JSON); placeholders inside text are
// interpolated as text. Rendering concatenates the segments.
struct Template {
  struct Seg {
    std::string lit;   // literal JSON text (before the placeholder, if any)
    int expr = -1;     // index into exprs, or -1
    bool whole = false;  // the placeholder is a whole JSON value (else inside a string)
  };
  std::vector<Seg> segs;
  std::vector<Expr> exprs;
  bool empty() const { return segs.empty(); }
};

class Core;

// The interface of a part (machines, loyalty, journeys).
class Part {
 public:
  explicit Part(Core& core) : core_(core) {}
  virtual ~Part() = default;
  // The key of its section in a definition document ("machines", "loyalty", "journeys").
  virtual std::string_view section() const = 0;
  // Checks its keys of a definition document (root is the whole object; the journeys part
  // reads "journeys" and "delivery"); on success returns an installer that cannot fail and
  // writes the part's members of the report. Errors name the path. Nothing may change
  // before the installer runs (names may be interned).
  using Installer = std::function<void(json::Writer& report)>;
  virtual absl::StatusOr<Installer> Prepare(simdjson::dom::element root, int64_t now) = 0;
  // kind is the part's own ("machine", "journey", "loyalty"); false if not its kind.
  virtual bool Owns(std::string_view kind) const = 0;
  virtual absl::Status Drop(std::string_view name) = 0;
  // A manual operation; NotFound-free: false when op is not this part's.
  virtual bool Handles(std::string_view op) const = 0;
  virtual absl::Status Apply(std::string_view op, simdjson::dom::object req, Ix p, int64_t now,
                             json::Writer& out) = 0;
  virtual void OnEvent(Ix p, const LifeEvent& e) = 0;
  // Every record filed on a person, events or not (type kAnyEventType: attributes only),
  // before OnEvent. Machines read imported states and attribute conditions here.
  virtual void OnRecord(Ix /*p*/, const LifeEvent& /*e*/) {}
  // A machine moved (journeys enter on states). machine is a ProfileStore::Machine id.
  virtual void OnTransition(Ix /*p*/, uint32_t /*machine*/, uint16_t /*from*/, uint16_t /*to*/, int64_t /*ts*/) {}
  virtual void Fire(const Timer& t) = 0;
  // Advance(now) calls it after the due timers fired: conditions over every person (journey
  // audiences) are evaluated here. Timers it schedules at or before now fire in that Advance.
  virtual void Advanced(int64_t /*now*/) {}
  // absorbed's state joins survivor's; absorbed is then cleared by the core.
  virtual void Merge(Ix survivor, Ix absorbed, int64_t now) = 0;
  virtual void Clear(Ix p) = 0;
  // Erasure: p's state goes as by Clear, and text held for p alone (order references,
  // operators' reasons, rendered payloads) is overwritten first. No feed event, no timer.
  virtual void Forget(Ix p) { Clear(p); }
  // Writes "key": value members into an open object for the person.
  virtual void AppendPerson(json::Writer& w, Ix p) const = 0;
  virtual void AppendCatalog(json::Writer& w) const = 0;
  // The value of state.<name> when name is this part's (machine id from ProfileStore).
  virtual bool StateOf(uint32_t machine, Ix p, Value& out) const = 0;
  // The name of state s of machine (for history), or empty when not this part's.
  virtual std::string_view StateName(uint32_t /*machine*/, uint16_t /*s*/) const { return {}; }
  // A machine's states in order and its initial state, when it is this part's.
  virtual bool Describe(uint32_t /*machine*/, std::vector<std::string>& /*states*/, uint16_t& /*initial*/) const {
    return false;
  }
  virtual bool empty() const = 0;
  virtual uint64_t bytes() const = 0;
  // Snapshots: the part's state other than its definitions. The core re-installs the
  // definitions (same order, same indexes) before calling Load, without entering anyone.
  virtual void Save(snap::Writer& w) const = 0;
  virtual absl::Status Load(snap::Reader& r) = 0;

 protected:
  Core& core_;
};

class Core {
 public:
  Core(ProfileStore& store, TagEngine& tags, Feed& feed, const ExprLimits& lim, const LifecycleLimits& limits);
  ~Core();

  ProfileStore& store;
  TagEngine& tags;
  Feed& feed;
  const ExprLimits lim;
  const LifecycleLimits limits;
  const TimeZone& zone() const { return store.Zone(); }

  // Persons.
  Ix Person(uint64_t oneid);            // found or added
  Ix Find(uint64_t oneid) const;        // or kNoIx
  uint64_t OneId(Ix p) const { return oneids_[p]; }  // 0: merged away or forgotten
  void Forget(Ix p);
  void MergeHistory(Ix survivor, Ix absorbed);
  Ix persons() const { return static_cast<Ix>(oneids_.size()); }

  // Timers.
  void Schedule(int64_t at, PartId part, Ix p, uint32_t item, uint32_t gen);
  int64_t NextDue() const;

  // History and feed. Record keeps the transition in the person's history, appends the
  // feed event (kind with text) and marks the person's states changed.
  void Record(Ix p, const Transition& t, FeedEvent::Kind kind, std::string text);
  // A feed event about a person with a JSON object text.
  void FeedPerson(Ix p, FeedEvent::Kind kind, int64_t ts, std::string text);
  const std::vector<Transition>& History(Ix p) const;
  // Tells every part a machine moved.
  void Transitioned(Ix p, uint32_t machine, uint16_t from, uint16_t to, int64_t ts);

  // Expressions: guards and payload values, evaluated on the person at now.
  absl::StatusOr<Expr> Compile(simdjson::dom::element v, std::string_view path);
  // False (never an error) when the guard is not true, the person has no profile, or
  // evaluation runs out of steps (counted in guard_errors).
  bool Test(const Expr& e, Ix p, int64_t now);
  Value Eval(const Expr& e, Ix p, int64_t now);
  // Consent (PIPL): whether an intent on this channel may go to the person now, by the
  // profile as it stands (ProfileStore::Consented). An intent without a channel is not
  // checked: the host picks the channel, and checks it. Machines and journeys ask it just
  // before an intent would enter the outbox, and count a refusal in no_consent.
  bool Consented(Ix p, std::string_view channel) const;
  absl::StatusOr<Template> CompileTemplate(simdjson::dom::element v, std::string_view path);
  std::string Render(const Template& t, Ix p, int64_t now);

  // Durations: "30d", "12h", "1d12h", "500ms", or a number of ms.
  static absl::Status Duration(simdjson::dom::element v, std::string_view path, int64_t& ms);
  // "HH:MM" or "HH:MM:SS" as ms after local midnight.
  static absl::Status TimeOfDay(simdjson::dom::element v, std::string_view path, int64_t& ms);
  // The first instant > after that is local time-of-day tod (ms after midnight).
  int64_t NextLocalTime(int64_t after, int64_t tod) const;
  // Deterministic bucket of a person for splits and holdouts: [0, 10000).
  static uint32_t Bucket(uint64_t oneid, std::string_view salt);

  Outbox outbox;
  std::vector<std::unique_ptr<Part>> parts;  // indexed by PartId
  Part& part(PartId id) { return *parts[static_cast<size_t>(id)]; }

  // Set while Lifecycle::Load re-installs the definitions into a core with no persons:
  // installers then install and do nothing else (no one enters, nothing is scheduled, fed
  // or emitted), since the snapshot holds the state those side effects produced.
  bool loading = false;

  // Persons whose machine states changed (for tags reading state.*).
  std::vector<uint64_t> state_changed;
  uint64_t guard_errors = 0;
  uint64_t no_consent = 0;  // intents not emitted: the person has not consented to the channel
  uint64_t transitions = 0, intents = 0;  // counted during Advance by the parts

  // The heap, for Advance (lifecycle.cpp).
  std::vector<Timer> heap;
  // During an Advance, the timers fired so far per person (kMaxFirings at most).
  absl::flat_hash_map<Ix, uint32_t> fired;
  // The person reached kMaxFirings in this Advance: their other due timers wait for the
  // next one (a part batching one person's same-instant timers must not wait for them).
  bool Capped(Ix p) const {
    auto it = fired.find(p);
    return it != fired.end() && it->second >= kMaxFirings;
  }

  // Every definition document installed and every drop, in order: a snapshot replays
  // them (with loading set) to rebuild the same definitions in the same slots, since
  // parts place a new definition by what was dropped before it, not by name alone.
  struct DefinitionOp {
    int64_t now = 0;
    std::string json;        // a Define document; empty: a drop
    std::string kind, name;  // a Drop
  };
  std::vector<DefinitionOp> definitions;

  // Snapshots: the core's persons, histories, timers, outbox and counters, then the
  // parts' states (lifecycle.cpp). Load expects the definitions already replayed.
  void Save(snap::Writer& w) const;
  absl::Status Load(snap::Reader& r);

 private:
  absl::flat_hash_map<uint64_t, Ix> index_;
  std::vector<uint64_t> oneids_;
  std::vector<std::vector<Transition>> history_;
  Evaluator ev_;
};

// Parts, made by the core (machines.cpp, loyalty.cpp, journeys.cpp).
std::unique_ptr<Part> MakeMachines(Core& core);
std::unique_ptr<Part> MakeLoyalty(Core& core);
std::unique_ptr<Part> MakeJourneys(Core& core);

absl::Status Bad(std::string_view path, std::string_view what);

// Takes the selected timers out of a heap (Core::heap's order), in one pass: O(n + k log n)
// for k of n, where rebuilding the heap would cost a few comparisons per timer all over
// memory (150 ms at 3M timers, against 10 for the pass).
void EraseTimers(std::vector<Timer>& heap, absl::FunctionRef<bool(const Timer&)> selected);

// Erasure of an intent (WipeString, src/util.hpp): its strings, and every field but id
// and acked.
void Wipe(Intent& in);

}  // namespace cdp::life
