// metrics.hpp — operating metrics over a population: the conversion funnel, the FAST+
// relationship metrics and customer lifetime value with propagation value.
//
// A brand reads its private-domain operation through a few numbers (shared/DOMAIN.md §2,
// §3): how many persons pass each step from exposure to payment, per channel; how many
// reachable relationships it has (Capital), how many deepened this period (Conversion),
// how active each field is (Connection); what each person is worth, counting the
// purchases of the users they brought (CLV). Each metric is a request (JSON) answered by a
// report (JSON), so the C API needs one entry point and a UI can add metrics without an
// ABI change; docs/metrics.md is the reference of both documents.
//
// Metrics only read. They see persons through Subject (the same view expressions have, so
// a FAST+ layer may test tags), over the profile slots of a Population: every live profile,
// or the slots of an audience bitmap. Every loop visits slots in ascending order and every
// list in a report has a total order, so a report is a function of the data and the
// request alone. Money is summed in int64 fen, saturating instead of wrapping.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "cdp/expr.hpp"
#include "cdp/policy.hpp"
#include "cdp/lifecycle.hpp"
#include "cdp/profile.hpp"
#include "roaring/roaring.hh"

namespace cdp::metrics {

// The persons a metric runs over, by profile slot (ProfileStore::slots()/AtSlot()).
struct Population {
  const ProfileStore& store;
  const ::Roaring* members;  // nullptr: every live profile; else only these slots
  // Calls f with the Subject of a live slot: the person's profile plus its tags.
  absl::FunctionRef<void(uint32_t slot, absl::FunctionRef<void(const Subject&)> f)> with_subject;
  // When given, clv's referrer values are looked up through it (the engine's Resolve:
  // normalised, scoped and, for a hashed type, hashed, as cdp_resolve does, so
  // "+86 138 0013 8000" finds mobile 13800138000); it returns the live OneID, or 0.
  // Without it, values must be in stored form already.
  std::function<uint64_t(uint32_t type, std::string_view value)> resolve;
  // When given, fast may name a lifecycle machine ("machine") whose states are the layers.
  const Lifecycle* lifecycle = nullptr;
};

// Runs the metric a request selects ({"metric":"funnel"|"fast"|"clv", ...}) and returns its
// report. names resolves event types and property keys and compiles expressions (the
// profile store is one); lim bounds those expressions. Errors: InvalidArgument naming the
// field ("funnel.steps[2]: expected an event type name", "fast.layers[1].when: line 1,
// column 9: ..."), or, for a JSON syntax error, its line and column; ResourceExhausted when
// a layer's evaluation passes lim.max_steps (naming the layer and the person).
absl::StatusOr<std::string> Run(const Population& pop, std::string_view request_json, Names& names,
                                const ExprLimits& lim);

}  // namespace cdp::metrics
