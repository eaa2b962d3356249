// cdp/policy.hpp — what an identifier is allowed to be, and how it links.
//
// Every identifier type (mobile, unionid, device_id, ...) has a policy: how raw values are
// normalised and validated, which values are junk (blocklist), how many of them one person
// may hold, and whether the type is trusted to join two persons on its own (strong) or only
// through weighted matching (weak). The engine config is a list of such policies plus the
// engine-wide limits; it is parsed from JSON by config.cpp.
//
// Cleaning comes before merging (DOMAIN.md, data governance): a value that fails its policy
// never reaches the identity graph; it is counted in the ingest report by reason.
#pragma once

#include <cstdint>
#include <memory>
#include <regex>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "cdp/calendar.hpp"
#include "cdp/value.hpp"

namespace cdp {

// Transparent hashing of std::string keys by std::string_view (abseil's StringHash takes
// absl::string_view, which Debian's abseil keeps distinct from std::string_view).
struct StrHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
struct StrEq {
  using is_transparent = void;
  bool operator()(std::string_view a, std::string_view b) const { return a == b; }
};

enum class Normalizer : uint8_t { kNone, kTrim, kLower, kCnMobile, kEmail, kRegex };
enum class Trust : uint8_t { kStrong, kWeak };

// Why an identifier value was not taken. Pinned order: the names appear in reports.
enum class Rejection : uint8_t {
  kInvalid,      // the normaliser or the validation pattern refused it
  kBlocked,      // on the blocklist (exact, pattern or repeated-character rule)
  kTooLong,      // longer than the policy's max_length
  kMissingScope, // a scoped type without its scope field in the record
  kQuarantined,  // the identifier was quarantined for causing refused unions
  kUnknownType,  // the type is not configured and unknown types are refused
  kOverLimit,    // more identifiers in one record than limits.max_ids_per_record
  kForgotten,    // the identifier of a person forgotten on request (a tombstone holds it)
  kCount_
};
std::string_view RejectionName(Rejection r);

// Names of identifier types, attributes, event types, properties and consent channels, as
// records and configs give them: 1 to 64 of [A-Za-z0-9_.-].
bool ValidTypeName(std::string_view name);

// A blocklist: exact values (compared after normalisation), patterns (std::regex, whole
// match, ECMAScript), and the built-in rule for placeholder values: all characters the
// same once separators are dropped ("00000000", "11111111111", the all-zero UUID).
struct Blocklist {
  absl::flat_hash_set<std::string, StrHash, StrEq> exact;
  std::vector<std::string> patterns;
  bool repeated = false;
  uint32_t repeated_min_length = 3;
  // Compiled from patterns.
  std::vector<std::shared_ptr<const std::regex>> compiled;

  bool Blocks(std::string_view normalized) const;
};

struct IdPolicy {
  std::string name;
  Normalizer normalizer = Normalizer::kTrim;
  std::string regex_pattern;  // kRegex: the pattern; its replacement below
  std::string regex_replace = "$&";
  std::string validate;       // optional whole-match pattern after normalisation
  uint32_t max_length = 128;
  uint32_t max_per_person = 0;  // 0: unlimited; 1: unique
  int32_t priority = 0;         // higher wins the anchor and the survivor tie-break
  Trust trust = Trust::kStrong;
  double weight = 0.0;          // weak types: contribution to weighted matching
  std::string scope;            // a record field that namespaces values ("app")
  Blocklist blocklist;          // type-specific; the global pack applies as well
  // Stored as a keyed hash of the normalised value and its mask (HashedValue below), not
  // the value: the engine needs a key (Engine::Open's key) and never holds the raw value.
  bool hashed = false;
  // Compiled.
  std::shared_ptr<const std::regex> normalize_re;
  std::shared_ptr<const std::regex> validate_re;
  int limit_slot = -1;  // index among types with max_per_person > 0, or -1
  bool configured = true;  // false: registered on first sight with the unknown-type policy
};

struct Limits {
  uint32_t max_record_bytes = 64 * 1024;
  uint32_t max_ids_per_record = 64;
  uint32_t max_id_bytes = 1024;  // a raw identifier value longer than this: malformed line
  uint64_t max_batch_bytes = 1ull << 31;
  uint32_t max_errors_listed = 1000;
  uint32_t max_ids_per_person = 1000;  // a union that would pass it is refused
  // Expressions (tags, audiences, guards come from users): every cap is an error.
  uint32_t max_expr_bytes = 64 * 1024;
  uint32_t max_expr_nodes = 4096;
  uint32_t max_expr_depth = 128;
  uint64_t max_expr_steps = 1'000'000;  // per evaluation
  uint32_t max_expr_list = 10'000;
  // Definitions (tags, saved audiences): each is evaluated for every person.
  uint32_t max_tags = 1000;
  uint32_t max_audiences = 1000;
  // Lifecycle: machines + journeys; history kept per person; unacknowledged intents held.
  uint32_t max_lifecycle_definitions = 1000;
  uint32_t max_history = 64;
  uint32_t max_outbox = 1'000'000;
};

// When a persistent engine's write-ahead log reaches the disk (docs/guarantees.md).
enum class SyncPolicy : uint8_t {
  kBatch,  // fsync before every acknowledged write returns: nothing acknowledged is lost
  kNone,   // leave it to the OS: survives a process crash, not a power loss (bulk loads)
};

// How the values of one attribute from many records become the person's value
// (survivorship), each keeping its lineage: the source and time of the value that won.
enum class Survivorship : uint8_t {
  kLatest,          // the value with the latest event time (null included: null clears)
  kFirst,           // the earliest
  kSourcePriority,  // from the best-ranked source (AttrPolicy::sources), then the latest
  kMax, kMin,       // by value order
  kSum,             // numeric total
  kNonEmpty,        // the latest that is not null, "" or []
  kUnion,           // lists: the union of all values
};
std::string_view SurvivorshipName(Survivorship s);

struct AttrPolicy {
  std::string name;
  ValueKind type = ValueKind::kNull;  // kNull: each value's JSON type decides
  Survivorship rule = Survivorship::kLatest;
  std::vector<std::string> sources;   // kSourcePriority: best first; unlisted rank last
};

struct ProfileConfig {
  std::string timezone = "Asia/Shanghai";
  uint32_t horizon_days = 400;        // day counters reach this far back from the newest event
  uint32_t max_attrs_per_record = 128;
  uint32_t max_props_per_event = 16;
  uint32_t max_list_items = 256;
  uint32_t max_value_bytes = 4096;    // one string attribute or property value
  std::vector<AttrPolicy> attributes; // declared attributes; others are inferred, kLatest
};

struct EngineConfig {
  std::string tags_json;            // "tags": definitions installed at open (docs/tags.md)
  std::string lifecycle_json;       // "lifecycle": a definition document installed at open (docs/lifecycle.md)
  std::vector<IdPolicy> types;      // type id = index
  IdPolicy unknown_type_policy;     // template for types a record names but config lacks
  bool accept_unknown_types = true;
  Blocklist global_blocklist;       // applies to every type
  double match_threshold = 1.0;     // weighted matching of weak identifiers
  uint32_t quarantine_after = 20;   // distinct persons refused before quarantine
  uint64_t oneid_seed = 0;          // mixes into OneID derivation
  // privacy: forgotten identifiers. Tombstones block them for good ("block"), or until a
  // record carrying one has an event of type consent_event ("consent").
  enum class Tombstones : uint8_t { kBlock, kConsent };
  Tombstones tombstones = Tombstones::kBlock;
  std::string consent_event = "consent";
  // privacy.consent: what a person who never stated consent for a channel gets (records
  // carry statements, docs/records.md): the channel's own default, else `granted`.
  struct ConsentDefaults {
    bool granted = true;
    absl::flat_hash_map<std::string, bool, StrHash, StrEq> channels;
    bool For(std::string_view channel) const {
      auto it = channels.find(channel);
      return it == channels.end() ? granted : it->second;
    }
  };
  ConsentDefaults consent;
  Limits limits;
  ProfileConfig profile;
  SyncPolicy sync = SyncPolicy::kBatch;  // durability.sync; in-memory engines ignore it
  // durability.snapshot_log_bytes: a persistent engine snapshots itself once this much log
  // has been written since its last snapshot (0: only when asked).
  uint64_t snapshot_log_bytes = uint64_t{256} << 20;
  TimeZone zone;                    // compiled from profile.timezone

  // Rank of each type by name: the order-independent tie-break between identifiers
  // (type ids depend on the order types were first seen). Kept by RankTypes().
  std::vector<uint32_t> name_rank;

  int FindType(std::string_view name) const;
  // Whether any identifier type is stored hashed, or may be (unknown types' policy).
  bool AnyHashed() const;
  const AttrPolicy* FindAttr(std::string_view name) const;
  void RankTypes();
  // Registers a type first seen in a record, under unknown_type_policy; returns its id.
  uint32_t AddUnknownType(std::string_view name);
};

// Parses an engine config document. Missing keys take the defaults of the built-in
// config; errors name the JSON path (id_types.mobile.normalizer) or the line and column.
absl::StatusOr<EngineConfig> ParseConfig(std::string_view json);
// The built-in default config as JSON (what ParseConfig("") uses).
std::string_view DefaultConfigJson();

// Normalises a raw value under a policy. Writes into out (cleared first). Returns the
// rejection reason, or nullopt-like kCount_ on success.
Rejection NormalizeId(const IdPolicy& p, const Blocklist& global, std::string_view raw,
                      std::string& out);

// Masks a value for display: 138****8000 for mobiles, a***@x.com for emails, the ends
// only for others. Scoped values ("app/openid") keep their scope.
std::string MaskValue(Normalizer kind, std::string_view value);

// A hashed type's stored value: '#', the first 16 bytes of the keyed hash in unpadded
// base64url (22 characters), '|', and the value's mask ("#mK3...Q|138****8000"). Equal
// values under one key store equal bytes, so matching works on the stored form; the mask
// is what outputs show. kHashedDigestBytes: how much of the HMAC-SHA-256 is kept.
inline constexpr size_t kHashedDigestBytes = 16;
inline constexpr size_t kHashedPrefix = 1 + 22 + 1;
// Builds the stored form from a digest (at least kHashedDigestBytes) and the mask.
std::string HashedValue(const uint8_t* digest, std::string_view mask);
// Whether v has the stored form's shape (it may still be a raw value that looks alike:
// callers ask only of hashed types, whose values never have that shape).
bool IsHashedValue(std::string_view v);
// What outputs show of a stored value: masked, a hashed type's mask (stored with it) or
// MaskValue of the value; unmasked, the value as stored (for a hashed type, the hash and
// mask: the raw value is held nowhere).
std::string ShowValue(const IdPolicy& p, std::string_view stored, bool mask);

}  // namespace cdp
