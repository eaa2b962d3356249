/*
 * test_library.c — the library-level C API and the engine's life cycle: versions, status
 * names, cdp_error_last(), cdp_buf, the default config, opening and closing, and misuse
 * (NULL out pointers, a NULL engine, a closed engine) answered with CDP_EMISUSE.
 */
#include "capi_test.h"

#include <pthread.h>

static const char *const RECORD =
    "{\"source\":\"pos\",\"ts\":1700000000000,\"ids\":{\"mobile\":\"13917205836\"}}";

static void test_version_matches_header(void) {
  CHECK(cdp_version() == CDP_VERSION_NUMBER);
  char want[32];
  snprintf(want, sizeof want, "%d.%d.%d", CDP_VERSION_MAJOR, CDP_VERSION_MINOR,
           CDP_VERSION_PATCH);
  CHECK(strcmp(cdp_version_string(), want) == 0);
}

static void test_status_str_names_every_code(void) {
  static const struct { int32_t code; const char *name; } codes[] = {
      {CDP_OK, "CDP_OK"},           {CDP_EINVALID, "CDP_EINVALID"},
      {CDP_ENOTFOUND, "CDP_ENOTFOUND"}, {CDP_ECONFLICT, "CDP_ECONFLICT"},
      {CDP_EBUFS, "CDP_EBUFS"},     {CDP_ENOMEM, "CDP_ENOMEM"},
      {CDP_EIO, "CDP_EIO"},         {CDP_EMISUSE, "CDP_EMISUSE"},
      {CDP_EINTERNAL, "CDP_EINTERNAL"}, {CDP_ELIMIT, "CDP_ELIMIT"},
      {CDP_EUNSUPPORTED, "CDP_EUNSUPPORTED"},
  };
  for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
    const char *s = cdp_status_str(codes[i].code);
    /* "CDP_EINVALID: invalid argument": the name, then a colon (so CDP_E is not a
     * prefix match for CDP_EINVALID and the like). */
    size_t n = strlen(codes[i].name);
    if (!CHECK(s != NULL && strncmp(s, codes[i].name, n) == 0 && s[n] == ':'))
      printf("    code %d gave \"%s\"\n", (int)codes[i].code, s ? s : "(null)");
  }
  CHECK(strcmp(cdp_status_str(1), "unknown status") == 0);
  CHECK(strcmp(cdp_status_str(-11), "unknown status") == 0);
  CHECK(strcmp(cdp_status_str(INT32_MIN), "unknown status") == 0);
}

static void test_error_last_is_empty_after_success(void) {
  cdp_buf out = CDP_BUF_INIT;
  cdp_engine *e = open_default();
  REQUIRE(e);
  CHECK_RC(CDP_EMISUSE, cdp_engine_stats(&out, NULL));
  CHECK(cdp_error_last()[0] != '\0');
  CHECK_RC(CDP_OK, cdp_engine_stats(&out, e));
  CHECK(strcmp(cdp_error_last(), "") == 0);

  CHECK_RC(CDP_EMISUSE, cdp_config_default(NULL));
  CHECK_RC(CDP_OK, cdp_config_default(&out));
  CHECK(strcmp(cdp_error_last(), "") == 0);
  cdp_buf_free(&out);
  cdp_engine_close(e);
}

/* Copies this thread's cdp_error_last() into result[64] ("(null)" if NULL). */
static void *read_error_last(void *result) {
  const char *s = cdp_error_last();
  snprintf(result, 64, "%s", s ? s : "(null)");
  return NULL;
}

static void test_error_last_is_thread_local(void) {
  CHECK_RC(CDP_EMISUSE, cdp_engine_stats(NULL, NULL));
  REQUIRE(cdp_error_last()[0] != '\0');
  char seen[64] = "not run";
  pthread_t t;
  REQUIRE(pthread_create(&t, NULL, read_error_last, seen) == 0);
  pthread_join(t, NULL);
  CHECK(strcmp(seen, "") == 0);        /* the other thread made no failed call */
  CHECK(cdp_error_last()[0] != '\0'); /* and this thread's error is intact */
}

static void test_buf_free_accepts_null_and_empty(void) {
  cdp_buf_free(NULL);
  cdp_buf empty = CDP_BUF_INIT;
  cdp_buf_free(&empty);
  CHECK(empty.ptr == NULL && empty.size == 0);
}

static void test_buf_free_resets_to_empty(void) {
  cdp_buf b = CDP_BUF_INIT;
  REQUIRE_RC(CDP_OK, cdp_config_default(&b));
  CHECK(b.ptr != NULL && b.size > 0);
  cdp_buf_free(&b);
  CHECK(b.ptr == NULL && b.size == 0);
  cdp_buf_free(&b); /* twice is fine: it is empty now */
}

/* A buffer that already holds data is freed and refilled (LeakSanitizer would report the
 * first result if it were dropped). */
static void test_buf_is_freed_and_refilled(void) {
  cdp_buf b = CDP_BUF_INIT;
  cdp_engine *e = open_default();
  REQUIRE(e);
  REQUIRE_RC(CDP_OK, cdp_config_default(&b));
  CHECK_RC(CDP_OK, cdp_engine_stats(&b, e));
  CHECK(strncmp(b.ptr, "{\"persons\":", 11) == 0);
  CHECK(b.size == strlen(b.ptr)); /* NUL-terminated, NUL not counted */
  CHECK(!contains(b.ptr, "cn_mobile")); /* nothing of the config is left */
  cdp_buf_free(&b);
  cdp_engine_close(e);
}

static void test_config_default_is_accepted_by_open(void) {
  cdp_buf cfg = CDP_BUF_INIT;
  REQUIRE_RC(CDP_OK, cdp_config_default(&cfg));
  CHECK(cfg.ptr[0] == '{' && cfg.size == strlen(cfg.ptr));
  CHECK(contains(cfg.ptr, "\"mobile\""));
  CHECK(contains(cfg.ptr, "\"unionid\""));
  CHECK(contains(cfg.ptr, "cn_mobile"));
  CHECK(contains(cfg.ptr, "13800138000")); /* the blocklist pack */
  cdp_engine *e = NULL;
  CHECK_RC(CDP_OK, cdp_engine_open(&e, cfg.ptr, cfg.size, NULL));
  CHECK(e != NULL);
  CHECK_RC(CDP_OK, cdp_engine_close(e));
  cdp_buf_free(&cfg);
}

static void test_open_in_memory_and_close(void) {
  cdp_engine *e = NULL;
  CHECK_RC(CDP_OK, cdp_engine_open(&e, NULL, 0, NULL));
  CHECK(e != NULL);
  CHECK_RC(CDP_OK, cdp_engine_close(e));
  e = NULL;
  CHECK_RC(CDP_OK, cdp_engine_open(&e, "", 0, "")); /* "" config and "" dir: the defaults */
  CHECK(e != NULL);
  CHECK_RC(CDP_OK, cdp_engine_close(e));
  CHECK_RC(CDP_OK, cdp_engine_close(NULL));
}

static void test_bad_json_config_names_position(void) {
  int dummy;
  cdp_engine *e = (cdp_engine *)&dummy;
  const char *cfg = "{\n  \"types\": {\n    \"mobile\": [}\n}";
  CHECK_RC(CDP_EINVALID, cdp_engine_open(&e, SV(cfg), NULL));
  CHECK(e == NULL);
  CHECK(contains(cdp_error_last(), "line 3")); /* where the stray } is */
  CHECK(contains(cdp_error_last(), "column"));
}

/* A config that parses but names an unknown normaliser: the message gives its path. */
static void test_bad_policy_config_names_path(void) {
  cdp_engine *e = NULL;
  char *cfg = dq("{'id_types':{'mobile':{'normalizer':'no_such_normalizer'}}}");
  CHECK_RC(CDP_EINVALID, cdp_engine_open(&e, SV(cfg), NULL));
  CHECK(e == NULL);
  CHECK(contains(cdp_error_last(), "id_types.mobile.normalizer"));
  free(cfg);
}

/* Keys a config omits take the built-in defaults. */
static void test_partial_config_keeps_defaults(void) {
  cdp_engine *e = open_with("{'quarantine_after':5}");
  REQUIRE(e);
  INGEST_OK(e, "{'source':'pos','ts':1,'ids':{'mobile':'+86 139-1720-5836'}}\n");
  CHECK(oneid_of(e, "mobile", "13917205836") != 0); /* the default mobile policy */
  cdp_engine_close(e);
}

static void test_null_out_pointers_are_misuse(void) {
  cdp_engine *e = open_default();
  REQUIRE(e);
  CHECK_RC(CDP_EMISUSE, cdp_engine_open(NULL, NULL, 0, NULL));
  CHECK_RC(CDP_EMISUSE, cdp_config_default(NULL));
  CHECK_RC(CDP_EMISUSE, cdp_engine_stats(NULL, e));
  CHECK_RC(CDP_EMISUSE, cdp_resolve(NULL, e, SV("mobile"), SV("13917205836")));
  CHECK_RC(CDP_EMISUSE, cdp_person_identifiers(NULL, e, 1, 0));
  CHECK_RC(CDP_EMISUSE, cdp_persons_page(NULL, e, 0, 10, 0));
  CHECK_RC(CDP_EMISUSE, cdp_explain(NULL, e, SV("mobile"), SV("13917205836"), SV("mobile"),
                                    SV("13917205836")));
  CHECK_RC(CDP_EMISUSE, cdp_rule_add(NULL, e, SV("never_link"), SV("mobile"),
                                     SV("13917205836"), SV("unionid"), SV("u1"), SV("")));
  CHECK_RC(CDP_EMISUSE, cdp_rules_list(NULL, e));
  CHECK_RC(CDP_EMISUSE, cdp_feed_read(NULL, e, 0, 10));
  CHECK(cdp_error_last()[0] != '\0');
  cdp_engine_close(e);
}

/* The functions whose out "may be NULL" work without one. */
static void test_optional_out_may_be_null(void) {
  cdp_engine *e = open_default();
  REQUIRE(e);
  CHECK_RC(CDP_OK, cdp_ingest_ndjson(NULL, e, SV(RECORD), 0));
  CHECK_RC(CDP_OK, cdp_ingest_record(NULL, e, SV(RECORD)));
  uint64_t id = oneid_of(e, "mobile", "13917205836");
  REQUIRE(id != 0);
  uint64_t rule = 0;
  REQUIRE_RC(CDP_OK, cdp_rule_add(&rule, e, SV("never_link"), SV("mobile"), SV("13917205836"),
                                  SV("unionid"), SV("u-x"), SV("")));
  CHECK_RC(CDP_OK, cdp_rule_remove(NULL, e, rule));
  CHECK_RC(CDP_OK, cdp_identifier_remove(NULL, e, SV("mobile"), SV("13917205836")));
  CHECK_RC(CDP_OK, cdp_ingest_ndjson(NULL, e, SV(RECORD), 0));
  CHECK_RC(CDP_OK, cdp_source_remove(NULL, e, SV("pos")));
  cdp_engine_close(e);
}

/* Every function that takes an engine answers CDP_EMISUSE for a bad handle, with a
 * message, before touching anything else. */
#define MISUSE(call) (CHECK_RC(CDP_EMISUSE, call), CHECK(cdp_error_last()[0] != '\0'))
static void check_every_call_is_misuse(cdp_engine *bad) {
  cdp_buf out = CDP_BUF_INIT;
  uint64_t id = 0;
  MISUSE(cdp_engine_stats(&out, bad));
  MISUSE(cdp_ingest_ndjson(&out, bad, SV(RECORD), 0));
  MISUSE(cdp_ingest_record(&out, bad, SV(RECORD)));
  MISUSE(cdp_resolve(&id, bad, SV("mobile"), SV("13917205836")));
  MISUSE(cdp_person_identifiers(&out, bad, 1, 0));
  MISUSE(cdp_persons_page(&out, bad, 0, 10, 0));
  MISUSE(cdp_explain(&out, bad, SV("mobile"), SV("13917205836"), SV("mobile"),
                     SV("13917205836")));
  MISUSE(cdp_identifier_remove(&out, bad, SV("mobile"), SV("13917205836")));
  MISUSE(cdp_source_remove(&out, bad, SV("pos")));
  MISUSE(cdp_person_split(&out, bad, 1, SV("[\"mobile:13917205836\"]")));
  MISUSE(cdp_rule_add(&id, bad, SV("never_link"), SV("mobile"), SV("13917205836"),
                      SV("unionid"), SV("u1"), SV("")));
  MISUSE(cdp_rule_remove(&out, bad, 1));
  MISUSE(cdp_rules_list(&out, bad));
  MISUSE(cdp_feed_read(&out, bad, 0, 10));
  MISUSE(cdp_feed_trim(bad, 1));
  CHECK(out.ptr == NULL); /* nothing was written */
  cdp_buf_free(&out);
}

static void test_null_engine_is_misuse(void) {
  check_every_call_is_misuse(NULL);
}

/* Best effort by contract (cdp.h rule 4): the handle value comes from open + close in
 * this process, as SQLite's safety check is exercised. Under AddressSanitizer this also
 * shows that the check never reads the freed handle. */
static void test_closed_engine_is_misuse(void) {
  cdp_engine *e = open_default();
  REQUIRE(e);
  REQUIRE_RC(CDP_OK, cdp_engine_close(e));
  check_every_call_is_misuse(e);
  MISUSE(cdp_engine_close(e));
}

int main(void) {
  RUN(test_version_matches_header);
  RUN(test_status_str_names_every_code);
  RUN(test_error_last_is_empty_after_success);
  RUN(test_error_last_is_thread_local);
  RUN(test_buf_free_accepts_null_and_empty);
  RUN(test_buf_free_resets_to_empty);
  RUN(test_buf_is_freed_and_refilled);
  RUN(test_config_default_is_accepted_by_open);
  RUN(test_open_in_memory_and_close);
  RUN(test_bad_json_config_names_position);
  RUN(test_bad_policy_config_names_path);
  RUN(test_partial_config_keeps_defaults);
  RUN(test_null_out_pointers_are_misuse);
  RUN(test_optional_out_may_be_null);
  RUN(test_null_engine_is_misuse);
  RUN(test_closed_engine_is_misuse);
  return finish();
}
