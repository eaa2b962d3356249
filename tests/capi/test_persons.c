/*
 * test_persons.c — reading persons through C: cdp_resolve (with normalisation),
 * cdp_person_identifiers and cdp_persons_page (with CDP_MASK), absorbed OneIDs that
 * answer for their survivor, and cdp_explain.
 */
#include "capi_test.h"

static void test_resolve_normalises_formatting_variants(void) {
  cdp_engine *e = open_default();
  REQUIRE(e);
  INGEST_OK(e, "{'source':'tmall','ts':1,'ids':{'mobile':'+86 139-1720-5836'}}\n");
  uint64_t id = oneid_of(e, "mobile", "13917205836");
  CHECK(id != 0);
  CHECK(id == oneid_of(e, "mobile", "+86 139-1720-5836"));
  CHECK(id == oneid_of(e, "mobile", "0086 139 1720 5836"));
  cdp_engine_close(e);
}

static void test_resolve_unknown_or_unnormalisable_is_not_found(void) {
  cdp_engine *e = open_default();
  uint64_t id = 42;
  REQUIRE(e);
  INGEST_OK(e, "{'source':'tmall','ts':1,'ids':{'mobile':'13917205836'}}\n");
  CHECK_RC(CDP_ENOTFOUND, cdp_resolve(&id, e, SV("mobile"), SV("13987654321")));
  CHECK_RC(CDP_ENOTFOUND, cdp_resolve(&id, e, SV("mobile"), SV("not a phone")));
  CHECK_RC(CDP_ENOTFOUND, cdp_resolve(&id, e, SV("no_such_type"), SV("13917205836")));
  CHECK_RC(CDP_ENOTFOUND, cdp_resolve(&id, e, NULL, 0, NULL, 0)); /* empty strings */
  cdp_engine_close(e);
}

/* Strings are pointer + length and need not be NUL-terminated. */
static void test_resolve_reads_only_the_given_length(void) {
  cdp_engine *e = open_default();
  REQUIRE(e);
  INGEST_OK(e, "{'source':'crm','ts':1,'ids':{'member_no':'M1'}}\n");
  uint64_t id = 0;
  CHECK_RC(CDP_OK, cdp_resolve(&id, e, "member_no_and_more", 9, "M1xyz", 2));
  CHECK(id == oneid_of(e, "member_no", "M1"));
  cdp_engine_close(e);
}

static void test_person_identifiers_lists_normalised_values(void) {
  cdp_engine *e = open_default();
  cdp_buf out = CDP_BUF_INIT;
  REQUIRE(e);
  INGEST_OK(e, "{'source':'crm','ts':1700000000000,"
               "'ids':{'mobile':'+86 139-1720-5836','email':' Alice@Example.COM '}}\n");
  uint64_t id = oneid_of(e, "mobile", "13917205836");
  REQUIRE_RC(CDP_OK, cdp_person_identifiers(&out, e, id, 0));
  CHECK(json_int(out.ptr, "\"oneid\":") == (int64_t)id);
  CHECK(json_int(out.ptr, "\"requested\":") == (int64_t)id);
  CHECK(json_int(out.ptr, "\"size\":") == 2);
  CHECK(json_int(out.ptr, "\"first_seen\":") == 1700000000000);
  CHECK(contains(out.ptr, "\"anchor\":\"mobile:13917205836\""));
  CHECK(contains(out.ptr, "\"value\":\"13917205836\""));
  CHECK(contains(out.ptr, "\"value\":\"alice@example.com\""));
  CHECK(contains(out.ptr, "\"trust\":\"strong\""));
  CHECK(count_of(out.ptr, "\"first_seen\":1700000000000") == 3); /* person + 2 identifiers */
  cdp_buf_free(&out);
  cdp_engine_close(e);
}

static void test_person_identifiers_masked(void) {
  cdp_engine *e = open_default();
  cdp_buf out = CDP_BUF_INIT;
  REQUIRE(e);
  INGEST_OK(e, "{'source':'crm','ts':1,'ids':{'mobile':'13917205836','email':'alice@x.com'}}\n");
  uint64_t id = oneid_of(e, "mobile", "13917205836");
  REQUIRE_RC(CDP_OK, cdp_person_identifiers(&out, e, id, CDP_MASK));
  CHECK(contains(out.ptr, "\"139****5836\""));
  CHECK(contains(out.ptr, "\"a***@x.com\""));
  CHECK(!contains(out.ptr, "13917205836"));
  CHECK(!contains(out.ptr, "alice"));
  cdp_buf_free(&out);
  cdp_engine_close(e);
}

static void test_person_identifiers_unknown_oneid_is_not_found(void) {
  cdp_engine *e = open_default();
  cdp_buf out = CDP_BUF_INIT;
  REQUIRE(e);
  CHECK_RC(CDP_ENOTFOUND, cdp_person_identifiers(&out, e, 12345, 0));
  cdp_buf_free(&out);
  cdp_engine_close(e);
}

/* Two persons, then a record joining them: the earlier keeps its OneID, and the absorbed
 * OneID still answers, for the survivor (cdp.h rule 8). */
static void test_absorbed_oneid_answers_for_survivor(void) {
  cdp_engine *e = open_default();
  cdp_buf out = CDP_BUF_INIT;
  REQUIRE(e);
  INGEST_OK(e, "{'source':'crm','ts':1000,'ids':{'member_no':'M1'}}\n");
  INGEST_OK(e, "{'source':'wx','ts':2000,'ids':{'unionid':'u-1'}}\n");
  uint64_t early = oneid_of(e, "member_no", "M1"), late = oneid_of(e, "unionid", "u-1");
  REQUIRE(early != 0 && late != 0 && early != late);
  INGEST_OK(e, "{'source':'app','ts':3000,'ids':{'member_no':'M1','unionid':'u-1'}}\n");
  CHECK(oneid_of(e, "unionid", "u-1") == early);
  REQUIRE_RC(CDP_OK, cdp_person_identifiers(&out, e, late, 0));
  CHECK(json_int(out.ptr, "\"oneid\":") == (int64_t)early);
  CHECK(json_int(out.ptr, "\"requested\":") == (int64_t)late);
  CHECK(json_int(out.ptr, "\"size\":") == 2);
  cdp_buf_free(&out);
  cdp_engine_close(e);
}

static void test_persons_page_walks_all_persons(void) {
  cdp_engine *e = open_default();
  cdp_buf out = CDP_BUF_INIT;
  REQUIRE(e);
  INGEST_OK(e, "{'source':'crm','ts':1,'ids':{'member_no':'M1'}}\n"
               "{'source':'crm','ts':2,'ids':{'member_no':'M2'}}\n"
               "{'source':'crm','ts':3,'ids':{'member_no':'M3'}}\n");
  REQUIRE_RC(CDP_OK, cdp_persons_page(&out, e, 0, 2, 0));
  CHECK(count_of(out.ptr, "{\"oneid\":") == 2);
  int64_t next = json_int(out.ptr, "\"next\":");
  REQUIRE(next > 0);
  REQUIRE_RC(CDP_OK, cdp_persons_page(&out, e, (uint64_t)next, 2, 0));
  CHECK(count_of(out.ptr, "{\"oneid\":") == 1);
  CHECK(json_int(out.ptr, "\"next\":") == 0);
  cdp_buf_free(&out);
  cdp_engine_close(e);
}

static void test_persons_page_limit_is_clamped(void) {
  cdp_engine *e = open_default();
  cdp_buf out = CDP_BUF_INIT;
  REQUIRE(e);
  INGEST_OK(e, "{'source':'crm','ts':1,'ids':{'member_no':'M1'}}\n"
               "{'source':'crm','ts':2,'ids':{'member_no':'M2'}}\n");
  REQUIRE_RC(CDP_OK, cdp_persons_page(&out, e, 0, 0, 0)); /* 0 is clamped to 1 */
  CHECK(count_of(out.ptr, "{\"oneid\":") == 1);
  REQUIRE_RC(CDP_OK, cdp_persons_page(&out, e, 0, UINT32_MAX, 0));
  CHECK(count_of(out.ptr, "{\"oneid\":") == 2);
  CHECK(json_int(out.ptr, "\"next\":") == 0);
  cdp_buf_free(&out);
  cdp_engine_close(e);
}

static void test_persons_page_masked(void) {
  cdp_engine *e = open_default();
  cdp_buf out = CDP_BUF_INIT;
  REQUIRE(e);
  INGEST_OK(e, "{'source':'crm','ts':1,'ids':{'mobile':'13917205836'}}\n");
  REQUIRE_RC(CDP_OK, cdp_persons_page(&out, e, 0, 10, CDP_MASK));
  CHECK(contains(out.ptr, "\"139****5836\""));
  CHECK(!contains(out.ptr, "13917205836"));
  REQUIRE_RC(CDP_OK, cdp_persons_page(&out, e, 0, 10, 0));
  CHECK(contains(out.ptr, "\"13917205836\""));
  cdp_buf_free(&out);
  cdp_engine_close(e);
}

static void test_explain_linked_gives_evidence_path(void) {
  cdp_engine *e = open_default();
  cdp_buf out = CDP_BUF_INIT;
  REQUIRE(e);
  INGEST_OK(e, "{'source':'wecom','ts':1700000000000,"
               "'ids':{'mobile':'13917205836','unionid':'u-1'}}\n");
  REQUIRE_RC(CDP_OK, cdp_explain(&out, e, SV("mobile"), SV("+86 13917205836"),
                                 SV("unionid"), SV("u-1")));
  CHECK(contains(out.ptr, "\"linked\":true"));
  CHECK(json_int(out.ptr, "\"oneid\":") == (int64_t)oneid_of(e, "unionid", "u-1"));
  CHECK(contains(out.ptr, "\"path\":[{"));
  CHECK(contains(out.ptr, "\"source\":\"wecom\""));
  CHECK(json_int(out.ptr, "\"ts\":") == 1700000000000);
  cdp_buf_free(&out);
  cdp_engine_close(e);
}

static void test_explain_unlinked_names_both_oneids(void) {
  cdp_engine *e = open_default();
  cdp_buf out = CDP_BUF_INIT;
  REQUIRE(e);
  INGEST_OK(e, "{'source':'crm','ts':1,'ids':{'member_no':'M1'}}\n"
               "{'source':'crm','ts':2,'ids':{'member_no':'M2'}}\n");
  REQUIRE_RC(CDP_OK, cdp_explain(&out, e, SV("member_no"), SV("M1"), SV("member_no"), SV("M2")));
  CHECK(contains(out.ptr, "\"linked\":false"));
  CHECK(json_array_at(out.ptr, "\"oneids\":[", 0) == (int64_t)oneid_of(e, "member_no", "M1"));
  CHECK(json_array_at(out.ptr, "\"oneids\":[", 1) == (int64_t)oneid_of(e, "member_no", "M2"));
  CHECK(contains(out.ptr, "\"kept_apart_by\":null")); /* nothing kept them apart */
  cdp_buf_free(&out);
  cdp_engine_close(e);
}

/* A record that would give one person two unionids is refused; explain says why. */
static void test_explain_names_the_rule_that_kept_them_apart(void) {
  cdp_engine *e = open_default();
  cdp_buf out = CDP_BUF_INIT;
  REQUIRE(e);
  INGEST_OK(e, "{'source':'wx','ts':1,'ids':{'unionid':'u-1','member_no':'M1'}}\n");
  INGEST_OK(e, "{'source':'wx','ts':2,'ids':{'unionid':'u-2','member_no':'M1'}}\n");
  REQUIRE_RC(CDP_OK, cdp_explain(&out, e, SV("unionid"), SV("u-1"), SV("unionid"), SV("u-2")));
  CHECK(contains(out.ptr, "\"linked\":false"));
  CHECK(contains(out.ptr, "\"reason\":\"unique_type\""));
  CHECK(contains(out.ptr, "\"type\":\"unionid\""));
  cdp_buf_free(&out);
  cdp_engine_close(e);
}

static void test_explain_unknown_identifier_is_not_found(void) {
  cdp_engine *e = open_default();
  cdp_buf out = CDP_BUF_INIT;
  REQUIRE(e);
  INGEST_OK(e, "{'source':'crm','ts':1,'ids':{'member_no':'M1'}}\n");
  CHECK_RC(CDP_ENOTFOUND,
           cdp_explain(&out, e, SV("member_no"), SV("M1"), SV("member_no"), SV("M404")));
  CHECK_RC(CDP_ENOTFOUND,
           cdp_explain(&out, e, SV("member_no"), SV("M404"), SV("member_no"), SV("M1")));
  cdp_buf_free(&out);
  cdp_engine_close(e);
}

/* cdp_records_resolve: one OneID per line, now, without ingesting. */
static void test_records_resolve_answers_per_line(void) {
  cdp_engine *e = open_default();
  cdp_buf out = CDP_BUF_INIT;
  char want[96];
  REQUIRE(e);
  INGEST_OK(e, "{'source':'crm','ts':1,'ids':{'member_no':'M1'}}\n");
  uint64_t id = oneid_of(e, "member_no", "M1");
  const char *lines = "{\"source\":\"x\",\"ts\":2,\"ids\":{\"member_no\":\"M1\"}}\n"
                      "{\"source\":\"x\",\"ts\":2,\"ids\":{\"member_no\":\"M2\"}}\n"
                      "not json\n";
  REQUIRE_RC(CDP_OK, cdp_records_resolve(&out, e, lines, strlen(lines)));
  snprintf(want, sizeof want, "\"oneids\":[%llu,0,0]", (unsigned long long)id);
  CHECK(contains(out.ptr, want));
  CHECK(json_int(out.ptr, "\"rejected\":") == 1);
  CHECK_RC(CDP_ENOTFOUND, cdp_resolve(&id, e, SV("member_no"), SV("M2"))); /* not ingested */
  CHECK_RC(CDP_EMISUSE, cdp_records_resolve(NULL, e, lines, strlen(lines)));
  CHECK_RC(CDP_EMISUSE, cdp_records_resolve(&out, NULL, lines, strlen(lines)));
  cdp_buf_free(&out);
  cdp_engine_close(e);
}

int main(void) {
  RUN(test_records_resolve_answers_per_line);
  RUN(test_resolve_normalises_formatting_variants);
  RUN(test_resolve_unknown_or_unnormalisable_is_not_found);
  RUN(test_resolve_reads_only_the_given_length);
  RUN(test_person_identifiers_lists_normalised_values);
  RUN(test_person_identifiers_masked);
  RUN(test_person_identifiers_unknown_oneid_is_not_found);
  RUN(test_absorbed_oneid_answers_for_survivor);
  RUN(test_persons_page_walks_all_persons);
  RUN(test_persons_page_limit_is_clamped);
  RUN(test_persons_page_masked);
  RUN(test_explain_linked_gives_evidence_path);
  RUN(test_explain_unlinked_names_both_oneids);
  RUN(test_explain_names_the_rule_that_kept_them_apart);
  RUN(test_explain_unknown_identifier_is_not_found);
  return finish();
}
