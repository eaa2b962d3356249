/* lifecycle.c — lifecycle machines from C: a week of simulated time.
 *
 * Defines the machines of a definition file (AIPL, FAST+ layers, activity), ingests the
 * records, advances the engine's clock one day at a time for a week, delivers the
 * outbox's intents (here: prints them) and acknowledges them, and prints one person's
 * lifecycle: current states and the history of transitions with their reasons.
 * Usage: lifecycle MACHINES.json MOBILE FILE...
 *
 * The machines are defined before the records arrive, so every record moves them; the
 * files are ingested as one batch, which the engine replays in time order.
 */
#include <cdp.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define JAN7 INT64_C(1704556800000) /* 2024-01-07T00:00:00+08:00, after the last record */
#define DAY INT64_C(86400000)

static void die(const char *what, int32_t rc) {
  fprintf(stderr, "lifecycle: %s: %s: %s\n", what, cdp_status_str(rc), cdp_error_last());
  exit(1);
}

/* Appends a file to a growing buffer. */
static void slurp(const char *path, char **data, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    perror(path);
    exit(1);
  }
  for (size_t n, cap = *len;; *len += n) {
    if (*len == cap && !(*data = realloc(*data, cap = cap * 2 + 65536))) exit(1);
    if ((n = fread(*data + *len, 1, cap - *len, f)) == 0) break;
  }
  fclose(f);
}

/* The integer after "key": in json, or -1. */
static int64_t field(const char *json, const char *key) {
  char quoted[64];
  snprintf(quoted, sizeof quoted, "\"%s\":", key);
  const char *at = json ? strstr(json, quoted) : NULL;
  return at ? strtoll(at + strlen(quoted), NULL, 10) : -1;
}

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: lifecycle MACHINES.json MOBILE FILE...\n");
    return 2;
  }
  cdp_engine *engine = NULL;
  cdp_buf out = CDP_BUF_INIT;
  int32_t rc = cdp_engine_open(&engine, NULL, 0, NULL);
  if (rc != CDP_OK) die("open", rc);

  char *data = NULL;
  size_t len = 0;
  slurp(argv[1], &data, &len);
  if ((rc = cdp_lifecycle_define(&out, engine, data, len)) != CDP_OK) die(argv[1], rc);
  printf("defined: %s\n", out.ptr);
  len = 0;
  for (int i = 3; i < argc; ++i) slurp(argv[i], &data, &len);
  if ((rc = cdp_ingest_ndjson(NULL, engine, data, len, 0)) != CDP_OK) die("ingest", rc);
  free(data);

  /* A week, a day at a time: each advance fires the deadlines due by then. */
  for (int day = 0; day < 7; ++day) {
    if ((rc = cdp_advance(&out, engine, JAN7 + day * DAY)) != CDP_OK) die("advance", rc);
    printf("day %d: %s\n", day + 1, strstr(out.ptr, "\"lifecycle\":"));
  }

  /* The host delivers what the outbox holds, then acknowledges it; an intent not
   * acknowledged would be read again, with the same idempotency key. */
  if ((rc = cdp_outbox_read(&out, engine, 0, 10000)) != CDP_OK) die("outbox", rc);
  int64_t pending = field(out.ptr, "pending"), last = 0, shown = 0;
  for (const char *p = strstr(out.ptr, "{\"id\":"); p; p = strstr(p + 1, "{\"id\":")) {
    last = field(p, "id");
    if (shown++ < 3) printf("  intent %.*s\n", (int)(strstr(p, ",\"at\":") - p), p);
  }
  char ack[64];
  snprintf(ack, sizeof ack, "{\"through\":%" PRId64 "}", last);
  if ((rc = cdp_outbox_ack(&out, engine, ack, strlen(ack))) != CDP_OK) die("ack", rc);
  printf("outbox: %" PRId64 " intents, %" PRId64 " acknowledged\n", pending, field(out.ptr, "acked"));

  uint64_t oneid = 0;
  if ((rc = cdp_resolve(&oneid, engine, "mobile", 6, argv[2], strlen(argv[2]))) != CDP_OK) die(argv[2], rc);
  if ((rc = cdp_person_lifecycle(&out, engine, oneid)) != CDP_OK) die("person", rc);
  const char *states = strstr(out.ptr, "\"states\":"), *end = strstr(states, ",\"loyalty\":");
  int kept = 0;
  for (const char *p = strstr(out.ptr, "{\"ts\":"); p && p < states; p = strstr(p + 1, "{\"ts\":")) kept++;
  printf("%s: %d transitions in the history, %.*s\n", argv[2], kept, end ? (int)(end - states) : (int)strlen(states),
         states);
  cdp_buf_free(&out);
  return cdp_engine_close(engine) == CDP_OK ? 0 : 1;
}
