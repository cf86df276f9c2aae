/* store_runs.c - the store API for what is not ingest: sync state, rejected
 * rows, jobs, the model registry, score runs and scores, and the reports
 * `prmcast status` prints. */
#include "store_int.h"

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "textbuf.h"
#include "timeutil.h"

/* ---- sync state, rejects, jobs ---------------------------------------- */


#define T sv_text
#define I sv_int

int store_sync_get(store *s, const char *source, const char *object, char *watermark,
                   size_t wlen, int64_t *cursor, prm_error *err)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db, "SELECT watermark, cursor FROM sync_state"
                           " WHERE source = ?1 AND object = ?2", -1, &st, NULL) != SQLITE_OK)
        return store_db_error(s, err, "reading sync state");
    sqlite3_bind_text(st, 1, source, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, object, -1, SQLITE_STATIC);
    if (watermark && wlen) watermark[0] = 0;
    *cursor = 0;
    if (sqlite3_step(st) == SQLITE_ROW) {
        const unsigned char *w = sqlite3_column_text(st, 0);
        if (w && watermark && wlen) snprintf(watermark, wlen, "%s", (const char *)w);
        *cursor = sqlite3_column_int64(st, 1);
    }
    sqlite3_finalize(st);
    return 0;
}

int store_sync_set(store *s, const char *source, const char *object, const char *watermark,
                   int64_t cursor, prm_error *err)
{
    char now[21];
    store_now_iso(now);
    store_value v[] = { T(source), T(object), T(watermark), I(cursor), T(now) };
    return store_run(s, "INSERT INTO sync_state (source, object, watermark, cursor, updated_at)"
                  " VALUES (?1,?2,?3,?4,?5) ON CONFLICT (source, object) DO UPDATE SET"
                  " watermark=excluded.watermark, cursor=excluded.cursor,"
                  " updated_at=excluded.updated_at", 5, v, NULL, err);
}

int store_reject(store *s, const char *source, const char *file, int64_t line,
                 const char *reason, int64_t job, prm_error *err)
{
    store_value v[] = { T(source), T(file), I(line), T(reason), job ? I(job) : T(NULL) };
    return store_run(s, "INSERT INTO ingest_rejects (source, file, line, reason, job_id)"
                  " VALUES (?1,?2,?3,?4,?5) ON CONFLICT (source, file, line) DO UPDATE SET"
                  " reason=excluded.reason, job_id=excluded.job_id", 5, v, NULL, err);
}

int store_job_start(store *s, const char *script, const char *args, int64_t pid, int64_t *id,
                    prm_error *err)
{
    char now[21];
    store_now_iso(now);
    store_value v[] = { T(script), T(args), T(now), I(pid) };
    return store_run(s, "INSERT INTO jobs (script, args, started_at, status, pid)"
                        " VALUES (?1,?2,?3,'running',?4)", 4, v, id, err);
}

int store_job_end(store *s, int64_t id, const char *status, const char *counts_json,
                  const char *error, prm_error *err)
{
    char now[21];
    store_now_iso(now);
    store_value v[] = { T(now), T(status), T(counts_json), T(error), I(id) };
    return store_run(s, "UPDATE jobs SET ended_at=?1, status=?2, counts=?3, error=?4 WHERE id=?5",
                     5, v, NULL, err);
}


int store_jobs_running(store *s, int64_t *ids, int64_t *pids, int max, prm_error *err)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db, "SELECT id, pid FROM jobs WHERE status = 'running' ORDER BY id", -1, &st,
                           NULL) != SQLITE_OK)
        return store_db_error(s, err, "reading jobs");
    int n = 0, rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW && n < max) {
        ids[n] = sqlite3_column_int64(st, 0);
        pids[n] = sqlite3_column_type(st, 1) == SQLITE_INTEGER ? sqlite3_column_int64(st, 1) : 0;
        n++;
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) return store_db_error(s, err, "reading jobs");
    return n;
}

/* ---- the model registry ---------------------------------------------------- */

int store_model_add(store *s, const char *const cols[11], int64_t *id, prm_error *err)
{
    store_value v[11];
    for (int i = 0; i < 11; i++) v[i] = T(cols[i]);
    return store_run(s, "INSERT INTO models (kind, version, created_at, features, params,"
                        " train_from, train_to, eval_to, data_hash, metrics, blob)"
                        " VALUES (?,?,?,?,?,?,?,?,?,?,?)", 11, v, id, err);
}

int store_model_active_on(store *s, const char *eval_to, int64_t *id, char kind[16], double *logloss,
                          prm_error *err)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db, "SELECT id, kind, json_extract(metrics, '$.eval_logloss') FROM models"
                           " WHERE active = 1 AND eval_to = ?1 ORDER BY id DESC LIMIT 1", -1, &st, NULL) != SQLITE_OK)
        return store_db_error(s, err, "reading the model registry");
    sqlite3_bind_text(st, 1, eval_to, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st), found = rc == SQLITE_ROW;
    if (found) {
        *id = sqlite3_column_int64(st, 0);
        const unsigned char *k = sqlite3_column_text(st, 1);
        snprintf(kind, 16, "%s", k ? (const char *)k : "");
        *logloss = sqlite3_column_type(st, 2) == SQLITE_NULL ? NAN : sqlite3_column_double(st, 2);
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) return store_db_error(s, err, "reading the model registry");
    return found;
}

int store_model_activate(store *s, int64_t id, prm_error *err)
{
    store_value v = I(id);
    return store_run(s, "UPDATE models SET active = (id = ?)", 1, &v, NULL, err);
}

int store_model_get(store *s, int64_t want, int64_t *id, char kind[16], char version[64], char **blob,
                    prm_error *err)
{
    sqlite3_stmt *st;
    const char *sql = want ? "SELECT id, kind, blob, version FROM models WHERE id = ?1"
                           : "SELECT id, kind, blob, version FROM models WHERE active = 1 ORDER BY id DESC LIMIT 1";
    *blob = NULL;
    if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK)
        return store_db_error(s, err, "reading the model registry");
    if (want) sqlite3_bind_int64(st, 1, want);
    int rc = sqlite3_step(st), found = rc == SQLITE_ROW;
    if (found) {
        const unsigned char *k = sqlite3_column_text(st, 1), *b = sqlite3_column_text(st, 2),
                            *v = sqlite3_column_text(st, 3);
        *id = sqlite3_column_int64(st, 0);
        snprintf(kind, 16, "%s", k ? (const char *)k : "");
        snprintf(version, 64, "%s", v ? (const char *)v : "");
        *blob = strdup(b ? (const char *)b : "");
        if (!*blob) found = prm_error_set(err, "out of memory reading a model");
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) return store_db_error(s, err, "reading the model registry");
    return found;
}

static void col_text(sqlite3_stmt *st, int i, char *out, size_t cap)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    snprintf(out, cap, "%s", t ? (const char *)t : "");
}

int store_score_last(store *s, const char *deal, store_last_score *out, prm_error *err)
{
    memset(out, 0, sizeof *out);
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db, "SELECT d.external_id, s.probability, s.score, s.drivers, s.flags, s.run_id,"
                           " r.as_of, m.id, m.kind, m.version, s.scored_at"
                           " FROM deals d JOIN scores s ON s.deal_id = d.id JOIN score_runs r ON r.id = s.run_id"
                           " LEFT JOIN models m ON m.id = s.model_id"
                           " WHERE d.external_id = ?1 ORDER BY s.run_id DESC LIMIT 1", -1, &st, NULL) != SQLITE_OK)
        return store_db_error(s, err, "reading the scores");
    sqlite3_bind_text(st, 1, deal, -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(st), found = rc == SQLITE_ROW;
    if (found) {
        col_text(st, 0, out->deal, sizeof out->deal);
        out->probability = sqlite3_column_double(st, 1);
        out->score = sqlite3_column_double(st, 2);
        const unsigned char *dr = sqlite3_column_text(st, 3), *fl = sqlite3_column_text(st, 4);
        out->drivers = strdup(dr ? (const char *)dr : "[]");
        out->flags = strdup(fl ? (const char *)fl : "[]");
        out->run_id = sqlite3_column_int64(st, 5);
        col_text(st, 6, out->as_of, sizeof out->as_of);
        out->model_id = sqlite3_column_int64(st, 7);   /* 0 for NULL */
        col_text(st, 8, out->model_kind, sizeof out->model_kind);
        col_text(st, 9, out->model_version, sizeof out->model_version);
        col_text(st, 10, out->scored_at, sizeof out->scored_at);
        if (!out->drivers || !out->flags) {
            free(out->drivers);
            free(out->flags);
            out->drivers = out->flags = NULL;
            found = prm_error_set(err, "out of memory reading a score");
        }
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) return store_db_error(s, err, "reading the scores");
    return found;
}

int store_model_tenant_fields(store *s, int64_t id, store_model_field_fn fn, void *ud, prm_error *err)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db, "SELECT f.key, f.value FROM models, json_each(models.params,"
                           " '$.tenant_fields') AS f WHERE models.id = ?1", -1, &st, NULL) != SQLITE_OK)
        return store_db_error(s, err, "reading the model registry");
    sqlite3_bind_int64(st, 1, id);
    int rc, stop = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const unsigned char *k = sqlite3_column_text(st, 0), *t = sqlite3_column_text(st, 1);
        if (sqlite3_column_type(st, 1) != SQLITE_TEXT || !k || !t) continue;
        if ((stop = fn(ud, (const char *)k, (const char *)t)) < 0) break;
    }
    sqlite3_finalize(st);
    if (stop < 0) return stop;
    if (rc != SQLITE_DONE) return store_db_error(s, err, "reading the model registry");
    return 0;
}

/* ---- score runs and scores ------------------------------------------------ */

int store_score_run_begin(store *s, int64_t model_id, const char *as_of, const char *started_at,
                          int64_t *run_id, prm_error *err)
{
    store_value v[3] = { I(model_id), T(as_of), T(started_at) };
    return store_run(s, "INSERT INTO score_runs (model_id, as_of, started_at, status)"
                        " VALUES (?, ?, ?, 'running')", 3, v, run_id, err);
}

/* Score rows wait in the handle and go in SCORE_BATCH at a time as one
 * multi-row INSERT (prepared once; the last, shorter batch of a run gets
 * its own statement), in the order they came, so the rows and their rowids
 * are those of one INSERT per row. One statement per row cost 21.3k
 * instructions a row on the 200k-deal bench store (binds, the VDBE program
 * start with three B-tree cursors, halt, reset: bench/RESULTS.md, score9);
 * store_score_add, rows and flushes, per row there: 15.0k instructions at
 * a batch of 16, 13.5k at 64, 13.0k at 256; 64 keeps to 512 parameters,
 * under the 999 of SQLite builds before 3.32. */
enum { SCORE_BATCH = 64, SCORE_COLS = 8 };

typedef struct scorebuf {
    struct {
        int64_t run, deal, model;
        double p, score;
        ptrdiff_t drivers, flags, at;      /* offsets in text; -1 for NULL */
    } row[SCORE_BATCH];
    int n;
    int failed;                    /* a flush failed; cleared by a rollback */
    char *text;
    size_t tlen, tcap;
} scorebuf;

void store_scores_free(store *s)
{
    if (!s->sb) return;
    free(s->sb->text);
    free(s->sb);
    s->sb = NULL;
}

void store_scores_drop(store *s)
{
    if (!s->sb) return;
    s->sb->n = s->sb->failed = 0;
    s->sb->tlen = 0;
}

static ptrdiff_t keep_text(scorebuf *b, const char *t)
{
    return t ? textbuf_add(&b->text, &b->tlen, &b->tcap, 1 << 14, t) : -1;
}

static void bind_text_at(sqlite3_stmt *st, int idx, const scorebuf *b, ptrdiff_t off)
{
    if (off < 0) sqlite3_bind_null(st, idx);
    else sqlite3_bind_text(st, idx, b->text + off, -1, SQLITE_STATIC);
}

/* The INSERT of n rows. */
static int score_sql(int n, char *out, size_t cap)
{
    size_t len = (size_t)snprintf(out, cap, "INSERT INTO scores (run_id, deal_id, probability, score,"
                                  " drivers, flags, model_id, scored_at) VALUES ");
    for (int i = 0; i < n && len < cap; i++)
        len += (size_t)snprintf(out + len, cap - len, "%s(?,?,?,?,?,?,?,?)", i ? "," : "");
    return len < cap ? 0 : -1;
}

int store_score_flush(store *s, prm_error *err)
{
    scorebuf *b = s->sb;
    if (!b || (!b->n && !b->failed)) return 0;
    char sql[120 + SCORE_BATCH * 18];
    sqlite3_stmt *st = NULL;
    int full = b->n == SCORE_BATCH;
    if (b->failed) return prm_error_set(err, "storing scores failed: the transaction must be rolled back");
    if (score_sql(b->n, sql, sizeof sql) < 0) return prm_error_set(err, "storing scores: statement too long");
    if (full) {
        if (store_prep(s, &s->score_ins, sql, err) < 0) return -1;
        st = s->score_ins;
    } else if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK) {
        return store_db_error(s, err, "storing scores");
    }
    for (int i = 0; i < b->n; i++) {
        int k = i * SCORE_COLS;
        sqlite3_bind_int64(st, k + 1, b->row[i].run);
        sqlite3_bind_int64(st, k + 2, b->row[i].deal);
        sqlite3_bind_double(st, k + 3, b->row[i].p);
        sqlite3_bind_double(st, k + 4, b->row[i].score);
        bind_text_at(st, k + 5, b, b->row[i].drivers);
        bind_text_at(st, k + 6, b, b->row[i].flags);
        sqlite3_bind_int64(st, k + 7, b->row[i].model);
        bind_text_at(st, k + 8, b, b->row[i].at);
    }
    int rc = sqlite3_step(st);
    if (full) sqlite3_reset(st);
    else sqlite3_finalize(st);
    b->n = 0;
    b->tlen = 0;
    if (rc == SQLITE_DONE) return 0;
    b->failed = 1;                 /* its rows are lost: no later flush or commit succeeds */
    return store_db_error(s, err, "storing a score");
}

int store_score_add(store *s, int64_t run_id, int64_t deal_rowid, double probability, double score,
                    const char *drivers, const char *flags, int64_t model_id, const char *scored_at,
                    prm_error *err)
{
    if (!s->sb && !(s->sb = calloc(1, sizeof *s->sb))) return prm_error_set(err, "out of memory");
    scorebuf *b = s->sb;
    if (b->n == SCORE_BATCH && store_score_flush(s, err) < 0) return -1;
    ptrdiff_t d = keep_text(b, drivers), f = keep_text(b, flags), a = keep_text(b, scored_at);
    if ((drivers && d < 0) || (flags && f < 0) || (scored_at && a < 0))
        return prm_error_set(err, "out of memory storing a score");
    b->row[b->n].run = run_id;
    b->row[b->n].deal = deal_rowid;
    b->row[b->n].model = model_id;
    b->row[b->n].p = probability;
    b->row[b->n].score = score;
    b->row[b->n].drivers = d;
    b->row[b->n].flags = f;
    b->row[b->n].at = a;
    b->n++;
    return 0;
}

int store_score_run_end(store *s, int64_t run_id, const char *finished_at, int64_t deals,
                        int64_t flagged, int64_t rule_errors, int64_t queued, prm_error *err)
{
    if (store_score_flush(s, err) < 0) return -1;
    store_value u[6] = { T(finished_at), I(deals), I(flagged), I(rule_errors), I(queued), I(run_id) };
    return store_run(s, "UPDATE score_runs SET finished_at = ?, deals = ?, flagged = ?, rule_errors = ?,"
                        " queued = ?, status = 'ok' WHERE id = ?", 6, u, NULL, err);
}

/* ---- what `prmcast status` shows ------------------------------------------ */

static const store_report status_reports[] = {
    { "tables",
      "SELECT 'partners' AS name, count(*) AS rows FROM partners UNION ALL "
      "SELECT 'deals', count(*) FROM deals UNION ALL "
      "SELECT 'deals (open)', count(*) FROM deals WHERE status = 'open' UNION ALL "
      "SELECT 'deal_history', count(*) FROM deal_history UNION ALL "
      "SELECT 'attr_history', count(*) FROM attr_history UNION ALL "
      "SELECT 'commits', count(*) FROM commits UNION ALL SELECT 'quotas', count(*) FROM quotas UNION ALL "
      "SELECT 'transactions', count(*) FROM transactions UNION ALL "
      "SELECT 'payouts', count(*) FROM payouts UNION ALL SELECT 'signals', count(*) FROM signals UNION ALL "
      "SELECT 'fx_rates', count(*) FROM fx_rates UNION ALL "
      "SELECT 'ingest_rejects', count(*) FROM ingest_rejects UNION ALL "
      "SELECT 'scores', count(*) FROM scores UNION ALL "
      "SELECT 'writeback_outbox (pending)', count(*) FROM writeback_outbox WHERE status = 'pending' UNION ALL "
      "SELECT 'writeback_outbox (dead)', count(*) FROM writeback_outbox WHERE status = 'dead' UNION ALL "
      "SELECT 'audit_log', count(*) FROM audit_log" },
    { "syncs", "SELECT source, object, cursor, updated_at FROM sync_state"
               " ORDER BY updated_at DESC, object LIMIT 20" },
    { "jobs", "SELECT id, script, status, started_at, ended_at FROM jobs ORDER BY id DESC LIMIT 10" },
    { "models", "SELECT id, kind, version, CASE active WHEN 1 THEN 'active' ELSE '' END AS state,"
                " round(json_extract(metrics, '$.eval_logloss'), 4) AS eval_logloss"
                " FROM models ORDER BY active DESC, id DESC LIMIT 5" },
    { "score_runs", "SELECT id, as_of, model_id, deals, flagged, queued, status FROM score_runs"
                    " ORDER BY id DESC LIMIT 5" },
};

const store_report *store_status_reports(size_t *n)
{
    *n = sizeof status_reports / sizeof status_reports[0];
    return status_reports;
}
