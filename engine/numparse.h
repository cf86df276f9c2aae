/* numparse.h - amounts and percentages as PRM exports write them, plain C
 * (prm.money / prm.percent and the ingest's declared fields use these; the
 * fuzz targets call them directly).
 *
 *   double x;
 *   money_parse("$1,234.50", 9, &x, err);     // 1234.5
 *   money_parse("1,2,3", 5, &x, err);         // -1: "1,2,3" is not 123
 *   percent_parse("35", 2, 100, &x, err);     // 0.35: the column is 0-100
 *   percent_parse("0.5%", 4, 0, &x, err);     // 0.005: a '%' is a percent
 */
#ifndef PRM_NUMPARSE_H
#define PRM_NUMPARSE_H

#include <stddef.h>

#include "error.h"

/* An amount: optional sign or accounting parentheses, an optional currency
 * symbol or ISO 4217 code before or after ("$", "EUR 12", "12 EUR", "€5"),
 * digits with thousands separators (',' '\'' or ' ', one kind, every group
 * of three after a first group of one to three) and an optional decimal
 * part. Returns 0, or -1 with err saying "not an amount: ...". */
int money_parse(const char *s, size_t n, double *out, prm_error *err);

/* A percentage as a fraction 0..1. A value ending in '%' is a percent
 * ("35%", "0.5%"); a bare number is read in the column's declared scale:
 * 100 (the column holds 0-100) or 1 (it holds 0-1). scale 0 means the
 * connector declared none, and then a bare number is refused rather than
 * guessed. Returns 0, or -1 with err saying why. */
int percent_parse(const char *s, size_t n, int scale, double *out, prm_error *err);

/* The value of plain decimal digits with an optional fraction ("1234.50",
 * ".5", "007"), as money_parse and percent_parse leave a number after
 * removing signs, symbols and separators: bit for bit what strtod gives
 * (checked by tests/fuzz/fuzz_parse.c), without its general machinery for
 * the usual short amounts. Other text is handed to strtod as it is. */
double decimal_value(const char *digits);

#endif
