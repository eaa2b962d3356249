// The engine's tag, audience and metric methods: JSON in, JSON out, logged when they
// change state (tag definitions, Advance, saved audiences).
#include <algorithm>
#include <map>
#include <optional>

#include "absl/status/status.h"
#include "audience.hpp"
#include "cdp/engine.hpp"
#include "engine_internal.hpp"
#include "json_util.hpp"
#include "metrics.hpp"
#include "simdjson.h"
#include "tags_internal.hpp"
#include "util.hpp"
#include "wal.hpp"

namespace cdp {

namespace dom = simdjson::dom;

namespace {
// The log kinds this file writes (engine.cpp's LogKind, pinned there).

absl::Status Bad(std::string_view path, std::string_view what) {
  return absl::InvalidArgumentError(Cat(path, ": ", what));
}
}  // namespace

struct Engine::Selection {
  Bitmap members;
  PlanStats plan;
  int64_t now = 0;
  bool holdout = false;
  std::string salt;
  uint32_t basis_points = 0;
  dom::parser parser;
  dom::object request;  // the request's options, for the op
  std::string text;     // the request the options point into (a saved one's, or the caller's)
};

Engine::~Engine() = default;

absl::Status Engine::OpenLayers(bool definitions) {
  tags_ = std::make_unique<TagEngine>(*profiles_, feed_, expr_limits_, cfg_.limits.max_tags);
  audiences_ = std::make_unique<SavedAudiences>();
  LifecycleLimits ll;
  ll.max_definitions = cfg_.limits.max_lifecycle_definitions;
  ll.max_history = cfg_.limits.max_history;
  ll.max_outbox = cfg_.limits.max_outbox;
  life_ = std::make_unique<Lifecycle>(*profiles_, *tags_, feed_, expr_limits_, ll);
  tags_->SetStates(life_.get());
  if (!definitions) return absl::OkStatus();
  if (!cfg_.tags_json.empty()) {
    auto defined = tags_->Define(cfg_.tags_json, 0);
    if (!defined.ok()) return absl::InvalidArgumentError(Cat("config tags: ", defined.status().message()));
  }
  if (!cfg_.lifecycle_json.empty()) {
    auto defined = life_->Define(cfg_.lifecycle_json, 0);
    if (!defined.ok()) return absl::InvalidArgumentError(Cat("config lifecycle: ", defined.status().message()));
  }
  return absl::OkStatus();
}

int64_t Engine::Now() const {
  if (advanced_ != kNoTime) return advanced_;
  return newest_record_ == kNoTime ? 0 : newest_record_;
}

// --- tags -------------------------------------------------------------------------------

absl::StatusOr<std::string> Engine::DefineTags(std::string_view json) {
  if (auto st = Writable(); !st.ok()) return st;
  if (json.size() > cfg_.limits.max_record_bytes * 16ull)
    return absl::ResourceExhaustedError(Cat("tag definitions of ", json.size(), " bytes are over 16 x limits.max_record_bytes"));
  WriteScope scope(*this);
  auto r = tags_->Define(json, Now());
  if (!r.ok()) return r.status();  // refused whole: nothing changed
  if (auto st = Log(K(LogKind::kDefineTags), {json}); !st.ok()) return st;
  return r;
}

absl::Status Engine::DropTag(std::string_view name) {
  if (auto st = Writable(); !st.ok()) return st;
  WriteScope scope(*this);
  if (auto st = tags_->Drop(name); !st.ok()) return st;
  return Log(K(LogKind::kDropTag), {name});
}

std::string Engine::TagsJson() const { return tags_->CatalogJson(); }

absl::StatusOr<std::string> Engine::PersonTags(uint64_t oneid) const {
  uint64_t id = graph_->Canonical(oneid);
  if (id == 0) return absl::NotFoundError(Cat("no person with OneID ", oneid));
  std::string out = Cat("{\"oneid\":", id, ",\"tags\":");
  int64_t slot = profiles_->SlotOf(id);
  if (slot >= 0) tags_->AppendPersonTags(out, static_cast<uint32_t>(slot));
  else out += "{}";
  out += "}";
  return out;
}

absl::StatusOr<std::string> Engine::Advance(int64_t now_ms) {
  if (auto st = Writable(); !st.ok()) return st;
  if (advanced_ != kNoTime && now_ms < advanced_)
    return absl::FailedPreconditionError(Cat("advance: the clock is at ", advanced_, " and does not go back to ", now_ms));
  if (!InTimeRange(now_ms)) return absl::InvalidArgumentError("advance: a time before 1970 or after 9999");
  WriteScope scope(*this);
  advanced_ = now_ms;
  TagEngine::AdvanceStats st = tags_->Advance(now_ms);
  // Timers fire after the tags moved to now, so guards read today's tag values.
  Lifecycle::AdvanceStats ls = life_->Advance(now_ms);
  SyncStates();
  if (auto s = Log(K(LogKind::kAdvance), {WalU64(static_cast<uint64_t>(now_ms)).view()}); !s.ok()) return s;
  std::string out;
  json::Writer w(out);
  auto time = [&](int64_t t) { t == kForever ? w.Null() : w.Int(t); };
  w.BeginObject();
  w.Key("now").Int(now_ms);
  w.Key("persons").Uint(st.persons);
  w.Key("changed").Uint(st.changed);
  w.Key("next");
  time(std::min(st.next, ls.next));
  w.Key("lifecycle").BeginObject();
  w.Key("fired").Uint(ls.fired).Key("transitions").Uint(ls.transitions).Key("intents").Uint(ls.intents);
  if (ls.capped) w.Key("capped").Uint(ls.capped);  // absent when 0: ordinary reports stay as they were
  w.Key("next");
  time(ls.next);
  w.EndObject();
  w.EndObject();
  return out;
}

// --- audiences --------------------------------------------------------------------------

absl::StatusOr<std::unique_ptr<Engine::Selection>> Engine::Select(std::string_view request_json) {
  auto sel = std::make_unique<Selection>();
  if (auto st = json::CheckSyntax(request_json, "audience request"); !st.ok()) return st;
  sel->text.assign(request_json);
  dom::element root;
  if (sel->parser.parse(sel->text).get(root) != simdjson::SUCCESS || root.get(sel->request) != simdjson::SUCCESS)
    return absl::InvalidArgumentError("audience request: expected a JSON object");
  dom::object req = sel->request;
  // A saved audience supplies the expression and holdout; the request adds the options.
  dom::object base = req;
  dom::parser saved_parser;
  std::string_view name;
  if (req["audience"].get(name) == simdjson::SUCCESS) {
    auto it = audiences_->by_name.find(name);
    if (it == audiences_->by_name.end()) return absl::NotFoundError(Cat("no saved audience named ", name));
    dom::element sr;
    if (saved_parser.parse(it->second.request).get(sr) != simdjson::SUCCESS || sr.get(base) != simdjson::SUCCESS)
      return absl::InternalError("a saved audience's request did not parse");
  }
  std::string_view text;
  dom::element ast;
  absl::StatusOr<Expr> e = absl::InvalidArgumentError("audience request: give \"expr\" (text), \"ast\" (JSON) or \"audience\" (a saved name)");
  if (base["expr"].get(text) == simdjson::SUCCESS) {
    e = CompileExpr(text, false);
  } else if (base["ast"].get(ast) == simdjson::SUCCESS) {
    e = CompileExpr(simdjson::minify(ast), true);
  }
  if (!e.ok()) return absl::Status(e.status().code(), Cat("audience expression: ", e.status().message()));
  sel->now = Now();
  int64_t now;
  if (req["now"].get(now) == simdjson::SUCCESS && InTimeRange(now)) sel->now = now;
  else if (req["now"].error() != simdjson::NO_SUCH_FIELD) return Bad("now", "expected epoch milliseconds, 1970 to 9999");
  dom::object h;
  if (req["holdout"].get(h) == simdjson::SUCCESS || base["holdout"].get(h) == simdjson::SUCCESS) {
    sel->holdout = true;
    std::string_view salt;
    if (h["salt"].get(salt) != simdjson::SUCCESS) return Bad("holdout.salt", "expected a string (e.g. the campaign id)");
    sel->salt.assign(salt);
    double pct;
    uint64_t bp;
    if (h["basis_points"].get(bp) == simdjson::SUCCESS) {
      if (bp > 10000) return Bad("holdout.basis_points", "expected 0 to 10000");
      sel->basis_points = static_cast<uint32_t>(bp);
    } else if (h["percent"].get(pct) == simdjson::SUCCESS) {
      if (!(pct >= 0 && pct <= 100)) return Bad("holdout.percent", "expected 0 to 100");
      sel->basis_points = static_cast<uint32_t>(std::llround(pct * 100));
    } else {
      return Bad("holdout", "give \"percent\" or \"basis_points\"");
    }
  }
  auto members = SelectAudience(*tags_, *profiles_, *e, sel->now, expr_limits_, &sel->plan);
  if (!members.ok()) return members.status();
  sel->members = std::move(*members);
  // A group narrows the selection to one side of the holdout split.
  std::string_view group = "all";
  if (req["group"].get(group) == simdjson::SUCCESS || req["group"].error() == simdjson::NO_SUCH_FIELD) {
    if (group != "all" && group != "target" && group != "holdout") return Bad("group", "expected all, target or holdout");
  } else {
    return Bad("group", "expected all, target or holdout");
  }
  if (group != "all") {
    if (!sel->holdout) return Bad("group", "needs a holdout");
    Bitmap kept;
    for (uint32_t s : sel->members)
      if (InHoldout(profiles_->AtSlot(s)->oneid, sel->salt, sel->basis_points) == (group == "holdout")) kept.add(s);
    sel->members = std::move(kept);
  }
  return sel;
}

namespace {

// A person's live identifiers of one type, masked or not.
void WriteIds(json::Writer& w, const Engine& e, uint64_t oneid, const std::vector<int>& types, bool mask) {
  const IdentityGraph& g = e.graph();
  NodeId anchor = g.PersonAnchor(oneid);
  std::vector<NodeId> members = anchor == kNoNode ? std::vector<NodeId>() : g.Members(g.Root(anchor));
  w.Key("ids").BeginObject();
  for (int t : types) {
    const IdPolicy& pol = e.config().types[t];
    w.Key(pol.name).BeginArray();
    for (NodeId n : members)
      if (g.node(n).type == static_cast<uint32_t>(t))
        w.String(ShowValue(pol, g.Value(n), mask));
    w.EndArray();
  }
  w.EndObject();
}

absl::Status TypesOf(const Engine& e, dom::object req, std::string_view key, std::vector<int>& out) {
  dom::array a;
  if (req[key].error() == simdjson::NO_SUCH_FIELD) return absl::OkStatus();
  if (req[key].get(a) != simdjson::SUCCESS) return Bad(key, "expected a list of identifier types");
  size_t i = 0;
  for (dom::element x : a) {
    std::string_view t;
    std::string p = Cat(key, "[", i++, "]");
    if (x.get(t) != simdjson::SUCCESS) return Bad(p, "expected an identifier type");
    const int id = e.config().FindType(t);
    if (id < 0) return Bad(p, Cat("unknown identifier type \"", t, "\""));
    out.push_back(id);
  }
  return absl::OkStatus();
}

bool BoolOption(dom::object req, std::string_view key, bool dflt) {
  bool b;
  return req[key].get(b) == simdjson::SUCCESS ? b : dflt;
}

}  // namespace

absl::StatusOr<std::string> Engine::Audience(std::string_view op, std::string_view request_json) {
  if (op != "count" && op != "members" && op != "distribution" && op != "export")
    return absl::InvalidArgumentError(Cat("audience: unknown op \"", op, "\" (count, members, distribution, export)"));
  auto selected = Select(request_json);
  if (!selected.ok()) return selected.status();
  Selection& sel = **selected;
  const dom::object req = sel.request;
  std::string out;
  json::Writer w(out);
  auto oneid_of = [&](uint32_t slot) { return profiles_->AtSlot(slot)->oneid; };

  if (op == "count") {
    w.BeginObject();
    w.Key("count").Uint(sel.members.cardinality());
    if (sel.holdout) {
      uint64_t held = 0;
      for (uint32_t s : sel.members) held += InHoldout(oneid_of(s), sel.salt, sel.basis_points);
      w.Key("target").Uint(sel.members.cardinality() - held);
      w.Key("holdout").Uint(held);
    }
    w.Key("now").Int(sel.now);
    w.Key("plan").BeginObject();
    w.Key("indexed_leaves").Uint(sel.plan.indexed_leaves);
    w.Key("scanned_leaves").Uint(sel.plan.scanned_leaves);
    w.Key("persons_evaluated").Uint(sel.plan.persons_evaluated);
    w.EndObject();
    w.EndObject();
    return out;
  }

  if (op == "members") {
    uint64_t cursor = 0, limit = 100;
    if (req["cursor"].get(cursor) != simdjson::SUCCESS && req["cursor"].error() != simdjson::NO_SUCH_FIELD)
      return Bad("cursor", "expected the \"next\" of the previous page, or 0");
    if (req["limit"].get(limit) != simdjson::SUCCESS && req["limit"].error() != simdjson::NO_SUCH_FIELD)
      return Bad("limit", "expected 1 to 10000");
    limit = std::clamp<uint64_t>(limit, 1, 10000);
    std::vector<int> types;
    if (auto st = TypesOf(*this, req, "ids", types); !st.ok()) return st;
    const bool mask = BoolOption(req, "mask", true);
    w.BeginObject();
    w.Key("count").Uint(sel.members.cardinality());
    w.Key("members").BeginArray();
    uint64_t next = 0, n = 0;
    if (cursor <= UINT32_MAX) {
      auto it = sel.members.begin();
      it.equalorlarger(static_cast<uint32_t>(cursor));
      for (; it != sel.members.end(); ++it) {
        if (n == limit) {
          next = *it;
          break;
        }
        uint32_t slot = *it;
        w.BeginObject();
        w.Key("oneid").Uint(oneid_of(slot));
        if (sel.holdout) w.Key("holdout").Bool(InHoldout(oneid_of(slot), sel.salt, sel.basis_points));
        if (!types.empty()) WriteIds(w, *this, oneid_of(slot), types, mask);
        w.EndObject();
        ++n;
      }
    }
    w.EndArray();
    w.Key("next").Uint(next);
    w.EndObject();
    return out;
  }

  if (op == "distribution") {
    dom::array names;
    if (req["tags"].get(names) != simdjson::SUCCESS || names.size() == 0)
      return Bad("tags", "expected a list of tag names");
    uint64_t top = 10;
    if (req["top"].get(top) != simdjson::SUCCESS && req["top"].error() != simdjson::NO_SUCH_FIELD)
      return Bad("top", "expected 1 to 1000");
    top = std::clamp<uint64_t>(top, 1, 1000);
    const uint64_t total = sel.members.cardinality();
    w.BeginObject();
    w.Key("count").Uint(total);
    w.Key("tags").BeginObject();
    size_t i = 0;
    for (dom::element x : names) {
      std::string_view name;
      std::string p = Cat("tags[", i++, "]");
      if (x.get(name) != simdjson::SUCCESS) return Bad(p, "expected a tag name");
      int64_t t = tags_->Find(name);
      if (t < 0) return Bad(p, Cat("tag ", name, " is not defined"));
      const tags::Column& c = *tags_->column(static_cast<uint32_t>(t));
      std::vector<std::pair<uint64_t, std::string>> counts;  // (persons, value JSON)
      if (c.shape == tags::Shape::kNumber) {
        // Exact values, counted over the members (numbers have no per-value bitmaps).
        absl::flat_hash_map<uint64_t, uint64_t> by;
        for (uint32_t s : sel.members)
          if (c.exists.contains(s)) by[c.enc[s]]++;
        for (auto& [enc, n] : by) {
          std::string v;
          AppendValueJson(v, c.Decode(enc));
          counts.emplace_back(n, std::move(v));
        }
      } else {
        for (uint32_t code = 1; code < c.by_code.size(); ++code) {
          uint64_t n = c.by_code[code].and_cardinality(sel.members);
          if (n == 0) continue;
          std::string v;
          AppendValueJson(v, c.CodeValue(code));
          counts.emplace_back(n, std::move(v));
        }
      }
      // Counts are of persons per value; a list tag's person holds several items, so its
      // persons with a value are counted apart.
      uint64_t all_items = 0;
      for (auto& [n, v] : counts) all_items += n;
      const uint64_t with_value =
          c.shape == tags::Shape::kList ? (c.Existing() & sel.members).cardinality() : all_items;
      std::sort(counts.begin(), counts.end(), [](const auto& a, const auto& b) {
        return a.first != b.first ? a.first > b.first : a.second < b.second;
      });
      w.Key(name).BeginObject();
      w.Key("values").BeginArray();
      uint64_t shown = 0;
      for (size_t k = 0; k < counts.size() && k < top; ++k) {
        w.BeginObject().Key("value").Raw(counts[k].second).Key("count").Uint(counts[k].first).EndObject();
        shown += counts[k].first;
      }
      w.EndArray();
      w.Key("other").Uint(all_items - shown);
      w.Key("none").Uint(total - with_value);
      w.EndObject();
    }
    w.EndObject();
    w.EndObject();
    return out;
  }

  // export: one line per member, with the identifier a channel reaches them by.
  std::string_view format = "ndjson";
  if (req["format"].get(format) != simdjson::SUCCESS && req["format"].error() != simdjson::NO_SUCH_FIELD)
    return Bad("format", "expected ndjson or csv");
  if (format != "ndjson" && format != "csv") return Bad("format", "expected ndjson or csv");
  std::vector<int> channel;
  if (auto st = TypesOf(*this, req, "channel", channel); !st.ok()) return st;
  if (channel.empty()) return Bad("channel", "expected the identifier types the channel reaches, best first (e.g. [\"mobile\", \"unionid\"])");
  const bool mask = BoolOption(req, "mask", false);
  const bool fallback = BoolOption(req, "fallback", true);
  if (format == "csv") out += "oneid,type,value,source,holdout\n";
  const IdentityGraph& g = *graph_;
  for (uint32_t slot : sel.members) {
    const Profile* p = profiles_->AtSlot(slot);
    NodeId anchor = g.PersonAnchor(p->oneid);
    std::vector<NodeId> ids = anchor == kNoNode ? std::vector<NodeId>() : g.Members(g.Root(anchor));
    // The first channel type the person holds (its first-seen identifier of that type);
    // else, with fallback, the best identifier of the source of the person's latest record.
    NodeId pick = kNoNode;
    std::string_view source;
    for (int t : channel) {
      for (NodeId n : ids)
        if (g.node(n).type == static_cast<uint32_t>(t) &&
            (pick == kNoNode || g.node(n).first_seen < g.node(pick).first_seen))
          pick = n;
      if (pick != kNoNode) break;
    }
    if (pick == kNoNode && fallback && !p->idsets.empty()) {
      const IdSet* latest = &p->idsets[0];
      for (const IdSet& s : p->idsets)
        if (s.last_ts > latest->last_ts) latest = &s;
      source = profiles_->SourceName(latest->source);
      if (latest->nodes_len) pick = g.RecordAnchor(p->idset_nodes.data() + latest->nodes_off, latest->nodes_len);
    }
    if (pick == kNoNode) continue;  // no identifier the channel (or the fallback) reaches
    const IdPolicy& pol = cfg_.types[g.node(pick).type];
    std::string value = ShowValue(pol, g.Value(pick), mask);
    const bool held = sel.holdout && InHoldout(p->oneid, sel.salt, sel.basis_points);
    if (format == "csv") {
      auto field = [&](std::string_view f) {
        if (f.find_first_of(",\"\n\r") == std::string_view::npos) {
          out += f;
          return;
        }
        out += '"';
        for (char c : f) {
          if (c == '"') out += '"';
          out += c;
        }
        out += '"';
      };
      out += std::to_string(p->oneid);
      out += ',';
      field(pol.name);
      out += ',';
      field(value);
      out += ',';
      field(source);
      out += ',';
      out += sel.holdout ? (held ? "true" : "false") : "";
      out += '\n';
    } else {
      json::Writer lw(out);
      lw.BeginObject();
      lw.Key("oneid").Uint(p->oneid);
      lw.Key("type").String(pol.name);
      lw.Key("value").String(value);
      if (!source.empty()) lw.Key("fallback_source").String(source);
      if (sel.holdout) lw.Key("holdout").Bool(held);
      lw.EndObject();
      out += '\n';
    }
  }
  return out;
}

absl::StatusOr<std::string> Engine::SaveAudience(std::string_view name, std::string_view request_json) {
  return SaveAudience(name, request_json, /*strict=*/true);
}

absl::StatusOr<std::string> Engine::SaveAudience(std::string_view name, std::string_view request_json, bool strict) {
  if (auto st = Writable(); !st.ok()) return st;
  if (name.empty() || name.size() > 256) return absl::InvalidArgumentError("audience name: 1 to 256 bytes");
  if (!audiences_->by_name.contains(name) && audiences_->by_name.size() >= cfg_.limits.max_audiences)
    return absl::ResourceExhaustedError(Cat("saved audiences would pass limits.max_audiences (", cfg_.limits.max_audiences, ")"));
  // The request must select (it is checked now, not at its first count). A saved audience
  // is an expression and a holdout: not a reference to another saved audience, and not
  // a query's options ("now", "group", ...), which recounts could not honour, since they
  // run at the engine's clock over the whole audience.
  {
    dom::parser p;
    dom::object r;
    if (auto st = json::CheckSyntax(request_json, "audience request"); !st.ok()) return st;
    if (p.parse(request_json).get(r) != simdjson::SUCCESS)
      return absl::InvalidArgumentError("audience request: expected a JSON object");
    for (auto [key, value] : r) {
      if (key == "audience") return Bad("audience", "a saved audience is an expression, not another saved audience");
      if (strict && key != "expr" && key != "ast" && key != "holdout")
        return Bad(key, "a saved audience keeps \"expr\" or \"ast\", and \"holdout\"; give a query's options when you query it");
    }
  }
  WriteScope scope(*this);
  auto sel = Select(request_json);
  if (!sel.ok()) return sel.status();
  auto& saved = audiences_->by_name[std::string(name)];
  // A new request is a new audience: its first count is compared with nothing.
  if (saved.request != request_json) saved = SavedAudiences::Saved{};
  saved.request.assign(request_json);
  if (auto st = Log(K(LogKind::kSaveAudience), {name, request_json}); !st.ok()) return st;
  return Cat("{\"name\":", [&] { std::string s; json::AppendString(s, name); return s; }(),
             ",\"count\":", (*sel)->members.cardinality(), "}");
}

absl::Status Engine::DropAudience(std::string_view name) {
  if (auto st = Writable(); !st.ok()) return st;
  auto it = audiences_->by_name.find(name);
  if (it == audiences_->by_name.end()) return absl::NotFoundError(Cat("no saved audience named ", name));
  WriteScope scope(*this);
  audiences_->by_name.erase(it);
  return Log(K(LogKind::kDropAudience), {name});
}

std::string Engine::AudiencesJson() const {
  std::string out;
  json::Writer w(out);
  w.BeginObject().Key("audiences").BeginArray();
  for (const auto& [name, a] : audiences_->by_name) {
    w.BeginObject();
    w.Key("name").String(name);
    w.Key("request").Raw(a.request);
    w.Key("counts").Uint(a.counts);
    w.Key("count");
    if (a.counts) w.Uint(a.count);
    else w.Null();
    w.Key("counted_at");
    if (a.counts) w.Int(a.counted_at);
    else w.Null();
    w.EndObject();
  }
  w.EndArray().EndObject();
  return out;
}

void Engine::UpdateTags() {
  std::vector<uint32_t> freed;
  tags_->Update(Now(), &freed);
  if (freed.empty()) return;
  const Bitmap gone(freed.size(), freed.data());
  for (auto& [name, a] : audiences_->by_name) {
    if (a.last.isEmpty()) continue;
    a.departed += a.last.and_cardinality(gone);
    a.last -= gone;
  }
}

absl::StatusOr<std::string> Engine::RecountAudience(std::string_view name) {
  if (auto st = Writable(); !st.ok()) return st;
  auto it = audiences_->by_name.find(name);
  if (it == audiences_->by_name.end()) return absl::NotFoundError(Cat("no saved audience named ", name));
  WriteScope scope(*this);
  auto sel = Select(Cat("{\"audience\":", [&] { std::string s; json::AppendString(s, name); return s; }(), "}"));
  if (!sel.ok()) return sel.status();
  auto& a = it->second;
  // Slots are compared; members who ended since (their slots were taken out of `last`)
  // left, and whoever holds such a slot now is new.
  Selection& s = **sel;
  const uint64_t count = s.members.cardinality();
  const uint64_t entered = a.counts ? (s.members - a.last).cardinality() : count;
  const uint64_t left = a.counts ? (a.last - s.members).cardinality() + a.departed : 0;
  const uint64_t previous = a.count;
  const bool first = a.counts == 0;
  a.last = std::move(s.members);
  a.last.runOptimize();
  a.departed = 0;
  a.count = count;
  a.counted_at = s.now;
  a.counts++;
  std::string body;
  json::Writer w(body);
  w.BeginObject();
  w.Key("audience").String(name);
  w.Key("count").Uint(count);
  w.Key("previous");
  if (first) w.Null();
  else w.Uint(previous);
  w.Key("entered").Uint(entered);
  w.Key("left").Uint(left);
  w.Key("now").Int(s.now);
  w.EndObject();
  FeedEvent& e = feed_.Append(FeedEvent::Kind::kAudienceCounted);
  e.a = count;
  e.ts = s.now;
  e.text = feed_.AddText(body);
  if (auto st = Log(K(LogKind::kRecountAudience), {name}); !st.ok()) return st;
  return body;
}

// --- metrics ----------------------------------------------------------------------------

absl::StatusOr<std::string> Engine::Metrics(std::string_view request_json) {
  // {"audience": {...}} restricts a metric to an audience (any audience request: expr,
  // ast or a saved name); the metric reads the rest of the request.
  std::optional<Bitmap> members;
  std::string stripped;
  std::string_view request = request_json;
  dom::parser p;
  dom::object o, aud;
  if (!json::Locate(request_json).found && p.parse(request_json).get(o) == simdjson::SUCCESS &&
      o["audience"].get(aud) == simdjson::SUCCESS) {
    auto sel = Select(simdjson::minify(aud));
    if (!sel.ok()) return absl::Status(sel.status().code(), Cat("audience: ", sel.status().message()));
    members = std::move((*sel)->members);
    // The metric module refuses keys it does not know: hand it the request without "audience".
    json::Writer w(stripped);
    w.BeginObject();
    for (auto [k, v] : o)
      if (k != "audience") w.Key(k).Raw(simdjson::minify(v));
    w.EndObject();
    request = stripped;
  }
  auto with_subject = [&](uint32_t slot, absl::FunctionRef<void(const Subject&)> f) {
    TaggedView v(*tags_, slot);
    f(v);
  };
  // Referrers are found as cdp_resolve finds them (hashed types included).
  auto resolve = [this](uint32_t type, std::string_view value) -> uint64_t {
    auto r = Resolve(cfg_.types[type].name, value);
    return r.ok() ? *r : 0;
  };
  metrics::Population pop{*profiles_, members ? &*members : nullptr, with_subject, resolve, life_.get()};
  return metrics::Run(pop, request, *profiles_, expr_limits_);
}

}  // namespace cdp
