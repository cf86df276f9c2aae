/* cmd_train.c - `prmcast train`: fit, calibrate, evaluate and register the
 * deal models; print the comparison. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "job.h"
#include "json.h"
#include "scoring.h"
#include "store.h"

int cmd_train(int argc, char **argv, const cli *c);

static void num(double x, const char *fmt)
{
    if (isnan(x)) printf("%9s", "-");
    else printf(fmt, x);
}

static void bins_json(json *j, const cls_bin *b)
{
    json_arr(j);
    for (int i = 0; i < TRAIN_REL_BINS; i++) {
        json_obj(j);
        json_key(j, "lo"); json_num(j, b[i].lo);
        json_key(j, "hi"); json_num(j, b[i].hi);
        json_key(j, "n"); json_int(j, (int64_t)b[i].count);
        json_key(j, "mean_p"); json_num(j, b[i].count ? b[i].mean_p : NAN);
        json_key(j, "mean_y"); json_num(j, b[i].count ? b[i].mean_y : NAN);
        json_end(j);
    }
    json_end(j);
}

int cmd_train(int argc, char **argv, const cli *c)
{
    train_opts o;
    train_opts_init(&o);
    int reliability = 0, quiet = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        long x;
        if (strcmp(a, "--kind") == 0) {
            if (!v) return cli_usage(c, "train", "--kind needs one of auto, logistic, gbdt, baserate");
            o.kind = v;
            i++;
        } else if (strcmp(a, "--train-quarters") == 0) {
            if (cli_int(c, "train", a, v, 1, 40, &x) < 0) return EXIT_USAGE;
            o.train_quarters = (int)x;
            i++;
        } else if (strcmp(a, "--step-days") == 0) {
            if (cli_int(c, "train", a, v, 1, 92, &x) < 0) return EXIT_USAGE;
            o.step_days = (int)x;
            i++;
        } else if (strcmp(a, "--label-days") == 0) {
            if (cli_int(c, "train", a, v, 0, 3650, &x) < 0) return EXIT_USAGE;
            o.label_days = (int)x;
            i++;
        } else if (strcmp(a, "--no-activate") == 0) {
            o.activate = 0;
        } else if (strcmp(a, "--force-activate") == 0) {
            o.activate = 2;
        } else if (strcmp(a, "--reliability") == 0) {
            reliability = 1;
        } else if (strcmp(a, "--quiet") == 0) {
            quiet = 1;
        } else {
            return cli_usage(c, "train", "%s '%s'", a[0] == '-' ? "unknown option" : "unexpected argument", a);
        }
    }
    if (strcmp(o.kind, "auto") && strcmp(o.kind, "logistic") && strcmp(o.kind, "gbdt") && strcmp(o.kind, "baserate"))
        return cli_usage(c, "train", "unknown model kind '%s' (auto, logistic, gbdt, baserate)", o.kind);
    prm_error err;
    store *s = cli_store(c, 1, &err);
    if (!s) return cli_fail(c, "train", "%s", err.msg);
    int64_t job;
    if (job_open(s, "train", argc - 1, argv + 1, &job, &err) < 0) {
        store_close(s);
        return cli_fail(c, "train", "%s", err.msg);
    }
    cli_progress(c, "building training snapshots and fitting models...");
    train_result r;
    int rc = scoring_train(s, &o, &r, &err);
    json j;
    json_init(&j);
    if (rc == 0) {
        const train_candidate *b = &r.cand[r.best];
        json_obj(&j);
        json_key(&j, "model"); json_int(&j, b->model_id);
        json_key(&j, "kind"); json_str(&j, b->kind);
        json_key(&j, "activated"); json_bool(&j, r.activated);
        json_key(&j, "as_of"); json_str(&j, r.as_of);
        json_key(&j, "eval_logloss"); json_num(&j, b->logloss);
        json_key(&j, "eval_auc"); json_num(&j, b->auc);
        json_key(&j, "eval_brier"); json_num(&j, b->brier);
        json_key(&j, "eval_ece"); json_num(&j, b->ece);
        json_key(&j, "partner_brier"); json_num(&j, r.partner_brier);
        json_key(&j, "candidates");
        json_arr(&j);
        for (int i = 0; i < r.ncand; i++) {
            json_obj(&j);
            json_key(&j, "kind"); json_str(&j, r.cand[i].kind);
            json_key(&j, "model_id"); json_int(&j, r.cand[i].model_id);
            json_key(&j, "eval_auc"); json_num(&j, r.cand[i].auc);
            json_key(&j, "eval_logloss"); json_num(&j, r.cand[i].logloss);
            json_key(&j, "eval_brier"); json_num(&j, r.cand[i].brier);
            json_key(&j, "eval_ece"); json_num(&j, r.cand[i].ece);
            if (reliability) {
                json_key(&j, "reliability");
                bins_json(&j, r.cand[i].rel);
            }
            json_end(&j);
        }
        json_end(&j);
        if (reliability) {
            json_key(&j, "partner_reliability");
            bins_json(&j, r.partner_rel);
        }
        json_end(&j);
    }
    job_close(s, "train", job, rc == 0, json_cstr(&j), err.msg);
    store_close(s);
    if (rc < 0) {
        json_free(&j);
        return cli_fail(c, "train", "%s", err.msg);
    }
    if (r.note[0]) fprintf(stderr, "prmcast train: %s\n", r.note);
    if (c->json) {
        printf("%s\n", json_cstr(&j));
        json_free(&j);
        return EXIT_OK;
    }
    json_free(&j);
    if (quiet) return EXIT_OK;
    printf("train as of %s: fit %s..%s (%zu rows), calibrate %s..%s (%zu), evaluate %s..%s (%zu)\n",
           r.as_of, r.train_from, r.calib_from, r.n_fit, r.calib_from, r.calib_to, r.n_calib,
           r.eval_from, r.eval_to, r.n_eval);
    if (r.label_days > 0)
        printf("  label: won at all, a deal still open at the cutoff at its win-hazard P(win) (fit and calibration"
               " as of %s, evaluation as of T); evaluation ends %d days before T\n", r.eval_from, r.label_days);
    if (r.cold_start) printf("  cold start: %zu deals with an observed label in the fit window, base rates only\n", r.closed_deals);
    printf("  %-10s %6s %9s %9s %9s %9s\n", "model", "id", "AUC", "log loss", "Brier", "ECE");
    for (int i = 0; i < r.ncand; i++) {
        const train_candidate *k = &r.cand[i];
        printf("  %-10s %6lld ", k->kind, (long long)k->model_id);
        num(k->auc, "%9.4f");
        putchar(' ');
        num(k->logloss, "%9.4f");
        putchar(' ');
        num(k->brier, "%9.4f");
        putchar(' ');
        num(k->ece, "%9.4f");
        printf("%s\n", i == r.best ? (r.activated ? "  <- best, now active" : "  <- best") : "");
    }
    printf("  %-10s %6s ", "partner", "");
    num(r.partner_auc, "%9.4f");
    putchar(' ');
    num(r.partner_logloss, "%9.4f");
    putchar(' ');
    num(r.partner_brier, "%9.4f");
    if (!isnan(r.partner_brier))
        printf("    (partner-submitted probability, Brier %.0f%% lower with the model)\n",
               100 * (1 - r.cand[r.best].brier / r.partner_brier));
    else
        printf("    (partner-submitted probability, n/a)\n");
    if (reliability) {
        const train_candidate *b = &r.cand[r.best];
        printf("  reliability on the evaluation window (%s model vs partner-submitted)\n", b->kind);
        printf("  %-11s %8s %9s %9s   %8s %9s %9s\n", "bin", "n", "model p", "won", "n", "partner p", "won");
        for (int i = 0; i < TRAIN_REL_BINS; i++) {
            const cls_bin *m = &b->rel[i], *q = &r.partner_rel[i];
            printf("  %4.1f-%-4.1f  %8zu ", m->lo, m->hi, m->count);
            num(m->count ? m->mean_p : NAN, "%9.3f");
            putchar(' ');
            num(m->count ? m->mean_y : NAN, "%9.3f");
            printf("   %8zu ", q->count);
            num(q->count ? q->mean_p : NAN, "%9.3f");
            putchar(' ');
            num(q->count ? q->mean_y : NAN, "%9.3f");
            putchar('\n');
        }
    }
    return EXIT_OK;
}
