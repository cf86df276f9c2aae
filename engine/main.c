/* main.c - the prmcast command line: argv -> one cmd_* function.
 *
 *   prmcast [--db PATH] <command> [options]
 *
 * Exit status: 0 ok, 1 runtime error, 2 usage error.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cmd_rules.h"
#include "job.h"
#include "sample.h"
#include "scoring.h"
#include "store.h"

enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2 };

static const char *db_path = NULL;
static int json_out = 0;

typedef struct command {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *usage;
    const char *help;
} command;

static int cmd_help(int argc, char **argv);

static const char *db_default(void)
{
    if (db_path) return db_path;
    const char *e = getenv("PRMCAST_DB");
    return e && *e ? e : "prmcast.db";
}

static store *open_db(void)
{
    store *s;
    prm_error err;
    if (store_open(db_default(), &s, &err) < 0) {
        fprintf(stderr, "prmcast: %s\n", err.msg);
        return NULL;
    }
    return s;
}

static int usage_error(const char *cmd, const char *fmt, const char *arg)
{
    fprintf(stderr, "prmcast %s: ", cmd);
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n(see 'prmcast %s --help')\n", cmd);
    return EXIT_USAGE;
}

/* ---- init --------------------------------------------------------------- */

static int cmd_init(int argc, char **argv)
{
    (void)argv;
    if (argc > 1) return usage_error("init", "unexpected argument '%s'", argv[1]);
    store *s = open_db();
    if (!s) return EXIT_FAIL;
    prm_error err;
    store_audit(s, NULL, "store.init", store_path(s), NULL, &err);
    printf("store %s ready (schema version %d)\n", store_path(s), store_version(s));
    store_close(s);
    return EXIT_OK;
}

/* ---- sample -------------------------------------------------------------- */

static int parse_long(const char *cmd, const char *opt, const char *v, long *out)
{
    char *end;
    long x = strtol(v, &end, 10);
    if (!*v || *end) return usage_error(cmd, "%s needs a number", opt);
    *out = x;
    return 0;
}

static int cmd_sample(int argc, char **argv)
{
    static const struct option opts[] = {
        { "out", required_argument, 0, 'o' }, { "partners", required_argument, 0, 'p' },
        { "deals", required_argument, 0, 'd' }, { "quarters", required_argument, 0, 'q' },
        { "seed", required_argument, 0, 's' }, { "as-of", required_argument, 0, 'a' },
        { 0, 0, 0, 0 },
    };
    sample_opts o = { 300, 30000, 12, 42, "2026-11-20" };
    const char *out = NULL;
    long v;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'o': out = optarg; break;
        case 'p': if (parse_long("sample", "--partners", optarg, &v)) return EXIT_USAGE; o.partners = (int)v; break;
        case 'd': if (parse_long("sample", "--deals", optarg, &v)) return EXIT_USAGE; o.deals = v; break;
        case 'q': if (parse_long("sample", "--quarters", optarg, &v)) return EXIT_USAGE; o.quarters = (int)v; break;
        case 's': if (parse_long("sample", "--seed", optarg, &v)) return EXIT_USAGE; o.seed = (uint64_t)v; break;
        case 'a': o.as_of = optarg; break;
        default: return usage_error("sample", "%s", "bad option");
        }
    }
    if (!out) return usage_error("sample", "%s", "--out DIR is required");
    if (optind < argc) return usage_error("sample", "unexpected argument '%s'", argv[optind]);
    sample_counts n;
    prm_error err;
    if (sample_write(out, &o, &n, &err) < 0) {
        fprintf(stderr, "prmcast sample: %s\n", err.msg);
        return EXIT_FAIL;
    }
    if (json_out)
        printf("{\"dir\":\"%s\",\"partners\":%ld,\"deals\":%ld,\"open_deals\":%ld,\"history\":%ld,"
               "\"commits\":%ld,\"quotas\":%ld,\"transactions\":%ld,\"payouts\":%ld,"
               "\"signals\":%ld,\"fx\":%ld}\n", out, n.partners, n.deals, n.open_deals, n.history,
               n.commits, n.quotas, n.transactions, n.payouts, n.signals, n.fx);
    else
        printf("sample export in %s: %ld partners, %ld deals (%ld open), %ld history rows,"
               " %ld commits, %ld quotas, %ld transactions, %ld payouts, %ld signals, %ld fx rates\n",
               out, n.partners, n.deals, n.open_deals, n.history, n.commits, n.quotas,
               n.transactions, n.payouts, n.signals, n.fx);
    return EXIT_OK;
}

/* ---- run / ingest -------------------------------------------------------- */

/* With --json, the job's result table is printed as JSON (the built-in
 * drivers are told --quiet, so stdout holds only that). */
static int run_job(const char *script, const char *chunk, int argc, char **argv)
{
    store *s = open_db();
    if (!s) return EXIT_FAIL;
    prm_error err;
    char *counts = NULL;
    int rc = job_run(s, script, chunk, argc, argv, json_out ? &counts : NULL, &err);
    if (rc < 0) fprintf(stderr, "prmcast: %s\n", err.msg);
    else if (json_out) printf("%s\n", counts ? counts : "{}");
    free(counts);
    store_close(s);
    return rc < 0 ? EXIT_FAIL : EXIT_OK;
}

/* argv plus "--quiet" when --json asks for machine output; *extra owns it. */
static char **with_quiet(int argc, char **argv, int *n, char ***extra)
{
    *extra = NULL;
    *n = argc;
    if (!json_out) return argv;
    char **v = malloc(sizeof *v * (size_t)(argc + 2));
    if (!v) return argv;
    for (int i = 0; i < argc; i++) v[i] = argv[i];
    v[argc] = (char *)"--quiet";
    v[argc + 1] = NULL;
    *n = argc + 1;
    *extra = v;
    return v;
}

static int cmd_run(int argc, char **argv)
{
    if (argc < 2) return usage_error("run", "%s", "SCRIPT is required");
    struct stat st;
    if (stat(argv[1], &st) < 0) {
        fprintf(stderr, "prmcast run: cannot open %s\n", argv[1]);
        return EXIT_FAIL;
    }
    return run_job(argv[1], NULL, argc - 2, argv + 2);
}

static int cmd_ingest(int argc, char **argv)
{
    /* The driver is Lua (prm.ingest, compiled in); it parses its own options
     * so scripts can call it with the same words. */
    if (argc < 2) return usage_error("ingest", "%s", "DIR is required");
    static const char chunk[] =
        "local ok, res = require('prm.ingest').cli({...})\n"
        "if not ok then error(res, 0) end\n"
        "return res\n";
    char **extra;
    int n;
    char **v = with_quiet(argc, argv, &n, &extra);
    int rc = run_job("ingest", chunk, n - 1, v + 1);
    free(extra);
    return rc;
}

/* train / score: Lua drivers in prm.pipeline, run as recorded jobs. */
static int run_pipeline(const char *name, const char *fn, int argc, char **argv)
{
    char chunk[256];
    snprintf(chunk, sizeof chunk,
             "local ok, res = require('prm.pipeline').%s({...})\n"
             "if not ok then error(res, 0) end\nreturn res\n", fn);
    char **extra;
    int n;
    char **v = with_quiet(argc, argv, &n, &extra);
    int rc = run_job(name, chunk, n - 1, v + 1);
    free(extra);
    return rc;
}

static int cmd_train(int argc, char **argv) { return run_pipeline("train", "train_cli", argc, argv); }
static int cmd_score(int argc, char **argv) { return run_pipeline("score", "score_cli", argc, argv); }

static int cmd_explain(int argc, char **argv)
{
    if (argc != 2) return usage_error("explain", "%s", "exactly one DEAL id is expected");
    store *s = open_db();
    if (!s) return EXIT_FAIL;
    prm_error err;
    int rc = scoring_explain(s, argv[1], json_out, stdout, &err);
    if (rc < 0) fprintf(stderr, "prmcast explain: %s\n", err.msg);
    store_close(s);
    return rc < 0 ? EXIT_FAIL : EXIT_OK;
}

static int cmd_rules_main(int argc, char **argv)
{
    return cmd_rules(argc, argv, db_default(), json_out);
}

static int cmd_demo(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : "build/sample";
    sample_opts o = { 300, 30000, 12, 42, "2026-11-20" };
    sample_counts n;
    prm_error err;
    if (sample_write(dir, &o, &n, &err) < 0) {
        fprintf(stderr, "prmcast demo: %s\n", err.msg);
        return EXIT_FAIL;
    }
    printf("sample export in %s: %ld partners, %ld deals\n", dir, n.partners, n.deals);
    char script[4096];
    snprintf(script, sizeof script, "%s/scripts/nightly.lua", job_root());
    char *args[] = { (char *)dir };
    return run_job(script, NULL, 1, args);
}

/* ---- status ------------------------------------------------------------- */

static void print_query(store *s, const char *title, const char *sql)
{
    store_stmt *st;
    prm_error err;
    if (store_prepare(s, sql, &st, &err) < 0) {
        fprintf(stderr, "prmcast status: %s\n", err.msg);
        return;
    }
    int n = store_ncols(st), rows = 0;
    if (!json_out) {
        printf("\n%s\n ", title);
        for (int i = 0; i < n; i++) printf(" %-26s", store_colname(st, i));
        printf("\n");
    } else {
        printf("\"%s\":[", title);
    }
    while (store_step(st, &err) == 1) {
        if (json_out) printf("%s{", rows ? "," : "");
        else printf(" ");
        for (int i = 0; i < n; i++) {
            store_value v = store_column(st, i);
            if (json_out) {
                printf("%s\"%s\":", i ? "," : "", store_colname(st, i));
                if (v.kind == SV_NULL) printf("null");
                else if (v.kind == SV_INT) printf("%lld", (long long)v.i);
                else if (v.kind == SV_REAL) printf("%.15g", v.r);
                else {
                    putchar('"');
                    for (const char *c = v.s; *c; c++) {
                        if (*c == '"' || *c == '\\') printf("\\%c", *c);
                        else if ((unsigned char)*c < 0x20) printf("\\u%04x", *c);
                        else putchar(*c);
                    }
                    putchar('"');
                }
            } else {
                if (v.kind == SV_NULL) printf(" %-26s", "-");
                else if (v.kind == SV_INT) printf(" %-26lld", (long long)v.i);
                else if (v.kind == SV_REAL) printf(" %-26.4g", v.r);
                else printf(" %-26.60s", v.s);
            }
        }
        if (json_out) putchar('}');
        else putchar('\n');
        rows++;
    }
    if (json_out) printf("]");
    else if (!rows) printf("  (none)\n");
    store_finalize(st);
}

static int cmd_status(int argc, char **argv)
{
    if (argc > 1) return usage_error("status", "unexpected argument '%s'", argv[1]);
    store *s = open_db();
    if (!s) return EXIT_FAIL;
    if (json_out) printf("{\"store\":\"%s\",\"schema_version\":%d,", store_path(s), store_version(s));
    else printf("store %s (schema version %d)\n", store_path(s), store_version(s));
    print_query(s, "tables",
        "SELECT 'partners' AS name, count(*) AS rows FROM partners UNION ALL "
        "SELECT 'deals', count(*) FROM deals UNION ALL "
        "SELECT 'deals (open)', count(*) FROM deals WHERE status = 'open' UNION ALL "
        "SELECT 'deal_history', count(*) FROM deal_history UNION ALL "
        "SELECT 'commits', count(*) FROM commits UNION ALL SELECT 'quotas', count(*) FROM quotas UNION ALL "
        "SELECT 'transactions', count(*) FROM transactions UNION ALL "
        "SELECT 'payouts', count(*) FROM payouts UNION ALL SELECT 'signals', count(*) FROM signals UNION ALL "
        "SELECT 'fx_rates', count(*) FROM fx_rates UNION ALL "
        "SELECT 'ingest_rejects', count(*) FROM ingest_rejects UNION ALL "
        "SELECT 'scores', count(*) FROM scores UNION ALL "
        "SELECT 'writeback_outbox (pending)', count(*) FROM writeback_outbox WHERE status = 'pending' UNION ALL "
        "SELECT 'audit_log', count(*) FROM audit_log");
    static const char *const sections[][2] = {
        { "syncs", "SELECT source, object, cursor, updated_at FROM sync_state"
                   " ORDER BY updated_at DESC, object LIMIT 20" },
        { "jobs", "SELECT id, script, status, started_at, ended_at FROM jobs ORDER BY id DESC LIMIT 10" },
        { "models", "SELECT id, kind, version, CASE active WHEN 1 THEN 'active' ELSE '' END AS state,"
                    " round(json_extract(metrics, '$.eval_logloss'), 4) AS eval_logloss"
                    " FROM models ORDER BY active DESC, id DESC LIMIT 5" },
        { "score_runs", "SELECT id, as_of, model_id, deals, flagged, status FROM score_runs"
                        " ORDER BY id DESC LIMIT 5" },
    };
    for (size_t i = 0; i < sizeof sections / sizeof sections[0]; i++) {
        if (json_out) putchar(',');
        print_query(s, sections[i][0], sections[i][1]);
    }
    if (json_out) printf("}\n");
    store_close(s);
    return EXIT_OK;
}

/* ---- audit -------------------------------------------------------------- */

static int cmd_audit(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "verify") != 0)
        return usage_error("audit", "%s", "expected 'audit verify'");
    store *s = open_db();
    if (!s) return EXIT_FAIL;
    prm_error err;
    int64_t rows;
    char head[65];
    int rc = store_audit_verify(s, &rows, head, &err);
    store_close(s);
    if (rc < 0) {
        fprintf(stderr, "prmcast audit verify: %s\n", err.msg);
        return EXIT_FAIL;
    }
    if (rc > 0) {
        printf("audit chain BROKEN after %lld row(s): %s\n", (long long)rows, err.msg);
        return EXIT_FAIL;
    }
    if (json_out) printf("{\"ok\":true,\"rows\":%lld,\"head\":\"%s\"}\n", (long long)rows, head);
    else printf("audit chain intact: %lld row(s), head %s\n", (long long)rows, head);
    return EXIT_OK;
}

/* ---- table -------------------------------------------------------------- */

static const command commands[] = {
    { "init", cmd_init, "init", "Create the store (or migrate it to this version's schema)." },
    { "sample", cmd_sample,
      "sample --out DIR [--partners N] [--deals N] [--quarters N] [--seed S] [--as-of DATE]",
      "Write a synthetic PRM export (CSV) that looks like a real partner program;\n"
      "deterministic per seed. Defaults: 300 partners, 30000 deals, 12 quarters, seed 42,\n"
      "as of 2026-11-20." },
    { "ingest", cmd_ingest,
      "ingest DIR [--connector FILE] [--source NAME] [--batch N] [--quiet]",
      "Ingest a PRM export folder (CSV, JSON or JSON Lines files) through a connector\n"
      "(default connectors/file.lua). Incremental and resumable: rerunning after an\n"
      "interruption continues from the last committed batch. Bad rows are reported\n"
      "with file, line and reason, and stored in ingest_rejects." },
    { "run", cmd_run, "run SCRIPT [ARG...]",
      "Run a Lua job script with the full prm API; arg[1..n] hold the arguments.\n"
      "The run is recorded in the jobs table and the audit log." },
    { "train", cmd_train,
      "train [--as-of DATE] [--kind auto|logistic|gbdt|baserate] [--train-quarters N] [--step-days N] [--no-activate] [--reliability]",
      "Fit deal-scoring models on point-in-time snapshots, calibrate them on the next slice\n"
      "of time, evaluate on the newest complete quarter, register every candidate and make\n"
      "the best by held-out log loss active. Below 300 closed deals only the cold-start\n"
      "base-rate model (tier x stage) is trained." },
    { "score", cmd_score, "score [--as-of DATE] [--model ID] [--connector FILE] [--no-flags]",
      "Score every open deal with the active model: probability, 1-10 score, drivers and\n"
      "risk flags, stored per run; queues the connector's write-back payloads." },
    { "explain", cmd_explain, "explain DEAL [--json]", "Show a deal's latest score with its drivers and flags." },
    { "rules", cmd_rules_main, "rules list | rules test FILE... [--deals N] [--as-of DATE]",
      "List the risk-flag rules in rules/flags, or run rule files on up to N (200) open deals\n"
      "of the store (synthetic deals without one) and show which fire, with reasons and errors." },
    { "status", cmd_status, "status [--json]",
      "What is in the store: table sizes, the last syncs and jobs, models and score runs." },
    { "audit", cmd_audit, "audit verify [--json]",
      "Recompute the audit log's hash chain; exit 1 if any row was edited or removed." },
    { "demo", cmd_demo, "demo [DIR]",
      "Generate the sample export into DIR (default build/sample) and run the nightly job." },
    { "help", cmd_help, "help [COMMAND]", "Show help." },
    { NULL, NULL, NULL, NULL },
};

static int cmd_help(int argc, char **argv)
{
    if (argc > 1) {
        for (const command *c = commands; c->name; c++)
            if (strcmp(c->name, argv[1]) == 0) {
                printf("usage: prmcast [--db PATH] %s\n\n%s\n", c->usage, c->help);
                return EXIT_OK;
            }
        return usage_error("help", "unknown command '%s'", argv[1]);
    }
    printf("usage: prmcast [--db PATH] [--json] <command> [options]\n\n"
           "A Lua-scriptable channel sales forecasting engine.\n\ncommands:\n");
    for (const command *c = commands; c->name; c++) printf("  %-8s %s\n", c->name, c->usage);
    printf("\nThe store defaults to ./prmcast.db ($PRMCAST_DB). 'prmcast <command> --help' for more.\n");
    return EXIT_OK;
}

/* Removes --db PATH / --db=PATH / --json from argv[from..upto). */
static int take_globals(int *argc, char **argv, int from, int upto)
{
    for (int i = from; i < upto && i < *argc;) {
        int drop = 0;
        if (strcmp(argv[i], "--db") == 0) {
            if (i + 1 >= *argc) return -1;
            db_path = argv[i + 1];
            drop = 2;
        } else if (strncmp(argv[i], "--db=", 5) == 0) {
            db_path = argv[i] + 5;
            drop = 1;
        } else if (strcmp(argv[i], "--json") == 0) {
            json_out = 1;
            drop = 1;
        }
        if (drop) {
            memmove(argv + i, argv + i + drop, sizeof *argv * (size_t)(*argc - i - drop + 1));
            *argc -= drop;
            upto -= drop;
        } else {
            i++;
        }
    }
    return 0;
}

int main(int argc, char **argv)
{
    /* Global options before the command. */
    int i = 1;
    while (i < argc && argv[i][0] == '-' && strcmp(argv[i], "--help") != 0 && strcmp(argv[i], "-h") != 0) {
        if (take_globals(&argc, argv, i, i + 1) < 0) {
            fprintf(stderr, "prmcast: --db needs a PATH\n");
            return EXIT_USAGE;
        }
        if (i < argc && argv[i][0] == '-' && strcmp(argv[i], "--db") != 0 &&
            strncmp(argv[i], "--db=", 5) != 0 && strcmp(argv[i], "--json") != 0 &&
            strcmp(argv[i], "--help") != 0 && strcmp(argv[i], "-h") != 0) {
            fprintf(stderr, "prmcast: unknown option '%s'\n", argv[i]);
            return EXIT_USAGE;
        }
    }
    if (i >= argc || strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
        cmd_help(0, NULL);
        return i >= argc ? EXIT_USAGE : EXIT_OK;
    }
    char **cargv = argv + i;
    int cargc = argc - i;
    const command *c = commands;
    while (c->name && strcmp(c->name, cargv[0]) != 0) c++;
    if (!c->name) {
        fprintf(stderr, "prmcast: unknown command '%s' (see 'prmcast help')\n", cargv[0]);
        return EXIT_USAGE;
    }
    /* Global options after the command too, except inside a script's own
     * arguments: for `run`, only before SCRIPT. */
    int upto = cargc;
    if (strcmp(c->name, "run") == 0) {
        upto = 1;
        while (upto < cargc && cargv[upto][0] == '-') upto += strcmp(cargv[upto], "--db") == 0 ? 2 : 1;
    }
    if (take_globals(&cargc, cargv, 1, upto) < 0) {
        fprintf(stderr, "prmcast: --db needs a PATH\n");
        return EXIT_USAGE;
    }
    for (int k = 1; k < cargc && (strcmp(c->name, "run") != 0 || k < 2); k++)
        if (strcmp(cargv[k], "--help") == 0 || strcmp(cargv[k], "-h") == 0) {
            char *h[] = { (char *)"help", (char *)c->name };
            return cmd_help(2, h);
        }
    return c->fn(cargc, cargv);
}
