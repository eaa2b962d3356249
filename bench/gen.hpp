// bench/gen.hpp — a deterministic generator of noisy omnichannel touchpoint records with
// ground truth, for the OneID benchmark (bench_oneid) and the cdp_gen tool.
//
// It plays a consumer brand's year: persons meet the brand at the POS, on the WeChat
// official accounts, through a shopping guide's WeCom, in the mini program, on Tmall and
// JD, in the app and at the CRM's member desk. Each touchpoint becomes one NDJSON record in
// the format of docs/records.md. The data is dirty the way real data is: mobiles written
// as +86 / 0086 / with spaces and dashes, persons with two mobiles, placeholder values
// (13800138000, "null") typed by cashiers, each store's own number entered for walk-in
// customers, family tablets shared by a household, store kiosks shared by thousands, and
// anonymous app views that carry only a device id.
//
// The generator knows every record's true person, and the ceiling: the pairwise recall
// the data allows an engine that links only on evidence that is actually true (see
// kCeilingDefinition). Everything is a pure function of (persons, seed): the same options
// give byte-identical output on every machine.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace cdpbench {

struct GenOptions {
  uint32_t persons = 1'000'000;  // at most 100,000,000 (identifier spaces stay unique)
  uint64_t seed = 42;
};

// What the generator knows about the data it made. Pair counts are unordered pairs of
// records of one true person.
struct Truth {
  uint64_t persons = 0;               // true persons (each has at least one record)
  uint64_t largest_person = 0;        // records of the person with the most records
  uint64_t true_pairs = 0;            // pairs of records of the same person
  uint64_t ceiling_pairs = 0;         // ... joined by a path of clean identifiers
  uint64_t strong_ceiling_pairs = 0;  // ... joined by a path of clean strong identifiers
  uint64_t isolated_records = 0;      // records with no clean identifier at all

  // Noise, in records.
  uint64_t formatted_mobiles = 0;     // mobiles written with +86, 0086, spaces or dashes
  uint64_t blocklisted = 0;           // carrying 13800138000 or "null"
  uint64_t store_numbers = 0;         // carrying a store's number instead of the buyer's
  uint64_t family_devices = 0;        // carrying a household's shared device
  uint64_t kiosk_devices = 0;         // carrying a store kiosk's device
  uint64_t device_only = 0;           // whose only identifier is a device_id
  uint32_t stores = 0;                // distinct store numbers (each shared by walk-ins)
  uint32_t kiosks = 0;                // distinct kiosk devices
  uint32_t shared_family_devices = 0; // household devices seen with 2 or more persons
};

// Kinds of noise a line carries (Dataset::noise), so a benchmark can say where errors come from.
enum Noise : uint8_t {
  kNoiseStoreNumber = 1,  // a store's number typed instead of the buyer's mobile
  kNoiseBlocklisted = 2,  // 13800138000 or "null"
  kNoiseFamilyDevice = 4, // a household's shared device
  kNoiseKioskDevice = 8,  // a store kiosk's device
  kNoiseDeviceOnly = 16,  // no identifier but a device_id
  kNoiseNoClean = 32,     // no clean identifier at all (see kCeilingDefinition)
};

// The generated data: NDJSON in memory plus, per line, the truth and the identifiers.
struct Dataset {
  std::string ndjson;                // every record, one per line, in shuffled order
  std::vector<uint64_t> line_start;  // line i is [line_start[i], line_start[i+1]), '\n' included
  std::vector<uint32_t> person;      // the true person of line i
  std::vector<uint8_t> noise;        // the Noise bits of line i
  // The identifiers of line i are keys[key_start[i] .. key_start[i+1]). Two keys are equal
  // exactly when the identifiers are equal after normalisation (same type, scope and
  // value), blocklisted placeholders included: what a naive linker would join on.
  std::vector<uint32_t> key_start;
  std::vector<uint64_t> keys;
  Truth truth;

  size_t records() const { return person.size(); }
  std::string_view line(size_t i) const {
    return std::string_view(ndjson).substr(line_start[i], line_start[i + 1] - line_start[i]);
  }
};

Dataset Generate(const GenOptions& options);

// The definition of the recall ceiling, in words, for the benchmark to print.
extern const char kCeilingDefinition[];

}  // namespace cdpbench
