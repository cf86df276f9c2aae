/* cmd_explain.c - `prmcast explain DEAL`: a deal's latest score, why, and
 * the deal as it was when scored beside its current state. */
#include <math.h>
#include <stdio.h>

#include "cli.h"
#include "json.h"
#include "scoring.h"
#include "store.h"

int cmd_explain(int argc, char **argv, const cli *c);

static void view_json(json *j, const deal_view *v)
{
    json_obj(j);
    json_key(j, "stage"); json_str(j, v->stage);
    json_key(j, "status"); json_str(j, v->status);
    json_key(j, "amount"); json_num(j, v->amount);
    json_key(j, "currency"); json_str(j, v->currency);
    json_key(j, "expected_close"); json_str(j, v->has_close ? v->expected_close : NULL);
    json_key(j, "partner_probability"); json_num(j, v->partner_probability);
    json_key(j, "tier"); json_str(j, v->tier);
    json_end(j);
}

static void view_text(const char *label, const deal_view *v)
{
    printf("  %-12s stage ", label);
    cli_text(stdout, v->stage, 0);
    printf(" (%s)  amount %.0f ", v->status ? v->status : "-", v->amount);
    cli_text(stdout, v->currency, 0);
    printf("  expected close %s", v->has_close ? v->expected_close : "-");
    if (v->partner_probability == v->partner_probability)
        printf("  partner says %.0f%%", 100 * v->partner_probability);
    printf("\n");
}

int cmd_explain(int argc, char **argv, const cli *c)
{
    if (argc != 2) return cli_usage(c, "explain", "exactly one DEAL id is expected");
    prm_error err;
    store *s = cli_store(c, 0, &err);
    if (!s) return cli_fail(c, "explain", "%s", err.msg);
    explain_result x;
    int rc = scoring_explain(s, argv[1], &x, &err);
    store_close(s);
    if (rc < 0) return cli_fail(c, "explain", "%s", err.msg);
    if (c->json) {
        json j;
        json_init(&j);
        json_obj(&j);
        json_key(&j, "deal"); json_str(&j, x.deal);
        json_key(&j, "probability"); json_num_fmt(&j, x.probability, "%.6f");
        json_key(&j, "score"); json_num_fmt(&j, x.score, "%.1f");
        json_key(&j, "drivers"); json_raw(&j, x.drivers);
        json_key(&j, "flags"); json_raw(&j, x.flags);
        json_key(&j, "run"); json_int(&j, x.run_id);
        json_key(&j, "as_of"); json_str(&j, x.as_of);
        json_key(&j, "scored_at"); json_str(&j, x.scored_at);
        json_key(&j, "model");
        json_obj(&j);
        json_key(&j, "id"); json_int(&j, x.model_id);
        json_key(&j, "kind"); json_str(&j, x.model_kind);
        json_key(&j, "version"); json_str(&j, x.model_version);
        json_end(&j);
        json_key(&j, "when_scored"); view_json(&j, &x.then);
        json_key(&j, "now"); view_json(&j, &x.now);
        json_key(&j, "changed_since"); json_bool(&j, x.changed);
        json_end(&j);
        printf("%s\n", json_cstr(&j));
        json_free(&j);
    } else {
        printf("deal ");
        cli_text(stdout, x.deal, 0);
        printf("  (partner ");
        cli_text(stdout, x.then.partner_id, 0);
        printf(", ");
        cli_text(stdout, x.then.tier, 0);
        printf(" tier)\n");
        printf("  probability of close %.1f%%   score %.1f / 10\n", 100 * x.probability, x.score);
        printf("  model %s (id %lld), run %lld as of %s\n", x.model_version[0] ? x.model_version : "?",
               (long long)x.model_id, (long long)x.run_id, x.as_of);
        view_text("when scored", &x.then);
        if (x.changed) view_text("now", &x.now);
        printf("  drivers (log-odds): ");
        cli_text(stdout, x.drivers, 0);
        printf("\n  flags: ");
        cli_text(stdout, x.flags, 0);
        printf("\n");
    }
    explain_free(&x);
    return EXIT_OK;
}
