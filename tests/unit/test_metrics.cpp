// Operating metrics (src/metrics.hpp): the funnel, FAST+ and CLV with propagation value, on
// small populations computed by hand, window edges at local midnight in Asia/Shanghai, the
// members restriction, request errors that name their field, and the funnel against a
// brute-force search on random populations.
#include <algorithm>
#include <fstream>
#include <functional>
#include <map>
#include <random>
#include <set>

#include "cdp/profile.hpp"
#include "helpers.hpp"
#include "metrics.hpp"
#include "util.hpp"

using namespace cdptest;
using cdp::Cat;
using cdp::Engine;

namespace {

constexpr int64_t kFeb1 = kMar1 - 29 * kDay;  // 2024 is a leap year
constexpr int64_t kApr1 = kMar1 + 31 * kDay;

// 13800138000 itself is a well-known placeholder, blocked by the default config.
std::string Mobile(int i) { return "1380013" + std::to_string(8100 + i); }
std::string Ids(int i, std::string_view extra = "") {
  std::string s = "\"mobile\":\"" + Mobile(i) + "\"";
  if (!extra.empty()) s += "," + std::string(extra);
  return s;
}
std::string Event(int person, int64_t ts, std::string_view body) {
  return Rec("app", ts, Ids(person), "\"event\":{" + std::string(body) + "}");
}

uint32_t SlotOf(Engine& e, uint64_t oneid) {
  const cdp::ProfileStore& store = e.profiles();
  for (uint32_t s = 0; s < store.slots(); ++s)
    if (store.AtSlot(s) && store.AtSlot(s)->oneid == oneid) return s;
  FAIL("no profile for OneID " << oneid);
  return 0;
}

uint32_t SlotOfPerson(Engine& e, int i) { return SlotOf(e, Resolve(e, "mobile", Mobile(i))); }

absl::StatusOr<std::string> RunMetric(Engine& e, std::string_view request, const Roaring* members = nullptr,
                                      bool with_config = true, const cdp::ExprLimits* lim = nullptr) {
  cdp::ProfileStore& store = e.profiles();
  // What the tag engine will do, minus the tags: the person's profile as a Subject.
  auto with_subject = [&](uint32_t slot, absl::FunctionRef<void(const cdp::Subject&)> f) {
    const cdp::Profile* p = store.AtSlot(slot);
    REQUIRE(p != nullptr);
    f(cdp::ProfileView(store, p, p->oneid));
  };
  std::function<uint64_t(uint32_t, std::string_view)> resolve;
  if (with_config)
    resolve = [&](uint32_t type, std::string_view value) { return Resolve(e, e.config().types[type].name, value); };
  cdp::metrics::Population pop{store, members, with_subject, resolve};
  return cdp::metrics::Run(pop, request, store, lim ? *lim : e.expr_limits());
}

std::string Metric(Engine& e, std::string_view request, const Roaring* members = nullptr, bool with_config = true) {
  auto r = RunMetric(e, request, members, with_config);
  REQUIRE_MESSAGE(r.ok(), std::string(r.status().message()));
  return *r;
}

std::string MetricError(Engine& e, std::string_view request) {
  auto r = RunMetric(e, request);
  REQUIRE_MESSAGE(!r.ok(), *r);
  CHECK(r.status().code() == absl::StatusCode::kInvalidArgument);
  return std::string(r.status().message());
}

std::vector<uint64_t> StepCounts(simdjson::dom::element steps) {
  std::vector<uint64_t> out;
  for (auto s : Arr(steps)) out.push_back(U(s["persons"]));
  return out;
}

// --- funnel -----------------------------------------------------------------------------

// Seven persons; person 7 has no funnel event. Channels are on the exposures.
std::unique_ptr<Engine> FunnelEngine() {
  auto e = OpenEngine();
  auto exp = [](std::string_view ch) { return "\"type\":\"exposure\",\"channel\":\"" + std::string(ch) + "\""; };
  Ingest(*e, Join({
      // 1: the whole funnel in three days.
      Event(1, kMar1 + 10 * kHour, exp("wechat")), Event(1, kMar1 + 11 * kHour, "\"type\":\"click\""),
      Event(1, kMar1 + kDay + 9 * kHour, "\"type\":\"register\""), Event(1, kMar1 + 2 * kDay + 12 * kHour, "\"type\":\"pay\""),
      // 2: registers 15 days after the exposure.
      Event(2, kMar1 + 4 * kDay, exp("wechat")), Event(2, kMar1 + 5 * kDay, "\"type\":\"click\""),
      Event(2, kMar1 + 19 * kDay, "\"type\":\"register\""),
      // 3: pays without clicking or registering.
      Event(3, kMar1 + 9 * kDay, exp("douyin")), Event(3, kMar1 + 10 * kDay, "\"type\":\"pay\""),
      // 4: clicked before the exposure: order matters.
      Event(4, kMar1 + 1 * kDay, "\"type\":\"click\""), Event(4, kMar1 + 2 * kDay, exp("douyin")),
      // 5: the edges. The last instant of Feb 29 and the first of Apr 1 are out; the last
      // second of Mar 31 is in, so its channel, not baidu, is the person's.
      Event(5, kMar1 - 1, exp("baidu")), Event(5, kApr1 - 1000, exp("tmall")), Event(5, kApr1, "\"type\":\"click\""),
      // 6: a second exposure starts the only chain that fits in 7 days.
      Event(6, kMar1, exp("wechat")), Event(6, kMar1 + 9 * kDay, exp("douyin")),
      Event(6, kMar1 + 11 * kDay, "\"type\":\"click\""),
      Event(7, kMar1 + 3 * kDay, "\"type\":\"order\",\"amount\":10"),
  }));
  return e;
}

constexpr std::string_view kFunnel =
    R"({"metric":"funnel","steps":["exposure","click","register","pay"],"from":"2024-03-01","to":"2024-03-31")";

}  // namespace

TEST_CASE("metrics funnel: counts and rates per step, in order, inside the local-day window") {
  auto e = FunnelEngine();
  std::string out = Metric(*e, std::string(kFunnel) + "}");
  CHECK(out ==
        R"({"metric":"funnel","from":"2024-03-01","to":"2024-03-31","within_days":null,"persons":7,"steps":[)"
        R"({"event":"exposure","persons":6,"from_previous":null,"from_first":1},)"
        R"({"event":"click","persons":3,"from_previous":0.5,"from_first":0.5},)"
        R"({"event":"register","persons":2,"from_previous":0.6667,"from_first":0.3333},)"
        R"({"event":"pay","persons":1,"from_previous":0.5,"from_first":0.1667}],"by":null})");
}

TEST_CASE("metrics funnel: within_days limits the time from the first step; a later first event may fit") {
  auto e = FunnelEngine();
  Json j(Metric(*e, std::string(kFunnel) + R"(,"within_days":7})"));
  CHECK(U(j["within_days"]) == 7);
  // Person 2 registers 15 days after the exposure; person 6 clicks 11 days after the first
  // exposure but 2 after the second.
  CHECK(StepCounts(j["steps"]) == std::vector<uint64_t>{6, 3, 1, 1});
  Json one(Metric(*e, std::string(kFunnel) + R"(,"within_days":1})"));
  // Within 24 h: person 2's click comes exactly 24 h after its exposure (out), person 1
  // registers 23 h after its exposure but pays 50 h after it.
  CHECK(StepCounts(one["steps"]) == std::vector<uint64_t>{6, 1, 1, 0});
}

TEST_CASE("metrics funnel: by the property of the first step-1 event, top values and the rest") {
  auto e = FunnelEngine();
  Json j(Metric(*e, std::string(kFunnel) + R"(,"by":"channel"})"));
  auto by = j["by"];
  CHECK(std::string_view(by["prop"].get_string().value()) == "channel");
  CHECK(U(by["values"]) == 3);
  std::vector<std::pair<std::string, std::vector<uint64_t>>> got;
  for (auto g : Arr(by["groups"]))
    got.emplace_back(simdjson::minify(g["value"].value()), StepCounts(g["steps"].value()));
  // Ranked by step-1 persons, then by value; person 6's first exposure says wechat.
  CHECK(got == std::vector<std::pair<std::string, std::vector<uint64_t>>>{
                   {R"("wechat")", {3, 3, 2, 1}}, {R"("douyin")", {2, 0, 0, 0}}, {R"("tmall")", {1, 0, 0, 0}}});
  CHECK(by["other"].is_null());
  std::string text = Metric(*e, std::string(kFunnel) + R"(,"by":"channel"})");
  CHECK(text.find(R"({"value":"douyin","steps":[{"persons":2,"from_previous":null,"from_first":1},)"
                  R"({"persons":0,"from_previous":0,"from_first":0},{"persons":0,"from_previous":null,"from_first":0},)")
        != std::string::npos);

  Json top(Metric(*e, std::string(kFunnel) + R"(,"by":"channel","top":1})"));
  CHECK(Arr(top["by"]["groups"]).size() == 1);
  CHECK(U(top["by"]["other"]["values"]) == 2);
  CHECK(StepCounts(top["by"]["other"]["steps"].value()) == std::vector<uint64_t>{3, 0, 0, 0});

  // A person whose first exposure has no channel is grouped under null.
  Ingest(*e, Event(8, kMar1 + kDay, "\"type\":\"exposure\""));
  Json nul(Metric(*e, std::string(kFunnel) + R"(,"by":"channel"})"));
  CHECK(simdjson::minify(Arr(nul["by"]["groups"]).at(3).value()["value"].value()) == "null");
}

TEST_CASE("metrics funnel: members restrict the population") {
  auto e = FunnelEngine();
  Roaring members;
  members.add(SlotOfPerson(*e, 1));
  members.add(SlotOfPerson(*e, 3));
  members.add(1u << 30);  // past the store: skipped
  Json j(Metric(*e, std::string(kFunnel) + "}", &members));
  CHECK(U(j["persons"]) == 2);
  CHECK(StepCounts(j["steps"]) == std::vector<uint64_t>{2, 1, 1, 1});
  Roaring none;
  Json k(Metric(*e, std::string(kFunnel) + "}", &none));
  CHECK(U(k["persons"]) == 0);
  CHECK(StepCounts(k["steps"]) == std::vector<uint64_t>{0, 0, 0, 0});
  CHECK(simdjson::minify(Arr(k["steps"]).at(1).value()["from_previous"].value()) == "null");
}

TEST_CASE("metrics funnel: a repeated step needs a distinct event") {
  auto e = OpenEngine();
  Ingest(*e, Join({Event(1, kMar1 + kDay, "\"type\":\"order\""), Event(2, kMar1 + kDay, "\"type\":\"order\""),
                   Event(2, kMar1 + kDay + 1, "\"type\":\"order\"")}));
  Json j(Metric(*e, R"({"metric":"funnel","steps":["order","order"],"from":"2024-03-02","to":"2024-03-02"})"));
  CHECK(StepCounts(j["steps"]) == std::vector<uint64_t>{2, 1});
}

namespace {

struct Ev {
  int type;  // 0..2: a, b, c
  int64_t ts;
  int ch;    // 0: none, 1: x, 2: y
};

const char* const kTypes[] = {"a", "b", "c"};

// The steps a person reaches, by trying every assignment of distinct events to steps.
int BruteDepth(const std::vector<Ev>& evs, const std::vector<int>& steps, int64_t from, int64_t to, int64_t within) {
  int best = 0;
  std::vector<bool> used(evs.size(), false);
  std::function<void(size_t, int64_t, int64_t)> go = [&](size_t j, int64_t prev, int64_t start) {
    best = std::max(best, static_cast<int>(j));
    if (j == steps.size()) return;
    for (size_t i = 0; i < evs.size(); ++i) {
      const Ev& x = evs[i];
      if (used[i] || x.type != steps[j] || x.ts < from || x.ts >= to) continue;
      if (j > 0 && (x.ts < prev || (within && x.ts - start >= within))) continue;
      used[i] = true;
      go(j + 1, x.ts, j == 0 ? x.ts : start);
      used[i] = false;
    }
  };
  go(0, 0, 0);
  return best;
}

}  // namespace

TEST_CASE("metrics funnel: property: equals a brute-force search on random populations") {
  std::mt19937_64 rng(20240301);
  const int64_t from = kMar1, to = kMar1 + 3 * kDay;  // 2024-03-01 .. 2024-03-03
  const int64_t edges[] = {from - 1, from, to - 1, to};
  int checked = 0, deep = 0, cut_by_time = 0, grouped_null = 0;
  for (int round = 0; round < 20; ++round) {
    auto e = OpenEngine();
    const int n = 30;
    std::vector<std::vector<Ev>> people(n);
    std::vector<std::string> lines;
    for (int p = 0; p < n; ++p) {
      lines.push_back(Rec("crm", from - 10 * kDay, Ids(p), R"("attrs":{"city":"上海"})"));
      int count = static_cast<int>(rng() % 8);
      std::set<std::pair<int, int64_t>> taken;  // distinct (type, time): "first" is unambiguous
      while (static_cast<int>(people[p].size()) < count) {
        Ev x{static_cast<int>(rng() % 3), 0, static_cast<int>(rng() % 3)};
        // Whole hours across the window and a day either side, so different types often tie.
        x.ts = rng() % 5 == 0 ? edges[rng() % 4] : from - kDay + static_cast<int64_t>(rng() % 120) * kHour;
        if (!taken.insert({x.type, x.ts}).second) continue;
        people[p].push_back(x);
        std::string body = std::string("\"type\":\"") + kTypes[x.type] + "\"";
        if (x.ch) body += std::string(",\"ch\":\"") + (x.ch == 1 ? "x" : "y") + "\"";
        lines.push_back(Event(p, x.ts, body));
      }
    }
    std::shuffle(lines.begin(), lines.end(), rng);
    Ingest(*e, Join(lines));
    std::vector<uint32_t> slot(n);
    for (int p = 0; p < n; ++p) slot[p] = SlotOfPerson(*e, p);

    for (int q = 0; q < 6; ++q) {
      std::vector<int> steps(1 + rng() % 4);
      for (int& s : steps) s = static_cast<int>(rng() % 3);
      const int within_days = static_cast<int>(rng() % 3);  // 0: none
      const bool restrict = rng() % 3 == 0;
      Roaring members;
      std::vector<bool> in(n, true);
      if (restrict)
        for (int p = 0; p < n; ++p)
          if ((in[p] = rng() % 2 == 0)) members.add(slot[p]);

      std::string req = R"({"metric":"funnel","from":"2024-03-01","to":"2024-03-03","by":"ch","steps":[)";
      for (size_t s = 0; s < steps.size(); ++s) req += std::string(s ? "," : "") + "\"" + kTypes[steps[s]] + "\"";
      req += "]";
      if (within_days) req += ",\"within_days\":" + std::to_string(within_days);
      req += "}";

      std::vector<uint64_t> want(steps.size(), 0);
      std::map<std::string, std::vector<uint64_t>> want_groups;
      for (int p = 0; p < n; ++p) {
        if (!in[p]) continue;
        int d = BruteDepth(people[p], steps, from, to, int64_t{within_days} * kDay);
        if (d == 0) continue;
        deep += d >= 3;
        cut_by_time += d < BruteDepth(people[p], steps, from, to, 0);
        const Ev* first = nullptr;
        for (const Ev& x : people[p])
          if (x.type == steps[0] && x.ts >= from && x.ts < to && (!first || x.ts < first->ts)) first = &x;
        std::string key = first->ch == 0 ? "null" : first->ch == 1 ? "\"x\"" : "\"y\"";
        grouped_null += first->ch == 0;
        auto& g = want_groups[key];
        g.resize(steps.size(), 0);
        for (int k = 0; k < d; ++k) ++want[k], ++g[k];
      }

      Json j(Metric(*e, req, restrict ? &members : nullptr));
      INFO(req);
      CHECK(StepCounts(j["steps"]) == want);
      std::map<std::string, std::vector<uint64_t>> got_groups;
      for (auto g : Arr(j["by"]["groups"]))
        got_groups[simdjson::minify(g["value"].value())] = StepCounts(g["steps"].value());
      CHECK(got_groups == want_groups);
      ++checked;
    }
  }
  CHECK(checked == 120);
  // The random populations reach the cases the property is about.
  CHECK(deep > 20);
  CHECK(cut_by_time > 20);
  CHECK(grouped_null > 20);
}

// --- FAST+ --------------------------------------------------------------------------------

namespace {

// Layers as in Deloitte's FAST+, period-exact: membership and following are "by now", and
// purchases count distinct local days of the month that now falls in.
constexpr std::string_view kLayers =
    R"j([{"name":"basic","when":"first(follow) <= now()"},)j"
    R"j({"name":"member","when":"first(join) <= now()"},)j"
    R"({"name":"purchased","when":"first(join) <= now() && active_days(order, this_month) == 1"},)"
    R"({"name":"repurchase","when":"first(join) <= now() && active_days(order, this_month) >= 2"},)"
    R"({"name":"koc","when":"first(join) <= now() && active_days(order, this_month) >= 2 && count(share, this_month) > 0"}])";

std::string FastRequest(std::string_view extra = "") {
  return Cat(R"({"metric":"fast","layers":)", kLayers,
             R"(,"period":{"from":"2024-03-01","to":"2024-03-31"},"connection":{"event":"visit","prop":"field"})", extra,
             "}");
}

// Persons: 1 A, 2 B, 3 C, 4 D, 5 E, 6 F, 7 G, 8 H (see the expectations).
std::unique_ptr<Engine> FastEngine() {
  auto e = OpenEngine();
  auto t = [](std::string_view type) { return "\"type\":\"" + std::string(type) + "\""; };
  auto visit = [](std::string_view field) { return "\"type\":\"visit\",\"field\":\"" + std::string(field) + "\""; };
  auto order = [](int64_t yuan) { return "\"type\":\"order\",\"amount\":" + std::to_string(yuan); };
  Ingest(*e, Join({
      // A: a follower since January; visits the store twice.
      Event(1, kFeb1 - 20 * kDay, t("follow")), Event(1, kMar1 + 3 * kDay, visit("store")),
      Event(1, kMar1 + 5 * kDay, visit("store")),
      // B: follower in February, member in March: basic -> member.
      Event(2, kFeb1 + 4 * kDay, t("follow")), Event(2, kMar1 + 2 * kDay, t("join")),
      Event(2, kMar1 + 2 * kDay, visit("live")), Event(2, kMar1 + 7 * kDay, visit("store")),
      // C: one purchase day in each month: purchased both times. Its visit is in February.
      Event(3, kFeb1 - 27 * kDay, t("join")), Event(3, kFeb1 + 9 * kDay, order(10)),
      Event(3, kMar1 + 4 * kDay, order(20)), Event(3, kFeb1 + 19 * kDay, visit("store")),
      // D: two orders on Mar 2 and one in the last second of March: member -> repurchase.
      // Its visit at 00:00 on Apr 1 is outside the period.
      Event(4, kFeb1 - 27 * kDay, t("join")), Event(4, kMar1 + kDay + 10 * kHour, order(5)),
      Event(4, kMar1 + kDay + 15 * kHour, order(5)), Event(4, kApr1 - 1000, order(5)), Event(4, kApr1, visit("group")),
      // E: joined in February, bought twice and shared in March: member -> koc.
      Event(5, kFeb1, t("join")), Event(5, kMar1 + 9 * kDay, order(8)), Event(5, kMar1 + 19 * kDay, order(8)),
      Event(5, kMar1 + 14 * kDay, t("share")), Event(5, kApr1 - 1, visit("group")),
      // F: a visitor only.
      Event(6, kMar1 + 8 * kDay, visit("store")),
      // G: follows at 00:00 on Apr 1, too late for March; visits the live room.
      Event(7, kApr1, t("follow")), Event(7, kMar1 + 29 * kDay, visit("live")),
      // H: repurchase in February, no order in March: repurchase -> member.
      Event(8, kFeb1 - 27 * kDay, t("join")), Event(8, kFeb1 + 2 * kDay, order(3)), Event(8, kFeb1 + 3 * kDay, order(3)),
  }));
  return e;
}

}  // namespace

TEST_CASE("metrics fast: capital, layers, conversion and connection, computed by hand") {
  auto e = FastEngine();
  std::string want =
      R"({"metric":"fast","period":{"from":"2024-03-01","to":"2024-03-31"},)"
      R"("previous":{"from":"2024-02-01","to":"2024-02-29"},"persons":8,"capital":6,"previous_capital":6,)"
      R"("layers":[{"name":"basic","persons":1,"previous_persons":2},{"name":"member","persons":2,"previous_persons":2},)"
      R"({"name":"purchased","persons":1,"previous_persons":1},{"name":"repurchase","persons":1,"previous_persons":1},)"
      R"({"name":"koc","persons":1,"previous_persons":0}],)"
      R"("conversion":{"deepened":3,"rate":0.5},)"
      R"("connection":{"event":"visit","prop":"field","visitors":5,"active":3,"rate":0.6,"fields":[)"
      R"({"value":"store","visitors":3,"active":2,"rate":0.6667},{"value":"live","visitors":2,"active":1,"rate":0.5},)"
      R"({"value":"group","visitors":1,"active":1,"rate":1}],"other":null}})";
  CHECK(Metric(*e, FastRequest(R"(,"previous":{"from":"2024-02-01","to":"2024-02-29"})")) == want);

  // Without "previous": the 31 days before March, whose end is the same instant.
  Json j(Metric(*e, FastRequest()));
  CHECK(simdjson::minify(j["previous"]) == R"({"from":"2024-01-30","to":"2024-02-29"})");
  CHECK(U(j["previous_capital"]) == 6);
  CHECK(U(j["conversion"]["deepened"]) == 3);

  // The rest of the fields past top.
  Json top(Metric(*e, Cat(R"({"metric":"fast","layers":)", kLayers,
                          R"(,"period":{"from":"2024-03-01","to":"2024-03-31"},"connection":{"event":"visit","prop":"field","top":1}})")));
  CHECK(simdjson::minify(top["connection"]["other"]) == R"({"values":2,"visitors":3,"active":2,"rate":0.6667})");
  CHECK(Arr(top["connection"]["fields"]).size() == 1);
}

TEST_CASE("metrics fast: a previous period without anyone, a layer given as a JSON AST, members") {
  auto e = FastEngine();
  // Nobody had followed or joined by the end of 2023: everyone in a layer now deepened
  // from no layer, and the rate has no base.
  Json old(Metric(*e, FastRequest(R"(,"previous":{"from":"2023-12-01","to":"2023-12-31"})")));
  CHECK(U(old["previous_capital"]) == 0);
  CHECK(U(old["conversion"]["deepened"]) == 6);
  CHECK(old["conversion"]["rate"].value().is_null());

  auto ast = cdp::Expr::Compile("first(follow) <= now() || first(join) <= now()", e->profiles());
  REQUIRE(ast.ok());
  std::string req = Cat(R"({"metric":"fast","layers":[{"name":"reachable","when":)", ast->AstJson(),
                        R"(}],"period":{"from":"2024-03-01","to":"2024-03-31"}})");
  Json j(Metric(*e, req));
  CHECK(U(j["capital"]) == 6);  // A B C D E H
  CHECK(j["connection"].is_null());

  Roaring members;
  members.add(SlotOfPerson(*e, 2));  // B
  members.add(SlotOfPerson(*e, 6));  // F
  Json m(Metric(*e, FastRequest(), &members));
  CHECK(U(m["persons"]) == 2);
  CHECK(U(m["capital"]) == 1);
  CHECK(U(m["previous_capital"]) == 1);
  CHECK(U(m["conversion"]["deepened"]) == 1);
  CHECK(simdjson::minify(m["connection"]["fields"]) ==
        R"([{"value":"store","visitors":2,"active":1,"rate":0.5},{"value":"live","visitors":1,"active":1,"rate":1}])");
}

TEST_CASE("metrics fast: an evaluation past the step limit names the layer and the person") {
  auto e = FastEngine();
  cdp::ExprLimits lim = e->expr_limits();
  lim.max_steps = 3;
  auto r = RunMetric(*e, R"({"metric":"fast","layers":[{"name":"a","when":"count(visit, 30d, event.field == \"store\") > 0"}],)"
                         R"("period":{"from":"2024-03-01","to":"2024-03-31"}})",
                     nullptr, true, &lim);
  REQUIRE(!r.ok());
  CHECK(r.status().code() == absl::StatusCode::kResourceExhausted);
  std::string msg(r.status().message());
  CHECK(msg.rfind("fast.layers[0].when: ", 0) == 0);
  CHECK(msg.find("(OneID ") != std::string::npos);
}

// --- CLV ----------------------------------------------------------------------------------

namespace {

// K (member M001) refers R1 and R2; S (M002) refers itself and R4; R3 names an unknown
// member number; N has no orders.
std::unique_ptr<Engine> ClvEngine(std::string_view config = "", std::string_view key = "") {
  auto opened = key.empty() ? Engine::Open(config) : Engine::Open(config, "", key);
  REQUIRE_MESSAGE(opened.ok(), std::string(opened.status().message()));
  auto e = std::move(*opened);
  auto order = [](std::string_view yuan, std::string_view ref = "") {
    std::string s = "\"type\":\"order\",\"amount\":" + std::string(yuan);
    if (!ref.empty()) s += ",\"referrer\":\"" + std::string(ref) + "\"";
    return s;
  };
  Ingest(*e, Join({
      Rec("crm", kFeb1, Ids(1, R"("member_no":"M001")")), Event(1, kMar1, order("100")),
      Event(1, kMar1 + 19 * kDay, order("50")),
      // R1: first order via K; the later ones count for K too, inside the window or not.
      Event(2, kMar1 + 4 * kDay, order("200", "M001")), Event(2, kMar1 + 9 * kDay, order("80")),
      Event(2, kApr1 - 1000, order("1")), Event(2, kApr1, order("2")),
      // R2: bought alone in February; referred (a value the normaliser trims) in March.
      Event(3, kFeb1 + 19 * kDay, order("30")), Event(3, kMar1 + 7 * kDay, order("60", " M001 ")),
      Event(4, kMar1 + 8 * kDay, order("10", "M999")),
      Rec("crm", kFeb1, Ids(5, R"("member_no":"M002")")), Event(5, kMar1 + 2 * kDay, order("40", "M002")),
      Event(6, kMar1 + 11 * kDay, order("25", "M002")),
      Rec("crm", kFeb1, Ids(7, R"("member_no":"M004")")),
  }));
  return e;
}

std::string TopEntry(Engine& e, int person, std::string_view own, std::string_view prop, std::string_view clv,
                     int referred) {
  return Cat(R"({"oneid":)", Resolve(e, "mobile", Mobile(person)), R"(,"own":)", own, R"(,"propagation":)", prop,
             R"(,"clv":)", clv, R"(,"referred":)", referred, "}");
}

constexpr std::string_view kClv = R"({"metric":"clv","event":"order","referrer":{"prop":"referrer","id_type":"member_no"})";

}  // namespace

TEST_CASE("metrics clv: own value plus the value of referred buyers, computed by hand") {
  auto e = ClvEngine();
  std::string want = Cat(
      R"({"metric":"clv","event":"order","from":null,"to":null,"persons":7,"buyers":6,)",
      R"("own":598.00,"propagation":368.00,"clv":966.00,"with_propagation":2,)",
      R"("referrals":{"prop":"referrer","id_type":"member_no","referred":5,"resolved":3,"self":1,"unresolved":1},"top":[)",
      TopEntry(*e, 1, "150.00", "343.00", "493.00", 2), ",", TopEntry(*e, 2, "283.00", "0.00", "283.00", 0), ",",
      TopEntry(*e, 3, "90.00", "0.00", "90.00", 0), ",", TopEntry(*e, 5, "40.00", "25.00", "65.00", 1), ",",
      TopEntry(*e, 6, "25.00", "0.00", "25.00", 0), ",", TopEntry(*e, 4, "10.00", "0.00", "10.00", 0), "]}");
  CHECK(Metric(*e, Cat(kClv, "}")) == want);
}

TEST_CASE("metrics clv: referrers of a hashed identifier type are found, as cdp_resolve finds them") {
  // The engine's own Metrics (what cdp_metrics runs): member numbers stored hashed, so
  // " M001 " is found only by normalising and then hashing it under the engine's key.
  auto plain = ClvEngine();
  auto hashed = ClvEngine(R"({"id_types":{"member_no":{"hashed":true}}})", "the host's key, 16 bytes or more");
  auto a = plain->Metrics(Cat(kClv, "}"));
  auto b = hashed->Metrics(Cat(kClv, "}"));
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  Json ja(*a), jb(*b);
  CHECK(std::string(simdjson::minify(jb["referrals"])) ==
        R"({"prop":"referrer","id_type":"member_no","referred":5,"resolved":3,"self":1,"unresolved":1})");
  CHECK(std::string(simdjson::minify(jb["referrals"])) == std::string(simdjson::minify(ja["referrals"])));
  CHECK(jb["propagation"].get_double().value() == 368.0);
  CHECK(U(jb["with_propagation"]) == 2);
}

TEST_CASE("metrics clv: a window of local days, top, and values that are not normalised") {
  auto e = ClvEngine();
  // March: K's order at 00:00 on Mar 1 and R1's in the last second of Mar 31 are in; R1's
  // at 00:00 on Apr 1 and R2's February order are out.
  std::string out = Metric(*e, Cat(kClv, R"(,"from":"2024-03-01","to":"2024-03-31","top":2})"));
  CHECK(out == Cat(R"({"metric":"clv","event":"order","from":"2024-03-01","to":"2024-03-31","persons":7,"buyers":6,)",
                   R"("own":566.00,"propagation":366.00,"clv":932.00,"with_propagation":2,)",
                   R"("referrals":{"prop":"referrer","id_type":"member_no","referred":5,"resolved":3,"self":1,"unresolved":1},"top":[)",
                   TopEntry(*e, 1, "150.00", "341.00", "491.00", 2), ",",
                   TopEntry(*e, 2, "281.00", "0.00", "281.00", 0), "]}"));

  // Without the config the population cannot normalise " M001 ": R2 is unresolved.
  Json raw(Metric(*e, Cat(kClv, "}"), nullptr, false));
  CHECK(U(raw["referrals"]["unresolved"]) == 2);
  CHECK(Metric(*e, Cat(kClv, "}"), nullptr, false).find(R"("propagation":308.00,)") != std::string::npos);  // 283 + 25

  // Without a referrer: own values only.
  Json own(Metric(*e, R"({"metric":"clv","event":"order","top":0})"));
  CHECK(own["referrals"].is_null());
  CHECK(Arr(own["top"]).size() == 0);
  CHECK(Metric(*e, R"({"metric":"clv","event":"order","top":0})").find(R"("own":598.00,"propagation":0.00,"clv":598.00)") !=
        std::string::npos);
}

TEST_CASE("metrics clv: members restrict who is reported, not who can be a referred buyer") {
  auto e = ClvEngine();
  Roaring members;
  members.add(SlotOfPerson(*e, 1));  // K
  members.add(SlotOfPerson(*e, 6));  // R4, referred by S, who is not a member
  std::string out = Metric(*e, Cat(kClv, "}"), &members);
  CHECK(out == Cat(R"({"metric":"clv","event":"order","from":null,"to":null,"persons":2,"buyers":2,)",
                   R"("own":175.00,"propagation":343.00,"clv":518.00,"with_propagation":1,)",
                   R"("referrals":{"prop":"referrer","id_type":"member_no","referred":5,"resolved":3,"self":1,"unresolved":1},"top":[)",
                   TopEntry(*e, 1, "150.00", "343.00", "493.00", 2), ",",
                   TopEntry(*e, 6, "25.00", "0.00", "25.00", 0), "]}"));
}

TEST_CASE("metrics clv: sums saturate instead of wrapping") {
  auto e = OpenEngine();
  // Each order is 5e18 fen; two of them pass INT64_MAX (9223372036854775807 fen). They are
  // dated years before the store's newest event, outside the day counters' horizon: the
  // counters spread an amount over int32 cells, which at this size would not fit in memory.
  const int64_t old = kMar1 - 1000 * kDay;
  Ingest(*e, Event(9, kMar1, R"("type":"visit")"));
  Ingest(*e, Join({
      Rec("crm", old, Ids(1, R"("member_no":"M001")")),
      Event(1, old, R"("type":"order","amount":"50000000000000000.00")"),
      Event(1, old + 1, R"("type":"order","amount":"50000000000000000.00")"),
      Event(2, old, R"("type":"order","amount":"50000000000000000.00","referrer":"M001")"),
      Event(2, old + 1, R"("type":"order","amount":"50000000000000000.00")"),
  }));
  std::string out = Metric(*e, Cat(kClv, "}"));
  CHECK(out.find(R"("own":92233720368547758.07,"propagation":92233720368547758.07,"clv":92233720368547758.07)") !=
        std::string::npos);
  CHECK(out.find(Cat(R"({"oneid":)", Resolve(*e, "mobile", Mobile(1)),
                     R"(,"own":92233720368547758.07,"propagation":92233720368547758.07,"clv":92233720368547758.07,"referred":1})")) !=
        std::string::npos);
}

// --- errors ---------------------------------------------------------------------------------

TEST_CASE("metrics: bad requests are InvalidArgument errors naming the field") {
  auto e = FunnelEngine();
  CHECK(MetricError(*e, R"({"metric":"cohort"})") ==
        R"(metric: unknown metric "cohort" (expected "funnel", "fast" or "clv"))");
  CHECK(MetricError(*e, R"({"steps":[]})").rfind("metric: missing", 0) == 0);
  CHECK(MetricError(*e, R"([1])") == "request: expected a JSON object");
  CHECK(MetricError(*e, "{\"metric\":\"funnel\",\n \"steps\":[\"a\",]}").rfind("request: line 2, column ", 0) == 0);

  CHECK(MetricError(*e, R"({"metric":"funnel","steps":"exposure","from":"2024-03-01","to":"2024-03-31"})") ==
        "funnel.steps: expected a list of event type names");
  CHECK(MetricError(*e, R"({"metric":"funnel","steps":["exposure","click",3],"from":"2024-03-01","to":"2024-03-31"})") ==
        "funnel.steps[2]: expected an event type name, found 3");
  CHECK(MetricError(*e, R"({"metric":"funnel","steps":[],"from":"2024-03-01","to":"2024-03-31"})") ==
        "funnel.steps: expected 1 to 32 steps, found 0");
  CHECK(MetricError(*e, R"({"metric":"funnel","steps":["a"],"from":"2024-02-30","to":"2024-03-31"})") ==
        R"(funnel.from: expected a date "YYYY-MM-DD", found "2024-02-30")");
  CHECK(MetricError(*e, R"({"metric":"funnel","steps":["a"],"from":"2024-03-01"})") == "funnel.to: missing");
  CHECK(MetricError(*e, R"({"metric":"funnel","steps":["a"],"from":"2024-03-02","to":"2024-03-01"})") ==
        "funnel.to: is before from");
  CHECK(MetricError(*e, R"({"metric":"funnel","steps":["a"],"from":"2024-03-01","to":"2024-03-31","within_days":0})") ==
        "funnel.within_days: expected an integer from 1 to 36600, found 0");
  CHECK(MetricError(*e, R"({"metric":"funnel","steps":["a"],"from":"2024-03-01","to":"2024-03-31","within_day":7})")
            .rfind(R"(funnel: unknown key "within_day")", 0) == 0);

  const std::string period = R"("period":{"from":"2024-03-01","to":"2024-03-31"})";
  CHECK(MetricError(*e, Cat(R"j({"metric":"fast","layers":[{"name":"a","when":"first(follow) <= now()"},)j",
                            R"({"name":"b","when":"count(order,, 30d) > 0"}],)", period, "}")) ==
        "fast.layers[1].when: line 1, column 13: expected a value, found ','");
  CHECK(MetricError(*e, Cat(R"j({"metric":"fast","layers":[{"name":"a","when":"count(order)"}],)j", period, "}")) ==
        "fast.layers[0].when: expected a condition (bool), found int");
  CHECK(MetricError(*e, Cat(R"({"metric":"fast","layers":[{"name":"a","when":true},{"name":"a","when":"true"}],)", period,
                            "}")) == "fast.layers[0].when: expected an expression (text or JSON AST object)");
  CHECK(MetricError(*e, Cat(R"({"metric":"fast","layers":[{"name":"a","when":"true"},{"name":"a","when":"true"}],)", period,
                            "}")) == R"(fast.layers[1].name: layer "a" is defined twice)");
  CHECK(MetricError(*e, R"({"metric":"fast","layers":[{"name":"a","when":"true"}]})") == "fast.period: missing");
  CHECK(MetricError(*e, Cat(R"({"metric":"fast","layers":[{"name":"a","when":"true"}],)", period,
                            R"(,"previous":{"from":"2024-02-01","to":"2024-02"}})")) ==
        R"(fast.previous.to: expected a date "YYYY-MM-DD", found "2024-02")");
  CHECK(MetricError(*e, Cat(R"({"metric":"fast","layers":[{"name":"a","when":"true"}],)", period,
                            R"(,"connection":{"event":"visit"}})")) == "fast.connection.prop: missing");

  CHECK(MetricError(*e, R"({"metric":"clv","event":"order","referrer":{"prop":"referrer","id_type":"member"}})") ==
        R"(clv.referrer.id_type: unknown identifier type "member")");
  CHECK(MetricError(*e, R"({"metric":"clv"})") == "clv.event: missing");
}

// --- the reference page -----------------------------------------------------------------

TEST_CASE("metrics: the examples of docs/metrics.md are the reports of these fixtures") {
  std::ifstream in(std::string(CDP_SOURCE_DIR) + "/docs/metrics.md");
  REQUIRE(in.good());
  std::string page((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<std::string> blocks;
  for (size_t at = 0; (at = page.find("```json\n", at)) != std::string::npos;) {
    at += 8;
    size_t end = page.find("```", at);
    REQUIRE(end != std::string::npos);
    blocks.push_back(page.substr(at, end - at));
    at = end + 3;
  }
  REQUIRE(blocks.size() == 6);  // a request and its report per metric
  auto minify = [](const std::string& text) {
    Json j(text);
    return std::string(simdjson::minify(j.root));
  };
  for (size_t k = 0; k < blocks.size(); k += 2) {
    Json req(blocks[k]);
    std::string_view metric = req["metric"].get_string().value();
    auto e = metric == "funnel" ? FunnelEngine() : metric == "fast" ? FastEngine() : ClvEngine();
    INFO(blocks[k]);
    CHECK(minify(Metric(*e, blocks[k])) == minify(blocks[k + 1]));
  }
}
