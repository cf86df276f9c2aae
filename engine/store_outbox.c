/* store_outbox.c - outbox.h over the store's writeback_outbox table. */
#include "outbox.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hash.h"
#include "store_int.h"
#include "timeutil.h"

static int in_txn(store *s) { return !sqlite3_get_autocommit(s->db); }

static int step_done(store *s, sqlite3_stmt *st, prm_error *err, const char *what)
{
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : store_db_error(s, err, what);
}

static int prepare(store *s, const char *sql, sqlite3_stmt **st, prm_error *err)
{
    if (sqlite3_prepare_v2(s->db, sql, -1, st, NULL) != SQLITE_OK)
        return store_db_error(s, err, "outbox");
    return 0;
}

/* Binds (target, deal) as ?1, ?2 of a per-deal statement and steps it. */
static int step_deal(sqlite3_stmt *st, const char *target, int64_t deal_id)
{
    sqlite3_bind_text(st, 1, target, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, deal_id);
    return sqlite3_step(st);
}

static void sha(const char *text, char out[65])
{
    hash_sha256 *h = hash_sha256_new();
    if (!h) {
        out[0] = 0;
        return;
    }
    hash_sha256_update(h, text, strlen(text));
    hash_sha256_hex(h, out);
}

/* What a score run's queue needs to know of the rows other runs left, read
 * once per (transaction, target, run): the deals with a pending row (a
 * sorted array) and whether any payload was ever delivered. The queue then
 * runs the supersede UPDATE only for those deals and the lookup of the
 * last delivered payload only when there is one: a run into an empty
 * outbox, or one whose sender has not run yet, runs neither. Inside the
 * run's transaction rows of other runs only leave 'pending' (the
 * supersede) and none becomes 'sent', so what was read stays true, except
 * through outbox_fail and outbox_ack, which forget it, as do the store's
 * commit and rollback. */
void store_outbox_forget(store *s)
{
    s->ob_known = 0;
}

static int cmp_id(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static int others_load(store *s, int64_t run_id, const char *target, prm_error *err)
{
    sqlite3_stmt *st;
    if (prepare(s, "SELECT deal_id FROM writeback_outbox WHERE target = ?1 AND status = 'pending'"
                   " AND run_id <> ?2", &st, err) < 0)
        return -1;
    sqlite3_bind_text(st, 1, target, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, run_id);
    size_t n = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (n == s->ob_cap) {
            size_t cap = s->ob_cap ? s->ob_cap * 2 : 1024;
            int64_t *v = realloc(s->ob_pend, cap * sizeof *v);
            if (!v) {
                sqlite3_finalize(st);
                return prm_error_set(err, "out of memory");
            }
            s->ob_pend = v;
            s->ob_cap = cap;
        }
        s->ob_pend[n++] = sqlite3_column_int64(st, 0);
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) return store_db_error(s, err, "outbox pending");
    if (prepare(s, "SELECT EXISTS (SELECT 1 FROM writeback_outbox WHERE target = ?1 AND status = 'sent')",
                &st, err) < 0)
        return -1;
    sqlite3_bind_text(st, 1, target, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    s->ob_sent = rc == SQLITE_ROW ? sqlite3_column_int(st, 0) : 1;
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW) return store_db_error(s, err, "outbox sent");
    if (n > 1) qsort(s->ob_pend, n, sizeof *s->ob_pend, cmp_id);
    s->ob_npend = n;
    s->ob_run = run_id;
    snprintf(s->ob_target, sizeof s->ob_target, "%s", target);
    s->ob_known = strcmp(s->ob_target, target) == 0;   /* a longer target is read every call */
    return 0;
}

/* *pending: the deal has a pending row of another run; *sent: some payload
 * of target was delivered. */
static int others_of(store *s, int64_t run_id, const char *target, int64_t deal_id, int *pending,
                     int *sent, prm_error *err)
{
    if (!in_txn(s)) s->ob_known = 0;
    if (!(s->ob_known && s->ob_run == run_id && strcmp(s->ob_target, target) == 0) &&
        others_load(s, run_id, target, err) < 0)
        return -1;
    *pending = s->ob_npend && bsearch(&deal_id, s->ob_pend, s->ob_npend, sizeof deal_id, cmp_id);
    *sent = s->ob_sent;
    return 0;
}

int outbox_queue(store *s, int64_t run_id, int64_t deal_id, const char *deal_ext, const char *target,
                 const char *payload, const char *compare_hash, int *queued, prm_error *err)
{
    char h[65];
    if (!compare_hash) {
        sha(payload, h);
        compare_hash = h;
    }
    if (!compare_hash[0]) return prm_error_set(err, "outbox: cannot hash the payload (out of memory)");
    *queued = 0;
    /* Up to three statements per queued deal, prepared once per store
     * handle (a score run queues one per open deal); the first two run
     * only when others_of says they can find a row. */
    if (store_prep(s, &s->ob_last, "SELECT payload_hash FROM writeback_outbox WHERE target = ?1 AND"
                   " deal_id = ?2 AND status = 'sent' ORDER BY id DESC LIMIT 1", err) < 0 ||
        store_prep(s, &s->ob_sup, "UPDATE writeback_outbox SET status = 'superseded' WHERE target = ?1"
                   " AND deal_id = ?2 AND status = 'pending' AND run_id <> ?3", err) < 0 ||
        store_prep(s, &s->ob_ins, "INSERT INTO writeback_outbox (run_id, deal_id, target, payload, status,"
                   " created_at, idempotency_key, payload_hash, next_attempt_at) VALUES (?1, ?2, ?3, ?4,"
                   " 'pending', ?5, ?6, ?7, ?5) ON CONFLICT (run_id, deal_id, target) DO NOTHING", err) < 0)
        return -1;
    int pending, sent, rc, same = 0;
    if (others_of(s, run_id, target, deal_id, &pending, &sent, err) < 0) return -1;
    /* The last delivered payload for this deal: identical means nothing to send. */
    sqlite3_stmt *st = s->ob_last;
    if (sent) {
        rc = step_deal(st, target, deal_id);
        same = rc == SQLITE_ROW && sqlite3_column_type(st, 0) == SQLITE_TEXT &&
               strcmp((const char *)sqlite3_column_text(st, 0), compare_hash) == 0;
        sqlite3_reset(st);
        if (rc != SQLITE_ROW && rc != SQLITE_DONE) return store_db_error(s, err, "outbox lookup");
    }
    /* Whatever is still pending for the deal is superseded either way. */
    if (pending) {
        st = s->ob_sup;
        sqlite3_bind_int64(st, 3, run_id);
        rc = step_deal(st, target, deal_id);
        sqlite3_reset(st);
        if (rc != SQLITE_DONE) return store_db_error(s, err, "outbox supersede");
    }
    if (same) return 0;
    char key[256], now[21];
    snprintf(key, sizeof key, "%s:%s:%lld", target, deal_ext, (long long)run_id);
    store_now_iso(now);
    st = s->ob_ins;
    sqlite3_bind_int64(st, 1, run_id);
    sqlite3_bind_int64(st, 2, deal_id);
    sqlite3_bind_text(st, 3, target, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, payload, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, now, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 6, key, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 7, compare_hash, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) return store_db_error(s, err, "outbox queue");
    *queued = sqlite3_changes(s->db) > 0;
    return 0;
}

int outbox_unchanged(store *s, const char *target, int64_t deal_id, double probability, double score,
                     int64_t model_id, const char *drivers, const char *flags, int *same, prm_error *err)
{
    *same = 0;
    /* The newest live row through outbox_deal (target, deal_id, id), its
     * run's score row through the scores primary key: two index probes. */
    if (store_prep(s, &s->ob_live, "SELECT s.probability, s.score, s.model_id, s.drivers, s.flags"
                   " FROM writeback_outbox o JOIN scores s ON s.run_id = o.run_id AND s.deal_id = o.deal_id"
                   " WHERE o.target = ?1 AND o.deal_id = ?2 AND o.status IN ('pending', 'sending', 'sent')"
                   " ORDER BY o.id DESC LIMIT 1", err) < 0)
        return -1;
    sqlite3_stmt *st = s->ob_live;
    int rc = step_deal(st, target, deal_id);
    if (rc == SQLITE_ROW) {
        const unsigned char *d = sqlite3_column_text(st, 3), *f = sqlite3_column_text(st, 4);
        *same = sqlite3_column_double(st, 0) == probability && sqlite3_column_double(st, 1) == score &&
                sqlite3_column_type(st, 2) == SQLITE_INTEGER && sqlite3_column_int64(st, 2) == model_id &&
                d && f && strcmp((const char *)d, drivers) == 0 && strcmp((const char *)f, flags) == 0;
    }
    sqlite3_reset(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) return store_db_error(s, err, "outbox lookup");
    return 0;
}

static int take(store *s, const char *target, int limit, int claim, outbox_item **items, int *n,
                prm_error *err);

int outbox_claim(store *s, const char *target, int limit, outbox_item **items, int *n, prm_error *err)
{
    return take(s, target, limit, 1, items, n, err);
}

int outbox_peek(store *s, const char *target, int limit, outbox_item **items, int *n, prm_error *err)
{
    return take(s, target, limit, 0, items, n, err);
}

static int take(store *s, const char *target, int limit, int claim, outbox_item **items, int *n,
                prm_error *err)
{
    *items = NULL;
    *n = 0;
    if (limit < 1) return 0;
    int own = !in_txn(s);
    if (own && store_begin(s, err) < 0) return -1;
    char now[21], lease[21];
    int64_t t = clock_now();
    instant_iso(t, now);
    instant_iso(t - OUTBOX_LEASE_SECONDS, lease);
    sqlite3_stmt *st;
    if (prepare(s, "SELECT o.id, o.run_id, o.deal_id, o.target, d.external_id, o.idempotency_key,"
                   " o.payload, o.attempts FROM writeback_outbox o JOIN deals d ON d.id = o.deal_id"
                   " WHERE o.target = ?1 AND ((o.status = 'pending' AND (o.next_attempt_at IS NULL OR"
                   " o.next_attempt_at <= ?2)) OR (o.status = 'sending' AND o.claimed_at <= ?3))"
                   " ORDER BY o.id LIMIT ?4", &st, err) < 0)
        goto fail;
    sqlite3_bind_text(st, 1, target, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, now, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, lease, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 4, limit);
    outbox_item *v = calloc((size_t)limit, sizeof *v);
    if (!v) {
        sqlite3_finalize(st);
        prm_error_set(err, "out of memory");
        goto fail;
    }
    int k = 0, rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW && k < limit) {
        outbox_item *it = &v[k];
        it->id = sqlite3_column_int64(st, 0);
        it->run_id = sqlite3_column_int64(st, 1);
        it->deal_id = sqlite3_column_int64(st, 2);
        snprintf(it->target, sizeof it->target, "%s", (const char *)sqlite3_column_text(st, 3));
        snprintf(it->deal, sizeof it->deal, "%s", (const char *)sqlite3_column_text(st, 4));
        const unsigned char *key = sqlite3_column_text(st, 5);
        snprintf(it->key, sizeof it->key, "%s", key ? (const char *)key : "");
        const unsigned char *p = sqlite3_column_text(st, 6);
        it->payload = strdup(p ? (const char *)p : "{}");
        it->attempts = sqlite3_column_int(st, 7) + 1;
        if (!it->payload) {
            rc = SQLITE_NOMEM;
            break;
        }
        k++;
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
        outbox_free(v, k);
        store_db_error(s, err, "outbox claim");
        goto fail;
    }
    for (int i = 0; claim && i < k; i++) {
        if (prepare(s, "UPDATE writeback_outbox SET status = 'sending', claimed_at = ?1,"
                       " attempts = attempts + 1 WHERE id = ?2", &st, err) < 0) {
            outbox_free(v, k);
            goto fail;
        }
        sqlite3_bind_text(st, 1, now, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, v[i].id);
        if (step_done(s, st, err, "outbox claim") < 0) {
            outbox_free(v, k);
            goto fail;
        }
    }
    if (own && store_commit(s, err) < 0) {
        outbox_free(v, k);
        goto fail;
    }
    *items = v;
    *n = k;
    return 0;
fail:
    if (own) store_rollback(s);
    return -1;
}

int outbox_ack(store *s, int64_t id, prm_error *err)
{
    store_outbox_forget(s);        /* a row is delivered now */
    char now[21];
    store_now_iso(now);
    store_value v[] = { sv_text(now), sv_int(id) };
    return store_run(s, "UPDATE writeback_outbox SET status = 'sent', sent_at = ?1, last_error = NULL"
                        " WHERE id = ?2", 2, v, NULL, err);
}

int outbox_fail(store *s, int64_t id, const char *error, int permanent, int retry_after,
                int max_attempts, prm_error *err)
{
    if (max_attempts <= 0) max_attempts = OUTBOX_MAX_ATTEMPTS;
    store_outbox_forget(s);        /* a row may be pending again */
    char at[21];
    instant_iso(clock_now() + (retry_after > 0 ? retry_after : 0), at);
    store_value v[] = { sv_text(error), sv_text(at), sv_int(permanent ? 1 : 0), sv_int(max_attempts),
                        sv_int(id) };
    return store_run(s, "UPDATE writeback_outbox SET last_error = ?1, next_attempt_at = ?2,"
                        " status = CASE WHEN ?3 = 1 OR attempts >= ?4 THEN 'dead' ELSE 'pending' END"
                        " WHERE id = ?5", 5, v, NULL, err);
}

int outbox_count(store *s, const char *target, outbox_counts *c, prm_error *err)
{
    memset(c, 0, sizeof *c);
    sqlite3_stmt *st;
    if (prepare(s, "SELECT status, count(*) FROM writeback_outbox WHERE ?1 IS NULL OR target = ?1"
                   " GROUP BY status", &st, err) < 0)
        return -1;
    if (target) sqlite3_bind_text(st, 1, target, -1, SQLITE_STATIC);
    while (sqlite3_step(st) == SQLITE_ROW) {
        const char *k = (const char *)sqlite3_column_text(st, 0);
        long n = (long)sqlite3_column_int64(st, 1);
        if (!k) continue;
        if (strcmp(k, "pending") == 0) c->pending = n;
        else if (strcmp(k, "sending") == 0) c->sending = n;
        else if (strcmp(k, "sent") == 0) c->sent = n;
        else if (strcmp(k, "superseded") == 0) c->superseded = n;
        else if (strcmp(k, "dead") == 0) c->dead = n;
    }
    sqlite3_finalize(st);
    return 0;
}

void outbox_free(outbox_item *items, int n)
{
    for (int i = 0; items && i < n; i++) free(items[i].payload);
    free(items);
}
