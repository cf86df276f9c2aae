/* test_world_as_of.c - a world loaded for one instant (world_load_as_of,
 * what a score run uses): it reads full history only for the deals the
 * features at T need, and gives the deals open at T the same features as
 * a full world; a deal closed after T is still open at T; the stage
 * medians as of T do not move when history after T arrives, nor its
 * features when current rows change after T; it refuses
 * features at any other instant; a small store falls back to a full world. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "feat.h"
#include "store.h"
#include "tap.h"
#include "teststore.h"
#include "timeutil.h"
#include "world_int.h"

/* The store-wide window of recent resolved deals (WORLD_RECENT_ALL in a
 * real store): small, so that most of this store is settled before it. */
enum { K_ALL = 500 };

static int64_t T(const char *iso)
{
    int64_t t = 0;
    clock_parse(iso, &t, NULL);
    return t;
}

static void day_iso(int64_t day, const char *hms, char out[32])
{
    char d[11];
    date_iso(day * 86400, d);
    snprintf(out, 32, "%sT%sZ", d, hms);
}

/* A deal registered on `day` that moves through stages on the given day
 * offsets and, when `close` > 0, closes (won when `won`) `close` days
 * after registration: history rows, and the current row as a sync leaves
 * it. */
static void life(const char *id, const char *partner, int64_t day, int q, int p, int close, int won)
{
    char created[11], at[32], ec[11];
    date_iso(day * 86400, created);
    date_iso((day + 90) * 86400, ec);
    day_iso(day, "09:00:00", at);
    const char *kv[] = { "external_id", id, "partner_id", partner, "stage", "registered", "status", "open",
                         "created_at", created, "amount", "1000", "currency", "USD", "expected_close", ec,
                         "partner_probability", "0.3", "updated_at", at, NULL };
    put("deal", kv);
    const char *stages[] = { "qualified", "proposal" };
    int offs[] = { q, p };
    for (int k = 0; k < 2; k++) {
        if (close > 0 && offs[k] >= close) break;
        day_iso(day + offs[k], "10:00:00", at);
        const char *ch[] = { "deal_id", id, "observed_at", at, "stage", stages[k], "status", "open",
                             "amount", "1000", "expected_close", ec, "partner_probability", k ? "0.6" : "0.4",
                             NULL };
        put("deal_change", ch);
    }
    if (close > 0) {
        char cd[11];
        date_iso((day + close) * 86400, cd);
        day_iso(day + close, "11:00:00", at);
        const char *ch[] = { "deal_id", id, "observed_at", at, "stage", won ? "closed_won" : "closed_lost",
                             "status", won ? "won" : "lost", "amount", "1000", "expected_close", cd,
                             "partner_probability", won ? "1" : "0", NULL };
        put("deal_change", ch);
        /* the sync's current row: closed at the same instant */
        const char *cur[] = { "external_id", id, "partner_id", partner, "stage", won ? "closed_won" : "closed_lost",
                              "status", won ? "won" : "lost", "created_at", created, "amount", "1000",
                              "currency", "USD", "expected_close", cd, "closed_at", cd, "partner_probability",
                              won ? "1" : "0", "updated_at", at, NULL };
        put("deal", cur);
    }
}

/* Every open deal's features as of t, one line per deal, as text. */
static char *features(world *w, int64_t t)
{
    feat_set fs;
    prm_error err;
    if (feat_open(w, t, &fs, &err) < 0) {
        printf("# %s\n", err.msg);
        return strdup("");
    }
    size_t cap = 1 << 20, n = 0;
    char *out = malloc(cap);
    out[0] = 0;
    for (size_t r = 0; r < fs.n && n < cap - 4096; r++) {
        n += (size_t)snprintf(out + n, cap - n, "%s:", world_deal_id(w, fs.deal[r]));
        for (size_t c = 0; c < fs.data.n_cols; c++) {
            const model_column *col = &fs.data.cols[c];
            if (col->type == MODEL_NUMERIC) n += (size_t)snprintf(out + n, cap - n, " %s=%.12g", col->name, col->num[r]);
            else n += (size_t)snprintf(out + n, cap - n, " %s=%d", col->name, col->cat[r]);
        }
        n += (size_t)snprintf(out + n, cap - n, "\n");
    }
    feat_set_free(&fs);
    return out;
}

static size_t n_brief(const world *w)
{
    size_t n = 0;
    for (size_t i = 0; i < w->nd; i++) n += w->d[i].brief;
    return n;
}

int main(void)
{
    char path[128];
    snprintf(path, sizeof path, "/tmp/prmcast-test-world-as-of-%d.db", (int)getpid());
    unlink(path);
    prm_error err;
    if (store_open(path, &s, &err) < 0) {
        printf("# %s\n", err.msg);
        return 1;
    }
    int64_t t = T("2026-06-30T12:00:00Z"), tday = t / 86400;
    store_begin(s, &err);
    const char *p1[] = { "external_id", "P1", "tier", "Gold", "type", "reseller", "region", "NA", NULL };
    const char *p2[] = { "external_id", "P2", "tier", "Silver", "type", "msp", "region", "EMEA", NULL };
    put("partner", p1);
    put("partner", p2);
    /* 4,000 deals settled long before T (spells of varied lengths), a few
     * open at T, one closed after T, one registered after T. */
    char id[32];
    for (int i = 0; i < 4000; i++) {
        snprintf(id, sizeof id, "S%04d", i);
        life(id, i % 3 ? "P1" : "P2", tday - 1400 + i / 3, 3 + i % 17, 20 + i % 29, 40 + i % 37, i % 4 == 0);
    }
    for (int i = 0; i < 12; i++) {
        snprintf(id, sizeof id, "O%02d", i);
        life(id, i % 2 ? "P1" : "P2", tday - 60 + i * 4, 5 + i, 25 + i, 0, 0);
    }
    /* A commit for the last quarters (commit accuracy counts the amounts
     * won), and a deal won in them whose current row lost its amount:
     * history has it, so the world as of T reads its history too. */
    char q[8], sub[32];
    for (int k = 1; k <= 3; k++) {
        int fy, qq;
        fiscal_quarter(tday - 91 * k, 1, &fy, &qq);
        snprintf(q, sizeof q, "%d-Q%d", fy, qq);
        day_iso(tday - 91 * k - 60, "08:00:00", sub);
        const char *c[] = { "partner_id", "P1", "period", q, "category", "commit", "amount", "50000",
                            "submitted_at", sub, NULL };
        put("commit", c);
    }
    life("NA1", "P1", tday - 330, 5, 20, 60, 1);
    if (store_exec(s, "UPDATE deals SET amount = NULL WHERE external_id = 'NA1'", &err) < 0) printf("# %s\n", err.msg);
    store_commit(s, &err);
    /* L1: open through T, won ten days after it (the current row says won). */
    store_begin(s, &err);
    life("L1", "P1", tday - 50, 6, 30, 60, 1);
    store_commit(s, &err);

    world *full = NULL, *at = NULL;
    T_OK(world_load_window(s, INT64_MAX, K_ALL, &full, &err) == 0 && world_load_window(s, t, K_ALL, &at, &err) == 0, "both worlds load");
    if (!full || !at) return t_done();
    T_OK(world_as_of(at) == t && world_as_of(full) == INT64_MAX, "the world as of T is one (not the fallback)");
    size_t brief = n_brief(at);
    T_OK(brief > 3000 && brief < world_n_deals(at), "most settled deals' history is not read");
    printf("# %zu of %zu deals without history read\n", brief, world_n_deals(at));
    long l1 = world_find_deal(at, "L1");
    T_OK(l1 >= 0 && world_deal_open(at, (size_t)l1, t), "a deal closed after T is open at T in the world as of T");
    T_OK(l1 >= 0 && !at->d[l1].brief, "and its history was read");
    char *ff = features(full, t), *fa = features(at, t);
    T_OK(strstr(fa, "L1:") != NULL, "the deal closed after T gets a scoring row as of T");
    T_EQ_STR(fa, ff, "the world as of T gives every open deal the same features as the full world");
    const double *mf = feat_medians(full), *ma = feat_medians(at);
    int same = mf && ma;
    for (int k = 0; same && k < FEAT_STAGES; k++) same = mf[k] == ma[k];
    T_OK(same, "the same stage medians");
    T_OK(mf && mf[0] > 1 && mf[0] != 14, "medians come from the spells");
    double med_before[FEAT_STAGES];
    for (int k = 0; mf && k < FEAT_STAGES; k++) med_before[k] = mf[k];
    feat_set fs;
    T_OK(feat_open(at, t + 86400, &fs, &err) < 0 && strstr(err.msg, "loaded as of"),
         "features at another instant are refused, named");
    T_OK(feat_snapshots(at, t - 86400 * 30, t, 7, t, 0, NULL, &fs, &err) < 0 && strstr(err.msg, "every instant"),
         "training rows are refused on a world as of T");
    world_free(full);
    world_free(at);

    /* History after T: long spells closing after T, a deal registered
     * after T. The medians as of T do not move. */
    store_begin(s, &err);
    for (int i = 0; i < 300; i++) {
        snprintf(id, sizeof id, "F%03d", i);
        life(id, "P1", tday - 20, 90, 150, 200, 1);
    }
    life("N1", "P2", tday + 5, 1, 2, 3, 1);
    store_commit(s, &err);
    full = at = NULL;
    world_load_window(s, INT64_MAX, K_ALL, &full, &err);
    world_load_window(s, t, K_ALL, &at, &err);
    char *ff2 = full ? features(full, t) : strdup(""), *fa2 = at ? features(at, t) : strdup("");
    mf = full ? feat_medians(full) : NULL;
    ma = at ? feat_medians(at) : NULL;
    same = mf && ma;
    for (int k = 0; same && k < FEAT_STAGES; k++) same = mf[k] == med_before[k] && ma[k] == med_before[k];
    T_OK(same, "stage medians as of T unchanged by history after T (both worlds)");
    T_OK(strstr(ff2, "F000:") && strstr(fa2, "F000:"), "the deals registered before T and open then are scored");
    T_OK(!strstr(fa2, "N1:"), "a deal registered after T is not");
    T_EQ_STR(fa2, ff2, "and both worlds still agree on every open deal");
    world_free(full);
    world_free(at);
    free(ff);
    free(fa);
    free(ff2);
    free(fa2);

    /* Deals whose current rows change after T in the columns a world as
     * of T reads only for the deals needing history (competitor, product
     * family, budget, completeness): one open at T, one settled long
     * before. The world as of T still gives every open deal the features
     * it gave before (those columns as of T come from attr_history), the
     * same as a full world's; the settled deal, changed after T, is now
     * read in full. */
    at = NULL;
    world_load_window(s, t, K_ALL, &at, &err);
    char *fb = at ? features(at, t) : strdup("");
    world_free(at);
    char created[11], screated[11], ec[11], cd[11], later[32];
    day_iso(tday + 3, "08:00:00", later);
    date_iso((tday - 48) * 86400, created);
    date_iso((tday - 48 + 90) * 86400, ec);
    const char *o3[] = { "external_id", "O03", "partner_id", "P1", "stage", "registered", "status", "open",
                         "created_at", created, "amount", "1000", "currency", "USD", "expected_close", ec,
                         "partner_probability", "0.3", "competitor", "Initech", "product_family", "Edge",
                         "budget_confirmed", "1", "completeness", "0.9", "updated_at", later, NULL };
    int64_t sday = tday - 1400 + 100 / 3;
    date_iso(sday * 86400, screated);
    date_iso((sday + 40 + 100 % 37) * 86400, cd);
    const char *s100[] = { "external_id", "S0100", "partner_id", "P1", "stage", "closed_won", "status", "won",
                           "created_at", screated, "amount", "1000", "currency", "USD", "expected_close", cd,
                           "closed_at", cd, "partner_probability", "1", "competitor", "Initech",
                           "product_family", "Edge", "budget_confirmed", "0", "completeness", "0.2",
                           "updated_at", later, NULL };
    store_begin(s, &err);
    put("deal", o3);
    put("deal", s100);
    store_commit(s, &err);
    full = at = NULL;
    world_load_window(s, INT64_MAX, K_ALL, &full, &err);
    world_load_window(s, t, K_ALL, &at, &err);
    char *fc = at ? features(at, t) : strdup(""), *ffc = full ? features(full, t) : strdup("");
    long s100i = at ? world_find_deal(at, "S0100") : -1;
    T_OK(strstr(fc, "O03:") && s100i >= 0 && !at->d[s100i].brief,
         "deals changed after T: the open one is scored, the settled one read in full");
    T_EQ_STR(fc, fb, "rows changed after T do not change the world as of T");
    T_EQ_STR(fc, ffc, "and the world as of T still agrees with the full world");
    world_free(full);
    world_free(at);
    free(fb);
    free(fc);
    free(ffc);

    /* A small store: the deals needing history are most of it, so the
     * world is a full one. */
    store_close(s);
    unlink(path);
    if (store_open(path, &s, &err) < 0) return t_done();
    store_begin(s, &err);
    put("partner", p1);
    life("A1", "P1", tday - 100, 5, 20, 30, 1);
    life("A2", "P1", tday - 10, 2, 4, 0, 0);
    store_commit(s, &err);
    at = NULL;
    T_OK(world_load_window(s, t, K_ALL, &at, &err) == 0 && world_as_of(at) == INT64_MAX && n_brief(at) == 0,
         "a small store loads as a full world");
    world_free(at);
    store_close(s);
    unlink(path);
    return t_done();
}
