/*
 * test_crash.c — acknowledged writes survive SIGKILL (issue 6).
 *
 * Each run forks a child that opens a persistent engine in a fresh directory and ingests
 * batches one after another, writing each batch's number to a pipe once
 * cdp_ingest_ndjson has returned CDP_OK: that is the acknowledgement. The parent reads a
 * seeded random number of acknowledgements, sometimes spins a seeded random while longer
 * (so the kill lands anywhere in the next batch: parsing, linking, writing the log,
 * fsync), and kills the child with SIGKILL. It then reopens the directory and checks that
 *   - every acknowledged batch is there (its marker identifier resolves), and the log
 *     holds the acknowledged batches plus at most the one in flight;
 *   - the persons equal, byte for byte (every page of cdp_persons_page and cdp_person_get
 *     of each person), those of an in-memory engine fed exactly the batches in the log.
 * Delays are counted in acknowledgements and loop iterations, never in wall-clock time,
 * so a slow machine changes only where the kill lands. Every third run uses
 * "durability":{"sync":"none"}: a process crash loses nothing there either, since the
 * written bytes are already in the OS. Runs also vary snapshots: none, cdp_snapshot after
 * every third batch, or automatic ones every ~1.5 batches of log (snapshot_log_bytes), so
 * kills land inside snapshot writes and reopening loads a snapshot and replays the rest.
 */
#include "persist.h"

#include <errno.h>
#include <signal.h>
#include <sys/types.h>
#include <sys/wait.h>

#include "capi_test.h"

enum { kRuns = 25, kRecords = 50, kMaxBatches = 5000, kMaxAcks = 30 };

/* Batch k: 50 records whose mobiles and emails recur across batches, so persons merge
 * (and some unions are refused and counted) from batch to batch; attributes and events
 * for the profiles; and a member_no B<k> that marks the batch. */
static size_t make_batch(char *buf, size_t cap, uint32_t k) {
  static const char *sources[] = {"crm", "pos", "app"};
  static const char *cities[] = {"上海", "北京", "杭州", "深圳", "成都"};
  size_t n = 0;
  for (uint32_t i = 0; i < kRecords; i++) {
    uint32_t r = k * kRecords + i;
    n += (size_t)snprintf(buf + n, cap - n,
                          "{\"source\":\"%s\",\"ts\":%lld,\"ids\":{\"mobile\":\"139%08u\",\"email\":\"u%u@x.com\"",
                          sources[r % 3], 1700000000000LL + (long long)r * 1000, (r * 7919u) % 400u,
                          (r * 31u + 7u) % 700u);
    if (i == 0) n += (size_t)snprintf(buf + n, cap - n, ",\"member_no\":\"B%u\"", k);
    n += (size_t)snprintf(buf + n, cap - n, "},\"attrs\":{\"city\":\"%s\",\"score\":%u}", cities[r % 5], r % 97);
    if (r % 3 == 0)
      n += (size_t)snprintf(buf + n, cap - n, ",\"event\":{\"type\":\"order\",\"amount\":%u.5}", r % 500);
    n += (size_t)snprintf(buf + n, cap - n, "}\n");
  }
  return n;
}

enum { kBatchCap = kRecords * 320 };

static const char *config_of(int run) {
  static char buf[128];
  snprintf(buf, sizeof buf, "{\"durability\":{\"sync\":\"%s\",\"snapshot_log_bytes\":%d}}",
           run % 3 == 2 ? "none" : "batch", run % 4 == 2 ? 20000 : 0);
  return buf;
}

/* Runs where the child calls cdp_snapshot itself. */
static bool explicit_snapshots(int run) { return run % 4 == 1; }

/* The child: ingest and acknowledge until killed. Exits without running atexit handlers
 * (nor sanitizer reports) if it is ever allowed to finish. */
static void child(const char *dir, const char *config, bool snapshots, int ack_fd) {
  cdp_engine *e = NULL;
  if (cdp_engine_open(&e, config, strlen(config), dir) != CDP_OK) {
    fprintf(stderr, "child: open: %s\n", cdp_error_last());
    _exit(3);
  }
  char *buf = malloc(kBatchCap);
  if (!buf) _exit(4);
  for (uint32_t k = 0; k < kMaxBatches; k++) {
    size_t n = make_batch(buf, kBatchCap, k);
    if (cdp_ingest_ndjson(NULL, e, buf, n, 0) != CDP_OK) {
      fprintf(stderr, "child: ingest %u: %s\n", k, cdp_error_last());
      _exit(5);
    }
    if (write(ack_fd, &k, sizeof k) != (ssize_t)sizeof k) _exit(6);
    if (snapshots && k % 3 == 2 && cdp_snapshot(NULL, e) != CDP_OK) {
      fprintf(stderr, "child: snapshot after %u: %s\n", k, cdp_error_last());
      _exit(7);
    }
  }
  _exit(0);
}

/* Reads one acknowledgement; false at end of file (the child is gone). */
static bool read_ack(int fd, uint32_t *k) {
  size_t got = 0;
  while (got < sizeof *k) {
    ssize_t r = read(fd, (char *)k + got, sizeof *k - got);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    got += (size_t)r;
  }
  return true;
}

static uint64_t rng;
static uint32_t next_random(void) { /* xorshift64* */
  rng ^= rng >> 12;
  rng ^= rng << 25;
  rng ^= rng >> 27;
  return (uint32_t)((rng * 0x2545F4914F6CDD1DULL) >> 32);
}

static int torn_runs, in_flight_runs, snapshot_runs;

static void one_run(const char *base, int run) {
  char dir[700];
  snprintf(dir, sizeof dir, "%s/run-%d", base, run);
  const char *config = config_of(run);
  rng = 0x9E3779B97F4A7C15ULL * (uint64_t)(run + 1);
  const uint32_t target = 1 + next_random() % kMaxAcks;
  const uint32_t spin = next_random() % 4 == 0 ? 0 : next_random() % 4000000;

  int fds[2];
  REQUIRE(pipe(fds) == 0);
  fflush(stdout);
  pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    close(fds[0]);
    child(dir, config, explicit_snapshots(run), fds[1]);
  }
  close(fds[1]);

  uint32_t acked = 0, k;
  while (acked < target && read_ack(fds[0], &k)) {
    CHECK(k == acked);
    acked++;
  }
  for (volatile uint32_t i = 0; i < spin; i++) {
  }
  kill(pid, SIGKILL);
  int status = 0;
  CHECK(waitpid(pid, &status, 0) == pid);
  CHECK((WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) || (WIFEXITED(status) && WEXITSTATUS(status) == 0));
  /* Acknowledgements written before the kill landed count as well. */
  while (read_ack(fds[0], &k)) {
    CHECK(k == acked);
    acked++;
  }
  close(fds[0]);
  REQUIRE(acked >= target);

  cdp_engine *e = NULL;
  REQUIRE_RC(CDP_OK, cdp_engine_open(&e, NULL, 0, dir));
  cdp_buf stats = CDP_BUF_INIT;
  CHECK_RC(CDP_OK, cdp_engine_stats(&stats, e));
  /* Every write is one batch, so the log's sequence number counts the batches logged. */
  const int64_t logged = json_int(stats.ptr, "\"seq\":");
  if (json_int(stats.ptr, "\"torn_bytes\":") > 0) torn_runs++;
  if (strstr(stats.ptr, "\"loaded\":\"snap-") != NULL) snapshot_runs++;
  cdp_buf_free(&stats);
  CHECK(logged == (int64_t)acked || logged == (int64_t)acked + 1);
  if (logged == (int64_t)acked + 1) in_flight_runs++;
  for (uint32_t b = 0; b < acked; b++) {
    char marker[32];
    snprintf(marker, sizeof marker, "B%u", b);
    if (!CHECK(oneid_of(e, "member_no", marker) != 0)) printf("    run %d: acknowledged batch %u is lost\n", run, b);
  }

  /* The same batches, in memory, without a crash. */
  cdp_engine *mem = NULL;
  REQUIRE_RC(CDP_OK, cdp_engine_open(&mem, config, strlen(config), NULL));
  char *buf = malloc(kBatchCap);
  REQUIRE(buf != NULL);
  for (uint32_t b = 0; b < (uint32_t)logged; b++) {
    size_t n = make_batch(buf, kBatchCap, b);
    CHECK_RC(CDP_OK, cdp_ingest_ndjson(NULL, mem, buf, n, 0));
  }
  free(buf);
  char *want = persons_text(mem), *got = persons_text(e);
  CHECK(want != NULL && got != NULL);
  if (!CHECK(want && got && strcmp(want, got) == 0))
    printf("    run %d: the reopened engine differs from the in-memory one (%u acknowledged)\n", run, acked);
  free(want);
  free(got);
  CHECK_RC(CDP_OK, cdp_engine_close(mem));
  CHECK_RC(CDP_OK, cdp_engine_close(e));
  printf("run %2d: sync %-5s snapshots %-8s killed after %2u acks (spin %7u): %2u acknowledged, %2lld in the log\n",
         run, run % 3 == 2 ? "none" : "batch", explicit_snapshots(run) ? "explicit" : run % 4 == 2 ? "auto" : "none",
         target, spin, acked, (long long)logged);
  remove_tree(dir);
}

int main(void) {
  char base[512];
  make_tmpdir(base, sizeof base);
  for (int run = 0; run < kRuns; run++) one_run(base, run);
  printf("torn tails cut: %d runs; batch in flight found in the log: %d runs; reopened from a snapshot: %d runs\n",
         torn_runs, in_flight_runs, snapshot_runs);
  CHECK(snapshot_runs > 0);
  remove_tree(base);
  return finish();
}
