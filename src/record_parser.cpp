#include "record_parser.hpp"

#include <algorithm>
#include <cstring>

#include "absl/status/status.h"
#include "util.hpp"
#include "json_util.hpp"
#include "keyed_hash.hpp"
#include "simdjson.h"
#include "snapshot.hpp"

namespace cdp {

uint32_t NameTable::Intern(std::string_view name) {
  if (auto it = index_.find(name); it != index_.end()) return it->second;
  auto id = static_cast<uint32_t>(names_.size());
  names_.emplace_back(name);
  index_.emplace(names_.back(), id);
  return id;
}

int NameTable::Find(std::string_view name) const {
  auto it = index_.find(name);
  return it == index_.end() ? -1 : static_cast<int>(it->second);
}

void NameTable::Save(snap::Writer& w) const {
  w.U64(names_.size());
  for (const std::string& n : names_) w.Str(n);
}

void NameTable::Load(snap::Reader& r) {
  names_.clear();
  index_.clear();
  for (uint64_t i = 0, n = r.Count(8); i < n && r.ok(); ++i)
    if (Intern(r.Str()) != i) r.Fail("a name appears twice in a name table");
}

// --- money and time ---------------------------------------------------------------------

absl::StatusOr<int64_t> YuanToFen(std::string_view t) {
  auto bad = [] { return absl::InvalidArgumentError("expected a decimal amount in yuan"); };
  size_t i = 0;
  bool neg = false;
  if (i < t.size() && (t[i] == '-' || t[i] == '+')) neg = t[i++] == '-';
  // Collect significant digits of the mantissa and count those after the point.
  std::string digits;
  int frac = 0;
  bool seen_digit = false, point = false;
  for (; i < t.size(); ++i) {
    char c = t[i];
    if (c >= '0' && c <= '9') {
      seen_digit = true;
      if (point) ++frac;
      if (digits.size() > 40) return absl::InvalidArgumentError("amount has too many digits");
      digits += c;
    } else if (c == '.' && !point) {
      point = true;
    } else {
      break;
    }
  }
  if (!seen_digit) return bad();
  int64_t exp = 0;
  if (i < t.size() && (t[i] == 'e' || t[i] == 'E')) {
    ++i;
    bool eneg = false;
    if (i < t.size() && (t[i] == '-' || t[i] == '+')) eneg = t[i++] == '-';
    if (i >= t.size()) return bad();
    for (; i < t.size() && t[i] >= '0' && t[i] <= '9'; ++i) {
      exp = exp * 10 + (t[i] - '0');
      if (exp > 100) return absl::InvalidArgumentError("amount exponent out of range");
    }
    if (eneg) exp = -exp;
  }
  if (i != t.size()) return bad();
  // fen = digits * 10^(exp - frac + 2)
  int64_t shift = exp - frac + 2;
  while (shift < 0) {
    if (digits.empty() || digits.back() != '0')
      return absl::InvalidArgumentError("amount has more than two decimal places (fen)");
    digits.pop_back();
    ++shift;
  }
  digits.append(static_cast<size_t>(shift), '0');
  __int128 v = 0;
  for (char c : digits) {
    v = v * 10 + (c - '0');
    if (v > static_cast<__int128>(INT64_MAX)) return absl::InvalidArgumentError("amount out of range");
  }
  return static_cast<int64_t>(neg ? -v : v);
}

namespace {

int64_t DaysFromCivil(int64_t y, unsigned m, unsigned d) {  // H. Hinnant's algorithm
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

bool Digits(std::string_view s, size_t at, size_t n, int& out) {
  if (at + n > s.size()) return false;
  out = 0;
  for (size_t k = 0; k < n; ++k) {
    char c = s[at + k];
    if (c < '0' || c > '9') return false;
    out = out * 10 + (c - '0');
  }
  return true;
}

}  // namespace

absl::StatusOr<int64_t> ParseTimestamp(std::string_view s) {
  auto bad = [](std::string_view why) {
    return absl::InvalidArgumentError(Cat("expected ISO-8601 with an offset, e.g. 2024-03-01T10:00:00+08:00: ", why));
  };
  int y, mo, d, h, mi, se;
  if (!Digits(s, 0, 4, y) || s.size() < 19 || s[4] != '-' || !Digits(s, 5, 2, mo) || s[7] != '-' ||
      !Digits(s, 8, 2, d) || (s[10] != 'T' && s[10] != ' ') || !Digits(s, 11, 2, h) || s[13] != ':' ||
      !Digits(s, 14, 2, mi) || s[16] != ':' || !Digits(s, 17, 2, se))
    return bad("not of the form YYYY-MM-DDTHH:MM:SS");
  static constexpr int kMonthDays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  if (mo < 1 || mo > 12 || d < 1 || d > kMonthDays[mo - 1] || (mo == 2 && d == 29 && !leap))
    return bad("no such date");
  if (h > 23 || mi > 59 || se > 60) return bad("no such time");
  size_t i = 19;
  int64_t ms = 0;
  if (i < s.size() && (s[i] == '.' || s[i] == ',')) {
    ++i;
    int n = 0;
    for (; i < s.size() && s[i] >= '0' && s[i] <= '9'; ++i, ++n)
      if (n < 3) ms = ms * 10 + (s[i] - '0');
    if (n == 0) return bad("empty fraction of a second");
    for (int k = n; k < 3; ++k) ms *= 10;
  }
  int64_t offset_min = 0;
  if (i >= s.size()) return bad("the offset (Z or +08:00) is missing");
  if (s[i] == 'Z' || s[i] == 'z') {
    ++i;
  } else if (s[i] == '+' || s[i] == '-') {
    int oh, om = 0;
    bool neg = s[i] == '-';
    if (!Digits(s, i + 1, 2, oh)) return bad("bad offset");
    i += 3;
    if (i < s.size() && s[i] == ':') ++i;
    if (i < s.size()) {
      if (!Digits(s, i, 2, om)) return bad("bad offset");
      i += 2;
    }
    if (oh > 23 || om > 59) return bad("bad offset");
    offset_min = (neg ? -1 : 1) * (oh * 60 + om);
  } else {
    return bad("the offset (Z or +08:00) is missing");
  }
  if (i != s.size()) return bad("unexpected text after the offset");
  int64_t days = DaysFromCivil(y, static_cast<unsigned>(mo), static_cast<unsigned>(d));
  int64_t secs = days * 86400 + h * 3600 + mi * 60 + std::min(se, 59) - offset_min * 60;
  return secs * 1000 + ms;
}

// --- the parser -------------------------------------------------------------------------

namespace od = simdjson::ondemand;

struct RecordParser::Impl {
  EngineConfig& cfg;
  NameTable& sources;
  absl::flat_hash_map<std::string, uint32_t, StrHash, StrEq> type_index;
  od::parser parser;
  std::string norm;             // scratch for one normalised value
  std::string scoped;           // scratch for SCOPE/VALUE
  std::unique_ptr<KeyedHasher> hasher;  // types stored hashed; null without a key

  struct RawId { uint32_t type; std::string_view value; uint32_t column; };
  std::vector<RawId> raw;
  std::vector<std::pair<std::string_view, std::string_view>> top_strings;  // for scopes

  Impl(EngineConfig& c, NameTable& s) : cfg(c), sources(s) {
    for (uint32_t i = 0; i < cfg.types.size(); ++i) type_index.emplace(cfg.types[i].name, i);
  }

  // A line-level failure: where and why. Returns false so callers can `return Fail(...)`.
  struct LineError { std::string field; std::string message; size_t offset = 0; };

  bool read_only = false;  // set for the duration of a read-only parse

  int TypeOf(std::string_view name, Batch& b) {
    if (auto it = type_index.find(name); it != type_index.end()) return static_cast<int>(it->second);
    if (!cfg.accept_unknown_types || read_only) return -1;
    if (cfg.types.size() >= 65535) return -1;  // type ids are 16-bit in the graph
    uint32_t id = cfg.AddUnknownType(name);
    type_index.emplace(cfg.types.back().name, id);
    return static_cast<int>(id);
  }

  static bool ValidTypeName(std::string_view n) {
    if (n.empty() || n.size() > 64) return false;
    for (char c : n)
      if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '.'))
        return false;
    return true;
  }

  // Parses one line (padded: capacity bytes readable from p). On success appends a Record.
  // Parses one line; a malformed line leaves the batch as it was.
  bool ParseLine(const char* p, size_t len, size_t capacity, uint32_t line, Batch& b, LineError& e) {
    const size_t fields = b.fields.size(), items = b.list_items.size(), kept = b.kept.size();
    if (ParseLineInner(p, len, capacity, line, b, e)) return true;
    b.fields.resize(fields);
    b.list_items.resize(items);
    b.kept.resize(kept);
    return false;
  }

  bool ParseLineInner(const char* p, size_t len, size_t capacity, uint32_t line, Batch& b, LineError& e) {
    raw.clear();
    top_strings.clear();
    if (len > cfg.limits.max_record_bytes) {
      e = {"", Cat("record is ", len, " bytes, over the limit of ", cfg.limits.max_record_bytes), 0};
      return false;
    }
    std::string_view text(p, len);
    auto syntax = [&](simdjson::error_code err) {
      json::Problem pr = json::Locate(text);
      if (pr.found) e = {pr.path, pr.message, pr.offset};
      else e = {"", simdjson::error_message(err), 0};
      return false;
    };
    auto col = [&](std::string_view token) {
      return token.data() >= p && token.data() <= p + len ? static_cast<size_t>(token.data() - p) : 0;
    };
    od::document doc;
    if (auto err = parser.iterate(p, len, capacity).get(doc)) return syntax(err);
    od::object obj;
    if (auto err = doc.get_object().get(obj)) {
      if (err == simdjson::INCORRECT_TYPE) { e = {"", "a record must be a JSON object", 0}; return false; }
      return syntax(err);
    }
    Record r;
    r.line = line;
    uint32_t values_seen = 0;
    std::string_view event_type;
    bool have_ts = false, have_ids = false;
    uint32_t seen_keys = 0;
    std::string_view source = "unknown";
    for (auto field : obj) {
      std::string_view key;
      if (auto err = field.unescaped_key().get(key)) return syntax(err);
      od::value v;
      if (auto err = field.value().get(v)) return syntax(err);
      od::json_type jt;
      if (auto err = v.type().get(jt)) return syntax(err);
      std::string_view token = v.raw_json_token();
      // A key given twice would be read twice (attributes counted from the first copy
      // and indexed from the second: the fuzzer's find); JSON leaves it undefined, so refuse.
      {
        static constexpr std::string_view kKeys[] = {"ts", "source", "ids", "attrs", "event", "consent"};
        for (uint32_t k = 0; k < std::size(kKeys); ++k)
          if (key == kKeys[k]) {
            if (seen_keys & (1u << k)) {
              e = {std::string(key), "given twice in one record", col(token)};
              return false;
            }
            seen_keys |= 1u << k;
          }
      }
      if (key == "ts") {
        have_ts = true;
        if (jt == od::json_type::number) {
          int64_t ms;
          if (v.get_int64().get(ms)) {
            e = {"ts", "epoch milliseconds must be an integer", col(token)};
            return false;
          }
          r.ts = ms;
        } else if (jt == od::json_type::string) {
          std::string_view s;
          if (auto err = v.get_string().get(s)) return syntax(err);
          auto t = ParseTimestamp(s);
          if (!t.ok()) { e = {"ts", std::string(t.status().message()), col(token)}; return false; }
          r.ts = *t;
        } else {
          e = {"ts", "expected epoch milliseconds or an ISO-8601 string", col(token)};
          return false;
        }
        if (!InTimeRange(r.ts)) {
          e = {"ts", "outside 1970-01-01T00:00:00Z to 9999-12-31T23:59:59.999Z", col(token)};
          return false;
        }
      } else if (key == "source") {
        if (jt != od::json_type::string) { e = {"source", "expected a string", col(token)}; return false; }
        if (auto err = v.get_string().get(source)) return syntax(err);
        if (source.size() > 128) { e = {"source", "longer than 128 bytes", col(token)}; return false; }
      } else if (key == "ids") {
        have_ids = true;
        if (jt != od::json_type::object) { e = {"ids", "expected an object of type: value(s)", col(token)}; return false; }
        od::object ids;
        if (auto err = v.get_object().get(ids)) return syntax(err);
        for (auto idf : ids) {
          std::string_view tname;
          if (auto err = idf.unescaped_key().get(tname)) return syntax(err);
          auto fname = [&] { return Cat("ids.", tname); };  // built only for an error
          od::value iv;
          if (auto err = idf.value().get(iv)) return syntax(err);
          od::json_type it;
          if (auto err = iv.type().get(it)) return syntax(err);
          std::string_view itok = iv.raw_json_token();
          if (!ValidTypeName(tname)) { e = {fname(), "identifier type names are 1-64 of [A-Za-z0-9_.-]", col(itok)}; return false; }
          if (it == od::json_type::null) continue;  // an absent identifier, not an error
          int type = TypeOf(tname, b);
          auto add = [&](std::string_view value, std::string_view tok) {
            if (value.size() > cfg.limits.max_id_bytes) {
              e = {fname(), Cat("value is ", value.size(), " bytes, over the limit of ", cfg.limits.max_id_bytes), col(tok)};
              return false;
            }
            ++values_seen;
            if (type < 0) { b.ids_rejected[static_cast<size_t>(Rejection::kUnknownType)]++; return true; }
            if (!cfg.types[type].configured) CountUnknown(b, cfg.types[type].name);
            raw.push_back({static_cast<uint32_t>(type), value, static_cast<uint32_t>(col(tok))});
            return true;
          };
          if (it == od::json_type::string) {
            std::string_view s;
            if (auto err = iv.get_string().get(s)) return syntax(err);
            if (!add(s, itok)) return false;
          } else if (it == od::json_type::number) {
            // Member numbers often arrive as JSON numbers; take the literal text.
            std::string_view num = itok;
            while (!num.empty() && (num.back() == ' ' || num.back() == '\t' || num.back() == '\r' || num.back() == '\n')) num.remove_suffix(1);
            if (!add(num, itok)) return false;
          } else if (it == od::json_type::array) {
            od::array arr;
            if (auto err = iv.get_array().get(arr)) return syntax(err);
            size_t k = 0;
            for (auto el : arr) {
              od::value ev;
              if (auto err = el.get(ev)) return syntax(err);
              std::string_view etok = ev.raw_json_token();
              std::string_view s;
              if (ev.get_string().get(s)) {
                e = {Cat(fname(), "[", k, "]"), "expected a string", col(etok)};
                return false;
              }
              if (!add(s, etok)) return false;
              ++k;
            }
          } else {
            e = {fname(), "expected a string, an array of strings, or null", col(itok)};
            return false;
          }
        }
      } else if (key == "attrs") {
        if (jt == od::json_type::null) continue;
        if (jt != od::json_type::object) { e = {"attrs", "expected an object", col(token)}; return false; }
        od::object ao;
        if (auto err = v.get_object().get(ao)) return syntax(err);
        r.attrs_begin = static_cast<uint32_t>(b.fields.size());
        for (auto af : ao) {
          std::string_view name;
          if (auto err = af.unescaped_key().get(name)) return syntax(err);
          od::value av;
          if (auto err = af.value().get(av)) return syntax(err);
          if (++r.attrs_count > cfg.profile.max_attrs_per_record) {
            e = {"attrs", Cat("more than ", cfg.profile.max_attrs_per_record, " attributes"), col(av.raw_json_token())};
            return false;
          }
          if (!ValidTypeName(name)) {
            e = {Cat("attrs.", name), "attribute names are 1-64 of [A-Za-z0-9_.-]", col(av.raw_json_token())};
            return false;
          }
          const AttrPolicy* pol = cfg.FindAttr(name);
          if (!ParseField(av, name, pol ? pol->type : ValueKind::kNull, "attrs.", b, e, col))
            return false;
        }
      } else if (key == "event") {
        if (jt == od::json_type::null) continue;
        if (jt != od::json_type::object) { e = {"event", "expected an object", col(token)}; return false; }
        od::object eo;
        if (auto err = v.get_object().get(eo)) return syntax(err);
        if (!ParseEvent(r, eo, event_type, b, e, col)) return false;
      } else if (key == "consent") {
        if (jt == od::json_type::null) continue;
        if (jt != od::json_type::object) { e = {"consent", "expected an object of channel: true, false or null", col(token)}; return false; }
        od::object co;
        if (auto err = v.get_object().get(co)) return syntax(err);
        if (!ParseConsent(r, co, b, e, col)) return false;
      } else if (jt == od::json_type::string) {
        std::string_view s;
        if (auto err = v.get_string().get(s)) return syntax(err);
        top_strings.emplace_back(key, s);  // may scope an identifier ("app")
      }
      // Other top-level fields are accepted and ignored.
    }
    // Anything after the closing brace is an error (simdjson stops at the object's end).
    const char* rest = nullptr;
    if (doc.current_location().get(rest) == simdjson::SUCCESS && rest && rest < p + len) {
      std::string_view tail(rest, static_cast<size_t>(p + len - rest));
      if (tail.find_first_not_of(" \t\r\n") != std::string_view::npos) {
        e = {"", "unexpected text after the record", static_cast<size_t>(rest - p)};
        return false;
      }
    }
    if (!have_ts) { e = {"ts", "missing", 0}; return false; }
    if (!have_ids) { e = {"ids", "missing", 0}; return false; }
    if (values_seen == 0) {
      e = {"ids", "no identifier values", 0};
      return false;
    }
    if (read_only) {
      int known = sources.Find(source);
      r.source = known < 0 ? 0 : static_cast<uint32_t>(known);
    } else {
      r.source = sources.Intern(source);
    }
    auto keep = [&](std::string_view s, uint32_t& off, uint32_t& n) {
      off = static_cast<uint32_t>(b.kept.size());
      n = static_cast<uint32_t>(s.size());
      b.kept += s;
    };
    keep(event_type, r.event_type_off, r.event_type_len);
    Normalize(r, b);
    b.records.push_back(r);
    return true;
  }

  // The event object: type, amount in yuan, and flat properties.
  template <typename Col>
  bool ParseEvent(Record& r, od::object& o, std::string_view& type, Batch& b, LineError& e,
                  const Col& col) {
    bool have_type = false;
    r.props_begin = static_cast<uint32_t>(b.fields.size());
    for (auto f : o) {
      std::string_view k;
      od::value v;
      if (f.unescaped_key().get(k) || f.value().get(v)) { e = {"event", "malformed", 0}; return false; }
      std::string_view tok = v.raw_json_token();
      od::json_type jt;
      if (v.type().get(jt)) { e = {"event", "malformed", col(tok)}; return false; }
      if (k == "type") {
        if (jt != od::json_type::string || v.get_string().get(type)) {
          e = {"event.type", "expected a string", col(tok)};
          return false;
        }
        if (!ValidTypeName(type)) {
          e = {"event.type", "event types are 1-64 of [A-Za-z0-9_.-]", col(tok)};
          return false;
        }
        have_type = true;
      } else if (k == "amount") {
        std::string_view text;
        if (jt == od::json_type::number) {
          text = tok;
          while (!text.empty() && (text.back() == ' ' || text.back() == '\t' || text.back() == '\r' || text.back() == '\n')) text.remove_suffix(1);
        } else if (jt == od::json_type::string) {
          if (v.get_string().get(text)) { e = {"event.amount", "malformed", col(tok)}; return false; }
        } else if (jt == od::json_type::null) {
          continue;
        } else {
          e = {"event.amount", "expected a number of yuan", col(tok)};
          return false;
        }
        auto fen = YuanToFen(text);
        if (!fen.ok()) { e = {"event.amount", std::string(fen.status().message()), col(tok)}; return false; }
        r.amount_fen = *fen;
        r.has_amount = true;
      } else {
        if (++r.props_count > cfg.profile.max_props_per_event) {
          e = {"event", Cat("more than ", cfg.profile.max_props_per_event, " properties"), col(tok)};
          return false;
        }
        if (!ValidTypeName(k)) {
          e = {Cat("event.", k), "property names are 1-64 of [A-Za-z0-9_.-]", col(tok)};
          return false;
        }
        if (!ParseField(v, k, ValueKind::kNull, "event.", b, e, col)) return false;
      }
    }
    if (!have_type) { e = {"event.type", "missing", 0}; return false; }
    return true;
  }

  // The consent object: channel → true (granted), false (withdrawn) or null (not stated).
  // Each is a field named by its channel: kBool, or kNull for one not stated.
  template <typename Col>
  bool ParseConsent(Record& r, od::object& o, Batch& b, LineError& e, const Col& col) {
    r.consent_begin = static_cast<uint32_t>(b.fields.size());
    for (auto f : o) {
      std::string_view channel;
      od::value v;
      if (f.unescaped_key().get(channel) || f.value().get(v)) { e = {"consent", "malformed", 0}; return false; }
      std::string_view tok = v.raw_json_token();
      auto fail = [&](std::string_view why) {
        e = {Cat("consent.", channel), std::string(why), col(tok)};
        return false;
      };
      od::json_type jt;
      if (v.type().get(jt)) return fail("malformed");
      if (!ValidTypeName(channel)) return fail("channel names are 1-64 of [A-Za-z0-9_.-]");
      for (uint32_t k = r.consent_begin; k < b.fields.size(); ++k)
        if (b.Name(b.fields[k]) == channel) return fail("given twice in one record");
      bool granted = false;
      if (jt != od::json_type::null && (jt != od::json_type::boolean || v.get_bool().get(granted)))
        return fail("expected true (granted), false (withdrawn) or null");
      if (++r.consent_count > cfg.profile.max_attrs_per_record)
        return fail(Cat("more than ", cfg.profile.max_attrs_per_record, " channels"));
      FieldIn x{};
      x.name_off = static_cast<uint32_t>(b.kept.size());
      x.name_len = static_cast<uint32_t>(channel.size());
      b.kept += channel;
      x.kind = jt == od::json_type::null ? ValueKind::kNull : ValueKind::kBool;
      x.bits = granted;
      b.fields.push_back(x);
    }
    return true;
  }

  // One attribute or property value, typed by its declaration (kNull: by its JSON type).
  template <typename Col>
  bool ParseField(od::value& v, std::string_view name, ValueKind want, std::string_view prefix,
                  Batch& b, LineError& e, const Col& col) {
    std::string_view tok = v.raw_json_token();
    auto fail = [&](std::string_view what) {
      e = {Cat(prefix, name), std::string(what), col(tok)};
      return false;
    };
    od::json_type jt;
    if (v.type().get(jt)) return fail("malformed");
    FieldIn f{};
    f.name_off = static_cast<uint32_t>(b.kept.size());
    f.name_len = static_cast<uint32_t>(name.size());
    b.kept += name;
    auto keep_str = [&](std::string_view s, uint32_t& off, uint32_t& len) {
      if (s.size() > cfg.profile.max_value_bytes)
        return fail(Cat("value is ", s.size(), " bytes, over the limit of ", cfg.profile.max_value_bytes));
      off = static_cast<uint32_t>(b.kept.size());
      len = static_cast<uint32_t>(s.size());
      b.kept += s;
      return true;
    };
    using K = ValueKind;
    std::string_view str;
    bool is_str = jt == od::json_type::string;
    if (is_str && v.get_string().get(str)) return fail("malformed string");
    std::string_view num = tok;
    while (!num.empty() && (num.back() == ' ' || num.back() == '\t' || num.back() == '\r' || num.back() == '\n')) num.remove_suffix(1);
    if (jt == od::json_type::null) {
      f.kind = K::kNull;
    } else if (want == K::kNull) {  // inferred
      switch (jt) {
        case od::json_type::string:
          f.kind = K::kString;
          if (!keep_str(str, f.str_off, f.str_len)) return false;
          break;
        case od::json_type::boolean: {
          bool x;
          if (v.get_bool().get(x)) return fail("malformed");
          f.kind = K::kBool;
          f.bits = x;
          break;
        }
        case od::json_type::number: {
          int64_t i;
          double d;
          if (num.find_first_of(".eE") == std::string_view::npos && !v.get_int64().get(i)) {
            f.kind = K::kInt;
            f.bits = i;
          } else if (!v.get_double().get(d)) {
            f.kind = K::kDouble;
            std::memcpy(&f.bits, &d, sizeof d);
          } else {
            return fail("number out of range");
          }
          break;
        }
        case od::json_type::array:
          if (!ParseList(v, b, f, fail, keep_str)) return false;
          break;
        default:
          return fail("expected a string, number, boolean, array of strings or null");
      }
    } else {
      switch (want) {
        case K::kString:
          if (!is_str) return fail("expected a string");
          f.kind = K::kString;
          if (!keep_str(str, f.str_off, f.str_len)) return false;
          break;
        case K::kInt: {
          int64_t i;
          if (jt != od::json_type::number || num.find_first_of(".eE") != std::string_view::npos || v.get_int64().get(i))
            return fail("expected an integer");
          f.kind = K::kInt;
          f.bits = i;
          break;
        }
        case K::kDouble: {
          double d;
          if (jt != od::json_type::number || v.get_double().get(d)) return fail("expected a number");
          f.kind = K::kDouble;
          std::memcpy(&f.bits, &d, sizeof d);
          break;
        }
        case K::kMoney: {
          if (jt != od::json_type::number && !is_str) return fail("expected an amount in yuan");
          auto fen = YuanToFen(is_str ? str : num);
          if (!fen.ok()) return fail(std::string(fen.status().message()));
          f.kind = K::kMoney;
          f.bits = *fen;
          break;
        }
        case K::kBool: {
          bool x;
          if (jt != od::json_type::boolean || v.get_bool().get(x)) return fail("expected true or false");
          f.kind = K::kBool;
          f.bits = x;
          break;
        }
        case K::kTimestamp: {
          f.kind = K::kTimestamp;
          if (is_str) {
            auto t = ParseTimestamp(str);
            if (!t.ok()) return fail(std::string(t.status().message()));
            f.bits = *t;
          } else {
            int64_t ms;
            if (jt != od::json_type::number || v.get_int64().get(ms))
              return fail("expected epoch milliseconds or an ISO-8601 string");
            f.bits = ms;
          }
          break;
        }
        case K::kDate: {
          int32_t day;
          if (!is_str || !ParseDate(str, day)) return fail("expected a date \"YYYY-MM-DD\"");
          f.kind = K::kDate;
          f.bits = day;
          break;
        }
        case K::kList:
          if (is_str) {  // one value: a list of one
            f.kind = K::kList;
            f.str_off = static_cast<uint32_t>(b.list_items.size());
            f.str_len = 1;
            uint32_t off, len;
            if (!keep_str(str, off, len)) return false;
            b.list_items.emplace_back(off, len);
          } else if (jt == od::json_type::array) {
            if (!ParseList(v, b, f, fail, keep_str)) return false;
          } else {
            return fail("expected an array of strings");
          }
          break;
        default:
          return fail("unsupported type");
      }
    }
    b.fields.push_back(f);
    return true;
  }

  template <typename Fail, typename Keep>
  bool ParseList(od::value& v, Batch& b, FieldIn& f, const Fail& fail, const Keep& keep_str) {
    od::array arr;
    if (v.get_array().get(arr)) return fail("malformed array");
    f.kind = ValueKind::kList;
    f.str_off = static_cast<uint32_t>(b.list_items.size());
    for (auto el : arr) {
      od::value ev;
      std::string_view s;
      if (el.get(ev) || ev.get_string().get(s)) return fail("expected an array of strings");
      if (++f.str_len > cfg.profile.max_list_items)
        return fail(Cat("more than ", cfg.profile.max_list_items, " items"));
      uint32_t off, len;
      if (!keep_str(s, off, len)) return false;
      b.list_items.emplace_back(off, len);
    }
    return true;
  }

  // "YYYY-MM-DD" → day number.
  static bool ParseDate(std::string_view s, int32_t& day) {
    if (s.size() != 10 || s[4] != '-' || s[7] != '-') return false;
    int y = 0, m = 0, d = 0;
    for (int i : {0, 1, 2, 3}) { if (s[i] < '0' || s[i] > '9') return false; y = y * 10 + (s[i] - '0'); }
    for (int i : {5, 6}) { if (s[i] < '0' || s[i] > '9') return false; m = m * 10 + (s[i] - '0'); }
    for (int i : {8, 9}) { if (s[i] < '0' || s[i] > '9') return false; d = d * 10 + (s[i] - '0'); }
    if (m < 1 || m > 12 || d < 1 || d > DaysInMonth(y, m)) return false;
    day = DaysFromCivil(y, m, d);
    return true;
  }

  // Normalises the record's raw identifiers into the batch arena, deduplicated.
  void Normalize(Record& r, Batch& b) {
    r.ids_begin = static_cast<uint32_t>(b.ids.size());
    for (const RawId& ri : raw) {
      const IdPolicy& pol = cfg.types[ri.type];
      auto reject = [&](Rejection why) {
        b.ids_rejected[static_cast<size_t>(why)]++;
        // A hashed type's raw value is kept nowhere, a rejected one included: its mask.
        std::string_view v = ri.value.substr(0, 128);
        if (b.rejected_values.size() < 10000)
          b.rejected_values.push_back({ri.type, why, r.line, r.ts, pol.hashed ? MaskValue(pol.normalizer, v) : std::string(v)});
      };
      if (r.ids_count >= cfg.limits.max_ids_per_record) { reject(Rejection::kOverLimit); continue; }
      Rejection why = NormalizeId(pol, cfg.global_blocklist, ri.value, norm);
      if (why != Rejection::kCount_) { reject(why); continue; }
      if (!pol.scope.empty()) {
        std::string_view scope;
        for (auto& [k, s] : top_strings)
          if (k == pol.scope) scope = s;
        if (pol.scope == "source") scope = sources.Name(r.source);
        if (scope.empty()) { reject(Rejection::kMissingScope); continue; }
        scoped.assign(scope);  // SCOPE/VALUE
        scoped += '/';
        scoped += norm;
        norm.swap(scoped);
      }
      if (pol.hashed) norm = HashIdentifier(*hasher, pol, norm);
      // Skip a duplicate of an identifier this record already carries.
      bool dup = false;
      for (uint32_t k = r.ids_begin; k < r.ids_begin + r.ids_count && !dup; ++k)
        dup = b.ids[k].type == ri.type && b.Value(b.ids[k]) == norm;
      if (dup) continue;
      b.ids.push_back({ri.type, static_cast<uint32_t>(b.arena.size()), static_cast<uint32_t>(norm.size())});
      b.arena += norm;
      r.ids_count++;
      b.ids_accepted++;
    }
  }

  static void CountUnknown(Batch& b, const std::string& name) {
    for (auto& [n, c] : b.unknown_types)
      if (n == name) { ++c; return; }
    b.unknown_types.emplace_back(name, 1);
  }

  void AddError(Batch& b, std::string_view text, uint32_t line, LineError&& e) {
    b.rejected++;
    if (b.errors.size() >= cfg.limits.max_errors_listed) return;
    uint32_t l, c;
    json::LineColumn(text, e.offset, l, c);
    b.errors.push_back({line, c, std::move(e.field), std::move(e.message)});
  }
};

RecordParser::RecordParser(EngineConfig& cfg, NameTable& sources, std::string_view key)
    : impl_(std::make_unique<Impl>(cfg, sources)) {
  if (!key.empty()) impl_->hasher = std::make_unique<KeyedHasher>(key);
}
RecordParser::~RecordParser() = default;

int RecordParser::TypeId(std::string_view name) {
  Batch unused;  // a new type is counted in the batch being parsed; here there is none
  return impl_->TypeOf(name, unused);
}

void RecordParser::ParseNdjson(std::string_view data, Batch& b, bool read_only) {
  impl_->read_only = read_only;
  // simdjson reads up to SIMDJSON_PADDING bytes past a document. A line followed by at
  // least that many bytes of the batch is parsed in place (the following lines are the
  // padding); only the batch's tail is copied into a padded buffer.
  const size_t pad = simdjson::SIMDJSON_PADDING;
  const size_t n = data.size();
  const size_t tail_from = n > pad ? n - pad : 0;
  simdjson::padded_string tail;
  uint32_t line = 0;
  for (size_t pos = 0; pos < n;) {
    const char* nl = static_cast<const char*>(std::memchr(data.data() + pos, '\n', n - pos));
    size_t end = nl ? static_cast<size_t>(nl - data.data()) : n;
    ++line;
    std::string_view text = data.substr(pos, end - pos);
    size_t start = pos;
    pos = end + 1;
    if (!text.empty() && text.back() == '\r') text.remove_suffix(1);
    if (text.find_first_not_of(" \t") == std::string_view::npos) continue;  // blank line
    b.lines++;
    const char* p = text.data();
    size_t capacity = n - start;
    if (start + text.size() > tail_from) {  // too close to the end: copy with padding
      tail = simdjson::padded_string(text);
      p = tail.data();
      capacity = text.size() + pad;
    }
    Impl::LineError e;
    if (!impl_->ParseLine(p, text.size(), capacity, line, b, e))
      impl_->AddError(b, text, line, std::move(e));
  }
  impl_->read_only = false;
}


}  // namespace cdp
