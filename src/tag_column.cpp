// Tag columns: values by slot and the bitmaps that index them.
//
// Numbers are stored in an order-preserving 64-bit encoding (integers with the sign bit
// flipped; doubles with the sign bit flipped when positive and every bit flipped when
// negative), so one unsigned comparison orders any numeric kind, and the bit-sliced index
// (slice i = the persons whose encoding has bit i set) answers ranges with O'Neil's
// algorithm: one pass from the top bit, a few bitmap operations per bit that matters.
#include <algorithm>
#include <bit>
#include <cstring>
#include <string>
#include <vector>

#include "bitmap_io.hpp"
#include "snapshot.hpp"
#include "tags_internal.hpp"
#include "util.hpp"

namespace cdp::tags {

std::string_view KindName(Kind k) {
  switch (k) {
    case Kind::kRule: return "rule";
    case Kind::kStatistic: return "statistic";
    case Kind::kBucket: return "bucket";
    case Kind::kRfm: return "rfm";
    case Kind::kPreference: return "preference";
    case Kind::kScore: return "score";
    case Kind::kImport: return "import";
  }
  return "?";
}

std::string_view ShapeName(Shape s) {
  switch (s) {
    case Shape::kCategory: return "category";
    case Shape::kNumber: return "number";
    case Shape::kList: return "list";
  }
  return "?";
}

namespace {
constexpr uint64_t kSign = uint64_t{1} << 63;
// How a wiped list is saved: code 0 (null) is in no list.
const std::vector<uint32_t> kDeadList = {0};
}  // namespace

uint64_t Column::Encode(const Value& v) {
  if (v.kind == ValueKind::kDouble) {
    uint64_t b = std::bit_cast<uint64_t>(v.d == 0 ? 0.0 : v.d);  // -0 and 0 are one value
    return (b & kSign) ? ~b : b | kSign;
  }
  return static_cast<uint64_t>(v.i) ^ kSign;
}

Value Column::Decode(uint64_t e) const {
  if (kind == ValueKind::kDouble) return Value::Double(std::bit_cast<double>((e & kSign) ? e & ~kSign : ~e));
  int64_t i = static_cast<int64_t>(e ^ kSign);
  switch (kind) {
    case ValueKind::kMoney: return Value::Money(i);
    case ValueKind::kTimestamp: return Value::Timestamp(i);
    case ValueKind::kDuration: return Value::Duration(i);
    case ValueKind::kDate: return Value::Date(i);
    default: return Value::Int(i);
  }
}

uint32_t Column::FindCode(const Value& v) const {
  if (v.kind == ValueKind::kString) {
    auto it = string_codes.find(v.str());
    return it == string_codes.end() ? 0 : it->second;
  }
  if (v.kind == ValueKind::kBool) {
    auto it = bool_codes.find(v.b ? "true" : "false");
    return it == bool_codes.end() ? 0 : it->second;
  }
  return 0;
}

uint32_t Column::CodeOf(const Value& v, bool intern) {
  if (uint32_t c = FindCode(v); c || !intern) return c;
  if (v.kind != ValueKind::kString && v.kind != ValueKind::kBool) return 0;
  std::string text = v.kind == ValueKind::kBool ? (v.b ? "true" : "false") : std::string(v.str());
  strings.push_back(std::move(text));
  code_kind.push_back(v.kind);
  by_code.resize(strings.size() + 1);
  auto c = static_cast<uint32_t>(strings.size());
  (v.kind == ValueKind::kBool ? bool_codes : string_codes).emplace(std::string_view(strings.back()), c);
  return c;
}

Value Column::CodeValue(uint32_t c) const {
  if (c == 0 || code_kind[c - 1] == ValueKind::kNull) return Value();
  if (code_kind[c - 1] == ValueKind::kBool) return Value::Bool(strings[c - 1] == "true");
  return Value::String(strings[c - 1]);
}

void Column::Grow(uint32_t slots) {
  switch (shape) {
    case Shape::kCategory: if (code.size() < slots) code.resize(slots, 0); break;
    case Shape::kNumber: if (enc.size() < slots) enc.resize(slots, 0); break;
    case Shape::kList: if (list.size() < slots) list.resize(slots, 0); break;
  }
}

bool Column::Has(uint32_t slot) const {
  switch (shape) {
    case Shape::kCategory: return slot < code.size() && code[slot] != 0;
    case Shape::kNumber: return exists.contains(slot);
    case Shape::kList: return slot < list.size() && list[slot] != 0;
  }
  return false;
}

Value Column::Get(uint32_t slot) const {
  switch (shape) {
    case Shape::kCategory: return slot < code.size() ? CodeValue(code[slot]) : Value();
    case Shape::kNumber: return slot < enc.size() && exists.contains(slot) ? Decode(enc[slot]) : Value();
    case Shape::kList: {
      if (slot >= list.size() || list[slot] == 0) return Value();
      const List& l = lists[list[slot] - 1];
      return Value::List(l.values.get(), static_cast<uint32_t>(l.codes.size()));
    }
  }
  return Value();
}

bool Column::Set(uint32_t slot, const Value& v) {
  Grow(slot + 1);
  switch (shape) {
    case Shape::kCategory: {
      uint32_t c = CodeOf(v, true);
      uint32_t old = code[slot];
      if (c == old) return false;
      if (old) by_code[old].remove(slot);
      if (c) by_code[c].add(slot);
      with_value += (c != 0) - (old != 0);
      code[slot] = c;
      return true;
    }
    case Shape::kNumber: {
      const bool had = exists.contains(slot);
      const bool fits = v.kind == kind || (kind == ValueKind::kDouble && v.kind == ValueKind::kInt);
      Value x = v.kind == ValueKind::kInt && kind == ValueKind::kDouble ? Value::Double(static_cast<double>(v.i)) : v;
      const uint64_t old = had ? enc[slot] : 0, now = fits ? Encode(x) : 0;
      if (had == fits && old == now) return false;
      for (uint64_t diff = old ^ now; diff; diff &= diff - 1) {
        int bit = std::countr_zero(diff);
        if ((now >> bit) & 1) slices[bit].add(slot);
        else slices[bit].remove(slot);
      }
      if (fits) exists.add(slot);
      else exists.remove(slot);
      with_value += fits - had;
      enc[slot] = now;
      return true;
    }
    case Shape::kList: {
      uint32_t id = 0;
      if (v.kind == ValueKind::kList) {
        std::vector<uint32_t> codes;
        for (uint32_t i = 0; i < v.len; ++i)
          if (v.items[i].kind == ValueKind::kString) codes.push_back(CodeOf(v.items[i], true));
        std::string key(reinterpret_cast<const char*>(codes.data()), codes.size() * sizeof(uint32_t));
        auto [it, fresh] = list_index.try_emplace(key, 0);
        if (fresh) {
          List l;
          l.codes = std::move(codes);
          l.values = std::make_unique<Value[]>(l.codes.size());
          for (size_t i = 0; i < l.codes.size(); ++i) l.values[i] = CodeValue(l.codes[i]);
          lists.push_back(std::move(l));
          it->second = static_cast<uint32_t>(lists.size());
        }
        id = it->second;
      }
      uint32_t old = list[slot];
      if (id == old) return false;
      if (old)
        for (uint32_t c : lists[old - 1].codes) by_code[c].remove(slot);
      if (id)
        for (uint32_t c : lists[id - 1].codes) by_code[c].add(slot);
      with_value += (id != 0) - (old != 0);
      list[slot] = id;
      return true;
    }
  }
  return false;
}

Bitmap Column::Existing() const {
  if (shape == Shape::kNumber) return exists;
  Bitmap out;
  const std::vector<uint32_t>& v = shape == Shape::kCategory ? code : list;
  for (uint32_t s = 0; s < v.size(); ++s)
    if (v[s]) out.add(s);
  return out;
}

// O'Neil and Quass, "Improved query performance with variant indexes" (1997): one pass
// from the top bit keeps the set still equal to the bound's prefix, and moves those that
// fall below or above it aside. A slice that cannot split the equal set is skipped.
Bitmap Column::Range(uint64_t lo, uint64_t hi) const {
  if (lo > hi) return Bitmap();
  const uint64_t n = exists.cardinality();
  auto at_least = [&](uint64_t c) {
    Bitmap gt, eq = exists;
    for (int i = 63; i >= 0 && !eq.isEmpty(); --i) {
      const Bitmap& b = slices[i];
      if ((c >> i) & 1) {
        if (b.cardinality() == n) continue;  // every value has the bit: eq unchanged
        eq &= b;
      } else {
        if (b.isEmpty()) continue;
        gt |= eq & b;
        eq -= b;
      }
    }
    gt |= eq;
    return gt;
  };
  auto at_most = [&](uint64_t c) {
    Bitmap lt, eq = exists;
    for (int i = 63; i >= 0 && !eq.isEmpty(); --i) {
      const Bitmap& b = slices[i];
      if ((c >> i) & 1) {
        if (b.cardinality() == n) continue;
        lt |= eq - b;
        eq &= b;
      } else {
        if (b.isEmpty()) continue;
        eq -= b;
      }
    }
    lt |= eq;
    return lt;
  };
  if (lo == 0) return hi == UINT64_MAX ? exists : at_most(hi);
  if (hi == UINT64_MAX) return at_least(lo);
  Bitmap a = at_least(lo);
  a &= at_most(hi);
  return a;
}

uint64_t Column::bytes() const {
  uint64_t b = code.capacity() * 4 + enc.capacity() * 8 + list.capacity() * 4 + exists.getSizeInBytes();
  for (const Bitmap& x : by_code) b += x.getSizeInBytes() + sizeof(Bitmap);
  for (const Bitmap& x : slices) b += x.getSizeInBytes();
  for (const std::string& s : strings) b += s.capacity() + 48;
  for (const List& l : lists) b += l.codes.size() * (4 + sizeof(Value)) + 64;
  return b;
}

// --- erasure ---

uint32_t Column::WipeUnheld() {
  if (shape == Shape::kNumber) return 0;
  uint32_t wiped = 0;
  if (shape == Shape::kList) {
    std::vector<uint8_t> held(lists.size() + 1);
    for (uint32_t id : list) held[id] = 1;
    for (uint32_t id = 1; id <= lists.size(); ++id) {
      List& l = lists[id - 1];
      if (held[id] || l.dead) continue;
      list_index.erase(std::string(reinterpret_cast<const char*>(l.codes.data()), l.codes.size() * sizeof(uint32_t)));
      std::vector<uint32_t>().swap(l.codes);
      l.values.reset();
      l.dead = true;
    }
  }
  // An item's bitmap follows the slots' lists, so it says whether any held list has it.
  for (uint32_t c = 1; c < by_code.size(); ++c) {
    if (code_kind[c - 1] != ValueKind::kString || !by_code[c].isEmpty()) continue;
    std::string& text = strings[c - 1];
    string_codes.erase(std::string_view(text));  // before the bytes it hashes go
    WipeString(text);
    code_kind[c - 1] = ValueKind::kNull;
    ++dead;
    ++wiped;
  }
  return wiped;
}

// --- snapshots ---

namespace {

// Every slot of a column's bitmaps is below the length of its value vector (Set grows the
// vector first), which readers rely on when they index the vector by a bitmap's members.
bool Below(const Bitmap& b, size_t n) { return b.isEmpty() || b.maximum() < n; }

}  // namespace

void Column::Save(snap::Writer& w) const {
  w.U8(static_cast<uint8_t>(shape));
  w.U8(static_cast<uint8_t>(kind));
  w.U64(strings.size());
  for (size_t i = 0; i < strings.size(); ++i) {
    w.U8(static_cast<uint8_t>(code_kind[i]));
    w.Str(strings[i]);
  }
  for (size_t c = 1; c < by_code.size(); ++c) SaveBitmap(w, by_code[c]);
  switch (shape) {
    case Shape::kCategory:
      w.Vec(code);
      break;
    case Shape::kNumber:
      w.Vec(enc);
      SaveBitmap(w, exists);
      for (const Bitmap& b : slices) SaveBitmap(w, b);
      break;
    case Shape::kList:
      w.Vec(list);
      w.U64(lists.size());
      for (const List& l : lists) {
        if (l.dead) w.Vec(kDeadList);
        else w.Vec(l.codes);
      }
      break;
  }
}

bool Column::Load(snap::Reader& r, uint32_t slots) {
  auto fail = [&r](std::string why) {
    r.Fail(std::move(why));
    return false;
  };
  const auto saved_shape = static_cast<Shape>(r.U8());
  const auto saved_kind = static_cast<ValueKind>(r.U8());
  if (!r.ok()) return false;
  if (saved_shape != shape || saved_kind != kind)
    return fail(Cat("a column saved as ", ShapeName(saved_shape), " of ", ValueKindName(saved_kind),
                    ", but its definition makes ", ShapeName(shape), " of ", ValueKindName(kind)));
  const uint64_t n = r.Count(9);  // a kind and a string's length each
  for (uint64_t i = 0; i < n; ++i) {
    const auto k = static_cast<ValueKind>(r.U8());
    const std::string_view text = r.Str();
    if (!r.ok()) return false;
    if (k == ValueKind::kNull) {  // wiped
      if (!text.empty()) return fail(Cat("wiped value ", i + 1, " of a column has bytes"));
      strings.emplace_back();
      code_kind.push_back(k);
      ++dead;
      continue;
    }
    if (k != ValueKind::kString && k != ValueKind::kBool)
      return fail(Cat("value ", i + 1, " of a column has kind ", static_cast<int>(k)));
    strings.emplace_back(text);
    code_kind.push_back(k);
    auto& index = k == ValueKind::kBool ? bool_codes : string_codes;
    if (!index.emplace(std::string_view(strings.back()), static_cast<uint32_t>(i + 1)).second)
      return fail(Cat("value \"", text, "\" appears twice in a column"));
  }
  by_code.resize(n ? n + 1 : 0);
  for (uint64_t c = 1; c <= n; ++c) {
    if (!LoadBitmap(r, by_code[c])) return false;
    if (code_kind[c - 1] == ValueKind::kNull && !by_code[c].isEmpty()) return fail("a wiped value's bitmap holds slots");
  }
  auto wiped = [&](uint32_t c) { return c != 0 && code_kind[c - 1] == ValueKind::kNull; };

  // Codes and list ids index strings and lists: each is checked once here, so that no
  // later read steps outside them.
  auto check_ids = [&](const std::vector<uint32_t>& v, uint64_t limit, std::string_view what) {
    if (v.size() > slots) return fail(Cat("a column of ", v.size(), " slots, but the store has ", slots));
    uint32_t most = 0;
    for (uint32_t x : v) {
      most = std::max(most, x);
      with_value += x != 0;
    }
    if (most > limit) return fail(Cat(what, " ", most, " in a column of ", limit));
    for (const Bitmap& b : by_code)
      if (!Below(b, v.size())) return fail("a value's bitmap holds a slot past the column's end");
    return true;
  };
  switch (shape) {
    case Shape::kCategory:
      if (!r.Vec(code) || !check_ids(code, n, "value code")) return false;
      if (dead && std::any_of(code.begin(), code.end(), wiped)) return fail("a slot holds a wiped value");
      return true;
    case Shape::kNumber:
      if (!r.Vec(enc) || !LoadBitmap(r, exists)) return false;
      for (Bitmap& b : slices)
        if (!LoadBitmap(r, b)) return false;
      if (enc.size() > slots) return fail(Cat("a column of ", enc.size(), " slots, but the store has ", slots));
      if (!Below(exists, enc.size())) return fail("a number column's bitmap holds a slot past its end");
      // (Counting the intersection: CRoaring 0.2's isSubset of a bitset in a run is slow.)
      for (const Bitmap& b : slices)
        if (b.and_cardinality(exists) != b.cardinality()) return fail("a bit slice holds a slot without a value");
      with_value = exists.cardinality();
      return true;
    case Shape::kList: {
      if (!r.Vec(list)) return false;
      const uint64_t count = r.Count(8);  // a length each
      bool dead_lists = false;
      for (uint64_t i = 0; i < count; ++i) {
        List l;
        if (!r.Vec(l.codes)) return false;
        if (l.codes == kDeadList) {
          l.codes.clear();
          l.dead = dead_lists = true;
          lists.push_back(std::move(l));
          continue;
        }
        l.values = std::make_unique<Value[]>(l.codes.size());
        for (size_t j = 0; j < l.codes.size(); ++j) {
          if (l.codes[j] == 0 || l.codes[j] > n || wiped(l.codes[j]))
            return fail(Cat("a list holds value code ", l.codes[j], " in a column of ", n, ", or a wiped one"));
          l.values[j] = CodeValue(l.codes[j]);
        }
        std::string key(reinterpret_cast<const char*>(l.codes.data()), l.codes.size() * sizeof(uint32_t));
        lists.push_back(std::move(l));
        if (!list_index.try_emplace(std::move(key), static_cast<uint32_t>(lists.size())).second)
          return fail("a list appears twice in a column");
      }
      if (!r.ok() || !check_ids(list, lists.size(), "list id")) return false;
      if (dead_lists && std::any_of(list.begin(), list.end(), [&](uint32_t id) { return id && lists[id - 1].dead; }))
        return fail("a slot holds a wiped list");
      return true;
    }
  }
  return fail("a column of an unknown shape");
}

}  // namespace cdp::tags

namespace cdp {

namespace {

// Why a deserialized bitmap breaks the invariants CRoaring's operations rely on (for
// memory safety as well as for correct answers), or nullptr. CRoaring 2.0 and later check
// this themselves; the 0.2 series (Debian 12's) publishes its container layout instead,
// so the same checks are made here. (0.3 to 1.x have neither: they do not build.)
const char* Malformed(const Bitmap& b) {
#if defined(ROARING_CONTAINER_T)
  const char* why = nullptr;
  return roaring_bitmap_internal_validate(&b.roaring, &why) ? nullptr : why ? why : "invalid containers";
#else
  const roaring_array_t& ra = b.roaring.high_low_container;
  for (int32_t i = 0; i < ra.size; ++i) {
    if (i > 0 && ra.keys[i] <= ra.keys[i - 1]) return "container keys out of order";
    switch (ra.typecodes[i]) {
      case BITSET_CONTAINER_TYPE_CODE: {
        const auto* c = static_cast<const bitset_container_t*>(ra.containers[i]);
        int32_t n = 0;
        for (int w = 0; w < BITSET_CONTAINER_SIZE_IN_WORDS; ++w) n += std::popcount(c->array[w]);
        if (n != c->cardinality || n <= DEFAULT_MAX_SIZE) return "a bitset container with a wrong cardinality";
        break;
      }
      case ARRAY_CONTAINER_TYPE_CODE: {
        const auto* c = static_cast<const array_container_t*>(ra.containers[i]);
        if (c->cardinality < 1 || c->cardinality > DEFAULT_MAX_SIZE) return "an array container of a wrong size";
        for (int32_t j = 1; j < c->cardinality; ++j)
          if (c->array[j] <= c->array[j - 1]) return "an array container out of order";
        break;
      }
      case RUN_CONTAINER_TYPE_CODE: {
        const auto* c = static_cast<const run_container_t*>(ra.containers[i]);
        if (c->n_runs < 1) return "an empty run container";
        for (int32_t j = 0; j < c->n_runs; ++j) {
          const rle16_t& x = c->runs[j];
          if (uint32_t{x.value} + x.length > 0xFFFF) return "a run past the end of its container";
          if (j > 0 && x.value <= uint32_t{c->runs[j - 1].value} + c->runs[j - 1].length)
            return "runs out of order or overlapping";
        }
        break;
      }
      default:
        return "an unknown container type";
    }
  }
  return nullptr;
#endif
}

}  // namespace

void SaveBitmap(snap::Writer& w, const Bitmap& b) {
  std::string buf(b.getSizeInBytes(/*portable=*/true), '\0');
  buf.resize(b.write(buf.data(), /*portable=*/true));
  w.Str(buf);
}

bool LoadBitmap(snap::Reader& r, Bitmap& b) {
  b = Bitmap();
  std::string_view s = r.Str();  // its length is checked against the bytes left
  if (!r.ok()) return false;
  // The size the header claims must be the whole string: the reader below would accept
  // a prefix, and a bitmap that ends early means the bytes are not what was written.
  // (Zero is no bitmap at all; checking first also keeps CRoaring 0.2's reader from
  // printing its complaint to stderr.)
  const size_t claimed = roaring_bitmap_portable_deserialize_size(s.data(), s.size());
  if (claimed == 0 || claimed != s.size()) {
    r.Fail(Cat("a bitmap of ", s.size(), " bytes that does not parse"));
    return false;
  }
  roaring_bitmap_t* p = roaring_bitmap_portable_deserialize_safe(s.data(), s.size());
  if (p == nullptr) {
    r.Fail(Cat("a bitmap of ", s.size(), " bytes that does not parse"));
    return false;
  }
  b = Bitmap(p);  // takes the C bitmap over
  if (const char* why = Malformed(b)) {
    b = Bitmap();
    r.Fail(Cat("a malformed bitmap: ", why));
    return false;
  }
  return true;
}

}  // namespace cdp
