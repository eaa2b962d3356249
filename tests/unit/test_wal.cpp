// The write-ahead log (src/wal.hpp) and the persistent engine built on it: entries come
// back as written, a torn tail is cut and reported, corruption before valid entries
// refuses to open, the directory is locked and keeps its config, and an engine reopened
// from its log answers every query exactly as before.
#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "helpers.hpp"
#include "util.hpp"
#include "wal.hpp"

namespace fs = std::filesystem;
using cdptest::Json;
using cdptest::Rec;

namespace {

using cdptest::TempDir;
using cdptest::ReadAll;
using cdptest::WriteAll;
using cdptest::Fingerprint;

std::string Segment0(const TempDir& d) { return d / "wal-0000000000000000.log"; }

struct Seen {
  uint16_t kind;
  uint64_t seq;
  std::vector<std::string> fields;
};

// Opens the log in dir, collecting what replay hands over.
absl::StatusOr<std::unique_ptr<cdp::Wal>> OpenLog(const std::string& dir, std::vector<Seen>& seen,
                                                  cdp::WalRecovery& rec, uint64_t from = 0,
                                                  cdp::SyncPolicy sync = cdp::SyncPolicy::kBatch) {
  seen.clear();
  return cdp::Wal::Open(dir, sync, from, [&](const cdp::WalEntry& e) {
    std::vector<std::string_view> f;
    REQUIRE(cdp::SplitWalFields(e.payload, f));
    seen.push_back({e.kind, e.seq, std::vector<std::string>(f.begin(), f.end())});
    return absl::OkStatus();
  }, rec);
}

// A log of n entries: entry k has kind k % 8 + 1 and fields ("entry k", k bytes of 'x').
// Returns each entry's offset in the segment, and the segment's size last.
std::vector<uint64_t> WriteLog(const std::string& dir, int n) {
  std::vector<Seen> seen;
  cdp::WalRecovery rec;
  auto wal = OpenLog(dir, seen, rec);
  REQUIRE(wal.ok());
  std::vector<uint64_t> offsets;
  for (int k = 0; k < n; ++k) {
    offsets.push_back((*wal)->bytes());
    std::string name = "entry " + std::to_string(k), pad(static_cast<size_t>(k), 'x');
    REQUIRE((*wal)->Append(static_cast<uint16_t>(k % 8 + 1), {name, pad}).ok());
  }
  offsets.push_back((*wal)->bytes());
  return offsets;
}

}  // namespace

TEST_CASE("wal: entries come back in order with their kinds, sequence numbers and fields") {
  TempDir d;
  std::vector<Seen> seen;
  cdp::WalRecovery rec;
  const std::string binary("\0\xff\x1a\x7e\xcd\x9e", 6);
  {
    auto wal = OpenLog(d.path, seen, rec);
    REQUIRE(wal.ok());
    CHECK(seen.empty());
    CHECK((*wal)->next_seq() == 0);
    REQUIRE((*wal)->Append(1, {"hello"}).ok());
    REQUIRE((*wal)->Append(7, {}).ok());
    REQUIRE((*wal)->Append(2, {"", binary, cdp::WalU64(0x0102030405060708ull).view()}).ok());
    CHECK((*wal)->next_seq() == 3);
  }
  auto wal = OpenLog(d.path, seen, rec);
  REQUIRE(wal.ok());
  REQUIRE(seen.size() == 3);
  CHECK(rec.replayed == 3);
  CHECK(rec.torn_bytes == 0);
  CHECK(seen[0].kind == 1);
  CHECK(seen[0].seq == 0);
  CHECK(seen[0].fields == std::vector<std::string>{"hello"});
  CHECK(seen[1].kind == 7);
  CHECK(seen[1].fields.empty());
  CHECK(seen[2].seq == 2);
  REQUIRE(seen[2].fields.size() == 3);
  CHECK(seen[2].fields[0].empty());
  CHECK(seen[2].fields[1] == binary);
  uint64_t v = 0;
  CHECK(cdp::WalU64::Parse(seen[2].fields[2], v));
  CHECK(v == 0x0102030405060708ull);
  // Appending after a reopen continues the sequence.
  REQUIRE((*wal)->Append(3, {"after"}).ok());
  wal->reset();
  REQUIRE(OpenLog(d.path, seen, rec).ok());
  REQUIRE(seen.size() == 4);
  CHECK(seen[3].seq == 3);
  CHECK(seen[3].fields == std::vector<std::string>{"after"});
}

TEST_CASE("wal: a tail cut anywhere inside the last entry is truncated and reported") {
  TempDir d;
  const std::vector<uint64_t> off = WriteLog(d.path, 4);
  const std::string whole = ReadAll(Segment0(d));
  REQUIRE(whole.size() == off.back());
  const uint64_t last = off[3];
  for (uint64_t cut = last + 1; cut < off.back(); ++cut) {
    CAPTURE(cut);
    WriteAll(Segment0(d), whole.substr(0, cut));
    std::vector<Seen> seen;
    cdp::WalRecovery rec;
    auto wal = OpenLog(d.path, seen, rec);
    REQUIRE(wal.ok());
    CHECK(seen.size() == 3);
    CHECK(rec.torn_bytes == cut - last);
    CHECK(rec.torn_offset == last);
    CHECK(rec.torn_file == "wal-0000000000000000.log");
    CHECK(rec.torn_reason.find(cut - last < 32 ? "header cut short" : "payload cut short") != std::string::npos);
    CHECK(fs::file_size(Segment0(d)) == last);
    // Appending resumes at the cut, with the torn entry's sequence number.
    REQUIRE((*wal)->Append(9, {"again"}).ok());
    wal->reset();
    REQUIRE(OpenLog(d.path, seen, rec).ok());
    REQUIRE(seen.size() == 4);
    CHECK(seen[3].seq == 3);
    CHECK(seen[3].kind == 9);
    CHECK(rec.torn_bytes == 0);
  }
}

TEST_CASE("wal: garbage or zeroes after the last entry are a torn tail") {
  TempDir d;
  const std::vector<uint64_t> off = WriteLog(d.path, 3);
  const std::string whole = ReadAll(Segment0(d));
  for (const std::string& tail : {std::string(4096, '\0'), std::string("{\"ts\":1}\n garbage"), std::string(1, 'x')}) {
    WriteAll(Segment0(d), whole + tail);
    std::vector<Seen> seen;
    cdp::WalRecovery rec;
    REQUIRE(OpenLog(d.path, seen, rec).ok());
    CHECK(seen.size() == 3);
    CHECK(rec.torn_bytes == tail.size());
    CHECK(rec.torn_offset == off.back());
    CHECK(fs::file_size(Segment0(d)) == off.back());
  }
  // A whole last entry whose checksum fails is indistinguishable from a torn write (the
  // file grew but its data never reached the disk): cut as well.
  std::string bad = whole;
  bad[off[2] + 40] ^= 1;
  WriteAll(Segment0(d), bad);
  std::vector<Seen> seen;
  cdp::WalRecovery rec;
  REQUIRE(OpenLog(d.path, seen, rec).ok());
  CHECK(seen.size() == 2);
  CHECK(rec.torn_reason == "checksum mismatch");
  CHECK(rec.torn_offset == off[2]);
}

TEST_CASE("wal: a corrupt entry followed by valid ones refuses to open and leaves the file alone") {
  TempDir d;
  const std::vector<uint64_t> off = WriteLog(d.path, 5);
  const std::string whole = ReadAll(Segment0(d));
  struct Damage { const char* what; uint64_t at; };
  for (Damage dmg : {Damage{"payload byte", off[1] + 35}, Damage{"magic", off[2]}, Damage{"length", off[2] + 17},
                     Damage{"sequence number", off[3] + 8}}) {
    CAPTURE(dmg.what);
    std::string bad = whole;
    bad[dmg.at] ^= 0x40;
    WriteAll(Segment0(d), bad);
    std::vector<Seen> seen;
    cdp::WalRecovery rec;
    auto wal = OpenLog(d.path, seen, rec);
    REQUIRE_FALSE(wal.ok());
    CHECK(absl::IsDataLoss(wal.status()));
    uint64_t start = 0;  // the damaged entry's offset
    for (uint64_t o : off) if (o <= dmg.at) start = o;
    std::string msg(wal.status().message());
    CHECK(msg.find("corrupt entry at offset " + std::to_string(start)) != std::string::npos);
    CHECK(msg.find("followed by a valid entry") != std::string::npos);
    CHECK(ReadAll(Segment0(d)) == bad);  // nothing truncated
  }
}

TEST_CASE("wal: a bad file header or another format version is refused") {
  TempDir d;
  WriteLog(d.path, 1);
  const std::string whole = ReadAll(Segment0(d));
  std::vector<Seen> seen;
  cdp::WalRecovery rec;

  std::string bad = whole;
  bad[0] = 'X';
  WriteAll(Segment0(d), bad);
  auto wal = OpenLog(d.path, seen, rec);
  REQUIRE_FALSE(wal.ok());
  CHECK(absl::IsDataLoss(wal.status()));
  CHECK(std::string(wal.status().message()).find("not a cdpcore write-ahead log") != std::string::npos);

  // Version 2 with a header checksum that matches: a newer library's log.
  bad = whole;
  bad[8] = 2;
  uint64_t h = XXH3_64bits(bad.data(), 24);
  for (int i = 0; i < 8; ++i) bad[24 + i] = static_cast<char>(h >> (8 * i));
  WriteAll(Segment0(d), bad);
  wal = OpenLog(d.path, seen, rec);
  REQUIRE_FALSE(wal.ok());
  CHECK(absl::IsUnimplemented(wal.status()));
  CHECK(std::string(wal.status().message()).find("format version 2") != std::string::npos);

  WriteAll(Segment0(d), whole.substr(0, 20));
  wal = OpenLog(d.path, seen, rec);
  REQUIRE_FALSE(wal.ok());
  CHECK(absl::IsDataLoss(wal.status()));
}

TEST_CASE("wal: segments continue one another; replay can start at a later entry") {
  TempDir d;
  std::vector<Seen> seen;
  cdp::WalRecovery rec;
  {
    auto wal = OpenLog(d.path, seen, rec);
    REQUIRE(wal.ok());
    REQUIRE((*wal)->Append(1, {"a"}).ok());
    REQUIRE((*wal)->Append(1, {"b"}).ok());
    REQUIRE((*wal)->Rotate().ok());  // where a snapshot at entry 2 would be taken
    REQUIRE((*wal)->Append(1, {"c"}).ok());
  }
  CHECK(fs::exists(d / "wal-0000000000000002.log"));
  auto wal = OpenLog(d.path, seen, rec);
  REQUIRE(wal.ok());
  REQUIRE(seen.size() == 3);
  CHECK(seen[2].fields[0] == "c");
  CHECK((*wal)->next_seq() == 3);
  CHECK((*wal)->bytes() == fs::file_size(Segment0(d)) + fs::file_size(d / "wal-0000000000000002.log"));
  wal->reset();

  // "The state after entries [0, 2)": only entry 2 on is applied, even once the first
  // segment is gone.
  REQUIRE(OpenLog(d.path, seen, rec, 2).ok());
  REQUIRE(seen.size() == 1);
  CHECK(seen[0].seq == 2);
  const std::string first = ReadAll(Segment0(d));
  fs::remove(Segment0(d));
  REQUIRE(OpenLog(d.path, seen, rec, 2).ok());
  CHECK(seen.size() == 1);
  // Without that state, the missing entries are an error, not an empty history.
  auto missing = OpenLog(d.path, seen, rec, 0);
  REQUIRE_FALSE(missing.ok());
  CHECK(absl::IsDataLoss(missing.status()));
  CHECK(std::string(missing.status().message()).find("entries 0 to 1 are missing") != std::string::npos);

  // A torn end of an older segment is corruption: later segments hold acknowledged writes.
  WriteAll(Segment0(d), first.substr(0, first.size() - 3));
  auto torn = OpenLog(d.path, seen, rec, 0);
  REQUIRE_FALSE(torn.ok());
  CHECK(absl::IsDataLoss(torn.status()));
  CHECK(std::string(torn.status().message()).find("later segments follow") != std::string::npos);
}

TEST_CASE("data dir: created with its config, locked while open, and the config must match") {
  TempDir parent;
  const std::string dir = parent / "engine";
  const std::string cfg = R"({"oneid_seed":7})";
  {
    auto d = cdp::DataDir::Open(dir, cfg);
    REQUIRE(d.ok());
    CHECK((*d)->config() == cfg);
    CHECK(ReadAll(dir + "/config.json") == cfg);
    CHECK_FALSE(fs::exists(dir + "/config.json.tmp"));

    auto second = cdp::DataDir::Open(dir, "");
    REQUIRE_FALSE(second.ok());
    CHECK(absl::IsUnavailable(second.status()));
    CHECK(std::string(second.status().message()).find("in use") != std::string::npos);
  }
  {
    auto d = cdp::DataDir::Open(dir + "/", "");  // released on destruction; empty: the stored one
    REQUIRE(d.ok());
    CHECK((*d)->config() == cfg);
  }
  CHECK(cdp::DataDir::Open(dir, cfg).ok());
  auto other = cdp::DataDir::Open(dir, R"({"oneid_seed":8})");
  REQUIRE_FALSE(other.ok());
  CHECK(absl::IsInvalidArgument(other.status()));
  CHECK(std::string(other.status().message()).find("created with another config") != std::string::npos);

  auto orphan = cdp::DataDir::Open(parent / "no/such/parent", "");
  REQUIRE_FALSE(orphan.ok());
  CHECK(absl::IsUnavailable(orphan.status()));

  // A log whose config went missing is not silently given the caller's config.
  std::vector<Seen> seen;
  cdp::WalRecovery rec;
  REQUIRE(OpenLog(dir, seen, rec).ok());
  fs::remove(dir + "/config.json");
  auto lost = cdp::DataDir::Open(dir, "");
  REQUIRE_FALSE(lost.ok());
  CHECK(absl::IsDataLoss(lost.status()));
}

// --- the persistent engine ----------------------------------------------------------------

namespace {

// Every kind of write, including two that change the state although they fail, and two
// refused before changing anything.
void WriteEverything(cdp::Engine& e) {
  cdptest::Ingest(e, cdptest::Join({
      Rec("crm", 1700000000000, R"("mobile":"13917205836","member_no":"M1")", R"("attrs":{"city":"上海"})"),
      Rec("wechat", 1700000100000, R"("unionid":"u1","mobile":"13917205836")",
          R"("event":{"type":"order","amount":99.5}})"),
      Rec("pos", 1700000200000, R"("mobile":"13800001111","device_id":"d1")"),
      "{not json",
      Rec("pos", 1700000300000, R"("mobile":"13800002222","member_no":"M2","email":"a@x.com")")}));
  REQUIRE(e.IngestRecord(Rec("app", 1700000400000, R"("device_id":"d1","unionid":"u2")")).ok());
  CHECK(absl::IsInvalidArgument(e.IngestRecord(R"({"ts":"yesterday","ids":{"mobile":"13900000000"}})").status()));
  auto never = e.AddRule("never_link", "mobile", "13917205836", "member_no", "M9", "kept apart");
  REQUIRE(never.ok());
  CHECK(absl::IsFailedPrecondition(
      e.AddRule("force_link", "mobile", "13917205836", "member_no", "M9", "contradicts").status()));
  REQUIRE(e.AddRule("force_link", "email", "b@x.com", "member_no", "M2", "same person").ok());
  REQUIRE(e.Split(cdptest::Resolve(e, "mobile", "13800002222"), R"(["email:a@x.com"])").ok());
  REQUIRE(e.RemoveIdentifier("device_id", "d1").ok());
  REQUIRE(e.RemoveSource("pos").ok());
  REQUIRE(e.RemoveRule(*never).ok());
  CHECK(absl::IsNotFound(e.RemoveSource("nowhere").status()));
  CHECK(absl::IsInvalidArgument(e.AddRule("maybe_link", "mobile", "13917205836", "member_no", "M9", "").status()));
  REQUIRE(e.TrimFeed(3).ok());
  cdptest::Ingest(e, Rec("crm", 1700000500000, R"("member_no":"M1","email":"c@x.com")"));
}

}  // namespace

TEST_CASE("engine: reopening a directory replays every kind of write to the same state") {
  TempDir parent;
  const std::string dir = parent / "engine";
  const std::string cfg = R"({"quarantine_after":5})";
  std::string before;
  uint64_t entries = 0;
  {
    auto e = cdptest::OpenAt(dir, cfg);
    WriteEverything(*e);
    before = Fingerprint(*e);
    Json stats(e->StatsJson());
    auto d = stats["durability"];
    CHECK(std::string(d["dir"].get_string().value()) == dir);
    CHECK(std::string(d["sync"].get_string().value()) == "batch");
    entries = cdptest::U(d["entries"]);
    CHECK(entries == 12);  // the two calls refused before any change are not logged
    CHECK(cdptest::U(d["replayed"]) == 0);
    CHECK(cdptest::U(d["log_bytes"]) == fs::file_size(dir + "/wal-0000000000000000.log"));
    CHECK(d["failed"].is_null());
    // A trim that drops nothing is not logged.
    REQUIRE(e->TrimFeed(0).ok());
    CHECK(cdptest::U(Json(e->StatsJson())["durability"]["entries"]) == entries);
  }
  // An in-memory engine fed the same calls agrees: the log changes nothing.
  auto mem = cdptest::OpenEngine(cfg);
  WriteEverything(*mem);
  CHECK(Fingerprint(*mem) == before);
  CHECK(Json(mem->StatsJson())["durability"].is_null());

  auto e = cdptest::OpenAt(dir);  // empty config: the stored one
  CHECK(Fingerprint(*e) == before);
  Json stats(e->StatsJson());
  CHECK(cdptest::U(stats["durability"]["replayed"]) == entries);
  CHECK(cdptest::U(stats["durability"]["torn_bytes"]) == 0);
  // And it goes on from there: the same write gives the same answer in both.
  const std::string more = Rec("crm", 1700000600000, R"("member_no":"M2","mobile":"13917205836")");
  CHECK(cdptest::Ingest(*e, more) == cdptest::Ingest(*mem, more));
}

TEST_CASE("engine: a second open of a directory fails; a different config is refused") {
  TempDir parent;
  const std::string dir = parent / "engine";
  auto e = cdptest::OpenAt(dir);
  auto second = cdp::Engine::Open("", dir);
  REQUIRE_FALSE(second.ok());
  CHECK(absl::IsUnavailable(second.status()));
  e.reset();
  auto other = cdp::Engine::Open(R"({"oneid_seed":1})", dir);
  REQUIRE_FALSE(other.ok());
  CHECK(absl::IsInvalidArgument(other.status()));
  CHECK(cdp::Engine::Open("", dir).ok());
}

TEST_CASE("engine: sync none logs the same entries") {
  TempDir parent;
  const std::string dir = parent / "engine";
  const std::string cfg = R"({"durability":{"sync":"none"}})";
  std::string before;
  {
    auto e = cdptest::OpenAt(dir, cfg);
    WriteEverything(*e);
    before = Fingerprint(*e);
    CHECK(std::string(Json(e->StatsJson())["durability"]["sync"].get_string().value()) == "none");
  }
  CHECK(Fingerprint(*cdptest::OpenAt(dir)) == before);
  auto bad = cdp::Engine::Open(R"({"durability":{"sync":"sometimes"}})", parent / "other");
  REQUIRE_FALSE(bad.ok());
  CHECK(std::string(bad.status().message()).find("durability.sync") != std::string::npos);
}

TEST_CASE("engine: when the log cannot be written, the write fails and later writes are refused") {
  TempDir parent;
  const std::string dir = parent / "engine";
  const std::string first = Rec("crm", 1700000000000, R"("mobile":"13917205836")");
  std::string durable;
  {
    auto e = cdptest::OpenAt(dir);
    cdptest::Ingest(*e, first);
    durable = Fingerprint(*e);
    // The file size limit makes the next append fail part-way (EFBIG), as a full disk would.
    const uint64_t size = fs::file_size(dir + "/wal-0000000000000000.log");
    struct rlimit old;
    REQUIRE(::getrlimit(RLIMIT_FSIZE, &old) == 0);
    auto old_handler = ::signal(SIGXFSZ, SIG_IGN);
    struct rlimit small = old;
    small.rlim_cur = size + 40;
    REQUIRE(::setrlimit(RLIMIT_FSIZE, &small) == 0);
    auto r = e->IngestNdjson(Rec("crm", 1700000100000, R"("mobile":"13800001111","member_no":"M1")"), false);
    REQUIRE(::setrlimit(RLIMIT_FSIZE, &old) == 0);
    ::signal(SIGXFSZ, old_handler);
    REQUIRE_FALSE(r.ok());
    CHECK(absl::IsUnavailable(r.status()));
    std::string cause(r.status().message());
    CHECK(cause.find("not durable") != std::string::npos);
    // Applied in memory, so readers see it; every later write gets the original cause.
    CHECK(cdptest::Resolve(*e, "member_no", "M1") != 0);
    auto later = e->RemoveIdentifier("mobile", "13917205836");
    REQUIRE_FALSE(later.ok());
    CHECK(std::string(later.status().message()) == cause);
    CHECK(e->TrimFeed(100).message() == cause);
    CHECK(std::string(Json(e->StatsJson())["durability"]["failed"].get_string().value()) == cause);
  }
  // Reopened, the partial entry is a torn tail, and the state is the acknowledged one.
  auto e = cdptest::OpenAt(dir);
  CHECK(Fingerprint(*e) == durable);
  Json stats(e->StatsJson());
  CHECK(cdptest::U(stats["durability"]["torn_bytes"]) == 40);
  CHECK(cdptest::U(stats["durability"]["replayed"]) == 1);
}
