/* store_audit.c - the append-only, hash-chained audit log. */
#include "store_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hash.h"
#include "timeutil.h"

#define T sv_text
#define I sv_int

/* ---- audit chain ------------------------------------------------------ */

/* The hash covers every column but itself, each length-prefixed so that no
 * two different rows can serialise to the same bytes. */
static int row_hash(int64_t id, const char *at, const char *actor, const char *action,
                    const char *subject, const char *detail, const char *prev, char out[65])
{
    const char *parts[] = { at, actor, action, subject, detail, prev };
    hash_sha256 *h = hash_sha256_new();
    if (!h) {
        out[0] = 0;
        return -1;
    }
    char buf[48];
    int len = snprintf(buf, sizeof buf, "%lld;", (long long)id);
    hash_sha256_update(h, buf, (size_t)len);
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
        const char *p = parts[i] ? parts[i] : "";
        len = snprintf(buf, sizeof buf, "%zu%c", strlen(p), parts[i] ? ':' : '~');
        hash_sha256_update(h, buf, (size_t)len);
        hash_sha256_update(h, p, strlen(p));
    }
    return hash_sha256_hex(h, out);
}

static const char genesis[] = "0000000000000000000000000000000000000000000000000000000000000000";

int store_audit(store *s, const char *actor, const char *action, const char *subject,
                const char *detail_json, prm_error *err)
{
    /* The read of the head and the append must be one transaction, or two
     * writers could both chain onto the same head. A SAVEPOINT nests inside
     * a caller's transaction and starts one otherwise. */
    if (store_exec(s, "SAVEPOINT audit", err) < 0) return -1;
    sqlite3_stmt *st;
    char prev[65];
    int64_t id = 1;
    snprintf(prev, sizeof prev, "%s", genesis);
    if (sqlite3_prepare_v2(s->db, "SELECT id, hash FROM audit_log ORDER BY id DESC LIMIT 1",
                           -1, &st, NULL) != SQLITE_OK) {
        store_exec(s, "ROLLBACK TO audit; RELEASE audit", NULL);
        return store_db_error(s, err, "audit");
    }
    if (sqlite3_step(st) == SQLITE_ROW) {
        id = sqlite3_column_int64(st, 0) + 1;
        snprintf(prev, sizeof prev, "%s", (const char *)sqlite3_column_text(st, 1));
    }
    sqlite3_finalize(st);
    char now[21], hash[65];
    if (!actor) actor = getenv("PRMCAST_ACTOR");
    if (!actor) actor = getenv("USER");
    if (!actor) actor = "prmcast";
    store_now_iso(now);
    /* An audit row without its hash would break the chain silently. */
    if (row_hash(id, now, actor, action, subject, detail_json, prev, hash) < 0) {
        store_exec(s, "ROLLBACK TO audit; RELEASE audit", NULL);
        return prm_error_set(err, "audit: cannot compute the row hash (out of memory)");
    }
    store_value v[] = { I(id), T(now), T(actor), T(action), T(subject), T(detail_json),
                        T(prev), T(hash) };
    if (store_run(s, "INSERT INTO audit_log (id, at, actor, action, subject, detail, prev_hash, hash)"
               " VALUES (?1,?2,?3,?4,?5,?6,?7,?8)", 8, v, NULL, err) < 0) {
        store_exec(s, "ROLLBACK TO audit; RELEASE audit", NULL);
        return -1;
    }
    return store_exec(s, "RELEASE audit", err);
}

int store_audit_verify(store *s, int64_t *rows, char head[65], prm_error *err)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db, "SELECT id, at, actor, action, subject, detail, prev_hash, hash"
                           " FROM audit_log ORDER BY id", -1, &st, NULL) != SQLITE_OK)
        return store_db_error(s, err, "audit verify");
    char prev[65];
    snprintf(prev, sizeof prev, "%s", genesis);
    int64_t n = 0, expect = 1;
    int bad = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        int64_t id = sqlite3_column_int64(st, 0);
        const char *c[7];
        for (int i = 0; i < 7; i++) c[i] = (const char *)sqlite3_column_text(st, i + 1);
        char h[65];
        if (row_hash(id, c[0], c[1], c[2], c[3], c[4], c[5] ? c[5] : "", h) < 0) {
            sqlite3_finalize(st);
            return prm_error_set(err, "audit verify: cannot compute hashes (out of memory)");
        }
        n++;
        if (id != expect) {
            bad = prm_error_set(err, "audit row %lld missing (next row is %lld)",
                                (long long)expect, (long long)id);
            break;
        }
        if (!c[5] || strcmp(c[5], prev) != 0) {
            bad = prm_error_set(err, "audit row %lld: prev_hash does not match row %lld",
                                (long long)id, (long long)id - 1);
            break;
        }
        if (!c[6] || strcmp(c[6], h) != 0) {
            bad = prm_error_set(err, "audit row %lld: content does not match its hash", (long long)id);
            break;
        }
        snprintf(prev, sizeof prev, "%s", h);
        expect = id + 1;
    }
    sqlite3_finalize(st);
    *rows = n;
    if (head) snprintf(head, 65, "%s", prev);
    return bad ? 1 : 0;
}

