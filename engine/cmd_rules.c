/* cmd_rules.c - `prmcast rules list` and `prmcast rules test FILE...`.
 *
 * `rules test` evaluates rule files against up to N open deals of the store
 * (the derived fields come from deal_history: when the stage last changed,
 * how often and how far the expected close moved out, how often the stage
 * went backwards), or, when there is no store or it holds no deals, against
 * a few built-in synthetic deals made to trip each shipped rule. It prints
 * per rule how many deals fired with a few example reasons, and every load
 * problem and rule error with file and line.
 */
#include "cli.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "job.h"
#include "rules.h"
#include "store.h"
#include "feat.h"
#include "timeutil.h"
#include "world.h"

enum { EXAMPLES = 3, OWN = 24 };

/* A deal to test on, owning its strings (synthetic deals). */
typedef struct tdeal {
    deal_view d;
    char *own[OWN];
    int nown;
} tdeal;

static const char *keep(tdeal *t, const char *s)
{
    if (!s || t->nown >= OWN) return NULL;
    size_t n = strlen(s) + 1;
    char *p = malloc(n);
    if (!p) return NULL;
    memcpy(p, s, n);
    t->own[t->nown++] = p;
    return p;
}

static void tdeal_free(tdeal *t)
{
    for (int i = 0; i < t->nown; i++) free(t->own[i]);
    t->nown = 0;
}

static void day_str(int64_t days, char *out)
{
    date_iso(days * 86400, out);
}

/* ---- JSON and text helpers --------------------------------------------- */

static void json_str(const char *s)
{
    putchar('"');
    for (; s && *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') printf("\\%c", c);
        else if (c == '\n') fputs("\\n", stdout);
        else if (c == '\t') fputs("\\t", stdout);
        else if (c < 0x20) printf("\\u%04x", c);
        else putchar(c);
    }
    putchar('"');
}

static void print_load_errors(const rules *r, int json)
{
    int n = rules_load_errors(r);
    if (json) {
        fputs("\"load_errors\":[", stdout);
        for (int k = 0; k < n; k++) {
            if (k) putchar(',');
            json_str(rules_load_error(r, k));
        }
        putchar(']');
        return;
    }
    for (int k = 0; k < n; k++) fprintf(stderr, "prmcast rules: %s\n", rules_load_error(r, k));
}

/* Export or rule text at least w columns wide, never cut (cli_text's width
 * would cut). */
static void pad_text(const char *s, int w)
{
    cli_text(stdout, s, 0);
    for (int n = s ? (int)strlen(s) : 1; n < w; n++) putchar(' ');
}

/* ---- list --------------------------------------------------------------- */

static int rules_list(int json)
{
    char dir[1024], cfg[1024];
    snprintf(dir, sizeof dir, "%s/rules/flags", job_root());
    snprintf(cfg, sizeof cfg, "%s/rules/config.lua", job_root());
    rules *r;
    prm_error err;
    if (rules_load_dir(dir, &r, &err) < 0) {
        fprintf(stderr, "prmcast rules list: %s\n", err.msg);
        return 1;
    }
    rules_set_log(r, NULL);
    int rc = rules_load_errors(r) ? 1 : 0;
    struct stat st;
    if (stat(cfg, &st) == 0 && rules_configure(r, cfg, &err) < 0) {
        fprintf(stderr, "prmcast rules list: %s\n", err.msg);
        rc = 1;
    }
    if (json) fputs("{\"rules\":[", stdout);
    for (int i = 0; i < rules_count(r); i++) {
        const char *key, *doc, *val;
        if (json) {
            printf("%s{\"name\":", i ? "," : "");
            json_str(rules_name(r, i));
            printf(",\"severity\":\"%s\",\"file\":", rules_severity_name(rules_severity(r, i)));
            json_str(rules_file(r, i));
            fputs(",\"description\":", stdout);
            json_str(rules_description(r, i));
            fputs(",\"params\":[", stdout);
            for (int k = 0; k < rules_nparams(r, i); k++) {
                rules_param(r, i, k, &key, &doc, &val);
                printf("%s{\"key\":", k ? "," : "");
                json_str(key);
                fputs(",\"value\":", stdout);
                json_str(val);
                fputs(",\"doc\":", stdout);
                json_str(doc);
                putchar('}');
            }
            fputs("]}", stdout);
            continue;
        }
        pad_text(rules_name(r, i), 22);
        printf(" %-7s ", rules_severity_name(rules_severity(r, i)));
        cli_text(stdout, rules_file(r, i), 0);
        fputs("\n    ", stdout);
        cli_text(stdout, rules_description(r, i), 0);
        putchar('\n');
        for (int k = 0; k < rules_nparams(r, i); k++) {
            rules_param(r, i, k, &key, &doc, &val);
            char kv[128];
            snprintf(kv, sizeof kv, "%s = %s", key, val);
            fputs("      ", stdout);
            pad_text(kv, 26);
            putchar(' ');
            cli_text(stdout, doc, 0);
            putchar('\n');
        }
    }
    if (json) {
        fputs("],", stdout);
        print_load_errors(r, 1);
        fputs("}\n", stdout);
    } else {
        print_load_errors(r, 0);
    }
    rules_free(r);
    return rc;
}

/* ---- deals from the store ---------------------------------------------- */

/* The open deals at T, as score sees them: the same world, the same views
 * (world.h), the same partner statistics and stage medians (feat.h). */
static int load_store_deals(world *w, int limit, int64_t at, tdeal **out, int *n, double med[RULE_STAGES],
                            prm_error *err)
{
    *out = NULL;
    *n = 0;
    if (feat_prepare(w, at, err) < 0) return -1;
    const double *m = feat_medians(w);
    for (int i = 0; i < RULE_STAGES; i++) med[i] = m ? m[i] : NAN;
    tdeal *v = calloc((size_t)limit, sizeof *v);
    if (!v) return prm_error_set(err, "out of memory");
    for (size_t i = 0; i < world_n_deals(w) && *n < limit; i++) {
        if (!world_deal_open(w, i, at)) continue;
        feat_view(w, i, at, &v[*n].d);
        (*n)++;
    }
    *out = v;
    return 0;
}

/* ---- synthetic deals ---------------------------------------------------- */

/* One deal per shipped rule plus a healthy one, dated relative to `now`. */
static tdeal *synthetic(int64_t now, int *n)
{
    enum { N = 8 };
    tdeal *v = calloc(N, sizeof *v);
    if (!v) return NULL;
    char buf[24];
    for (int i = 0; i < N; i++) {
        tdeal *t = &v[i];
        deal_view_init(&t->d);
        snprintf(buf, sizeof buf, "SYN-%d", i + 1);
        t->d.external_id = keep(t, buf);
        t->d.partner_id = "P-SYN";
        t->d.tier = "Gold";
        t->d.partner_type = "reseller";
        t->d.region = "NA";
        t->d.account = "Acme Corp";
        t->d.contact_name = "Ann Lee";
        t->d.contact_email = "ann@acme.example";
        t->d.product_family = "Core";
        t->d.stage = "solution";
        t->d.status = "open";
        t->d.currency = "USD";
        t->d.amount = t->d.amount_base = 40000;
        t->d.partner_probability = 0.4;
        t->d.completeness = 0.9;
        t->d.budget_confirmed = 1;
        day_str(now - 60, t->d.created_at);
        day_str(now - 10, t->d.stage_changed_at);
        day_str(now - 10, t->d.updated_at);
        day_str(now + 40, t->d.expected_close);
        t->d.has_close = 1;
        t->d.age_days = 60;
        t->d.days_in_stage = 10;
        t->d.partner_win_rate = 0.3;
        t->d.partner_median_amount = t->d.tier_median_amount = 30000;
    }
    day_str(now - 95, v[1].d.stage_changed_at);    /* 2: stalled */
    v[1].d.days_in_stage = 95;
    v[2].d.account = NULL;                          /* 3: missing info */
    v[2].d.contact_email = NULL;
    v[2].d.completeness = 0.35;
    v[3].d.stage = "negotiation";                   /* 4: missing budget */
    v[3].d.budget_confirmed = -1;
    v[4].d.competitor = "Globex";                   /* 5: competitor */
    day_str(now - 21, v[5].d.expected_close);       /* 6: close date past */
    v[6].d.close_date_slips = 3;                    /* 7: repeated slip */
    v[6].d.days_slipped = 95;
    v[7].d.tier = "Silver";                         /* 8: large deal, low tier */
    v[7].d.amount = v[7].d.amount_base = 400000;
    *n = N;
    return v;
}

/* ---- test --------------------------------------------------------------- */

typedef struct tally {
    long fired;
    int nex;
    char ex_deal[EXAMPLES][64], ex_reason[EXAMPLES][RULES_REASON_MAX];
} tally;

static int parse_int(const char *s, int *out)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (!*s || *end || v < 1 || v > 1000000) return -1;
    *out = (int)v;
    return 0;
}

static int rules_test(int argc, char **argv, const char *db_path, int json)
{
    int limit = 200;
    const char *as_of = NULL;
    char clock_day[11];
    if (clock_pinned()) {
        date_iso(clock_now(), clock_day);
        as_of = clock_day;
    }
    const char **files = calloc((size_t)argc + 1, sizeof *files);
    int nfiles = 0;
    if (!files) return 1;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        const char *val = NULL;
        if (strcmp(a, "--deals") == 0 || strcmp(a, "--as-of") == 0) {
            if (i + 1 >= argc) {
                fprintf(stderr, "prmcast rules test: %s needs a value\n", a);
                free(files);
                return 2;
            }
            val = argv[++i];
        } else if (strncmp(a, "--deals=", 8) == 0 || strncmp(a, "--as-of=", 8) == 0) {
            val = a + 8;
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "prmcast rules test: unknown option '%s'\n", a);
            free(files);
            return 2;
        } else {
            files[nfiles++] = a;
            continue;
        }
        if (strncmp(a, "--deals", 7) == 0) {
            if (parse_int(val, &limit) < 0) {
                fprintf(stderr, "prmcast rules test: --deals must be a number from 1, not '%s'\n", val);
                free(files);
                return 2;
            }
        } else {
            as_of = val;
        }
    }
    if (!nfiles) {
        fprintf(stderr, "prmcast rules test: FILE is required\n(see 'prmcast rules --help')\n");
        free(files);
        return 2;
    }
    /* The same instant score uses: the engine clock (--as-of, PRMCAST_NOW). */
    int64_t at = clock_now();
    if (as_of && clock_parse(as_of, &at, NULL) < 0) {
        fprintf(stderr, "prmcast rules test: not a date: '%s'\n", as_of);
        free(files);
        return 2;
    }
    int64_t now = at / 86400;

    prm_error err;
    rules *r;
    if (rules_load(files, nfiles, &r, &err) < 0) {
        fprintf(stderr, "prmcast rules test: %s\n", err.msg);
        free(files);
        return 1;
    }
    rules_set_log(r, NULL);

    /* The deals: the store's when it exists and has some, else synthetic. */
    if (!db_path) db_path = getenv("PRMCAST_DB");
    if (!db_path || !*db_path) db_path = "prmcast.db";
    tdeal *deals = NULL;
    int ndeals = 0, from_store = 0;
    double med[RULE_STAGES];
    for (int i = 0; i < RULE_STAGES; i++) med[i] = NAN;
    struct stat st;
    store *s = NULL;
    if (stat(db_path, &st) == 0 && store_open(db_path, &s, &err) < 0) {
        fprintf(stderr, "prmcast rules test: %s (using synthetic deals)\n", err.msg);
        s = NULL;
    }
    world *w = NULL;
    if (s && world_load(s, &w, &err) < 0) {
        fprintf(stderr, "prmcast rules test: reading the store: %s\n", err.msg);
        w = NULL;
    }
    if (w) {
        if (load_store_deals(w, limit, at, &deals, &ndeals, med, &err) < 0)
            fprintf(stderr, "prmcast rules test: reading deals: %s\n", err.msg);
        if (ndeals > 0) from_store = 1;
    }
    if (!ndeals) {
        free(deals);
        deals = synthetic(now, &ndeals);
        for (int i = 0; i < RULE_STAGES; i++) med[i] = 14;
    }
    char today[11];
    day_str(now, today);

    int nr = rules_count(r);
    tally *tl = calloc((size_t)(nr ? nr : 1), sizeof *tl);
    rule_hit *hits = calloc((size_t)(nr ? nr : 1), sizeof *hits);
    int rc = rules_load_errors(r) ? 1 : 0;
    for (int i = 0; tl && hits && deals && i < ndeals; i++) {
        rule_ctx c;
        rule_ctx_init(&c, today);
        memcpy(c.stage_median_days, med, sizeof med);
        c.partner_win_rate = deals[i].d.partner_win_rate;
        c.partner_median_amount = deals[i].d.partner_median_amount;
        c.tier_median_amount = deals[i].d.tier_median_amount;
        int nh;
        if (rules_eval(r, &deals[i].d, &c, hits, nr, &nh, &err) < 0) {
            fprintf(stderr, "prmcast rules test: %s\n", err.msg);
            rc = 1;
            break;
        }
        for (int k = 0; k < nh; k++) {
            tally *t = &tl[hits[k].rule];
            t->fired++;
            if (t->nex < EXAMPLES) {
                snprintf(t->ex_deal[t->nex], sizeof t->ex_deal[0], "%s",
                         deals[i].d.external_id ? deals[i].d.external_id : "?");
                snprintf(t->ex_reason[t->nex], sizeof t->ex_reason[0], "%s", hits[k].reason);
                t->nex++;
            }
        }
    }

    if (json) {
        printf("{\"files\":[");
        for (int i = 0; i < nfiles; i++) {
            if (i) putchar(',');
            json_str(files[i]);
        }
        printf("],\"deals\":%d,\"source\":\"%s\",\"as_of\":\"%s\",\"rules\":[", ndeals,
               from_store ? "store" : "synthetic", today);
    } else {
        printf("%d rule(s) on %d %s deal(s), as of %s\n", nr, ndeals,
               from_store ? "open store" : "synthetic", today);
    }
    for (int i = 0; tl && i < nr; i++) {
        long ne = rules_errors(r, i);
        if (ne) rc = 1;
        if (json) {
            printf("%s{\"name\":", i ? "," : "");
            json_str(rules_name(r, i));
            printf(",\"severity\":\"%s\",\"fired\":%ld,\"errors\":%ld,\"disabled\":%s,\"examples\":[",
                   rules_severity_name(rules_severity(r, i)), tl[i].fired, ne,
                   rules_disabled(r, i) ? "true" : "false");
            for (int k = 0; k < tl[i].nex; k++) {
                printf("%s{\"deal\":", k ? "," : "");
                json_str(tl[i].ex_deal[k]);
                fputs(",\"reason\":", stdout);
                json_str(tl[i].ex_reason[k]);
                putchar('}');
            }
            fputs("],\"error_messages\":[", stdout);
            for (int k = 0; k < RULES_KEEP_ERRORS && rules_error_msg(r, i, k); k++) {
                if (k) putchar(',');
                json_str(rules_error_msg(r, i, k));
            }
            fputs("]}", stdout);
            continue;
        }
        /* Deal ids and reasons are export data: cli_text (issue 8). */
        pad_text(rules_name(r, i), 22);
        printf(" %-7s fired on %ld of %d deal(s)\n", rules_severity_name(rules_severity(r, i)),
               tl[i].fired, ndeals);
        for (int k = 0; k < tl[i].nex; k++) {
            fputs("    ", stdout);
            pad_text(tl[i].ex_deal[k], 14);
            putchar(' ');
            cli_text(stdout, tl[i].ex_reason[k], 0);
            putchar('\n');
        }
        if (ne) {
            printf("    ERROR on %ld deal(s)%s: ", ne, rules_disabled(r, i) ? " (switched off)" : "");
            cli_text(stdout, rules_error_msg(r, i, 0), 0);
            putchar('\n');
        }
    }
    if (json) {
        fputs("],", stdout);
        print_load_errors(r, 1);
        fputs("}\n", stdout);
    } else {
        print_load_errors(r, 0);
    }

    for (int i = 0; deals && i < ndeals; i++) tdeal_free(&deals[i]);
    free(deals);
    free(tl);
    free(hits);
    world_free(w);
    store_close(s);
    rules_free(r);
    free(files);
    return rc;
}

int cmd_rules(int argc, char **argv, const cli *c);

int cmd_rules(int argc, char **argv, const cli *c)
{
    const char *db_path = c->db_path;
    int json_out = c->json;
    if (argc >= 2 && strcmp(argv[1], "list") == 0) {
        if (argc > 2) {
            fprintf(stderr, "prmcast rules list: unexpected argument '%s'\n", argv[2]);
            return 2;
        }
        return rules_list(json_out);
    }
    if (argc >= 2 && strcmp(argv[1], "test") == 0) return rules_test(argc, argv, db_path, json_out);
    fprintf(stderr, "prmcast rules: expected 'rules list' or 'rules test FILE...'\n"
                    "(see 'prmcast rules --help')\n");
    return 2;
}
