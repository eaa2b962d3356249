// The identity graph: merging, its rules, order independence, explain, unmerge, rules.
#include <algorithm>
#include <random>

#include "helpers.hpp"

using namespace cdptest;

namespace {

constexpr int64_t kT0 = 1700000000000;

// PwC's example: seven touchpoints over a year become one person.
std::vector<std::string> PwcTouchpoints() {
  return {
      Rec("pos", kT0, R"("mobile":"138 0013 8001")", R"("event":{"type":"order","amount":59.90})"),
      Rec("offline_event", kT0 + 30 * kDay, R"("mobile":"+86 13800138001")"),
      Rec("tmall", kT0 + 60 * kDay, R"("mobile":"0086-138-0013-8001","tb_nick":"lily_tb")", R"("event":{"type":"order","amount":199.00})"),
      Rec("wecom", kT0 + 90 * kDay, R"("unionid":"oUnion_lily_000000001","external_userid":"wmEXT001")"),
      Rec("app", kT0 + 150 * kDay, R"("mobile":"13800138001","member_no":"M0001","device_id":"IDFA-LILY")"),
      Rec("official_account", kT0 + 200 * kDay, R"("unionid":"oUnion_lily_000000001","mp_openid":"oMP001")", R"("app":"wx_brand")"),
      Rec("crm", kT0 + 330 * kDay, R"("mobile":"13800138001","unionid":"oUnion_lily_000000001","member_no":"M0001")"),
  };
}

// Person layout of an engine: OneID of each identifier, for comparing two engines.
std::vector<uint64_t> Layout(cdp::Engine& e, const std::vector<std::pair<std::string, std::string>>& ids) {
  std::vector<uint64_t> out;
  for (auto& [t, v] : ids) out.push_back(Resolve(e, t, v));
  return out;
}

}  // namespace

TEST_CASE("PwC scenario: seven touchpoints make one OneID in every order of arrival") {
  auto recs = PwcTouchpoints();
  std::vector<int> perm = {0, 1, 2, 3, 4, 5, 6};
  int orders = 0;
  do {
    auto e = OpenEngine();
    for (int i : perm) Ingest(*e, recs[i] + "\n", false);  // one record at a time
    uint64_t id = Resolve(*e, "mobile", "13800138001");
    REQUIRE(id != 0);
    CHECK(Resolve(*e, "unionid", "oUnion_lily_000000001") == id);
    CHECK(Resolve(*e, "member_no", "M0001") == id);
    CHECK(Resolve(*e, "tb_nick", "lily_tb") == id);
    CHECK(Resolve(*e, "external_userid", "wmEXT001") == id);
    CHECK(Resolve(*e, "mp_openid", "wx_brand/oMP001") == id);
    CHECK(Resolve(*e, "device_id", "idfa-lily") == id);
    Json s(e->StatsJson());
    REQUIRE(U(s["persons"]) == 1);
    ++orders;
  } while (std::next_permutation(perm.begin(), perm.end()));
  CHECK(orders == 5040);
}

TEST_CASE("a batch gives the same persons and OneIDs whatever the order of its lines") {
  // A mixed batch with conflicts, shared devices and junk, where order would matter if
  // the engine linked in arrival order.
  std::vector<std::string> recs = PwcTouchpoints();
  for (int i = 0; i < 40; ++i) {
    std::string m = "1390000" + std::to_string(1000 + i);
    recs.push_back(Rec("pos", kT0 + i * kDay, "\"mobile\":\"" + m + "\",\"device_id\":\"FAMILY-" + std::to_string(i / 3) + "\""));
    recs.push_back(Rec("crm", kT0 + (i % 7) * kDay, "\"mobile\":\"" + m + "\",\"member_no\":\"MX" + std::to_string(i % 25) + "\""));
    recs.push_back(Rec("wx", kT0 + (i % 5) * kDay, "\"unionid\":\"oU_" + std::to_string(i) + "_0000000000\",\"member_no\":\"MX" + std::to_string(i % 25) + "\""));
  }
  std::vector<std::pair<std::string, std::string>> probe = {{"mobile", "13800138001"}};
  for (int i = 0; i < 40; ++i) {
    probe.push_back({"mobile", "1390000" + std::to_string(1000 + i)});
    probe.push_back({"unionid", "oU_" + std::to_string(i) + "_0000000000"});
    probe.push_back({"device_id", "family-" + std::to_string(i / 3)});
  }
  auto base = OpenEngine();
  Ingest(*base, Join(recs));
  auto want = Layout(*base, probe);
  Json want_stats(base->StatsJson());
  std::mt19937_64 rng(42);
  for (int round = 0; round < 20; ++round) {
    std::shuffle(recs.begin(), recs.end(), rng);
    auto e = OpenEngine();
    Ingest(*e, Join(recs));
    CHECK(Layout(*e, probe) == want);
    Json st(e->StatsJson());
    CHECK(U(st["persons"]) == U(want_stats["persons"]));
    CHECK(U(st["conflicts"]) == U(want_stats["conflicts"]));
  }
}

TEST_CASE("re-ingesting the same inputs from scratch yields the same OneIDs") {
  auto a = OpenEngine(), b = OpenEngine();
  for (auto& r : PwcTouchpoints()) Ingest(*a, r + "\n");
  Ingest(*b, Join(PwcTouchpoints()));
  CHECK(Resolve(*a, "mobile", "13800138001") == Resolve(*b, "mobile", "13800138001"));
  auto c = OpenEngine(R"({"oneid_seed":7})");  // the seed keys the derivation
  Ingest(*c, Join(PwcTouchpoints()));
  CHECK(Resolve(*c, "mobile", "13800138001") != Resolve(*a, "mobile", "13800138001"));
}

TEST_CASE("the survivor of a merge keeps its OneID; the absorbed one redirects forever") {
  auto e = OpenEngine();
  Ingest(*e, Rec("pos", kT0, R"("mobile":"13900139001")"));
  Ingest(*e, Rec("wx", kT0 + kDay, R"("unionid":"oUnion_0000000000001")"));
  uint64_t early = Resolve(*e, "mobile", "13900139001");
  uint64_t late = Resolve(*e, "unionid", "oUnion_0000000000001");
  REQUIRE(early != late);
  Json rep(Ingest(*e, Rec("crm", kT0 + 2 * kDay, R"("mobile":"13900139001","unionid":"oUnion_0000000000001")")));
  CHECK(U(rep["merges"]) == 1);
  CHECK(Resolve(*e, "unionid", "oUnion_0000000000001") == early);  // earliest first seen survives
  auto doc = e->PersonIdentifiers(late, false);                     // the absorbed OneID still answers
  REQUIRE(doc.ok());
  Json d(*doc);
  CHECK(U(d["oneid"]) == early);
  CHECK(U(d["requested"]) == late);
  auto merged = FeedOf(*e, "merged");
  REQUIRE(merged.size() == 1);
  CHECK(merged[0].find("\"survivor\":" + std::to_string(early)) != std::string::npos);
  CHECK(merged[0].find("\"source\":\"crm\"") != std::string::npos);
}

TEST_CASE("a union that would give a person two values of a unique type is refused") {
  auto e = OpenEngine();
  Ingest(*e, Join({Rec("crm", kT0, R"("member_no":"M1","mobile":"13900139001")"),
                   Rec("crm", kT0 + 1, R"("member_no":"M2","mobile":"13900139002")")}));
  Json rep(Ingest(*e, Rec("pos", kT0 + 2, R"("mobile":["13900139001","13900139002"])")));
  CHECK(U(rep["conflicts"]) == 1);
  CHECK(Resolve(*e, "mobile", "13900139001") != Resolve(*e, "mobile", "13900139002"));
  auto why = e->Explain("member_no", "M1", "member_no", "M2");
  REQUIRE(why.ok());
  Json j(*why);
  CHECK_FALSE(j["linked"].get_bool().value());
  CHECK(j["kept_apart_by"]["reason"].get_string().value() == "unique_type");
  CHECK(j["kept_apart_by"]["type"].get_string().value() == "member_no");
  auto conflicts = FeedOf(*e, "conflict");
  REQUIRE(conflicts.size() == 1);
  CHECK(conflicts[0].find("\"reason\":\"unique_type\"") != std::string::npos);
}

TEST_CASE("max_per_person above one is a limit, not a uniqueness rule") {
  auto e = OpenEngine(R"({"id_types":{"mobile":{"max_per_person":2}}})");
  Ingest(*e, Join({Rec("a", 1, R"("member_no":"M1","mobile":"13900139001")"),
                   Rec("a", 2, R"("member_no":"M1","mobile":"13900139002")"),
                   Rec("a", 3, R"("member_no":"M1","mobile":"13900139003")")}));
  CHECK(Resolve(*e, "mobile", "13900139002") == Resolve(*e, "member_no", "M1"));
  CHECK(Resolve(*e, "mobile", "13900139003") != Resolve(*e, "member_no", "M1"));
  auto why = e->Explain("mobile", "13900139003", "member_no", "M1");
  Json j(*why);
  CHECK(j["kept_apart_by"]["reason"].get_string().value() == "type_limit");
}

TEST_CASE("a shared family device does not join two persons who each have a mobile") {
  auto e = OpenEngine();
  Ingest(*e, Join({Rec("app", kT0, R"("mobile":"13900139001","device_id":"IPAD-HOME")"),
                   Rec("app", kT0 + kDay, R"("mobile":"13900139002","device_id":"IPAD-HOME")")}));
  uint64_t a = Resolve(*e, "mobile", "13900139001"), b = Resolve(*e, "mobile", "13900139002");
  CHECK(a != b);
  CHECK(Resolve(*e, "device_id", "ipad-home") == a);  // stays with the first person
  Json j(*e->Explain("mobile", "13900139002", "device_id", "IPAD-HOME"));
  CHECK(j["kept_apart_by"]["reason"].get_string().value() == "weak_bridge");
}

TEST_CASE("anonymous device activity joins the member it later logs in as") {
  auto e = OpenEngine();
  Ingest(*e, Join({Rec("app", kT0, R"("device_id":"DEV-9")"),
                   Rec("app", kT0 + kDay, R"("device_id":"DEV-9","member_no":"M9")")}));
  CHECK(Resolve(*e, "device_id", "dev-9") == Resolve(*e, "member_no", "M9"));
}

TEST_CASE("weighted matching: weak identifiers link a new mobile once their weights reach the threshold") {
  auto e = OpenEngine();  // device_id 0.6 + address 0.5 >= threshold 1.0; either alone < 1.0
  Ingest(*e, Rec("hema", kT0, R"("mobile":"13900139001","device_id":"D-1","address":"杭州市西湖区文三路1号")"));
  Json both(Ingest(*e, Rec("hema", kT0 + kDay, R"("mobile":"13900139002","device_id":"D-1","address":"杭州市西湖区文三路1号")")));
  CHECK(Resolve(*e, "mobile", "13900139002") == Resolve(*e, "mobile", "13900139001"));
  Json ex(*e->Explain("mobile", "13900139002", "mobile", "13900139001"));
  CHECK(ex["linked"].get_bool().value());
  CHECK(std::string(simdjson::minify(ex["path"])).find("\"rule\":\"weighted\"") != std::string::npos);
  // The device alone is below the threshold: a new person, and the device stays put.
  Ingest(*e, Rec("hema", kT0 + 2 * kDay, R"("mobile":"13900139003","device_id":"D-1")"));
  CHECK(Resolve(*e, "mobile", "13900139003") != Resolve(*e, "mobile", "13900139001"));
}

namespace {

// A store's phone typed in for n walk-in customers who also give their member numbers
// (W0, W1, ...), a day apart: the phone joins n persons, so it is quarantined.
std::string WalkIns(int n) {
  std::vector<std::string> recs;
  for (int i = 0; i < n; ++i)
    recs.push_back(Rec("pos", kT0 + i * kDay, "\"mobile\":\"13911112222\",\"member_no\":\"W" + std::to_string(i) + "\""));
  return Join(recs);
}

}  // namespace

TEST_CASE("an identifier refused with more than quarantine_after persons is quarantined and detached") {
  auto e = OpenEngine(R"({"quarantine_after":5})");
  Json rep(Ingest(*e, WalkIns(12)));
  CHECK(U(rep["quarantined"]) == 1);
  auto q = FeedOf(*e, "identifier_quarantined");
  REQUIRE(q.size() == 1);  // reported once
  CHECK(q[0].find("mobile:13911112222") != std::string::npos);
  // It stops linking and belongs to no one; every walk-in is their own person.
  CHECK(Resolve(*e, "mobile", "13911112222") == 0);
  std::set<uint64_t> persons;
  for (int i = 0; i < 12; ++i) persons.insert(Resolve(*e, "member_no", "W" + std::to_string(i)));
  CHECK(persons.size() == 12);
  CHECK(persons.count(0) == 0);
  Json more(Ingest(*e, Rec("pos", kT0 + 20 * kDay, R"("mobile":"13911112222","member_no":"W0")")));
  CHECK(U(more["ids"]["by_reason"]["quarantined"]) == 1);
}

TEST_CASE("explain returns the evidence path that joins two identifiers") {
  auto e = OpenEngine();
  Ingest(*e, Join(PwcTouchpoints()));
  auto r = e->Explain("tb_nick", "lily_tb", "external_userid", "wmEXT001");
  REQUIRE(r.ok());
  Json j(*r);
  CHECK(j["linked"].get_bool().value());
  auto path = Arr(j["path"]);
  REQUIRE(path.size() >= 3);
  // The path is connected: each step starts where the previous ended.
  std::string prev = "tb_nick:lily_tb";
  for (auto step : path) {
    CHECK(step["from"].get_string().value() == prev);
    prev = std::string(step["to"].get_string().value());
    CHECK(step["source"].get_string().value().size() > 0);
    CHECK(step["record"].get_uint64().value() > 0);
  }
  CHECK(prev == "external_userid:wmEXT001");
  CHECK(e->Explain("mobile", "13900000000", "tb_nick", "lily_tb").status().code() == absl::StatusCode::kNotFound);
}

TEST_CASE("split restores two persons, and the absorbed person regains its OneID") {
  auto e = OpenEngine();
  Ingest(*e, Rec("pos", kT0, R"("mobile":"13900139001","member_no":"A1")"));
  Ingest(*e, Rec("wx", kT0 + kDay, R"("unionid":"oUnion_B_00000000001","email":"b@x.com")"));
  uint64_t a = Resolve(*e, "mobile", "13900139001"), b = Resolve(*e, "unionid", "oUnion_B_00000000001");
  Ingest(*e, Rec("bad_import", kT0 + 2 * kDay, R"("member_no":"A1","email":"b@x.com")"));  // wrong merge
  REQUIRE(Resolve(*e, "unionid", "oUnion_B_00000000001") == a);
  auto r = e->Split(a, R"(["unionid:oUnion_B_00000000001","email:b@x.com"])");
  REQUIRE_MESSAGE(r.ok(), std::string(r.status().message()));
  CHECK(Resolve(*e, "mobile", "13900139001") == a);                 // the anchor side keeps the OneID
  CHECK(Resolve(*e, "unionid", "oUnion_B_00000000001") == b);       // the other regains its own
  CHECK(Resolve(*e, "email", "b@x.com") == b);
  auto splits = FeedOf(*e, "split");
  REQUIRE(splits.size() == 1);
  // An operator's split is caused by no record: no stale record id or time from the
  // last record ingested.
  CHECK(splits[0].find("\"record\"") == std::string::npos);
  CHECK(splits[0].find("\"ts\"") == std::string::npos);
  // The split holds: the same wrong record again does not re-merge them.
  Ingest(*e, Rec("bad_import", kT0 + 3 * kDay, R"("member_no":"A1","email":"b@x.com")"));
  CHECK(Resolve(*e, "email", "b@x.com") == b);
  Json why(*e->Explain("member_no", "A1", "email", "b@x.com"));
  CHECK(why["kept_apart_by"]["reason"].get_string().value() == "never_link");
  // Bad requests are refused with a reason.
  CHECK(e->Split(a, R"(["mobile:13900139001","member_no:A1"])").status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(e->Split(a, R"(["email:b@x.com"])").status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(e->Split(a, R"(["mobile:13900139001")").status().code() == absl::StatusCode::kInvalidArgument);
}

TEST_CASE("removing all evidence of a source rebuilds the persons it joined") {
  auto e = OpenEngine();
  Ingest(*e, Join({Rec("pos", kT0, R"("mobile":"13900139001")"),
                   Rec("wx", kT0 + kDay, R"("unionid":"oUnion_C_00000000001")"),
                   Rec("bad_import", kT0 + 2 * kDay, R"("mobile":"13900139001","unionid":"oUnion_C_00000000001")"),
                   Rec("bad_import", kT0 + 3 * kDay, R"("member_no":"ONLY-BAD")")}));
  uint64_t a = Resolve(*e, "mobile", "13900139001");
  REQUIRE(Resolve(*e, "unionid", "oUnion_C_00000000001") == a);
  auto r = e->RemoveSource("bad_import");
  REQUIRE(r.ok());
  CHECK(Resolve(*e, "mobile", "13900139001") == a);
  CHECK(Resolve(*e, "unionid", "oUnion_C_00000000001") != a);
  CHECK(Resolve(*e, "unionid", "oUnion_C_00000000001") != 0);
  CHECK(Resolve(*e, "member_no", "ONLY-BAD") == 0);  // carried only by that source
  CHECK(e->RemoveSource("nope").status().code() == absl::StatusCode::kNotFound);
}

TEST_CASE("removing an identifier cuts the person where it was the only bridge") {
  auto e = OpenEngine();
  Ingest(*e, Join({Rec("a", kT0, R"("mobile":"13900139001","member_no":"K1")"),
                   Rec("b", kT0 + kDay, R"("member_no":"K1","unionid":"oUnion_K_00000000001")")}));
  uint64_t a = Resolve(*e, "mobile", "13900139001");
  REQUIRE(Resolve(*e, "unionid", "oUnion_K_00000000001") == a);
  REQUIRE(e->RemoveIdentifier("member_no", "K1").ok());
  CHECK(Resolve(*e, "member_no", "K1") == 0);
  CHECK(Resolve(*e, "mobile", "13900139001") == a);
  CHECK(Resolve(*e, "unionid", "oUnion_K_00000000001") != a);
  CHECK(FeedOf(*e, "identifier_removed").size() == 1);
}

TEST_CASE("force_link and never_link are logged, enforced and reversible") {
  auto e = OpenEngine();
  Ingest(*e, Join({Rec("a", kT0, R"("member_no":"F1")"), Rec("b", kT0 + 1, R"("member_no":"F2")")}));
  // force_link overrides the unique-type rule (an operator's decision).
  auto f = e->AddRule("force_link", "member_no", "F1", "member_no", "F2", "same customer, two cards");
  REQUIRE(f.ok());
  CHECK(Resolve(*e, "member_no", "F1") == Resolve(*e, "member_no", "F2"));
  CHECK(e->AddRule("never_link", "member_no", "F1", "member_no", "F2", "").status().code() ==
        absl::StatusCode::kFailedPrecondition);
  Json rules(e->RulesJson());
  CHECK(Arr(rules["rules"]).size() == 1);
  REQUIRE(e->RemoveRule(*f).ok());
  CHECK(Resolve(*e, "member_no", "F1") != Resolve(*e, "member_no", "F2"));
  // never_link splits a person that holds both, and keeps them apart afterwards.
  Ingest(*e, Rec("c", kT0 + 2, R"("mobile":"13900139001","email":"n@x.com")"));
  auto n = e->AddRule("never_link", "mobile", "13900139001", "email", "n@x.com", "");
  REQUIRE(n.ok());
  CHECK(Resolve(*e, "mobile", "13900139001") != Resolve(*e, "email", "n@x.com"));
  Ingest(*e, Rec("c", kT0 + 3, R"("mobile":"13900139001","email":"n@x.com")"));
  CHECK(Resolve(*e, "mobile", "13900139001") != Resolve(*e, "email", "n@x.com"));
  REQUIRE(e->RemoveRule(*n).ok());  // lifting it lets the evidence join them again
  CHECK(Resolve(*e, "mobile", "13900139001") == Resolve(*e, "email", "n@x.com"));
  CHECK(FeedOf(*e, "rule_added").size() == 2);
  CHECK(FeedOf(*e, "rule_removed").size() == 2);
  CHECK(e->RemoveRule(999).status().code() == absl::StatusCode::kNotFound);
  CHECK(e->AddRule("maybe_link", "member_no", "F1", "member_no", "F2", "").status().code() ==
        absl::StatusCode::kInvalidArgument);
}

TEST_CASE("identifier masking by type") {
  CHECK(cdp::MaskValue(cdp::Normalizer::kCnMobile, "13800138000") == "138****8000");
  CHECK(cdp::MaskValue(cdp::Normalizer::kEmail, "alice@x.com") == "a***@x.com");
  CHECK(cdp::MaskValue(cdp::Normalizer::kTrim, "wx_app/oABCDEFGH") == "wx_app/oA***GH");
  CHECK(cdp::MaskValue(cdp::Normalizer::kTrim, "short") == "***");
}

TEST_CASE("the feed reads from a cursor and can be trimmed") {
  auto e = OpenEngine();
  Ingest(*e, Join(PwcTouchpoints()));
  Json all(e->FeedJson(0, 100000));
  uint64_t next = U(all["next"]);
  REQUIRE(next > 3);
  Json page(e->FeedJson(1, 2));
  CHECK(Arr(page["events"]).size() == 2);
  CHECK(U(page["next"]) == 3);
  CHECK(e->TrimFeed(3).ok());
  Json rest(e->FeedJson(0, 100000));
  CHECK(U(rest["events"].at(0)["seq"]) == 3);
  Json end(e->FeedJson(next, 10));
  CHECK(Arr(end["events"]).size() == 0);
}

TEST_CASE("re-resolving records follows quarantines that came after their batch") {
  auto e = OpenEngine(R"({"quarantine_after":3})");
  // Batch 1: a walk-in whose only identifier is the store's phone lands on the person
  // who first used that phone.
  std::string b1 = Join({Rec("pos", kT0, R"("mobile":"13911112222","member_no":"W0")"),
                         Rec("pos", kT0 + 1, R"("mobile":"13911112222")")});
  auto first = Assign(Ingest(*e, b1));
  CHECK(first[1] == first[0]);
  // Later batches reveal the phone as shared: it is quarantined and detached.
  std::vector<std::string> more;
  for (int i = 1; i < 8; ++i)
    more.push_back(Rec("pos", kT0 + 10 + i, "\"mobile\":\"13911112222\",\"member_no\":\"W" + std::to_string(i) + "\""));
  Ingest(*e, Join(more));
  REQUIRE(Resolve(*e, "mobile", "13911112222") == 0);
  auto now = e->ResolveNdjson(b1);
  REQUIRE(now.ok());
  Json j(*now);
  std::vector<uint64_t> ids;
  for (auto v : Arr(j["oneids"])) ids.push_back(v.get_uint64().value());
  REQUIRE(ids.size() == 2);
  CHECK(ids[0] == Resolve(*e, "member_no", "W0"));
  CHECK(ids[1] == 0);  // its only identifier is quarantined: it belongs to no one now
  // Re-resolving ingests nothing.
  Json st(e->StatsJson());
  CHECK(U(st["records"]["accepted"]) == 9);
}

TEST_CASE("trimming the feed keeps the texts of the events it retains") {
  auto e = OpenEngine();
  Ingest(*e, Rec("pos", 1, R"("mobile":"13800138000","member_no":"M1")"));  // a rejected value
  uint64_t mid = e->feed().next();
  Ingest(*e, Rec("pos", 2, R"("member_no":"null","mobile":"13900139001")"));  // another
  CHECK(e->TrimFeed(mid).ok());
  auto rej = FeedOf(*e, "identifier_rejected");
  REQUIRE(rej.size() == 1);
  CHECK(rej[0].find("member_no:null") != std::string::npos);
}

TEST_CASE("identifiers a rule creates have not been seen until a record carries them") {
  auto e = OpenEngine();
  REQUIRE(e->AddRule("never_link", "member_no", "R1", "member_no", "R2", "").ok());
  uint64_t r1 = Resolve(*e, "member_no", "R1");
  Json p(*e->PersonIdentifiers(r1, false));
  CHECK(p["first_seen"].is_null());
  // A person seen in records stays the survivor over one only a rule has named.
  Ingest(*e, Rec("pos", kT0, R"("mobile":"13900139001")"));
  uint64_t seen = Resolve(*e, "mobile", "13900139001");
  Ingest(*e, Rec("pos", kT0 + 1, R"("mobile":"13900139001","member_no":"R1")"));
  CHECK(Resolve(*e, "member_no", "R1") == seen);
  Json q(*e->PersonIdentifiers(seen, false));
  CHECK(U(q["first_seen"]) == kT0);
}

TEST_CASE("re-resolving records registers no new identifier type or source") {
  auto e = OpenEngine();
  Json before(e->StatsJson());
  REQUIRE(e->ResolveNdjson(Rec("never_seen_source", 1, R"("typo_type":"x","mobile":"13900139001")")).ok());
  Json after(e->StatsJson());
  CHECK(U(after["types"]) == U(before["types"]));
  CHECK(U(after["sources"]) == U(before["sources"]));
}

TEST_CASE("a person at max_ids_per_person refuses more identifiers but is never frozen") {
  auto e = OpenEngine(R"({"limits":{"max_ids_per_person":3}})");
  Ingest(*e, Rec("crm", kT0, R"("member_no":"P1","mobile":"13900139001","email":"p@x.com")"));
  uint64_t p = Resolve(*e, "member_no", "P1");
  Json rep(Ingest(*e, Rec("app", kT0 + 1, R"("member_no":"P1","device_id":"DEV-P")")));
  CHECK(U(rep["conflicts"]) == 1);
  CHECK(Resolve(*e, "device_id", "dev-p") != p);  // the excess identifier stays apart
  Json why(*e->Explain("member_no", "P1", "device_id", "DEV-P"));
  CHECK(why["kept_apart_by"]["reason"].get_string().value() == "person_limit");
  // Not frozen: records carrying its identifiers still land on it.
  Json more(Ingest(*e, Rec("pos", kT0 + 2, R"("mobile":"13900139001")")));
  CHECK(U(more["accepted"]) == 1);
  CHECK(Resolve(*e, "mobile", "13900139001") == p);
  Json person(*e->PersonIdentifiers(p, false));
  CHECK(U(person["size"]) == 3);
  auto bad = cdp::ParseConfig(R"({"limits":{"max_ids_per_person":1}})");
  CHECK_FALSE(bad.ok());
}

TEST_CASE("a rule outlives the removal of its identifiers: seen again, they are still kept apart") {
  // Found by fuzz_api: split (which adds a never_link), remove the only source, then the
  // same identifiers arrive again together.
  auto e = OpenEngine();
  Ingest(*e, Rec("s2", 153, R"("unionid":"oU_5_0000000000","member_no":"M2")"));
  uint64_t p = Resolve(*e, "member_no", "M2");
  REQUIRE(e->Split(p, R"(["unionid:oU_5_0000000000"])").ok());
  REQUIRE(e->RemoveSource("s2").ok());
  CHECK(Resolve(*e, "member_no", "M2") == 0);  // removed with their only source
  Ingest(*e, Rec("s0", 0, R"("unionid":"oU_5_0000000000","member_no":"M2","mobile":"13900000000")"));
  CHECK(Resolve(*e, "member_no", "M2") != 0);
  CHECK(Resolve(*e, "unionid", "oU_5_0000000000") != Resolve(*e, "member_no", "M2"));
}

TEST_CASE("a quarantined identifier that was removed comes back quarantined, by a record or a rule") {
  // Found by fuzz_api: reviving such an identifier gave it a person, so a OneID counted
  // in stats that no listing showed.
  auto e = OpenEngine(R"({"quarantine_after":2})");
  Json rep(Ingest(*e, WalkIns(4)));
  REQUIRE(U(rep["quarantined"]) == 1);
  REQUIRE(e->RemoveIdentifier("mobile", "13911112222").ok());
  auto listed = [&] {
    Json page(e->PersonsPage(0, 1000, false));
    return Arr(page["persons"]).size();
  };
  auto persons = [&] { return U(Json(e->StatsJson())["persons"]); };
  const uint64_t before = persons();
  REQUIRE(listed() == before);

  // A rule naming it is refused, and adds no person (the other end is known already).
  auto rule = e->AddRule("never_link", "member_no", "W0", "mobile", "13911112222", "probe");
  REQUIRE_FALSE(rule.ok());
  CHECK(std::string(rule.status().message()).find("is quarantined") != std::string::npos);
  CHECK(persons() == before);
  CHECK(listed() == before);

  // A record carrying it: the member number lands, the mobile joins no one.
  Json more(Ingest(*e, Rec("pos", kT0 + 9 * kDay, R"("mobile":"13911112222","member_no":"W9")")));
  CHECK(U(more["ids"]["by_reason"]["quarantined"]) == 1);
  CHECK(Resolve(*e, "mobile", "13911112222") == 0);
  CHECK(Resolve(*e, "member_no", "W9") != 0);
  CHECK(persons() == before + 1);
  CHECK(listed() == before + 1);
}
