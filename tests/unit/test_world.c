/* test_world.c - the world's rules of time (world.h): attributes as of T
 * from attr_history (a partner promoted later is not promoted before; a
 * reseller that changes distributor has the old parent before the change),
 * a view as of T unchanged by later history, and a current row that
 * disagrees with history reconciled and counted (a deal closed while its
 * history ends open is closed now, never scored as open). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "feat.h"
#include "store.h"
#include "tap.h"
#include "timeutil.h"
#include "world.h"

static store *s;

static void put(const char *object, const char *const *kv)
{
    const store_object *o = store_object_find(object);
    store_value v[32];
    for (int i = 0; i < o->nfields; i++) v[i] = (store_value){ SV_NULL, NULL, 0, 0 };
    v[0] = (store_value){ SV_TEXT, "t", 0, 0 };
    for (; kv[0]; kv += 2) {
        int i = store_field_index(o, kv[0]);
        if (i < 0) { printf("# no field %s\n", kv[0]); continue; }
        if (!kv[1]) continue;
        if (o->fields[i].type == FT_REAL) v[i] = (store_value){ SV_REAL, NULL, atof(kv[1]), 0 };
        else if (o->fields[i].type == FT_INT) v[i] = (store_value){ SV_INT, NULL, 0, atoll(kv[1]) };
        else v[i] = (store_value){ SV_TEXT, kv[1], 0, 0 };
    }
    prm_error err;
    int w;
    if (store_upsert(s, o, v, &w, &err) < 0) printf("# upsert %s: %s\n", object, err.msg);
}

static int64_t T(const char *iso)
{
    int64_t t = 0;
    clock_parse(iso, &t, NULL);
    return t;
}

static deal_view view(const char *deal, const char *at)
{
    world *w;
    prm_error err;
    deal_view v;
    deal_view_init(&v);
    static char keep[8][64];
    if (world_load(s, &w, &err) < 0) {
        printf("# %s\n", err.msg);
        return v;
    }
    long i = world_find_deal(w, deal);
    if (i >= 0) world_view(w, (size_t)i, T(at), &v);
    /* copy the strings we test before the world goes */
    snprintf(keep[0], 64, "%s", v.tier ? v.tier : "");
    snprintf(keep[1], 64, "%s", v.parent_id ? v.parent_id : "");
    snprintf(keep[2], 64, "%s", v.stage ? v.stage : "");
    snprintf(keep[3], 64, "%s", v.status ? v.status : "");
    snprintf(keep[4], 64, "%s", v.product_family ? v.product_family : "");
    v.tier = keep[0];
    v.parent_id = keep[1];
    v.stage = keep[2];
    v.status = keep[3];
    v.product_family = keep[4];
    world_free(w);
    return v;
}

static const char *pa(const char *id, const char *tier, const char *parent, const char *type,
                      const char *at, const char *const **out)
{
    static const char *kv[16];
    const char *x[] = { "external_id", id, "tier", tier, "type", type, "region", "EMEA",
                        "parent_id", parent, "updated_at", at, NULL };
    memcpy(kv, x, sizeof x);
    *out = kv;
    return id;
}

int main(void)
{
    char path[128];
    snprintf(path, sizeof path, "/tmp/prmcast-test-world-%d.db", (int)getpid());
    unlink(path);
    prm_error err;
    if (store_open(path, &s, &err) < 0) {
        printf("# %s\n", err.msg);
        return 1;
    }
    const char *const *kv;
    pa("DIST1", "Gold", NULL, "distributor", "2025-01-01T00:00:00Z", &kv); put("partner", kv);
    pa("DIST2", "Gold", NULL, "distributor", "2025-01-01T00:00:00Z", &kv); put("partner", kv);
    pa("R1", "Silver", "DIST1", "reseller", "2025-01-01T00:00:00Z", &kv); put("partner", kv);
    const char *d1[] = { "external_id", "D1", "partner_id", "R1", "stage", "qualified", "status", "open",
                         "created_at", "2025-02-01", "amount", "1000", "currency", "USD",
                         "product_family", "Core", "budget_confirmed", "0", "completeness", "0.5",
                         "updated_at", "2025-02-01T09:00:00Z", NULL };
    put("deal", d1);
    deal_view before = view("D1", "2025-06-30");
    T_EQ_STR(before.tier, "Silver", "the partner's tier as first known");
    T_EQ_STR(before.parent_id, "DIST1", "the reseller's distributor as first known");
    T_EQ_INT(before.budget_confirmed, 0, "budget as first known");

    /* Later syncs: R1 promoted and moved to DIST2 in August; D1's budget
     * confirmed and product changed in September. */
    pa("R1", "Gold", "DIST2", "reseller", "2025-08-15T00:00:00Z", &kv); put("partner", kv);
    const char *d1b[] = { "external_id", "D1", "partner_id", "R1", "stage", "qualified", "status", "open",
                          "created_at", "2025-02-01", "amount", "1000", "currency", "USD",
                          "product_family", "Cloud", "budget_confirmed", "1", "completeness", "0.9",
                          "updated_at", "2025-09-10T09:00:00Z", NULL };
    put("deal", d1b);
    deal_view again = view("D1", "2025-06-30");
    T_EQ_STR(again.tier, "Silver", "a later promotion does not reach back (tier as of June)");
    T_EQ_STR(again.parent_id, "DIST1", "a later change of distributor does not reach back");
    T_EQ_INT(again.budget_confirmed, 0, "a later budget confirmation does not reach back");
    T_EQ_STR(again.product_family, "Core", "a later product change does not reach back");
    T_NEAR(again.completeness, 0.5, 1e-12, "completeness as of June");
    deal_view after = view("D1", "2025-12-01");
    T_EQ_STR(after.tier, "Gold", "the promotion holds after it happened");
    T_EQ_STR(after.parent_id, "DIST2", "the new distributor after the change");
    T_EQ_INT(after.budget_confirmed, 1, "the confirmed budget after the change");
    T_EQ_STR(after.product_family, "Cloud", "the new product after the change");
    deal_view mid = view("D1", "2025-08-20");
    T_EQ_STR(mid.tier, "Gold", "between the changes: promoted already");
    T_EQ_INT(mid.budget_confirmed, 0, "between the changes: budget not yet confirmed");

    /* The sample's old bug: a slip row stamped at 10:00 after a close at
     * 08:00. The current row says won: closed now, and counted. */
    const char *d2[] = { "external_id", "D2", "partner_id", "R1", "stage", "closed_won", "status", "won",
                         "created_at", "2025-03-01", "amount", "500", "currency", "USD",
                         "closed_at", "2025-04-10", "updated_at", "2025-04-10T08:00:00Z", NULL };
    put("deal", d2);
    const char *h1[] = { "deal_id", "D2", "observed_at", "2025-04-10T10:00:00Z", "stage", "proposal",
                         "status", "open", "amount", "500", "expected_close", "2025-04-24", NULL };
    put("deal_change", h1);
    world *w;
    if (world_load(s, &w, &err) < 0) printf("# %s\n", err.msg);
    const char *ex = NULL;
    T_EQ_INT(world_conflicts(w, &ex), 1, "the disagreeing deal is counted as a conflict");
    T_EQ_STR(ex, "D2", "and named");
    long i2 = world_find_deal(w, "D2");
    T_OK(i2 >= 0 && !world_deal_open(w, (size_t)i2, T("2025-11-20")), "a deal the PRM says is won is not open now");
    T_OK(i2 >= 0 && !world_deal_open(w, (size_t)i2, T("2025-04-10T10:30:00Z")),
         "not even right after the stray open row: the current row is the newest state");
    feat_set fs;
    int found = 0;
    if (feat_open(w, T("2025-11-20"), &fs, &err) == 0) {
        for (size_t r = 0; r < fs.n; r++) found |= strcmp(world_deal_id(w, fs.deal[r]), "D2") == 0;
        feat_set_free(&fs);
    }
    T_OK(!found, "the closed deal gets no scoring row");
    /* FX as of a date, in the base currency */
    const char *fx1[] = { "currency", "EUR", "date", "2025-01-01", "rate", "1.10", NULL };
    const char *fx2[] = { "currency", "EUR", "date", "2025-07-01", "rate", "1.20", NULL };
    world_free(w);
    put("fx", fx1);
    put("fx", fx2);
    world_load(s, &w, &err);
    T_NEAR(world_fx(w, "EUR", T("2025-03-01") / 86400), 1.10, 1e-12, "FX as of March: the January rate");
    T_NEAR(world_fx(w, "EUR", T("2025-08-01") / 86400), 1.20, 1e-12, "FX as of August: the July rate");
    T_OK(isnan(world_fx(w, "EUR", T("2024-06-01") / 86400)), "no rate known before the first: NaN, not a guess");
    T_NEAR(world_fx(w, "USD", 20000), 1, 0, "the base currency converts at 1");
    world_free(w);
    store_setting_set(s, "base_currency", "EUR", &err);
    world_load(s, &w, &err);
    T_EQ_STR(world_base_currency(w), "EUR", "the base currency comes from settings");
    T_NEAR(world_fx(w, "USD", T("2025-08-01") / 86400), 1 / 1.20, 1e-12, "USD in a EUR base, as of August");
    world_free(w);
    store_setting_set(s, "base_currency", "euro", &err);
    T_OK(world_load(s, &w, &err) < 0 && strstr(err.msg, "base_currency"), "a bad base currency is refused, named");

    /* The arrays are sized from the tables' largest id: a store with
     * deleted rows (ids beyond the row count) loads every remaining deal
     * with its history, nothing more. */
    store_setting_set(s, "base_currency", "USD", &err);
    const char *d3[] = { "external_id", "D3", "partner_id", "R1", "stage", "qualified", "status", "open",
                         "created_at", "2025-05-01", "amount", "700", "currency", "USD",
                         "updated_at", "2025-05-01T09:00:00Z", NULL };
    put("deal", d3);
    const char *h3[] = { "deal_id", "D3", "observed_at", "2025-06-01T09:00:00Z", "stage", "proposal",
                         "status", "open", "amount", "900", "expected_close", "2025-09-30", NULL };
    put("deal_change", h3);
    if (store_exec(s, "DELETE FROM deal_history WHERE deal_id = (SELECT id FROM deals WHERE external_id = 'D2');"
                      " DELETE FROM attr_history WHERE entity = 'deal' AND entity_id ="
                      " (SELECT id FROM deals WHERE external_id = 'D2');"
                      " DELETE FROM deals WHERE external_id = 'D2'", &err) < 0)
        printf("# %s\n", err.msg);
    w = NULL;
    T_OK(world_load(s, &w, &err) == 0, "a store with deleted rows loads");
    if (w) {
        T_EQ_INT((long)world_n_deals(w), 2, "the remaining deals, no more");
        T_OK(world_find_deal(w, "D2") < 0 && world_find_deal(w, "D1") >= 0, "the deleted deal is gone, D1 stays");
        world_free(w);
    }
    deal_view v3a = view("D3", "2025-05-15");
    T_EQ_STR(v3a.stage, "qualified", "the newest deal's stage before its history row");
    deal_view v3b = view("D3", "2025-06-15");
    T_EQ_STR(v3b.stage, "proposal", "and after it");
    T_NEAR(v3b.amount, 900, 1e-9, "with the history row's amount");

    store_close(s);
    unlink(path);
    return t_done();
}
