/* test_rules.c - risk-flag rules: each shipped rule fires and stays quiet on
 * crafted deals; a throwing, looping, os-calling or memory-hungry rule fails
 * alone, with file and line, while the others keep flagging every deal;
 * misdeclared rules are rejected with file and field; declarations outside
 * the load phase raise; the deal view is read-only. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rules.h"
#include "tap.h"

static char dir[128];

static void write_rule(const char *name, const char *src)
{
    char p[256];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "w");
    fputs(src, f);
    fclose(f);
}

/* An unremarkable open deal at proposal with everything filled in. */
static void base_deal(deal_view *d)
{
    deal_view_init(d);
    d->external_id = "D1";
    d->partner_id = "P1";
    d->tier = "Gold";
    d->partner_type = "reseller";
    d->account = "Acme";
    d->contact_name = "Ann";
    d->contact_email = "ann@acme.test";
    d->product_family = "Core";
    d->stage = "proposal";
    d->status = "open";
    d->currency = "USD";
    d->amount = d->amount_base = 50000;
    d->completeness = 0.9;
    d->budget_confirmed = 1;
    snprintf(d->created_at, sizeof d->created_at, "%s", "2026-09-01");
    snprintf(d->expected_close, sizeof d->expected_close, "%s", "2026-12-15");
    snprintf(d->stage_changed_at, sizeof d->stage_changed_at, "%s", "2026-11-01");
    d->days_in_stage = 19;
}

static void base_ctx(rule_ctx *c)
{
    rule_ctx_init(c, "2026-11-20");
    for (int i = 0; i < RULE_STAGES; i++) c->stage_median_days[i] = 10;
    c->partner_win_rate = 0.3;
    c->partner_median_amount = 40000;
    c->tier_median_amount = 40000;
}

/* Runs r on d; returns the hit of rule `name`, or NULL. */
static rule_hit hits[64];
static const rule_hit *fires(rules *r, const deal_view *d, const rule_ctx *c, const char *name)
{
    int n = 0;
    prm_error err;
    if (rules_eval(r, d, c, hits, 64, &n, &err) < 0) return NULL;
    for (int i = 0; i < n; i++)
        if (strcmp(hits[i].name, name) == 0) return &hits[i];
    return NULL;
}

static int has(const char *s, const char *sub) { return s && strstr(s, sub) != NULL; }

static int any_load_error(const rules *r, const char *a, const char *b)
{
    for (int k = 0; k < rules_load_errors(r); k++)
        if (has(rules_load_error(r, k), a) && has(rules_load_error(r, k), b)) return 1;
    return 0;
}

static void shipped(void)
{
    rules *r;
    prm_error err;
    T_OK(rules_load_dir("rules/flags", &r, &err) == 0, "shipped rules load");
    if (!r) return;
    rules_set_log(r, NULL);
    T_EQ_INT(rules_load_errors(r), 0, "shipped rules: no load errors");
    T_OK(rules_count(r) >= 7, "at least seven shipped rules");
    const char *names[] = { "STALLED", "MISSING_INFO", "MISSING_BUDGET", "COMPETITOR_ENGAGED",
                            "CLOSE_DATE_PAST", "REPEATED_SLIP", "LARGE_DEAL_LOW_TIER" };
    for (int i = 0; i < 7; i++) {
        int k = rules_index(r, names[i]);
        T_OK(k >= 0 && *rules_description(r, k) && rules_nparams(r, k) >= 1, names[i]);
    }
    deal_view d;
    rule_ctx c;
    base_deal(&d);
    base_ctx(&c);
    int n = -1;
    T_OK(rules_eval(r, &d, &c, hits, 64, &n, &err) == 0 && n == 0, "a healthy deal raises no flag");

    const rule_hit *h;
    base_deal(&d);
    snprintf(d.stage_changed_at, sizeof d.stage_changed_at, "%s", "2026-09-01");             /* 80 days */
    h = fires(r, &d, &c, "STALLED");
    T_OK(h && has(h->reason, "80 days") && h->severity == RULE_MEDIUM, "STALLED fires after 80 idle days");
    snprintf(d.stage_changed_at, sizeof d.stage_changed_at, "%s", "2026-11-01");
    T_OK(!fires(r, &d, &c, "STALLED"), "STALLED quiet after 19 days");
    c.stage_median_days[3] = 50;                   /* proposal: 2 x 50 = 100 */
    snprintf(d.stage_changed_at, sizeof d.stage_changed_at, "%s", "2026-09-01");
    T_OK(!fires(r, &d, &c, "STALLED"), "STALLED: a slow stage median raises the limit");
    snprintf(d.stage_changed_at, sizeof d.stage_changed_at, "%s", "2026-07-01");
    h = fires(r, &d, &c, "STALLED");
    T_OK(h && has(h->reason, "limit 100") && has(h->reason, "median 50"), "STALLED reason has the limit");
    base_ctx(&c);
    d.status = "won";
    T_OK(!fires(r, &d, &c, "STALLED"), "STALLED ignores closed deals");

    base_deal(&d);
    d.completeness = 0.4;
    d.account = NULL;
    d.contact_email = "";
    h = fires(r, &d, &c, "MISSING_INFO");
    T_OK(h && has(h->reason, "0.40") && has(h->reason, "account, contact_email"),
         "MISSING_INFO fires and lists what is missing");
    d.completeness = NAN;
    T_OK(fires(r, &d, &c, "MISSING_INFO") != NULL, "MISSING_INFO without a score: two fields missing");
    d.account = "Acme";
    T_OK(!fires(r, &d, &c, "MISSING_INFO"), "MISSING_INFO quiet with one field missing");

    base_deal(&d);
    d.budget_confirmed = -1;
    h = fires(r, &d, &c, "MISSING_BUDGET");
    T_OK(h && has(h->reason, "unknown at proposal") && h->severity == RULE_HIGH, "MISSING_BUDGET unknown at proposal");
    d.budget_confirmed = 0;
    d.stage = "negotiation";
    h = fires(r, &d, &c, "MISSING_BUDGET");
    T_OK(h && has(h->reason, "not confirmed at negotiation"), "MISSING_BUDGET no at negotiation");
    d.stage = "qualified";
    T_OK(!fires(r, &d, &c, "MISSING_BUDGET"), "MISSING_BUDGET quiet early in the funnel");
    d.stage = "proposal";
    d.budget_confirmed = 1;
    T_OK(!fires(r, &d, &c, "MISSING_BUDGET"), "MISSING_BUDGET quiet when confirmed");

    base_deal(&d);
    d.competitor = "Globex";
    h = fires(r, &d, &c, "COMPETITOR_ENGAGED");
    T_OK(h && has(h->reason, "Globex"), "COMPETITOR_ENGAGED fires");
    d.competitor = "None";
    T_OK(!fires(r, &d, &c, "COMPETITOR_ENGAGED"), "COMPETITOR_ENGAGED: 'None' is no competitor");
    d.competitor = "";
    T_OK(!fires(r, &d, &c, "COMPETITOR_ENGAGED"), "COMPETITOR_ENGAGED: empty is no competitor");

    base_deal(&d);
    snprintf(d.expected_close, sizeof d.expected_close, "%s", "2026-10-01");
    h = fires(r, &d, &c, "CLOSE_DATE_PAST");
    T_OK(h && has(h->reason, "50 days ago"), "CLOSE_DATE_PAST fires 50 days late");
    snprintf(d.expected_close, sizeof d.expected_close, "%s", "2026-11-20");
    T_OK(!fires(r, &d, &c, "CLOSE_DATE_PAST"), "CLOSE_DATE_PAST quiet on the day");
    d.expected_close[0] = 0;
    T_OK(!fires(r, &d, &c, "CLOSE_DATE_PAST"), "CLOSE_DATE_PAST quiet without a date");

    base_deal(&d);
    d.close_date_slips = 2;
    d.days_slipped = 30;
    h = fires(r, &d, &c, "REPEATED_SLIP");
    T_OK(h && has(h->reason, "2 times, 30 days"), "REPEATED_SLIP fires on two slips");
    d.close_date_slips = 1;
    d.days_slipped = 75;
    T_OK(fires(r, &d, &c, "REPEATED_SLIP") != NULL, "REPEATED_SLIP fires on 75 days");
    d.days_slipped = 20;
    T_OK(!fires(r, &d, &c, "REPEATED_SLIP"), "REPEATED_SLIP quiet on one short slip");

    base_deal(&d);
    d.tier = "Silver";
    d.amount_base = 480000;
    h = fires(r, &d, &c, "LARGE_DEAL_LOW_TIER");
    T_OK(h && has(h->reason, "480,000") && has(h->reason, "12.0x"), "LARGE_DEAL_LOW_TIER vs tier median");
    c.tier_median_amount = NAN;
    h = fires(r, &d, &c, "LARGE_DEAL_LOW_TIER");
    T_OK(h && has(h->reason, "above 250,000"), "LARGE_DEAL_LOW_TIER fixed threshold");
    base_ctx(&c);
    d.tier = "Gold";
    T_OK(!fires(r, &d, &c, "LARGE_DEAL_LOW_TIER"), "LARGE_DEAL_LOW_TIER quiet for Gold");
    d.tier = "registered";
    d.amount_base = 100000;
    T_OK(!fires(r, &d, &c, "LARGE_DEAL_LOW_TIER"), "LARGE_DEAL_LOW_TIER quiet below 5x");

    /* Params from a config file. */
    char cfg[256];
    snprintf(cfg, sizeof cfg, "%s/config.lua", dir);
    write_rule("config.lua", "return { STALLED = { days = 90 } }\n");
    T_OK(rules_configure(r, cfg, &err) == 0, "config applied");
    int k = rules_index(r, "STALLED");
    const char *key = NULL, *val = NULL;
    for (int j = 0; j < rules_nparams(r, k); j++) {
        rules_param(r, k, j, &key, NULL, &val);
        if (strcmp(key, "days") == 0) break;
    }
    T_EQ_STR(val, "90", "config overrides the param");
    base_deal(&d);
    snprintf(d.stage_changed_at, sizeof d.stage_changed_at, "%s", "2026-09-01");
    T_OK(!fires(r, &d, &c, "STALLED"), "STALLED uses the configured days");
    write_rule("config.lua", "return { NOPE = {}, STALLED = { days = 'x', weeks = 2 } }\n");
    T_OK(rules_configure(r, cfg, &err) < 0 && has(err.msg, "unknown rule 'NOPE'") &&
         has(err.msg, "no param 'weeks'") && has(err.msg, "must be a number"),
         "bad config entries are named");
    rules_free(r);
}

static const char good[] =
    "local rules = require 'prm.rules'\n"
    "rules.flag{ name = 'GOOD', description = 'always', severity = 'low',\n"
    "  check = function(deal, ctx) return true, 'ok ' .. deal.external_id end }\n";
static const char throws[] =
    "local rules = require 'prm.rules'\n"
    "rules.flag{ name = 'THROWS', description = 'always throws', severity = 'high', check = function(deal)\n"
    "  error('boom on ' .. deal.external_id)\n"
    "end }\n";
static const char loop[] =
    "local rules = require 'prm.rules'\n"
    "rules.flag{ name = 'LOOP', description = 'never ends', severity = 'low', check = function()\n"
    "  while true do pcall(function() while true do end end) end\n"
    "end }\n";
static const char osexec[] =
    "local rules = require 'prm.rules'\n"
    "rules.flag{ name = 'OSX', description = 'runs a shell', severity = 'low', check = function()\n"
    "  return os.execute('touch /tmp/prmcast-pwned')\n"
    "end }\n";
static const char alloc[] =
    "local rules = require 'prm.rules'\n"
    "rules.flag{ name = 'ALLOC', description = 'eats memory', severity = 'low', check = function()\n"
    "  local s = ('x'):rep(4 << 20)\n"
    "  return #(s .. s .. s .. s .. s .. s .. s .. s .. s .. s .. s .. s .. s .. s .. s .. s .. s) > 0\n"
    "end }\n";
static const char late[] =
    "local rules = require 'prm.rules'\n"
    "rules.flag{ name = 'LATE', description = 'declares at run time', severity = 'low', check = function()\n"
    "  rules.flag{ name = 'LATER', description = 'x', severity = 'low', check = function() end }\n"
    "end }\n";
static const char writer[] =
    "local rules = require 'prm.rules'\n"
    "rules.flag{ name = 'WRITER', description = 'writes the deal', severity = 'low', check = function(deal)\n"
    "  deal.stage = 'closed_won'\n"
    "end }\n"
    "rules.flag{ name = 'RAWSET', description = 'rawsets the deal', severity = 'low', check = function(deal)\n"
    "  rawset(deal, 'stage', 'closed_won')\n"
    "end }\n"
    "rules.flag{ name = 'CTXW', description = 'writes the context', severity = 'low', check = function(deal, ctx)\n"
    "  ctx.partner.win_rate = 1\n"
    "end }\n"
    "rules.flag{ name = 'READER', description = 'reads the views', severity = 'low', check = function(deal, ctx, p)\n"
    "  local n = 0 for k, v in pairs(deal) do n = n + 1 end\n"
    "  assert(getmetatable(deal) == 'deal is read-only', 'metatable exposed')\n"
    "  assert(not pcall(setmetatable, deal, {}), 'setmetatable worked')\n"
    "  assert(not pcall(function() p.n = 2 end), 'params writable')\n"
    "  return deal.stage == 'proposal' and deal.budget_confirmed == true and deal.notes == nil\n"
    "     and ctx.partner.win_rate == 0.3 and ctx.stage_median_days.proposal == 10\n"
    "     and ctx.days_until('2026-11-30') == 10 and ctx.days_since(nil) == nil and p.n == 1,\n"
    "     ('%d fields'):format(n)\n"
    "end, params = { n = { 'a number', 1 } } }\n";
static const char evil[] =
    "local rules = require 'prm.rules'\n"
    "rules.flag{ name = 'EVIL', description = 'patches string methods', severity = 'low', check = function()\n"
    "  getmetatable('').__index.format = function() return 'pwned' end\n"
    "end }\n"
    "rules.flag{ name = 'VICTIM', description = 'formats', severity = 'low', check = function()\n"
    "  return true, ('%d'):format(5)\n"
    "end }\n";
static const char bad[] =
    "local rules = require 'prm.rules'\n"
    "rules.flag{ name = 'NOCHECK', description = 'no check', severity = 'low' }\n"
    "rules.flag{ name = 'BADSEV', description = 'bad severity', severity = 'urgent', check = function() end }\n"
    "rules.flag{ name = 'GOOD', description = 'duplicate', severity = 'low', check = function() end }\n"
    "rules.flag{ name = 'lower', description = 'bad name', severity = 'low', check = function() end }\n"
    "rules.flag{ name = 'EXTRA', description = 'x', severity = 'low', check = function() end, whenever = 1 }\n"
    "rules.flag{ name = 'BADPARAM', description = 'x', severity = 'low', check = function() end, params = { n = 3 } }\n"
    "rules.flag{ name = 'ALSO_GOOD', description = 'loads despite its neighbours', severity = 'medium',\n"
    "  check = function() return true end }\n";
static const char syntax[] = "local rules = require 'prm.rules'\nrules.flag{ name = \n";
static const char dies[] =
    "local rules = require 'prm.rules'\n"
    "rules.flag{ name = 'HALF', description = 'x', severity = 'low', check = function() end }\n"
    "error('load failed')\n";

static void isolation(void)
{
    const char *names[] = { "good.lua", "throws.lua", "loop.lua", "osexec.lua", "alloc.lua", "late.lua",
                            "writer.lua", "bad.lua", "syntax.lua", "dies.lua", "evil.lua" };
    const char *srcs[] = { good, throws, loop, osexec, alloc, late, writer, bad, syntax, dies, evil };
    char paths[11][256];
    const char *files[11];
    for (int i = 0; i < 11; i++) {
        write_rule(names[i], srcs[i]);
        snprintf(paths[i], sizeof paths[i], "%s/%s", dir, names[i]);
        files[i] = paths[i];
    }
    rules *r;
    prm_error err;
    T_OK(rules_load(files, 11, &r, &err) == 0, "a set with broken files still loads");
    if (!r) return;
    FILE *log = tmpfile();
    rules_set_log(r, log);
    T_OK(any_load_error(r, "bad.lua:2:", "rule 'NOCHECK': field 'when' must be a function"),
         "missing check rejected with file, line and field");
    T_OK(any_load_error(r, "bad.lua:3:", "rule 'BADSEV': field 'severity'"), "bad severity rejected");
    T_OK(any_load_error(r, "bad.lua:4:", "field 'name' duplicates the rule declared at"),
         "duplicate name rejected");
    T_OK(any_load_error(r, "bad.lua:5:", "must match"), "bad name rejected");
    T_OK(any_load_error(r, "bad.lua:6:", "field 'whenever' is not a known field"), "unknown field rejected");
    T_OK(any_load_error(r, "bad.lua:7:", "field 'params.n'"), "bad param rejected");
    T_OK(any_load_error(r, "syntax.lua:", "unexpected symbol") ||
         any_load_error(r, "syntax.lua:", "expected"), "syntax error reported with the file");
    T_OK(any_load_error(r, "dies.lua:3:", "load failed"), "a file that raises at load is reported");
    T_OK(rules_index(r, "HALF") < 0, "the rules of a file that raised are dropped");
    T_OK(rules_index(r, "ALSO_GOOD") >= 0, "a good rule next to misdeclared ones loads");
    T_OK(rules_index(r, "GOOD") >= 0 && rules_index(r, "NOCHECK") < 0, "only valid rules are listed");
    T_OK(has(rules_file(r, rules_index(r, "GOOD")), "good.lua:2"), "a rule knows its file and line");

    deal_view d;
    rule_ctx c;
    base_ctx(&c);
    const char *ids[] = { "D1", "D2", "D3", "D4", "D5" };
    int good_hits = 0, also_hits = 0, reader_hits = 0, reason_ok = 0, victim_ok = 0;
    for (int i = 0; i < 5; i++) {
        base_deal(&d);
        d.external_id = ids[i];
        int n = 0;
        if (rules_eval(r, &d, &c, hits, 64, &n, &err) < 0) break;
        for (int k = 0; k < n; k++) {
            if (strcmp(hits[k].name, "GOOD") == 0) {
                good_hits++;
                char want[16];
                snprintf(want, sizeof want, "ok %s", ids[i]);
                reason_ok += strcmp(hits[k].reason, want) == 0;
            }
            also_hits += strcmp(hits[k].name, "ALSO_GOOD") == 0;
            victim_ok += strcmp(hits[k].name, "VICTIM") == 0 && strcmp(hits[k].reason, "5") == 0;
            if (strcmp(hits[k].name, "READER") == 0 && has(hits[k].reason, "fields")) reader_hits++;
        }
    }
    T_EQ_INT(good_hits, 5, "the good rule flags every deal next to failing ones");
    T_EQ_INT(reason_ok, 5, "with its own reason per deal");
    T_EQ_INT(also_hits, 5, "another good rule flags every deal");
    T_EQ_INT(reader_hits, 5, "the views read as documented");
    T_EQ_INT(victim_ok, 5, "one rule cannot patch string methods for another");
    T_EQ_INT(rules_errors(r, rules_index(r, "EVIL")), 5, "getmetatable('') gives nothing to patch");

    int i = rules_index(r, "THROWS");
    T_EQ_INT(rules_errors(r, i), 5, "a throwing rule is counted once per deal");
    T_OK(has(rules_error_msg(r, i, 0), "throws.lua:3: boom on D1"), "its message has file and line");
    T_OK(has(rules_error_msg(r, i, 2), "boom on D3") && rules_error_msg(r, i, 3) == NULL,
         "the first messages are kept");
    T_OK(!has(rules_error_msg(r, i, 0), "traceback"), "kept messages are one line");
    i = rules_index(r, "LOOP");
    T_EQ_INT(rules_errors(r, i), RULES_MAX_LIMIT_FAILS, "an endless rule fails until switched off");
    T_OK(rules_disabled(r, i) && has(rules_error_msg(r, i, 0), "instruction limit exceeded"),
         "by the instruction budget, which its pcall cannot swallow");
    i = rules_index(r, "OSX");
    T_OK(rules_errors(r, i) == 5 && has(rules_error_msg(r, i, 0), "blocked function: os.execute"),
         "os.execute is blocked in a check");
    T_OK(access("/tmp/prmcast-pwned", F_OK) != 0, "and nothing ran");
    i = rules_index(r, "ALLOC");
    T_OK(rules_errors(r, i) >= 1 && has(rules_error_msg(r, i, 0), "memory limit exceeded"),
         "a huge allocation fails that rule");
    i = rules_index(r, "LATE");
    T_OK(rules_errors(r, i) == 5 &&
         has(rules_error_msg(r, i, 0), "late.lua:3: prm.rules.flag can only be called while rules are loading"),
         "rules.flag at run time raises the load-phase message");
    T_OK(rules_index(r, "LATER") < 0, "and declares nothing");
    i = rules_index(r, "WRITER");
    T_OK(rules_errors(r, i) == 5 && has(rules_error_msg(r, i, 0), "writer.lua:3: deal is read-only"),
         "writing the deal raises with the rule's line");
    i = rules_index(r, "RAWSET");
    T_OK(rules_errors(r, i) == 5, "rawset on the deal view fails");
    i = rules_index(r, "CTXW");
    T_OK(rules_errors(r, i) == 5 && has(rules_error_msg(r, i, 0), "ctx.partner is read-only"),
         "the context is read-only too");
    T_EQ_INT(rules_errors(r, rules_index(r, "GOOD")), 0, "the good rule had no error");

    fflush(log);
    rewind(log);
    char buf[4096];
    size_t len = fread(buf, 1, sizeof buf - 1, log);
    buf[len] = 0;
    int throws_lines = 0;
    for (char *p = buf; (p = strstr(p, "rule THROWS failed:")); p++) throws_lines++;
    T_EQ_INT(throws_lines, 1, "a failing rule is logged once");
    rules_set_log(r, NULL);
    rules_free(r);
    fclose(log);

    const char *only_bad[] = { paths[8], paths[9] };
    r = (rules *)1;
    T_OK(rules_load(only_bad, 2, &r, &err) < 0 && r == NULL && has(err.msg, "no rule file loaded"),
         "no file loaded: an error");
    const char *missing[] = { "/nonexistent/x.lua" };
    T_OK(rules_load(missing, 1, &r, &err) < 0 && has(err.msg, "cannot read"), "a missing file is an error");
}

/* A rule that hoards memory until the cap: switched off, its hoard freed,
 * and the other rule never misses a deal. */
static void hoard(void)
{
    write_rule("hoard.lua",
        "local rules = require 'prm.rules'\n"
        "local keep = {}\n"
        "rules.flag{ name = 'HOARD', description = 'keeps everything', severity = 'low', check = function(deal)\n"
        "  keep[#keep + 1] = string.rep(deal.external_id, 200000)\n"
        "end }\n");
    char p[256];
    snprintf(p, sizeof p, "%s/hoard.lua", dir);
    const char *files[] = { p, NULL };
    char gp[256];
    snprintf(gp, sizeof gp, "%s/good.lua", dir);
    files[1] = gp;
    rules *r;
    prm_error err;
    if (!T_OK(rules_load(files, 2, &r, &err) == 0, "hoarding rule loads")) return;
    rules_set_log(r, NULL);
    deal_view d;
    rule_ctx c;
    base_ctx(&c);
    int good_hits = 0, fails = 0;
    char id[16];
    for (int i = 0; i < 300; i++) {
        base_deal(&d);
        snprintf(id, sizeof id, "D%05d", i);
        d.external_id = id;
        int n;
        if (rules_eval(r, &d, &c, hits, 64, &n, &err) < 0) fails++;
        else good_hits += n;
    }
    int i = rules_index(r, "HOARD");
    T_OK(fails == 0 && good_hits == 300, "the other rule flags all 300 deals");
    T_OK(rules_disabled(r, i) && rules_errors(r, i) == RULES_MAX_LIMIT_FAILS &&
         has(rules_error_msg(r, i, 0), "memory limit exceeded"), "the hoarder is switched off at the cap");
    T_OK(rules_memory(r) < (8u << 20), "and what it held is freed");
    rules_free(r);
}

static void json(void)
{
    rule_hit h[2] = { { 0, "A_FLAG", RULE_HIGH, "quote \" and \\ and\nnewline" },
                      { 1, "B", RULE_LOW, "plain" } };
    char out[256];
    T_EQ_INT(rules_hits_json(h, 2, out, sizeof out), 2, "hits as JSON: both written");
    T_EQ_STR(out, "[{\"name\":\"A_FLAG\",\"severity\":\"high\",\"reason\":\"quote \\\" and \\\\ and\\u000anewline\"},"
                  "{\"name\":\"B\",\"severity\":\"low\",\"reason\":\"plain\"}]", "escaped");
    T_EQ_INT(rules_hits_json(h, 2, out, 90), 1, "a hit that does not fit is left out");
    T_OK(out[strlen(out) - 1] == ']' && strstr(out, "\"B\"") == NULL, "still valid JSON");
    T_EQ_INT(rules_hits_json(h, 0, out, 3), 0, "no hits: []");
    T_EQ_STR(out, "[]", "empty array");
}

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/prmcast-rules-%d", (int)getpid());
    mkdir(dir, 0700);
    json();
    shipped();
    isolation();
    hoard();
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return t_done();
}
