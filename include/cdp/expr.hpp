// cdp/expr.hpp — the one expression language of tags, audiences and lifecycle guards.
//
// A marketer writes `attrs.city == "上海" && count(order, 30d) >= 2`; a UI builds the same
// condition as JSON. Both become an Expr: Compile reads the text, FromAst reads the JSON,
// and AstJson writes the canonical JSON back, so a condition can travel between the two
// (docs/expressions.md is the reference of both forms).
//
// Compiling checks everything that can be checked without a person (syntax, arity, types
// known statically, unknown identifier types, regex patterns) and resolves every name to
// an id through Names, once. The compiled form is a flat node array; an Evaluator walks it
// against one person (a Subject) without looking up a string or allocating, because
// evaluation runs once per person per condition over millions of persons.
//
// Time is an argument: Eval takes now_ms and never reads a clock. "The last 30 days" means
// local calendar days of the zone the expression was compiled in. Each result says how long
// it stays true without new input (valid_until), so a caller can schedule re-evaluation of
// time-dependent conditions instead of re-running them all every night.
//
// Every cap (text size, nodes, depth, list size, evaluation steps) is an error, never a
// hang or a crash: expressions come from users.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "cdp/calendar.hpp"
#include "cdp/subject.hpp"
#include "cdp/value.hpp"

namespace cdp {

struct ExprLimits {
  uint32_t max_text_bytes = 64 * 1024;
  uint32_t max_nodes = 4096;          // AST nodes
  uint32_t max_depth = 128;           // nesting of the AST
  uint64_t max_steps = 1'000'000;     // per Eval: nodes visited + events scanned + regex steps
  uint32_t max_list = 10'000;         // items of a list literal or of a list built at run time
};

namespace expr { struct Program; }

// A compiled expression. Immutable; copies share the compiled form; safe to evaluate from
// many threads at once (each with its own Evaluator).
class Expr {
 public:
  // Errors are InvalidArgument and say where: "line 1, column 17: expected ')' after the
  // arguments of count, found ','"; for FromAst, the JSON path: "args[1].args[0]: unknown
  // op \"=~\"".
  static absl::StatusOr<Expr> Compile(std::string_view text, Names& names, const ExprLimits& lim = {});
  static absl::StatusOr<Expr> FromAst(std::string_view ast_json, Names& names, const ExprLimits& lim = {});

  // The canonical JSON AST: AstJson of FromAst(AstJson()) is the same text.
  const std::string& AstJson() const;
  // True when the value may change with time alone (now(), today(), relative windows,
  // days_since): such results carry a finite valid_until.
  bool time_dependent() const;
  // The static result type: "bool", "int", "double", "money", "string", "timestamp",
  // "duration", "date", "list", "null", or "any" when only evaluation can tell.
  std::string_view result_type() const;
  // The zone of local days, copied from Names::Zone() at compile time.
  const TimeZone& zone() const;

  // The compiled form, for the evaluator (expr::Program is internal to the library).
  const expr::Program& program() const { return *p_; }

 private:
  explicit Expr(std::shared_ptr<const expr::Program> p) : p_(std::move(p)) {}
  std::shared_ptr<const expr::Program> p_;
};

inline constexpr int64_t kForever = INT64_MAX;

struct EvalResult {
  Value value;
  // The first instant (epoch ms, > now) at which the value may differ without new input;
  // kForever if no such instant. Never later than the true change.
  int64_t valid_until = kForever;
};

// Evaluates expressions for one thread. It owns the scratch space of evaluation (strings
// built by lower/upper/+, lists, the set of distinct(), regex state), cleared and reused,
// so Eval does not allocate once it has seen its largest expression and person.
class Evaluator {
 public:
  explicit Evaluator(const ExprLimits& lim = {});
  ~Evaluator();
  Evaluator(Evaluator&&) noexcept;
  Evaluator& operator=(Evaluator&&) noexcept;

  // The result may point into this evaluator's scratch or into the subject's storage: it
  // stays valid until the next Eval and while the subject's store is not written to. The
  // only error is running out of steps (ResourceExhausted).
  absl::StatusOr<EvalResult> Eval(const Expr& e, const Subject& s, int64_t now_ms);

  struct State;

 private:
  std::unique_ptr<State> st_;
};

// Appends v as JSON: null, true/false, int and double as numbers (double: shortest
// round-trip; NaN and infinities as null), money as a number with exactly two decimals
// (199.00), string as a string, timestamp and duration as integer ms, date as
// "YYYY-MM-DD", list as an array.
void AppendValueJson(std::string& out, const Value& v);

}  // namespace cdp
