/* sample.h - a synthetic PRM export that looks like a real partner program.
 *
 * Deterministic per seed. Writes, into one folder, what a PRM export holds:
 * partners.csv, deals.csv, deal_history.csv (field history), commits.csv,
 * quotas.csv, transactions.csv, payouts.csv (amounts in cents, as some
 * PRMs send them), signals.csv, fx_rates.csv, plus TRUTH.md describing
 * the planted effects (per-partner bias, sandbaggers, seasonality) so
 * tests and benchmarks can check the engine finds them.
 */
#ifndef PRM_SAMPLE_H
#define PRM_SAMPLE_H

#include <stdint.h>

#include "error.h"

typedef struct sample_opts {
    int partners;          /* default 300 */
    long deals;            /* default 30000 */
    int quarters;          /* default 12: history ending at as_of */
    uint64_t seed;         /* default 42 */
    const char *as_of;     /* export date, default "2026-11-20" */
} sample_opts;

typedef struct sample_counts {
    long partners, deals, open_deals, history, commits, quotas, transactions, payouts,
         signals, fx;
} sample_counts;

int sample_write(const char *dir, const sample_opts *o, sample_counts *out, prm_error *err);

#endif
