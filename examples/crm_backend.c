/* crm_backend.c — cdpcore as a CRM backend written in C would use it.
 *
 * Ingests each file as one batch, reports rejected lines, resolves a member's mobile to
 * the OneID its tables are keyed by, reads that person, and follows the change feed so
 * that rows keyed by an absorbed OneID move to the survivor.
 * Usage: crm_backend MOBILE FILE...
 * With CRM_DATA_DIR set, the engine is persistent in that directory (every write is
 * logged before it returns), and a snapshot is written at the end so that the next start
 * loads the state instead of replaying the log.
 *
 * The result documents are JSON; a real service would read them with its JSON library.
 * To stay self-contained this example finds the few fields it needs by name.
 */
#include <cdp.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Prints the failed call and cdp_error_last(), then exits. */
static void die(const char *what, int32_t rc) {
  fprintf(stderr, "crm_backend: %s: %s: %s\n", what, cdp_status_str(rc), cdp_error_last());
  exit(1);
}

/* The number after "key": at or after p, or 0 when the key does not follow. */
static uint64_t field_u64(const char *p, const char *key) {
  char quoted[64];
  snprintf(quoted, sizeof quoted, "\"%s\":", key);
  const char *at = p ? strstr(p, quoted) : NULL;
  return at ? strtoull(at + strlen(quoted), NULL, 10) : 0;
}

static char *read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  char *data = NULL;
  size_t cap = 0;
  *len = 0;
  for (size_t n;; *len += n) {
    if (*len == cap && !(data = realloc(data, cap = cap * 2 + 65536))) exit(1);
    if ((n = fread(data + *len, 1, cap - *len, f)) == 0) break;
  }
  fclose(f);
  return data;
}

/* One batch: the report says how many lines landed and names each rejected one. */
static void ingest_file(cdp_engine *engine, const char *path) {
  size_t len;
  char *data = read_file(path, &len);
  if (!data) {
    perror(path);
    exit(1);
  }
  cdp_buf report = CDP_BUF_INIT;
  int32_t rc = cdp_ingest_ndjson(&report, engine, data, len, 0);
  free(data);
  if (rc != CDP_OK) die(path, rc);
  printf("%s: %" PRIu64 " accepted, %" PRIu64 " rejected\n", path, field_u64(report.ptr, "accepted"),
         field_u64(report.ptr, "rejected"));
  /* "errors":[{"line":3,"field":"ts","message":"..."}, ...]: print each as it stands. */
  for (const char *e = strstr(report.ptr, "\"errors\":[{"); e && (e = strstr(e, "{\"line\":"));) {
    const char *end = strstr(e, "\"}");
    printf("  rejected %.*s\n", end ? (int)(end - e + 2) : (int)strlen(e), e);
    e = end;
  }
  cdp_buf_free(&report);
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: crm_backend MOBILE FILE...\n");
    return 2;
  }
  cdp_engine *engine = NULL;
  const char *dir = getenv("CRM_DATA_DIR"); /* NULL: in memory */
  int32_t rc = cdp_engine_open(&engine, NULL, 0, dir); /* default config */
  if (rc != CDP_OK) die("open", rc);

  for (int i = 2; i < argc; ++i) ingest_file(engine, argv[i]);

  /* The member's mobile, as the front desk typed it: the engine normalises it. */
  const char *mobile = argv[1];
  uint64_t oneid = 0;
  rc = cdp_resolve(&oneid, engine, "mobile", 6, mobile, strlen(mobile));
  if (rc == CDP_ENOTFOUND) {
    printf("mobile %s: no such member\n", mobile);
  } else if (rc != CDP_OK) {
    die("resolve", rc);
  } else {
    cdp_buf person = CDP_BUF_INIT;
    if ((rc = cdp_person_get(&person, engine, oneid, CDP_MASK)) != CDP_OK) die("person", rc);
    printf("mobile %s is OneID %" PRIu64 ": %s\n", mobile, oneid, person.ptr);
    cdp_buf_free(&person);
  }

  /* Follow the feed from where we left off (a service keeps the cursor in its own
   * database). One event per read keeps the field lookups inside one event. */
  uint64_t cursor = 0, merges = 0;
  for (;;) {
    cdp_buf page = CDP_BUF_INIT;
    if ((rc = cdp_feed_read(&page, engine, cursor, 1)) != CDP_OK) die("feed", rc);
    int caught_up = strstr(page.ptr, "\"events\":[]") != NULL;
    if (!caught_up && strstr(page.ptr, "\"kind\":\"merged\"")) {
      uint64_t survivor = field_u64(page.ptr, "survivor"), absorbed = field_u64(page.ptr, "absorbed");
      ++merges; /* here a real backend runs the statement in its own database */
      printf("UPDATE orders SET oneid = %" PRIu64 " WHERE oneid = %" PRIu64 ";\n", survivor, absorbed);
    }
    cursor = field_u64(strstr(page.ptr, "\"next\":"), "next");
    cdp_buf_free(&page);
    if (caught_up) break;
  }
  printf("%" PRIu64 " merges migrated; the feed is read up to cursor %" PRIu64 "\n", merges, cursor);
  if ((rc = cdp_feed_trim(engine, cursor)) != CDP_OK) die("trim", rc); /* consumed: free it */

  if (dir) {
    cdp_buf snap = CDP_BUF_INIT;
    if ((rc = cdp_snapshot(&snap, engine)) != CDP_OK) die("snapshot", rc);
    printf("snapshot %s\n", snap.ptr);
    cdp_buf_free(&snap);
  }

  return cdp_engine_close(engine) == CDP_OK ? 0 : 1;
}
