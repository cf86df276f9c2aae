/* test_feat.c - point-in-time features: a deal's features as of T do not
 * change when history observed after T is added (no look-ahead), training
 * labels only use outcomes observed before the cutoff, and the derived
 * facts (slips, regressions, days in stage) are right. */
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


static void deal(const char *id, const char *partner, const char *created)
{
    const char *kv[] = { "external_id", id, "partner_id", partner, "stage", "registered",
                         "status", "open", "created_at", created, "amount", "1000",
                         "currency", "USD", "product_family", "Core", "updated_at", NULL, NULL };
    char at[32];
    snprintf(at, sizeof at, "%sT09:00:00Z", created);
    kv[17] = at;
    put("deal", kv);
}

static void change(const char *id, const char *at, const char *stage, const char *amount,
                   const char *close, const char *prob)
{
    const char *status = strcmp(stage, "closed_won") == 0 ? "won"
                       : strcmp(stage, "closed_lost") == 0 ? "lost" : "open";
    const char *kv[] = { "deal_id", id, "observed_at", at, "stage", stage, "status", status,
                         "amount", amount, "expected_close", close, "partner_probability", prob,
                         NULL };
    put("deal_change", kv);
}

/* Features of every open deal as of t, as text, one line per deal. */
static char *snapshot(int64_t t)
{
    world *w;
    feat_set fs;
    prm_error err;
    if (world_load(s, &w, &err) < 0 || feat_open(w, t, &fs, &err) < 0) {
        printf("# %s\n", err.msg);
        return strdup("");
    }
    size_t cap = 1 << 16, n = 0;
    char *out = malloc(cap);
    out[0] = 0;
    for (size_t r = 0; r < fs.n; r++) {
        n += (size_t)snprintf(out + n, cap - n, "%s:", world_deal_id(w, fs.deal[r]));
        for (size_t c = 0; c < fs.data.n_cols && n < cap - 64; c++) {
            const model_column *col = &fs.data.cols[c];
            if (col->type == MODEL_NUMERIC) n += (size_t)snprintf(out + n, cap - n, " %s=%.9g", col->name, col->num[r]);
            else n += (size_t)snprintf(out + n, cap - n, " %s=%s", col->name,
                                       col->cat[r] >= 0 ? col->vocab[col->cat[r]] : "-");
        }
        n += (size_t)snprintf(out + n, cap - n, "\n");
    }
    feat_set_free(&fs);
    world_free(w);
    return out;
}

static int64_t T(const char *iso)
{
    int64_t t = 0;
    date_parse(iso, DATE_ISO, &t, NULL);
    return t;
}

int main(void)
{
    char path[128];
    snprintf(path, sizeof path, "/tmp/prmcast-test-feat-%d.db", (int)getpid());
    unlink(path);
    prm_error err;
    if (store_open(path, &s, &err) < 0) {
        printf("# %s\n", err.msg);
        return 1;
    }
    store_begin(s, &err);
    const char *p1[] = { "external_id", "P1", "tier", "Gold", "type", "reseller", "region", "NA", NULL };
    const char *p2[] = { "external_id", "P2", "tier", "Silver", "type", "msp", "region", "EMEA", NULL };
    put("partner", p1);
    put("partner", p2);
    /* History: D1 qualifies, slips twice, regresses once; D2 lost before T;
     * D3 open through T. */
    deal("D1", "P1", "2025-01-05");
    change("D1", "2025-01-05T09:00:00Z", "registered", "1000", "2025-03-01", "0.1");
    change("D1", "2025-01-20T09:00:00Z", "qualified", "1000", "2025-03-01", "0.2");
    change("D1", "2025-02-10T09:00:00Z", "solution", "1200", "2025-03-01", "0.4");
    change("D1", "2025-03-02T09:00:00Z", "solution", "1200", "2025-04-01", "0.4");
    change("D1", "2025-03-20T09:00:00Z", "qualified", "1200", "2025-04-01", "0.3");
    change("D1", "2025-04-02T09:00:00Z", "qualified", "1200", "2025-05-15", "0.3");
    deal("D2", "P1", "2025-01-10");
    change("D2", "2025-01-10T09:00:00Z", "registered", "500", "2025-02-01", "0.1");
    change("D2", "2025-02-15T09:00:00Z", "closed_lost", "500", "2025-02-15", "0");
    deal("D3", "P2", "2025-02-01");
    change("D3", "2025-02-01T09:00:00Z", "registered", "800", "2025-06-01", "0.1");
    store_commit(s, &err);

    int64_t t = T("2025-04-10T00:00:00Z");
    char *before = snapshot(t);
    T_OK(strstr(before, "D1:") && strstr(before, "D3:") && !strstr(before, "D2:"),
         "open at T: D1 and D3, not the lost D2");
    T_OK(strstr(before, "D1: ") && strstr(strstr(before, "D1:"), "close_date_slips=2 "),
         "D1 slipped twice");
    T_OK(strstr(strstr(before, "D1:"), "stage_regressions=1 "), "D1 regressed once");
    T_OK(strstr(strstr(before, "D1:"), "stage=qualified"), "D1's stage as of T");
    T_OK(strstr(strstr(before, "D1:"), "days_in_stage=20.625 "), "days in stage since 2025-03-20 09:00");
    T_OK(strstr(strstr(before, "D1:"), "days_slipped=75 "), "days slipped: 31 + 44");

    /* The future arrives: D1 and D3 close, a new deal, a partner's record moves. */
    store_begin(s, &err);
    change("D1", "2025-05-01T09:00:00Z", "negotiation", "9999", "2025-05-20", "0.9");
    change("D1", "2025-05-20T09:00:00Z", "closed_won", "9999", "2025-05-20", "1");
    change("D3", "2025-04-11T09:00:00Z", "closed_lost", "800", "2025-04-11", "0");
    deal("D4", "P2", "2025-05-01");
    change("D4", "2025-05-01T09:00:00Z", "registered", "700", "2025-07-01", "0.1");
    const char *c1[] = { "partner_id", "P1", "period", "2025-Q2", "category", "commit", "amount", "5000",
                         "submitted_at", "2025-04-20T00:00:00Z", NULL };
    put("commit", c1);
    store_commit(s, &err);
    char *after = snapshot(t);
    T_EQ_STR(after, before, "features as of T unchanged by later history (no look-ahead)");
    char *later = snapshot(T("2025-05-10T00:00:00Z"));
    T_OK(strcmp(later, before) != 0 && !strstr(later, "D3:") && strstr(later, "D4:"),
         "a later instant does see the new facts");

    /* Training labels only from outcomes observed before the cutoff. */
    world *w;
    feat_set fs;
    world_load(s, &w, &err);
    feat_snapshots(w, T("2025-01-01T00:00:00Z"), T("2025-04-01T00:00:00Z"), 7,
                   T("2025-04-10T00:00:00Z"), 0, NULL, &fs, &err);
    int d1 = 0, d2 = 0;
    for (size_t i = 0; i < fs.n; i++) {
        d1 += strcmp(world_deal_id(w, fs.deal[i]), "D1") == 0;
        d2 += strcmp(world_deal_id(w, fs.deal[i]), "D2") == 0;
    }
    T_OK(d1 == 0, "D1 (won after the cutoff) gives no training row before it");
    T_OK(d2 > 0, "D2 (lost before the cutoff) gives training rows");
    int label_ok = 1;
    for (size_t i = 0; i < fs.n; i++) label_ok &= fs.label[i] == 0.0;
    T_OK(label_ok, "D2's rows are labelled lost");
    feat_set_free(&fs);
    feat_snapshots(w, T("2025-01-01T00:00:00Z"), T("2025-04-01T00:00:00Z"), 7,
                   T("2025-06-01T00:00:00Z"), 0, NULL, &fs, &err);
    int won_rows = 0;
    for (size_t i = 0; i < fs.n; i++) won_rows += fs.label[i] == 1.0;
    T_OK(won_rows > 0, "with a later cutoff D1's snapshots join, labelled won");
    feat_set_free(&fs);
    world_free(w);

    free(before);
    free(after);
    free(later);
    store_close(s);
    unlink(path);
    return t_done();
}
