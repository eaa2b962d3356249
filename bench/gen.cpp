// bench/gen.cpp — see gen.hpp. The generator works in three steps:
//  1. each person's touchpoints are drawn from a PRNG seeded by (seed, person), as compact
//     records that name identifiers symbolically (whose, which kind, which format);
//  2. the truth is computed on those: which shared values really are shared, and per
//     person, which records a path of clean identifiers joins (the ceiling);
//  3. the records are shuffled and rendered to NDJSON.
#include "gen.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <numeric>
#include <stdexcept>

namespace cdpbench {

const char kCeilingDefinition[] =
    "An identifier is clean when it is not on the default blocklist and every record that\n"
    "carries it belongs to one true person (own mobiles, unionids, openids, member numbers,\n"
    "shop accounts, emails and personal devices are; store numbers, kiosks and household\n"
    "devices seen with two or more persons are not). Two records of one person are linkable\n"
    "when a chain of records joins them, each consecutive pair sharing a clean identifier.\n"
    "Ceiling = linkable pairs / all same-person pairs: the best pairwise recall an engine\n"
    "can reach without linking on junk or shared values.\n"
    "The strong-only ceiling drops device_id (weak): it is the ceiling for an engine that\n"
    "never links on a device id alone.";

namespace {

// ---- randomness ---------------------------------------------------------------------

constexpr uint64_t kGolden = 0x9e3779b97f4a7c15ull;

// splitmix64's finaliser: a bijection on 64-bit integers, so distinct inputs give distinct
// outputs. The identifier encoders below rely on that for uniqueness.
constexpr uint64_t Mix(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  uint64_t Next() { return Mix(state_ += kGolden); }
  uint32_t Below(uint32_t n) { return uint32_t((unsigned __int128)Next() * n >> 64); }
  uint64_t Below64(uint64_t n) { return uint64_t((unsigned __int128)Next() * n >> 64); }
  bool Chance(double p) { return double(Next() >> 11) * 0x1.0p-53 < p; }
  // Knuth's method; fine for the small means used here.
  uint32_t Poisson(double mean) {
    const double limit = std::exp(-mean);
    uint32_t k = 0;
    for (double prod = double(Next() >> 11) * 0x1.0p-53; prod > limit;
         prod *= double(Next() >> 11) * 0x1.0p-53)
      ++k;
    return k;
  }

 private:
  uint64_t state_;
};

// ---- the symbolic records -----------------------------------------------------------

enum Type : uint8_t {
  kMobile, kUnionid, kOpenid, kMpOpenid, kExternalUserid, kMemberNo, kDeviceId, kTbNick,
  kJdPin, kEmail
};
constexpr const char* kTypeName[] = {"mobile",    "unionid",   "openid",  "mp_openid",
                                     "external_userid", "member_no", "device_id",
                                     "tb_nick",   "jd_pin",    "email"};

// Whose value an identifier is. kOwn values belong to one person by construction; the
// others may be shared, which the truth step checks on the data.
enum Owner : uint8_t { kOwn, kStore, kBlocked, kFamily, kKiosk };

struct IdRef {
  uint8_t type;
  uint8_t owner;
  uint8_t slot;   // kOwn: which of the person's values (second mobile, second OA, ...)
  uint8_t fmt;    // formatting variant; does not change the normalised value
  uint32_t index; // kOwn: person; kStore/kFamily/kKiosk: store/household/kiosk; kBlocked: which
  uint64_t Key() const {
    return uint64_t(type) << 56 | uint64_t(owner) << 48 | uint64_t(slot) << 40 | index;
  }
};

enum Channel : uint8_t { kPos, kEvent, kWechatOa, kWecom, kWechatMp, kTmall, kJd, kApp,
                         kBrowse, kCrm, kChannels };
// Relative frequency of each channel's touchpoints, among the channels a person has (no
// WeChat, no WeChat touchpoints). The member desk is not drawn: each member has one.
constexpr double kChannelWeight[kChannels] = {0.24, 0.05, 0.13, 0.07, 0.08,
                                              0.14, 0.08, 0.12, 0.06, 0.0};
constexpr const char* kSource[kChannels] = {"pos",  "offline_event", "wechat_oa", "wecom",
                                            "wechat_mp", "tmall", "jd", "app", "app", "crm"};
constexpr const char* kEventType[kChannels] = {"purchase", "event_signup", "follow",
                                               "add_contact", "visit", "order", "order",
                                               "login", "view", "member_join"};
constexpr const char* kOfficialAccount[] = {"wx_brand", "wx_service"};
constexpr const char* kMiniProgram = "wx_mall";

constexpr int kMaxIds = 5;

struct Record {
  uint32_t person;
  uint8_t channel;
  uint8_t nids = 0;
  uint8_t app = 0;     // WeChat official account (kWechatOa)
  uint8_t attrs = 0;   // 0: none; else 1 + city index
  uint8_t noise = 0;   // Noise bits, set by the truth step
  int32_t fen = 0;     // order amount in fen; 0: no amount
  int64_t ts;
  IdRef ids[kMaxIds];
  void Add(IdRef id) { ids[nids++] = id; }
};

// ---- the population ------------------------------------------------------------------

constexpr int64_t kYearStart = 1672502400000;  // 2023-01-01T00:00:00+08:00
constexpr int64_t kYearMs = 365ll * 86'400'000;
constexpr uint32_t kPersonsPerStore = 3'000;   // a few hundred store numbers per million
constexpr uint32_t kPersonsPerKiosk = 100'000; // each kiosk is used by thousands

struct Population {
  uint64_t seed;
  uint32_t persons, stores, kiosks;
};

// Households live in blocks of four consecutive persons: a quarter of the blocks are a
// household of 2-4 who share a family tablet. Returns the household size, 0 for none.
uint32_t HouseholdSize(const Population& pop, uint32_t block) {
  Rng r(Mix(pop.seed ^ 0x686f757365ull) + block * kGolden);
  return r.Chance(0.25) ? 2 + r.Below(3) : 0;
}

IdRef Own(Type type, uint32_t person, uint8_t slot = 0, uint8_t fmt = 0) {
  return {type, kOwn, slot, fmt, person};
}

// Formatting variants of a mobile as people and systems type it; all normalise to the
// same 11 digits. Most are plain.
uint8_t MobileFormat(Rng& r) { return r.Chance(0.55) ? 0 : uint8_t(1 + r.Below(7)); }

// Draws one person's touchpoints.
void GeneratePerson(const Population& pop, uint32_t p, std::vector<Record>& out) {
  Rng r(Mix(pop.seed) ^ Mix(uint64_t(p) + 1));
  const bool second_mobile = r.Chance(0.10);
  const bool wechat = r.Chance(0.72);
  const bool second_oa = wechat && r.Chance(0.25);
  const bool member = r.Chance(0.50);
  const bool app_user = r.Chance(0.50);
  const bool second_device = app_user && r.Chance(0.15);
  const bool emails = r.Chance(0.40);
  const uint8_t city = uint8_t(1 + r.Below(8));
  const uint32_t store = r.Below(pop.stores);
  const uint32_t kiosk = store % pop.kiosks;
  const uint32_t household = p / 4;
  const bool in_household = p % 4 < HouseholdSize(pop, household);

  auto own_mobile = [&](double second_share = 0.4) {
    const uint8_t slot = second_mobile && r.Chance(second_share) ? 1 : 0;
    return Own(kMobile, p, slot, MobileFormat(r));
  };
  // A device id as an app session reports it: the person's phone, the household tablet
  // or the kiosk of the person's store.
  auto device = [&](double family_share, double kiosk_share) -> IdRef {
    if (r.Chance(kiosk_share)) return {kDeviceId, kKiosk, 0, 0, kiosk};
    if (in_household && r.Chance(family_share)) return {kDeviceId, kFamily, 0, 0, household};
    return Own(kDeviceId, p, second_device && r.Chance(0.3) ? 1 : 0);
  };
  // A POS cashier or event desk either takes the buyer's mobile or types something else.
  auto desk_mobile = [&](double store_share, double placeholder_share) -> IdRef {
    const double u = double(r.Next() >> 11) * 0x1.0p-53;
    if (u < store_share) return {kMobile, kStore, 0, 0, store};
    if (u < store_share + placeholder_share)
      return {kMobile, kBlocked, 0, 0, r.Chance(0.75) ? 0u : 1u};  // 13800138000 or "null"
    return own_mobile();
  };

  // The channels this person can be met on. A member has exactly one member-desk record
  // (the first drawn; its time is as random as any other's).
  double weight[kChannels], total = 0;
  for (int c = 0; c < kChannels; ++c) {
    const bool has = (c == kWechatOa || c == kWecom || c == kWechatMp) ? wechat
                     : (c == kApp || c == kBrowse)                  ? app_user
                                                                    : c != kCrm;
    total += weight[c] = has ? kChannelWeight[c] : 0;
  }
  const uint32_t count = 1 + r.Poisson(3.0);
  for (uint32_t i = 0; i < count; ++i) {
    Channel ch = kCrm;
    if (!member || i > 0) {
      double u = double(r.Next() >> 11) * 0x1.0p-53 * total;
      int c = 0;
      while (c + 1 < kChannels && (weight[c] == 0 || u >= weight[c])) u -= weight[c++];
      ch = weight[c] > 0 ? Channel(c) : kPos;  // rounding ran past the last channel
    }
    Record rec{};
    rec.person = p;
    rec.channel = ch;
    rec.ts = kYearStart + int64_t(r.Below64(kYearMs));
    rec.attrs = r.Chance(0.4) ? city : 0;
    switch (ch) {
      case kPos:
        rec.Add(desk_mobile(0.12, 0.04));
        if (member && r.Chance(0.4)) rec.Add(Own(kMemberNo, p));
        rec.fen = int32_t(990 + r.Below(60'000));
        break;
      case kEvent:
        rec.Add(desk_mobile(0.10, 0.05));
        break;
      case kWechatOa:
        rec.app = second_oa && r.Chance(0.5) ? 1 : 0;
        rec.Add(Own(kOpenid, p, rec.app));
        if (r.Chance(0.92)) rec.Add(Own(kUnionid, p));  // unbound accounts lack it
        break;
      case kWecom:
        rec.Add(Own(kExternalUserid, p));
        if (r.Chance(0.95)) rec.Add(Own(kUnionid, p));
        break;
      case kWechatMp:
        rec.Add(Own(kMpOpenid, p));
        if (r.Chance(0.85)) rec.Add(Own(kUnionid, p));
        if (r.Chance(0.5)) rec.Add(own_mobile());  // phone-number authorisation
        break;
      case kTmall:
      case kJd:
        rec.Add(Own(ch == kTmall ? kTbNick : kJdPin, p));
        rec.Add(own_mobile());  // the receiving mobile
        rec.fen = int32_t(1900 + r.Below(80'000));
        break;
      case kApp:
        rec.Add(device(0.5, 0.04));
        if (member) rec.Add(Own(kMemberNo, p));
        if (!member || r.Chance(0.4)) rec.Add(own_mobile());
        if (r.Chance(0.3)) rec.fen = int32_t(990 + r.Below(50'000));
        break;
      case kBrowse:
        rec.Add(device(0.5, 0.10));
        break;
      case kCrm:  // the member desk: the one record that carries everything
        rec.Add(own_mobile(0.0));
        if (second_mobile && r.Chance(0.6)) rec.Add(Own(kMobile, p, 1, MobileFormat(r)));
        if (wechat) rec.Add(Own(kUnionid, p));
        rec.Add(Own(kMemberNo, p));
        if (emails) rec.Add(Own(kEmail, p, 0, uint8_t(r.Below(3))));
        break;
      default:
        break;
    }
    out.push_back(rec);
  }
}

// ---- rendering -------------------------------------------------------------------------

constexpr char kB64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
constexpr char kB36[] = "0123456789abcdefghijklmnopqrstuvwxyz";
constexpr char kHex[] = "0123456789abcdef";

void AppendUnsigned(std::string& s, uint64_t v, int width = 0) {
  char buf[24];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  for (int pad = width - int(end - buf); pad > 0; --pad) s += '0';
  s.append(buf, end);
}

// n base64url characters of a 64-bit value: the first 11 hold all its bits, so distinct
// values give distinct strings; the rest is filler derived from it.
void AppendB64(std::string& s, uint64_t v, int n) {
  for (int i = 0; i < n; ++i) {
    const uint64_t word = i < 11 ? v : Mix(v + uint64_t(i / 10));
    s += kB64[(word >> (i < 11 ? 6 * i : 6 * (i % 10))) & 63];
  }
}

// 7 base36 characters of a bijection of a 32-bit index (36^7 > 2^32).
void AppendB36(std::string& s, uint32_t index, uint32_t salt) {
  uint64_t v = uint32_t(index * 2654435761u + salt);
  char buf[7];
  for (char& c : buf) { c = kB36[v % 36]; v /= 36; }
  s.append(buf, 7);
}

void AppendUuid(std::string& s, uint64_t a) {
  const uint64_t b = Mix(a);
  const bool upper = b & 1;  // iOS reports upper-case IDFAs, Android lower-case ids
  for (int i = 0; i < 32; ++i) {
    if (i == 8 || i == 12 || i == 16 || i == 20) s += '-';
    char c = kHex[(i < 16 ? a >> (60 - 4 * i) : b >> (60 - 4 * (i - 16))) & 15];
    s += upper && c >= 'a' ? char(c - 32) : c;
  }
}

struct Renderer {
  uint64_t seed;
  uint64_t salt(uint64_t what) const { return Mix(seed ^ (what * kGolden)); }

  // The digits of a mobile. A person's first mobile starts 13/15/18, the second 17/19,
  // store numbers 166: the three spaces never collide. The 9-digit suffix is an affine
  // bijection of the person modulo 10^9 (multipliers are powers of 3, coprime to 10).
  void MobileDigits(char out[11], const IdRef& id) const {
    uint64_t suffix;
    char second;
    if (id.owner == kStore) {
      std::copy_n("166", 3, out);
      uint64_t v = (id.index * 7919ull + salt(1) % 100'000'000) % 100'000'000;
      for (int i = 10; i >= 3; --i, v /= 10) out[i] = char('0' + v % 10);
      return;
    }
    if (id.slot == 0) {
      suffix = (id.index * 387'420'489ull + salt(2) % 1'000'000'000) % 1'000'000'000;
      second = "358"[Mix(id.index ^ salt(3)) % 3];
      // Keep clear of the two blocklisted values this space holds.
      if (second == '3' && (suffix == 800'138'000 || suffix == 888'888'888)) second = '5';
    } else {
      suffix = (id.index * 129'140'163ull + salt(4) % 1'000'000'000) % 1'000'000'000;
      second = "79"[Mix(id.index ^ salt(5)) % 2];
    }
    out[0] = '1';
    out[1] = second;
    for (int i = 10; i >= 2; --i, suffix /= 10) out[i] = char('0' + suffix % 10);
  }

  void Mobile(std::string& s, const IdRef& id) const {
    if (id.owner == kBlocked) { s += id.index == 0 ? "13800138000" : "null"; return; }
    char d[11];
    MobileDigits(d, id);
    auto put = [&](int from, int n) { s.append(d + from, n); };
    switch (id.fmt) {
      case 0: put(0, 11); break;
      case 1: s += "+86 "; put(0, 3); s += ' '; put(3, 4); s += ' '; put(7, 4); break;
      case 2: s += "+86"; put(0, 11); break;
      case 3: s += "0086 "; put(0, 11); break;
      case 4: put(0, 3); s += '-'; put(3, 4); s += '-'; put(7, 4); break;
      case 5: put(0, 3); s += ' '; put(3, 4); s += ' '; put(7, 4); break;
      case 6: s += "+86-"; put(0, 3); s += '-'; put(3, 4); s += '-'; put(7, 4); break;
      default: s += "0086"; put(0, 11); break;
    }
  }

  void Value(std::string& s, const IdRef& id) const {
    static constexpr const char* kNick[] = {"小王", "阿花", "快乐的猫", "tb", "淘气包",
                                            "星星", "lily", "老张"};
    static constexpr const char* kName[] = {"zhang", "li", "wang", "chen", "liu", "yang",
                                            "huang", "zhao"};
    static constexpr const char* kDomain[] = {"qq.com", "163.com", "126.com", "gmail.com",
                                              "sina.com", "outlook.com"};
    switch (id.type) {
      case kMobile: Mobile(s, id); break;
      case kUnionid: s += 'o'; AppendB64(s, Mix(id.index ^ salt(10)), 27); break;
      case kOpenid: s += 'o'; AppendB64(s, Mix(id.index ^ salt(11 + id.slot)), 27); break;
      case kMpOpenid: s += 'o'; AppendB64(s, Mix(id.index ^ salt(13)), 27); break;
      case kExternalUserid: s += "wm"; AppendB64(s, Mix(id.index ^ salt(14)), 30); break;
      case kMemberNo:
        s += 'M';
        AppendUnsigned(s, (id.index * 3'486'784'401ull + salt(15) % 10'000'000'000) %
                              10'000'000'000, 10);
        break;
      case kDeviceId: {
        // Per owner kind its own salt; within one, a bijection of (index, slot).
        const uint64_t which = uint64_t(id.index) << 2 | id.slot;
        AppendUuid(s, Mix(which ^ salt(20 + id.owner)));
        break;
      }
      case kTbNick:
        s += kNick[Mix(id.index ^ salt(30)) % 8];
        s += '_';
        AppendB36(s, id.index, uint32_t(salt(31)));
        break;
      case kJdPin: s += "jd_"; AppendB36(s, id.index, uint32_t(salt(32))); break;
      case kEmail: {
        const size_t at = s.size();
        if (id.fmt == 2) s += ' ';
        s += kName[Mix(id.index ^ salt(33)) % 8];
        s += '.';
        AppendB36(s, id.index, uint32_t(salt(34)));
        s += '@';
        s += kDomain[Mix(id.index ^ salt(35)) % 6];
        if (id.fmt == 1) {  // Zhang.x@QQ.COM: the email normaliser lower-cases it
          s[at] = char(s[at] - 32);
          for (size_t i = s.find('@', at) + 1; i < s.size(); ++i)
            if (s[i] >= 'a' && s[i] <= 'z') s[i] = char(s[i] - 32);
        }
        if (id.fmt == 2) s += ' ';
        break;
      }
    }
  }

  void Line(std::string& s, const Record& rec) const {
    static constexpr const char* kCity[] = {"上海", "北京", "广州", "深圳",
                                            "杭州", "成都", "武汉", "南京"};
    s += "{\"source\":\"";
    s += kSource[rec.channel];
    s += '"';
    if (rec.channel == kWechatOa) { s += ",\"app\":\""; s += kOfficialAccount[rec.app]; s += '"'; }
    if (rec.channel == kWechatMp) { s += ",\"app\":\""; s += kMiniProgram; s += '"'; }
    s += ",\"ts\":";
    AppendUnsigned(s, uint64_t(rec.ts));
    s += ",\"ids\":{";
    for (int i = 0; i < rec.nids; ++i) {
      const IdRef& id = rec.ids[i];
      // Consecutive values of one type form an array: "mobile":["...","..."].
      const bool first = i == 0 || rec.ids[i - 1].type != id.type;
      const bool last = i + 1 == rec.nids || rec.ids[i + 1].type != id.type;
      if (first) {
        if (i) s += ',';
        s += '"';
        s += kTypeName[id.type];
        s += "\":";
        if (!last) s += '[';
      } else {
        s += ',';
      }
      s += '"';
      Value(s, id);
      s += '"';
      if (last && !first) s += ']';
    }
    s += '}';
    if (rec.attrs) {
      s += ",\"attrs\":{\"gender\":\"";
      s += Mix(rec.person ^ seed) & 1 ? 'F' : 'M';
      s += "\",\"city\":\"";
      s += kCity[rec.attrs - 1];
      s += "\"}";
    }
    s += ",\"event\":{\"type\":\"";
    s += kEventType[rec.channel];
    s += '"';
    if (rec.fen) {
      s += ",\"amount\":";
      AppendUnsigned(s, uint64_t(rec.fen / 100));
      s += '.';
      AppendUnsigned(s, uint64_t(rec.fen % 100), 2);
    }
    s += "}}\n";
  }
};

// ---- truth ------------------------------------------------------------------------------

// A tiny union-find over one person's records.
struct SmallDsu {
  std::vector<uint32_t> parent;
  void Reset(size_t n) { parent.resize(n); std::iota(parent.begin(), parent.end(), 0u); }
  uint32_t Find(uint32_t x) {
    while (parent[x] != x) x = parent[x] = parent[parent[x]];
    return x;
  }
  void Union(uint32_t a, uint32_t b) { parent[Find(a)] = Find(b); }
};

uint64_t Pairs(uint64_t n) { return n * (n - 1) / 2; }

// How many distinct persons carry each shared value (store number, household device,
// kiosk). Records arrive grouped by person, so counting person changes is enough.
struct SharedUse {
  std::vector<uint32_t> last, persons;
  explicit SharedUse(size_t n) : last(n, UINT32_MAX), persons(n, 0) {}
  void See(uint32_t index, uint32_t person) {
    if (last[index] != person) { last[index] = person; ++persons[index]; }
  }
};

// Pairs of one person's records that a chain of clean identifiers joins.
template <class Clean>
uint64_t LinkablePairs(const Record* recs, size_t n, Clean clean, SmallDsu& dsu,
                       std::vector<std::pair<uint64_t, uint32_t>>& scratch) {
  scratch.clear();
  for (uint32_t i = 0; i < n; ++i)
    for (int k = 0; k < recs[i].nids; ++k)
      if (clean(recs[i].ids[k])) scratch.emplace_back(recs[i].ids[k].Key(), i);
  std::sort(scratch.begin(), scratch.end());
  dsu.Reset(n);
  for (size_t k = 1; k < scratch.size(); ++k)
    if (scratch[k].first == scratch[k - 1].first) dsu.Union(scratch[k].second, scratch[k - 1].second);
  std::vector<uint32_t> size(n, 0);
  for (uint32_t i = 0; i < n; ++i) ++size[dsu.Find(i)];
  uint64_t pairs = 0;
  for (uint32_t s : size) pairs += s > 1 ? Pairs(s) : 0;
  return pairs;
}

}  // namespace

Dataset Generate(const GenOptions& options) {
  if (options.persons == 0 || options.persons > 100'000'000)
    throw std::invalid_argument("persons must be between 1 and 100,000,000");
  Population pop{options.seed, options.persons,
                 std::max(4u, options.persons / kPersonsPerStore),
                 std::max(2u, options.persons / kPersonsPerKiosk)};

  // 1. Touchpoints, grouped by person.
  std::vector<Record> recs;
  recs.reserve(size_t(options.persons) * 4 + 1024);
  SharedUse stores(pop.stores), kiosks(pop.kiosks), families((pop.persons + 3) / 4);
  for (uint32_t p = 0; p < pop.persons; ++p) {
    const size_t from = recs.size();
    GeneratePerson(pop, p, recs);
    for (size_t i = from; i < recs.size(); ++i)
      for (int k = 0; k < recs[i].nids; ++k) {
        const IdRef& id = recs[i].ids[k];
        if (id.owner == kStore) stores.See(id.index, p);
        if (id.owner == kKiosk) kiosks.See(id.index, p);
        if (id.owner == kFamily) families.See(id.index, p);
      }
  }

  // 2. Truth. A shared kind of value is clean only if the data shows it with one person.
  Dataset d;
  Truth& t = d.truth;
  auto clean = [&](const IdRef& id) {
    switch (id.owner) {
      case kOwn: return true;
      case kStore: return stores.persons[id.index] == 1;
      case kKiosk: return kiosks.persons[id.index] == 1;
      case kFamily: return families.persons[id.index] == 1;
      default: return false;  // blocklisted placeholders
    }
  };
  auto clean_strong = [&](const IdRef& id) { return id.type != kDeviceId && clean(id); };
  SmallDsu dsu;
  std::vector<std::pair<uint64_t, uint32_t>> scratch;
  for (size_t from = 0; from < recs.size();) {
    size_t to = from;
    while (to < recs.size() && recs[to].person == recs[from].person) ++to;
    const size_t n = to - from;
    ++t.persons;
    t.largest_person = std::max<uint64_t>(t.largest_person, n);
    t.true_pairs += Pairs(n);
    t.ceiling_pairs += LinkablePairs(&recs[from], n, clean, dsu, scratch);
    t.strong_ceiling_pairs += LinkablePairs(&recs[from], n, clean_strong, dsu, scratch);
    from = to;
  }
  // Noise per record, kept with the record until the lines are rendered.
  for (size_t i = 0; i < recs.size(); ++i) {
    const Record& rec = recs[i];
    bool any_clean = false, device_only = true;
    uint8_t bits = 0;
    for (int k = 0; k < rec.nids; ++k) {
      const IdRef& id = rec.ids[k];
      any_clean |= clean(id);
      device_only &= id.type == kDeviceId;
      bits |= id.owner == kStore ? kNoiseStoreNumber
              : id.owner == kBlocked ? kNoiseBlocklisted
              : id.owner == kFamily  ? kNoiseFamilyDevice
              : id.owner == kKiosk   ? kNoiseKioskDevice
                                     : 0;
      t.formatted_mobiles += id.type == kMobile && id.owner != kBlocked && id.fmt != 0;
    }
    bits |= (device_only ? kNoiseDeviceOnly : 0) | (any_clean ? 0 : kNoiseNoClean);
    recs[i].noise = bits;
    t.isolated_records += !any_clean;
    t.family_devices += bool(bits & kNoiseFamilyDevice);
    t.kiosk_devices += bool(bits & kNoiseKioskDevice);
    t.store_numbers += bool(bits & kNoiseStoreNumber);
    t.blocklisted += bool(bits & kNoiseBlocklisted);
    t.device_only += device_only;
  }
  t.stores = uint32_t(std::count_if(stores.persons.begin(), stores.persons.end(),
                                    [](uint32_t n) { return n > 0; }));
  t.kiosks = uint32_t(std::count_if(kiosks.persons.begin(), kiosks.persons.end(),
                                    [](uint32_t n) { return n > 0; }));
  t.shared_family_devices = uint32_t(std::count_if(
      families.persons.begin(), families.persons.end(), [](uint32_t n) { return n > 1; }));

  // 3. Shuffle (Fisher-Yates) and render.
  Rng shuffle(Mix(options.seed ^ 0x73687566666c65ull));
  for (size_t i = recs.size(); i > 1; --i) std::swap(recs[i - 1], recs[shuffle.Below64(i)]);

  const Renderer renderer{options.seed};
  d.ndjson.reserve(recs.size() * 230);
  d.line_start.reserve(recs.size() + 1);
  d.person.reserve(recs.size());
  d.noise.reserve(recs.size());
  d.key_start.reserve(recs.size() + 1);
  d.keys.reserve(recs.size() * 2);
  for (const Record& rec : recs) {
    d.line_start.push_back(d.ndjson.size());
    d.person.push_back(rec.person);
    d.noise.push_back(rec.noise);
    d.key_start.push_back(uint32_t(d.keys.size()));
    // Keys ignore the format (it normalises away); an openid's slot is its account.
    for (int k = 0; k < rec.nids; ++k) d.keys.push_back(rec.ids[k].Key());
    renderer.Line(d.ndjson, rec);
  }
  d.line_start.push_back(d.ndjson.size());
  d.key_start.push_back(uint32_t(d.keys.size()));
  return d;
}

}  // namespace cdpbench
