/*
 * test_tags.c — tags and audiences through C: cdp_tags_define (also from the config),
 * cdp_tags_list, cdp_person_tags and the "tags" of cdp_person_get, incremental upkeep
 * with its feed events, cdp_advance across a local midnight, the four audience queries
 * (count with holdout, members paged, distribution, export with channel fallback), saved
 * audiences and their recounts, every error path, and a persistent engine that comes
 * back with the same tags, person tags and saved audiences.
 */
#include "persist.h"

#include "capi_test.h"

/* 2024-03-01T00:00:00+08:00, the engine's default zone. */
#define MAR1 INT64_C(1709222400000)
#define DAY INT64_C(86400000)
#define HOUR INT64_C(3600000)

/* The mobile of test person k: 139 followed by 10000000 + k. */
static const char *mobile(int k) {
  static char buf[8][16];
  static int next;
  char *m = buf[next++ % 8];
  snprintf(m, sizeof buf[0], "139%08d", 10000000 + k);
  return m;
}

/* An order of person k, as one NDJSON line (single-quoted, see capi_test.h). */
static void add_order(text *t, int k, int64_t ts, int yuan, const char *channel) {
  char line[256];
  int n = snprintf(line, sizeof line,
                   "{'source':'shop','ts':%" PRId64 ",'ids':{'mobile':'%s'},"
                   "'event':{'type':'order','amount':%d,'channel':'%s'}}\n",
                   ts, mobile(k), yuan, channel);
  text_add(t, line, (size_t)n);
}

/* Ingests the text and frees it. */
static bool ingest_text(cdp_engine *e, text *t) {
  bool ok = INGEST_OK(e, t->p);
  free(t->p);
  t->p = NULL;
  t->n = t->cap = 0;
  return ok;
}

/* Runs a single-quoted request through one of the cdp_audience_* queries. */
static int32_t query(int32_t (*fn)(cdp_buf *, cdp_engine *, const char *, uint64_t), cdp_buf *out,
                     cdp_engine *e, const char *request) {
  char *d = dq(request);
  int32_t rc = fn(out, e, d, strlen(d));
  free(d);
  return rc;
}

static int32_t define(cdp_buf *out, cdp_engine *e, const char *defs) {
  char *d = dq(defs);
  int32_t rc = cdp_tags_define(out, e, d, strlen(d));
  free(d);
  return rc;
}

/* The person tags of person k; caller frees. */
static char *tags_of(cdp_engine *e, int k) {
  cdp_buf out = CDP_BUF_INIT;
  uint64_t id = oneid_of(e, "mobile", mobile(k));
  if (id == 0 || cdp_person_tags(&out, e, id) != CDP_OK) return NULL;
  char *s = strdup(out.ptr);
  cdp_buf_free(&out);
  return s;
}

/* Every event of one kind in the feed, concatenated; caller frees. */
static char *feed_of(cdp_engine *e, const char *kind) {
  text t = {NULL, 0, 0};
  char pat[64];
  snprintf(pat, sizeof pat, "\"kind\":\"%s\"", kind);
  cdp_buf page = CDP_BUF_INIT;
  uint64_t cursor = 0;
  for (;;) {
    if (cdp_feed_read(&page, e, cursor, 1) != CDP_OK || contains(page.ptr, "\"events\":[]")) break;
    if (contains(page.ptr, pat)) text_add(&t, page.ptr, page.size);
    cursor = (uint64_t)json_int(page.ptr, "\"next\":");
  }
  cdp_buf_free(&page);
  if (!t.p) text_add(&t, "", 0);
  return t.p;
}

static const char *kValueTags =
    "[{'name':'spend','kind':'statistic','fn':'sum','event':'order','prop':'amount'},"
    " {'name':'tier','kind':'rule','version':2,'description':'by spend','rules':["
    "   {'when':'tags.spend >= yuan(500)','value':'high'},{'when':'tags.spend > 0','value':'low'}],"
    "  'default':'none'},"
    " {'name':'city','kind':'import'}]";

static void test_define_list_and_read_tags(void) {
  cdp_engine *e = open_default();
  REQUIRE(e);
  text t = {NULL, 0, 0};
  add_order(&t, 1, MAR1 + 10 * HOUR, 300, "tmall");
  add_order(&t, 1, MAR1 + 30 * HOUR, 500, "tmall");
  add_order(&t, 2, MAR1 + 12 * HOUR, 50, "jd");
  const char *crm = "{'source':'crm','ts':1709222400000,'ids':{'mobile':'13910000003'},'attrs':{'city':'上海'}}\n";
  text_add(&t, crm, strlen(crm));
  REQUIRE(ingest_text(e, &t));

  cdp_buf out = CDP_BUF_INIT;
  REQUIRE_RC(CDP_OK, define(&out, e, kValueTags));
  CHECK(contains(out.ptr, "{\"name\":\"spend\",\"version\":1,\"persons\":3,"));
  CHECK(contains(out.ptr, "{\"name\":\"tier\",\"version\":2,\"persons\":3,"));
  CHECK(contains(out.ptr, "{\"name\":\"city\",\"version\":1,\"persons\":1,"));

  /* The catalogue: dependency order, value type, index, what each reads. */
  REQUIRE_RC(CDP_OK, cdp_tags_list(&out, e));
  const char *spend = strstr(out.ptr, "\"name\":\"spend\"");
  const char *tier = strstr(out.ptr, "\"name\":\"tier\"");
  CHECK(spend && tier && spend < tier);
  CHECK(contains(out.ptr, "\"kind\":\"statistic\",\"version\":1,\"description\":\"\",\"type\":\"money\",\"index\":\"number\""));
  CHECK(contains(out.ptr, "\"description\":\"by spend\",\"type\":\"string\",\"index\":\"category\""));
  CHECK(contains(out.ptr, "\"reads\":[\"spend\"]"));

  char *p1 = tags_of(e, 1), *p2 = tags_of(e, 2), *p3 = tags_of(e, 3);
  CHECK(contains(p1, "\"spend\":{\"value\":800.00,\"version\":1}"));
  CHECK(contains(p1, "\"tier\":{\"value\":\"high\",\"version\":2}"));
  CHECK(!contains(p1, "\"city\""));  /* no value, not listed */
  CHECK(contains(p2, "\"tier\":{\"value\":\"low\""));
  CHECK(contains(p3, "\"tier\":{\"value\":\"none\""));
  CHECK(contains(p3, "\"city\":{\"value\":\"上海\""));
  free(p1), free(p2), free(p3);

  /* cdp_person_get carries the same tags. */
  uint64_t id1 = oneid_of(e, "mobile", mobile(1));
  REQUIRE_RC(CDP_OK, cdp_person_get(&out, e, id1, 0));
  CHECK(contains(out.ptr, "\"tags\":{\"spend\":{\"value\":800.00,\"version\":1},\"tier\":{\"value\":\"high\""));

  /* Incremental: a new order re-evaluates the person's dependent tags, with the reason. */
  add_order(&t, 2, MAR1 + 40 * HOUR, 600, "jd");
  REQUIRE(ingest_text(e, &t));
  char *p = tags_of(e, 2);
  CHECK(contains(p, "\"tier\":{\"value\":\"high\""));
  free(p);
  char *changed = feed_of(e, "tag_changed");
  CHECK(contains(changed, "\"tag\":\"tier\",\"from\":\"low\",\"to\":\"high\",\"reason\":\"rules[0]\""));
  free(changed);
  char *defined = feed_of(e, "tag_defined");
  CHECK(count_of(defined, "\"kind\":\"tag_defined\"") == 3);
  free(defined);

  /* Dropping: not while another tag reads it; then in dependency order. */
  CHECK_RC(CDP_ECONFLICT, cdp_tag_drop(e, SV("spend")));
  CHECK(contains(cdp_error_last(), "read by tag tier"));
  CHECK_RC(CDP_OK, cdp_tag_drop(e, SV("tier")));
  CHECK_RC(CDP_OK, cdp_tag_drop(e, SV("spend")));
  CHECK_RC(CDP_ENOTFOUND, cdp_tag_drop(e, SV("spend")));
  char *dropped = feed_of(e, "tag_dropped");
  CHECK(contains(dropped, "\"tag\":\"tier\",\"version\":2"));
  free(dropped);
  REQUIRE_RC(CDP_OK, cdp_tags_list(&out, e));
  CHECK(!contains(out.ptr, "\"spend\"") && contains(out.ptr, "\"name\":\"city\""));
  cdp_buf_free(&out);
  cdp_engine_close(e);
}

static void test_tags_from_the_config(void) {
  cdp_engine *e = open_with("{'tags':[{'name':'buyer','kind':'rule','when':'count(order) > 0'}]}");
  REQUIRE(e);
  text t = {NULL, 0, 0};
  add_order(&t, 1, MAR1, 10, "tmall");
  REQUIRE(ingest_text(e, &t));
  char *p = tags_of(e, 1);
  CHECK(contains(p, "\"buyer\":{\"value\":true"));
  free(p);
  cdp_engine_close(e);
  /* A bad definition in the config refuses the open, naming it. */
  cdp_engine *bad = NULL;
  char *cfg = dq("{'tags':[{'name':'x','kind':'rule','when':'count(order'}]}");
  CHECK_RC(CDP_EINVALID, cdp_engine_open(&bad, cfg, strlen(cfg), NULL));
  CHECK(contains(cdp_error_last(), "config tags: tags[0] (x).when"));
  CHECK(bad == NULL);
  free(cfg);
}

static void test_advance_moves_time_dependent_tags(void) {
  cdp_engine *e = open_default();
  REQUIRE(e);
  text t = {NULL, 0, 0};
  /* An order at 23:30 local on March 1: within "the last 30 days" through March 30. */
  add_order(&t, 1, MAR1 + 23 * HOUR + 30 * 60000, 100, "tmall");
  REQUIRE(ingest_text(e, &t));
  cdp_buf out = CDP_BUF_INIT;
  REQUIRE_RC(CDP_OK, cdp_advance(&out, e, MAR1 + 23 * HOUR + 40 * 60000));
  CHECK(json_int(out.ptr, "\"now\":") == MAR1 + 23 * HOUR + 40 * 60000);
  CHECK(contains(out.ptr, "\"next\":null"));  /* no tag yet: nothing pending */
  REQUIRE_RC(CDP_OK, define(NULL, e, "{'name':'recent_buyer','kind':'rule','when':'count(order, 30d) > 0'}"));
  REQUIRE_RC(CDP_OK, cdp_tags_list(&out, e));
  CHECK(contains(out.ptr, "\"time_dependent\":true"));

  REQUIRE_RC(CDP_OK, cdp_advance(&out, e, MAR1 + 29 * DAY + 23 * HOUR));  /* March 30, 23:00 */
  CHECK(json_int(out.ptr, "\"next\":") == MAR1 + 30 * DAY);  /* the midnight starting March 31 */
  char *p = tags_of(e, 1);
  CHECK(contains(p, "\"recent_buyer\":{\"value\":true"));
  free(p);
  REQUIRE_RC(CDP_OK, cdp_advance(&out, e, MAR1 + 30 * DAY));
  CHECK(json_int(out.ptr, "\"persons\":") == 1);
  CHECK(json_int(out.ptr, "\"changed\":") == 1);
  CHECK(contains(out.ptr, "\"next\":null"));
  p = tags_of(e, 1);
  CHECK(contains(p, "\"recent_buyer\":{\"value\":false"));
  free(p);
  char *changed = feed_of(e, "tag_changed");
  CHECK(contains(changed, "\"tag\":\"recent_buyer\",\"from\":true,\"to\":false"));
  CHECK(json_int(changed, "\"ts\":") == MAR1 + 30 * DAY);
  free(changed);

  /* The clock never goes back; out may be NULL. */
  CHECK_RC(CDP_ECONFLICT, cdp_advance(&out, e, MAR1));
  CHECK(contains(cdp_error_last(), "does not go back"));
  CHECK_RC(CDP_OK, cdp_advance(NULL, e, MAR1 + 30 * DAY));
  cdp_buf_free(&out);
  cdp_engine_close(e);

  cdp_engine *fresh = open_default();
  REQUIRE(fresh);
  CHECK_RC(CDP_EINVALID, cdp_advance(NULL, fresh, -1));
  cdp_engine_close(fresh);
}

/* 40 shoppers: person k spent 10k yuan on one order, on jd when k is a multiple of 4,
 * else on tmall; plus a jd buyer known only by buyer_id, who spent 999. */
static cdp_engine *shoppers(void) {
  cdp_engine *e = open_default();
  if (!e) return NULL;
  text t = {NULL, 0, 0};
  for (int k = 1; k <= 40; k++) add_order(&t, k, MAR1 + k * HOUR, k * 10, k % 4 ? "tmall" : "jd");
  const char *jd = "{'source':'jd','ts':1709222400000,'ids':{'buyer_id':'jd-7'},'event':{'type':'order','amount':999}}\n";
  text_add(&t, jd, strlen(jd));
  if (!ingest_text(e, &t) ||
      define(NULL, e,
             "[{'name':'spend','kind':'statistic','fn':'sum','event':'order','prop':'amount'},"
             " {'name':'channel','kind':'preference','event':'order','prop':'channel'}]") != CDP_OK) {
    cdp_engine_close(e);
    return NULL;
  }
  return e;
}

static void test_audience_count_members_distribution(void) {
  cdp_engine *e = shoppers();
  REQUIRE(e);
  cdp_buf out = CDP_BUF_INIT;
  /* Persons 20..40 and the jd buyer; the indexed leaf needs no per-person evaluation. */
  REQUIRE_RC(CDP_OK, query(cdp_audience_count, &out, e, "{'expr':'tags.spend >= 200'}"));
  CHECK(json_int(out.ptr, "\"count\":") == 22);
  CHECK(!contains(out.ptr, "\"holdout\""));
  CHECK(json_int(out.ptr, "\"indexed_leaves\":") == 1);
  CHECK(json_int(out.ptr, "\"persons_evaluated\":") == 0);
  /* A leaf reading events goes per person, on what the indexed part left. */
  REQUIRE_RC(CDP_OK, query(cdp_audience_count, &out, e, "{'expr':'tags.spend >= 200 && count(order, 7d) > 0'}"));
  CHECK(json_int(out.ptr, "\"count\":") == 22);
  CHECK(json_int(out.ptr, "\"persons_evaluated\":") == 22);

  /* Holdout: the two sides add up, and "group" selects one. */
  const char *held = "{'expr':'tags.spend >= 200','holdout':{'salt':'c1','percent':25}";
  char req[256];
  snprintf(req, sizeof req, "%s}", held);
  REQUIRE_RC(CDP_OK, query(cdp_audience_count, &out, e, req));
  int64_t target = json_int(out.ptr, "\"target\":"), holdout = json_int(out.ptr, "\"holdout\":");
  CHECK(target + holdout == 22);
  CHECK(holdout > 0 && target > 0);
  snprintf(req, sizeof req, "%s,'group':'holdout'}", held);
  REQUIRE_RC(CDP_OK, query(cdp_audience_count, &out, e, req));
  CHECK(json_int(out.ptr, "\"count\":") == holdout);
  /* Members carry their side; the holdout flags agree with the count. */
  snprintf(req, sizeof req, "%s,'limit':100,'ids':['mobile']}", held);
  REQUIRE_RC(CDP_OK, query(cdp_audience_members, &out, e, req));
  CHECK(count_of(out.ptr, "\"holdout\":true") == holdout);
  CHECK(contains(out.ptr, "\"ids\":{\"mobile\":[\"139****0040\"]}"));  /* masked by default */
  CHECK(json_int(out.ptr, "\"next\":") == 0);

  /* Paging visits every member once. */
  uint64_t cursor = 0;
  int seen = 0, pages = 0;
  do {
    snprintf(req, sizeof req, "{'expr':'tags.spend >= 200','limit':5,'cursor':%" PRIu64 "}", cursor);
    REQUIRE_RC(CDP_OK, query(cdp_audience_members, &out, e, req));
    seen += count_of(out.ptr, "{\"oneid\":");
    cursor = (uint64_t)json_int(out.ptr, "\"next\":");
    pages++;
  } while (cursor != 0 && pages < 100);
  CHECK(seen == 22);
  CHECK(pages == 5);

  /* Distribution: the most common value first, then what is beyond the top and unset. */
  REQUIRE_RC(CDP_OK, query(cdp_audience_distribution, &out, e, "{'expr':'true','tags':['channel','spend'],'top':1}"));
  CHECK(json_int(out.ptr, "\"count\":") == 41);
  CHECK(contains(out.ptr, "\"channel\":{\"values\":[{\"value\":\"tmall\",\"count\":30}],\"other\":10,\"none\":1}"));
  CHECK(contains(out.ptr, "\"spend\":{\"values\":[{\"value\":"));
  cdp_buf_free(&out);
  cdp_engine_close(e);
}

static void test_audience_export_with_channel_fallback(void) {
  cdp_engine *e = shoppers();
  REQUIRE(e);
  cdp_buf out = CDP_BUF_INIT;
  /* For SMS: the mobile when the person has one, else the source they came from. */
  REQUIRE_RC(CDP_OK, query(cdp_audience_export, &out, e,
                           "{'expr':'tags.spend >= yuan(390)','channel':['mobile'],'format':'csv'}"));
  CHECK(strncmp(out.ptr, "oneid,type,value,source,holdout\n", 32) == 0);
  CHECK(count_of(out.ptr, "\n") == 1 + 3);
  CHECK(contains(out.ptr, ",mobile,13910000040,,\n"));
  CHECK(contains(out.ptr, ",buyer_id,jd-7,jd,\n"));
  /* NDJSON, masked, without fallback: the jd buyer cannot be reached. */
  REQUIRE_RC(CDP_OK, query(cdp_audience_export, &out, e,
                           "{'expr':'tags.spend >= yuan(390)','channel':['mobile'],'mask':true,'fallback':false}"));
  CHECK(count_of(out.ptr, "\n") == 2);
  CHECK(contains(out.ptr, "\"type\":\"mobile\",\"value\":\"139****0040\"}\n"));
  CHECK(!contains(out.ptr, "jd-7"));
  /* Fallback names its source. */
  REQUIRE_RC(CDP_OK, query(cdp_audience_export, &out, e, "{'expr':'tags.spend > 900','channel':['mobile']}"));
  CHECK(contains(out.ptr, "\"type\":\"buyer_id\",\"value\":\"jd-7\",\"fallback_source\":\"jd\"}\n"));
  /* Export needs a channel, of known types, and a known format. */
  CHECK_RC(CDP_EINVALID, query(cdp_audience_export, &out, e, "{'expr':'true'}"));
  CHECK(contains(cdp_error_last(), "channel"));
  CHECK_RC(CDP_EINVALID, query(cdp_audience_export, &out, e, "{'expr':'true','channel':['fax']}"));
  CHECK(contains(cdp_error_last(), "channel[0]: unknown identifier type"));
  CHECK_RC(CDP_EINVALID, query(cdp_audience_export, &out, e, "{'expr':'true','channel':['mobile'],'format':'xml'}"));
  cdp_buf_free(&out);
  cdp_engine_close(e);
}

static void test_saved_audiences(void) {
  cdp_engine *e = shoppers();
  REQUIRE(e);
  cdp_buf out = CDP_BUF_INIT;
  char *req = dq("{'expr':'tags.spend >= 390','holdout':{'salt':'vip','basis_points':5000}}");
  REQUIRE_RC(CDP_OK, cdp_audience_save(&out, e, SV("big"), req, strlen(req)));
  CHECK(contains(out.ptr, "{\"name\":\"big\",\"count\":3}"));
  REQUIRE_RC(CDP_OK, cdp_audiences_list(&out, e));
  CHECK(contains(out.ptr, "{\"name\":\"big\",\"request\":{\"expr\":\"tags.spend >= 390\""));
  CHECK(contains(out.ptr, "\"counts\":0,\"count\":null,\"counted_at\":null"));

  REQUIRE_RC(CDP_OK, cdp_audience_recount(&out, e, SV("big")));
  CHECK(contains(out.ptr, "{\"audience\":\"big\",\"count\":3,\"previous\":null,\"entered\":3,\"left\":0,"));
  /* Person 1 spends 500 more and enters. */
  text t = {NULL, 0, 0};
  add_order(&t, 1, MAR1 + 50 * HOUR, 500, "tmall");
  REQUIRE(ingest_text(e, &t));
  REQUIRE_RC(CDP_OK, cdp_audience_recount(&out, e, SV("big")));
  CHECK(contains(out.ptr, "\"count\":4,\"previous\":3,\"entered\":1,\"left\":0,"));
  CHECK(json_int(out.ptr, "\"now\":") == MAR1 + 50 * HOUR);  /* the engine's clock: the newest record */
  char *counted = feed_of(e, "audience_counted");
  CHECK(count_of(counted, "\"kind\":\"audience_counted\"") == 2);
  CHECK(contains(counted, "\"audience\":\"big\",\"count\":4,\"previous\":3"));
  free(counted);
  REQUIRE_RC(CDP_OK, cdp_audiences_list(&out, e));
  CHECK(contains(out.ptr, "\"counts\":2,\"count\":4,\"counted_at\":"));

  /* A query may name the saved audience, keep its holdout and add its own options. */
  REQUIRE_RC(CDP_OK, query(cdp_audience_count, &out, e, "{'audience':'big'}"));
  CHECK(json_int(out.ptr, "\"count\":") == 4);
  CHECK(json_int(out.ptr, "\"target\":") + json_int(out.ptr, "\"holdout\":") == 4);
  REQUIRE_RC(CDP_OK, query(cdp_audience_members, &out, e, "{'audience':'big','group':'target','limit':1}"));
  CHECK(count_of(out.ptr, "\"holdout\":false") == 1);

  /* Errors: unknown names, a saved audience of a saved audience, bad names. */
  CHECK_RC(CDP_ENOTFOUND, cdp_audience_recount(&out, e, SV("nope")));
  CHECK_RC(CDP_ENOTFOUND, query(cdp_audience_count, &out, e, "{'audience':'nope'}"));
  char *nested = dq("{'audience':'big'}");
  CHECK_RC(CDP_EINVALID, cdp_audience_save(NULL, e, SV("again"), nested, strlen(nested)));
  CHECK_RC(CDP_EINVALID, cdp_audience_save(NULL, e, NULL, 0, req, strlen(req)));
  char *bad = dq("{'expr':'tags.spend >='}");
  CHECK_RC(CDP_EINVALID, cdp_audience_save(NULL, e, SV("broken"), bad, strlen(bad)));
  CHECK(contains(cdp_error_last(), "line 1, column"));
  free(nested), free(bad), free(req);

  CHECK_RC(CDP_OK, cdp_audience_drop(e, SV("big")));
  CHECK_RC(CDP_ENOTFOUND, cdp_audience_drop(e, SV("big")));
  REQUIRE_RC(CDP_OK, cdp_audiences_list(&out, e));
  CHECK(strcmp(out.ptr, "{\"audiences\":[]}") == 0);
  cdp_buf_free(&out);
  cdp_engine_close(e);
}

static void test_errors_name_what_and_where(void) {
  cdp_engine *e = open_default();
  REQUIRE(e);
  cdp_buf out = CDP_BUF_INIT;
  /* Definitions: JSON syntax with its position, the definition and field, cycles. */
  CHECK_RC(CDP_EINVALID, define(&out, e, "{'name':'x','kind':'rule','when':'true',}"));
  CHECK(contains(cdp_error_last(), "tag definitions: line 1, column"));
  CHECK_RC(CDP_EINVALID, define(&out, e, "[{'name':'a','kind':'rule','when':'true'},{'name':'b','kind':'nope'}]"));
  CHECK(contains(cdp_error_last(), "tags[1] (b).kind"));
  CHECK_RC(CDP_EINVALID, define(&out, e, "{'name':'x','kind':'rule','rules':[{'when':'count(order, 30d) >','value':'a'}]}"));
  CHECK(contains(cdp_error_last(), "tag (x).rules[0].when: line 1, column"));
  CHECK_RC(CDP_EINVALID, define(&out, e, "{'name':'x','kind':'rule','when':'tags.missing'}"));
  CHECK(contains(cdp_error_last(), "tags.missing, which is not defined"));
  CHECK_RC(CDP_EINVALID, cdp_tags_define(&out, e, NULL, 0));
  REQUIRE_RC(CDP_OK, define(&out, e, "[{'name':'a','kind':'rule','when':'true'},{'name':'b','kind':'rule','when':'tags.a'}]"));
  CHECK_RC(CDP_EINVALID, define(&out, e, "{'name':'a','kind':'rule','when':'tags.b'}"));
  CHECK(contains(cdp_error_last(), "tag cycle: a -> b -> a"));
  /* A refused call installs nothing. */
  REQUIRE_RC(CDP_OK, cdp_tags_list(&out, e));
  CHECK(!contains(out.ptr, "\"name\":\"x\""));
  CHECK(contains(out.ptr, "\"definition\":{\"name\":\"a\",\"kind\":\"rule\",\"when\":\"true\"}"));
  CHECK_RC(CDP_ENOTFOUND, cdp_tag_drop(e, SV("nope")));
  CHECK(contains(cdp_error_last(), "tag nope is not defined"));
  CHECK_RC(CDP_ENOTFOUND, cdp_tag_drop(e, NULL, 0));

  /* Audience requests: JSON position, the expression's position, options by name. */
  CHECK_RC(CDP_EINVALID, query(cdp_audience_count, &out, e, "{'expr':'true',"));
  CHECK(contains(cdp_error_last(), "audience request: line 1, column"));
  CHECK_RC(CDP_EINVALID, query(cdp_audience_count, &out, e, "{'expr':'count(order'}"));
  CHECK(contains(cdp_error_last(), "audience expression: line 1, column"));
  CHECK_RC(CDP_EINVALID, query(cdp_audience_count, &out, e, "{}"));
  CHECK(contains(cdp_error_last(), "give \"expr\""));
  CHECK_RC(CDP_EINVALID, query(cdp_audience_count, &out, e, "{'expr':'true','holdout':{'percent':10}}"));
  CHECK(contains(cdp_error_last(), "holdout.salt"));
  CHECK_RC(CDP_EINVALID, query(cdp_audience_count, &out, e, "{'expr':'true','group':'holdout'}"));
  CHECK(contains(cdp_error_last(), "group: needs a holdout"));
  CHECK_RC(CDP_EINVALID, query(cdp_audience_count, &out, e, "{'expr':'true','now':'today'}"));
  CHECK(contains(cdp_error_last(), "now: expected epoch milliseconds"));
  CHECK_RC(CDP_EINVALID, query(cdp_audience_members, &out, e, "{'expr':'true','ids':['fax']}"));
  CHECK_RC(CDP_EINVALID, query(cdp_audience_distribution, &out, e, "{'expr':'true'}"));
  CHECK_RC(CDP_EINVALID, query(cdp_audience_distribution, &out, e, "{'expr':'true','tags':['nope']}"));
  CHECK(contains(cdp_error_last(), "tags[0]: tag nope is not defined"));
  CHECK_RC(CDP_EINVALID, cdp_audience_count(&out, e, NULL, 0));
  CHECK_RC(CDP_ENOTFOUND, cdp_person_tags(&out, e, 12345));
  cdp_buf_free(&out);
  cdp_engine_close(e);
}

static void test_null_and_closed_handles(void) {
  cdp_engine *e = open_default();
  REQUIRE(e);
  cdp_buf out = CDP_BUF_INIT;
  /* NULL engine: every call. */
  CHECK_RC(CDP_EMISUSE, cdp_tags_define(&out, NULL, SV("{}")));
  CHECK_RC(CDP_EMISUSE, cdp_tag_drop(NULL, SV("a")));
  CHECK_RC(CDP_EMISUSE, cdp_tags_list(&out, NULL));
  CHECK_RC(CDP_EMISUSE, cdp_person_tags(&out, NULL, 1));
  CHECK_RC(CDP_EMISUSE, cdp_advance(&out, NULL, 0));
  CHECK_RC(CDP_EMISUSE, cdp_audience_count(&out, NULL, SV("{}")));
  CHECK_RC(CDP_EMISUSE, cdp_audience_members(&out, NULL, SV("{}")));
  CHECK_RC(CDP_EMISUSE, cdp_audience_distribution(&out, NULL, SV("{}")));
  CHECK_RC(CDP_EMISUSE, cdp_audience_export(&out, NULL, SV("{}")));
  CHECK_RC(CDP_EMISUSE, cdp_audience_save(&out, NULL, SV("a"), SV("{}")));
  CHECK_RC(CDP_EMISUSE, cdp_audience_drop(NULL, SV("a")));
  CHECK_RC(CDP_EMISUSE, cdp_audiences_list(&out, NULL));
  CHECK_RC(CDP_EMISUSE, cdp_audience_recount(&out, NULL, SV("a")));
  CHECK_RC(CDP_EMISUSE, cdp_metrics(&out, NULL, SV("{}")));
  /* NULL out where the result is the point. */
  CHECK_RC(CDP_EMISUSE, cdp_tags_list(NULL, e));
  CHECK_RC(CDP_EMISUSE, cdp_person_tags(NULL, e, 1));
  CHECK_RC(CDP_EMISUSE, cdp_audiences_list(NULL, e));
  CHECK_RC(CDP_EMISUSE, cdp_audience_count(NULL, e, SV("{\"expr\":\"true\"}")));
  CHECK_RC(CDP_EMISUSE, cdp_audience_members(NULL, e, SV("{\"expr\":\"true\"}")));
  CHECK_RC(CDP_EMISUSE, cdp_audience_distribution(NULL, e, SV("{\"expr\":\"true\"}")));
  CHECK_RC(CDP_EMISUSE, cdp_audience_export(NULL, e, SV("{\"expr\":\"true\"}")));
  CHECK_RC(CDP_EMISUSE, cdp_metrics(NULL, e, SV("{}")));
  /* NULL text with a length. */
  CHECK_RC(CDP_EMISUSE, cdp_tags_define(&out, e, NULL, 5));
  CHECK_RC(CDP_EMISUSE, cdp_tag_drop(e, NULL, 5));
  CHECK_RC(CDP_EMISUSE, cdp_audience_count(&out, e, NULL, 5));
  CHECK_RC(CDP_EMISUSE, cdp_audience_save(&out, e, NULL, 5, SV("{}")));
  CHECK_RC(CDP_EMISUSE, cdp_audience_save(&out, e, SV("a"), NULL, 5));
  CHECK_RC(CDP_EMISUSE, cdp_audience_drop(e, NULL, 5));
  CHECK_RC(CDP_EMISUSE, cdp_audience_recount(&out, e, NULL, 5));
  CHECK_RC(CDP_EMISUSE, cdp_metrics(&out, e, NULL, 5));
  /* A closed engine is refused, not dereferenced. */
  cdp_engine_close(e);
  CHECK_RC(CDP_EMISUSE, cdp_tags_list(&out, e));
  CHECK_RC(CDP_EMISUSE, cdp_advance(&out, e, 0));
  CHECK_RC(CDP_EMISUSE, cdp_audience_count(&out, e, SV("{\"expr\":\"true\"}")));
  CHECK(contains(cdp_error_last(), "not an open engine"));
  cdp_buf_free(&out);
}

/* What a host reads about tags and audiences, as one malloc'd string (NULL on failure). */
static char *tags_text(cdp_engine *e, const int *persons, int n) {
  text t = {NULL, 0, 0};
  cdp_buf out = CDP_BUF_INIT;
  if (cdp_tags_list(&out, e) != CDP_OK) goto fail;
  text_add(&t, out.ptr, out.size);
  if (cdp_audiences_list(&out, e) != CDP_OK) goto fail;
  text_add(&t, out.ptr, out.size);
  for (int i = 0; i < n; i++) {
    uint64_t id = oneid_of(e, "mobile", mobile(persons[i]));
    if (id == 0 || cdp_person_tags(&out, e, id) != CDP_OK) goto fail;
    text_add(&t, out.ptr, out.size);
  }
  cdp_buf_free(&out);
  return t.p;
fail:
  cdp_buf_free(&out);
  free(t.p);
  return NULL;
}

static void test_persistent_engine_comes_back_with_its_tags(void) {
  char base[512], dir[600];
  make_tmpdir(base, sizeof base);
  snprintf(dir, sizeof dir, "%s/engine", base);
  const int persons[] = {1, 2, 3, 4, 8};
  char *before = NULL, *feed_before = NULL;
  {
    cdp_engine *e = NULL;
    REQUIRE_RC(CDP_OK, cdp_engine_open(&e, NULL, 0, dir));
    text t = {NULL, 0, 0};
    for (int k = 1; k <= 8; k++) add_order(&t, k, MAR1 + k * HOUR, k * 100, k % 2 ? "tmall" : "jd");
    CHECK(ingest_text(e, &t));
    CHECK_RC(CDP_OK, define(NULL, e, kValueTags));
    CHECK_RC(CDP_OK, define(NULL, e,
                            "[{'name':'recent','kind':'rule','when':'count(order, 7d) > 0'},"
                            " {'name':'channel','kind':'preference','event':'order','prop':'channel'}]"));
    char *req = dq("{'expr':'tags.recent && tags.tier == \\\"high\\\"'}");
    CHECK_RC(CDP_OK, cdp_audience_save(NULL, e, SV("active_high"), req, strlen(req)));
    free(req);
    CHECK_RC(CDP_OK, cdp_audience_recount(NULL, e, SV("active_high")));
    /* A week later the recent tag has turned off for everyone; person 3 orders again. */
    CHECK_RC(CDP_OK, cdp_advance(NULL, e, MAR1 + 8 * DAY));
    add_order(&t, 3, MAR1 + 8 * DAY + HOUR, 300, "jd");
    CHECK(ingest_text(e, &t));
    CHECK_RC(CDP_OK, cdp_audience_recount(NULL, e, SV("active_high")));
    CHECK_RC(CDP_OK, cdp_tag_drop(e, SV("city")));
    before = tags_text(e, persons, 5);
    feed_before = feed_of(e, "tag_changed");
    CHECK(contains(before, "\"recent\":{\"value\":false"));
    CHECK(contains(before, "\"counts\":2,\"count\":1,"));
    CHECK(contains(feed_before, "\"tag\":\"recent\",\"from\":true,\"to\":false"));
    CHECK_RC(CDP_OK, cdp_engine_close(e));
  }
  REQUIRE(before != NULL);
  {
    cdp_engine *e = NULL;
    REQUIRE_RC(CDP_OK, cdp_engine_open(&e, NULL, 0, dir));
    char *after = tags_text(e, persons, 5);
    char *feed_after = feed_of(e, "tag_changed");
    CHECK(after != NULL && strcmp(before, after) == 0);
    CHECK(feed_after != NULL && strcmp(feed_before, feed_after) == 0);
    /* The clock came back too: it still does not go back. */
    CHECK_RC(CDP_ECONFLICT, cdp_advance(NULL, e, MAR1));
    cdp_buf out = CDP_BUF_INIT;
    CHECK_RC(CDP_OK, cdp_engine_stats(&out, e));
    CHECK(json_int(out.ptr, "\"replayed\":") == 9);
    /* The saved audience remembers its last members. */
    CHECK_RC(CDP_OK, cdp_audience_recount(&out, e, SV("active_high")));
    CHECK(contains(out.ptr, "\"count\":1,\"previous\":1,\"entered\":0,\"left\":0,"));
    cdp_buf_free(&out);
    free(after), free(feed_after);
    CHECK_RC(CDP_OK, cdp_engine_close(e));
  }
  free(before), free(feed_before);
  remove_tree(base);
}

int main(void) {
  RUN(test_define_list_and_read_tags);
  RUN(test_tags_from_the_config);
  RUN(test_advance_moves_time_dependent_tags);
  RUN(test_audience_count_members_distribution);
  RUN(test_audience_export_with_channel_fallback);
  RUN(test_saved_audiences);
  RUN(test_errors_name_what_and_where);
  RUN(test_null_and_closed_handles);
  RUN(test_persistent_engine_comes_back_with_its_tags);
  return finish();
}
