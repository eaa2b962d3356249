// Fuzz target: random sequences of API calls (ingest, remove identifier, remove source,
// split, manual rules) over a small universe of identifiers, with the graph's invariants
// checked after every call: every identifier a person lists resolves to that person, the
// person count equals the distinct OneIDs, and never_link rules hold.
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
        out[std::string(i["type"].get_string().value_unsafe()) + ":" +
            std::string(i["value"].get_string().value_unsafe())] = id;
    }
    cursor = page.U("next");
  } while (cursor != 0);
  return out;
}

void CheckInvariants(cdp::Engine& e) {
  auto layout = Layout(e);
  std::set<uint64_t> distinct;
  for (auto& [ident, oneid] : layout) {
    auto c = ident.find(':');
    auto r = e.Resolve(ident.substr(0, c), ident.substr(c + 1));
    FUZZ_CHECK(r.ok() && *r == oneid);
    distinct.insert(oneid);
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
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 512) return 0;  // long sequences add time, not coverage
  auto engine = std::move(*cdp::Engine::Open(R"({"quarantine_after":3,"limits":{"max_ids_per_person":6}})"));
  cdp::Engine& e = *engine;
  Bytes in{data, size};
  std::vector<uint64_t> rules;
  while (in.n) {
    uint8_t op = in.Next();
    switch (op % 8) {
      case 0: case 1: case 2: case 3: {  // a batch of one to three records
        std::string batch;
        for (int r = 0, records = 1 + op / 8 % 3; r < records; ++r) {
          std::string ids;
          for (int k = 0, count = 1 + in.Next() % 3; k < count; ++k) {
            auto [t, v] = Ident(in.Next());
            ids += (ids.empty() ? "\"" : ",\"") + t + "\":\"" + v + "\"";
          }
          batch += "{\"source\":\"s" + std::to_string(in.Next() % 3) + "\",\"ts\":" +
                   std::to_string(in.Next()) + ",\"ids\":{" + ids + "}}\n";
        }
        FUZZ_CHECK(e.IngestNdjson(batch, true).ok());
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
        auto [ta, va] = Ident(in.Next());
        auto [tb, vb] = Ident(in.Next());
        auto r = e.AddRule(op / 8 % 2 ? "never_link" : "force_link", ta, va, tb, vb, "fuzz");
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
    CheckInvariants(e);
  }
  return 0;
}
