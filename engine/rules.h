/* rules.h - risk-flag rules: Lua files under rules/flags/ that declare
 * themselves with prm.rules.flag{} (engine/lib/prm/rules.lua), evaluated
 * on plain C deal records.
 *
 *   rules *r;
 *   if (rules_load(files, n, &r, &err) < 0) ...          // no file loaded
 *   for (int k = 0; k < rules_load_errors(r); k++)
 *       fprintf(stderr, "%s\n", rules_load_error(r, k)); // rejected rules, bad files
 *   rule_hit hits[32];
 *   int nhits;
 *   rules_eval(r, &deal, &ctx, hits, 32, &nhits, &err);  // hits[i].name, .reason
 *   rules_free(r);
 *
 * All files load into ONE SANDBOX_RULE state, each with its own _ENV. A
 * misdeclared rule or a file that fails to load is reported with its file
 * (and line, and field) and the rest still load. During evaluation every
 * check(deal, ctx, p) runs through sandbox_call with its own instruction
 * budget; a rule that throws fails only for that deal: it is counted
 * (rules_errors), its first messages are kept ("rules/flags/x.lua:12: ..."),
 * the first one is logged, and the other rules and later deals go on. A rule
 * that hits the time, depth, string/table size or pattern limit is switched
 * off for the rest of the run at once (each try costs up to the deadline);
 * one that hits the instruction or memory limit after RULES_MAX_LIMIT_FAILS
 * times (~50 ms per deal); its check is then dropped so that what it holds
 * can be collected. The switch-off is logged with the rule's file.
 *
 * In Lua, deal and ctx are read-only views (userdata; writing raises "deal
 * is read-only"); missing values are nil and budget_confirmed is
 * true/false/nil. ctx has now, days_since(date), days_until(date),
 * stage_median_days[stage], partner = { win_rate, median_amount },
 * tier_median_amount.
 */
#ifndef PRM_RULES_H
#define PRM_RULES_H

#include <stdio.h>

#include "error.h"

typedef struct rules rules;

typedef enum { RULE_LOW, RULE_MEDIUM, RULE_HIGH } rule_severity;

/* Deals reach rules as the one deal view of features and explanations
 * (world.h deal_view): strings NULL or "" when missing, doubles NaN. */
#include "world.h"

enum { RULE_STAGES = 5 };              /* registered, qualified, solution, proposal, negotiation */

typedef struct rule_ctx {
    const char *now;                   /* ISO date: "today" for the run (as-of) */
    double stage_median_days[RULE_STAGES];   /* NaN unknown */
    double partner_win_rate;           /* NaN unknown */
    double partner_median_amount, tier_median_amount;   /* NaN unknown */
} rule_ctx;

enum { RULES_REASON_MAX = 200, RULES_KEEP_ERRORS = 3, RULES_MAX_LIMIT_FAILS = 3 };

typedef struct rule_hit {
    int rule;                          /* index, 0 .. rules_count - 1 */
    const char *name;                  /* borrowed from the rules handle */
    rule_severity severity;
    char reason[RULES_REASON_MAX];     /* truncated to fit */
} rule_hit;

/* Loads rule files. Returns 0 when at least one file loaded (or nfiles is
 * 0); the problems of the others are rules_load_error(). Returns -1 with
 * err (and *out NULL) when no file loaded or the state cannot be made. The
 * project root for rules.lib.* is job_root(). */
int rules_load(const char *const *files, int nfiles, rules **out, prm_error *err);
/* Every rule file in DIR (sorted by name) - rules/flags usually. */
int rules_load_dir(const char *dir, rules **out, prm_error *err);
void rules_free(rules *r);

/* Load problems: "rules/flags/x.lua:3: rule 'X': field 'severity' must be
 * ...", or a file's syntax or runtime error. */
int rules_load_errors(const rules *r);
const char *rules_load_error(const rules *r, int k);

/* Overrides params from a config file returning { RULE = { param = v } }.
 * Valid entries are applied; the first problems go to err and -1. */
int rules_configure(rules *r, const char *path, prm_error *err);

int rules_count(const rules *r);
const char *rules_name(const rules *r, int i);
const char *rules_description(const rules *r, int i);
rule_severity rules_severity(const rules *r, int i);
const char *rules_severity_name(rule_severity s);   /* "low", "medium", "high" */
const char *rules_file(const rules *r, int i);      /* "rules/flags/x.lua:3" */
int rules_index(const rules *r, const char *name);  /* -1 when unknown */
/* Params, sorted by key: key, doc and current value as text. */
int rules_nparams(const rules *r, int i);
void rules_param(const rules *r, int i, int k, const char **key, const char **doc,
                 const char **value);

/* Runs every rule on one deal. *nhits gets the hits written (at most
 * max_hits; with max_hits >= rules_count none is dropped). A throwing rule
 * is not an error here: see rules_errors. Returns -1 only when the engine
 * cannot build the deal view (memory). */
int rules_eval(rules *r, const deal_view *d, const rule_ctx *c, rule_hit *hits, int max_hits,
               int *nhits, prm_error *err);

/* Hits as a JSON array, [{"name":"STALLED","severity":"medium","reason":"..."}],
 * into out (NUL-terminated). Hits that do not fit are left out, so the text
 * is always valid JSON; returns how many were written, or -1 when cap < 3. */
int rules_hits_json(const rule_hit *hits, int n, char *out, size_t cap);

/* Errors of rule i so far, its first messages, and whether it was switched
 * off after hitting a limit. */
long rules_errors(const rules *r, int i);
const char *rules_error_msg(const rules *r, int i, int k);   /* k < RULES_KEEP_ERRORS */
int rules_disabled(const rules *r, int i);
/* Bytes the rule state holds now (the cap is SANDBOX_RULE_MEM). */
size_t rules_memory(const rules *r);
/* Where the first error of each rule is logged (default stderr; NULL: off). */
void rules_set_log(rules *r, FILE *log);

void rule_ctx_init(rule_ctx *c, const char *now);

#endif
