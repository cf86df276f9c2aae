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

#define ALG_PLAIN "sha256"
#define ALG_KEYED "hmac-sha256"

/* The key, from the environment only: a key in the store would sit beside
 * the rows it protects. */
static const char *audit_key(size_t *len)
{
    const char *k = getenv("PRMCAST_AUDIT_KEY");
    if (!k || !*k) return NULL;
    *len = strlen(k);
    return k;
}

/* The hash covers every column but itself, each length-prefixed so that no
 * two different rows can serialise to the same bytes. Keyed rows also
 * cover the algorithm's name, so 'hmac-sha256' cannot be relabelled.
 * Returns 0, -1 out of memory, -2 keyed without a key. */
static int row_hash(int64_t id, const char *alg, const char *at, const char *actor, const char *action,
                    const char *subject, const char *detail, const char *prev, char out[65])
{
    const char *parts[] = { at, actor, action, subject, detail, prev };
    int keyed = alg && strcmp(alg, ALG_KEYED) == 0;
    size_t klen = 0;
    const char *key = keyed ? audit_key(&klen) : NULL;
    out[0] = 0;
    if (keyed && !key) return -2;
    hash_sha256 *h = keyed ? hash_hmac_new(key, klen) : hash_sha256_new();
    if (!h) return -1;
    char buf[48];
    int len;
    if (keyed) hash_sha256_update(h, ALG_KEYED ";", strlen(ALG_KEYED ";"));
    len = snprintf(buf, sizeof buf, "%lld;", (long long)id);
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
    size_t klen;
    const char *alg = audit_key(&klen) ? ALG_KEYED : ALG_PLAIN;
    /* An audit row without its hash would break the chain silently. */
    if (row_hash(id, alg, now, actor, action, subject, detail_json, prev, hash) < 0) {
        store_exec(s, "ROLLBACK TO audit; RELEASE audit", NULL);
        return prm_error_set(err, "audit: cannot compute the row hash (out of memory)");
    }
    store_value v[] = { I(id), T(now), T(actor), T(action), T(subject), T(detail_json),
                        T(prev), T(hash), T(alg) };
    if (store_run(s, "INSERT INTO audit_log (id, at, actor, action, subject, detail, prev_hash, hash, alg)"
               " VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9)", 9, v, NULL, err) < 0) {
        store_exec(s, "ROLLBACK TO audit; RELEASE audit", NULL);
        return -1;
    }
    return store_exec(s, "RELEASE audit", err);
}

int store_audit_head(store *s, char head[65], int64_t *rows, prm_error *err)
{
    sqlite3_stmt *st;
    snprintf(head, 65, "%s", genesis);
    *rows = 0;
    if (sqlite3_prepare_v2(s->db, "SELECT hash, (SELECT count(*) FROM audit_log) FROM audit_log"
                           " ORDER BY id DESC LIMIT 1", -1, &st, NULL) != SQLITE_OK)
        return store_db_error(s, err, "audit head");
    if (sqlite3_step(st) == SQLITE_ROW) {
        const char *h = (const char *)sqlite3_column_text(st, 0);
        snprintf(head, 65, "%s", h ? h : "");
        *rows = sqlite3_column_int64(st, 1);
    }
    sqlite3_finalize(st);
    return 0;
}

int store_audit_verify(store *s, int64_t *rows, char head[65], prm_error *err)
{
    return store_audit_verify_expect(s, NULL, rows, NULL, head, err);
}

int store_audit_verify_expect(store *s, const char *expect, int64_t *rows, int64_t *after,
                              char head[65], prm_error *err)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db, "SELECT id, at, actor, action, subject, detail, prev_hash, hash, alg"
                           " FROM audit_log ORDER BY id", -1, &st, NULL) != SQLITE_OK)
        return store_db_error(s, err, "audit verify");
    size_t klen;
    int have_key = audit_key(&klen) != NULL;
    char prev[65];
    snprintf(prev, sizeof prev, "%s", genesis);
    int64_t n = 0, expect_at = -1, expect_id = 1;
    int bad = 0, keyed_seen = 0, last_keyed = 0;
    if (expect && strcmp(expect, genesis) == 0) expect_at = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        int64_t id = sqlite3_column_int64(st, 0);
        const char *c[8];
        for (int i = 0; i < 8; i++) c[i] = (const char *)sqlite3_column_text(st, i + 1);
        const char *alg = c[7] ? c[7] : ALG_PLAIN;
        int keyed = strcmp(alg, ALG_KEYED) == 0;
        n++;
        if (id != expect_id) {
            bad = prm_error_set(err, "audit row %lld missing (next row is %lld)",
                                (long long)expect_id, (long long)id);
            break;
        }
        if (!keyed && strcmp(alg, ALG_PLAIN) != 0) {
            bad = prm_error_set(err, "audit row %lld: unknown hash algorithm '%s'", (long long)id, alg);
            break;
        }
        if (keyed && !have_key) {
            bad = prm_error_set(err, "audit row %lld is keyed (HMAC): set PRMCAST_AUDIT_KEY to verify it",
                                (long long)id);
            break;
        }
        if (!keyed && keyed_seen) {
            bad = prm_error_set(err, "audit row %lld is not keyed but follows keyed rows"
                                " (the chain was recomputed without the key?)", (long long)id);
            break;
        }
        char h[65];
        if (row_hash(id, alg, c[0], c[1], c[2], c[3], c[4], c[5] ? c[5] : "", h) < 0) {
            sqlite3_finalize(st);
            return prm_error_set(err, "audit verify: cannot compute hashes (out of memory)");
        }
        if (!c[5] || strcmp(c[5], prev) != 0) {
            bad = prm_error_set(err, "audit row %lld: prev_hash does not match row %lld",
                                (long long)id, (long long)id - 1);
            break;
        }
        if (!c[6] || strcmp(c[6], h) != 0) {
            bad = prm_error_set(err, "audit row %lld: content does not match its hash%s", (long long)id,
                                keyed ? " (or PRMCAST_AUDIT_KEY is not the key it was written with)" : "");
            break;
        }
        keyed_seen |= keyed;
        last_keyed = keyed;
        snprintf(prev, sizeof prev, "%s", h);
        if (expect && strcmp(expect, h) == 0) expect_at = n;
        expect_id = id + 1;
    }
    sqlite3_finalize(st);
    *rows = n;
    if (head) snprintf(head, 65, "%s", prev);
    if (!bad && have_key && n > 0 && !last_keyed)
        bad = prm_error_set(err, "audit head row %lld is not keyed although PRMCAST_AUDIT_KEY is set"
                            " (written without the key, or recomputed)", (long long)n);
    if (!bad && expect && expect_at < 0)
        bad = prm_error_set(err, "the expected head %.16s... is not in the chain of %lld row(s)"
                            " (rows deleted after it?)", expect, (long long)n);
    if (after) *after = expect_at >= 0 ? n - expect_at : 0;
    return bad ? 1 : 0;
}
