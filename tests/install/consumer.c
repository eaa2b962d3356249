/* A C11 consumer of the installed tree, built with pkg-config: one record in, its OneID out. */
#include <cdp.h>
#include <stdio.h>

int main(void) {
  static const char record[] =
      "{\"source\":\"pos\",\"ts\":1700000000000,\"ids\":{\"mobile\":\"+86 139-1720-5836\"}}";
  cdp_engine *engine = NULL;
  uint64_t oneid = 0;
  int32_t rc = cdp_engine_open(&engine, NULL, 0, NULL);
  if (rc == CDP_OK) rc = cdp_ingest_record(NULL, engine, record, sizeof record - 1);
  if (rc == CDP_OK) rc = cdp_resolve(&oneid, engine, "mobile", 6, "13917205836", 11);
  if (rc != CDP_OK) fprintf(stderr, "%s: %s\n", cdp_status_str(rc), cdp_error_last());
  cdp_engine_close(engine);
  if (rc != CDP_OK || oneid == 0) return 1;
  printf("cdpcore %s (C, pkg-config): OneID %llu\n", cdp_version_string(),
         (unsigned long long)oneid);
  return 0;
}
