// The C shim: the only place C++ meets the C ABI. Every entry point is noexcept in
// effect (a catch-all turns any exception into a status), checks its handle against the
// registry of open engines, maps absl::Status to pinned codes in one function, and hands
// variable-size results out in library-owned cdp_buf.
#include "cdp.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <new>
#include <shared_mutex>
#include <string>

#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "cdp/engine.hpp"

struct cdp_engine {
  uint64_t magic;
  std::unique_ptr<cdp::Engine> engine;
  // Readers share, writers exclude: the thread contract of cdp.h rule 6.
  std::shared_mutex mu;
};

struct cdp_expr {
  uint64_t magic;
  cdp_engine* engine;  // checked against the registry before use: it may have been closed
  cdp::Expr expr;
};

namespace {

constexpr uint64_t kMagicOpen = 0x63647065'6e67696eull;  // "cdpengin"
constexpr uint64_t kMagicExpr = 0x63647065'78707221ull;  // "cdpexpr!"

thread_local std::string t_error;

// Open handles. A freed handle is never dereferenced: it is looked up here first, so a
// closed or foreign pointer gets CDP_EMISUSE (best effort: an address can be reused by a
// later open). This is the library's one piece of process-wide state.
struct Registry {
  std::shared_mutex mu;
  absl::flat_hash_set<const cdp_engine*> open;
  absl::flat_hash_set<const cdp_expr*> exprs;
};
Registry& registry() {
  static Registry* r = new Registry();  // never destroyed: safe during static teardown
  return *r;
}

int32_t Fail(int32_t code, std::string msg) {
  t_error = std::move(msg);
  return code;
}

int32_t Ok() {
  t_error.clear();
  return CDP_OK;
}

int32_t FromStatus(const absl::Status& s) {
  if (s.ok()) return Ok();
  int32_t code;
  switch (s.code()) {
    case absl::StatusCode::kInvalidArgument: code = CDP_EINVALID; break;
    case absl::StatusCode::kNotFound: code = CDP_ENOTFOUND; break;
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kAlreadyExists: code = CDP_ECONFLICT; break;
    case absl::StatusCode::kResourceExhausted: code = CDP_ELIMIT; break;
    case absl::StatusCode::kUnimplemented: code = CDP_EUNSUPPORTED; break;
    case absl::StatusCode::kDataLoss:
    case absl::StatusCode::kUnavailable: code = CDP_EIO; break;
    default: code = CDP_EINTERNAL; break;
  }
  return Fail(code, std::string(s.message()));
}

std::string_view View(const char* p, uint64_t n) {
  if (p == nullptr) return {};
  return {p, static_cast<size_t>(n)};
}

int32_t Put(cdp_buf* out, std::string&& s) {
  if (out == nullptr) return Ok();
  cdp_buf_free(out);
  char* p = static_cast<char*>(std::malloc(s.size() + 1));
  if (p == nullptr) return Fail(CDP_ENOMEM, "out of memory for the result buffer");
  std::memcpy(p, s.data(), s.size());
  p[s.size()] = '\0';
  out->ptr = p;
  out->size = s.size();
  out->reserved = 0;
  return Ok();
}

int32_t Put(cdp_buf* out, absl::StatusOr<std::string>&& r) {
  if (!r.ok()) return FromStatus(r.status());
  return Put(out, std::move(*r));
}

enum class Access { kRead, kWrite };

// Runs f with the engine if the handle is open, under the engine's lock: shared for
// reads (f gets a const Engine), exclusive for writes. Turns exceptions into statuses.
template <Access kAccess, typename F>
int32_t With(cdp_engine* e, const char* fn, F&& f) noexcept {
  try {
    if (e == nullptr) return Fail(CDP_EMISUSE, std::string(fn) + ": engine is NULL");
    {
      std::shared_lock lock(registry().mu);
      if (!registry().open.contains(e) || e->magic != kMagicOpen)
        return Fail(CDP_EMISUSE, std::string(fn) + ": not an open engine (closed or foreign handle)");
    }
    if constexpr (kAccess == Access::kRead) {
      std::shared_lock lock(e->mu);
      return f(static_cast<const cdp::Engine&>(*e->engine));
    } else {
      std::unique_lock lock(e->mu);
      return f(*e->engine);
    }
  } catch (const std::bad_alloc&) {
    return Fail(CDP_ENOMEM, std::string(fn) + ": out of memory");
  } catch (const std::exception& ex) {
    return Fail(CDP_EINTERNAL, std::string(fn) + ": internal error: " + ex.what());
  } catch (...) {
    return Fail(CDP_EINTERNAL, std::string(fn) + ": internal error");
  }
}

#define CDP_NEED(ptr, fn)                                                   \
  do {                                                                      \
    if ((ptr) == nullptr) return Fail(CDP_EMISUSE, fn ": " #ptr " is NULL"); \
  } while (0)

}  // namespace

extern "C" {

int32_t cdp_version(void) { return CDP_VERSION_NUMBER; }

const char* cdp_version_string(void) {
#define CDP_STR2(x) #x
#define CDP_STR(x) CDP_STR2(x)
  return CDP_STR(CDP_VERSION_MAJOR) "." CDP_STR(CDP_VERSION_MINOR) "." CDP_STR(CDP_VERSION_PATCH);
}

const char* cdp_status_str(int32_t status) {
  switch (status) {
    case CDP_OK: return "CDP_OK: success";
    case CDP_EINVALID: return "CDP_EINVALID: invalid argument, record, config or definition";
    case CDP_ENOTFOUND: return "CDP_ENOTFOUND: not found";
    case CDP_ECONFLICT: return "CDP_ECONFLICT: conflicts with a rule";
    case CDP_EBUFS: return "CDP_EBUFS: buffer too small";
    case CDP_ENOMEM: return "CDP_ENOMEM: out of memory";
    case CDP_EIO: return "CDP_EIO: input/output error";
    case CDP_EMISUSE: return "CDP_EMISUSE: library misuse";
    case CDP_EINTERNAL: return "CDP_EINTERNAL: internal error";
    case CDP_ELIMIT: return "CDP_ELIMIT: limit exceeded";
    case CDP_EUNSUPPORTED: return "CDP_EUNSUPPORTED: not supported";
    default: return "unknown status";
  }
}

const char* cdp_error_last(void) { return t_error.c_str(); }

void cdp_buf_free(cdp_buf* buf) {
  if (buf == nullptr) return;
  std::free(buf->ptr);
  buf->ptr = nullptr;
  buf->size = 0;
  buf->reserved = 0;
}

int32_t cdp_config_default(cdp_buf* out) {
  CDP_NEED(out, "cdp_config_default");
  try {
    return Put(out, std::string(cdp::DefaultConfigJson()));
  } catch (...) {
    return Fail(CDP_ENOMEM, "cdp_config_default: out of memory");
  }
}

namespace {

int32_t OpenEngine(const char* fn, cdp_engine** out, const char* config, uint64_t config_len, const char* dir,
                   std::string_view key) {
  *out = nullptr;
  try {
    auto eng = cdp::Engine::Open(View(config, config_len), dir == nullptr ? std::string_view() : std::string_view(dir),
                                 key);
    if (!eng.ok()) return FromStatus(eng.status());
    auto* h = new cdp_engine{kMagicOpen, std::move(*eng), {}};
    {
      std::unique_lock lock(registry().mu);
      registry().open.insert(h);
    }
    *out = h;
    return Ok();
  } catch (const std::bad_alloc&) {
    return Fail(CDP_ENOMEM, std::string(fn) + ": out of memory");
  } catch (...) {
    return Fail(CDP_EINTERNAL, std::string(fn) + ": internal error");
  }
}

}  // namespace

int32_t cdp_engine_open(cdp_engine** out, const char* config, uint64_t config_len, const char* dir) {
  CDP_NEED(out, "cdp_engine_open");
  return OpenEngine("cdp_engine_open", out, config, config_len, dir, {});
}

int32_t cdp_engine_open_keyed(cdp_engine** out, const char* config, uint64_t config_len, const char* dir,
                              const void* key, uint64_t key_len) {
  CDP_NEED(out, "cdp_engine_open_keyed");
  if (key == nullptr && key_len != 0) {
    *out = nullptr;
    return Fail(CDP_EMISUSE, "cdp_engine_open_keyed: key is NULL");
  }
  return OpenEngine("cdp_engine_open_keyed", out, config, config_len, dir,
                    std::string_view(static_cast<const char*>(key), key_len));
}

int32_t cdp_engine_close(cdp_engine* engine) {
  if (engine == nullptr) return Ok();
  {
    std::unique_lock lock(registry().mu);
    if (!registry().open.erase(engine))
      return Fail(CDP_EMISUSE, "cdp_engine_close: not an open engine (closed twice, or foreign handle)");
  }
  engine->magic = 0;
  delete engine;
  return Ok();
}

int32_t cdp_engine_stats(cdp_buf* out, cdp_engine* engine) {
  CDP_NEED(out, "cdp_engine_stats");
  return With<Access::kRead>(engine, "cdp_engine_stats", [&](const cdp::Engine& e) { return Put(out, e.StatsJson()); });
}

int32_t cdp_snapshot(cdp_buf* out, cdp_engine* engine) {
  return With<Access::kWrite>(engine, "cdp_snapshot", [&](cdp::Engine& e) { return Put(out, e.Snapshot()); });
}

int32_t cdp_ingest_ndjson(cdp_buf* out, cdp_engine* engine, const char* data, uint64_t len, uint32_t flags) {
  return With<Access::kWrite>(engine, "cdp_ingest_ndjson", [&](cdp::Engine& e) -> int32_t {
    if (data == nullptr && len != 0) return Fail(CDP_EMISUSE, "cdp_ingest_ndjson: data is NULL");
    if (flags & ~CDP_INGEST_ASSIGN) return Fail(CDP_EINVALID, "cdp_ingest_ndjson: unknown flags");
    auto r = e.IngestNdjson(View(data, len), flags & CDP_INGEST_ASSIGN);
    return Put(out, std::move(r));
  });
}

int32_t cdp_ingest_record(cdp_buf* out, cdp_engine* engine, const char* json, uint64_t len) {
  return With<Access::kWrite>(engine, "cdp_ingest_record", [&](cdp::Engine& e) -> int32_t {
    if (json == nullptr) return Fail(CDP_EMISUSE, "cdp_ingest_record: json is NULL");
    return Put(out, e.IngestRecord(View(json, len)));
  });
}

int32_t cdp_records_resolve(cdp_buf* out, cdp_engine* engine, const char* data, uint64_t len) {
  CDP_NEED(out, "cdp_records_resolve");
  return With<Access::kWrite>(engine, "cdp_records_resolve", [&](cdp::Engine& e) -> int32_t {
    if (data == nullptr && len != 0) return Fail(CDP_EMISUSE, "cdp_records_resolve: data is NULL");
    return Put(out, e.ResolveNdjson(View(data, len)));
  });
}

int32_t cdp_resolve(uint64_t* out, cdp_engine* engine, const char* type, uint64_t type_len,
                    const char* value, uint64_t value_len) {
  CDP_NEED(out, "cdp_resolve");
  *out = 0;
  return With<Access::kRead>(engine, "cdp_resolve", [&](const cdp::Engine& e) -> int32_t {
    auto r = e.Resolve(View(type, type_len), View(value, value_len));
    if (!r.ok()) return FromStatus(r.status());
    *out = *r;
    return Ok();
  });
}

int32_t cdp_person_identifiers(cdp_buf* out, cdp_engine* engine, uint64_t oneid, uint32_t flags) {
  CDP_NEED(out, "cdp_person_identifiers");
  return With<Access::kRead>(engine, "cdp_person_identifiers", [&](const cdp::Engine& e) {
    return Put(out, e.PersonIdentifiers(oneid, flags & CDP_MASK));
  });
}

int32_t cdp_persons_page(cdp_buf* out, cdp_engine* engine, uint64_t cursor, uint32_t limit, uint32_t flags) {
  CDP_NEED(out, "cdp_persons_page");
  return With<Access::kRead>(engine, "cdp_persons_page", [&](const cdp::Engine& e) {
    return Put(out, e.PersonsPage(cursor, limit, flags & CDP_MASK));
  });
}

int32_t cdp_explain(cdp_buf* out, cdp_engine* engine, const char* type_a, uint64_t type_a_len,
                    const char* value_a, uint64_t value_a_len, const char* type_b, uint64_t type_b_len,
                    const char* value_b, uint64_t value_b_len) {
  CDP_NEED(out, "cdp_explain");
  return With<Access::kRead>(engine, "cdp_explain", [&](const cdp::Engine& e) {
    return Put(out, e.Explain(View(type_a, type_a_len), View(value_a, value_a_len),
                              View(type_b, type_b_len), View(value_b, value_b_len)));
  });
}

int32_t cdp_identifier_remove(cdp_buf* out, cdp_engine* engine, const char* type, uint64_t type_len,
                              const char* value, uint64_t value_len) {
  return With<Access::kWrite>(engine, "cdp_identifier_remove", [&](cdp::Engine& e) {
    return Put(out, e.RemoveIdentifier(View(type, type_len), View(value, value_len)));
  });
}

int32_t cdp_source_remove(cdp_buf* out, cdp_engine* engine, const char* source, uint64_t source_len) {
  return With<Access::kWrite>(engine, "cdp_source_remove", [&](cdp::Engine& e) {
    return Put(out, e.RemoveSource(View(source, source_len)));
  });
}

int32_t cdp_person_split(cdp_buf* out, cdp_engine* engine, uint64_t oneid, const char* idents_json,
                         uint64_t idents_len) {
  return With<Access::kWrite>(engine, "cdp_person_split", [&](cdp::Engine& e) -> int32_t {
    if (idents_json == nullptr) return Fail(CDP_EMISUSE, "cdp_person_split: idents_json is NULL");
    return Put(out, e.Split(oneid, View(idents_json, idents_len)));
  });
}

int32_t cdp_person_forget(cdp_buf* out, cdp_engine* engine, const char* request, uint64_t len) {
  return With<Access::kWrite>(engine, "cdp_person_forget", [&](cdp::Engine& e) -> int32_t {
    if (request == nullptr) return Fail(CDP_EMISUSE, "cdp_person_forget: request is NULL");
    return Put(out, e.Forget(View(request, len)));
  });
}

int32_t cdp_person_export(cdp_buf* out, cdp_engine* engine, uint64_t oneid) {
  CDP_NEED(out, "cdp_person_export");
  return With<Access::kRead>(engine, "cdp_person_export", [&](const cdp::Engine& e) {
    return Put(out, e.ExportPerson(oneid));
  });
}

int32_t cdp_rule_add(uint64_t* out_rule, cdp_engine* engine, const char* kind, uint64_t kind_len,
                     const char* type_a, uint64_t type_a_len, const char* value_a, uint64_t value_a_len,
                     const char* type_b, uint64_t type_b_len, const char* value_b, uint64_t value_b_len,
                     const char* note, uint64_t note_len) {
  CDP_NEED(out_rule, "cdp_rule_add");
  *out_rule = 0;
  return With<Access::kWrite>(engine, "cdp_rule_add", [&](cdp::Engine& e) -> int32_t {
    auto r = e.AddRule(View(kind, kind_len), View(type_a, type_a_len), View(value_a, value_a_len),
                       View(type_b, type_b_len), View(value_b, value_b_len), View(note, note_len));
    if (!r.ok()) return FromStatus(r.status());
    *out_rule = *r;
    return Ok();
  });
}

int32_t cdp_rule_remove(cdp_buf* out, cdp_engine* engine, uint64_t rule) {
  return With<Access::kWrite>(engine, "cdp_rule_remove", [&](cdp::Engine& e) { return Put(out, e.RemoveRule(rule)); });
}

int32_t cdp_rules_list(cdp_buf* out, cdp_engine* engine) {
  CDP_NEED(out, "cdp_rules_list");
  return With<Access::kRead>(engine, "cdp_rules_list", [&](const cdp::Engine& e) { return Put(out, e.RulesJson()); });
}

int32_t cdp_person_get(cdp_buf* out, cdp_engine* engine, uint64_t oneid, uint32_t flags) {
  CDP_NEED(out, "cdp_person_get");
  return With<Access::kRead>(engine, "cdp_person_get", [&](const cdp::Engine& e) {
    return Put(out, e.PersonJson(oneid, flags & CDP_MASK));
  });
}

int32_t cdp_expr_compile(cdp_expr** out, cdp_engine* engine, const char* text, uint64_t len, uint32_t flags) {
  CDP_NEED(out, "cdp_expr_compile");
  *out = nullptr;
  return With<Access::kWrite>(engine, "cdp_expr_compile", [&](cdp::Engine& e) -> int32_t {
    if (text == nullptr && len != 0) return Fail(CDP_EMISUSE, "cdp_expr_compile: text is NULL");
    if (flags & ~CDP_EXPR_AST) return Fail(CDP_EINVALID, "cdp_expr_compile: unknown flags");
    auto x = e.CompileExpr(View(text, len), flags & CDP_EXPR_AST);
    if (!x.ok()) return FromStatus(x.status());
    auto* h = new cdp_expr{kMagicExpr, engine, std::move(*x)};
    {
      std::unique_lock lock(registry().mu);
      registry().exprs.insert(h);
    }
    *out = h;
    return Ok();
  });
}

namespace {
// The expression if it is live (the registry answers for freed handles).
bool LiveExpr(const cdp_expr* x) {
  std::shared_lock lock(registry().mu);
  return x != nullptr && registry().exprs.contains(x) && x->magic == kMagicExpr;
}
}  // namespace

int32_t cdp_expr_ast(cdp_buf* out, const cdp_expr* expr) {
  CDP_NEED(out, "cdp_expr_ast");
  if (!LiveExpr(expr)) return Fail(CDP_EMISUSE, "cdp_expr_ast: not a live expression (freed or foreign handle)");
  try {
    return Put(out, std::string(expr->expr.AstJson()));
  } catch (...) {
    return Fail(CDP_ENOMEM, "cdp_expr_ast: out of memory");
  }
}

int32_t cdp_expr_eval(cdp_buf* out, cdp_expr* expr, uint64_t oneid, int64_t now_ms) {
  CDP_NEED(out, "cdp_expr_eval");
  if (!LiveExpr(expr)) return Fail(CDP_EMISUSE, "cdp_expr_eval: not a live expression (freed or foreign handle)");
  return With<Access::kRead>(expr->engine, "cdp_expr_eval", [&](const cdp::Engine& e) {
    // One evaluator per thread, so its scratch is reused across calls; remade only when
    // an engine with other limits comes along.
    thread_local cdp::ExprLimits lim;
    thread_local std::unique_ptr<cdp::Evaluator> ev;
    const cdp::ExprLimits& want = e.expr_limits();
    auto same = [](const cdp::ExprLimits& a, const cdp::ExprLimits& b) {
      return a.max_text_bytes == b.max_text_bytes && a.max_nodes == b.max_nodes && a.max_depth == b.max_depth &&
             a.max_steps == b.max_steps && a.max_list == b.max_list;
    };
    if (!ev || !same(lim, want)) {
      ev = std::make_unique<cdp::Evaluator>(want);
      lim = want;
    }
    return Put(out, e.EvalExpr(expr->expr, oneid, now_ms, *ev));
  });
}

int32_t cdp_expr_free(cdp_expr* expr) {
  if (expr == nullptr) return Ok();
  {
    std::unique_lock lock(registry().mu);
    if (!registry().exprs.erase(expr))
      return Fail(CDP_EMISUSE, "cdp_expr_free: not a live expression (freed twice, or foreign handle)");
  }
  expr->magic = 0;
  delete expr;
  return Ok();
}

int32_t cdp_feed_read(cdp_buf* out, cdp_engine* engine, uint64_t cursor, uint32_t limit) {
  CDP_NEED(out, "cdp_feed_read");
  return With<Access::kRead>(engine, "cdp_feed_read", [&](const cdp::Engine& e) { return Put(out, e.FeedJson(cursor, limit)); });
}

int32_t cdp_feed_trim(cdp_engine* engine, uint64_t cursor) {
  return With<Access::kWrite>(engine, "cdp_feed_trim", [&](cdp::Engine& e) { return FromStatus(e.TrimFeed(cursor)); });
}

// --- tags and audiences -------------------------------------------------------------

int32_t cdp_tags_define(cdp_buf* out, cdp_engine* engine, const char* json, uint64_t len) {
  return With<Access::kWrite>(engine, "cdp_tags_define", [&](cdp::Engine& e) -> int32_t {
    if (json == nullptr && len != 0) return Fail(CDP_EMISUSE, "cdp_tags_define: json is NULL");
    return Put(out, e.DefineTags(View(json, len)));
  });
}

int32_t cdp_tag_drop(cdp_engine* engine, const char* name, uint64_t len) {
  return With<Access::kWrite>(engine, "cdp_tag_drop", [&](cdp::Engine& e) -> int32_t {
    if (name == nullptr && len != 0) return Fail(CDP_EMISUSE, "cdp_tag_drop: name is NULL");
    return FromStatus(e.DropTag(View(name, len)));
  });
}

int32_t cdp_tags_list(cdp_buf* out, cdp_engine* engine) {
  CDP_NEED(out, "cdp_tags_list");
  return With<Access::kRead>(engine, "cdp_tags_list", [&](const cdp::Engine& e) { return Put(out, e.TagsJson()); });
}

int32_t cdp_person_tags(cdp_buf* out, cdp_engine* engine, uint64_t oneid) {
  CDP_NEED(out, "cdp_person_tags");
  return With<Access::kRead>(engine, "cdp_person_tags", [&](const cdp::Engine& e) { return Put(out, e.PersonTags(oneid)); });
}

int32_t cdp_advance(cdp_buf* out, cdp_engine* engine, int64_t now_ms) {
  return With<Access::kWrite>(engine, "cdp_advance", [&](cdp::Engine& e) { return Put(out, e.Advance(now_ms)); });
}

namespace {
// The four audience queries differ only in the op. They take the write lock although they
// log nothing: compiling the expression interns the names it uses.
int32_t AudienceQuery(const char* fn, const char* op, cdp_buf* out, cdp_engine* engine, const char* request,
                      uint64_t len) {
  if (out == nullptr) return Fail(CDP_EMISUSE, std::string(fn) + ": out is NULL");
  return With<Access::kWrite>(engine, fn, [&](cdp::Engine& e) -> int32_t {
    if (request == nullptr && len != 0) return Fail(CDP_EMISUSE, std::string(fn) + ": request is NULL");
    return Put(out, e.Audience(op, View(request, len)));
  });
}
}  // namespace

int32_t cdp_audience_count(cdp_buf* out, cdp_engine* engine, const char* request, uint64_t len) {
  return AudienceQuery("cdp_audience_count", "count", out, engine, request, len);
}

int32_t cdp_audience_members(cdp_buf* out, cdp_engine* engine, const char* request, uint64_t len) {
  return AudienceQuery("cdp_audience_members", "members", out, engine, request, len);
}

int32_t cdp_audience_distribution(cdp_buf* out, cdp_engine* engine, const char* request, uint64_t len) {
  return AudienceQuery("cdp_audience_distribution", "distribution", out, engine, request, len);
}

int32_t cdp_audience_export(cdp_buf* out, cdp_engine* engine, const char* request, uint64_t len) {
  return AudienceQuery("cdp_audience_export", "export", out, engine, request, len);
}

int32_t cdp_audience_save(cdp_buf* out, cdp_engine* engine, const char* name, uint64_t name_len,
                          const char* request, uint64_t len) {
  return With<Access::kWrite>(engine, "cdp_audience_save", [&](cdp::Engine& e) -> int32_t {
    if (name == nullptr && name_len != 0) return Fail(CDP_EMISUSE, "cdp_audience_save: name is NULL");
    if (request == nullptr && len != 0) return Fail(CDP_EMISUSE, "cdp_audience_save: request is NULL");
    return Put(out, e.SaveAudience(View(name, name_len), View(request, len)));
  });
}

int32_t cdp_audience_drop(cdp_engine* engine, const char* name, uint64_t len) {
  return With<Access::kWrite>(engine, "cdp_audience_drop", [&](cdp::Engine& e) -> int32_t {
    if (name == nullptr && len != 0) return Fail(CDP_EMISUSE, "cdp_audience_drop: name is NULL");
    return FromStatus(e.DropAudience(View(name, len)));
  });
}

int32_t cdp_audiences_list(cdp_buf* out, cdp_engine* engine) {
  CDP_NEED(out, "cdp_audiences_list");
  return With<Access::kRead>(engine, "cdp_audiences_list", [&](const cdp::Engine& e) { return Put(out, e.AudiencesJson()); });
}

int32_t cdp_audience_recount(cdp_buf* out, cdp_engine* engine, const char* name, uint64_t len) {
  return With<Access::kWrite>(engine, "cdp_audience_recount", [&](cdp::Engine& e) -> int32_t {
    if (name == nullptr && len != 0) return Fail(CDP_EMISUSE, "cdp_audience_recount: name is NULL");
    return Put(out, e.RecountAudience(View(name, len)));
  });
}

int32_t cdp_metrics(cdp_buf* out, cdp_engine* engine, const char* request, uint64_t len) {
  CDP_NEED(out, "cdp_metrics");
  return With<Access::kWrite>(engine, "cdp_metrics", [&](cdp::Engine& e) -> int32_t {
    if (request == nullptr && len != 0) return Fail(CDP_EMISUSE, "cdp_metrics: request is NULL");
    return Put(out, e.Metrics(View(request, len)));
  });
}

// --- lifecycle ----------------------------------------------------------------------

int32_t cdp_lifecycle_define(cdp_buf* out, cdp_engine* engine, const char* json, uint64_t len) {
  return With<Access::kWrite>(engine, "cdp_lifecycle_define", [&](cdp::Engine& e) -> int32_t {
    if (json == nullptr && len != 0) return Fail(CDP_EMISUSE, "cdp_lifecycle_define: json is NULL");
    return Put(out, e.DefineLifecycle(View(json, len)));
  });
}

int32_t cdp_lifecycle_drop(cdp_engine* engine, const char* kind, uint64_t kind_len, const char* name,
                           uint64_t name_len) {
  return With<Access::kWrite>(engine, "cdp_lifecycle_drop", [&](cdp::Engine& e) -> int32_t {
    if (kind == nullptr && kind_len != 0) return Fail(CDP_EMISUSE, "cdp_lifecycle_drop: kind is NULL");
    if (name == nullptr && name_len != 0) return Fail(CDP_EMISUSE, "cdp_lifecycle_drop: name is NULL");
    return FromStatus(e.DropLifecycle(View(kind, kind_len), View(name, name_len)));
  });
}

int32_t cdp_lifecycle_list(cdp_buf* out, cdp_engine* engine) {
  CDP_NEED(out, "cdp_lifecycle_list");
  return With<Access::kRead>(engine, "cdp_lifecycle_list",
                             [&](const cdp::Engine& e) { return Put(out, e.LifecycleJson()); });
}

int32_t cdp_lifecycle_apply(cdp_buf* out, cdp_engine* engine, const char* json, uint64_t len) {
  return With<Access::kWrite>(engine, "cdp_lifecycle_apply", [&](cdp::Engine& e) -> int32_t {
    if (json == nullptr && len != 0) return Fail(CDP_EMISUSE, "cdp_lifecycle_apply: json is NULL");
    return Put(out, e.LifecycleApply(View(json, len)));
  });
}

int32_t cdp_person_lifecycle(cdp_buf* out, cdp_engine* engine, uint64_t oneid) {
  CDP_NEED(out, "cdp_person_lifecycle");
  return With<Access::kRead>(engine, "cdp_person_lifecycle",
                             [&](const cdp::Engine& e) { return Put(out, e.PersonLifecycle(oneid)); });
}

int32_t cdp_outbox_read(cdp_buf* out, cdp_engine* engine, uint64_t cursor, uint32_t limit) {
  CDP_NEED(out, "cdp_outbox_read");
  // A page of at least one, so a loop that passes "next" back always moves.
  limit = std::clamp<uint32_t>(limit, 1, 10000);
  return With<Access::kRead>(engine, "cdp_outbox_read",
                             [&](const cdp::Engine& e) { return Put(out, e.OutboxJson(cursor, limit)); });
}

int32_t cdp_outbox_ack(cdp_buf* out, cdp_engine* engine, const char* json, uint64_t len) {
  return With<Access::kWrite>(engine, "cdp_outbox_ack", [&](cdp::Engine& e) -> int32_t {
    if (json == nullptr && len != 0) return Fail(CDP_EMISUSE, "cdp_outbox_ack: json is NULL");
    return Put(out, e.AckIntents(View(json, len)));
  });
}

}  // extern "C"
