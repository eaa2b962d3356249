// The change feed's snapshots (the feed itself is inline in include/cdp/feed.hpp).
#include "cdp/feed.hpp"

#include <cstring>

#include "snapshot.hpp"
#include "util.hpp"

namespace cdp {

namespace {
constexpr uint32_t kNone = 0xFFFFFFFFu;  // an event's link, node or text: none
}  // namespace

void Feed::EraseEvent(FeedEvent& e) {
  if (e.text != kNoText && e.text >= text_base_ && e.text - text_base_ < texts_.size()) {
    WipeString(texts_[e.text - text_base_]);
  }
  const uint64_t seq = e.seq;
  const int64_t ts = e.ts;
  // Every byte, padding included: Save writes events byte for byte.
  std::memset(static_cast<void*>(&e), 0, sizeof e);
  e.seq = seq;
  e.ts = ts;
  e.kind = FeedEvent::Kind::kErased;
  e.link = e.node = e.text = kNone;
}

// --- snapshots ---------------------------------------------------------------------------

void Feed::Save(snap::Writer& w) const {
  w.Part("feed");
  w.U64(next_);
  w.U64(text_base_);
  w.U64(texts_.size());
  for (const std::string& t : texts_) w.Str(t);
  // Writer::Array's layout, one event at a time (a deque is not contiguous).
  w.U64(events_.size());
  for (const FeedEvent& e : events_) w.Pod(e);
}

absl::Status Feed::Load(snap::Reader& r) {
  if (next_ != 1 || !events_.empty() || !texts_.empty())
    return absl::FailedPreconditionError("a feed is loaded only into an empty one");
  r.Part("feed");
  next_ = r.U64();
  text_base_ = r.U64();
  if (r.ok() && next_ == 0) r.Fail("the feed's next sequence number is 0 (they start at 1)");
  for (uint64_t i = 0, n = r.Count(8); i < n && r.ok(); ++i) texts_.emplace_back(r.Str());
  // Text references are 32-bit.
  if (r.ok() && text_base_ + texts_.size() > kNoText) r.Fail(Cat("text indexes run past 2^32 (", text_base_, ")"));
  const uint64_t n = r.ArrayCount<FeedEvent>();
  if (r.ok() && n >= next_) r.Fail(Cat(n, " events cannot end before sequence number ", next_));
  const uint64_t first = next_ - n;
  for (uint64_t i = 0; i < n && r.ok(); ++i) {
    const auto e = r.Pod<FeedEvent>();
    if (e.seq != first + i) r.Fail(Cat("feed event ", first + i, " has sequence number ", e.seq));
    if (e.kind > FeedEvent::Kind::kErased) r.Fail(Cat("feed event ", e.seq, " has an unknown kind"));
    // An erased event keeps its place and time and nothing else; anything more would be
    // what the erasure removed.
    else if (e.kind == FeedEvent::Kind::kErased &&
             (e.reason || e.source || e.link != kNone || e.node != kNone || e.text != kNone || e.count ||
              e.a || e.b || e.record || e.rule))
      r.Fail(Cat("erased feed event ", e.seq, " still carries fields"));
    if (e.text != kNoText && (e.text < text_base_ || e.text - text_base_ >= texts_.size()))
      r.Fail(Cat("feed event ", e.seq, " names text ", e.text, ", not retained"));
    events_.push_back(e);
  }
  return r.status();
}

}  // namespace cdp
