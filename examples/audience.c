/* audience.c — tags and an audience from C: a win-back campaign.
 *
 * Ingests the files, defines two tags (what each customer spent, and a value tier that
 * reads it), moves the engine's clock to the campaign date, counts the high-value
 * customers who have not bought for 90 days with a 10% holdout, exports the target group
 * for SMS, and saves the audience so a later recount reports who entered and left.
 * Usage: audience FILE...
 *
 * Results are JSON (the export is CSV); to stay self-contained this example finds the
 * few numbers it needs by name, as crm_backend.c does.
 */
#include <cdp.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CAMPAIGN_DAY INT64_C(1703952000000) /* 2023-12-31T00:00:00+08:00 */

static void die(const char *what, int32_t rc) {
  fprintf(stderr, "audience: %s: %s: %s\n", what, cdp_status_str(rc), cdp_error_last());
  exit(1);
}

/* The integer after "key": in json, or -1. */
static int64_t field(const char *json, const char *key) {
  char quoted[64];
  snprintf(quoted, sizeof quoted, "\"%s\":", key);
  const char *at = json ? strstr(json, quoted) : NULL;
  return at ? strtoll(at + strlen(quoted), NULL, 10) : -1;
}

static void ingest_file(cdp_engine *engine, const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    perror(path);
    exit(1);
  }
  char *data = NULL;
  size_t len = 0, cap = 0;
  for (size_t n;; len += n) {
    if (len == cap && !(data = realloc(data, cap = cap * 2 + 65536))) exit(1);
    if ((n = fread(data + len, 1, cap - len, f)) == 0) break;
  }
  fclose(f);
  int32_t rc = cdp_ingest_ndjson(NULL, engine, data, len, 0); /* rejected lines: see crm_backend.c */
  free(data);
  if (rc != CDP_OK) die(path, rc);
}

static const char kTags[] =
    "[{\"name\":\"spend\",\"kind\":\"statistic\",\"expr\":\"sum(purchase.amount) + sum(order.amount)\"},"
    " {\"name\":\"value_tier\",\"kind\":\"rule\",\"rules\":["
    "   {\"when\":\"tags.spend >= yuan(500)\",\"value\":\"high\"},"
    "   {\"when\":\"tags.spend > 0\",\"value\":\"low\"}],\"default\":\"none\"}]";

/* The value tier is answered from its bitmap; the 90-day condition per remaining person. */
static const char kWinback[] =
    "{\"expr\":\"tags.value_tier == \\\"high\\\" && count(purchase, 90d) + count(order, 90d) == 0\","
    " \"holdout\":{\"salt\":\"winback-2024\",\"percent\":10}}";

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: audience FILE...\n");
    return 2;
  }
  cdp_engine *engine = NULL;
  int32_t rc = cdp_engine_open(&engine, NULL, 0, NULL);
  if (rc != CDP_OK) die("open", rc);
  for (int i = 1; i < argc; ++i) ingest_file(engine, argv[i]);

  /* The clock first, so the tags are evaluated on the campaign day; then the tags. */
  cdp_buf out = CDP_BUF_INIT;
  if ((rc = cdp_advance(NULL, engine, CAMPAIGN_DAY)) != CDP_OK) die("advance", rc);
  if ((rc = cdp_tags_define(&out, engine, kTags, strlen(kTags))) != CDP_OK) die("define tags", rc);
  printf("tags: %s\n", out.ptr);

  if ((rc = cdp_audience_count(&out, engine, kWinback, strlen(kWinback))) != CDP_OK) die("count", rc);
  printf("high value, no purchase in 90 days: %" PRId64 " (target %" PRId64 ", holdout %" PRId64 ")\n",
         field(out.ptr, "count"), field(out.ptr, "target"), field(out.ptr, "holdout"));

  /* The target group for SMS: a mobile when the customer has one, else the source they
   * came from last. A real service hands this file to its SMS gateway. */
  char request[512];
  snprintf(request, sizeof request, "%.*s, \"group\":\"target\", \"channel\":[\"mobile\"], \"format\":\"csv\"}",
           (int)strlen(kWinback) - 1, kWinback);
  if ((rc = cdp_audience_export(&out, engine, request, strlen(request))) != CDP_OK) die("export", rc);
  const char *end = out.ptr;
  for (int lines = 0; lines < 4 && (end = strchr(end, '\n')) != NULL; ++lines) end++;
  printf("export (first rows):\n%.*s", end ? (int)(end - out.ptr) : (int)out.size, out.ptr);

  /* Saved, it can be recounted after every batch: the feed gets entered and left too. */
  if ((rc = cdp_audience_save(NULL, engine, "winback", 7, kWinback, strlen(kWinback))) != CDP_OK) die("save", rc);
  if ((rc = cdp_audience_recount(&out, engine, "winback", 7)) != CDP_OK) die("recount", rc);
  printf("winback: %" PRId64 " persons, %" PRId64 " entered since the last count\n", field(out.ptr, "count"),
         field(out.ptr, "entered"));
  cdp_buf_free(&out);
  return cdp_engine_close(engine) == CDP_OK ? 0 : 1;
}
