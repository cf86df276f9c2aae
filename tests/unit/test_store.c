/* test_store.c - migrations, idempotent upserts, history only on change,
 * the audit chain, batched score rows, the outbox's coalescing. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "outbox.h"
#include "store.h"
#include "tap.h"

static char dbpath[256];

static store *fresh(int version)
{
    store *s;
    prm_error err;
    snprintf(dbpath, sizeof dbpath, "/tmp/prmcast-test-store-%d.db", (int)getpid());
    char b[300];
    unlink(dbpath);
    snprintf(b, sizeof b, "%s-wal", dbpath); unlink(b);
    snprintf(b, sizeof b, "%s-shm", dbpath); unlink(b);
    if (store_open_raw(dbpath, &s, &err) < 0 || store_migrate(s, version, &err) < 0) {
        printf("# %s\n", err.msg);
        exit(1);
    }
    return s;
}

static int64_t count(store *s, const char *sql)
{
    store_stmt *st;
    int64_t n = -1;
    if (store_prepare(s, sql, &st, NULL) < 0) return -1;
    if (store_step(st, NULL) == 1) n = store_column(st, 0).i;
    store_finalize(st);
    return n;
}

#define TXT(x) ((store_value){ SV_TEXT, (x), 0, 0 })
#define REAL(x) ((store_value){ SV_REAL, NULL, (x), 0 })
#define NUL ((store_value){ SV_NULL, NULL, 0, 0 })

static int upsert_partner(store *s, const char *id, const char *tier, int *written, prm_error *err)
{
    const store_object *o = store_object_find("partner");
    store_value v[12] = { TXT("t"), TXT(id), TXT("Name"), TXT(tier), TXT("EMEA"), TXT("DE"),
                          TXT("reseller"), NUL, TXT("EUR"), TXT("Active"), TXT("2024-01-01"),
                          TXT("2024-01-01T00:00:00Z") };
    return store_upsert(s, o, v, written, err);
}

/* A deal_change of deal `id` at `at` setting the stage (and `changed`). */
static void change_of(const store_object *c, store_value *v, const char *id, const char *at,
                      const char *stage, const char *changed)
{
    for (int i = 0; i < c->nfields; i++) v[i] = NUL;
    v[store_field_index(c, "source")] = TXT("t");
    v[store_field_index(c, "deal_id")] = TXT(id);
    v[store_field_index(c, "observed_at")] = TXT(at);
    v[store_field_index(c, "stage")] = TXT(stage);
    if (changed) v[store_field_index(c, "changed")] = TXT(changed);
}

static int upsert_deal(store *s, const char *id, const char *partner, const char *stage,
                       const char *status, double amount, const char *updated, int *written,
                       prm_error *err)
{
    const store_object *o = store_object_find("deal");
    store_value v[20];
    for (int i = 0; i < 20; i++) v[i] = NUL;
    v[store_field_index(o, "source")] = TXT("t");
    v[store_field_index(o, "external_id")] = TXT(id);
    v[store_field_index(o, "partner_id")] = TXT(partner);
    v[store_field_index(o, "amount")] = REAL(amount);
    v[store_field_index(o, "stage")] = TXT(stage);
    v[store_field_index(o, "status")] = TXT(status);
    v[store_field_index(o, "created_at")] = TXT("2025-01-01");
    v[store_field_index(o, "updated_at")] = TXT(updated);
    return store_upsert(s, o, v, written, err);
}

int main(void)
{
    prm_error err;
    int w;

    /* Migrations from empty, and from each earlier version with data. */
    store *s = fresh(STORE_VERSION);
    T_EQ_INT(store_version(s), STORE_VERSION, "fresh store at the newest version");
    store_close(s);
    for (int v = 1; v < STORE_VERSION; v++) {
        s = fresh(v);
        int ok = store_version(s) == v && upsert_partner(s, "P1", "Gold", &w, &err) == 0;
        ok = ok && store_migrate(s, STORE_VERSION, &err) == 0;
        char name[80];
        snprintf(name, sizeof name, "migrate v%d -> v%d keeps data", v, STORE_VERSION);
        T_OK(ok && store_version(s) == STORE_VERSION &&
             count(s, "SELECT count(*) FROM partners WHERE tier = 'Gold'") == 1, name);
        store_close(s);
    }
    /* 7 -> 8: deal_history loses its rowid and is keyed by (deal_id,
     * observed_at); a store made by the previous schema keeps every row, and
     * its readers get them in key order. */
    s = fresh(7);
    int ok7 = store_exec(s, "INSERT INTO partners (id, source, external_id) VALUES (1, 't', 'P1');"
        "INSERT INTO deals (id, source, external_id, partner_id, stage, status, created_at)"
        " VALUES (1, 't', 'D1', 1, 'registered', 'open', '2025-01-01'),"
        " (2, 't', 'D2', 1, 'qualified', 'open', '2025-01-01');"
        "INSERT INTO deal_history (id, deal_id, observed_at, stage, amount, status) VALUES"
        " (1, 2, '2025-02-01T00:00:00Z', 'qualified', 5, 'open'),"
        " (2, 1, '2025-01-03T00:00:00Z', 'qualified', NULL, 'open'),"
        " (3, 1, '2025-01-02T00:00:00Z', 'registered', 1.5, 'open');", &err) == 0;
    T_OK(ok7 && store_migrate(s, STORE_VERSION, &err) == 0, "migrate v7 store with history");
    store_stmt *hq;
    char order[200] = "";
    if (store_prepare(s, "SELECT deal_id, observed_at, stage, amount FROM deal_history", &hq, &err) == 0) {
        while (store_step(hq, NULL) == 1) {
            store_value a = store_column(hq, 3);
            size_t n = strlen(order);
            snprintf(order + n, sizeof order - n, "%lld %s %s %s;", (long long)store_column(hq, 0).i,
                     store_column(hq, 1).s, store_column(hq, 2).s, a.kind == SV_NULL ? "-" : "x");
        }
        store_finalize(hq);
    }
    T_OK(strcmp(order, "1 2025-01-02T00:00:00Z registered x;1 2025-01-03T00:00:00Z qualified -;"
                       "2 2025-02-01T00:00:00Z qualified x;") == 0,
         "v7 history rows kept, read back in (deal, instant) order");
    T_OK(store_prepare(s, "SELECT rowid FROM deal_history", &hq, &err) < 0,
         "deal_history has no rowid after 7 -> 8");
    T_EQ_INT(count(s, "SELECT count(*) FROM deal_history WHERE amount = 1.5"), 1, "values kept");
    store_close(s);

    s = fresh(STORE_VERSION);
    T_OK(store_migrate(s, STORE_VERSION, &err) == 0, "migrating a current store is a no-op");
    store_exec(s, "PRAGMA user_version = 99", &err);
    store_close(s);
    T_OK(store_open(dbpath, &s, &err) < 0 && strstr(err.msg, "newer"), "refuses a newer schema");

    /* Upserts. */
    s = fresh(STORE_VERSION);
    T_OK(upsert_partner(s, "P1", "Gold", &w, &err) == 0 && w == 1, "insert partner");
    T_OK(upsert_partner(s, "P1", "Gold", &w, &err) == 0 && w == 0, "same partner again writes nothing");
    T_OK(upsert_partner(s, "P1", "Platinum", &w, &err) == 0 && w == 1, "changed tier is written");
    T_EQ_INT(count(s, "SELECT count(*) FROM partners"), 1, "still one partner");

    T_OK(upsert_deal(s, "D1", "P1", "registered", "open", 1000, "2025-01-01T00:00:00Z", &w, &err) == 0 && w,
         "insert deal");
    T_EQ_INT(count(s, "SELECT count(*) FROM deal_history"), 1, "first history row on insert");
    T_OK(upsert_deal(s, "D1", "P1", "registered", "open", 1000, "2025-01-01T00:00:00Z", &w, &err) == 0 && !w,
         "identical deal: no write");
    T_OK(upsert_deal(s, "D1", "P1", "registered", "open", 1000, "2025-01-05T00:00:00Z", &w, &err) == 0 && w,
         "only updated_at changed: row written");
    T_EQ_INT(count(s, "SELECT count(*) FROM deal_history"), 1, "but no history row (nothing tracked changed)");
    T_OK(upsert_deal(s, "D1", "P1", "qualified", "open", 1000, "2025-01-10T00:00:00Z", &w, &err) == 0 && w,
         "stage change");
    T_OK(upsert_deal(s, "D1", "P1", "qualified", "open", 1200, "2025-01-12T00:00:00Z", &w, &err) == 0 && w,
         "amount change");
    T_EQ_INT(count(s, "SELECT count(*) FROM deal_history"), 3, "history rows only on change");
    T_EQ_INT(count(s, "SELECT count(*) FROM deal_history WHERE observed_at = '2025-01-10T00:00:00Z'"
                      " AND stage = 'qualified' AND amount = 1000"), 1, "history row holds the new state");

    /* A partial change (an API's field history): the fields it does not set
     * come from the deal's state at that instant, not from later. */
    {
        const store_object *c = store_object_find("deal_change");
        store_value v[16];
        for (int i = 0; i < c->nfields; i++) v[i] = NUL;
        v[store_field_index(c, "source")] = TXT("t");
        v[store_field_index(c, "deal_id")] = TXT("D1");
        v[store_field_index(c, "observed_at")] = TXT("2025-01-11T00:00:00Z");
        v[store_field_index(c, "stage")] = TXT("proposal");
        v[store_field_index(c, "status")] = TXT("open");
        v[store_field_index(c, "changed")] = TXT("stage,status");
        T_OK(store_upsert(s, c, v, &w, &err) == 0 && w, "partial change stored");
        T_EQ_INT(count(s, "SELECT count(*) FROM deal_history WHERE observed_at = '2025-01-11T00:00:00Z'"
                          " AND stage = 'proposal' AND status = 'open' AND amount = 1000"), 1,
                 "its amount is the one as of its instant (1000, not the later 1200)");
        v[store_field_index(c, "changed")] = TXT("stage,colour");
        T_OK(store_upsert(s, c, v, &w, &err) < 0 && strstr(err.msg, "'colour'"),
             "an unknown name in 'changed' is refused, named");
        store_exec(s, "DELETE FROM deal_history WHERE observed_at = '2025-01-11T00:00:00Z'", &err);
        /* Older than every stored state: the fields it does not set come
         * from the earliest later state, but not the partner's probability,
         * which would be the one the deal ended with. */
        store_exec(s, "UPDATE deal_history SET partner_probability = 1.0", &err);
        v[store_field_index(c, "observed_at")] = TXT("2024-12-20T00:00:00Z");
        v[store_field_index(c, "changed")] = TXT("stage,status");
        T_OK(store_upsert(s, c, v, &w, &err) == 0 && w, "a change older than every stored state");
        T_EQ_INT(count(s, "SELECT count(*) FROM deal_history WHERE observed_at = '2024-12-20T00:00:00Z'"
                          " AND amount = 1000 AND partner_probability IS NULL"), 1,
                 "takes the later amount, not the later partner probability (unknown then)");
        store_exec(s, "DELETE FROM deal_history WHERE observed_at = '2024-12-20T00:00:00Z'", &err);
        store_exec(s, "UPDATE deal_history SET partner_probability = NULL", &err);

        /* Tenant fields: a row only on change, at the given instant. */
        const store_object *x = store_object_find("deal_field");
        store_value f[6] = { TXT("t"), TXT("D1"), TXT("deal_type"), TXT("Renewal"),
                             TXT("2025-01-10T00:00:00Z"), TXT("category") };
        T_OK(store_upsert(s, x, f, &w, &err) == 0 && w, "tenant field stored");
        f[4] = TXT("2025-01-12T00:00:00Z");
        T_OK(store_upsert(s, x, f, &w, &err) == 0 && !w, "unchanged tenant field writes nothing");
        f[3] = TXT("Expansion");
        T_OK(store_upsert(s, x, f, &w, &err) == 0 && w, "changed tenant field written");
        T_EQ_INT(count(s, "SELECT count(*) FROM attr_history WHERE field = 'x.deal_type'"), 2,
                 "two rows: Renewal at 01-10, Expansion at 01-12");

        /* A deal just inserted: an absent field writes nothing (no lookup),
         * a value then a later absence of the same field are both rows. */
        T_OK(upsert_deal(s, "D9", "P1", "registered", "open", 10, "2025-02-01T00:00:00Z", &w, &err) == 0 && w,
             "new deal D9");
        store_value g[6] = { TXT("t"), TXT("D9"), TXT("seats"), NUL, TXT("2025-02-01T00:00:00Z"), TXT("number") };
        T_OK(store_upsert(s, x, g, &w, &err) == 0 && !w, "an absent field of a new deal writes nothing");
        g[3] = TXT("12");
        T_OK(store_upsert(s, x, g, &w, &err) == 0 && w, "then its value is a row");
        g[3] = NUL;
        g[4] = TXT("2025-02-03T00:00:00Z");
        T_OK(store_upsert(s, x, g, &w, &err) == 0 && w, "and its later absence is a row too");
        g[2] = TXT("other_field");
        T_OK(store_upsert(s, x, g, &w, &err) == 0 && !w, "a field never set, absent: nothing");
        T_EQ_INT(count(s, "SELECT count(*) FROM attr_history a JOIN deals d ON d.id = a.entity_id"
                          " WHERE d.external_id = 'D9' AND a.field LIKE 'x.%'"), 2,
                 "D9: x.seats 12 at 02-01, cleared at 02-03");

        /* Payouts: an unknown kind is 'other' with the raw value; an unpaid one has a status. */
        const store_object *p = store_object_find("payout");
        store_value y[10];
        for (int i = 0; i < p->nfields; i++) y[i] = NUL;
        y[store_field_index(p, "source")] = TXT("t");
        y[store_field_index(p, "external_id")] = TXT("R1");
        y[store_field_index(p, "partner_id")] = TXT("P1");
        y[store_field_index(p, "kind")] = TXT("distributor_margin");
        y[store_field_index(p, "amount")] = REAL(50);
        T_OK(store_upsert(s, p, y, &w, &err) < 0 && strstr(err.msg, "paid_at or a status"),
             "a payout with neither paid date nor status is refused");
        y[store_field_index(p, "status")] = TXT("approved");
        T_OK(store_upsert(s, p, y, &w, &err) == 0 && w, "an unpaid payout with a status is stored");
        T_EQ_INT(count(s, "SELECT count(*) FROM payouts WHERE kind = 'other' AND"
                          " kind_raw = 'distributor_margin' AND paid_at IS NULL AND status = 'approved'"), 1,
                 "unknown kind kept as other, raw value and status kept");
    }

    T_OK(upsert_deal(s, "D2", "NOPE", "registered", "open", 1, "2025-01-01T00:00:00Z", &w, &err) < 0 &&
         strstr(err.msg, "unknown partner 'NOPE'"), "unknown partner is named");
    T_OK(upsert_deal(s, "D2", "P1", "won-ish", "open", 1, "2025-01-01T00:00:00Z", &w, &err) < 0 &&
         strstr(err.msg, "stage") && strstr(err.msg, "won-ish"), "bad stage is named");
    T_OK(upsert_deal(s, "D2", "P1", "registered", "open", 1, "2025-1-1", &w, &err) < 0 &&
         strstr(err.msg, "updated_at"), "bad instant is named");
    T_OK(upsert_deal(s, "D2", "P1", "registered", "open", 0.0 / 0.0, "2025-01-01T00:00:00Z", &w, &err) < 0 &&
         strstr(err.msg, "finite"), "NaN amount refused");
    T_EQ_INT(count(s, "SELECT count(*) FROM deals WHERE external_id = 'D2'"), 0, "refused records left nothing behind");

    /* Sync state. */
    char wm[64];
    int64_t cur;
    T_OK(store_sync_get(s, "t", "deal", wm, sizeof wm, &cur, &err) == 0 && wm[0] == 0 && cur == 0,
         "no sync state yet");
    store_sync_set(s, "t", "deal", "abc", 42, &err);
    T_OK(store_sync_get(s, "t", "deal", wm, sizeof wm, &cur, &err) == 0 && strcmp(wm, "abc") == 0 && cur == 42,
         "sync state round trip");

    /* Audit chain. */
    int64_t rows;
    char head[65];
    for (int i = 0; i < 5; i++) {
        char d[32];
        snprintf(d, sizeof d, "{\"i\":%d}", i);
        store_audit(s, "tester", "test.action", "subject", d, &err);
    }
    T_OK(store_audit_verify(s, &rows, head, &err) == 0 && rows == 5, "chain of 5 verifies");
    T_OK(store_exec(s, "UPDATE audit_log SET actor = 'mallory' WHERE id = 3", &err) < 0 &&
         strstr(err.msg, "append-only"), "UPDATE on audit_log is refused");
    T_OK(store_exec(s, "DELETE FROM audit_log WHERE id = 3", &err) < 0, "DELETE on audit_log is refused");
    /* Someone with the file drops the guard and edits a row. */
    store_exec(s, "DROP TRIGGER audit_log_no_update; UPDATE audit_log SET detail = '{\"i\":99}' WHERE id = 3", &err);
    T_OK(store_audit_verify(s, &rows, head, &err) == 1 && strstr(err.msg, "row 3"), "edited row detected");
    store_exec(s, "UPDATE audit_log SET detail = '{\"i\":2}' WHERE id = 3", &err);
    T_OK(store_audit_verify(s, &rows, head, &err) == 0, "restored row verifies again");
    store_exec(s, "DROP TRIGGER audit_log_no_delete; DELETE FROM audit_log WHERE id = 2", &err);
    T_OK(store_audit_verify(s, &rows, head, &err) == 1 && strstr(err.msg, "row 2 missing"), "deleted row detected");
    store_close(s);

    /* Keyed chain (issue 8): HMAC under $PRMCAST_AUDIT_KEY, head anchored outside. */
    s = fresh(STORE_VERSION);
    setenv("PRMCAST_AUDIT_KEY", "k3y-for-the-test", 1);
    for (int i = 0; i < 4; i++) store_audit(s, "tester", "test.action", "subject", "{}", &err);
    char recorded[65];
    int64_t nrows, after;
    T_OK(store_audit_head(s, recorded, &nrows, &err) == 0 && nrows == 4 && strlen(recorded) == 64,
         "audit head: the last hash and the row count");
    T_OK(store_audit_verify_expect(s, recorded, &rows, &after, head, &err) == 0 && after == 0 &&
         strcmp(head, recorded) == 0, "keyed chain verifies against its recorded head");
    store_audit(s, "tester", "test.action", "subject", "{}", &err);
    T_OK(store_audit_verify_expect(s, recorded, &rows, &after, head, &err) == 0 && after == 1,
         "a row appended after the recorded head is fine");
    setenv("PRMCAST_AUDIT_KEY", "another-key", 1);
    T_OK(store_audit_verify(s, &rows, head, &err) == 1 && strstr(err.msg, "row 1: content"),
         "a different key fails at the first row");
    unsetenv("PRMCAST_AUDIT_KEY");
    T_OK(store_audit_verify(s, &rows, head, &err) == 1 && strstr(err.msg, "set PRMCAST_AUDIT_KEY"),
         "keyed rows without the key: not verified");
    setenv("PRMCAST_AUDIT_KEY", "k3y-for-the-test", 1);
    store_exec(s, "DROP TRIGGER audit_log_no_delete; DELETE FROM audit_log WHERE id >= 4", &err);
    T_OK(store_audit_verify(s, &rows, head, &err) == 0, "a truncated chain still links");
    T_OK(store_audit_verify_expect(s, recorded, &rows, &after, head, &err) == 1 &&
         strstr(err.msg, "not in the chain"), "but the recorded head is gone");
    store_exec(s, "DROP TRIGGER audit_log_no_update; UPDATE audit_log SET alg = 'sha256' WHERE id = 3", &err);
    T_OK(store_audit_verify(s, &rows, head, &err) == 1, "relabelling a keyed row as sha256 fails");
    unsetenv("PRMCAST_AUDIT_KEY");
    store_close(s);

    /* Batched history rows (store_history_batch): the same rows and the
     * same written counts as one statement per row, a repeated instant in
     * one batch ending as the later row says, waiting rows dropped by a
     * rollback, written by a commit, and read by a partial change. */
    {
        static const char *const at[] = { "2025-02-01T00:00:00Z", "2025-02-02T00:00:00Z",
                                          "2025-02-01T00:00:00Z", "2025-02-03T00:00:00Z",
                                          "2025-01-01T00:00:00Z" };
        static const char *const st[] = { "qualified", "proposal", "solution", "proposal",
                                          "registered" };
        const store_object *c = store_object_find("deal_change");
        char dump[2][2048];
        int64_t wsum[2] = { 0, 0 };
        for (int pass = 0; pass < 2; pass++) {
            store *x = fresh(STORE_VERSION);
            upsert_partner(x, "P1", "Gold", &w, &err);
            if (pass) store_history_batch(x, 1, &err);
            store_begin(x, &err);
            /* the deal's own first state waits too (not counted) */
            upsert_deal(x, "D1", "P1", "registered", "open", 10, "2025-01-01T00:00:00Z", &w, &err);
            for (int i = 0; i < 5; i++) {
                store_value v[16];
                change_of(c, v, "D1", at[i], st[i], NULL);
                v[store_field_index(c, "status")] = TXT("open");
                v[store_field_index(c, "amount")] = REAL(10);
                int ok = store_upsert(x, c, v, &w, &err) == 0;
                T_OK(ok && w == (pass ? STORE_PENDING : w), pass ? "batched row waits" : "row written");
                if (!pass) wsum[0] += w;
            }
            if (pass) {
                /* a script's statement writes what waits first (its count stays
                 * for the caller's flush) */
                T_EQ_INT(count(x, "SELECT count(*) FROM deal_history"), 4, "a statement sees the waiting rows");
                T_OK(store_history_flush(x, &wsum[1], &err) == 0, "flush");
            }
            store_commit(x, &err);
            dump[pass][0] = 0;
            store_stmt *q;
            if (store_prepare(x, "SELECT observed_at, stage FROM deal_history ORDER BY 1", &q, &err) == 0) {
                while (store_step(q, NULL) == 1) {
                    size_t n = strlen(dump[pass]);
                    snprintf(dump[pass] + n, sizeof dump[pass] - n, "%s %s;", store_column(q, 0).s,
                             store_column(q, 1).s);
                }
                store_finalize(q);
            }
            if (pass) {
                /* a rollback drops what waits; a commit writes it */
                store_begin(x, &err);
                upsert_deal(x, "D2", "P1", "registered", "open", 5, "2025-03-01T00:00:00Z", &w, &err);
                store_rollback(x);
                T_EQ_INT(count(x, "SELECT count(*) FROM deal_history WHERE observed_at = '2025-03-01T00:00:00Z'"),
                         0, "rolled-back rows are not written later");
                store_begin(x, &err);
                upsert_deal(x, "D3", "P1", "registered", "open", 5, "2025-03-02T00:00:00Z", &w, &err);
                store_commit(x, &err);
                T_EQ_INT(count(x, "SELECT count(*) FROM deal_history WHERE observed_at = '2025-03-02T00:00:00Z'"),
                         1, "a commit writes the waiting rows");
                /* a partial change reads the history: what waits is written first */
                store_begin(x, &err);
                upsert_deal(x, "D4", "P1", "registered", "open", 7, "2025-03-03T00:00:00Z", &w, &err);
                store_value v[16];
                change_of(c, v, "D4", "2025-03-04T00:00:00Z", "qualified", "stage");
                store_upsert(x, c, v, &w, &err);
                store_commit(x, &err);
                T_EQ_INT(count(x, "SELECT count(*) FROM deal_history WHERE observed_at = '2025-03-04T00:00:00Z'"
                                  " AND amount = 7"), 1, "a partial change sees the waiting first state");
            }
            store_close(x);
        }
        T_OK(strcmp(dump[0], dump[1]) == 0 && strstr(dump[0], "2025-02-01T00:00:00Z solution;"),
             "batched history rows equal one statement per row");
        T_EQ_INT(wsum[1], wsum[0], "the flush counts the rows that changed the store");
        T_EQ_INT(wsum[0], 4, "of five rows, the copy of the first state changed nothing");
    }

    /* A first load's deals' own states wait inside a transaction (written
     * by its commit) and never outside one (nothing would write them). */
    {
        store *x = fresh(STORE_VERSION);
        int bulk = 0;
        store_bulk_begin(x, &bulk, &err);
        upsert_partner(x, "P1", "Gold", &w, &err);
        upsert_deal(x, "D1", "P1", "registered", "open", 1, "2025-01-01T00:00:00Z", &w, &err);
        store_begin(x, &err);
        upsert_deal(x, "D2", "P1", "registered", "open", 2, "2025-01-02T00:00:00Z", &w, &err);
        /* a change at the waiting state's instant, written at once, wins */
        const store_object *c = store_object_find("deal_change");
        store_value v[16];
        change_of(c, v, "D2", "2025-01-02T00:00:00Z", "qualified", NULL);
        v[store_field_index(c, "status")] = TXT("open");
        T_OK(store_upsert(x, c, v, &w, &err) == 0 && w == 1, "a change written beside a waiting state");
        store_commit(x, &err);
        store_bulk_end(x, &err);
        store_close(x);
        T_OK(store_open_raw(dbpath, &x, &err) == 0, "reopened");
        T_OK(bulk == 1 && count(x, "SELECT count(*) FROM deal_history") == 2,
             "first-load states written, in and outside a transaction");
        T_EQ_INT(count(x, "SELECT count(*) FROM deal_history WHERE stage = 'qualified'"), 1,
                 "the later write stands over the waiting state");
        store_close(x);
    }


    /* Score rows go in batches: a run whose deal count is not a multiple of
     * the batch size stores every row, in order; a rollback drops the rows
     * still waiting, and the next run's rows are its own. */
    {
        store *x = fresh(STORE_VERSION);
        int ok = store_exec(x, "INSERT INTO partners (id, source, external_id) VALUES (1, 't', 'P1');"
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 300)"
            " INSERT INTO deals (id, source, external_id, partner_id, stage, status, created_at)"
            " SELECT i, 't', 'D' || i, 1, 'registered', 'open', '2025-01-01' FROM n;"
            "INSERT INTO models (id, kind, version, created_at, features, data_hash, blob)"
            " VALUES (7, 'base', '1', 't', '[]', 'h', '{}')", &err) == 0;
        int64_t run = 0, run2 = 0;
        ok = ok && store_begin(x, &err) == 0 && store_score_run_begin(x, 7, "2025-06-30", "t0", &run, &err) == 0;
        char dr[32];
        for (int i = 1; ok && i <= 133; i++) {
            snprintf(dr, sizeof dr, "[%d]", i);
            ok = store_score_add(x, run, i, i / 1000.0, i / 10.0, dr, i % 2 ? "[]" : NULL, 7, "t0", &err) == 0;
        }
        if (!ok) printf("# %s\n", err.msg);
        T_OK(ok, "133 score rows added");
        T_OK(count(x, "SELECT count(*) FROM scores") < 133, "rows wait for the batch to fill");
        ok = store_score_run_end(x, run, "t1", 133, 0, 0, 0, &err) == 0;
        T_OK(ok && count(x, "SELECT count(*) FROM scores") == 133, "the run's end writes the last, short batch");
        T_OK(store_commit(x, &err) == 0, "committed");
        T_EQ_INT(count(x, "SELECT count(*) FROM scores WHERE run_id = 1 AND drivers = '[' || deal_id || ']'"
                          " AND probability = deal_id / 1000.0 AND score = deal_id / 10.0 AND model_id = 7"
                          " AND scored_at = 't0' AND (flags IS NULL) = (deal_id % 2 = 0)"), 133,
                 "every row's values as added (NULL flags kept)");
        T_EQ_INT(count(x, "SELECT count(*) FROM scores WHERE rowid <> deal_id"), 0, "rows in the order added");
        ok = store_begin(x, &err) == 0 && store_score_run_begin(x, 7, "2025-07-31", "t2", &run2, &err) == 0;
        for (int i = 1; ok && i <= 70; i++) ok = store_score_add(x, run2, i, 0.5, 5, "[]", "[]", 7, "t2", &err) == 0;
        store_rollback(x);
        T_OK(ok && count(x, "SELECT count(*) FROM scores") == 133, "a rolled-back run leaves no row");
        ok = store_begin(x, &err) == 0 && store_score_run_begin(x, 7, "2025-07-31", "t3", &run2, &err) == 0;
        for (int i = 1; ok && i <= 3; i++) ok = store_score_add(x, run2, i, 0.5, 5, "[]", "[]", 7, "t3", &err) == 0;
        ok = ok && store_score_run_end(x, run2, "t4", 3, 0, 0, 0, &err) == 0 && store_commit(x, &err) == 0;
        T_OK(ok && count(x, "SELECT count(*) FROM scores WHERE run_id = 2") == 3 &&
             count(x, "SELECT count(*) FROM scores WHERE scored_at = 't2'") == 0,
             "the next run stores its own rows, none of the rolled-back one's");
        store_close(x);
    }

    /* The outbox's coalescing, with what the queue reads once per run. */
    {
        store *x = fresh(STORE_VERSION);
        store_exec(x, "INSERT INTO partners (id, source, external_id) VALUES (1, 't', 'P1');"
            "INSERT INTO deals (id, source, external_id, partner_id, stage, status, created_at) VALUES"
            " (1, 't', 'D1', 1, 'registered', 'open', '2025-01-01'),"
            " (2, 't', 'D2', 1, 'registered', 'open', '2025-01-01'),"
            " (3, 't', 'D3', 1, 'registered', 'open', '2025-01-01')", &err);
        int q[8] = { 0 }, ok;
        const char *live = "SELECT count(*) FROM writeback_outbox WHERE status = 'pending'";
        /* run 1 into an empty outbox: every payload queued */
        ok = store_begin(x, &err) == 0 && outbox_queue(x, 1, 1, "D1", "prm", "{\"a\":1}", "h1", &q[0], &err) == 0 &&
             outbox_queue(x, 1, 2, "D2", "prm", "{\"b\":1}", "h2", &q[1], &err) == 0 &&
             outbox_queue(x, 1, 3, "D3", "prm", "{\"c\":1}", "h3", &q[2], &err) == 0 &&
             outbox_queue(x, 1, 1, "D1", "prm", "{\"a\":1}", "h1", &q[3], &err) == 0 && store_commit(x, &err) == 0;
        T_OK(ok && q[0] && q[1] && q[2] && !q[3] && count(x, live) == 3, "run 1: three queued, a repeat in the run not");
        /* a sender delivers D2's */
        outbox_item *it;
        int n = 0;
        ok = outbox_claim(x, "prm", 10, &it, &n, &err) == 0 && n == 3;
        for (int i = 0; ok && i < n; i++)
            if (it[i].deal_id == 2) ok = outbox_ack(x, it[i].id, &err) == 0;
            else ok = outbox_fail(x, it[i].id, "503", 0, 0, 0, &err) == 0;   /* pending again */
        outbox_free(it, n);
        T_OK(ok && count(x, live) == 2, "D2 delivered, D1 and D3 pending again");
        /* run 2: D1 changed (one new payload, run 1's superseded), D2 equal
         * to the delivered one (not queued), D3's pending row claimed and
         * failed back to pending inside the run, after the queue has read
         * which deals have one: still superseded. */
        ok = store_begin(x, &err) == 0 && outbox_claim(x, "prm", 10, &it, &n, &err) == 0;
        int64_t d1 = 0, d3 = 0;
        for (int i = 0; i < n; i++) {
            if (it[i].deal_id == 1) d1 = it[i].id;
            if (it[i].deal_id == 3) d3 = it[i].id;
        }
        outbox_free(it, n);
        ok = ok && d1 && d3 && outbox_fail(x, d1, "503", 0, 0, 0, &err) == 0 && outbox_queue(x, 2, 1, "D1", "prm", "{\"a\":2}", "h1b", &q[4], &err) == 0 &&
             outbox_queue(x, 2, 2, "D2", "prm", "{\"b\":1}", "h2", &q[5], &err) == 0 &&
             outbox_fail(x, d3, "503", 0, 0, 0, &err) == 0 &&
             outbox_queue(x, 2, 3, "D3", "prm", "{\"c\":2}", "h3b", &q[6], &err) == 0 && store_commit(x, &err) == 0;
        T_OK(ok && q[4] && !q[5] && q[6], "run 2: D1 and D3 queued, D2 equal to its delivered payload not");
        T_EQ_INT(count(x, "SELECT count(*) FROM writeback_outbox WHERE status = 'pending' AND run_id = 2"), 2,
                 "run 2's two payloads pending");
        T_EQ_INT(count(x, "SELECT count(*) FROM writeback_outbox WHERE status = 'superseded' AND run_id = 1"), 2,
                 "run 1's D1 and D3 superseded (D3 after it became pending inside the run)");
        T_EQ_INT(count(x, "SELECT count(*) FROM writeback_outbox WHERE status = 'sent' AND deal_id = 2"), 1,
                 "D2's delivered row kept");
        /* run 3: D1 changes once more; exactly one live payload for it */
        ok = store_begin(x, &err) == 0 && outbox_queue(x, 3, 1, "D1", "prm", "{\"a\":3}", "h1c", &q[7], &err) == 0 &&
             store_commit(x, &err) == 0;
        T_OK(ok && q[7] && count(x, "SELECT count(*) FROM writeback_outbox WHERE deal_id = 1 AND status = 'pending'") == 1,
             "run 3: one new payload for D1, run 2's superseded");
        store_close(x);
    }

    /* Statements refuse more than one statement at a time. */
    s = fresh(STORE_VERSION);
    store_stmt *st;
    T_OK(store_prepare(s, "SELECT 1; DROP TABLE deals", &st, &err) < 0 && strstr(err.msg, "one statement"),
         "stacked statements refused");
    store_close(s);
    unlink(dbpath);
    return t_done();
}
