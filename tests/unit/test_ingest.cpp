// NDJSON ingestion: bad lines are reported with line and field, the rest still lands.
#include "helpers.hpp"

using namespace cdptest;

namespace {

struct Err { uint64_t line; std::string field; std::string message; };

std::vector<Err> Errors(const std::string& report) {
  Json j(report);
  std::vector<Err> out;
  for (auto e : Arr(j["errors"]))
    out.push_back({e["line"].get_uint64().value(), std::string(e["field"].get_string().value()),
                   std::string(e["message"].get_string().value())});
  return out;
}

}  // namespace

TEST_CASE("each kind of malformed line is rejected with its line and field; good lines land") {
  auto e = OpenEngine();
  std::string data = Join({
      Rec("pos", 1700000000000, R"("mobile":"13800138001")"),                  // 1 ok
      R"({"source":"pos","ts":1700000000000,"ids":{"mobile":"13900139001"})",   // 2 bad JSON (no closing brace)
      R"({"source":"pos","ids":{"mobile":"13900139002"}})",                     // 3 missing ts
      R"({"source":"pos","ts":1700000000000})",                                 // 4 missing ids
      R"({"source":"pos","ts":true,"ids":{"mobile":"13900139003"}})",           // 5 ts wrong type
      R"({"source":"pos","ts":1,"ids":["13900139004"]})",                       // 6 ids wrong type
      R"({"source":"pos","ts":1,"ids":{"mobile":{"v":1}}})",                    // 7 id value wrong type
      "{\"source\":\"pos\",\"ts\":1,\"ids\":{\"tb_nick\":\"\xff\xfe\"}}",       // 8 invalid UTF-8
      Rec("pos", 1, R"("member_no":")" + std::string(2000, '7') + "\""),        // 9 over max_id_bytes
      Rec("pos", 1, R"("mobile":"13900139005")", R"("event":{"type":"order","amount":"1.999"})"),  // 10 amount
      Rec("pos", 1, R"("mobile":"13900139006")", R"("event":{"amount":3})"),   // 11 event without type
      R"({"source":"pos","ts":"2024-01-01T00:00:00","ids":{"mobile":"13900139007"}})",  // 12 ts without offset
      R"({"source":"pos","ts":1,"ids":{"mobile":"13900139008"}} trailing)",    // 13 trailing text
      "",                                                                       // blank: skipped
      Rec("tmall", 1700000001000, R"("mobile":"+86 139-0013-9009","tb_nick":"tb_x")",
          R"("attrs":{"city":"上海"},"event":{"type":"order","amount":0.29})"),  // 15 ok
  });
  std::string report = Ingest(*e, data);
  Json j(report);
  CHECK(U(j["lines"]) == 14);
  CHECK(U(j["accepted"]) == 2);
  CHECK(U(j["rejected"]) == 12);
  auto errs = Errors(report);
  REQUIRE(errs.size() == 12);
  std::vector<std::pair<uint64_t, std::string>> want = {
      {2, ""}, {3, "ts"}, {4, "ids"}, {5, "ts"}, {6, "ids"}, {7, "ids.mobile"},
      {8, "ids.tb_nick"}, {9, "ids.member_no"}, {10, "event.amount"}, {11, "event.type"},
      {12, "ts"}, {13, ""}};
  for (size_t i = 0; i < want.size(); ++i) {
    CAPTURE(i);
    CHECK(errs[i].line == want[i].first);
    CHECK(errs[i].field == want[i].second);
    CHECK_FALSE(errs[i].message.empty());
  }
  CHECK(errs[6].message.find("UTF-8") != std::string::npos);
  CHECK(errs[7].message.find("over the limit") != std::string::npos);
  CHECK(errs[11].message.find("after the") != std::string::npos);
  // The good lines landed: both mobiles resolve; the rejected lines' identifiers do not.
  CHECK(Resolve(*e, "mobile", "13800138001") != 0);
  CHECK(Resolve(*e, "mobile", "13900139009") != 0);
  CHECK(Resolve(*e, "tb_nick", "tb_x") == Resolve(*e, "mobile", "13900139009"));
  CHECK(Resolve(*e, "mobile", "13900139005") == 0);
  // assign: one entry per line, 0 for rejected and blank lines.
  auto as = Assign(report);
  REQUIRE(as.size() == 15);
  CHECK(as[0] != 0);
  CHECK(as[1] == 0);
  CHECK(as[13] == 0);
  CHECK(as[14] == Resolve(*e, "mobile", "13900139009"));
}

TEST_CASE("rejected identifiers are counted by reason and reported in the feed") {
  auto e = OpenEngine();
  std::string report = Ingest(*e, Join({
      Rec("pos", 1, R"("mobile":["13800138000","null","12"],"member_no":"M1")"),
      Rec("pos", 2, R"("mobile":"13800138000","openid":"o-no-scope")"),
  }));
  Json j(report);
  auto by = j["ids"]["by_reason"];
  CHECK(U(by["blocked"]) == 2);      // 13800138000 twice
  CHECK(U(by["invalid"]) == 2);      // "null" and "12" are not mobiles (normalising comes first)
  CHECK(U(by["missing_scope"]) == 1);
  CHECK(U(j["accepted"]) == 2);      // lines with only junk still land; they link nothing
  auto as = Assign(report);
  CHECK(as[0] != 0);
  CHECK(as[1] == 0);
  auto rej = FeedOf(*e, "identifier_rejected");
  REQUIRE(rej.size() == 4);  // one event per distinct (type, value, reason)
  bool saw = false;
  for (auto& r : rej) saw |= r.find("\"identifier\":\"mobile:13800138000\"") != std::string::npos &&
                             r.find("\"count\":2") != std::string::npos &&
                             r.find("\"ts\":1") != std::string::npos;  // the first carrier's time
  CHECK(saw);
}

TEST_CASE("unknown identifier types are accepted with the default policy and reported") {
  auto e = OpenEngine();
  Json j(Ingest(*e, Join({Rec("pos", 1, R"("mobile":"13900139001","crm_uid":"U-1")"),
                          Rec("pos", 2, R"("crm_uid":"U-1")")})));
  CHECK(U(j["unknown_types"]["crm_uid"]) == 2);
  CHECK(Resolve(*e, "crm_uid", "U-1") == Resolve(*e, "mobile", "13900139001"));
  auto strict = OpenEngine(R"({"unknown_types":{"accept":false}})");
  Json k(Ingest(*strict, Rec("pos", 1, R"("mobile":"13900139001","crm_uid":"U-1")")));
  CHECK(U(k["ids"]["by_reason"]["unknown_type"]) == 1);
}

TEST_CASE("scoped types are namespaced by the record's scope field") {
  auto e = OpenEngine();
  Ingest(*e, Join({Rec("wx", 1, R"("openid":"oSAME","mobile":"13900139001")", R"("app":"wxA")"),
                   Rec("wx", 2, R"("openid":"oSAME","mobile":"13900139002")", R"("app":"wxB")")}));
  // The same openid in two apps is two identifiers: no merge.
  CHECK(Resolve(*e, "openid", "wxA/oSAME") == Resolve(*e, "mobile", "13900139001"));
  CHECK(Resolve(*e, "openid", "wxB/oSAME") == Resolve(*e, "mobile", "13900139002"));
  CHECK(Resolve(*e, "mobile", "13900139001") != Resolve(*e, "mobile", "13900139002"));
}

TEST_CASE("ingesting one record reports its OneID; a malformed one is refused with the field") {
  auto e = OpenEngine();
  auto ok = e->IngestRecord(Rec("pos", 1, R"("mobile":"13900139001")"));
  REQUIRE(ok.ok());
  Json j(*ok);
  CHECK(U(j["oneid"]) == Resolve(*e, "mobile", "13900139001"));
  auto bad = e->IngestRecord(R"({"source":"pos","ts":"yesterday","ids":{"mobile":"13900139002"}})");
  REQUIRE_FALSE(bad.ok());
  CHECK(std::string(bad.status().message()).find("field ts") != std::string::npos);
  CHECK(Resolve(*e, "mobile", "13900139002") == 0);
}

TEST_CASE("a record over max_record_bytes is rejected, not truncated") {
  auto e = OpenEngine(R"({"limits":{"max_record_bytes":100}})");
  Json j(Ingest(*e, Rec("pos", 1, R"("mobile":"13900139001")", R"("attrs":{"note":")" + std::string(200, 'x') + "\"}")));
  CHECK(U(j["rejected"]) == 1);
  CHECK(std::string(j["errors"].at(0)["message"].get_string().value()).find("over the limit") != std::string::npos);
}

TEST_CASE("identifiers over max_ids_per_record are dropped and counted, the record lands") {
  auto e = OpenEngine(R"({"limits":{"max_ids_per_record":2}})");
  Json j(Ingest(*e, Rec("pos", 1, R"("mobile":["13900139001","13900139002","13900139003"])")));
  CHECK(U(j["accepted"]) == 1);
  CHECK(U(j["ids"]["by_reason"]["over_limit"]) == 1);
}

TEST_CASE("one record may be pretty-printed; a raw line break inside a string is still an error") {
  auto e = OpenEngine();
  auto ok = e->IngestRecord("{\n  \"source\": \"pos\",\n  \"ts\": 1,\n  \"ids\": {\"mobile\": \"13900139001\"}\n}\n");
  REQUIRE_MESSAGE(ok.ok(), std::string(ok.status().message()));
  Json j(*ok);
  CHECK(U(j["oneid"]) == Resolve(*e, "mobile", "13900139001"));
  CHECK(U(j["record"]) > 0);
  auto bad = e->IngestRecord("{\"source\":\"pos\",\"ts\":1,\"ids\":{\"member_no\":\"M\n1\"}}");
  REQUIRE_FALSE(bad.ok());
  CHECK(std::string(bad.status().message()).find("field ids.member_no") != std::string::npos);
  CHECK(Resolve(*e, "member_no", "M 1") == 0);
  CHECK(e->IngestRecord("  \n ").status().code() == absl::StatusCode::kInvalidArgument);
}

TEST_CASE("a record giving a key twice is rejected with the key, and the batch goes on") {
  auto e = OpenEngine();
  std::string r = Ingest(*e, Join({R"({"source":"pos","ts":1,"ids":{"mobile":"13910000001"},"attrs":{"city":"上海"},"attrs":{"a":1,"b":2}})",
                                   R"({"source":"pos","ts":1,"ids":{"mobile":"13910000002"},"attrs":{"city":"北京"}})"}));
  Json j(r);
  CHECK(U(j["accepted"]) == 1);
  CHECK(U(j["rejected"]) == 1);
  auto err = Arr(j["errors"]).at(0).value();
  CHECK(U(err["line"]) == 1);
  CHECK(std::string(err["field"].get_string().value()) == "attrs");
  CHECK(std::string(err["message"].get_string().value()).find("twice") != std::string::npos);
}
