// Properties on random populations: two paths that must agree, inputs that must not
// break the engine, and the graph's invariants after random operation sequences.
#include <map>
#include <random>
#include <set>

#include "helpers.hpp"

using namespace cdptest;

namespace {

constexpr int64_t kT0 = 1700000000000;

// A noisy population: persons with mobiles, member numbers and unionids, some shared
// family devices, a few shop phones typed in for many customers, placeholder junk.
std::vector<std::string> Population(uint64_t seed, int persons, int records, int64_t* ts_step) {
  std::mt19937_64 rng(seed);
  std::vector<std::string> out;
  auto pick = [&](int n) { return static_cast<int>(rng() % static_cast<uint64_t>(n)); };
  for (int i = 0; i < records; ++i) {
    int p = pick(persons);
    std::string ids;
    auto add = [&](const std::string& kv) { ids += (ids.empty() ? "" : ",") + kv; };
    switch (pick(6)) {
      case 0: add("\"mobile\":\"139" + std::to_string(10000000 + p) + "\""); break;
      case 1: add("\"member_no\":\"M" + std::to_string(p) + "\",\"mobile\":\"+86 139" + std::to_string(10000000 + p) + "\""); break;
      case 2: add("\"unionid\":\"oU" + std::to_string(p) + "_0000000000\",\"member_no\":\"M" + std::to_string(p) + "\""); break;
      case 3: add("\"mobile\":\"139" + std::to_string(10000000 + p) + "\",\"device_id\":\"FAM-" + std::to_string(p / 3) + "\""); break;
      case 4: add("\"mobile\":\"1371111" + std::to_string(1000 + pick(3)) + "\",\"member_no\":\"M" + std::to_string(p) + "\""); break;
      default: add("\"device_id\":\"DEV-" + std::to_string(p) + "\",\"mobile\":[\"13800138000\",\"null\"]"); break;
    }
    int64_t ts = kT0 + static_cast<int64_t>(i) * (ts_step ? *ts_step : 1000);
    out.push_back(Rec(pick(2) ? "pos" : "crm", ts, ids));
  }
  return out;
}

// Every live identifier, with its person, read back through the persons listing.
std::map<std::string, uint64_t> Layout(cdp::Engine& e) {
  std::map<std::string, uint64_t> out;
  uint64_t cursor = 0;
  do {
    Json page(e.PersonsPage(cursor, 1000, false));
    for (auto p : Arr(page["persons"])) {
      uint64_t id = p["oneid"].get_uint64().value();
      for (auto i : Arr(p["identifiers"]))
        out[std::string(i["type"].get_string().value()) + ":" + std::string(i["value"].get_string().value())] = id;
    }
    cursor = U(page["next"]);
  } while (cursor != 0);
  return out;
}

}  // namespace

TEST_CASE("property: one batch and the same records one at a time in time order agree") {
  for (uint64_t seed = 1; seed <= 5; ++seed) {
    CAPTURE(seed);
    auto recs = Population(seed, 60, 400, nullptr);  // distinct, increasing times
    auto batch = OpenEngine(R"({"quarantine_after":6})");
    auto stream = OpenEngine(R"({"quarantine_after":6})");
    std::vector<std::string> shuffled = recs;
    std::shuffle(shuffled.begin(), shuffled.end(), std::mt19937_64(seed));
    Ingest(*batch, Join(shuffled));
    for (const auto& r : recs) Ingest(*stream, r + "\n", false);
    CHECK(Layout(*batch) == Layout(*stream));
  }
}

TEST_CASE("property: mutated records never break ingestion and every line is accounted for") {
  auto base = Population(7, 40, 200, nullptr);
  std::mt19937_64 rng(99);
  auto e = OpenEngine();
  for (int round = 0; round < 40; ++round) {
    std::string data;
    uint32_t lines = 0;
    for (std::string line : base) {
      switch (rng() % 5) {
        case 0: line[rng() % line.size()] = static_cast<char>(rng() % 256); break;  // any byte
        case 1: line.resize(rng() % line.size()); break;                           // truncated
        case 2: line.insert(rng() % line.size(), "\"\\u0000{[\x80"); break;        // junk inside
        default: break;
      }
      for (char& c : line)
        if (c == '\n') c = ' ';  // one record per line stays one line
      data += line + "\n";
      ++lines;
    }
    auto r = e->IngestNdjson(data, true);
    REQUIRE(r.ok());
    Json j(*r);
    uint64_t blank = 0;
    for (auto v : Arr(j["assign"])) (void)v;
    size_t pos = 0;
    for (uint32_t l = 0; l < lines; ++l) {
      size_t nl = data.find('\n', pos);
      if (data.substr(pos, nl - pos).find_first_not_of(" \t\r") == std::string::npos) ++blank;
      pos = nl + 1;
    }
    CHECK(U(j["accepted"]) + U(j["rejected"]) + blank == lines);
    CHECK(Arr(j["assign"]).size() == lines);
  }
}

TEST_CASE("property: after random ingest, unmerge and rule sequences the graph's invariants hold") {
  for (uint64_t seed = 1; seed <= 6; ++seed) {
    CAPTURE(seed);
    std::mt19937_64 rng(seed * 7919);
    auto e = OpenEngine(R"({"quarantine_after":5})");
    auto recs = Population(seed, 50, 600, nullptr);
    std::vector<uint64_t> rules;
    for (size_t i = 0; i < recs.size(); i += 50) {
      std::vector<std::string> chunk(recs.begin() + i, recs.begin() + std::min(recs.size(), i + 50));
      Ingest(*e, Join(chunk));
      auto layout = Layout(*e);
      if (layout.size() < 4) continue;
      auto nth = [&](size_t k) { auto it = layout.begin(); std::advance(it, k % layout.size()); return *it; };
      auto split_tv = [](const std::string& s) { auto c = s.find(':'); return std::make_pair(s.substr(0, c), s.substr(c + 1)); };
      switch (rng() % 5) {
        case 0: {  // remove an identifier
          auto [t, v] = split_tv(nth(rng()).first);
          CHECK(e->RemoveIdentifier(t, v).ok());
          break;
        }
        case 1: {  // split the first identifier off a person with several
          for (auto& [ident, oneid] : layout) {
            Json p(*e->PersonIdentifiers(oneid, false));
            if (U(p["size"]) < 2) continue;
            CHECK(e->Split(oneid, "[\"" + ident + "\"]").ok());
            break;
          }
          break;
        }
        case 2: {  // a manual rule between two identifiers
          auto [ta, va] = split_tv(nth(rng()).first);
          auto [tb, vb] = split_tv(nth(rng()).first);
          if (ta + va == tb + vb) break;
          auto r = e->AddRule(rng() % 2 ? "never_link" : "force_link", ta, va, tb, vb, "");
          if (r.ok()) rules.push_back(*r);
          break;
        }
        case 3:
          if (!rules.empty()) {
            CHECK(e->RemoveRule(rules.back()).ok());
            rules.pop_back();
          }
          break;
        default:
          (void)e->RemoveSource(rng() % 2 ? "pos" : "crm");
          break;
      }
      // Invariants, read through the public API only:
      // 1. every listed identifier resolves to the person that lists it (exactly one);
      auto now = Layout(*e);
      for (auto& [ident, oneid] : now) {
        auto c = ident.find(':');
        auto r = e->Resolve(ident.substr(0, c), ident.substr(c + 1));
        REQUIRE_MESSAGE(r.ok(), ident);
        CHECK(*r == oneid);
      }
      // 2. no person holds more of a limited type than its policy allows, unless a
      //    force_link rule (an operator's override of the policies) joined it;
      Json rl(e->RulesJson());
      std::set<uint64_t> forced;
      for (auto r : Arr(rl["rules"]))
        if (r["kind"].get_string().value() == "force_link") {
          std::string a(r["a"].get_string().value());
          if (now.count(a)) forced.insert(now[a]);
        }
      std::map<std::pair<uint64_t, std::string>, uint32_t> per_type;
      for (auto& [ident, oneid] : now) per_type[{oneid, ident.substr(0, ident.find(':'))}]++;
      for (auto& [key, count] : per_type) {
        if (forced.count(key.first)) continue;
        int t = e->config().FindType(key.second);
        uint32_t max = e->config().types[t].max_per_person;
        if (max) CHECK_MESSAGE(count <= max, key.second);
      }
      // 3. the person count matches the distinct OneIDs, and every person listed resolves.
      std::set<uint64_t> distinct;
      for (auto& [ident, oneid] : now) distinct.insert(oneid);
      Json st(e->StatsJson());
      CHECK(U(st["persons"]) == distinct.size());
      for (uint64_t id : distinct) CHECK(e->PersonIdentifiers(id, false).ok());
      // 4. never_link rules hold: their two identifiers are never in one person.
      for (auto r : Arr(rl["rules"])) {
        if (r["kind"].get_string().value() != "never_link") continue;
        std::string a(r["a"].get_string().value()), b(r["b"].get_string().value());
        if (now.count(a) && now.count(b)) CHECK(now[a] != now[b]);
      }
    }
  }
}
