// cdp/lifecycle.hpp — the operating half: lifecycle machines, points and tiers, journeys.
//
// Everything here is data. A definition document (docs/lifecycle.md) holds any of:
//   "machines": state machines (AIPL, FAST+ layers, new → active → dormant → churned):
//               states, an initial state, transitions on events, on timers (after a
//               duration in the state, at a local time, at a period's end) or on conditions,
//               guards in the expression language, actions that emit intents, optional
//               monotonic ladders no path moves backwards;
//   "loyalty":  a points ledger of expiring lots earned by rules, growth value, and member
//               tiers with upgrade, downgrade modes and manual floors, ceilings and pins;
//   "journeys": step programs that emit action intents (waits, waits for an event with a
//               timeout, conditions, random splits), with entry and exit rules, and
//               "delivery": send windows, quiet hours and frequency caps in local time.
//
// The lifecycle never sends anything and never reads a clock. Events reach it in time
// order after the profiles and tags took them (Engine's ingest path); Advance(now) fires
// every stored absolute deadline that is due, in time order, evaluating guards at the
// deadline (at most 1000 of one person's per call: the rest wait for the next), and
// returns the next wake-up. What it decides goes to the change feed
// (transitions with their reason, points, tiers, journey steps) and, for what a host must
// act on, to the outbox: intents with an idempotency key, read from a cursor and
// acknowledged; an unacknowledged intent is read again.
//
// State is kept per OneID, so merges are explicit: counters add, tiers take the higher,
// monotonic stages the furthest, and of two instances of one journey the earlier one stays
// (the other is cancelled, with the reason in the feed). A person split off starts afresh.
// Forget erases a person (the engine's forget): their state, timers and intents go, and
// their text with them, from memory and from what Save writes.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "cdp/expr.hpp"
#include "cdp/feed.hpp"
#include "cdp/profile.hpp"
#include "cdp/record.hpp"
#include "cdp/subject.hpp"
#include "cdp/tags.hpp"

namespace cdp {

namespace life { class Core; }
namespace snap { class Writer; class Reader; }

// One event as the lifecycle sees it. batch and record, when set, give its properties.
struct LifeEvent {
  uint64_t oneid = 0;
  uint32_t type = 0;          // ProfileStore::EventType id; kAnyEventType: a record without an event
  int64_t ts = 0;             // epoch ms
  int64_t amount = 0;         // fen
  bool has_amount = false;
  const Batch* batch = nullptr;
  const Record* record = nullptr;
  // A property of the event as text (strings as they are, integers and money in decimal),
  // or empty when absent.
  std::string_view Prop(std::string_view key, std::string& scratch) const;
};

struct LifecycleLimits {
  uint32_t max_definitions = 1000;   // machines + journeys
  uint32_t max_history = 64;         // transitions kept per person (the most recent)
  uint32_t max_outbox = 1'000'000;   // unacknowledged intents; past it, intents are dropped and counted
};

class Lifecycle : public StateReader {
 public:
  Lifecycle(ProfileStore& store, TagEngine& tags, Feed& feed, const ExprLimits& lim, const LifecycleLimits& limits);
  ~Lifecycle() override;

  // Installs a definition document {"machines":[...], "loyalty":{...}, "journeys":[...],
  // "delivery":{...}} (any subset). Everything is checked before anything is installed;
  // errors name the path ("machines[0].transitions[2].when: line 1, column 4: ...").
  // A redefined machine keeps each person's state when the state still exists.
  // Returns {"machines":[names],"journeys":[names],"loyalty":bool,"delivery":bool}.
  absl::StatusOr<std::string> Define(std::string_view json, int64_t now);
  // kind: "machine", "journey" or "loyalty". Pending timers and intents of it go.
  absl::Status Drop(std::string_view kind, std::string_view name);
  // Manual operations, one JSON object with "op" (docs/lifecycle.md): set_state, earn,
  // spend, adjust, refund, tier (floor, ceiling, pin with an expiry), enter (a journey),
  // exit. The person is "oneid", or an identifier "type" and "value"; person resolves it
  // (oneid 0 when the identifier was given) to a live OneID. Returns the operation's report.
  using Resolver = absl::FunctionRef<absl::StatusOr<uint64_t>(uint64_t oneid, std::string_view type,
                                                                std::string_view value)>;
  absl::StatusOr<std::string> Apply(std::string_view json, int64_t now, Resolver person);

  // Inputs from the engine's write path: every filed record in time order (a record
  // without an event carries attributes, which machines may import states from).
  void OnEvent(const LifeEvent& e);
  void OnMerge(uint64_t survivor, uint64_t absorbed, int64_t now);
  void OnSplit(uint64_t kept, uint64_t left, int64_t now);
  // Erasure (the engine's forget): everything the lifecycle holds for the live person
  // oneid goes — machine states and history, the loyalty account (lots with their order
  // references, growth, caps, tier and override), journey tracks with their deferred
  // intents, the frequency-cap send log, pending timers, and every outbox intent of the
  // person, acknowledged or not. Intents decided before a merge carry the absorbed
  // person's OneID: pass every OneID that redirects to oneid as merged (the lifecycle
  // keeps no redirects). Text held for the person alone (order references, payloads,
  // idempotency keys, operators' reasons no remaining lot names) is overwritten in
  // memory, and Save writes none of it.
  //
  // What stays, holding nothing of the person: the person's index slot (empty, never
  // reused, as a merged-away person's), the outbox ids of its intents (empty acknowledged
  // entries until they reach the front, since ids are positions), and the counters that
  // count decisions rather than persons (journey and outbox totals, backward moves
  // refused, the lot and generation sequences): hosts reconcile against them, and they
  // say how many, never who. Counts of persons (per state, members, a journey's persons
  // and active instances) go down. The feed's events are the feed's to forget.
  //
  // Emits no feed event, and what anyone else reads is unchanged (timers of persons merged
  // away, which could never fire, go too); deterministic, so the log replays it. Returns
  // false, changing nothing, when the lifecycle holds nothing for the person.
  bool Forget(uint64_t oneid, std::span<const uint64_t> merged = {});
  struct AdvanceStats {
    uint64_t fired = 0;        // timers that came due
    uint64_t transitions = 0;  // state changes (machines and tiers)
    uint64_t intents = 0;      // intents put in the outbox
    // Persons who reached the cap of deadlines fired per call (1000): their other due
    // deadlines wait, in order, for the next call, so next is then at or before now.
    uint64_t capped = 0;
    int64_t next = kForever;   // the earliest pending deadline afterwards
  };
  AdvanceStats Advance(int64_t now);
  // Persons whose machine states changed since the last call (for tags that read state.*),
  // in no order and possibly repeated.
  void TakeStateChanges(std::vector<uint64_t>& oneids);

  // Reading.
  std::string CatalogJson() const;
  // Appends "states", "history", "loyalty" and "journeys" members to an open JSON object.
  void AppendPerson(std::string& out, uint64_t oneid) const;
  // Intents from cursor on that are not acknowledged: {"intents":[...],"next":cursor}.
  std::string OutboxJson(uint64_t cursor, uint32_t limit) const;
  // Acknowledges intents by id ({"ids":[...]} or {"through":id}); returns {"acked":N}.
  absl::StatusOr<std::string> Ack(std::string_view json);
  // StateReader: a machine's (or the tier's, or a journey's step) current value, or null.
  Value State(uint32_t machine, uint64_t oneid) const override;
  // A machine's states in order and its initial state; false if no such machine.
  bool Describe(std::string_view machine, std::vector<std::string>& states, uint16_t& initial) const;
  // The index of the state a person was in at an instant (from the history, else the
  // current state when it was entered by then), or -1.
  int StateAt(std::string_view machine, uint64_t oneid, int64_t at) const;
  bool empty() const;  // nothing defined: events need not be fed
  std::string StatsJson() const;
  uint64_t bytes() const;

  // Snapshots (src/snapshot.hpp): everything Load needs to rebuild this object's state.
  // The definitions travel as the documents and drops that made them, so Load installs
  // the same definitions at the same places, without their side effects.
  void Save(snap::Writer& w) const;
  // Into a Lifecycle freshly constructed with the same arguments, with no definitions
  // installed, whose store and tags are already loaded. Emits no feed events. DataLoss
  // when the bytes are bad (or a saved definition no longer installs).
  absl::Status Load(snap::Reader& r);

 private:
  std::unique_ptr<life::Core> core_;
};

}  // namespace cdp
