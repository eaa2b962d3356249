/*
 * test_threads.c — the thread contract of cdp.h (rule 6), meant to run under
 * ThreadSanitizer as well: readers query one engine while two writers ingest into it.
 * Every read must see a whole state: an identifier that resolves belongs to a person that
 * can be read and lists it; statistics and the feed read back as complete JSON.
 * The harness's CHECK counters are not thread-safe, so threads count their own failures
 * and the main thread checks the totals.
 */
#define _POSIX_C_SOURCE 200809L /* rand_r */
#include <pthread.h>
#include <stdatomic.h>

#include "capi_test.h"

enum { kWriters = 2, kReaders = 3, kBatches = 30, kPerBatch = 100, kMaxReads = 20000 };

static cdp_engine *g_engine;
static cdp_expr *g_expr;  /* compiled before the threads start: compiling is a write */
static atomic_int g_writers_left = kWriters;

/* Writer w ingests mobiles w, w + kWriters, ...; mobile i shares member number i / 3 with
 * two others (mobile allows 3 per person), so persons merge across the writers' batches. */
static void *writer(void *arg) {
  int w = (int)(intptr_t)arg;
  long failures = 0;
  char *batch = malloc((size_t)kPerBatch * 256);
  for (int b = 0; b < kBatches && batch; ++b) {
    size_t len = 0;
    for (int k = 0; k < kPerBatch; ++k) {
      int i = (b * kPerBatch + k) * kWriters + w;
      len += (size_t)sprintf(batch + len,
                             "{\"source\":\"w%d\",\"ts\":%d,\"ids\":{\"mobile\":\"139%08d\","
                             "\"member_no\":\"M%d\"},\"attrs\":{\"writer\":%d},"
                             "\"event\":{\"type\":\"visit\",\"amount\":1}}\n",
                             w, 1000 + i, i, i / 3, w);
    }
    cdp_buf report = CDP_BUF_INIT;
    if (cdp_ingest_ndjson(&report, g_engine, batch, len, 0) != CDP_OK) ++failures;
    else if (json_int(report.ptr, "\"accepted\":") != kPerBatch) ++failures;
    cdp_buf_free(&report);
  }
  free(batch);
  atomic_fetch_sub(&g_writers_left, 1);
  return (void *)(intptr_t)failures;
}

struct reader_result { long reads, found, failures; };

static void *reader(void *arg) {
  struct reader_result *r = arg;
  unsigned seed = (unsigned)(uintptr_t)arg;
  cdp_buf out = CDP_BUF_INIT;
  char mobile[32], other[32];
  const int total = kWriters * kBatches * kPerBatch;
  /* Read while the writers work (bounded, so a reader-preferring lock cannot starve them). */
  while ((atomic_load(&g_writers_left) > 0 && r->reads < kMaxReads) || r->reads < 50) {
    int i = (int)(rand_r(&seed) % (unsigned)total);
    snprintf(mobile, sizeof mobile, "139%08d", i);
    uint64_t id = 0;
    int32_t rc = cdp_resolve(&id, g_engine, "mobile", 6, mobile, strlen(mobile));
    if (rc == CDP_OK) {
      ++r->found;
      /* The person it resolved to can be read, and lists it (even if absorbed since). */
      if (cdp_person_identifiers(&out, g_engine, id, 0) != CDP_OK || !contains(out.ptr, mobile))
        ++r->failures;
      /* Its profile and an expression over it: the profile layer under the same lock. */
      if (cdp_person_get(&out, g_engine, id, CDP_MASK) != CDP_OK || !contains(out.ptr, "\"visit\":{"))
        ++r->failures;
      if (cdp_expr_eval(&out, g_expr, id, 86400000) != CDP_OK || !contains(out.ptr, "\"value\":true"))
        ++r->failures;
      snprintf(other, sizeof other, "139%08d", i ^ 1);
      rc = cdp_explain(&out, g_engine, "mobile", 6, mobile, strlen(mobile), "mobile", 6, other,
                       strlen(other));
      if (rc != CDP_OK && rc != CDP_ENOTFOUND) ++r->failures;
    } else if (rc != CDP_ENOTFOUND) {
      ++r->failures;
    }
    if (cdp_engine_stats(&out, g_engine) != CDP_OK || !contains(out.ptr, "\"memory\":{")) ++r->failures;
    if (cdp_feed_read(&out, g_engine, 0, 20) != CDP_OK || !contains(out.ptr, "\"next\":")) ++r->failures;
    ++r->reads;
  }
  cdp_buf_free(&out);
  return NULL;
}

static void test_readers_see_whole_states_while_writers_ingest(void) {
  pthread_t writers[kWriters], readers[kReaders];
  struct reader_result results[kReaders];
  memset(results, 0, sizeof results);
  REQUIRE_RC(CDP_OK, cdp_engine_open(&g_engine, NULL, 0, NULL));
  REQUIRE_RC(CDP_OK, cdp_expr_compile(&g_expr, g_engine, SV("count(visit) >= 1 && attrs.writer >= 0"), 0));
  for (int k = 0; k < kReaders; ++k) REQUIRE(pthread_create(&readers[k], NULL, reader, &results[k]) == 0);
  for (int w = 0; w < kWriters; ++w)
    REQUIRE(pthread_create(&writers[w], NULL, writer, (void *)(intptr_t)w) == 0);
  long writer_failures = 0;
  for (int w = 0; w < kWriters; ++w) {
    void *failures;
    pthread_join(writers[w], &failures);
    writer_failures += (long)(intptr_t)failures;
  }
  long reads = 0, found = 0, reader_failures = 0;
  for (int k = 0; k < kReaders; ++k) {
    pthread_join(readers[k], NULL);
    reads += results[k].reads;
    found += results[k].found;
    reader_failures += results[k].failures;
  }
  printf("  %ld reads by %d readers (%ld found) during %d batches by %d writers\n", reads,
         kReaders, found, kBatches * kWriters, kWriters);
  CHECK(writer_failures == 0);
  CHECK(reader_failures == 0);
  CHECK(reads >= 50 * kReaders);
  /* The final state is what one thread would have built: 3 mobiles per member number. */
  cdp_buf stats = CDP_BUF_INIT;
  CHECK_RC(CDP_OK, cdp_engine_stats(&stats, g_engine));
  CHECK(json_int(stats.ptr, "\"persons\":") == kWriters * kBatches * kPerBatch / 3);
  CHECK(json_int(stats.ptr, "\"conflicts\":") == 0);
  cdp_buf_free(&stats);
  cdp_expr_free(g_expr);
  cdp_engine_close(g_engine);
}

/* cdp_error_last is per thread: another thread's failure does not overwrite it. */
static void *fail_in_thread(void *arg) {
  (void)arg;
  uint64_t id;
  cdp_resolve(&id, NULL, "mobile", 6, "1", 1);  /* CDP_EMISUSE on this thread */
  return NULL;
}

static void test_error_last_is_per_thread(void) {
  cdp_engine *e = NULL;
  REQUIRE_RC(CDP_EINVALID, cdp_engine_open(&e, "{", 1, NULL));
  pthread_t t;
  REQUIRE(pthread_create(&t, NULL, fail_in_thread, NULL) == 0);
  pthread_join(t, NULL);
  CHECK(contains(cdp_error_last(), "config"));
}

int main(void) {
  RUN(test_readers_see_whole_states_while_writers_ingest);
  RUN(test_error_last_is_per_thread);
  return finish();
}
