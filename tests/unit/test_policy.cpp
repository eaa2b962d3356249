// Identifier normalisation, blocklists, money, time and the config parser.
#include "cdp/policy.hpp"
#include "cdp/record.hpp"
#include "helpers.hpp"

using namespace cdp;

namespace {

const EngineConfig& Default() {
  static EngineConfig cfg = *ParseConfig("");
  return cfg;
}

// Normalises under a default type; returns the value or "!reason".
std::string Norm(std::string_view type, std::string_view raw) {
  const EngineConfig& cfg = Default();
  int t = cfg.FindType(type);
  REQUIRE(t >= 0);
  std::string out;
  Rejection r = NormalizeId(cfg.types[t], cfg.global_blocklist, raw, out);
  return r == Rejection::kCount_ ? out : "!" + std::string(RejectionName(r));
}

}  // namespace

TEST_CASE("cn_mobile strips the country prefix and separators and keeps 11 digits") {
  CHECK(Norm("mobile", "+86 138-0013-8001") == "13800138001");
  CHECK(Norm("mobile", "0086 13800138001") == "13800138001");
  CHECK(Norm("mobile", "8613800138001") == "13800138001");
  CHECK(Norm("mobile", " 138 0013 8001 ") == "13800138001");
  CHECK(Norm("mobile", "(138)0013-8001") == "13800138001");
  CHECK(Norm("mobile", "12800138001") == "!invalid");   // second digit must be 3-9
  CHECK(Norm("mobile", "1380013800") == "!invalid");    // 10 digits
  CHECK(Norm("mobile", "+1 415 555 0100") == "!invalid");  // another country
  CHECK(Norm("mobile", "138001380O1") == "!invalid");   // a letter O
}

TEST_CASE("email is trimmed and lower-cased, and must look like an address") {
  CHECK(Norm("email", "  Li.Lei@Example.COM ") == "li.lei@example.com");
  CHECK(Norm("email", "no-at-sign") == "!invalid");
  CHECK(Norm("email", "a@b@c.com") == "!invalid");
  CHECK(Norm("email", "a@localhost") == "!invalid");
}

TEST_CASE("the default blocklist refuses placeholders, repeated digits and the zero UUID") {
  CHECK(Norm("mobile", "13800138000") == "!blocked");
  CHECK(Norm("mobile", "12345678901") == "!invalid");  // 2nd digit 2: fails cn_mobile first
  CHECK(Norm("member_no", "12345678901") == "!blocked");
  CHECK(Norm("member_no", "NULL") == "!blocked");
  CHECK(Norm("member_no", "Unknown") == "!blocked");
  CHECK(Norm("member_no", "undefined") == "!blocked");
  CHECK(Norm("member_no", "anonymous") == "!blocked");
  CHECK(Norm("member_no", "   ") == "!blocked");
  CHECK(Norm("member_no", "0000000") == "!blocked");
  CHECK(Norm("mobile", "13333333333") == "13333333333");  // not all one digit
  CHECK(Norm("member_no", "1111-1111") == "!blocked");
  CHECK(Norm("device_id", "00000000-0000-0000-0000-000000000000") == "!blocked");
  CHECK(Norm("device_id", "ABCD-1234") == "abcd-1234");  // lower normaliser
  CHECK(Norm("member_no", "M0001") == "M0001");
}

TEST_CASE("values over the policy's max_length are rejected as too_long") {
  CHECK(Norm("unionid", std::string(65, 'x') + "y") == "!too_long");
}

TEST_CASE("config: regex normaliser, validation and type-specific blocklist") {
  auto cfg = ParseConfig(R"({"id_types":{"card":{"normalizer":"regex","pattern":"\\s*VIP-(\\d+)\\s*",
     "replace":"$1","validate":"\\d{4,8}","blocklist":{"exact":["9999"]}}}})");
  REQUIRE_MESSAGE(cfg.ok(), std::string(cfg.status().message()));
  const IdPolicy& p = cfg->types[cfg->FindType("card")];
  std::string out;
  CHECK(NormalizeId(p, cfg->global_blocklist, " VIP-12345 ", out) == Rejection::kCount_);
  CHECK(out == "12345");
  CHECK(NormalizeId(p, cfg->global_blocklist, "VIP-12", out) == Rejection::kInvalid);     // validate
  CHECK(NormalizeId(p, cfg->global_blocklist, "12345", out) == Rejection::kInvalid);      // pattern
  CHECK(NormalizeId(p, cfg->global_blocklist, "VIP-9999", out) == Rejection::kBlocked);   // type blocklist
}

TEST_CASE("config: a pattern with a number over 6 digits is refused before std::regex reads it") {
  // libstdc++ would overflow a long reading these (a fuzz finding); 6 digits still pass.
  for (const char* pattern : {"\\\\7777777777777777777d", "a{1,99999999999999999999}", "a{12345678}"}) {
    auto cfg = ParseConfig(std::string(R"({"id_types":{"card":{"validate":")") + pattern + "\"}}}");
    REQUIRE_FALSE(cfg.ok());
    CHECK_MESSAGE(std::string(cfg.status().message()).find("id_types.card.validate") != std::string::npos, pattern);
    CHECK_MESSAGE(std::string(cfg.status().message()).find("over 6 digits") != std::string::npos, pattern);
  }
  CHECK(ParseConfig(R"({"id_types":{"card":{"validate":"\\d{000002,8}(a)\\1"}}})").ok());  // 6 digits pass
}

TEST_CASE("config: a syntax error is reported with line and column") {
  auto cfg = ParseConfig("{\n  \"quarantine_after\": 5,\n  \"matching\": {\"threshold\" 1}\n}");
  REQUIRE_FALSE(cfg.ok());
  std::string msg(cfg.status().message());
  CHECK(msg.find("line 3") != std::string::npos);
  CHECK(msg.find("column 28") != std::string::npos);
  CHECK(msg.find("matching.threshold") != std::string::npos);
}

TEST_CASE("config: semantic errors name the JSON path") {
  auto bad = [](const char* json) {
    auto c = ParseConfig(json);
    REQUIRE_FALSE(c.ok());
    return std::string(c.status().message());
  };
  CHECK(bad(R"({"id_types":{"mobile":{"normalizer":"phone"}}})").find("id_types.mobile.normalizer") != std::string::npos);
  CHECK(bad(R"({"id_types":{"mobile":{"trust":"medium"}}})").find("id_types.mobile.trust") != std::string::npos);
  CHECK(bad(R"({"id_types":{"x":{"validate":"(["}}})").find("id_types.x.validate") != std::string::npos);
  CHECK(bad(R"({"quarantine_afer":3})").find("quarantine_afer: unknown key") != std::string::npos);
  CHECK(bad(R"({"limits":{"max_record_bytes":-1}})").find("limits.max_record_bytes") != std::string::npos);
  CHECK(bad(R"({"id_types":{"bad name":{}}})").find("id_types.bad name") != std::string::npos);
  CHECK(bad(R"([1,2])").find("expected an object") != std::string::npos);
}

TEST_CASE("config: overrides merge into the defaults; null removes a type; base empty starts clean") {
  auto c = ParseConfig(R"({"id_types":{"mobile":{"max_per_person":1},"email":null,"card":{"trust":"weak","weight":0.7}}})");
  REQUIRE(c.ok());
  const IdPolicy& m = c->types[c->FindType("mobile")];
  CHECK(m.max_per_person == 1);
  CHECK(m.normalizer == Normalizer::kCnMobile);  // untouched fields keep the default
  CHECK(c->FindType("email") < 0);
  CHECK(c->types[c->FindType("card")].trust == Trust::kWeak);
  auto e = ParseConfig(R"({"base":"empty","id_types":{"uid":{}}})");
  REQUIRE(e.ok());
  CHECK(e->types.size() == 1);
}

TEST_CASE("yuan become integer fen exactly") {
  CHECK(*YuanToFen("0.29") == 29);
  CHECK(*YuanToFen("199.00") == 19900);
  CHECK(*YuanToFen("199") == 19900);
  CHECK(*YuanToFen("0.1") == 10);
  CHECK(*YuanToFen("1.10000") == 110);
  CHECK(*YuanToFen("1e2") == 10000);
  CHECK(*YuanToFen("12.5E-1") == 125);
  CHECK(*YuanToFen("-3.5") == -350);
  CHECK_FALSE(YuanToFen("1.234").ok());
  CHECK_FALSE(YuanToFen("abc").ok());
  CHECK_FALSE(YuanToFen("1.2.3").ok());
  CHECK_FALSE(YuanToFen("999999999999999999999").ok());
  // Every two-decimal amount up to 100 yuan converts exactly (where doubles would not).
  for (int fen = 0; fen <= 10000; ++fen) {
    std::string s = std::to_string(fen / 100) + "." + (fen % 100 < 10 ? "0" : "") + std::to_string(fen % 100);
    REQUIRE(*YuanToFen(s) == fen);
  }
}

TEST_CASE("ISO-8601 timestamps need an offset") {
  CHECK(*ParseTimestamp("1970-01-01T00:00:00Z") == 0);
  CHECK(*ParseTimestamp("2023-11-14T22:13:20Z") == 1700000000000);
  CHECK(*ParseTimestamp("2023-11-15T06:13:20+08:00") == 1700000000000);
  CHECK(*ParseTimestamp("2023-11-15T06:13:20.123+0800") == 1700000000123);
  CHECK(*ParseTimestamp("2023-11-14 17:13:20-05:00") == 1700000000000);
  CHECK_FALSE(ParseTimestamp("2023-11-14T22:13:20").ok());      // no offset
  CHECK_FALSE(ParseTimestamp("2023-02-29T00:00:00Z").ok());     // not a leap year
  CHECK_FALSE(ParseTimestamp("2023-13-01T00:00:00Z").ok());
  CHECK_FALSE(ParseTimestamp("2023-11-14").ok());
  CHECK(ParseTimestamp("2024-02-29T00:00:00Z").ok());
}
