/* store_forecast.h - the store reads of the forecast module (store_forecast.c). */
#ifndef PRM_STORE_FORECAST_H
#define PRM_STORE_FORECAST_H

#include <stdint.h>

#include "error.h"

struct store;

/* Calls fn(ud, deal rowid, account) for every deal with an account; fn
 * returns -1 to stop (out of memory). */
typedef int (*store_account_fn)(void *ud, int64_t rowid, const char *account);
int store_deal_accounts(struct store *s, store_account_fn fn, void *ud, prm_error *err);
/* *any = 1 when some deal has an observation at or before the instant
 * `at` (ISO, as stored), else 0: whether the store knows any deal then. */
int store_deals_known(struct store *s, const char *at, int *any, prm_error *err);

#endif
