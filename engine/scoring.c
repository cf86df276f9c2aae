/* scoring.c - see scoring.h. */
#include "scoring.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "clsmetrics.h"
#include "json.h"
#include "hash.h"
#include "model.h"
#include "rules.h"
#include "store.h"
#include "timeutil.h"

#define DAY 86400LL

void train_opts_init(train_opts *o)
{
    o->as_of = NULL;
    o->train_quarters = 8;
    o->step_days = 14;
    o->calib_share = 0.2;
    o->kind = "auto";
    o->activate = 1;
    o->force_activate = 0;
}

void score_opts_init(score_opts *o)
{
    memset(o, 0, sizeof *o);
    o->drivers = 6;
}

/* ---- a small JSON writer ---------------------------------------------- */

typedef struct jbuf {
    char *s;
    size_t n, cap;
} jbuf;

static void jput(jbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void jput(jbuf *b, const char *fmt, ...)
{
    va_list ap;
    for (;;) {
        va_start(ap, fmt);
        int k = vsnprintf(b->s ? b->s + b->n : NULL, b->s ? b->cap - b->n : 0, fmt, ap);
        va_end(ap);
        if (k < 0) return;
        if (b->s && b->n + (size_t)k < b->cap) {
            b->n += (size_t)k;
            return;
        }
        size_t cap = (b->cap ? b->cap * 2 : 256) + (size_t)k;
        char *p = realloc(b->s, cap);
        if (!p) return;
        b->s = p;
        b->cap = cap;
    }
}

static void jstr(jbuf *b, const char *s)
{
    jput(b, "\"");
    for (; s && *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') jput(b, "\\%c", c);
        else if (c < 0x20) jput(b, "\\u%04x", c);
        else jput(b, "%c", c);
    }
    jput(b, "\"");
}

static void jnum(jbuf *b, double x)
{
    if (x == x && isfinite(x)) jput(b, "%.6g", x);
    else jput(b, "null");
}

/* Isotonic calibration can map the top or bottom block to exactly 1 or 0;
 * no open deal is certain, and log loss must stay finite. */
#define P_FLOOR 0.005
static void clip_probs(double *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i] = p[i] < P_FLOOR ? P_FLOOR : p[i] > 1 - P_FLOOR ? 1 - P_FLOOR : p[i];
}

/* ---- time windows ----------------------------------------------------- */

static int64_t quarter_start_of(int64_t t, int sm)
{
    int fy, q;
    fiscal_quarter(t / DAY - (t % DAY < 0), sm, &fy, &q);
    return fiscal_quarter_start(fy, q, sm) * DAY;
}

static int64_t quarters_back(int64_t qstart, int n, int sm)
{
    int fy, q;
    fiscal_quarter(qstart / DAY, sm, &fy, &q);
    int k = fy * 4 + (q - 1) - n;
    return fiscal_quarter_start(k / 4, k % 4 + 1, sm) * DAY;
}

/* The as-of instant: the option, else the engine clock (--as-of,
 * $PRMCAST_NOW, the wall clock). */
static int resolve_as_of(const feat_world *w, const char *as_of, int64_t *t, prm_error *err)
{
    if (feat_last_observed(w) <= 0) return prm_error_set(err, "the store has no deal history yet");
    if (as_of) return clock_parse(as_of, t, err) < 0 ? prm_error_prefix(err, "as of: ") : 0;
    *t = clock_now();
    return 0;
}

/* ---- training --------------------------------------------------------- */

static const char *now_iso(char out[21])
{
    instant_iso(clock_now(), out);
    return out;
}

static int hash_set(const feat_set *fs, char out[65])
{
    hash_sha256 *h = hash_sha256_new();
    if (!h) return -1;
    for (size_t c = 0; c < fs->data.n_cols; c++) {
        const model_column *col = &fs->data.cols[c];
        hash_sha256_update(h, col->name, strlen(col->name) + 1);
        if (col->type == MODEL_NUMERIC) hash_sha256_update(h, col->num, sizeof(double) * fs->n);
        else hash_sha256_update(h, col->cat, sizeof(int32_t) * fs->n);
    }
    hash_sha256_update(h, fs->label, sizeof(double) * fs->n);
    return hash_sha256_hex(h, out);
}

/* The base-rate model sees tier (outer key) and stage only. */
static model_data baserate_view(const feat_set *fs, model_column two[2])
{
    for (size_t c = 0; c < fs->data.n_cols; c++) {
        if (strcmp(fs->data.cols[c].name, "tier") == 0) two[0] = fs->data.cols[c];
        if (strcmp(fs->data.cols[c].name, "stage") == 0) two[1] = fs->data.cols[c];
    }
    model_data d = { fs->n, 2, two };
    return d;
}

static void params_json(jbuf *b, const model_params *p)
{
    switch (p->kind) {
    case MODEL_LOGISTIC: jput(b, "{\"l2\":%g,\"max_iter\":%d}", p->l2, p->max_iter); break;
    case MODEL_GBDT:
        jput(b, "{\"learning_rate\":%g,\"max_iter\":%d,\"max_leaf_nodes\":%d,\"min_samples_leaf\":%d,"
                "\"max_bins\":%d,\"early_stopping\":%d,\"validation_fraction\":%g}",
             p->learning_rate, p->max_iter, p->max_leaf_nodes, p->min_samples_leaf, p->max_bins,
             p->early_stopping, p->validation_fraction);
        break;
    case MODEL_BASERATE: jput(b, "{\"prior_strength\":%g,\"keys\":[\"tier\",\"stage\"]}", p->prior_strength); break;
    }
}

static int register_model(store *s, const model *m, const model_params *p, const train_result *r,
                          const train_candidate *c, const model_data *d, int64_t *id, prm_error *err)
{
    char *blob = NULL;
    size_t len;
    if (model_save(m, &blob, &len, err) < 0) return -1;
    jbuf feats = { 0 }, params = { 0 }, metrics = { 0 };
    jput(&feats, "[");
    for (size_t i = 0; i < d->n_cols; i++) {
        if (i) jput(&feats, ",");
        jstr(&feats, d->cols[i].name);
    }
    jput(&feats, "]");
    params_json(&params, p);
    jput(&metrics, "{\"eval_auc\":");
    jnum(&metrics, c->auc);
    jput(&metrics, ",\"eval_logloss\":");
    jnum(&metrics, c->logloss);
    jput(&metrics, ",\"eval_brier\":");
    jnum(&metrics, c->brier);
    jput(&metrics, ",\"eval_ece\":");
    jnum(&metrics, c->ece);
    jput(&metrics, ",\"partner_probability_brier\":");
    jnum(&metrics, r->partner_brier);
    jput(&metrics, ",\"n_fit\":%zu,\"n_calib\":%zu,\"n_eval\":%zu,\"calibrated\":%s}", r->n_fit,
         r->n_calib, r->n_eval, model_calib_get_kind(m) == MODEL_CALIB_NONE ? "false" : "true");
    char now[21], version[64];
    now_iso(now);
    snprintf(version, sizeof version, "%s-%.4s%.2s%.2s-%.8s", c->kind, r->as_of, r->as_of + 5,
             r->as_of + 8, r->data_hash);
    const char *t[] = { c->kind, version, now, feats.s, params.s, r->train_from, r->eval_from,
                        r->eval_to, r->data_hash, metrics.s, blob };
    store_value v[11];
    for (int i = 0; i < 11; i++) v[i] = (store_value){ SV_TEXT, t[i], 0, 0 };
    int rc = store_run(s, "INSERT INTO models (kind, version, created_at, features, params,"
                          " train_from, train_to, eval_to, data_hash, metrics, blob)"
                          " VALUES (?,?,?,?,?,?,?,?,?,?,?)", 11, v, id, err);
    free(feats.s);
    free(params.s);
    free(metrics.s);
    free(blob);
    return rc;
}

static size_t distinct_deals(const feat_set *fs, size_t nd)
{
    unsigned char *seen = calloc(nd + 1, 1);
    size_t k = 0;
    for (size_t i = 0; i < fs->n; i++)
        if (!seen[fs->deal[i]]) { seen[fs->deal[i]] = 1; k++; }
    free(seen);
    return k;
}

static int both_classes(const double *y, size_t n)
{
    int a = 0, b = 0;
    for (size_t i = 0; i < n; i++) {
        if (y[i] > 0.5) a = 1; else b = 1;
    }
    return a && b;
}

static int train_one(store *s, model_kind kind, const feat_set *fit, const feat_set *cal,
                     const feat_set *ev, train_result *r, train_candidate *c, prm_error *err)
{
    model_params p;
    model_params_init(&p, kind);
    model_column fit2[2], cal2[2], ev2[2];
    model_data dfit = fit->data, dcal = cal->data, dev = ev->data;
    if (kind == MODEL_BASERATE) {
        dfit = baserate_view(fit, fit2);
        dcal = baserate_view(cal, cal2);
        dev = baserate_view(ev, ev2);
    }
    model *m = NULL;
    if (model_fit(kind, &dfit, fit->label, &p, &m, err) < 0)
        return prm_error_prefix(err, "%s: ", model_kind_name(kind));
    if (cal->n >= 50 && both_classes(cal->label, cal->n) &&
        model_calibrate(m, &dcal, cal->label, MODEL_CALIB_ISOTONIC, err) < 0) {
        model_free(m);
        return prm_error_prefix(err, "%s calibration: ", model_kind_name(kind));
    }
    double *pe = malloc(sizeof(double) * (ev->n + 1));
    if (!pe || model_predict(m, &dev, pe, err) < 0) {
        free(pe);
        model_free(m);
        return -1;
    }
    clip_probs(pe, ev->n);
    snprintf(c->kind, sizeof c->kind, "%s", model_kind_name(kind));
    c->auc = cls_auc(pe, ev->label, ev->n);
    c->logloss = cls_logloss(pe, ev->label, ev->n);
    c->brier = cls_brier(pe, ev->label, ev->n);
    c->ece = cls_ece(pe, ev->label, ev->n, 10);
    cls_reliability(pe, ev->label, ev->n, TRAIN_REL_BINS, c->rel);
    free(pe);
    int rc = register_model(s, m, &p, r, c, &dfit, &c->model_id, err);
    model_free(m);
    return rc;
}

static void partner_baseline(const feat_set *ev, train_result *r)
{
    const double *pp = NULL;
    for (size_t c = 0; c < ev->data.n_cols; c++)
        if (strcmp(ev->data.cols[c].name, "partner_probability") == 0) pp = ev->data.cols[c].num;
    double *p = malloc(sizeof(double) * (ev->n + 1)), *y = malloc(sizeof(double) * (ev->n + 1));
    size_t k = 0;
    for (size_t i = 0; pp && i < ev->n; i++) {
        if (!(pp[i] == pp[i])) continue;
        /* A partner's 0% or 100% would make log loss infinite. */
        p[k] = pp[i] < 0.01 ? 0.01 : pp[i] > 0.99 ? 0.99 : pp[i];
        y[k++] = ev->label[i];
    }
    r->partner_n = k;
    r->partner_brier = k ? cls_brier(p, y, k) : NAN;
    r->partner_logloss = k ? cls_logloss(p, y, k) : NAN;
    r->partner_auc = k ? cls_auc(p, y, k) : NAN;
    if (k) cls_reliability(p, y, k, TRAIN_REL_BINS, r->partner_rel);
    free(p);
    free(y);
}

int scoring_train(store *s, const train_opts *o, train_result *r, prm_error *err)
{
    memset(r, 0, sizeof *r);
    feat_world *w;
    if (feat_load(s, &w, err) < 0) return -1;
    int64_t T;
    if (resolve_as_of(w, o->as_of, &T, err) < 0) {
        feat_free(w);
        return -1;
    }
    int sm = feat_fiscal_start(w);
    int64_t eval_to = quarter_start_of(T, sm), eval_from = quarters_back(eval_to, 1, sm);
    int64_t train_from = quarters_back(eval_from, o->train_quarters, sm);
    int64_t calib_from = eval_from - (int64_t)((double)(eval_from - train_from) * o->calib_share / DAY) * DAY;
    instant_iso(T, r->as_of);
    date_iso(train_from, r->train_from);
    date_iso(calib_from, r->calib_from);
    date_iso(eval_from, r->eval_from);
    date_iso(eval_to, r->eval_to);

    feat_set fit, cal, ev;
    int rc = -1;
    memset(&fit, 0, sizeof fit);
    memset(&cal, 0, sizeof cal);
    memset(&ev, 0, sizeof ev);
    if (feat_snapshots(w, train_from, calib_from, o->step_days, calib_from, &fit, err) < 0 ||
        feat_snapshots(w, calib_from, eval_from, o->step_days, eval_from, &cal, err) < 0 ||
        feat_snapshots(w, eval_from, eval_to, o->step_days, T, &ev, err) < 0)
        goto out;
    r->n_fit = fit.n;
    r->n_calib = cal.n;
    r->n_eval = ev.n;
    r->closed_deals = distinct_deals(&fit, feat_n_deals(w));
    if (fit.n == 0 || !both_classes(fit.label, fit.n)) {
        prm_error_set(err, "not enough history to train: %zu training rows between %s and %s"
                           " (need won and lost deals)", fit.n, r->train_from, r->calib_from);
        goto out;
    }
    if (ev.n == 0 || !both_classes(ev.label, ev.n)) {
        prm_error_set(err, "no evaluation window: no won and lost deals open between %s and %s",
                      r->eval_from, r->eval_to);
        goto out;
    }
    if (hash_set(&fit, r->data_hash) < 0) {
        prm_error_set(err, "cannot hash the training data (out of memory)");
        goto out;
    }
    partner_baseline(&ev, r);

    model_kind kinds[3];
    int nk = 0;
    r->cold_start = r->closed_deals < COLD_START_DEALS;
    if (o->kind && strcmp(o->kind, "auto") != 0) {
        int k = model_kind_parse(o->kind);
        if (k < 0) {
            prm_error_set(err, "unknown model kind '%s' (auto, logistic, gbdt, baserate)", o->kind);
            goto out;
        }
        kinds[nk++] = (model_kind)k;
    } else if (r->cold_start) {
        kinds[nk++] = MODEL_BASERATE;
    } else {
        kinds[nk++] = MODEL_LOGISTIC;
        kinds[nk++] = MODEL_GBDT;
        kinds[nk++] = MODEL_BASERATE;
    }
    if (store_begin(s, err) < 0) goto out;
    for (int i = 0; i < nk; i++) {
        if (train_one(s, kinds[i], &fit, &cal, &ev, r, &r->cand[r->ncand], err) < 0) {
            store_rollback(s);
            goto out;
        }
        r->ncand++;
    }
    r->best = 0;
    for (int i = 1; i < r->ncand; i++)
        if (r->cand[i].logloss < r->cand[r->best].logloss) r->best = i;
    /* Activating a model worse than the active one on the same evaluation
     * window needs force_activate: `train --kind baserate` silently
     * replaced a better model (issue 8). */
    int activate = o->activate;
    if (activate && !o->force_activate) {
        store_stmt *q;
        if (store_prepare(s, "SELECT id, json_extract(metrics, '$.eval_logloss') FROM models"
                             " WHERE active = 1 AND train_to = ? AND eval_to = ?", &q, err) < 0) {
            store_rollback(s);
            goto out;
        }
        store_value a = { SV_TEXT, r->eval_from, 0, 0 }, b = { SV_TEXT, r->eval_to, 0, 0 };
        store_bind(q, 1, &a, NULL);
        store_bind(q, 2, &b, NULL);
        if (store_step(q, NULL) == 1) {
            store_value id = store_column(q, 0), ll = store_column(q, 1);
            double cur = ll.kind == SV_REAL ? ll.r : ll.kind == SV_INT ? (double)ll.i : NAN;
            if (!isnan(cur) && cur < r->cand[r->best].logloss) {
                activate = 0;
                r->kept_model_id = id.i;
                r->kept_logloss = cur;
            }
        }
        store_finalize(q);
    }
    r->activated = activate;
    if (activate) {
        store_value v = { SV_INT, NULL, 0, r->cand[r->best].model_id };
        if (store_run(s, "UPDATE models SET active = (id = ?)", 1, &v, NULL, err) < 0) {
            store_rollback(s);
            goto out;
        }
    }
    char detail[512];
    snprintf(detail, sizeof detail, "{\"model\":%lld,\"kind\":\"%s\",\"eval_logloss\":%.5f,"
             "\"data_hash\":\"%s\",\"active\":%s}", (long long)r->cand[r->best].model_id,
             r->cand[r->best].kind, r->cand[r->best].logloss, r->data_hash, activate ? "true" : "false");
    if (store_audit(s, NULL, "model.train", r->cand[r->best].kind, detail, err) < 0 ||
        store_commit(s, err) < 0) {
        store_rollback(s);
        goto out;
    }
    rc = 0;
out:
    feat_set_free(&fit);
    feat_set_free(&cal);
    feat_set_free(&ev);
    feat_free(w);
    return rc;
}

/* ---- risk flags --------------------------------------------------------- */

void *scoring_rules_open(const char *root, prm_error *err)
{
    char dir[1024], cfg[1100];
    snprintf(dir, sizeof dir, "%s/rules/flags", root);
    rules *r;
    if (rules_load_dir(dir, &r, err) < 0) return NULL;
    snprintf(cfg, sizeof cfg, "%s/rules/config.lua", root);
    FILE *f = fopen(cfg, "r");
    if (f) {
        fclose(f);
        if (rules_configure(r, cfg, err) < 0) {
            rules_free(r);
            return NULL;
        }
    }
    return r;
}

void scoring_rules_close(void *ud)
{
    rules_free(ud);
}

int scoring_rules_flags(void *ud, const feat_deal_view *v, const char *today,
                        const double med[FEAT_STAGES], char *out, size_t cap)
{
    rules *r = ud;
    rule_deal d;
    rule_deal_init(&d);
    d.external_id = v->external_id;
    d.partner_id = v->partner_id;
    d.partner_tier = v->tier;
    d.partner_type = v->partner_type;
    d.partner_region = v->region;
    d.account = v->account;
    d.contact_name = v->contact_name;
    d.contact_email = v->contact_email;
    d.product_family = v->product_family;
    d.stage = v->stage;
    d.status = v->status;
    d.currency = v->currency;
    d.competitor = v->competitor;
    d.notes = v->notes;
    d.amount = v->amount;
    d.amount_usd = v->amount_usd;
    d.partner_probability = v->partner_probability;
    d.completeness = v->completeness;
    d.budget_confirmed = v->budget_confirmed;
    d.created_at = v->created_at[0] ? v->created_at : NULL;
    d.expected_close = v->has_close ? v->expected_close : NULL;
    d.stage_changed_at = v->stage_changed_at[0] ? v->stage_changed_at : NULL;
    d.updated_at = v->updated_at[0] ? v->updated_at : NULL;
    d.age_days = v->age_days;
    d.days_in_stage = v->days_in_stage;
    d.close_date_slips = v->close_date_slips;
    d.days_slipped = v->days_slipped;
    d.stage_regressions = v->stage_regressions;
    rule_ctx c;
    rule_ctx_init(&c, today);
    for (int i = 0; i < FEAT_STAGES && i < RULE_STAGES; i++) c.stage_median_days[i] = med[i];
    c.partner_win_rate = v->partner_win_rate;
    c.partner_median_amount = v->partner_median_amount;
    c.tier_median_amount = v->tier_median_amount;
    rule_hit hits[64];
    int n = 0;
    prm_error err;
    /* A rule that throws is isolated and counted by the rules engine; only
     * an engine failure reaches here. */
    if (rules_eval(r, &d, &c, hits, 64, &n, &err) < 0) return -1;
    if (rules_hits_json(hits, n, out, cap) < 0) return -1;
    return n;
}

/* ---- scoring ---------------------------------------------------------- */

static int load_model(store *s, int64_t want, model **m, int64_t *id, char kind[16], prm_error *err)
{
    store_stmt *st;
    const char *sql = want ? "SELECT id, kind, blob FROM models WHERE id = ?"
                           : "SELECT id, kind, blob FROM models WHERE active = 1 ORDER BY id DESC LIMIT 1";
    if (store_prepare(s, sql, &st, err) < 0) return -1;
    if (want) {
        store_value v = { SV_INT, NULL, 0, want };
        store_bind(st, 1, &v, NULL);
    }
    int rc = store_step(st, err);
    if (rc != 1) {
        store_finalize(st);
        if (rc == 0) {
            if (want) prm_error_set(err, "no model with id %lld", (long long)want);
            else prm_error_set(err, "no active model: run 'prmcast train' first");
        }
        return -1;
    }
    *id = store_column(st, 0).i;
    snprintf(kind, 16, "%s", store_column(st, 1).s);
    store_value b = store_column(st, 2);
    rc = model_load(b.s, strlen(b.s), m, err);
    store_finalize(st);
    return rc;
}

static double seconds_since(struct timespec *t0)
{
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double d = (double)(t1.tv_sec - t0->tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0->tv_nsec);
    *t0 = t1;
    return d;
}

static void drivers_json(jbuf *b, const model_driver *dr, int k, int keep)
{
    /* The strongest `keep/2` pushing up and `keep/2` pushing down. */
    int up = 0, down = 0, first = 1;
    jput(b, "[");
    for (int i = 0; i < k; i++) {
        int pos = dr[i].contribution > 0;
        if (dr[i].contribution == 0) continue;
        if (pos ? up >= keep / 2 : down >= keep / 2) continue;
        if (pos) up++; else down++;
        jput(b, "%s{\"feature\":", first ? "" : ",");
        first = 0;
        jstr(b, dr[i].feature);
        jput(b, ",\"contribution\":");
        jnum(b, dr[i].contribution);
        if (dr[i].level) {
            jput(b, ",\"level\":");
            jstr(b, dr[i].level);
        } else {
            jput(b, ",\"value\":");
            jnum(b, dr[i].value);
        }
        jput(b, "}");
    }
    jput(b, "]");
}

int scoring_score(store *s, const score_opts *o, score_result *r, prm_error *err)
{
    memset(r, 0, sizeof *r);
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    model *m = NULL;
    if (load_model(s, o->model_id, &m, &r->model_id, r->model_kind, err) < 0) return -1;
    feat_world *w;
    if (feat_load(s, &w, err) < 0) {
        model_free(m);
        return -1;
    }
    int64_t T;
    feat_set fs;
    memset(&fs, 0, sizeof fs);
    double *p = NULL;
    model_driver *dr = NULL;
    jbuf dj = { 0 }, fj = { 0 };
    store_stmt *ins = NULL;
    int rc = -1;
    if (resolve_as_of(w, o->as_of, &T, err) < 0 || feat_open(w, T, &fs, err) < 0) goto out;
    instant_iso(T, r->as_of);
    r->seconds_features = seconds_since(&t0);
    size_t nf = model_n_features(m);
    p = malloc(sizeof(double) * (fs.n + 1));
    dr = malloc(sizeof *dr * (nf + 1));
    if (!p || !dr) {
        prm_error_set(err, "out of memory");
        goto out;
    }
    if (model_predict(m, &fs.data, p, err) < 0) goto out;
    clip_probs(p, fs.n);
    r->seconds_model = seconds_since(&t0);

    const double *med = feat_open_medians(w);
    char now[21], today[11];
    now_iso(now);
    date_iso(T, today);
    if (store_begin(s, err) < 0) goto out;
    store_value v[3] = { { SV_INT, NULL, 0, r->model_id }, { SV_TEXT, r->as_of, 0, 0 },
                         { SV_TEXT, now, 0, 0 } };
    if (store_run(s, "INSERT INTO score_runs (model_id, as_of, started_at, status)"
                     " VALUES (?, ?, ?, 'running')", 3, v, &r->run_id, err) < 0) goto fail;
    if (store_prepare(s, "INSERT INTO scores (run_id, deal_id, probability, score, drivers, flags,"
                         " model_id, scored_at) VALUES (?,?,?,?,?,?,?,?)", &ins, err) < 0) goto fail;
    double sum = 0;
    for (size_t i = 0; i < fs.n; i++) {
        dj.n = fj.n = 0;
        double base;
        int k = model_explain(m, &fs.data, i, dr, nf, &base, err);
        if (k < 0) goto fail;
        drivers_json(&dj, dr, k, o->drivers);
        int nflags = 0;
        if (o->flags) {
            feat_deal_view view;
            feat_view(w, fs.deal[i], T, &view);
            char buf[4096];
            nflags = o->flags(o->flags_ud, &view, today, med, buf, sizeof buf);
            jput(&fj, "%s", nflags >= 0 ? buf : "[]");
        } else {
            jput(&fj, "[]");
        }
        r->flagged += nflags > 0;
        /* The 1-10 score: 1 + 9p, one decimal. */
        double score = round((1 + 9 * p[i]) * 10) / 10;
        store_value row[8] = {
            { SV_INT, NULL, 0, r->run_id }, { SV_INT, NULL, 0, feat_deal_rowid(w, fs.deal[i]) },
            { SV_REAL, NULL, p[i], 0 }, { SV_REAL, NULL, score, 0 }, { SV_TEXT, dj.s, 0, 0 },
            { SV_TEXT, fj.s, 0, 0 }, { SV_INT, NULL, 0, r->model_id }, { SV_TEXT, now, 0, 0 },
        };
        for (int c = 0; c < 8; c++) store_bind(ins, c + 1, &row[c], NULL);
        if (store_step(ins, err) < 0) goto fail;
        store_reset(ins);
        sum += p[i];
    }
    r->deals = fs.n;
    r->mean_p = fs.n ? sum / (double)fs.n : NAN;
    now_iso(now);
    store_value u[4] = { { SV_TEXT, now, 0, 0 }, { SV_INT, NULL, 0, (int64_t)r->deals },
                         { SV_INT, NULL, 0, (int64_t)r->flagged }, { SV_INT, NULL, 0, r->run_id } };
    if (store_run(s, "UPDATE score_runs SET finished_at = ?, deals = ?, flagged = ?,"
                     " status = 'ok' WHERE id = ?", 4, u, NULL, err) < 0) goto fail;
    char detail[256];
    snprintf(detail, sizeof detail, "{\"run\":%lld,\"model\":%lld,\"deals\":%zu,\"flagged\":%zu}",
             (long long)r->run_id, (long long)r->model_id, r->deals, r->flagged);
    if (store_audit(s, NULL, "score.run", r->as_of, detail, err) < 0) goto fail;
    if (store_commit(s, err) < 0) goto fail;
    r->seconds_store = seconds_since(&t0);
    rc = 0;
    goto out;
fail:
    store_rollback(s);
out:
    store_finalize(ins);
    free(dj.s);
    free(fj.s);
    free(p);
    free(dr);
    feat_set_free(&fs);
    feat_free(w);
    model_free(m);
    return rc;
}

int scoring_explain(store *s, const char *deal, int as_json, FILE *out, prm_error *err)
{
    store_stmt *st;
    if (store_prepare(s, "SELECT d.external_id, d.stage, d.amount, d.currency, p.external_id, p.tier,"
                         " s.probability, s.score, s.drivers, s.flags, s.run_id, r.as_of, m.id,"
                         " m.kind, m.version, d.partner_probability"
                         " FROM deals d JOIN partners p ON p.id = d.partner_id"
                         " JOIN scores s ON s.deal_id = d.id JOIN score_runs r ON r.id = s.run_id"
                         " LEFT JOIN models m ON m.id = s.model_id"
                         " WHERE d.external_id = ? ORDER BY s.run_id DESC LIMIT 1", &st, err) < 0)
        return -1;
    store_value v = { SV_TEXT, deal, 0, 0 };
    store_bind(st, 1, &v, NULL);
    int rc = store_step(st, err);
    if (rc != 1) {
        store_finalize(st);
        if (rc == 0) prm_error_set(err, "deal '%s' has no score (unknown deal, or not open when last scored)", deal);
        return -1;
    }
    store_value c[16];
    for (int i = 0; i < 16; i++) c[i] = store_column(st, i);
    /* Export data (ids, tier, stage, currency, reasons) goes through the
     * JSON writer or cli_text: raw control and ANSI escape bytes from an
     * export must not reach a terminal or break the JSON (issue 8). */
    if (as_json) {
        json j;
        json_init(&j);
        json_obj(&j);
        json_key(&j, "deal"); json_str(&j, c[0].s);
        json_key(&j, "probability"); json_num_fmt(&j, c[6].r, "%.6f");
        json_key(&j, "score"); json_num_fmt(&j, c[7].r, "%.1f");
        json_key(&j, "drivers"); json_raw(&j, c[8].s ? c[8].s : "[]");
        json_key(&j, "flags"); json_raw(&j, c[9].s ? c[9].s : "[]");
        json_key(&j, "run"); json_int(&j, c[10].i);
        json_key(&j, "as_of"); json_str(&j, c[11].s);
        json_key(&j, "model");
        json_obj(&j);
        json_key(&j, "id"); json_int(&j, c[12].i);
        json_key(&j, "kind"); json_str(&j, c[13].s ? c[13].s : "");
        json_key(&j, "version"); json_str(&j, c[14].s ? c[14].s : "");
        json_end(&j);
        json_end(&j);
        int failed = json_failed(&j);
        if (!failed) fprintf(out, "%s\n", json_cstr(&j));
        json_free(&j);
        if (failed) {
            store_finalize(st);
            return prm_error_set(err, "out of memory");
        }
    } else {
        fputs("deal ", out);
        cli_text(out, c[0].s, 0);
        fputs("  (partner ", out);
        cli_text(out, c[4].s, 0);
        fputs(", ", out);
        cli_text(out, c[5].s, 0);
        fputs(" tier)  stage ", out);
        cli_text(out, c[1].s, 0);
        fprintf(out, "  amount %.0f ", c[2].kind == SV_NULL ? NAN : c[2].kind == SV_INT ? (double)c[2].i : c[2].r);
        if (c[3].s) cli_text(out, c[3].s, 0);
        fputc('\n', out);
        fprintf(out, "  probability of close %.1f%%   score %.1f / 10", 100 * c[6].r, c[7].r);
        if (c[15].kind != SV_NULL)
            fprintf(out, "   (partner says %.0f%%)", 100 * (c[15].kind == SV_INT ? (double)c[15].i : c[15].r));
        fputs("\n  model ", out);
        cli_text(out, c[14].s ? c[14].s : "?", 0);
        fprintf(out, " (id %lld), run %lld as of ", (long long)c[12].i, (long long)c[10].i);
        cli_text(out, c[11].s, 0);
        fputs("\n  drivers (log-odds): ", out);
        cli_text(out, c[8].s ? c[8].s : "[]", 0);
        fputs("\n  flags: ", out);
        cli_text(out, c[9].s ? c[9].s : "[]", 0);
        fputc('\n', out);
    }
    store_finalize(st);
    return 0;
}
