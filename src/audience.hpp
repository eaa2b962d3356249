// Audiences: an expression over tags and attributes, answered with bitmaps.
//
// The planner reads the expression's canonical JSON AST. &&, || and ! become bitmap
// operations. A leaf that reads one tag and nothing else (no attribute, event, identifier
// or clock) is indexed: for a category or list tag it is evaluated once per distinct value
// (with the expression evaluator itself, so the semantics cannot drift) and the bitmaps of
// the values where it holds are united; for a numeric tag, a comparison with a constant
// becomes a range of the bit-sliced index, whose ends are found by binary search over the
// encoded values with the same evaluator. Every other leaf is evaluated person by person,
// and only on the candidates the indexed parts of its conjunction left: the indexed
// children of an && are intersected first, smallest first, stopping when empty.
#pragma once

#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "cdp/tags.hpp"

namespace cdp {

struct PlanStats {
  uint32_t indexed_leaves = 0;   // leaves answered from bitmaps
  uint32_t scanned_leaves = 0;   // leaves evaluated per person
  uint64_t persons_evaluated = 0;
};

// The persons (slots) for which the expression is true at now. The expression is given
// as compiled (its AST is re-read); names are needed to compile the parts that are
// evaluated per person.
absl::StatusOr<Bitmap> SelectAudience(const TagEngine& tags, Names& names, const Expr& e, int64_t now,
                                      const ExprLimits& lim, PlanStats* stats);

// Every person's answer evaluated one by one: what SelectAudience must equal (tests).
Bitmap SelectAudienceByScan(const TagEngine& tags, const Expr& e, int64_t now, const ExprLimits& lim);

// The holdout group: a deterministic hash of the OneID and the salt, below basis_points
// of 10000. The same person, salt and share always fall on the same side.
bool InHoldout(uint64_t oneid, std::string_view salt, uint32_t basis_points);
// A person's deterministic bucket in [0, 10000) for a salt (holdouts, random splits).
uint32_t HoldoutBucket(uint64_t oneid, std::string_view salt);

}  // namespace cdp
