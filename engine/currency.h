/* currency.h - the ISO 4217 currency codes, in one place: the store's
 * check of every `currency` field (store_upsert.c) and prm.money's
 * currency-code prefixes ("EUR 12") read this table.
 *
 *   if (!currency_valid("EUR")) ...
 */
#ifndef PRM_CURRENCY_H
#define PRM_CURRENCY_H

#include <stddef.h>

/* 1 when s[0..n) is an active ISO 4217 alphabetic code (upper case). */
int currency_valid_n(const char *s, size_t n);
int currency_valid(const char *s);

#endif
