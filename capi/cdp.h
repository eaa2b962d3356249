/**
 * @file cdp.h
 * @brief The C API of cdpcore, the embeddable engine of a Customer Data Platform.
 *
 * This header is the only ABI-stable surface of the library. The rules:
 *
 *  1. Status. Every function that can fail returns an int32_t status: CDP_OK (0) on
 *     success, a negative CDP_E* code otherwise. Codes are pinned forever.
 *  2. Errors. After a failure, cdp_error_last() describes it in words (for a bad record
 *     or definition: the line, column or field). It is thread-local, never NULL, and
 *     valid until the next cdp_* call on the same thread. cdp_status_str() names a code.
 *  3. Buffers. Variable-size results are written into a cdp_buf the caller declares
 *     zero-initialised (CDP_BUF_INIT) and releases with cdp_buf_free(). A buffer passed
 *     in that already holds data is freed and refilled. Results are UTF-8 JSON unless a
 *     function says otherwise; ptr is NUL-terminated for convenience (not counted in size).
 *     Never call free() on library memory.
 *  4. Handles. Handles are opaque. cdp_engine_close() accepts NULL. A closed or foreign
 *     handle is detected on a best-effort basis and answered with CDP_EMISUSE instead of
 *     a crash; do not rely on it as a feature.
 *  5. Strings. Strings are passed as pointer + byte length and need not be
 *     NUL-terminated; they must be valid UTF-8. A NULL pointer with length 0 is the empty
 *     string.
 *  6. Threads. One engine may be shared by threads: the calls that only read
 *     (cdp_resolve, cdp_person_identifiers, cdp_person_get, cdp_persons_page,
 *     cdp_explain, cdp_rules_list, cdp_feed_read, cdp_engine_stats, cdp_expr_eval,
 *     cdp_expr_ast, cdp_tags_list, cdp_person_tags, cdp_audiences_list,
 *     cdp_lifecycle_list, cdp_person_lifecycle, cdp_outbox_read) run concurrently; the
 *     calls that change it (ingestion, cdp_records_resolve, unmerge, rules,
 *     cdp_feed_trim, tag definitions, cdp_advance, saved audiences, lifecycle
 *     definitions and operations, cdp_outbox_ack, and cdp_expr_compile, the
 *     cdp_audience_* queries and cdp_metrics, which register the names their
 *     expressions use) run one at a time and exclude readers, through a
 *     reader-writer lock per engine, so a read sees the state before or after a whole
 *     write. Do not close an engine while another thread uses it. Different engines are
 *     independent.
 *  7. Time. The engine never reads the clock: every time is an argument or a field of
 *     the input (epoch milliseconds, UTC).
 *  8. OneIDs. A person is named by a OneID, an unsigned 64-bit integer below 2^63 and
 *     never 0. A OneID absorbed by a merge redirects to the survivor forever: every
 *     function that takes a OneID accepts an absorbed one and answers for the survivor.
 *  9. Versions. Signatures never change; new behaviour comes as new functions (a _v2
 *     suffix when one replaces another). The shared library's SOVERSION is the major.
 *  10. Durability. An engine opened on a directory logs every write that changes it
 *      before the call returns CDP_OK; reopening the directory replays the log, so what
 *      was acknowledged survives a crash (with "durability":{"sync":"batch"}, the
 *      default, also a power loss). If the log cannot be written the call returns
 *      CDP_EIO, and so does every later write of that engine (reads go on): close it and
 *      reopen the directory. One open engine per directory (docs/guarantees.md).
 */
#ifndef CDP_H
#define CDP_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Marks the exported functions: default visibility (the library hides everything
 *  else), dllexport while building the library on Windows. Not part of any signature. */
#if defined(_WIN32)
#  if defined(CDP_BUILDING)
#    define CDP_API __declspec(dllexport)
#  else
#    define CDP_API
#  endif
#else
#  define CDP_API __attribute__((visibility("default")))
#endif

/** The header's major version: it changes only with an incompatible ABI, and is the
 *  shared library's SOVERSION. */
#define CDP_VERSION_MAJOR 0
/** The header's minor version: new functions, compatible. */
#define CDP_VERSION_MINOR 1
/** The header's patch version: fixes only. */
#define CDP_VERSION_PATCH 0
/** MAJOR * 10000 + MINOR * 100 + PATCH, comparable with cdp_version(). */
#define CDP_VERSION_NUMBER (CDP_VERSION_MAJOR * 10000 + CDP_VERSION_MINOR * 100 + CDP_VERSION_PATCH)

/* Status codes. Pinned: a value never changes meaning. */
#define CDP_OK           0   /**< success */
#define CDP_EINVALID    (-1) /**< bad argument, record, config or definition */
#define CDP_ENOTFOUND   (-2) /**< the identifier, person or rule does not exist */
#define CDP_ECONFLICT   (-3) /**< the request contradicts a rule (e.g. never_link) */
#define CDP_EBUFS       (-4) /**< a caller-supplied buffer is too small */
#define CDP_ENOMEM      (-5) /**< out of memory */
#define CDP_EIO         (-6) /**< an operating-system I/O error */
#define CDP_EMISUSE     (-7) /**< NULL, closed or foreign handle; call out of order */
#define CDP_EINTERNAL   (-8) /**< a bug in cdpcore: please report it */
#define CDP_ELIMIT      (-9) /**< a configured limit was exceeded */
#define CDP_EUNSUPPORTED (-10) /**< valid, but not supported by this build or mode */

/* Flags of cdp_ingest_ndjson(). */
#define CDP_INGEST_ASSIGN 0x1u /**< add "assign": the OneID of every input line (0: none) */

/* Flags of cdp_person_identifiers() and cdp_persons_page(). */
#define CDP_MASK 0x1u /**< mask identifier values by type: 138****8000, a***\@x.com */

/** A library-owned byte buffer. Declare with CDP_BUF_INIT, release with cdp_buf_free(). */
typedef struct cdp_buf {
  char *ptr;          /**< the bytes, NUL-terminated; NULL when empty */
  uint64_t size;      /**< number of bytes, not counting the NUL */
  uint64_t reserved;  /**< library use; leave as initialised */
} cdp_buf;

/** The initialiser of an empty cdp_buf: `cdp_buf out = CDP_BUF_INIT;` */
#define CDP_BUF_INIT {NULL, 0, 0}

/** An engine: the identity graph and everything derived from it. Opaque. */
typedef struct cdp_engine cdp_engine;

/** A compiled expression of one engine (cdp_expr_compile). Opaque. */
typedef struct cdp_expr cdp_expr;

/* Flags of cdp_expr_compile(). */
#define CDP_EXPR_AST 0x1u /**< the input is the JSON AST, not the text syntax */

/* ---------------------------------------------------------------------------------- */
/* Library                                                                              */

/** The runtime version as CDP_VERSION_NUMBER. Never fails. Thread-safe. */
CDP_API int32_t cdp_version(void);

/** The runtime version as "MAJOR.MINOR.PATCH"; a static string. Thread-safe. */
CDP_API const char *cdp_version_string(void);

/** A static English name for a status code ("CDP_EINVALID: invalid argument"); an
 *  unknown code gives "unknown status". Never NULL. Thread-safe. */
CDP_API const char *cdp_status_str(int32_t status);

/** The description of the last failure on this thread, or "" if the last call
 *  succeeded. Never NULL. Valid until the next cdp_* call on this thread. */
CDP_API const char *cdp_error_last(void);

/** Releases a buffer's memory and resets it to empty. Accepts NULL and empty buffers. */
CDP_API void cdp_buf_free(cdp_buf *buf);

/** Writes the built-in default engine config (JSON) into out. It lists every identifier
 *  policy option with the shipped values for Chinese channel ids and the blocklist pack.
 *  Returns CDP_OK, CDP_EMISUSE (out is NULL) or CDP_ENOMEM. Thread-safe. */
CDP_API int32_t cdp_config_default(cdp_buf *out);

/* ---------------------------------------------------------------------------------- */
/* Engine                                                                               */

/** Opens an engine.
 *  config/config_len: a JSON engine config (see docs/config.md); NULL or length 0 means
 *  the default config. dir: NULL (or "") for an in-memory engine; a directory path (a
 *  NUL-terminated string) opens a persistent engine there (rule 10). The directory is
 *  created if missing (its parent must exist). A new directory stores config as given; an
 *  existing one is reopened with its stored config, replaying its write-ahead log, and
 *  config must then be empty or byte-identical to the stored one. A torn log tail (the
 *  last write cut short by a crash, never acknowledged) is truncated and reported in
 *  cdp_engine_stats ("durability"); a corrupt entry followed by valid ones is refused.
 *  On success *out owns a new handle, to be released with cdp_engine_close(), which also
 *  releases the directory.
 *  Returns CDP_OK, CDP_EMISUSE (out is NULL), CDP_EINVALID (bad config: cdp_error_last()
 *  names the line, column or JSON path; or a config other than the directory's),
 *  CDP_EIO (the directory cannot be created or read, another open engine holds it, or
 *  its log is corrupt: cdp_error_last() names the file and byte offset),
 *  CDP_EUNSUPPORTED (a log format this version does not read), CDP_EINTERNAL (the log
 *  did not replay: a bug) or CDP_ENOMEM. On failure *out is set to NULL. */
CDP_API int32_t cdp_engine_open(cdp_engine **out, const char *config, uint64_t config_len,
                                const char *dir);

/** Opens an engine with the host's key for identifier types stored hashed ("hashed":
 *  true in a type's policy, docs/config.md). Such a type's values are kept as an
 *  HMAC-SHA-256 under the key plus a mask (138****8000), never raw: not in memory, the
 *  log or snapshots. Records and calls naming them match as before; masked outputs show
 *  the mask, unmasked ones the stored form "#<hash>|<mask>", which calls accept back.
 *  key/key_len: at least 16 bytes, kept in memory only and wiped at close. A key is
 *  needed exactly when the config hashes a type (cdp_engine_open refuses such a config).
 *  A directory keeps a check value of its key (file key_check) and refuses any other key,
 *  or none: values hashed under two keys never match. Otherwise as cdp_engine_open.
 *  Returns as cdp_engine_open, with CDP_EINVALID also for a missing, unneeded, short or
 *  wrong key, and CDP_EMISUSE for a NULL key with key_len > 0. */
CDP_API int32_t cdp_engine_open_keyed(cdp_engine **out, const char *config, uint64_t config_len,
                                      const char *dir, const void *key, uint64_t key_len);

/** Closes an engine and frees everything it holds; a persistent engine's directory may
 *  then be opened again. Accepts NULL (CDP_OK). Returns CDP_EMISUSE for a handle that is
 *  not an open engine. The handle is invalid after. */
CDP_API int32_t cdp_engine_close(cdp_engine *engine);

/** Writes engine statistics into out: counts of persons, identifiers, evidence links,
 *  conflicts (refused evidence that still stands: a rebuild may later accept some that
 *  the ingest reports counted), quarantined identifiers, redirects, records accepted and
 *  rejected, sources, identifier types, rules, the feed's cursor range, and memory in
 *  bytes by structure ("memory":{"total":N,...}), and "durability": null for an
 *  in-memory engine, else
 *  @code
 *  {"dir":"/var/lib/cdp","sync":"batch","log_bytes":N,"seq":N,"entries":N,"replayed":N,
 *   "torn_bytes":N,"torn":{"file":"wal-...","offset":N,"reason":"..."},
 *   "snapshots":{"loaded":"snap-...cdp","skipped":[{"file","reason"}],"taken":N,
 *                "log_since":N,"last_error":null},"failed":null}
 *  @endcode
 *  seq: writes ever logged (the next entry's sequence number); entries: writes in the
 *  log files still on disk; replayed: entries replayed when the engine was opened
 *  (those after the snapshot it loaded); torn_bytes: bytes of a torn tail cut at open
 *  ("torn" says where and why, only then); snapshots: the snapshot loaded at open (null:
 *  none, the whole log was replayed), those skipped as unreadable, snapshots taken since
 *  open, log bytes written since the last one, and why the last automatic one failed;
 *  failed: null, or why writes are refused (rule 10). Returns CDP_OK, CDP_EMISUSE or
 *  CDP_ENOMEM. */
CDP_API int32_t cdp_engine_stats(cdp_buf *out, cdp_engine *engine);

/** Writes a snapshot of a persistent engine's whole state into its directory, so that
 *  opening it again loads the snapshot and replays only the log written after it (the
 *  engine also does this by itself every durability.snapshot_log_bytes of log). The file
 *  appears atomically; then snapshots but the newest two are removed, and log segments
 *  older than the older of the two (an unreadable newest snapshot falls back to the one
 *  before it). out (may be NULL) receives
 *  @code
 *  {"seq":N,"file":"snap-00000000000004d2.cdp","bytes":N,"removed":["wal-...log"]}
 *  @endcode
 *  seq: the snapshot holds the state after log entries [0, seq). A writer (rule 6).
 *  Returns CDP_OK, CDP_EUNSUPPORTED for an in-memory engine, CDP_EIO for OS errors (the state
 *  and the log are unaffected: nothing is lost), CDP_EMISUSE or CDP_ENOMEM. */
CDP_API int32_t cdp_snapshot(cdp_buf *out, cdp_engine *engine);

/* ---------------------------------------------------------------------------------- */
/* Ingestion                                                                            */

/** Ingests a batch of NDJSON records (one JSON object per line; docs/records.md).
 *  The batch is linked in an order that does not depend on the order of its lines (by
 *  time, then a stable content key), so any permutation yields the same persons.
 *  A malformed line is rejected with its line number (1-based within data) and field;
 *  the other lines still land. Blank lines are skipped.
 *  out (may be NULL) receives the report:
 *  @code
 *  {"lines":N,"accepted":N,"rejected":N,"record_base":B,
 *   "errors":[{"line":3,"column":17,"field":"ts","message":"..."}],
 *   "errors_truncated":false,
 *   "ids":{"accepted":N,"rejected":N,"by_reason":{"invalid":N,"blocked":N,...}},
 *   "unknown_types":{"type":N}, "persons_created":N, "merges":N, "conflicts":N,
 *   "quarantined":N, "feed":{"from":C,"to":C}}
 *  @endcode
 *  "lines" counts non-blank lines; line numbers count every physical line (1-based), so
 *  they match the host's file. Only the first limits.max_errors_listed errors are listed
 *  ("errors_truncated" says when more were rejected). The record id of line L, as the
 *  feed and explanations name it, is record_base + L.
 *  With CDP_INGEST_ASSIGN it also has "assign": one OneID per physical line, 0 for a
 *  blank or rejected line or one that linked no identifier; each is the OneID at the end
 *  of the batch.
 *  Returns CDP_OK even when lines were rejected (the report says which);
 *  CDP_EMISUSE, CDP_ELIMIT (data over the batch limit), CDP_EIO (persistent engine: the
 *  log could not be written, rule 10), CDP_ENOMEM. */
CDP_API int32_t cdp_ingest_ndjson(cdp_buf *out, cdp_engine *engine, const char *data,
                                  uint64_t len, uint32_t flags);

/** Ingests one record (one JSON object; line breaks between its tokens are allowed).
 *  out (may be NULL) receives
 *  {"oneid":N,"record":R,"ids":{"accepted":N,"rejected":N,"by_reason":{...}},
 *   "persons_created":N,"merges":N,"conflicts":N,"quarantined":N,"feed":{"from":C,"to":C}}
 *  where oneid is the record's person (0 if it linked no identifier) and record its id.
 *  Returns CDP_OK, CDP_EINVALID (malformed: cdp_error_last() names the column and field;
 *  nothing was ingested, though the record took a record id and counts as rejected),
 *  CDP_EMISUSE, CDP_ELIMIT, CDP_EIO (rule 10), CDP_ENOMEM. */
CDP_API int32_t cdp_ingest_record(cdp_buf *out, cdp_engine *engine, const char *json,
                                  uint64_t len);

/** Resolves NDJSON records without ingesting them: for each physical line, the OneID its
 *  identifiers belong to now (its best live identifier's person), 0 for a blank or
 *  malformed line or one with no known identifier. A CRM that stored CDP_INGEST_ASSIGN
 *  results refreshes them with this after merges, splits and quarantines:
 *    {"lines":N,"rejected":N,"oneids":[...]}
 *  Returns CDP_OK, CDP_EMISUSE, CDP_ELIMIT, CDP_ENOMEM. */
CDP_API int32_t cdp_records_resolve(cdp_buf *out, cdp_engine *engine, const char *data,
                                    uint64_t len);

/* ---------------------------------------------------------------------------------- */
/* Persons                                                                              */

/** Resolves an identifier to its person. The value is normalised with the type's policy
 *  first, so "+86 139-1720-5836" finds "13917205836". Scoped types (openid) take
 *  "SCOPE/VALUE", e.g. "wx_app1/oAbC".
 *  Returns CDP_OK with *out set, CDP_ENOTFOUND (unknown identifier, or the value does not
 *  normalise), CDP_EMISUSE. */
CDP_API int32_t cdp_resolve(uint64_t *out, cdp_engine *engine, const char *type,
                            uint64_t type_len, const char *value, uint64_t value_len);

/** Writes a person's identifiers into out:
 *  @code
 *  {"requested":N,"oneid":N,"size":N,"first_seen":ms,"anchor":"mobile:...",
 *   "identifiers":[{"type":"mobile","value":"...","trust":"strong","first_seen":ms}]}
 *  @endcode
 *  first_seen is null for identifiers no record has carried yet (created by a rule).
 *  "requested" differs from "oneid" when the requested OneID was absorbed. "anchor" is the
 *  identifier the OneID is held by (it keeps the OneID through splits). Quarantined and
 *  removed identifiers belong to no person.
 *  flags: CDP_MASK masks values. Returns CDP_OK, CDP_ENOTFOUND, CDP_EMISUSE, CDP_ENOMEM. */
CDP_API int32_t cdp_person_identifiers(cdp_buf *out, cdp_engine *engine, uint64_t oneid,
                                       uint32_t flags);

/** Writes the whole person into out: identifiers (as cdp_person_identifiers), then the
 *  profile:
 *  @code
 *  {"requested":N,"oneid":N,"size":N,"first_seen":ms,"anchor":"mobile:...",
 *   "identifiers":[...],"last_seen":ms,
 *   "attributes":{"city":{"value":"上海","source":"pos","ts":ms,"rule":"latest"}},
 *   "consent":{"sms":{"granted":false,"source":"crm","ts":ms}},
 *   "events":{"order":{"count":3,"amount":597.00,"first":ms,"last":ms}},
 *   "tags":{"value_tier":{"value":"high","version":2}},"states":{}}
 *  @endcode
 *  Each attribute carries its lineage: the source and time of the value that won under
 *  its survivorship rule; "consent" holds the person's latest consent statement per
 *  channel (docs/records.md). "tags" is what cdp_person_tags gives. Money is a JSON number
 *  with exactly two decimals (yuan).
 *  last_seen is null for a person no record has reached (created by a rule).
 *  flags: CDP_MASK masks identifier values. Returns CDP_OK, CDP_ENOTFOUND, CDP_EMISUSE,
 *  CDP_ENOMEM. */
CDP_API int32_t cdp_person_get(cdp_buf *out, cdp_engine *engine, uint64_t oneid,
                               uint32_t flags);

/** Lists persons in a stable internal order, a page at a time:
 *    {"persons":[{"oneid":N,"size":N,"first_seen":ms,"identifiers":[...]}],"next":C}
 *  Start with cursor 0; pass "next" back; "next" is 0 after the last page. limit is
 *  clamped to 1..10000. flags: CDP_MASK. Returns CDP_OK, CDP_EMISUSE, CDP_ENOMEM. */
CDP_API int32_t cdp_persons_page(cdp_buf *out, cdp_engine *engine, uint64_t cursor,
                                 uint32_t limit, uint32_t flags);

/** Explains two identifiers.
 *  If they belong to one person, out receives the evidence path that joins them:
 *  @code
 *  {"linked":true,"oneid":N,"path":[{"from":"mobile:...","to":"unionid:...",
 *    "rule":"record","source":"wecom","record":R,"ts":ms,"count":N}]}
 *  @endcode
 *  If not, the rule that kept them apart, when one did (null when no evidence ever
 *  connected them):
 *  @code
 *  {"linked":false,"oneids":[A,B],
 *   "kept_apart_by":{"reason":"unique_type","type":"unionid","max_per_person":1,"evidence":{...}}}
 *  @endcode
 *  Reasons: unique_type, type_limit, weak_bridge, never_link, person_limit, quarantined.
 *  Values are normalised first. Returns CDP_OK, CDP_ENOTFOUND (either identifier unknown),
 *  CDP_EMISUSE, CDP_ENOMEM. */
CDP_API int32_t cdp_explain(cdp_buf *out, cdp_engine *engine,
                            const char *type_a, uint64_t type_a_len,
                            const char *value_a, uint64_t value_a_len,
                            const char *type_b, uint64_t type_b_len,
                            const char *value_b, uint64_t value_b_len);

/* ---------------------------------------------------------------------------------- */
/** @name Unmerge and manual rules
 *  Each of these rebuilds only the affected person from its remaining evidence. The side
 *  holding the person's anchor identifier keeps the OneID; other sides get new OneIDs (or
 *  regain the OneID they had before they were absorbed). out (may be NULL) receives
 *  {"oneids":[...the persons that result...],"feed":{"from":C,"to":C}}.
 *  Each of these (not cdp_rules_list) may also return CDP_EIO on a persistent engine
 *  whose log cannot be written (rule 10).
 *  @{ */

/** Removes an identifier and all evidence that touches it. Returns CDP_OK, CDP_ENOTFOUND,
 *  CDP_EMISUSE, CDP_ENOMEM. A later record carrying the identifier creates it anew. */
CDP_API int32_t cdp_identifier_remove(cdp_buf *out, cdp_engine *engine, const char *type,
                                      uint64_t type_len, const char *value,
                                      uint64_t value_len);

/** Removes all evidence that came from a source (e.g. a system found to be wrong).
 *  Identifiers left with no evidence and no other source are removed too.
 *  Returns CDP_OK, CDP_ENOTFOUND (no such source), CDP_EMISUSE, CDP_ENOMEM. */
CDP_API int32_t cdp_source_remove(cdp_buf *out, cdp_engine *engine, const char *source,
                                  uint64_t source_len);

/** Splits a person: the identifiers listed in idents_json (a JSON array of
 *  "type:value" strings, all of the person) become one side, the rest the other. The
 *  evidence between the sides is cut and a never_link rule between their anchors is added
 *  (listed by cdp_rules_list, removable) so later records do not merge them again.
 *  Returns CDP_OK, CDP_EINVALID (bad JSON, an identifier of another person, or all or none
 *  of them), CDP_ENOTFOUND, CDP_EMISUSE, CDP_ENOMEM. */
CDP_API int32_t cdp_person_split(cdp_buf *out, cdp_engine *engine, uint64_t oneid,
                                 const char *idents_json, uint64_t idents_len);

/** Adds a manual rule between two identifiers (created if unknown). kind is "force_link"
 *  (join their persons despite the identifier policies) or "never_link" (they must never
 *  share a person: a person holding both is split). note is free text kept with the rule.
 *  *out_rule receives the rule's id. Both kinds are logged in the change feed and
 *  reversible with cdp_rule_remove(). Returns CDP_OK, CDP_EINVALID (unknown kind, values
 *  that do not normalise), CDP_ECONFLICT (force_link across a never_link rule, or the
 *  reverse; an identifier of a person forgotten by cdp_person_forget), CDP_EMISUSE (out_rule or engine NULL), CDP_ENOMEM. */
CDP_API int32_t cdp_rule_add(uint64_t *out_rule, cdp_engine *engine, const char *kind,
                             uint64_t kind_len, const char *type_a, uint64_t type_a_len,
                             const char *value_a, uint64_t value_a_len,
                             const char *type_b, uint64_t type_b_len,
                             const char *value_b, uint64_t value_b_len,
                             const char *note, uint64_t note_len);

/** Removes a manual rule and rebuilds the persons it touched. out as above.
 *  Returns CDP_OK, CDP_ENOTFOUND, CDP_EMISUSE, CDP_ENOMEM. */
CDP_API int32_t cdp_rule_remove(cdp_buf *out, cdp_engine *engine, uint64_t rule);

/** Lists manual rules: {"rules":[{"id":N,"kind":"never_link","a":"type:value",
 *  "b":"type:value","note":"..."}]}. Returns CDP_OK, CDP_EMISUSE, CDP_ENOMEM. */
CDP_API int32_t cdp_rules_list(cdp_buf *out, cdp_engine *engine);
/** @} */

/* ---------------------------------------------------------------------------------- */
/** @name Erasure and access requests (PIPL)
 *  See docs/guarantees.md, "Erasure".
 *  @{ */

/** Forgets persons completely: their identifiers, evidence, rules, profile, tags, saved
 *  audience memberships, lifecycle states and history, points, journeys and outbox
 *  intents, and every earlier change-feed event about them (erased in place: the
 *  sequence numbers stay). Each identifier leaves only a keyed hash (a tombstone): a
 *  later record carrying one is refused whole (line error, field "ids"; identifiers
 *  counted under "forgotten"), as is a manual rule naming one; under config
 *  privacy.tombstones "consent", a record with the privacy.consent_event event lifts the
 *  tombstones of the identifiers it carries. A change-feed event "person_forgotten"
 *  tells mirrors to delete the person. The request is a JSON object:
 *  @code
 *  {"oneids":[N,...], "identifiers":[{"type":"mobile","value":"13800138000"}], "compact":true}
 *  @endcode
 *  naming the persons by OneID (absorbed OneIDs are followed) or by any identifier.
 *  On a persistent engine the forget is logged by OneID only, and then, with "compact"
 *  (the default), a snapshot is written without the persons and every older snapshot and
 *  log segment is removed, so the directory holds none of their values; with "compact":
 *  false that happens at the next snapshot (cdp_snapshot or automatic), which batches many
 *  forgets into one rewrite. An erasure a crash interrupts is finished when the directory
 *  is next opened. out (may be NULL) receives
 *  @code
 *  {"forgotten":[{"oneid":N,"identifiers":3,"absorbed":[N]}],"not_found":[N,"mobile:138****0000"],
 *   "feed":{"from":C,"to":C},"snapshot":{...cdp_snapshot's report...}|{"error":"..."}|null,
 *   "erasure_pending":false}
 *  @endcode
 *  erasure_pending: files written before the forget still exist (the compaction failed or
 *  was deferred); a later snapshot removes them. Returns CDP_OK, CDP_ENOTFOUND (the request
 *  names no live person), CDP_EINVALID (bad request), CDP_EIO, CDP_EMISUSE, CDP_ENOMEM. */
CDP_API int32_t cdp_person_forget(cdp_buf *out, cdp_engine *engine, const char *request,
                                  uint64_t request_len);

/** Exports everything held about a person (an access request), unmasked, as one JSON
 *  document:
 *  @code
 *  {"format":"cdpcore.person_export","version":1,"oneid":N,"now":ms|null,
 *   "person":{...cdp_person_get's document...},
 *   "evidence":[{"link":{"from","to","rule","source","record","ts","count"},"state":"active"}],
 *   "rules":[{"id","kind","a","b","note"}],
 *   "observations":[{"attribute","value","source","ts"}],
 *   "events":[{"type","ts","amount","source","properties":{...}}]}
 *  @endcode
 *  A reader (rule 6). Returns CDP_OK, CDP_ENOTFOUND, CDP_EMISUSE, CDP_ENOMEM. */
CDP_API int32_t cdp_person_export(cdp_buf *out, cdp_engine *engine, uint64_t oneid);
/** @} */

/* ---------------------------------------------------------------------------------- */
/* Change feed                                                                          */

/** Reads change-feed events with sequence number >= cursor, at most limit (clamped to
 *  1..100000): {"events":[{"seq":N,"kind":"merged",...}],"next":C}. Pass "next" back to
 *  continue; an empty list means caught up. Kinds: person_created, merged, split,
 *  conflict, identifier_rejected, identifier_quarantined, identifier_removed,
 *  rule_added, rule_removed, tag_defined, tag_changed, tag_dropped, audience_counted,
 *  and the lifecycle's state_changed, points, tier_changed, journey and intent
 *  (docs/feed.md, lifecycle.md, loyalty.md and journeys.md list each kind's fields).
 *  Returns CDP_OK, CDP_EMISUSE, CDP_ENOMEM. */
CDP_API int32_t cdp_feed_read(cdp_buf *out, cdp_engine *engine, uint64_t cursor,
                              uint32_t limit);

/** Drops feed events with sequence number < cursor, which the host has consumed, to free
 *  memory. Later reads below it return from the first retained event. A persistent
 *  engine logs a trim that drops something (the trim survives a reopen).
 *  Returns CDP_OK, CDP_EMISUSE, CDP_EIO (rule 10). */
CDP_API int32_t cdp_feed_trim(cdp_engine *engine, uint64_t cursor);

/* ---------------------------------------------------------------------------------- */
/** @name Expressions
 *  One language for conditions over a person: attributes, identifiers, event windows in
 *  local days (docs/expressions.md). Compile once, evaluate for many persons.
 *  @{ */

/** Compiles an expression for engine. text is the text syntax, e.g.
 *  `attrs.city == "上海" && count(order, 30d) >= 2`, or with flags CDP_EXPR_AST the JSON
 *  AST (what cdp_expr_ast returns, and what a UI can build). Names of attributes, event
 *  types and properties need not have been seen yet; identifier types must be configured.
 *  *out is released with cdp_expr_free(), also after its engine is closed (it is then
 *  unusable). Returns CDP_OK, CDP_EINVALID (cdp_error_last(): "line L, column C: ..." or
 *  the JSON path of the AST), CDP_ELIMIT (over limits.max_expr_*), CDP_EMISUSE,
 *  CDP_ENOMEM. */
CDP_API int32_t cdp_expr_compile(cdp_expr **out, cdp_engine *engine, const char *text,
                                 uint64_t len, uint32_t flags);

/** Writes the canonical JSON AST of expr into out (compiling it gives the same AST).
 *  Returns CDP_OK, CDP_EMISUSE, CDP_ENOMEM. */
CDP_API int32_t cdp_expr_ast(cdp_buf *out, const cdp_expr *expr);

/** Evaluates expr for the person oneid at now_ms (epoch ms; the engine never reads the
 *  clock: today(), now() and windows are relative to it):
 *  @code
 *  {"value":true,"kind":"bool","valid_until":ms}
 *  @endcode
 *  valid_until is the first instant at which the value may change without new input (the
 *  midnight of the day the oldest event leaves a 30-day window), or null when only new input can change it.
 *  Returns CDP_OK, CDP_EINVALID (now_ms before 1970 or after 9999), CDP_ENOTFOUND (no
 *  such person), CDP_ELIMIT (over limits.max_expr_steps), CDP_EMISUSE (expr or its
 *  engine closed), CDP_ENOMEM. */
CDP_API int32_t cdp_expr_eval(cdp_buf *out, cdp_expr *expr, uint64_t oneid, int64_t now_ms);

/** Releases a compiled expression. Accepts NULL. Returns CDP_OK, or CDP_EMISUSE for a
 *  handle that is not a live expression. */
CDP_API int32_t cdp_expr_free(cdp_expr *expr);
/** @} */

/* ---------------------------------------------------------------------------------- */
/** @name Tags and audiences
 *  A tag is a named value derived from each person and kept current: a rule, a
 *  statistic, a bucket, RFM, a preference, a score or an imported value, defined as JSON
 *  (docs/tags.md). After every write only the persons it changed are re-evaluated, and of
 *  their tags only those that read what changed; time-dependent values ("ordered in the
 *  last 30 days") move when the engine's clock passes their valid_until (cdp_advance).
 *  An audience is an expression over tags, attributes and events (docs/audiences.md),
 *  answered from per-tag bitmaps where it can be and per person where it cannot.
 *  The engine's clock is the time of the last cdp_advance, or before the first one the
 *  newest record time ingested (0 for an empty engine); tags are evaluated at it.
 *  Every call here that changes the engine (definitions, cdp_advance, saved audiences
 *  and their counts) is logged on a persistent engine and may also return CDP_EIO
 *  (rule 10); the audience queries and cdp_metrics change nothing that is logged.
 *  Only persons that a record has reached are tagged and counted (a person made only by
 *  a manual rule has no profile).
 *  @{ */

/** Defines or redefines tags. json is one definition object or an array of them:
 *  @code
 *  [{"name":"spend","kind":"statistic","fn":"sum","event":"order","prop":"amount"},
 *   {"name":"value_tier","kind":"rule","version":2,"description":"...","rules":[
 *     {"when":"tags.spend >= yuan(500)","value":"high"},
 *     {"when":"tags.spend > 0","value":"low"}],"default":"none"}]
 *  @endcode
 *  All of them are checked (syntax, expressions, references to other tags, cycles)
 *  before any is installed; then each is evaluated for every person at the engine's
 *  clock, with the tags that read it. out (may be NULL) receives
 *  {"defined":[{"name":"spend","version":1,"persons":N,"changed":N}]} (persons: how many
 *  have a value; changed: how many values this call changed), and the feed one
 *  tag_defined event per tag.
 *  Returns CDP_OK, CDP_EINVALID (nothing installed; cdp_error_last() names the
 *  definition and field, "tags[1] (value_tier).rules[0].when: line 1, column 9: ...", the
 *  JSON's line and column, or the cycle "tag cycle: a -> b -> a"), CDP_ELIMIT (over
 *  limits.max_tags, or json over 16 x limits.max_record_bytes), CDP_EMISUSE (engine
 *  NULL, or json NULL with len > 0), CDP_EIO, CDP_ENOMEM. */
CDP_API int32_t cdp_tags_define(cdp_buf *out, cdp_engine *engine, const char *json,
                                uint64_t len);

/** Drops a tag: its values go, and the feed gets a tag_dropped event.
 *  Returns CDP_OK, CDP_ENOTFOUND (no such tag), CDP_ECONFLICT (another tag reads it:
 *  drop or redefine that one first; cdp_error_last() names it), CDP_EMISUSE, CDP_EIO,
 *  CDP_ENOMEM. */
CDP_API int32_t cdp_tag_drop(cdp_engine *engine, const char *name, uint64_t len);

/** Writes the tag catalogue into out, in dependency order:
 *  @code
 *  {"tags":[{"name":"value_tier","kind":"rule","version":2,"description":"...",
 *    "type":"string","index":"category","time_dependent":false,"reads":["spend"],
 *    "persons":N,"values":N,"definition":{...as defined...}}]}
 *  @endcode
 *  type is the value kind (bool, int, double, money, string, timestamp, date, duration
 *  or list); index is how audiences read it (category, number or list); persons: how
 *  many have a value; values: distinct values (not for numbers); an rfm tag also has
 *  "cuts" ({"r":[...],"f":[...],"m":[...]}, the score boundaries in use).
 *  Returns CDP_OK, CDP_EMISUSE, CDP_ENOMEM. */
CDP_API int32_t cdp_tags_list(cdp_buf *out, cdp_engine *engine);

/** Writes a person's tags into out: {"oneid":N,"tags":{"spend":{"value":800.00,
 *  "version":1}}} (tags without a value for this person are left out; oneid is the
 *  survivor's when an absorbed OneID is given).
 *  Returns CDP_OK, CDP_ENOTFOUND (no such person), CDP_EMISUSE, CDP_ENOMEM. */
CDP_API int32_t cdp_person_tags(cdp_buf *out, cdp_engine *engine, uint64_t oneid);

/** Moves the engine's clock to now_ms (epoch ms) and re-evaluates the tags of the
 *  persons whose values may have changed with time by then (their valid_until passed).
 *  It also fires every lifecycle deadline due by now_ms, in time order (the Lifecycle
 *  section below). out (may be NULL) receives
 *  @code
 *  {"now":ms,"persons":N,"changed":N,"next":ms|null,
 *   "lifecycle":{"fired":N,"transitions":N,"intents":N,"capped":N,"next":ms|null}}
 *  @endcode
 *  persons: re-evaluated, changed: tag values changed (each also a tag_changed event),
 *  next: the next instant at which a tag value may change or a lifecycle deadline is
 *  due (null: none without new input); lifecycle: the timers that came due (a deadline
 *  made moot by a later event counts too, and changes nothing), the state and tier
 *  changes they made, the intents they put in the outbox, and the next lifecycle
 *  deadline. One call fires at most 1000 timers of one person: "capped" (present only
 *  when not 0) counts the persons who reached that, whose other due deadlines wait for
 *  the next call, and "next" is then at or before now_ms. A host calls it on a timer
 *  (at "next" at the latest), or before reading tags at a given time.
 *  Returns CDP_OK, CDP_ECONFLICT (now_ms is before the clock set by an earlier
 *  cdp_advance: the clock never goes back), CDP_EINVALID (now_ms before 1970 or after
 *  9999: 0 to 253402300799999), CDP_EMISUSE, CDP_EIO, CDP_ENOMEM. */
CDP_API int32_t cdp_advance(cdp_buf *out, cdp_engine *engine, int64_t now_ms);

/** Counts an audience. request is a JSON object naming the expression and options:
 *  @code
 *  {"expr":"tags.value_tier == \"high\" && count(order, 30d) == 0",
 *   "now":ms, "holdout":{"salt":"campaign-7","percent":10}, "group":"all"}
 *  @endcode
 *  The expression is "expr" (text), "ast" (the JSON AST) or "audience" (a saved
 *  audience's name: its expression and holdout; the request may add the options). "now"
 *  (epoch ms, 1970 to 9999; default: the engine's clock) is the time the expression's
 *  own windows and today() are read at; tag values are those kept by ingestion and
 *  cdp_advance. "holdout" ("percent" 0..100 or "basis_points" 0..10000) splits the
 *  members by a hash of OneID and salt: the same person and salt always fall on the same
 *  side. "group" ("all", "target" or "holdout") keeps one side. out receives
 *  @code
 *  {"count":N,"target":N,"holdout":N,"now":ms,
 *   "plan":{"indexed_leaves":N,"scanned_leaves":N,"persons_evaluated":N}}
 *  @endcode
 *  (target and holdout only with a holdout; plan says how many conditions were answered
 *  from tag bitmaps and how many persons were evaluated one by one).
 *  Compiling the expression registers the names it uses, so this call, like the other
 *  cdp_audience_* queries, is a write under rule 6 (though it changes nothing a reader
 *  sees and nothing is logged).
 *  Returns CDP_OK, CDP_EINVALID (bad JSON: its line and column; a bad expression: its
 *  line and column or AST path; a bad option, named), CDP_ENOTFOUND (no saved audience
 *  of that name), CDP_ELIMIT (over limits.max_expr_*), CDP_EMISUSE (out or engine NULL,
 *  request NULL with len > 0), CDP_ENOMEM. */
CDP_API int32_t cdp_audience_count(cdp_buf *out, cdp_engine *engine, const char *request,
                                   uint64_t len);

/** Lists an audience's members a page at a time, in a stable order. request as for
 *  cdp_audience_count, plus "cursor" (0, then the previous page's "next"), "limit"
 *  (clamped to 1..10000, default 100), "ids" (identifier types to include, e.g.
 *  ["mobile"]) and "mask" (default true: identifier values masked):
 *  @code
 *  {"count":N,"members":[{"oneid":N,"holdout":false,"ids":{"mobile":["139****5836"]}}],
 *   "next":C}
 *  @endcode
 *  ("holdout" only with a holdout; "ids" only when asked). "next" is 0 after the last
 *  page. The audience is selected again for each page, so a write between pages may
 *  move members across the cursor.
 *  Returns as cdp_audience_count; also CDP_EINVALID for an unknown identifier type. */
CDP_API int32_t cdp_audience_members(cdp_buf *out, cdp_engine *engine, const char *request,
                                     uint64_t len);

/** How an audience's members spread over tags. request as for cdp_audience_count, plus
 *  "tags" (names, required) and "top" (values per tag, clamped to 1..1000, default 10):
 *  @code
 *  {"count":N,"tags":{"channel":{"values":[{"value":"tmall","count":N}],"other":N,
 *   "none":N}}}
 *  @endcode
 *  values: the most common first (ties by value); other: members with values beyond the
 *  top; none: members without a value. For a list tag each item a member holds counts.
 *  Returns as cdp_audience_count; also CDP_EINVALID for an undefined tag. */
CDP_API int32_t cdp_audience_distribution(cdp_buf *out, cdp_engine *engine,
                                          const char *request, uint64_t len);

/** Exports an audience for a channel: one line per member with the identifier the
 *  channel reaches them by. request as for cdp_audience_count, plus "channel" (the
 *  identifier types the channel reaches, best first, required, e.g. ["mobile"]),
 *  "format" ("ndjson", the default, or "csv"), "mask" (default false) and "fallback"
 *  (default true). The pick is the member's earliest-seen identifier of the first
 *  channel type it holds; with fallback, a member holding none is reached through the
 *  best identifier of the source of its latest record, named in "fallback_source".
 *  Members with no pick are left out. out receives text, not a JSON document:
 *  @code
 *  {"oneid":N,"type":"mobile","value":"13917205836","holdout":false}
 *  {"oneid":N,"type":"buyer_id","value":"jd-7","fallback_source":"jd"}
 *  @endcode
 *  or, as CSV, the header "oneid,type,value,source,holdout" and one row per member.
 *  Returns as cdp_audience_count; also CDP_EINVALID for a missing channel or an unknown
 *  type or format. */
CDP_API int32_t cdp_audience_export(cdp_buf *out, cdp_engine *engine, const char *request,
                                    uint64_t len);

/** Saves an audience under a name: its request, with "expr" or "ast" and an optional
 *  "holdout", and nothing else ("audience", or a query's options such as "now" or
 *  "group", are refused naming the key: recounts run at the engine's clock over the
 *  whole audience; give the options when querying it by name). Saving under an existing name replaces the request and
 *  keeps its count history (the next recount's entered and left compare with the last
 *  count). The request is checked now, by selecting it once. out (may be NULL)
 *  receives {"name":"...","count":N}.
 *  Returns CDP_OK, CDP_EINVALID (a name of 0 or over 256 bytes, or a request
 *  cdp_audience_count refuses), CDP_ELIMIT (over limits.max_audiences), CDP_EMISUSE,
 *  CDP_EIO, CDP_ENOMEM. */
CDP_API int32_t cdp_audience_save(cdp_buf *out, cdp_engine *engine, const char *name,
                                  uint64_t name_len, const char *request, uint64_t len);

/** Drops a saved audience. Returns CDP_OK, CDP_ENOTFOUND, CDP_EMISUSE, CDP_EIO,
 *  CDP_ENOMEM. */
CDP_API int32_t cdp_audience_drop(cdp_engine *engine, const char *name, uint64_t len);

/** Lists the saved audiences by name:
 *  {"audiences":[{"name":"...","request":{...},"counts":N,"count":N|null,
 *   "counted_at":ms|null}]} (counts: how many times cdp_audience_recount ran; count and
 *  counted_at: its last result, null before the first). Returns CDP_OK, CDP_EMISUSE,
 *  CDP_ENOMEM. */
CDP_API int32_t cdp_audiences_list(cdp_buf *out, cdp_engine *engine);

/** Counts a saved audience again at the engine's clock and remembers its members, so the
 *  next count says who entered and left. out (may be NULL) receives, and the feed gets
 *  as an audience_counted event:
 *  {"audience":"...","count":N,"previous":N|null,"entered":N,"left":N,"now":ms}
 *  (previous is null and entered is count on the first recount). A member of the last
 *  count whose person has ended since (absorbed by a merge, or forgotten) counts as
 *  left; the person who absorbed it counts as entered unless it was a member already.
 *  Returns CDP_OK, CDP_ENOTFOUND, CDP_ELIMIT (over limits.max_expr_steps), CDP_EMISUSE,
 *  CDP_EIO, CDP_ENOMEM. */
CDP_API int32_t cdp_audience_recount(cdp_buf *out, cdp_engine *engine, const char *name,
                                     uint64_t len);

/** Computes an operating metric: request names it ({"metric":"funnel",...}) and out
 *  receives its report (docs/metrics.md lists the metrics, their requests and reports).
 *  Like the audience queries, it compiles expressions and so is a write under rule 6;
 *  nothing is logged.
 *  Returns CDP_OK, CDP_EINVALID (bad JSON: line and column; a bad field, named),
 *  CDP_ELIMIT (an evaluation over limits.max_expr_steps), CDP_EUNSUPPORTED (a build
 *  without metrics), CDP_EMISUSE, CDP_ENOMEM. */
CDP_API int32_t cdp_metrics(cdp_buf *out, cdp_engine *engine, const char *request,
                            uint64_t len);
/** @} */

/* ---------------------------------------------------------------------------------- */
/** @name Lifecycle: machines, loyalty, journeys and the outbox
 *  The operating half of the engine, defined as data (docs/lifecycle.md, loyalty.md,
 *  journeys.md): state machines over a person's events, timers and conditions (AIPL,
 *  FAST+ layers, new → active → dormant → churned), a points ledger with member tiers,
 *  and journeys that emit timed action intents. The engine never sends anything: what a
 *  host must act on (send a coupon, an SMS) is put in an outbox as an intent with an
 *  idempotency key, which the host reads from a cursor and acknowledges once done.
 *  Records reach the lifecycle in time order as they are ingested, after profiles and
 *  tags took them; deadlines (a state's "after 90d", a journey's "wait 1d") are stored
 *  as absolute times and fire in cdp_advance, with guards evaluated at the deadline.
 *  Every transition is a state_changed event of the change feed with its reason
 *  (event, timer, condition, period, manual, import, merge, initial, definition), and
 *  the last limits.max_history of a person's are kept in its history. A machine's state
 *  is readable by expressions, tags and audiences as state.NAME.
 *  Times are the engine's clock (see Tags and audiences) unless an operation gives "ts".
 *  Every call here that changes the engine is logged on a persistent engine (the outbox
 *  and every pending deadline come back on reopen) and may also return CDP_EIO
 *  (rule 10).
 *  @{ */

/** Defines or redefines machines, the loyalty program and journeys. json is one
 *  definition document with any of the keys "machines" (an array), "loyalty" (an
 *  object), "journeys" (an array) and "delivery" (an object: send windows, quiet hours
 *  and frequency caps for journeys):
 *  @code
 *  {"machines":[{"name":"activity","states":["new","active","dormant"],"initial":"new",
 *    "transitions":[{"from":"new","to":"active","on":"order"},
 *                   {"from":"active","to":"dormant","after":"90d"},
 *                   {"from":"dormant","to":"active","on":"order",
 *                    "action":"welcome_back","channel":"sms"}]}]}
 *  @endcode
 *  Everything is checked before anything is installed. A new machine enters every
 *  person with a profile at its initial state now; a redefined one keeps each person's
 *  state when the state still exists (else the initial state) and reschedules their
 *  timers under the new rules. out (may be NULL) receives what was installed, by part:
 *  {"machines":["activity"],...} (each part adds its own members; docs/lifecycle.md).
 *  Returns CDP_OK, CDP_EINVALID (nothing installed; cdp_error_last() names the JSON
 *  path and the problem, "machines[0] (activity).transitions[1].after: expected a
 *  duration ...", an expression's line and column after its path, or the JSON's line
 *  and column), CDP_ELIMIT (over limits.max_lifecycle_definitions machines and
 *  journeys, or json over 16 x limits.max_record_bytes), CDP_EMISUSE (engine NULL, or
 *  json NULL with len > 0), CDP_EIO, CDP_ENOMEM. */
CDP_API int32_t cdp_lifecycle_define(cdp_buf *out, cdp_engine *engine, const char *json,
                                     uint64_t len);

/** Drops a definition: kind is "machine", "journey" or "loyalty", name its name. Its
 *  per-person state and pending deadlines go (persons leave the machine: state.NAME
 *  reads null), and so do a dropped journey's unacknowledged intents; the history
 *  already recorded stays.
 *  Returns CDP_OK, CDP_ENOTFOUND (nothing of that kind and name), CDP_EINVALID (an
 *  unknown kind), CDP_EMISUSE (engine NULL, or kind or name NULL with a length),
 *  CDP_EIO, CDP_ENOMEM. */
CDP_API int32_t cdp_lifecycle_drop(cdp_engine *engine, const char *kind, uint64_t kind_len,
                                   const char *name, uint64_t name_len);

/** Writes the lifecycle catalogue into out: each part's definitions with their counts,
 *  @code
 *  {"machines":[{"name":"activity","version":1,"monotonic":false,"reset":"none",
 *    "initial":"new","transitions":3,"persons":{"new":N,"active":N,"dormant":N},
 *    "refused_backward":N,"definition":{...as defined...}}],
 *   "loyalty":...,"journeys":[...]}
 *  @endcode
 *  (persons: how many are in each state now; refused_backward: moves a monotonic
 *  machine refused; docs/loyalty.md and journeys.md describe their parts' members).
 *  Returns CDP_OK, CDP_EMISUSE, CDP_ENOMEM. */
CDP_API int32_t cdp_lifecycle_list(cdp_buf *out, cdp_engine *engine);

/** Applies one manual operation, a JSON object naming the operation ("op") and the
 *  person, by "oneid" or by an identifier's "type" and "value" (normalised first), at
 *  "ts" (epoch ms, 1970 to 9999; default: the engine's clock):
 *  @code
 *  {"op":"set_state","type":"mobile","value":"13917205836","machine":"aipl","state":"loyal"}
 *  @endcode
 *  Operations: set_state (machines; docs/lifecycle.md), earn, spend, adjust, refund and
 *  tier (docs/loyalty.md), enter and exit (docs/journeys.md). The person's deadlines in
 *  what the operation touches fire first, up to the operation's time. out (may be NULL)
 *  receives the operation's report, {"oneid":N,...}; for set_state
 *  {"oneid":N,"machine":"aipl","from":"purchase","to":"loyal","changed":true}.
 *  Returns CDP_OK, CDP_EINVALID (bad JSON: its line and column; an unknown op, a
 *  missing or bad field, named), CDP_ENOTFOUND (no such person, identifier, machine or
 *  journey), CDP_ECONFLICT (the operation contradicts the definitions: a monotonic
 *  machine moved backwards, a spend over the balance, a loyalty operation without a
 *  loyalty program; nothing changed), CDP_ELIMIT (json over limits.max_record_bytes),
 *  CDP_EMISUSE (engine NULL, or json NULL with len > 0), CDP_EIO, CDP_ENOMEM. */
CDP_API int32_t cdp_lifecycle_apply(cdp_buf *out, cdp_engine *engine, const char *json,
                                    uint64_t len);

/** Writes a person's lifecycle into out:
 *  @code
 *  {"oneid":N,"history":[{"ts":ms,"machine":"activity","from":"new","to":"active",
 *    "reason":"event","event":"order"}],
 *   "states":{"activity":{"state":"active","since":ms,"next":ms|null}},
 *   "loyalty":...,"journeys":...}
 *  @endcode
 *  history: the person's last limits.max_history transitions, in the order they were
 *  made ("from" is null when the person entered the machine; "event" only for reason
 *  "event"); states: the machines the person is in, when the state was entered and the
 *  state's next deadline (null: none); loyalty and journeys as docs/loyalty.md and
 *  journeys.md say.
 *  A person the lifecycle has not seen has an empty history and no states. oneid is the
 *  survivor's when an absorbed OneID is given.
 *  Returns CDP_OK, CDP_ENOTFOUND (no such person), CDP_EMISUSE, CDP_ENOMEM. */
CDP_API int32_t cdp_person_lifecycle(cdp_buf *out, cdp_engine *engine, uint64_t oneid);

/** Reads the outbox: the intents not yet acknowledged with id >= cursor, oldest first,
 *  at most limit (clamped to 1..10000):
 *  @code
 *  {"intents":[{"id":7,"key":"machine:activity:42:dormant->active:1709280000000",
 *    "oneid":42,"origin":"machine:activity","step":"dormant->active",
 *    "action":"welcome_back","channel":"sms","at":ms,"created":ms,"payload":{...}|null}],
 *   "next":C,"pending":N}
 *  @endcode
 *  id: the intent's place in the outbox (increasing); key: its idempotency key (the same
 *  decision always has the same key, so a host that delivered an intent and crashed
 *  before acknowledging it recognises it when it comes again); origin: the machine or
 *  journey that decided it ("machine:NAME", "journey:NAME") and step, where in it; at:
 *  when it is due to be delivered (later than created when quiet hours deferred it);
 *  payload: the rendered payload template. next: the cursor after the last intent
 *  examined (pass it back for the next page; an empty list means caught up); pending:
 *  unacknowledged intents in the whole outbox. An intent stays in the outbox until it
 *  is acknowledged: every read from a cursor at or before its id returns it again, so
 *  a host that reads from 0 after a crash gets everything it has not acknowledged.
 *  Returns CDP_OK, CDP_EMISUSE, CDP_ENOMEM. */
CDP_API int32_t cdp_outbox_read(cdp_buf *out, cdp_engine *engine, uint64_t cursor,
                                uint32_t limit);

/** Acknowledges intents, which then leave the outbox: json is {"ids":[7,8]} (those
 *  intents) or {"through":8} (every intent with id <= 8). Ids that are unknown or
 *  already acknowledged are skipped. out (may be NULL) receives
 *  {"acked":N,"pending":N}: intents acknowledged by this call, and those still pending.
 *  Returns CDP_OK, CDP_EINVALID (bad JSON, or neither "ids" nor "through"),
 *  CDP_EMISUSE (engine NULL, or json NULL with len > 0), CDP_EIO, CDP_ENOMEM. */
CDP_API int32_t cdp_outbox_ack(cdp_buf *out, cdp_engine *engine, const char *json,
                               uint64_t len);
/** @} */

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* CDP_H */
