/*
 * test_ingest.c — cdp_ingest_ndjson, cdp_ingest_record and cdp_engine_stats through C:
 * the report's counts, malformed lines (each listed with its line number and field while
 * the good lines land), the blocklist, CDP_INGEST_ASSIGN, and order independence.
 * Records are single-quoted (see capi_test.h).
 */
#include "capi_test.h"

static void test_report_counts_good_lines(void) {
  cdp_engine *e = open_default();
  cdp_buf r = CDP_BUF_INIT;
  REQUIRE(e);
  CHECK_RC(CDP_OK, ingest(&r, e,
      "{'source':'pos','ts':1700000000000,'ids':{'mobile':'13917205836'}}\n"
      "{'source':'wecom','ts':1700000001000,'ids':{'unionid':'o6_bmjrPTlm6_2sgVt7hMZOPfL2M'}}\n"
      "{'source':'crm','ts':1700000002000,'ids':{'member_no':'M0001'}}\n", 0));
  CHECK(json_int(r.ptr, "\"lines\":") == 3);
  CHECK(json_int(r.ptr, "\"accepted\":") == 3);
  CHECK(json_int(r.ptr, "\"rejected\":") == 0);
  CHECK(json_int(r.ptr, "\"persons_created\":") == 3);
  CHECK(contains(r.ptr, "\"ids\":{\"accepted\":3,\"rejected\":0,\"by_reason\":{")); /* total, then by reason */
  CHECK(contains(r.ptr, "\"errors\":[]"));
  cdp_buf_free(&r);
  cdp_engine_close(e);
}

static void test_malformed_lines_are_listed_and_good_lines_land(void) {
  cdp_engine *e = open_default();
  cdp_buf r = CDP_BUF_INIT;
  REQUIRE(e);
  CHECK_RC(CDP_OK, ingest(&r, e,
      "{'source':'pos','ts':1,'ids':{'mobile':'13917205836'}}\n"      /* 1 good */
      "{'source':'pos','ts':\n"                                       /* 2 bad JSON */
      "{'source':'pos','ts':2,'ids':{'member_no':'M0002'}}\n"         /* 3 good */
      "{'source':'pos','ts':true,'ids':{'member_no':'M0004'}}\n"      /* 4 ts as bool */
      "{'source':'pos','ts':4,'ids':['M0005']}\n"                     /* 5 ids as array */
      "{'source':'pos','ts':5}\n"                                     /* 6 no ids */
      "{'source':'pos','ts':6,'ids':{'member_no':'M0007'}}\n", 0));   /* 7 good */
  CHECK(json_int(r.ptr, "\"lines\":") == 7);
  CHECK(json_int(r.ptr, "\"accepted\":") == 3);
  CHECK(json_int(r.ptr, "\"rejected\":") == 4);
  CHECK(count_of(r.ptr, "{\"line\":") == 4);
  CHECK(has_error(r.ptr, 2, ""));
  CHECK(has_error(r.ptr, 4, "ts"));
  CHECK(has_error(r.ptr, 5, "ids"));
  CHECK(has_error(r.ptr, 6, "ids"));
  CHECK(oneid_of(e, "mobile", "13917205836") != 0);
  CHECK(oneid_of(e, "member_no", "M0002") != 0);
  CHECK(oneid_of(e, "member_no", "M0007") != 0);
  CHECK(oneid_of(e, "member_no", "M0004") == 0);
  cdp_buf_free(&r);
  cdp_engine_close(e);
}

/* Blank lines are skipped but still counted in line numbers. */
static void test_blank_lines_are_skipped(void) {
  cdp_engine *e = open_default();
  cdp_buf r = CDP_BUF_INIT;
  REQUIRE(e);
  CHECK_RC(CDP_OK, ingest(&r, e,
      "{'source':'pos','ts':1,'ids':{'member_no':'M0001'}}\n"
      "\n"
      "   \n"
      "{'source':'pos','ts':true,'ids':{'member_no':'M0002'}}\n", 0));
  CHECK(json_int(r.ptr, "\"accepted\":") == 1);
  CHECK(json_int(r.ptr, "\"rejected\":") == 1);
  CHECK(has_error(r.ptr, 4, "ts"));
  cdp_buf_free(&r);
  cdp_engine_close(e);
}

static void test_invalid_utf8_value_is_rejected(void) {
  cdp_engine *e = open_default();
  cdp_buf r = CDP_BUF_INIT;
  REQUIRE(e);
  CHECK_RC(CDP_OK, ingest(&r, e,
      "{'source':'tmall','ts':1,'ids':{'tb_nick':'good_nick'}}\n"
      "{'source':'tmall','ts':2,'ids':{'tb_nick':'bad\xff\xfe nick'}}\n", 0));
  CHECK(json_int(r.ptr, "\"accepted\":") == 1);
  CHECK(json_int(r.ptr, "\"rejected\":") == 1);
  CHECK(has_error(r.ptr, 2, "tb_nick"));
  CHECK(oneid_of(e, "tb_nick", "good_nick") != 0);
  cdp_buf_free(&r);
  cdp_engine_close(e);
}

/* A raw value over limits.max_id_bytes (1024 by default) makes the line malformed. */
static void test_value_over_length_limit_is_rejected(void) {
  enum { LONG_VALUE = 2000 };
  cdp_engine *e = open_default();
  cdp_buf r = CDP_BUF_INIT;
  REQUIRE(e);
  const char *head = "{'source':'tmall','ts':1,'ids':{'member_no':'M0001'}}\n"
                     "{'source':'tmall','ts':2,'ids':{'tb_nick':'";
  const char *tail = "'}}\n";
  size_t n = strlen(head) + LONG_VALUE + strlen(tail);
  char *line = malloc(n + 1);
  REQUIRE(line);
  strcpy(line, head);
  memset(line + strlen(head), 'x', LONG_VALUE);
  strcpy(line + strlen(head) + LONG_VALUE, tail);
  CHECK_RC(CDP_OK, ingest(&r, e, line, 0));
  CHECK(json_int(r.ptr, "\"accepted\":") == 1);
  CHECK(json_int(r.ptr, "\"rejected\":") == 1);
  CHECK(has_error(r.ptr, 2, "tb_nick"));
  free(line);
  cdp_buf_free(&r);
  cdp_engine_close(e);
}

/* A line over limits.max_record_bytes (64 KiB by default) is rejected by number. */
static void test_record_over_size_limit_is_rejected(void) {
  enum { BIG = 70000 };
  cdp_engine *e = open_default();
  cdp_buf r = CDP_BUF_INIT;
  REQUIRE(e);
  const char *head = "{'source':'pos','ts':1,'ids':{'member_no':'M1'}}\n"
                     "{'source':'pos','ts':2,'ids':{'member_no':'M2'},'attrs':{'note':'";
  char *text = malloc(strlen(head) + BIG + 8);
  REQUIRE(text);
  strcpy(text, head);
  memset(text + strlen(head), 'x', BIG);
  strcpy(text + strlen(head) + BIG, "'}}\n");
  CHECK_RC(CDP_OK, ingest(&r, e, text, 0));
  CHECK(json_int(r.ptr, "\"accepted\":") == 1);
  CHECK(has_error(r.ptr, 2, ""));
  CHECK(oneid_of(e, "member_no", "M2") == 0);
  free(text);
  cdp_buf_free(&r);
  cdp_engine_close(e);
}

/* A batch over limits.max_batch_bytes is refused whole. */
static void test_batch_over_limit_is_elimit(void) {
  cdp_engine *e = open_with("{'limits':{'max_batch_bytes':100}}");
  cdp_buf s = CDP_BUF_INIT;
  REQUIRE(e);
  CHECK_RC(CDP_ELIMIT, ingest(NULL, e,
      "{'source':'pos','ts':1,'ids':{'member_no':'M0000001'}}\n"
      "{'source':'pos','ts':2,'ids':{'member_no':'M0000002'}}\n", 0));
  REQUIRE_RC(CDP_OK, cdp_engine_stats(&s, e));
  CHECK(json_int(s.ptr, "\"records\":{\"accepted\":") == 0);
  INGEST_OK(e, "{'source':'pos','ts':1,'ids':{'member_no':'M1'}}\n"); /* small is fine */
  cdp_buf_free(&s);
  cdp_engine_close(e);
}

/* amount is yuan, kept as integer fen: 0.29 has no exact binary form but is accepted. */
static void test_amount_in_yuan_is_accepted(void) {
  cdp_engine *e = open_default();
  REQUIRE(e);
  INGEST_OK(e, "{'source':'tmall','ts':1,'ids':{'member_no':'M0001'},"
               "'event':{'type':'order','amount':0.29}}\n"
               "{'source':'tmall','ts':2,'ids':{'member_no':'M0002'},"
               "'attrs':{'gender':'F','city':'上海'},'event':{'type':'order','amount':199.00}}\n");
  cdp_engine_close(e);
}

static void test_iso_timestamp_with_offset_is_accepted(void) {
  cdp_engine *e = open_default();
  REQUIRE(e);
  INGEST_OK(e, "{'source':'pos','ts':'2023-11-15T06:13:20+08:00','ids':{'member_no':'M0001'}}\n");
  cdp_engine_close(e);
}

static void test_blocklisted_values_are_rejected_and_reported(void) {
  cdp_engine *e = open_default();
  cdp_buf r = CDP_BUF_INIT;
  REQUIRE(e);
  CHECK_RC(CDP_OK, ingest(&r, e,
      "{'source':'pos','ts':1,'ids':{'mobile':'+86 138-0013-8000','member_no':'M0001'}}\n"
      "{'source':'pos','ts':2,'ids':{'unionid':'null','member_no':'M0002'}}\n", 0));
  CHECK(json_int(r.ptr, "\"accepted\":") == 2); /* the records land without the junk */
  CHECK(json_int(r.ptr, "\"blocked\":") == 2);
  CHECK(oneid_of(e, "mobile", "13800138000") == 0);
  CHECK(oneid_of(e, "unionid", "null") == 0);
  /* The junk value did not join the two records. */
  CHECK(oneid_of(e, "member_no", "M0001") != oneid_of(e, "member_no", "M0002"));
  cdp_buf_free(&r);
  cdp_engine_close(e);
}

static void test_unknown_types_are_accepted_and_counted(void) {
  cdp_engine *e = open_default();
  cdp_buf r = CDP_BUF_INIT;
  REQUIRE(e);
  CHECK_RC(CDP_OK,
           ingest(&r, e, "{'source':'x','ts':1,'ids':{'qq':'10001','member_no':'M1'}}\n", 0));
  CHECK(json_int(r.ptr, "\"accepted\":") == 1);
  CHECK(json_int(r.ptr, "\"unknown_types\":{\"qq\":") == 1);
  CHECK(oneid_of(e, "qq", "10001") == oneid_of(e, "member_no", "M1"));
  cdp_buf_free(&r);
  cdp_engine_close(e);
}

static void test_records_sharing_a_mobile_are_one_person(void) {
  cdp_engine *e = open_default();
  REQUIRE(e);
  INGEST_OK(e, "{'source':'pos','ts':1,'ids':{'mobile':'+86 158-2190-4473','member_no':'M1'}}\n"
               "{'source':'jd','ts':2,'ids':{'mobile':'15821904473','jd_pin':'jd_x'}}\n");
  uint64_t a = oneid_of(e, "member_no", "M1");
  CHECK(a != 0);
  CHECK(a == oneid_of(e, "jd_pin", "jd_x"));
  CHECK(a == oneid_of(e, "mobile", "0086 15821904473"));
  cdp_engine_close(e);
}

static void test_assign_gives_one_oneid_per_line(void) {
  cdp_engine *e = open_default();
  cdp_buf r = CDP_BUF_INIT;
  REQUIRE(e);
  CHECK_RC(CDP_OK, ingest(&r, e,
      "{'source':'pos','ts':1,'ids':{'mobile':'18602117365'}}\n"                  /* 1 */
      "{'source':'pos','ts':true,'ids':{'mobile':'18602117365'}}\n"               /* 2 bad */
      "{'source':'app','ts':3,'ids':{'mobile':'18602117365','member_no':'M9'}}\n" /* 3 */
      "\n"                                                                      /* 4 blank */
      "{'source':'wx','ts':4,'ids':{'unionid':'u-1'}}\n"                          /* 5 */
      "{'source':'wx','ts':5,'ids':{'unionid':'null'}}\n",                        /* 6 junk */
      CDP_INGEST_ASSIGN));
  /* Entry i is line i + 1, so hosts can join the OneIDs back to their rows. */
  const char *key = "\"assign\":[";
  CHECK(json_array_len(r.ptr, key) == 6);
  CHECK(json_array_at(r.ptr, key, 0) == (int64_t)oneid_of(e, "mobile", "18602117365"));
  CHECK(json_array_at(r.ptr, key, 1) == 0);
  CHECK(json_array_at(r.ptr, key, 2) == json_array_at(r.ptr, key, 0));
  CHECK(json_array_at(r.ptr, key, 3) == 0);
  CHECK(json_array_at(r.ptr, key, 4) == (int64_t)oneid_of(e, "unionid", "u-1"));
  CHECK(json_array_at(r.ptr, key, 4) != json_array_at(r.ptr, key, 0));
  CHECK(json_array_at(r.ptr, key, 5) == 0);
  cdp_buf_free(&r);
  cdp_engine_close(e);
}

static void test_no_assign_without_the_flag(void) {
  cdp_engine *e = open_default();
  cdp_buf r = CDP_BUF_INIT;
  REQUIRE(e);
  CHECK_RC(CDP_OK, ingest(&r, e, "{'source':'pos','ts':1,'ids':{'member_no':'M1'}}\n", 0));
  CHECK(!contains(r.ptr, "\"assign\""));
  cdp_buf_free(&r);
  cdp_engine_close(e);
}

/* The same lines in another order, into a fresh engine, give the same OneIDs. */
static void test_batch_order_does_not_change_oneids(void) {
  const char *lines[] = {
      "{'source':'pos','ts':100,'ids':{'mobile':'13917205836'}}\n",
      "{'source':'wx','ts':200,'ids':{'unionid':'u-1'}}\n",
      "{'source':'crm','ts':300,'ids':{'mobile':'13917205836','unionid':'u-1','member_no':'M1'}}\n",
      "{'source':'app','ts':400,'ids':{'member_no':'M2'}}\n",
  };
  char forward[1024] = "", backward[1024] = "";
  for (int i = 0; i < 4; i++) {
    strcat(forward, lines[i]);
    strcat(backward, lines[3 - i]);
  }
  cdp_engine *a = open_default(), *b = open_default();
  REQUIRE(a && b);
  INGEST_OK(a, forward);
  INGEST_OK(b, backward);
  uint64_t p = oneid_of(a, "member_no", "M1");
  CHECK(p != 0 && p == oneid_of(a, "unionid", "u-1"));
  CHECK(p == oneid_of(b, "member_no", "M1"));
  CHECK(oneid_of(a, "member_no", "M2") == oneid_of(b, "member_no", "M2"));
  cdp_engine_close(a);
  cdp_engine_close(b);
}

static void test_ingest_record_reports_its_oneid(void) {
  cdp_engine *e = open_default();
  cdp_buf r = CDP_BUF_INIT;
  REQUIRE(e);
  char *rec = dq("{'source':'pos','ts':1,'ids':{'mobile':'13917205836','member_no':'M1'}}");
  CHECK_RC(CDP_OK, cdp_ingest_record(&r, e, SV(rec)));
  CHECK(json_int(r.ptr, "\"oneid\":") == (int64_t)oneid_of(e, "member_no", "M1"));
  CHECK(json_int(r.ptr, "\"accepted\":") == 2);
  CHECK(json_int(r.ptr, "\"persons_created\":") == 1);
  free(rec);
  cdp_buf_free(&r);
  cdp_engine_close(e);
}

static void test_ingest_record_malformed_ingests_nothing(void) {
  cdp_engine *e = open_default();
  cdp_buf r = CDP_BUF_INIT;
  REQUIRE(e);
  char *rec = dq("{'source':'pos','ts':true,'ids':{'member_no':'M1'}}");
  CHECK_RC(CDP_EINVALID, cdp_ingest_record(&r, e, SV(rec)));
  CHECK(contains(cdp_error_last(), "ts"));
  CHECK(oneid_of(e, "member_no", "M1") == 0);
  CHECK_RC(CDP_OK, cdp_engine_stats(&r, e));
  CHECK(json_int(r.ptr, "\"records\":{\"accepted\":") == 0);
  CHECK(json_int(r.ptr, "\"persons\":") == 0);
  CHECK_RC(CDP_EINVALID, cdp_ingest_record(&r, e, SV("{\"source\":")));
  free(rec);
  cdp_buf_free(&r);
  cdp_engine_close(e);
}

static void test_stats_count_persons_identifiers_and_records(void) {
  cdp_engine *e = open_default();
  cdp_buf s = CDP_BUF_INIT;
  REQUIRE(e);
  INGEST_OK(e, "{'source':'pos','ts':1,'ids':{'mobile':'13917205836','member_no':'M1'}}\n"
               "{'source':'pos','ts':2,'ids':{'member_no':'M2'}}\n"
               "{'source':'pos','ts':3,'ids':{'member_no':'M3'}}\n");
  REQUIRE_RC(CDP_OK, cdp_engine_stats(&s, e));
  CHECK(json_int(s.ptr, "\"persons\":") == 3);
  CHECK(json_int(s.ptr, "\"identifiers\":") == 4);
  CHECK(json_int(s.ptr, "\"records\":{\"accepted\":") == 3);
  CHECK(json_int(s.ptr, "\"total\":") > 0);
  CHECK(contains(s.ptr, "\"feed\":{\"first\":"));
  cdp_buf_free(&s);
  cdp_engine_close(e);
}

int main(void) {
  RUN(test_report_counts_good_lines);
  RUN(test_malformed_lines_are_listed_and_good_lines_land);
  RUN(test_blank_lines_are_skipped);
  RUN(test_invalid_utf8_value_is_rejected);
  RUN(test_value_over_length_limit_is_rejected);
  RUN(test_record_over_size_limit_is_rejected);
  RUN(test_batch_over_limit_is_elimit);
  RUN(test_amount_in_yuan_is_accepted);
  RUN(test_iso_timestamp_with_offset_is_accepted);
  RUN(test_blocklisted_values_are_rejected_and_reported);
  RUN(test_unknown_types_are_accepted_and_counted);
  RUN(test_records_sharing_a_mobile_are_one_person);
  RUN(test_assign_gives_one_oneid_per_line);
  RUN(test_no_assign_without_the_flag);
  RUN(test_batch_order_does_not_change_oneids);
  RUN(test_ingest_record_reports_its_oneid);
  RUN(test_ingest_record_malformed_ingests_nothing);
  RUN(test_stats_count_persons_identifiers_and_records);
  return finish();
}
