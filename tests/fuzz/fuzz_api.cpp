// Fuzz target: random sequences of API calls (ingest, remove identifier, remove source,
// split, manual rules, forget) over a small universe of identifiers, with the graph's
// invariants checked after every call: every identifier a person lists resolves to that
// person and no other lists it, the person count equals the distinct OneIDs, never_link
// rules hold, and what was forgotten stays gone: its identifiers resolve to nothing, its
// OneIDs answer not found and are never reused, no rule names it, and a later record or
// rule carrying one of its identifiers is refused.
//
// Input: a byte per call, then the call's operands. Bytes 0xFA to 0xFD are forget (carved
// out of the other calls' values that no older corpus file uses as a call, so those files
// keep their meaning); any other byte b is call b % 8, with b / 8 choosing among variants.
// An input of odd length runs on an engine that stores mobiles and UnionIDs hashed under a
// key (docs/guarantees.md, "Hashed identifiers"): the calls take raw values, the listings
// show stored forms, and the invariants compare stored forms.
#include <algorithm>
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "cdp/engine.hpp"
#include "fuzz_check.hpp"

namespace {

struct Bytes {
  const uint8_t* p;
  size_t n;
  uint8_t Next() { return n ? (--n, *p++) : 0; }
};

// type, value: 8 mobiles, 6 member numbers, 6 unionids, 4 devices, 3 addresses.
std::pair<std::string, std::string> Ident(uint8_t b) {
  switch (b % 5) {
    case 0: return {"mobile", "1390000000" + std::to_string(b / 5 % 8)};
    case 1: return {"member_no", "M" + std::to_string(b / 5 % 6)};
    case 2: return {"unionid", "oU_" + std::to_string(b / 5 % 6) + "_0000000000"};
    case 3: return {"device_id", "dev-" + std::to_string(b / 5 % 4)};
    default: return {"address", "addr " + std::to_string(b / 5 % 3)};
  }
}

constexpr std::string_view kConfig = R"({"quarantine_after":3,"limits":{"max_ids_per_person":6}})";
constexpr std::string_view kHashedConfig =
    R"({"quarantine_after":3,"limits":{"max_ids_per_person":6},"id_types":{"mobile":{"hashed":true},"unionid":{"hashed":true}}})";
constexpr std::string_view kKey = "the fuzzer's key, 16 bytes or more";

// "type:value" as an engine lists the identifier Ident(b) names: the value itself, or for
// the hashed engine its stored form, learnt once by ingesting each identifier alone into
// a scratch engine of the same config and key and reading the person listing.
std::string Listed(bool hashed, uint8_t b) {
  static const std::vector<std::string> stored = [] {
    std::vector<std::string> out(256);
    auto e = std::move(*cdp::Engine::Open(kHashedConfig, "", kKey));
    for (int i = 0; i < 256; ++i) {
      auto [t, v] = Ident(static_cast<uint8_t>(i));
      out[i] = t + ":" + v;  // what it stays if the engine refuses it (never listed then)
      auto oneid = e->Resolve(t, v);
      if (!oneid.ok()) {
        FUZZ_CHECK(e->IngestNdjson("{\"source\":\"s\",\"ts\":1,\"ids\":{\"" + t + "\":\"" + v + "\"}}\n", false).ok());
        oneid = e->Resolve(t, v);
      }
      if (!oneid.ok()) continue;
      cdpfuzz::Json p(*e->PersonIdentifiers(*oneid, false));
      simdjson::dom::array ids = p.root["identifiers"].get_array().value_unsafe();
      FUZZ_CHECK(ids.size() == 1);
      simdjson::dom::element id = ids.at(0).value_unsafe();
      out[i] = t + ":" + std::string(id["value"].get_string().value_unsafe());
    }
    return out;
  }();
  if (hashed) return stored[b];
  auto [t, v] = Ident(b);
  return t + ":" + v;
}

// What forget took: "type:value" of each identifier as listed (the person's, and the
// removed ones only its records carried: IdentityGraph::FormerIdentifiers), and the OneIDs.
struct Forgotten {
  bool hashed = false;
  std::set<std::string> idents;
  std::vector<uint64_t> oneids;
  bool Has(uint8_t b) const { return idents.count(Listed(hashed, b)) > 0; }
};

// Every listed identifier ("type:value") and the OneID of the one person listing it.
std::map<std::string, uint64_t> Layout(cdp::Engine& e) {
  std::map<std::string, uint64_t> out;
  uint64_t cursor = 0;
  do {
    cdpfuzz::Json page(e.PersonsPage(cursor, 1000, false));
    simdjson::dom::array persons = page.root["persons"].get_array().value_unsafe();
    for (auto p : persons) {
      uint64_t id = p["oneid"].get_uint64().value_unsafe();
      simdjson::dom::array idents = p["identifiers"].get_array().value_unsafe();
      for (auto i : idents)
        FUZZ_CHECK(out.emplace(std::string(i["type"].get_string().value_unsafe()) + ":" +
                                   std::string(i["value"].get_string().value_unsafe()),
                               id)
                       .second);
    }
    cursor = page.U("next");
  } while (cursor != 0);
  return out;
}

void CheckInvariants(cdp::Engine& e, const Forgotten& gone) {
  auto layout = Layout(e);
  std::set<uint64_t> distinct;
  for (auto& [ident, oneid] : layout) {
    auto c = ident.find(':');
    auto r = e.Resolve(ident.substr(0, c), ident.substr(c + 1));
    FUZZ_CHECK(r.ok() && *r == oneid);
    FUZZ_CHECK(!gone.idents.count(ident));
    distinct.insert(oneid);
  }
  for (const std::string& ident : gone.idents) {
    auto c = ident.find(':');
    FUZZ_CHECK(!e.Resolve(ident.substr(0, c), ident.substr(c + 1)).ok());
  }
  for (uint64_t oneid : gone.oneids) {
    FUZZ_CHECK(!distinct.count(oneid));
    FUZZ_CHECK(e.PersonIdentifiers(oneid, false).status().code() == absl::StatusCode::kNotFound);
  }
  cdpfuzz::Json stats(e.StatsJson());
  FUZZ_CHECK(stats.U("persons") == distinct.size());
  cdpfuzz::Json rules(e.RulesJson());
  simdjson::dom::array list = rules.root["rules"].get_array().value_unsafe();
  for (auto r : list) {
    if (r["kind"].get_string().value_unsafe() != "never_link") continue;
    std::string a(r["a"].get_string().value_unsafe()), b(r["b"].get_string().value_unsafe());
    if (layout.count(a) && layout.count(b)) FUZZ_CHECK(layout[a] != layout[b]);
  }
  for (auto r : list) {
    FUZZ_CHECK(!gone.idents.count(std::string(r["a"].get_string().value_unsafe())));
    FUZZ_CHECK(!gone.idents.count(std::string(r["b"].get_string().value_unsafe())));
  }
}

// Forgets the person an identifier names, by that identifier or by the person's OneID
// (by_oneid; when nobody has the identifier, a OneID forgotten before, if any). Exactly
// that person goes; NotFound, changing nothing, when there is no such live person.
void Forget(cdp::Engine& e, Forgotten& gone, std::vector<uint64_t>& rules, uint8_t b, bool by_oneid) {
  const auto [type, value] = Ident(b);
  const auto before = Layout(e);
  const auto live = e.Resolve(type, value);
  std::string request;
  if (by_oneid && (live.ok() || !gone.oneids.empty()))
    request = "{\"oneids\":[" + std::to_string(live.ok() ? *live : gone.oneids.back()) + "]}";
  else
    request = "{\"identifiers\":[{\"type\":\"" + type + "\",\"value\":\"" + value + "\"}]}";
  std::vector<std::string> former;
  if (live.ok())
    for (cdp::NodeId n : e.graph().FormerIdentifiers(e.graph().PersonAnchor(*live))) former.push_back(e.Display(n, false));
  auto r = e.Forget(request);
  if (!live.ok()) {
    FUZZ_CHECK(r.status().code() == absl::StatusCode::kNotFound);
    FUZZ_CHECK(Layout(e) == before);
    return;
  }
  FUZZ_CHECK(r.ok());
  std::map<std::string, uint64_t> rest;
  uint64_t listed = 0;
  for (const auto& [ident, oneid] : before) {
    if (oneid != *live) {
      rest.emplace(ident, oneid);
    } else {
      gone.idents.insert(ident);
      ++listed;
    }
  }
  FUZZ_CHECK(Layout(e) == rest);  // everyone else as they were
  gone.idents.insert(former.begin(), former.end());
  cdpfuzz::Json j(*r);
  simdjson::dom::array persons = j.root["forgotten"].get_array().value_unsafe();
  FUZZ_CHECK(persons.size() == 1);
  simdjson::dom::element p = persons.at(0).value_unsafe();
  FUZZ_CHECK(p["oneid"].get_uint64().value_unsafe() == *live);
  FUZZ_CHECK(p["identifiers"].get_uint64().value_unsafe() == listed);
  gone.oneids.push_back(*live);
  simdjson::dom::array absorbed = p["absorbed"].get_array().value_unsafe();
  for (auto a : absorbed) gone.oneids.push_back(a.get_uint64().value_unsafe());
  // The manual rules that named the person went with it.
  cdpfuzz::Json active(e.RulesJson());
  std::set<uint64_t> kept;
  simdjson::dom::array listed_rules = active.root["rules"].get_array().value_unsafe();
  for (auto x : listed_rules) kept.insert(x["id"].get_uint64().value_unsafe());
  rules.erase(std::remove_if(rules.begin(), rules.end(), [&](uint64_t id) { return !kept.count(id); }), rules.end());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 512) return 0;  // long sequences add time, not coverage
  const bool hashed = size % 2 == 1;
  auto engine = std::move(*(hashed ? cdp::Engine::Open(kHashedConfig, "", kKey) : cdp::Engine::Open(kConfig)));
  cdp::Engine& e = *engine;
  Bytes in{data, size};
  std::vector<uint64_t> rules;
  Forgotten gone;
  gone.hashed = hashed;
  while (in.n) {
    uint8_t op = in.Next();
    if (op >= 0xFA && op <= 0xFD) {
      Forget(e, gone, rules, in.Next(), op & 1);
      CheckInvariants(e, gone);
      continue;
    }
    switch (op % 8) {
      case 0: case 1: case 2: case 3: {  // a batch of one to three records
        std::string batch;
        uint64_t refused = 0;  // records carrying a forgotten identifier
        for (int r = 0, records = 1 + op / 8 % 3; r < records; ++r) {
          std::string ids;
          bool carries = false;
          for (int k = 0, count = 1 + in.Next() % 3; k < count; ++k) {
            const uint8_t b = in.Next();
            auto [t, v] = Ident(b);
            ids += (ids.empty() ? "\"" : ",\"") + t + "\":\"" + v + "\"";
            carries |= gone.Has(b);
          }
          refused += carries;
          // Named, so that every compiler reads the source before the time.
          const uint8_t source = in.Next() % 3, ts = in.Next();
          batch += "{\"source\":\"s" + std::to_string(source) + "\",\"ts\":" + std::to_string(ts) + ",\"ids\":{" +
                   ids + "}}\n";
        }
        auto report = e.IngestNdjson(batch, true);
        FUZZ_CHECK(report.ok());
        cdpfuzz::Json j(*report);
        FUZZ_CHECK(j.U("rejected") == refused);
        break;
      }
      case 4: {
        auto [t, v] = Ident(in.Next());
        (void)e.RemoveIdentifier(t, v);  // NotFound is fine
        break;
      }
      case 5: {  // split one identifier off its person, when it has company
        auto [t, v] = Ident(in.Next());
        auto id = e.Resolve(t, v);
        if (id.ok()) {
          cdpfuzz::Json p(*e.PersonIdentifiers(*id, false));
          if (p.U("size") >= 2) FUZZ_CHECK(e.Split(*id, "[\"" + t + ":" + v + "\"]").ok());
        }
        break;
      }
      case 6: {
        const uint8_t a = in.Next(), b = in.Next();
        auto [ta, va] = Ident(a);
        auto [tb, vb] = Ident(b);
        auto r = e.AddRule(op / 8 % 2 ? "never_link" : "force_link", ta, va, tb, vb, "fuzz");
        if (gone.Has(a) || gone.Has(b)) FUZZ_CHECK(!r.ok());
        if (r.ok()) rules.push_back(*r);
        break;
      }
      default:
        if (!rules.empty() && op / 8 % 2) {
          FUZZ_CHECK(e.RemoveRule(rules.back()).ok());
          rules.pop_back();
        } else {
          (void)e.RemoveSource("s" + std::to_string(in.Next() % 3));
        }
        break;
    }
    CheckInvariants(e, gone);
  }
  return 0;
}
