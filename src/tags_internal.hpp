// Internal to the tag engine and audiences: tag definitions as compiled, and the columns
// that hold their values with the bitmaps that index them.
#pragma once

#include <array>
#include <deque>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "cdp/tags.hpp"
#include "simdjson.h"

namespace cdp::tags {

enum class Kind : uint8_t { kRule, kStatistic, kBucket, kRfm, kPreference, kScore, kImport };
std::string_view KindName(Kind k);

// How values are stored and indexed.
enum class Shape : uint8_t {
  kCategory,  // strings and booleans: a code per person, a bitmap per value
  kNumber,    // int, double, money, timestamp, date, duration: bit-sliced index
  kList,      // lists of strings: a list per person, a bitmap per item
};
std::string_view ShapeName(Shape s);

// One tag's values by slot.
struct Column {
  Shape shape = Shape::kCategory;
  ValueKind kind = ValueKind::kString;  // number: the kind of every value; else informative

  // Category and list items: values by code (code 0 is null), a bitmap per code. Erasure
  // wipes values no slot holds: the code stays, dead (kNull, "", an empty bitmap, in no
  // index), so the others keep theirs; the same text later gets a new code.
  std::vector<uint32_t> code;           // category: by slot
  std::deque<std::string> strings;      // code - 1 → text (bool codes: "false", "true")
  std::vector<ValueKind> code_kind;     // code - 1 → kString, kBool, or kNull (wiped)
  uint32_t dead = 0;                    // wiped codes
  absl::flat_hash_map<std::string_view, uint32_t> string_codes, bool_codes;  // views into strings
  std::vector<Bitmap> by_code;          // code → slots (index 0 unused)

  // Number: the order-preserving encoding by slot, and its bit slices.
  std::vector<uint64_t> enc;
  Bitmap exists;
  std::array<Bitmap, 64> slices;

  // List: a list id per slot (0: null); lists interned by their item codes. A wiped list
  // keeps its id, dead, with no items and in no index.
  std::vector<uint32_t> list;
  struct List {
    std::vector<uint32_t> codes;
    std::unique_ptr<Value[]> values;
    bool dead = false;
  };
  std::vector<List> lists;  // id - 1 → list
  absl::flat_hash_map<std::string, uint32_t> list_index;

  uint64_t with_value = 0;  // persons whose value is not null

  // Code of a string or bool value, interned when intern is set (0: none).
  uint32_t CodeOf(const Value& v, bool intern);
  uint32_t FindCode(const Value& v) const;
  Value CodeValue(uint32_t c) const;
  // Sets a slot's value; false when it was already that value. v is converted to the
  // column's shape (a value that does not fit is stored as null).
  bool Set(uint32_t slot, const Value& v);
  Value Get(uint32_t slot) const;
  bool Has(uint32_t slot) const;
  void Clear(uint32_t slot) { Set(slot, Value()); }
  void Grow(uint32_t slots);
  // The slots whose value is not null.
  Bitmap Existing() const;
  // Number columns: the slots whose encoded value lies in [lo, hi].
  Bitmap Range(uint64_t lo, uint64_t hi) const;
  uint64_t bytes() const;
  // Erasure: wipes the string values no slot holds (their bitmap is empty), overwriting
  // the text, and in a list column the lists no slot holds. Returns the values wiped.
  // (Linear in the codes, and for a list column in the slots: no value moves, so no
  // index is rebuilt.)
  uint32_t WipeUnheld();

  // Snapshots: everything but what Load rebuilds from it (the code and list indexes, the
  // lists' values, with_value, dead). A wiped code is saved with kind kNull and no text, a
  // wiped list as the one-item list of code 0.
  void Save(snap::Writer& w) const;
  // Into a fresh column whose shape and kind its definition set (the saved ones must be
  // the same); every slot must be below slots. False (and r failed) when the bytes do not
  // make a consistent column.
  bool Load(snap::Reader& r, uint32_t slots);

  static uint64_t Encode(const Value& v);
  Value Decode(uint64_t e) const;
};

// What an expression (or a part of its JSON AST) reads.
struct ReadSet {
  std::vector<uint32_t> attrs, events, tags;  // sorted, unique after Normalize
  bool any_event = false;  // events of any type
  bool person = false;     // person.* or ids.* (change with every record or identity change)
  bool state = false;      // state.*
  bool clock = false;      // now() or today()
  void Add(const Expr& e, Names& names);
  void AddAst(simdjson::dom::element ast, Names& names);
  void Normalize();
};

struct Window {
  int32_t last_days = 0;  // 0: all time
};

struct Def {
  uint32_t id = 0;
  std::string name, description, json;
  Kind kind = Kind::kRule;
  int64_t version = 1;
  Shape shape = Shape::kCategory;
  ValueKind value_kind = ValueKind::kString;
  ReadSet reads;
  bool time_dependent = false;  // its own rules, or a tag it reads

  // rule: value rules (first match wins) or, when rules is empty, one condition (a bool tag).
  struct Rule {
    Expr when;
    std::string value;
  };
  std::vector<Rule> rules;
  bool has_default = false;
  std::string default_value;
  // statistic, bucket, rule-as-condition: the expression.
  std::vector<Expr> exprs;
  // bucket: [min, max) per value, first match wins.
  struct Bucket {
    double min = -HUGE_VAL, max = HUGE_VAL;
    std::string value;
  };
  std::vector<Bucket> buckets;
  // rfm: exprs[0..2] are recency (days), frequency, monetary; thresholds per dimension.
  struct Rfm {
    bool quantiles = false;
    uint32_t levels = 5;                      // quantiles: scores 1..levels
    std::array<std::vector<double>, 3> cuts;  // ascending thresholds per dimension
    struct Group {
      std::string value;
      std::array<std::pair<int, int>, 3> range{{{1, 99}, {1, 99}, {1, 99}}};
    };
    std::vector<Group> groups;
  } rfm;
  // preference: the top k values of an event property.
  struct Preference {
    std::vector<uint32_t> events;
    uint32_t prop = 0;
    bool prop_is_amount = false;
    uint32_t top = 1;
    bool weight_amount = false;
    double half_life_days = 0;  // 0: no decay
    Window window;
  } pref;
  // score: points per behaviour with caps per period.
  struct ScoreRule {
    uint32_t event = 0;
    int64_t points = 0;
    enum Per : uint8_t { kNone, kDay, kWeek, kMonth, kForever } per = kNone;
    int64_t cap = 0;  // points per period (0: no cap)
  };
  struct Score {
    std::vector<ScoreRule> rules;
    double half_life_days = 0;
    Window window;
  } score;
  // import: the attribute that carries the value.
  uint32_t import_attr = 0;
};

}  // namespace cdp::tags
