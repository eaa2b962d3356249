// expr_internal.hpp — the pieces of the expression module that its sources share.
//
// Text (expr_parse.cpp) and JSON (expr_ast.cpp) both produce an Ast; the compiler
// (expr_compile.cpp) checks an Ast and lowers it to a Program, a flat node array with every
// name resolved to an id; the evaluator (expr_eval.cpp) walks the Program. The Ast is also
// what the canonical JSON is written from, so the two front ends meet in one place.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "cdp/calendar.hpp"
#include "cdp/expr.hpp"
#include "cdp/value.hpp"

namespace cdp::expr {

// ---- the Ast -------------------------------------------------------------------------

enum class Op : uint8_t {
  kLit, kList, kRef, kNot, kNeg, kAnd, kOr, kCond,
  kEq, kNe, kLt, kLe, kGt, kGe, kIn,
  kAdd, kSub, kMul, kDiv, kMod, kIndex, kCall, kAgg,
};
// The operator's spelling in text and in the JSON ("neg" for unary minus, "list", "[]").
std::string_view OpName(Op op);
bool OpFromName(std::string_view s, Op& op);  // operators only: not kLit/kRef/kCall/kAgg

enum class Ref : uint8_t { kAttrs, kPerson, kIds, kTags, kState, kEvent };
std::string_view RefName(Ref r);
bool RefFromName(std::string_view s, Ref& r);

// Scalar functions. Window aggregates are separate (Agg).
enum class Fn : uint8_t {
  kHas, kSize, kContains, kStartsWith, kEndsWith, kMatches, kLower, kUpper,
  kYear, kMonth, kDay, kWeekday, kHour, kDaysBetween, kToday, kNow,
  kInt, kDouble, kString, kAbs, kLeast, kGreatest,
  kDate, kTimestamp, kMoney, kYuan, kDuration, kConsent,
};
struct FnInfo {
  std::string_view name;
  Fn fn;
  uint8_t min_args, max_args;
  bool method;  // may be written x.f(...)
};
const FnInfo* FindFn(std::string_view name);
const FnInfo& FnInfoOf(Fn fn);

enum class Agg : uint8_t {
  kCount, kSum, kAvg, kMin, kMax, kDistinct, kActiveDays, kFirst, kLast, kDaysSince,
};
std::string_view AggName(Agg a);
bool AggFromName(std::string_view s, Agg& a);
bool AggTakesProp(Agg a);  // sum/avg/min/max/distinct need event.prop; the others refuse one

// A window of local days. kAll: no window (all time).
struct Window {
  enum Kind : uint8_t { kAll, kLastDays, kThisMonth, kLastMonth, kThisYear, kLastYear, kBetween };
  Kind kind = kAll;
  bool include_today = true;  // kLastDays
  int32_t n = 0;              // kLastDays
  int32_t from = 0, to = 0;   // kBetween: local days, inclusive
  bool relative() const { return kind != kAll && kind != kBetween; }
};
std::string_view WindowPeriodName(Window::Kind k);  // this_month, last_month, this_year, last_year

// Literal kinds: the Value kinds, less list (a list literal is Op::kList).
struct Literal {
  ValueKind kind = ValueKind::kNull;
  int64_t i = 0;  // bool, int, money (fen), timestamp, duration, date
  double d = 0;
  std::string s;
};

struct Node {
  Op op = Op::kLit;
  uint32_t pos = 0;          // byte offset in the text, for errors
  std::string path;          // JSON path, for errors (FromAst only)
  std::vector<int> args;     // children (kAgg: the filter, if any)
  Literal lit;               // kLit
  Ref ref = Ref::kAttrs;     // kRef
  std::string name;          // kRef: the field; kAgg: the event type ("*" = any)
  std::string prop;          // kAgg: the event property (sum/avg/min/max/distinct)
  Fn fn = Fn::kHas;          // kCall
  Agg agg = Agg::kCount;     // kAgg
  Window window;             // kAgg
};

struct Ast {
  std::vector<Node> nodes;
  int root = -1;
  // Formats where node n is, for an error message ("line 1, column 17" or a JSON path).
  std::function<std::string(const Node&)> where;
};

absl::Status ParseText(std::string_view text, const ExprLimits& lim, Ast& ast);
absl::Status ParseJson(std::string_view json, const ExprLimits& lim, Ast& ast);
std::string WriteJson(const Ast& ast);

// The text of a date literal, "2024-03-01"; and the reverse (strict; false if malformed).
std::string DateText(int32_t day);
bool ParseDate(std::string_view s, int32_t& day);
// Durations as text: "30d", "1d12h", "500ms" (the literal syntax); false if malformed.
// The unit at s[i] (d, h, m, s, ms) in milliseconds; advances i past it.
bool DurationUnit(std::string_view s, size_t& i, int64_t& unit);
bool ParseDurationText(std::string_view s, int64_t& ms);
void AppendDurationText(std::string& out, int64_t ms);
// ISO-8601 in a zone: 2024-03-01T10:00:00+08:00 (milliseconds when not zero).
void AppendTimestampText(std::string& out, int64_t ms, const TimeZone& zone);
// Money as "199.00" / "-0.50".
void AppendMoney(std::string& out, int64_t fen);
// Shortest text that reads back as the same double.
void AppendDouble(std::string& out, double d);

// ---- the regex subset ----------------------------------------------------------------

// A compiled pattern: a Thompson NFA over code points, simulated breadth-first (Pike) so
// matching costs O(text × pattern) whatever the pattern.
struct Regex {
  enum Code : uint8_t { kChar, kAny, kClass, kSplit, kJmp, kBol, kEol, kMatch };
  struct Inst {
    Code code;
    bool negate = false;  // kClass
    uint32_t x = 0, y = 0;  // kChar: code point; kClass: range offset, count; kSplit/kJmp: targets
  };
  std::vector<Inst> prog;
  std::vector<std::pair<uint32_t, uint32_t>> ranges;  // class ranges, inclusive
  bool anchored = false;  // starts with ^ on every path: try position 0 only
  // The parse tree, scratch of compiling: kept so that compiling a pattern again (one
  // that is not a literal, at evaluation) reuses its storage.
  struct TreeNode {
    uint8_t kind = 0;
    bool negate = false;
    int32_t min = 0, max = 0;      // repetition; max -1 = unbounded
    uint32_t cp = 0, range_off = 0, range_n = 0;
    int32_t first = -1, last = -1, next = -1;  // children as a list
  };
  std::vector<TreeNode> tree;
};
inline constexpr size_t kMaxPatternBytes = 1024;
inline constexpr size_t kMaxRegexInsts = 8192;
// Compiles pattern into re (reusing its storage). On failure returns false and sets *error
// (if given) with the byte offset in *at.
bool CompileRegex(std::string_view pattern, Regex& re, std::string* error, size_t* at);
// Scratch for matching; owned by an evaluator, reused.
struct RegexScratch {
  std::vector<uint32_t> dense_a, sparse_a, dense_b, sparse_b, stack;
};
// Returns 1 match, 0 no match, -1 when the step budget ran out (steps is decremented).
int MatchRegex(const Regex& re, std::string_view text, RegexScratch& scratch, uint64_t& steps);

// ---- the Program ---------------------------------------------------------------------

// Static types: the value kinds, plus kAny for what is known only at run time.
enum class Ty : uint8_t {
  kNull, kBool, kInt, kDouble, kMoney, kString, kTimestamp, kDuration, kDate, kList, kAny,
};
std::string_view TyName(Ty t);

enum class POp : uint8_t {
  kConst, kList, kAttr, kFirstSeen, kLastSeen, kIds, kHasIds, kTag, kState, kConsent,
  kEventProp, kEventAmount, kEventTs,
  kNot, kNeg, kAnd, kOr, kCond, kEq, kNe, kLt, kLe, kGt, kGe, kIn,
  kAdd, kSub, kMul, kDiv, kMod, kIndex, kCall, kAgg,
};

// Flags of a comparison whose one side moves with now() (slope ±1) and whose other side
// does not depend on time: its valid_until is the exact instant it flips.
enum : uint8_t { kLinearLeft = 1, kLinearRight = 2, kSlopeNegative = 4 };
// kAgg: where the property comes from.
enum : uint8_t { kPropNone = 0, kPropAmount = 1, kPropKey = 2 };

struct PNode {
  POp op = POp::kConst;
  uint8_t aux = 0;    // kCall: Fn; kAgg: Agg; kConsent: the channel's default (1 granted)
  uint8_t flags = 0;  // comparisons: kLinear*; kAgg: kProp*
  uint8_t nkids = 0;
  uint32_t kid = 0;   // first child in Program::kids
  uint32_t id = 0;    // attr (kConsent: the channel's) / id type / tag / machine / prop key /
                      // event type; kAgg: event type
  uint32_t extra = 0; // kAgg: prop key; kCall: regex index or zone index (+1; 0 = none)
  uint32_t win = 0;   // kAgg: window index
  Value k;            // kConst
};

struct Program {
  std::vector<PNode> nodes;
  std::vector<uint32_t> kids;
  uint32_t root = 0;
  std::vector<Window> windows;
  std::vector<Regex> regexes;
  std::vector<TimeZone> zones;
  std::deque<std::string> strings;          // constant strings; a deque never moves them
  std::deque<std::vector<Value>> lists;     // constant lists
  TimeZone zone;
  std::string ast_json;
  bool time_dependent = false;
  Ty type = Ty::kAny;
};

// Normalises ast (folds constant constructors and negated literals), writes its canonical
// JSON, checks it and lowers it into p.
absl::Status CompileAst(Ast& ast, Names& names, const ExprLimits& lim, Program& p);

// Value semantics shared by the evaluator and the compiler.
bool ValuesEqual(const Value& a, const Value& b);
// -1, 0, 1; or 2 when a and b are not ordered (null, different kinds, lists, bools).
int CompareValues(const Value& a, const Value& b);

}  // namespace cdp::expr
