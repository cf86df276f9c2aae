/* test_sandbox_attacks.c - drives the files in tests/sandbox/: one rule file per
 * attack on the rule sandbox (issue 8), each loaded beside a good rule and
 * run on DEALS deals. A file's header says what must happen:
 *   -- expect: <message>   the attack's error (or load error) holds this
 *   -- where: <file:line>  and names the attacking line
 *   -- phase: check | load | none
 * check: the rule fails once, is switched off for the run (rules_errors 1,
 * rules_disabled 1, logged once with the message and once as switched
 * off); load: the file is rejected at load with the message; none: the
 * rule runs clean on every deal. In every case the good rule flags every
 * deal and the whole run, rules_free included (finalizers, close), takes
 * less than BOUND_S seconds of CLOCK_MONOTONIC time - a safety net, not a
 * timing test: each attack alone ran for minutes to hours before. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "rules.h"
#include "tap.h"

enum { DEALS = 5, BOUND_S = 5 };
#define DIR_ "tests/sandbox"

static const char good_src[] =
    "local rules = require 'prm.rules'\n"
    "rules.flag{ name = 'GOOD', description = 'always', severity = 'low',\n"
    "  check = function(deal) return true, 'ok ' .. deal.external_id end }\n";

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* The value of "-- key: value" in the file's header, or "". */
static void header(const char *path, const char *key, char *out, size_t cap)
{
    out[0] = 0;
    FILE *f = fopen(path, "r");
    char line[512], pre[64];
    snprintf(pre, sizeof pre, "-- %s: ", key);
    while (f && fgets(line, sizeof line, f)) {
        if (strncmp(line, pre, strlen(pre)) == 0) {
            snprintf(out, cap, "%s", line + strlen(pre));
            out[strcspn(out, "\n")] = 0;
            break;
        }
    }
    if (f) fclose(f);
}

static int count(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p++) n++;
    return n;
}

static void attack(const char *file, const char *good)
{
    char path[512], expect[256], where[128], phase[32];
    snprintf(path, sizeof path, "%s/%s", DIR_, file);
    header(path, "expect", expect, sizeof expect);
    header(path, "where", where, sizeof where);
    header(path, "phase", phase, sizeof phase);
    const char *files[] = { path, good };
    FILE *log = tmpfile();
    double t0 = now_s();
    rules *r;
    prm_error err;
    if (!T_OK(rules_load(files, 2, &r, &err) == 0, file)) return;
    rules_set_log(r, log);
    int a = rules_index(r, "ATTACK"), g = rules_index(r, "GOOD"), good_hits = 0, attack_hits = 0;
    char id[16];
    for (int i = 0; i < DEALS; i++) {
        deal_view d;
        rule_ctx c;
        deal_view_init(&d);
        snprintf(id, sizeof id, "D%d", i);
        d.external_id = id;
        d.status = "open";
        rule_ctx_init(&c, "2026-11-20");
        rule_hit hits[8];
        int n = 0;
        if (rules_eval(r, &d, &c, hits, 8, &n, &err) < 0) continue;
        for (int k = 0; k < n; k++) {
            if (hits[k].rule == g) good_hits++;
            if (hits[k].rule == a) attack_hits++;
        }
    }
    char msg[64];
    if (strcmp(phase, "load") == 0) {
        int found = 0;
        for (int k = 0; k < rules_load_errors(r); k++) {
            const char *e = rules_load_error(r, k);
            if (strstr(e, expect) && strstr(e, where)) found = 1;
        }
        snprintf(msg, sizeof msg, "%s: rejected at load with message and line", file);
        T_OK(found && a < 0, msg);
    } else if (strcmp(phase, "check") == 0 && a >= 0) {
        const char *e = rules_error_msg(r, a, 0);
        snprintf(msg, sizeof msg, "%s: the message names the limit and the line", file);
        if (!T_OK(e && strstr(e, expect) && strstr(e, where), msg))
            printf("#   got: %s\n#   want: %s at %s\n", e ? e : "(none)", expect, where);
        snprintf(msg, sizeof msg, "%s: counted once and switched off", file);
        T_OK(rules_errors(r, a) == 1 && rules_disabled(r, a), msg);
    } else {
        snprintf(msg, sizeof msg, "%s: runs clean on every deal", file);
        T_OK(a >= 0 && rules_errors(r, a) == 0 && attack_hits == DEALS, msg);
    }
    snprintf(msg, sizeof msg, "%s: the good rule flags every deal", file);
    T_EQ_INT(good_hits, DEALS, msg);
    rules_set_log(r, log);
    rules_free(r);
    double dt = now_s() - t0;
    snprintf(msg, sizeof msg, "%s: bounded time (%.2f s < %d s)", file, dt, BOUND_S);
    T_OK(dt < BOUND_S, msg);
    if (strcmp(phase, "check") == 0) {
        fflush(log);
        rewind(log);
        static char buf[16384];
        size_t len = fread(buf, 1, sizeof buf - 1, log);
        buf[len] = 0;
        snprintf(msg, sizeof msg, "%s: logged once, then switched off", file);
        T_OK(count(buf, "rule ATTACK failed:") == 1 && count(buf, "rule ATTACK (") == 1 &&
             strstr(buf, "switched off for this run") && strstr(buf, expect), msg);
    }
    fclose(log);
}

static int by_name(const void *x, const void *y)
{
    return strcmp(*(char *const *)x, *(char *const *)y);
}

int main(void)
{
    char good[64];
    snprintf(good, sizeof good, "/tmp/prmcast-good-%d.lua", (int)getpid());
    FILE *f = fopen(good, "w");
    fputs(good_src, f);
    fclose(f);
    DIR *d = opendir(DIR_);
    char *names[64];
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)) && n < 64)
        if (strstr(e->d_name, ".lua")) names[n++] = strdup(e->d_name);
    if (d) closedir(d);
    qsort(names, (size_t)n, sizeof *names, by_name);
    T_OK(n >= 12, "the attack files are there");
    for (int i = 0; i < n; i++) {
        attack(names[i], good);
        free(names[i]);
    }
    remove(good);
    return t_done();
}
