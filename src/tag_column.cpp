// Tag columns: values by slot and the bitmaps that index them.
//
// Numbers are stored in an order-preserving 64-bit encoding (integers with the sign bit
// flipped; doubles with the sign bit flipped when positive and every bit flipped when
// negative), so one unsigned comparison orders any numeric kind, and the bit-sliced index
// (slice i = the persons whose encoding has bit i set) answers ranges with O'Neil's
// algorithm: one pass from the top bit, a few bitmap operations per bit that matters.
#include <bit>
#include <cstring>

#include "tags_internal.hpp"

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
}

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
  if (c == 0) return Value();
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

}  // namespace cdp::tags
