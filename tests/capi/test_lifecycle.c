/*
 * test_lifecycle.c — the lifecycle through C: cdp_lifecycle_define (reports, errors with
 * their JSON path, nothing installed on error, the definitions limit), cdp_lifecycle_list,
 * cdp_person_lifecycle and state.NAME in audiences, cdp_lifecycle_apply's set_state with
 * a monotonic refusal and its errors, cdp_advance firing an "after" timer with an action,
 * the outbox (read, page, redelivery until acknowledged, ack by ids and through),
 * cdp_lifecycle_drop, every NULL and closed-handle path, and a persistent engine that
 * comes back with its states, histories, outbox and pending deadlines.
 */
#include "persist.h"

#include "capi_test.h"

/* 2024-03-01T00:00:00+08:00, the engine's default zone. */
#define MAR1 INT64_C(1709222400000)
#define DAY INT64_C(86400000)
#define HOUR INT64_C(3600000)

/* activity: an order makes a person active; two days without one, dormant (the timer
 * emits "winback" with a payload); an order brings them back ("welcome_back").
 * ladder: monotonic, nothing moves a person back. */
static const char *kMachines =
    "{'machines':["
    " {'name':'activity','states':['new','active','dormant'],'initial':'new','transitions':["
    "   {'from':'new','to':'active','on':'order'},"
    "   {'from':'active','restart':true,'on':'order'},"
    "   {'from':'active','to':'dormant','after':'2d','action':'winback','channel':'sms',"
    "    'payload':{'orders':'{{count(order)}}','city':'{{attrs.city}}'}},"
    "   {'from':'dormant','to':'active','on':'order','action':'welcome_back','channel':'sms'}]},"
    " {'name':'ladder','monotonic':true,'states':['aware','interest','purchase'],'initial':'aware',"
    "  'transitions':[{'from':'aware','to':'interest','on':'follow'},"
    "                 {'from':['aware','interest'],'to':'purchase','on':'order'}]}]}";

/* The mobile of test person k. */
static const char *mobile(int k) {
  static char buf[8][16];
  static int next;
  char *m = buf[next++ % 8];
  snprintf(m, sizeof buf[0], "139%08d", 10000000 + k);
  return m;
}

/* Ingests one event of person k (single-quoted attrs may be "" for none). */
static bool event(cdp_engine *e, int k, int64_t ts, const char *type, const char *attrs) {
  char line[512];
  snprintf(line, sizeof line,
           "{'source':'shop','ts':%" PRId64 ",'ids':{'mobile':'%s'},'event':{'type':'%s'}%s%s}", ts,
           mobile(k), type, *attrs ? ",'attrs':" : "", attrs);
  return INGEST_OK(e, line);
}

/* Runs a single-quoted JSON argument through one of the (out, engine, json, len) calls. */
static int32_t call(int32_t (*fn)(cdp_buf *, cdp_engine *, const char *, uint64_t), cdp_buf *out,
                    cdp_engine *e, const char *json) {
  char *d = dq(json);
  int32_t rc = fn(out, e, d, strlen(d));
  free(d);
  return rc;
}

/* A set_state of person k: {"op":"set_state","type":"mobile","value":...,...rest}. */
static int32_t set_state(cdp_buf *out, cdp_engine *e, int k, const char *rest) {
  char req[512];
  snprintf(req, sizeof req, "{'op':'set_state','type':'mobile','value':'%s',%s}", mobile(k), rest);
  return call(cdp_lifecycle_apply, out, e, req);
}

/* The person lifecycle of person k; caller frees (NULL on failure). */
static char *lifecycle_of(cdp_engine *e, int k) {
  cdp_buf out = CDP_BUF_INIT;
  uint64_t id = oneid_of(e, "mobile", mobile(k));
  if (id == 0 || cdp_person_lifecycle(&out, e, id) != CDP_OK) return NULL;
  char *s = strdup(out.ptr);
  cdp_buf_free(&out);
  return s;
}

/* The id of the first intent of an outbox page, or JSON_MISSING. */
static int64_t first_id(const char *page) { return json_int(page, "{\"intents\":[{\"id\":"); }

static void test_define_list_and_read_a_person(void) {
  cdp_engine *e = open_default();
  REQUIRE(e);
  cdp_buf out = CDP_BUF_INIT;
  REQUIRE_RC(CDP_OK, call(cdp_lifecycle_define, &out, e, kMachines));
  CHECK(strcmp(out.ptr, "{\"machines\":[\"activity\",\"ladder\"]}") == 0);
  /* Person 1 orders; person 2 follows. Each record enters the person in every machine. */
  REQUIRE(event(e, 1, MAR1 + 10 * HOUR, "order", ""));
  REQUIRE(event(e, 2, MAR1 + 11 * HOUR, "follow", ""));

  REQUIRE_RC(CDP_OK, cdp_lifecycle_list(&out, e));
  CHECK(contains(out.ptr, "{\"name\":\"activity\",\"version\":1,\"monotonic\":false,\"reset\":\"none\","
                          "\"initial\":\"new\",\"transitions\":4,\"persons\":{\"new\":1,\"active\":1,\"dormant\":0}"));
  CHECK(contains(out.ptr, "{\"name\":\"ladder\",\"version\":1,\"monotonic\":true,"));
  CHECK(contains(out.ptr, "\"persons\":{\"aware\":0,\"interest\":1,\"purchase\":1}"));
  CHECK(contains(out.ptr, "\"definition\":{\"name\":\"activity\",\"states\":[\"new\",\"active\",\"dormant\"]"));

  /* The history in order, with reasons; the state with its next deadline. */
  char *p1 = lifecycle_of(e, 1);
  char want[512];
  snprintf(want, sizeof want,
           "\"history\":[{\"ts\":%" PRId64 ",\"machine\":\"activity\",\"from\":null,\"to\":\"new\",\"reason\":\"initial\"},"
           "{\"ts\":%" PRId64 ",\"machine\":\"activity\",\"from\":\"new\",\"to\":\"active\",\"reason\":\"event\",\"event\":\"order\"},"
           "{\"ts\":%" PRId64 ",\"machine\":\"ladder\",\"from\":null,\"to\":\"aware\",\"reason\":\"initial\"},"
           "{\"ts\":%" PRId64 ",\"machine\":\"ladder\",\"from\":\"aware\",\"to\":\"purchase\",\"reason\":\"event\",\"event\":\"order\"}]",
           MAR1 + 10 * HOUR, MAR1 + 10 * HOUR, MAR1 + 10 * HOUR, MAR1 + 10 * HOUR);
  CHECK(contains(p1, want));
  snprintf(want, sizeof want, "\"activity\":{\"state\":\"active\",\"since\":%" PRId64 ",\"next\":%" PRId64 "}",
           MAR1 + 10 * HOUR, MAR1 + 2 * DAY + 10 * HOUR);
  CHECK(contains(p1, want));
  CHECK(json_int(p1, "{\"oneid\":") == (int64_t)oneid_of(e, "mobile", mobile(1)));
  free(p1);
  char *p2 = lifecycle_of(e, 2);
  CHECK(contains(p2, "\"activity\":{\"state\":\"new\","));
  CHECK(contains(p2, "\"next\":null}"));
  CHECK(contains(p2, "\"ladder\":{\"state\":\"interest\","));
  free(p2);

  /* States are person data that expressions, and so audiences, read. */
  REQUIRE_RC(CDP_OK, call(cdp_audience_count, &out, e, "{'expr':'state.activity == \\\"active\\\"'}"));
  CHECK(json_int(out.ptr, "\"count\":") == 1);
  REQUIRE_RC(CDP_OK, call(cdp_audience_count, &out, e,
                          "{'expr':'state.ladder == \\\"interest\\\" || state.ladder == \\\"purchase\\\"'}"));
  CHECK(json_int(out.ptr, "\"count\":") == 2);

  /* The whole person carries the same members; the feed has every transition. */
  REQUIRE_RC(CDP_OK, cdp_person_get(&out, e, oneid_of(e, "mobile", mobile(2)), 0));
  CHECK(contains(out.ptr, "\"states\":{\"activity\":{\"state\":\"new\","));
  REQUIRE_RC(CDP_OK, cdp_feed_read(&out, e, 0, 1000));
  CHECK(count_of(out.ptr, "\"kind\":\"state_changed\"") == 7);
  CHECK(contains(out.ptr, "\"machine\":\"activity\",\"from\":\"new\",\"to\":\"active\",\"reason\":\"event\",\"event\":\"order\","
                          "\"transition\":\"transitions[0]\",\"version\":1"));

  /* A person the lifecycle has not met, and one that does not exist. */
  uint64_t rule = 0;
  REQUIRE_RC(CDP_OK, cdp_rule_add(&rule, e, SV("never_link"), SV("mobile"), SV("13700000001"), SV("mobile"),
                                  SV("13700000002"), SV("")));
  REQUIRE_RC(CDP_OK, cdp_person_lifecycle(&out, e, oneid_of(e, "mobile", "13700000001")));
  CHECK(contains(out.ptr, "\"history\":[],\"states\":{}"));
  CHECK_RC(CDP_ENOTFOUND, cdp_person_lifecycle(&out, e, 12345));
  CHECK(contains(cdp_error_last(), "no person with OneID 12345"));
  cdp_buf_free(&out);
  cdp_engine_close(e);
}

static void test_an_absorbed_oneid_answers_for_the_survivor(void) {
  cdp_engine *e = open_default();
  REQUIRE(e);
  REQUIRE_RC(CDP_OK, call(cdp_lifecycle_define, NULL, e, kMachines));
  /* Two persons, one ordering and one following, then a record that joins them. */
  REQUIRE(event(e, 1, MAR1 + 1 * HOUR, "order", ""));
  REQUIRE(INGEST_OK(e, "{'source':'crm','ts':1709226000000,'ids':{'member_no':'M7'},'event':{'type':'follow'}}"));
  uint64_t a = oneid_of(e, "mobile", mobile(1)), b = oneid_of(e, "member_no", "M7");
  REQUIRE(a && b && a != b);
  char join[256];
  snprintf(join, sizeof join, "{'source':'crm','ts':%" PRId64 ",'ids':{'mobile':'%s','member_no':'M7'}}",
           MAR1 + 3 * HOUR, mobile(1));
  REQUIRE(INGEST_OK(e, join));
  uint64_t survivor = oneid_of(e, "mobile", mobile(1));
  uint64_t absorbed = survivor == a ? b : a;
  cdp_buf out = CDP_BUF_INIT;
  REQUIRE_RC(CDP_OK, cdp_person_lifecycle(&out, e, absorbed));
  CHECK((uint64_t)json_int(out.ptr, "{\"oneid\":") == survivor);
  /* The monotonic ladder keeps the furthest stage of the two. */
  CHECK(contains(out.ptr, "\"ladder\":{\"state\":\"purchase\","));
  cdp_buf_free(&out);
  cdp_engine_close(e);
}

static void test_bad_definitions_name_their_path(void) {
  cdp_engine *e = open_default();
  REQUIRE(e);
  cdp_buf out = CDP_BUF_INIT;
  REQUIRE_RC(CDP_OK, call(cdp_lifecycle_define, &out, e,
                          "{'machines':[{'name':'kept','states':['a','b'],'transitions':[{'from':'a','to':'b','on':'x'}]}]}"));
  CHECK_RC(CDP_EINVALID, call(cdp_lifecycle_define, &out, e,
                              "{'machines':[{'name':'m','states':['a','b'],'transitions':["
                              "{'from':'a','to':'b','on':'order'},{'from':'b','to':'a','after':'2 weeks'}]}]}"));
  CHECK(contains(cdp_error_last(), "machines[0] (m).transitions[1].after: expected a duration"));
  CHECK_RC(CDP_EINVALID, call(cdp_lifecycle_define, &out, e,
                              "{'machines':[{'name':'m','states':['a'],'transitions':[{'from':'a','to':'z','on':'x'}]}]}"));
  CHECK(contains(cdp_error_last(), "machines[0] (m).transitions[0].to: unknown state \"z\""));
  CHECK_RC(CDP_EINVALID, call(cdp_lifecycle_define, &out, e,
                              "{'machines':[{'name':'m','states':['a','b'],'transitions':["
                              "{'from':'a','to':'b','when':'count(order) >'}]}]}"));
  CHECK(contains(cdp_error_last(), "machines[0] (m).transitions[0].when: line 1, column"));
  CHECK_RC(CDP_EINVALID, call(cdp_lifecycle_define, &out, e,
                              "{'machines':[{'name':'m','monotonic':true,'states':['a','b'],'transitions':["
                              "{'from':'b','to':'a','on':'x'}]}]}"));
  CHECK(contains(cdp_error_last(), "machines[0] (m).transitions[0].to: m is monotonic: b -> a moves backwards"));
  CHECK_RC(CDP_EINVALID, call(cdp_lifecycle_define, &out, e, "{'machines':[{'name':'m','colour':'red'}]}"));
  CHECK(contains(cdp_error_last(), "machines[0].colour: unknown key"));
  /* A good machine next to a bad one is not installed either. */
  CHECK_RC(CDP_EINVALID, call(cdp_lifecycle_define, &out, e,
                              "{'machines':[{'name':'good','states':['a'],'transitions':[]},{'name':'bad','states':[]}]}"));
  CHECK(contains(cdp_error_last(), "machines[1] (bad).states: expected an array of 1 to 1000 state names"));
  /* The document itself: JSON syntax, unknown sections, nothing in it. */
  CHECK_RC(CDP_EINVALID, call(cdp_lifecycle_define, &out, e, "{'machines':[}"));
  CHECK(contains(cdp_error_last(), "lifecycle definitions: line 1, column"));
  CHECK_RC(CDP_EINVALID, call(cdp_lifecycle_define, &out, e, "{'states':[]}"));
  CHECK(contains(cdp_error_last(), "states: unknown section"));
  CHECK_RC(CDP_EINVALID, call(cdp_lifecycle_define, &out, e, "{}"));
  CHECK(contains(cdp_error_last(), "nothing to define"));
  CHECK_RC(CDP_EINVALID, cdp_lifecycle_define(&out, e, NULL, 0));
  REQUIRE_RC(CDP_OK, cdp_lifecycle_list(&out, e));
  CHECK(contains(out.ptr, "\"name\":\"kept\""));
  CHECK(!contains(out.ptr, "\"name\":\"good\"") && !contains(out.ptr, "\"name\":\"m\""));
  cdp_buf_free(&out);
  cdp_engine_close(e);

  /* limits.max_lifecycle_definitions bounds machines and journeys together. */
  e = open_with("{'limits':{'max_lifecycle_definitions':1}}");
  REQUIRE(e);
  CHECK_RC(CDP_ELIMIT, call(cdp_lifecycle_define, NULL, e, kMachines));
  CHECK(contains(cdp_error_last(), "max_lifecycle_definitions"));
  cdp_engine_close(e);
}

static void test_set_state_and_its_refusals(void) {
  cdp_engine *e = open_default();
  REQUIRE(e);
  cdp_buf out = CDP_BUF_INIT;
  REQUIRE_RC(CDP_OK, call(cdp_lifecycle_define, NULL, e, kMachines));
  REQUIRE(event(e, 2, MAR1 + 11 * HOUR, "follow", ""));
  uint64_t p2 = oneid_of(e, "mobile", mobile(2));

  /* Forward on a monotonic ladder, at the engine's clock (the newest record). */
  REQUIRE_RC(CDP_OK, set_state(&out, e, 2, "'machine':'ladder','state':'purchase'"));
  char want[256];
  snprintf(want, sizeof want, "{\"oneid\":%" PRIu64 ",\"machine\":\"ladder\",\"from\":\"interest\",\"to\":\"purchase\",\"changed\":true}", p2);
  CHECK(strcmp(out.ptr, want) == 0);
  /* Backwards is refused, and nothing changes. */
  CHECK_RC(CDP_ECONFLICT, set_state(&out, e, 2, "'machine':'ladder','state':'aware'"));
  CHECK(contains(cdp_error_last(), "ladder is monotonic: purchase -> aware moves backwards"));
  /* The same state again is no change; by OneID, at a given time, on a free machine. */
  REQUIRE_RC(CDP_OK, set_state(&out, e, 2, "'machine':'ladder','state':'purchase'"));
  CHECK(contains(out.ptr, "\"changed\":false"));
  char req[256];
  snprintf(req, sizeof req, "{'op':'set_state','oneid':%" PRIu64 ",'machine':'activity','state':'dormant','ts':%" PRId64 "}",
           p2, MAR1 + 12 * HOUR);
  REQUIRE_RC(CDP_OK, call(cdp_lifecycle_apply, &out, e, req));
  CHECK(contains(out.ptr, "\"from\":\"new\",\"to\":\"dormant\",\"changed\":true"));
  snprintf(req, sizeof req, "{'op':'set_state','oneid':%" PRIu64 ",'machine':'activity','state':'new'}", p2);
  REQUIRE_RC(CDP_OK, call(cdp_lifecycle_apply, &out, e, req));

  char *life = lifecycle_of(e, 2);
  CHECK(count_of(life, "\"reason\":\"manual\"") == 3);
  CHECK(!contains(life, "\"to\":\"aware\",\"reason\":\"manual\""));
  snprintf(want, sizeof want, "{\"ts\":%" PRId64 ",\"machine\":\"activity\",\"from\":\"new\",\"to\":\"dormant\",\"reason\":\"manual\"}",
           MAR1 + 12 * HOUR);
  CHECK(contains(life, want));
  CHECK(contains(life, "\"ladder\":{\"state\":\"purchase\","));
  free(life);

  /* Errors: the operation, the person, the machine and the state, each named. */
  CHECK_RC(CDP_EINVALID, call(cdp_lifecycle_apply, &out, e, "{'op':'set_state',"));
  CHECK(contains(cdp_error_last(), "lifecycle operation: line 1, column"));
  CHECK_RC(CDP_EINVALID, call(cdp_lifecycle_apply, &out, e, "{'type':'mobile','value':'13910000002'}"));
  CHECK(contains(cdp_error_last(), "op: missing"));
  CHECK_RC(CDP_EINVALID, call(cdp_lifecycle_apply, &out, e, "{'op':'teleport','type':'mobile','value':'13910000002'}"));
  CHECK(contains(cdp_error_last(), "op: unknown operation \"teleport\""));
  CHECK_RC(CDP_EINVALID, call(cdp_lifecycle_apply, &out, e, "{'op':'set_state','machine':'ladder','state':'purchase'}"));
  CHECK(contains(cdp_error_last(), "name the person"));
  CHECK_RC(CDP_ENOTFOUND, call(cdp_lifecycle_apply, &out, e,
                               "{'op':'set_state','type':'mobile','value':'13700000000','machine':'ladder','state':'purchase'}"));
  CHECK_RC(CDP_ENOTFOUND, call(cdp_lifecycle_apply, &out, e,
                               "{'op':'set_state','oneid':12345,'machine':'ladder','state':'purchase'}"));
  CHECK_RC(CDP_ENOTFOUND, set_state(&out, e, 2, "'machine':'nope','state':'a'"));
  CHECK(contains(cdp_error_last(), "no machine named nope"));
  CHECK_RC(CDP_EINVALID, set_state(&out, e, 2, "'machine':'ladder','state':'loyal'"));
  CHECK(contains(cdp_error_last(), "state: ladder has no state \"loyal\""));
  CHECK_RC(CDP_EINVALID, set_state(&out, e, 2, "'state':'purchase'"));
  CHECK(contains(cdp_error_last(), "machine: missing"));
  CHECK_RC(CDP_EINVALID, cdp_lifecycle_apply(&out, e, NULL, 0));
  cdp_buf_free(&out);
  cdp_engine_close(e);
}

static void test_advance_fires_timers_into_the_outbox(void) {
  cdp_engine *e = open_default();
  REQUIRE(e);
  cdp_buf out = CDP_BUF_INIT;
  REQUIRE_RC(CDP_OK, call(cdp_lifecycle_define, NULL, e, kMachines));
  REQUIRE(event(e, 1, MAR1 + 10 * HOUR, "order", "{'city':'上海'}"));
  REQUIRE(event(e, 2, MAR1 + 12 * HOUR, "order", ""));
  uint64_t p1 = oneid_of(e, "mobile", mobile(1)), p2 = oneid_of(e, "mobile", mobile(2));

  /* Person 1's two days are up, person 2's not yet. */
  REQUIRE_RC(CDP_OK, cdp_advance(&out, e, MAR1 + 2 * DAY + 11 * HOUR));
  char want[512];
  snprintf(want, sizeof want, "\"lifecycle\":{\"fired\":1,\"transitions\":1,\"intents\":1,\"next\":%" PRId64 "}",
           MAR1 + 2 * DAY + 12 * HOUR);
  CHECK(contains(out.ptr, want));
  CHECK(json_int(out.ptr, "\"next\":") == MAR1 + 2 * DAY + 12 * HOUR);
  char *life = lifecycle_of(e, 1);
  snprintf(want, sizeof want,
           "{\"ts\":%" PRId64 ",\"machine\":\"activity\",\"from\":\"active\",\"to\":\"dormant\",\"reason\":\"timer\"}",
           MAR1 + 2 * DAY + 10 * HOUR);
  CHECK(contains(life, want));
  CHECK(contains(life, "\"activity\":{\"state\":\"dormant\","));
  free(life);

  /* The timer's action is an intent with its rendered payload and idempotency key. */
  REQUIRE_RC(CDP_OK, cdp_outbox_read(&out, e, 0, 100));
  int64_t first = first_id(out.ptr);
  CHECK(first > 0);
  snprintf(want, sizeof want,
           "{\"id\":%" PRId64 ",\"key\":\"machine:activity:%" PRIu64 ":active->dormant:%" PRId64 "\",\"oneid\":%" PRIu64 ","
           "\"origin\":\"machine:activity\",\"step\":\"active->dormant\",\"action\":\"winback\",\"channel\":\"sms\","
           "\"at\":%" PRId64 ",\"created\":%" PRId64 ",\"payload\":{\"orders\":1,\"city\":\"上海\"}}",
           first, p1, MAR1 + 2 * DAY + 10 * HOUR, p1, MAR1 + 2 * DAY + 10 * HOUR, MAR1 + 2 * DAY + 10 * HOUR);
  CHECK(contains(out.ptr, want));
  CHECK(json_int(out.ptr, "\"pending\":") == 1);
  char *page1 = strdup(out.ptr);
  /* Not acknowledged: read again, it comes again, the same. From past it, caught up. */
  REQUIRE_RC(CDP_OK, cdp_outbox_read(&out, e, 0, 100));
  CHECK(strcmp(out.ptr, page1) == 0);
  free(page1);
  uint64_t next = (uint64_t)json_int(out.ptr, "\"next\":");
  CHECK(next == (uint64_t)first + 1);
  REQUIRE_RC(CDP_OK, cdp_outbox_read(&out, e, next, 100));
  CHECK(contains(out.ptr, "{\"intents\":[],"));

  /* Person 2's turn; then pages of one. */
  REQUIRE_RC(CDP_OK, cdp_advance(&out, e, MAR1 + 3 * DAY));
  CHECK(contains(out.ptr, "\"lifecycle\":{\"fired\":1,\"transitions\":1,\"intents\":1,\"next\":null}"));
  REQUIRE_RC(CDP_OK, cdp_outbox_read(&out, e, 0, 1));
  CHECK(first_id(out.ptr) == first && json_int(out.ptr, "\"pending\":") == 2);
  REQUIRE_RC(CDP_OK, cdp_outbox_read(&out, e, (uint64_t)json_int(out.ptr, "\"next\":"), 0)); /* clamped to 1 */
  CHECK(first_id(out.ptr) == first + 1);
  CHECK((uint64_t)json_int(out.ptr, "\"oneid\":") == p2);

  /* Acknowledged intents leave; acknowledging twice, or unknown ids, counts nothing. */
  char ack[128];
  snprintf(ack, sizeof ack, "{'ids':[%" PRId64 ",999]}", first);
  REQUIRE_RC(CDP_OK, call(cdp_outbox_ack, &out, e, ack));
  CHECK(strcmp(out.ptr, "{\"acked\":1,\"pending\":1}") == 0);
  REQUIRE_RC(CDP_OK, call(cdp_outbox_ack, &out, e, ack));
  CHECK(strcmp(out.ptr, "{\"acked\":0,\"pending\":1}") == 0);
  REQUIRE_RC(CDP_OK, cdp_outbox_read(&out, e, 0, 100));
  CHECK(first_id(out.ptr) == first + 1 && count_of(out.ptr, "\"id\":") == 1);
  snprintf(ack, sizeof ack, "{'through':%" PRId64 "}", first + 1);
  REQUIRE_RC(CDP_OK, call(cdp_outbox_ack, NULL, e, ack));
  REQUIRE_RC(CDP_OK, cdp_outbox_read(&out, e, 0, 100));
  CHECK(contains(out.ptr, "{\"intents\":[],") && json_int(out.ptr, "\"pending\":") == 0);

  /* An order brings person 1 back: an event-driven action, without a payload. */
  REQUIRE(event(e, 1, MAR1 + 4 * DAY, "order", ""));
  REQUIRE_RC(CDP_OK, cdp_outbox_read(&out, e, 0, 100));
  CHECK(contains(out.ptr, "\"step\":\"dormant->active\",\"action\":\"welcome_back\",\"channel\":\"sms\""));
  CHECK(contains(out.ptr, "\"payload\":null}"));
  CHECK(first_id(out.ptr) == first + 2);

  /* Acknowledgements that do not parse. */
  CHECK_RC(CDP_EINVALID, call(cdp_outbox_ack, &out, e, "{}"));
  CHECK(contains(cdp_error_last(), "expected {\"ids\":[...]} or {\"through\":id}"));
  CHECK_RC(CDP_EINVALID, call(cdp_outbox_ack, &out, e, "{'ids':['x']}"));
  CHECK_RC(CDP_EINVALID, call(cdp_outbox_ack, &out, e, "{'ids':["));
  CHECK_RC(CDP_EINVALID, cdp_outbox_ack(&out, e, NULL, 0));
  cdp_buf_free(&out);
  cdp_engine_close(e);
}

static void test_drop(void) {
  cdp_engine *e = open_default();
  REQUIRE(e);
  cdp_buf out = CDP_BUF_INIT;
  REQUIRE_RC(CDP_OK, call(cdp_lifecycle_define, NULL, e, kMachines));
  REQUIRE(event(e, 1, MAR1 + 10 * HOUR, "order", ""));
  REQUIRE_RC(CDP_OK, cdp_lifecycle_drop(e, SV("machine"), SV("ladder")));
  REQUIRE_RC(CDP_OK, cdp_lifecycle_list(&out, e));
  CHECK(contains(out.ptr, "\"name\":\"activity\"") && !contains(out.ptr, "\"name\":\"ladder\""));
  char *life = lifecycle_of(e, 1);
  CHECK(contains(life, "\"states\":{\"activity\":") && !contains(life, "\"ladder\":{"));
  CHECK(count_of(life, "\"machine\":\"ladder\"") == 2); /* the history recorded stays */
  free(life);
  REQUIRE_RC(CDP_OK, call(cdp_audience_count, &out, e, "{'expr':'state.ladder == \\\"purchase\\\"'}"));
  CHECK(json_int(out.ptr, "\"count\":") == 0);
  CHECK_RC(CDP_ENOTFOUND, cdp_lifecycle_drop(e, SV("machine"), SV("ladder")));
  CHECK(contains(cdp_error_last(), "no machine named ladder"));
  CHECK_RC(CDP_EINVALID, cdp_lifecycle_drop(e, SV("widget"), SV("ladder")));
  CHECK(contains(cdp_error_last(), "unknown kind \"widget\""));
  CHECK_RC(CDP_EINVALID, cdp_lifecycle_drop(e, NULL, 0, SV("activity")));
  CHECK_RC(CDP_ENOTFOUND, cdp_lifecycle_drop(e, SV("machine"), NULL, 0));
  cdp_buf_free(&out);
  cdp_engine_close(e);
}

static void test_null_and_closed_handles(void) {
  cdp_engine *e = open_default();
  REQUIRE(e);
  cdp_buf out = CDP_BUF_INIT;
  /* NULL engine: every call. */
  CHECK_RC(CDP_EMISUSE, cdp_lifecycle_define(&out, NULL, SV("{}")));
  CHECK(contains(cdp_error_last(), "cdp_lifecycle_define: engine is NULL"));
  CHECK_RC(CDP_EMISUSE, cdp_lifecycle_drop(NULL, SV("machine"), SV("a")));
  CHECK_RC(CDP_EMISUSE, cdp_lifecycle_list(&out, NULL));
  CHECK_RC(CDP_EMISUSE, cdp_lifecycle_apply(&out, NULL, SV("{}")));
  CHECK_RC(CDP_EMISUSE, cdp_person_lifecycle(&out, NULL, 1));
  CHECK_RC(CDP_EMISUSE, cdp_outbox_read(&out, NULL, 0, 10));
  CHECK_RC(CDP_EMISUSE, cdp_outbox_ack(&out, NULL, SV("{\"through\":1}")));
  /* NULL out where the result is the point; where it is a report, NULL is fine. */
  CHECK_RC(CDP_EMISUSE, cdp_lifecycle_list(NULL, e));
  CHECK_RC(CDP_EMISUSE, cdp_person_lifecycle(NULL, e, 1));
  CHECK_RC(CDP_EMISUSE, cdp_outbox_read(NULL, e, 0, 10));
  CHECK(contains(cdp_error_last(), "cdp_outbox_read: out is NULL"));
  CHECK_RC(CDP_OK, cdp_outbox_ack(NULL, e, SV("{\"through\":1}")));
  /* NULL text with a length. */
  CHECK_RC(CDP_EMISUSE, cdp_lifecycle_define(&out, e, NULL, 5));
  CHECK_RC(CDP_EMISUSE, cdp_lifecycle_drop(e, NULL, 5, SV("a")));
  CHECK_RC(CDP_EMISUSE, cdp_lifecycle_drop(e, SV("machine"), NULL, 5));
  CHECK_RC(CDP_EMISUSE, cdp_lifecycle_apply(&out, e, NULL, 5));
  CHECK_RC(CDP_EMISUSE, cdp_outbox_ack(&out, e, NULL, 5));
  /* A closed engine is refused, not dereferenced. */
  cdp_engine_close(e);
  CHECK_RC(CDP_EMISUSE, cdp_lifecycle_list(&out, e));
  CHECK_RC(CDP_EMISUSE, cdp_outbox_read(&out, e, 0, 10));
  CHECK_RC(CDP_EMISUSE, cdp_lifecycle_define(&out, e, SV("{}")));
  CHECK(contains(cdp_error_last(), "not an open engine"));
  cdp_buf_free(&out);
}

/* Everything a host reads about the lifecycle of persons 1..3, as one malloc'd string. */
static char *lifecycle_text(cdp_engine *e) {
  text t = {NULL, 0, 0};
  cdp_buf out = CDP_BUF_INIT;
  if (cdp_lifecycle_list(&out, e) != CDP_OK) goto fail;
  text_add(&t, out.ptr, out.size);
  if (cdp_outbox_read(&out, e, 0, 1000) != CDP_OK) goto fail;
  text_add(&t, out.ptr, out.size);
  if (cdp_feed_read(&out, e, 0, 100000) != CDP_OK) goto fail;
  text_add(&t, out.ptr, out.size);
  for (int k = 1; k <= 3; k++) {
    char *life = lifecycle_of(e, k);
    if (!life) goto fail;
    text_add(&t, life, strlen(life));
    free(life);
  }
  cdp_buf_free(&out);
  return t.p;
fail:
  cdp_buf_free(&out);
  free(t.p);
  return NULL;
}

static void test_persistent_engine_keeps_states_outbox_and_deadlines(void) {
  char base[512], dir[600];
  make_tmpdir(base, sizeof base);
  snprintf(dir, sizeof dir, "%s/engine", base);
  char *before = NULL;
  int64_t acked = 0;
  {
    cdp_engine *e = NULL;
    REQUIRE_RC(CDP_OK, cdp_engine_open(&e, NULL, 0, dir));
    CHECK_RC(CDP_OK, call(cdp_lifecycle_define, NULL, e, kMachines));
    CHECK(event(e, 1, MAR1 + 10 * HOUR, "order", "{'city':'上海'}"));
    CHECK(event(e, 2, MAR1 + 12 * HOUR, "order", ""));
    CHECK(event(e, 3, MAR1 + 13 * HOUR, "follow", ""));
    /* Person 1 goes dormant (an intent), then comes back (another); person 2's deadline
     * is still pending when the engine closes. */
    CHECK_RC(CDP_OK, cdp_advance(NULL, e, MAR1 + 2 * DAY + 11 * HOUR));
    CHECK(event(e, 1, MAR1 + 2 * DAY + 20 * HOUR, "order", ""));
    CHECK_RC(CDP_OK, set_state(NULL, e, 3, "'machine':'ladder','state':'purchase'"));
    cdp_buf out = CDP_BUF_INIT;
    CHECK_RC(CDP_OK, cdp_outbox_read(&out, e, 0, 10));
    acked = first_id(out.ptr);
    char ack[64];
    snprintf(ack, sizeof ack, "{'ids':[%" PRId64 "]}", acked);
    CHECK_RC(CDP_OK, call(cdp_outbox_ack, NULL, e, ack));
    CHECK_RC(CDP_OK, cdp_lifecycle_drop(e, SV("machine"), SV("ladder")));
    CHECK_RC(CDP_OK, call(cdp_lifecycle_define, NULL, e,
                          "{'machines':[{'name':'ladder','monotonic':true,'states':['aware','interest','purchase'],"
                          "'transitions':[{'from':'aware','to':'interest','on':'follow'}]}]}"));
    cdp_buf_free(&out);
    before = lifecycle_text(e);
    CHECK(contains(before, "\"pending\":1}"));
    CHECK(contains(before, "\"action\":\"welcome_back\""));
    CHECK_RC(CDP_OK, cdp_engine_close(e));
  }
  REQUIRE(before != NULL);
  {
    cdp_engine *e = NULL;
    REQUIRE_RC(CDP_OK, cdp_engine_open(&e, NULL, 0, dir));
    char *after = lifecycle_text(e);
    CHECK(after != NULL && strcmp(before, after) == 0);
    free(after);
    /* The acknowledged intent stays acknowledged. */
    cdp_buf out = CDP_BUF_INIT;
    CHECK_RC(CDP_OK, cdp_outbox_read(&out, e, 0, 10));
    CHECK(first_id(out.ptr) == acked + 1);
    /* Person 2's deadline came back with the engine: it fires now. */
    CHECK_RC(CDP_OK, cdp_advance(&out, e, MAR1 + 3 * DAY));
    CHECK(contains(out.ptr, "\"lifecycle\":{\"fired\":1,\"transitions\":1,\"intents\":1,"));
    char *p2 = lifecycle_of(e, 2);
    char want[256];
    snprintf(want, sizeof want, "\"activity\":{\"state\":\"dormant\",\"since\":%" PRId64 ",", MAR1 + 2 * DAY + 12 * HOUR);
    CHECK(contains(p2, want));
    free(p2);
    CHECK_RC(CDP_OK, cdp_outbox_read(&out, e, 0, 10));
    CHECK(json_int(out.ptr, "\"pending\":") == 2);
    CHECK_RC(CDP_ECONFLICT, cdp_advance(NULL, e, MAR1)); /* the clock came back too */
    cdp_buf_free(&out);
    CHECK_RC(CDP_OK, cdp_engine_close(e));
  }
  free(before);
  remove_tree(base);
}

int main(void) {
  RUN(test_define_list_and_read_a_person);
  RUN(test_an_absorbed_oneid_answers_for_the_survivor);
  RUN(test_bad_definitions_name_their_path);
  RUN(test_set_state_and_its_refusals);
  RUN(test_advance_fires_timers_into_the_outbox);
  RUN(test_drop);
  RUN(test_null_and_closed_handles);
  RUN(test_persistent_engine_keeps_states_outbox_and_deadlines);
  return finish();
}
