// The lifecycle's core (life_internal.hpp) and its facade (cdp/lifecycle.hpp): persons,
// timers, outbox, histories, guards and templates; the parts live in machines.cpp,
// loyalty.cpp and journeys.cpp.
#include <algorithm>
#include <charconv>
#include <cstring>

#include "audience.hpp"
#include "expr_internal.hpp"
#include "life_internal.hpp"
#include "snapshot.hpp"
#include "util.hpp"

namespace cdp {

namespace dom = simdjson::dom;

std::string_view LifeEvent::Prop(std::string_view key, std::string& scratch) const {
  if (!batch || !record) return {};
  for (uint32_t i = 0; i < record->props_count; ++i) {
    const FieldIn& f = batch->fields[record->props_begin + i];
    if (batch->Name(f) != key) continue;
    switch (f.kind) {
      case ValueKind::kString: return batch->Str(f);
      case ValueKind::kInt: scratch = std::to_string(f.bits); return scratch;
      default: return {};
    }
  }
  return {};
}

namespace life {

absl::Status Bad(std::string_view path, std::string_view what) {
  return absl::InvalidArgumentError(Cat(path, ": ", what));
}

void Wipe(Intent& in) {
  for (std::string* f : {&in.key, &in.origin, &in.step, &in.action, &in.channel, &in.payload}) WipeString(*f);
  in.oneid = 0;
  in.at = in.created = 0;
}

std::string_view ReasonName(Reason r) {
  switch (r) {
    case Reason::kEvent: return "event";
    case Reason::kTimer: return "timer";
    case Reason::kCondition: return "condition";
    case Reason::kPeriod: return "period";
    case Reason::kManual: return "manual";
    case Reason::kImport: return "import";
    case Reason::kMerge: return "merge";
    case Reason::kInitial: return "initial";
    case Reason::kDefinition: return "definition";
  }
  return "unknown";
}

// --- outbox ---------------------------------------------------------------------------

uint64_t Outbox::Add(Intent in) {
  if (pending_ >= max_) {
    dropped_++;
    return 0;
  }
  in.id = next_++;
  items_.push_back(std::move(in));
  pending_++;
  return items_.back().id;
}

uint64_t Outbox::Read(uint64_t cursor, uint32_t limit, std::vector<const Intent*>& out) const {
  if (cursor < first_) cursor = first_;
  uint64_t id = cursor;
  for (; id < next_ && out.size() < limit; ++id) {
    const Intent& in = items_[id - first_];
    if (!in.acked) out.push_back(&in);
  }
  return id;
}

void Outbox::Retire(Intent& in) {
  in.acked = true;
  in.payload.clear();
  in.payload.shrink_to_fit();
  pending_--;
}

bool Outbox::Ack(uint64_t id) {
  if (id < first_ || id >= next_) return false;
  Intent& in = items_[id - first_];
  if (in.acked) return false;
  Retire(in);
  Compact();
  return true;
}

uint64_t Outbox::AckThrough(uint64_t id) {
  uint64_t n = 0;
  for (uint64_t i = first_; i <= id && i < next_; ++i) {
    Intent& in = items_[i - first_];
    if (in.acked) continue;
    Retire(in);
    n++;
  }
  Compact();
  return n;
}

uint64_t Outbox::Drop(uint64_t oneid, std::string_view origin) {
  uint64_t n = 0;
  for (Intent& in : items_) {
    if (in.acked || (oneid != 0 && in.oneid != oneid) || (!origin.empty() && in.origin != origin)) continue;
    Retire(in);
    n++;
  }
  Compact();
  return n;
}

uint64_t Outbox::Forget(std::span<const uint64_t> oneids) {
  uint64_t n = 0;
  for (Intent& in : items_) {
    // OneID 0 is nobody's: the empty entries of earlier forgets.
    if (in.oneid == 0 || std::find(oneids.begin(), oneids.end(), in.oneid) == oneids.end()) continue;
    if (!in.acked) pending_--;
    in.acked = true;
    Wipe(in);
    n++;
  }
  Compact();
  return n;
}

void Outbox::Compact() {
  while (!items_.empty() && items_.front().acked) {
    items_.pop_front();
    first_++;
  }
}

uint64_t Outbox::bytes() const {
  uint64_t b = items_.size() * sizeof(Intent);
  for (const Intent& in : items_) b += in.payload.capacity() + in.key.capacity();
  return b;
}

// --- the core -------------------------------------------------------------------------


Core::Core(ProfileStore& s, TagEngine& t, Feed& f, const ExprLimits& l, const LifecycleLimits& ll)
    : store(s), tags(t), feed(f), lim(l), limits(ll), outbox(ll.max_outbox), ev_(l) {
  Person(0);  // Ix 0: nobody, whose state is always empty (what an unknown person reads as)
  parts.push_back(MakeMachines(*this));
  parts.push_back(MakeLoyalty(*this));
  parts.push_back(MakeJourneys(*this));
}

Core::~Core() = default;

Ix Core::Person(uint64_t oneid) {
  auto [it, added] = index_.try_emplace(oneid, static_cast<Ix>(oneids_.size()));
  if (added) {
    oneids_.push_back(oneid);
    history_.emplace_back();
  }
  return it->second;
}

Ix Core::Find(uint64_t oneid) const {
  auto it = index_.find(oneid);
  return it == index_.end() ? kNoIx : it->second;
}

void Core::Forget(Ix p) {
  index_.erase(oneids_[p]);
  oneids_[p] = 0;
  std::vector<Transition>().swap(history_[p]);
}

void Core::MergeHistory(Ix survivor, Ix absorbed) {
  auto& a = history_[survivor];
  auto& b = history_[absorbed];
  a.insert(a.end(), b.begin(), b.end());
  std::stable_sort(a.begin(), a.end(), [](const Transition& x, const Transition& y) { return x.ts < y.ts; });
  if (a.size() > limits.max_history) a.erase(a.begin(), a.end() - limits.max_history);
}

// Each selected timer is taken out where it is, the last timer filling its place and
// sifting up or down. The filler is never a selected timer (those at the end go first),
// so one that sifts up past the place looked at needs no look; whatever lands on that
// place is looked at next.
void EraseTimers(std::vector<Timer>& heap, absl::FunctionRef<bool(const Timer&)> selected) {
  const std::greater<> after;  // the heap's order: a parent is never after its child
  for (size_t i = 0; i < heap.size();) {
    if (!selected(heap[i])) {
      ++i;
      continue;
    }
    while (heap.size() > i + 1 && selected(heap.back())) heap.pop_back();
    const Timer last = heap.back();
    heap.pop_back();
    if (i == heap.size()) break;
    heap[i] = last;
    size_t at = i;
    while (at > 0 && after(heap[(at - 1) / 2], heap[at])) {
      std::swap(heap[(at - 1) / 2], heap[at]);
      at = (at - 1) / 2;
    }
    while (true) {
      size_t child = 2 * at + 1;
      if (child >= heap.size()) break;
      if (child + 1 < heap.size() && after(heap[child], heap[child + 1])) child++;
      if (!after(heap[at], heap[child])) break;
      std::swap(heap[at], heap[child]);
      at = child;
    }
  }
}

void Core::Schedule(int64_t at, PartId part, Ix p, uint32_t item, uint32_t gen) {
  heap.push_back(Timer{at, static_cast<uint32_t>(part), p, item, gen});
  std::push_heap(heap.begin(), heap.end(), std::greater<>());
}

int64_t Core::NextDue() const { return heap.empty() ? kForever : heap.front().at; }

void Core::FeedPerson(Ix p, FeedEvent::Kind kind, int64_t ts, std::string text) {
  FeedEvent& e = feed.Append(kind);
  e.a = oneids_[p];
  e.ts = ts;
  e.text = feed.AddText(std::move(text));
}

void Core::Record(Ix p, const Transition& t, FeedEvent::Kind kind, std::string text) {
  auto& h = history_[p];
  if (limits.max_history > 0) {
    if (h.size() >= limits.max_history) h.erase(h.begin());
    h.push_back(t);
  }
  FeedPerson(p, kind, t.ts, std::move(text));
  state_changed.push_back(oneids_[p]);
}

const std::vector<Transition>& Core::History(Ix p) const { return history_[p]; }

void Core::Transitioned(Ix p, uint32_t machine, uint16_t from, uint16_t to, int64_t ts) {
  for (auto& part : parts) part->OnTransition(p, machine, from, to, ts);
}

absl::StatusOr<Expr> Core::Compile(dom::element v, std::string_view path) {
  std::string_view text;
  if (v.get(text) == simdjson::SUCCESS) {
    auto e = Expr::Compile(text, store, lim);
    if (!e.ok()) return Bad(path, std::string(e.status().message()));
    return e;
  }
  dom::object o;
  if (v.get(o) == simdjson::SUCCESS) {
    auto e = Expr::FromAst(simdjson::minify(v), store, lim);
    if (!e.ok()) return Bad(path, std::string(e.status().message()));
    return e;
  }
  return Bad(path, "expected an expression (text or JSON AST)");
}

Value Core::Eval(const Expr& e, Ix p, int64_t now) {
  uint64_t oneid = oneids_[p];
  TaggedView v(tags, store.SlotOf(oneid), oneid);
  auto r = ev_.Eval(e, v, now);
  if (!r.ok()) {
    guard_errors++;
    return Value();
  }
  return r->value;
}

bool Core::Test(const Expr& e, Ix p, int64_t now) {
  Value v = Eval(e, p, now);
  return v.kind == ValueKind::kBool && v.b;
}

bool Core::Consented(Ix p, std::string_view channel) const {
  return channel.empty() || store.Consented(store.Find(oneids_[p]), channel);
}

// Templates: walk the JSON value, writing it minified; strings with {{...}} split it.
namespace {

struct TemplateBuilder {
  Core& core;
  Template& t;
  std::string cur;  // literal text since the last placeholder

  absl::Status Placeholder(std::string_view inner, bool whole, std::string_view at) {
    auto e = Expr::Compile(inner, core.store, core.lim);
    if (!e.ok()) return Bad(at, Cat("in {{", inner, "}}: ", e.status().message()));
    t.segs.push_back(Template::Seg{std::move(cur), static_cast<int>(t.exprs.size()), whole});
    cur.clear();
    t.exprs.push_back(std::move(*e));
    return absl::OkStatus();
  }

  absl::Status String(std::string_view s, std::string_view at) {
    size_t open = s.find("{{");
    if (open == std::string_view::npos) {
      json::AppendString(cur, s);
      return absl::OkStatus();
    }
    size_t close = s.find("}}", open);
    if (open == 0 && close == s.size() - 2 && s.find("{{", 2) == std::string_view::npos)
      return Placeholder(s.substr(2, s.size() - 4), /*whole=*/true, at);
    cur += '"';
    size_t i = 0;
    while (true) {
      open = s.find("{{", i);
      if (open == std::string_view::npos) break;
      close = s.find("}}", open + 2);
      if (close == std::string_view::npos) return Bad(at, "\"{{\" without \"}}\"");
      std::string lit;
      json::AppendString(lit, s.substr(i, open - i));
      cur.append(lit, 1, lit.size() - 2);
      if (auto st = Placeholder(s.substr(open + 2, close - open - 2), /*whole=*/false, at); !st.ok()) return st;
      i = close + 2;
    }
    std::string lit;
    json::AppendString(lit, s.substr(i));
    cur.append(lit, 1, lit.size() - 1);  // with the closing quote
    return absl::OkStatus();
  }

  absl::Status Value(dom::element v, const std::string& at) {
    switch (v.type()) {
      case dom::element_type::OBJECT: {
        cur += '{';
        bool first = true;
        for (auto [k, x] : dom::object(v)) {
          if (!first) cur += ',';
          first = false;
          json::AppendString(cur, k);
          cur += ':';
          if (auto st = Value(x, Cat(at, ".", k)); !st.ok()) return st;
        }
        cur += '}';
        return absl::OkStatus();
      }
      case dom::element_type::ARRAY: {
        cur += '[';
        size_t i = 0;
        for (dom::element x : dom::array(v)) {
          if (i) cur += ',';
          if (auto st = Value(x, Cat(at, "[", i++, "]")); !st.ok()) return st;
        }
        cur += ']';
        return absl::OkStatus();
      }
      case dom::element_type::STRING: return String(std::string_view(v), at);
      default: cur += simdjson::minify(v); return absl::OkStatus();
    }
  }
};

}  // namespace

absl::StatusOr<Template> Core::CompileTemplate(dom::element v, std::string_view path) {
  Template t;
  TemplateBuilder b{*this, t, {}};
  if (auto st = b.Value(v, std::string(path)); !st.ok()) return st;
  t.segs.push_back(Template::Seg{std::move(b.cur), -1, false});
  return t;
}

std::string Core::Render(const Template& t, Ix p, int64_t now) {
  std::string out;
  for (const Template::Seg& s : t.segs) {
    out += s.lit;
    if (s.expr < 0) continue;
    Value v = Eval(t.exprs[s.expr], p, now);
    if (s.whole) {
      AppendValueJson(out, v);
    } else if (v.kind == ValueKind::kString) {
      std::string q;
      json::AppendString(q, v.str());
      out.append(q, 1, q.size() - 2);
    } else if (v.kind != ValueKind::kNull) {
      std::string q, j;
      AppendValueJson(j, v);
      json::AppendString(q, j);
      out.append(q, 1, q.size() - 2);
    }
  }
  return out;
}

absl::Status Core::Duration(dom::element v, std::string_view path, int64_t& ms) {
  std::string_view s;
  int64_t n;
  if (v.get(n) == simdjson::SUCCESS) {
    ms = n;
  } else if (v.get(s) != simdjson::SUCCESS || !expr::ParseDurationText(s, ms)) {
    return Bad(path, "expected a duration: \"30d\", \"12h\", \"1d12h\", \"90m\" or milliseconds");
  }
  if (ms < 0 || ms > int64_t{36600} * kMsPerDay) return Bad(path, "a duration is 0 to 36600 days");
  return absl::OkStatus();
}

absl::Status Core::TimeOfDay(dom::element v, std::string_view path, int64_t& ms) {
  std::string_view s;
  int h = -1, m = -1, sec = 0;
  auto two = [&](size_t at, int& out) {
    if (at + 2 > s.size() || !isdigit(static_cast<unsigned char>(s[at])) || !isdigit(static_cast<unsigned char>(s[at + 1])))
      return false;
    out = (s[at] - '0') * 10 + (s[at + 1] - '0');
    return true;
  };
  bool ok = v.get(s) == simdjson::SUCCESS && (s.size() == 5 || s.size() == 8) && two(0, h) && s[2] == ':' &&
            two(3, m) && (s.size() == 5 || (s[5] == ':' && two(6, sec)));
  if (!ok || h > 23 || m > 59 || sec > 59) return Bad(path, "expected a local time \"HH:MM\" or \"HH:MM:SS\"");
  ms = (int64_t{h} * 3600 + m * 60 + sec) * 1000;
  return absl::OkStatus();
}

int64_t Core::NextLocalTime(int64_t after, int64_t tod) const {
  const TimeZone& z = zone();
  int32_t day = z.DayOf(after);
  for (int k = 0; k < 3; ++k) {
    int64_t t = z.DayStart(day + k) + tod;
    if (t > after) return t;
  }
  return z.DayStart(day + 3) + tod;
}

uint32_t Core::Bucket(uint64_t oneid, std::string_view salt) { return HoldoutBucket(oneid, salt); }

}  // namespace life

// --- the facade -----------------------------------------------------------------------

using life::Core;
using life::Ix;

Lifecycle::Lifecycle(ProfileStore& store, TagEngine& tags, Feed& feed, const ExprLimits& lim,
                     const LifecycleLimits& limits)
    : core_(std::make_unique<Core>(store, tags, feed, lim, limits)) {}

Lifecycle::~Lifecycle() = default;

absl::StatusOr<std::string> Lifecycle::Define(std::string_view text, int64_t now) {
  if (auto st = json::CheckSyntax(text, "lifecycle definitions"); !st.ok()) return st;
  dom::parser parser;
  dom::element doc;
  dom::object root;
  if (parser.parse(text).get(doc) != simdjson::SUCCESS || doc.get(root) != simdjson::SUCCESS)
    return absl::InvalidArgumentError("lifecycle definitions: expected a JSON object with \"machines\", \"loyalty\", "
                                      "\"journeys\" or \"delivery\"");
  std::vector<std::pair<life::Part*, dom::element>> sections;
  for (auto [k, v] : root) {
    life::Part* owner = nullptr;
    for (auto& part : core_->parts)
      if (part->section() == k || (k == "delivery" && part->section() == "journeys")) owner = part.get();
    if (!owner) return life::Bad(k, "unknown section (expected machines, loyalty, journeys or delivery)");
    sections.emplace_back(owner, v);
  }
  if (sections.empty()) return absl::InvalidArgumentError("lifecycle definitions: nothing to define");
  // "delivery" travels to the journeys part inside an object of its own.
  std::vector<life::Part::Installer> install;
  for (auto& part : core_->parts) {
    // A part sees the whole root when it owns any key of it, so related keys are checked together.
    bool mine = false;
    for (auto& [owner, v] : sections) mine |= owner == part.get();
    if (!mine) continue;
    auto in = part->Prepare(doc, now);
    if (!in.ok()) return in.status();
    install.push_back(std::move(*in));
  }
  // The same document twice in a row defines nothing new (each part keeps a redefined
  // name in its place), so hosts that define at every start do not grow the list.
  auto& ops = core_->definitions;
  if (ops.empty() || ops.back().json != text) ops.push_back(Core::DefinitionOp{now, std::string(text), {}, {}});
  std::string out;
  json::Writer w(out);
  w.BeginObject();
  for (auto& f : install) f(w);
  w.EndObject();
  return out;
}

absl::Status Lifecycle::Drop(std::string_view kind, std::string_view name) {
  for (auto& part : core_->parts) {
    if (!part->Owns(kind)) continue;
    absl::Status st = part->Drop(name);
    if (st.ok()) core_->definitions.push_back(Core::DefinitionOp{0, {}, std::string(kind), std::string(name)});
    return st;
  }
  return absl::InvalidArgumentError(Cat("unknown kind \"", kind, "\" (expected machine, journey or loyalty)"));
}

absl::StatusOr<std::string> Lifecycle::Apply(std::string_view text, int64_t now, Resolver person) {
  if (auto st = json::CheckSyntax(text, "lifecycle operation"); !st.ok()) return st;
  dom::parser parser;
  dom::object req;
  std::string_view op;
  if (parser.parse(text).get(req) != simdjson::SUCCESS) return life::Bad("operation", "expected a JSON object");
  if (req["op"].get(op) != simdjson::SUCCESS) return life::Bad("op", "missing (set_state, earn, spend, adjust, ...)");
  life::Part* owner = nullptr;
  for (auto& part : core_->parts)
    if (part->Handles(op)) owner = part.get();
  if (!owner) return life::Bad("op", Cat("unknown operation \"", op, "\""));
  uint64_t given = 0;
  std::string_view type, value;
  if (req["oneid"].get(given) != simdjson::SUCCESS &&
      (req["type"].get(type) != simdjson::SUCCESS || req["value"].get(value) != simdjson::SUCCESS))
    return life::Bad("operation", "name the person: \"oneid\", or an identifier's \"type\" and \"value\"");
  if (dom::element ts; req["ts"].get(ts) == simdjson::SUCCESS &&
                       (ts.get(now) != simdjson::SUCCESS || !InTimeRange(now)))
    return life::Bad("ts", "expected the operation's time (epoch ms, 1970 to 9999)");
  auto oneid = person(given, type, value);
  if (!oneid.ok()) return oneid.status();
  Ix p = core_->Person(*oneid);
  std::string out;
  json::Writer w(out);
  w.BeginObject();
  w.Key("oneid").Uint(*oneid);
  if (auto st = owner->Apply(op, req, p, now, w); !st.ok()) return st;
  w.EndObject();
  return out;
}

void Lifecycle::OnEvent(const LifeEvent& e) {
  Ix p = core_->Person(e.oneid);
  for (auto& part : core_->parts)
    if (!part->empty()) part->OnRecord(p, e);
  if (e.type == kAnyEventType) return;
  for (auto& part : core_->parts)
    if (!part->empty()) part->OnEvent(p, e);
}

void Lifecycle::OnMerge(uint64_t survivor, uint64_t absorbed, int64_t now) {
  Ix b = core_->Find(absorbed);
  if (b == life::kNoIx) return;
  Ix a = core_->Person(survivor);
  for (auto& part : core_->parts) part->Merge(a, b, now);
  for (auto& part : core_->parts) part->Clear(b);
  core_->MergeHistory(a, b);
  core_->Forget(b);
  core_->state_changed.push_back(survivor);
}

bool Lifecycle::Forget(uint64_t oneid, std::span<const uint64_t> merged) {
  Core& c = *core_;
  if (oneid == 0) return false;  // nobody (Ix 0), whose state is always empty
  bool held = false;
  const Ix p = c.Find(oneid);
  if (p != life::kNoIx) {
    held = true;
    for (auto& part : c.parts) part->Forget(p);
    c.Forget(p);
    // The timers go too, although none could fire (Advance skips an Ix whose OneID is 0,
    // and the parts' generations moved on): they would otherwise stay in the heap, and in
    // snapshots, until their time, and wake the host for nothing (Advance returns the
    // heap's earliest as the next wake-up). So do those of every person merged away (the
    // persons this one absorbed among them), which a merge leaves to lapse. The others
    // fire as before: timers pop in a total order, whatever the heap's layout.
    life::EraseTimers(c.heap, [&c](const life::Timer& t) { return c.OneId(t.person) == 0; });
  }
  // The outbox and the state changes not yet taken know persons by OneID, including the
  // OneIDs that merged into this one.
  std::vector<uint64_t> ids(merged.begin(), merged.end());
  ids.push_back(oneid);
  held |= c.outbox.Forget(ids) > 0;
  const size_t changes = c.state_changed.size();
  std::erase_if(c.state_changed, [&](uint64_t x) { return std::find(ids.begin(), ids.end(), x) != ids.end(); });
  return held || c.state_changed.size() != changes;
}

void Lifecycle::OnSplit(uint64_t /*kept*/, uint64_t /*left*/, int64_t /*now*/) {
  // The person who keeps the OneID keeps its states; the one split off starts afresh,
  // entering its machines with its next event.
}

Lifecycle::AdvanceStats Lifecycle::Advance(int64_t now) {
  AdvanceStats st;
  Core& c = *core_;
  c.transitions = c.intents = 0;
  // The due timers of persons at the cap, set aside in the order they came (time order)
  // and put back at the end: the person stops at that instant, everyone else goes on.
  std::vector<life::Timer> waiting;
  auto fire_due = [&] {
    while (!c.heap.empty() && c.heap.front().at <= now) {
      std::pop_heap(c.heap.begin(), c.heap.end(), std::greater<>());
      life::Timer t = c.heap.back();
      c.heap.pop_back();
      if (c.OneId(t.person) == 0) continue;  // merged away or forgotten
      uint32_t& n = c.fired[t.person];
      if (n >= life::kMaxFirings) {
        waiting.push_back(t);
        continue;
      }
      st.capped += ++n == life::kMaxFirings;  // counted before the firing, which reads Capped
      st.fired++;
      c.parts[t.part]->Fire(t);
    }
  };
  fire_due();
  for (auto& part : c.parts)
    if (!part->empty()) part->Advanced(now);
  fire_due();
  for (const life::Timer& t : waiting) {
    c.heap.push_back(t);
    std::push_heap(c.heap.begin(), c.heap.end(), std::greater<>());
  }
  c.fired.clear();
  st.transitions = c.transitions;
  st.intents = c.intents;
  st.next = c.NextDue();
  return st;
}

void Lifecycle::TakeStateChanges(std::vector<uint64_t>& oneids) {
  // Unsorted, possibly repeated: TagEngine::StatesChanged sorts the slots it evaluates,
  // and returns at once when no tag reads state.* (the common case for a day's Advance).
  oneids.swap(core_->state_changed);
  core_->state_changed.clear();
}

std::string Lifecycle::CatalogJson() const {
  std::string out;
  json::Writer w(out);
  w.BeginObject();
  for (auto& part : core_->parts) part->AppendCatalog(w);
  w.EndObject();
  return out;
}

void Lifecycle::AppendPerson(std::string& out, uint64_t oneid) const {
  json::Writer w(out);
  Ix p = core_->Find(oneid);
  if (p == life::kNoIx) p = 0;  // nobody: empty states
  w.Key("history").BeginArray();
  {
    for (const life::Transition& t : core_->History(p)) {
      w.BeginObject();
      w.Key("ts").Int(t.ts);
      w.Key("machine").String(core_->store.MachineName(t.machine));
      auto name = [&](uint16_t s) {
        for (auto& part : core_->parts)
          if (auto n = part->StateName(t.machine, s); !n.empty()) return n;
        return std::string_view();
      };
      if (t.from != 0xFFFF) w.Key("from").String(name(t.from)); else w.Key("from").Null();
      w.Key("to").String(name(t.to));
      w.Key("reason").String(life::ReasonName(static_cast<life::Reason>(t.reason)));
      if (t.reason == static_cast<uint8_t>(life::Reason::kEvent))
        w.Key("event").String(core_->store.EventTypeName(t.cause));
      w.EndObject();
    }
  }
  w.EndArray();
  for (auto& part : core_->parts) part->AppendPerson(w, p);
}

std::string Lifecycle::OutboxJson(uint64_t cursor, uint32_t limit) const {
  std::vector<const life::Intent*> items;
  uint64_t next = core_->outbox.Read(cursor, limit, items);
  std::string out;
  json::Writer w(out);
  w.BeginObject().Key("intents").BeginArray();
  for (const life::Intent* in : items) {
    w.BeginObject();
    w.Key("id").Uint(in->id);
    w.Key("key").String(in->key);
    w.Key("oneid").Uint(in->oneid);
    w.Key("origin").String(in->origin);
    if (!in->step.empty()) w.Key("step").String(in->step);
    w.Key("action").String(in->action);
    if (!in->channel.empty()) w.Key("channel").String(in->channel);
    w.Key("at").Int(in->at);
    w.Key("created").Int(in->created);
    w.Key("payload");
    if (in->payload.empty()) w.Null(); else w.Raw(in->payload);
    w.EndObject();
  }
  w.EndArray();
  w.Key("next").Uint(next);
  w.Key("pending").Uint(core_->outbox.pending());
  w.EndObject();
  return out;
}

absl::StatusOr<std::string> Lifecycle::Ack(std::string_view text) {
  dom::parser parser;
  dom::object req;
  if (json::Locate(text).found || parser.parse(text).get(req) != simdjson::SUCCESS)
    return life::Bad("ack", "expected {\"ids\":[...]} or {\"through\":id}");
  uint64_t n = 0;
  dom::array ids;
  uint64_t through;
  if (req["ids"].get(ids) == simdjson::SUCCESS) {
    for (dom::element x : ids) {
      uint64_t id;
      if (x.get(id) != simdjson::SUCCESS) return life::Bad("ids", "expected intent ids (integers)");
      n += core_->outbox.Ack(id);
    }
  } else if (req["through"].get(through) == simdjson::SUCCESS) {
    n = core_->outbox.AckThrough(through);
  } else {
    return life::Bad("ack", "expected {\"ids\":[...]} or {\"through\":id}");
  }
  return Cat("{\"acked\":", n, ",\"pending\":", core_->outbox.pending(), "}");
}

Value Lifecycle::State(uint32_t machine, uint64_t oneid) const {
  Ix p = core_->Find(oneid);
  if (p == life::kNoIx || p == 0) return Value();
  Value v;
  for (auto& part : core_->parts)
    if (part->StateOf(machine, p, v)) return v;
  return Value();
}

bool Lifecycle::Describe(std::string_view machine, std::vector<std::string>& states, uint16_t& initial) const {
  int64_t id = core_->store.FindMachine(machine);
  if (id < 0) return false;
  for (auto& part : core_->parts)
    if (part->Describe(static_cast<uint32_t>(id), states, initial)) return true;
  return false;
}

int Lifecycle::StateAt(std::string_view machine, uint64_t oneid, int64_t at) const {
  int64_t id = core_->store.FindMachine(machine);
  Ix p = core_->Find(oneid);
  if (id < 0 || p == life::kNoIx || p == 0) return -1;
  const auto& h = core_->History(p);
  bool any = false;
  for (size_t i = h.size(); i-- > 0;) {
    if (h[i].machine != id) continue;
    any = true;
    if (h[i].ts <= at) return h[i].to == 0xFFFF ? -1 : h[i].to;
  }
  if (any && h.size() < core_->limits.max_history) return -1;  // entered after the instant
  // No history reaches back (kept short, or none kept): the current state, if entered by then.
  std::vector<std::string> states;
  uint16_t initial;
  Value v = State(static_cast<uint32_t>(id), oneid);
  if (v.kind != ValueKind::kString || !Describe(machine, states, initial)) return -1;
  for (size_t i = 0; i < states.size(); ++i)
    if (states[i] == v.str()) return static_cast<int>(i);
  return -1;
}

bool Lifecycle::empty() const {
  for (auto& part : core_->parts)
    if (!part->empty()) return false;
  return true;
}

std::string Lifecycle::StatsJson() const {
  return Cat("{\"persons\":", core_->persons(), ",\"timers\":", core_->heap.size(),
                ",\"outbox_pending\":", core_->outbox.pending(), ",\"outbox_dropped\":", core_->outbox.dropped(),
                ",\"guard_errors\":", core_->guard_errors, ",\"intents_no_consent\":", core_->no_consent,
                ",\"bytes\":", bytes(), "}");
}

uint64_t Lifecycle::bytes() const {
  uint64_t b = core_->heap.capacity() * sizeof(life::Timer) + core_->outbox.bytes() +
               core_->persons() * (sizeof(uint64_t) + sizeof(std::vector<life::Transition>) + 16);
  for (Ix p = 0; p < core_->persons(); ++p) b += core_->History(p).capacity() * sizeof(life::Transition);
  for (const Core::DefinitionOp& op : core_->definitions) b += sizeof op + op.json.capacity();
  for (auto& part : core_->parts) b += part->bytes();
  return b;
}

// --- snapshots --------------------------------------------------------------------------

namespace life {

void Outbox::Save(snap::Writer& w) const {
  w.U64(first_);
  w.U64(next_);
  w.U64(pending_);
  w.U64(dropped_);
  w.U64(items_.size());
  for (const Intent& in : items_) {  // ids are first_ on, one apart
    w.U64(in.oneid);
    w.I64(in.at);
    w.I64(in.created);
    w.Str(in.key);
    w.Str(in.origin);
    w.Str(in.step);
    w.Str(in.action);
    w.Str(in.channel);
    w.Str(in.payload);
    w.Bool(in.acked);
  }
}

void Outbox::Load(snap::Reader& r) {
  items_.clear();
  first_ = r.U64();
  next_ = r.U64();
  pending_ = r.U64();
  dropped_ = r.U64();
  constexpr size_t kMinIntent = 3 * 8 + 6 * 8 + 1;
  const uint64_t n = r.Count(kMinIntent);
  if (r.ok() && (first_ == 0 || next_ - first_ != n)) r.Fail("the outbox's ids do not match its intents");
  uint64_t unacked = 0;
  for (uint64_t i = 0; i < n && r.ok(); ++i) {
    Intent& in = items_.emplace_back();
    in.id = first_ + i;
    in.oneid = r.U64();
    in.at = r.I64();
    in.created = r.I64();
    in.key = r.Str();
    in.origin = r.Str();
    in.step = r.Str();
    in.action = r.Str();
    in.channel = r.Str();
    in.payload = r.Str();
    in.acked = r.Bool();
    unacked += !in.acked;
  }
  if (r.ok() && unacked != pending_) r.Fail("the outbox's pending count does not match its intents");
}

void Core::Save(snap::Writer& w) const {
  w.Vec(oneids_);
  w.Vec(heap);  // in heap order, so timers pop in the same order
  outbox.Save(w);
  for (const auto& h : history_) w.Vec(h);
  w.U64(guard_errors);
  w.U64(transitions);
  w.U64(intents);
  w.U64(no_consent);
  w.Vec(state_changed);
  for (const auto& part : parts) {
    w.Part(part->section());
    part->Save(w);
  }
}

absl::Status Core::Load(snap::Reader& r) {
  r.Vec(oneids_);
  if (r.ok() && (oneids_.empty() || oneids_[0] != 0)) r.Fail("person 0 is not the empty sentinel");
  index_.clear();
  index_.reserve(oneids_.size());
  for (Ix p = 0; p < oneids_.size() && r.ok(); ++p)
    if ((p == 0 || oneids_[p] != 0) && !index_.try_emplace(oneids_[p], p).second)
      r.Fail(Cat("OneID ", oneids_[p], " is listed twice"));
  const Ix n = persons();

  r.Vec(heap);
  for (const Timer& t : heap) {
    if (!r.ok()) break;
    if (t.part >= parts.size() || t.person >= n) r.Fail("a timer names a part or person that does not exist");
  }
  if (r.ok() && !std::is_heap(heap.begin(), heap.end(), std::greater<>())) r.Fail("the timers are not a heap");

  outbox.Load(r);

  history_.assign(n, {});
  for (Ix p = 0; p < n && r.ok(); ++p) {
    auto& h = history_[p];
    r.Vec(h);
    for (const Transition& t : h)
      if (t.reason > static_cast<uint32_t>(Reason::kDefinition)) r.Fail("a transition has an unknown reason");
    // A lower limit than the saver's keeps the most recent, as Record would.
    if (h.size() > limits.max_history) h.erase(h.begin(), h.end() - limits.max_history);
  }

  guard_errors = r.U64();
  transitions = r.U64();
  intents = r.U64();
  no_consent = r.U64();
  r.Vec(state_changed);
  if (!r.ok()) return r.status();

  for (auto& part : parts) {
    if (!r.Part(part->section())) return r.status();
    if (absl::Status st = part->Load(r); !st.ok()) return st;
  }
  return r.status();
}

}  // namespace life

void Lifecycle::Save(snap::Writer& w) const {
  w.Part("lifecycle");
  w.U64(core_->definitions.size());
  for (const Core::DefinitionOp& op : core_->definitions) {
    w.I64(op.now);
    w.Str(op.json);
    w.Str(op.kind);
    w.Str(op.name);
  }
  core_->Save(w);
}

absl::Status Lifecycle::Load(snap::Reader& r) {
  if (core_->persons() != 1 || !core_->definitions.empty() || !core_->heap.empty())
    return absl::FailedPreconditionError("Lifecycle::Load needs a freshly constructed lifecycle");
  if (!r.Part("lifecycle")) return r.status();
  // The definitions are installed again by the documents and drops that installed them,
  // into a core with no persons yet: nothing enters, fires or is fed, and whatever an
  // installer scheduled or noted is replaced by the saved timers and states below.
  const uint64_t n = r.Count(8 + 3 * 8);
  core_->loading = true;
  for (uint64_t i = 0; i < n && r.ok(); ++i) {
    const int64_t now = r.I64();
    const std::string_view json = r.Str(), kind = r.Str(), name = r.Str();
    if (!r.ok()) break;
    absl::Status st = json.empty() ? Drop(kind, name) : Define(json, now).status();
    if (!st.ok()) r.Fail(Cat("definitions[", i, "] no longer install: ", st.message()));
  }
  core_->loading = false;
  if (!r.ok()) return r.status();
  return core_->Load(r);
}

}  // namespace cdp
