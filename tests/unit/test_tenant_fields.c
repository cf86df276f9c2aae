/* test_tenant_fields.c - tenant-declared deal fields (issue 10 item 6) as
 * scoring features: a synthetic program whose outcomes depend on a
 * declared category and a declared number trains to a lower held-out log
 * loss than the same program without them; a pure-noise field trains and
 * costs little; a field is read as of T (a later change leaves a past-date
 * score unchanged to the bit); the fields are named as drivers and saved
 * with the model (models.features). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "feat.h"
#include "rng.h"
#include "scoring.h"
#include "store.h"
#include "tap.h"
#include "teststore.h"
#include "timeutil.h"


static void field(const char *deal, const char *name, const char *type, const char *value, const char *at)
{
    const char *kv[] = { "deal_id", deal, "field", name, "type", type, "value", value, "observed_at", at, NULL };
    put("deal_field", kv);
}

static void day_iso(int64_t day, char out[11]) { date_iso(day * 86400, out); }

static int64_t D(const char *iso)
{
    int64_t t = 0;
    clock_parse(iso, &t, NULL);
    return t / 86400;
}

/* declare: which fields the connector declares */
enum { DECLARE_NONE, DECLARE_TRUE, DECLARE_NOISE };

/* Two years of registrations, 5 a day over 4 partners; deal k resolves
 * 30..89 days later, won with probability sigmoid(-0.4 + effects). With
 * `signal` the deal's deal_type (renewal +1.6, upsell +0.4, new -1.2) and
 * seats (+0.75 per unit of log seats around its mean) are part of the
 * outcome; `declare` says whether the connector declared those two fields
 * (DECLARE_TRUE), two fields of the same types drawn independently of
 * everything (DECLARE_NOISE), or none; both declaring variants add a date
 * (kickoff, 10..39 days after registration) and a yes/no (dm) that carry
 * no signal, and a category with one level per deal (ref: a free-text
 * field, capped to TENANT_CATEGORY_LEVELS levels). Every variant of a seed has the same
 * deals, amounts and random draws. */
static void program(int signal, int declare, uint64_t seed)
{
    static const char *types[] = { "new", "renewal", "upsell" };
    static const double eff[] = { -1.2, 1.6, 0.4 };
    prm_error err;
    store_begin(s, &err);
    const char *pk[4] = { "P1", "P2", "P3", "P4" };
    for (int i = 0; i < 4; i++) {
        const char *kv[] = { "external_id", pk[i], "tier", i < 2 ? "Gold" : "Silver", "region", "NA", "type",
                             "reseller", "currency", "USD", "updated_at", "2024-01-01T00:00:00Z", NULL };
        put("partner", kv);
    }
    rng rf, ro;
    rng_seed(&rf, seed);
    rng_seed(&ro, seed ^ 0x5eed);
    int64_t d0 = D("2024-07-01"), end = D("2026-06-30");
    char id[32], c[11], e[11], cl[11], up[32], up2[32], amt[32], seats[32];
    int k = 0;
    for (int64_t day = d0; day < end; day++)
        for (int j = 0; j < 5; j++, k++) {
            int ty = (int)rng_below(&rf, 3);
            double ls = rng_normal(&rf);                 /* log seats around the mean */
            int ty_noise = (int)rng_below(&rf, 3);
            double ls_noise = rng_normal(&rf);
            char kick[11];                                /* these two carry no signal */
            day_iso(day + 10 + (int64_t)rng_below(&rf, 30), kick);
            int dm = (int)rng_below(&rf, 2);
            double z = -0.4 + (signal ? eff[ty] + 0.75 * ls : 0);
            int won = rng_uniform(&ro) < 1 / (1 + exp(-z));
            int64_t close = day + 30 + (int64_t)rng_below(&ro, 60);
            snprintf(id, sizeof id, "D%05d", k);
            day_iso(day, c);
            day_iso(day + 75, e);
            snprintf(up, sizeof up, "%sT09:00:00Z", c);
            snprintf(amt, sizeof amt, "%d", 5000 + (int)rng_below(&rf, 20000));
            const char *kv[] = { "external_id", id, "partner_id", pk[k % 4], "account", id, "amount", amt,
                                 "currency", "USD", "product_family", "Core", "stage", "qualified", "status",
                                 "open", "created_at", c, "expected_close", e, "updated_at", up, NULL };
            put("deal", kv);
            if (declare != DECLARE_NONE) {
                int t = declare == DECLARE_TRUE ? ty : ty_noise;
                snprintf(seats, sizeof seats, "%.3f", exp(2 + 1.5 * (declare == DECLARE_TRUE ? ls : ls_noise)));
                field(id, "deal_type", "category", types[t], up);
                field(id, "seats", "number", seats, up);
                field(id, "kickoff", "date", kick, up);
                field(id, "dm", "yesno", dm ? "1" : "0", up);
                field(id, "ref", "category", id, up);             /* one level per deal */
            }
            if (close <= end) {
                day_iso(close, cl);
                snprintf(up2, sizeof up2, "%sT10:00:00Z", cl);
                const char *kv2[] = { "external_id", id, "partner_id", pk[k % 4], "account", id, "amount", amt,
                                      "currency", "USD", "product_family", "Core", "stage",
                                      won ? "closed_won" : "closed_lost", "status", won ? "won" : "lost",
                                      "created_at", c, "expected_close", e, "closed_at", cl, "updated_at", up2,
                                      NULL };
                put("deal", kv2);
            }
        }
    /* One deal open at the end, a "new" deal of few seats. */
    const char *kv[] = { "external_id", "OPEN1", "partner_id", "P1", "account", "Open", "amount", "10000",
                         "currency", "USD", "product_family", "Core", "stage", "qualified", "status", "open",
                         "created_at", "2026-06-01", "expected_close", "2026-09-30", "updated_at",
                         "2026-06-01T09:00:00Z", NULL };
    put("deal", kv);
    if (declare != DECLARE_NONE) {
        field("OPEN1", "deal_type", "category", "new", "2026-06-01T09:00:00Z");
        field("OPEN1", "seats", "number", "3", "2026-06-01T09:00:00Z");
        field("OPEN1", "kickoff", "date", "2026-07-01", "2026-06-01T09:00:00Z");
        field("OPEN1", "dm", "yesno", "1", "2026-06-01T09:00:00Z");
    }
    store_commit(s, &err);
}

/* Trains logistic on the program as of 2026-06-30; the held-out log loss. */
static double train_ll(int signal, int declare, uint64_t seed, int keep_open, const char *path)
{
    prm_error err;
    unlink(path);
    if (store_open(path, &s, &err) < 0) {
        printf("# %s\n", err.msg);
        return NAN;
    }
    program(signal, declare, seed);
    train_opts o;
    train_opts_init(&o);
    o.as_of = "2026-06-30T00:00:00Z";
    o.kind = "logistic";
    o.activate = 2;
    train_result r;
    double ll = NAN;
    if (scoring_train(s, &o, &r, &err) < 0) printf("# train: %s\n", err.msg);
    else ll = r.cand[r.best].logloss;
    if (!keep_open) {
        store_close(s);
        unlink(path);
    }
    return ll;
}

int main(void)
{
    char path[128];
    snprintf(path, sizeof path, "/tmp/prmcast-test-tfeat-%d.db", (int)getpid());
    chdir("/nonexistent-root-for-defaults");
    /* Seed 11 is the evaluation program; the thresholds below were set
     * from seed 5's figures (see the report in bench/RESULTS.md). */
    uint64_t seed = getenv("TFEAT_SEED") ? strtoull(getenv("TFEAT_SEED"), NULL, 10) : 11;
    double none = train_ll(1, DECLARE_NONE, seed, 0, path);
    double noise = train_ll(1, DECLARE_NOISE, seed, 0, path);
    double sig = train_ll(1, DECLARE_TRUE, seed, 1, path);
    printf("# held-out log loss (logistic, seed %llu): fields not declared %.4f, noise fields declared %.4f,"
           " the planted fields declared %.4f\n", (unsigned long long)seed, none, noise, sig);
    T_OK(sig == sig && none == none && sig < none - 0.05,
         "a declared field with real signal lowers the held-out log loss");
    T_OK(noise == noise && none == none && noise < none + 0.02, "pure-noise declared fields train and cost little");

    /* The model saved its tenant columns by name (models.features). */
    store_stmt *st;
    prm_error err;
    int named = 0;
    if (store_prepare(s, "SELECT features FROM models WHERE active = 1", &st, &err) == 0) {
        if (store_step(st, &err) == 1) {
            store_value f = store_column(st, 0);
            named = f.kind == SV_TEXT && strstr(f.s, "\"x.deal_type\"") && strstr(f.s, "\"x.seats\"");
        }
        store_finalize(st);
    }
    T_OK(named, "models.features names x.deal_type and x.seats");

    /* As of T: OPEN1 scored on 2026-06-15, then its deal_type changes on
     * 2026-06-20; the 06-15 score is unchanged, a score as of 06-25 moves. */
    score_opts so;
    score_opts_init(&so);
    so.as_of = "2026-06-15T00:00:00Z";
    scorer *sc;
    scored_deal a, b, c2;
    memset(&a, 0, sizeof a);
    int ok = scorer_open(s, &so, &sc, &err) == 0 && scorer_deal(sc, "OPEN1", &a, &err) == 0;
    if (!ok) printf("# score: %s\n", err.msg);
    int driver = 0;
    for (int i = 0; ok && i < a.ndrivers; i++) driver |= strcmp(a.drivers[i].feature, "x.deal_type") == 0;
    if (ok) scorer_close(sc);
    T_OK(ok && driver, "x.deal_type is among the deal's drivers");
    field("OPEN1", "deal_type", "category", "renewal", "2026-06-20T09:00:00Z");
    int ok2 = scorer_open(s, &so, &sc, &err) == 0 && scorer_deal(sc, "OPEN1", &b, &err) == 0;
    if (ok2) scorer_close(sc);
    T_OK(ok && ok2 && memcmp(&a.probability, &b.probability, sizeof(double)) == 0,
         "a later change of a declared field leaves the past-date score unchanged");
    so.as_of = "2026-06-25T00:00:00Z";
    int ok3 = scorer_open(s, &so, &sc, &err) == 0 && scorer_deal(sc, "OPEN1", &c2, &err) == 0;
    if (ok3) scorer_close(sc);
    T_OK(ok3 && c2.probability > a.probability + 0.1, "after the change (new -> renewal) the score rises");
    printf("# OPEN1: %.4f as of 06-15 (before and after the later change: %.4f), %.4f as of 06-25\n",
           a.probability, b.probability, c2.probability);

    /* explain names the field as a driver of the stored score. */
    so.as_of = "2026-06-15T00:00:00Z";
    score_result sr;
    explain_result x;
    int ok4 = scoring_score(s, &so, &sr, &err) == 0 && scoring_explain(s, "OPEN1", &x, &err) == 0;
    if (!ok4) printf("# explain: %s\n", err.msg);
    T_OK(ok4 && x.drivers && strstr(x.drivers, "x.deal_type"), "explain names x.deal_type as a driver");
    if (ok4) explain_free(&x);

    /* Each type's column as of T: a date as days from T, yes/no 0/1. */
    world *wd;
    feat_set fs;
    double kick = NAN, dm = NAN;
    if (world_load(s, &wd, &err) == 0) {
        long di = world_find_deal(wd, "OPEN1");
        if (di >= 0 && feat_one(wd, (size_t)di, D("2026-06-15") * 86400, &fs, &err) == 0) {
            for (size_t c = 0; c < fs.data.n_cols; c++) {
                if (strcmp(fs.data.cols[c].name, "x.kickoff") == 0) kick = fs.data.cols[c].num[0];
                if (strcmp(fs.data.cols[c].name, "x.dm") == 0) dm = fs.data.cols[c].num[0];
            }
            feat_set_free(&fs);
        }
        world_free(wd);
    }
    T_OK(kick == 16 && dm == 1, "a date field is days from T (kickoff 07-01 as of 06-15: 16), yes/no is 1");

    /* The declared types are saved with the model; a store that now
     * declares a field otherwise is refused at scoring, not misread. */
    int typed = 0;
    if (store_prepare(s, "SELECT json_extract(params, '$.tenant_fields') FROM models WHERE active = 1",
                      &st, &err) == 0) {
        if (store_step(st, &err) == 1) {
            store_value f = store_column(st, 0);
            typed = f.kind == SV_TEXT && strstr(f.s, "\"x.deal_type\":\"category\"") &&
                    strstr(f.s, "\"x.seats\":\"number\"");
        }
        store_finalize(st);
    }
    T_OK(typed, "models.params keeps each tenant field's declared type");
    store_setting_set(s, "field_type.x.seats", "date", &err);
    int refused = scorer_open(s, &so, &sc, &err) < 0 && strstr(err.msg, "'x.seats' as number") &&
                  strstr(err.msg, "retrain");
    if (!refused) printf("# %s\n", err.msg);
    T_OK(refused, "a field now declared with another type is refused at scoring, naming it");
    store_setting_set(s, "field_type.x.seats", "number", &err);

    /* A bad declared type is a clear error. */
    const store_object *o = store_object_find("deal_field");
    store_value v[8];
    for (int i = 0; i < o->nfields; i++) v[i] = (store_value){ SV_NULL, NULL, 0, 0 };
    v[0] = (store_value){ SV_TEXT, "t", 0, 0 };
    v[store_field_index(o, "deal_id")] = (store_value){ SV_TEXT, "OPEN1", 0, 0 };
    v[store_field_index(o, "field")] = (store_value){ SV_TEXT, "deal_type", 0, 0 };
    v[store_field_index(o, "type")] = (store_value){ SV_TEXT, "money", 0, 0 };
    v[store_field_index(o, "observed_at")] = (store_value){ SV_TEXT, "2026-06-21T00:00:00Z", 0, 0 };
    int w;
    T_OK(store_upsert(s, o, v, &w, &err) < 0 && strstr(err.msg, "category, number, yesno or date"),
         "an unknown field type is refused, naming the types");
    store_close(s);
    unlink(path);
    return t_done();
}
