/* hashed_ids.c — a CRM that keeps no raw mobile or email (PIPL: minimise, de-identify).
 *
 * The config stores mobiles and emails hashed ("hashed": true): the engine keeps an
 * HMAC-SHA-256 of each value under the host's key, with a mask for display, and matches
 * records on it. The key comes from the host (here the environment; in production a
 * key service) and never reaches the directory. Afterwards no file there holds a raw
 * mobile, yet the member is found by the mobile they give at the till.
 * Usage: CDP_ID_KEY=... hashed_ids DIR MOBILE FILE
 */
#include <cdp.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char kConfig[] = "{\"id_types\":{\"mobile\":{\"hashed\":true},\"email\":{\"hashed\":true}}}";

static void die(const char *what, int32_t rc) {
  fprintf(stderr, "hashed_ids: %s: %s: %s\n", what, cdp_status_str(rc), cdp_error_last());
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
  const char *key = getenv("CDP_ID_KEY");
  if (argc != 4 || !key) {
    fprintf(stderr, "usage: CDP_ID_KEY=... hashed_ids DIR MOBILE FILE\n");
    return 2;
  }
  const char *dir = argv[1], *mobile = argv[2];
  cdp_engine *engine = NULL;
  int32_t rc = cdp_engine_open_keyed(&engine, kConfig, strlen(kConfig), dir, key, strlen(key));
  if (rc != CDP_OK) die("open", rc);
  size_t len;
  char *data = read_file(argv[3], &len);
  if (!data) {
    perror(argv[3]);
    return 1;
  }
  if ((rc = cdp_ingest_ndjson(NULL, engine, data, len, 0)) != CDP_OK) die("ingest", rc);
  free(data);

  /* The mobile as the member says it: normalised, hashed under the key, then looked up. */
  uint64_t oneid = 0;
  if ((rc = cdp_resolve(&oneid, engine, "mobile", 6, mobile, strlen(mobile))) != CDP_OK) die("resolve", rc);
  /* Masked, the identifiers read 156****1031; unmasked, as the engine holds them:
   * "#<hash>|<mask>", which the host can join to a vault keyed by the same HMAC. */
  cdp_buf ids = CDP_BUF_INIT;
  if ((rc = cdp_person_identifiers(&ids, engine, oneid, CDP_MASK)) != CDP_OK) die("identifiers", rc);
  printf("OneID %" PRIu64 " masked: %s\n", oneid, ids.ptr);
  if ((rc = cdp_person_identifiers(&ids, engine, oneid, 0)) != CDP_OK) die("identifiers", rc);
  printf("OneID %" PRIu64 " as stored: %s\n", oneid, ids.ptr);
  cdp_buf_free(&ids);
  if ((rc = cdp_snapshot(NULL, engine)) != CDP_OK) die("snapshot", rc);
  return cdp_engine_close(engine) == CDP_OK ? 0 : 1;
}
