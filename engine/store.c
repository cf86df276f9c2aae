/* store.c - see store.h: the handle, the schema and its migrations,
 * transactions and statements. Objects and upserts are store_upsert.c, the
 * audit chain store_audit.c, jobs / sync state / runs store_runs.c,
 * settings store_settings.c, the outbox store_outbox.c; store_int.h is
 * what they share. These files are the only includers of <sqlite3.h>. */
#include "store_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "timeutil.h"

/* The page cache of a store handle (KiB, as PRAGMA cache_size takes it:
 * negative), and of a one-pass read (store_scan_cache): SQLite's default. */
#define STORE_CACHE_KIB "-65536"
#define STORE_SCAN_CACHE_KIB "-2000"
/* The page size of a new store (an existing one keeps its own: in WAL mode
 * SQLite ignores the pragma). 16 KiB pages: fewer B-tree pages to split,
 * seek and write per row than 4 KiB. Measured on the dev sample (seed 3,
 * 200k deals, first ingest, 3 alternated runs at load ~8): CPU 6.41 s
 * (4 KiB), 6.26 s (8 KiB), 5.50 s (16 KiB), same peak RSS (bench/RESULTS.md,
 * Ingest, 2026-12-02 ingest8). */
#define STORE_PAGE_SIZE "16384"

/* ---- schema ----------------------------------------------------------- */

/* Each entry moves the schema from version i to i+1. Never edit a shipped
 * step: add a new one. Steps run inside one transaction each. */
static const char *const migrations[] = {
/* 0 -> 1: the core tables */
"CREATE TABLE partners ("
"  id INTEGER PRIMARY KEY, source TEXT NOT NULL, external_id TEXT NOT NULL,"
"  name TEXT, tier TEXT, region TEXT, country TEXT,"
"  type TEXT CHECK (type = 'distributor' OR type = 'reseller' OR type = 'referral' OR type = 'msp'),"
"  parent_external_id TEXT, currency TEXT, status TEXT, joined_at TEXT, updated_at TEXT,"
"  UNIQUE (source, external_id));"
"CREATE TABLE deals ("
"  id INTEGER PRIMARY KEY, source TEXT NOT NULL, external_id TEXT NOT NULL,"
"  partner_id INTEGER NOT NULL REFERENCES partners(id),"
"  account TEXT, contact_name TEXT, contact_email TEXT,"
"  amount REAL, currency TEXT, product_family TEXT,"
"  stage TEXT NOT NULL CHECK (stage = 'registered' OR stage = 'qualified' OR stage = 'solution' OR stage = 'proposal' OR stage = 'negotiation' OR stage = 'closed_won' OR stage = 'closed_lost'),"
"  status TEXT NOT NULL CHECK (status = 'open' OR status = 'won' OR status = 'lost'),"
"  created_at TEXT NOT NULL, expected_close TEXT, closed_at TEXT,"
"  partner_probability REAL CHECK (partner_probability BETWEEN 0 AND 1),"
"  budget_confirmed INTEGER, competitor TEXT, completeness REAL, notes TEXT, updated_at TEXT,"
"  UNIQUE (source, external_id));"
"CREATE TABLE deal_history ("
"  id INTEGER PRIMARY KEY, deal_id INTEGER NOT NULL REFERENCES deals(id),"
"  observed_at TEXT NOT NULL, stage TEXT, amount REAL, expected_close TEXT, status TEXT,"
"  partner_probability REAL, UNIQUE (deal_id, observed_at));"
"CREATE TABLE commits ("
"  id INTEGER PRIMARY KEY, source TEXT NOT NULL, partner_id INTEGER NOT NULL REFERENCES partners(id),"
"  period TEXT NOT NULL, category TEXT NOT NULL CHECK (category = 'commit' OR category = 'best_case' OR category = 'pipeline'),"
"  amount REAL NOT NULL, currency TEXT, submitted_at TEXT NOT NULL,"
"  UNIQUE (partner_id, period, category, submitted_at));"
"CREATE TABLE quotas ("
"  id INTEGER PRIMARY KEY, source TEXT NOT NULL, partner_id INTEGER NOT NULL REFERENCES partners(id),"
"  period TEXT NOT NULL, amount REAL NOT NULL, currency TEXT, set_at TEXT NOT NULL,"
"  UNIQUE (partner_id, period, set_at));"
"CREATE TABLE transactions ("
"  id INTEGER PRIMARY KEY, source TEXT NOT NULL, external_id TEXT NOT NULL,"
"  partner_id INTEGER NOT NULL REFERENCES partners(id), deal_external_id TEXT, account TEXT,"
"  amount REAL NOT NULL, currency TEXT, booked_at TEXT NOT NULL, UNIQUE (source, external_id));"
"CREATE TABLE payouts ("
"  id INTEGER PRIMARY KEY, source TEXT NOT NULL, external_id TEXT NOT NULL,"
"  partner_id INTEGER NOT NULL REFERENCES partners(id),"
"  kind TEXT NOT NULL CHECK (kind = 'commission' OR kind = 'mdf' OR kind = 'rebate' OR kind = 'spiff'),"
"  amount REAL NOT NULL, currency TEXT, paid_at TEXT NOT NULL, deal_external_id TEXT,"
"  UNIQUE (source, external_id));"
"CREATE TABLE signals ("
"  id INTEGER PRIMARY KEY, source TEXT NOT NULL, entity_type TEXT NOT NULL, entity TEXT NOT NULL,"
"  name TEXT NOT NULL, date TEXT NOT NULL, value REAL NOT NULL,"
"  UNIQUE (entity_type, entity, name, date));"
"CREATE TABLE fx_rates ("
"  currency TEXT NOT NULL, date TEXT NOT NULL, rate REAL NOT NULL CHECK (rate > 0), source TEXT,"
"  PRIMARY KEY (currency, date));"
"CREATE TABLE sync_state ("
"  source TEXT NOT NULL, object TEXT NOT NULL, watermark TEXT, cursor INTEGER NOT NULL DEFAULT 0,"
"  updated_at TEXT, PRIMARY KEY (source, object));"
"CREATE TABLE jobs ("
"  id INTEGER PRIMARY KEY, script TEXT NOT NULL, args TEXT, started_at TEXT NOT NULL,"
"  ended_at TEXT, status TEXT NOT NULL, counts TEXT, error TEXT);"
"CREATE TABLE audit_log ("
"  id INTEGER PRIMARY KEY, at TEXT NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL,"
"  subject TEXT, detail TEXT, prev_hash TEXT NOT NULL, hash TEXT NOT NULL);"
"CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log"
"  BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;"
"CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log"
"  BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;",

/* 1 -> 2: rejected input rows, and the indexes the pipeline queries use */
"CREATE TABLE ingest_rejects ("
"  source TEXT NOT NULL, file TEXT NOT NULL, line INTEGER NOT NULL, reason TEXT NOT NULL,"
"  job_id INTEGER, PRIMARY KEY (source, file, line));"
"CREATE INDEX deals_partner ON deals (partner_id);"
"CREATE INDEX deals_status_close ON deals (status, expected_close);"
"CREATE INDEX commits_partner_period ON commits (partner_id, period, submitted_at);",

/* 2 -> 3: settings (fiscal year start, base currency) */
"CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
"INSERT INTO settings VALUES ('fiscal_start_month', '1'), ('base_currency', 'USD');",

/* 3 -> 4: the model registry, score runs, per-deal scores, the write-back outbox */
"CREATE TABLE models ("
"  id INTEGER PRIMARY KEY, kind TEXT NOT NULL, version TEXT NOT NULL, created_at TEXT NOT NULL,"
"  features TEXT NOT NULL, params TEXT, train_from TEXT, train_to TEXT, eval_to TEXT,"
"  data_hash TEXT NOT NULL, metrics TEXT, blob TEXT NOT NULL, active INTEGER NOT NULL DEFAULT 0);"
"CREATE TABLE score_runs ("
"  id INTEGER PRIMARY KEY, model_id INTEGER REFERENCES models(id), as_of TEXT NOT NULL,"
"  started_at TEXT NOT NULL, finished_at TEXT, deals INTEGER, flagged INTEGER,"
"  rule_errors INTEGER, status TEXT NOT NULL);"
"CREATE TABLE scores ("
"  run_id INTEGER NOT NULL REFERENCES score_runs(id), deal_id INTEGER NOT NULL REFERENCES deals(id),"
"  probability REAL NOT NULL, score REAL NOT NULL, drivers TEXT, flags TEXT,"
"  model_id INTEGER, scored_at TEXT NOT NULL, PRIMARY KEY (run_id, deal_id));"
"CREATE INDEX scores_deal ON scores (deal_id, run_id);"
"CREATE TABLE writeback_outbox ("
"  id INTEGER PRIMARY KEY, run_id INTEGER NOT NULL, deal_id INTEGER NOT NULL, target TEXT NOT NULL,"
"  payload TEXT NOT NULL, status TEXT NOT NULL DEFAULT 'pending', created_at TEXT NOT NULL,"
"  UNIQUE (run_id, deal_id, target));",

/* 4 -> 5: attribute history (deal and partner attributes as of any date),
 * the outbox's delivery state, job liveness, score-run payload counts */
"CREATE TABLE attr_history ("
"  entity TEXT NOT NULL CHECK (entity = 'deal' OR entity = 'partner'), entity_id INTEGER NOT NULL,"
"  field TEXT NOT NULL, observed_at TEXT NOT NULL, value TEXT,"
"  PRIMARY KEY (entity, entity_id, field, observed_at)) WITHOUT ROWID;"
"ALTER TABLE writeback_outbox ADD COLUMN idempotency_key TEXT;"
"ALTER TABLE writeback_outbox ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;"
"ALTER TABLE writeback_outbox ADD COLUMN last_error TEXT;"
"ALTER TABLE writeback_outbox ADD COLUMN next_attempt_at TEXT;"
"ALTER TABLE writeback_outbox ADD COLUMN claimed_at TEXT;"
"ALTER TABLE writeback_outbox ADD COLUMN sent_at TEXT;"
"ALTER TABLE writeback_outbox ADD COLUMN payload_hash TEXT;"
"CREATE INDEX outbox_pending ON writeback_outbox (target, status, id);"
"CREATE INDEX outbox_deal ON writeback_outbox (target, deal_id, id);"
"ALTER TABLE jobs ADD COLUMN pid INTEGER;"
"ALTER TABLE score_runs ADD COLUMN queued INTEGER;"
"ALTER TABLE score_runs ADD COLUMN superseded INTEGER;",

/* 5 -> 6 (harden, issue 8: keyed audit chain): each audit row says how its
 * hash was made - 'sha256' (every row before this step) or 'hmac-sha256'
 * (keyed by $PRMCAST_AUDIT_KEY, which is never stored). */
"ALTER TABLE audit_log ADD COLUMN alg TEXT NOT NULL DEFAULT 'sha256';",

/* 6 -> 7 (issue 10 item 6): payouts the store did not know - a kind outside
 * the list is kept as 'other' with the PRM's raw value in kind_raw, and a
 * payout not paid yet has a status (pending, approved, ...) and no paid_at.
 * SQLite cannot alter a CHECK: the table is rebuilt, rows and ids kept. */
"CREATE TABLE payouts_v7 ("
"  id INTEGER PRIMARY KEY, source TEXT NOT NULL, external_id TEXT NOT NULL,"
"  partner_id INTEGER NOT NULL REFERENCES partners(id),"
"  kind TEXT NOT NULL CHECK (kind = 'commission' OR kind = 'mdf' OR kind = 'rebate' OR kind = 'spiff' OR kind = 'other'),"
"  amount REAL NOT NULL, currency TEXT, paid_at TEXT, deal_external_id TEXT,"
"  kind_raw TEXT, status TEXT, CHECK (paid_at IS NOT NULL OR status IS NOT NULL),"
"  UNIQUE (source, external_id));"
"INSERT INTO payouts_v7 (id, source, external_id, partner_id, kind, amount, currency, paid_at,"
"  deal_external_id) SELECT id, source, external_id, partner_id, kind, amount, currency, paid_at,"
"  deal_external_id FROM payouts;"
"DROP TABLE payouts;"
"ALTER TABLE payouts_v7 RENAME TO payouts;",

/* 7 -> 8 (issue 10 item 9): deal_history as a WITHOUT ROWID table keyed by
 * its natural key (deal_id, observed_at). Every reader looks rows up or
 * scans them by that key; the rowid table kept a second B-tree (the unique
 * index) beside the table, so each history row was two B-tree inserts. The
 * old synthetic id is dropped (nothing referenced it); rows are kept. */
"CREATE TABLE deal_history_v8 ("
"  deal_id INTEGER NOT NULL REFERENCES deals(id), observed_at TEXT NOT NULL,"
"  stage TEXT, amount REAL, expected_close TEXT, status TEXT, partner_probability REAL,"
"  PRIMARY KEY (deal_id, observed_at)) WITHOUT ROWID;"
"INSERT INTO deal_history_v8 SELECT deal_id, observed_at, stage, amount, expected_close, status,"
"  partner_probability FROM deal_history;"
"DROP TABLE deal_history;"
"ALTER TABLE deal_history_v8 RENAME TO deal_history;",
};


int store_db_error(store *s, prm_error *err, const char *what)
{
    return prm_error_set(err, "%s: %s", what, sqlite3_errmsg(s->db));
}

void store_now_iso(char out[21])
{
    instant_iso(clock_now(), out);
}

int store_prep(store *s, sqlite3_stmt **st, const char *sql, prm_error *err)
{
    if (!*st && sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT, st, NULL) != SQLITE_OK)
        return store_db_error(s, err, "preparing statement");
    return 0;
}

int store_bind_value(sqlite3_stmt *st, int idx, const store_value *v)
{
    switch (v->kind) {
    case SV_NULL: return sqlite3_bind_null(st, idx);
    case SV_TEXT: return sqlite3_bind_text(st, idx, v->s, -1, SQLITE_STATIC);
    case SV_REAL: return sqlite3_bind_double(st, idx, v->r);
    case SV_INT: return sqlite3_bind_int64(st, idx, v->i);
    }
    return SQLITE_MISUSE;
}

int store_exec(store *s, const char *sql, prm_error *err)
{
    char *msg = NULL;
    if (sqlite3_exec(s->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        prm_error_set(err, "store %s: %s", s->path, msg ? msg : sqlite3_errmsg(s->db));
        sqlite3_free(msg);
        return -1;
    }
    return 0;
}

int store_open_raw(const char *path, store **out, prm_error *err)
{
    store *s = calloc(1, sizeof *s);
    if (!s) return prm_error_set(err, "out of memory");
    s->path = strdup(path);
    /* No memory statistics: with them every SQLite allocation takes the
     * global malloc mutex (~5% of an ingest's instructions). Before the
     * first open only; later calls are refused harmlessly. */
    static int configured;
    if (!configured) {
        configured = 1;
        sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
    }
    /* NOMUTEX: a store handle belongs to one thread (STYLE.md: one state per
     * worker), so the per-call mutexes of serialized mode are pure cost. */
    if (sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                        NULL) != SQLITE_OK) {
        prm_error_set(err, "cannot open store %s: %s", path,
                      s->db ? sqlite3_errmsg(s->db) : "out of memory");
        store_close(s);
        return -1;
    }
    sqlite3_busy_timeout(s->db, 10000);
    /* WAL lets readers (the report, the API) run beside a sync; NORMAL
     * synchronous is durable at each checkpoint and safe against a process
     * kill, which is the failure the resume logic is written for. */
    if (store_exec(s, "PRAGMA page_size=" STORE_PAGE_SIZE "; PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
                      "PRAGMA foreign_keys=ON; PRAGMA temp_store=MEMORY;"
                      "PRAGMA cache_size=" STORE_CACHE_KIB ";", err) < 0) {
        store_close(s);
        return -1;
    }
    *out = s;
    return 0;
}

int store_version(store *s)
{
    sqlite3_stmt *st;
    int v = -1;
    if (sqlite3_prepare_v2(s->db, "PRAGMA user_version", -1, &st, NULL) == SQLITE_OK) {
        if (sqlite3_step(st) == SQLITE_ROW) v = sqlite3_column_int(st, 0);
        sqlite3_finalize(st);
    }
    return v;
}

int store_migrate(store *s, int version, prm_error *err)
{
    sqlite3_stmt *st;
    int cur = -1, rc = SQLITE_ERROR;
    if (sqlite3_prepare_v2(s->db, "PRAGMA user_version", -1, &st, NULL) == SQLITE_OK) {
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) cur = sqlite3_column_int(st, 0);
        sqlite3_finalize(st);
    }
    if (rc != SQLITE_ROW)
        return prm_error_set(err, "store %s: cannot read its schema version: %s (not a SQLite database?)",
                             s->path, sqlite3_errmsg(s->db));
    if (cur < 0)
        return prm_error_set(err, "store %s has schema version %d: not a prmcast store", s->path, cur);
    if (cur > STORE_VERSION)
        return prm_error_set(err, "store %s has schema version %d, newer than this prmcast (%d)",
                             s->path, cur, STORE_VERSION);
    for (int v = cur; v < version && v < STORE_VERSION; v++) {
        char pragma[64];
        snprintf(pragma, sizeof pragma, "PRAGMA user_version=%d", v + 1);
        if (store_exec(s, "BEGIN IMMEDIATE", err) < 0) return -1;
        if (store_exec(s, migrations[v], err) < 0 || store_exec(s, pragma, err) < 0) {
            store_rollback(s);
            return prm_error_prefix(err, "migration %d -> %d: ", v, v + 1);
        }
        if (store_exec(s, "COMMIT", err) < 0) return -1;
    }
    return 0;
}

int store_open(const char *path, store **out, prm_error *err)
{
    if (store_open_raw(path, out, err) < 0) return -1;
    if (store_migrate(*out, STORE_VERSION, err) < 0) {
        store_close(*out);
        *out = NULL;
        return -1;
    }
    /* A first load killed before it built its secondary indexes. */
    if (store_bulk_missing(*out) && store_bulk_end(*out, err) < 0) {
        store_close(*out);
        *out = NULL;
        return -1;
    }
    return 0;
}

void store_close(store *s)
{
    if (!s) return;
    store_upsert_free(s->up);
    sqlite3_finalize(s->ob_last);
    free(s->ob_pend);
    sqlite3_finalize(s->ob_live);
    sqlite3_finalize(s->ob_sup);
    sqlite3_finalize(s->ob_ins);
    sqlite3_finalize(s->score_ins);
    store_scores_free(s);
    sqlite3_close_v2(s->db);
    free(s->path);
    free(s);
}

const char *store_path(const store *s) { return s->path; }

int store_begin(store *s, prm_error *err) { return store_exec(s, "BEGIN IMMEDIATE", err); }
int store_begin_read(store *s, prm_error *err) { return store_exec(s, "BEGIN", err); }
int store_commit(store *s, prm_error *err)
{
    if (store_history_flush(s, NULL, err) < 0 || store_score_flush(s, err) < 0) return -1;   /* batched rows first */
    store_outbox_forget(s);
    return store_exec(s, "COMMIT", err);
}

int store_scan_cache(store *s, int scan, prm_error *err)
{
    return store_exec(s, scan ? "PRAGMA cache_size=" STORE_SCAN_CACHE_KIB : "PRAGMA cache_size=" STORE_CACHE_KIB,
                      err);
}
int store_in_transaction(store *s) { return !sqlite3_get_autocommit(s->db); }

void store_rollback(store *s)
{
    store_history_drop(s);
    store_scores_drop(s);
    store_outbox_forget(s);
    if (!sqlite3_get_autocommit(s->db)) sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
}


int store_run(store *s, const char *sql, int n, const store_value *v, int64_t *rowid,
              prm_error *err)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK)
        return store_db_error(s, err, "preparing statement");
    for (int i = 0; i < n; i++) store_bind_value(st, i + 1, &v[i]);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW) return store_db_error(s, err, "store");
    if (rowid) *rowid = sqlite3_last_insert_rowid(s->db);
    return 0;
}

/* ---- statements for scripts ------------------------------------------- */

int store_prepare(store *s, const char *sql, store_stmt **out, prm_error *err)
{
    sqlite3_stmt *st;
    /* A script's statement sees the history rows still waiting (store.h). */
    if (store_history_flush(s, NULL, err) < 0) return -1;
    const char *tail = NULL;
    if (sqlite3_prepare_v2(s->db, sql, -1, &st, &tail) != SQLITE_OK)
        return store_db_error(s, err, "SQL");
    if (!st) return prm_error_set(err, "SQL: empty statement");
    while (tail && (*tail == ' ' || *tail == '\n' || *tail == '\t' || *tail == ';')) tail++;
    if (tail && *tail) {
        sqlite3_finalize(st);
        return prm_error_set(err, "SQL: one statement at a time (extra text: \"%.40s\")", tail);
    }
    store_stmt *h = malloc(sizeof *h);
    if (!h) {
        sqlite3_finalize(st);
        return prm_error_set(err, "out of memory");
    }
    h->st = st;
    h->s = s;
    *out = h;
    return 0;
}

int store_bind(store_stmt *h, int idx, const store_value *v, prm_error *err)
{
    if (store_bind_value(h->st, idx, v) != SQLITE_OK)
        return prm_error_set(err, "bind parameter %d: %s", idx, sqlite3_errmsg(h->s->db));
    return 0;
}

int store_step(store_stmt *h, prm_error *err)
{
    int rc = sqlite3_step(h->st);
    if (rc == SQLITE_ROW) return 1;
    if (rc == SQLITE_DONE) return 0;
    return store_db_error(h->s, err, "SQL");
}

int store_reset(store_stmt *h)
{
    sqlite3_reset(h->st);
    return sqlite3_clear_bindings(h->st) == SQLITE_OK ? 0 : -1;
}

int store_ncols(store_stmt *h) { return sqlite3_column_count(h->st); }
int store_nparams(store_stmt *h) { return sqlite3_bind_parameter_count(h->st); }
const char *store_colname(store_stmt *h, int i) { return sqlite3_column_name(h->st, i); }

store_value store_column(store_stmt *h, int i)
{
    store_value v = { SV_NULL, NULL, 0, 0 };
    switch (sqlite3_column_type(h->st, i)) {
    case SQLITE_INTEGER: v.kind = SV_INT; v.i = sqlite3_column_int64(h->st, i); break;
    case SQLITE_FLOAT: v.kind = SV_REAL; v.r = sqlite3_column_double(h->st, i); break;
    case SQLITE_TEXT:
    case SQLITE_BLOB: v.kind = SV_TEXT; v.s = (const char *)sqlite3_column_text(h->st, i); break;
    default: break;
    }
    return v;
}

void store_finalize(store_stmt *h)
{
    if (!h) return;
    sqlite3_finalize(h->st);
    free(h);
}

