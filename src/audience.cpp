#include "audience.hpp"

#include <algorithm>
#include <cmath>

#include "absl/container/flat_hash_map.h"

#include "simdjson.h"
#include "tags_internal.hpp"
#include "util.hpp"

namespace cdp {

namespace dom = simdjson::dom;
using tags::Column;
using tags::Shape;

namespace {

// A subject that holds one tag's value and nothing else: what an indexed leaf reads.
class OneTag final : public Subject {
 public:
  uint32_t tag = 0;
  Value value;
  Value Attr(uint32_t) const override { return Value(); }
  int64_t FirstSeen() const override { return kNoTime; }
  int64_t LastSeen() const override { return kNoTime; }
  uint32_t IdCount(uint32_t) const override { return 0; }
  Value Tag(uint32_t t) const override { return t == tag ? value : Value(); }
  Totals DayTotals(uint32_t, int32_t, int32_t) const override { return {}; }
  void Scan(uint32_t, int64_t, int64_t, bool, absl::FunctionRef<bool(const EventView&)>) const override {}
  Value Prop(const EventView&, uint32_t) const override { return Value(); }
};

bool IsTrue(const Value& v) { return v.kind == ValueKind::kBool && v.b; }

class Planner {
 public:
  Planner(const TagEngine& tags, Names& names, int64_t now, const ExprLimits& lim, PlanStats& st)
      : tags_(tags), names_(names), now_(now), lim_(lim), ev_(lim), st_(st) {}

  absl::StatusOr<Bitmap> Eval(dom::element n, const Bitmap& cand) {
    if (cand.isEmpty()) return Bitmap();
    dom::object o;
    std::string_view op;
    dom::array args;
    if (n.get(o) == simdjson::SUCCESS && o["op"].get(op) == simdjson::SUCCESS &&
        o["args"].get(args) == simdjson::SUCCESS) {
      if (op == "&&") return And(args, cand);
      if (op == "||") return Or(args, cand);
      if (op == "!") {
        auto inner = Eval(args.at(0).value(), cand);
        if (!inner.ok()) return inner.status();
        return cand - *inner;
      }
    }
    auto leaf = Indexed(n);
    if (!leaf.ok()) return leaf.status();
    if (leaf->has_value()) {
      st_.indexed_leaves++;
      return **leaf & cand;
    }
    st_.scanned_leaves++;
    return PerPerson(simdjson::minify(n), cand);
  }

 private:
  // Whether a subtree is answered from bitmaps alone (no per-person leaf inside).
  bool FullyIndexed(dom::element n) {
    dom::object o;
    std::string_view op;
    dom::array args;
    if (n.get(o) == simdjson::SUCCESS && o["op"].get(op) == simdjson::SUCCESS &&
        o["args"].get(args) == simdjson::SUCCESS && (op == "&&" || op == "||" || op == "!")) {
      for (dom::element a : args)
        if (!FullyIndexed(a)) return false;
      return true;
    }
    auto leaf = Indexed(n);
    return leaf.ok() && leaf->has_value();
  }

  absl::StatusOr<Bitmap> And(dom::array args, const Bitmap& cand) {
    // Indexed children first, smallest first; then the rest, each on what is left.
    std::vector<Bitmap> indexed;
    std::vector<dom::element> rest;
    for (dom::element a : args) {
      if (FullyIndexed(a)) {
        auto b = Eval(a, cand);
        if (!b.ok()) return b.status();
        if (b->isEmpty()) return Bitmap();
        indexed.push_back(std::move(*b));
      } else {
        rest.push_back(a);
      }
    }
    std::sort(indexed.begin(), indexed.end(),
              [](const Bitmap& x, const Bitmap& y) { return x.cardinality() < y.cardinality(); });
    Bitmap r = cand;
    for (const Bitmap& b : indexed) {
      r &= b;
      if (r.isEmpty()) return r;
    }
    // Per-person leaves share one pass: their conjunction, on the candidates.
    std::string leaves;
    uint32_t nleaves = 0;
    for (dom::element a : rest) {
      if (IsBool(a, "&&") || IsBool(a, "||") || IsBool(a, "!")) {
        auto b = Eval(a, r);
        if (!b.ok()) return b.status();
        r = std::move(*b);
        if (r.isEmpty()) return r;
      } else {
        leaves += (nleaves++ ? "," : "") + std::string(simdjson::minify(a));
        st_.scanned_leaves++;
      }
    }
    if (nleaves == 0) return r;
    return PerPerson(nleaves == 1 ? leaves : Cat("{\"op\":\"&&\",\"args\":[", leaves, "]}"), r);
  }

  absl::StatusOr<Bitmap> Or(dom::array args, const Bitmap& cand) {
    Bitmap acc;
    std::vector<dom::element> rest;
    for (dom::element a : args) {
      if (FullyIndexed(a)) {
        auto b = Eval(a, cand);
        if (!b.ok()) return b.status();
        acc |= *b;
      } else {
        rest.push_back(a);
      }
    }
    std::string leaves;
    uint32_t nleaves = 0;
    for (dom::element a : rest) {
      if (IsBool(a, "&&") || IsBool(a, "||") || IsBool(a, "!")) {
        auto b = Eval(a, cand - acc);
        if (!b.ok()) return b.status();
        acc |= *b;
      } else {
        leaves += (nleaves++ ? "," : "") + std::string(simdjson::minify(a));
        st_.scanned_leaves++;
      }
    }
    if (nleaves) {
      auto b = PerPerson(nleaves == 1 ? leaves : Cat("{\"op\":\"||\",\"args\":[", leaves, "]}"), cand - acc);
      if (!b.ok()) return b.status();
      acc |= *b;
    }
    return acc;
  }

  static bool IsBool(dom::element n, std::string_view want) {
    std::string_view op;
    return n["op"].get(op) == simdjson::SUCCESS && op == want;
  }

  absl::StatusOr<Expr> Compile(std::string_view ast) {
    auto e = Expr::FromAst(ast, names_, lim_);
    if (!e.ok()) return absl::InternalError(Cat("audience planner: a part of the expression did not compile: ",
                                                std::string(e.status().message())));
    return e;
  }

  absl::StatusOr<Bitmap> PerPerson(const std::string& ast, const Bitmap& cand) {
    auto e = Compile(ast);
    if (!e.ok()) return e.status();
    Bitmap out;
    for (uint32_t slot : cand) {
      TaggedView v(tags_, slot);
      auto r = ev_.Eval(*e, v, now_);
      st_.persons_evaluated++;
      if (!r.ok()) return r.status();
      if (IsTrue(r->value)) out.add(slot);
    }
    return out;
  }

  bool Holds(const Expr& e, uint32_t tag, const Value& v) {
    one_.tag = tag;
    one_.value = v;
    auto r = ev_.Eval(e, one_, now_);
    return r.ok() && IsTrue(r->value);
  }

  // The bitmap of an indexed leaf, or nullopt when the leaf must be evaluated per person.
  // Memoized: FullyIndexed asks before Eval does.
  absl::StatusOr<std::optional<Bitmap>> Indexed(dom::element n) {
    std::string key(simdjson::minify(n));
    if (auto it = memo_.find(key); it != memo_.end()) return it->second;
    auto r = IndexedUncached(n);
    if (r.ok()) memo_.emplace(std::move(key), *r);
    return r;
  }

  absl::StatusOr<std::optional<Bitmap>> IndexedUncached(dom::element n) {
    tags::ReadSet r;
    r.AddAst(n, names_);
    r.Normalize();
    const bool other = !r.attrs.empty() || !r.events.empty() || r.any_event || r.person || r.state || r.clock;
    if (other || r.tags.size() > 1) return std::optional<Bitmap>();
    auto e = Compile(simdjson::minify(n));
    if (!e.ok()) return e.status();
    const Bitmap& all = tags_.universe();
    if (r.tags.empty()) {  // a constant
      return std::optional<Bitmap>(Holds(*e, 0, Value()) ? all : Bitmap());
    }
    const uint32_t id = r.tags[0];
    const Column* c = tags_.column(id);  // nullptr: not (or no longer) defined
    if (!c) return std::optional<Bitmap>(Holds(*e, id, Value()) ? all : Bitmap());
    Bitmap out;
    const bool null_holds = Holds(*e, id, Value());
    if (c->shape == Shape::kCategory) {
      Bitmap any;
      for (uint32_t code = 1; code < c->by_code.size(); ++code) {
        if (null_holds) any |= c->by_code[code];
        if (!c->by_code[code].isEmpty() && Holds(*e, id, c->CodeValue(code))) out |= c->by_code[code];
      }
      if (null_holds) out |= all - any;
      return std::optional<Bitmap>(std::move(out));
    }
    if (c->shape == Shape::kList) {
      // `"v" in tags.x`: the item's bitmap. Other list conditions go per person.
      std::string_view op, item;
      dom::array args;
      if (n["op"].get(op) == simdjson::SUCCESS && op == "in" && n["args"].get(args) == simdjson::SUCCESS &&
          args.at(0)["lit"].get(item) == simdjson::SUCCESS && !null_holds) {
        uint32_t code = c->FindCode(Value::String(item));
        return std::optional<Bitmap>(code ? c->by_code[code] : Bitmap());
      }
      return std::optional<Bitmap>();
    }
    // Numbers: a comparison of the tag with a constant is a range of encoded values.
    std::string_view op;
    if (n["op"].get(op) != simdjson::SUCCESS) return std::optional<Bitmap>();
    if (op != "<" && op != "<=" && op != ">" && op != ">=" && op != "==" && op != "!=")
      return std::optional<Bitmap>();
    // Only the tag itself against a literal is monotone in the tag's value (`tags.n % 2 ==
    // 0` is not); anything else goes per person.
    {
      dom::array args;
      if (n["args"].get(args) != simdjson::SUCCESS || args.size() != 2) return std::optional<Bitmap>();
      auto is_ref = [](dom::element x) {
        std::string_view ref;
        return x["ref"].get(ref) == simdjson::SUCCESS && ref == "tags";
      };
      auto is_lit = [](dom::element x) { return x["lit"].error() == simdjson::SUCCESS; };
      dom::element a = args.at(0).value(), b = args.at(1).value();
      if (!((is_ref(a) && is_lit(b)) || (is_lit(a) && is_ref(b)))) return std::optional<Bitmap>();
    }
    if (c->exists.isEmpty()) return std::optional<Bitmap>(null_holds ? all : Bitmap());
    // Search the kind's whole encoded domain (doubles: -inf to +inf, never a NaN): 64
    // probes, no pass over the values.
    const uint64_t lo = c->kind == ValueKind::kDouble ? Column::Encode(Value::Double(-HUGE_VAL)) : 0;
    const uint64_t hi = c->kind == ValueKind::kDouble ? Column::Encode(Value::Double(HUGE_VAL)) : UINT64_MAX;
    auto holds_at = [&](const Expr& x, uint64_t enc) { return Holds(x, id, c->Decode(enc)); };
    // The encoded values where a monotone predicate holds, as [from, to].
    auto span = [&](const Expr& x) -> std::pair<uint64_t, uint64_t> {
      const bool at_lo = holds_at(x, lo), at_hi = holds_at(x, hi);
      if (at_lo && at_hi) return {lo, hi};
      if (!at_lo && !at_hi) return {1, 0};
      uint64_t a = lo, b = hi;  // invariant: holds(a) == at_lo, holds(b) == at_hi
      while (b - a > 1) {
        uint64_t m = a + (b - a) / 2;
        (holds_at(x, m) == at_lo ? a : b) = m;
      }
      return at_lo ? std::pair{lo, a} : std::pair{b, hi};
    };
    if (op == "==" || op == "!=") {
      // x == k is x <= k && x >= k; each side is monotone.
      dom::array args;
      if (n["args"].get(args) != simdjson::SUCCESS) return std::optional<Bitmap>();
      std::string a0(simdjson::minify(args.at(0).value())), a1(simdjson::minify(args.at(1).value()));
      auto le = Compile(Cat("{\"op\":\"<=\",\"args\":[", a0, ",", a1, "]}"));
      auto ge = Compile(Cat("{\"op\":\">=\",\"args\":[", a0, ",", a1, "]}"));
      if (!le.ok() || !ge.ok()) return std::optional<Bitmap>();
      auto [l1, h1] = span(*le);
      auto [l2, h2] = span(*ge);
      Bitmap eq = c->Range(std::max(l1, l2), std::min(h1, h2));
      if (op == "==") return std::optional<Bitmap>(null_holds ? eq | (all - c->exists) : eq);
      Bitmap ne = all - eq;
      if (!null_holds) ne -= all - c->exists;
      return std::optional<Bitmap>(std::move(ne));
    }
    auto [from, to] = span(*e);
    Bitmap res = c->Range(from, to);
    if (null_holds) res |= all - c->exists;
    return std::optional<Bitmap>(std::move(res));
  }

  const TagEngine& tags_;
  Names& names_;
  int64_t now_;
  const ExprLimits& lim_;
  Evaluator ev_;
  PlanStats& st_;
  OneTag one_;
  absl::flat_hash_map<std::string, std::optional<Bitmap>> memo_;
};

}  // namespace

absl::StatusOr<Bitmap> SelectAudience(const TagEngine& tags, Names& names, const Expr& e, int64_t now,
                                      const ExprLimits& lim, PlanStats* stats) {
  PlanStats local;
  dom::parser parser;
  dom::element root;
  if (parser.parse(e.AstJson()).get(root) != simdjson::SUCCESS)
    return absl::InternalError("audience planner: the expression's AST did not parse");
  Planner p(tags, names, now, lim, stats ? *stats : local);
  return p.Eval(root, tags.universe());
}

Bitmap SelectAudienceByScan(const TagEngine& tags, const Expr& e, int64_t now, const ExprLimits& lim) {
  Evaluator ev(lim);
  Bitmap out;
  for (uint32_t slot : tags.universe()) {
    TaggedView v(tags, slot);
    auto r = ev.Eval(e, v, now);
    if (r.ok() && IsTrue(r->value)) out.add(slot);
  }
  return out;
}

uint32_t HoldoutBucket(uint64_t oneid, std::string_view salt) {
  return static_cast<uint32_t>(XXH3_64bits_withSeed(salt.data(), salt.size(), oneid) % 10000);
}

bool InHoldout(uint64_t oneid, std::string_view salt, uint32_t basis_points) {
  return HoldoutBucket(oneid, salt) < basis_points;
}

}  // namespace cdp
