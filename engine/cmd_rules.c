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
#include "timeutil.h"

enum { EXAMPLES = 3, OWN = 24 };

static const char *const stages[] = {
    "registered", "qualified", "solution", "proposal", "negotiation", "closed_won", "closed_lost",
};

static int stage_index(const char *s)
{
    for (int i = 0; s && i < 7; i++)
        if (strcmp(stages[i], s) == 0) return i < 5 ? i : 5;
    return -1;
}

/* A deal read for testing, owning its strings. */
typedef struct tdeal {
    rule_deal d;
    int64_t id, partner;
    char *own[OWN];
    int nown;
    double win_rate, partner_median, tier_median;
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

static int64_t day_of(const char *s)
{
    int64_t secs;
    if (!s || date_parse(s, DATE_ISO, &secs, NULL) < 0) return INT64_MIN;
    return secs >= 0 ? secs / 86400 : -((-secs + 86399) / 86400);
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

/* ---- deals from the store ----------------------------------------------- */

/* The latest rate of each currency (USD per unit). MATERIALIZED: inlined,
 * the max() subquery ran once per deal (0.23 s instead of 0.03 s a tier
 * on the 30k-deal sample). */
#define FX_CTE                                                                     \
    "WITH fx AS MATERIALIZED (SELECT currency, rate FROM fx_rates f WHERE date ="  \
    " (SELECT max(date) FROM fx_rates g WHERE g.currency = f.currency)) "
#define USD "CASE WHEN d.currency IS NULL OR d.currency = 'USD' THEN d.amount ELSE d.amount * fx.rate END"

static const char *col_str(store_stmt *st, int i, tdeal *t)
{
    store_value v = store_column(st, i);
    return v.kind == SV_TEXT ? keep(t, v.s) : NULL;
}

static double col_num(store_stmt *st, int i)
{
    store_value v = store_column(st, i);
    return v.kind == SV_REAL ? v.r : v.kind == SV_INT ? (double)v.i : NAN;
}

static int64_t col_int(store_stmt *st, int i)
{
    store_value v = store_column(st, i);
    return v.kind == SV_INT ? v.i : v.kind == SV_REAL ? (int64_t)v.r : -1;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, size_t n)
{
    if (!n) return NAN;
    qsort(v, n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* Runs `sql` (binding `key` to ?1 when given, text) and collects column 1
 * (a number) of the rows whose column 0 equals `key`; the median. */
static double median_of(store *s, const char *sql, const store_value *key, prm_error *err)
{
    store_stmt *st;
    if (store_prepare(s, sql, &st, err) < 0) return NAN;
    if (key) store_bind(st, 1, key, err);
    size_t n = 0, cap = 256;
    double *v = malloc(cap * sizeof *v);
    while (v && store_step(st, err) == 1) {
        double x = col_num(st, 0);
        if (isnan(x)) continue;
        if (n == cap) {
            double *nv = realloc(v, (cap *= 2) * sizeof *v);
            if (!nv) break;
            v = nv;
        }
        v[n++] = x;
    }
    store_finalize(st);
    double m = v ? median(v, n) : NAN;
    free(v);
    return m;
}

/* Median days spent in each open stage over completed stage spells: one
 * pass over deal_history with window functions. */
static void stage_medians(store *s, double med[RULE_STAGES])
{
    static const char sql[] =
        "WITH h AS (SELECT deal_id, stage, observed_at,"
        "  LAG(stage) OVER (PARTITION BY deal_id ORDER BY observed_at) AS prev FROM deal_history),"
        " ch AS (SELECT deal_id, stage, observed_at FROM h WHERE prev IS NULL OR prev IS NOT stage),"
        " sp AS (SELECT stage, julianday(substr(LEAD(observed_at) OVER (PARTITION BY deal_id"
        "  ORDER BY observed_at), 1, 10)) - julianday(substr(observed_at, 1, 10)) AS days FROM ch)"
        " SELECT stage, days FROM sp WHERE days IS NOT NULL";
    double *v[RULE_STAGES] = { 0 };
    size_t n[RULE_STAGES] = { 0 }, cap[RULE_STAGES] = { 0 };
    store_stmt *st;
    if (store_prepare(s, sql, &st, NULL) == 0) {
        while (store_step(st, NULL) == 1) {
            store_value sv = store_column(st, 0);
            int i = stage_index(sv.kind == SV_TEXT ? sv.s : NULL);
            double d = col_num(st, 1);
            if (i < 0 || i >= RULE_STAGES || isnan(d)) continue;
            if (n[i] == cap[i]) {
                size_t nc = cap[i] ? cap[i] * 2 : 1024;
                double *nv = realloc(v[i], nc * sizeof *nv);
                if (!nv) continue;
                v[i] = nv;
                cap[i] = nc;
            }
            v[i][n[i]++] = d;
        }
        store_finalize(st);
    }
    for (int i = 0; i < RULE_STAGES; i++) {
        med[i] = median(v[i], n[i]);
        free(v[i]);
    }
}

/* Medians and win rates per partner and per tier, computed once per key. */
typedef struct memo {
    int64_t id;
    char key[64];
    double value;
} memo;

static double memo_get(store *s, memo *m, int *n, int cap, const char *sql, const store_value *key)
{
    for (int i = 0; i < *n; i++)
        if (key->kind == SV_INT ? m[i].id == key->i : strcmp(m[i].key, key->s ? key->s : "") == 0)
            return m[i].value;
    double v = median_of(s, sql, key, NULL);
    if (*n < cap) {
        m[*n].id = key->i;
        snprintf(m[*n].key, sizeof m[*n].key, "%s", key->s ? key->s : "");
        m[(*n)++].value = v;
    }
    return v;
}

/* History-derived fields of one deal. */
static void derive(store_stmt *h, tdeal *t, int64_t now)
{
    store_value id = { SV_INT, NULL, 0, t->id };
    store_reset(h);
    store_bind(h, 1, &id, NULL);
    int prev_stage = -2;
    int64_t prev_close = INT64_MIN;
    const char *changed = NULL;
    char buf[32];
    while (store_step(h, NULL) == 1) {
        store_value at = store_column(h, 0), sv = store_column(h, 1), cv = store_column(h, 2);
        int si = stage_index(sv.kind == SV_TEXT ? sv.s : NULL);
        if (si != prev_stage && at.kind == SV_TEXT) {
            snprintf(buf, sizeof buf, "%s", at.s);
            changed = buf;
            if (prev_stage >= 0 && si >= 0 && si < prev_stage && prev_stage < 5) t->d.stage_regressions++;
            prev_stage = si;
        }
        int64_t c = day_of(cv.kind == SV_TEXT ? cv.s : NULL);
        if (c != INT64_MIN) {
            if (prev_close != INT64_MIN && c > prev_close) {
                t->d.close_date_slips++;
                t->d.days_slipped += (int)(c - prev_close);
            }
            prev_close = c;
        }
    }
    t->d.stage_changed_at = changed ? keep(t, changed) : t->d.created_at;
    int64_t sc = day_of(t->d.stage_changed_at), cr = day_of(t->d.created_at);
    if (sc != INT64_MIN) t->d.days_in_stage = (int)(now - sc);
    if (cr != INT64_MIN) t->d.age_days = (int)(now - cr);
}

static int load_store_deals(store *s, int limit, int64_t now, tdeal **out, int *n, prm_error *err)
{
    static const char sql[] = FX_CTE
        "SELECT d.id, d.partner_id, d.external_id, p.external_id, p.tier, p.type, p.region, d.account,"
        " d.contact_name, d.contact_email, d.product_family, d.stage, d.status, d.currency,"
        " d.competitor, d.notes, d.amount, " USD ", d.partner_probability, d.completeness,"
        " d.budget_confirmed, d.created_at, d.expected_close, d.closed_at, d.updated_at"
        " FROM deals d JOIN partners p ON p.id = d.partner_id LEFT JOIN fx ON fx.currency = d.currency"
        " WHERE d.status = 'open' ORDER BY d.external_id LIMIT ?1";
    store_stmt *st, *h = NULL;
    *out = NULL;
    *n = 0;
    if (store_prepare(s, sql, &st, err) < 0) return -1;
    store_value lim = { SV_INT, NULL, 0, limit };
    store_bind(st, 1, &lim, NULL);
    tdeal *v = calloc((size_t)limit, sizeof *v);
    if (!v) {
        store_finalize(st);
        return prm_error_set(err, "out of memory");
    }
    int rc;
    while ((rc = store_step(st, err)) == 1 && *n < limit) {
        tdeal *t = &v[(*n)++];
        rule_deal_init(&t->d);
        t->id = col_int(st, 0);
        t->partner = col_int(st, 1);
        const char **f[] = { &t->d.external_id, &t->d.partner_id, &t->d.partner_tier,
                             &t->d.partner_type, &t->d.partner_region, &t->d.account,
                             &t->d.contact_name, &t->d.contact_email, &t->d.product_family,
                             &t->d.stage, &t->d.status, &t->d.currency, &t->d.competitor,
                             &t->d.notes };
        for (int k = 0; k < 14; k++) *f[k] = col_str(st, 2 + k, t);
        t->d.amount = col_num(st, 16);
        t->d.amount_usd = col_num(st, 17);
        t->d.partner_probability = col_num(st, 18);
        t->d.completeness = col_num(st, 19);
        int64_t b = col_int(st, 20);
        t->d.budget_confirmed = b < 0 ? -1 : b != 0;
        t->d.created_at = col_str(st, 21, t);
        t->d.expected_close = col_str(st, 22, t);
        t->d.closed_at = col_str(st, 23, t);
        t->d.updated_at = col_str(st, 24, t);
    }
    store_finalize(st);
    if (rc < 0) goto fail;
    if (store_prepare(s, "SELECT observed_at, stage, expected_close FROM deal_history"
                         " WHERE deal_id = ?1 ORDER BY observed_at", &h, err) < 0)
        goto fail;
    enum { MEMO = 256 };
    memo *pm = calloc(MEMO * 3, sizeof *pm), *tm = pm + MEMO, *wm = pm + 2 * MEMO;
    int npm = 0, ntm = 0, nwm = 0;
    for (int i = 0; pm && i < *n; i++) {
        tdeal *t = &v[i];
        derive(h, t, now);
        store_value pid = { SV_INT, NULL, 0, t->partner };
        store_value tier = { SV_TEXT, t->d.partner_tier ? t->d.partner_tier : "", 0, 0 };
        t->partner_median = memo_get(s, pm, &npm, MEMO, FX_CTE "SELECT " USD " FROM deals d LEFT JOIN fx"
                                     " ON fx.currency = d.currency WHERE d.partner_id = ?1", &pid);
        t->tier_median = memo_get(s, tm, &ntm, MEMO, FX_CTE "SELECT " USD " FROM deals d JOIN partners p"
                                  " ON p.id = d.partner_id LEFT JOIN fx ON fx.currency = d.currency"
                                  " WHERE p.tier = ?1", &tier);
        t->win_rate = memo_get(s, wm, &nwm, MEMO, "SELECT CASE WHEN count(*) > 0 THEN avg(status = 'won')"
                               " END FROM deals WHERE partner_id = ?1 AND status <> 'open'", &pid);
    }
    free(pm);
    store_finalize(h);
    *out = v;
    return 0;
fail:
    for (int i = 0; i < *n; i++) tdeal_free(&v[i]);
    free(v);
    *n = 0;
    return -1;
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
        rule_deal_init(&t->d);
        snprintf(buf, sizeof buf, "SYN-%d", i + 1);
        t->d.external_id = keep(t, buf);
        t->d.partner_id = "P-SYN";
        t->d.partner_tier = "Gold";
        t->d.partner_type = "reseller";
        t->d.partner_region = "NA";
        t->d.account = "Acme Corp";
        t->d.contact_name = "Ann Lee";
        t->d.contact_email = "ann@acme.example";
        t->d.product_family = "Core";
        t->d.stage = "solution";
        t->d.status = "open";
        t->d.currency = "USD";
        t->d.amount = t->d.amount_usd = 40000;
        t->d.partner_probability = 0.4;
        t->d.completeness = 0.9;
        t->d.budget_confirmed = 1;
        day_str(now - 60, buf);
        t->d.created_at = keep(t, buf);
        day_str(now - 10, buf);
        t->d.stage_changed_at = keep(t, buf);
        t->d.updated_at = t->d.stage_changed_at;
        day_str(now + 40, buf);
        t->d.expected_close = keep(t, buf);
        t->d.age_days = 60;
        t->d.days_in_stage = 10;
        t->win_rate = 0.3;
        t->partner_median = t->tier_median = 30000;
    }
    day_str(now - 95, buf);                        /* 2: stalled */
    v[1].d.stage_changed_at = keep(&v[1], buf);
    v[1].d.days_in_stage = 95;
    v[2].d.account = NULL;                          /* 3: missing info */
    v[2].d.contact_email = NULL;
    v[2].d.completeness = 0.35;
    v[3].d.stage = "negotiation";                   /* 4: missing budget */
    v[3].d.budget_confirmed = -1;
    v[4].d.competitor = "Globex";                   /* 5: competitor */
    day_str(now - 21, buf);                         /* 6: close date past */
    v[5].d.expected_close = keep(&v[5], buf);
    v[6].d.close_date_slips = 3;                    /* 7: repeated slip */
    v[6].d.days_slipped = 95;
    v[7].d.partner_tier = "Silver";                 /* 8: large deal, low tier */
    v[7].d.amount = v[7].d.amount_usd = 400000;
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
    int64_t now = INT64_MIN;
    if (as_of && (now = day_of(as_of)) == INT64_MIN) {
        fprintf(stderr, "prmcast rules test: not a date: '%s'\n", as_of);
        free(files);
        return 2;
    }

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
    if (s) {
        if (now == INT64_MIN) {
            store_stmt *q;
            if (store_prepare(s, "SELECT max(substr(updated_at, 1, 10)) FROM deals", &q, NULL) == 0) {
                if (store_step(q, NULL) == 1) {
                    store_value v = store_column(q, 0);
                    if (v.kind == SV_TEXT) now = day_of(v.s);
                }
                store_finalize(q);
            }
        }
        if (now == INT64_MIN) now = (int64_t)time(NULL) / 86400;
        if (load_store_deals(s, limit, now, &deals, &ndeals, &err) < 0)
            fprintf(stderr, "prmcast rules test: reading deals: %s\n", err.msg);
        if (ndeals > 0) {
            from_store = 1;
            stage_medians(s, med);
        }
    }
    if (now == INT64_MIN) now = (int64_t)time(NULL) / 86400;
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
        c.partner_win_rate = deals[i].win_rate;
        c.partner_median_amount = deals[i].partner_median;
        c.tier_median_amount = deals[i].tier_median;
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
