/*
 * test_unmerge.c — changing the graph through C: cdp_identifier_remove,
 * cdp_source_remove, cdp_person_split, the manual rules (cdp_rule_add force_link and
 * never_link, cdp_rule_remove, cdp_rules_list), and the change feed (cdp_feed_read,
 * cdp_feed_trim).
 */
#include "capi_test.h"

/* A bridge: mobile 13917205836 joins member_no M1 and unionid u-1 into one person. */
static const char *const BRIDGE =
    "{'source':'crm','ts':1,'ids':{'member_no':'M1','mobile':'13917205836'}}\n"
    "{'source':'wx','ts':2,'ids':{'unionid':'u-1','mobile':'13917205836'}}\n";

static void test_identifier_remove_cuts_the_bridge(void) {
  cdp_engine *e = open_default();
  cdp_buf out = CDP_BUF_INIT;
  REQUIRE(e);
  INGEST_OK(e, BRIDGE);
  uint64_t p = oneid_of(e, "member_no", "M1");
  REQUIRE(p != 0 && p == oneid_of(e, "unionid", "u-1"));
  REQUIRE_RC(CDP_OK, cdp_identifier_remove(&out, e, SV("mobile"), SV("+86 139-1720-5836")));
  CHECK(oneid_of(e, "mobile", "13917205836") == 0);
  uint64_t m = oneid_of(e, "member_no", "M1"), u = oneid_of(e, "unionid", "u-1");
  CHECK(m != 0 && u != 0 && m != u);
  CHECK(m == p || u == p); /* one side keeps the OneID */
  CHECK(json_array_len(out.ptr, "\"oneids\":[") == 2);
  CHECK(contains(out.ptr, "\"feed\":{\"from\":"));
  cdp_buf_free(&out);
  cdp_engine_close(e);
}

static void test_identifier_remove_unknown_is_not_found(void) {
  cdp_engine *e = open_default();
  REQUIRE(e);
  CHECK_RC(CDP_ENOTFOUND, cdp_identifier_remove(NULL, e, SV("member_no"), SV("M404")));
  cdp_engine_close(e);
}

/* A wrong source joined two persons; removing its evidence parts them again. */
static void test_source_remove_undoes_its_links(void) {
  cdp_engine *e = open_default();
  cdp_buf out = CDP_BUF_INIT;
  REQUIRE(e);
  INGEST_OK(e, "{'source':'crm','ts':1,'ids':{'member_no':'M1'}}\n"
               "{'source':'wx','ts':2,'ids':{'unionid':'u-1'}}\n"
               "{'source':'bad_etl','ts':3,'ids':{'member_no':'M1','unionid':'u-1'}}\n");
  REQUIRE(oneid_of(e, "member_no", "M1") == oneid_of(e, "unionid", "u-1"));
  REQUIRE_RC(CDP_OK, cdp_source_remove(&out, e, SV("bad_etl")));
  uint64_t m = oneid_of(e, "member_no", "M1"), u = oneid_of(e, "unionid", "u-1");
  CHECK(m != 0 && u != 0 && m != u);
  CHECK(json_array_len(out.ptr, "\"oneids\":[") == 2);
  CHECK_RC(CDP_ENOTFOUND, cdp_source_remove(&out, e, SV("bad_etl"))); /* nothing left */
  CHECK_RC(CDP_ENOTFOUND, cdp_source_remove(&out, e, SV("no_such_source")));
  cdp_buf_free(&out);
  cdp_engine_close(e);
}

/* Identifiers whose only evidence came from the removed source go too. */
static void test_source_remove_drops_orphaned_identifiers(void) {
  cdp_engine *e = open_default();
  REQUIRE(e);
  INGEST_OK(e, "{'source':'bad_etl','ts':1,'ids':{'member_no':'M1'}}\n");
  REQUIRE(oneid_of(e, "member_no", "M1") != 0);
  CHECK_RC(CDP_OK, cdp_source_remove(NULL, e, SV("bad_etl")));
  CHECK(oneid_of(e, "member_no", "M1") == 0);
  cdp_engine_close(e);
}

static void test_split_parts_a_person_and_keeps_it_parted(void) {
  cdp_engine *e = open_default();
  cdp_buf out = CDP_BUF_INIT;
  REQUIRE(e);
  INGEST_OK(e, BRIDGE);
  uint64_t p = oneid_of(e, "member_no", "M1");
  char *side = dq("['unionid:u-1']");
  REQUIRE_RC(CDP_OK, cdp_person_split(&out, e, p, SV(side)));
  CHECK(json_array_len(out.ptr, "\"oneids\":[") == 2);
  uint64_t m = oneid_of(e, "member_no", "M1"), u = oneid_of(e, "unionid", "u-1");
  CHECK(m != 0 && u != 0 && m != u);
  CHECK(m == p || u == p);                            /* one side keeps the OneID */
  CHECK(oneid_of(e, "mobile", "13917205836") == m); /* the unlisted side */
  /* The split left a never_link rule, so the same evidence does not merge them again. */
  CHECK_RC(CDP_OK, cdp_rules_list(&out, e));
  CHECK(contains(out.ptr, "\"kind\":\"never_link\""));
  INGEST_OK(e, BRIDGE);
  CHECK(oneid_of(e, "member_no", "M1") != oneid_of(e, "unionid", "u-1"));
  free(side);
  cdp_buf_free(&out);
  cdp_engine_close(e);
}

static void test_split_rejects_bad_sides(void) {
  cdp_engine *e = open_default();
  REQUIRE(e);
  INGEST_OK(e, BRIDGE);
  INGEST_OK(e, "{'source':'crm','ts':3,'ids':{'member_no':'M9'}}\n");
  uint64_t p = oneid_of(e, "member_no", "M1");
  const char *bad[] = {
      "['unionid:u-1'",                                       /* bad JSON */
      "[]",                                                   /* none */
      "['member_no:M1','unionid:u-1','mobile:13917205836']",  /* all */
      "['member_no:M9']",                                     /* another person's */
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    char *side = dq(bad[i]);
    if (!CHECK_RC(CDP_EINVALID, cdp_person_split(NULL, e, p, SV(side))))
      printf("    side: %s\n", side);
    free(side);
  }
  CHECK(oneid_of(e, "unionid", "u-1") == p); /* nothing was split */
  char *side = dq("['member_no:M1']");
  CHECK_RC(CDP_ENOTFOUND, cdp_person_split(NULL, e, 999999, SV(side)));
  free(side);
  cdp_engine_close(e);
}

static void test_force_link_joins_and_rule_remove_undoes_it(void) {
  cdp_engine *e = open_default();
  cdp_buf out = CDP_BUF_INIT;
  uint64_t rule = 0;
  REQUIRE(e);
  INGEST_OK(e, "{'source':'crm','ts':1,'ids':{'member_no':'M1'}}\n"
               "{'source':'wx','ts':2,'ids':{'unionid':'u-1'}}\n");
  REQUIRE_RC(CDP_OK, cdp_rule_add(&rule, e, SV("force_link"), SV("member_no"), SV("M1"),
                                  SV("unionid"), SV("u-1"), SV("same customer, per store")));
  CHECK(rule != 0);
  CHECK(oneid_of(e, "member_no", "M1") == oneid_of(e, "unionid", "u-1"));
  REQUIRE_RC(CDP_OK, cdp_rules_list(&out, e));
  CHECK(json_int(out.ptr, "\"id\":") == (int64_t)rule);
  CHECK(contains(out.ptr, "\"kind\":\"force_link\""));
  CHECK(contains(out.ptr, "\"a\":\"member_no:M1\""));
  CHECK(contains(out.ptr, "\"b\":\"unionid:u-1\""));
  CHECK(contains(out.ptr, "\"note\":\"same customer, per store\""));
  REQUIRE_RC(CDP_OK, cdp_rule_remove(&out, e, rule));
  CHECK(oneid_of(e, "member_no", "M1") != oneid_of(e, "unionid", "u-1"));
  REQUIRE_RC(CDP_OK, cdp_rules_list(&out, e));
  CHECK(contains(out.ptr, "\"rules\":[]"));
  CHECK_RC(CDP_ENOTFOUND, cdp_rule_remove(&out, e, rule));
  cdp_buf_free(&out);
  cdp_engine_close(e);
}

static void test_never_link_splits_and_blocks_force_link(void) {
  cdp_engine *e = open_default();
  uint64_t never = 0, force = 0;
  REQUIRE(e);
  INGEST_OK(e, "{'source':'crm','ts':1,'ids':{'member_no':'M1','unionid':'u-1'}}\n");
  REQUIRE(oneid_of(e, "member_no", "M1") == oneid_of(e, "unionid", "u-1"));
  REQUIRE_RC(CDP_OK, cdp_rule_add(&never, e, SV("never_link"), SV("member_no"), SV("M1"),
                                  SV("unionid"), SV("u-1"), NULL, 0));
  CHECK(oneid_of(e, "member_no", "M1") != oneid_of(e, "unionid", "u-1"));
  CHECK_RC(CDP_ECONFLICT, cdp_rule_add(&force, e, SV("force_link"), SV("member_no"), SV("M1"),
                                       SV("unionid"), SV("u-1"), NULL, 0));
  CHECK_RC(CDP_OK, cdp_rule_remove(NULL, e, never));
  CHECK(oneid_of(e, "member_no", "M1") == oneid_of(e, "unionid", "u-1")); /* rebuilt */
  cdp_engine_close(e);
}

static void test_rule_add_rejects_bad_kind_and_values(void) {
  cdp_engine *e = open_default();
  uint64_t rule = 0;
  REQUIRE(e);
  CHECK_RC(CDP_EINVALID, cdp_rule_add(&rule, e, SV("maybe_link"), SV("member_no"), SV("M1"),
                                      SV("unionid"), SV("u-1"), NULL, 0));
  CHECK_RC(CDP_EINVALID, cdp_rule_add(&rule, e, SV("never_link"), SV("mobile"), SV("not a phone"),
                                      SV("unionid"), SV("u-1"), NULL, 0));
  CHECK_RC(CDP_OK, cdp_rule_add(&rule, e, SV("never_link"), SV("member_no"), SV("M1"),
                                SV("unionid"), SV("u-1"), NULL, 0)); /* unknown ids are created */
  cdp_engine_close(e);
}

static void test_feed_reads_from_a_cursor(void) {
  cdp_engine *e = open_default();
  cdp_buf out = CDP_BUF_INIT;
  REQUIRE(e);
  INGEST_OK(e, "{'source':'crm','ts':1,'ids':{'member_no':'M1'}}\n"
               "{'source':'wx','ts':2,'ids':{'unionid':'u-1'}}\n");
  INGEST_OK(e, "{'source':'app','ts':3,'ids':{'member_no':'M1','unionid':'u-1'}}\n");
  REQUIRE_RC(CDP_OK, cdp_feed_read(&out, e, 0, 1000));
  CHECK(count_of(out.ptr, "\"kind\":\"person_created\"") == 2);
  CHECK(count_of(out.ptr, "\"kind\":\"merged\"") == 1);
  int64_t next = json_int(out.ptr, "\"next\":");
  CHECK(next > 0);
  REQUIRE_RC(CDP_OK, cdp_feed_read(&out, e, (uint64_t)next, 1000));
  CHECK(contains(out.ptr, "\"events\":[]")); /* caught up */
  CHECK(json_int(out.ptr, "\"next\":") == next);
  cdp_buf_free(&out);
  cdp_engine_close(e);
}

static void test_feed_limit_is_clamped(void) {
  cdp_engine *e = open_default();
  cdp_buf out = CDP_BUF_INIT;
  REQUIRE(e);
  INGEST_OK(e, "{'source':'crm','ts':1,'ids':{'member_no':'M1'}}\n"
               "{'source':'crm','ts':2,'ids':{'member_no':'M2'}}\n");
  REQUIRE_RC(CDP_OK, cdp_feed_read(&out, e, 0, 0)); /* 0 is clamped to 1 */
  CHECK(count_of(out.ptr, "\"seq\":") == 1);
  cdp_buf_free(&out);
  cdp_engine_close(e);
}

/* The ingest report's feed range, the feed and the stats agree on cursors. */
static void test_feed_trim_drops_consumed_events(void) {
  cdp_engine *e = open_default();
  cdp_buf out = CDP_BUF_INIT;
  REQUIRE(e);
  INGEST_OK(e, "{'source':'crm','ts':1,'ids':{'member_no':'M1'}}\n");
  REQUIRE_RC(CDP_OK, ingest(&out, e, "{'source':'crm','ts':2,'ids':{'member_no':'M2'}}\n", 0));
  int64_t second = json_int(out.ptr, "\"feed\":{\"from\":");
  REQUIRE(second > 0);
  REQUIRE_RC(CDP_OK, cdp_feed_trim(e, (uint64_t)second));
  REQUIRE_RC(CDP_OK, cdp_feed_read(&out, e, 0, 1000)); /* below the trim point */
  CHECK(json_int(out.ptr, "\"seq\":") == second);     /* starts at the first retained */
  CHECK(count_of(out.ptr, "\"kind\":\"person_created\"") == 1);
  REQUIRE_RC(CDP_OK, cdp_engine_stats(&out, e));
  CHECK(json_int(out.ptr, "\"feed\":{\"first\":") == second);
  cdp_buf_free(&out);
  cdp_engine_close(e);
}

/* Manual rules and unmerges are logged in the feed too. */
static void test_feed_logs_rules_and_removals(void) {
  cdp_engine *e = open_default();
  cdp_buf out = CDP_BUF_INIT;
  uint64_t rule = 0;
  REQUIRE(e);
  INGEST_OK(e, BRIDGE);
  REQUIRE_RC(CDP_OK, cdp_rule_add(&rule, e, SV("never_link"), SV("member_no"), SV("M1"),
                                  SV("unionid"), SV("u-1"), SV("two customers")));
  REQUIRE_RC(CDP_OK, cdp_rule_remove(NULL, e, rule));
  REQUIRE_RC(CDP_OK, cdp_identifier_remove(NULL, e, SV("mobile"), SV("13917205836")));
  REQUIRE_RC(CDP_OK, cdp_feed_read(&out, e, 0, 1000));
  CHECK(contains(out.ptr, "\"kind\":\"rule_added\""));
  CHECK(contains(out.ptr, "\"kind\":\"rule_removed\""));
  CHECK(contains(out.ptr, "\"kind\":\"split\""));
  CHECK(contains(out.ptr, "\"kind\":\"identifier_removed\""));
  cdp_buf_free(&out);
  cdp_engine_close(e);
}

int main(void) {
  RUN(test_identifier_remove_cuts_the_bridge);
  RUN(test_identifier_remove_unknown_is_not_found);
  RUN(test_source_remove_undoes_its_links);
  RUN(test_source_remove_drops_orphaned_identifiers);
  RUN(test_split_parts_a_person_and_keeps_it_parted);
  RUN(test_split_rejects_bad_sides);
  RUN(test_force_link_joins_and_rule_remove_undoes_it);
  RUN(test_never_link_splits_and_blocks_force_link);
  RUN(test_rule_add_rejects_bad_kind_and_values);
  RUN(test_feed_reads_from_a_cursor);
  RUN(test_feed_limit_is_clamped);
  RUN(test_feed_trim_drops_consumed_events);
  RUN(test_feed_logs_rules_and_removals);
  return finish();
}
