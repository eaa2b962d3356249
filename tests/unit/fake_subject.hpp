// A person in memory for expression tests: FakeNames interns names like the profile store
// will, and FakeSubject answers Subject's questions from a plain event list (so the answers
// are obviously right, not fast). It counts DayTotals and Scan calls so tests can check
// which path an aggregate took.
#pragma once

#include <algorithm>
#include <deque>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "cdp/calendar.hpp"
#include "cdp/subject.hpp"
#include "cdp/value.hpp"

namespace cdptest {

class FakeNames : public cdp::Names {
 public:
  explicit FakeNames(std::string_view zone = "Asia/Shanghai",
                     std::vector<std::string> id_types = {"mobile", "email", "member_no", "unionid", "device_id"})
      : id_types_(std::move(id_types)) {
    auto z = cdp::TimeZone::Load(zone);
    if (z.ok()) zone_ = *z;
  }
  uint32_t Attr(std::string_view name) override { return Intern(attrs, name); }
  uint32_t EventType(std::string_view name) override { return Intern(events, name); }
  uint32_t PropKey(std::string_view name) override { return Intern(props, name); }
  uint32_t Tag(std::string_view name) override { return Intern(tags, name); }
  uint32_t Machine(std::string_view name) override { return Intern(machines, name); }
  int IdType(std::string_view name) const override {
    for (size_t k = 0; k < id_types_.size(); ++k)
      if (id_types_[k] == name) return static_cast<int>(k);
    return -1;
  }
  bool ConsentDefault(std::string_view channel) const override {
    auto it = consent_defaults.find(std::string(channel));
    return it == consent_defaults.end() ? consent_granted : it->second;
  }
  const cdp::TimeZone& Zone() const override { return zone_; }

  std::vector<std::string> attrs, events, props, tags, machines;
  // privacy.consent as the config has it: the default, and channels' own.
  bool consent_granted = true;
  std::map<std::string, bool> consent_defaults;

 private:
  static uint32_t Intern(std::vector<std::string>& v, std::string_view name) {
    for (size_t k = 0; k < v.size(); ++k)
      if (v[k] == name) return static_cast<uint32_t>(k);
    v.emplace_back(name);
    return static_cast<uint32_t>(v.size() - 1);
  }
  std::vector<std::string> id_types_;
  cdp::TimeZone zone_;
};

class FakeSubject : public cdp::Subject {
 public:
  explicit FakeSubject(FakeNames& names) : names_(names) {}

  // Strings and lists are copied into the subject's storage.
  cdp::Value Keep(std::string_view s) {
    strings_.emplace_back(s);
    return cdp::Value::String(strings_.back());
  }
  cdp::Value KeepList(std::vector<cdp::Value> items) {
    lists_.push_back(std::move(items));
    return cdp::Value::List(lists_.back().data(), static_cast<uint32_t>(lists_.back().size()));
  }
  FakeSubject& SetAttr(std::string_view name, cdp::Value v) {
    attrs_[names_.Attr(name)] = v;
    return *this;
  }
  FakeSubject& SetAttr(std::string_view name, std::string_view s) { return SetAttr(name, Keep(s)); }
  FakeSubject& SetAttr(std::string_view name, const char* s) { return SetAttr(name, Keep(s)); }
  // A consent statement, kept as the profile store keeps one (subject.hpp).
  FakeSubject& SetConsent(std::string_view channel, bool granted) {
    return SetAttr(std::string(cdp::kConsentPrefix) + std::string(channel),
                   granted ? cdp::kConsentGranted : cdp::kConsentWithdrawn);
  }
  FakeSubject& SetIds(std::string_view type, uint32_t n) {
    ids_[names_.IdType(type)] = n;
    return *this;
  }
  FakeSubject& SetSeen(int64_t first, int64_t last) {
    first_ = first;
    last_ = last;
    return *this;
  }
  FakeSubject& SetTag(std::string_view name, cdp::Value v) {
    tags_[names_.Tag(name)] = v;
    return *this;
  }
  // amount < 0 means none. Props hold strings via Keep.
  FakeSubject& AddEvent(std::string_view type, int64_t ts, int64_t amount_fen = -1,
                        std::vector<std::pair<std::string, cdp::Value>> props = {}) {
    Ev e;
    e.ts = ts;
    e.type = names_.EventType(type);
    e.has_amount = amount_fen >= 0;
    e.amount = amount_fen >= 0 ? amount_fen : 0;
    for (auto& [k, v] : props) {
      if (v.kind == cdp::ValueKind::kString) v = Keep(v.str());
      e.props[names_.PropKey(k)] = v;
    }
    events_.push_back(std::move(e));
    std::stable_sort(events_.begin(), events_.end(), [](const Ev& a, const Ev& b) { return a.ts < b.ts; });
    return *this;
  }

  cdp::Value Attr(uint32_t attr) const override {
    auto it = attrs_.find(attr);
    return it == attrs_.end() ? cdp::Value() : it->second;
  }
  int64_t FirstSeen() const override { return first_; }
  int64_t LastSeen() const override { return last_; }
  uint32_t IdCount(uint32_t t) const override {
    auto it = ids_.find(static_cast<int>(t));
    return it == ids_.end() ? 0 : it->second;
  }
  cdp::Value Tag(uint32_t tag) const override {
    auto it = tags_.find(tag);
    return it == tags_.end() ? cdp::Value() : it->second;
  }
  Totals DayTotals(uint32_t type, int32_t first_day, int32_t last_day) const override {
    ++day_totals_calls;
    Totals t;
    int32_t last = INT32_MIN;  // events are in time order, so their days are too
    for (const Ev& e : events_) {
      if (type != cdp::kAnyEventType && e.type != type) continue;
      int32_t d = names_.Zone().DayOf(e.ts);
      if (d < first_day || d > last_day) continue;
      ++t.count;
      t.amount += e.amount;
      if (d != last) ++t.active_days;
      last = d;
    }
    return t;
  }
  void Scan(uint32_t type, int64_t from_ms, int64_t to_ms, bool reverse,
            absl::FunctionRef<bool(const cdp::EventView&)> f) const override {
    ++scan_calls;
    auto visit = [&](size_t k) {
      const Ev& e = events_[k];
      if ((type != cdp::kAnyEventType && e.type != type) || e.ts < from_ms || e.ts >= to_ms) return true;
      cdp::EventView v{e.ts, e.amount, e.type, e.has_amount, k};
      return f(v);
    };
    if (reverse) {
      for (size_t k = events_.size(); k-- > 0;)
        if (!visit(k)) return;
    } else {
      for (size_t k = 0; k < events_.size(); ++k)
        if (!visit(k)) return;
    }
  }
  cdp::Value Prop(const cdp::EventView& e, uint32_t key) const override {
    const auto& props = events_[e.handle].props;
    auto it = props.find(key);
    return it == props.end() ? cdp::Value() : it->second;
  }

  mutable int day_totals_calls = 0;
  mutable int scan_calls = 0;

 private:
  struct Ev {
    int64_t ts = 0;
    int64_t amount = 0;
    uint32_t type = 0;
    bool has_amount = false;
    std::map<uint32_t, cdp::Value> props;
  };
  FakeNames& names_;
  std::map<uint32_t, cdp::Value> attrs_, tags_;
  std::map<int, uint32_t> ids_;
  int64_t first_ = cdp::kNoTime, last_ = cdp::kNoTime;
  std::vector<Ev> events_;
  std::deque<std::string> strings_;
  std::deque<std::vector<cdp::Value>> lists_;
};

}  // namespace cdptest
