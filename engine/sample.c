/* sample.c - see sample.h. A deterministic simulation of a partner program:
 * every partner gets latent traits (skill, speed, sloppiness, commit bias,
 * probability bias), every deal is simulated through its stages from
 * registration to close, and the export shows the world as of `as_of`:
 * open deals in their current stage, history only up to that date. */
#include "sample.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "timeutil.h"

/* ---- random numbers: xoshiro256** seeded by splitmix64 --------------- */

typedef struct rng { uint64_t s[4]; } rng;

static uint64_t splitmix(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static void rng_seed(rng *r, uint64_t seed)
{
    for (int i = 0; i < 4; i++) r->s[i] = splitmix(&seed);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t next(rng *r)
{
    uint64_t *s = r->s, res = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0]; s[3] ^= s[1]; s[1] ^= s[2]; s[0] ^= s[3]; s[2] ^= t; s[3] = rotl(s[3], 45);
    return res;
}

static double unif(rng *r) { return (double)(next(r) >> 11) * 0x1.0p-53; }
static int chance(rng *r, double p) { return unif(r) < p; }
static int below(rng *r, int n) { return (int)(unif(r) * n); }

static double norm(rng *r)
{
    double u = unif(r), v = unif(r);
    return sqrt(-2.0 * log(u + 1e-300)) * cos(6.283185307179586 * v);
}

static double gamma_rv(rng *r, double shape, double scale)
{
    /* Marsaglia & Tsang; shape >= 1 here. */
    double d = shape - 1.0 / 3, c = 1 / sqrt(9 * d);
    for (;;) {
        double x = norm(r), v = 1 + c * x;
        if (v <= 0) continue;
        v = v * v * v;
        double u = unif(r);
        if (log(u + 1e-300) < 0.5 * x * x + d - d * v + d * log(v)) return d * v * scale;
    }
}

static int pick(rng *r, const double *w, int n)
{
    double t = 0, u;
    for (int i = 0; i < n; i++) t += w[i];
    u = unif(r) * t;
    for (int i = 0; i < n; i++) {
        if (u < w[i]) return i;
        u -= w[i];
    }
    return n - 1;
}

/* ---- the program's vocabulary ------------------------------------------ */

static const char *const tiers[] = { "Platinum", "Gold", "Silver", "Registered" };
static const double tier_w[] = { 0.08, 0.20, 0.35, 0.37 };
static const double tier_logit[] = { 0.35, 0.1, -0.2, -0.5 };
static const double tier_amount[] = { 2.0, 1.4, 1.0, 0.7 };
static const double tier_commission[] = { 0.15, 0.12, 0.10, 0.08 };

static const char *const regions[] = { "NA", "EMEA", "APAC", "LATAM" };
static const double region_w[] = { 0.40, 0.30, 0.18, 0.12 };
static const struct { const char *country, *currency; int region; } countries[] = {
    { "US", "USD", 0 }, { "CA", "CAD", 0 }, { "DE", "EUR", 1 }, { "GB", "GBP", 1 },
    { "FR", "EUR", 1 }, { "NL", "EUR", 1 }, { "JP", "JPY", 2 }, { "AU", "AUD", 2 },
    { "SG", "SGD", 2 }, { "IN", "INR", 2 }, { "BR", "BRL", 3 }, { "MX", "USD", 3 },
};
enum { NCOUNTRY = sizeof countries / sizeof countries[0] };
static const char *const currencies[] = { "USD", "CAD", "EUR", "GBP", "JPY", "AUD", "SGD", "INR", "BRL" };
static const double fx0[] = { 1.0, 0.74, 1.08, 1.27, 0.0068, 0.66, 0.74, 0.012, 0.20 };
enum { NCUR = sizeof currencies / sizeof currencies[0] };

static const char *const types[] = { "distributor", "reseller", "referral", "msp" };
static const double type_w[] = { 0.05, 0.60, 0.19, 0.16 };

static const char *const products[] = { "Core Platform", "Security Suite", "Analytics",
                                        "Professional Services", "Add-ons" };
static const double product_w[] = { 0.35, 0.22, 0.18, 0.13, 0.12 };
static const double product_mu[] = { 10.6, 10.2, 9.9, 9.6, 8.7 };      /* log USD */
static const double product_logit[] = { 0.0, -0.15, 0.1, 0.25, 0.35 };

/* The PRM's own stage names; the connector maps them to canonical ones. */
static const char *const stage_names[] = { "Registered", "Qualified", "Solution Design",
                                           "Proposal Sent", "Negotiation", "Closed Won",
                                           "Closed Lost" };
static const double stage_median[] = { 9, 16, 20, 15, 11 };
static const double stage_prob[] = { 0.10, 0.20, 0.40, 0.60, 0.80 };
enum { WON = 5, LOST = 6 };

static const char *const competitors[] = { "Northwind", "Contoso", "Globex", "Initech" };
static const char *const name_a[] = { "Apex", "Blue", "Cedar", "Delta", "Ember", "Fjord", "Granite",
    "Harbor", "Iris", "Juniper", "Keystone", "Lumen", "Meridian", "Nova", "Orbit", "Pioneer",
    "Quartz", "Ridge", "Summit", "Tidal", "Unity", "Vertex", "Willow", "Zenith" };
static const char *const name_b[] = { "Systems", "Networks", "Solutions", "Technologies",
    "Partners", "Digital", "IT Services", "Consulting", "Cloud", "Data", "Integrators", "Labs" };
static const char *const name_c[] = { "Inc", "LLC", "GmbH", "Ltd", "SAS", "BV", "Pty Ltd", "KK",
    "Ltda", "Corp" };
static const char *const first[] = { "Alex", "Maria", "Kenji", "Priya", "Lukas", "Sofia", "Omar",
    "Chloe", "Diego", "Hannah", "Ravi", "Emma", "Jonas", "Aiko", "Liam", "Fatima" };
static const char *const last[] = { "Smith", "Garcia", "Tanaka", "Patel", "Muller", "Rossi",
    "Haddad", "Martin", "Silva", "Schmidt", "Kumar", "Brown", "Jensen", "Sato", "O'Brien", "Khan" };

#define NELEM(a) ((int)(sizeof(a) / sizeof(a)[0]))

/* ---- world ------------------------------------------------------------ */

typedef struct partner {
    int tier, region, country, type, parent;   /* parent: index or -1 */
    double skill, speed, sloppy, commit_bias, prob_bias, activity, cum;
    int64_t joined;
    int chronic;                               /* 1 optimistic, -1 sandbagger, 0 */
    int sticky;                                /* never updates its probabilities */
} partner;

typedef struct world {
    rng r;
    int np, nq, nmonths;
    partner *p;
    int64_t start, as_of;                      /* days */
    double *fx;                                /* [month][currency] USD per unit */
    double *region_index;                      /* [month][region] */
    double *booked;                            /* [partner][quarter] won USD */
    double *pipeline_q;                        /* [partner][quarter] open USD at as_of */
} world;

static int month_of(const world *w, int64_t day)
{
    int y0, m0, d0, y, m, d;
    civil_from_days(w->start, &y0, &m0, &d0);
    civil_from_days(day, &y, &m, &d);
    int k = (y - y0) * 12 + (m - m0);
    return k < 0 ? 0 : k >= w->nmonths ? w->nmonths - 1 : k;
}

/* First day of the m-th month of the window. */
static int64_t month_start(const world *w, int m)
{
    int y, mo, d;
    civil_from_days(w->start, &y, &mo, &d);
    int k = y * 12 + mo - 1 + m;
    return days_from_civil(k / 12, k % 12 + 1, 1);
}

static int quarter_of(const world *w, int64_t day)
{
    int fy0, q0, fy, q;
    fiscal_quarter(w->start, 1, &fy0, &q0);
    fiscal_quarter(day, 1, &fy, &q);
    return (fy - fy0) * 4 + (q - q0);
}

static int64_t quarter_end(int64_t day)          /* last day of its calendar quarter */
{
    int fy, q;
    fiscal_quarter(day, 1, &fy, &q);
    return fiscal_quarter_start(q == 4 ? fy + 1 : fy, q == 4 ? 1 : q + 1, 1) - 1;
}

/* ---- output helpers ---------------------------------------------------- */

/* Writes s as one CSV field, quoted when it holds a comma, quote or newline. */
static void field(FILE *f, const char *s)
{
    if (!s) return;
    if (!strpbrk(s, ",\"\r\n")) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"') fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

static void date_us(int64_t day, char out[11])
{
    int y, m, d;
    civil_from_days(day, &y, &m, &d);
    snprintf(out, 11, "%02u/%02u/%04u", (unsigned)m % 100u, (unsigned)d % 100u, (unsigned)y % 10000u);
}

static void date_str(int64_t day, char out[11]) { date_iso(day * 86400, out); }

static FILE *open_out(const char *dir, const char *name, const char *header, prm_error *err)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (!f) {
        prm_error_set(err, "cannot write %s: %s", path, strerror(errno));
        return NULL;
    }
    /* Large buffers: the 1M-deal sample writes ~400 MB. */
    setvbuf(f, NULL, _IOFBF, 1 << 20);
    fprintf(f, "%s\r\n", header);
    return f;
}

/* ---- partners ---------------------------------------------------------- */

static void make_partners(world *w)
{
    rng *r = &w->r;
    double cum = 0;
    int ndist = 0;
    for (int i = 0; i < w->np; i++) {
        partner *p = &w->p[i];
        p->tier = pick(r, tier_w, NELEM(tiers));
        p->region = pick(r, region_w, NELEM(regions));
        do p->country = below(r, NCOUNTRY); while (countries[p->country].region != p->region);
        p->type = pick(r, type_w, NELEM(types));
        if (p->type == 0) { p->tier = p->tier > 1 ? 1 : p->tier; ndist++; }
        p->parent = -1;
        p->skill = 0.45 * norm(r);
        p->speed = exp(0.3 * norm(r));
        p->sloppy = 0.35 * unif(r) * unif(r);
        double u = unif(r);
        if (u < 0.20) { p->chronic = 1; p->commit_bias = 1.3 + 0.3 * unif(r); p->prob_bias = 0.12; }
        else if (u < 0.35) { p->chronic = -1; p->commit_bias = 0.6 + 0.2 * unif(r); p->prob_bias = -0.08; }
        else { p->chronic = 0; p->commit_bias = exp(0.08 * norm(r)); p->prob_bias = 0.03 * norm(r); }
        /* A quarter of partners set a probability at registration and never
         * touch it again: the field shows what they typed on day one. */
        p->sticky = chance(r, 0.25);
        /* Pareto-like activity: a few partners bring most deals. */
        p->activity = pow(unif(r) + 0.02, -0.8) * (p->tier == 0 ? 3 : p->tier == 1 ? 1.8 : 1) *
                      (p->type == 0 ? 2.5 : p->type == 2 ? 0.5 : 1);
        cum += p->activity;
        p->cum = cum;
        p->joined = w->start - 30 - below(r, 1500);
    }
    /* Resellers sit under a distributor of their region half of the time. */
    if (ndist)
        for (int i = 0; i < w->np; i++) {
            partner *p = &w->p[i];
            if (p->type != 1 || !chance(r, 0.5)) continue;
            for (int tries = 0; tries < 64; tries++) {
                int j = below(r, w->np);
                if (w->p[j].type == 0 && w->p[j].region == p->region) { p->parent = j; break; }
            }
        }
}

static void partner_name(int i, char *out, size_t n)
{
    snprintf(out, n, "%s %s %s", name_a[(i * 7) % NELEM(name_a)],
             name_b[(i * 5 + i / NELEM(name_a)) % NELEM(name_b)], name_c[(i * 3) % NELEM(name_c)]);
}

static int write_partners(world *w, const char *dir, prm_error *err)
{
    FILE *f = open_out(dir, "partners.csv", "Partner ID,Partner Name,Tier,Region,Country,"
                       "Partner Type,Parent Partner ID,Currency,Status,Join Date,Last Modified", err);
    if (!f) return -1;
    for (int i = 0; i < w->np; i++) {
        partner *p = &w->p[i];
        char name[96], joined[11], mod[21], parent[16] = "";
        partner_name(i, name, sizeof name);
        date_str(p->joined, joined);
        instant_iso((w->start + (i % 90)) * 86400 + 3600 * 9, mod);
        if (p->parent >= 0) snprintf(parent, sizeof parent, "P%05d", p->parent + 1);
        fprintf(f, "P%05d,", i + 1);
        field(f, name);
        fprintf(f, ",%s,%s,%s,%s,%s,%s,%s,%s,%s\r\n", tiers[p->tier], regions[p->region],
                countries[p->country].country, types[p->type], parent,
                countries[p->country].currency, "Active", joined, mod);
    }
    return fclose(f) == 0 ? 0 : prm_error_set(err, "writing partners.csv failed");
}

/* ---- signals and FX ---------------------------------------------------- */

static void make_series(world *w)
{
    rng *r = &w->r;
    for (int c = 0; c < NCUR; c++) {
        double x = log(fx0[c]);
        for (int m = 0; m < w->nmonths; m++) {
            if (c) x += 0.02 * norm(r);
            w->fx[m * NCUR + c] = exp(x);
        }
    }
    for (int g = 0; g < NELEM(regions); g++) {
        double e = 0;
        for (int m = 0; m < w->nmonths; m++) {
            e = 0.8 * e + 1.5 * norm(r);
            /* A slow regional cycle the model can learn from. */
            w->region_index[m * 4 + g] = 100 + e + 4 * sin(m / 6.0 + g * 1.7);
        }
    }
}

static double fx_rate(const world *w, int64_t day, const char *cur)
{
    for (int c = 0; c < NCUR; c++)
        if (strcmp(currencies[c], cur) == 0) return w->fx[month_of(w, day) * NCUR + c];
    return 1.0;
}

/* ---- deals ------------------------------------------------------------- */

typedef struct event {
    int64_t t;                 /* seconds */
    int stage;
    double amount;
    int64_t close;             /* expected close, days */
    double prob;
} event;

static int pick_partner(world *w)
{
    double u = unif(&w->r) * w->p[w->np - 1].cum;
    int lo = 0, hi = w->np - 1;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (w->p[mid].cum < u) lo = mid + 1; else hi = mid;
    }
    return lo;
}

static int64_t created_day(world *w)
{
    /* Registrations grow ~30% over the window and bunch in the last two
     * months of each quarter (partners register when they start to push). */
    int64_t span = w->as_of - w->start;
    for (;;) {
        double u = unif(&w->r);
        int64_t d = w->start + (int64_t)(u * (double)span);
        int y, m, dd;
        civil_from_days(d, &y, &m, &dd);
        double season = (m % 3 == 1 ? 0.8 : 1.1) * (m == 12 || m == 11 ? 1.2 : 1.0);
        if (unif(&w->r) * 1.6 < (1 + 0.3 * u) * season) return d;
    }
}

static double clamp(double x, double lo, double hi) { return x < lo ? lo : x > hi ? hi : x; }

static int write_deals(world *w, long ndeals, const char *dir, sample_counts *cnt, prm_error *err)
{
    FILE *fd = open_out(dir, "deals.csv", "Deal ID,Partner ID,Account Name,Contact Name,"
                        "Contact Email,Deal Amount,Currency,Product,Stage,Created Date,"
                        "Expected Close Date,Closed Date,Partner Probability,Budget Confirmed,"
                        "Competitor,Notes,Last Modified", err);
    FILE *fh = open_out(dir, "deal_history.csv", "Deal ID,Changed At,Stage,Deal Amount,"
                        "Expected Close Date,Partner Probability", err);
    FILE *ft = open_out(dir, "transactions.csv", "Transaction ID,Partner ID,Deal ID,Account Name,"
                        "Amount,Currency,Booked Date", err);
    FILE *fp = open_out(dir, "payouts.csv", "Payout ID,Partner ID,Type,Amount (cents),Currency,"
                        "Paid Date,Deal ID", err);
    if (!fd || !fh || !ft || !fp) {
        if (fd) fclose(fd);
        if (fh) fclose(fh);
        if (ft) fclose(ft);
        if (fp) fclose(fp);
        return -1;
    }
    rng *r = &w->r;
    event ev[64];
    for (long k = 0; k < ndeals; k++) {
        int pi = pick_partner(w);
        partner *p = &w->p[pi];
        const char *cur = countries[p->country].currency;
        int64_t created = created_day(w);
        int prod = pick(r, product_w, NELEM(products));
        double usd = exp(product_mu[prod] + 0.8 * norm(r)) * tier_amount[p->tier] *
                     (p->type == 0 ? 1.5 : p->type == 2 ? 0.6 : 1.0);
        double rate = fx_rate(w, created, cur);
        double amount = round(usd / rate / 10) * 10;
        int comp = chance(r, 0.25) ? below(r, NELEM(competitors)) : -1;
        int budget = chance(r, 0.55) ? 1 : chance(r, 0.45) ? 0 : -1;    /* -1: not given */
        int miss_account = chance(r, p->sloppy * 0.3), miss_contact = chance(r, p->sloppy * 0.6),
            miss_email = chance(r, p->sloppy * 0.8), miss_close = chance(r, p->sloppy * 0.4),
            miss_product = chance(r, p->sloppy * 0.3), miss_amount = chance(r, 0.01 + p->sloppy * 0.05);
        if (miss_amount) budget = budget == 1 ? -1 : budget;
        double complete = 1 - (miss_account + miss_contact + miss_email + miss_close +
                               miss_product + miss_amount + (budget < 0)) / 7.0;
        double econ = w->region_index[month_of(w, created) * 4 + p->region];
        double logit = -0.55 + tier_logit[p->tier] + p->skill + product_logit[prod] -
                       0.25 * log(usd / 20000) + (comp >= 0 ? -0.8 : 0) +
                       (budget == 1 ? 0.7 : budget == 0 ? -0.5 : -0.2) +
                       1.5 * (complete - 0.85) + 0.05 * (econ - 100) + 0.5 * norm(r);
        int won = unif(r) < 1 / (1 + exp(-logit));
        static const double die_w[] = { 0.30, 0.25, 0.20, 0.15, 0.10 };
        int last_stage = won ? 4 : pick(r, die_w, 5);

        /* Simulate the life of the deal: stage by stage, with slips. */
        int ne = 0;
        int64_t t = created * 86400 + 3600 * (8 + below(r, 10)) + 60 * below(r, 60);
        double slow = p->speed * (1 + 0.1 * log(usd / 20000 + 1));
        double plan = 0;
        for (int s = 0; s < 5; s++) plan += stage_median[s];
        int64_t close = created + (int64_t)(plan * clamp(0.75 + 0.2 * norm(r) -
                                            (p->chronic > 0 ? 0.15 : 0), 0.3, 2.0));
        double prob = clamp(round(((p->sticky ? 0.3 + 0.2 * unif(r) : stage_prob[0]) + p->prob_bias) * 20) / 20,
                            0.05, 0.95);
        ev[ne++] = (event){ t, 0, amount, close, prob };
        int stage = 0, regressed = 0;
        while (ne < 60) {
            double dur = gamma_rv(r, 2.0, stage_median[stage] / 1.68) * slow;
            int64_t nt = t + (int64_t)(dur * 86400) + below(r, 3600);
            /* Close-date slips: each time the planned close passes while
             * the deal is open, the partner pushes it out. */
            while (close * 86400 < nt && ne < 58) {
                /* The partner pushes the date out the morning it passes,
                 * and never after the deal's next move: history stays in
                 * time order (a slip stamped after a close reopened it). */
                int64_t st = close * 86400 + 3600 * 10;
                if (st >= nt) st = nt - 1;
                if (st <= ev[ne - 1].t) st = ev[ne - 1].t + 1;
                close += 14 + below(r, 32);
                ev[ne] = ev[ne - 1];
                ev[ne].t = st;
                ev[ne].close = close;
                ne++;
            }
            t = nt;
            if (stage == last_stage) {
                int64_t day = t / 86400;
                /* Quarter-end pile-up: many closes land in the last days. */
                if (chance(r, 0.45)) {
                    /* pushed to close by quarter end: only ever later */
                    int64_t qe = quarter_end(day);
                    int64_t pushed = (qe - below(r, 8)) * 86400 + 3600 * 15;
                    if (qe - day < 45 && pushed > t) t = pushed;
                }
                ev[ne] = ev[ne - 1];
                ev[ne].t = t;
                ev[ne].stage = won ? WON : LOST;
                ev[ne].prob = won ? 1.0 : 0.0;
                ev[ne].close = t / 86400;
                ne++;
                break;
            }
            int ns = stage + 1;
            if (stage >= 2 && !regressed && chance(r, 0.06)) { ns = stage - 1; regressed = 1; }
            stage = ns;
            ev[ne] = ev[ne - 1];
            ev[ne].t = t;
            ev[ne].stage = stage;
            if (!p->sticky)
                ev[ne].prob = clamp(round((stage_prob[stage] + p->prob_bias + 0.05 * norm(r)) * 20) / 20,
                                    0.05, 0.95);
            if (stage == 3 && chance(r, 0.3)) ev[ne].amount = round(amount * (0.8 + 0.4 * unif(r)) / 10) * 10;
            ne++;
        }
        /* Keep what was visible on the export date. */
        int64_t cut = w->as_of * 86400;
        int nv = 0;
        while (nv < ne && ev[nv].t < cut) nv++;
        if (nv == 0) continue;
        event *e = &ev[nv - 1];
        int closed = e->stage >= WON;
        int q_close = quarter_of(w, ev[ne - 1].t / 86400);
        double final_usd = ev[ne - 1].amount * rate;
        if (won && q_close >= 0 && q_close < w->nq) w->booked[pi * w->nq + q_close] += final_usd;
        if (!closed && q_close >= 0 && q_close < w->nq) w->pipeline_q[pi * w->nq + q_close] += final_usd;

        char id[24], pid[16], c1[11], c2[11], c3[11], mod[21], email[96], contact[64], acct[96];
        snprintf(id, sizeof id, "D%07ld", k + 1);
        snprintf(pid, sizeof pid, "P%05d", pi + 1);
        /* A handful of registrations point at partners the PRM no longer
         * exports: real exports have them, the ingest must report them. */
        if (k % 4999 == 4998) snprintf(pid, sizeof pid, "P9%04ld", k % 10000);
        date_str(created, c1);
        date_us(e->close, c2);
        if (k % 7919 == 7918) snprintf(c2, sizeof c2, "13/45/2025");   /* a broken date */
        date_str(e->t / 86400, c3);
        instant_iso(e->t, mod);
        int fn = below(r, NELEM(first)), ln = below(r, NELEM(last));
        snprintf(contact, sizeof contact, "%s %s", first[fn], last[ln]);
        snprintf(acct, sizeof acct, "%s %s %s", name_a[below(r, NELEM(name_a))],
                 name_b[below(r, NELEM(name_b))], name_c[below(r, NELEM(name_c))]);
        snprintf(email, sizeof email, "%c.%s@%s.example", first[fn][0] + 32, last[ln],
                 name_a[below(r, NELEM(name_a))]);
        for (char *c = email; *c; c++) if (*c == '\'') *c = 'o'; else if (*c >= 'A' && *c <= 'Z') *c += 32;
        fprintf(fd, "%s,%s,", id, pid);
        field(fd, miss_account ? NULL : acct);
        fputc(',', fd);
        field(fd, miss_contact ? NULL : contact);
        fprintf(fd, ",%s,", miss_email ? "" : email);
        if (!miss_amount) fprintf(fd, "%.2f", e->amount);
        fprintf(fd, ",%s,%s,%s,%s,%s,%s,", cur, miss_product ? "" : products[prod],
                stage_names[e->stage], c1, miss_close ? "" : c2, closed ? c3 : "");
        fprintf(fd, "%.0f,%s,%s,", e->prob * 100, budget == 1 ? "Yes" : budget == 0 ? "No" : "",
                comp >= 0 ? competitors[comp] : "");
        if (k % 97 == 0) field(fd, "Customer asked for \"phased\" rollout,\nsecond site next year");
        else if (k % 13 == 0) field(fd, comp >= 0 ? "Competing on price, needs discount" : "Renewal of legacy contract");
        fprintf(fd, ",%s\r\n", mod);
        cnt->deals++;
        cnt->open_deals += !closed;

        for (int i = 0; i < nv; i++) {
            char c[11];
            date_us(ev[i].close, c);
            /* Field history comes from the PRM's API in epoch milliseconds. */
            fprintf(fh, "%s,%lld,%s,%.2f,%s,%.0f\r\n", id, (long long)ev[i].t * 1000,
                    stage_names[ev[i].stage], ev[i].amount, c, ev[i].prob * 100);
            cnt->history++;
        }
        if (closed && won) {
            char bd[11];
            date_str(e->t / 86400, bd);
            fprintf(ft, "T%07ld,%s,%s,", k + 1, pid, id);
            field(ft, miss_account ? NULL : acct);
            fprintf(ft, ",%.2f,%s,%s\r\n", e->amount, cur, bd);
            cnt->transactions++;
            int64_t paid = e->t / 86400 + 30 + below(r, 15);
            if (paid < w->as_of) {
                double rate_c = p->type == 2 ? 0.05 : tier_commission[p->tier];
                date_str(paid, bd);
                fprintf(fp, "C%07ld,%s,commission,%lld,%s,%s,%s\r\n", k + 1, pid,
                        (long long)llround(e->amount * rate_c * 100), cur, bd, id);
                cnt->payouts++;
            }
        }
    }
    int rc = 0;
    rc |= fclose(fd); rc |= fclose(fh); rc |= fclose(ft); rc |= fclose(fp);
    return rc ? prm_error_set(err, "writing the deal files failed (disk full?)") : 0;
}

/* ---- commits, quotas, MDF, signals, fx --------------------------------- */

static int write_periodic(world *w, const char *dir, sample_counts *cnt, prm_error *err)
{
    FILE *fc = open_out(dir, "commits.csv", "Partner ID,Period,Forecast Category,Amount,Currency,"
                        "Submitted At", err);
    FILE *fq = open_out(dir, "quotas.csv", "Partner ID,Period,Quota,Currency,Set At", err);
    char ppath[1024];                /* MDF payouts join the commissions */
    snprintf(ppath, sizeof ppath, "%s/payouts.csv", dir);
    FILE *fp = fopen(ppath, "a");
    FILE *fs = open_out(dir, "signals.csv", "Entity Type,Entity,Signal,Date,Value", err);
    FILE *fx = open_out(dir, "fx_rates.csv", "Currency,Date,Rate to USD", err);
    if (!fc || !fq || !fp || !fs || !fx) {
        if (fc) fclose(fc);
        if (fq) fclose(fq);
        if (fp) fclose(fp);
        if (fs) fclose(fs);
        if (fx) fclose(fx);
        return err && err->msg[0] ? -1 : prm_error_set(err, "cannot write %s", ppath);
    }
    rng *r = &w->r;
    for (int i = 0; i < w->np; i++) {
        partner *p = &w->p[i];
        const char *cur = countries[p->country].currency;
        double avg = 0;
        for (int q = 0; q < w->nq; q++) avg += w->booked[i * w->nq + q] / w->nq;
        for (int q = 0; q < w->nq; q++) {
            int fy0, q0;
            fiscal_quarter(w->start, 1, &fy0, &q0);
            int k = (fy0 * 4 + q0 - 1) + q;
            int fy = k / 4, qq = k % 4 + 1;
            int64_t qs = fiscal_quarter_start(fy, qq, 1);
            if (qs >= w->as_of) break;
            double rate = fx_rate(w, qs, cur);
            double truth = w->booked[i * w->nq + q];
            char period[16];
            snprintf(period, sizeof period, "%d-Q%d", fy, qq);
            /* Quota: a stretch over the partner's run-rate, set at the start. */
            double quota = round(fmax(avg, 5000) * (1.1 + 0.02 * q) * exp(0.1 * norm(r)) / rate / 100) * 100;
            char at[21];
            instant_iso(qs * 86400 + 3600 * 8, at);
            fprintf(fq, "P%05d,%s,%.0f,%s,%s\r\n", i + 1, period, quota, cur, at);
            cnt->quotas++;
            if (chance(r, 0.1) && qs + 45 < w->as_of) {
                instant_iso((qs + 45) * 86400 + 3600 * 8, at);
                fprintf(fq, "P%05d,%s,%.0f,%s,%s\r\n", i + 1, period, round(quota * 0.9 / 100) * 100, cur, at);
                cnt->quotas++;
            }
            if (p->type != 2 && (truth > 0 || chance(r, 0.3))) {
                /* Partners revise their commit three times a quarter; the bias
                 * fades as the quarter goes on (sandbaggers stay low longest). */
                for (int rev = 0; rev < 3; rev++) {
                    int64_t day = qs + 10 + 30 * rev + below(r, 5);
                    if (day >= w->as_of) break;
                    double f = (3 - rev) / 3.0;
                    double est = fmax(truth, 1000) * pow(p->commit_bias, f) * exp((0.25 * f + 0.05) * norm(r));
                    instant_iso(day * 86400 + 3600 * (9 + below(r, 8)), at);
                    fprintf(fc, "P%05d,%s,Commit,%.0f,%s,%s\r\n", i + 1, period, round(est * 0.9 / rate), cur, at);
                    fprintf(fc, "P%05d,%s,Best Case,%.0f,%s,%s\r\n", i + 1, period, round(est * 1.25 / rate), cur, at);
                    cnt->commits += 2;
                }
            }
            if (p->tier <= 1 && p->type != 2) {
                char d[11];
                date_str(qs + 20, d);
                fprintf(fp, "M%05d%02d,P%05d,mdf,%lld,%s,%s,\r\n", i + 1, q, i + 1,
                        (long long)(p->tier == 0 ? 1500000 : 500000), "USD", d);
                cnt->payouts++;
            }
        }
        for (int m = 0; m < w->nmonths; m++) {
            int64_t day = month_start(w, m);
            if (day >= w->as_of) break;
            char ds[11];
            date_str(day, ds);
            double visits = round(p->activity * 400 * exp(0.2 * norm(r) + 0.02 * m));
            fprintf(fs, "partner,P%05d,web_visits,%s,%.0f\r\n", i + 1, ds, visits);
            cnt->signals++;
        }
    }
    for (int m = 0; m < w->nmonths; m++) {
        int64_t day = month_start(w, m);
        if (day >= w->as_of) break;
        char ds[11];
        date_str(day, ds);
        for (int g = 0; g < NELEM(regions); g++) {
            fprintf(fs, "region,%s,economic_index,%s,%.2f\r\n", regions[g], ds, w->region_index[m * 4 + g]);
            cnt->signals++;
        }
        for (int c = 0; c < NCUR; c++) {
            fprintf(fx, "%s,%s,%.6g\r\n", currencies[c], ds, w->fx[m * NCUR + c]);
            cnt->fx++;
        }
    }
    int rc = fclose(fc) | fclose(fq) | fclose(fp) | fclose(fs) | fclose(fx);
    return rc ? prm_error_set(err, "writing the periodic files failed (disk full?)") : 0;
}

static int write_truth(world *w, const char *dir, const sample_opts *o, prm_error *err)
{
    FILE *f = open_out(dir, "truth_partners.csv", "Partner ID,skill,speed,sloppiness,"
                       "commit_bias,probability_bias,chronic", err);
    if (!f) return -1;
    for (int i = 0; i < w->np; i++) {
        partner *p = &w->p[i];
        fprintf(f, "P%05d,%.4f,%.4f,%.4f,%.4f,%.4f,%s\r\n", i + 1, p->skill, p->speed, p->sloppy,
                p->commit_bias, p->prob_bias,
                p->chronic > 0 ? "optimistic" : p->chronic < 0 ? "sandbagger" : "");
    }
    fclose(f);
    char path[1024];
    snprintf(path, sizeof path, "%s/TRUTH.md", dir);
    f = fopen(path, "w");
    if (!f) return prm_error_set(err, "cannot write %s", path);
    fprintf(f, "# Sample PRM export (synthetic)\n\n"
            "Generated by `prmcast sample --partners %d --deals %ld --quarters %d --seed %llu`, "
            "as of %s. Not real data.\n\n"
            "Planted effects, for checking the engine finds them:\n"
            "- win probability rises with tier, partner skill (truth_partners.csv), budget "
            "confirmation, field completeness and the regional economic_index; falls with "
            "competitor mentions and deal size;\n"
            "- a quarter of partners never update the probability they typed at registration;\n"
            "- 20%% of partners commit optimistically (commit_bias 1.3-1.6) and submit probabilities "
            "~12 points high; 15%% sandbag (0.6-0.8); the bias fades over a quarter's revisions;\n"
            "- close dates slip repeatedly, ~6%% of deals regress a stage, ~45%% of closes pile up "
            "in the last days of a quarter; Q4 registrations run ~20%% higher;\n"
            "- a few deals reference partners missing from partners.csv and a few carry an "
            "impossible close date (13/45/2025): the ingest must report them.\n",
            o->partners, o->deals, o->quarters, (unsigned long long)o->seed, o->as_of);
    fclose(f);
    return 0;
}

int sample_write(const char *dir, const sample_opts *o, sample_counts *cnt, prm_error *err)
{
    int64_t asof;
    if (o->partners < 1 || o->partners > 99999) return prm_error_set(err, "--partners must be 1..99999");
    if (o->deals < 0 || o->deals > 9999999) return prm_error_set(err, "--deals must be 0..9999999");
    if (o->quarters < 1 || o->quarters > 40) return prm_error_set(err, "--quarters must be 1..40");
    if (date_parse(o->as_of, DATE_ISO, &asof, err) < 0) return prm_error_prefix(err, "--as-of: ");
    if (mkdir(dir, 0777) < 0 && errno != EEXIST)
        return prm_error_set(err, "cannot create %s: %s", dir, strerror(errno));
    memset(cnt, 0, sizeof *cnt);
    world w = { 0 };
    rng_seed(&w.r, o->seed);
    w.np = o->partners;
    w.nq = o->quarters + 1;
    w.as_of = asof / 86400;
    int fy, q;
    fiscal_quarter(w.as_of, 1, &fy, &q);
    int k = fy * 4 + q - 1 - o->quarters;
    w.start = fiscal_quarter_start(k / 4, k % 4 + 1, 1);
    w.nmonths = (o->quarters + 1) * 3 + 1;
    w.p = calloc((size_t)w.np, sizeof *w.p);
    w.fx = calloc((size_t)w.nmonths * NCUR, sizeof *w.fx);
    w.region_index = calloc((size_t)w.nmonths * 4, sizeof *w.region_index);
    w.booked = calloc((size_t)w.np * w.nq, sizeof *w.booked);
    w.pipeline_q = calloc((size_t)w.np * w.nq, sizeof *w.pipeline_q);
    int rc = -1;
    if (!w.p || !w.fx || !w.region_index || !w.booked || !w.pipeline_q) {
        prm_error_set(err, "out of memory");
        goto out;
    }
    make_partners(&w);
    make_series(&w);
    if (write_partners(&w, dir, err) < 0) goto out;
    cnt->partners = w.np;
    if (write_deals(&w, o->deals, dir, cnt, err) < 0) goto out;
    if (write_periodic(&w, dir, cnt, err) < 0) goto out;
    if (write_truth(&w, dir, o, err) < 0) goto out;
    rc = 0;
out:
    free(w.p);
    free(w.fx);
    free(w.region_index);
    free(w.booked);
    free(w.pipeline_q);
    return rc;
}
