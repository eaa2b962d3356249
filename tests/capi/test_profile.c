/*
 * test_profile.c — profiles and expressions through C: cdp_person_get (attributes with
 * lineage, event summary, masking), cdp_expr_compile from text and from the JSON AST,
 * cdp_expr_ast, cdp_expr_eval with valid_until, and the handles' error paths.
 */
#include "capi_test.h"

/* 2024-03-01T00:00:00+08:00 */
#define MAR1 INT64_C(1709222400000)
#define DAY INT64_C(86400000)

static cdp_engine *with_orders(void) {
  cdp_engine *e = open_default();
  if (!e) return NULL;
  INGEST_OK(e,
            "{'source':'tmall','ts':1708876800000,'ids':{'mobile':'13917205836'},"
            "'attrs':{'city':'杭州'},'event':{'type':'order','amount':'199.00','channel':'tmall'}}\n"
            "{'source':'pos','ts':1709136000000,'ids':{'mobile':'13917205836'},"
            "'attrs':{'city':'上海'},'event':{'type':'order','amount':0.29}}\n");
  return e;
}

static void test_person_get_has_attributes_lineage_and_events(void) {
  cdp_engine *e = with_orders();
  REQUIRE(e);
  uint64_t id = oneid_of(e, "mobile", "13917205836");
  cdp_buf out = CDP_BUF_INIT;
  REQUIRE_RC(CDP_OK, cdp_person_get(&out, e, id, CDP_MASK));
  CHECK(contains(out.ptr, "\"city\":{\"value\":\"上海\",\"source\":\"pos\",\"ts\":1709136000000"));
  CHECK(contains(out.ptr, "\"order\":{\"count\":2,\"amount\":199.29,"));
  CHECK(contains(out.ptr, "139****5836"));
  CHECK(!contains(out.ptr, "13917205836"));
  CHECK_RC(CDP_ENOTFOUND, cdp_person_get(&out, e, 12345, 0));
  CHECK_RC(CDP_EMISUSE, cdp_person_get(NULL, e, id, 0));
  cdp_buf_free(&out);
  cdp_engine_close(e);
}

static void test_expression_compiles_evaluates_and_round_trips(void) {
  cdp_engine *e = with_orders();
  REQUIRE(e);
  uint64_t id = oneid_of(e, "mobile", "13917205836");
  cdp_expr *x = NULL;
  REQUIRE_RC(CDP_OK, cdp_expr_compile(&x, e, SV("attrs.city == \"上海\" && count(order, 7d) >= 2"), 0));
  cdp_buf out = CDP_BUF_INIT;
  /* Both orders are within the last 7 local days of Mar 1, noon; valid until Mar 4, when
   * the Feb 26 order leaves the window. */
  REQUIRE_RC(CDP_OK, cdp_expr_eval(&out, x, id, MAR1 + DAY / 2));
  CHECK(contains(out.ptr, "\"value\":true,\"kind\":\"bool\""));
  CHECK(json_int(out.ptr, "\"valid_until\":") == MAR1 + 3 * DAY);
  /* Five days later the first order has left the window. */
  REQUIRE_RC(CDP_OK, cdp_expr_eval(&out, x, id, MAR1 + 5 * DAY));
  CHECK(contains(out.ptr, "\"value\":false"));
  /* The AST compiles back to the same AST. */
  cdp_buf ast = CDP_BUF_INIT, again = CDP_BUF_INIT;
  REQUIRE_RC(CDP_OK, cdp_expr_ast(&ast, x));
  cdp_expr *y = NULL;
  REQUIRE_RC(CDP_OK, cdp_expr_compile(&y, e, ast.ptr, ast.size, CDP_EXPR_AST));
  REQUIRE_RC(CDP_OK, cdp_expr_ast(&again, y));
  CHECK(ast.size == again.size && memcmp(ast.ptr, again.ptr, ast.size) == 0);
  CHECK_RC(CDP_ENOTFOUND, cdp_expr_eval(&out, y, 12345, MAR1));
  cdp_buf_free(&ast);
  cdp_buf_free(&again);
  cdp_buf_free(&out);
  CHECK_RC(CDP_OK, cdp_expr_free(x));
  CHECK_RC(CDP_OK, cdp_expr_free(y));
  cdp_engine_close(e);
}

static void test_expression_errors_and_handles(void) {
  cdp_engine *e = open_default();
  REQUIRE(e);
  cdp_expr *x = NULL;
  CHECK_RC(CDP_EINVALID, cdp_expr_compile(&x, e, SV("count(order, 30d"), 0));
  CHECK(contains(cdp_error_last(), "line 1, column"));
  CHECK(x == NULL);
  CHECK_RC(CDP_EINVALID, cdp_expr_compile(&x, e, SV("{\"op\":"), CDP_EXPR_AST));
  CHECK_RC(CDP_EINVALID, cdp_expr_compile(&x, e, SV("true"), 0x80));
  CHECK_RC(CDP_EMISUSE, cdp_expr_compile(NULL, e, SV("true"), 0));
  CHECK_RC(CDP_OK, cdp_expr_free(NULL));
  REQUIRE_RC(CDP_OK, cdp_expr_compile(&x, e, SV("true"), 0));
  /* Closing the engine leaves the expression unusable, but still to be freed. */
  cdp_engine_close(e);
  cdp_buf out = CDP_BUF_INIT;
  CHECK_RC(CDP_EMISUSE, cdp_expr_eval(&out, x, 1, 0));
  CHECK_RC(CDP_OK, cdp_expr_free(x));
  CHECK_RC(CDP_EMISUSE, cdp_expr_free(x));
  CHECK_RC(CDP_EMISUSE, cdp_expr_ast(&out, x));
  cdp_buf_free(&out);
}

int main(void) {
  RUN(test_person_get_has_attributes_lineage_and_events);
  RUN(test_expression_compiles_evaluates_and_round_trips);
  RUN(test_expression_errors_and_handles);
  return finish();
}
