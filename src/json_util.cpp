#include "json_util.hpp"

#include <cctype>
#include <cstdio>
#include <vector>

namespace cdp::json {

void AppendString(std::string& out, std::string_view s) {
  static const char kHex[] = "0123456789abcdef";
  out += '"';
  size_t run = 0;  // copy unescaped runs in one append
  for (size_t i = 0; i < s.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    out.append(s.data() + run, i - run);
    run = i + 1;
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        out += "\\u00";
        out += kHex[c >> 4];
        out += kHex[c & 15];
    }
  }
  out.append(s.data() + run, s.size() - run);
  out += '"';
}

Writer& Writer::Double(double v) {
  Sep();
  char buf[32];
  int n = std::snprintf(buf, sizeof buf, "%.17g", v);
  out_.append(buf, static_cast<size_t>(n));
  return *this;
}

size_t FirstInvalidUtf8(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  size_t n = s.size(), i = 0;
  while (i < n) {
    unsigned char c = p[i];
    if (c < 0x80) { ++i; continue; }
    size_t len;
    uint32_t cp;
    if ((c & 0xE0) == 0xC0) { len = 2; cp = c & 0x1F; }
    else if ((c & 0xF0) == 0xE0) { len = 3; cp = c & 0x0F; }
    else if ((c & 0xF8) == 0xF0) { len = 4; cp = c & 0x07; }
    else return i;
    if (i + len > n) return i;
    for (size_t k = 1; k < len; ++k) {
      if ((p[i + k] & 0xC0) != 0x80) return i;
      cp = (cp << 6) | (p[i + k] & 0x3F);
    }
    // Overlong forms, surrogates and values past U+10FFFF are invalid.
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
        (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF)
      return i;
    i += len;
  }
  return std::string_view::npos;
}

absl::Status CheckSyntax(std::string_view text, std::string_view what, bool with_path) {
  Problem p = Locate(text);
  if (!p.found) return absl::OkStatus();
  uint32_t line, col;
  LineColumn(text, p.offset, line, col);
  std::string m(what);
  m += ": line " + std::to_string(line) + ", column " + std::to_string(col);
  if (with_path && !p.path.empty()) m += " (at " + p.path + ")";
  m += ": " + p.message;
  return absl::InvalidArgumentError(m);
}

void LineColumn(std::string_view text, size_t offset, uint32_t& line, uint32_t& column) {
  line = 1;
  column = 1;
  for (size_t i = 0; i < offset && i < text.size(); ++i) {
    if (text[i] == '\n') { ++line; column = 1; } else { ++column; }
  }
}

namespace {

// A strict recursive-descent scanner that tracks the key path, used only on the error
// path (the fast path is simdjson), so clarity beats speed here.
class Scanner {
 public:
  explicit Scanner(std::string_view t, size_t stop = std::string_view::npos)
      : t_(t), stop_(stop) {}

  Problem Run() {
    Ws();
    if (!Value(0)) return problem_;
    Ws();
    if (i_ < t_.size() && !stopped_) Fail("unexpected text after the JSON value");
    return problem_;
  }
  bool stopped() const { return stopped_; }
  std::string Path() const { return JoinPath(); }

 private:
  static constexpr int kMaxDepth = 512;

  bool Fail(std::string msg) {
    if (!problem_.found) {
      problem_.found = true;
      problem_.offset = i_;
      problem_.message = std::move(msg);
      problem_.path = JoinPath();
    }
    return false;
  }
  std::string JoinPath() const {
    std::string p;
    for (const auto& s : path_) {
      if (!s.empty() && s[0] == '[') { p += s; continue; }
      if (!p.empty()) p += '.';
      p += s;
    }
    return p;
  }
  bool AtStop() {
    if (i_ >= stop_) { stopped_ = true; return true; }
    return false;
  }
  void Ws() {
    while (i_ < t_.size() && (t_[i_] == ' ' || t_[i_] == '\t' || t_[i_] == '\n' || t_[i_] == '\r')) ++i_;
  }
  bool Lit(std::string_view w) {
    if (t_.substr(i_, w.size()) != w) return Fail("invalid literal");
    i_ += w.size();
    return true;
  }
  bool Str(std::string* out) {
    ++i_;  // opening quote
    size_t start = i_;
    while (true) {
      if (AtStop()) return false;
      if (i_ >= t_.size()) return Fail("unterminated string");
      unsigned char c = static_cast<unsigned char>(t_[i_]);
      if (c == '"') break;
      if (c < 0x20) return Fail("control character in string");
      if (c == '\\') {
        ++i_;
        if (i_ >= t_.size()) return Fail("unterminated string");
        char e = t_[i_];
        if (e == 'u') {
          for (int k = 1; k <= 4; ++k)
            if (i_ + k >= t_.size() || !std::isxdigit(static_cast<unsigned char>(t_[i_ + k])))
              return Fail("invalid \\u escape");
          i_ += 4;
        } else if (std::string_view("\"\\/bfnrt").find(e) == std::string_view::npos) {
          return Fail("invalid escape");
        }
        ++i_;
        continue;
      }
      if (c >= 0x80) {
        size_t bad = FirstInvalidUtf8(t_.substr(i_, std::min<size_t>(4, t_.size() - i_)));
        if (bad == 0) return Fail("invalid UTF-8");
        // advance one whole sequence
        size_t len = (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : 4;
        i_ += len;
        continue;
      }
      ++i_;
    }
    if (out) out->assign(t_.data() + start, i_ - start);
    ++i_;
    return true;
  }
  bool Num() {
    size_t s = i_;
    if (t_[i_] == '-') ++i_;
    if (i_ >= t_.size() || !std::isdigit(static_cast<unsigned char>(t_[i_]))) return Fail("invalid number");
    if (t_[i_] == '0') ++i_;
    else while (i_ < t_.size() && std::isdigit(static_cast<unsigned char>(t_[i_]))) ++i_;
    if (i_ < t_.size() && t_[i_] == '.') {
      ++i_;
      if (i_ >= t_.size() || !std::isdigit(static_cast<unsigned char>(t_[i_]))) return Fail("invalid number");
      while (i_ < t_.size() && std::isdigit(static_cast<unsigned char>(t_[i_]))) ++i_;
    }
    if (i_ < t_.size() && (t_[i_] == 'e' || t_[i_] == 'E')) {
      ++i_;
      if (i_ < t_.size() && (t_[i_] == '+' || t_[i_] == '-')) ++i_;
      if (i_ >= t_.size() || !std::isdigit(static_cast<unsigned char>(t_[i_]))) return Fail("invalid number");
      while (i_ < t_.size() && std::isdigit(static_cast<unsigned char>(t_[i_]))) ++i_;
    }
    return i_ > s;
  }
  bool Value(int depth) {
    if (AtStop()) return false;
    if (depth > kMaxDepth) return Fail("nesting too deep");
    if (i_ >= t_.size()) return Fail("unexpected end of input");
    char c = t_[i_];
    switch (c) {
      case '{': return Object(depth);
      case '[': return Array(depth);
      case '"': return Str(nullptr);
      case 't': return Lit("true");
      case 'f': return Lit("false");
      case 'n': return Lit("null");
      default:
        if (c == '-' || std::isdigit(static_cast<unsigned char>(c))) return Num();
        return Fail("unexpected character");
    }
  }
  bool Object(int depth) {
    ++i_;
    Ws();
    if (i_ < t_.size() && t_[i_] == '}') { ++i_; return true; }
    while (true) {
      if (AtStop()) return false;
      if (i_ >= t_.size() || t_[i_] != '"') return Fail("expected a key string");
      std::string key;
      if (!Str(&key)) return false;
      path_.push_back(key);
      Ws();
      if (i_ >= t_.size() || t_[i_] != ':') return Fail("expected ':' after key");
      ++i_;
      Ws();
      if (!Value(depth + 1)) return false;
      path_.pop_back();
      Ws();
      if (i_ < t_.size() && t_[i_] == ',') { ++i_; Ws(); continue; }
      if (i_ < t_.size() && t_[i_] == '}') { ++i_; return true; }
      return Fail("expected ',' or '}'");
    }
  }
  bool Array(int depth) {
    ++i_;
    Ws();
    if (i_ < t_.size() && t_[i_] == ']') { ++i_; return true; }
    for (size_t k = 0;; ++k) {
      path_.push_back("[" + std::to_string(k) + "]");
      if (!Value(depth + 1)) return false;
      path_.pop_back();
      Ws();
      if (i_ < t_.size() && t_[i_] == ',') { ++i_; Ws(); continue; }
      if (i_ < t_.size() && t_[i_] == ']') { ++i_; return true; }
      return Fail("expected ',' or ']'");
    }
  }

  std::string_view t_;
  size_t stop_;
  size_t i_ = 0;
  bool stopped_ = false;
  std::vector<std::string> path_;
  Problem problem_;
};

}  // namespace

Problem Locate(std::string_view text) { return Scanner(text).Run(); }

std::string PathAt(std::string_view text, size_t offset) {
  Scanner s(text, offset);
  s.Run();
  return s.Path();
}

}  // namespace cdp::json
