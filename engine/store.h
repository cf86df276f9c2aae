/* store.h - the SQLite store: schema, migrations, upserts, sync state, jobs,
 * the audit chain. The only file that includes <sqlite3.h> is store.c.
 *
 * Records arrive as arrays of store_value in the order of an object's field
 * list (store_object), so callers (the Lua binding, the sample loader, the
 * tests) fill values by field name and never see SQL. Upserts are keyed by
 * (source, external_id) or the object's natural key, are idempotent, and
 * write nothing when no value changed; a deal's history row is written
 * only when the deal is new or a tracked value really changed.
 */
#ifndef PRM_STORE_H
#define PRM_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"

typedef struct store store;
typedef struct store_stmt store_stmt;

typedef enum { FT_TEXT, FT_REAL, FT_INT, FT_DATE, FT_INSTANT } field_type;

typedef struct store_field {
    const char *name;
    field_type type;
    int required;
    const char *const *allowed;     /* NULL-terminated list, or NULL: any */
} store_field;

typedef struct store_object {
    const char *name;               /* "deal", "partner", ... */
    const char *table;
    const store_field *fields;      /* field 0 is always "source" */
    int nfields;
} store_object;

typedef enum { SV_NULL, SV_TEXT, SV_REAL, SV_INT } store_value_kind;

typedef struct store_value {
    store_value_kind kind;
    const char *s;                  /* SV_TEXT: borrowed, NUL-terminated */
    double r;
    int64_t i;
} store_value;

enum { STORE_VERSION = 8 };          /* newest schema version */

int store_open(const char *path, store **out, prm_error *err);
/* Opens without migrating; store_migrate brings it to `version`. Tests use
 * this to build a store at each earlier version and migrate it forward. */
int store_open_raw(const char *path, store **out, prm_error *err);
int store_migrate(store *s, int version, prm_error *err);
int store_version(store *s);
void store_close(store *s);
const char *store_path(const store *s);

int store_begin(store *s, prm_error *err);
/* A read transaction (deferred BEGIN): every statement until store_commit
 * sees one snapshot of the store, and they share one lock instead of
 * taking it per statement (the world's loaders: ~150k indexed queries). */
int store_begin_read(store *s, prm_error *err);
/* A read of most of the store in one pass (the world's loaders): with
 * `scan` set, the page cache is SQLite's default 2 MB instead of the
 * store's 64 MB until called again with 0. Pages read once gain nothing
 * from a cache, and each fresh cache page costs a page fault (on the
 * benchmark VM the 64 MB cache was ~0.6 s of a 1M-deal world load,
 * bench/RESULTS.md). */
int store_scan_cache(store *s, int scan, prm_error *err);
int store_commit(store *s, prm_error *err);
void store_rollback(store *s);
int store_in_transaction(store *s);

const store_object *store_object_find(const char *name);
const store_object *store_objects(int *n);
int store_field_index(const store_object *o, const char *name);

/* Upserts one record; *written is 1 when a row was inserted or changed.
 * Values are checked against the field list first (required, allowed,
 * type), and a failure names the field. */
int store_upsert(store *s, const store_object *o, const store_value *v,
                 int *written, prm_error *err);

/* store_upsert for a caller that wrote some date / instant fields itself
 * with date_iso / instant_iso (the ingest's declared fields): bit i of
 * iso_made says field i is such text, so only its year range is checked,
 * not a second parse of its format. Everything else as store_upsert. */
int store_upsert_iso(store *s, const store_object *o, const store_value *v, uint32_t iso_made,
                     int *written, prm_error *err);

/* Batched history rows: with store_history_batch(s, 1, err) on, the
 * deal_history rows of store_upsert (a deal_change without `changed`, a
 * new or changed deal's state) wait in memory and reach the store in one
 * statement per store_history_flush (also when 16k rows wait, before a
 * partial change reads the history, before a script's statement
 * (store_prepare), at store_commit, and when batching is turned off).
 * Rows wait only inside a transaction. During a first load
 * (store_bulk_begin) a new deal's own state waits so too, for every
 * caller. A deal_change row that waits reports *written =
 * STORE_PENDING; the flush gives how many of the rows it wrote changed
 * the store (the rest were identical to stored rows). The result is the
 * one of writing each row at once. An error at the flush is not tied to a
 * row: the caller's transaction is to be rolled back. */
enum { STORE_PENDING = 2 };
int store_history_batch(store *s, int on, prm_error *err);
int store_history_flush(store *s, int64_t *written, prm_error *err);

/* A first load into an empty store: the secondary indexes of deals and
 * commits (not the unique keys the upsert probes) are dropped for the load
 * and built once after it, by one sort instead of a random insert per row.
 * store_bulk_begin sets *bulk to 1 when the store was empty and it dropped
 * them; store_bulk_end builds whatever is missing (also after a failed
 * load); store_open builds them too when a killed load left them out.
 * Inside a transaction both do nothing. */
int store_bulk_begin(store *s, int *bulk, prm_error *err);
int store_bulk_end(store *s, prm_error *err);

int store_sync_get(store *s, const char *source, const char *object,
                   char *watermark, size_t wlen, int64_t *cursor, prm_error *err);
int store_sync_set(store *s, const char *source, const char *object,
                   const char *watermark, int64_t cursor, prm_error *err);

int store_reject(store *s, const char *source, const char *file, int64_t line,
                 const char *reason, int64_t job, prm_error *err);

int store_job_start(store *s, const char *script, const char *args, int64_t pid, int64_t *id,
                    prm_error *err);
/* The model registry (store_runs.c). store_model_add inserts a trained
 * model: the 11 text columns kind, version, created_at, features, params,
 * train_from, train_to, eval_to, data_hash, metrics, blob (*id its id).
 * store_model_active_on finds the active model evaluated on the window
 * ending eval_to: 1 with its id, kind and eval log loss (NAN when none was
 * recorded), 0 when there is none. store_model_activate makes id the only
 * active model. store_model_get reads model `want` (0: the active one): 1
 * with its id, kind, version and *blob (the caller frees it), 0 when there
 * is none. store_model_tenant_fields calls fn(ud, field, type) for each
 * tenant field the model was trained with; fn returns < 0 to stop (that
 * value is returned). */
int store_model_add(store *s, const char *const cols[11], int64_t *id, prm_error *err);
int store_model_active_on(store *s, const char *eval_to, int64_t *id, char kind[16], double *logloss,
                          prm_error *err);
int store_model_activate(store *s, int64_t id, prm_error *err);
int store_model_get(store *s, int64_t want, int64_t *id, char kind[16], char version[64], char **blob,
                    prm_error *err);
typedef int (*store_model_field_fn)(void *ud, const char *field, const char *type);
int store_model_tenant_fields(store *s, int64_t id, store_model_field_fn fn, void *ud, prm_error *err);

/* Score runs (store_runs.c), inside the caller's transaction: a run row
 * 'running' (*run_id its id), one scores row per deal, and the run's end
 * with its counts ('ok'). drivers and flags are JSON text. Score rows are
 * written in batches: a row added is in the table after the next
 * store_score_flush, store_score_run_end or store_commit (a rollback drops
 * the rows still waiting), so a reader of this run's scores flushes first. */
int store_score_run_begin(store *s, int64_t model_id, const char *as_of, const char *started_at,
                          int64_t *run_id, prm_error *err);
int store_score_add(store *s, int64_t run_id, int64_t deal_rowid, double probability, double score,
                    const char *drivers, const char *flags, int64_t model_id, const char *scored_at,
                    prm_error *err);
int store_score_flush(store *s, prm_error *err);
int store_score_run_end(store *s, int64_t run_id, const char *finished_at, int64_t deals,
                        int64_t flagged, int64_t rule_errors, int64_t queued, prm_error *err);

/* A deal's newest score with its run and model (store_runs.c), for
 * `prmcast explain`: 1 and *out filled (drivers and flags are JSON text the
 * caller frees), 0 when the deal has none (unknown, or never scored). */
typedef struct store_last_score {
    char deal[128], as_of[21], scored_at[21], model_kind[16], model_version[64];
    int64_t run_id, model_id;
    double probability, score;
    char *drivers, *flags;
} store_last_score;
int store_score_last(store *s, const char *deal, store_last_score *out, prm_error *err);

/* The reports `prmcast status` prints: a title and a query without
 * parameters each, in order (the store owns what its tables are called). */
typedef struct store_report { const char *title, *sql; } store_report;
const store_report *store_status_reports(size_t *n);

/* Ids and process ids of the jobs still marked 'running' (up to max);
 * pid 0 when none was recorded. Returns how many, or -1. */
int store_jobs_running(store *s, int64_t *ids, int64_t *pids, int max, prm_error *err);
int store_job_end(store *s, int64_t id, const char *status, const char *counts_json,
                  const char *error, prm_error *err);

/* Appends to the audit log: each row carries a hash over the previous
 * row's hash and its own content. With $PRMCAST_AUDIT_KEY set (never
 * stored) the hash is HMAC-SHA-256 under that key (alg 'hmac-sha256'), so
 * an edited chain cannot be recomputed without the key; without it plain
 * SHA-256 (alg 'sha256'). A NULL actor means whoever runs the process:
 * $PRMCAST_ACTOR, else $USER, else "prmcast". */
int store_audit(store *s, const char *actor, const char *action, const char *subject,
                const char *detail_json, prm_error *err);
/* Recomputes the chain. *rows gets the rows checked; on a break returns 1
 * and names the first bad row in err; 0 when intact; -1 on error. With
 * the key set, keyed rows are checked with it, a plain row after a keyed
 * one and a plain head are breaks (recomputed without the key); keyed rows
 * without the key cannot be checked and are a break too. */
int store_audit_verify(store *s, int64_t *rows, char head[65], prm_error *err);
/* The same, and `expect` (a head recorded earlier, outside the store: the
 * line every job prints) must be the hash of a row of the chain - deleting
 * the last rows, or all of them, is caught. *after gets the rows appended
 * since it. expect NULL: store_audit_verify. */
int store_audit_verify_expect(store *s, const char *expect, int64_t *rows, int64_t *after,
                              char head[65], prm_error *err);
/* The head without verifying: the last row's hash and the row count (the
 * all-zero genesis and 0 for an empty log). */
int store_audit_head(store *s, char head[65], int64_t *rows, prm_error *err);

/* Settings (store_settings.c). store_setting copies the value into out and
 * returns 1, or 0 when the key is unset, -1 on error. The typed readers
 * check the value and name it when it is wrong. */
int store_setting(store *s, const char *key, char *out, size_t cap, prm_error *err);
int store_setting_set(store *s, const char *key, const char *value, prm_error *err);
int store_fiscal_start(store *s, int *month, prm_error *err);      /* 1..12, default 1 */
int store_base_currency(store *s, char out[4], prm_error *err);    /* default "USD" */

/* Tenant deal fields' types, kept in settings as "field_type.x.<name>" by the
 * deal_field upsert: store_field_types names them (NULL-terminated; the index
 * is the type), store_field_types_each calls fn(ud, "x.<name>", type index)
 * for each stored field in key order, skipping values that are not a type;
 * fn returns < 0 to stop with an out-of-memory error. */
extern const char *const store_field_types[];
int store_field_type_index(const char *type);                      /* -1 when not a type */
typedef int (*store_field_type_fn)(void *ud, const char *field, int type);
int store_field_types_each(store *s, store_field_type_fn fn, void *ud, prm_error *err);

/* Statements for scripts and reports: SQL text comes from the caller,
 * values are always bound, never spliced. */
int store_prepare(store *s, const char *sql, store_stmt **out, prm_error *err);
int store_bind(store_stmt *st, int idx, const store_value *v, prm_error *err);
int store_step(store_stmt *st, prm_error *err);     /* 1 row, 0 done, -1 error */
int store_reset(store_stmt *st);
int store_ncols(store_stmt *st);
const char *store_colname(store_stmt *st, int i);
store_value store_column(store_stmt *st, int i);    /* valid until next step */
int store_nparams(store_stmt *st);
void store_finalize(store_stmt *st);
/* Runs one statement with n bound values to completion; *rowid (may be
 * NULL) gets the last inserted rowid. */
int store_run(store *s, const char *sql, int n, const store_value *v, int64_t *rowid,
              prm_error *err);
/* Runs SQL with no parameters and no rows (schema, PRAGMA). */
int store_exec(store *s, const char *sql, prm_error *err);

#endif
