// Hashed identifier storage ("hashed": true in a type's policy): values are kept as a
// keyed hash and a mask, so matching works while no raw value is held in memory, written
// to the log or snapshots, or shown; the key is the host's, checked per directory.
#include <algorithm>
#include <string>
#include <vector>

#include "helpers.hpp"
#include "keyed_hash.hpp"

using namespace cdptest;

namespace {

constexpr int64_t kT0 = 1700000000000;
constexpr std::string_view kKey = "host key: 0123456789abcdef";
constexpr std::string_view kHashedConfig =
    R"({"id_types":{"mobile":{"hashed":true},"email":{"hashed":true},"openid":{"hashed":true}},
        "unknown_types":{"policy":{"hashed":true}}})";

// The raw values of the hashed types below: none may be found anywhere.
const std::vector<std::string> kRaw = {"13912345678", "13700001111", "zhang@example.com", "oSECRETopenid1",
                                       "LC-SECRET-9"};

std::vector<std::string> Batches() {
  return {Join({Rec("crm", kT0, R"("mobile":"+86 139-1234-5678","member_no":"M1")", R"("attrs":{"city":"上海"})"),
                Rec("tmall", kT0 + 1000, R"("mobile":"13912345678","email":"Zhang@Example.com")"),
                Rec("wechat", kT0 + 2000, R"("openid":"oSECRETopenid1","member_no":"M1")", R"("app":"wx_brand")"),
                Rec("pos", kT0 + 3000, R"("mobile":"13700001111","loyalty_card":"LC-SECRET-9")")}),
          Join({Rec("app", kT0 + 4000, R"("email":"zhang@example.com","device_id":"D-1")",
                    R"("event":{"type":"order","amount":10})"),
                Rec("app", kT0 + 5000, R"("mobile":"12345")")})};  // an invalid mobile: rejected
}

std::unique_ptr<cdp::Engine> OpenKeyed(std::string_view config, const std::string& dir = "",
                                       std::string_view key = kKey) {
  auto e = cdp::Engine::Open(config, dir, key);
  REQUIRE_MESSAGE(e.ok(), std::string(e.status().message()));
  return std::move(*e);
}

std::string Person(const cdp::Engine& e, uint64_t oneid, bool mask) {
  auto p = e.PersonJson(oneid, mask);
  REQUIRE_MESSAGE(p.ok(), std::string(p.status().message()));
  return *p;
}

}  // namespace

TEST_CASE("hashed identifiers: the reused HMAC context gives the one-shot HMAC") {
  cdp::KeyedHasher h(kKey);
  for (std::string_view v : {"", "a", "13912345678", "a much longer value than one SHA-256 block of sixty-four bytes"}) {
    CHECK(h({"x", v}) == cdp::KeyedHash(kKey, {"x", v}));
    CHECK(h({"x", v}) == cdp::KeyedHash(kKey, {"x", v}));  // and again, from the kept state
  }
  cdp::IdPolicy mobile, other;
  mobile.name = "mobile";
  mobile.normalizer = cdp::Normalizer::kCnMobile;
  other.name = "member_no";
  const std::string stored = cdp::HashIdentifier(kKey, mobile, "13912345678");
  CHECK(cdp::IsHashedValue(stored));
  CHECK(stored.substr(cdp::kHashedPrefix) == "139****5678");
  CHECK(cdp::HashIdentifier(h, mobile, "13912345678") == stored);
  // The type's name is hashed too: one value under two types does not correlate.
  CHECK(cdp::HashIdentifier(kKey, other, "13912345678").substr(0, cdp::kHashedPrefix) !=
        stored.substr(0, cdp::kHashedPrefix));
  CHECK(cdp::HashIdentifier("another key of 16+ bytes", mobile, "13912345678") != stored);
}

TEST_CASE("hashed identifiers: records match on the hash; outputs show the mask or the stored form") {
  auto e = OpenKeyed(kHashedConfig);
  const auto batches = Batches();
  Ingest(*e, batches[0]);
  Ingest(*e, batches[1]);
  // Two spellings of one mobile, and an email in two cases, still join one person.
  const uint64_t p = Resolve(*e, "mobile", "13912345678");
  REQUIRE(p != 0);
  CHECK(Resolve(*e, "email", "zhang@example.com") == p);
  CHECK(Resolve(*e, "openid", "wx_brand/oSECRETopenid1") == p);
  CHECK(Resolve(*e, "member_no", "M1") == p);
  CHECK(Resolve(*e, "loyalty_card", "LC-SECRET-9") == Resolve(*e, "mobile", "13700001111"));

  for (bool mask : {true, false}) {
    const std::string doc = Person(*e, p, mask);
    CHECK(doc.find("139****5678") != std::string::npos);
    CHECK(doc.find("z***@example.com") != std::string::npos);
    for (const std::string& raw : kRaw) CHECK_MESSAGE(doc.find(raw) == std::string::npos, raw);
    // A type not hashed is shown as stored unless masked.
    CHECK((doc.find("\"M1\"") != std::string::npos) == !mask);
  }
  // The stored form an unmasked output shows is accepted back as the identifier.
  Json doc(Person(*e, p, false));
  std::string stored;
  for (auto id : Arr(doc["identifiers"]))
    if (std::string_view(id["type"].get_string().value()) == "mobile") stored = std::string(id["value"].get_string().value());
  REQUIRE(cdp::IsHashedValue(stored));
  CHECK(Resolve(*e, "mobile", stored) == p);

  // The rejected mobile reaches the feed masked.
  const auto rejected = FeedOf(*e, "identifier_rejected");
  REQUIRE(!rejected.empty());
  for (const std::string& ev : rejected) CHECK(ev.find("12345") == std::string::npos);
}

TEST_CASE("hashed identifiers: the key must fit the config, and a directory keeps to its key") {
  CHECK(absl::IsInvalidArgument(cdp::Engine::Open(kHashedConfig).status()));
  auto no_key = cdp::Engine::Open(kHashedConfig, "", "");
  CHECK(std::string(no_key.status().message()).find("mobile is stored hashed") != std::string::npos);
  auto unused = cdp::Engine::Open("", "", kKey);
  CHECK(std::string(unused.status().message()).find("stores no identifier type hashed") != std::string::npos);
  auto short_key = cdp::Engine::Open(kHashedConfig, "", "fifteen bytes!!");
  CHECK(std::string(short_key.status().message()).find("at least 16") != std::string::npos);

  TempDir dir;
  const uint64_t p = [&] {
    auto e = OpenKeyed(kHashedConfig, dir.path);
    Ingest(*e, Batches()[0]);
    return Resolve(*e, "mobile", "13912345678");
  }();
  auto other = cdp::Engine::Open("", dir.path, "another key, also long enough");
  REQUIRE(absl::IsInvalidArgument(other.status()));
  CHECK(std::string(other.status().message()).find("not the key") != std::string::npos);
  CHECK(absl::IsInvalidArgument(cdp::Engine::Open("", dir.path).status()));
  auto again = OpenKeyed("", dir.path);
  CHECK(Resolve(*again, "mobile", "+86 13912345678") == p);
}

TEST_CASE("hashed identifiers: no raw value reaches the log or a snapshot, and the log replays") {
  TempDir dir;
  std::string before;
  {
    auto e = OpenKeyed(kHashedConfig, dir.path);
    const auto batches = Batches();
    Ingest(*e, batches[0]);
    REQUIRE(e->IngestRecord(batches[1].substr(0, batches[1].find('\n'))).ok());
    REQUIRE(e->IngestRecord(Rec("app", kT0 + 5000, R"("mobile":"12345")")).status().code() ==
            absl::StatusCode::kOk);
    const uint64_t p = Resolve(*e, "mobile", "13912345678");
    // Every logged write that names identifiers: a rule, a split, a removal.
    REQUIRE(e->AddRule("never_link", "mobile", "13700001111", "email", "zhang@example.com", "n").ok());
    REQUIRE(e->Split(p, R"(["openid:wx_brand/oSECRETopenid1"])").ok());
    REQUIRE(e->RemoveIdentifier("loyalty_card", "LC-SECRET-9").ok());
    before = Fingerprint(*e);
    for (const std::string& raw : kRaw) CHECK_MESSAGE(Holding(dir.path, raw).empty(), raw);
  }
  {
    auto e = OpenKeyed("", dir.path);
    CHECK(Fingerprint(*e) == before);
    REQUIRE(e->Snapshot().ok());
    for (const std::string& raw : kRaw) CHECK_MESSAGE(Holding(dir.path, raw).empty(), raw);
  }
  auto e = OpenKeyed("", dir.path);
  CHECK(Fingerprint(*e) == before);
  // Types not hashed are stored as given: the same directory holds them.
  CHECK(!Holding(dir.path, "M1").empty());
  // Opened from the snapshot, the engine still hashes what it is given, the same way.
  const uint64_t p = Resolve(*e, "mobile", "13912345678");
  Ingest(*e, Rec("pos", kT0 + 9000, R"("mobile":"139-1234-5678","tb_nick":"nick-7")"));
  CHECK(Resolve(*e, "tb_nick", "nick-7") == p);
  CHECK(Holding(dir.path, "13912345678").empty());
}

TEST_CASE("hashed identifiers: forget by raw value, and tombstones refuse the value again") {
  auto e = OpenKeyed(kHashedConfig);
  Ingest(*e, Batches()[0]);
  const uint64_t p = Resolve(*e, "email", "zhang@example.com");
  auto r = e->Forget(R"({"identifiers":[{"type":"mobile","value":"139 1234 5678"}]})");
  REQUIRE_MESSAGE(r.ok(), std::string(r.status().message()));
  CHECK(!e->PersonJson(p, true).ok());
  Json report(Ingest(*e, Rec("crm", kT0 + 9000, R"("mobile":"13912345678","member_no":"M9")")));
  CHECK(U(report["rejected"]) == 1);
  CHECK(e->Resolve("member_no", "M9").status().code() == absl::StatusCode::kNotFound);
}

TEST_CASE("hashed identifiers: every shape of the bundled records replays from the log as it was ingested") {
  // The bundled channels have attributes, events with properties and lists, malformed
  // lines, scoped and unknown types: the logged batch must carry all of it.
  std::string cfg = BundledConfig();
  cfg.insert(1, R"("id_types":{"mobile":{"hashed":true},"email":{"hashed":true},"unionid":{"hashed":true}},)");
  const std::vector<std::string> lines = BundledLines();
  TempDir dir;
  std::string before;
  {
    auto e = OpenKeyed(cfg, dir.path);
    const size_t step = lines.size() / 4 + 1;
    for (size_t at = 0; at < lines.size(); at += step)
      Ingest(*e, Join(std::vector<std::string>(lines.begin() + at, lines.begin() + std::min(lines.size(), at + step))));
    (void)e->IngestRecord(lines.front());  // one more, through the single-record path
    REQUIRE(e->Advance(1735660800000).ok());
    before = Fingerprint(*e);
  }
  auto e = OpenKeyed("", dir.path);
  CHECK(Fingerprint(*e) == before);
  // Values of the data's first record, normalised: a mobile, an email and its mask.
  for (std::string_view raw : {"15640851031", "18538688677", "hdhvarb.54@example.com"})
    CHECK_MESSAGE(Holding(dir.path, raw).empty(), raw);
  CHECK(Resolve(*e, "email", " Hdhvarb.54@Example.COM ") == Resolve(*e, "mobile", "+8615640851031"));
}
