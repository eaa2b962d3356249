// What the lifecycle snapshot tests share: a Lifecycle made the way the engine makes one,
// its saved bytes, and the feed as comparable lines.
#pragma once

#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

#include "cdp/engine.hpp"
#include "cdp/lifecycle.hpp"
#include "snapshot.hpp"

namespace cdptest {

inline cdp::LifecycleLimits Limits(const cdp::Engine& e) {
  cdp::LifecycleLimits ll;
  ll.max_definitions = e.config().limits.max_lifecycle_definitions;
  ll.max_history = e.config().limits.max_history;
  ll.max_outbox = e.config().limits.max_outbox;
  return ll;
}

// The feed events from cursor on, as kind, OneID, time and text.
inline std::vector<std::string> FeedFrom(const cdp::Feed& f, uint64_t cursor) {
  std::vector<std::string> out;
  f.Read(cursor, 1000000, [&](const cdp::FeedEvent& e) {
    out.push_back(std::string(cdp::FeedKindName(e.kind)) + " " + std::to_string(e.a) + " " + std::to_string(e.ts) +
                  " " + (e.text == 0xFFFFFFFFu ? std::string() : f.text(e.text)));
  });
  return out;
}

inline std::string Saved(const cdp::Lifecycle& l) {
  cdp::snap::Writer w;
  l.Save(w);
  return w.bytes();
}

inline std::vector<uint64_t> OneIds(const cdp::ProfileStore& store) {
  std::vector<uint64_t> out;
  for (uint32_t slot = 0; slot < store.slots(); ++slot)
    if (const cdp::Profile* p = store.AtSlot(slot)) out.push_back(p->oneid);
  return out;
}

// Everything a reader can see of a lifecycle, as text: the catalog, each person with a
// profile, those in extra and one nobody, with state.<name> of each of the names that is a
// machine (or a tier program, or a journey), the outbox, and the stats but for bytes
// (capacities: a loaded lifecycle's vectors fit exactly).
inline std::string Observe(const cdp::Lifecycle& l, const cdp::ProfileStore& store,
                           std::initializer_list<const char*> names, const std::vector<uint64_t>& extra = {}) {
  std::string out = l.CatalogJson() + "\n";
  std::vector<uint64_t> ids = OneIds(store);
  ids.insert(ids.end(), extra.begin(), extra.end());
  ids.push_back(987654321);  // nobody
  std::vector<uint32_t> machines;
  for (const char* m : names)
    if (int64_t id = store.FindMachine(m); id >= 0) machines.push_back(static_cast<uint32_t>(id));
  for (uint64_t id : ids) {
    out += std::to_string(id) + " {";
    l.AppendPerson(out, id);
    out += "}";
    for (uint32_t m : machines) {
      std::string v;
      cdp::AppendValueJson(v, l.State(m, id));
      out += " " + v;
    }
    out += "\n";
  }
  out += l.OutboxJson(0, 1000000) + "\n";
  const std::string stats = l.StatsJson();
  return out + stats.substr(0, stats.find(",\"bytes\":"));
}

// A lifecycle constructed the way the engine does, over e's store and tags, with a feed
// of its own.
struct Fresh {
  cdp::Feed feed;
  cdp::Lifecycle life;
  explicit Fresh(cdp::Engine& e) : life(e.profiles(), e.tags(), feed, e.expr_limits(), Limits(e)) {}
  absl::Status Load(std::string_view bytes) {
    cdp::snap::Reader r(bytes);
    absl::Status st = life.Load(r);
    if (st.ok() && !r.done()) return absl::DataLossError("bytes left over");
    return st;
  }
};

}  // namespace cdptest
