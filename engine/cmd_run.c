/* cmd_run.c - the commands that run a job: `init`, `sample`, `run`,
 * `ingest`, `demo`. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "job.h"
#include "json.h"
#include "sample.h"
#include "store.h"

int cmd_init(int argc, char **argv, const cli *c);
int cmd_sample(int argc, char **argv, const cli *c);
int cmd_run(int argc, char **argv, const cli *c);
int cmd_ingest(int argc, char **argv, const cli *c);
int cmd_demo(int argc, char **argv, const cli *c);
int cmd_writeback(int argc, char **argv, const cli *c);

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* Runs a driver of the embedded library as a job and prints its text or,
 * with --json, its result. */
static int drive(const cli *c, const char *cmd, const char *module, int argc, char **argv)
{
    prm_error err;
    store *s = cli_store(c, 1, &err);
    if (!s) return cli_fail(c, cmd, "%s", err.msg);
    char *counts = NULL, *text = NULL;
    int rc = job_call(s, cmd, module, "cli", argc, argv, &counts, &text, &err);
    store_close(s);
    if (rc == 0) {
        if (c->json) printf("%s\n", counts ? counts : "{}");
        else if (text) fputs(text, stdout);
    }
    free(counts);
    free(text);
    if (rc < 0) {
        int usage = strstr(err.msg, "unknown option") || strstr(err.msg, "needs a") ||
                    strstr(err.msg, "unexpected argument") || strstr(err.msg, "is required");
        return usage ? cli_usage(c, cmd, "%s", err.msg) : cli_fail(c, cmd, "%s", err.msg);
    }
    return EXIT_OK;
}

int cmd_writeback(int argc, char **argv, const cli *c)
{
    if (argc < 2) return cli_usage(c, "writeback", "CONNECTOR is required (e.g. connectors/partnerstack.lua)");
    return drive(c, "writeback", "prm.writeback", argc - 1, argv + 1);
}

int cmd_init(int argc, char **argv, const cli *c)
{
    if (argc > 1) return cli_usage(c, "init", "unexpected argument '%s'", argv[1]);
    prm_error err;
    store *s = cli_store(c, 1, &err);
    if (!s) return cli_fail(c, "init", "%s", err.msg);
    if (store_audit(s, NULL, "store.init", store_path(s), NULL, &err) < 0) {
        store_close(s);
        return cli_fail(c, "init", "%s", err.msg);
    }
    if (c->json) {
        json j;
        json_init(&j);
        json_obj(&j);
        json_key(&j, "ok");
        json_bool(&j, 1);
        json_key(&j, "store");
        json_str(&j, store_path(s));
        json_key(&j, "schema_version");
        json_int(&j, store_version(s));
        json_end(&j);
        printf("%s\n", json_cstr(&j));
        json_free(&j);
    } else {
        printf("store %s ready (schema version %d)\n", store_path(s), store_version(s));
    }
    store_close(s);
    return EXIT_OK;
}

int cmd_sample(int argc, char **argv, const cli *c)
{
    sample_opts o = { 300, 30000, 12, 42, "2026-11-20" };
    const char *out = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        long x;
        if (strcmp(a, "--out") == 0 && v) out = v;
        else if (strcmp(a, "--partners") == 0) {
            if (cli_int(c, "sample", a, v, 1, 100000, &x) < 0) return EXIT_USAGE;
            o.partners = (int)x;
        } else if (strcmp(a, "--deals") == 0) {
            if (cli_int(c, "sample", a, v, 1, 100000000, &x) < 0) return EXIT_USAGE;
            o.deals = x;
        } else if (strcmp(a, "--quarters") == 0) {
            if (cli_int(c, "sample", a, v, 1, 80, &x) < 0) return EXIT_USAGE;
            o.quarters = (int)x;
        } else if (strcmp(a, "--seed") == 0) {
            if (cli_int(c, "sample", a, v, 0, 2147483647L, &x) < 0) return EXIT_USAGE;
            o.seed = (uint64_t)x;
        } else if (strcmp(a, "--as-of") == 0 && v) o.as_of = v;
        else if (a[0] == '-') return cli_usage(c, "sample", "unknown option '%s'", a);
        else return cli_usage(c, "sample", "unexpected argument '%s'", a);
        i++;
    }
    if (!out) return cli_usage(c, "sample", "--out DIR is required");
    sample_counts n;
    prm_error err;
    if (sample_write(out, &o, &n, &err) < 0) return cli_fail(c, "sample", "%s", err.msg);
    if (c->json) {
        json j;
        json_init(&j);
        json_obj(&j);
        json_key(&j, "dir"); json_str(&j, out);
        json_key(&j, "partners"); json_int(&j, n.partners);
        json_key(&j, "deals"); json_int(&j, n.deals);
        json_key(&j, "open_deals"); json_int(&j, n.open_deals);
        json_key(&j, "history"); json_int(&j, n.history);
        json_key(&j, "commits"); json_int(&j, n.commits);
        json_key(&j, "quotas"); json_int(&j, n.quotas);
        json_key(&j, "transactions"); json_int(&j, n.transactions);
        json_key(&j, "payouts"); json_int(&j, n.payouts);
        json_key(&j, "signals"); json_int(&j, n.signals);
        json_key(&j, "fx"); json_int(&j, n.fx);
        json_end(&j);
        printf("%s\n", json_cstr(&j));
        json_free(&j);
    } else {
        printf("sample export in %s: %ld partners, %ld deals (%ld open), %ld history rows,"
               " %ld commits, %ld quotas, %ld transactions, %ld payouts, %ld signals, %ld fx rates\n",
               out, n.partners, n.deals, n.open_deals, n.history, n.commits, n.quotas,
               n.transactions, n.payouts, n.signals, n.fx);
    }
    return EXIT_OK;
}

/* Runs a script as a job; with --json the script's result table. */
static int run_script(const cli *c, const char *cmd, const char *script, int argc, char **argv)
{
    prm_error err;
    store *s = cli_store(c, 1, &err);
    if (!s) return cli_fail(c, cmd, "%s", err.msg);
    char *counts = NULL;
    int rc = job_run(s, script, NULL, argc, argv, c->json ? &counts : NULL, &err);
    store_close(s);
    if (rc < 0) {
        free(counts);
        return cli_fail(c, cmd, "%s", err.msg);
    }
    if (c->json) printf("%s\n", counts ? counts : "{}");
    free(counts);
    return EXIT_OK;
}

int cmd_run(int argc, char **argv, const cli *c)
{
    if (argc < 2) return cli_usage(c, "run", "SCRIPT is required");
    struct stat st;
    if (stat(argv[1], &st) < 0) return cli_fail(c, "run", "cannot open %s", argv[1]);
    return run_script(c, "run", argv[1], argc - 2, argv + 2);
}

int cmd_ingest(int argc, char **argv, const cli *c)
{
    if (argc < 2) return cli_usage(c, "ingest", "DIR (an export folder) or CONNECTOR.lua is required");
    /* An HTTP connector: a sync through prm.sync. */
    struct stat cst;
    if (ends_with(argv[1], ".lua") && stat(argv[1], &cst) == 0 && S_ISREG(cst.st_mode)) {
        cli_progress(c, "syncing through %s...", argv[1]);
        return drive(c, "ingest", "prm.sync", argc - 1, argv + 1);
    }
    /* The driver is prm.ingest (compiled in); it parses its own options so
     * scripts can call it with the same words, and returns its summary and
     * the rendered text. */
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--batch") == 0) {
            long x;
            if (cli_int(c, "ingest", "--batch", i + 1 < argc ? argv[i + 1] : NULL, 1, 10000000, &x) < 0)
                return EXIT_USAGE;
        }
    prm_error err;
    store *s = cli_store(c, 1, &err);
    if (!s) return cli_fail(c, "ingest", "%s", err.msg);
    char *counts = NULL, *text = NULL;
    cli_progress(c, "ingesting %s...", argv[1]);
    int rc = job_call(s, "ingest", "prm.ingest", "cli", argc - 1, argv + 1, &counts, &text, &err);
    store_close(s);
    if (rc == 0) {
        if (c->json) printf("%s\n", counts ? counts : "{}");
        else if (text) cli_lines(stdout, text);   /* may hold export data */
    }
    free(counts);
    free(text);
    if (rc < 0) {
        int usage = strstr(err.msg, "unknown option") || strstr(err.msg, "needs a") ||
                    strstr(err.msg, "unexpected argument") || strstr(err.msg, "is required");
        return usage ? cli_usage(c, "ingest", "%s", err.msg) : cli_fail(c, "ingest", "%s", err.msg);
    }
    return EXIT_OK;
}

int cmd_demo(int argc, char **argv, const cli *c)
{
    if (argc > 2) return cli_usage(c, "demo", "unexpected argument '%s'", argv[2]);
    const char *dir = argc > 1 ? argv[1] : "build/sample";
    sample_opts o = { 300, 30000, 12, 42, "2026-11-20" };
    sample_counts n;
    prm_error err;
    if (sample_write(dir, &o, &n, &err) < 0) return cli_fail(c, "demo", "%s", err.msg);
    if (!c->json) printf("sample export in %s: %ld partners, %ld deals\n", dir, n.partners, n.deals);
    char script[4096];
    snprintf(script, sizeof script, "%s/scripts/nightly.lua", job_root());
    char *args[] = { (char *)dir };
    return run_script(c, "demo", script, 1, args);
}
