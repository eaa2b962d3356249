// The evaluator: a recursive walk over a Program's flat node array. It allocates only
// while warming up (scratch blocks, the distinct() set, regex state grow to the largest
// expression and person seen, then are reused).
//
// valid_until is computed alongside each value as the minimum over the parts that decided
// it: a short-circuited operand did not decide the result, so it does not count (while a
// false `a` stays false, `a && b` stays false whatever b does).
#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "cdp/expr.hpp"
#include "cdp/record.hpp"
#include "expr_internal.hpp"
#include "util.hpp"

namespace cdp {

using expr::Agg;
using expr::Fn;
using expr::PNode;
using expr::POp;
using expr::Program;
using expr::Window;

namespace expr {
namespace {

bool IsNumK(ValueKind k) { return k == ValueKind::kInt || k == ValueKind::kDouble || k == ValueKind::kMoney; }

double AsDouble(const Value& v) {
  switch (v.kind) {
    case ValueKind::kInt: return static_cast<double>(v.i);
    case ValueKind::kMoney: return static_cast<double>(v.i) / 100.0;
    default: return v.d;
  }
}

int Sign(auto a, auto b) { return a < b ? -1 : a > b ? 1 : 0; }

int CompareNumbers(const Value& a, const Value& b) {
  if (a.kind == ValueKind::kDouble || b.kind == ValueKind::kDouble) {
    double x = AsDouble(a), y = AsDouble(b);
    if (std::isnan(x) || std::isnan(y)) return 2;
    return Sign(x, y);
  }
  // Exact: int as yuan against money in fen.
  __int128 x = a.i, y = b.i;
  if (a.kind == ValueKind::kInt && b.kind == ValueKind::kMoney) x *= 100;
  if (a.kind == ValueKind::kMoney && b.kind == ValueKind::kInt) y *= 100;
  return Sign(x, y);
}

}  // namespace

bool ValuesEqual(const Value& a, const Value& b) {
  if (IsNumK(a.kind) && IsNumK(b.kind)) return CompareNumbers(a, b) == 0;
  if (a.kind != b.kind) return false;
  switch (a.kind) {
    case ValueKind::kNull: return true;
    case ValueKind::kBool: return a.b == b.b;
    case ValueKind::kString: return a.str() == b.str();
    case ValueKind::kList:
      if (a.len != b.len) return false;
      for (uint32_t k = 0; k < a.len; ++k)
        if (!ValuesEqual(a.items[k], b.items[k])) return false;
      return true;
    default: return a.i == b.i;
  }
}

int CompareValues(const Value& a, const Value& b) {
  if (IsNumK(a.kind) && IsNumK(b.kind)) return CompareNumbers(a, b);
  if (a.kind != b.kind) return 2;
  switch (a.kind) {
    case ValueKind::kString: {
      int c = a.str().compare(b.str());
      return c < 0 ? -1 : c > 0 ? 1 : 0;
    }
    case ValueKind::kTimestamp:
    case ValueKind::kDuration:
    case ValueKind::kDate: return Sign(a.i, b.i);
    default: return 2;
  }
}

}  // namespace expr

namespace {

using expr::AsDouble;
using expr::IsNumK;

constexpr int64_t kCivilLimitMs = 8'640'000'000'000'000;  // ±100M days: civil maths stays in range
constexpr int64_t kDateLimit = 100'000'000;

bool CivilSafe(int64_t ms) { return ms > -kCivilLimitMs && ms < kCivilLimitMs; }
bool DateSafe(int64_t d) { return d > -kDateLimit && d < kDateLimit; }

// What an aggregate learnt of its window's oldest event while reading it (else its time):
// nothing, or that the window holds none. No event in a window has either time, since a
// window of days starts and ends at finite instants.
constexpr int64_t kOldestUnknown = INT64_MIN;
constexpr int64_t kWindowEmpty = INT64_MAX;

bool RoundHalfEven(double x, int64_t& out) {
  if (!(std::fabs(x) < 9.2e18)) return false;
  out = static_cast<int64_t>(std::nearbyint(x));  // the default rounding mode: ties to even
  return true;
}

bool DivHalfEven(int64_t a, int64_t b, int64_t& q) {
  if (b == 0) return false;
  __int128 x = a, y = b;
  bool neg = (x < 0) != (y < 0);
  if (x < 0) x = -x;
  if (y < 0) y = -y;
  __int128 r = x % y, d = x / y;
  if (2 * r > y || (2 * r == y && (d & 1))) ++d;
  if (neg) d = -d;
  if (d > INT64_MAX || d < INT64_MIN) return false;
  q = static_cast<int64_t>(d);
  return true;
}

// A number read as yuan, in fen.
bool ToFen(const Value& v, int64_t& fen) {
  switch (v.kind) {
    case ValueKind::kMoney: fen = v.i; return true;
    case ValueKind::kInt: return !__builtin_mul_overflow(v.i, int64_t{100}, &fen);
    case ValueKind::kDouble: return RoundHalfEven(v.d * 100.0, fen);
    default: return false;
  }
}

Value DoubleOrNull(double d) { return std::isfinite(d) ? Value::Double(d) : Value(); }

// Bump allocation for values built during one Eval. Blocks are kept; after an Eval that
// needed several, they are merged into one, so a warmed-up evaluator allocates nothing.
class Arena {
 public:
  char* Alloc(size_t n) {
    n = (n + 15) & ~size_t{15};
    if (blocks_.empty() || used_ + n > blocks_[cur_].size) {
      if (cur_ + 1 < blocks_.size() && n <= blocks_[cur_ + 1].size) {
        ++cur_;
      } else {
        size_t size = std::max<size_t>({n, 4096, blocks_.empty() ? 0 : blocks_.back().size * 2});
        blocks_.push_back({std::make_unique<char[]>(size), size});
        cur_ = blocks_.size() - 1;
      }
      used_ = 0;
    }
    char* p = blocks_[cur_].data.get() + used_;
    used_ += n;
    return p;
  }
  void Reset() {
    if (blocks_.size() > 1) {
      size_t total = 0;
      for (auto& b : blocks_) total += b.size;
      blocks_.clear();
      blocks_.push_back({std::make_unique<char[]>(total), total});
    }
    cur_ = 0;
    used_ = 0;
  }
  Value Str(std::string_view s) {
    char* p = Alloc(s.size());
    if (!s.empty()) std::memcpy(p, s.data(), s.size());
    return Value::String(std::string_view(p, s.size()));
  }

 private:
  struct Block {
    std::unique_ptr<char[]> data;
    size_t size;
  };
  std::vector<Block> blocks_;
  size_t cur_ = 0, used_ = 0;
};

// The values seen by distinct(): open addressing, cleared by bumping a generation.
class DistinctSet {
 public:
  void Clear() {
    size_ = 0;
    if (++gen_ == 0) {
      std::fill(gens_.begin(), gens_.end(), 0);
      gen_ = 1;
    }
  }
  uint32_t size() const { return size_; }
  void Insert(const Value& v) {
    if ((size_ + 1) * 2 > gens_.size()) Grow();
    size_t mask = gens_.size() - 1;
    for (size_t i = Hash(v) & mask;; i = (i + 1) & mask) {
      if (gens_[i] != gen_) {
        gens_[i] = gen_;
        idx_[i] = size_;
        if (vals_.size() <= size_) vals_.push_back(v);
        else vals_[size_] = v;
        ++size_;
        return;
      }
      if (Same(vals_[idx_[i]], v)) return;
    }
  }

 private:
  static uint64_t Hash(const Value& v) {
    uint64_t h;
    if (v.kind == ValueKind::kString) h = XXH3_64bits(v.s, v.len);
    else if (v.kind == ValueKind::kList) h = v.len;
    else h = XXH3_64bits(&v.i, sizeof v.i);
    return h ^ (static_cast<uint64_t>(v.kind) * 0x9E3779B97F4A7C15ull);
  }
  // Exact identity: values of different kinds are distinct (1 and 1.0 count twice).
  static bool Same(const Value& a, const Value& b) {
    if (a.kind != b.kind) return false;
    if (a.kind == ValueKind::kString || a.kind == ValueKind::kList) return expr::ValuesEqual(a, b);
    if (a.kind == ValueKind::kBool) return a.b == b.b;
    return a.i == b.i;
  }
  void Grow() {
    size_t cap = std::max<size_t>(64, gens_.size() * 2);
    std::vector<uint32_t> gens(cap, 0), idx(cap, 0);
    uint32_t g = 1;
    for (uint32_t k = 0; k < size_; ++k) {
      for (size_t i = Hash(vals_[k]) & (cap - 1);; i = (i + 1) & (cap - 1)) {
        if (gens[i] != g) { gens[i] = g; idx[i] = k; break; }
      }
    }
    gens_.swap(gens);
    idx_.swap(idx);
    gen_ = g;
  }
  std::vector<Value> vals_;
  std::vector<uint32_t> gens_, idx_;
  uint32_t gen_ = 1, size_ = 0;
};

bool Truthy(const Value& v) { return v.kind == ValueKind::kBool && v.b; }

bool Compare(POp op, const Value& a, const Value& b) {
  if (op == POp::kEq || op == POp::kNe) {
    bool eq = a.is_null() || b.is_null() ? a.is_null() && b.is_null() : expr::ValuesEqual(a, b);
    return eq == (op == POp::kEq);
  }
  int c = expr::CompareValues(a, b);
  if (c == 2) return false;
  switch (op) {
    case POp::kLt: return c < 0;
    case POp::kLe: return c <= 0;
    case POp::kGt: return c > 0;
    default: return c >= 0;
  }
}

// The first instant after now at which `d(t) op 0` changes, where d(t) = d0 + s·(t − now).
int64_t FlipInstant(POp op, __int128 d0, int s, int64_t now) {
  auto at = [now](__int128 dt) -> int64_t {
    __int128 t = static_cast<__int128>(now) + (dt < 1 ? 1 : dt);
    return t >= kForever ? kForever : static_cast<int64_t>(t);
  };
  switch (op) {
    case POp::kEq:
    case POp::kNe:
      if (d0 == 0) return at(1);
      if ((s > 0) == (d0 < 0)) return at(d0 < 0 ? -d0 : d0);
      return kForever;
    case POp::kGt:
    case POp::kGe: {  // d >= c
      __int128 c = op == POp::kGt ? 1 : 0;
      bool now_true = d0 >= c;
      if (s > 0) return now_true ? kForever : at(c - d0);
      return now_true ? at(d0 - c + 1) : kForever;
    }
    default: {  // d <= c
      __int128 c = op == POp::kLt ? -1 : 0;
      bool now_true = d0 <= c;
      if (s > 0) return now_true ? at(c - d0 + 1) : kForever;
      return now_true ? kForever : at(d0 - c);
    }
  }
}

bool ParseIntText(std::string_view s, int64_t& v) {
  if (!s.empty() && s[0] == '+') s.remove_prefix(1);
  auto r = std::from_chars(s.data(), s.data() + s.size(), v);
  return r.ec == std::errc() && r.ptr == s.data() + s.size() && !s.empty();
}

}  // namespace

struct Evaluator::State {
  ExprLimits lim;
  const Program* p = nullptr;
  const Subject* s = nullptr;
  int64_t now = 0;
  // today and the next midnight of (now, zone): kept across evaluations, since a scan
  // over millions of persons evaluates at one now.
  bool have_today = false, have_midnight = false;
  int32_t today = 0;
  int64_t midnight = 0;
  int64_t cached_now = 0;
  std::string cached_zone;  // by name: a zone's name determines its rules
  uint64_t steps = 0;
  bool exhausted = false;
  const EventView* ev = nullptr;
  Arena arena;
  DistinctSet distinct;
  expr::RegexScratch rx;
  expr::Regex runtime_re;
  std::string tmp;

  int32_t Today() {
    if (!have_today) {
      today = p->zone.DayOf(now);
      have_today = true;
    }
    return today;
  }
  // Local midnights by day, for p->zone: a pure function of the zone, asked for the same
  // few days (window edges, the days events leave them) for every person at one now.
  // Direct-mapped; emptied by bumping day_start_gen when the zone changes.
  struct DayStartMemo {
    int32_t day = 0;
    uint32_t gen = 0;
    int64_t ms = 0;
  };
  std::array<DayStartMemo, 32> day_starts{};
  uint32_t day_start_gen = 1;  // never that of a fresh entry
  int64_t DayStart(int32_t day) {
    DayStartMemo& m = day_starts[static_cast<uint32_t>(day) % day_starts.size()];
    if (m.gen != day_start_gen || m.day != day) m = {day, day_start_gen, p->zone.DayStart(day)};
    return m.ms;
  }
  int64_t NextMidnight(const TimeZone& z) {
    if (&z != &p->zone) return z.DayStart(z.DayOf(now) + 1);
    if (!have_midnight) {
      midnight = DayStart(Today() + 1);
      have_midnight = true;
    }
    return midnight;
  }
  bool IsNowCall(uint32_t n) const {
    const PNode& x = p->nodes[n];
    return x.op == POp::kCall && x.aux == static_cast<uint8_t>(Fn::kNow);
  }
  bool Step(uint64_t n = 1) {
    if (steps < n) {
      steps = 0;
      exhausted = true;
      return false;
    }
    steps -= n;
    return true;
  }

  Value Ev(uint32_t n, int64_t& vu);
  Value Arith(POp op, const Value& a, const Value& b);
  Value MoneyArith(POp op, const Value& a, const Value& b);
  Value Call(const PNode& x, const uint32_t* k, int64_t& vu);
  Value Aggregate(const PNode& x, const uint32_t* k, int64_t& vu);
  Value Fold(const PNode& x, const uint32_t* k, bool all, int32_t first, int32_t last, int64_t& vu,
             int64_t& oldest);
  int64_t SlideUntil(uint32_t type, int32_t first, int32_t last, int64_t oldest);
  Value ToText(const Value& v);
};

Value Evaluator::State::Ev(uint32_t n, int64_t& vu) {
  if (!Step()) return Value();
  const PNode& x = p->nodes[n];
  const uint32_t* k = p->kids.data() + x.kid;
  switch (x.op) {
    case POp::kConst: return x.k;
    case POp::kAttr: return s->Attr(x.id);
    case POp::kFirstSeen:
    case POp::kLastSeen: {
      int64_t t = x.op == POp::kFirstSeen ? s->FirstSeen() : s->LastSeen();
      return t == kNoTime ? Value() : Value::Timestamp(t);
    }
    case POp::kIds: return Value::Int(s->IdCount(x.id));
    case POp::kHasIds: return Value::Bool(s->IdCount(x.id) > 0);
    case POp::kTag: return s->Tag(x.id);
    case POp::kState: return s->State(x.id);
    case POp::kConsent: return Value::Bool(ConsentGiven(s->Attr(x.id), x.aux != 0));
    case POp::kEventProp: return ev ? s->Prop(*ev, x.id) : Value();
    case POp::kEventAmount: return ev && ev->has_amount ? Value::Money(ev->amount) : Value();
    case POp::kEventTs: return ev ? Value::Timestamp(ev->ts) : Value();
    case POp::kNot: return Value::Bool(!Truthy(Ev(k[0], vu)));
    case POp::kNeg: {
      Value a = Ev(k[0], vu);
      switch (a.kind) {
        case ValueKind::kInt:
        case ValueKind::kMoney:
        case ValueKind::kDuration:
          if (a.i == INT64_MIN) return Value();
          a.i = -a.i;
          return a;
        case ValueKind::kDouble: return Value::Double(-a.d);
        default: return Value();
      }
    }
    case POp::kAnd:
      for (uint8_t i = 0; i < x.nkids; ++i)
        if (!Truthy(Ev(k[i], vu))) return Value::Bool(false);
      return Value::Bool(true);
    case POp::kOr:
      for (uint8_t i = 0; i < x.nkids; ++i)
        if (Truthy(Ev(k[i], vu))) return Value::Bool(true);
      return Value::Bool(false);
    case POp::kCond: return Truthy(Ev(k[0], vu)) ? Ev(k[1], vu) : Ev(k[2], vu);
    case POp::kEq:
    case POp::kNe:
    case POp::kLt:
    case POp::kLe:
    case POp::kGt:
    case POp::kGe: {
      int64_t va = kForever, vb = kForever;
      Value a = Ev(k[0], va), b = Ev(k[1], vb);
      bool r = Compare(x.op, a, b);
      if (x.flags & (expr::kLinearLeft | expr::kLinearRight)) {
        // One side is ±now() plus constants, the other does not move: the result flips at
        // a computable instant (or never, when the kinds do not compare).
        if (a.kind == b.kind && (a.kind == ValueKind::kTimestamp || a.kind == ValueKind::kDuration)) {
          int s = (x.flags & expr::kSlopeNegative) ? -1 : 1;
          if (x.flags & expr::kLinearRight) s = -s;
          vu = std::min(vu, FlipInstant(x.op, static_cast<__int128>(a.i) - b.i, s, now));
        }
      } else {
        vu = std::min(vu, std::min(va, vb));
      }
      return Value::Bool(r);
    }
    case POp::kIn: {
      Value a = Ev(k[0], vu), b = Ev(k[1], vu);
      if (b.kind != ValueKind::kList || a.is_null()) return Value::Bool(false);
      if (!Step(b.len / 8)) return Value();
      for (uint32_t i = 0; i < b.len; ++i)
        if (expr::ValuesEqual(a, b.items[i])) return Value::Bool(true);
      return Value::Bool(false);
    }
    case POp::kAdd:
    case POp::kSub:
    case POp::kMul:
    case POp::kDiv:
    case POp::kMod: {
      Value a = Ev(k[0], vu), b = Ev(k[1], vu);
      return Arith(x.op, a, b);
    }
    case POp::kIndex: {
      Value a = Ev(k[0], vu), i = Ev(k[1], vu);
      if (a.kind != ValueKind::kList || i.kind != ValueKind::kInt || i.i < 0 || i.i >= a.len) return Value();
      return a.items[i.i];
    }
    case POp::kList: {
      auto* items = reinterpret_cast<Value*>(arena.Alloc(sizeof(Value) * x.nkids));
      for (uint8_t i = 0; i < x.nkids; ++i) new (&items[i]) Value(Ev(k[i], vu));
      return Value::List(items, x.nkids);
    }
    case POp::kCall: return Call(x, k, vu);
    case POp::kAgg: return Aggregate(x, k, vu);
  }
  return Value();
}

Value Evaluator::State::MoneyArith(POp op, const Value& a, const Value& b) {
  int64_t fa, fb, r;
  switch (op) {
    case POp::kAdd:
    case POp::kSub:
      if (!ToFen(a, fa) || !ToFen(b, fb)) return Value();
      if (op == POp::kAdd ? __builtin_add_overflow(fa, fb, &r) : __builtin_sub_overflow(fa, fb, &r)) return Value();
      return Value::Money(r);
    case POp::kMul: {
      if (a.kind == ValueKind::kMoney && b.kind == ValueKind::kMoney) return Value();
      const Value& m = a.kind == ValueKind::kMoney ? a : b;
      const Value& o = a.kind == ValueKind::kMoney ? b : a;
      if (o.kind == ValueKind::kInt) return __builtin_mul_overflow(m.i, o.i, &r) ? Value() : Value::Money(r);
      return RoundHalfEven(static_cast<double>(m.i) * o.d, r) ? Value::Money(r) : Value();
    }
    case POp::kDiv:
      if (a.kind != ValueKind::kMoney) return Value();
      if (b.kind == ValueKind::kMoney) return b.i == 0 ? Value() : DoubleOrNull(static_cast<double>(a.i) / static_cast<double>(b.i));
      if (b.kind == ValueKind::kInt) return DivHalfEven(a.i, b.i, r) ? Value::Money(r) : Value();
      if (b.d == 0) return Value();
      return RoundHalfEven(static_cast<double>(a.i) / b.d, r) ? Value::Money(r) : Value();
    default:
      return Value();
  }
}

Value Evaluator::State::Arith(POp op, const Value& a, const Value& b) {
  using K = ValueKind;
  if (a.is_null() || b.is_null()) return Value();
  if (IsNumK(a.kind) && IsNumK(b.kind)) {
    if (a.kind == K::kMoney || b.kind == K::kMoney) return MoneyArith(op, a, b);
    if (a.kind == K::kInt && b.kind == K::kInt) {
      int64_t r;
      switch (op) {
        case POp::kAdd: return __builtin_add_overflow(a.i, b.i, &r) ? Value() : Value::Int(r);
        case POp::kSub: return __builtin_sub_overflow(a.i, b.i, &r) ? Value() : Value::Int(r);
        case POp::kMul: return __builtin_mul_overflow(a.i, b.i, &r) ? Value() : Value::Int(r);
        case POp::kDiv:
          if (b.i == 0 || (a.i == INT64_MIN && b.i == -1)) return Value();
          return Value::Int(a.i / b.i);
        default:
          if (b.i == 0) return Value();
          if (b.i == -1) return Value::Int(0);
          return Value::Int(a.i % b.i);
      }
    }
    double x = AsDouble(a), y = AsDouble(b);
    switch (op) {
      case POp::kAdd: return DoubleOrNull(x + y);
      case POp::kSub: return DoubleOrNull(x - y);
      case POp::kMul: return DoubleOrNull(x * y);
      case POp::kDiv: return y == 0 ? Value() : DoubleOrNull(x / y);
      default: return Value();
    }
  }
  auto is = [&](K x, K y) { return a.kind == x && b.kind == y; };
  int64_t r;
  switch (op) {
    case POp::kAdd:
      if (is(K::kString, K::kString)) {
        if (uint64_t{a.len} + b.len > UINT32_MAX) return Value();
        char* p = arena.Alloc(a.len + b.len);
        if (a.len) std::memcpy(p, a.s, a.len);
        if (b.len) std::memcpy(p + a.len, b.s, b.len);
        return Value::String(std::string_view(p, a.len + b.len));
      }
      if (is(K::kTimestamp, K::kDuration) || is(K::kDuration, K::kTimestamp))
        return __builtin_add_overflow(a.i, b.i, &r) ? Value() : Value::Timestamp(r);
      if (is(K::kDuration, K::kDuration)) return __builtin_add_overflow(a.i, b.i, &r) ? Value() : Value::Duration(r);
      if (is(K::kDate, K::kInt) || is(K::kInt, K::kDate))
        return __builtin_add_overflow(a.i, b.i, &r) || !DateSafe(r) ? Value() : Value::Date(r);
      return Value();
    case POp::kSub:
      if (is(K::kTimestamp, K::kDuration)) return __builtin_sub_overflow(a.i, b.i, &r) ? Value() : Value::Timestamp(r);
      if (is(K::kTimestamp, K::kTimestamp) || is(K::kDuration, K::kDuration))
        return __builtin_sub_overflow(a.i, b.i, &r) ? Value() : Value::Duration(r);
      if (is(K::kDate, K::kInt)) return __builtin_sub_overflow(a.i, b.i, &r) || !DateSafe(r) ? Value() : Value::Date(r);
      if (is(K::kDate, K::kDate)) return __builtin_sub_overflow(a.i, b.i, &r) ? Value() : Value::Int(r);
      return Value();
    case POp::kMul:
      if (is(K::kDuration, K::kInt) || is(K::kInt, K::kDuration))
        return __builtin_mul_overflow(a.i, b.i, &r) ? Value() : Value::Duration(r);
      return Value();
    case POp::kDiv:
      if (is(K::kDuration, K::kInt)) {
        if (b.i == 0 || (a.i == INT64_MIN && b.i == -1)) return Value();
        return Value::Duration(a.i / b.i);
      }
      return Value();
    default:
      return Value();
  }
}

Value Evaluator::State::ToText(const Value& v) {
  tmp.clear();
  switch (v.kind) {
    case ValueKind::kString: return v;
    case ValueKind::kBool: return Value::String(v.b ? "true" : "false");
    case ValueKind::kInt: tmp = std::to_string(v.i); break;
    case ValueKind::kDouble:
      if (!std::isfinite(v.d)) return Value();
      expr::AppendDouble(tmp, v.d);
      break;
    case ValueKind::kMoney: expr::AppendMoney(tmp, v.i); break;
    case ValueKind::kTimestamp:
      if (!CivilSafe(v.i)) return Value();
      expr::AppendTimestampText(tmp, v.i, p->zone);
      break;
    case ValueKind::kDuration: expr::AppendDurationText(tmp, v.i); break;
    case ValueKind::kDate: tmp = expr::DateText(static_cast<int32_t>(v.i)); break;
    default: return Value();
  }
  return arena.Str(tmp);
}

Value Evaluator::State::Call(const PNode& x, const uint32_t* k, int64_t& vu) {
  using K = ValueKind;
  Fn fn = static_cast<Fn>(x.aux);
  switch (fn) {
    case Fn::kToday:
      vu = std::min(vu, NextMidnight(p->zone));
      return Value::Date(Today());
    case Fn::kNow:
      vu = std::min(vu, now + 1);
      return Value::Timestamp(now);
    default: break;
  }
  // Day-grained functions of now() itself change at the next local midnight, not the next ms.
  const TimeZone& zone = x.extra && (fn == Fn::kYear || fn == Fn::kMonth || fn == Fn::kDay || fn == Fn::kWeekday || fn == Fn::kHour)
                             ? p->zones[x.extra - 1] : p->zone;
  bool day_grained = fn == Fn::kYear || fn == Fn::kMonth || fn == Fn::kDay || fn == Fn::kWeekday ||
                     fn == Fn::kDaysBetween || fn == Fn::kDate;
  Value a, b;
  for (uint8_t i = 0; i < x.nkids && i < 2; ++i) {
    int64_t v = kForever;
    (i == 0 ? a : b) = Ev(k[i], v);
    if (day_grained && IsNowCall(k[i])) v = NextMidnight(zone);
    vu = std::min(vu, v);
  }
  auto day_of = [&](const Value& v, int64_t& day) {
    if (v.kind == K::kDate) { day = v.i; return true; }
    if (v.kind == K::kTimestamp && CivilSafe(v.i)) { day = zone.DayOf(v.i); return true; }
    return false;
  };
  switch (fn) {
    case Fn::kHas: return Value::Bool(!a.is_null());
    case Fn::kSize:
      if (a.kind == K::kList) return Value::Int(a.len);
      if (a.kind == K::kNull) return Value::Int(0);
      if (a.kind == K::kString) {
        int64_t n = 0;
        for (uint32_t i = 0; i < a.len; ++i) n += (static_cast<unsigned char>(a.s[i]) & 0xC0) != 0x80;
        return Value::Int(n);
      }
      return Value();
    case Fn::kContains:
      if (a.kind == K::kList) {
        if (!Step(a.len / 8)) return Value();
        for (uint32_t i = 0; i < a.len; ++i)
          if (!b.is_null() && expr::ValuesEqual(a.items[i], b)) return Value::Bool(true);
        return Value::Bool(false);
      }
      if (a.kind != K::kString || b.kind != K::kString) return Value();
      if (!Step(a.len / 32)) return Value();
      return Value::Bool(a.str().find(b.str()) != std::string_view::npos);
    case Fn::kStartsWith:
      if (a.kind != K::kString || b.kind != K::kString) return Value();
      return Value::Bool(a.str().starts_with(b.str()));
    case Fn::kEndsWith:
      if (a.kind != K::kString || b.kind != K::kString) return Value();
      return Value::Bool(a.str().ends_with(b.str()));
    case Fn::kMatches: {
      if (a.kind != K::kString || b.kind != K::kString) return Value();
      const expr::Regex* re = &runtime_re;
      if (x.extra) {
        re = &p->regexes[x.extra - 1];
      } else {
        if (!Step(b.len) || !expr::CompileRegex(b.str(), runtime_re, nullptr, nullptr)) return Value();
      }
      int m = expr::MatchRegex(*re, a.str(), rx, steps);
      if (m < 0) {
        exhausted = true;
        return Value();
      }
      return Value::Bool(m == 1);
    }
    case Fn::kLower:
    case Fn::kUpper: {
      if (a.kind != K::kString) return Value();
      char* out = arena.Alloc(a.len);
      for (uint32_t i = 0; i < a.len; ++i) {
        char c = a.s[i];
        if (fn == Fn::kLower && c >= 'A' && c <= 'Z') c = static_cast<char>(c + 32);
        if (fn == Fn::kUpper && c >= 'a' && c <= 'z') c = static_cast<char>(c - 32);
        out[i] = c;
      }
      return Value::String(std::string_view(out, a.len));
    }
    case Fn::kYear:
    case Fn::kMonth:
    case Fn::kDay:
    case Fn::kWeekday:
    case Fn::kHour:
      if (a.kind == K::kTimestamp && CivilSafe(a.i)) {
        TimeZone::Civil c = zone.ToCivil(a.i);
        switch (fn) {
          case Fn::kYear: return Value::Int(c.year);
          case Fn::kMonth: return Value::Int(c.month);
          case Fn::kDay: return Value::Int(c.day);
          case Fn::kWeekday: return Value::Int(c.weekday);
          default: return Value::Int(c.hour);
        }
      }
      if (a.kind == K::kDate && fn != Fn::kHour && DateSafe(a.i)) {
        int y, m, d;
        CivilFromDays(static_cast<int32_t>(a.i), y, m, d);
        switch (fn) {
          case Fn::kYear: return Value::Int(y);
          case Fn::kMonth: return Value::Int(m);
          case Fn::kDay: return Value::Int(d);
          default: return Value::Int(WeekdayOfDay(static_cast<int32_t>(a.i)));
        }
      }
      return Value();
    case Fn::kDaysBetween: {
      int64_t da, db;
      if (!day_of(a, da) || !day_of(b, db)) return Value();
      return Value::Int(db - da);
    }
    case Fn::kInt:
      switch (a.kind) {
        case K::kInt: return a;
        case K::kDouble: return std::isfinite(a.d) && std::fabs(a.d) < 9.2e18 ? Value::Int(static_cast<int64_t>(a.d)) : Value();
        case K::kMoney: return Value::Int(a.i / 100);
        case K::kBool: return Value::Int(a.b ? 1 : 0);
        case K::kString: {
          int64_t v;
          return ParseIntText(a.str(), v) ? Value::Int(v) : Value();
        }
        case K::kTimestamp:
        case K::kDuration:
        case K::kDate: return Value::Int(a.i);
        default: return Value();
      }
    case Fn::kDouble:
      switch (a.kind) {
        case K::kInt:
        case K::kMoney: return Value::Double(AsDouble(a));
        case K::kDouble: return a;
        case K::kString: {
          double d;
          auto r = std::from_chars(a.s, a.s + a.len, d);
          if (r.ec != std::errc() || r.ptr != a.s + a.len || a.len == 0) return Value();
          return DoubleOrNull(d);
        }
        default: return Value();
      }
    case Fn::kString: return ToText(a);
    case Fn::kAbs:
      switch (a.kind) {
        case K::kInt:
        case K::kMoney:
        case K::kDuration:
          if (a.i == INT64_MIN) return Value();
          if (a.i < 0) a.i = -a.i;
          return a;
        case K::kDouble: return Value::Double(std::fabs(a.d));
        default: return Value();
      }
    case Fn::kLeast:
    case Fn::kGreatest: {
      int c = expr::CompareValues(a, b);
      if (c == 2) return Value();
      return (fn == Fn::kLeast) == (c <= 0) ? a : b;
    }
    case Fn::kDate: {
      if (a.kind == K::kString) {
        int32_t day;
        return expr::ParseDate(a.str(), day) ? Value::Date(day) : Value();
      }
      int64_t day;
      return day_of(a, day) ? Value::Date(day) : Value();
    }
    case Fn::kTimestamp:
      switch (a.kind) {
        case K::kInt: return Value::Timestamp(a.i);
        case K::kTimestamp: return a;
        case K::kDate: return DateSafe(a.i) ? Value::Timestamp(p->zone.DayStart(static_cast<int32_t>(a.i))) : Value();
        case K::kString: {
          auto t = ParseTimestamp(a.str());
          return t.ok() ? Value::Timestamp(*t) : Value();
        }
        default: return Value();
      }
    case Fn::kMoney:
    case Fn::kYuan: {
      int64_t fen;
      if (a.kind == K::kString) {
        auto f = YuanToFen(a.str());
        return f.ok() ? Value::Money(*f) : Value();
      }
      return ToFen(a, fen) ? Value::Money(fen) : Value();
    }
    case Fn::kDuration: {
      if (a.kind == K::kInt || a.kind == K::kDuration) return Value::Duration(a.i);
      int64_t ms;
      if (a.kind == K::kString && expr::ParseDurationText(a.str(), ms)) return Value::Duration(ms);
      return Value();
    }
    default: return Value();
  }
}

Value Evaluator::State::Aggregate(const PNode& x, const uint32_t* k, int64_t& vu) {
  const Window& w = p->windows[x.win];
  Agg agg = static_cast<Agg>(x.aux);
  int32_t first = INT32_MIN, last = INT32_MAX;
  bool all = w.kind == Window::kAll;
  if (w.kind == Window::kBetween) {
    first = w.from;
    last = w.to;
  } else if (!all) {
    int32_t t = Today();
    int y = 0, m = 0, d = 0;
    if (w.kind != Window::kLastDays) CivilFromDays(t, y, m, d);
    switch (w.kind) {
      case Window::kLastDays:
        first = w.include_today ? t - w.n + 1 : t - w.n;
        last = w.include_today ? t : t - 1;
        break;
      case Window::kThisMonth: first = DaysFromCivil(y, m, 1); last = t; break;
      case Window::kLastMonth:
        last = DaysFromCivil(y, m, 1) - 1;
        first = DaysFromCivil(m == 1 ? y - 1 : y, m == 1 ? 12 : m - 1, 1);
        break;
      case Window::kThisYear: first = DaysFromCivil(y, 1, 1); last = t; break;
      default: first = DaysFromCivil(y - 1, 1, 1); last = DaysFromCivil(y, 1, 1) - 1; break;
    }
  }
  int64_t oldest = kOldestUnknown;
  Value v = Fold(x, k, all, first, last, vu, oldest);
  if (exhausted) return Value();
  if (w.kind == Window::kLastDays && agg != Agg::kDaysSince) {
    // A sliding window's aggregate changes only when the window's events do, which is
    // usually weeks away: a tag over millions of persons must not be redone each midnight.
    // The change cannot come before the next midnight, so when an earlier bound is already
    // known the look-up would be wasted.
    if (vu > NextMidnight(p->zone)) vu = std::min(vu, SlideUntil(x.id, first, last, oldest));
  } else if (w.relative() || agg == Agg::kDaysSince) {
    // Calendar periods jump at their boundaries and days_since counts days itself: both
    // move with today.
    vu = std::min(vu, NextMidnight(p->zone));
  }
  return v;
}

// The aggregate's value over the local days [first, last] (all time when all). Sets oldest
// to the time of the window's oldest event of the type, or kWindowEmpty, when the way it
// read the window tells it for free; else leaves it.
Value Evaluator::State::Fold(const PNode& x, const uint32_t* k, bool all, int32_t first, int32_t last,
                             int64_t& vu, int64_t& oldest) {
  Agg agg = static_cast<Agg>(x.aux);
  const TimeZone& zone = p->zone;
  const bool filter = x.nkids > 0;
  const bool amount = x.flags == expr::kPropAmount;
  // The fast path: day counters, no event rescans.
  if (!filter && (agg == Agg::kCount || agg == Agg::kActiveDays || ((agg == Agg::kSum || agg == Agg::kAvg) && amount))) {
    Subject::Totals t = s->DayTotals(x.id, first, last);
    if (t.count == 0) oldest = kWindowEmpty;
    switch (agg) {
      case Agg::kCount: return Value::Int(static_cast<int64_t>(t.count));
      case Agg::kActiveDays: return Value::Int(t.active_days);
      case Agg::kSum: return Value::Money(t.amount);
      default: {
        int64_t q;
        if (t.count == 0 || !DivHalfEven(t.amount, static_cast<int64_t>(t.count), q)) return Value();
        return Value::Money(q);
      }
    }
  }
  int64_t from_ms = all ? INT64_MIN : DayStart(first);
  int64_t to_ms = all ? INT64_MAX : DayStart(last + 1);
  bool reverse = agg == Agg::kLast || agg == Agg::kDaysSince;
  uint64_t n = 0;
  int64_t fen = 0;
  bool overflow = false;
  double dsum = 0;
  int32_t last_day = INT32_MIN;
  Value acc = agg == Agg::kSum && !amount ? Value::Int(0) : Value();
  Value found;
  if (agg == Agg::kDistinct) distinct.Clear();
  // Oldest first, the first event the scan hands out is the window's oldest: noted before
  // the filter, because any event of the type leaving the window may change the result.
  if (!reverse) oldest = kWindowEmpty;
  s->Scan(x.id, from_ms, to_ms, reverse, [&](const EventView& e) {
    if (!reverse && oldest == kWindowEmpty) oldest = e.ts;
    if (!Step()) return false;
    if (filter) {
      ev = &e;
      bool keep = Truthy(Ev(k[0], vu));
      ev = nullptr;
      if (exhausted) return false;
      if (!keep) return true;
    }
    Value v;
    if (expr::AggTakesProp(agg)) {
      if (amount) {
        if (!e.has_amount && agg != Agg::kSum && agg != Agg::kAvg) return true;
        v = Value::Money(e.amount);
      } else {
        v = s->Prop(e, x.extra);
        if (v.is_null()) return true;
      }
    }
    switch (agg) {
      case Agg::kCount: ++n; return true;
      case Agg::kActiveDays: {
        int32_t day = zone.DayOf(e.ts);
        if (day != last_day) { ++n; last_day = day; }
        return true;
      }
      case Agg::kSum:
        if (amount) {
          overflow |= __builtin_add_overflow(fen, v.i, &fen);
        } else if (IsNumK(v.kind)) {
          acc = Arith(POp::kAdd, acc, v);
        }
        return true;
      case Agg::kAvg:
        if (amount) {
          overflow |= __builtin_add_overflow(fen, v.i, &fen);
          ++n;
        } else if (IsNumK(v.kind)) {
          dsum += AsDouble(v);
          ++n;
        }
        return true;
      case Agg::kMin:
      case Agg::kMax: {
        if (found.is_null()) { found = v; return true; }
        int c = expr::CompareValues(v, found);
        if (c != 2 && ((agg == Agg::kMin) ? c < 0 : c > 0)) found = v;
        return true;
      }
      case Agg::kDistinct: distinct.Insert(v); return true;
      default:  // first, last, days_since: the first event in scan order decides
        found = Value::Timestamp(e.ts);
        return false;
    }
  });
  if (exhausted) return Value();
  switch (agg) {
    case Agg::kCount:
    case Agg::kActiveDays: return Value::Int(static_cast<int64_t>(n));
    case Agg::kSum: return amount ? (overflow ? Value() : Value::Money(fen)) : acc;
    case Agg::kAvg: {
      if (n == 0) return Value();
      if (!amount) return DoubleOrNull(dsum / static_cast<double>(n));
      int64_t q;
      return !overflow && DivHalfEven(fen, static_cast<int64_t>(n), q) ? Value::Money(q) : Value();
    }
    case Agg::kDistinct: return Value::Int(distinct.size());
    case Agg::kDaysSince:
      if (found.is_null()) return Value();
      return Value::Int(Today() - zone.DayOf(found.i));
    default: return found;
  }
}

// The local midnight that starts the first day on which the events of `type` in the
// window [first, last] differ as it slides a day at a time: after s days it is
// [first + s, last + s], so the oldest event (day o) leaves at s = o - first + 1 and the
// first event dated after the window (day n, a future-dated event) enters at s = n - last.
// kForever when there is neither. It takes at most two scans, each stopping within a few
// events, and no steps, so it cannot change whether an evaluation fits max_steps.
int64_t Evaluator::State::SlideUntil(uint32_t type, int32_t first, int32_t last, int64_t oldest) {
  const TimeZone& zone = p->zone;
  // Days of instants beyond the civil range are taken at its edge: an earlier day only
  // brings the bound forward, which keeps it honest.
  auto day_of = [&](int64_t ts) -> int64_t {
    return zone.DayOf(std::clamp(ts, -kCivilLimitMs + 1, kCivilLimitMs - 1));
  };
  int64_t next = kWindowEmpty;  // the first event dated after the window, if any
  bool have_next = false;       // whether next is known
  if (oldest == kOldestUnknown) {
    // A scan from the window's start meets its oldest event first. Walking on a few events
    // also meets the first one after the window when the window holds only those few, as
    // most persons' windows do, and spares the second scan.
    constexpr int kWalk = 8;
    oldest = kWindowEmpty;
    have_next = true;  // unless the walk stops short of the end
    int walked = 0;
    s->Scan(type, DayStart(first), INT64_MAX, false, [&](const EventView& e) {
      int64_t day = day_of(e.ts);
      if (day > last) {
        next = e.ts;
        return false;
      }
      if (oldest == kWindowEmpty) oldest = e.ts;
      if (++walked < kWalk) return true;
      have_next = false;
      return false;
    });
  }
  int64_t days = INT64_MAX;
  if (oldest != kWindowEmpty) days = day_of(oldest) - first + 1;
  // One day is the least slide there is: then what might enter does not matter.
  if (!have_next && days > 1) {
    s->Scan(type, DayStart(last + 1), INT64_MAX, false, [&](const EventView& e) {
      next = e.ts;
      return false;
    });
  }
  if (next != kWindowEmpty) days = std::min(days, day_of(next) - last);
  if (days == INT64_MAX) return kForever;
  return DayStart(static_cast<int32_t>(Today() + days));
}

Evaluator::Evaluator(const ExprLimits& lim) : st_(std::make_unique<State>()) { st_->lim = lim; }
Evaluator::~Evaluator() = default;
Evaluator::Evaluator(Evaluator&&) noexcept = default;
Evaluator& Evaluator::operator=(Evaluator&&) noexcept = default;

absl::StatusOr<EvalResult> Evaluator::Eval(const Expr& e, const Subject& s, int64_t now_ms) {
  State& st = *st_;
  st.p = &e.program();
  st.s = &s;
  st.now = now_ms;
  bool new_zone = st.p->zone.name() != st.cached_zone;
  if (now_ms != st.cached_now || new_zone) {
    st.cached_now = now_ms;
    st.have_today = false;
    st.have_midnight = false;
  }
  if (new_zone) {
    st.cached_zone = st.p->zone.name();
    if (++st.day_start_gen == 0) {  // wrapped: no stale entry may match the new generation
      st.day_starts.fill({});
      st.day_start_gen = 1;
    }
  }
  st.steps = st.lim.max_steps;
  st.exhausted = false;
  st.ev = nullptr;
  st.arena.Reset();
  int64_t vu = kForever;
  Value v = st.Ev(st.p->root, vu);
  if (st.exhausted)
    return absl::ResourceExhaustedError(Cat("the evaluation took more than ", st.lim.max_steps, " steps"));
  if (vu <= now_ms) vu = now_ms == kForever ? kForever : now_ms + 1;
  return EvalResult{v, vu};
}

}  // namespace cdp
