// Erasure through the engine (Engine::Forget, src/engine_privacy.cpp): a forgotten person
// is gone from every read path and, on a persistent engine, from every file of the
// directory (the test greps them all); tombstones refuse late records and rules; consent
// lifts them; a deferred or interrupted erasure is finished at the next snapshot or open;
// the forget replays from the log; the access export holds everything about a person.
#include <filesystem>
#include <string>
#include <vector>

#include "helpers.hpp"

namespace fs = std::filesystem;
using namespace cdptest;

namespace {

constexpr int64_t kT0 = 1700000000000;

// Values only the forgotten person has: none may survive anywhere.
const std::vector<std::string> kUnique = {
    "13912345678", "zhang.unique@example.com", "oUNIQUEunionid77", "张独一无二", "SKU-UNIQUE-777",
    "note-unique-zz", "M-UNIQUE-42"};

// A person with every kind of fact (identifiers from three channels, attributes, events
// with properties, a manual rule), and others who share a city with it.
std::vector<std::string> PersonBatches() {
  return {
      Join({Rec("crm", kT0, R"("mobile":"13912345678","member_no":"M-UNIQUE-42")",
                R"("attrs":{"name":"张独一无二","city":"上海"})"),
            Rec("crm", kT0 + 1000, R"("mobile":"13800000001","member_no":"M1")",
                R"("attrs":{"name":"李四","city":"上海"})"),
            Rec("pos", kT0 + 2000, R"("mobile":"13800000002")", R"("attrs":{"city":"杭州"})")}),
      Join({Rec("wechat", kT0 + 3000, R"("unionid":"oUNIQUEunionid77","mobile":"13912345678")",
                R"("event":{"type":"order","amount":88.5,"sku":"SKU-UNIQUE-777"})"),
            Rec("tmall", kT0 + 4000, R"("email":"zhang.unique@example.com","member_no":"M-UNIQUE-42")",
                R"("event":{"type":"order","amount":19.9,"sku":"SKU-COMMON"})"),
            Rec("tmall", kT0 + 5000, R"("mobile":"13800000001")",
                R"("event":{"type":"order","amount":10,"sku":"SKU-COMMON"})")}),
  };
}

void Build(cdp::Engine& e) {
  const auto batches = PersonBatches();
  Ingest(e, batches[0]);
  Ingest(e, batches[1]);
  REQUIRE(e.AddRule("never_link", "mobile", "13912345678", "mobile", "13800000002", "note-unique-zz").ok());
  REQUIRE(e.Advance(kT0 + 86400000).ok());
}

std::string Forget(cdp::Engine& e, std::string_view request) {
  auto r = e.Forget(request);
  REQUIRE_MESSAGE(r.ok(), std::string(r.status().message()));
  return *r;
}

// What a host can read about the persons other than the forgotten one.
std::string Others(const cdp::Engine& e) {
  std::string out;
  for (const char* mobile : {"13800000001", "13800000002"}) {
    auto id = e.Resolve("mobile", mobile);
    REQUIRE(id.ok());
    out += *e.PersonJson(*id, false) + *e.PersonTags(*id) + *e.PersonLifecycle(*id);
  }
  return out;
}

}  // namespace

TEST_CASE("forget: the person is gone from every read path; the others are untouched") {
  auto e = OpenEngine(BundledConfig());
  Build(*e);
  const uint64_t id = Resolve(*e, "mobile", "13912345678");
  REQUIRE(id != 0);
  REQUIRE(Resolve(*e, "email", "zhang.unique@example.com") == id);
  const std::string others = Others(*e);
  const uint64_t feed_before = e->feed().next();

  Json r(Forget(*e, R"({"identifiers":[{"type":"email","value":"Zhang.Unique@example.com"}]})"));
  auto forgotten = Arr(r["forgotten"]);
  REQUIRE(forgotten.size() == 1);
  CHECK(U(forgotten.at(0)["oneid"]) == id);
  CHECK(U(forgotten.at(0)["identifiers"]) == 4);
  CHECK(r["snapshot"].is_null());  // in memory: nothing on disk to rewrite

  for (auto [type, value] : std::vector<std::pair<const char*, const char*>>{
           {"mobile", "13912345678"}, {"email", "zhang.unique@example.com"}, {"unionid", "oUNIQUEunionid77"},
           {"member_no", "M-UNIQUE-42"}})
    CHECK(Resolve(*e, type, value) == 0);
  CHECK(absl::IsNotFound(e->PersonJson(id, false).status()));
  CHECK(absl::IsNotFound(e->ExportPerson(id).status()));
  CHECK(Others(*e) == others);
  // The rule named the person's identifier: it went with it.
  CHECK(e->RulesJson().find("note-unique-zz") == std::string::npos);

  // Earlier feed events about the person are erased in place; one event announces it.
  const std::string feed = e->FeedJson(0, 100000);
  for (const std::string& v : kUnique) CHECK_MESSAGE(feed.find(v) == std::string::npos, v);
  CHECK(feed.find(std::to_string(id)) != std::string::npos);  // in person_forgotten only
  auto announced = FeedOf(*e, "person_forgotten");
  REQUIRE(announced.size() == 1);
  CHECK(U(Json(announced[0])["oneid"]) == id);
  CHECK(U(Json(announced[0])["seq"]) >= feed_before);
  CHECK_FALSE(FeedOf(*e, "erased").empty());
  Json page(e->FeedJson(0, 100000));
  uint64_t expect = U(Arr(page["events"]).at(0)["seq"]);
  for (auto ev : Arr(page["events"])) CHECK(U(ev["seq"]) == expect++);  // no holes: cursors stay valid

  Json stats(e->StatsJson());
  CHECK(U(stats["privacy"]["forgotten"]) == 1);
  CHECK(U(stats["privacy"]["tombstones"]) == 4);
  CHECK(stats["privacy"]["erasure_pending"].get_bool().value() == false);
}

TEST_CASE("forget: a record carrying a forgotten identifier is refused whole; so is a rule naming one") {
  auto e = OpenEngine();
  Build(*e);
  const uint64_t id = Resolve(*e, "mobile", "13912345678");
  Forget(*e, "{\"oneids\":[" + std::to_string(id) + "]}");

  Json r(Ingest(*e, Join({Rec("app", kT0 + 9000, R"("device_id":"dev-new-1","mobile":"139 1234 5678")",
                              R"("attrs":{"name":"张独一无二"})"),
                          Rec("app", kT0 + 9000, R"("device_id":"dev-new-2")")})));
  CHECK(U(r["rejected"]) == 1);
  auto err = Arr(r["errors"]).at(0);
  CHECK(U(err["line"]) == 1);
  CHECK(std::string_view(err["field"].get_string().value()) == "ids");
  CHECK(std::string(err["message"].get_string().value()).find("mobile") != std::string::npos);
  CHECK(std::string(simdjson::minify(r.root)).find("13912345678") == std::string::npos);
  CHECK(U(r["ids"]["by_reason"]["forgotten"]) == 1);
  CHECK(Resolve(*e, "device_id", "dev-new-1") == 0);  // the record's other identifier did not land
  CHECK(Resolve(*e, "device_id", "dev-new-2") != 0);  // the rest of the batch did
  CHECK(FeedOf(*e, "identifier_rejected").empty());   // a rejected value would be in the feed

  auto rule = e->AddRule("force_link", "mobile", "13912345678", "mobile", "13800000001", "");
  CHECK(absl::IsFailedPrecondition(rule.status()));
  CHECK(Resolve(*e, "mobile", "13912345678") == 0);
  CHECK(absl::IsInvalidArgument(e->IngestRecord(Rec("app", kT0 + 9500, R"("mobile":"13912345678")")).status()));
}

TEST_CASE("forget: under privacy.tombstones \"consent\", a consent event lets the person back, with a new OneID") {
  auto e = OpenEngine(R"({"privacy":{"tombstones":"consent","consent_event":"opt_in"}})");
  Build(*e);
  const uint64_t id = Resolve(*e, "mobile", "13912345678");
  Forget(*e, "{\"oneids\":[" + std::to_string(id) + "]}");
  // Without the consent event: refused.
  Json refused(Ingest(*e, Rec("app", kT0 + 9000, R"("mobile":"13912345678")", R"("event":{"type":"order"})")));
  CHECK(U(refused["rejected"]) == 1);
  // With it: the tombstone of what the record carries is lifted, in the same batch too.
  Json lifted(Ingest(*e, Join({Rec("app", kT0 + 9100, R"("mobile":"13912345678")", R"("event":{"type":"opt_in"})"),
                               Rec("app", kT0 + 9200, R"("mobile":"13912345678","member_no":"M-UNIQUE-42")")})));
  CHECK(U(lifted["rejected"]) == 1);  // member_no still carries a tombstone
  const uint64_t back = Resolve(*e, "mobile", "13912345678");
  CHECK(back != 0);
  CHECK(back != id);
  CHECK(Resolve(*e, "member_no", "M-UNIQUE-42") == 0);
  CHECK(U(Json(e->StatsJson())["privacy"]["tombstones"]) == 3);
}

TEST_CASE("forget: refused requests change nothing and say why") {
  auto e = OpenEngine();
  Build(*e);
  const std::string before = Fingerprint(*e);
  auto bad = e->Forget(R"({"oneids":[1,)");
  REQUIRE(absl::IsInvalidArgument(bad.status()));
  CAPTURE(bad.status().message());
  CHECK(bad.status().message().find("forget request: line 1, column") != std::string_view::npos);
  CHECK(absl::IsInvalidArgument(e->Forget(R"({"oneids":["x"]})").status()));
  CHECK(absl::IsInvalidArgument(e->Forget(R"({"who":[1]})").status()));
  CHECK(absl::IsInvalidArgument(e->Forget(R"({})").status()));
  CHECK(absl::IsNotFound(e->Forget(R"({"oneids":[12345]})").status()));
  CHECK(absl::IsNotFound(e->Forget(R"({"identifiers":[{"type":"mobile","value":"13700000000"}]})").status()));
  CHECK(Fingerprint(*e) == before);
  // Found and not found together: the found are forgotten, the others listed, masked.
  Json r(Forget(*e, R"({"oneids":[12345],"identifiers":[{"type":"mobile","value":"13700000000"},
                                                       {"type":"mobile","value":"13800000002"}]})"));
  CHECK(Arr(r["forgotten"]).size() == 1);
  const std::string nf = std::string(simdjson::minify(r["not_found"]));
  CHECK(nf == R"([12345,"mobile:137****0000"])");
}

TEST_CASE("forget: a persistent engine keeps no byte of the person in any file of its directory") {
  TempDir parent;
  const std::string dir = parent / "engine";
  const std::string cfg = BundledConfig();
  std::string expected;
  {
    auto e = OpenAt(dir, cfg);
    const auto batches = PersonBatches();
    Ingest(*e, batches[0]);
    REQUIRE(e->Snapshot().ok());  // an older snapshot and log segment hold the values too
    Ingest(*e, batches[1]);
    REQUIRE(e->AddRule("never_link", "mobile", "13912345678", "mobile", "13800000002", "note-unique-zz").ok());
    REQUIRE(e->Snapshot().ok());
    REQUIRE(e->Advance(kT0 + 86400000).ok());
    for (const std::string& v : kUnique) CHECK_MESSAGE(!Holding(dir, v).empty(), v);  // the grep can find them

    Json r(Forget(*e, R"({"identifiers":[{"type":"mobile","value":"13912345678"}]})"));
    CHECK(r["snapshot"]["removed"].get_array().size() >= 3);
    CHECK(r["erasure_pending"].get_bool().value() == false);
    for (const std::string& v : kUnique) CHECK_MESSAGE(Holding(dir, v).empty(), v);
    CHECK(Files(dir, "snap-").size() == 1);
    CHECK_FALSE(Holding(dir, "上海").empty());  // what others share stays
    expected = Fingerprint(*e);
  }
  auto e = OpenAt(dir);
  CHECK(Fingerprint(*e) == expected);
  CHECK(Resolve(*e, "mobile", "13912345678") == 0);
  // The tombstones came back with the snapshot: a late record is still refused.
  Json late(Ingest(*e, Rec("app", kT0 + 90000000, R"("mobile":"13912345678")")));
  CHECK(U(late["rejected"]) == 1);
}

TEST_CASE("forget: a deferred erasure is finished by the next snapshot, or by the next open") {
  TempDir parent;
  const std::string dir = parent / "engine";
  auto mem = OpenEngine();
  {
    auto e = OpenAt(dir);
    for (const std::string& b : PersonBatches()) {
      Ingest(*e, b);
      Ingest(*mem, b);
    }
    REQUIRE(e->Snapshot().ok());
    const std::string request = R"({"identifiers":[{"type":"member_no","value":"M-UNIQUE-42"}],"compact":false})";
    Json r(Forget(*e, request));
    Forget(*mem, request);
    CHECK(r["snapshot"].is_null());
    CHECK(r["erasure_pending"].get_bool().value());
    CHECK(Json(e->StatsJson())["privacy"]["erasure_pending"].get_bool().value());
    CHECK_FALSE(Holding(dir, "13912345678").empty());  // deferred: the old files remain
    // Closed without a snapshot, like a crash after the forget was logged.
  }
  {
    auto e = OpenAt(dir);
    Json stats(e->StatsJson());
    CHECK(stats["privacy"]["erasure_pending"].get_bool().value() == false);
    CHECK(U(stats["durability"]["snapshots"]["taken"]) == 1);
    for (const std::string& v : kUnique) CHECK_MESSAGE(Holding(dir, v).empty(), v);
    // Replay forgot the same person the same way.
    CHECK(Fingerprint(*e) == Fingerprint(*mem));
  }
  // A late record refused is logged as given; the next snapshot removes it.
  {
    auto e = OpenAt(dir);
    Json late(Ingest(*e, Rec("app", kT0 + 90000000, R"("mobile":"13912345678")")));
    CHECK(U(late["rejected"]) == 1);
    CHECK_FALSE(Holding(dir, "13912345678").empty());
    CHECK(Json(e->StatsJson())["privacy"]["erasure_pending"].get_bool().value());
    REQUIRE(e->Snapshot().ok());
    CHECK(Holding(dir, "13912345678").empty());
  }
}

TEST_CASE("forget: removals a crash cut short are finished at open") {
  TempDir parent;
  const std::string dir = parent / "engine", aside = parent / "aside";
  fs::create_directory(aside);
  {
    auto e = OpenAt(dir);
    for (const std::string& b : PersonBatches()) Ingest(*e, b);
    REQUIRE(e->Snapshot().ok());
    Ingest(*e, Rec("pos", kT0 + 7000, R"("mobile":"13800000003")"));
    Forget(*e, R"({"identifiers":[{"type":"mobile","value":"13912345678"}],"compact":false})");
    // Every file the erasure's snapshot will remove, kept aside to be put back as a
    // crash right after that snapshot was written would leave them.
    for (const auto& f : fs::directory_iterator(dir)) {
      const std::string name = f.path().filename().string();
      if (name.rfind("snap-", 0) == 0 || name.rfind("wal-", 0) == 0) fs::copy_file(f.path(), aside + "/" + name);
    }
    REQUIRE(e->Snapshot().ok());
  }
  for (const auto& f : fs::directory_iterator(aside)) {
    const std::string to = dir + "/" + f.path().filename().string();
    if (!fs::exists(to)) fs::copy_file(f.path(), to);
  }
  WriteAll(dir + "/snap-00000000000000ff.cdp.tmp", "13912345678");  // a temp file a crash left
  REQUIRE_FALSE(Holding(dir, "13912345678").empty());
  auto e = OpenAt(dir);
  for (const std::string& v : kUnique) CHECK_MESSAGE(Holding(dir, v).empty(), v);
  CHECK(Resolve(*e, "mobile", "13912345678") == 0);
  CHECK(Resolve(*e, "mobile", "13800000003") != 0);
}

TEST_CASE("export: everything held about a person, unmasked, in one document") {
  auto e = OpenEngine(BundledConfig());
  Build(*e);
  const uint64_t id = Resolve(*e, "unionid", "oUNIQUEunionid77");
  auto text = e->ExportPerson(id);
  REQUIRE(text.ok());
  Json x(*text);
  CHECK(std::string_view(x["format"].get_string().value()) == "cdpcore.person_export");
  CHECK(U(x["oneid"]) == id);
  CHECK(U(x["person"]["oneid"]) == id);
  for (const std::string& v : kUnique) CHECK_MESSAGE(text->find(v) != std::string::npos, v);
  // Evidence: mobile–member_no (crm), unionid–mobile (wechat), email–member_no (tmall).
  CHECK(Arr(x["evidence"]).size() == 3);
  CHECK(Arr(x["rules"]).size() == 1);
  CHECK(Arr(x["events"]).size() == 2);
  bool found = false;
  for (auto ev : Arr(x["events"]))
    if (std::string_view(ev["properties"]["sku"].get_string().value()) == "SKU-UNIQUE-777") {
      found = true;
      CHECK(std::string_view(ev["source"].get_string().value()) == "wechat");
      CHECK(std::string(simdjson::minify(ev["amount"])) == "88.5");
    }
  CHECK(found);
  CHECK(Arr(x["observations"]).size() >= 2);  // name and city from crm
  CHECK(absl::IsNotFound(e->ExportPerson(987654321).status()));
}
