/* pipl_request.c — a member's access and deletion requests (PIPL arts. 45 and 47).
 *
 * Loads a channel file into a persistent engine, answers the access request with
 * everything the engine holds about the member, then forgets the member: the engine
 * removes the person from every layer, rewrites its directory so no file holds the
 * member's values, and refuses later records that carry them (a snapshot then removes
 * the refused record from the log too).
 * Usage: pipl_request DIR MOBILE FILE
 */
#include <cdp.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void die(const char *what, int32_t rc) {
  fprintf(stderr, "pipl_request: %s: %s: %s\n", what, cdp_status_str(rc), cdp_error_last());
  exit(1);
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

int main(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: pipl_request DIR MOBILE FILE\n");
    return 2;
  }
  const char *dir = argv[1], *mobile = argv[2];
  cdp_engine *engine = NULL;
  int32_t rc = cdp_engine_open(&engine, NULL, 0, dir);
  if (rc != CDP_OK) die("open", rc);
  size_t len;
  char *data = read_file(argv[3], &len);
  if (!data) {
    perror(argv[3]);
    return 1;
  }
  if ((rc = cdp_ingest_ndjson(NULL, engine, data, len, 0)) != CDP_OK) die("ingest", rc);

  uint64_t oneid = 0;
  if ((rc = cdp_resolve(&oneid, engine, "mobile", 6, mobile, strlen(mobile))) != CDP_OK) die("resolve", rc);

  /* Access: one JSON document, unmasked (it goes to the member). */
  cdp_buf doc = CDP_BUF_INIT;
  if ((rc = cdp_person_export(&doc, engine, oneid)) != CDP_OK) die("export", rc);
  printf("export of OneID %" PRIu64 ": %zu bytes\n%.300s...\n", oneid, (size_t)doc.size, doc.ptr);
  cdp_buf_free(&doc);

  /* Deletion, by the identifier the member gave. The report lists what was removed
   * and the snapshot that replaced every older file of the directory. */
  char request[256];
  snprintf(request, sizeof request, "{\"identifiers\":[{\"type\":\"mobile\",\"value\":\"%s\"}]}", mobile);
  cdp_buf report = CDP_BUF_INIT;
  if ((rc = cdp_person_forget(&report, engine, request, strlen(request))) != CDP_OK) die("forget", rc);
  printf("forget: %s\n", report.ptr);
  cdp_buf_free(&report);

  /* A channel that has not heard yet sends the same member again: refused, with the
   * type named and the value not. */
  char late[256];
  snprintf(late, sizeof late, "{\"source\":\"pos\",\"ts\":1735660800000,\"ids\":{\"mobile\":\"%s\"}}\n", mobile);
  cdp_buf late_report = CDP_BUF_INIT;
  if ((rc = cdp_ingest_ndjson(&late_report, engine, late, strlen(late), 0)) != CDP_OK) die("late record", rc);
  printf("late record: %s\n", late_report.ptr);
  cdp_buf_free(&late_report);
  /* The refused line is in the log as it came (replay must refuse it too) until the next
   * snapshot, which removes it: take one now rather than wait for the automatic one. */
  if ((rc = cdp_snapshot(NULL, engine)) != CDP_OK) die("snapshot", rc);

  if ((rc = cdp_resolve(&oneid, engine, "mobile", 6, mobile, strlen(mobile))) != CDP_ENOTFOUND) {
    fprintf(stderr, "pipl_request: the member is still there\n");
    return 1;
  }
  free(data);
  return cdp_engine_close(engine) == CDP_OK ? 0 : 1;
}
