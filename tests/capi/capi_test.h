/*
 * capi_test.h — the tiny harness shared by the C API tests (C11, no dependencies).
 *
 *   CHECK(cond)            counts a pass, or prints file:line, the expression and
 *                          cdp_error_last() and counts a failure;
 *   CHECK_RC(want, call)   the same for a status code, naming both codes;
 *   REQUIRE / REQUIRE_RC   as above, but return from the test function on failure
 *                          (for steps the rest of the test depends on);
 *   RUN(test)              runs one test function; finish() prints "N passed, N failed".
 *
 * Test inputs are written with single quotes, which the helpers turn into double quotes
 * before they reach the library ("{'ts':1}" is {"ts":1}), so records stay readable.
 * Results are checked without a JSON library: strstr for distinctive substrings and
 * json_int() for the integer after a key.
 */
#ifndef CDP_CAPI_TEST_H
#define CDP_CAPI_TEST_H

#include "cdp.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int tests_passed, tests_failed;

/* Both checks copy cdp_error_last() before anything else calls into the library, which
 * may reset it. */
static inline bool check_(bool ok, const char *file, int line, const char *expr) {
  if (ok) {
    tests_passed++;
    return true;
  }
  char err[1024];
  snprintf(err, sizeof err, "%s", cdp_error_last());
  tests_failed++;
  printf("%s:%d: FAILED: %s\n    cdp_error_last(): \"%s\"\n", file, line, expr, err);
  return false;
}

static inline bool check_rc_(int32_t want, int32_t got, const char *file, int line,
                             const char *call) {
  if (got == want) {
    tests_passed++;
    return true;
  }
  char err[1024];
  snprintf(err, sizeof err, "%s", cdp_error_last());
  tests_failed++;
  printf("%s:%d: FAILED: %s\n    returned %s, expected %s\n    cdp_error_last(): \"%s\"\n",
         file, line, call, cdp_status_str(got), cdp_status_str(want), err);
  return false;
}

#define CHECK(cond) check_((cond) != 0, __FILE__, __LINE__, #cond)
#define CHECK_RC(want, call) check_rc_((want), (call), __FILE__, __LINE__, #call)
#define REQUIRE(cond) do { if (!CHECK(cond)) return; } while (0)
#define REQUIRE_RC(want, call) do { if (!CHECK_RC(want, call)) return; } while (0)

#define RUN(test) (printf("-- %s\n", #test), fflush(stdout), test())

static inline int finish(void) {
  printf("%d passed, %d failed\n", tests_passed, tests_failed);
  return tests_failed == 0 ? 0 : 1;
}

/* A C string as the (pointer, length) pair the API takes. */
#define SV(s) (s), (uint64_t)strlen(s)

/* ---- single-quoted inputs ------------------------------------------------------------ */

/* A malloc'd copy of s with every ' turned into ". */
static inline char *dq(const char *s) {
  size_t n = strlen(s);
  char *d = malloc(n + 1);
  if (!d) abort();
  for (size_t i = 0; i <= n; i++) d[i] = s[i] == '\'' ? '"' : s[i];
  return d;
}

/* ---- reading JSON results ------------------------------------------------------------ */

#define JSON_MISSING INT64_MIN

/* The integer right after the first occurrence of key (give the quotes and colon:
 * "\"accepted\":"), or JSON_MISSING. */
static inline int64_t json_int(const char *json, const char *key) {
  const char *p = json ? strstr(json, key) : NULL;
  if (!p) return JSON_MISSING;
  p += strlen(key);
  char *end;
  long long v = strtoll(p, &end, 10);
  return end == p ? JSON_MISSING : (int64_t)v;
}

/* The i-th integer of the array that follows key ("\"assign\":["), or JSON_MISSING. */
static inline int64_t json_array_at(const char *json, const char *key, size_t i) {
  const char *p = json ? strstr(json, key) : NULL;
  if (!p) return JSON_MISSING;
  p += strlen(key);
  for (size_t k = 0;; k++) {
    char *end;
    long long v = strtoll(p, &end, 10);
    if (end == p) return JSON_MISSING; /* "]" or not a number */
    if (k == i) return (int64_t)v;
    p = end;
    if (*p != ',') return JSON_MISSING;
    p++;
  }
}

/* The number of integers in the array that follows key, or -1 if key is absent. */
static inline int json_array_len(const char *json, const char *key) {
  const char *p = json ? strstr(json, key) : NULL;
  if (!p) return -1;
  int n = 0;
  while (json_array_at(p, key, (size_t)n) != JSON_MISSING) n++;
  return n;
}

/* How many times needle occurs in hay. */
static inline int count_of(const char *hay, const char *needle) {
  int n = 0;
  size_t len = strlen(needle);
  for (const char *p = hay ? strstr(hay, needle) : NULL; p; p = strstr(p + len, needle)) n++;
  return n;
}

static inline bool contains(const char *hay, const char *needle) {
  return hay && strstr(hay, needle) != NULL;
}

/* True when an ingest report lists an error for line whose "field" contains field
 * ({"line":3,"field":"ts","message":"..."}; other keys may come between). */
static inline bool has_error(const char *report, int line, const char *field) {
  char pat[64];
  snprintf(pat, sizeof pat, "{\"line\":%d,", line);
  const char *p = report ? strstr(report, pat) : NULL;
  if (!p) return false;
  const char *next = strstr(p + 1, "{\"line\":"); /* the next entry, if any */
  p = strstr(p, "\"field\":\"");
  if (!p || (next && p > next)) return false;
  p += strlen("\"field\":\"");
  const char *q = strchr(p, '"');
  size_t flen = strlen(field);
  for (; q && p + flen <= q; p++)
    if (memcmp(p, field, flen) == 0) return true;
  return false;
}

/* ---- engine shortcuts ---------------------------------------------------------------- */

/* An in-memory engine with the default config; NULL (and a failed check) on failure. */
#define open_default() open_default_(__FILE__, __LINE__)
static inline cdp_engine *open_default_(const char *file, int line) {
  cdp_engine *e = NULL;
  check_rc_(CDP_OK, cdp_engine_open(&e, NULL, 0, NULL), file, line, "open_default()");
  return e;
}

/* An in-memory engine with a single-quoted config (keys it omits take the defaults). */
#define open_with(config) open_with_((config), __FILE__, __LINE__)
static inline cdp_engine *open_with_(const char *config, const char *file, int line) {
  cdp_engine *e = NULL;
  char *d = dq(config);
  check_rc_(CDP_OK, cdp_engine_open(&e, d, strlen(d), NULL), file, line, config);
  free(d);
  return e;
}

/* Ingests single-quoted NDJSON; the report goes to out (may be NULL). */
static inline int32_t ingest(cdp_buf *out, cdp_engine *e, const char *ndjson, uint32_t flags) {
  char *d = dq(ndjson);
  int32_t rc = cdp_ingest_ndjson(out, e, d, strlen(d), flags);
  free(d);
  return rc;
}

/* Ingests single-quoted NDJSON and expects CDP_OK with no line rejected. */
#define INGEST_OK(e, ndjson) ingest_ok_((e), (ndjson), __FILE__, __LINE__)
static inline bool ingest_ok_(cdp_engine *e, const char *ndjson, const char *file, int line) {
  cdp_buf out = CDP_BUF_INIT;
  int32_t rc = ingest(&out, e, ndjson, 0);
  bool ok = check_rc_(CDP_OK, rc, file, line, "cdp_ingest_ndjson") &&
            check_(json_int(out.ptr, "\"rejected\":") == 0, file, line, "no line rejected");
  if (!ok) printf("    report: %s\n", out.ptr ? out.ptr : "(none)");
  cdp_buf_free(&out);
  return ok;
}

/* The OneID an identifier resolves to, or 0 (never a OneID) when it resolves nowhere. */
static inline uint64_t oneid_of(cdp_engine *e, const char *type, const char *value) {
  uint64_t id = 0;
  return cdp_resolve(&id, e, SV(type), SV(value)) == CDP_OK ? id : 0;
}

#endif /* CDP_CAPI_TEST_H */
