/* world_int.h - the layout of a world (world.h), for the files that
 * compute over it at full speed (world.c, feat.c). Not a contract. */
#ifndef PRM_WORLD_INT_H
#define PRM_WORLD_INT_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "world.h"

#define DAY 86400LL
enum { MAX_SIGNALS = 8 };

typedef struct strtab {
    char **s;
    int n, cap;
    int last;                  /* the last index found: deals in a row mostly repeat it */
} strtab;

/* Strings that live as long as the world (deal ids): carved from 1 MiB
 * blocks instead of one malloc each (a million strdup calls were ~2% of
 * a 1M-deal score run). */
typedef struct strpool {
    char **blocks;
    size_t nb, capb, used, room;   /* room: size of the last block */
} strpool;

/* One observation of a deal's pipeline fields. */
typedef struct whist {
    int64_t t;
    double amount;
    int32_t close_day;         /* INT32_MIN: none */
    float prob;                /* NaN: none */
    int8_t stage, status;
} whist;

/* One value of an attribute from attr_history (interned index or number). */
enum {
    A_TIER, A_TYPE, A_REGION, A_PARENT, A_PSTATUS, A_PCURRENCY,       /* partner */
    A_PRODUCT, A_CURRENCY, A_BUDGET, A_COMPETITOR, A_COMPLETENESS,    /* deal */
    A_COUNT                    /* tenant field k (x.<name>): A_COUNT + k */
};
/* A tenant-declared deal field's type (settings "field_type.x.<name>"). */
enum { XT_CATEGORY, XT_NUMBER, XT_YESNO, XT_DATE };   /* store_field_types' order */
typedef struct wattr {
    int64_t t;
    int32_t field, iv;         /* iv: interned index / partner index / 0-1; -1 none */
    double dv;                 /* A_COMPLETENESS; tenant number, yes/no 0/1, date as a day */
} wattr;

/* A million of these in a 1M-deal world: ordered so that no padding is
 * wasted (88 bytes; 112 with size_t slices and the fields in reading
 * order), as each fresh page of a world costs a page fault. */
typedef struct wdeal {
    int64_t rowid;
    char *ext;
    double completeness;
    int64_t outcome_t;         /* first observation of the outcome; INT64_MAX if open */
    int partner, source, product, currency, competitor;   /* interned, -1 none (current row) */
    int32_t created;           /* day */
    int32_t closed_day;        /* current row's closed_at, INT32_MIN none */
    float last_open_prob;      /* the partner's probability just before the outcome */
    uint32_t h0, hn;           /* history slice (world_load keeps w->nh below 2^32) */
    uint32_t a0, an;           /* attribute history slice (most deals: none) */
    int8_t budget;             /* 1, 0, -1 (current row) */
    int8_t outcome;            /* STATUS_* of the last observation */
    uint8_t present;           /* bit 0 account, 1 contact, 2 email */
    uint8_t conflict;          /* current row disagreed with history (reconciled) */
    uint8_t brief;             /* as-of world: settled, its current row is its history */
} wdeal;

typedef struct wpartner {
    int64_t rowid;
    char *ext;
    int tier, type, region, status, currency;   /* current row, interned */
    int parent;                /* partner index of the current parent, -1 none */
    size_t a0, an;
    size_t *deals;             /* indices, by created day */
    size_t nd;
    /* commits of category 'commit': quarter key, amount, submitted */
    int32_t *cq;
    double *camt;
    int64_t *ct;
    size_t nc;
    /* quota revisions: quarter key, amount (base currency at set time), set */
    int32_t *qq;
    double *qamt;
    int64_t *qt;
    size_t nq;
} wpartner;

typedef struct series {        /* one signal or FX curve: days ascending */
    int32_t *day;
    double *v;
    size_t n, cap;
} series;

struct world {
    wdeal *d;
    size_t nd;
    whist *h;
    size_t nh;
    wattr *a;
    size_t na;
    wpartner *p;
    size_t np;
    int64_t *prow;             /* partner rowid -> index + 1 (0: none) */
    int64_t max_prow;
    strtab tiers, types, regions, products, currencies, sources, competitors, pstatuses;
    strpool ids;               /* wdeal.ext */
    series *fx;                /* by currency index: units of USD per unit (fx_rates) */
    int base_ccy;              /* currency index of the base currency, -1 when unseen */
    char base[4];
    strtab sig_names;          /* "signal_region_economic_index" */
    int sig_kind[MAX_SIGNALS]; /* 0 region, 1 partner */
    series *sig;               /* [signal][entity]: regions or partners */
    int64_t last_t;
    int64_t as_of;             /* world_load_as_of's instant; INT64_MAX: a full world */
    size_t recent_all;         /* WORLD_RECENT_ALL (world_load_window) */
    uint8_t *recent;           /* as-of world: bit 0 in a partner's window at as_of, bit 1 in the store's */
    int fiscal_start;          /* settings.fiscal_start_month */
    size_t conflicts;
    char conflict_ex[3][32];
    /* tenant deal fields with a declared type, by name: "x.<name>", its
     * XT_* type and, for a category, its interned values */
    int nx, xcap;
    char **xname;
    int *xtype;
    strtab *xvals;
    /* feat.c keeps what the last feat_open computed here (owner: feat.c) */
    void *feat_cache;
    void (*feat_cache_free)(void *);
};

int world_intern(strtab *t, const char *s);

/* Marks (mark[i] = 1, all others 0) each partner's last k_partner deals
 * resolved by `at` (deals without a partner as one more group) and the
 * store's last k_all (outcome instant, newest first; ties: the
 * later-loaded deal first). -1 when out of memory. */
/* world_load (as_of INT64_MAX) or world_load_as_of with the store-wide
 * window of recent resolved deals `recent_all` instead of WORLD_RECENT_ALL:
 * for tests, so that a small store has more resolved deals than it. */
int world_load_window(struct store *s, int64_t as_of, size_t recent_all, world **out, prm_error *err);

int world_recent_resolved(const world *w, int64_t at, size_t k_partner, size_t k_all, uint8_t *mark);

/* Latest value at or before `day`; NaN when none. */
double world_series_at(const series *s, int32_t day);

/* An attribute of a deal or partner as of t: the last attr_history value at
 * or before t; before the first one, the first (what the store first knew
 * stands in for earlier times: stable when later history arrives); with
 * no history, the current row's value `cur`. */
int32_t world_attr_i(const world *w, size_t a0, size_t an, int field, int64_t t, int32_t cur);
double world_attr_d(const world *w, size_t a0, size_t an, int field, int64_t t, double cur);

static inline int wd_product(const world *w, const wdeal *d, int64_t t)
{
    return d->an ? world_attr_i(w, d->a0, d->an, A_PRODUCT, t, d->product) : d->product;
}
static inline int wd_currency(const world *w, const wdeal *d, int64_t t)
{
    return d->an ? world_attr_i(w, d->a0, d->an, A_CURRENCY, t, d->currency) : d->currency;
}
static inline int wd_budget(const world *w, const wdeal *d, int64_t t)
{
    return d->an ? world_attr_i(w, d->a0, d->an, A_BUDGET, t, d->budget) : d->budget;
}
static inline int wd_competitor(const world *w, const wdeal *d, int64_t t)
{
    return d->an ? world_attr_i(w, d->a0, d->an, A_COMPETITOR, t, d->competitor) : d->competitor;
}
static inline double wd_completeness(const world *w, const wdeal *d, int64_t t)
{
    return d->an ? world_attr_d(w, d->a0, d->an, A_COMPLETENESS, t, d->completeness) : d->completeness;
}
static inline int wp_tier(const world *w, const wpartner *p, int64_t t)
{
    return p->an ? world_attr_i(w, p->a0, p->an, A_TIER, t, p->tier) : p->tier;
}
static inline int wp_type(const world *w, const wpartner *p, int64_t t)
{
    return p->an ? world_attr_i(w, p->a0, p->an, A_TYPE, t, p->type) : p->type;
}
static inline int wp_region(const world *w, const wpartner *p, int64_t t)
{
    return p->an ? world_attr_i(w, p->a0, p->an, A_REGION, t, p->region) : p->region;
}
static inline int wp_parent(const world *w, const wpartner *p, int64_t t)
{
    return p->an ? world_attr_i(w, p->a0, p->an, A_PARENT, t, p->parent) : p->parent;
}

/* Tenant field k of a deal as of t (attr_history "x.<name>"): a category's
 * interned value (-1 none) or a number (NaN none; a date as its day). */
static inline int wd_x_i(const world *w, const wdeal *d, int k, int64_t t)
{
    return d->an ? world_attr_i(w, d->a0, d->an, A_COUNT + k, t, -1) : -1;
}
static inline double wd_x_d(const world *w, const wdeal *d, int k, int64_t t)
{
    return d->an ? world_attr_d(w, d->a0, d->an, A_COUNT + k, t, NAN) : NAN;
}

/* The state of a deal at an instant, from its history. */
typedef struct wstate {
    const whist *now;          /* latest observation at or before t */
    int64_t stage_since;
    int slips, slipped_days, regressions;
} wstate;

int world_state_at(const world *w, const wdeal *d, int64_t t, wstate *s);
int world_open_at(const world *w, const wdeal *d, int64_t t, wstate *s);
/* amount (in the deal's currency as of day) in the base currency; NaN without a rate */
double world_amount_base(const world *w, const wdeal *d, double amount, int32_t day);
int world_quarter_key(const world *w, int64_t day);

#endif
