// cdp/feed.hpp — the change feed: what the engine did, in order, readable from a cursor.
//
// A CRM mirrors persons in its own tables; the feed tells it when to create, merge or
// split rows, and why. Events are small fixed records (identifiers are referenced by node,
// OneIDs by value); rendering to JSON happens on read. The host trims what it consumed.
//
// A person forgotten on request must not live on in the feed either: Erase turns the
// events about it into `erased` in place, keeping only their sequence number and time,
// so the cursors hosts hold stay valid and the feed keeps its order.
#pragma once

#include <algorithm>
#include <cstdint>
#include <deque>
#include <string>
#include <vector>

#include "absl/status/status.h"

namespace cdp {

namespace snap { class Writer; class Reader; }

// Why a union was refused. Pinned order: names appear in the feed and in explanations.
enum class Refusal : uint8_t { kNone, kUniqueType, kTypeLimit, kWeakBridge, kNeverLink, kPersonLimit };
std::string_view RefusalName(Refusal r);

struct FeedEvent {
  enum class Kind : uint8_t {
    kPersonCreated,   // a: the new OneID; node: its anchor
    kMerged,          // a: survivor, b: absorbed; link: the evidence that joined them
    kSplit,           // a: the person split, b: a new person that left it
    kConflict,        // a, b: the persons kept apart; link: the refused evidence
    kIdRejected,      // text: "type:value"; reason: Rejection; count: occurrences
    kIdQuarantined,   // node; a: the person it was detached from (0: none)
    kIdRemoved,       // node; a: its person before
    kRuleAdded,       // rule: id; a, b: persons affected
    kRuleRemoved,     // rule: id
    kTagDefined,      // text: tag name; count: version; a: persons with a value; b: values changed
    kTagChanged,      // a: OneID; count: version; text: {"tag","from","to","reason"}
    kTagDropped,      // text: tag name; count: version
    kAudienceCounted, // text: {"audience","count","entered","left"}; a: count
    // The lifecycle's (a: OneID; text: a JSON object of the details, docs/feed.md).
    kStateChanged,    // {"machine","from","to","reason"}
    kPoints,          // {"op","points","balance","reason",...}
    kTierChanged,     // {"tiers","from","to","reason"}
    kJourney,         // {"journey","event","step","reason"}
    kIntent,          // {"id","journey"|"machine","action","status"}
    kPersonForgotten, // a: the OneID forgotten on request; count: identifiers forgotten
    kErased,          // an event about a forgotten person (Feed::Erase): seq and ts only
  };
  uint64_t seq = 0;
  Kind kind{};
  uint8_t reason = 0;
  uint16_t source = 0;
  uint32_t link = 0xFFFFFFFFu;
  uint32_t node = 0xFFFFFFFFu;
  uint32_t text = 0xFFFFFFFFu;   // index into Feed::texts
  uint32_t count = 0;
  int64_t ts = 0;                 // the time of the input that caused it (0: none)
  uint64_t a = 0, b = 0;
  uint64_t record = 0;            // the record (engine-wide sequence), 0: none
  uint64_t rule = 0;
};
std::string_view FeedKindName(FeedEvent::Kind k);

class Feed {
 public:
  FeedEvent& Append(FeedEvent::Kind kind) {
    events_.emplace_back();
    FeedEvent& e = events_.back();
    e.seq = next_++;
    e.kind = kind;
    return e;
  }
  uint32_t AddText(std::string s) {
    texts_.push_back(std::move(s));
    return static_cast<uint32_t>(text_base_ + texts_.size() - 1);
  }
  // Events with seq >= cursor, at most limit.
  template <typename F>
  uint64_t Read(uint64_t cursor, uint32_t limit, F&& f) const {
    uint64_t first = next_ - events_.size();
    if (cursor < first) cursor = first;
    uint64_t end = std::min<uint64_t>(next_, cursor + limit);
    for (uint64_t s = cursor; s < end; ++s) f(events_[s - first]);
    return end;
  }
  void Trim(uint64_t cursor) {
    uint64_t first = next_ - events_.size();
    while (!events_.empty() && first < cursor) { events_.pop_front(); ++first; }
    // Texts are appended in event order: keep those from the first retained event's on.
    uint64_t keep_from = text_base_ + texts_.size();
    for (const FeedEvent& e : events_)
      if (e.text != kNoText) { keep_from = e.text; break; }
    while (text_base_ < keep_from && !texts_.empty()) { texts_.pop_front(); ++text_base_; }
  }
  const std::string& text(uint32_t i) const { return texts_[i - text_base_]; }
  // Turns every retained event pred(const FeedEvent&) matches into kErased in place and
  // returns how many: seq and ts stay (cursors stay valid, the feed stays in time order),
  // every other field is cleared, and the event's text is overwritten and emptied (its
  // slot stays, since texts are addressed by position), so Save writes none of it.
  // Erased events are not offered to pred again.
  template <typename P>
  uint64_t Erase(P&& pred) {
    uint64_t n = 0;
    for (FeedEvent& e : events_)
      if (e.kind != FeedEvent::Kind::kErased && pred(static_cast<const FeedEvent&>(e))) {
        EraseEvent(e);
        ++n;
      }
    return n;
  }
  // A retained event by sequence number, or nullptr.
  FeedEvent* At(uint64_t seq) {
    uint64_t first = next_ - events_.size();
    return seq >= first && seq < next_ ? &events_[seq - first] : nullptr;
  }
  uint64_t first() const { return next_ - events_.size(); }
  uint64_t next() const { return next_; }
  uint64_t bytes() const { return events_.size() * sizeof(FeedEvent) + texts_.size() * 48; }

  // Snapshots (src/snapshot.hpp, in src/feed.cpp): the retained events and texts and the
  // next sequence number, so cursors held by hosts stay valid across a reopen.
  void Save(snap::Writer& w) const;
  // Into an empty feed. DataLoss when the bytes are bad. Node and link references in
  // events are not checked here (the feed does not know the graph).
  absl::Status Load(snap::Reader& r);

 private:
  static constexpr uint32_t kNoText = 0xFFFFFFFFu;
  void EraseEvent(FeedEvent& e);
  std::deque<FeedEvent> events_;
  std::deque<std::string> texts_;
  uint64_t text_base_ = 0;  // index of texts_.front()
  uint64_t next_ = 1;  // cursors start at 1; 0 means "from the beginning"
};

}  // namespace cdp
