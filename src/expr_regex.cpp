// The regex subset of matches(): literals, ., classes ([a-z0-9_], [^...], \d \w \s and
// their negations), anchors ^ $, quantifiers * + ? {m} {m,} {m,n}, alternation and groups.
// No backreferences or lookaround: those are what make backtracking engines exponential.
// A pattern compiles to a Thompson NFA over code points, and matching simulates every
// thread in lock step (Pike's VM without captures), so the cost is at most
// text length × program size, charged to the evaluation's step budget.
#include <cctype>
#include <cstring>
#include <string>

#include "expr_internal.hpp"
#include "util.hpp"

namespace cdp::expr {
namespace {

// Decodes one UTF-8 code point at s[i]; a malformed byte reads as U+FFFD and advances one.
uint32_t Decode(std::string_view s, size_t& i) {
  auto b = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  unsigned char c = b(i);
  if (c < 0x80) { ++i; return c; }
  size_t len = (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
  if (len == 0 || i + len > s.size()) { ++i; return 0xFFFD; }
  uint32_t cp = c & (0x7F >> len);
  for (size_t k = 1; k < len; ++k) {
    if ((b(i + k) & 0xC0) != 0x80) { ++i; return 0xFFFD; }
    cp = (cp << 6) | (b(i + k) & 0x3F);
  }
  i += len;
  return cp;
}

using RNode = Regex::TreeNode;
enum RKind : uint8_t { kLit, kAny, kClass, kCat, kAlt, kRepeat, kBol, kEol };

RNode Make(RKind k) {
  RNode n;
  n.kind = k;
  return n;
}

class RegexCompiler {
 public:
  RegexCompiler(std::string_view pat, Regex& re) : pat_(pat), re_(re), nodes_(re.tree) {}

  bool Run(std::string* error, size_t* at) {
    re_.prog.clear();
    re_.ranges.clear();
    nodes_.clear();
    re_.anchored = false;
    int root = -1;
    bool ok = pat_.size() <= kMaxPatternBytes ? (root = ParseAlt(0)) >= 0 : Fail("the pattern is longer than 1024 bytes");
    if (ok && i_ < pat_.size()) ok = Fail(pat_[i_] == ')' ? "unmatched ')'" : "unexpected character");
    if (ok) {
      const RNode& r = nodes_[root];
      re_.anchored = (r.kind == kBol) || (r.kind == kCat && r.first >= 0 && nodes_[r.first].kind == kBol);
      ok = Emit(root) && Push({Regex::kMatch});
    }
    if (!ok) {
      if (error) *error = why_;
      if (at) *at = i_;
    }
    return ok;
  }

 private:
  bool Fail(std::string_view why) {
    if (why_.empty()) why_ = why;
    return false;
  }
  int Node(RNode n) {
    nodes_.push_back(n);
    return static_cast<int>(nodes_.size() - 1);
  }
  void AddKid(int parent, int kid) {
    RNode& p = nodes_[parent];
    if (p.first < 0) p.first = kid;
    else nodes_[p.last].next = kid;
    p.last = kid;
  }
  bool More() const { return i_ < pat_.size(); }
  char Peek() const { return pat_[i_]; }

  int ParseAlt(int depth) {
    if (depth > 64) return Fail("groups nest deeper than 64"), -1;
    int first = ParseCat(depth);
    if (first < 0) return -1;
    if (!More() || Peek() != '|') return first;
    int alt = Node(Make(kAlt));
    AddKid(alt, first);
    while (More() && Peek() == '|') {
      ++i_;
      int next = ParseCat(depth);
      if (next < 0) return -1;
      AddKid(alt, next);
    }
    return alt;
  }

  int ParseCat(int depth) {
    int cat = Node(Make(kCat));
    while (More() && Peek() != '|' && Peek() != ')') {
      int atom = ParseRepeat(depth);
      if (atom < 0) return -1;
      AddKid(cat, atom);
    }
    return cat;
  }

  bool ParseCount(int& v) {
    size_t start = i_;
    v = 0;
    while (More() && Peek() >= '0' && Peek() <= '9') {
      v = v * 10 + (Peek() - '0');
      if (v > 1000) return Fail("a repetition count is at most 1000");
      ++i_;
    }
    return i_ > start || Fail("expected a number in {m,n}");
  }

  int ParseRepeat(int depth) {
    size_t start = i_;
    int atom = ParseAtom(depth);
    if (atom < 0 || !More()) return atom;
    int min, max;
    char c = Peek();
    if (c == '*') { min = 0; max = -1; ++i_; }
    else if (c == '+') { min = 1; max = -1; ++i_; }
    else if (c == '?') { min = 0; max = 1; ++i_; }
    else if (c == '{') {
      ++i_;
      if (!ParseCount(min)) return -1;
      max = min;
      if (More() && Peek() == ',') {
        ++i_;
        if (More() && Peek() == '}') max = -1;
        else if (!ParseCount(max)) return -1;
      }
      if (!More() || Peek() != '}') return Fail("expected '}' after {m,n"), -1;
      ++i_;
      if (max >= 0 && max < min) return Fail("{m,n} with n < m"), -1;
    } else {
      return atom;
    }
    uint8_t k = nodes_[atom].kind;
    if (k == kBol || k == kEol) return i_ = start, Fail("an anchor cannot be repeated"), -1;
    if (More() && (Peek() == '*' || Peek() == '+' || Peek() == '?' || Peek() == '{'))
      return Fail("a quantifier follows a quantifier"), -1;
    int r = Node(Make(kRepeat));
    nodes_[r].min = min;
    nodes_[r].max = max;
    AddKid(r, atom);
    return r;
  }

  // \d \w \s as ranges appended to re_.ranges.
  void AddShorthand(char c) {
    if (c == 'd') {
      re_.ranges.push_back({'0', '9'});
    } else if (c == 'w') {
      re_.ranges.push_back({'0', '9'});
      re_.ranges.push_back({'A', 'Z'});
      re_.ranges.push_back({'_', '_'});
      re_.ranges.push_back({'a', 'z'});
    } else {
      re_.ranges.push_back({'\t', '\r'});
      re_.ranges.push_back({' ', ' '});
    }
  }

  // After a backslash: a literal code point, or false with an error.
  bool Escape(uint32_t& cp) {
    if (!More()) return Fail("a pattern cannot end with '\\'");
    char c = Peek();
    ++i_;
    switch (c) {
      case 'n': cp = '\n'; return true;
      case 't': cp = '\t'; return true;
      case 'r': cp = '\r'; return true;
      default:
        if (std::isalnum(static_cast<unsigned char>(c))) return --i_, Fail("unknown escape");
        cp = static_cast<unsigned char>(c);
        return true;
    }
  }

  int ParseAtom(int depth) {
    char c = Peek();
    switch (c) {
      case '(': {
        ++i_;
        if (pat_.substr(i_, 2) == "?:") i_ += 2;
        else if (More() && Peek() == '?') return Fail("only (?:...) groups are supported"), -1;
        int inner = ParseAlt(depth + 1);
        if (inner < 0) return -1;
        if (!More() || Peek() != ')') return Fail("missing ')'"), -1;
        ++i_;
        return inner;
      }
      case '[': return ParseClass();
      case '.': ++i_; return Node(Make(kAny));
      case '^': ++i_; return Node(Make(kBol));
      case '$': ++i_; return Node(Make(kEol));
      case '*': case '+': case '?': case '{': return Fail("nothing to repeat"), -1;
      case '\\': {
        ++i_;
        if (More() && std::strchr("dwsDWS", Peek())) {
          char s = Peek();
          ++i_;
          RNode n = Make(kClass);
          n.range_off = static_cast<uint32_t>(re_.ranges.size());
          AddShorthand(static_cast<char>(std::tolower(s)));
          n.range_n = static_cast<uint32_t>(re_.ranges.size()) - n.range_off;
          n.negate = std::isupper(static_cast<unsigned char>(s));
          return Node(std::move(n));
        }
        RNode n = Make(kLit);
        if (!Escape(n.cp)) return -1;
        return Node(std::move(n));
      }
      default: {
        RNode n = Make(kLit);
        n.cp = Decode(pat_, i_);
        return Node(std::move(n));
      }
    }
  }

  int ParseClass() {
    size_t open = i_++;
    RNode n = Make(kClass);
    if (More() && Peek() == '^') { n.negate = true; ++i_; }
    n.range_off = static_cast<uint32_t>(re_.ranges.size());
    bool first = true;
    for (;;) {
      if (!More()) return i_ = open, Fail("missing ']'"), -1;
      if (Peek() == ']' && !first) { ++i_; break; }
      first = false;
      uint32_t lo;
      if (Peek() == '\\') {
        ++i_;
        if (More() && std::strchr("dws", Peek())) {
          AddShorthand(Peek());
          ++i_;
          continue;
        }
        if (!Escape(lo)) return -1;
      } else {
        lo = Decode(pat_, i_);
      }
      uint32_t hi = lo;
      if (i_ + 1 < pat_.size() && Peek() == '-' && pat_[i_ + 1] != ']') {
        ++i_;
        if (Peek() == '\\') {
          ++i_;
          if (!Escape(hi)) return -1;
        } else {
          hi = Decode(pat_, i_);
        }
        if (hi < lo) return Fail("a class range runs backwards"), -1;
      }
      re_.ranges.push_back({lo, hi});
    }
    n.range_n = static_cast<uint32_t>(re_.ranges.size()) - n.range_off;
    return Node(std::move(n));
  }

  // ---- code generation ----
  bool Push(Regex::Inst in) {
    if (re_.prog.size() >= kMaxRegexInsts) return Fail("the pattern is too large once its repetitions are expanded");
    re_.prog.push_back(in);
    return true;
  }
  uint32_t Pc() const { return static_cast<uint32_t>(re_.prog.size()); }

  bool Emit(int n) {
    const RNode& x = nodes_[n];
    switch (x.kind) {
      case kLit: return Push({Regex::kChar, false, x.cp});
      case kAny: return Push({Regex::kAny});
      case kClass: return Push({Regex::kClass, x.negate, x.range_off, x.range_n});
      case kBol: return Push({Regex::kBol});
      case kEol: return Push({Regex::kEol});
      case kCat:
        for (int k = x.first; k >= 0; k = nodes_[k].next)
          if (!Emit(k)) return false;
        return true;
      case kAlt: {
        // split L1, next; L1: a; jmp end; next: split L2, next2 ... last: z; end:
        // The jumps to the end are chained through their targets, then patched.
        uint32_t chain = UINT32_MAX;
        for (int k = x.first; k >= 0; k = nodes_[k].next) {
          bool last = nodes_[k].next < 0;
          uint32_t split = Pc();
          if (!last && !Push({Regex::kSplit})) return false;
          if (!Emit(k)) return false;
          if (!last) {
            uint32_t j = Pc();
            if (!Push({Regex::kJmp, false, chain})) return false;
            chain = j;
            re_.prog[split].x = split + 1;
            re_.prog[split].y = Pc();
          }
        }
        while (chain != UINT32_MAX) {
          uint32_t prev = re_.prog[chain].x;
          re_.prog[chain].x = Pc();
          chain = prev;
        }
        return true;
      }
      case kRepeat: {
        int a = x.first;
        for (int k = 0; k < x.min; ++k)
          if (!Emit(a)) return false;
        if (x.max < 0) {  // L: split body, end; body; jmp L; end:
          uint32_t split = Pc();
          if (!Push({Regex::kSplit}) || !Emit(a) || !Push({Regex::kJmp, false, split})) return false;
          re_.prog[split].x = split + 1;
          re_.prog[split].y = Pc();
          return true;
        }
        for (int k = x.min; k < x.max; ++k) {  // optional copies: split body, end; body
          uint32_t split = Pc();
          if (!Push({Regex::kSplit}) || !Emit(a)) return false;
          re_.prog[split].x = split + 1;
          re_.prog[split].y = Pc();
        }
        return true;
      }
    }
    return false;
  }

  std::string_view pat_;
  Regex& re_;
  size_t i_ = 0;
  std::vector<RNode>& nodes_;
  std::string why_;
};

// A sparse set of program counters (Briggs–Torczon): O(1) insert, test and clear.
struct PcSet {
  uint32_t* dense;
  uint32_t* sparse;
  uint32_t n = 0;
  bool Has(uint32_t pc) const { return sparse[pc] < n && dense[sparse[pc]] == pc; }
  void Add(uint32_t pc) { sparse[pc] = n; dense[n++] = pc; }
};

}  // namespace

bool CompileRegex(std::string_view pattern, Regex& re, std::string* error, size_t* at) {
  return RegexCompiler(pattern, re).Run(error, at);
}

int MatchRegex(const Regex& re, std::string_view text, RegexScratch& sc, uint64_t& steps) {
  const size_t n = re.prog.size();
  for (auto* v : {&sc.dense_a, &sc.sparse_a, &sc.dense_b, &sc.sparse_b})
    if (v->size() < n) v->resize(n);
  PcSet cur{sc.dense_a.data(), sc.sparse_a.data()}, next{sc.dense_b.data(), sc.sparse_b.data()};
  bool matched = false;
  // Follows jumps, splits and anchors from pc at text position pos into set s.
  auto add = [&](PcSet& s, uint32_t pc0, size_t pos) -> bool {
    sc.stack.clear();
    sc.stack.push_back(pc0);
    while (!sc.stack.empty()) {
      uint32_t pc = sc.stack.back();
      sc.stack.pop_back();
      if (s.Has(pc)) continue;
      if (steps == 0) return false;
      --steps;
      s.Add(pc);
      const Regex::Inst& in = re.prog[pc];
      switch (in.code) {
        case Regex::kJmp: sc.stack.push_back(in.x); break;
        case Regex::kSplit: sc.stack.push_back(in.y); sc.stack.push_back(in.x); break;
        case Regex::kBol: if (pos == 0) sc.stack.push_back(pc + 1); break;
        case Regex::kEol: if (pos == text.size()) sc.stack.push_back(pc + 1); break;
        case Regex::kMatch: matched = true; break;
        default: break;
      }
    }
    return true;
  };
  if (!add(cur, 0, 0)) return -1;
  size_t pos = 0;
  while (!matched && pos < text.size()) {
    if (cur.n == 0 && re.anchored) return 0;
    uint32_t cp = Decode(text, pos);
    next.n = 0;
    for (uint32_t k = 0; k < cur.n; ++k) {
      uint32_t pc = cur.dense[k];
      const Regex::Inst& in = re.prog[pc];
      bool step = false;
      switch (in.code) {
        case Regex::kChar: step = cp == in.x; break;
        case Regex::kAny: step = true; break;
        case Regex::kClass: {
          bool hit = false;
          for (uint32_t r = in.x; r < in.x + in.y && !hit; ++r)
            hit = cp >= re.ranges[r].first && cp <= re.ranges[r].second;
          step = hit != in.negate;
          break;
        }
        default: break;
      }
      if (step && !add(next, pc + 1, pos)) return -1;
      if (matched) return 1;
    }
    if (!re.anchored && !add(next, 0, pos)) return -1;
    std::swap(cur, next);
  }
  return matched ? 1 : 0;
}

}  // namespace cdp::expr
