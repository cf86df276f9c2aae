/* main.c - the prmcast command line: argv -> one cmd_* function.
 *
 *   prmcast [--db PATH] [--json] [--as-of DATE] <command> [options]
 *
 * Exit status: 0 ok, 1 runtime error, 2 usage error. Each command lives in
 * its cmd_<name>.c and renders its own results (cli.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "timeutil.h"
#include "version.h"   /* build/gen: from git describe */

int cmd_init(int, char **, const cli *);
int cmd_sample(int, char **, const cli *);
int cmd_run(int, char **, const cli *);
int cmd_ingest(int, char **, const cli *);
int cmd_demo(int, char **, const cli *);
int cmd_train(int, char **, const cli *);
int cmd_score(int, char **, const cli *);
int cmd_explain(int, char **, const cli *);
int cmd_rules(int, char **, const cli *);
int cmd_status(int, char **, const cli *);
int cmd_audit(int, char **, const cli *);
int cmd_writeback(int, char **, const cli *);
int cmd_forecast(int, char **, const cli *);
int cmd_attainment(int, char **, const cli *);
int cmd_duplicates(int, char **, const cli *);
int cmd_backtest(int, char **, const cli *);

typedef struct command {
    const char *name;
    cli_fn fn;
    const char *usage;
    const char *help;
} command;

static const command commands[] = {
    { "init", cmd_init, "init", "Create the store (or migrate it to this version's schema)." },
    { "sample", cmd_sample,
      "sample --out DIR [--partners N] [--deals N] [--quarters N] [--seed S] [--as-of DATE]",
      "Write a synthetic PRM export (CSV) that looks like a real partner program;\n"
      "deterministic per seed. Defaults: 300 partners, 30000 deals, 12 quarters, seed 42,\n"
      "as of 2026-11-20." },
    { "ingest", cmd_ingest,
      "ingest DIR [--connector FILE] [--source NAME] [--batch N] [--quiet]\n"
      "           ingest connectors/<prm>.lua [--full] [--since T] [--object NAME] [--budget N]",
      "Ingest a PRM export folder (CSV, JSON or JSON Lines files) through a connector\n"
      "(default connectors/file.lua), or sync a PRM's API through an HTTP connector\n"
      "(credentials from the environment variables it names). Incremental and\n"
      "resumable: rerunning after an interruption continues from the last committed\n"
      "batch. Bad rows are reported with file, line and reason, and stored in ingest_rejects." },
    { "writeback", cmd_writeback, "writeback connectors/<prm>.lua [--dry-run] [--limit N] [--max-attempts N]",
      "Send the queued scores to the PRM: each payload once (Idempotency-Key per deal and\n"
      "run), only the connector's vendor-owned fields, retried with backoff, dead letters\n"
      "after a refusal or N attempts. --dry-run prints the requests without sending." },
    { "run", cmd_run, "run SCRIPT [ARG...]",
      "Run a Lua job script with the full prm API; arg[1..n] hold the arguments.\n"
      "The run is recorded in the jobs table and the audit log." },
    { "train", cmd_train,
      "train [--as-of DATE] [--kind auto|logistic|gbdt|baserate] [--train-quarters N] [--step-days N]"
      " [--label-days N] [--no-activate] [--force-activate] [--reliability] [--quiet]",
      "Fit deal-scoring models on point-in-time snapshots labelled \"won at all\" as known\n"
      "at a cutoff, a deal still open then at its P(win) from the win hazard (censored\n"
      "deals at risk), calibrate them on the last slice of the fit window, evaluate on\n"
      "held-out later snapshots (the 91 days ending N days before the as-of date,\n"
      "--label-days, 120; 0: the old layout, the final outcome of deals resolved by the\n"
      "cutoff), register every candidate and make\n"
      "the best by held-out log loss active (a model worse than the active one on the same\n"
      "evaluation window is not activated without --force-activate). Below 300 closed deals\n"
      "only the cold-start base-rate model (tier x stage) is trained." },
    { "score", cmd_score, "score [--as-of DATE] [--model ID] [--connector FILE] [--no-flags] [--no-writeback] [--quiet]",
      "Score every open deal with the active model: probability, 1-10 score, drivers and\n"
      "risk flags, stored per run together with the connector's write-back payloads." },
    { "forecast", cmd_forecast,
      "forecast [--period 2026-Q4] [--by region,tier] [--by product_family] [--sims N] [--seed S]"
      " [--model ID] [--no-dedup] [--json | --csv]",
      "Forecast a fiscal period's revenue in the base currency as of the clock (--as-of):\n"
      "closed so far + the open pipeline simulated (calibrated P(win) x P(close inside the\n"
      "period) from the slip model, amounts at the as-of FX rate) + not-yet-registered\n"
      "run-rate, with P10/P50/P90 per segment from the same simulations and the partners'\n"
      "commit roll-up beside it. Keys: region, tier, partner, product_family, type, currency,\n"
      "distributor. --csv: period,segment,p10,p50,p90,mean,closed,pipeline,unregistered,commit.\n"
      "Default period: the fiscal quarter of the as-of date; 10000 simulations, seed 1." },
    { "attainment", cmd_attainment, "attainment [--period P] [--at-risk] [--sims N] [--seed S] [--json]",
      "Per partner with a quota for the period (its latest revision as of the date): expected\n"
      "attainment and P(attainment >= 100%) from the forecast's simulations; --at-risk lists\n"
      "only partners below 50% with why (coverage, win rate, registrations, slipping deals)." },
    { "duplicates", cmd_duplicates, "duplicates [--rule FILE] [--json]",
      "List the deal pairs the multi-tier de-duplication rule (rules/dedup.lua) matched as of\n"
      "the date: a distributor's copy of its reseller's registration, and why." },
    { "backtest", cmd_backtest,
      "backtest [--from 2024-Q1] [--to 2025-Q4] [--weeks-before-end 13,8,4] [--sims N] [--no-retrain]"
      " [--kind K] [--label-days N]",
      "Forecast past quarters as of N weeks before their end, with the deal model retrained\n"
      "as of each date (registered, not activated), and compare with what closed: MAPE,\n"
      "bias, P10-P90 coverage and pinball loss of the total, WAPE and coverage of region x\n"
      "tier, beside the partner-commit roll-up, a bias-corrected commit, a stage-weighted\n"
      "pipeline and seasonal naive." },
    { "explain", cmd_explain, "explain DEAL [--json]",
      "Show a deal's latest score with its drivers and flags, the deal as it was when scored,\n"
      "and its current state where that differs." },
    { "rules", cmd_rules, "rules list | rules test FILE... [--deals N] [--as-of DATE]",
      "List the risk-flag rules in rules/flags, or run rule files on up to N (200) open deals\n"
      "of the store as of a date (synthetic deals without one) and show which fire." },
    { "status", cmd_status, "status [--json]",
      "What is in the store: table sizes, the last syncs and jobs, models and score runs." },
    { "audit", cmd_audit, "audit verify [--expect HASH] [--json] | audit head",
      "Recompute the audit log's hash chain (HMAC with $PRMCAST_AUDIT_KEY when set); exit 1 if any row\n"
      "was edited or removed, or the recorded head HASH (printed by every job, and by 'audit head')\n"
      "is no longer in the chain." },
    { "demo", cmd_demo, "demo [DIR]",
      "Generate the sample export into DIR (default build/sample) and run the nightly job." },
    { NULL, NULL, NULL, NULL },
};

static int help(const char *name)
{
    if (name) {
        for (const command *c = commands; c->name; c++)
            if (strcmp(c->name, name) == 0) {
                printf("usage: prmcast [--db PATH] [--json] [--as-of DATE] %s\n\n%s\n", c->usage, c->help);
                return EXIT_OK;
            }
        fprintf(stderr, "prmcast help: unknown command '%s'\n", name);
        return EXIT_USAGE;
    }
    printf("usage: prmcast [--db PATH] [--json] [--as-of DATE] <command> [options]\n\n"
           "A Lua-scriptable channel sales forecasting engine (version %s).\n\ncommands:\n",
           PRM_VERSION);
    for (const command *c = commands; c->name; c++) printf("  %-8s %s\n", c->name, c->usage);
    printf("  %-8s %s\n", "help", "help [COMMAND]");
    printf("\nThe store defaults to ./prmcast.db ($PRMCAST_DB). --as-of (or $PRMCAST_NOW) pins the\n"
           "clock every command reads; a bare date means the end of that day.\n"
           "'prmcast <command> --help' for more.\n");
    return EXIT_OK;
}

/* Takes --db PATH, --db=PATH, --json, --as-of D, --as-of=D out of
 * argv[from..upto). Returns 0, or EXIT_USAGE after saying why. */
static int take_globals(int *argc, char **argv, int from, int *upto, cli *c, const char **as_of,
                        int keep_as_of)
{
    for (int i = from; i < *upto && i < *argc;) {
        int drop = 0;
        const char *a = argv[i];
        if (keep_as_of && strncmp(a, "--as-of", 7) == 0) {
            i += a[7] ? 1 : 2;
            continue;
        }
        if (strcmp(a, "--db") == 0 || strcmp(a, "--as-of") == 0) {
            if (i + 1 >= *argc) {
                fprintf(stderr, "prmcast: %s needs a value\n", a);
                return EXIT_USAGE;
            }
            if (a[2] == 'd') c->db_path = argv[i + 1];
            else *as_of = argv[i + 1];
            drop = 2;
        } else if (strncmp(a, "--db=", 5) == 0) {
            c->db_path = a + 5;
            drop = 1;
        } else if (strncmp(a, "--as-of=", 8) == 0) {
            *as_of = a + 8;
            drop = 1;
        } else if (strcmp(a, "--json") == 0) {
            c->json = 1;
            drop = 1;
        }
        if (drop) {
            memmove(argv + i, argv + i + drop, sizeof *argv * (size_t)(*argc - i - drop + 1));
            *argc -= drop;
            *upto -= drop;
        } else {
            i++;
        }
    }
    return 0;
}

int main(int argc, char **argv)
{
    cli c = { NULL, 0, isatty(2) };
    const char *as_of = NULL;
    /* Global options before the command. */
    int i = 1;
    while (i < argc && argv[i][0] == '-') {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) return help(NULL);
        if (strcmp(a, "--version") == 0) {
            printf("prmcast %s\n", PRM_VERSION);
            return EXIT_OK;
        }
        int upto = i + 1 + (strcmp(a, "--db") == 0 || strcmp(a, "--as-of") == 0);
        int before = argc;
        if (take_globals(&argc, argv, i, &upto, &c, &as_of, 0)) return EXIT_USAGE;
        if (argc == before) {
            fprintf(stderr, "prmcast: unknown option '%s' (see 'prmcast help')\n", a);
            return EXIT_USAGE;
        }
    }
    if (i >= argc) {
        help(NULL);
        return EXIT_USAGE;
    }
    char **cargv = argv + i;
    int cargc = argc - i;
    if (strcmp(cargv[0], "help") == 0) {
        if (cargc > 2) {
            fprintf(stderr, "prmcast help: unexpected argument '%s'\n", cargv[2]);
            return EXIT_USAGE;
        }
        return help(cargc > 1 ? cargv[1] : NULL);
    }
    const command *cmd = commands;
    while (cmd->name && strcmp(cmd->name, cargv[0]) != 0) cmd++;
    if (!cmd->name) {
        fprintf(stderr, "prmcast: unknown command '%s' (see 'prmcast help')\n", cargv[0]);
        return EXIT_USAGE;
    }
    /* Global options after the command too, except inside a script's own
     * arguments: for `run`, only before SCRIPT. */
    int upto = cargc;
    if (strcmp(cmd->name, "run") == 0) {
        upto = 1;
        while (upto < cargc && cargv[upto][0] == '-')
            upto += strcmp(cargv[upto], "--db") == 0 || strcmp(cargv[upto], "--as-of") == 0 ? 2 : 1;
    }
    /* `sample --as-of` is the export's date, not the clock. */
    if (take_globals(&cargc, cargv, 1, &upto, &c, &as_of, strcmp(cmd->name, "sample") == 0))
        return EXIT_USAGE;
    for (int k = 1; k < upto && k < cargc; k++)
        if (strcmp(cargv[k], "--help") == 0 || strcmp(cargv[k], "-h") == 0) return help(cmd->name);

    if (!c.db_path) {
        const char *e = getenv("PRMCAST_DB");
        c.db_path = e && *e ? e : "prmcast.db";
    }
    if (!*c.db_path) return cli_usage(&c, cmd->name, "--db needs a PATH (an empty one is not a store)");
    /* One clock: --as-of, else $PRMCAST_NOW, else the wall clock. */
    prm_error err;
    const char *env = getenv("PRMCAST_NOW");
    int64_t t;
    if (env && *env && clock_parse(env, &t, &err) < 0)
        return cli_usage(&c, cmd->name, "PRMCAST_NOW is not a date or instant: %s", err.msg);
    if (as_of && clock_pin_text(as_of, &err) < 0)
        return cli_usage(&c, cmd->name, "--as-of: %s", err.msg);
    return cmd->fn(cargc, cargv, &c);
}
