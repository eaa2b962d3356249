// Fuzz target: the expression language. The bytes are compiled as expression text and,
// separately, read as a JSON AST. Whatever compiles must round-trip through its canonical
// AST, evaluate to the same value from either form within a small step budget (or run out
// of steps, never hang), render as valid JSON, and keep its value until valid_until.
#include <cstdint>
#include <string>

#include "../unit/fake_subject.hpp"
#include "cdp/expr.hpp"
#include "fuzz_check.hpp"

namespace {

constexpr int64_t kNow = 1710475200000;  // 2024-03-15T12:00:00+08:00

struct World {
  cdptest::FakeNames names{"Asia/Shanghai"};
  cdptest::FakeSubject person{names};
  cdp::Evaluator ev{Limits()};
  simdjson::dom::parser parser;

  static cdp::ExprLimits Limits() {
    cdp::ExprLimits lim;
    lim.max_steps = 20'000;
    return lim;
  }
  World() {
    auto& p = person;
    p.SetAttr("city", "上海").SetAttr("gender", "f").SetAttr("level", cdp::Value::Int(3));
    p.SetAttr("score", cdp::Value::Double(4.5)).SetAttr("spend", cdp::Value::Money(123456));
    p.SetAttr("tags", p.KeepList({p.Keep("vip"), p.Keep("new"), cdp::Value::Int(7)}));
    p.SetIds("mobile", 1).SetSeen(kNow - 400 * cdp::kMsPerDay, kNow - 3 * cdp::kMsPerDay);
    for (int i = 0; i < 60; ++i)
      p.AddEvent(i % 4 ? "order" : "visit", kNow - i * 29 * 3'600'000LL, i % 5 ? 1000 * i : -1,
                 {{"channel", p.Keep(i % 3 ? "tmall" : "jd")}, {"sku", p.Keep("S" + std::to_string(i % 6))},
                  {"qty", cdp::Value::Int(i % 4)}});
  }

  // Evaluates at now; returns the value as JSON ("!" when out of steps).
  std::string Eval(const cdp::Expr& e, int64_t now, int64_t* valid_until) {
    auto r = ev.Eval(e, person, now);
    if (!r.ok()) {
      FUZZ_CHECK(r.status().code() == absl::StatusCode::kResourceExhausted);
      return "!";
    }
    FUZZ_CHECK(r->valid_until > now);
    if (valid_until) *valid_until = r->valid_until;
    std::string out;
    cdp::AppendValueJson(out, r->value);
    simdjson::dom::element doc;
    FUZZ_CHECK(!parser.parse(out).get(doc));
    return out;
  }

  void Check(const cdp::Expr& e) {
    auto again = cdp::Expr::FromAst(e.AstJson(), names, Limits());
    FUZZ_CHECK(again.ok());
    FUZZ_CHECK(again->AstJson() == e.AstJson());
    int64_t vu = 0;
    std::string a = Eval(e, kNow, &vu);
    std::string b = Eval(*again, kNow, nullptr);
    FUZZ_CHECK(a == b);
    if (a != "!" && vu != cdp::kForever && vu - 1 > kNow) {
      std::string later = Eval(e, vu - 1, nullptr);
      FUZZ_CHECK(later == "!" || later == a);
    }
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static World w;
  std::string_view input(reinterpret_cast<const char*>(data), size);
  auto e = cdp::Expr::Compile(input, w.names, World::Limits());
  if (e.ok()) w.Check(*e);
  else FUZZ_CHECK(e.status().code() == absl::StatusCode::kInvalidArgument);
  auto j = cdp::Expr::FromAst(input, w.names, World::Limits());
  if (j.ok()) w.Check(*j);
  else FUZZ_CHECK(j.status().code() == absl::StatusCode::kInvalidArgument);
  return 0;
}
