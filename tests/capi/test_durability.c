/*
 * test_durability.c — persistent engines through the C API: cdp_engine_open with a
 * directory. A reopened engine answers exactly as before; one engine per directory; the
 * directory keeps its config; a torn log tail is cut and reported; a corrupt entry with
 * valid ones after it refuses to open.
 */
#include "persist.h"

#include <fcntl.h>
#include <sys/stat.h>

#include "capi_test.h"

static char base[512]; /* this run's temp directory */
static char dir[600];  /* the engine's directory inside it (created by cdp_engine_open) */
static char wal[700];  /* its first log segment */

static void fresh_dir(const char *name) {
  snprintf(dir, sizeof dir, "%s/%s", base, name);
  snprintf(wal, sizeof wal, "%s/wal-0000000000000000.log", dir);
}

static cdp_engine *open_dir(const char *config) {
  cdp_engine *e = NULL;
  char *d = config ? dq(config) : NULL;
  int32_t rc = cdp_engine_open(&e, d, d ? strlen(d) : 0, dir);
  free(d);
  return rc == CDP_OK ? e : NULL;
}

static long long file_size(const char *path) {
  struct stat sb;
  return stat(path, &sb) == 0 ? (long long)sb.st_size : -1;
}

/* The engine's stats; caller frees. */
static char *stats_of(cdp_engine *e) {
  cdp_buf out = CDP_BUF_INIT;
  if (cdp_engine_stats(&out, e) != CDP_OK) return NULL;
  char *s = strdup(out.ptr);
  cdp_buf_free(&out);
  return s;
}

static const char *kBatch[] = {
    "{'source':'crm','ts':1700000000000,'ids':{'mobile':'13917205836','member_no':'M1'},"
    "'attrs':{'city':'上海'}}\n"
    "{'source':'wechat','ts':1700000100000,'ids':{'unionid':'u1','mobile':'13917205836'},"
    "'event':{'type':'order','amount':99.5}}\n",
    "{'source':'pos','ts':1700000200000,'ids':{'mobile':'13800001111','device_id':'d1'}}\n"
    "not json\n",
    "{'source':'app','ts':1700000300000,'ids':{'device_id':'d1','member_no':'M2'},'attrs':{'tier':'gold'}}\n",
};

static void test_reopen_sees_everything(void) {
  fresh_dir("reopen");
  const char *config = "{'oneid_seed':42,'quarantine_after':5}";
  char *before = NULL;
  uint64_t rule = 0;
  {
    cdp_engine *e = open_dir(config);
    REQUIRE(e != NULL);
    for (int i = 0; i < 3; i++) CHECK_RC(CDP_OK, ingest(NULL, e, kBatch[i], 0));
    char *rec = dq("{'source':'crm','ts':1700000400000,'ids':{'member_no':'M2','email':'lily@x.com'}}");
    CHECK_RC(CDP_OK, cdp_ingest_record(NULL, e, rec, strlen(rec)));
    free(rec);
    CHECK_RC(CDP_OK, cdp_rule_add(&rule, e, SV("never_link"), SV("mobile"), SV("13917205836"), SV("email"),
                                  SV("x@y.com"), SV("")));
    CHECK_RC(CDP_OK, cdp_identifier_remove(NULL, e, SV("device_id"), SV("d1")));
    before = persons_text(e);
    char *s = stats_of(e);
    CHECK(contains(s, "\"durability\":{\"dir\":"));
    CHECK(contains(s, "\"sync\":\"batch\""));
    CHECK(json_int(s, "\"entries\":") == 6);
    CHECK(json_int(s, "\"replayed\":") == 0);
    CHECK(json_int(s, "\"log_bytes\":") == file_size(wal));
    free(s);
    CHECK_RC(CDP_OK, cdp_engine_close(e));
  }
  REQUIRE(before != NULL);
  cdp_engine *e = open_dir(NULL); /* NULL config: the stored one */
  REQUIRE(e != NULL);
  char *after = persons_text(e);
  CHECK(after && strcmp(before, after) == 0);
  CHECK(oneid_of(e, "email", "lily@x.com") == oneid_of(e, "member_no", "M2"));
  cdp_buf rules = CDP_BUF_INIT;
  CHECK_RC(CDP_OK, cdp_rules_list(&rules, e));
  CHECK(json_int(rules.ptr, "\"id\":") == (int64_t)rule);
  cdp_buf_free(&rules);
  char *s = stats_of(e);
  CHECK(json_int(s, "\"replayed\":") == 6);
  CHECK(json_int(s, "\"torn_bytes\":") == 0);
  free(s);
  /* The config passed at creation, byte for byte, is accepted too. */
  CHECK_RC(CDP_OK, cdp_engine_close(e));
  e = open_dir(config);
  CHECK(e != NULL);
  CHECK_RC(CDP_OK, cdp_engine_close(e));
  free(before);
  free(after);
}

static void test_second_open_of_a_directory_fails(void) {
  fresh_dir("locked");
  cdp_engine *a = open_dir(NULL);
  REQUIRE(a != NULL);
  int dummy;
  cdp_engine *b = (cdp_engine *)&dummy; /* set to NULL on failure */
  CHECK_RC(CDP_EIO, cdp_engine_open(&b, NULL, 0, dir));
  CHECK(b == NULL);
  CHECK(contains(cdp_error_last(), "in use"));
  CHECK_RC(CDP_OK, cdp_engine_close(a));
  CHECK_RC(CDP_OK, cdp_engine_open(&b, NULL, 0, dir));
  CHECK_RC(CDP_OK, cdp_engine_close(b));
}

static void test_another_config_is_refused(void) {
  fresh_dir("config");
  cdp_engine *e = open_dir("{'oneid_seed':1}");
  REQUIRE(e != NULL);
  CHECK_RC(CDP_OK, cdp_engine_close(e));
  char *other = dq("{'oneid_seed':2}");
  CHECK_RC(CDP_EINVALID, cdp_engine_open(&e, other, strlen(other), dir));
  free(other);
  CHECK(contains(cdp_error_last(), "created with another config"));
  CHECK(e == NULL);
}

static void test_missing_parent_is_an_io_error(void) {
  char path[700];
  snprintf(path, sizeof path, "%s/no/such/parent", base);
  cdp_engine *e = NULL;
  CHECK_RC(CDP_EIO, cdp_engine_open(&e, NULL, 0, path));
  CHECK(contains(cdp_error_last(), "no/such/parent"));
}

/* Three batches in a fresh directory; returns the log's size after each (sizes[0]: the
 * empty log). */
static void three_batches(long long sizes[4]) {
  cdp_engine *e = open_dir(NULL);
  if (!e) return;
  sizes[0] = file_size(wal);
  for (int i = 0; i < 3; i++) {
    CHECK_RC(CDP_OK, ingest(NULL, e, kBatch[i], 0));
    sizes[i + 1] = file_size(wal);
  }
  CHECK_RC(CDP_OK, cdp_engine_close(e));
}

static void test_torn_tail_is_truncated_and_reported(void) {
  fresh_dir("torn");
  long long sizes[4] = {0};
  three_batches(sizes);
  REQUIRE(sizes[3] > sizes[2]);

  /* Garbage after the last entry: cut, and all three batches are there. */
  FILE *f = fopen(wal, "ab");
  REQUIRE(f != NULL);
  fputs("{\"half a line", f);
  fclose(f);
  cdp_engine *e = open_dir(NULL);
  REQUIRE(e != NULL);
  char *s = stats_of(e);
  CHECK(json_int(s, "\"torn_bytes\":") == 13);
  CHECK(json_int(s, "\"offset\":") == sizes[3]);
  CHECK(contains(s, "\"reason\":\"entry header cut short (13 of 32 bytes)\""));
  CHECK(json_int(s, "\"replayed\":") == 3);
  free(s);
  CHECK(oneid_of(e, "member_no", "M2") != 0);
  CHECK(file_size(wal) == sizes[3]);
  CHECK_RC(CDP_OK, cdp_engine_close(e));

  /* The last entry cut short: it was never acknowledged, so it is dropped. */
  REQUIRE(truncate(wal, (off_t)(sizes[3] - 10)) == 0);
  e = open_dir(NULL);
  REQUIRE(e != NULL);
  s = stats_of(e);
  CHECK(json_int(s, "\"torn_bytes\":") == sizes[3] - 10 - sizes[2]);
  CHECK(json_int(s, "\"offset\":") == sizes[2]);
  CHECK(contains(s, "payload cut short"));
  CHECK(json_int(s, "\"replayed\":") == 2);
  free(s);
  CHECK(oneid_of(e, "member_no", "M2") == 0);
  CHECK(oneid_of(e, "mobile", "13800001111") != 0);
  /* Appending resumes where the valid entries end. */
  CHECK_RC(CDP_OK, ingest(NULL, e, kBatch[2], 0));
  CHECK(file_size(wal) == sizes[3]);
  CHECK_RC(CDP_OK, cdp_engine_close(e));
}

static void test_corrupt_middle_entry_refuses_to_open(void) {
  fresh_dir("corrupt");
  long long sizes[4] = {0};
  three_batches(sizes);
  /* A byte inside the first entry's payload: two valid entries follow it. */
  int fd = open(wal, O_RDWR);
  REQUIRE(fd >= 0);
  char c;
  off_t at = (off_t)sizes[0] + 50;
  CHECK(pread(fd, &c, 1, at) == 1);
  c ^= 0x20;
  CHECK(pwrite(fd, &c, 1, at) == 1);
  close(fd);
  cdp_engine *e = NULL;
  CHECK_RC(CDP_EIO, cdp_engine_open(&e, NULL, 0, dir));
  CHECK(e == NULL);
  char want[64];
  snprintf(want, sizeof want, "corrupt entry at offset %lld", sizes[0]);
  CHECK(contains(cdp_error_last(), want));
  CHECK(contains(cdp_error_last(), "followed by a valid entry"));
  CHECK(file_size(wal) == sizes[3]); /* nothing was cut */
}

int main(void) {
  make_tmpdir(base, sizeof base);
  RUN(test_reopen_sees_everything);
  RUN(test_second_open_of_a_directory_fails);
  RUN(test_another_config_is_refused);
  RUN(test_missing_parent_is_an_io_error);
  RUN(test_torn_tail_is_truncated_and_reported);
  RUN(test_corrupt_middle_entry_refuses_to_open);
  remove_tree(base);
  return finish();
}
