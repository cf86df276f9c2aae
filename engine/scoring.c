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
#include "world.h"
#include "json.h"
#include "job.h"
#include "lprm.h"
#include "outbox.h"
#include "sandbox.h"
#include "version.h"   /* build/gen: the engine version in the mapping hash */
#include <lauxlib.h>
#include <unistd.h>

#define DAY 86400LL

void train_opts_init(train_opts *o)
{
    o->as_of = NULL;
    o->train_quarters = 8;
    o->step_days = HAZARD_STEP_DAYS;
    o->calib_share = 0.2;
    o->label_days = TRAIN_LABEL_DAYS;
    o->kind = "auto";
    o->activate = 1;
    o->scratch = 0;
}

void score_opts_init(score_opts *o)
{
    memset(o, 0, sizeof *o);
    o->drivers = 6;
}

/* Pseudo-deals of the all-strata offset in a stratum's anchoring offset
 * (model_anchor, scoring_open_probs): the win hazard's own shrinkage
 * (model_hazard_params.prior), not tuned. */
#define ANCHOR_PRIOR 20.0

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
/* The run's instant: `as_of`, else the engine clock. */
static int parse_as_of(const char *as_of, int64_t *t, prm_error *err)
{
    if (as_of) return clock_parse(as_of, t, err) < 0 ? prm_error_prefix(err, "as of: ") : 0;
    *t = clock_now();
    return 0;
}

static int resolve_as_of(const world *w, const char *as_of, int64_t *t, prm_error *err)
{
    if (world_last_observed(w) <= 0) return prm_error_set(err, "the store has no deal history yet");
    return parse_as_of(as_of, t, err);
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

/* The declared type of each tenant field the model was fitted on (feat.h),
 * kept in models.params as "tenant_fields": scoring refuses a store that
 * now declares one of them otherwise (check_tenant_fields). */
static void tenant_fields_json(json *j, const world *w, const model_data *d)
{
    json_key(j, "tenant_fields");
    json_obj(j);
    for (size_t i = 0; i < d->n_cols; i++) {
        const char *t = world_field_type(w, d->cols[i].name);
        if (t) { json_key(j, d->cols[i].name); json_str(j, t); }
    }
    json_end(j);
}

/* A model's tenant fields must still have the type it was trained with. */
typedef struct field_check {
    const world *w;
    int64_t model_id;
    prm_error *err;
} field_check;

static int check_field(void *ud, const char *field, const char *type)
{
    field_check *fc = ud;
    const char *now = world_field_type(fc->w, field);
    if (now && strcmp(now, type) == 0) return 0;
    return prm_error_set(fc->err, "model %lld was trained with tenant field '%s' as %s; the store now %s%s:"
                         " retrain ('prmcast train')", (long long)fc->model_id, field, type,
                         now ? "declares it " : "has no type for it", now ? now : "");
}

static int check_tenant_fields(store *s, int64_t model_id, const world *w, prm_error *err)
{
    field_check fc = { w, model_id, err };
    return store_model_tenant_fields(s, model_id, check_field, &fc, err) < 0 ? -1 : 0;
}

static void params_json(json *j, const model_params *p, const world *w, const model_data *d)
{
    json_obj(j);
    switch (p->kind) {
    case MODEL_LOGISTIC:
        json_key(j, "l2"); json_num(j, p->l2);
        json_key(j, "max_iter"); json_int(j, p->max_iter);
        break;
    case MODEL_GBDT:
        json_key(j, "learning_rate"); json_num(j, p->learning_rate);
        json_key(j, "max_iter"); json_int(j, p->max_iter);
        json_key(j, "max_leaf_nodes"); json_int(j, p->max_leaf_nodes);
        json_key(j, "min_samples_leaf"); json_int(j, p->min_samples_leaf);
        json_key(j, "max_bins"); json_int(j, p->max_bins);
        json_key(j, "early_stopping"); json_int(j, p->early_stopping);
        json_key(j, "validation_fraction"); json_num(j, p->validation_fraction);
        break;
    case MODEL_BASERATE:
        json_key(j, "prior_strength"); json_num(j, p->prior_strength);
        json_key(j, "keys"); json_arr(j); json_str(j, "tier"); json_str(j, "stage"); json_end(j);
        break;
    }
    tenant_fields_json(j, w, d);
    json_end(j);
}

static int register_model(store *s, const world *w, const model *m, const model_params *p, const train_result *r,
                          const train_candidate *c, const model_data *d, int64_t *id, prm_error *err)
{
    char *blob = NULL;
    size_t len;
    if (model_save(m, &blob, &len, err) < 0) return -1;
    json feats, params, metrics;
    json_init(&feats);
    json_init(&params);
    json_init(&metrics);
    json_arr(&feats);
    for (size_t i = 0; i < d->n_cols; i++) json_str(&feats, d->cols[i].name);
    json_end(&feats);
    params_json(&params, p, w, d);
    json_obj(&metrics);
    json_key(&metrics, "eval_auc"); json_num_fmt(&metrics, c->auc, "%.6g");
    json_key(&metrics, "eval_logloss"); json_num_fmt(&metrics, c->logloss, "%.6g");
    json_key(&metrics, "eval_brier"); json_num_fmt(&metrics, c->brier, "%.6g");
    json_key(&metrics, "eval_ece"); json_num_fmt(&metrics, c->ece, "%.6g");
    json_key(&metrics, "partner_probability_brier"); json_num_fmt(&metrics, r->partner_brier, "%.6g");
    json_key(&metrics, "n_fit"); json_int(&metrics, (int64_t)r->n_fit);
    json_key(&metrics, "n_calib"); json_int(&metrics, (int64_t)r->n_calib);
    json_key(&metrics, "calib_label_days"); json_int(&metrics, r->calib_label_days);
    json_key(&metrics, "n_eval"); json_int(&metrics, (int64_t)r->n_eval);
    json_key(&metrics, "calibrated"); json_bool(&metrics, model_calib_get_kind(m) != MODEL_CALIB_NONE);
    json_key(&metrics, "eval_from"); json_str(&metrics, r->eval_from);
    json_end(&metrics);
    char now[21], version[64];
    now_iso(now);
    snprintf(version, sizeof version, "%s-%.4s%.2s%.2s-%.8s", c->kind, r->as_of, r->as_of + 5,
             r->as_of + 8, r->data_hash);
    int rc;
    if (json_failed(&feats) || json_failed(&params) || json_failed(&metrics)) {
        rc = prm_error_set(err, "out of memory");
    } else {
        const char *const t[] = { c->kind, version, now, json_cstr(&feats), json_cstr(&params), r->train_from,
                            r->eval_from, r->eval_to, r->data_hash, json_cstr(&metrics), blob };
        rc = store_model_add(s, t, id, err);
    }
    json_free(&feats);
    json_free(&params);
    json_free(&metrics);
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

/* Some row won (y > 0) and some lost (y < 1); a censored row's P(win) is both. */
static int both_classes(const double *y, size_t n)
{
    int a = 0, b = 0;
    for (size_t i = 0; i < n; i++) {
        a |= y[i] > 0;
        b |= y[i] < 1;
    }
    return a && b;
}

/* The evaluation rows as the forecast would see them: each snapshot
 * instant's rows anchored to the win hazard as of that instant
 * (scoring_open_probs), from ev_h / ev_k (per row: the hazard's P(win) and
 * stratum then, -1 where it has none; NULL: no anchoring). */
static int anchor_rows(const feat_set *ev, const double *ev_h, const int32_t *ev_k, double *pe, prm_error *err)
{
    if (!ev_h || ev->n == 0) return 0;
    double *pp = malloc(sizeof(double) * ev->n), *hh = malloc(sizeof(double) * ev->n);
    int32_t *kk = malloc(sizeof(int32_t) * ev->n);
    size_t *ix = malloc(sizeof(size_t) * ev->n);
    unsigned char *done = calloc(ev->n, 1);
    int rc = 0;
    if (!pp || !hh || !kk || !ix || !done) rc = prm_error_set(err, "out of memory");
    for (size_t i = 0; rc == 0 && i < ev->n; i++) {
        if (done[i]) continue;
        size_t m = 0;
        for (size_t j = i; j < ev->n; j++)
            if (!done[j] && ev->at[j] == ev->at[i]) {
                done[j] = 1;
                ix[m] = j;
                pp[m] = pe[j];
                hh[m] = ev_h[j];
                kk[m++] = ev_k[j];
            }
        if (model_anchor(pp, kk, hh, m, FEAT_HAZARD_STRATA, ANCHOR_PRIOR, err) < 0) rc = -1;
        for (size_t k = 0; rc == 0 && k < m; k++) pe[ix[k]] = pp[k];
    }
    free(pp);
    free(hh);
    free(kk);
    free(ix);
    free(done);
    if (rc == 0) clip_probs(pe, ev->n);
    return rc;
}

static int train_one(store *s, const world *w, model_kind kind, const feat_set *fit, const feat_set *cal,
                     const feat_set *ev, const double *ev_h, const int32_t *ev_k, train_result *r,
                     train_candidate *c, prm_error *err)
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
    if (anchor_rows(ev, ev_h, ev_k, pe, err) < 0) {
        free(pe);
        model_free(m);
        return -1;
    }
    snprintf(c->kind, sizeof c->kind, "%s", model_kind_name(kind));
    c->auc = cls_auc(pe, ev->label, ev->n);
    c->logloss = cls_logloss(pe, ev->label, ev->n);
    c->brier = cls_brier(pe, ev->label, ev->n);
    c->ece = cls_ece(pe, ev->label, ev->n, 10);
    cls_reliability(pe, ev->label, ev->n, TRAIN_REL_BINS, c->rel);
    free(pe);
    int rc = register_model(s, w, m, &p, r, c, &dfit, &c->model_id, err);
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
    if (o->scratch && o->activate)
        return prm_error_set(err, "train: scratch candidates are rolled back, so none can be activated");
    world *w;
    if (world_load(s, &w, err) < 0) return -1;
    int64_t T;
    if (resolve_as_of(w, o->as_of, &T, err) < 0) {
        world_free(w);
        return -1;
    }
    int sm = world_fiscal_start(w);
    /* Windows, newest first. With label_days H > 0 every row is labelled
     * "won at all" as known at its cutoff, a deal still open then at its
     * P(win) from the win hazard as of the cutoff (feat_win_hazard:
     * censored deals are rows and at risk, so long-lived deals count and
     * no window has to wait for its labels to be observed). The
     * evaluation rows are the snapshots of the E = 91 days ending H days
     * before T, labelled as of T (the same long label as the calibrated
     * output); the fit and calibration rows (the last `calib_share`) the
     * snapshots before the evaluation window, labelled as of its start:
     * no outcome from the evaluation period reaches the model or its
     * calibrator. A young program (less than H + E + 2 * E days since its
     * first registration) gets H and E cut to a quarter of its history
     * each (H no less than TRAIN_LABEL_DAYS_MIN, E no less than 28 days),
     * the rest to fit on. Without a horizon (0): the newest complete
     * quarter before T evaluates, labels of deals resolved by each
     * cutoff, fit and calibration before it. The window starts no earlier
     * than the program's first registration. */
    int64_t first = world_first_created(w);
    int H = o->label_days, E = 91;
    int64_t eval_to, eval_from;   /* the fit and calibration parts end at eval_from */
    if (H > 0) {
        int64_t S = first != INT64_MIN ? (T - first) / DAY : INT64_MAX;
        if (S < (int64_t)H + 3 * E) {
            int64_t q = S / 4;
            H = (int)(q < H ? q : H);
            if (H < TRAIN_LABEL_DAYS_MIN) H = TRAIN_LABEL_DAYS_MIN;
            E = (int)(q < 28 ? 28 : q < E ? q : E);
        }
        eval_to = (T / DAY - H) * DAY;
        eval_from = eval_to - (int64_t)E * DAY;
    } else {
        eval_to = quarter_start_of(T, sm);
        eval_from = quarters_back(eval_to, 1, sm);
    }
    int64_t train_from = quarters_back(quarter_start_of(eval_from, sm), o->train_quarters, sm);
    if (first != INT64_MIN && train_from < first && first < eval_from) train_from = first;
    int64_t calib_from = eval_from - (int64_t)((double)(eval_from - train_from) * o->calib_share / DAY) * DAY;
    r->label_days = H;
    instant_iso(T, r->as_of);
    date_iso(train_from, r->train_from);
    date_iso(calib_from, r->calib_from);
    date_iso(eval_from, r->calib_to);
    date_iso(eval_from, r->eval_from);
    date_iso(eval_to, r->eval_to);

    /* The calibration rows are labelled as of the evaluation window's
     * start, like the fit's. Labelled as of T instead (outcomes from the
     * evaluation period in the calibrator, as before the win hazard), the
     * seed-7 backtest's P(win) ECE was 0.073 against 0.034
     * (bench/RESULTS.md). calib_label_days, from the calibration part's
     * end to its labels' cutoff, is therefore 0 (kept for the scripts and
     * metrics that read it). */
    r->calib_label_days = 0;
    feat_set fit, cal, ev;
    int rc = -1;
    memset(&fit, 0, sizeof fit);
    memset(&cal, 0, sizeof cal);
    memset(&ev, 0, sizeof ev);
    size_t nd = world_n_deals(w);
    double *p_from = NULL, *p_T = NULL, *ev_h = NULL, *hz = NULL;
    int32_t *ev_k = NULL, *hzk = NULL;
    if (H > 0) {
        p_from = malloc(sizeof(double) * (nd + 1));
        p_T = malloc(sizeof(double) * (nd + 1));
        if (!p_from || !p_T) {
            prm_error_set(err, "out of memory");
            goto out;
        }
        if (feat_win_hazard(w, eval_from, o->step_days, p_from, err) < 0 ||
            feat_win_hazard(w, T, o->step_days, p_T, err) < 0)
            goto out;
    }
    if (feat_snapshots(w, train_from, calib_from, o->step_days, eval_from, H, p_from, &fit, err) < 0 ||
        feat_snapshots(w, calib_from, eval_from, o->step_days, eval_from, H, p_from, &cal, err) < 0 ||
        feat_snapshots(w, eval_from, eval_to, o->step_days, T, H, p_T, &ev, err) < 0)
        goto out;
    if (feat_cap_levels(&fit, TENANT_CATEGORY_LEVELS) < 0) {
        prm_error_set(err, "out of memory");
        goto out;
    }
    r->n_fit = fit.n;
    r->n_calib = cal.n;
    r->n_eval = ev.n;
    r->closed_deals = distinct_deals(&fit, world_n_deals(w));
    if (fit.n == 0 || !both_classes(fit.label, fit.n)) {
        prm_error_set(err, "not enough history to train: %zu training rows between %s and %s"
                           " (need won and lost deals)", fit.n, r->train_from, r->calib_from);
        r->no_history = 1;
        goto out;
    }
    if (ev.n == 0 || !both_classes(ev.label, ev.n)) {
        prm_error_set(err, "no evaluation window: no won and lost deals open between %s and %s",
                      r->eval_from, r->eval_to);
        r->no_history = 1;
        goto out;
    }
    if (hash_set(&fit, r->data_hash) < 0) {
        prm_error_set(err, "cannot hash the training data (out of memory)");
        goto out;
    }
    partner_baseline(&ev, r);
    /* The hazard each evaluation row is anchored to, as of its snapshot
     * (nothing after it), computed once for every candidate. */
    {
        ev_h = malloc(sizeof(double) * (ev.n + 1));
        ev_k = malloc(sizeof(int32_t) * (ev.n + 1));
        hz = malloc(sizeof(double) * (nd + 1));
        hzk = malloc(sizeof(int32_t) * (nd + 1));
        if (!ev_h || !ev_k || !hz || !hzk) {
            prm_error_set(err, "out of memory");
            goto out;
        }
        for (size_t i = 0; i < ev.n; i++) ev_k[i] = -2;
        for (size_t i = 0; i < ev.n; i++) {
            if (ev_k[i] != -2) continue;
            int hr = feat_win_hazard_strata(w, ev.at[i], HAZARD_STEP_DAYS, hz, hzk, err);
            if (hr < 0) goto out;
            for (size_t j = i; j < ev.n; j++) {
                if (ev.at[j] != ev.at[i]) continue;
                size_t d = ev.deal[j];
                int ok = hr == 0 && hzk[d] >= 0 && !isnan(hz[d]);
                ev_h[j] = ok ? fmin(1 - P_FLOOR, fmax(P_FLOOR, hz[d])) : NAN;
                ev_k[j] = ok ? hzk[d] : -1;
            }
        }
    }

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
        if (train_one(s, w, kinds[i], &fit, &cal, &ev, ev_h, ev_k, r, &r->cand[r->ncand], err) < 0) {
            store_rollback(s);
            goto out;
        }
        r->ncand++;
    }
    r->best = 0;
    for (int i = 1; i < r->ncand; i++)
        if (r->cand[i].logloss < r->cand[r->best].logloss) r->best = i;
    /* A model that did worse on the same evaluation window than the active
     * one does not replace it unless asked (train --kind baserate after a
     * good gbdt, say). */
    int activate = o->activate != 0;
    if (o->activate == 1) {
        int64_t act_id;
        char act_kind[16];
        double act;
        int found = store_model_active_on(s, r->eval_to, &act_id, act_kind, &act, err);
        if (found < 0) {
            store_rollback(s);
            goto out;
        }
        if (found && act == act && act < r->cand[r->best].logloss) {
            activate = 0;
            snprintf(r->note, sizeof r->note, "kept the active model %lld (%s, log loss %.4f on the same"
                     " evaluation window) over %s (%.4f); --force-activate to switch",
                     (long long)act_id, act_kind, act, r->cand[r->best].kind, r->cand[r->best].logloss);
        }
    }
    r->activated = activate;
    if (activate) {
        if (store_model_activate(s, r->cand[r->best].model_id, err) < 0) {
            store_rollback(s);
            goto out;
        }
    }
    json det;
    json_init(&det);
    json_obj(&det);
    json_key(&det, "model"); json_int(&det, r->cand[r->best].model_id);
    json_key(&det, "kind"); json_str(&det, r->cand[r->best].kind);
    json_key(&det, "eval_logloss"); json_num_fmt(&det, r->cand[r->best].logloss, "%.5f");
    json_key(&det, "data_hash"); json_str(&det, r->data_hash);
    json_key(&det, "active"); json_bool(&det, activate);
    json_end(&det);
    int arc = store_audit(s, NULL, "model.train", r->cand[r->best].kind, json_cstr(&det), err);
    json_free(&det);
    if (arc < 0 || (!o->scratch && store_commit(s, err) < 0)) {
        store_rollback(s);
        goto out;
    }
    rc = 0;
out:
    free(p_from);
    free(p_T);
    free(ev_h);
    free(ev_k);
    free(hz);
    free(hzk);
    feat_set_free(&fit);
    feat_set_free(&cal);
    feat_set_free(&ev);
    world_free(w);
    return rc;
}

/* ---- risk flags --------------------------------------------------------- */

/* The shipped rules with rules/config.lua applied. One behaviour for every
 * caller: a file that fails to load, a rejected declaration or a bad config
 * entry is reported (in *warn, one line each) and counted; the valid parts
 * apply and the run goes on. NULL only when no rule could be loaded. */
static rules *open_rules(const char *root, char *warn, size_t cap, int *problems)
{
    char dir[1024], cfg[1100];
    snprintf(dir, sizeof dir, "%s/rules/flags", root);
    rules *r;
    prm_error err;
    size_t used = strlen(warn);
    if (rules_load_dir(dir, &r, &err) < 0) {
        snprintf(warn + used, cap - used, "risk rules: %s\n", err.msg);
        (*problems)++;
        return NULL;
    }
    rules_set_log(r, NULL);
    for (int k = 0; k < rules_load_errors(r); k++) {
        used = strlen(warn);
        snprintf(warn + used, cap - used, "risk rules: %s\n", rules_load_error(r, k));
        (*problems)++;
    }
    snprintf(cfg, sizeof cfg, "%s/rules/config.lua", root);
    FILE *f = fopen(cfg, "r");
    if (f) {
        fclose(f);
        if (rules_configure(r, cfg, &err) < 0) {
            used = strlen(warn);
            snprintf(warn + used, cap - used, "risk rules: %s (the valid entries apply)\n", err.msg);
            (*problems)++;
        }
    }
    return r;
}

void *scoring_rules_open(const char *root, prm_error *err)
{
    char warn[2048] = "";
    int problems = 0;
    rules *r = open_rules(root, warn, sizeof warn, &problems);
    if (!r) prm_error_set(err, "%s", warn);
    return r;
}

void scoring_rules_close(void *ud)
{
    rules_free(ud);
}

static int eval_flags(rules *r, const deal_view *v, const char *today, const double med[FEAT_STAGES],
                      rule_hit *hits, int max, int *n, prm_error *err)
{
    rule_ctx c;
    rule_ctx_init(&c, today);
    for (int i = 0; i < FEAT_STAGES && i < RULE_STAGES; i++) c.stage_median_days[i] = med[i];
    c.partner_win_rate = v->partner_win_rate;
    c.partner_median_amount = v->partner_median_amount;
    c.tier_median_amount = v->tier_median_amount;
    /* A rule that throws is isolated and counted by the rules engine; only
     * an engine failure reaches here. */
    return rules_eval(r, v, &c, hits, max, n, err);
}

int scoring_rules_flags(void *ud, const deal_view *v, const char *today,
                        const double med[FEAT_STAGES], char *out, size_t cap)
{
    rule_hit hits[64];
    int n = 0;
    prm_error err;
    if (eval_flags(ud, v, today, med, hits, 64, &n, &err) < 0) return -1;
    if (rules_hits_json(hits, n, out, cap) < 0) return -1;
    return n;
}

/* ---- scoring ---------------------------------------------------------- */

static int load_model(store *s, int64_t want, model **m, int64_t *id, char kind[16], char version[64],
                      prm_error *err)
{
    char *blob;
    int rc = store_model_get(s, want, id, kind, version, &blob, err);
    if (rc < 0) return -1;
    if (rc == 0) {
        if (want) prm_error_set(err, "no model with id %lld", (long long)want);
        else prm_error_set(err, "no active model: run 'prmcast train' first");
        return want ? -1 : -2;   /* -2: no active model (the forecast falls back) */
    }
    rc = model_load(blob, strlen(blob), m, err);
    free(blob);
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

/* The strongest `keep/2` pushing up and `keep/2` pushing down. */
static int pick_drivers(const model_driver *dr, int k, int keep, model_driver *out)
{
    int up = 0, down = 0, n = 0;
    for (int i = 0; i < k; i++) {
        int pos = dr[i].contribution > 0;
        if (dr[i].contribution == 0) continue;
        if (pos ? up >= keep / 2 : down >= keep / 2) continue;
        if (pos) up++; else down++;
        out[n++] = dr[i];
    }
    return n;
}

static void drivers_json(json *j, const model_driver *dr, int n)
{
    json_arr(j);
    for (int i = 0; i < n; i++) {
        json_obj(j);
        json_key(j, "feature");
        json_str(j, dr[i].feature);
        json_key(j, "contribution");
        json_num_fmt(j, dr[i].contribution, "%.6g");
        if (dr[i].level) {
            json_key(j, "level");
            json_str(j, dr[i].level);
        } else {
            json_key(j, "value");
            json_num_fmt(j, dr[i].value, "%.6g");
        }
        json_end(j);
    }
    json_end(j);
}

static void flags_json(json *j, const rule_hit *h, int n)
{
    json_arr(j);
    for (int i = 0; i < n; i++) {
        json_obj(j);
        json_key(j, "name");
        json_str(j, h[i].name);
        json_key(j, "severity");
        json_str(j, rules_severity_name(h[i].severity));
        json_key(j, "reason");
        json_str(j, h[i].reason);
        json_end(j);
    }
    json_end(j);
}

/* ---- the connector's write-back mapping, sandboxed ---------------------- */

typedef struct wbconn {
    lua_State *L;
    int fn_ref;                /* connector.writeback */
    char name[64];
    const char *skip[9];       /* keys left out of the comparison hash */
    char skipbuf[8][48];
    char mapping[65];          /* mapping_hash: engine, file, modules, volatile keys */
} wbconn;

static void wb_close(wbconn *c)
{
    if (c && c->L) sandbox_close(c->L);
    if (c) c->L = NULL;
}

/* The identity of a write-back mapping (scoring.h). */
int scoring_mapping_digest(const char *version, const char *text, size_t len,
                           const char *const *modules, const char *const *skip, char hex[65])
{
    hash_sha256 *h = hash_sha256_new();
    if (!h) {
        hex[0] = 0;
        return -1;
    }
    /* Each part with its terminating NUL (text with its length), so no two
     * different lists of parts hash alike. */
    static const char tag[] = "prmcast writeback mapping 2";
    hash_sha256_update(h, tag, sizeof tag);
    hash_sha256_update(h, version, strlen(version) + 1);
    char nbuf[32];
    int nl = snprintf(nbuf, sizeof nbuf, "%zu", len);
    hash_sha256_update(h, nbuf, (size_t)nl + 1);
    hash_sha256_update(h, text, len);
    for (int i = 0; modules && modules[i]; i += 2) {
        hash_sha256_update(h, "module", 7);
        hash_sha256_update(h, modules[i], strlen(modules[i]) + 1);
        const char *src = modules[i + 1] ? modules[i + 1] : "(builtin)";
        nl = snprintf(nbuf, sizeof nbuf, "%zu", strlen(src));
        hash_sha256_update(h, nbuf, (size_t)nl + 1);
        hash_sha256_update(h, src, strlen(src));
    }
    for (int i = 0; skip && skip[i]; i++) {
        hash_sha256_update(h, "skip", 5);
        hash_sha256_update(h, skip[i], strlen(skip[i]) + 1);
    }
    return hash_sha256_hex(h, hex);
}

/* The modules the connector may require, as name/source pairs for the
 * digest. */
typedef struct modlist {
    const char *v[2 * 64 + 1];
    char names[64][64];
    int n;
} modlist;

static void add_module(void *ud, const char *name, const char *src)
{
    modlist *m = ud;
    if (m->n >= 64) return;
    snprintf(m->names[m->n], sizeof m->names[0], "%s", name);
    m->v[2 * m->n] = m->names[m->n];
    m->v[2 * m->n + 1] = src;
    m->n++;
    m->v[2 * m->n] = NULL;
}

/* The mapping's hash as scoring_mapping_digest says, of this engine: a
 * score run skips a deal whose score row is unchanged only while this is
 * what the last run recorded, so an edited connector, an edited module it
 * may require (prm.map's dates, lookups; at load or later) or another engine (its builder for
 * HTTP connectors and its C modules) rebuilds every payload once. */
static int mapping_hash(wbconn *c, const char *path, prm_error *err)
{
    FILE *f = fopen(path, "rb");
    char *text = NULL;
    size_t len = 0, cap = 0;
    int rc = -1;
    if (!f) {
        wb_close(c);
        return prm_error_set(err, "connector %s: cannot read it to hash the mapping", path);
    }
    for (;;) {
        if (len == cap) {
            size_t ncap = cap ? 2 * cap : 16384;
            char *t = realloc(text, ncap);
            if (!t) goto out;
            text = t;
            cap = ncap;
        }
        size_t n = fread(text + len, 1, cap - len, f);
        if (n == 0) break;
        len += n;
    }
    if (ferror(f)) {
        fclose(f);
        free(text);
        wb_close(c);
        return prm_error_set(err, "connector %s: cannot read it to hash the mapping", path);
    }
    modlist *m = calloc(1, sizeof *m);
    if (!m) goto out;
    /* Every module a connector may require, not only those its loading
     * required: a require inside writeback (or a function it calls) runs
     * after this hash is taken (sandbox_each_allowed). */
    sandbox_each_allowed(SANDBOX_CONNECTOR, add_module, m);
    rc = scoring_mapping_digest(PRM_VERSION, text ? text : "", len, m->v, c->skip, c->mapping);
    free(m);
out:
    fclose(f);
    free(text);
    if (rc < 0) {
        wb_close(c);
        return prm_error_set(err, "out of memory hashing the connector");
    }
    return 0;
}

/* Loads the connector at the connector kind (no io/os) in its own state:
 * its writeback(s) builds each deal's payload. 0 when it has none (c->L
 * NULL), -1 on a load error. */
static int wb_open(wbconn *c, const char *path, const char *shown, prm_error *err)
{
    memset(c, 0, sizeof *c);
    c->fn_ref = LUA_NOREF;
    sandbox_opts o = { SANDBOX_CONNECTOR, 64u << 20, SANDBOX_RULE_INSTR, NULL, job_root(), 0, 0 };
    c->L = sandbox_new(&o, err);
    if (!c->L) return -1;
    char chunk[1100];
    snprintf(chunk, sizeof chunk, "@%s", shown);
    if (sandbox_loadfile(c->L, path, chunk, SANDBOX_CONNECTOR, err) < 0 || sandbox_call(c->L, 0, 1, err) < 0) {
        wb_close(c);
        return prm_error_prefix(err, "connector: ");
    }
    lua_State *L = c->L;
    if (!lua_istable(L, -1)) {
        wb_close(c);
        return prm_error_set(err, "connector %s: must return a table", shown);
    }
    lua_getfield(L, -1, "name");
    snprintf(c->name, sizeof c->name, "%s", lua_isstring(L, -1) ? lua_tostring(L, -1) : "connector");
    lua_pop(L, 1);
    /* Fields that change every run without changing anything for the PRM. */
    int ns = 0;
    c->skip[ns] = "ai_last_scored_at";
    snprintf(c->skipbuf[ns], sizeof c->skipbuf[0], "%s", "ai_last_scored_at");
    c->skip[ns] = c->skipbuf[ns];
    ns++;
    lua_getfield(L, -1, "writeback_volatile");
    if (lua_istable(L, -1))
        for (int i = 1; ns < 8 && lua_rawgeti(L, -1, i) == LUA_TSTRING; i++) {
            snprintf(c->skipbuf[ns], sizeof c->skipbuf[0], "%s", lua_tostring(L, -1));
            c->skip[ns] = c->skipbuf[ns];
            ns++;
            lua_pop(L, 1);
        }
    lua_settop(L, 1);
    c->skip[ns] = NULL;
    lua_getfield(L, -1, "writeback");
    if (lua_isnil(L, -1)) {
        /* An HTTP connector declares the request (writeback_request) and its
         * vendor-owned fields; the values are the canonical six. */
        lua_pop(L, 1);
        lua_getfield(L, -1, "writeback_request");
        int http = lua_isfunction(L, -1);
        lua_pop(L, 1);
        if (!http) {
            wb_close(c);
            return 0;
        }
        static const char builder[] =
            "return function(s)\n"
            "  local names, drivers = {}, {}\n"
            "  for _, f in ipairs(s.flags) do names[#names + 1] = f.name end\n"
            "  for i = 1, math.min(3, #s.drivers) do\n"
            "    local d = s.drivers[i]\n"
            "    drivers[i] = (d.contribution > 0 and '+ ' or '- ') .. d.feature\n"
            "  end\n"
            "  return { ai_forecast_score = s.score,\n"
            "           ai_close_probability = math.floor(s.probability * 1000 + 0.5) / 1000,\n"
            "           ai_risk_flags = table.concat(names, ','), ai_drivers = table.concat(drivers, '; '),\n"
            "           ai_model_version = s.model, ai_last_scored_at = s.scored_at }\n"
            "end\n";
        if (luaL_loadbufferx(L, builder, strlen(builder), "=[engine]/writeback", "t") != LUA_OK) {
            prm_error_set(err, "%s", lua_tostring(L, -1));
            wb_close(c);
            return -1;
        }
        sandbox_push_env(L, SANDBOX_CONNECTOR);
        lua_setupvalue(L, -2, 1);
        if (sandbox_call(L, 0, 1, err) < 0) {
            wb_close(c);
            return -1;
        }
    }
    if (!lua_isfunction(L, -1)) {
        wb_close(c);
        return prm_error_set(err, "%s: field 'writeback' must be a function", shown);
    }
    c->fn_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_settop(L, 0);
    return mapping_hash(c, path, err);
}

typedef struct wbdeal {
    const char *deal, *source, *scored_at, *model, *as_of;
    double probability, score;
    const model_driver *dr;
    int ndr;
    const rule_hit *hits;
    int nhits;
} wbdeal;

/* may raise: run protected. Builds the argument table s of writeback(s). */
static int wb_push_arg(lua_State *L)
{
    const wbdeal *d = lua_touserdata(L, 1);
    lua_createtable(L, 0, 10);
    lua_pushstring(L, d->deal); lua_setfield(L, -2, "deal");
    lua_pushstring(L, d->source); lua_setfield(L, -2, "source");
    lua_pushnumber(L, d->probability); lua_setfield(L, -2, "probability");
    lua_pushnumber(L, d->score); lua_setfield(L, -2, "score");
    lua_pushstring(L, d->scored_at); lua_setfield(L, -2, "scored_at");
    lua_pushstring(L, d->as_of); lua_setfield(L, -2, "as_of");
    lua_pushstring(L, d->model); lua_setfield(L, -2, "model");
    lua_createtable(L, d->ndr, 0);
    for (int i = 0; i < d->ndr; i++) {
        lua_createtable(L, 0, 3);
        lua_pushstring(L, d->dr[i].feature); lua_setfield(L, -2, "feature");
        lua_pushnumber(L, d->dr[i].contribution); lua_setfield(L, -2, "contribution");
        if (d->dr[i].level) lua_pushstring(L, d->dr[i].level);
        else if (d->dr[i].value == d->dr[i].value) lua_pushnumber(L, d->dr[i].value);
        else lua_pushnil(L);
        lua_setfield(L, -2, d->dr[i].level ? "level" : "value");
        lua_rawseti(L, -2, i + 1);
    }
    lua_setfield(L, -2, "drivers");
    lua_createtable(L, d->nhits, 0);
    for (int i = 0; i < d->nhits; i++) {
        lua_createtable(L, 0, 3);
        lua_pushstring(L, d->hits[i].name); lua_setfield(L, -2, "name");
        lua_pushstring(L, rules_severity_name(d->hits[i].severity)); lua_setfield(L, -2, "severity");
        lua_pushstring(L, d->hits[i].reason); lua_setfield(L, -2, "reason");
        lua_rawseti(L, -2, i + 1);
    }
    lua_setfield(L, -2, "flags");
    return 1;
}

/* The payload of one deal as JSON (*payload) and the hash it is compared
 * by; 1 when writeback returned one, 0 when it returned nil/false. */
static int wb_payload(wbconn *c, const wbdeal *d, json *payload, char hash[65], prm_error *err)
{
    lua_State *L = c->L;
    lua_rawgeti(L, LUA_REGISTRYINDEX, c->fn_ref);
    lua_pushcfunction(L, wb_push_arg);
    lua_pushlightuserdata(L, (void *)d);
    if (sandbox_call(L, 1, 1, err) < 0) {
        lua_pop(L, 1);
        return prm_error_prefix(err, "connector writeback for %s: ", d->deal);
    }
    if (sandbox_call(L, 1, 1, err) < 0) return prm_error_prefix(err, "connector writeback for %s: ", d->deal);
    int rc = 0;
    if (lua_toboolean(L, -1)) {
        json_reset(payload);
        json cmp;
        json_init(&cmp);
        if (lprm_json_encode(L, -1, payload, &cmp, c->skip, err) < 0) {
            rc = prm_error_prefix(err, "connector writeback for %s: ", d->deal);
        } else {
            hash_sha256 *h = hash_sha256_new();
            hash_sha256_update(h, json_cstr(&cmp), strlen(json_cstr(&cmp)));
            rc = hash_sha256_hex(h, hash) < 0 ? prm_error_set(err, "out of memory hashing a payload") : 1;
        }
        json_free(&cmp);
    }
    lua_settop(L, 0);
    return rc;
}

/* ---- the scorer --------------------------------------------------------- */

struct scorer {
    store *s;
    model *m;
    world *w;
    rules *r;
    wbconn wb;
    int64_t T;
    char as_of[21], today[11], now[21];
    int drivers;
    model_driver *dr;          /* model_explain's scratch, nf + 1, reused per deal */
    score_result res;
};

int scorer_open(store *s, const score_opts *o, scorer **out, prm_error *err)
{
    *out = NULL;
    scorer *sc = calloc(1, sizeof *sc);
    if (!sc) return prm_error_set(err, "out of memory");
    sc->s = s;
    sc->drivers = o->drivers > 0 ? o->drivers : 6;
    score_result *r = &sc->res;
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    char version[64];
    if (load_model(s, o->model_id, &sc->m, &r->model_id, r->model_kind, version, err) < 0) goto fail;
    snprintf(r->model_version, sizeof r->model_version, "%s", version);
    sc->dr = malloc(sizeof *sc->dr * (model_n_features(sc->m) + 1));
    if (!sc->dr) {
        prm_error_set(err, "out of memory");
        goto fail;
    }
    /* A world for T alone: full history only for the deals the features
     * at T read (world_load_as_of), not every deal's. */
    if (parse_as_of(o->as_of, &sc->T, err) < 0) goto fail;
    if (world_load_as_of(s, sc->T, &sc->w, err) < 0) goto fail;
    if (world_last_observed(sc->w) <= 0) {
        prm_error_set(err, "the store has no deal history yet");
        goto fail;
    }
    if (check_tenant_fields(s, r->model_id, sc->w, err) < 0) goto fail;
    instant_iso(sc->T, sc->as_of);
    date_iso(sc->T, sc->today);
    /* Every timestamp of the run is the engine clock: a run pinned to an
     * instant writes the same bytes twice. */
    now_iso(sc->now);
    snprintf(r->as_of, sizeof r->as_of, "%s", sc->as_of);
    const char *ex;
    r->conflicts = world_conflicts(sc->w, &ex);
    if (ex) snprintf(r->conflict_example, sizeof r->conflict_example, "%s", ex);
    if (feat_prepare(sc->w, sc->T, err) < 0) goto fail;
    if (o->flags) sc->r = open_rules(job_root(), r->warnings, sizeof r->warnings, &r->rule_problems);
    if (o->connector) {
        char path[1100];
        const char *shown = o->connector;
        if (o->connector[0] == '/' || access(o->connector, R_OK) == 0)
            snprintf(path, sizeof path, "%s", o->connector);
        else
            snprintf(path, sizeof path, "%s/%s", job_root(), o->connector);
        if (wb_open(&sc->wb, path, shown, err) < 0) goto fail;
        snprintf(r->target, sizeof r->target, "%s", sc->wb.L ? sc->wb.name : "");
    }
    r->seconds_features = seconds_since(&t0);
    *out = sc;
    return 0;
fail:
    scorer_close(sc);
    return -1;
}

void scorer_close(scorer *sc)
{
    if (!sc) return;
    wb_close(&sc->wb);
    rules_free(sc->r);
    world_free(sc->w);
    model_free(sc->m);
    free(sc->dr);
    free(sc);
}

const score_result *scorer_result(const scorer *sc) { return &sc->res; }

/* Scores row i of fs (deal fs->deal[i]) into d; x: an explainer of fs. */
static int score_row(scorer *sc, model_explainer *x, const feat_set *fs, size_t i, double p, scored_deal *d,
                     prm_error *err)
{
    memset(d, 0, sizeof *d);
    size_t nf = model_n_features(sc->m);
    double base;
    int k = model_explainer_row(x, i, sc->dr, nf, &base, err);
    if (k < 0) return -1;
    d->ndrivers = pick_drivers(sc->dr, k, sc->drivers, d->drivers);
    d->deal = fs->deal[i];
    d->probability = p;
    /* The 1-10 score: 1 + 9p, one decimal. */
    d->score = round((1 + 9 * p) * 10) / 10;
    feat_view(sc->w, fs->deal[i], sc->T, &d->view);
    if (sc->r) {
        const double *med = feat_medians(sc->w);
        if (eval_flags(sc->r, &d->view, sc->today, med, d->hits, SCORE_MAX_FLAGS, &d->nhits, err) < 0) return -1;
    }
    return 0;
}

int scorer_deal(scorer *sc, const char *external_id, scored_deal *out, prm_error *err)
{
    long i = world_find_deal(sc->w, external_id);
    if (i < 0) return prm_error_set(err, "unknown deal '%s'", external_id);
    if (!world_deal_open(sc->w, (size_t)i, sc->T))
        return prm_error_set(err, "deal '%s' is not open as of %s", external_id, sc->as_of);
    feat_set fs;
    if (feat_one(sc->w, (size_t)i, sc->T, &fs, err) < 0) return -1;
    double p;
    int rc = model_predict(sc->m, &fs.data, &p, err);
    model_explainer *x = NULL;
    if (rc == 0) rc = model_explainer_open(sc->m, &fs.data, &x, err);
    if (rc == 0) {
        clip_probs(&p, 1);
        rc = score_row(sc, x, &fs, 0, p, out, err);
    }
    model_explainer_free(x);
    feat_set_free(&fs);
    return rc;
}

int scorer_run(scorer *sc, score_result *res, prm_error *err)
{
    score_result *r = &sc->res;
    store *s = sc->s;
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    feat_set fs;
    memset(&fs, 0, sizeof fs);
    double *p = NULL;
    model_explainer *x = NULL;
    json dj, fj, pj;
    json_init(&dj);
    json_init(&fj);
    json_init(&pj);
    int rc = -1;
    if (feat_open(sc->w, sc->T, &fs, err) < 0) goto out;
    p = malloc(sizeof(double) * (fs.n + 1));
    if (!p) {
        prm_error_set(err, "out of memory");
        goto out;
    }
    if (model_predict(sc->m, &fs.data, p, err) < 0) goto out;
    clip_probs(p, fs.n);
    if (model_explainer_open(sc->m, &fs.data, &x, err) < 0) goto out;
    r->seconds_model = seconds_since(&t0);

    /* Scores, the run and its write-back payloads commit together: a kill
     * at any point leaves either all of them or none. */
    if (store_begin(s, err) < 0) goto out;
    if (store_score_run_begin(s, r->model_id, sc->as_of, sc->now, &r->run_id, err) < 0) goto fail;
    /* Payloads are rebuilt only for deals whose score row changed since
     * their live payload, and only while the mapping is the one the last
     * run recorded (mapping_hash). */
    char mkey[96], last_mapping[65] = "";
    int keep_ok = 0;
    if (sc->wb.L) {
        snprintf(mkey, sizeof mkey, "writeback_mapping.%s", sc->wb.name);
        int found = store_setting(s, mkey, last_mapping, sizeof last_mapping, err);
        if (found < 0) goto fail;
        keep_ok = found && strcmp(last_mapping, sc->wb.mapping) == 0;
    }
    double sum = 0;
    for (size_t i = 0; i < fs.n; i++) {
        scored_deal d;
        if (score_row(sc, x, &fs, i, p[i], &d, err) < 0) goto fail;
        json_reset(&dj);
        json_reset(&fj);
        drivers_json(&dj, d.drivers, d.ndrivers);
        flags_json(&fj, d.hits, d.nhits);
        if (json_failed(&dj) || json_failed(&fj)) {
            prm_error_set(err, "out of memory");
            goto fail;
        }
        r->flagged += d.nhits > 0;
        int64_t rowid = world_deal_rowid(sc->w, d.deal);
        if (store_score_add(s, r->run_id, rowid, d.probability, d.score, json_cstr(&dj), json_cstr(&fj),
                            r->model_id, sc->now, err) < 0)
            goto fail;
        sum += d.probability;
        int same = 0;
        if (keep_ok && outbox_unchanged(s, sc->wb.name, rowid, d.probability, d.score, r->model_id,
                                        json_cstr(&dj), json_cstr(&fj), &same, err) < 0)
            goto fail;
        r->kept += same;
        if (sc->wb.L && !same) {
            wbdeal wd = { world_deal_id(sc->w, d.deal), world_deal_source(sc->w, d.deal), sc->now,
                          r->model_version, sc->as_of, d.probability, d.score, d.drivers, d.ndrivers,
                          d.hits, d.nhits };
            char hash[65];
            int has = wb_payload(&sc->wb, &wd, &pj, hash, err);
            if (has < 0) goto fail;
            int queued = 0;
            if (has && outbox_queue(s, r->run_id, rowid, wd.deal, sc->wb.name, json_cstr(&pj), hash,
                                    &queued, err) < 0)
                goto fail;
            r->queued += queued;
            r->unchanged += has && !queued;
        }
    }
    r->deals = fs.n;
    r->mean_p = fs.n ? sum / (double)fs.n : NAN;
    for (int i = 0; sc->r && i < rules_count(sc->r); i++) {
        r->rule_errors += rules_errors(sc->r, i);
        r->rules_disabled += rules_disabled(sc->r, i);
        if (rules_errors(sc->r, i)) {
            size_t used = strlen(r->warnings);
            snprintf(r->warnings + used, sizeof r->warnings - used, "rule %s failed on %ld deal(s)%s: %s\n",
                     rules_name(sc->r, i), rules_errors(sc->r, i),
                     rules_disabled(sc->r, i) ? " and was switched off" : "",
                     rules_error_msg(sc->r, i, 0) ? rules_error_msg(sc->r, i, 0) : "");
        }
    }
    if (sc->wb.L && !keep_ok && store_setting_set(s, mkey, sc->wb.mapping, err) < 0) goto fail;
    if (store_score_run_end(s, r->run_id, sc->now, (int64_t)r->deals, (int64_t)r->flagged,
                            (int64_t)(r->rule_errors + r->rule_problems), (int64_t)r->queued, err) < 0)
        goto fail;
    json a;
    json_init(&a);
    json_obj(&a);
    json_key(&a, "run"); json_int(&a, r->run_id);
    json_key(&a, "model"); json_int(&a, r->model_id);
    json_key(&a, "deals"); json_int(&a, (int64_t)r->deals);
    json_key(&a, "flagged"); json_int(&a, (int64_t)r->flagged);
    json_key(&a, "queued"); json_int(&a, (int64_t)r->queued);
    json_end(&a);
    int arc = store_audit(s, NULL, "score.run", sc->as_of, json_cstr(&a), err);
    json_free(&a);
    if (arc < 0) goto fail;
    if (store_commit(s, err) < 0) goto fail;
    r->seconds_store = seconds_since(&t0);
    rc = 0;
    goto out;
fail:
    store_rollback(s);
out:
    json_free(&dj);
    json_free(&fj);
    json_free(&pj);
    free(p);
    model_explainer_free(x);
    feat_set_free(&fs);
    if (res) *res = *r;
    return rc;
}

int scoring_score(store *s, const score_opts *o, score_result *r, prm_error *err)
{
    memset(r, 0, sizeof *r);
    scorer *sc;
    if (scorer_open(s, o, &sc, err) < 0) return -1;
    int rc = scorer_run(sc, r, err);
    scorer_close(sc);
    return rc;
}

int scoring_explain(store *s, const char *deal, explain_result *x, prm_error *err)
{
    memset(x, 0, sizeof *x);
    store_last_score ls;
    int rc = store_score_last(s, deal, &ls, err);
    if (rc < 0) return -1;
    if (rc == 0) return prm_error_set(err, "deal '%s' has no score (unknown deal, or not open when last scored)", deal);
    snprintf(x->deal, sizeof x->deal, "%s", ls.deal);
    snprintf(x->as_of, sizeof x->as_of, "%s", ls.as_of);
    snprintf(x->scored_at, sizeof x->scored_at, "%s", ls.scored_at);
    snprintf(x->model_kind, sizeof x->model_kind, "%s", ls.model_kind);
    snprintf(x->model_version, sizeof x->model_version, "%s", ls.model_version);
    x->run_id = ls.run_id;
    x->model_id = ls.model_id;
    x->probability = ls.probability;
    x->score = ls.score;
    x->drivers = ls.drivers;
    x->flags = ls.flags;
    /* The deal as it was when scored (the run's as-of) and as it is now. */
    world *w;
    if (world_load(s, &w, err) < 0) {
        explain_free(x);
        return -1;
    }
    x->world = w;
    long i = world_find_deal(w, deal);
    int64_t then;
    if (i < 0 || clock_parse(x->as_of, &then, NULL) < 0) {
        explain_free(x);
        return prm_error_set(err, "deal '%s': cannot rebuild it as of %s", deal, x->as_of);
    }
    world_view(w, (size_t)i, then, &x->then);
    world_view(w, (size_t)i, clock_now(), &x->now);
    x->changed = strcmp(x->then.stage ? x->then.stage : "", x->now.stage ? x->now.stage : "") != 0 ||
                 strcmp(x->then.status ? x->then.status : "", x->now.status ? x->now.status : "") != 0 ||
                 strcmp(x->then.expected_close, x->now.expected_close) != 0 ||
                 !(x->then.amount == x->now.amount || (x->then.amount != x->then.amount && x->now.amount != x->now.amount));
    return 0;
}

void explain_free(explain_result *x)
{
    free(x->drivers);
    free(x->flags);
    world_free(x->world);
    x->drivers = x->flags = NULL;
    x->world = NULL;
}

/* ---- P(win) for the forecast ------------------------------------------ */


/* The model's calibrated P(win) of every deal open at `at` (scoring.h). */
int scoring_model_probs(store *s, world *w, int64_t model_id, int64_t at, double *p, size_t *n_open,
                        int64_t *used_model, prm_error *err)
{
    model *m = NULL;
    int64_t id = 0;
    char kind[16], version[64];
    int rc = load_model(s, model_id, &m, &id, kind, version, err);
    if (rc == -2) return 1;
    if (rc < 0) return -1;
    feat_set fs;
    memset(&fs, 0, sizeof fs);
    double *q = NULL;
    rc = -1;
    if (check_tenant_fields(s, id, w, err) < 0 || feat_open(w, at, &fs, err) < 0) goto out;
    q = malloc(sizeof(double) * (fs.n + 1));
    if (!q) {
        prm_error_set(err, "out of memory");
        goto out;
    }
    if (model_predict(m, &fs.data, q, err) < 0) goto out;
    clip_probs(q, fs.n);
    size_t nd = world_n_deals(w);
    for (size_t i = 0; i < nd; i++) p[i] = NAN;
    for (size_t i = 0; i < fs.n; i++) p[fs.deal[i]] = q[i];
    if (n_open) *n_open = fs.n;
    if (used_model) *used_model = id;
    rc = 0;
out:
    free(q);
    feat_set_free(&fs);
    model_free(m);
    return rc;
}

int scoring_open_probs(store *s, world *w, int64_t model_id, int64_t at, double *p, size_t *n_open,
                       int64_t *used_model, prm_error *err)
{
    int rc = scoring_model_probs(s, w, model_id, at, p, n_open, used_model, err);
    if (rc != 0) return rc;
    /* Anchored to the win hazard as of `at` (model_anchor): each stage x
     * age stratum's open deals keep the model's order and spread inside
     * the stratum at the hazard's level for it. The model and its
     * calibrator learnt on snapshots at least H + 91 days old, labelled
     * then (a young program's labels knew its fast losses only); the
     * hazard counts every outcome up to `at`, the censored deals at risk.
     * On the seed-7 / seed-11 backtests P(win) ECE 0.036 / 0.039 -> 0.026
     * / 0.026 (bench/RESULTS.md, issue 9 item 5). */
    size_t nd = world_n_deals(w);
    double *h = malloc(sizeof(double) * (nd + 1));
    int32_t *hs = malloc(sizeof(int32_t) * (nd + 1));
    rc = -1;
    if (!h || !hs) {
        prm_error_set(err, "out of memory");
        goto out;
    }
    int hr = feat_win_hazard_strata(w, at, HAZARD_STEP_DAYS, h, hs, err);
    if (hr < 0) goto out;
    if (hr == 0) {
        for (size_t i = 0; i < nd; i++)
            if (isnan(p[i]) || isnan(h[i])) hs[i] = -1;
            else h[i] = fmin(1 - P_FLOOR, fmax(P_FLOOR, h[i]));
        if (model_anchor(p, hs, h, nd, FEAT_HAZARD_STRATA, ANCHOR_PRIOR, err) < 0) goto out;
        for (size_t i = 0; i < nd; i++)
            if (!isnan(p[i])) clip_probs(&p[i], 1);
    }
    rc = 0;
out:
    free(h);
    free(hs);
    return rc;
}
