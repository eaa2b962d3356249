// bench/bench_lifecycle.cpp — the lifecycle benchmark (issue 5).
//
// Measures the lifecycle layer itself, with the engine around it only where the figure is
// an engine figure. On one engine, one core:
//  1. defines 3 machines (the shipped AIPL, FAST+ and activity machines) and 2 journeys
//     (the PwC fan and first-purchase journeys, with delivery rules); when the journeys
//     part refuses its section, the run goes on with the machines alone and says so;
//  2. ingests one record per person (default 1,000,000), timestamps spread over one day, so
//     every person enters the 3 machines and the activity machine's 90-day deadline of
//     each person falls somewhere in one day, 90 days later;
//  3. advances to just before that day (the FAST+ machine's month resets fire on the way)
//     and then times one Advance over the day: every person's deadline fires (target
//     under 1 s);
//  4. times Lifecycle::OnEvent over N pre-built events (default 5,000,000): random persons,
//     increasing timestamps, types from a mix where 85% are types no transition reads —
//     the events-through-machines figure (target at least 1M events/s). These events
//     reach the lifecycle only: the profiles do not see them, so guards read profiles
//     that hold the population's record alone. The same loop over events of unread types
//     alone gives the floor of the common path;
//  5. times NDJSON ingest of the same mix through Engine::IngestNdjson with the lifecycle
//     defined, then again after every definition was dropped (the cost of the layer on the
//     write path).
// Between phases the benchmark acts as the host: it reads the change feed (counting the
// lifecycle's entries by kind), trims it, and acknowledges the outbox.
//
// Usage: bench_lifecycle [--persons N] [--events N] [--seed S] [--quick]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>
#include <vector>

#include "bench_util.hpp"
#include "cdp/engine.hpp"
#include "profile_data.hpp"

namespace {

using namespace cdpbench;
// Rates and verdicts use CPU time (Measure, bench_util.hpp).
// "1.23 s" or, when the process was off the CPU for a tenth of it, "1.23 s (wall 2.50 s)".
std::string Time(const Span& s) {
  char b[64];
  if (s.wall > s.cpu * 1.1) std::snprintf(b, sizeof b, "%.3f s (wall %.3f s)", s.cpu, s.wall);
  else std::snprintf(b, sizeof b, "%.3f s", s.cpu);
  return b;
}

// The three machines of examples/data/machines.json as shipped with issue 5 (descriptions
// left out): a copy, so the figures stay comparable when the examples change.
constexpr const char* kMachines = R"J("machines": [
  {"name": "aipl", "monotonic": true, "states": ["aware", "interest", "purchase", "loyal"], "initial": "aware",
   "transitions": [
     {"from": "aware", "to": "interest", "on": ["follow", "mp_login", "app_download", "app_open", "guide_added", "event_checkin", "member_join"]},
     {"from": ["aware", "interest"], "to": "purchase", "on": ["order", "purchase"]},
     {"from": "purchase", "to": "loyal", "on": ["order", "purchase"], "when": "count(order, 365d) + count(purchase, 365d) >= 3",
      "action": "loyal_welcome", "channel": "wechat_template", "payload": {"city": "{{attrs.city}}", "orders": "{{count(order) + count(purchase)}}"}}]},
  {"name": "fast", "monotonic": true, "reset": "month",
   "states": ["outside", "private_domain", "member", "purchased", "repurchase", "koc"], "initial": "outside",
   "transitions": [
     {"from": "outside", "to": "private_domain", "when": "count(follow) + count(guide_added) > 0 && count(member_join) == 0"},
     {"from": ["outside", "private_domain"], "to": "member", "when": "count(member_join) > 0"},
     {"from": ["outside", "private_domain", "member"], "to": "purchased", "when": "active_days(order, this_month) + active_days(purchase, this_month) == 1"},
     {"from": ["outside", "private_domain", "member", "purchased"], "to": "repurchase", "when": "active_days(order, this_month) + active_days(purchase, this_month) >= 2"},
     {"from": "repurchase", "to": "koc", "on": "referred_purchase"}]},
  {"name": "activity", "states": ["new", "active", "dormant", "churned", "recalled"], "initial": "new",
   "transitions": [
     {"from": "new", "to": "active", "on": ["order", "purchase"]},
     {"from": "new", "to": "dormant", "after": "90d"},
     {"from": ["active", "recalled"], "restart": true, "on": ["order", "purchase"]},
     {"from": ["active", "recalled"], "to": "dormant", "after": "90d"},
     {"from": "dormant", "to": "churned", "after": "90d"},
     {"from": ["dormant", "churned"], "to": "recalled", "on": ["order", "purchase"], "action": "welcome_back", "channel": "sms"},
     {"from": "recalled", "to": "active", "after": "30d"}]}
])J";

// The PwC fan and first-purchase journeys (shared/DOMAIN.md section 3).
constexpr const char* kJourneys = R"J("journeys": [
  {"name": "fan", "priority": 10, "entry": {"on": "follow"}, "reentry": "once", "exit": {"on": ["order", "purchase"]},
   "steps": [
     {"id": "welcome", "action": "fan_welcome", "channel": "wechat_template", "payload": {"city": "{{attrs.city}}"}},
     {"wait": "1d"}, {"id": "join", "action": "member_incentive", "channel": "wechat_template"},
     {"wait": "4d"}, {"id": "post", "action": "regular_post", "channel": "wechat_oa"},
     {"wait": "2d"}, {"id": "coupon", "action": "coupon", "channel": "sms", "payload": {"coupon": "FAN10"}},
     {"wait": "7d"}, {"id": "reminder", "action": "first_purchase_reminder", "channel": "sms"}]},
  {"name": "first_purchase", "priority": 20, "entry": {"state": {"machine": "aipl", "to": "purchase"}}, "reentry": "once",
   "steps": [
     {"id": "notice", "action": "tier_up_notice", "channel": "wechat_template"},
     {"wait": "1d"}, {"id": "gift", "action": "gift", "channel": "sms"},
     {"wait": "1d"}, {"id": "logistics", "action": "logistics_notice", "channel": "wechat_template"},
     {"id": "repeat", "wait_for": "order", "timeout": "5d", "yes": "done", "no": "care"},
     {"id": "care", "action": "care", "channel": "wechat_template"},
     {"wait": "3d"}, {"id": "care2", "action": "care", "channel": "wechat_template"},
     {"id": "done", "end": true}]}
], "delivery": {"quiet_hours": ["22:00", "08:00"], "caps": {"per_day": 3, "per_7_days": 7}})J";

// The event mix. The first six types are read by no transition and no journey: the
// common path, 85% of events.
struct Kind {
  const char* name;
  int weight;
};
constexpr Kind kMix[] = {{"visit", 40},   {"view_item", 20}, {"search", 12},     {"add_cart", 6},
                         {"share", 4},    {"coupon_claim", 3}, {"app_open", 4},  {"follow", 3},
                         {"mp_login", 2}, {"member_join", 1}, {"order", 5}};
constexpr int kUnread = 6;  // kMix[0..kUnread) are read by nothing
constexpr int kOrder = 10;

int PickKind(Rng& r, bool unread_only) {
  int total = 0;
  const int n = unread_only ? kUnread : static_cast<int>(std::size(kMix));
  for (int k = 0; k < n; ++k) total += kMix[k].weight;
  int x = static_cast<int>(r.Below(static_cast<uint64_t>(total)));
  for (int k = 0; k < n; ++k) {
    if (x < kMix[k].weight) return k;
    x -= kMix[k].weight;
  }
  return 0;
}

// 2025-01-06T00:00:00+08:00: the population arrives that day; the activity machine's
// deadlines fall on 2025-04-06, a day with no month start (FAST+ resets monthly).
constexpr int64_t kT0 = kNow + 5 * kDay;

[[noreturn]] void Die(const char* what, const absl::Status& st) {
  std::fprintf(stderr, "bench_lifecycle: %s: %s\n", what, std::string(st.message()).c_str());
  std::exit(1);
}

// NDJSON batches of at most 65,536 lines: n records of the mix on random persons from
// time from on, one ms apart.
std::vector<std::string> MixBatches(Rng& r, uint64_t n, uint64_t persons, int64_t from) {
  std::vector<std::string> out;
  char buf[256];
  for (uint64_t i = 0; i < n; ++i) {
    if (i % 65'536 == 0) out.emplace_back();
    const int k = PickKind(r, false);
    const auto who = static_cast<unsigned long long>(r.Below(persons));
    const auto ts = static_cast<long long>(from + static_cast<int64_t>(i));
    if (k == kOrder)
      std::snprintf(buf, sizeof buf,
                    "{\"source\":\"tmall\",\"ts\":%lld,\"ids\":{\"mobile\":\"139%08llu\"},\"event\":{\"type\":\"order\","
                    "\"amount\":\"%d.00\"}}\n",
                    ts, who, 9 + static_cast<int>(r.Below(900)));
    else
      std::snprintf(buf, sizeof buf,
                    "{\"source\":\"app\",\"ts\":%lld,\"ids\":{\"mobile\":\"139%08llu\"},\"event\":{\"type\":\"%s\"}}\n", ts,
                    who, kMix[k].name);
    out.back() += buf;
  }
  return out;
}

Span Ingest(cdp::Engine& e, const std::vector<std::string>& batches) {
  return Measure([&] {
    for (const std::string& b : batches)
      if (auto r = e.IngestNdjson(b, false); !r.ok()) Die("ingest", r.status());
  });
}

// What the lifecycle wrote to the feed since the last call, by kind; then the host's
// part: the feed is trimmed and every intent acknowledged.
struct Tally {
  uint64_t states = 0, journey = 0, intent = 0, other = 0;
};
Tally Consume(cdp::Engine& e) {
  Tally t;
  const cdp::Feed& f = e.feed();
  for (uint64_t cur = f.first(); cur < f.next();)
    cur = f.Read(cur, 1u << 20, [&](const cdp::FeedEvent& ev) {
      switch (ev.kind) {
        case cdp::FeedEvent::Kind::kStateChanged: t.states++; break;
        case cdp::FeedEvent::Kind::kJourney: t.journey++; break;
        case cdp::FeedEvent::Kind::kIntent: t.intent++; break;
        default: t.other++; break;
      }
    });
  if (auto st = e.TrimFeed(f.next()); !st.ok()) Die("trim feed", st);
  if (auto r = e.AckIntents("{\"through\":18446744073709551615}"); !r.ok()) Die("ack", r.status());
  return t;
}

// The outbox's pending count, read as a host would before acknowledging.
uint64_t Pending(const cdp::Engine& e) {
  const std::string s = e.OutboxJson(0, 0);
  const size_t at = s.rfind("\"pending\":");
  return at == std::string::npos ? 0 : std::strtoull(s.c_str() + at + 10, nullptr, 10);
}

const char* Verdict(bool pass) { return pass ? "PASS" : "MISS"; }

}  // namespace

int main(int argc, char** argv) {
  uint64_t persons = 1'000'000, events = 5'000'000, seed = 42;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--quick")) {
      persons = 20'000;
      events = 200'000;
    } else if (!std::strcmp(argv[i], "--persons") && i + 1 < argc) {
      persons = std::strtoull(argv[++i], nullptr, 10);
    } else if (!std::strcmp(argv[i], "--events") && i + 1 < argc) {
      events = std::strtoull(argv[++i], nullptr, 10);
    } else if (!std::strcmp(argv[i], "--seed") && i + 1 < argc) {
      seed = std::strtoull(argv[++i], nullptr, 10);
    } else {
      std::fprintf(stderr, "usage: bench_lifecycle [--persons N] [--events N] [--seed S] [--quick]\n");
      return 1;
    }
  }
  if (persons == 0 || persons > 99'999'999 || events == 0) {
    std::fprintf(stderr, "bench_lifecycle: --persons is 1 to 99,999,999 and --events at least 1\n");
    return 1;
  }
  auto opened = cdp::Engine::Open("");
  if (!opened.ok()) Die("open", opened.status());
  cdp::Engine& e = **opened;
  cdp::Lifecycle& life = e.lifecycle();

  // 1. Definitions, before anyone exists. Without journeys when that part refuses them.
  std::string refused;
  bool journeys = true;
  auto defined = e.DefineLifecycle(std::string("{") + kMachines + "," + kJourneys + "}");
  if (!defined.ok()) {
    refused = std::string(defined.status().message());
    journeys = false;
    defined = e.DefineLifecycle(std::string("{") + kMachines + "}");
    if (!defined.ok()) Die("define machines", defined.status());
  }

  // 2. The population: one record per person over one day; each enters the machines.
  std::vector<std::string> batches;
  {
    char buf[160];
    for (uint64_t i = 0; i < persons; ++i) {
      if (i % 65'536 == 0) batches.emplace_back();
      std::snprintf(buf, sizeof buf,
                    "{\"source\":\"app\",\"ts\":%lld,\"ids\":{\"mobile\":\"139%08llu\"},\"event\":{\"type\":\"visit\"}}\n",
                    static_cast<long long>(kT0 + static_cast<int64_t>(i * static_cast<uint64_t>(kDay) / persons)),
                    static_cast<unsigned long long>(i));
      batches.back() += buf;
    }
  }
  const Span load_s = Ingest(e, batches);
  batches.clear();
  batches.shrink_to_fit();
  const Tally entered = Consume(e);
  std::vector<uint64_t> oneids;
  oneids.reserve(persons);
  for (uint32_t s = 0; s < e.profiles().slots(); ++s)
    if (const cdp::Profile* p = e.profiles().AtSlot(s)) oneids.push_back(p->oneid);
  const uint64_t life_bytes_loaded = life.bytes();
  const uint64_t rss_loaded = ProcStatusBytes("VmRSS");

  // 3. To the eve of the deadlines' day (month resets on the way), then over the day.
  const int64_t day90 = kT0 + 90 * kDay;
  absl::StatusOr<std::string> catchup, day;
  const Span catchup_s = Measure([&] { catchup = e.Advance(day90 - 1); });
  if (!catchup.ok()) Die("advance", catchup.status());
  const Tally resets = Consume(e);
  const Span advance_s = Measure([&] { day = e.Advance(day90 + kDay - 1); });
  if (!day.ok()) Die("advance", day.status());
  const Tally dormant = Consume(e);

  // 4. Events straight into the lifecycle, the way the engine's write path hands them
  // over: in time order, the changed persons taken after each batch of 65,536.
  Rng rng{seed};
  uint32_t type_of[std::size(kMix)];
  for (size_t k = 0; k < std::size(kMix); ++k) type_of[k] = e.profiles().EventType(kMix[k].name);
  const int64_t ev_from = day90 + kDay + 3600'000;
  const int64_t ev_span = 7 * kDay;
  auto make_events = [&](uint64_t n, int64_t from, bool unread_only) {
    std::vector<cdp::LifeEvent> v(n);
    uint64_t read = 0;
    for (uint64_t i = 0; i < n; ++i) {
      cdp::LifeEvent& x = v[i];
      const int k = PickKind(rng, unread_only);
      read += k >= kUnread;
      x.oneid = oneids[rng.Below(oneids.size())];
      x.type = type_of[k];
      x.ts = from + static_cast<int64_t>(static_cast<double>(i) / static_cast<double>(n) * static_cast<double>(ev_span));
      if (k == kOrder) {
        x.amount = static_cast<int64_t>(900 + rng.Below(90'000));
        x.has_amount = true;
      }
    }
    return std::make_pair(std::move(v), read);
  };
  auto run = [&](const std::vector<cdp::LifeEvent>& v) {
    std::vector<uint64_t> changed;
    return Measure([&] {
      for (size_t i = 0; i < v.size(); ++i) {
        life.OnEvent(v[i]);
        if ((i & 65'535) == 65'535) life.TakeStateChanges(changed);
      }
      life.TakeStateChanges(changed);
    });
  };
  auto [mixed, mixed_read] = make_events(events, ev_from, false);
  const uint64_t pending_before = Pending(e);
  const Span events_s = run(mixed);
  const uint64_t intents_made = Pending(e) - pending_before;
  const Tally moved = Consume(e);
  const uint64_t life_bytes = life.bytes();
  const uint64_t rss_events = ProcStatusBytes("VmRSS");
  std::vector<cdp::LifeEvent>().swap(mixed);
  const uint64_t n_unread = std::min<uint64_t>(events, 1'000'000);
  std::vector<cdp::LifeEvent> unread = make_events(n_unread, ev_from + ev_span, true).first;
  const Span unread_s = run(unread);
  std::vector<cdp::LifeEvent>().swap(unread);
  Consume(e);

  // 5. The write path with the lifecycle defined, then without it.
  const uint64_t n_ingest = std::min<uint64_t>(events, 200'000);
  const int64_t in_from = ev_from + 2 * ev_span;
  batches = MixBatches(rng, n_ingest, persons, in_from);
  const Span with_s = Ingest(e, batches);
  Consume(e);
  for (const char* m : {"aipl", "fast", "activity"})
    if (auto st = e.DropLifecycle("machine", m); !st.ok()) Die("drop", st);
  if (journeys)
    for (const char* j : {"fan", "first_purchase"})
      if (auto st = e.DropLifecycle("journey", j); !st.ok()) Die("drop", st);
  batches = MixBatches(rng, n_ingest, persons, in_from + static_cast<int64_t>(n_ingest) + kDay);
  const Span without_s = Ingest(e, batches);

  const double n = static_cast<double>(persons);
  const double nev = static_cast<double>(events);
  auto ull = [](uint64_t v) { return static_cast<unsigned long long>(v); };
  std::printf("bench_lifecycle: %llu persons, 3 machines + %s (one core; times are CPU time)\n", ull(persons),
              journeys ? "2 journeys with delivery rules" : "NO journeys");
  if (!journeys) std::printf("  journeys refused, machines only: %s\n", refused.c_str());
  std::printf("  population load             %.0f records/s, %s (a new person per record; %llu machine entries)\n",
              n / load_s.cpu, Time(load_s).c_str(), ull(entered.states));
  std::printf("  advance to the eve          %s, %llu state changes (FAST+ month resets)\n    %s\n",
              Time(catchup_s).c_str(), ull(resets.states), catchup->c_str());
  std::printf("  advance one day             %s, %.2f M transitions/s   target < 1 s: %s\n    %s\n",
              Time(advance_s).c_str(), static_cast<double>(dormant.states) / advance_s.cpu / 1e6,
              Verdict(advance_s.cpu < 1.0), day->c_str());
  std::printf("  events through machines     %.2f M events/s, %llu events in %s   target >= 1 M/s: %s\n",
              nev / events_s.cpu / 1e6, ull(events), Time(events_s).c_str(), Verdict(nev / events_s.cpu >= 1e6));
  std::printf("    %.0f%% of a type something reads; they caused %llu state changes, %llu journey steps, "
              "%llu intents\n",
              100.0 * static_cast<double>(mixed_read) / nev, ull(moved.states), ull(moved.journey), ull(intents_made));
  std::printf("  events nothing reads        %.2f M events/s, %llu events in %s (the common path alone)\n",
              static_cast<double>(n_unread) / unread_s.cpu / 1e6, ull(n_unread), Time(unread_s).c_str());
  std::printf("  ingest with the lifecycle   %.0f records/s (%llu records of the mix); %.0f/s with nothing defined\n",
              static_cast<double>(n_ingest) / with_s.cpu, ull(n_ingest), static_cast<double>(n_ingest) / without_s.cpu);
  std::printf("  lifecycle memory            %s (%.0f bytes/person) after the load; %s (%.0f bytes/person) after the "
              "events\n",
              Mb(static_cast<double>(life_bytes_loaded)).c_str(), static_cast<double>(life_bytes_loaded) / n,
              Mb(static_cast<double>(life_bytes)).c_str(), static_cast<double>(life_bytes) / n);
  std::printf("  RSS                         %s after the load; %s after the events (the pre-built events included); "
              "peak %s\n",
              Mb(static_cast<double>(rss_loaded)).c_str(), Mb(static_cast<double>(rss_events)).c_str(),
              Mb(static_cast<double>(ProcStatusBytes("VmHWM"))).c_str());
  return 0;
}
