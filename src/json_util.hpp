// json_util.hpp — the small JSON helpers the engine needs beside simdjson: a writer for
// result documents, and a locator that says where and why a document is malformed
// (simdjson reports that it failed, not where; users need a line and column).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/status.h"

namespace cdp::json {

// Appends s as a JSON string literal (quoted, escaped). s must be valid UTF-8.
void AppendString(std::string& out, std::string_view s);

// A tiny streaming writer. It inserts commas itself; keys and values alternate in objects.
class Writer {
 public:
  explicit Writer(std::string& out) : out_(out) {}
  Writer& BeginObject() { Sep(); out_ += '{'; first_ = true; return *this; }
  Writer& EndObject() { out_ += '}'; first_ = false; return *this; }
  Writer& BeginArray() { Sep(); out_ += '['; first_ = true; return *this; }
  Writer& EndArray() { out_ += ']'; first_ = false; return *this; }
  Writer& Key(std::string_view k) { Sep(); AppendString(out_, k); out_ += ':'; first_ = true; return *this; }
  Writer& String(std::string_view s) { Sep(); AppendString(out_, s); return *this; }
  Writer& Int(int64_t v) { Sep(); out_ += std::to_string(v); return *this; }
  Writer& Uint(uint64_t v) { Sep(); out_ += std::to_string(v); return *this; }
  Writer& Double(double v);
  Writer& Bool(bool v) { Sep(); out_ += v ? "true" : "false"; return *this; }
  Writer& Null() { Sep(); out_ += "null"; return *this; }
  Writer& Raw(std::string_view json) { Sep(); out_ += json; return *this; }
  std::string& out() { return out_; }

 private:
  void Sep() { if (!first_) out_ += ','; first_ = false; }
  std::string& out_;
  bool first_ = true;
};

// Where a JSON text first goes wrong. offset is a byte offset into the text; path is the
// key path of the value being read there ("ids.mobile", "event.amount", "id_types.x[2]").
struct Problem {
  bool found = false;
  size_t offset = 0;
  std::string message;
  std::string path;
};
// Scans text as strict JSON (RFC 8259, UTF-8 checked) and reports the first problem.
Problem Locate(std::string_view text);
// The key path at a byte offset of a well-formed-so-far text (for errors found later).
std::string PathAt(std::string_view text, size_t offset);
// 1-based line and column (in bytes) of an offset.
void LineColumn(std::string_view text, size_t offset, uint32_t& line, uint32_t& column);
// Locate as a status: OK for well-formed text, else InvalidArgument "WHAT: line L,
// column C: message" (with " (at PATH)" after the column when with_path and known). Run
// before simdjson, which says that a document failed, not where.
absl::Status CheckSyntax(std::string_view text, std::string_view what, bool with_path = false);

// Returns the byte offset of the first invalid UTF-8 sequence, or npos.
size_t FirstInvalidUtf8(std::string_view s);

}  // namespace cdp::json
