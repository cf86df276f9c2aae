/* world.h - a read-only snapshot of the store with as-of indices: what the
 * engine knew at any instant T. Features (feat.c), scoring, `rules test`,
 * the nightly summary and everything after them (forecast, attainment,
 * roll-up, the read API) take their facts from here, so "a deal as of T"
 * has one definition.
 *
 *   world *w;
 *   if (world_load(store, &w, &err) < 0) ...     // one read of the store
 *   deal_view v;
 *   world_view(w, i, T, &v);                      // deal i as known at T
 *   ... v.stage, v.amount_base, v.tier (the partner's tier at T) ...
 *   world_free(w);
 *
 * Rules of time:
 *  - a deal's stage, amount, close date, status and partner probability at
 *    T come from its deal_history rows observed at or before T;
 *  - every other attribute features, rules, roll-up or segments read has
 *    history too (attr_history, written on change): deal product family,
 *    currency, budget, competitor, completeness; partner tier, type,
 *    region, parent, status. Before an attribute's first recorded value the
 *    first value stands in (the store knew nothing earlier), so a view as
 *    of T never changes when later history arrives;
 *  - FX, signals, commits and quotas: rows dated at or before T;
 *  - the current row is authoritative for now: when it disagrees with the
 *    last history row (a deal closed while history shows it open, say),
 *    the current row is added as the newest observation and the conflict
 *    is counted (world_conflicts), never guessed away silently.
 */
#ifndef PRM_WORLD_H
#define PRM_WORLD_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"

struct store;
typedef struct world world;

int world_load(struct store *s, world **out, prm_error *err);
/* A world for the one instant T (a score run's): every deal's current row,
 * but full history only for the deals that need it at T - those not
 * settled by T by their current row (open now, or changed after T:
 * possibly open at T, as a deal closed after T is; or a row without an
 * amount, which history may have), each partner's
 * last WORLD_RECENT deals created by T and last WORLD_RECENT resolved by T,
 * and the store's last WORLD_RECENT_ALL resolved by T (world_int.h's
 * world_recent_resolved): all the history the features at T read (feat.h). A deal settled by T keeps its current row
 * as its only observation, at its updated_at, and of that row only what
 * the features at T read of a settled deal (external id, partner,
 * registration day, stage, status, amount, currency; its expected close,
 * partner probability, product, competitor, budget, completeness and
 * source are unknown): its outcome and close
 * instant as of T are the row's (the same as history's unless the deal
 * changed after its close; a history row newer than the current row,
 * the conflict case, is not seen). Everything as of T then equals the full
 * world's for the deals open at T (tests/unit/test_world.c). When the
 * deals needing history are over a third of the store, one scan of all
 * history is cheaper: the world is then a full one (world_as_of is
 * INT64_MAX). Features at another instant refuse a world as of T. */
int world_load_as_of(struct store *s, int64_t t, world **out, prm_error *err);
int64_t world_as_of(const world *w);               /* INT64_MAX: every instant */
void world_free(world *w);

/* The recent deals a world as of T reads in full (world_load_as_of), the
 * windows of the features that need history (feat.h): each partner's last
 * WORLD_RECENT deals created and resolved by T (partner median amount and
 * probability bias), the store's last WORLD_RECENT_ALL resolved by T (stage
 * medians: as many spells per stage as the old reservoir kept). */
enum { WORLD_RECENT = 200, WORLD_RECENT_ALL = 20000 };

size_t world_n_deals(const world *w);
size_t world_n_partners(const world *w);
int64_t world_last_observed(const world *w);       /* newest history instant (seconds) */
int64_t world_first_created(const world *w);       /* the first deal's registration day (seconds); INT64_MIN if none */
int world_fiscal_start(const world *w);
const char *world_base_currency(const world *w);   /* settings.base_currency, "USD" */
/* Deals whose current row disagreed with their history; *example (may be
 * NULL) gets the first one's id. */
size_t world_conflicts(const world *w, const char **example);

const char *world_deal_id(const world *w, size_t d);
const char *world_deal_source(const world *w, size_t d);
int64_t world_deal_rowid(const world *w, size_t d);
/* Index of a deal by external id; -1 when unknown. Linear: for tools. */
long world_find_deal(const world *w, const char *external_id);
/* 1 when deal d is open at T (known, not closed). */
int world_deal_open(const world *w, size_t d, int64_t t);

/* A tenant-declared deal field's type ("category", "number", "yesno",
 * "date") by its attribute name "x.<name>"; NULL when the store has none. */
const char *world_field_type(const world *w, const char *name);

/* Units of the base currency per unit of `currency` as of day (NaN when no
 * rate is known by then); 1 for the base currency itself. */
double world_fx(const world *w, const char *currency, int64_t day);

/* One deal as features, rules and explanations see it at an instant.
 * Strings point into the world (or into the view's own arrays); NULL when
 * missing. Doubles are NaN when missing. */
typedef struct deal_view {
    const char *external_id, *partner_id, *tier, *partner_type, *region, *parent_id, *account,
        *contact_name, *contact_email, *product_family, *stage, *status, *currency, *competitor,
        *notes;
    double amount, amount_base, partner_probability, completeness;
    int budget_confirmed;                 /* 1, 0, -1 unknown */
    char created_at[11], expected_close[11], closed_at[11], stage_changed_at[21], updated_at[21];
    int known;                            /* 0: the deal did not exist yet at T */
    int has_close;
    int age_days, days_in_stage, close_date_slips, days_slipped, stage_regressions;
    int stage_index;                      /* 0..4 while open, 5 won, 6 lost */
    /* partner statistics at T (feat_view fills them; NaN otherwise) */
    double partner_win_rate, partner_median_amount, tier_median_amount;
} deal_view;

void deal_view_init(deal_view *v);

/* The open pipeline at T by stage and fiscal quarter of the expected close
 * (fy 0: no date), in the base currency; deals whose currency has no rate
 * by T are counted in no_rate and left out of amount. */
typedef struct pipeline_cell {
    int stage, fy, q;
    size_t deals, no_rate;
    double amount;
} pipeline_cell;
int world_pipeline(const world *w, int64_t t, pipeline_cell **cells, size_t *n, prm_error *err);
/* Deal d as known at T (its identity, attributes, state and base-currency
 * amount); v->known = 0 when it did not exist yet. */
void world_view(const world *w, size_t d, int64_t t, deal_view *v);

#endif
