/*
 * The ABI that cdp.h promises never to change (its rules 1 and 9), pinned at compile
 * time: status and flag values, the cdp_buf layout, and every function's exact type.
 * A change to any of them breaks the build (under -Werror an incompatible pointer
 * initialisation is an error).
 */
#include "cdp.h"

_Static_assert(CDP_OK == 0 && CDP_EINVALID == -1 && CDP_ENOTFOUND == -2 &&
               CDP_ECONFLICT == -3 && CDP_EBUFS == -4 && CDP_ENOMEM == -5 &&
               CDP_EIO == -6 && CDP_EMISUSE == -7 && CDP_EINTERNAL == -8 &&
               CDP_ELIMIT == -9 && CDP_EUNSUPPORTED == -10,
               "status codes are pinned");
_Static_assert(CDP_INGEST_ASSIGN == 1u && CDP_MASK == 1u && CDP_EXPR_AST == 1u,
               "flag values are pinned");
#if UINTPTR_MAX == UINT64_MAX
_Static_assert(sizeof(cdp_buf) == 24 && offsetof(cdp_buf, size) == 8 &&
               offsetof(cdp_buf, reserved) == 16,
               "cdp_buf layout is pinned");
#endif

typedef const char *str;
typedef uint64_t len;

int32_t (*const pin_version)(void) = cdp_version;
str (*const pin_version_string)(void) = cdp_version_string;
str (*const pin_status_str)(int32_t) = cdp_status_str;
str (*const pin_error_last)(void) = cdp_error_last;
void (*const pin_buf_free)(cdp_buf *) = cdp_buf_free;
int32_t (*const pin_config_default)(cdp_buf *) = cdp_config_default;
int32_t (*const pin_engine_open)(cdp_engine **, str, len, str) = cdp_engine_open;
int32_t (*const pin_engine_close)(cdp_engine *) = cdp_engine_close;
int32_t (*const pin_engine_open_keyed)(cdp_engine **, str, len, str, const void *, len) = cdp_engine_open_keyed;
int32_t (*const pin_engine_stats)(cdp_buf *, cdp_engine *) = cdp_engine_stats;
int32_t (*const pin_ingest_ndjson)(cdp_buf *, cdp_engine *, str, len, uint32_t) =
    cdp_ingest_ndjson;
int32_t (*const pin_ingest_record)(cdp_buf *, cdp_engine *, str, len) = cdp_ingest_record;
int32_t (*const pin_resolve)(uint64_t *, cdp_engine *, str, len, str, len) = cdp_resolve;
int32_t (*const pin_records_resolve)(cdp_buf *, cdp_engine *, str, len) = cdp_records_resolve;
int32_t (*const pin_person_identifiers)(cdp_buf *, cdp_engine *, uint64_t, uint32_t) =
    cdp_person_identifiers;
int32_t (*const pin_persons_page)(cdp_buf *, cdp_engine *, uint64_t, uint32_t, uint32_t) =
    cdp_persons_page;
int32_t (*const pin_explain)(cdp_buf *, cdp_engine *, str, len, str, len, str, len, str,
                             len) = cdp_explain;
int32_t (*const pin_identifier_remove)(cdp_buf *, cdp_engine *, str, len, str, len) =
    cdp_identifier_remove;
int32_t (*const pin_source_remove)(cdp_buf *, cdp_engine *, str, len) = cdp_source_remove;
int32_t (*const pin_person_split)(cdp_buf *, cdp_engine *, uint64_t, str, len) =
    cdp_person_split;
int32_t (*const pin_rule_add)(uint64_t *, cdp_engine *, str, len, str, len, str, len, str,
                              len, str, len, str, len) = cdp_rule_add;
int32_t (*const pin_rule_remove)(cdp_buf *, cdp_engine *, uint64_t) = cdp_rule_remove;
int32_t (*const pin_rules_list)(cdp_buf *, cdp_engine *) = cdp_rules_list;
int32_t (*const pin_feed_read)(cdp_buf *, cdp_engine *, uint64_t, uint32_t) = cdp_feed_read;
int32_t (*const pin_feed_trim)(cdp_engine *, uint64_t) = cdp_feed_trim;
int32_t (*const pin_person_get)(cdp_buf *, cdp_engine *, uint64_t, uint32_t) = cdp_person_get;
int32_t (*const pin_expr_compile)(cdp_expr **, cdp_engine *, str, len, uint32_t) =
    cdp_expr_compile;
int32_t (*const pin_expr_ast)(cdp_buf *, const cdp_expr *) = cdp_expr_ast;
int32_t (*const pin_expr_eval)(cdp_buf *, cdp_expr *, uint64_t, int64_t) = cdp_expr_eval;
int32_t (*const pin_expr_free)(cdp_expr *) = cdp_expr_free;
int32_t (*const pin_tags_define)(cdp_buf *, cdp_engine *, str, len) = cdp_tags_define;
int32_t (*const pin_tag_drop)(cdp_engine *, str, len) = cdp_tag_drop;
int32_t (*const pin_tags_list)(cdp_buf *, cdp_engine *) = cdp_tags_list;
int32_t (*const pin_person_tags)(cdp_buf *, cdp_engine *, uint64_t) = cdp_person_tags;
int32_t (*const pin_advance)(cdp_buf *, cdp_engine *, int64_t) = cdp_advance;
int32_t (*const pin_audience_count)(cdp_buf *, cdp_engine *, str, len) = cdp_audience_count;
int32_t (*const pin_audience_members)(cdp_buf *, cdp_engine *, str, len) =
    cdp_audience_members;
int32_t (*const pin_audience_distribution)(cdp_buf *, cdp_engine *, str, len) =
    cdp_audience_distribution;
int32_t (*const pin_audience_export)(cdp_buf *, cdp_engine *, str, len) = cdp_audience_export;
int32_t (*const pin_audience_save)(cdp_buf *, cdp_engine *, str, len, str, len) =
    cdp_audience_save;
int32_t (*const pin_audience_drop)(cdp_engine *, str, len) = cdp_audience_drop;
int32_t (*const pin_audiences_list)(cdp_buf *, cdp_engine *) = cdp_audiences_list;
int32_t (*const pin_audience_recount)(cdp_buf *, cdp_engine *, str, len) =
    cdp_audience_recount;
int32_t (*const pin_metrics)(cdp_buf *, cdp_engine *, str, len) = cdp_metrics;
int32_t (*const pin_lifecycle_define)(cdp_buf *, cdp_engine *, str, len) = cdp_lifecycle_define;
int32_t (*const pin_lifecycle_drop)(cdp_engine *, str, len, str, len) = cdp_lifecycle_drop;
int32_t (*const pin_lifecycle_list)(cdp_buf *, cdp_engine *) = cdp_lifecycle_list;
int32_t (*const pin_lifecycle_apply)(cdp_buf *, cdp_engine *, str, len) = cdp_lifecycle_apply;
int32_t (*const pin_person_lifecycle)(cdp_buf *, cdp_engine *, uint64_t) = cdp_person_lifecycle;
int32_t (*const pin_outbox_read)(cdp_buf *, cdp_engine *, uint64_t, uint32_t) = cdp_outbox_read;
int32_t (*const pin_outbox_ack)(cdp_buf *, cdp_engine *, str, len) = cdp_outbox_ack;
int32_t (*const pin_snapshot)(cdp_buf *, cdp_engine *) = cdp_snapshot;
int32_t (*const pin_person_forget)(cdp_buf *, cdp_engine *, str, len) = cdp_person_forget;
int32_t (*const pin_person_export)(cdp_buf *, cdp_engine *, uint64_t) = cdp_person_export;
