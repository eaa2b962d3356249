// cdp/tags.hpp — tags: named values derived from each person, kept current and indexed.
//
// A tag is defined as data (JSON; docs/tags.md): a name, a kind, a version, a description
// and the kind's parameters. Kinds: rule (ordered value rules or one condition), statistic
// (an event function or any expression), bucket (ranges of a numeric expression), rfm
// (recency, frequency, monetary scores combined into groups), preference (top values of an
// event property), score (points per behaviour with caps and decay) and import (a value
// set from outside, carried by records as an attribute). Rules are written in the
// expression language (expr.hpp) and may read other tags; a cycle is refused with its path.
//
// Storage is by column, one per tag, indexed by the profile slot (a dense 32-bit person
// index): a category tag keeps a 32-bit code per person and a roaring bitmap per value; a
// numeric tag keeps its value in an order-preserving 64-bit encoding and a bit-sliced index
// (one bitmap per bit), so a range is a few bitmap operations and never a row scan; a list
// tag keeps a list per person and a bitmap per item. Bitmaps follow merges and splits
// because they follow the profile store's changes.
//
// Incremental: after a write, only the persons whose profiles changed are re-evaluated,
// and of their tags only those that read what changed (plus the tags that read those).
// Each evaluation also says until when its value holds (Evaluator's valid_until); each
// person's earliest such instant sits in a min-heap, so Advance(now) re-evaluates just the
// persons whose values may have moved with time. Every value change goes to the change
// feed with the tag's version and the reason.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "cdp/expr.hpp"
#include "cdp/feed.hpp"
#include "cdp/profile.hpp"
#include "roaring/roaring.hh"

namespace cdp {

using Bitmap = ::Roaring;

namespace tags { struct Def; struct Column; }
namespace snap { class Writer; class Reader; }

// The persons a tag engine indexes are the profile slots; a person with identifiers but no
// record (a manual rule's) has no slot and no tags.
class TagEngine {
 public:
  TagEngine(ProfileStore& store, Feed& feed, const ExprLimits& lim, uint32_t max_tags);
  ~TagEngine();

  // Defines (or redefines) tags: one definition object or an array of them. All are
  // checked (syntax, expressions, references, cycles) before any is installed; then each
  // is evaluated over every person at now, in dependency order. A redefinition re-evaluates
  // the tags that read it too. Returns {"defined":[{"name","version","persons","changed"}]}.
  // Errors: InvalidArgument naming the definition and field ("tags[1].rules[0].when: line 1,
  // column 9: ..."), or the cycle ("tag cycle: a -> b -> a"); ResourceExhausted past the
  // limit on the number of tags.
  absl::StatusOr<std::string> Define(std::string_view json, int64_t now);
  // Drops a tag. FailedPrecondition if another tag reads it; NotFound if undefined.
  absl::Status Drop(std::string_view name);

  // Brings the tags of the persons whose profiles changed up to date (ProfileStore's
  // changes) at now. Writers call it after every change to the profiles. freed, when
  // given, receives the slots whose persons ended since the last Update (absorbed by a
  // merge, or forgotten), sorted; a slot may already hold a new person.
  void Update(int64_t now, std::vector<uint32_t>* freed = nullptr);
  // Erasure (PIPL): clears these persons' tags (redirects followed) and drops every tag
  // value and list that no person holds any longer, overwriting it, so neither memory nor
  // Save keeps a value only they had (their current values, the ones they had before, and
  // any other leftovers); pending re-evaluations no slot waits for go too, since a due
  // time is derived from the person's data. Evaluates nothing and emits no feed event.
  // Update alone would clear the slots that ProfileStore::Forget frees, but not the
  // values. Call it before ProfileStore::Forget (persons are found through the store),
  // or after the Update that follows it: the state is the same. Linear in the columns
  // and slots. Returns how many of the persons had a profile.
  uint32_t Forget(std::span<const uint64_t> oneids);

  // Re-evaluates the persons whose earliest valid_until is <= now, at now.
  struct AdvanceStats {
    uint64_t persons = 0, changed = 0;
    int64_t next = kForever;  // the earliest pending valid_until afterwards
  };
  AdvanceStats Advance(int64_t now);

  // The catalogue: every tag's definition, value type, and counts.
  std::string CatalogJson() const;
  // Appends the person's tags as a JSON object {"name":{"value":V,"version":N},...}.
  void AppendPersonTags(std::string& out, uint32_t slot) const;

  // Reading, for audiences, metrics and the expression subject.
  // The tag id (ProfileStore::Tag of its name) of a defined tag, or -1.
  int64_t Find(std::string_view name) const;
  Value Get(uint32_t tag, uint32_t slot) const;
  const tags::Column* column(uint32_t tag) const;
  const std::vector<uint32_t>& order() const { return order_; }  // defined tags, dependency order
  const tags::Def& def(uint32_t tag) const { return *defs_[tag]; }
  // Live profile slots: the universe audiences are cut from.
  const Bitmap& universe() const { return universe_; }
  ProfileStore& store() { return store_; }
  const ProfileStore& store() const { return store_; }
  // Bytes held by columns and bitmaps.
  uint64_t bytes() const;
  uint64_t evaluations() const { return evaluations_; }
  // Where state.<machine> reads from (the lifecycle); nullptr: states are null.
  void SetStates(const StateReader* states) { states_ = states; }
  const StateReader* states() const { return states_; }
  // Re-evaluates, on these persons, the tags that read state.* (and the tags that read
  // those): the lifecycle moved them.
  void StatesChanged(const std::vector<uint64_t>& oneids, int64_t now);

  // Snapshots (src/snapshot.hpp): the definitions (as their JSON, with what defining them
  // computed), every column and bitmap, the universe and the pending re-evaluations.
  void Save(snap::Writer& w) const;
  // Into an engine freshly constructed with the same arguments, with no tags defined, over
  // the profile store the snapshot was taken with (already loaded). Re-installs the
  // definitions without evaluating them and without feed events. DataLoss when the bytes
  // are bad; FailedPrecondition when this engine is not fresh.
  absl::Status Load(snap::Reader& r);

  struct Scratch;  // per-engine evaluation scratch (src/tags.cpp)

 private:
  friend class TaggedView;
  absl::Status CheckCycles(const std::vector<std::unique_ptr<tags::Def>>& incoming) const;
  void Reorder();
  // Evaluates the tags of one slot. dirty: per tag in order_, whether to evaluate it (a
  // tag whose dependency changed is evaluated too). Returns the number of values changed.
  uint32_t EvaluateSlot(uint32_t slot, const std::vector<uint8_t>& dirty, int64_t now, bool feed, bool all_time);
  void Schedule(uint32_t slot, int64_t due);
  void Clear(uint32_t slot);

  ProfileStore& store_;
  Feed& feed_;
  ExprLimits lim_;
  uint32_t max_tags_;
  std::vector<std::unique_ptr<tags::Def>> defs_;         // by tag id; nullptr: not defined
  std::vector<std::unique_ptr<tags::Column>> columns_;   // by tag id
  std::vector<uint32_t> order_;                          // defined tag ids, dependencies first
  Bitmap universe_;
  std::vector<int64_t> due_;                              // by slot: earliest valid_until
  std::vector<std::pair<int64_t, uint32_t>> heap_;        // (due, slot), min-heap, lazy
  std::unique_ptr<Scratch> scratch_;
  const StateReader* states_ = nullptr;
  uint64_t evaluations_ = 0;
};

// A person as tag rules, audience leaves and lifecycle guards see it: the profile, its
// tags and (through TagEngine::states) its machine states.
class TaggedView final : public Subject {
 public:
  TaggedView(const TagEngine& tags, uint32_t slot) : TaggedView(tags, slot, tags.store().AtSlot(slot), 0) {}
  // A person by OneID whose slot may be -1 (identifiers only, no profile): reads as empty
  // but for its states.
  TaggedView(const TagEngine& tags, int64_t slot, uint64_t oneid)
      : TaggedView(tags, slot < 0 ? 0 : static_cast<uint32_t>(slot),
                   slot < 0 ? nullptr : tags.store().AtSlot(static_cast<uint32_t>(slot)), oneid) {}
  Value Attr(uint32_t attr) const override { return view_.Attr(attr); }
  int64_t FirstSeen() const override { return view_.FirstSeen(); }
  int64_t LastSeen() const override { return view_.LastSeen(); }
  uint32_t IdCount(uint32_t id_type) const override { return view_.IdCount(id_type); }
  Value Tag(uint32_t tag) const override { return p_ ? tags_.Get(tag, slot_) : Value(); }
  Value State(uint32_t machine) const override {
    return tags_.states_ && oneid_ ? tags_.states_->State(machine, oneid_) : Value();
  }
  Totals DayTotals(uint32_t type, int32_t first_day, int32_t last_day) const override {
    return view_.DayTotals(type, first_day, last_day);
  }
  void Scan(uint32_t type, int64_t from_ms, int64_t to_ms, bool reverse,
            absl::FunctionRef<bool(const EventView&)> f) const override {
    view_.Scan(type, from_ms, to_ms, reverse, f);
  }
  Value Prop(const EventView& e, uint32_t key) const override { return view_.Prop(e, key); }
  const Profile* profile() const { return p_; }

 private:
  // oneid 0: the profile's.
  TaggedView(const TagEngine& tags, uint32_t slot, const Profile* p, uint64_t oneid)
      : tags_(tags), slot_(slot), p_(p), oneid_(oneid ? oneid : p ? p->oneid : 0),
        view_(tags.store(), p_, oneid_) {}
  const TagEngine& tags_;
  uint32_t slot_;
  const Profile* p_;
  uint64_t oneid_;
  ProfileView view_;
};

}  // namespace cdp
