// Identifier normalisation and the engine config parser.
#include "cdp/policy.hpp"

#include <algorithm>
#include <cmath>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "util.hpp"
#include "json_util.hpp"
#include "simdjson.h"

namespace cdp {

std::string_view RejectionName(Rejection r) {
  static constexpr std::string_view kNames[] = {
      "invalid", "blocked", "too_long", "missing_scope", "quarantined", "unknown_type",
      "over_limit", "forgotten"};
  auto i = static_cast<size_t>(r);
  return i < std::size(kNames) ? kNames[i] : "unknown";
}

std::string_view SurvivorshipName(Survivorship s) {
  static constexpr std::string_view kNames[] = {"latest", "first", "source_priority", "max",
                                                "min",    "sum",   "non_empty",       "union"};
  auto i = static_cast<size_t>(s);
  return i < std::size(kNames) ? kNames[i] : "unknown";
}

const AttrPolicy* EngineConfig::FindAttr(std::string_view name) const {
  for (const AttrPolicy& a : profile.attributes)
    if (a.name == name) return &a;
  return nullptr;
}

int EngineConfig::FindType(std::string_view name) const {
  for (size_t i = 0; i < types.size(); ++i)
    if (types[i].name == name) return static_cast<int>(i);
  return -1;
}

bool EngineConfig::AnyHashed() const {
  if (accept_unknown_types && unknown_type_policy.hashed) return true;
  for (const IdPolicy& p : types)
    if (p.hashed) return true;
  return false;
}

uint32_t EngineConfig::AddUnknownType(std::string_view name) {
  IdPolicy p = unknown_type_policy;
  p.name = std::string(name);
  p.configured = false;
  types.push_back(std::move(p));
  RankTypes();
  return static_cast<uint32_t>(types.size() - 1);
}

void EngineConfig::RankTypes() {
  std::vector<uint32_t> order(types.size());
  for (uint32_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) { return types[a].name < types[b].name; });
  name_rank.assign(types.size(), 0);
  for (uint32_t r = 0; r < order.size(); ++r) name_rank[order[r]] = r;
}

// --- normalisation ----------------------------------------------------------------------

namespace {

bool IsSpace(unsigned char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

std::string_view Trim(std::string_view s) {
  while (!s.empty() && IsSpace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && IsSpace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  // The ideographic space U+3000 (E3 80 80) is common in Chinese input forms.
  while (s.size() >= 3 && s.substr(0, 3) == "\xE3\x80\x80") s.remove_prefix(3);
  while (s.size() >= 3 && s.substr(s.size() - 3) == "\xE3\x80\x80") s.remove_suffix(3);
  return s;
}

void AppendLower(std::string& out, std::string_view s) {
  for (char c : s) out += absl::ascii_tolower(static_cast<unsigned char>(c));
}

// Chinese mainland mobile: drop separators and the +86 / 0086 / 86 country prefix; what
// remains must be 11 digits starting with 1[3-9].
bool NormalizeCnMobile(std::string_view raw, std::string& out) {
  char digits[24];
  size_t n = 0;
  bool plus = false;
  for (char c : raw) {
    if (c >= '0' && c <= '9') {
      if (n == sizeof digits) return false;
      digits[n++] = c;
    } else if (c == '+' && n == 0 && !plus) {
      plus = true;
    } else if (c == ' ' || c == '-' || c == '(' || c == ')' || c == '.' || c == '\t') {
      continue;
    } else {
      return false;
    }
  }
  std::string_view d(digits, n);
  if (d.size() == 15 && d.substr(0, 4) == "0086") d.remove_prefix(4);
  else if (d.size() == 13 && d.substr(0, 2) == "86") d.remove_prefix(2);
  else if (plus) return false;  // another country code
  if (d.size() != 11 || d[0] != '1' || d[1] < '3' || d[1] > '9') return false;
  out.assign(d);
  return true;
}

bool NormalizeEmail(std::string_view raw, std::string& out) {
  std::string_view s = Trim(raw);
  size_t at = s.find('@');
  if (at == std::string_view::npos || at == 0 || at + 1 >= s.size()) return false;
  if (s.find('@', at + 1) != std::string_view::npos) return false;
  std::string_view domain = s.substr(at + 1);
  if (domain.find('.') == std::string_view::npos || domain.front() == '.' || domain.back() == '.')
    return false;
  for (char c : s)
    if (IsSpace(static_cast<unsigned char>(c))) return false;
  AppendLower(out, s);
  return true;
}

}  // namespace

bool ValidTypeName(std::string_view n) {
  if (n.empty() || n.size() > 64) return false;
  for (char c : n)
    if (!(absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.'))
      return false;
  return true;
}

bool Blocklist::Blocks(std::string_view v) const {
  if (!exact.empty()) {
    if (v.size() <= 64) {
      char lower[64];
      for (size_t i = 0; i < v.size(); ++i) lower[i] = absl::ascii_tolower(static_cast<unsigned char>(v[i]));
      if (exact.contains(std::string_view(lower, v.size()))) return true;
    }
  }
  if (repeated) {
    // All characters equal once separators are dropped: 00000000, 1111-1111, 0000...-0000.
    char first = 0;
    size_t kept = 0;
    bool same = true;
    for (char c : v) {
      if (c == '-' || c == ':' || c == ' ' || c == '.' || c == '_') continue;
      if (kept++ == 0) first = c;
      else if (c != first) { same = false; break; }
    }
    if (same && kept >= repeated_min_length) return true;
  }
  for (const auto& re : compiled)
    if (std::regex_match(v.begin(), v.end(), *re)) return true;
  return false;
}

std::string MaskValue(Normalizer kind, std::string_view v) {
  std::string out;
  size_t slash = v.find('/');
  if (slash != std::string_view::npos && kind != Normalizer::kEmail) {  // scope/value
    out.assign(v.substr(0, slash + 1));
    v.remove_prefix(slash + 1);
  }
  if (kind == Normalizer::kCnMobile && v.size() == 11) {
    out += v.substr(0, 3);
    out += "****";
    out += v.substr(7);
  } else if (kind == Normalizer::kEmail && v.find('@') != std::string_view::npos) {
    out += v.substr(0, 1);
    out += "***";
    out += v.substr(v.find('@'));
  } else if (v.size() > 6) {
    // Keep two characters at each end; step back to a UTF-8 boundary.
    size_t head = 2, tail = v.size() - 2;
    while (head > 0 && (static_cast<unsigned char>(v[head]) & 0xC0) == 0x80) --head;
    while (tail < v.size() && (static_cast<unsigned char>(v[tail]) & 0xC0) == 0x80) ++tail;
    out += v.substr(0, head);
    out += "***";
    out += v.substr(tail);
  } else {
    out += "***";
  }
  return out;
}

std::string HashedValue(const uint8_t* d, std::string_view mask) {
  static constexpr char kB64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  out.reserve(kHashedPrefix + mask.size());
  out += '#';
  uint32_t acc = 0;
  int bits = 0;
  for (size_t i = 0; i < kHashedDigestBytes; ++i) {
    acc = (acc << 8) | d[i];
    for (bits += 8; bits >= 6; bits -= 6) out += kB64[(acc >> (bits - 6)) & 63];
  }
  if (bits > 0) out += kB64[(acc << (6 - bits)) & 63];
  out += '|';
  out += mask;
  return out;
}

bool IsHashedValue(std::string_view v) {
  if (v.size() < kHashedPrefix || v[0] != '#' || v[kHashedPrefix - 1] != '|') return false;
  for (size_t i = 1; i + 1 < kHashedPrefix; ++i)
    if (!(absl::ascii_isalnum(static_cast<unsigned char>(v[i])) || v[i] == '-' || v[i] == '_')) return false;
  return true;
}

std::string ShowValue(const IdPolicy& p, std::string_view stored, bool mask) {
  if (p.hashed && mask && IsHashedValue(stored)) return std::string(stored.substr(kHashedPrefix));
  return mask ? MaskValue(p.normalizer, stored) : std::string(stored);
}

Rejection NormalizeId(const IdPolicy& p, const Blocklist& global, std::string_view raw,
                      std::string& out) {
  out.clear();
  switch (p.normalizer) {
    case Normalizer::kNone: out.assign(raw); break;
    case Normalizer::kTrim: out.assign(Trim(raw)); break;
    case Normalizer::kLower: AppendLower(out, Trim(raw)); break;
    case Normalizer::kCnMobile:
      if (!NormalizeCnMobile(raw, out)) return Rejection::kInvalid;
      break;
    case Normalizer::kEmail:
      if (!NormalizeEmail(raw, out)) return Rejection::kInvalid;
      break;
    case Normalizer::kRegex: {
      std::string_view s = Trim(raw);
      std::match_results<std::string_view::const_iterator> m;
      if (!std::regex_match(s.begin(), s.end(), m, *p.normalize_re)) return Rejection::kInvalid;
      out = m.format(p.regex_replace);
      break;
    }
  }
  if (out.size() > p.max_length) return Rejection::kTooLong;
  if (global.Blocks(out) || p.blocklist.Blocks(out)) return Rejection::kBlocked;
  if (out.empty()) return Rejection::kBlocked;
  if (p.validate_re && !std::regex_match(out.cbegin(), out.cend(), *p.validate_re))
    return Rejection::kInvalid;
  return Rejection::kCount_;
}

// --- config parsing ---------------------------------------------------------------------

namespace {

namespace dom = simdjson::dom;

absl::Status Bad(std::string_view path, std::string_view what) {
  return absl::InvalidArgumentError(Cat("config: ", path, ": ", what));
}

absl::StatusOr<std::shared_ptr<const std::regex>> Compile(std::string_view path,
                                                          std::string_view pattern) {
  // libstdc++'s regex compiler reads a back-reference's number and a repeat's bounds into
  // a long with no overflow check (undefined behaviour: fuzzing found "\\777...7"). No
  // identifier pattern needs such a number, so a run of more than 6 digits after a
  // backslash or inside braces is refused before the compiler sees it.
  for (size_t i = 0; i < pattern.size(); ++i) {
    const bool escape = pattern[i] == '\\';
    if (!escape && pattern[i] != '{') continue;
    size_t run = 0;
    for (size_t j = i + 1; j < pattern.size(); ++j) {
      if (absl::ascii_isdigit(static_cast<unsigned char>(pattern[j]))) {
        if (++run > 6) return Bad(path, Cat("invalid pattern \"", pattern, "\": a number over 6 digits at byte ", j));
      } else if (!escape && pattern[j] == ',') {
        run = 0;
      } else {
        break;
      }
    }
    if (escape) ++i;  // the escaped character is not an escape or a brace itself
  }
  try {
    return std::make_shared<const std::regex>(std::string(pattern), std::regex::ECMAScript);
  } catch (const std::regex_error& e) {
    return Bad(path, Cat("invalid pattern \"", pattern, "\": ", e.what()));
  }
}

template <typename T>
absl::Status GetUint(dom::element v, std::string_view path, T& out) {
  uint64_t x;
  if (v.get(x) != simdjson::SUCCESS || x > std::numeric_limits<T>::max())
    return Bad(path, "expected a non-negative integer");
  out = static_cast<T>(x);
  return absl::OkStatus();
}

absl::Status GetString(dom::element v, std::string_view path, std::string& out) {
  std::string_view s;
  if (v.get(s) != simdjson::SUCCESS) return Bad(path, "expected a string");
  out.assign(s);
  return absl::OkStatus();
}

absl::Status GetDouble(dom::element v, std::string_view path, double& out) {
  if (v.get(out) != simdjson::SUCCESS || !std::isfinite(out)) return Bad(path, "expected a number");
  return absl::OkStatus();
}

absl::Status GetBool(dom::element v, std::string_view path, bool& out) {
  if (v.get(out) != simdjson::SUCCESS) return Bad(path, "expected true or false");
  return absl::OkStatus();
}

// One attribute's policy: {"type": "date", "survivorship": "source_priority",
// "sources": ["crm", "tmall"]}.
absl::Status ApplyAttrPolicy(AttrPolicy& a, dom::element v, const std::string& path) {
  dom::object o;
  if (v.get(o) != simdjson::SUCCESS) return Bad(path, "expected an object");
  for (auto [key, val] : o) {
    std::string p = Cat(path, ".", key);
    if (key == "type") {
      std::string_view t;
      if (val.get(t) != simdjson::SUCCESS) return Bad(p, "expected a string");
      static constexpr std::pair<std::string_view, ValueKind> kTypes[] = {
          {"string", ValueKind::kString},       {"int", ValueKind::kInt},
          {"double", ValueKind::kDouble},       {"money", ValueKind::kMoney},
          {"bool", ValueKind::kBool},           {"timestamp", ValueKind::kTimestamp},
          {"date", ValueKind::kDate},           {"list", ValueKind::kList},
          {"auto", ValueKind::kNull}};
      auto it = std::find_if(std::begin(kTypes), std::end(kTypes), [&](auto& e) { return e.first == t; });
      if (it == std::end(kTypes))
        return Bad(p, "expected one of string, int, double, money, bool, timestamp, date, list, auto");
      a.type = it->second;
    } else if (key == "survivorship") {
      std::string_view r;
      if (val.get(r) != simdjson::SUCCESS) return Bad(p, "expected a string");
      bool found = false;
      for (int i = 0; i <= static_cast<int>(Survivorship::kUnion); ++i)
        if (SurvivorshipName(static_cast<Survivorship>(i)) == r) {
          a.rule = static_cast<Survivorship>(i);
          found = true;
        }
      if (!found)
        return Bad(p, "expected one of latest, first, source_priority, max, min, sum, non_empty, union");
    } else if (key == "sources") {
      dom::array arr;
      if (val.get(arr) != simdjson::SUCCESS) return Bad(p, "expected an array of source names");
      a.sources.clear();
      for (dom::element e : arr) {
        std::string_view s;
        if (e.get(s) != simdjson::SUCCESS) return Bad(p, "expected an array of source names");
        a.sources.emplace_back(s);
      }
    } else {
      return Bad(p, "unknown key");
    }
  }
  // The rule must make sense for the type.
  using K = ValueKind;
  const K t = a.type;
  switch (a.rule) {
    case Survivorship::kSum:
      if (t != K::kNull && t != K::kInt && t != K::kDouble && t != K::kMoney)
        return Bad(path, "survivorship sum needs a numeric type (int, double, money)");
      break;
    case Survivorship::kMax:
    case Survivorship::kMin:
      if (t == K::kBool || t == K::kList) return Bad(path, "survivorship max/min needs an ordered type");
      break;
    case Survivorship::kUnion:
      if (t != K::kNull && t != K::kList) return Bad(path, "survivorship union needs type list");
      break;
    case Survivorship::kSourcePriority:
      if (a.sources.empty()) return Bad(path, "survivorship source_priority needs a sources list");
      break;
    default:
      break;
  }
  return absl::OkStatus();
}

absl::Status ApplyBlocklist(Blocklist& b, dom::element v, const std::string& path) {
  dom::object o;
  if (v.get(o) != simdjson::SUCCESS) return Bad(path, "expected an object");
  for (auto [key, val] : o) {
    std::string p = Cat(path, ".", key);
    if (key == "exact") {
      dom::array a;
      if (val.get(a) != simdjson::SUCCESS) return Bad(p, "expected an array of strings");
      b.exact.clear();
      size_t i = 0;
      for (dom::element e : a) {
        std::string s;
        if (auto st = GetString(e, Cat(p, "[", i++, "]"), s); !st.ok()) return st;
        b.exact.insert(absl::AsciiStrToLower(s));
      }
    } else if (key == "patterns") {
      dom::array a;
      if (val.get(a) != simdjson::SUCCESS) return Bad(p, "expected an array of strings");
      b.patterns.clear();
      b.compiled.clear();
      size_t i = 0;
      for (dom::element e : a) {
        std::string s, ep = Cat(p, "[", i++, "]");
        if (auto st = GetString(e, ep, s); !st.ok()) return st;
        auto re = Compile(ep, s);
        if (!re.ok()) return re.status();
        b.patterns.push_back(s);
        b.compiled.push_back(*re);
      }
    } else if (key == "repeated") {
      if (auto st = GetBool(val, p, b.repeated); !st.ok()) return st;
    } else if (key == "repeated_min_length") {
      if (auto st = GetUint(val, p, b.repeated_min_length); !st.ok()) return st;
      if (b.repeated_min_length < 2) return Bad(p, "must be at least 2");
    } else {
      return Bad(p, "unknown key");
    }
  }
  return absl::OkStatus();
}

absl::Status ApplyPolicy(IdPolicy& pol, dom::element v, const std::string& path) {
  dom::object o;
  if (v.get(o) != simdjson::SUCCESS) return Bad(path, "expected an object");
  for (auto [key, val] : o) {
    std::string p = Cat(path, ".", key);
    absl::Status st;
    if (key == "normalizer") {
      std::string s;
      if (st = GetString(val, p, s); !st.ok()) return st;
      if (s == "none") pol.normalizer = Normalizer::kNone;
      else if (s == "trim") pol.normalizer = Normalizer::kTrim;
      else if (s == "lower") pol.normalizer = Normalizer::kLower;
      else if (s == "cn_mobile") pol.normalizer = Normalizer::kCnMobile;
      else if (s == "email") pol.normalizer = Normalizer::kEmail;
      else if (s == "regex") pol.normalizer = Normalizer::kRegex;
      else return Bad(p, Cat("unknown normalizer \"", s,
                                      "\" (none, trim, lower, cn_mobile, email, regex)"));
    } else if (key == "pattern") {
      st = GetString(val, p, pol.regex_pattern);
    } else if (key == "replace") {
      st = GetString(val, p, pol.regex_replace);
    } else if (key == "validate") {
      st = GetString(val, p, pol.validate);
    } else if (key == "max_length") {
      st = GetUint(val, p, pol.max_length);
    } else if (key == "max_per_person") {
      st = GetUint(val, p, pol.max_per_person);
    } else if (key == "priority") {
      int64_t x;
      if (val.get(x) != simdjson::SUCCESS || x < -1000000 || x > 1000000)
        return Bad(p, "expected an integer in [-1000000, 1000000]");
      pol.priority = static_cast<int32_t>(x);
    } else if (key == "trust") {
      std::string s;
      if (st = GetString(val, p, s); !st.ok()) return st;
      if (s == "strong") pol.trust = Trust::kStrong;
      else if (s == "weak") pol.trust = Trust::kWeak;
      else return Bad(p, "expected \"strong\" or \"weak\"");
    } else if (key == "weight") {
      st = GetDouble(val, p, pol.weight);
      if (st.ok() && pol.weight < 0) return Bad(p, "must not be negative");
    } else if (key == "scope") {
      st = GetString(val, p, pol.scope);
    } else if (key == "blocklist") {
      st = ApplyBlocklist(pol.blocklist, val, p);
    } else if (key == "hashed") {
      st = GetBool(val, p, pol.hashed);
    } else {
      return Bad(p, "unknown key");
    }
    if (!st.ok()) return st;
  }
  return absl::OkStatus();
}

absl::Status Finish(IdPolicy& pol, const std::string& path) {
  if (pol.normalizer == Normalizer::kRegex) {
    if (pol.regex_pattern.empty()) return Bad(path + ".pattern", "the regex normalizer needs a pattern");
    auto re = Compile(path + ".pattern", pol.regex_pattern);
    if (!re.ok()) return re.status();
    pol.normalize_re = *re;
  }
  if (!pol.validate.empty()) {
    auto re = Compile(path + ".validate", pol.validate);
    if (!re.ok()) return re.status();
    pol.validate_re = *re;
  }
  if (pol.max_length == 0) return Bad(path + ".max_length", "must be at least 1");
  if (pol.trust == Trust::kWeak && pol.weight == 0)
    pol.weight = 0.0;  // a weak type without weight never matches on its own; allowed
  return absl::OkStatus();
}

// "granted" or "denied", as privacy.consent spells a default.
absl::Status GetConsent(dom::element v, const std::string& path, bool& granted) {
  std::string s;
  if (auto st = GetString(v, path, s); !st.ok()) return st;
  if (s != "granted" && s != "denied") return Bad(path, "expected \"granted\" or \"denied\"");
  granted = s == "granted";
  return absl::OkStatus();
}

// privacy.consent: {"default": ..., "channels": {channel: ..., channel: null}}, field by
// field over what is there (null removes a channel's own default).
absl::Status ApplyConsent(EngineConfig::ConsentDefaults& c, dom::element v, const std::string& path) {
  dom::object o;
  if (v.get(o) != simdjson::SUCCESS) return Bad(path, "expected an object");
  for (auto [key, val] : o) {
    std::string p = Cat(path, ".", key);
    if (key == "default") {
      if (auto st = GetConsent(val, p, c.granted); !st.ok()) return st;
    } else if (key == "channels") {
      dom::object channels;
      if (val.get(channels) != simdjson::SUCCESS) return Bad(p, "expected an object of channel: default");
      for (auto [name, dv] : channels) {
        std::string cp = Cat(p, ".", name);
        if (!ValidTypeName(name)) return Bad(cp, "channel names are 1-64 of [A-Za-z0-9_.-]");
        if (dv.is_null()) {
          c.channels.erase(name);
          continue;
        }
        bool granted;
        if (auto st = GetConsent(dv, cp, granted); !st.ok()) return st;
        c.channels.insert_or_assign(std::string(name), granted);
      }
    } else {
      return Bad(p, "unknown key");
    }
  }
  return absl::OkStatus();
}

absl::Status ApplyConfig(EngineConfig& cfg, dom::element root, bool is_default) {
  dom::object o;
  if (root.get(o) != simdjson::SUCCESS) return Bad("(root)", "expected an object");
  // "base": "empty" starts from no identifier types instead of the defaults.
  if (!is_default) {
    std::string_view base;
    if (o["base"].get(base) == simdjson::SUCCESS) {
      if (base == "empty") cfg.types.clear();
      else if (base != "default") return Bad("base", "expected \"default\" or \"empty\"");
    }
  }
  for (auto [key, val] : o) {
    std::string p(key);
    absl::Status st;
    if (key == "version") {
      uint64_t v;
      if (val.get(v) != simdjson::SUCCESS || v != 1) return Bad(p, "only version 1 is known");
    } else if (key == "base") {
      continue;
    } else if (key == "id_types") {
      dom::object types;
      if (val.get(types) != simdjson::SUCCESS) return Bad(p, "expected an object of policies");
      for (auto [name, pol] : types) {
        std::string tp = Cat(p, ".", name);
        if (!ValidTypeName(name)) return Bad(tp, "type names are 1-64 of [A-Za-z0-9_.-]");
        int idx = cfg.FindType(name);
        if (pol.is_null()) {  // null removes a default type
          if (idx >= 0) cfg.types.erase(cfg.types.begin() + idx);
          continue;
        }
        if (idx < 0) {
          IdPolicy fresh = cfg.unknown_type_policy;
          fresh.name = std::string(name);
          cfg.types.push_back(std::move(fresh));
          idx = static_cast<int>(cfg.types.size() - 1);
        }
        if (st = ApplyPolicy(cfg.types[idx], pol, tp); !st.ok()) return st;
      }
    } else if (key == "unknown_types") {
      dom::object u;
      if (val.get(u) != simdjson::SUCCESS) return Bad(p, "expected an object");
      for (auto [k2, v2] : u) {
        std::string p2 = Cat(p, ".", k2);
        if (k2 == "accept") st = GetBool(v2, p2, cfg.accept_unknown_types);
        else if (k2 == "policy") st = ApplyPolicy(cfg.unknown_type_policy, v2, p2);
        else return Bad(p2, "unknown key");
        if (!st.ok()) return st;
      }
    } else if (key == "blocklist") {
      st = ApplyBlocklist(cfg.global_blocklist, val, p);
    } else if (key == "matching") {
      dom::object m;
      if (val.get(m) != simdjson::SUCCESS) return Bad(p, "expected an object");
      for (auto [k2, v2] : m) {
        std::string p2 = Cat(p, ".", k2);
        if (k2 == "threshold") {
          st = GetDouble(v2, p2, cfg.match_threshold);
          if (st.ok() && cfg.match_threshold <= 0) return Bad(p2, "must be positive");
        } else {
          return Bad(p2, "unknown key");
        }
        if (!st.ok()) return st;
      }
    } else if (key == "quarantine_after") {
      st = GetUint(val, p, cfg.quarantine_after);
      if (st.ok() && cfg.quarantine_after == 0) return Bad(p, "must be at least 1");
    } else if (key == "oneid_seed") {
      st = GetUint(val, p, cfg.oneid_seed);
    } else if (key == "timezone") {
      st = GetString(val, p, cfg.profile.timezone);
      if (st.ok()) {
        auto z = TimeZone::Load(cfg.profile.timezone);
        if (!z.ok()) return Bad(p, std::string(z.status().message()));
      }
    } else if (key == "profile") {
      dom::object l;
      if (val.get(l) != simdjson::SUCCESS) return Bad(p, "expected an object");
      ProfileConfig& pc = cfg.profile;
      for (auto [k2, v2] : l) {
        std::string p2 = Cat(p, ".", k2);
        if (k2 == "horizon_days") {
          st = GetUint(v2, p2, pc.horizon_days);
          if (st.ok() && (pc.horizon_days < 400 || pc.horizon_days > 3660))
            return Bad(p2, "must be between 400 and 3660 days");
        } else if (k2 == "max_attrs_per_record") st = GetUint(v2, p2, pc.max_attrs_per_record);
        else if (k2 == "max_props_per_event") {
          st = GetUint(v2, p2, pc.max_props_per_event);
          if (st.ok() && pc.max_props_per_event > 30) return Bad(p2, "at most 30");
        }
        else if (k2 == "max_list_items") st = GetUint(v2, p2, pc.max_list_items);
        else if (k2 == "max_value_bytes") st = GetUint(v2, p2, pc.max_value_bytes);
        else return Bad(p2, "unknown key");
        if (!st.ok()) return st;
      }
    } else if (key == "attributes") {
      dom::object attrs;
      if (val.get(attrs) != simdjson::SUCCESS) return Bad(p, "expected an object of attribute policies");
      for (auto [key_name, pol] : attrs) {
        const std::string_view name = key_name;  // a lambda cannot capture a structured binding
        std::string ap = Cat(p, ".", name);
        if (!ValidTypeName(name)) return Bad(ap, "attribute names are 1-64 of [A-Za-z0-9_.-]");
        auto& list = cfg.profile.attributes;
        auto it = std::find_if(list.begin(), list.end(), [&](const AttrPolicy& a) { return a.name == name; });
        if (pol.is_null()) {
          if (it != list.end()) list.erase(it);
          continue;
        }
        if (it == list.end()) {
          list.push_back(AttrPolicy{std::string(name), ValueKind::kNull, Survivorship::kLatest, {}});
          it = list.end() - 1;
        }
        if (st = ApplyAttrPolicy(*it, pol, ap); !st.ok()) return st;
      }
    } else if (key == "privacy") {
      dom::object d;
      if (val.get(d) != simdjson::SUCCESS) return Bad(p, "expected an object");
      for (auto [k2, v2] : d) {
        std::string p2 = Cat(p, ".", k2);
        if (k2 == "consent") {
          if (st = ApplyConsent(cfg.consent, v2, p2); !st.ok()) return st;
          continue;
        }
        std::string s;
        if (st = GetString(v2, p2, s); !st.ok()) return st;
        if (k2 == "tombstones") {
          if (s == "block") cfg.tombstones = EngineConfig::Tombstones::kBlock;
          else if (s == "consent") cfg.tombstones = EngineConfig::Tombstones::kConsent;
          else return Bad(p2, "expected \"block\" or \"consent\"");
        } else if (k2 == "consent_event") {
          if (s.empty()) return Bad(p2, "expected an event type");
          cfg.consent_event = std::move(s);
        } else {
          return Bad(p2, "unknown key");
        }
      }
    } else if (key == "durability") {
      dom::object d;
      if (val.get(d) != simdjson::SUCCESS) return Bad(p, "expected an object");
      for (auto [k2, v2] : d) {
        std::string p2 = Cat(p, ".", k2);
        if (k2 == "snapshot_log_bytes") {
          int64_t n = 0;
          if (v2.get(n) != simdjson::SUCCESS || n < 0) return Bad(p2, "expected a byte count (0: never automatically)");
          cfg.snapshot_log_bytes = static_cast<uint64_t>(n);
          continue;
        }
        if (k2 != "sync") return Bad(p2, "unknown key");
        std::string s;
        if (st = GetString(v2, p2, s); !st.ok()) return st;
        if (s == "batch") cfg.sync = SyncPolicy::kBatch;
        else if (s == "none") cfg.sync = SyncPolicy::kNone;
        else return Bad(p2, "expected \"batch\" or \"none\"");
      }
    } else if (key == "tags") {
      // Checked when the engine installs them (Engine::Open), with the tags' own errors.
      dom::array a;
      if (val.get(a) != simdjson::SUCCESS) return Bad(p, "expected an array of tag definitions");
      cfg.tags_json = simdjson::minify(val);
    } else if (key == "lifecycle") {
      dom::object o;
      if (val.get(o) != simdjson::SUCCESS) return Bad(p, "expected a lifecycle definition document (an object)");
      cfg.lifecycle_json = simdjson::minify(val);
    } else if (key == "limits") {
      dom::object l;
      if (val.get(l) != simdjson::SUCCESS) return Bad(p, "expected an object");
      for (auto [k2, v2] : l) {
        std::string p2 = Cat(p, ".", k2);
        if (k2 == "max_record_bytes") st = GetUint(v2, p2, cfg.limits.max_record_bytes);
        else if (k2 == "max_ids_per_record") st = GetUint(v2, p2, cfg.limits.max_ids_per_record);
        else if (k2 == "max_id_bytes") st = GetUint(v2, p2, cfg.limits.max_id_bytes);
        else if (k2 == "max_batch_bytes") st = GetUint(v2, p2, cfg.limits.max_batch_bytes);
        else if (k2 == "max_errors_listed") st = GetUint(v2, p2, cfg.limits.max_errors_listed);
        else if (k2 == "max_expr_bytes") st = GetUint(v2, p2, cfg.limits.max_expr_bytes);
        else if (k2 == "max_tags") st = GetUint(v2, p2, cfg.limits.max_tags);
        else if (k2 == "max_audiences") st = GetUint(v2, p2, cfg.limits.max_audiences);
        else if (k2 == "max_lifecycle_definitions") st = GetUint(v2, p2, cfg.limits.max_lifecycle_definitions);
        else if (k2 == "max_history") st = GetUint(v2, p2, cfg.limits.max_history);
        else if (k2 == "max_outbox") st = GetUint(v2, p2, cfg.limits.max_outbox);
        else if (k2 == "max_expr_nodes") st = GetUint(v2, p2, cfg.limits.max_expr_nodes);
        else if (k2 == "max_expr_depth") st = GetUint(v2, p2, cfg.limits.max_expr_depth);
        else if (k2 == "max_expr_steps") st = GetUint(v2, p2, cfg.limits.max_expr_steps);
        else if (k2 == "max_expr_list") st = GetUint(v2, p2, cfg.limits.max_expr_list);
        else if (k2 == "max_ids_per_person") {
          st = GetUint(v2, p2, cfg.limits.max_ids_per_person);
          if (st.ok() && cfg.limits.max_ids_per_person < 2) return Bad(p2, "must be at least 2");
        }
        else return Bad(p2, "unknown key");
        if (!st.ok()) return st;
      }
    } else {
      return Bad(p, "unknown key");
    }
    if (!st.ok()) return st;
  }
  return absl::OkStatus();
}

absl::Status ParseInto(EngineConfig& cfg, std::string_view json, bool is_default) {
  // The locator runs first so that a syntax error gets a line and column.
  if (auto st = json::CheckSyntax(json, "config", /*with_path=*/true); !st.ok()) return st;
  dom::parser parser;
  dom::element root;
  if (auto err = parser.parse(json.data(), json.size()).get(root); err)
    return absl::InvalidArgumentError(Cat("config: ", simdjson::error_message(err)));
  return ApplyConfig(cfg, root, is_default);
}

}  // namespace

absl::StatusOr<EngineConfig> ParseConfig(std::string_view json) {
  EngineConfig cfg;
  if (auto st = ParseInto(cfg, DefaultConfigJson(), true); !st.ok())
    return absl::InternalError(Cat("built-in default config: ", st.message()));
  std::string_view trimmed = json;
  while (!trimmed.empty() && IsSpace(static_cast<unsigned char>(trimmed.front()))) trimmed.remove_prefix(1);
  if (!trimmed.empty())
    if (auto st = ParseInto(cfg, json, false); !st.ok()) return st;
  int slot = 0;
  for (auto& t : cfg.types) {
    if (auto st = Finish(t, "id_types." + t.name); !st.ok()) return st;
    t.limit_slot = t.max_per_person > 0 ? slot++ : -1;
  }
  if (auto st = Finish(cfg.unknown_type_policy, "unknown_types.policy"); !st.ok()) return st;
  cfg.unknown_type_policy.limit_slot = -1;
  cfg.unknown_type_policy.max_per_person = 0;  // unknown types carry no per-person limit
  if (cfg.types.size() > 4096) return Bad("id_types", "at most 4096 identifier types");
  if (cfg.profile.attributes.size() > 4096) return Bad("attributes", "at most 4096 declared attributes");
  cfg.RankTypes();
  auto zone = TimeZone::Load(cfg.profile.timezone);
  if (!zone.ok()) return Bad("timezone", std::string(zone.status().message()));
  cfg.zone = *zone;
  return cfg;
}

}  // namespace cdp
