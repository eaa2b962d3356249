// cdp — a command-line tool over the cdpcore C API (cdp.h and nothing else).
//
// The engine lives in memory, so every command starts the same way: open a fresh engine,
// ingest the NDJSON files it was given, then answer from it. Results come from the
// library as JSON; a small reader below turns them into text, or --json prints them as
// one document.
#include <cdp.h>

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace {

enum Exit { kOk = 0, kUsage = 1, kFailed = 2, kNotFound = 3 };

struct Failure {
  int code;
  std::string message;
};
[[noreturn]] void fail(int code, std::string message) { throw Failure{code, std::move(message)}; }

// ---- A minimal JSON reader and writer, enough for the library's result documents. ----
// Numbers keep their text, so 64-bit OneIDs and cursors pass through exactly.
struct Json {
  enum Kind { Null, Bool, Number, String, Array, Object } kind = Null;
  std::string text;  // a string's value or a number's digits
  bool flag = false;
  std::vector<Json> items;                           // Array
  std::vector<std::pair<std::string, Json>> fields;  // Object, in document order

  Json() = default;
  explicit Json(Kind k, std::string t = {}) : kind(k), text(std::move(t)) {}

  const Json &operator[](std::string_view key) const {
    static const Json missing;
    for (auto &[k, v] : fields)
      if (k == key) return v;
    return missing;
  }
  Json &slot(std::string_view key, Kind k) {  // the field, added if missing
    for (auto &[name, v] : fields)
      if (name == key) return v;
    fields.emplace_back(std::string(key), Json(k, k == Number ? "0" : ""));
    return fields.back().second;
  }
  uint64_t u64() const { return kind == Number ? std::strtoull(text.c_str(), nullptr, 10) : 0; }
  bool has() const { return kind != Null; }
};

Json number(uint64_t n) { return Json(Json::Number, std::to_string(n)); }
Json string(std::string s) { return Json(Json::String, std::move(s)); }

class JsonReader {
 public:
  explicit JsonReader(std::string_view s) : s_(s) {}
  Json document() {
    Json v = value();
    skip_space();
    if (i_ != s_.size()) bad();
    return v;
  }

 private:
  std::string_view s_;
  size_t i_ = 0;

  [[noreturn]] void bad() {
    fail(kFailed, "cannot read the library's JSON at byte " + std::to_string(i_));
  }
  void skip_space() {
    while (i_ < s_.size() && std::string_view(" \t\r\n").find(s_[i_]) != std::string_view::npos) ++i_;
  }
  bool eat(char c) {
    skip_space();
    if (i_ < s_.size() && s_[i_] == c) return ++i_, true;
    return false;
  }
  void expect(char c) {
    if (!eat(c)) bad();
  }
  bool word(std::string_view w) {
    if (s_.substr(i_, w.size()) != w) return false;
    i_ += w.size();
    return true;
  }
  Json value() {
    skip_space();
    if (i_ >= s_.size()) bad();
    Json v;
    if (eat('{')) {
      v.kind = Json::Object;
      if (eat('}')) return v;
      do {
        std::string key = (skip_space(), quoted());
        expect(':');
        v.fields.emplace_back(std::move(key), value());
      } while (eat(','));
      expect('}');
    } else if (eat('[')) {
      v.kind = Json::Array;
      if (eat(']')) return v;
      do v.items.push_back(value());
      while (eat(','));
      expect(']');
    } else if (s_[i_] == '"') {
      v = string(quoted());
    } else if (word("true")) {
      v.kind = Json::Bool, v.flag = true;
    } else if (word("false")) {
      v.kind = Json::Bool;
    } else if (!word("null")) {
      size_t start = i_;
      while (i_ < s_.size() && std::string_view("+-.0123456789eE").find(s_[i_]) != std::string_view::npos) ++i_;
      if (i_ == start) bad();
      v = Json(Json::Number, std::string(s_.substr(start, i_ - start)));
    }
    return v;
  }
  unsigned hex4() {
    if (i_ + 4 > s_.size()) bad();
    unsigned u = 0;
    for (int k = 0; k < 4; ++k) {
      char c = s_[i_++];
      u = u * 16 + (c >= '0' && c <= '9' ? c - '0' : (c | 0x20) >= 'a' && (c | 0x20) <= 'f' ? (c | 0x20) - 'a' + 10 : (bad(), 0));
    }
    return u;
  }
  std::string quoted() {
    if (i_ >= s_.size() || s_[i_++] != '"') bad();
    std::string out;
    for (;;) {
      if (i_ >= s_.size()) bad();
      char c = s_[i_++];
      if (c == '"') return out;
      if (c != '\\') {
        out += c;
        continue;
      }
      if (i_ >= s_.size()) bad();
      switch (char e = s_[i_++]) {
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          unsigned cp = hex4();
          if (cp >= 0xD800 && cp < 0xDC00 && word("\\u")) cp = 0x10000 + ((cp - 0xD800) << 10) + (hex4() - 0xDC00);
          if (cp < 0x80) {
            out += char(cp);
          } else if (cp < 0x800) {
            out += char(0xC0 | cp >> 6), out += char(0x80 | (cp & 0x3F));
          } else if (cp < 0x10000) {
            out += char(0xE0 | cp >> 12), out += char(0x80 | (cp >> 6 & 0x3F)), out += char(0x80 | (cp & 0x3F));
          } else {
            out += char(0xF0 | cp >> 18), out += char(0x80 | (cp >> 12 & 0x3F));
            out += char(0x80 | (cp >> 6 & 0x3F)), out += char(0x80 | (cp & 0x3F));
          }
          break;
        }
        default: out += e;  // \" \\ \/
      }
    }
  }
};

void write_json(std::string &out, const Json &v) {
  switch (v.kind) {
    case Json::Null: out += "null"; break;
    case Json::Bool: out += v.flag ? "true" : "false"; break;
    case Json::Number: out += v.text; break;
    case Json::String:
      out += '"';
      for (unsigned char c : v.text) {
        if (c == '"' || c == '\\') {
          out += '\\', out += char(c);
        } else if (c < 0x20) {
          char esc[8];
          std::snprintf(esc, sizeof esc, "\\u%04x", c);
          out += esc;
        } else {
          out += char(c);
        }
      }
      out += '"';
      break;
    case Json::Array:
      out += '[';
      for (size_t i = 0; i < v.items.size(); ++i) (i ? out += ',' : out), write_json(out, v.items[i]);
      out += ']';
      break;
    case Json::Object:
      out += '{';
      for (size_t i = 0; i < v.fields.size(); ++i) {
        if (i) out += ',';
        write_json(out, string(v.fields[i].first));
        out += ':';
        write_json(out, v.fields[i].second);
      }
      out += '}';
      break;
  }
}

std::string to_json(const Json &v) {
  std::string s;
  write_json(s, v);
  return s;
}

// ---- The C API, wrapped just enough for RAII and exit codes. ----

// Turns a failed status into a Failure: not found is exit 3, anything else exit 2.
void check(int32_t rc, const std::string &what) {
  if (rc == CDP_OK) return;
  std::string detail = cdp_error_last();  // copy first: the next cdp_* call may reset it
  std::string message = what + ": " + cdp_status_str(rc);
  if (!detail.empty()) message += ": " + detail;
  fail(rc == CDP_ENOTFOUND ? kNotFound : kFailed, message);
}

struct Buf {
  cdp_buf b = CDP_BUF_INIT;
  Buf() = default;
  Buf(const Buf &) = delete;
  ~Buf() { cdp_buf_free(&b); }
  Json json() const { return JsonReader(std::string_view(b.ptr ? b.ptr : "", b.size)).document(); }
};

class Engine {
 public:
  // key: the bytes of --key-file, for a config that stores identifier types hashed.
  Engine(const std::string &config, const std::string &key) {
    check(key.empty() ? cdp_engine_open(&h_, config.data(), config.size(), nullptr)
                      : cdp_engine_open_keyed(&h_, config.data(), config.size(), nullptr, key.data(), key.size()),
          "cannot open the engine");
  }
  Engine(const Engine &) = delete;
  ~Engine() { cdp_engine_close(h_); }
  cdp_engine *get() const { return h_; }
  Json stats() const {
    Buf out;
    check(cdp_engine_stats(&out.b, h_), "engine stats");
    return out.json();
  }

 private:
  cdp_engine *h_ = nullptr;
};

// ---- Options ----

struct Options {
  bool json = false, mask = false, progress = false;
  std::string config_path, key_path, assign_path, now;
  uint64_t limit = 0;  // 0: no limit
  std::string defs_path;     // tag definitions (tags --define, audience --defs)
  std::string holdout;       // SALT:PERCENT
  std::string distribution;  // tag,tag
  uint64_t members = 10;     // members listed by audience
  std::vector<std::string> life_defs;  // lifecycle --define, in order
  std::string step = "1d", from, until;  // lifecycle's simulated time
  std::vector<std::string> args;  // identifiers first, then files
};

std::string read_file(const std::string &path) {
  FILE *f = path == "-" ? stdin : std::fopen(path.c_str(), "rb");
  if (!f) fail(kFailed, path + ": " + std::strerror(errno));
  std::string data;
  char chunk[1 << 16];
  for (size_t n; (n = std::fread(chunk, 1, sizeof chunk, f)) > 0;) data.append(chunk, n);
  bool err = std::ferror(f);
  if (f != stdin) std::fclose(f);
  if (err) fail(kFailed, path + ": read error");
  return data;
}

// ---- Ingestion: files in batches split on line boundaries ----

constexpr size_t kBatchBytes = 16u << 20;
constexpr size_t kBatchLines = 64u << 10;

struct Ingested {
  std::vector<std::string> files;
  Json totals{Json::Object};  // the batch reports' counts, summed, in the report's shape
  Json errors{Json::Array};   // {"file","line","field","message"}, line numbers per file
  Json feed{Json::Object};    // {"from","to"} over all batches
  std::vector<std::vector<uint64_t>> assign;  // per file, per line; 0: none
  bool merged_after_first_batch = false;
  size_t batches = 0;
  uint64_t lines = 0;  // every line, blank ones too (the report's "lines" skips those)
  double seconds = 0;
};

// Adds the counts of one batch report into the totals, recursively, so the totals keep
// the report's own shape ("ids":{"rejected":{"blocked":N}} and all).
void accumulate(Json &total, const Json &part) {
  for (auto &[key, v] : part.fields) {
    if (key == "errors" || key == "assign" || key == "feed" || key == "record_base") continue;  // not counts
    if (v.kind == Json::Number) {
      Json &t = total.slot(key, Json::Number);
      t.text = std::to_string(t.u64() + v.u64());
    } else if (v.kind == Json::Object) {
      accumulate(total.slot(key, Json::Object), v);
    }
  }
}

// Where the next batch ends: after at most kBatchLines lines and kBatchBytes bytes, on a
// line boundary. A single line longer than kBatchBytes goes alone (the engine judges it).
size_t batch_end(std::string_view buf, bool eof) {
  size_t cut = 0, lines = 0;
  for (size_t p = buf.find('\n'); p != std::string_view::npos && lines < kBatchLines; p = buf.find('\n', p + 1)) {
    if (p >= kBatchBytes && cut > 0) break;
    cut = p + 1, ++lines;
  }
  bool tail_only = eof && buf.find('\n', cut) == std::string_view::npos;  // a last line without '\n'
  if (tail_only && (cut == 0 || (buf.size() <= kBatchBytes && lines < kBatchLines))) cut = buf.size();
  return cut;
}

class Ingester {
 public:
  // On a terminal, long ingests (over half a second) get a progress line, rewritten in
  // place. With --progress every batch gets one, as a line of its own when stderr is a
  // file or a pipe (a log keeps them).
  Ingester(Engine &e, Ingested &out, bool assign, bool forced)
      : e_(e), out_(out), assign_(assign), tty_(isatty(STDERR_FILENO)), forced_(forced) {}
  ~Ingester() {
    if (shown_ && tty_) std::fputs("\r\033[K", stderr);  // clear the progress line
  }

  void file(const std::string &path) {
    out_.files.push_back(path);
    if (assign_) out_.assign.emplace_back();
    FILE *f = path == "-" ? stdin : std::fopen(path.c_str(), "rb");
    if (!f) fail(kFailed, path + ": " + std::strerror(errno));
    std::string buf;
    bool eof = false;
    uint64_t line_base = 0;  // lines of this file before the current batch
    for (;;) {
      // Fill to the batch size, and beyond only while the buffer holds no whole line.
      while (!eof && (buf.size() < kBatchBytes || buf.find('\n') == std::string::npos)) {
        size_t old = buf.size(), want = 1 << 20;
        buf.resize(old + want);
        size_t n = std::fread(buf.data() + old, 1, want, f);
        buf.resize(old + n);
        if (n == 0) eof = true;
      }
      if (std::ferror(f)) fail(kFailed, path + ": read error");
      if (buf.empty()) break;
      size_t cut = batch_end(buf, eof);
      line_base += batch(path, std::string_view(buf).substr(0, cut), line_base);
      buf.erase(0, cut);
    }
    if (f != stdin) std::fclose(f);
  }

 private:
  Engine &e_;
  Ingested &out_;
  bool assign_, tty_, forced_, shown_ = false;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();

  // Ingests one batch; returns its number of lines.
  uint64_t batch(const std::string &path, std::string_view data, uint64_t line_base) {
    uint64_t lines = 0;
    for (char c : data) lines += c == '\n';
    if (!data.empty() && data.back() != '\n') ++lines;

    Buf report_buf;
    check(cdp_ingest_ndjson(&report_buf.b, e_.get(), data.data(), data.size(), assign_ ? CDP_INGEST_ASSIGN : 0),
          path + ": ingest (lines " + std::to_string(line_base + 1) + "-" + std::to_string(line_base + lines) + ")");
    Json report = report_buf.json();

    accumulate(out_.totals, report);
    for (const Json &err : report["errors"].items) {
      Json e{Json::Object};
      e.fields = {{"file", string(path)}, {"line", number(line_base + err["line"].u64())},
                  {"field", err["field"]}, {"message", err["message"]}};
      out_.errors.items.push_back(std::move(e));
    }
    if (!out_.feed["from"].has()) out_.feed.slot("from", Json::Number) = report["feed"]["from"];
    out_.feed.slot("to", Json::Number) = report["feed"]["to"];
    if (out_.batches++ > 0 && report["merges"].u64() > 0) out_.merged_after_first_batch = true;

    if (assign_) {
      const auto &ids = report["assign"].items;
      if (ids.size() != lines)
        fail(kFailed, path + ": the engine assigned " + std::to_string(ids.size()) + " OneIDs to a batch of " +
                          std::to_string(lines) + " lines");
      for (const Json &id : ids) out_.assign.back().push_back(id.u64());
    }

    out_.lines += lines;
    out_.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    if (forced_ || (tty_ && out_.seconds > 0.5)) {
      std::fprintf(stderr, "%s%s: %llu lines, %.0f records/s%s", tty_ ? "\r" : "", path.c_str(),
                   (unsigned long long)out_.lines, out_.seconds > 0 ? out_.lines / out_.seconds : 0.0,
                   tty_ ? "\033[K" : "\n");
      shown_ = true;
    }
    return lines;
  }
};

std::string config_of(const Options &o) { return o.config_path.empty() ? "" : read_file(o.config_path); }
std::string key_of(const Options &o) { return o.key_path.empty() ? "" : read_file(o.key_path); }

Ingested ingest_all(Engine &e, const Options &o, bool assign) {
  if (o.args.empty()) fail(kUsage, "no input files (use - for standard input)");
  Ingested in;
  Ingester ingester(e, in, assign, o.progress);
  for (const auto &f : o.args) ingester.file(f);
  return in;
}

// ---- Text formatting ----

std::string date(uint64_t ms) {
  std::time_t t = std::time_t(ms / 1000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char s[32];
  std::strftime(s, sizeof s, "%Y-%m-%d %H:%MZ", &tm);
  return s;
}

// One value in a line of text: strings bare, times as dates, the rest as compact JSON.
std::string brief(std::string_view key, const Json &v) {
  if (v.kind == Json::String) return v.text;
  if (v.kind == Json::Number && (key == "ts" || key.ends_with("_seen"))) return date(v.u64());
  if (v.kind == Json::Array) {
    std::string s;
    for (const Json &item : v.items) s += (s.empty() ? "" : ", ") + brief(key, item);
    return s;
  }
  if (v.kind == Json::Object) {
    std::string s;
    for (auto &[k, x] : v.fields) s += (s.empty() ? "" : " ") + k + "=" + brief(k, x);
    return "(" + s + ")";
  }
  return to_json(v);
}

// A link of evidence: "mobile:138... ~ unionid:o6... (crm record 330, 2024-01-06 03:00Z)".
std::string link_text(const Json &l, bool with_time = true) {
  std::string how = l["source"].text;
  if (l["record"].has()) how += " record " + l["record"].text;
  if (l["rule"].has() && l["rule"].text != "record") how += ", rule " + brief("rule", l["rule"]);
  if (with_time && l["ts"].has()) how += ", " + date(l["ts"].u64());
  if (l["count"].u64() > 1) how += ", seen " + l["count"].text + " times";
  for (auto &[k, v] : l.fields)
    if (k != "from" && k != "to" && k != "source" && k != "record" && k != "rule" && k != "ts" && k != "count")
      how += ", " + k + " " + brief(k, v);
  return l["from"].text + " ~ " + l["to"].text + "  (" + how + ")";
}

// One change-feed event on one line, its evidence on the next.
void print_event(const Json &ev) {
  const std::string &kind = ev["kind"].text;
  std::string head = kind;
  std::vector<std::string_view> shown = {"seq", "kind", "ts", "record", "evidence"};
  if (kind == "merged") {
    head = "OneID " + ev["survivor"].text + " absorbed " + ev["absorbed"].text;
    shown.insert(shown.end(), {"survivor", "absorbed"});
  } else if (kind == "conflict") {
    head = ev["reason"].text + (ev["type"].has() ? " (" + ev["type"].text + ")" : "") + " kept OneIDs " +
           brief("", ev["oneids"]) + " apart";
    shown.insert(shown.end(), {"reason", "type", "oneids"});
  } else if (kind == "identifier_quarantined") {
    head = ev["identifier"].text + " quarantined, detached from OneID " + ev["from"].text;
    shown.insert(shown.end(), {"identifier", "from"});
  }
  for (auto &[k, v] : ev.fields)  // whatever else the event carries
    if (std::find(shown.begin(), shown.end(), k) == shown.end()) head += "  " + k + "=" + brief(k, v);
  std::printf("#%-5s %s  %s\n", ev["seq"].text.c_str(), ev["ts"].has() ? date(ev["ts"].u64()).c_str() : "", head.c_str());
  if (ev["evidence"].has()) std::printf("       by %s\n", link_text(ev["evidence"], false).c_str());
}

void print_person(const Json &p) {
  std::printf("OneID %s  %llu identifier%s", p["oneid"].text.c_str(), (unsigned long long)p["size"].u64(),
              p["size"].u64() == 1 ? "" : "s");
  if (p["first_seen"].has()) std::printf(", first seen %s", date(p["first_seen"].u64()).c_str());
  if (p["last_seen"].has()) std::printf(", last seen %s", date(p["last_seen"].u64()).c_str());
  std::printf("\n");
  for (const Json &id : p["identifiers"].items) {
    std::printf("    %-16s %-36s %-6s", id["type"].text.c_str(), id["value"].text.c_str(), id["trust"].text.c_str());
    if (id["first_seen"].has()) std::printf("  since %s", date(id["first_seen"].u64()).substr(0, 10).c_str());
    std::printf("%s\n", id["quarantined"].flag ? "  [quarantined]" : "");
  }
  if (!p["attributes"].fields.empty()) std::printf("  attributes\n");
  for (const auto &[name, a] : p["attributes"].fields)
    std::printf("    %-16s %-24s from %s, %s (%s)\n", name.c_str(), brief("", a["value"]).c_str(),
                a["source"].text.c_str(), date(a["ts"].u64()).c_str(), a["rule"].text.c_str());
  if (!p["events"].fields.empty()) std::printf("  events\n");
  for (const auto &[type, ev] : p["events"].fields)
    std::printf("    %-16s %6llu  amount %-12s %s .. %s\n", type.c_str(), (unsigned long long)ev["count"].u64(),
                ev["amount"].text.c_str(), date(ev["first"].u64()).substr(0, 10).c_str(),
                date(ev["last"].u64()).substr(0, 10).c_str());
}

void print_totals(const Ingested &in, const Json &stats) {
  const Json &t = in.totals;
  std::printf("Ingested %zu file%s, %llu line%s in %.2f s\n", in.files.size(), in.files.size() == 1 ? "" : "s",
              (unsigned long long)in.lines, in.lines == 1 ? "" : "s", in.seconds);
  std::printf("  records       %llu accepted, %llu rejected\n", (unsigned long long)t["accepted"].u64(),
              (unsigned long long)t["rejected"].u64());
  // Rejected identifiers: a count with "by_reason" beside it, or an object of reasons.
  const Json &rejected = t["ids"]["rejected"];
  const Json &by_reason = rejected.kind == Json::Object ? rejected : t["ids"]["by_reason"];
  uint64_t rejected_ids = rejected.u64();
  std::string reasons;
  for (auto &[reason, n] : by_reason.fields) {
    if (rejected.kind == Json::Object) rejected_ids += n.u64();
    if (n.u64()) reasons += (reasons.empty() ? " (" : ", ") + reason + " " + n.text;
  }
  std::printf("  identifiers   %llu accepted, %llu rejected%s\n", (unsigned long long)t["ids"]["accepted"].u64(),
              (unsigned long long)rejected_ids, reasons.empty() ? "" : (reasons + ")").c_str());
  if (!t["unknown_types"].fields.empty())
    std::printf("  unknown types %s\n", brief("", t["unknown_types"]).c_str());
  std::printf("  persons       %llu (%llu created, %llu merges)\n", (unsigned long long)stats["persons"].u64(),
              (unsigned long long)t["persons_created"].u64(), (unsigned long long)t["merges"].u64());
  std::printf("  conflicts     %llu\n  quarantined   %llu\n", (unsigned long long)t["conflicts"].u64(),
              (unsigned long long)t["quarantined"].u64());
  if (in.errors.items.empty()) return;
  std::printf("Rejected lines:\n");
  constexpr size_t kShown = 100;  // a terminal's worth; --json lists them all
  for (size_t i = 0; i < in.errors.items.size() && i < kShown; ++i) {
    const Json &e = in.errors.items[i];
    std::printf("  %s:%s: %s: %s\n", e["file"].text.c_str(), e["line"].text.c_str(), e["field"].text.c_str(),
                e["message"].text.c_str());
  }
  if (uint64_t shown = std::min(in.errors.items.size(), kShown); shown < t["rejected"].u64())
    std::printf("  ... and %llu more (--json lists them, up to 1000 per batch)\n",
                (unsigned long long)(t["rejected"].u64() - shown));
}

// Splits "TYPE:VALUE" at the first colon (types never hold one; values may).
std::pair<std::string, std::string> identifier(const std::string &arg) {
  size_t colon = arg.find(':');
  if (colon == std::string::npos || colon == 0) fail(kUsage, "expected TYPE:VALUE, got '" + arg + "'");
  return {arg.substr(0, colon), arg.substr(colon + 1)};
}

// Takes the leading identifier arguments off the positionals; the rest are files.
std::vector<std::pair<std::string, std::string>> take_identifiers(Options &o, size_t n) {
  if (o.args.size() < n) fail(kUsage, "expected " + std::to_string(n) + " TYPE:VALUE argument" + (n > 1 ? "s" : ""));
  std::vector<std::pair<std::string, std::string>> ids;
  for (size_t i = 0; i < n; ++i) ids.push_back(identifier(o.args[i]));
  o.args.erase(o.args.begin(), o.args.begin() + n);
  return ids;
}

// ---- Commands ----

int cmd_ingest(Options &o) {
  Engine e(config_of(o), key_of(o));
  Ingested in = ingest_all(e, o, !o.assign_path.empty());

  if (!o.assign_path.empty()) {
    // Each batch's OneIDs are those at the end of that batch; a later batch may have
    // merged one away. Absorbed OneIDs redirect forever, so ask for the survivor.
    std::unordered_map<uint64_t, uint64_t> survivor;
    if (in.merged_after_first_batch)
      for (auto &lines : in.assign)
        for (uint64_t id : lines)
          if (id && !survivor.contains(id)) {
            Buf p;
            check(cdp_person_identifiers(&p.b, e.get(), id, 0), "person " + std::to_string(id));
            survivor[id] = p.json()["oneid"].u64();
          }
    FILE *f = std::fopen(o.assign_path.c_str(), "wb");
    if (!f) fail(kFailed, o.assign_path + ": " + std::strerror(errno));
    bool several = in.files.size() > 1;  // several files: the file name is the first column
    for (size_t file = 0; file < in.assign.size(); ++file)
      for (size_t line = 0; line < in.assign[file].size(); ++line) {
        uint64_t id = in.assign[file][line];
        if (auto it = survivor.find(id); it != survivor.end()) id = it->second;
        if (several) std::fprintf(f, "%s\t", in.files[file].c_str());
        std::fprintf(f, "%zu\t", line + 1);
        if (id) std::fprintf(f, "%llu", (unsigned long long)id);
        std::fputc('\n', f);
      }
    if (std::fclose(f) != 0) fail(kFailed, o.assign_path + ": write error");
  }

  Json stats = e.stats();
  if (o.json) {
    Json doc{Json::Object}, files{Json::Array};
    for (auto &f : in.files) files.items.push_back(string(f));
    Json report = in.totals;
    report.fields.emplace_back("errors", in.errors);
    report.fields.emplace_back("feed", in.feed);
    doc.fields = {{"files", files}, {"report", report}, {"stats", stats}};
    if (!o.assign_path.empty()) doc.fields.emplace_back("assign", string(o.assign_path));
    std::printf("%s\n", to_json(doc).c_str());
  } else {
    print_totals(in, stats);
    if (!o.assign_path.empty()) std::printf("OneIDs per line written to %s\n", o.assign_path.c_str());
  }
  return kOk;
}

int cmd_persons(Options &o) {
  Engine e(config_of(o), key_of(o));
  ingest_all(e, o, false);
  Json all{Json::Array};
  uint64_t cursor = 0, shown = 0;
  do {
    Buf page_buf;
    uint32_t page_size = o.limit && o.limit < 1000 ? uint32_t(o.limit) : 1000;
    check(cdp_persons_page(&page_buf.b, e.get(), cursor, page_size, o.mask ? CDP_MASK : 0), "list persons");
    Json page = page_buf.json();
    for (Json &p : page.slot("persons", Json::Array).items) {
      if (o.limit && shown == o.limit) break;
      ++shown;
      o.json ? all.items.push_back(std::move(p)) : print_person(p);
    }
    cursor = page["next"].u64();
  } while (cursor != 0 && !(o.limit && shown == o.limit));
  uint64_t persons = e.stats()["persons"].u64();
  if (o.json) {
    Json doc{Json::Object};
    doc.fields = {{"persons", std::move(all)}, {"total", number(persons)}};
    std::printf("%s\n", to_json(doc).c_str());
  } else {
    std::printf("(%llu of %llu persons)\n", (unsigned long long)shown, (unsigned long long)persons);
  }
  return kOk;
}

// merges, conflicts, quarantined: the change feed from the start, one kind of event.
int feed_command(Options &o, std::string_view kind) {
  Engine e(config_of(o), key_of(o));
  ingest_all(e, o, false);
  Json events{Json::Array};
  uint64_t cursor = 0, total = 0;
  for (;;) {
    Buf out;
    check(cdp_feed_read(&out.b, e.get(), cursor, 10000), "read the change feed");
    Json page = out.json();
    const Json &list = page["events"];
    if (list.items.empty() || page["next"].u64() <= cursor) break;
    for (const Json &ev : list.items)
      if (ev["kind"].text == kind && (++total, !o.limit || events.items.size() < o.limit)) events.items.push_back(ev);
    cursor = page["next"].u64();
  }
  if (o.json) {
    Json doc{Json::Object};
    doc.fields = {{"events", std::move(events)}, {"total", number(total)}};
    std::printf("%s\n", to_json(doc).c_str());
    return kOk;
  }
  for (const Json &ev : events.items) print_event(ev);
  std::printf("(%zu of %llu %s events)\n", events.items.size(), (unsigned long long)total, std::string(kind).c_str());
  return kOk;
}

int cmd_merges(Options &o) { return feed_command(o, "merged"); }
int cmd_conflicts(Options &o) { return feed_command(o, "conflict"); }
int cmd_quarantined(Options &o) { return feed_command(o, "identifier_quarantined"); }

int cmd_explain(Options &o) {
  auto ids = take_identifiers(o, 2);
  Engine e(config_of(o), key_of(o));
  ingest_all(e, o, false);
  auto &[ta, va] = ids[0];
  auto &[tb, vb] = ids[1];
  Buf out;
  check(cdp_explain(&out.b, e.get(), ta.data(), ta.size(), va.data(), va.size(), tb.data(), tb.size(), vb.data(),
                    vb.size()),
        "explain " + ta + ":" + va + " " + tb + ":" + vb);
  Json x = out.json();
  if (o.json) return std::printf("%s\n", to_json(x).c_str()), kOk;
  std::string a = ta + ":" + va, b = tb + ":" + vb;
  if (x["linked"].flag) {
    std::printf("%s and %s are one person, OneID %s. Evidence:\n", a.c_str(), b.c_str(), x["oneid"].text.c_str());
    for (const Json &step : x["path"].items) std::printf("  %s\n", link_text(step).c_str());
  } else {
    std::printf("%s and %s are different persons (OneIDs %s).\n", a.c_str(), b.c_str(),
                brief("", x["oneids"]).c_str());
    const Json &why = x["kept_apart_by"];
    if (!why.has()) {
      std::printf("No rule kept them apart: no evidence links them.\n");
    } else {
      std::string rule = why["reason"].text;
      for (auto &[k, v] : why.fields)
        if (k != "reason" && k != "evidence") rule += ", " + k + " " + brief(k, v);
      std::printf("Kept apart by %s.\n", rule.c_str());
      if (why["evidence"].has()) std::printf("  refused: %s\n", link_text(why["evidence"]).c_str());
    }
  }
  return kOk;
}

uint64_t resolve(const Engine &e, const std::pair<std::string, std::string> &id) {
  auto &[type, value] = id;
  uint64_t oneid = 0;
  check(cdp_resolve(&oneid, e.get(), type.data(), type.size(), value.data(), value.size()),
        "resolve " + type + ":" + value);
  return oneid;
}

int cmd_resolve(Options &o) {
  auto ids = take_identifiers(o, 1);
  Engine e(config_of(o), key_of(o));
  ingest_all(e, o, false);
  uint64_t oneid = resolve(e, ids[0]);
  if (o.json)
    std::printf("{\"type\":%s,\"value\":%s,\"oneid\":%llu}\n", to_json(string(ids[0].first)).c_str(),
                to_json(string(ids[0].second)).c_str(), (unsigned long long)oneid);
  else
    std::printf("%llu\n", (unsigned long long)oneid);
  return kOk;
}

int cmd_person(Options &o) {
  auto ids = take_identifiers(o, 1);
  Engine e(config_of(o), key_of(o));
  ingest_all(e, o, false);
  Buf out;
  check(cdp_person_get(&out.b, e.get(), resolve(e, ids[0]), o.mask ? CDP_MASK : 0), "read the person");
  Json p = out.json();
  o.json ? (void)std::printf("%s\n", to_json(p).c_str()) : print_person(p);
  return kOk;
}

// A time as epoch ms: digits alone are epoch milliseconds; otherwise ISO-8601,
// "2024-03-01T10:00[:00[.250]][Z|+08:00|+0800]", where a missing offset (and a bare date,
// which is midnight) means UTC+8, the engine's default zone. False when s is neither.
bool parse_time(std::string_view s, int64_t &ms) {
  if (s.empty()) return false;
  size_t i = 0;
  auto digits = [&](size_t n, int &out) {
    if (i + n > s.size()) return false;
    out = 0;
    for (size_t k = 0; k < n; ++k, ++i) {
      if (s[i] < '0' || s[i] > '9') return false;
      out = out * 10 + (s[i] - '0');
    }
    return true;
  };
  auto eat = [&](char c) { return i < s.size() && s[i] == c ? (++i, true) : false; };
  if (s.find_first_not_of("0123456789") == std::string_view::npos) {
    if (s.size() > 18) return false;
    ms = std::strtoll(std::string(s).c_str(), nullptr, 10);
    return true;
  }
  int y, mo, d, h = 0, mi = 0, se = 0, frac = 0, oh = 8, om = 0, sign = 1;
  if (!digits(4, y) || !eat('-') || !digits(2, mo) || !eat('-') || !digits(2, d)) return false;
  if (eat('T') || eat(' ')) {
    if (!digits(2, h) || !eat(':') || !digits(2, mi)) return false;
    if (eat(':') && !digits(2, se)) return false;
    if (eat('.')) {  // milliseconds: the first three digits count
      size_t start = i;
      while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i;
      if (i == start) return false;
      std::string f(s.substr(start, std::min<size_t>(3, i - start)));
      f.resize(3, '0');
      frac = std::atoi(f.c_str());
    }
    if (eat('Z')) {
      oh = om = 0;
    } else if (i < s.size() && (s[i] == '+' || s[i] == '-')) {
      sign = s[i++] == '-' ? -1 : 1;
      if (!digits(2, oh)) return false;
      eat(':');
      if (!digits(2, om)) return false;
    }
  }
  if (i != s.size() || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || se > 60) return false;
  // Days from civil (proleptic Gregorian).
  int yy = y - (mo <= 2);
  int era = (yy >= 0 ? yy : yy - 399) / 400;
  int yoe = yy - era * 400, doy = (153 * (mo + (mo > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  long long days = era * 146097LL + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719468;
  long long offset = (oh * 3600LL + om * 60) * sign;
  ms = ((days * 86400 + h * 3600 + mi * 60 + se) - offset) * 1000 + frac;
  return true;
}

// An option's time: epoch ms or 2024-03-01T10:00:00+08:00 ("2024-03-01" is midnight UTC+8).
int64_t parse_option_time(const char *option, const std::string &s) {
  int64_t ms;
  if (!parse_time(s, ms)) fail(kUsage, std::string(option) + ": expected epoch ms or 2024-03-01T10:00:00+08:00");
  return ms;
}

int64_t parse_now(const std::string &s) { return parse_option_time("--now", s); }

int cmd_eval(Options &o) {
  if (o.args.size() < 2) fail(kUsage, "expected EXPRESSION and TYPE:VALUE");
  if (o.now.empty()) fail(kUsage, "eval needs --now (the engine never reads the clock)");
  std::string text = o.args[0];
  o.args.erase(o.args.begin());
  auto ids = take_identifiers(o, 1);
  Engine e(config_of(o), key_of(o));
  ingest_all(e, o, false);
  cdp_expr *x = nullptr;
  check(cdp_expr_compile(&x, e.get(), text.data(), text.size(), 0), "compile the expression");
  Buf out;
  int32_t rc = cdp_expr_eval(&out.b, x, resolve(e, ids[0]), parse_now(o.now));
  cdp_expr_free(x);
  check(rc, "evaluate");
  Json r = out.json();
  if (o.json) {
    std::printf("%s\n", to_json(r).c_str());
  } else {
    std::printf("%s (%s)", r["value"].kind == Json::String ? r["value"].text.c_str() : to_json(r["value"]).c_str(),
                r["kind"].text.c_str());
    if (r["valid_until"].has()) std::printf(", valid until %s", date(r["valid_until"].u64()).c_str());
    std::printf("\n");
  }
  return kOk;
}

// ---- Tags and audiences ----

Json number_text(std::string digits) { return Json(Json::Number, std::move(digits)); }

// Defines the tags of --define/--defs at the clock --now sets (else the newest record's
// time), after the files are ingested: every tag is evaluated once, for every person.
// Returns the definition report (null without definitions).
Json define_tags(const Engine &e, const Options &o) {
  if (!o.now.empty()) {
    Buf out;
    check(cdp_advance(&out.b, e.get(), parse_now(o.now)), "--now");
  }
  if (o.defs_path.empty()) return Json();
  std::string defs = read_file(o.defs_path);
  Buf out;
  check(cdp_tags_define(&out.b, e.get(), defs.data(), defs.size()), o.defs_path);
  return out.json();
}

// One cdp_audience_* query with a request built from fields.
Json audience_query(const Engine &e, int32_t (*query)(cdp_buf *, cdp_engine *, const char *, uint64_t),
                    const char *what, std::vector<std::pair<std::string, Json>> fields) {
  Json req{Json::Object};
  req.fields = std::move(fields);
  std::string text = to_json(req);
  Buf out;
  check(query(&out.b, e.get(), text.data(), text.size()), what);
  return out.json();
}

// "tmall 30, jd 10, 3 others, 1 without": a tag's distribution on one line.
std::string values_text(const Json &d) {
  std::string s;
  for (const Json &v : d["values"].items)
    s += (s.empty() ? "" : ", ") + brief("", v["value"]) + " " + v["count"].text;
  if (d["other"].u64()) s += (s.empty() ? "" : ", ") + d["other"].text + " other";
  if (d["none"].u64()) s += (s.empty() ? "" : ", ") + d["none"].text + " without";
  return s.empty() ? "-" : s;
}

int cmd_tags(Options &o) {
  if (o.defs_path.empty()) fail(kUsage, "tags needs --define DEFS.json");
  Engine e(config_of(o), key_of(o));
  ingest_all(e, o, false);
  Json defined = define_tags(e, o);
  Buf list;
  check(cdp_tags_list(&list.b, e.get()), "list the tags");
  Json catalogue = list.json();
  Json names{Json::Array};
  for (const Json &t : catalogue["tags"].items) names.items.push_back(t["name"]);
  Json dist;
  if (!names.items.empty())
    dist = audience_query(e, cdp_audience_distribution, "tag distribution",
                          {{"expr", string("true")}, {"tags", names}, {"top", number(3)}});
  if (o.json) {
    Json doc{Json::Object};
    doc.fields = {{"defined", defined["defined"]}, {"tags", catalogue["tags"]}, {"distribution", dist}};
    std::printf("%s\n", to_json(doc).c_str());
    return kOk;
  }
  std::printf("%zu tag%s over %llu persons\n", names.items.size(), names.items.size() == 1 ? "" : "s",
              (unsigned long long)dist["count"].u64());
  std::printf("  %-16s %-10s %-9s %8s  %s\n", "name", "kind", "type", "persons", "top values");
  for (const Json &t : catalogue["tags"].items)
    std::printf("  %-16s %-10s %-9s %8s  %s\n", t["name"].text.c_str(), t["kind"].text.c_str(),
                t["type"].text.c_str(), t["persons"].text.c_str(),
                values_text(dist["tags"][t["name"].text]).c_str());
  return kOk;
}

int cmd_audience(Options &o) {
  if (o.args.empty()) fail(kUsage, "expected an EXPRESSION");
  std::string expr = o.args[0];
  o.args.erase(o.args.begin());
  std::vector<std::pair<std::string, Json>> base = {{"expr", string(expr)}};
  if (!o.holdout.empty()) {
    size_t colon = o.holdout.rfind(':');
    std::string pct = colon == std::string::npos ? "" : o.holdout.substr(colon + 1);
    char *end = nullptr;
    double p = std::strtod(pct.c_str(), &end);
    if (colon == 0 || colon == std::string::npos || pct.empty() || *end || !(p >= 0 && p <= 100))
      fail(kUsage, "--holdout: expected SALT:PERCENT, e.g. spring-sale:10");
    Json h{Json::Object};
    h.fields = {{"salt", string(o.holdout.substr(0, colon))}, {"percent", number_text(pct)}};
    base.emplace_back("holdout", std::move(h));
  }
  Engine e(config_of(o), key_of(o));
  ingest_all(e, o, false);
  define_tags(e, o);

  Json count = audience_query(e, cdp_audience_count, "count the audience", base);
  // The distribution over the tags asked for, else over every tag defined.
  Json names{Json::Array};
  if (!o.distribution.empty()) {
    for (size_t from = 0; from <= o.distribution.size();) {
      size_t comma = std::min(o.distribution.find(',', from), o.distribution.size());
      if (comma > from) names.items.push_back(string(o.distribution.substr(from, comma - from)));
      from = comma + 1;
    }
  } else {
    Buf list;
    check(cdp_tags_list(&list.b, e.get()), "list the tags");
    Json catalogue = list.json();
    for (const Json &t : catalogue["tags"].items) names.items.push_back(t["name"]);
  }
  Json dist;
  if (!names.items.empty()) {
    auto req = base;
    req.emplace_back("tags", names);
    req.emplace_back("top", number(5));
    dist = audience_query(e, cdp_audience_distribution, "distribution", std::move(req));
  }
  Json members{Json::Array};
  if (o.members > 0) {
    auto req = base;
    req.emplace_back("limit", number(o.members));
    Json page = audience_query(e, cdp_audience_members, "members", std::move(req));
    for (const Json &m : page["members"].items) {
      Buf p;
      check(cdp_person_identifiers(&p.b, e.get(), m["oneid"].u64(), o.mask ? CDP_MASK : 0), "read a member");
      Json person = p.json();
      if (m["holdout"].has()) person.fields.emplace_back("holdout", m["holdout"]);
      members.items.push_back(std::move(person));
    }
  }
  if (o.json) {
    Json doc{Json::Object};
    doc.fields = {{"expr", string(expr)}, {"count", count}, {"distribution", dist}, {"members", members}};
    std::printf("%s\n", to_json(doc).c_str());
    return kOk;
  }
  std::printf("%s persons at %s", count["count"].text.c_str(), date(count["now"].u64()).c_str());
  if (count["holdout"].has())
    std::printf(": %s target, %s holdout", count["target"].text.c_str(), count["holdout"].text.c_str());
  const Json &plan = count["plan"];
  std::printf("\n  %s condition%s from tag indexes, %s evaluated per person (%s evaluations)\n",
              plan["indexed_leaves"].text.c_str(), plan["indexed_leaves"].u64() == 1 ? "" : "s",
              plan["scanned_leaves"].text.c_str(), plan["persons_evaluated"].text.c_str());
  if (dist.has()) {
    std::printf("Distribution:\n");
    for (const auto &[name, d] : dist["tags"].fields)
      std::printf("  %-16s %s\n", name.c_str(), values_text(d).c_str());
  }
  if (!members.items.empty()) {
    std::printf("Members (first %zu):\n", members.items.size());
    for (const Json &p : members.items) {
      std::string ids;
      for (const Json &id : p["identifiers"].items)
        ids += (ids.empty() ? "" : ", ") + id["type"].text + ":" + id["value"].text;
      std::printf("  OneID %-20s %s%s\n", p["oneid"].text.c_str(), ids.c_str(),
                  p["holdout"].flag ? "  [holdout]" : "");
    }
  }
  return kOk;
}

// ---- Lifecycle: a replay in simulated time ----

// "1d", "12h", "30m", "45s", "500ms", "1w" as milliseconds.
int64_t parse_step(const std::string &s) {
  char *end = nullptr;
  long long n = std::strtoll(s.c_str(), &end, 10);
  std::string_view unit(end);
  long long scale = unit == "ms" ? 1 : unit == "s" ? 1000 : unit == "m" ? 60000 : unit == "h" ? 3600000
                  : unit == "d" ? 86400000 : unit == "w" ? 7 * 86400000LL : 0;
  if (end == s.c_str() || n <= 0 || scale == 0 || n > 36600LL * 86400000 / scale)
    fail(kUsage, "--step: expected a positive duration such as 1d, 12h, 30m, 45s or 1w");
  return n * scale;
}

// One input line and where it came from.
struct Line {
  int64_t ts;  // the record's time; INT64_MIN when it has none the tool can read
  uint32_t file;
  uint64_t number;  // 1-based in its file
  std::string_view text;
};

// The record's "ts" as epoch ms, or INT64_MIN when the line is not a record with a time
// (the engine then rejects it, with its own message).
int64_t record_time(std::string_view line) {
  int64_t ms;
  try {
    Json r = JsonReader(line).document();
    const Json &ts = r["ts"];
    if ((ts.kind == Json::Number || ts.kind == Json::String) && parse_time(ts.text, ms)) return ms;
  } catch (const Failure &) {
  }
  return INT64_MIN;
}

class Replay {
 public:
  Replay(Engine &e, const Options &o) : e_(e), o_(o) {}

  // Ingests lines (in the order given), in batches within the tool's batch limits.
  void ingest(const std::vector<const Line *> &lines) {
    for (size_t from = 0; from < lines.size();) {
      std::string data;
      size_t to = from;
      for (; to < lines.size() && to - from < kBatchLines; ++to) {
        if (to > from && data.size() + lines[to]->text.size() >= kBatchBytes) break;
        data.append(lines[to]->text).push_back('\n');
      }
      Buf out;
      check(cdp_ingest_ndjson(&out.b, e_.get(), data.data(), data.size(), 0), "ingest");
      Json report = out.json();
      accepted_ += report["accepted"].u64();
      rejected_ += report["rejected"].u64();
      for (const Json &err : report["errors"].items) {
        const Line &l = *lines[from + err["line"].u64() - 1];
        Json x{Json::Object};
        x.fields = {{"file", string(o_.args[l.file])}, {"line", number(l.number)}, {"field", err["field"]},
                    {"message", err["message"]}};
        if (o_.json) emit("error", x);
        errors_.items.push_back(std::move(x));
      }
      from = to;
      drain();
    }
  }

  void advance(int64_t now) {
    Buf out;
    check(cdp_advance(&out.b, e_.get(), now), "advance to " + std::to_string(now));
    Json r = out.json();
    const Json &life = r["lifecycle"];
    steps_++;
    fired_ += life["fired"].u64();
    now_ = now;
    if (o_.json) emit("advance", r);
    else if (life["fired"].u64())
      std::printf("%s  advance: %s timer%s fired, %s transition%s, %s intent%s\n", date(now).c_str(),
                  life["fired"].text.c_str(), life["fired"].u64() == 1 ? "" : "s", life["transitions"].text.c_str(),
                  life["transitions"].u64() == 1 ? "" : "s", life["intents"].text.c_str(),
                  life["intents"].u64() == 1 ? "" : "s");
    drain();
  }

  // skipped: lines after --until, not replayed.
  void summary(uint64_t skipped) {
    Buf list;
    check(cdp_lifecycle_list(&list.b, e_.get()), "the lifecycle catalogue");
    Json catalogue = list.json();
    Json by_action{Json::Object};
    for (auto &[action, n] : intents_by_action_) by_action.fields.emplace_back(action, number(n));
    // Tiers are state.NAME of the loyalty program: count each by its own audience.
    Json tiers{Json::Object};
    const Json &loyalty = catalogue["loyalty"];
    for (const Json &tier : loyalty["tiers"].items) {
      Json expr{Json::Object};
      expr.fields = {{"expr", string("state." + loyalty["name"].text + " == " + to_json(tier))}};
      std::string req = to_json(expr);
      Buf out;
      check(cdp_audience_count(&out.b, e_.get(), req.data(), req.size()), "count tier " + tier.text);
      tiers.fields.emplace_back(tier.text, out.json()["count"]);
    }
    if (o_.json) {
      Json doc{Json::Object}, records{Json::Object};
      records.fields = {{"accepted", number(accepted_)}, {"rejected", number(rejected_)}, {"skipped", number(skipped)}};
      doc.fields = {{"now", number(now_)},          {"records", records},
                    {"steps", number(steps_)},      {"fired", number(fired_)},
                    {"transitions", number(transitions_)}, {"intents", number(intents_)},
                    {"intents_by_action", by_action}, {"tiers", tiers},
                    {"lifecycle", catalogue}};
      emit("summary", doc);
      return;
    }
    std::printf("\nAt %s: %llu records accepted, %llu rejected", date(now_).c_str(), (unsigned long long)accepted_,
                (unsigned long long)rejected_);
    if (skipped) std::printf(", %llu after --until not replayed", (unsigned long long)skipped);
    std::printf("; %llu steps, %llu timers fired, %llu transitions, %llu intents\n", (unsigned long long)steps_,
                (unsigned long long)fired_, (unsigned long long)transitions_, (unsigned long long)intents_);
    for (const Json &m : catalogue["machines"].items) {
      std::string states;
      for (auto &[state, n] : m["persons"].fields) states += (states.empty() ? "" : ", ") + state + " " + n.text;
      std::printf("  machine %-14s %s\n", m["name"].text.c_str(), states.c_str());
    }
    if (loyalty.has()) {
      std::string counts;
      for (auto &[tier, n] : tiers.fields) counts += ", " + tier + " " + n.text;
      std::printf("  loyalty %-14s %s members%s\n", loyalty["name"].text.c_str(), loyalty["members"].text.c_str(),
                  counts.c_str());
    }
    for (const Json &j : catalogue["journeys"].items) {
      std::string counts;
      for (auto &[k, v] : j.fields)
        if (v.kind == Json::Number && k != "priority") counts += (counts.empty() ? "" : ", ") + k + " " + v.text;
      std::printf("  journey %-14s %s\n", j["name"].text.c_str(), counts.c_str());
    }
    std::string actions;
    for (auto &[action, n] : intents_by_action_) actions += (actions.empty() ? "" : ", ") + action + " " + std::to_string(n);
    std::printf("  intents %s\n", actions.empty() ? "none" : actions.c_str());
    if (errors_.items.empty()) return;
    std::printf("Rejected lines:\n");
    for (size_t i = 0; i < errors_.items.size() && i < 100; ++i) {
      const Json &x = errors_.items[i];
      std::printf("  %s:%s: %s: %s\n", x["file"].text.c_str(), x["line"].text.c_str(), x["field"].text.c_str(),
                  x["message"].text.c_str());
    }
    if (errors_.items.size() > 100)
      std::printf("  ... and %zu more (--json lists them)\n", errors_.items.size() - 100);
  }

 private:
  Engine &e_;
  const Options &o_;
  uint64_t feed_ = 0, outbox_ = 0;
  uint64_t accepted_ = 0, rejected_ = 0, steps_ = 0, fired_ = 0, transitions_ = 0, intents_ = 0;
  int64_t now_ = 0;
  std::vector<std::pair<std::string, uint64_t>> intents_by_action_;  // in order of first sight
  Json errors_{Json::Array};

  void emit(const char *what, const Json &v) {
    Json line{Json::Object};
    line.fields.emplace_back(what, v);
    std::printf("%s\n", to_json(line).c_str());
  }

  // Prints what the lifecycle did since the last call: its feed events, then the new
  // intents, which the tool delivers by printing and then acknowledges.
  void drain() {
    for (;;) {
      Buf out;
      check(cdp_feed_read(&out.b, e_.get(), feed_, 10000), "read the change feed");
      Json page = out.json();
      if (page["events"].items.empty()) break;
      for (const Json &ev : page["events"].items) transition(ev);
      feed_ = page["next"].u64();
    }
    check(cdp_feed_trim(e_.get(), feed_), "trim the change feed");  // the tool has read it
    uint64_t last = 0;
    for (;;) {
      Buf out;
      check(cdp_outbox_read(&out.b, e_.get(), outbox_, 10000), "read the outbox");
      Json page = out.json();
      if (page["intents"].items.empty()) break;
      for (const Json &in : page["intents"].items) {
        intent(in);
        last = in["id"].u64();
      }
      outbox_ = page["next"].u64();
    }
    if (last) {
      std::string ack = "{\"through\":" + std::to_string(last) + "}";
      check(cdp_outbox_ack(nullptr, e_.get(), ack.data(), ack.size()), "acknowledge intents");
    }
  }

  void transition(const Json &ev) {
    const std::string &kind = ev["kind"].text;
    bool moved = kind == "state_changed" || kind == "tier_changed";
    if (!moved && kind != "journey" && kind != "points" && kind != "intent") return;  // not the lifecycle's
    transitions_ += moved;
    if (o_.json) return emit("feed", ev);
    if (kind == "points" || kind == "intent") return;  // the ledger and delivery decisions: --json has them
    // "aipl: aware -> purchase (event order)", "journey fan: step coupon (timer)".
    std::string what, why = ev["reason"].text;
    std::vector<std::string_view> shown = {"seq", "kind", "oneid", "ts", "from", "to", "reason"};
    if (kind == "journey") {
      what = "journey " + ev["journey"].text + ": " + ev["event"].text;
      if (ev["step"].has()) what += " " + brief("", ev["step"]);
      shown.insert(shown.end(), {"journey", "event", "step"});
    } else {
      what = (kind == "state_changed" ? ev["machine"].text : "tier " + ev["tiers"].text) + ": " +
             (ev["from"].has() ? brief("", ev["from"]) : "-") + " -> " + brief("", ev["to"]);
      if (ev["event"].has()) why += " " + ev["event"].text;
      shown.insert(shown.end(), {"machine", "tiers", "event", "transition", "version"});
    }
    for (auto &[k, v] : ev.fields)  // whatever else the event carries
      if (std::find(shown.begin(), shown.end(), k) == shown.end()) what += " " + k + "=" + brief(k, v);
    std::printf("%s  OneID %s  %s (%s)\n", date(ev["ts"].u64()).c_str(), ev["oneid"].text.c_str(), what.c_str(),
                why.c_str());
  }

  void intent(const Json &in) {
    intents_++;
    const std::string &action = in["action"].text;
    auto it = std::find_if(intents_by_action_.begin(), intents_by_action_.end(),
                           [&](const auto &a) { return a.first == action; });
    if (it == intents_by_action_.end()) intents_by_action_.emplace_back(action, 1);
    else it->second++;
    if (o_.json) return emit("intent", in);
    std::string via = in["channel"].has() ? " via " + in["channel"].text : "";
    std::printf("%s  OneID %s  intent #%s %s%s (%s %s)%s\n", date(in["at"].u64()).c_str(), in["oneid"].text.c_str(),
                in["id"].text.c_str(), action.c_str(), via.c_str(), in["origin"].text.c_str(), in["step"].text.c_str(),
                in["payload"].has() ? (" " + to_json(in["payload"])).c_str() : "");
  }
};

int cmd_lifecycle(Options &o) {
  if (o.life_defs.empty()) fail(kUsage, "lifecycle needs --define DEFS.json");
  if (o.args.empty()) fail(kUsage, "no input files (use - for standard input)");
  int64_t step = parse_step(o.step);
  int64_t from = o.from.empty() ? 0 : parse_option_time("--from", o.from);
  int64_t until = o.until.empty() ? 0 : parse_option_time("--until", o.until);
  if (!o.from.empty() && !o.until.empty() && until < from) fail(kUsage, "--until is before --from");

  Engine e(config_of(o), key_of(o));
  // Definitions first, so every record moves the machines it concerns.
  for (const std::string &path : o.life_defs) {
    std::string defs = read_file(path);
    check(cdp_lifecycle_define(nullptr, e.get(), defs.data(), defs.size()), path);
  }
  // Every line of every file, in time order (a stable sort: ties keep the input order).
  std::vector<std::string> data;
  std::vector<Line> lines;
  for (uint32_t f = 0; f < o.args.size(); ++f) data.push_back(read_file(o.args[f]));
  for (uint32_t f = 0; f < data.size(); ++f) {
    std::string_view rest = data[f];
    for (uint64_t number = 1; !rest.empty(); ++number) {
      size_t nl = rest.find('\n');
      std::string_view text = rest.substr(0, nl);
      rest = nl == std::string_view::npos ? std::string_view() : rest.substr(nl + 1);
      if (!text.empty() && text.back() == '\r') text.remove_suffix(1);
      if (text.find_first_not_of(" \t") == std::string_view::npos) continue;
      lines.push_back(Line{record_time(text), f, number, text});
    }
  }
  std::stable_sort(lines.begin(), lines.end(), [](const Line &a, const Line &b) { return a.ts < b.ts; });
  auto timed = std::find_if(lines.begin(), lines.end(), [](const Line &l) { return l.ts != INT64_MIN; });
  if (timed == lines.end() && (o.from.empty() || o.until.empty()))
    fail(kFailed, "no record with a time: give --from and --until");
  // Step boundaries are from + k * step; by default whole steps counted from a local
  // (UTC+8) midnight, so "1d" steps fall on local midnights. By default the last advance
  // ends the last record's step.
  constexpr int64_t kZone = 8 * 3600000LL;
  auto floor_div = [](int64_t a, int64_t b) { return a / b - (a % b < 0); };
  if (o.from.empty()) from = floor_div(timed->ts + kZone, step) * step - kZone;
  if (o.until.empty()) until = from + (std::max<int64_t>(floor_div(lines.back().ts - from, step), -1) + 1) * step;
  if (until < 0 || from < 0) fail(kUsage, "--from and --until: times before 1970 cannot be advanced to");
  if ((until - from) / step > 1000000) fail(kUsage, "--step: over a million steps from --from to --until");

  Replay replay(e, o);
  std::vector<const Line *> batch;
  size_t i = 0;
  for (; i < lines.size() && lines[i].ts < from; ++i) batch.push_back(&lines[i]);  // and lines without a time
  replay.ingest(batch);
  for (int64_t at = from;;) {
    replay.advance(at);
    if (at >= until) break;
    int64_t next = std::min(until, at + step);
    batch.clear();
    for (; i < lines.size() && lines[i].ts < next; ++i) batch.push_back(&lines[i]);
    replay.ingest(batch);
    at = next;
  }
  replay.summary(lines.size() - i);
  return kOk;
}

int cmd_config(Options &o) {
  if (!o.args.empty()) fail(kUsage, "config takes no arguments");
  Buf out;
  check(cdp_config_default(&out.b), "default config");
  std::printf("%s\n", out.b.ptr ? out.b.ptr : "");
  return kOk;
}

// ---- Command table and help ----

enum : unsigned {
  kAssign = 1, kMask = 2, kLimit = 4, kNow = 8, kDefine = 16, kDefs = 32, kHoldout = 64, kDistribution = 128,
  kMembers = 256, kLifeDefs = 512, kSteps = 1024,
};

struct Command {
  const char *name, *args, *summary;
  unsigned options;
  int (*run)(Options &);
};

const Command kCommands[] = {
    {"ingest", "[--assign OUT] FILES...", "ingest and print the summary: records, identifiers, persons, merges", kAssign,
     cmd_ingest},
    {"persons", "[--mask] [--limit N] FILES...", "list persons with their identifiers", kMask | kLimit, cmd_persons},
    {"merges", "[--limit N] FILES...", "merge events of the change feed (survivor, absorbed, evidence)", kLimit,
     cmd_merges},
    {"conflicts", "[--limit N] FILES...", "unions the engine refused, and the rule that refused them", kLimit,
     cmd_conflicts},
    {"quarantined", "[--limit N] FILES...", "identifiers quarantined for joining too many persons", kLimit,
     cmd_quarantined},
    {"explain", "TYPE:VALUE TYPE:VALUE FILES...", "the evidence path joining two identifiers, or what kept them apart",
     0, cmd_explain},
    {"resolve", "TYPE:VALUE FILES...", "print the OneID of an identifier (values are normalised first)", 0,
     cmd_resolve},
    {"person", "[--mask] TYPE:VALUE FILES...", "print the person holding an identifier: identifiers, attributes with their source, events", kMask, cmd_person},
    {"eval", "--now TIME EXPRESSION TYPE:VALUE FILES...", "evaluate an expression (docs/expressions.md) for the person holding an identifier", kNow, cmd_eval},
    {"tags", "[--now TIME] --define DEFS.json FILES...", "define tags (docs/tags.md) and print the catalogue: kind, type, persons, top values", kNow | kDefine, cmd_tags},
    {"audience", "EXPRESSION [--defs DEFS.json] [--now TIME] [--holdout SALT:PERCENT] [--distribution TAG,TAG] [--members N] [--mask] FILES...",
     "count an audience (docs/audiences.md), its spread over tags and its first members", kNow | kDefs | kHoldout | kDistribution | kMembers | kMask, cmd_audience},
    {"lifecycle", "--define DEFS.json [--define DEFS.json] [--step 1d] [--from TIME] [--until TIME] FILES...",
     "replay the records in simulated time through lifecycle definitions (docs/lifecycle.md), printing transitions "
     "and intents as they happen, then persons per state and intents per action", kLifeDefs | kSteps, cmd_lifecycle},
    {"config", "", "print the built-in engine config, a starting point for --config", 0, cmd_config},
};

const char kExitCodes[] =
    "Exit codes:\n"
    "  0  success (ingest succeeds when lines are rejected: the summary lists them)\n"
    "  1  usage error\n"
    "  2  input or engine error (unreadable file, bad config, tag or lifecycle definitions or\n"
    "     expression, engine failure)\n"
    "  3  not found (resolve, person, explain, eval: an identifier the engine does not know)\n";

void main_help() {
  std::printf(
      "cdp %s: OneID from NDJSON touchpoint records, over the cdpcore C API\n\n"
      "Usage: cdp [--json] [--config FILE] [--key-file FILE] [--progress] COMMAND [OPTIONS] ARGS...\n\n"
      "The engine is in memory: each command ingests its FILES (NDJSON, one record per\n"
      "line; - reads standard input) into a fresh engine, then answers from it.\n"
      "Identifiers are written TYPE:VALUE (mobile:+86 139-1720-5836); values are normalised\n"
      "first, and app-scoped types take APP/VALUE (openid:wx_oa_brand/oX1...).\n\n"
      "Commands:\n",
      cdp_version_string());
  for (const Command &c : kCommands) std::printf("  %s%s%s\n      %s\n", c.name, *c.args ? " " : "", c.args, c.summary);
  std::printf(
      "\nGlobal options:\n"
      "  --json         print one JSON document built from the library's JSON\n"
      "  --config FILE  open the engine with this JSON config (default: built-in)\n"
      "  --key-file FILE  the key (the file's bytes, 16 or more) for a config that stores\n"
      "                 identifier types hashed (\"hashed\": true in docs/config.md)\n"
      "  --progress     a progress line (lines, records/s) after every batch ingested, also\n"
      "                 when stderr is not a terminal (on one, long ingests show it anyway)\n"
      "  -h, --help     this help; cdp COMMAND --help for one command\n"
      "  --version      print the library version\n\n%s",
      kExitCodes);
}

void command_help(const Command &c) {
  std::printf("Usage: cdp [--json] [--config FILE] [--key-file FILE] [--progress] %s %s\n\n%c%s.\n", c.name, c.args, c.summary[0] & ~0x20,
              c.summary + 1);
  std::string options;
  if (c.options & kAssign)
    options +=
        "  --assign OUT  write the OneID of every input line to OUT: \"line<TAB>oneid\"; with\n"
        "                several files \"file<TAB>line<TAB>oneid\", line numbers per file. The\n"
        "                OneID is empty where the line was rejected or linked no identifier.\n";
  if (c.options & kDefine) options += "  --define DEFS.json  the tag definitions (one object or an array; docs/tags.md), required\n";
  if (c.options & kDefs) options += "  --defs DEFS.json  tag definitions the expression may read as tags.NAME\n";
  if (c.options & kMask) options += "  --mask        mask identifier values (138****8000, a***@x.com)\n";
  if (c.options & kLimit) options += "  --limit N     print at most N entries\n";
  if (c.options & kNow)
    options +=
        "  --now TIME    the evaluation time: epoch ms or 2024-03-01T10:00:00+08:00 (a bare date is\n"
        "                midnight at +08:00); windows and today() are relative to it\n";
  if ((c.options & kNow) && (c.options & (kDefine | kDefs)))
    options += "                (default: the newest record's time); tags are evaluated at it\n";
  if (c.options & kHoldout)
    options += "  --holdout SALT:PERCENT  hold PERCENT of the audience out, by a hash of OneID and SALT\n";
  if (c.options & kDistribution)
    options += "  --distribution TAG,TAG  the tags to show the spread over (default: every tag defined)\n";
  if (c.options & kMembers) options += "  --members N   list the first N members (default 10; 0: none)\n";
  if (c.options & kLifeDefs)
    options +=
        "  --define DEFS.json  a lifecycle definition document (machines, loyalty, journeys,\n"
        "                delivery; docs/lifecycle.md), defined before the first record; repeatable\n";
  if (c.options & kSteps)
    options +=
        "  --step DURATION  simulated time moves in steps of 1d (default), 12h, 30m, 45s, 1w ...:\n"
        "                the records of each step are ingested, then the clock advances to its end\n"
        "                and the deadlines due fire\n"
        "  --from TIME   the first step's start (default: the first record's local day, UTC+8, for 1d)\n"
        "  --until TIME  the last advance (default: the end of the last record's step); later\n"
        "                records are not replayed\n"
        "  TIME is epoch ms or 2024-03-01T10:00:00+08:00 (a bare date is midnight at +08:00).\n"
        "  Records are replayed in time order across FILES. Each transition prints on one line,\n"
        "  each intent too (the tool delivers it by printing it, then acknowledges it); --json\n"
        "  prints NDJSON instead: {\"feed\":event}, {\"intent\":...}, {\"advance\":report},\n"
        "  {\"error\":...} and a last {\"summary\":...}.\n";
  if (!options.empty()) std::printf("\nOptions:\n%s", options.c_str());
  if (std::string_view(c.args).find("TYPE:VALUE") != std::string_view::npos)
    std::printf("\nValues are normalised first (mobile:+86 139-1720-5836 finds 13917205836);\n"
                "app-scoped types take APP/VALUE (openid:wx_oa_brand/oX1...).\n");
  if (c.run != cmd_config && c.run != cmd_lifecycle)
    std::printf("\nFILES are ingested first, in batches of up to 64K lines or 16 MiB; cdp ingest\n"
                "reports rejected lines as file:line: field: message.\n");
  std::printf("\n%s", kExitCodes);
}

int usage_error(const std::string &message, const Command *c) {
  std::fprintf(stderr, "cdp: %s\nRun 'cdp %s--help' for usage.\n", message.c_str(),
               c ? (std::string(c->name) + " ").c_str() : "");
  return kUsage;
}

}  // namespace

int main(int argc, char **argv) {
  Options o;
  const Command *cmd = nullptr;
  bool help = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&](const char *what) -> std::string {
      if (i + 1 >= argc) throw Failure{kUsage, a + " needs " + what};
      return argv[++i];
    };
    try {
      if (a == "--") {
        o.args.insert(o.args.end(), argv + i + 1, argv + argc);
        break;
      } else if (a == "-h" || a == "--help") {
        help = true;
      } else if (a == "--version") {
        return std::printf("cdp %s\n", cdp_version_string()), kOk;
      } else if (a == "--json") {
        o.json = true;
      } else if (a == "--config") {
        o.config_path = value("a FILE");
      } else if (a == "--key-file") {
        o.key_path = value("a FILE");
      } else if (a == "--progress") {
        o.progress = true;
      } else if (cmd && (cmd->options & kAssign) && a == "--assign") {
        o.assign_path = value("an OUT file");
      } else if (cmd && (cmd->options & kMask) && a == "--mask") {
        o.mask = true;
      } else if (cmd && (cmd->options & kNow) && a == "--now") {
        o.now = value("a TIME");
      } else if (cmd && (cmd->options & kLifeDefs) && a == "--define") {
        o.life_defs.push_back(value("a DEFS.json file"));
      } else if (cmd && (cmd->options & kSteps) && a == "--step") {
        o.step = value("a DURATION");
      } else if (cmd && (cmd->options & kSteps) && a == "--from") {
        o.from = value("a TIME");
      } else if (cmd && (cmd->options & kSteps) && a == "--until") {
        o.until = value("a TIME");
      } else if (cmd && (cmd->options & kDefine) && a == "--define") {
        o.defs_path = value("a DEFS.json file");
      } else if (cmd && (cmd->options & kDefs) && a == "--defs") {
        o.defs_path = value("a DEFS.json file");
      } else if (cmd && (cmd->options & kHoldout) && a == "--holdout") {
        o.holdout = value("SALT:PERCENT");
      } else if (cmd && (cmd->options & kDistribution) && a == "--distribution") {
        o.distribution = value("TAG,TAG");
      } else if (cmd && (cmd->options & kMembers) && a == "--members") {
        std::string n = value("a number");
        char *end = nullptr;
        o.members = std::strtoull(n.c_str(), &end, 10);
        if (n.empty() || *end || n[0] == '-' || o.members > 10000) throw Failure{kUsage, "--members needs 0 to 10000"};
      } else if (cmd && (cmd->options & kLimit) && a == "--limit") {
        std::string n = value("a number");
        char *end = nullptr;
        o.limit = std::strtoull(n.c_str(), &end, 10);
        if (n.empty() || *end || o.limit == 0) throw Failure{kUsage, "--limit needs a positive number"};
      } else if (a.size() > 1 && a[0] == '-') {
        throw Failure{kUsage, "unknown option " + a};
      } else if (!cmd) {
        for (const Command &c : kCommands)
          if (a == c.name) cmd = &c;
        if (!cmd) throw Failure{kUsage, "unknown command '" + a + "'"};
      } else {
        o.args.push_back(a);
      }
    } catch (const Failure &f) {
      return usage_error(f.message, cmd);
    }
  }
  if (help) return cmd ? command_help(*cmd) : main_help(), kOk;
  if (!cmd) return usage_error("no command given", nullptr);
  try {
    return cmd->run(o);
  } catch (const Failure &f) {
    std::fflush(stdout);
    if (f.code == kUsage) return usage_error(f.message, cmd);
    std::fprintf(stderr, "cdp: %s\n", f.message.c_str());
    return f.code;
  }
}
