// Snapshots of a persistent engine (src/snapshot.hpp, Engine::Snapshot): a reopened engine
// equals one that never snapshotted and goes on the same; an unreadable newest snapshot
// falls back to the one before it plus the log; old files are removed; automatic
// snapshots follow durability.snapshot_log_bytes; bad snapshot bytes are refused.
#include <algorithm>
#include <filesystem>
#include <string>
#include <vector>

#include "helpers.hpp"
#include "snapshot.hpp"

namespace fs = std::filesystem;
using namespace cdptest;

namespace {

constexpr int64_t kJul1 = 1688140800000 - 8 * 3600000;  // 2023-07-01T00:00:00+08:00

std::string Generated(int from, int to) {
  std::string out;
  for (int i = from; i < to; ++i) {
    const int64_t ts = kJul1 - 200 * kDay + static_cast<int64_t>(i) * 3 * 3600000;
    std::string ids = "\"mobile\":\"139" + std::to_string(10000000 + i % 700) + "\"";
    if (i % 3 == 0) ids += ",\"unionid\":\"u" + std::to_string(i % 500) + "\"";
    if (i % 5 == 0) ids += ",\"member_no\":\"M" + std::to_string(i % 300) + "\"";
    std::string extra = "\"attrs\":{\"city\":\"" + std::string(i % 2 ? "上海" : "杭州") + "\"}";
    if (i % 2 == 0) extra += ",\"event\":{\"type\":\"order\",\"amount\":" + std::to_string(50 + i % 400) + "}";
    else if (i % 7 == 1) extra += ",\"event\":{\"type\":\"follow\"}";
    out += Rec(i % 3 == 0 ? "wechat" : "tmall", ts, ids, extra) + "\n";
  }
  return out;
}

// One step of a history of writes, applied to any engine.
using Step = std::function<void(cdp::Engine&)>;

std::vector<Step> History() {
  std::vector<std::string> recs = BundledLines();
  const size_t half = recs.size() / 2;
  auto batch = [&](size_t from, size_t to) {
    std::string b;
    for (size_t i = from; i < to; ++i) b += recs[i] + "\n";
    return b;
  };
  std::vector<Step> steps;
  steps.push_back([b = batch(0, half / 2)](cdp::Engine& e) { Ingest(e, b); });
  steps.push_back([b = Generated(0, 800)](cdp::Engine& e) { Ingest(e, b); });
  steps.push_back([b = batch(half / 2, half)](cdp::Engine& e) { Ingest(e, b + "{not json\n"); });
  steps.push_back([](cdp::Engine& e) { REQUIRE(e.Advance(kJul1).ok()); });
  steps.push_back([](cdp::Engine& e) {
    REQUIRE(e.SaveAudience("buyers", R"({"expr":"tags.recent_buyer"})").ok());
    REQUIRE(e.RecountAudience("buyers").ok());
    REQUIRE(e.AddRule("force_link", "email", "snap@x.com", "mobile", "13910000001", "same person").ok());
    REQUIRE(e.LifecycleApply(R"({"op":"earn","type":"mobile","value":"13910000003","points":500,"reason":"goodwill"})").ok());
    REQUIRE(e.AckIntents(R"({"through":3})").ok());
  });
  steps.push_back([b = Generated(800, 1600)](cdp::Engine& e) { Ingest(e, b); });
  steps.push_back([b = batch(half, recs.size())](cdp::Engine& e) { Ingest(e, b); });
  steps.push_back([](cdp::Engine& e) { REQUIRE(e.Advance(kJul1 + 200 * kDay).ok()); });
  steps.push_back([](cdp::Engine& e) {
    REQUIRE(e.RemoveIdentifier("mobile", "13910000005").ok());
    REQUIRE(e.RecountAudience("buyers").ok());
    REQUIRE(e.TrimFeed(50).ok());
  });
  return steps;
}

}  // namespace

TEST_CASE("snapshot: a reopened engine equals one that never snapshotted, at every point of its history") {
  const std::string cfg = BundledConfig();
  const std::vector<Step> steps = History();
  // For each cut: the writes before it, a snapshot, the writes after it, then reopen.
  for (size_t cut = 0; cut <= steps.size(); cut += 3) {
    CAPTURE(cut);
    TempDir parent;
    const std::string dir = parent / "engine";
    auto mem = OpenEngine(cfg);
    uint64_t logged_after = 0;
    {
      auto e = OpenAt(dir, cfg);
      for (size_t i = 0; i < steps.size(); ++i) {
        if (i == cut) {
          auto r = e->Snapshot();
          REQUIRE_MESSAGE(r.ok(), std::string(r.status().message()));
          Json j(*r);
          CHECK(U(j["seq"]) == U(Json(e->StatsJson())["durability"]["seq"]));
          logged_after = U(j["seq"]);
        }
        steps[i](*e);
        steps[i](*mem);
      }
      if (cut == steps.size()) {
        REQUIRE(e->Snapshot().ok());
        logged_after = U(Json(e->StatsJson())["durability"]["seq"]);
      }
      CHECK(Fingerprint(*e) == Fingerprint(*mem));
      logged_after = U(Json(e->StatsJson())["durability"]["seq"]) - logged_after;
    }
    auto e = OpenAt(dir);
    Json stats(e->StatsJson());
    auto d = stats["durability"];
    CHECK(std::string(d["snapshots"]["loaded"].get_string().value()).rfind("snap-", 0) == 0);
    CHECK(U(d["replayed"]) == logged_after);
    CHECK(Fingerprint(*e) == Fingerprint(*mem));
    // And it goes on the same: records, time, a manual operation.
    const std::string more = Generated(1600, 1700);
    CHECK(Ingest(*e, more) == Ingest(*mem, more));
    CHECK(*e->Advance(kJul1 + 400 * kDay) == *mem->Advance(kJul1 + 400 * kDay));
    CHECK(Fingerprint(*e) == Fingerprint(*mem));
  }
}

TEST_CASE("snapshot: an unreadable newest snapshot falls back to the one before it and a longer replay") {
  const std::string cfg = BundledConfig();
  const std::vector<Step> steps = History();
  TempDir parent;
  const std::string dir = parent / "engine";
  auto mem = OpenEngine(cfg);
  std::string first, second;
  {
    auto e = OpenAt(dir, cfg);
    for (size_t i = 0; i < steps.size(); ++i) {
      steps[i](*e);
      steps[i](*mem);
      if (i == 2) first = std::string(Json(*e->Snapshot())["file"].get_string().value());
      if (i == 5) second = std::string(Json(*e->Snapshot())["file"].get_string().value());
    }
  }
  const std::string want = Fingerprint(*mem);
  std::string listed;
  for (const std::string& f : Files(dir, "snap-")) listed += f + " ";
  REQUIRE(listed == first + " " + second + " ");
  const std::string good = ReadAll(dir + "/" + second);

  SUBCASE("a flipped byte in the body") {
    std::string bad = good;
    bad[bad.size() / 2] ^= 0x20;
    WriteAll(dir + "/" + second, bad);
  }
  SUBCASE("cut short") { WriteAll(dir + "/" + second, good.substr(0, good.size() - 100)); }
  SUBCASE("empty") { WriteAll(dir + "/" + second, ""); }
  SUBCASE("another format version") {
    std::string bad = good;
    bad[8] = 9;
    WriteAll(dir + "/" + second, bad);
  }
  auto e = OpenAt(dir);
  Json stats(e->StatsJson());
  auto s = stats["durability"]["snapshots"];
  CHECK(std::string(s["loaded"].get_string().value()) == first);
  auto skipped = Arr(s["skipped"]);
  REQUIRE(skipped.size() == 1);
  CHECK(std::string(skipped.at(0)["file"].get_string().value()) == second);
  CHECK_FALSE(std::string(skipped.at(0)["reason"].get_string().value()).empty());
  CHECK(Fingerprint(*e) == want);
}

TEST_CASE("snapshot: two are kept, and the log from the older one; older files are removed") {
  TempDir parent;
  const std::string dir = parent / "engine";
  auto e = OpenAt(dir, R"({"durability":{"snapshot_log_bytes":0}})");
  std::vector<uint64_t> seqs;
  for (int round = 0; round < 4; ++round) {
    Ingest(*e, Generated(round * 100, round * 100 + 100));
    Ingest(*e, Generated(round * 100 + 50, round * 100 + 150));
    auto r = e->Snapshot();
    REQUIRE(r.ok());
    Json j(*r);
    seqs.push_back(U(j["seq"]));
    std::vector<std::string> removed;
    for (auto f : Arr(j["removed"])) removed.push_back(std::string(f.get_string().value()));
    // The log stays whole until there is a second snapshot to fall back to; then each
    // snapshot retires the third-newest and the segment before the second-newest.
    CHECK(removed.size() == std::vector<size_t>{0, 1, 2, 2}[round]);
  }
  CHECK(seqs == std::vector<uint64_t>{2, 4, 6, 8});
  std::vector<std::string> snaps = Files(dir, "snap-"), segs = Files(dir, "wal-");
  CHECK(snaps == std::vector<std::string>{"snap-0000000000000006.cdp", "snap-0000000000000008.cdp"});
  CHECK(segs == std::vector<std::string>{"wal-0000000000000006.log", "wal-0000000000000008.log"});
  CHECK(U(Json(e->StatsJson())["durability"]["entries"]) == 2);
  const std::string want = Fingerprint(*e);
  e.reset();
  // Both snapshots unreadable: the log no longer reaches back to the beginning, and
  // opening says so rather than open with half the state.
  WriteAll(dir + "/snap-0000000000000008.cdp", "garbage");
  WriteAll(dir + "/snap-0000000000000006.cdp", "");
  auto bad = cdp::Engine::Open("", dir);
  REQUIRE_FALSE(bad.ok());
  CHECK(absl::IsDataLoss(bad.status()));
  CHECK(std::string(bad.status().message()).find("snap-0000000000000008.cdp") != std::string::npos);
}

TEST_CASE("snapshot: taken by the engine once the log since the last one passes snapshot_log_bytes") {
  TempDir parent;
  const std::string dir = parent / "engine";
  const std::string batch = Generated(0, 100);
  auto mem = OpenEngine();
  {
    // Due after every second batch: one batch's log is under the threshold, two are over.
    const size_t threshold = batch.size() * 3 / 2;
    auto e = OpenAt(dir, "{\"durability\":{\"snapshot_log_bytes\":" + std::to_string(threshold) + "}}");
    for (int i = 0; i < 5; ++i) {
      const std::string b = Generated(i * 100, i * 100 + 100);
      Ingest(*e, b);
      Ingest(*mem, b);
      Json s(e->StatsJson());
      // Due after the second batch, taken at the start of the third write.
      CHECK(U(s["durability"]["snapshots"]["taken"]) == static_cast<uint64_t>(i >= 2 ? (i >= 4 ? 2 : 1) : 0));
    }
    CHECK(Files(dir, "snap-") == std::vector<std::string>{"snap-0000000000000002.cdp", "snap-0000000000000004.cdp"});
  }
  auto e = OpenAt(dir);
  Json s(e->StatsJson());
  CHECK(std::string(s["durability"]["snapshots"]["loaded"].get_string().value()) == "snap-0000000000000004.cdp");
  CHECK(U(s["durability"]["replayed"]) == 1);
  CHECK(Fingerprint(*e) == Fingerprint(*mem));
}

TEST_CASE("snapshot: an in-memory engine has none; bad snapshot bytes are refused, never trusted") {
  auto mem = OpenEngine();
  CHECK(absl::IsUnimplemented(mem->Snapshot().status()));

  // Reader: every failure is DataLoss naming the part, and a bad count allocates nothing.
  std::string bytes;
  {
    cdp::snap::Writer w;
    w.Part("demo");
    w.U64(3);
    std::vector<uint32_t> v{1, 2, 3};
    w.Vec(v);
    w.Str("tail");
    bytes = w.bytes();
  }
  for (size_t cut = 0; cut < bytes.size(); ++cut) {
    cdp::snap::Reader r(std::string_view(bytes).substr(0, cut));
    r.Part("demo");
    r.U64();
    std::vector<uint32_t> v;
    r.Vec(v);
    r.Str();
    CHECK_FALSE(r.ok());
    CHECK(absl::IsDataLoss(r.status()));
  }
  std::string huge = bytes;
  huge[20] = '\xff';  // the vector's count (after the part's 12 bytes and the u64): ~2^63
  huge[27] = '\x7f';
  cdp::snap::Reader r(huge);
  r.Part("demo");
  r.U64();
  std::vector<uint32_t> v;
  CHECK_FALSE(r.Vec(v));
  CHECK(v.empty());
  CHECK(std::string(r.status().message()).find("part demo") != std::string::npos);
}
