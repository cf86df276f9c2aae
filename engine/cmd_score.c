/* cmd_score.c - `prmcast score`: one score run over every open deal. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "job.h"
#include "json.h"
#include "scoring.h"
#include "store.h"
#include "store_forecast.h"
#include "timeutil.h"

int cmd_score(int argc, char **argv, const cli *c);

int cmd_score(int argc, char **argv, const cli *c)
{
    score_opts o;
    score_opts_init(&o);
    int quiet = 0;
    o.flags = 1;
    o.connector = "connectors/file.lua";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        long x;
        if (strcmp(a, "--model") == 0) {
            if (cli_int(c, "score", a, v, 1, 1L << 40, &x) < 0) return EXIT_USAGE;
            o.model_id = x;
            i++;
        } else if (strcmp(a, "--connector") == 0) {
            if (!v) return cli_usage(c, "score", "--connector needs a FILE");
            o.connector = v;
            i++;
        } else if (strcmp(a, "--no-flags") == 0) {
            o.flags = 0;
        } else if (strcmp(a, "--no-writeback") == 0) {
            o.connector = NULL;
        } else if (strcmp(a, "--quiet") == 0) {
            quiet = 1;
        } else {
            return cli_usage(c, "score", "%s '%s'", a[0] == '-' ? "unknown option" : "unexpected argument", a);
        }
    }
    prm_error err;
    store *s = cli_store(c, 1, &err);
    if (!s) return cli_fail(c, "score", "%s", err.msg);
    /* Nothing known as of the date (an empty store, or a date before the
     * first deal): said, and no run (nor job) recorded, exit 1. A program
     * with deals but none open still records its run of 0 deals. */
    char at[21];
    instant_iso(clock_now(), at);
    int any;
    int krc = store_deals_known(s, at, &any, &err);
    if (krc < 0 || !any) {
        store_close(s);
        if (krc < 0) return cli_fail(c, "score", "%s", err.msg);
        return cli_fail(c, "score", "nothing to score: no deal known as of %s (ingest first); no run recorded", at);
    }
    int64_t job;
    if (job_open(s, "score", argc - 1, argv + 1, &job, &err) < 0) {
        store_close(s);
        return cli_fail(c, "score", "%s", err.msg);
    }
    cli_progress(c, "scoring open deals...");
    score_result r;
    int rc = scoring_score(s, &o, &r, &err);
    json j;
    json_init(&j);
    if (rc == 0) {
        json_obj(&j);
        json_key(&j, "run"); json_int(&j, r.run_id);
        json_key(&j, "as_of"); json_str(&j, r.as_of);
        json_key(&j, "model"); json_int(&j, r.model_id);
        json_key(&j, "model_kind"); json_str(&j, r.model_kind);
        json_key(&j, "deals"); json_int(&j, (int64_t)r.deals);
        json_key(&j, "flagged"); json_int(&j, (int64_t)r.flagged);
        json_key(&j, "queued"); json_int(&j, (int64_t)r.queued);
        json_key(&j, "unchanged"); json_int(&j, (int64_t)r.unchanged);
        json_key(&j, "kept"); json_int(&j, (int64_t)r.kept);
        json_key(&j, "mean_probability"); json_num_fmt(&j, r.mean_p, "%.6g");
        json_key(&j, "rule_errors"); json_int(&j, r.rule_errors);
        json_key(&j, "rule_problems"); json_int(&j, r.rule_problems);
        json_key(&j, "rules_disabled"); json_int(&j, r.rules_disabled);
        json_key(&j, "conflicts"); json_int(&j, (int64_t)r.conflicts);
        json_end(&j);
    }
    job_close(s, "score", job, rc == 0, json_cstr(&j), err.msg);
    store_close(s);
    if (rc < 0) {
        json_free(&j);
        return cli_fail(c, "score", "%s", err.msg);
    }
    /* Problems go to stderr, one line each, whatever the output format. */
    if (r.warnings[0]) fputs(r.warnings, stderr);
    if (r.conflicts)
        fprintf(stderr, "prmcast score: %zu deal(s) had a current row that disagreed with their history"
                        " (e.g. %s); the current row was taken as their newest state\n",
                r.conflicts, r.conflict_example);
    if (c->json) {
        printf("%s\n", json_cstr(&j));
    } else if (!quiet) {
        printf("score run %lld as of %s with model %lld (%s): %zu open deals, %zu flagged,"
               " mean probability %.3f, %zu write-back payloads queued", (long long)r.run_id, r.as_of,
               (long long)r.model_id, r.model_kind, r.deals, r.flagged, isnan(r.mean_p) ? 0 : r.mean_p,
               r.queued);
        if (r.unchanged) printf(" (%zu unchanged since the last delivery)", r.unchanged);
        if (r.kept) printf(" (%zu unchanged since the last delivery or pending payload: not rebuilt)", r.kept);
        printf("\n  time: features %.2f s, model %.2f s, drivers/flags/store %.2f s\n",
               r.seconds_features, r.seconds_model, r.seconds_store);
    }
    json_free(&j);
    return EXIT_OK;
}
